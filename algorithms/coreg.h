/* SPDX-License-Identifier: MIT */
/*
 * The shift of one block of a SAR raster against the optical raster on the
 * same grid, measured across modalities (`mmcl coreg`, design 4.5).
 *
 * Similarity: the first canonical correlation rho between the optical and
 * the SAR values of the block's pixels, with the SAR window moved by an
 * integer shift (sx, sy). It is invariant to any affine map of either
 * modality's bands, so it does not care that the two sensors' intensities
 * are not linearly related band by band (where phase correlation fails);
 * it only asks that some combination of the optical bands and some
 * combination of the SAR channels vary together over the block. The
 * shift maximising rho^2 over [-search, search]^2 is refined to a
 * sub-pixel one by a quadratic fit of rho^2 on the 3 x 3 shifts around
 * it. Both rasters are first smoothed by a 3 x 3 binomial kernel, which
 * makes the peak of rho^2 round (a quadratic fits it without pulling the
 * estimate towards whole pixels) and halves the noise.
 *
 * Shapes: windows are band-sequential (bands, H, W), H = bh + 2 * margin,
 * W = bw + 2 * margin, margin = search + 1; the block is the bw x bh
 * pixels at (margin, margin). NaN marks invalid values.
 */
#ifndef MMCL_ALGORITHMS_COREG_H
#define MMCL_ALGORITHMS_COREG_H

#include <stddef.h>

#include "context_internal.h"

/* Fewest valid block pixels for an estimate. */
#define MMCL__COREG_MIN_PIXELS 256
/* Optical and SAR dimensions kept per block (their leading principal
 * components): the cost of a shift grows with their product. */
#define MMCL__COREG_MAX_DIMS 4

typedef struct mmcl__coreg_block {
    double dx, dy;      /* sub-pixel shift, optical pixels (NaN: none) */
    double confidence;  /* 0..1; 0 when there is no estimate */
    double rho;         /* first canonical correlation at the best
                           integer shift (NaN: none) */
    double sharpness;   /* 1 - rho^2 two pixels from the peak / peak */
    double valid_share; /* share of the block's pixels valid in both */
    double precision;   /* standard error of (dx, dy) from the block's
                           halves, px (NaN: none) */
    const char *why;    /* when there is no estimate: a static reason
                           ("too few valid pixels", "uniform", "peak at the
                           search range's edge"), else NULL */
} mmcl__coreg_block;

typedef struct mmcl__coreg_scratch mmcl__coreg_scratch;

/*
 * Scratch for blocks of at most @p max_bw x @p max_bh pixels with @p B1
 * optical and @p B2 SAR bands and a search range of @p search pixels.
 * NULL with MMCL_ERR_NO_MEMORY in @p ctx. Free with
 * mmcl__coreg_scratch_destroy (NULL allowed). One per thread.
 */
mmcl__coreg_scratch *mmcl__coreg_scratch_create(mmcl_context *ctx, int max_bw,
                                                int max_bh, int B1, int B2,
                                                int search);
void mmcl__coreg_scratch_destroy(mmcl__coreg_scratch *s);

/*
 * The shift of one block: @p opt (B1, H, W) and @p sar (B2, H, W) as
 * above (read only). The ground at optical pixel (x, y) of the block is
 * found in the SAR at (x + dx, y + dy). Deterministic: the same windows
 * give the same bits.
 */
void mmcl__coreg_estimate(mmcl__coreg_scratch *s, const float *opt,
                          const float *sar, int bw, int bh,
                          mmcl__coreg_block *out);

/*
 * The rho^2 surface of the last estimate: (2 * search + 1)^2 values,
 * row-major over (sy, sx), or NULL when none was computed (then those of
 * the block's left, right, top and bottom halves). Owned by @p s.
 */
const double *mmcl__coreg_surface(const mmcl__coreg_scratch *s);

/*
 * Weighted median of @p v (n) with weights @p w (n, >= 0; NaN values and
 * zero weights are left out), the value where the cumulated weight of the
 * sorted values reaches half the total (the mean of the two values when
 * it falls exactly between them). NaN when no weight. @p work: 2 * n
 * doubles.
 */
double mmcl__weighted_median(const double *v, const double *w, size_t n,
                             double *work);

#endif /* MMCL_ALGORITHMS_COREG_H */
