/* SPDX-License-Identifier: MIT */
/*
 * The mmcl program's shared pieces: the command table, argument parsing
 * driven by the library's option tables, and reporting.
 */
#ifndef MMCL_CLI_H
#define MMCL_CLI_H

#include <stddef.h>

#include "mmcl/mmcl.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2 };

/* Kinds of positional arguments, for --help and --json-usage. */
typedef enum cli_kind {
    CLI_RASTER_IN,
    CLI_RASTER_OUT,
    CLI_FILE_IN,
    CLI_FILE_OUT,
    CLI_FOLDER_OUT
} cli_kind;

typedef struct cli_positional {
    const char *name;
    cli_kind kind;
    int multiple; /* may be given several times (at most one per command) */
    const char *help;
    /* Also given by this repeatable option ("--sar"), or NULL. When the
     * option is given, the argument is not positional: every value of the
     * option, in order, and none of the positional arguments. */
    const char *flag;
    const char *flag_help; /* the option's line in --help */
} cli_positional;

/* What the generic parser hands to a command. */
typedef struct cli_args {
    const char **pos; /* positional arguments, in order */
    size_t n_pos;
    const char **flagged; /* the values of the positional's flag, in order */
    size_t n_flagged;
    char **kv;        /* KEY=VALUE list for mmcl_options_new (CSL) */
    int quiet;
    int json;
} cli_args;

typedef struct cli_command {
    const char *name;
    const char *summary;
    const char *operation; /* option table, or NULL */
    const cli_positional *positional;
    size_t n_positional;
    int has_json; /* accepts --json */
    int (*run)(const struct cli_command *cmd, const cli_args *args);
} cli_command;

extern const cli_command cli_commands[];
extern const size_t cli_n_commands;

/* Where a command's progress bar goes: nowhere (-q), stdout (GDAL's
 * terminal progress) or stderr (with --json, whose stdout is the JSON). */
typedef enum cli_progress_mode {
    CLI_PROGRESS_NONE,
    CLI_PROGRESS_STDOUT,
    CLI_PROGRESS_STDERR
} cli_progress_mode;

/* Installs the program's progress callback on opts, in every mode: it also
 * turns SIGINT and SIGTERM into a cancel, so that an interrupted command
 * removes its temporary files and leaves no output. */
void cli_set_progress(mmcl_options *opts, const cli_args *a);

/* Ends a progress line that is still open (a newline on its stream) and
 * flushes stdout: what is printed next starts a line of its own. */
void cli_end_progress_line(void);

/* Whether SIGINT or SIGTERM asked the program to stop. */
int cli_interrupted(void);

/* The SAR of a command taking the pair, and the optical before it: the
 * --sar files when given (every positional from @p first to the
 * @p n_after last is then optical), else the positional argument before
 * the @p n_after last. */
typedef struct cli_pair {
    const char *const *optical;
    size_t n_optical;
    const char *const *sar;
    size_t n_sar;
} cli_pair;
cli_pair cli_get_pair(const cli_args *a, size_t first, size_t n_after);

/* Prints "ERROR <code>: mmcl <cmd>: <message>" on stderr; returns 1. */
int cli_fail(const char *cmd, mmcl_context *ctx);

#endif /* MMCL_CLI_H */
