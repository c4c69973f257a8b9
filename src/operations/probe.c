/* SPDX-License-Identifier: MIT */
/*
 * mmcl_probe: linear probes of a model's representations against a label
 * raster, cross-validated over spatial blocks (design section 3.6).
 *
 * Pass 1 streams the tiles and counts, per tile row, the pixels whose patch
 * is valid in both modalities and whose label is valid. Those pixels are
 * ranked in raster order (row-major over the whole grid), and SAMPLES ranks
 * are chosen uniformly (Knuth's selection sampling, seeded), so the sample
 * depends on neither TILE nor THREADS. Pass 2 extracts the chosen patch
 * vectors, standardized with the model's statistics, and their labels. The
 * encoders then run on the sample, and each representation is probed by
 * ridge regression: the fit of the fold that holds block b out comes from
 * the sufficient statistics of all samples minus those of block b, in
 * double. Memory grows with the sample (its patch vectors are kept).
 *
 * The held-out predictions of every representation are kept, and the
 * figures analysts report come from them: per class the confusion matrix,
 * precision, recall, F1 and IoU, and overall and balanced accuracy, macro
 * F1 and mean IoU, beside the majority-class baseline; R2, RMSE and MAE
 * for a continuous target. With MAP, pass 3 streams the tiles once more and
 * writes the prediction of one representation at every valid labelled
 * pixel: a sampled pixel gets its held-out prediction (the one the figures
 * count), any other the prediction of the probe fitted without its block.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cjson/cJSON.h>
#include <cpl_string.h>
#include <ogr_srs_api.h>

#include "mmcl/probe.h"

#include "blas_info_internal.h"
#include "context_internal.h"
#include "embedding_raster_internal.h"
#include "gdal_util_internal.h"
#include "linalg.h"
#include "maps_internal.h"
#include "options_internal.h"
#include "output_internal.h"
#include "ridge.h"
#include "rng.h"
#include "sample_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

enum {
    PROBE_CHUNK = 1024, /* rows per BLAS call in the fits */
    MAX_CLASSES = 256
};

/* ---- labels on the optical grid --------------------------------------- */

/* How the label band is read onto the optical grid. */
typedef struct label_src {
    const char *path;
    int band;        /* 1-based */
    int warp;        /* on another grid: warped with nearest neighbour */
    char *wkt;       /* label CRS (warp only) */
    double gt[6];    /* label geotransform (warp only) */
    int width, height;
    int has_nodata;  /* nodata: the value that marks invalid labels */
    double nodata;
    int classes;     /* negative values are invalid */
    mmcl__grid_source *src; /* the band on the optical grid */
} label_src;

static int
label_ok(const label_src *l, double v)
{
    if (!isfinite(v))
        return 0;
    if (l->has_nodata && v == l->nodata)
        return 0;
    return !(l->classes && v < 0);
}

/* 1 when the label grid is the optical grid to a thousandth of a pixel. */
static int
same_geotransform(const double a[6], const double b[6])
{
    double px = fmax(fabs(b[1]) + fabs(b[2]), fabs(b[4]) + fabs(b[5]));
    for (int k = 0; k < 6; k++)
        if (fabs(a[k] - b[k]) > 1e-3 * px)
            return 0;
    return 1;
}

/* Which label values are invalid: LABEL_NODATA, else the band's nodata
 * value, else (classes without one) -1. */
static void
label_validity(label_src *lab, GDALRasterBandH band, const mmcl_options *o,
               int classes)
{
    int has_nd = 0;
    double nd = GDALGetRasterNoDataValue(band, &has_nd);
    if (mmcl__opt_given(o, "LABEL_NODATA")) {
        lab->has_nodata = 1;
        lab->nodata = mmcl__opt_double(o, "LABEL_NODATA");
    } else if (has_nd && !isnan(nd)) {
        lab->has_nodata = 1;
        lab->nodata = nd;
    } else if (classes && !has_nd) {
        lab->has_nodata = 1;
        lab->nodata = -1.0;
    }
}

/* Where the label raster @p ds lies: on the optical grid (same size, CRS
 * and geotransform, or no geotransform and the same size), or on another
 * grid, to be warped (lab->warp, its CRS in lab->wkt). */
static mmcl_status
label_place(mmcl_context *ctx, const mmcl__pair *pair, GDALDatasetH ds,
            label_src *lab)
{
    const char *path = lab->path;
    int W = mmcl__pair_width(pair), H = mmcl__pair_height(pair);
    int lw = lab->width, lh = lab->height;
    double ogt[6];
    mmcl__pair_geotransform(pair, ogt);
    int has_gt = GDALGetGeoTransform(ds, lab->gt) == CE_None;
    OGRSpatialReferenceH lsrs = GDALGetSpatialRef(ds);
    if (!has_gt) {
        if (lw != W || lh != H)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "label raster '%s' has no geotransform and is "
                               "%d x %d, not the %d x %d optical grid: it "
                               "cannot be placed",
                               path, lw, lh, W, H);
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "label raster '%s' has no geotransform; taken to be on "
                  "the optical grid (same size)",
                  path);
        return MMCL_OK;
    }
    OGRSpatialReferenceH opt_srs =
        OSRNewSpatialReference(mmcl__pair_srs_wkt(pair));
    /* Datasets' SRS use the GIS axis order; compare like with like. */
    if (opt_srs)
        OSRSetAxisMappingStrategy(opt_srs, OAMS_TRADITIONAL_GIS_ORDER);
    int same_crs = !lsrs || !opt_srs || OSRIsSame(lsrs, opt_srs);
    if (opt_srs)
        OSRDestroySpatialReference(opt_srs);
    if (lw == W && lh == H && same_crs && same_geotransform(lab->gt, ogt)) {
        if (!lsrs)
            mmcl__log(ctx, MMCL_LOG_WARNING,
                      "label raster '%s' has no CRS; taken to be on the "
                      "optical grid (same size and geotransform)",
                      path);
        return MMCL_OK;
    }

    /* Another grid: warp it. */
    lab->warp = 1;
    if (lsrs) {
        char *wkt = NULL;
        OSRExportToWkt(lsrs, &wkt);
        lab->wkt = wkt ? mmcl__strdup(ctx, wkt) : NULL;
        CPLFree(wkt);
    } else {
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "label raster '%s' has no CRS; taken to be in the optical "
                  "CRS",
                  path);
        lab->wkt = mmcl__strdup(ctx, mmcl__pair_srs_wkt(pair));
    }
    if (!lab->wkt)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    return MMCL_OK;
}

/* The label band as a grid source on the optical grid: read as it is, or
 * warped with nearest neighbour (after checking that it overlaps). Its
 * mask band makes labels invalid; its values, nodata included, are
 * judged by label_ok. */
static mmcl_status
label_source(mmcl_context *ctx, const mmcl__pair *pair, label_src *lab)
{
    const char *path = lab->path;
    char name[600], subject[4200], read_failed[4200];
    snprintf(name, sizeof(name), "labels '%s'", path);
    snprintf(subject, sizeof(subject), "the label raster '%s'", path);
    snprintf(read_failed, sizeof(read_failed),
             "cannot read the label raster '%s' at window", path);
    mmcl__grid_raster r = {
        .name = path,
        .role = "label",
        .label = name,
        .wkt = lab->wkt,
        .width = lab->width,
        .height = lab->height,
        .band = lab->band,
        .n_bands = 1,
        .type = GDT_Float64,
        .validity = MMCL__GRID_MASK,
        .place = lab->warp ? MMCL__GRID_WARP : MMCL__GRID_SAME,
        .resampling = "near",
        .no_overlap = subject,
        .read_failed = read_failed,
        .warp_failed = "cannot warp the label raster onto window",
    };
    memcpy(r.gt, lab->gt, sizeof(r.gt));
    mmcl__grid g;
    mmcl__pair_grid(pair, &g);
    mmcl_status st = mmcl__grid_source_open(ctx, &r, &g, &lab->src);
    if (st == MMCL_OK && lab->warp)
        mmcl__log(ctx, MMCL_LOG_INFO,
                  "label raster '%s' (%d x %d) is on another grid than the "
                  "optical raster (%d x %d); it is warped onto the optical "
                  "grid with nearest neighbour",
                  path, lab->width, lab->height, g.width, g.height);
    return st;
}

/* Opens the label raster once to decide how to read it. */
static mmcl_status
label_open(mmcl_context *ctx, const mmcl__pair *pair, const char *path,
           const mmcl_options *o, int classes, label_src *lab)
{
    memset(lab, 0, sizeof(*lab));
    lab->path = path;
    lab->classes = classes;
    lab->band = (int)mmcl__opt_int(o, "LABEL_BAND");
    if (!path)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "no label raster given");
    GDALDatasetH ds = mmcl__open_raster(ctx, path, "label");
    if (!ds)
        return mmcl_context_errcode(ctx);
    mmcl_status st = MMCL_OK;
    int n_bands = GDALGetRasterCount(ds);
    lab->width = GDALGetRasterXSize(ds);
    lab->height = GDALGetRasterYSize(ds);
    if (lab->band > n_bands) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "label raster '%s' has %d band%s; band %d was asked "
                         "for",
                         path, n_bands, n_bands == 1 ? "" : "s", lab->band);
    } else {
        label_validity(lab, GDALGetRasterBand(ds, lab->band), o, classes);
        st = label_place(ctx, pair, ds, lab);
    }
    GDALClose(ds);
    return st == MMCL_OK ? label_source(ctx, pair, lab) : st;
}

/* ---- embedding rasters ------------------------------------------------ */

/* An embedding raster probed as one more representation (EMBEDDING),
 * read on the optical grid (warped and de-quantized as needed). */
typedef struct probe_emb {
    char *name;  /* the representation's name: NAME of NAME=FILE, else the
                  * file's stem */
    char *path;
    int k;       /* bands read */
    mmcl__embedding_raster *raster;
} probe_emb;

/* A name an embedding representation may have: not empty, and nothing
 * that a CSV cell or NAME=FILE would read otherwise (comma, quote, '=',
 * control characters). */
static int
emb_name_ok(const char *name, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == ',' || c == '"' || c == '=')
            return 0;
    }
    return 1;
}

/* A copy of the first @p n characters of @p s (free). */
static char *
strndup_ctx(mmcl_context *ctx, const char *s, size_t n)
{
    char *c = mmcl__malloc_array(ctx, n + 1, 1, 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

/* Whether @p path names something GDAL's file layer finds. */
static int
path_exists(const char *path)
{
    VSIStatBufL st;
    return VSIStatL(path, &st) == 0;
}

/* Refuses the name @p e would take, for the reason @p why. */
static mmcl_status
emb_name_refused(mmcl_context *ctx, const probe_emb *e, const char *why)
{
    return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                       "the embedding raster '%s' would be named '%s', %s: "
                       "name it with %s NAME=FILE",
                       e->path, e->name, why,
                       mmcl__opt_name(ctx, "EMBEDDING"));
}

/* The name and file of one EMBEDDING value: NAME=FILE when the part before
 * the first '=' is a name without '/' (and the whole value is not itself an
 * existing file while FILE is not), else FILE named by its stem (the file
 * name without its extension; "x.mmcl.json" gives "x"). */
static mmcl_status
emb_parse(mmcl_context *ctx, const char *value, probe_emb *e)
{
    const char *eq = strchr(value, '=');
    size_t n = eq ? (size_t)(eq - value) : 0;
    int named = eq && emb_name_ok(value, n) && !memchr(value, '/', n) &&
                !(path_exists(value) && !path_exists(eq + 1));
    if (named) {
        e->name = strndup_ctx(ctx, value, n);
        e->path = mmcl__strdup(ctx, eq + 1);
    } else {
        const char *file = CPLGetFilename(value);
        size_t len = strlen(file);
        static const char lazy[] = ".mmcl.json";
        size_t lz = sizeof(lazy) - 1;
        if (len > lz && strcasecmp(file + len - lz, lazy) == 0)
            len -= lz;
        else if (strrchr(file, '.') && strrchr(file, '.') != file)
            len = (size_t)(strrchr(file, '.') - file);
        e->name = strndup_ctx(ctx, file, len);
        e->path = mmcl__strdup(ctx, value);
    }
    if (!e->name || !e->path)
        return MMCL_ERR_NO_MEMORY;
    if (!*e->path)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s '%s' names no file",
                           mmcl__opt_name(ctx, "EMBEDDING"), value);
    if (!emb_name_ok(e->name, strlen(e->name)))
        return emb_name_refused(ctx, e,
                                "which is empty or holds a comma, a quote "
                                "or '='");
    return MMCL_OK;
}

/* ---- sampling --------------------------------------------------------- */

struct probe_map;

typedef struct probe_job {
    const mmcl__encoder *enc;
    const mmcl__pair *pair;
    const label_src *lab;
    int tile, halo;
    int pass; /* 1: counts, 2: extraction, 3: the prediction map */
    int B, width, height;  /* spatial blocks: B x B over the grid */
    long long *block_count; /* (B*B) valid labelled centres per block */
    /* Per tile row: entry t * tile + j is row j of tile t. */
    int *row_count;        /* valid labelled centres */
    long long *row_first;  /* raster-order rank of the row's first one */
    long long n_labelled;  /* pixels with a valid label (any validity) */
    /* Pass 2: the sorted chosen ranks and where their data go. */
    const uint64_t *ranks;
    int N;
    float *X1, *X2;        /* (N, d1), (N, d2) */
    double *y;             /* (N) */
    int *px, *py;          /* (N) */
    const struct probe_map *map; /* pass 3 */
    /* The embedding rasters (EMBEDDING): a pixel is a sample only where
     * each of them is valid; pass 2 keeps their values. */
    int n_emb;
    const struct probe_emb *emb; /* (n_emb) */
    float **E;             /* (n_emb) of (N, k_e) */
} probe_job;

typedef struct probe_worker {
    mmcl__pair_reader *reader;
    mmcl__grid_reader *lab; /* the label band on the optical grid */
    float *opt, *sar;     /* padded windows (B, Wp, Wp) */
    uint8_t *valid;       /* (Wp, Wp) */
    uint8_t *centre;      /* (tile, tile) */
    uint8_t *scratch;     /* (Wp, tile) */
    double *label;        /* (tile, tile) */
    mmcl__embedding_reader **er; /* (n_emb) */
    float **ebuf;         /* (n_emb) of (k_e, tile, tile) */
    uint8_t *evalid;      /* (tile, tile) */
    int *rows;            /* (tile) counts of the last tile */
    long long n_labelled; /* of the last tile */
    long long *blocks;    /* (B*B) counts of the last tile per block */
    /* Pass 3: the predictions of the tile, and a chunk of pixels that
     * are not in the sample, encoded together. */
    void *out;                /* (tile, tile) Int32 or Float32 */
    mmcl__encoder_work *ew;
    float *X1c, *X2c;         /* (PROBE_CHUNK, d1), (PROBE_CHUNK, d2) */
    float *H1c, *H2c;         /* (PROBE_CHUNK, K1), (PROBE_CHUNK, K2) */
    float **Ec;               /* (n_emb) of (PROBE_CHUNK, k_e) */
    double *z, *p;            /* (D), (q) */
    int *ci;                  /* (PROBE_CHUNK) tile pixel of each row */
} probe_worker;

static void
probe_stop(void *state, void *user)
{
    const probe_job *job = user;
    probe_worker *w = state;
    if (!w)
        return;
    for (int e = 0; e < job->n_emb; e++) {
        if (w->er)
            mmcl__embedding_reader_destroy(w->er[e]);
        if (w->ebuf)
            free(w->ebuf[e]);
        if (w->Ec)
            free(w->Ec[e]);
    }
    free(w->er);
    free(w->ebuf);
    free(w->Ec);
    free(w->evalid);
    mmcl__pair_reader_destroy(w->reader);
    mmcl__grid_reader_destroy(w->lab);
    free(w->opt);
    free(w->sar);
    free(w->valid);
    free(w->centre);
    free(w->scratch);
    free(w->label);
    free(w->rows);
    free(w->blocks);
    free(w->out);
    mmcl__encoder_work_free(w->ew);
    free(w->X1c);
    free(w->X2c);
    free(w->H1c);
    free(w->H2c);
    free(w->z);
    free(w->p);
    free(w->ci);
    free(w);
}

static mmcl_status map_alloc(mmcl_context *ctx, probe_worker *w,
                             const probe_job *job);

static void *
probe_start(mmcl_context *ctx, void *user)
{
    probe_job *job = user;
    probe_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    size_t T = (size_t)job->tile, Wp = T + 2 * (size_t)job->halo;
    const mmcl__encoder *enc = job->enc;
    w->reader = mmcl__pair_reader_create(ctx, job->pair);
    w->lab = w->reader ? mmcl__grid_reader_create(ctx, job->lab->src) : NULL;
    int fail = !w->reader || !w->lab;
    if (!fail) {
        w->opt = mmcl__malloc_array(ctx, Wp * Wp, (size_t)enc->mod[0].B, 4);
        w->sar = mmcl__malloc_array(ctx, Wp * Wp, (size_t)enc->mod[1].B, 4);
        w->valid = mmcl__malloc_array(ctx, Wp, Wp, 1);
        w->centre = mmcl__malloc_array(ctx, T, T, 1);
        w->scratch = mmcl__malloc_array(ctx, Wp, T, 1);
        w->label = mmcl__malloc_array(ctx, T, T, sizeof(double));
        w->rows = mmcl__malloc_array(ctx, T, 1, sizeof(int));
        w->blocks = mmcl__calloc_array(ctx, (size_t)job->B * job->B, 1,
                                       sizeof(long long));
        fail = !w->opt || !w->sar || !w->valid || !w->centre ||
               !w->scratch || !w->label || !w->rows || !w->blocks;
    }
    if (!fail && job->n_emb > 0) {
        int n = job->n_emb;
        w->er = mmcl__calloc_array(ctx, (size_t)n, 1, sizeof(*w->er));
        w->ebuf = mmcl__calloc_array(ctx, (size_t)n, 1, sizeof(*w->ebuf));
        w->evalid = mmcl__malloc_array(ctx, T, T, 1);
        fail = !w->er || !w->ebuf || !w->evalid;
        for (int e = 0; e < n && !fail; e++) {
            w->er[e] = mmcl__embedding_reader_create(ctx, job->emb[e].raster);
            w->ebuf[e] = mmcl__malloc_array(ctx, T * T, (size_t)job->emb[e].k,
                                            sizeof(float));
            fail = !w->er[e] || !w->ebuf[e];
        }
    }
    if (!fail && job->pass == 3)
        fail = map_alloc(ctx, w, job) != MMCL_OK;
    if (fail) {
        probe_stop(w, user);
        return NULL;
    }
    return w;
}

/* First index of the sorted @p ranks (n) that is >= @p r. */
static size_t
lower_bound(const uint64_t *ranks, size_t n, long long r)
{
    size_t a = 0, b = n;
    while (a < b) {
        size_t mid = (a + b) / 2;
        if ((long long)ranks[mid] < r)
            a = mid + 1;
        else
            b = mid;
    }
    return a;
}

/* Copies the standardized patch at tile pixel (i, j) of the padded window
 * @p pad (B, Hp, Wp) into x (B*P*P), layout (band, row, col). The
 * arithmetic is the map compute's (block_patches in map_compute.c), so
 * values equal the embedding's. */
static void
extract_patch(float *x, const float *pad, int B, int P, int Wp, int Hp, int i,
              int j, const double *mean, const double *std)
{
    size_t plane = (size_t)Wp * Hp;
    for (int b = 0; b < B; b++) {
        float m = (float)mean[b], inv = (float)(1.0 / std[b]);
        const float *src = pad + plane * b;
        for (int r = 0; r < P; r++)
            for (int c = 0; c < P; c++)
                x[mmcl__patch_index(b, r, c, P)] =
                    (src[(size_t)(j + r) * Wp + (size_t)(i + c)] - m) * inv;
    }
}

/* Copies the @p k values of window pixel @p at of the embedding window
 * @p win (k, plane) into e (k). */
static void
emb_pixel(float *e, const float *win, int k, int plane, size_t at)
{
    for (int b = 0; b < k; b++)
        e[b] = win[(size_t)b * plane + at];
}

/* Spatial block of pixel (x, y): (x * B / width, y * B / height). */
static int
block_of(const probe_job *job, int x, int y)
{
    int bx = (int)((long long)x * job->B / job->width);
    int by = (int)((long long)y * job->B / job->height);
    return by * job->B + bx;
}

static mmcl_status map_tile(mmcl_context *ctx, probe_worker *w,
                            const probe_job *job, const mmcl__tile *t, int Wp,
                            int Hp);

static mmcl_status
probe_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    probe_job *job = user;
    probe_worker *w = state;
    const mmcl__encoder *enc = job->enc;
    int halo = job->halo;
    /* Padded windows as mmcl__pair_read lays them out: (B, Hp, Wp). */
    int Wp = t->w + 2 * halo, Hp = t->h + 2 * halo;
    size_t base = (size_t)t->index * job->tile;

    if (job->pass == 2) {
        /* Skip tiles without a chosen rank. */
        int any = 0;
        for (int j = 0; j < t->h && !any; j++) {
            long long first = job->row_first[base + j];
            size_t lo = lower_bound(job->ranks, (size_t)job->N, first);
            any = lo < (size_t)job->N &&
                  (long long)job->ranks[lo] < first + job->row_count[base + j];
        }
        if (!any)
            return MMCL_OK;
    }

    mmcl_status st = mmcl__pair_read(ctx, w->reader, t->x, t->y, t->w, t->h,
                                     halo, w->opt, w->sar, w->valid);
    if (st == MMCL_OK)
        st = mmcl__grid_reader_read(ctx, w->lab, t->x, t->y, t->w, t->h,
                                    w->label, NULL);
    if (st != MMCL_OK)
        return st;
    mmcl__patch_valid(w->centre, w->valid, MMCL__VALID_BOTH, t->w, t->h, halo,
                      w->scratch);
    /* A sample needs a value in every embedding raster too, so that every
     * representation is probed on the same pixels. */
    for (int e = 0; e < job->n_emb; e++) {
        st = mmcl__embedding_read(ctx, w->er[e], t->x, t->y, t->w, t->h,
                                  w->ebuf[e], w->evalid);
        if (st != MMCL_OK)
            return st;
        for (size_t k = 0; k < (size_t)t->w * t->h; k++)
            w->centre[k] &= w->evalid[k];
    }

    if (job->pass == 1) {
        w->n_labelled = 0;
        memset(w->blocks, 0, sizeof(long long) * (size_t)job->B * job->B);
        for (int j = 0; j < t->h; j++) {
            int count = 0;
            for (int i = 0; i < t->w; i++) {
                size_t k = (size_t)j * t->w + i;
                int ok = label_ok(job->lab, w->label[k]);
                w->n_labelled += ok;
                if (ok && w->centre[k]) {
                    count++;
                    w->blocks[block_of(job, t->x + i, t->y + j)]++;
                }
            }
            w->rows[j] = count;
        }
        return MMCL_OK;
    }
    if (job->pass == 3)
        return map_tile(ctx, w, job, t, Wp, Hp);

    /* Pass 2: the chosen centres of each row, in raster order. */
    const mmcl__modality *m1 = &enc->mod[0], *m2 = &enc->mod[1];
    size_t N = (size_t)job->N;
    for (int j = 0; j < t->h; j++) {
        long long rank = job->row_first[base + j];
        size_t lo = lower_bound(job->ranks, N, rank);
        for (int i = 0; i < t->w && lo < N; i++) {
            size_t k = (size_t)j * t->w + i;
            if (!w->centre[k] || !label_ok(job->lab, w->label[k]))
                continue;
            if ((long long)job->ranks[lo] == rank) {
                extract_patch(job->X1 + lo * (size_t)m1->d, w->opt, m1->B,
                              enc->P, Wp, Hp, i, j, m1->mean, m1->std);
                extract_patch(job->X2 + lo * (size_t)m2->d, w->sar, m2->B,
                              enc->P, Wp, Hp, i, j, m2->mean, m2->std);
                for (int e = 0; e < job->n_emb; e++)
                    emb_pixel(job->E[e] + lo * (size_t)job->emb[e].k,
                              w->ebuf[e], job->emb[e].k, t->w * t->h, k);
                job->y[lo] = w->label[k];
                job->px[lo] = t->x + i;
                job->py[lo] = t->y + j;
                lo++;
            }
            rank++;
        }
    }
    return MMCL_OK;
}

static mmcl_status map_commit(mmcl_context *ctx, probe_worker *w,
                              const probe_job *job, const mmcl__tile *t);

static mmcl_status
probe_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    probe_job *job = user;
    probe_worker *w = state;
    if (job->pass == 3)
        return map_commit(ctx, w, job, t);
    if (job->pass != 1)
        return MMCL_OK;
    memcpy(job->row_count + (size_t)t->index * job->tile, w->rows,
           (size_t)t->h * sizeof(int));
    job->n_labelled += w->n_labelled;
    for (int b = 0; b < job->B * job->B; b++)
        job->block_count[b] += w->blocks[b];
    return MMCL_OK;
}

/* ---- representations -------------------------------------------------- */

enum {
    REP_RAW_OPTICAL,
    REP_RAW_SAR,
    REP_ALIGNED_OPTICAL,
    REP_ALIGNED_SAR,
    REP_JOINT,
    REP_FULL,
    N_REPS
};

static const char *const rep_names[N_REPS] = {
    "raw_optical", "raw_sar", "aligned_optical", "aligned_sar", "joint",
    "full"};

/* The sample and its encodings. Representations 0 .. n_model - 1 are the
 * model's (REP_*; REP_FULL for shared-private models only), then one per
 * embedding raster. */
typedef struct probe_data {
    const mmcl__encoder *enc;
    int N;
    const float *X1, *X2; /* (N, d1), (N, d2) */
    float *H1, *H2;       /* (N, K1), (N, K2) */
    int sp;               /* shared-private model */
    int n_model;          /* the model's representations */
    int n_emb;
    float *const *E;      /* (n_emb) of (N, k_e): the embedding rasters */
    const probe_emb *emb; /* (n_emb) */
} probe_data;

/* Whether representation @p rep needs the encoders. */
static int
rep_encoded(const probe_data *d, int rep)
{
    return rep >= REP_ALIGNED_OPTICAL && rep < d->n_model;
}

static int
rep_dim(const probe_data *d, int rep)
{
    const mmcl__encoder *enc = d->enc;
    const mmcl__modality *m1 = &enc->mod[0], *m2 = &enc->mod[1];
    if (rep >= d->n_model)
        return d->emb[rep - d->n_model].k;
    switch (rep) {
    case REP_RAW_OPTICAL:
        return m1->d;
    case REP_RAW_SAR:
        return m2->d;
    case REP_ALIGNED_OPTICAL:
        return d->sp ? enc->k : m1->K;
    case REP_ALIGNED_SAR:
        return d->sp ? enc->k : m2->K;
    case REP_JOINT:
        return d->sp ? enc->k + m1->kp + m2->kp : enc->k;
    default:
        return m1->K + m2->K;
    }
}

/* z (D) = representation @p rep of sample n, in double. */
static void
rep_row(double *z, const probe_data *d, int rep, int n)
{
    const mmcl__encoder *enc = d->enc;
    const mmcl__modality *m1 = &enc->mod[0], *m2 = &enc->mod[1];
    const float *h1 = d->H1 + (size_t)n * m1->K;
    const float *h2 = d->H2 + (size_t)n * m2->K;
    const float *src = NULL;
    int D = 0;
    if (rep >= d->n_model) {
        int e = rep - d->n_model;
        D = d->emb[e].k;
        src = d->E[e] + (size_t)n * D;
        for (int b = 0; b < D; b++)
            z[b] = src[b];
        return;
    }
    switch (rep) {
    case REP_RAW_OPTICAL:
        src = d->X1 + (size_t)n * m1->d;
        D = m1->d;
        break;
    case REP_RAW_SAR:
        src = d->X2 + (size_t)n * m2->d;
        D = m2->d;
        break;
    case REP_ALIGNED_OPTICAL:
        src = h1;
        D = rep_dim(d, rep);
        break;
    case REP_ALIGNED_SAR:
        src = h2;
        D = rep_dim(d, rep);
        break;
    case REP_JOINT:
        /* As mmcl_embed's joint: float mean of the aligned parts, then
         * the private parts of shared-private models. */
        for (int b = 0; b < enc->k; b++)
            z[b] = (double)(0.5f * (h1[b] + h2[b]));
        for (int b = 0; d->sp && b < m1->kp; b++)
            z[enc->k + b] = h1[enc->k + b];
        for (int b = 0; d->sp && b < m2->kp; b++)
            z[enc->k + m1->kp + b] = h2[enc->k + b];
        return;
    default:
        for (int b = 0; b < m1->K; b++)
            z[b] = h1[b];
        for (int b = 0; b < m2->K; b++)
            z[m1->K + b] = h2[b];
        return;
    }
    for (int b = 0; b < D; b++)
        z[b] = src[b];
}

/* ---- the probe -------------------------------------------------------- */

/* Sufficient statistics of a set of rows: S (D, D) = Z^T Z (upper
 * triangle), s (D) = column sums of Z, T (D, q) = Z^T Y, ys (q) = column
 * sums of Y, n rows. */
typedef struct suff {
    double *S, *s, *T, *ys;
    double n;
} suff;

/* Scratch of one probe, sized for the largest representation. */
typedef struct fit_work {
    int D_max, q;
    suff total, block;
    double *Z;        /* (PROBE_CHUNK, D) rows */
    double *Y;        /* (PROBE_CHUNK, q) targets */
    double *R, *r;    /* (D, D), (D, q) standardized fold statistics */
    double *B, *b0;   /* (D, q), (q) fitted probe in original units */
    double *mu, *sd, *ybar; /* (D), (D), (q) */
    double *pred;     /* (PROBE_CHUNK, q) */
    void *arena;
} fit_work;

static mmcl_status
fit_work_init(mmcl_context *ctx, fit_work *fw, int D_max, int q)
{
    size_t D = (size_t)D_max, Q = (size_t)q, C = PROBE_CHUNK;
    size_t suff_n = D * D + D + D * Q + Q;
    size_t n = 2 * suff_n + C * D + C * Q + D * D + D * Q + D * Q + Q + D +
               D + Q + C * Q;
    double *a = mmcl__malloc_array(ctx, n, 1, sizeof(double));
    if (!a)
        return MMCL_ERR_NO_MEMORY;
    fw->arena = a;
    fw->D_max = D_max;
    fw->q = q;
    suff *ss[2] = {&fw->total, &fw->block};
    for (int i = 0; i < 2; i++) {
        ss[i]->S = a;
        a += D * D;
        ss[i]->s = a;
        a += D;
        ss[i]->T = a;
        a += D * Q;
        ss[i]->ys = a;
        a += Q;
    }
    double **views[] = {&fw->Z, &fw->Y, &fw->R, &fw->r, &fw->B, &fw->b0,
                        &fw->mu, &fw->sd, &fw->ybar, &fw->pred};
    size_t sizes[] = {C * D, C * Q, D * D, D * Q, D * Q, Q, D, D, Q, C * Q};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        *views[i] = a;
        a += sizes[i];
    }
    return MMCL_OK;
}

/* Targets of sample n into y (q): one-hot of its class, or the value. */
static void
target_row(double *y, int q, const int *cls, const double *value, int n)
{
    if (cls) {
        for (int c = 0; c < q; c++)
            y[c] = 0.0;
        y[cls[n]] = 1.0;
    } else {
        y[0] = value[n];
    }
}

/* Gathers rows idx[0..n) of representation @p rep into fw->Z (n, D) and
 * their targets into fw->Y (n, q). */
static void
gather(fit_work *fw, const probe_data *d, int rep, int D, const int *idx,
       int n, const int *cls, const double *value)
{
    for (int i = 0; i < n; i++) {
        rep_row(fw->Z + (size_t)i * D, d, rep, idx[i]);
        target_row(fw->Y + (size_t)i * fw->q, fw->q, cls, value, idx[i]);
    }
}

static void
suff_zero(suff *s, int D, int q)
{
    memset(s->S, 0, sizeof(double) * (size_t)D * D);
    memset(s->s, 0, sizeof(double) * (size_t)D);
    memset(s->T, 0, sizeof(double) * (size_t)D * q);
    memset(s->ys, 0, sizeof(double) * (size_t)q);
    s->n = 0;
}

/* Adds the n gathered rows of fw->Z, fw->Y to @p s. */
static void
suff_add(suff *s, const fit_work *fw, int D, int n)
{
    int q = fw->q;
    /* S += Z^T Z (upper), T += Z^T Y */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D, n, 1.0, fw->Z, D,
                1.0, s->S, D);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, q, n, 1.0, fw->Z,
                D, fw->Y, q, 1.0, s->T, q);
    for (int i = 0; i < n; i++) {
        const double *z = fw->Z + (size_t)i * D, *y = fw->Y + (size_t)i * q;
        for (int j = 0; j < D; j++)
            s->s[j] += z[j];
        for (int c = 0; c < q; c++)
            s->ys[c] += y[c];
    }
    s->n += n;
}

/*
 * Fits the probe on (total - block): centred covariances of the training
 * rows, standardized by their population std (ESL 2nd ed., 3.4.1: ridge
 * on standardized inputs, intercept unpenalised), solved as
 * (R + lambda I) Bs = r, then brought back to the original units:
 * B = Bs / sd (row-wise), b0 = ybar - B^T mu.
 */
static mmcl_status
fit_fold(mmcl_context *ctx, fit_work *fw, int D, double lambda)
{
    int q = fw->q;
    const suff *a = &fw->total, *b = &fw->block;
    double n = a->n - b->n;
    for (int j = 0; j < D; j++)
        fw->mu[j] = (a->s[j] - b->s[j]) / n;
    for (int c = 0; c < q; c++)
        fw->ybar[c] = (a->ys[c] - b->ys[c]) / n;
    for (int i = 0; i < D; i++) {
        double v = (a->S[(size_t)i * D + i] - b->S[(size_t)i * D + i]) / n -
                   fw->mu[i] * fw->mu[i];
        /* A constant feature (variance at rounding level) gets sd 1 and is
         * dropped from the fit below. */
        fw->sd[i] = v > 1e-12 * (1.0 + fw->mu[i] * fw->mu[i]) ? sqrt(v) : 0.0;
    }
    for (int i = 0; i < D; i++) {
        for (int j = i; j < D; j++) {
            size_t k = (size_t)i * D + j;
            double v = 0.0;
            if (fw->sd[i] > 0 && fw->sd[j] > 0)
                v = ((a->S[k] - b->S[k]) / n - fw->mu[i] * fw->mu[j]) /
                    (fw->sd[i] * fw->sd[j]);
            else if (i == j)
                v = 1.0;
            fw->R[k] = v;
            fw->R[(size_t)j * D + i] = v;
        }
        for (int c = 0; c < q; c++) {
            size_t k = (size_t)i * q + c;
            fw->r[k] = fw->sd[i] > 0
                           ? ((a->T[k] - b->T[k]) / n -
                              fw->mu[i] * fw->ybar[c]) /
                                 fw->sd[i]
                           : 0.0;
        }
    }
    mmcl_status st = mmcl__ridge_solve(ctx, fw->B, fw->R, fw->r, lambda, D,
                                       q);
    if (st != MMCL_OK)
        return st;
    for (int c = 0; c < q; c++)
        fw->b0[c] = fw->ybar[c];
    for (int i = 0; i < D; i++) {
        double inv = fw->sd[i] > 0 ? 1.0 / fw->sd[i] : 0.0;
        for (int c = 0; c < q; c++) {
            double *v = &fw->B[(size_t)i * q + c];
            *v *= inv;
            fw->b0[c] -= *v * fw->mu[i];
        }
    }
    return MMCL_OK;
}

/* The probed samples, grouped by block. */
typedef struct probe_folds {
    int n_blocks;     /* BLOCKS * BLOCKS */
    int *order;       /* (N) sample indices, block by block */
    int *start;       /* (n_blocks + 1) offsets into order */
    int n_folds;      /* non-empty blocks */
} probe_folds;

/* Where a probe puts what it found besides its figure: the held-out
 * prediction of each sample (pred_cls: class index, or pred_val), and,
 * for the mapped representation, the fitted probe of every block that
 * holds a valid labelled pixel (B (n_blocks, D, q), b0 (n_blocks, q);
 * a block without a sample gets the probe fitted on every sample). */
typedef struct probe_out {
    int *pred_cls;    /* (N), classes */
    double *pred_val; /* (N), regression */
    double *B, *b0;   /* the mapped representation only, else NULL */
    const long long *block_count; /* (n_blocks) */
} probe_out;

/* Keeps the fitted probe of block @p b for the map. */
static void
keep_fold(const fit_work *fw, const probe_out *out, int b, int D)
{
    size_t Dq = (size_t)D * fw->q;
    memcpy(out->B + (size_t)b * Dq, fw->B, sizeof(double) * Dq);
    memcpy(out->b0 + (size_t)b * fw->q, fw->b0, sizeof(double) * fw->q);
}

/*
 * Cross-validated figure of one representation: accuracy (classes: cls,
 * q classes) or R2 (value, q = 1; sst = total sum of squares about the
 * mean of all samples), and the held-out predictions into @p out.
 */
static mmcl_status
probe_rep(mmcl_context *ctx, fit_work *fw, const probe_data *d, int rep,
          const probe_folds *f, const int *cls, const double *value,
          double sst, double lambda, const probe_out *out, double *figure)
{
    int D = rep_dim(d, rep), q = fw->q;
    suff_zero(&fw->total, D, q);
    for (int i0 = 0; i0 < d->N; i0 += PROBE_CHUNK) {
        int n = d->N - i0 < PROBE_CHUNK ? d->N - i0 : PROBE_CHUNK;
        gather(fw, d, rep, D, f->order + i0, n, cls, value);
        suff_add(&fw->total, fw, D, n);
    }
    double correct = 0.0, sse = 0.0;
    int all_fitted = 0; /* fw->B holds the probe fitted on every sample */
    for (int b = 0; b < f->n_blocks; b++) {
        int s0 = f->start[b], s1 = f->start[b + 1];
        if (s1 == s0) {
            /* No sample to hold out; the map still predicts the block's
             * pixels, with the probe fitted on every sample. */
            if (!out->B || out->block_count[b] == 0)
                continue;
            if (!all_fitted) {
                suff_zero(&fw->block, D, q);
                mmcl_status st = fit_fold(ctx, fw, D, lambda);
                if (st != MMCL_OK)
                    return st;
                all_fitted = 1;
            }
            keep_fold(fw, out, b, D);
            continue;
        }
        all_fitted = 0;
        suff_zero(&fw->block, D, q);
        for (int i0 = s0; i0 < s1; i0 += PROBE_CHUNK) {
            int n = s1 - i0 < PROBE_CHUNK ? s1 - i0 : PROBE_CHUNK;
            gather(fw, d, rep, D, f->order + i0, n, cls, value);
            suff_add(&fw->block, fw, D, n);
        }
        mmcl_status st = fit_fold(ctx, fw, D, lambda);
        if (st != MMCL_OK)
            return st;
        if (out->B)
            keep_fold(fw, out, b, D);
        /* Held-out predictions: pred (n, q) = Z B + b0. */
        for (int i0 = s0; i0 < s1; i0 += PROBE_CHUNK) {
            int n = s1 - i0 < PROBE_CHUNK ? s1 - i0 : PROBE_CHUNK;
            gather(fw, d, rep, D, f->order + i0, n, cls, value);
            for (int i = 0; i < n; i++)
                memcpy(fw->pred + (size_t)i * q, fw->b0,
                       sizeof(double) * (size_t)q);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, q, D,
                        1.0, fw->Z, D, fw->B, q, 1.0, fw->pred, q);
            for (int i = 0; i < n; i++) {
                const double *p = fw->pred + (size_t)i * q;
                int idx = f->order[i0 + i];
                if (cls) {
                    int best = 0;
                    for (int c = 1; c < q; c++)
                        if (p[c] > p[best])
                            best = c;
                    correct += best == cls[idx];
                    out->pred_cls[idx] = best;
                } else {
                    double e = value[idx] - p[0];
                    sse += e * e;
                    out->pred_val[idx] = p[0];
                }
            }
        }
    }
    *figure = cls ? correct / d->N : 1.0 - sse / sst;
    return MMCL_OK;
}

/* ---- the prediction map (pass 3) -------------------------------------- */

/* What pass 3 maps: one representation's probes and predictions. */
typedef struct probe_map {
    int rep, D, q, classes, sp, n_model;
    const double *B, *b0;         /* per block, as probe_out */
    const double *class_values;   /* (q) */
    const int *pred_cls;          /* (N) held-out predictions */
    const double *pred_val;
    mmcl__writer *writer;
} probe_map;

static mmcl_status
map_alloc(mmcl_context *ctx, probe_worker *w, const probe_job *job)
{
    const probe_map *m = job->map;
    const mmcl__modality *m1 = &job->enc->mod[0], *m2 = &job->enc->mod[1];
    size_t T = (size_t)job->tile, C = PROBE_CHUNK;
    w->out = mmcl__malloc_array(ctx, T * T, 1, 4); /* Int32 or Float32 */
    w->X1c = mmcl__malloc_array(ctx, C, (size_t)m1->d, sizeof(float));
    w->X2c = mmcl__malloc_array(ctx, C, (size_t)m2->d, sizeof(float));
    w->H1c = mmcl__malloc_array(ctx, C, (size_t)m1->K, sizeof(float));
    w->H2c = mmcl__malloc_array(ctx, C, (size_t)m2->K, sizeof(float));
    w->z = mmcl__malloc_array(ctx, (size_t)m->D, 1, sizeof(double));
    w->p = mmcl__malloc_array(ctx, (size_t)m->q, 1, sizeof(double));
    w->ci = mmcl__malloc_array(ctx, C, 1, sizeof(int));
    if (!w->out || !w->X1c || !w->X2c || !w->H1c || !w->H2c || !w->z ||
        !w->p || !w->ci)
        return MMCL_ERR_NO_MEMORY;
    if (job->n_emb > 0) {
        w->Ec = mmcl__calloc_array(ctx, (size_t)job->n_emb, 1,
                                   sizeof(*w->Ec));
        if (!w->Ec)
            return MMCL_ERR_NO_MEMORY;
        for (int e = 0; e < job->n_emb; e++) {
            w->Ec[e] = mmcl__malloc_array(ctx, C, (size_t)job->emb[e].k,
                                          sizeof(float));
            if (!w->Ec[e])
                return MMCL_ERR_NO_MEMORY;
        }
    }
    if (m->rep >= REP_ALIGNED_OPTICAL && m->rep < m->n_model) {
        w->ew = mmcl__encoder_work_create(ctx, job->enc);
        if (!w->ew)
            return mmcl_context_errcode(ctx);
    }
    return MMCL_OK;
}

/* Tile pixel @p k gets class index (or value) @p v. */
static void
map_put(const probe_map *m, void *out, size_t k, int c, double v)
{
    if (m->classes)
        ((int32_t *)out)[k] = (int32_t)m->class_values[c];
    else
        ((float *)out)[k] = (float)v;
}

/* Predicts the @p n gathered pixels that are not in the sample. */
static mmcl_status
map_chunk(mmcl_context *ctx, probe_worker *w, const probe_job *job,
          const mmcl__tile *t, int n)
{
    const probe_map *m = job->map;
    const mmcl__encoder *enc = job->enc;
    probe_data d = {enc,        n,          w->X1c,   w->X2c,
                    w->H1c,     w->H2c,     m->sp,    m->n_model,
                    job->n_emb, w->Ec,      job->emb};
    if (rep_encoded(&d, m->rep)) {
        mmcl_status st = mmcl__encoder_embed(ctx, enc, w->ew, 0, w->X1c, n,
                                             w->H1c);
        if (st == MMCL_OK)
            st = mmcl__encoder_embed(ctx, enc, w->ew, 1, w->X2c, n, w->H2c);
        if (st != MMCL_OK)
            return st;
    }
    int D = m->D, q = m->q;
    for (int r = 0; r < n; r++) {
        rep_row(w->z, &d, m->rep, r);
        int k = w->ci[r];
        int b = block_of(job, t->x + k % t->w, t->y + k / t->w);
        const double *B = m->B + (size_t)b * D * q, *b0 = m->b0 + (size_t)b * q;
        for (int c = 0; c < q; c++) {
            double v = b0[c];
            for (int j = 0; j < D; j++)
                v += w->z[j] * B[(size_t)j * q + c];
            w->p[c] = v;
        }
        int best = 0;
        for (int c = 1; m->classes && c < q; c++)
            if (w->p[c] > w->p[best])
                best = c;
        map_put(m, w->out, (size_t)k, best, w->p[0]);
    }
    return MMCL_OK;
}

/* The predictions of one tile: nodata, then every valid labelled centre
 * (ranked in raster order as in pass 2). */
static mmcl_status
map_tile(mmcl_context *ctx, probe_worker *w, const probe_job *job,
         const mmcl__tile *t, int Wp, int Hp)
{
    const probe_map *m = job->map;
    const mmcl__encoder *enc = job->enc;
    const mmcl__modality *m1 = &enc->mod[0], *m2 = &enc->mod[1];
    size_t n_pix = (size_t)t->w * t->h, N = (size_t)job->N;
    size_t base = (size_t)t->index * job->tile;
    for (size_t k = 0; k < n_pix; k++)
        if (m->classes)
            ((int32_t *)w->out)[k] = -1;
        else
            ((float *)w->out)[k] = NAN;
    mmcl_status st = MMCL_OK;
    int n = 0;
    for (int j = 0; j < t->h && st == MMCL_OK; j++) {
        long long rank = job->row_first[base + j];
        size_t lo = lower_bound(job->ranks, N, rank);
        for (int i = 0; i < t->w && st == MMCL_OK; i++) {
            size_t k = (size_t)j * t->w + i;
            if (!w->centre[k] || !label_ok(job->lab, w->label[k]))
                continue;
            if (lo < N && (long long)job->ranks[lo] == rank) {
                /* A sample: its held-out prediction, as the figures
                 * count it. */
                map_put(m, w->out, k, m->classes ? m->pred_cls[lo] : 0,
                        m->classes ? 0.0 : m->pred_val[lo]);
                lo++;
            } else {
                extract_patch(w->X1c + (size_t)n * m1->d, w->opt, m1->B,
                              enc->P, Wp, Hp, i, j, m1->mean, m1->std);
                extract_patch(w->X2c + (size_t)n * m2->d, w->sar, m2->B,
                              enc->P, Wp, Hp, i, j, m2->mean, m2->std);
                for (int e = 0; e < job->n_emb; e++)
                    emb_pixel(w->Ec[e] + (size_t)n * job->emb[e].k,
                              w->ebuf[e], job->emb[e].k, t->w * t->h, k);
                w->ci[n++] = (int)k;
                if (n == PROBE_CHUNK) {
                    st = map_chunk(ctx, w, job, t, n);
                    n = 0;
                }
            }
            rank++;
        }
    }
    if (st == MMCL_OK && n > 0)
        st = map_chunk(ctx, w, job, t, n);
    return st;
}

static mmcl_status
map_commit(mmcl_context *ctx, probe_worker *w, const probe_job *job,
           const mmcl__tile *t)
{
    return mmcl__writer_write(ctx, job->map->writer, t->x, t->y, t->w, t->h,
                              w->out);
}

/* ---- figures from the held-out predictions ---------------------------- */

/*
 * The figures of one set of predictions. Classes (as scikit-learn's
 * metrics with zero_division=0): conf (q, q) counts, rows the true class,
 * columns the predicted one; per class c with TP, FP, FN from it:
 * precision TP / (TP + FP) (0 when nothing is predicted c), recall
 * TP / support, F1 2TP / (2TP + FP + FN), IoU TP / (TP + FP + FN);
 * accuracy = trace / N, balanced accuracy = mean recall, macro F1 and
 * mean IoU the means over the q classes. Regression: R2 = 1 - SSE/SST,
 * RMSE = sqrt(SSE / N), MAE = mean |error|.
 */
typedef struct probe_scores {
    double accuracy, balanced_accuracy, macro_precision, macro_recall;
    double macro_f1, mean_iou;
    double *conf;                                /* (q, q) */
    double *support, *precision, *recall, *f1, *iou; /* (q) */
    double r2, rmse, mae;
} probe_scores;

static mmcl_status
scores_alloc(mmcl_context *ctx, probe_scores *s, int q)
{
    size_t Q = (size_t)q;
    double *a = mmcl__calloc_array(ctx, Q * Q + 5 * Q, 1, sizeof(double));
    if (!a)
        return MMCL_ERR_NO_MEMORY;
    s->conf = a;
    s->support = a + Q * Q;
    s->precision = s->support + Q;
    s->recall = s->precision + Q;
    s->f1 = s->recall + Q;
    s->iou = s->f1 + Q;
    return MMCL_OK;
}

/* Classes: from the true class indices @p cls and the predicted ones
 * @p pred (or, when NULL, class @p constant everywhere). */
static void
scores_classes(probe_scores *s, int q, int N, const int *cls, const int *pred,
               int constant)
{
    for (int n = 0; n < N; n++)
        s->conf[(size_t)cls[n] * q + (pred ? pred[n] : constant)] += 1.0;
    double trace = 0.0;
    s->balanced_accuracy = s->macro_precision = s->macro_recall = 0.0;
    s->macro_f1 = s->mean_iou = 0.0;
    for (int c = 0; c < q; c++) {
        double tp = s->conf[(size_t)c * q + c], sup = 0.0, predicted = 0.0;
        for (int k = 0; k < q; k++) {
            sup += s->conf[(size_t)c * q + k];
            predicted += s->conf[(size_t)k * q + c];
        }
        double fp = predicted - tp, fn = sup - tp;
        trace += tp;
        s->support[c] = sup;
        s->precision[c] = predicted > 0 ? tp / predicted : 0.0;
        s->recall[c] = sup > 0 ? tp / sup : 0.0;
        s->f1[c] = 2 * tp + fp + fn > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0;
        s->iou[c] = tp + fp + fn > 0 ? tp / (tp + fp + fn) : 0.0;
        s->balanced_accuracy += s->recall[c] / q;
        s->macro_precision += s->precision[c] / q;
        s->macro_recall += s->recall[c] / q;
        s->macro_f1 += s->f1[c] / q;
        s->mean_iou += s->iou[c] / q;
    }
    s->accuracy = trace / N;
}

/* Regression: from the targets @p y and the predictions @p pred (or, when
 * NULL, @p constant everywhere); @p sst about the mean of @p y. */
static void
scores_regression(probe_scores *s, int N, const double *y, const double *pred,
                  double constant, double sst)
{
    double sse = 0.0, sae = 0.0;
    for (int n = 0; n < N; n++) {
        double e = y[n] - (pred ? pred[n] : constant);
        sse += e * e;
        sae += fabs(e);
    }
    s->r2 = 1.0 - sse / sst;
    s->rmse = sqrt(sse / N);
    s->mae = sae / N;
}

/* ---- driver ----------------------------------------------------------- */

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Class values (sorted, distinct) and each sample's class index. */
static mmcl_status
make_classes(mmcl_context *ctx, const double *y, int N, double *values,
             int *n_classes, int *cls)
{
    double *sorted = mmcl__malloc_array(ctx, (size_t)N, 1, sizeof(double));
    if (!sorted)
        return MMCL_ERR_NO_MEMORY;
    memcpy(sorted, y, sizeof(double) * (size_t)N);
    qsort(sorted, (size_t)N, sizeof(double), cmp_double);
    mmcl_status st = MMCL_OK;
    int C = 0;
    for (int n = 0; n < N && st == MMCL_OK; n++) {
        double v = sorted[n];
        if (v != floor(v) || v > 2147483647.0)
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "TASK=classes needs integer class values, and "
                             "the label raster holds %.17g (use --task "
                             "regression for a continuous target)",
                             v);
        else if (C == 0 || v != values[C - 1]) {
            if (C == MAX_CLASSES)
                st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                                 "the labels hold more than %d distinct "
                                 "class values (use --task regression for a "
                                 "continuous target)",
                                 MAX_CLASSES);
            else
                values[C++] = v;
        }
    }
    free(sorted);
    if (st != MMCL_OK)
        return st;
    if (C < 2)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "every one of the %d labelled samples has class "
                           "%.17g: a classification probe needs at least two "
                           "classes",
                           N, values[0]);
    for (int n = 0; n < N; n++) {
        int a = 0, b = C - 1;
        while (a < b) {
            int mid = (a + b) / 2;
            if (values[mid] < y[n])
                a = mid + 1;
            else
                b = mid;
        }
        cls[n] = a;
    }
    *n_classes = C;
    return MMCL_OK;
}

static mmcl_status
make_folds(mmcl_context *ctx, const int *px, const int *py, int N, int B,
           int width, int height, probe_folds *f)
{
    f->n_blocks = B * B;
    f->order = mmcl__malloc_array(ctx, (size_t)N, 1, sizeof(int));
    f->start = mmcl__calloc_array(ctx, (size_t)f->n_blocks + 1, 1,
                                  sizeof(int));
    int *fill = mmcl__calloc_array(ctx, (size_t)f->n_blocks, 1, sizeof(int));
    if (!f->order || !f->start || !fill) {
        free(fill);
        return MMCL_ERR_NO_MEMORY;
    }
    /* Block of pixel (x, y): (x * B / width, y * B / height). */
    for (int pass = 0; pass < 2; pass++) {
        for (int n = 0; n < N; n++) {
            int bx = (int)((long long)px[n] * B / width);
            int by = (int)((long long)py[n] * B / height);
            int b = by * B + bx;
            if (pass == 0)
                f->start[b + 1]++;
            else
                f->order[f->start[b] + fill[b]++] = n;
        }
        if (pass == 0)
            for (int b = 0; b < f->n_blocks; b++)
                f->start[b + 1] += f->start[b];
    }
    free(fill);
    f->n_folds = 0;
    for (int b = 0; b < f->n_blocks; b++)
        f->n_folds += f->start[b + 1] > f->start[b];
    if (f->n_folds < 2)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "all %d labelled samples fall in one of the %d x "
                           "%d spatial blocks: cross-validation needs "
                           "samples in at least two blocks (raise --blocks)",
                           N, B, B);
    return MMCL_OK;
}

static int
report_progress(mmcl_progress_fn progress, void *user, double p)
{
    return !progress || progress(p, NULL, user);
}

/* One run of mmcl_probe: what its steps share, freed by run_free(). */
typedef struct probe_run {
    const char *labels;
    int classes;    /* TASK=classes, else regression */
    int B;          /* BLOCKS */
    long long want; /* SAMPLES, 0: all */
    uint64_t seed;
    double lambda;
    int threads;
    mmcl_progress_fn progress;
    void *puser;
    double p_count, p_extract, p_probes; /* where each step's progress ends */
    mmcl__encoder *enc;
    mmcl__pair *pair;
    mmcl__encoder_work *ew;
    label_src lab;
    probe_job job;
    int width, height;
    long long V; /* valid labelled centres */
    uint64_t *ranks;
    probe_data data;
    probe_folds folds;
    int q;                /* classes, or 1 */
    int *cls;             /* (N) class index of each sample (classes) */
    double *class_values; /* (MAX_CLASSES) sorted values (classes) */
    double mean, sst;     /* of the target (regression) */
    int majority;         /* the largest class (classes) */
    fit_work fw;
    int n_reps;           /* the model's, then one per embedding raster */
    double *figure;       /* (n_reps) */
    int *pred_cls;        /* (n_reps, N) held-out predictions (classes) */
    double *pred_val;     /* (n_reps, N) (regression) */
    probe_scores *scores; /* (n_reps + 1): the last is the baseline's */
    /* Embedding rasters. */
    int n_emb;
    probe_emb *emb;
    float **E;            /* (n_emb) of (N, k_e) */
    /* Outputs. */
    const char *csv, *map, *map_format;
    char **co;
    const char *map_rep_name; /* MAP_REPRESENTATION */
    int map_rep;
    mmcl__files *files;
    double *map_B, *map_b0; /* per block, the mapped representation */
    probe_map pm;
    mmcl__writer *writer;
    mmcl__stage *csv_stage;
} probe_run;

/* The name of representation @p i of the run. */
static const char *
rep_name(const probe_run *r, int i)
{
    int n_model = r->data.n_model;
    return i < n_model ? rep_names[i] : r->emb[i - n_model].name;
}

/* The options the steps read. */
static void
run_options(probe_run *r, const mmcl_options *o)
{
    r->classes = strcmp(mmcl__opt_str(o, "TASK"), "classes") == 0;
    r->B = (int)mmcl__opt_int(o, "BLOCKS");
    r->want = mmcl__opt_int(o, "SAMPLES");
    r->seed = (uint64_t)mmcl__opt_int(o, "SEED");
    r->lambda = mmcl__opt_double(o, "RIDGE");
    r->job.tile = (int)mmcl__opt_int(o, "TILE");
    r->threads = mmcl__opt_threads(o);
    r->progress = mmcl__opt_progress(o, &r->puser);
    r->csv = mmcl__opt_str(o, "CSV");
    r->map = mmcl__opt_str(o, "MAP");
    if (r->csv && !*r->csv)
        r->csv = NULL;
    if (r->map && !*r->map)
        r->map = NULL;
    r->co = mmcl__opt_list(o, "CO");
    r->map_rep_name = mmcl__opt_str(o, "MAP_REPRESENTATION");
    /* The map's pass and its writing take the last part of the bar. */
    r->p_count = r->map ? 0.25 : 0.4;
    r->p_extract = r->map ? 0.5 : 0.8;
    r->p_probes = r->map ? 0.6 : 1.0;
}

/* The EMBEDDING values: each one's name and file. Two representations
 * cannot share a name, and an embedding cannot take the name of one of the
 * model's representations or of a baseline row of the CSV. */
static mmcl_status
run_emb_parse(mmcl_context *ctx, probe_run *r, const mmcl_options *o)
{
    char **list = mmcl__opt_list(o, "EMBEDDING");
    int n = 0;
    while (list[n])
        n++;
    if (n == 0)
        return MMCL_OK;
    r->emb = mmcl__calloc_array(ctx, (size_t)n, 1, sizeof(*r->emb));
    if (!r->emb)
        return MMCL_ERR_NO_MEMORY;
    r->n_emb = n;
    for (int e = 0; e < n; e++) {
        probe_emb *pe = &r->emb[e];
        mmcl_status st = emb_parse(ctx, list[e], pe);
        if (st != MMCL_OK)
            return st;
        int taken = strcmp(pe->name, "majority_baseline") == 0 ||
                    strcmp(pe->name, "mean_baseline") == 0;
        for (int i = 0; i < N_REPS && !taken; i++)
            taken = strcmp(pe->name, rep_names[i]) == 0;
        if (taken)
            return emb_name_refused(ctx, pe,
                                    "a name the probe report already uses");
        for (int f = 0; f < e; f++)
            if (strcmp(pe->name, r->emb[f].name) == 0)
                return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                                   "the embedding rasters '%s' and '%s' "
                                   "would both be named '%s': name them "
                                   "with %s NAME=FILE",
                                   r->emb[f].path, pe->path, pe->name,
                                   mmcl__opt_name(ctx, "EMBEDDING"));
    }
    return MMCL_OK;
}

/* Opens the embedding rasters on the optical grid (de-quantized, chosen
 * and warped as DEQUANTIZE, EMBEDDING_BANDS and EMBEDDING_RESAMPLING
 * say). */
static mmcl_status
run_emb_open(mmcl_context *ctx, probe_run *r, const mmcl_options *o)
{
    mmcl__grid g;
    mmcl__pair_grid(r->pair, &g);
    mmcl__embedding_options eo;
    mmcl__embedding_options_get(&eo, o);
    /* probe takes the pair's options from the model and has no
     * ERROR_THRESHOLD of its own: the embedding rasters are warped with
     * that option's default. */
    eo.error_threshold = 0.125;
    if (eo.bands && !*eo.bands)
        eo.bands = NULL;
    for (int e = 0; e < r->n_emb; e++) {
        probe_emb *pe = &r->emb[e];
        mmcl_status st = mmcl__embedding_raster_open(ctx, pe->path, &g, &eo,
                                                     &pe->raster);
        if (st != MMCL_OK)
            return st;
        pe->k = mmcl__embedding_raster_bands(pe->raster);
        const mmcl__embedding_raster *er = pe->raster;
        mmcl__log(ctx, MMCL_LOG_INFO,
                  "embedding raster '%s' (%s): %d band%s, de-quantization "
                  "%s, %s",
                  pe->path, pe->name, pe->k, pe->k == 1 ? "" : "s",
                  mmcl__dequantize_name(mmcl__embedding_raster_dequantize(er)),
                  mmcl__embedding_raster_on_grid(er)
                      ? "on the optical grid"
                      : CPLSPrintf("warped onto the optical grid (%s)",
                                   mmcl__embedding_raster_resampling(er)));
    }
    return MMCL_OK;
}

/* Which representation MAP_REPRESENTATION names: one of the model's (full
 * for shared-private models only) or an embedding raster's name. */
static mmcl_status
run_map_rep(mmcl_context *ctx, probe_run *r)
{
    const char *name = r->map_rep_name ? r->map_rep_name : "joint";
    for (int i = 0; i < N_REPS; i++)
        if (strcmp(name, rep_names[i]) == 0) {
            if (i >= r->data.n_model)
                return mmcl__error(
                    ctx, MMCL_ERR_INVALID_ARG,
                    "the full representation (%s) exists for "
                    "shared-private models only; this model is %s",
                    mmcl__opt_setting(ctx, "MAP_REPRESENTATION", "full"),
                    r->enc->objective);
            r->map_rep = i;
            return MMCL_OK;
        }
    for (int e = 0; e < r->n_emb; e++)
        if (strcmp(name, r->emb[e].name) == 0) {
            r->map_rep = r->data.n_model + e;
            return MMCL_OK;
        }
    char names[1024];
    size_t used = 0;
    names[0] = '\0';
    for (int i = 0; i < r->data.n_model + r->n_emb && used + 1 < sizeof(names);
         i++) {
        int w = snprintf(names + used, sizeof(names) - used, "%s%s",
                         i ? ", " : "", rep_name(r, i));
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                       "%s names no representation of this probe; it has "
                       "%s",
                       mmcl__opt_setting(ctx, "MAP_REPRESENTATION", name),
                       names);
}

/* The files of a run that writes: its inputs, and its outputs checked
 * before any work (mmcl__files_add_output). */
static mmcl_status
run_files(mmcl_context *ctx, probe_run *r, const mmcl_model *model,
          const char *const *optical, size_t n_optical, const char *const *sar,
          size_t n_sar, const mmcl_options *o)
{
    mmcl_status st = mmcl__maps_files(ctx, model, optical, n_optical, sar,
                                      n_sar, o, &r->files);
    if (st == MMCL_OK)
        st = mmcl__files_add_input(ctx, r->files, r->labels);
    for (int e = 0; e < r->n_emb && st == MMCL_OK; e++)
        st = mmcl__files_add_input(ctx, r->files, r->emb[e].path);
    if (st == MMCL_OK && r->map)
        st = mmcl__output_check_options(
            ctx, r->files, r->map, o, r->co,
            r->classes ? GDT_Int32 : GDT_Float32, "probe_map",
            &r->map_format);
    if (st == MMCL_OK && r->csv)
        st = mmcl__files_add_output(ctx, r->files, r->csv, "CSV",
                                    MMCL__OUT_PROBE_CSV, NULL, NULL);
    return st;
}

/* One pass of the tiles over the optical grid (1: counts, 2: extraction,
 * 3: the map), its progress from @p p0 to @p p1. */
static mmcl_status
run_pass(mmcl_context *ctx, probe_run *r, int pass, double p0, double p1)
{
    r->job.pass = pass;
    mmcl__tile_job tj = {probe_start, probe_work, probe_commit, probe_stop,
                         &r->job};
    return mmcl__run_tiles(ctx, r->width, r->height, r->job.tile, r->threads,
                           &tj, r->progress, r->puser, p0, p1);
}

/* Pass 1: the valid labelled centres of each tile row, and the
 * raster-order rank of each row's first one; none is an error. */
static mmcl_status
run_count(mmcl_context *ctx, probe_run *r)
{
    probe_job *job = &r->job;
    r->width = mmcl__pair_width(r->pair);
    r->height = mmcl__pair_height(r->pair);
    job->enc = r->enc;
    job->pair = r->pair;
    job->lab = &r->lab;
    job->halo = r->enc->P / 2;
    job->B = r->B;
    job->n_emb = r->n_emb;
    job->emb = r->emb;
    job->width = r->width;
    job->height = r->height;
    int nx = (r->width + job->tile - 1) / job->tile;
    int ny = (r->height + job->tile - 1) / job->tile;
    size_t n_rows = (size_t)nx * ny * job->tile;
    job->row_count = mmcl__calloc_array(ctx, n_rows, 1, sizeof(int));
    job->row_first = mmcl__calloc_array(ctx, n_rows, 1, sizeof(long long));
    job->block_count = mmcl__calloc_array(ctx, (size_t)r->B * r->B, 1,
                                          sizeof(long long));
    if (!job->row_count || !job->row_first || !job->block_count)
        return MMCL_ERR_NO_MEMORY;
    mmcl_status st = run_pass(ctx, r, 1, 0.0, r->p_count);
    if (st != MMCL_OK)
        return st;
    /* Raster-order rank of each tile row's first valid labelled centre. */
    long long V = 0;
    for (int ty = 0; ty < ny; ty++) {
        int th = r->height - ty * job->tile < job->tile
                     ? r->height - ty * job->tile
                     : job->tile;
        for (int j = 0; j < th; j++)
            for (int tx = 0; tx < nx; tx++) {
                size_t k = (size_t)(ty * nx + tx) * job->tile + j;
                job->row_first[k] = V;
                V += job->row_count[k];
            }
    }
    r->V = V;
    if (V > 0)
        return MMCL_OK;
    if (job->n_labelled == 0)
        return mmcl__error(
            ctx, MMCL_ERR_INVALID_ARG,
            "no pixel of the label raster '%s' holds a "
            "valid label on the optical grid (nodata%s, "
            "NaN%s)",
            r->labels,
            r->lab.has_nodata ? CPLSPrintf(" = %g", r->lab.nodata) : "",
            r->classes ? ", negative values" : "");
    return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                       "none of the %lld labelled pixels has a valid "
                       "%dx%d patch in both the optical and the SAR "
                       "raster%s",
                       job->n_labelled, r->enc->P, r->enc->P,
                       r->n_emb == 0 ? ""
                       : r->n_emb == 1
                           ? " and a valid value in the embedding raster"
                           : " and a valid value in every embedding "
                             "raster");
}

/* The sample's size and arrays, and its ranks. */
static mmcl_status
run_sample(mmcl_context *ctx, probe_run *r)
{
    probe_job *job = &r->job;
    long long V = r->V;
    long long N = r->want == 0 || r->want > V ? V : r->want;
    if (N > 2147483647LL / 64)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "%lld samples are too many for one probe: lower "
                           "--samples",
                           N);
    job->N = (int)N;
    const mmcl__modality *m1 = &r->enc->mod[0], *m2 = &r->enc->mod[1];
    r->ranks = mmcl__malloc_array(ctx, (size_t)N, 1, sizeof(uint64_t));
    job->X1 = mmcl__malloc_array(ctx, (size_t)N, (size_t)m1->d, sizeof(float));
    job->X2 = mmcl__malloc_array(ctx, (size_t)N, (size_t)m2->d, sizeof(float));
    job->y = mmcl__malloc_array(ctx, (size_t)N, 1, sizeof(double));
    job->px = mmcl__malloc_array(ctx, (size_t)N, 1, sizeof(int));
    job->py = mmcl__malloc_array(ctx, (size_t)N, 1, sizeof(int));
    r->data.H1 =
        mmcl__malloc_array(ctx, (size_t)N, (size_t)m1->K, sizeof(float));
    r->data.H2 =
        mmcl__malloc_array(ctx, (size_t)N, (size_t)m2->K, sizeof(float));
    if (!r->ranks || !job->X1 || !job->X2 || !job->y || !job->px || !job->py ||
        !r->data.H1 || !r->data.H2)
        return MMCL_ERR_NO_MEMORY;
    if (r->n_emb > 0) {
        r->E = mmcl__calloc_array(ctx, (size_t)r->n_emb, 1, sizeof(*r->E));
        if (!r->E)
            return MMCL_ERR_NO_MEMORY;
        for (int e = 0; e < r->n_emb; e++) {
            r->E[e] = mmcl__malloc_array(ctx, (size_t)N, (size_t)r->emb[e].k,
                                         sizeof(float));
            if (!r->E[e])
                return MMCL_ERR_NO_MEMORY;
        }
        job->E = r->E;
    }
    /* Selection sampling (Knuth, TAOCP vol. 2, 3.4.2, Algorithm S): each
     * of the V ranks is kept with probability (N - kept) / (V - seen): a
     * uniform N-subset, already sorted. */
    uint64_t rng = r->seed ^ 0x6d6d636c70726f62ULL; /* "mmclprob" */
    long long kept = 0;
    for (long long i = 0; i < V && kept < N; i++)
        if (N == V ||
            (double)(V - i) * mmcl__rng_uniform(&rng) < (double)(N - kept))
            r->ranks[kept++] = (uint64_t)i;
    return MMCL_OK;
}

/* Pass 2: the chosen patch vectors and labels; then their encodings. */
static mmcl_status
run_extract(mmcl_context *ctx, probe_run *r)
{
    probe_job *job = &r->job;
    job->ranks = r->ranks;
    mmcl_status st = run_pass(ctx, r, 2, r->p_count, r->p_extract);
    if (st != MMCL_OK)
        return st;

    r->ew = mmcl__encoder_work_create(ctx, r->enc);
    if (!r->ew)
        return mmcl_context_errcode(ctx);
    st =
        mmcl__encoder_embed(ctx, r->enc, r->ew, 0, job->X1, job->N, r->data.H1);
    if (st == MMCL_OK)
        st = mmcl__encoder_embed(ctx, r->enc, r->ew, 1, job->X2, job->N,
                                 r->data.H2);
    if (st != MMCL_OK)
        return st;
    r->data.enc = r->enc;
    r->data.N = job->N;
    r->data.X1 = job->X1;
    r->data.X2 = job->X2;
    r->data.n_emb = r->n_emb;
    r->data.E = r->E;
    r->data.emb = r->emb;
    return MMCL_OK;
}

/* The folds, and the targets: class indices, or the regression's total
 * sum of squares. */
static mmcl_status
run_targets(mmcl_context *ctx, probe_run *r)
{
    const probe_job *job = &r->job;
    mmcl_status st = make_folds(ctx, job->px, job->py, job->N, r->B, r->width,
                                r->height, &r->folds);
    if (st != MMCL_OK)
        return st;
    r->q = 1;
    if (r->classes) {
        r->class_values =
            mmcl__malloc_array(ctx, MAX_CLASSES, 1, sizeof(double));
        r->cls = mmcl__malloc_array(ctx, (size_t)job->N, 1, sizeof(int));
        if (!r->class_values || !r->cls)
            return MMCL_ERR_NO_MEMORY;
        return make_classes(ctx, job->y, job->N, r->class_values, &r->q,
                            r->cls);
    }
    double mean = 0.0;
    for (int n = 0; n < job->N; n++)
        mean += job->y[n];
    mean /= job->N;
    r->mean = mean;
    for (int n = 0; n < job->N; n++)
        r->sst += (job->y[n] - mean) * (job->y[n] - mean);
    if (!(r->sst > 0.0))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "the target is constant (%.17g) over the %d "
                           "samples: R2 is undefined",
                           mean, job->N);
    return MMCL_OK;
}

/* The probe of every representation, into r->figure and its held-out
 * predictions; the mapped one also keeps its probe of every block. */
static mmcl_status
run_probes(mmcl_context *ctx, probe_run *r)
{
    r->n_reps = r->data.n_model + r->n_emb;
    size_t N = (size_t)r->job.N, NB = (size_t)r->B * r->B;
    r->figure = mmcl__calloc_array(ctx, (size_t)r->n_reps, 1,
                                   sizeof(double));
    r->scores = mmcl__calloc_array(ctx, (size_t)r->n_reps + 1, 1,
                                   sizeof(probe_scores));
    if (!r->figure || !r->scores)
        return MMCL_ERR_NO_MEMORY;
    int D_max = 0;
    for (int i = 0; i < r->n_reps; i++)
        if (rep_dim(&r->data, i) > D_max)
            D_max = rep_dim(&r->data, i);
    mmcl_status st = fit_work_init(ctx, &r->fw, D_max, r->q);
    if (st != MMCL_OK)
        return st;
    if (r->classes)
        r->pred_cls = mmcl__malloc_array(ctx, (size_t)r->n_reps * N, 1,
                                         sizeof(int));
    else
        r->pred_val = mmcl__malloc_array(ctx, (size_t)r->n_reps * N, 1,
                                         sizeof(double));
    if (!r->pred_cls && !r->pred_val)
        return MMCL_ERR_NO_MEMORY;
    if (r->map) {
        size_t D = (size_t)rep_dim(&r->data, r->map_rep);
        r->map_B = mmcl__malloc_array(ctx, NB, D * (size_t)r->q,
                                      sizeof(double));
        r->map_b0 = mmcl__malloc_array(ctx, NB, (size_t)r->q, sizeof(double));
        if (!r->map_B || !r->map_b0)
            return MMCL_ERR_NO_MEMORY;
    }
    for (int i = 0; i < r->n_reps; i++) {
        int mapped = r->map && i == r->map_rep;
        probe_out out = {
            r->pred_cls ? r->pred_cls + (size_t)i * N : NULL,
            r->pred_val ? r->pred_val + (size_t)i * N : NULL,
            mapped ? r->map_B : NULL, mapped ? r->map_b0 : NULL,
            r->job.block_count};
        st = probe_rep(ctx, &r->fw, &r->data, i, &r->folds, r->cls,
                       r->classes ? NULL : r->job.y, r->sst, r->lambda, &out,
                       &r->figure[i]);
        if (st != MMCL_OK)
            return st;
        double p = r->p_extract +
                   (r->p_probes - r->p_extract) * (i + 1) / r->n_reps;
        if (!report_progress(r->progress, r->puser, p))
            return mmcl__error(ctx, MMCL_ERR_CANCELLED, "cancelled");
    }
    return MMCL_OK;
}

/* The figures of every representation and of the baseline (classes: the
 * majority class everywhere; regression: the mean of the samples). */
static mmcl_status
run_scores(mmcl_context *ctx, probe_run *r)
{
    int N = r->job.N;
    for (int i = 0; i <= r->n_reps; i++) {
        probe_scores *s = &r->scores[i];
        mmcl_status st = scores_alloc(ctx, s, r->q);
        if (st != MMCL_OK)
            return st;
        int base = i == r->n_reps;
        if (r->classes) {
            if (base) {
                /* The largest class (the first of equals). */
                double *count = r->scores[0].support;
                r->majority = 0;
                for (int c = 1; c < r->q; c++)
                    if (count[c] > count[r->majority])
                        r->majority = c;
            }
            scores_classes(s, r->q, N, r->cls,
                           base ? NULL : r->pred_cls + (size_t)i * N,
                           r->majority);
        } else {
            scores_regression(s, N, r->job.y,
                              base ? NULL : r->pred_val + (size_t)i * N,
                              r->mean, r->sst);
        }
    }
    return MMCL_OK;
}

/* The figures of @p s into the report object @p e. */
static void
report_scores(const probe_run *r, const probe_scores *s, cJSON *e)
{
    if (!r->classes) {
        cJSON_AddNumberToObject(e, "rmse", s->rmse);
        cJSON_AddNumberToObject(e, "mae", s->mae);
        return;
    }
    cJSON_AddNumberToObject(e, "balanced_accuracy", s->balanced_accuracy);
    cJSON_AddNumberToObject(e, "macro_precision", s->macro_precision);
    cJSON_AddNumberToObject(e, "macro_recall", s->macro_recall);
    cJSON_AddNumberToObject(e, "macro_f1", s->macro_f1);
    cJSON_AddNumberToObject(e, "mean_iou", s->mean_iou);
    cJSON *pc = cJSON_AddArrayToObject(e, "per_class");
    cJSON *conf = cJSON_AddArrayToObject(e, "confusion");
    for (int c = 0; c < r->q; c++) {
        cJSON *k = cJSON_CreateObject();
        cJSON_AddNumberToObject(k, "class", r->class_values[c]);
        cJSON_AddNumberToObject(k, "support", s->support[c]);
        cJSON_AddNumberToObject(k, "precision", s->precision[c]);
        cJSON_AddNumberToObject(k, "recall", s->recall[c]);
        cJSON_AddNumberToObject(k, "f1", s->f1[c]);
        cJSON_AddNumberToObject(k, "iou", s->iou[c]);
        cJSON_AddItemToArray(pc, k);
        cJSON_AddItemToArray(conf, cJSON_CreateDoubleArray(
                                       s->conf + (size_t)c * r->q, r->q));
    }
}

/* The report's class values, their counts and the chance accuracy. */
static void
report_classes(const probe_run *r, cJSON *rep)
{
    const double *count = r->scores[r->n_reps].support;
    cJSON *cv = cJSON_AddArrayToObject(rep, "classes");
    cJSON *cc = cJSON_AddArrayToObject(rep, "class_counts");
    for (int c = 0; c < r->q; c++) {
        cJSON_AddItemToArray(cv, cJSON_CreateNumber(r->class_values[c]));
        cJSON_AddItemToArray(cc, cJSON_CreateNumber(count[c]));
    }
    cJSON_AddNumberToObject(rep, "chance", count[r->majority] / r->job.N);
}

/* The baseline: what a probe must beat. */
static void
report_baseline(const probe_run *r, cJSON *rep)
{
    const probe_scores *s = &r->scores[r->n_reps];
    cJSON *b = cJSON_AddObjectToObject(rep, "baseline");
    if (r->classes) {
        cJSON_AddStringToObject(b, "method", "majority_class");
        cJSON_AddNumberToObject(b, "class", r->class_values[r->majority]);
        cJSON_AddNumberToObject(b, "accuracy", s->accuracy);
    } else {
        cJSON_AddStringToObject(b, "method", "mean");
        cJSON_AddNumberToObject(b, "value", r->mean);
        cJSON_AddNumberToObject(b, "r2", s->r2);
    }
    report_scores(r, s, b);
}

/* What each embedding representation was read from, and how. */
static void
report_embeddings(const probe_run *r, cJSON *rep)
{
    cJSON *es = cJSON_AddObjectToObject(rep, "embeddings");
    for (int e = 0; e < r->n_emb; e++) {
        const mmcl__embedding_raster *er = r->emb[e].raster;
        cJSON *j = cJSON_AddObjectToObject(es, r->emb[e].name);
        cJSON_AddStringToObject(j, "file", r->emb[e].path);
        cJSON *bands = cJSON_AddArrayToObject(j, "bands");
        cJSON *names = cJSON_AddArrayToObject(j, "band_names");
        for (int b = 0; b < r->emb[e].k; b++) {
            cJSON_AddItemToArray(bands,
                                 cJSON_CreateNumber(
                                     mmcl__embedding_raster_band_number(er,
                                                                        b)));
            cJSON_AddItemToArray(names,
                                 cJSON_CreateString(
                                     mmcl__embedding_raster_band_name(er, b)));
        }
        cJSON_AddStringToObject(
            j, "dequantize",
            mmcl__dequantize_name(mmcl__embedding_raster_dequantize(er)));
        cJSON_AddBoolToObject(j, "warped",
                              !mmcl__embedding_raster_on_grid(er));
        cJSON_AddStringToObject(j, "resampling",
                                mmcl__embedding_raster_on_grid(er)
                                    ? "none"
                                    : mmcl__embedding_raster_resampling(er));
    }
}

/* The figures, and what they were computed from. */
static void
report_figures(const probe_run *r, cJSON *rep)
{
    const mmcl__encoder *enc = r->enc;
    cJSON *reps = cJSON_AddObjectToObject(rep, "representations");
    for (int i = 0; i < r->n_reps; i++) {
        cJSON *e = cJSON_AddObjectToObject(reps, rep_name(r, i));
        cJSON_AddNumberToObject(e, "dim", rep_dim(&r->data, i));
        cJSON_AddNumberToObject(e, r->classes ? "accuracy" : "r2",
                                r->figure[i]);
        cJSON_AddNumberToObject(e, "error", 1.0 - r->figure[i]);
        report_scores(r, &r->scores[i], e);
    }
    /* sigma-informativeness gap: error(aligned_m) - error(raw_m). */
    cJSON *gap = cJSON_AddObjectToObject(rep, "gap");
    cJSON_AddNumberToObject(gap, "optical",
                            r->figure[REP_RAW_OPTICAL] -
                                r->figure[REP_ALIGNED_OPTICAL]);
    cJSON_AddNumberToObject(
        gap, "sar", r->figure[REP_RAW_SAR] - r->figure[REP_ALIGNED_SAR]);
    cJSON_AddStringToObject(rep, "model_hash", enc->hash);
    cJSON_AddStringToObject(rep, "objective", enc->objective);
    cJSON_AddNumberToObject(rep, "k", enc->k);
    cJSON_AddNumberToObject(rep, "patch", enc->P);
    cJSON_AddNumberToObject(rep, "ridge", r->lambda);
    cJSON_AddNumberToObject(rep, "seed", (double)r->seed);
    if (r->lab.has_nodata)
        cJSON_AddNumberToObject(rep, "label_nodata", r->lab.nodata);
    else
        cJSON_AddNullToObject(rep, "label_nodata");
    cJSON_AddNumberToObject(rep, "label_band", r->lab.band);
    cJSON_AddBoolToObject(rep, "label_warped", r->lab.warp);
    if (r->n_emb > 0)
        report_embeddings(r, rep);
    if (r->map || r->csv) {
        cJSON *out = cJSON_AddObjectToObject(rep, "outputs");
        if (r->map) {
            cJSON_AddStringToObject(out, "map", r->map);
            cJSON_AddStringToObject(out, "map_representation",
                                    rep_name(r, r->map_rep));
        }
        if (r->csv)
            cJSON_AddStringToObject(out, "csv", r->csv);
    }
    if (enc->input_notes) {
        /* What the input checks warned about (input_check.c). */
        cJSON *notes = cJSON_AddArrayToObject(rep, "input_notes");
        for (int i = 0; enc->input_notes[i]; i++)
            cJSON_AddItemToArray(notes,
                                 cJSON_CreateString(enc->input_notes[i]));
    }
}

/* The report, as JSON text in *text (cJSON_free). */
static mmcl_status
run_report(mmcl_context *ctx, const probe_run *r, char **text)
{
    cJSON *rep = cJSON_CreateObject();
    cJSON_AddStringToObject(rep, "task", r->classes ? "classes" : "regression");
    cJSON_AddNumberToObject(rep, "blocks", r->B);
    cJSON_AddNumberToObject(rep, "folds", r->folds.n_folds);
    cJSON_AddNumberToObject(rep, "samples", r->job.N);
    cJSON_AddNumberToObject(rep, "valid_labelled_pixels", (double)r->V);
    cJSON_AddNumberToObject(rep, "labelled_pixels", (double)r->job.n_labelled);
    if (r->classes)
        report_classes(r, rep);
    report_baseline(r, rep);
    report_figures(r, rep);
    *text = cJSON_Print(rep);
    cJSON_Delete(rep);
    if (!*text)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    return MMCL_OK;
}

/* ---- the CSV ---------------------------------------------------------- */

/* One row per representation (then the baseline) and class: its figures
 * and its row of the confusion matrix (predicted_<class>); for a
 * continuous target one row per representation. */
static void
csv_rows(const probe_run *r, mmcl__text *t)
{
    if (!r->classes) {
        mmcl__text_add(t, MMCL__PROBE_CSV_HEAD "samples,r2,rmse,mae\n");
        for (int i = 0; i <= r->n_reps; i++) {
            int base = i == r->n_reps;
            const probe_scores *s = &r->scores[i];
            mmcl__text_add(t, "%s,%d,%d,%.10g,%.10g,%.10g\n",
                      base ? "mean_baseline" : rep_name(r, i),
                      base ? 0 : rep_dim(&r->data, i), r->job.N, s->r2,
                      s->rmse, s->mae);
        }
        return;
    }
    mmcl__text_add(t, MMCL__PROBE_CSV_HEAD "class,support,precision,recall,f1,iou,"
                 "accuracy,balanced_accuracy,macro_f1,mean_iou");
    for (int c = 0; c < r->q; c++)
        mmcl__text_add(t, ",predicted_%.17g", r->class_values[c]);
    mmcl__text_add(t, "\n");
    for (int i = 0; i <= r->n_reps; i++) {
        int base = i == r->n_reps;
        const probe_scores *s = &r->scores[i];
        for (int c = 0; c < r->q; c++) {
            mmcl__text_add(t,
                      "%s,%d,%.17g,%.17g,%.10g,%.10g,%.10g,%.10g,%.10g,"
                      "%.10g,%.10g,%.10g",
                      base ? "majority_baseline" : rep_name(r, i),
                      base ? 0 : rep_dim(&r->data, i), r->class_values[c],
                      s->support[c], s->precision[c], s->recall[c], s->f1[c],
                      s->iou[c], s->accuracy, s->balanced_accuracy,
                      s->macro_f1, s->mean_iou);
            for (int k = 0; k < r->q; k++)
                mmcl__text_add(t, ",%.17g", s->conf[(size_t)c * r->q + k]);
            mmcl__text_add(t, "\n");
        }
    }
}

/* The CSV into its stage. */
static mmcl_status
run_csv(mmcl_context *ctx, probe_run *r)
{
    mmcl__text t = {0};
    csv_rows(r, &t);
    if (t.failed || !t.s) {
        free(t.s);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    /* mmcl__stage_write_text ends the text with a newline of its own. */
    if (t.n > 0 && t.s[t.n - 1] == '\n')
        t.s[--t.n] = '\0';
    r->csv_stage = mmcl__stage_create(ctx, r->files, r->csv);
    mmcl_status st = r->csv_stage
                         ? mmcl__stage_write_text(ctx, r->csv_stage, t.s)
                         : mmcl_context_errcode(ctx);
    free(t.s);
    return st;
}

/* ---- the map ---------------------------------------------------------- */

/* The map's MMCL metadata: what it is and the mapped probe's figures. */
static mmcl_status
map_metadata(mmcl_context *ctx, const probe_run *r)
{
    const mmcl__encoder *enc = r->enc;
    const probe_scores *s = &r->scores[r->map_rep];
    char **md = NULL;
    md = CSLSetNameValue(md, "PRODUCT", "probe_map");
    md = CSLSetNameValue(md, "TASK", r->classes ? "classes" : "regression");
    md = CSLSetNameValue(md, "REPRESENTATION", rep_name(r, r->map_rep));
    if (r->map_rep >= r->data.n_model)
        md = CSLSetNameValue(md, "EMBEDDING",
                             r->emb[r->map_rep - r->data.n_model].path);
    md = CSLSetNameValue(md, "MODEL_HASH", enc->hash);
    md = CSLSetNameValue(md, "OBJECTIVE", enc->objective);
    md = CSLSetNameValue(md, "K", CPLSPrintf("%d", enc->k));
    md = CSLSetNameValue(md, "PATCH", CPLSPrintf("%d", enc->P));
    md = CSLSetNameValue(md, "LABELS", r->labels);
    md = CSLSetNameValue(md, "LABEL_BAND", CPLSPrintf("%d", r->lab.band));
    md = CSLSetNameValue(md, "BLOCKS", CPLSPrintf("%d", r->B));
    md = CSLSetNameValue(md, "RIDGE", CPLSPrintf("%.17g", r->lambda));
    md = CSLSetNameValue(md, "SAMPLES", CPLSPrintf("%d", r->job.N));
    md = CSLSetNameValue(md, "SEED", CPLSPrintf("%llu",
                                                (unsigned long long)r->seed));
    if (r->classes) {
        char *list = NULL;
        for (int c = 0; c < r->q; c++) {
            char *longer = CPLStrdup(CPLSPrintf(
                "%s%s%.17g", list ? list : "", c ? "," : "",
                r->class_values[c]));
            CPLFree(list);
            list = longer;
        }
        md = CSLSetNameValue(md, "CLASSES", list);
        CPLFree(list);
        md = CSLSetNameValue(md, "ACCURACY", CPLSPrintf("%.6f", s->accuracy));
        md = CSLSetNameValue(md, "BALANCED_ACCURACY",
                             CPLSPrintf("%.6f", s->balanced_accuracy));
        md = CSLSetNameValue(md, "MACRO_F1", CPLSPrintf("%.6f", s->macro_f1));
        md = CSLSetNameValue(md, "MEAN_IOU", CPLSPrintf("%.6f", s->mean_iou));
    } else {
        md = CSLSetNameValue(md, "R2", CPLSPrintf("%.6f", s->r2));
        md = CSLSetNameValue(md, "RMSE", CPLSPrintf("%.6g", s->rmse));
        md = CSLSetNameValue(md, "MAE", CPLSPrintf("%.6g", s->mae));
    }
    md = CSLSetNameValue(md, "MMCL_VERSION", mmcl_version());
    mmcl_status st = mmcl__writer_set_metadata_list(ctx, r->writer, md);
    CSLDestroy(md);
    return st;
}

/* Pass 3: the predictions of the mapped representation, tile by tile,
 * into the map's writer (completed, not yet in place). */
static mmcl_status
run_map(mmcl_context *ctx, probe_run *r)
{
    static const char *const class_name[] = {"predicted_class", NULL};
    static const char *const value_name[] = {"predicted_value", NULL};
    char meaning[256];
    snprintf(meaning, sizeof(meaning),
             "%s predicted by the ridge probe of the %s representation "
             "fitted without the pixel's spatial block",
             r->classes ? "class" : "value", rep_name(r, r->map_rep));
    const char *meanings[] = {meaning, NULL};
    mmcl__raster_spec spec = {0};
    spec.path = r->map;
    spec.format = r->map_format;
    spec.creation_options = r->co;
    spec.files = r->files;
    spec.product = "probe_map";
    spec.width = r->width;
    spec.height = r->height;
    spec.n_bands = 1;
    spec.type = r->classes ? GDT_Int32 : GDT_Float32;
    mmcl__pair_geotransform(r->pair, spec.geotransform);
    spec.srs_wkt = mmcl__pair_srs_wkt(r->pair);
    spec.has_nodata = 1;
    spec.nodata = r->classes ? -1.0 : NAN;
    spec.band_names = r->classes ? class_name : value_name;
    spec.band_meanings = meanings;
    spec.block = r->job.tile;
    spec.n_threads = r->threads;
    r->writer = mmcl__writer_open(ctx, &spec);
    if (!r->writer)
        return mmcl_context_errcode(ctx);
    mmcl_status st = map_metadata(ctx, r);
    if (st != MMCL_OK)
        return st;
    size_t N = (size_t)r->job.N;
    probe_map *m = &r->pm;
    m->rep = r->map_rep;
    m->D = rep_dim(&r->data, r->map_rep);
    m->q = r->q;
    m->classes = r->classes;
    m->sp = r->data.sp;
    m->n_model = r->data.n_model;
    m->B = r->map_B;
    m->b0 = r->map_b0;
    m->class_values = r->class_values;
    m->pred_cls = r->pred_cls ? r->pred_cls + (size_t)r->map_rep * N : NULL;
    m->pred_val = r->pred_val ? r->pred_val + (size_t)r->map_rep * N : NULL;
    m->writer = r->writer;
    r->job.map = m;
    double split = mmcl__writer_progress_split(r->writer, r->p_probes, 1.0);
    st = run_pass(ctx, r, 3, r->p_probes, split);
    if (st == MMCL_OK)
        st = mmcl__writer_finish(ctx, r->writer, r->progress, r->puser, split,
                                 1.0);
    return st;
}

/* The map and the CSV in place together, or neither. */
static mmcl_status
run_commit(mmcl_context *ctx, probe_run *r)
{
    mmcl__stage *stages[2];
    size_t n = 0;
    if (r->writer)
        stages[n++] = mmcl__writer_stage(r->writer);
    if (r->csv_stage)
        stages[n++] = r->csv_stage;
    return mmcl__stages_commit(ctx, stages, n, r->progress, r->puser, 1.0);
}

/* Frees what the steps made, whichever step stopped the run. */
static void
run_free(probe_run *r)
{
    for (int i = 0; r->scores && i <= r->n_reps; i++)
        free(r->scores[i].conf);
    free(r->scores);
    free(r->figure);
    for (int e = 0; e < r->n_emb; e++) {
        if (r->E)
            free(r->E[e]);
        free(r->emb[e].name);
        free(r->emb[e].path);
        mmcl__embedding_raster_close(r->emb[e].raster);
    }
    free(r->E);
    free(r->emb);
    free(r->pred_cls);
    free(r->pred_val);
    free(r->map_B);
    free(r->map_b0);
    free(r->fw.arena);
    free(r->folds.order);
    free(r->folds.start);
    free(r->cls);
    free(r->class_values);
    free(r->data.H1);
    free(r->data.H2);
    free(r->ranks);
    free(r->job.X1);
    free(r->job.X2);
    free(r->job.y);
    free(r->job.px);
    free(r->job.py);
    free(r->job.row_count);
    free(r->job.row_first);
    free(r->job.block_count);
    free(r->lab.wkt);
    mmcl__grid_source_close(r->lab.src);
    mmcl__encoder_work_free(r->ew);
    /* The stages go before the files that recorded them. */
    mmcl__stage_destroy(r->csv_stage);
    mmcl__writer_abort(r->writer);
    mmcl__files_destroy(r->files);
    mmcl__pair_close(r->pair);
    mmcl__encoder_free(r->enc);
}

mmcl_status
mmcl_probe(mmcl_context *ctx, const mmcl_model *model,
           const char *const *optical, size_t n_optical, const char *const *sar,
           size_t n_sar, const char *labels, const mmcl_options *opts_in,
           char **report_json)
{
    mmcl__error_clear(ctx);
    mmcl__blas_kernel_warn_once();
    if (!report_json)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_probe: report_json must not be NULL");
    *report_json = NULL;
    mmcl_options *tmp = NULL;
    const mmcl_options *o = NULL;
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "probe", &tmp, &o);
    if (st != MMCL_OK)
        return st;
    if (!labels) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no label raster given");
        mmcl_options_free(tmp);
        return st;
    }
    probe_run r = {0};
    char *text = NULL;
    r.labels = labels;
    run_options(&r, o);
    st = run_emb_parse(ctx, &r, o);
    if (st == MMCL_OK && (r.csv || r.map))
        st = run_files(ctx, &r, model, optical, n_optical, sar, n_sar, o);
    if (st == MMCL_OK)
        st = mmcl__maps_open(ctx, model, optical, n_optical, sar, n_sar, o,
                             &r.enc, &r.pair);
    if (st == MMCL_OK) {
        r.data.sp = r.enc->mod[0].kp > 0 || r.enc->mod[1].kp > 0;
        r.data.n_model = r.data.sp ? N_REPS : N_REPS - 1;
        r.data.emb = r.emb;
        if (r.map)
            st = run_map_rep(ctx, &r);
    }
    if (st == MMCL_OK)
        st = run_emb_open(ctx, &r, o);
    if (st == MMCL_OK)
        st = label_open(ctx, r.pair, labels, o, r.classes, &r.lab);
    if (st == MMCL_OK)
        st = run_count(ctx, &r);
    if (st == MMCL_OK)
        st = run_sample(ctx, &r);
    if (st == MMCL_OK)
        st = run_extract(ctx, &r);
    if (st == MMCL_OK)
        st = run_targets(ctx, &r);
    if (st == MMCL_OK)
        st = run_probes(ctx, &r);
    if (st == MMCL_OK)
        st = run_scores(ctx, &r);
    if (st == MMCL_OK)
        st = run_report(ctx, &r, &text);
    if (st == MMCL_OK && r.map)
        st = run_map(ctx, &r);
    if (st == MMCL_OK && r.csv)
        st = run_csv(ctx, &r);
    if (st == MMCL_OK && (r.map || r.csv))
        st = run_commit(ctx, &r);
    if (st == MMCL_OK) {
        *report_json = mmcl__strdup(ctx, text);
        if (!*report_json)
            st = MMCL_ERR_NO_MEMORY;
    }
    cJSON_free(text);
    run_free(&r);
    mmcl_options_free(tmp);
    return st;
}
