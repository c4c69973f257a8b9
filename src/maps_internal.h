/* SPDX-License-Identifier: MIT */
/*
 * Private: what embed, infoloss and the GDAL plugin share: a model and a
 * raster pair opened together and checked against each other, and per-tile
 * patch vectors.
 */
#ifndef MMCL_MAPS_INTERNAL_H
#define MMCL_MAPS_INTERNAL_H

#include <stdint.h>

#include "encoder_internal.h"
#include "pair_internal.h"

/* Opens the pair with the pair options recorded in the model and checks
 * its band counts against the model's. */
mmcl_status mmcl__maps_open(mmcl_context *ctx, const mmcl_model *model,
                            const char *const *optical, size_t n_optical,
                            const char *sar, mmcl__encoder **enc,
                            mmcl__pair **pair);

/*
 * centre[j*w + i] = 1 when every pixel of the P x P window around tile
 * pixel (i, j) has all bits of @p need in the padded validity @p valid
 * (stride W = w + 2 halo). scratch: (h + 2 halo) * w bytes.
 */
void mmcl__patch_valid(uint8_t *centre, const uint8_t *valid, uint8_t need,
                       int w, int h, int halo, uint8_t *scratch);

/*
 * Standardized patch vectors X (w*h, B*P*P), layout (band, row, col), of
 * the padded band-sequential window @p padded (B, h + 2 halo, w + 2 halo),
 * with (v - mean_b) / std_b.
 */
void mmcl__patches(float *X, const float *padded, int B, int w, int h, int P,
                   const double *mean, const double *std);

#endif /* MMCL_MAPS_INTERNAL_H */
