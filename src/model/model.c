/* SPDX-License-Identifier: MIT */
/*
 * Models in memory and the model file (`*.mmcl`), which is the safetensors
 * layout (see include/mmcl/model.h for the byte layout). The JSON header is
 * built and parsed by cJSON only; the binary parts (header length, float32
 * values) are converted to and from little-endian explicitly, so the code
 * does not depend on the host's byte order.
 *
 * The reader treats the file as hostile: every length, offset, type, name
 * and count is checked before it is used, sizes are computed in 64 bits with
 * overflow checks, and allocations never exceed what the file really holds.
 * Each rejection is MMCL_ERR_FORMAT with a message naming the file.
 *
 * Tensors are kept sorted by name (strcmp, i.e. UTF-8 byte order), which is
 * also the order of the header and of the byte buffer, so that a model has
 * exactly one serialization: mmcl_model_hash() hashes those bytes.
 *
 * Threads: cJSON's parsers also record the last error position in a global
 * of their own (cJSON_GetErrorPtr). We never read it (positions come from
 * return_parse_end), so concurrent loads only share that write-only global.
 */
#define _XOPEN_SOURCE 700 /* fileno, fstat, realpath */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <gdal.h>

#include "context_internal.h"
#include "json_internal.h"
#include "model_internal.h"
#include "output_internal.h"

_Static_assert(sizeof(float) == 4, "mmcl model files need a 32-bit float");

/* Header size limit of the safetensors reference implementation (100 MB). */
#define MODEL_MAX_HEADER ((uint64_t)100000000)
/* Largest integer a JSON number (an IEEE double in cJSON) holds exactly. */
#define MODEL_MAX_JSON_INT ((uint64_t)1 << 53)
/* Most elements of one tensor: its byte length must stay a JSON integer. */
#define MODEL_MAX_ELEMS (MODEL_MAX_JSON_INT / 4)

/* Values converted to little-endian per chunk when writing. */
enum { MODEL_CHUNK_FLOATS = 4096 };

typedef struct model_tensor {
    char *name;
    int ndim;
    int64_t shape[MMCL_MODEL_MAX_DIMS]; /* unused trailing entries are 0 */
    size_t count;                       /* prod(shape), 1 for a scalar */
    float *data; /* count values; at least one byte even when count is 0 */
} model_tensor;

struct mmcl_model {
    model_tensor *tensors; /* sorted by name, no duplicates */
    size_t ntensors;
    size_t cap;
    char *metadata; /* canonical JSON object text, format_version first */
    char *source;   /* the file it was loaded from, or NULL */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void
put_le64(unsigned char b[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get_le64(const unsigned char b[8])
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static void
put_le_f32(unsigned char b[4], float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    b[0] = (unsigned char)u;
    b[1] = (unsigned char)(u >> 8);
    b[2] = (unsigned char)(u >> 16);
    b[3] = (unsigned char)(u >> 24);
}

static float
get_le_f32(const unsigned char b[4])
{
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                 (uint32_t)b[3] << 24;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/*
 * 1 when s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF); else 0 with the offending offset.
 */
static int
utf8_valid(const unsigned char *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            goto invalid;
        }
        if (n - i < len)
            goto invalid;
        for (size_t k = 1; k < len; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xC0) != 0x80)
                goto invalid;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto invalid;
        i += len;
    }
    return 1;
invalid:
    if (bad)
        *bad = i;
    return 0;
}

/*
 * Checks that s[0..n) can be JSON text as RFC 8259 allows it: UTF-8, and no
 * control character other than the whitespace tab, LF and CR (JSON strings
 * must escape them; cJSON would let them through). On failure returns 0 and
 * sets @p bad and @p why.
 */
static int
json_text_valid(const unsigned char *s, size_t n, size_t *bad, const char **why)
{
    if (!utf8_valid(s, n, bad)) {
        *why = "is not valid UTF-8";
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
            *bad = i;
            *why = "has a control character";
            return 0;
        }
    }
    return 1;
}

/* 1 when @p name can name a tensor; else 0 with the reason in @p why. */
static int
name_valid(const char *name, const char **why)
{
    size_t n = strlen(name), bad;
    if (n == 0) {
        *why = "is empty";
        return 0;
    }
    if (strcmp(name, "__metadata__") == 0) {
        *why = "is reserved by safetensors";
        return 0;
    }
    if (!utf8_valid((const unsigned char *)name, n, &bad)) {
        *why = "is not valid UTF-8";
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7F) {
            *why = "contains a control character";
            return 0;
        }
    }
    return 1;
}

/* Writes "[64,117]" (or "[]" for a scalar) into @p buf. */
static void
shape_format(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t used = 0;
    int n = snprintf(buf, size, "[");
    if (n > 0)
        used = (size_t)n;
    for (int d = 0; d < ndim && used < size; d++) {
        n = snprintf(buf + used, size - used, "%s%" PRId64, d ? "," : "",
                     shape[d]);
        if (n < 0)
            return;
        used += (size_t)n;
    }
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

/* Room for "[" + 4 x (20 digits and a sign) + 3 commas + "]". */
enum { SHAPE_TEXT_SIZE = 128 };

/*
 * Position of @p name in the sorted tensors of @p m: its index when
 * *found is set, else where it would be inserted.
 */
static size_t
tensor_find(const mmcl_model *m, const char *name, int *found)
{
    size_t lo = 0, hi = m->ntensors;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->tensors[mid].name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void
tensor_clear(model_tensor *t)
{
    free(t->name);
    free(t->data);
    t->name = NULL;
    t->data = NULL;
}

/* ------------------------------------------------------------------------ */
/* Metadata JSON                                                            */
/* ------------------------------------------------------------------------ */

/* Why metadata_parse() failed. */
typedef enum metadata_problem {
    METADATA_OK = 0,
    METADATA_NOT_TEXT,   /* bad UTF-8 or raw control character */
    METADATA_NOT_JSON,   /* cJSON rejected it */
    METADATA_NOT_OBJECT, /* valid JSON, but not an object */
    METADATA_DUPLICATE,  /* a key appears twice in one object */
    METADATA_NO_MEMORY
} metadata_problem;

/*
 * Parses @p json (NUL-terminated) into an object without duplicate keys.
 * On failure returns NULL with the problem, a byte offset (for NOT_TEXT and
 * NOT_JSON) and a description in @p why (NOT_TEXT) or the duplicate key
 * copied into @p dup (size @p dup_size).
 */
static cJSON *
metadata_parse(const char *json, metadata_problem *problem, size_t *at,
               const char **why, char *dup, size_t dup_size)
{
    const char *end = NULL;
    const char *dup_key = NULL;
    cJSON *obj;
    int r;

    *problem = METADATA_OK;
    *at = 0;
    *why = "";
    if (!json_text_valid((const unsigned char *)json, strlen(json), at, why)) {
        *problem = METADATA_NOT_TEXT;
        return NULL;
    }
    obj = cJSON_ParseWithOpts(json, &end, 1);
    if (!obj) {
        *problem = METADATA_NOT_JSON;
        *at = end && end >= json ? (size_t)(end - json) : 0;
        return NULL;
    }
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        *problem = METADATA_NOT_OBJECT;
        return NULL;
    }
    r = mmcl__json_find_duplicate(obj, &dup_key);
    if (r != 0) {
        if (r > 0)
            snprintf(dup, dup_size, "%s", dup_key);
        cJSON_Delete(obj);
        *problem = r > 0 ? METADATA_DUPLICATE : METADATA_NO_MEMORY;
        return NULL;
    }
    return obj;
}

/*
 * The canonical text of the metadata object @p obj (which this consumes):
 * "format_version" first with the current version, then the other keys in
 * their order, unformatted. Returns a malloc'ed string or NULL when out of
 * memory (message set in @p ctx).
 */
static char *
metadata_canonical(mmcl_context *ctx, cJSON *obj)
{
    cJSON *out = NULL;
    char *text = NULL, *result = NULL;

    out = cJSON_CreateObject();
    if (!out || !cJSON_AddNumberToObject(out, "format_version",
                                         MMCL_MODEL_FORMAT_VERSION))
        goto done;
    while (obj->child) {
        cJSON *c = cJSON_DetachItemViaPointer(obj, obj->child);
        if (c->string && strcmp(c->string, "format_version") == 0) {
            cJSON_Delete(c);
            continue;
        }
        /* Re-keying copies the key before freeing the old one. */
        if (!cJSON_AddItemToObject(out, c->string ? c->string : "", c)) {
            cJSON_Delete(c);
            goto done;
        }
    }
    text = cJSON_PrintUnformatted(out);
    if (!text)
        goto done;
    result = mmcl__strdup(ctx, text);
    cJSON_free(text);
    text = NULL;
    if (!result)
        goto cleanup; /* message already set */

done:
    if (!result)
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                    "out of memory serializing model metadata");
cleanup:
    cJSON_Delete(out);
    cJSON_Delete(obj);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Model in memory                                                          */
/* ------------------------------------------------------------------------ */

mmcl_model *
mmcl_model_create(mmcl_context *ctx)
{
    char text[64];
    mmcl_model *m = mmcl__calloc_array(ctx, 1, 1, sizeof(*m));
    if (!m)
        return NULL;
    snprintf(text, sizeof(text), "{\"format_version\":%d}",
             MMCL_MODEL_FORMAT_VERSION);
    m->metadata = mmcl__strdup(ctx, text);
    if (!m->metadata) {
        free(m);
        return NULL;
    }
    return m;
}

void
mmcl_model_destroy(mmcl_model *model)
{
    if (!model)
        return;
    for (size_t i = 0; i < model->ntensors; i++)
        tensor_clear(&model->tensors[i]);
    free(model->tensors);
    free(model->metadata);
    free(model->source);
    free(model);
}

const char *
mmcl__model_source(const mmcl_model *m)
{
    return m ? m->source : NULL;
}

/* Makes room for one more tensor in @p m. */
static mmcl_status
tensors_reserve(mmcl_context *ctx, mmcl_model *m)
{
    model_tensor *grown;
    size_t cap;
    if (m->ntensors < m->cap)
        return MMCL_OK;
    cap = m->cap ? 2 * m->cap : 8;
    if (cap < m->cap || cap > SIZE_MAX / sizeof(*grown))
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "too many model tensors");
    grown = realloc(m->tensors, cap * sizeof(*grown));
    if (!grown)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                           "out of memory growing the model's tensor list");
    m->tensors = grown;
    m->cap = cap;
    return MMCL_OK;
}

mmcl_status
mmcl_model_set_tensor(mmcl_context *ctx, mmcl_model *model, const char *name,
                      const float *data, int ndim, const int64_t *shape)
{
    model_tensor t;
    const char *why = "";
    uint64_t count = 1;
    size_t pos;
    int found;
    mmcl_status st;

    memset(&t, 0, sizeof(t));
    if (!model || !name)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_model_set_tensor: model and name must not "
                           "be NULL");
    if (!name_valid(name, &why))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "tensor name '%s' %s",
                           name, why);
    if (ndim < 0 || ndim > MMCL_MODEL_MAX_DIMS)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "tensor '%s' has %d dimensions (0 to %d allowed)",
                           name, ndim, MMCL_MODEL_MAX_DIMS);
    if (ndim > 0 && !shape)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "tensor '%s': shape must not be NULL", name);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "tensor '%s': size %" PRId64
                               " of dimension %d is negative",
                               name, shape[d], d);
        if (shape[d] > 0 && count > MODEL_MAX_ELEMS / (uint64_t)shape[d])
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "tensor '%s' has too many elements (over "
                               "2^51)",
                               name);
        count *= (uint64_t)shape[d];
    }
    if (count > SIZE_MAX / sizeof(float))
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                           "tensor '%s' is too large for this platform", name);
    if (count > 0 && !data)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "tensor '%s': data must not be NULL", name);

    /* Copy first: on any failure the model stays as it was. */
    t.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t.shape[d] = shape[d];
    t.count = (size_t)count;
    t.data = mmcl__malloc_array(ctx, t.count, sizeof(float), 1);
    if (!t.data)
        return MMCL_ERR_NO_MEMORY;
    if (t.count)
        memcpy(t.data, data, t.count * sizeof(float));

    pos = tensor_find(model, name, &found);
    if (found) {
        model_tensor *old = &model->tensors[pos];
        free(old->data);
        t.name = old->name; /* keep the name string: callers may hold it */
        *old = t;
        return MMCL_OK;
    }
    st = tensors_reserve(ctx, model);
    if (st == MMCL_OK) {
        t.name = mmcl__strdup(ctx, name);
        if (!t.name)
            st = MMCL_ERR_NO_MEMORY;
    }
    if (st != MMCL_OK) {
        tensor_clear(&t);
        return st;
    }
    memmove(&model->tensors[pos + 1], &model->tensors[pos],
            (model->ntensors - pos) * sizeof(model->tensors[0]));
    model->tensors[pos] = t;
    model->ntensors++;
    return MMCL_OK;
}

const float *
mmcl_model_tensor(const mmcl_model *model, const char *name, int *ndim,
                  const int64_t **shape)
{
    const model_tensor *t;
    size_t pos;
    int found;

    if (ndim)
        *ndim = 0;
    if (shape)
        *shape = NULL;
    if (!model || !name)
        return NULL;
    pos = tensor_find(model, name, &found);
    if (!found)
        return NULL;
    t = &model->tensors[pos];
    if (ndim)
        *ndim = t->ndim;
    if (shape)
        *shape = t->shape;
    return t->data;
}

size_t
mmcl_model_tensor_count(const mmcl_model *model)
{
    return model ? model->ntensors : 0;
}

const char *
mmcl_model_tensor_name(const mmcl_model *model, size_t index)
{
    if (!model || index >= model->ntensors)
        return NULL;
    return model->tensors[index].name;
}

mmcl_status
mmcl_model_set_metadata_json(mmcl_context *ctx, mmcl_model *model,
                             const char *json)
{
    metadata_problem problem;
    size_t at;
    const char *why;
    char dup[256];
    cJSON *obj;
    char *canonical;

    if (!model || !json)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_model_set_metadata_json: model and json "
                           "must not be NULL");
    dup[0] = '\0';
    obj = metadata_parse(json, &problem, &at, &why, dup, sizeof(dup));
    switch (problem) {
    case METADATA_OK:
        break;
    case METADATA_NOT_TEXT:
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "model metadata %s (byte %zu)", why, at);
    case METADATA_NOT_JSON:
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "model metadata is not valid JSON (error near "
                           "byte %zu)",
                           at);
    case METADATA_NOT_OBJECT:
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "model metadata must be a JSON object");
    case METADATA_DUPLICATE:
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "model metadata has the key '%s' twice in one "
                           "object",
                           dup);
    case METADATA_NO_MEMORY:
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                           "out of memory checking model metadata");
    }
    canonical = metadata_canonical(ctx, obj);
    if (!canonical)
        return MMCL_ERR_NO_MEMORY;
    free(model->metadata);
    model->metadata = canonical;
    return MMCL_OK;
}

const char *
mmcl_model_metadata_json(const mmcl_model *model)
{
    return model ? model->metadata : NULL;
}

mmcl_status
mmcl__model_check_shape(mmcl_context *ctx, const mmcl_model *m,
                        const char *name, int ndim, const int64_t *shape)
{
    char want[SHAPE_TEXT_SIZE], have[SHAPE_TEXT_SIZE];
    const model_tensor *t;
    size_t pos;
    int found, same;

    if (!m || !name || ndim < 0 || ndim > MMCL_MODEL_MAX_DIMS ||
        (ndim > 0 && !shape))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl__model_check_shape: invalid arguments");
    shape_format(want, sizeof(want), ndim, shape);
    pos = tensor_find(m, name, &found);
    if (!found)
        return mmcl__error(ctx, MMCL_ERR_FORMAT,
                           "model has no tensor '%s' (expected shape %s)", name,
                           want);
    t = &m->tensors[pos];
    same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        shape_format(have, sizeof(have), t->ndim, t->shape);
        return mmcl__error(ctx, MMCL_ERR_FORMAT,
                           "model tensor '%s' has shape %s, expected %s", name,
                           have, want);
    }
    return MMCL_OK;
}

/* ------------------------------------------------------------------------ */
/* Writing: one serializer feeding either a file or the hash                 */
/* ------------------------------------------------------------------------ */

typedef struct byte_sink byte_sink;
struct byte_sink {
    /* Consumes n bytes; sets the message itself on failure. */
    mmcl_status (*write)(byte_sink *sink, const void *bytes, size_t n);
    mmcl_context *ctx;
    FILE *fp;         /* file sink */
    const char *path; /* file sink: the name to report */
    const mmcl__stage *stage; /* file sink: where it is written */
    uint64_t hash;    /* hash sink */
};

static mmcl_status
file_sink_write(byte_sink *sink, const void *bytes, size_t n)
{
    if (n && fwrite(bytes, 1, n, sink->fp) != n)
        return mmcl__error(sink->ctx, MMCL_ERR_IO, "cannot write '%s': %s%s",
                           sink->path, strerror(errno),
                           mmcl__stage_io_hint(sink->stage));
    return MMCL_OK;
}

/* 64-bit FNV-1a (Fowler, Noll, Vo; offset basis and prime of the spec). */
#define FNV64_OFFSET_BASIS UINT64_C(0xcbf29ce484222325)
#define FNV64_PRIME UINT64_C(0x100000001b3)

static mmcl_status
hash_sink_write(byte_sink *sink, const void *bytes, size_t n)
{
    const unsigned char *b = bytes;
    uint64_t h = sink->hash;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV64_PRIME;
    }
    sink->hash = h;
    return MMCL_OK;
}

/* Appends the JSON integer @p v to @p array, printed exactly (no exponent). */
static int
add_json_uint(cJSON *array, uint64_t v)
{
    char text[24];
    cJSON *item;
    snprintf(text, sizeof(text), "%" PRIu64, v);
    item = cJSON_CreateRaw(text);
    if (!item)
        return 0;
    if (!cJSON_AddItemToArray(array, item)) {
        cJSON_Delete(item);
        return 0;
    }
    return 1;
}

/*
 * The header of @p m: JSON padded with spaces to a multiple of 8 bytes
 * (so that 8 + N is too). *out is malloc'ed, NUL-terminated, *out_len bytes.
 * Integers are emitted as raw text so that they are always plain integers
 * (cJSON would print large doubles with an exponent).
 */
static mmcl_status
header_build(mmcl_context *ctx, const mmcl_model *m, char **out,
             size_t *out_len)
{
    mmcl_status st = MMCL_OK;
    cJSON *root = NULL, *meta;
    char *text = NULL, *padded = NULL;
    uint64_t offset = 0;
    size_t len, padded_len;

    *out = NULL;
    *out_len = 0;
    root = cJSON_CreateObject();
    if (!root)
        goto nomem;
    meta = cJSON_AddObjectToObject(root, "__metadata__");
    if (!meta || !cJSON_AddStringToObject(meta, "format", "mmcl") ||
        !cJSON_AddStringToObject(meta, "mmcl", m->metadata))
        goto nomem;
    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *t = &m->tensors[i];
        uint64_t bytes = (uint64_t)t->count * 4;
        cJSON *entry, *shape, *offs;
        if (bytes > MODEL_MAX_JSON_INT - offset) {
            st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                             "model is too large to save (over 2^53 bytes)");
            goto done;
        }
        entry = cJSON_AddObjectToObject(root, t->name);
        if (!entry || !cJSON_AddStringToObject(entry, "dtype", "F32"))
            goto nomem;
        shape = cJSON_AddArrayToObject(entry, "shape");
        if (!shape)
            goto nomem;
        for (int d = 0; d < t->ndim; d++)
            if (!add_json_uint(shape, (uint64_t)t->shape[d]))
                goto nomem;
        offs = cJSON_AddArrayToObject(entry, "data_offsets");
        if (!offs || !add_json_uint(offs, offset) ||
            !add_json_uint(offs, offset + bytes))
            goto nomem;
        offset += bytes;
    }
    text = cJSON_PrintUnformatted(root);
    if (!text)
        goto nomem;
    len = strlen(text);
    if ((uint64_t)len > MODEL_MAX_HEADER - 8) {
        st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                         "model header would be %zu bytes, over the 100 MB "
                         "that readers accept (metadata too large?)",
                         len);
        goto done;
    }
    padded_len = (len + 7) / 8 * 8;
    padded = mmcl__malloc_array(ctx, padded_len + 1, 1, 1);
    if (!padded) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    memcpy(padded, text, len);
    memset(padded + len, ' ', padded_len - len);
    padded[padded_len] = '\0';
    *out = padded;
    *out_len = padded_len;
    padded = NULL;
    goto done;

nomem:
    st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                     "out of memory building the model file header");
done:
    if (text)
        cJSON_free(text);
    cJSON_Delete(root);
    free(padded);
    return st;
}

/* Feeds the exact bytes of the model file of @p m to @p sink. */
static mmcl_status
model_serialize(mmcl_context *ctx, const mmcl_model *m, byte_sink *sink)
{
    mmcl_status st;
    char *header = NULL;
    size_t header_len = 0;
    unsigned char len_bytes[8];
    unsigned char chunk[MODEL_CHUNK_FLOATS * 4];

    st = header_build(ctx, m, &header, &header_len);
    if (st != MMCL_OK)
        goto done;
    put_le64(len_bytes, (uint64_t)header_len);
    st = sink->write(sink, len_bytes, sizeof(len_bytes));
    if (st != MMCL_OK)
        goto done;
    st = sink->write(sink, header, header_len);
    if (st != MMCL_OK)
        goto done;
    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *t = &m->tensors[i];
        for (size_t k = 0; k < t->count; k += MODEL_CHUNK_FLOATS) {
            size_t n = t->count - k;
            if (n > MODEL_CHUNK_FLOATS)
                n = MODEL_CHUNK_FLOATS;
            for (size_t j = 0; j < n; j++)
                put_le_f32(chunk + 4 * j, t->data[k + j]);
            st = sink->write(sink, chunk, 4 * n);
            if (st != MMCL_OK)
                goto done;
        }
    }
done:
    free(header);
    return st;
}

mmcl_status
mmcl_model_hash(mmcl_context *ctx, const mmcl_model *model, char out[17])
{
    byte_sink sink;
    mmcl_status st;

    if (out)
        out[0] = '\0';
    if (!model || !out)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_model_hash: model and out must not be NULL");
    memset(&sink, 0, sizeof(sink));
    sink.write = hash_sink_write;
    sink.ctx = ctx;
    sink.hash = FNV64_OFFSET_BASIS;
    st = model_serialize(ctx, model, &sink);
    if (st != MMCL_OK)
        return st;
    snprintf(out, 17, "%016" PRIx64, sink.hash);
    return MMCL_OK;
}

/* A new set with the model output @p path checked, the file @p source
 * (may be NULL) as its input. */
static mmcl_status
save_files(mmcl_context *ctx, const char *path, int overwrite,
           const char *source, mmcl__files **out)
{
    *out = mmcl__files_create(ctx, overwrite);
    if (!*out)
        return MMCL_ERR_NO_MEMORY;
    mmcl_status st = mmcl__files_add_input_file(ctx, *out, source);
    if (st == MMCL_OK)
        st = mmcl__files_add_output(ctx, *out, path, "output",
                                    MMCL__OUT_MODEL, NULL, NULL);
    if (st != MMCL_OK) {
        mmcl__files_destroy(*out);
        *out = NULL;
    }
    return st;
}

mmcl_status
mmcl_model_save_check(mmcl_context *ctx, const char *path, int overwrite)
{
    if (!path || !*path)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_model_save_check: path must not be NULL or "
                           "empty");
    mmcl__files *files = NULL;
    mmcl_status st = save_files(ctx, path, overwrite, NULL, &files);
    mmcl__files_destroy(files);
    return st;
}

/*
 * The first element of a tensor that is not finite (NaN or +-Inf): a model
 * holding one writes NaN embeddings, so it is neither written nor loaded.
 * Returns 1 and sets *tensor, *at and *what when there is one.
 */
static int
first_nonfinite(const model_tensor *ts, size_t n, const model_tensor **tensor,
                size_t *at, const char **what)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < ts[i].count; j++)
            if (!isfinite(ts[i].data[j])) {
                *tensor = &ts[i];
                *at = j;
                *what = isnan(ts[i].data[j])   ? "NaN"
                        : ts[i].data[j] > 0.0f ? "+Inf"
                                               : "-Inf";
                return 1;
            }
    return 0;
}

mmcl_status
mmcl_model_save(mmcl_context *ctx, const mmcl_model *model, const char *path,
                int overwrite)
{
    mmcl_status st = MMCL_OK;
    mmcl__files *files = NULL;
    mmcl__stage *stage = NULL;
    FILE *fp = NULL;
    byte_sink sink;

    if (!model || !path || !*path)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_model_save: model and path must not be "
                           "NULL or empty");
    {
        const model_tensor *bad;
        size_t at;
        const char *what;
        if (first_nonfinite(model->tensors, model->ntensors, &bad, &at, &what))
            return mmcl__error(ctx, MMCL_ERR_NUMERIC,
                               "model '%s' not written: tensor '%s' holds "
                               "%s at element %zu",
                               path, bad->name, what, at);
    }
    /* The file the model was read from is an input: never written over. */
    st = save_files(ctx, path, overwrite, model->source, &files);
    if (st != MMCL_OK)
        return st;
    stage = mmcl__stage_create(ctx, files, path);
    fp = stage ? mmcl__stage_fopen(ctx, stage) : NULL;
    if (!fp) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    memset(&sink, 0, sizeof(sink));
    sink.write = file_sink_write;
    sink.ctx = ctx;
    sink.fp = fp;
    sink.path = path;
    sink.stage = stage;
    st = model_serialize(ctx, model, &sink);
    if (st != MMCL_OK) {
        fclose(fp);
        goto done;
    }
    /* On disk before the move, so a crash leaves the old file or the new. */
    st = mmcl__stage_fclose(ctx, stage, fp);
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, &stage, 1, NULL, NULL, 1.0);

done:
    mmcl__stage_destroy(stage);
    mmcl__files_destroy(files);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

/* A tensor entry of the header, with its byte range in the buffer. */
typedef struct load_entry {
    model_tensor t;
    uint64_t begin, end;
} load_entry;

static mmcl_status bad_file(mmcl_context *ctx, const char *path,
                            const char *fmt, ...) MMCL__PRINTF(3, 4);

/* MMCL_ERR_FORMAT with "model file '<path>': <problem>". */
static mmcl_status
bad_file(mmcl_context *ctx, const char *path, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return mmcl__error(ctx, MMCL_ERR_FORMAT, "model file '%s': %s", path, msg);
}

/*
 * 1 when @p item is a JSON number holding a non-negative integer that a
 * double represents exactly (<= 2^53); the value goes to *out.
 */
static int
json_uint(const cJSON *item, uint64_t *out)
{
    double d;
    if (!cJSON_IsNumber(item))
        return 0;
    d = item->valuedouble;
    if (!(d >= 0.0 && d <= (double)MODEL_MAX_JSON_INT))
        return 0; /* also rejects NaN */
    if ((double)(uint64_t)d != d)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Validates one tensor entry of the header into @p e (name copied). */
static mmcl_status
parse_tensor_entry(mmcl_context *ctx, const char *path, const cJSON *item,
                   uint64_t buffer_len, load_entry *e)
{
    const char *name = item->string ? item->string : "";
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL, *c;
    const char *why = "";
    char shape_text[SHAPE_TEXT_SIZE];
    uint64_t count = 1, bytes, v;
    int ndim = 0;

    if (!name_valid(name, &why))
        return bad_file(ctx, path, "tensor name '%s' %s", name, why);
    if (!cJSON_IsObject(item))
        return bad_file(ctx, path,
                        "entry of tensor '%s' is not a JSON "
                        "object",
                        name);
    for (c = item->child; c; c = c->next) {
        const cJSON **slot;
        const char *key = c->string ? c->string : "";
        if (strcmp(key, "dtype") == 0)
            slot = &dtype;
        else if (strcmp(key, "shape") == 0)
            slot = &shape;
        else if (strcmp(key, "data_offsets") == 0)
            slot = &offsets;
        else
            return bad_file(ctx, path,
                            "tensor '%s' has an unexpected key "
                            "'%s' (expected dtype, shape, data_offsets)",
                            name, key);
        if (*slot)
            return bad_file(ctx, path,
                            "tensor '%s' has a duplicate key "
                            "'%s'",
                            name, key);
        *slot = c;
    }
    if (!dtype || !shape || !offsets)
        return bad_file(ctx, path, "tensor '%s' has no \"%s\"", name,
                        !dtype   ? "dtype"
                        : !shape ? "shape"
                                 : "data_offsets");

    if (!cJSON_IsString(dtype))
        return bad_file(ctx, path, "dtype of tensor '%s' is not a string",
                        name);
    if (strcmp(dtype->valuestring, "F32") != 0)
        return bad_file(ctx, path,
                        "unsupported dtype '%s' for tensor '%s' "
                        "(mmcl reads F32)",
                        dtype->valuestring, name);

    if (!cJSON_IsArray(shape))
        return bad_file(ctx, path, "shape of tensor '%s' is not an array",
                        name);
    for (c = shape->child; c; c = c->next) {
        if (ndim == MMCL_MODEL_MAX_DIMS)
            return bad_file(ctx, path,
                            "tensor '%s' has more than %d "
                            "dimensions (mmcl reads at most %d)",
                            name, MMCL_MODEL_MAX_DIMS, MMCL_MODEL_MAX_DIMS);
        if (!json_uint(c, &v))
            return bad_file(ctx, path,
                            "shape of tensor '%s' has an entry "
                            "that is not a non-negative integer",
                            name);
        if (v > 0 && count > MODEL_MAX_ELEMS / v)
            return bad_file(ctx, path,
                            "shape of tensor '%s' has too many "
                            "elements (size overflows)",
                            name);
        count *= v;
        e->t.shape[ndim++] = (int64_t)v;
    }
    e->t.ndim = ndim;
    shape_format(shape_text, sizeof(shape_text), ndim, e->t.shape);

    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_uint(offsets->child, &e->begin) ||
        !json_uint(offsets->child->next, &e->end))
        return bad_file(ctx, path,
                        "data_offsets of tensor '%s' are not two "
                        "non-negative integers [begin, end]",
                        name);
    if (e->begin > e->end)
        return bad_file(ctx, path,
                        "data_offsets [%" PRIu64 ",%" PRIu64
                        "] of tensor '%s' begin after they end",
                        e->begin, e->end, name);
    if (e->end > buffer_len)
        return bad_file(ctx, path,
                        "data_offsets [%" PRIu64 ",%" PRIu64
                        "] of tensor '%s' are out of range: the data buffer "
                        "has %" PRIu64 " bytes (truncated file?)",
                        e->begin, e->end, name, buffer_len);
    bytes = count * 4;
    if (e->end - e->begin != bytes)
        return bad_file(ctx, path,
                        "tensor '%s' has %" PRIu64 " bytes in "
                        "data_offsets but its shape %s needs %" PRIu64
                        " (4 bytes per F32 value)",
                        name, e->end - e->begin, shape_text, bytes);
    if (count > SIZE_MAX / sizeof(float))
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                           "model file '%s': "
                           "tensor '%s' is too large for this platform",
                           path, name);
    e->t.count = (size_t)count;
    e->t.name = mmcl__strdup(ctx, name);
    if (!e->t.name)
        return MMCL_ERR_NO_MEMORY;
    return MMCL_OK;
}

/* Validates __metadata__ and returns the canonical mmcl metadata text. */
static mmcl_status
parse_metadata_entry(mmcl_context *ctx, const char *path, const cJSON *item,
                     char **out)
{
    const cJSON *c, *format = NULL, *mmcl = NULL, *version;
    const char *dup_key = NULL, *why = "";
    metadata_problem problem;
    cJSON *obj = NULL;
    char dup[256];
    size_t at = 0;
    uint64_t v;
    int r;

    *out = NULL;
    if (!cJSON_IsObject(item))
        return bad_file(ctx, path, "__metadata__ is not a JSON object");
    r = mmcl__json_find_duplicate(item, &dup_key);
    if (r < 0)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                           "out of memory reading model file '%s'", path);
    if (r > 0)
        return bad_file(ctx, path, "__metadata__ has a duplicate key '%s'",
                        dup_key);
    for (c = item->child; c; c = c->next) {
        const char *key = c->string ? c->string : "";
        if (!cJSON_IsString(c))
            return bad_file(ctx, path,
                            "__metadata__ value '%s' is not a "
                            "string (safetensors allows only strings)",
                            key);
        if (strcmp(key, "format") == 0)
            format = c;
        else if (strcmp(key, "mmcl") == 0)
            mmcl = c;
    }
    if (!format)
        return bad_file(ctx, path,
                        "__metadata__ has no \"format\": not an "
                        "mmcl model file");
    if (strcmp(format->valuestring, "mmcl") != 0)
        return bad_file(ctx, path,
                        "__metadata__ \"format\" is '%s', not "
                        "'mmcl': not an mmcl model file",
                        format->valuestring);
    if (!mmcl)
        return bad_file(ctx, path,
                        "__metadata__ has no \"mmcl\" entry (the "
                        "model's metadata)");

    dup[0] = '\0';
    obj = metadata_parse(mmcl->valuestring, &problem, &at, &why, dup,
                         sizeof(dup));
    switch (problem) {
    case METADATA_OK:
        break;
    case METADATA_NOT_TEXT:
        return bad_file(ctx, path, "__metadata__ \"mmcl\" %s (byte %zu)", why,
                        at);
    case METADATA_NOT_JSON:
        return bad_file(ctx, path,
                        "__metadata__ \"mmcl\" is not valid JSON "
                        "(error near byte %zu)",
                        at);
    case METADATA_NOT_OBJECT:
        return bad_file(ctx, path,
                        "__metadata__ \"mmcl\" is not a JSON "
                        "object");
    case METADATA_DUPLICATE:
        return bad_file(ctx, path,
                        "__metadata__ \"mmcl\" has the key '%s' "
                        "twice in one object",
                        dup);
    case METADATA_NO_MEMORY:
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                           "out of memory reading model file '%s'", path);
    }

    version = cJSON_GetObjectItemCaseSensitive(obj, "format_version");
    if (!version) {
        cJSON_Delete(obj);
        return bad_file(ctx, path,
                        "__metadata__ \"mmcl\" has no "
                        "format_version");
    }
    if (!json_uint(version, &v) || v < 1) {
        cJSON_Delete(obj);
        return bad_file(ctx, path,
                        "__metadata__ \"mmcl\" format_version "
                        "is not a positive integer");
    }
    if (v > MMCL_MODEL_FORMAT_VERSION) {
        cJSON_Delete(obj);
        return mmcl__error(ctx, MMCL_ERR_FORMAT,
                           "model file '%s' was written by a newer mmcl "
                           "(format version %" PRIu64 "; this mmcl reads up "
                           "to %d)",
                           path, v, MMCL_MODEL_FORMAT_VERSION);
    }
    *out = metadata_canonical(ctx, obj); /* consumes obj */
    return *out ? MMCL_OK : MMCL_ERR_NO_MEMORY;
}

static int
entry_name_cmp(const void *a, const void *b)
{
    const load_entry *x = a;
    const load_entry *y = b;
    return strcmp(x->t.name, y->t.name);
}

static int
entry_offset_cmp(const void *a, const void *b)
{
    const load_entry *const *x = a;
    const load_entry *const *y = b;
    if ((*x)->begin != (*y)->begin)
        return (*x)->begin < (*y)->begin ? -1 : 1;
    if ((*x)->end != (*y)->end)
        return (*x)->end < (*y)->end ? -1 : 1;
    return 0;
}

/*
 * Parses and validates the header (@p len bytes at @p text, NUL-terminated)
 * of a file whose byte buffer has @p buffer_len bytes. On success *entries
 * holds *n entries sorted by name, *order the same entries sorted by offset,
 * and *metadata the canonical metadata text. On failure the outputs are
 * NULL/0 and the caller frees nothing.
 */
static mmcl_status
parse_header(mmcl_context *ctx, const char *path, const char *text, size_t len,
             uint64_t buffer_len, load_entry **entries_out,
             load_entry ***order_out, size_t *n_out, char **metadata_out)
{
    mmcl_status st = MMCL_OK;
    cJSON *root = NULL;
    const cJSON *c;
    const char *end = NULL, *why = "";
    load_entry *entries = NULL;
    load_entry **order = NULL;
    char *metadata = NULL;
    size_t n = 0, k = 0, at = 0;
    uint64_t pos = 0;

    *entries_out = NULL;
    *order_out = NULL;
    *n_out = 0;
    *metadata_out = NULL;

    if (!json_text_valid((const unsigned char *)text, len, &at, &why)) {
        st = bad_file(ctx, path, "header %s (byte %zu)", why, at);
        goto done;
    }
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        at = end && end >= text ? (size_t)(end - text) : 0;
        st = bad_file(ctx, path,
                      "header is not valid JSON (error near "
                      "byte %zu)",
                      at);
        goto done;
    }
    /* Only whitespace (the writer's space padding) may follow the JSON. */
    for (at = end && end >= text ? (size_t)(end - text) : len; at < len; at++) {
        char ch = text[at];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            st = bad_file(ctx, path,
                          "header has bytes after the JSON "
                          "object (byte %zu)",
                          at);
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        st = bad_file(ctx, path, "header is not a JSON object");
        goto done;
    }

    for (c = root->child; c; c = c->next)
        n++;
    entries = mmcl__calloc_array(ctx, n, 1, sizeof(*entries));
    if (!entries) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    for (c = root->child; c; c = c->next) {
        if (c->string && strcmp(c->string, "__metadata__") == 0) {
            if (metadata) {
                st = bad_file(ctx, path,
                              "header has a duplicate key "
                              "'__metadata__'");
                goto done;
            }
            st = parse_metadata_entry(ctx, path, c, &metadata);
        } else {
            st = parse_tensor_entry(ctx, path, c, buffer_len, &entries[k]);
            k++; /* counted even on failure, so its name is freed */
        }
        if (st != MMCL_OK)
            goto done;
    }
    n = k;
    if (!metadata) {
        st = bad_file(ctx, path,
                      "header has no __metadata__: not an mmcl "
                      "model file");
        goto done;
    }

    /* Names: sorted (the model's order), each once. */
    qsort(entries, n, sizeof(*entries), entry_name_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(entries[i - 1].t.name, entries[i].t.name) == 0) {
            st = bad_file(ctx, path, "duplicate tensor name '%s'",
                          entries[i].t.name);
            goto done;
        }
    }

    /* Byte ranges: tiling [0, buffer_len) exactly, no overlap, no gap. */
    order = mmcl__malloc_array(ctx, n, 1, sizeof(*order));
    if (!order) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &entries[i];
    qsort(order, n, sizeof(*order), entry_offset_cmp);
    for (size_t i = 0; i < n; i++) {
        const load_entry *e = order[i];
        if (e->begin < pos) {
            st = bad_file(ctx, path,
                          "tensor '%s' (bytes %" PRIu64 "-%" PRIu64
                          ") overlaps tensor '%s'",
                          e->t.name, e->begin, e->end, order[i - 1]->t.name);
            goto done;
        }
        if (e->begin > pos) {
            st = bad_file(ctx, path,
                          "gap in the data buffer: bytes %" PRIu64 "-%" PRIu64
                          " belong to no tensor",
                          pos, e->begin);
            goto done;
        }
        pos = e->end;
    }
    if (pos != buffer_len) {
        st = bad_file(ctx, path,
                      "the tensors do not cover the data buffer: "
                      "it has %" PRIu64 " bytes, they end at byte %" PRIu64
                      " (trailing garbage?)",
                      buffer_len, pos);
        goto done;
    }

    *entries_out = entries;
    *order_out = order;
    *n_out = n;
    *metadata_out = metadata;
    entries = NULL;
    order = NULL;
    metadata = NULL;

done:
    if (entries) {
        for (size_t i = 0; i < k; i++)
            tensor_clear(&entries[i].t);
        free(entries);
    }
    free(order);
    free(metadata);
    cJSON_Delete(root);
    return st;
}

/* Reads exactly @p n bytes; a short read is a truncated file. */
static mmcl_status
read_exact(mmcl_context *ctx, FILE *fp, const char *path, void *buf, size_t n)
{
    if (n == 0 || fread(buf, 1, n, fp) == n)
        return MMCL_OK;
    if (ferror(fp))
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot read '%s': %s", path,
                           strerror(errno));
    return bad_file(ctx, path,
                    "file ends early (truncated, or changed "
                    "while being read)");
}

/* Bytes of a file's start looked at to say what a non-model file is. */
enum { MODEL_SNIFF_BYTES = 512 };

/* 1 when @p b (@p n bytes) is text: UTF-8 without control characters but
 * tab, CR and LF (a multi-byte character cut at the end is accepted). */
static int
looks_like_text(const unsigned char *b, size_t n)
{
    size_t bad = 0;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((b[i] < 0x20 && b[i] != '\t' && b[i] != '\n' && b[i] != '\r') ||
            b[i] == 0x7f)
            return 0;
    return utf8_valid(b, n, &bad) || n - bad < 4;
}

/* 1 when @p b (@p n bytes) holds the string @p s. */
static int
has_bytes(const unsigned char *b, size_t n, const char *s)
{
    size_t m = strlen(s);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(b + i, s, m) == 0)
            return 1;
    return 0;
}

/*
 * The raster driver GDAL opens @p path with ("PNG"), in @p out, or 0 when
 * GDAL has no driver registered or opens no raster. Quiet. Never through
 * mmcl's own driver, and never nested: a file opened here may lead GDAL to
 * load a model (a VRT whose source is a descriptor), whose failure must
 * not open files again (a cycle of such files would never end).
 */
static int
raster_driver(const char *path, char *out, size_t size)
{
    static _Thread_local int depth;
    GDALDatasetH ds;
    GDALDriverH drv;
    char **allowed = NULL;
    int ok = 0;
    if (depth > 0 || GDALGetDriverCount() == 0)
        return 0;
    for (int i = 0; i < GDALGetDriverCount(); i++) {
        const char *name = GDALGetDriverShortName(GDALGetDriver(i));
        if (strcmp(name, "MMCL") != 0)
            allowed = CSLAddString(allowed, name);
    }
    depth++;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY,
                    (const char *const *)allowed, NULL, NULL);
    CPLPopErrorHandler();
    CPLErrorReset();
    depth--;
    CSLDestroy(allowed);
    if (!ds)
        return 0;
    drv = GDALGetDatasetDriver(ds);
    if (drv) {
        snprintf(out, size, "%s", GDALGetDriverShortName(drv));
        ok = 1;
    }
    GDALClose(ds);
    return ok;
}

/*
 * Says what @p path is when its first bytes (@p head, @p n of them) are not
 * a model's start: a raster (by its TIFF signature), an mmcl lazy
 * descriptor, a raster GDAL opens, a text file, or else unknown binary,
 * showing the first 8 bytes (never as a length: they are none). The common
 * mistake is a raster given in the model's place (the model argument
 * forgotten).
 */
static mmcl_status
not_a_model(mmcl_context *ctx, const char *path, const unsigned char *head,
            size_t n)
{
    char drv[64];
    static const unsigned char tiff[4][4] = {{'I', 'I', 42, 0},
                                             {'M', 'M', 0, 42},
                                             {'I', 'I', 43, 0},
                                             {'M', 'M', 0, 43}};
    size_t i = 0;

    /* By signature first: no need to open it. */
    for (int k = 0; k < 4; k++)
        if (n >= 4 && memcmp(head, tiff[k], 4) == 0)
            return mmcl__error(ctx, MMCL_ERR_FORMAT,
                               "'%s' is a raster (GTiff%s), not an mmcl model",
                               path, k >= 2 ? ", BigTIFF" : "");
    while (i < n && (head[i] == ' ' || head[i] == '\t' || head[i] == '\n' ||
                     head[i] == '\r'))
        i++;
    if (i < n && head[i] == '{' && has_bytes(head, n, "\"mmcl_descriptor\"")) {
        /* A descriptor is small: when all of it was read, name its
         * product and model. */
        cJSON *d = n < MODEL_SNIFF_BYTES
                       ? cJSON_ParseWithLength((const char *)head, n)
                       : NULL;
        const char *product = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(d, "product"));
        const char *model =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "model"));
        mmcl_status st;
        if (product && model)
            st = mmcl__error(
                ctx, MMCL_ERR_FORMAT,
                "'%s' is an mmcl lazy descriptor (a%s %s "
                "computed when read, with the model '%s'), "
                "not an mmcl model",
                path, product[0] && strchr("aeiou", product[0]) ? "n" : "",
                product, model);
        else
            st = mmcl__error(ctx, MMCL_ERR_FORMAT,
                             "'%s' is an mmcl lazy descriptor (a product "
                             "computed when read), not an mmcl model",
                             path);
        cJSON_Delete(d);
        return st;
    }
    if (raster_driver(path, drv, sizeof(drv)))
        return mmcl__error(ctx, MMCL_ERR_FORMAT,
                           "'%s' is a raster (%s), not an mmcl model", path,
                           drv);
    if (looks_like_text(head, n)) {
        char start[48];
        size_t k = 0;
        for (size_t j = 0; j < n && k + 1 < sizeof(start) && k < 40; j++) {
            if (head[j] == '\n' || head[j] == '\r')
                break;
            /* Whole characters only: stop before a cut UTF-8 sequence. */
            if ((head[j] & 0xc0) != 0x80 && head[j] >= 0x80 && k + 5 > 40)
                break;
            start[k++] = head[j] == '\t' ? ' ' : (char)head[j];
        }
        start[k] = '\0';
        return mmcl__error(ctx, MMCL_ERR_FORMAT,
                           "'%s' is not an mmcl model (it starts with text, "
                           "\"%s%s\")",
                           path, start, k < n && head[k] != '\n' ? "..." : "");
    }
    return bad_file(ctx, path,
                    "not an mmcl model, or a corrupt one: its first 8 bytes "
                    "(%02x %02x %02x %02x %02x %02x %02x %02x) are no "
                    "header length under the 100 MB limit",
                    head[0], head[1], head[2], head[3], head[4], head[5],
                    head[6], head[7]);
}

/* What mmcl_model_load holds while it reads; freed by load_clear. */
typedef struct model_reader {
    const char *path;
    FILE *fp;
    uint64_t file_size, header_len, buffer_len;
    load_entry *entries;
    load_entry **order;
    size_t n;
    char *metadata;
} model_reader;

static void
load_clear(model_reader *r)
{
    if (r->entries) {
        for (size_t i = 0; i < r->n; i++)
            tensor_clear(&r->entries[i].t);
        free(r->entries);
    }
    free(r->order);
    free(r->metadata);
    if (r->fp)
        fclose(r->fp);
}

/* The file's size, checked to be a regular file with a header length. */
static mmcl_status
load_stat(mmcl_context *ctx, model_reader *r)
{
    struct stat sb;
    if (fstat(fileno(r->fp), &sb) != 0)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot read '%s': %s", r->path,
                           strerror(errno));
    if (!S_ISREG(sb.st_mode) || sb.st_size < 0)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "model '%s' is not a regular file", r->path);
    r->file_size = (uint64_t)sb.st_size;
    if (r->file_size < 8)
        return bad_file(ctx, r->path,
                        "file is %" PRIu64 " bytes long, shorter "
                        "than the 8-byte header length (truncated?)",
                        r->file_size);
    return MMCL_OK;
}

/* The header length, from the file's first bytes; what the file is when
 * they are no model's start. Leaves the file at the header. */
static mmcl_status
load_sniff(mmcl_context *ctx, model_reader *r)
{
    unsigned char head[MODEL_SNIFF_BYTES];
    size_t head_n = fread(head, 1, sizeof(head), r->fp);
    uint64_t file_size = r->file_size, header_len;
    if (head_n < 8)
        return read_exact(ctx, r->fp, r->path, head, 8); /* the read error */
    header_len = get_le64(head);
    /* A model's header is a JSON object: '{' follows the length. */
    if (header_len > MODEL_MAX_HEADER || header_len > file_size - 8 ||
        head[8] != '{') {
        if (header_len <= MODEL_MAX_HEADER && head[8] == '{')
            return bad_file(ctx, r->path,
                            "header length %" PRIu64 " runs past the "
                            "end of the file (%" PRIu64 " bytes, so at most "
                            "%" PRIu64 "; truncated?)",
                            header_len, file_size, file_size - 8);
        if (header_len <= MODEL_MAX_HEADER && header_len <= file_size - 8 &&
            !looks_like_text(head, head_n)) {
            /* A plausible length before a header that is no JSON object:
             * the header parser says what is wrong. */
        } else {
            return not_a_model(ctx, r->path, head, head_n);
        }
    }
    if (fseek(r->fp, 8, SEEK_SET) != 0)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot read '%s': %s", r->path,
                           strerror(errno));
    r->header_len = header_len;
    r->buffer_len = file_size - 8 - header_len;
    return MMCL_OK;
}

/* The JSON header: the tensor entries, their order in the buffer, and the
 * metadata. */
static mmcl_status
load_header(mmcl_context *ctx, model_reader *r)
{
    char *header = mmcl__malloc_array(ctx, (size_t)r->header_len + 1, 1, 1);
    if (!header)
        return MMCL_ERR_NO_MEMORY;
    mmcl_status st = read_exact(ctx, r->fp, r->path, header,
                                (size_t)r->header_len);
    if (st == MMCL_OK) {
        header[r->header_len] = '\0';
        st = parse_header(ctx, r->path, header, (size_t)r->header_len,
                          r->buffer_len, &r->entries, &r->order, &r->n,
                          &r->metadata);
    }
    free(header);
    return st;
}

/* The tensors' values, then a check that all of them are finite. */
static mmcl_status
load_tensors(mmcl_context *ctx, model_reader *r)
{
    /* The ranges tile the buffer in this order: read it front to back. */
    for (size_t i = 0; i < r->n; i++) {
        model_tensor *t = &r->order[i]->t;
        unsigned char *bytes;
        t->data = mmcl__malloc_array(ctx, t->count, sizeof(float), 1);
        if (!t->data)
            return MMCL_ERR_NO_MEMORY;
        bytes = (unsigned char *)t->data;
        mmcl_status st = read_exact(ctx, r->fp, r->path, bytes,
                                    t->count * sizeof(float));
        if (st != MMCL_OK)
            return st;
        /* In place: element j only reads and writes bytes 4j..4j+3. */
        for (size_t j = 0; j < t->count; j++)
            t->data[j] = get_le_f32(bytes + 4 * j);
    }
    const model_tensor *bad;
    size_t at;
    const char *what;
    /* One pass over the values: little next to reading them. */
    for (size_t i = 0; i < r->n; i++)
        if (first_nonfinite(&r->entries[i].t, 1, &bad, &at, &what))
            return bad_file(ctx, r->path,
                            "tensor '%s' holds %s at element %zu (a "
                            "diverged training, or a damaged file)",
                            bad->name, what, at);
    return MMCL_OK;
}

/* Moves the tensors and metadata read into @p model. */
static mmcl_status
load_into(mmcl_context *ctx, model_reader *r, mmcl_model *model)
{
    size_t n = r->n;
    if (n > 0) {
        model->tensors = mmcl__malloc_array(ctx, n, 1, sizeof(model_tensor));
        if (!model->tensors)
            return MMCL_ERR_NO_MEMORY;
        for (size_t i = 0; i < n; i++) { /* entries are sorted by name */
            model->tensors[i] = r->entries[i].t;
            r->entries[i].t.name = NULL;
            r->entries[i].t.data = NULL;
        }
        model->ntensors = n;
        model->cap = n;
    }
    free(model->metadata);
    model->metadata = r->metadata;
    r->metadata = NULL;

    /* Absolute, so that it names the same file whatever the folder. */
    model->source = realpath(r->path, NULL);
    if (!model->source)
        model->source = strdup(r->path);
    if (!model->source)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    return MMCL_OK;
}

mmcl_status
mmcl_model_load(mmcl_context *ctx, const char *path, mmcl_model **out)
{
    mmcl_status st;
    model_reader r = {0};
    mmcl_model *model = NULL;

    if (out)
        *out = NULL;
    if (!path || !out)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "mmcl_model_load: path and out must not be NULL");

    r.path = path;
    r.fp = fopen(path, "rb");
    if (!r.fp)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot open model '%s': %s", path,
                           strerror(errno));
    st = load_stat(ctx, &r);
    if (st == MMCL_OK)
        st = load_sniff(ctx, &r);
    if (st == MMCL_OK)
        st = load_header(ctx, &r);
    if (st == MMCL_OK)
        st = load_tensors(ctx, &r);
    if (st != MMCL_OK)
        goto done;

    model = mmcl_model_create(ctx);
    if (!model) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    st = load_into(ctx, &r, model);
    if (st != MMCL_OK)
        goto done;
    *out = model;
    model = NULL;

done:
    mmcl_model_destroy(model);
    load_clear(&r);
    return st;
}
