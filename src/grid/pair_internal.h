/* SPDX-License-Identifier: MIT */
/*
 * Private: a co-registered optical / SAR raster pair.
 *
 * The optical raster (one dataset, or several files stacked on the finest
 * grid among them) defines the grid. The SAR, on any CRS and resolution, is
 * optionally preprocessed on its own grid (dB <-> linear, Lee filter) and
 * read on the optical grid as a grid source (grid_source_internal.h):
 * warped window by window, seamlessly.
 *
 * A pair is immutable once opened and may be shared by threads; each
 * thread reads through its own mmcl__pair_reader (own GDAL handles).
 */
#ifndef MMCL_PAIR_INTERNAL_H
#define MMCL_PAIR_INTERNAL_H

#include <stdint.h>

#include <gdal.h>

#include "mmcl/options.h"

#include "grid_source_internal.h"

typedef struct mmcl__pair mmcl__pair;
typedef struct mmcl__pair_reader mmcl__pair_reader;

/* Opens the pair with the pair options of @p opts (RESAMPLING,
 * SAR_TRANSFORM, SPECKLE, STACK_RESAMPLING, ERROR_THRESHOLD, and the
 * misregistration correction SAR_SHIFT or SAR_SHIFT_FIELD with
 * SHIFT_MIN_CONFIDENCE: shift_internal.h). The SAR is
 * one dataset or @p n_sar files on one grid, stacked in order. A file
 * given twice, or as both optical and SAR, and complex rasters are
 * refused. */
mmcl_status mmcl__pair_open(mmcl_context *ctx, const char *const *optical,
                            size_t n_optical, const char *const *sar,
                            size_t n_sar, const mmcl_options *opts,
                            mmcl__pair **out);
void mmcl__pair_close(mmcl__pair *pair);

/*
 * A pair on a coarser grid over the same extent as @p base: its optical
 * averaged (GDAL's "average" resampling, through a VRT) onto @p width x
 * @p height pixels, and the same SAR (preprocessed copy included) warped
 * onto that grid with the pair options of @p base. For the overviews of
 * the lazy products: its values approximate the full resolution's. It
 * borrows the SAR copy of @p base, which must outlive it.
 */
mmcl_status mmcl__pair_open_decimated(mmcl_context *ctx,
                                      const mmcl__pair *base, int width,
                                      int height, mmcl__pair **out);

/* The optical grid, for another grid source (@p g borrows the pair's
 * strings). */
void mmcl__pair_grid(const mmcl__pair *pair, mmcl__grid *g);
int mmcl__pair_width(const mmcl__pair *pair);
int mmcl__pair_height(const mmcl__pair *pair);
void mmcl__pair_geotransform(const mmcl__pair *pair, double gt[6]);
const char *mmcl__pair_srs_wkt(const mmcl__pair *pair);
int mmcl__pair_optical_bands(const mmcl__pair *pair);
int mmcl__pair_sar_bands(const mmcl__pair *pair);
const char *const *mmcl__pair_optical_band_names(const mmcl__pair *pair);
const char *const *mmcl__pair_sar_band_names(const mmcl__pair *pair);
/* The inputs for messages: "optical 'opt.tif'", "SAR 'sar.tif'", or the
 * first and last files when stacked. */
const char *mmcl__pair_optical_label(const mmcl__pair *pair);
const char *mmcl__pair_sar_label(const mmcl__pair *pair);
/* Resampling actually used ("bilinear", "average", ...). */
const char *mmcl__pair_resampling(const mmcl__pair *pair);
/* Transform step in pixels of the interpolation lattice (0 = exact). */
int mmcl__pair_lattice_step(const mmcl__pair *pair);
/* The misregistration corrected (shift_internal.h), or NULL. */
const struct mmcl__shift *mmcl__pair_shift(const mmcl__pair *pair);

mmcl__pair_reader *mmcl__pair_reader_create(mmcl_context *ctx,
                                            const mmcl__pair *pair);
void mmcl__pair_reader_destroy(mmcl__pair_reader *r);

/*
 * Reads the window [x, x+w) x [y, y+h) of the optical grid, widened by
 * @p halo pixels on each side; parts outside the grid are reflect-padded
 * (numpy's 'reflect': -1 -> 1). Outputs, each of W = w+2*halo by
 * H = h+2*halo pixels, band-sequential:
 *   optical (n_optical, H, W), sar (n_sar, H, W), valid (H, W).
 * Any may be NULL when not needed. valid[i] has bit MMCL__VALID_OPTICAL
 * when every optical band is valid there (not nodata, not NaN, not
 * masked), and bit MMCL__VALID_SAR when every SAR band is (also: inside the
 * SAR footprint). Invalid values are NaN in the float outputs.
 */
enum {
    MMCL__VALID_OPTICAL = 1,
    MMCL__VALID_SAR = 2,
    MMCL__VALID_BOTH = 3
};

mmcl_status mmcl__pair_read(mmcl_context *ctx, mmcl__pair_reader *r, int x,
                            int y, int w, int h, int halo, float *optical,
                            float *sar, uint8_t *valid);

#endif /* MMCL_PAIR_INTERNAL_H */
