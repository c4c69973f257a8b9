/* SPDX-License-Identifier: MIT */
/*
 * GDAL boundary helpers: error capture and opening rasters with messages
 * that say what went wrong.
 */
#include <stdio.h>
#include <string.h>

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_vsi.h>

#include "context_internal.h"
#include "gdal_util_internal.h"

static void CPL_STDCALL
capture_handler(CPLErr cls, CPLErrorNum num, const char *msg)
{
    mmcl__gdal_capture *cap = CPLGetErrorHandlerUserData();
    if (cls == CE_Debug) {
        CPLDefaultErrorHandler(cls, num, msg);
        return;
    }
    if (!cap)
        return;
    if (cls == CE_Warning) {
        cap->n_warnings++;
        if (!cap->n_failures)
            snprintf(cap->last, sizeof(cap->last), "%s", msg);
        mmcl__log(cap->ctx, MMCL_LOG_WARNING, "GDAL: %s", msg);
        return;
    }
    cap->n_failures++;
    snprintf(cap->last, sizeof(cap->last), "%s", msg);
}

void
mmcl__gdal_capture_begin(mmcl__gdal_capture *cap, mmcl_context *ctx)
{
    memset(cap, 0, sizeof(*cap));
    cap->ctx = ctx;
    CPLPushErrorHandlerEx(capture_handler, cap);
}

void
mmcl__gdal_capture_end(mmcl__gdal_capture *cap)
{
    (void)cap;
    CPLPopErrorHandler();
}

const char *
mmcl__gdal_msg(const mmcl__gdal_capture *cap)
{
    return cap->last[0] ? cap->last : "no message from GDAL";
}

GDALDatasetH
mmcl__open_raster(mmcl_context *ctx, const char *path, const char *role)
{
    VSIStatBufL st;
    if (!path || !*path) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no %s raster given", role);
        return NULL;
    }
    /* Plain paths that do not exist get a plain message; GDAL connection
     * strings (VRT XML, /vsi..., DRIVER:...) go straight to GDAL. */
    if (path[0] != '<' && !strchr(path, ':') &&
        VSIStatExL(path, &st, VSI_STAT_EXISTS_FLAG) != 0) {
        mmcl__error(ctx, MMCL_ERR_IO, "%s raster '%s' does not exist", role,
                    path);
        return NULL;
    }
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY |
                                           GDAL_OF_VERBOSE_ERROR,
                                 NULL, NULL, NULL);
    mmcl__gdal_capture_end(&cap);
    if (!ds) {
        mmcl__error(ctx, MMCL_ERR_IO, "cannot open %s raster '%s': %s", role,
                    path, mmcl__gdal_msg(&cap));
        return NULL;
    }
    if (GDALGetRasterCount(ds) < 1) {
        mmcl__error(ctx, MMCL_ERR_UNSUPPORTED, "%s raster '%s' has no band",
                    role, path);
        GDALClose(ds);
        return NULL;
    }
    return ds;
}

GDALResampleAlg
mmcl__resample_alg(const char *name)
{
    static const struct {
        const char *name;
        GDALResampleAlg alg;
    } algs[] = {
        {"near", GRA_NearestNeighbour}, {"bilinear", GRA_Bilinear},
        {"cubic", GRA_Cubic},           {"cubicspline", GRA_CubicSpline},
        {"lanczos", GRA_Lanczos},       {"average", GRA_Average},
        {"mode", GRA_Mode},             {"min", GRA_Min},
        {"max", GRA_Max},               {"med", GRA_Med},
        {"q1", GRA_Q1},                 {"q3", GRA_Q3},
    };
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (strcmp(algs[i].name, name) == 0)
            return algs[i].alg;
    return GRA_Bilinear;
}
