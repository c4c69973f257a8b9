/* SPDX-License-Identifier: MIT */
/*
 * Private: drawing training samples from a raster pair (design 3.3).
 *
 * Pass 1 streams every tile: per-band mean and standard deviation over the
 * valid pixels (Welford in double, merged in tile order), the second
 * differences that estimate each band's noise, and the number of
 * valid patch centres per tile (a centre is valid when every pixel of its
 * P x P patch is valid, with reflect padding at the raster border). Then
 * SAMPLES ranks are chosen uniformly without replacement among the valid
 * centres (Knuth's selection sampling, seeded), and pass 2 extracts those
 * patches. Deterministic for a seed, thread count and tile size.
 */
#ifndef MMCL_SAMPLE_INTERNAL_H
#define MMCL_SAMPLE_INTERNAL_H

#include <stdint.h>

#include "mmcl/context.h"
#include "model_schema_internal.h" /* mmcl__patch_index */
#include "pair_internal.h"

typedef struct mmcl__sample {
    int N;          /* patches drawn */
    int P;          /* patch edge */
    int B1, B2;     /* optical bands, SAR bands */
    int d1, d2;     /* B1*P*P, B2*P*P */
    /* Patch vectors, standardized, layout (band, row, col):
     * X1 (N, d1), X2 (N, d2). */
    float *X1, *X2;
    /* Centre-pixel positions on the grid: (N) each. */
    int *px, *py;
    /* Per-band statistics over the valid area (population std; a constant
     * band gets std 1, see zero_variance). */
    double *mean1, *std1, *mean2, *std2;
    int zero_variance1, zero_variance2; /* bands found constant */
    /* Per-band noise standard deviation in the rasters' units, from
     * second differences over the valid area (noise_internal.h); NaN when
     * the area gives too few. */
    double *noise1, *noise2;
    long long n_noise_diffs; /* second differences per band */
    long long n_valid_pixels;
    long long n_valid_centres;
} mmcl__sample;

/* Fewest valid patches training accepts. The standard error of a sample
 * correlation is about 1 / sqrt(N - 3): under 32 patches it is over 0.19,
 * so the correlations learned would be mostly noise (and a raster that
 * small is more likely the wrong file than a training scene). */
#define MMCL__SAMPLE_MIN_PATCHES 32

/* The sample is drawn on a lattice of tiles of this edge fixed to the
 * raster, whatever the command's --tile: valid centres are ranked tile by
 * tile and the statistics summed in tile order, so a model (or an audit's
 * fit) does not depend on --tile. */
#define MMCL__SAMPLE_TILE 256

/*
 * Draws @p N patches of edge @p P (odd) from @p pair; with @p at_most set,
 * all valid patches when there are fewer than N. Progress goes from @p p0
 * to @p p1. @p labels name the optical and the SAR in messages ("optical
 * 'opt.tif'"). Errors: no valid pixel, fewer than MMCL__SAMPLE_MIN_PATCHES
 * valid patches, fewer valid centres than N (unless at_most), patch larger
 * than the raster, a modality whose every band is constant over the valid
 * pixels (nothing to learn; some constant bands among others are counted
 * in zero_variance1/2 and left to the caller to warn about).
 * The windows are MMCL__SAMPLE_TILE pixels wide.
 */
mmcl_status mmcl__sample_draw(mmcl_context *ctx, const mmcl__pair *pair,
                              const char *const labels[2], int P, int N,
                              int at_most, uint64_t seed,
                              int n_threads, mmcl_progress_fn progress,
                              void *progress_user, double p0, double p1,
                              mmcl__sample **out);

void mmcl__sample_free(mmcl__sample *s);

#endif /* MMCL_SAMPLE_INTERNAL_H */
