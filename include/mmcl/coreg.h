/* SPDX-License-Identifier: MIT */
/*
 * Co-registration check: the residual shift of the SAR against the
 * optical raster, block by block (`mmcl coreg`, design section 4.5).
 */
#ifndef MMCL_COREG_H
#define MMCL_COREG_H

#include <stddef.h>

#include "mmcl/context.h"
#include "mmcl/export.h"
#include "mmcl/options.h"

MMCL_BEGIN_DECLS

/**
 * Measures, on a grid of BLOCK x BLOCK pixel blocks of the optical grid,
 * the sub-pixel shift of the SAR (put on the optical grid as mmcl_align()
 * does) that maximises the first canonical correlation between the
 * optical bands and the SAR channels over the block, searched over
 * integer shifts of up to SEARCH pixels and refined by a quadratic fit
 * (docs/coreg.md). The shift (dx, dy) is in optical pixels, x to the
 * right (east), y down: a ground feature at optical pixel (x, y) shows in
 * the SAR at (x + dx, y + dy), so the corrected SAR at (x, y) is the SAR
 * sampled at (x + dx, y + dy).
 *
 * @p out is a float32 raster with one pixel per block: the optical origin
 * and CRS, pixel size BLOCK times the optical one (the last row and column
 * may cover partial blocks); bands "dx", "dy" (optical pixels), "dx_m"
 * (CRS units, east positive), "dy_m" (north positive), "confidence"
 * (0..1, 0: no usable estimate); NaN where a block has no estimate (too
 * few valid pixels, uniform, or the peak at the edge of the search
 * range). Metadata (default domain): MMCL_PRODUCT=coreg,
 * MMCL_COREG_BLOCK, and the global shift MMCL_COREG_DX, MMCL_COREG_DY
 * ("nan" when no block is confident).
 *
 * The global shift is the confidence-weighted median of the blocks with a
 * confidence of at least MIN_CONFIDENCE, its spread their weighted median
 * absolute deviation; both, the share of confident blocks, the block size
 * and the search range make the JSON report (@p report_json and, with
 * option REPORT, a file written with the raster, both or neither).
 *
 * @param optical  @p n_optical optical paths (one dataset, or single-band
 *                 files stacked on the finest grid among them). Not NULL.
 * @param sar      @p n_sar SAR paths (any CRS and resolution). Not NULL.
 * @param out      Output raster; an existing file is kept unless
 *                 OVERWRITE, and then only a coreg raster is replaced.
 * @param opts     Options built for "coreg"; NULL for defaults.
 * @param report_json Receives the report (free with mmcl_free()); may be
 *                 NULL. Set to NULL on error.
 * @return MMCL_OK, or an error with the reason in mmcl_context_errmsg(ctx)
 *         (a block larger than the raster, no overlap, ...); on error no
 *         output is left behind. Inputs are never modified. The result
 *         does not depend on THREADS.
 * Thread-safety: reentrant; one context per thread.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_coreg(mmcl_context *ctx, const char *const *optical,
                                size_t n_optical, const char *const *sar,
                                size_t n_sar, const char *out,
                                const mmcl_options *opts, char **report_json);

MMCL_END_DECLS

#endif /* MMCL_COREG_H */
