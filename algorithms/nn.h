/* SPDX-License-Identifier: MIT */
/*
 * Network kernels for the `clip` objective (design section 3.4), llm.c
 * style: float32 row-major buffers, forward/backward pairs with matching
 * argument names, outputs first, then inputs, then parameters, then
 * dimensions. Every backward ACCUMULATES (+=) into its gradients; the
 * training step zeroes the gradient arena once per step.
 *
 * Names: N rows (batch), Din/Dout input/output features, D embedding dim
 * (not llm.c's I/O: OpenBLAS's cblas.h includes <complex.h>, whose macro I
 * would break any prototype that names a parameter I).
 * Matrix products go through cblas_sgemm; element-wise loops are plain C.
 *
 * On top of the kernels, an MLP (list of layer sizes + one activation)
 * whose tensors live in flat arenas (style.md section 5, Example 6):
 * parameters, gradients and the two Adam moments are one group each, so
 * zeroing, the optimizer step, checkpoint I/O and NaN scans are single
 * loops over n_params floats.
 */
#ifndef MMCL_ALGORITHMS_NN_H
#define MMCL_ALGORITHMS_NN_H

#include <stddef.h>
#include <stdint.h>

#include "context_internal.h"

/* ---- Kernels ---------------------------------------------------------- */

/*
 * y = x W^T + b
 * y: (N, Dout)   x: (N, Din)   W: (Dout, Din)   b: (Dout) or NULL (no bias)
 */
void mmcl__linear_forward(float *y, const float *x, const float *W,
                          const float *b, int N, int Din, int Dout);

/*
 * Accumulates, given dy (N, Dout):
 *   dx (N, Din) += dy W,   dW (Dout, Din) += dy^T x,   db (Dout) += sum_n dy
 * dx and db may be NULL when not needed.
 */
void mmcl__linear_backward(float *dx, float *dW, float *db, const float *dy,
                           const float *x, const float *W, int N, int Din,
                           int Dout);

/* y (n) = max(x, 0); y may alias x. */
void mmcl__relu_forward(float *y, const float *x, size_t n);

/* dx (n) += dy * [x > 0], x the forward INPUT (subgradient 0 at x = 0;
 * NaN x passes no gradient). dx must not overlap dy or x. */
void mmcl__relu_backward(float *dx, const float *dy, const float *x, size_t n);

/*
 * GELU, tanh approximation (Hendrycks & Gimpel 2016, "Gaussian Error
 * Linear Units", section 2), as in GPT-2 / llm.c:
 *   y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * y (n); y may alias x.
 */
void mmcl__gelu_forward(float *y, const float *x, size_t n);

/* dx (n) += dy * gelu'(x), x the forward INPUT; exact derivative of the
 * tanh approximation above. */
void mmcl__gelu_backward(float *dx, const float *dy, const float *x, size_t n);

/*
 * Row-wise L2 normalisation with an explicit eps, smooth everywhere:
 *   r_n = sqrt(||x_n||^2 + eps^2),   y_n = x_n / r_n
 * so ||y_n|| = 1 up to O(eps^2 / ||x_n||^2) and a zero row maps to zero
 * (instead of NaN). Sums of squares are accumulated in double.
 * y: (N, D)   r: (N), kept for backward   x: (N, D)   eps > 0
 */
void mmcl__l2norm_forward(float *y, float *r, const float *x, float eps, int N,
                          int D);

/*
 * dx_n (D) += (dy_n - y_n (y_n . dy_n)) / r_n, the Jacobian of the
 * forward above, using its outputs y (N, D) and r (N); dy: (N, D).
 */
void mmcl__l2norm_backward(float *dx, const float *dy, const float *y,
                           const float *r, int N, int D);

/* ---- MLP -------------------------------------------------------------- */

typedef enum mmcl_activation {
    MMCL_ACTIVATION_RELU = 0,
    MMCL_ACTIVATION_GELU = 1
} mmcl_activation;

/* "relu" / "gelu" (NULL for an unknown value). */
const char *mmcl__activation_name(mmcl_activation act);

/* Parses "relu" / "gelu" (case-sensitive); returns 0 when unknown. */
int mmcl__activation_from_name(const char *name, mmcl_activation *act);

enum { MMCL_MLP_MAX_LAYERS = 8 };

/*
 * L linear layers: layer l maps sizes[l] to sizes[l + 1] features, and the
 * activation follows every layer but the last (L = 1 is a linear
 * encoder). Plain data: read the fields; sizes and views are fixed at
 * creation.
 */
typedef struct mmcl_mlp {
    int n_layers;                       /* L, 1..MMCL_MLP_MAX_LAYERS */
    int sizes[MMCL_MLP_MAX_LAYERS + 1]; /* sizes[0] in ... sizes[L] out */
    mmcl_activation act;
    size_t n_params; /* floats in each group */
    /* Group layout: W[0] .. W[L-1], then b[0] .. b[L-1]. The first
     * n_weights floats are the matrices, the rest the biases, so weight
     * decay can skip biases with two optimizer calls. */
    size_t n_weights;
    float *params; /* (n_params) */
    float *grads;  /* (n_params), NULL unless trainable */
    float *m;      /* (n_params) Adam first moment, NULL unless trainable */
    float *v;      /* (n_params) Adam second moment, same */
    float *W[MMCL_MLP_MAX_LAYERS];  /* (sizes[l+1], sizes[l]) in params */
    float *b[MMCL_MLP_MAX_LAYERS];  /* (sizes[l+1]) in params */
    float *dW[MMCL_MLP_MAX_LAYERS]; /* views into grads (NULL if frozen) */
    float *db[MMCL_MLP_MAX_LAYERS];
} mmcl_mlp;

/*
 * New MLP with the n_sizes = L + 1 layer sizes in @p sizes (each >= 1,
 * 2 <= n_sizes <= MMCL_MLP_MAX_LAYERS + 1). Parameters are zero; call
 * mmcl__mlp_init() or fill mlp->params (e.g. from a model file).
 * @p trainable nonzero also allocates the grads, m and v groups (zeroed).
 * @return An MLP that must be freed with mmcl__mlp_destroy(), or NULL
 *         (MMCL_ERR_INVALID_ARG / MMCL_ERR_NO_MEMORY in @p ctx).
 */
mmcl_mlp *mmcl__mlp_create(mmcl_context *ctx, const int *sizes, int n_sizes,
                           mmcl_activation act, int trainable);

/* Frees @p mlp; NULL is allowed. */
void mmcl__mlp_destroy(mmcl_mlp *mlp);

/*
 * Random init from the explicit RNG, PyTorch's nn.Linear default
 * (reset_parameters: kaiming_uniform_ with a = sqrt(5), which works out
 * to this bound): every layer's weights AND biases ~ U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)), i.e. std 1/sqrt(3 fan_in), drawn layer by layer (W[l]
 * row-major, then b[l]). Gradients and moments are zeroed.
 *
 * Why this scale and not He's sqrt(2 / fan_in) (2.45x larger): the clip
 * encoders feed an L2 normalisation, so scaling a layer's weights leaves
 * the embedding (nearly, the biases aside) unchanged and only changes how
 * far Adam's steps, ~lr per element whatever the gradient's scale, move
 * the weights relative to their size. With He's scale a given lr trains
 * as if lr were 2.45x smaller than in PyTorch: on bench/bench_clip.py's
 * problem the loss per epoch was 4.13 2.25 2.08 2.00 against PyTorch's
 * 3.13 2.00 1.91 1.85, and He at 2.45x the lr came close to PyTorch's
 * curve. With PyTorch's scale an lr means what it means there.
 */
void mmcl__mlp_init(mmcl_mlp *mlp, uint64_t *rng);

/* grads = 0 (no-op for a frozen MLP). */
void mmcl__mlp_zero_grad(mmcl_mlp *mlp);

/*
 * Activations of one batch of up to N_max rows: one arena, named views.
 * With training: pre[l] (N_max, sizes[l+1]) = layer l's linear output and
 * post[l] (same) = its activation (l < L-1) are all kept for backward.
 * Without: pre/post share two ping-pong buffers (memory for two layers,
 * not L), and backward is refused. Either way out (N_max, sizes[L]) is
 * the output of the last forward.
 */
typedef struct mmcl_mlp_acts {
    int N_max;
    int training;
    float *arena;
    float *pre[MMCL_MLP_MAX_LAYERS];
    float *post[MMCL_MLP_MAX_LAYERS];
    float *grad_h;   /* (N_max, widest hidden) backward scratch, or NULL */
    float *grad_pre; /* same */
    float *out;
} mmcl_mlp_acts;

/*
 * Activation buffers for @p mlp and batches of up to @p N_max >= 1 rows.
 * @return Buffers that must be freed with mmcl__mlp_acts_destroy(), or
 *         NULL (MMCL_ERR_INVALID_ARG / MMCL_ERR_NO_MEMORY in @p ctx).
 */
mmcl_mlp_acts *mmcl__mlp_acts_create(mmcl_context *ctx, const mmcl_mlp *mlp,
                                     int N_max, int training);

/* Frees @p acts; NULL is allowed. */
void mmcl__mlp_acts_destroy(mmcl_mlp_acts *acts);

/*
 * @p view = the rows r0 .. N_max - 1 of training-mode @p acts (made for
 * @p mlp) as activations of their own, N_max - r0 rows (0 <= r0 < N_max):
 * the same buffers, every pointer moved by r0 rows, scratch included.
 * Forward and backward on disjoint row views may run concurrently. The
 * view owns nothing: do not destroy it.
 */
void mmcl__mlp_acts_rows(mmcl_mlp_acts *view, const mmcl_mlp_acts *acts,
                         const mmcl_mlp *mlp, int r0);

/*
 * @p view = @p mlp with its gradient views (grads, dW, db) pointing into
 * @p grads (n_params floats, the caller's) instead: a backward on the view
 * accumulates there, so concurrent backwards on different rows can each
 * have their own gradient buffer. Parameters and moments stay shared
 * (read only during a backward). Owns nothing: do not destroy it.
 */
void mmcl__mlp_grads_view(mmcl_mlp *view, const mmcl_mlp *mlp, float *grads);

/*
 * acts->out (N, sizes[L]) = mlp(x), x: (N, sizes[0]); x is not kept, pass
 * it again to backward.
 * @return MMCL_ERR_INVALID_ARG when N is not in 1..acts->N_max.
 */
mmcl_status mmcl__mlp_forward(mmcl_context *ctx, mmcl_mlp_acts *acts,
                              const mmcl_mlp *mlp, const float *x, int N);

/*
 * Backward of the last training-mode forward of the same x (N, sizes[0]):
 * given dy (N, sizes[L]) = dLoss/d(out), accumulates into mlp->grads and,
 * when dx is not NULL, into dx (N, sizes[0]). Clobbers the acts scratch.
 * @return MMCL_ERR_INVALID_ARG for a frozen MLP, inference-mode acts or
 *         N out of range.
 */
mmcl_status mmcl__mlp_backward(mmcl_context *ctx, float *dx, mmcl_mlp *mlp,
                               mmcl_mlp_acts *acts, const float *dy,
                               const float *x, int N);

#endif /* MMCL_ALGORITHMS_NN_H */
