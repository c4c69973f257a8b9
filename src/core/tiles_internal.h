/* SPDX-License-Identifier: MIT */
/*
 * Private: tiled processing in libvips' start / work / stop shape.
 *
 * The raster is cut into tiles on the output grid. Workers take tiles in
 * order from one counter; each computes its tile with work() using only its
 * own state (own GDAL handles, own buffers), then commit() is called for the
 * tiles strictly in tile order, one at a time (the writer), so the output
 * does not depend on the number of threads. Progress and cancellation run
 * on the calling thread.
 *
 * With a commit thread (mmcl__run_tiles_committed), the commits run on
 * a thread of their own, so writing (compression included) overlaps the
 * workers' compute instead of stalling them. Each worker then has two
 * slots, numbered in mmcl__tile.slot: work() computes a tile into the
 * slot it is given, and commit() reads that slot later while work() fills
 * the other one. A slot is handed out again only after its commit.
 */
#ifndef MMCL_TILES_INTERNAL_H
#define MMCL_TILES_INTERNAL_H

#include "mmcl/context.h"

typedef struct mmcl__tile {
    int x, y, w, h; /* window on the output grid */
    int index;      /* row-major tile number */
    int slot;       /* with a commit thread: the worker's slot, 0 or 1;
                     * else 0 */
} mmcl__tile;

enum { MMCL__TILE_SLOTS = 2 };

typedef struct mmcl__tile_job {
    /* Once per worker, before any work(); returns the worker's state or
     * NULL with an error set in @p ctx (the worker's own context). */
    void *(*start)(mmcl_context *ctx, void *user);
    /* Computes one tile. Errors are set in @p ctx and stop the pool. */
    mmcl_status (*work)(mmcl_context *ctx, void *state, const mmcl__tile *tile,
                        void *user);
    /* Called in tile order, never concurrently; may be NULL. */
    mmcl_status (*commit)(mmcl_context *ctx, void *state,
                          const mmcl__tile *tile, void *user);
    /* Once per worker after its last tile (and, with a commit thread,
     * after its last commit); must accept a NULL state. */
    void (*stop)(void *state, void *user);
    void *user;
} mmcl__tile_job;

/*
 * Runs @p job over a @p width x @p height grid cut in tiles of @p tile
 * pixels, with @p n_threads worker threads. Progress
 * goes from @p p0 to @p p1 of @p progress. A worker's error is copied to
 * @p ctx; cancellation gives MMCL_ERR_CANCELLED.
 */
mmcl_status mmcl__run_tiles(mmcl_context *ctx, int width, int height,
                            int tile, int n_threads, const mmcl__tile_job *job,
                            mmcl_progress_fn progress, void *progress_user,
                            double p0, double p1);

/* mmcl__run_tiles with the commits on a thread of their own, with the
 * worker's state and the tile's slot (see above). */
mmcl_status mmcl__run_tiles_committed(mmcl_context *ctx, int width,
                                      int height, int tile, int n_threads,
                                      const mmcl__tile_job *job,
                                      mmcl_progress_fn progress,
                                      void *progress_user, double p0,
                                      double p1);

/* The @p index-th tile of the grid. */
void mmcl__tile_at(mmcl__tile *t, int width, int height, int tile, int index);

#endif /* MMCL_TILES_INTERNAL_H */
