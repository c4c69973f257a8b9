/* SPDX-License-Identifier: MIT */
/*
 * The tile pool: workers on C11 threads, tiles handed out in order, commits
 * in order, progress and cancellation on the calling thread.
 */
#include <stdlib.h>
#include <threads.h>

#include "blas_threads.h"
#include "context_internal.h"
#include "chain_internal.h"
#include "tiles_internal.h"

void
mmcl__tile_at(mmcl__tile *t, int width, int height, int tile, int index)
{
    int nx = (width + tile - 1) / tile;
    t->index = index;
    t->slot = 0;
    t->x = (index % nx) * tile;
    t->y = (index / nx) * tile;
    t->w = width - t->x < tile ? width - t->x : tile;
    t->h = height - t->y < tile ? height - t->y : tile;
}

typedef struct worker worker;

typedef struct pool {
    const mmcl__tile_job *job;
    const mmcl__chain *chain; /* of the thread that started it */
    int width, height, tile, n_tiles;
    mtx_t lock;
    cnd_t changed;   /* a tile was computed or committed, or the pool
                      * stopped */
    int next_tile;   /* next tile to hand out */
    int next_commit; /* next tile to commit */
    int n_running;   /* threads still running (workers and committer) */
    int stop;        /* error or cancellation: stop handing out tiles */
    mmcl_status status;
    mmcl_context *err_ctx; /* context of the first failing thread */
    /* With a commit thread: who computed tile i, in which slot, and
     * whether it is ready to commit. */
    int async;
    worker *workers;
    int *owner;
    unsigned char *slot, *ready;
} pool;

struct worker {
    pool *pool;
    mmcl_context *ctx;
    thrd_t thread;
    int id;
    void *state;
    int started;                /* start() was called */
    int n_done;                 /* tiles taken (slot = n_done % SLOTS) */
    int busy[MMCL__TILE_SLOTS]; /* slot holds a tile not yet committed */
};

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

/* Commits on the worker, in tile order: the worker that computed tile i
 * waits for tile i-1's commit, then commits tile i. */
/* Takes the next tile into @p t (in @p slot) and computes it without the
 * lock; returns 0 when the work failed (the pool is then stopped). Called
 * and returns with the lock held. */
static int
work_next(worker *w, pool *p, const mmcl__tile_job *job, int slot,
          mmcl__tile *t)
{
    mmcl__tile_at(t, p->width, p->height, p->tile, p->next_tile++);
    t->slot = slot;
    mtx_unlock(&p->lock);

    mmcl_status st = job->work(w->ctx, w->state, t, job->user);

    mtx_lock(&p->lock);
    if (st != MMCL_OK)
        pool_fail(p, w->ctx, st);
    return st == MMCL_OK;
}

static void
worker_loop_inline(worker *w, pool *p, const mmcl__tile_job *job)
{
    while (!p->stop && p->next_tile < p->n_tiles) {
        mmcl__tile t;
        if (!work_next(w, p, job, 0, &t))
            break;
        while (!p->stop && p->next_commit != t.index)
            cnd_wait(&p->changed, &p->lock);
        if (p->stop)
            break;
        /* Our turn. Nobody else commits until next_commit moves on, so
         * the commit (the writer, the serial part) runs without the lock
         * while the other workers take and compute tiles. */
        if (job->commit) {
            mtx_unlock(&p->lock);
            mmcl_status st = job->commit(w->ctx, w->state, &t, job->user);
            mtx_lock(&p->lock);
            if (st != MMCL_OK) {
                pool_fail(p, w->ctx, st);
                break;
            }
        }
        p->next_commit++;
        cnd_broadcast(&p->changed);
    }
}

/* Commits on the commit thread: the worker computes into a free slot,
 * marks the tile ready and goes on with the next one. */
static void
worker_loop_async(worker *w, pool *p, const mmcl__tile_job *job)
{
    while (!p->stop && p->next_tile < p->n_tiles) {
        int slot = w->n_done % MMCL__TILE_SLOTS;
        if (w->busy[slot]) {
            cnd_wait(&p->changed, &p->lock);
            continue;
        }
        mmcl__tile t;
        w->busy[slot] = 1;
        w->n_done++;
        if (!work_next(w, p, job, slot, &t))
            break;
        p->owner[t.index] = w->id;
        p->slot[t.index] = (unsigned char)slot;
        p->ready[t.index] = 1;
        cnd_broadcast(&p->changed);
    }
}

static int
worker_main(void *arg)
{
    worker *w = arg;
    pool *p = w->pool;
    const mmcl__tile_job *job = p->job;
    /* The descriptors the starting thread is in (cycles, nesting). */
    mmcl__chain_adopt(p->chain);
    void *state = job->start ? job->start(w->ctx, job->user) : NULL;

    mtx_lock(&p->lock);
    w->state = state;
    w->started = 1;
    if (job->start && !state)
        pool_fail(p, w->ctx, mmcl_context_errcode(w->ctx));
    if (p->async)
        worker_loop_async(w, p, job);
    else
        worker_loop_inline(w, p, job);
    p->n_running--;
    cnd_broadcast(&p->changed);
    mtx_unlock(&p->lock);

    /* With a commit thread, the state may still be committed from: the
     * pool stops it after the commit thread is done. */
    if (job->stop && !p->async)
        job->stop(state, job->user);
    return 0;
}

typedef struct committer {
    pool *pool;
    mmcl_context *ctx;
    thrd_t thread;
} committer;

static int
committer_main(void *arg)
{
    committer *c = arg;
    pool *p = c->pool;
    const mmcl__tile_job *job = p->job;
    mtx_lock(&p->lock);
    while (!p->stop && p->next_commit < p->n_tiles) {
        int i = p->next_commit;
        if (!p->ready[i]) {
            cnd_wait(&p->changed, &p->lock);
            continue;
        }
        worker *w = &p->workers[p->owner[i]];
        mmcl__tile t;
        mmcl__tile_at(&t, p->width, p->height, p->tile, i);
        t.slot = p->slot[i];
        mtx_unlock(&p->lock);

        mmcl_status st = job->commit(c->ctx, w->state, &t, job->user);

        mtx_lock(&p->lock);
        if (st != MMCL_OK) {
            pool_fail(p, c->ctx, st);
            break;
        }
        w->busy[t.slot] = 0;
        p->next_commit++;
        cnd_broadcast(&p->changed);
    }
    p->n_running--;
    cnd_broadcast(&p->changed);
    mtx_unlock(&p->lock);
    return 0;
}

static mmcl_status
run_tiles(mmcl_context *ctx, int width, int height, int tile, int n_threads,
          const mmcl__tile_job *job, int commit_thread,
          mmcl_progress_fn progress, void *progress_user, double p0, double p1)
{
    if (width <= 0 || height <= 0 || tile <= 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "invalid tiling: %d x %d raster, tile %d", width,
                           height, tile);
    pool p = {0};
    p.job = job;
    p.chain = mmcl__chain_current();
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
    committer com = {0};
    com.pool = &p;
    int com_started = 0;
    mmcl_status st = MMCL_OK;
    int n_started = 0;
    if (!workers) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    p.workers = workers;
    p.async = commit_thread && job->commit;
    if (p.async) {
        p.owner = mmcl__calloc_array(ctx, (size_t)p.n_tiles, 1, sizeof(int));
        p.slot = mmcl__calloc_array(ctx, (size_t)p.n_tiles, 1, 1);
        p.ready = mmcl__calloc_array(ctx, (size_t)p.n_tiles, 1, 1);
        com.ctx = mmcl_context_create();
        if (!p.owner || !p.slot || !p.ready || !com.ctx) {
            st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
    }
    for (int i = 0; i < n_threads; i++) {
        workers[i].pool = &p;
        workers[i].id = i;
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

    /* One level of parallelism: each tile worker runs its GEMMs on one
     * BLAS thread. Even with a single worker: the GEMMs are blocks of a few
     * hundred rows, too small for OpenBLAS's threads, which then spend
     * more time waking and yielding than computing. */
    mmcl__blas_threads_enter(1);
    p.n_running = n_threads + p.async;
    if (p.async) {
        if (thrd_create(&com.thread, committer_main, &com) != thrd_success) {
            mmcl__blas_threads_leave(1);
            st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "cannot start a thread");
            goto done;
        }
        com_started = 1;
    }
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
    if (com_started)
        thrd_join(com.thread, NULL);
    if (p.async && job->stop)
        for (int i = 0; i < n_started; i++)
            if (workers[i].started)
                job->stop(workers[i].state, job->user);
    mmcl__blas_threads_leave(1);

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
    mmcl_context_destroy(com.ctx);
    free(p.owner);
    free(p.slot);
    free(p.ready);
    free(workers);
    cnd_destroy(&p.changed);
    mtx_destroy(&p.lock);
    return st;
}

mmcl_status
mmcl__run_tiles(mmcl_context *ctx, int width, int height, int tile,
                int n_threads, const mmcl__tile_job *job,
                mmcl_progress_fn progress, void *progress_user, double p0,
                double p1)
{
    return run_tiles(ctx, width, height, tile, n_threads, job, 0, progress,
                     progress_user, p0, p1);
}

mmcl_status
mmcl__run_tiles_committed(mmcl_context *ctx, int width, int height, int tile,
                          int n_threads, const mmcl__tile_job *job,
                          mmcl_progress_fn progress, void *progress_user,
                          double p0, double p1)
{
    return run_tiles(ctx, width, height, tile, n_threads, job, 1, progress,
                     progress_user, p0, p1);
}
