/* SPDX-License-Identifier: MIT */
/*
 * The grid source (src/grid/grid_source.c): a raster on another CRS read
 * window by window on a grid equals gdalwarp of the whole grid; nodata and
 * masks make pixels invalid as the source's validity says; a source with
 * no pixel in common with the grid is refused.
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
 * the file) on the grid, bilinear and exact, with @p validity. */
static mmcl_status
open_on_grid(mmcl_context *ctx, const char *path,
             mmcl__grid_validity validity, mmcl__grid_source **src)
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
        .resampling = "bilinear", .error_threshold = 0,
        .no_overlap = "the test source", .read_failed = "cannot read",
        .warp_failed = "cannot warp"};
    GDALGetGeoTransform(ds, r.gt);
    mmcl__grid g = {GW, GH, {0}, utm, "grid 'test'"};
    memcpy(g.gt, grid_gt, sizeof(g.gt));
    *src = NULL;
    mmcl_status st = mmcl__grid_source_open(ctx, &r, &g, src);
    GDALClose(ds);
    return st;
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

/* gdalwarp of @p path onto the whole grid, bilinear, exact transform. */
static float *
gdalwarp_grid(const char *path, const char *wkt)
{
    char te[4][32];
    snprintf(te[0], 32, "%.17g", grid_gt[0]);
    snprintf(te[1], 32, "%.17g", grid_gt[3] + GH * grid_gt[5]);
    snprintf(te[2], 32, "%.17g", grid_gt[0] + GW * grid_gt[1]);
    snprintf(te[3], 32, "%.17g", grid_gt[3]);
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

static void
a_source_on_another_crs_read_by_window_equals_gdalwarp(void)
{
    /* About 7 m pixels in lon/lat over the west half of the grid and
     * beyond: outside the source, the grid is NaN and not valid. */
    const char *path = test_path("lonlat.tif");
    char *wkt4326 = test_wkt_of("EPSG:4326");
    double gt[6] = {2.9990, 0.00009, 0, 43.3510, 0, -0.000065};
    make_raster(path, wkt4326, gt, 120, 160, 0, 0, 0);
    mmcl_context *ctx = mmcl_context_create();
    mmcl__grid_source *src;
    CU_ASSERT_EQUAL_FATAL(open_on_grid(ctx, path, MMCL__GRID_NODATA, &src),
                          MMCL_OK);
    CU_ASSERT_STRING_EQUAL(mmcl__grid_source_resampling(src), "bilinear");
    uint8_t *valid = malloc((size_t)GW * GH);
    float *got = read_tiled(ctx, src, 32, valid);
    float *ref = gdalwarp_grid(path, utm);
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
    CPLFree(wkt4326);
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
        {NULL, NULL}};
    int rc = test_run_suite("grid_source", cases);
    CPLFree(utm);
    GDALDestroyDriverManager();
    return rc;
}
