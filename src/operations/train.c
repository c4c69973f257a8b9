/* SPDX-License-Identifier: MIT */
/*
 * mmcl_train: samples, the objectives of design section 3.4, the decoders
 * of section 3.5, and the model file's tensors and metadata.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_string.h>

#include "mmcl/train.h"

#include "blas_info_internal.h"
#include "blas_threads.h"
#include "cca.h"
#include "clip.h"
#include "context_internal.h"
#include "dist_internal.h"
#include "model_schema_internal.h"
#include "encoder_internal.h"
#include "input_check_internal.h"
#include "linalg.h"
#include "noise_internal.h"
#include "options_internal.h"
#include "pair_internal.h"
#include "pca.h"
#include "ridge.h"
#include "rng.h"
#include "sample_internal.h"
#include "shift_internal.h"


/* Centred covariance blocks of the rows of X1 (N, d1) and X2 (N, d2), in
 * double: C11 (d1, d1), C22 (d2, d2), C12 (d1, d2), means m1, m2. X2 may be
 * NULL (then C22, C12, m2 are not computed). Outputs are allocated. */
typedef struct moments {
    double *C11, *C22, *C12, *m1, *m2;
    int d1, d2;
} moments;

static void
moments_free(moments *m)
{
    free(m->C11);
    free(m->C22);
    free(m->C12);
    free(m->m1);
    free(m->m2);
    memset(m, 0, sizeof(*m));
}

/*
 * Under MPI: the raw moments of the batches of @p batch rows, each batch
 * on one rank (mmcl__dist_owns) into a block of its own, the blocks shared
 * with every rank and added in batch order into m's (zero) sums. A block
 * holds exactly what the batch adds on one machine (0 + its terms), so the
 * sums are those of one machine, bit for bit, for any number of ranks.
 */
static mmcl_status
moments_shared(mmcl_context *ctx, moments *m, double *work, const float *X1,
               const float *X2, int N, int batch)
{
    int d1 = m->d1, d2 = m->d2;
    int n_batches = (N + batch - 1) / batch;
    size_t s11 = (size_t)d1 * d1, s22 = (size_t)d2 * d2, s12 = (size_t)d1 * d2;
    size_t per = s11 + s22 + s12 + (size_t)d1 + (size_t)d2;
    double *blocks =
        mmcl__calloc_array(ctx, (size_t)n_batches, per, sizeof(double));
    mmcl_status st = blocks ? MMCL_OK : MMCL_ERR_NO_MEMORY;
    for (int b = 0; b < n_batches && st == MMCL_OK; b++) {
        if (!mmcl__dist_owns(b))
            continue;
        double *p = blocks + (size_t)b * per;
        int n0 = b * batch, n = N - n0 < batch ? N - n0 : batch;
        mmcl__moments_accumulate(p, X2 ? p + s11 : NULL,
                                 X2 ? p + s11 + s22 : NULL,
                                 p + s11 + s22 + s12,
                                 X2 ? p + s11 + s22 + s12 + d1 : NULL, work,
                                 X1 + (size_t)n0 * d1,
                                 X2 ? X2 + (size_t)n0 * d2 : NULL, n, d1, d2);
    }
    st = mmcl__dist_agree(ctx, st);
    if (st == MMCL_OK)
        st = mmcl__dist_fill_disjoint(ctx, blocks, (size_t)n_batches * per *
                                                       sizeof(double));
    for (int b = 0; b < n_batches && st == MMCL_OK; b++) {
        const double *p = blocks + (size_t)b * per;
        for (size_t i = 0; i < s11; i++)
            m->C11[i] += p[i];
        for (size_t i = 0; X2 && i < s22; i++)
            m->C22[i] += p[s11 + i];
        for (size_t i = 0; X2 && i < s12; i++)
            m->C12[i] += p[s11 + s22 + i];
        for (int i = 0; i < d1; i++)
            m->m1[i] += p[s11 + s22 + s12 + (size_t)i];
        for (int i = 0; X2 && i < d2; i++)
            m->m2[i] += p[s11 + s22 + s12 + (size_t)d1 + (size_t)i];
    }
    free(blocks);
    return st;
}

/* The moments of X1 and X2 (X2 may be NULL) into m (see struct moments), on
 * up to @p n_threads threads; the same bits for any n_threads and any
 * number of MPI ranks (fixed batches of MMCL__MOMENTS_BATCH rows, added
 * in batch order). */
static mmcl_status
moments_compute(mmcl_context *ctx, moments *m, const float *X1, int d1,
                const float *X2, int d2, int N, int n_threads)
{
    enum { BATCH = MMCL__MOMENTS_BATCH };
    memset(m, 0, sizeof(*m));
    m->d1 = d1;
    m->d2 = X2 ? d2 : 0;
    int dd2 = m->d2;
    m->C11 = mmcl__calloc_array(ctx, (size_t)d1, (size_t)d1, sizeof(double));
    m->m1 = mmcl__calloc_array(ctx, (size_t)d1, 1, sizeof(double));
    if (X2) {
        m->C22 = mmcl__calloc_array(ctx, (size_t)dd2, (size_t)dd2,
                                    sizeof(double));
        m->C12 = mmcl__calloc_array(ctx, (size_t)d1, (size_t)dd2,
                                    sizeof(double));
        m->m2 = mmcl__calloc_array(ctx, (size_t)dd2, 1, sizeof(double));
    }
    /* Under MPI the batches are shared among the ranks (who agree on a
     * failure here first), each rank on one thread. */
    int shared = mmcl__dist_active() && N > BATCH;
    double *work =
        shared ? mmcl__malloc_array(ctx,
                                    mmcl__moments_work_size(BATCH, d1, dd2),
                                    1, sizeof(double))
               : NULL;
    if (!m->C11 || !m->m1 || (shared && !work) ||
        (X2 && (!m->C22 || !m->C12 || !m->m2))) {
        free(work);
        moments_free(m);
        return shared ? mmcl__dist_agree(ctx, MMCL_ERR_NO_MEMORY)
                      : MMCL_ERR_NO_MEMORY;
    }
    mmcl_status st;
    if (shared) {
        mmcl__blas_threads_enter(1);
        st = moments_shared(ctx, m, work, X1, X2, N, BATCH);
        mmcl__blas_threads_leave(1);
    } else {
        st = mmcl__moments_accumulate_rows(ctx, m->C11, m->C22, m->C12, m->m1,
                                           m->m2, X1, X2, N, d1, dd2, BATCH,
                                           n_threads);
    }
    free(work);
    if (st != MMCL_OK) {
        moments_free(m);
        return st;
    }
    /* The accumulation fills one triangle of the symmetric blocks. */
    mmcl__sym_from_upper(m->C11, d1);
    mmcl__cov_from_moments(m->C11, m->C11, m->m1, m->m1, N, d1, d1);
    if (X2) {
        mmcl__sym_from_upper(m->C22, dd2);
        mmcl__cov_from_moments(m->C22, m->C22, m->m2, m->m2, N, dd2, dd2);
        mmcl__cov_from_moments(m->C12, m->C12, m->m1, m->m2, N, d1, dd2);
        for (int j = 0; j < dd2; j++)
            m->m2[j] /= N;
    }
    for (int j = 0; j < d1; j++)
        m->m1[j] /= N;
    return MMCL_OK;
}

/* Stores a linear layer y = W x + b, W (out, in), as model tensors. */
static mmcl_status
put_linear(mmcl_context *ctx, mmcl_model *model, const char *prefix,
           const float *W, const float *b, int out, int in)
{
    char wname[MMCL__TENSOR_NAME_SIZE], bname[MMCL__TENSOR_NAME_SIZE];
    int64_t wshape[2] = {out, in}, bshape[1] = {out};
    mmcl__linear_names(prefix, wname, bname);
    mmcl_status st = mmcl_model_set_tensor(ctx, model, wname, W, 2, wshape);
    if (st == MMCL_OK)
        st = mmcl_model_set_tensor(ctx, model, bname, b, 1, bshape);
    return st;
}

/* A linear encoder from the columns of V (d, kk) (first k used), centred
 * on mean: W (k, d) = V^T, b = -W mean; stored as layer 0 of modality m. */
static mmcl_status
put_projection(mmcl_context *ctx, mmcl_model *model, const char *prefix,
               const double *V, int kk, const double *mean, int d, int k)
{
    float *W = mmcl__malloc_array(ctx, (size_t)k, (size_t)d, sizeof(float));
    float *b = mmcl__malloc_array(ctx, (size_t)k, 1, sizeof(float));
    mmcl_status st = MMCL_ERR_NO_MEMORY;
    if (W && b) {
        for (int j = 0; j < k; j++) {
            double acc = 0;
            for (int i = 0; i < d; i++) {
                double v = V[(size_t)i * kk + j];
                W[(size_t)j * d + i] = (float)v;
                acc += v * mean[i];
            }
            b[j] = (float)-acc;
        }
        st = put_linear(ctx, model, prefix, W, b, k, d);
    }
    free(W);
    free(b);
    return st;
}

/* The unimodal PCA_K of a modality's covariance as a linear layer. */
static mmcl_status
put_pca(mmcl_context *ctx, mmcl_model *model, const char *prefix,
        const double *C, const double *mean, int d, int K)
{
    double *V = mmcl__malloc_array(ctx, (size_t)d, (size_t)K, sizeof(double));
    double *lambda = mmcl__malloc_array(ctx, (size_t)K, 1, sizeof(double));
    mmcl_status st = V && lambda ? mmcl__pca(ctx, V, lambda, C, d, K)
                                 : MMCL_ERR_NO_MEMORY;
    if (st == MMCL_OK)
        st = put_projection(ctx, model, prefix, V, K, mean, d, K);
    free(V);
    free(lambda);
    return st;
}

/*
 * Ridge decoder from X (N, p) to Y (N, q), stored as prefix.weight (q, p)
 * and prefix.bias; *r2 receives the in-sample R^2 (share of the total
 * variance of Y explained).
 */
static mmcl_status
fit_decoder(mmcl_context *ctx, mmcl_model *model, const char *prefix,
            const float *X, int p, const float *Y, int q, int N,
            double lambda, int n_threads, double *r2)
{
    moments mo;
    mmcl_status st = moments_compute(ctx, &mo, X, p, Y, q, N, n_threads);
    if (st != MMCL_OK)
        return st;
    double *B = mmcl__malloc_array(ctx, (size_t)p, (size_t)q, sizeof(double));
    double *b0 = mmcl__malloc_array(ctx, (size_t)q, 1, sizeof(double));
    float *W = mmcl__malloc_array(ctx, (size_t)q, (size_t)p, sizeof(float));
    float *b = mmcl__malloc_array(ctx, (size_t)q, 1, sizeof(float));
    if (!B || !b0 || !W || !b) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    st = mmcl__ridge_fit_centred(ctx, B, b0, mo.C11, mo.C12, mo.m1, mo.m2,
                                 lambda, p, q);
    if (st != MMCL_OK)
        goto done;
    /* SSE/N = tr(Cyy) - 2 tr(B^T Cxy) + tr(B^T Cxx B) with centred data. */
    double tyy = 0, cross = 0, quad = 0;
    for (int j = 0; j < q; j++) {
        tyy += mo.C22[(size_t)j * q + j];
        for (int i = 0; i < p; i++) {
            cross += B[(size_t)i * q + j] * mo.C12[(size_t)i * q + j];
            double t = 0;
            for (int l = 0; l < p; l++)
                t += mo.C11[(size_t)i * p + l] * B[(size_t)l * q + j];
            quad += B[(size_t)i * q + j] * t;
        }
    }
    *r2 = tyy > 0 ? 1.0 - (tyy - 2 * cross + quad) / tyy : 0.0;
    mmcl__ridge_to_linear(W, b, B, b0, p, q);
    st = put_linear(ctx, model, prefix, W, b, q, p);
done:
    moments_free(&mo);
    free(B);
    free(b0);
    free(W);
    free(b);
    return st;
}

/* Standardized centre-pixel bands (N, B) of patch vectors X (N, B*P*P). */
static float *
centre_bands(mmcl_context *ctx, const float *X, int N, int B, int P)
{
    float *C = mmcl__malloc_array(ctx, (size_t)N, (size_t)B, sizeof(float));
    if (!C)
        return NULL;
    int d = B * P * P, h = P / 2;
    for (int n = 0; n < N; n++)
        for (int b = 0; b < B; b++)
            C[(size_t)n * B + b] =
                X[(size_t)n * d + mmcl__patch_index(b, h, h, P)];
    return C;
}

static cJSON *
doubles_json(const double *v, int n)
{
    return cJSON_CreateDoubleArray(v, n);
}

static mmcl_status
set_metadata(mmcl_context *ctx, mmcl_model *model, const cJSON *meta)
{
    char *s = cJSON_PrintUnformatted(meta);
    if (!s)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    mmcl_status st = mmcl_model_set_metadata_json(ctx, model, s);
    cJSON_free(s);
    return st;
}

/* Parses ENCODER ("linear" or "mlp:H1,H2,...") into layer sizes
 * [d, H1, ..., k]; returns the count, or 0 with an error set. */
static int
parse_encoder(mmcl_context *ctx, const char *spec, int d, int k, int *sizes)
{
    int n = 0;
    sizes[n++] = d;
    if (strcmp(spec, "linear") != 0) {
        if (strncmp(spec, "mlp:", 4) != 0)
            goto bad;
        const char *p = spec + 4;
        while (*p) {
            char *end;
            long h = strtol(p, &end, 10);
            if (end == p || h < 1 || h > 65536 ||
                n >= MMCL_MLP_MAX_LAYERS)
                goto bad;
            sizes[n++] = (int)h;
            p = end;
            if (*p == ',')
                p++;
            else if (*p)
                goto bad;
        }
        if (n == 1)
            goto bad;
    }
    sizes[n++] = k;
    return n;
bad:
    mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                "invalid encoder '%s': expected linear or mlp:H1,H2,... with "
                "at most %d hidden layers",
                spec, MMCL_MLP_MAX_LAYERS - 1);
    return 0;
}

typedef struct train_state {
    const mmcl_options *opts;
    mmcl__sample *s;
    mmcl_model *model;
    cJSON *meta;
    cJSON *figures;
    int k, kp, P;
    double ridge;
    const char *objective;
    const char *aligned;   /* cca, clip or pca: how the aligned part is fit */
    int n_threads;
    mmcl_progress_fn progress;
    void *progress_user;
} train_state;

/* Metadata of modality m (bands, statistics, encoder layout). */
static cJSON *
modality_json(const train_state *t, int m, const int *sizes, int n_sizes,
              const char *activation, int normalize, const char *const *names)
{
    const mmcl__sample *s = t->s;
    cJSON *j = cJSON_CreateObject();
    int B = m == 0 ? s->B1 : s->B2;
    cJSON_AddNumberToObject(j, "bands", B);
    cJSON *bn = cJSON_AddArrayToObject(j, "band_names");
    for (int b = 0; b < B && names && names[b]; b++)
        cJSON_AddItemToArray(bn, cJSON_CreateString(names[b]));
    cJSON_AddItemToObject(j, "mean",
                          doubles_json(m == 0 ? s->mean1 : s->mean2, B));
    cJSON_AddItemToObject(j, "std",
                          doubles_json(m == 0 ? s->std1 : s->std2, B));
    cJSON_AddItemToObject(j, "layers", cJSON_CreateIntArray(sizes, n_sizes));
    cJSON_AddStringToObject(j, "activation", activation);
    cJSON_AddBoolToObject(j, "normalize", normalize);
    cJSON_AddNumberToObject(j, "private_dim", 0);
    cJSON_AddNumberToObject(j, "constant_bands",
                            m == 0 ? s->zero_variance1 : s->zero_variance2);
    return j;
}

static mmcl_status
fit_cca(mmcl_context *ctx, train_state *t)
{
    const mmcl__sample *s = t->s;
    int kk = s->d1 < s->d2 ? s->d1 : s->d2;
    moments mo;
    mmcl_status st = moments_compute(ctx, &mo, s->X1, s->d1, s->X2, s->d2,
                                     s->N, t->n_threads);
    if (st != MMCL_OK)
        return st;
    double *W1 = mmcl__malloc_array(ctx, (size_t)s->d1, (size_t)kk, 8);
    double *W2 = mmcl__malloc_array(ctx, (size_t)s->d2, (size_t)kk, 8);
    double *rho = mmcl__malloc_array(ctx, (size_t)kk, 1, 8);
    if (!W1 || !W2 || !rho) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    st = mmcl__cca(ctx, W1, W2, rho, mo.C11, mo.C22, mo.C12, t->ridge, s->d1,
                   s->d2, kk);
    char prefix[MMCL__TENSOR_NAME_SIZE];
    if (st == MMCL_OK)
        st = put_projection(ctx, t->model,
                            mmcl__tensor_name(prefix, MMCL__T_ENCODER, 0, 0,
                                              NULL),
                            W1, kk, mo.m1, s->d1, t->k);
    if (st == MMCL_OK)
        st = put_projection(ctx, t->model,
                            mmcl__tensor_name(prefix, MMCL__T_ENCODER, 1, 0,
                                              NULL),
                            W2, kk, mo.m2, s->d2, t->k);
    if (st == MMCL_OK) {
        cJSON_AddItemToObject(t->figures, "canonical_correlations",
                              doubles_json(rho, kk));
        char line[512];
        int used = snprintf(line, sizeof(line), "canonical correlations:");
        for (int j = 0; j < kk && j < t->k + 4 && used < 400; j++)
            used += snprintf(line + used, sizeof(line) - (size_t)used,
                             " %.3f", rho[j]);
        mmcl__log(ctx, MMCL_LOG_INFO, "%s%s", line,
                  kk > t->k + 4 ? " ..." : "");
    }
done:
    moments_free(&mo);
    free(W1);
    free(W2);
    free(rho);
    return st;
}

static mmcl_status
fit_pca(mmcl_context *ctx, train_state *t)
{
    const mmcl__sample *s = t->s;
    mmcl_status st = MMCL_OK;
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        moments mo;
        int d = m == 0 ? s->d1 : s->d2;
        st = moments_compute(ctx, &mo, m == 0 ? s->X1 : s->X2, d, NULL, 0,
                             s->N, t->n_threads);
        if (st != MMCL_OK)
            break;
        char prefix[MMCL__TENSOR_NAME_SIZE];
        mmcl__tensor_name(prefix, MMCL__T_ENCODER, m, 0, NULL);
        st = put_pca(ctx, t->model, prefix, mo.C11, mo.m1, d, t->k);
        moments_free(&mo);
    }
    return st;
}

static int
clip_progress(double f, const char *msg, void *user)
{
    train_state *t = user;
    return t->progress ? t->progress(0.4 + 0.5 * f, msg, t->progress_user)
                       : 1;
}

static mmcl_status
fit_clip(mmcl_context *ctx, train_state *t, const int *sizes1,
         const int *sizes2, int n_sizes, mmcl_activation act)
{
    const mmcl__sample *s = t->s;
    const mmcl_options *o = t->opts;
    mmcl_mlp *f1 = mmcl__mlp_create(ctx, sizes1, n_sizes, act, 1);
    mmcl_mlp *f2 = f1 ? mmcl__mlp_create(ctx, sizes2, n_sizes, act, 1) : NULL;
    int epochs = (int)mmcl__opt_int(o, "EPOCHS");
    double *curve = mmcl__malloc_array(ctx, (size_t)epochs, 1, 8);
    mmcl_status st = MMCL_OK;
    if (!f1 || !f2 || !curve) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    uint64_t rng = (uint64_t)mmcl__opt_int(o, "SEED") ^ 0x636c6970696e6974ULL;
    mmcl__mlp_init(f1, &rng);
    mmcl__mlp_init(f2, &rng);

    mmcl_clip_config cfg = {0};
    cfg.epochs = epochs;
    cfg.batch = (int)mmcl__opt_int(o, "BATCH");
    if (cfg.batch > s->N)
        cfg.batch = s->N;
    cfg.lr = (float)mmcl__opt_double(o, "LR");
    cfg.weight_decay = (float)mmcl__opt_double(o, "WEIGHT_DECAY");
    cfg.beta1 = 0.9f;
    cfg.beta2 = 0.999f;
    cfg.adam_eps = 1e-8f;
    const char *temp = mmcl__opt_str(o, "TEMPERATURE");
    cfg.learn_tau = strcmp(temp, "learned") == 0;
    if (cfg.learn_tau) {
        cfg.tau = 0.1f;
    } else {
        char *end;
        double tau = strtod(temp, &end);
        if (*end || !(tau >= 1e-4 && tau <= 10)) {
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "invalid temperature '%s': a number from 1e-4 "
                             "to 10, or 'learned'",
                             temp);
            goto done;
        }
        cfg.tau = (float)tau;
    }
    cfg.seed = (uint64_t)mmcl__opt_int(o, "SEED");
    cfg.n_threads = t->n_threads;
    if (mmcl__dist_active()) {
        /* Data-parallel over the MPI ranks (docs/mpi.md): the same model
         * as on one machine. */
        cfg.owns_part = mmcl__dist_owns;
        cfg.share = mmcl__dist_fill_disjoint;
        cfg.agree = mmcl__dist_agree;
    }
    float log_tau = logf(cfg.tau);
    st = mmcl__clip_train(ctx, f1, f2, &log_tau, s->X1, s->X2, s->N, &cfg,
                          curve, NULL, clip_progress, t);
    if (st != MMCL_OK)
        goto done;
    for (int e = 0; e < epochs; e++)
        mmcl__log(ctx, MMCL_LOG_INFO, "epoch %d/%d: loss %.5f", e + 1, epochs,
                  curve[e]);
    cJSON_AddItemToObject(t->figures, "loss_curve",
                          doubles_json(curve, epochs));
    cJSON_AddNumberToObject(t->figures, "initial_loss_bound",
                            log((double)cfg.batch));
    cJSON_AddNumberToObject(t->figures, "temperature", exp(log_tau));
    int64_t one = 1;
    char tau_name[MMCL__TENSOR_NAME_SIZE];
    st = mmcl_model_set_tensor(
        ctx, t->model,
        mmcl__tensor_name(tau_name, MMCL__T_CLIP_LOG_TAU, 0, 0, NULL),
        &log_tau, 1, &one);
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        mmcl_mlp *f = m == 0 ? f1 : f2;
        for (int l = 0; l < f->n_layers && st == MMCL_OK; l++) {
            char prefix[MMCL__TENSOR_NAME_SIZE];
            mmcl__tensor_name(prefix, MMCL__T_ENCODER, m, l, NULL);
            st = put_linear(ctx, t->model, prefix, f->W[l], f->b[l],
                            f->sizes[l + 1], f->sizes[l]);
        }
    }
done:
    mmcl__mlp_destroy(f1);
    mmcl__mlp_destroy(f2);
    free(curve);
    return st;
}

/*
 * Shared-private: for each modality, the private part is the top-kp PCA
 * of the residual of x after removing what the shared part h explains
 * linearly (ridge x ~ h): r = x - (P^T h + c). As a layer on (x, h):
 * p = Vp^T (r - mean r) = wx x + wh h + bias with wx = Vp^T,
 * wh = -Vp^T P^T, bias = -Vp^T (c + mean r).
 */
static mmcl_status
fit_private(mmcl_context *ctx, train_state *t, int m, const float *H)
{
    const mmcl__sample *s = t->s;
    const float *X = m == 0 ? s->X1 : s->X2;
    int d = m == 0 ? s->d1 : s->d2, k = t->k, kp = t->kp, N = s->N;
    moments mo = {0}, mr = {0};
    double *Pm = mmcl__malloc_array(ctx, (size_t)k, (size_t)d, 8);
    double *c = mmcl__malloc_array(ctx, (size_t)d, 1, 8);
    double *V = mmcl__malloc_array(ctx, (size_t)d, (size_t)kp, 8);
    double *lambda = mmcl__malloc_array(ctx, (size_t)kp, 1, 8);
    float *R = mmcl__malloc_array(ctx, (size_t)N, (size_t)d, sizeof(float));
    float *wx = mmcl__malloc_array(ctx, (size_t)kp, (size_t)d, 4);
    float *wh = mmcl__malloc_array(ctx, (size_t)kp, (size_t)k, 4);
    float *bias = mmcl__malloc_array(ctx, (size_t)kp, 1, 4);
    mmcl_status st = MMCL_OK;
    if (!Pm || !c || !V || !lambda || !R || !wx || !wh || !bias) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    st = moments_compute(ctx, &mo, H, k, X, d, N, t->n_threads);
    if (st == MMCL_OK)
        st = mmcl__ridge_fit_centred(ctx, Pm, c, mo.C11, mo.C12, mo.m1, mo.m2,
                                     t->ridge, k, d);
    if (st != MMCL_OK)
        goto done;
    for (int n = 0; n < N; n++) {
        const float *h = H + (size_t)n * k;
        const float *x = X + (size_t)n * d;
        float *r = R + (size_t)n * d;
        for (int i = 0; i < d; i++) {
            double pred = c[i];
            for (int j = 0; j < k; j++)
                pred += Pm[(size_t)j * d + i] * h[j];
            r[i] = (float)(x[i] - pred);
        }
    }
    st = moments_compute(ctx, &mr, R, d, NULL, 0, N, t->n_threads);
    if (st == MMCL_OK)
        st = mmcl__pca(ctx, V, lambda, mr.C11, d, kp);
    if (st != MMCL_OK)
        goto done;
    for (int q = 0; q < kp; q++) {
        double b = 0;
        for (int i = 0; i < d; i++) {
            wx[(size_t)q * d + i] = (float)V[(size_t)i * kp + q];
            b -= V[(size_t)i * kp + q] * (c[i] + mr.m1[i]);
        }
        for (int j = 0; j < k; j++) {
            double a = 0;
            for (int i = 0; i < d; i++)
                a += V[(size_t)i * kp + q] * Pm[(size_t)j * d + i];
            wh[(size_t)q * k + j] = (float)-a;
        }
        bias[q] = (float)b;
    }
    char name[MMCL__TENSOR_NAME_SIZE];
    int64_t sx[2] = {kp, d}, sh[2] = {kp, k}, sb[1] = {kp};
    st = mmcl_model_set_tensor(
        ctx, t->model, mmcl__tensor_name(name, MMCL__T_PRIVATE_WX, m, 0, NULL),
        wx, 2, sx);
    if (st == MMCL_OK)
        st = mmcl_model_set_tensor(
            ctx, t->model,
            mmcl__tensor_name(name, MMCL__T_PRIVATE_WH, m, 0, NULL), wh, 2, sh);
    if (st == MMCL_OK)
        st = mmcl_model_set_tensor(
            ctx, t->model,
            mmcl__tensor_name(name, MMCL__T_PRIVATE_BIAS, m, 0, NULL), bias, 1,
            sb);
done:
    moments_free(&mo);
    moments_free(&mr);
    free(Pm);
    free(c);
    free(V);
    free(lambda);
    free(R);
    free(wx);
    free(wh);
    free(bias);
    return st;
}

/* Representations H_m (N, K_m) of the sample through the model as built
 * so far (the same code that embeds rasters). */
static mmcl_status
embed_sample(mmcl_context *ctx, train_state *t, const mmcl__encoder *enc,
             float *H[2])
{
    const mmcl__sample *s = t->s;
    mmcl__encoder_work *w = mmcl__encoder_work_create(ctx, enc);
    if (!w)
        return mmcl_context_errcode(ctx);
    mmcl_status st = MMCL_OK;
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        H[m] = mmcl__malloc_array(ctx, (size_t)s->N, (size_t)enc->mod[m].K,
                                  sizeof(float));
        if (!H[m])
            st = MMCL_ERR_NO_MEMORY;
        else
            st = mmcl__encoder_embed(ctx, enc, w, m, m == 0 ? s->X1 : s->X2,
                                     s->N, H[m]);
    }
    mmcl__encoder_work_free(w);
    return st;
}

/* Dimension of modality m's representation as the metadata says now. */
static int
rep_dim(const train_state *t, int m)
{
    const cJSON *mj = cJSON_GetObjectItem(t->meta, mmcl__modality_name(m));
    return t->k + cJSON_GetObjectItem(mj, "private_dim")->valueint;
}

/*
 * H_m (N, K_m) of the sample through the model as built so far. The
 * loader checks every tensor, so the decoders not fitted yet are first
 * stored as zeros of the right shapes (fit_decoders replaces them).
 */
static mmcl_status
embed_with_model(mmcl_context *ctx, train_state *t, float *H[2])
{
    const mmcl__sample *s = t->s;
    mmcl_status st = MMCL_OK;
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        int B = m == 0 ? s->B1 : s->B2, d = m == 0 ? s->d1 : s->d2;
        int dother = m == 0 ? s->d2 : s->d1, K = rep_dim(t, m);
        int Ku = K < d ? K : d; /* PCA keeps at most d components */
        size_t n = (size_t)K * (K > d ? K : d);
        if ((size_t)B * dother > n)
            n = (size_t)B * dother;
        float *zeros = mmcl__calloc_array(ctx, n + 1, 1, sizeof(float));
        if (!zeros)
            return MMCL_ERR_NO_MEMORY;
        /* The layers in the table's order, with their (out, in) shapes. */
        const struct {
            mmcl__tensor t;
            int out, in;
        } layers[] = {{MMCL__T_UNIMODAL, Ku, d},
                      {MMCL__T_DECODER_ALIGNED, B, K},
                      {MMCL__T_DECODER_UNIMODAL, B, Ku},
                      {MMCL__T_DECODER_NONRED, B, dother}};
        for (size_t i = 0; i < 4 && st == MMCL_OK; i++) {
            char prefix[MMCL__TENSOR_NAME_SIZE];
            st = put_linear(ctx, t->model,
                            mmcl__tensor_name(prefix, layers[i].t, m, 0, NULL),
                            zeros, zeros, layers[i].out, layers[i].in);
        }
        free(zeros);
    }
    if (st == MMCL_OK)
        st = set_metadata(ctx, t->model, t->meta);
    mmcl__encoder *enc = NULL;
    if (st == MMCL_OK)
        st = mmcl__encoder_create(ctx, t->model, &enc);
    if (st == MMCL_OK)
        st = embed_sample(ctx, t, enc, H);
    mmcl__encoder_free(enc);
    return st;
}

/* Decoders of section 3.5 and the sample figures, per modality. */
static mmcl_status
fit_decoders(mmcl_context *ctx, train_state *t, float *H[2])
{
    const mmcl__sample *s = t->s;
    mmcl_status st = MMCL_OK;
    cJSON *r2 = cJSON_AddObjectToObject(t->figures, "sample_r2");
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        const float *X = m == 0 ? s->X1 : s->X2;
        const float *Xo = m == 0 ? s->X2 : s->X1;
        int B = m == 0 ? s->B1 : s->B2, d = m == 0 ? s->d1 : s->d2;
        int dother = m == 0 ? s->d2 : s->d1;
        int K = rep_dim(t, m);
        /* The unimodal baseline has the representation's dimension, or all
         * d components when K >= d (a clip encoder may widen a small
         * patch): the best K-dimensional linear summary then keeps all. */
        int Ku = K < d ? K : d;
        float *Cm = centre_bands(ctx, X, s->N, B, s->P);
        float *U = mmcl__malloc_array(ctx, (size_t)s->N, (size_t)Ku, 4);
        moments mo = {0};
        double r2_al = 0, r2_uni = 0, r2_nr = 0;
        char prefix[MMCL__TENSOR_NAME_SIZE];
        if (!Cm || !U) {
            st = MMCL_ERR_NO_MEMORY;
            goto next;
        }
        mmcl__tensor_name(prefix, MMCL__T_DECODER_ALIGNED, m, 0, NULL);
        st = fit_decoder(ctx, t->model, prefix, H[m], K, Cm, B, s->N,
                         t->ridge, t->n_threads, &r2_al);
        /* Unimodal baseline: PCA_K of the modality itself. */
        if (st == MMCL_OK)
            st = moments_compute(ctx, &mo, X, d, NULL, 0, s->N,
                                 t->n_threads);
        mmcl__tensor_name(prefix, MMCL__T_UNIMODAL, m, 0, NULL);
        if (st == MMCL_OK)
            st = put_pca(ctx, t->model, prefix, mo.C11, mo.m1, d, Ku);
        if (st == MMCL_OK) {
            char wn[MMCL__TENSOR_NAME_SIZE], bn[MMCL__TENSOR_NAME_SIZE];
            mmcl__linear_names(prefix, wn, bn);
            mmcl__linear_forward(U, X, mmcl_model_tensor(t->model, wn, NULL,
                                                         NULL),
                                 mmcl_model_tensor(t->model, bn, NULL, NULL),
                                 s->N, d, Ku);
        }
        mmcl__tensor_name(prefix, MMCL__T_DECODER_UNIMODAL, m, 0, NULL);
        if (st == MMCL_OK)
            st = fit_decoder(ctx, t->model, prefix, U, Ku, Cm, B, s->N,
                             t->ridge, t->n_threads, &r2_uni);
        mmcl__tensor_name(prefix, MMCL__T_DECODER_NONRED, m, 0, NULL);
        if (st == MMCL_OK)
            st = fit_decoder(ctx, t->model, prefix, Xo, dother, Cm, B, s->N,
                             t->ridge, t->n_threads, &r2_nr);
        if (st == MMCL_OK) {
            cJSON *j = cJSON_AddObjectToObject(r2, mmcl__modality_name(m));
            cJSON_AddNumberToObject(j, "aligned", r2_al);
            cJSON_AddNumberToObject(j, "unimodal", r2_uni);
            cJSON_AddNumberToObject(j, "from_other_modality", r2_nr);
            cJSON_AddNumberToObject(
                j, "loss_fraction",
                r2_uni > 0 ? (r2_uni - r2_al) / r2_uni : 0.0);
            mmcl__log(ctx, MMCL_LOG_INFO,
                      "%s: R2 kept by the aligned embedding %.3f, by PCA_%d "
                      "%.3f, predictable from the other modality %.3f",
                      mmcl__modality_name(m), r2_al, Ku, r2_uni, r2_nr);
        }
    next:
        moments_free(&mo);
        free(Cm);
        free(U);
    }
    return st;
}

/* SAR_ENL describes speckle in dB (most SAR band means negative, as the
 * input checks read it) of SAR that no filter has smoothed. */
static mmcl_status
check_enl(mmcl_context *ctx, const train_state *t)
{
    const mmcl__sample *s = t->s;
    int negative = 0;
    for (int b = 0; b < s->B2; b++)
        negative += s->mean2[b] < 0;
    if (strcmp(mmcl__opt_str(t->opts, "SPECKLE"), "none") != 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s gives the speckle of the SAR as it is, "
                           "not after %s's filter: give one of them "
                           "(with %s, the noise left is estimated "
                           "from the filtered data)",
                           mmcl__opt_name(ctx, "SAR_ENL"), mmcl__opt_name(ctx, "SPECKLE"), mmcl__opt_name(ctx, "SPECKLE"));
    if (2 * negative <= s->B2)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s needs the SAR in dB, and most SAR band "
                           "means are not negative (linear power?): convert "
                           "it with %s",
                           mmcl__opt_name(ctx, "SAR_ENL"),
                           mmcl__opt_setting(ctx, "SAR_TRANSFORM", "db"));
    return MMCL_OK;
}

/* The noise of each band (estimated in the sample's statistics pass) and
 * the floors it puts under the loss bands, into the modality's metadata
 * (noise_internal.h). A modality whose noise could not be estimated gets
 * no "noise" record, and its maps no noise bands. */
static mmcl_status
fit_noise(mmcl_context *ctx, train_state *t)
{
    const mmcl__sample *s = t->s;
    mmcl__encoder *enc = NULL;
    double enl = mmcl__opt_double(t->opts, "SAR_ENL");
    mmcl_status st = enl > 0 ? check_enl(ctx, t) : MMCL_OK;
    if (st == MMCL_OK)
        st = set_metadata(ctx, t->model, t->meta);
    if (st == MMCL_OK)
        st = mmcl__encoder_create(ctx, t->model, &enc);
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        int B = m == 0 ? s->B1 : s->B2;
        const double *sigma = m == 0 ? s->noise1 : s->noise2;
        const double *std = m == 0 ? s->std1 : s->std2;
        double var[MMCL__NOISE_MAX_BANDS], used[MMCL__NOISE_MAX_BANDS];
        double rho[MMCL__NOISE_MAX_BANDS];
        double speckle = m == 1 && enl > 0 ? mmcl__speckle_std_db(enl) : 0;
        int known = B <= MMCL__NOISE_MAX_BANDS;
        for (int b = 0; b < B && known; b++) {
            /* Speckle correlated between neighbouring pixels (as in
             * Sentinel-1 GRD) is only partly seen by the differences; the
             * ENL gives all of it. */
            used[b] = sigma[b] > speckle || std[b] == 1.0 ? sigma[b]
                                                           : speckle;
            rho[b] = mmcl__speckle_rho(used[b], sigma[b]);
            var[b] = (used[b] / std[b]) * (used[b] / std[b]);
            known = isfinite(var[b]);
        }
        if (!known) {
            mmcl__log(ctx, MMCL_LOG_WARNING,
                      "%s: too few valid neighbouring pixels (%lld second "
                      "differences) to estimate the noise; the loss maps "
                      "will have no noise floor",
                      mmcl__modality_name(m), s->n_noise_diffs);
            continue;
        }
        double f_al = 0, f_uni = 0;
        st = mmcl__noise_floors(ctx, enc, m, m == 0 ? s->X1 : s->X2, s->N,
                                var, rho,
                                (uint64_t)mmcl__opt_int(t->opts, "SEED"),
                                &f_al, &f_uni);
        if (st != MMCL_OK)
            break;
        cJSON *mj = cJSON_GetObjectItem(t->meta, mmcl__modality_name(m));
        cJSON *j = cJSON_AddObjectToObject(mj, "noise");
        cJSON_AddStringToObject(j, "method",
                                "second differences of neighbouring pixels, "
                                "1.4826 MAD / sqrt(6)");
        cJSON_AddNumberToObject(j, "differences", (double)s->n_noise_diffs);
        cJSON_AddItemToObject(j, "band_std", doubles_json(used, B));
        cJSON_AddItemToObject(j, "band_std_between_neighbours",
                              doubles_json(sigma, B));
        cJSON_AddItemToObject(j, "band_neighbour_correlation",
                              doubles_json(rho, B));
        if (speckle > 0) {
            cJSON_AddNumberToObject(j, "enl", enl);
            cJSON_AddNumberToObject(j, "speckle_std_db", speckle);
        }
        cJSON_AddItemToObject(j, "band_variance_standardized",
                              doubles_json(var, B));
        cJSON_AddNumberToObject(j, "floor_infoloss", f_al);
        cJSON_AddNumberToObject(j, "floor_unimodal", f_uni);
        mmcl__log(ctx, MMCL_LOG_INFO,
                  "%s: noise floor %.4f of the information loss, %.4f of "
                  "the unimodal loss (standardized band variance)",
                  mmcl__modality_name(m), f_al, f_uni);
    }
    mmcl__encoder_free(enc);
    return st;
}

static cJSON *
pair_json(const mmcl_options *o, const mmcl__pair *pair)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "resampling", mmcl__opt_str(o, "RESAMPLING"));
    cJSON_AddStringToObject(j, "resampling_used",
                            mmcl__pair_resampling(pair));
    cJSON_AddStringToObject(j, "sar_transform",
                            mmcl__opt_str(o, "SAR_TRANSFORM"));
    cJSON_AddStringToObject(j, "speckle", mmcl__opt_str(o, "SPECKLE"));
    cJSON_AddStringToObject(j, "stack_resampling",
                            mmcl__opt_str(o, "STACK_RESAMPLING"));
    cJSON_AddNumberToObject(j, "error_threshold",
                            mmcl__opt_double(o, "ERROR_THRESHOLD"));
    /* The misregistration corrected, as given, and its mean shift. */
    const mmcl__shift *shift = mmcl__pair_shift(pair);
    if (shift) {
        double dx, dy;
        mmcl__shift_mean(shift, &dx, &dy);
        cJSON_AddStringToObject(j, mmcl__shift_is_field(shift)
                                       ? "sar_shift_field"
                                       : "sar_shift",
                                mmcl__shift_describe(shift));
        if (mmcl__shift_is_field(shift))
            cJSON_AddNumberToObject(j, "shift_min_confidence",
                                    mmcl__opt_double(o,
                                                     "SHIFT_MIN_CONFIDENCE"));
        cJSON_AddNumberToObject(j, "sar_shift_mean_dx", dx);
        cJSON_AddNumberToObject(j, "sar_shift_mean_dy", dy);
    }
    return j;
}

static cJSON *
training_json(const mmcl_options *o)
{
    static const char *const keys[] = {
        "OBJECTIVE", "DIM", "PATCH", "ENCODER", "ACTIVATION", "SAMPLES",
        "EPOCHS", "BATCH", "LR", "WEIGHT_DECAY", "TEMPERATURE", "SEED",
        "RIDGE", "PRIVATE_DIM", "SHARED_OBJECTIVE", NULL};
    cJSON *j = cJSON_CreateObject();
    for (int i = 0; keys[i]; i++)
        cJSON_AddStringToObject(j, keys[i], mmcl__opt_str(o, keys[i]));
    return j;
}

/* What mmcl_train holds besides the train_state its fits share. */
typedef struct train_run {
    train_state t;
    const char *const *optical;
    const char *const *sar;
    size_t n_optical, n_sar;
    mmcl__pair *pair;
    char **input_notes;
    float *H[2];
    int sizes[2][MMCL_MLP_MAX_LAYERS + 1], n_sizes;
    int d1, d2;
    int shared_private;
    mmcl_activation act;
    const char *encoder;
} train_run;

static void
train_run_clear(train_run *r)
{
    free(r->H[0]);
    free(r->H[1]);
    cJSON_Delete(r->t.figures);
    cJSON_Delete(r->t.meta);
    mmcl_model_destroy(r->t.model);
    mmcl__sample_free(r->t.s);
    mmcl__pair_close(r->pair);
    CSLDestroy(r->input_notes);
}

/* The options into the state, and the checks that need no input. */
static mmcl_status
run_options(mmcl_context *ctx, train_run *r, const mmcl_options *o)
{
    train_state *t = &r->t;
    t->opts = o;
    t->objective = mmcl__opt_str(o, "OBJECTIVE");
    t->k = (int)mmcl__opt_int(o, "DIM");
    t->P = (int)mmcl__opt_int(o, "PATCH");
    t->ridge = mmcl__opt_double(o, "RIDGE");
    t->kp = (int)mmcl__opt_int(o, "PRIVATE_DIM");
    if (t->kp == 0)
        t->kp = t->k;
    t->n_threads = mmcl__opt_threads(o);
    t->progress = mmcl__opt_progress(o, &t->progress_user);
    r->shared_private = strcmp(t->objective, "shared-private") == 0;
    t->aligned = r->shared_private ? mmcl__opt_str(o, "SHARED_OBJECTIVE")
                                   : t->objective;
    if (t->P % 2 == 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "patch size %d must be odd (1, 3, 5, ...)", t->P);
    mmcl__activation_from_name(mmcl__opt_str(o, "ACTIVATION"), &r->act);
    r->encoder = mmcl__opt_str(o, "ENCODER");
    if (strcmp(t->aligned, "clip") != 0 && strcmp(r->encoder, "linear") != 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s needs %s (cca and pca are linear)",
                           mmcl__opt_setting(ctx, "ENCODER", r->encoder),
                           mmcl__opt_setting(ctx, "OBJECTIVE", "clip"));
    return MMCL_OK;
}

/* The pair opened and checked, the patch dimensions and the encoders'
 * layer sizes. */
static mmcl_status
run_pair(mmcl_context *ctx, train_run *r)
{
    train_state *t = &r->t;
    mmcl_status st = mmcl__pair_open(ctx, r->optical, r->n_optical, r->sar,
                                     r->n_sar, t->opts, &r->pair);
    if (st == MMCL_OK)
        st = mmcl__input_check_train_names(ctx, r->pair, r->optical,
                                           r->n_optical, r->sar, r->n_sar);
    if (st != MMCL_OK)
        return st;
    int B1 = mmcl__pair_optical_bands(r->pair);
    int B2 = mmcl__pair_sar_bands(r->pair);
    int d1 = B1 * t->P * t->P, d2 = B2 * t->P * t->P;
    int dmin = d1 < d2 ? d1 : d2;
    r->d1 = d1;
    r->d2 = d2;
    /* A linear encoder cannot make more than d independent outputs; an MLP
     * (clip) may widen a small patch, as the common 64-dimensional heads
     * on 2-channel SAR do. */
    if (t->k > dmin && !(strcmp(t->objective, "clip") == 0))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s is larger than what a modality can give: "
                           "the %s patch has %d values (%d bands x %dx%d)",
                           mmcl__opt_setting(ctx, "DIM",
                                             CPLSPrintf("%d", t->k)), d1 < d2 ? "optical" : "SAR", dmin,
                           d1 < d2 ? B1 : B2, t->P, t->P);
    r->n_sizes = 2;
    for (int m = 0; m < 2; m++) {
        int d = m == 0 ? d1 : d2;
        if (strcmp(t->aligned, "clip") == 0) {
            r->n_sizes = parse_encoder(ctx, r->encoder, d, t->k, r->sizes[m]);
            if (!r->n_sizes)
                return MMCL_ERR_INVALID_ARG;
        } else {
            r->sizes[m][0] = d;
            r->sizes[m][1] = t->k;
        }
    }
    return MMCL_OK;
}

/* The training sample, and what the input checks say about its values. */
static mmcl_status
run_sample(mmcl_context *ctx, train_run *r)
{
    train_state *t = &r->t;
    const mmcl_options *o = t->opts;
    const char *const labels[2] = {mmcl__pair_optical_label(r->pair),
                                   mmcl__pair_sar_label(r->pair)};
    /* The default sample size is a ceiling; a size the user asked for is
     * a demand. */
    mmcl_status st = mmcl__sample_draw(
        ctx, r->pair, labels, t->P, (int)mmcl__opt_int(o, "SAMPLES"),
        !mmcl__opt_given(o, "SAMPLES"), (uint64_t)mmcl__opt_int(o, "SEED"),
        t->n_threads, t->progress,
        t->progress_user, 0.0, 0.4, &t->s);
    if (st != MMCL_OK)
        return st;
    for (int m = 0; m < 2; m++) {
        int nz = m == 0 ? t->s->zero_variance1 : t->s->zero_variance2;
        if (nz)
            mmcl__log(ctx, MMCL_LOG_WARNING,
                      "%d %s band(s) are constant over the valid area; they "
                      "carry no signal and are kept at 0 after "
                      "standardization",
                      nz, mmcl__modality_name(m));
    }

    mmcl__input_check_train_values(ctx, t->s->mean1, t->s->std1, t->s->B1,
                                   t->s->mean2, t->s->B2, r->optical,
                                   r->n_optical, r->sar, r->n_sar,
                                   &r->input_notes);
    return MMCL_OK;
}

/* The model, and the metadata known before fitting. */
static mmcl_status
run_metadata(mmcl_context *ctx, train_run *r)
{
    train_state *t = &r->t;
    const mmcl_options *o = t->opts;
    t->model = mmcl_model_create(ctx);
    t->meta = cJSON_CreateObject();
    t->figures = cJSON_CreateObject();
    if (!t->model || !t->meta || !t->figures)
        return MMCL_ERR_NO_MEMORY;
    cJSON_AddStringToObject(t->meta, "objective", t->objective);
    cJSON_AddStringToObject(t->meta, "aligned_objective", t->aligned);
    cJSON_AddNumberToObject(t->meta, "k", t->k);
    cJSON_AddNumberToObject(t->meta, "patch", t->P);
    cJSON_AddStringToObject(t->meta, "patch_layout", "band,row,col");
    cJSON_AddStringToObject(t->meta, "mmcl_version", mmcl_version());
    /* The embedding is the encoder output f(x); InfoNCE compares its
     * L2-normalized version (CLIP), but the map keeps the norm, which a
     * k-dimensional unit sphere would lose (a circle for k = 2). */
    const char *act_name = mmcl__opt_str(o, "ACTIVATION");
    cJSON_AddItemToObject(
        t->meta, "optical",
        modality_json(t, 0, r->sizes[0], r->n_sizes, act_name, 0,
                      mmcl__pair_optical_band_names(r->pair)));
    cJSON_AddItemToObject(t->meta, "sar",
                          modality_json(t, 1, r->sizes[1], r->n_sizes,
                                        act_name, 0,
                                        mmcl__pair_sar_band_names(r->pair)));
    cJSON_AddItemToObject(t->meta, "pair", pair_json(o, r->pair));
    if (r->input_notes) {
        /* What the input checks warned about (input_check.c). */
        cJSON *notes = cJSON_AddArrayToObject(t->meta, "input_notes");
        for (int i = 0; r->input_notes[i]; i++)
            cJSON_AddItemToArray(notes,
                                 cJSON_CreateString(r->input_notes[i]));
    }
    cJSON_AddItemToObject(t->meta, "training", training_json(o));
    cJSON_AddNumberToObject(t->meta, "seed",
                            (double)mmcl__opt_int(o, "SEED"));
    return MMCL_OK;
}

/* The private parts of shared-private, on the representations of the
 * model as fitted so far. */
static mmcl_status
run_private(mmcl_context *ctx, train_run *r)
{
    train_state *t = &r->t;
    mmcl_status st = embed_with_model(ctx, t, r->H);
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        int d = m == 0 ? r->d1 : r->d2;
        if (t->k + t->kp > d) {
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "%s plus %s exceeds the %d values of a %s "
                             "patch",
                             mmcl__opt_setting(ctx, "DIM",
                                               CPLSPrintf("%d", t->k)),
                             mmcl__opt_setting(ctx, "PRIVATE_DIM",
                                               CPLSPrintf("%d", t->kp)),
                             d, mmcl__modality_name(m));
            break;
        }
        st = fit_private(ctx, t, m, r->H[m]);
        cJSON_SetNumberValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(t->meta,
                                                    mmcl__modality_name(m)),
                                "private_dim"),
            t->kp);
    }
    free(r->H[0]);
    free(r->H[1]);
    r->H[0] = r->H[1] = NULL;
    return st;
}

/* The aligned part, the private parts and the decoders. */
static mmcl_status
run_fit(mmcl_context *ctx, train_run *r)
{
    train_state *t = &r->t;
    mmcl_status st;
    if (strcmp(t->aligned, "cca") == 0)
        st = fit_cca(ctx, t);
    else if (strcmp(t->aligned, "pca") == 0)
        st = fit_pca(ctx, t);
    else
        st = fit_clip(ctx, t, r->sizes[0], r->sizes[1], r->n_sizes, r->act);
    if (st != MMCL_OK)
        return st;
    if (t->progress && !t->progress(0.9, NULL, t->progress_user))
        return mmcl__error(ctx, MMCL_ERR_CANCELLED, "cancelled by the caller");

    if (r->shared_private) {
        st = run_private(ctx, r);
        if (st != MMCL_OK)
            return st;
    }
    st = embed_with_model(ctx, t, r->H);
    if (st == MMCL_OK)
        st = fit_decoders(ctx, t, r->H);
    if (st == MMCL_OK)
        st = fit_noise(ctx, t);
    return st;
}

/*
 * The clip fit counts as learned when its final InfoNCE loss (the mean of
 * the last epoch) is at least this many nats below the chance level
 * log(batch), the loss of embeddings that tell no pair from another.
 * log(batch) - loss is a lower bound on the mutual information between h1
 * and h2 (the InfoNCE bound), so the rule reads: the aligned embeddings
 * must show at least 0.15 nat of shared information. Measured with the
 * default training (20 epochs, batch 1024): runs that learned end 0.22 to
 * 0.38 (the three BigEarthNet pairs of ../shared/data, --dim 8, two seeds,
 * 20 or 60 epochs), 0.42 to 0.79 (Spain pair,
 * --dim 2 to 8, --patch 1 or 3) and 1.8 to 3.6 nats (sample_data, linear
 * or MLP encoders) below log(batch); runs that did not end above it
 * (--dim 1: 4.9 to 7.9 nats above; --lr 1e-7: 2.1 above; BigEarthNet with
 * --dim 2: 3.0 above) or barely below after a single epoch (-0.13 and
 * 0.10).
 */
#define MMCL__CLIP_LEARNED_NATS 0.15

/*
 * Fewer drawn patch pairs than this many times the values of an optical and
 * a SAR patch (d1 + d2) is too few. Every objective's figures rest on the
 * covariance of those d1 + d2 values (CCA's blocks, the PCA baselines, the
 * decoder from the other modality): with N samples, independent data show
 * a top canonical correlation near sqrt(2 (d1 + d2) / N) (the edge of
 * Wachter's distribution for d1, d2 << N) and a ridge decoder from d
 * inputs an in-sample R2 inflated by about d / N. At N = 10 (d1 + d2) those
 * are 0.45 and 0.1: beyond them, the alignment and the loss maps mostly
 * fit sampling noise.
 */
#define MMCL__SAMPLES_PER_VALUE 10

/* Warns (a warning of the program) and records the warning in the model's
 * metadata ("warnings": [{"code", "message"}]). */
static void
add_warning(mmcl_context *ctx, train_state *t, const char *code,
            const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mmcl__log(ctx, MMCL_LOG_WARNING, "%s", msg);
    cJSON *ws = cJSON_GetObjectItem(t->meta, "warnings");
    if (!ws)
        ws = cJSON_AddArrayToObject(t->meta, "warnings");
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "code", code);
    cJSON_AddStringToObject(w, "message", msg);
    cJSON_AddItemToArray(ws, w);
}

/* Settings under which the model's figures and maps mean little: what the
 * model is told and keeps (design section 3.5). */
static void
run_warnings(mmcl_context *ctx, train_run *r)
{
    train_state *t = &r->t;
    const mmcl__sample *s = t->s;
    for (int m = 0; m < 2; m++) {
        int K = rep_dim(t, m), d = m == 0 ? r->d1 : r->d2;
        int B = m == 0 ? s->B1 : s->B2;
        if (K >= d)
            add_warning(ctx, t, "representation_as_large_as_modality",
                        "the %s representation has K = %d dimensions for "
                        "a %s patch of d = %d values (%d bands x %dx%d): "
                        "it can carry the whole patch, so the %s "
                        "information loss is 0 by construction; use a "
                        "smaller --dim or a larger --patch",
                        m == 0 ? "optical" : "SAR", K,
                        m == 0 ? "optical" : "SAR", d, B, t->P, t->P,
                        m == 0 ? "optical" : "SAR");
    }
    const cJSON *curve = cJSON_GetObjectItem(t->figures, "loss_curve");
    const cJSON *bound = cJSON_GetObjectItem(t->figures,
                                             "initial_loss_bound");
    int n_epochs = cJSON_GetArraySize(curve);
    if (n_epochs > 0 && cJSON_IsNumber(bound)) {
        double last = cJSON_GetArrayItem(curve, n_epochs - 1)->valuedouble;
        double chance = bound->valuedouble;
        if (!(last <= chance - MMCL__CLIP_LEARNED_NATS))
            add_warning(ctx, t, "training_did_not_learn",
                        "clip training did not learn: its final InfoNCE "
                        "loss %.3f (mean of the last epoch) is not %.2f or "
                        "more below the chance level log(batch %.0f) = "
                        "%.3f; the embeddings are not aligned: try a larger "
                        "--dim, another --lr or --temperature, or more "
                        "--epochs",
                        last, MMCL__CLIP_LEARNED_NATS, exp(chance), chance);
    }
    long long need = (long long)MMCL__SAMPLES_PER_VALUE * (r->d1 + r->d2);
    if (s->N < need)
        add_warning(ctx, t, "too_few_samples",
                    "only %d valid patch pairs were drawn for the %d + %d "
                    "values of an optical and a SAR patch (fewer than "
                    "%d x %d = %lld): the alignment, the decoders and the "
                    "figures mostly fit sampling noise; give more "
                    "--samples, a smaller --patch, or a larger valid area",
                    s->N, r->d1, r->d2, MMCL__SAMPLES_PER_VALUE,
                    r->d1 + r->d2, need);
}

/* The sample figures and the metadata into the model, checked. */
static mmcl_status
run_finish(mmcl_context *ctx, train_run *r)
{
    train_state *t = &r->t;
    cJSON_AddNumberToObject(t->figures, "samples", t->s->N);
    cJSON_AddNumberToObject(t->figures, "valid_pixels",
                            (double)t->s->n_valid_pixels);
    cJSON_AddNumberToObject(t->figures, "valid_patches",
                            (double)t->s->n_valid_centres);
    cJSON_AddItemToObject(t->meta, "figures", t->figures);
    t->figures = NULL;
    mmcl_status st = set_metadata(ctx, t->model, t->meta);
    if (st != MMCL_OK)
        return st;
    /* The final check: the model loads as any reader will load it. */
    mmcl__encoder *check = NULL;
    st = mmcl__encoder_create(ctx, t->model, &check);
    mmcl__encoder_free(check);
    if (st != MMCL_OK)
        return st;
    if (t->progress && !t->progress(1.0, NULL, t->progress_user))
        return mmcl__error(ctx, MMCL_ERR_CANCELLED, "cancelled by the caller");
    return MMCL_OK;
}

mmcl_status
mmcl_train(mmcl_context *ctx, const char *const *optical, size_t n_optical,
           const char *const *sar, size_t n_sar, const mmcl_options *opts_in,
           mmcl_model **out_model)
{
    mmcl__error_clear(ctx);
    mmcl__blas_kernel_warn_once();
    if (out_model)
        *out_model = NULL;
    mmcl_options *tmp = NULL;
    const mmcl_options *o = NULL;
    train_run r = {0};
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "train", &tmp, &o);
    if (st != MMCL_OK)
        return st;
    if (!out_model) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "out_model is NULL");
        goto done;
    }
    r.optical = optical;
    r.n_optical = n_optical;
    r.sar = sar;
    r.n_sar = n_sar;
    st = run_options(ctx, &r, o);
    /* Under MPI (docs/mpi.md) every rank opens the pair; the ranks agree
     * before they share the drawing of the sample. From there on every
     * rank holds the same sample and fits the same model. */
    if (st == MMCL_OK)
        st = mmcl__dist_agree(ctx, run_pair(ctx, &r));
    if (st == MMCL_OK)
        st = run_sample(ctx, &r);
    if (st == MMCL_OK)
        st = run_metadata(ctx, &r);
    if (st == MMCL_OK)
        st = run_fit(ctx, &r);
    if (st == MMCL_OK)
        run_warnings(ctx, &r);
    if (st == MMCL_OK)
        st = run_finish(ctx, &r);
    if (st != MMCL_OK)
        goto done;
    *out_model = r.t.model;
    r.t.model = NULL;

done:
    train_run_clear(&r);
    mmcl_options_free(tmp);
    return st;
}
