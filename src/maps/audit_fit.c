/* SPDX-License-Identifier: MIT */
/*
 * The fit of an audit as JSON and back (audit_fit_internal.h): what the
 * lazy audit product reads instead of a model file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpl_string.h>

#include "audit_fit_internal.h"
#include "context_internal.h"

static const char *const mod_names[2] = {"optical", "sar"};

/* ---- writing ---------------------------------------------------------- */

static cJSON *
layer_json(const mmcl__linear *l)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "in", l->in);
    cJSON_AddNumberToObject(j, "out", l->out);
    cJSON_AddItemToObject(j, "W", cJSON_CreateFloatArray(l->W, l->in * l->out));
    cJSON_AddItemToObject(j, "b", cJSON_CreateFloatArray(l->b, l->out));
    return j;
}

/* A noise floor: a number, or null when the fit has none (NaN). */
static void
add_floor(cJSON *j, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(j, key, v);
    else
        cJSON_AddNullToObject(j, key);
}

cJSON *
mmcl__audit_fit_json(const mmcl__encoder *enc)
{
    cJSON *fit = cJSON_CreateObject();
    if (!fit)
        return NULL;
    cJSON_AddNumberToObject(fit, "k", enc->k);
    for (int m = 0; m < 2; m++) {
        const mmcl__modality *mod = &enc->mod[m];
        cJSON *j = cJSON_AddObjectToObject(fit, mod_names[m]);
        cJSON_AddNumberToObject(j, "bands", mod->B);
        cJSON_AddItemToObject(j, "mean",
                              cJSON_CreateDoubleArray(mod->mean, mod->B));
        cJSON_AddItemToObject(j, "std",
                              cJSON_CreateDoubleArray(mod->std, mod->B));
        cJSON_AddItemToObject(j, "pca", layer_json(&mod->unimodal));
        cJSON_AddItemToObject(j, "decoder_aligned",
                              layer_json(&mod->dec_aligned));
        cJSON_AddItemToObject(j, "decoder_unimodal",
                              layer_json(&mod->dec_unimodal));
        cJSON_AddItemToObject(j, "decoder_nonredundant",
                              layer_json(&mod->dec_nonred));
        add_floor(j, "floor_infoloss", mod->floor_infoloss);
        add_floor(j, "floor_unimodal", mod->floor_unimodal);
    }
    /* cJSON returns NULL items on no memory: check the whole once. */
    char *probe = cJSON_PrintUnformatted(fit);
    if (!probe) {
        cJSON_Delete(fit);
        return NULL;
    }
    cJSON_free(probe);
    return fit;
}

/* ---- reading ---------------------------------------------------------- */

static mmcl_status
bad(mmcl_context *ctx, const char *name, const char *mod, const char *what)
{
    return mmcl__error(ctx, MMCL_ERR_FORMAT,
                       "descriptor '%s': the audit's \"fit\"%s%s: %s", name,
                       mod ? " of " : "", mod ? mod : "", what);
}

/* @p n finite numbers of the array @p a into a new array of @p size-byte
 * floats or doubles (*out, malloc'd). */
static mmcl_status
numbers(mmcl_context *ctx, const cJSON *a, size_t n, int as_double,
        const char *name, const char *mod, const char *key, void **out)
{
    *out = NULL;
    if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != n)
        return bad(ctx, name, mod,
                   CPLSPrintf("\"%s\" is not an array of %zu numbers", key,
                              n));
    void *v = mmcl__malloc_array(ctx, n ? n : 1,
                                 as_double ? sizeof(double) : sizeof(float),
                                 1);
    if (!v)
        return MMCL_ERR_NO_MEMORY;
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble)) {
            free(v);
            return bad(ctx, name, mod,
                       CPLSPrintf("\"%s\" holds a value that is not a finite "
                                  "number",
                                  key));
        }
        if (as_double)
            ((double *)v)[i++] = e->valuedouble;
        else
            ((float *)v)[i++] = (float)e->valuedouble;
    }
    *out = v;
    return MMCL_OK;
}

/* An integer member @p key of @p j in [lo, hi]. */
static mmcl_status
integer(mmcl_context *ctx, const cJSON *j, const char *key, int lo, int hi,
        const char *name, const char *mod, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < lo || v->valuedouble > hi)
        return bad(ctx, name, mod,
                   CPLSPrintf("\"%s\" is not an integer in [%d, %d]", key,
                              lo, hi));
    *out = (int)v->valuedouble;
    return MMCL_OK;
}

/* The layer @p key of modality @p j, @p in -> @p out. */
static mmcl_status
layer(mmcl_context *ctx, const cJSON *j, const char *key, int in, int out,
      const char *name, const char *mod, mmcl__linear *l)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    int p = 0, q = 0;
    if (!cJSON_IsObject(v))
        return bad(ctx, name, mod, CPLSPrintf("no layer \"%s\"", key));
    mmcl_status st = integer(ctx, v, "in", 1, 1 << 20, name, mod, &p);
    if (st == MMCL_OK)
        st = integer(ctx, v, "out", 1, 1 << 20, name, mod, &q);
    if (st != MMCL_OK)
        return st;
    if (p != in || q != out)
        return bad(ctx, name, mod,
                   CPLSPrintf("layer \"%s\" is %d -> %d, not %d -> %d", key, p,
                              q, in, out));
    void *W = NULL, *b = NULL;
    st = numbers(ctx, cJSON_GetObjectItemCaseSensitive(v, "W"),
                 (size_t)p * q, 0, name, mod, key, &W);
    if (st == MMCL_OK)
        st = numbers(ctx, cJSON_GetObjectItemCaseSensitive(v, "b"),
                     (size_t)q, 0, name, mod, key, &b);
    if (st != MMCL_OK) {
        free(W);
        return st;
    }
    *l = (mmcl__linear){W, b, p, q, NULL};
    return MMCL_OK;
}

static double
floor_of(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

void
mmcl__audit_fit_free(mmcl__encoder *enc)
{
    if (!enc)
        return;
    for (int m = 0; m < 2; m++) {
        mmcl__modality *mod = &enc->mod[m];
        mmcl__linear *ls[] = {&mod->unimodal, &mod->dec_aligned,
                              &mod->dec_unimodal, &mod->dec_nonred};
        for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
            free((void *)ls[i]->W);
            free((void *)ls[i]->b);
        }
    }
    mmcl__encoder_free(enc);
}

mmcl_status
mmcl__audit_fit_parse(mmcl_context *ctx, const cJSON *fit, const char *name,
                      int B1, int B2, mmcl__encoder **out)
{
    *out = NULL;
    if (!cJSON_IsObject(fit))
        return mmcl__error(ctx, MMCL_ERR_FORMAT,
                           "descriptor '%s': missing or mistyped key "
                           "\"fit\" (an object)",
                           name);
    mmcl__encoder *enc = calloc(1, sizeof(*enc));
    if (!enc)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    snprintf(enc->objective, sizeof(enc->objective), "audit");
    enc->P = 1;
    mmcl_status st = integer(ctx, fit, "k", 1, 65536, name, NULL, &enc->k);
    int bands[2] = {B1, B2};
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        const char *mn = mod_names[m];
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(fit, mn);
        mmcl__modality *mod = &enc->mod[m];
        if (!cJSON_IsObject(j)) {
            st = bad(ctx, name, NULL, CPLSPrintf("no \"%s\" object", mn));
            break;
        }
        int B = 0;
        st = integer(ctx, j, "bands", 1, 65536, name, mn, &B);
        if (st != MMCL_OK)
            break;
        if (B != bands[m]) {
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "descriptor '%s': the audit was fitted on %d %s "
                             "band%s; the %s raster has %d",
                             name, B, mn, B == 1 ? "" : "s", mn, bands[m]);
            break;
        }
        mod->B = mod->d = B;
        mod->k = mod->K = enc->k;
        mod->Ku = enc->k < B ? enc->k : B;
        void *mean = NULL, *sd = NULL;
        st = numbers(ctx, cJSON_GetObjectItemCaseSensitive(j, "mean"),
                     (size_t)B, 1, name, mn, "mean", &mean);
        mod->mean = mean;
        if (st == MMCL_OK)
            st = numbers(ctx, cJSON_GetObjectItemCaseSensitive(j, "std"),
                         (size_t)B, 1, name, mn, "std", &sd);
        mod->std = sd;
        for (int b = 0; st == MMCL_OK && b < B; b++)
            if (!(mod->std[b] > 0))
                st = bad(ctx, name, mn, "\"std\" holds a value <= 0");
        int Bo = bands[1 - m];
        if (st == MMCL_OK)
            st = layer(ctx, j, "pca", B, mod->Ku, name, mn, &mod->unimodal);
        if (st == MMCL_OK)
            st = layer(ctx, j, "decoder_aligned", enc->k, B, name, mn,
                       &mod->dec_aligned);
        if (st == MMCL_OK)
            st = layer(ctx, j, "decoder_unimodal", mod->Ku, B, name, mn,
                       &mod->dec_unimodal);
        if (st == MMCL_OK)
            st = layer(ctx, j, "decoder_nonredundant", Bo, B, name, mn,
                       &mod->dec_nonred);
        mod->floor_infoloss = floor_of(j, "floor_infoloss");
        mod->floor_unimodal = floor_of(j, "floor_unimodal");
    }
    /* The products of its linear maps (the maps' f32). */
    if (st == MMCL_OK)
        st = mmcl__encoder_set_precision(ctx, enc, MMCL__PRECISION_F32, NULL);
    if (st != MMCL_OK) {
        mmcl__audit_fit_free(enc);
        return st;
    }
    *out = enc;
    return MMCL_OK;
}
