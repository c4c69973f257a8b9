/* SPDX-License-Identifier: MIT */
/*
 * Linear layer, ReLU, GELU and L2 normalisation kernels (forward and
 * backward), and an MLP assembled from them with arena-backed parameters.
 * Shapes are in the comments of nn.h and repeated at each kernel.
 */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "rng.h"
#include "simd.h"

/* ---- Kernels ---------------------------------------------------------- */

/* y (N, Dout) = x (N, Din) W^T (Dout, Din) + b (Dout). With a bias, y
 * starts as b in every row and the GEMM adds to it (beta = 1): one pass
 * over y fewer than zeroing it (beta = 0) and adding b afterwards. */
void
mmcl__linear_forward(float *y, const float *x, const float *W, const float *b,
                     int N, int Din, int Dout)
{
    if (b)
        for (int n = 0; n < N; n++)
            memcpy(y + (size_t)n * Dout, b, sizeof(float) * (size_t)Dout);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Dout, Din, 1.0f, x,
                Din, W, Din, b ? 1.0f : 0.0f, y, Dout);
}

/* dx (N, Din) += dy W;  dW (Dout, Din) += dy^T x;  db (Dout) += column sums of
 * dy */
void
mmcl__linear_backward(float *dx, float *dW, float *db, const float *dy,
                      const float *x, const float *W, int N, int Din, int Dout)
{
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Din, Dout,
                    1.0f, dy, Dout, W, Din, 1.0f, dx, Din);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Dout, Din, N, 1.0f, dy,
                Dout, x, Din, 1.0f, dW, Din);
    if (db) {
        for (int n = 0; n < N; n++) {
            const float *dy_n = dy + (size_t)n * Dout;
            for (int o = 0; o < Dout; o++)
                db[o] += dy_n[o];
        }
    }
}

/* Branch-free select forms: gcc turns them into compare + and/blend and
 * vectorises them (a conditional store, `if (x > 0) dx += dy`, stays a
 * mispredicting scalar branch). NaN x gives 0 and no gradient. */
MMCL__VEC_CLONES void
mmcl__relu_forward(float *y, const float *x, size_t n)
{
    /* y may alias x: element i is read before it is written. */
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void
mmcl__relu_backward(float *restrict dx, const float *restrict dy,
                    const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
}

/* db (Dout) += column sums of g (N, Dout) */
MMCL__VEC_CLONES static void
colsum_add(float *restrict db, const float *restrict g, int N, int Dout)
{
    for (int n = 0; n < N; n++) {
        const float *g_n = g + (size_t)n * Dout;
        for (int o = 0; o < Dout; o++)
            db[o] += g_n[o];
    }
}

/* g (N, Dout) = g * [pre > 0] in place (dLoss/dpost -> dLoss/dpre);
 * db (Dout) += column sums of the result: the ReLU backward and the next
 * layer's bias gradient in one pass. */
MMCL__VEC_CLONES static void
relu_backward_bias(float *restrict g, float *restrict db,
                   const float *restrict pre, int N, int Dout)
{
    for (int n = 0; n < N; n++) {
        float *g_n = g + (size_t)n * Dout;
        const float *p_n = pre + (size_t)n * Dout;
        for (int o = 0; o < Dout; o++) {
            float v = p_n[o] > 0.0f ? g_n[o] : 0.0f;
            g_n[o] = v;
            db[o] += v;
        }
    }
}

/* sqrt(2 / pi) and the cubic coefficient of the tanh approximation. */
#define GELU_SCALE 0.7978845608028654f
#define GELU_CUBIC 0.044715f

void
mmcl__gelu_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = GELU_SCALE * (v + GELU_CUBIC * v * v * v);
        y[i] = 0.5f * v * (1.0f + tanhf(u));
    }
}

void
mmcl__gelu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    /* d/dx [0.5 x (1 + t)], t = tanh(u(x)), u' = s (1 + 3 c x^2):
     *   0.5 (1 + t) + 0.5 x (1 - t^2) u' */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = GELU_SCALE * (v + GELU_CUBIC * v * v * v);
        float t = tanhf(u);
        float du = GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * v * v);
        float grad = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du;
        dx[i] += dy[i] * grad;
    }
}

/* sum_j a_j b_j (n) in double, in 8 independent lanes: vectorises, and
 * shortens the dependency chain of a plain running sum. */
MMCL__VEC_CLONES static double
dot_d(const float *a, const float *b, int n)
{
    double acc[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += (double)a[j + k] * (double)b[j + k];
    double s = 0.0;
    for (int k = 0; k < 8; k++)
        s += acc[k];
    for (; j < n; j++)
        s += (double)a[j] * (double)b[j];
    return s;
}

/* y (N, D) = x / r,  r (N) = sqrt(||x_n||^2 + eps^2) */
void
mmcl__l2norm_forward(float *y, float *r, const float *x, float eps, int N,
                     int D)
{
    for (int n = 0; n < N; n++) {
        const float *x_n = x + (size_t)n * D;
        float *y_n = y + (size_t)n * D;
        double ss = (double)eps * (double)eps + dot_d(x_n, x_n, D);
        double r_n = sqrt(ss);
        double inv = 1.0 / r_n;
        for (int j = 0; j < D; j++)
            y_n[j] = (float)((double)x_n[j] * inv);
        r[n] = (float)r_n;
    }
}

/* dx_n (D) += (dy_n - y_n (y_n . dy_n)) / r_n */
void
mmcl__l2norm_backward(float *dx, const float *dy, const float *y,
                      const float *r, int N, int D)
{
    for (int n = 0; n < N; n++) {
        const float *y_n = y + (size_t)n * D;
        const float *dy_n = dy + (size_t)n * D;
        float *dx_n = dx + (size_t)n * D;
        double dot = dot_d(y_n, dy_n, D);
        double inv = 1.0 / (double)r[n];
        for (int j = 0; j < D; j++)
            dx_n[j] += (float)(((double)dy_n[j] - (double)y_n[j] * dot) * inv);
    }
}

/* ---- MLP -------------------------------------------------------------- */

const char *
mmcl__activation_name(mmcl_activation act)
{
    switch (act) {
    case MMCL_ACTIVATION_RELU:
        return "relu";
    case MMCL_ACTIVATION_GELU:
        return "gelu";
    }
    return NULL;
}

int
mmcl__activation_from_name(const char *name, mmcl_activation *act)
{
    if (name && strcmp(name, "relu") == 0) {
        *act = MMCL_ACTIVATION_RELU;
        return 1;
    }
    if (name && strcmp(name, "gelu") == 0) {
        *act = MMCL_ACTIVATION_GELU;
        return 1;
    }
    return 0;
}

/* Points W[] and b[] (or dW[] and db[]) into one group of n_params. */
static void
mlp_point(float **W, float **b, float *group, const mmcl_mlp *mlp)
{
    float *p = group;
    for (int l = 0; l < mlp->n_layers; l++) {
        W[l] = p;
        p += (size_t)mlp->sizes[l + 1] * mlp->sizes[l];
    }
    for (int l = 0; l < mlp->n_layers; l++) {
        b[l] = p;
        p += mlp->sizes[l + 1];
    }
}

mmcl_mlp *
mmcl__mlp_create(mmcl_context *ctx, const int *sizes, int n_sizes,
                 mmcl_activation act, int trainable)
{
    if (n_sizes < 2 || n_sizes > MMCL_MLP_MAX_LAYERS + 1) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "mlp: %d layer sizes given; need between 2 (a linear "
                    "layer) and %d (%d layers)",
                    n_sizes, MMCL_MLP_MAX_LAYERS + 1, MMCL_MLP_MAX_LAYERS);
        return NULL;
    }
    for (int l = 0; l < n_sizes; l++) {
        if (sizes[l] < 1) {
            mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                        "mlp: layer size %d is %d; sizes must be >= 1", l,
                        sizes[l]);
            return NULL;
        }
    }
    if (!mmcl__activation_name(act)) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "mlp: unknown activation %d",
                    (int)act);
        return NULL;
    }

    mmcl_mlp *mlp = mmcl__calloc_array(ctx, 1, 1, sizeof(*mlp));
    if (!mlp)
        return NULL;
    mlp->n_layers = n_sizes - 1;
    mlp->act = act;
    for (int l = 0; l < n_sizes; l++)
        mlp->sizes[l] = sizes[l];
    for (int l = 0; l < mlp->n_layers; l++) {
        mlp->n_weights += (size_t)sizes[l + 1] * sizes[l];
        mlp->n_params += (size_t)sizes[l + 1];
    }
    mlp->n_params += mlp->n_weights;

    /* One allocation, up to four groups: params | grads | m | v. */
    size_t n_groups = trainable ? 4 : 1;
    float *arena =
        mmcl__calloc_array(ctx, n_groups, mlp->n_params, sizeof(float));
    if (!arena) {
        free(mlp);
        return NULL;
    }
    mlp->params = arena;
    mlp_point(mlp->W, mlp->b, mlp->params, mlp);
    if (trainable) {
        mlp->grads = arena + mlp->n_params;
        mlp->m = arena + 2 * mlp->n_params;
        mlp->v = arena + 3 * mlp->n_params;
        mlp_point(mlp->dW, mlp->db, mlp->grads, mlp);
    }
    return mlp;
}

void
mmcl__mlp_destroy(mmcl_mlp *mlp)
{
    if (!mlp)
        return;
    free(mlp->params); /* the arena */
    free(mlp);
}

/* x (n) ~ U(-a, a), float, from the explicit RNG. */
static void
fill_uniform(uint64_t *rng, float *x, double a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(a * (2.0 * mmcl__rng_uniform(rng) - 1.0));
}

void
mmcl__mlp_init(mmcl_mlp *mlp, uint64_t *rng)
{
    /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b (nn.h says why). */
    for (int l = 0; l < mlp->n_layers; l++) {
        double bound = 1.0 / sqrt((double)mlp->sizes[l]);
        fill_uniform(rng, mlp->W[l], bound,
                     (size_t)mlp->sizes[l + 1] * mlp->sizes[l]);
        fill_uniform(rng, mlp->b[l], bound, (size_t)mlp->sizes[l + 1]);
    }
    if (mlp->grads)
        memset(mlp->grads, 0, 3 * mlp->n_params * sizeof(float));
}

void
mmcl__mlp_zero_grad(mmcl_mlp *mlp)
{
    if (mlp->grads)
        memset(mlp->grads, 0, mlp->n_params * sizeof(float));
}

mmcl_mlp_acts *
mmcl__mlp_acts_create(mmcl_context *ctx, const mmcl_mlp *mlp, int N_max,
                      int training)
{
    if (N_max < 1) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "mlp: batch size must be >= 1 (got %d)", N_max);
        return NULL;
    }
    int L = mlp->n_layers;
    size_t rows = (size_t)N_max;
    int widest = 0, widest_hidden = 0; /* over layer outputs */
    for (int l = 1; l <= L; l++) {
        if (mlp->sizes[l] > widest)
            widest = mlp->sizes[l];
        if (l < L && mlp->sizes[l] > widest_hidden)
            widest_hidden = mlp->sizes[l];
    }

    /* Sizes in floats. Training: every pre and hidden post, plus two
     * backward scratch buffers. Inference: two ping-pong buffers. */
    size_t total = 0;
    if (training) {
        for (int l = 0; l < L; l++)
            total += rows * mlp->sizes[l + 1] * (l < L - 1 ? 2 : 1);
        total += 2 * rows * widest_hidden;
    } else {
        total = 2 * rows * widest;
    }

    mmcl_mlp_acts *acts = mmcl__calloc_array(ctx, 1, 1, sizeof(*acts));
    if (!acts)
        return NULL;
    acts->arena = mmcl__malloc_array(ctx, total, 1, sizeof(float));
    if (!acts->arena) {
        free(acts);
        return NULL;
    }
    acts->N_max = N_max;
    acts->training = training ? 1 : 0;

    float *p = acts->arena;
    if (training) {
        for (int l = 0; l < L; l++) {
            acts->pre[l] = p;
            p += rows * mlp->sizes[l + 1];
            if (l < L - 1) {
                acts->post[l] = p;
                p += rows * mlp->sizes[l + 1];
            }
        }
        if (widest_hidden > 0) {
            acts->grad_h = p;
            acts->grad_pre = p + rows * widest_hidden;
        }
    } else {
        /* Layer l writes buffer l % 2 and applies its activation in place;
         * layer l + 1 reads it and writes the other one. */
        for (int l = 0; l < L; l++) {
            acts->pre[l] = acts->arena + (size_t)(l % 2) * rows * widest;
            if (l < L - 1)
                acts->post[l] = acts->pre[l];
        }
    }
    acts->out = acts->pre[L - 1];
    return acts;
}

void
mmcl__mlp_acts_rows(mmcl_mlp_acts *view, const mmcl_mlp_acts *acts,
                    const mmcl_mlp *mlp, int r0)
{
    int L = mlp->n_layers, widest_hidden = 0;
    for (int l = 1; l < L; l++)
        if (mlp->sizes[l] > widest_hidden)
            widest_hidden = mlp->sizes[l];
    size_t r = (size_t)r0;
    *view = *acts;
    view->N_max = acts->N_max - r0;
    for (int l = 0; l < L; l++) {
        view->pre[l] = acts->pre[l] + r * mlp->sizes[l + 1];
        if (acts->post[l])
            view->post[l] = acts->post[l] + r * mlp->sizes[l + 1];
    }
    if (acts->grad_h) {
        view->grad_h = acts->grad_h + r * widest_hidden;
        view->grad_pre = acts->grad_pre + r * widest_hidden;
    }
    view->out = view->pre[L - 1];
}

void
mmcl__mlp_grads_view(mmcl_mlp *view, const mmcl_mlp *mlp, float *grads)
{
    *view = *mlp;
    view->grads = grads;
    mlp_point(view->dW, view->db, grads, mlp);
}

void
mmcl__mlp_acts_destroy(mmcl_mlp_acts *acts)
{
    if (!acts)
        return;
    free(acts->arena);
    free(acts);
}

static void
activation_forward(mmcl_activation act, float *y, const float *x, size_t n)
{
    if (act == MMCL_ACTIVATION_GELU)
        mmcl__gelu_forward(y, x, n);
    else
        mmcl__relu_forward(y, x, n);
}

static void
activation_backward(mmcl_activation act, float *dx, const float *dy,
                    const float *x, size_t n)
{
    if (act == MMCL_ACTIVATION_GELU)
        mmcl__gelu_backward(dx, dy, x, n);
    else
        mmcl__relu_backward(dx, dy, x, n);
}

mmcl_status
mmcl__mlp_forward(mmcl_context *ctx, mmcl_mlp_acts *acts, const mmcl_mlp *mlp,
                  const float *x, int N)
{
    if (N < 1 || N > acts->N_max)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mlp forward: batch of %d rows, buffers hold "
                           "1..%d",
                           N, acts->N_max);
    const float *h = x; /* (N, sizes[l]) input of layer l */
    for (int l = 0; l < mlp->n_layers; l++) {
        int Din = mlp->sizes[l], Dout = mlp->sizes[l + 1];
        int hidden = l < mlp->n_layers - 1;
        mmcl__linear_forward(acts->pre[l], h, mlp->W[l], mlp->b[l], N, Din,
                             Dout);
        if (hidden) {
            activation_forward(mlp->act, acts->post[l], acts->pre[l],
                               (size_t)N * Dout);
            h = acts->post[l];
        }
    }
    return MMCL_OK;
}

mmcl_status
mmcl__mlp_backward(mmcl_context *ctx, float *dx, mmcl_mlp *mlp,
                   mmcl_mlp_acts *acts, const float *dy, const float *x, int N)
{
    if (!mlp->grads || !acts->training)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mlp backward needs a trainable MLP and "
                           "training-mode activations");
    if (N < 1 || N > acts->N_max)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mlp backward: batch of %d rows, buffers hold "
                           "1..%d",
                           N, acts->N_max);

    /* g (N, sizes[l+1]) = dLoss / d pre[l]. Hidden gradients ping-pong
     * between the two scratch buffers: layer l writes dLoss/d post[l-1]
     * into the one g does not occupy, overwriting it (beta = 0, no
     * memset), and the activation backward turns it into g for layer
     * l - 1 in place (ReLU) or into the other buffer (GELU). */
    int L = mlp->n_layers;
    const float *g = dy;
    float *buf[2] = {acts->grad_h, acts->grad_pre};
    int next = 0;
    colsum_add(mlp->db[L - 1], dy, N, mlp->sizes[L]);
    for (int l = L - 1; l >= 1; l--) {
        int Din = mlp->sizes[l], Dout = mlp->sizes[l + 1];
        float *gh = buf[next];
        /* dW[l] += g^T post[l-1];  gh (N, Din) = g W[l] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Dout, Din, N, 1.0f,
                    g, Dout, acts->post[l - 1], Din, 1.0f, mlp->dW[l], Din);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Din, Dout,
                    1.0f, g, Dout, mlp->W[l], Din, 0.0f, gh, Din);
        if (mlp->act == MMCL_ACTIVATION_RELU) {
            relu_backward_bias(gh, mlp->db[l - 1], acts->pre[l - 1], N, Din);
            g = gh;
            next ^= 1;
        } else {
            size_t n = (size_t)N * Din;
            float *gp = buf[next ^ 1];
            memset(gp, 0, n * sizeof(float));
            activation_backward(mlp->act, gp, gh, acts->pre[l - 1], n);
            colsum_add(mlp->db[l - 1], gp, N, Din);
            g = gp;
        }
    }
    /* Layer 0: dW[0] += g^T x, and dx += g W[0] only when asked (the
     * inputs of an encoder need no gradient). */
    {
        int Din = mlp->sizes[0], Dout = mlp->sizes[1];
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Din, Dout,
                        1.0f, g, Dout, mlp->W[0], Din, 1.0f, dx, Din);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Dout, Din, N, 1.0f,
                    g, Dout, x, Din, 1.0f, mlp->dW[0], Din);
    }
    return MMCL_OK;
}
