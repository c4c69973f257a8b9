/* SPDX-License-Identifier: MIT */
/*
 * The one place that talks to the BLAS library's own thread pool (style.md
 * section 7: one level of parallelism at a time). Training sets OpenBLAS
 * to the requested number of threads for its GEMMs and restores the
 * previous count afterwards; a tile pool sets it to 1 inside its workers.
 *
 * The setting is process-global (OpenBLAS keeps one pool): callers that
 * change it should restore it, and two threads that set it concurrently
 * race on it. When the BLAS is not OpenBLAS (no OPENBLAS_VERSION in its
 * cblas.h) these are no-ops that report one thread.
 */
#ifndef MMCL_ALGORITHMS_BLAS_THREADS_H
#define MMCL_ALGORITHMS_BLAS_THREADS_H

#include <stddef.h>

/* Threads the BLAS uses for one call (>= 1). */
int mmcl__blas_get_threads(void);

/*
 * Sets the BLAS thread count to @p n_threads (>= 1; OpenBLAS caps it at
 * the count it was built for) and returns the previous count, for a later
 * mmcl__blas_set_threads(previous). n_threads < 1 changes nothing.
 */
int mmcl__blas_set_threads(int n_threads);

/*
 * buf (size) = the BLAS build and the kernel it selected for this CPU,
 * e.g. "OpenBLAS 0.3.21 ... DYNAMIC_ARCH ... Cooperlake | Cooperlake",
 * for benchmark reports; truncated to fit, always NUL-terminated
 * (size >= 1).
 */
void mmcl__blas_describe(char *buf, size_t size);

#endif /* MMCL_ALGORITHMS_BLAS_THREADS_H */
