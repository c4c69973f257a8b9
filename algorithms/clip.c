/* SPDX-License-Identifier: MIT */
/*
 * CLIP-style contrastive training of two encoders (see clip.h for the
 * contract): shuffled minibatches, MLP forward, L2 normalisation,
 * symmetric InfoNCE, the backward chain, and AdamW on three parameter
 * groups (weights with decay; biases and log(tau) without).
 *
 * Cost model: per step the GEMMs of the two MLPs (forward and backward)
 * and of the B x B logits dominate; everything else is one O(B * width)
 * or O(B^2) pass. Scratch is allocated once per run (touching fresh
 * memory is ~3x slower than reused memory on the target machines).
 */
#include "clip.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "blas_threads.h"
#include "infonce.h"
#include "rng.h"

struct mmcl_clip_work {
    int B_max;
    int D;                        /* embedding width of both encoders */
    mmcl_mlp_acts *acts1, *acts2; /* training-mode activations */
    float *arena;                 /* everything below */
    float *x1, *x2;               /* (B_max, d1), (B_max, d2) gathered rows */
    float *z1, *z2;               /* (B_max, D) normalised embeddings */
    float *r1, *r2;               /* (B_max) norms kept for backward */
    float *dz1, *dz2;             /* (B_max, D) dloss/dz */
    float *dh1, *dh2;             /* (B_max, D) dloss/dh (encoder outputs) */
    float *logits, *dlogits;      /* (B_max, B_max) */
    float *lse;                   /* (2 B_max) row then column log-sum-exp */
};

void
mmcl__clip_config_default(mmcl_clip_config *cfg)
{
    cfg->epochs = 10;
    cfg->batch = 256;
    cfg->lr = 1e-3f;
    cfg->weight_decay = 1e-4f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->adam_eps = 1e-8f;
    cfg->tau = 0.1f;
    cfg->learn_tau = 0;
    cfg->seed = 0;
    cfg->n_threads = 0;
}

/* Shapes shared by the work buffers and the training loop. */
static mmcl_status
check_encoders(mmcl_context *ctx, const mmcl_mlp *f1, const mmcl_mlp *f2)
{
    if (!f1 || !f2)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: both encoders are required");
    if (!f1->grads || !f2->grads)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: the %s encoder is not trainable (create it "
                           "with trainable = 1)",
                           !f1->grads ? "optical" : "SAR");
    int D1 = f1->sizes[f1->n_layers], D2 = f2->sizes[f2->n_layers];
    if (D1 != D2)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: the encoders' output widths differ "
                           "(optical %d, SAR %d)",
                           D1, D2);
    return MMCL_OK;
}

mmcl_clip_work *
mmcl__clip_work_create(mmcl_context *ctx, const mmcl_mlp *f1,
                       const mmcl_mlp *f2, int B_max)
{
    if (check_encoders(ctx, f1, f2) != MMCL_OK)
        return NULL;
    if (B_max < 2) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "clip: batch size must be >= 2 (got %d)", B_max);
        return NULL;
    }
    /* The B x B logits are indexed with int by BLAS. */
    if ((size_t)B_max * (size_t)B_max > (size_t)INT32_MAX) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "clip: batch size %d is too large", B_max);
        return NULL;
    }

    mmcl_clip_work *w = mmcl__calloc_array(ctx, 1, 1, sizeof(*w));
    if (!w)
        return NULL;
    size_t B = (size_t)B_max, D = (size_t)f1->sizes[f1->n_layers];
    size_t d1 = (size_t)f1->sizes[0], d2 = (size_t)f2->sizes[0];
    w->B_max = B_max;
    w->D = (int)D;

    /* Sizes in floats, in pointer order. */
    size_t sizes[] = {B * d1, B * d2, B * D, B * D, B,     B,    B * D,
                      B * D,  B * D,  B * D, B * B, B * B, 2 * B};
    float **views[] = {&w->x1,     &w->x2,      &w->z1,  &w->z2,  &w->r1,
                       &w->r2,     &w->dz1,     &w->dz2, &w->dh1, &w->dh2,
                       &w->logits, &w->dlogits, &w->lse};
    enum { N_VIEWS = sizeof(sizes) / sizeof(sizes[0]) };
    size_t total = 0;
    for (size_t i = 0; i < N_VIEWS; i++)
        total += sizes[i];

    w->arena = mmcl__malloc_array(ctx, total, 1, sizeof(float));
    w->acts1 = w->arena ? mmcl__mlp_acts_create(ctx, f1, B_max, 1) : NULL;
    w->acts2 = w->acts1 ? mmcl__mlp_acts_create(ctx, f2, B_max, 1) : NULL;
    if (!w->acts2) {
        mmcl__clip_work_destroy(w);
        return NULL;
    }
    float *p = w->arena;
    for (size_t i = 0; i < N_VIEWS; i++) {
        *views[i] = p;
        p += sizes[i];
    }
    return w;
}

void
mmcl__clip_work_destroy(mmcl_clip_work *w)
{
    if (!w)
        return;
    mmcl__mlp_acts_destroy(w->acts1);
    mmcl__mlp_acts_destroy(w->acts2);
    free(w->arena);
    free(w);
}

mmcl_status
mmcl__clip_loss_grad(mmcl_context *ctx, double *loss, float *dlog_tau,
                     mmcl_clip_work *w, mmcl_mlp *f1, mmcl_mlp *f2,
                     const float *x1, const float *x2, float tau, int B)
{
    if (B < 2 || B > w->B_max)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: batch of %d pairs, buffers hold 2..%d", B,
                           w->B_max);
    int D = w->D;
    size_t BD = (size_t)B * D;
    mmcl_status st;

    /* Forward: h = f(x) (B, D), z = h / ||h|| (B, D), InfoNCE. */
    st = mmcl__mlp_forward(ctx, w->acts1, f1, x1, B);
    if (st == MMCL_OK)
        st = mmcl__mlp_forward(ctx, w->acts2, f2, x2, B);
    if (st != MMCL_OK)
        return st;
    mmcl__l2norm_forward(w->z1, w->r1, w->acts1->out, MMCL_CLIP_L2_EPS, B, D);
    mmcl__l2norm_forward(w->z2, w->r2, w->acts2->out, MMCL_CLIP_L2_EPS, B, D);
    st = mmcl__infonce_forward(ctx, loss, w->logits, w->lse, w->z1, w->z2, tau,
                               B, D);
    if (st != MMCL_OK)
        return st;

    /* Backward. Every kernel accumulates, so each gradient buffer starts at
     * zero: the parameter gradients once per step (style.md section 6), the
     * small (B, D) intermediates here. */
    mmcl__mlp_zero_grad(f1);
    mmcl__mlp_zero_grad(f2);
    memset(w->dz1, 0, BD * sizeof(float));
    memset(w->dz2, 0, BD * sizeof(float));
    memset(w->dh1, 0, BD * sizeof(float));
    memset(w->dh2, 0, BD * sizeof(float));
    if (dlog_tau)
        *dlog_tau = 0.0f;
    mmcl__infonce_backward(w->dz1, w->dz2, dlog_tau, w->dlogits, w->logits,
                           w->lse, w->z1, w->z2, tau, B, D);
    mmcl__l2norm_backward(w->dh1, w->dz1, w->z1, w->r1, B, D);
    mmcl__l2norm_backward(w->dh2, w->dz2, w->z2, w->r2, B, D);
    /* The inputs need no gradient (dx = NULL skips the first layer's
     * dx GEMM). */
    st = mmcl__mlp_backward(ctx, NULL, f1, w->acts1, w->dh1, x1, B);
    if (st == MMCL_OK)
        st = mmcl__mlp_backward(ctx, NULL, f2, w->acts2, w->dh2, x2, B);
    return st;
}

/* 1 when the n floats of x are all finite. Tests the exponent bits, so the
 * loop is integer-only and vectorises (a float sum would not, without
 * -ffast-math). */
static int
all_finite_f(const float *x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof(u));
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

/* AdamW on one MLP: the weights (the first n_weights floats of each group,
 * nn.h) with decay, the biases without (CLIP and common practice exclude
 * biases and gains from weight decay). */
static void
adamw_mlp(mmcl_mlp *f, const mmcl_clip_config *cfg, int t)
{
    size_t nw = f->n_weights, nb = f->n_params - f->n_weights;
    mmcl__adamw_step(f->params, f->m, f->v, f->grads, cfg->lr, cfg->beta1,
                     cfg->beta2, cfg->adam_eps, cfg->weight_decay, t, nw);
    mmcl__adamw_step(f->params + nw, f->m + nw, f->v + nw, f->grads + nw,
                     cfg->lr, cfg->beta1, cfg->beta2, cfg->adam_eps, 0.0f, t,
                     nb);
}

static mmcl_status
check_config(mmcl_context *ctx, const mmcl_clip_config *cfg, int N)
{
    if (!cfg)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: no configuration given");
    if (N < 2)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: need at least 2 sample pairs (got %d)", N);
    if (cfg->epochs < 1)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: epochs must be >= 1 (got %d)", cfg->epochs);
    if (cfg->batch < 2)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: batch must be >= 2 (got %d)", cfg->batch);
    if (!(cfg->lr > 0.0f) || !isfinite(cfg->lr))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: learning rate must be finite and > 0 "
                           "(got %g)",
                           (double)cfg->lr);
    if (!(cfg->weight_decay >= 0.0f) || !isfinite(cfg->weight_decay))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: weight decay must be finite and >= 0 "
                           "(got %g)",
                           (double)cfg->weight_decay);
    if (!(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f) ||
        !(cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: Adam betas must be in [0, 1) (got %g, %g)",
                           (double)cfg->beta1, (double)cfg->beta2);
    if (!(cfg->adam_eps > 0.0f) || !isfinite(cfg->adam_eps))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: Adam eps must be finite and > 0 (got %g)",
                           (double)cfg->adam_eps);
    if (!(cfg->tau > 0.0f) || !isfinite(cfg->tau))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: temperature must be finite and > 0 "
                           "(got %g)",
                           (double)cfg->tau);
    return MMCL_OK;
}

/* Replaces the message of a failed step with one that also says where it
 * failed (the kernel's own text is kept after it). */
static mmcl_status
step_error(mmcl_context *ctx, mmcl_status st, int epoch, int step)
{
    char what[512];
    snprintf(what, sizeof(what), "%s", mmcl_context_errmsg(ctx));
    return mmcl__error(ctx, st, "clip: epoch %d, step %d: %s", epoch + 1,
                       step + 1, what);
}

mmcl_status
mmcl__clip_train(mmcl_context *ctx, mmcl_mlp *f1, mmcl_mlp *f2, float *log_tau,
                 const float *X1, const float *X2, int N,
                 const mmcl_clip_config *cfg, double *loss_per_epoch,
                 int (*progress)(double, const char *, void *),
                 void *progress_user)
{
    mmcl_status st = check_config(ctx, cfg, N);
    if (st == MMCL_OK)
        st = check_encoders(ctx, f1, f2);
    if (st != MMCL_OK)
        return st;
    if (!X1 || !X2)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "clip: the sample matrices are required");

    int B = cfg->batch < N ? cfg->batch : N;
    int steps = N / B; /* the N mod B rows left over are dropped */
    int d1 = f1->sizes[0], d2 = f2->sizes[0];
    double total_steps = (double)cfg->epochs * steps;

    mmcl_clip_work *w = mmcl__clip_work_create(ctx, f1, f2, B);
    size_t *idx =
        w ? mmcl__malloc_array(ctx, (size_t)N, 1, sizeof(*idx)) : NULL;
    if (!idx) {
        /* The allocator or the shape check set the message; a NULL ctx
         * keeps no code, and then memory is the likely cause. */
        st = mmcl_context_errcode(ctx);
        mmcl__clip_work_destroy(w);
        return st != MMCL_OK ? st : MMCL_ERR_NO_MEMORY;
    }
    for (int n = 0; n < N; n++)
        idx[n] = (size_t)n;
    int previous_threads = mmcl__blas_set_threads(cfg->n_threads);

    /* Fresh AdamW state: moments zero, t counts this run's steps. */
    memset(f1->m, 0, f1->n_params * sizeof(float));
    memset(f1->v, 0, f1->n_params * sizeof(float));
    memset(f2->m, 0, f2->n_params * sizeof(float));
    memset(f2->v, 0, f2->n_params * sizeof(float));

    /* Temperature as log(tau) (infonce.h), with its own Adam moments. */
    const float lt_min = logf(MMCL_CLIP_TAU_MIN);
    const float lt_max = logf(MMCL_CLIP_TAU_MAX);
    float lt = logf(cfg->tau), lt_m = 0.0f, lt_v = 0.0f, dlt = 0.0f;
    if (cfg->learn_tau)
        lt = fminf(fmaxf(lt, lt_min), lt_max);

    /* The shuffle stream is derived from the seed, not equal to it, so that
     * a caller initialising the encoders from the same seed gets
     * unrelated draws. */
    uint64_t rng = cfg->seed ^ UINT64_C(0x636c69702d736866); /* "clip-shf" */
    int t = 0;

    if (progress && !progress(0.0, NULL, progress_user)) {
        st = mmcl__error(ctx, MMCL_ERR_CANCELLED,
                         "clip: cancelled before the first step");
        goto done;
    }

    for (int e = 0; e < cfg->epochs; e++) {
        mmcl__rng_shuffle(&rng, idx, (size_t)N);
        double sum = 0.0;
        for (int s = 0; s < steps; s++) {
            /* Gather the batch's rows: x1 (B, d1), x2 (B, d2). */
            const size_t *rows = idx + (size_t)s * B;
            for (int b = 0; b < B; b++) {
                memcpy(w->x1 + (size_t)b * d1, X1 + rows[b] * d1,
                       (size_t)d1 * sizeof(float));
                memcpy(w->x2 + (size_t)b * d2, X2 + rows[b] * d2,
                       (size_t)d2 * sizeof(float));
            }

            double loss = 0.0;
            float tau = expf(lt);
            st = mmcl__clip_loss_grad(ctx, &loss, cfg->learn_tau ? &dlt : NULL,
                                      w, f1, f2, w->x1, w->x2, tau, B);
            if (st != MMCL_OK) {
                st = step_error(ctx, st, e, s);
                goto done;
            }
            if (!all_finite_f(f1->grads, f1->n_params) ||
                !all_finite_f(f2->grads, f2->n_params) || !isfinite(dlt)) {
                st = mmcl__error(ctx, MMCL_ERR_NUMERIC,
                                 "clip: epoch %d, step %d: gradient is not "
                                 "finite (loss %g): NaN or Inf in the "
                                 "samples, or a diverging run (lower the "
                                 "learning rate or raise the temperature)",
                                 e + 1, s + 1, loss);
                goto done;
            }

            /* AdamW (Loshchilov & Hutter 2019, Algorithm 2). */
            t++;
            adamw_mlp(f1, cfg, t);
            adamw_mlp(f2, cfg, t);
            if (cfg->learn_tau) {
                mmcl__adamw_step(&lt, &lt_m, &lt_v, &dlt, cfg->lr, cfg->beta1,
                                 cfg->beta2, cfg->adam_eps, 0.0f, t, 1);
                lt = fminf(fmaxf(lt, lt_min), lt_max);
            }
            sum += loss;

            if (progress &&
                !progress((double)t / total_steps, NULL, progress_user)) {
                st = mmcl__error(ctx, MMCL_ERR_CANCELLED,
                                 "clip: cancelled at epoch %d, step %d", e + 1,
                                 s + 1);
                goto done;
            }
        }
        double mean = sum / steps;
        if (loss_per_epoch)
            loss_per_epoch[e] = mean;
        mmcl__log(ctx, MMCL_LOG_DEBUG, "clip: epoch %d/%d loss %.6f tau %.5f",
                  e + 1, cfg->epochs, mean, (double)expf(lt));
    }
    if (log_tau)
        *log_tau = lt;

done:
    mmcl__blas_set_threads(previous_threads);
    free(idx);
    mmcl__clip_work_destroy(w);
    return st;
}
