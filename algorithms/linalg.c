/* SPDX-License-Identifier: MIT */
/*
 * Double-precision building blocks on CBLAS/LAPACKE: moment accumulation
 * (dsyrk/dgemm), Cholesky (dpotrf), triangular solves (dtrsm), SVD
 * (dgesvd) and the symmetric eigensolver (dsyevd). No hand-written matrix
 * products; the loops here are element-wise (conversion, symmetrisation,
 * diagonal updates, column sums).
 */
#include "linalg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

/* The name used in messages when the caller gave none. */
static const char *
name_or(const char *what, const char *fallback)
{
    return what ? what : fallback;
}

/* One place that turns a LAPACKE info into a status and a message. */
static mmcl_status
lapack_status(mmcl_context *ctx, lapack_int info, const char *routine,
              const char *what, const char *failure)
{
    if (info < 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s on %s: argument %d is invalid (internal error)",
                           routine, name_or(what, "matrix"), (int)-info);
    if (info > 0)
        return mmcl__error(ctx, MMCL_ERR_NUMERIC, "%s on %s: %s (info = %d)",
                           routine, name_or(what, "matrix"), failure,
                           (int)info);
    return MMCL_OK;
}

/* dst (rows, cols) double <- src float; column sums (cols) += when sum. */
static void
to_double(double *dst, double *sum, const float *src, int rows, int cols)
{
    for (int n = 0; n < rows; n++) {
        const float *s_n = src + (size_t)n * cols;
        double *d_n = dst + (size_t)n * cols;
        for (int j = 0; j < cols; j++)
            d_n[j] = (double)s_n[j];
        if (sum)
            for (int j = 0; j < cols; j++)
                sum[j] += d_n[j];
    }
}

void
mmcl__moments_accumulate(double *S11, double *S22, double *S12, double *s1,
                         double *s2, double *work, const float *X1,
                         const float *X2, int N, int d1, int d2)
{
    if (N <= 0)
        return;
    double *A1 = work;                  /* (N, d1) */
    double *A2 = work + (size_t)N * d1; /* (N, d2) */

    to_double(A1, s1, X1, N, d1);
    /* S11 += A1^T A1 (upper triangle), then mirror it: O(d^2) per batch
     * against O(N d^2) for the product, and S11 stays a full matrix. */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d1, N, 1.0, A1, d1, 1.0,
                S11, d1);
    mmcl__sym_from_upper(S11, d1);
    if (!X2)
        return;

    to_double(A2, s2, X2, N, d2);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d2, N, 1.0, A2, d2, 1.0,
                S22, d2);
    mmcl__sym_from_upper(S22, d2);
    /* S12 (d1, d2) += A1^T A2 */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d1, d2, N, 1.0, A1, d1,
                A2, d2, 1.0, S12, d2);
}

void
mmcl__cov_from_moments(double *cov, const double *S, const double *sa,
                       const double *sb, double count, int da, int db)
{
    if (cov != S)
        memcpy(cov, S, (size_t)da * db * sizeof(double));
    /* Row by row: da * db may exceed the int range of BLAS lengths. */
    for (int i = 0; i < da; i++)
        cblas_dscal(db, 1.0 / count, cov + (size_t)i * db, 1);
    /* cov -= mean_a mean_b^T = (sa sb^T) / count^2 */
    if (sa && sb)
        cblas_dger(CblasRowMajor, da, db, -1.0 / (count * count), sa, 1, sb, 1,
                   cov, db);
}

int
mmcl__all_finite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

void
mmcl__sym_from_upper(double *A, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++)
            A[(size_t)i * n + j] = A[(size_t)j * n + i];
}

void
mmcl__symmetrize(double *A, int n)
{
    for (int i = 1; i < n; i++) {
        for (int j = 0; j < i; j++) {
            double m = 0.5 * (A[(size_t)i * n + j] + A[(size_t)j * n + i]);
            A[(size_t)i * n + j] = m;
            A[(size_t)j * n + i] = m;
        }
    }
}

void
mmcl__add_diag(double *A, double eps, int n)
{
    for (int i = 0; i < n; i++)
        A[(size_t)i * n + i] += eps;
}

double
mmcl__mean_diag(const double *A, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += A[(size_t)i * n + i];
    return n > 0 ? s / n : 0.0;
}

mmcl_status
mmcl__cholesky(mmcl_context *ctx, double *A, int n, const char *what)
{
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', n, A, n);
    if (info > 0)
        return mmcl__error(ctx, MMCL_ERR_NUMERIC,
                           "Cholesky factorisation (dpotrf) failed: %s is "
                           "not positive definite (leading minor %d of %d); "
                           "a larger ridge eps may help",
                           name_or(what, "the matrix"), (int)info, n);
    mmcl_status st = lapack_status(ctx, info, "dpotrf", what, "");
    if (st != MMCL_OK)
        return st;
    /* dpotrf leaves the strict upper triangle untouched: clear it so that
     * A is exactly L for any later use. */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            A[(size_t)i * n + j] = 0.0;
    return MMCL_OK;
}

void
mmcl__trsm_lower_left(double *B, const double *L, int transpose, int n, int m)
{
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower,
                transpose ? CblasTrans : CblasNoTrans, CblasNonUnit, n, m, 1.0,
                L, n, B, m);
}

void
mmcl__trsm_lower_right(double *B, const double *L, int transpose, int m, int n)
{
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower,
                transpose ? CblasTrans : CblasNoTrans, CblasNonUnit, m, n, 1.0,
                L, n, B, n);
}

mmcl_status
mmcl__svd(mmcl_context *ctx, double *U, double *s, double *Vt, double *A, int m,
          int n, const char *what)
{
    int r = m < n ? m : n;
    /* dgesvd's superb: the unconverged superdiagonal, min(m, n) - 1. */
    double *superb =
        mmcl__malloc_array(ctx, (size_t)(r > 1 ? r - 1 : 1), 1, sizeof(double));
    if (!superb)
        return MMCL_ERR_NO_MEMORY;
    lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'S', 'S', m, n, A, n, s,
                                     U, r, Vt, n, superb);
    free(superb);
    return lapack_status(ctx, info, "SVD (dgesvd)", what, "did not converge");
}

mmcl_status
mmcl__sym_eig(mmcl_context *ctx, double *w, double *A, int n, const char *what)
{
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, A, n, w);
    return lapack_status(ctx, info, "eigendecomposition (dsyevd)", what,
                         "did not converge");
}

void
mmcl__fix_column_signs(double *A, double *B, int rows, int rows_b, int cols)
{
    for (int j = 0; j < cols; j++) {
        int imax = 0;
        double amax = -1.0;
        for (int i = 0; i < rows; i++) {
            double a = fabs(A[(size_t)i * cols + j]);
            if (a > amax) {
                amax = a;
                imax = i;
            }
        }
        if (A[(size_t)imax * cols + j] >= 0.0)
            continue;
        for (int i = 0; i < rows; i++)
            A[(size_t)i * cols + j] = -A[(size_t)i * cols + j];
        if (B)
            for (int i = 0; i < rows_b; i++)
                B[(size_t)i * cols + j] = -B[(size_t)i * cols + j];
    }
}
