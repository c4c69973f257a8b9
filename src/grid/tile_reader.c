/* SPDX-License-Identifier: MIT */
/*
 * The tile reader of embed and infoloss: one thread reads the windows of
 * the pool's tiles (with their halo) in tile order, ahead of the workers,
 * into a ring of window buffers. Reading (decoding, the SAR warp,
 * validity) then overlaps the workers' compute instead of taking turns
 * with it, and each input block is decoded by one set of GDAL handles, so
 * neighbouring tiles find their shared halo blocks in one block cache.
 *
 * The reader reads a sequence of tiles: every tile in tile order (one
 * process), or the tiles one MPI rank is handed, in the order it is handed
 * them (mmcl__tile_reader_feed). The k-th tile of the sequence goes to
 * slot k % n_slots once the tile k - n_slots has been released. Workers
 * take their tiles in the same order, so the reader never waits for a
 * tile that nobody will release.
 *
 * The top halo of a tile is the bottom of the tile above, read one row of
 * tiles earlier: the reader keeps those rows (halo rows per tile column,
 * a few hundred kB for the widest rasters) and reads only the rest of the
 * window, when the tile above was the last one it read in that column. Otherwise the halo would need the blocks of the row of tiles
 * above again, which GDAL's small block cache has evicted by then on a
 * wide raster: they would be decoded a second time. A pixel's values do
 * not depend on the window that read it (pair_internal.h), so the windows
 * are the same as when read whole.
 */
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "context_internal.h"
#include "dist_internal.h"
#include "tile_reader_internal.h"
#include "tiles_internal.h"

typedef struct window_slot {
    float *pad[2];  /* (B_m, H, W) */
    uint8_t *valid; /* (H, W) */
    int index;      /* tile held, -1 when free */
} window_slot;

struct mmcl__tile_reader {
    mtx_t gdal; /* the turn at GDAL's block cache (see the header) */
    mmcl__pair_reader *reader;
    int width, height, tile, halo, n_tiles, nx;
    int bands[2];
    /* Used by the reader thread only: the bottom halo rows of the last
     * window read in each tile column (nx windows of (B_m, halo, W) and
     * (halo, W), W = tile + 2 halo). */
    float *keep[2];
    uint8_t *keep_valid;
    int *kept; /* (nx) the tile whose bottom rows are kept, or -1 */

    mtx_t lock; /* guards what follows */
    cnd_t changed;
    int n_slots;
    window_slot *slots;
    int *seq;          /* (n_tiles) the tiles to read, in order */
    int n_seq;         /* how many are known */
    int fed;           /* the sequence is fed, not every tile in order */
    int seq_ended;     /* no more will be fed */
    int next;          /* position in seq of the next tile to read */
    int failed;        /* the reader stopped at tile `next` with `error` */
    int stop;          /* asked to stop */
    mmcl_context *err; /* the reader thread's context */
    mmcl_status error;
    thrd_t thread;
    int running;
    double seconds; /* CPU seconds of the reader thread */
};

static void
slots_free(mmcl__tile_reader *r)
{
    for (int k = 0; r->slots && k < r->n_slots; k++) {
        free(r->slots[k].pad[0]);
        free(r->slots[k].pad[1]);
        free(r->slots[k].valid);
    }
    free(r->slots);
    r->slots = NULL;
}

/* Rows [r0, r0 + n) of the (planes, H, W) window @p src to rows
 * [d0, d0 + n) of the (planes, Hd, W) window @p dst. */
static void
copy_rows(void *dst, int d0, int Hd, const void *src, int r0, int H, int n,
          int W, int planes, size_t size)
{
    size_t row = (size_t)W * size;
    for (int b = 0; b < planes; b++)
        memcpy((char *)dst + ((size_t)b * Hd + d0) * row,
               (const char *)src + ((size_t)b * H + r0) * row, (size_t)n * row);
}

/* The padded window of tile @p t into slot @p s: whole for the first row
 * of tiles, else the kept top halo and a read of the rest; then keeps its
 * bottom halo rows for the tile below. */
static mmcl_status
read_window(mmcl__tile_reader *r, const mmcl__tile *t, window_slot *s)
{
    int h = r->halo, W = t->w + 2 * h, H = t->h + 2 * h;
    int tx = t->index % r->nx;
    size_t keep_stride = (size_t)h * (r->tile + 2 * h);
    mmcl_status st;
    if (t->y == 0 || h == 0 || r->kept[tx] != t->index - r->nx) {
        st = mmcl__pair_read(r->err, r->reader, t->x, t->y, t->w, t->h, h,
                             s->pad[0], s->pad[1], s->valid);
    } else {
        /* Rows y .. y + h + halo - 1 of the columns x - halo .. x + w +
         * halo - 1, read without a halo of their own (the reader reflects
         * what falls outside the grid as for a halo) into the start of the
         * slot as (B_m, h + halo, W), then moved down to rows halo.. of
         * each (B_m, H, W) plane, the last plane first (a plane only moves
         * to higher addresses), and the kept top halo put above them. */
        int n = t->h + h;
        st = mmcl__pair_read(r->err, r->reader, t->x - h, t->y, W, n, 0,
                             s->pad[0], s->pad[1], s->valid);
        for (int m = 0; m < 2 && st == MMCL_OK; m++) {
            for (int b = r->bands[m] - 1; b >= 0; b--)
                memmove(s->pad[m] + ((size_t)b * H + h) * W,
                        s->pad[m] + (size_t)b * n * W,
                        sizeof(float) * (size_t)n * W);
            copy_rows(s->pad[m], 0, H,
                      r->keep[m] + r->bands[m] * tx * keep_stride, 0, h, h, W,
                      r->bands[m], sizeof(float));
        }
        if (st == MMCL_OK) {
            memmove(s->valid + (size_t)h * W, s->valid, (size_t)n * W);
            copy_rows(s->valid, 0, H, r->keep_valid + tx * keep_stride, 0, h, h,
                      W, 1, 1);
        }
    }
    r->kept[tx] = -1;
    if (st != MMCL_OK || h == 0 || t->y + r->tile >= r->height)
        return st;
    r->kept[tx] = t->index;
    /* The tile below starts at y + h (t->h == tile here): its top halo is
     * rows h + tile - h .. of this window. */
    for (int m = 0; m < 2; m++)
        copy_rows(r->keep[m] + r->bands[m] * tx * keep_stride, 0, h, s->pad[m],
                  t->h, H, h, W, r->bands[m], sizeof(float));
    copy_rows(r->keep_valid + tx * keep_stride, 0, h, s->valid, t->h, H, h, W,
              1, 1);
    return MMCL_OK;
}

static int
reader_main(void *arg)
{
    mmcl__tile_reader *r = arg;
    if (r->fed)
        mmcl__dist_behind_writer();
    double t0 = mmcl__thread_seconds();
    mtx_lock(&r->lock);
    while (!r->stop && (r->next < r->n_seq || !r->seq_ended)) {
        window_slot *s = &r->slots[r->next % r->n_slots];
        if (s->index >= 0 || r->next >= r->n_seq) {
            cnd_wait(&r->changed, &r->lock);
            continue;
        }
        mmcl__tile t;
        mmcl__tile_at(&t, r->width, r->height, r->tile, r->seq[r->next]);
        mtx_unlock(&r->lock);

        mtx_lock(&r->gdal);
        mmcl_status st = read_window(r, &t, s);
        mtx_unlock(&r->gdal);

        mtx_lock(&r->lock);
        if (st != MMCL_OK) {
            r->failed = 1;
            r->error = st;
            break;
        }
        s->index = t.index;
        r->next++;
        cnd_broadcast(&r->changed);
    }
    r->seconds = mmcl__thread_seconds() - t0;
    cnd_broadcast(&r->changed);
    mtx_unlock(&r->lock);
    return 0;
}

void
mmcl__tile_reader_destroy(mmcl__tile_reader *r)
{
    if (!r)
        return;
    mmcl__tile_reader_stop(r);
    slots_free(r);
    for (int m = 0; m < 2; m++)
        free(r->keep[m]);
    free(r->keep_valid);
    free(r->kept);
    free(r->seq);
    mmcl__pair_reader_destroy(r->reader);
    mmcl_context_destroy(r->err);
    cnd_destroy(&r->changed);
    mtx_destroy(&r->lock);
    mtx_destroy(&r->gdal);
    free(r);
}

mmcl__tile_reader *
mmcl__tile_reader_create(mmcl_context *ctx, const mmcl__pair *pair, int tile,
                         int halo, int n_workers, int fed)
{
    mmcl__tile_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    if (mtx_init(&r->gdal, mtx_plain) != thrd_success) {
        free(r);
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "cannot create a mutex");
        return NULL;
    }
    if (mtx_init(&r->lock, mtx_plain) != thrd_success) {
        mtx_destroy(&r->gdal);
        free(r);
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "cannot create a mutex");
        return NULL;
    }
    if (cnd_init(&r->changed) != thrd_success) {
        mtx_destroy(&r->lock);
        mtx_destroy(&r->gdal);
        free(r);
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                    "cannot create a condition variable");
        return NULL;
    }
    r->width = mmcl__pair_width(pair);
    r->height = mmcl__pair_height(pair);
    r->tile = tile;
    r->halo = halo;
    r->nx = (r->width + tile - 1) / tile;
    r->n_tiles = r->nx * ((r->height + tile - 1) / tile);
    /* One window per worker, and two read ahead. */
    r->n_slots = (n_workers < 1 ? 1 : n_workers) + 2;
    r->err = mmcl_context_create();
    r->reader = mmcl__pair_reader_create(ctx, pair);
    r->slots =
        mmcl__calloc_array(ctx, (size_t)r->n_slots, 1, sizeof(window_slot));
    r->seq = mmcl__malloc_array(ctx, (size_t)r->n_tiles, 1, sizeof(int));
    r->kept = mmcl__malloc_array(ctx, (size_t)r->nx, 1, sizeof(int));
    int ok = r->err && r->reader && r->slots && r->seq && r->kept;
    for (int i = 0; ok && i < r->nx; i++)
        r->kept[i] = -1;
    r->fed = fed;
    if (ok && !fed) {
        for (int i = 0; i < r->n_tiles; i++)
            r->seq[i] = i;
        r->n_seq = r->n_tiles;
        r->seq_ended = 1;
    }
    size_t W = (size_t)tile + 2 * (size_t)halo;
    r->bands[0] = mmcl__pair_optical_bands(pair);
    r->bands[1] = mmcl__pair_sar_bands(pair);
    for (int k = 0; ok && k < r->n_slots; k++) {
        window_slot *s = &r->slots[k];
        s->index = -1;
        for (int m = 0; m < 2; m++)
            s->pad[m] = mmcl__malloc_array(ctx, W * W, (size_t)r->bands[m],
                                           sizeof(float));
        s->valid = mmcl__malloc_array(ctx, W, W, 1);
        ok = s->pad[0] && s->pad[1] && s->valid;
    }
    if (ok && halo > 0) {
        size_t keep = (size_t)r->nx * (size_t)halo * W;
        for (int m = 0; m < 2; m++)
            r->keep[m] = mmcl__malloc_array(ctx, keep, (size_t)r->bands[m],
                                            sizeof(float));
        r->keep_valid = mmcl__malloc_array(ctx, keep, 1, 1);
        ok = r->keep[0] && r->keep[1] && r->keep_valid;
    }
    if (ok && thrd_create(&r->thread, reader_main, r) != thrd_success) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "cannot start a thread");
        ok = 0;
    }
    if (!ok) {
        if (!r->err)
            mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        mmcl__tile_reader_destroy(r);
        return NULL;
    }
    r->running = 1;
    return r;
}

double
mmcl__tile_reader_stop(mmcl__tile_reader *r)
{
    if (r->running) {
        mtx_lock(&r->lock);
        r->stop = 1;
        cnd_broadcast(&r->changed);
        mtx_unlock(&r->lock);
        thrd_join(r->thread, NULL);
        r->running = 0;
    }
    return r->seconds;
}

mmcl_status
mmcl__tile_reader_get(mmcl_context *ctx, mmcl__tile_reader *r, int index,
                      float *pad[2], uint8_t **valid)
{
    window_slot *s = NULL;
    mtx_lock(&r->lock);
    for (;;) {
        for (int k = 0; k < r->n_slots && !s; k++)
            if (r->slots[k].index == index)
                s = &r->slots[k];
        if (s || r->failed || r->stop ||
            (r->seq_ended && r->next >= r->n_seq))
            break;
        cnd_wait(&r->changed, &r->lock);
    }
    mmcl_status st = MMCL_OK;
    if (!s) {
        if (r->failed) {
            mmcl__error_copy(ctx, r->err);
            st = r->error;
        } else if (r->stop) {
            st = mmcl__error(ctx, MMCL_ERR_CANCELLED,
                             "the tile reader was stopped");
        } else {
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "tile %d was not given to the tile reader",
                             index);
        }
    }
    mtx_unlock(&r->lock);
    if (st != MMCL_OK)
        return st;
    pad[0] = s->pad[0];
    pad[1] = s->pad[1];
    *valid = s->valid;
    return MMCL_OK;
}

void
mmcl__tile_reader_release(mmcl__tile_reader *r, int index)
{
    mtx_lock(&r->lock);
    for (int k = 0; k < r->n_slots; k++) {
        if (r->slots[k].index == index) {
            r->slots[k].index = -1;
            cnd_broadcast(&r->changed);
        }
    }
    mtx_unlock(&r->lock);
}

void
mmcl__tile_reader_feed(mmcl__tile_reader *r, int index)
{
    mtx_lock(&r->lock);
    if (r->fed && !r->seq_ended) {
        if (index < 0 || index >= r->n_tiles || r->n_seq >= r->n_tiles)
            r->seq_ended = 1;
        else
            r->seq[r->n_seq++] = index;
        cnd_broadcast(&r->changed);
    }
    mtx_unlock(&r->lock);
}

void
mmcl__tile_reader_lock(mmcl__tile_reader *r)
{
    mtx_lock(&r->gdal);
}

void
mmcl__tile_reader_unlock(mmcl__tile_reader *r)
{
    mtx_unlock(&r->gdal);
}
