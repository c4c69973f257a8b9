/* SPDX-License-Identifier: MIT */
/*
 * Private: the GDAL boundary. GDAL reports through CPLError; while the
 * library calls GDAL, a capture handler keeps the last message so that the
 * failure can be reported once, in the mmcl context, naming what failed.
 */
#ifndef MMCL_GDAL_UTIL_INTERNAL_H
#define MMCL_GDAL_UTIL_INTERNAL_H

#include <gdal.h>
#include <gdalwarper.h>

#include "mmcl/context.h"

typedef struct mmcl__gdal_capture {
    mmcl_context *ctx; /* warnings go to its log callback */
    char last[1024];   /* last failure (or warning) message */
    int n_failures;
    int n_warnings;
} mmcl__gdal_capture;

/* Installs a thread-local CPL error handler recording into @p cap.
 * Pair every begin with an end on the same thread. */
void mmcl__gdal_capture_begin(mmcl__gdal_capture *cap, mmcl_context *ctx);
void mmcl__gdal_capture_end(mmcl__gdal_capture *cap);

/* The last message, or "no message from GDAL". */
const char *mmcl__gdal_msg(const mmcl__gdal_capture *cap);

/*
 * Opens @p path read-only as a raster. @p role names it in messages
 * ("optical", "SAR"). On failure sets MMCL_ERR_IO with a message saying
 * whether the file is missing or not a raster, and returns NULL.
 */
GDALDatasetH mmcl__open_raster(mmcl_context *ctx, const char *path,
                               const char *role);

/*
 * Where a raster lies, for the message of a footprint mismatch: into @p buf,
 * "<label> (EPSG:32631, WGS 84 / UTM zone 31N): x 500000 .. 501920, y
 * 4798080 .. 4800000 m; lon 3.00000 .. 3.02350, lat 43.33450 .. 43.35180",
 * from the raster's @p wkt, geotransform @p gt and size @p w x @p h (its
 * edges, 16 points each). With @p ref_wkt (the optical CRS) another CRS
 * than @p wkt, the bounds in it follow ("in the optical CRS: x .. , y ..").
 * Coordinates are rounded: 1 unit for a projected CRS, 1e-5 degree
 * (about a metre) for lon/lat. A CRS or a point that cannot be transformed
 * is said so, never printed as a number.
 */
void mmcl__footprint_describe(char *buf, size_t size, const char *label,
                              const char *wkt, const double gt[6], int w, int h,
                              const char *ref_wkt);

/* GDAL's name for a resampling method ("near", "bilinear", ...). */
GDALResampleAlg mmcl__resample_alg(const char *name);

#endif /* MMCL_GDAL_UTIL_INTERNAL_H */
