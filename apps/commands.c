/* SPDX-License-Identifier: MIT */
/*
 * The commands: each parses nothing itself (the generic parser did), opens
 * nothing it does not need, calls one library function, and reports.
 */
#include <stdio.h>

#include <gdal.h>

#include "cli.h"

static int
run_align(const cli_command *cmd, const cli_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *opts = mmcl_options_new(ctx, "align",
                                          (const char *const *)a->kv);
    if (!opts)
        goto report;
    if (!a->quiet)
        mmcl_options_set_progress(opts, GDALTermProgress, NULL);
    /* OPTICAL... SAR OUT */
    if (mmcl_align(ctx, a->pos, a->n_pos - 2, a->pos[a->n_pos - 2],
                   a->pos[a->n_pos - 1], opts) == MMCL_OK)
        rc = CLI_EXIT_OK;
report:
    if (rc != CLI_EXIT_OK)
        cli_fail(cmd->name, ctx);
    mmcl_options_free(opts);
    mmcl_context_destroy(ctx);
    return rc;
}

static int
run_synth(const cli_command *cmd, const cli_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *opts = mmcl_options_new(ctx, "synth",
                                          (const char *const *)a->kv);
    if (!opts)
        goto report;
    if (!a->quiet)
        mmcl_options_set_progress(opts, GDALTermProgress, NULL);
    if (mmcl_synth(ctx, a->pos[0], opts) == MMCL_OK)
        rc = CLI_EXIT_OK;
report:
    if (rc != CLI_EXIT_OK)
        cli_fail(cmd->name, ctx);
    mmcl_options_free(opts);
    mmcl_context_destroy(ctx);
    return rc;
}

static const cli_positional align_pos[] = {
    {"OPTICAL", CLI_RASTER_IN, 1,
     "optical raster: one dataset, or several single-band files stacked on "
     "the finest grid among them"},
    {"SAR", CLI_RASTER_IN, 0, "SAR raster, on any CRS and resolution"},
    {"OUT", CLI_RASTER_OUT, 0, "output: the SAR on the optical grid"},
};

static const cli_positional synth_pos[] = {
    {"OUTDIR", CLI_FOLDER_OUT, 0,
     "folder for optical.tif, sar.tif, labels.tif, truth.tif, synth.json"},
};

#define N(a) (sizeof(a) / sizeof(a[0]))
const cli_command cli_commands[] = {
    {"align", "resample the SAR onto the optical grid (co-registration)",
     "align", align_pos, N(align_pos), 0, run_align},
    {"synth", "write a synthetic optical/SAR scene with known truth",
     "synth", synth_pos, N(synth_pos), 0, run_synth},
};
const size_t cli_n_commands = N(cli_commands);
#undef N
