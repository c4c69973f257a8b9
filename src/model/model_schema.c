/* SPDX-License-Identifier: MIT */
/* The tensors of a model file: see model_schema_internal.h. */
#include "model_schema_internal.h"

#include <stdio.h>

static const char *const modality_names[2] = {"optical", "sar"};

/* The table: a name is <group>.<modality>[.<layer>][.<item>], except the
 * one tensor both modalities share. */
static const struct {
    const char *group;
    const char *item; /* NULL: none */
    int layered;      /* the encoder's layer index follows the modality */
} table[] = {
    [MMCL__T_ENCODER] = {"encoder", NULL, 1},
    [MMCL__T_PRIVATE_WX] = {"private", "wx", 0},
    [MMCL__T_PRIVATE_WH] = {"private", "wh", 0},
    [MMCL__T_PRIVATE_BIAS] = {"private", "bias", 0},
    [MMCL__T_UNIMODAL] = {"unimodal", NULL, 0},
    [MMCL__T_DECODER_ALIGNED] = {"decoder", "aligned", 0},
    [MMCL__T_DECODER_UNIMODAL] = {"decoder", "unimodal", 0},
    [MMCL__T_DECODER_NONRED] = {"decoder", "nonredundant", 0},
    [MMCL__T_CLIP_LOG_TAU] = {"clip.log_tau", NULL, 0},
};

const char *
mmcl__modality_name(int m)
{
    return modality_names[m != 0];
}

const char *
mmcl__tensor_name(char *buf, mmcl__tensor t, int m, int layer,
                  const char *part)
{
    /* Room for ".weight" after the stem. */
    char stem[MMCL__TENSOR_NAME_SIZE - 8];
    if (t == MMCL__T_CLIP_LOG_TAU)
        snprintf(stem, sizeof(stem), "%s", table[t].group);
    else if (table[t].layered)
        snprintf(stem, sizeof(stem), "%s.%s.%d", table[t].group,
                 mmcl__modality_name(m), layer);
    else
        snprintf(stem, sizeof(stem), "%s.%s%s%s", table[t].group,
                 mmcl__modality_name(m), table[t].item ? "." : "",
                 table[t].item ? table[t].item : "");
    /* part is "weight" or "bias"; every name of the table fits (the
     * longest, decoder.optical.nonredundant.weight, is 36 bytes). */
    if (part)
        snprintf(buf, MMCL__TENSOR_NAME_SIZE, "%s.%.6s", stem, part);
    else
        snprintf(buf, MMCL__TENSOR_NAME_SIZE, "%s", stem);
    return buf;
}

void
mmcl__linear_names(const char *prefix, char *weight, char *bias)
{
    snprintf(weight, MMCL__TENSOR_NAME_SIZE, "%s.weight", prefix);
    snprintf(bias, MMCL__TENSOR_NAME_SIZE, "%s.bias", prefix);
}
