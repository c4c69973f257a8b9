/* SPDX-License-Identifier: MIT */
/*
 * Top-k PCA by a symmetric eigendecomposition of the covariance (dsyevd)
 * with a deterministic sign per component.
 */
#include "pca.h"

#include <stdlib.h>
#include <string.h>

#include "linalg.h"

mmcl_status
mmcl__pca(mmcl_context *ctx, double *V, double *lambda, const double *S, int d,
          int k)
{
    if (d < 1)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "pca: dimension must be positive (d = %d)", d);
    if (k < 1 || k > d)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "pca: k = %d components requested, but k must be "
                           "between 1 and the dimension d = %d",
                           k, d);

    if (!mmcl__all_finite(S, (size_t)d * d))
        return mmcl__error(ctx, MMCL_ERR_NUMERIC,
                           "pca: the covariance contains NaN or Inf");

    /* Arena: A (d, d) becomes the eigenvectors | w (d) ascending. */
    size_t n_A = (size_t)d * d;
    double *A = mmcl__malloc_array(ctx, n_A + (size_t)d, 1, sizeof(double));
    if (!A)
        return MMCL_ERR_NO_MEMORY;
    double *w = A + n_A;
    memcpy(A, S, n_A * sizeof(double));

    mmcl_status st = mmcl__sym_eig(ctx, w, A, d, "pca: covariance");
    if (st == MMCL_OK) {
        /* Component j is eigenpair d-1-j (dsyevd sorts ascending). */
        for (int j = 0; j < k; j++) {
            lambda[j] = w[d - 1 - j];
            for (int i = 0; i < d; i++)
                V[(size_t)i * k + j] = A[(size_t)i * d + (d - 1 - j)];
        }
        mmcl__fix_column_signs(V, NULL, d, 0, k);
    }
    free(A);
    return st;
}
