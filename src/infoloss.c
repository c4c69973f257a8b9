/* SPDX-License-Identifier: MIT */
/*
 * mmcl_infoloss: per pixel, how much of each modality's signal its aligned
 * embedding does not carry (design section 3.5), measured with the linear
 * decoders fitted at training time, and the global figures. The per-tile
 * compute is the shared one of map_compute.c (also what the lazy products
 * of the GDAL plugin use); the tiles' sums are merged in tile order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_string.h>

#include "mmcl/maps.h"

#include "blas_info_internal.h"
#include "context_internal.h"
#include "maps_internal.h"
#include "options_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

typedef struct loss_job {
    const mmcl__encoder *enc;
    const mmcl__pair *pair;
    mmcl__map_def def;
    mmcl__writer *writer;
    mmcl__tile_reader *reader; /* reads the tiles ahead of the workers */
    int tile;
    mmcl__loss_sums total[2];
    /* Totals, for --debug (see embed.c). */
    mmcl__map_timing timing;
    double write_s;
} loss_job;

static void
loss_stop(void *state, void *user)
{
    loss_job *job = user;
    mmcl__map_slots_destroy(state, &job->timing);
}

static void *
loss_start(mmcl_context *ctx, void *user)
{
    loss_job *job = user;
    return mmcl__map_slots_create(ctx, job->enc, job->pair, &job->def,
                                  job->tile, job->reader);
}

static mmcl_status
loss_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    mmcl__map_slots *w = state;
    (void)user;
    return mmcl__map_compute_tile(ctx, w, t, w->out[t->slot],
                                  w->sums[t->slot]);
}

/* On the commit thread, in tile order. */
static mmcl_status
loss_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    loss_job *job = user;
    mmcl__map_slots *w = state;
    /* Sums merged in tile order: the figures do not depend on threads. */
    for (int m = 0; m < 2; m++)
        mmcl__loss_sums_add(&job->total[m], &w->sums[t->slot][m]);
    return mmcl__map_write_tile(ctx, job->writer, job->reader, t->x, t->y,
                                t->w, t->h, w->out[t->slot], &job->write_s);
}

mmcl_status
mmcl_infoloss(mmcl_context *ctx, const mmcl_model *model,
              const char *const *optical, size_t n_optical,
              const char *const *sar, size_t n_sar, const char *out,
              const mmcl_options *opts_in, char **report_json)
{
    mmcl__error_clear(ctx);
    mmcl__blas_kernel_warn_once();
    if (report_json)
        *report_json = NULL;
    mmcl_options *tmp = NULL;
    const mmcl_options *o = NULL;
    mmcl__encoder *enc = NULL;
    mmcl__pair *pair = NULL;
    loss_job job = {0};
    mmcl__files *files = NULL;
    mmcl__stage *report_stage = NULL;
    char **names = NULL, **md = NULL, **fig_md = NULL;
    cJSON *fig = NULL;
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "infoloss", &tmp, &o);
    if (st != MMCL_OK)
        return st;
    if (mmcl__opt_bool(o, "LAZY")) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "LAZY=YES writes a descriptor, which names the "
                         "model file: use mmcl_product_write_descriptor()");
        goto done;
    }
    const char *format = NULL;
    char **co = mmcl__opt_list(o, "CO");
    const char *report = mmcl__opt_str(o, "REPORT");
    st = mmcl__maps_files(ctx, model, optical, n_optical, sar, n_sar,
                          mmcl__opt_bool(o, "OVERWRITE"), &files);
    if (st == MMCL_OK)
        st = mmcl__output_check_options(ctx, files, out, o, co, GDT_Float32,
                                        "infoloss", &format);
    if (st == MMCL_OK && report)
        st = mmcl__files_add_output(ctx, files, report, "report",
                                    MMCL__OUT_REPORT, NULL, NULL);
    if (st == MMCL_OK)
        st = mmcl__maps_open(ctx, model, optical, n_optical, sar, n_sar, &enc,
                             &pair);
    if (st != MMCL_OK)
        goto done;
    st = mmcl__map_def_init(ctx, &job.def, enc, MMCL__MAP_INFOLOSS, NULL,
                            mmcl__opt_bool(o, "NON_REDUNDANCY"));
    if (st != MMCL_OK)
        goto done;
    job.enc = enc;
    job.pair = pair;
    job.tile = (int)mmcl__opt_int(o, "TILE");
    names = mmcl__map_band_names(&job.def);
    md = mmcl__map_metadata(&job.def, enc);

    mmcl__raster_spec spec = {0};
    spec.path = out;
    spec.format = format;
    spec.creation_options = co;
    spec.files = files;
    spec.product = "infoloss";
    spec.width = mmcl__pair_width(pair);
    spec.height = mmcl__pair_height(pair);
    spec.n_bands = job.def.n_out;
    spec.type = GDT_Float32;
    mmcl__pair_geotransform(pair, spec.geotransform);
    spec.srs_wkt = mmcl__pair_srs_wkt(pair);
    spec.has_nodata = 1;
    spec.nodata = NAN;
    spec.band_names = (const char *const *)names;
    spec.block = job.tile;
    spec.n_threads = mmcl__opt_threads(o);
    spec.stream_threads = mmcl__map_compress_threads(spec.n_threads);
    job.writer = mmcl__writer_open(ctx, &spec);
    if (!job.writer) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    /* Reading starts here, once the output exists. */
    job.reader = mmcl__tile_reader_create(ctx, pair, job.tile, enc->P / 2,
                                          mmcl__opt_threads(o));
    if (!job.reader) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    mmcl__tile_job tj = {loss_start, loss_work, loss_commit, loss_stop, &job};
    void *puser;
    mmcl_progress_fn progress = mmcl__opt_progress(o, &puser);
    double split = mmcl__writer_progress_split(job.writer, 0.0, 1.0);
    st = mmcl__run_tiles_committed(ctx, spec.width, spec.height, job.tile,
                                   mmcl__opt_threads(o), &tj, progress,
                                   puser, 0.0, split);
    if (st != MMCL_OK)
        goto done;
    job.timing.read_s += mmcl__tile_reader_stop(job.reader);
    mmcl__map_timing_report("infoloss", &job.timing, job.write_s);
    if (job.total[0].n + job.total[1].n == 0) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "no valid patch in the pair: nothing to measure");
        goto done;
    }
    fig = mmcl__loss_figures_json(enc, job.def.nonred, job.total);
    fig_md = mmcl__loss_figures_md(fig);
    st = mmcl__writer_set_metadata_list(ctx, job.writer, md);
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata_list(ctx, job.writer, fig_md);
    if (st != MMCL_OK)
        goto done;
    char *text = cJSON_Print(fig);
    if (!text) {
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    /* The raster complete, the report beside it, then both in place. */
    st = mmcl__writer_finish(ctx, job.writer, progress, puser, split, 1.0);
    mmcl__stage *stages[2] = {mmcl__writer_stage(job.writer), NULL};
    if (st == MMCL_OK && report) {
        report_stage = mmcl__stage_create(ctx, files, report);
        FILE *f = report_stage ? mmcl__stage_fopen(ctx, report_stage) : NULL;
        if (f) {
            /* A failed write leaves the stream's error set: the close
             * reports it. */
            fputs(text, f);
            fputc('\n', f);
            st = mmcl__stage_fclose(ctx, report_stage, f);
        } else {
            st = mmcl_context_errcode(ctx);
        }
        stages[1] = report_stage;
    }
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, stages, report ? 2 : 1, progress,
                                 puser, 1.0);
    if (st == MMCL_OK && report_json) {
        *report_json = mmcl__strdup(ctx, text);
        if (!*report_json)
            st = MMCL_ERR_NO_MEMORY;
    }
    cJSON_free(text);
done:
    cJSON_Delete(fig);
    /* The reader stops before the output goes: a read that makes room in
     * GDAL's block cache may write out a dirty block of the output. */
    mmcl__tile_reader_destroy(job.reader);
    mmcl__writer_abort(job.writer);
    mmcl__stage_destroy(report_stage);
    CSLDestroy(names);
    CSLDestroy(md);
    CSLDestroy(fig_md);
    mmcl__pair_close(pair);
    mmcl__encoder_free(enc);
    mmcl__files_destroy(files);
    mmcl_options_free(tmp);
    return st;
}
