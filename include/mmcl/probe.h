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
 *                          shared and both private parts;
 *   NAME                   one per EMBEDDING value ("NAME=FILE", or "FILE"
 *                          named by its stem: the file name without its
 *                          extension, "x.mmcl.json" giving "x"): the k
 *                          values of that embedding raster at the pixel
 *                          (EMBEDDING_BANDS of them, default every band),
 *                          read on the optical grid (warped when on
 *                          another grid) and de-quantized as DEQUANTIZE
 *                          says before any resampling. A downloaded
 *                          product (Google's Satellite Embedding, ...) is
 *                          so probed on the same samples and folds as the
 *                          model. A name may hold no comma, quote or '='
 *                          and may not be one of the names above.
 *
 * With embedding rasters, a pixel is a sample only where each of them is
 * valid too (not nodata, NaN or masked), so that every representation is
 * probed on the same pixels.
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
 * Figures, from the pooled held-out predictions (as scikit-learn's
 * metrics, zero_division=0). Classes: "confusion" (q x q counts, rows the
 * true class, columns the predicted one, in the order of "classes");
 * "per_class" [{"class", "support", "precision" = TP / (TP + FP), 0 when
 * the class is never predicted, "recall" = TP / support, "f1" =
 * 2TP / (2TP + FP + FN), "iou" = TP / (TP + FP + FN)}]; "accuracy",
 * "balanced_accuracy" (mean recall), "macro_precision", "macro_recall",
 * "macro_f1" and "mean_iou" (means over the classes). Regression: "r2" =
 * 1 - SSE/SST, "rmse" = sqrt(SSE / N), "mae" = mean |error|.
 *
 * The report is a JSON object: "task", "blocks", "folds", "samples",
 * "valid_labelled_pixels", "labelled_pixels", "classes" (the label values,
 * classes only), "class_counts" and "chance" (largest class share, classes
 * only), "baseline" (classes: {"method": "majority_class", "class", and
 * the class figures of predicting it everywhere}; regression: {"method":
 * "mean", "value", "r2" (0), "rmse", "mae"} of predicting the samples'
 * mean), "representations" (each {"dim", "accuracy" or "r2", "error", and
 * the figures above}), "gap" ({"optical", "sar"}: error(aligned_m) -
 * error(raw_m), error = 1 - accuracy or 1 - R2), "model_hash",
 * "objective", "k", "patch", "ridge", "seed", "label_nodata",
 * "label_band", "label_warped", with embedding rasters "embeddings" (per
 * name {"file", "bands" (1-based numbers), "band_names", "dequantize",
 * "warped", "resampling"}), and with CSV or MAP "outputs" ({"map",
 * "map_representation", "csv"}).
 *
 * Outputs (checked before any work, written complete and put in place
 * together, or not at all; an existing one is replaced only with
 * OVERWRITE=YES and only when it is of the same kind):
 *   CSV   the figures, one row per representation (then the baseline,
 *         "majority_baseline" or "mean_baseline", dim 0) and class.
 *         Classes: representation, dim, class, support, precision, recall,
 *         f1, iou, accuracy, balanced_accuracy, macro_f1, mean_iou, then
 *         predicted_<class> for each class (the class's row of the
 *         confusion matrix). Regression: representation, dim, samples,
 *         r2, rmse, mae.
 *   MAP   a raster on the optical grid (FORMAT, CO): the prediction of
 *         the MAP_REPRESENTATION probe (default joint; a name above, an
 *         embedding raster's included) at every pixel
 *         whose label and P x P patch in both modalities are valid, by
 *         the probe fitted without the pixel's spatial block; a sampled
 *         pixel holds exactly the held-out prediction the figures count
 *         (so with SAMPLES=0 the figures are those of the map). Classes:
 *         Int32 class values, nodata -1; regression: Float32, nodata NaN.
 *         MMCL metadata PRODUCT=probe_map, the probe's settings and the
 *         mapped representation's figures (and EMBEDDING, its file, when
 *         it is an embedding raster's).
 *
 * @param model       A model from mmcl_train() or mmcl_model_load();
 *                    borrowed. Not NULL.
 * @param optical     @p n_optical optical paths, as for mmcl_train().
 * @param sar         @p n_sar SAR paths, as for mmcl_train() (aligned on
 *                    the fly with the pair options recorded in the model).
 * @param labels      Label raster path (band LABEL_BAND is used). Not NULL.
 * @param opts        Options built for "probe" (TASK, BLOCKS, SAMPLES, SEED,
 *                    LABEL_NODATA, LABEL_BAND, RIDGE, CSV, MAP,
 *                    MAP_REPRESENTATION, EMBEDDING, DEQUANTIZE,
 *                    EMBEDDING_BANDS, FORMAT, CO, OVERWRITE, TILE,
 *                    THREADS); NULL for defaults.
 * @param report_json Receives the report (must be freed with mmcl_free());
 *                    set to NULL on error. Not NULL.
 * @return MMCL_OK or an error with its message in mmcl_context_errmsg(ctx):
 *         bands that do not match the model, no valid labelled pixel, fewer
 *         than two classes, every sample in one block, a label raster that
 *         does not overlap, an output refused (an input, an existing file
 *         without OVERWRITE, a folder that does not exist, ...),
 *         MAP_REPRESENTATION=full without a shared-private model or naming
 *         no representation, an embedding raster that is no raster, does
 *         not overlap the optical raster, lacks an EMBEDDING_BANDS band or
 *         does not fit its DEQUANTIZE, two representations of one name,
 *         cancellation.
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
