/* SPDX-License-Identifier: MIT */
/*
 * The tensors of a model file (design section 5) in one table, which
 * training writes by and the encoder reads by: a tensor's name is made
 * here and nowhere else.
 *
 *   what                       name (<m>: "optical" or "sar")       shape
 *   encoder layer l            encoder.<m>.<l>.weight, .bias        (out, in), (out)
 *   private part               private.<m>.wx, .wh, .bias           (kp, d), (kp, k), (kp)
 *   unimodal PCA baseline      unimodal.<m>.weight, .bias           (Ku, d), (Ku)
 *   decoder from the aligned   decoder.<m>.aligned.weight, .bias    (B, K), (B)
 *     embedding, the baseline  decoder.<m>.unimodal.weight, .bias   (B, Ku), (B)
 *     and the other modality   decoder.<m>.nonredundant.weight, .bias (B, d_other), (B)
 *   clip temperature           clip.log_tau                         (1)
 *
 * A linear layer y = W x + b is two tensors, <prefix>.weight (out, in) and
 * <prefix>.bias (out); mmcl__tensor_name() gives the prefix of a layer, or
 * a whole name.
 */
#ifndef MMCL_MODEL_SCHEMA_INTERNAL_H
#define MMCL_MODEL_SCHEMA_INTERNAL_H

#include <stddef.h>

typedef enum mmcl__tensor {
    MMCL__T_ENCODER,          /* linear layer, one per encoder layer */
    MMCL__T_PRIVATE_WX,       /* tensor */
    MMCL__T_PRIVATE_WH,       /* tensor */
    MMCL__T_PRIVATE_BIAS,     /* tensor */
    MMCL__T_UNIMODAL,         /* linear layer */
    MMCL__T_DECODER_ALIGNED,  /* linear layer */
    MMCL__T_DECODER_UNIMODAL, /* linear layer */
    MMCL__T_DECODER_NONRED,   /* linear layer */
    MMCL__T_CLIP_LOG_TAU      /* tensor, shared by both modalities */
} mmcl__tensor;

/* A buffer that holds every name of the table. */
enum { MMCL__TENSOR_NAME_SIZE = 64 };

/* The modality as model files and outputs spell it: 0 "optical", 1 "sar". */
const char *mmcl__modality_name(int m);

/*
 * Writes the name of @p t for modality @p m (0 or 1) and, for the encoder,
 * layer @p layer into @p buf (MMCL__TENSOR_NAME_SIZE bytes) and returns
 * it. For a linear layer, @p part "weight" or "bias" names one of its two
 * tensors and NULL gives the layer's prefix; for a tensor, @p part is
 * NULL.
 */
const char *mmcl__tensor_name(char *buf, mmcl__tensor t, int m, int layer,
                              const char *part);

/* The names of the two tensors of the linear layer @p prefix, into
 * @p weight and @p bias (MMCL__TENSOR_NAME_SIZE bytes each). */
void mmcl__linear_names(const char *prefix, char *weight, char *bias);

/*
 * Index in a patch vector of band b, row r, column c for patch edge P:
 * the layout (band, row, col) that model files record as "patch_layout".
 */
static inline int
mmcl__patch_index(int b, int r, int c, int P)
{
    return (b * P + r) * P + c;
}

#endif /* MMCL_MODEL_SCHEMA_INTERNAL_H */
