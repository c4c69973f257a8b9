/* SPDX-License-Identifier: MIT */
/*
 * Double-precision building blocks on CBLAS/LAPACKE: moment accumulation
 * (one float SYRK per batch of centred rows, summed in double), Cholesky
 * (dpotrf), triangular solves (dtrsm), SVD (dgesvd) and the symmetric
 * eigensolver (dsyevd). No hand-written matrix products; the loops here
 * are element-wise (centring, symmetrisation, diagonal updates, column
 * sums).
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

size_t
mmcl__moments_work_size(int N, int d1, int d2)
{
    size_t d = (size_t)d1 + (size_t)(d2 > 0 ? d2 : 0);
    size_t floats = (N > 0 ? (size_t)N : 0) * d + d * d;
    /* The column means (d doubles), then the floats: Y (N, d), P (d, d). */
    return d + (floats + 1) / 2;
}

void
mmcl__moments_accumulate(double *S11, double *S22, double *S12, double *s1,
                         double *s2, double *work, const float *X1,
                         const float *X2, int N, int d1, int d2)
{
    if (N <= 0)
        return;
    if (!X2)
        d2 = 0;
    int d = d1 + d2;
    double *mean = work;               /* (d) */
    float *Y = (float *)(work + d);    /* (N, d): [X1 X2] - mean */
    float *P = Y + (size_t)N * d;      /* (d, d): Y^T Y, upper triangle */

    /* Column sums in double, row by row (a fixed order). */
    for (int j = 0; j < d; j++)
        mean[j] = 0.0;
    for (int n = 0; n < N; n++) {
        const float *a = X1 + (size_t)n * d1;
        for (int j = 0; j < d1; j++)
            mean[j] += a[j];
        if (d2) {
            const float *b = X2 + (size_t)n * d2;
            for (int j = 0; j < d2; j++)
                mean[d1 + j] += b[j];
        }
    }
    if (s1)
        for (int j = 0; j < d1; j++)
            s1[j] += mean[j];
    if (s2 && d2)
        for (int j = 0; j < d2; j++)
            s2[j] += mean[d1 + j];
    for (int j = 0; j < d; j++)
        mean[j] /= N;

    for (int n = 0; n < N; n++) {
        const float *a = X1 + (size_t)n * d1;
        float *y = Y + (size_t)n * d;
        for (int j = 0; j < d1; j++)
            y[j] = (float)((double)a[j] - mean[j]);
        if (d2) {
            const float *b = X2 + (size_t)n * d2;
            for (int j = 0; j < d2; j++)
                y[d1 + j] = (float)((double)b[j] - mean[d1 + j]);
        }
    }
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, d, N, 1.0f, Y, d, 0.0f,
                P, d);

    /* X^T X = Y^T Y + N m m^T, added to the blocks in double: S11 and S22
     * on both triangles, S12 from the upper triangle's off-diagonal block. */
    double n_rows = (double)N;
    for (int i = 0; i < d; i++) {
        for (int j = i; j < d; j++) {
            double v = (double)P[(size_t)i * d + j] + n_rows * mean[i] * mean[j];
            if (j < d1) {
                S11[(size_t)i * d1 + j] += v;
                if (j != i)
                    S11[(size_t)j * d1 + i] += v;
            } else if (i < d1) {
                S12[(size_t)i * d2 + (j - d1)] += v;
            } else {
                int a = i - d1, b = j - d1;
                S22[(size_t)a * d2 + b] += v;
                if (b != a)
                    S22[(size_t)b * d2 + a] += v;
            }
        }
    }
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
