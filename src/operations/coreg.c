/* SPDX-License-Identifier: MIT */
/*
 * mmcl_coreg: the residual shift of the SAR against the optical raster,
 * block by block (design section 4.5; the numerics are algorithms/coreg.c).
 *
 * The optical grid is cut in tiles of whole blocks; each worker reads a
 * tile of the pair (the SAR on the optical grid, as mmcl align puts it)
 * with a margin of SEARCH + 1 pixels, and measures each of its blocks.
 * A block's result depends on its pixels only, so the field is the same
 * for any number of threads. The field is small (one pixel per block) and
 * kept in memory; the rasters are streamed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>

#include "mmcl/coreg.h"

#include "blas_info_internal.h"
#include "context_internal.h"
#include "coreg.h"
#include "options_internal.h"
#include "output_internal.h"
#include "pair_internal.h"
#include "shift_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

enum {
    N_FIELD = 5,     /* dx, dy, dx_m, dy_m, confidence */
    MAX_BANDS = 64,  /* per modality */
    TILE_PIXELS = 256
};

static const char *const field_names[N_FIELD] = {"dx", "dy", "dx_m", "dy_m",
                                                 "confidence"};

/* Why blocks have no estimate (the report counts them). */
static const char *const reasons[] = {
    "too few valid pixels", "uniform optical", "uniform SAR",
    "no correlation", "peak at the edge of the search range"};
enum { N_REASONS = sizeof(reasons) / sizeof(reasons[0]) };

typedef struct coreg_job {
    mmcl__pair *pair;
    int width, height, block, search, margin, tile;
    int nbx, nby;
    int B1, B2;
    /* per block, row-major (nby, nbx) */
    double *dx, *dy, *conf, *rho;
    signed char *reason; /* index into reasons, -1: an estimate */
} coreg_job;

typedef struct coreg_worker {
    mmcl__pair_reader *reader;
    mmcl__coreg_scratch *scratch;
    float *opt, *sar;   /* the tile with its margin */
    float *bopt, *bsar; /* one block with its margin */
} coreg_worker;

static void
coreg_stop(void *state, void *user)
{
    coreg_worker *w = state;
    (void)user;
    if (!w)
        return;
    mmcl__pair_reader_destroy(w->reader);
    mmcl__coreg_scratch_destroy(w->scratch);
    free(w->opt);
    free(w->sar);
    free(w->bopt);
    free(w->bsar);
    free(w);
}

static void *
coreg_start(mmcl_context *ctx, void *user)
{
    const coreg_job *job = user;
    coreg_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    size_t tw = (size_t)job->tile + 2 * (size_t)job->margin;
    size_t bw = (size_t)job->block + 2 * (size_t)job->margin;
    w->reader = mmcl__pair_reader_create(ctx, job->pair);
    w->scratch = mmcl__coreg_scratch_create(ctx, job->block, job->block,
                                            job->B1, job->B2, job->search);
    w->opt = mmcl__malloc_array(ctx, tw * tw, (size_t)job->B1, sizeof(float));
    w->sar = mmcl__malloc_array(ctx, tw * tw, (size_t)job->B2, sizeof(float));
    w->bopt = mmcl__malloc_array(ctx, bw * bw, (size_t)job->B1, sizeof(float));
    w->bsar = mmcl__malloc_array(ctx, bw * bw, (size_t)job->B2, sizeof(float));
    if (!w->reader || !w->scratch || !w->opt || !w->sar || !w->bopt ||
        !w->bsar) {
        coreg_stop(w, user);
        return NULL;
    }
    return w;
}

/* The window of one block (bw x bh plus the margin) out of the tile's
 * (tw x th plus the margin), at (x0, y0) of the tile. */
static void
copy_window(float *dst, const float *src, int B, int tw, int th, int x0,
            int y0, int bw, int bh, int margin)
{
    int TW = tw + 2 * margin, TH = th + 2 * margin;
    int W = bw + 2 * margin, H = bh + 2 * margin;
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++)
            memcpy(dst + ((size_t)b * H + y) * W,
                   src + ((size_t)b * TH + y0 + y) * TW + x0,
                   (size_t)W * sizeof(float));
}

static mmcl_status
coreg_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    coreg_job *job = user;
    coreg_worker *w = state;
    int m = job->margin;
    mmcl_status st = mmcl__pair_read(ctx, w->reader, t->x, t->y, t->w, t->h,
                                     m, w->opt, w->sar, NULL);
    if (st != MMCL_OK)
        return st;
    /* The reflected padding outside the grid is no SAR: left out. */
    int TW = t->w + 2 * m, TH = t->h + 2 * m;
    for (int y = 0; y < TH; y++) {
        int gy = t->y - m + y;
        for (int x = 0; x < TW; x++) {
            int gx = t->x - m + x;
            if (gx >= 0 && gx < job->width && gy >= 0 && gy < job->height)
                continue;
            for (int b = 0; b < job->B2; b++)
                w->sar[((size_t)b * TH + y) * TW + x] = NAN;
        }
    }
    for (int y0 = 0; y0 < t->h; y0 += job->block) {
        for (int x0 = 0; x0 < t->w; x0 += job->block) {
            int bw = t->w - x0 < job->block ? t->w - x0 : job->block;
            int bh = t->h - y0 < job->block ? t->h - y0 : job->block;
            copy_window(w->bopt, w->opt, job->B1, t->w, t->h, x0, y0, bw, bh,
                        m);
            copy_window(w->bsar, w->sar, job->B2, t->w, t->h, x0, y0, bw, bh,
                        m);
            mmcl__coreg_block r;
            mmcl__coreg_estimate(w->scratch, w->bopt, w->bsar, bw, bh, &r);
            size_t i = (size_t)((t->y + y0) / job->block) * job->nbx +
                       (size_t)((t->x + x0) / job->block);
            job->dx[i] = r.dx;
            job->dy[i] = r.dy;
            job->conf[i] = r.confidence;
            job->rho[i] = r.rho;
            job->reason[i] = -1;
            for (int k = 0; r.why && k < N_REASONS; k++)
                if (strcmp(r.why, reasons[k]) == 0)
                    job->reason[i] = (signed char)k;
        }
    }
    return MMCL_OK;
}

/* The global figures of the field. */
typedef struct coreg_summary {
    double dx, dy, mad_dx, mad_dy;
    size_t n_blocks, n_estimates, n_confident;
    size_t n_reason[N_REASONS];
} coreg_summary;

static mmcl_status
summarise(mmcl_context *ctx, const coreg_job *job, double min_conf,
          coreg_summary *s)
{
    size_t n = (size_t)job->nbx * job->nby;
    memset(s, 0, sizeof(*s));
    s->n_blocks = n;
    double *wgt = mmcl__malloc_array(ctx, n, 1, sizeof(double));
    double *dev = mmcl__malloc_array(ctx, n, 1, sizeof(double));
    double *work = mmcl__malloc_array(ctx, n, 2, sizeof(double));
    if (!wgt || !dev || !work) {
        free(wgt);
        free(dev);
        free(work);
        return MMCL_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        if (job->reason[i] >= 0)
            s->n_reason[job->reason[i]]++;
        else
            s->n_estimates++;
        int ok = job->reason[i] < 0 && job->conf[i] >= min_conf &&
                 job->conf[i] > 0.0;
        wgt[i] = ok ? job->conf[i] : 0.0;
        s->n_confident += (size_t)ok;
    }
    s->dx = mmcl__weighted_median(job->dx, wgt, n, work);
    s->dy = mmcl__weighted_median(job->dy, wgt, n, work);
    for (size_t i = 0; i < n; i++)
        dev[i] = fabs(job->dx[i] - s->dx);
    s->mad_dx = mmcl__weighted_median(dev, wgt, n, work);
    for (size_t i = 0; i < n; i++)
        dev[i] = fabs(job->dy[i] - s->dy);
    s->mad_dy = mmcl__weighted_median(dev, wgt, n, work);
    free(wgt);
    free(dev);
    free(work);
    return MMCL_OK;
}

/* A number, or null when not finite (JSON has no NaN). */
static void
add_num(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *
paths_json(const char *const *p, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(p[i]));
    return a;
}

/* The correction the SAR was read with (null: none): the field then
 * measures what remains of the misregistration after it. */
static void
add_correction(cJSON *r, const mmcl__pair *pair, const mmcl_options *o)
{
    const mmcl__shift *sh = mmcl__pair_shift(pair);
    if (!sh) {
        cJSON_AddNullToObject(r, "correction");
        return;
    }
    cJSON *c = cJSON_AddObjectToObject(r, "correction");
    int field = mmcl__shift_is_field(sh);
    cJSON_AddStringToObject(c, field ? "sar_shift_field" : "sar_shift",
                            mmcl__shift_describe(sh));
    if (field)
        cJSON_AddNumberToObject(c, "shift_min_confidence",
                                mmcl__opt_double(o, "SHIFT_MIN_CONFIDENCE"));
    double dx, dy;
    mmcl__shift_mean(sh, &dx, &dy);
    cJSON_AddNumberToObject(c, "mean_dx", dx);
    cJSON_AddNumberToObject(c, "mean_dy", dy);
}

static char *
report_make(const coreg_job *job, const coreg_summary *s, const double gt[6],
            double min_conf, const char *const *optical, size_t n_optical,
            const char *const *sar, size_t n_sar, const char *out,
            const mmcl_options *o)
{
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    cJSON_AddStringToObject(r, "format", "mmcl-coreg");
    cJSON_AddNumberToObject(r, "format_version", 1);
    cJSON_AddStringToObject(r, "mmcl_version", mmcl_version());
    cJSON_AddItemToObject(r, "optical", paths_json(optical, n_optical));
    cJSON_AddItemToObject(r, "sar", paths_json(sar, n_sar));
    cJSON_AddStringToObject(r, "output", out);
    cJSON_AddStringToObject(
        r, "convention",
        "a ground feature at optical pixel (x, y) shows in the SAR at "
        "(x + dx, y + dy), optical pixels, x east, y down; dx_m east, dy_m "
        "north, in CRS units");
    cJSON_AddStringToObject(
        r, "method",
        "first canonical correlation of the optical and SAR values over "
        "each block, maximised over integer SAR shifts, quadratic sub-pixel "
        "fit");
    cJSON_AddNumberToObject(r, "block", job->block);
    cJSON_AddNumberToObject(r, "search", job->search);
    cJSON_AddNumberToObject(r, "min_confidence", min_conf);
    cJSON_AddNumberToObject(r, "width", job->width);
    cJSON_AddNumberToObject(r, "height", job->height);
    add_correction(r, job->pair, o);
    cJSON *sh = cJSON_AddObjectToObject(r, "shift");
    add_num(sh, "dx", s->dx);
    add_num(sh, "dy", s->dy);
    add_num(sh, "dx_m", s->dx * gt[1] + s->dy * gt[2]);
    add_num(sh, "dy_m", s->dx * gt[4] + s->dy * gt[5]);
    add_num(sh, "magnitude", hypot(s->dx, s->dy));
    add_num(sh, "mad_dx", s->mad_dx);
    add_num(sh, "mad_dy", s->mad_dy);
    cJSON_AddStringToObject(
        sh, "rule",
        "confidence-weighted median of the blocks with confidence >= "
        "min_confidence; mad_*: their weighted median absolute deviation");
    cJSON_AddBoolToObject(sh, "residual", mmcl__pair_shift(job->pair) != NULL);
    cJSON *b = cJSON_AddObjectToObject(r, "blocks");
    cJSON_AddNumberToObject(b, "x", job->nbx);
    cJSON_AddNumberToObject(b, "y", job->nby);
    cJSON_AddNumberToObject(b, "total", (double)s->n_blocks);
    cJSON_AddNumberToObject(b, "with_estimate", (double)s->n_estimates);
    cJSON_AddNumberToObject(b, "confident", (double)s->n_confident);
    cJSON_AddNumberToObject(b, "confident_share",
                            s->n_blocks ? (double)s->n_confident /
                                              (double)s->n_blocks
                                        : 0.0);
    cJSON *why = cJSON_AddObjectToObject(b, "without_estimate");
    for (int k = 0; k < N_REASONS; k++)
        cJSON_AddNumberToObject(why, reasons[k], (double)s->n_reason[k]);
    char *text = cJSON_Print(r);
    cJSON_Delete(r);
    return text;
}

/* Refusals of the block grid, before any reading. */
static mmcl_status
check_geometry(mmcl_context *ctx, const coreg_job *job, const char *label)
{
    if (job->block > job->width || job->block > job->height)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s is larger than the %s (%d x %d pixels): a "
                           "block must fit in the raster; use at most %d",
                           mmcl__opt_setting(ctx, "BLOCK",
                                             CPLSPrintf("%d", job->block)),
                           label, job->width, job->height,
                           job->width < job->height ? job->width
                                                    : job->height);
    if (2 * job->search + 1 > job->block)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s does not fit in a block of %d pixels: the "
                           "search range is at most (block - 1) / 2 = %d",
                           mmcl__opt_setting(ctx, "SEARCH",
                                             CPLSPrintf("%d", job->search)),
                           job->block, (job->block - 1) / 2);
    if (job->B1 > MAX_BANDS || job->B2 > MAX_BANDS)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "coreg takes at most %d bands per modality; the "
                           "pair has %d optical and %d SAR bands",
                           MAX_BANDS, job->B1, job->B2);
    return MMCL_OK;
}

static mmcl_status
write_field(mmcl_context *ctx, mmcl__writer *wr, const coreg_job *job,
            const double gt[6])
{
    size_t n = (size_t)job->nbx * job->nby;
    float *buf = mmcl__malloc_array(ctx, n, N_FIELD, sizeof(float));
    if (!buf)
        return MMCL_ERR_NO_MEMORY;
    for (size_t i = 0; i < n; i++) {
        double dx = job->dx[i], dy = job->dy[i];
        int none = job->reason[i] >= 0;
        buf[i] = none ? NAN : (float)dx;
        buf[n + i] = none ? NAN : (float)dy;
        /* The ground offset: east = dx gt1 + dy gt2; north = the y
         * component of the CRS, which grows up (gt5 < 0 north-up). */
        buf[2 * n + i] = none ? NAN : (float)(dx * gt[1] + dy * gt[2]);
        buf[3 * n + i] = none ? NAN : (float)(dx * gt[4] + dy * gt[5]);
        buf[4 * n + i] = none ? 0.0f : (float)job->conf[i];
    }
    mmcl_status st =
        mmcl__writer_write(ctx, wr, 0, 0, job->nbx, job->nby, buf);
    free(buf);
    return st;
}

static mmcl_status
set_metadata(mmcl_context *ctx, mmcl__writer *wr, const coreg_job *job,
             const coreg_summary *s, const mmcl_options *o)
{
    char block[32], search[32], dx[64], dy[64];
    snprintf(block, sizeof(block), "%d", job->block);
    snprintf(search, sizeof(search), "%d", job->search);
    snprintf(dx, sizeof(dx), "%.6g", s->dx);
    snprintf(dy, sizeof(dy), "%.6g", s->dy);
    const char *kv[][2] = {
        {"PRODUCT", "coreg"},
        {"COREG_BLOCK", block},
        {"COREG_SEARCH", search},
        {"COREG_DX", dx},
        {"COREG_DY", dy},
        {"RESAMPLING", mmcl__pair_resampling(job->pair)},
        {"SAR_TRANSFORM", mmcl__opt_str(o, "SAR_TRANSFORM")},
        {"MMCL_VERSION", mmcl_version()},
    };
    mmcl_status st = MMCL_OK;
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]) && st == MMCL_OK; i++)
        st = mmcl__writer_set_metadata(ctx, wr, kv[i][0], kv[i][1]);
    /* The correction the SAR was read with: the field is then a residual
     * (SAR_SHIFT or SAR_SHIFT_FIELD, as the maps record it). */
    const mmcl__shift *shift = mmcl__pair_shift(job->pair);
    char **smd = mmcl__shift_metadata(NULL, shift);
    if (shift && mmcl__shift_is_field(shift))
        smd = CSLSetNameValue(
            smd, "SHIFT_MIN_CONFIDENCE",
            CPLSPrintf("%g", mmcl__opt_double(o, "SHIFT_MIN_CONFIDENCE")));
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata_list(ctx, wr, smd);
    CSLDestroy(smd);
    if (st != MMCL_OK)
        return st;
    /* The block size and the global shift where every reader sees them
     * (the default domain), as the field's users (the warp's correction,
     * gdalinfo, QGIS) read them. */
    GDALDatasetH ds = mmcl__writer_dataset(wr);
    const char *shown[][2] = {{"MMCL_COREG_BLOCK", block},
                              {"MMCL_COREG_DX", dx},
                              {"MMCL_COREG_DY", dy}};
    for (size_t i = 0; i < 3; i++)
        if (GDALSetMetadataItem(ds, shown[i][0], shown[i][1], NULL) !=
            CE_None)
            return mmcl__error(ctx, MMCL_ERR_IO,
                               "cannot set metadata %s on the output",
                               shown[i][0]);
    static const char *const units[N_FIELD] = {"px", "px", "m", "m", ""};
    for (int b = 0; b < N_FIELD; b++)
        if (units[b][0])
            GDALSetRasterUnitType(GDALGetRasterBand(ds, b + 1), units[b]);
    return MMCL_OK;
}

mmcl_status
mmcl_coreg(mmcl_context *ctx, const char *const *optical, size_t n_optical,
           const char *const *sar, size_t n_sar, const char *out,
           const mmcl_options *opts_in, char **report_json)
{
    mmcl__error_clear(ctx);
    if (report_json)
        *report_json = NULL;
    mmcl_options *tmp = NULL;
    const mmcl_options *o = NULL;
    mmcl__files *files = NULL;
    mmcl__writer *wr = NULL;
    mmcl__stage *report_stage = NULL;
    char *text = NULL;
    coreg_job job = {0};
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "coreg", &tmp, &o);
    if (st != MMCL_OK)
        return st;
    if (!out || !optical || !n_optical || !sar || !n_sar) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "coreg needs the optical, the SAR and the output");
        goto done;
    }
    const char *report = mmcl__opt_str(o, "REPORT");
    if (report && !*report)
        report = NULL;
    const char *format = NULL;
    char **co = mmcl__opt_list(o, "CO");
    files = mmcl__files_create(ctx, mmcl__opt_bool(o, "OVERWRITE"));
    if (!files) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < n_optical && st == MMCL_OK; i++)
        st = mmcl__files_add_input(ctx, files, optical[i]);
    for (size_t i = 0; i < n_sar && st == MMCL_OK; i++)
        st = mmcl__files_add_input(ctx, files, sar[i]);
    if (st == MMCL_OK && mmcl__opt_str(o, "SAR_SHIFT_FIELD"))
        st = mmcl__files_add_input(ctx, files,
                                   mmcl__opt_str(o, "SAR_SHIFT_FIELD"));
    if (st == MMCL_OK)
        st = mmcl__output_check_options(ctx, files, out, o, co, GDT_Float32,
                                        "coreg", &format);
    if (st == MMCL_OK && report)
        st = mmcl__files_add_output(ctx, files, report, "report",
                                    MMCL__OUT_COREG_REPORT, NULL, NULL);
    if (st != MMCL_OK)
        goto done;
    st = mmcl__pair_open(ctx, optical, n_optical, sar, n_sar, o, &job.pair);
    if (st != MMCL_OK)
        goto done;

    job.width = mmcl__pair_width(job.pair);
    job.height = mmcl__pair_height(job.pair);
    job.block = (int)mmcl__opt_int(o, "BLOCK");
    job.search = (int)mmcl__opt_int(o, "SEARCH");
    job.margin = job.search + 1;
    job.B1 = mmcl__pair_optical_bands(job.pair);
    job.B2 = mmcl__pair_sar_bands(job.pair);
    st = check_geometry(ctx, &job, mmcl__pair_optical_label(job.pair));
    if (st != MMCL_OK)
        goto done;
    job.tile = job.block * (job.block < TILE_PIXELS ? TILE_PIXELS / job.block
                                                    : 1);
    job.nbx = (job.width + job.block - 1) / job.block;
    job.nby = (job.height + job.block - 1) / job.block;
    size_t nb = (size_t)job.nbx * job.nby;
    job.dx = mmcl__malloc_array(ctx, nb, 1, sizeof(double));
    job.dy = mmcl__malloc_array(ctx, nb, 1, sizeof(double));
    job.conf = mmcl__malloc_array(ctx, nb, 1, sizeof(double));
    job.rho = mmcl__malloc_array(ctx, nb, 1, sizeof(double));
    job.reason = mmcl__malloc_array(ctx, nb, 1, 1);
    if (!job.dx || !job.dy || !job.conf || !job.rho || !job.reason) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }

    double gt[6], fgt[6];
    mmcl__pair_geotransform(job.pair, gt);
    for (int i = 0; i < 6; i++)
        fgt[i] = (i == 0 || i == 3) ? gt[i] : gt[i] * job.block;
    int threads = mmcl__opt_threads(o);
    mmcl__raster_spec spec = {0};
    spec.path = out;
    spec.format = format;
    spec.creation_options = co;
    spec.files = files;
    spec.product = "coreg";
    spec.width = job.nbx;
    spec.height = job.nby;
    spec.n_bands = N_FIELD;
    spec.type = GDT_Float32;
    memcpy(spec.geotransform, fgt, sizeof(fgt));
    spec.srs_wkt = mmcl__pair_srs_wkt(job.pair);
    spec.has_nodata = 1;
    spec.nodata = NAN;
    spec.band_names = field_names;
    spec.block = 256;
    spec.n_threads = threads;
    wr = mmcl__writer_open(ctx, &spec);
    if (!wr) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }

    void *puser;
    mmcl_progress_fn progress = mmcl__opt_progress(o, &puser);
    mmcl__tile_job tj = {coreg_start, coreg_work, NULL, coreg_stop, &job};
    st = mmcl__run_tiles(ctx, job.width, job.height, job.tile, threads, &tj,
                         progress, puser, 0.0, 0.95);
    if (st != MMCL_OK)
        goto done;

    double min_conf = mmcl__opt_double(o, "MIN_CONFIDENCE");
    coreg_summary sum;
    st = summarise(ctx, &job, min_conf, &sum);
    if (st == MMCL_OK)
        st = write_field(ctx, wr, &job, gt);
    if (st == MMCL_OK)
        st = set_metadata(ctx, wr, &job, &sum, o);
    if (st != MMCL_OK)
        goto done;
    if (sum.n_estimates == 0)
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "coreg: no block of %s has an estimate (too few valid "
                  "pixels, uniform, or shifted beyond the search range of "
                  "%d pixels)",
                  mmcl__pair_optical_label(job.pair), job.search);
    else if (sum.n_confident == 0)
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "coreg: no block has a confidence of at least %g: the "
                  "global shift is unknown (NaN)",
                  min_conf);
    text = report_make(&job, &sum, gt, min_conf, optical, n_optical, sar,
                       n_sar, out, o);
    if (!text) {
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        goto done;
    }

    /* The field and the report in place together, or neither. */
    st = mmcl__writer_commit_with_text(ctx, wr, files, report, text,
                                       &report_stage, progress, puser, 0.95,
                                       1.0);
    if (st == MMCL_OK && report_json) {
        *report_json = mmcl__strdup(ctx, text);
        if (!*report_json)
            st = MMCL_ERR_NO_MEMORY;
    }

done:
    cJSON_free(text);
    mmcl__stage_destroy(report_stage);
    mmcl__writer_abort(wr);
    mmcl__pair_close(job.pair);
    free(job.dx);
    free(job.dy);
    free(job.conf);
    free(job.rho);
    free(job.reason);
    mmcl__files_destroy(files);
    mmcl_options_free(tmp);
    return st;
}
