/* SPDX-License-Identifier: MIT */
/*
 * mmcl_rgb: a picture of a raster, as a 4-band RGBA Byte raster on the
 * input's grid (alpha 0 where the input is invalid, so nodata is
 * transparent). Three modes:
 *   pca       the first three principal components of the selected bands
 *             (an embedding) as red, green and blue;
 *   direct    three selected bands as red, green and blue;
 *   colormap  one band (an info-loss map) through a 256-entry colour map,
 *             with its colour scale written beside the output.
 * Each channel is stretched linearly between two percentiles of its valid
 * values (or a fixed range) to 0..255 or to the ends of the colour map.
 *
 * Everything streams by tiles with the tile pool, and per-tile results are
 * merged in tile order, so the output does not depend on THREADS (another
 * TILE sums in another order: equal up to rounding):
 *   pass 1  statistics of the selected bands over the valid pixels: count,
 *           min, max, and for PCA the mean and the co-moment matrix (per
 *           tile by BLAS dsyrk on centred rows, merged with the pairwise
 *           update of Chan, Golub & LeVeque 1979), all in double;
 *   pass 2  one histogram per output channel (HIST_BINS bins between
 *           bounds known after pass 1; for a principal component the bound
 *           sum_i |v_i| max|x_i - mean_i|) for the percentiles, interpolated
 *           linearly inside a bin; skipped with RANGE;
 *   pass 3  the picture, written in tile order.
 * Every pixel is read in every pass (no subsampling): the passes are
 * sequential reads, exact and deterministic, and memory stays bounded by
 * the tile size, the thread count and the histograms.
 *
 * The input is a GDAL raster or a lazy product (a descriptor, read through
 * mmcl_product_read). With LAZY, passes 1 and 2 run and their results go
 * into a descriptor instead of pass 3; the lazy picture (the product kind
 * "rgb", products/product_rgb.c, with the code of rgb_internal.h) runs
 * pass 3 per block when read, on the same tile grid, so its bytes equal the
 * written picture's. The descriptor is written through the products
 * layer's hooks (output_internal.h).
 */
#define _DEFAULT_SOURCE /* strcasecmp */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <threads.h>
#include <unistd.h>

#include <cblas.h>
#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>

#include "mmcl/product.h"
#include "mmcl/rgb.h"

#include "blas_info_internal.h"
#include "colormaps_internal.h"
#include "context_internal.h"
#include "gdal_util_internal.h"
#include "linalg.h"
#include "options_internal.h"
#include "output_internal.h"
#include "pca.h"
#include "rgb_internal.h"
#include "shift_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

enum {
    HIST_BINS = 16384, /* stretch error <= 1/16384 of the histogram range */
    CHUNK = 1024,      /* centred rows per dsyrk call */
    MAX_PCA_BANDS = 1024 /* co-moments: B * B doubles (8 MiB) */
};

static const char *const mode_names[] = {"pca", "direct", "colormap"};

void
mmcl__rgb_source_close(mmcl__rgb_source *s)
{
    CPLFree(s->name);
    mmcl_product_destroy(s->product);
    CPLFree(s->wkt);
    CSLDestroy(s->band_desc);
    free(s->complex_band);
    CPLFree(s->product_kind);
    CPLFree(s->units);
    memset(s, 0, sizeof(*s));
}

/* Opens @p in (a raster, or a descriptor) and copies what the picture
 * needs to know of it. */
mmcl_status
mmcl__rgb_source_open(mmcl_context *ctx, const char *in, mmcl__rgb_source *s)
{
    memset(s, 0, sizeof(*s));
    s->name = CPLStrdup(in);
    if (mmcl__is_descriptor(in)) {
        mmcl_status st = mmcl_product_open(ctx, in, &s->product);
        if (st != MMCL_OK) {
            mmcl__rgb_source_close(s);
            return st;
        }
        const mmcl_product *p = s->product;
        if (mmcl_product_sample_type(p) != MMCL_SAMPLE_FLOAT32) {
            st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                             "'%s' is a lazy %s; a picture is made of an "
                             "embedding, an information-loss map or a "
                             "raster",
                             in, mmcl_product_kind(p));
            mmcl__rgb_source_close(s);
            return st;
        }
        s->width = mmcl_product_width(p, 0);
        s->height = mmcl_product_height(p, 0);
        s->n_bands = mmcl_product_band_count(p);
        mmcl_product_geotransform(p, 0, s->gt);
        s->wkt = CPLStrdup(mmcl_product_srs_wkt(p));
        for (int b = 0; b < s->n_bands; b++) {
            const char *d = mmcl_product_band_description(p, b);
            s->band_desc = CSLAddString(s->band_desc, d ? d : "");
        }
        s->complex_band =
            mmcl__calloc_array(ctx, (size_t)s->n_bands, 1, sizeof(int));
        if (!s->complex_band) {
            mmcl__rgb_source_close(s);
            return MMCL_ERR_NO_MEMORY;
        }
        char **md = (char **)mmcl_product_metadata(p, 0);
        const char *v = CSLFetchNameValue(md, "PRODUCT");
        s->product_kind = v ? CPLStrdup(v) : NULL;
        v = CSLFetchNameValue(md, "UNITS");
        s->units = v ? CPLStrdup(v) : NULL;
        return MMCL_OK;
    }
    GDALDatasetH ds = mmcl__open_raster(ctx, in, "input");
    if (!ds) {
        mmcl__rgb_source_close(s);
        return mmcl_context_errcode(ctx);
    }
    s->width = GDALGetRasterXSize(ds);
    s->height = GDALGetRasterYSize(ds);
    s->n_bands = GDALGetRasterCount(ds);
    if (GDALGetGeoTransform(ds, s->gt) != CE_None) {
        static const double identity[6] = {0, 1, 0, 0, 0, 1};
        memcpy(s->gt, identity, sizeof(identity));
    }
    s->wkt = CPLStrdup(GDALGetProjectionRef(ds));
    s->complex_band = mmcl__calloc_array(ctx, (size_t)s->n_bands + 1, 1,
                                         sizeof(int));
    for (int b = 0; b < s->n_bands && s->complex_band; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        const char *d = GDALGetDescription(band);
        s->band_desc = CSLAddString(s->band_desc, d ? d : "");
        s->complex_band[b] =
            GDALDataTypeIsComplex(GDALGetRasterDataType(band));
    }
    const char *v = GDALGetMetadataItem(ds, "PRODUCT", "MMCL");
    if (!v) /* a shift field may say so in the default domain only */
        v = GDALGetMetadataItem(ds, "MMCL_PRODUCT", NULL);
    s->product_kind = v ? CPLStrdup(v) : NULL;
    v = GDALGetMetadataItem(ds, "UNITS", "MMCL");
    s->units = v ? CPLStrdup(v) : NULL;
    GDALClose(ds);
    if (!s->complex_band) {
        mmcl__rgb_source_close(s);
        return MMCL_ERR_NO_MEMORY;
    }
    return MMCL_OK;
}

void
mmcl__rgb_worker_free(mmcl__rgb_worker *w)
{
    if (!w)
        return;
    if (w->ds)
        GDALClose(w->ds);
    free(w->all);
    free(w->has_nd);
    free(w->nd);
    free(w->mask_flags);
    free(w->x);
    free(w->valid);
    free(w->mask);
    free(w->y);
    free(w->work);
    free(w->mean);
    free(w->m2);
    free(w->vmin);
    free(w->vmax);
    free(w->hist);
    free(w->out);
    free(w);
}

static void
rgb_stop(void *state, void *user)
{
    (void)user;
    mmcl__rgb_worker_free(state);
}

/* A worker reading @p level of the source (decimated by @p factor). */
mmcl__rgb_worker *
mmcl__rgb_worker_create(mmcl_context *ctx, const mmcl__rgb_job *job, int level,
                        int factor)
{
    const mmcl__rgb_source *src = job->src;
    size_t B = (size_t)job->B, n = (size_t)job->tile * (size_t)job->tile;
    mmcl__rgb_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    w->level = level;
    w->factor = factor;
    /* Every buffer of every pass, once per worker. */
    if (src->product)
        w->all = mmcl__malloc_array(ctx, (size_t)src->n_bands, n,
                                    sizeof(float));
    else
        w->ds = mmcl__open_raster(ctx, job->in, "input");
    w->has_nd = mmcl__calloc_array(ctx, B, 1, sizeof(int));
    w->nd = mmcl__calloc_array(ctx, B, 1, sizeof(double));
    w->mask_flags = mmcl__calloc_array(ctx, B, 1, sizeof(int));
    w->x = mmcl__malloc_array(ctx, B, n, sizeof(float));
    w->valid = mmcl__malloc_array(ctx, n, 1, 1);
    w->mask = mmcl__malloc_array(ctx, n, 1, 1);
    w->mean = mmcl__calloc_array(ctx, B, 1, sizeof(double));
    w->vmin = mmcl__calloc_array(ctx, B, 1, sizeof(double));
    w->vmax = mmcl__calloc_array(ctx, B, 1, sizeof(double));
    w->hist =
        mmcl__calloc_array(ctx, (size_t)job->n_ch, HIST_BINS, sizeof(uint64_t));
    w->out = mmcl__malloc_array(ctx, 4, n, 1);
    int fail = !(w->ds || w->all) || !w->has_nd || !w->nd || !w->mask_flags ||
               !w->x || !w->valid || !w->mask || !w->mean || !w->vmin ||
               !w->vmax || !w->hist || !w->out;
    if (!fail && job->mode == MMCL__RGB_PCA) {
        w->y = mmcl__malloc_array(ctx, (size_t)job->n_ch, n, sizeof(float));
        w->work = mmcl__malloc_array(ctx, CHUNK, B, sizeof(double));
        w->m2 = mmcl__calloc_array(ctx, B, B, sizeof(double));
        fail = !w->y || !w->work || !w->m2;
    }
    for (int b = 0; b < job->B && !fail; b++) {
        if (!w->ds) { /* a product: NaN is its nodata */
            w->mask_flags[b] = GMF_ALL_VALID;
            continue;
        }
        GDALRasterBandH band = GDALGetRasterBand(w->ds, job->sel[b]);
        w->nd[b] = GDALGetRasterNoDataValue(band, &w->has_nd[b]);
        w->mask_flags[b] = GDALGetMaskFlags(band);
    }
    if (fail) {
        mmcl__rgb_worker_free(w);
        return NULL;
    }
    return w;
}

static void *
rgb_start(mmcl_context *ctx, void *user)
{
    return mmcl__rgb_worker_create(ctx, user, 0, 1);
}

/*
 * Reads the selected bands of tile @p t into w->x and sets w->valid: a
 * pixel is valid when every selected band is finite, differs from its
 * nodata value and is not masked (GDAL mask band, alpha or per-dataset
 * mask).
 */
mmcl_status
mmcl__rgb_read_tile(mmcl_context *ctx, mmcl__rgb_worker *w,
                    const mmcl__rgb_job *job, const mmcl__tile *t)
{
    size_t n = (size_t)t->w * (size_t)t->h;
    memset(w->valid, 1, n);
    if (!w->ds) {
        /* A product: all its bands, then the selected ones. */
        mmcl_status st = mmcl_product_read(ctx, job->src->product, w->level,
                                           t->x, t->y, t->w, t->h, w->all);
        if (st != MMCL_OK)
            return st;
        for (int b = 0; b < job->B; b++)
            memcpy(w->x + (size_t)b * n,
                   w->all + (size_t)(job->sel[b] - 1) * n, n * sizeof(float));
        for (size_t i = 0; i < n * (size_t)job->B; i++)
            if (!isfinite(w->x[i]))
                w->valid[i % n] = 0;
        return MMCL_OK;
    }
    /* The window on the source: at a decimated level, the pixels it
     * covers, read decimated by GDAL (from the source's overviews when it
     * has some). */
    int f = w->factor, sx = t->x * f, sy = t->y * f;
    int sw = (t->x + t->w) * f < job->src->width ? t->w * f
                                                 : job->src->width - sx;
    int sh = (t->y + t->h) * f < job->src->height ? t->h * f
                                                  : job->src->height - sy;
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    CPLErr err =
        GDALDatasetRasterIO(w->ds, GF_Read, sx, sy, sw, sh, w->x, t->w,
                            t->h, GDT_Float32, job->B, job->sel, 0, 0, 0);
    int per_dataset_done = 0;
    for (int b = 0; b < job->B && err == CE_None; b++) {
        int flags = w->mask_flags[b];
        if (flags & (GMF_ALL_VALID | GMF_NODATA))
            continue; /* nodata is compared below */
        if ((flags & GMF_PER_DATASET) && per_dataset_done)
            continue;
        GDALRasterBandH band = GDALGetRasterBand(w->ds, job->sel[b]);
        err = GDALRasterIO(GDALGetMaskBand(band), GF_Read, sx, sy, sw, sh,
                           w->mask, t->w, t->h, GDT_Byte, 0, 0);
        for (size_t i = 0; i < n && err == CE_None; i++)
            if (!w->mask[i])
                w->valid[i] = 0;
        per_dataset_done |= (flags & GMF_PER_DATASET) != 0;
    }
    mmcl__gdal_capture_end(&cap);
    if (err != CE_None)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot read window %d,%d %dx%d of '%s': %s", t->x,
                           t->y, t->w, t->h, job->in, mmcl__gdal_msg(&cap));
    for (int b = 0; b < job->B; b++) {
        const float *x = w->x + (size_t)b * n;
        float nd = (float)w->nd[b];
        int has_nd = w->has_nd[b] && !isnan(w->nd[b]);
        for (size_t i = 0; i < n; i++)
            if (!isfinite(x[i]) || (has_nd && x[i] == nd))
                w->valid[i] = 0;
    }
    return MMCL_OK;
}

/*
 * The output channels of the tile just read: (n_ch, n) values, band stride
 * n. In PCA mode the centred values are projected on the components
 * (y = proj (n_ch, B) x (B, n)), with invalid pixels zeroed first so that
 * NaN cannot spread; w->x is overwritten. The projection is summed band by
 * band in a fixed order, not by sgemm, whose rounding of a pixel may depend
 * on the tile's size and the pixel's place in it (OpenBLAS's Haswell
 * kernel): a lazy picture read in any window then equals the written one.
 */
const float *
mmcl__rgb_channels(mmcl__rgb_worker *w, const mmcl__rgb_job *job, size_t n)
{
    if (job->mode != MMCL__RGB_PCA)
        return w->x;
    for (int b = 0; b < job->B; b++) {
        float *x = w->x + (size_t)b * n;
        float c = job->center[b];
        for (size_t i = 0; i < n; i++)
            x[i] = w->valid[i] ? x[i] - c : 0.0f;
    }
    for (int c = 0; c < job->n_ch; c++) {
        float *y = w->y + (size_t)c * n;
        const float *p = job->proj + (size_t)c * job->B;
        memset(y, 0, n * sizeof(float));
        for (int b = 0; b < job->B; b++) {
            const float *x = w->x + (size_t)b * n;
            const float pb = p[b];
            for (size_t i = 0; i < n; i++)
                y[i] += pb * x[i];
        }
    }
    return w->y;
}

/* Pass 1: count, mean, min, max and (PCA) co-moments of the tile. */
static void
tile_stats(mmcl__rgb_worker *w, const mmcl__rgb_job *job, size_t n)
{
    int B = job->B;
    double count = 0.0;
    for (size_t i = 0; i < n; i++)
        count += w->valid[i];
    w->count = count;
    if (count == 0.0)
        return;
    for (int b = 0; b < B; b++) {
        const float *x = w->x + (size_t)b * n;
        double sum = 0.0, lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            if (!w->valid[i])
                continue;
            sum += x[i];
            lo = x[i] < lo ? x[i] : lo;
            hi = x[i] > hi ? x[i] : hi;
        }
        w->mean[b] = sum / count;
        w->vmin[b] = lo;
        w->vmax[b] = hi;
    }
    if (job->mode != MMCL__RGB_PCA)
        return;
    /* m2 (B, B) = sum over valid pixels of (x - mean)(x - mean)^T, by
     * CHUNK rows of centred values at a time. */
    memset(w->m2, 0, (size_t)B * B * sizeof(double));
    int rows = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && w->valid[i]) {
            double *r = w->work + (size_t)rows * B;
            for (int b = 0; b < B; b++)
                r[b] = (double)w->x[(size_t)b * n + i] - w->mean[b];
            rows++;
        }
        if (rows == CHUNK || (i == n && rows > 0)) {
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, B, rows, 1.0,
                        w->work, B, 1.0, w->m2, B);
            rows = 0;
        }
    }
    mmcl__sym_from_upper(w->m2, B);
}

/* Histogram bin of @p v in [lo, hi]; clamped. */
static int
bin_of(double v, double lo, double hi)
{
    double f = (v - lo) / (hi - lo) * HIST_BINS;
    if (!(f > 0.0))
        return 0;
    return f >= HIST_BINS - 1 ? HIST_BINS - 1 : (int)f;
}

static mmcl_status
rgb_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    mmcl__rgb_job *job = user;
    mmcl__rgb_worker *w = state;
    size_t n = (size_t)t->w * (size_t)t->h;
    mmcl_status st = mmcl__rgb_read_tile(ctx, w, job, t);
    if (st != MMCL_OK)
        return st;
    if (job->pass == MMCL__RGB_PASS_STATS) {
        tile_stats(w, job, n);
        return MMCL_OK;
    }
    const float *y = mmcl__rgb_channels(w, job, n);
    if (job->pass == MMCL__RGB_PASS_HIST) {
        memset(w->hist, 0, (size_t)job->n_ch * HIST_BINS * sizeof(uint64_t));
        for (int c = 0; c < job->n_ch; c++) {
            const float *v = y + (size_t)c * n;
            uint64_t *h = w->hist + (size_t)c * HIST_BINS;
            for (size_t i = 0; i < n; i++)
                if (w->valid[i])
                    h[bin_of(v[i], job->hlo[c], job->hhi[c])]++;
        }
        return MMCL_OK;
    }
    mmcl__rgb_render(w, job, y, n);
    if (job->wheel)
        mmcl__shift_wheel_blend(job->wheel, t->x, t->y, t->w, t->h, w->out);
    return MMCL_OK;
}

/* The picture of the tile just read, from its channels @p y: RGBA into
 * w->out, band-sequential; invalid pixels (0, 0, 0, 0). */
void
mmcl__rgb_render(mmcl__rgb_worker *w, const mmcl__rgb_job *job, const float *y,
                 size_t n)
{
    uint8_t *alpha = w->out + 3 * n;
    for (size_t i = 0; i < n; i++)
        alpha[i] = w->valid[i] ? 255 : 0;
    if (job->mode == MMCL__RGB_COLORMAP) {
        for (size_t i = 0; i < n; i++) {
            const unsigned char *rgb =
                job->lut[w->valid[i] ? mmcl__colormap_index(y[i], job->lo[0],
                                                            job->hi[0])
                                     : 0];
            for (int c = 0; c < 3; c++)
                w->out[(size_t)c * n + i] = w->valid[i] ? rgb[c] : 0;
        }
        return;
    }
    for (int c = 0; c < 3; c++) {
        uint8_t *o = w->out + (size_t)c * n;
        if (c >= job->n_ch) { /* PCA of two bands: no third component */
            memset(o, 0, n);
            continue;
        }
        const float *v = y + (size_t)c * n;
        for (size_t i = 0; i < n; i++)
            o[i] = w->valid[i] ? (uint8_t)mmcl__colormap_index(v[i], job->lo[c],
                                                               job->hi[c])
                               : 0;
    }
}

/* Merges the tile's results into the job, in tile order. */
static mmcl_status
rgb_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    mmcl__rgb_job *job = user;
    mmcl__rgb_worker *w = state;
    int B = job->B;
    if (job->pass == MMCL__RGB_PASS_WRITE)
        return mmcl__writer_write(ctx, job->writer, t->x, t->y, t->w, t->h,
                                  w->out);
    if (job->pass == MMCL__RGB_PASS_HIST) {
        size_t nh = (size_t)job->n_ch * HIST_BINS;
        for (size_t k = 0; k < nh; k++)
            job->hist[k] += w->hist[k];
        return MMCL_OK;
    }
    if (w->count == 0.0)
        return MMCL_OK;
    /* Chan et al.: with delta = mean_t - mean and n = count + count_t,
     *   m2   += m2_t + delta delta^T count count_t / n,
     *   mean += delta count_t / n. */
    double n = job->count + w->count;
    for (int b = 0; b < B; b++)
        job->delta[b] = w->mean[b] - job->mean[b];
    if (job->mode == MMCL__RGB_PCA) {
        for (int r = 0; r < B; r++)
            cblas_daxpy(B, 1.0, w->m2 + (size_t)r * B, 1,
                        job->m2 + (size_t)r * B, 1);
        cblas_dger(CblasRowMajor, B, B, job->count * w->count / n, job->delta,
                   1, job->delta, 1, job->m2, B);
    }
    for (int b = 0; b < B; b++) {
        job->mean[b] += job->delta[b] * (w->count / n);
        if (job->count == 0.0 || w->vmin[b] < job->vmin[b])
            job->vmin[b] = w->vmin[b];
        if (job->count == 0.0 || w->vmax[b] > job->vmax[b])
            job->vmax[b] = w->vmax[b];
    }
    job->count = n;
    return MMCL_OK;
}

/*
 * The value below which @p p percent of the histogram's @p total values
 * lie, interpolated linearly inside the bin where the cumulative count
 * crosses it. p = 0 and p = 100 give the outer edges of the first and last
 * non-empty bins.
 */
static double
hist_percentile(const uint64_t *h, double lo, double hi, double total, double p)
{
    double target = p / 100.0 * total;
    double width = (hi - lo) / HIST_BINS, cum = 0.0;
    for (int k = 0; k < HIST_BINS; k++) {
        if (!h[k])
            continue;
        if (cum + (double)h[k] >= target) {
            double f = (target - cum) / (double)h[k];
            return lo + ((double)k + f) * width;
        }
        cum += (double)h[k];
    }
    return hi;
}

/* Parses "A,B" into two finite numbers. */
static int
parse_pair(const char *s, double *a, double *b)
{
    char *end;
    *a = strtod(s, &end);
    if (end == s || *end != ',')
        return 0;
    const char *s2 = end + 1;
    *b = strtod(s2, &end);
    while (*end == ' ')
        end++;
    return end != s2 && !*end && isfinite(*a) && isfinite(*b);
}

/* Description of band @p b (1-based) of @p src, or "band N" when it has
 * none. */
static const char *
band_label(const mmcl__rgb_source *src, int b)
{
    const char *d = b >= 1 && b <= src->n_bands ? src->band_desc[b - 1] : "";
    return d && *d ? d : CPLSPrintf("band %d", b);
}

/*
 * Resolves BANDS ("1,2,5", "infoloss_optical", or both mixed) against
 * @p ds into *sel (1-based numbers, to be freed); NULL @p spec: every band.
 */
static mmcl_status
select_bands(mmcl_context *ctx, const mmcl__rgb_source *src, const char *in,
             const char *spec, int **sel, int *n_sel)
{
    int n_bands = src->n_bands;
    char **tok =
        spec ? CSLTokenizeString2(spec, ",",
                                  CSLT_STRIPLEADSPACES | CSLT_STRIPENDSPACES |
                                      CSLT_ALLOWEMPTYTOKENS)
             : NULL;
    int n = spec ? CSLCount(tok) : n_bands;
    mmcl_status st = MMCL_OK;
    *sel = NULL;
    *n_sel = 0;
    if (n < 1) {
        CSLDestroy(tok);
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s: no band given in '%s'", mmcl__opt_name(ctx, "BANDS"),
                           spec ? spec : "");
    }
    int *s = mmcl__malloc_array(ctx, (size_t)n, 1, sizeof(int));
    if (!s) {
        CSLDestroy(tok);
        return MMCL_ERR_NO_MEMORY;
    }
    for (int i = 0; i < n && st == MMCL_OK; i++) {
        if (!spec) {
            s[i] = i + 1;
            continue;
        }
        const char *t = tok[i];
        char *end;
        if (!*t) {
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "%s: empty band name in '%s'", mmcl__opt_name(ctx, "BANDS"),
                             spec);
            continue;
        }
        long v = strtol(t, &end, 10);
        if (end != t && !*end) {
            if (v < 1 || v > n_bands)
                st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                                 "%s: band %ld does not exist: '%s' has %d "
                                 "band%s",
                                 mmcl__opt_name(ctx, "BANDS"), v, in, n_bands, n_bands == 1 ? "" : "s");
            s[i] = (int)v;
            continue;
        }
        /* A description: exact match first, then ignoring case. */
        int found = 0;
        for (int pass = 0; pass < 2 && !found; pass++)
            for (int b = 1; b <= n_bands && !found; b++) {
                const char *d = src->band_desc[b - 1];
                if (d && (pass ? strcasecmp(d, t) : strcmp(d, t)) == 0) {
                    s[i] = b;
                    found = 1;
                }
            }
        if (!found) {
            char names[1024] = "";
            size_t used = 0;
            for (int b = 1; b <= n_bands && used + 1 < sizeof(names); b++) {
                int k = snprintf(names + used, sizeof(names) - used, "%s%s",
                                 b > 1 ? ", " : "", band_label(src, b));
                if (k < 0)
                    break;
                used += (size_t)k;
            }
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "%s: no band '%s' in '%s'; its bands are: %s",
                             mmcl__opt_name(ctx, "BANDS"), t, in, names);
        }
    }
    CSLDestroy(tok);
    if (st != MMCL_OK) {
        free(s);
        return st;
    }
    *sel = s;
    *n_sel = n;
    return MMCL_OK;
}

/* Runs one pass over the raster. */
static mmcl_status
run_pass(mmcl_context *ctx, mmcl__rgb_job *job, mmcl__rgb_pass pass, int width,
         int height, int n_threads, const mmcl_options *o, double p0, double p1)
{
    job->pass = pass;
    mmcl__tile_job tj = {.start = rgb_start,
                         .work = rgb_work,
                         .commit = rgb_commit,
                         .stop = rgb_stop,
                         .user = job};
    void *puser;
    mmcl_progress_fn progress = mmcl__opt_progress(o, &puser);
    return mmcl__run_tiles(ctx, width, height, job->tile, n_threads, &tj,
                           progress, puser, p0, p1);
}

/* "v0,v1,..." with @p prec significant digits; must be freed. */
static char *
join_doubles(mmcl_context *ctx, const double *v, int n, int prec)
{
    size_t size = (size_t)n * 32 + 1, used = 0;
    char *s = mmcl__malloc_array(ctx, size, 1, 1);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        int k =
            snprintf(s + used, size - used, "%s%.*g", i ? "," : "", prec, v[i]);
        if (k > 0)
            used += (size_t)k;
    }
    return s;
}

/* Adds "KEY=<printf>" to the list @p md. */
static char **md_add(char **md, const char *key, const char *fmt, ...)
    MMCL__PRINTF(3, 4);

static char **
md_add(char **md, const char *key, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return CSLSetNameValue(md, key, buf);
}

/* Adds @p key = the list @p v (n values) to @p md. */
static char **
md_add_list(char **md, const char *key, const double *v, int n, int prec)
{
    char *s = join_doubles(NULL, v, n, prec);
    if (s)
        md = CSLSetNameValue(md, key, s);
    free(s);
    return md;
}

/*
 * The MMCL metadata of a picture (a CSL to be destroyed): the source, the
 * bands, the mode, the stretch limits of each channel, and the PCA figures
 * or the colour map. The written file and the lazy picture both have it.
 */
char **
mmcl__rgb_metadata(const mmcl__rgb_job *job, const mmcl__rgb_info *info,
                   const char *legend)
{
    const mmcl__rgb_source *src = job->src;
    static const char *const ch_keys[MMCL__RGB_MAX_CH] = {"RED", "GREEN",
                                                          "BLUE"};
    char *names_s = CPLStrdup(""), *nums_s = CPLStrdup("");
    for (int b = 0; b < job->B; b++) {
        char *grown = CPLStrdup(CPLSPrintf("%s%s%s", names_s, b ? "," : "",
                                           band_label(src, job->sel[b])));
        CPLFree(names_s);
        names_s = grown;
        grown = CPLStrdup(
            CPLSPrintf("%s%s%d", nums_s, b ? "," : "", job->sel[b]));
        CPLFree(nums_s);
        nums_s = grown;
    }
    char **md = NULL;
    md = CSLSetNameValue(md, "PRODUCT", "rgb");
    md = CSLSetNameValue(md, "SOURCE", src->name);
    if (info->source_product)
        md = CSLSetNameValue(md, "SOURCE_PRODUCT", info->source_product);
    md = CSLSetNameValue(md, "MODE", mode_names[job->mode]);
    md = CSLSetNameValue(md, "BANDS", nums_s);
    md = CSLSetNameValue(md, "BAND_NAMES", names_s);
    md = md_add(md, "VALID_PIXELS", "%.0f", job->count);
    if (info->range_given)
        md = CSLSetNameValue(md, "STRETCH", "fixed range");
    else
        md = md_add(md, "STRETCH", "percentiles %g,%g", info->p_lo,
                    info->p_hi);
    if (job->mode == MMCL__RGB_PCA) {
        md = md_add_list(md, "PCA_EIGENVALUES", info->lambda, job->n_ch, 6);
        md = md_add_list(md, "PCA_EXPLAINED_VARIANCE", info->explained,
                         job->n_ch, 4);
        md = md_add(md, "PCA_TOTAL_VARIANCE", "%.6g", info->total_var);
        md = md_add_list(md, "PCA_MEAN", job->mean, job->B, 6);
        for (int c = 0; c < job->n_ch; c++)
            md = md_add_list(md, CPLSPrintf("PC%d_LOADINGS", c + 1),
                             info->loadings + (size_t)c * job->B, job->B, 4);
    }
    if (job->mode == MMCL__RGB_COLORMAP) {
        md = CSLSetNameValue(md, "COLORMAP", info->colormap);
        md = CSLSetNameValue(md, "VALUE_BAND", names_s);
        md = md_add(md, "VALUE_RANGE", "%.10g,%.10g", job->lo[0], job->hi[0]);
        if (info->units)
            md = CSLSetNameValue(md, "VALUE_UNITS", info->units);
        if (legend)
            md = CSLSetNameValue(md, "LEGEND", CPLGetFilename(legend));
    } else {
        for (int c = 0; c < 3; c++) {
            const char *key = CPLSPrintf("%s_SOURCE", ch_keys[c]);
            if (c >= job->n_ch) {
                md = CSLSetNameValue(md, key, "none (0)");
                continue;
            }
            if (job->mode == MMCL__RGB_PCA)
                md = md_add(md, key, "PC%d", c + 1);
            else
                md = CSLSetNameValue(md, key, band_label(src, job->sel[c]));
            md = md_add(md, CPLSPrintf("%s_RANGE", ch_keys[c]), "%.10g,%.10g",
                        job->lo[c], job->hi[c]);
        }
    }
    md = CSLSetNameValue(md, "MMCL_VERSION", mmcl_version());
    CPLFree(names_s);
    CPLFree(nums_s);
    return md;
}

static mmcl_status
write_metadata(mmcl_context *ctx, const mmcl__rgb_job *job,
               const mmcl__rgb_info *info, const char *legend_png)
{
    char **md = mmcl__rgb_metadata(job, info, legend_png);
    mmcl_status st = MMCL_OK;
    for (int i = 0; md && md[i] && st == MMCL_OK; i++) {
        char *key = NULL;
        const char *value = CPLParseNameValue(md[i], &key);
        if (key && value)
            st = mmcl__writer_set_metadata(ctx, job->writer, key, value);
        CPLFree(key);
    }
    CSLDestroy(md);
    return st;
}

/* The legend's title: the band and, for a band of one modality
 * ("..._optical", "..._sar"), that modality. */
static void
legend_title(const char *band, char *buf, size_t n)
{
    size_t len = strlen(band);
    if (len > 8 && strcasecmp(band + len - 8, "_optical") == 0)
        snprintf(buf, n, "%s (optical modality)", band);
    else if (len > 4 && strcasecmp(band + len - 4, "_sar") == 0)
        snprintf(buf, n, "%s (SAR modality)", band);
    else
        snprintf(buf, n, "%s", band);
}

/* The legend of the picture as a band-sequential (4, MMCL__LEGEND_H,
 * MMCL__LEGEND_W) RGBA image (free()), its title into @p title and the
 * font used into *font; NULL when out of memory (the message set). */
static unsigned char *
legend_image(mmcl_context *ctx, const mmcl__rgb_job *job,
             const mmcl__rgb_info *info, const char *band_name, char *title,
             size_t title_size, double *ticks, int *tick_x, const char **font)
{
    unsigned char *rgba =
        mmcl__malloc_array(ctx, 4, (size_t)MMCL__LEGEND_W * MMCL__LEGEND_H, 1);
    if (!rgba)
        return NULL;
    legend_title(band_name, title, title_size);
    *font = mmcl__legend_draw(rgba, job->lut, job->lo[0], job->hi[0], title,
                              info->units, ticks, tick_x);
    return rgba;
}

/* The legend image @p rgba (band-sequential, 4 x MMCL__LEGEND_H x
 * MMCL__LEGEND_W) as the PNG of @p png_stage. */
mmcl_status
mmcl__rgb_legend_png(mmcl_context *ctx, const unsigned char *rgba,
                     const char *legend_png, mmcl__stage *png_stage)
{
    GDALDatasetH mem = NULL, png = NULL;
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    mem = GDALCreate(GDALGetDriverByName("MEM"), "", MMCL__LEGEND_W,
                     MMCL__LEGEND_H, 4, GDT_Byte, NULL);
    CPLErr err =
        mem ? GDALDatasetRasterIO(mem, GF_Write, 0, 0, MMCL__LEGEND_W,
                                  MMCL__LEGEND_H, (void *)rgba, MMCL__LEGEND_W,
                                  MMCL__LEGEND_H, GDT_Byte, 4, NULL, 0, 0, 0)
            : CE_Failure;
    if (err == CE_None)
        png = GDALCreateCopy(GDALGetDriverByName("PNG"),
                             mmcl__stage_file(png_stage), mem, FALSE, NULL,
                             NULL, NULL);
    if (png)
        GDALClose(png);
    if (mem)
        GDALClose(mem);
    mmcl__gdal_capture_end(&cap);
    if (!png)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot write legend '%s': %s%s",
                           legend_png, mmcl__gdal_msg(&cap),
                           mmcl__stage_io_hint(png_stage));
    return MMCL_OK;
}

/*
 * Writes the legend image and its JSON description into their stages
 * (output_internal.h), committed by the caller with the picture.
 */
static mmcl_status
write_legend(mmcl_context *ctx, const mmcl__rgb_job *job,
             const mmcl__rgb_info *info, const char *band_name, const char *out,
             const char *legend_png, mmcl__stage *png_stage,
             mmcl__stage *json_stage)
{
    unsigned char *rgba = NULL;
    double ticks[MMCL__LEGEND_TICKS];
    int tick_x[MMCL__LEGEND_TICKS];
    mmcl_status st = MMCL_OK;
    cJSON *j = NULL;
    char *text = NULL;

    char title[256];
    const char *font = NULL;
    rgba = legend_image(ctx, job, info, band_name, title, sizeof(title),
                        ticks, tick_x, &font);
    if (!rgba) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }

    st = mmcl__rgb_legend_png(ctx, rgba, legend_png, png_stage);
    if (st != MMCL_OK)
        goto done;

    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "image", CPLGetFilename(legend_png));
    cJSON_AddStringToObject(j, "picture", CPLGetFilename(out));
    cJSON_AddStringToObject(j, "source", job->in);
    cJSON_AddStringToObject(j, "band", band_name);
    cJSON_AddStringToObject(j, "title", title);
    cJSON_AddStringToObject(j, "font", font);
    if (info->units)
        cJSON_AddStringToObject(j, "units", info->units);
    cJSON_AddStringToObject(j, "colormap", info->colormap);
    cJSON_AddNumberToObject(j, "min", job->lo[0]);
    cJSON_AddNumberToObject(j, "max", job->hi[0]);
    if (info->range_given) {
        cJSON_AddStringToObject(j, "stretch", "fixed range");
    } else {
        cJSON *p = cJSON_AddArrayToObject(j, "stretch_percentiles");
        cJSON_AddItemToArray(p, cJSON_CreateNumber(info->p_lo));
        cJSON_AddItemToArray(p, cJSON_CreateNumber(info->p_hi));
    }
    cJSON_AddBoolToObject(j, "centred_on_zero", info->diverging);
    cJSON_AddStringToObject(j, "note",
                            "values below min take the first colour, above "
                            "max the last (the triangles at the ends of the "
                            "bar); transparent pixels are nodata");
    cJSON *clip = cJSON_AddObjectToObject(j, "clipped");
    cJSON_AddBoolToObject(clip, "below_min", 1);
    cJSON_AddBoolToObject(clip, "above_max", 1);
    cJSON *ta = cJSON_AddArrayToObject(j, "ticks");
    for (int t = 0; t < MMCL__LEGEND_TICKS; t++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "value", ticks[t]);
        cJSON_AddNumberToObject(o, "x", tick_x[t]);
        cJSON_AddItemToArray(ta, o);
    }
    cJSON *bar = cJSON_AddObjectToObject(j, "bar");
    cJSON_AddNumberToObject(bar, "x", MMCL__LEGEND_BAR_X);
    cJSON_AddNumberToObject(bar, "y", MMCL__LEGEND_BAR_Y);
    cJSON_AddNumberToObject(bar, "width", MMCL__LUT_SIZE);
    cJSON_AddNumberToObject(bar, "height", MMCL__LEGEND_BAR_H);
    text = cJSON_Print(j);
    st = text ? mmcl__stage_write_text(ctx, json_stage, text)
              : mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
done:
    cJSON_free(text);
    cJSON_Delete(j);
    free(rgba);
    return st;
}

/* Checks that the selected bands hold real numbers. */
mmcl_status
mmcl__rgb_check_types(mmcl_context *ctx, const mmcl__rgb_source *src,
                      const char *in, const mmcl__rgb_job *job)
{
    for (int b = 0; b < job->B; b++)
        if (src->complex_band[job->sel[b] - 1])
            return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                               "band %d of '%s' is complex; convert it "
                               "to amplitude or intensity first",
                               job->sel[b], in);
    return MMCL_OK;
}

/*
 * The mode from MODE and the selected bands (auto: colormap for one band,
 * direct for three bands the user chose, PCA otherwise), checked against
 * the number of bands; sets job->mode and job->n_ch.
 */
mmcl_status
mmcl__rgb_choose_mode(mmcl_context *ctx, mmcl__rgb_job *job,
                      const char *mode_opt, int bands_given, int range_given)
{
    int B = job->B;
    if (strcmp(mode_opt, "pca") == 0)
        job->mode = MMCL__RGB_PCA;
    else if (strcmp(mode_opt, "direct") == 0)
        job->mode = MMCL__RGB_DIRECT;
    else if (strcmp(mode_opt, "colormap") == 0 || B == 1)
        job->mode = MMCL__RGB_COLORMAP;
    else if (B == 3 && bands_given)
        job->mode = MMCL__RGB_DIRECT;
    else
        job->mode = MMCL__RGB_PCA;

    if (job->mode == MMCL__RGB_COLORMAP && B != 1)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "colormap mode shows one band, but %d are "
                           "selected; choose one with %s",
                           B, mmcl__opt_name(ctx, "BANDS"));
    if (job->mode == MMCL__RGB_DIRECT && B != 3)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "direct mode shows three bands as red, green and "
                           "blue, but %d %s selected; choose three with %s",
                           B, B == 1 ? "is" : "are", mmcl__opt_name(ctx, "BANDS"));
    if (job->mode == MMCL__RGB_PCA && B < 2)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "PCA needs at least two bands, but one is "
                           "selected; use the colormap mode for one band");
    if (job->mode == MMCL__RGB_PCA && B > MAX_PCA_BANDS)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "PCA of %d bands: at most %d are supported; "
                           "choose bands with %s",
                           B, MAX_PCA_BANDS, mmcl__opt_name(ctx, "BANDS"));
    if (job->mode == MMCL__RGB_PCA && range_given)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s applies to the colormap and direct modes; "
                           "principal components are stretched by "
                           "percentiles (%s)",
                           mmcl__opt_name(ctx, "RANGE"),
                           mmcl__opt_name(ctx, "STRETCH"));
    job->n_ch = job->mode == MMCL__RGB_PCA      ? (B < 3 ? B : 3)
                : job->mode == MMCL__RGB_DIRECT ? 3
                                           : 1;
    return MMCL_OK;
}

/*
 * The legend files beside @p out (<out base>.legend.png and .json, to be
 * freed), checked as outputs in @p files.
 */
static mmcl_status
legend_paths(mmcl_context *ctx, mmcl__files *files, const char *out,
             char **png, char **json)
{
    /* "x.tif" -> "x.legend.png"; a lazy "x.mmcl.json" -> the same. */
    char *base = CPLStrdup(out);
    size_t len = strlen(base);
    if (len > 10 && strcasecmp(base + len - 10, ".mmcl.json") == 0)
        base[len - 5] = '\0'; /* "x.mmcl", whose extension goes below */
    *png = mmcl__strdup(ctx, CPLResetExtension(base, "legend.png"));
    *json = mmcl__strdup(ctx, CPLResetExtension(base, "legend.json"));
    CPLFree(base);
    if (!*png || !*json)
        return MMCL_ERR_NO_MEMORY;
    mmcl_status st = mmcl__files_add_output(ctx, files, *png, "legend",
                                            MMCL__OUT_LEGEND_PNG, NULL, NULL);
    if (st == MMCL_OK)
        st = mmcl__files_add_output(ctx, files, *json, "legend description",
                                    MMCL__OUT_LEGEND_JSON, NULL, NULL);
    if (st == MMCL_ERR_EXISTS) {
        char *msg = CPLStrdup(mmcl_context_errmsg(ctx));
        mmcl__error(ctx, st, "%s (or %s)", msg,
                    mmcl__opt_setting(ctx, "LEGEND", "NO"));
        CPLFree(msg);
    }
    return st;
}

/* The job's arrays for @p job->B bands and @p job->n_ch channels. */
mmcl_status
mmcl__rgb_job_alloc(mmcl_context *ctx, mmcl__rgb_job *job, mmcl__rgb_info *info)
{
    size_t B = (size_t)job->B, C = (size_t)job->n_ch;
    job->mean = mmcl__calloc_array(ctx, B, 1, sizeof(double));
    job->vmin = mmcl__calloc_array(ctx, B, 1, sizeof(double));
    job->vmax = mmcl__calloc_array(ctx, B, 1, sizeof(double));
    job->delta = mmcl__calloc_array(ctx, B, 1, sizeof(double));
    job->hist = mmcl__calloc_array(ctx, C, HIST_BINS, sizeof(uint64_t));
    if (!job->mean || !job->vmin || !job->vmax || !job->delta || !job->hist)
        return MMCL_ERR_NO_MEMORY;
    if (job->mode != MMCL__RGB_PCA)
        return MMCL_OK;
    job->m2 = mmcl__calloc_array(ctx, B, B, sizeof(double));
    job->proj = mmcl__calloc_array(ctx, C, B, sizeof(float));
    job->center = mmcl__calloc_array(ctx, B, 1, sizeof(float));
    info->loadings = mmcl__calloc_array(ctx, C, B, sizeof(double));
    if (!job->m2 || !job->proj || !job->center || !info->loadings)
        return MMCL_ERR_NO_MEMORY;
    return MMCL_OK;
}

void
mmcl__rgb_job_free(mmcl__rgb_job *job)
{
    free(job->sel);
    free(job->mean);
    free(job->m2);
    free(job->vmin);
    free(job->vmax);
    free(job->delta);
    free(job->proj);
    free(job->center);
    free(job->hist);
}

/*
 * After pass 1 in PCA mode: the top components of the covariance
 * m2 / count (mmcl__pca), their projections and loadings, the explained
 * variance, and for each component a bound on |PC| over the valid pixels,
 *   |v . (x - mean)| <= sum_i |v_i| max(|min_i - mean_i|, |max_i - mean_i|),
 * which is the range of its histogram.
 */
static mmcl_status
components(mmcl_context *ctx, mmcl__rgb_job *job, mmcl__rgb_info *info)
{
    int B = job->B, C = job->n_ch;
    double *cov = mmcl__malloc_array(ctx, (size_t)B, (size_t)B, sizeof(double));
    double *V = mmcl__malloc_array(ctx, (size_t)B, (size_t)C, sizeof(double));
    mmcl_status st = cov && V ? MMCL_OK : MMCL_ERR_NO_MEMORY;
    for (size_t i = 0; st == MMCL_OK && i < (size_t)B * B; i++)
        cov[i] = job->m2[i] / job->count;
    if (st == MMCL_OK)
        st = mmcl__pca(ctx, V, info->lambda, cov, B, C);
    if (st != MMCL_OK)
        goto done;
    for (int b = 0; b < B; b++) {
        info->total_var += cov[(size_t)b * B + b];
        job->center[b] = (float)job->mean[b];
    }
    for (int c = 0; c < C; c++) {
        double bound = 0.0;
        for (int b = 0; b < B; b++) {
            double v = V[(size_t)b * C + c];
            double dev = fmax(fabs(job->vmin[b] - job->mean[b]),
                              fabs(job->vmax[b] - job->mean[b]));
            job->proj[(size_t)c * B + b] = (float)v;
            info->loadings[(size_t)c * B + b] = v;
            bound += fabs(v) * dev;
        }
        info->lambda[c] = fmax(info->lambda[c], 0.0); /* rounding */
        info->explained[c] =
            info->total_var > 0.0 ? info->lambda[c] / info->total_var : 0.0;
        job->hlo[c] = -bound;
        job->hhi[c] = bound;
    }
done:
    free(cov);
    free(V);
    return st;
}

/* Histogram ranges of band channels (their min and max); a constant
 * channel gets a unit range. */
static void
hist_ranges(mmcl__rgb_job *job)
{
    for (int c = 0; c < job->n_ch; c++) {
        if (job->mode != MMCL__RGB_PCA) {
            job->hlo[c] = job->vmin[c];
            job->hhi[c] = job->vmax[c];
        }
        if (!(job->hhi[c] > job->hlo[c]))
            job->hhi[c] = job->hlo[c] + 1.0;
    }
}

/*
 * The stretch limits of each channel: the percentiles from the histograms
 * of pass 2, or RANGE; made symmetric about 0 for a diverging colour map
 * (so that its middle colour is 0).
 */
static void
stretch_limits(mmcl_context *ctx, mmcl__rgb_job *job,
               const mmcl__rgb_info *info, double range_lo, double range_hi)
{
    for (int c = 0; c < job->n_ch; c++) {
        const uint64_t *h = job->hist + (size_t)c * HIST_BINS;
        if (info->range_given) {
            job->lo[c] = range_lo;
            job->hi[c] = range_hi;
            continue;
        }
        job->lo[c] = hist_percentile(h, job->hlo[c], job->hhi[c], job->count,
                                     info->p_lo);
        job->hi[c] = hist_percentile(h, job->hlo[c], job->hhi[c], job->count,
                                     info->p_hi);
    }
    if (info->diverging && !info->range_given) {
        double m = fmax(fabs(job->lo[0]), fabs(job->hi[0]));
        job->lo[0] = m > 0.0 ? -m : -1.0;
        job->hi[0] = m > 0.0 ? m : 1.0;
    }
    for (int c = 0; c < job->n_ch; c++)
        if (!(job->hi[c] > job->lo[c])) {
            mmcl__log(ctx, MMCL_LOG_WARNING,
                      "channel %d of the picture is constant (%g)", c + 1,
                      job->lo[c]);
            job->hi[c] = job->lo[c] + 1.0;
        }
}

/* Descriptions of the four output bands (a CSL to be destroyed). */
char **
mmcl__rgb_band_names(const mmcl__rgb_source *src, const mmcl__rgb_job *job)
{
    char **names = NULL;
    for (int c = 0; c < 3; c++) {
        if (job->mode == MMCL__RGB_PCA)
            names = CSLAddString(
                names, c < job->n_ch ? CPLSPrintf("PC%d", c + 1) : "none");
        else if (job->mode == MMCL__RGB_DIRECT)
            names = CSLAddString(names, band_label(src, job->sel[c]));
        else
            names = CSLAddString(names, c == 0   ? "red"
                                        : c == 1 ? "green"
                                                 : "blue");
    }
    return CSLAddString(names, "alpha");
}

/* LAZY: what does not apply to a descriptor, and an existing one. */
static mmcl_status
lazy_check(mmcl_context *ctx, const mmcl_options *o, const char *out)
{
    static const char *const refused[] = {"FORMAT", "CO", NULL};
    mmcl_status st = mmcl__opt_refuse_for_lazy(
        ctx, o, refused, "the picture is rendered when read");
    if (st != MMCL_OK)
        return st;
    if (!out || !*out)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no output given");
    return MMCL_OK;
}

static cJSON *
json_doubles(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/*
 * The descriptor of a lazy picture: its source and every statistic the
 * rendering needs (cJSON prints doubles so that they read back to the same
 * bits), then the legend, renamed once the descriptor is in place.
 */
static mmcl_status
write_lazy(mmcl_context *ctx, mmcl__files *files, const mmcl__rgb_job *job,
           const mmcl__rgb_info *info, const mmcl_options *o, const char *out,
           const char *first_name, const char *legend_png,
           const char *legend_json)
{
    const mmcl__descriptor_hooks *dh = mmcl__descriptor_hooks_get();
    if (!dh)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "'%s': lazy descriptors are not available", out);
    mmcl__stage *stages[3] = {NULL, NULL, NULL};
    mmcl_status st = MMCL_OK;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "mmcl_descriptor", MMCL__DESCRIPTOR_VERSION);
    cJSON_AddStringToObject(j, "product", "rgb");
    cJSON_AddItemToObject(j, "source",
                          dh->stored_path(out, job->in));
    cJSON *bands = cJSON_AddArrayToObject(j, "bands");
    for (int b = 0; b < job->B; b++)
        cJSON_AddItemToArray(bands, cJSON_CreateNumber(job->sel[b]));
    cJSON_AddStringToObject(j, "mode", mode_names[job->mode]);
    if (info->range_given) {
        cJSON_AddItemToObject(j, "range", json_doubles(job->lo, 1));
        cJSON_AddItemToArray(cJSON_GetObjectItem(j, "range"),
                             cJSON_CreateNumber(job->hi[0]));
    } else {
        double p[2] = {info->p_lo, info->p_hi};
        cJSON_AddItemToObject(j, "stretch", json_doubles(p, 2));
    }
    cJSON *limits = cJSON_AddArrayToObject(j, "limits");
    for (int c = 0; c < job->n_ch; c++) {
        double lh[2] = {job->lo[c], job->hi[c]};
        cJSON_AddItemToArray(limits, json_doubles(lh, 2));
    }
    cJSON_AddNumberToObject(j, "valid_pixels", job->count);
    if (job->mode == MMCL__RGB_COLORMAP)
        cJSON_AddStringToObject(j, "colormap", info->colormap);
    if (job->mode == MMCL__RGB_PCA) {
        cJSON *pca = cJSON_AddObjectToObject(j, "pca");
        cJSON_AddItemToObject(pca, "mean", json_doubles(job->mean, job->B));
        cJSON *comp = cJSON_AddArrayToObject(pca, "components");
        for (int c = 0; c < job->n_ch; c++)
            cJSON_AddItemToArray(comp,
                                 json_doubles(info->loadings +
                                                  (size_t)c * job->B,
                                              job->B));
        cJSON_AddItemToObject(pca, "eigenvalues",
                              json_doubles(info->lambda, job->n_ch));
        cJSON_AddItemToObject(pca, "explained_variance",
                              json_doubles(info->explained, job->n_ch));
        cJSON_AddNumberToObject(pca, "total_variance", info->total_var);
    }
    if (legend_png)
        cJSON_AddStringToObject(j, "legend", CPLGetFilename(legend_png));
    if (mmcl__opt_given(o, "TILE"))
        cJSON_AddNumberToObject(j, "tile", (double)job->tile);
    if (mmcl__opt_given(o, "THREADS"))
        cJSON_AddNumberToObject(j, "threads",
                                (double)mmcl__opt_int(o, "THREADS"));
    /* The descriptor, then its legend: written, then all in place. */
    size_t n = legend_png ? 3 : 1;
    stages[0] = mmcl__stage_create(ctx, files, out);
    if (stages[0] && legend_png) {
        stages[1] = mmcl__stage_create(ctx, files, legend_png);
        stages[2] = stages[1] ? mmcl__stage_create(ctx, files, legend_json)
                              : NULL;
    }
    if (!stages[n - 1])
        st = mmcl_context_errcode(ctx);
    if (st == MMCL_OK && legend_png)
        st = write_legend(ctx, job, info, first_name, out, legend_png,
                          stages[1], stages[2]);
    if (st == MMCL_OK)
        st = dh->write(ctx, stages[0], out, j);
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, stages, n, NULL, NULL, 1.0);
    for (size_t i = 0; i < 3; i++)
        mmcl__stage_destroy(stages[i]);
    cJSON_Delete(j);
    return st;
}

/* One run of mmcl_rgb: what its steps share, freed by run_free(). */
typedef struct rgb_run {
    const char *in, *out;
    const mmcl_options *o;
    char **co; /* CO (the options own it) */
    int lazy;
    double range_lo, range_hi; /* RANGE */
    const char *format;        /* the output's, once known not lazy */
    mmcl__files *files;
    mmcl__rgb_source src;
    mmcl__rgb_job job;
    mmcl__rgb_info info;
    char *first_name; /* description of the first selected band */
    char *legend_png, *legend_json;
    int n_threads;
    double p_end1, p_end2; /* progress at the end of passes 1 and 2 */
    char **band_names;
    mmcl__stage *legend_stage[2];
    int shift_field; /* the input is a coreg raster: drawn apart */
} rgb_run;

/* Options that need no input. */
static mmcl_status
run_options(mmcl_context *ctx, rgb_run *r)
{
    const mmcl_options *o = r->o;
    mmcl__rgb_info *info = &r->info;
    r->co = mmcl__opt_list(o, "CO");
    r->lazy = mmcl__opt_bool(o, "LAZY");
    info->range_given = mmcl__opt_str(o, "RANGE") != NULL;
    if (!parse_pair(mmcl__opt_str(o, "STRETCH"), &info->p_lo, &info->p_hi) ||
        info->p_lo < 0.0 || info->p_hi > 100.0 || info->p_lo >= info->p_hi)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s must be two percentiles LOW,HIGH with 0 <= "
                           "LOW < HIGH <= 100, got '%s'",
                           mmcl__opt_name(ctx, "STRETCH"),
                           mmcl__opt_str(o, "STRETCH"));
    if (info->range_given &&
        (!parse_pair(mmcl__opt_str(o, "RANGE"), &r->range_lo, &r->range_hi) ||
         r->range_lo >= r->range_hi))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s must be MIN,MAX with MIN < MAX, got '%s'",
                           mmcl__opt_name(ctx, "RANGE"),
                           mmcl__opt_str(o, "RANGE"));
    return MMCL_OK;
}

/* The input (and what it reads), and the output, before any work. */
static mmcl_status
run_targets(mmcl_context *ctx, rgb_run *r)
{
    r->files = mmcl__files_create(ctx, mmcl__opt_bool(r->o, "OVERWRITE"));
    if (!r->files)
        return MMCL_ERR_NO_MEMORY;
    mmcl_status st = r->lazy ? lazy_check(ctx, r->o, r->out) : MMCL_OK;
    if (st == MMCL_OK)
        st = mmcl__files_add_input(ctx, r->files, r->in);
    if (st == MMCL_OK && mmcl__opt_str(r->o, "OVER"))
        st = mmcl__files_add_input(ctx, r->files, mmcl__opt_str(r->o, "OVER"));
    if (st == MMCL_OK && r->lazy)
        st = mmcl__files_add_output(ctx, r->files, r->out, "output",
                                    MMCL__OUT_DESCRIPTOR, "rgb", NULL);
    else if (st == MMCL_OK)
        st = mmcl__output_check_options(ctx, r->files, r->out, r->o, r->co,
                                        GDT_Byte, "rgb", &r->format);
    if (st == MMCL_OK && r->format && strcasecmp(r->format, "JPEG") == 0) {
        /* GDAL writes four JPEG bands as CMYK: a wrong picture. */
        st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                         "output '%s': JPEG cannot hold the alpha band of "
                         "the picture; name it .png or .tif, or give -of "
                         "PNG, GTiff or COG",
                         r->out);
    }
    return st;
}

/* The input (a raster or a lazy product), the bands to show and the
 * mode. */
static mmcl_status
run_source(mmcl_context *ctx, rgb_run *r)
{
    mmcl__rgb_source *src = &r->src;
    mmcl__rgb_info *info = &r->info;
    mmcl_status st = mmcl__rgb_source_open(ctx, r->in, src);
    if (st != MMCL_OK)
        return st;
    r->job.src = src;
    info->source_product =
        src->product_kind ? CPLStrdup(src->product_kind) : NULL;
    info->units = src->units ? CPLStrdup(src->units) : NULL;
    if (info->source_product && strcmp(info->source_product, "coreg") == 0 &&
        !src->product) {
        r->shift_field = 1; /* its own picture: mmcl__rgb_shift */
        return MMCL_OK;
    }
    const char *bands_spec = mmcl__opt_str(r->o, "BANDS");
    const char *mode_opt = mmcl__opt_str(r->o, "MODE");
    int n_in = src->n_bands;
    /* An info-loss map is a stack of related maps, not a feature vector:
     * without BANDS its primary band (the first) is shown. */
    int loss_default =
        !bands_spec && n_in > 1 && info->source_product &&
        (strcmp(info->source_product, "infoloss") == 0 ||
         strcmp(info->source_product, "audit") == 0) &&
        (strcmp(mode_opt, "auto") == 0 || strcmp(mode_opt, "colormap") == 0);
    st = select_bands(ctx, src, r->in, loss_default ? "1" : bands_spec,
                      &r->job.sel, &r->job.B);
    if (st == MMCL_OK)
        st = mmcl__rgb_check_types(ctx, src, r->in, &r->job);
    if (st == MMCL_OK)
        st = mmcl__rgb_choose_mode(ctx, &r->job, mode_opt, bands_spec != NULL,
                         info->range_given);
    if (st != MMCL_OK)
        return st;
    r->first_name = CPLStrdup(band_label(src, r->job.sel[0]));
    return MMCL_OK;
}

/* Colormap mode: the colour map (auto: diverging for the signed loss
 * bands: excess and the structured bands), and the legend files beside
 * the output. */
static mmcl_status
run_colormap(mmcl_context *ctx, rgb_run *r)
{
    const char *cm = mmcl__opt_str(r->o, "COLORMAP");
    if (strcmp(cm, "auto") == 0)
        cm = strncasecmp(r->first_name, "excess", 6) == 0 ||
                     strncasecmp(r->first_name, "structured_", 11) == 0
                 ? "rdbu_r"
                 : "viridis";
    r->info.colormap = cm;
    r->info.diverging = strcmp(cm, "rdbu_r") == 0;
    r->job.lut = mmcl__colormap(cm);
    if (!mmcl__opt_bool(r->o, "LEGEND"))
        return MMCL_OK;
    return legend_paths(ctx, r->files, r->out, &r->legend_png, &r->legend_json);
}

/* Pass 1: statistics; then the histogram ranges: the band ranges, or
 * bounds of the components. */
static mmcl_status
run_stats(mmcl_context *ctx, rgb_run *r)
{
    mmcl__rgb_job *job = &r->job;
    r->n_threads = mmcl__opt_threads(r->o);
    job->in = r->in;
    job->tile = (int)mmcl__opt_int(r->o, "TILE");
    mmcl_status st = mmcl__rgb_job_alloc(ctx, job, &r->info);
    if (st != MMCL_OK)
        return st;
    int use_hist = !r->info.range_given;
    r->p_end1 = use_hist ? 0.3 : 0.4;
    r->p_end2 = use_hist ? 0.6 : r->p_end1;
    st = run_pass(ctx, job, MMCL__RGB_PASS_STATS, r->src.width, r->src.height,
                  r->n_threads, r->o, 0.0, r->p_end1);
    if (st != MMCL_OK)
        return st;
    if (job->count == 0.0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "'%s' has no valid pixel in the selected band%s "
                           "(all nodata, NaN or masked): nothing to show",
                           r->in, job->B == 1 ? "" : "s");
    st = job->mode == MMCL__RGB_PCA ? components(ctx, job, &r->info) : MMCL_OK;
    if (st != MMCL_OK)
        return st;
    hist_ranges(job);
    return MMCL_OK;
}

/* Pass 2: percentiles, or the fixed range. */
static mmcl_status
run_limits(mmcl_context *ctx, rgb_run *r)
{
    if (!r->info.range_given) {
        mmcl_status st =
            run_pass(ctx, &r->job, MMCL__RGB_PASS_HIST, r->src.width,
                     r->src.height, r->n_threads, r->o, r->p_end1, r->p_end2);
        if (st != MMCL_OK)
            return st;
    }
    stretch_limits(ctx, &r->job, &r->info, r->range_lo, r->range_hi);
    return MMCL_OK;
}

/* The picture's writer: four Byte bands, RGBA, on the input's grid. */
void
mmcl__rgb_set_rgba(GDALDatasetH ds)
{
    static const GDALColorInterp ci[4] = {GCI_RedBand, GCI_GreenBand,
                                          GCI_BlueBand, GCI_AlphaBand};
    for (int b = 0; b < 4; b++)
        GDALSetRasterColorInterpretation(GDALGetRasterBand(ds, b + 1), ci[b]);
}

static mmcl_status
run_open_picture(mmcl_context *ctx, rgb_run *r)
{
    r->band_names = mmcl__rgb_band_names(&r->src, &r->job);
    mmcl__raster_spec spec = {0};
    spec.path = r->out;
    spec.format = r->format;
    spec.creation_options = r->co;
    spec.files = r->files;
    spec.product = "rgb";
    spec.width = r->src.width;
    spec.height = r->src.height;
    spec.n_bands = 4;
    spec.type = GDT_Byte;
    memcpy(spec.geotransform, r->src.gt, sizeof(r->src.gt));
    spec.srs_wkt = r->src.wkt;
    spec.band_names = (const char *const *)r->band_names;
    spec.block = r->job.tile;
    spec.n_threads = r->n_threads;
    r->job.writer = mmcl__writer_open(ctx, &spec);
    if (!r->job.writer)
        return mmcl_context_errcode(ctx);
    mmcl__rgb_set_rgba(mmcl__writer_dataset(r->job.writer));
    return MMCL_OK;
}

/* The legend, staged beside the picture. */
static mmcl_status
run_legend(mmcl_context *ctx, rgb_run *r)
{
    r->legend_stage[0] = mmcl__stage_create(ctx, r->files, r->legend_png);
    r->legend_stage[1] = r->legend_stage[0]
                             ? mmcl__stage_create(ctx, r->files, r->legend_json)
                             : NULL;
    return r->legend_stage[1]
               ? write_legend(ctx, &r->job, &r->info, r->first_name, r->out,
                              r->legend_png, r->legend_stage[0],
                              r->legend_stage[1])
               : mmcl_context_errcode(ctx);
}

/* The margin of the legend drawn into a picture, pixels. */
enum { INSET_MARGIN = 8 };

/* LEGEND_INSET: a colour scale, and room for it in a written picture. */
static mmcl_status
check_inset(mmcl_context *ctx, const rgb_run *r)
{
    if (!mmcl__opt_bool(r->o, "LEGEND_INSET"))
        return MMCL_OK;
    if (r->job.mode != MMCL__RGB_COLORMAP)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s draws a colour scale, which only a picture of "
                           "one band through a colour map has",
                           mmcl__opt_name(ctx, "LEGEND_INSET"));
    if (r->lazy)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s draws into a written picture, not a lazy one "
                           "(its legend is written beside the descriptor)",
                           mmcl__opt_name(ctx, "LEGEND_INSET"));
    if (r->src.width < MMCL__LEGEND_W + 2 * INSET_MARGIN ||
        r->src.height < MMCL__LEGEND_H + 2 * INSET_MARGIN)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "the %d x %d picture is too small for the %d x %d "
                           "colour scale inset (at least %d x %d pixels); "
                           "the legend beside it is written without %s",
                           r->src.width, r->src.height, MMCL__LEGEND_W,
                           MMCL__LEGEND_H, MMCL__LEGEND_W + 2 * INSET_MARGIN,
                           MMCL__LEGEND_H + 2 * INSET_MARGIN,
                           mmcl__opt_name(ctx, "LEGEND_INSET"));
    return MMCL_OK;
}

/* LEGEND_INSET: the colour scale drawn over the written picture's lower
 * left corner, opaque, INSET_MARGIN pixels from the edges. */
static mmcl_status
draw_inset(mmcl_context *ctx, rgb_run *r)
{
    double ticks[MMCL__LEGEND_TICKS];
    int tick_x[MMCL__LEGEND_TICKS];
    char title[256];
    const char *font = NULL;
    unsigned char *rgba = legend_image(ctx, &r->job, &r->info, r->first_name,
                                       title, sizeof(title), ticks, tick_x,
                                       &font);
    if (!rgba)
        return MMCL_ERR_NO_MEMORY;
    GDALDatasetH wds = mmcl__writer_dataset(r->job.writer);
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    CPLErr err = GDALDatasetRasterIO(
        wds, GF_Write, INSET_MARGIN,
        r->src.height - MMCL__LEGEND_H - INSET_MARGIN, MMCL__LEGEND_W,
        MMCL__LEGEND_H, rgba, MMCL__LEGEND_W, MMCL__LEGEND_H, GDT_Byte, 4,
        NULL, 0, 0, 0);
    mmcl__gdal_capture_end(&cap);
    free(rgba);
    if (err != CE_None)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot draw the colour scale into '%s': %s",
                           r->out, mmcl__gdal_msg(&cap));
    GDALSetMetadataItem(wds, "LEGEND_INSET",
                        CPLSPrintf("%d,%d,%d,%d", INSET_MARGIN,
                                   r->src.height - MMCL__LEGEND_H -
                                       INSET_MARGIN,
                                   MMCL__LEGEND_W, MMCL__LEGEND_H),
                        "MMCL");
    return MMCL_OK;
}

/* The picture finished and, with its legend (staged), put under their
 * final names together, or neither. */
static mmcl_status
commit_picture(mmcl_context *ctx, rgb_run *r, double split)
{
    void *puser = NULL;
    mmcl_progress_fn progress = mmcl__opt_progress(r->o, &puser);
    mmcl_status st = mmcl__writer_finish(ctx, r->job.writer, progress, puser,
                                         split, 1.0);
    mmcl__stage *stages[3] = {mmcl__writer_stage(r->job.writer),
                              r->legend_stage[0], r->legend_stage[1]};
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, stages, r->legend_png ? 3 : 1, progress,
                                 puser, 1.0);
    return st;
}

/* Pass 3: the picture and its legend, then both under their final names
 * together, or neither. */
static mmcl_status
run_picture(mmcl_context *ctx, rgb_run *r)
{
    mmcl__rgb_job *job = &r->job;
    double split = mmcl__writer_progress_split(job->writer, r->p_end2, 1.0);
    mmcl_status st = write_metadata(ctx, job, &r->info, r->legend_png);
    if (st == MMCL_OK)
        st = run_pass(ctx, job, MMCL__RGB_PASS_WRITE, r->src.width,
                      r->src.height, r->n_threads, r->o, r->p_end2, split);
    if (st == MMCL_OK && mmcl__opt_bool(r->o, "LEGEND_INSET"))
        st = draw_inset(ctx, r);
    if (st == MMCL_OK && r->legend_png)
        st = run_legend(ctx, r);
    if (st == MMCL_OK)
        st = commit_picture(ctx, r, split);
    if (st == MMCL_OK && job->mode == MMCL__RGB_PCA)
        mmcl__log(ctx, MMCL_LOG_INFO,
                  "PCA of %d bands: the components shown explain %.1f%%, "
                  "%.1f%%, %.1f%% of the variance",
                  job->B, 100.0 * r->info.explained[0],
                  100.0 * r->info.explained[1],
                  job->n_ch > 2 ? 100.0 * r->info.explained[2] : 0.0);
    return st;
}

/* What the picture of a shift field needs of the run, its legend files
 * checked as outputs. */
static mmcl_status
shift_args(mmcl_context *ctx, rgb_run *r, mmcl__rgb_shift_args *a)
{
    mmcl_status st = MMCL_OK;
    if (mmcl__opt_bool(r->o, "LEGEND") && !r->lazy)
        st = legend_paths(ctx, r->files, r->out, &r->legend_png,
                          &r->legend_json);
    memset(a, 0, sizeof(*a));
    a->in = r->in;
    a->out = r->out;
    a->over = mmcl__opt_str(r->o, "OVER");
    a->o = r->o;
    a->files = r->files;
    a->format = r->format;
    a->co = r->co;
    a->legend_png = r->legend_png;
    a->legend_json = r->legend_json;
    a->range_given = r->info.range_given;
    a->range_lo = r->range_lo;
    a->range_hi = r->range_hi;
    return st;
}

/* A shift field (a coreg raster): the colour wheel picture and its
 * legend (rgb_coreg.c). */
static mmcl_status
run_shift_field(mmcl_context *ctx, rgb_run *r)
{
    mmcl__rgb_shift_args a;
    mmcl_status st = shift_args(ctx, r, &a);
    return st == MMCL_OK ? mmcl__rgb_shift(ctx, &a) : st;
}

/*
 * A shift field over an optical raster (--over): the picture of the
 * optical raster as mmcl rgb makes it (its PCA, or the bands given; one
 * band in grey), on its grid, each block's colour of the wheel blended
 * over the block's pixels; the wheel's legend.
 */
static mmcl_status
run_shift_over(mmcl_context *ctx, rgb_run *r)
{
    mmcl__rgb_shift_args a;
    mmcl__shift_wheel wheel = {0};
    char **md = NULL;
    mmcl_status st = shift_args(ctx, r, &a);
    if (st == MMCL_OK)
        st = mmcl__shift_wheel_open(ctx, &a, &wheel);
    if (st != MMCL_OK)
        goto done;
    /* The optical raster's picture: its source, bands and mode, the
     * percentile stretch (--range is the wheel's). */
    mmcl__rgb_source_close(&r->src);
    CPLFree(r->info.source_product);
    CPLFree(r->info.units);
    r->info.source_product = r->info.units = NULL;
    r->info.range_given = 0;
    r->in = a.over;
    r->shift_field = 0;
    st = run_source(ctx, r);
    if (st == MMCL_OK && r->shift_field)
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "%s '%s' is a shift field too: give the optical "
                         "raster the shift field '%s' was measured on",
                         mmcl__opt_name(ctx, "OVER"), a.over, a.in);
    if (st != MMCL_OK)
        goto done;
    /* The field lies on the optical grid at block spacing, as a
     * correction's field must. */
    char label[1100];
    snprintf(label, sizeof(label), "optical '%s'", a.over);
    mmcl__grid g = {r->src.width, r->src.height, {0}, r->src.wkt, label};
    memcpy(g.gt, r->src.gt, sizeof(g.gt));
    int block = 0;
    st = mmcl__shift_field_check(ctx, a.in, &g, &block);
    if (st != MMCL_OK)
        goto done;
    wheel.block = block;
    if (r->job.mode == MMCL__RGB_COLORMAP) {
        const char *cm = mmcl__opt_str(r->o, "COLORMAP");
        r->info.colormap = strcmp(cm, "auto") == 0 ? "gray" : cm;
        r->job.lut = mmcl__colormap(r->info.colormap);
    }
    st = run_stats(ctx, r);
    if (st == MMCL_OK)
        st = run_limits(ctx, r);
    if (st == MMCL_OK)
        st = run_open_picture(ctx, r);
    if (st != MMCL_OK)
        goto done;
    r->job.wheel = &wheel;
    /* What the optical picture is, then what the wheel is. */
    md = mmcl__rgb_metadata(&r->job, &r->info, NULL);
    md = CSLSetNameValue(md, "OVER_MODE", mode_names[r->job.mode]);
    if (r->job.mode == MMCL__RGB_COLORMAP)
        md = CSLSetNameValue(md, "OVER_COLORMAP", r->info.colormap);
    md = mmcl__shift_wheel_metadata(md, &a, &wheel, wheel.block);
    double split = mmcl__writer_progress_split(r->job.writer, r->p_end2, 1.0);
    st = mmcl__writer_set_metadata_list(ctx, r->job.writer, md);
    if (st == MMCL_OK)
        st = run_pass(ctx, &r->job, MMCL__RGB_PASS_WRITE, r->src.width,
                      r->src.height, r->n_threads, r->o, r->p_end2, split);
    if (st == MMCL_OK && r->legend_png) {
        r->legend_stage[0] = mmcl__stage_create(ctx, r->files, r->legend_png);
        r->legend_stage[1] =
            r->legend_stage[0]
                ? mmcl__stage_create(ctx, r->files, r->legend_json)
                : NULL;
        st = r->legend_stage[1]
                 ? mmcl__shift_wheel_legend(ctx, &a, &wheel,
                                            r->legend_stage[0],
                                            r->legend_stage[1])
                 : mmcl_context_errcode(ctx);
    }
    if (st == MMCL_OK)
        st = commit_picture(ctx, r, split);
    if (st == MMCL_OK)
        mmcl__shift_wheel_log(ctx, &wheel);
done:
    r->job.wheel = NULL;
    CSLDestroy(md);
    mmcl__shift_wheel_free(&wheel);
    return st;
}

/* Frees what the steps made; an output not committed is removed. */
static void
run_free(rgb_run *r)
{
    mmcl__writer_abort(r->job.writer);
    mmcl__stage_destroy(r->legend_stage[0]);
    mmcl__stage_destroy(r->legend_stage[1]);
    free(r->legend_png);
    free(r->legend_json);
    CSLDestroy(r->band_names);
    free(r->info.loadings);
    CPLFree(r->info.source_product);
    CPLFree(r->info.units);
    CPLFree(r->first_name);
    mmcl__rgb_job_free(&r->job);
    mmcl__rgb_source_close(&r->src);
    mmcl__files_destroy(r->files);
}

mmcl_status
mmcl_rgb(mmcl_context *ctx, const char *in, const char *out,
         const mmcl_options *opts_in)
{
    mmcl__error_clear(ctx);
    mmcl__blas_kernel_warn_once();
    mmcl_options *tmp = NULL;
    const mmcl_options *o = NULL;
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "rgb", &tmp, &o);
    if (st != MMCL_OK)
        return st;
    if (!in || !*in) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no input raster given");
        mmcl_options_free(tmp);
        return st;
    }
    rgb_run r = {0};
    r.in = in;
    r.out = out;
    r.o = o;
    st = run_options(ctx, &r);
    if (st == MMCL_OK)
        st = run_targets(ctx, &r);
    if (st == MMCL_OK)
        st = run_source(ctx, &r);
    const char *over = mmcl__opt_str(o, "OVER");
    if (st == MMCL_OK && over && !r.shift_field)
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "%s draws a shift field (mmcl coreg) over an "
                         "optical raster, but '%s' is not a shift field%s%s%s",
                         mmcl__opt_name(ctx, "OVER"), in,
                         r.info.source_product ? " (it is an mmcl " : "",
                         r.info.source_product ? r.info.source_product : "",
                         r.info.source_product ? " raster)" : "");
    if (st == MMCL_OK && r.shift_field) {
        st = over ? run_shift_over(ctx, &r) : run_shift_field(ctx, &r);
        run_free(&r);
        mmcl_options_free(tmp);
        return st;
    }
    if (st == MMCL_OK && r.job.mode == MMCL__RGB_COLORMAP)
        st = run_colormap(ctx, &r);
    if (st == MMCL_OK)
        st = check_inset(ctx, &r);
    if (st == MMCL_OK)
        st = run_stats(ctx, &r);
    if (st == MMCL_OK)
        st = run_limits(ctx, &r);
    if (st == MMCL_OK && r.lazy) {
        /* The descriptor: the statistics, rendered when read. */
        st = write_lazy(ctx, r.files, &r.job, &r.info, o, out, r.first_name,
                        r.legend_png, r.legend_json);
        /* The passes over the input were the work: done. */
        void *puser = NULL;
        mmcl_progress_fn progress = mmcl__opt_progress(o, &puser);
        if (st == MMCL_OK && progress)
            progress(1.0, NULL, puser);
    } else if (st == MMCL_OK) {
        st = run_open_picture(ctx, &r);
        if (st == MMCL_OK)
            st = run_picture(ctx, &r);
    }
    run_free(&r);
    mmcl_options_free(tmp);
    return st;
}
