/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/ridge.c: hand-computed closed forms, exact recovery
 * of a linear map with intercept, the conversion to a linear layer, and
 * error paths.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "linalg.h"
#include "nn.h"
#include "ridge.h"
#include "rng.h"
#include "test_util.h"

static void
ridge_solve_matches_hand_computed_2x2(void)
{
    /* (XtX + I) = [[3, 1], [1, 4]], inverse [[4, -1], [-1, 3]] / 11. */
    double XtX[4] = {2.0, 1.0, 1.0, 3.0};
    double XtY[4] = {1.0, 0.0, 2.0, 1.0}; /* (p = 2, q = 2) */
    double B_ref[4] = {2.0 / 11, -1.0 / 11, 5.0 / 11, 3.0 / 11};
    double B[4];
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(mmcl__ridge_solve(ctx, B, XtX, XtY, 1.0, 2, 2),
                          MMCL_OK);
    CU_ASSERT_TRUE(test_check_tensor("B", B, B_ref, 4, 1e-15));
    mmcl_context_destroy(ctx);
}

static void
ridge_fit_with_intercept_matches_hand_computed_line(void)
{
    /* x = 0 1 2 3, y = 1 2 2 4: mean x 1.5, mean y 2.25, var x 1.25,
     * cov xy 1.125. lambda 0: slope 0.9, intercept 0.9 (least squares);
     * lambda 0.25: slope 1.125 / 1.5 = 0.75, intercept 2.25 - 1.125. */
    enum { N = 4 };
    float x[N] = {0, 1, 2, 3}, y[N] = {1, 2, 2, 4};
    double Sxx = 0, Syy = 0, Sxy = 0, sx = 0, sy = 0, work[16];
    CU_ASSERT_FATAL(mmcl__moments_work_size(N, 1, 1) <= 16);
    mmcl__moments_accumulate(&Sxx, &Syy, &Sxy, &sx, &sy, work, x, y, N, 1, 1);
    double Cxx, Cxy, mx = sx / N, my = sy / N;
    mmcl__cov_from_moments(&Cxx, &Sxx, &sx, &sx, N, 1, 1);
    mmcl__cov_from_moments(&Cxy, &Sxy, &sx, &sy, N, 1, 1);
    CU_ASSERT_DOUBLE_EQUAL(Cxx, 1.25, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(Cxy, 1.125, 1e-15);

    double B, b0;
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(
        mmcl__ridge_fit_centred(ctx, &B, &b0, &Cxx, &Cxy, &mx, &my, 0.0, 1, 1),
        MMCL_OK);
    CU_ASSERT_DOUBLE_EQUAL(B, 0.9, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(b0, 0.9, 1e-15);
    CU_ASSERT_EQUAL_FATAL(
        mmcl__ridge_fit_centred(ctx, &B, &b0, &Cxx, &Cxy, &mx, &my, 0.25, 1, 1),
        MMCL_OK);
    CU_ASSERT_DOUBLE_EQUAL(B, 0.75, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(b0, 1.125, 1e-15);
    mmcl_context_destroy(ctx);
}

static void
ridge_recovers_exact_multi_output_map_and_converts_to_linear_layer(void)
{
    enum { N = 200, p = 3, q = 2 };
    static const double B_true[p * q] = {1.0, -2.0, 0.5, 0.0, -1.5, 3.0};
    static const double b0_true[q] = {4.0, -0.25};
    static float X[N * p], Y[N * q];
    uint64_t s = 5;
    for (int n = 0; n < N; n++) {
        double x[p];
        for (int i = 0; i < p; i++) {
            /* Values on a 1/64 grid: X and Y are exact in float. The
             * moments take float products of centred values (2^-23
             * relative), so the fit is exact to ~1e-7. */
            x[i] = (double)(int)(64.0 * mmcl__rng_normal(&s)) / 64.0;
            X[n * p + i] = (float)x[i];
        }
        for (int o = 0; o < q; o++) {
            double v = b0_true[o];
            for (int i = 0; i < p; i++)
                v += x[i] * B_true[i * q + o];
            Y[n * q + o] = (float)v;
        }
    }
    double Sxx[p * p] = {0}, Syy[q * q] = {0}, Sxy[p * q] = {0};
    double sx[p] = {0}, sy[q] = {0}, work[N * (p + q)]; /* >= work size */
    mmcl__moments_accumulate(Sxx, Syy, Sxy, sx, sy, work, X, Y, N, p, q);
    double mx[p], my[q];
    for (int i = 0; i < p; i++)
        mx[i] = sx[i] / N;
    for (int o = 0; o < q; o++)
        my[o] = sy[o] / N;
    mmcl__cov_from_moments(Sxx, Sxx, sx, sx, N, p, p);
    mmcl__cov_from_moments(Sxy, Sxy, sx, sy, N, p, q);

    double B[p * q], b0[q];
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(
        mmcl__ridge_fit_centred(ctx, B, b0, Sxx, Sxy, mx, my, 0.0, p, q),
        MMCL_OK);
    CU_ASSERT_TRUE(test_check_tensor("B", B, B_true, p * q, 2e-6));
    CU_ASSERT_TRUE(test_check_tensor("b0", b0, b0_true, q, 2e-6));

    /* As a float linear layer: predictions equal Y. */
    float W[q * p], b[q], Yhat[N * q];
    mmcl__ridge_to_linear(W, b, B, b0, p, q);
    mmcl__linear_forward(Yhat, X, W, b, N, p, q);
    CU_ASSERT_TRUE(
        test_check_tensor_f("linear layer predictions", Yhat, Y, N * q, 1e-4));
    mmcl_context_destroy(ctx);
}

static void
ridge_reports_collinear_inputs_without_regularisation(void)
{
    double XtX[4] = {1.0, 1.0, 1.0, 1.0}, XtY[2] = {1.0, 1.0};
    double B[2] = {-7.0, -7.0};
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL(mmcl__ridge_solve(ctx, B, XtX, XtY, 0.0, 2, 1),
                    MMCL_ERR_NUMERIC);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    printf("  message: %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL(B[0], -7.0); /* untouched on failure */

    /* The ridge makes it solvable: B = [1, 1] / (2 + lambda). */
    CU_ASSERT_EQUAL_FATAL(mmcl__ridge_solve(ctx, B, XtX, XtY, 0.5, 2, 1),
                          MMCL_OK);
    CU_ASSERT_DOUBLE_EQUAL(B[0], 0.4, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(B[1], 0.4, 1e-15);

    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(mmcl__ridge_solve(ctx, B, XtX, XtY, -1.0, 2, 1),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(mmcl__ridge_solve(ctx, B, XtX, XtY, 1.0, 0, 1),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__error_clear(ctx);
    XtY[1] = NAN;
    CU_ASSERT_EQUAL(mmcl__ridge_solve(ctx, B, XtX, XtY, 1.0, 2, 1),
                    MMCL_ERR_NUMERIC);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl_context_destroy(ctx);
}

int
main(void)
{
    static const test_case cases[] = {
        {"ridge_solve_matches_hand_computed_2x2",
         ridge_solve_matches_hand_computed_2x2},
        {"ridge_fit_with_intercept_matches_hand_computed_line",
         ridge_fit_with_intercept_matches_hand_computed_line},
        {"ridge_recovers_exact_multi_output_map_and_converts_to_linear_layer",
         ridge_recovers_exact_multi_output_map_and_converts_to_linear_layer},
        {"ridge_reports_collinear_inputs_without_regularisation",
         ridge_reports_collinear_inputs_without_regularisation},
        {NULL, NULL}};
    return test_run_suite("ridge", cases);
}
