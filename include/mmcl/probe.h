/* SPDX-License-Identifier: MIT */
/*
 * Linear probes of a trained model on a labelled raster pair (design
 * section 3.6, `mmcl probe`): how well a linear model recovers a label
 * (land-cover classes or a continuous target) from each representation,
 * cross-validated over spatial blocks, and the sigma-informativeness gap of
 * each modality (the probe's error on the aligned embedding minus its error
 * on the raw modality).
 */
#ifndef MMCL_PROBE_H
#define MMCL_PROBE_H

#include <stddef.h>

#include "mmcl/context.h"
#include "mmcl/export.h"
#include "mmcl/model.h"
#include "mmcl/options.h"

MMCL_BEGIN_DECLS

/**
 * Probes @p model on the pair (@p optical, @p sar) against the label raster
 * @p labels.
 *
 * Samples: SAMPLES pixels drawn uniformly (seeded by SEED) among the pixels
 * whose P x P patch is valid in both modalities and whose label is valid
 * (SAMPLES=0: every such pixel). A label is invalid where it is NaN, masked,
 * equal to LABEL_NODATA (default: the band's nodata value; for classes
 * without one, -1) and, for classes, negative. A label raster on another
 * grid (size, geotransform or CRS) is warped onto the optical grid with
 * nearest neighbour on the fly (a note goes to the log); one that does not
 * overlap the optical raster is an error.
 *
 * Representations (per sample, "dim" in the report):
 *   raw_optical, raw_sar   the patch vectors x1, x2 standardized with the
 *                          model's statistics (B*P*P values);
 *   aligned_optical, aligned_sar
 *                          h1 = f1(x1), h2 = f2(x2); for shared-private
 *                          models only the aligned (shared) part, so that the
 *                          gap measures what alignment keeps;
 *   joint                  as `mmcl embed --modality joint`: the mean of h1
 *                          and h2, or for shared-private models
 *                          [mean of the shared parts | private 1 | private 2];
 *   full                   shared-private models only: [h1 | h2] with both
 *                          shared and both private parts.
 *
 * Probe: ridge regression with an unpenalised intercept on features
 * standardized with the training fold's mean and (population) standard
 * deviation, penalty RIDGE * I on the standardized covariance. TASK=classes:
 * one-vs-rest on one-hot targets of the distinct label values, prediction
 * by argmax, figure = accuracy; TASK=regression: figure = R2 = 1 - SSE/SST
 * over the pooled held-out predictions (SST about the mean of all samples).
 * Cross-validation: the optical grid is cut into BLOCKS x BLOCKS spatial
 * blocks (pixel (x, y) is in block (x*BLOCKS/width, y*BLOCKS/height),
 * integer division); each non-empty block is held out once and predicted
 * by the probe fitted on all other blocks.
 *
 * The report is a JSON object: "task", "blocks", "folds", "samples",
 * "valid_labelled_pixels", "classes" (the label values, classes only),
 * "chance" (largest class share, classes only), "representations" (each
 * {"dim", "accuracy" or "r2", "error"}), "gap" ({"optical", "sar"}:
 * error(aligned_m) - error(raw_m), error = 1 - accuracy or 1 - R2),
 * "model_hash", "objective", "k", "patch", "ridge", "seed", "label_nodata"
 * and "label_warped".
 *
 * @param model       A model from mmcl_train() or mmcl_model_load();
 *                    borrowed. Not NULL.
 * @param optical     @p n_optical optical paths, as for mmcl_train().
 * @param sar         @p n_sar SAR paths, as for mmcl_train() (aligned on
 *                    the fly with the pair options recorded in the model).
 * @param labels      Label raster path (band LABEL_BAND is used). Not NULL.
 * @param opts        Options built for "probe" (TASK, BLOCKS, SAMPLES, SEED,
 *                    LABEL_NODATA, LABEL_BAND, RIDGE, TILE, THREADS); NULL
 *                    for defaults.
 * @param report_json Receives the report (must be freed with mmcl_free());
 *                    set to NULL on error. Not NULL.
 * @return MMCL_OK or an error with its message in mmcl_context_errmsg(ctx):
 *         bands that do not match the model, no valid labelled pixel, fewer
 *         than two classes, every sample in one block, a label raster that
 *         does not overlap, cancellation.
 * Thread-safety: @p model may be shared; use @p ctx from one thread. The
 * result does not depend on THREADS or TILE. Memory grows with the number
 * of samples (their patch vectors are kept).
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_probe(mmcl_context *ctx, const mmcl_model *model,
                                const char *const *optical, size_t n_optical,
                                const char *const *sar, size_t n_sar,
                                const char *labels, const mmcl_options *opts,
                                char **report_json);

MMCL_END_DECLS

#endif /* MMCL_PROBE_H */
