/* SPDX-License-Identifier: MIT */
/*
 * The encoders' matrix products, y (M, N) = act(x (M, K) W^T + b), for one
 * fixed shape each, on oneDNN's matmul when mmcl is built with it
 * (MMCL_HAVE_DNNL), else on cblas_sgemm.
 *
 * A product is created once per encoder and shape (creating a oneDNN
 * primitive chooses and generates its kernel, and packs the weights:
 * milliseconds) and then run any number of times, concurrently from
 * several threads, each with its own mmcl__matmul_exec. Every run of one
 * product computes on one thread (mmcl's workers are the parallelism) and
 * with the blocking chosen at creation, so a row's result depends only on
 * the row, the weights and the CPU: never on the other rows, the tile size
 * or the thread count.
 *
 * Precision: f32 everywhere; bf16 (inputs and weights rounded to bfloat16,
 * f32 accumulation and outputs) only where oneDNN's effective ISA has
 * native bf16 products (AVX-512 BF16 or AMX): emulation elsewhere would be
 * slower than f32, so it is refused.
 *
 * MMCL_ENGINE=openblas in the environment runs the products on
 * cblas_sgemm instead, to compare with oneDNN (tests, benchmarks).
 */
#ifndef MMCL_ALGORITHMS_MATMUL_H
#define MMCL_ALGORITHMS_MATMUL_H

#include <stddef.h>

#include "context_internal.h"
#include "mmcl/blas.h"

typedef enum mmcl__precision {
    MMCL__PRECISION_F32 = 0,
    MMCL__PRECISION_BF16 = 1
} mmcl__precision;

/* "f32" / "bf16". */
const char *mmcl__precision_name(mmcl__precision p);

/* Parses "f32" / "bf16"; returns 0 when unknown. */
int mmcl__precision_from_name(const char *name, mmcl__precision *p);

/* The engine the products run on in this process (mmcl/blas.h's
 * mmcl_engine_info; thread-safe, chosen once per process). */
void mmcl__engine_info_get(mmcl_engine_info *info);

/*
 * MMCL_OK when @p p can run here; else MMCL_ERR_UNSUPPORTED naming
 * @p option (the flag or key the user gave, e.g. "--precision bf16") and
 * what the CPU (as oneDNN sees it, ONEDNN_MAX_CPU_ISA included) lacks.
 */
mmcl_status mmcl__precision_check(mmcl_context *ctx, mmcl__precision p,
                                  const char *option);

typedef enum mmcl__matmul_act {
    MMCL__MATMUL_NONE = 0,
    MMCL__MATMUL_RELU = 1
} mmcl__matmul_act;

/* One product of fixed shape; immutable once created. */
typedef struct mmcl__matmul mmcl__matmul;

/*
 * y (M, N) = act(x (M, K) W^T + b) with W (N, K) row-major and b (N) or
 * NULL. The weights are copied (packed, or rounded to bf16): @p W and
 * @p b need not outlive the product on oneDNN; on cblas_sgemm they are
 * borrowed and must.
 * @return NULL with the error in @p ctx (a precision this CPU cannot run,
 *         a shape oneDNN refuses, no memory).
 */
mmcl__matmul *mmcl__matmul_create(mmcl_context *ctx, int M, int K, int N,
                                  const float *W, const float *b,
                                  mmcl__matmul_act act, mmcl__precision p);

/*
 * As mmcl__matmul_create, with the output in precision @p out. A bf16
 * output (only of a bf16 product) is the input of the next bf16 product
 * of a chain, an encoder's hidden layers: the f32 result, bias and
 * activation included, rounded to the nearest bfloat16 (ties to even) by
 * the product's own kernel as it stores it, which is what that next
 * product would otherwise round its f32 input to, without a pass over
 * the values between the two.
 */
mmcl__matmul *mmcl__matmul_create_out(mmcl_context *ctx, int M, int K, int N,
                                      const float *W, const float *b,
                                      mmcl__matmul_act act, mmcl__precision p,
                                      mmcl__precision out);

/* The precision of a product's output. */
mmcl__precision mmcl__matmul_out_precision(const mmcl__matmul *mm);
void mmcl__matmul_destroy(mmcl__matmul *mm);

/* Per-thread state for running products: a oneDNN stream and the bf16
 * copy of an input of up to @p max_in floats. */
typedef struct mmcl__matmul_exec mmcl__matmul_exec;
mmcl__matmul_exec *mmcl__matmul_exec_create(mmcl_context *ctx, size_t max_in);
void mmcl__matmul_exec_destroy(mmcl__matmul_exec *ex);

/* y (M, N) = the product of @p mm (f32 output) for x (M, K); y must not
 * overlap x.
 * @return MMCL_OK, or an error from oneDNN (in @p ctx). */
mmcl_status mmcl__matmul_run(mmcl_context *ctx, const mmcl__matmul *mm,
                             mmcl__matmul_exec *ex, float *y, const float *x);

/* The same with x (M, K) in precision @p x_type (bf16, as the upper 16
 * bits of a float, only for a bf16 product; f32 is rounded by a bf16
 * product) and y (M, N) in the product's output precision. */
mmcl_status mmcl__matmul_run_typed(mmcl_context *ctx, const mmcl__matmul *mm,
                                   mmcl__matmul_exec *ex, void *y,
                                   const void *x, mmcl__precision x_type);

/* dst (n) = src rounded to the nearest bfloat16 (ties to even; NaN stays
 * NaN), as the upper 16 bits of a float. */
void mmcl__bf16_round(unsigned short *dst, const float *src, size_t n);

#endif /* MMCL_ALGORITHMS_MATMUL_H */
