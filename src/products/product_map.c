/* SPDX-License-Identifier: MIT */
/*
 * Lazy maps: the kinds "embedding", "infoloss" and "audit" of
 * product_internal.h. An audit map's descriptor names no model: it holds
 * the fit of `mmcl audit` (audit_fit_internal.h) and names the embedding
 * raster, which every level reads on its own grid.
 * A map's descriptor names a model and a raster pair; windows of the map
 * are computed with the same per-window compute as the writers
 * (map_compute.c), so that level 0 equals the written files bit for bit.
 * Overview levels run the model on a pair whose optical is averaged onto a
 * coarser grid, opened on the level's first read.
 *
 * A read state holds a pair reader with its own GDAL handles, encoder
 * scratch and a block's bands. The global figures of an information-loss
 * map are computed once, on first request, over the blocks of level 0 in
 * row-major order: the order in which mmcl_infoloss merges its tiles.
 */
#define _DEFAULT_SOURCE /* strcasecmp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <threads.h>

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>

#include "mmcl/maps.h"
#include "mmcl/product.h"

#include "audit_fit_internal.h"
#include "blas_threads.h"
#include "context_internal.h"
#include "embedding_raster_internal.h"
#include "maps_internal.h"
#include "options_internal.h"
#include "product_internal.h"
#include "shift_internal.h"
#include "tiles_internal.h"

enum {
    MAX_LEVELS = MMCL__PRODUCT_MAX_LEVELS,
    DESCRIPTOR_VERSION = MMCL__DESCRIPTOR_VERSION
};

/* Read state: one per concurrent reader of a level. */
typedef struct read_state {
    mmcl__map_worker *map;
    float *out; /* (n_out, tile, tile) */
} read_state;

/* The map's part of a product (p->impl). */
typedef struct map_product {
    mmcl_model *model;
    mmcl__encoder *enc;
    mmcl__map_def def;
    /* Per level: the pair (level 0 at open; the others on first read). */
    mmcl__pair *pair[MAX_LEVELS];
    /* An audit map: its options (kept: the embedding raster of a level is
     * opened on first read), and per level the embedding raster on the
     * level's grid and the map's definition reading it. */
    int audit;
    mmcl_options *opts;
    char *er_path; /* the embedding raster, resolved */
    mmcl__embedding_raster *er[MAX_LEVELS];
    mmcl__map_def level_def[MAX_LEVELS];
    mmcl_status open_status[MAX_LEVELS];
    char *open_error[MAX_LEVELS]; /* message of a failed lazy open */

    /* Global figures of an information-loss map. */
    int figures_wanted;
    mtx_t figures_lock;
    int figures_done;
    mmcl_status figures_status;
    char *figures_error;
    char **figures;
} map_product;

/* Keys of a descriptor that are not options of the operation. */
static const char *const own_keys[] = {"mmcl_descriptor", "product", "model",
                                       "embedding", "fit", "optical", "sar",
                                       "overviews", "figures", NULL};

/* Whether @p key is an option of @p operation that concerns a written
 * output or only the program (its table's usage), not a product. */
static int
written_output_option(const char *operation, const char *key)
{
    size_t n = 0;
    const mmcl_option_def *defs = mmcl_option_defs(operation, &n);
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(defs[i].name, key) == 0)
            return (defs[i].usage & (MMCL_OPT_USAGE_OUTPUT |
                                     MMCL_OPT_USAGE_PROGRAM)) != 0;
    return 0;
}

static int
in_list(const char *const *list, const char *s, int nocase)
{
    for (int i = 0; list[i]; i++)
        if ((nocase ? strcasecmp(list[i], s) : strcmp(list[i], s)) == 0)
            return 1;
    return 0;
}

/* ---- read states ------------------------------------------------------ */

static void
state_free(void *state)
{
    read_state *s = state;
    if (!s)
        return;
    mmcl__map_worker_destroy(s->map);
    free(s->out);
    free(s);
}

static void *
state_create(mmcl_context *ctx, mmcl_product *p, int level)
{
    const map_product *m = p->impl;
    read_state *s = calloc(1, sizeof(*s));
    if (!s) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    size_t T = (size_t)p->tile;
    s->map = mmcl__map_worker_create(ctx, m->enc, m->pair[level],
                                     &m->level_def[level], p->tile);
    s->out = s->map ? mmcl__malloc_array(ctx, T * T, (size_t)m->def.n_out, 4)
                    : NULL;
    if (!s->out) {
        state_free(s);
        return NULL;
    }
    return s;
}

/* An audit map's embedding raster on the grid of @p level's pair (the
 * pair is open), and the level's definition reading it. */
static mmcl_status
open_level_embedding(mmcl_context *ctx, map_product *m, int level)
{
    mmcl__grid g;
    mmcl__embedding_options eo;
    mmcl__pair_grid(m->pair[level], &g);
    mmcl__embedding_options_get(&eo, m->opts);
    mmcl_status st = mmcl__embedding_raster_open(ctx, m->er_path, &g, &eo,
                                                 &m->er[level]);
    if (st != MMCL_OK)
        return st;
    if (mmcl__embedding_raster_bands(m->er[level]) != m->enc->k)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "the embedding raster '%s' gives %d bands; the "
                           "audit was fitted on %d",
                           m->er_path,
                           mmcl__embedding_raster_bands(m->er[level]),
                           m->enc->k);
    m->level_def[level] = m->def;
    m->level_def[level].embedding = m->er[level];
    return MMCL_OK;
}

/* The pair of @p level, opened on first use (the lock is held). */
static mmcl_status
level_prepare(mmcl_context *ctx, mmcl_product *p, int level)
{
    map_product *m = p->impl;
    const mmcl__product_level *L = &p->levels[level];
    if (!m->pair[level] && m->open_status[level] == MMCL_OK) {
        mmcl_context *tmp = mmcl_context_create();
        if (!tmp)
            return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        m->open_status[level] = mmcl__pair_open_decimated(
            tmp, m->pair[0], L->width, L->height, &m->pair[level]);
        if (m->open_status[level] == MMCL_OK && m->audit)
            m->open_status[level] = open_level_embedding(tmp, m, level);
        if (m->open_status[level] != MMCL_OK)
            m->open_error[level] =
                mmcl__strdup(NULL, mmcl_context_errmsg(tmp));
        mmcl_context_destroy(tmp);
    }
    if (m->open_status[level] != MMCL_OK)
        return mmcl__error(ctx, m->open_status[level],
                           "overview %d (factor %d): %s", level, L->factor,
                           m->open_error[level] ? m->open_error[level]
                                                : "cannot open");
    return MMCL_OK;
}

/* The text of an option value (string, number or boolean). */
static int
option_text(const cJSON *v, char *buf, size_t size)
{
    if (cJSON_IsString(v))
        snprintf(buf, size, "%s", v->valuestring);
    else if (cJSON_IsBool(v))
        snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "YES" : "NO");
    else if (cJSON_IsNumber(v))
        snprintf(buf, size, "%.17g", v->valuedouble);
    else
        return 0;
    return 1;
}

/* What a descriptor says, before anything is opened. */
typedef struct descriptor {
    const char *name; /* for messages */
    mmcl__map_kind kind;
    char *model;      /* CPLFree */
    char *embedding;  /* CPLFree (audit) */
    const cJSON *fit; /* audit: in the parsed descriptor */
    char **optical;   /* CSL */
    char **sar;       /* CSL */
    mmcl_options *opts;
    int overviews;
    int figures; /* infoloss: compute the figures */
} descriptor;

static void
descriptor_clear(descriptor *d)
{
    CPLFree(d->model);
    CPLFree(d->embedding);
    CSLDestroy(d->optical);
    CSLDestroy(d->sar);
    mmcl_options_free(d->opts);
    memset(d, 0, sizeof(*d));
}

/* "optical" and "sar": a path, or a non-empty array of paths, resolved
 * against @p dir into the CSL *out. */
static mmcl_status
parse_paths(mmcl_context *ctx, const cJSON *j, const char *key,
            const char *name, const char *dir, char ***out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v)
        return mmcl__product_bad_key(ctx, name, key, "missing key");
    if (cJSON_IsString(v) && *v->valuestring) {
        char *r = mmcl__product_resolve_path(dir, v->valuestring);
        *out = CSLAddString(*out, r);
        CPLFree(r);
        return MMCL_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return mmcl__product_bad_key(ctx, name, key,
                       "expected a path or an array of paths for");
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e) || !*e->valuestring)
            return mmcl__product_bad_key(ctx, name, key,
                                         "expected paths in the array");
        char *r = mmcl__product_resolve_path(dir, e->valuestring);
        *out = CSLAddString(*out, r);
        CPLFree(r);
    }
    return MMCL_OK;
}

/* The boolean @p key of @p j into *flag (true when absent). */
static mmcl_status
parse_flag(mmcl_context *ctx, const cJSON *j, const char *key,
           const char *name, int *flag)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (v && !cJSON_IsBool(v))
        return mmcl__product_bad_key(ctx, name, key,
                                     "expected true or false for");
    *flag = !v || cJSON_IsTrue(v);
    return MMCL_OK;
}

/* The options of the map: every key but the descriptor's own, as options
 * of @p operation, checked by its table ("sar_shift_field" resolved
 * against @p dir). */
static mmcl_status
parse_options(mmcl_context *ctx, const cJSON *j, const char *name,
              const char *dir, const char *operation, descriptor *d)
{
    mmcl_status st = MMCL_OK;
    char **kv = NULL;
    const cJSON *item;
    cJSON_ArrayForEach(item, j)
    {
        if (in_list(own_keys, item->string, 0))
            continue;
        char value[512];
        if (written_output_option(operation, item->string)) {
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "descriptor '%s': option \"%s\" concerns a "
                             "written output and does not apply to a "
                             "descriptor",
                             name, item->string);
            goto done;
        }
        if (!option_text(item, value, sizeof(value))) {
            st = mmcl__product_bad_key(ctx, name, item->string,
                                       "expected a string, number or "
                                       "boolean for");
            goto done;
        }
        /* The correction named as the descriptor names it. */
        double dx, dy;
        if (strcasecmp(item->string, "sar_shift") == 0 &&
            !mmcl__shift_parse(value, &dx, &dy)) {
            st = mmcl__product_bad_key(ctx, name, item->string,
                                       "expected DX,DY (two numbers, in "
                                       "optical pixels, such as 1.5,-0.7) "
                                       "for");
            goto done;
        }
        if (strcasecmp(item->string, "sar_shift") == 0 &&
            cJSON_GetObjectItem(j, "sar_shift_field")) {
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "descriptor '%s': \"sar_shift\" and "
                             "\"sar_shift_field\" are exclusive: give a "
                             "constant shift or a shift field, not both",
                             name);
            goto done;
        }
        /* The shift field is a path: relative to the descriptor's folder,
         * and local unless remote paths are allowed, as the inputs. */
        if (strcasecmp(item->string, "sar_shift_field") == 0 &&
            cJSON_IsString(item)) {
            st = mmcl__product_check_path(ctx, name, item->string, value);
            if (st != MMCL_OK)
                goto done;
            char *r = mmcl__product_resolve_path(dir, value);
            snprintf(value, sizeof(value), "%s", r);
            CPLFree(r);
        }
        char *key = CPLStrdup(item->string);
        for (char *c = key; *c; c++)
            *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        kv = CSLAddString(kv, CPLSPrintf("%s=%s", key, value));
        CPLFree(key);
    }
    d->opts = mmcl_options_new(ctx, operation, (const char *const *)kv);
    if (!d->opts) /* name the descriptor in the option table's message */
        st = mmcl__product_error_in(ctx, name);
done:
    CSLDestroy(kv);
    return st;
}

/* What a map's descriptor @p j says (its envelope checked by product.c),
 * for a map of @p kind. */
static mmcl_status
descriptor_parse(mmcl_context *ctx, const cJSON *j, const char *name,
                 const char *dir, mmcl__map_kind kind, int audit,
                 descriptor *d)
{
    memset(d, 0, sizeof(*d));
    d->name = name;
    d->kind = kind;
    d->overviews = 1;
    d->figures = 1;
    const char *operation = audit                        ? "audit"
                            : kind == MMCL__MAP_INFOLOSS ? "infoloss"
                                                         : "embed";
    /* A map of a model names it; an audit map names its embedding raster
     * and holds the fit instead. */
    const char *path_key = audit ? "embedding" : "model";
    mmcl_status st = MMCL_OK;
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(j, path_key);
    if (!mv)
        st = mmcl__product_bad_key(ctx, name, path_key, "missing key");
    else if (!cJSON_IsString(mv) || !*mv->valuestring)
        st = mmcl__product_bad_key(ctx, name, path_key,
                                   "expected a path for");
    else if (audit)
        d->embedding = mmcl__product_resolve_path(dir, mv->valuestring);
    else
        d->model = mmcl__product_resolve_path(dir, mv->valuestring);
    const char *other = audit ? "model" : "embedding";
    if (st == MMCL_OK && cJSON_GetObjectItemCaseSensitive(j, other))
        st = mmcl__product_bad_key(ctx, name, other,
                                   audit ? "an audit map names no model: "
                                           "unexpected key"
                                         : "a map of a model names no "
                                           "embedding raster: unexpected "
                                           "key");
    if (st == MMCL_OK && !audit && cJSON_GetObjectItemCaseSensitive(j, "fit"))
        st = mmcl__product_bad_key(ctx, name, "fit",
                                   "a map of a model holds no fit: "
                                   "unexpected key");
    d->fit = audit ? cJSON_GetObjectItemCaseSensitive(j, "fit") : NULL;
    if (st == MMCL_OK)
        st = parse_paths(ctx, j, "sar", name, dir, &d->sar);
    if (st == MMCL_OK)
        st = parse_paths(ctx, j, "optical", name, dir, &d->optical);
    if (st == MMCL_OK)
        st = parse_flag(ctx, j, "overviews", name, &d->overviews);
    if (st == MMCL_OK)
        st = parse_flag(ctx, j, "figures", name, &d->figures);
    d->figures = d->kind == MMCL__MAP_INFOLOSS && d->figures;
    /* Everything else: options of the operation, checked by its table. */
    if (st == MMCL_OK)
        st = parse_options(ctx, j, name, dir, operation, d);
    if (st != MMCL_OK)
        descriptor_clear(d);
    return st;
}

/* ---- opening ---------------------------------------------------------- */

/* THREADS given at open time (@p threads >= 0) over the descriptor's. */
static mmcl_status
threads_override(mmcl_context *ctx, mmcl_product *p, int threads)
{
    if (threads < 0)
        return MMCL_OK;
    mmcl_options *o = mmcl_options_new(
        ctx, "embed",
        (const char *const[]){CPLSPrintf("THREADS=%d", threads), NULL});
    if (!o)
        return mmcl_context_errcode(ctx);
    p->threads = mmcl__opt_threads(o);
    mmcl_options_free(o);
    return MMCL_OK;
}

/* An audit map's pair of level 0, its encoder from the fit and its
 * embedding raster on the optical grid. */
static mmcl_status
open_audit_inputs(mmcl_context *ctx, map_product *m, const descriptor *d)
{
    mmcl_status st = mmcl__pair_open(
        ctx, (const char *const *)d->optical, (size_t)CSLCount(d->optical),
        (const char *const *)d->sar, (size_t)CSLCount(d->sar), d->opts,
        &m->pair[0]);
    if (st == MMCL_OK)
        st = mmcl__audit_fit_parse(ctx, d->fit, d->name,
                                   mmcl__pair_optical_bands(m->pair[0]),
                                   mmcl__pair_sar_bands(m->pair[0]),
                                   &m->enc);
    if (st == MMCL_OK) {
        m->er_path = mmcl__strdup(ctx, d->embedding);
        st = m->er_path ? MMCL_OK : MMCL_ERR_NO_MEMORY;
    }
    return st;
}

/* The model (or an audit's fit), the pair of level 0 and the map's
 * definition. */
static mmcl_status
open_inputs(mmcl_context *ctx, map_product *m, const descriptor *d)
{
    char where[1200];
    snprintf(where, sizeof(where), "descriptor '%s': ", d->name);
    const char *precision = mmcl__opt_str(d->opts, "PRECISION");
    /* A precision this CPU cannot run is refused before any work. */
    mmcl_status st = mmcl__map_set_precision(ctx, NULL, precision, where);
    if (st == MMCL_OK && m->audit) {
        st = open_audit_inputs(ctx, m, d);
        if (st == MMCL_OK)
            st = mmcl__map_def_init(ctx, &m->def, m->enc, d->kind, NULL,
                                    mmcl__opt_bool(d->opts,
                                                   "NON_REDUNDANCY"));
        if (st != MMCL_OK)
            return st;
        mmcl__map_def_set_mask(&m->def, mmcl__opt_str(d->opts, "MASK"));
        for (int l = 0; l < MAX_LEVELS; l++)
            m->level_def[l] = m->def;
        st = open_level_embedding(ctx, m, 0);
        /* The map's bands and metadata speak of the embedding raster. */
        m->def.embedding = m->er[0];
        return st;
    }
    if (st == MMCL_OK)
        st = mmcl_model_load(ctx, d->model, &m->model);
    if (st == MMCL_OK)
        st = mmcl__maps_open(
            ctx, m->model, (const char *const *)d->optical,
            (size_t)CSLCount(d->optical), (const char *const *)d->sar,
            (size_t)CSLCount(d->sar), d->opts, &m->enc, &m->pair[0]);
    if (st == MMCL_OK)
        st = mmcl__map_set_precision(ctx, m->enc, precision, where);
    if (st == MMCL_OK)
        st = mmcl__map_def_init(ctx, &m->def, m->enc, d->kind,
                                mmcl__opt_str(d->opts, "MODALITY"),
                                mmcl__opt_bool(d->opts, "NON_REDUNDANCY"));
    if (st == MMCL_OK)
        mmcl__map_def_set_mask(&m->def, mmcl__opt_str(d->opts, "MASK"));
    for (int l = 0; l < MAX_LEVELS; l++)
        m->level_def[l] = m->def;
    return st;
}

/* An audit map's metadata: an information-loss map's, as mmcl audit
 * writes it: no model, and what the fit's "metadata" says of the audit
 * (the samples, the blocks, the cross-validated figures; strings), with
 * the embedding raster as the descriptor names it. */
static char **
audit_metadata(char **md, const map_product *m, const descriptor *d)
{
    md = CSLSetNameValue(md, "PRODUCT", "audit");
    md = CSLSetNameValue(md, "MODEL_HASH", NULL);
    md = CSLSetNameValue(md, "OBJECTIVE", NULL);
    md = CSLSetNameValue(md, "PATCH", NULL);
    const cJSON *item;
    cJSON_ArrayForEach(item,
                       cJSON_GetObjectItemCaseSensitive(d->fit, "metadata"))
    {
        if (cJSON_IsString(item) && item->string && *item->string &&
            !strchr(item->string, '='))
            md = CSLSetNameValue(md, item->string, item->valuestring);
    }
    md = CSLSetNameValue(md, "PRODUCT", "audit");
    md = CSLSetNameValue(md, "EMBEDDING", m->er_path);
    md = CSLSetNameValue(md, "DEQUANTIZE",
                         mmcl__dequantize_name(
                             mmcl__embedding_raster_dequantize(m->er[0])));
    return md;
}

static mmcl_status
map_open(mmcl_context *ctx, mmcl_product *p, const cJSON *j,
         const char *name, const char *dir, int threads)
{
    int audit = p->kind == &mmcl__product_audit;
    mmcl__map_kind kind = p->kind == &mmcl__product_embedding
                              ? MMCL__MAP_EMBEDDING
                              : MMCL__MAP_INFOLOSS;
    descriptor d;
    mmcl_status st = descriptor_parse(ctx, j, name, dir, kind, audit, &d);
    if (st != MMCL_OK)
        return st;
    map_product *m = calloc(1, sizeof(*m));
    if (!m || mtx_init(&m->figures_lock, mtx_plain) != thrd_success) {
        descriptor_clear(&d);
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                         m ? "cannot create a mutex" : "out of memory");
        free(m);
        return st;
    }
    p->impl = m;
    m->audit = audit;
    /* An audit map opens the embedding raster of each level with its
     * options: it keeps them (map_destroy frees them). */
    if (audit)
        m->opts = d.opts;
    p->tile = (int)mmcl__opt_int(d.opts, "TILE");
    p->threads = mmcl__opt_threads(d.opts);
    st = threads_override(ctx, p, threads);
    m->figures_wanted = d.figures;
    if (st == MMCL_OK)
        st = open_inputs(ctx, m, &d);
    if (audit)
        d.opts = NULL; /* m's */
    if (st != MMCL_OK) {
        descriptor_clear(&d);
        return st;
    }
    mmcl__product_level *L0 = &p->levels[0];
    L0->width = mmcl__pair_width(m->pair[0]);
    L0->height = mmcl__pair_height(m->pair[0]);
    mmcl__pair_geotransform(m->pair[0], L0->gt);
    p->wkt = mmcl__strdup(ctx, mmcl__pair_srs_wkt(m->pair[0]));
    p->n_bands = m->def.n_out;
    p->band_names = mmcl__map_band_names(&m->def);
    p->band_units = mmcl__map_band_units(&m->def);
    p->band_long_names = mmcl__map_band_meanings(&m->def, m->enc);
    char **md = mmcl__map_metadata(&m->def, m->enc);
    md = mmcl__map_metadata_checks(md, &m->def, m->enc);
    md = mmcl__shift_metadata(md, mmcl__pair_shift(m->pair[0]));
    if (audit)
        md = audit_metadata(md, m, &d);
    if (!p->wkt) {
        CSLDestroy(md);
        descriptor_clear(&d);
        return MMCL_ERR_NO_MEMORY;
    }
    mmcl__product_plan_levels(p, d.overviews, m->enc->P);
    mmcl__product_set_metadata(p, md);
    descriptor_clear(&d);
    return MMCL_OK;
}

static void
map_destroy(mmcl_product *p)
{
    map_product *m = p->impl;
    if (!m)
        return;
    /* Overview pairs borrow the SAR copy of level 0: close them first. */
    for (int l = MAX_LEVELS - 1; l >= 0; l--) {
        mmcl__pair_close(m->pair[l]);
        free(m->open_error[l]);
    }
    CSLDestroy(m->figures);
    free(m->figures_error);
    for (int l = 0; l < MAX_LEVELS; l++)
        mmcl__embedding_raster_close(m->er[l]);
    mmcl_options_free(m->opts);
    free(m->er_path);
    if (m->audit)
        mmcl__audit_fit_free(m->enc);
    else
        mmcl__encoder_free(m->enc);
    mmcl_model_destroy(m->model);
    mtx_destroy(&m->figures_lock);
    free(m);
}

/* ---- reading ---------------------------------------------------------- */

/* Copies a block's bands (n, bh, bw) at @p part into the window's
 * buffer. */
static void
scatter(const mmcl__product_window *win, int n_out, const float *src,
        const mmcl__tile *part)
{
    float *buf = win->buf;
    size_t plane = (size_t)win->w * win->h, bplane = (size_t)part->w * part->h;
    for (int b = 0; b < n_out; b++)
        for (int r = 0; r < part->h; r++)
            memcpy(buf + plane * b + (size_t)(part->y - win->y + r) * win->w +
                       (part->x - win->x),
                   src + bplane * b + (size_t)r * part->w,
                   (size_t)part->w * sizeof(float));
}

/* The part of block @p index inside the window: straight into the buffer
 * when the window is that one block, else through the state's. */
static mmcl_status
map_read_block(mmcl_context *ctx, const mmcl__product_window *win,
               void *state, int index)
{
    const map_product *m = win->p->impl;
    read_state *s = state;
    if (win->n_blocks == 1)
        return mmcl__map_compute(ctx, s->map, win->x, win->y, win->w, win->h,
                                 win->buf, NULL);
    mmcl__tile part;
    mmcl__product_block(win, index, NULL, &part);
    mmcl_status st = mmcl__map_compute(ctx, s->map, part.x, part.y, part.w,
                                       part.h, s->out, NULL);
    if (st == MMCL_OK)
        scatter(win, m->def.n_out, s->out, &part);
    return st;
}

/* ---- figures ---------------------------------------------------------- */

/* The figures pass: a worker's state and the sums of its block. */
typedef struct figures_worker {
    read_state *state;
    mmcl__loss_sums sums[2];
} figures_worker;

typedef struct figures_job {
    mmcl__product_window win; /* the whole of level 0, no buffer */
    mmcl__loss_sums total[2]; /* merged in block order */
} figures_job;

static void *
figures_start(mmcl_context *ctx, void *user)
{
    figures_job *job = user;
    figures_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    w->state = mmcl__product_state_take(ctx, job->win.p, 0);
    if (!w->state) {
        free(w);
        return NULL;
    }
    return w;
}

static void
figures_stop(void *state, void *user)
{
    figures_job *job = user;
    figures_worker *w = state;
    if (!w)
        return;
    mmcl__product_state_give(job->win.p, 0, w->state);
    free(w);
}

static mmcl_status
figures_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    figures_job *job = user;
    figures_worker *w = state;
    mmcl__tile part;
    mmcl__product_block(&job->win, t->x, NULL, &part);
    return mmcl__map_compute(ctx, w->state->map, part.x, part.y, part.w,
                             part.h, w->state->out, w->sums);
}

/* The blocks' sums merged in block order. */
static mmcl_status
figures_commit(mmcl_context *ctx, void *state, const mmcl__tile *t,
               void *user)
{
    figures_job *job = user;
    figures_worker *w = state;
    (void)ctx;
    (void)t;
    for (int m = 0; m < 2; m++)
        mmcl__loss_sums_add(&job->total[m], &w->sums[m]);
    return MMCL_OK;
}

/* The figures pass over level 0 (the figures lock is held). */
static void
figures_compute(mmcl_context *ctx, mmcl_product *p, map_product *m)
{
    figures_job job = {0};
    const mmcl__product_level *L0 = &p->levels[0];
    mmcl__product_window_init(&job.win, p, 0, 0, 0, L0->width, L0->height,
                              NULL);
    /* The blocks in row-major order, merged in that order: the order in
     * which mmcl_infoloss merges its tiles. */
    mmcl__tile_job tj = {.start = figures_start,
                         .work = figures_work,
                         .commit = figures_commit,
                         .stop = figures_stop,
                         .user = &job};
    mmcl__blas_threads_enter(1);
    mmcl_status st = mmcl__run_tiles(ctx, job.win.n_blocks, 1, 1, p->threads,
                                     &tj, NULL, NULL, 0.0, 1.0);
    mmcl__blas_threads_leave(1);
    if (st == MMCL_OK && job.total[0].n + job.total[1].n == 0)
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "no valid patch in the pair: nothing to measure");
    if (st == MMCL_OK) {
        cJSON *fig = mmcl__loss_figures_json(m->enc, m->def.nonred,
                                             job.total);
        m->figures = mmcl__loss_figures_md(fig);
        cJSON_Delete(fig);
    } else {
        m->figures_error = mmcl__strdup(NULL, mmcl_context_errmsg(ctx));
    }
    m->figures_status = st;
    m->figures_done = 1;
}

static mmcl_status
map_figures(mmcl_context *ctx, mmcl_product *p, const char *const **kv)
{
    static const char *const empty[] = {NULL};
    map_product *m = p->impl;
    if (!m->figures_wanted)
        return MMCL_OK;
    /* Its pass reads the inputs: the product enters the thread's chain. */
    mmcl_status entered = mmcl__product_enter(ctx, p);
    if (entered != MMCL_OK)
        return entered;
    mtx_lock(&m->figures_lock);
    if (!m->figures_done)
        figures_compute(ctx, p, m);
    mmcl_status st = m->figures_status;
    if (st == MMCL_OK)
        *kv = m->figures ? (const char *const *)m->figures : empty;
    else
        mmcl__error(ctx, st, "%s",
                    m->figures_error ? m->figures_error : "figures failed");
    mtx_unlock(&m->figures_lock);
    mmcl__chain_leave();
    return st;
}

/* ---- the kinds -------------------------------------------------------- */

/* The kinds of map differ by name (and so by operation and, for an audit,
 * by what replaces the model). */
#define MAP_KIND(kind_name)                                                  \
    {                                                                        \
        .name = kind_name, .sample_type = MMCL_SAMPLE_FLOAT32,               \
        .has_nodata = 1, .open = map_open, .destroy = map_destroy,           \
        .level_prepare = level_prepare, .state_create = state_create,        \
        .state_free = state_free, .read_block = map_read_block,              \
        .figures = map_figures                                               \
    }

const mmcl__product_kind mmcl__product_embedding = MAP_KIND("embedding");
const mmcl__product_kind mmcl__product_infoloss = MAP_KIND("infoloss");
const mmcl__product_kind mmcl__product_audit = MAP_KIND("audit");

/* ---- writing a map's descriptor --------------------------------------- */

/* "optical" and "sar" as written: a string for one path, else an array. */
static void
add_paths(cJSON *j, const char *key, const char *path, const char *const *paths,
          size_t n)
{
    if (n == 1) {
        cJSON_AddItemToObject(j, key,
                              mmcl__product_stored_path(path, paths[0]));
        return;
    }
    cJSON *arr = cJSON_AddArrayToObject(j, key);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, mmcl__product_stored_path(path, paths[i]));
}

mmcl_status
mmcl_product_write_descriptor(mmcl_context *ctx, const char *path,
                              const char *model, const char *const *optical,
                              size_t n_optical, const char *const *sar,
                              size_t n_sar, const mmcl_options *opts)
{
    mmcl__error_clear(ctx);
    if (!path || !*path || !model || !optical || n_optical == 0 || !sar ||
        n_sar == 0 || !opts)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_product_write_descriptor: a path, a model, "
                           "rasters and options are needed");
    const char *op = mmcl__options_operation(opts);
    const char *kind = strcmp(op, "embed") == 0      ? "embedding"
                       : strcmp(op, "infoloss") == 0 ? "infoloss"
                                                     : NULL;
    if (!kind)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "a lazy descriptor is written for embed or "
                           "infoloss (rgb: mmcl_rgb with LAZY), not for "
                           "options built for '%s'",
                           op);
    /* A precision this CPU cannot run: refused before the descriptor is
     * written, naming the option as given. */
    if (mmcl__map_set_precision(ctx, NULL, mmcl__opt_str(opts, "PRECISION"),
                                NULL) != MMCL_OK)
        return mmcl_context_errcode(ctx);
    static const char *const refused[] = {"FORMAT", "CO", "REPORT", NULL};
    mmcl_status refusal = mmcl__opt_refuse_for_lazy(
        ctx, opts, refused, "the product is computed when read");
    if (refusal != MMCL_OK)
        return refusal;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "mmcl_descriptor", DESCRIPTOR_VERSION);
    cJSON_AddStringToObject(j, "product", kind);
    cJSON_AddItemToObject(j, "model", mmcl__product_stored_path(path, model));
    add_paths(j, "optical", path, optical, n_optical);
    add_paths(j, "sar", path, sar, n_sar);
    if (strcmp(kind, "embedding") == 0)
        cJSON_AddStringToObject(j, "modality", mmcl__opt_str(opts, "MODALITY"));
    else
        cJSON_AddBoolToObject(j, "non_redundancy",
                              mmcl__opt_bool(opts, "NON_REDUNDANCY"));
    if (mmcl__opt_given(opts, "MASK"))
        cJSON_AddStringToObject(j, "mask", mmcl__opt_str(opts, "MASK"));
    if (mmcl__opt_given(opts, "PRECISION"))
        cJSON_AddStringToObject(j, "precision",
                                mmcl__opt_str(opts, "PRECISION"));
    /* The misregistration correction, the field's path as the inputs'. */
    if (mmcl__opt_given(opts, "SAR_SHIFT"))
        cJSON_AddStringToObject(j, "sar_shift", mmcl__opt_str(opts, "SAR_SHIFT"));
    if (mmcl__opt_given(opts, "SAR_SHIFT_FIELD"))
        cJSON_AddItemToObject(j, "sar_shift_field",
                              mmcl__product_stored_path(
                                  path, mmcl__opt_str(opts, "SAR_SHIFT_FIELD")));
    if (mmcl__opt_given(opts, "SHIFT_MIN_CONFIDENCE"))
        cJSON_AddNumberToObject(j, "shift_min_confidence",
                                mmcl__opt_double(opts,
                                                 "SHIFT_MIN_CONFIDENCE"));
    if (mmcl__opt_given(opts, "TILE"))
        cJSON_AddNumberToObject(j, "tile", (double)mmcl__opt_int(opts, "TILE"));
    if (mmcl__opt_given(opts, "THREADS"))
        cJSON_AddNumberToObject(j, "threads",
                                (double)mmcl__opt_int(opts, "THREADS"));
    /* The inputs, the descriptor checked, written and put in place. */
    mmcl__stage *stage = NULL;
    mmcl__files *files = mmcl__files_create(ctx,
                                            mmcl__opt_bool(opts, "OVERWRITE"));
    mmcl_status st = files ? mmcl__files_add_input_file(ctx, files, model)
                           : MMCL_ERR_NO_MEMORY;
    for (size_t i = 0; i < n_optical && st == MMCL_OK; i++)
        st = mmcl__files_add_input(ctx, files, optical[i]);
    for (size_t i = 0; i < n_sar && st == MMCL_OK; i++)
        st = mmcl__files_add_input(ctx, files, sar[i]);
    if (st == MMCL_OK && mmcl__opt_str(opts, "SAR_SHIFT_FIELD"))
        st = mmcl__files_add_input(ctx, files,
                                   mmcl__opt_str(opts, "SAR_SHIFT_FIELD"));
    if (st == MMCL_OK)
        st = mmcl__files_add_output(ctx, files, path, "output",
                                    MMCL__OUT_DESCRIPTOR, kind, NULL);
    if (st == MMCL_OK) {
        stage = mmcl__stage_create(ctx, files, path);
        st = stage ? mmcl__product_write_json(ctx, stage, path, j)
                   : mmcl_context_errcode(ctx);
    }
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, &stage, 1, NULL, NULL, 1.0);
    mmcl__stage_destroy(stage);
    mmcl__files_destroy(files);
    cJSON_Delete(j);
    return st;
}
