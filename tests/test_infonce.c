/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/infonce.c: the closed-form value log(N) for
 * identical embeddings, agreement with a plain-loop double reference,
 * central finite differences for dz1, dz2 (fixed temperature) and for
 * d(log_tau) (learned temperature), the composition with L2
 * normalisation, stability at tiny temperatures, and error paths.
 * Gradient tolerance: max |analytic - numeric| <= GRAD_RTOL * max
 * |numeric| (float32 kernel against a double reference).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "infonce.h"
#include "nn.h"
#include "rng.h"
#include "test_util.h"

#define GRAD_RTOL 1e-4
#define FD_STEP 1e-6

enum { N = 6, D = 4 };

/* Reference loss in double: theta = [z1 (N, D) | z2 (N, D) | log_tau]. */
static double
ref_loss(const double *theta)
{
    const double *z1 = theta, *z2 = theta + N * D;
    double tau = exp(theta[2 * N * D]);
    double l[N][N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < D; k++)
                s += z1[i * D + k] * z2[j * D + k];
            l[i][j] = s / tau;
        }
    double loss = 0.0;
    for (int i = 0; i < N; i++) {
        double mr = -INFINITY, mc = -INFINITY, sr = 0.0, sc = 0.0;
        for (int j = 0; j < N; j++) {
            mr = fmax(mr, l[i][j]);
            mc = fmax(mc, l[j][i]);
        }
        for (int j = 0; j < N; j++) {
            sr += exp(l[i][j] - mr);
            sc += exp(l[j][i] - mc);
        }
        loss += (mr + log(sr) - l[i][i]) + (mc + log(sc) - l[i][i]);
    }
    return 0.5 * loss / N;
}

/* L2-normalised random rows, with positives correlated with anchors. */
static void
make_pairs(float *z1, float *z2, uint64_t seed)
{
    uint64_t s = seed;
    float r[N];
    mmcl__rng_fill_normal(&s, z1, 0.0, 1.0, N * D);
    mmcl__rng_fill_normal(&s, z2, 0.0, 0.5, N * D);
    for (int i = 0; i < N * D; i++)
        z2[i] += z1[i];
    mmcl__l2norm_forward(z1, r, z1, 1e-6f, N, D);
    mmcl__l2norm_forward(z2, r, z2, 1e-6f, N, D);
}

static int
check_grad(const char *what, const float *analytic, const double *numeric,
           size_t n)
{
    double scale = 0.0, a[2 * N * D];
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(numeric[i]));
        a[i] = analytic[i];
    }
    return test_check_tensor(what, a, numeric, n,
                             GRAD_RTOL * fmax(scale, 1e-12));
}

static void
infonce_loss_is_log_n_for_identical_embeddings(void)
{
    /* All pairs equally similar -> uniform softmax -> loss = log(N). */
    float z1[N * D], z2[N * D], logits[N * N], lse[2 * N];
    for (int i = 0; i < N * D; i++)
        z1[i] = z2[i] = 0.5f;
    double loss = -1.0;
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(
        mmcl__infonce_forward(ctx, &loss, logits, lse, z1, z2, 0.1f, N, D),
        MMCL_OK);
    CU_ASSERT_DOUBLE_EQUAL(loss, log((double)N), 1e-6);

    /* ... and the gradient vanishes (every direction is symmetric). */
    float dz1[N * D] = {0}, dz2[N * D] = {0}, dlt = 0.0f, dlogits[N * N];
    mmcl__infonce_backward(dz1, dz2, &dlt, dlogits, logits, lse, z1, z2, 0.1f,
                           N, D);
    float zero[N * D] = {0};
    CU_ASSERT_TRUE(test_check_tensor_f("dz1", dz1, zero, N * D, 1e-5));
    CU_ASSERT_TRUE(test_check_tensor_f("dz2", dz2, zero, N * D, 1e-5));
    CU_ASSERT_DOUBLE_EQUAL(dlt, 0.0, 1e-5);
    mmcl_context_destroy(ctx);
}

static void
infonce_loss_matches_double_reference(void)
{
    float z1[N * D], z2[N * D], logits[N * N], lse[2 * N];
    make_pairs(z1, z2, 1);
    double theta[2 * N * D + 1];
    for (int i = 0; i < N * D; i++) {
        theta[i] = z1[i];
        theta[N * D + i] = z2[i];
    }
    mmcl_context *ctx = mmcl_context_create();
    static const float taus[] = {1.0f, 0.07f, 0.01f};
    for (int t = 0; t < 3; t++) {
        double loss;
        CU_ASSERT_EQUAL_FATAL(mmcl__infonce_forward(ctx, &loss, logits, lse, z1,
                                                    z2, taus[t], N, D),
                              MMCL_OK);
        theta[2 * N * D] = log((double)taus[t]);
        double ref = ref_loss(theta);
        printf("  tau %.2f: loss %.7f reference %.7f\n", taus[t], loss, ref);
        /* Logits of up to 1 / tau = 100 carry float rounding ~1e-5. */
        CU_ASSERT_DOUBLE_EQUAL(loss, ref, 1e-4 * fmax(1.0, fabs(ref)));
    }
    mmcl_context_destroy(ctx);
}

/* Runs forward + backward; gradients into grad = [dz1 | dz2 | dlog_tau]. */
static void
analytic_grads(float *grad, const float *z1, const float *z2, float tau,
               int learned)
{
    float logits[N * N], lse[2 * N], dlogits[N * N];
    double loss;
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(
        mmcl__infonce_forward(ctx, &loss, logits, lse, z1, z2, tau, N, D),
        MMCL_OK);
    memset(grad, 0, sizeof(float) * (2 * N * D + 1));
    mmcl__infonce_backward(grad, grad + N * D,
                           learned ? grad + 2 * N * D : NULL, dlogits, logits,
                           lse, z1, z2, tau, N, D);
    mmcl_context_destroy(ctx);
}

static void
numeric_grads(double *numeric, const float *z1, const float *z2, float tau)
{
    double theta[2 * N * D + 1];
    for (int i = 0; i < N * D; i++) {
        theta[i] = z1[i];
        theta[N * D + i] = z2[i];
    }
    theta[2 * N * D] = log((double)tau);
    for (int i = 0; i < 2 * N * D + 1; i++) {
        double keep = theta[i];
        theta[i] = keep + FD_STEP;
        double up = ref_loss(theta);
        theta[i] = keep - FD_STEP;
        double down = ref_loss(theta);
        theta[i] = keep;
        numeric[i] = (up - down) / (2.0 * FD_STEP);
    }
}

static void
infonce_backward_matches_finite_differences_with_fixed_temperature(void)
{
    float z1[N * D], z2[N * D], grad[2 * N * D + 1];
    double numeric[2 * N * D + 1];
    make_pairs(z1, z2, 2);
    static const float taus[] = {0.5f, 0.07f};
    for (int t = 0; t < 2; t++) {
        analytic_grads(grad, z1, z2, taus[t], 0);
        numeric_grads(numeric, z1, z2, taus[t]);
        printf("  tau = %.2f\n", taus[t]);
        CU_ASSERT_TRUE(check_grad("dz1", grad, numeric, N * D));
        CU_ASSERT_TRUE(check_grad("dz2", grad + N * D, numeric + N * D, N * D));
        CU_ASSERT_EQUAL(grad[2 * N * D], 0.0f); /* NULL: not touched */
    }
}

static void
infonce_backward_matches_finite_differences_with_learned_temperature(void)
{
    float z1[N * D], z2[N * D], grad[2 * N * D + 1];
    double numeric[2 * N * D + 1];
    make_pairs(z1, z2, 3);
    static const float taus[] = {1.0f, 0.1f};
    for (int t = 0; t < 2; t++) {
        analytic_grads(grad, z1, z2, taus[t], 1);
        numeric_grads(numeric, z1, z2, taus[t]);
        double a = grad[2 * N * D], b = numeric[2 * N * D];
        printf("  tau = %.2f: dlog_tau %.7f numeric %.7f\n", taus[t], a, b);
        CU_ASSERT_DOUBLE_EQUAL(a, b, GRAD_RTOL * fmax(fabs(b), 1e-3));
        CU_ASSERT_TRUE(check_grad("dz1", grad, numeric, N * D));
        CU_ASSERT_TRUE(check_grad("dz2", grad + N * D, numeric + N * D, N * D));
    }
    /* Accumulation: a second backward adds the same amount. */
    float logits[N * N], lse[2 * N], dlogits[N * N], dz[N * D] = {0},
                                                            dlt = 1.0f;
    double loss;
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(
        mmcl__infonce_forward(ctx, &loss, logits, lse, z1, z2, 0.1f, N, D),
        MMCL_OK);
    mmcl__infonce_backward(dz, dz, &dlt, dlogits, logits, lse, z1, z2, 0.1f, N,
                           D);
    CU_ASSERT_DOUBLE_EQUAL(dlt, 1.0 + grad[2 * N * D],
                           1e-5 * fabs(grad[2 * N * D]) + 1e-6);
    mmcl_context_destroy(ctx);
}

static void
infonce_composed_with_l2norm_matches_finite_differences(void)
{
    /* The training graph: raw h -> l2norm -> z -> InfoNCE, so the
     * gradient reaching the encoders is checked end to end. */
    enum { NT = 2 * N * D };
    float h[NT], z[NT], r[2 * N], grad_z[NT + 1], grad_h[NT] = {0};
    uint64_t s = 4;
    mmcl__rng_fill_normal(&s, h, 0.0, 2.0, NT);
    mmcl__l2norm_forward(z, r, h, 1e-6f, 2 * N, D);
    analytic_grads(grad_z, z, z + N * D, 0.2f, 0);
    mmcl__l2norm_backward(grad_h, grad_z, z, r, 2 * N, D);

    double theta[NT + 1], numeric[NT];
    for (int i = 0; i < NT; i++) {
        double keep = h[i];
        for (int sign = -1; sign <= 1; sign += 2) {
            /* Normalise h with h[i] moved, in double. */
            for (int j = 0; j < NT; j++)
                theta[j] = h[j];
            theta[i] = keep + sign * FD_STEP;
            for (int row = 0; row < 2 * N; row++) {
                double ss = 1e-12;
                for (int k = 0; k < D; k++)
                    ss += theta[row * D + k] * theta[row * D + k];
                for (int k = 0; k < D; k++)
                    theta[row * D + k] /= sqrt(ss);
            }
            theta[NT] = log(0.2);
            double v = ref_loss(theta);
            numeric[i] = sign < 0 ? -v : numeric[i] + v;
        }
        numeric[i] /= 2.0 * FD_STEP;
    }
    CU_ASSERT_TRUE(check_grad("d h through l2norm", grad_h, numeric, NT));
}

static void
infonce_is_finite_for_tiny_temperature(void)
{
    /* logits up to 1 / tau = 1000: exp() overflows float and double
     * without the max subtraction. */
    float z1[N * D], z2[N * D], logits[N * N], lse[2 * N], dlogits[N * N];
    float dz1[N * D] = {0}, dz2[N * D] = {0}, dlt = 0.0f;
    make_pairs(z1, z2, 5);
    double loss;
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL_FATAL(
        mmcl__infonce_forward(ctx, &loss, logits, lse, z1, z2, 1e-3f, N, D),
        MMCL_OK);
    CU_ASSERT_TRUE(isfinite(loss) && loss >= 0.0);
    mmcl__infonce_backward(dz1, dz2, &dlt, dlogits, logits, lse, z1, z2, 1e-3f,
                           N, D);
    int finite = isfinite(dlt);
    for (int i = 0; i < N * D; i++)
        finite &= isfinite(dz1[i]) && isfinite(dz2[i]);
    CU_ASSERT_TRUE(finite);
    mmcl_context_destroy(ctx);
}

static void
infonce_rejects_bad_temperature_and_non_finite_input(void)
{
    float z1[N * D], z2[N * D], logits[N * N], lse[2 * N];
    make_pairs(z1, z2, 6);
    double loss = 123.0;
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL(
        mmcl__infonce_forward(ctx, &loss, logits, lse, z1, z2, 0.0f, N, D),
        MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    printf("  message: %s\n", mmcl_context_errmsg(ctx));
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(
        mmcl__infonce_forward(ctx, &loss, logits, lse, z1, z2, NAN, N, D),
        MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(
        mmcl__infonce_forward(ctx, &loss, logits, lse, z1, z2, 0.1f, 0, D),
        MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__error_clear(ctx);
    z1[3] = NAN;
    CU_ASSERT_EQUAL(
        mmcl__infonce_forward(ctx, &loss, logits, lse, z1, z2, 0.1f, N, D),
        MMCL_ERR_NUMERIC);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    printf("  message: %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL(loss, 123.0); /* not written on failure */
    mmcl_context_destroy(ctx);
}

int
main(void)
{
    static const test_case cases[] = {
        {"infonce_loss_is_log_n_for_identical_embeddings",
         infonce_loss_is_log_n_for_identical_embeddings},
        {"infonce_loss_matches_double_reference",
         infonce_loss_matches_double_reference},
        {"infonce_backward_matches_finite_differences_with_fixed_temperature",
         infonce_backward_matches_finite_differences_with_fixed_temperature},
        {"infonce_backward_matches_finite_differences_with_learned_"
         "temperature",
         infonce_backward_matches_finite_differences_with_learned_temperature},
        {"infonce_composed_with_l2norm_matches_finite_differences",
         infonce_composed_with_l2norm_matches_finite_differences},
        {"infonce_is_finite_for_tiny_temperature",
         infonce_is_finite_for_tiny_temperature},
        {"infonce_rejects_bad_temperature_and_non_finite_input",
         infonce_rejects_bad_temperature_and_non_finite_input},
        {NULL, NULL}};
    return test_run_suite("infonce", cases);
}
