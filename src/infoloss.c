/* SPDX-License-Identifier: MIT */
/*
 * mmcl_infoloss: per pixel, how much of each modality's signal its aligned
 * embedding does not carry (design section 3.5), measured with the linear
 * decoders fitted at training time, and the global figures.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_string.h>

#include "mmcl/maps.h"

#include "context_internal.h"
#include "maps_internal.h"
#include "options_internal.h"
#include "sample_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

static const char *const mod_names[2] = {"optical", "sar"};

/* Sums over valid pixels for the global figures of one modality. */
typedef struct loss_sums {
    double sse_aligned, sse_unimodal, sse_nonred; /* summed over bands */
    double n, n_nonred;                           /* pixels */
    double sum_c[64], sum_c2[64];                 /* per band, all valid */
    double sum_c_nr[64], sum_c2_nr[64];           /* where both are valid */
} loss_sums;

typedef struct loss_job {
    const mmcl__encoder *enc;
    const mmcl__pair *pair;
    mmcl__writer *writer;
    int tile, nonred, per_mod, n_out;
    loss_sums total[2];
} loss_job;

typedef struct loss_worker {
    mmcl__pair_reader *reader;
    mmcl__encoder_work *work;
    float *pad[2];
    uint8_t *valid, *scratch;
    uint8_t *ok[2];
    float *X[2];
    float *H, *U, *C, *pred; /* (T*T, max K) and (T*T, max B) */
    float *out;              /* (n_out, T, T) */
    loss_sums sums[2];       /* of the last tile */
} loss_worker;

static void
loss_stop(void *state, void *user)
{
    loss_worker *w = state;
    if (!w)
        return;
    mmcl__pair_reader_destroy(w->reader);
    mmcl__encoder_work_free(w->work);
    for (int m = 0; m < 2; m++) {
        free(w->pad[m]);
        free(w->ok[m]);
        free(w->X[m]);
    }
    free(w->valid);
    free(w->scratch);
    free(w->H);
    free(w->U);
    free(w->C);
    free(w->pred);
    free(w->out);
    free(w);
}

static void *
loss_start(mmcl_context *ctx, void *user)
{
    loss_job *job = user;
    const mmcl__encoder *enc = job->enc;
    loss_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    size_t T = (size_t)job->tile, Wp = T + 2 * (size_t)(enc->P / 2);
    size_t rows = (T * T + MMCL__GEMM_ROWS - 1) / MMCL__GEMM_ROWS *
                  MMCL__GEMM_ROWS;
    size_t Kmax = (size_t)(enc->mod[0].K > enc->mod[1].K ? enc->mod[0].K
                                                           : enc->mod[1].K);
    size_t Bmax = (size_t)(enc->mod[0].B > enc->mod[1].B ? enc->mod[0].B
                                                           : enc->mod[1].B);
    w->reader = mmcl__pair_reader_create(ctx, job->pair);
    w->work = mmcl__encoder_work_create(ctx, enc);
    w->valid = mmcl__malloc_array(ctx, Wp, Wp, 1);
    w->scratch = mmcl__malloc_array(ctx, Wp, T, 1);
    w->H = mmcl__malloc_array(ctx, rows, Kmax, 4);
    w->U = mmcl__malloc_array(ctx, rows, Kmax, 4);
    w->C = mmcl__malloc_array(ctx, rows, Bmax, 4);
    w->pred = mmcl__malloc_array(ctx, rows, Bmax, 4);
    w->out = mmcl__malloc_array(ctx, T * T, (size_t)job->n_out, 4);
    int fail = !w->reader || !w->work || !w->valid || !w->scratch || !w->H ||
               !w->U || !w->C || !w->pred || !w->out;
    for (int m = 0; m < 2 && !fail; m++) {
        w->pad[m] = mmcl__malloc_array(ctx, Wp * Wp, (size_t)enc->mod[m].B, 4);
        w->ok[m] = mmcl__malloc_array(ctx, T, T, 1);
        w->X[m] = mmcl__malloc_array(ctx, rows, (size_t)enc->mod[m].d, 4);
        fail = !w->pad[m] || !w->ok[m] || !w->X[m];
    }
    if (fail) {
        loss_stop(w, user);
        return NULL;
    }
    return w;
}

/* loss[i] = ||C_i - pred_i||^2 / B for the n rows. */
static void
row_loss(float *loss, size_t stride, const float *C, const float *pred,
         size_t n, int B)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int b = 0; b < B; b++) {
            double e = (double)C[i * B + b] - pred[i * B + b];
            s += e * e;
        }
        loss[i * stride] = (float)(s / B);
    }
}

static mmcl_status
loss_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    loss_job *job = user;
    loss_worker *w = state;
    const mmcl__encoder *enc = job->enc;
    int halo = enc->P / 2, P = enc->P;
    size_t n = (size_t)t->w * t->h;
    mmcl_status st = mmcl__pair_read(ctx, w->reader, t->x, t->y, t->w, t->h,
                                     halo, w->pad[0], w->pad[1], w->valid);
    if (st != MMCL_OK)
        return st;
    /* Whole blocks of MMCL__GEMM_ROWS rows for every GEMM (zero rows after
     * n), so a pixel's value does not depend on the tiling. */
    size_t n_gemm = (n + MMCL__GEMM_ROWS - 1) / MMCL__GEMM_ROWS *
                    MMCL__GEMM_ROWS;
    static const uint8_t bit[2] = {MMCL__VALID_OPTICAL, MMCL__VALID_SAR};
    for (int m = 0; m < 2; m++) {
        const mmcl__modality *mod = &enc->mod[m];
        mmcl__patch_valid(w->ok[m], w->valid, bit[m], t->w, t->h, halo,
                          w->scratch);
        mmcl__patches(w->X[m], w->pad[m], mod->B, t->w, t->h, P, mod->mean,
                      mod->std);
        memset(w->X[m] + n * mod->d, 0,
               (n_gemm - n) * mod->d * sizeof(float));
    }
    memset(w->sums, 0, sizeof(w->sums));

    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        const mmcl__modality *mod = &enc->mod[m];
        int B = mod->B;
        loss_sums *s = &w->sums[m];
        float *out = w->out + (size_t)m * job->per_mod * n;
        /* Centre-pixel bands c_m (n, B). */
        for (size_t i = 0; i < n; i++)
            for (int b = 0; b < B; b++)
                w->C[i * B + b] =
                    w->X[m][i * mod->d + mmcl__patch_index(b, halo, halo, P)];
        /* infoloss: through the aligned representation. */
        st = mmcl__encoder_embed(ctx, enc, w->work, m, w->X[m], (int)n_gemm,
                                 w->H);
        if (st != MMCL_OK)
            break;
        mmcl__linear_apply(w->pred, &mod->dec_aligned, w->H, (int)n_gemm);
        row_loss(out, 1, w->C, w->pred, n, B);
        /* unimodal: through PCA_K of the modality itself. */
        mmcl__linear_apply(w->U, &mod->unimodal, w->X[m], (int)n_gemm);
        mmcl__linear_apply(w->pred, &mod->dec_unimodal, w->U, (int)n_gemm);
        row_loss(out + n, 1, w->C, w->pred, n, B);
        /* non-redundancy: predicted from the other modality's patch. */
        if (job->nonred) {
            mmcl__linear_apply(w->pred, &mod->dec_nonred, w->X[1 - m],
                               (int)n_gemm);
            row_loss(out + 3 * n, 1, w->C, w->pred, n, B);
        }
        for (size_t i = 0; i < n; i++) {
            int both = w->ok[0][i] && w->ok[1][i];
            if (!w->ok[m][i]) {
                for (int q = 0; q < job->per_mod; q++)
                    out[q * n + i] = NAN;
                continue;
            }
            out[2 * n + i] = out[i] - out[n + i];
            s->n += 1;
            s->sse_aligned += (double)out[i] * B;
            s->sse_unimodal += (double)out[n + i] * B;
            for (int b = 0; b < B; b++) {
                double c = w->C[i * B + b];
                s->sum_c[b] += c;
                s->sum_c2[b] += c * c;
            }
            if (!job->nonred)
                continue;
            if (!both) {
                out[3 * n + i] = NAN;
                continue;
            }
            s->n_nonred += 1;
            s->sse_nonred += (double)out[3 * n + i] * B;
            for (int b = 0; b < B; b++) {
                double c = w->C[i * B + b];
                s->sum_c_nr[b] += c;
                s->sum_c2_nr[b] += c * c;
            }
        }
    }
    return st;
}

static mmcl_status
loss_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    loss_job *job = user;
    loss_worker *w = state;
    /* Sums merged in tile order: the figures do not depend on threads. */
    for (int m = 0; m < 2; m++) {
        loss_sums *a = &job->total[m];
        const loss_sums *b = &w->sums[m];
        a->sse_aligned += b->sse_aligned;
        a->sse_unimodal += b->sse_unimodal;
        a->sse_nonred += b->sse_nonred;
        a->n += b->n;
        a->n_nonred += b->n_nonred;
        for (int k = 0; k < 64; k++) {
            a->sum_c[k] += b->sum_c[k];
            a->sum_c2[k] += b->sum_c2[k];
            a->sum_c_nr[k] += b->sum_c_nr[k];
            a->sum_c2_nr[k] += b->sum_c2_nr[k];
        }
    }
    return mmcl__writer_write(ctx, job->writer, t->x, t->y, t->w, t->h,
                              w->out);
}

static double
total_ss(const double *sum, const double *sum2, double n, int B)
{
    double sst = 0;
    for (int b = 0; b < B && n > 0; b++)
        sst += sum2[b] - sum[b] * sum[b] / n;
    return sst;
}

/* The global figures as JSON. */
static cJSON *
figures_json(const loss_job *job)
{
    const mmcl__encoder *enc = job->enc;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model_hash", enc->hash);
    cJSON_AddStringToObject(j, "objective", enc->objective);
    cJSON_AddNumberToObject(j, "k", enc->k);
    cJSON_AddNumberToObject(j, "patch", enc->P);
    cJSON_AddStringToObject(j, "units", "standardized band variance");
    for (int m = 0; m < 2; m++) {
        const loss_sums *s = &job->total[m];
        int B = enc->mod[m].B;
        double sst = total_ss(s->sum_c, s->sum_c2, s->n, B);
        double r2a = sst > 0 ? 1 - s->sse_aligned / sst : 0;
        double r2u = sst > 0 ? 1 - s->sse_unimodal / sst : 0;
        cJSON *o = cJSON_AddObjectToObject(j, mod_names[m]);
        cJSON_AddNumberToObject(o, "valid_pixels", s->n);
        cJSON_AddNumberToObject(o, "representation_dim", enc->mod[m].K);
        cJSON_AddNumberToObject(o, "r2_aligned", r2a);
        cJSON_AddNumberToObject(o, "r2_unimodal", r2u);
        cJSON_AddNumberToObject(o, "loss_fraction",
                                r2u > 0 ? (r2u - r2a) / r2u : 0);
        double nb = s->n * B;
        cJSON_AddNumberToObject(o, "mean_infoloss",
                                nb > 0 ? s->sse_aligned / nb : 0);
        cJSON_AddNumberToObject(o, "mean_unimodal",
                                nb > 0 ? s->sse_unimodal / nb : 0);
        cJSON_AddNumberToObject(o, "mean_excess",
                                nb > 0 ? (s->sse_aligned - s->sse_unimodal) /
                                             nb
                                       : 0);
        if (job->nonred) {
            double sst_nr = total_ss(s->sum_c_nr, s->sum_c2_nr, s->n_nonred,
                                     B);
            double nbr = s->n_nonred * B;
            cJSON_AddNumberToObject(o, "mean_nonredundancy",
                                    nbr > 0 ? s->sse_nonred / nbr : 0);
            cJSON_AddNumberToObject(o, "r2_from_other_modality",
                                    sst_nr > 0 ? 1 - s->sse_nonred / sst_nr
                                               : 0);
        }
    }
    return j;
}

static mmcl_status
write_figures_md(mmcl_context *ctx, mmcl__writer *wr, const cJSON *fig)
{
    static const char *const keys[] = {
        "r2_aligned", "r2_unimodal", "loss_fraction", "mean_infoloss",
        "mean_unimodal", "mean_excess", "mean_nonredundancy",
        "r2_from_other_modality", "valid_pixels", NULL};
    mmcl_status st = MMCL_OK;
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        const cJSON *o = cJSON_GetObjectItem(fig, mod_names[m]);
        for (int i = 0; keys[i] && st == MMCL_OK; i++) {
            const cJSON *v = cJSON_GetObjectItem(o, keys[i]);
            if (!cJSON_IsNumber(v))
                continue;
            char key[96], val[64];
            snprintf(key, sizeof(key), "%s_%s", keys[i], mod_names[m]);
            for (char *c = key; *c; c++)
                *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
            snprintf(val, sizeof(val), "%.6g", v->valuedouble);
            st = mmcl__writer_set_metadata(ctx, wr, key, val);
        }
    }
    return st;
}

mmcl_status
mmcl_infoloss(mmcl_context *ctx, const mmcl_model *model,
              const char *const *optical, size_t n_optical, const char *sar,
              const char *out, const mmcl_options *opts_in,
              char **report_json)
{
    mmcl__error_clear(ctx);
    if (report_json)
        *report_json = NULL;
    mmcl_options *tmp = NULL;
    const mmcl_options *o = NULL;
    mmcl__encoder *enc = NULL;
    mmcl__pair *pair = NULL;
    loss_job job = {0};
    char **names = NULL;
    cJSON *fig = NULL;
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "infoloss", &tmp, &o);
    if (st != MMCL_OK)
        return st;
    const char *format = mmcl__opt_str(o, "FORMAT");
    char **co = mmcl__opt_list(o, "CO");
    int overwrite = mmcl__opt_bool(o, "OVERWRITE");
    const char *report = mmcl__opt_str(o, "REPORT");
    st = mmcl__output_check(ctx, out, format, co, GDT_Float32, overwrite);
    if (st == MMCL_OK && report) {
        FILE *f = fopen(report, "rb");
        if (f) {
            fclose(f);
            if (!overwrite)
                st = mmcl__error(ctx, MMCL_ERR_EXISTS,
                                 "report '%s' exists; use --overwrite to "
                                 "replace it",
                                 report);
        }
    }
    if (st == MMCL_OK)
        st = mmcl__maps_open(ctx, model, optical, n_optical, sar, &enc, &pair);
    if (st != MMCL_OK)
        goto done;
    for (int m = 0; m < 2; m++)
        if (enc->mod[m].B > 64) {
            st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                             "infoloss handles up to 64 bands per modality");
            goto done;
        }

    job.enc = enc;
    job.pair = pair;
    job.tile = (int)mmcl__opt_int(o, "TILE");
    job.nonred = mmcl__opt_bool(o, "NON_REDUNDANCY");
    job.per_mod = job.nonred ? 4 : 3;
    job.n_out = 2 * job.per_mod;
    for (int m = 0; m < 2; m++) {
        names = CSLAddString(names, CPLSPrintf("infoloss_%s", mod_names[m]));
        names = CSLAddString(names, CPLSPrintf("unimodal_%s", mod_names[m]));
        names = CSLAddString(names, CPLSPrintf("excess_%s", mod_names[m]));
        if (job.nonred)
            names = CSLAddString(names,
                                 CPLSPrintf("nonredundancy_%s", mod_names[m]));
    }

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
    mmcl__tile_job tj = {loss_start, loss_work, loss_commit, loss_stop, &job};
    void *puser;
    mmcl_progress_fn progress = mmcl__opt_progress(o, &puser);
    st = mmcl__run_tiles(ctx, spec.width, spec.height, job.tile,
                         mmcl__opt_threads(o), &tj, progress, puser, 0.0, 1.0);
    if (st != MMCL_OK)
        goto done;
    if (job.total[0].n + job.total[1].n == 0) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "no valid patch in the pair: nothing to measure");
        goto done;
    }
    fig = figures_json(&job);
    static const char *const md[][2] = {{"PRODUCT", "infoloss"},
                                        {"UNITS",
                                         "standardized band variance"}};
    for (size_t i = 0; i < 2 && st == MMCL_OK; i++)
        st = mmcl__writer_set_metadata(ctx, job.writer, md[i][0], md[i][1]);
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata(ctx, job.writer, "MODEL_HASH",
                                       enc->hash);
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata(ctx, job.writer, "OBJECTIVE",
                                       enc->objective);
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata(ctx, job.writer, "K",
                                       CPLSPrintf("%d", enc->k));
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata(ctx, job.writer, "PATCH",
                                       CPLSPrintf("%d", enc->P));
    if (st == MMCL_OK)
        st = write_figures_md(ctx, job.writer, fig);
    if (st != MMCL_OK)
        goto done;
    char *text = cJSON_Print(fig);
    if (!text) {
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    if (report) {
        /* Report under a temporary name, renamed after the raster. */
        char tmpname[4096];
        snprintf(tmpname, sizeof(tmpname), "%s.mmcl-tmp", report);
        FILE *f = fopen(tmpname, "wb");
        int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
        if (f && fclose(f) != 0)
            ok = 0;
        if (!ok) {
            remove(tmpname);
            cJSON_free(text);
            st = mmcl__error(ctx, MMCL_ERR_IO, "cannot write report '%s'",
                             report);
            goto done;
        }
        st = mmcl__writer_commit(ctx, job.writer);
        job.writer = NULL;
        if (st == MMCL_OK && rename(tmpname, report) != 0)
            st = mmcl__error(ctx, MMCL_ERR_IO, "cannot rename '%s' to '%s'",
                             tmpname, report);
        if (st != MMCL_OK)
            remove(tmpname);
    } else {
        st = mmcl__writer_commit(ctx, job.writer);
        job.writer = NULL;
    }
    if (st == MMCL_OK && report_json) {
        *report_json = mmcl__strdup(ctx, text);
        if (!*report_json)
            st = MMCL_ERR_NO_MEMORY;
    }
    cJSON_free(text);
done:
    cJSON_Delete(fig);
    mmcl__writer_abort(job.writer);
    CSLDestroy(names);
    mmcl__pair_close(pair);
    mmcl__encoder_free(enc);
    mmcl_options_free(tmp);
    return st;
}
