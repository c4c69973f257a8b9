/* SPDX-License-Identifier: MIT */
/*
 * The `clip` training loop (design section 3.4): two encoders, f1 for the
 * optical patch vectors and f2 for the SAR ones, trained so that the
 * L2-normalised embeddings of a co-registered pair agree, with the
 * symmetric InfoNCE loss of CLIP (Radford et al. 2021, "Learning
 * Transferable Visual Models From Natural Language Supervision", section
 * 2.3 and Figure 3) and AdamW (Loshchilov & Hutter 2019, "Decoupled
 * Weight Decay Regularization", Algorithm 2).
 *
 * One step on a batch of B pairs (x1 (B, d1), x2 (B, d2)):
 *   h1 = f1(x1) (B, D), h2 = f2(x2) (B, D)           nn.h MLP forward
 *   z1 = h1 / ||h1||, z2 = h2 / ||h2||               nn.h l2norm
 *   loss = InfoNCE(z1, z2, tau)                      infonce.h
 *   backward through the same chain into f1->grads, f2->grads, dlog_tau
 *   AdamW on the weights (with decay), the biases and log_tau (without)
 *
 * Inputs are already standardised sample matrices; nothing here touches
 * GDAL. All scratch is allocated once per training run and reused by every
 * step. Parallelism (style.md section 7, one level at a time): with two
 * threads the step's row blocks run on two workers, each calling a
 * single-threaded BLAS; otherwise the GEMMs run on the BLAS threads
 * (blas_threads.h).
 *
 * A step is cut into two fixed row blocks whatever the thread count: the
 * encoders' forward and backward (each block into its own gradient
 * buffer, summed block 0 + block 1) and the InfoNCE parts (infonce.h).
 * With one worker the blocks run one after the other, so one and two
 * threads give bitwise equal results.
 */
#ifndef MMCL_ALGORITHMS_CLIP_H
#define MMCL_ALGORITHMS_CLIP_H

#include <stdint.h>

#include "context_internal.h"
#include "nn.h"

/* Bounds of a LEARNED temperature (CLIP clamps its logit scale exp(t) at
 * 100, i.e. tau >= 0.01; tau > 1 only blurs the softmax). */
#define MMCL_CLIP_TAU_MIN 0.01f
#define MMCL_CLIP_TAU_MAX 1.0f

/* eps of the L2 normalisation: r = sqrt(||h||^2 + eps^2) (nn.h). */
#define MMCL_CLIP_L2_EPS 1e-6f

/*
 * Training settings. Plain data; mmcl__clip_config_default() fills the
 * usual values.
 */
typedef struct mmcl_clip_config {
    int epochs;         /* passes over the N samples, >= 1 */
    int batch;          /* pairs per step B >= 2 (negatives = B - 1) */
    float lr;           /* AdamW learning rate, > 0 (constant) */
    float weight_decay; /* AdamW decoupled decay of the weights, >= 0 */
    float beta1, beta2; /* Adam moment decays, in [0, 1) */
    float adam_eps;     /* Adam denominator eps, > 0 */
    float tau;          /* temperature: fixed, or the learned one's start */
    int learn_tau;      /* nonzero: learn log(tau), clamped to the bounds */
    uint64_t seed;      /* seed of the per-epoch shuffles */
    int n_threads;      /* threads while training; < 1: the current BLAS
                           count. 2: two workers on a single-threaded
                           BLAS; 1 or > 2: that many BLAS threads */
    /* Data-parallel over processes (MPI ranks; NULL, the default: all
     * here). Every process runs the same loop on the same samples. Part p
     * of each step's fixed row blocks (clip.h, Threads) is computed by
     * the process where owns_part(p) is nonzero, on one thread with a
     * single-threaded BLAS; share() then makes whole, on every process, a
     * buffer that the processes wrote in disjoint parts and left 0
     * elsewhere: the parts' normalised embeddings (so that every process
     * sees all the negatives), then the parts' gradients, which every
     * process sums in part order, as one process does. The result is that
     * of one process, bit for bit. agree() is called by every process at
     * the same points with its status, and returns MMCL_OK only when all
     * are fine (a cancel or a failure on one stops all). */
    int (*owns_part)(int part);
    mmcl_status (*share)(mmcl_context *ctx, void *buf, size_t n);
    mmcl_status (*agree)(mmcl_context *ctx, mmcl_status st);
} mmcl_clip_config;

/* epochs 10, batch 256, lr 1e-3, weight_decay 1e-4, betas 0.9 / 0.999,
 * adam_eps 1e-8, tau 0.1 fixed, seed 0, n_threads 0, no processes
 * (owns_part, share, agree NULL). */
void mmcl__clip_config_default(mmcl_clip_config *cfg);

/*
 * Trains @p f1 and @p f2 in place with the symmetric InfoNCE objective.
 *
 * f1, f2: trainable MLPs (mmcl__mlp_create(..., trainable = 1)), already
 *     initialised (mmcl__mlp_init() or loaded); f1->sizes[0] = d1,
 *     f2->sizes[0] = d2 and both have the same output width D. Their
 *     parameters are updated; their Adam moments are zeroed first: each
 *     call is a fresh AdamW run with steps counted from 1.
 * log_tau: (1) out, may be NULL: log of the final temperature (cfg->tau
 *     itself when it is fixed). Written only on success.
 * X1 (N, d1), X2 (N, d2): standardised samples, float row-major; row n of
 *     both is one co-registered pair. Read only.
 * N: rows, >= 2.
 * cfg: settings, see mmcl_clip_config. tau must be finite and > 0; a
 *     learned one starts at cfg->tau clamped to [MMCL_CLIP_TAU_MIN,
 *     MMCL_CLIP_TAU_MAX] and stays there.
 * loss_per_epoch: (cfg->epochs) out, may be NULL: mean InfoNCE loss of
 *     the steps of each epoch (accumulated in double). On failure the
 *     epochs completed before it are written, the others are not.
 * loss_per_step: (cfg->epochs * floor(N / B)) out, may be NULL: the loss
 *     of every step, in order (epoch e's steps from e * floor(N / B)),
 *     each before that step's update; loss_per_epoch[e] is the mean of
 *     epoch e's. On failure the steps completed before it are written.
 * progress: GDAL-style callback, may be NULL; called with 0 before the
 *     first step and then after every step with the fraction of steps
 *     done (message NULL). Returning 0 cancels.
 *
 * Batches: each epoch shuffles the row order (mmcl__rng_shuffle, from an
 * explicit state seeded by cfg->seed) and runs floor(N / B) steps of
 * B = min(cfg->batch, N) rows; the N mod B rows left at the end of the
 * permutation are dropped for that epoch (PyTorch's drop_last). They
 * differ from epoch to epoch, and every step keeps B - 1 negatives, so
 * the per-step losses (which scale with log B) are comparable.
 *
 * Determinism: for a given seed and initial parameters the result is
 * bitwise reproducible with n_threads 1 or 2, and the two agree bit for
 * bit. With more BLAS threads it is as reproducible as the BLAS.
 *
 * Threads: with n_threads = 2, starts one helper thread for the run and
 * sets the BLAS thread count to 1; otherwise sets it to cfg->n_threads
 * (when >= 1). The previous count is restored before returning (a
 * process-wide setting). Use f1, f2 and @p ctx from one thread at a
 * time.
 *
 * @return MMCL_OK; MMCL_ERR_INVALID_ARG (bad settings or shapes),
 *         MMCL_ERR_NO_MEMORY, MMCL_ERR_NUMERIC (a non-finite loss or
 *         gradient: the message names the epoch and step, both from 1;
 *         the parameters are left as they were before that step),
 *         MMCL_ERR_CANCELLED (progress returned 0). On failure f1 and f2
 *         hold the parameters of the last completed step.
 */
mmcl_status mmcl__clip_train(mmcl_context *ctx, mmcl_mlp *f1, mmcl_mlp *f2,
                             float *log_tau, const float *X1, const float *X2,
                             int N, const mmcl_clip_config *cfg,
                             double *loss_per_epoch, double *loss_per_step,
                             int (*progress)(double, const char *, void *),
                             void *progress_user);

/* ---- One step, for tests and tools that drive their own loop ---------- */

/* Scratch of one training step for batches of up to B_max pairs. */
typedef struct mmcl_clip_work mmcl_clip_work;

/*
 * Scratch for @p f1, @p f2 (as for mmcl__clip_train) and batches of up to
 * @p B_max >= 2 pairs: activations, normalised embeddings, logits and
 * their gradient, in a few allocations made here and nowhere else.
 * @p n_workers: 1, or 2 to start one helper thread (joined by
 * mmcl__clip_work_destroy()) that runs half of every step; then the BLAS
 * must be single-threaded while steps run (mmcl__blas_threads_enter(1)).
 * @return Scratch that must be freed with mmcl__clip_work_destroy(), or
 *         NULL (MMCL_ERR_INVALID_ARG / MMCL_ERR_NO_MEMORY in @p ctx).
 */
mmcl_clip_work *mmcl__clip_work_create(mmcl_context *ctx, const mmcl_mlp *f1,
                                       const mmcl_mlp *f2, int B_max,
                                       int n_workers);

/* Frees @p w; NULL is allowed. */
void mmcl__clip_work_destroy(mmcl_clip_work *w);

/*
 * Loss and gradients of one batch, no parameter update:
 *   loss (1): InfoNCE of x1 (B, d1), x2 (B, d2) at temperature tau;
 *   f1->grads, f2->grads: OVERWRITTEN with dloss/dparams (zeroed first);
 *   dlog_tau (1): OVERWRITTEN with dloss/dlog(tau), or NULL (fixed tau).
 * @p w was made for f1 and f2 with B_max >= B; 2 <= B.
 * @return MMCL_OK, MMCL_ERR_INVALID_ARG (B out of range, tau not finite
 *         and > 0), MMCL_ERR_NUMERIC (loss not finite).
 */
mmcl_status mmcl__clip_loss_grad(mmcl_context *ctx, double *loss,
                                 float *dlog_tau, mmcl_clip_work *w,
                                 mmcl_mlp *f1, mmcl_mlp *f2, const float *x1,
                                 const float *x2, float tau, int B);

#endif /* MMCL_ALGORITHMS_CLIP_H */
