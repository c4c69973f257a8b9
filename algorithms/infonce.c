/* SPDX-License-Identifier: MIT */
/*
 * Symmetric InfoNCE (CLIP) forward and backward on cblas_sgemm, with
 * max-subtracted log-sum-exp in double. See infonce.h for the equations.
 */
#include "infonce.h"

#include <math.h>

#include <cblas.h>

/* log sum_k exp(v[k * stride]), k < n, with the max subtracted. */
static double
logsumexp(const float *v, int n, int stride)
{
    float vmax = v[0];
    for (int k = 1; k < n; k++)
        if (v[(size_t)k * stride] > vmax)
            vmax = v[(size_t)k * stride];
    double s = 0.0;
    for (int k = 0; k < n; k++)
        s += exp((double)v[(size_t)k * stride] - (double)vmax);
    return (double)vmax + log(s);
}

mmcl_status
mmcl__infonce_forward(mmcl_context *ctx, double *loss, float *logits,
                      float *lse, const float *z1, const float *z2, float tau,
                      int N, int D)
{
    if (N < 1 || D < 1)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "infonce: batch N = %d and dimension D = %d must "
                           "be >= 1",
                           N, D);
    if (!(tau > 0.0f) || !isfinite(tau))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "infonce: temperature must be finite and > 0 "
                           "(got %g)",
                           (double)tau);

    /* logits (N, N) = z1 (N, D) z2^T / tau */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, D, 1.0f / tau,
                z1, D, z2, D, 0.0f, logits, N);

    /* Row i: CE against target i; column j: CE against target j. The
     * diagonal logit is the positive pair in both. */
    double sum_rows = 0.0, sum_cols = 0.0;
    for (int i = 0; i < N; i++) {
        double l_row = logsumexp(logits + (size_t)i * N, N, 1);
        double l_col = logsumexp(logits + i, N, N);
        double pos = (double)logits[(size_t)i * N + i];
        lse[i] = (float)l_row;
        lse[N + i] = (float)l_col;
        sum_rows += l_row - pos;
        sum_cols += l_col - pos;
    }
    double value = 0.5 * (sum_rows + sum_cols) / N;
    if (!isfinite(value))
        return mmcl__error(ctx, MMCL_ERR_NUMERIC,
                           "infonce: loss is not finite (NaN or Inf in the "
                           "embeddings, or temperature %g too small?)",
                           (double)tau);
    *loss = value;
    return MMCL_OK;
}

void
mmcl__infonce_backward(float *dz1, float *dz2, float *dlog_tau, float *dlogits,
                       const float *logits, const float *lse, const float *z1,
                       const float *z2, float tau, int N, int D)
{
    /* dloss/dlogits_ij = (P_row_ij - [i=j]) / 2N + (P_col_ij - [i=j]) / 2N
     * with P_row_ij = exp(l_ij - lse_row_i), P_col_ij = exp(l_ij - lse_col_j)
     * (softmax cross-entropy gradient, once per direction). */
    const float *lse_row = lse, *lse_col = lse + N;
    double scale = 0.5 / N;
    double dtau_sum = 0.0; /* sum_ij dlogits_ij logits_ij */
    for (int i = 0; i < N; i++) {
        const float *l_i = logits + (size_t)i * N;
        float *g_i = dlogits + (size_t)i * N;
        for (int j = 0; j < N; j++) {
            double l = (double)l_i[j];
            double p =
                exp(l - (double)lse_row[i]) + exp(l - (double)lse_col[j]);
            if (i == j)
                p -= 2.0;
            double g = scale * p;
            g_i[j] = (float)g;
            dtau_sum += g * l;
        }
    }

    /* logits = S exp(-log_tau), so dlogits/dlog_tau = -logits. */
    if (dlog_tau)
        *dlog_tau += (float)(-dtau_sum);

    /* dz1 (N, D) += dlogits (N, N) z2 (N, D) / tau */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, D, N, 1.0f / tau,
                dlogits, N, z2, D, 1.0f, dz1, D);
    /* dz2 (N, D) += dlogits^T (N, N) z1 (N, D) / tau */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, N, 1.0f / tau,
                dlogits, N, z1, D, 1.0f, dz2, D);
}
