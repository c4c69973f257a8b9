/* SPDX-License-Identifier: MIT */
/*
 * Principal component analysis from a covariance matrix, in double: the
 * unimodal `pca` baseline of design section 3.4 (what a modality keeps in
 * k dimensions when it is aligned with nothing), and the private part of
 * the shared-private embedding.
 */
#ifndef MMCL_ALGORITHMS_PCA_H
#define MMCL_ALGORITHMS_PCA_H

#include "context_internal.h"

/*
 * Top-k eigenpairs of the symmetric covariance S (d, d) (only its upper
 * triangle is read; S is not modified):
 *   V (d, k) row-major: column j is the unit eigenvector of lambda[j];
 *   lambda (k): eigenvalues, descending.
 * Sign convention: the entry of largest magnitude of each column of V is
 * positive (the first such entry on ties). Eigenvectors of a repeated
 * eigenvalue are any orthonormal basis of its eigenspace.
 * Method: LAPACKE_dsyevd on a copy (full divide-and-conquer spectrum; d is
 * at most a few thousand here, and dsyevd is the robust choice).
 *
 * @return MMCL_ERR_INVALID_ARG (d < 1, k < 1 or k > d),
 *         MMCL_ERR_NUMERIC (NaN/Inf in S, or no convergence),
 *         MMCL_ERR_NO_MEMORY.
 *         V and lambda are written only on success.
 */
mmcl_status mmcl__pca(mmcl_context *ctx, double *V, double *lambda,
                      const double *S, int d, int k);

#endif /* MMCL_ALGORITHMS_PCA_H */
