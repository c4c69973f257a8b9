/* SPDX-License-Identifier: MIT */
/*
 * The per-window compute of the maps, shared by the writers (mmcl_embed,
 * mmcl_infoloss) and the lazy products read through the GDAL plugin
 * (mmcl_product_read), so that both give the same bits: read the window
 * with the halo the patch needs, build the standardized patch vectors, run
 * the encoders (and for information loss the decoders) as GEMMs on blocks
 * of exactly MMCL__GEMM_ROWS rows, and compose the output bands. A pixel's
 * value does not depend on the window it was computed in.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpl_string.h>

#include "context_internal.h"
#include "maps_internal.h"
#include "sample_internal.h"

static const char *const mod_names[2] = {"optical", "sar"};

mmcl_status
mmcl__map_def_init(mmcl_context *ctx, mmcl__map_def *def,
                   const mmcl__encoder *enc, mmcl__map_kind kind,
                   const char *modality, int nonred)
{
    memset(def, 0, sizeof(*def));
    def->kind = kind;
    if (kind == MMCL__MAP_INFOLOSS) {
        for (int m = 0; m < 2; m++)
            if (enc->mod[m].B > MMCL__LOSS_MAX_BANDS)
                return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                                   "infoloss handles up to %d bands per "
                                   "modality",
                                   MMCL__LOSS_MAX_BANDS);
        def->nonred = nonred != 0;
        def->per_mod = def->nonred ? 4 : 3;
        def->n_out = 2 * def->per_mod;
        return MMCL_OK;
    }
    if (!modality || strcmp(modality, "joint") == 0) {
        def->use = MMCL__USE_JOINT;
        def->modality = "joint";
    } else if (strcmp(modality, "optical") == 0) {
        def->use = MMCL__USE_OPTICAL;
        def->modality = "optical";
    } else if (strcmp(modality, "sar") == 0) {
        def->use = MMCL__USE_SAR;
        def->modality = "sar";
    } else {
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "modality must be optical, sar or joint, got '%s'",
                           modality);
    }
    if (def->use == MMCL__USE_OPTICAL)
        def->n_out = enc->mod[0].K;
    else if (def->use == MMCL__USE_SAR)
        def->n_out = enc->mod[1].K;
    else if (enc->mod[0].kp || enc->mod[1].kp)
        def->n_out = enc->k + enc->mod[0].kp + enc->mod[1].kp;
    else
        def->n_out = enc->k;
    return MMCL_OK;
}

char **
mmcl__map_band_names(const mmcl__map_def *def)
{
    char **names = NULL;
    if (def->kind == MMCL__MAP_EMBEDDING) {
        for (int b = 0; b < def->n_out; b++)
            names = CSLAddString(names, CPLSPrintf("emb_%03d", b));
        return names;
    }
    for (int m = 0; m < 2; m++) {
        names = CSLAddString(names, CPLSPrintf("infoloss_%s", mod_names[m]));
        names = CSLAddString(names, CPLSPrintf("unimodal_%s", mod_names[m]));
        names = CSLAddString(names, CPLSPrintf("excess_%s", mod_names[m]));
        if (def->nonred)
            names = CSLAddString(names,
                                 CPLSPrintf("nonredundancy_%s", mod_names[m]));
    }
    return names;
}

char **
mmcl__map_metadata(const mmcl__map_def *def, const mmcl__encoder *enc)
{
    char **md = NULL;
    if (def->kind == MMCL__MAP_EMBEDDING) {
        md = CSLSetNameValue(md, "PRODUCT", "embedding");
        md = CSLSetNameValue(md, "MODEL_HASH", enc->hash);
        md = CSLSetNameValue(md, "OBJECTIVE", enc->objective);
        md = CSLSetNameValue(md, "K", CPLSPrintf("%d", enc->k));
        md = CSLSetNameValue(md, "PATCH", CPLSPrintf("%d", enc->P));
        md = CSLSetNameValue(md, "MODALITY", def->modality);
        md = CSLSetNameValue(md, "MMCL_VERSION", mmcl_version());
        return md;
    }
    md = CSLSetNameValue(md, "PRODUCT", "infoloss");
    md = CSLSetNameValue(md, "UNITS", "standardized band variance");
    md = CSLSetNameValue(md, "MODEL_HASH", enc->hash);
    md = CSLSetNameValue(md, "OBJECTIVE", enc->objective);
    md = CSLSetNameValue(md, "K", CPLSPrintf("%d", enc->k));
    md = CSLSetNameValue(md, "PATCH", CPLSPrintf("%d", enc->P));
    return md;
}

/* ---- global figures of the information-loss maps ---------------------- */

void
mmcl__loss_sums_add(mmcl__loss_sums *a, const mmcl__loss_sums *b)
{
    a->sse_aligned += b->sse_aligned;
    a->sse_unimodal += b->sse_unimodal;
    a->sse_nonred += b->sse_nonred;
    a->n += b->n;
    a->n_nonred += b->n_nonred;
    for (int k = 0; k < MMCL__LOSS_MAX_BANDS; k++) {
        a->sum_c[k] += b->sum_c[k];
        a->sum_c2[k] += b->sum_c2[k];
        a->sum_c_nr[k] += b->sum_c_nr[k];
        a->sum_c2_nr[k] += b->sum_c2_nr[k];
    }
}

static double
total_ss(const double *sum, const double *sum2, double n, int B)
{
    double sst = 0;
    for (int b = 0; b < B && n > 0; b++)
        sst += sum2[b] - sum[b] * sum[b] / n;
    return sst;
}

cJSON *
mmcl__loss_figures_json(const mmcl__encoder *enc, int nonred,
                        const mmcl__loss_sums total[2])
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model_hash", enc->hash);
    cJSON_AddStringToObject(j, "objective", enc->objective);
    cJSON_AddNumberToObject(j, "k", enc->k);
    cJSON_AddNumberToObject(j, "patch", enc->P);
    cJSON_AddStringToObject(j, "units", "standardized band variance");
    for (int m = 0; m < 2; m++) {
        const mmcl__loss_sums *s = &total[m];
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
        if (nonred) {
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

char **
mmcl__loss_figures_md(const cJSON *fig)
{
    static const char *const keys[] = {
        "r2_aligned", "r2_unimodal", "loss_fraction", "mean_infoloss",
        "mean_unimodal", "mean_excess", "mean_nonredundancy",
        "r2_from_other_modality", "valid_pixels", NULL};
    char **md = NULL;
    for (int m = 0; m < 2; m++) {
        const cJSON *o = cJSON_GetObjectItem(fig, mod_names[m]);
        for (int i = 0; keys[i]; i++) {
            const cJSON *v = cJSON_GetObjectItem(o, keys[i]);
            if (!cJSON_IsNumber(v))
                continue;
            char key[96], val[64];
            snprintf(key, sizeof(key), "%s_%s", keys[i], mod_names[m]);
            for (char *c = key; *c; c++)
                *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
            snprintf(val, sizeof(val), "%.6g", v->valuedouble);
            md = CSLAddString(md, CPLSPrintf("%s=%s", key, val));
        }
    }
    return md;
}

/* ---- the per-window compute ------------------------------------------- */

struct mmcl__map_worker {
    const mmcl__encoder *enc;
    const mmcl__map_def *def;
    int tile;
    mmcl__pair_reader *reader;
    mmcl__encoder_work *work;
    float *pad[2];   /* padded windows (B_m, H, W) */
    uint8_t *valid;  /* padded validity (H, W) */
    uint8_t *ok[2];  /* (tile*tile) patch of modality m valid */
    uint8_t *scratch;
    float *X[2];     /* (rows, d_m) standardized patch vectors */
    float *H[2];     /* (rows, K_m) representations */
    float *U, *C, *pred; /* infoloss: (rows, max K), (rows, max B) x 2 */
};

void
mmcl__map_worker_destroy(mmcl__map_worker *w)
{
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
    free(w->U);
    free(w->C);
    free(w->pred);
    free(w);
}

mmcl__map_worker *
mmcl__map_worker_create(mmcl_context *ctx, const mmcl__encoder *enc,
                        const mmcl__pair *pair, const mmcl__map_def *def,
                        int tile)
{
    mmcl__map_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    w->enc = enc;
    w->def = def;
    w->tile = tile;
    size_t T = (size_t)tile, Wp = T + 2 * (size_t)(enc->P / 2);
    size_t rows = (T * T + MMCL__GEMM_ROWS - 1) / MMCL__GEMM_ROWS *
                  MMCL__GEMM_ROWS;
    size_t Kmax = (size_t)(enc->mod[0].K > enc->mod[1].K ? enc->mod[0].K
                                                           : enc->mod[1].K);
    size_t Bmax = (size_t)(enc->mod[0].B > enc->mod[1].B ? enc->mod[0].B
                                                           : enc->mod[1].B);
    int loss = def->kind == MMCL__MAP_INFOLOSS;
    w->reader = mmcl__pair_reader_create(ctx, pair);
    w->work = w->reader ? mmcl__encoder_work_create(ctx, enc) : NULL;
    int fail = !w->reader || !w->work;
    if (!fail) {
        w->valid = mmcl__malloc_array(ctx, Wp, Wp, 1);
        w->scratch = mmcl__malloc_array(ctx, Wp, T, 1);
        fail = !w->valid || !w->scratch;
    }
    if (!fail && loss) {
        /* One representation buffer serves both modalities in turn. */
        w->H[0] = mmcl__malloc_array(ctx, rows, Kmax, 4);
        w->U = mmcl__malloc_array(ctx, rows, Kmax, 4);
        w->C = mmcl__malloc_array(ctx, rows, Bmax, 4);
        w->pred = mmcl__malloc_array(ctx, rows, Bmax, 4);
        fail = !w->H[0] || !w->U || !w->C || !w->pred;
    }
    for (int m = 0; m < 2 && !fail; m++) {
        const mmcl__modality *mod = &enc->mod[m];
        w->pad[m] = mmcl__malloc_array(ctx, Wp * Wp, (size_t)mod->B, 4);
        w->ok[m] = mmcl__malloc_array(ctx, T, T, 1);
        w->X[m] = mmcl__malloc_array(ctx, rows, (size_t)mod->d, 4);
        fail = !w->pad[m] || !w->ok[m] || !w->X[m];
        if (!fail && !loss) {
            w->H[m] = mmcl__malloc_array(ctx, rows, (size_t)mod->K, 4);
            fail = !w->H[m];
        }
    }
    if (fail) {
        mmcl__map_worker_destroy(w);
        return NULL;
    }
    return w;
}

/* Composes the embedding bands (n_out, n), NaN where invalid. */
static void
compose_embedding(const mmcl__map_worker *w, size_t n, float *out)
{
    const mmcl__encoder *enc = w->enc;
    const mmcl__map_def *def = w->def;
    const mmcl__modality *m1 = &enc->mod[0], *m2 = &enc->mod[1];
    int sp = m1->kp > 0 || m2->kp > 0;
    for (size_t i = 0; i < n; i++) {
        float *o = out + i; /* band stride n */
        if (def->use != MMCL__USE_JOINT) {
            int m = def->use == MMCL__USE_OPTICAL ? 0 : 1;
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
            for (int b = 0; b < def->n_out; b++)
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
        for (int b = 0; b < def->n_out; b++) {
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
}

/* loss[i] = ||C_i - pred_i||^2 / B for the n rows. */
static void
row_loss(float *loss, const float *C, const float *pred, size_t n, int B)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int b = 0; b < B; b++) {
            double e = (double)C[i * B + b] - pred[i * B + b];
            s += e * e;
        }
        loss[i] = (float)(s / B);
    }
}

/* The information-loss bands (n_out, n) of the window and its sums. */
static mmcl_status
compose_infoloss(mmcl_context *ctx, mmcl__map_worker *w, size_t n,
                 size_t n_gemm, float *out, mmcl__loss_sums *sums)
{
    const mmcl__encoder *enc = w->enc;
    const mmcl__map_def *def = w->def;
    int halo = enc->P / 2, P = enc->P;
    mmcl_status st = MMCL_OK;
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        const mmcl__modality *mod = &enc->mod[m];
        int B = mod->B;
        mmcl__loss_sums local; /* when the caller wants no sums */
        mmcl__loss_sums *s = sums ? &sums[m] : &local;
        if (!sums)
            memset(&local, 0, sizeof(local));
        float *o = out + (size_t)m * def->per_mod * n;
        /* Centre-pixel bands c_m (n, B). */
        for (size_t i = 0; i < n; i++)
            for (int b = 0; b < B; b++)
                w->C[i * B + b] =
                    w->X[m][i * mod->d + mmcl__patch_index(b, halo, halo, P)];
        /* infoloss: through the aligned representation. */
        st = mmcl__encoder_embed(ctx, enc, w->work, m, w->X[m], (int)n_gemm,
                                 w->H[0]);
        if (st != MMCL_OK)
            break;
        mmcl__linear_apply(w->pred, &mod->dec_aligned, w->H[0], (int)n_gemm);
        row_loss(o, w->C, w->pred, n, B);
        /* unimodal: through PCA_K of the modality itself. */
        mmcl__linear_apply(w->U, &mod->unimodal, w->X[m], (int)n_gemm);
        mmcl__linear_apply(w->pred, &mod->dec_unimodal, w->U, (int)n_gemm);
        row_loss(o + n, w->C, w->pred, n, B);
        /* non-redundancy: predicted from the other modality's patch. */
        if (def->nonred) {
            mmcl__linear_apply(w->pred, &mod->dec_nonred, w->X[1 - m],
                               (int)n_gemm);
            row_loss(o + 3 * n, w->C, w->pred, n, B);
        }
        for (size_t i = 0; i < n; i++) {
            int both = w->ok[0][i] && w->ok[1][i];
            if (!w->ok[m][i]) {
                for (int q = 0; q < def->per_mod; q++)
                    o[q * n + i] = NAN;
                continue;
            }
            o[2 * n + i] = o[i] - o[n + i];
            s->n += 1;
            s->sse_aligned += (double)o[i] * B;
            s->sse_unimodal += (double)o[n + i] * B;
            for (int b = 0; b < B; b++) {
                double c = w->C[i * B + b];
                s->sum_c[b] += c;
                s->sum_c2[b] += c * c;
            }
            if (!def->nonred)
                continue;
            if (!both) {
                o[3 * n + i] = NAN;
                continue;
            }
            s->n_nonred += 1;
            s->sse_nonred += (double)o[3 * n + i] * B;
            for (int b = 0; b < B; b++) {
                double c = w->C[i * B + b];
                s->sum_c_nr[b] += c;
                s->sum_c2_nr[b] += c * c;
            }
        }
    }
    return st;
}

mmcl_status
mmcl__map_compute(mmcl_context *ctx, mmcl__map_worker *w, int x, int y,
                  int tw, int th, float *out, mmcl__loss_sums *sums)
{
    const mmcl__encoder *enc = w->enc;
    const mmcl__map_def *def = w->def;
    int halo = enc->P / 2;
    size_t n = (size_t)tw * th;
    if (tw < 1 || th < 1 || tw > w->tile || th > w->tile)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "window %dx%d does not fit the %d-pixel worker",
                           tw, th, w->tile);
    if (sums)
        memset(sums, 0, 2 * sizeof(*sums));
    mmcl_status st = mmcl__pair_read(ctx, w->reader, x, y, tw, th, halo,
                                     w->pad[0], w->pad[1], w->valid);
    if (st != MMCL_OK)
        return st;
    /* Whole blocks of MMCL__GEMM_ROWS rows for every GEMM (zero rows after
     * n), so a pixel's value does not depend on the window. */
    size_t n_gemm = (n + MMCL__GEMM_ROWS - 1) / MMCL__GEMM_ROWS *
                    MMCL__GEMM_ROWS;
    int loss = def->kind == MMCL__MAP_INFOLOSS;
    int need[2] = {loss || def->use != MMCL__USE_SAR,
                   loss || def->use != MMCL__USE_OPTICAL};
    static const uint8_t bit[2] = {MMCL__VALID_OPTICAL, MMCL__VALID_SAR};
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        if (!need[m])
            continue;
        const mmcl__modality *mod = &enc->mod[m];
        mmcl__patch_valid(w->ok[m], w->valid, bit[m], tw, th, halo,
                          w->scratch);
        mmcl__patches(w->X[m], w->pad[m], mod->B, tw, th, enc->P, mod->mean,
                      mod->std);
        memset(w->X[m] + n * mod->d, 0, (n_gemm - n) * mod->d * sizeof(float));
        if (!loss)
            st = mmcl__encoder_embed(ctx, enc, w->work, m, w->X[m],
                                     (int)n_gemm, w->H[m]);
    }
    if (st != MMCL_OK)
        return st;
    if (loss)
        return compose_infoloss(ctx, w, n, n_gemm, out, sums);
    compose_embedding(w, n, out);
    return MMCL_OK;
}
