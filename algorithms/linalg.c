/* SPDX-License-Identifier: MIT */
/*
 * Double-precision building blocks on CBLAS/LAPACKE: moment accumulation
 * (one float SYRK per batch of shifted rows, summed in double, batches on
 * several threads added in batch order), Cholesky
 * (dpotrf), triangular solves (dtrsm), SVD (dgesvd) and the symmetric
 * eigensolver (dsyevd). No hand-written matrix products; the loops here
 * are element-wise (shifting, symmetrisation, diagonal updates, column
 * sums).
 */
#include "linalg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <threads.h>

#include <cblas.h>
#include <lapacke.h>

#include "blas_threads.h"
#include "simd.h"

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
    /* The shift and the column sums (2 d doubles), then the floats:
     * Y (N, d), P (d, d). */
    return 2 * d + (floats + 1) / 2;
}

/* Rows of a batch whose mean is its shift (moments_shift). */
enum { SHIFT_ROWS = 64 };

/*
 * c (d) = the mean, in double, of up to SHIFT_ROWS rows spread evenly over
 * the batch (rows i * N / count): within about the batch's spread / 8 of
 * its mean, so the shifted rows are nearly centred, at the cost of reading
 * 64 rows instead of all N.
 */
static void
moments_shift(double *c, const float *X1, const float *X2, int N, int d1,
              int d2)
{
    int count = N < SHIFT_ROWS ? N : SHIFT_ROWS;
    for (int j = 0; j < d1 + d2; j++)
        c[j] = 0.0;
    for (int i = 0; i < count; i++) {
        size_t n = (size_t)i * (size_t)N / (size_t)count;
        const float *a = X1 + n * (size_t)d1;
        for (int j = 0; j < d1; j++)
            c[j] += a[j];
        for (int j = 0; j < d2; j++)
            c[d1 + j] += X2[n * (size_t)d2 + (size_t)j];
    }
    for (int j = 0; j < d1 + d2; j++)
        c[j] /= count;
}

/*
 * The one pass over the rows: Y (N, d) = [X1 X2] - c rounded to float, and
 * sums (d) = the column sums of the unrounded differences, in double, row
 * by row. Each column's sum is its own vector lane, so every clone (simd.h)
 * adds in the same order and computes the same bits.
 */
MMCL__VEC_CLONES static void
moments_shift_rows(float *restrict Y, double *restrict sums,
                   const double *restrict c, const float *restrict X1,
                   const float *restrict X2, int N, int d1, int d2)
{
    int d = d1 + d2;
    for (int j = 0; j < d; j++)
        sums[j] = 0.0;
    for (int n = 0; n < N; n++) {
        const float *restrict a = X1 + (size_t)n * d1;
        float *restrict y = Y + (size_t)n * d;
        for (int j = 0; j < d1; j++) {
            double v = (double)a[j] - c[j];
            sums[j] += v;
            y[j] = (float)v;
        }
        if (d2) {
            const float *restrict b = X2 + (size_t)n * d2;
            for (int j = 0; j < d2; j++) {
                double v = (double)b[j] - c[d1 + j];
                sums[d1 + j] += v;
                y[d1 + j] = (float)v;
            }
        }
    }
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
    double *c = work;                  /* (d) the shift */
    double *sy = work + d;             /* (d) column sums of X - c */
    float *Y = (float *)(work + 2 * d); /* (N, d): [X1 X2] - c */
    float *P = Y + (size_t)N * d;      /* (d, d): Y^T Y, upper triangle */

    moments_shift(c, X1, X2, N, d1, d2);
    moments_shift_rows(Y, sy, c, X1, X2, N, d1, d2);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, d, N, 1.0f, Y, d, 0.0f,
                P, d);

    /* With x = y + c: sum x = sy + N c and
     * X^T X = Y^T Y + c sy^T + sy c^T + N c c^T, exactly; the terms are
     * added in double, each sum once (so that a block that starts at 0
     * holds exactly what the batch adds: mmcl__moments_accumulate_rows).
     * S11 and S22 on both triangles, S12 from the upper triangle's
     * off-diagonal block. */
    double n_rows = (double)N;
    if (s1)
        for (int j = 0; j < d1; j++)
            s1[j] += sy[j] + n_rows * c[j];
    if (s2 && d2)
        for (int j = 0; j < d2; j++)
            s2[j] += sy[d1 + j] + n_rows * c[d1 + j];
    for (int i = 0; i < d; i++) {
        for (int j = i; j < d; j++) {
            double v = (double)P[(size_t)i * d + j] +
                       (c[i] * sy[j] + sy[i] * c[j]) + n_rows * c[i] * c[j];
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

/* ---- Batches over several threads ---------------------------------------
 *
 * Each worker takes the next batch, accumulates it into a zeroed block of
 * its own (0 + v = v: exactly the terms the batch adds), waits for its
 * turn and adds the block to the sums. Batches are taken and added in
 * batch order, so the sums are those of the batches added one after the
 * other on one thread, whatever the number of workers; one block per
 * worker bounds the memory. */

typedef struct moments_run {
    double *S11, *S22, *S12, *s1, *s2;
    const float *X1, *X2;
    int N, d1, d2, batch, n_batches;
    size_t per; /* doubles of a block: S11 | S22 | S12 | s1 | s2 */
    mtx_t lock;
    cnd_t added;
    int next_batch; /* the next batch to take; under lock */
    int next_add;   /* the batch whose terms are added next; under lock */
} moments_run;

typedef struct moments_worker {
    moments_run *run;
    double *block; /* (per) */
    double *work;  /* mmcl__moments_work_size(batch, d1, d2) */
    thrd_t thread;
} moments_worker;

/* sum (n) += block (n); sum may be NULL (not asked for). */
static void
add_block(double *sum, const double *block, size_t n)
{
    for (size_t i = 0; sum && i < n; i++)
        sum[i] += block[i];
}

static int
moments_worker_main(void *arg)
{
    moments_worker *w = arg;
    moments_run *r = w->run;
    int d1 = r->d1, d2 = r->d2;
    size_t n11 = (size_t)d1 * d1, n22 = (size_t)d2 * d2;
    size_t n12 = (size_t)d1 * d2;
    double *b11 = w->block, *b22 = b11 + n11, *b12 = b22 + n22;
    double *b1 = b12 + n12, *b2 = b1 + d1;
    for (;;) {
        mtx_lock(&r->lock);
        int b = r->next_batch++;
        mtx_unlock(&r->lock);
        if (b >= r->n_batches)
            break;
        int n0 = b * r->batch;
        int n = r->N - n0 < r->batch ? r->N - n0 : r->batch;
        memset(w->block, 0, r->per * sizeof(double));
        mmcl__moments_accumulate(b11, d2 ? b22 : NULL, d2 ? b12 : NULL, b1,
                                 d2 ? b2 : NULL, w->work,
                                 r->X1 + (size_t)n0 * d1,
                                 d2 ? r->X2 + (size_t)n0 * d2 : NULL, n, d1,
                                 d2);
        mtx_lock(&r->lock);
        while (r->next_add != b)
            cnd_wait(&r->added, &r->lock);
        mtx_unlock(&r->lock);
        add_block(r->S11, b11, n11);
        add_block(r->S22, b22, n22);
        add_block(r->S12, b12, n12);
        add_block(r->s1, b1, (size_t)d1);
        add_block(r->s2, b2, (size_t)d2);
        mtx_lock(&r->lock);
        r->next_add = b + 1;
        cnd_broadcast(&r->added);
        mtx_unlock(&r->lock);
    }
    return 0;
}

mmcl_status
mmcl__moments_accumulate_rows(mmcl_context *ctx, double *S11, double *S22,
                              double *S12, double *s1, double *s2,
                              const float *X1, const float *X2, int N, int d1,
                              int d2, int batch, int n_threads)
{
    if (N <= 0)
        return MMCL_OK;
    if (!X2)
        d2 = 0;
    if (batch < 1)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "moments: batch of %d rows (internal error)",
                           batch);
    moments_run r = {.S11 = S11, .S22 = d2 ? S22 : NULL,
                     .S12 = d2 ? S12 : NULL, .s1 = s1, .s2 = d2 ? s2 : NULL,
                     .X1 = X1, .X2 = d2 ? X2 : NULL, .N = N, .d1 = d1,
                     .d2 = d2, .batch = batch,
                     .n_batches = (N - 1) / batch + 1};
    r.per = (size_t)d1 * d1 + (size_t)d2 * d2 + (size_t)d1 * d2 +
            (size_t)d1 + (size_t)d2;
    int n_workers = n_threads < 1 ? 1 : n_threads;
    if (n_workers > MMCL__MOMENTS_MAX_THREADS)
        n_workers = MMCL__MOMENTS_MAX_THREADS;
    if (n_workers > r.n_batches)
        n_workers = r.n_batches;
    int rows = N < batch ? N : batch;
    size_t work_size = mmcl__moments_work_size(rows, d1, d2);

    moments_worker *w = mmcl__calloc_array(ctx, (size_t)n_workers, 1,
                                           sizeof(*w));
    mmcl_status st = w ? MMCL_OK : MMCL_ERR_NO_MEMORY;
    for (int i = 0; i < n_workers && st == MMCL_OK; i++) {
        w[i].run = &r;
        w[i].block = mmcl__malloc_array(ctx, r.per, 1, sizeof(double));
        w[i].work = mmcl__malloc_array(ctx, work_size, 1, sizeof(double));
        if (!w[i].block || !w[i].work)
            st = MMCL_ERR_NO_MEMORY;
    }
    if (st == MMCL_OK && mtx_init(&r.lock, mtx_plain) != thrd_success)
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "moments: mtx_init failed");
    if (st == MMCL_OK && cnd_init(&r.added) != thrd_success) {
        mtx_destroy(&r.lock);
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "moments: cnd_init failed");
    }
    if (st == MMCL_OK) {
        /* Every worker's SYRK on one BLAS thread: the workers are the
         * parallelism, and one thread or several run the same kernel. */
        mmcl__blas_threads_enter(1);
        /* A worker that cannot be started leaves its batches to the
         * others: the same sums, later. */
        int started = 1;
        while (started < n_workers &&
               thrd_create(&w[started].thread, moments_worker_main,
                           &w[started]) == thrd_success)
            started++;
        moments_worker_main(&w[0]);
        for (int i = 1; i < started; i++)
            thrd_join(w[i].thread, NULL);
        mmcl__blas_threads_leave(1);
        cnd_destroy(&r.added);
        mtx_destroy(&r.lock);
    }
    for (int i = 0; w && i < n_workers; i++) {
        free(w[i].block);
        free(w[i].work);
    }
    free(w);
    return st;
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
