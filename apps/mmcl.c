/* SPDX-License-Identifier: MIT */
/*
 * The mmcl program: GDAL's general options, subcommand dispatch, and the
 * argument parser, help and machine-readable usage driven by the library's
 * option tables (so the program, the GDAL plugin and QGIS never disagree).
 */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv, execv, stat */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>

#include "cli.h"

enum {
    MMCL_CLI_CACHE_MB = 256 /* default GDAL block cache */
};

static const char *const kind_names[] = {"raster_in", "raster_out", "file_in",
                                         "file_out", "folder_out"};

static const char *const type_names[] = {"",       "int",  "double", "string",
                                         "bool",   "enum", "list"};

/* Why the program runs OpenBLAS's own kernel although this CPU runs a
 * better one (it could not execute itself again), for CPLDebug once GDAL's
 * --debug is parsed; empty when it did not have to try. */
static char blas_note[256];

#if defined(__linux__)
/* The path the program was executed by (AT_EXECFN, as given to execve),
 * if it still names this program's file (/proc/self/exe), else NULL: a
 * loader running the program ("ld-linux-x86-64.so.2 mmcl ARGS") records
 * the program there, but /proc/self/exe is then the loader, which would
 * take the arguments for its own. Executing this path rather than
 * /proc/self/exe keeps the process name ("mmcl", not "exe") that ps,
 * pgrep and QGIS go by. */
static const char *
program_path(void)
{
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    struct stat named, self;
    if (execfn && stat(execfn, &named) == 0 &&
        stat("/proc/self/exe", &self) == 0 && named.st_dev == self.st_dev &&
        named.st_ino == self.st_ino)
        return execfn;
    return NULL;
}
#endif

/* OpenBLAS picks its kernel when it is loaded, before main(), and only
 * OPENBLAS_CORETYPE changes that choice (include/mmcl/blas.h). When it
 * fell back to a generic kernel that this CPU outgrows, set the variable
 * (and MMCL_BLAS_DETECTED, for --version) and execute the program again
 * with the same arguments: the process id, standard streams and the
 * signal dispositions it inherited stay. This runs first, before anything
 * is printed or opened. A user's OPENBLAS_CORETYPE is always kept, and the
 * program run again has the variable set, so it does not loop. If the
 * program cannot execute itself, it goes on with OpenBLAS's kernel. */
static void
choose_blas_kernel(char **argv)
{
#if defined(__linux__)
    /* align does no BLAS work: the kernel does not matter to it, and a
     * second execution would only load the program and its libraries
     * twice (about 0.1 s, a tenth of aligning 4096 x 4096 pixels). */
    if (argv[0] && argv[1] && strcmp(argv[1], "align") == 0)
        return;
    mmcl_blas_info info;
    mmcl_blas_info_get(&info);
    if (info.origin != MMCL_BLAS_KERNEL_OPENBLAS || !info.better[0])
        return;
    const char *path = program_path();
    if (!path) {
        snprintf(blas_note, sizeof(blas_note),
                 "not executing the program again with "
                 "OPENBLAS_CORETYPE=%s: the file it was started as is not "
                 "/proc/self/exe (run through a loader?)",
                 info.better);
        return;
    }
    if (setenv(MMCL_BLAS_DETECTED_ENV, info.detected, 1) == 0 &&
        setenv("OPENBLAS_CORETYPE", info.better, 1) == 0)
        execv(path, argv);
    snprintf(blas_note, sizeof(blas_note),
             "could not execute %s again with OPENBLAS_CORETYPE=%s: %s", path,
             info.better, strerror(errno));
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(MMCL_BLAS_DETECTED_ENV);
#else
    (void)argv;
#endif
}

/* ", kernel K (who chose it)" for --version. */
static void
print_blas_kernel(const mmcl_blas_info *b)
{
    if (!b->kernel[0])
        return;
    printf(", kernel %s", b->kernel);
    switch (b->origin) {
    case MMCL_BLAS_KERNEL_MMCL:
        printf(" (chosen by mmcl: OpenBLAS detected %s, which this CPU "
               "outgrows)",
               b->detected);
        break;
    case MMCL_BLAS_KERNEL_USER:
        printf(" (OPENBLAS_CORETYPE=%s set by the user)",
               getenv("OPENBLAS_CORETYPE"));
        break;
    case MMCL_BLAS_KERNEL_OPENBLAS:
        if (b->better[0])
            printf(" (detected by OpenBLAS, which this CPU outgrows: set "
                   "OPENBLAS_CORETYPE=%s)",
                   b->better);
        else
            printf(" (detected by OpenBLAS)");
        break;
    }
}

/* "Encoders: ..." for --version: the engine of the encoders' products,
 * oneDNN's ISA and the precisions this CPU runs. */
static void
print_engine(void)
{
    mmcl_engine_info e;
    mmcl_engine_info_get(&e);
    if (e.dnnl)
        printf("Encoders: %s (%s, one thread per worker), ISA %s; "
               "--precision f32%s\n",
               e.name, e.runtime, e.isa,
               e.bf16 ? "|bf16" : " (bf16 needs AVX-512 BF16 or AMX)");
    else
        printf("Encoders: %s (%s); --precision f32\n", e.name, e.why);
}

/* mmcl --version: the first line is read by scripts; keep it as it is. */
static void
print_version(void)
{
    printf("mmcl %s (GDAL %s)\n", mmcl_version(),
           GDALVersionInfo("RELEASE_NAME"));
    mmcl_blas_info b;
    mmcl_blas_info_get(&b);
    printf("BLAS: %s", b.library);
    print_blas_kernel(&b);
    printf(", %d thread%s\n", b.threads, b.threads == 1 ? "" : "s");
    print_engine();
}

/* Whether a progress line is open (started and not at 100%). */
static int progress_open;

/* The signal that asked the program to stop (SIGINT, SIGTERM), or 0. The
 * progress callback then returns FALSE, the library stops and removes its
 * temporary files, and main() ends the program with the same signal. */
static volatile sig_atomic_t stop_signal;

static void
on_stop_signal(int sig)
{
    stop_signal = sig;
    signal(sig, SIG_DFL); /* a second one ends the program at once */
}

/* GDALTermProgress's "0...10...20..." on stderr, for --json runs whose
 * stdout holds the JSON. */
static int stderr_step = -1; /* last 2.5% step printed on stderr */

static void
progress_stderr(double complete)
{
    int last = stderr_step;
    int step = (int)(complete * 40.0 + 1e-9);
    if (step < last && !(step == 40 && last == 41)) /* a new bar */
        last = -1;
    while (last < step && last < 40) {
        last++;
        if (last % 4 == 0)
            fprintf(stderr, "%d", last / 4 * 10);
        else
            fputc('.', stderr);
    }
    if (last == 40) {
        fputs(" - done.\n", stderr);
        last = 41;
    }
    stderr_step = last;
    fflush(stderr);
}

int
cli_interrupted(void)
{
    return stop_signal != 0;
}

static int
cli_progress(double complete, const char *message, void *user)
{
    cli_progress_mode mode = *(const cli_progress_mode *)user;
    if (stop_signal)
        return FALSE;
    if (mode == CLI_PROGRESS_STDERR) {
        progress_stderr(complete);
        return TRUE;
    }
    if (mode != CLI_PROGRESS_STDOUT)
        return TRUE;
    progress_open = complete < 1.0;
    int go_on = GDALTermProgress(complete, message, NULL);
    /* GDALTermProgress leaves its last " - done." in the buffer of a
     * piped stdout, where the notes printed on stderr next would pass it
     * ("...90canonical correlations: ..."). */
    fflush(stdout);
    return go_on;
}

void
cli_end_progress_line(void)
{
    if (progress_open)
        fputc('\n', stdout);
    progress_open = 0;
    fflush(stdout);
    if (stderr_step >= 0 && stderr_step <= 40) /* an open line on stderr */
        fputc('\n', stderr);
    stderr_step = -1;
}

void
cli_set_progress(mmcl_options *opts, const cli_args *a)
{
    static cli_progress_mode mode;
    mode = a->quiet  ? CLI_PROGRESS_NONE
           : a->json ? CLI_PROGRESS_STDERR
                     : CLI_PROGRESS_STDOUT;
    mmcl_options_set_progress(opts, cli_progress, &mode);
}

int
cli_fail(const char *cmd, mmcl_context *ctx)
{
    const char *msg = mmcl_context_errmsg(ctx);
    /* Under MPI, a rank's failure reaches rank 0, which reports the job's
     * one message. */
    if (mmcl_mpi_rank() != 0)
        return CLI_EXIT_FAILURE;
    /* End a progress line the failure interrupted (progress is on stdout,
     * as in GDAL's utilities). */
    cli_end_progress_line();
    if (stop_signal)
        fprintf(stderr, "ERROR %d: mmcl %s: interrupted by %s; nothing was "
                        "written\n",
                (int)MMCL_ERR_CANCELLED, cmd,
                stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
    else
        fprintf(stderr, "ERROR %d: mmcl %s: %s\n",
                (int)mmcl_context_errcode(ctx), cmd, *msg ? msg : "failed");
    return CLI_EXIT_FAILURE;
}

/* Ranks other than 0 keep GDAL's warnings to themselves: rank 0 posts the
 * same ones once. */
static void CPL_STDCALL
rank_error_handler(CPLErr cls, CPLErrorNum num, const char *msg)
{
    if (cls == CE_Failure || cls == CE_Fatal)
        CPLDefaultErrorHandler(cls, num, msg);
}

/* MPI, when the program was started by a launcher (docs/mpi.md): the
 * commands that share their tiles among ranks run on all of them, rank 0
 * with the progress bar and the messages; any other command is refused
 * with several ranks, since every rank would write the same output. */
static int
mpi_start(const cli_command *cmd, cli_args *a)
{
    mmcl_context *ctx = mmcl_context_create();
    if (!ctx)
        return -1;
    int rc = 0;
    if (mmcl_mpi_init(ctx, NULL, NULL) != MMCL_OK) {
        if (mmcl_mpi_rank() == 0)
            fprintf(stderr, "ERROR %d: mmcl %s: %s\n",
                    (int)mmcl_context_errcode(ctx), cmd->name,
                    mmcl_context_errmsg(ctx));
        rc = -1;
    } else if (mmcl_mpi_size() > 1) {
        int shared = strcmp(cmd->name, "embed") == 0 ||
                     strcmp(cmd->name, "infoloss") == 0 ||
                     strcmp(cmd->name, "align") == 0 ||
                     strcmp(cmd->name, "train") == 0;
        if (!shared) {
            if (mmcl_mpi_rank() == 0)
                fprintf(stderr,
                        "ERROR 1: mmcl %s: started on %d MPI ranks, but only "
                        "embed, infoloss, align and train share their work "
                        "among ranks: run %s once, without the launcher\n",
                        cmd->name, mmcl_mpi_size(), cmd->name);
            rc = -1;
        } else if (mmcl_mpi_rank() != 0) {
            a->quiet = 1;
            CPLSetErrorHandler(rank_error_handler);
        }
    }
    mmcl_context_destroy(ctx);
    return rc;
}

static const cli_command *
find_command(const char *name)
{
    for (size_t i = 0; i < cli_n_commands; i++)
        if (strcmp(cli_commands[i].name, name) == 0)
            return &cli_commands[i];
    return NULL;
}

/* Does @p arg match one spelling in the space-separated @p flags? On a
 * match, *value is the value a switch sets ("=db") or NULL. */
static int
match_flag(const char *flags, const char *arg, const char **value)
{
    size_t len = strlen(arg);
    const char *p = flags;
    while (p && *p) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t name_len = eq ? (size_t)(eq - p) : n;
        if (name_len == len && strncmp(p, arg, len) == 0) {
            static char buf[64];
            *value = NULL;
            if (eq) {
                size_t vl = n - name_len - 1;
                if (vl >= sizeof(buf))
                    vl = sizeof(buf) - 1;
                memcpy(buf, eq + 1, vl);
                buf[vl] = '\0';
                *value = buf;
            }
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

cli_pair
cli_get_pair(const cli_args *a, size_t first, size_t n_after)
{
    cli_pair p;
    p.optical = a->pos + first;
    if (a->n_flagged > 0) {
        p.n_optical = a->n_pos - first - n_after;
        p.sar = a->flagged;
        p.n_sar = a->n_flagged;
    } else {
        p.n_optical = a->n_pos - first - n_after - 1;
        p.sar = a->pos + a->n_pos - n_after - 1;
        p.n_sar = 1;
    }
    return p;
}

/* The positional argument that may be given by a flag, or NULL. */
static const cli_positional *
flagged_positional(const cli_command *cmd)
{
    for (size_t i = 0; i < cmd->n_positional; i++)
        if (cmd->positional[i].flag)
            return &cmd->positional[i];
    return NULL;
}

static void
print_usage_line(FILE *f, const cli_command *cmd)
{
    const cli_positional *fp = flagged_positional(cmd);
    for (int form = 0; form < (fp ? 2 : 1); form++) {
        fprintf(f,
                form ? "   or: mmcl %s [options]" : "Usage: mmcl %s [options]",
                cmd->name);
        for (size_t i = 0; i < cmd->n_positional; i++) {
            const cli_positional *p = &cmd->positional[i];
            if (form && p == fp)
                fprintf(f, " %s %s [%s %s...]", p->flag, p->name, p->flag,
                        p->name);
            else
                fprintf(f, p->multiple ? " %s [%s...]" : " %s", p->name,
                        p->name);
        }
        fputc('\n', f);
    }
}

/* The head of an option's line in --help: its spellings as the user
 * types them ("--sar-db, --sar-linear, --sar-transform none|db|linear"),
 * switches without the value they set (the table's "--sar-db=db"). */
static void
option_head(const mmcl_option_def *d, char *head, size_t size)
{
    size_t used = 0;
    head[0] = '\0';
    char **f = CSLTokenizeString2(d->flags ? d->flags : "", " ", 0);
    for (int k = 0; f && f[k] && used < size; k++) {
        char *eq = strchr(f[k], '=');
        if (eq)
            *eq = '\0';
        int takes_value = !eq && d->type != MMCL_OPT_BOOL && d->metavar;
        int w = snprintf(head + used, size - used, "%s%s%s%s",
                         k ? ", " : "", f[k], takes_value ? " " : "",
                         takes_value ? d->metavar : "");
        if (w < 0)
            break;
        used += (size_t)w;
    }
    CSLDestroy(f);
}

static void
print_help(const cli_command *cmd)
{
    print_usage_line(stdout, cmd);
    printf("\n%s.\n\nArguments:\n", cmd->summary);
    for (size_t i = 0; i < cmd->n_positional; i++)
        printf("  %-24s %s\n", cmd->positional[i].name,
               cmd->positional[i].help);
    printf("\nOptions:\n");
    const cli_positional *fp = flagged_positional(cmd);
    if (fp) {
        char head[64];
        snprintf(head, sizeof(head), "%s %s", fp->flag, fp->name);
        printf("  %-24s %s\n", head, fp->flag_help);
    }
    size_t n = 0;
    const mmcl_option_def *defs = mmcl_option_defs(cmd->operation, &n);
    for (size_t i = 0; i < n; i++) {
        const mmcl_option_def *d = &defs[i];
        char head[192];
        option_head(d, head, sizeof(head));
        if (strlen(head) > 24)
            printf("  %s\n  %-24s %s", head, "", d->help);
        else
            printf("  %-24s %s", head, d->help);
        if (d->default_value && d->type != MMCL_OPT_BOOL)
            printf(" [default: %s]", d->default_value);
        if (d->type == MMCL_OPT_ENUM && !(d->metavar && strchr(d->metavar, '|')))
            printf(" {%s}", d->choices);
        printf("\n");
    }
    printf("  %-24s %s\n", "-q, --quiet", "no progress bar");
    if (cmd->has_json)
        printf("  %-24s %s\n", "--json", "print the figures as JSON");
    printf("  %-24s %s\n", "--json-usage",
           "describe this command's arguments as JSON");
    printf("\nGeneral GDAL options (--config KEY VALUE, --debug on, "
           "--formats, ...): mmcl --help-general\n");
}

static cJSON *
usage_json(const cli_command *cmd)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "command", cmd->name);
    cJSON_AddStringToObject(c, "summary", cmd->summary);
    cJSON_AddBoolToObject(c, "json_output", cmd->has_json);
    cJSON *pos = cJSON_AddArrayToObject(c, "positional");
    for (size_t i = 0; i < cmd->n_positional; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", cmd->positional[i].name);
        cJSON_AddStringToObject(p, "kind", kind_names[cmd->positional[i].kind]);
        cJSON_AddBoolToObject(p, "multiple", cmd->positional[i].multiple);
        cJSON_AddStringToObject(p, "help", cmd->positional[i].help);
        if (cmd->positional[i].flag) {
            cJSON_AddStringToObject(p, "flag", cmd->positional[i].flag);
            cJSON_AddStringToObject(p, "flag_help",
                                    cmd->positional[i].flag_help);
        }
        cJSON_AddItemToArray(pos, p);
    }
    cJSON *opts = cJSON_AddArrayToObject(c, "options");
    size_t n = 0;
    const mmcl_option_def *defs = mmcl_option_defs(cmd->operation, &n);
    for (size_t i = 0; i < n; i++) {
        const mmcl_option_def *d = &defs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", d->name);
        cJSON_AddStringToObject(o, "type", type_names[d->type]);
        if (d->default_value)
            cJSON_AddStringToObject(o, "default", d->default_value);
        else
            cJSON_AddNullToObject(o, "default");
        if (d->min)
            cJSON_AddStringToObject(o, "min", d->min);
        if (d->max)
            cJSON_AddStringToObject(o, "max", d->max);
        if (d->choices) {
            char **ch = CSLTokenizeString2(d->choices, "|", 0);
            cJSON *arr = cJSON_AddArrayToObject(o, "choices");
            for (int k = 0; ch && ch[k]; k++)
                cJSON_AddItemToArray(arr, cJSON_CreateString(ch[k]));
            CSLDestroy(ch);
        }
        cJSON *fl = cJSON_AddArrayToObject(o, "flags");
        char **f = CSLTokenizeString2(d->flags ? d->flags : "", " ", 0);
        for (int k = 0; f && f[k]; k++) {
            cJSON *fo = cJSON_CreateObject();
            char *eq = strchr(f[k], '=');
            if (eq) {
                *eq = '\0';
                cJSON_AddStringToObject(fo, "flag", f[k]);
                cJSON_AddStringToObject(fo, "sets", eq + 1);
            } else {
                cJSON_AddStringToObject(fo, "flag", f[k]);
                cJSON_AddBoolToObject(fo, "takes_value",
                                      d->type != MMCL_OPT_BOOL);
            }
            cJSON_AddItemToArray(fl, fo);
        }
        CSLDestroy(f);
        if (d->metavar)
            cJSON_AddStringToObject(o, "metavar", d->metavar);
        cJSON_AddStringToObject(o, "help", d->help);
        static const struct {
            unsigned bit;
            const char *word;
        } usages[] = {{MMCL_OPT_USAGE_LIBRARY, "library"},
                      {MMCL_OPT_USAGE_PROGRAM, "program"},
                      {MMCL_OPT_USAGE_OUTPUT, "output"},
                      {MMCL_OPT_USAGE_OPEN, "open"}};
        cJSON *us = cJSON_AddArrayToObject(o, "usage");
        for (size_t k = 0; k < sizeof(usages) / sizeof(usages[0]); k++)
            if (d->usage & usages[k].bit)
                cJSON_AddItemToArray(us, cJSON_CreateString(usages[k].word));
        cJSON_AddItemToArray(opts, o);
    }
    return c;
}

static int
print_json(cJSON *j)
{
    char *s = cJSON_Print(j);
    int ok = s != NULL;
    if (s)
        printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(j);
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

#ifndef MMCL_GDAL_PLUGIN_DIR
#define MMCL_GDAL_PLUGIN_DIR "(GDAL's plugin folder)"
#endif

/* The BLAS kernel of processes that load the plugin (QGIS, gdal_translate,
 * Python): they run what OpenBLAS detects unless OPENBLAS_CORETYPE is set
 * in their environment, and cannot execute themselves again as the mmcl
 * program does. */
static void
print_plugin_blas(void)
{
    mmcl_blas_info b;
    mmcl_blas_info_get(&b);
    printf("  BLAS:         %s", b.library);
    print_blas_kernel(&b);
    printf("\n");
    const char *fallback = NULL, *better = NULL;
    if (b.origin == MMCL_BLAS_KERNEL_MMCL) {
        fallback = b.detected;
        better = b.kernel;
    } else if (b.origin == MMCL_BLAS_KERNEL_OPENBLAS && b.better[0]) {
        fallback = b.detected;
        better = b.better;
    }
    if (fallback)
        printf("  Processes that load the plugin (QGIS, gdal_translate, "
               "Python) get OpenBLAS's '%s' kernel, which this CPU "
               "outgrows: matrix products run slower than they could.\n"
               "  To fix: set OPENBLAS_CORETYPE=%s in their environment "
               "before starting them.\n",
               fallback, better);
    else if (b.origin == MMCL_BLAS_KERNEL_USER)
        printf("  Processes that load the plugin run this kernel only if "
               "OPENBLAS_CORETYPE is set in their environment too.\n");
}

/* mmcl --check-plugin: does GDAL find the MMCL driver, and where from? */
static int
check_plugin(void)
{
    const char *env = CPLGetConfigOption("GDAL_DRIVER_PATH", NULL);
    GDALDriverH drv = GDALGetDriverByName("MMCL");
    if (drv) {
        const char *file = GDALGetMetadataItem(drv, "MMCL_PLUGIN_FILE", NULL);
        const char *ver = GDALGetMetadataItem(drv, "MMCL_VERSION", NULL);
        printf("GDAL driver MMCL: found\n");
        printf("  plugin file:  %s\n", file ? file : "(unknown)");
        printf("  built with:   mmcl %s, running with mmcl %s, GDAL %s\n",
               ver ? ver : "?", mmcl_version(),
               GDALVersionInfo("RELEASE_NAME"));
    } else {
        printf("GDAL driver MMCL: not found\n");
    }
    if (env)
        printf("  searched:     GDAL_DRIVER_PATH=%s (replaces GDAL's own "
               "plugin folder)\n",
               env);
    else
        printf("  searched:     GDAL's plugin folder %s (GDAL_DRIVER_PATH is "
               "not set)\n",
               MMCL_GDAL_PLUGIN_DIR);
    if (!drv)
        printf("  To use it: set GDAL_DRIVER_PATH to the folder holding "
               "gdal_MMCL.so (the build folder's plugin/), or install it "
               "with cmake --install.\n");
    else if (strcmp(GDALGetMetadataItem(drv, "MMCL_VERSION", NULL)
                        ? GDALGetMetadataItem(drv, "MMCL_VERSION", NULL)
                        : "",
                    mmcl_version()) != 0)
        printf("  Warning: the plugin was built for another mmcl version.\n");
    print_plugin_blas();
    return drv ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

static void
print_main_help(void)
{
    printf("mmcl %s: joint embeddings of optical and SAR rasters, and maps of "
           "what each\nmodality loses when aligned with the other.\n\n"
           "Usage: mmcl COMMAND [options] ARGS...\n\nCommands:\n",
           mmcl_version());
    for (size_t i = 0; i < cli_n_commands; i++)
        printf("  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
    printf("\n  mmcl COMMAND --help      options of a command\n"
           "  mmcl --json-usage        every command's arguments as JSON\n"
           "  mmcl --version           version of mmcl, GDAL and the BLAS\n"
           "  mmcl --check-plugin      whether GDAL finds the MMCL driver "
           "(lazy products) and where\n"
           "  mmcl --help-general      GDAL's general options (--config, "
           "--debug, --formats)\n");
}

/* Parses the arguments after the command name. Returns -1 to go on, or an
 * exit code (help printed, usage error). */
static int
parse_args(const cli_command *cmd, int argc, char **argv, cli_args *a)
{
    size_t n_defs = 0;
    const mmcl_option_def *defs = mmcl_option_defs(cmd->operation, &n_defs);
    const cli_positional *fp = flagged_positional(cmd);
    int only_positional = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            a->pos[a->n_pos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help(cmd);
            return CLI_EXIT_OK;
        }
        if (strcmp(arg, "--json-usage") == 0)
            return print_json(usage_json(cmd));
        if (strcmp(arg, "-q") == 0 || strcmp(arg, "--quiet") == 0) {
            a->quiet = 1;
            continue;
        }
        if (cmd->has_json && strcmp(arg, "--json") == 0) {
            a->json = 1;
            continue;
        }
        if (fp && strcmp(arg, fp->flag) == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ERROR 1: mmcl %s: option %s needs a value\n",
                        cmd->name, arg);
                return CLI_EXIT_USAGE;
            }
            a->flagged[a->n_flagged++] = argv[++i];
            continue;
        }
        size_t k;
        const char *value = NULL;
        for (k = 0; k < n_defs; k++)
            if (defs[k].flags && match_flag(defs[k].flags, arg, &value))
                break;
        if (k == n_defs) {
            fprintf(stderr,
                    "ERROR 1: mmcl %s: unknown option '%s'; see 'mmcl %s "
                    "--help'\n",
                    cmd->name, arg, cmd->name);
            return CLI_EXIT_USAGE;
        }
        if (!value && defs[k].type == MMCL_OPT_BOOL) {
            value = "YES";
        } else if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ERROR 1: mmcl %s: option %s needs a value\n",
                        cmd->name, arg);
                return CLI_EXIT_USAGE;
            }
            value = argv[++i];
        }
        a->kv = CSLAddString(a->kv, CPLSPrintf("%s=%s", defs[k].name, value));
    }

    /* Count check: a 'multiple' positional takes what the others leave;
     * one given by its flag is not counted. */
    size_t min = 0;
    int has_multiple = 0;
    for (size_t i = 0; i < cmd->n_positional; i++) {
        if (a->n_flagged == 0 || &cmd->positional[i] != fp)
            min++;
        has_multiple |= cmd->positional[i].multiple;
    }
    if (a->n_pos < min || (!has_multiple && a->n_pos > min)) {
        fprintf(stderr, "ERROR 1: mmcl %s: expected %s%zu argument%s, got %zu\n",
                cmd->name, has_multiple ? "at least " : "", min,
                min == 1 ? "" : "s", a->n_pos);
        print_usage_line(stderr, cmd);
        return CLI_EXIT_USAGE;
    }
    return -1;
}

int
main(int argc, char **argv)
{
    choose_blas_kernel(argv); /* first: it may execute the program again */

    /* --version is ours; GDAL's general options (--config, --debug,
     * --formats, --help-general, ...) go through GDAL's processor. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            print_version();
            return CLI_EXIT_OK;
        }
        if (argv[i][0] != '-')
            break;
    }
    GDALAllRegister();
    argc = GDALGeneralCmdLineProcessor(argc, &argv, 0);
    if (argc < 1) {
        GDALDestroyDriverManager();
        return argc == 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    if (blas_note[0])
        CPLDebug("MMCL", "%s", blas_note);
    /* mmcl streams: each input block is needed by one row of tiles and,
     * for the halo, by the rows above and below; each output block is
     * written once. A cache of about two rows of input blocks is enough,
     * and GDAL's default (5% of the RAM) only holds memory. Unless the
     * user set GDAL_CACHEMAX (environment or --config), use 256 MB: less
     * makes wide rasters decode their input blocks twice or three times.
     * The maps (embed, infoloss) keep a tile's top halo from the tile
     * above, but the bottom halo's blocks are the next row's: with 64 MB
     * a 4096-pixel-wide stack of 15 float bands (63 MB a row of blocks)
     * decoded every block twice, and a light model (CCA) spent 10.7 CPU s
     * reading instead of 6.3 (bench/README.md, "MPI"). An audit reads an
     * embedding raster whose decoded blocks are megabytes each; its
     * windows' halo reaches into the row of blocks above too. */
    if (!CPLGetConfigOption("GDAL_CACHEMAX", NULL))
        GDALSetCacheMax64((GIntBig)MMCL_CLI_CACHE_MB * 1024 * 1024);

    int rc = CLI_EXIT_USAGE;
    cli_args a = {0};
    char cmd_name[32] = "";
    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        print_main_help();
        rc = argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
        goto done;
    }
    if (strcmp(argv[1], "--check-plugin") == 0) {
        rc = check_plugin();
        goto done;
    }
    if (strcmp(argv[1], "--json-usage") == 0) {
        cJSON *all = cJSON_CreateObject();
        cJSON_AddStringToObject(all, "program", "mmcl");
        cJSON_AddStringToObject(all, "version", mmcl_version());
        cJSON *cmds = cJSON_AddArrayToObject(all, "commands");
        for (size_t i = 0; i < cli_n_commands; i++)
            cJSON_AddItemToArray(cmds, usage_json(&cli_commands[i]));
        rc = print_json(all);
        goto done;
    }
    const cli_command *cmd = find_command(argv[1]);
    if (!cmd) {
        fprintf(stderr, "ERROR 1: mmcl: unknown command '%s'; see 'mmcl "
                        "--help'\n",
                argv[1]);
        goto done;
    }
    snprintf(cmd_name, sizeof(cmd_name), "%s", cmd->name);
    a.pos = calloc((size_t)argc, sizeof(char *));
    a.flagged = calloc((size_t)argc, sizeof(char *));
    if (!a.pos || !a.flagged) {
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    rc = parse_args(cmd, argc - 2, argv + 2, &a);
    if (rc < 0) {
        /* MPI first: the signal handlers below are then ours. */
        int mpi_ok = mpi_start(cmd, &a) == 0;
        signal(SIGINT, on_stop_signal);
        signal(SIGTERM, on_stop_signal);
        /* A write over the file size limit (ulimit -f) fails with EFBIG
         * and is reported, instead of killing the program mid-write. */
        signal(SIGXFSZ, SIG_IGN);
        rc = mpi_ok ? cmd->run(cmd, &a) : CLI_EXIT_FAILURE;
        mmcl_mpi_finalize();
    }

done:
    free(a.pos);
    free(a.flagged);
    CSLDestroy(a.kv);
    CSLDestroy(argv);
    GDALDestroyDriverManager();
    if (stop_signal && rc == CLI_EXIT_OK) {
        /* The signal came after the last point where the command could
         * stop: its outputs are complete and in place. Say so, and report
         * the success it is. */
        fprintf(stderr, "mmcl %s: %s arrived once the work was complete; "
                        "the outputs are in place\n",
                cmd_name, stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
        return rc;
    }
    if (stop_signal) /* end as the signal would have, now that nothing is left */
        raise(stop_signal);
    return rc;
}
