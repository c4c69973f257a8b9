/* SPDX-License-Identifier: MIT */
/*
 * Private: writing output rasters so that nothing is lost. The raster is
 * written under a temporary name beside the target and renamed when
 * complete, so an interrupted run never leaves a file that looks valid; an
 * existing target is kept unless overwriting was asked for.
 */
#ifndef MMCL_WRITER_INTERNAL_H
#define MMCL_WRITER_INTERNAL_H

#include <gdal.h>

#include "mmcl/context.h"

typedef struct mmcl__raster_spec {
    const char *path;
    const char *format;       /* GDAL driver short name; NULL = GTiff */
    char **creation_options;  /* the user's, NULL-terminated; may be NULL */
    int overwrite;
    int width, height, n_bands;
    GDALDataType type;
    double geotransform[6];
    const char *srs_wkt;      /* may be NULL */
    int has_nodata;
    double nodata;
    const char *const *band_names; /* n_bands descriptions, or NULL */
    int block;                /* preferred block edge (the tile size) */
    int n_threads;            /* compression threads */
    /* Compression threads of a format written tile by tile while the
     * tiles are computed (GeoTIFF); 0 = n_threads. A copy-only format
     * (COG) is compressed at the end with n_threads. */
    int stream_threads;
} mmcl__raster_spec;

typedef struct mmcl__writer mmcl__writer;

/*
 * Checks, before any work is done, that @p path can be written as @p format
 * with @p creation_options: the format exists and can hold @p type, the
 * options are valid, the target does not exist (unless @p overwrite), and
 * its folder exists.
 */
mmcl_status mmcl__output_check(mmcl_context *ctx, const char *path,
                               const char *format, char **creation_options,
                               GDALDataType type, int overwrite);

/* Creates the temporary dataset. Returns NULL with an error set. */
mmcl__writer *mmcl__writer_open(mmcl_context *ctx,
                                const mmcl__raster_spec *spec);

/* Writes a window; @p buf is band-sequential (n_bands, h, w) of spec type. */
mmcl_status mmcl__writer_write(mmcl_context *ctx, mmcl__writer *w, int x,
                               int y, int tw, int th, const void *buf);

/* Whether the window goes straight to the driver (whole blocks of a
 * band-interleaved GeoTIFF), not through GDAL's block cache. */
int mmcl__writer_is_direct(const mmcl__writer *w, int x, int y, int tw,
                           int th);

/* Sets KEY=VALUE in the dataset's MMCL metadata domain. */
mmcl_status mmcl__writer_set_metadata(mmcl_context *ctx, mmcl__writer *w,
                                      const char *key, const char *value);

/* Sets each KEY=VALUE of the CSL @p kv in the MMCL domain, in order. */
mmcl_status mmcl__writer_set_metadata_list(mmcl_context *ctx, mmcl__writer *w,
                                           char **kv);

/* The temporary dataset (for band-level metadata). */
GDALDatasetH mmcl__writer_dataset(mmcl__writer *w);

/*
 * Completes the output: closes it, converts it to the final format when
 * that format can only copy (COG, PNG, ...), and renames it to the target.
 * Always frees @p w; on failure the temporary files are removed.
 */
mmcl_status mmcl__writer_commit(mmcl_context *ctx, mmcl__writer *w);

/* Removes the temporary files and frees @p w. NULL is allowed. */
void mmcl__writer_abort(mmcl__writer *w);

#endif /* MMCL_WRITER_INTERNAL_H */
