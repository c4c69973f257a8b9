/* SPDX-License-Identifier: MIT */
/*
 * OpenBLAS thread-count control (see blas_threads.h). OpenBLAS declares
 * openblas_set_num_threads() and friends in its own cblas.h, which also
 * defines OPENBLAS_VERSION (via openblas_config.h); any other CBLAS gets
 * the no-op versions.
 */
#include "blas_threads.h"

#include <stdio.h>
#include <threads.h>

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

static void
blas_set_threads(int n_threads)
{
#ifdef OPENBLAS_VERSION
    if (n_threads >= 1 && n_threads != mmcl__blas_get_threads())
        openblas_set_num_threads(n_threads);
#else
    (void)n_threads;
#endif
}

int
mmcl__blas_set_threads(int n_threads)
{
    int previous = mmcl__blas_get_threads();
    blas_set_threads(n_threads);
    return previous;
}

/*
 * The sections running, by the count they asked for: asked[n] sections
 * want n threads (counts above MAX_ASKED are kept as MAX_ASKED, more than
 * any machine mmcl runs on gives OpenBLAS). Under guard.lock.
 */
#define MAX_ASKED 256
static struct {
    once_flag once;
    mtx_t lock;
    int holders; /* sections entered and not left, asking or not */
    int saved;   /* the process's count before the first entered */
    int asked[MAX_ASKED + 1];
} guard = {.once = ONCE_FLAG_INIT};

static void
guard_init(void)
{
    mtx_init(&guard.lock, mtx_plain);
}

static int
clamp_asked(int n_threads)
{
    return n_threads > MAX_ASKED ? MAX_ASKED : n_threads;
}

/* Sets the smallest count asked for, else the saved one. Under the lock. */
static void
guard_apply(void)
{
    for (int n = 1; n <= MAX_ASKED; n++)
        if (guard.asked[n] > 0) {
            blas_set_threads(n);
            return;
        }
    blas_set_threads(guard.saved);
}

void
mmcl__blas_threads_enter(int n_threads)
{
    call_once(&guard.once, guard_init);
    mtx_lock(&guard.lock);
    if (guard.holders++ == 0)
        guard.saved = mmcl__blas_get_threads();
    if (n_threads >= 1) {
        guard.asked[clamp_asked(n_threads)]++;
        guard_apply();
    }
    mtx_unlock(&guard.lock);
}

void
mmcl__blas_threads_leave(int n_threads)
{
    mtx_lock(&guard.lock);
    if (n_threads >= 1)
        guard.asked[clamp_asked(n_threads)]--;
    if (--guard.holders == 0)
        blas_set_threads(guard.saved);
    else
        guard_apply();
    mtx_unlock(&guard.lock);
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
