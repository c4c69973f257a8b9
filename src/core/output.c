/* SPDX-License-Identifier: MIT */
/*
 * Outputs that never destroy a file: the inputs and outputs of one
 * operation, the checks before any work, private staging folders, and the
 * atomic commit with or without replacing (see output_internal.h for the
 * rules). POSIX and Linux calls: mkdtemp, openat/unlinkat, link,
 * renameat2(RENAME_NOREPLACE) where the C library has it.
 */
#define _GNU_SOURCE /* renameat2, RENAME_NOREPLACE, O_NOFOLLOW, mkdtemp */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>

#include "mmcl/model.h"

#include "context_internal.h"
#include "output_internal.h"

/* Descriptors naming descriptors: how deep their inputs are followed. */
#define MAX_INPUT_DEPTH 8

/* The side files of a raster: GDAL's PAM metadata (which mmcl writes for
 * COG and PNG, and the statistics of formats that cannot hold them),
 * external overviews and masks (which gdaladdo and others add), and the
 * QGIS style "<name without extension>.qml" that QGIS applies when it
 * loads the raster (mmcl writes it for its maps and lazy descriptors).
 * They describe the file they sit beside, so they are outputs too. */
enum { N_SIDES = 4, SIDE_QML = 3 };
static const char *const side_ext[N_SIDES] = {".aux.xml", ".ovr", ".msk",
                                              ".qml"};

/* The side file @p k of @p path, malloc'd, or NULL: "<path><ext>", but
 * the style replaces the extension, as QGIS looks for it ("x.tif" ->
 * "x.qml", "x.mmcl.json" -> "x.mmcl.qml"). */
static char *
side_name(const char *path, int k)
{
    if (k != SIDE_QML) {
        size_t na = strlen(path), nb = strlen(side_ext[k]);
        char *s = malloc(na + nb + 1);
        if (s) {
            memcpy(s, path, na);
            memcpy(s + na, side_ext[k], nb + 1);
        }
        return s;
    }
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    const char *dot = strrchr(name, '.');
    size_t keep = dot && dot != name ? (size_t)(dot - path) : strlen(path);
    char *s = malloc(keep + 5);
    if (s) {
        memcpy(s, path, keep);
        memcpy(s + keep, ".qml", 5);
    }
    return s;
}

/* Whether an output of @p kind and @p product has side file @p k: a
 * raster GDAL's, a legend picture too; the style, the maps mmcl writes one
 * for (the operations' style hook, style_internal.h) and their lazy
 * descriptors. A picture ("rgb"), which QGIS draws as it is, has none, so
 * `mmcl rgb emb.tif emb.png` leaves emb.tif's style alone. */
static int
has_side(mmcl__out_kind kind, const char *product, int k)
{
    if (k == SIDE_QML)
        return (kind == MMCL__OUT_RASTER || kind == MMCL__OUT_DESCRIPTOR) &&
               product &&
               (strcmp(product, "embedding") == 0 ||
                strcmp(product, "infoloss") == 0 ||
                strcmp(product, "audit") == 0 ||
                strcmp(product, "aligned_sar") == 0);
    return kind == MMCL__OUT_RASTER || kind == MMCL__OUT_LEGEND_PNG;
}

typedef struct file_id {
    dev_t dev;
    ino_t ino;
} file_id;

typedef struct in_rec {
    file_id id;
    char *name;  /* as given (for messages) */
    char *canon; /* realpath */
} in_rec;

typedef struct out_rec {
    char *path;
    char *canon; /* realpath of the folder + "/" + the name */
    char *role;
    mmcl__out_kind kind;
    char *product; /* may be NULL */
    char *format;  /* rasters: GDAL driver short name */
    int side[N_SIDES]; /* indices of its side files' records, or -1 */
    int main;          /* for a side file: index of its raster, else -1 */
    int existed;
    file_id id; /* when it existed */
} out_rec;

struct mmcl__files {
    int overwrite;
    in_rec *ins;
    size_t n_ins, cap_ins;
    out_rec *outs;
    size_t n_outs, cap_outs;
};

struct mmcl__stage {
    mmcl__files *files;
    int out;      /* index of the output in files */
    char *dir;    /* the private folder */
    char *file;   /* dir/name: the output */
    char *backup; /* dir/name.replaced: the file replaced by the commit */
    int committed;
    int backed_up; /* the replaced output is kept at backup */
    file_id id;    /* what the commit put in place */
    struct stage_side {
        char *file;   /* dir/name<ext>: written with the output, or not */
        char *backup; /* dir/name<ext>.replaced */
        int committed;
        int saved; /* 1: the side file replaced is kept at backup;
                      2: the side file of the replaced output (none was
                      written) was moved there */
        file_id id;
    } sides[N_SIDES];
};

static int
same_id(file_id a, file_id b)
{
    return a.dev == b.dev && a.ino == b.ino;
}

/* a followed by b, malloc'd, or NULL. */
static char *
concat(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, b, nb + 1);
    }
    return s;
}

static char *
dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- the set ---------------------------------------------------------- */

mmcl__files *
mmcl__files_create(mmcl_context *ctx, int overwrite)
{
    mmcl__files *f = calloc(1, sizeof(*f));
    if (!f) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    f->overwrite = overwrite != 0;
    return f;
}

void
mmcl__files_destroy(mmcl__files *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_ins; i++) {
        free(f->ins[i].name);
        free(f->ins[i].canon);
    }
    for (size_t i = 0; i < f->n_outs; i++) {
        out_rec *o = &f->outs[i];
        free(o->path);
        free(o->canon);
        free(o->role);
        free(o->product);
        free(o->format);
    }
    free(f->ins);
    free(f->outs);
    free(f);
}

/* ---- inputs ----------------------------------------------------------- */

mmcl_status
mmcl__files_add_input_file(mmcl_context *ctx, mmcl__files *f,
                           const char *path)
{
    struct stat st;
    if (!path || !*path || stat(path, &st) != 0)
        return MMCL_OK; /* no file: opening it says why, later */
    file_id id = {st.st_dev, st.st_ino};
    for (size_t i = 0; i < f->n_ins; i++)
        if (same_id(f->ins[i].id, id))
            return MMCL_OK;
    if (f->n_ins == f->cap_ins) {
        size_t cap = f->cap_ins ? 2 * f->cap_ins : 8;
        in_rec *ins = realloc(f->ins, cap * sizeof(*ins));
        if (!ins)
            return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        f->ins = ins;
        f->cap_ins = cap;
    }
    in_rec *r = &f->ins[f->n_ins];
    r->id = id;
    r->name = strdup(path);
    r->canon = realpath(path, NULL);
    if (!r->name) {
        free(r->canon);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    f->n_ins++;
    return MMCL_OK;
}

char *
mmcl__read_small_file(const char *path, size_t limit, size_t *len, int follow)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK |
                            (follow ? 0 : O_NOFOLLOW));
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (unsigned long long)st.st_size > limit)
        goto done;
    size_t n = (size_t)st.st_size, got = 0;
    buf = malloc(n + 1);
    while (buf && got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (buf) {
        buf[got] = '\0';
        if (len)
            *len = got;
    }
done:
    close(fd);
    return buf;
}

/* Set by the products layer when the library is loaded. */
static const mmcl__descriptor_hooks *descriptor_hooks;

void
mmcl__descriptor_hooks_set(const mmcl__descriptor_hooks *h)
{
    descriptor_hooks = h;
}

const mmcl__descriptor_hooks *
mmcl__descriptor_hooks_get(void)
{
    return descriptor_hooks;
}

int
mmcl__is_descriptor(const char *name)
{
    return descriptor_hooks && descriptor_hooks->is_descriptor(name);
}

mmcl_status
mmcl__files_add_named_input(mmcl_context *ctx, mmcl__files *f,
                            const char *path, int depth)
{
    if (!path || !*path || depth > MAX_INPUT_DEPTH)
        return MMCL_OK;
    /* A descriptor: the products layer records it and what it names. */
    if (mmcl__is_descriptor(path))
        return descriptor_hooks->add_input(ctx, f, path, depth);
    mmcl_status st = mmcl__files_add_input_file(ctx, f, path);
    struct stat sb;
    if (st != MMCL_OK ||
        (path[0] != '<' && !strchr(path, ':') && stat(path, &sb) != 0))
        return st;
    /* What GDAL reads with it: side files, a VRT's sources. */
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY,
                                 NULL, NULL, NULL);
    char **list = ds ? GDALGetFileList(ds) : NULL;
    if (ds)
        GDALClose(ds);
    CPLPopErrorHandler();
    for (int i = 0; list && list[i] && st == MMCL_OK; i++)
        st = mmcl__files_add_input_file(ctx, f, list[i]);
    CSLDestroy(list);
    return st;
}

mmcl_status
mmcl__files_add_input(mmcl_context *ctx, mmcl__files *f, const char *path)
{
    return mmcl__files_add_named_input(ctx, f, path, 0);
}

/* ---- kinds ------------------------------------------------------------ */

static const char *
product_phrase(const char *product, char *buf, size_t n)
{
    static const char *const known[][2] = {
        {"aligned_sar", "an aligned SAR written by mmcl align"},
        {"embedding", "an embedding map written by mmcl embed"},
        {"infoloss", "an information-loss map written by mmcl infoloss"},
        {"audit", "an information-loss map written by mmcl audit"},
        {"rgb", "a picture written by mmcl rgb"},
        {"probe_map", "a prediction map written by mmcl probe"},
        {"synthetic_optical", "a synthetic optical raster of mmcl synth"},
        {"synthetic_sar", "a synthetic SAR raster of mmcl synth"},
        {"synthetic_labels", "a synthetic label raster of mmcl synth"},
        {"synthetic_truth", "a synthetic truth raster of mmcl synth"},
    };
    for (size_t i = 0; product && i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(product, known[i][0]) == 0)
            return known[i][1];
    snprintf(buf, n, "an mmcl raster (PRODUCT=%s)", product ? product : "?");
    return buf;
}

/* What --overwrite may replace at output @p o, in words. */
static const char *
kind_phrase(const out_rec *o, char *buf, size_t n)
{
    switch (o->kind) {
    case MMCL__OUT_RASTER:
        return product_phrase(o->product, buf, n);
    case MMCL__OUT_SIDECAR: {
        size_t len = strlen(o->path);
        return len >= 4 && strcmp(o->path + len - 4, ".qml") == 0
                   ? "a QGIS style (.qml)"
                   : "GDAL's side file of an mmcl output";
    }
    case MMCL__OUT_MODEL:
        return "an mmcl model file";
    case MMCL__OUT_REPORT:
        return o->product && strcmp(o->product, "audit") == 0
                   ? "an audit report (JSON) written by mmcl audit"
                   : "an information-loss report (JSON)";
    case MMCL__OUT_DESCRIPTOR:
        snprintf(buf, n, "a lazy %s descriptor (.mmcl.json)",
                 o->product ? o->product : "product");
        return buf;
    case MMCL__OUT_LEGEND_PNG:
        return "a legend picture (PNG) of mmcl rgb";
    case MMCL__OUT_LEGEND_JSON:
        return "a legend description (JSON) of mmcl rgb";
    case MMCL__OUT_SYNTH_JSON:
        return "a synth.json of mmcl synth";
    case MMCL__OUT_PROBE_CSV:
        return "a CSV of figures written by mmcl probe";
    }
    return "a file of the same kind";
}

/* The raster at @p path opened quietly with @p drivers only (NULL: any),
 * or NULL. */
static GDALDatasetH
open_raster_quiet(const char *path, const char *const *drivers)
{
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY,
                                 drivers, NULL, NULL);
    CPLPopErrorHandler();
    return ds;
}

static int
json_has(const cJSON *j, const char *key, int type_string)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return type_string ? cJSON_IsString(v) : v != NULL;
}

/* Whether the JSON object in @p text is of kind @p k (product @p product). */
static int
json_is_kind(const char *text, mmcl__out_kind k, const char *product)
{
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    int ok = 0;
    if (cJSON_IsObject(j)) {
        switch (k) {
        case MMCL__OUT_REPORT: {
            /* infoloss's names the model; audit's says it is one */
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "product");
            int audit = product && strcmp(product, "audit") == 0;
            ok = (audit ? cJSON_IsString(p) &&
                              strcmp(p->valuestring, "audit") == 0
                        : json_has(j, "model_hash", 1)) &&
                 cJSON_IsObject(cJSON_GetObjectItem(j, "optical")) &&
                 cJSON_IsObject(cJSON_GetObjectItem(j, "sar")) &&
                 !json_has(j, "mmcl_descriptor", 0);
            break;
        }
        case MMCL__OUT_DESCRIPTOR: {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "product");
            ok = cJSON_IsNumber(cJSON_GetObjectItem(j, "mmcl_descriptor")) &&
                 cJSON_IsString(p) &&
                 (!product || strcmp(p->valuestring, product) == 0);
            break;
        }
        case MMCL__OUT_LEGEND_JSON:
            ok = json_has(j, "image", 1) && json_has(j, "colormap", 1) &&
                 json_has(j, "ticks", 0);
            break;
        case MMCL__OUT_SYNTH_JSON: {
            const cJSON *fm = cJSON_GetObjectItemCaseSensitive(j, "format");
            ok = cJSON_IsString(fm) &&
                 strcmp(fm->valuestring, "mmcl-synth") == 0;
            break;
        }
        default:
            break;
        }
    }
    cJSON_Delete(j);
    return ok;
}

static int
is_model_file(const char *path)
{
    mmcl_context *tmp = mmcl_context_create();
    mmcl_model *m = NULL;
    int ok = tmp && mmcl_model_load(tmp, path, &m) == MMCL_OK;
    mmcl_model_destroy(m);
    mmcl_context_destroy(tmp);
    return ok;
}

/* Whether the existing regular file of output @p o is of its kind. */
static int
is_kind(const out_rec *o)
{
    switch (o->kind) {
    case MMCL__OUT_RASTER:
    case MMCL__OUT_LEGEND_PNG: {
        const char *fmt = o->kind == MMCL__OUT_LEGEND_PNG ? "PNG"
                          : o->format                      ? o->format
                                                           : "GTiff";
        const char *drv[2] = {EQUAL(fmt, "COG") ? "GTiff" : fmt, NULL};
        GDALDatasetH ds = open_raster_quiet(o->path, drv);
        if (!ds)
            return 0;
        const char *p = GDALGetMetadataItem(ds, "PRODUCT", "MMCL");
        int ok = o->kind == MMCL__OUT_LEGEND_PNG ||
                 (p && o->product && strcmp(p, o->product) == 0);
        GDALClose(ds);
        return ok;
    }
    case MMCL__OUT_SIDECAR: {
        size_t n = strlen(o->path);
        if (n >= 4 && strcmp(o->path + n - 4, ".qml") == 0) {
            /* a QGIS style (XML whose root is <qgis>) */
            char *text =
                mmcl__read_small_file(o->path, MMCL__MAX_JSON_BYTES, NULL, 0);
            int ok = text && strstr(text, "<qgis") &&
                     (strncmp(text, "<!DOCTYPE qgis", 14) == 0 ||
                      strncmp(text, "<qgis", 5) == 0);
            free(text);
            return ok;
        }
        if (n < 8 || strcmp(o->path + n - 8, ".aux.xml") != 0) {
            /* .ovr, .msk: TIFF files GDAL reads as such */
            const char *drv[2] = {"GTiff", NULL};
            GDALDatasetH ds = open_raster_quiet(o->path, drv);
            if (ds)
                GDALClose(ds);
            return ds != NULL;
        }
        char *text = mmcl__read_small_file(o->path, MMCL__MAX_JSON_BYTES, NULL, 0);
        const char *t = text;
        while (t && (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r'))
            t++;
        int ok = t && strncmp(t, "<PAMDataset", 11) == 0;
        free(text);
        return ok;
    }
    case MMCL__OUT_MODEL:
        return is_model_file(o->path);
    case MMCL__OUT_PROBE_CSV: {
        /* The header mmcl probe writes first. */
        char *text = mmcl__read_small_file(o->path, MMCL__MAX_JSON_BYTES, NULL, 0);
        int ok = text && strncmp(text, MMCL__PROBE_CSV_HEAD,
                                 strlen(MMCL__PROBE_CSV_HEAD)) == 0;
        free(text);
        return ok;
    }
    case MMCL__OUT_REPORT:
    case MMCL__OUT_DESCRIPTOR:
    case MMCL__OUT_LEGEND_JSON:
    case MMCL__OUT_SYNTH_JSON: {
        char *text = mmcl__read_small_file(o->path, MMCL__MAX_JSON_BYTES, NULL, 0);
        int ok = json_is_kind(text, o->kind, o->product);
        free(text);
        return ok;
    }
    }
    return 0;
}

/* What the regular file @p path is, in words, for a refusal. */
static void
describe(const char *path, char *buf, size_t n)
{
    char *text = mmcl__read_small_file(path, MMCL__MAX_JSON_BYTES, NULL, 0);
    const char *t = text;
    while (t && (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r'))
        t++;
    if (t && *t == '{') {
        cJSON *j = cJSON_Parse(t);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "product");
        if (cJSON_GetObjectItem(j, "mmcl_descriptor") && cJSON_IsString(p))
            snprintf(buf, n, "a lazy %s descriptor", p->valuestring);
        else if (json_is_kind(t, MMCL__OUT_REPORT, NULL))
            snprintf(buf, n, "an information-loss report");
        else if (json_is_kind(t, MMCL__OUT_REPORT, "audit"))
            snprintf(buf, n, "an audit report");
        else
            snprintf(buf, n, "a JSON file");
        cJSON_Delete(j);
        free(text);
        return;
    }
    free(text);
    if (is_model_file(path)) {
        snprintf(buf, n, "an mmcl model file");
        return;
    }
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDriverH drv = GDALIdentifyDriver(path, NULL);
    CPLPopErrorHandler();
    if (!drv) {
        snprintf(buf, n, "a file of another kind");
        return;
    }
    GDALDatasetH ds = open_raster_quiet(path, NULL);
    const char *p = ds ? GDALGetMetadataItem(ds, "PRODUCT", "MMCL") : NULL;
    char tmp[128];
    if (p)
        snprintf(buf, n, "%s", product_phrase(p, tmp, sizeof(tmp)));
    else
        snprintf(buf, n, "a %s file that mmcl did not write",
                 GDALGetDriverShortName(drv));
    if (ds)
        GDALClose(ds);
}

/* ---- outputs ---------------------------------------------------------- */

static const char *
type_name(mode_t m)
{
    return S_ISDIR(m)    ? "folder"
           : S_ISLNK(m)  ? "symbolic link"
           : S_ISCHR(m)  ? "character device"
           : S_ISBLK(m)  ? "block device"
           : S_ISFIFO(m) ? "FIFO (named pipe)"
           : S_ISSOCK(m) ? "socket"
                         : "special file";
}

/* The input with identity @p id, or NULL. */
static const in_rec *
find_input(const mmcl__files *f, file_id id)
{
    for (size_t i = 0; i < f->n_ins; i++)
        if (same_id(f->ins[i].id, id))
            return &f->ins[i];
    return NULL;
}

/*
 * Checks the existing @p o (index @p oi) against the rules: not an input,
 * not another output, a regular file of its kind, and only when
 * overwriting. On success *id is its identity.
 */
static mmcl_status
check_existing(mmcl_context *ctx, const mmcl__files *f, size_t oi,
               const struct stat *lst, file_id *id)
{
    const out_rec *o = &f->outs[oi];
    struct stat st;
    if (stat(o->path, &st) == 0) {
        file_id sid = {st.st_dev, st.st_ino};
        const in_rec *in = find_input(f, sid);
        if (in)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "%s '%s' is also an input of this command "
                               "(the same file as '%s'); mmcl never writes "
                               "over its inputs",
                               o->role, o->path, in->name);
        for (size_t i = 0; i < f->n_outs; i++)
            if (i != oi && f->outs[i].existed && same_id(f->outs[i].id, sid))
                return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                                   "%s '%s' is the same file as %s '%s'; "
                                   "each output needs its own file",
                                   o->role, o->path, f->outs[i].role,
                                   f->outs[i].path);
    }
    if (S_ISLNK(lst->st_mode))
        return mmcl__error(ctx, MMCL_ERR_EXISTS,
                           "%s '%s' is a symbolic link%s; mmcl replaces only "
                           "a regular file (remove the link, or name "
                           "another file)",
                           o->role, o->path,
                           stat(o->path, &st) != 0 ? " to a missing file" : "");
    if (!S_ISREG(lst->st_mode))
        return mmcl__error(ctx, MMCL_ERR_EXISTS,
                           "%s '%s' is a %s, not a file; mmcl writes a new "
                           "file or replaces only a regular file (name the "
                           "file to write)",
                           o->role, o->path, type_name(lst->st_mode));
    if (!f->overwrite) {
        if (o->kind == MMCL__OUT_SIDECAR) {
            size_t n = strlen(o->path);
            int qml = n >= 4 && strcmp(o->path + n - 4, ".qml") == 0;
            return mmcl__error(ctx, MMCL_ERR_EXISTS,
                               "'%s' exists: %s, which would "
                               "describe the new %s '%s'; remove it, or use "
                               "--overwrite to replace it",
                               o->path,
                               qml ? "a QGIS style (.qml)" : "GDAL's side file",
                               f->outs[o->main].role, f->outs[o->main].path);
        }
        return mmcl__error(ctx, MMCL_ERR_EXISTS,
                           "%s '%s' exists; use --overwrite to replace it",
                           o->role, o->path);
    }
    if (!is_kind(o)) {
        char what[256], need[128];
        describe(o->path, what, sizeof(what));
        const char *k = kind_phrase(o, need, sizeof(need));
        return mmcl__error(ctx, MMCL_ERR_EXISTS,
                           "%s '%s' is %s; --overwrite replaces only %s "
                           "(remove the file yourself, or choose another "
                           "name)",
                           o->role, o->path, what, k);
    }
    id->dev = lst->st_dev;
    id->ino = lst->st_ino;
    return MMCL_OK;
}

/* Checks output @p oi (its path may or may not exist) and records what
 * exists. */
static mmcl_status
check_output(mmcl_context *ctx, mmcl__files *f, size_t oi)
{
    out_rec *o = &f->outs[oi];
    struct stat lst;
    if (lstat(o->path, &lst) != 0) {
        if (errno == ENOENT)
            return MMCL_OK;
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot check %s '%s': %s",
                           o->role, o->path, strerror(errno));
    }
    file_id id;
    mmcl_status st = check_existing(ctx, f, oi, &lst, &id);
    if (st != MMCL_OK)
        return st;
    o->existed = 1;
    o->id = id;
    return MMCL_OK;
}

static mmcl_status
push_output(mmcl_context *ctx, mmcl__files *f, const char *path,
            const char *role, mmcl__out_kind kind, const char *product,
            const char *format, size_t *index)
{
    if (!path || !*path)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no %s path given",
                           role);
    if (strncmp(path, "/vsi", 4) == 0)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "%s '%s': mmcl writes its outputs as files on a "
                           "local file system, not in GDAL's virtual file "
                           "systems",
                           role, path);
    const char *name = CPLGetFilename(path);
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s '%s' names a folder; give the name of the "
                           "file to write",
                           role, path);
    char *dir = CPLStrdup(CPLGetPath(path));
    char *real = realpath(*dir ? dir : ".", NULL);
    int err = errno;
    struct stat dst;
    if (!real || stat(real, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
        mmcl_status st = mmcl__error(
            ctx, MMCL_ERR_IO, "output folder '%s' of %s '%s' %s", dir, role,
            path,
            !real && err == ENOENT ? "does not exist"
            : !real                ? strerror(err)
                                   : "is not a folder");
        free(real);
        CPLFree(dir);
        return st;
    }
    CPLFree(dir);
    size_t clen = strlen(real) + strlen(name) + 2;
    char *canon = malloc(clen);
    if (canon)
        snprintf(canon, clen, "%s/%s", strcmp(real, "/") == 0 ? "" : real,
                 name);
    free(real);
    if (!canon)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");

    /* Not twice an output, nor GDAL's side file of an input. */
    for (size_t i = 0; i < f->n_outs; i++)
        if (strcmp(f->outs[i].canon, canon) == 0) {
            mmcl_status st = mmcl__error(
                ctx, MMCL_ERR_INVALID_ARG,
                "%s '%s' and %s '%s' are the same file; each output needs "
                "its own file",
                role, path, f->outs[i].role, f->outs[i].path);
            free(canon);
            return st;
        }
    for (size_t i = 0; i < f->n_ins; i++) {
        const char *in = f->ins[i].canon;
        size_t n = in ? strlen(in) : 0;
        /* A model file (.mmcl) is no layer of QGIS: "m.qml" is not its
         * style, and a map "m.tif" of model "m.mmcl" may have it. */
        int model = n > 5 && strcmp(in + n - 5, ".mmcl") == 0;
        for (int k = 0; in && k < N_SIDES; k++) {
            if (k == SIDE_QML && model)
                continue;
            char *side = k == SIDE_QML ? side_name(in, k) : NULL;
            int hit = k == SIDE_QML ? side && strcmp(canon, side) == 0
                                    : strncmp(canon, in, n) == 0 &&
                                          strcmp(canon + n, side_ext[k]) == 0;
            free(side);
            if (hit) {
                mmcl_status st = mmcl__error(
                    ctx, MMCL_ERR_INVALID_ARG,
                    "%s '%s' is %s of the input '%s'; writing it would "
                    "change that input",
                    role, path,
                    k == SIDE_QML ? "the QGIS style" : "GDAL's side file",
                    f->ins[i].name);
                free(canon);
                return st;
            }
        }
    }

    if (f->n_outs == f->cap_outs) {
        size_t cap = f->cap_outs ? 2 * f->cap_outs : 8;
        out_rec *outs = realloc(f->outs, cap * sizeof(*outs));
        if (!outs) {
            free(canon);
            return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        }
        f->outs = outs;
        f->cap_outs = cap;
    }
    out_rec *o = &f->outs[f->n_outs];
    memset(o, 0, sizeof(*o));
    o->canon = canon;
    o->path = strdup(path);
    o->role = strdup(role);
    o->kind = kind;
    o->product = dup_or_null(product);
    o->format = dup_or_null(format);
    for (int k = 0; k < N_SIDES; k++)
        o->side[k] = -1;
    o->main = -1;
    f->n_outs++;
    if (!o->path || !o->role || (product && !o->product) ||
        (format && !o->format))
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    *index = f->n_outs - 1;
    return MMCL_OK;
}

/* Forgets the outputs from @p n on (a check failed). */
static void
pop_outputs(mmcl__files *f, size_t n)
{
    while (f->n_outs > n) {
        out_rec *o = &f->outs[--f->n_outs];
        free(o->path);
        free(o->canon);
        free(o->role);
        free(o->product);
        free(o->format);
    }
}

mmcl_status
mmcl__files_add_output(mmcl_context *ctx, mmcl__files *f, const char *path,
                       const char *role, mmcl__out_kind kind,
                       const char *product, const char *format)
{
    size_t n0 = f->n_outs, oi = 0, si = 0;
    mmcl_status st = push_output(ctx, f, path, role, kind, product, format,
                                 &oi);
    if (st == MMCL_OK)
        st = check_output(ctx, f, oi);
    /* A raster's side files, which GDAL writes or reads beside it. */
    for (int k = 0; k < N_SIDES && st == MMCL_OK; k++) {
        if (!has_side(kind, product, k))
            continue;
        char *side = side_name(path, k);
        st = side ? push_output(ctx, f, side,
                                k == SIDE_QML ? "QGIS style" : "side file",
                                MMCL__OUT_SIDECAR, NULL, NULL, &si)
                  : mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        free(side);
        if (st == MMCL_OK) {
            f->outs[oi].side[k] = (int)si;
            f->outs[si].main = (int)oi;
            st = check_output(ctx, f, si);
        }
    }
    if (st != MMCL_OK)
        pop_outputs(f, n0);
    return st;
}

/* ---- stages ----------------------------------------------------------- */

static const char *
io_hint_dir(const char *dir, const char *shown)
{
    static _Thread_local char hint[PATH_MAX + 128];
    hint[0] = '\0';
    if (!dir)
        return hint;
    struct statvfs v;
    if (statvfs(dir, &v) == 0 &&
        (unsigned long long)v.f_bavail * v.f_frsize < 1024 * 1024) {
        snprintf(hint, sizeof(hint), "; the disk holding '%s' is full",
                 shown);
        return hint;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return hint;
    /* A write stops at the limit: is a file in the folder that large? */
    DIR *d = opendir(dir);
    unsigned long long largest = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && (unsigned long long)st.st_size > largest)
            largest = (unsigned long long)st.st_size;
    }
    if (d)
        closedir(d);
    if (largest + 65536 >= (unsigned long long)rl.rlim_cur)
        snprintf(hint, sizeof(hint),
                 "; the file size limit (ulimit -f) of %llu bytes was "
                 "reached",
                 (unsigned long long)rl.rlim_cur);
    return hint;
}

const char *
mmcl__stage_io_hint(const mmcl__stage *s)
{
    if (!s)
        return io_hint_dir(NULL, NULL);
    char *shown = CPLStrdup(CPLGetPath(s->files->outs[s->out].path));
    const char *h = io_hint_dir(s->dir, *shown ? shown : ".");
    CPLFree(shown);
    return h;
}

mmcl__stage *
mmcl__stage_create(mmcl_context *ctx, mmcl__files *f, const char *path)
{
    int oi = -1;
    for (size_t i = 0; i < f->n_outs && oi < 0; i++)
        if (strcmp(f->outs[i].path, path) == 0)
            oi = (int)i;
    if (oi < 0) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "internal: output '%s' was not checked", path);
        return NULL;
    }
    mmcl__stage *s = calloc(1, sizeof(*s));
    if (!s) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    s->files = f;
    s->out = oi;
    const char *name = CPLGetFilename(path);
    char *dir = CPLStrdup(CPLGetPath(path));
    char tail[64];
    snprintf(tail, sizeof(tail), ".mmcl-tmp-%ld-XXXXXX", (long)getpid());
    /* "<name>.mmcl-tmp-<pid>-XXXXXX", or without the name when too long. */
    int short_name = strlen(name) + strlen(tail) <= NAME_MAX;
    size_t len = strlen(dir) + strlen(name) + strlen(tail) + 2;
    s->dir = malloc(len);
    if (s->dir)
        snprintf(s->dir, len, "%s%s%s%s", dir, *dir ? "/" : "",
                 short_name ? name : "", tail);
    if (!s->dir) {
        CPLFree(dir);
        free(s);
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    if (!mkdtemp(s->dir)) {
        int err = errno;
        mmcl__error(ctx, MMCL_ERR_IO,
                    "cannot write %s '%s': cannot create a file in the "
                    "folder '%s': %s%s",
                    f->outs[oi].role, path, *dir ? dir : ".", strerror(err),
                    err == ENOSPC ? " (the disk is full)" : "");
        CPLFree(dir);
        free(s->dir);
        free(s);
        return NULL;
    }
    CPLFree(dir);
    char *sub = concat("/", name);
    s->file = sub ? concat(s->dir, sub) : NULL;
    free(sub);
    s->backup = s->file ? concat(s->file, ".replaced") : NULL;
    int ok = s->backup != NULL;
    for (int k = 0; k < N_SIDES && ok; k++) {
        struct stage_side *sd = &s->sides[k];
        sd->file = side_name(s->file, k);
        sd->backup = sd->file ? concat(sd->file, ".replaced") : NULL;
        ok = sd->backup != NULL;
    }
    if (!ok) {
        mmcl__stage_destroy(s);
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    return s;
}

const char *
mmcl__stage_file(const mmcl__stage *s)
{
    return s->file;
}

const char *
mmcl__stage_style_file(const mmcl__stage *s)
{
    return s->sides[SIDE_QML].file;
}

char *
mmcl__stage_path(mmcl_context *ctx, const mmcl__stage *s, const char *suffix)
{
    char *p = concat(s->file, suffix);
    if (!p)
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    return p;
}

static int
stage_open(mmcl__stage *s)
{
    return open(s->file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0666);
}

FILE *
mmcl__stage_fopen(mmcl_context *ctx, mmcl__stage *s)
{
    const out_rec *o = &s->files->outs[s->out];
    int fd = stage_open(s);
    FILE *fp = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!fp) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        mmcl__error(ctx, MMCL_ERR_IO, "cannot write %s '%s': %s", o->role,
                    o->path, strerror(err));
    }
    return fp;
}

mmcl_status
mmcl__stage_fclose(mmcl_context *ctx, mmcl__stage *s, FILE *fp)
{
    const out_rec *o = &s->files->outs[s->out];
    int err = 0;
    if (ferror(fp))
        err = errno ? errno : EIO;
    else if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
        err = errno;
    if (fclose(fp) != 0 && !err)
        err = errno;
    if (!err)
        return MMCL_OK;
    return mmcl__error(ctx, MMCL_ERR_IO, "cannot write %s '%s': %s%s",
                       o->role, o->path, strerror(err),
                       mmcl__stage_io_hint(s));
}

mmcl_status
mmcl__stage_write_text(mmcl_context *ctx, mmcl__stage *s, const char *text)
{
    FILE *fp = mmcl__stage_fopen(ctx, s);
    if (!fp)
        return mmcl_context_errcode(ctx);
    fputs(text, fp); /* a failed write is reported by the close */
    fputc('\n', fp);
    return mmcl__stage_fclose(ctx, s, fp);
}

static int
unsupported(int e)
{
    if (e == EINVAL || e == ENOSYS || e == ENOTSUP || e == EPERM)
        return 1;
#if EOPNOTSUPP != ENOTSUP
    if (e == EOPNOTSUPP)
        return 1;
#endif
    return 0;
}

/* rename(2) that never replaces: 0, or -1 with errno (EEXIST when @p to
 * exists). */
static int
rename_noreplace(const char *from, const char *to)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (!unsupported(errno))
        return -1;
#endif
    if (link(from, to) == 0) {
        unlink(from);
        return 0;
    }
    if (!unsupported(errno))
        return -1;
    /* A file system without hard links either: the narrowest check that
     * is left. */
    struct stat st;
    if (lstat(to, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

static int
is_still(const char *path, file_id id)
{
    struct stat st;
    return lstat(path, &st) == 0 && st.st_dev == id.dev && st.st_ino == id.ino;
}

/*
 * Moves @p from (in the stage) onto output @p oi; the file it replaces is
 * kept at @p backup (*backed_up set) when the file system allows.
 */
static mmcl_status
move_onto(mmcl_context *ctx, mmcl__stage *s, const char *from, int oi,
          const char *backup, int *backed_up)
{
    mmcl__files *f = s->files;
    const out_rec *o = &f->outs[oi];
    struct stat lst;
    if (!f->overwrite || lstat(o->path, &lst) != 0) {
        if (rename_noreplace(from, o->path) == 0)
            return MMCL_OK;
        if (errno != EEXIST)
            return mmcl__error(ctx, MMCL_ERR_IO,
                               "cannot move the complete %s into place as "
                               "'%s': %s",
                               o->role, o->path, strerror(errno));
        if (!f->overwrite)
            return mmcl__error(ctx, MMCL_ERR_EXISTS,
                               "%s '%s' appeared while mmcl was running; "
                               "nothing was replaced (use --overwrite)",
                               o->role, o->path);
        if (lstat(o->path, &lst) != 0)
            return mmcl__error(ctx, MMCL_ERR_IO, "cannot check %s '%s': %s",
                               o->role, o->path, strerror(errno));
    }
    /* Overwriting: the target as it is now must still be replaceable. */
    file_id id;
    mmcl_status st = check_existing(ctx, f, (size_t)oi, &lst, &id);
    if (st != MMCL_OK)
        return st;
    unlink(backup);
    *backed_up = link(o->path, backup) == 0;
    if (rename(from, o->path) != 0) {
        int err = errno;
        if (*backed_up)
            unlink(backup);
        *backed_up = 0;
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot move the complete %s into place as '%s': "
                           "%s",
                           o->role, o->path, strerror(err));
    }
    return MMCL_OK;
}

/* Undoes a commit of @p s: what it replaced is put back, what it added is
 * removed (only while it is still the file the commit put there). */
static void
stage_rollback(mmcl__stage *s)
{
    const out_rec *o = &s->files->outs[s->out];
    for (int k = 0; k < N_SIDES; k++) {
        struct stage_side *sd = &s->sides[k];
        if (o->side[k] < 0)
            continue;
        const char *side = s->files->outs[o->side[k]].path;
        if (sd->committed && is_still(side, sd->id)) {
            if (sd->saved == 1)
                rename(sd->backup, side);
            else
                unlink(side);
        } else if (sd->saved == 2) {
            rename_noreplace(sd->backup, side);
        }
        sd->committed = 0;
        sd->saved = 0;
    }
    if (s->committed && is_still(o->path, s->id)) {
        if (s->backed_up)
            rename(s->backup, o->path);
        else
            unlink(o->path);
    }
    s->committed = 0;
    s->backed_up = 0;
}

static mmcl_status
stage_commit(mmcl_context *ctx, mmcl__stage *s)
{
    const out_rec *o = &s->files->outs[s->out];
    struct stat st;
    if (lstat(s->file, &st) != 0 || !S_ISREG(st.st_mode))
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "internal: nothing was written for %s '%s'",
                           o->role, o->path);
    s->id.dev = st.st_dev;
    s->id.ino = st.st_ino;
    mmcl_status rc = move_onto(ctx, s, s->file, s->out, s->backup,
                               &s->backed_up);
    if (rc != MMCL_OK)
        return rc;
    s->committed = 1;
    for (int k = 0; k < N_SIDES; k++) {
        struct stage_side *sd = &s->sides[k];
        if (o->side[k] < 0)
            continue;
        const out_rec *so = &s->files->outs[o->side[k]];
        if (lstat(sd->file, &st) == 0) {
            sd->id.dev = st.st_dev;
            sd->id.ino = st.st_ino;
            int backed = 0;
            rc = move_onto(ctx, s, sd->file, o->side[k], sd->backup,
                           &backed);
            if (rc != MMCL_OK) {
                stage_rollback(s);
                return rc;
            }
            sd->committed = 1;
            sd->saved = backed;
        } else if (s->files->overwrite && lstat(so->path, &st) == 0 &&
                   S_ISREG(st.st_mode) && is_kind(so) &&
                   rename(so->path, sd->backup) == 0) {
            /* A side file of the file just replaced would describe the
             * new one: it goes with the file it belonged to. */
            sd->saved = 2;
        }
    }
    return MMCL_OK;
}

mmcl_status
mmcl__stages_commit(mmcl_context *ctx, mmcl__stage *const *s, size_t n,
                    mmcl_progress_fn progress, void *progress_user, double p)
{
    if (progress && !progress(p, NULL, progress_user))
        return mmcl__error(ctx, MMCL_ERR_CANCELLED, "cancelled by the caller");
    for (size_t i = 0; i < n; i++) {
        mmcl_status st = stage_commit(ctx, s[i]);
        if (st != MMCL_OK) {
            while (i-- > 0)
                stage_rollback(s[i]);
            return st;
        }
    }
    return MMCL_OK;
}

/* Removes the files in @p dir (not following links, not recursing) and
 * the folder itself. */
static void
remove_private_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
}

void
mmcl__stage_destroy(mmcl__stage *s)
{
    if (!s)
        return;
    if (s->dir)
        remove_private_dir(s->dir);
    free(s->dir);
    free(s->file);
    free(s->backup);
    for (int k = 0; k < N_SIDES; k++) {
        free(s->sides[k].file);
        free(s->sides[k].backup);
    }
    free(s);
}

/* ---- temporary folders ------------------------------------------------ */

char *
mmcl__tempdir_create(mmcl_context *ctx, const char *what)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    size_t len = strlen(tmp) + strlen(what) + 64;
    char *dir = malloc(len);
    if (!dir) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    snprintf(dir, len, "%s/mmcl-%s-%ld-XXXXXX", tmp, what, (long)getpid());
    if (!mkdtemp(dir)) {
        int err = errno;
        mmcl__error(ctx, MMCL_ERR_IO,
                    "cannot create a temporary folder in '%s': %s%s", tmp,
                    strerror(err), err == ENOSPC ? " (the disk is full)" : "");
        free(dir);
        return NULL;
    }
    return dir;
}

void
mmcl__tempdir_remove(const char *dir)
{
    if (dir)
        remove_private_dir(dir);
}
