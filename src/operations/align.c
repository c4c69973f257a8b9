/* SPDX-License-Identifier: MIT */
/*
 * mmcl_align: the SAR on the optical grid, tile by tile.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpl_string.h>

#include "mmcl/align.h"
#include "mmcl/mpi.h"

#include "context_internal.h"
#include "dist_internal.h"
#include "options_internal.h"
#include "pair_internal.h"
#include "shift_internal.h"
#include "style_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

typedef struct align_job {
    mmcl__pair *pair;
    mmcl__writer *writer;
    int tile;
    float *buf;        /* shared or journaled run: a tile for the writer */
} align_job;

/* A worker's reader and its tiles (n_sar, tile, tile): one per slot, so
 * that the commit thread writes one while the worker warps the other
 * (tiles_internal.h); a shared or journaled run uses slot 0 only. */
typedef struct align_worker {
    mmcl__pair_reader *reader;
    float *buf[MMCL__TILE_SLOTS];
} align_worker;

static void
align_stop(void *state, void *user)
{
    align_worker *w = state;
    if (!w)
        return;
    mmcl__pair_reader_destroy(w->reader);
    for (int i = 0; i < MMCL__TILE_SLOTS; i++)
        free(w->buf[i]);
    free(w);
}

static void *
align_start(mmcl_context *ctx, void *user)
{
    align_job *job = user;
    align_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    w->reader = mmcl__pair_reader_create(ctx, job->pair);
    int ok = w->reader != NULL;
    for (int i = 0; ok && i < MMCL__TILE_SLOTS; i++) {
        w->buf[i] = mmcl__malloc_array(ctx, (size_t)job->tile * job->tile,
                                       (size_t)mmcl__pair_sar_bands(job->pair),
                                       sizeof(float));
        ok = w->buf[i] != NULL;
    }
    if (!ok) {
        align_stop(w, user);
        return NULL;
    }
    return w;
}

static mmcl_status
align_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    align_worker *w = state;
    return mmcl__pair_read(ctx, w->reader, t->x, t->y, t->w, t->h, 0, NULL,
                           w->buf[t->slot], NULL);
}

static mmcl_status
align_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    align_job *job = user;
    align_worker *w = state;
    return mmcl__writer_write(ctx, job->writer, t->x, t->y, t->w, t->h,
                              w->buf[t->slot]);
}

/* Shared among MPI ranks or journaled (dist.c): a tile's bytes are its
 * window (n_sar, h, w). */
static size_t
align_packed_size(const mmcl__tile *t, void *user)
{
    align_job *job = user;
    return (size_t)mmcl__pair_sar_bands(job->pair) * (size_t)t->w *
           (size_t)t->h * sizeof(float);
}

static void
align_pack(void *state, const mmcl__tile *t, void *buf, void *user)
{
    align_worker *w = state;
    memcpy(buf, w->buf[t->slot], align_packed_size(t, user));
}

static mmcl_status
align_commit_packed(mmcl_context *ctx, const mmcl__tile *t, const void *buf,
                    void *user)
{
    align_job *job = user;
    align_worker w = {NULL, {job->buf}};
    memcpy(job->buf, buf, align_packed_size(t, user));
    mmcl__tile t0 = *t;
    t0.slot = 0;
    return align_commit(ctx, &w, &t0, user);
}

static mmcl_status
align_run_dist(mmcl_context *ctx, align_job *job, mmcl_status st, int width,
               int height, int threads, const mmcl_options *opts,
               const char *const *optical, size_t n_optical,
               const char *const *sar, size_t n_sar, char *journal,
               mmcl_progress_fn progress, void *puser, double split)
{
    char *fingerprint = NULL;
    if (st == MMCL_OK && job->writer) {
        job->buf = mmcl__malloc_array(ctx, (size_t)job->tile * job->tile,
                                      (size_t)mmcl__pair_sar_bands(job->pair),
                                      sizeof(float));
        if (!job->buf)
            st = MMCL_ERR_NO_MEMORY;
    }
    if (st == MMCL_OK && journal) {
        char **extra = CSLAddString(NULL, CPLSPrintf("grid=%dx%d", width,
                                                     height));
        fingerprint = mmcl__dist_fingerprint(opts, optical, n_optical, sar,
                                             n_sar, NULL, extra);
        CSLDestroy(extra);
        if (!fingerprint)
            st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    /* Every rank goes through the run, so that a failure stops all. */
    mmcl__dist_job dj = {{align_start, align_work, NULL, align_stop, job},
                         align_packed_size,
                         align_pack,
                         align_commit_packed,
                         journal,
                         fingerprint,
                         st,
                         NULL};
    st = mmcl__run_tiles_dist(ctx, width, height, job->tile, threads, &dj,
                              progress, puser, 0.0, split);
    free(fingerprint);
    return st;
}

mmcl_status
mmcl_align(mmcl_context *ctx, const char *const *optical, size_t n_optical,
           const char *const *sar, size_t n_sar, const char *out,
           const mmcl_options *opts_in)
{
    mmcl__error_clear(ctx);
    mmcl_options *tmp = NULL;
    const mmcl_options *opts = NULL;
    mmcl__files *files = NULL;
    char *journal = NULL;
    align_job job = {0};
    /* Rank 0 writes; the other ranks read and resample. */
    int writes = mmcl_mpi_rank() == 0;
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "align", &tmp, &opts);
    if (st != MMCL_OK)
        return st;
    if (!out) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no output path given");
        goto done;
    }
    const char *format = NULL;
    char **co = mmcl__opt_list(opts, "CO");
    /* Fail on the output before any reading or resampling. */
    files = mmcl__files_create(ctx, mmcl__opt_bool(opts, "OVERWRITE"));
    if (!files) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < n_optical && st == MMCL_OK; i++)
        st = mmcl__files_add_input(ctx, files, optical[i]);
    for (size_t i = 0; sar && i < n_sar && st == MMCL_OK; i++)
        st = mmcl__files_add_input(ctx, files, sar[i]);
    if (st == MMCL_OK && mmcl__opt_str(opts, "SAR_SHIFT_FIELD"))
        st = mmcl__files_add_input(ctx, files,
                                   mmcl__opt_str(opts, "SAR_SHIFT_FIELD"));
    if (st == MMCL_OK && writes)
        st = mmcl__output_check_options(ctx, files, out, opts, co, GDT_Float32,
                                        "aligned_sar", &format);
    if (st == MMCL_OK)
        st = mmcl__pair_open(ctx, optical, n_optical, sar, n_sar, opts,
                             &job.pair);
    if (st == MMCL_OK && writes && mmcl__opt_bool(opts, "RESUME")) {
        journal = mmcl__dist_journal_path(ctx, out);
        if (!journal)
            st = MMCL_ERR_NO_MEMORY;
    }
    /* Every rank checked what it reads; rank 0 also the output. */
    st = mmcl__dist_agree(ctx, st);
    if (st != MMCL_OK)
        goto done;

    job.tile = (int)mmcl__opt_int(opts, "TILE");
    int threads = mmcl__opt_threads(opts);
    mmcl__raster_spec spec = {0};
    spec.path = out;
    spec.format = format;
    spec.creation_options = co;
    spec.files = files;
    spec.product = "aligned_sar";
    spec.width = mmcl__pair_width(job.pair);
    spec.height = mmcl__pair_height(job.pair);
    spec.n_bands = mmcl__pair_sar_bands(job.pair);
    spec.type = GDT_Float32;
    mmcl__pair_geotransform(job.pair, spec.geotransform);
    spec.srs_wkt = mmcl__pair_srs_wkt(job.pair);
    spec.has_nodata = 1;
    spec.nodata = NAN;
    spec.band_names = mmcl__pair_sar_band_names(job.pair);
    spec.block = job.tile;
    spec.n_threads = threads;
    spec.style = mmcl__style_write_raster;
    spec.stats_as_written = 1; /* every tile once, in tile order */
    if (writes) {
        job.writer = mmcl__writer_open(ctx, &spec);
        if (!job.writer)
            st = mmcl_context_errcode(ctx);
    }
    char step[32];
    snprintf(step, sizeof(step), "%d", mmcl__pair_lattice_step(job.pair));
    if (st == MMCL_OK && writes)
        st = mmcl__writer_set_metadata(ctx, job.writer, "PRODUCT",
                                       "aligned_sar");
    if (st == MMCL_OK && writes)
        st = mmcl__writer_set_metadata(ctx, job.writer, "RESAMPLING",
                                       mmcl__pair_resampling(job.pair));
    if (st == MMCL_OK && writes)
        st = mmcl__writer_set_metadata(ctx, job.writer, "SAR_TRANSFORM",
                                       mmcl__opt_str(opts, "SAR_TRANSFORM"));
    if (st == MMCL_OK && writes)
        st = mmcl__writer_set_metadata(ctx, job.writer, "SPECKLE",
                                       mmcl__opt_str(opts, "SPECKLE"));
    if (st == MMCL_OK && writes)
        st = mmcl__writer_set_metadata(ctx, job.writer, "TRANSFORM_LATTICE",
                                       step);
    char **shift_md = mmcl__shift_metadata(NULL, mmcl__pair_shift(job.pair));
    for (int i = 0; writes && st == MMCL_OK && shift_md && shift_md[i]; i++) {
        char *key = NULL;
        const char *value = CPLParseNameValue(shift_md[i], &key);
        st = mmcl__writer_set_metadata(ctx, job.writer, key, value);
        CPLFree(key);
    }
    CSLDestroy(shift_md);
    if (st == MMCL_OK && writes)
        st = mmcl__writer_set_metadata(ctx, job.writer, "MMCL_VERSION",
                                       mmcl_version());

    mmcl__tile_job tj = {align_start, align_work, align_commit, align_stop,
                         &job};
    void *puser;
    mmcl_progress_fn progress = mmcl__opt_progress(opts, &puser);
    double split =
        job.writer ? mmcl__writer_progress_split(job.writer, 0.0, 1.0) : 1.0;
    int dist = mmcl__dist_active() || mmcl__opt_bool(opts, "RESUME");
    if (dist)
        st = align_run_dist(ctx, &job, st, spec.width, spec.height, threads,
                            opts, optical, n_optical, sar, n_sar, journal,
                            progress, puser, split);
    else if (st == MMCL_OK)
        /* The writes (and the statistics summed as they are written) on a
         * thread of their own, overlapping the warps, as gdalwarp -multi
         * overlaps its I/O with its kernels. */
        st = mmcl__run_tiles_committed(ctx, spec.width, spec.height,
                                       job.tile, threads, &tj, progress,
                                       puser, 0.0, split);
    if (st == MMCL_OK && writes && mmcl__writer_valid_count(job.writer, 1) == 0)
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "the SAR '%s'%s has no valid pixel over the optical "
                         "grid (empty, all nodata, or outside)",
                         sar[0],
                         n_sar > 1 ? " and the others stacked with it" : "");
    if (st == MMCL_OK && writes) {
        st = mmcl__writer_commit(ctx, job.writer, progress, puser, split,
                                 1.0);
        job.writer = NULL;
        if (st == MMCL_OK)
            mmcl__dist_journal_remove(journal);
    }
    if (dist)
        st = mmcl__dist_agree(ctx, st);

done:
    mmcl__writer_abort(job.writer);
    free(job.buf);
    free(journal);
    mmcl__pair_close(job.pair);
    mmcl__files_destroy(files);
    mmcl_options_free(tmp);
    return st;
}
