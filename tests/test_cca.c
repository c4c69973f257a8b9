/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/cca.c on Gaussian data with known canonical
 * structure: x1 = A1 u1 + mu1, x2 = A2 u2 + mu2 with cov(u1) = I,
 * cov(u2) = I and cov(u1, u2) = P = [diag(rho); 0], so the population
 * canonical correlations of (x1, x2) are rho (CCA is invariant under
 * invertible linear maps of each side) and the canonical directions are
 * W1 = A1^-T e_j, W2 = A2^-T e_j.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "cca.h"
#include "linalg.h"
#include "rng.h"
#include "test_util.h"

enum { d1 = 6, d2 = 4, K = 4 };
static const double rho_true[K] = {0.9, 0.6, 0.3, 0.0};

typedef struct model {
    double A1[d1 * d1], A2[d2 * d2], mu1[d1], mu2[d2];
} model;

static void
make_model(model *m)
{
    uint64_t s = 2024;
    /* Random well-conditioned mixing: 2 I + 0.5 G. */
    for (int i = 0; i < d1 * d1; i++)
        m->A1[i] = 0.5 * mmcl__rng_normal(&s) + (i % (d1 + 1) == 0 ? 2.0 : 0.0);
    for (int i = 0; i < d2 * d2; i++)
        m->A2[i] = 0.5 * mmcl__rng_normal(&s) + (i % (d2 + 1) == 0 ? 2.0 : 0.0);
    for (int i = 0; i < d1; i++)
        m->mu1[i] = mmcl__rng_normal(&s);
    for (int i = 0; i < d2; i++)
        m->mu2[i] = mmcl__rng_normal(&s);
}

/* C (m, n) = A (m, k) op(B), plain loops; op(B) = B (k, n) or B^T with B
 * (n, k). */
static void
ref_matmul(double *Cm, const double *A, const double *B, int transb, int m,
           int k, int n)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int l = 0; l < k; l++)
                s += A[i * k + l] * (transb ? B[j * k + l] : B[l * n + j]);
            Cm[i * n + j] = s;
        }
}

/* C (k, k) = W_a^T S W_b with W_a (da, k), S (da, db), W_b (db, k). */
static void
congruence(double *Cm, const double *Wa, const double *S, const double *Wb,
           int da, int db, int k)
{
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            double s = 0.0;
            for (int a = 0; a < da; a++)
                for (int b = 0; b < db; b++)
                    s += Wa[a * k + i] * S[a * db + b] * Wb[b * k + j];
            Cm[i * k + j] = s;
        }
}

/* Population S11 = A1 A1^T, S22 = A2 A2^T, S12 = A1 P A2^T. */
static void
population_cov(double *S11, double *S22, double *S12, const model *m)
{
    double P[d1 * d2] = {0}, A1P[d1 * d2];
    for (int j = 0; j < K; j++)
        P[j * d2 + j] = rho_true[j];
    ref_matmul(S11, m->A1, m->A1, 1, d1, d1, d1);
    ref_matmul(S22, m->A2, m->A2, 1, d2, d2, d2);
    ref_matmul(A1P, m->A1, P, 0, d1, d1, d2);
    ref_matmul(S12, A1P, m->A2, 1, d1, d2, d2);
}

/*
 * Sample covariances of N draws, through the library's accumulation path
 * (float batches -> double moments -> centred covariances).
 */
static void
sample_cov(double *S11, double *S22, double *S12, const model *m, int N)
{
    enum { B = 1000 };
    static float X1[B * d1], X2[B * d2];
    static double work[B * (d1 + d2)];
    double s1[d1] = {0}, s2[d2] = {0};
    memset(S11, 0, sizeof(double) * d1 * d1);
    memset(S22, 0, sizeof(double) * d2 * d2);
    memset(S12, 0, sizeof(double) * d1 * d2);
    uint64_t s = 7;
    for (int done = 0; done < N; done += B) {
        int nb = N - done < B ? N - done : B;
        for (int n = 0; n < nb; n++) {
            double u1[d1], u2[d2];
            for (int j = 0; j < d1; j++)
                u1[j] = mmcl__rng_normal(&s);
            for (int j = 0; j < d2; j++)
                u2[j] = rho_true[j] * u1[j] +
                        sqrt(1.0 - rho_true[j] * rho_true[j]) *
                            mmcl__rng_normal(&s);
            for (int i = 0; i < d1; i++) {
                double v = m->mu1[i];
                for (int j = 0; j < d1; j++)
                    v += m->A1[i * d1 + j] * u1[j];
                X1[n * d1 + i] = (float)v;
            }
            for (int i = 0; i < d2; i++) {
                double v = m->mu2[i];
                for (int j = 0; j < d2; j++)
                    v += m->A2[i * d2 + j] * u2[j];
                X2[n * d2 + i] = (float)v;
            }
        }
        mmcl__moments_accumulate(S11, S22, S12, s1, s2, work, X1, X2, nb, d1,
                                 d2);
    }
    mmcl__cov_from_moments(S11, S11, s1, s1, N, d1, d1);
    mmcl__cov_from_moments(S22, S22, s2, s2, N, d2, d2);
    mmcl__cov_from_moments(S12, S12, s1, s2, N, d1, d2);
}

static void
check_identities(const double *W1, const double *W2, const double *rho,
                 const double *S11, const double *S22, const double *S12,
                 double eps, int k, double tol)
{
    double R11[d1 * d1], R22[d2 * d2];
    double C11[K * K], C22[K * K], C12[K * K], eye[K * K] = {0},
                                                       diag[K * K] = {0};
    memcpy(R11, S11, sizeof(R11));
    memcpy(R22, S22, sizeof(R22));
    mmcl__add_diag(R11, eps, d1);
    mmcl__add_diag(R22, eps, d2);
    congruence(C11, W1, R11, W1, d1, d1, k);
    congruence(C22, W2, R22, W2, d2, d2, k);
    congruence(C12, W1, S12, W2, d1, d2, k);
    for (int j = 0; j < k; j++) {
        eye[j * k + j] = 1.0;
        diag[j * k + j] = rho[j];
    }
    CU_ASSERT_TRUE(test_check_tensor("W1^T (S11 + eps I) W1 vs I", C11, eye,
                                     (size_t)k * k, tol));
    CU_ASSERT_TRUE(test_check_tensor("W2^T (S22 + eps I) W2 vs I", C22, eye,
                                     (size_t)k * k, tol));
    CU_ASSERT_TRUE(test_check_tensor("W1^T S12 W2 vs diag(rho)", C12, diag,
                                     (size_t)k * k, tol));
}

static void
cca_matches_analytic_solution_on_population_covariance(void)
{
    static model m;
    make_model(&m);
    double S11[d1 * d1], S22[d2 * d2], S12[d1 * d2];
    population_cov(S11, S22, S12, &m);

    /* k = 3: the three non-zero correlations, whose directions are
     * unique up to sign. */
    double W1[d1 * 3], W2[d2 * 3], rho[3];
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(
        mmcl__cca(ctx, W1, W2, rho, S11, S22, S12, 0.0, d1, d2, 3), MMCL_OK);
    CU_ASSERT_TRUE(
        test_check_tensor("rho (population)", rho, rho_true, 3, 1e-10));

    /* Canonical directions: W1 e_j = A1^-T e_j, W2 e_j = A2^-T e_j (up to
     * the sign convention). A1^-T is computed by solving A1^T X = I. */
    double X1[d1 * d1] = {0}, X2[d2 * d2] = {0};
    double A1t[d1 * d1], A2t[d2 * d2];
    for (int i = 0; i < d1; i++)
        for (int j = 0; j < d1; j++)
            A1t[i * d1 + j] = m.A1[j * d1 + i];
    for (int i = 0; i < d2; i++)
        for (int j = 0; j < d2; j++)
            A2t[i * d2 + j] = m.A2[j * d2 + i];
    /* Invert with Gauss-Jordan (tiny, test-only reference). */
    for (int t = 0; t < 2; t++) {
        int n = t ? d2 : d1;
        double *A = t ? A2t : A1t, *X = t ? X2 : X1;
        for (int i = 0; i < n; i++)
            X[i * n + i] = 1.0;
        for (int c = 0; c < n; c++) {
            int piv = c;
            for (int r = c + 1; r < n; r++)
                if (fabs(A[r * n + c]) > fabs(A[piv * n + c]))
                    piv = r;
            for (int j = 0; j < n; j++) {
                double a = A[c * n + j], x = X[c * n + j];
                A[c * n + j] = A[piv * n + j];
                X[c * n + j] = X[piv * n + j];
                A[piv * n + j] = a;
                X[piv * n + j] = x;
            }
            double p = A[c * n + c];
            for (int j = 0; j < n; j++) {
                A[c * n + j] /= p;
                X[c * n + j] /= p;
            }
            for (int r = 0; r < n; r++) {
                if (r == c)
                    continue;
                double f = A[r * n + c];
                for (int j = 0; j < n; j++) {
                    A[r * n + j] -= f * A[c * n + j];
                    X[r * n + j] -= f * X[c * n + j];
                }
            }
        }
    }
    double E1[d1 * 3], E2[d2 * 3];
    for (int i = 0; i < d1; i++)
        for (int j = 0; j < 3; j++)
            E1[i * 3 + j] = X1[i * d1 + j];
    for (int i = 0; i < d2; i++)
        for (int j = 0; j < 3; j++)
            E2[i * 3 + j] = X2[i * d2 + j];
    mmcl__fix_column_signs(E1, E2, d1, d2, 3);
    CU_ASSERT_TRUE(test_check_tensor("W1 vs A1^-T e_j", W1, E1, d1 * 3, 1e-9));
    CU_ASSERT_TRUE(test_check_tensor("W2 vs A2^-T e_j", W2, E2, d2 * 3, 1e-9));
    mmcl_context_destroy(ctx);
}

static void
cca_recovers_population_canonical_correlations(void)
{
    static model m;
    make_model(&m);
    double S11[d1 * d1], S22[d2 * d2], S12[d1 * d2];
    sample_cov(S11, S22, S12, &m, 100000);

    double W1[d1 * K], W2[d2 * K], rho[K];
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(
        mmcl__cca(ctx, W1, W2, rho, S11, S22, S12, 0.0, d1, d2, K), MMCL_OK);
    printf("  sample rho: %.4f %.4f %.4f %.4f\n", rho[0], rho[1], rho[2],
           rho[3]);
    /* Sampling error of a canonical correlation ~ (1 - rho^2) / sqrt(N),
     * at most 0.003 here; the zero one is biased up by ~sqrt(3 / N). */
    CU_ASSERT_TRUE(test_check_tensor("rho (N = 100000) vs population", rho,
                                     rho_true, K, 0.01));
    for (int j = 1; j < K; j++)
        CU_ASSERT_TRUE(rho[j] <= rho[j - 1]);
    check_identities(W1, W2, rho, S11, S22, S12, 0.0, K, 1e-9);
    mmcl_context_destroy(ctx);
}

static void
cca_ridge_whitens_regularised_blocks_and_shrinks_correlations(void)
{
    static model m;
    make_model(&m);
    double S11[d1 * d1], S22[d2 * d2], S12[d1 * d2];
    population_cov(S11, S22, S12, &m);
    double W1[d1 * K], W2[d2 * K], rho[K];
    double eps = 0.5;
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(
        mmcl__cca(ctx, W1, W2, rho, S11, S22, S12, eps, d1, d2, K), MMCL_OK);
    check_identities(W1, W2, rho, S11, S22, S12, eps, K, 1e-10);
    for (int j = 0; j < 3; j++)
        CU_ASSERT_TRUE(rho[j] < rho_true[j] && rho[j] > 0.0);
    mmcl_context_destroy(ctx);
}

static void
cca_sign_convention_is_deterministic(void)
{
    static model m;
    make_model(&m);
    double S11[d1 * d1], S22[d2 * d2], S12[d1 * d2];
    population_cov(S11, S22, S12, &m);
    double W1[d1 * 2], W2[d2 * 2], rho[2];
    double W1b[d1 * 2], W2b[d2 * 2], rhob[2];
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(
        mmcl__cca(ctx, W1, W2, rho, S11, S22, S12, 1e-6, d1, d2, 2), MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(
        mmcl__cca(ctx, W1b, W2b, rhob, S11, S22, S12, 1e-6, d1, d2, 2),
        MMCL_OK);
    CU_ASSERT_EQUAL(memcmp(W1, W1b, sizeof(W1)), 0);
    CU_ASSERT_EQUAL(memcmp(W2, W2b, sizeof(W2)), 0);
    for (int j = 0; j < 2; j++) {
        double best = 0.0;
        for (int i = 0; i < d1; i++)
            if (fabs(W1[i * 2 + j]) > fabs(best))
                best = W1[i * 2 + j];
        CU_ASSERT_TRUE(best > 0.0);
        CU_ASSERT_TRUE(rho[j] > 0.0);
    }
    mmcl_context_destroy(ctx);
}

static void
cca_rejects_k_larger_than_smaller_dimension(void)
{
    double S11[d1 * d1] = {0}, S22[d2 * d2] = {0}, S12[d1 * d2] = {0};
    mmcl__add_diag(S11, 1.0, d1);
    mmcl__add_diag(S22, 1.0, d2);
    double W1[d1 * d1], W2[d2 * d1], rho[d1];
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL(
        mmcl__cca(ctx, W1, W2, rho, S11, S22, S12, 0.0, d1, d2, d2 + 1),
        MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "min(d1, d2)"));
    printf("  message: %s\n", mmcl_context_errmsg(ctx));
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(mmcl__cca(ctx, W1, W2, rho, S11, S22, S12, 0.0, d1, d2, 0),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(
        mmcl__cca(ctx, W1, W2, rho, S11, S22, S12, -1e-3, d1, d2, 1),
        MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl_context_destroy(ctx);
}

static void
cca_reports_covariance_that_is_not_positive_definite(void)
{
    /* S22 has rank 1 (a constant second channel) and no ridge. */
    double S11[d1 * d1] = {0}, S22[d2 * d2] = {0}, S12[d1 * d2] = {0};
    mmcl__add_diag(S11, 1.0, d1);
    S22[0] = 1.0;
    double W1[d1 * 2], W2[d2 * 2], rho[2] = {-1.0, -1.0};
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL(mmcl__cca(ctx, W1, W2, rho, S11, S22, S12, 0.0, d1, d2, 2),
                    MMCL_ERR_NUMERIC);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "S22"));
    printf("  message: %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL(rho[0], -1.0); /* outputs untouched on failure */

    /* The ridge makes the same problem solvable. */
    CU_ASSERT_EQUAL(mmcl__cca(ctx, W1, W2, rho, S11, S22, S12, 1e-3, d1, d2, 2),
                    MMCL_OK);
    mmcl_context_destroy(ctx);
}

int
main(void)
{
    static const test_case cases[] = {
        {"cca_matches_analytic_solution_on_population_covariance",
         cca_matches_analytic_solution_on_population_covariance},
        {"cca_recovers_population_canonical_correlations",
         cca_recovers_population_canonical_correlations},
        {"cca_ridge_whitens_regularised_blocks_and_shrinks_correlations",
         cca_ridge_whitens_regularised_blocks_and_shrinks_correlations},
        {"cca_sign_convention_is_deterministic",
         cca_sign_convention_is_deterministic},
        {"cca_rejects_k_larger_than_smaller_dimension",
         cca_rejects_k_larger_than_smaller_dimension},
        {"cca_reports_covariance_that_is_not_positive_definite",
         cca_reports_covariance_that_is_not_positive_definite},
        {NULL, NULL}};
    return test_run_suite("cca", cases);
}
