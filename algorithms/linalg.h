/* SPDX-License-Identifier: MIT */
/*
 * Dense linear algebra in double on CBLAS and LAPACKE: second-moment
 * (covariance) accumulation from float batches, and thin wrappers around
 * the factorisations the closed-form objectives use (Cholesky, triangular
 * solves, SVD, symmetric eigendecomposition). Every LAPACKE call checks
 * info: info < 0 is a bug on our side (MMCL_ERR_INVALID_ARG, naming the
 * argument), info > 0 a numerical failure (MMCL_ERR_NUMERIC).
 *
 * All matrices are row-major and contiguous; (rows, cols) in the comments.
 * The @p what argument of the wrappers names the matrix in error messages
 * (e.g. "S11 + eps*I") and may be NULL.
 */
#ifndef MMCL_ALGORITHMS_LINALG_H
#define MMCL_ALGORITHMS_LINALG_H

#include <stddef.h>

#include "context_internal.h"

/*
 * Accumulates (+=) the raw second moments of one batch, in double:
 *   S11 (d1, d1) += X1^T X1     s1 (d1) += column sums of X1
 *   S22 (d2, d2) += X2^T X2     s2 (d2) += column sums of X2
 *   S12 (d1, d2) += X1^T X2
 * X1: (N, d1), X2: (N, d2), float row-major; row n of both is one pair.
 * S11 and S22 are kept full (both triangles equal).
 * X2 == NULL accumulates only S11 and s1 (one modality; S22, S12 and s2
 * are then not touched and may be NULL). s1 and s2 may be NULL.
 * work: mmcl__moments_work_size(N, d1, d2) doubles of scratch (d2 = 0
 * when X2 is NULL).
 *
 * One pass over the rows and one float SYRK: the rows are shifted by c,
 * the mean (in double) of 64 rows spread over the batch, Y = X - c goes to
 * float while its column sums are taken in double, and
 * X^T X = Y^T Y + c sy^T + sy c^T + N c c^T (sy = the sums of Y) is added
 * in double. Shifting first keeps the float products at the scale of the
 * spread, not of the mean (c is within about spread / 8 of the batch's
 * mean): each added entry is within a few float ulps (times sqrt(N)) of
 * the centred sum, and the sums over batches stay in double.
 */
void mmcl__moments_accumulate(double *S11, double *S22, double *S12, double *s1,
                              double *s2, double *work, const float *X1,
                              const float *X2, int N, int d1, int d2);

/* Doubles of scratch that mmcl__moments_accumulate needs for a batch of
 * N rows (d2 = 0 for one modality). */
size_t mmcl__moments_work_size(int N, int d1, int d2);

/* Rows per batch of the moments (train; the benchmark's default): fixed,
 * so that the sums do not depend on the threads or the MPI ranks. */
#define MMCL__MOMENTS_BATCH 4096

/* Most threads mmcl__moments_accumulate_rows uses. */
#define MMCL__MOMENTS_MAX_THREADS 64

/*
 * Accumulates (+=) the raw moments of all N rows, as
 * mmcl__moments_accumulate (same arguments, no work buffer) called on the
 * batches of @p batch rows in order: batch b is rows b * batch to
 * min(N, (b + 1) * batch) - 1, whatever the threads. Up to @p n_threads
 * threads (< 1: one) take batches, each with a single-threaded BLAS, and
 * add their terms in batch order: the sums are the same bits for any
 * @p n_threads. Scratch: one batch's work and one block of sums per
 * thread.
 * @return MMCL_ERR_NO_MEMORY (or MMCL_ERR_INVALID_ARG for batch < 1),
 * with the sums untouched.
 */
mmcl_status mmcl__moments_accumulate_rows(mmcl_context *ctx, double *S11,
                                          double *S22, double *S12,
                                          double *s1, double *s2,
                                          const float *X1, const float *X2,
                                          int N, int d1, int d2, int batch,
                                          int n_threads);

/*
 * Centred covariance from raw moments over @p count rows:
 *   cov (da, db) = S / count - (sa / count) (sb / count)^T
 * sa (da) and sb (db) are column sums; both NULL means the data are
 * already centred. cov may alias S. Divides by count (population
 * covariance), matching the population std of stats.h.
 * Subtracting the mean outer product is accurate here because the data
 * are standardised first (means near 0, variances near 1).
 */
void mmcl__cov_from_moments(double *cov, const double *S, const double *sa,
                            const double *sb, double count, int da, int db);

/* 1 when all n values of x are finite (no NaN or Inf), else 0. */
int mmcl__all_finite(const double *x, size_t n);

/* A (n, n): copy the upper triangle onto the lower one. */
void mmcl__sym_from_upper(double *A, int n);

/* A (n, n) = (A + A^T) / 2, for a matrix symmetric up to rounding. */
void mmcl__symmetrize(double *A, int n);

/* A (n, n) += eps * I (ridge). */
void mmcl__add_diag(double *A, double eps, int n);

/* Mean of the diagonal of A (n, n), i.e. trace(A) / n. */
double mmcl__mean_diag(const double *A, int n);

/*
 * In-place Cholesky factorisation A = L L^T (LAPACKE_dpotrf, lower).
 * On success A (n, n) holds L with its strict upper triangle zeroed.
 * Only the lower triangle of A is read.
 * @return MMCL_ERR_NUMERIC when A is not positive definite.
 */
mmcl_status mmcl__cholesky(mmcl_context *ctx, double *A, int n,
                           const char *what);

/*
 * Triangular solves with a lower-triangular L (n, n), e.g. from
 * mmcl__cholesky(); cblas_dtrsm, so L's diagonal must be nonzero.
 *   left:  B (n, m) <- op(L)^-1 B
 *   right: B (m, n) <- B op(L)^-1
 * op(L) = L^T when @p transpose is nonzero, else L.
 */
void mmcl__trsm_lower_left(double *B, const double *L, int transpose, int n,
                           int m);
void mmcl__trsm_lower_right(double *B, const double *L, int transpose, int m,
                            int n);

/*
 * Thin SVD A = U diag(s) Vt (LAPACKE_dgesvd), r = min(m, n):
 * U (m, r), s (r) descending, Vt (r, n). A (m, n) is destroyed.
 * @return MMCL_ERR_NUMERIC when the SVD did not converge.
 */
mmcl_status mmcl__svd(mmcl_context *ctx, double *U, double *s, double *Vt,
                      double *A, int m, int n, const char *what);

/*
 * Symmetric eigendecomposition A = V diag(w) V^T (LAPACKE_dsyevd).
 * Reads the upper triangle of A (n, n) and overwrites A with V: column j
 * (A[i * n + j], i = 0..n-1) is the unit eigenvector of w[j].
 * w (n) is ASCENDING.
 * @return MMCL_ERR_NUMERIC when the solver did not converge.
 */
mmcl_status mmcl__sym_eig(mmcl_context *ctx, double *w, double *A, int n,
                          const char *what);

/*
 * Deterministic sign for factors that are defined up to sign: flips
 * column j of A (rows, cols) (and the same column of B (rows_b, cols),
 * when B is not NULL) so that the entry of largest magnitude of A's
 * column is positive (the first such entry on ties).
 */
void mmcl__fix_column_signs(double *A, double *B, int rows, int rows_b,
                            int cols);

#endif /* MMCL_ALGORITHMS_LINALG_H */
