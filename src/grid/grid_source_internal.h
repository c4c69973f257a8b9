/* SPDX-License-Identifier: MIT */
/*
 * Private: a raster put on a reference grid (the optical grid) and read
 * window by window.
 *
 * A grid source is any raster, on any CRS and grid, read on the reference
 * grid with a chosen resampling: as it is when it lies on the grid, else
 * warped window by window with GDAL's warper. The pixel transform is
 * interpolated on a lattice fixed to the whole grid (or exact when the
 * error threshold is 0), and the warper's scales are those of the whole
 * grid, so that a pixel's value does not depend on the window it was
 * computed in: tiled output is seamless. The SAR of a pair and the label
 * raster of a probe are grid sources. A shift (a misregistration to
 * correct) is added to the grid position before the transform, evaluated
 * at whole-grid positions too, so the source is still resampled once.
 *
 * A source is immutable once opened and may be shared by threads; each
 * thread reads through its own mmcl__grid_reader (own GDAL handles).
 */
#ifndef MMCL_GRID_SOURCE_INTERNAL_H
#define MMCL_GRID_SOURCE_INTERNAL_H

#include <stdint.h>

#include <gdal.h>

#include "mmcl/context.h"
#include "mmcl/error.h"

/* The reference grid. */
typedef struct mmcl__grid {
    int width, height;
    double gt[6];
    const char *wkt;
    const char *label; /* "optical 'opt.tif'": names it in footprints */
} mmcl__grid;

/* Which pixels of a source are invalid. */
typedef enum mmcl__grid_validity {
    /* Those at its nodata value (when it has one) and NaN: NaN in the
     * output. With near, bilinear and cubic, a grid pixel is valid only
     * when every source value the kernel uses is (design section 3.1):
     * the nodata value read as NaN, NaN propagates through GDAL's
     * unmasked kernel. The other resamplings (average, mode, ...) leave
     * the invalid values out (GDAL's masked kernels). */
    MMCL__GRID_NODATA,
    /* Those its mask band marks (a real mask, not a nodata mask; when
     * warped, GDAL's per-dataset mask): NaN in the output. Other values,
     * its nodata value included, are read as they are, for the caller to
     * judge. */
    MMCL__GRID_MASK
} mmcl__grid_validity;

/* How a source is placed on the grid. */
typedef enum mmcl__grid_place {
    /* Read as it is when the transform puts its pixels onto the grid's
     * (the same size, to 1e-9 pixel): every resampling then gives the
     * pixel itself. Else warped. */
    MMCL__GRID_AUTO,
    /* On the grid, as the caller has found it: read as it is. */
    MMCL__GRID_SAME,
    /* Warped. */
    MMCL__GRID_WARP
} mmcl__grid_place;

/* What a grid source reads, and how. */
typedef struct mmcl__grid_raster {
    const char *name;  /* what each reader opens: a path, a VRT's XML... */
    const char *role;  /* "SAR", "label": names it in messages */
    const char *label; /* "SAR 'sar.tif'": names it in footprints */
    /* Its CRS, geotransform and size (not read with MMCL__GRID_SAME). */
    const char *wkt;
    double gt[6];
    int width, height;
    int band, n_bands; /* the bands read: band .. band + n_bands - 1 */
    /* Or, when not NULL, these n_bands bands (1-based), in this order. */
    const int *band_list;
    /* GDT_Float32 or GDT_Float64: the resampling's working type and the
     * type of the output. */
    GDALDataType type;
    mmcl__grid_validity validity;
    int has_nodata; /* MMCL__GRID_NODATA: its nodata value, if any */
    double nodata;
    mmcl__grid_place place;
    /* A GDAL resampling name, or "auto": "average" when the source is
     * finer than the grid at the centre of their overlap, else
     * "bilinear". */
    const char *resampling;
    double error_threshold; /* of the lattice, in source pixels; 0: exact */
    /* The start of the message that refuses a source with no pixel in
     * common with the grid ("the SAR footprint"), and those of a failed
     * read and a failed warp, followed by " X,Y WxH: <GDAL's message>". */
    const char *no_overlap;
    const char *read_failed;
    const char *warp_failed;
    /* A misregistration to correct (shift_internal.h), or NULL: grid pixel
     * (x, y) is read from where the transform puts (x + dx, y + dy). A
     * shift forces the warp (MMCL__GRID_AUTO or MMCL__GRID_WARP; not for
     * MMCL__GRID_SAME). The source keeps its own copy. */
    const struct mmcl__shift *shift;
} mmcl__grid_raster;

typedef struct mmcl__grid_source mmcl__grid_source;
typedef struct mmcl__grid_reader mmcl__grid_reader;

/* Opens @p raster on @p grid: the transform between them, the overlap
 * check, the resampling, the warper's scales and the lattice. */
mmcl_status mmcl__grid_source_open(mmcl_context *ctx,
                                   const mmcl__grid_raster *raster,
                                   const mmcl__grid *grid,
                                   mmcl__grid_source **out);
void mmcl__grid_source_close(mmcl__grid_source *src);

/* The resampling used ("bilinear", "average", ...). */
const char *mmcl__grid_source_resampling(const mmcl__grid_source *src);
/* Whether the source is read as it is (it lies on the grid). */
int mmcl__grid_source_on_grid(const mmcl__grid_source *src);
/* Transform step in pixels of the interpolation lattice (0 = exact). */
int mmcl__grid_source_lattice_step(const mmcl__grid_source *src);
/* Whether the source is warped with the unmasked kernel, NaN propagating
 * (MMCL__GRID_NODATA). */
int mmcl__grid_source_nan_kernel(const mmcl__grid_source *src);
/* Source pixel positions of @p n grid positions (x, y), in place, through
 * the interpolation lattice (which must exist: lattice step > 0) as the
 * warper gets them, row by row, or with @p one_by_one each point on its
 * own; ok[i] is 0 where the transform failed. For tests: both give a
 * point the same position to rounding, and the first the same bits
 * whichever points share the call. */
void mmcl__grid_source_lattice_eval(const mmcl__grid_source *src, int n,
                                    double *x, double *y, int *ok,
                                    int one_by_one);
/* Source pixels per grid pixel at the centre of the grid (the area ratio
 * of the transform there), or 0 when unknown (read as it is, or the
 * centre does not transform). */
double mmcl__grid_source_centre_ratio(const mmcl__grid_source *src);

mmcl__grid_reader *mmcl__grid_reader_create(mmcl_context *ctx,
                                            const mmcl__grid_source *src);
void mmcl__grid_reader_destroy(mmcl__grid_reader *r);

/*
 * Reads the window [x, x+w) x [y, y+h) of the grid, which must lie in it,
 * into @p out (n_bands, h, w) of the source's type (float or double);
 * invalid pixels, and those outside the source, are NaN. @p valid (h, w),
 * when not NULL, is 1 where every band is valid (not NaN), else 0.
 */
mmcl_status mmcl__grid_reader_read(mmcl_context *ctx, mmcl__grid_reader *r,
                                   int x, int y, int w, int h, void *out,
                                   uint8_t *valid);

#endif /* MMCL_GRID_SOURCE_INTERNAL_H */
