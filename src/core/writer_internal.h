/* SPDX-License-Identifier: MIT */
/*
 * Private: writing output rasters so that nothing is lost. The raster is
 * written in a private stage folder beside the target and moved into place
 * when complete (output_internal.h), so an interrupted run never leaves a
 * file that looks valid, and an existing target is replaced only when
 * overwriting was asked for and it is an mmcl raster of the same product.
 */
#ifndef MMCL_WRITER_INTERNAL_H
#define MMCL_WRITER_INTERNAL_H

#include <gdal.h>

#include "mmcl/context.h"
#include "mmcl/options.h"
#include "output_internal.h"

/* Writes the QGIS style of the complete staged raster @p raster into the
 * file @p qml (or nothing, for a product without one); @p shown names the
 * output in messages. */
typedef mmcl_status (*mmcl__style_fn)(mmcl_context *ctx, const char *raster,
                                      const char *qml, const char *shown);

typedef struct mmcl__raster_spec {
    const char *path;
    const char *format;       /* GDAL driver short name; NULL = GTiff */
    char **creation_options;  /* the user's, NULL-terminated; may be NULL */
    /* The operation's files, where mmcl__output_check() recorded @p path
     * (borrowed; must outlive the writer). NULL: the writer checks the
     * output on its own, with @p overwrite and @p product. */
    mmcl__files *files;
    int overwrite;
    const char *product; /* the MMCL PRODUCT the raster will carry */
    int width, height, n_bands;
    GDALDataType type;
    double geotransform[6];
    const char *srs_wkt;      /* may be NULL */
    int has_nodata;
    double nodata;
    const char *const *band_names; /* n_bands descriptions, or NULL */
    const char *const *band_units; /* n_bands unit types, or NULL */
    const char *const *band_meanings; /* n_bands LONG_NAME items, or NULL */
    int block;                /* preferred block edge (the tile size) */
    int n_threads;            /* compression threads */
    /* Compression threads of a format written tile by tile while the
     * tiles are computed (GeoTIFF); 0 = n_threads. A copy-only format
     * (COG) is compressed at the end with n_threads. */
    int stream_threads;
    /* Float32 with NaN nodata only: every pixel is written once, through
     * mmcl__writer_write(). The statistics of the bands are then summed
     * exactly (integer sums per float exponent, writer.c) as the windows
     * come, instead of read back (decompressed) at the end: the same
     * figures for any order of the windows, --tile, thread or rank count,
     * without a second pass over the file. A band with an infinite value,
     * or an output not written exactly once over, falls back on GDAL's
     * pass. */
    int stats_as_written;
    /* The output's QGIS style, written when it is complete, after the
     * statistics of every band are stored with it; NULL = none. */
    mmcl__style_fn style;
} mmcl__raster_spec;

typedef struct mmcl__writer mmcl__writer;

/*
 * The output format of @p path: FORMAT of @p o when it was given (-of),
 * else chosen from the extension as GDAL 3.6's utilities choose it: no
 * extension gives GTiff; otherwise the first raster driver that can write
 * (DCAP_CREATE or DCAP_CREATECOPY) and lists the extension in
 * DMD_EXTENSIONS (.tif and .tiff give GTiff, not COG; a warning names the
 * driver taken when several others match). An extension no such driver
 * lists is MMCL_ERR_INVALID_ARG asking for -of. Returns a string owned by
 * @p o or by GDAL, or NULL with the error set.
 */
const char *mmcl__output_format(mmcl_context *ctx, const mmcl_options *o,
                                const char *path);

/*
 * Checks, before any work is done, that @p path can be written as @p format
 * with @p creation_options (the format exists and can hold @p type, the
 * options are valid), and records it in @p files as a raster output of
 * @p product (mmcl__files_add_output: its folder exists, it is no input,
 * an existing file is replaced only with overwriting and only when it is
 * an mmcl raster of @p product).
 */
mmcl_status mmcl__output_check(mmcl_context *ctx, mmcl__files *files,
                               const char *path, const char *format,
                               char **creation_options, GDALDataType type,
                               const char *product);

/*
 * mmcl__output_check() for the format of mmcl__output_format(@p o, @p path),
 * which goes to *@p format. When that format cannot be told (an unknown
 * extension), the output's other refusals come first (an input, a folder,
 * an existing file of another kind), then the format's.
 */
mmcl_status mmcl__output_check_options(mmcl_context *ctx, mmcl__files *files,
                                       const char *path, const mmcl_options *o,
                                       char **creation_options,
                                       GDALDataType type, const char *product,
                                       const char **format);

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
 * Where the tiles of the caller's progress range [p0, p1] should end: p1
 * for a format written as the tiles come, earlier for a copy-only format
 * (COG, PNG), whose conversion at the end reports the rest.
 */
double mmcl__writer_progress_split(const mmcl__writer *w, double p0,
                                   double p1);

/*
 * With stats_as_written: the number of valid values written so far in
 * band @p band (1-based); -1 without.
 */
long long mmcl__writer_valid_count(const mmcl__writer *w, int band);

/*
 * Completes the output in its stage: computes (or, with stats_as_written,
 * takes the sums) and stores the statistics of every band (GDAL's
 * STATISTICS_* items: in the GeoTIFF, or in the "<name>.aux.xml" a format
 * without room for them gets), closes it and converts it to the final format when that format can only copy (COG,
 * PNG, ...), then writes its QGIS style (spec's style hook), reporting
 * [p0, p1] through @p progress (may be NULL), which may cancel
 * (MMCL_ERR_CANCELLED). Nothing is in place yet: see mmcl__writer_stage.
 */
mmcl_status mmcl__writer_finish(mmcl_context *ctx, mmcl__writer *w,
                                mmcl_progress_fn progress,
                                void *progress_user, double p0, double p1);

/* The writer's stage, for mmcl__stages_commit() with other outputs. */
mmcl__stage *mmcl__writer_stage(mmcl__writer *w);

/*
 * The single-output case: mmcl__writer_finish(), then the output moved
 * into place (mmcl__stages_commit, which polls @p progress at p1 first).
 * Always frees @p w; on failure nothing is left.
 */
mmcl_status mmcl__writer_commit(mmcl_context *ctx, mmcl__writer *w,
                                mmcl_progress_fn progress,
                                void *progress_user, double p0, double p1);

/*
 * A raster and a text output (a JSON report) in place together, or
 * neither: mmcl__writer_finish() over [p0, p1], then @p text and a newline
 * written as @p text_path (recorded in @p files as an output; NULL: no
 * text, the raster alone), then both moved into place
 * (mmcl__stages_commit, polling @p progress at p1). *@p text_stage
 * receives the text's stage (NULL when none), which the caller destroys
 * with mmcl__stage_destroy() before mmcl__writer_abort(): after a failed
 * commit the files it put back live there.
 */
mmcl_status mmcl__writer_commit_with_text(mmcl_context *ctx, mmcl__writer *w,
                                          mmcl__files *files,
                                          const char *text_path,
                                          const char *text,
                                          mmcl__stage **text_stage,
                                          mmcl_progress_fn progress,
                                          void *progress_user, double p0,
                                          double p1);

/* Removes the stage (the temporary files; after a commit, the files it
 * replaced) and frees @p w. NULL is allowed. */
void mmcl__writer_abort(mmcl__writer *w);

#endif /* MMCL_WRITER_INTERNAL_H */
