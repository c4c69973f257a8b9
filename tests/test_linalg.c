/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/linalg.c: moment accumulation against plain double
 * loops, centring, and the LAPACKE wrappers against their defining
 * identities (L L^T = A, U S V^T = A, A V = V diag(w)), plus error paths.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "linalg.h"
#include "mmcl/context.h"
#include "rng.h"
#include "test_util.h"

static void
fill_normal_f(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    mmcl__rng_fill_normal(&s, x, 0.0, 1.0, n);
}

static void
fill_normal_d(double *x, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = mmcl__rng_normal(&s);
}

/* C (m, n) = A (m, k) B (k, n), plain loops: the test's reference. */
static void
ref_matmul(double *Cm, const double *A, const double *B, int m, int k, int n)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int l = 0; l < k; l++)
                s += A[i * k + l] * B[l * n + j];
            Cm[i * n + j] = s;
        }
}

/* Two-pass population covariances in double of the rows of X1 (N, d1) and
 * X2 (N, d2): R11 (d1, d1), R12 (d1, d2) and, when not NULL, R22 (d2, d2);
 * the outputs are set, not added to. The tests' reference. */
static void
ref_cov(double *R11, double *R22, double *R12, const float *X1,
        const float *X2, int N, int d1, int d2)
{
    double *m1 = calloc((size_t)d1, sizeof(double));
    double *m2 = calloc((size_t)d2, sizeof(double));
    memset(R11, 0, (size_t)d1 * d1 * sizeof(double));
    memset(R12, 0, (size_t)d1 * d2 * sizeof(double));
    if (R22)
        memset(R22, 0, (size_t)d2 * d2 * sizeof(double));
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < d1; i++)
            m1[i] += X1[n * d1 + i] / (double)N;
        for (int i = 0; i < d2; i++)
            m2[i] += X2[n * d2 + i] / (double)N;
    }
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < d1; i++) {
            double a = X1[n * d1 + i] - m1[i];
            for (int j = 0; j < d1; j++)
                R11[i * d1 + j] += a * (X1[n * d1 + j] - m1[j]) / N;
            for (int j = 0; j < d2; j++)
                R12[i * d2 + j] += a * (X2[n * d2 + j] - m2[j]) / N;
        }
        for (int i = 0; R22 && i < d2; i++)
            for (int j = 0; j < d2; j++)
                R22[i * d2 + j] +=
                    (X2[n * d2 + i] - m2[i]) * (X2[n * d2 + j] - m2[j]) / N;
    }
    free(m1);
    free(m2);
}

static void
moments_accumulate_over_batches_matches_explicit_sums(void)
{
    enum { N = 37, d1 = 5, d2 = 3 };
    float X1[N * d1], X2[N * d2];
    fill_normal_f(X1, N * d1, 1);
    fill_normal_f(X2, N * d2, 2);
    for (int i = 0; i < N * d1; i++)
        X1[i] += 2.0f; /* non-zero means */

    double S11[d1 * d1] = {0}, S22[d2 * d2] = {0}, S12[d1 * d2] = {0};
    double s1[d1] = {0}, s2[d2] = {0}, work[N * (d1 + d2)];
    static const int batches[] = {10, 20, 7};
    int row = 0;
    for (int b = 0; b < 3; b++) {
        mmcl__moments_accumulate(S11, S22, S12, s1, s2, work, X1 + row * d1,
                                 X2 + row * d2, batches[b], d1, d2);
        row += batches[b];
    }
    mmcl__moments_accumulate(S11, S22, S12, s1, s2, work, X1, X2, 0, d1, d2);

    double R11[d1 * d1] = {0}, R22[d2 * d2] = {0}, R12[d1 * d2] = {0};
    double r1[d1] = {0}, r2[d2] = {0};
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < d1; i++) {
            r1[i] += X1[n * d1 + i];
            for (int j = 0; j < d1; j++)
                R11[i * d1 + j] += (double)X1[n * d1 + i] * X1[n * d1 + j];
            for (int j = 0; j < d2; j++)
                R12[i * d2 + j] += (double)X1[n * d1 + i] * X2[n * d2 + j];
        }
        for (int i = 0; i < d2; i++) {
            r2[i] += X2[n * d2 + i];
            for (int j = 0; j < d2; j++)
                R22[i * d2 + j] += (double)X2[n * d2 + i] * X2[n * d2 + j];
        }
    }
    /* The column sums are double sums of floats: exact to rounding. The
     * products are float products of the batch's centred values (|y| < 5
     * here): at most 20 rows a batch, each product and partial sum within
     * 2^-23 relative, so |error| < 20 * 2 * 25 * 2^-23 ~ 1.2e-4 per batch. */
    CU_ASSERT_TRUE(
        test_check_tensor("S11 (both triangles)", S11, R11, d1 * d1, 2e-4));
    CU_ASSERT_TRUE(test_check_tensor("S22", S22, R22, d2 * d2, 2e-4));
    CU_ASSERT_TRUE(test_check_tensor("S12", S12, R12, d1 * d2, 2e-4));
    CU_ASSERT_TRUE(test_check_tensor("s1", s1, r1, d1, 1e-12));
    CU_ASSERT_TRUE(test_check_tensor("s2", s2, r2, d2, 1e-12));
    for (int i = 0; i < d1; i++)
        for (int j = 0; j < i; j++)
            CU_ASSERT_EQUAL(S11[i * d1 + j], S11[j * d1 + i]);

    /* One modality: only S11 (and s1) move. */
    double T11[d1 * d1] = {0}, t1[d1] = {0};
    mmcl__moments_accumulate(T11, NULL, NULL, t1, NULL, work, X1, NULL, N, d1,
                             0);
    CU_ASSERT_TRUE(test_check_tensor("S11 alone", T11, R11, d1 * d1, 2e-4));
}

/*
 * Data far from zero (mean 1000, spread 1) in float: the products are taken
 * of the batch's shifted values, so the covariance keeps its precision (raw
 * float products would square 1000 and lose the spread to rounding).
 */
static void
moments_keep_the_spread_of_data_far_from_zero(void)
{
    enum { N = 4000, d1 = 3, d2 = 2, BATCH = 1000 };
    static float X1[N * d1], X2[N * d2];
    fill_normal_f(X1, N * d1, 5);
    fill_normal_f(X2, N * d2, 6);
    for (int n = 0; n < N; n++) {
        X1[n * d1 + 1] = 0.5f * X1[n * d1] + X1[n * d1 + 1];
        for (int i = 0; i < d1; i++)
            X1[n * d1 + i] += 1000.0f;
        X2[n * d2] = X2[n * d2] - 1000.0f;
    }
    double S11[d1 * d1] = {0}, S22[d2 * d2] = {0}, S12[d1 * d2] = {0};
    double s1[d1] = {0}, s2[d2] = {0};
    double *work = malloc(mmcl__moments_work_size(BATCH, d1, d2) *
                          sizeof(double));
    for (int row = 0; row < N; row += BATCH)
        mmcl__moments_accumulate(S11, S22, S12, s1, s2, work, X1 + row * d1,
                                 X2 + row * d2, BATCH, d1, d2);
    free(work);
    double C11[d1 * d1], C22[d2 * d2], C12[d1 * d2];
    mmcl__cov_from_moments(C11, S11, s1, s1, N, d1, d1);
    mmcl__cov_from_moments(C22, S22, s2, s2, N, d2, d2);
    mmcl__cov_from_moments(C12, S12, s1, s2, N, d1, d2);

    double R11[d1 * d1], R22[d2 * d2], R12[d1 * d2];
    ref_cov(R11, R22, R12, X1, X2, N, d1, d2);
    /* Unit spread: float products of centred values, 1e-5 is ~100 ulps;
     * raw float moments would be off by ~1e6 * 2^-24 ~ 0.06 here. */
    CU_ASSERT_TRUE(test_check_tensor("C11 at mean 1000", C11, R11, d1 * d1,
                                     1e-5));
    CU_ASSERT_TRUE(test_check_tensor("C22 at mean -1000", C22, R22, d2 * d2,
                                     1e-5));
    CU_ASSERT_TRUE(test_check_tensor("C12", C12, R12, d1 * d2, 1e-5));
}

/* The sums of mmcl__moments_accumulate_rows: S11 | S22 | S12 | s1 | s2. */
static double *
rows_sums(const float *X1, const float *X2, int N, int d1, int d2, int batch,
          int n_threads, mmcl_status *st)
{
    size_t per = (size_t)d1 * d1 + (size_t)d2 * d2 + (size_t)d1 * d2 +
                 (size_t)d1 + (size_t)d2;
    double *S = calloc(per, sizeof(double));
    double *S22 = S + d1 * d1, *S12 = S22 + d2 * d2, *s1 = S12 + d1 * d2;
    mmcl_context *ctx = mmcl_context_create();
    *st = mmcl__moments_accumulate_rows(ctx, S, X2 ? S22 : NULL,
                                        X2 ? S12 : NULL, s1,
                                        X2 ? s1 + d1 : NULL, X1, X2, N, d1,
                                        d2, batch, n_threads);
    mmcl_context_destroy(ctx);
    return S;
}

/*
 * The batched moments are the batches' terms added in batch order: the
 * same bits on 1 to 5 threads, and the same bits as
 * mmcl__moments_accumulate called on the batches one after the other
 * (what train's MPI ranks add up, docs/mpi.md).
 */
static void
moments_rows_same_bits_for_any_threads(void)
{
    enum { N = 9100, d1 = 7, d2 = 3, BATCH = 1000 }; /* 10 batches */
    static float X1[N * d1], X2[N * d2];
    fill_normal_f(X1, N * d1, 7);
    fill_normal_f(X2, N * d2, 8);
    for (int n = 0; n < N; n++) {
        X1[n * d1 + 2] += 3.0f + 0.5f * X1[n * d1];
        X2[n * d2] += 0.3f * X1[n * d1 + 1] - 2.0f;
    }
    enum { PER = d1 * d1 + d2 * d2 + d1 * d2 + d1 + d2 };
    static double R[PER];
    double *work = malloc(mmcl__moments_work_size(BATCH, d1, d2) *
                          sizeof(double));
    for (int row = 0; row < N; row += BATCH)
        mmcl__moments_accumulate(R, R + d1 * d1, R + d1 * d1 + d2 * d2,
                                 R + d1 * d1 + d2 * d2 + d1 * d2,
                                 R + d1 * d1 + d2 * d2 + d1 * d2 + d1, work,
                                 X1 + row * d1, X2 + row * d2,
                                 N - row < BATCH ? N - row : BATCH, d1, d2);
    static const int threads[] = {1, 2, 3, 5};
    for (int i = 0; i < 4; i++) {
        mmcl_status st;
        double *S = rows_sums(X1, X2, N, d1, d2, BATCH, threads[i], &st);
        CU_ASSERT_EQUAL(st, MMCL_OK);
        printf("  %d thread(s): %s\n", threads[i],
               memcmp(S, R, sizeof(R)) ? "DIFFERENT BITS" : "same bits");
        CU_ASSERT_EQUAL(memcmp(S, R, sizeof(R)), 0);
        free(S);
    }

    /* One modality, too. */
    static double T[d1 * d1 + d1];
    for (int row = 0; row < N; row += BATCH)
        mmcl__moments_accumulate(T, NULL, NULL, T + d1 * d1, NULL, work,
                                 X1 + row * d1, NULL,
                                 N - row < BATCH ? N - row : BATCH, d1, 0);
    mmcl_status st;
    double *S = rows_sums(X1, NULL, N, d1, 0, BATCH, 2, &st);
    CU_ASSERT_EQUAL(st, MMCL_OK);
    CU_ASSERT_EQUAL(memcmp(S, T, sizeof(T)), 0);
    free(S);
    free(work);

    /* A batch of no rows is refused with the sums untouched. */
    S = rows_sums(X1, X2, N, d1, d2, 0, 2, &st);
    CU_ASSERT_EQUAL(st, MMCL_ERR_INVALID_ARG);
    int untouched = 1;
    for (int i = 0; i < PER; i++)
        untouched &= S[i] == 0.0;
    CU_ASSERT_TRUE(untouched);
    free(S);
}

/*
 * Rows far from zero (mean 1e4, spread 1, drifting by 3 over the rows, as
 * a scene's brightness may): each batch is shifted by the mean of 64 of its
 * rows, so its float products stay at the scale of the spread and the
 * covariance keeps its precision. The reference is the two-pass
 * covariance in double of the same float values.
 */
static void
moments_rows_keep_the_spread_at_mean_1e4(void)
{
    enum { N = 8000, d1 = 4, d2 = 3, BATCH = 1000 };
    static float X1[N * d1], X2[N * d2];
    fill_normal_f(X1, N * d1, 9);
    fill_normal_f(X2, N * d2, 10);
    for (int n = 0; n < N; n++) {
        float drift = 3.0f * (float)n / N;
        X1[n * d1 + 1] = 0.6f * X1[n * d1] + 0.8f * X1[n * d1 + 1];
        X2[n * d2 + 2] = 0.5f * X1[n * d1 + 3] + X2[n * d2 + 2];
        for (int i = 0; i < d1; i++)
            X1[n * d1 + i] += 1e4f + drift;
        for (int i = 0; i < d2; i++)
            X2[n * d2 + i] += (i == 1 ? -1e4f : 1e4f) - drift;
    }
    mmcl_status st;
    double *S = rows_sums(X1, X2, N, d1, d2, BATCH, 2, &st);
    CU_ASSERT_EQUAL_FATAL(st, MMCL_OK);
    double *S22 = S + d1 * d1, *S12 = S22 + d2 * d2, *s1 = S12 + d1 * d2;
    double *s2 = s1 + d1;
    double C11[d1 * d1], C22[d2 * d2], C12[d1 * d2];
    mmcl__cov_from_moments(C11, S, s1, s1, N, d1, d1);
    mmcl__cov_from_moments(C22, S22, s2, s2, N, d2, d2);
    mmcl__cov_from_moments(C12, S12, s1, s2, N, d1, d2);
    free(S);

    double R11[d1 * d1], R22[d2 * d2], R12[d1 * d2];
    ref_cov(R11, R22, R12, X1, X2, N, d1, d2);
    /* Variances about 1.75 (1 + the drift's 0.75): float products of
     * values within a few units of 0, summed over 1000 rows, then in
     * double. 1e-6 is ~5 float ulps of the spread (the errors seen are
     * near 1e-7); the double subtraction of the squared means (1e8) costs
     * ~1e-8. Products of the raw floats would be off by ~1e8 * 2^-24 ~ 6
     * here. */
    CU_ASSERT_TRUE(test_check_tensor("C11 at mean 1e4", C11, R11, d1 * d1,
                                     1e-6));
    CU_ASSERT_TRUE(test_check_tensor("C22 at means +-1e4", C22, R22,
                                     d2 * d2, 1e-6));
    CU_ASSERT_TRUE(test_check_tensor("C12 at mean 1e4", C12, R12, d1 * d2,
                                     1e-6));
}

static void
cov_from_moments_centres_and_divides_by_count(void)
{
    enum { N = 50, d1 = 4, d2 = 2 };
    float X1[N * d1], X2[N * d2];
    fill_normal_f(X1, N * d1, 3);
    fill_normal_f(X2, N * d2, 4);
    for (int n = 0; n < N; n++) {
        X1[n * d1] += 3.0f;
        X2[n * d2 + 1] -= 1.5f;
    }
    double S11[d1 * d1] = {0}, S22[d2 * d2] = {0}, S12[d1 * d2] = {0};
    double s1[d1] = {0}, s2[d2] = {0}, work[N * (d1 + d2)];
    mmcl__moments_accumulate(S11, S22, S12, s1, s2, work, X1, X2, N, d1, d2);
    double C11[d1 * d1], C12[d1 * d2];
    mmcl__cov_from_moments(C11, S11, s1, s1, N, d1, d1);
    mmcl__cov_from_moments(S12, S12, s1, s2, N, d1, d2); /* in place */
    memcpy(C12, S12, sizeof(C12));

    double R11[d1 * d1], R12[d1 * d2];
    ref_cov(R11, NULL, R12, X1, X2, N, d1, d2);
    /* The moments' products are float products of centred values of unit
     * spread: the covariances agree to ~ 2^-23 relative, 1e-6 absolute. */
    CU_ASSERT_TRUE(test_check_tensor("cov11", C11, R11, d1 * d1, 1e-6));
    CU_ASSERT_TRUE(
        test_check_tensor("cov12 in place", C12, R12, d1 * d2, 1e-6));

    /* Without sums: only the division. */
    double D[4] = {2.0, 4.0, 6.0, 8.0}, E[4] = {1.0, 2.0, 3.0, 4.0};
    mmcl__cov_from_moments(D, D, NULL, NULL, 2.0, 2, 2);
    CU_ASSERT_TRUE(test_check_tensor("cov without sums", D, E, 4, 0.0));
}

static void
symmetric_helpers_do_what_they_say(void)
{
    double A[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    double U[9] = {1, 2, 3, 2, 5, 6, 3, 6, 9};
    double S[9] = {1, 3, 5, 3, 5, 7, 5, 7, 9};
    double B[9];
    memcpy(B, A, sizeof(A));
    mmcl__sym_from_upper(B, 3);
    CU_ASSERT_TRUE(test_check_tensor("sym_from_upper", B, U, 9, 0.0));
    memcpy(B, A, sizeof(A));
    mmcl__symmetrize(B, 3);
    CU_ASSERT_TRUE(test_check_tensor("symmetrize", B, S, 9, 0.0));
    mmcl__add_diag(B, 0.5, 3);
    CU_ASSERT_DOUBLE_EQUAL(B[0], 1.5, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(B[4], 5.5, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(B[1], 3.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(mmcl__mean_diag(B, 3), 16.5 / 3.0, 1e-15);
}

static void
cholesky_factor_reproduces_matrix_and_solves(void)
{
    enum { n = 5, m = 3 };
    double G[n * n], A[n * n], L[n * n], LLt[n * n], Lt[n * n];
    fill_normal_d(G, n * n, 5);
    /* A = G G^T + I: symmetric positive definite. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = i == j ? 1.0 : 0.0;
            for (int k = 0; k < n; k++)
                s += G[i * n + k] * G[j * n + k];
            A[i * n + j] = s;
        }
    memcpy(L, A, sizeof(A));
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(mmcl__cholesky(ctx, L, n, "A"), MMCL_OK);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            Lt[i * n + j] = L[j * n + i];
            if (j > i)
                CU_ASSERT_EQUAL(L[i * n + j], 0.0);
        }
    ref_matmul(LLt, L, Lt, n, n, n);
    CU_ASSERT_TRUE(test_check_tensor("L L^T vs A", LLt, A, n * n, 1e-12));

    /* Left solves: L X = B and L^T X = B, checked by multiplying back. */
    double B[n * m], X[n * m], R[n * m];
    fill_normal_d(B, n * m, 6);
    memcpy(X, B, sizeof(B));
    mmcl__trsm_lower_left(X, L, 0, n, m);
    ref_matmul(R, L, X, n, n, m);
    CU_ASSERT_TRUE(test_check_tensor("L (L^-1 B)", R, B, n * m, 1e-12));
    memcpy(X, B, sizeof(B));
    mmcl__trsm_lower_left(X, L, 1, n, m);
    ref_matmul(R, Lt, X, n, n, m);
    CU_ASSERT_TRUE(test_check_tensor("L^T (L^-T B)", R, B, n * m, 1e-12));

    /* Right solves: X L = B and X L^T = B with B (m, n). */
    double Bt[m * n], Y[m * n], Rt[m * n];
    fill_normal_d(Bt, m * n, 7);
    memcpy(Y, Bt, sizeof(Bt));
    mmcl__trsm_lower_right(Y, L, 0, m, n);
    ref_matmul(Rt, Y, L, m, n, n);
    CU_ASSERT_TRUE(test_check_tensor("(B L^-1) L", Rt, Bt, m * n, 1e-12));
    memcpy(Y, Bt, sizeof(Bt));
    mmcl__trsm_lower_right(Y, L, 1, m, n);
    ref_matmul(Rt, Y, Lt, m, n, n);
    CU_ASSERT_TRUE(test_check_tensor("(B L^-T) L^T", Rt, Bt, m * n, 1e-12));
    mmcl_context_destroy(ctx);
}

static void
cholesky_reports_matrix_that_is_not_positive_definite(void)
{
    /* Eigenvalues 3 and -1. */
    double A[4] = {1.0, 2.0, 2.0, 1.0};
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL(mmcl__cholesky(ctx, A, 2, "test matrix"), MMCL_ERR_NUMERIC);
    CU_ASSERT_EQUAL(mmcl_context_errcode(ctx), MMCL_ERR_NUMERIC);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "test matrix"));
    printf("  message: %s\n", mmcl_context_errmsg(ctx));

    /* A semi-definite (singular) matrix fails too. */
    double Z[4] = {1.0, 1.0, 1.0, 1.0};
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(mmcl__cholesky(ctx, Z, 2, NULL), MMCL_ERR_NUMERIC);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl_context_destroy(ctx);
}

static void
check_svd(int m, int n, uint64_t seed)
{
    int r = m < n ? m : n;
    double *A = malloc(sizeof(double) * m * n);
    double *A0 = malloc(sizeof(double) * m * n);
    double *U = malloc(sizeof(double) * m * r);
    double *US = malloc(sizeof(double) * m * r);
    double *Vt = malloc(sizeof(double) * r * n);
    double *s = malloc(sizeof(double) * r);
    double *UtU = malloc(sizeof(double) * r * r);
    double *Ut = malloc(sizeof(double) * r * m);
    double *eye = calloc((size_t)r * r, sizeof(double));
    fill_normal_d(A, (size_t)m * n, seed);
    memcpy(A0, A, sizeof(double) * m * n);

    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(mmcl__svd(ctx, U, s, Vt, A, m, n, "A"), MMCL_OK);
    for (int j = 1; j < r; j++)
        CU_ASSERT_TRUE(s[j] <= s[j - 1]);
    CU_ASSERT_TRUE(s[r - 1] >= 0.0);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < r; j++) {
            US[i * r + j] = U[i * r + j] * s[j];
            Ut[j * m + i] = U[i * r + j];
        }
    ref_matmul(A, US, Vt, m, r, n);
    CU_ASSERT_TRUE(
        test_check_tensor("U S Vt vs A", A, A0, (size_t)m * n, 1e-12));
    ref_matmul(UtU, Ut, U, r, m, r);
    for (int j = 0; j < r; j++)
        eye[j * r + j] = 1.0;
    CU_ASSERT_TRUE(
        test_check_tensor("U^T U vs I", UtU, eye, (size_t)r * r, 1e-12));
    mmcl_context_destroy(ctx);
    free(A);
    free(A0);
    free(U);
    free(US);
    free(Vt);
    free(s);
    free(UtU);
    free(Ut);
    free(eye);
}

static void
svd_reconstructs_wide_and_tall_matrices(void)
{
    check_svd(4, 6, 8);
    check_svd(6, 4, 9);
    check_svd(5, 5, 10);
}

static void
sym_eig_diagonalises_symmetric_matrix(void)
{
    enum { n = 6 };
    double A[n * n], V[n * n], w[n], AV[n * n], VW[n * n];
    fill_normal_d(A, n * n, 11);
    mmcl__symmetrize(A, n);
    memcpy(V, A, sizeof(A));
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(mmcl__sym_eig(ctx, w, V, n, "A"), MMCL_OK);
    for (int j = 1; j < n; j++)
        CU_ASSERT_TRUE(w[j] >= w[j - 1]); /* ascending */
    ref_matmul(AV, A, V, n, n, n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            VW[i * n + j] = V[i * n + j] * w[j];
    CU_ASSERT_TRUE(test_check_tensor("A V vs V diag(w)", AV, VW, n * n, 1e-12));
    mmcl_context_destroy(ctx);
}

static void
fix_column_signs_makes_largest_entry_positive(void)
{
    /* (3, 2): column 0 has its largest |.| at row 1 (negative), column 1
     * at row 2 (positive). B follows A's flips. */
    double A[6] = {0.1, -0.2, -0.9, 0.3, 0.2, 0.8};
    double B[4] = {1.0, 2.0, 3.0, 4.0};
    double A_ref[6] = {-0.1, -0.2, 0.9, 0.3, -0.2, 0.8};
    double B_ref[4] = {-1.0, 2.0, -3.0, 4.0};
    mmcl__fix_column_signs(A, B, 3, 2, 2);
    CU_ASSERT_TRUE(test_check_tensor("A", A, A_ref, 6, 0.0));
    CU_ASSERT_TRUE(test_check_tensor("B", B, B_ref, 4, 0.0));
    /* Ties: the first largest entry decides. */
    double T[2] = {-0.5, 0.5}, T_ref[2] = {0.5, -0.5};
    mmcl__fix_column_signs(T, NULL, 2, 0, 1);
    CU_ASSERT_TRUE(test_check_tensor("tie", T, T_ref, 2, 0.0));
}

int
main(void)
{
    static const test_case cases[] = {
        {"moments_accumulate_over_batches_matches_explicit_sums",
         moments_accumulate_over_batches_matches_explicit_sums},
        {"moments_keep_the_spread_of_data_far_from_zero",
         moments_keep_the_spread_of_data_far_from_zero},
        {"moments_rows_same_bits_for_any_threads",
         moments_rows_same_bits_for_any_threads},
        {"moments_rows_keep_the_spread_at_mean_1e4",
         moments_rows_keep_the_spread_at_mean_1e4},
        {"cov_from_moments_centres_and_divides_by_count",
         cov_from_moments_centres_and_divides_by_count},
        {"symmetric_helpers_do_what_they_say",
         symmetric_helpers_do_what_they_say},
        {"cholesky_factor_reproduces_matrix_and_solves",
         cholesky_factor_reproduces_matrix_and_solves},
        {"cholesky_reports_matrix_that_is_not_positive_definite",
         cholesky_reports_matrix_that_is_not_positive_definite},
        {"svd_reconstructs_wide_and_tall_matrices",
         svd_reconstructs_wide_and_tall_matrices},
        {"sym_eig_diagonalises_symmetric_matrix",
         sym_eig_diagonalises_symmetric_matrix},
        {"fix_column_signs_makes_largest_entry_positive",
         fix_column_signs_makes_largest_entry_positive},
        {NULL, NULL}};
    return test_run_suite("linalg", cases);
}
