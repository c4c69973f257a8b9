/* SPDX-License-Identifier: MIT */
/*
 * mmcl_embed: the embedding map, tile by tile: read the window with the
 * halo the patch needs, build the standardized patch vectors, run the
 * encoders as batched GEMMs, write the bands in tile order.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpl_string.h>

#include "mmcl/maps.h"

#include "context_internal.h"
#include "maps_internal.h"
#include "options_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

typedef enum modality_choice { USE_OPTICAL, USE_SAR, USE_JOINT } modality_choice;

typedef struct embed_job {
    const mmcl__encoder *enc;
    const mmcl__pair *pair;
    mmcl__writer *writer;
    modality_choice which;
    int tile, n_out;
} embed_job;

typedef struct embed_worker {
    mmcl__pair_reader *reader;
    mmcl__encoder_work *work;
    float *pad[2];    /* padded windows (B_m, H, W) */
    uint8_t *valid;   /* padded validity (H, W) */
    uint8_t *ok[2];   /* (tile*tile) patch of modality m valid */
    uint8_t *scratch;
    float *X[2];      /* (tile*tile, d_m) */
    float *H[2];      /* (tile*tile, K_m) */
    float *out;       /* (n_out, tile, tile) */
} embed_worker;

static void
embed_stop(void *state, void *user)
{
    embed_worker *w = state;
    if (!w)
        return;
    mmcl__pair_reader_destroy(w->reader);
    mmcl__encoder_work_free(w->work);
    for (int m = 0; m < 2; m++) {
        free(w->pad[m]);
        free(w->ok[m]);
        free(w->X[m]);
        free(w->H[m]);
    }
    free(w->valid);
    free(w->scratch);
    free(w->out);
    free(w);
}

static void *
embed_start(mmcl_context *ctx, void *user)
{
    embed_job *job = user;
    const mmcl__encoder *enc = job->enc;
    embed_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    size_t T = (size_t)job->tile, Wp = T + 2 * (size_t)(enc->P / 2);
    size_t rows = (T * T + MMCL__GEMM_ROWS - 1) / MMCL__GEMM_ROWS *
                  MMCL__GEMM_ROWS;
    int fail = 0;
    w->reader = mmcl__pair_reader_create(ctx, job->pair);
    w->work = mmcl__encoder_work_create(ctx, enc);
    w->valid = mmcl__malloc_array(ctx, Wp, Wp, 1);
    w->scratch = mmcl__malloc_array(ctx, Wp, T, 1);
    w->out = mmcl__malloc_array(ctx, T * T, (size_t)job->n_out, 4);
    fail = !w->reader || !w->work || !w->valid || !w->scratch || !w->out;
    for (int m = 0; m < 2 && !fail; m++) {
        const mmcl__modality *mod = &enc->mod[m];
        w->pad[m] = mmcl__malloc_array(ctx, Wp * Wp, (size_t)mod->B, 4);
        w->ok[m] = mmcl__malloc_array(ctx, T, T, 1);
        w->X[m] = mmcl__malloc_array(ctx, rows, (size_t)mod->d, 4);
        w->H[m] = mmcl__malloc_array(ctx, rows, (size_t)mod->K, 4);
        fail = !w->pad[m] || !w->ok[m] || !w->X[m] || !w->H[m];
    }
    if (fail) {
        embed_stop(w, user);
        return NULL;
    }
    return w;
}

static mmcl_status
embed_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    embed_job *job = user;
    embed_worker *w = state;
    const mmcl__encoder *enc = job->enc;
    int halo = enc->P / 2;
    size_t n = (size_t)t->w * t->h;
    mmcl_status st = mmcl__pair_read(ctx, w->reader, t->x, t->y, t->w, t->h,
                                     halo, w->pad[0], w->pad[1], w->valid);
    if (st != MMCL_OK)
        return st;
    /* Whole blocks of MMCL__GEMM_ROWS rows for every GEMM (zero rows after
     * n), so a pixel's value does not depend on the tiling. */
    size_t n_gemm = (n + MMCL__GEMM_ROWS - 1) / MMCL__GEMM_ROWS *
                    MMCL__GEMM_ROWS;
    int need[2] = {job->which != USE_SAR, job->which != USE_OPTICAL};
    static const uint8_t bit[2] = {MMCL__VALID_OPTICAL, MMCL__VALID_SAR};
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        if (!need[m])
            continue;
        const mmcl__modality *mod = &enc->mod[m];
        mmcl__patch_valid(w->ok[m], w->valid, bit[m], t->w, t->h, halo,
                          w->scratch);
        mmcl__patches(w->X[m], w->pad[m], mod->B, t->w, t->h, enc->P,
                      mod->mean, mod->std);
        memset(w->X[m] + n * mod->d, 0, (n_gemm - n) * mod->d * sizeof(float));
        st = mmcl__encoder_embed(ctx, enc, w->work, m, w->X[m], (int)n_gemm,
                                 w->H[m]);
    }
    if (st != MMCL_OK)
        return st;

    /* Compose the output bands (n_out, h, w), NaN where invalid. */
    const mmcl__modality *m1 = &enc->mod[0], *m2 = &enc->mod[1];
    int sp = m1->kp > 0 || m2->kp > 0;
    for (size_t i = 0; i < n; i++) {
        float *o = w->out + i; /* band stride n */
        if (job->which != USE_JOINT) {
            int m = job->which == USE_OPTICAL ? 0 : 1;
            int K = enc->mod[m].K;
            const float *h = w->H[m] + i * K;
            for (int b = 0; b < K; b++)
                o[b * n] = w->ok[m][i] ? h[b] : NAN;
            continue;
        }
        int ok1 = w->ok[0][i], ok2 = w->ok[1][i];
        const float *h1 = w->H[0] + i * m1->K, *h2 = w->H[1] + i * m2->K;
        if (sp) {
            /* [mean of the shared parts | private 1 | private 2]. */
            int k = enc->k;
            for (int b = 0; b < job->n_out; b++)
                o[b * n] = NAN;
            if (!(ok1 && ok2))
                continue;
            for (int b = 0; b < k; b++)
                o[b * n] = 0.5f * (h1[b] + h2[b]);
            for (int b = 0; b < m1->kp; b++)
                o[(k + b) * n] = h1[k + b];
            for (int b = 0; b < m2->kp; b++)
                o[(k + m1->kp + b) * n] = h2[k + b];
            continue;
        }
        /* Aligned spaces: the mean where both are valid, else the one. */
        for (int b = 0; b < job->n_out; b++) {
            float v = NAN;
            if (ok1 && ok2)
                v = 0.5f * (h1[b] + h2[b]);
            else if (ok1)
                v = h1[b];
            else if (ok2)
                v = h2[b];
            o[b * n] = v;
        }
    }
    return MMCL_OK;
}

static mmcl_status
embed_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    embed_job *job = user;
    embed_worker *w = state;
    return mmcl__writer_write(ctx, job->writer, t->x, t->y, t->w, t->h,
                              w->out);
}

static mmcl_status
set_md(mmcl_context *ctx, mmcl__writer *w, const char *key, const char *fmt,
       ...) MMCL__PRINTF(4, 5);

static mmcl_status
set_md(mmcl_context *ctx, mmcl__writer *w, const char *key, const char *fmt,
       ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return mmcl__writer_set_metadata(ctx, w, key, buf);
}

mmcl_status
mmcl_embed(mmcl_context *ctx, const mmcl_model *model,
           const char *const *optical, size_t n_optical, const char *sar,
           const char *out, const mmcl_options *opts_in)
{
    mmcl__error_clear(ctx);
    mmcl_options *tmp = NULL;
    const mmcl_options *o = NULL;
    mmcl__encoder *enc = NULL;
    mmcl__pair *pair = NULL;
    embed_job job = {0};
    char **names = NULL;
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "embed", &tmp, &o);
    if (st != MMCL_OK)
        return st;
    const char *format = mmcl__opt_str(o, "FORMAT");
    char **co = mmcl__opt_list(o, "CO");
    int overwrite = mmcl__opt_bool(o, "OVERWRITE");
    st = mmcl__output_check(ctx, out, format, co, GDT_Float32, overwrite);
    if (st == MMCL_OK)
        st = mmcl__maps_open(ctx, model, optical, n_optical, sar, &enc, &pair);
    if (st != MMCL_OK)
        goto done;

    const char *which = mmcl__opt_str(o, "MODALITY");
    job.which = strcmp(which, "optical") == 0 ? USE_OPTICAL
                : strcmp(which, "sar") == 0   ? USE_SAR
                                              : USE_JOINT;
    job.enc = enc;
    job.pair = pair;
    job.tile = (int)mmcl__opt_int(o, "TILE");
    if (job.which == USE_OPTICAL)
        job.n_out = enc->mod[0].K;
    else if (job.which == USE_SAR)
        job.n_out = enc->mod[1].K;
    else if (enc->mod[0].kp || enc->mod[1].kp)
        job.n_out = enc->k + enc->mod[0].kp + enc->mod[1].kp;
    else
        job.n_out = enc->k;
    for (int b = 0; b < job.n_out; b++)
        names = CSLAddString(names, CPLSPrintf("emb_%03d", b));

    mmcl__raster_spec spec = {0};
    spec.path = out;
    spec.format = format;
    spec.creation_options = co;
    spec.overwrite = overwrite;
    spec.width = mmcl__pair_width(pair);
    spec.height = mmcl__pair_height(pair);
    spec.n_bands = job.n_out;
    spec.type = GDT_Float32;
    mmcl__pair_geotransform(pair, spec.geotransform);
    spec.srs_wkt = mmcl__pair_srs_wkt(pair);
    spec.has_nodata = 1;
    spec.nodata = NAN;
    spec.band_names = (const char *const *)names;
    spec.block = job.tile;
    spec.n_threads = mmcl__opt_threads(o);
    job.writer = mmcl__writer_open(ctx, &spec);
    if (!job.writer) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    st = set_md(ctx, job.writer, "PRODUCT", "embedding");
    if (st == MMCL_OK)
        st = set_md(ctx, job.writer, "MODEL_HASH", "%s", enc->hash);
    if (st == MMCL_OK)
        st = set_md(ctx, job.writer, "OBJECTIVE", "%s", enc->objective);
    if (st == MMCL_OK)
        st = set_md(ctx, job.writer, "K", "%d", enc->k);
    if (st == MMCL_OK)
        st = set_md(ctx, job.writer, "PATCH", "%d", enc->P);
    if (st == MMCL_OK)
        st = set_md(ctx, job.writer, "MODALITY", "%s", which);
    if (st == MMCL_OK)
        st = set_md(ctx, job.writer, "MMCL_VERSION", "%s", mmcl_version());
    if (st != MMCL_OK)
        goto done;

    mmcl__tile_job tj = {embed_start, embed_work, embed_commit, embed_stop,
                         &job};
    void *puser;
    mmcl_progress_fn progress = mmcl__opt_progress(o, &puser);
    st = mmcl__run_tiles(ctx, spec.width, spec.height, job.tile,
                         mmcl__opt_threads(o), &tj, progress, puser, 0.0, 1.0);
    if (st == MMCL_OK) {
        st = mmcl__writer_commit(ctx, job.writer);
        job.writer = NULL;
    }
done:
    mmcl__writer_abort(job.writer);
    CSLDestroy(names);
    mmcl__pair_close(pair);
    mmcl__encoder_free(enc);
    mmcl_options_free(tmp);
    return st;
}
