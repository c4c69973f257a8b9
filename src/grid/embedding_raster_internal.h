/* SPDX-License-Identifier: MIT */
/*
 * Private: an embedding raster (k bands of an embedding per pixel, made by
 * `mmcl embed` or downloaded: Google's Satellite Embedding dataset, ...)
 * put on the optical grid and read window by window as float values.
 *
 * The raster may lie on any CRS and grid: it is a grid source (read as it
 * is when it lies on the grid, else warped). Its integer-quantized values
 * are de-quantized before any resampling mixes them (see the
 * de-quantization modes below), so a warped window holds resampled
 * embedding values, never resampled codes. Invalid pixels (nodata, NaN,
 * masked, outside the raster) are NaN.
 *
 * An embedding raster is immutable once opened and may be shared by
 * threads; each thread reads through its own mmcl__embedding_reader.
 */
#ifndef MMCL_EMBEDDING_RASTER_INTERNAL_H
#define MMCL_EMBEDDING_RASTER_INTERNAL_H

#include <stdint.h>

#include "grid_source_internal.h"

/* How the raster's values become embedding values. */
typedef enum mmcl__dequantize {
    /* AUTO: ALPHAEARTH for an 8-bit signed raster of 64 bands named A00 ..
     * A63 or with nodata -128, and no scale or offset; LINEAR when a band
     * has a scale or an offset; else NONE. */
    MMCL__DEQ_AUTO = 0,
    MMCL__DEQ_NONE,      /* the values as they are */
    MMCL__DEQ_LINEAR,    /* value * scale + offset, each band's own */
    /* The Satellite Embedding dataset (AlphaEarth Foundations): int8
     * codes q, -128 masked, value = sign(q) (|q| / 127.5)^2. */
    MMCL__DEQ_ALPHAEARTH
} mmcl__dequantize;

typedef struct mmcl__embedding_options {
    /* "auto", "none", "linear" or "alphaearth"; NULL = "auto". */
    const char *dequantize;
    /* The bands used, in order: a comma-separated list of band numbers
     * (1-based), ranges "3-8" and band descriptions; NULL = every band. */
    const char *bands;
    /* A GDAL resampling name or "auto" (average when the raster is finer
     * than the grid, else bilinear); NULL = "auto". */
    const char *resampling;
    /* Of the transform's lattice, in source pixels (0 = exact). */
    double error_threshold;
} mmcl__embedding_options;

/* The options of an operation whose table has MMCL__EMBEDDING_DEFS and
 * ERROR_THRESHOLD (src/core/options.c); the strings are borrowed from
 * @p opts. */
struct mmcl_options;
void mmcl__embedding_options_get(mmcl__embedding_options *eo,
                                 const struct mmcl_options *opts);

typedef struct mmcl__embedding_raster mmcl__embedding_raster;
typedef struct mmcl__embedding_reader mmcl__embedding_reader;

/* Opens the embedding raster @p path on @p grid. Errors name the file:
 * not a raster, no georeferencing, no pixel in common with the grid, a
 * band list or a de-quantization that does not fit it. */
mmcl_status mmcl__embedding_raster_open(mmcl_context *ctx, const char *path,
                                        const mmcl__grid *grid,
                                        const mmcl__embedding_options *o,
                                        mmcl__embedding_raster **out);
void mmcl__embedding_raster_close(mmcl__embedding_raster *er);

/* The path it was opened with. */
const char *mmcl__embedding_raster_path(const mmcl__embedding_raster *er);
/* k: the bands read. */
int mmcl__embedding_raster_bands(const mmcl__embedding_raster *er);
/* Band i's (0-based) description, or "band N" when it has none. */
const char *mmcl__embedding_raster_band_name(const mmcl__embedding_raster *er,
                                             int i);
/* Band i's (0-based) number in the raster (1-based). */
int mmcl__embedding_raster_band_number(const mmcl__embedding_raster *er,
                                       int i);
/* The de-quantization applied (never AUTO) and its name ("none", ...). */
mmcl__dequantize
mmcl__embedding_raster_dequantize(const mmcl__embedding_raster *er);
const char *mmcl__dequantize_name(mmcl__dequantize d);
/* The resampling onto the grid ("bilinear", ...), and whether the raster
 * is read as it is (on the grid). */
const char *mmcl__embedding_raster_resampling(const mmcl__embedding_raster *er);
int mmcl__embedding_raster_on_grid(const mmcl__embedding_raster *er);

mmcl__embedding_reader *
mmcl__embedding_reader_create(mmcl_context *ctx,
                              const mmcl__embedding_raster *er);
void mmcl__embedding_reader_destroy(mmcl__embedding_reader *r);

/*
 * Reads the grid window [x, x+w) x [y, y+h), which must lie in the grid,
 * into @p out (k, h, w), de-quantized; NaN where invalid. @p valid (h, w),
 * when not NULL, is 1 where every band is valid, else 0.
 */
mmcl_status mmcl__embedding_read(mmcl_context *ctx, mmcl__embedding_reader *r,
                                 int x, int y, int w, int h, float *out,
                                 uint8_t *valid);

#endif /* MMCL_EMBEDDING_RASTER_INTERNAL_H */
