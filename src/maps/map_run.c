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

#include "context_internal.h"
#include "maps_internal.h"
#include "options_internal.h"
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
    return run_open_writer(ctx, r, out, format, mmcl__opt_list(o, "CO"));
}

mmcl_status
mmcl__map_run_open(mmcl_context *ctx, mmcl__map_run *r,
                   const mmcl_model *model, const char *const *optical,
                   size_t n_optical, const char *const *sar, size_t n_sar,
                   const char *out, const mmcl_options *o)
{
    const char *format = NULL;
    mmcl_status st = mmcl__maps_files(ctx, model, optical, n_optical, sar,
                                      n_sar, mmcl__opt_bool(o, "OVERWRITE"),
                                      &r->files);
    if (st == MMCL_OK)
        st = mmcl__map_run_check_outputs(ctx, r, out, o, &format);
    if (st == MMCL_OK)
        st = mmcl__maps_open(ctx, model, optical, n_optical, sar, n_sar,
                             &r->enc, &r->pair);
    if (st == MMCL_OK)
        st = mmcl__map_run_create(ctx, r, out, o, format);
    return st;
}

/* Writes the map (progress r->split to 1) and the report @p text beside
 * it (when r->report) and moves both into place together, or neither. */
static mmcl_status
run_commit_outputs(mmcl_context *ctx, mmcl__map_run *r, const char *text)
{
    mmcl_status st = mmcl__writer_finish(ctx, r->writer, r->progress,
                                         r->progress_user, r->split, 1.0);
    mmcl__stage *stages[2] = {mmcl__writer_stage(r->writer), NULL};
    if (st == MMCL_OK && r->report) {
        r->report_stage = mmcl__stage_create(ctx, r->files, r->report);
        st = r->report_stage
                 ? mmcl__stage_write_text(ctx, r->report_stage, text)
                 : mmcl_context_errcode(ctx);
        stages[1] = r->report_stage;
    }
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, stages, r->report ? 2 : 1, r->progress,
                                 r->progress_user, 1.0);
    return st;
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
    if (st == MMCL_OK)
        st = run_commit_outputs(ctx, r, text);
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
    /* Reading starts here, once the output exists. */
    r->reader = mmcl__tile_reader_create(
        ctx, r->pair, r->tile, mmcl__map_halo(&r->def, r->enc), r->threads);
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
}
