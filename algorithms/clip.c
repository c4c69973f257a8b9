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
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "adamw.h"
#include "blas_threads.h"
#include "infonce.h"
#include "rng.h"
#include "simd.h"

/* Row blocks of a step (see clip.h, Threads): fixed, so that one worker
 * and two compute the same sums in the same order. */
enum { MMCL_CLIP_PARTS = 2 };

/* Hybrid wait: spin this many polls (a few hundred microseconds) before
 * sleeping on the condition variable. A step has seven hand-offs between
 * phases of 0.1 to 5 ms; sleeping at each would add a futex wake-up
 * latency to every one of them. */
enum { SPIN_POLLS = 20000 };

/* One helper thread that runs part 1 of each phase while the calling
 * thread runs part 0 (libvips-style start / work / stop, two workers). */
typedef struct clip_pool {
    thrd_t thread;
    mtx_t lock;
    cnd_t changed;
    atomic_int posted;   /* generation of the last posted phase */
    atomic_int finished; /* generation the helper last finished */
    atomic_int quit;
    void (*phase)(mmcl_clip_work *w, int part);
    int running; /* the thread was started */
} clip_pool;

struct mmcl_clip_work {
    int B_max;
    int D;                        /* embedding width of both encoders */
    int n_workers;                /* 1, or 2 (helper thread) */
    int n_parts;                  /* row blocks, MMCL_CLIP_PARTS */
    mmcl_mlp_acts *acts1, *acts2; /* training-mode activations */
    mmcl_infonce *nce;            /* logits, exp and statistics */
    float *arena;                 /* everything below */
    float *x1, *x2;               /* (B_max, d1), (B_max, d2) gathered rows */
    float *z1, *z2;               /* (B_max, D) normalised embeddings */
    float *r1, *r2;               /* (B_max) norms kept for backward */
    float *dz1, *dz2;             /* (B_max, D) dloss/dz */
    float *dh1, *dh2;             /* (B_max, D) dloss/dh (encoder outputs) */
    float *grads1;                /* (n_params f1 + n_params f2) part 1's
                                     gradients, or NULL (one part) */
    clip_pool pool;

    /* Arguments of the current step, read by the phases. */
    mmcl_mlp *f1, *f2;
    const float *in1, *in2;
    int B, want_dtau;
    /* ... and of the training loop's own phases. */
    const float *X1, *X2;
    const size_t *rows;
    const mmcl_clip_config *cfg;
    int t;
    /* Data-parallel over processes (mmcl_clip_config), or NULL. */
    int (*owns_part)(int part);
    mmcl_status (*share)(mmcl_context *ctx, void *buf, size_t n);
};

/* Whether part @p part of a step is computed here. */
static int
owns(const mmcl_clip_work *w, int part)
{
    return !w->owns_part || w->owns_part(part);
}

/* ---- Two-worker phases -------------------------------------------------- */

static void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until *a != old; returns the new value. */
static int
wait_change(clip_pool *pool, atomic_int *a, int old)
{
    for (int i = 0; i < SPIN_POLLS; i++) {
        int v = atomic_load_explicit(a, memory_order_acquire);
        if (v != old)
            return v;
        cpu_relax();
    }
    mtx_lock(&pool->lock);
    int v;
    while ((v = atomic_load_explicit(a, memory_order_acquire)) == old)
        cnd_wait(&pool->changed, &pool->lock);
    mtx_unlock(&pool->lock);
    return v;
}

/* Stores v into *a and wakes a sleeping waiter (the lock orders the
 * store against the waiter's check, so no wake-up is lost). */
static void
publish(clip_pool *pool, atomic_int *a, int v)
{
    atomic_store_explicit(a, v, memory_order_release);
    mtx_lock(&pool->lock);
    cnd_broadcast(&pool->changed);
    mtx_unlock(&pool->lock);
}

static int
helper_main(void *arg)
{
    mmcl_clip_work *w = arg;
    clip_pool *pool = &w->pool;
    int seen = 0;
    for (;;) {
        seen = wait_change(pool, &pool->posted, seen);
        if (atomic_load(&pool->quit))
            break;
        pool->phase(w, 1);
        publish(pool, &pool->finished, seen);
    }
    return 0;
}

/* Runs phase(w, part) for every part: both at once with two workers,
 * one after the other with one. Returns when all are done. */
static void
run_phase(mmcl_clip_work *w, void (*phase)(mmcl_clip_work *, int))
{
    if (w->n_workers < 2) {
        for (int p = 0; p < w->n_parts; p++)
            phase(w, p);
        return;
    }
    clip_pool *pool = &w->pool;
    pool->phase = phase;
    int gen = atomic_load(&pool->posted) + 1;
    publish(pool, &pool->posted, gen);
    phase(w, 0);
    /* Wait for a change from the value that was compared, not a fresh
     * load (the helper may finish in between). */
    int f;
    while ((f = atomic_load_explicit(&pool->finished, memory_order_acquire)) !=
           gen)
        wait_change(pool, &pool->finished, f);
}

static mmcl_status
pool_start(mmcl_context *ctx, mmcl_clip_work *w)
{
    clip_pool *pool = &w->pool;
    atomic_init(&pool->posted, 0);
    atomic_init(&pool->finished, 0);
    atomic_init(&pool->quit, 0);
    if (mtx_init(&pool->lock, mtx_plain) != thrd_success)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "clip: mtx_init failed");
    if (cnd_init(&pool->changed) != thrd_success) {
        mtx_destroy(&pool->lock);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "clip: cnd_init failed");
    }
    if (thrd_create(&pool->thread, helper_main, w) != thrd_success) {
        cnd_destroy(&pool->changed);
        mtx_destroy(&pool->lock);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                           "clip: cannot start a worker thread");
    }
    pool->running = 1;
    return MMCL_OK;
}

static void
pool_stop(clip_pool *pool)
{
    if (!pool->running)
        return;
    atomic_store(&pool->quit, 1);
    publish(pool, &pool->posted, atomic_load(&pool->posted) + 1);
    thrd_join(pool->thread, NULL);
    cnd_destroy(&pool->changed);
    mtx_destroy(&pool->lock);
    pool->running = 0;
}

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
    cfg->owns_part = NULL;
    cfg->share = NULL;
    cfg->agree = NULL;
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
                       const mmcl_mlp *f2, int B_max, int n_workers)
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
    w->n_workers = n_workers >= 2 ? 2 : 1;
    w->n_parts =
        MMCL_CLIP_PARTS > w->n_workers ? MMCL_CLIP_PARTS : w->n_workers;

    /* Sizes in floats, in pointer order. */
    size_t grads1 = w->n_parts > 1 ? f1->n_params + f2->n_params : 0;
    size_t sizes[] = {B * d1, B * d2, B * D, B * D, B,     B,
                      B * D,  B * D,  B * D, B * D, grads1};
    float **views[] = {&w->x1,  &w->x2,  &w->z1,  &w->z2,  &w->r1,    &w->r2,
                       &w->dz1, &w->dz2, &w->dh1, &w->dh2, &w->grads1};
    enum { N_VIEWS = sizeof(sizes) / sizeof(sizes[0]) };
    size_t total = 0;
    for (size_t i = 0; i < N_VIEWS; i++)
        total += sizes[i];

    w->arena = mmcl__malloc_array(ctx, total, 1, sizeof(float));
    w->acts1 = w->arena ? mmcl__mlp_acts_create(ctx, f1, B_max, 1) : NULL;
    w->acts2 = w->acts1 ? mmcl__mlp_acts_create(ctx, f2, B_max, 1) : NULL;
    w->nce = w->acts2 ? mmcl__infonce_create(ctx, B_max, (int)D) : NULL;
    if (!w->nce || (w->n_workers > 1 && pool_start(ctx, w) != MMCL_OK)) {
        mmcl__clip_work_destroy(w);
        return NULL;
    }
    float *p = w->arena;
    for (size_t i = 0; i < N_VIEWS; i++) {
        *views[i] = sizes[i] ? p : NULL;
        p += sizes[i];
    }
    return w;
}

void
mmcl__clip_work_destroy(mmcl_clip_work *w)
{
    if (!w)
        return;
    pool_stop(&w->pool);
    mmcl__infonce_destroy(w->nce);
    mmcl__mlp_acts_destroy(w->acts1);
    mmcl__mlp_acts_destroy(w->acts2);
    free(w->arena);
    free(w);
}

/* Rows [*r0, *r1) of part p of n. */
static void
part_range(size_t n, int n_parts, int part, size_t *r0, size_t *r1)
{
    *r0 = n * (size_t)part / (size_t)n_parts;
    *r1 = n * (size_t)(part + 1) / (size_t)n_parts;
}

/* The encoders' forward on the part's rows, then the L2 normalisation:
 * z (rows, D) = f(x) / ||f(x)||. */
static void
phase_forward(mmcl_clip_work *w, int part)
{
    size_t r0, r1;
    part_range((size_t)w->B, w->n_parts, part, &r0, &r1);
    int M = (int)(r1 - r0), D = w->D;
    if (M < 1)
        return;
    if (!owns(w, part)) {
        /* Another process's rows: 0 until shared. */
        memset(w->z1 + r0 * D, 0, (size_t)M * D * sizeof(float));
        memset(w->z2 + r0 * D, 0, (size_t)M * D * sizeof(float));
        memset(w->r1 + r0, 0, (size_t)M * sizeof(float));
        memset(w->r2 + r0, 0, (size_t)M * sizeof(float));
        return;
    }
    const mmcl_mlp *f[2] = {w->f1, w->f2};
    mmcl_mlp_acts *acts[2] = {w->acts1, w->acts2};
    const float *in[2] = {w->in1, w->in2};
    float *z[2] = {w->z1, w->z2}, *r[2] = {w->r1, w->r2};
    for (int t = 0; t < 2; t++) {
        mmcl_mlp_acts view;
        mmcl__mlp_acts_rows(&view, acts[t], f[t], (int)r0);
        /* N is in range (checked by the caller): no error to report. */
        (void)mmcl__mlp_forward(NULL, &view, f[t],
                                in[t] + r0 * (size_t)f[t]->sizes[0], M);
        mmcl__l2norm_forward(z[t] + r0 * D, r[t] + r0, view.out,
                             MMCL_CLIP_L2_EPS, M, D);
    }
}

/* InfoNCE parts of this worker's share. */
static void
phase_infonce_forward(mmcl_clip_work *w, int part)
{
    size_t q0, q1;
    part_range(MMCL_INFONCE_PARTS, w->n_parts, part, &q0, &q1);
    for (size_t q = q0; q < q1; q++)
        mmcl__infonce_forward_part(w->nce, w->z1, w->z2, (int)q);
}

static void
phase_infonce_backward(mmcl_clip_work *w, int part)
{
    size_t q0, q1;
    part_range(MMCL_INFONCE_PARTS, w->n_parts, part, &q0, &q1);
    for (size_t q = q0; q < q1; q++)
        mmcl__infonce_backward_part(w->dz1, w->dz2, w->nce, w->z1, w->z2,
                                    w->want_dtau, (int)q);
}

/* Backward of the part's rows through the L2 normalisation and the
 * encoders: part 0 into f->grads, the others into their own buffer
 * (summed by phase_reduce), all zeroed here first. */
static void
phase_backward(mmcl_clip_work *w, int part)
{
    size_t r0, r1;
    part_range((size_t)w->B, w->n_parts, part, &r0, &r1);
    int M = (int)(r1 - r0), D = w->D;
    mmcl_mlp *f[2] = {w->f1, w->f2};
    mmcl_mlp_acts *acts[2] = {w->acts1, w->acts2};
    const float *in[2] = {w->in1, w->in2};
    const float *z[2] = {w->z1, w->z2}, *r[2] = {w->r1, w->r2};
    const float *dz[2] = {w->dz1, w->dz2};
    float *dh[2] = {w->dh1, w->dh2};
    float *grads = w->grads1;
    for (int t = 0; t < 2; t++) {
        mmcl_mlp view = *f[t];
        if (part > 0) {
            mmcl__mlp_grads_view(&view, f[t], grads);
            grads += f[t]->n_params;
        }
        memset(view.grads, 0, view.n_params * sizeof(float));
        if (M < 1 || !owns(w, part))
            continue;
        memset(dh[t] + r0 * D, 0, (size_t)M * D * sizeof(float));
        mmcl__l2norm_backward(dh[t] + r0 * D, dz[t] + r0 * D, z[t] + r0 * D,
                              r[t] + r0, M, D);
        mmcl_mlp_acts av;
        mmcl__mlp_acts_rows(&av, acts[t], f[t], (int)r0);
        /* The inputs need no gradient (dx = NULL skips the first layer's
         * dx GEMM). */
        (void)mmcl__mlp_backward(NULL, NULL, &view, &av, dh[t] + r0 * D,
                                 in[t] + r0 * (size_t)f[t]->sizes[0], M);
    }
}

/* y (n) += x (n) */
MMCL__VEC_CLONES static void
add_to(float *restrict y, const float *restrict x, size_t n)
{
    for (size_t k = 0; k < n; k++)
        y[k] += x[k];
}

/* f->grads += the other parts' gradients, each worker over its share of
 * the parameters (the order of the sum does not depend on it). */
static void
phase_reduce(mmcl_clip_work *w, int part)
{
    const float *other = w->grads1;
    mmcl_mlp *f[2] = {w->f1, w->f2};
    for (int t = 0; t < 2; t++) {
        size_t k0, k1;
        part_range(f[t]->n_params, w->n_parts, part, &k0, &k1);
        add_to(f[t]->grads + k0, other + k0, k1 - k0);
        other += f[t]->n_params;
    }
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
    w->f1 = f1;
    w->f2 = f2;
    w->in1 = x1;
    w->in2 = x2;
    w->B = B;
    w->want_dtau = dlog_tau != NULL;

    /* Forward: h = f(x) (B, D), z = h / ||h|| (B, D), InfoNCE. */
    run_phase(w, phase_forward);
    if (w->share) {
        /* Every process sees every part's embeddings (the negatives). */
        st = w->share(ctx, w->z1, BD * sizeof(float));
        if (st == MMCL_OK)
            st = w->share(ctx, w->z2, BD * sizeof(float));
        if (st == MMCL_OK)
            st = w->share(ctx, w->r1, (size_t)B * sizeof(float));
        if (st == MMCL_OK)
            st = w->share(ctx, w->r2, (size_t)B * sizeof(float));
        if (st != MMCL_OK)
            return st;
    }
    st = mmcl__infonce_forward_begin(ctx, w->nce, w->z1, w->z2, tau, B);
    if (st != MMCL_OK)
        return st;
    run_phase(w, phase_infonce_forward);
    st = mmcl__infonce_forward_end(ctx, loss, w->nce);
    if (st != MMCL_OK)
        return st;

    /* Backward. Every kernel accumulates, so each gradient buffer starts at
     * zero: the parameter gradients once per step (style.md section 6, in
     * phase_backward), the small (B, D) intermediates here. */
    memset(w->dz1, 0, BD * sizeof(float));
    memset(w->dz2, 0, BD * sizeof(float));
    if (dlog_tau)
        *dlog_tau = 0.0f;
    run_phase(w, phase_infonce_backward);
    mmcl__infonce_backward_end(w->dz2, dlog_tau, w->nce);
    run_phase(w, phase_backward);
    if (w->share) {
        /* Part 0's gradients are in f->grads, the others' in grads1: each
         * written by its process, 0 on the others. */
        st = w->share(ctx, f1->grads, f1->n_params * sizeof(float));
        if (st == MMCL_OK)
            st = w->share(ctx, f2->grads, f2->n_params * sizeof(float));
        if (st == MMCL_OK && w->grads1)
            st = w->share(ctx, w->grads1,
                          (f1->n_params + f2->n_params) * sizeof(float));
        if (st != MMCL_OK)
            return st;
    }
    if (w->n_parts > 1)
        run_phase(w, phase_reduce);
    return MMCL_OK;
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

/* AdamW on the part's share of both encoders: the weights (the first
 * n_weights floats of each group, nn.h) with decay, the biases without
 * (CLIP and common practice exclude biases and gains from weight decay).
 * Element-wise, so the split does not change a result. */
static void
phase_update(mmcl_clip_work *w, int part)
{
    const mmcl_clip_config *cfg = w->cfg;
    mmcl_mlp *f[2] = {w->f1, w->f2};
    for (int t = 0; t < 2; t++) {
        size_t nw = f[t]->n_weights, np = f[t]->n_params;
        size_t k0, k1;
        part_range(nw, w->n_parts, part, &k0, &k1);
        mmcl__adamw_step(f[t]->params + k0, f[t]->m + k0, f[t]->v + k0,
                         f[t]->grads + k0, cfg->lr, cfg->beta1, cfg->beta2,
                         cfg->adam_eps, cfg->weight_decay, w->t, k1 - k0);
        part_range(np - nw, w->n_parts, part, &k0, &k1);
        k0 += nw;
        k1 += nw;
        mmcl__adamw_step(f[t]->params + k0, f[t]->m + k0, f[t]->v + k0,
                         f[t]->grads + k0, cfg->lr, cfg->beta1, cfg->beta2,
                         cfg->adam_eps, 0.0f, w->t, k1 - k0);
    }
}

/* Gathers the part's rows of the batch: x1 (B, d1), x2 (B, d2) from the
 * rows w->rows of X1, X2. */
static void
phase_gather(mmcl_clip_work *w, int part)
{
    size_t b0, b1;
    part_range((size_t)w->B, w->n_parts, part, &b0, &b1);
    size_t d1 = (size_t)w->f1->sizes[0], d2 = (size_t)w->f2->sizes[0];
    for (size_t b = b0; b < b1; b++) {
        memcpy(w->x1 + b * d1, w->X1 + w->rows[b] * d1, d1 * sizeof(float));
        memcpy(w->x2 + b * d2, w->X2 + w->rows[b] * d2, d2 * sizeof(float));
    }
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
                 double *loss_per_step,
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
    double total_steps = (double)cfg->epochs * steps;

    /* Two threads: each runs half of every phase with a single-threaded
     * BLAS (clip.h, Threads). Otherwise the BLAS threads are the only
     * parallelism. */
    int n_threads =
        cfg->n_threads >= 1 ? cfg->n_threads : mmcl__blas_get_threads();
    int n_workers = n_threads == 2 ? 2 : 1;
    /* Over processes: each computes its parts on one thread with a
     * single-threaded BLAS, as each of two workers does. */
    int dist = cfg->owns_part && cfg->share && cfg->agree;
    if (dist)
        n_workers = 1;
    mmcl_clip_work *w = mmcl__clip_work_create(ctx, f1, f2, B, n_workers);
    size_t *idx =
        w ? mmcl__malloc_array(ctx, (size_t)N, 1, sizeof(*idx)) : NULL;
    if (!idx) {
        /* The allocator or the shape check set the message; a NULL ctx
         * keeps no code, and then memory is the likely cause. */
        st = mmcl_context_errcode(ctx);
        if (st == MMCL_OK)
            st = MMCL_ERR_NO_MEMORY;
    }
    if (dist)
        st = cfg->agree(ctx, st);
    if (st != MMCL_OK) {
        free(idx);
        mmcl__clip_work_destroy(w);
        return st;
    }
    if (dist) {
        w->owns_part = cfg->owns_part;
        w->share = cfg->share;
    }
    for (int n = 0; n < N; n++)
        idx[n] = (size_t)n;
    w->f1 = f1;
    w->f2 = f2;
    w->X1 = X1;
    w->X2 = X2;
    w->cfg = cfg;
    int blas_asked = n_workers > 1 || dist ? 1 : cfg->n_threads;
    mmcl__blas_threads_enter(blas_asked);

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

    if (progress && !progress(0.0, NULL, progress_user))
        st = mmcl__error(ctx, MMCL_ERR_CANCELLED,
                         "clip: cancelled before the first step");
    if (dist)
        st = cfg->agree(ctx, st);
    if (st != MMCL_OK)
        goto done;

    for (int e = 0; e < cfg->epochs; e++) {
        mmcl__rng_shuffle(&rng, idx, (size_t)N);
        double sum = 0.0;
        for (int s = 0; s < steps; s++) {
            /* Gather the batch's rows: x1 (B, d1), x2 (B, d2). */
            w->rows = idx + (size_t)s * B;
            w->B = B;
            run_phase(w, phase_gather);

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
            w->t = t;
            run_phase(w, phase_update);
            if (cfg->learn_tau) {
                mmcl__adamw_step(&lt, &lt_m, &lt_v, &dlt, cfg->lr, cfg->beta1,
                                 cfg->beta2, cfg->adam_eps, 0.0f, t, 1);
                lt = fminf(fmaxf(lt, lt_min), lt_max);
            }
            sum += loss;
            if (loss_per_step)
                loss_per_step[(size_t)e * steps + s] = loss;

            if (progress &&
                !progress((double)t / total_steps, NULL, progress_user))
                st = mmcl__error(ctx, MMCL_ERR_CANCELLED,
                                 "clip: cancelled at epoch %d, step %d", e + 1,
                                 s + 1);
            /* A cancel on one process stops every one at the same step. */
            if (dist)
                st = cfg->agree(ctx, st);
            if (st != MMCL_OK)
                goto done;
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
    mmcl__blas_threads_leave(blas_asked);
    free(idx);
    mmcl__clip_work_destroy(w);
    return st;
}
