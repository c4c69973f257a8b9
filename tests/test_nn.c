/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/nn.c. Every backward is checked against central
 * finite differences of a plain-loop forward written here in double:
 * with a fixed random upstream gradient g, the scalar loss is
 * L = sum(g * y), so the float backward called with dy = g must match
 * dL/dtheta. Tolerance: max |analytic - numeric| <= GRAD_RTOL * max
 * |numeric| (float32 kernels against a double reference).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "nn.h"
#include "rng.h"
#include "test_util.h"

#define GRAD_RTOL 1e-4
#define FD_STEP 1e-6

static void
fill_normal(float *x, size_t n, double std, uint64_t seed)
{
    uint64_t s = seed;
    mmcl__rng_fill_normal(&s, x, 0.0, std, n);
}

static double *
to_double(const float *x, size_t n)
{
    double *d = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* Compares a float analytic gradient with a double numeric one. */
static int
check_grad(const char *what, const float *analytic, const double *numeric,
           size_t n)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(numeric[i]));
    double *a = to_double(analytic, n);
    int ok =
        test_check_tensor(what, a, numeric, n, GRAD_RTOL * fmax(scale, 1e-12));
    free(a);
    return ok;
}

/* A scalar function of a double vector, for finite differences. */
typedef double (*scalar_fn)(const double *theta, const void *data);

/* numeric (n) = central differences of f around theta (restored after). */
static void
finite_diff(double *numeric, scalar_fn f, double *theta, size_t n,
            const void *data)
{
    for (size_t i = 0; i < n; i++) {
        double keep = theta[i];
        theta[i] = keep + FD_STEP;
        double up = f(theta, data);
        theta[i] = keep - FD_STEP;
        double down = f(theta, data);
        theta[i] = keep;
        numeric[i] = (up - down) / (2.0 * FD_STEP);
    }
}

/* ---- Linear ----------------------------------------------------------- */

enum { LN = 4, LI = 5, LO = 3 };

/* theta = [x (LN, LI) | W (LO, LI) | b (LO)], data = g (LN, LO) */
static double
linear_loss(const double *theta, const void *data)
{
    const double *x = theta, *W = theta + LN * LI, *b = W + LO * LI;
    const double *g = data;
    double L = 0.0;
    for (int n = 0; n < LN; n++)
        for (int o = 0; o < LO; o++) {
            double y = b[o];
            for (int i = 0; i < LI; i++)
                y += x[n * LI + i] * W[o * LI + i];
            L += g[n * LO + o] * y;
        }
    return L;
}

static void
linear_backward_matches_finite_differences(void)
{
    enum { NT = LN * LI + LO * LI + LO };
    float theta[NT], g[LN * LO], y[LN * LO];
    fill_normal(theta, NT, 1.0, 1);
    fill_normal(g, LN * LO, 1.0, 2);
    float *x = theta, *W = theta + LN * LI, *b = W + LO * LI;

    /* Forward against the double reference (L = sum g y). */
    mmcl__linear_forward(y, x, W, b, LN, LI, LO);
    double *theta_d = to_double(theta, NT), *g_d = to_double(g, LN * LO);
    double L = 0.0;
    for (int i = 0; i < LN * LO; i++)
        L += g_d[i] * y[i];
    CU_ASSERT_DOUBLE_EQUAL(L, linear_loss(theta_d, g_d),
                           1e-5 * fabs(linear_loss(theta_d, g_d)));

    float grad[NT] = {0};
    mmcl__linear_backward(grad, grad + LN * LI, grad + LN * LI + LO * LI, g, x,
                          W, LN, LI, LO);
    double numeric[NT];
    finite_diff(numeric, linear_loss, theta_d, NT, g_d);
    CU_ASSERT_TRUE(check_grad("linear dx", grad, numeric, LN * LI));
    CU_ASSERT_TRUE(
        check_grad("linear dW", grad + LN * LI, numeric + LN * LI, LO * LI));
    CU_ASSERT_TRUE(check_grad("linear db", grad + LN * LI + LO * LI,
                              numeric + LN * LI + LO * LI, LO));
    free(theta_d);
    free(g_d);
}

static void
linear_backward_accumulates_into_gradients(void)
{
    float x[LN * LI], W[LO * LI], g[LN * LO];
    fill_normal(x, LN * LI, 1.0, 3);
    fill_normal(W, LO * LI, 1.0, 4);
    fill_normal(g, LN * LO, 1.0, 5);
    float dx1[LN * LI] = {0}, dW1[LO * LI] = {0}, db1[LO] = {0};
    mmcl__linear_backward(dx1, dW1, db1, g, x, W, LN, LI, LO);

    /* Starting from ones and called twice: 1 + 2 * single. */
    float dx[LN * LI], dW[LO * LI], db[LO];
    float ex[LN * LI], eW[LO * LI], eb[LO];
    for (int i = 0; i < LN * LI; i++) {
        dx[i] = 1.0f;
        ex[i] = 1.0f + 2.0f * dx1[i];
    }
    for (int i = 0; i < LO * LI; i++) {
        dW[i] = 1.0f;
        eW[i] = 1.0f + 2.0f * dW1[i];
    }
    for (int i = 0; i < LO; i++) {
        db[i] = 1.0f;
        eb[i] = 1.0f + 2.0f * db1[i];
    }
    mmcl__linear_backward(dx, dW, db, g, x, W, LN, LI, LO);
    mmcl__linear_backward(dx, dW, db, g, x, W, LN, LI, LO);
    CU_ASSERT_TRUE(test_check_tensor_f("dx", dx, ex, LN * LI, 1e-5));
    CU_ASSERT_TRUE(test_check_tensor_f("dW", dW, eW, LO * LI, 1e-5));
    CU_ASSERT_TRUE(test_check_tensor_f("db", db, eb, LO, 1e-5));

    /* NULL dx and db are allowed; forward without bias. */
    float dW2[LO * LI] = {0}, y[LN * LO];
    mmcl__linear_backward(NULL, dW2, NULL, g, x, W, LN, LI, LO);
    CU_ASSERT_TRUE(test_check_tensor_f("dW alone", dW2, dW1, LO * LI, 0.0));
    mmcl__linear_forward(y, x, W, NULL, LN, LI, LO);
    double y00 = 0.0;
    for (int i = 0; i < LI; i++)
        y00 += (double)x[i] * W[i];
    CU_ASSERT_DOUBLE_EQUAL(y[0], y00, 1e-5);
}

/* ---- Activations ------------------------------------------------------ */

enum { AN = 40 };

static double
ref_gelu(double x)
{
    const double s = sqrt(2.0 / 3.14159265358979323846);
    return 0.5 * x * (1.0 + tanh(s * (x + 0.044715 * x * x * x)));
}

static double
relu_loss(const double *x, const void *data)
{
    const double *g = data;
    double L = 0.0;
    for (int i = 0; i < AN; i++)
        L += g[i] * (x[i] > 0.0 ? x[i] : 0.0);
    return L;
}

static double
gelu_loss(const double *x, const void *data)
{
    const double *g = data;
    double L = 0.0;
    for (int i = 0; i < AN; i++)
        L += g[i] * ref_gelu(x[i]);
    return L;
}

static void
activation_inputs(float *x, float *g, uint64_t seed)
{
    fill_normal(x, AN, 2.0, seed);
    fill_normal(g, AN, 1.0, seed + 1);
    /* Keep ReLU's kink out of the finite-difference stencil. */
    for (int i = 0; i < AN; i++)
        if (fabsf(x[i]) < 0.01f)
            x[i] = 0.5f;
}

static void
relu_maps_nan_to_zero_and_passes_no_gradient_through_it(void)
{
    /* The branch-free kernels keep the select semantics: NaN > 0 is
     * false, so NaN inputs give 0 and no gradient, and a NaN upstream
     * gradient does not leak through an inactive unit. */
    float x[4] = {NAN, -1.0f, 2.0f, 0.0f}, y[4];
    float dy[4] = {1.0f, NAN, 3.0f, NAN}, dx[4] = {0};
    mmcl__relu_forward(y, x, 4);
    CU_ASSERT_EQUAL(y[0], 0.0f);
    CU_ASSERT_EQUAL(y[1], 0.0f);
    CU_ASSERT_EQUAL(y[2], 2.0f);
    CU_ASSERT_EQUAL(y[3], 0.0f);
    mmcl__relu_backward(dx, dy, x, 4);
    CU_ASSERT_EQUAL(dx[0], 0.0f);
    CU_ASSERT_EQUAL(dx[1], 0.0f);
    CU_ASSERT_EQUAL(dx[2], 3.0f);
    CU_ASSERT_EQUAL(dx[3], 0.0f);
}

static void
relu_backward_matches_finite_differences(void)
{
    float x[AN], g[AN], y[AN], dx[AN] = {0};
    activation_inputs(x, g, 10);
    mmcl__relu_forward(y, x, AN);
    for (int i = 0; i < AN; i++)
        CU_ASSERT_EQUAL(y[i], x[i] > 0.0f ? x[i] : 0.0f);
    mmcl__relu_backward(dx, g, x, AN);
    double *x_d = to_double(x, AN), *g_d = to_double(g, AN), numeric[AN];
    finite_diff(numeric, relu_loss, x_d, AN, g_d);
    CU_ASSERT_TRUE(check_grad("relu dx", dx, numeric, AN));
    free(x_d);
    free(g_d);
}

static void
gelu_forward_matches_tanh_approximation(void)
{
    /* Values of 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) computed
     * in double precision by Python's math module. */
    float x[3] = {1.0f, -0.5f, 2.0f}, y[3];
    double ref[3] = {0.8411919906082768, -0.15428599017485606,
                     1.954597694087775};
    mmcl__gelu_forward(y, x, 3);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_DOUBLE_EQUAL(y[i], ref[i], 1e-6);
    /* In place, as the inference buffers use it. */
    mmcl__gelu_forward(x, x, 3);
    CU_ASSERT_TRUE(test_check_tensor_f("in place", x, y, 3, 0.0));
}

static void
gelu_backward_matches_finite_differences(void)
{
    float x[AN], g[AN], dx[AN] = {0};
    activation_inputs(x, g, 20);
    mmcl__gelu_backward(dx, g, x, AN);
    double *x_d = to_double(x, AN), *g_d = to_double(g, AN), numeric[AN];
    finite_diff(numeric, gelu_loss, x_d, AN, g_d);
    CU_ASSERT_TRUE(check_grad("gelu dx", dx, numeric, AN));
    free(x_d);
    free(g_d);
}

/* ---- L2 normalisation ------------------------------------------------- */

enum { NN_ = 3, ND = 5 };
#define L2_EPS 1e-3f

static double
l2norm_loss(const double *x, const void *data)
{
    const double *g = data;
    double L = 0.0, eps = L2_EPS;
    for (int n = 0; n < NN_; n++) {
        double ss = eps * eps;
        for (int j = 0; j < ND; j++)
            ss += x[n * ND + j] * x[n * ND + j];
        for (int j = 0; j < ND; j++)
            L += g[n * ND + j] * x[n * ND + j] / sqrt(ss);
    }
    return L;
}

static void
l2norm_backward_matches_finite_differences(void)
{
    float x[NN_ * ND], g[NN_ * ND], y[NN_ * ND], r[NN_], dx[NN_ * ND] = {0};
    fill_normal(x, NN_ * ND, 1.0, 30);
    fill_normal(g, NN_ * ND, 1.0, 31);
    for (int j = 0; j < ND; j++)
        x[2 * ND + j] *= 0.01f; /* a short row, where eps matters more */
    mmcl__l2norm_forward(y, r, x, L2_EPS, NN_, ND);
    for (int n = 0; n < 2; n++) {
        double nrm = 0.0;
        for (int j = 0; j < ND; j++)
            nrm += (double)y[n * ND + j] * y[n * ND + j];
        CU_ASSERT_DOUBLE_EQUAL(sqrt(nrm), 1.0, 1e-5);
    }
    mmcl__l2norm_backward(dx, g, y, r, NN_, ND);
    double *x_d = to_double(x, NN_ * ND), *g_d = to_double(g, NN_ * ND);
    double numeric[NN_ * ND];
    finite_diff(numeric, l2norm_loss, x_d, NN_ * ND, g_d);
    /* Rows one at a time: the short row's gradient is ~100x larger. */
    CU_ASSERT_TRUE(check_grad("l2norm dx row 0", dx, numeric, ND));
    CU_ASSERT_TRUE(check_grad("l2norm dx row 1", dx + ND, numeric + ND, ND));
    CU_ASSERT_TRUE(
        check_grad("l2norm dx short row", dx + 2 * ND, numeric + 2 * ND, ND));
    free(x_d);
    free(g_d);
}

static void
l2norm_maps_zero_row_to_zero_with_finite_gradient(void)
{
    float x[ND] = {0}, y[ND], r[1], g[ND] = {1, -2, 3, 0.5f, 0}, dx[ND] = {0};
    mmcl__l2norm_forward(y, r, x, L2_EPS, 1, ND);
    CU_ASSERT_DOUBLE_EQUAL(r[0], L2_EPS, 1e-9);
    for (int j = 0; j < ND; j++)
        CU_ASSERT_EQUAL(y[j], 0.0f);
    /* At x = 0 the Jacobian is I / eps. */
    mmcl__l2norm_backward(dx, g, y, r, 1, ND);
    for (int j = 0; j < ND; j++)
        CU_ASSERT_DOUBLE_EQUAL(dx[j], g[j] / L2_EPS, 1e-6 / L2_EPS);
}

/* ---- MLP -------------------------------------------------------------- */

enum { MN = 4 };
static const int mlp_sizes[] = {5, 7, 6, 3};
enum { M_IN = 5, M_OUT = 3, M_NSIZES = 4 };

typedef struct mlp_ref {
    const mmcl_mlp *mlp;  /* shapes and view offsets */
    const double *g;      /* (MN, M_OUT) upstream gradient */
    const double *x;      /* (MN, M_IN), when theta is the params */
    const double *params; /* (n_params), when theta is the input */
    int wrt_input;
} mlp_ref;

/* L = sum g * mlp(x) in double, plain loops, reading the arena layout. */
static double
mlp_loss(const double *theta, const void *data)
{
    const mlp_ref *ref = data;
    const mmcl_mlp *mlp = ref->mlp;
    const double *params = ref->wrt_input ? ref->params : theta;
    const double *x = ref->wrt_input ? theta : ref->x;
    double h[MN * 16], next[MN * 16];
    memcpy(h, x, sizeof(double) * MN * M_IN);
    for (int l = 0; l < mlp->n_layers; l++) {
        int Din = mlp->sizes[l], Dout = mlp->sizes[l + 1];
        const double *W = params + (mlp->W[l] - mlp->params);
        const double *b = params + (mlp->b[l] - mlp->params);
        for (int n = 0; n < MN; n++)
            for (int o = 0; o < Dout; o++) {
                double v = b[o];
                for (int i = 0; i < Din; i++)
                    v += h[n * Din + i] * W[o * Din + i];
                if (l < mlp->n_layers - 1)
                    v = mlp->act == MMCL_ACTIVATION_GELU ? ref_gelu(v)
                                                         : (v > 0 ? v : 0);
                next[n * Dout + o] = v;
            }
        memcpy(h, next, sizeof(double) * MN * Dout);
    }
    double L = 0.0;
    for (int i = 0; i < MN * M_OUT; i++)
        L += ref->g[i] * h[i];
    return L;
}

static void
check_mlp_gradients(mmcl_activation act)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_mlp *mlp = mmcl__mlp_create(ctx, mlp_sizes, M_NSIZES, act, 1);
    mmcl_mlp_acts *acts = mmcl__mlp_acts_create(ctx, mlp, MN + 2, 1);
    CU_ASSERT_TRUE_FATAL(mlp && acts);
    uint64_t rng = 40;
    mmcl__mlp_init(mlp, &rng);
    /* Non-zero biases so that their path is exercised too. */
    fill_normal(mlp->params + mlp->n_weights, mlp->n_params - mlp->n_weights,
                0.3, 41);

    float x[MN * M_IN], g[MN * M_OUT], dx[MN * M_IN] = {0};
    fill_normal(x, MN * M_IN, 1.0, 42);
    fill_normal(g, MN * M_OUT, 1.0, 43);
    CU_ASSERT_EQUAL_FATAL(mmcl__mlp_forward(ctx, acts, mlp, x, MN), MMCL_OK);
    mmcl__mlp_zero_grad(mlp);
    CU_ASSERT_EQUAL_FATAL(mmcl__mlp_backward(ctx, dx, mlp, acts, g, x, MN),
                          MMCL_OK);

    double *params_d = to_double(mlp->params, mlp->n_params);
    double *x_d = to_double(x, MN * M_IN), *g_d = to_double(g, MN * M_OUT);
    mlp_ref ref = {mlp, g_d, x_d, params_d, 0};

    /* Forward agrees with the reference. */
    double L = 0.0;
    for (int i = 0; i < MN * M_OUT; i++)
        L += g_d[i] * acts->out[i];
    CU_ASSERT_DOUBLE_EQUAL(L, mlp_loss(params_d, &ref), 1e-5);

    double *numeric = malloc(mlp->n_params * sizeof(double));
    finite_diff(numeric, mlp_loss, params_d, mlp->n_params, &ref);
    CU_ASSERT_TRUE(
        check_grad("mlp parameter grads", mlp->grads, numeric, mlp->n_params));
    double numeric_x[MN * M_IN];
    ref.wrt_input = 1;
    finite_diff(numeric_x, mlp_loss, x_d, MN * M_IN, &ref);
    CU_ASSERT_TRUE(check_grad("mlp input grads", dx, numeric_x, MN * M_IN));

    free(numeric);
    free(params_d);
    free(x_d);
    free(g_d);
    mmcl__mlp_acts_destroy(acts);
    mmcl__mlp_destroy(mlp);
    mmcl_context_destroy(ctx);
}

static void
mlp_backward_with_relu_matches_finite_differences(void)
{
    check_mlp_gradients(MMCL_ACTIVATION_RELU);
}

static void
mlp_backward_with_gelu_matches_finite_differences(void)
{
    check_mlp_gradients(MMCL_ACTIVATION_GELU);
}

static void
mlp_inference_buffers_give_same_output_as_training_buffers(void)
{
    static const int sizes[] = {6, 9, 4, 8, 2};
    mmcl_context *ctx = mmcl_context_create();
    mmcl_mlp *mlp = mmcl__mlp_create(ctx, sizes, 5, MMCL_ACTIVATION_GELU, 0);
    mmcl_mlp_acts *train = mmcl__mlp_acts_create(ctx, mlp, 10, 1);
    mmcl_mlp_acts *infer = mmcl__mlp_acts_create(ctx, mlp, 10, 0);
    CU_ASSERT_TRUE_FATAL(mlp && train && infer);
    CU_ASSERT_PTR_NULL(mlp->grads); /* frozen: params only */
    uint64_t rng = 50;
    mmcl__mlp_init(mlp, &rng);
    float x[10 * 6];
    fill_normal(x, 10 * 6, 1.0, 51);
    /* The same 7 rows through both (fewer than the buffers hold): equal
     * bits need equal GEMM shapes. With a nonzero bias in C (beta = 1)
     * OpenBLAS's Prescott kernel rounds a row differently when the row
     * count changes (7 vs 10 differ in the last bit there). */
    CU_ASSERT_EQUAL_FATAL(mmcl__mlp_forward(ctx, train, mlp, x, 7), MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(mmcl__mlp_forward(ctx, infer, mlp, x, 7), MMCL_OK);
    CU_ASSERT_TRUE(test_check_tensor_f("inference vs training output",
                                       infer->out, train->out, 7 * 2, 0.0));
    /* Backward is refused for a frozen MLP or inference buffers. */
    float g[10 * 2] = {0};
    CU_ASSERT_EQUAL(mmcl__mlp_backward(ctx, NULL, mlp, infer, g, x, 7),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__mlp_acts_destroy(train);
    mmcl__mlp_acts_destroy(infer);
    mmcl__mlp_destroy(mlp);
    mmcl_context_destroy(ctx);
}

static void
mlp_init_is_deterministic_and_scaled(void)
{
    static const int sizes[] = {256, 128, 64};
    mmcl_context *ctx = mmcl_context_create();
    mmcl_mlp *a = mmcl__mlp_create(ctx, sizes, 3, MMCL_ACTIVATION_RELU, 1);
    mmcl_mlp *b = mmcl__mlp_create(ctx, sizes, 3, MMCL_ACTIVATION_RELU, 1);
    CU_ASSERT_TRUE_FATAL(a && b);
    CU_ASSERT_EQUAL(a->n_weights, 256 * 128 + 128 * 64);
    CU_ASSERT_EQUAL(a->n_params, a->n_weights + 128 + 64);
    uint64_t sa = 60, sb = 60;
    mmcl__mlp_init(a, &sa);
    mmcl__mlp_init(b, &sb);
    CU_ASSERT_EQUAL(memcmp(a->params, b->params, a->n_params * sizeof(float)),
                    0);
    /* PyTorch's nn.Linear default for every layer, weights and biases:
     * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), std 1/sqrt(3 fan_in). The scale
     * sets how far an Adam step moves the weights relative to their size
     * (nn.h), so it is what makes an lr mean the same as in PyTorch. */
    for (int l = 0; l < 2; l++) {
        double bound = 1.0 / sqrt((double)sizes[l]);
        double expect = bound / sqrt(3.0);
        size_t n = (size_t)sizes[l] * sizes[l + 1];
        double ss = 0.0, sum = 0.0, peak = 0.0;
        for (size_t i = 0; i < n; i++) {
            double w = a->W[l][i];
            ss += w * w;
            sum += w;
            peak = fabs(w) > peak ? fabs(w) : peak;
        }
        double sd = sqrt(ss / n);
        printf("  layer %d weight std %.5f (expected %.5f), max |w| %.5f "
               "(bound %.5f)\n",
               l, sd, expect, peak, bound);
        CU_ASSERT_DOUBLE_EQUAL(sd / expect, 1.0, 0.03);
        CU_ASSERT_TRUE(peak <= bound && peak > 0.99 * bound);
        /* mean within ~5 standard errors of 0 */
        CU_ASSERT_TRUE(fabs(sum / n) < 5.0 * expect / sqrt((double)n));
        /* Biases too: the same bound, and not all zero. */
        double bss = 0.0, bpeak = 0.0;
        for (int o = 0; o < sizes[l + 1]; o++) {
            double v = a->b[l][o];
            bss += v * v;
            bpeak = fabs(v) > bpeak ? fabs(v) : bpeak;
        }
        CU_ASSERT_TRUE(bpeak <= bound);
        CU_ASSERT_DOUBLE_EQUAL(sqrt(bss / sizes[l + 1]) / expect, 1.0, 0.25);
    }
    /* The views tile each group exactly. */
    CU_ASSERT_PTR_EQUAL(a->W[0], a->params);
    CU_ASSERT_PTR_EQUAL(a->b[0], a->params + a->n_weights);
    CU_ASSERT_PTR_EQUAL(a->dW[1], a->grads + 256 * 128);
    CU_ASSERT_PTR_EQUAL(a->db[1] + 64, a->grads + a->n_params);
    mmcl__mlp_destroy(a);
    mmcl__mlp_destroy(b);
    mmcl_context_destroy(ctx);
}

static void
mlp_rejects_bad_sizes_and_batches(void)
{
    mmcl_context *ctx = mmcl_context_create();
    static const int one[] = {4};
    static const int zero[] = {4, 0, 2};
    static const int many[MMCL_MLP_MAX_LAYERS + 2] = {2, 2, 2, 2, 2,
                                                      2, 2, 2, 2, 2};
    CU_ASSERT_PTR_NULL(mmcl__mlp_create(ctx, one, 1, MMCL_ACTIVATION_RELU, 1));
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__error_clear(ctx);
    CU_ASSERT_PTR_NULL(mmcl__mlp_create(ctx, zero, 3, MMCL_ACTIVATION_RELU, 1));
    CU_ASSERT_EQUAL(mmcl_context_errcode(ctx), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl__error_clear(ctx);
    CU_ASSERT_PTR_NULL(mmcl__mlp_create(ctx, many, MMCL_MLP_MAX_LAYERS + 2,
                                        MMCL_ACTIVATION_RELU, 1));
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");

    static const int ok[] = {3, 2};
    mmcl_mlp *mlp = mmcl__mlp_create(ctx, ok, 2, MMCL_ACTIVATION_RELU, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mlp);
    mmcl__error_clear(ctx);
    CU_ASSERT_PTR_NULL(mmcl__mlp_acts_create(ctx, mlp, 0, 1));
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl_mlp_acts *acts = mmcl__mlp_acts_create(ctx, mlp, 2, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(acts);
    float x[9] = {0};
    mmcl__error_clear(ctx);
    CU_ASSERT_EQUAL(mmcl__mlp_forward(ctx, acts, mlp, x, 3),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(ctx), "");

    mmcl_activation act;
    CU_ASSERT_TRUE(mmcl__activation_from_name("gelu", &act) &&
                   act == MMCL_ACTIVATION_GELU);
    CU_ASSERT_FALSE(mmcl__activation_from_name("tanh", &act));
    CU_ASSERT_STRING_EQUAL(mmcl__activation_name(MMCL_ACTIVATION_RELU), "relu");
    mmcl__mlp_acts_destroy(acts);
    mmcl__mlp_destroy(mlp);
    mmcl__mlp_acts_destroy(NULL);
    mmcl__mlp_destroy(NULL);
    mmcl_context_destroy(ctx);
}

int
main(void)
{
    static const test_case cases[] = {
        {"linear_backward_matches_finite_differences",
         linear_backward_matches_finite_differences},
        {"linear_backward_accumulates_into_gradients",
         linear_backward_accumulates_into_gradients},
        {"relu_backward_matches_finite_differences",
         relu_backward_matches_finite_differences},
        {"relu_maps_nan_to_zero_and_passes_no_gradient_through_it",
         relu_maps_nan_to_zero_and_passes_no_gradient_through_it},
        {"gelu_forward_matches_tanh_approximation",
         gelu_forward_matches_tanh_approximation},
        {"gelu_backward_matches_finite_differences",
         gelu_backward_matches_finite_differences},
        {"l2norm_backward_matches_finite_differences",
         l2norm_backward_matches_finite_differences},
        {"l2norm_maps_zero_row_to_zero_with_finite_gradient",
         l2norm_maps_zero_row_to_zero_with_finite_gradient},
        {"mlp_backward_with_relu_matches_finite_differences",
         mlp_backward_with_relu_matches_finite_differences},
        {"mlp_backward_with_gelu_matches_finite_differences",
         mlp_backward_with_gelu_matches_finite_differences},
        {"mlp_inference_buffers_give_same_output_as_training_buffers",
         mlp_inference_buffers_give_same_output_as_training_buffers},
        {"mlp_init_is_deterministic_and_scaled",
         mlp_init_is_deterministic_and_scaled},
        {"mlp_rejects_bad_sizes_and_batches",
         mlp_rejects_bad_sizes_and_batches},
        {NULL, NULL}};
    return test_run_suite("nn", cases);
}
