/* SPDX-License-Identifier: MIT */
/*
 * Private: the tiles of one output shared among MPI ranks (dist.c,
 * docs/mpi.md), and the resume journal.
 *
 * The output grid is cut into the tiles of mmcl__tile_at() (never by
 * rank). Rank 0 hands them out one at a time to whichever worker asks
 * (its own threads and the other ranks' threads, through its main thread),
 * so uneven tiles and machines balance, and no more than a window of tiles
 * ahead of the next one to write. A worker computes its tile with its own
 * state (own GDAL handles), packs it into bytes, and the bytes go to rank
 * 0, whose main thread writes the tiles strictly in tile order: the output
 * and the sums merged at commit are those of a run on one machine.
 *
 * The journal (optional, rank 0): every committed tile's bytes are also
 * appended to a file beside the output; a run started again with the same
 * journal replays the tiles it holds (checked: order, size, checksum)
 * instead of computing them, and goes on from there. It is removed by the
 * caller once the output is in place.
 */
#ifndef MMCL_DIST_INTERNAL_H
#define MMCL_DIST_INTERNAL_H

#include <stddef.h>

#include "mmcl/context.h"
#include "mmcl/options.h"
#include "tiles_internal.h"

typedef struct mmcl__dist_job {
    /* start, work and stop as in the tile pool (work() is given slot 0);
     * commit is not used. */
    mmcl__tile_job tiles;
    /* The bytes of tile @p t once computed. */
    size_t (*packed_size)(const mmcl__tile *t, void *user);
    /* Packs the tile work() just computed in @p state into @p buf. */
    void (*pack)(void *state, const mmcl__tile *t, void *buf, void *user);
    /* On rank 0, in tile order: writes the tile from its bytes. */
    mmcl_status (*commit_packed)(mmcl_context *ctx, const mmcl__tile *t,
                                 const void *buf, void *user);
    /* Rank 0: the journal's path, or NULL for none; and what the job is
     * (the journal of another job is refused). */
    const char *journal;
    const char *fingerprint;
    /* A failure of this rank before the run (its message in the caller's
     * context): the run then only tells the other ranks, so that every
     * rank stops. MMCL_OK otherwise. */
    mmcl_status prior;
    /* Or NULL: on each rank, the tiles its workers will compute, in the
     * order they will take them (so that a reader can read ahead), then
     * -1 when no more will come. Called with the run's lock held. */
    void (*handed)(int index, void *user);
} mmcl__dist_job;

/* Whether the tiles are shared among several ranks (MPI, size > 1). */
int mmcl__dist_active(void);

/*
 * Called by a thread that computes tiles (a worker, its reader): on rank 0
 * of several, lowers the thread's priority (Linux: nice 10), so that on a
 * busy core the writer's compression, which every rank waits for, goes
 * first and rank 0 computes with what is left. Elsewhere, nothing.
 */
void mmcl__dist_behind_writer(void);

/*
 * Every rank calls this at the same point with its own status: returns
 * MMCL_OK when every rank is fine. Otherwise rank 0 keeps its own message
 * when it failed, else takes the first failing rank's ("rank 2: ...");
 * another rank keeps its own, or is told which rank failed. With one rank,
 * returns @p st.
 */
mmcl_status mmcl__dist_agree(mmcl_context *ctx, mmcl_status st);

/*
 * Runs @p job over the @p width x @p height grid in tiles of @p tile
 * pixels, with @p n_threads worker threads on every rank; rank 0 reports
 * progress from @p p0 to @p p1 (a cancel stops every rank). Every rank
 * calls it; on every rank the result is the job's: a failure anywhere
 * (a worker's error, a rank's, a write's, a cancel) stops all, and each
 * rank returns an error (rank 0 with the message of the failure). Works
 * with one rank too (for the journal).
 */
mmcl_status mmcl__run_tiles_dist(mmcl_context *ctx, int width, int height,
                                 int tile, int n_threads,
                                 const mmcl__dist_job *job,
                                 mmcl_progress_fn progress,
                                 void *progress_user, double p0, double p1);

/* The journal of the output @p out: "<out>.mmcl-journal" (free()), or
 * NULL with the error set. */
char *mmcl__dist_journal_path(mmcl_context *ctx, const char *out);

/* What a journal is for: the operation of @p o, the mmcl version, the
 * input files (path, size, time), the options that change the pixels, and
 * the KEY=VALUE lines of @p extra (CSL, may be NULL); free(). NULL when
 * out of memory. */
char *mmcl__dist_fingerprint(const mmcl_options *o, const char *const *optical,
                             size_t n_optical, const char *const *sar,
                             size_t n_sar, const char *model, char **extra);

/* Removes the journal @p path (once the output is in place). */
void mmcl__dist_journal_remove(const char *path);

/*
 * Work cut into fixed shards (never by rank): shard @p index is this
 * rank's when index % ranks == rank. With one rank, every shard is. The
 * shards' results are then shared (below) and merged in shard order, so
 * that what is merged does not depend on the number of ranks.
 */
int mmcl__dist_owns(int index);

/*
 * Every rank gives its @p n bytes @p mine; every rank receives all ranks'
 * bytes, rank after rank, in *all (free()), rank r's from (*offsets)[r]
 * to (*offsets)[r + 1] (*offsets: ranks + 1 entries, free()). The ranks
 * agree first (mmcl__dist_agree), so that a rank that fails here stops
 * every rank. With one rank, a copy of @p mine.
 */
mmcl_status mmcl__dist_allgather(mmcl_context *ctx, const void *mine,
                                 size_t n, unsigned char **all,
                                 size_t **offsets);

/*
 * @p buf (@p n bytes, the same layout on every rank) was written in
 * disjoint parts, each by one rank, and is 0 elsewhere: afterwards every
 * rank holds all of it (a bitwise or, exact). Nothing to do with one rank.
 */
mmcl_status mmcl__dist_fill_disjoint(mmcl_context *ctx, void *buf, size_t n);

#endif /* MMCL_DIST_INTERNAL_H */
