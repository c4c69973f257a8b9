/* SPDX-License-Identifier: MIT */
/*
 * Synthetic scenes from the linear-Gaussian generative model
 * (`mmcl synth`, design section 3.7):
 *   x1 = A1c zc + A1s z1 + e1,   x2 = A2c zc + A2s z2 + e2.
 */
#ifndef MMCL_SYNTH_H
#define MMCL_SYNTH_H

#include "mmcl/context.h"
#include "mmcl/export.h"
#include "mmcl/options.h"

MMCL_BEGIN_DECLS

/**
 * Writes a synthetic scene into the folder @p outdir (created if missing):
 * optical.tif, sar.tif, labels.tif, truth.tif (the latent factors and the
 * per-pixel energy of the modality-specific factors) and synth.json (the
 * generating parameters). Deterministic for a seed.
 *
 * @param outdir Folder; existing files in it are kept unless the OVERWRITE
 *               option is set. Not NULL.
 * @param opts   Options built for "synth"; NULL for defaults.
 * @return MMCL_OK or an error (message in mmcl_context_errmsg(ctx)); on
 *         error none of the files is left behind.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_synth(mmcl_context *ctx, const char *outdir,
                                const mmcl_options *opts);

MMCL_END_DECLS

#endif /* MMCL_SYNTH_H */
