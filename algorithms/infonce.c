/* SPDX-License-Identifier: MIT */
/*
 * Symmetric InfoNCE (CLIP) forward and backward on cblas_sgemm: the
 * fixed-shift fast path with a vectorised float exp, and the exact
 * max-subtracted log-sum-exp path in double as the fallback. See
 * infonce.h for the equations, the guard and the part scheme.
 */
#include "infonce.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "fastexp.h"
#include "simd.h"

/* Float lanes of the row reductions: independent accumulators, so the
 * loops vectorise without reassociation (no -ffast-math). */
enum { LANES = 16 };

/* Rows per float block of the column sums before they go into double:
 * each float partial adds at most 64 values <= ~1. */
enum { COL_BLOCK = 64 };

mmcl_infonce *
mmcl__infonce_create(mmcl_context *ctx, int N_max, int D)
{
    if (N_max < 1 || D < 1) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "infonce: batch N = %d and dimension D = %d must be >= 1",
                    N_max, D);
        return NULL;
    }
    mmcl_infonce *s = mmcl__calloc_array(ctx, 1, 1, sizeof(*s));
    if (!s)
        return NULL;
    size_t N = (size_t)N_max;
    s->N_max = N_max;
    s->D = D;
    s->logits = mmcl__malloc_array(ctx, N, N, sizeof(float));
    s->u = s->logits ? mmcl__malloc_array(ctx, N, N, sizeof(float)) : NULL;
    s->row = s->u ? mmcl__malloc_array(ctx, N, 2 + MMCL_INFONCE_PARTS,
                                       sizeof(double))
                  : NULL;
    s->row_s = s->row ? mmcl__malloc_array(ctx, N, 2 + MMCL_INFONCE_PARTS,
                                           sizeof(float))
                      : NULL;
    s->dz2_part =
        s->row_s ? mmcl__calloc_array(ctx, N * (size_t)D,
                                      MMCL_INFONCE_PARTS - 1, sizeof(float))
                 : NULL;
    if (!s->dz2_part) {
        mmcl__infonce_destroy(s);
        return NULL;
    }
    s->col = s->row + N;
    s->col_part = s->row + 2 * N;
    s->col_s = s->row_s + N;
    s->col_blk = s->row_s + 2 * N;
    return s;
}

void
mmcl__infonce_destroy(mmcl_infonce *s)
{
    if (!s)
        return;
    free(s->logits);
    free(s->u);
    free(s->row);
    free(s->row_s);
    free(s->dz2_part);
    free(s);
}

/* Rows [*r0, *r1) of part p of N rows. */
static void
part_rows(int N, int part, int *r0, int *r1)
{
    *r0 = (int)((long long)N * part / MMCL_INFONCE_PARTS);
    *r1 = (int)((long long)N * (part + 1) / MMCL_INFONCE_PARTS);
}

/* Sum of squares of x (n) in double, in 8 lanes (vectorises). */
MMCL__VEC_CLONES static double
sum_sq_d(const float *restrict x, int n)
{
    double acc[8] = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += (double)x[k + j] * (double)x[k + j];
    double s = 0.0;
    for (int j = 0; j < 8; j++)
        s += acc[j];
    for (; k < n; k++)
        s += (double)x[k] * (double)x[k];
    return s;
}

/* Largest squared row norm of x (N, D), in double; +Inf when any row's
 * is not finite (NaN or Inf in x). */
static double
max_sq_norm(const float *x, int N, int D)
{
    double m = 0.0;
    for (int n = 0; n < N; n++) {
        double ss = sum_sq_d(x + (size_t)n * D, D);
        if (!isfinite(ss))
            return INFINITY;
        if (ss > m)
            m = ss;
    }
    return m;
}

/* Sum of v (n), float lanes then double. */
MMCL__VEC_CLONES static double
sum_f(const float *restrict v, int n)
{
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++)
            acc[k] += v[j + k];
    double s = 0.0;
    for (int k = 0; k < LANES; k++)
        s += (double)acc[k];
    for (; j < n; j++)
        s += (double)v[j];
    return s;
}

/* Sum of a (n) * b (n), float lanes then double. */
MMCL__VEC_CLONES static double
dot_f(const float *restrict a, const float *restrict b, int n)
{
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++)
            acc[k] += a[j + k] * b[j + k];
    double s = 0.0;
    for (int k = 0; k < LANES; k++)
        s += (double)acc[k];
    for (; j < n; j++)
        s += (double)a[j] * (double)b[j];
    return s;
}

/* u (n) = exp(l - c);  blk (n) += u */
MMCL__VEC_CLONES static void
exp_row(float *restrict u, float *restrict blk, const float *restrict l,
        float c, int n)
{
    for (int j = 0; j < n; j++) {
        float v = mmcl__fastexpf(l[j] - c);
        u[j] = v;
        blk[j] += v;
    }
}

/* acc (n) += blk (n) in double;  blk = 0 */
MMCL__VEC_CLONES static void
flush_block(double *restrict acc, float *restrict blk, int n)
{
    for (int j = 0; j < n; j++) {
        acc[j] += (double)blk[j];
        blk[j] = 0.0f;
    }
}

/* g (n) *= a + b (n), in place */
MMCL__VEC_CLONES static void
scale_row(float *restrict g, float a, const float *restrict b, int n)
{
    for (int j = 0; j < n; j++)
        g[j] *= a + b[j];
}

/* ---- Exact path --------------------------------------------------------- */

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

/* Whole forward of the exact path: logits, lse per row and column. */
static void
exact_forward(mmcl_infonce *s, const float *z1, const float *z2)
{
    int N = s->N, D = s->D;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, D, 1.0f / s->tau,
                z1, D, z2, D, 0.0f, s->logits, N);
    double sum = 0.0;
    for (int i = 0; i < N; i++) {
        double l_row = logsumexp(s->logits + (size_t)i * N, N, 1);
        double l_col = logsumexp(s->logits + i, N, N);
        double pos = (double)s->logits[(size_t)i * N + i];
        s->row[i] = l_row;
        s->col[i] = l_col;
        sum += (l_row - pos) + (l_col - pos);
    }
    s->loss_row[0] = sum;
}

/* Whole backward of the exact path: dlogits into s->u, dz1, dz2. */
static void
exact_backward(float *dz1, float *dz2, mmcl_infonce *s, const float *z1,
               const float *z2, int want_dtau)
{
    /* dloss/dlogits_ij = (P_row_ij - [i=j]) / 2N + (P_col_ij - [i=j]) / 2N
     * with P_row_ij = exp(l_ij - lse_row_i), P_col_ij = exp(l_ij -
     * lse_col_j) (softmax cross-entropy gradient, once per direction). */
    int N = s->N, D = s->D;
    double scale = 0.5 / N;
    double dtau_sum = 0.0;
    for (int i = 0; i < N; i++) {
        const float *l_i = s->logits + (size_t)i * N;
        float *g_i = s->u + (size_t)i * N;
        for (int j = 0; j < N; j++) {
            double l = (double)l_i[j];
            double p = exp(l - s->row[i]) + exp(l - s->col[j]);
            if (i == j)
                p -= 2.0;
            double g = scale * p;
            g_i[j] = (float)g;
            dtau_sum += g * l;
        }
    }
    s->dtau[0] = want_dtau ? dtau_sum : 0.0;
    float inv_tau = 1.0f / s->tau;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, D, N, inv_tau,
                s->u, N, z2, D, 1.0f, dz1, D);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, N, inv_tau, s->u,
                N, z1, D, 1.0f, dz2, D);
}

/* ---- Forward ------------------------------------------------------------ */

mmcl_status
mmcl__infonce_forward_begin(mmcl_context *ctx, mmcl_infonce *s, const float *z1,
                            const float *z2, float tau, int N)
{
    if (N < 1 || N > s->N_max)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "infonce: batch of %d rows, buffers hold 1..%d", N,
                           s->N_max);
    if (!(tau > 0.0f) || !isfinite(tau))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "infonce: temperature must be finite and > 0 "
                           "(got %g)",
                           (double)tau);
    s->N = N;
    s->tau = tau;
    for (int p = 0; p < MMCL_INFONCE_PARTS; p++)
        s->loss_row[p] = s->dtau[p] = 0.0;

    /* The guard: c bounds every |logit| (Cauchy-Schwarz); NaN or Inf in
     * z makes c infinite and fails the test. */
    double c =
        sqrt(max_sq_norm(z1, N, s->D) * max_sq_norm(z2, N, s->D)) / (double)tau;
    s->fast = !s->force_exact && c <= MMCL_INFONCE_FAST_MAX_LOGIT;
    s->shift = s->fast ? c : 0.0;
    return MMCL_OK;
}

void
mmcl__infonce_forward_part(mmcl_infonce *s, const float *z1, const float *z2,
                           int part)
{
    if (!s->fast) {
        if (part == 0)
            exact_forward(s, z1, z2);
        return;
    }
    int N = s->N, D = s->D, r0, r1;
    part_rows(N, part, &r0, &r1);
    if (r1 <= r0)
        return;

    /* logits rows r0..r1 (M, N) = z1[r0:r1] (M, D) z2^T (D, N) / tau */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, N, D,
                1.0f / s->tau, z1 + (size_t)r0 * D, D, z2, D, 0.0f,
                s->logits + (size_t)r0 * N, N);

    /* One pass: u = exp(l - c); row sums; column sums in float blocks of
     * COL_BLOCK rows, flushed into the part's double column sums. */
    float c = (float)s->shift;
    double *col = s->col_part + (size_t)part * s->N_max;
    float *blk = s->col_blk + (size_t)part * s->N_max;
    memset(col, 0, (size_t)N * sizeof(double));
    memset(blk, 0, (size_t)N * sizeof(float));
    double loss = 0.0;
    for (int i = r0; i < r1; i++) {
        const float *l_i = s->logits + (size_t)i * N;
        float *u_i = s->u + (size_t)i * N;
        exp_row(u_i, blk, l_i, c, N);
        double rowsum = sum_f(u_i, N);
        s->row[i] = 1.0 / rowsum;
        /* CE of row i: lse_row_i - l_ii = c + log(rowsum) - l_ii */
        loss += s->shift + log(rowsum) - (double)l_i[i];
        if ((i - r0) % COL_BLOCK == COL_BLOCK - 1 || i == r1 - 1)
            flush_block(col, blk, N);
    }
    s->loss_row[part] = loss;
}

mmcl_status
mmcl__infonce_forward_end(mmcl_context *ctx, double *loss, mmcl_infonce *s)
{
    int N = s->N;
    double sum = 0.0;
    if (s->fast) {
        double scale = 0.5 / N;
        for (int j = 0; j < N; j++) {
            double colsum = 0.0;
            for (int p = 0; p < MMCL_INFONCE_PARTS; p++)
                colsum += s->col_part[(size_t)p * s->N_max + j];
            s->col[j] = 1.0 / colsum;
            s->col_s[j] = (float)(scale / colsum);
            s->row_s[j] = (float)(scale * s->row[j]);
            sum +=
                s->shift + log(colsum) - (double)s->logits[(size_t)j * N + j];
        }
    }
    for (int p = 0; p < MMCL_INFONCE_PARTS; p++)
        sum += s->loss_row[p];
    double value = 0.5 * sum / N;
    if (!isfinite(value))
        return mmcl__error(ctx, MMCL_ERR_NUMERIC,
                           "infonce: loss is not finite (NaN or Inf in the "
                           "embeddings, or temperature %g too small?)",
                           (double)s->tau);
    *loss = value;
    return MMCL_OK;
}

mmcl_status
mmcl__infonce_forward(mmcl_context *ctx, double *loss, mmcl_infonce *s,
                      const float *z1, const float *z2, float tau, int N)
{
    mmcl_status st = mmcl__infonce_forward_begin(ctx, s, z1, z2, tau, N);
    if (st != MMCL_OK)
        return st;
    for (int p = 0; p < MMCL_INFONCE_PARTS; p++)
        mmcl__infonce_forward_part(s, z1, z2, p);
    return mmcl__infonce_forward_end(ctx, loss, s);
}

/* ---- Backward ----------------------------------------------------------- */

void
mmcl__infonce_backward_part(float *dz1, float *dz2, mmcl_infonce *s,
                            const float *z1, const float *z2, int want_dtau,
                            int part)
{
    if (!s->fast) {
        if (part == 0)
            exact_backward(dz1, dz2, s, z1, z2, want_dtau);
        return;
    }
    int N = s->N, D = s->D, r0, r1;
    part_rows(N, part, &r0, &r1);
    if (r1 <= r0)
        return;

    /* dlogits_ij = u_ij (a_i + b_j) - [i = j] / N, a_i = 1 / (2N rowsum_i),
     * b_j = 1 / (2N colsum_j): the two softmaxes are u / rowsum and
     * u / colsum (infonce.h), written over u. The diagonal, where the
     * subtraction cancels, is redone in double. */
    double scale = 0.5 / N, dtau = 0.0;
    for (int i = r0; i < r1; i++) {
        float *g_i = s->u + (size_t)i * N;
        double u_ii = (double)g_i[i];
        scale_row(g_i, s->row_s[i], s->col_s, N);
        g_i[i] = (float)(scale * (u_ii * (s->row[i] + s->col[i]) - 2.0));
        if (want_dtau)
            dtau += dot_f(g_i, s->logits + (size_t)i * N, N);
    }
    s->dtau[part] = dtau;

    /* dz1[r0:r1] (M, D) += G[r0:r1] (M, N) z2 (N, D) / tau */
    int M = r1 - r0;
    float inv_tau = 1.0f / s->tau;
    const float *G = s->u + (size_t)r0 * N;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, N, inv_tau, G,
                N, z2, D, 1.0f, dz1 + (size_t)r0 * D, D);
    /* dz2 (N, D) (+)= G[r0:r1]^T (N, M) z1[r0:r1] (M, D) / tau: part 0
     * into dz2, the others into their own share (summed in _end). */
    float *out = part == 0 ? dz2 : s->dz2_part + (size_t)(part - 1) * N * D;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, M, inv_tau, G, N,
                z1 + (size_t)r0 * D, D, part == 0 ? 1.0f : 0.0f, out, D);
}

void
mmcl__infonce_backward_end(float *dz2, float *dlog_tau, mmcl_infonce *s)
{
    int N = s->N, D = s->D;
    if (s->fast) {
        for (int p = 1; p < MMCL_INFONCE_PARTS; p++) {
            int r0, r1;
            part_rows(N, p, &r0, &r1);
            if (r1 <= r0)
                continue;
            const float *share = s->dz2_part + (size_t)(p - 1) * N * D;
            for (size_t k = 0; k < (size_t)N * D; k++)
                dz2[k] += share[k];
        }
    }
    /* logits = S exp(-log_tau), so dlogits/dlog_tau = -logits. */
    if (dlog_tau) {
        double sum = 0.0;
        for (int p = 0; p < MMCL_INFONCE_PARTS; p++)
            sum += s->dtau[p];
        *dlog_tau += (float)(-sum);
    }
}

void
mmcl__infonce_backward(float *dz1, float *dz2, float *dlog_tau, mmcl_infonce *s,
                       const float *z1, const float *z2)
{
    for (int p = 0; p < MMCL_INFONCE_PARTS; p++)
        mmcl__infonce_backward_part(dz1, dz2, s, z1, z2, dlog_tau != NULL, p);
    mmcl__infonce_backward_end(dz2, dlog_tau, s);
}
