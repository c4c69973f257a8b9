/* SPDX-License-Identifier: MIT */
/*
 * Context, error messages, logging, checked allocation and the thread
 * clock.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <time.h>

#include <gdal.h>

#include "context_internal.h"
#include "mmcl/options.h"

enum { MMCL__ERRMSG_SIZE = 2048 };

struct mmcl_context {
    mmcl_status code;
    char errmsg[MMCL__ERRMSG_SIZE];
    mmcl_log_fn log;
    void *log_user;
    mmcl_log_level log_max;
    mmcl_option_spelling spelling; /* how messages name options */
};

/* GDAL's drivers, registered by the library when the program has not
 * (a GDAL program or QGIS has; a small C program often forgets, and then
 * every output fails with "unknown output format 'GTiff'"). */
static once_flag gdal_once = ONCE_FLAG_INIT;

static void
gdal_register(void)
{
    if (GDALGetDriverCount() == 0)
        GDALAllRegister();
}

mmcl_context *
mmcl_context_create(void)
{
    call_once(&gdal_once, gdal_register);
    mmcl_context *ctx = calloc(1, sizeof(*ctx));
    if (ctx)
        ctx->log_max = MMCL_LOG_WARNING;
    return ctx;
}

void
mmcl_context_destroy(mmcl_context *ctx)
{
    free(ctx);
}

const char *
mmcl_context_errmsg(const mmcl_context *ctx)
{
    return ctx ? ctx->errmsg : "";
}

mmcl_status
mmcl_context_errcode(const mmcl_context *ctx)
{
    return ctx ? ctx->code : MMCL_OK;
}

void
mmcl_context_set_log(mmcl_context *ctx, mmcl_log_fn fn, void *user,
                     mmcl_log_level max_level)
{
    if (!ctx)
        return;
    ctx->log = fn;
    ctx->log_user = user;
    ctx->log_max = max_level;
}

void
mmcl_context_set_option_spelling(mmcl_context *ctx,
                                 mmcl_option_spelling spelling)
{
    if (ctx)
        ctx->spelling = spelling;
}

int
mmcl__context_option_spelling(const mmcl_context *ctx)
{
    return ctx ? (int)ctx->spelling : (int)MMCL_OPTION_SPELLING_KEY;
}

const char *
mmcl_version(void)
{
    return MMCL_VERSION_STRING;
}

void
mmcl_free(void *ptr)
{
    free(ptr);
}

const char *
mmcl_status_string(mmcl_status status)
{
    switch (status) {
    case MMCL_OK:
        return "success";
    case MMCL_ERR_INVALID_ARG:
        return "invalid argument";
    case MMCL_ERR_NO_MEMORY:
        return "out of memory";
    case MMCL_ERR_IO:
        return "input/output error";
    case MMCL_ERR_NUMERIC:
        return "numerical failure";
    case MMCL_ERR_UNSUPPORTED:
        return "unsupported data";
    case MMCL_ERR_CANCELLED:
        return "cancelled";
    case MMCL_ERR_EXISTS:
        return "output exists";
    case MMCL_ERR_FORMAT:
        return "invalid or unsupported file format";
    }
    return "unknown status";
}

mmcl_status
mmcl__error(mmcl_context *ctx, mmcl_status code, const char *fmt, ...)
{
    if (!ctx)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg, sizeof(ctx->errmsg), fmt, ap);
    va_end(ap);
    ctx->code = code;
    if (ctx->log && ctx->log_max >= MMCL_LOG_ERROR)
        ctx->log(MMCL_LOG_ERROR, ctx->errmsg, ctx->log_user);
    return code;
}

void
mmcl__log(mmcl_context *ctx, mmcl_log_level level, const char *fmt, ...)
{
    if (!ctx || !ctx->log || level > ctx->log_max)
        return;
    char msg[MMCL__ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ctx->log(level, msg, ctx->log_user);
}

void
mmcl__error_copy(mmcl_context *to, const mmcl_context *from)
{
    if (!to || !from)
        return;
    to->code = from->code;
    memcpy(to->errmsg, from->errmsg, sizeof(to->errmsg));
}

void
mmcl__error_clear(mmcl_context *ctx)
{
    if (!ctx)
        return;
    ctx->code = MMCL_OK;
    ctx->errmsg[0] = '\0';
}

static int
size_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

static void *
alloc_array(mmcl_context *ctx, size_t n, size_t m, size_t elem_size,
            int zero)
{
    size_t nm, bytes;
    if (!size_mul(n, m, &nm) || !size_mul(nm, elem_size, &bytes)) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                    "allocation of %zu x %zu x %zu bytes overflows", n, m,
                    elem_size);
        return NULL;
    }
    if (bytes == 0)
        bytes = 1;
    void *p = zero ? calloc(1, bytes) : malloc(bytes);
    if (!p)
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory allocating %zu bytes",
                    bytes);
    return p;
}

void *
mmcl__malloc_array(mmcl_context *ctx, size_t n, size_t m, size_t elem_size)
{
    return alloc_array(ctx, n, m, elem_size, 0);
}

void *
mmcl__calloc_array(mmcl_context *ctx, size_t n, size_t m, size_t elem_size)
{
    return alloc_array(ctx, n, m, elem_size, 1);
}

char *
mmcl__strdup(mmcl_context *ctx, const char *s)
{
    size_t len = strlen(s) + 1;
    char *d = mmcl__malloc_array(ctx, len, 1, 1);
    if (d)
        memcpy(d, s, len);
    return d;
}

double
mmcl__thread_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void
mmcl__text_add(mmcl__text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->s ? t->s + t->n : NULL, t->s ? t->cap - t->n : 0,
                          fmt, ap);
        va_end(ap);
        if (k < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && t->n + (size_t)k < t->cap) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = (t->cap ? 2 * t->cap : 4096) + (size_t)k;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}
