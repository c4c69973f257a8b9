/* SPDX-License-Identifier: MIT */
/*
 * The tile pool: workers on C11 threads, tiles handed out in order, commits
 * in order, progress and cancellation on the calling thread.
 */
#include <stdlib.h>
#include <threads.h>

#include "blas_threads.h"
#include "context_internal.h"
#include "tiles_internal.h"

void
mmcl__tile_at(mmcl__tile *t, int width, int height, int tile, int index)
{
    int nx = (width + tile - 1) / tile;
    t->index = index;
    t->x = (index % nx) * tile;
    t->y = (index / nx) * tile;
    t->w = width - t->x < tile ? width - t->x : tile;
    t->h = height - t->y < tile ? height - t->y : tile;
}

typedef struct pool {
    const mmcl__tile_job *job;
    int width, height, tile, n_tiles;
    mtx_t lock;
    cnd_t changed;    /* a tile was committed, or the pool stopped */
    int next_tile;    /* next tile to hand out */
    int next_commit;  /* next tile to commit */
    int n_running;    /* workers still running */
    int stop;         /* error or cancellation: stop handing out tiles */
    mmcl_status status;
    mmcl_context *err_ctx; /* context of the first failing worker */
} pool;

typedef struct worker {
    pool *pool;
    mmcl_context *ctx;
    thrd_t thread;
} worker;

static void
pool_fail(pool *p, mmcl_context *ctx, mmcl_status st)
{
    /* Called with the lock held. */
    if (!p->stop) {
        p->stop = 1;
        p->status = st;
        p->err_ctx = ctx;
    }
    cnd_broadcast(&p->changed);
}

static int
worker_main(void *arg)
{
    worker *w = arg;
    pool *p = w->pool;
    const mmcl__tile_job *job = p->job;
    void *state = job->start ? job->start(w->ctx, job->user) : NULL;

    mtx_lock(&p->lock);
    if (job->start && !state)
        pool_fail(p, w->ctx, mmcl_context_errcode(w->ctx));
    while (!p->stop && p->next_tile < p->n_tiles) {
        mmcl__tile t;
        mmcl__tile_at(&t, p->width, p->height, p->tile, p->next_tile++);
        mtx_unlock(&p->lock);

        mmcl_status st = job->work(w->ctx, state, &t, job->user);

        mtx_lock(&p->lock);
        if (st != MMCL_OK) {
            pool_fail(p, w->ctx, st);
            break;
        }
        while (!p->stop && p->next_commit != t.index)
            cnd_wait(&p->changed, &p->lock);
        if (p->stop)
            break;
        /* Our turn. Nobody else commits until next_commit moves on, so
         * the commit (the writer, the serial part) runs without the lock
         * while the other workers take and compute tiles. */
        if (job->commit) {
            mtx_unlock(&p->lock);
            st = job->commit(w->ctx, state, &t, job->user);
            mtx_lock(&p->lock);
            if (st != MMCL_OK) {
                pool_fail(p, w->ctx, st);
                break;
            }
        }
        p->next_commit++;
        cnd_broadcast(&p->changed);
    }
    p->n_running--;
    cnd_broadcast(&p->changed);
    mtx_unlock(&p->lock);

    if (job->stop)
        job->stop(state, job->user);
    return 0;
}

mmcl_status
mmcl__run_tiles(mmcl_context *ctx, int width, int height, int tile,
                int n_threads, const mmcl__tile_job *job,
                mmcl_progress_fn progress, void *progress_user, double p0,
                double p1)
{
    if (width <= 0 || height <= 0 || tile <= 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "invalid tiling: %d x %d raster, tile %d", width,
                           height, tile);
    pool p = {0};
    p.job = job;
    p.width = width;
    p.height = height;
    p.tile = tile;
    p.n_tiles = ((width + tile - 1) / tile) * ((height + tile - 1) / tile);
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > p.n_tiles)
        n_threads = p.n_tiles;
    if (mtx_init(&p.lock, mtx_plain) != thrd_success)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "cannot create a mutex");
    if (cnd_init(&p.changed) != thrd_success) {
        mtx_destroy(&p.lock);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                           "cannot create a condition variable");
    }

    worker *workers = mmcl__calloc_array(ctx, (size_t)n_threads, 1,
                                         sizeof(worker));
    mmcl_status st = MMCL_OK;
    int n_started = 0;
    if (!workers) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    for (int i = 0; i < n_threads; i++) {
        workers[i].pool = &p;
        workers[i].ctx = mmcl_context_create();
        if (!workers[i].ctx) {
            st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
    }

    if (progress && !progress(p0, NULL, progress_user)) {
        st = mmcl__error(ctx, MMCL_ERR_CANCELLED, "cancelled by the caller");
        goto done;
    }

    /* One level of parallelism: with several tile workers, each runs its
     * GEMMs on one BLAS thread. */
    int blas_threads = mmcl__blas_get_threads();
    if (n_threads > 1)
        mmcl__blas_set_threads(1);
    p.n_running = n_threads;
    for (int i = 0; i < n_threads; i++) {
        if (thrd_create(&workers[i].thread, worker_main, &workers[i]) !=
            thrd_success) {
            mtx_lock(&p.lock);
            p.n_running -= n_threads - i;
            pool_fail(&p, ctx, MMCL_ERR_NO_MEMORY);
            mtx_unlock(&p.lock);
            mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "cannot start a thread");
            break;
        }
        n_started++;
    }

    /* The calling thread reports progress and relays cancellation. */
    mtx_lock(&p.lock);
    int reported = -1;
    while (p.n_running > 0) {
        if (p.next_commit != reported && progress) {
            reported = p.next_commit;
            double f = (double)reported / p.n_tiles;
            mtx_unlock(&p.lock);
            int go = progress(p0 + (p1 - p0) * f, NULL, progress_user);
            mtx_lock(&p.lock);
            if (!go) {
                if (!p.stop) {
                    p.stop = 1;
                    p.status = MMCL_ERR_CANCELLED;
                }
                cnd_broadcast(&p.changed);
            }
            continue;
        }
        cnd_wait(&p.changed, &p.lock);
    }
    mtx_unlock(&p.lock);
    for (int i = 0; i < n_started; i++)
        thrd_join(workers[i].thread, NULL);
    if (n_threads > 1)
        mmcl__blas_set_threads(blas_threads);

    if (p.stop) {
        st = p.status;
        if (st == MMCL_ERR_CANCELLED && !p.err_ctx)
            mmcl__error(ctx, st, "cancelled by the caller after %d of %d tiles",
                        p.next_commit, p.n_tiles);
        else if (p.err_ctx && p.err_ctx != ctx)
            mmcl__error_copy(ctx, p.err_ctx);
    } else if (progress && !progress(p1, NULL, progress_user)) {
        st = mmcl__error(ctx, MMCL_ERR_CANCELLED, "cancelled by the caller");
    }

done:
    if (workers)
        for (int i = 0; i < n_threads; i++)
            mmcl_context_destroy(workers[i].ctx);
    free(workers);
    cnd_destroy(&p.changed);
    mtx_destroy(&p.lock);
    return st;
}
