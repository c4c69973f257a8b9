/* SPDX-License-Identifier: MIT */
/*
 * Lazy products: a descriptor (design section 6) opened as a GDAL-like
 * dataset whose windows are computed when read. What every kind shares is
 * here: the descriptor's envelope (JSON, version, "product", the paths it
 * may name), the levels and their metadata, the public mmcl_product API,
 * and the reads. What a kind computes is in its own file, behind the
 * table of product_internal.h: product_map.c (embedding and information-
 * loss maps, with the same per-window compute as the writers, so that
 * level 0 equals the written files bit for bit) and product_rgb.c
 * (pictures, rendered as mmcl_rgb renders them).
 *
 * Threads: a product is immutable once open but for its pools. A read
 * state (the kind's: GDAL handles, scratch, buffers) comes from a pool
 * per level guarded by the product's mutex: a read takes an idle state or
 * creates one, and puts it back afterwards. Windows of more than one block
 * are cut into blocks computed by the tile pool (tiles.c), each worker
 * holding one state from the pool.
 */
#define _DEFAULT_SOURCE /* strcasecmp */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <threads.h>

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>

#include "mmcl/product.h"

#include "blas_info_internal.h"
#include "blas_threads.h"
#include "chain_internal.h"
#include "context_internal.h"
#include "json_internal.h"
#include "options_internal.h"
#include "product_internal.h"
#include "style_internal.h"
#include "tiles_internal.h"

enum {
    MAX_LEVELS = MMCL__PRODUCT_MAX_LEVELS,
    DESCRIPTOR_VERSION = MMCL__DESCRIPTOR_VERSION,
    MAX_DESCRIPTOR_BYTES = 1 << 20
};

/* The kinds, by the descriptor's "product". */
static const mmcl__product_kind *const kinds[] = {
    &mmcl__product_embedding, &mmcl__product_infoloss, &mmcl__product_audit,
    &mmcl__product_rgb};

/* ---- paths that reach out --------------------------------------------- */

/* What makes @p path more than a local file, or NULL for a local file.
 * Prefixes are peeled in a loop, never by recursion: a descriptor may
 * hold a megabyte of "MMCL:" or "/vsizip/". */
static const char *
remote_kind(const char *path)
{
    static const char *const archives[] = {"/vsizip/", "/vsitar/",
                                           "/vsigzip/", "/vsi7z/",
                                           "/vsirar/", NULL};
    static const char *const network[] = {
        "/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss",
        "/vsiswift", "/vsiwebhdfs", "/vsihdfs", NULL};
    int in_archive = 0;
    for (;;) {
        const char *t = path;
        while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r')
            t++;
        if (*t == '<')
            return "inline XML (a dataset given as text)";
        if (*t == '{')
            return "inline JSON (a descriptor given as text)";
        if (strncasecmp(path, "MMCL:", 5) == 0) {
            path += 5;
            continue;
        }
        if (strncmp(path, "/vsi", 4) != 0)
            break;
        /* A local archive is read like a folder; what it is read from is
         * checked in turn. */
        const char *rest = NULL;
        for (int i = 0; archives[i] && !rest; i++) {
            size_t n = strlen(archives[i]);
            if (strncmp(path, archives[i], n) == 0)
                rest = path + n;
        }
        if (rest) {
            path = *rest == '{' ? rest + 1 : rest;
            in_archive = 1;
            continue;
        }
        for (int i = 0; network[i]; i++)
            if (strncmp(path, network[i], strlen(network[i])) == 0)
                return "a network path";
        return in_archive ? "a GDAL virtual file path"
                          : "a GDAL virtual file path other than a local "
                            "archive";
    }
    const char *colon = strchr(path, ':');
    if (colon && !memchr(path, '/', (size_t)(colon - path)))
        return strncmp(colon, "://", 3) == 0
                   ? "a URL"
                   : "a GDAL connection string (DRIVER:...)";
    return NULL;
}

/* Whether @p path may be opened (mmcl__product_check_path without a
 * message). */
static int
path_allowed(const char *path)
{
    return !remote_kind(path) || mmcl__chain_allows_remote() ||
           CPLTestBool(CPLGetConfigOption("MMCL_DESCRIPTOR_ALLOW_REMOTE",
                                          "NO"));
}

mmcl_status
mmcl__product_check_path(mmcl_context *ctx, const char *name,
                         const char *key, const char *path)
{
    if (path_allowed(path))
        return MMCL_OK;
    const char *kind = remote_kind(path);
    return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                       "descriptor '%s': \"%s\" '%.200s%s' is %s; a "
                       "descriptor names local files unless remote and "
                       "inline paths are allowed (GDAL configuration option "
                       "MMCL_DESCRIPTOR_ALLOW_REMOTE=YES, or the open "
                       "option ALLOW_REMOTE=YES)",
                       name, key, path, strlen(path) > 200 ? "..." : "",
                       kind);
}

/* A map's input named by @p key that is itself a descriptor. */
static int
names_descriptor(const char *path)
{
    const char *t = path;
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r')
        t++;
    size_t len = strlen(path);
    return strncasecmp(path, "MMCL:", 5) == 0 || *t == '{' ||
           (len >= 10 && strcasecmp(path + len - 10, ".mmcl.json") == 0);
}

/* A map's input @p path under @p key: a local file (unless remote paths
 * are allowed), and a raster or a model rather than another descriptor. */
static mmcl_status
input_path_check(mmcl_context *ctx, const char *name, const char *key,
                 const char *path)
{
    if (names_descriptor(path))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "descriptor '%s': \"%s\" '%.200s' is an mmcl "
                           "descriptor, not %s: a map is computed from "
                           "rasters and a model file, never from another "
                           "lazy product",
                           name, key, path,
                           strcmp(key, "model") == 0 ? "a model file"
                                                     : "a raster");
    return mmcl__product_check_path(ctx, name, key, path);
}

/* The inputs a map's descriptor @p j names ("model" or "embedding",
 * "optical", "sar", each a path or an array of paths): local files (unless remote paths are
 * allowed), rasters and a model rather than other descriptors. Values of
 * the wrong type are left to the parser. */
static mmcl_status
check_inputs(mmcl_context *ctx, const cJSON *j, const char *name)
{
    static const char *const keys[] = {"model", "embedding", "optical",
                                       "sar"};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        const cJSON *e = cJSON_IsArray(v) ? v->child : v;
        for (; e; e = cJSON_IsArray(v) ? e->next : NULL) {
            if (!cJSON_IsString(e) || !*e->valuestring)
                continue;
            mmcl_status st = input_path_check(ctx, name, keys[k],
                                              e->valuestring);
            if (st != MMCL_OK)
                return st;
        }
    }
    return MMCL_OK;
}

/* @p name of a descriptor without its "MMCL:" prefix into *file; returns
 * where its text starts, after white space: '{' for a descriptor given as
 * text rather than a file's name. */
static const char *
descriptor_start(const char *name, const char **file)
{
    if (strncasecmp(name, "MMCL:", 5) == 0)
        name += 5;
    *file = name;
    while (*name == ' ' || *name == '\t' || *name == '\n' || *name == '\r')
        name++;
    return name;
}

/* ---- pool of read states ---------------------------------------------- */

void *
mmcl__product_state_take(mmcl_context *ctx, mmcl_product *p, int level)
{
    mmcl__product_level *L = &p->levels[level];
    mtx_lock(&p->lock);
    mmcl_status st = p->kind->level_prepare
                         ? p->kind->level_prepare(ctx, p, level)
                         : MMCL_OK;
    void *s = NULL;
    if (st == MMCL_OK && L->n_idle > 0)
        s = L->idle[--L->n_idle];
    mtx_unlock(&p->lock);
    if (st != MMCL_OK)
        return NULL;
    return s ? s : p->kind->state_create(ctx, p, level);
}

void
mmcl__product_state_give(mmcl_product *p, int level, void *s)
{
    mmcl__product_level *L = &p->levels[level];
    if (!s)
        return;
    mtx_lock(&p->lock);
    if (L->n_idle == L->cap_idle) {
        int cap = L->cap_idle ? 2 * L->cap_idle : 4;
        void **grown = realloc(L->idle, (size_t)cap * sizeof(*grown));
        if (grown) {
            L->idle = grown;
            L->cap_idle = cap;
        }
    }
    if (L->n_idle < L->cap_idle) {
        L->idle[L->n_idle++] = s;
        s = NULL;
    }
    mtx_unlock(&p->lock);
    if (s)
        p->kind->state_free(s); /* no room to keep it */
}

/* ---- descriptor ------------------------------------------------------- */

/* The descriptor's text from a file; NULL with an error set. */
static char *
read_text(mmcl_context *ctx, const char *path)
{
    VSILFILE *f = VSIFOpenL(path, "rb");
    if (!f) {
        mmcl__error(ctx, MMCL_ERR_IO, "cannot open descriptor '%s'", path);
        return NULL;
    }
    char *buf = mmcl__malloc_array(ctx, MAX_DESCRIPTOR_BYTES + 1, 1, 1);
    size_t n = buf ? VSIFReadL(buf, 1, MAX_DESCRIPTOR_BYTES + 1, f) : 0;
    VSIFCloseL(f);
    if (!buf)
        return NULL;
    if (n > MAX_DESCRIPTOR_BYTES) {
        free(buf);
        mmcl__error(ctx, MMCL_ERR_FORMAT,
                    "descriptor '%s' is larger than %d bytes: not a "
                    "descriptor",
                    path, MAX_DESCRIPTOR_BYTES);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

char *
mmcl__product_resolve_path(const char *dir, const char *path)
{
    if (!dir || !*dir || !CPLIsFilenameRelative(path) || path[0] == '<' ||
        strncmp(path, "/vsi", 4) == 0 || strchr(path, ':'))
        return CPLStrdup(path);
    return CPLStrdup(CPLFormFilename(dir, path, NULL));
}

mmcl_status
mmcl__product_bad_key(mmcl_context *ctx, const char *name, const char *key,
                      const char *what)
{
    return mmcl__error(ctx, MMCL_ERR_FORMAT, "descriptor '%s': %s \"%s\"",
                       name, what, key);
}

mmcl_status
mmcl__product_error_in(mmcl_context *ctx, const char *name)
{
    char *msg = mmcl__strdup(NULL, mmcl_context_errmsg(ctx));
    mmcl_status st = mmcl__error(ctx, mmcl_context_errcode(ctx),
                                 "descriptor '%s': %s", name, msg ? msg : "");
    free(msg);
    return st;
}

/* The kind named by "product" of @p j, or NULL. */
static const mmcl__product_kind *
kind_of(const cJSON *j)
{
    const cJSON *prod = cJSON_GetObjectItemCaseSensitive(j, "product");
    for (size_t i = 0; cJSON_IsString(prod) && i < sizeof(kinds) /
                                                   sizeof(kinds[0]); i++)
        if (strcmp(prod->valuestring, kinds[i]->name) == 0)
            return kinds[i];
    return NULL;
}

/* The JSON text @p text of descriptor @p name as an object; NULL with an
 * error set. */
static cJSON *
parse_json(mmcl_context *ctx, const char *text, const char *name)
{
    cJSON *j = cJSON_Parse(text);
    if (!j) {
        /* cJSON_GetErrorPtr is a global (not thread-safe): say where by
         * parsing again with the thread-safe variant. */
        const char *end = NULL;
        cJSON_Delete(cJSON_ParseWithOpts(text, &end, 0));
        char near[24] = "";
        if (end && *end)
            snprintf(near, sizeof(near), "%.20s", end);
        mmcl__error(ctx, MMCL_ERR_FORMAT,
                    "descriptor '%s' is not valid JSON (%s%s%s)", name,
                    *near ? "near '" : "it ends too early", near,
                    *near ? "'" : "");
        return NULL;
    }
    mmcl_status st = MMCL_OK;
    const char *dup = NULL;
    int dup_found = 0;
    if (!cJSON_IsObject(j))
        st = mmcl__error(ctx, MMCL_ERR_FORMAT,
                         "descriptor '%s' is not a JSON object", name);
    else
        dup_found = mmcl__json_find_duplicate(j, &dup);
    if (dup_found != 0)
        st = dup_found < 0
                 ? mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory")
                 : mmcl__error(ctx, MMCL_ERR_FORMAT,
                               "descriptor '%s': key \"%s\" appears twice "
                               "(readers disagree on which one counts)",
                               name, dup);
    if (st != MMCL_OK) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/*
 * The envelope of a descriptor: valid JSON, an object without a key given
 * twice, the inputs a map names, the version, and the kind (*kind); the
 * parsed descriptor into *out (cJSON_Delete).
 */
static mmcl_status
descriptor_parse(mmcl_context *ctx, const char *text, const char *name,
                 cJSON **out, const mmcl__product_kind **kind)
{
    *out = NULL;
    cJSON *j = parse_json(ctx, text, name);
    if (!j)
        return mmcl_context_errcode(ctx);
    *kind = kind_of(j);
    mmcl_status st = MMCL_OK;
    if (!*kind || !(*kind)->inputs_may_be_products)
        st = check_inputs(ctx, j, name);
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "mmcl_descriptor");
    if (st == MMCL_OK && ver && (!cJSON_IsNumber(ver) || ver->valuedouble < 1))
        st = mmcl__product_bad_key(ctx, name, "mmcl_descriptor",
                                   "expected a version number for");
    else if (st == MMCL_OK && ver && ver->valuedouble > DESCRIPTOR_VERSION)
        st = mmcl__error(ctx, MMCL_ERR_FORMAT,
                         "descriptor '%s' has version %g; this mmcl (%s) "
                         "reads version %d",
                         name, ver->valuedouble, mmcl_version(),
                         DESCRIPTOR_VERSION);
    else if (st == MMCL_OK &&
             !cJSON_GetObjectItemCaseSensitive(j, "product"))
        st = mmcl__product_bad_key(ctx, name, "product", "missing key");
    else if (st == MMCL_OK && !*kind)
        st = mmcl__error(ctx, MMCL_ERR_FORMAT,
                         "descriptor '%s': \"product\" must be "
                         "\"embedding\", \"infoloss\", \"audit\" or "
                         "\"rgb\"",
                         name);
    if (st != MMCL_OK) {
        cJSON_Delete(j);
        return st;
    }
    *out = j;
    return MMCL_OK;
}

/* ---- opening ---------------------------------------------------------- */

void
mmcl__product_plan_levels(mmcl_product *p, int overviews, int min_side)
{
    mmcl__product_level *L0 = &p->levels[0];
    p->n_levels = 1;
    for (int l = 1; overviews && l < MAX_LEVELS; l++) {
        const mmcl__product_level *prev = &p->levels[l - 1];
        int edge = prev->width > prev->height ? prev->width : prev->height;
        if (edge <= MMCL__PRODUCT_OVERVIEW_MIN_EDGE)
            break;
        int f = prev->factor * 2;
        int w = (L0->width + f - 1) / f, h = (L0->height + f - 1) / f;
        if (w < min_side || h < min_side)
            break;
        mmcl__product_level *L = &p->levels[l];
        L->factor = f;
        L->width = w;
        L->height = h;
        memcpy(L->gt, L0->gt, sizeof(L->gt));
        double sx = (double)L0->width / w, sy = (double)L0->height / h;
        L->gt[1] *= sx;
        L->gt[4] *= sx;
        L->gt[2] *= sy;
        L->gt[5] *= sy;
        p->n_levels++;
    }
}

void
mmcl__product_set_metadata(mmcl_product *p, char **md)
{
    for (int l = 0; l < p->n_levels; l++) {
        mmcl__product_level *L = &p->levels[l];
        L->metadata = CSLDuplicate(md);
        if (L->factor > 1) {
            L->metadata = CSLSetNameValue(L->metadata, "APPROXIMATE", "YES");
            L->metadata = CSLSetNameValue(L->metadata, "OVERVIEW_FACTOR",
                                          CPLSPrintf("%d", L->factor));
        }
    }
    CSLDestroy(md);
}

/* @p threads: THREADS given at open time (-1: the descriptor's). */
static mmcl_status
product_open_text(mmcl_context *ctx, const char *text, const char *name,
                  const char *dir, int threads, mmcl_product **out)
{
    *out = NULL;
    cJSON *j = NULL;
    const mmcl__product_kind *kind = NULL;
    mmcl_status st = descriptor_parse(ctx, text, name, &j, &kind);
    if (st != MMCL_OK)
        return st;
    mmcl_product *p = calloc(1, sizeof(*p));
    if (!p) {
        cJSON_Delete(j);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    if (mtx_init(&p->lock, mtx_plain) != thrd_success) {
        free(p);
        cJSON_Delete(j);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "cannot create a mutex");
    }
    p->kind = kind;
    p->levels[0].factor = 1;
    p->n_levels = 1;
    st = kind->open(ctx, p, j, name, dir, threads);
    cJSON_Delete(j);
    if (st != MMCL_OK) {
        mmcl_product_destroy(p);
        return st;
    }
    *out = p;
    return MMCL_OK;
}

mmcl_status
mmcl_product_open(mmcl_context *ctx, const char *descriptor_in,
                  mmcl_product **out)
{
    return mmcl_product_open_with_options(ctx, descriptor_in, NULL, out);
}

mmcl_status
mmcl_product_open_with_options(mmcl_context *ctx, const char *descriptor_in,
                               const char *const *options, mmcl_product **out)
{
    mmcl__error_clear(ctx);
    mmcl__blas_kernel_warn_once();
    if (out)
        *out = NULL;
    if (!descriptor_in || !out)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_product_open: no descriptor given");
    /* Open options: THREADS, checked by the option table, and
     * ALLOW_REMOTE. */
    int threads = -1, allow_remote = 0;
    for (int i = 0; options && options[i]; i++) {
        const char *eq = strchr(options[i], '=');
        if (eq && (size_t)(eq - options[i]) == 12 &&
            strncasecmp(options[i], "ALLOW_REMOTE", 12) == 0) {
            allow_remote = CPLTestBool(eq + 1);
            continue;
        }
        if (!eq || (size_t)(eq - options[i]) != 7 ||
            strncasecmp(options[i], "THREADS", 7) != 0)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "unknown open option '%s'; the open options "
                               "are THREADS=N and ALLOW_REMOTE=YES/NO",
                               options[i]);
        mmcl_options *o = mmcl_options_new(
            ctx, "embed", (const char *const[]){options[i], NULL});
        if (!o)
            return mmcl_context_errcode(ctx);
        threads = (int)mmcl__opt_int(o, "THREADS");
        mmcl_options_free(o);
    }
    const char *s = NULL;
    const char *t = descriptor_start(descriptor_in, &s);
    mmcl__chain_frame f = {0};
    f.name = *t == '{' ? "(text)" : s;
    f.allow_remote = allow_remote;
    f.text = *t == '{';
    if (*t != '{')
        mmcl__chain_frame_identify(&f, s);
    mmcl_status st = mmcl__chain_enter(ctx, &f);
    if (st != MMCL_OK)
        return st;
    if (*t == '{') {
        st = product_open_text(ctx, t, "(text)", NULL, threads, out);
    } else {
        char *text = read_text(ctx, s);
        char *dir = CPLStrdup(CPLGetPath(s));
        st = text ? product_open_text(ctx, text, s, dir, threads, out)
                  : mmcl_context_errcode(ctx);
        CPLFree(dir);
        free(text);
    }
    mmcl__chain_leave();
    if (st != MMCL_OK)
        return st;
    /* Its reads enter the chain as this descriptor. */
    mmcl_product *p = *out;
    p->self = f;
    p->self_name = CPLStrdup(f.name);
    p->self.name = p->self_name;
    p->self.path = p->self_name;
    return MMCL_OK;
}

void
mmcl_product_destroy(mmcl_product *p)
{
    if (!p)
        return;
    CPLFree(p->self_name);
    for (int l = 0; l < MAX_LEVELS; l++) {
        mmcl__product_level *L = &p->levels[l];
        for (int i = 0; i < L->n_idle; i++)
            p->kind->state_free(L->idle[i]);
        free(L->idle);
    }
    if (p->kind)
        p->kind->destroy(p);
    for (int l = 0; l < MAX_LEVELS; l++)
        CSLDestroy(p->levels[l].metadata);
    CSLDestroy(p->band_names);
    CSLDestroy(p->band_units);
    CSLDestroy(p->band_long_names);
    free(p->wkt);
    mtx_destroy(&p->lock);
    free(p);
}

/* ---- queries ---------------------------------------------------------- */

static const mmcl__product_level *
level_at(const mmcl_product *p, int level)
{
    return p && level >= 0 && level < p->n_levels ? &p->levels[level] : NULL;
}

const char *
mmcl_product_kind(const mmcl_product *p)
{
    return p ? p->kind->name : "";
}

int
mmcl_product_level_count(const mmcl_product *p)
{
    return p ? p->n_levels : 0;
}

int
mmcl_product_overview_factor(const mmcl_product *p, int level)
{
    const mmcl__product_level *L = level_at(p, level);
    return L ? L->factor : 0;
}

int
mmcl_product_width(const mmcl_product *p, int level)
{
    const mmcl__product_level *L = level_at(p, level);
    return L ? L->width : 0;
}

int
mmcl_product_height(const mmcl_product *p, int level)
{
    const mmcl__product_level *L = level_at(p, level);
    return L ? L->height : 0;
}

void
mmcl_product_geotransform(const mmcl_product *p, int level, double gt[6])
{
    const mmcl__product_level *L = level_at(p, level);
    for (int i = 0; i < 6; i++)
        gt[i] = L ? L->gt[i] : 0.0;
}

const char *
mmcl_product_srs_wkt(const mmcl_product *p)
{
    return p && p->wkt ? p->wkt : "";
}

int
mmcl_product_band_count(const mmcl_product *p)
{
    return p ? p->n_bands : 0;
}

const char *
mmcl_product_band_description(const mmcl_product *p, int band)
{
    if (!p || band < 0 || band >= p->n_bands)
        return NULL;
    return p->band_names[band];
}

const char *
mmcl_product_band_unit(const mmcl_product *p, int band)
{
    if (!p || !p->band_units || band < 0 || band >= p->n_bands)
        return NULL;
    return p->band_units[band];
}

const char *
mmcl_product_band_long_name(const mmcl_product *p, int band)
{
    if (!p || !p->band_long_names || band < 0 || band >= p->n_bands)
        return NULL;
    return p->band_long_names[band];
}

const char *
mmcl_product_band_color(const mmcl_product *p, int band)
{
    if (!p || !p->kind->band_colors || band < 0 || band >= p->n_bands)
        return NULL;
    return p->kind->band_colors[band];
}

mmcl_sample_type
mmcl_product_sample_type(const mmcl_product *p)
{
    return p ? p->kind->sample_type : MMCL_SAMPLE_FLOAT32;
}

int
mmcl_product_nodata(const mmcl_product *p, double *nodata)
{
    /* A picture has none: its alpha band makes invalid pixels
     * transparent, as in the file mmcl_rgb writes. */
    int has = p != NULL && p->kind->has_nodata;
    if (nodata)
        *nodata = has ? NAN : 0.0;
    return has;
}

int
mmcl_product_block_size(const mmcl_product *p)
{
    return p ? p->tile : 0;
}

const char *const *
mmcl_product_metadata(const mmcl_product *p, int level)
{
    const mmcl__product_level *L = level_at(p, level);
    return L ? (const char *const *)L->metadata : NULL;
}

/* ---- reading ---------------------------------------------------------- */

void
mmcl__product_window_init(mmcl__product_window *win, mmcl_product *p,
                          int level, int x, int y, int w, int h, void *buf)
{
    int T = p->tile;
    memset(win, 0, sizeof(*win));
    win->p = p;
    win->level = level;
    win->x = x;
    win->y = y;
    win->w = w;
    win->h = h;
    win->buf = buf;
    win->bx0 = x / T;
    win->by0 = y / T;
    win->nbx = (x + w - 1) / T - win->bx0 + 1;
    win->n_blocks = win->nbx * ((y + h - 1) / T - win->by0 + 1);
}

void
mmcl__product_block(const mmcl__product_window *win, int index,
                    mmcl__tile *block, mmcl__tile *part)
{
    const mmcl__product_level *L = &win->p->levels[win->level];
    int T = win->p->tile;
    mmcl__tile b = {0};
    b.index = index;
    b.x = (win->bx0 + index % win->nbx) * T;
    b.y = (win->by0 + index / win->nbx) * T;
    b.w = L->width - b.x < T ? L->width - b.x : T;
    b.h = L->height - b.y < T ? L->height - b.y : T;
    if (block)
        *block = b;
    if (!part)
        return;
    int x0 = b.x > win->x ? b.x : win->x, y0 = b.y > win->y ? b.y : win->y;
    int x1 = b.x + T < win->x + win->w ? b.x + T : win->x + win->w;
    int y1 = b.y + T < win->y + win->h ? b.y + T : win->y + win->h;
    *part = (mmcl__tile){.x = x0, .y = y0, .w = x1 - x0, .h = y1 - y0,
                         .index = index};
}

static void *
read_start(mmcl_context *ctx, void *user)
{
    const mmcl__product_window *win = user;
    return mmcl__product_state_take(ctx, win->p, win->level);
}

static mmcl_status
read_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    const mmcl__product_window *win = user;
    return win->p->kind->read_block(ctx, win, state, t->x);
}

static void
read_stop(void *state, void *user)
{
    const mmcl__product_window *win = user;
    mmcl__product_state_give(win->p, win->level, state);
}

static mmcl_status product_read(mmcl_context *ctx, mmcl_product *p,
                                int level, int x, int y, int w, int h,
                                void *buf);

mmcl_status
mmcl__product_enter(mmcl_context *ctx, const mmcl_product *p)
{
    mmcl__chain_frame f = p->self;
    if (!f.name)
        f.name = "(text)";
    return mmcl__chain_enter(ctx, &f);
}

mmcl_status
mmcl_product_read(mmcl_context *ctx, mmcl_product *p, int level, int x, int y,
                  int w, int h, void *buf)
{
    mmcl__error_clear(ctx);
    mmcl_status st = p ? mmcl__product_enter(ctx, p) : MMCL_OK;
    if (st != MMCL_OK)
        return st;
    st = product_read(ctx, p, level, x, y, w, h, buf);
    if (p)
        mmcl__chain_leave();
    return st;
}

/* The window's blocks: one on the calling thread, straight into the
 * buffer; more spread over the tile pool ("tile" i of a 1-pixel grid of
 * n_blocks x 1 is block i). */
static mmcl_status
read_blocks(mmcl_context *ctx, mmcl__product_window *win)
{
    mmcl_product *p = win->p;
    if (win->n_blocks == 1) {
        void *s = mmcl__product_state_take(ctx, p, win->level);
        if (!s)
            return mmcl_context_errcode(ctx);
        mmcl_status st = p->kind->read_block(ctx, win, s, 0);
        mmcl__product_state_give(p, win->level, s);
        return st;
    }
    mmcl__tile_job tj = {.start = read_start,
                         .work = read_work,
                         .stop = read_stop,
                         .user = win};
    return mmcl__run_tiles(ctx, win->n_blocks, 1, 1, p->threads, &tj, NULL,
                           NULL, 0.0, 1.0);
}

/* mmcl_product_read once the product has entered the thread's chain. */
static mmcl_status
product_read(mmcl_context *ctx, mmcl_product *p, int level, int x, int y,
             int w, int h, void *buf)
{
    const mmcl__product_level *L = level_at(p, level);
    if (!L)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_product_read: no level %d (the product has "
                           "%d)",
                           level, p ? p->n_levels : 0);
    if (!buf || w < 1 || h < 1 || x < 0 || y < 0 || x > L->width - w ||
        y > L->height - h)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_product_read: window %d,%d %dx%d is not "
                           "inside the %d x %d grid of level %d",
                           x, y, w, h, L->width, L->height, level);
    mmcl__product_window win;
    mmcl__product_window_init(&win, p, level, x, y, w, h, buf);
    mmcl__blas_threads_enter(1);
    mmcl_status st = read_blocks(ctx, &win);
    mmcl__blas_threads_leave(1);
    return st;
}

mmcl_status
mmcl_product_figures(mmcl_context *ctx, mmcl_product *p,
                     const char *const **kv)
{
    static const char *const empty[] = {NULL};
    mmcl__error_clear(ctx);
    if (kv)
        *kv = empty;
    if (!p || !kv)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_product_figures: no product");
    return p->kind->figures ? p->kind->figures(ctx, p, kv) : MMCL_OK;
}

/* ---- writing a descriptor --------------------------------------------- */

/* The absolute folder of @p path (CPLFree). */
static char *
folder_abs(const char *path)
{
    char *dir = CPLStrdup(CPLGetPath(path));
    char *cwd_buf = CPLGetCurrentDir();
    const char *cwd = cwd_buf ? cwd_buf : ".";
    char *abs = CPLStrdup(!*dir                        ? cwd
                          : CPLIsFilenameRelative(dir) ? CPLFormFilename(
                                                             cwd, dir, NULL)
                                                       : dir);
    CPLFree(dir);
    CPLFree(cwd_buf);
    return abs;
}

cJSON *
mmcl__product_stored_path(const char *descriptor_path, const char *path)
{
    VSIStatBufL sb;
    if (path[0] == '<' || strncmp(path, "/vsi", 4) == 0 ||
        VSIStatL(path, &sb) != 0)
        return cJSON_CreateString(path);
    char *dir_abs = folder_abs(descriptor_path);
    char *cwd_buf = CPLGetCurrentDir();
    char *abs = CPLIsFilenameRelative(path)
                    ? CPLStrdup(CPLFormFilename(cwd_buf ? cwd_buf : ".", path,
                                                NULL))
                    : CPLStrdup(path);
    int got = FALSE;
    const char *rel = CPLExtractRelativePath(dir_abs, abs, &got);
    cJSON *s = cJSON_CreateString(got ? rel : abs);
    CPLFree(abs);
    CPLFree(cwd_buf);
    CPLFree(dir_abs);
    return s;
}

/* Whether @p name names a descriptor rather than a raster: "MMCL:" prefix,
 * JSON text, or a name ending in ".json". */
static int
is_descriptor(const char *name)
{
    if (!name)
        return 0;
    if (strncasecmp(name, "MMCL:", 5) == 0)
        return 1;
    const char *t = name;
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r')
        t++;
    if (*t == '{')
        return 1;
    size_t len = strlen(name);
    return len > 5 && strcasecmp(name + len - 5, ".json") == 0;
}

/*
 * The QGIS style of the lazy product @p p, written beside its descriptor
 * @p path into @p stage: its ranges come from the percentiles of the
 * smallest overview (a few hundred pixels a side), computed here, so that
 * QGIS draws the layer right at once without computing the whole map.
 */
static mmcl_status
write_product_style(mmcl_context *ctx, mmcl_product *p, mmcl__stage *stage,
                    const char *path)
{
    const char *kind = mmcl_product_kind(p);
    int n = mmcl_product_band_count(p);
    if (!kind || n < 1 || mmcl_product_sample_type(p) != MMCL_SAMPLE_FLOAT32 ||
        (strcmp(kind, "embedding") != 0 && strcmp(kind, "infoloss") != 0 &&
         strcmp(kind, "audit") != 0))
        return MMCL_OK;
    int level = mmcl_product_level_count(p) - 1;
    int w = mmcl_product_width(p, level), h = mmcl_product_height(p, level);
    size_t npix = (size_t)w * (size_t)h;
    float *buf = mmcl__malloc_array(ctx, (size_t)n, npix, sizeof(float));
    mmcl__style_band *b = calloc((size_t)n, sizeof(*b));
    char *text = NULL;
    mmcl_status st = MMCL_OK;
    if (!buf)
        st = MMCL_ERR_NO_MEMORY; /* the message is set */
    else if (!b)
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    if (st == MMCL_OK)
        st = mmcl_product_read(ctx, p, level, 0, 0, w, h, buf);
    for (int i = 0; st == MMCL_OK && i < n; i++) {
        const float *v = buf + (size_t)i * npix;
        double sum = 0.0, sum2 = 0.0, mn = INFINITY, mx = -INFINITY;
        size_t count = 0;
        for (size_t k = 0; k < npix; k++) {
            if (!isfinite(v[k]))
                continue;
            double x = v[k];
            sum += x;
            sum2 += x * x;
            mn = x < mn ? x : mn;
            mx = x > mx ? x : mx;
            count++;
        }
        b[i].name = mmcl_product_band_description(p, i);
        b[i].valid = count > 0;
        if (count) {
            b[i].mean = sum / (double)count;
            double var = sum2 / (double)count - b[i].mean * b[i].mean;
            b[i].std = var > 0.0 ? sqrt(var) : 0.0;
            b[i].min = mn;
            b[i].max = mx;
        }
    }
    /* The percentiles of the bands shown (their values are reordered). */
    int used[3];
    int n_used = st == MMCL_OK ? mmcl__style_bands(kind, n, b, used) : 0;
    for (int c = 0; c < n_used; c++) {
        float *v = buf + (size_t)used[c] * npix;
        double p_lo, p_hi;
        mmcl__style_percentiles(v, npix, MMCL__STYLE_P_LO, MMCL__STYLE_P_HI,
                                &p_lo, &p_hi);
        b[used[c]].p_lo = p_lo;
        b[used[c]].p_hi = p_hi;
        b[used[c]].has_pct = isfinite(p_lo) && isfinite(p_hi);
    }
    if (st == MMCL_OK)
        text = mmcl__style_qml(kind, n, b);
    if (st == MMCL_OK && text)
        st = mmcl__style_write_file(ctx, mmcl__stage_style_file(stage), text,
                                    path);
    free(text);
    free(b);
    free(buf);
    return st;
}

mmcl_status
mmcl__product_write_json(mmcl_context *ctx, mmcl__stage *stage,
                         const char *path, const cJSON *j)
{
    mmcl_status st = MMCL_OK;
    mmcl_product *check = NULL;
    char *dir_abs = folder_abs(path);
    char *text = cJSON_Print(j);
    if (!text) {
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    /* Open what we are about to write, as GDAL will: as a file. */
    mmcl__chain_frame self = {0};
    self.name = path;
    self.path = path;
    st = mmcl__chain_enter(ctx, &self);
    if (st != MMCL_OK)
        goto done;
    st = product_open_text(ctx, text, path, dir_abs, -1, &check);
    mmcl__chain_leave();
    if (st == MMCL_OK)
        st = write_product_style(ctx, check, stage, path);
    if (st != MMCL_OK)
        goto done;
    st = mmcl__stage_write_text(ctx, stage, text);
done:
    mmcl_product_destroy(check);
    cJSON_free(text);
    CPLFree(dir_abs);
    return st;
}

/* ---- the files a descriptor names (output_internal.h) ----------------- */

/* Records @p path, named by a descriptor @p depth levels down, unless
 * opening the descriptor refuses it (network, inline): no request is
 * made. */
static mmcl_status
add_named(mmcl_context *ctx, mmcl__files *f, const char *dir,
          const char *path, int depth)
{
    char *p = mmcl__product_resolve_path(dir, path);
    mmcl_status st = path_allowed(p)
                         ? mmcl__files_add_named_input(ctx, f, p, depth)
                         : MMCL_OK;
    CPLFree(p);
    return st;
}

/* The files a descriptor @p j (in folder @p dir) names. */
static mmcl_status
add_descriptor_refs(mmcl_context *ctx, mmcl__files *f, const cJSON *j,
                    const char *dir, int depth)
{
    static const char *const keys[] = {"model", "source", "embedding"};
    mmcl_status st = MMCL_OK;
    for (size_t k = 0; k < 3 && st == MMCL_OK; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        if (cJSON_IsString(v) && *v->valuestring)
            st = add_named(ctx, f, dir, v->valuestring, depth + 1);
    }
    /* "optical" and "sar": a path or an array of paths. */
    static const char *const lists[] = {"optical", "sar"};
    for (size_t k = 0; k < 2 && st == MMCL_OK; k++) {
        const cJSON *opt = cJSON_GetObjectItemCaseSensitive(j, lists[k]);
        const cJSON *v;
        if (cJSON_IsString(opt) && *opt->valuestring) {
            st = add_named(ctx, f, dir, opt->valuestring, depth + 1);
        } else if (cJSON_IsArray(opt)) {
            cJSON_ArrayForEach(v, opt)
            {
                if (st != MMCL_OK || !cJSON_IsString(v))
                    continue;
                st = add_named(ctx, f, dir, v->valuestring, depth + 1);
            }
        }
    }
    return st;
}

/* The descriptor @p path (a file, or text) as an input, and what it
 * names. */
static mmcl_status
add_descriptor_input(mmcl_context *ctx, mmcl__files *f, const char *path,
                     int depth)
{
    const char *s = NULL;
    const char *t = descriptor_start(path, &s);
    char *text = NULL, *dir = NULL;
    mmcl_status st = MMCL_OK;
    if (*t != '{') {
        st = mmcl__files_add_input_file(ctx, f, s);
        text = mmcl__read_small_file(s, MMCL__MAX_JSON_BYTES, NULL, 1);
        dir = CPLStrdup(CPLGetPath(s));
    }
    cJSON *j = cJSON_Parse(text ? text : t);
    if (st == MMCL_OK && j)
        st = add_descriptor_refs(ctx, f, j, dir, depth);
    cJSON_Delete(j);
    free(text);
    CPLFree(dir);
    return st;
}

/* What core asks of the products layer, set when the library is loaded
 * (output_internal.h). */
static const mmcl__descriptor_hooks descriptor_hooks = {
    .is_descriptor = is_descriptor,
    .add_input = add_descriptor_input,
    .stored_path = mmcl__product_stored_path,
    .write = mmcl__product_write_json,
};

__attribute__((constructor)) static void
descriptor_hooks_register(void)
{
    mmcl__descriptor_hooks_set(&descriptor_hooks);
}
