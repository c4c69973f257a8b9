/* SPDX-License-Identifier: MIT */
/*
 * Streaming per-channel mean and variance (Welford) with a parallel merge
 * (Chan, Golub & LeVeque). Double accumulators throughout; the inputs are
 * float rasters in any pixel/channel stride layout.
 */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

mmcl_welford *
mmcl__welford_create(mmcl_context *ctx, int C)
{
    if (C < 1) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "running statistics need at least one channel (got %d)", C);
        return NULL;
    }
    mmcl_welford *acc = mmcl__calloc_array(ctx, 1, 1, sizeof(*acc));
    if (!acc)
        return NULL;
    /* One arena, three views: count | mean | m2. */
    double *arena = mmcl__calloc_array(ctx, 3, (size_t)C, sizeof(double));
    if (!arena) {
        free(acc);
        return NULL;
    }
    acc->C = C;
    acc->count = arena;
    acc->mean = arena + C;
    acc->m2 = arena + 2 * (size_t)C;
    return acc;
}

void
mmcl__welford_destroy(mmcl_welford *acc)
{
    if (!acc)
        return;
    free(acc->count); /* the arena */
    free(acc);
}

void
mmcl__welford_reset(mmcl_welford *acc)
{
    memset(acc->count, 0, 3 * (size_t)acc->C * sizeof(double));
}

void
mmcl__welford_update(mmcl_welford *acc, const float *x,
                     const unsigned char *mask, size_t n, size_t pixel_stride,
                     size_t channel_stride)
{
    /* Channel-outer loop: each channel's recurrence is independent, and
     * for band-sequential data the inner loop is contiguous. */
    for (int c = 0; c < acc->C; c++) {
        const float *xc = x + (size_t)c * channel_stride;
        double count = acc->count[c];
        double mean = acc->mean[c];
        double m2 = acc->m2[c];
        for (size_t i = 0; i < n; i++) {
            if (mask && !mask[i])
                continue;
            /* Welford: delta uses the old mean, the product the new one. */
            double v = (double)xc[i * pixel_stride];
            double delta = v - mean;
            count += 1.0;
            mean += delta / count;
            m2 += delta * (v - mean);
        }
        acc->count[c] = count;
        acc->mean[c] = mean;
        acc->m2[c] = m2;
    }
}

mmcl_status
mmcl__welford_merge(mmcl_context *ctx, mmcl_welford *into,
                    const mmcl_welford *from)
{
    if (into->C != from->C)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "cannot merge running statistics of %d and %d "
                           "channels",
                           into->C, from->C);
    for (int c = 0; c < into->C; c++) {
        double na = into->count[c], nb = from->count[c];
        if (nb == 0.0)
            continue;
        if (na == 0.0) {
            into->count[c] = nb;
            into->mean[c] = from->mean[c];
            into->m2[c] = from->m2[c];
            continue;
        }
        /* Chan et al.: n = na + nb, delta = mean_b - mean_a,
         * mean = mean_a + delta nb / n,
         * M2 = M2_a + M2_b + delta^2 na nb / n. */
        double n = na + nb;
        double delta = from->mean[c] - into->mean[c];
        into->mean[c] += delta * (nb / n);
        into->m2[c] += from->m2[c] + delta * delta * (na * (nb / n));
        into->count[c] = n;
    }
    return MMCL_OK;
}

mmcl_status
mmcl__welford_result(mmcl_context *ctx, double *mean, double *std,
                     const mmcl_welford *acc)
{
    /* Check every channel before writing anything. */
    for (int c = 0; c < acc->C; c++) {
        if (acc->count[c] == 0.0)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "channel %d has no valid value: cannot "
                               "compute its mean and standard deviation",
                               c + 1);
        if (!isfinite(acc->mean[c]) || !isfinite(acc->m2[c]))
            return mmcl__error(ctx, MMCL_ERR_NUMERIC,
                               "channel %d: mean or variance is not finite "
                               "(NaN or Inf among the valid values?)",
                               c + 1);
    }
    for (int c = 0; c < acc->C; c++) {
        if (mean)
            mean[c] = acc->mean[c];
        /* M2 >= 0 in exact arithmetic; clamp a rounding-level negative. */
        if (std)
            std[c] = sqrt(fmax(acc->m2[c], 0.0) / acc->count[c]);
    }
    return MMCL_OK;
}
