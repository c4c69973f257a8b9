/* SPDX-License-Identifier: MIT */
/*
 * mmcl_embed: the embedding map, tile by tile (map_run.c), written in tile
 * order.
 */
#include "mmcl/maps.h"

#include "blas_info_internal.h"
#include "context_internal.h"
#include "maps_internal.h"
#include "style_internal.h"
#include "options_internal.h"
#include "writer_internal.h"

mmcl_status
mmcl_embed(mmcl_context *ctx, const mmcl_model *model,
           const char *const *optical, size_t n_optical, const char *const *sar,
           size_t n_sar, const char *out, const mmcl_options *opts_in)
{
    mmcl__error_clear(ctx);
    mmcl__blas_kernel_warn_once();
    mmcl_options *tmp = NULL;
    const mmcl_options *o = NULL;
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "embed", &tmp, &o);
    if (st != MMCL_OK)
        return st;
    mmcl__map_run r = {.product = "embedding",
                       .style = mmcl__style_write_raster,
                       .def = {.kind = MMCL__MAP_EMBEDDING}};
    st = mmcl__map_run_open(ctx, &r, model, optical, n_optical, sar, n_sar,
                            out, o);
    if (st == MMCL_OK && r.writer)
        st = mmcl__writer_set_metadata_list(ctx, r.writer, r.metadata);
    if (st == MMCL_OK)
        st = mmcl__map_run_tiles(ctx, &r);
    if (st == MMCL_OK && r.writer) { /* rank 0 writes */
        double t0 = mmcl__thread_seconds();
        st = mmcl__writer_commit(ctx, r.writer, r.progress, r.progress_user,
                                 r.split, 1.0);
        r.writer = NULL;
        r.write_s += mmcl__thread_seconds() - t0;
        mmcl__map_run_report_timing(&r, "embed");
    }
    st = mmcl__map_run_end(ctx, &r, st);
    mmcl__map_run_close(&r);
    mmcl_options_free(tmp);
    return st;
}
