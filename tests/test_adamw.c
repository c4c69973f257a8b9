/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/adamw.c: the first two steps against values worked
 * out from the update equations (Loshchilov & Hutter 2019, Algorithm 2),
 * decoupled decay with zero gradient, and convergence on a quadratic.
 */
#include <math.h>
#include <stdlib.h>

#include <CUnit/CUnit.h>

#include "adamw.h"
#include "test_util.h"

#define LR 0.1f
#define BETA1 0.9f
#define BETA2 0.999f
#define EPS 1e-8f
#define WD 0.01f

/*
 * Tolerances are relative to float32: 1 - 0.9f and 1 - 0.999f are off by
 * 2e-7 and 1.3e-5 relative to their decimal values, which shows in m and
 * v; p moves by lr * m_hat / sqrt(v_hat), where those errors mostly cancel.
 */
#define REL(x) (2e-5 * fabs(x))

static void
adamw_first_step_matches_hand_computed_values(void)
{
    /* p = 1, g = 0.5: m = 0.1 * 0.5 = 0.05, v = 0.001 * 0.25 = 2.5e-4;
     * m_hat = 0.05 / 0.1 = 0.5, v_hat = 2.5e-4 / 0.001 = 0.25;
     * p = 1 - 0.1 * (0.5 / (0.5 + 1e-8) + 0.01 * 1) = 0.899000002.
     * The first step moves each weight by ~lr * sign(g), whatever |g|. */
    float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.5f, 0.0f, -3.0f};
    float m[3] = {0}, v[3] = {0};
    mmcl__adamw_step(p, m, v, g, LR, BETA1, BETA2, EPS, WD, 1, 3);
    CU_ASSERT_DOUBLE_EQUAL(m[0], 0.05, REL(0.05));
    CU_ASSERT_DOUBLE_EQUAL(v[0], 2.5e-4, REL(2.5e-4));
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.899000002, 1e-6);
    /* g = 0: only the decay, p (1 - lr wd) = -2 * 0.999. */
    CU_ASSERT_DOUBLE_EQUAL(p[1], -1.998, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(m[1], 0.0, 0.0);
    /* g = -3: p = 0.5 - 0.1 * (-3 / (3 + 1e-8) + 0.005) = 0.5995. */
    CU_ASSERT_DOUBLE_EQUAL(p[2], 0.5994999996666667, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(v[2], 0.009, REL(0.009));
}

static void
adamw_second_step_applies_bias_correction(void)
{
    /* Step 2 with g = -0.25 after the state of step 1 (element 0 above):
     * m = 0.9 * 0.05 - 0.025 = 0.02, v = 0.999 * 2.5e-4 + 6.25e-5 =
     * 3.1225e-4; m_hat = 0.02 / 0.19, v_hat = 3.1225e-4 / 0.001999;
     * p = 0.899000002 - 0.1 * (m_hat / (sqrt(v_hat) + 1e-8)
     *                          + 0.01 * 0.899000002) = 0.8714672987. */
    float p[2] = {0.899000002f, 0.5994999996666667f};
    float m[2] = {0.05f, -0.3f}, v[2] = {2.5e-4f, 0.009f};
    float g[2] = {-0.25f, 1.0f};
    mmcl__adamw_step(p, m, v, g, LR, BETA1, BETA2, EPS, WD, 2, 2);
    CU_ASSERT_DOUBLE_EQUAL(m[0], 0.02, REL(0.02));
    CU_ASSERT_DOUBLE_EQUAL(v[0], 3.1225e-4, REL(3.1225e-4));
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.8714672987058464, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(m[1], -0.17, REL(0.17));
    CU_ASSERT_DOUBLE_EQUAL(p[1], 0.6389223566834235, 1e-6);
}

static void
adamw_decay_is_decoupled_from_the_gradient_scale(void)
{
    /* With g = 0 throughout, m = v = 0 and each step multiplies p by
     * (1 - lr wd), exactly: the decay does not pass through 1/sqrt(v). */
    float p[1] = {3.0f}, m[1] = {0}, v[1] = {0}, g[1] = {0};
    for (int t = 1; t <= 10; t++)
        mmcl__adamw_step(p, m, v, g, LR, BETA1, BETA2, EPS, WD, t, 1);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 3.0 * pow(1.0 - 0.1 * 0.01, 10), 1e-6);
}

static void
adamw_minimises_a_quadratic(void)
{
    /* f(p) = 0.5 sum a_i (p_i - c_i)^2, badly scaled (a from 1e-2 to 1e2);
     * Adam's per-coordinate scaling reaches the minimum on every axis. */
    enum { n = 4 };
    float a[n] = {1e-2f, 1.0f, 10.0f, 100.0f}, c[n] = {1, -2, 3, 0.5f};
    float p[n] = {0}, m[n] = {0}, v[n] = {0}, g[n];
    for (int t = 1; t <= 2000; t++) {
        float lr = t < 1500 ? 0.05f : 0.005f;
        for (int i = 0; i < n; i++)
            g[i] = a[i] * (p[i] - c[i]);
        mmcl__adamw_step(p, m, v, g, lr, BETA1, BETA2, EPS, 0.0f, t, n);
    }
    CU_ASSERT_TRUE(test_check_tensor_f("minimiser", p, c, n, 0.05));
}

int
main(void)
{
    static const test_case cases[] = {
        {"adamw_first_step_matches_hand_computed_values",
         adamw_first_step_matches_hand_computed_values},
        {"adamw_second_step_applies_bias_correction",
         adamw_second_step_applies_bias_correction},
        {"adamw_decay_is_decoupled_from_the_gradient_scale",
         adamw_decay_is_decoupled_from_the_gradient_scale},
        {"adamw_minimises_a_quadratic", adamw_minimises_a_quadratic},
        {NULL, NULL}};
    return test_run_suite("adamw", cases);
}
