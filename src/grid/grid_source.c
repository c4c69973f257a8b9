/* SPDX-License-Identifier: MIT */
/*
 * A raster on the reference grid: the transform between them (exact, or
 * interpolated on a lattice fixed to the grid), the overlap check, the
 * resampling and the warper's scales, and window reads (as they are, or
 * warped) with the source's validity.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpl_conv.h>
#include <cpl_minixml.h>
#include <cpl_string.h>
#include <gdal_alg.h>
#include <gdalwarper.h>

#include "context_internal.h"
#include "gdal_util_internal.h"
#include "grid_source_internal.h"
#include "shift_internal.h"

struct mmcl__grid_source {
    char *name, *role, *read_failed, *warp_failed;
    /* The source: CRS, geotransform, size, bands read. */
    char *wkt;
    double gt[6];
    int width, height;
    int n_bands;
    int *bands; /* 1-based */
    GDALDataType type;
    mmcl__grid_validity validity;
    int has_nodata;
    double nodata;

    /* The grid. */
    char *grid_wkt;
    double grid_gt[6];
    int grid_w, grid_h;

    /* Read as it is: without the warper, whatever the resampling. */
    int on_grid;
    GDALResampleAlg resampling;
    char resampling_name[16];
    /* Warped without validity masks, NaN marking the invalid and
     * propagating through the kernel (nan_propagation()); with a finite
     * nodata value, read through nan_vrt, a VRT of the bands read (1..
     * n_bands) with that value made NaN. */
    int nan_kernel;
    char *nan_vrt;
    /* The warper's XSCALE / YSCALE, for the whole grid (warp_scales). */
    double xscale, yscale;
    double centre_ratio;

    /* Lattice of source pixel coordinates at grid pixel positions
     * (i*step, j*step), i = 0..nx-1, j = 0..ny-1; step (a power of two)
     * 0 = exact. */
    int step, nx, ny;
    double *lat_x, *lat_y;

    /* The misregistration corrected, or NULL (shift_internal.h). */
    mmcl__shift *shift;
};

struct mmcl__grid_reader {
    const mmcl__grid_source *src;
    GDALDatasetH ds;
    void *exact; /* GenImgProj transformer grid pixel -> source pixel */
    uint8_t *mask; /* a mask band's window (MMCL__GRID_MASK, on the grid) */
    size_t mask_pixels;
};

/* ---- transform -------------------------------------------------------- */

static void *
create_exact(mmcl_context *ctx, const mmcl__grid_source *s)
{
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    /* GenImgProj from source pixels (source) to grid pixels (destination);
     * the warper calls it with bDstToSrc = TRUE. */
    void *t = GDALCreateGenImgProjTransformer3(s->wkt, s->gt, s->grid_wkt,
                                               s->grid_gt);
    mmcl__gdal_capture_end(&cap);
    if (!t)
        mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                    "cannot transform between the %s and optical CRS: %s",
                    s->role, mmcl__gdal_msg(&cap));
    return t;
}

/* Exact source pixel coordinates of grid pixel positions (x, y), in
 * place; failed points become NaN. */
static void
to_source(void *exact, int n, double *x, double *y, int *ok)
{
    double *z = calloc((size_t)n, sizeof(double));
    if (!z) {
        for (int i = 0; i < n; i++)
            ok[i] = 0;
        return;
    }
    GDALGenImgProjTransform(exact, TRUE, n, x, y, z, ok);
    for (int i = 0; i < n; i++)
        if (!ok[i])
            x[i] = y[i] = NAN;
    free(z);
}

/* Source pixels per grid pixel about grid position (x, y): the area of
 * the grid pixel there in source pixels; 0 when it does not transform. */
static double
pixel_ratio(void *exact, double x, double y)
{
    double px[3] = {x, x + 1, x}, py[3] = {y, y, y + 1};
    int ok[3];
    to_source(exact, 3, px, py, ok);
    if (!(ok[0] && ok[1] && ok[2]))
        return 0.0;
    return fabs((px[1] - px[0]) * (py[2] - py[0]) -
                (px[2] - px[0]) * (py[1] - py[0]));
}

/* Lattice cell index along one axis (clamped to the cells) of the
 * position @p f in steps: floor(f) for f in the lattice. */
static int
lattice_cell(double f, int n_points)
{
    double last = n_points - 2;
    return (int)(f < 0 ? 0 : (f > last ? last : f));
}

/* Source pixel position of grid position (x, y) through the lattice, one
 * point on its own: the reference the row evaluator is tested against,
 * and the lattice's own error check. */
static int
lattice_eval(const mmcl__grid_source *s, double x, double y, double *sx,
             double *sy)
{
    if (isnan(x) || isnan(y)) {
        *sx = *sy = NAN;
        return 0;
    }
    /* step is a power of two: the product is the exact quotient. */
    double inv = 1.0 / s->step;
    double fx = x * inv, fy = y * inv;
    int i = lattice_cell(fx, s->nx), j = lattice_cell(fy, s->ny);
    double u = fx - i, v = fy - j;
    size_t k = (size_t)j * s->nx + i;
    const double *lx = s->lat_x, *ly = s->lat_y;
    size_t nx = (size_t)s->nx;
    *sx = (1 - v) * ((1 - u) * lx[k] + u * lx[k + 1]) +
          v * ((1 - u) * lx[k + nx] + u * lx[k + nx + 1]);
    *sy = (1 - v) * ((1 - u) * ly[k] + u * ly[k + 1]) +
          v * ((1 - u) * ly[k + nx] + u * ly[k + nx + 1]);
    return !isnan(*sx) && !isnan(*sy);
}

/*
 * Source pixel positions of @p n grid positions (x, y), in place, through
 * the lattice. The warper asks row by row (one y for a row of x): the
 * lattice's two rows are blended once per row and lattice cell (the cell's
 * left and right edges at that y), then each point costs one linear
 * interpolation per coordinate. A point's result depends on its own
 * position only, not on the points beside it in the call, so a window
 * gives the bits of any other window that holds the point: tiles do not
 * show. It equals lattice_eval() to rounding (the same bilinear form,
 * summed in another order).
 */
static void
lattice_eval_n(const mmcl__grid_source *s, int n, double *x, double *y,
               int *ok)
{
    const double inv = 1.0 / s->step; /* exact: a power of two */
    const size_t nx = (size_t)s->nx;
    const double *lx = s->lat_x, *ly = s->lat_y;
    double row_y = NAN, v = 0;
    size_t row = 0;
    int cell = -1;
    /* The cell's left and right edges at row_y, in source pixels. */
    double lx0 = 0, lx1 = 0, ly0 = 0, ly1 = 0;
    for (int k = 0; k < n; k++) {
        if (isnan(x[k]) || isnan(y[k])) {
            ok[k] = 0;
            x[k] = y[k] = NAN;
            continue;
        }
        if (!(y[k] == row_y)) {
            double fy = y[k] * inv;
            int j = lattice_cell(fy, s->ny);
            v = fy - j;
            row = (size_t)j * nx;
            row_y = y[k];
            cell = -1;
        }
        double fx = x[k] * inv;
        int i = lattice_cell(fx, s->nx);
        if (i != cell) {
            size_t c = row + (size_t)i;
            lx0 = (1 - v) * lx[c] + v * lx[c + nx];
            lx1 = (1 - v) * lx[c + 1] + v * lx[c + nx + 1];
            ly0 = (1 - v) * ly[c] + v * ly[c + nx];
            ly1 = (1 - v) * ly[c + 1] + v * ly[c + nx + 1];
            cell = i;
        }
        double u = fx - i;
        x[k] = (1 - u) * lx0 + u * lx1;
        y[k] = (1 - u) * ly0 + u * ly1;
        ok[k] = !isnan(x[k]) && !isnan(y[k]);
    }
}

/* Fills the lattice for @p step; returns the max interpolation error at
 * the cell centres (in source pixels), or -1 on allocation failure. */
static double
lattice_build(mmcl__grid_source *s, void *exact, int step)
{
    free(s->lat_x);
    free(s->lat_y);
    s->step = step;
    s->nx = (s->grid_w + step - 1) / step + 1;
    s->ny = (s->grid_h + step - 1) / step + 1;
    if (s->nx < 2)
        s->nx = 2;
    if (s->ny < 2)
        s->ny = 2;
    size_t n = (size_t)s->nx * s->ny;
    s->lat_x = malloc(n * sizeof(double));
    s->lat_y = malloc(n * sizeof(double));
    int *ok = malloc(n * sizeof(int));
    if (!s->lat_x || !s->lat_y || !ok) {
        free(ok);
        return -1.0;
    }
    for (int j = 0; j < s->ny; j++)
        for (int i = 0; i < s->nx; i++) {
            s->lat_x[(size_t)j * s->nx + i] = (double)i * step;
            s->lat_y[(size_t)j * s->nx + i] = (double)j * step;
        }
    to_source(exact, (int)n, s->lat_x, s->lat_y, ok);
    free(ok);

    /* Error check on the centres of up to ~4096 cells spread evenly. */
    int cells_x = s->nx - 1, cells_y = s->ny - 1;
    int sx = cells_x > 64 ? cells_x / 64 : 1;
    int sy = cells_y > 64 ? cells_y / 64 : 1;
    double max_err = 0.0;
    for (int j = 0; j < cells_y; j += sy) {
        for (int i = 0; i < cells_x; i += sx) {
            double x = (i + 0.5) * step, y = (j + 0.5) * step;
            double ex = x, ey = y, ix, iy;
            int good;
            to_source(exact, 1, &ex, &ey, &good);
            if (!good)
                continue;
            if (!lattice_eval(s, x, y, &ix, &iy))
                continue;
            double e = fmax(fabs(ix - ex), fabs(iy - ey));
            if (e > max_err)
                max_err = e;
        }
    }
    return max_err;
}

/* The coarsest lattice whose interpolation error stays within @p et
 * source pixels; none (exact) when no step of 64 down to 2 does. */
static mmcl_status
choose_lattice(mmcl_context *ctx, mmcl__grid_source *s, void *exact,
               double et)
{
    if (!(et > 0))
        return MMCL_OK;
    int chosen = 0;
    for (int step = 64; step >= 2; step /= 2) {
        double err = lattice_build(s, exact, step);
        if (err < 0)
            return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        if (err <= et) {
            chosen = step;
            break;
        }
    }
    if (!chosen) {
        free(s->lat_x);
        free(s->lat_y);
        s->lat_x = s->lat_y = NULL;
    }
    s->step = chosen;
    return MMCL_OK;
}

/* The grid positions (x, y) whose shifted positions are the given ones,
 * in place: p + shift(p) = q solved by fixed-point iteration (the shift
 * of a field varies by far less than a pixel per pixel). */
static void
shift_inverse(const mmcl__shift *sh, int n, double *x, double *y,
              const int *ok)
{
    for (int i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        double qx = x[i], qy = y[i], px = qx, py = qy;
        for (int it = 0; it < 16; it++) {
            double dx, dy;
            mmcl__shift_eval(sh, px, py, &dx, &dy);
            double nx = qx - dx, ny = qy - dy;
            int done = fabs(nx - px) < 1e-9 && fabs(ny - py) < 1e-9;
            px = nx;
            py = ny;
            if (done)
                break;
        }
        x[i] = px;
        y[i] = py;
    }
}

/* The warper's transformer: grid pixel positions of the window starting
 * at (x0, y0), shifted when a misregistration is corrected, to source
 * pixels, through the lattice or exactly. */
typedef struct window_transform {
    const mmcl__grid_source *src;
    void *exact;
    int x0, y0;
} window_transform;

static int
window_transform_fn(void *arg, int dst_to_src, int n, double *x, double *y,
                    double *z, int *ok)
{
    window_transform *t = arg;
    const mmcl__grid_source *s = t->src;
    if (!dst_to_src || s->step == 0) {
        if (dst_to_src) {
            for (int i = 0; i < n; i++) {
                x[i] += t->x0;
                y[i] += t->y0;
            }
            if (s->shift)
                mmcl__shift_apply(s->shift, n, x, y);
        }
        int r = GDALGenImgProjTransform(t->exact, dst_to_src, n, x, y, z, ok);
        if (!dst_to_src) {
            if (s->shift)
                shift_inverse(s->shift, n, x, y, ok);
            for (int i = 0; i < n; i++) {
                x[i] -= t->x0;
                y[i] -= t->y0;
            }
        }
        return r;
    }
    for (int i = 0; i < n; i++) {
        x[i] += t->x0;
        y[i] += t->y0;
    }
    if (s->shift)
        mmcl__shift_apply(s->shift, n, x, y);
    lattice_eval_n(s, n, x, y, ok);
    return TRUE;
}

/* ---- opening ---------------------------------------------------------- */

/* Grid pixels per source pixel over a source extent [lo, hi] of a source
 * axis of n_src pixels for n_dst grid pixels, as GDAL's warp kernel
 * computes it for a window (gdalwarpkernel.cpp): the extent clamped to
 * the raster, and a downsampling factor near 1/n snapped to it. */
static double
warp_scale(int n_dst, double lo, double hi, int n_src)
{
    if (!(hi > lo))
        return 1.0;
    int lo_clamped = (int)fmax(0.0, lo);
    double raw = fmax(0.0, fmin((double)(n_src - lo_clamped), hi - lo));
    if (raw <= 0)
        return 1.0;
    double s = n_dst / raw;
    if (s < 1.0) {
        double r = 1.0 / s;
        int n = (int)(r + 0.5);
        if (fabs(r - n) < 0.05)
            s = 1.0 / n;
    }
    return s;
}

/*
 * Bounds b = {x0, x1, y0, y1} of the edges of the w x h pixel rectangle of
 * one raster (@p steps points per edge, at most 32) in the pixels of the
 * other: source pixels when @p to_src, else grid pixels. Points that do
 * not transform are left out (all of them: an empty box, x0 > x1).
 */
static void
edge_bounds(void *exact, int to_src, int w, int h, int steps, double b[4])
{
    enum { MAX = 32 };
    double x[4 * MAX], y[4 * MAX], z[4 * MAX] = {0};
    int ok[4 * MAX];
    steps = steps < 2 ? 2 : (steps > MAX ? MAX : steps);
    for (int k = 0; k < steps; k++) {
        double f = (double)k / (steps - 1);
        x[4 * k] = x[4 * k + 1] = f * w;
        y[4 * k] = 0;
        y[4 * k + 1] = h;
        x[4 * k + 2] = 0;
        x[4 * k + 3] = w;
        y[4 * k + 2] = y[4 * k + 3] = f * h;
    }
    if (to_src)
        to_source(exact, 4 * steps, x, y, ok);
    else
        GDALGenImgProjTransform(exact, FALSE, 4 * steps, x, y, z, ok);
    b[0] = b[2] = INFINITY;
    b[1] = b[3] = -INFINITY;
    for (int k = 0; k < 4 * steps; k++) {
        if (!ok[k])
            continue;
        b[0] = fmin(b[0], x[k]);
        b[1] = fmax(b[1], x[k]);
        b[2] = fmin(b[2], y[k]);
        b[3] = fmax(b[3], y[k]);
    }
}

/*
 * The warper's XSCALE / YSCALE for the whole grid, measured as GDAL
 * measures them for one window (the source extent of 21 points along each
 * edge). Left to GDAL, they are estimated for each window from its own
 * extent, so a downsampling bilinear or cubic kernel would change from
 * window to window and tiles would show seams; fixed, every window
 * resamples with the kernel a one-window gdalwarp of the grid uses.
 */
static void
warp_scales(mmcl__grid_source *s, void *exact)
{
    double b[4];
    edge_bounds(exact, 1, s->grid_w, s->grid_h, 21, b);
    s->xscale = warp_scale(s->grid_w, b[0], b[1], s->width);
    s->yscale = warp_scale(s->grid_h, b[2], b[3], s->height);
}

/* Refuses a source with no pixel in common with the grid; picks the
 * resampling ("auto": by the pixel ratio at the centre of the overlap). */
static mmcl_status
check_overlap_and_resampling(mmcl_context *ctx, mmcl__grid_source *s,
                             void *exact, const mmcl__grid_raster *r,
                             const mmcl__grid *g)
{
    /* Source footprint edges in grid pixels. */
    double fb[4];
    edge_bounds(exact, 0, s->width, s->height, 32, fb);
    double xmin = fb[0], xmax = fb[1], ymin = fb[2], ymax = fb[3];
    if (!(xmax > 0 && ymax > 0 && xmin < g->width && ymin < g->height)) {
        /* Both footprints, in each CRS and in lon/lat: a source in another
         * UTM zone or with its axes swapped shows at a glance. */
        char grid[900], src[1000];
        mmcl__footprint_describe(grid, sizeof(grid), g->label, g->wkt, g->gt,
                                 g->width, g->height, NULL);
        mmcl__footprint_describe(src, sizeof(src), r->label, s->wkt, s->gt,
                                 s->width, s->height, g->wkt);
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s does not overlap the optical raster: no "
                           "pixel in common.\n  %s\n  %s",
                           r->no_overlap, grid, src);
    }

    /* Source pixels per grid pixel at the centre of the overlap. */
    double cx = (fmax(xmin, 0) + fmin(xmax, g->width)) / 2;
    double cy = (fmax(ymin, 0) + fmin(ymax, g->height)) / 2;
    double ratio = pixel_ratio(exact, cx, cy);
    warp_scales(s, exact);
    const char *name = r->resampling;
    if (strcmp(name, "auto") == 0)
        name = ratio > 1.0 + 1e-6 ? "average" : "bilinear";
    snprintf(s->resampling_name, sizeof(s->resampling_name), "%s", name);
    s->resampling = mmcl__resample_alg(s->resampling_name);
    return MMCL_OK;
}

/*
 * Whether the source is warped with GDAL's unmasked kernels, NaN marking
 * the invalid: a NaN among the samples a kernel uses makes the output NaN,
 * which is design section 3.1's rule (a pixel is valid only when every
 * value it uses is valid) and skips the warper's validity masks, twice
 * as fast. For a nodata source (a finite nodata value read as NaN first:
 * make_nan_vrt()) with the interpolating kernels: near, bilinear, cubic.
 * The other resamplings (average, mode, ...) take the masked kernels,
 * which leave the invalid samples out of their statistics.
 */
static int
nan_propagation(const mmcl__grid_source *s)
{
    if (s->validity != MMCL__GRID_NODATA)
        return 0;
    return s->resampling == GRA_NearestNeighbour ||
           s->resampling == GRA_Bilinear || s->resampling == GRA_Cubic;
}

/*
 * For the NaN kernel, a source with a finite nodata value is read through
 * a VRT (XML in s->nan_vrt) of its bands that reads that value as NaN (a
 * complex source with NODATA over a band whose nodata is NaN), so that no
 * nodata value enters the kernel's sums.
 */
static mmcl_status
make_nan_vrt(mmcl_context *ctx, mmcl__grid_source *s)
{
    CPLXMLNode *root = CPLCreateXMLNode(NULL, CXT_Element, "VRTDataset");
    CPLAddXMLAttributeAndValue(root, "rasterXSize",
                               CPLSPrintf("%d", s->width));
    CPLAddXMLAttributeAndValue(root, "rasterYSize",
                               CPLSPrintf("%d", s->height));
    for (int b = 0; b < s->n_bands; b++) {
        CPLXMLNode *band = CPLCreateXMLNode(root, CXT_Element,
                                            "VRTRasterBand");
        CPLAddXMLAttributeAndValue(band, "dataType",
                                   GDALGetDataTypeName(s->type));
        CPLAddXMLAttributeAndValue(band, "band", CPLSPrintf("%d", b + 1));
        CPLCreateXMLElementAndValue(band, "NoDataValue", "nan");
        CPLXMLNode *cs = CPLCreateXMLNode(band, CXT_Element,
                                          "ComplexSource");
        CPLXMLNode *file = CPLCreateXMLElementAndValue(cs, "SourceFilename",
                                                       s->name);
        CPLAddXMLAttributeAndValue(file, "relativeToVRT", "0");
        CPLCreateXMLElementAndValue(cs, "SourceBand",
                                    CPLSPrintf("%d", s->bands[b]));
        CPLCreateXMLElementAndValue(cs, "NODATA",
                                    CPLSPrintf("%.17g", s->nodata));
    }
    char *xml = CPLSerializeXMLTree(root);
    CPLDestroyXMLNode(root);
    s->nan_vrt = xml ? mmcl__strdup(ctx, xml) : NULL;
    CPLFree(xml);
    if (!s->nan_vrt)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    return MMCL_OK;
}

/* Whether the source grid is the grid: the same size, and the corners and
 * the centre of the grid land on the same source pixel positions (to 1e-9
 * pixel). Every resampling then gives the source pixel itself. */
static int
on_grid(const mmcl__grid_source *s, void *exact)
{
    if (s->width != s->grid_w || s->height != s->grid_h)
        return 0;
    double W = s->grid_w, H = s->grid_h;
    double x[5] = {0, W, 0, W, W / 2}, y[5] = {0, 0, H, H, H / 2};
    double x0[5], y0[5];
    int ok[5];
    memcpy(x0, x, sizeof(x));
    memcpy(y0, y, sizeof(y));
    to_source(exact, 5, x, y, ok);
    for (int k = 0; k < 5; k++)
        if (!ok[k] || fabs(x[k] - x0[k]) > 1e-9 || fabs(y[k] - y0[k]) > 1e-9)
            return 0;
    return 1;
}

/* Copies what the source keeps of @p r and @p g. */
static mmcl_status
copy_description(mmcl_context *ctx, mmcl__grid_source *s,
                 const mmcl__grid_raster *r, const mmcl__grid *g)
{
    s->name = mmcl__strdup(ctx, r->name);
    s->role = mmcl__strdup(ctx, r->role);
    s->read_failed = mmcl__strdup(ctx, r->read_failed);
    s->warp_failed = mmcl__strdup(ctx, r->warp_failed);
    s->wkt = mmcl__strdup(ctx, r->wkt ? r->wkt : g->wkt);
    s->grid_wkt = mmcl__strdup(ctx, g->wkt);
    s->bands = mmcl__malloc_array(ctx, (size_t)r->n_bands, 1, sizeof(int));
    if (!s->name || !s->role || !s->read_failed || !s->warp_failed ||
        !s->wkt || !s->grid_wkt || !s->bands)
        return MMCL_ERR_NO_MEMORY;
    memcpy(s->gt, r->gt, sizeof(s->gt));
    s->width = r->width;
    s->height = r->height;
    s->n_bands = r->n_bands;
    for (int b = 0; b < r->n_bands; b++)
        s->bands[b] = r->band_list ? r->band_list[b] : r->band + b;
    s->type = r->type;
    s->validity = r->validity;
    s->has_nodata = r->has_nodata;
    s->nodata = r->nodata;
    memcpy(s->grid_gt, g->gt, sizeof(s->grid_gt));
    s->grid_w = g->width;
    s->grid_h = g->height;
    if (r->shift) {
        s->shift = mmcl__shift_copy_scaled(ctx, r->shift, 1.0, 1.0);
        if (!s->shift)
            return mmcl_context_errcode(ctx);
    }
    return MMCL_OK;
}

mmcl_status
mmcl__grid_source_open(mmcl_context *ctx, const mmcl__grid_raster *raster,
                       const mmcl__grid *grid, mmcl__grid_source **out)
{
    *out = NULL;
    mmcl__grid_source *s = calloc(1, sizeof(*s));
    if (!s)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    mmcl_status st = copy_description(ctx, s, raster, grid);
    void *exact = NULL;
    if (st == MMCL_OK && s->shift && raster->place == MMCL__GRID_SAME)
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "a shifted %s is warped: its CRS, geotransform and "
                         "size are needed (not MMCL__GRID_SAME)",
                         raster->role);
    if (st == MMCL_OK && raster->place == MMCL__GRID_SAME) {
        s->on_grid = 1;
        snprintf(s->resampling_name, sizeof(s->resampling_name), "%s",
                 raster->resampling);
        s->resampling = mmcl__resample_alg(s->resampling_name);
        goto done;
    }
    exact = st == MMCL_OK ? create_exact(ctx, s) : NULL;
    if (st == MMCL_OK && !exact)
        st = mmcl_context_errcode(ctx);
    if (st == MMCL_OK)
        st = check_overlap_and_resampling(ctx, s, exact, raster, grid);
    if (st != MMCL_OK)
        goto done;
    s->centre_ratio = pixel_ratio(exact, grid->width / 2.0,
                                  grid->height / 2.0);
    s->nan_kernel = nan_propagation(s);
    /* A shift moves the pixels off the grid: warped. */
    s->on_grid = raster->place == MMCL__GRID_AUTO && !s->shift &&
                 on_grid(s, exact);
    if (s->nan_kernel && !s->on_grid && s->has_nodata && !isnan(s->nodata))
        st = make_nan_vrt(ctx, s);
    if (st == MMCL_OK)
        st = choose_lattice(ctx, s, exact, raster->error_threshold);
done:
    if (exact)
        GDALDestroyGenImgProjTransformer(exact);
    if (st != MMCL_OK) {
        mmcl__grid_source_close(s);
        return st;
    }
    *out = s;
    return MMCL_OK;
}

void
mmcl__grid_source_close(mmcl__grid_source *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->role);
    free(s->read_failed);
    free(s->warp_failed);
    free(s->wkt);
    free(s->grid_wkt);
    free(s->bands);
    free(s->nan_vrt);
    free(s->lat_x);
    free(s->lat_y);
    mmcl__shift_destroy(s->shift);
    free(s);
}

const char *
mmcl__grid_source_resampling(const mmcl__grid_source *s)
{
    return s->resampling_name;
}

int
mmcl__grid_source_on_grid(const mmcl__grid_source *s)
{
    return s->on_grid;
}

int
mmcl__grid_source_lattice_step(const mmcl__grid_source *s)
{
    return s->step;
}

int
mmcl__grid_source_nan_kernel(const mmcl__grid_source *s)
{
    return s->nan_kernel && !s->on_grid;
}

void
mmcl__grid_source_lattice_eval(const mmcl__grid_source *s, int n, double *x,
                               double *y, int *ok, int one_by_one)
{
    if (!one_by_one) {
        lattice_eval_n(s, n, x, y, ok);
        return;
    }
    for (int i = 0; i < n; i++)
        ok[i] = lattice_eval(s, x[i], y[i], &x[i], &y[i]);
}

double
mmcl__grid_source_centre_ratio(const mmcl__grid_source *s)
{
    return s->centre_ratio;
}

/* ---- reading ---------------------------------------------------------- */

mmcl__grid_reader *
mmcl__grid_reader_create(mmcl_context *ctx, const mmcl__grid_source *src)
{
    mmcl__grid_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    r->src = src;
    r->ds = mmcl__open_raster(ctx, src->nan_vrt ? src->nan_vrt : src->name,
                              src->role);
    int fail = !r->ds;
    if (!fail && !src->on_grid) {
        r->exact = create_exact(ctx, src);
        fail = !r->exact;
    }
    if (fail) {
        mmcl__grid_reader_destroy(r);
        return NULL;
    }
    return r;
}

void
mmcl__grid_reader_destroy(mmcl__grid_reader *r)
{
    if (!r)
        return;
    if (r->exact)
        GDALDestroyGenImgProjTransformer(r->exact);
    if (r->ds)
        GDALClose(r->ds);
    free(r->mask);
    free(r);
}

/* Value i of @p out, of type @p type (float or double). */
static double
value_at(const void *out, GDALDataType type, size_t i)
{
    return type == GDT_Float32 ? ((const float *)out)[i]
                               : ((const double *)out)[i];
}

static void
set_nan(void *out, GDALDataType type, size_t i)
{
    if (type == GDT_Float32)
        ((float *)out)[i] = NAN;
    else
        ((double *)out)[i] = NAN;
}

/* NaN where the source's validity says invalid, in the window (n_bands,
 * h, w) read as it is (r->mask holds at least w * h values). */
static CPLErr
mask_invalid(mmcl__grid_reader *r, int x, int y, int w, int h, void *out)
{
    const mmcl__grid_source *s = r->src;
    size_t plane = (size_t)w * h, n = plane * s->n_bands;
    if (s->validity == MMCL__GRID_NODATA) {
        if (!s->has_nodata || isnan(s->nodata))
            return CE_None;
        /* Compared in the type read: a float band's nodata as a float. */
        double nd = s->type == GDT_Float32 ? (float)s->nodata : s->nodata;
        for (size_t i = 0; i < n; i++)
            if (value_at(out, s->type, i) == nd)
                set_nan(out, s->type, i);
        return CE_None;
    }
    CPLErr err = CE_None;
    for (int b = 0; b < s->n_bands && err == CE_None; b++) {
        GDALRasterBandH band = GDALGetRasterBand(r->ds, s->bands[b]);
        if (GDALGetMaskFlags(band) & (GMF_ALL_VALID | GMF_NODATA))
            continue;
        err = GDALRasterIO(GDALGetMaskBand(band), GF_Read, x, y, w, h,
                           r->mask, w, h, GDT_Byte, 0, 0);
        for (size_t i = 0; i < plane && err == CE_None; i++)
            if (!r->mask[i])
                set_nan(out, s->type, plane * b + i);
    }
    return err;
}

/* The window of a source on the grid, read as it is. */
static mmcl_status
read_on_grid(mmcl_context *ctx, mmcl__grid_reader *r, int x, int y, int w,
             int h, void *out)
{
    const mmcl__grid_source *s = r->src;
    size_t plane = (size_t)w * h;
    if (s->validity == MMCL__GRID_MASK && plane > r->mask_pixels) {
        free(r->mask);
        r->mask = mmcl__malloc_array(ctx, plane, 1, 1);
        r->mask_pixels = r->mask ? plane : 0;
        if (!r->mask)
            return MMCL_ERR_NO_MEMORY;
    }
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    CPLErr err = GDALDatasetRasterIO(r->ds, GF_Read, x, y, w, h, out, w, h,
                                     s->type, s->n_bands, s->bands, 0, 0, 0);
    if (err == CE_None)
        err = mask_invalid(r, x, y, w, h, out);
    mmcl__gdal_capture_end(&cap);
    if (err != CE_None)
        return mmcl__error(ctx, MMCL_ERR_IO, "%s %d,%d %dx%d: %s",
                           s->read_failed, x, y, w, h, mmcl__gdal_msg(&cap));
    return MMCL_OK;
}

/*
 * Warps the source onto the grid window (x, y, w, h) into @p out, which
 * the warper's kernel fills in place (GDALWarpRegionToBuffer; the source
 * window it reads is computed as GDALChunkAndWarpImage computes it): no
 * destination dataset, no buffer of the warper's own to initialise and
 * copy into @p out. Pixels the warper does not reach stay NaN (outside
 * the source), as INIT_DEST would leave them.
 */
static mmcl_status
warp_window(mmcl_context *ctx, mmcl__grid_reader *r, int x, int y, int w,
            int h, void *out)
{
    const mmcl__grid_source *s = r->src;
    size_t n = (size_t)w * h * s->n_bands;
    if (s->type == GDT_Float32) /* one loop per type: a plain fill */
        for (size_t i = 0; i < n; i++)
            ((float *)out)[i] = NAN;
    else
        for (size_t i = 0; i < n; i++)
            ((double *)out)[i] = NAN;

    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    window_transform tf = {s, r->exact, x, y};
    GDALWarpOptions *wo = GDALCreateWarpOptions();
    wo->hSrcDS = r->ds;
    wo->nBandCount = s->n_bands;
    wo->panSrcBands = CPLMalloc(sizeof(int) * (size_t)s->n_bands);
    /* With the NaN kernel, no nodata at all: the warper then builds no
     * validity masks, and NaN propagates through the sums. */
    if (!s->nan_kernel) {
        wo->padfDstNoDataReal =
            CPLMalloc(sizeof(double) * (size_t)s->n_bands);
        if (s->validity == MMCL__GRID_NODATA)
            wo->padfSrcNoDataReal =
                CPLMalloc(sizeof(double) * (size_t)s->n_bands);
    }
    for (int b = 0; b < s->n_bands; b++) {
        wo->panSrcBands[b] = s->nan_vrt ? b + 1 : s->bands[b];
        if (wo->padfDstNoDataReal)
            wo->padfDstNoDataReal[b] = NAN;
        /* A float source without declared nodata: NaN marks the invalid. */
        if (wo->padfSrcNoDataReal)
            wo->padfSrcNoDataReal[b] = s->has_nodata ? s->nodata : NAN;
    }
    wo->eResampleAlg = s->resampling;
    wo->eWorkingDataType = s->type;
    wo->pfnTransformer = window_transform_fn;
    wo->pTransformerArg = &tf;
    /* What the warper initialises its own buffers with (@p out already
     * is); a window whose source window cannot be computed (its points do
     * not transform) is left NaN, as the chunked warp skips it. */
    wo->papszWarpOptions = CSLSetNameValue(
        NULL, "INIT_DEST", s->nan_kernel ? "NaN" : "NO_DATA");
    wo->papszWarpOptions = CSLSetNameValue(
        wo->papszWarpOptions, "ERROR_OUT_IF_EMPTY_SOURCE_WINDOW", "NO");
    wo->papszWarpOptions = CSLSetNameValue(
        wo->papszWarpOptions, "XSCALE", CPLSPrintf("%.17g", s->xscale));
    wo->papszWarpOptions = CSLSetNameValue(
        wo->papszWarpOptions, "YSCALE", CPLSPrintf("%.17g", s->yscale));

    GDALWarpOperationH op = GDALCreateWarpOperation(wo);
    /* A zero source window: the warper computes it. */
    CPLErr err = op ? GDALWarpRegionToBuffer(op, 0, 0, w, h, out, s->type,
                                             0, 0, 0, 0)
                    : CE_Failure;
    if (op)
        GDALDestroyWarpOperation(op);
    wo->pTransformerArg = NULL;
    GDALDestroyWarpOptions(wo);
    mmcl__gdal_capture_end(&cap);
    if (err != CE_None)
        return mmcl__error(ctx, MMCL_ERR_IO, "%s %d,%d %dx%d: %s",
                           s->warp_failed, x, y, w, h, mmcl__gdal_msg(&cap));
    return MMCL_OK;
}

mmcl_status
mmcl__grid_reader_read(mmcl_context *ctx, mmcl__grid_reader *r, int x, int y,
                       int w, int h, void *out, uint8_t *valid)
{
    const mmcl__grid_source *s = r->src;
    mmcl_status st = s->on_grid ? read_on_grid(ctx, r, x, y, w, h, out)
                                : warp_window(ctx, r, x, y, w, h, out);
    if (st != MMCL_OK || !valid)
        return st;
    size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane; i++) {
        uint8_t ok = 1;
        for (int b = 0; b < s->n_bands && ok; b++)
            ok = !isnan(value_at(out, s->type, plane * b + i));
        valid[i] = ok;
    }
    return MMCL_OK;
}
