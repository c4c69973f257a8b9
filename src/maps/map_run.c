/* SPDX-License-Identifier: MIT */
/*
 * One map written tile by tile, for mmcl_embed and mmcl_infoloss: the
 * inputs and the output checked, the model and the pair opened, the
 * output raster created on the optical grid, then the tiles computed by
 * the workers (map_compute.c, also what the lazy products use) while the
 * reader reads ahead and the commit thread writes them in tile order; an
 * information-loss map also merges its tiles' sums in that order, so its
 * figures do not depend on the threads. See maps_internal.h.
 */
#include <math.h>
#include <string.h>

#include <cpl_string.h>

#include <stdlib.h>
#include <string.h>

#include "mmcl/mpi.h"

#include "context_internal.h"
#include "dist_internal.h"
#include "maps_internal.h"
#include "options_internal.h"
#include "shift_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

static void
run_stop(void *state, void *user)
{
    mmcl__map_run *r = user;
    mmcl__map_slots_destroy(state, &r->timing);
}

static void *
run_start(mmcl_context *ctx, void *user)
{
    mmcl__map_run *r = user;
    return mmcl__map_slots_create(ctx, r->enc, r->pair, &r->def, r->tile,
                                  r->reader);
}

static mmcl_status
run_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    mmcl__map_run *r = user;
    mmcl__map_slots *w = state;
    return mmcl__map_compute_tile(
        ctx, w, t, w->out[t->slot],
        r->def.kind == MMCL__MAP_INFOLOSS ? w->sums[t->slot] : NULL);
}

/* On the commit thread, in tile order, while the workers compute the next
 * tiles. */
static mmcl_status
run_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    mmcl__map_run *r = user;
    mmcl__map_slots *w = state;
    if (r->def.kind == MMCL__MAP_INFOLOSS)
        for (int m = 0; m < 2; m++)
            mmcl__loss_sums_add(&r->total[m], &w->sums[t->slot][m]);
    return mmcl__map_write_tile(ctx, r->writer, r->reader, t->x, t->y, t->w,
                                t->h, w->out[t->slot], &r->write_s);
}

/* ---- the tiles shared among ranks, or journaled (dist.c) -------------- */

/* The workers compute the tiles this rank is handed, which its tile
 * reader reads in the same order (dist_handed). */
static mmcl_status
dist_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    mmcl__map_run *r = user;
    mmcl__map_slots *w = state;
    return mmcl__map_compute_tile(
        ctx, w, t, w->out[0],
        r->def.kind == MMCL__MAP_INFOLOSS ? w->sums[0] : NULL);
}

static void
dist_handed(int index, void *user)
{
    mmcl__map_run *r = user;
    mmcl__tile_reader_feed(r->reader, index);
}

/* A tile's bytes: an information-loss map's sums of both modalities, then
 * the window (n_out, h, w) as the writer takes it. */
static size_t
dist_sums_size(const mmcl__map_run *r)
{
    return r->def.kind == MMCL__MAP_INFOLOSS ? 2 * sizeof(mmcl__loss_sums)
                                             : 0;
}

static size_t
dist_packed_size(const mmcl__tile *t, void *user)
{
    mmcl__map_run *r = user;
    return dist_sums_size(r) +
           (size_t)r->def.n_out * (size_t)t->w * (size_t)t->h * sizeof(float);
}

static void
dist_pack(void *state, const mmcl__tile *t, void *buf, void *user)
{
    mmcl__map_run *r = user;
    mmcl__map_slots *w = state;
    size_t ns = dist_sums_size(r);
    if (ns)
        memcpy(buf, w->sums[0], ns);
    memcpy((unsigned char *)buf + ns, w->out[0],
           (size_t)r->def.n_out * (size_t)t->w * (size_t)t->h * sizeof(float));
}

static mmcl_status
dist_commit(mmcl_context *ctx, const mmcl__tile *t, const void *buf,
            void *user)
{
    mmcl__map_run *r = user;
    size_t ns = dist_sums_size(r);
    if (ns) {
        mmcl__loss_sums sums[2];
        memcpy(sums, buf, ns);
        for (int m = 0; m < 2; m++)
            mmcl__loss_sums_add(&r->total[m], &sums[m]);
    }
    /* The window is in the bytes of a message or a journal record, which
     * need not be aligned for floats: copied to the slot of the writer. */
    size_t nb = (size_t)r->def.n_out * (size_t)t->w * (size_t)t->h *
                sizeof(float);
    memcpy(r->dist_buf, (const unsigned char *)buf + ns, nb);
    return mmcl__map_write_tile(ctx, r->writer, r->reader, t->x, t->y, t->w,
                                t->h, r->dist_buf, &r->write_s);
}

static mmcl_status
run_tiles_dist(mmcl_context *ctx, mmcl__map_run *r)
{
    if (r->writer) {
        r->dist_buf = mmcl__malloc_array(ctx, (size_t)r->tile * r->tile,
                                         (size_t)r->def.n_out, sizeof(float));
        if (!r->dist_buf)
            return MMCL_ERR_NO_MEMORY;
    }
    /* One reader per rank, over the tiles the rank is handed: runs of
     * neighbouring tiles, whose shared input blocks it decodes once. */
    r->reader = mmcl__tile_reader_create(ctx, r->pair, r->tile,
                                         mmcl__map_halo(&r->def, r->enc),
                                         r->threads, 1);
    if (!r->reader)
        return mmcl_context_errcode(ctx);
    mmcl__dist_job job = {{run_start, dist_work, NULL, run_stop, r},
                          dist_packed_size,
                          dist_pack,
                          dist_commit,
                          r->journal,
                          r->fingerprint,
                          MMCL_OK,
                          dist_handed};
    r->split = r->writer ? mmcl__writer_progress_split(r->writer, r->start, 1.0)
                         : 1.0;
    return mmcl__run_tiles_dist(ctx, mmcl__pair_width(r->pair),
                                mmcl__pair_height(r->pair), r->tile,
                                r->threads, &job, r->progress,
                                r->progress_user, r->start, r->split);
}

/* With RESUME, rank 0 keeps a journal beside the output, for this job. */
static mmcl_status
run_journal(mmcl_context *ctx, mmcl__map_run *r, const char *out,
            const char *const *optical, size_t n_optical,
            const char *const *sar, size_t n_sar, const mmcl_options *o)
{
    char **extra = NULL;
    extra = CSLAddString(extra, CPLSPrintf("model_hash=%s", r->enc->hash));
    extra = CSLAddString(extra, CPLSPrintf("grid=%dx%d", mmcl__pair_width(
                                                             r->pair),
                                           mmcl__pair_height(r->pair)));
    extra = CSLAddString(extra, CPLSPrintf("bands=%d", r->def.n_out));
    r->journal = mmcl__dist_journal_path(ctx, out);
    r->fingerprint = mmcl__dist_fingerprint(o, optical, n_optical, sar, n_sar,
                                            NULL, extra);
    CSLDestroy(extra);
    if (!r->journal || !r->fingerprint)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    return MMCL_OK;
}

mmcl_status
mmcl__map_run_end(mmcl_context *ctx, mmcl__map_run *r, mmcl_status st)
{
    if (st == MMCL_OK && r->journal)
        mmcl__dist_journal_remove(r->journal);
    if (r->dist)
        st = mmcl__dist_agree(ctx, st);
    return st;
}

/* The output raster on the optical grid, float32 with NaN nodata. */
static mmcl_status
run_open_writer(mmcl_context *ctx, mmcl__map_run *r, const char *out,
                const char *format, char **co)
{
    mmcl__raster_spec spec = {0};
    spec.path = out;
    spec.format = format;
    spec.creation_options = co;
    spec.files = r->files;
    spec.product = r->product;
    spec.width = mmcl__pair_width(r->pair);
    spec.height = mmcl__pair_height(r->pair);
    spec.n_bands = r->def.n_out;
    spec.type = GDT_Float32;
    mmcl__pair_geotransform(r->pair, spec.geotransform);
    spec.srs_wkt = mmcl__pair_srs_wkt(r->pair);
    spec.has_nodata = 1;
    spec.nodata = NAN;
    spec.band_names = (const char *const *)r->names;
    spec.band_units = (const char *const *)r->units;
    spec.band_meanings = (const char *const *)r->meanings;
    spec.block = r->tile;
    spec.n_threads = r->threads;
    spec.stream_threads = mmcl__map_compress_threads(spec.n_threads);
    spec.stats_as_written = 1; /* every tile once, in tile order */
    spec.style = r->style;
    r->writer = mmcl__writer_open(ctx, &spec);
    return r->writer ? MMCL_OK : mmcl_context_errcode(ctx);
}

mmcl_status
mmcl__map_run_check_outputs(mmcl_context *ctx, mmcl__map_run *r,
                            const char *out, const mmcl_options *o,
                            const char **format)
{
    int infoloss = r->def.kind == MMCL__MAP_INFOLOSS;
    if (mmcl__opt_bool(o, "LAZY"))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "LAZY=YES writes a descriptor, which names the "
                           "model file: use mmcl_product_write_descriptor()");
    char **co = mmcl__opt_list(o, "CO");
    r->report = infoloss ? mmcl__opt_str(o, "REPORT") : NULL;
    r->tile = (int)mmcl__opt_int(o, "TILE");
    r->threads = mmcl__opt_threads(o);
    r->progress = mmcl__opt_progress(o, &r->progress_user);
    /* Rank 0 writes; the other ranks read and compute. */
    if (mmcl_mpi_rank() != 0)
        return MMCL_OK;
    mmcl_status st = mmcl__output_check_options(ctx, r->files, out, o, co,
                                                GDT_Float32, r->product,
                                                format);
    if (st == MMCL_OK && r->report)
        st = mmcl__files_add_output(ctx, r->files, r->report, "report",
                                    MMCL__OUT_REPORT,
                                    strcmp(r->product, "audit") == 0
                                        ? "audit"
                                        : NULL,
                                    NULL);
    return st;
}

mmcl_status
mmcl__map_run_create(mmcl_context *ctx, mmcl__map_run *r, const char *out,
                     const mmcl_options *o, const char *format)
{
    int infoloss = r->def.kind == MMCL__MAP_INFOLOSS;
    const mmcl__embedding_raster *embedding = r->def.embedding;
    mmcl_status st = mmcl__map_def_init(
        ctx, &r->def, r->enc, r->def.kind,
        infoloss ? NULL : mmcl__opt_str(o, "MODALITY"),
        infoloss ? mmcl__opt_bool(o, "NON_REDUNDANCY") : 0);
    if (st != MMCL_OK)
        return st;
    r->def.embedding = embedding;
    mmcl__map_def_set_mask(&r->def, mmcl__opt_str(o, "MASK"));
    r->names = mmcl__map_band_names(&r->def);
    r->units = mmcl__map_band_units(&r->def);
    r->meanings = mmcl__map_band_meanings(&r->def, r->enc);
    r->metadata = mmcl__map_metadata(&r->def, r->enc);
    r->metadata = mmcl__map_metadata_checks(r->metadata, &r->def, r->enc);
    r->metadata = mmcl__shift_metadata(r->metadata, mmcl__pair_shift(r->pair));
    if (mmcl_mpi_rank() != 0) /* rank 0 writes */
        return MMCL_OK;
    return run_open_writer(ctx, r, out, format, mmcl__opt_list(o, "CO"));
}

static mmcl_status
run_open(mmcl_context *ctx, mmcl__map_run *r, const mmcl_model *model,
         const char *const *optical, size_t n_optical, const char *const *sar,
         size_t n_sar, const char *out, const mmcl_options *o)
{
    const char *format = NULL;
    const char *precision = mmcl__opt_str(o, "PRECISION");
    /* A precision this CPU cannot run is refused before any work. */
    mmcl_status st = mmcl__map_set_precision(ctx, NULL, precision, NULL);
    if (st == MMCL_OK)
        st = mmcl__maps_files(ctx, model, optical, n_optical, sar, n_sar, o,
                              &r->files);
    if (st == MMCL_OK)
        st = mmcl__map_run_check_outputs(ctx, r, out, o, &format);
    if (st == MMCL_OK)
        st = mmcl__maps_open(ctx, model, optical, n_optical, sar, n_sar, o,
                             &r->enc, &r->pair);
    if (st == MMCL_OK)
        st = mmcl__map_set_precision(ctx, r->enc, precision, NULL);
    if (st == MMCL_OK)
        st = mmcl__map_run_create(ctx, r, out, o, format);
    if (st == MMCL_OK && mmcl_mpi_rank() == 0 && mmcl__opt_bool(o, "RESUME"))
        st = run_journal(ctx, r, out, optical, n_optical, sar, n_sar, o);
    return st;
}

mmcl_status
mmcl__map_run_open(mmcl_context *ctx, mmcl__map_run *r,
                   const mmcl_model *model, const char *const *optical,
                   size_t n_optical, const char *const *sar, size_t n_sar,
                   const char *out, const mmcl_options *o)
{
    r->dist = mmcl__dist_active() || mmcl__opt_bool(o, "RESUME");
    mmcl_status st =
        run_open(ctx, r, model, optical, n_optical, sar, n_sar, out, o);
    /* Every rank checked what it reads; rank 0 also the output. */
    return mmcl__dist_agree(ctx, st);
}

mmcl_status
mmcl__map_run_finish(mmcl_context *ctx, mmcl__map_run *r, const cJSON *fig,
                     char **report_json)
{
    char **fig_md = mmcl__loss_figures_md(fig);
    char *text = NULL;
    mmcl_status st = mmcl__writer_set_metadata_list(ctx, r->writer,
                                                    r->metadata);
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata_list(ctx, r->writer, fig_md);
    if (st == MMCL_OK) {
        text = cJSON_Print(fig);
        if (!text)
            st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    /* The map and its report moved into place together, or neither. */
    if (st == MMCL_OK)
        st = mmcl__writer_commit_with_text(ctx, r->writer, r->files, r->report,
                                           text, &r->report_stage, r->progress,
                                           r->progress_user, r->split, 1.0);
    if (st == MMCL_OK && report_json) {
        *report_json = mmcl__strdup(ctx, text);
        if (!*report_json)
            st = MMCL_ERR_NO_MEMORY;
    }
    cJSON_free(text);
    CSLDestroy(fig_md);
    return st;
}

mmcl_status
mmcl__map_run_tiles(mmcl_context *ctx, mmcl__map_run *r)
{
    if (r->dist)
        return run_tiles_dist(ctx, r);
    /* Reading starts here, once the output exists. */
    r->reader = mmcl__tile_reader_create(
        ctx, r->pair, r->tile, mmcl__map_halo(&r->def, r->enc), r->threads, 0);
    if (!r->reader)
        return mmcl_context_errcode(ctx);
    mmcl__tile_job tj = {run_start, run_work, run_commit, run_stop, r};
    r->split = mmcl__writer_progress_split(r->writer, r->start, 1.0);
    return mmcl__run_tiles_committed(
        ctx, mmcl__pair_width(r->pair), mmcl__pair_height(r->pair), r->tile,
        r->threads, &tj, r->progress, r->progress_user, r->start, r->split);
}

void
mmcl__map_run_report_timing(mmcl__map_run *r, const char *what)
{
    if (r->reader)
        r->timing.read_s += mmcl__tile_reader_stop(r->reader);
    mmcl__map_timing_report(what, &r->timing, r->write_s);
}

void
mmcl__map_run_close(mmcl__map_run *r)
{
    /* The reader stops before the output goes: a read that makes room in
     * GDAL's block cache may write out a dirty block of the output. */
    mmcl__tile_reader_destroy(r->reader);
    mmcl__stage_destroy(r->report_stage); /* before its files go */
    mmcl__writer_abort(r->writer);
    CSLDestroy(r->names);
    CSLDestroy(r->units);
    CSLDestroy(r->meanings);
    CSLDestroy(r->metadata);
    mmcl__pair_close(r->pair);
    mmcl__encoder_free(r->enc);
    mmcl__files_destroy(r->files);
    free(r->dist_buf);
    free(r->journal);
    free(r->fingerprint);
}
