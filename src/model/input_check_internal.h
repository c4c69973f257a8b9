/* SPDX-License-Identifier: MIT */
/*
 * Private: the mistakes an analyst makes with the inputs of a model, caught
 * where they would otherwise give a meaningless result without a word:
 * the optical and the SAR swapped, bands in another order than the
 * model's, SAR in linear power given to a model trained on dB (or the
 * reverse), reflectance on another scale, and values far from anything
 * the model was trained on.
 *
 * What is unambiguous is an error. What may be legitimate (other band
 * names for the same bands, another season or sensor) is a warning on the
 * context's log and a note, a sentence that the caller puts into its
 * output's metadata. A model that lacks a field (band names, statistics:
 * older models) skips the checks that need it, silently.
 */
#ifndef MMCL_INPUT_CHECK_INTERNAL_H
#define MMCL_INPUT_CHECK_INTERNAL_H

#include <stddef.h>

#include "encoder_internal.h"
#include "pair_internal.h"

/*
 * Where a model meets a raster pair (embed, infoloss, probe, the lazy
 * products): the pair's band names and values against those the model
 * recorded at training time (metadata "band_names", "mean", "std" of each
 * modality, and "pair"."sar_transform"). The values are those of a sparse
 * sample of windows read through the pair (after the SAR transform and
 * speckle filter the model applies), not a pass over the rasters.
 * @p optical, @p n_optical, @p sar and @p n_sar name the inputs in
 * messages. Runs
 * before the band counts are checked, so that swapped inputs are called
 * swapped; with counts that differ otherwise it returns MMCL_OK and leaves
 * the count error to the caller. Notes are added to @p notes (a CSL of
 * sentences; CSLDestroy).
 */
mmcl_status mmcl__input_check_model(mmcl_context *ctx, const mmcl__encoder *enc,
                                    const char *metadata_json,
                                    const mmcl__pair *pair,
                                    const char *const *optical,
                                    size_t n_optical, const char *const *sar,
                                    size_t n_sar, char ***notes);

/*
 * In mmcl_train, before the sample is drawn: the band names of the pair
 * (an optical band named as a SAR polarisation, VV, VH, HH or HV, or SAR
 * bands all named as Sentinel-2 bands, B01..B12, B8A) say that the
 * optical and the SAR were swapped: an error.
 */
mmcl_status mmcl__input_check_train_names(mmcl_context *ctx,
                                          const mmcl__pair *pair,
                                          const char *const *optical,
                                          size_t n_optical,
                                          const char *const *sar,
                                          size_t n_sar);

/*
 * In mmcl_train, once the statistics of the valid area are known (per band
 * means and stds, @p B1 optical and @p B2 SAR): optical values that look
 * like SAR in dB (most bands a std or more below 0). Values alone are a warning
 * and a note (for the model's metadata), not an error: see input_check.c.
 */
void mmcl__input_check_train_values(mmcl_context *ctx, const double *mean1,
                                    const double *std1, int B1,
                                    const double *mean2, int B2,
                                    const char *const *optical,
                                    size_t n_optical, const char *const *sar,
                                    size_t n_sar, char ***notes);

#endif /* MMCL_INPUT_CHECK_INTERNAL_H */
