/* SPDX-License-Identifier: MIT */
/*
 * Private to mmcl_audit: its lazy descriptor (LAZY=YES), written instead of
 * the map once the decoders are fitted (audit_lazy.c).
 */
#ifndef MMCL_AUDIT_INTERNAL_H
#define MMCL_AUDIT_INTERNAL_H

#include <stddef.h>

#include "encoder_internal.h"
#include "mmcl/options.h"
#include "output_internal.h"

/* LAZY=YES: the options that do not apply to a descriptor (FORMAT, CO,
 * REPORT) refused, and the descriptor @p out recorded in @p files as an
 * output (before any work). */
mmcl_status mmcl__audit_lazy_check(mmcl_context *ctx, mmcl__files *files,
                                   const char *out, const mmcl_options *o);

/* Writes the descriptor of the lazy audit map to @p out: the embedding
 * raster and the pair, the options that decide how they are read and what
 * the map holds, and the fit of @p enc (audit_fit_internal.h) with
 * @p metadata, what the written map's MMCL metadata says of the audit
 * (KEY=VALUE list: the samples, the blocks, the cross-validated figures);
 * then puts it in place with its QGIS style, the progress ending at 1. */
mmcl_status mmcl__audit_lazy_write(mmcl_context *ctx, mmcl__files *files,
                                   const char *out, const char *embedding,
                                   const char *const *optical,
                                   size_t n_optical, const char *const *sar,
                                   size_t n_sar, const mmcl__encoder *enc,
                                   char **metadata, const mmcl_options *o,
                                   mmcl_progress_fn progress, void *user);

#endif /* MMCL_AUDIT_INTERNAL_H */
