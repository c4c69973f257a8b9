/* SPDX-License-Identifier: MIT */
/*
 * The option tables of every operation and the KEY=VALUE parser they drive.
 * A table is the single source of truth for an option: the parser, the
 * program's --help and --json-usage, and the QGIS provider all read it.
 */
#define _DEFAULT_SOURCE /* strncasecmp, sysconf */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "context_internal.h"
#include "options_internal.h"

/* Output options shared by every operation that writes a raster. */
#define MMCL__OUTPUT_DEFS                                                      \
    {"FORMAT", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "-of", "FORMAT",       \
     "GDAL output format (GTiff, COG, PNG, ...); when not given, from the "    \
     "output's extension, as GDAL's utilities (no extension: GTiff)",          \
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},                          \
    {"CO", MMCL_OPT_LIST, NULL, NULL, NULL, NULL, "-co", "NAME=VALUE",         \
     "GDAL creation option; repeat for several",                               \
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},                          \
    {"OVERWRITE", MMCL_OPT_BOOL, "NO", NULL, NULL, NULL, "--overwrite", NULL,  \
     "replace an existing output of the same kind (never an input)",           \
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT}

/* How the SAR is put on the optical grid; shared by every operation that
 * reads a raster pair. */
#define MMCL__PAIR_DEFS                                                        \
    {"RESAMPLING", MMCL_OPT_ENUM, "auto", NULL, NULL,                          \
     "auto|near|bilinear|cubic|cubicspline|lanczos|average|mode|min|max|med|"  \
     "q1|q3",                                                                  \
     "-r", "METHOD",                                                           \
     "SAR resampling; auto = average when the SAR is finer than the optical "  \
     "grid, else bilinear",                                                    \
     MMCL_OPT_USAGE_LIBRARY},                                                  \
    {"SAR_TRANSFORM", MMCL_OPT_ENUM, "none", NULL, NULL, "none|db|linear",     \
     "--sar-db=db --sar-linear=linear --sar-transform", "none|db|linear",      \
     "convert SAR power to dB (--sar-db) or dB to linear (--sar-linear) "      \
     "before resampling",                                                      \
     MMCL_OPT_USAGE_LIBRARY},                                                  \
    {"SPECKLE", MMCL_OPT_STRING, "none", NULL, NULL, NULL, "--speckle",        \
     "lee:N[:ENL]",                                                            \
     "speckle filter applied on the SAR grid before resampling: Lee with an "  \
     "N x N window (odd N) and equivalent number of looks ENL (default 4.4)",  \
     MMCL_OPT_USAGE_LIBRARY},                                                  \
    {"STACK_RESAMPLING", MMCL_OPT_ENUM, "near", NULL, NULL,                    \
     "near|bilinear|cubic|average", "--stack-r", "METHOD",                     \
     "resampling of coarser optical files stacked onto the finest grid",       \
     MMCL_OPT_USAGE_LIBRARY},                                                  \
    {"ERROR_THRESHOLD", MMCL_OPT_DOUBLE, "0.125", "0", "10", NULL, "-et",      \
     "PIXELS",                                                                 \
     "maximum error of the interpolated coordinate transform, in pixels "      \
     "(0 = exact for every pixel)", MMCL_OPT_USAGE_LIBRARY}

/* The SAR misregistration corrected inside the warp (docs/shift.md);
 * shared by every operation that reads a raster pair. */
#define MMCL__SHIFT_DEFS                                                       \
    {"SAR_SHIFT", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--sar-shift",     \
     "DX,DY",                                                                  \
     "correct a constant SAR misregistration: the SAR shows the ground of "   \
     "optical pixel (x, y) at (x + DX, y + DY), in optical pixels (x east, "  \
     "y down); applied inside the warp (one resampling)",                     \
     MMCL_OPT_USAGE_LIBRARY},                                                  \
    {"SAR_SHIFT_FIELD", MMCL_OPT_STRING, NULL, NULL, NULL, NULL,               \
     "--sar-shift-field", "FILE",                                              \
     "correct the SAR misregistration with a shift field of mmcl coreg "      \
     "(one dx, dy per block of the optical grid), interpolated bilinearly "   \
     "between block centres inside the warp",                                 \
     MMCL_OPT_USAGE_LIBRARY},                                                  \
    {"SHIFT_MIN_CONFIDENCE", MMCL_OPT_DOUBLE, "0.5", "0", "1", NULL,           \
     "--shift-min-confidence", "C",                                            \
     "blocks of the shift field less confident than C (or NaN) take the "     \
     "confidence-weighted mean of their confident neighbours",                \
     MMCL_OPT_USAGE_LIBRARY}

/* How an embedding raster is read (src/grid/embedding_raster.c); shared by
 * every operation that reads one. */
#define MMCL__EMBEDDING_DEFS                                                   \
    {"DEQUANTIZE", MMCL_OPT_ENUM, "auto", NULL, NULL,                          \
     "auto|none|linear|alphaearth", "--dequantize",                            \
     "none|linear|alphaearth|auto",                                            \
     "how the embedding raster's values become embedding values: none = as "   \
     "they are; linear = each band's scale and offset; alphaearth = int8 "     \
     "codes q of the Satellite Embedding dataset, sign(q) (|q|/127.5)^2, "     \
     "-128 masked; auto = alphaearth for int8 rasters with nodata -128 or "    \
     "64 bands A00..A63, linear when scale or offset are set, else none",     \
     MMCL_OPT_USAGE_LIBRARY},                                                  \
    {"EMBEDDING_BANDS", MMCL_OPT_STRING, NULL, NULL, NULL, NULL,               \
     "--embedding-bands", "LIST",                                              \
     "bands of the embedding raster to use, by number, range or "             \
     "description, comma separated (1-8,12 or A00,A01); default: every band", \
     MMCL_OPT_USAGE_LIBRARY},                                                  \
    {"EMBEDDING_RESAMPLING", MMCL_OPT_ENUM, "auto", NULL, NULL,                \
     "auto|near|bilinear|cubic|cubicspline|lanczos|average",                   \
     "--embedding-r", "METHOD",                                                \
     "resampling of an embedding raster that is not on the optical grid "     \
     "(of its de-quantized values); auto = average when it is finer than "    \
     "the optical grid, else bilinear",                                        \
     MMCL_OPT_USAGE_LIBRARY}

/* The information-loss maps' optional band. */
#define MMCL__NON_REDUNDANCY_DEF                                               \
    {"NON_REDUNDANCY", MMCL_OPT_BOOL, "NO", NULL, NULL, NULL,                  \
     "--non-redundancy", NULL,                                                 \
     "add the non-redundancy band of each modality: the part the other "      \
     "modality cannot predict linearly", MMCL_OPT_USAGE_LIBRARY}

#define MMCL__MASK_DEF                                                         \
    {"MASK", MMCL_OPT_ENUM, "own", NULL, NULL, "own|any", "--mask", "own|any", \
     "where a value is NaN: own = where an input value it is computed from "  \
     "is invalid (a modality's bands use its own patch, the joint embedding "  \
     "both); any = every band where either modality's patch is invalid",      \
     MMCL_OPT_USAGE_LIBRARY}

#define MMCL__PRECISION_DEF                                                    \
    {"PRECISION", MMCL_OPT_ENUM, "f32", NULL, NULL, "f32|bf16",                \
     "--precision", "f32|bf16",                                                \
     "precision of the encoders' matrix products: f32, or bf16 (bfloat16 "     \
     "inputs and weights between hidden layers, f32 sums; the encoders "       \
     "about 1.5x faster, only on CPUs with AVX-512 BF16 or AMX)",              \
     MMCL_OPT_USAGE_LIBRARY}

#define MMCL__LAZY_DEF(usage)                                                  \
    {"LAZY", MMCL_OPT_BOOL, "NO", NULL, NULL, NULL, "--lazy", NULL,            \
     "write OUT as a JSON descriptor (.mmcl.json) that GDAL's MMCL driver "    \
     "computes block by block when read, instead of the pixels", usage}

#define MMCL__RUN_DEFS                                                         \
    {"TILE", MMCL_OPT_INT, "256", "16", "8192", NULL, "--tile", "N",           \
     "tile edge in pixels (a multiple of 16 for tiled GeoTIFF blocks)",        \
     MMCL_OPT_USAGE_LIBRARY},                                                  \
    {"THREADS", MMCL_OPT_INT, "0", "0", "256", NULL, "--threads", "N",         \
     "worker threads; 0 = one per core",                                       \
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OPEN}

/* A run that keeps a journal of its finished tiles beside the output, to
 * be started again after a kill (docs/mpi.md). */
#define MMCL__RESUME_DEF                                                       \
    {"RESUME", MMCL_OPT_BOOL, "NO", NULL, NULL, NULL, "--resume", NULL,        \
     "keep a journal of the finished tiles beside the output (OUT.mmcl-"       \
     "journal) and, when one of the same job is there, go on from it instead " \
     "of starting again; the journal is removed once the output is in place", \
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT}

static const mmcl_option_def align_defs[] = {
    MMCL__PAIR_DEFS,
    MMCL__SHIFT_DEFS,
    MMCL__OUTPUT_DEFS,
    MMCL__RUN_DEFS,
    MMCL__RESUME_DEF,
};

static const mmcl_option_def synth_defs[] = {
    {"PRESET", MMCL_OPT_ENUM, "specific", NULL, NULL, "redundant|specific",
     "--preset", "NAME",
     "redundant: no modality-specific factors; specific: optical- and "
     "SAR-specific factors switched on in known regions",
     MMCL_OPT_USAGE_LIBRARY},
    {"SIZE", MMCL_OPT_INT, "256", "32", "65536", NULL, "--size", "N",
     "width and height of the optical grid in pixels", MMCL_OPT_USAGE_LIBRARY},
    {"SEED", MMCL_OPT_INT, "1", "0", "9007199254740991", NULL, "--seed", "S",
     "random seed; the same seed writes identical files",
     MMCL_OPT_USAGE_LIBRARY},
    {"PIXEL_SIZE", MMCL_OPT_DOUBLE, "10", "0.001", "100000", NULL,
     "--pixel-size", "METRES", "optical pixel size (UTM 31N grid)",
     MMCL_OPT_USAGE_LIBRARY},
    {"OPTICAL_BANDS", MMCL_OPT_INT, "8", "1", "64", NULL, "--optical-bands",
     "N", "number of optical bands", MMCL_OPT_USAGE_LIBRARY},
    {"SAR_BANDS", MMCL_OPT_INT, "4", "1", "64", NULL, "--sar-bands", "N",
     "number of SAR channels", MMCL_OPT_USAGE_LIBRARY},
    {"SHARED", MMCL_OPT_INT, "2", "1", "16", NULL, "--shared", "N",
     "number of shared latent factors", MMCL_OPT_USAGE_LIBRARY},
    {"OPTICAL_SPECIFIC", MMCL_OPT_INT, "2", "0", "16", NULL,
     "--optical-specific", "N",
     "number of optical-specific factors (preset specific)",
     MMCL_OPT_USAGE_LIBRARY},
    {"SAR_SPECIFIC", MMCL_OPT_INT, "1", "0", "16", NULL, "--sar-specific",
     "N", "number of SAR-specific factors (preset specific)",
     MMCL_OPT_USAGE_LIBRARY},
    {"SPECIFIC_GAIN", MMCL_OPT_DOUBLE, "2", "0", "100", NULL,
     "--specific-gain", "G",
     "standard deviation of the specific part of each band inside its "
     "region, relative to the shared part (1)", MMCL_OPT_USAGE_LIBRARY},
    {"NOISE", MMCL_OPT_DOUBLE, "0.1", "0", "10", NULL, "--noise", "SIGMA",
     "standard deviation of the per-band noise, relative to the signal",
     MMCL_OPT_USAGE_LIBRARY},
    {"CLASS_BLEND", MMCL_OPT_DOUBLE, "192", "0", "100000", NULL,
     "--class-blend", "PX",
     "distance in pixels over which the land-cover classes blend into each "
     "other; 0: sharp class edges", MMCL_OPT_USAGE_LIBRARY},
    {"CLASSES", MMCL_OPT_INT, "5", "2", "64", NULL, "--classes", "N",
     "number of land-cover classes in the label raster",
     MMCL_OPT_USAGE_LIBRARY},
    {"SAR_SRS", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--sar-srs", "SRS",
     "write the SAR on this CRS (any GDAL SRS definition) instead of the "
     "optical grid", MMCL_OPT_USAGE_LIBRARY},
    {"SAR_RES", MMCL_OPT_DOUBLE, NULL, "0", NULL, NULL, "--sar-res", "RES",
     "SAR pixel size in units of --sar-srs (or of the optical CRS); 0 or "
     "unset: about the optical ground resolution", MMCL_OPT_USAGE_LIBRARY},
    {"NODATA_FRAME", MMCL_OPT_INT, "0", "0", "4096", NULL, "--nodata-frame",
     "N", "width in pixels of a nodata frame around the optical raster",
     MMCL_OPT_USAGE_LIBRARY},
    {"SAR_HOLES", MMCL_OPT_INT, "0", "0", "1000", NULL, "--sar-holes", "N",
     "number of NaN holes punched into the SAR", MMCL_OPT_USAGE_LIBRARY},
    {"SAR_SHIFT", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--sar-shift",
     "DX,DY",
     "misregister the SAR: a ground feature at optical pixel (x, y) shows "
     "in the SAR at (x + DX, y + DY), optical pixels (|DX|, |DY| <= 32); "
     "writes the true shift as shift_truth.tif", MMCL_OPT_USAGE_LIBRARY},
    {"SAR_SHIFT_FIELD", MMCL_OPT_DOUBLE, NULL, "0", "8", NULL,
     "--sar-shift-field", "AMPLITUDE",
     "misregister the SAR by a smooth field (a few seeded low-frequency "
     "sinusoids) of at most AMPLITUDE optical pixels per component, added "
     "to --sar-shift; writes it as shift_truth.tif", MMCL_OPT_USAGE_LIBRARY},
    {"OVERWRITE", MMCL_OPT_BOOL, "NO", NULL, NULL, NULL, "--overwrite", NULL,
     "replace the files of an earlier mmcl synth",
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},
    {"CO", MMCL_OPT_LIST, NULL, NULL, NULL, NULL, "-co", "NAME=VALUE",
     "GeoTIFF creation option for every raster (default tiled, DEFLATE); "
     "repeat for several", MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},
    {"THREADS", MMCL_OPT_INT, "0", "0", "256", NULL, "--threads", "N",
     "worker threads; 0 = one per core (the files do not depend on it)",
     MMCL_OPT_USAGE_LIBRARY},
};

static const mmcl_option_def train_defs[] = {
    {"OBJECTIVE", MMCL_OPT_ENUM, "cca", NULL, NULL,
     "cca|clip|pca|shared-private", "--objective", "NAME",
     "cca: closed-form linear CCA; clip: contrastive InfoNCE; pca: each "
     "modality's own PCA (unimodal baseline); shared-private: aligned part "
     "plus each modality's private PCA", MMCL_OPT_USAGE_LIBRARY},
    {"DIM", MMCL_OPT_INT, "8", "1", "1024", NULL, "--dim", "K",
     "embedding dimension k", MMCL_OPT_USAGE_LIBRARY},
    {"PATCH", MMCL_OPT_INT, "3", "1", "63", NULL, "--patch", "P",
     "patch edge in pixels (odd): each sample is a P x P x bands vector",
     MMCL_OPT_USAGE_LIBRARY},
    {"ENCODER", MMCL_OPT_STRING, "linear", NULL, NULL, NULL, "--encoder",
     "linear|mlp:H1,H2,...", "clip encoder: linear, or an MLP with these "
     "hidden sizes", MMCL_OPT_USAGE_LIBRARY},
    {"ACTIVATION", MMCL_OPT_ENUM, "relu", NULL, NULL, "relu|gelu",
     "--activation", "NAME", "activation of the MLP hidden layers",
     MMCL_OPT_USAGE_LIBRARY},
    {"SAMPLES", MMCL_OPT_INT, "100000", "16", "100000000", NULL, "--samples",
     "N", "patch pairs drawn uniformly over the valid area (when not "
     "given: 100000, or every valid patch if there are fewer)",
     MMCL_OPT_USAGE_LIBRARY},
    {"EPOCHS", MMCL_OPT_INT, "20", "1", "100000", NULL, "--epochs", "E",
     "clip: passes over the samples", MMCL_OPT_USAGE_LIBRARY},
    {"BATCH", MMCL_OPT_INT, "1024", "2", "65536", NULL, "--batch", "B",
     "clip: pairs per step (negatives = B - 1)", MMCL_OPT_USAGE_LIBRARY},
    {"LR", MMCL_OPT_DOUBLE, "0.001", "0", "10", NULL, "--lr", "LR",
     "clip: AdamW learning rate", MMCL_OPT_USAGE_LIBRARY},
    {"WEIGHT_DECAY", MMCL_OPT_DOUBLE, "0.0001", "0", "10", NULL,
     "--weight-decay", "WD", "clip: AdamW decoupled weight decay",
     MMCL_OPT_USAGE_LIBRARY},
    {"TEMPERATURE", MMCL_OPT_STRING, "0.1", NULL, NULL, NULL,
     "--temperature", "T|learned",
     "clip: InfoNCE temperature, or 'learned' (starts at 0.1)",
     MMCL_OPT_USAGE_LIBRARY},
    {"SEED", MMCL_OPT_INT, "0", "0", "9007199254740991", NULL, "--seed", "S",
     "random seed (sampling, initialization, batches); recorded in the "
     "model", MMCL_OPT_USAGE_LIBRARY},
    {"RIDGE", MMCL_OPT_DOUBLE, "0.001", "0", "1000", NULL, "--ridge",
     "EPS", "ridge added to the covariances (CCA) and to the decoders, in "
     "units of standardized band variance", MMCL_OPT_USAGE_LIBRARY},
    {"SAR_ENL", MMCL_OPT_DOUBLE, "0", "0", "10000", NULL, "--sar-enl", "L",
     "equivalent number of looks of the SAR in dB (e.g. 4.4 for Sentinel-1 "
     "IW GRD): its speckle sets the SAR noise floor where it is above the "
     "noise seen between neighbouring pixels; 0: the data's only",
     MMCL_OPT_USAGE_LIBRARY},
    {"PRIVATE_DIM", MMCL_OPT_INT, "0", "0", "1024", NULL, "--private-dim",
     "K", "shared-private: private dimensions per modality (0 = DIM)",
     MMCL_OPT_USAGE_LIBRARY},
    {"SHARED_OBJECTIVE", MMCL_OPT_ENUM, "cca", NULL, NULL, "cca|clip",
     "--shared", "NAME", "shared-private: how the shared part is aligned",
     MMCL_OPT_USAGE_LIBRARY},
    MMCL__PAIR_DEFS,
    MMCL__SHIFT_DEFS,
    {"OVERWRITE", MMCL_OPT_BOOL, "NO", NULL, NULL, NULL, "--overwrite", NULL,
     "replace an existing model file (nothing else)",
     MMCL_OPT_USAGE_PROGRAM | MMCL_OPT_USAGE_OUTPUT},
    MMCL__RUN_DEFS,
};

static const mmcl_option_def embed_defs[] = {
    {"MODALITY", MMCL_OPT_ENUM, "joint", NULL, NULL, "optical|sar|joint",
     "--modality", "NAME",
     "which encoder: optical (h1), sar (h2), or joint (their mean, valid "
     "where both patches are; for shared-private models the shared mean "
     "followed by both private parts)", MMCL_OPT_USAGE_LIBRARY},
    MMCL__MASK_DEF,
    MMCL__PRECISION_DEF,
    MMCL__SHIFT_DEFS,
    MMCL__LAZY_DEF(MMCL_OPT_USAGE_PROGRAM | MMCL_OPT_USAGE_OUTPUT),
    MMCL__OUTPUT_DEFS,
    MMCL__RUN_DEFS,
    MMCL__RESUME_DEF,
};

static const mmcl_option_def infoloss_defs[] = {
    MMCL__NON_REDUNDANCY_DEF,
    MMCL__MASK_DEF,
    {"REPORT", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--report",
     "FILE.json", "also write the global figures as JSON to this file",
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},
    MMCL__PRECISION_DEF,
    MMCL__SHIFT_DEFS,
    MMCL__LAZY_DEF(MMCL_OPT_USAGE_PROGRAM | MMCL_OPT_USAGE_OUTPUT),
    MMCL__OUTPUT_DEFS,
    MMCL__RUN_DEFS,
    MMCL__RESUME_DEF,
};

static const mmcl_option_def audit_defs[] = {
    MMCL__EMBEDDING_DEFS,
    {"SAMPLES", MMCL_OPT_INT, "100000", "32", "100000000", NULL, "--samples",
     "N", "pixels drawn uniformly among those where the optical and the SAR "
     "are valid (every such pixel if there are fewer) to fit the decoders; "
     "those where the embedding is invalid are left out",
     MMCL_OPT_USAGE_LIBRARY},
    {"BLOCKS", MMCL_OPT_INT, "4", "2", "64", NULL, "--blocks", "N",
     "cross-validation over N x N spatial blocks of the optical grid: each "
     "block is predicted by the decoders fitted on the others, to choose "
     "their ridge penalty and for the cross-validated R2 of the report",
     MMCL_OPT_USAGE_LIBRARY},
    {"SEED", MMCL_OPT_INT, "0", "0", "9007199254740991", NULL, "--seed", "S",
     "random seed of the sampling", MMCL_OPT_USAGE_LIBRARY},
    MMCL__NON_REDUNDANCY_DEF,
    MMCL__MASK_DEF,
    {"REPORT", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--report",
     "FILE.json", "also write the figures (cross-validated R2 per modality "
     "and band, loss fractions) as JSON to this file",
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},
    MMCL__LAZY_DEF(MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT),
    MMCL__PAIR_DEFS,
    MMCL__SHIFT_DEFS,
    MMCL__OUTPUT_DEFS,
    MMCL__RUN_DEFS,
};

static const mmcl_option_def probe_defs[] = {
    {"TASK", MMCL_OPT_ENUM, "classes", NULL, NULL, "classes|regression",
     "--task", "classes|regression",
     "classes: the label holds class values (ridge one-vs-rest probe: "
     "accuracy, balanced accuracy, per-class precision, recall, F1, IoU, "
     "the confusion matrix); regression: a continuous target (R2, RMSE, "
     "MAE)",
     MMCL_OPT_USAGE_LIBRARY},
    {"BLOCKS", MMCL_OPT_INT, "4", "2", "64", NULL, "--blocks", "N",
     "cross-validation over N x N spatial blocks of the optical grid: each "
     "block is predicted by the probe fitted on the others",
     MMCL_OPT_USAGE_LIBRARY},
    {"SAMPLES", MMCL_OPT_INT, "50000", "0", "100000000", NULL, "--samples",
     "N", "pixels drawn uniformly among those with a valid patch in both "
     "modalities and a valid label; 0 = every such pixel",
     MMCL_OPT_USAGE_LIBRARY},
    {"SEED", MMCL_OPT_INT, "0", "0", "9007199254740991", NULL, "--seed", "S",
     "random seed of the sampling", MMCL_OPT_USAGE_LIBRARY},
    {"LABEL_BAND", MMCL_OPT_INT, "1", "1", "65536", NULL, "--label-band", "N",
     "band of the label raster to probe", MMCL_OPT_USAGE_LIBRARY},
    {"LABEL_NODATA", MMCL_OPT_DOUBLE, NULL, NULL, NULL, NULL,
     "--label-nodata", "VALUE",
     "label value that marks invalid pixels (default: the band's nodata "
     "value; for classes without one, -1); for classes, negative values "
     "are always invalid", MMCL_OPT_USAGE_LIBRARY},
    {"RIDGE", MMCL_OPT_DOUBLE, "0.001", "0", "1000", NULL, "--ridge", "EPS",
     "ridge penalty of the probes, on features standardized with the "
     "training fold's statistics", MMCL_OPT_USAGE_LIBRARY},
    {"CSV", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--csv", "FILE.csv",
     "also write the figures as CSV: one row per representation and class "
     "(classes) or per representation (regression), the baseline included",
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},
    {"MAP", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--map", "OUT",
     "also write the cross-validated predictions as a raster on the optical "
     "grid: each pixel predicted by the probe fitted without its spatial "
     "block (classes: the class value, Int32, nodata -1; regression: "
     "Float32, nodata NaN); nodata where the label or the patch is invalid",
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},
    {"MAP_REPRESENTATION", MMCL_OPT_STRING, "joint", NULL, NULL, NULL,
     "--map-representation", "NAME",
     "the representation whose probe --map maps: raw_optical, raw_sar, "
     "aligned_optical, aligned_sar, joint, full (shared-private models "
     "only) or the name of an --embedding", MMCL_OPT_USAGE_LIBRARY},
    {"EMBEDDING", MMCL_OPT_LIST, NULL, NULL, NULL, NULL, "--embedding",
     "[NAME=]FILE",
     "also probe this embedding raster (any CRS and resolution, put on the "
     "optical grid; quantized bands de-quantized) as a representation named "
     "NAME, default the file's stem; repeat for several",
     MMCL_OPT_USAGE_LIBRARY},
    MMCL__EMBEDDING_DEFS,
    MMCL__SHIFT_DEFS,
    MMCL__OUTPUT_DEFS,
    MMCL__RUN_DEFS,
};

static const mmcl_option_def rgb_defs[] = {
    {"BANDS", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--bands", "LIST",
     "bands to show, by number or description, comma separated (1,2,5 or "
     "infoloss_optical); default: every band (on an info-loss map: the "
     "first)", MMCL_OPT_USAGE_LIBRARY},
    {"MODE", MMCL_OPT_ENUM, "auto", NULL, NULL, "auto|pca|direct|colormap",
     "--mode", "NAME",
     "pca: first three principal components as red, green, blue; direct: "
     "three bands as red, green, blue; colormap: one band through a colour "
     "map; auto: colormap for one band, direct for three bands given with "
     "--bands, else pca", MMCL_OPT_USAGE_LIBRARY},
    {"COLORMAP", MMCL_OPT_ENUM, "auto", NULL, NULL,
     "auto|viridis|magma|gray|rdbu_r", "--colormap", "NAME",
     "colour map of one band; rdbu_r is blue-white-red centred on 0; auto: "
     "rdbu_r for bands named excess* or structured_*, else viridis",
     MMCL_OPT_USAGE_LIBRARY},
    {"STRETCH", MMCL_OPT_STRING, "2,98", NULL, NULL, NULL, "--stretch",
     "LOW,HIGH",
     "percentiles of the valid values mapped to the ends of each channel "
     "(0 and 255) or of the colour map", MMCL_OPT_USAGE_LIBRARY},
    {"RANGE", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--range", "MIN,MAX",
     "fixed value range instead of the percentiles (colormap and direct "
     "modes); of a shift field (mmcl coreg): 0,MAX, the shift in optical "
     "pixels drawn in full colour (default: the 98th percentile of the "
     "estimated shifts, at least 0.5)", MMCL_OPT_USAGE_LIBRARY},
    {"LEGEND", MMCL_OPT_BOOL, "YES", NULL, NULL, NULL, "--no-legend=NO", NULL,
     "colormap mode and shift fields (the colour wheel): write the colour "
     "scale beside OUT as <OUT base>.legend.png and .legend.json "
     "(--no-legend: do not)",
     MMCL_OPT_USAGE_LIBRARY},
    {"LEGEND_INSET", MMCL_OPT_BOOL, "NO", NULL, NULL, NULL, "--legend-inset",
     NULL,
     "colormap mode: also draw the colour scale into the picture's lower "
     "left corner (a written picture of at least 496 x 136 pixels)",
     MMCL_OPT_USAGE_LIBRARY},
    {"OVER", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--over", "OPTICAL",
     "shift field (mmcl coreg): blend the colour wheel over the picture of "
     "this optical raster (its PCA, or --bands as red, green, blue, "
     "stretched by --stretch), each block on its pixels of the optical grid",
     MMCL_OPT_USAGE_LIBRARY},
    MMCL__LAZY_DEF(MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT),
    MMCL__OUTPUT_DEFS,
    MMCL__RUN_DEFS,
};

static const mmcl_option_def coreg_defs[] = {
    {"BLOCK", MMCL_OPT_INT, "64", "16", "4096", NULL, "--block", "N",
     "block edge in optical pixels: one shift per N x N block (at most the "
     "raster's width and height)", MMCL_OPT_USAGE_LIBRARY},
    {"SEARCH", MMCL_OPT_INT, "4", "1", "32", NULL, "--search", "PIXELS",
     "largest shift searched, in optical pixels, each way; a block whose "
     "best shift lies on that edge gets no estimate",
     MMCL_OPT_USAGE_LIBRARY},
    {"MIN_CONFIDENCE", MMCL_OPT_DOUBLE, "0.5", "0", "1", NULL,
     "--min-confidence", "C",
     "blocks with at least this confidence make the global shift",
     MMCL_OPT_USAGE_LIBRARY},
    {"REPORT", MMCL_OPT_STRING, NULL, NULL, NULL, NULL, "--report",
     "FILE.json",
     "also write the report (global shift, spread, share of confident "
     "blocks) as JSON, with the raster",
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},
    MMCL__PAIR_DEFS,
    MMCL__SHIFT_DEFS,
    MMCL__OUTPUT_DEFS,
    {"THREADS", MMCL_OPT_INT, "0", "0", "256", NULL, "--threads", "N",
     "worker threads; 0 = one per core (the result does not depend on it)",
     MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OPEN},
};

struct op_table {
    const char *name;
    const mmcl_option_def *defs;
    size_t n;
};

#define OP(name, defs) {name, defs, sizeof(defs) / sizeof(defs[0])}
static const struct op_table op_tables[] = {
    OP("align", align_defs),
    OP("synth", synth_defs),
    OP("train", train_defs),
    OP("embed", embed_defs),
    OP("infoloss", infoloss_defs),
    OP("audit", audit_defs),
    OP("probe", probe_defs),
    OP("rgb", rgb_defs),
    OP("coreg", coreg_defs),
};
#undef OP

static const char *const op_names[] = {"align", "synth",    "train",
                                        "embed", "infoloss", "audit",
                                        "probe", "rgb",      "coreg", NULL};

typedef struct opt_value {
    char *text;  /* canonical text of the value, NULL when unset */
    char **list; /* LIST options: NULL-terminated */
    size_t n_list;
    int given;
} opt_value;

struct mmcl_options {
    const struct op_table *op;
    opt_value *values;
    mmcl_progress_fn progress;
    void *progress_user;
};

static const struct op_table *
find_op(const char *operation)
{
    if (!operation)
        return NULL;
    for (size_t i = 0; i < sizeof(op_tables) / sizeof(op_tables[0]); i++)
        if (strcmp(op_tables[i].name, operation) == 0)
            return &op_tables[i];
    return NULL;
}

const mmcl_option_def *
mmcl_option_defs(const char *operation, size_t *n)
{
    const struct op_table *op = find_op(operation);
    if (n)
        *n = op ? op->n : 0;
    return op ? op->defs : NULL;
}

const char *const *
mmcl_operations(void)
{
    return op_names;
}

static int
find_def(const struct op_table *op, const char *key, size_t key_len)
{
    for (size_t i = 0; i < op->n; i++)
        if (strlen(op->defs[i].name) == key_len &&
            strncasecmp(op->defs[i].name, key, key_len) == 0)
            return (int)i;
    return -1;
}

static int parse_bool(const char *s, int *out);

/* The table entry named @p key in any operation's table (one key has the
 * same flags in every table; test_options checks it), or NULL. */
static const mmcl_option_def *
def_by_name(const char *key)
{
    for (size_t t = 0; key && t < sizeof(op_tables) / sizeof(op_tables[0]);
         t++) {
        int i = find_def(&op_tables[t], key, strlen(key));
        if (i >= 0)
            return &op_tables[t].defs[i];
    }
    return NULL;
}

enum { SPELL_RING = 8, SPELL_SIZE = 192 };

/* The next buffer of the per-thread ring the spellings live in. */
static char *
spell_buffer(void)
{
    static _Thread_local char ring[SPELL_RING][SPELL_SIZE];
    static _Thread_local unsigned next;
    return ring[next++ % SPELL_RING];
}

/* Copies flag number @p k of @p flags ("--sar-db=db --sar-transform") into
 * @p out without its '=VALUE'; *sets receives that value or NULL. Returns 0
 * when there is no such flag. */
static int
nth_flag(const char *flags, int k, char *out, size_t size, char *sets,
         size_t sets_size)
{
    const char *p = flags;
    for (int i = 0; p && *p; i++) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (i == k) {
            const char *eq = memchr(p, '=', n);
            size_t name_len = eq ? (size_t)(eq - p) : n;
            snprintf(out, size, "%.*s", (int)name_len, p);
            if (eq)
                snprintf(sets, sets_size, "%.*s", (int)(n - name_len - 1),
                         eq + 1);
            else
                sets[0] = '\0';
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Writes the flag spelling of @p def with @p value (NULL: the name) into
 * @p out; 0 when the option has no flag for it. */
static int
flag_spelling(const mmcl_option_def *def, const char *value, char *out,
              size_t size)
{
    char flag[64], sets[64];
    const char *plain = NULL; /* a flag taking a value, or a bool switch */
    char plain_buf[64];
    if (!def->flags)
        return 0;
    for (int k = 0; nth_flag(def->flags, k, flag, sizeof(flag), sets,
                             sizeof(sets));
         k++) {
        if (sets[0] && value && strcasecmp(sets, value) == 0) {
            snprintf(out, size, "%s", flag);
            return 1;
        }
        if (!sets[0] && !plain) {
            snprintf(plain_buf, sizeof(plain_buf), "%s", flag);
            plain = plain_buf;
        }
    }
    if (!plain)
        return 0;
    if (!value)
        snprintf(out, size, "%s", plain);
    else if (def->type == MMCL_OPT_BOOL) {
        int b = 0;
        if (!parse_bool(value, &b) || !b)
            return 0;
        snprintf(out, size, "%s", plain);
    } else
        snprintf(out, size, "%s %s", plain, value);
    return 1;
}

const char *
mmcl__opt_name(const mmcl_context *ctx, const char *key)
{
    const mmcl_option_def *def = def_by_name(key);
    if (mmcl__context_option_spelling(ctx) != MMCL_OPTION_SPELLING_FLAG ||
        !def)
        return key;
    char *out = spell_buffer();
    return flag_spelling(def, NULL, out, SPELL_SIZE) ? out : key;
}

const char *
mmcl__opt_setting(const mmcl_context *ctx, const char *key, const char *value)
{
    const mmcl_option_def *def = def_by_name(key);
    char *out = spell_buffer();
    if (mmcl__context_option_spelling(ctx) == MMCL_OPTION_SPELLING_FLAG &&
        def && flag_spelling(def, value, out, SPELL_SIZE))
        return out;
    snprintf(out, SPELL_SIZE, "%s=%s", key, value ? value : "");
    return out;
}

/* What a message about a value of @p def says first: "embed: option
 * MODALITY" (or with @p value: "train: option DIM=0") for the library's
 * callers, "--modality" ("--dim 0") for the program's. */
static const char *
subject(const mmcl_context *ctx, const char *operation,
        const mmcl_option_def *def, const char *value)
{
    if (mmcl__context_option_spelling(ctx) == MMCL_OPTION_SPELLING_FLAG)
        return value ? mmcl__opt_setting(ctx, def->name, value)
                     : mmcl__opt_name(ctx, def->name);
    char *out = spell_buffer();
    if (value)
        snprintf(out, SPELL_SIZE, "%s: option %s=%s", operation, def->name,
                 value);
    else
        snprintf(out, SPELL_SIZE, "%s: option %s", operation, def->name);
    return out;
}

static int
parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"YES", "TRUE", "ON", "1"};
    static const char *const no[] = {"NO", "FALSE", "OFF", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 1;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

static int
parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return 0;
    *out = v;
    return 1;
}

static int
parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

/* Finds @p s among the '|'-separated @p choices; copies the canonical
 * spelling into @p out (size @p out_size). */
static int
match_choice(const char *choices, const char *s, char *out, size_t out_size)
{
    size_t len = strlen(s);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncasecmp(p, s, n) == 0 && n < out_size) {
            memcpy(out, p, n);
            out[n] = '\0';
            return 1;
        }
        p += n + (bar ? 1 : 0);
    }
    return 0;
}

/* Checks @p text as a value of the integer or real option @p def: a
 * number of its type within its range. */
static mmcl_status
check_number(mmcl_context *ctx, const char *operation,
             const mmcl_option_def *def, const char *text)
{
    int is_int = def->type == MMCL_OPT_INT;
    long long xi = 0, li;
    double xd = 0.0, ld;
    if (is_int ? !parse_ll(text, &xi) : !parse_double(text, &xd))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s expects %s, got '%s'",
                           subject(ctx, operation, def, NULL),
                           is_int ? "an integer" : "a number", text);
    int out;
    if (is_int)
        out = (def->min && parse_ll(def->min, &li) && xi < li) ||
              (def->max && parse_ll(def->max, &li) && xi > li);
    else
        out = (def->min && parse_double(def->min, &ld) && xd < ld) ||
              (def->max && parse_double(def->max, &ld) && xd > ld);
    if (out)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s is out of range [%s, %s]",
                           subject(ctx, operation, def, text),
                           def->min ? def->min : "-inf",
                           def->max ? def->max : "inf");
    return MMCL_OK;
}

/* Checks @p text against @p def and stores its canonical form in @p v. */
static mmcl_status
set_value(mmcl_context *ctx, const char *operation, const mmcl_option_def *def,
          opt_value *v, const char *text)
{
    char canon[256];
    const char *store = text;

    switch (def->type) {
    case MMCL_OPT_INT:
    case MMCL_OPT_DOUBLE: {
        mmcl_status st = check_number(ctx, operation, def, text);
        if (st != MMCL_OK)
            return st;
        break;
    }
    case MMCL_OPT_BOOL: {
        int b;
        if (!parse_bool(text, &b))
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "%s expects YES or NO, got '%s'",
                               subject(ctx, operation, def, NULL), text);
        store = b ? "YES" : "NO";
        break;
    }
    case MMCL_OPT_ENUM:
        if (!match_choice(def->choices, text, canon, sizeof(canon)))
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "%s must be one of %s, got '%s'",
                               subject(ctx, operation, def, NULL),
                               def->choices, text);
        store = canon;
        break;
    case MMCL_OPT_STRING:
        break;
    case MMCL_OPT_LIST: {
        char **grown = realloc(v->list, (v->n_list + 2) * sizeof(char *));
        if (!grown)
            return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        v->list = grown;
        v->list[v->n_list] = mmcl__strdup(ctx, text);
        if (!v->list[v->n_list])
            return MMCL_ERR_NO_MEMORY;
        v->list[++v->n_list] = NULL;
        break;
    }
    }
    char *copy = mmcl__strdup(ctx, store);
    if (!copy)
        return MMCL_ERR_NO_MEMORY;
    free(v->text);
    v->text = copy;
    return MMCL_OK;
}

/* "A, B, C" list of the option names of @p op, for error messages. */
static void
names_of(const struct op_table *op, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < op->n && used + 1 < size; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                         op->defs[i].name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

mmcl_options *
mmcl_options_new(mmcl_context *ctx, const char *operation,
                 const char *const *kv)
{
    mmcl__error_clear(ctx);
    const struct op_table *op = find_op(operation);
    if (!op) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "unknown operation '%s'",
                    operation ? operation : "(null)");
        return NULL;
    }
    mmcl_options *opts = calloc(1, sizeof(*opts));
    if (!opts) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    opts->op = op;
    opts->values = mmcl__calloc_array(ctx, op->n, 1, sizeof(opt_value));
    if (!opts->values)
        goto fail;

    for (size_t i = 0; i < op->n; i++) {
        const mmcl_option_def *def = &op->defs[i];
        if (def->default_value && def->type != MMCL_OPT_LIST &&
            set_value(ctx, operation, def, &opts->values[i],
                      def->default_value) != MMCL_OK)
            goto fail;
    }
    for (size_t j = 0; kv && kv[j]; j++) {
        const char *eq = strchr(kv[j], '=');
        if (!eq || eq == kv[j]) {
            mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                        "%s: option '%s' is not of the form KEY=VALUE",
                        operation, kv[j]);
            goto fail;
        }
        int i = find_def(op, kv[j], (size_t)(eq - kv[j]));
        if (i < 0) {
            char names[1024];
            names_of(op, names, sizeof(names));
            mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                        "%s: unknown option '%.*s'; valid options are: %s",
                        operation, (int)(eq - kv[j]), kv[j], names);
            goto fail;
        }
        if (set_value(ctx, operation, &op->defs[i], &opts->values[i],
                      eq + 1) != MMCL_OK)
            goto fail;
        opts->values[i].given = 1;
    }
    return opts;

fail:
    mmcl_options_free(opts);
    return NULL;
}

void
mmcl_options_free(mmcl_options *opts)
{
    if (!opts)
        return;
    if (opts->values) {
        for (size_t i = 0; i < opts->op->n; i++) {
            free(opts->values[i].text);
            for (size_t j = 0; j < opts->values[i].n_list; j++)
                free(opts->values[i].list[j]);
            free(opts->values[i].list);
        }
    }
    free(opts->values);
    free(opts);
}

void
mmcl_options_set_progress(mmcl_options *opts, mmcl_progress_fn progress,
                          void *user)
{
    if (!opts)
        return;
    opts->progress = progress;
    opts->progress_user = user;
}

static const opt_value *
lookup(const mmcl_options *opts, const char *key)
{
    if (!opts || !key)
        return NULL;
    int i = find_def(opts->op, key, strlen(key));
    return i < 0 ? NULL : &opts->values[i];
}

const char *
mmcl_options_get(const mmcl_options *opts, const char *key)
{
    const opt_value *v = lookup(opts, key);
    return v ? v->text : NULL;
}

mmcl_status
mmcl__options_resolve(mmcl_context *ctx, const mmcl_options *opts,
                      const char *operation, mmcl_options **tmp,
                      const mmcl_options **use)
{
    *tmp = NULL;
    *use = NULL;
    if (!opts) {
        *tmp = mmcl_options_new(ctx, operation, NULL);
        if (!*tmp)
            return mmcl_context_errcode(ctx);
        *use = *tmp;
        return MMCL_OK;
    }
    if (strcmp(opts->op->name, operation) != 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "options built for '%s' passed to '%s'",
                           opts->op->name, operation);
    *use = opts;
    return MMCL_OK;
}

const char *
mmcl__options_operation(const mmcl_options *opts)
{
    return opts ? opts->op->name : NULL;
}

long long
mmcl__opt_int(const mmcl_options *opts, const char *key)
{
    const char *s = mmcl_options_get(opts, key);
    long long v = 0;
    return s && parse_ll(s, &v) ? v : 0;
}

double
mmcl__opt_double(const mmcl_options *opts, const char *key)
{
    const char *s = mmcl_options_get(opts, key);
    double v = 0;
    return s && parse_double(s, &v) ? v : 0.0;
}

int
mmcl__opt_bool(const mmcl_options *opts, const char *key)
{
    const char *s = mmcl_options_get(opts, key);
    int b = 0;
    return s && parse_bool(s, &b) ? b : 0;
}

const char *
mmcl__opt_str(const mmcl_options *opts, const char *key)
{
    return mmcl_options_get(opts, key);
}

char **
mmcl__opt_list(const mmcl_options *opts, const char *key)
{
    static char *empty[1] = {NULL};
    const opt_value *v = lookup(opts, key);
    return v && v->list ? v->list : empty;
}

int
mmcl__opt_given(const mmcl_options *opts, const char *key)
{
    const opt_value *v = lookup(opts, key);
    return v ? v->given : 0;
}

mmcl_progress_fn
mmcl__opt_progress(const mmcl_options *opts, void **user)
{
    *user = opts ? opts->progress_user : NULL;
    return opts ? opts->progress : NULL;
}

mmcl_status
mmcl__opt_refuse_for_lazy(mmcl_context *ctx, const mmcl_options *opts,
                          const char *const *keys, const char *why)
{
    for (size_t i = 0; keys[i]; i++)
        if (mmcl__opt_given(opts, keys[i]))
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "%s does not apply to a lazy descriptor "
                               "(%s): %s",
                               mmcl__opt_name(ctx, keys[i]),
                               mmcl__opt_name(ctx, "LAZY"), why);
    return MMCL_OK;
}

int
mmcl__opt_threads(const mmcl_options *opts)
{
    long long t = mmcl__opt_int(opts, "THREADS");
    if (t <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        t = n > 0 ? n : 1;
    }
    return (int)t;
}
