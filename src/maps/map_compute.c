/* SPDX-License-Identifier: MIT */
/*
 * The per-window compute of the maps, shared by the writers (mmcl_embed,
 * mmcl_infoloss) and the lazy products read through the GDAL plugin
 * (mmcl_product_read), so that both give the same bits: read the window
 * with the halo the patch needs, build the standardized patch vectors, run
 * the encoders (and for information loss the decoders) as GEMMs on cells
 * of exactly MMCL__GEMM_ROWS rows anchored on the grid, and compose the
 * output bands. A pixel's value does not depend on the window it was
 * computed in.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include <cpl_error.h>
#include <cpl_string.h>

#include "context_internal.h"
#include "model_schema_internal.h"
#include "maps_internal.h"
#include "options_internal.h"
#include "sample_internal.h"
#include "writer_internal.h"


mmcl_status
mmcl__map_def_init(mmcl_context *ctx, mmcl__map_def *def,
                   const mmcl__encoder *enc, mmcl__map_kind kind,
                   const char *modality, int nonred)
{
    memset(def, 0, sizeof(*def));
    def->kind = kind;
    if (kind == MMCL__MAP_INFOLOSS) {
        for (int m = 0; m < 2; m++)
            if (enc->mod[m].B > MMCL__LOSS_MAX_BANDS)
                return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                                   "infoloss handles up to %d bands per "
                                   "modality",
                                   MMCL__LOSS_MAX_BANDS);
        def->nonred = nonred != 0;
        def->loss_bands = def->nonred ? 4 : 3;
        def->per_mod = def->loss_bands + 3;
        def->reach = MMCL__STRUCTURE_WINDOW / 2;
        def->n_out = 2 * def->per_mod;
        int audit = strcmp(enc->objective, "audit") == 0;
        for (int m = 0; m < 2; m++)
            if (!isfinite(enc->mod[m].floor_infoloss) && audit)
                mmcl__log(ctx, MMCL_LOG_WARNING,
                          "the pair's area is too small to estimate the "
                          "noise of the %s bands: the noise_floor, "
                          "structured_loss and structured_excess bands are "
                          "NaN",
                          mmcl__modality_name(m));
            else if (!isfinite(enc->mod[m].floor_infoloss))
                mmcl__log(ctx, MMCL_LOG_WARNING,
                          "the model has no noise estimate of the %s bands "
                          "(it was trained before mmcl estimated noise, or "
                          "on too small an area): its noise_floor, "
                          "structured_loss and structured_excess bands are "
                          "NaN; train it again to get them",
                          mmcl__modality_name(m));
        return MMCL_OK;
    }
    if (!modality || strcmp(modality, "joint") == 0) {
        def->use = MMCL__USE_JOINT;
        def->modality = "joint";
    } else if (strcmp(modality, "optical") == 0) {
        def->use = MMCL__USE_OPTICAL;
        def->modality = "optical";
    } else if (strcmp(modality, "sar") == 0) {
        def->use = MMCL__USE_SAR;
        def->modality = "sar";
    } else {
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "modality must be optical, sar or joint, got '%s'",
                           modality);
    }
    if (def->use == MMCL__USE_OPTICAL)
        def->n_out = enc->mod[0].K;
    else if (def->use == MMCL__USE_SAR)
        def->n_out = enc->mod[1].K;
    else if (enc->mod[0].kp || enc->mod[1].kp)
        def->n_out = enc->k + enc->mod[0].kp + enc->mod[1].kp;
    else
        def->n_out = enc->k;
    return MMCL_OK;
}

int
mmcl__map_halo(const mmcl__map_def *def, const mmcl__encoder *enc)
{
    return enc->P / 2 + def->reach;
}

char **
mmcl__map_band_names(const mmcl__map_def *def)
{
    char **names = NULL;
    if (def->kind == MMCL__MAP_EMBEDDING) {
        for (int b = 0; b < def->n_out; b++)
            names = CSLAddString(names, CPLSPrintf("emb_%03d", b));
        return names;
    }
    for (int m = 0; m < 2; m++) {
        names = CSLAddString(names, CPLSPrintf("infoloss_%s", mmcl__modality_name(m)));
        names = CSLAddString(names, CPLSPrintf("unimodal_%s", mmcl__modality_name(m)));
        names = CSLAddString(names, CPLSPrintf("excess_%s", mmcl__modality_name(m)));
        if (def->nonred)
            names = CSLAddString(names,
                                 CPLSPrintf("nonredundancy_%s", mmcl__modality_name(m)));
        names = CSLAddString(names, CPLSPrintf("noise_floor_%s", mmcl__modality_name(m)));
        names = CSLAddString(names,
                             CPLSPrintf("structured_loss_%s", mmcl__modality_name(m)));
        names = CSLAddString(names,
                             CPLSPrintf("structured_excess_%s", mmcl__modality_name(m)));
    }
    return names;
}

/* The unit of the loss bands. */
#define LOSS_UNIT "standardized band variance"

char **
mmcl__map_band_units(const mmcl__map_def *def)
{
    char **units = NULL;
    for (int b = 0; b < def->n_out; b++)
        units = CSLAddString(units, def->kind == MMCL__MAP_EMBEDDING
                                        ? "dimensionless"
                                        : LOSS_UNIT);
    return units;
}

char **
mmcl__map_band_meanings(const mmcl__map_def *def, const mmcl__encoder *enc)
{
    char **out = NULL;
    if (def->kind == MMCL__MAP_EMBEDDING) {
        for (int b = 0; b < def->n_out; b++)
            out = CSLAddString(out, CPLSPrintf("%s embedding, component %d",
                                               def->modality, b + 1));
        return out;
    }
    int w = 2 * def->reach + 1;
    for (int m = 0; m < 2; m++) {
        const char *mn = mmcl__modality_name(m);
        int K = enc->mod[m].Ku;
        /* An audit measures an embedding made elsewhere, not an
         * alignment. */
        const char *h = def->embedding ? "the embedding raster"
                                       : "the aligned embedding";
        const char *lost = def->embedding ? "the embedding" : "alignment";
        out = CSLAddString(out, CPLSPrintf(
            "share of the %s signal that %s does not carry, noise included",
            mn, h));
        out = CSLAddString(out, CPLSPrintf(
            "what the top-%d PCA of the %s bands alone loses", K, mn));
        out = CSLAddString(out, CPLSPrintf(
            "%s infoloss minus unimodal: what %s lost beyond any "
            "%d-dimensional summary, noise included (signed)", mn, lost, K));
        if (def->nonred)
            out = CSLAddString(out, CPLSPrintf(
                "part of the %s signal that the other modality cannot "
                "predict linearly", mn));
        out = CSLAddString(out, CPLSPrintf(
            "what sensor noise alone makes the %s infoloss read", mn));
        out = CSLAddString(out, CPLSPrintf(
            "%s infoloss above the noise floor, mean over %dx%d pixels", mn,
            w, w));
        out = CSLAddString(out, CPLSPrintf(
            "%s excess above the noise, mean over %dx%d pixels: ground "
            "signal that %s lost beyond any %d-dimensional summary "
            "(signed)", mn, w, w, lost, K));
    }
    return out;
}

char **
mmcl__map_metadata(const mmcl__map_def *def, const mmcl__encoder *enc)
{
    char **md = NULL;
    if (def->kind == MMCL__MAP_EMBEDDING) {
        md = CSLSetNameValue(md, "PRODUCT", "embedding");
        md = CSLSetNameValue(md, "MODEL_HASH", enc->hash);
        md = CSLSetNameValue(md, "OBJECTIVE", enc->objective);
        md = CSLSetNameValue(md, "K", CPLSPrintf("%d", enc->k));
        md = CSLSetNameValue(md, "PATCH", CPLSPrintf("%d", enc->P));
        md = CSLSetNameValue(md, "MODALITY", def->modality);
        md = CSLSetNameValue(md, "PRECISION",
                             mmcl__precision_name(enc->precision));
        md = CSLSetNameValue(md, "MMCL_VERSION", mmcl_version());
    } else {
        md = CSLSetNameValue(md, "PRODUCT", "infoloss");
        md = CSLSetNameValue(md, "UNITS", LOSS_UNIT);
        md = CSLSetNameValue(md, "MODEL_HASH", enc->hash);
        md = CSLSetNameValue(md, "OBJECTIVE", enc->objective);
        md = CSLSetNameValue(md, "K", CPLSPrintf("%d", enc->k));
        md = CSLSetNameValue(md, "PATCH", CPLSPrintf("%d", enc->P));
        md = CSLSetNameValue(md, "STRUCTURE_WINDOW",
                             CPLSPrintf("%d", 2 * def->reach + 1));
        md = CSLSetNameValue(md, "PRECISION",
                             mmcl__precision_name(enc->precision));
        md = CSLSetNameValue(md, "MMCL_VERSION", mmcl_version());
    }
    /* What the input checks warned about (input_check.c). */
    for (int i = 0; enc->input_notes && enc->input_notes[i]; i++)
        md = CSLSetNameValue(md, CPLSPrintf("INPUT_NOTE_%d", i + 1),
                             enc->input_notes[i]);
    return md;
}

void
mmcl__map_def_set_mask(mmcl__map_def *def, const char *mask)
{
    def->mask_any = mask && strcmp(mask, "any") == 0;
}

mmcl_status
mmcl__map_set_precision(mmcl_context *ctx, mmcl__encoder *enc,
                        const char *value, const char *where)
{
    mmcl__precision p = MMCL__PRECISION_F32;
    if (value && !mmcl__precision_from_name(value, &p))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%sPRECISION '%s': expected f32 or bf16",
                           where ? where : "", value);
    /* A descriptor's key as written there, else the option as given. */
    char opt[1400];
    if (where)
        snprintf(opt, sizeof(opt), "%s\"precision\": \"%s\"", where,
                 mmcl__precision_name(p));
    else
        snprintf(opt, sizeof(opt), "%s",
                 mmcl__opt_setting(ctx, "PRECISION", mmcl__precision_name(p)));
    return enc ? mmcl__encoder_set_precision(ctx, enc, p, opt)
               : mmcl__precision_check(ctx, p, opt);
}

char **
mmcl__map_metadata_checks(char **md, const mmcl__map_def *def,
                          const mmcl__encoder *enc)
{
    md = CSLSetNameValue(md, "MASK", def->mask_any ? "any" : "own");
    for (int i = 0; enc->warning_codes && enc->warning_codes[i]; i++)
        md = CSLSetNameValue(md, CPLSPrintf("MODEL_WARNING_%d", i + 1),
                             CPLSPrintf("%s: %s", enc->warning_codes[i],
                                        enc->warning_messages[i]));
    return md;
}

/* ---- global figures of the information-loss maps ---------------------- */

void
mmcl__loss_sums_add(mmcl__loss_sums *a, const mmcl__loss_sums *b)
{
    a->sse_aligned += b->sse_aligned;
    a->sse_unimodal += b->sse_unimodal;
    a->sse_nonred += b->sse_nonred;
    a->n += b->n;
    a->n_nonred += b->n_nonred;
    for (int k = 0; k < MMCL__LOSS_MAX_BANDS; k++) {
        a->sum_c[k] += b->sum_c[k];
        a->sum_c2[k] += b->sum_c2[k];
        a->sum_c_nr[k] += b->sum_c_nr[k];
        a->sum_c2_nr[k] += b->sum_c2_nr[k];
    }
}

static double
total_ss(const double *sum, const double *sum2, double n, int B)
{
    double sst = 0;
    for (int b = 0; b < B && n > 0; b++)
        sst += sum2[b] - sum[b] * sum[b] / n;
    return sst;
}

/* The split of a modality's mean loss into noise and structure (absent
 * when the model has no noise estimate). */
static void
noise_figures(cJSON *o, const mmcl__modality *mod, double mean_infoloss,
              double mean_excess)
{
    double fa = mod->floor_infoloss, fu = mod->floor_unimodal;
    if (!isfinite(fa) || !isfinite(fu))
        return;
    double structured = mean_infoloss - fa;
    cJSON_AddNumberToObject(o, "noise_floor", fa);
    cJSON_AddNumberToObject(o, "noise_floor_unimodal", fu);
    cJSON_AddNumberToObject(o, "mean_structured_loss", structured);
    cJSON_AddNumberToObject(o, "mean_structured_excess",
                            mean_excess - (fa - fu));
    /* Shares of the mean infoloss: what noise alone makes it read, and
     * the rest (the structured share is at least 0: a loss below its
     * floor is noise). */
    double share = mean_infoloss > 0 ? fa / mean_infoloss : 1;
    if (share > 1)
        share = 1;
    cJSON_AddNumberToObject(o, "noise_share", share);
    cJSON_AddNumberToObject(o, "structured_share", 1 - share);
}

cJSON *
mmcl__loss_figures_json(const mmcl__encoder *enc, int nonred,
                        const mmcl__loss_sums total[2])
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model_hash", enc->hash);
    cJSON_AddStringToObject(j, "objective", enc->objective);
    cJSON_AddNumberToObject(j, "k", enc->k);
    cJSON_AddNumberToObject(j, "patch", enc->P);
    cJSON_AddStringToObject(j, "units", LOSS_UNIT);
    for (int m = 0; m < 2; m++) {
        const mmcl__loss_sums *s = &total[m];
        int B = enc->mod[m].B;
        double sst = total_ss(s->sum_c, s->sum_c2, s->n, B);
        double r2a = sst > 0 ? 1 - s->sse_aligned / sst : 0;
        double r2u = sst > 0 ? 1 - s->sse_unimodal / sst : 0;
        cJSON *o = cJSON_AddObjectToObject(j, mmcl__modality_name(m));
        cJSON_AddNumberToObject(o, "valid_pixels", s->n);
        cJSON_AddNumberToObject(o, "representation_dim", enc->mod[m].K);
        cJSON_AddNumberToObject(o, "r2_aligned", r2a);
        cJSON_AddNumberToObject(o, "r2_unimodal", r2u);
        cJSON_AddNumberToObject(o, "loss_fraction",
                                r2u > 0 ? (r2u - r2a) / r2u : 0);
        /* The plain fractions of the variance lost, beside the relative
         * loss_fraction. */
        cJSON_AddNumberToObject(o, "fraction_lost", sst > 0 ? 1 - r2a : 0);
        cJSON_AddNumberToObject(o, "fraction_lost_unimodal",
                                sst > 0 ? 1 - r2u : 0);
        double nb = s->n * B;
        cJSON_AddNumberToObject(o, "mean_infoloss",
                                nb > 0 ? s->sse_aligned / nb : 0);
        cJSON_AddNumberToObject(o, "mean_unimodal",
                                nb > 0 ? s->sse_unimodal / nb : 0);
        cJSON_AddNumberToObject(o, "mean_excess",
                                nb > 0 ? (s->sse_aligned - s->sse_unimodal) /
                                             nb
                                       : 0);
        noise_figures(o, &enc->mod[m], nb > 0 ? s->sse_aligned / nb : 0,
                      nb > 0 ? (s->sse_aligned - s->sse_unimodal) / nb : 0);
        if (nonred) {
            double sst_nr = total_ss(s->sum_c_nr, s->sum_c2_nr, s->n_nonred,
                                     B);
            double nbr = s->n_nonred * B;
            cJSON_AddNumberToObject(o, "mean_nonredundancy",
                                    nbr > 0 ? s->sse_nonred / nbr : 0);
            cJSON_AddNumberToObject(o, "r2_from_other_modality",
                                    sst_nr > 0 ? 1 - s->sse_nonred / sst_nr
                                               : 0);
        }
    }
    return j;
}

char **
mmcl__loss_figures_md(const cJSON *fig)
{
    static const char *const keys[] = {
        "r2_aligned", "r2_unimodal", "loss_fraction", "fraction_lost",
        "fraction_lost_unimodal", "mean_infoloss", "mean_unimodal",
        "mean_excess", "noise_floor", "noise_share", "mean_structured_loss",
        "mean_structured_excess", "mean_nonredundancy",
        "r2_from_other_modality", "valid_pixels", NULL};
    char **md = NULL;
    for (int m = 0; m < 2; m++) {
        const cJSON *o = cJSON_GetObjectItem(fig, mmcl__modality_name(m));
        for (int i = 0; keys[i]; i++) {
            const cJSON *v = cJSON_GetObjectItem(o, keys[i]);
            if (!cJSON_IsNumber(v))
                continue;
            char key[96], val[64];
            snprintf(key, sizeof(key), "%s_%s", keys[i], mmcl__modality_name(m));
            for (char *c = key; *c; c++)
                *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
            snprintf(val, sizeof(val), "%.6g", v->valuedouble);
            md = CSLAddString(md, CPLSPrintf("%s=%s", key, val));
        }
    }
    return md;
}

/* ---- the per-window compute ------------------------------------------- */

/*
 * The window is read once (with its halo), then processed cell by cell
 * (see struct cell below): the cell's patch vectors are built, encoded and
 * composed into the output before the next cell. The buffers are those of
 * one cell, whatever the window size, and stay in the cache between the
 * steps.
 */
int
mmcl__map_compress_threads(int workers)
{
    return workers <= 2 ? 1 : (workers + 1) / 2;
}

mmcl_status
mmcl__map_write_tile(mmcl_context *ctx, struct mmcl__writer *writer,
                     mmcl__tile_reader *reader, int x, int y, int w, int h,
                     const float *buf, double *seconds)
{
    double t0 = mmcl__thread_seconds();
    int cached = !mmcl__writer_is_direct(writer, x, y, w, h);
    if (cached)
        mmcl__tile_reader_lock(reader);
    mmcl_status st = mmcl__writer_write(ctx, writer, x, y, w, h, buf);
    if (cached)
        mmcl__tile_reader_unlock(reader);
    *seconds += mmcl__thread_seconds() - t0;
    return st;
}

/* Sums over the structured bands' window, row by row (noise_bands). */
typedef struct box_sums {
    double *loss, *excess, *count;
} box_sums;

struct mmcl__map_worker {
    const mmcl__encoder *enc;
    const mmcl__map_def *def;
    int tile;
    mmcl__tile_reader *tiles; /* borrowed; else the own reader: */
    mmcl__pair_reader *reader;
    mmcl__encoder_work *work;
    float *pad[2];   /* own reader: padded windows (B_m, H, W) */
    uint8_t *valid;  /* own reader: padded validity (H, W) */
    uint8_t *ok[2];  /* (tile*tile) patch of modality m valid */
    uint8_t *scratch;
    float *X[2];     /* (R, d_m) standardized patch vectors of a block */
    float *H[2];     /* (R, K_m) representations */
    float *U, *C, *pred; /* infoloss: (R, max K), (R, max B) x 2 */
    float *L;            /* infoloss: (3, R) losses of a block */
    float *raw;          /* infoloss: (2 loss_bands, (tile + 2 reach)^2) */
    int sum_x0, sum_y0, sum_x1, sum_y1; /* infoloss: pixels summed, window
                                         * coordinates */
    int width, height;                  /* of the raster */
    box_sums box;                       /* infoloss: (tile + 2 reach, tile) */
    double flop_per_row[2]; /* encoder m, per GEMM row */
    /* def->embedding: its reader, and the grown window read (k, T, T)
     * with its validity (T, T) */
    mmcl__embedding_reader *emb;
    float *E, *E_part; /* E_part: the part on the raster at its borders */
    uint8_t *E_valid, *E_part_valid;
    mmcl__map_timing timing;
};

void
mmcl__map_worker_destroy(mmcl__map_worker *w)
{
    if (!w)
        return;
    mmcl__pair_reader_destroy(w->reader);
    mmcl__encoder_work_free(w->work);
    mmcl__embedding_reader_destroy(w->emb);
    free(w->E);
    free(w->E_valid);
    free(w->E_part);
    free(w->E_part_valid);
    for (int m = 0; m < 2; m++) {
        free(w->pad[m]);
        free(w->ok[m]);
        free(w->X[m]);
        free(w->H[m]);
    }
    free(w->valid);
    free(w->scratch);
    free(w->U);
    free(w->C);
    free(w->pred);
    free(w->L);
    free(w->raw);
    free(w->box.loss);
    free(w->box.excess);
    free(w->box.count);
    free(w);
}

/* FLOP of one row through encoder m (the MLP and the private part). */
static double
encoder_flop_per_row(const mmcl__modality *mod)
{
    double f = 0;
    for (int l = 0; mod->mlp && l < mod->mlp->n_layers; l++)
        f += 2.0 * mod->mlp->sizes[l] * mod->mlp->sizes[l + 1];
    if (mod->kp > 0)
        f += 2.0 * mod->kp * ((double)mod->d + mod->k);
    return f;
}

/* A map worker with its own reader, or (@p tiles not NULL) computing
 * the windows that the tile reader reads. */
static mmcl__map_worker *
worker_create(mmcl_context *ctx, const mmcl__encoder *enc,
              const mmcl__pair *pair, const mmcl__map_def *def, int tile,
              mmcl__tile_reader *tiles)
{
    mmcl__map_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    w->enc = enc;
    w->def = def;
    w->tile = tile;
    w->width = mmcl__pair_width(pair);
    w->height = mmcl__pair_height(pair);
    /* An information-loss map computes its losses on the window grown by
     * the structured bands' reach. */
    size_t T = (size_t)tile + 2 * (size_t)def->reach;
    size_t Wp = (size_t)tile + 2 * (size_t)mmcl__map_halo(def, enc);
    size_t R = MMCL__GEMM_ROWS;
    size_t Kmax = (size_t)(enc->mod[0].K > enc->mod[1].K ? enc->mod[0].K
                                                           : enc->mod[1].K);
    size_t Bmax = (size_t)(enc->mod[0].B > enc->mod[1].B ? enc->mod[0].B
                                                           : enc->mod[1].B);
    int loss = def->kind == MMCL__MAP_INFOLOSS;
    w->tiles = tiles;
    if (!tiles)
        w->reader = mmcl__pair_reader_create(ctx, pair);
    int fail = !tiles && !w->reader;
    if (!fail && def->embedding) {
        /* The representation is read, not encoded. */
        w->emb = mmcl__embedding_reader_create(ctx, def->embedding);
        w->E = mmcl__malloc_array(ctx, T * T, (size_t)enc->k, sizeof(float));
        w->E_valid = mmcl__malloc_array(ctx, T, T, 1);
        w->E_part = mmcl__malloc_array(ctx, T * T, (size_t)enc->k,
                                       sizeof(float));
        w->E_part_valid = mmcl__malloc_array(ctx, T, T, 1);
        fail = !w->emb || !w->E || !w->E_valid || !w->E_part ||
               !w->E_part_valid;
    }
    if (!fail) {
        /* The encoder's products, the decoders' too (an audit's). */
        w->work = mmcl__encoder_work_create(ctx, enc);
        fail = !w->work;
    }
    if (!fail) {
        w->scratch = mmcl__malloc_array(ctx, Wp, T, 1);
        fail = !w->scratch;
    }
    if (!fail && !tiles) {
        w->valid = mmcl__malloc_array(ctx, Wp, Wp, 1);
        fail = !w->valid;
    }
    if (!fail && loss) {
        /* One representation buffer serves both modalities in turn. */
        w->H[0] = mmcl__malloc_array(ctx, R, Kmax, 4);
        w->U = mmcl__malloc_array(ctx, R, Kmax, 4);
        w->C = mmcl__malloc_array(ctx, R, Bmax, 4);
        w->pred = mmcl__malloc_array(ctx, R, Bmax, 4);
        w->L = mmcl__malloc_array(ctx, 3, R, 4);
        w->raw = mmcl__malloc_array(ctx, T * T, 2 * (size_t)def->loss_bands,
                                    4);
        w->box.loss = mmcl__malloc_array(ctx, T, (size_t)tile, 8);
        w->box.excess = mmcl__malloc_array(ctx, T, (size_t)tile, 8);
        w->box.count = mmcl__malloc_array(ctx, T, (size_t)tile, 8);
        fail = !w->H[0] || !w->U || !w->C || !w->pred || !w->L || !w->raw ||
               !w->box.loss || !w->box.excess || !w->box.count;
    }
    for (int m = 0; m < 2 && !fail; m++) {
        const mmcl__modality *mod = &enc->mod[m];
        w->flop_per_row[m] = encoder_flop_per_row(mod);
        if (!tiles) {
            w->pad[m] = mmcl__malloc_array(ctx, Wp * Wp, (size_t)mod->B, 4);
            fail = !w->pad[m];
        }
        w->ok[m] = mmcl__malloc_array(ctx, T, T, 1);
        w->X[m] = mmcl__malloc_array(ctx, R, (size_t)mod->d, 4);
        fail = fail || !w->ok[m] || !w->X[m];
        if (!fail && !loss) {
            w->H[m] = mmcl__malloc_array(ctx, R, (size_t)mod->K, 4);
            fail = !w->H[m];
        }
    }
    if (fail) {
        mmcl__map_worker_destroy(w);
        return NULL;
    }
    return w;
}

mmcl__map_worker *
mmcl__map_worker_create(mmcl_context *ctx, const mmcl__encoder *enc,
                        const mmcl__pair *pair, const mmcl__map_def *def,
                        int tile)
{
    return worker_create(ctx, enc, pair, def, tile, NULL);
}

void
mmcl__map_timing_add(mmcl__map_timing *a, const mmcl__map_timing *b)
{
    a->read_s += b->read_s;
    a->prep_s += b->prep_s;
    a->encode_s += b->encode_s;
    a->compose_s += b->compose_s;
    a->encode_flop += b->encode_flop;
    a->pixels += b->pixels;
}

void
mmcl__map_slots_destroy(mmcl__map_slots *s, mmcl__map_timing *total)
{
    if (!s)
        return;
    if (s->map && total)
        mmcl__map_timing_add(total, &s->map->timing);
    mmcl__map_worker_destroy(s->map);
    for (int k = 0; k < MMCL__TILE_SLOTS; k++)
        free(s->out[k]);
    free(s);
}

mmcl__map_slots *
mmcl__map_slots_create(mmcl_context *ctx, const mmcl__encoder *enc,
                       const mmcl__pair *pair, const mmcl__map_def *def,
                       int tile, mmcl__tile_reader *reader)
{
    mmcl__map_slots *s = calloc(1, sizeof(*s));
    if (!s) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    size_t T = (size_t)tile;
    s->map = worker_create(ctx, enc, pair, def, tile, reader);
    int ok = s->map != NULL;
    for (int k = 0; k < MMCL__TILE_SLOTS && ok; k++) {
        s->out[k] = mmcl__malloc_array(ctx, T * T, (size_t)def->n_out, 4);
        ok = s->out[k] != NULL;
    }
    if (!ok) {
        mmcl__map_slots_destroy(s, NULL);
        return NULL;
    }
    return s;
}

void
mmcl__map_timing_report(const char *what, const mmcl__map_timing *t,
                        double write_s)
{
    double gf = t->encode_flop / 1e9;
    CPLDebug("MMCL",
             "%s timing, CPU seconds of the threads: read %.3f, patches "
             "%.3f, encoders %.3f (%.3f GFLOP, %.2f GFLOP/s), compose %.3f, "
             "write %.3f; %.0f pixels",
             what, t->read_s, t->prep_s, t->encode_s, gf,
             t->encode_s > 0 ? gf / t->encode_s : 0.0, t->compose_s, write_s,
             t->pixels);
}

/* One pixel's patch vector, bands B, patch P (a constant in the calls
 * below, so that the compiler unrolls the common P = 3). */
static inline float *
patch_vector(float *x, const float *src, size_t plane, size_t W, int B, int P,
             const float *ms, const float *invs)
{
    for (int b = 0; b < B; b++) {
        const float m = ms[b], inv = invs[b];
        const float *s = src + plane * b;
        for (int r = 0; r < P; r++, s += W)
            for (int c = 0; c < P; c++)
                *x++ = (s[c] - m) * inv;
    }
    return x;
}

/*
 * A cell: the part of the window that one GEMM block computes. Cells are
 * squares of MMCL__CELL x MMCL__CELL pixels anchored on the output grid,
 * and a pixel always takes the GEMM row given by its place in its cell
 * (row (gy % MMCL__CELL) * MMCL__CELL + gx % MMCL__CELL), whatever window
 * it is computed in: some sgemm kernels (OpenBLAS's Haswell kernel) round
 * a row differently depending on where it sits in the call, so this is
 * what keeps a pixel's bits independent of the tile size, the thread count
 * and the windows a lazy product is read in. Rows of pixels outside the
 * window are zero and their results are dropped.
 */
enum { MMCL__CELL = 16 };
_Static_assert(MMCL__CELL * MMCL__CELL == MMCL__GEMM_ROWS,
               "a cell fills one GEMM block");

typedef struct cell {
    int i, j, w, h; /* the cell's part of the window, window coordinates */
    int s0;         /* GEMM row of its first pixel; row r adds r * CELL */
} cell;

/* Standardized patch vectors of @p count window pixels from (i, j) on,
 * one row of the window, into consecutive rows of X. */
static float *
run_patches(float *x, const float *padded, const mmcl__modality *mod, int tw,
            int th, int P, int i, int j, int count, const float *ms,
            const float *invs)
{
    int halo = P / 2, B = mod->B;
    size_t W = (size_t)tw + 2 * halo, plane = W * (th + 2 * halo);
    const float *src = padded + (size_t)j * W + i;
    for (int k = 0; k < count; k++, src++) {
        if (!ms) {
            /* More bands than the caller's tables: the same arithmetic. */
            for (int b = 0; b < B; b++) {
                float m = (float)mod->mean[b];
                float inv = (float)(1.0 / mod->std[b]);
                x = patch_vector(x, src + plane * b, plane, W, 1, P, &m,
                                 &inv);
            }
        } else if (P == 3) {
            x = patch_vector(x, src, plane, W, B, 3, ms, invs);
        } else {
            x = patch_vector(x, src, plane, W, B, P, ms, invs);
        }
    }
    return x;
}

/*
 * Standardized patch vectors of the cell's pixels into X (R, d), each in
 * its cell row, zero rows elsewhere: (v - mean_b) / std_b in float, layout
 * (band, row, col), as the probe's extract_patch (probe.c) computes it too.
 */
static void
cell_patches(float *X, const float *padded, const mmcl__modality *mod, int tw,
             int th, int P, const cell *c)
{
    enum { MAX_B = 256 };
    int B = mod->B;
    size_t d = (size_t)mod->d;
    float ms[MAX_B], invs[MAX_B];
    if (B <= MAX_B) {
        for (int b = 0; b < B; b++) {
            ms[b] = (float)mod->mean[b];
            invs[b] = (float)(1.0 / mod->std[b]);
        }
    }
    if (c->w * c->h < MMCL__GEMM_ROWS)
        memset(X, 0, MMCL__GEMM_ROWS * d * sizeof(float));
    for (int r = 0; r < c->h; r++)
        run_patches(X + (size_t)(c->s0 + r * MMCL__CELL) * d, padded, mod, tw,
                    th, P, c->i, c->j + r, c->w, B <= MAX_B ? ms : NULL,
                    invs);
}

/* Composes the embedding bands of @p nb window pixels from @p i0, whose
 * representations are the rows from @p s0 on, into @p out (n_out, n), NaN
 * where invalid. */
static void
compose_embedding(const mmcl__map_worker *w, size_t s0, size_t i0, size_t nb,
                  size_t n, float *out)
{
    const mmcl__encoder *enc = w->enc;
    const mmcl__map_def *def = w->def;
    const mmcl__modality *m1 = &enc->mod[0], *m2 = &enc->mod[1];
    int sp = m1->kp > 0 || m2->kp > 0;
    for (size_t q = 0; q < nb; q++) {
        size_t i = i0 + q, s = s0 + q;
        float *o = out + i; /* band stride n */
        if (def->use != MMCL__USE_JOINT) {
            int m = def->use == MMCL__USE_OPTICAL ? 0 : 1;
            int K = enc->mod[m].K;
            const float *h = w->H[m] + s * K;
            for (int b = 0; b < K; b++)
                o[b * n] = w->ok[m][i] ? h[b] : NAN;
            continue;
        }
        int ok1 = w->ok[0][i], ok2 = w->ok[1][i];
        const float *h1 = w->H[0] + s * m1->K, *h2 = w->H[1] + s * m2->K;
        if (sp) {
            /* [mean of the shared parts | private 1 | private 2]. */
            int k = enc->k;
            for (int b = 0; b < def->n_out; b++)
                o[b * n] = NAN;
            if (!(ok1 && ok2))
                continue;
            for (int b = 0; b < k; b++)
                o[b * n] = 0.5f * (h1[b] + h2[b]);
            for (int b = 0; b < m1->kp; b++)
                o[(k + b) * n] = h1[k + b];
            for (int b = 0; b < m2->kp; b++)
                o[(k + m1->kp + b) * n] = h2[k + b];
            continue;
        }
        /* Aligned spaces: the mean, valid where both patches are. */
        for (int b = 0; b < def->n_out; b++)
            o[b * n] = ok1 && ok2 ? 0.5f * (h1[b] + h2[b]) : NAN;
    }
}

/* The common case of compose_embedding (joint, aligned spaces) band by
 * band: each output band is written as one run of the block's pixels
 * instead of one value in each of n_out bands per pixel. Same values. */
static void
compose_joint(const mmcl__map_worker *w, size_t s0, size_t i0, size_t nb,
              size_t n, float *out)
{
    const int K1 = w->enc->mod[0].K, K2 = w->enc->mod[1].K;
    const float *H1 = w->H[0] + s0 * K1, *H2 = w->H[1] + s0 * K2;
    const uint8_t *ok1 = w->ok[0] + i0, *ok2 = w->ok[1] + i0;
    int all_both = 1;
    for (size_t q = 0; q < nb && all_both; q++)
        all_both = ok1[q] && ok2[q];
    if (all_both) {
        /* A transpose: runs of Q pixels, whose rows of H stay in the L1
         * cache while each band's run is written. */
        enum { Q = 16 };
        for (size_t q0 = 0; q0 < nb; q0 += Q) {
            size_t nq = nb - q0 < Q ? nb - q0 : Q;
            const float *h1 = H1 + q0 * K1, *h2 = H2 + q0 * K2;
            for (int b = 0; b < w->def->n_out; b++) {
                float *o = out + (size_t)b * n + i0 + q0;
                for (size_t q = 0; q < nq; q++)
                    o[q] = 0.5f * (h1[q * K1 + b] + h2[q * K2 + b]);
            }
        }
        return;
    }
    for (int b = 0; b < w->def->n_out; b++) {
        float *o = out + (size_t)b * n + i0;
        for (size_t q = 0; q < nb; q++)
            o[q] = ok1[q] && ok2[q]
                       ? 0.5f * (H1[q * K1 + b] + H2[q * K2 + b])
                       : NAN;
    }
}

/* loss[i] = ||C_i - pred_i||^2 / B for the n rows. */
static void
row_loss(float *loss, const float *C, const float *pred, size_t n, int B)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int b = 0; b < B; b++) {
            double e = (double)C[i * B + b] - pred[i * B + b];
            s += e * e;
        }
        loss[i] = (float)(s / B);
    }
}

/* The loss bands of modality @p m for @p nb window pixels from @p i0
 * (window row @p row, column @p col), whose losses are the block rows from
 * @p s0 on, into @p o (loss_bands, n), and the sums of the pixels in the
 * worker's summed rectangle (added to @p s, in pixel order). */
static void
loss_run(const mmcl__map_worker *w, int m, size_t s0, size_t i0, int col,
         int row, size_t nb, size_t n, float *o, mmcl__loss_sums *s)
{
    const mmcl__map_def *def = w->def;
    const size_t R = MMCL__GEMM_ROWS;
    const int B = w->enc->mod[m].B;
    int summed_row = row >= w->sum_y0 && row < w->sum_y1;
    for (size_t q = 0; q < nb; q++) {
        size_t i = i0 + q, r = s0 + q;
        int cq = col + (int)q;
        float *oq = o + i;
        if (!w->ok[m][i]) {
            for (int k = 0; k < def->loss_bands; k++)
                oq[k * n] = NAN;
            continue;
        }
        oq[0] = w->L[r];
        oq[n] = w->L[R + r];
        oq[2 * n] = oq[0] - oq[n];
        int summed = summed_row && cq >= w->sum_x0 && cq < w->sum_x1;
        if (def->nonred && (w->ok[0][i] && w->ok[1][i]))
            oq[3 * n] = w->L[2 * R + r];
        else if (def->nonred)
            oq[3 * n] = NAN;
        if (!summed)
            continue;
        s->n += 1;
        s->sse_aligned += (double)oq[0] * B;
        s->sse_unimodal += (double)oq[n] * B;
        const float *c = w->C + r * B;
        for (int b = 0; b < B; b++) {
            s->sum_c[b] += c[b];
            s->sum_c2[b] += (double)c[b] * c[b];
        }
        if (!def->nonred || !(w->ok[0][i] && w->ok[1][i]))
            continue;
        s->n_nonred += 1;
        s->sse_nonred += (double)oq[3 * n] * B;
        for (int b = 0; b < B; b++) {
            s->sum_c_nr[b] += c[b];
            s->sum_c2_nr[b] += (double)c[b] * c[b];
        }
    }
}

/* The embedding read for the window (def->embedding) as the rows of the
 * cell's pixels in w->H[0] (R, k): 0 in the other rows and where it is
 * NaN (pixels whose bands are NaN anyway). */
static void
embedding_rows(mmcl__map_worker *w, const cell *c, int tw, size_t n)
{
    const int k = w->enc->k;
    memset(w->H[0], 0, (size_t)MMCL__GEMM_ROWS * k * sizeof(float));
    for (int r = 0; r < c->h; r++)
        for (int q = 0; q < c->w; q++) {
            float *h = w->H[0] + (size_t)(c->s0 + r * MMCL__CELL + q) * k;
            size_t i = (size_t)(c->j + r) * tw + c->i + q;
            for (int b = 0; b < k; b++) {
                float v = w->E[n * b + i];
                h[b] = isnan(v) ? 0.0f : v;
            }
        }
}

/* The information-loss bands of the cell's pixels into @p out (n_out, n),
 * and their sums (added to @p sums). */
static mmcl_status
compose_infoloss(mmcl_context *ctx, mmcl__map_worker *w, const cell *c,
                 int tw, size_t n, float *out, mmcl__loss_sums *sums)
{
    const mmcl__encoder *enc = w->enc;
    const mmcl__map_def *def = w->def;
    const int R = MMCL__GEMM_ROWS;
    int halo = enc->P / 2, P = enc->P;
    mmcl_status st = MMCL_OK;
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        const mmcl__modality *mod = &enc->mod[m];
        int B = mod->B;
        /* Centre-pixel bands c_m (R, B). */
        for (int i = 0; i < R; i++)
            for (int b = 0; b < B; b++)
                w->C[i * B + b] =
                    w->X[m][i * mod->d + mmcl__patch_index(b, halo, halo, P)];
        double t0 = mmcl__thread_seconds();
        /* infoloss: through the aligned representation. */
        if (w->emb)
            embedding_rows(w, c, tw, n);
        else
            st = mmcl__encoder_embed(ctx, enc, w->work, m, w->X[m], R,
                                     w->H[0]);
        if (st != MMCL_OK)
            break;
        w->timing.encode_s += mmcl__thread_seconds() - t0;
        w->timing.encode_flop += w->flop_per_row[m] * R;
        st = mmcl__linear_apply(ctx, w->work, w->pred, &mod->dec_aligned,
                                w->H[0], R);
        if (st != MMCL_OK)
            break;
        row_loss(w->L, w->C, w->pred, R, B);
        /* unimodal: through PCA_K of the modality itself. */
        st = mmcl__linear_apply(ctx, w->work, w->U, &mod->unimodal, w->X[m],
                                R);
        if (st == MMCL_OK)
            st = mmcl__linear_apply(ctx, w->work, w->pred, &mod->dec_unimodal,
                                    w->U, R);
        if (st != MMCL_OK)
            break;
        row_loss(w->L + R, w->C, w->pred, R, B);
        /* non-redundancy: predicted from the other modality's patch. */
        if (def->nonred) {
            st = mmcl__linear_apply(ctx, w->work, w->pred, &mod->dec_nonred,
                                    w->X[1 - m], R);
            if (st != MMCL_OK)
                break;
            row_loss(w->L + 2 * R, w->C, w->pred, R, B);
        }
        float *o = out + (size_t)m * def->loss_bands * n;
        for (int r = 0; r < c->h; r++)
            loss_run(w, m, (size_t)(c->s0 + r * MMCL__CELL),
                     (size_t)(c->j + r) * tw + c->i, c->i, c->j + r,
                     (size_t)c->w, n, o, &sums[m]);
    }
    return st;
}

/* MASK=any: a pixel of either modality is valid only where both patches
 * are. */
static void
mask_any(mmcl__map_worker *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t both = w->ok[0][i] && w->ok[1][i];
        w->ok[0][i] = both;
        w->ok[1][i] = both;
    }
}

/* floor(a / b) * b for b > 0: the cell grid's line at or before a, also
 * left of or above the raster (a window grown by the structured reach). */
static int
cell_origin(int a, int b)
{
    int q = a / b;
    if (a % b != 0 && a < 0)
        q--;
    return q * b;
}

/* The embedding or the loss bands of the window [x, x+tw) x [y, y+th)
 * read into @p pad and @p valid (stride tw + 2 halo). */
static mmcl_status
compute_cells(mmcl_context *ctx, mmcl__map_worker *w, float *const pad[2],
              const uint8_t *valid, int x, int y, int tw, int th,
              float *out, mmcl__loss_sums *sums)
{
    const mmcl__encoder *enc = w->enc;
    const mmcl__map_def *def = w->def;
    const int R = MMCL__GEMM_ROWS, S = MMCL__CELL;
    int halo = enc->P / 2;
    size_t n = (size_t)tw * th;
    mmcl__loss_sums local[2]; /* when the caller wants no sums */
    int loss = def->kind == MMCL__MAP_INFOLOSS;
    if (loss && !sums)
        sums = local;
    if (sums)
        memset(sums, 0, 2 * sizeof(*sums));
    mmcl_status st = MMCL_OK;
    double t1 = mmcl__thread_seconds();
    int need[2] = {loss || def->use != MMCL__USE_SAR,
                   loss || def->use != MMCL__USE_OPTICAL};
    static const uint8_t bit[2] = {MMCL__VALID_OPTICAL, MMCL__VALID_SAR};
    for (int m = 0; m < 2; m++)
        if (need[m] || def->mask_any)
            mmcl__patch_valid(w->ok[m], valid, bit[m], tw, th, halo,
                              w->scratch);
    if (def->mask_any)
        mask_any(w, n);
    /* A foreign embedding is an input of every band. */
    for (int m = 0; m < 2 && w->emb; m++)
        for (size_t i = 0; i < n; i++)
            w->ok[m][i] = w->ok[m][i] && w->E_valid[i];
    int joint = def->use == MMCL__USE_JOINT && !enc->mod[0].kp &&
                !enc->mod[1].kp;
    for (int gy = cell_origin(y, S); gy < y + th && st == MMCL_OK; gy += S) {
        for (int gx = cell_origin(x, S); gx < x + tw && st == MMCL_OK;
             gx += S) {
            /* The cell's part of the window. */
            int x0 = gx > x ? gx : x, y0 = gy > y ? gy : y;
            int x1 = gx + S < x + tw ? gx + S : x + tw;
            int y1 = gy + S < y + th ? gy + S : y + th;
            cell c = {x0 - x, y0 - y, x1 - x0, y1 - y0,
                      (y0 - gy) * S + (x0 - gx)};
            for (int m = 0; m < 2; m++)
                if (need[m])
                    cell_patches(w->X[m], pad[m], &enc->mod[m], tw, th,
                                 enc->P, &c);
            double t2 = mmcl__thread_seconds();
            w->timing.prep_s += t2 - t1;
            if (loss) {
                double enc0 = w->timing.encode_s;
                st = compose_infoloss(ctx, w, &c, tw, n, out, sums);
                t1 = mmcl__thread_seconds();
                w->timing.compose_s +=
                    t1 - t2 - (w->timing.encode_s - enc0);
                continue;
            }
            for (int m = 0; m < 2 && st == MMCL_OK; m++) {
                if (!need[m])
                    continue;
                st = mmcl__encoder_embed(ctx, enc, w->work, m, w->X[m], R,
                                         w->H[m]);
                w->timing.encode_flop += w->flop_per_row[m] * R;
            }
            double t3 = mmcl__thread_seconds();
            w->timing.encode_s += t3 - t2;
            for (int r = 0; r < c.h && st == MMCL_OK; r++) {
                size_t s0 = (size_t)(c.s0 + r * S);
                size_t i0 = (size_t)(c.j + r) * tw + c.i;
                if (joint)
                    compose_joint(w, s0, i0, (size_t)c.w, n, out);
                else
                    compose_embedding(w, s0, i0, (size_t)c.w, n, out);
            }
            t1 = mmcl__thread_seconds();
            w->timing.compose_s += t1 - t3;
        }
    }
    w->timing.pixels += (double)n;
    return st;
}

/*
 * Sums over the structured bands' window, separably: hsum (eh, tw) holds
 * for each row of the grown window the sums over the 2S + 1 columns around
 * each of the window's columns (of the values that are valid and on the
 * raster), then each pixel adds the 2S + 1 rows around it. A pixel's sum
 * is thus always added in the same order, whatever the window.
 */

static void
box_rows(box_sums *h, const float *loss, const float *excess, int x, int tw,
         int eh, int S, int width)
{
    const int ew = tw + 2 * S;
    for (int r = 0; r < eh; r++) {
        const float *l = loss + (size_t)r * ew, *e = excess + (size_t)r * ew;
        double *hl = h->loss + (size_t)r * tw, *he = h->excess + (size_t)r * tw;
        double *hc = h->count + (size_t)r * tw;
        for (int i = 0; i < tw; i++) {
            /* Columns i .. i + 2S of the grown window that are on the
             * raster: x + i - S + di in [0, width). */
            int d0 = x + i - S < 0 ? S - (x + i) : 0;
            int d1 = x + i + S >= width ? S + width - 1 - (x + i) : 2 * S;
            double sl = 0, se = 0, c = 0;
            for (int di = d0; di <= d1; di++) {
                if (isnan(l[i + di]))
                    continue;
                sl += l[i + di];
                se += e[i + di];
                c += 1;
            }
            hl[i] = sl;
            he[i] = se;
            hc[i] = c;
        }
    }
}

/*
 * The noise bands of the information-loss map of the window [x, x+tw) x
 * [y, y+th) from its loss bands in w->raw, computed on the window grown by
 * the reach S (docs/noise.md): per modality, the loss bands of the
 * window's pixels, then
 *   noise_floor       = the model's floor of the infoloss band,
 *   structured_loss   = mean infoloss over the (2S+1)^2 window - floor,
 *   structured_excess = mean excess over the window - (floor - unimodal
 *                       floor),
 * the means over the window's pixels whose loss is valid and that lie on
 * the raster; NaN where the pixel's own loss is NaN.
 */
static void
noise_bands(mmcl__map_worker *w, int x, int y, int tw, int th, float *out)
{
    const mmcl__map_def *def = w->def;
    const int S = def->reach, ew = tw + 2 * S, eh = th + 2 * S;
    const int L = def->loss_bands;
    const size_t n = (size_t)tw * th, ne = (size_t)ew * eh;
    double t0 = mmcl__thread_seconds();
    for (int m = 0; m < 2; m++) {
        const mmcl__modality *mod = &w->enc->mod[m];
        const float *raw = w->raw + (size_t)m * L * ne;
        float *o = out + (size_t)m * def->per_mod * n;
        const double fa = mod->floor_infoloss;
        const double fu = mod->floor_unimodal;
        for (int k = 0; k < L; k++)
            for (int j = 0; j < th; j++)
                memcpy(o + k * n + (size_t)j * tw,
                       raw + k * ne + (size_t)(j + S) * ew + S,
                       (size_t)tw * sizeof(float));
        box_rows(&w->box, raw, raw + 2 * ne, x, tw, eh, S, w->width);
        float *nf = o + L * n, *sl = nf + n, *se = sl + n;
        for (int j = 0; j < th; j++) {
            int d0 = y + j - S < 0 ? S - (y + j) : 0;
            int d1 = y + j + S >= w->height ? S + w->height - 1 - (y + j)
                                             : 2 * S;
            for (int i = 0; i < tw; i++) {
                size_t p = (size_t)j * tw + i;
                if (isnan(o[p])) {
                    nf[p] = sl[p] = se[p] = NAN;
                    continue;
                }
                double sum_l = 0, sum_e = 0, count = 0;
                for (int dj = d0; dj <= d1; dj++) {
                    size_t q = (size_t)(j + dj) * tw + i;
                    sum_l += w->box.loss[q];
                    sum_e += w->box.excess[q];
                    count += w->box.count[q];
                }
                nf[p] = (float)fa;
                sl[p] = (float)(sum_l / count - fa);
                se[p] = (float)(sum_e / count - (fa - fu));
            }
        }
    }
    w->timing.compose_s += mmcl__thread_seconds() - t0;
}

/* The embedding of the window [x, x+tw) x [y, y+th), which may reach
 * beyond the raster (NaN and invalid there), into w->E and w->E_valid. */
static mmcl_status
read_embedding(mmcl_context *ctx, mmcl__map_worker *w, int x, int y, int tw,
               int th)
{
    const int k = w->enc->k;
    const size_t n = (size_t)tw * th;
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + tw > w->width ? w->width : x + tw;
    int y1 = y + th > w->height ? w->height : y + th;
    double t0 = mmcl__thread_seconds();
    mmcl_status st = MMCL_OK;
    if (x0 == x && y0 == y && x1 == x + tw && y1 == y + th) {
        st = mmcl__embedding_read(ctx, w->emb, x, y, tw, th, w->E,
                                  w->E_valid);
    } else {
        /* The part on the raster, then spread out. */
        int cw = x1 - x0, ch = y1 - y0;
        size_t cn = (size_t)cw * ch;
        float *part = w->E_part;
        uint8_t *pv = w->E_part_valid;
        st = mmcl__embedding_read(ctx, w->emb, x0, y0, cw, ch, part, pv);
        for (int b = 0; st == MMCL_OK && b < k; b++)
            for (int j = 0; j < th; j++)
                for (int i = 0; i < tw; i++) {
                    int gx = x + i, gy = y + j;
                    int in = gx >= x0 && gx < x1 && gy >= y0 && gy < y1;
                    w->E[n * b + (size_t)j * tw + i] =
                        in ? part[cn * b + (size_t)(gy - y0) * cw + gx - x0]
                           : NAN;
                }
        for (int j = 0; st == MMCL_OK && j < th; j++)
            for (int i = 0; i < tw; i++) {
                int gx = x + i, gy = y + j;
                int in = gx >= x0 && gx < x1 && gy >= y0 && gy < y1;
                w->E_valid[(size_t)j * tw + i] =
                    in && pv[(size_t)(gy - y0) * cw + gx - x0];
            }
    }
    w->timing.read_s += mmcl__thread_seconds() - t0;
    return st;
}

/* The map of the window [x, x+tw) x [y, y+th) read into @p pad and
 * @p valid (stride tw + 2 halo, halo mmcl__map_halo). */
static mmcl_status
compute_window(mmcl_context *ctx, mmcl__map_worker *w, float *const pad[2],
               const uint8_t *valid, int x, int y, int tw, int th,
               float *out, mmcl__loss_sums *sums)
{
    if (w->def->kind != MMCL__MAP_INFOLOSS)
        return compute_cells(ctx, w, pad, valid, x, y, tw, th, out, sums);
    /* The loss bands on the window grown by the reach, of which only the
     * window's own pixels are summed. */
    int S = w->def->reach;
    w->sum_x0 = S;
    w->sum_y0 = S;
    w->sum_x1 = S + tw;
    w->sum_y1 = S + th;
    mmcl_status st = w->emb ? read_embedding(ctx, w, x - S, y - S, tw + 2 * S,
                                             th + 2 * S)
                            : MMCL_OK;
    if (st == MMCL_OK)
        st = compute_cells(ctx, w, pad, valid, x - S, y - S,
                                   tw + 2 * S, th + 2 * S, w->raw, sums);
    if (st == MMCL_OK)
        noise_bands(w, x, y, tw, th, out);
    return st;
}

static mmcl_status
check_window(mmcl_context *ctx, const mmcl__map_worker *w, int tw, int th)
{
    if (tw < 1 || th < 1 || tw > w->tile || th > w->tile)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "window %dx%d does not fit the %d-pixel worker",
                           tw, th, w->tile);
    return MMCL_OK;
}

mmcl_status
mmcl__map_compute(mmcl_context *ctx, mmcl__map_worker *w, int x, int y,
                  int tw, int th, float *out, mmcl__loss_sums *sums)
{
    mmcl_status st = check_window(ctx, w, tw, th);
    if (st == MMCL_OK && !w->reader)
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "this map worker computes the tile reader's tiles");
    if (st != MMCL_OK)
        return st;
    double t0 = mmcl__thread_seconds();
    st = mmcl__pair_read(ctx, w->reader, x, y, tw, th,
                         mmcl__map_halo(w->def, w->enc), w->pad[0], w->pad[1],
                         w->valid);
    w->timing.read_s += mmcl__thread_seconds() - t0;
    if (st != MMCL_OK)
        return st;
    return compute_window(ctx, w, w->pad, w->valid, x, y, tw, th, out, sums);
}

mmcl_status
mmcl__map_compute_tile(mmcl_context *ctx, mmcl__map_slots *s,
                       const mmcl__tile *t, float *out, mmcl__loss_sums *sums)
{
    mmcl__map_worker *w = s->map;
    float *pad[2];
    uint8_t *valid;
    mmcl_status st = check_window(ctx, w, t->w, t->h);
    if (st != MMCL_OK)
        return st;
    st = mmcl__tile_reader_get(ctx, w->tiles, t->index, pad, &valid);
    if (st != MMCL_OK)
        return st;
    st = compute_window(ctx, w, pad, valid, t->x, t->y, t->w, t->h, out,
                        sums);
    mmcl__tile_reader_release(w->tiles, t->index);
    return st;
}
