/* SPDX-License-Identifier: MIT */
/*
 * Private: SAR preprocessing on the SAR's own grid, before resampling:
 * linear power <-> dB and the Lee speckle filter.
 */
#ifndef MMCL_SAR_INTERNAL_H
#define MMCL_SAR_INTERNAL_H

#include <gdal.h>

#include "mmcl/context.h"

typedef enum mmcl__sar_transform {
    MMCL__SAR_NONE = 0,
    MMCL__SAR_TO_DB = 1,    /* input linear power, output dB */
    MMCL__SAR_TO_LINEAR = 2 /* input dB, output linear power */
} mmcl__sar_transform;

typedef struct mmcl__speckle {
    int window; /* odd window edge; 0 = no filter */
    double enl; /* equivalent number of looks */
} mmcl__speckle;

/* Parses "none", "lee:N" or "lee:N:ENL". */
mmcl_status mmcl__speckle_parse(mmcl_context *ctx, const char *spec,
                                mmcl__speckle *out);

/*
 * Lee filter (Lee 1980, "Digital image enhancement and noise filtering by
 * use of local statistics", multiplicative model) of one band of linear
 * intensity @p in (h, w) into @p out, NaN = invalid (skipped in the local
 * statistics, kept NaN). Window N x N, Cu^2 = 1/ENL:
 *   var_x = (v - m^2 Cu^2) / (1 + Cu^2),  k = clamp(var_x / v, 0, 1),
 *   out = m + k (in - m),
 * with m and v the local mean and variance. Rows [row0, row1) of @p out
 * are computed; @p in must hold the rows they need.
 */
mmcl_status mmcl__lee_filter(mmcl_context *ctx, float *out, const float *in,
                             int w, int h, int row0, int row1,
                             const mmcl__speckle *sp);

/*
 * Writes the preprocessed SAR @p src as a float32 GeoTIFF at @p path (same
 * grid and CRS, NaN nodata). Streams in strips.
 */
mmcl_status mmcl__sar_preprocess(mmcl_context *ctx, GDALDatasetH src,
                                 const char *path, mmcl__sar_transform tr,
                                 const mmcl__speckle *sp);

#endif /* MMCL_SAR_INTERNAL_H */
