/* SPDX-License-Identifier: MIT */
/*
 * GDAL boundary helpers: error capture and opening rasters with messages
 * that say what went wrong.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <ogr_srs_api.h>

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

/* ---- footprints --------------------------------------------------------- */

enum { FOOTPRINT_EDGE_POINTS = 16 };

/* A CRS from WKT with the axis order of geotransforms (x = easting or
 * longitude), or NULL. */
static OGRSpatialReferenceH
srs_from_wkt(const char *wkt)
{
    OGRSpatialReferenceH srs;
    if (!wkt || !*wkt)
        return NULL;
    srs = OSRNewSpatialReference(NULL);
    if (!srs)
        return NULL;
    if (OSRImportFromWkt(srs, (char **)&wkt) != OGRERR_NONE) {
        OSRDestroySpatialReference(srs);
        return NULL;
    }
    OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
    return srs;
}

/* "EPSG:32631, WGS 84 / UTM zone 31N", or the name alone, or "no CRS". */
static void
srs_label(char *buf, size_t size, OGRSpatialReferenceH srs)
{
    const char *auth, *code, *name;
    if (!srs) {
        snprintf(buf, size, "no CRS");
        return;
    }
    auth = OSRGetAuthorityName(srs, NULL);
    code = OSRGetAuthorityCode(srs, NULL);
    name = OSRGetName(srs);
    if (auth && code)
        snprintf(buf, size, "%s:%s, %s", auth, code, name ? name : "unnamed");
    else
        snprintf(buf, size, "%s", name ? name : "an unnamed CRS");
}

/* The bounds of the raster's edges transformed by @p ct (NULL: in its own
 * CRS) into b = {xmin, xmax, ymin, ymax}; 0 when no point transforms. */
static int
edge_bounds_in(OGRCoordinateTransformationH ct, const double gt[6], int w,
               int h, double b[4])
{
    enum { K = FOOTPRINT_EDGE_POINTS };
    double x[4 * K], y[4 * K];
    int ok[4 * K], any = 0;
    for (int k = 0; k < K; k++) {
        double f = (double)k / (K - 1), px[4], py[4];
        px[0] = px[1] = f * w;
        py[0] = 0;
        py[1] = h;
        px[2] = 0;
        px[3] = w;
        py[2] = py[3] = f * h;
        for (int e = 0; e < 4; e++) {
            x[e * K + k] = gt[0] + px[e] * gt[1] + py[e] * gt[2];
            y[e * K + k] = gt[3] + px[e] * gt[4] + py[e] * gt[5];
            ok[e * K + k] = 1;
        }
    }
    if (ct) {
        CPLPushErrorHandler(CPLQuietErrorHandler);
        if (!OCTTransformEx(ct, 4 * K, x, y, NULL, ok))
            for (int i = 0; i < 4 * K; i++)
                ok[i] = ok[i] && isfinite(x[i]) && isfinite(y[i]);
        CPLPopErrorHandler();
        CPLErrorReset();
    }
    b[0] = b[2] = INFINITY;
    b[1] = b[3] = -INFINITY;
    for (int i = 0; i < 4 * K; i++) {
        if (!ok[i] || !isfinite(x[i]) || !isfinite(y[i]))
            continue;
        any = 1;
        b[0] = fmin(b[0], x[i]);
        b[1] = fmax(b[1], x[i]);
        b[2] = fmin(b[2], y[i]);
        b[3] = fmax(b[3], y[i]);
    }
    return any;
}

/* Appends "x .. , y .." (or "lon .., lat .." when @p lonlat) to @p buf,
 * rounded as the CRS @p srs deserves. */
static void
append_bounds(char *buf, size_t size, const double b[4],
              OGRSpatialReferenceH srs, int lonlat)
{
    size_t n = strlen(buf);
    int degrees = lonlat || (srs && OSRIsGeographic(srs));
    int dec = degrees ? 5 : 0;
    if (n + 1 >= size)
        return;
    snprintf(buf + n, size - n, "%s %.*f .. %.*f, %s %.*f .. %.*f",
             lonlat ? "lon" : "x", dec, b[0], dec, b[1], lonlat ? "lat" : "y",
             dec, b[2], dec, b[3]);
}

static void
append(char *buf, size_t size, const char *s)
{
    size_t n = strlen(buf);
    if (n + 1 < size)
        snprintf(buf + n, size - n, "%s", s);
}

/* Appends @p head and the bounds of the w x h raster (@p gt, @p srs) in
 * @p dst (lon/lat for EPSG:4326 in GIS order), or @p fail when they cannot
 * be transformed. */
static void
append_transformed(char *buf, size_t size, const char *head, const char *fail,
                   OGRSpatialReferenceH srs, OGRSpatialReferenceH dst,
                   const double gt[6], int w, int h)
{
    double b[4];
    CPLPushErrorHandler(CPLQuietErrorHandler);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(srs, dst);
    CPLPopErrorHandler();
    CPLErrorReset();
    append(buf, size, head);
    if (ct && edge_bounds_in(ct, gt, w, h, b))
        append_bounds(buf, size, b, dst, OSRIsGeographic(dst));
    else
        append(buf, size, fail);
    if (ct)
        OCTDestroyCoordinateTransformation(ct);
}

void
mmcl__footprint_describe(char *buf, size_t size, const char *label,
                         const char *wkt, const double gt[6], int w, int h,
                         const char *ref_wkt)
{
    OGRSpatialReferenceH srs = srs_from_wkt(wkt);
    OGRSpatialReferenceH ref = srs_from_wkt(ref_wkt);
    OGRSpatialReferenceH ll = OSRNewSpatialReference(NULL);
    char crs[256];
    double b[4];

    srs_label(crs, sizeof(crs), srs);
    snprintf(buf, size, "%s (%s): ", label, crs);
    edge_bounds_in(NULL, gt, w, h, b);
    append_bounds(buf, size, b, srs, srs && OSRIsGeographic(srs));
    if (srs && ref && !OSRIsSame(srs, ref))
        append_transformed(buf, size, "; in the optical CRS: ",
                           "cannot be transformed", srs, ref, gt, w, h);
    if (ll && OSRImportFromEPSG(ll, 4326) == OGRERR_NONE)
        OSRSetAxisMappingStrategy(ll, OAMS_TRADITIONAL_GIS_ORDER);
    else if (ll) {
        OSRDestroySpatialReference(ll);
        ll = NULL;
    }
    /* Lon/lat, unless the raster's own or optical coordinates are. */
    if (srs && ll && !OSRIsSame(srs, ll) && !(ref && OSRIsSame(ref, ll)))
        append_transformed(buf, size, "; ",
                           "no lon/lat (cannot be transformed)", srs, ll, gt,
                           w, h);
    if (ll)
        OSRDestroySpatialReference(ll);
    if (ref)
        OSRDestroySpatialReference(ref);
    if (srs)
        OSRDestroySpatialReference(srs);
}
