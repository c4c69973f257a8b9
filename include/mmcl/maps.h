/* SPDX-License-Identifier: MIT */
/*
 * Maps computed with a trained model on a raster pair (design sections 3.4
 * and 3.5): the embedding map (`mmcl embed`) and the per-modality
 * information-loss maps (`mmcl infoloss`).
 */
#ifndef MMCL_MAPS_H
#define MMCL_MAPS_H

#include <stddef.h>

#include "mmcl/context.h"
#include "mmcl/export.h"
#include "mmcl/model.h"
#include "mmcl/options.h"

MMCL_BEGIN_DECLS

/**
 * Writes the embedding map of @p model on the pair (@p optical, @p sar):
 * one float32 band per embedding dimension (emb_000, ...) on the optical
 * grid, NaN where any input value it is computed from is invalid (MODALITY
 * optical or sar: that modality's patch; joint: both patches; MASK=any:
 * both patches for every modality), with the model hash, objective, k,
 * patch, modality, mask and the model's training warnings
 * (MODEL_WARNING_n) in the MMCL metadata domain.
 * The SAR is aligned on the fly with the pair options recorded in the
 * model. The output does not depend on TILE or THREADS. Every band's
 * statistics (GDAL's STATISTICS_*) are stored with it, and its QGIS style
 * beside it, "<out without extension>.qml": the first three components
 * as red, green and blue.
 *
 * @param model   A model from mmcl_train() or mmcl_model_load(); borrowed.
 * @param optical @p n_optical optical paths, as for mmcl_train(). Not NULL.
 * @param sar     @p n_sar SAR paths, as for mmcl_train(). Not NULL.
 * @param opts    Options built for "embed" (MODALITY, MASK, PRECISION,
 *                FORMAT, CO, OVERWRITE, TILE, THREADS); NULL for defaults.
 *                PRECISION=bf16 (bfloat16 inputs and weights of the
 *                encoders, f32 sums) is refused (MMCL_ERR_UNSUPPORTED)
 *                where the CPU has no native bf16 products; the output's
 *                PRECISION metadata records it. The output
 *                is written as mmcl_align() writes its own: OVERWRITE
 *                replaces only an embedding map, never an input (the
 *                model's file included).
 * @return MMCL_OK or an error (message in mmcl_context_errmsg(ctx)), with
 *         no output left behind. Bands or patch size that do not match the
 *         model are errors.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_embed(mmcl_context *ctx, const mmcl_model *model,
                                const char *const *optical, size_t n_optical,
                                const char *const *sar, size_t n_sar,
                                const char *out, const mmcl_options *opts);

/**
 * Writes the information-loss maps of @p model on the pair: for each
 * modality m (optical, then SAR) the bands
 *   infoloss_m   = ||c_m - D_m h_m||^2 / B_m
 *   unimodal_m   = the same with the top-K PCA of x_m in place of h_m
 *   excess_m     = infoloss_m - unimodal_m
 *   nonredundancy_m (with NON_REDUNDANCY) = ||c_m - E[c_m | x_other]||^2 / B_m
 * where c_m are the standardized centre-pixel bands and the linear decoders
 * were fitted at training time. Units: standardized band variance (0 =
 * fully kept). A modality's bands are NaN where its patch is invalid,
 * nonredundancy_m where either patch is, and every band where either patch
 * is with MASK=any. The global figures (per modality: R^2 kept by h_m and
 * by PCA_K, and the loss fraction), the mask and the model's training
 * warnings go into the MMCL metadata and, when asked, into a JSON report
 * (option REPORT; "mask", "warnings": [{"code", "message"}]). The map and the report are moved
 * into place together, or neither is; the report is never the map, an
 * input or the model's file, and OVERWRITE replaces only an earlier
 * information-loss map and report. Every band's statistics are stored
 * with the map, and its QGIS style beside it ("<out without
 * extension>.qml"): structured_excess_optical in a diverging ramp centred
 * on 0. PRECISION is as for mmcl_embed() (the decoders stay f32); the
 * report's "precision" and the PRECISION metadata record it.
 *
 * @param report_json Receives the global figures as a JSON string (free
 *                    with mmcl_free()); may be NULL. Set to NULL on error.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_infoloss(mmcl_context *ctx, const mmcl_model *model,
                                   const char *const *optical, size_t n_optical,
                                   const char *const *sar, size_t n_sar,
                                   const char *out, const mmcl_options *opts,
                                   char **report_json);

MMCL_END_DECLS

#endif /* MMCL_MAPS_H */
