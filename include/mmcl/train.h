/* SPDX-License-Identifier: MIT */
/*
 * Learning the two encoders (`mmcl train`, design section 3.4): sampling,
 * normalization, the cca / clip / pca / shared-private objectives, and the
 * linear decoders the information-loss maps need.
 */
#ifndef MMCL_TRAIN_H
#define MMCL_TRAIN_H

#include <stddef.h>

#include "mmcl/context.h"
#include "mmcl/export.h"
#include "mmcl/model.h"
#include "mmcl/options.h"

MMCL_BEGIN_DECLS

/**
 * Trains a model on the co-registered pair (@p optical, @p sar): draws
 * SAMPLES valid PATCH x PATCH patch pairs uniformly over the valid area
 * (seeded), standardizes them with per-band statistics of the whole valid
 * area, fits the OBJECTIVE, and fits the decoders of the information-loss
 * maps on the same sample.
 *
 * @param optical    @p n_optical optical paths (one dataset, or single-band
 *                   files stacked on the finest grid). Not NULL.
 * @param sar        @p n_sar SAR paths, any CRS and resolution (aligned on
 *                   the fly): one dataset, or several single-band files on
 *                   one grid (VV.tif, VH.tif), stacked in the order given;
 *                   the band names are the files' band descriptions, else
 *                   their names. No file may be given twice, nor as both
 *                   optical and SAR (compared by device and inode); complex
 *                   rasters are refused. Not NULL.
 * @param opts       Options built for "train"; NULL for defaults. Its log
 *                   callback (on @p ctx) receives the loss per epoch.
 * @param out_model  Receives a new model the caller owns (free with
 *                   mmcl_model_destroy(), save with mmcl_model_save()); NULL
 *                   on failure.
 * @return MMCL_OK or an error, with the reason in mmcl_context_errmsg(ctx).
 *         A model never holds NaN: non-finite results are errors.
 * Thread-safety: reentrant; one context per thread.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_train(mmcl_context *ctx, const char *const *optical,
                                size_t n_optical, const char *const *sar,
                                size_t n_sar, const mmcl_options *opts,
                                mmcl_model **out_model);

MMCL_END_DECLS

#endif /* MMCL_TRAIN_H */
