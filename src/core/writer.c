/* SPDX-License-Identifier: MIT */
/*
 * Output rasters: format and creation-option checks, default tiled and
 * compressed GeoTIFF, written in the output's private stage folder and
 * moved into place on completion (output.c owns the rules).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>

#include "context_internal.h"
#include "dist_internal.h"
#include "gdal_util_internal.h"
#include "options_internal.h"
#include "output_internal.h"
#include "writer_internal.h"

/* Share of a copy-only format's progress taken by the tiles; the copy
 * into the final format at the end takes the rest. */
#define TILES_SHARE 0.9

/*
 * The statistics of a float32 band with NaN nodata, summed while the
 * tiles are written instead of read back and decoded once the raster is
 * complete (that second pass took as much CPU as compressing the raster).
 * The sums are exact integers, so they do not depend on the order of the
 * tiles, hence on --tile or --threads: a float32 v is +-m 2^e (m < 2^24),
 * and the values of each exponent add their +-m and m^2 into that
 * exponent's bin; mean and standard deviation come from the bins.
 */
__extension__ typedef unsigned __int128 sum_u128;

typedef struct band_sums {
    float min, max;
    uint64_t n;
    int64_t s1[256];  /* per biased exponent: sum of +-m (< 2^24 each) */
    sum_u128 s2[256]; /* sum of m^2 */
} band_sums;

/* The exponent of bin @p ex: the value of m = 1 there. */
static int
bin_exponent(int ex)
{
    return ex ? ex - 150 : -149;
}

/*
 * One stream of values: its own bins (sums of at most SUMS_STREAM + 3 values,
 * exact in 64 bits: m^2 < 2^48), its own minimum and maximum.
 */
enum { SUMS_STREAMS = 4, SUMS_STREAM = 1 << 15 };

typedef struct stream_sums {
    int64_t s1[256];
    uint64_t s2[256];
    float min, max;
    uint64_t n;
} stream_sums;

/* Adds @p x to @p s: 0 when it is infinite (NaN is nodata, left out). */
static inline int
stream_add(stream_sums *s, float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof(u));
    uint32_t ex = (u >> 23) & 0xffu;
    if (ex == 0xffu)
        return (u & 0x7fffffu) != 0;
    s->min = x < s->min ? x : s->min;
    s->max = x > s->max ? x : s->max;
    int64_t m = (int64_t)((u & 0x7fffffu) | (ex ? 0x800000u : 0));
    s->s1[ex] += (u >> 31) ? -m : m;
    s->s2[ex] += (uint64_t)(m * m);
    s->n++;
    return 1;
}

/*
 * Adds the valid values of @p v (count @p n): 0 when one is infinite (the
 * caller falls back on GDAL's statistics). The values go in SUMS_STREAMS
 * contiguous runs side by side, so that their additions do not wait for
 * each other; the runs' sums are integers, their order does not matter,
 * and their minima and maxima are taken in the runs' order, each kept
 * unless a later one is strictly beyond it: the values of a sequential
 * pass, signed zeros included.
 */
static int
sums_add(band_sums *b, const float *v, size_t n)
{
    stream_sums s[SUMS_STREAMS];
    while (n > 0) {
        size_t len = n < (size_t)SUMS_STREAMS * SUMS_STREAM
                         ? n
                         : (size_t)SUMS_STREAMS * SUMS_STREAM;
        size_t q = len / SUMS_STREAMS;
        memset(s, 0, sizeof(s));
        for (int k = 0; k < SUMS_STREAMS; k++) {
            s[k].min = INFINITY;
            s[k].max = -INFINITY;
        }
        int ok = 1;
        const float *v0 = v, *v1 = v + q, *v2 = v + 2 * q, *v3 = v + 3 * q;
        for (size_t i = 0; i < q; i++) {
            ok &= stream_add(&s[0], v0[i]);
            ok &= stream_add(&s[1], v1[i]);
            ok &= stream_add(&s[2], v2[i]);
            ok &= stream_add(&s[3], v3[i]);
        }
        for (size_t i = 4 * q; i < len; i++)
            ok &= stream_add(&s[3], v[i]);
        if (!ok)
            return 0;
        for (int k = 0; k < SUMS_STREAMS; k++) {
            b->min = s[k].min < b->min ? s[k].min : b->min;
            b->max = s[k].max > b->max ? s[k].max : b->max;
            b->n += s[k].n;
            for (int ex = 0; ex < 256; ex++) {
                b->s1[ex] += s[k].s1[ex];
                b->s2[ex] += s[k].s2[ex];
            }
        }
        v += len;
        n -= len;
    }
    return 1;
}

/* The mean and the (population) standard deviation of @p b, n > 0. */
static void
sums_moments(const band_sums *b, double *mean, double *sd)
{
    long double s1 = 0, s2 = 0;
    for (int ex = 0; ex < 256; ex++) {
        int e = bin_exponent(ex);
        if (b->s1[ex])
            s1 += ldexpl((long double)b->s1[ex], e);
        if (b->s2[ex])
            s2 += ldexpl((long double)b->s2[ex], 2 * e);
    }
    long double n = (long double)b->n, m = s1 / n, var = s2 / n - m * m;
    *mean = (double)m;
    *sd = var > 0 ? (double)sqrtl(var) : 0.0;
}

struct mmcl__writer {
    GDALDatasetH ds;
    GDALDriverH final_driver;
    char *path;          /* the target */
    mmcl__files *own;    /* the checks, when the caller gave none */
    mmcl__stage *stage;  /* private folder; its file becomes the target */
    char *work_path;     /* copy-only formats: the GeoTIFF written first */
    char **final_co;     /* creation options of the copy */
    int finished;        /* the stage file is complete */
    int width, height, n_bands;
    int block_w, block_h; /* block size of the output */
    GDALDataType type;
    int direct;    /* whole blocks go straight to the driver */
    double nodata; /* fills the outside of edge blocks */
    void *edge;    /* (block_h, block_w) staging for edge blocks */
    mmcl__style_fn style;
    /* stats_as_written, float32 with NaN nodata: each band's statistics,
     * summed as it is written, while every pixel has been written once
     * (counted in written); else NULL, and GDAL computes them from the
     * file. */
    band_sums *sums;
    uint64_t written;
};

static int
driver_can(GDALDriverH drv, const char *cap)
{
    return CPLFetchBool((CSLConstList)GDALGetMetadata(drv, NULL), cap, FALSE);
}

static int
driver_holds_type(GDALDriverH drv, GDALDataType type)
{
    const char *types = GDALGetMetadataItem(drv, GDAL_DMD_CREATIONDATATYPES,
                                            NULL);
    if (!types)
        return 1; /* not declared: assume any */
    char **list = CSLTokenizeString(types);
    int ok = CSLFindString(list, GDALGetDataTypeName(type)) >= 0;
    CSLDestroy(list);
    return ok;
}

static int
is_gtiff_like(const char *format)
{
    return EQUAL(format, "GTiff") || EQUAL(format, "COG");
}

/* Our defaults for GeoTIFF and COG, overridden by the user's options. */
static char **
default_options(const char *format, GDALDataType type, int n_bands, int block,
                int n_threads, char **user)
{
    char **co = NULL;
    char buf[32];
    int is_float = type == GDT_Float32 || type == GDT_Float64;
    if (EQUAL(format, "GTiff")) {
        co = CSLSetNameValue(co, "TILED", "YES");
        if (block % 16 == 0) {
            snprintf(buf, sizeof(buf), "%d", block);
            co = CSLSetNameValue(co, "BLOCKXSIZE", buf);
            co = CSLSetNameValue(co, "BLOCKYSIZE", buf);
        }
        co = CSLSetNameValue(co, "COMPRESS", "ZSTD");
        co = CSLSetNameValue(co, "PREDICTOR", is_float ? "3" : "2");
        co = CSLSetNameValue(co, "BIGTIFF", "IF_SAFER");
        /* Float maps (embeddings of 64 bands): one block per band. A
         * viewer showing 3 bands decodes 3 blocks, not all 64 bands, and
         * the writer compresses blocks of one band (less memory, smaller
         * files than pixel interleaving with the float predictor). */
        if (is_float && n_bands > 1)
            co = CSLSetNameValue(co, "INTERLEAVE", "BAND");
    } else if (EQUAL(format, "COG")) {
        co = CSLSetNameValue(co, "COMPRESS", "ZSTD");
        co = CSLSetNameValue(co, "PREDICTOR", "YES");
        co = CSLSetNameValue(co, "BIGTIFF", "IF_SAFER");
    }
    if (is_gtiff_like(format) && n_threads > 1) {
        snprintf(buf, sizeof(buf), "%d", n_threads);
        co = CSLSetNameValue(co, "NUM_THREADS", buf);
    }
    for (int i = 0; user && user[i]; i++) {
        char *key = NULL;
        const char *value = CPLParseNameValue(user[i], &key);
        if (key && value)
            co = CSLSetNameValue(co, key, value);
        CPLFree(key);
    }
    /* ZSTD at level 1 unless the user chose a level: on float32 maps it
     * compresses about as well as DEFLATE at its default level 6 (with
     * the floating-point predictor) at a quarter of the CPU time, and
     * GDAL's own ZSTD default (9) is 2.5 times slower for 1 % less. */
    const char *compress = CSLFetchNameValue(co, "COMPRESS");
    if (compress && EQUAL(compress, "ZSTD")) {
        const char *level = EQUAL(format, "COG") ? "LEVEL" : "ZSTD_LEVEL";
        if (!CSLFetchNameValue(co, level))
            co = CSLSetNameValue(co, level, "1");
    }
    return co;
}

/* Checks the user's creation options against the driver's list. */
static mmcl_status
check_creation_options(mmcl_context *ctx, GDALDriverH drv, const char *format,
                       char **co)
{
    for (int i = 0; co && co[i]; i++) {
        char *key = NULL;
        const char *value = CPLParseNameValue(co[i], &key);
        CPLFree(key);
        if (!value)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "creation option '%s' is not of the form "
                               "NAME=VALUE",
                               co[i]);
    }
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    int ok = GDALValidateCreationOptions(drv, (CSLConstList)co);
    mmcl__gdal_capture_end(&cap);
    if (!ok || cap.n_warnings || cap.n_failures)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "invalid creation option for format %s: %s",
                           format, mmcl__gdal_msg(&cap));
    return MMCL_OK;
}

const char *
mmcl__output_format(mmcl_context *ctx, const mmcl_options *o, const char *path)
{
    if (mmcl__opt_given(o, "FORMAT"))
        return mmcl__opt_str(o, "FORMAT");
    if (!path || !*path) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no output path given");
        return NULL;
    }
    /* The extension of the file name, not of a folder: CPLGetExtension. */
    const char *ext = CPLGetExtension(path);
    if (!*ext)
        return "GTiff";
    char ext_copy[64];
    snprintf(ext_copy, sizeof(ext_copy), "%s", ext);
    const char *first = NULL, *second = NULL;
    for (int i = 0; i < GDALGetDriverCount(); i++) {
        GDALDriverH drv = GDALGetDriver(i);
        if (!driver_can(drv, GDAL_DCAP_RASTER) ||
            (!driver_can(drv, GDAL_DCAP_CREATE) &&
             !driver_can(drv, GDAL_DCAP_CREATECOPY)))
            continue;
        const char *exts = GDALGetMetadataItem(drv, GDAL_DMD_EXTENSIONS, NULL);
        char **list = exts ? CSLTokenizeString(exts) : NULL;
        int match = CSLFindString(list, ext_copy) >= 0; /* case-blind */
        CSLDestroy(list);
        if (!match)
            continue;
        if (!first)
            first = GDALGetDriverShortName(drv);
        else if (!second)
            second = GDALGetDriverShortName(drv);
    }
    size_t n = strlen(path);
    if (!first && n > 10 && EQUAL(path + n - 10, ".mmcl.json")) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "output '%s' has the name of a lazy descriptor: give "
                    "%s to write one, or name the raster .tif",
                    path, mmcl__opt_setting(ctx, "LAZY", "YES"));
        return NULL;
    }
    if (!first) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "output '%s': no GDAL raster format that can write "
                    "takes the extension '.%s'; give the format with -of "
                    "(GTiff, COG, PNG, ...), or name the output .tif",
                    path, ext_copy);
        return NULL;
    }
    /* GTiff and COG both take .tif: GTiff, as GDAL's utilities choose. */
    if (second && !(EQUAL(first, "GTiff") && EQUAL(second, "COG")))
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "several GDAL formats take the extension '.%s' of output "
                  "'%s'; using %s (give -of to choose)",
                  ext_copy, path, first);
    return first;
}

mmcl_status
mmcl__output_check(mmcl_context *ctx, mmcl__files *files, const char *path,
                   const char *format, char **creation_options,
                   GDALDataType type, const char *product)
{
    if (!path || !*path)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no output path given");
    if (!format)
        format = "GTiff";
    GDALDriverH drv = GDALGetDriverByName(format);
    if (!drv)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "unknown output format '%s' (see mmcl --formats)",
                           format);
    if (!driver_can(drv, GDAL_DCAP_RASTER) ||
        (!driver_can(drv, GDAL_DCAP_CREATE) &&
         !driver_can(drv, GDAL_DCAP_CREATECOPY)))
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "output format '%s' cannot write rasters", format);
    if (!driver_holds_type(drv, type)) {
        char types[256];
        const char *t =
            GDALGetMetadataItem(drv, GDAL_DMD_CREATIONDATATYPES, NULL);
        size_t k = 0;
        for (; t && *t && k + 3 < sizeof(types); t++) {
            if (*t == ' ')
                types[k++] = ',';
            types[k++] = *t;
        }
        types[k] = '\0';
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "output '%s': format %s cannot hold %s values, "
                           "which this product has (%s writes %s only); "
                           "name the output .tif, or give -of GTiff or "
                           "-of COG",
                           path, GDALGetDriverShortName(drv),
                           GDALGetDataTypeName(type),
                           GDALGetDriverShortName(drv), types);
    }
    mmcl_status st = check_creation_options(ctx, drv, format,
                                            creation_options);
    if (st != MMCL_OK)
        return st;
    return mmcl__files_add_output(ctx, files, path, "output",
                                  MMCL__OUT_RASTER, product, format);
}

mmcl_status
mmcl__output_check_options(mmcl_context *ctx, mmcl__files *files,
                           const char *path, const mmcl_options *o,
                           char **creation_options, GDALDataType type,
                           const char *product, const char **format)
{
    *format = mmcl__output_format(ctx, o, path);
    if (*format)
        return mmcl__output_check(ctx, files, path, *format, creation_options,
                                  type, product);
    if (!path || !*path)
        return mmcl_context_errcode(ctx);
    mmcl_status st = mmcl__files_add_output(ctx, files, path, "output",
                                            MMCL__OUT_RASTER, product, NULL);
    if (st != MMCL_OK)
        return st;
    mmcl__output_format(ctx, o, path); /* its message again */
    return mmcl_context_errcode(ctx);
}

mmcl__writer *
mmcl__writer_open(mmcl_context *ctx, const mmcl__raster_spec *spec)
{
    const char *format = spec->format ? spec->format : "GTiff";
    mmcl__writer *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    mmcl__files *files = spec->files;
    if (!files) {
        /* No operation-wide checks: the output on its own. */
        w->own = files = mmcl__files_create(ctx, spec->overwrite);
        if (!files ||
            mmcl__output_check(ctx, files, spec->path, format,
                               spec->creation_options, spec->type,
                               spec->product) != MMCL_OK)
            goto fail;
    }
    w->stage = mmcl__stage_create(ctx, files, spec->path);
    if (!w->stage)
        goto fail;
    w->style = spec->style;
    if (spec->stats_as_written && spec->type == GDT_Float32 &&
        spec->has_nodata && isnan(spec->nodata)) {
        w->sums = calloc((size_t)spec->n_bands, sizeof(*w->sums));
        if (!w->sums) {
            mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        for (int b = 0; b < spec->n_bands; b++) {
            w->sums[b].min = INFINITY;
            w->sums[b].max = -INFINITY;
        }
    }
    w->width = spec->width;
    w->height = spec->height;
    w->n_bands = spec->n_bands;
    w->type = spec->type;
    w->path = mmcl__strdup(ctx, spec->path);
    GDALDriverH final_drv = GDALGetDriverByName(format);
    w->final_driver = final_drv;
    GDALDriverH drv = final_drv;
    const char *work_format = format;
    char **co = NULL;
    if (!driver_can(final_drv, GDAL_DCAP_CREATE)) {
        /* Copy-only format: write a tiled GeoTIFF first, copy at the end. */
        drv = GDALGetDriverByName("GTiff");
        work_format = "GTiff";
        w->final_co = default_options(format, spec->type, spec->n_bands,
                                      spec->block, spec->n_threads,
                                      spec->creation_options);
        co = default_options("GTiff", spec->type, spec->n_bands,
                             spec->block, spec->n_threads, NULL);
        co = CSLSetNameValue(co, "COMPRESS", "NONE");
        co = CSLSetNameValue(co, "PREDICTOR", NULL);
        w->work_path = mmcl__stage_path(ctx, w->stage, ".work.tif");
    } else {
        int threads = spec->stream_threads > 0 ? spec->stream_threads
                                               : spec->n_threads;
        /* A job shared among MPI ranks has this one writer for what every
         * rank computes (docs/mpi.md): its blocks are compressed in
         * GDAL's threads (the same bytes), as many as rank 0 has workers
         * and at least two, so that compressing is never held to one
         * core. They work only when blocks come; rank 0's workers, handed
         * tiles on demand, then compute fewer tiles. */
        if (mmcl__dist_active())
            threads = spec->n_threads > 2 ? spec->n_threads : 2;
        co = default_options(format, spec->type, spec->n_bands,
                             spec->block, threads, spec->creation_options);
    }
    if (!w->path || (w->final_co && !w->work_path)) {
        CSLDestroy(co);
        goto fail;
    }

    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    w->ds = GDALCreate(drv,
                       w->work_path ? w->work_path
                                    : mmcl__stage_file(w->stage),
                       spec->width, spec->height, spec->n_bands, spec->type,
                       co);
    if (w->ds) {
        GDALSetGeoTransform(w->ds, (double *)spec->geotransform);
        if (spec->srs_wkt && *spec->srs_wkt)
            GDALSetProjection(w->ds, spec->srs_wkt);
        for (int b = 0; b < spec->n_bands; b++) {
            GDALRasterBandH band = GDALGetRasterBand(w->ds, b + 1);
            if (spec->has_nodata)
                GDALSetRasterNoDataValue(band, spec->nodata);
            if (spec->band_names && spec->band_names[b])
                GDALSetDescription(band, spec->band_names[b]);
            if (spec->band_units && spec->band_units[b])
                GDALSetRasterUnitType(band, spec->band_units[b]);
            if (spec->band_meanings && spec->band_meanings[b])
                GDALSetMetadataItem(band, "LONG_NAME",
                                    spec->band_meanings[b], NULL);
        }
    }
    mmcl__gdal_capture_end(&cap);
    CSLDestroy(co);
    if (w->ds) {
        int bx = 0, by = 0;
        GDALGetBlockSize(GDALGetRasterBand(w->ds, 1), &bx, &by);
        w->block_w = bx > 0 ? bx : 1;
        w->block_h = by > 0 ? by : 1;
        /* A GeoTIFF with one block per band (band interleaving, or one
         * band) takes whole blocks through GDALWriteBlock, which encodes
         * them at once: the output does not pass through GDAL's block
         * cache, which then holds only input blocks, and no block is
         * allocated and freed per tile. */
        const char *il = GDALGetMetadataItem(w->ds, "INTERLEAVE",
                                             "IMAGE_STRUCTURE");
        w->direct = drv == GDALGetDriverByName("GTiff") &&
                    (spec->n_bands == 1 || (il && EQUAL(il, "BAND")));
        w->nodata = spec->has_nodata ? spec->nodata : 0.0;
    }
    if (!w->ds) {
        mmcl__error(ctx, MMCL_ERR_IO, "cannot create output '%s' (%s): %s%s",
                    spec->path, work_format, mmcl__gdal_msg(&cap),
                    mmcl__stage_io_hint(w->stage));
        goto fail;
    }
    return w;

fail:
    mmcl__writer_abort(w);
    return NULL;
}

GDALDatasetH
mmcl__writer_dataset(mmcl__writer *w)
{
    return w->ds;
}

/* Whether the window is exactly one block of the output (edge blocks
 * clipped by the raster included). */
static int
is_one_block(const mmcl__writer *w, int x, int y, int tw, int th)
{
    int bw = w->block_w, bh = w->block_h;
    return x % bw == 0 && y % bh == 0 &&
           (tw == bw || (tw < bw && x + tw == w->width)) &&
           (th == bh || (th < bh && y + th == w->height));
}

int
mmcl__writer_is_direct(const mmcl__writer *w, int x, int y, int tw, int th)
{
    return w->direct && is_one_block(w, x, y, tw, th);
}

/* Writes the one-block window band by band with GDALWriteBlock. */
static CPLErr
write_blocks(mmcl_context *ctx, mmcl__writer *w, int x, int y, int tw, int th,
             const void *buf)
{
    int bw = w->block_w, bh = w->block_h;
    int size = GDALGetDataTypeSizeBytes(w->type);
    size_t plane = (size_t)tw * th * size;
    int full = tw == bw && th == bh;
    if (!full && !w->edge) {
        w->edge = mmcl__malloc_array(ctx, (size_t)bw * bh, (size_t)size, 1);
        if (!w->edge)
            return CE_Failure;
    }
    CPLErr err = CE_None;
    for (int b = 0; b < w->n_bands && err == CE_None; b++) {
        const unsigned char *src = (const unsigned char *)buf + plane * b;
        void *block = (void *)src;
        if (!full) {
            /* The window in the top-left corner, nodata around it. */
            GDALCopyWords(&w->nodata, GDT_Float64, 0, w->edge, w->type, size,
                          bw * bh);
            for (int r = 0; r < th; r++)
                memcpy((unsigned char *)w->edge + (size_t)r * bw * size,
                       src + (size_t)r * tw * size, (size_t)tw * size);
            block = w->edge;
        }
        err = GDALWriteBlock(GDALGetRasterBand(w->ds, b + 1), x / bw, y / bh,
                             block);
    }
    return err;
}

/* The window's values into the band sums (or, with an infinite value, no
 * sums any more: GDAL computes the statistics at the end). */
static void
writer_sums_add(mmcl__writer *w, int tw, int th, const float *buf)
{
    size_t n = (size_t)tw * th;
    for (int b = 0; w->sums && b < w->n_bands; b++)
        if (!sums_add(&w->sums[b], buf + n * b, n)) {
            free(w->sums);
            w->sums = NULL;
        }
    w->written += n;
}

long long
mmcl__writer_valid_count(const mmcl__writer *w, int band)
{
    return w && w->sums && band >= 1 && band <= w->n_bands
               ? (long long)w->sums[band - 1].n
               : -1;
}

/* Stores the summed statistics on the bands, as GDAL stores its own
 * (the share of valid pixels, then GDALSetRasterStatistics); a band
 * without any valid pixel has none. */
static void
sums_store(mmcl__writer *w)
{
    double total = (double)w->width * (double)w->height;
    for (int b = 0; b < w->n_bands; b++) {
        const band_sums *s = &w->sums[b];
        if (s->n == 0)
            continue;
        double mean, sd;
        sums_moments(s, &mean, &sd);
        GDALRasterBandH band = GDALGetRasterBand(w->ds, b + 1);
        GDALSetMetadataItem(band, "STATISTICS_VALID_PERCENT",
                            CPLSPrintf("%.4g", 100.0 * (double)s->n / total),
                            NULL);
        GDALSetRasterStatistics(band, s->min, s->max, mean, sd);
    }
}

mmcl_status
mmcl__writer_write(mmcl_context *ctx, mmcl__writer *w, int x, int y, int tw,
                   int th, const void *buf)
{
    if (w->sums)
        writer_sums_add(w, tw, th, buf);
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    if (mmcl__writer_is_direct(w, x, y, tw, th)) {
        CPLErr err = write_blocks(ctx, w, x, y, tw, th, buf);
        mmcl__gdal_capture_end(&cap);
        if (err != CE_None && !cap.n_failures && !w->edge)
            return MMCL_ERR_NO_MEMORY; /* message set */
        if (err != CE_None || cap.n_failures)
            return mmcl__error(ctx, MMCL_ERR_IO, "cannot write to '%s': %s%s",
                               w->path, mmcl__gdal_msg(&cap),
                               mmcl__stage_io_hint(w->stage));
        return MMCL_OK;
    }
    CPLErr err = GDALDatasetRasterIO(w->ds, GF_Write, x, y, tw, th,
                                     (void *)buf, tw, th, w->type, w->n_bands,
                                     NULL, 0, 0, 0);
    /* Keep the block cache small: blocks are written out (and compressed)
     * as soon as they are complete instead of piling up. When the window
     * is made of whole blocks (the tile is the block, as by default) that
     * is now; otherwise when a row of windows completes a row of blocks.
     * A flush of blocks still partly empty would write them, to be read
     * back and rewritten later. */
    int bw = w->block_w, bh = w->block_h;
    int right = x + tw == w->width || (x + tw) % bw == 0;
    int bottom = y + th == w->height || (y + th) % bh == 0;
    int whole = x % bw == 0 && y % bh == 0 && right && bottom;
    if (err == CE_None && (whole || (x + tw == w->width && bottom)))
        GDALFlushCache(w->ds);
    mmcl__gdal_capture_end(&cap);
    if (err != CE_None || cap.n_failures)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot write to '%s': %s%s",
                           w->path, mmcl__gdal_msg(&cap),
                           mmcl__stage_io_hint(w->stage));
    return MMCL_OK;
}

/*
 * The name in GDAL's default metadata domain of MMCL-domain item @p key, or
 * NULL when it stays in the MMCL domain only. The default domain is what
 * gdalinfo and QGIS's layer properties show: they tell what the file is
 * (MMCL_PRODUCT) and which mmcl wrote it (MMCL_VERSION). The rest (model
 * hash, figures, notes) stays in the MMCL domain, which mmcl reads back
 * (an output of the same PRODUCT is what --overwrite may replace): the
 * default domain is shared with every other tool, so only two prefixed
 * items go there. The GDAL plugin shows lazy products the same way.
 */
static const char *
default_domain_item(const char *key)
{
    if (strcmp(key, "PRODUCT") == 0)
        return "MMCL_PRODUCT";
    if (strcmp(key, "MMCL_VERSION") == 0)
        return "MMCL_VERSION";
    return NULL;
}

mmcl_status
mmcl__writer_set_metadata(mmcl_context *ctx, mmcl__writer *w, const char *key,
                          const char *value)
{
    /* What the output is and which mmcl wrote it also go into the default
     * domain, the one gdalinfo and QGIS's layer properties show
     * (default_domain_item). */
    const char *shown = default_domain_item(key);
    if (GDALSetMetadataItem(w->ds, key, value, "MMCL") != CE_None ||
        (shown && GDALSetMetadataItem(w->ds, shown, value, NULL) != CE_None))
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot set metadata %s on '%s'", key, w->path);
    return MMCL_OK;
}

mmcl_status
mmcl__writer_set_metadata_list(mmcl_context *ctx, mmcl__writer *w, char **kv)
{
    mmcl_status st = MMCL_OK;
    for (int i = 0; kv && kv[i] && st == MMCL_OK; i++) {
        char *key = NULL;
        const char *value = CPLParseNameValue(kv[i], &key);
        if (key && value)
            st = mmcl__writer_set_metadata(ctx, w, key, value);
        CPLFree(key);
    }
    return st;
}

double
mmcl__writer_progress_split(const mmcl__writer *w, double p0, double p1)
{
    return w && w->work_path ? p0 + TILES_SHARE * (p1 - p0) : p1;
}

typedef struct copy_progress {
    mmcl_progress_fn fn;
    void *user;
    double p0, p1;
    int stopped; /* the caller cancelled */
} copy_progress;

static int CPL_STDCALL
copy_progress_fn(double complete, const char *msg, void *arg)
{
    copy_progress *cp = arg;
    if (!cp->fn(cp->p0 + (cp->p1 - cp->p0) * complete, NULL, cp->user))
        cp->stopped = 1;
    return !cp->stopped;
}

mmcl_status
mmcl__writer_finish(mmcl_context *ctx, mmcl__writer *w,
                    mmcl_progress_fn progress, void *progress_user, double p0,
                    double p1)
{
    if (w->finished)
        return MMCL_OK;
    const char *final = mmcl__stage_file(w->stage);
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    double t0 = mmcl__thread_seconds();
    GDALFlushCache(w->ds);
    double t1 = mmcl__thread_seconds();
    struct timespec ws0, ws1;
    timespec_get(&ws0, TIME_UTC);
    /* The statistics of every band, exact and stored with the output, so
     * that a viewer (QGIS) need not scan it; a band without any valid
     * pixel has none. */
    int summed = w->sums && w->written == (uint64_t)w->width * w->height;
    if (summed && !cap.n_failures)
        sums_store(w);
    for (int b = 1; b <= w->n_bands && !cap.n_failures && !summed; b++) {
        double mn, mx, mean, sd;
        CPLPushErrorHandler(CPLQuietErrorHandler);
        GDALComputeRasterStatistics(GDALGetRasterBand(w->ds, b), FALSE, &mn,
                                    &mx, &mean, &sd, NULL, NULL);
        CPLPopErrorHandler();
    }
    double t2 = mmcl__thread_seconds();
    timespec_get(&ws1, TIME_UTC);
    GDALClose(w->ds);
    w->ds = NULL;
    CPLDebug("MMCL",
             "'%s' completed: CPU seconds of this thread: last blocks %.3f, "
             "statistics of %d bands %.3f, closing %.3f; statistics in "
             "%.3f s of wall time",
             w->path, t1 - t0, w->n_bands, t2 - t1,
             mmcl__thread_seconds() - t2,
             (double)(ws1.tv_sec - ws0.tv_sec) +
                 1e-9 * (double)(ws1.tv_nsec - ws0.tv_nsec));
    copy_progress cp = {progress, progress_user, p0, p1, 0};
    if (!cap.n_failures && w->work_path) {
        GDALDatasetH src = GDALOpen(w->work_path, GA_ReadOnly);
        GDALDatasetH dst =
            src ? GDALCreateCopy(w->final_driver, final, src, FALSE,
                                 w->final_co,
                                 progress ? copy_progress_fn : NULL,
                                 progress ? &cp : NULL)
                : NULL;
        char **md = src ? CSLDuplicate(GDALGetMetadata(src, "MMCL")) : NULL;
        if (dst)
            GDALClose(dst);
        else
            cap.n_failures++;
        if (src)
            GDALClose(src);
        /* Copy-only drivers (COG) keep the default metadata domain only;
         * the MMCL domain goes into the .aux.xml sidecar, which GDAL reads
         * back with the file and which leaves the file's layout intact. */
        if (dst && md) {
            GDALDatasetH ro = GDALOpen(final, GA_ReadOnly);
            if (ro) {
                if (!GDALGetMetadata(ro, "MMCL"))
                    GDALSetMetadata(ro, md, "MMCL");
                GDALClose(ro);
            }
        }
        CSLDestroy(md);
        /* The work file is no longer needed: free its room now. */
        VSIUnlink(w->work_path);
    }
    mmcl__gdal_capture_end(&cap);
    if (cp.stopped)
        return mmcl__error(ctx, MMCL_ERR_CANCELLED, "cancelled by the caller");
    if (cap.n_failures)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot complete output '%s': %s%s", w->path,
                           mmcl__gdal_msg(&cap),
                           mmcl__stage_io_hint(w->stage));
    if (w->style) {
        mmcl_status st = w->style(ctx, final,
                                  mmcl__stage_style_file(w->stage), w->path);
        if (st != MMCL_OK)
            return st;
    }
    w->finished = 1;
    return MMCL_OK;
}

mmcl__stage *
mmcl__writer_stage(mmcl__writer *w)
{
    return w->stage;
}

mmcl_status
mmcl__writer_commit(mmcl_context *ctx, mmcl__writer *w,
                    mmcl_progress_fn progress, void *progress_user, double p0,
                    double p1)
{
    mmcl_status st = mmcl__writer_finish(ctx, w, progress, progress_user, p0,
                                         p1);
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, &w->stage, 1, progress, progress_user,
                                 p1);
    mmcl__writer_abort(w);
    return st;
}

mmcl_status
mmcl__writer_commit_with_text(mmcl_context *ctx, mmcl__writer *w,
                              mmcl__files *files, const char *text_path,
                              const char *text, mmcl__stage **text_stage,
                              mmcl_progress_fn progress, void *progress_user,
                              double p0, double p1)
{
    *text_stage = NULL;
    mmcl_status st = mmcl__writer_finish(ctx, w, progress, progress_user, p0,
                                         p1);
    mmcl__stage *stages[2] = {w->stage, NULL};
    if (st == MMCL_OK && text_path) {
        *text_stage = mmcl__stage_create(ctx, files, text_path);
        st = *text_stage ? mmcl__stage_write_text(ctx, *text_stage, text)
                         : mmcl_context_errcode(ctx);
        stages[1] = *text_stage;
    }
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, stages, text_path ? 2 : 1, progress,
                                 progress_user, p1);
    return st;
}

void
mmcl__writer_abort(mmcl__writer *w)
{
    if (!w)
        return;
    if (w->ds) {
        CPLPushErrorHandler(CPLQuietErrorHandler);
        GDALClose(w->ds);
        CPLPopErrorHandler();
    }
    mmcl__stage_destroy(w->stage);
    mmcl__files_destroy(w->own);
    free(w->path);
    free(w->work_path);
    CSLDestroy(w->final_co);
    free(w->edge);
    free(w->sums);
    free(w);
}
