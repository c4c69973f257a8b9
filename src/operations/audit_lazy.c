/* SPDX-License-Identifier: MIT */
/*
 * mmcl_audit with LAZY=YES: the descriptor of the audit map (product
 * "audit", include/mmcl/product.h) instead of its pixels. The decoders are
 * fitted as for the map (the sampling and the cross-validation are the
 * costly part of an audit that does not scale with the scene); the
 * descriptor holds them, so GDAL's MMCL driver computes the maps window by
 * window when they are read, equal to the written map.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_string.h>

#include "audit_fit_internal.h"
#include "audit_internal.h"
#include "context_internal.h"
#include "options_internal.h"

mmcl_status
mmcl__audit_lazy_check(mmcl_context *ctx, mmcl__files *files, const char *out,
                       const mmcl_options *o)
{
    static const char *const refused[] = {"FORMAT", "CO", "REPORT", NULL};
    mmcl_status st = mmcl__opt_refuse_for_lazy(
        ctx, o, refused, "the maps are computed when read");
    if (st != MMCL_OK)
        return st;
    if (!out || !*out)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no output given");
    return mmcl__files_add_output(ctx, files, out, "output",
                                  MMCL__OUT_DESCRIPTOR, "audit", NULL);
}

/* "optical" and "sar" as written: a string for one path, else an array. */
static void
add_paths(const mmcl__descriptor_hooks *dh, cJSON *j, const char *key,
          const char *out, const char *const *paths, size_t n)
{
    if (n == 1) {
        cJSON_AddItemToObject(j, key, dh->stored_path(out, paths[0]));
        return;
    }
    cJSON *arr = cJSON_AddArrayToObject(j, key);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, dh->stored_path(out, paths[i]));
}

/* The options that decide the product's values, under their lower-case
 * names: those the reading of the rasters and the map's bands depend on
 * always, the rest when given; the shift field's path as the inputs'. */
static void
add_options(const mmcl__descriptor_hooks *dh, cJSON *j, const char *out,
            const mmcl_options *o)
{
    static const char *const always[] = {"DEQUANTIZE", "EMBEDDING_RESAMPLING",
                                         "NON_REDUNDANCY", "MASK"};
    static const char *const given[] = {
        "EMBEDDING_BANDS", "RESAMPLING",       "SAR_TRANSFORM",
        "SPECKLE",         "STACK_RESAMPLING", "ERROR_THRESHOLD",
        "SAR_SHIFT",       "SHIFT_MIN_CONFIDENCE", "TILE",
        "THREADS"};
    if (mmcl__opt_given(o, "SAR_SHIFT_FIELD"))
        cJSON_AddItemToObject(
            j, "sar_shift_field",
            dh->stored_path(out, mmcl__opt_str(o, "SAR_SHIFT_FIELD")));
    for (size_t g = 0; g < 2; g++) {
        const char *const *keys = g == 0 ? always : given;
        size_t n = g == 0 ? sizeof(always) / sizeof(always[0])
                          : sizeof(given) / sizeof(given[0]);
        for (size_t i = 0; i < n; i++) {
            if (g == 1 && !mmcl__opt_given(o, keys[i]))
                continue;
            const char *v = mmcl__opt_str(o, keys[i]);
            if (!v)
                continue;
            char key[64];
            snprintf(key, sizeof(key), "%s", keys[i]);
            for (char *c = key; *c; c++)
                *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
            if (strcmp(keys[i], "NON_REDUNDANCY") == 0)
                cJSON_AddBoolToObject(j, key, mmcl__opt_bool(o, keys[i]));
            else
                cJSON_AddStringToObject(j, key, v);
        }
    }
}

mmcl_status
mmcl__audit_lazy_write(mmcl_context *ctx, mmcl__files *files, const char *out,
                       const char *embedding, const char *const *optical,
                       size_t n_optical, const char *const *sar, size_t n_sar,
                       const mmcl__encoder *enc, char **metadata,
                       const mmcl_options *o, mmcl_progress_fn progress,
                       void *user)
{
    const mmcl__descriptor_hooks *dh = mmcl__descriptor_hooks_get();
    if (!dh)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "'%s': lazy descriptors are not available", out);
    cJSON *fit = mmcl__audit_fit_json(enc);
    cJSON *j = fit ? cJSON_CreateObject() : NULL;
    if (!j) {
        cJSON_Delete(fit);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    cJSON_AddNumberToObject(j, "mmcl_descriptor", MMCL__DESCRIPTOR_VERSION);
    cJSON_AddStringToObject(j, "product", "audit");
    cJSON_AddItemToObject(j, "embedding", dh->stored_path(out, embedding));
    add_paths(dh, j, "optical", out, optical, n_optical);
    add_paths(dh, j, "sar", out, sar, n_sar);
    add_options(dh, j, out, o);
    cJSON *md = cJSON_AddObjectToObject(fit, "metadata");
    for (int i = 0; metadata && metadata[i]; i++) {
        char *key = NULL;
        const char *value = CPLParseNameValue(metadata[i], &key);
        if (key && value)
            cJSON_AddStringToObject(md, key, value);
        CPLFree(key);
    }
    cJSON_AddItemToObject(j, "fit", fit);
    mmcl__stage *stage = mmcl__stage_create(ctx, files, out);
    mmcl_status st = stage ? dh->write(ctx, stage, out, j)
                           : mmcl_context_errcode(ctx);
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, &stage, 1, progress, user, 1.0);
    mmcl__stage_destroy(stage);
    cJSON_Delete(j);
    return st;
}
