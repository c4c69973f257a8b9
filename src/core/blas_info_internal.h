/* SPDX-License-Identifier: MIT */
/*
 * Private: the one warning a process gets when OpenBLAS runs a generic
 * kernel this CPU outgrows (include/mmcl/blas.h).
 */
#ifndef MMCL_BLAS_INFO_INTERNAL_H
#define MMCL_BLAS_INFO_INTERNAL_H

/*
 * Called by the operations that compute with BLAS (training, the maps,
 * lazy products, probes, pictures, synthetic scenes) before their work.
 * The first call in the process posts a GDAL warning (CE_Warning) when the
 * kernel in use is a misdetected fallback and OPENBLAS_CORETYPE is not set
 * (mmcl_blas_info_get(): origin MMCL_BLAS_KERNEL_OPENBLAS and a better
 * kernel); the caller's last-error state (CPLGetLastErrorType() and its
 * message) is left as it was. Later calls do nothing. Thread-safe.
 */
void mmcl__blas_kernel_warn_once(void);

#endif /* MMCL_BLAS_INFO_INTERNAL_H */
