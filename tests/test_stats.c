/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/stats.c: Welford against a two-pass reference in
 * double, merge against a single pass, masks, layouts and error paths.
 */
#include <math.h>
#include <stdlib.h>

#include <CUnit/CUnit.h>

#include "rng.h"
#include "stats.h"
#include "test_util.h"

enum { NPIX = 5000, C = 3 };

/* Pixel-interleaved (NPIX, C) data with large offsets (the case where
 * sum/sum-of-squares formulas lose all their digits in float). */
static void
make_data(float *x, unsigned char *mask, uint64_t seed)
{
    static const double offset[C] = {1.0e4, -250.0, 0.0};
    static const double scale[C] = {0.5, 30.0, 1.0e-3};
    uint64_t s = seed;
    for (int i = 0; i < NPIX; i++) {
        for (int c = 0; c < C; c++)
            x[i * C + c] = (float)(offset[c] + scale[c] * mmcl__rng_normal(&s));
        if (mask)
            mask[i] = mmcl__rng_uniform(&s) < 0.8;
    }
}

/* Two-pass mean and population std in double, over unmasked pixels. */
static void
two_pass(double *mean, double *std, const float *x, const unsigned char *mask,
         int n)
{
    for (int c = 0; c < C; c++) {
        double sum = 0.0, count = 0.0, ss = 0.0;
        for (int i = 0; i < n; i++) {
            if (mask && !mask[i])
                continue;
            sum += x[i * C + c];
            count += 1.0;
        }
        mean[c] = sum / count;
        for (int i = 0; i < n; i++) {
            if (mask && !mask[i])
                continue;
            double d = x[i * C + c] - mean[c];
            ss += d * d;
        }
        std[c] = sqrt(ss / count);
    }
}

/* Max relative difference, for statistics of very different scales. */
static int
close_rel(const char *what, const double *a, const double *b, int n,
          double rtol)
{
    double ref[C], got[C];
    for (int c = 0; c < n; c++) {
        double s = fmax(fabs(b[c]), 1e-300);
        got[c] = a[c] / s;
        ref[c] = b[c] / s;
    }
    return test_check_tensor(what, got, ref, (size_t)n, rtol);
}

static void
welford_matches_two_pass_mean_and_population_std(void)
{
    static float x[NPIX * C];
    make_data(x, NULL, 1);
    mmcl_context *ctx = mmcl_context_create();
    mmcl_welford *acc = mmcl__welford_create(ctx, C);
    CU_ASSERT_PTR_NOT_NULL_FATAL(acc);

    /* Three uneven chunks through the same accumulator. */
    mmcl__welford_update(acc, x, NULL, 1, C, 1);
    mmcl__welford_update(acc, x + C, NULL, 1999, C, 1);
    mmcl__welford_update(acc, x + 2000 * C, NULL, NPIX - 2000, C, 1);

    double mean[C], std[C], ref_mean[C], ref_std[C];
    CU_ASSERT_EQUAL_FATAL(mmcl__welford_result(ctx, mean, std, acc), MMCL_OK);
    two_pass(ref_mean, ref_std, x, NULL, NPIX);
    CU_ASSERT_TRUE(close_rel("mean (rel)", mean, ref_mean, C, 1e-12));
    CU_ASSERT_TRUE(close_rel("std (rel)", std, ref_std, C, 1e-9));
    for (int c = 0; c < C; c++)
        CU_ASSERT_EQUAL(acc->count[c], NPIX);
    mmcl__welford_destroy(acc);
    mmcl_context_destroy(ctx);
}

static void
welford_merge_equals_single_pass(void)
{
    static float x[NPIX * C];
    static unsigned char mask[NPIX];
    make_data(x, mask, 2);
    mmcl_context *ctx = mmcl_context_create();
    mmcl_welford *all = mmcl__welford_create(ctx, C);
    mmcl_welford *a = mmcl__welford_create(ctx, C);
    mmcl_welford *b = mmcl__welford_create(ctx, C);
    mmcl_welford *empty = mmcl__welford_create(ctx, C);
    CU_ASSERT_TRUE_FATAL(all && a && b && empty);

    mmcl__welford_update(all, x, mask, NPIX, C, 1);
    /* Uneven split, as two worker threads would see it. */
    int cut = 700;
    mmcl__welford_update(a, x, mask, cut, C, 1);
    mmcl__welford_update(b, x + cut * C, mask + cut, NPIX - cut, C, 1);
    CU_ASSERT_EQUAL(mmcl__welford_merge(ctx, a, empty), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__welford_merge(ctx, a, b), MMCL_OK);
    /* Merging into an empty accumulator copies. */
    CU_ASSERT_EQUAL(mmcl__welford_merge(ctx, empty, a), MMCL_OK);

    double m1[C], s1[C], m2[C], s2[C], m3[C], s3[C];
    CU_ASSERT_EQUAL_FATAL(mmcl__welford_result(ctx, m1, s1, all), MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(mmcl__welford_result(ctx, m2, s2, a), MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(mmcl__welford_result(ctx, m3, s3, empty), MMCL_OK);
    CU_ASSERT_TRUE(close_rel("merged mean (rel)", m2, m1, C, 1e-12));
    CU_ASSERT_TRUE(close_rel("merged std (rel)", s2, s1, C, 1e-9));
    CU_ASSERT_TRUE(close_rel("copied mean (rel)", m3, m2, C, 0.0));
    for (int c = 0; c < C; c++)
        CU_ASSERT_EQUAL(a->count[c], all->count[c]);

    mmcl__welford_destroy(all);
    mmcl__welford_destroy(a);
    mmcl__welford_destroy(b);
    mmcl__welford_destroy(empty);
    mmcl_context_destroy(ctx);
}

static void
welford_skips_masked_pixels(void)
{
    static float x[NPIX * C];
    static unsigned char mask[NPIX];
    make_data(x, mask, 3);
    /* Masked pixels hold garbage, NaN included: none of it may leak. */
    for (int i = 0; i < NPIX; i++)
        if (!mask[i])
            for (int c = 0; c < C; c++)
                x[i * C + c] = (i % 2) ? NAN : 1e30f;

    mmcl_context *ctx = mmcl_context_create();
    mmcl_welford *acc = mmcl__welford_create(ctx, C);
    CU_ASSERT_PTR_NOT_NULL_FATAL(acc);
    mmcl__welford_update(acc, x, mask, NPIX, C, 1);
    double mean[C], std[C], ref_mean[C], ref_std[C];
    CU_ASSERT_EQUAL_FATAL(mmcl__welford_result(ctx, mean, std, acc), MMCL_OK);
    two_pass(ref_mean, ref_std, x, mask, NPIX);
    CU_ASSERT_TRUE(close_rel("masked mean (rel)", mean, ref_mean, C, 1e-12));
    CU_ASSERT_TRUE(close_rel("masked std (rel)", std, ref_std, C, 1e-9));
    int valid = 0;
    for (int i = 0; i < NPIX; i++)
        valid += mask[i] != 0;
    CU_ASSERT_EQUAL(acc->count[0], valid);
    mmcl__welford_destroy(acc);
    mmcl_context_destroy(ctx);
}

static void
welford_gives_same_result_for_band_sequential_layout(void)
{
    static float x[NPIX * C], bsq[C * NPIX];
    make_data(x, NULL, 4);
    for (int i = 0; i < NPIX; i++)
        for (int c = 0; c < C; c++)
            bsq[c * NPIX + i] = x[i * C + c];

    mmcl_context *ctx = mmcl_context_create();
    mmcl_welford *a = mmcl__welford_create(ctx, C);
    mmcl_welford *b = mmcl__welford_create(ctx, C);
    CU_ASSERT_TRUE_FATAL(a && b);
    mmcl__welford_update(a, x, NULL, NPIX, C, 1);
    mmcl__welford_update(b, bsq, NULL, NPIX, 1, NPIX);
    for (int c = 0; c < C; c++) {
        /* Same values in the same order: bit-identical. */
        CU_ASSERT_EQUAL(a->mean[c], b->mean[c]);
        CU_ASSERT_EQUAL(a->m2[c], b->m2[c]);
    }
    mmcl__welford_reset(a);
    CU_ASSERT_EQUAL(a->count[0], 0.0);
    CU_ASSERT_EQUAL(a->m2[C - 1], 0.0);
    mmcl__welford_destroy(a);
    mmcl__welford_destroy(b);
    mmcl_context_destroy(ctx);
}

static void
welford_result_rejects_channel_without_valid_values(void)
{
    float x[4 * C] = {0};
    unsigned char mask[4] = {0, 0, 0, 0};
    mmcl_context *ctx = mmcl_context_create();
    mmcl_welford *acc = mmcl__welford_create(ctx, C);
    CU_ASSERT_PTR_NOT_NULL_FATAL(acc);
    mmcl__welford_update(acc, x, mask, 4, C, 1);
    double mean[C];
    CU_ASSERT_EQUAL(mmcl__welford_result(ctx, mean, NULL, acc),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    printf("  message: %s\n", mmcl_context_errmsg(ctx));

    /* A NaN among valid values is reported, not hidden. */
    x[C + 1] = NAN;
    mmcl__welford_update(acc, x, NULL, 4, C, 1);
    CU_ASSERT_EQUAL(mmcl__welford_result(ctx, mean, NULL, acc),
                    MMCL_ERR_NUMERIC);
    printf("  message: %s\n", mmcl_context_errmsg(ctx));
    mmcl__welford_destroy(acc);
    mmcl_context_destroy(ctx);
}

static void
welford_rejects_bad_channel_counts(void)
{
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_PTR_NULL(mmcl__welford_create(ctx, 0));
    CU_ASSERT_EQUAL(mmcl_context_errcode(ctx), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");

    mmcl_welford *a = mmcl__welford_create(ctx, 2);
    mmcl_welford *b = mmcl__welford_create(ctx, 3);
    CU_ASSERT_TRUE_FATAL(a && b);
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(mmcl__welford_merge(ctx, a, b), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__welford_destroy(a);
    mmcl__welford_destroy(b);
    mmcl__welford_destroy(NULL);
    mmcl_context_destroy(ctx);
}

int
main(void)
{
    static const test_case cases[] = {
        {"welford_matches_two_pass_mean_and_population_std",
         welford_matches_two_pass_mean_and_population_std},
        {"welford_merge_equals_single_pass", welford_merge_equals_single_pass},
        {"welford_skips_masked_pixels", welford_skips_masked_pixels},
        {"welford_gives_same_result_for_band_sequential_layout",
         welford_gives_same_result_for_band_sequential_layout},
        {"welford_result_rejects_channel_without_valid_values",
         welford_result_rejects_channel_without_valid_values},
        {"welford_rejects_bad_channel_counts",
         welford_rejects_bad_channel_counts},
        {NULL, NULL}};
    return test_run_suite("stats", cases);
}
