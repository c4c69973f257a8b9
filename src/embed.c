/* SPDX-License-Identifier: MIT */
/*
 * mmcl_embed: the embedding map, tile by tile: each worker computes its
 * tiles with the shared per-window compute (map_compute.c, also what the
 * lazy products of the GDAL plugin use), and the tiles are written in
 * tile order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpl_string.h>

#include "mmcl/maps.h"

#include "blas_info_internal.h"
#include "context_internal.h"
#include "maps_internal.h"
#include "options_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

typedef struct embed_job {
    const mmcl__encoder *enc;
    const mmcl__pair *pair;
    mmcl__map_def def;
    mmcl__writer *writer;
    mmcl__tile_reader *reader; /* reads the tiles ahead of the workers */
    int tile;
    /* Totals, for --debug: the workers' (added by embed_stop, which the
     * pool calls from one thread when commits run on their own thread)
     * and the writer's. */
    mmcl__map_timing timing;
    double write_s;
} embed_job;

static void
embed_stop(void *state, void *user)
{
    embed_job *job = user;
    mmcl__map_slots_destroy(state, &job->timing);
}

static void *
embed_start(mmcl_context *ctx, void *user)
{
    embed_job *job = user;
    return mmcl__map_slots_create(ctx, job->enc, job->pair, &job->def,
                                  job->tile, job->reader);
}

static mmcl_status
embed_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    mmcl__map_slots *w = state;
    (void)user;
    return mmcl__map_compute_tile(ctx, w, t, w->out[t->slot], NULL);
}

/* On the commit thread, while the workers compute the next tiles. */
static mmcl_status
embed_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    embed_job *job = user;
    mmcl__map_slots *w = state;
    return mmcl__map_write_tile(ctx, job->writer, job->reader, t->x, t->y,
                                t->w, t->h, w->out[t->slot], &job->write_s);
}

mmcl_status
mmcl_embed(mmcl_context *ctx, const mmcl_model *model,
           const char *const *optical, size_t n_optical, const char *const *sar,
           size_t n_sar, const char *out, const mmcl_options *opts_in)
{
    mmcl__error_clear(ctx);
    mmcl__blas_kernel_warn_once();
    mmcl_options *tmp = NULL;
    const mmcl_options *o = NULL;
    mmcl__encoder *enc = NULL;
    mmcl__pair *pair = NULL;
    embed_job job = {0};
    mmcl__files *files = NULL;
    char **names = NULL, **md = NULL;
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "embed", &tmp, &o);
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
    st = mmcl__maps_files(ctx, model, optical, n_optical, sar, n_sar,
                          mmcl__opt_bool(o, "OVERWRITE"), &files);
    if (st == MMCL_OK)
        st = mmcl__output_check_options(ctx, files, out, o, co, GDT_Float32,
                                        "embedding", &format);
    if (st == MMCL_OK)
        st = mmcl__maps_open(ctx, model, optical, n_optical, sar, n_sar, &enc,
                             &pair);
    if (st != MMCL_OK)
        goto done;

    st = mmcl__map_def_init(ctx, &job.def, enc, MMCL__MAP_EMBEDDING,
                            mmcl__opt_str(o, "MODALITY"), 0);
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
    spec.product = "embedding";
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
    st = mmcl__writer_set_metadata_list(ctx, job.writer, md);
    if (st != MMCL_OK)
        goto done;

    /* Reading starts here, once the output exists. */
    job.reader = mmcl__tile_reader_create(ctx, pair, job.tile, enc->P / 2,
                                          mmcl__opt_threads(o));
    if (!job.reader) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    mmcl__tile_job tj = {embed_start, embed_work, embed_commit, embed_stop,
                         &job};
    void *puser;
    mmcl_progress_fn progress = mmcl__opt_progress(o, &puser);
    double split = mmcl__writer_progress_split(job.writer, 0.0, 1.0);
    st = mmcl__run_tiles_committed(ctx, spec.width, spec.height, job.tile,
                                   mmcl__opt_threads(o), &tj, progress,
                                   puser, 0.0, split);
    if (st == MMCL_OK) {
        double t0 = mmcl__thread_seconds();
        st = mmcl__writer_commit(ctx, job.writer, progress, puser, split,
                                 1.0);
        job.writer = NULL;
        job.write_s += mmcl__thread_seconds() - t0;
        job.timing.read_s += mmcl__tile_reader_stop(job.reader);
        mmcl__map_timing_report("embed", &job.timing, job.write_s);
    }
done:
    /* The reader stops before the output goes: a read that makes room in
     * GDAL's block cache may write out a dirty block of the output. */
    mmcl__tile_reader_destroy(job.reader);
    mmcl__writer_abort(job.writer);
    CSLDestroy(names);
    CSLDestroy(md);
    mmcl__pair_close(pair);
    mmcl__encoder_free(enc);
    mmcl__files_destroy(files);
    mmcl_options_free(tmp);
    return st;
}
