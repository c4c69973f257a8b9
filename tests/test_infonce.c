/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/infonce.c: the closed-form value log(N) for
 * identical embeddings, agreement with a plain-loop double reference,
 * central finite differences for dz1, dz2 (fixed temperature) and for
 * d(log_tau) (learned temperature), the composition with L2
 * normalisation, stability at tiny temperatures, and error paths; both
 * the fast (fixed-shift) and the exact path, the guard that chooses
 * between them, and the polynomial exp of fastexp.h against libm.
 * Gradient tolerance: max |analytic - numeric| <= GRAD_RTOL * max
 * |numeric| (float32 kernel against a double reference).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "fastexp.h"
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

/* The double reference loss of the pairs (z1, z2) at temperature tau. */
static double
reference_loss(const float *z1, const float *z2, float tau)
{
    double theta[2 * N * D + 1];
    for (int i = 0; i < N * D; i++) {
        theta[i] = z1[i];
        theta[N * D + i] = z2[i];
    }
    theta[2 * N * D] = log((double)tau);
    return ref_loss(theta);
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
    float z1[N * D], z2[N * D];
    for (int i = 0; i < N * D; i++)
        z1[i] = z2[i] = 0.5f;
    double loss = -1.0;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_infonce *nce = mmcl__infonce_create(ctx, N, D);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nce);
    CU_ASSERT_EQUAL_FATAL(
        mmcl__infonce_forward(ctx, &loss, nce, z1, z2, 0.1f, N), MMCL_OK);
    CU_ASSERT_DOUBLE_EQUAL(loss, log((double)N), 1e-6);

    /* ... and the gradient vanishes (every direction is symmetric). */
    float dz1[N * D] = {0}, dz2[N * D] = {0}, dlt = 0.0f;
    mmcl__infonce_backward(dz1, dz2, &dlt, nce, z1, z2);
    float zero[N * D] = {0};
    CU_ASSERT_TRUE(test_check_tensor_f("dz1", dz1, zero, N * D, 1e-5));
    CU_ASSERT_TRUE(test_check_tensor_f("dz2", dz2, zero, N * D, 1e-5));
    CU_ASSERT_DOUBLE_EQUAL(dlt, 0.0, 1e-5);
    mmcl__infonce_destroy(nce);
    mmcl_context_destroy(ctx);
}

static void
infonce_loss_matches_double_reference(void)
{
    float z1[N * D], z2[N * D];
    make_pairs(z1, z2, 1);
    mmcl_context *ctx = mmcl_context_create();
    mmcl_infonce *nce = mmcl__infonce_create(ctx, N, D);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nce);
    static const float taus[] = {1.0f, 0.07f, 0.01f};
    for (int t = 0; t < 3; t++) {
        double loss;
        CU_ASSERT_EQUAL_FATAL(
            mmcl__infonce_forward(ctx, &loss, nce, z1, z2, taus[t], N),
            MMCL_OK);
        double ref = reference_loss(z1, z2, taus[t]);
        printf("  tau %.2f: loss %.7f reference %.7f\n", taus[t], loss, ref);
        /* Logits of up to 1 / tau = 100 carry float rounding ~1e-5. */
        CU_ASSERT_DOUBLE_EQUAL(loss, ref, 1e-4 * fmax(1.0, fabs(ref)));
    }
    mmcl__infonce_destroy(nce);
    mmcl_context_destroy(ctx);
}

/* Runs forward + backward; gradients into grad = [dz1 | dz2 | dlog_tau].
 * @p exact forces the exact path; returns the path taken (1: fast). */
static int
analytic_grads_path(float *grad, const float *z1, const float *z2, float tau,
                    int learned, int exact)
{
    double loss;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_infonce *nce = mmcl__infonce_create(ctx, N, D);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nce);
    nce->force_exact = exact;
    CU_ASSERT_EQUAL_FATAL(
        mmcl__infonce_forward(ctx, &loss, nce, z1, z2, tau, N), MMCL_OK);
    memset(grad, 0, sizeof(float) * (2 * N * D + 1));
    mmcl__infonce_backward(grad, grad + N * D,
                           learned ? grad + 2 * N * D : NULL, nce, z1, z2);
    int fast = nce->fast;
    mmcl__infonce_destroy(nce);
    mmcl_context_destroy(ctx);
    return fast;
}

static void
analytic_grads(float *grad, const float *z1, const float *z2, float tau,
               int learned)
{
    analytic_grads_path(grad, z1, z2, tau, learned, 0);
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
    for (int k = 0; k < 4; k++) {
        int t = k / 2, exact = k % 2;
        int fast = analytic_grads_path(grad, z1, z2, taus[t], 0, exact);
        CU_ASSERT_EQUAL(fast, !exact); /* unit rows, c = 1 / tau <= 40 */
        numeric_grads(numeric, z1, z2, taus[t]);
        printf("  tau = %.2f, %s path\n", taus[t], fast ? "fast" : "exact");
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
    for (int k = 0; k < 4; k++) {
        int t = k / 2, exact = k % 2;
        int fast = analytic_grads_path(grad, z1, z2, taus[t], 1, exact);
        CU_ASSERT_EQUAL(fast, !exact);
        numeric_grads(numeric, z1, z2, taus[t]);
        double a = grad[2 * N * D], b = numeric[2 * N * D];
        printf("  tau = %.2f, %s path: dlog_tau %.7f numeric %.7f\n", taus[t],
               fast ? "fast" : "exact", a, b);
        CU_ASSERT_DOUBLE_EQUAL(a, b, GRAD_RTOL * fmax(fabs(b), 1e-3));
        CU_ASSERT_TRUE(check_grad("dz1", grad, numeric, N * D));
        CU_ASSERT_TRUE(check_grad("dz2", grad + N * D, numeric + N * D, N * D));
    }
    /* Accumulation: a second backward adds the same amount. */
    float dz[N * D] = {0}, dlt = 1.0f;
    double loss;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_infonce *nce = mmcl__infonce_create(ctx, N, D);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nce);
    CU_ASSERT_EQUAL_FATAL(
        mmcl__infonce_forward(ctx, &loss, nce, z1, z2, 0.1f, N), MMCL_OK);
    mmcl__infonce_backward(dz, dz, &dlt, nce, z1, z2);
    CU_ASSERT_DOUBLE_EQUAL(dlt, 1.0 + grad[2 * N * D],
                           1e-5 * fabs(grad[2 * N * D]) + 1e-6);
    mmcl__infonce_destroy(nce);
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
    float z1[N * D], z2[N * D];
    float dz1[N * D] = {0}, dz2[N * D] = {0}, dlt = 0.0f;
    make_pairs(z1, z2, 5);
    double loss;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_infonce *nce = mmcl__infonce_create(ctx, N, D);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nce);
    CU_ASSERT_EQUAL_FATAL(
        mmcl__infonce_forward(ctx, &loss, nce, z1, z2, 1e-3f, N), MMCL_OK);
    CU_ASSERT_TRUE(isfinite(loss) && loss >= 0.0);
    mmcl__infonce_backward(dz1, dz2, &dlt, nce, z1, z2);
    int finite = isfinite(dlt);
    for (int i = 0; i < N * D; i++)
        finite &= isfinite(dz1[i]) && isfinite(dz2[i]);
    CU_ASSERT_TRUE(finite);
    mmcl__infonce_destroy(nce);
    mmcl_context_destroy(ctx);
}

static void
infonce_rejects_bad_temperature_and_non_finite_input(void)
{
    float z1[N * D], z2[N * D];
    make_pairs(z1, z2, 6);
    double loss = 123.0;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_infonce *nce = mmcl__infonce_create(ctx, N, D);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nce);
    CU_ASSERT_EQUAL(mmcl__infonce_forward(ctx, &loss, nce, z1, z2, 0.0f, N),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    printf("  message: %s\n", mmcl_context_errmsg(ctx));
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(mmcl__infonce_forward(ctx, &loss, nce, z1, z2, NAN, N),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(mmcl__infonce_forward(ctx, &loss, nce, z1, z2, 0.1f, 0),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__error_clear(ctx);
    z1[3] = NAN;
    CU_ASSERT_EQUAL(mmcl__infonce_forward(ctx, &loss, nce, z1, z2, 0.1f, N),
                    MMCL_ERR_NUMERIC);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    printf("  message: %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL(loss, 123.0); /* not written on failure */
    mmcl__infonce_destroy(nce);
    mmcl_context_destroy(ctx);
}

static void
fastexp_matches_libm_exp_within_two_ulp(void)
{
    /* Every 97th float of [-87, 88] (~1.3e7 values; all of them take a
     * minute) plus the ends: max relative error against double exp(). */
    double worst = 0.0;
    float at = 0.0f;
    static const float ends[2] = {-87.0f, 88.0f};
    for (int side = 0; side < 2; side++) {
        uint32_t end;
        memcpy(&end, &ends[side], sizeof(end));
        /* Bit patterns from +-0 to the end (for negative floats the
         * magnitude grows with the pattern too), and the end itself. */
        uint64_t start = side == 0 ? 0x80000000u : 0u;
        for (uint64_t bits = start; bits <= (uint64_t)end + 96; bits += 97) {
            uint32_t u = bits > end ? end : (uint32_t)bits;
            float x;
            memcpy(&x, &u, sizeof(x));
            double ref = exp((double)x);
            double err = fabs((double)mmcl__fastexpf(x) - ref) / ref;
            if (err > worst) {
                worst = err;
                at = x;
            }
        }
    }
    printf("  max relative error %.3g (%.2f x 2^-23) at x = %.9g\n", worst,
           worst / 0x1p-23, (double)at);
    CU_ASSERT_TRUE(worst <= 2.0 * 0x1p-23);
    CU_ASSERT_EQUAL(mmcl__fastexpf(0.0f), 1.0f);
    /* Outside the domain it clamps to exp(-87) / exp(88), never 0 or Inf. */
    CU_ASSERT_DOUBLE_EQUAL(mmcl__fastexpf(-1000.0f), exp(-87.0),
                           1e-6 * exp(-87.0));
    CU_ASSERT_DOUBLE_EQUAL(mmcl__fastexpf(1000.0f), exp(88.0),
                           1e-6 * exp(88.0));
}

/* Forward + backward of (NB, DB) inputs on one path; grads = [dz1 | dz2 |
 * dlog_tau]; returns the path taken (1: fast). */
static int
run_path(double *loss, float *grads, const float *z1, const float *z2,
         float tau, int NB, int DB, int exact)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_infonce *nce = mmcl__infonce_create(ctx, NB, DB);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nce);
    nce->force_exact = exact;
    CU_ASSERT_EQUAL_FATAL(
        mmcl__infonce_forward(ctx, loss, nce, z1, z2, tau, NB), MMCL_OK);
    size_t n = (size_t)NB * DB;
    memset(grads, 0, (2 * n + 1) * sizeof(float));
    mmcl__infonce_backward(grads, grads + n, grads + 2 * n, nce, z1, z2);
    int fast = nce->fast;
    mmcl__infonce_destroy(nce);
    mmcl_context_destroy(ctx);
    return fast;
}

static void
infonce_fast_path_matches_exact_path(void)
{
    /* A batch wider than the vector lanes with a tail (100 = 6 x 16 + 4),
     * unit rows: loss within 1e-6 relative, every gradient within 1e-5 of
     * the largest one (both float kernels; the exact one uses double exp,
     * the fast one the polynomial and a fixed shift). */
    enum { NB = 100, DB = 12 };
    size_t n = (size_t)NB * DB;
    float *z = malloc(2 * n * sizeof(float));
    float *g_fast = malloc((2 * n + 1) * sizeof(float));
    float *g_exact = malloc((2 * n + 1) * sizeof(float));
    float r[2 * NB];
    uint64_t seed = 11;
    mmcl__rng_fill_normal(&seed, z, 0.0, 1.0, 2 * n);
    for (size_t i = 0; i < n; i++)
        z[n + i] += 0.7f * z[i]; /* positives correlate with anchors */
    mmcl__l2norm_forward(z, r, z, 1e-6f, 2 * NB, DB);
    static const float taus[] = {0.1f, 0.03f, 1.0f};
    for (int t = 0; t < 3; t++) {
        double l_fast, l_exact;
        int fast = run_path(&l_fast, g_fast, z, z + n, taus[t], NB, DB, 0);
        int slow = run_path(&l_exact, g_exact, z, z + n, taus[t], NB, DB, 1);
        CU_ASSERT_EQUAL(fast, 1);
        CU_ASSERT_EQUAL(slow, 0);
        double scale = 0.0;
        for (size_t i = 0; i < 2 * n; i++)
            scale = fmax(scale, fabs((double)g_exact[i]));
        printf("  tau %.2f: loss fast %.9f exact %.9f; ", taus[t], l_fast,
               l_exact);
        CU_ASSERT_DOUBLE_EQUAL(l_fast, l_exact, 1e-6 * fabs(l_exact));
        CU_ASSERT_TRUE(test_check_tensor_f("dz1 dz2", g_fast, g_exact, 2 * n,
                                           1e-5 * scale));
        double a = g_fast[2 * n], b = g_exact[2 * n];
        printf("  dlog_tau fast %.7f exact %.7f\n", a, b);
        CU_ASSERT_DOUBLE_EQUAL(a, b, 1e-5 * fmax(fabs(b), 1e-3));
    }
    free(z);
    free(g_fast);
    free(g_exact);
}

static void
infonce_guard_sends_large_logits_to_the_exact_path(void)
{
    /* The fast path needs max |logit| <= 40 (the Cauchy-Schwarz bound of
     * the actual norms): rows of norm 3 at tau 0.1 (bound 90) and unit
     * rows at tau 0.02 (bound 50) go to the exact path; unit rows at
     * tau 0.03 (bound 33) stay fast. All must match the double reference
     * (same tolerance as infonce_loss_matches_double_reference). */
    float z1[N * D], z2[N * D];
    make_pairs(z1, z2, 7);
    struct {
        float norm, tau;
        int fast;
    } cases[] = {
        {3.0f, 0.1f, 0}, {1.0f, 0.02f, 0}, {1.0f, 0.03f, 1}, {0.5f, 0.1f, 1}};
    mmcl_context *ctx = mmcl_context_create();
    mmcl_infonce *nce = mmcl__infonce_create(ctx, N, D);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nce);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        float a[N * D], b[N * D];
        for (int i = 0; i < N * D; i++) {
            a[i] = cases[c].norm * z1[i];
            b[i] = cases[c].norm * z2[i];
        }
        double loss;
        CU_ASSERT_EQUAL_FATAL(
            mmcl__infonce_forward(ctx, &loss, nce, a, b, cases[c].tau, N),
            MMCL_OK);
        double ref = reference_loss(a, b, cases[c].tau);
        printf("  norm %.1f tau %.2f: %s path, loss %.7f reference %.7f\n",
               (double)cases[c].norm, (double)cases[c].tau,
               nce->fast ? "fast" : "exact", loss, ref);
        CU_ASSERT_EQUAL(nce->fast, cases[c].fast);
        CU_ASSERT_DOUBLE_EQUAL(loss, ref, 1e-4 * fmax(1.0, fabs(ref)));
    }
    /* NaN in the first row (its norm is the first one seen) fails the
     * guard, and the exact path reports the non-finite loss. */
    float a[N * D];
    memcpy(a, z1, sizeof(a));
    a[0] = NAN;
    double loss = 123.0;
    CU_ASSERT_EQUAL(mmcl__infonce_forward(ctx, &loss, nce, a, z2, 0.1f, N),
                    MMCL_ERR_NUMERIC);
    CU_ASSERT_EQUAL(nce->fast, 0);
    CU_ASSERT_EQUAL(loss, 123.0);
    mmcl__infonce_destroy(nce);
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
        {"fastexp_matches_libm_exp_within_two_ulp",
         fastexp_matches_libm_exp_within_two_ulp},
        {"infonce_fast_path_matches_exact_path",
         infonce_fast_path_matches_exact_path},
        {"infonce_guard_sends_large_logits_to_the_exact_path",
         infonce_guard_sends_large_logits_to_the_exact_path},
        {NULL, NULL}};
    return test_run_suite("infonce", cases);
}
