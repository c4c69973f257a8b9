/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/pca.c against a covariance built from a known
 * eigendecomposition S = Q diag(lambda) Q^T (Q orthonormalised in the
 * test by Gram-Schmidt, independent of LAPACK), plus error paths.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "linalg.h"
#include "pca.h"
#include "rng.h"
#include "test_util.h"

enum { d = 6 };
static const double lambda_true[d] = {5.0, 3.0, 2.0, 1.0, 0.5, 0.1};

/* Q (d, d) with orthonormal columns: modified Gram-Schmidt, twice. */
static void
random_orthogonal(double *Q, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < d * d; i++)
        Q[i] = mmcl__rng_normal(&s);
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < d; j++) {
            for (int p = 0; p < j; p++) {
                double dot = 0.0;
                for (int i = 0; i < d; i++)
                    dot += Q[i * d + p] * Q[i * d + j];
                for (int i = 0; i < d; i++)
                    Q[i * d + j] -= dot * Q[i * d + p];
            }
            double nrm = 0.0;
            for (int i = 0; i < d; i++)
                nrm += Q[i * d + j] * Q[i * d + j];
            nrm = sqrt(nrm);
            for (int i = 0; i < d; i++)
                Q[i * d + j] /= nrm;
        }
}

/* S = Q diag(lam) Q^T */
static void
compose(double *S, const double *Q, const double *lam)
{
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0.0;
            for (int k = 0; k < d; k++)
                s += Q[i * d + k] * lam[k] * Q[j * d + k];
            S[i * d + j] = s;
        }
}

static void
pca_recovers_known_eigendecomposition(void)
{
    enum { k = 3 };
    double Q[d * d], S[d * d], S_copy[d * d];
    random_orthogonal(Q, 1);
    compose(S, Q, lambda_true);
    memcpy(S_copy, S, sizeof(S));

    double V[d * k], lam[k];
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(mmcl__pca(ctx, V, lam, S, d, k), MMCL_OK);
    CU_ASSERT_TRUE(test_check_tensor("eigenvalues (descending)", lam,
                                     lambda_true, k, 1e-12));
    /* Expected vectors: the first k columns of Q under the same sign
     * convention. */
    double E[d * k];
    for (int i = 0; i < d; i++)
        for (int j = 0; j < k; j++)
            E[i * k + j] = Q[i * d + j];
    mmcl__fix_column_signs(E, NULL, d, 0, k);
    CU_ASSERT_TRUE(test_check_tensor("eigenvectors", V, E, d * k, 1e-12));
    CU_ASSERT_EQUAL(memcmp(S, S_copy, sizeof(S)), 0); /* input untouched */

    /* All components: the full spectrum, descending. */
    double Vd[d * d], lamd[d];
    CU_ASSERT_EQUAL_FATAL(mmcl__pca(ctx, Vd, lamd, S, d, d), MMCL_OK);
    CU_ASSERT_TRUE(
        test_check_tensor("full spectrum", lamd, lambda_true, d, 1e-12));
    mmcl_context_destroy(ctx);
}

static void
pca_gives_orthonormal_components_for_a_repeated_eigenvalue(void)
{
    /* lambda = 4, 4, 1, ...: the top-2 eigenspace is a plane; any basis of
     * it is right, so check S V = V diag(lam) and V^T V = I instead. */
    static const double lam_rep[d] = {4.0, 4.0, 1.0, 0.5, 0.25, 0.125};
    enum { k = 2 };
    double Q[d * d], S[d * d], V[d * k], lam[k];
    random_orthogonal(Q, 2);
    compose(S, Q, lam_rep);
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(mmcl__pca(ctx, V, lam, S, d, k), MMCL_OK);
    CU_ASSERT_TRUE(test_check_tensor("eigenvalues", lam, lam_rep, k, 1e-12));
    double SV[d * k], VL[d * k], VtV[k * k], eye[k * k] = {1, 0, 0, 1};
    for (int i = 0; i < d; i++)
        for (int j = 0; j < k; j++) {
            double s = 0.0;
            for (int l = 0; l < d; l++)
                s += S[i * d + l] * V[l * k + j];
            SV[i * k + j] = s;
            VL[i * k + j] = V[i * k + j] * lam[j];
        }
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            double s = 0.0;
            for (int i = 0; i < d; i++)
                s += V[i * k + a] * V[i * k + b];
            VtV[a * k + b] = s;
        }
    CU_ASSERT_TRUE(
        test_check_tensor("S V vs V diag(lambda)", SV, VL, d * k, 1e-12));
    CU_ASSERT_TRUE(test_check_tensor("V^T V vs I", VtV, eye, k * k, 1e-12));
    mmcl_context_destroy(ctx);
}

static void
pca_makes_largest_entry_of_each_component_positive(void)
{
    enum { k = 4 };
    double Q[d * d], S[d * d], V[d * k], lam[k];
    random_orthogonal(Q, 3);
    compose(S, Q, lambda_true);
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(mmcl__pca(ctx, V, lam, S, d, k), MMCL_OK);
    for (int j = 0; j < k; j++) {
        double best = 0.0;
        for (int i = 0; i < d; i++)
            if (fabs(V[i * k + j]) > fabs(best))
                best = V[i * k + j];
        CU_ASSERT_TRUE(best > 0.0);
    }
    mmcl_context_destroy(ctx);
}

static void
pca_rejects_bad_k_and_non_finite_covariance(void)
{
    double S[d * d] = {0}, V[d * (d + 1)], lam[d + 1];
    mmcl__add_diag(S, 1.0, d);
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL(mmcl__pca(ctx, V, lam, S, d, d + 1), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    printf("  message: %s\n", mmcl_context_errmsg(ctx));
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(mmcl__pca(ctx, V, lam, S, d, 0), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__error_clear(ctx);
    S[7] = NAN;
    CU_ASSERT_EQUAL(mmcl__pca(ctx, V, lam, S, d, 2), MMCL_ERR_NUMERIC);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    printf("  message: %s\n", mmcl_context_errmsg(ctx));
    mmcl_context_destroy(ctx);
}

int
main(void)
{
    static const test_case cases[] = {
        {"pca_recovers_known_eigendecomposition",
         pca_recovers_known_eigendecomposition},
        {"pca_gives_orthonormal_components_for_a_repeated_eigenvalue",
         pca_gives_orthonormal_components_for_a_repeated_eigenvalue},
        {"pca_makes_largest_entry_of_each_component_positive",
         pca_makes_largest_entry_of_each_component_positive},
        {"pca_rejects_bad_k_and_non_finite_covariance",
         pca_rejects_bad_k_and_non_finite_covariance},
        {NULL, NULL}};
    return test_run_suite("pca", cases);
}
