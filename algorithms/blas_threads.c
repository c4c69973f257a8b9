/* SPDX-License-Identifier: MIT */
/*
 * OpenBLAS thread-count control (see blas_threads.h). OpenBLAS declares
 * openblas_set_num_threads() and friends in its own cblas.h, which also
 * defines OPENBLAS_VERSION (via openblas_config.h); any other CBLAS gets
 * the no-op versions.
 */
#include "blas_threads.h"

#include <stdio.h>

#include <cblas.h>

int
mmcl__blas_get_threads(void)
{
#ifdef OPENBLAS_VERSION
    int n = openblas_get_num_threads();
    return n >= 1 ? n : 1;
#else
    return 1;
#endif
}

int
mmcl__blas_set_threads(int n_threads)
{
    int previous = mmcl__blas_get_threads();
#ifdef OPENBLAS_VERSION
    if (n_threads >= 1 && n_threads != previous)
        openblas_set_num_threads(n_threads);
#else
    (void)n_threads;
#endif
    return previous;
}

void
mmcl__blas_describe(char *buf, size_t size)
{
    if (!buf || size == 0)
        return;
#ifdef OPENBLAS_VERSION
    snprintf(buf, size, "%s | %s", openblas_get_config(),
             openblas_get_corename());
#else
    snprintf(buf, size, "CBLAS (not OpenBLAS: no thread control)");
#endif
}
