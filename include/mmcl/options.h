/* SPDX-License-Identifier: MIT */
/*
 * Options of the top-level operations (align, synth, train, ...), built from
 * NULL-terminated "KEY=VALUE" lists as PROJ and GDAL's utilities do. Unknown
 * keys and out-of-range values are errors that name the key.
 *
 * One static table per operation is the single source of truth for each
 * option's name, type, default, range, command-line spelling and help. It
 * drives the parser, `mmcl <command> --help`, `mmcl <command> --json-usage`
 * and the QGIS provider, and is exposed read-only by mmcl_option_defs().
 *
 * One options type serves every operation (instead of GDAL's one type per
 * utility): the object remembers the operation it was built for, and each
 * operation checks it, so the type safety lost is a run-time check.
 */
#ifndef MMCL_OPTIONS_H
#define MMCL_OPTIONS_H

#include <stddef.h>

#include "mmcl/context.h"
#include "mmcl/export.h"

MMCL_BEGIN_DECLS

typedef enum mmcl_option_type {
    MMCL_OPT_INT = 1,    /* integer, with optional min and max */
    MMCL_OPT_DOUBLE = 2, /* real number, with optional min and max */
    MMCL_OPT_STRING = 3, /* free text (a path, an SRS, a spec like lee:7) */
    MMCL_OPT_BOOL = 4,   /* YES/NO, TRUE/FALSE, ON/OFF, 1/0 */
    MMCL_OPT_ENUM = 5,   /* one of `choices` */
    MMCL_OPT_LIST = 6    /* may be given several times; values accumulate */
} mmcl_option_type;

/**
 * Who reads an option (a set of these bits). Every option is one of the
 * operation's (the library function's, or the program's), may concern only
 * the written output, and may be an open option of the lazy products.
 */
typedef enum mmcl_option_usage {
    /* Read by the library function of the operation (mmcl_embed, ...). */
    MMCL_OPT_USAGE_LIBRARY = 1,
    /* Read by the mmcl program only, around the library call (LAZY of
     * embed and infoloss, which writes a descriptor instead; OVERWRITE of
     * train, whose model the program saves). */
    MMCL_OPT_USAGE_PROGRAM = 2,
    /* Concerns how and where an output is written (FORMAT, CO, OVERWRITE,
     * REPORT, LAZY): meaningless for a product computed when read, so not
     * a key of a lazy descriptor. */
    MMCL_OPT_USAGE_OUTPUT = 4,
    /* For an operation with lazy products (embed, infoloss, rgb), also an
     * open option of them (GDAL -oo), overriding the descriptor's value. */
    MMCL_OPT_USAGE_OPEN = 8
} mmcl_option_usage;

/** One option of an operation. All strings are static. */
typedef struct mmcl_option_def {
    const char *name;          /* KEY, upper case */
    mmcl_option_type type;
    const char *default_value; /* NULL: unset unless given */
    const char *min;           /* numeric lower bound or NULL */
    const char *max;           /* numeric upper bound or NULL */
    const char *choices;       /* ENUM: "a|b|c"; else NULL */
    /*
     * Command-line spellings, space separated. "-r" takes an argument;
     * "--sar-db=db" is a switch that sets the value after '='; for BOOL
     * options a plain switch such as "--overwrite" sets YES.
     */
    const char *flags;
    const char *metavar; /* name of the argument in usage text, or NULL */
    const char *help;    /* one line */
    unsigned usage;      /* mmcl_option_usage bits (@since 0.1) */
} mmcl_option_def;

typedef struct mmcl_options mmcl_options;

/**
 * How the library's messages name an option. A C program, and GDAL's open
 * options of the lazy products, give options as KEY=VALUE, and the
 * messages name them so ("option DIM=0 is out of range"). A front end with
 * its own spelling tells the context: the mmcl program's messages name the
 * flag the user typed ("--dim 0 is out of range"), from the option
 * tables' flags.
 * @since 0.1
 */
typedef enum mmcl_option_spelling {
    MMCL_OPTION_SPELLING_KEY = 0, /* KEY=VALUE (default) */
    MMCL_OPTION_SPELLING_FLAG = 1 /* the mmcl program's flags */
} mmcl_option_spelling;

/**
 * Sets how the messages of calls made with @p ctx name options. NULL
 * @p ctx is a no-op.
 * @since 0.1
 */
MMCL_API void mmcl_context_set_option_spelling(mmcl_context *ctx,
                                               mmcl_option_spelling spelling);

/**
 * The option table of @p operation ("align", "synth", ...).
 * @param n  Receives the number of entries (0 for an unknown operation).
 *           Must not be NULL.
 * @return A static array, or NULL when @p operation is unknown.
 * Thread-safety: safe from any thread.
 * @since 0.1
 */
MMCL_API const mmcl_option_def *mmcl_option_defs(const char *operation,
                                                 size_t *n);

/**
 * NULL-terminated static list of the operations that have option tables.
 * @since 0.1
 */
MMCL_API const char *const *mmcl_operations(void);

/**
 * Parses @p kv, a NULL-terminated list of "KEY=VALUE" strings (a GDAL CSL
 * fits), for @p operation. NULL @p kv means all defaults. Keys are
 * case-insensitive.
 * @return New options, to be freed with mmcl_options_free(); NULL on error
 *         (unknown operation or key, bad value), with the reason in
 *         mmcl_context_errmsg(ctx).
 * @since 0.1
 */
MMCL_API mmcl_options *mmcl_options_new(mmcl_context *ctx,
                                        const char *operation,
                                        const char *const *kv);

/** Frees @p opts. NULL is allowed. @since 0.1 */
MMCL_API void mmcl_options_free(mmcl_options *opts);

/**
 * Sets the progress callback of the operation (NULL for none). @p user is
 * passed back to it. @since 0.1
 */
MMCL_API void mmcl_options_set_progress(mmcl_options *opts,
                                        mmcl_progress_fn progress, void *user);

/**
 * The value of @p key as text after parsing (the default when not given),
 * or NULL when unset or unknown. For LIST options, the last value.
 * @return A string owned by @p opts, valid until it is freed.
 * @since 0.1
 */
MMCL_API const char *mmcl_options_get(const mmcl_options *opts,
                                      const char *key);

MMCL_END_DECLS

#endif /* MMCL_OPTIONS_H */
