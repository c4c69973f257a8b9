/* SPDX-License-Identifier: MIT */
/*
 * Symmetric InfoNCE loss of CLIP (Radford et al. 2021, "Learning
 * Transferable Visual Models From Natural Language Supervision",
 * Figure 3 pseudo-code; InfoNCE from van den Oord et al. 2018): row n of
 * z1 (optical) and row n of z2 (SAR) are a positive pair, the other N - 1
 * rows of the batch are its negatives.
 *
 *   logits = z1 z2^T / tau                                        (N, N)
 *   loss   = 0.5 * ( mean_i CE(logits[i, :], i)                  (rows)
 *                  + mean_j CE(logits[:, j], j) )                (columns)
 *   CE(l, t) = logsumexp(l) - l[t]
 *
 * Two paths compute the same loss and gradients:
 *
 * Fast (fixed shift). By Cauchy-Schwarz every logit satisfies
 *   |l_ij| <= c = max_i ||z1_i|| max_j ||z2_j|| / tau
 * (c = 1 / tau for L2-normalised embeddings), so one shift serves every
 * row and every column: u_ij = exp(l_ij - c) is computed once, in float
 * with a vectorised polynomial exp (fastexp.h), and gives both
 *   lse_row_i = c + log sum_j u_ij,   lse_col_j = c + log sum_i u_ij.
 * u is kept, so the backward needs no exp at all:
 *   dlogits_ij = (u_ij (1 / rowsum_i + 1 / colsum_j) - 2 [i = j]) / (2N).
 * Guard: c is computed from the actual norms (O(N D)), and the path is
 * taken only when c <= MMCL_INFONCE_FAST_MAX_LOGIT (40), so that
 * u >= exp(-2c) >= exp(-80) stays a normal float and no sum can
 * overflow. Non-finite embeddings fail the guard too (their norm is not
 * <= 40). Unit-norm embeddings take the fast path for tau >= 0.025.
 *
 * Exact (fallback). Per-row and per-column max-subtracted log-sum-exp in
 * double with libm exp, for any finite logits (tiny or learned
 * temperatures, unnormalised inputs).
 *
 * Sums (row sums, column sums, the loss) are accumulated in double, the
 * column sums through float blocks of at most 64 rows; the loss agrees
 * with the exact path to ~1e-6 relative.
 *
 * The temperature may be fixed or learned. A learned one is parameterised
 * as log_tau (tau = exp(log_tau)), which keeps tau > 0 without
 * constraints; CLIP's logit scale is t = -log_tau (logits = exp(t) S).
 * CLIP also clamps exp(t) <= 100, i.e. tau >= 0.01; that is the trainer's
 * policy, not the kernel's.
 *
 * Parts: the row range is cut into MMCL_INFONCE_PARTS fixed blocks. The
 * _part functions compute one block and may run concurrently for
 * different parts (each writes only its own rows and its own partial
 * sums); _begin and _end combine in a fixed order. The arithmetic does not
 * depend on how many threads run the parts, so one thread and two give
 * bitwise equal results (with a single-threaded BLAS).
 */
#ifndef MMCL_ALGORITHMS_INFONCE_H
#define MMCL_ALGORITHMS_INFONCE_H

#include "context_internal.h"

enum { MMCL_INFONCE_PARTS = 2 };

/* Largest shift c (bound on |logit|) the fast path accepts. */
#define MMCL_INFONCE_FAST_MAX_LOGIT 40.0

/*
 * Scratch and saved state of one forward/backward, for batches of up to
 * N_max rows of width D. Plain data: tests read `fast`; everything else
 * is owned by the kernels.
 */
typedef struct mmcl_infonce {
    int N_max, D;
    int force_exact; /* in: nonzero always takes the exact path */
    /* Set by the forward, read by the backward. */
    int N;
    float tau;
    int fast;          /* 1 when the forward took the fixed-shift path */
    double shift;      /* fast path: c */
    float *logits;     /* (N_max, N_max) z1 z2^T / tau */
    float *u;          /* (N_max, N_max) fast: exp(logits - c); the
                          backward overwrites it with dLoss/dlogits */
    double *row, *col; /* (N_max) each. Fast: 1 / sum of u over the row /
                          column; exact: row / column log-sum-exp */
    float *row_s;      /* (N_max) fast: row[i] / (2N), float */
    float *col_s;      /* (N_max) fast: col[j] / (2N), float */
    double *col_part;  /* (PARTS, N_max) per-part column sums of u */
    float *col_blk;    /* (PARTS, N_max) float block sums */
    float *dz2_part;   /* (N_max, D) the last part's share of dz2 */
    double loss_row[MMCL_INFONCE_PARTS]; /* sum over the part's rows */
    double dtau[MMCL_INFONCE_PARTS];     /* sum dlogits * logits, per part */
} mmcl_infonce;

/*
 * Scratch for batches of up to @p N_max >= 1 rows of width @p D >= 1.
 * @return State that must be freed with mmcl__infonce_destroy(), or NULL
 *         (MMCL_ERR_INVALID_ARG / MMCL_ERR_NO_MEMORY in @p ctx).
 */
mmcl_infonce *mmcl__infonce_create(mmcl_context *ctx, int N_max, int D);

/* Frees @p s; NULL is allowed. */
void mmcl__infonce_destroy(mmcl_infonce *s);

/*
 * loss (1): the symmetric InfoNCE of z1, z2 (N, D), both read (normally
 * L2-normalised rows; the kernel does not need it), at temperature
 * tau > 0. Keeps what the backward needs in @p s.
 * Equivalent to _begin, _part for every part in order, _end.
 * @return MMCL_ERR_INVALID_ARG (N not in 1..N_max, tau not finite and
 *         > 0), MMCL_ERR_NUMERIC (loss not finite); the message says why.
 *         *loss is written only on success.
 */
mmcl_status mmcl__infonce_forward(mmcl_context *ctx, double *loss,
                                  mmcl_infonce *s, const float *z1,
                                  const float *z2, float tau, int N);

/*
 * Gradients of the loss (with dLoss = 1), accumulated (+=):
 *   dz1 (N, D) += dlogits z2 / tau
 *   dz2 (N, D) += dlogits^T z1 / tau
 *   dlog_tau (1) += -sum_ij dlogits_ij logits_ij     (may be NULL: fixed tau)
 * with dlogits_ij = (softmax_row(i)_j + softmax_col(j)_i - 2 [i = j]) / (2N).
 * Same z1, z2 as the last forward on @p s. dz1 and dz2 must not overlap
 * z1, z2 or each other.
 * Equivalent to _backward_part for every part in order, then _backward_end.
 */
void mmcl__infonce_backward(float *dz1, float *dz2, float *dlog_tau,
                            mmcl_infonce *s, const float *z1, const float *z2);

/* ---- The same in parts, for callers that run parts on threads ---------- */

/* Checks the arguments and chooses the path (O(N D)). */
mmcl_status mmcl__infonce_forward_begin(mmcl_context *ctx, mmcl_infonce *s,
                                        const float *z1, const float *z2,
                                        float tau, int N);

/* Rows of part @p part (0 <= part < MMCL_INFONCE_PARTS): logits, u, row
 * sums, partial column sums. The exact path does all its work in part 0. */
void mmcl__infonce_forward_part(mmcl_infonce *s, const float *z1,
                                const float *z2, int part);

/* After every part: column statistics and the loss. Errors as above. */
mmcl_status mmcl__infonce_forward_end(mmcl_context *ctx, double *loss,
                                      mmcl_infonce *s);

/*
 * dlogits of the part's rows, dz1 of those rows, and the part's share of
 * dz2 (part 0 accumulates into dz2, the last part into s->dz2_part).
 * @p want_dtau nonzero also sums the part's dlogits * logits.
 */
void mmcl__infonce_backward_part(float *dz1, float *dz2, mmcl_infonce *s,
                                 const float *z1, const float *z2,
                                 int want_dtau, int part);

/* After every part: dz2 += the remaining shares; dlog_tau (may be NULL)
 * += -sum dlogits * logits. */
void mmcl__infonce_backward_end(float *dz2, float *dlog_tau, mmcl_infonce *s);

#endif /* MMCL_ALGORITHMS_INFONCE_H */
