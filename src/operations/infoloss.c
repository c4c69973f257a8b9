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
#include "style_internal.h"
#include "options_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

/* The validity rule the map used and what training warned about
 * (design section 3.5; the raster's MASK and MODEL_WARNING_n). */
static void
add_checks(cJSON *fig, const mmcl__map_run *r)
{
    cJSON_AddStringToObject(fig, "mask", r->def.mask_any ? "any" : "own");
    cJSON_AddStringToObject(fig, "precision",
                            mmcl__precision_name(r->enc->precision));
    cJSON *ws = cJSON_AddArrayToObject(fig, "warnings");
    const mmcl__encoder *enc = r->enc;
    for (int i = 0; enc->warning_codes && enc->warning_codes[i]; i++) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "code", enc->warning_codes[i]);
        cJSON_AddStringToObject(w, "message", enc->warning_messages[i]);
        cJSON_AddItemToArray(ws, w);
    }
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
    cJSON *fig = NULL;
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "infoloss", &tmp, &o);
    if (st != MMCL_OK)
        return st;
    mmcl__map_run r = {.product = "infoloss",
                       .style = mmcl__style_write_raster,
                       .def = {.kind = MMCL__MAP_INFOLOSS}};
    st = mmcl__map_run_open(ctx, &r, model, optical, n_optical, sar, n_sar,
                            out, o);
    if (st == MMCL_OK)
        st = mmcl__map_run_tiles(ctx, &r);
    if (st != MMCL_OK || !r.writer) /* rank 0 writes */
        goto done;
    mmcl__map_run_report_timing(&r, "infoloss");
    if (r.total[0].n + r.total[1].n == 0) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "no valid patch in the pair: nothing to measure");
        goto done;
    }
    fig = mmcl__loss_figures_json(r.enc, r.def.nonred, r.total);
    add_checks(fig, &r);
    st = mmcl__map_run_finish(ctx, &r, fig, report_json);
done:
    st = mmcl__map_run_end(ctx, &r, st);
    cJSON_Delete(fig);
    mmcl__map_run_close(&r);
    mmcl_options_free(tmp);
    return st;
}
