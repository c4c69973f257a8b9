/* SPDX-License-Identifier: MIT */
/*
 * Per-channel running mean and variance in double: Welford's update
 * (Welford 1962; Knuth TAOCP vol. 2, 4.2.2) for single values and the
 * pairwise merge of Chan, Golub & LeVeque (1979/1983) for combining two
 * accumulators (e.g. one per worker thread). Stable for data with a large
 * offset, unlike the sum / sum-of-squares formula.
 *
 * mmcl standardises with the POPULATION standard deviation,
 * sqrt(M2 / n), not the sample one sqrt(M2 / (n - 1)): the statistics
 * describe the whole training area, not an estimate from a sample of it
 * (and n is in the millions, so the two agree to 1e-6 relative anyway).
 */
#ifndef MMCL_ALGORITHMS_STATS_H
#define MMCL_ALGORITHMS_STATS_H

#include <stddef.h>

#include "context_internal.h"

/*
 * Plain data, read freely; modify only through the functions below.
 * Counts are doubles (exact up to 2^53 values per channel).
 */
typedef struct mmcl_welford {
    int C;         /* number of channels */
    double *count; /* (C) valid values seen per channel */
    double *mean;  /* (C) running mean */
    double *m2;    /* (C) sum of squared deviations from the running mean */
} mmcl_welford;

/*
 * New empty accumulator for @p C >= 1 channels.
 * @return An accumulator that must be freed with mmcl__welford_destroy(),
 *         or NULL (MMCL_ERR_INVALID_ARG / MMCL_ERR_NO_MEMORY in @p ctx).
 */
mmcl_welford *mmcl__welford_create(mmcl_context *ctx, int C);

/* Frees @p acc; NULL is allowed. */
void mmcl__welford_destroy(mmcl_welford *acc);

/* Back to the empty state (all counts 0). */
void mmcl__welford_reset(mmcl_welford *acc);

/*
 * Adds n pixels of acc->C channels. The value of channel c at pixel i is
 * x[i * pixel_stride + c * channel_stride], which covers both layouts:
 *   pixel-interleaved (n, C):  pixel_stride = C, channel_stride = 1;
 *   band-sequential   (C, n):  pixel_stride = 1, channel_stride = n.
 * mask: (n), one byte per pixel, nonzero = valid; NULL = all valid.
 * Masked pixels are skipped in every channel. NaN or Inf in a valid entry
 * is NOT skipped (invalid data belongs in the mask); it poisons the
 * channel and mmcl__welford_result() then reports MMCL_ERR_NUMERIC.
 */
void mmcl__welford_update(mmcl_welford *acc, const float *x,
                          const unsigned char *mask, size_t n,
                          size_t pixel_stride, size_t channel_stride);

/*
 * into += from (Chan et al.): afterwards @p into holds the statistics of
 * the union of both samples. @p from is unchanged.
 * @return MMCL_ERR_INVALID_ARG if the channel counts differ.
 */
mmcl_status mmcl__welford_merge(mmcl_context *ctx, mmcl_welford *into,
                                const mmcl_welford *from);

/*
 * mean (C) and population std (C) = sqrt(M2 / count). Either output may
 * be NULL. A constant channel has std 0 (the caller decides how to
 * standardise it).
 * @return MMCL_ERR_INVALID_ARG when a channel has no valid value,
 *         MMCL_ERR_NUMERIC when a statistic is not finite; the message
 *         names the channel, numbered from 1 like GDAL bands.
 */
mmcl_status mmcl__welford_result(mmcl_context *ctx, double *mean, double *std,
                                 const mmcl_welford *acc);

#endif /* MMCL_ALGORITHMS_STATS_H */
