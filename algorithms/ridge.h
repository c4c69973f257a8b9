/* SPDX-License-Identifier: MIT */
/*
 * Ridge regression (Hoerl & Kennard 1970) from accumulated sufficient
 * statistics, in double: the linear decoders D_m of the information-loss
 * maps (design section 3.5) and the linear probes (section 3.6).
 * Typical use: mmcl__moments_accumulate() over batches of (x, y) rows,
 * mmcl__cov_from_moments() for the centred blocks, then
 * mmcl__ridge_fit_centred().
 */
#ifndef MMCL_ALGORITHMS_RIDGE_H
#define MMCL_ALGORITHMS_RIDGE_H

#include "context_internal.h"

/*
 * Solves (XtX + lambda I) B = XtY (LAPACKE_dposv on copies):
 *   B (p, q) output; XtX (p, p) symmetric (upper triangle read);
 *   XtY (p, q); lambda >= 0.
 * @return MMCL_ERR_INVALID_ARG (bad sizes, lambda < 0 or not finite),
 *         MMCL_ERR_NUMERIC (NaN/Inf in the inputs, or XtX + lambda I not
 *         positive definite, e.g. collinear inputs with lambda = 0),
 *         MMCL_ERR_NO_MEMORY.
 *         B is written only on success.
 */
mmcl_status mmcl__ridge_solve(mmcl_context *ctx, double *B, const double *XtX,
                              const double *XtY, double lambda, int p, int q);

/*
 * Ridge with an unpenalised intercept, y ~ B^T x + b0, from centred
 * statistics over the same rows:
 *   Cxx (p, p) = cov(x), Cxy (p, q) = cov(x, y), both divided by the row
 *   count (so lambda is per row and does not grow with the sample);
 *   mx (p), my (q): means of x and y.
 * Outputs B (p, q) = (Cxx + lambda I)^-1 Cxy and b0 (q) = my - B^T mx.
 * Centring first is what leaves the intercept out of the penalty
 * (Hastie, Tibshirani & Friedman, ESL 2nd ed., section 3.4.1).
 * Same errors as mmcl__ridge_solve(); B and b0 written only on success.
 */
mmcl_status mmcl__ridge_fit_centred(mmcl_context *ctx, double *B, double *b0,
                                    const double *Cxx, const double *Cxy,
                                    const double *mx, const double *my,
                                    double lambda, int p, int q);

/*
 * Converts a fitted decoder to the float linear layer of nn.h
 * (y = x W^T + b): W (q, p) = B^T, b (q) = b0 (b0 may be NULL: b unset).
 */
void mmcl__ridge_to_linear(float *W, float *b, const double *B,
                           const double *b0, int p, int q);

#endif /* MMCL_ALGORITHMS_RIDGE_H */
