/* SPDX-License-Identifier: MIT */
/*
 * Co-registration: the SAR resampled onto the optical grid (`mmcl align`).
 */
#ifndef MMCL_ALIGN_H
#define MMCL_ALIGN_H

#include <stddef.h>

#include "mmcl/context.h"
#include "mmcl/export.h"
#include "mmcl/options.h"

MMCL_BEGIN_DECLS

/**
 * Writes the SAR raster (@p sar) resampled onto the grid of the optical
 * raster (size, geotransform and CRS) as @p out, one float32 band per SAR
 * channel, NaN where the SAR is invalid (nodata, NaN, masked, or outside its
 * footprint), with every band's statistics (GDAL's STATISTICS_*) and, beside
 * it, its QGIS style "<out without extension>.qml" (band 1 in grey).
 *
 * @param optical    @p n_optical paths (GDAL dataset names); one dataset, or
 *                   several single-band files stacked on the finest grid
 *                   among them (as Sentinel-2 is delivered). Not NULL.
 * @param sar        @p n_sar SAR paths, any CRS and resolution: one
 *                   dataset, or several single-band files on one grid
 *                   (VV.tif, VH.tif), stacked in the order given. Not NULL.
 * @param out        Output path. Written in a private folder beside it and
 *                   moved into place when complete. An existing file is
 *                   kept (MMCL_ERR_EXISTS), also one that appears while the
 *                   call runs, unless the OVERWRITE option is set; even
 *                   then only an aligned SAR of an earlier call is
 *                   replaced, never an input, a folder, a link or a file of
 *                   another kind (README, "outputs").
 * @param opts       Options built for "align" (see mmcl_option_defs("align"));
 *                   NULL for defaults.
 * @return MMCL_OK, or an error with the reason in mmcl_context_errmsg(ctx);
 *         on error no output is left behind. Inputs are never modified.
 * Thread-safety: reentrant; one context per thread. Opens its own GDAL
 * handles per worker thread.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_align(mmcl_context *ctx, const char *const *optical,
                                size_t n_optical, const char *const *sar,
                                size_t n_sar, const char *out,
                                const mmcl_options *opts);

MMCL_END_DECLS

#endif /* MMCL_ALIGN_H */
