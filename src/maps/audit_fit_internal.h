/* SPDX-License-Identifier: MIT */
/*
 * Private: what `mmcl audit` fits, as JSON and back, for the lazy audit
 * product (its descriptor holds the fit, so that reading it computes the
 * maps window by window without fitting again).
 *
 * The fit is the encoder of an audit (audit.c): no MLP (the embedding is
 * read from the raster), P = 1, and per modality the standardization, the
 * unimodal PCA and the three decoders, with the noise floors:
 *
 *   {"k": K, "optical": M, "sar": M}, each M =
 *   {"bands": B, "mean": [B], "std": [B],
 *    "pca": L, "decoder_aligned": L, "decoder_unimodal": L,
 *    "decoder_nonredundant": L,
 *    "floor_infoloss": x or null, "floor_unimodal": x or null}
 *   with each layer L = {"in": p, "out": q, "W": [q * p row-major],
 *   "b": [q]}: pca (B -> Ku), decoder_aligned (K -> B), decoder_unimodal
 *   (Ku -> B), decoder_nonredundant (the other modality's bands -> B).
 *
 * The lazy descriptor adds "metadata" to it (audit_lazy.c): what the
 * written map's MMCL metadata says of the audit, as strings.
 *
 * Numbers are printed so that they read back to the same bits (cJSON's
 * shortest round trip), so the lazy maps equal the written ones.
 */
#ifndef MMCL_AUDIT_FIT_INTERNAL_H
#define MMCL_AUDIT_FIT_INTERNAL_H

#include <cjson/cJSON.h>

#include "encoder_internal.h"

/* The fit of the audit encoder @p enc (objective "audit"); NULL on no
 * memory. */
cJSON *mmcl__audit_fit_json(const mmcl__encoder *enc);

/* The encoder of the fit @p fit, whose modalities must have @p B1 optical
 * and @p B2 SAR bands; every shape and number is checked, the message
 * naming the descriptor @p name ("descriptor 'NAME': ..."). The encoder
 * owns its arrays: free it with mmcl__audit_fit_free. */
mmcl_status mmcl__audit_fit_parse(mmcl_context *ctx, const cJSON *fit,
                                  const char *name, int B1, int B2,
                                  mmcl__encoder **out);
void mmcl__audit_fit_free(mmcl__encoder *enc);

#endif /* MMCL_AUDIT_FIT_INTERNAL_H */
