/* SPDX-License-Identifier: MIT */
/*
 * Private: what embed, infoloss and the GDAL plugin share: a model and a
 * raster pair opened together and checked against each other, patch
 * validity, the per-window compute and the tile reader.
 */
#ifndef MMCL_MAPS_INTERNAL_H
#define MMCL_MAPS_INTERNAL_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "embedding_raster_internal.h"
#include "encoder_internal.h"
#include "output_internal.h"
#include "pair_internal.h"
#include "tile_reader_internal.h"
#include "tiles_internal.h"

/* Opens the pair with the pair options recorded in the model (and the
 * misregistration correction of the operation's options @p opts) and checks
 * it against the model: band counts, and what mmcl__input_check_model
 * checks (whose notes it keeps in the encoder's input_notes). */
mmcl_status mmcl__maps_open(mmcl_context *ctx, const mmcl_model *model,
                            const char *const *optical, size_t n_optical,
                            const char *const *sar, size_t n_sar,
                            const mmcl_options *opts, mmcl__encoder **enc,
                            mmcl__pair **pair);

/* A new set of the files of a map operation with inputs: the model's file,
 * the optical and the SAR rasters (and what GDAL reads with them), and the
 * shift field of @p opts (SAR_SHIFT_FIELD); OVERWRITE of @p opts. */
mmcl_status mmcl__maps_files(mmcl_context *ctx, const mmcl_model *model,
                             const char *const *optical, size_t n_optical,
                             const char *const *sar, size_t n_sar,
                             const mmcl_options *opts, mmcl__files **out);

/*
 * centre[j*w + i] = 1 when every pixel of the P x P window around tile
 * pixel (i, j) has all bits of @p need in the padded validity @p valid
 * (stride W = w + 2 halo). scratch: (h + 2 halo) * w bytes.
 */
void mmcl__patch_valid(uint8_t *centre, const uint8_t *valid, uint8_t need,
                       int w, int h, int halo, uint8_t *scratch);

/* ---- what a map computes (map_compute.c) ------------------------------ */

typedef enum mmcl__map_kind {
    MMCL__MAP_EMBEDDING = 0,
    MMCL__MAP_INFOLOSS = 1
} mmcl__map_kind;

typedef enum mmcl__embed_use {
    MMCL__USE_JOINT = 0,
    MMCL__USE_OPTICAL = 1,
    MMCL__USE_SAR = 2
} mmcl__embed_use;

enum { MMCL__LOSS_MAX_BANDS = 64 };

/* The structured bands of an information-loss map average the loss over
 * a window of this edge (odd) around each pixel (docs/noise.md). */
#define MMCL__STRUCTURE_WINDOW 5

typedef struct mmcl__map_def {
    mmcl__map_kind kind;
    mmcl__embed_use use;  /* embedding: which encoder */
    const char *modality; /* embedding: "joint", "optical" or "sar" */
    int nonred;           /* infoloss: non-redundancy bands */
    int loss_bands;       /* infoloss: infoloss, unimodal, excess[, nonred] */
    int per_mod;          /* infoloss: bands per modality (loss_bands and
                           * noise_floor, structured_loss, structured_excess) */
    int reach;            /* infoloss: the structured bands' window radius */
    int n_out;            /* output bands */
    int mask_any;         /* MASK=any: every band NaN where either patch is
                             invalid (set by the caller after init) */
    /* infoloss of a foreign embedding (mmcl audit): the representation of
     * both modalities is read from this raster (enc->k bands, on the
     * grid), not encoded, and is an input of every band (NaN where it is
     * invalid); the encoder then has no MLP (P = 1, its decoders and PCA
     * fitted by the audit). Set by the caller after init; else NULL. */
    const mmcl__embedding_raster *embedding;
} mmcl__map_def;

/* The halo a window of the map is read with: the patch's, and for an
 * information-loss map the structured bands' window radius. */
int mmcl__map_halo(const mmcl__map_def *def, const mmcl__encoder *enc);

/* Fills @p def for @p enc. @p modality (embedding) is "optical", "sar" or
 * "joint" (NULL = joint); @p nonred (infoloss) adds the non-redundancy
 * bands. Fails on a bad modality or (infoloss) too many bands. */
mmcl_status mmcl__map_def_init(mmcl_context *ctx, mmcl__map_def *def,
                               const mmcl__encoder *enc, mmcl__map_kind kind,
                               const char *modality, int nonred);

/* Band descriptions (emb_000.., infoloss_optical..): CSL, CSLDestroy. */
char **mmcl__map_band_names(const mmcl__map_def *def);

/* Each band's unit (for GDALSetRasterUnitType) and what it means in a
 * sentence (the band's LONG_NAME metadata): CSLs of n_out (CSLDestroy). */
char **mmcl__map_band_units(const mmcl__map_def *def);
char **mmcl__map_band_meanings(const mmcl__map_def *def,
                               const mmcl__encoder *enc);

/* The MMCL metadata of the map other than the global figures, as a CSL of
 * KEY=VALUE in the order the writers set them (CSLDestroy); the notes of
 * the input checks are INPUT_NOTE_1, INPUT_NOTE_2, ... */
char **mmcl__map_metadata(const mmcl__map_def *def, const mmcl__encoder *enc);

/*
 * The validity rule (README, "Validity"): a value is valid when every input
 * value it is computed from is valid. A modality's bands use its own patch,
 * the joint embedding and the non-redundancy bands both patches; with
 * MASK=any (def->mask_any) every band needs both. Sets def->mask_any from
 * the MASK option @p mask ("own" or "any"; NULL = own).
 */
void mmcl__map_def_set_mask(mmcl__map_def *def, const char *mask);

/*
 * The PRECISION option @p value ("f32" or "bf16"; NULL = f32) of a map:
 * checked against the CPU, and with @p enc not NULL set on it (before any
 * worker exists). The message names the option as the user gave it,
 * after @p where (NULL, or e.g. "descriptor 'x.mmcl.json': ").
 */
mmcl_status mmcl__map_set_precision(mmcl_context *ctx, mmcl__encoder *enc,
                                    const char *value, const char *where);

/* Appends to @p md (a CSL of KEY=VALUE, returned) what the map's validity
 * and the model's training say: MASK=own|any and the warnings recorded in
 * the model as MODEL_WARNING_1=<code>: <message>, ... */
char **mmcl__map_metadata_checks(char **md, const mmcl__map_def *def,
                                 const mmcl__encoder *enc);

/* Sums over the valid pixels of a window, for the global figures of one
 * modality of an information-loss map. */
typedef struct mmcl__loss_sums {
    double sse_aligned, sse_unimodal, sse_nonred; /* summed over bands */
    double n, n_nonred;                           /* pixels */
    double sum_c[MMCL__LOSS_MAX_BANDS], sum_c2[MMCL__LOSS_MAX_BANDS];
    /* where both modalities are valid */
    double sum_c_nr[MMCL__LOSS_MAX_BANDS], sum_c2_nr[MMCL__LOSS_MAX_BANDS];
} mmcl__loss_sums;

/* a += b (merged in tile order by the callers, for thread-independence). */
void mmcl__loss_sums_add(mmcl__loss_sums *a, const mmcl__loss_sums *b);

/* The global figures (design 3.5) from the totals of both modalities, as
 * the JSON of the report (cJSON_Delete). */
cJSON *mmcl__loss_figures_json(const mmcl__encoder *enc, int nonred,
                               const mmcl__loss_sums total[2]);

/* The figures as MMCL metadata (R2_ALIGNED_OPTICAL=..., ...): a CSL of
 * KEY=VALUE (CSLDestroy). */
char **mmcl__loss_figures_md(const cJSON *fig);

/* Where a map worker's time went: CPU seconds of its thread in each step
 * (clock of the thread, so time the thread spent descheduled on a busy
 * machine is not counted), and the FLOP of the encoder GEMMs. */
typedef struct mmcl__map_timing {
    double read_s;    /* reading the window (decode, warp, validity) */
    double prep_s;    /* patch vectors */
    double encode_s;  /* the encoders: GEMM blocks, bias, activation */
    double compose_s; /* output bands (infoloss: with the decoders) */
    double encode_flop;
    double pixels;
} mmcl__map_timing;


void mmcl__map_timing_add(mmcl__map_timing *a, const mmcl__map_timing *b);

/* Reports @p t and the writer's @p write_s CPU seconds as a GDAL debug
 * message (category MMCL: --debug on, or --config CPL_DEBUG MMCL). */
void mmcl__map_timing_report(const char *what, const mmcl__map_timing *t,
                             double write_s);

/*
 * Per-thread state of the map compute (libvips' start/work/stop state):
 * its own pair reader (own GDAL handles), encoder scratch and buffers for
 * windows of up to @p tile x @p tile pixels. @p enc, @p pair and @p def
 * are borrowed and must outlive the worker.
 */
typedef struct mmcl__map_worker mmcl__map_worker;
mmcl__map_worker *mmcl__map_worker_create(mmcl_context *ctx,
                                          const mmcl__encoder *enc,
                                          const mmcl__pair *pair,
                                          const mmcl__map_def *def, int tile);
void mmcl__map_worker_destroy(mmcl__map_worker *w);

/* GDAL's compression threads for a map written by @p workers workers.
 * The commit thread compresses while the workers compute, and keeps up
 * with two of them (64 float bands: ~2 CPU seconds per megapixel against
 * ~5 for the encoders of one worker); GDAL's own threads would then only
 * add a copy of every block and hand-offs, so they are asked for only
 * beyond two workers. */
int mmcl__map_compress_threads(int workers);

/* Writes a finished window (band-sequential float32) on the commit thread,
 * taking the reader's turn when the write goes through GDAL's block cache,
 * and adds the thread's CPU seconds to *seconds. */
struct mmcl__writer;
mmcl_status mmcl__map_write_tile(mmcl_context *ctx, struct mmcl__writer *writer,
                                 mmcl__tile_reader *reader, int x, int y,
                                 int w, int h, const float *buf,
                                 double *seconds);

/* What a tile-pool worker of embed and infoloss holds: its map worker
 * (its windows read by @p reader) and, per tile slot, the output window
 * (n_out, tile, tile) and the infoloss sums of the slot's tile. */
typedef struct mmcl__map_slots {
    mmcl__map_worker *map;
    float *out[MMCL__TILE_SLOTS];
    mmcl__loss_sums sums[MMCL__TILE_SLOTS][2];
} mmcl__map_slots;
mmcl__map_slots *mmcl__map_slots_create(mmcl_context *ctx,
                                        const mmcl__encoder *enc,
                                        const mmcl__pair *pair,
                                        const mmcl__map_def *def, int tile,
                                        mmcl__tile_reader *reader);
/* Adds the worker's timing to @p total (when not NULL) and frees it. */
void mmcl__map_slots_destroy(mmcl__map_slots *s, mmcl__map_timing *total);

/*
 * Computes the window [x, x+tw) x [y, y+th) (tw, th <= tile) of the map
 * into @p out (n_out, th, tw), NaN where invalid. The window is processed
 * in cells of MMCL__GEMM_ROWS pixels anchored on the grid, with buffers of
 * one cell (memory does not grow with the tile beyond the window itself),
 * and every GEMM runs on a whole cell with each pixel in the row its place
 * in the cell gives, so a pixel's bits do not depend on the window.
 * @p sums (infoloss, may be NULL) receives the window's sums of both
 * modalities.
 */
mmcl_status mmcl__map_compute(mmcl_context *ctx, mmcl__map_worker *w, int x,
                              int y, int tw, int th, float *out,
                              mmcl__loss_sums *sums);

/* mmcl__map_compute of pool tile @p t (tw, th <= tile) from the window the
 * slots' tile reader read for it. */
mmcl_status mmcl__map_compute_tile(mmcl_context *ctx, mmcl__map_slots *s,
                                   const mmcl__tile *t, float *out,
                                   mmcl__loss_sums *sums);

/* ---- map_run.c: one map written tile by tile (embed, infoloss) ------- */

/*
 * A map run. The caller sets product ("embedding" or "infoloss") and
 * def.kind, then calls mmcl__map_run_open, mmcl__map_run_tiles, writes
 * the metadata and commits the writer (infoloss: with its report), and
 * always ends with mmcl__map_run_close.
 */
typedef struct mmcl__map_run {
    const char *product; /* the output's kind (output.c) */
    /* The output's QGIS style (writer_internal.h), set by the caller. */
    mmcl_status (*style)(mmcl_context *ctx, const char *raster,
                         const char *qml, const char *shown);
    mmcl__map_def def;   /* def.kind set by the caller, the rest by open */
    mmcl__encoder *enc;
    mmcl__pair *pair;
    mmcl__files *files;
    struct mmcl__writer *writer;
    mmcl__tile_reader *reader; /* reads the tiles ahead of the workers */
    char **names;              /* band names (CSL) */
    char **units, **meanings;  /* band units and LONG_NAMEs (CSL) */
    char **metadata;           /* the map's metadata (CSL) */
    const char *report;        /* infoloss: REPORT, or NULL */
    mmcl__stage *report_stage; /* the report's, once it is written */
    int tile, threads;
    mmcl_progress_fn progress;
    void *progress_user;
    double start; /* progress at the start of the tiles (0 unless the
                   * caller did work before them) */
    double split; /* progress at the end of the tiles */
    mmcl__loss_sums total[2]; /* infoloss: the tiles' sums, in tile order */
    /* For --debug: the workers' times (added by the pool's stop, from one
     * thread) and the writer's. */
    mmcl__map_timing timing;
    double write_s;
    /* Shared among MPI ranks or journaled (RESUME): the tiles go through
     * dist.c; only rank 0 has the writer. The journal's path and what it
     * is for (rank 0, with RESUME). */
    int dist;
    char *journal, *fingerprint;
    float *dist_buf; /* rank 0: a tile's window for the writer */
} mmcl__map_run;

/* Checks the inputs and the output (and the report), opens the model and
 * the pair, and creates the output raster; a LAZY option is refused. */
mmcl_status mmcl__map_run_open(mmcl_context *ctx, mmcl__map_run *r,
                               const mmcl_model *model,
                               const char *const *optical, size_t n_optical,
                               const char *const *sar, size_t n_sar,
                               const char *out, const mmcl_options *o);

/* The steps of mmcl__map_run_open, for a run whose caller builds the
 * encoder and opens the pair itself (mmcl audit): with r->files set, the
 * options of the outputs checked (a LAZY option refused) and the report
 * added to the files; then, with r->enc and r->pair set (and
 * r->def.embedding, kept), the map's definition and the output raster. */
mmcl_status mmcl__map_run_check_outputs(mmcl_context *ctx, mmcl__map_run *r,
                                        const char *out,
                                        const mmcl_options *o,
                                        const char **format);
mmcl_status mmcl__map_run_create(mmcl_context *ctx, mmcl__map_run *r,
                                 const char *out, const mmcl_options *o,
                                 const char *format);

/* With the tiles written: the map's metadata (r->metadata, then the
 * figures @p fig as mmcl__loss_figures_md gives them), the map and the
 * report (@p fig as JSON, when r->report) moved into place together, or
 * neither (progress r->split to 1); *report_json (when not NULL) receives
 * the JSON. */
mmcl_status mmcl__map_run_finish(mmcl_context *ctx, mmcl__map_run *r,
                                 const cJSON *fig, char **report_json);

/* Starts the reader and runs the tiles into the writer (progress r->start
 * to r->split). */
mmcl_status mmcl__map_run_tiles(mmcl_context *ctx, mmcl__map_run *r);

/* How the run ended, for every rank: @p st is this rank's status (rank 0:
 * the output's commit); on success the journal is removed. With several
 * MPI ranks, all learn whether the job failed (dist_internal.h). */
mmcl_status mmcl__map_run_end(mmcl_context *ctx, mmcl__map_run *r,
                              mmcl_status st);

/* Stops the reader and posts where the time went (GDAL debug). */
void mmcl__map_run_report_timing(mmcl__map_run *r, const char *what);

/* Frees the run; an output not committed is removed. */
void mmcl__map_run_close(mmcl__map_run *r);

#endif /* MMCL_MAPS_INTERNAL_H */
