/* SPDX-License-Identifier: MIT */
/*
 * Private: the noise floor of the information-loss maps (design 3.5,
 * docs/noise.md).
 *
 * The noise of each band is estimated from the data at training time, from
 * second differences of neighbouring pixels, x(i-1) - 2 x(i) + x(i+1),
 * along rows and along columns. For white noise of standard deviation
 * sigma a second difference has standard deviation sqrt(6) sigma, and the
 * ground signal, locally smooth, mostly cancels (a constant or a linear
 * ramp gives exactly 0). Edges do not cancel; they are a minority of the
 * differences, which the median absolute deviation ignores:
 *
 *   sigma = 1.4826 MAD(second differences) / sqrt(6)
 *
 * Which pixels give differences depends on their position only, never on
 * the tiling or the threads: pixels at 1..14 of each 16-pixel block in x
 * and y (their neighbours are then in the same tile, tiles being multiples
 * of 16), of one block in every `step` x `step`, so that large rasters
 * give a bounded number (about 2^18 per band).
 *
 * The noise floor of a loss band is what noise alone makes it read: for a
 * residual r(x) = c - D f(x) of the standardized centre bands c,
 * E ||r(x + e) - r(x)||^2 / B over the training sample and noise e drawn
 * with the estimated variances. Noise of band b is correlated between
 * pixels of a patch as rho_b^(|dr| + |dc|) (separable first-order
 * autoregressive; rho_b = 0, white, unless the SAR's ENL says more noise
 * than the differences see, see mmcl__speckle_rho). For a linear encoder
 * the floor is exactly tr(R S R^T) / B (R = the residual's matrix, S the
 * noise covariance); for an MLP it is the same average, measured.
 */
#ifndef MMCL_NOISE_INTERNAL_H
#define MMCL_NOISE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "encoder_internal.h"
#include "mmcl/context.h"

/* Second differences of one modality's bands: d (B, cap), n per band. */
typedef struct mmcl__noise_diffs {
    int B;
    size_t n, cap;
    float *d;
} mmcl__noise_diffs;

/* Most bands per modality with a noise estimate (the loss maps' limit). */
#define MMCL__NOISE_MAX_BANDS 64

/* Fewest second differences for an estimate (fewer: unknown, NaN). */
#define MMCL__NOISE_MIN_DIFFS 64

/* One block in every step x step gives differences, for a width x height
 * raster. */
int mmcl__noise_block_step(int width, int height);

void mmcl__noise_diffs_init(mmcl__noise_diffs *nd, int B);
void mmcl__noise_diffs_free(mmcl__noise_diffs *nd);

/*
 * Appends the second differences of the window [x, x+tw) x [y, y+th) of
 * the raster, read into @p v (band-sequential, planes of @p plane values,
 * rows of stride @p W, the window's own pixel (0, 0) at @p origin) with
 * validity @p valid (same layout; a difference needs its three pixels
 * valid), at the lattice positions of @p step.
 */
mmcl_status mmcl__noise_diffs_collect(mmcl_context *ctx, mmcl__noise_diffs *nd,
                                      const float *v, size_t plane, int W,
                                      size_t origin, const uint8_t *valid,
                                      int x, int y, int tw, int th, int step);

/* dst += src (the callers append in tile order). */
mmcl_status mmcl__noise_diffs_append(mmcl_context *ctx, mmcl__noise_diffs *dst,
                                     const mmcl__noise_diffs *src);

/* sigma (B): the noise standard deviation of each band, in the raster's
 * units; NaN for every band when there are too few differences. Reorders
 * nd's values. */
mmcl_status mmcl__noise_sigma(mmcl_context *ctx, mmcl__noise_diffs *nd,
                              double *sigma);

/* The standard deviation in dB of the speckle of SAR intensity with
 * @p enl equivalent looks (Gamma distributed: in dB, 10 / ln 10 times the
 * square root of the trigamma function of the ENL). */
double mmcl__speckle_std_db(double enl);

/*
 * The neighbour correlation rho of noise of standard deviation @p sigma
 * whose second differences read as white noise of @p sigma_diff: for the
 * separable first-order autoregressive model a second difference has
 * variance sigma^2 (6 - 8 rho + 2 rho^2), which equals 6 sigma_diff^2.
 * 0 when sigma_diff >= sigma; at most 0.99.
 */
double mmcl__speckle_rho(double sigma, double sigma_diff);

/*
 * The noise floors of modality @p m's infoloss (through the aligned
 * representation) and unimodal bands, in standardized band variance, for
 * the standardized noise variances @p var (B) of its bands and their
 * neighbour correlations @p rho (B), measured on (at most 4096 rows of)
 * the standardized sample X (N, d). Deterministic for @p seed.
 */
mmcl_status mmcl__noise_floors(mmcl_context *ctx, const mmcl__encoder *enc,
                               int m, const float *X, int N,
                               const double *var, const double *rho,
                               uint64_t seed, double *floor_aligned,
                               double *floor_unimodal);

#endif /* MMCL_NOISE_INTERNAL_H */
