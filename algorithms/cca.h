/* SPDX-License-Identifier: MIT */
/*
 * Closed-form canonical correlation analysis (Hotelling 1936) in double,
 * the `cca` objective of design section 3.4: the linear encoders that
 * maximise the correlation between h1 = W1^T x1 and h2 = W2^T x2.
 */
#ifndef MMCL_ALGORITHMS_CCA_H
#define MMCL_ALGORITHMS_CCA_H

#include "context_internal.h"

/*
 * Top-k canonical directions from the covariances of centred data
 * (already divided by the number of rows, see mmcl__cov_from_moments()):
 *   S11 (d1, d1), S22 (d2, d2) symmetric; only the lower triangles are read
 *   S12 (d1, d2) cross-covariance
 * Ridge: S11 + eps*I and S22 + eps*I, with eps ABSOLUTE (not scaled by the
 * diagonal); the inputs are standardised, so eps is a fraction of one
 * band's variance. eps >= 0; eps = 0 needs S11 and S22 positive definite.
 *
 * Outputs (row-major):
 *   W1 (d1, k), W2 (d2, k): column j maps x1 (resp. x2) to the j-th
 *       canonical variate; W1^T (S11 + eps I) W1 = I, same for W2, and
 *       W1^T S12 W2 = diag(rho).
 *   rho (k): canonical correlations, descending, in [0, 1] (< 1 when eps > 0).
 * Sign convention: the entry of largest magnitude of each W1 column is
 * positive, and the matching W2 column is flipped with it so rho >= 0.
 *
 * Method: Cholesky S11 + eps I = L1 L1^T, S22 + eps I = L2 L2^T; SVD of
 * the whitened cross-covariance M = L1^-1 S12 L2^-T = U diag(rho) V^T;
 * W1 = L1^-T U_k, W2 = L2^-T V_k (e.g. Uurtio et al., "A tutorial on
 * canonical correlation methods", ACM Comput. Surv. 2017, section 2).
 *
 * @return MMCL_ERR_INVALID_ARG (k < 1, k > min(d1, d2), eps < 0 or not
 *         finite), MMCL_ERR_NUMERIC (NaN/Inf in an input, a regularised
 *         block not positive definite, or an SVD that did not converge),
 *         MMCL_ERR_NO_MEMORY.
 *         W1, W2 and rho are written only on success.
 */
mmcl_status mmcl__cca(mmcl_context *ctx, double *W1, double *W2, double *rho,
                      const double *S11, const double *S22, const double *S12,
                      double eps, int d1, int d2, int k);

#endif /* MMCL_ALGORITHMS_CCA_H */
