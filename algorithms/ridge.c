/* SPDX-License-Identifier: MIT */
/*
 * Ridge regression by a Cholesky solve of the regularised normal
 * equations (dposv), with the intercept handled by centring.
 */
#include "ridge.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "linalg.h"

mmcl_status
mmcl__ridge_solve(mmcl_context *ctx, double *B, const double *XtX,
                  const double *XtY, double lambda, int p, int q)
{
    if (p < 1 || q < 1)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "ridge: sizes must be positive (p = %d inputs, "
                           "q = %d outputs)",
                           p, q);
    if (!(lambda >= 0.0) || !isfinite(lambda))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "ridge: lambda must be finite and >= 0 (got %g)",
                           lambda);

    if (!mmcl__all_finite(XtX, (size_t)p * p) ||
        !mmcl__all_finite(XtY, (size_t)p * q))
        return mmcl__error(ctx, MMCL_ERR_NUMERIC,
                           "ridge: the statistics contain NaN or Inf");

    /* Arena: A (p, p) = XtX + lambda I | X (p, q) = XtY, then B. */
    size_t n_A = (size_t)p * p, n_X = (size_t)p * q;
    double *A = mmcl__malloc_array(ctx, n_A + n_X, 1, sizeof(double));
    if (!A)
        return MMCL_ERR_NO_MEMORY;
    double *X = A + n_A;
    memcpy(A, XtX, n_A * sizeof(double));
    mmcl__add_diag(A, lambda, p);
    memcpy(X, XtY, n_X * sizeof(double));

    mmcl_status st = MMCL_OK;
    lapack_int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', p, q, A, p, X, q);
    if (info < 0)
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "ridge: dposv argument %d is invalid (internal "
                         "error)",
                         (int)-info);
    else if (info > 0)
        st = mmcl__error(ctx, MMCL_ERR_NUMERIC,
                         "ridge: XtX + lambda*I is not positive definite "
                         "(leading minor %d of %d); inputs are collinear, "
                         "use lambda > 0",
                         (int)info, p);
    else
        memcpy(B, X, n_X * sizeof(double));
    free(A);
    return st;
}

mmcl_status
mmcl__ridge_fit_centred(mmcl_context *ctx, double *B, double *b0,
                        const double *Cxx, const double *Cxy, const double *mx,
                        const double *my, double lambda, int p, int q)
{
    mmcl_status st = mmcl__ridge_solve(ctx, B, Cxx, Cxy, lambda, p, q);
    if (st != MMCL_OK)
        return st;
    /* b0 (q) = my - B^T mx */
    memcpy(b0, my, (size_t)q * sizeof(double));
    cblas_dgemv(CblasRowMajor, CblasTrans, p, q, -1.0, B, q, mx, 1, 1.0, b0, 1);
    return MMCL_OK;
}

void
mmcl__ridge_to_linear(float *W, float *b, const double *B, const double *b0,
                      int p, int q)
{
    for (int o = 0; o < q; o++)
        for (int i = 0; i < p; i++)
            W[(size_t)o * p + i] = (float)B[(size_t)i * q + o];
    if (b0)
        for (int o = 0; o < q; o++)
            b[o] = (float)b0[o];
}
