/* SPDX-License-Identifier: MIT */
/*
 * Lazy products: a descriptor (design section 6) opened as a model and a
 * raster pair, and windows of its map computed on demand with the same
 * per-window compute as the writers (map_compute.c), so that level 0
 * equals the written files bit for bit. Overview levels run the model on a
 * pair whose optical is averaged onto a coarser grid.
 *
 * Threads: the product (model, encoder, pairs) is immutable; the per-read
 * state (a pair reader with its own GDAL handles, encoder scratch and
 * buffers) comes from a pool per level guarded by the product's mutex: a
 * read takes an idle state or creates one, and puts it back afterwards.
 * Windows of more than one block are cut into blocks computed by the tile
 * pool (tiles.c), each worker holding one state from the pool.
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

#include "mmcl/maps.h"
#include "mmcl/product.h"

#include "blas_info_internal.h"
#include "context_internal.h"
#include "json_internal.h"
#include "maps_internal.h"
#include "blas_threads.h"
#include "options_internal.h"
#include "chain_internal.h"
#include "product_internal.h"
#include "tiles_internal.h"

enum {
    MAX_LEVELS = 24,
    DESCRIPTOR_VERSION = MMCL__DESCRIPTOR_VERSION,
    MAX_DESCRIPTOR_BYTES = 1 << 20,
    OVERVIEW_MIN_EDGE = 256 /* the last overview is about this long */
};

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

int
mmcl__product_path_allowed(const char *path)
{
    return !remote_kind(path) || mmcl__chain_allows_remote() ||
           CPLTestBool(CPLGetConfigOption("MMCL_DESCRIPTOR_ALLOW_REMOTE",
                                          "NO"));
}

mmcl_status
mmcl__product_check_path(mmcl_context *ctx, const char *name,
                         const char *key, const char *path)
{
    if (mmcl__product_path_allowed(path))
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

/* The inputs a map's descriptor @p j names ("model", "optical", "sar",
 * each a path or an array of paths): local files (unless remote paths are
 * allowed), rasters and a model rather than other descriptors. Values of
 * the wrong type are left to the parser. */
static mmcl_status
check_inputs(mmcl_context *ctx, const cJSON *j, const char *name)
{
    static const char *const keys[] = {"model", "optical", "sar"};
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

/* Read state: one per concurrent reader of a level. */
typedef struct read_state {
    mmcl__map_worker *map;
    float *out; /* (n_out, tile, tile) */
} read_state;

typedef struct product_level {
    int factor;
    int width, height;
    double gt[6];
    mmcl__pair *pair; /* level 0 at open; the others on first read */
    mmcl_status open_status;
    char *open_error;      /* message of a failed lazy open */
    char **metadata;       /* MMCL domain */
    read_state **idle;     /* pool of idle states */
    int n_idle, cap_idle;
} product_level;

struct mmcl_product {
    mmcl__chain_frame self;    /* this descriptor in a thread's chain (reads) */
    char *self_name;     /* self.name and self.path */
    mmcl__rgb_view *rgb; /* a picture: everything below is unused */
    mmcl_model *model;
    mmcl__encoder *enc;
    mmcl__map_def def;
    char **band_names;
    char *wkt;
    int tile, threads;
    int n_levels;
    product_level levels[MAX_LEVELS];
    mtx_t lock; /* pools and lazy opens */

    /* Global figures of an information-loss map. */
    int figures_wanted;
    mtx_t figures_lock;
    int figures_done;
    mmcl_status figures_status;
    char *figures_error;
    char **figures;
};

/* Keys of a descriptor that are not options of the operation. */
static const char *const own_keys[] = {"mmcl_descriptor", "product", "model",
                                       "optical", "sar", "overviews",
                                       "figures", NULL};

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

/* ---- pool of read states ---------------------------------------------- */

static void
state_free(read_state *s)
{
    if (!s)
        return;
    mmcl__map_worker_destroy(s->map);
    free(s->out);
    free(s);
}

static read_state *
state_create(mmcl_context *ctx, mmcl_product *p, const mmcl__pair *pair)
{
    read_state *s = calloc(1, sizeof(*s));
    if (!s) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    size_t T = (size_t)p->tile;
    s->map = mmcl__map_worker_create(ctx, p->enc, pair, &p->def, p->tile);
    s->out = s->map ? mmcl__malloc_array(ctx, T * T, (size_t)p->def.n_out, 4)
                    : NULL;
    if (!s->out) {
        state_free(s);
        return NULL;
    }
    return s;
}

/* The pair of @p level, opened on first use (the lock is held). */
static mmcl_status
level_pair_locked(mmcl_context *ctx, mmcl_product *p, int level,
                  const mmcl__pair **pair)
{
    product_level *L = &p->levels[level];
    *pair = NULL;
    if (!L->pair && L->open_status == MMCL_OK) {
        mmcl_context *tmp = mmcl_context_create();
        if (!tmp)
            return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        L->open_status = mmcl__pair_open_decimated(tmp, p->levels[0].pair,
                                                   L->width, L->height,
                                                   &L->pair);
        if (L->open_status != MMCL_OK)
            L->open_error = mmcl__strdup(NULL, mmcl_context_errmsg(tmp));
        mmcl_context_destroy(tmp);
    }
    if (L->open_status != MMCL_OK)
        return mmcl__error(ctx, L->open_status,
                           "overview %d (factor %d): %s", level, L->factor,
                           L->open_error ? L->open_error : "cannot open");
    *pair = L->pair;
    return MMCL_OK;
}

/* An idle read state of @p level, or a new one; NULL with an error set. */
static read_state *
state_take(mmcl_context *ctx, mmcl_product *p, int level)
{
    product_level *L = &p->levels[level];
    const mmcl__pair *pair = NULL;
    mtx_lock(&p->lock);
    mmcl_status st = level_pair_locked(ctx, p, level, &pair);
    read_state *s = NULL;
    if (st == MMCL_OK && L->n_idle > 0)
        s = L->idle[--L->n_idle];
    mtx_unlock(&p->lock);
    if (st != MMCL_OK)
        return NULL;
    return s ? s : state_create(ctx, p, pair);
}

static void
state_give(mmcl_product *p, int level, read_state *s)
{
    product_level *L = &p->levels[level];
    if (!s)
        return;
    mtx_lock(&p->lock);
    if (L->n_idle == L->cap_idle) {
        int cap = L->cap_idle ? 2 * L->cap_idle : 4;
        read_state **grown = realloc(L->idle, (size_t)cap * sizeof(*grown));
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
    state_free(s); /* no room to keep it */
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
    cJSON *rgb;       /* "product": "rgb": the parsed descriptor */
    mmcl__map_kind kind;
    char *model;      /* CPLFree */
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
    CSLDestroy(d->optical);
    CSLDestroy(d->sar);
    mmcl_options_free(d->opts);
    cJSON_Delete(d->rgb);
    memset(d, 0, sizeof(*d));
}

static mmcl_status
bad_key(mmcl_context *ctx, const char *name, const char *key,
        const char *what)
{
    return mmcl__error(ctx, MMCL_ERR_FORMAT, "descriptor '%s': %s \"%s\"",
                       name, what, key);
}

/* "optical" and "sar": a path, or a non-empty array of paths, resolved
 * against @p dir into the CSL *out. */
static mmcl_status
parse_paths(mmcl_context *ctx, const cJSON *j, const char *key,
            const char *name, const char *dir, char ***out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v)
        return bad_key(ctx, name, key, "missing key");
    if (cJSON_IsString(v) && *v->valuestring) {
        char *r = mmcl__product_resolve_path(dir, v->valuestring);
        *out = CSLAddString(*out, r);
        CPLFree(r);
        return MMCL_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return bad_key(ctx, name, key,
                       "expected a path or an array of paths for");
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e) || !*e->valuestring)
            return bad_key(ctx, name, key, "expected paths in the array");
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
        return bad_key(ctx, name, key, "expected true or false for");
    *flag = !v || cJSON_IsTrue(v);
    return MMCL_OK;
}

static mmcl_status
descriptor_parse(mmcl_context *ctx, const char *text, const char *name,
                 const char *dir, descriptor *d)
{
    memset(d, 0, sizeof(*d));
    d->name = name;
    d->overviews = 1;
    d->figures = 1;
    mmcl_status st = MMCL_OK;
    char **kv = NULL;
    cJSON *j = cJSON_Parse(text);
    if (!j) {
        /* cJSON_GetErrorPtr is a global (not thread-safe): say where by
         * parsing again with the thread-safe variant. */
        const char *end = NULL;
        cJSON_Delete(cJSON_ParseWithOpts(text, &end, 0));
        char near[24] = "";
        if (end && *end)
            snprintf(near, sizeof(near), "%.20s", end);
        return mmcl__error(ctx, MMCL_ERR_FORMAT,
                           "descriptor '%s' is not valid JSON (%s%s%s)",
                           name, *near ? "near '" : "it ends too early",
                           near, *near ? "'" : "");
    }
    if (!cJSON_IsObject(j)) {
        st = mmcl__error(ctx, MMCL_ERR_FORMAT,
                         "descriptor '%s' is not a JSON object", name);
        goto done;
    }
    const char *dup = NULL;
    int dup_found = mmcl__json_find_duplicate(j, &dup);
    if (dup_found != 0) {
        st = dup_found < 0 ? mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory")
                   : mmcl__error(ctx, MMCL_ERR_FORMAT,
                                 "descriptor '%s': key \"%s\" appears twice "
                                 "(readers disagree on which one counts)",
                                 name, dup);
        goto done;
    }
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "product");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "rgb") != 0) {
        st = check_inputs(ctx, j, name);
        if (st != MMCL_OK)
            goto done;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "mmcl_descriptor");
    if (ver && (!cJSON_IsNumber(ver) || ver->valuedouble < 1)) {
        st = bad_key(ctx, name, "mmcl_descriptor",
                     "expected a version number for");
        goto done;
    }
    if (ver && ver->valuedouble > DESCRIPTOR_VERSION) {
        st = mmcl__error(ctx, MMCL_ERR_FORMAT,
                         "descriptor '%s' has version %g; this mmcl (%s) "
                         "reads version %d",
                         name, ver->valuedouble, mmcl_version(),
                         DESCRIPTOR_VERSION);
        goto done;
    }
    const cJSON *prod = cJSON_GetObjectItemCaseSensitive(j, "product");
    const char *operation = NULL;
    if (!prod) {
        st = bad_key(ctx, name, "product", "missing key");
        goto done;
    }
    if (cJSON_IsString(prod) && strcmp(prod->valuestring, "embedding") == 0) {
        d->kind = MMCL__MAP_EMBEDDING;
        operation = "embed";
    } else if (cJSON_IsString(prod) &&
               strcmp(prod->valuestring, "infoloss") == 0) {
        d->kind = MMCL__MAP_INFOLOSS;
        operation = "infoloss";
    } else if (cJSON_IsString(prod) && strcmp(prod->valuestring, "rgb") == 0) {
        d->rgb = j; /* its keys are read by rgb.c */
        return MMCL_OK;
    } else {
        st = mmcl__error(ctx, MMCL_ERR_FORMAT,
                         "descriptor '%s': \"product\" must be \"embedding\", "
                         "\"infoloss\" or \"rgb\"",
                         name);
        goto done;
    }
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!mv) {
        st = bad_key(ctx, name, "model", "missing key");
        goto done;
    }
    if (!cJSON_IsString(mv) || !*mv->valuestring) {
        st = bad_key(ctx, name, "model", "expected a path for");
        goto done;
    }
    d->model = mmcl__product_resolve_path(dir, mv->valuestring);
    st = parse_paths(ctx, j, "sar", name, dir, &d->sar);
    if (st == MMCL_OK)
        st = parse_paths(ctx, j, "optical", name, dir, &d->optical);
    if (st != MMCL_OK)
        goto done;
    st = parse_flag(ctx, j, "overviews", name, &d->overviews);
    if (st == MMCL_OK)
        st = parse_flag(ctx, j, "figures", name, &d->figures);
    if (st != MMCL_OK)
        goto done;
    d->figures = d->kind == MMCL__MAP_INFOLOSS && d->figures;

    /* Everything else: options of the operation, checked by its table. */
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
            st = bad_key(ctx, name, item->string,
                         "expected a string, number or boolean for");
            goto done;
        }
        char *key = CPLStrdup(item->string);
        for (char *c = key; *c; c++)
            *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        kv = CSLAddString(kv, CPLSPrintf("%s=%s", key, value));
        CPLFree(key);
    }
    d->opts = mmcl_options_new(ctx, operation, (const char *const *)kv);
    if (!d->opts) {
        /* Name the descriptor in the option table's message. */
        char *msg = mmcl__strdup(NULL, mmcl_context_errmsg(ctx));
        st = mmcl__error(ctx, mmcl_context_errcode(ctx),
                         "descriptor '%s': %s", name, msg ? msg : "");
        free(msg);
    }
done:
    CSLDestroy(kv);
    cJSON_Delete(j);
    if (st != MMCL_OK)
        descriptor_clear(d);
    return st;
}

/* ---- opening ---------------------------------------------------------- */

/* Level 0 metadata plus the overview marks. */
static char **
level_metadata(char **base, int factor)
{
    char **md = CSLDuplicate(base);
    if (factor > 1) {
        md = CSLSetNameValue(md, "APPROXIMATE", "YES");
        md = CSLSetNameValue(md, "OVERVIEW_FACTOR", CPLSPrintf("%d", factor));
    }
    return md;
}

/* Levels 1..: factors 2, 4, ... while the previous level is longer than
 * OVERVIEW_MIN_EDGE and the patch still fits. */
static void
plan_levels(mmcl_product *p, int overviews)
{
    product_level *L0 = &p->levels[0];
    p->n_levels = 1;
    for (int l = 1; overviews && l < MAX_LEVELS; l++) {
        const product_level *prev = &p->levels[l - 1];
        int edge = prev->width > prev->height ? prev->width : prev->height;
        if (edge <= OVERVIEW_MIN_EDGE)
            break;
        int f = prev->factor * 2;
        int w = (L0->width + f - 1) / f, h = (L0->height + f - 1) / f;
        if (w < p->enc->P || h < p->enc->P)
            break;
        product_level *L = &p->levels[l];
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

/* @p threads: THREADS given at open time (-1: the descriptor's). */
static mmcl_status
product_open_text(mmcl_context *ctx, const char *text, const char *name,
                  const char *dir, int threads, mmcl_product **out)
{
    *out = NULL;
    descriptor d;
    mmcl_status st = descriptor_parse(ctx, text, name, dir, &d);
    if (st != MMCL_OK)
        return st;
    mmcl_product *p = calloc(1, sizeof(*p));
    if (!p) {
        descriptor_clear(&d);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    if (mtx_init(&p->lock, mtx_plain) != thrd_success ||
        mtx_init(&p->figures_lock, mtx_plain) != thrd_success) {
        free(p);
        descriptor_clear(&d);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "cannot create a mutex");
    }
    p->levels[0].factor = 1;
    p->n_levels = 1;
    if (d.rgb) {
        st = mmcl__rgb_view_open(ctx, d.rgb, name, dir, threads, &p->rgb);
        if (st != MMCL_OK)
            goto fail;
        p->n_levels = mmcl__rgb_view_level_count(p->rgb);
        for (int l = 0; l < p->n_levels; l++) {
            product_level *L = &p->levels[l];
            mmcl__rgb_view_level(p->rgb, l, &L->factor, &L->width,
                                 &L->height, L->gt);
        }
        p->tile = mmcl__rgb_view_block_size(p->rgb);
        descriptor_clear(&d);
        *out = p;
        return MMCL_OK;
    }
    p->tile = (int)mmcl__opt_int(d.opts, "TILE");
    p->threads = mmcl__opt_threads(d.opts);
    if (threads >= 0) {
        mmcl_options *o = mmcl_options_new(
            ctx, "embed",
            (const char *const[]){CPLSPrintf("THREADS=%d", threads), NULL});
        if (!o) {
            st = mmcl_context_errcode(ctx);
            goto fail;
        }
        p->threads = mmcl__opt_threads(o);
        mmcl_options_free(o);
    }
    p->figures_wanted = d.figures;

    st = mmcl_model_load(ctx, d.model, &p->model);
    if (st == MMCL_OK)
        st = mmcl__maps_open(
            ctx, p->model, (const char *const *)d.optical,
            (size_t)CSLCount(d.optical), (const char *const *)d.sar,
            (size_t)CSLCount(d.sar), &p->enc, &p->levels[0].pair);
    if (st == MMCL_OK)
        st = mmcl__map_def_init(ctx, &p->def, p->enc, d.kind,
                                mmcl__opt_str(d.opts, "MODALITY"),
                                mmcl__opt_bool(d.opts, "NON_REDUNDANCY"));
    if (st != MMCL_OK)
        goto fail;
    mmcl__map_def_set_mask(&p->def, mmcl__opt_str(d.opts, "MASK"));
    product_level *L0 = &p->levels[0];
    L0->width = mmcl__pair_width(L0->pair);
    L0->height = mmcl__pair_height(L0->pair);
    mmcl__pair_geotransform(L0->pair, L0->gt);
    p->wkt = mmcl__strdup(ctx, mmcl__pair_srs_wkt(L0->pair));
    p->band_names = mmcl__map_band_names(&p->def);
    L0->metadata = mmcl__map_metadata(&p->def, p->enc);
    L0->metadata = mmcl__map_metadata_checks(L0->metadata, &p->def, p->enc);
    if (!p->wkt) {
        st = MMCL_ERR_NO_MEMORY;
        goto fail;
    }
    plan_levels(p, d.overviews);
    for (int l = 1; l < p->n_levels; l++)
        p->levels[l].metadata = level_metadata(L0->metadata,
                                               p->levels[l].factor);
    descriptor_clear(&d);
    *out = p;
    return MMCL_OK;
fail:
    descriptor_clear(&d);
    mmcl_product_destroy(p);
    return st;
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
    const char *s = descriptor_in;
    if (strncasecmp(s, "MMCL:", 5) == 0)
        s += 5;
    const char *t = s;
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r')
        t++;
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
    mmcl__rgb_view_destroy(p->rgb);
    CPLFree(p->self_name);
    /* Overview pairs borrow the SAR copy of level 0: close them first. */
    for (int l = MAX_LEVELS - 1; l >= 0; l--) {
        product_level *L = &p->levels[l];
        for (int i = 0; i < L->n_idle; i++)
            state_free(L->idle[i]);
        free(L->idle);
        mmcl__pair_close(L->pair);
        free(L->open_error);
        CSLDestroy(L->metadata);
    }
    CSLDestroy(p->band_names);
    CSLDestroy(p->figures);
    free(p->figures_error);
    free(p->wkt);
    mmcl__encoder_free(p->enc);
    mmcl_model_destroy(p->model);
    mtx_destroy(&p->lock);
    mtx_destroy(&p->figures_lock);
    free(p);
}

/* ---- queries ---------------------------------------------------------- */

static const product_level *
level_at(const mmcl_product *p, int level)
{
    return p && level >= 0 && level < p->n_levels ? &p->levels[level] : NULL;
}

const char *
mmcl_product_kind(const mmcl_product *p)
{
    if (!p)
        return "";
    if (p->rgb)
        return "rgb";
    return p->def.kind == MMCL__MAP_INFOLOSS ? "infoloss" : "embedding";
}

int
mmcl_product_level_count(const mmcl_product *p)
{
    return p ? p->n_levels : 0;
}

int
mmcl_product_overview_factor(const mmcl_product *p, int level)
{
    const product_level *L = level_at(p, level);
    return L ? L->factor : 0;
}

int
mmcl_product_width(const mmcl_product *p, int level)
{
    const product_level *L = level_at(p, level);
    return L ? L->width : 0;
}

int
mmcl_product_height(const mmcl_product *p, int level)
{
    const product_level *L = level_at(p, level);
    return L ? L->height : 0;
}

void
mmcl_product_geotransform(const mmcl_product *p, int level, double gt[6])
{
    const product_level *L = level_at(p, level);
    for (int i = 0; i < 6; i++)
        gt[i] = L ? L->gt[i] : 0.0;
}

const char *
mmcl_product_srs_wkt(const mmcl_product *p)
{
    if (p && p->rgb)
        return mmcl__rgb_view_srs_wkt(p->rgb);
    return p && p->wkt ? p->wkt : "";
}

int
mmcl_product_band_count(const mmcl_product *p)
{
    if (p && p->rgb)
        return 4;
    return p ? p->def.n_out : 0;
}

const char *
mmcl_product_band_description(const mmcl_product *p, int band)
{
    if (!p || band < 0 || band >= mmcl_product_band_count(p))
        return NULL;
    if (p->rgb)
        return mmcl__rgb_view_band_names(p->rgb)[band];
    return p->band_names[band];
}

const char *
mmcl_product_band_color(const mmcl_product *p, int band)
{
    static const char *const rgba[4] = {"Red", "Green", "Blue", "Alpha"};
    if (!p || !p->rgb || band < 0 || band >= 4)
        return NULL;
    return rgba[band];
}

mmcl_sample_type
mmcl_product_sample_type(const mmcl_product *p)
{
    return p && p->rgb ? MMCL_SAMPLE_BYTE : MMCL_SAMPLE_FLOAT32;
}

int
mmcl_product_nodata(const mmcl_product *p, double *nodata)
{
    /* A picture has none: its alpha band makes invalid pixels
     * transparent, as in the file mmcl_rgb writes. */
    int has = p != NULL && !p->rgb;
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
    const product_level *L = level_at(p, level);
    if (L && p->rgb)
        return mmcl__rgb_view_metadata(p->rgb, level);
    return L ? (const char *const *)L->metadata : NULL;
}

/* ---- reading ---------------------------------------------------------- */

/* A read of several blocks, cut into the blocks of the grid it meets. */
typedef struct read_job {
    mmcl_product *p;
    int level;
    int x, y, w, h;      /* the window */
    int bx0, by0, nbx;   /* first block and blocks per row */
    float *buf;          /* (n_out, h, w) */
    /* Figures pass (whole level 0, blocks in order): totals. */
    mmcl__loss_sums total[2];
} read_job;

typedef struct read_worker {
    read_state *state;
    mmcl__loss_sums sums[2];
} read_worker;

static void *
read_start(mmcl_context *ctx, void *user)
{
    read_job *job = user;
    read_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    w->state = state_take(ctx, job->p, job->level);
    if (!w->state) {
        free(w);
        return NULL;
    }
    return w;
}

static void
read_stop(void *state, void *user)
{
    read_job *job = user;
    read_worker *w = state;
    if (!w)
        return;
    state_give(job->p, job->level, w->state);
    free(w);
}

/* The intersection of block @p index with the job's window. */
static void
block_window(const read_job *job, int index, int *x, int *y, int *w, int *h)
{
    int T = job->p->tile;
    int bx = job->bx0 + index % job->nbx, by = job->by0 + index / job->nbx;
    int x0 = bx * T > job->x ? bx * T : job->x;
    int y0 = by * T > job->y ? by * T : job->y;
    int x1 = (bx + 1) * T < job->x + job->w ? (bx + 1) * T : job->x + job->w;
    int y1 = (by + 1) * T < job->y + job->h ? (by + 1) * T : job->y + job->h;
    *x = x0;
    *y = y0;
    *w = x1 - x0;
    *h = y1 - y0;
}

/* Copies a block's bands (n, bh, bw) into the window buffer. */
static void
scatter(const read_job *job, const float *src, int bx, int by, int bw, int bh)
{
    size_t plane = (size_t)job->w * job->h, bplane = (size_t)bw * bh;
    for (int b = 0; b < job->p->def.n_out; b++)
        for (int r = 0; r < bh; r++)
            memcpy(job->buf + plane * b +
                       (size_t)(by - job->y + r) * job->w + (bx - job->x),
                   src + bplane * b + (size_t)r * bw,
                   (size_t)bw * sizeof(float));
}

static mmcl_status
read_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    read_job *job = user;
    read_worker *w = state;
    int x, y, bw, bh;
    block_window(job, t->x, &x, &y, &bw, &bh);
    mmcl_status st = mmcl__map_compute(ctx, w->state->map, x, y, bw, bh,
                                       w->state->out,
                                       job->buf ? NULL : w->sums);
    if (st == MMCL_OK && job->buf)
        scatter(job, w->state->out, x, y, bw, bh);
    return st;
}

/* Figures pass: the blocks' sums merged in block order. */
static mmcl_status
read_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    read_job *job = user;
    read_worker *w = state;
    (void)ctx;
    (void)t;
    for (int m = 0; m < 2; m++)
        mmcl__loss_sums_add(&job->total[m], &w->sums[m]);
    return MMCL_OK;
}

static mmcl_status read_map(mmcl_context *ctx, mmcl_product *p, int level,
                            int x, int y, int w, int h, void *buf);
static mmcl_status product_read(mmcl_context *ctx, mmcl_product *p,
                                int level, int x, int y, int w, int h,
                                void *buf);

/* A read of @p p enters the thread's chain as its descriptor (a product
 * opened from text, or by mmcl__product_write_json, as "(text)"). */
static mmcl_status
product_enter(mmcl_context *ctx, const mmcl_product *p)
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
    mmcl_status st = p ? product_enter(ctx, p) : MMCL_OK;
    if (st != MMCL_OK)
        return st;
    st = product_read(ctx, p, level, x, y, w, h, buf);
    if (p)
        mmcl__chain_leave();
    return st;
}

/* mmcl_product_read once the product has entered the thread's chain. */
static mmcl_status
product_read(mmcl_context *ctx, mmcl_product *p, int level, int x, int y,
             int w, int h, void *buf)
{
    const product_level *L = level_at(p, level);
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
    mmcl__blas_threads_enter(1);
    mmcl_status st = p->rgb ? mmcl__rgb_view_read(ctx, p->rgb, level, x, y,
                                                  w, h, buf)
                            : read_map(ctx, p, level, x, y, w, h, buf);
    mmcl__blas_threads_leave(1);
    return st;
}

/* mmcl_product_read of an embedding or information-loss map. */
static mmcl_status
read_map(mmcl_context *ctx, mmcl_product *p, int level, int x, int y, int w,
         int h, void *buf)
{
    int T = p->tile;
    read_job job = {0};
    job.p = p;
    job.level = level;
    job.x = x;
    job.y = y;
    job.w = w;
    job.h = h;
    job.buf = buf;
    job.bx0 = x / T;
    job.by0 = y / T;
    job.nbx = (x + w - 1) / T - job.bx0 + 1;
    int nby = (y + h - 1) / T - job.by0 + 1;
    int n_blocks = job.nbx * nby;
    if (n_blocks == 1) {
        /* One block: on the calling thread, straight into @p buf. */
        read_state *s = state_take(ctx, p, level);
        if (!s)
            return mmcl_context_errcode(ctx);
        mmcl_status st = mmcl__map_compute(ctx, s->map, x, y, w, h, buf,
                                           NULL);
        state_give(p, level, s);
        return st;
    }
    /* Blocks spread over the tile pool: "tile" i of a 1-pixel grid of
     * n_blocks x 1 is block i. */
    mmcl__tile_job tj = {.start = read_start,
                         .work = read_work,
                         .stop = read_stop,
                         .user = &job};
    return mmcl__run_tiles(ctx, n_blocks, 1, 1, p->threads, &tj, NULL, NULL,
                           0.0, 1.0);
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
    if (!p->figures_wanted)
        return MMCL_OK;
    /* Its pass reads the inputs: the product enters the thread's chain. */
    mmcl_status entered = product_enter(ctx, p);
    if (entered != MMCL_OK)
        return entered;
    mtx_lock(&p->figures_lock);
    if (!p->figures_done) {
        read_job job = {0};
        product_level *L0 = &p->levels[0];
        int T = p->tile;
        job.p = p;
        job.level = 0;
        job.w = L0->width;
        job.h = L0->height;
        job.nbx = (L0->width + T - 1) / T;
        int n_blocks = job.nbx * ((L0->height + T - 1) / T);
        /* The blocks in row-major order, merged in that order: the order
         * in which mmcl_infoloss merges its tiles. */
        mmcl__tile_job tj = {.start = read_start,
                             .work = read_work,
                             .commit = read_commit,
                             .stop = read_stop,
                             .user = &job};
        mmcl__blas_threads_enter(1);
        mmcl_status st = mmcl__run_tiles(ctx, n_blocks, 1, 1, p->threads,
                                         &tj, NULL, NULL, 0.0, 1.0);
        mmcl__blas_threads_leave(1);
        if (st == MMCL_OK && job.total[0].n + job.total[1].n == 0)
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "no valid patch in the pair: nothing to "
                             "measure");
        if (st == MMCL_OK) {
            cJSON *fig = mmcl__loss_figures_json(p->enc, p->def.nonred,
                                                 job.total);
            p->figures = mmcl__loss_figures_md(fig);
            cJSON_Delete(fig);
        } else {
            p->figures_error = mmcl__strdup(NULL, mmcl_context_errmsg(ctx));
        }
        p->figures_status = st;
        p->figures_done = 1;
    }
    mmcl_status st = p->figures_status;
    if (st == MMCL_OK)
        *kv = p->figures ? (const char *const *)p->figures : empty;
    else
        mmcl__error(ctx, st, "%s",
                    p->figures_error ? p->figures_error : "figures failed");
    mtx_unlock(&p->figures_lock);
    mmcl__chain_leave();
    return st;
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

int
mmcl__product_is_descriptor(const char *name)
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
    if (st != MMCL_OK)
        goto done;
    FILE *f = mmcl__stage_fopen(ctx, stage);
    if (!f) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    fputs(text, f); /* a failed write is reported by the close */
    fputc('\n', f);
    st = mmcl__stage_fclose(ctx, stage, f);
done:
    mmcl_product_destroy(check);
    cJSON_free(text);
    CPLFree(dir_abs);
    return st;
}

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
    static const char *const refused[] = {"FORMAT", "CO", "REPORT"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (mmcl__opt_given(opts, refused[i]))
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "%s does not apply to a lazy descriptor "
                               "(LAZY): the product is computed when read",
                               refused[i]);
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
