/* SPDX-License-Identifier: MIT */
/*
 * Private: the encoders, normalization and decoders of a model, ready to
 * run. Built from a model file's tensors and metadata; immutable once
 * built, so threads may share one and each use its own mmcl__encoder_work.
 *
 * Tensor names (float32, row-major), for m in {optical, sar}:
 *   encoder.<m>.<l>.weight (O, I), encoder.<m>.<l>.bias (O)   layer l
 *   private.<m>.wx (kp, d), private.<m>.wh (kp, k), private.<m>.bias (kp)
 *       shared-private only: p = wx x + wh h + bias
 *   unimodal.<m>.weight (Ku, d), unimodal.<m>.bias (Ku)  PCA of x_m,
 *       Ku = min(K, d)
 *   decoder.<m>.aligned.weight (B, K), .bias (B)    h_m -> centre bands
 *   decoder.<m>.unimodal.weight (B, Ku), .bias (B)  PCA -> centre bands
 *   decoder.<m>.nonredundant.weight (B, d_other), .bias (B)
 *                                                   x_other -> centre bands
 * K = k + kp is the dimension of modality m's representation.
 * Patch vectors x_m have the layout (band, row, col) and are standardized
 * with the per-band mean and std of the metadata.
 */
#ifndef MMCL_ENCODER_INTERNAL_H
#define MMCL_ENCODER_INTERNAL_H

#include "mmcl/model.h"
#include "matmul.h"
#include "nn.h"

enum { MMCL__OPTICAL = 0, MMCL__SAR = 1 };

typedef struct mmcl__linear {
    const float *W; /* (out, in) */
    const float *b; /* (out) */
    int in, out;
    mmcl__matmul *mm; /* its product on MMCL__GEMM_ROWS rows (matmul.h) */
} mmcl__linear;

typedef struct mmcl__modality {
    int B;         /* bands */
    int d;         /* B * P * P */
    int k;         /* aligned dimensions */
    int kp;        /* private dimensions (shared-private), else 0 */
    int K;         /* k + kp */
    int Ku;        /* min(K, d): dimension of the unimodal PCA baseline */
    int normalize; /* L2-normalize the aligned output (clip) */
    double *mean, *std; /* (B) standardization */
    mmcl_mlp *mlp; /* aligned encoder, frozen, weights copied in */
    /* Its layers' products on MMCL__GEMM_ROWS rows, in the encoder's
     * precision (ReLU fused into the hidden layers). */
    mmcl__matmul *layer_mm[MMCL_MLP_MAX_LAYERS];
    mmcl__linear priv_x, priv_h; /* private part (W may be NULL) */
    mmcl__linear unimodal;       /* PCA_K */
    mmcl__linear dec_aligned, dec_unimodal, dec_nonred;
    /* What noise alone makes the infoloss and unimodal bands read
     * (noise_internal.h); NaN when the model has no noise estimate. */
    double floor_infoloss, floor_unimodal;
} mmcl__modality;

typedef struct mmcl__encoder {
    const mmcl_model *model; /* borrowed: tensors point into it */
    char objective[32];
    int P;                   /* patch edge */
    int k;
    mmcl__modality mod[2];
    char hash[17];
    /* The precision of the encoders' products (mmcl__encoder_set_
     * precision): of an MLP's products from one hidden layer to the
     * next; the others are always f32 (encoder.c's make_products). */
    mmcl__precision precision;
    /* Notes from checking the inputs against the model (mmcl__maps_open),
     * for the outputs' metadata: a CSL, or NULL. */
    char **input_notes;
    /* What training warned about, from the model's metadata ("warnings":
     * [{"code", "message"}]): two CSLs of the same length, or NULL. */
    char **warning_codes, **warning_messages;
} mmcl__encoder;

/* Builds the encoder of @p model (which must outlive it), checking every
 * tensor's shape against the metadata. */
mmcl_status mmcl__encoder_create(mmcl_context *ctx, const mmcl_model *model,
                                 mmcl__encoder **out);
void mmcl__encoder_free(mmcl__encoder *enc);

/*
 * Runs the encoders' products of @p enc in precision @p p from now on
 * (mmcl__encoder_create() makes them f32): builds them again, so call it
 * before any mmcl__encoder_work exists. Refused, with a message naming
 * @p option (e.g. "--precision bf16"), where the CPU cannot run @p p.
 */
mmcl_status mmcl__encoder_set_precision(mmcl_context *ctx,
                                        mmcl__encoder *enc, mmcl__precision p,
                                        const char *option);

/*
 * OpenBLAS's sgemm rounds a row's result differently depending on how many
 * rows the call has (small-matrix paths, edge kernels) and, with some
 * kernels (Haswell's: rows 6-11 of every 12 take another path), on where
 * the row sits among them; never on the other rows' values. oneDNN's
 * kernels likewise depend on the shape they were made for. So per-tile
 * code runs every product on blocks of exactly this many rows (padding
 * with zero rows), each with a kernel made once for that shape and run on
 * one thread, and puts each pixel in a row fixed by its place on the grid
 * (map_compute.c's cells): a pixel's value then does not depend on the
 * tile size or the thread count, whatever the kernel.
 */
enum { MMCL__GEMM_ROWS = 256 };

/* Per-thread scratch for the encoders (blocks of MMCL__GEMM_ROWS rows). */
typedef struct mmcl__encoder_work mmcl__encoder_work;
mmcl__encoder_work *mmcl__encoder_work_create(mmcl_context *ctx,
                                              const mmcl__encoder *enc);
void mmcl__encoder_work_free(mmcl__encoder_work *w);

/*
 * H (N, K_m) = representation of modality m for standardized patch vectors
 * X (N, d_m): the aligned encoder's output (L2-normalized for clip), then
 * the private part for shared-private models.
 */
mmcl_status mmcl__encoder_embed(mmcl_context *ctx, const mmcl__encoder *enc,
                                mmcl__encoder_work *w, int m, const float *X,
                                int N, float *H);

/* y (N, out) = x (N, in) W^T + b, in blocks of MMCL__GEMM_ROWS rows (a
 * short last one padded with zero rows in @p w's scratch). */
mmcl_status mmcl__linear_apply(mmcl_context *ctx, mmcl__encoder_work *w,
                               float *y, const mmcl__linear *l,
                               const float *x, int N);

#endif /* MMCL_ENCODER_INTERNAL_H */
