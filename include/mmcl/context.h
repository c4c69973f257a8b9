/* SPDX-License-Identifier: MIT */
/*
 * The context: per-thread state holding the last error message and an
 * optional log callback (PROJ's PJ_CONTEXT, SQLite's per-connection message).
 * Also the progress callback type, which is exactly GDAL's GDALProgressFunc.
 */
#ifndef MMCL_CONTEXT_H
#define MMCL_CONTEXT_H

#include <stddef.h>

#include "mmcl/error.h"
#include "mmcl/export.h"

MMCL_BEGIN_DECLS

typedef struct mmcl_context mmcl_context;

/**
 * Progress callback with GDAL's signature and meaning: @p complete goes from
 * 0 to 1, @p message may be NULL, and returning 0 asks the operation to stop
 * (it then fails with MMCL_ERR_CANCELLED). GDALTermProgress fits as is.
 */
typedef int (*mmcl_progress_fn)(double complete, const char *message,
                                void *user);

typedef enum mmcl_log_level {
    MMCL_LOG_ERROR = 1,
    MMCL_LOG_WARNING = 2,
    MMCL_LOG_INFO = 3,
    MMCL_LOG_DEBUG = 4
} mmcl_log_level;

/** Log callback: receives every error message and the library's notes. */
typedef void (*mmcl_log_fn)(mmcl_log_level level, const char *message,
                            void *user);

/**
 * New context. The first one made in a process also registers GDAL's
 * drivers (GDALAllRegister()) if the program has registered none, so that
 * a program can call mmcl without initializing GDAL itself; a program that
 * registers only some drivers keeps its choice.
 * @return A context that must be freed with mmcl_context_destroy(), or NULL
 *         when out of memory.
 * Thread-safety: a context is used by one thread at a time; make one per
 * thread.
 * @since 0.1
 */
MMCL_API mmcl_context *mmcl_context_create(void);

/** Frees @p ctx. NULL is allowed (no-op). @since 0.1 */
MMCL_API void mmcl_context_destroy(mmcl_context *ctx);

/**
 * Message for the most recent failing call made with @p ctx.
 * @return A string owned by @p ctx, valid until the next mmcl_* call that
 *         uses @p ctx. Empty string if nothing failed. Never NULL (also for
 *         a NULL @p ctx).
 * @since 0.1
 */
MMCL_API const char *mmcl_context_errmsg(const mmcl_context *ctx);

/** Status of the most recent failing call made with @p ctx (MMCL_OK if none). */
MMCL_API mmcl_status mmcl_context_errcode(const mmcl_context *ctx);

/**
 * Installs a log callback on @p ctx (NULL removes it). Messages at a level
 * above @p max_level are not passed on.
 * @since 0.1
 */
MMCL_API void mmcl_context_set_log(mmcl_context *ctx, mmcl_log_fn fn,
                                   void *user, mmcl_log_level max_level);

/** Library version string, e.g. "0.1.0". Never NULL. @since 0.1 */
MMCL_API const char *mmcl_version(void);

/**
 * Frees a buffer or string the library handed out (and said so).
 * NULL is allowed. @since 0.1
 */
MMCL_API void mmcl_free(void *ptr);

MMCL_END_DECLS

#endif /* MMCL_CONTEXT_H */
