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
 * Writes a synthetic scene into the folder @p outdir (created if missing,
 * one level): the linear-Gaussian model above on a SIZE x SIZE grid of UTM
 * 31N (EPSG:32631, upper-left corner 500000 E, 4800000 N, PIXEL_SIZE m),
 * with land-cover classes and the specific factors switched on in known
 * discs. Files:
 *  - optical.tif: float32, OPTICAL_BANDS bands "B1".."Bn", reflectance-like
 *    (offset + scale * x1), NaN in a NODATA_FRAME-pixel frame;
 *  - sar.tif: float32, SAR_BANDS bands "VV", "VH", "C3"..; dB-like
 *    (offset + scale * x2); NaN in SAR_HOLES seeded discs; on the optical
 *    grid, or (SAR_SRS and/or SAR_RES) warped bilinearly to that CRS and
 *    pixel size;
 *  - labels.tif: byte, classes 0..CLASSES-1, 255 in the nodata frame;
 *  - truth.tif: float32, the standardized factors "shared_<i>",
 *    "optical_specific_<i>", "sar_specific_<i>" (0 outside their regions),
 *    then "optical_specific_energy" = ||A1s z1||^2 / OPTICAL_BANDS and
 *    "sar_specific_energy" = ||A2s z2||^2 / SAR_BANDS per pixel;
 *  - shift_truth.tif (only with SAR_SHIFT or SAR_SHIFT_FIELD): float32,
 *    bands "dx", "dy" on the optical grid: the SAR is misregistered so that
 *    a ground feature at optical pixel (x, y) appears in it at
 *    (x + dx, y + dy), optical pixels (the convention of mmcl_coreg()); its
 *    geotransform stays the honest one, only the content is displaced;
 *  - synth.json: every generating parameter (mixing matrices, scaling,
 *    regions, class sites, standardization, truth band numbers, the
 *    shift field).
 * GeoTIFFs are tiled and DEFLATE-compressed unless CO says otherwise, with
 * PRODUCT, PRESET and SEED in their MMCL metadata domain.
 *
 * The files are identical for the same options (whatever THREADS), on the
 * same build and machine.
 *
 * @param ctx    Context for the error message. Not NULL.
 * @param outdir Folder. Not NULL. If any of the five files exists and
 *               OVERWRITE is not set, fails with MMCL_ERR_EXISTS before
 *               writing anything; with OVERWRITE, only files of an
 *               earlier mmcl_synth() are replaced. Other files in it are
 *               never touched.
 * @param opts   Options built for "synth" (mmcl_option_defs("synth", ..));
 *               NULL for defaults. Its progress callback, if any, is called
 *               from the calling thread; returning 0 cancels.
 * @return MMCL_OK or an error (message in mmcl_context_errmsg(ctx)):
 *         MMCL_ERR_INVALID_ARG (bad SAR_SRS / SAR_RES, frame too wide),
 *         MMCL_ERR_EXISTS, MMCL_ERR_IO, MMCL_ERR_CANCELLED, ... On error
 *         none of the five files is left behind (each is written in a
 *         private folder beside it and the five are moved into place
 *         together at the end; a folder made by the call is removed
 *         again). With OVERWRITE, when moving one fails, the files
 *         already replaced are put back as they were.
 * Thread-safety: reentrant; one context per thread. Sets OpenBLAS to one
 * thread for the duration of the call (process-wide; restored after).
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_synth(mmcl_context *ctx, const char *outdir,
                                const mmcl_options *opts);

MMCL_END_DECLS

#endif /* MMCL_SYNTH_H */
