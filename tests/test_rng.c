/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/rng.c: the splitmix64 stream against reference
 * values, determinism, and rough moments of each distribution.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <CUnit/CUnit.h>

#include "rng.h"
#include "test_util.h"

static void
rng_matches_splitmix64_reference_values(void)
{
    /* Vigna's splitmix64.c from seed 0, and the seed 1234567 vector used
     * by Java's SplittableRandom tests. */
    uint64_t s = 0;
    CU_ASSERT_EQUAL(mmcl__rng_next_u64(&s), UINT64_C(0xe220a8397b1dcdaf));
    CU_ASSERT_EQUAL(mmcl__rng_next_u64(&s), UINT64_C(0x6e789e6aa1b965f4));
    CU_ASSERT_EQUAL(mmcl__rng_next_u64(&s), UINT64_C(0x06c45d188009454f));
    s = 1234567;
    CU_ASSERT_EQUAL(mmcl__rng_next_u64(&s), UINT64_C(0x599ed017fb08fc85));
    CU_ASSERT_EQUAL(mmcl__rng_next_u64(&s), UINT64_C(0x2c73f08458540fa5));
    CU_ASSERT_EQUAL(mmcl__rng_next_u64(&s), UINT64_C(0x883ebce5a3f27c77));
}

static void
rng_same_seed_gives_same_stream(void)
{
    uint64_t a = 42, b = 42, c = 43;
    int same = 1, differs = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = mmcl__rng_next_u64(&a);
        uint64_t y = mmcl__rng_next_u64(&b);
        uint64_t z = mmcl__rng_next_u64(&c);
        same &= x == y;
        differs |= x != z;
    }
    CU_ASSERT_TRUE(same);
    CU_ASSERT_TRUE(differs);

    /* Derived draws are deterministic too. */
    a = b = 7;
    float fa[33], fb[33];
    mmcl__rng_fill_normal(&a, fa, 1.0, 2.0, 33);
    mmcl__rng_fill_normal(&b, fb, 1.0, 2.0, 33);
    for (int i = 0; i < 33; i++)
        CU_ASSERT_EQUAL(fa[i], fb[i]);
    CU_ASSERT_EQUAL(a, b);
}

static void
rng_uniform_is_in_unit_interval_with_uniform_moments(void)
{
    enum { N = 200000 };
    uint64_t s = 1;
    double sum = 0.0, sum2 = 0.0, lo = 1.0, hi = 0.0;
    for (int i = 0; i < N; i++) {
        double u = mmcl__rng_uniform(&s);
        sum += u;
        sum2 += u * u;
        lo = fmin(lo, u);
        hi = fmax(hi, u);
    }
    double mean = sum / N, var = sum2 / N - mean * mean;
    printf("  uniform: mean %.5f var %.5f min %.2e max %.8f\n", mean, var, lo,
           hi);
    CU_ASSERT_TRUE(lo >= 0.0 && hi < 1.0);
    /* Standard errors: 0.29 / sqrt(N) = 6.5e-4 for the mean. */
    CU_ASSERT_DOUBLE_EQUAL(mean, 0.5, 0.003);
    CU_ASSERT_DOUBLE_EQUAL(var, 1.0 / 12.0, 0.002);
}

static void
rng_normal_has_zero_mean_and_unit_variance(void)
{
    enum { N = 200000 };
    uint64_t s = 2;
    double m1 = 0.0, m2 = 0.0, m3 = 0.0, m4 = 0.0;
    for (int i = 0; i < N; i++) {
        double z = mmcl__rng_normal(&s);
        m1 += z;
        m2 += z * z;
        m3 += z * z * z;
        m4 += z * z * z * z;
    }
    m1 /= N;
    m2 /= N;
    m3 /= N;
    m4 /= N;
    printf("  normal: mean %.4f E[z^2] %.4f E[z^3] %.4f E[z^4] %.4f\n", m1, m2,
           m3, m4);
    /* Standard errors: 1/sqrt(N) = 2.2e-3, sqrt(2/N) = 3.2e-3,
     * sqrt(15/N) = 8.7e-3, sqrt(96/N) = 2.2e-2; tolerances are ~5 sigma. */
    CU_ASSERT_DOUBLE_EQUAL(m1, 0.0, 0.011);
    CU_ASSERT_DOUBLE_EQUAL(m2, 1.0, 0.016);
    CU_ASSERT_DOUBLE_EQUAL(m3, 0.0, 0.045);
    CU_ASSERT_DOUBLE_EQUAL(m4, 3.0, 0.11);

    /* The fill variant, with mean and std, uses both Box-Muller values. */
    static float buf[N];
    mmcl__rng_fill_normal(&s, buf, 3.0, 0.5, N);
    double sum = 0.0, sum2 = 0.0;
    for (int i = 0; i < N; i++) {
        sum += buf[i];
        sum2 += (double)buf[i] * buf[i];
    }
    double mean = sum / N, sd = sqrt(sum2 / N - mean * mean);
    CU_ASSERT_DOUBLE_EQUAL(mean, 3.0, 0.006);
    CU_ASSERT_DOUBLE_EQUAL(sd, 0.5, 0.006);
}

static void
rng_below_is_in_range_and_unbiased(void)
{
    enum { K = 7, N = 70000 };
    uint64_t s = 3;
    int counts[K] = {0};
    int in_range = 1;
    for (int i = 0; i < N; i++) {
        uint64_t r = mmcl__rng_below(&s, K);
        if (r >= K) {
            in_range = 0;
            break;
        }
        counts[r]++;
    }
    CU_ASSERT_TRUE_FATAL(in_range);
    /* Pearson chi-square with 6 degrees of freedom; 22.5 is p = 0.001. */
    double chi2 = 0.0, expected = (double)N / K;
    for (int k = 0; k < K; k++)
        chi2 += (counts[k] - expected) * (counts[k] - expected) / expected;
    printf("  below(7): chi2 = %.2f (6 dof)\n", chi2);
    CU_ASSERT_TRUE(chi2 < 22.5);

    /* Degenerate and huge bounds. */
    CU_ASSERT_EQUAL(mmcl__rng_below(&s, 0), 0);
    CU_ASSERT_EQUAL(mmcl__rng_below(&s, 1), 0);
    uint64_t big = (UINT64_C(1) << 63) + 1;
    for (int i = 0; i < 100; i++)
        CU_ASSERT_TRUE(mmcl__rng_below(&s, big) < big);
}

static void
rng_shuffle_is_a_deterministic_uniform_permutation(void)
{
    enum { N = 50 };
    size_t a[N], b[N];
    uint64_t sa = 9, sb = 9;
    for (size_t i = 0; i < N; i++)
        a[i] = b[i] = i;
    mmcl__rng_shuffle(&sa, a, N);
    mmcl__rng_shuffle(&sb, b, N);
    int seen[N] = {0}, same = 1, moved = 0;
    for (size_t i = 0; i < N; i++) {
        CU_ASSERT_TRUE_FATAL(a[i] < N);
        seen[a[i]]++;
        same &= a[i] == b[i];
        moved += a[i] != i;
    }
    for (size_t i = 0; i < N; i++)
        CU_ASSERT_EQUAL(seen[i], 1);
    CU_ASSERT_TRUE(same);
    CU_ASSERT_TRUE(moved > N / 2);

    /* Every one of the 6 permutations of 3 items is equally likely. */
    enum { T = 60000 };
    int hist[6] = {0};
    uint64_t s = 10;
    for (int t = 0; t < T; t++) {
        size_t p[3] = {0, 1, 2};
        mmcl__rng_shuffle(&s, p, 3);
        /* Lehmer code of the permutation: 0..5 */
        int code = (int)p[0] * 2 + (p[1] > p[2] ? 1 : 0);
        hist[code]++;
    }
    double chi2 = 0.0, expected = T / 6.0;
    for (int k = 0; k < 6; k++)
        chi2 += (hist[k] - expected) * (hist[k] - expected) / expected;
    printf("  shuffle(3): chi2 = %.2f (5 dof)\n", chi2);
    CU_ASSERT_TRUE(chi2 < 20.5); /* p = 0.001 */

    /* n = 0 and n = 1 are no-ops. */
    size_t one = 5;
    mmcl__rng_shuffle(&s, &one, 1);
    mmcl__rng_shuffle(&s, NULL, 0);
    CU_ASSERT_EQUAL(one, 5);
}

int
main(void)
{
    static const test_case cases[] = {
        {"rng_matches_splitmix64_reference_values",
         rng_matches_splitmix64_reference_values},
        {"rng_same_seed_gives_same_stream", rng_same_seed_gives_same_stream},
        {"rng_uniform_is_in_unit_interval_with_uniform_moments",
         rng_uniform_is_in_unit_interval_with_uniform_moments},
        {"rng_normal_has_zero_mean_and_unit_variance",
         rng_normal_has_zero_mean_and_unit_variance},
        {"rng_below_is_in_range_and_unbiased",
         rng_below_is_in_range_and_unbiased},
        {"rng_shuffle_is_a_deterministic_uniform_permutation",
         rng_shuffle_is_a_deterministic_uniform_permutation},
        {NULL, NULL}};
    return test_run_suite("rng", cases);
}
