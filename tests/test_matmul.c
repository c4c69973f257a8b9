/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/matmul.c, the encoders' fixed-shape products, on the
 * engine of this process (oneDNN when built with it).
 *
 * Tolerance of f32 against OpenBLAS (mmcl__linear_forward, what the
 * encoders ran before) and against a double reference: the forward error
 * bound of a float32 dot product of length K plus the bias,
 *   |y - y_exact| <= (K + 2) u sum_k |x_k w_k| + |b|),   u = 2^-24,
 * which holds whatever order the kernel sums in (so for any ISA). bf16:
 * the inputs and weights rounded to bfloat16 (8 significant bits: relative
 * error <= 2^-8 each), so |y - y_exact| <= (2^-7 + 2^-16) sum_k |x_k w_k|
 * plus the f32 bound, and exactly the f32 bound against the double product
 * of the ROUNDED values.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include <CUnit/CUnit.h>

#include "matmul.h"
#include "nn.h"
#include "rng.h"
#include "test_util.h"

#define U32 (1.0 / 16777216.0) /* 2^-24 */

static void
fill_normal(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    mmcl__rng_fill_normal(&s, x, 0.0, 1.0, n);
}

static float
bf16_value(float v)
{
    unsigned short h;
    mmcl__bf16_round(&h, &v, 1);
    uint32_t u = (uint32_t)h << 16;
    float r;
    memcpy(&r, &u, sizeof(r));
    return r;
}

/*
 * Checks y (M, N) against the double product of x (M, K), W (N, K), b,
 * with inputs rounded to bf16 when @p bf16 (the ReLU applied when
 * @p relu): |y - ref| <= slack * sum |x w| + (K + 2) u (sum |x w| + |b|).
 * Returns the largest ratio of error to bound.
 */
static double
check_against_double(const float *y, const float *x, const float *W,
                     const float *b, int M, int K, int N, int relu, int bf16,
                     double slack)
{
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = b ? b[j] : 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double xv = x[(size_t)i * K + k], wv = W[(size_t)j * K + k];
                if (bf16) {
                    xv = bf16_value((float)xv);
                    wv = bf16_value((float)wv);
                }
                s += xv * wv;
                mag += fabs(xv * wv);
            }
            if (relu && s < 0)
                s = 0;
            double bound = slack * mag +
                           (K + 2) * U32 * (mag + (b ? fabs(b[j]) : 0)) +
                           1e-30;
            double err = fabs(y[(size_t)i * N + j] - s) / bound;
            if (err > worst)
                worst = err;
        }
    return worst;
}

static const int SHAPES[][3] = {{256, 117, 256}, {256, 256, 64},
                                {256, 36, 8},    {256, 1, 3}};

static void
run_shape(int M, int K, int N, int relu, mmcl__precision p, uint64_t seed,
          double *worst_exact, double *worst_blas)
{
    mmcl_context *ctx = mmcl_context_create();
    float *x = malloc(sizeof(float) * M * K);
    float *W = malloc(sizeof(float) * N * K);
    float *b = malloc(sizeof(float) * N);
    float *y = malloc(sizeof(float) * M * N);
    float *r = malloc(sizeof(float) * M * N);
    fill_normal(x, (size_t)M * K, seed);
    fill_normal(W, (size_t)N * K, seed + 1);
    fill_normal(b, (size_t)N, seed + 2);
    mmcl__matmul *mm = mmcl__matmul_create(
        ctx, M, K, N, W, b, relu ? MMCL__MATMUL_RELU : MMCL__MATMUL_NONE, p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mm);
    mmcl__matmul_exec *ex = mmcl__matmul_exec_create(ctx, (size_t)M * K);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ex);
    CU_ASSERT_EQUAL(mmcl__matmul_run(ctx, mm, ex, y, x), MMCL_OK);
    int bf16 = p == MMCL__PRECISION_BF16;
    *worst_exact = check_against_double(y, x, W, b, M, K, N, relu, bf16, 0);
    /* OpenBLAS on the unrounded inputs: both within the bound. */
    mmcl__linear_forward(r, x, W, b, M, K, N);
    if (relu)
        mmcl__relu_forward(r, r, (size_t)M * N);
    double slack = bf16 ? 1.0 / 128 + 1.0 / 65536 : 0;
    double w1 = check_against_double(y, x, W, b, M, K, N, relu, 0, slack);
    double w2 = check_against_double(r, x, W, b, M, K, N, relu, 0, 0);
    *worst_blas = w1 > w2 ? w1 : w2;
    mmcl__matmul_exec_destroy(ex);
    mmcl__matmul_destroy(mm);
    mmcl_context_destroy(ctx);
    free(x);
    free(W);
    free(b);
    free(y);
    free(r);
}

static void
test_f32_within_rounding(void)
{
    for (size_t s = 0; s < sizeof(SHAPES) / sizeof(SHAPES[0]); s++)
        for (int relu = 0; relu < 2; relu++) {
            double e, e2;
            run_shape(SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], relu,
                      MMCL__PRECISION_F32, 11 + s, &e, &e2);
            printf("\n  f32 %dx%dx%d%s: error / bound %.3g (exact), %.3g "
                   "(OpenBLAS too)",
                   SHAPES[s][0], SHAPES[s][1], SHAPES[s][2],
                   relu ? " relu" : "", e, e2);
            CU_ASSERT(e <= 1.0);
            CU_ASSERT(e2 <= 1.0);
        }
}

static int
have_bf16(void)
{
    mmcl_engine_info e;
    mmcl__engine_info_get(&e);
    if (!e.bf16)
        printf("\n  bf16: skipped, this CPU (as oneDNN sees it: %s%s) has "
               "no native bf16 products",
               e.dnnl ? "ISA " : "", e.dnnl ? e.isa : e.why);
    return e.bf16;
}

static void
test_bf16_within_rounding(void)
{
    if (!have_bf16())
        return;
    for (size_t s = 0; s < sizeof(SHAPES) / sizeof(SHAPES[0]); s++) {
        double e, e2;
        run_shape(SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], 1,
                  MMCL__PRECISION_BF16, 31 + s, &e, &e2);
        printf("\n  bf16 %dx%dx%d: error / bound %.3g (rounded inputs), "
               "%.3g (f32 inputs)",
               SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], e, e2);
        CU_ASSERT(e <= 1.0);
        CU_ASSERT(e2 <= 1.0);
    }
}

static void
test_bf16_refused_or_runs(void)
{
    mmcl_engine_info e;
    mmcl__engine_info_get(&e);
    mmcl_context *ctx = mmcl_context_create();
    float W[4] = {1, 2, 3, 4};
    mmcl__matmul *mm = mmcl__matmul_create(ctx, 4, 2, 2, W, NULL,
                                           MMCL__MATMUL_NONE,
                                           MMCL__PRECISION_BF16);
    if (e.bf16) {
        CU_ASSERT_PTR_NOT_NULL(mm);
    } else {
        CU_ASSERT_PTR_NULL(mm);
        CU_ASSERT_EQUAL(mmcl_context_errcode(ctx), MMCL_ERR_UNSUPPORTED);
        CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "bf16"));
    }
    mmcl__matmul_destroy(mm);
    mmcl_context_destroy(ctx);
}

static void
test_bf16_rounding(void)
{
    /* Nearest, ties to even; NaN stays NaN; infinities and zero kept. */
    float v[] = {1.0f, 1.00390625f /* 1 + 2^-8: tie, to even 1 */,
                 1.01171875f /* 1 + 3 2^-8: tie, to even 1 + 2^-6 */,
                 0x1.010002p0f /* just above the tie: up */, -2.5f, INFINITY,
                 -0.0f, NAN};
    unsigned short h[8];
    mmcl__bf16_round(h, v, 8);
    CU_ASSERT_EQUAL(h[0], 0x3f80);
    CU_ASSERT_EQUAL(h[1], 0x3f80);
    CU_ASSERT_EQUAL(h[2], 0x3f82);
    CU_ASSERT_EQUAL(h[3], 0x3f81);
    CU_ASSERT_EQUAL(h[4], 0xc020);
    CU_ASSERT_EQUAL(h[5], 0x7f80);
    CU_ASSERT_EQUAL(h[6], 0x8000);
    CU_ASSERT((h[7] & 0x7f80) == 0x7f80 && (h[7] & 0x7f) != 0);
}

/*
 * A chain of bf16 products (an encoder's hidden layers): an input already
 * in bf16 gives the bits of the same input in f32 rounded by the product;
 * a bf16 output is the f32 output rounded to bf16 (by oneDNN's kernel as
 * it stores it: within one bf16 step of mmcl__bf16_round's, where the
 * kernel for a bf16 output sums in another order). Misuse is refused.
 */
static void
test_bf16_chained(void)
{
    if (!have_bf16())
        return;
    enum { M = 256, K = 117, N = 256 };
    mmcl_context *ctx = mmcl_context_create();
    float *x = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
    float *b = malloc(sizeof(float) * N);
    float *yf = malloc(sizeof(float) * M * N), *yf2 = malloc(sizeof(float) * M * N);
    unsigned short *xb = malloc(sizeof(short) * M * K);
    unsigned short *yb = malloc(sizeof(short) * M * N);
    unsigned short *r = malloc(sizeof(short) * M * N);
    fill_normal(x, (size_t)M * K, 41);
    fill_normal(W, (size_t)N * K, 42);
    fill_normal(b, N, 43);
    mmcl__bf16_round(xb, x, (size_t)M * K);
    mmcl__matmul *mf = mmcl__matmul_create(ctx, M, K, N, W, b,
                                           MMCL__MATMUL_RELU,
                                           MMCL__PRECISION_BF16);
    mmcl__matmul *mb = mmcl__matmul_create_out(
        ctx, M, K, N, W, b, MMCL__MATMUL_RELU, MMCL__PRECISION_BF16,
        MMCL__PRECISION_BF16);
    mmcl__matmul_exec *ex = mmcl__matmul_exec_create(ctx, (size_t)M * K);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ex);
    CU_ASSERT_EQUAL(mmcl__matmul_out_precision(mb), MMCL__PRECISION_BF16);
    CU_ASSERT_EQUAL(mmcl__matmul_run(ctx, mf, ex, yf, x), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__matmul_run_typed(ctx, mf, ex, yf2, xb,
                                           MMCL__PRECISION_BF16),
                    MMCL_OK);
    CU_ASSERT(memcmp(yf, yf2, sizeof(float) * M * N) == 0);
    CU_ASSERT_EQUAL(mmcl__matmul_run_typed(ctx, mb, ex, yb, xb,
                                           MMCL__PRECISION_BF16),
                    MMCL_OK);
    mmcl__bf16_round(r, yf, (size_t)M * N);
    size_t same = 0, worst = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) {
        /* ReLU outputs are >= 0: bf16 bits order as the values do. */
        size_t d = yb[i] > r[i] ? yb[i] - r[i] : r[i] - yb[i];
        same += d == 0;
        if (d > worst)
            worst = d;
    }
    printf("\n  bf16 output: %zu of %d values the bits of the rounded f32 "
           "output, the others within %zu bf16 step(s)",
           same, M * N, worst);
    CU_ASSERT(worst <= 1);
    /* A bf16 output read as f32, a bf16 input of an f32 product, a bf16
     * output of an f32 product: refused. */
    CU_ASSERT_EQUAL(mmcl__matmul_run(ctx, mb, ex, yf, x),
                    MMCL_ERR_INVALID_ARG);
    mmcl__matmul *m32 = mmcl__matmul_create(ctx, M, K, N, W, b,
                                            MMCL__MATMUL_NONE,
                                            MMCL__PRECISION_F32);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m32);
    CU_ASSERT_EQUAL(mmcl__matmul_run_typed(ctx, m32, ex, yf, xb,
                                           MMCL__PRECISION_BF16),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(mmcl__matmul_create_out(
        ctx, M, K, N, W, b, MMCL__MATMUL_NONE, MMCL__PRECISION_F32,
        MMCL__PRECISION_BF16));
    mmcl__matmul_destroy(m32);
    mmcl__matmul_exec_destroy(ex);
    mmcl__matmul_destroy(mf);
    mmcl__matmul_destroy(mb);
    mmcl_context_destroy(ctx);
    free(x);
    free(W);
    free(b);
    free(yf);
    free(yf2);
    free(xb);
    free(yb);
    free(r);
}

/* A row's result does not depend on the other rows, nor on the thread
 * that runs the product: the same bits. */
typedef struct {
    const mmcl__matmul *mm;
    const float *x;
    float *y;
    int ok;
} job;

static int
run_job(void *arg)
{
    job *j = arg;
    mmcl_context *ctx = mmcl_context_create();
    mmcl__matmul_exec *ex = mmcl__matmul_exec_create(ctx, 256 * 117);
    j->ok = ex && mmcl__matmul_run(ctx, j->mm, ex, j->y, j->x) == MMCL_OK;
    mmcl__matmul_exec_destroy(ex);
    mmcl_context_destroy(ctx);
    return 0;
}

static void
identity_for(mmcl__precision p)
{
    enum { M = 256, K = 117, N = 64 };
    mmcl_context *ctx = mmcl_context_create();
    float *x = malloc(sizeof(float) * M * K), *x2 = malloc(sizeof(float) * M * K);
    float *W = malloc(sizeof(float) * N * K), *b = malloc(sizeof(float) * N);
    float *y[3];
    for (int i = 0; i < 3; i++)
        y[i] = malloc(sizeof(float) * M * N);
    fill_normal(x, (size_t)M * K, 5);
    fill_normal(W, (size_t)N * K, 6);
    fill_normal(b, N, 7);
    /* x2: the first 40 rows of x, the others zero (a short block). */
    memset(x2, 0, sizeof(float) * M * K);
    memcpy(x2, x, sizeof(float) * 40 * K);
    mmcl__matmul *mm =
        mmcl__matmul_create(ctx, M, K, N, W, b, MMCL__MATMUL_RELU, p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mm);
    job jobs[3] = {{mm, x, y[0], 0}, {mm, x, y[1], 0}, {mm, x2, y[2], 0}};
    thrd_t t[3];
    for (int i = 0; i < 3; i++)
        thrd_create(&t[i], run_job, &jobs[i]);
    for (int i = 0; i < 3; i++)
        thrd_join(t[i], NULL);
    CU_ASSERT(jobs[0].ok && jobs[1].ok && jobs[2].ok);
    CU_ASSERT(memcmp(y[0], y[1], sizeof(float) * M * N) == 0);
    CU_ASSERT(memcmp(y[0], y[2], sizeof(float) * 40 * N) == 0);
    mmcl__matmul_destroy(mm);
    mmcl_context_destroy(ctx);
    free(x);
    free(x2);
    free(W);
    free(b);
    for (int i = 0; i < 3; i++)
        free(y[i]);
}

static void
test_same_bits_any_thread_and_rows(void)
{
    identity_for(MMCL__PRECISION_F32);
    if (have_bf16())
        identity_for(MMCL__PRECISION_BF16);
}

static void
test_engine_named(void)
{
    mmcl_engine_info e;
    mmcl__engine_info_get(&e);
    printf("\n  engine: %s %s%s%s", e.name, e.isa, e.why[0] ? " " : "",
           e.why);
    CU_ASSERT(e.name[0] != 0);
    CU_ASSERT(e.dnnl ? e.isa[0] != 0 : e.why[0] != 0);
}

int
main(void)
{
    static const test_case cases[] = {
        {"engine_named", test_engine_named},
        {"bf16_rounding", test_bf16_rounding},
        {"f32_within_rounding", test_f32_within_rounding},
        {"bf16_within_rounding", test_bf16_within_rounding},
        {"bf16_refused_or_runs", test_bf16_refused_or_runs},
        {"bf16_chained", test_bf16_chained},
        {"same_bits_any_thread_and_rows", test_same_bits_any_thread_and_rows},
        {NULL, NULL}};
    return test_run_suite("matmul", cases);
}
