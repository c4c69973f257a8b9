/* SPDX-License-Identifier: MIT */
/* The tile reader: the windows of a pool's tiles, read ahead of its
 * workers (tile_reader.c). */
#ifndef MMCL_TILE_READER_INTERNAL_H
#define MMCL_TILE_READER_INTERNAL_H

#include <stdint.h>

#include "mmcl/context.h"
#include "pair_internal.h"

/*
 * The tile reader of a pool (tile_reader.c): a thread that reads the
 * windows of the tiles of mmcl__tile_at(width, height, @p tile) of the
 * pair's grid, with @p halo pixels around them, in tile order and ahead of
 * the @p n_workers workers, into a ring of window buffers. Reading then
 * overlaps the compute, and each input block is decoded once for the
 * windows of all workers (neighbouring tiles share their halo blocks in
 * one GDAL block cache). The thread starts at creation.
 *
 * With @p fed, the reader reads only the tiles given to it with
 * mmcl__tile_reader_feed(), in that order (the tiles an MPI rank is
 * handed); the workers must take them in the same order.
 */
typedef struct mmcl__tile_reader mmcl__tile_reader;
mmcl__tile_reader *mmcl__tile_reader_create(mmcl_context *ctx,
                                            const mmcl__pair *pair, int tile,
                                            int halo, int n_workers, int fed);
/* The next tile to read (a reader created with @p fed); a negative
 * @p index: no more will come. */
void mmcl__tile_reader_feed(mmcl__tile_reader *r, int index);
/* Stops the thread (when not done) and returns its CPU seconds. */
double mmcl__tile_reader_stop(mmcl__tile_reader *r);
void mmcl__tile_reader_destroy(mmcl__tile_reader *r);

/* Waits for the window of tile @p index (mmcl__pair_read's outputs, stride
 * w + 2 halo) and lends it until mmcl__tile_reader_release(). A read error
 * of this tile or an earlier one is copied to @p ctx. */
mmcl_status mmcl__tile_reader_get(mmcl_context *ctx, mmcl__tile_reader *r,
                                  int index, float *pad[2], uint8_t **valid);
void mmcl__tile_reader_release(mmcl__tile_reader *r, int index);

/* Takes and gives back the reader's turn at GDAL, for a writer whose
 * output goes through GDAL's block cache: a read that needs room in the
 * cache may write out a dirty output block, which must not happen while
 * the writer is filling that block on its own thread. */
void mmcl__tile_reader_lock(mmcl__tile_reader *r);
void mmcl__tile_reader_unlock(mmcl__tile_reader *r);

#endif /* MMCL_TILE_READER_INTERNAL_H */
