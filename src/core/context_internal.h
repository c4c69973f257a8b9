/* SPDX-License-Identifier: MIT */
/*
 * Private: how the library sets errors, logs and allocates. Whoever detects
 * an error calls mmcl__error() once; callers propagate the status without
 * adding another message.
 */
#ifndef MMCL_CONTEXT_INTERNAL_H
#define MMCL_CONTEXT_INTERNAL_H

#include <stddef.h>

#include "mmcl/context.h"

#if defined(__GNUC__)
#define MMCL__PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define MMCL__PRINTF(fmt, args)
#endif

/*
 * Formats a message into @p ctx (which may be NULL: then only the status is
 * returned), passes it to the log callback, and returns @p code.
 */
mmcl_status mmcl__error(mmcl_context *ctx, mmcl_status code, const char *fmt,
                        ...) MMCL__PRINTF(3, 4);

/* Sends a note to the log callback of @p ctx (no-op without one). */
void mmcl__log(mmcl_context *ctx, mmcl_log_level level, const char *fmt, ...)
    MMCL__PRINTF(3, 4);

/* How messages of calls made with @p ctx name options (an
 * mmcl_option_spelling; KEY for a NULL @p ctx). Spell them with
 * mmcl__opt_name() and mmcl__opt_setting() (options_internal.h). */
int mmcl__context_option_spelling(const mmcl_context *ctx);

/* Copies the error state (code and message) of @p from into @p to. */
void mmcl__error_copy(mmcl_context *to, const mmcl_context *from);

/* Clears the error state of @p ctx (start of a public call). */
void mmcl__error_clear(mmcl_context *ctx);

/*
 * malloc(n * m * elem_size) with overflow check; on failure sets
 * MMCL_ERR_NO_MEMORY in @p ctx and returns NULL. calloc variant zeroes.
 */
void *mmcl__malloc_array(mmcl_context *ctx, size_t n, size_t m,
                         size_t elem_size);
void *mmcl__calloc_array(mmcl_context *ctx, size_t n, size_t m,
                         size_t elem_size);

/* strdup that sets MMCL_ERR_NO_MEMORY on failure. */
char *mmcl__strdup(mmcl_context *ctx, const char *s);

/* CPU seconds used by the calling thread so far (for timing reports). */
double mmcl__thread_seconds(void);

/* Text grown by printf-style additions (a CSV, a QML style): s is
 * NUL-terminated, n its length; after a failed addition (no memory) the
 * text is left as it was and failed is set. free(s) when done. */
typedef struct mmcl__text {
    char *s;
    size_t n, cap;
    int failed;
} mmcl__text;

void mmcl__text_add(mmcl__text *t, const char *fmt, ...) MMCL__PRINTF(2, 3);

#endif /* MMCL_CONTEXT_INTERNAL_H */
