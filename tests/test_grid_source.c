/* SPDX-License-Identifier: MIT */
/*
 * The grid source (src/grid/grid_source.c): a raster on another CRS read
 * window by window on a grid equals gdalwarp of the whole grid; nodata and
 * masks make pixels invalid as the source's validity says; a source with
 * no pixel in common with the grid is refused. A shifted source (the SAR
 * misregistration corrected, src/grid/shift.c) equals gdalwarp onto the
 * grid moved by the shift, whatever the windows; a shift field is
 * interpolated between block centres and filled where unsure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <ogr_srs_api.h>

#include "grid_source_internal.h"
#include "options_internal.h"
#include "shift_internal.h"
#include "test_util.h"

/* The grid: 120 x 90 pixels of 10 m in UTM 31N. */
enum { GW = 120, GH = 90 };
static const double grid_gt[6] = {500000, 10, 0, 4800000, 0, -10};
static char *utm; /* its CRS */

/* A one-band float32 GeoTIFF of a smooth pattern; values equal to
 * @p nodata at every 7th pixel when @p has_nodata; with @p masked, a
 * per-dataset mask that hides every 5th pixel. */
static void
make_raster(const char *path, const char *wkt, const double gt[6], int w,
            int h, int has_nodata, double nodata, int masked)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, 1,
                                 GDT_Float32, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    GDALSetGeoTransform(ds, (double *)gt);
    GDALSetProjection(ds, wkt);
    float *buf = malloc((size_t)w * h * sizeof(float));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            buf[i] = (float)(3.0 * sin(0.21 * x) * cos(0.17 * y) + 0.01 * x);
            if (has_nodata && i % 7 == 0)
                buf[i] = (float)nodata;
        }
    GDALRasterBandH band = GDALGetRasterBand(ds, 1);
    CU_ASSERT_EQUAL(GDALRasterIO(band, GF_Write, 0, 0, w, h, buf, w, h,
                                 GDT_Float32, 0, 0),
                    CE_None);
    if (has_nodata)
        GDALSetRasterNoDataValue(band, nodata);
    if (masked) {
        CU_ASSERT_EQUAL(GDALCreateDatasetMaskBand(ds, GMF_PER_DATASET),
                        CE_None);
        uint8_t *m = malloc((size_t)w * h);
        for (size_t i = 0; i < (size_t)w * h; i++)
            m[i] = i % 5 ? 255 : 0;
        CU_ASSERT_EQUAL(GDALRasterIO(GDALGetMaskBand(band), GF_Write, 0, 0,
                                     w, h, m, w, h, GDT_Byte, 0, 0),
                        CE_None);
        free(m);
    }
    free(buf);
    GDALClose(ds);
}

/* Opens the one-band float source @p path (its georeferencing read from
 * the file) on the grid, bilinear, with @p validity, the lattice's error
 * threshold @p et (0: exact) and @p shift (or NULL). */
static mmcl_status
open_shifted(mmcl_context *ctx, const char *path,
             mmcl__grid_validity validity, double et,
             const mmcl__shift *shift, mmcl__grid_source **src)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    int has = 0;
    double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(ds, 1), &has);
    mmcl__grid_raster r = {
        .name = path, .role = "test", .label = "test source",
        .wkt = GDALGetProjectionRef(ds), .width = GDALGetRasterXSize(ds),
        .height = GDALGetRasterYSize(ds), .band = 1, .n_bands = 1,
        .type = GDT_Float32, .validity = validity,
        .has_nodata = has, .nodata = nd, .place = MMCL__GRID_AUTO,
        .resampling = "bilinear", .error_threshold = et,
        .no_overlap = "the test source", .read_failed = "cannot read",
        .warp_failed = "cannot warp", .shift = shift};
    GDALGetGeoTransform(ds, r.gt);
    mmcl__grid g = {GW, GH, {0}, utm, "grid 'test'"};
    memcpy(g.gt, grid_gt, sizeof(g.gt));
    *src = NULL;
    mmcl_status st = mmcl__grid_source_open(ctx, &r, &g, src);
    GDALClose(ds);
    return st;
}

/* The same, exact and without a shift. */
static mmcl_status
open_on_grid(mmcl_context *ctx, const char *path,
             mmcl__grid_validity validity, mmcl__grid_source **src)
{
    return open_shifted(ctx, path, validity, 0, NULL, src);
}

/* Reads the whole grid through @p src in windows of @p tile pixels. */
static float *
read_tiled(mmcl_context *ctx, const mmcl__grid_source *src, int tile,
           uint8_t *valid)
{
    mmcl__grid_reader *r = mmcl__grid_reader_create(ctx, src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    float *all = malloc((size_t)GW * GH * sizeof(float));
    float *win = malloc((size_t)tile * tile * sizeof(float));
    uint8_t *v = malloc((size_t)tile * tile);
    for (int y = 0; y < GH; y += tile)
        for (int x = 0; x < GW; x += tile) {
            int w = GW - x < tile ? GW - x : tile;
            int h = GH - y < tile ? GH - y : tile;
            CU_ASSERT_EQUAL(mmcl__grid_reader_read(ctx, r, x, y, w, h, win,
                                                   v),
                            MMCL_OK);
            for (int j = 0; j < h; j++)
                for (int i = 0; i < w; i++) {
                    all[(size_t)(y + j) * GW + x + i] = win[j * w + i];
                    valid[(size_t)(y + j) * GW + x + i] = v[j * w + i];
                }
        }
    free(win);
    free(v);
    mmcl__grid_reader_destroy(r);
    return all;
}

/* gdalwarp of @p path onto the whole grid moved by (@p dx, @p dy) of its
 * pixels, bilinear, exact transform. */
static float *
gdalwarp_grid(const char *path, const char *wkt, double dx, double dy)
{
    double x0 = grid_gt[0] + dx * grid_gt[1], y0 = grid_gt[3] + dy * grid_gt[5];
    char te[4][32];
    snprintf(te[0], 32, "%.17g", x0);
    snprintf(te[1], 32, "%.17g", y0 + GH * grid_gt[5]);
    snprintf(te[2], 32, "%.17g", x0 + GW * grid_gt[1]);
    snprintf(te[3], 32, "%.17g", y0);
    char w[16], h[16];
    snprintf(w, sizeof(w), "%d", GW);
    snprintf(h, sizeof(h), "%d", GH);
    char *argv[] = {"-of", "MEM", "-t_srs", (char *)wkt, "-te", te[0], te[1],
                    te[2], te[3], "-ts", w, h, "-r", "bilinear", "-et", "0",
                    "-wt", "Float32", "-ot", "Float32", "-dstnodata", "nan",
                    NULL};
    GDALWarpAppOptions *o = GDALWarpAppOptionsNew(argv, NULL);
    GDALDatasetH src = GDALOpen(path, GA_ReadOnly);
    int usage = 0;
    GDALDatasetH out = GDALWarp("", NULL, 1, &src, o, &usage);
    GDALWarpAppOptionsFree(o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    float *buf = malloc((size_t)GW * GH * sizeof(float));
    CU_ASSERT_EQUAL(GDALRasterIO(GDALGetRasterBand(out, 1), GF_Read, 0, 0, GW,
                                 GH, buf, GW, GH, GDT_Float32, 0, 0),
                    CE_None);
    GDALClose(out);
    GDALClose(src);
    return buf;
}

/* A source @p name of about 7 m pixels in lon/lat over the west half of
 * the grid and beyond (no nodata), opened on the grid with the lattice's
 * error threshold @p et. */
static mmcl__grid_source *
open_lonlat(mmcl_context *ctx, const char *name, double et)
{
    const char *path = test_path(name);
    char *wkt4326 = test_wkt_of("EPSG:4326");
    double gt[6] = {2.9990, 0.00009, 0, 43.3510, 0, -0.000065};
    make_raster(path, wkt4326, gt, 120, 160, 0, 0, 0);
    CPLFree(wkt4326);
    mmcl__grid_source *src;
    CU_ASSERT_EQUAL_FATAL(open_shifted(ctx, path, MMCL__GRID_NODATA, et,
                                       NULL, &src),
                          MMCL_OK);
    return src;
}

static void
a_source_on_another_crs_read_by_window_equals_gdalwarp(void)
{
    /* Outside the source, the grid is NaN and not valid. */
    mmcl_context *ctx = mmcl_context_create();
    mmcl__grid_source *src = open_lonlat(ctx, "lonlat.tif", 0);
    const char *path = test_path("lonlat.tif");
    CU_ASSERT_STRING_EQUAL(mmcl__grid_source_resampling(src), "bilinear");
    /* No nodata declared, bilinear: NaN would propagate. */
    CU_ASSERT(mmcl__grid_source_nan_kernel(src));
    uint8_t *valid = malloc((size_t)GW * GH);
    float *got = read_tiled(ctx, src, 32, valid);
    float *ref = gdalwarp_grid(path, utm, 0, 0);
    size_t n = (size_t)GW * GH, n_valid = 0, nan_mismatch = 0;
    double max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        nan_mismatch += isnan(got[i]) != isnan(ref[i]);
        nan_mismatch += valid[i] == isnan(got[i]);
        if (isnan(got[i]) || isnan(ref[i]))
            continue;
        n_valid++;
        max_diff = fmax(max_diff, fabs(got[i] - ref[i]));
    }
    printf("  %zu valid pixels of %zu, max |diff| %.3g, %zu NaN mismatches\n",
           n_valid, n, max_diff, nan_mismatch);
    CU_ASSERT(n_valid > n / 4 && n_valid < n);
    CU_ASSERT(max_diff <= 1e-5);
    CU_ASSERT_EQUAL(nan_mismatch, 0);
    free(got);
    free(ref);
    free(valid);
    mmcl__grid_source_close(src);
    mmcl_context_destroy(ctx);
}

static void
nodata_is_invalid_and_a_mask_source_keeps_it_for_the_caller(void)
{
    /* On the grid (read as it is), nodata at every 7th pixel, masked at
     * every 5th: a nodata source reads the nodata as NaN (the mask
     * unread), a mask source the masked pixels (the nodata as it is). */
    const char *path = test_path("ongrid.tif");
    make_raster(path, utm, grid_gt, GW, GH, 1, -9999, 1);
    mmcl_context *ctx = mmcl_context_create();
    size_t n = (size_t)GW * GH;
    uint8_t *valid = malloc(n);
    for (int kind = 0; kind < 2; kind++) {
        mmcl__grid_source *src;
        CU_ASSERT_EQUAL_FATAL(
            open_on_grid(ctx, path,
                         kind ? MMCL__GRID_MASK : MMCL__GRID_NODATA, &src),
            MMCL_OK);
        CU_ASSERT_EQUAL(mmcl__grid_source_lattice_step(src), 0);
        float *got = read_tiled(ctx, src, 50, valid);
        size_t wrong = 0;
        for (size_t i = 0; i < n; i++) {
            int invalid = kind ? i % 5 == 0 : i % 7 == 0;
            if (invalid)
                wrong += !isnan(got[i]) || valid[i];
            else if (kind && i % 7 == 0) /* for the caller to judge */
                wrong += got[i] != -9999.0f || !valid[i];
            else
                wrong += isnan(got[i]) || !valid[i] || got[i] == -9999.0f;
        }
        printf("  %s: %zu pixels read wrong\n",
               kind ? "mask" : "nodata", wrong);
        CU_ASSERT_EQUAL(wrong, 0);
        free(got);
        mmcl__grid_source_close(src);
    }
    free(valid);
    mmcl_context_destroy(ctx);
}

static void
a_source_with_no_pixel_in_common_is_refused(void)
{
    const char *path = test_path("away.tif");
    double gt[6] = {700000, 10, 0, 4800000, 0, -10};
    make_raster(path, utm, gt, GW, GH, 0, 0, 0);
    mmcl_context *ctx = mmcl_context_create();
    mmcl__grid_source *src;
    CU_ASSERT_EQUAL(open_on_grid(ctx, path, MMCL__GRID_NODATA, &src),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(src);
    printf("  -> %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx),
                                  "the test source does not overlap the "
                                  "optical raster"));
    mmcl_context_destroy(ctx);
}

static void
a_shifted_source_equals_gdalwarp_onto_the_moved_grid(void)
{
    /* A source on lon/lat corrected by a constant shift: pixel (x, y) of
     * the grid is the source at the grid position (x + dx, y + dy), which
     * is gdalwarp onto the grid moved by the shift; exact and through the
     * lattice, the same values whatever the windows. */
    const char *path = test_path("lonlat_shift.tif");
    char *wkt4326 = test_wkt_of("EPSG:4326");
    double gt[6] = {2.9985, 0.00009, 0, 43.3515, 0, -0.000065};
    make_raster(path, wkt4326, gt, 200, 220, 0, 0, 0);
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(
        ctx, "align", (const char *const[]){"SAR_SHIFT=1.37,-2.61", NULL});
    mmcl__grid g = {GW, GH, {0}, utm, "grid 'test'"};
    memcpy(g.gt, grid_gt, sizeof(g.gt));
    mmcl__shift *shift = NULL;
    CU_ASSERT_EQUAL_FATAL(mmcl__shift_from_options(ctx, o, &g, &shift),
                          MMCL_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(shift);
    float *ref = gdalwarp_grid(path, utm, 1.37, -2.61);
    size_t n = (size_t)GW * GH;
    uint8_t *valid = malloc(n);
    for (int lattice = 0; lattice < 2; lattice++) {
        mmcl__grid_source *src;
        CU_ASSERT_EQUAL_FATAL(open_shifted(ctx, path, MMCL__GRID_NODATA,
                                           lattice ? 0.125 : 0, shift, &src),
                              MMCL_OK);
        float *whole = read_tiled(ctx, src, 128, valid);
        float *tiled = read_tiled(ctx, src, 17, valid);
        size_t nan_mismatch = 0, n_valid = 0;
        double max_diff = 0;
        for (size_t i = 0; i < n; i++) {
            nan_mismatch += isnan(whole[i]) != isnan(ref[i]);
            if (isnan(whole[i]) || isnan(ref[i]))
                continue;
            n_valid++;
            max_diff = fmax(max_diff, fabs(whole[i] - ref[i]));
        }
        printf("  %s: %zu valid, max |diff| %.3g against gdalwarp, %zu NaN "
               "mismatches\n",
               lattice ? "lattice" : "exact", n_valid, max_diff,
               nan_mismatch);
        CU_ASSERT(n_valid > n / 2);
        CU_ASSERT(max_diff <= (lattice ? 0.005 : 1e-5));
        CU_ASSERT(nan_mismatch <= (lattice ? n / 200 : 0));
        CU_ASSERT_EQUAL(memcmp(whole, tiled, n * sizeof(float)), 0);
        free(whole);
        free(tiled);
        mmcl__grid_source_close(src);
    }
    free(ref);
    free(valid);
    mmcl__shift_destroy(shift);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
    CPLFree(wkt4326);
}

static void
the_lattice_row_by_row_equals_it_point_by_point(void)
{
    /* The warper asks for the transform one row of pixel centres at a
     * time: evaluated row by row (once per row and lattice cell), a point
     * lands where the point-by-point lattice puts it, to rounding (1e-9
     * source pixel), and on the same bits whatever points share its
     * call, so windows (tiles) cannot show. */
    mmcl_context *ctx = mmcl_context_create();
    mmcl__grid_source *src = open_lonlat(ctx, "lonlat_lattice.tif", 0.125);
    int step = mmcl__grid_source_lattice_step(src);
    printf("  lattice step %d\n", step);
    CU_ASSERT_FATAL(step > 0);
    /* Rows of pixel centres across the grid and beyond it (the lattice
     * extrapolates), then scattered points. */
    enum { W = GW + 40, ROWS = 7, SCATTER = 500, N = W * ROWS + SCATTER };
    static double rx[N], ry[N], px[N], py[N], ax[N], ay[N];
    static int rok[N], pok[N], aok[N];
    for (int j = 0; j < ROWS; j++)
        for (int i = 0; i < W; i++) {
            rx[j * W + i] = i - 20 + 0.5;
            ry[j * W + i] = -3.5 + 16.0 * j;
        }
    for (int k = 0; k < SCATTER; k++) {
        rx[W * ROWS + k] = -10 + 0.2791 * k;
        ry[W * ROWS + k] = 100 - 0.2137 * k;
    }
    memcpy(px, rx, sizeof(px));
    memcpy(py, ry, sizeof(py));
    memcpy(ax, rx, sizeof(ax));
    memcpy(ay, ry, sizeof(ay));
    for (int j = 0; j < ROWS; j++) /* row by row, as the warper does */
        mmcl__grid_source_lattice_eval(src, W, rx + j * W, ry + j * W,
                                       rok + j * W, 0);
    mmcl__grid_source_lattice_eval(src, SCATTER, rx + W * ROWS,
                                   ry + W * ROWS, rok + W * ROWS, 0);
    mmcl__grid_source_lattice_eval(src, N, px, py, pok, 1);
    for (int k = 0; k < N; k++) /* alone in its call */
        mmcl__grid_source_lattice_eval(src, 1, ax + k, ay + k, aok + k, 0);
    double max_diff = 0;
    size_t not_same = 0, failed = 0;
    for (int k = 0; k < N; k++) {
        failed += !rok[k] || !pok[k] || !aok[k];
        max_diff = fmax(max_diff, fmax(fabs(rx[k] - px[k]),
                                       fabs(ry[k] - py[k])));
        not_same += memcmp(&rx[k], &ax[k], sizeof(double)) != 0 ||
                    memcmp(&ry[k], &ay[k], sizeof(double)) != 0;
    }
    printf("  %d points: max |row - point| %.3g source pixels, %zu not "
           "the same bits alone, %zu failed\n",
           (int)N, max_diff, not_same, failed);
    CU_ASSERT_EQUAL(failed, 0);
    CU_ASSERT(max_diff <= 1e-9);
    CU_ASSERT_EQUAL(not_same, 0);
    mmcl__grid_source_close(src);
    mmcl_context_destroy(ctx);
}

/* A shift field on the grid: blocks of @p B pixels, dx and dy and
 * confidence of each block (row-major). */
static void
make_field(const char *path, int B, int nbx, int nby, const float *dx,
           const float *dy, const float *conf)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, nbx,
                                 nby, 5, GDT_Float32, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    double gt[6] = {grid_gt[0], grid_gt[1] * B, 0, grid_gt[3], 0,
                    grid_gt[5] * B};
    GDALSetGeoTransform(ds, gt);
    GDALSetProjection(ds, utm);
    const char *names[5] = {"dx", "dy", "dx_m", "dy_m", "confidence"};
    const float *bands[5] = {dx, dy, dx, dy, conf};
    for (int b = 0; b < 5; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        GDALSetDescription(band, names[b]);
        GDALSetRasterNoDataValue(band, NAN);
        CU_ASSERT_EQUAL(GDALRasterIO(band, GF_Write, 0, 0, nbx, nby,
                                     (void *)bands[b], nbx, nby, GDT_Float32,
                                     0, 0),
                        CE_None);
    }
    GDALSetMetadataItem(ds, "MMCL_PRODUCT", "coreg", NULL);
    GDALSetMetadataItem(ds, "MMCL_COREG_BLOCK", CPLSPrintf("%d", B), NULL);
    GDALClose(ds);
}

static void
a_shift_field_is_bilinear_between_block_centres_and_filled(void)
{
    /* 50-pixel blocks on the 120 x 90 grid: 3 x 2 blocks, the last column
     * 20 pixels wide (centre 110), the last row 40 high (centre 70). The
     * middle top block is unsure: it takes its neighbours' confidence-
     * weighted mean. */
    const char *path = test_path("field.tif");
    const float dx[6] = {0, 99, 4, 2, 6, 8};
    const float dy[6] = {1, 99, 1, 3, 3, 3};
    const float conf[6] = {1, 0.1f, 1, 1, 0.5f, 1};
    make_field(path, 50, 3, 2, dx, dy, conf);
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(
        ctx, "align",
        (const char *const[]){CPLSPrintf("SAR_SHIFT_FIELD=%s", path), NULL});
    mmcl__grid g = {GW, GH, {0}, utm, "grid 'test'"};
    memcpy(g.gt, grid_gt, sizeof(g.gt));
    mmcl__shift *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mmcl__shift_from_options(ctx, o, &g, &s), MMCL_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(mmcl__shift_is_field(s));
    double fill_x = (0 + 4 + 2 + 0.5 * 6 + 8) / 4.5;
    double fill_y = (1 + 1 + 3 + 0.5 * 3 + 3) / 4.5;
    struct {
        double x, y, dx, dy;
    } at[] = {
        {25, 25, 0, 1},                     /* a block centre */
        {75, 25, fill_x, fill_y},           /* the filled block's */
        {110, 70, 8, 3},                    /* the partial corner block's */
        {0, 0, 0, 1},                       /* held beyond the centres */
        {119.9, 89.9, 8, 3},
        {50, 25, (0 + fill_x) / 2, (1 + fill_y) / 2}, /* halfway */
        {92.5, 70, 7, 3},                   /* halfway to a partial block */
        {25, 47.5, 1, 2},                   /* halfway down */
    };
    for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
        double gx, gy;
        mmcl__shift_eval(s, at[k].x, at[k].y, &gx, &gy);
        printf("  (%g, %g): %.6g, %.6g (want %.6g, %.6g)\n", at[k].x,
               at[k].y, gx, gy, at[k].dx, at[k].dy);
        CU_ASSERT_DOUBLE_EQUAL(gx, at[k].dx, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(gy, at[k].dy, 1e-9);
    }
    /* Row by row (as the warper asks) and point by point: the same bits. */
    enum { N = 300 };
    double px[N], py[N], qx[N], qy[N];
    for (int k = 0; k < N; k++) {
        px[k] = qx[k] = -5 + 0.437 * k;
        py[k] = qy[k] = k < 200 ? 33.5 : 0.31 * k - 4;
    }
    mmcl__shift_apply(s, N, qx, qy);
    int same = 1;
    for (int k = 0; k < N; k++) {
        double gx, gy;
        mmcl__shift_eval(s, px[k], py[k], &gx, &gy);
        same &= px[k] + gx == qx[k] && py[k] + gy == qy[k];
    }
    CU_ASSERT(same);
    /* On a grid of half the resolution: positions and shifts halved. */
    mmcl__shift *half = mmcl__shift_copy_scaled(ctx, s, 2, 2);
    double hx, hy, fx, fy;
    mmcl__shift_eval(half, 46.25, 35, &hx, &hy);
    mmcl__shift_eval(s, 92.5, 70, &fx, &fy);
    CU_ASSERT_DOUBLE_EQUAL(hx, fx / 2, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(hy, fy / 2, 1e-12);
    mmcl__shift_destroy(half);
    mmcl__shift_destroy(s);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

int
main(void)
{
    GDALAllRegister();
    utm = test_wkt_of("EPSG:32631");
    static const test_case cases[] = {
        {"a_source_on_another_crs_read_by_window_equals_gdalwarp",
         a_source_on_another_crs_read_by_window_equals_gdalwarp},
        {"nodata_is_invalid_and_a_mask_source_keeps_it_for_the_caller",
         nodata_is_invalid_and_a_mask_source_keeps_it_for_the_caller},
        {"a_source_with_no_pixel_in_common_is_refused",
         a_source_with_no_pixel_in_common_is_refused},
        {"a_shifted_source_equals_gdalwarp_onto_the_moved_grid",
         a_shifted_source_equals_gdalwarp_onto_the_moved_grid},
        {"a_shift_field_is_bilinear_between_block_centres_and_filled",
         a_shift_field_is_bilinear_between_block_centres_and_filled},
        {"the_lattice_row_by_row_equals_it_point_by_point",
         the_lattice_row_by_row_equals_it_point_by_point},
        {NULL, NULL}};
    int rc = test_run_suite("grid_source", cases);
    CPLFree(utm);
    GDALDestroyDriverManager();
    return rc;
}
