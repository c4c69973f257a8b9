/* SPDX-License-Identifier: MIT */
/*
 * Shared by the maps: opening a model with its raster pair, patch validity
 * and patch vectors of a tile.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_string.h>

#include "context_internal.h"
#include "input_check_internal.h"
#include "maps_internal.h"
#include "model_internal.h"
#include "options_internal.h"

mmcl_status
mmcl__maps_files(mmcl_context *ctx, const mmcl_model *model,
                 const char *const *optical, size_t n_optical,
                 const char *const *sar, size_t n_sar,
                 const mmcl_options *opts, mmcl__files **out)
{
    *out = mmcl__files_create(ctx, mmcl__opt_bool(opts, "OVERWRITE"));
    if (!*out)
        return MMCL_ERR_NO_MEMORY;
    mmcl_status st = mmcl__files_add_input_file(ctx, *out,
                                                mmcl__model_source(model));
    for (size_t i = 0; optical && i < n_optical && st == MMCL_OK; i++)
        st = mmcl__files_add_input(ctx, *out, optical[i]);
    for (size_t i = 0; sar && i < n_sar && st == MMCL_OK; i++)
        st = mmcl__files_add_input(ctx, *out, sar[i]);
    const char *field = mmcl__opt_str(opts, "SAR_SHIFT_FIELD");
    if (field && st == MMCL_OK)
        st = mmcl__files_add_input(ctx, *out, field);
    return st;
}

/*
 * The misregistration correction of the operation's options @p op (a
 * shift belongs to the SAR at hand, not to the model) as pair options
 * into @p kv; a warning when the model was trained on a corrected SAR and
 * none is given now.
 */
static char **
shift_options(mmcl_context *ctx, const cJSON *pair, const mmcl_options *op,
              char **kv)
{
    static const char *const keys[] = {"SAR_SHIFT", "SAR_SHIFT_FIELD",
                                       "SHIFT_MIN_CONFIDENCE"};
    int given = 0;
    for (size_t i = 0; op && i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = mmcl__opt_str(op, keys[i]);
        if (v && mmcl__opt_given(op, keys[i])) {
            kv = CSLAddString(kv, CPLSPrintf("%s=%s", keys[i], v));
            given |= i < 2;
        }
    }
    const cJSON *c = cJSON_GetObjectItem(pair, "sar_shift");
    const cJSON *f = cJSON_GetObjectItem(pair, "sar_shift_field");
    if (!given && (cJSON_IsString(c) || cJSON_IsString(f)))
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "the model was trained on a SAR corrected for its "
                  "misregistration (%s %s) and no correction is given now: "
                  "if this SAR is as misregistered, give %s or %s too, "
                  "else its maps mix shifted ground",
                  cJSON_IsString(c) ? mmcl__opt_name(ctx, "SAR_SHIFT")
                                    : mmcl__opt_name(ctx, "SAR_SHIFT_FIELD"),
                  cJSON_IsString(c) ? c->valuestring : f->valuestring,
                  mmcl__opt_name(ctx, "SAR_SHIFT"),
                  mmcl__opt_name(ctx, "SAR_SHIFT_FIELD"));
    return kv;
}

/* Options for mmcl__pair_open from the "pair" object of the model, and
 * the correction of the operation's options @p op. */
static mmcl_options *
pair_options(mmcl_context *ctx, const mmcl_model *model,
             const mmcl_options *op)
{
    static const char *const keys[][2] = {
        {"resampling", "RESAMPLING"},
        {"sar_transform", "SAR_TRANSFORM"},
        {"speckle", "SPECKLE"},
        {"stack_resampling", "STACK_RESAMPLING"},
    };
    cJSON *meta = cJSON_Parse(mmcl_model_metadata_json(model));
    const cJSON *pair = cJSON_GetObjectItem(meta, "pair");
    char **kv = NULL;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const cJSON *v = cJSON_GetObjectItem(pair, keys[i][0]);
        if (cJSON_IsString(v))
            kv = CSLAddString(kv, CPLSPrintf("%s=%s", keys[i][1],
                                             v->valuestring));
    }
    const cJSON *et = cJSON_GetObjectItem(pair, "error_threshold");
    if (cJSON_IsNumber(et))
        kv = CSLAddString(kv, CPLSPrintf("ERROR_THRESHOLD=%.17g",
                                         et->valuedouble));
    kv = shift_options(ctx, pair, op, kv);
    cJSON_Delete(meta);
    mmcl_options *o = mmcl_options_new(ctx, "align", (const char *const *)kv);
    CSLDestroy(kv);
    return o;
}

mmcl_status
mmcl__maps_open(mmcl_context *ctx, const mmcl_model *model,
                const char *const *optical, size_t n_optical,
                const char *const *sar, size_t n_sar,
                const mmcl_options *opts, mmcl__encoder **enc_out,
                mmcl__pair **pair_out)
{
    *enc_out = NULL;
    *pair_out = NULL;
    if (!model)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no model given");
    mmcl__encoder *enc = NULL;
    mmcl__pair *pair = NULL;
    mmcl_options *po = NULL;
    mmcl_status st = mmcl__encoder_create(ctx, model, &enc);
    if (st != MMCL_OK)
        return st;
    po = pair_options(ctx, model, opts);
    if (!po) {
        st = mmcl_context_errcode(ctx);
        goto fail;
    }
    st = mmcl__pair_open(ctx, optical, n_optical, sar, n_sar, po, &pair);
    if (st != MMCL_OK)
        goto fail;
    /* The inputs against what the model recorded: swapped modalities, band
     * order, units; notes go into the outputs' metadata. */
    st = mmcl__input_check_model(ctx, enc, mmcl_model_metadata_json(model),
                                 pair, optical, n_optical, sar, n_sar,
                                 &enc->input_notes);
    if (st != MMCL_OK)
        goto fail;
    /* What training warned about, again where its outputs are made. */
    for (int i = 0; enc->warning_messages && enc->warning_messages[i]; i++)
        mmcl__log(ctx, MMCL_LOG_WARNING, "the model was trained with a "
                  "warning: %s", enc->warning_messages[i]);
    int nb[2] = {mmcl__pair_optical_bands(pair), mmcl__pair_sar_bands(pair)};
    const char *names[2] = {"optical", "SAR"};
    for (int m = 0; m < 2; m++) {
        if (nb[m] != enc->mod[m].B) {
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "the model expects %d %s bands, the %s input has "
                             "%d",
                             enc->mod[m].B, names[m], names[m], nb[m]);
            goto fail;
        }
    }
    if (enc->P > mmcl__pair_width(pair) || enc->P > mmcl__pair_height(pair)) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "the model's %dx%d patch is larger than the %d x %d "
                         "raster",
                         enc->P, enc->P, mmcl__pair_width(pair),
                         mmcl__pair_height(pair));
        goto fail;
    }
    mmcl_options_free(po);
    *enc_out = enc;
    *pair_out = pair;
    return MMCL_OK;
fail:
    mmcl_options_free(po);
    mmcl__pair_close(pair);
    mmcl__encoder_free(enc);
    return st;
}

void
mmcl__patch_valid(uint8_t *centre, const uint8_t *valid, uint8_t need, int w,
                  int h, int halo, uint8_t *scratch)
{
    int P = 2 * halo + 1, W = w + 2 * halo, H = h + 2 * halo;
    /* Separable: P valid values in a row, then P such rows. */
    for (int y = 0; y < H; y++) {
        const uint8_t *v = valid + (size_t)y * W;
        uint8_t *s = scratch + (size_t)y * w;
        int run = 0; /* valid values ending at column x */
        for (int x = 0; x < W; x++) {
            run = (v[x] & need) == need ? run + 1 : 0;
            if (x >= P - 1)
                s[x - (P - 1)] = run >= P;
        }
    }
    for (int x = 0; x < w; x++) {
        int run = 0;
        for (int y = 0; y < H; y++) {
            run = scratch[(size_t)y * w + x] ? run + 1 : 0;
            if (y >= P - 1)
                centre[(size_t)(y - (P - 1)) * w + x] = run >= P;
        }
    }
}
