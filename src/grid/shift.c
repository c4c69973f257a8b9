/* SPDX-License-Identifier: MIT */
/*
 * The SAR misregistration correction: a constant shift, or the shift field
 * of mmcl coreg read and checked against the optical grid, its
 * low-confidence blocks filled from their confident neighbours, and
 * interpolated bilinearly between block centres (docs/shift.md).
 */
#define _DEFAULT_SOURCE /* strcasecmp */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpl_string.h>
#include <ogr_srs_api.h>

#include "context_internal.h"
#include "gdal_util_internal.h"
#include "options_internal.h"
#include "shift_internal.h"

struct mmcl__shift {
    char *what; /* "DX,DY" or the field's file name */
    /* Pixels of the grid evaluated per pixel of the field's grid: 1, or
     * the factors of a decimated grid. */
    double sx, sy;
    double dx, dy; /* a constant shift (nbx == 0) */
    /* A field: nbx x nby blocks (row-major), filled; their centres in
     * pixels of the field's grid, and the inverses of the block size and
     * of the widths between centres (a multiply is cheaper than a divide
     * on the warper's every pixel). */
    int nbx, nby;
    double *bdx, *bdy;
    double *cx, *cy;
    double inv_bx, inv_by;
    double *inv_wx, *inv_wy; /* (nbx - 1), (nby - 1) */
    double inv_sx, inv_sy;
};

int
mmcl__shift_parse(const char *text, double *dx, double *dy)
{
    if (!text)
        return 0;
    char *end;
    errno = 0;
    double a = strtod(text, &end);
    if (end == text || errno)
        return 0;
    while (*end == ' ')
        end++;
    if (*end != ',')
        return 0;
    const char *second = end + 1;
    double b = strtod(second, &end);
    if (end == second || errno)
        return 0;
    while (*end == ' ')
        end++;
    if (*end || !isfinite(a) || !isfinite(b))
        return 0;
    *dx = a;
    *dy = b;
    return 1;
}

void
mmcl__shift_destroy(mmcl__shift *s)
{
    if (!s)
        return;
    free(s->what);
    free(s->bdx);
    free(s->bdy);
    free(s->cx);
    free(s->cy);
    free(s->inv_wx);
    free(s->inv_wy);
    free(s);
}

static mmcl__shift *
shift_new(mmcl_context *ctx, const char *what)
{
    mmcl__shift *s = calloc(1, sizeof(*s));
    if (!s) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    s->sx = s->sy = s->inv_sx = s->inv_sy = 1.0;
    s->what = mmcl__strdup(ctx, what);
    if (!s->what) {
        free(s);
        return NULL;
    }
    return s;
}

/* The inverses of the scales, of the block size and of the widths between
 * centres (a field's centres set). */
static mmcl_status
field_inverses(mmcl_context *ctx, mmcl__shift *s)
{
    s->inv_sx = 1.0 / s->sx;
    s->inv_sy = 1.0 / s->sy;
    if (s->nbx == 0)
        return MMCL_OK;
    s->inv_bx = s->nbx > 1 ? 1.0 / (s->cx[1] - s->cx[0]) : 1.0;
    s->inv_by = s->nby > 1 ? 1.0 / (s->cy[1] - s->cy[0]) : 1.0;
    free(s->inv_wx);
    free(s->inv_wy);
    s->inv_wx = mmcl__malloc_array(ctx, (size_t)s->nbx, 1, sizeof(double));
    s->inv_wy = mmcl__malloc_array(ctx, (size_t)s->nby, 1, sizeof(double));
    if (!s->inv_wx || !s->inv_wy)
        return MMCL_ERR_NO_MEMORY;
    for (int i = 0; i + 1 < s->nbx; i++)
        s->inv_wx[i] = 1.0 / (s->cx[i + 1] - s->cx[i]);
    for (int j = 0; j + 1 < s->nby; j++)
        s->inv_wy[j] = 1.0 / (s->cy[j + 1] - s->cy[j]);
    return MMCL_OK;
}

mmcl__shift *
mmcl__shift_copy_scaled(mmcl_context *ctx, const mmcl__shift *base, double sx,
                        double sy)
{
    mmcl__shift *s = shift_new(ctx, base->what);
    if (!s)
        return NULL;
    s->sx = base->sx * sx;
    s->sy = base->sy * sy;
    s->dx = base->dx;
    s->dy = base->dy;
    s->nbx = base->nbx;
    s->nby = base->nby;
    if (base->nbx > 0) {
        size_t n = (size_t)base->nbx * base->nby;
        s->bdx = mmcl__malloc_array(ctx, n, 1, sizeof(double));
        s->bdy = mmcl__malloc_array(ctx, n, 1, sizeof(double));
        s->cx = mmcl__malloc_array(ctx, (size_t)base->nbx, 1, sizeof(double));
        s->cy = mmcl__malloc_array(ctx, (size_t)base->nby, 1, sizeof(double));
        if (!s->bdx || !s->bdy || !s->cx || !s->cy) {
            mmcl__shift_destroy(s);
            return NULL;
        }
        memcpy(s->bdx, base->bdx, n * sizeof(double));
        memcpy(s->bdy, base->bdy, n * sizeof(double));
        memcpy(s->cx, base->cx, (size_t)base->nbx * sizeof(double));
        memcpy(s->cy, base->cy, (size_t)base->nby * sizeof(double));
    }
    if (field_inverses(ctx, s) != MMCL_OK) {
        mmcl__shift_destroy(s);
        return NULL;
    }
    return s;
}

/* The cell [c[i], c[i+1]] of the centres @p c (n of them, spaced
 * 1 / @p inv_block but for the last; @p inv_w the inverses of their
 * widths) holding @p v, and the weight of c[i+1] in it, clamped to the
 * first and last centres. */
static void
cell_of(const double *c, const double *inv_w, int n, double inv_block,
        double v, int *i, double *u)
{
    if (n == 1) {
        *i = 0;
        *u = 0.0;
        return;
    }
    /* floor() for the non-negative values kept; the others clamp. */
    double f = (v - c[0]) * inv_block;
    int k = f < 0 ? 0 : (f >= n - 2 ? n - 2 : (int)f);
    double t = (v - c[k]) * inv_w[k];
    *i = k;
    *u = t < 0 ? 0 : (t > 1 ? 1 : t);
}

/*
 * The field between block centres, in two steps that the row evaluation
 * (mmcl__shift_apply) shares, so that a position gets the same bits
 * whichever way it is evaluated: a row of the field's grid at @p fy (its
 * cell and weight), then along it at @p fx.
 */
typedef struct field_row {
    int j, j1;
    double v;
} field_row;

typedef struct field_cell {
    int i;               /* the cell's left centre; -1: none yet */
    double c0x, c1x;     /* dx at its two centres, on the row */
    double c0y, c1y;     /* dy */
} field_cell;

static field_row
row_at(const mmcl__shift *s, double fy)
{
    field_row r;
    cell_of(s->cy, s->inv_wy, s->nby, s->inv_by, fy, &r.j, &r.v);
    r.j1 = s->nby > 1 ? r.j + 1 : r.j;
    return r;
}

/* The shift at @p fx on row @p r, through the cache @p c of the cell. */
static void
along_row(const mmcl__shift *s, const field_row *r, field_cell *c, double fx,
          double *dx, double *dy)
{
    int i;
    double u;
    cell_of(s->cx, s->inv_wx, s->nbx, s->inv_bx, fx, &i, &u);
    if (i != c->i) {
        int i1 = s->nbx > 1 ? i + 1 : i;
        size_t k0 = (size_t)r->j * s->nbx, k1 = (size_t)r->j1 * s->nbx;
        double v = r->v;
        c->i = i;
        c->c0x = (1 - v) * s->bdx[k0 + i] + v * s->bdx[k1 + i];
        c->c1x = (1 - v) * s->bdx[k0 + i1] + v * s->bdx[k1 + i1];
        c->c0y = (1 - v) * s->bdy[k0 + i] + v * s->bdy[k1 + i];
        c->c1y = (1 - v) * s->bdy[k0 + i1] + v * s->bdy[k1 + i1];
    }
    *dx = ((1 - u) * c->c0x + u * c->c1x) * s->inv_sx;
    *dy = ((1 - u) * c->c0y + u * c->c1y) * s->inv_sy;
}

void
mmcl__shift_eval(const mmcl__shift *s, double x, double y, double *dx,
                 double *dy)
{
    double fx = x * s->sx, fy = y * s->sy;
    if (s->nbx == 0 || !isfinite(fx) || !isfinite(fy)) {
        *dx = s->nbx == 0 ? s->dx * s->inv_sx : 0.0;
        *dy = s->nbx == 0 ? s->dy * s->inv_sy : 0.0;
        return;
    }
    field_row r = row_at(s, fy);
    field_cell c = {.i = -1};
    along_row(s, &r, &c, fx, dx, dy);
}

void
mmcl__shift_apply(const mmcl__shift *s, int n, double *x, double *y)
{
    if (s->nbx == 0) {
        double dx = s->dx * s->inv_sx, dy = s->dy * s->inv_sy;
        for (int k = 0; k < n; k++) {
            x[k] += dx;
            y[k] += dy;
        }
        return;
    }
    /* The warper asks row by row: the row's cell and the cell along it
     * are kept while they hold. */
    field_row r = {0, 0, 0.0};
    field_cell c = {.i = -1};
    double row_fy = NAN;
    for (int k = 0; k < n; k++) {
        double fx = x[k] * s->sx, fy = y[k] * s->sy;
        if (!isfinite(fx) || !isfinite(fy))
            continue;
        if (fy != row_fy) {
            r = row_at(s, fy);
            c.i = -1;
            row_fy = fy;
        }
        double dx, dy;
        along_row(s, &r, &c, fx, &dx, &dy);
        x[k] += dx;
        y[k] += dy;
    }
}

const char *
mmcl__shift_describe(const mmcl__shift *s)
{
    return s->what;
}

char **
mmcl__shift_metadata(char **md, const mmcl__shift *s)
{
    if (!s)
        return md;
    return CSLSetNameValue(md, s->nbx > 0 ? "SAR_SHIFT_FIELD" : "SAR_SHIFT",
                           s->what);
}

int
mmcl__shift_is_field(const mmcl__shift *s)
{
    return s->nbx > 0;
}

void
mmcl__shift_mean(const mmcl__shift *s, double *dx, double *dy)
{
    if (s->nbx == 0) {
        *dx = s->dx;
        *dy = s->dy;
        return;
    }
    size_t n = (size_t)s->nbx * s->nby;
    double a = 0, b = 0;
    for (size_t k = 0; k < n; k++) {
        a += s->bdx[k];
        b += s->bdy[k];
    }
    *dx = a / (double)n;
    *dy = b / (double)n;
}

/* ---- the field -------------------------------------------------------- */

/* The band of @p ds described @p name (case-insensitive), or 0. */
static int
band_named(GDALDatasetH ds, const char *name)
{
    for (int b = 1; b <= GDALGetRasterCount(ds); b++) {
        const char *d = GDALGetDescription(GDALGetRasterBand(ds, b));
        if (d && strcasecmp(d, name) == 0)
            return b;
    }
    return 0;
}

/* A dataset metadata item, in the default domain or the MMCL one. */
static const char *
metadata_item(GDALDatasetH ds, const char *key)
{
    const char *v = GDALGetMetadataItem(ds, key, NULL);
    return v ? v : GDALGetMetadataItem(ds, key, "MMCL");
}

/* Refuses a raster that is not a shift field: another product, or one
 * without the bands dx, dy and confidence. */
static mmcl_status
check_is_field(mmcl_context *ctx, GDALDatasetH ds, const char *path,
               int bands[3])
{
    /* MMCL_PRODUCT, or the PRODUCT every other mmcl raster records in
     * its MMCL domain. */
    const char *product = metadata_item(ds, "MMCL_PRODUCT");
    if (!product)
        product = GDALGetMetadataItem(ds, "PRODUCT", "MMCL");
    if (product && strcasecmp(product, "coreg") != 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "shift field '%s' is an mmcl %s raster, not a "
                           "shift field written by mmcl coreg",
                           path, product);
    static const char *const names[3] = {"dx", "dy", "confidence"};
    for (int k = 0; k < 3; k++) {
        bands[k] = band_named(ds, names[k]);
        if (!bands[k])
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "shift field '%s' has no band named "
                               "\"%s\": it is not a shift field written by "
                               "mmcl coreg (bands dx, dy, dx_m, dy_m, "
                               "confidence)",
                               path, names[k]);
    }
    return MMCL_OK;
}

/* Refuses a field mmcl coreg measured on a corrected SAR: it holds what
 * remains of the shift after that correction, not the shift itself. */
static mmcl_status
check_not_residual(mmcl_context *ctx, GDALDatasetH ds, const char *path)
{
    static const char *const corrections[2] = {"SAR_SHIFT",
                                               "SAR_SHIFT_FIELD"};
    for (int k = 0; k < 2; k++) {
        const char *c = metadata_item(ds, corrections[k]);
        if (c)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "shift field '%s' is a residual: mmcl coreg "
                               "measured it on the SAR corrected with %s, "
                               "so it holds what remains of the shift after "
                               "that correction, not the SAR's shift; "
                               "correct with that correction, or with a "
                               "field measured without one",
                               path,
                               mmcl__opt_setting(ctx, corrections[k], c));
    }
    return MMCL_OK;
}

/* The field's CRS against the grid's. */
static mmcl_status
check_crs(mmcl_context *ctx, GDALDatasetH ds, const char *path,
          const mmcl__grid *g)
{
    const char *wkt = GDALGetProjectionRef(ds);
    if (!wkt || !*wkt)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "shift field '%s' has no CRS: it must lie on the "
                           "optical grid (%s)",
                           path, g->label);
    OGRSpatialReferenceH a = OSRNewSpatialReference(wkt);
    OGRSpatialReferenceH b = OSRNewSpatialReference(g->wkt);
    int same = a && b && OSRIsSame(a, b);
    char name_a[200] = "?", name_b[200] = "?";
    if (a && OSRGetName(a))
        snprintf(name_a, sizeof(name_a), "%s", OSRGetName(a));
    if (b && OSRGetName(b))
        snprintf(name_b, sizeof(name_b), "%s", OSRGetName(b));
    if (a)
        OSRDestroySpatialReference(a);
    if (b)
        OSRDestroySpatialReference(b);
    if (!same)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "shift field '%s' is on another CRS (%s) than the "
                           "%s (%s): a shift field lies on the optical grid "
                           "(write it with mmcl coreg from this optical "
                           "raster)",
                           path, name_a, g->label, name_b);
    return MMCL_OK;
}

/* The field's block size, from its geotransform, checked against the grid:
 * the grid's origin, pixels of block x block grid pixels, and
 * ceil(W / block) x ceil(H / block) of them. */
static mmcl_status
check_on_grid(mmcl_context *ctx, GDALDatasetH ds, const char *path,
              const mmcl__grid *g, int *block_out)
{
    double gt[6];
    if (GDALGetGeoTransform(ds, gt) != CE_None)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "shift field '%s' has no geotransform: it must "
                           "lie on the optical grid (%s)",
                           path, g->label);
    const double *o = g->gt;
    const char *meta = metadata_item(ds, "MMCL_COREG_BLOCK");
    long block = meta ? strtol(meta, NULL, 10)
                      : lround(o[1] != 0 ? gt[1] / o[1] : 0);
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    /* A thousandth of an optical pixel, in CRS units. */
    double px = fmax(fabs(o[1]) + fabs(o[2]), fabs(o[4]) + fabs(o[5]));
    double tol = 1e-3 * px;
    int ok = block >= 1 && block <= g->width + g->height &&
             fabs(gt[0] - o[0]) <= tol && fabs(gt[3] - o[3]) <= tol;
    for (int k = 1; ok && k < 6; k++)
        if (k != 3 && fabs(gt[k] - block * o[k]) > tol * 1e-3 * block)
            ok = 0;
    long want_w = block >= 1 ? (g->width + block - 1) / block : 0;
    long want_h = block >= 1 ? (g->height + block - 1) / block : 0;
    if (ok && (w != want_w || h != want_h))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "shift field '%s' has %d x %d blocks of %ld "
                           "pixels, but the %s of %d x %d pixels has %ld x "
                           "%ld such blocks: the field was made for another "
                           "optical raster",
                           path, w, h, block, g->label, g->width, g->height,
                           want_w, want_h);
    if (!ok)
        return mmcl__error(
            ctx, MMCL_ERR_INVALID_ARG,
            "shift field '%s' does not lie on the optical grid at block "
            "spacing: its origin is (%.10g, %.10g) with pixels of %.10g x "
            "%.10g%s; a shift field starts at the %s origin (%.10g, "
            "%.10g) with pixels of a whole number of optical pixels "
            "(%.10g x %.10g each)%s",
            path, gt[0], gt[3], gt[1], gt[5],
            meta ? CPLSPrintf(" (MMCL_COREG_BLOCK=%s)", meta) : "", g->label,
            o[0], o[3], o[1], o[5],
            meta ? "" : " (write it with mmcl coreg from this optical raster)");
    *block_out = (int)block;
    return MMCL_OK;
}

/* Reads band @p b of @p ds into @p out (w * h), its nodata as NaN. */
static mmcl_status
read_band(mmcl_context *ctx, GDALDatasetH ds, const char *path, int b,
          double *out)
{
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    GDALRasterBandH band = GDALGetRasterBand(ds, b);
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    CPLErr err = GDALRasterIO(band, GF_Read, 0, 0, w, h, out, w, h,
                              GDT_Float64, 0, 0);
    mmcl__gdal_capture_end(&cap);
    if (err != CE_None)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot read band %d of shift field '%s': %s", b,
                           path, mmcl__gdal_msg(&cap));
    int has = 0;
    double nd = GDALGetRasterNoDataValue(band, &has);
    if (has && !isnan(nd))
        for (size_t i = 0; i < (size_t)w * h; i++)
            if (out[i] == nd)
                out[i] = NAN;
    return MMCL_OK;
}

/*
 * Fills the blocks of weight 0 of (@p dx, @p dy) from their neighbours:
 * in passes, every unknown block with known blocks among its 8 neighbours
 * gets their weighted mean, and the mean of their weights as its own, so
 * the known region grows outward ring by ring from the confident blocks.
 */
static mmcl_status
fill_blocks(mmcl_context *ctx, int nbx, int nby, double *dx, double *dy,
            double *weight)
{
    size_t n = (size_t)nbx * nby;
    double *nw = mmcl__malloc_array(ctx, n, 1, sizeof(double));
    double *ndx = mmcl__malloc_array(ctx, n, 1, sizeof(double));
    double *ndy = mmcl__malloc_array(ctx, n, 1, sizeof(double));
    if (!nw || !ndx || !ndy) {
        free(nw);
        free(ndx);
        free(ndy);
        return MMCL_ERR_NO_MEMORY;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        memcpy(nw, weight, n * sizeof(double));
        memcpy(ndx, dx, n * sizeof(double));
        memcpy(ndy, dy, n * sizeof(double));
        for (int j = 0; j < nby; j++)
            for (int i = 0; i < nbx; i++) {
                size_t k = (size_t)j * nbx + i;
                if (weight[k] > 0)
                    continue;
                double sw = 0, sx = 0, sy = 0;
                int m = 0;
                for (int b = j - 1; b <= j + 1; b++)
                    for (int a = i - 1; a <= i + 1; a++) {
                        if (a < 0 || b < 0 || a >= nbx || b >= nby)
                            continue;
                        size_t q = (size_t)b * nbx + a;
                        if (!(weight[q] > 0))
                            continue;
                        sw += weight[q];
                        sx += weight[q] * dx[q];
                        sy += weight[q] * dy[q];
                        m++;
                    }
                if (m == 0)
                    continue;
                ndx[k] = sx / sw;
                ndy[k] = sy / sw;
                nw[k] = sw / m;
                changed = 1;
            }
        memcpy(weight, nw, n * sizeof(double));
        memcpy(dx, ndx, n * sizeof(double));
        memcpy(dy, ndy, n * sizeof(double));
    }
    free(nw);
    free(ndx);
    free(ndy);
    return MMCL_OK;
}

/* The field's blocks (dx, dy, confidence) into @p s, filled where the
 * confidence is below @p min_conf. */
static mmcl_status
read_blocks(mmcl_context *ctx, GDALDatasetH ds, const char *path,
            const int bands[3], double min_conf, mmcl__shift *s)
{
    size_t n = (size_t)s->nbx * s->nby;
    double *conf = mmcl__malloc_array(ctx, n, 1, sizeof(double));
    s->bdx = mmcl__malloc_array(ctx, n, 1, sizeof(double));
    s->bdy = mmcl__malloc_array(ctx, n, 1, sizeof(double));
    mmcl_status st = conf && s->bdx && s->bdy ? MMCL_OK : MMCL_ERR_NO_MEMORY;
    if (st == MMCL_OK)
        st = read_band(ctx, ds, path, bands[0], s->bdx);
    if (st == MMCL_OK)
        st = read_band(ctx, ds, path, bands[1], s->bdy);
    if (st == MMCL_OK)
        st = read_band(ctx, ds, path, bands[2], conf);
    if (st != MMCL_OK) {
        free(conf);
        return st;
    }
    /* The weight of a confident block is its confidence (at least a
     * tiny one, for a threshold of 0); the others are to be filled. */
    size_t confident = 0;
    for (size_t k = 0; k < n; k++) {
        int ok = isfinite(s->bdx[k]) && isfinite(s->bdy[k]) &&
                 isfinite(conf[k]) && conf[k] >= min_conf;
        conf[k] = ok ? fmax(conf[k], 1e-6) : 0.0;
        if (!ok)
            s->bdx[k] = s->bdy[k] = 0.0;
        confident += (size_t)ok;
    }
    if (confident == 0) {
        free(conf);
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "shift field '%s' has no block with an estimate "
                           "of confidence %g or more (its %zu blocks are "
                           "NaN or less confident): there is no shift to "
                           "correct with (lower %s, or leave the SAR "
                           "uncorrected)",
                           path, min_conf, n,
                           mmcl__opt_name(ctx, "SHIFT_MIN_CONFIDENCE"));
    }
    st = fill_blocks(ctx, s->nbx, s->nby, s->bdx, s->bdy, conf);
    free(conf);
    return st;
}

/* Block centres along an axis of @p size pixels: the middle of the pixels
 * each block covers (the last one may be partial). */
static double *
centres(mmcl_context *ctx, int nb, int block, int size)
{
    double *c = mmcl__malloc_array(ctx, (size_t)nb, 1, sizeof(double));
    for (int i = 0; c && i < nb; i++) {
        double lo = (double)i * block;
        double hi = fmin((double)(i + 1) * block, (double)size);
        c[i] = (lo + hi) / 2;
    }
    return c;
}

/* A shift field of mmcl coreg on @p g at block spacing: its bands
 * (@p bands: dx, dy, confidence), its CRS, its origin and size. */
static mmcl_status
check_field(mmcl_context *ctx, GDALDatasetH ds, const char *path,
            const mmcl__grid *g, int bands[3], int *block)
{
    mmcl_status st = check_is_field(ctx, ds, path, bands);
    if (st == MMCL_OK)
        st = check_crs(ctx, ds, path, g);
    if (st == MMCL_OK)
        st = check_on_grid(ctx, ds, path, g, block);
    return st;
}

mmcl_status
mmcl__shift_field_check(mmcl_context *ctx, const char *path,
                        const mmcl__grid *grid, int *block)
{
    GDALDatasetH ds = mmcl__open_raster(ctx, path, "shift field");
    if (!ds)
        return mmcl_context_errcode(ctx);
    int bands[3];
    mmcl_status st = check_field(ctx, ds, path, grid, bands, block);
    GDALClose(ds);
    return st;
}

static mmcl_status
open_field(mmcl_context *ctx, const char *path, const mmcl__grid *g,
           double min_conf, mmcl__shift **out)
{
    GDALDatasetH ds = mmcl__open_raster(ctx, path, "shift field");
    if (!ds)
        return mmcl_context_errcode(ctx);
    int bands[3], block = 0;
    mmcl_status st = check_field(ctx, ds, path, g, bands, &block);
    if (st == MMCL_OK)
        st = check_not_residual(ctx, ds, path);
    mmcl__shift *s = st == MMCL_OK ? shift_new(ctx, path) : NULL;
    if (st == MMCL_OK && !s)
        st = MMCL_ERR_NO_MEMORY;
    if (st == MMCL_OK) {
        s->nbx = GDALGetRasterXSize(ds);
        s->nby = GDALGetRasterYSize(ds);
        s->cx = centres(ctx, s->nbx, block, g->width);
        s->cy = centres(ctx, s->nby, block, g->height);
        st = s->cx && s->cy ? field_inverses(ctx, s) : MMCL_ERR_NO_MEMORY;
        if (st == MMCL_OK)
            st = read_blocks(ctx, ds, path, bands, min_conf, s);
    }
    GDALClose(ds);
    if (st != MMCL_OK) {
        mmcl__shift_destroy(s);
        return st;
    }
    *out = s;
    return MMCL_OK;
}

mmcl_status
mmcl__shift_from_options(mmcl_context *ctx, const mmcl_options *opts,
                         const mmcl__grid *grid, mmcl__shift **out)
{
    *out = NULL;
    const char *constant = mmcl__opt_str(opts, "SAR_SHIFT");
    const char *field = mmcl__opt_str(opts, "SAR_SHIFT_FIELD");
    if (constant && field)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s and %s are exclusive: give a constant shift "
                           "or a shift field, not both",
                           mmcl__opt_name(ctx, "SAR_SHIFT"),
                           mmcl__opt_name(ctx, "SAR_SHIFT_FIELD"));
    if (field)
        return open_field(ctx, field, grid,
                          mmcl__opt_double(opts, "SHIFT_MIN_CONFIDENCE"),
                          out);
    if (!constant)
        return MMCL_OK;
    double dx, dy;
    if (!mmcl__shift_parse(constant, &dx, &dy))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s expects DX,DY: two numbers, in optical "
                           "pixels (x east, y down), such as 1.5,-0.7; got "
                           "'%s'",
                           mmcl__opt_name(ctx, "SAR_SHIFT"), constant);
    if (dx == 0 && dy == 0)
        return MMCL_OK;
    mmcl__shift *s = shift_new(ctx, CPLSPrintf("%.10g,%.10g", dx, dy));
    if (!s)
        return mmcl_context_errcode(ctx);
    s->dx = dx;
    s->dy = dy;
    *out = s;
    return MMCL_OK;
}
