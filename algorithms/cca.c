/* SPDX-License-Identifier: MIT */
/*
 * CCA by Cholesky whitening and an SVD of the whitened cross-covariance,
 * all in double (see cca.h for the equations and references).
 */
#include "cca.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "linalg.h"

mmcl_status
mmcl__cca(mmcl_context *ctx, double *W1, double *W2, double *rho,
          const double *S11, const double *S22, const double *S12, double eps,
          int d1, int d2, int k)
{
    if (d1 < 1 || d2 < 1)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "cca: dimensions must be positive (d1 = %d, "
                           "d2 = %d)",
                           d1, d2);
    int r = d1 < d2 ? d1 : d2;
    if (k < 1 || k > r)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "cca: k = %d canonical pairs requested, but k "
                           "must be between 1 and min(d1, d2) = min(%d, %d) "
                           "= %d",
                           k, d1, d2, r);
    if (!(eps >= 0.0) || !isfinite(eps))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "cca: ridge eps must be finite and >= 0 (got %g)",
                           eps);

    if (!mmcl__all_finite(S11, (size_t)d1 * d1) ||
        !mmcl__all_finite(S22, (size_t)d2 * d2) ||
        !mmcl__all_finite(S12, (size_t)d1 * d2))
        return mmcl__error(ctx, MMCL_ERR_NUMERIC,
                           "cca: a covariance block contains NaN or Inf");

    /* One arena: L1 (d1,d1) | L2 (d2,d2) | M (d1,d2) | U (d1,r) |
     * Vt (r,d2) | s (r). */
    size_t n_L1 = (size_t)d1 * d1, n_L2 = (size_t)d2 * d2;
    size_t n_M = (size_t)d1 * d2, n_U = (size_t)d1 * r, n_Vt = (size_t)r * d2;
    double *arena = mmcl__malloc_array(
        ctx, n_L1 + n_L2 + n_M + n_U + n_Vt + (size_t)r, 1, sizeof(double));
    if (!arena)
        return MMCL_ERR_NO_MEMORY;
    double *L1 = arena;
    double *L2 = L1 + n_L1;
    double *M = L2 + n_L2;
    double *U = M + n_M;
    double *Vt = U + n_U;
    double *s = Vt + n_Vt;
    mmcl_status st;

    /* L1 L1^T = S11 + eps I, L2 L2^T = S22 + eps I */
    memcpy(L1, S11, n_L1 * sizeof(double));
    mmcl__add_diag(L1, eps, d1);
    st = mmcl__cholesky(ctx, L1, d1, "cca: S11 + eps*I (optical covariance)");
    if (st != MMCL_OK)
        goto done;
    memcpy(L2, S22, n_L2 * sizeof(double));
    mmcl__add_diag(L2, eps, d2);
    st = mmcl__cholesky(ctx, L2, d2, "cca: S22 + eps*I (SAR covariance)");
    if (st != MMCL_OK)
        goto done;

    /* M (d1, d2) = L1^-1 S12 L2^-T */
    memcpy(M, S12, n_M * sizeof(double));
    mmcl__trsm_lower_left(M, L1, 0, d1, d2);
    mmcl__trsm_lower_right(M, L2, 1, d1, d2);

    /* M = U diag(s) Vt; s descending */
    st = mmcl__svd(ctx, U, s, Vt, M, d1, d2, "cca: whitened cross-covariance");
    if (st != MMCL_OK)
        goto done;

    /* W1 = L1^-T U_k: first k columns of U, then a transposed solve. */
    for (int i = 0; i < d1; i++)
        memcpy(W1 + (size_t)i * k, U + (size_t)i * r,
               (size_t)k * sizeof(double));
    mmcl__trsm_lower_left(W1, L1, 1, d1, k);
    /* W2 = L2^-T V_k, V_k = (first k rows of Vt)^T */
    for (int i = 0; i < d2; i++)
        for (int j = 0; j < k; j++)
            W2[(size_t)i * k + j] = Vt[(size_t)j * d2 + i];
    mmcl__trsm_lower_left(W2, L2, 1, d2, k);

    /* The pair (u_j, v_j) is defined up to a common sign. */
    mmcl__fix_column_signs(W1, W2, d1, d2, k);
    memcpy(rho, s, (size_t)k * sizeof(double));

done:
    free(arena);
    return st;
}
