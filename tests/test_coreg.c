/* SPDX-License-Identifier: MIT */
/*
 * The shift of one block across modalities (algorithms/coreg.c): windows
 * made from analytic fields, so the SAR can be displaced by any fraction
 * of a pixel exactly.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "coreg.h"
#include "test_util.h"

enum { BW = 48, BH = 48, SEARCH = 4, M = SEARCH + 1, W = BW + 2 * M,
       H = BH + 2 * M, B1 = 3, B2 = 2 };

/* Two ground fields: sums of cosines, wavelengths 7 to 23 px. */
static double
field(int which, double x, double y)
{
    static const double k[2][4][3] = {
        {{0.41, 0.13, 0.3}, {-0.22, 0.37, 1.1}, {0.08, -0.52, 2.0},
         {0.61, 0.44, 0.7}},
        {{-0.35, 0.21, 0.9}, {0.29, 0.31, 2.4}, {0.47, -0.19, 0.2},
         {-0.12, -0.66, 1.7}}};
    double v = 0.0;
    for (int i = 0; i < 4; i++)
        v += cos(k[which][i][0] * x + k[which][i][1] * y + k[which][i][2]);
    return v;
}

/*
 * The optical window (3 bands, mixtures of both fields) and the SAR window
 * (2 channels with other mixtures and signs, plus a deterministic
 * pseudo-noise), the SAR displaced by (dx, dy): the ground at x shows in
 * the SAR at x + d, so the SAR at u is the ground at u - d.
 */
static void
make_windows(float *opt, float *sar, double dx, double dy)
{
    static const double a[B1][2] = {{1.0, 0.2}, {0.5, 0.9}, {-0.3, 1.0}};
    static const double s[B2][2] = {{-0.8, 0.4}, {0.2, -1.0}};
    uint32_t h = 12345u;
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            double f0 = field(0, x, y), f1 = field(1, x, y);
            double g0 = field(0, x - dx, y - dy), g1 = field(1, x - dx, y - dy);
            for (int b = 0; b < B1; b++)
                opt[(b * H + y) * W + x] = (float)(a[b][0] * f0 + a[b][1] * f1);
            for (int b = 0; b < B2; b++) {
                h = h * 1664525u + 1013904223u;
                double noise = ((double)(h >> 8) / 16777216.0 - 0.5) * 0.2;
                sar[(b * H + y) * W + x] =
                    (float)(s[b][0] * g0 + s[b][1] * g1 + noise);
            }
        }
    }
}

static float opt_w[B1 * H * W], sar_w[B2 * H * W];

static void
shift_of_a_textured_block_is_recovered_to_a_tenth_of_a_pixel(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl__coreg_scratch *s =
        mmcl__coreg_scratch_create(ctx, BW, BH, B1, B2, SEARCH);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    static const double shifts[][2] = {{1.3, -0.6}, {0.0, 0.0}, {-2.5, 1.75}};
    for (size_t i = 0; i < sizeof(shifts) / sizeof(shifts[0]); i++) {
        make_windows(opt_w, sar_w, shifts[i][0], shifts[i][1]);
        mmcl__coreg_block r;
        mmcl__coreg_estimate(s, opt_w, sar_w, BW, BH, &r);
        printf("  true (%.2f, %.2f): (%.3f, %.3f), rho %.3f, confidence "
               "%.2f\n",
               shifts[i][0], shifts[i][1], r.dx, r.dy, r.rho, r.confidence);
        CU_ASSERT_PTR_NULL(r.why);
        CU_ASSERT(fabs(r.dx - shifts[i][0]) <= 0.1);
        CU_ASSERT(fabs(r.dy - shifts[i][1]) <= 0.1);
        CU_ASSERT(r.confidence >= 0.5);
        CU_ASSERT_PTR_NOT_NULL(mmcl__coreg_surface(s));
    }
    mmcl__coreg_scratch_destroy(s);
    mmcl_context_destroy(ctx);
}

static void
uniform_invalid_or_out_of_range_blocks_have_no_estimate(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl__coreg_scratch *s =
        mmcl__coreg_scratch_create(ctx, BW, BH, B1, B2, SEARCH);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    mmcl__coreg_block r;

    make_windows(opt_w, sar_w, 0.5, 0.5);
    for (int i = 0; i < B1 * H * W; i++)
        opt_w[i] = 0.3f; /* water: nothing to match */
    mmcl__coreg_estimate(s, opt_w, sar_w, BW, BH, &r);
    CU_ASSERT_STRING_EQUAL(r.why, "uniform optical");
    CU_ASSERT(isnan(r.dx) && isnan(r.dy));
    CU_ASSERT_EQUAL(r.confidence, 0.0);

    make_windows(opt_w, sar_w, 0.5, 0.5);
    for (int i = 0; i < B2 * H * W; i++)
        sar_w[i] = NAN; /* outside the SAR footprint */
    mmcl__coreg_estimate(s, opt_w, sar_w, BW, BH, &r);
    CU_ASSERT_STRING_EQUAL(r.why, "too few valid pixels");
    CU_ASSERT_EQUAL(r.valid_share, 0.0);
    CU_ASSERT_EQUAL(r.confidence, 0.0);

    /* Beyond the search range, the best shift lies on its edge. */
    make_windows(opt_w, sar_w, 6.0, 0.0);
    mmcl__coreg_estimate(s, opt_w, sar_w, BW, BH, &r);
    CU_ASSERT_STRING_EQUAL(r.why, "peak at the edge of the search range");
    CU_ASSERT(isnan(r.dx));
    mmcl__coreg_scratch_destroy(s);
    mmcl_context_destroy(ctx);
}

static void
weighted_median_leaves_out_nan_and_zero_weights(void)
{
    double work[16];
    const double v[] = {4.0, 1.0, NAN, 3.0, 2.0, 100.0};
    const double w1[] = {1.0, 1.0, 1.0, 1.0, 1.0, 0.0};
    CU_ASSERT_DOUBLE_EQUAL(mmcl__weighted_median(v, w1, 6, work), 2.5, 1e-12);
    const double w2[] = {5.0, 1.0, 1.0, 1.0, 1.0, 0.0};
    CU_ASSERT_DOUBLE_EQUAL(mmcl__weighted_median(v, w2, 6, work), 4.0, 1e-12);
    const double w0[] = {0.0, 0.0, 1.0, 0.0, 0.0, 0.0};
    CU_ASSERT(isnan(mmcl__weighted_median(v, w0, 6, work)));
}

int
main(void)
{
    static const test_case cases[] = {
        {"shift_of_a_textured_block_is_recovered_to_a_tenth_of_a_pixel",
         shift_of_a_textured_block_is_recovered_to_a_tenth_of_a_pixel},
        {"uniform_invalid_or_out_of_range_blocks_have_no_estimate",
         uniform_invalid_or_out_of_range_blocks_have_no_estimate},
        {"weighted_median_leaves_out_nan_and_zero_weights",
         weighted_median_leaves_out_nan_and_zero_weights},
        {NULL, NULL}};
    return test_run_suite("coreg", cases);
}
