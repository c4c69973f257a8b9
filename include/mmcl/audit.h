/* SPDX-License-Identifier: MIT */
/*
 * Auditing an embedding raster made elsewhere (design section 4.6): what
 * any k-band embedding keeps and loses of each modality of a raster pair,
 * per pixel (`mmcl audit`).
 */
#ifndef MMCL_AUDIT_H
#define MMCL_AUDIT_H

#include <stddef.h>

#include "mmcl/context.h"
#include "mmcl/export.h"
#include "mmcl/options.h"

MMCL_BEGIN_DECLS

/**
 * Writes the information-loss maps of the embedding raster @p embedding
 * (k bands, on any CRS and grid: put on the optical grid, de-quantized as
 * DEQUANTIZE says, EMBEDDING_BANDS selecting its bands) on the pair
 * (@p optical, @p sar): the bands of mmcl_infoloss(), per modality m,
 * with the embedding h in place of a model's aligned embedding h_m:
 *   infoloss_m = ||c_m - D_m h||^2 / B_m, unimodal_m (the top-k PCA of the
 *   modality's centre-pixel bands), excess_m, nonredundancy_m (with
 *   NON_REDUNDANCY), noise_floor_m, structured_loss_m, structured_excess_m,
 * where c_m are the standardized centre-pixel bands. The decoders are
 * ridge regressions fitted on SAMPLES pixels where the optical, the SAR
 * and the embedding are valid; their ridge penalty is chosen by
 * cross-validation over BLOCKS x BLOCKS spatial blocks of the optical
 * grid (each block predicted by the decoder fitted on the others), and
 * the maps use the decoders fitted on the whole sample with that penalty.
 * Every band is NaN where the embedding is invalid. The JSON report (and
 * @p report_json) holds per modality the cross-validated R^2 of the
 * embedding and of PCA_k, overall and per band, the loss fraction
 * (R2_unimodal - R2_aligned) / R2_unimodal, the maps' figures as
 * mmcl_infoloss() gives them, k, the de-quantization, the samples and the
 * folds; the map's MMCL metadata holds PRODUCT=audit and the figures.
 * Outputs as mmcl_infoloss(): the map and the report are moved into place
 * together, or neither; OVERWRITE replaces only an earlier audit map and
 * report, never an input.
 * With LAZY=YES, @p out is the lazy descriptor of the map instead
 * (include/mmcl/product.h, "product": "audit"): the decoders are fitted as
 * above and the descriptor holds them, so that GDAL's MMCL driver computes
 * the maps when they are read, level 0 equal to the written map; FORMAT,
 * CO and REPORT do not apply to it and are refused, and @p report_json is
 * left NULL.
 *
 * @param embedding   The embedding raster. Not NULL.
 * @param report_json Receives the report (free with mmcl_free()); may be
 *                    NULL. Set to NULL on error.
 * @return MMCL_OK or an error (message in mmcl_context_errmsg(ctx)), with
 *         no output left behind: an embedding raster that is not a
 *         raster, does not overlap the optical raster, or has no valid
 *         value where the pair is valid; a bad option.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_audit(mmcl_context *ctx, const char *embedding,
                                const char *const *optical, size_t n_optical,
                                const char *const *sar, size_t n_sar,
                                const char *out, const mmcl_options *opts,
                                char **report_json);

MMCL_END_DECLS

#endif /* MMCL_AUDIT_H */
