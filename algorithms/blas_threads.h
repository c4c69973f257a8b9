/* SPDX-License-Identifier: MIT */
/*
 * The one place that talks to the BLAS library's own thread pool (style.md
 * section 7: one level of parallelism at a time). A tile pool, a lazy
 * read or the synthetic scene runs its GEMMs on one BLAS thread inside its
 * own workers; clip training asks for the threads it was given.
 *
 * The setting is process-global (OpenBLAS keeps one pool), and the
 * library is reentrant: two mmcl_embed() calls may run on two threads of
 * one process. So the library changes it only through one guard,
 * mmcl__blas_threads_enter() / _leave(), which counts the sections that
 * hold it: the first saves the process's count, the BLAS runs the fewest
 * threads any running section asked for, and the last restores the saved
 * count. When the BLAS is not OpenBLAS (no OPENBLAS_VERSION in its
 * cblas.h) the counts are no-ops that report one thread.
 */
#ifndef MMCL_ALGORITHMS_BLAS_THREADS_H
#define MMCL_ALGORITHMS_BLAS_THREADS_H

#include <stddef.h>

/* Threads the BLAS uses for one call (>= 1). */
int mmcl__blas_get_threads(void);

/*
 * Sets the process's BLAS thread count to @p n_threads (>= 1) and returns
 * the previous one: for programs (benchmarks, tests) that choose it as a
 * user would. The library itself changes it only through the guard below.
 */
int mmcl__blas_set_threads(int n_threads);

/*
 * Starts a section that wants the BLAS at @p n_threads (>= 1; OpenBLAS
 * caps it at the count it was built for) until the matching
 * mmcl__blas_threads_leave() on any thread. While sections overlap, the
 * BLAS runs the smallest count any of them asked for (a section that asked
 * for one thread relies on it: its own workers are the parallelism); the
 * last to leave restores the count the process had before the first
 * entered. n_threads < 1 asks for nothing, and still needs its leave.
 */
void mmcl__blas_threads_enter(int n_threads);

/* Ends a section started by mmcl__blas_threads_enter(n_threads). */
void mmcl__blas_threads_leave(int n_threads);

/*
 * buf (size) = the BLAS build and the kernel it selected for this CPU,
 * e.g. "OpenBLAS 0.3.21 ... DYNAMIC_ARCH ... Cooperlake | Cooperlake",
 * for benchmark reports; truncated to fit, always NUL-terminated
 * (size >= 1).
 */
void mmcl__blas_describe(char *buf, size_t size);

#endif /* MMCL_ALGORITHMS_BLAS_THREADS_H */
