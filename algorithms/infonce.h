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
 * Log-sum-exp subtracts the max, and the loss is summed in double.
 * The temperature may be fixed or learned. A learned one is parameterised
 * as log_tau (tau = exp(log_tau)), which keeps tau > 0 without
 * constraints; CLIP's logit scale is t = -log_tau (logits = exp(t) S).
 * CLIP also clamps exp(t) <= 100, i.e. tau >= 0.01; that is the trainer's
 * policy, not the kernel's.
 */
#ifndef MMCL_ALGORITHMS_INFONCE_H
#define MMCL_ALGORITHMS_INFONCE_H

#include "context_internal.h"

/*
 * loss: (1) scalar, double
 * logits: (N, N) written with z1 z2^T / tau, kept for backward
 * lse: (2N) written: log-sum-exp of each row, then of each column, kept
 *      for backward
 * z1, z2: (N, D), normally L2-normalised rows (the kernel does not need it)
 * tau > 0: temperature
 * @return MMCL_ERR_INVALID_ARG (N < 1, D < 1, tau not finite and > 0),
 *         MMCL_ERR_NUMERIC (loss not finite); the message says why.
 */
mmcl_status mmcl__infonce_forward(mmcl_context *ctx, double *loss,
                                  float *logits, float *lse, const float *z1,
                                  const float *z2, float tau, int N, int D);

/*
 * Gradients of the loss (with dLoss = 1) from the forward's logits and
 * lse, accumulated (+=):
 *   dz1 (N, D) += dlogits z2 / tau
 *   dz2 (N, D) += dlogits^T z1 / tau
 *   dlog_tau (1) += -sum_ij dlogits_ij logits_ij     (may be NULL: fixed tau)
 * with dlogits_ij = (softmax_row(i)_j + softmax_col(j)_i - 2 [i = j]) / (2N).
 * dlogits: (N, N) scratch, overwritten with dLoss/dlogits.
 * Same z1, z2, tau, N, D as the forward.
 */
void mmcl__infonce_backward(float *dz1, float *dz2, float *dlog_tau,
                            float *dlogits, const float *logits,
                            const float *lse, const float *z1, const float *z2,
                            float tau, int N, int D);

#endif /* MMCL_ALGORITHMS_INFONCE_H */
