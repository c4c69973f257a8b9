/* SPDX-License-Identifier: MIT */
/*
 * The commands: each parses nothing itself (the generic parser did), opens
 * nothing it does not need, calls one library function, and reports.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_string.h>
#include <gdal.h>

#include "cli.h"

/* Library notes (loss per epoch, canonical correlations, R2) are kept and
 * printed on stderr once the progress bar has finished its line. */
static void
keep_log(mmcl_log_level level, const char *msg, void *user)
{
    char ***lines = user;
    if (level == MMCL_LOG_ERROR) /* reported once, by cli_fail */
        return;
    *lines = CSLAddString(*lines, CPLSPrintf("%s%s",
                                             level == MMCL_LOG_WARNING
                                                 ? "Warning: "
                                                 : "",
                                             msg));
}

static void
flush_log(char ***lines)
{
    if (mmcl_mpi_rank() != 0) { /* rank 0 prints the job's notes */
        CSLDestroy(*lines);
        *lines = NULL;
        return;
    }
    if (*lines)
        cli_end_progress_line();
    for (int i = 0; *lines && (*lines)[i]; i++)
        fprintf(stderr, "%s\n", (*lines)[i]);
    CSLDestroy(*lines);
    *lines = NULL;
}

/*
 * What every command starts with: the options of @p operation from the
 * arguments, with the progress bar (NULL on a bad option: @p ctx holds the
 * error), and when @p notes is not NULL the library's messages from
 * @p level up kept there, for flush_log.
 */
static mmcl_options *
command_options(mmcl_context *ctx, const char *operation, const cli_args *a,
                char ***notes, mmcl_log_level level)
{
    /* The library's messages name the flags the user typed. */
    mmcl_context_set_option_spelling(ctx, MMCL_OPTION_SPELLING_FLAG);
    mmcl_options *opts = mmcl_options_new(ctx, operation,
                                          (const char *const *)a->kv);
    if (!opts)
        return NULL;
    cli_set_progress(opts, a);
    if (notes)
        mmcl_context_set_log(ctx, keep_log, notes, level);
    return opts;
}

/* -q hides the notes, not the warnings (as in GDAL's utilities). */
static mmcl_log_level
notes_level(const cli_args *a)
{
    return a->quiet ? MMCL_LOG_WARNING : MMCL_LOG_INFO;
}

static int
run_align(const cli_command *cmd, const cli_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *opts = command_options(ctx, "align", a, NULL, 0);
    if (!opts)
        goto report;
    /* OPTICAL... SAR OUT, or OPTICAL... --sar SAR... OUT */
    cli_pair p = cli_get_pair(a, 0, 1);
    if (mmcl_align(ctx, p.optical, p.n_optical, p.sar, p.n_sar,
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
    mmcl_options *opts = command_options(ctx, "synth", a, NULL, 0);
    if (!opts)
        goto report;
    if (mmcl_synth(ctx, a->pos[0], opts) == MMCL_OK)
        rc = CLI_EXIT_OK;
report:
    if (rc != CLI_EXIT_OK)
        cli_fail(cmd->name, ctx);
    mmcl_options_free(opts);
    mmcl_context_destroy(ctx);
    return rc;
}

static int
print_figures(const mmcl_model *model)
{
    cJSON *meta = cJSON_Parse(mmcl_model_metadata_json(model));
    cJSON *fig = cJSON_DetachItemFromObject(meta, "figures");
    /* and what training warned about, when it did */
    cJSON *ws = cJSON_DetachItemFromObject(meta, "warnings");
    if (fig && ws)
        cJSON_AddItemToObject(fig, "warnings", ws);
    else
        cJSON_Delete(ws);
    char *s = fig ? cJSON_Print(fig) : NULL;
    if (s)
        printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(fig);
    cJSON_Delete(meta);
    return s ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

static int
run_train(const cli_command *cmd, const cli_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *model = NULL;
    char **notes = NULL;
    const char *out = a->pos[a->n_pos - 1];
    mmcl_options *opts = command_options(ctx, "train", a, &notes,
                                         notes_level(a));
    if (!opts)
        goto report;
    int overwrite = strcmp(mmcl_options_get(opts, "OVERWRITE"), "YES") == 0;
    /* Refuse the model file before the work, not after. Under MPI, rank 0
     * writes it, and every rank stops when it cannot. */
    int writes = mmcl_mpi_rank() == 0;
    if (mmcl_mpi_agree(ctx, writes ? mmcl_model_save_check(ctx, out,
                                                           overwrite)
                                   : MMCL_OK) != MMCL_OK)
        goto report;
    /* OPTICAL... SAR MODEL, or OPTICAL... --sar SAR... MODEL */
    cli_pair p = cli_get_pair(a, 0, 1);
    if (mmcl_train(ctx, p.optical, p.n_optical, p.sar, p.n_sar, opts, &model) !=
        MMCL_OK)
        goto report;
    /* Stopped after the last progress step: nothing is written. */
    if (cli_interrupted())
        goto report;
    if (writes && mmcl_model_save(ctx, model, out, overwrite) != MMCL_OK)
        goto report;
    flush_log(&notes);
    rc = a->json && writes ? print_figures(model) : CLI_EXIT_OK;
report:
    if (rc != CLI_EXIT_OK)
        cli_fail(cmd->name, ctx);
    flush_log(&notes);
    mmcl_model_destroy(model);
    mmcl_options_free(opts);
    mmcl_context_destroy(ctx);
    return rc;
}

static void
print_shape(const mmcl_model *model, size_t i)
{
    int ndim = 0;
    const int64_t *shape = NULL;
    const char *name = mmcl_model_tensor_name(model, i);
    mmcl_model_tensor(model, name, &ndim, &shape);
    printf("  %-36s [", name);
    for (int d = 0; d < ndim; d++)
        printf(d ? ", %lld" : "%lld", (long long)shape[d]);
    printf("]\n");
}

static int
run_info(const cli_command *cmd, const cli_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *model = NULL;
    char hash[17];
    if (mmcl_model_load(ctx, a->pos[0], &model) != MMCL_OK ||
        mmcl_model_hash(ctx, model, hash) != MMCL_OK) {
        cli_fail(cmd->name, ctx);
        goto done;
    }
    cJSON *meta = cJSON_Parse(mmcl_model_metadata_json(model));
    if (a->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "file", a->pos[0]);
        cJSON_AddStringToObject(j, "hash", hash);
        cJSON_AddItemToObject(j, "metadata", meta);
        cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
        for (size_t i = 0; i < mmcl_model_tensor_count(model); i++) {
            int ndim = 0;
            const int64_t *shape = NULL;
            const char *name = mmcl_model_tensor_name(model, i);
            mmcl_model_tensor(model, name, &ndim, &shape);
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "name", name);
            cJSON *sh = cJSON_AddArrayToObject(t, "shape");
            for (int d = 0; d < ndim; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[d]));
            cJSON_AddItemToArray(ts, t);
        }
        char *s = cJSON_Print(j);
        printf("%s\n", s ? s : "{}");
        cJSON_free(s);
        cJSON_Delete(j);
        rc = CLI_EXIT_OK;
        goto done;
    }
    const cJSON *fig = cJSON_GetObjectItem(meta, "figures");
    printf("Model: %s\nHash: %s\n", a->pos[0], hash);
    printf("Objective: %s\n",
           cJSON_GetStringValue(cJSON_GetObjectItem(meta, "objective")));
    printf("Embedding dimension k: %d, patch: %dx%d\n",
           cJSON_GetObjectItem(meta, "k")->valueint,
           cJSON_GetObjectItem(meta, "patch")->valueint,
           cJSON_GetObjectItem(meta, "patch")->valueint);
    static const char *const mods[2] = {"optical", "sar"};
    for (int m = 0; m < 2; m++) {
        const cJSON *mj = cJSON_GetObjectItem(meta, mods[m]);
        char *names = cJSON_PrintUnformatted(cJSON_GetObjectItem(mj,
                                                                 "band_names"));
        char *layers = cJSON_PrintUnformatted(cJSON_GetObjectItem(mj,
                                                                  "layers"));
        printf("%s: %d bands %s, encoder layers %s, private dims %d\n",
               mods[m], cJSON_GetObjectItem(mj, "bands")->valueint,
               names ? names : "", layers ? layers : "",
               cJSON_GetObjectItem(mj, "private_dim")->valueint);
        cJSON_free(names);
        cJSON_free(layers);
    }
    char *pair = cJSON_PrintUnformatted(cJSON_GetObjectItem(meta, "pair"));
    char *train = cJSON_PrintUnformatted(cJSON_GetObjectItem(meta, "training"));
    char *figs = fig ? cJSON_Print(fig) : NULL;
    printf("Pair options: %s\nTraining options: %s\nFigures: %s\n",
           pair ? pair : "", train ? train : "", figs ? figs : "{}");
    cJSON_free(pair);
    cJSON_free(train);
    cJSON_free(figs);
    /* What training warned about (train.c). */
    const cJSON *w;
    const cJSON *ws = cJSON_GetObjectItem(meta, "warnings");
    if (cJSON_GetArraySize(ws) > 0)
        printf("Warnings (%d):\n", cJSON_GetArraySize(ws));
    cJSON_ArrayForEach(w, ws)
    {
        printf("  %s: %s\n",
               cJSON_GetStringValue(cJSON_GetObjectItem(w, "code")),
               cJSON_GetStringValue(cJSON_GetObjectItem(w, "message")));
    }
    printf("Tensors (%zu):\n", mmcl_model_tensor_count(model));
    for (size_t i = 0; i < mmcl_model_tensor_count(model); i++)
        print_shape(model, i);
    cJSON_Delete(meta);
    rc = CLI_EXIT_OK;
done:
    mmcl_model_destroy(model);
    mmcl_context_destroy(ctx);
    return rc;
}

/* --json with --lazy: refused (the descriptor's figures are computed when
 * it is read); returns 1 after saying so. */
static int
json_with_lazy(const cli_command *cmd, const cli_args *a,
               const mmcl_options *opts)
{
    if (!a->json || strcmp(mmcl_options_get(opts, "LAZY"), "YES") != 0)
        return 0;
    fprintf(stderr, "ERROR 1: mmcl %s: --json needs the figures, which "
                    "--lazy does not compute\n",
            cmd->name);
    return 1;
}

/* Loads the model named by the first positional argument. */
static mmcl_model *
load_model(mmcl_context *ctx, const char *path)
{
    mmcl_model *model = NULL;
    return mmcl_model_load(ctx, path, &model) == MMCL_OK ? model : NULL;
}

static int
run_map(const cli_command *cmd, const cli_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *model = NULL;
    char *report = NULL;
    char **notes = NULL;
    /* With --json, stdout is the JSON alone: progress goes to stderr;
     * warnings (inputs that differ from the model's) too. */
    mmcl_options *opts = command_options(ctx, cmd->operation, a, &notes,
                                         MMCL_LOG_WARNING);
    if (!opts)
        goto report;
    /* MODEL OPTICAL... SAR OUT, or MODEL OPTICAL... --sar SAR... OUT */
    cli_pair p = cli_get_pair(a, 1, 1);
    const char *out = a->pos[a->n_pos - 1];
    mmcl_status st;
    if (strcmp(mmcl_options_get(opts, "LAZY"), "YES") == 0) {
        /* --lazy: the descriptor, computed when GDAL reads it. */
        if (mmcl_mpi_size() > 1) {
            fprintf(stderr, "ERROR 1: mmcl %s: --lazy writes a descriptor and "
                            "computes nothing: run it once, without an MPI "
                            "launcher\n",
                    cmd->name);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        if (json_with_lazy(cmd, a, opts)) {
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        if (mmcl_product_write_descriptor(ctx, out, a->pos[0], p.optical,
                                          p.n_optical, p.sar, p.n_sar,
                                          opts) != MMCL_OK)
            goto report;
        rc = CLI_EXIT_OK;
        goto done;
    }
    model = load_model(ctx, a->pos[0]);
    if (!model)
        goto report;
    if (strcmp(cmd->operation, "embed") == 0)
        st = mmcl_embed(ctx, model, p.optical, p.n_optical, p.sar, p.n_sar, out,
                        opts);
    else
        st = mmcl_infoloss(ctx, model, p.optical, p.n_optical, p.sar, p.n_sar,
                           out, opts, a->json ? &report : NULL);
    if (st != MMCL_OK)
        goto report;
    if (report)
        printf("%s\n", report);
    rc = CLI_EXIT_OK;
report:
    if (rc != CLI_EXIT_OK)
        cli_fail(cmd->name, ctx);
done:
    flush_log(&notes);
    mmcl_free(report);
    mmcl_model_destroy(model);
    mmcl_options_free(opts);
    mmcl_context_destroy(ctx);
    return rc;
}

static int
run_audit(const cli_command *cmd, const cli_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    mmcl_context *ctx = mmcl_context_create();
    char *report = NULL;
    char **notes = NULL;
    /* With --json, stdout is the JSON alone: progress goes to stderr. */
    mmcl_options *opts = command_options(ctx, "audit", a, &notes,
                                         notes_level(a));
    if (!opts)
        goto report;
    if (json_with_lazy(cmd, a, opts)) {
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    /* EMBEDDING OPTICAL... SAR OUT, or EMBEDDING OPTICAL... --sar SAR...
     * OUT */
    cli_pair p = cli_get_pair(a, 1, 1);
    if (mmcl_audit(ctx, a->pos[0], p.optical, p.n_optical, p.sar, p.n_sar,
                   a->pos[a->n_pos - 1], opts,
                   a->json ? &report : NULL) != MMCL_OK)
        goto report;
    if (report)
        printf("%s\n", report);
    rc = CLI_EXIT_OK;
report:
    if (rc != CLI_EXIT_OK)
        cli_fail(cmd->name, ctx);
done:
    flush_log(&notes);
    mmcl_free(report);
    mmcl_options_free(opts);
    mmcl_context_destroy(ctx);
    return rc;
}

static double
num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Per class of one representation (or of the baseline): support,
 * precision, recall, F1, IoU and its row of the confusion matrix (up to
 * eight classes; the JSON and the CSV have them all). */
static void
print_probe_classes(const char *name, const cJSON *e)
{
    const cJSON *c;
    const cJSON *conf = cJSON_GetObjectItem(e, "confusion");
    int row = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(e, "per_class"))
    {
        printf("%-18s %6g %8.0f %9.4f %7.4f %7.4f %7.4f ",
               row == 0 ? name : "", num(c, "class"), num(c, "support"),
               num(c, "precision"), num(c, "recall"), num(c, "f1"),
               num(c, "iou"));
        const cJSON *v;
        int k = 0;
        cJSON_ArrayForEach(v, cJSON_GetArrayItem(conf, row))
            if (k++ < 8)
                printf(" %8.0f", v->valuedouble);
        printf("\n");
        row++;
    }
}

/* The probe tables: one line per representation, then one per
 * representation and class. */
static void
print_probe_table(const cJSON *r)
{
    const char *task = cJSON_GetStringValue(cJSON_GetObjectItem(r, "task"));
    int classes = task && strcmp(task, "classes") == 0;
    const cJSON *base = cJSON_GetObjectItem(r, "baseline");
    printf("Probe: %s, %d samples, %d x %d spatial blocks (%d folds), model "
           "%s (%s, k=%d)\n",
           task ? task : "?",
           cJSON_GetObjectItem(r, "samples")->valueint,
           cJSON_GetObjectItem(r, "blocks")->valueint,
           cJSON_GetObjectItem(r, "blocks")->valueint,
           cJSON_GetObjectItem(r, "folds")->valueint,
           cJSON_GetStringValue(cJSON_GetObjectItem(r, "model_hash")),
           cJSON_GetStringValue(cJSON_GetObjectItem(r, "objective")),
           cJSON_GetObjectItem(r, "k")->valueint);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "embeddings"))
    {
        const char *rs =
            cJSON_GetStringValue(cJSON_GetObjectItem(e, "resampling"));
        int warped = cJSON_IsTrue(cJSON_GetObjectItem(e, "warped"));
        printf("Embedding raster %s: %s, %d bands, de-quantization %s, %s\n",
               e->string,
               cJSON_GetStringValue(cJSON_GetObjectItem(e, "file")),
               cJSON_GetArraySize(cJSON_GetObjectItem(e, "bands")),
               cJSON_GetStringValue(cJSON_GetObjectItem(e, "dequantize")),
               warped ? CPLSPrintf("warped onto the optical grid (%s)",
                                   rs ? rs : "?")
                      : "on the optical grid");
    }
    if (classes) {
        const cJSON *c, *n = cJSON_GetObjectItem(r, "class_counts");
        int i = 0;
        printf("Classes (samples):");
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(r, "classes"))
            printf(" %g (%.0f)", c->valuedouble,
                   cJSON_GetArrayItem(n, i++)->valuedouble);
        printf("\nBaseline, always the majority class %g: accuracy %.4f, "
               "balanced accuracy %.4f, macro F1 %.4f, mean IoU %.4f\n",
               num(base, "class"), num(base, "accuracy"),
               num(base, "balanced_accuracy"), num(base, "macro_f1"),
               num(base, "mean_iou"));
        printf("\n%-18s %6s %9s %9s %9s %9s\n", "representation", "dim",
               "accuracy", "balanced", "macro F1", "mean IoU");
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "representations"))
            printf("%-18s %6d %9.4f %9.4f %9.4f %9.4f\n", e->string,
                   cJSON_GetObjectItem(e, "dim")->valueint,
                   num(e, "accuracy"), num(e, "balanced_accuracy"),
                   num(e, "macro_f1"), num(e, "mean_iou"));
        printf("\nPer class; pred=c: the class's samples predicted as c "
               "(the confusion matrix)\n%-18s %6s %8s %9s %7s %7s %7s ",
               "representation", "class", "support", "precision", "recall",
               "F1", "IoU");
        const cJSON *c2;
        int k = 0;
        cJSON_ArrayForEach(c2, cJSON_GetObjectItem(r, "classes"))
            if (k++ < 8)
                printf(" %8s", CPLSPrintf("pred=%g", c2->valuedouble));
        printf("\n");
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "representations"))
            print_probe_classes(e->string, e);
        print_probe_classes("majority baseline", base);
    } else {
        printf("Baseline, always the mean %g: R2 %.4f, RMSE %.4g, MAE "
               "%.4g\n",
               num(base, "value"), num(base, "r2"), num(base, "rmse"),
               num(base, "mae"));
        printf("\n%-18s %6s %9s %11s %11s\n", "representation", "dim", "R2",
               "RMSE", "MAE");
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "representations"))
            printf("%-18s %6d %9.4f %11.4g %11.4g\n", e->string,
                   cJSON_GetObjectItem(e, "dim")->valueint, num(e, "r2"),
                   num(e, "rmse"), num(e, "mae"));
    }
    const cJSON *gap = cJSON_GetObjectItem(r, "gap");
    printf("\nsigma-informativeness gap (error aligned - error raw): optical "
           "%+.4f, sar %+.4f\n",
           cJSON_GetObjectItem(gap, "optical")->valuedouble,
           cJSON_GetObjectItem(gap, "sar")->valuedouble);
    const cJSON *out = cJSON_GetObjectItem(r, "outputs");
    if (cJSON_GetObjectItem(out, "map"))
        printf("Prediction map (%s): %s\n",
               cJSON_GetStringValue(
                   cJSON_GetObjectItem(out, "map_representation")),
               cJSON_GetStringValue(cJSON_GetObjectItem(out, "map")));
    if (cJSON_GetObjectItem(out, "csv"))
        printf("Figures as CSV: %s\n",
               cJSON_GetStringValue(cJSON_GetObjectItem(out, "csv")));
}

static int
run_probe(const cli_command *cmd, const cli_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *model = NULL;
    char *report = NULL;
    char **notes = NULL;
    /* With --json, stdout holds the report only: progress goes to
     * stderr. */
    mmcl_options *opts = command_options(ctx, cmd->operation, a, &notes,
                                         notes_level(a));
    if (!opts)
        goto report;
    model = load_model(ctx, a->pos[0]);
    if (!model)
        goto report;
    /* MODEL OPTICAL... SAR LABELS, or MODEL OPTICAL... --sar SAR... LABELS */
    cli_pair p = cli_get_pair(a, 1, 1);
    if (mmcl_probe(ctx, model, p.optical, p.n_optical, p.sar, p.n_sar,
                   a->pos[a->n_pos - 1], opts, &report) != MMCL_OK)
        goto report;
    flush_log(&notes);
    if (a->json) {
        printf("%s\n", report);
    } else {
        cJSON *r = cJSON_Parse(report);
        if (!r)
            goto report;
        print_probe_table(r);
        cJSON_Delete(r);
    }
    rc = CLI_EXIT_OK;
report:
    if (rc != CLI_EXIT_OK)
        cli_fail(cmd->name, ctx);
    flush_log(&notes);
    mmcl_free(report);
    mmcl_model_destroy(model);
    mmcl_options_free(opts);
    mmcl_context_destroy(ctx);
    return rc;
}

/* The figures of a coreg report in a few lines. */
static void
print_coreg(const char *text)
{
    cJSON *r = cJSON_Parse(text);
    const cJSON *s = cJSON_GetObjectItem(r, "shift");
    const cJSON *b = cJSON_GetObjectItem(r, "blocks");
    if (!s || !b) {
        cJSON_Delete(r);
        return;
    }
    double dx = num(s, "dx"), dy = num(s, "dy");
    /* Measured after a correction: what remains of the shift. */
    const cJSON *c = cJSON_GetObjectItem(r, "correction");
    const char *what = "Global shift of the SAR";
    char buf[1200];
    if (cJSON_IsObject(c) && c->child && cJSON_IsString(c->child)) {
        snprintf(buf, sizeof(buf),
                 "Residual shift of the SAR after the correction (%s %s)",
                 strcmp(c->child->string, "sar_shift") == 0
                     ? "--sar-shift"
                     : "--sar-shift-field",
                 c->child->valuestring);
        what = buf;
    }
    if (isfinite(dx) && isfinite(dy))
        printf("%s: dx %+.3f, dy %+.3f optical pixels (%+.2f east, %+.2f "
               "north in CRS units); spread (MAD) %.3f, %.3f px\n",
               what, dx, dy, num(s, "dx_m"), num(s, "dy_m"),
               num(s, "mad_dx"), num(s, "mad_dy"));
    else
        printf("%s: unknown (no confident block)\n", what);
    printf("Blocks of %.0f px, search +-%.0f px: %.0f of %.0f confident "
           "(%.0f%%), %.0f with an estimate\n",
           num(r, "block"), num(r, "search"), num(b, "confident"),
           num(b, "total"), 100.0 * num(b, "confident_share"),
           num(b, "with_estimate"));
    cJSON_Delete(r);
}

static int
run_coreg(const cli_command *cmd, const cli_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    mmcl_context *ctx = mmcl_context_create();
    char *report = NULL;
    char **notes = NULL;
    mmcl_options *opts = command_options(ctx, "coreg", a, &notes,
                                         notes_level(a));
    if (!opts)
        goto report;
    /* OPTICAL... SAR OUT, or OPTICAL... --sar SAR... OUT */
    cli_pair p = cli_get_pair(a, 0, 1);
    if (mmcl_coreg(ctx, p.optical, p.n_optical, p.sar, p.n_sar,
                   a->pos[a->n_pos - 1], opts, &report) != MMCL_OK)
        goto report;
    flush_log(&notes);
    if (a->json)
        printf("%s\n", report);
    else if (!a->quiet)
        print_coreg(report);
    rc = CLI_EXIT_OK;
report:
    if (rc != CLI_EXIT_OK)
        cli_fail(cmd->name, ctx);
    flush_log(&notes);
    mmcl_free(report);
    mmcl_options_free(opts);
    mmcl_context_destroy(ctx);
    return rc;
}

static int
run_rgb(const cli_command *cmd, const cli_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    mmcl_context *ctx = mmcl_context_create();
    char **notes = NULL;
    mmcl_options *opts = command_options(ctx, "rgb", a, &notes,
                                         notes_level(a));
    if (!opts)
        goto report;
    /* IN OUT */
    if (mmcl_rgb(ctx, a->pos[0], a->pos[1], opts) == MMCL_OK)
        rc = CLI_EXIT_OK;
report:
    if (rc != CLI_EXIT_OK)
        cli_fail(cmd->name, ctx);
    flush_log(&notes);
    mmcl_options_free(opts);
    mmcl_context_destroy(ctx);
    return rc;
}

/* The --sar option of the commands that take the pair. */
#define SAR_FLAG_HELP                                                          \
    "SAR file; repeat for several on one grid (--sar VV.tif --sar VH.tif: "    \
    "SAR bands 1, 2), stacked in the order given; every positional raster "    \
    "before the output is then optical"

static const cli_positional align_pos[] = {
    {"OPTICAL", CLI_RASTER_IN, 1,
     "optical raster: one dataset, or several single-band files stacked on "
     "the finest grid among them",
     NULL, NULL},
    {"SAR", CLI_RASTER_IN, 0,
     "SAR raster, on any CRS and resolution (or the --sar files)", "--sar",
     SAR_FLAG_HELP},
    {"OUT", CLI_RASTER_OUT, 0, "output: the SAR on the optical grid", NULL,
     NULL},
};

static const cli_positional coreg_pos[] = {
    {"OPTICAL", CLI_RASTER_IN, 1,
     "optical raster: one dataset, or several single-band files stacked on "
     "the finest grid among them",
     NULL, NULL},
    {"SAR", CLI_RASTER_IN, 0,
     "SAR raster, on any CRS and resolution (or the --sar files)", "--sar",
     SAR_FLAG_HELP},
    {"OUT", CLI_RASTER_OUT, 0,
     "shift field: one pixel per block, bands dx, dy (optical pixels), "
     "dx_m, dy_m, confidence",
     NULL, NULL},
};

static const cli_positional synth_pos[] = {
    {"OUTDIR", CLI_FOLDER_OUT, 0,
     "folder for optical.tif, sar.tif, labels.tif, truth.tif, synth.json "
     "(and shift_truth.tif with --sar-shift or --sar-shift-field)",
     NULL, NULL},
};

static const cli_positional train_pos[] = {
    {"OPTICAL", CLI_RASTER_IN, 1,
     "optical raster: one dataset, or several single-band files", NULL, NULL},
    {"SAR", CLI_RASTER_IN, 0,
     "SAR raster, on any CRS and resolution (or the --sar files)", "--sar",
     SAR_FLAG_HELP},
    {"MODEL", CLI_FILE_OUT, 0, "model file to write (.mmcl)", NULL, NULL},
};

static const cli_positional info_pos[] = {
    {"MODEL", CLI_FILE_IN, 0, "model file (.mmcl)", NULL, NULL},
};

static const cli_positional embed_pos[] = {
    {"MODEL", CLI_FILE_IN, 0, "model file (.mmcl) from mmcl train", NULL, NULL},
    {"OPTICAL", CLI_RASTER_IN, 1,
     "optical raster: one dataset, or several single-band files", NULL, NULL},
    {"SAR", CLI_RASTER_IN, 0,
     "SAR raster, on any CRS and resolution (or the --sar files)", "--sar",
     SAR_FLAG_HELP},
    {"OUT", CLI_RASTER_OUT, 0,
     "output raster on the optical grid (with --lazy: the .mmcl.json "
     "descriptor)",
     NULL, NULL},
};

static const cli_positional audit_pos[] = {
    {"EMBEDDING", CLI_RASTER_IN, 0,
     "embedding raster of k bands, on any CRS and resolution (an mmcl "
     "embedding map, a downloaded product such as the Satellite Embedding "
     "dataset's int8 COGs)",
     NULL, NULL},
    {"OPTICAL", CLI_RASTER_IN, 1,
     "optical raster: one dataset, or several single-band files", NULL, NULL},
    {"SAR", CLI_RASTER_IN, 0,
     "SAR raster, on any CRS and resolution (or the --sar files)", "--sar",
     SAR_FLAG_HELP},
    {"OUT", CLI_RASTER_OUT, 0,
     "information-loss map on the optical grid (with --lazy: the .mmcl.json "
     "descriptor)",
     NULL, NULL},
};

static const cli_positional probe_pos[] = {
    {"MODEL", CLI_FILE_IN, 0, "model file (.mmcl) from mmcl train", NULL, NULL},
    {"OPTICAL", CLI_RASTER_IN, 1,
     "optical raster: one dataset, or several single-band files", NULL, NULL},
    {"SAR", CLI_RASTER_IN, 0,
     "SAR raster, on any CRS and resolution (or the --sar files)", "--sar",
     SAR_FLAG_HELP},
    {"LABELS", CLI_RASTER_IN, 0,
     "label raster: classes or a continuous target (warped onto the "
     "optical grid when on another grid)",
     NULL, NULL},
};

static const cli_positional rgb_pos[] = {
    {"IN", CLI_RASTER_IN, 0,
     "raster to picture: an embedding, an info-loss map, any raster, or a "
     "lazy descriptor (.mmcl.json)",
     NULL, NULL},
    {"OUT", CLI_RASTER_OUT, 0,
     "RGBA picture on the same grid (GeoTIFF, or PNG with -of PNG; with "
     "--lazy: the .mmcl.json descriptor)",
     NULL, NULL},
};

#define N(a) (sizeof(a) / sizeof(a[0]))
const cli_command cli_commands[] = {
    {"align", "resample the SAR onto the optical grid (co-registration)",
     "align", align_pos, N(align_pos), 0, run_align},
    {"train", "learn the optical and SAR encoders and save a model",
     "train", train_pos, N(train_pos), 1, run_train},
    {"embed", "write the embedding map of a model on a raster pair",
     "embed", embed_pos, N(embed_pos), 0, run_map},
    {"infoloss",
     "write per-pixel information-loss maps of each modality",
     "infoloss", embed_pos, N(embed_pos), 1, run_map},
    {"audit",
     "information-loss maps of an embedding raster made elsewhere: what it "
     "keeps of each modality, per pixel",
     "audit", audit_pos, N(audit_pos), 1, run_audit},
    {"probe",
     "linear probes of each representation against a label raster, "
     "cross-validated over spatial blocks",
     "probe", probe_pos, N(probe_pos), 1, run_probe},
    {"rgb",
     "picture of a raster: PCA of an embedding as RGB, one band through a "
     "colour map, or a shift field (mmcl coreg) as a colour wheel",
     "rgb", rgb_pos, N(rgb_pos), 0, run_rgb},
    {"info", "describe a model file", NULL, info_pos, N(info_pos), 1,
     run_info},
    {"synth", "write a synthetic optical/SAR scene with known truth",
     "synth", synth_pos, N(synth_pos), 0, run_synth},
    {"coreg",
     "measure the residual shift of the SAR against the optical, block by "
     "block",
     "coreg", coreg_pos, N(coreg_pos), 1, run_coreg},
};
const size_t cli_n_commands = N(cli_commands);
#undef N
