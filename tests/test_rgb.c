/* SPDX-License-Identifier: MIT */
/*
 * mmcl_rgb: pictures that follow the data (principal components of a
 * raster with known structure, colour-mapped values checked against the
 * lookup table), nodata transparent, the input's georeferencing kept, and
 * bad input refused with a clear message and no output left behind.
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include "colormaps_internal.h"
#include "mmcl/rgb.h"
#include "test_scene.h"
#include "test_util.h"

enum { W = 160, H = 120, NB = 8 };

static const double test_gt[6] = {440000, 20, 0, 4650000, 0, -20};

/* Writes @p n_bands float32 bands (band-sequential @p data, w x h) with
 * descriptions @p names (may be NULL) and MMCL PRODUCT @p product (may be
 * NULL) on a UTM 30N grid; NaN is the nodata value. */
static void
write_raster(const char *path, int w, int h, int n_bands, const float *data,
             const char *const *names, const char *product)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h,
                                 n_bands, GDT_Float32, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    GDALSetGeoTransform(ds, (double *)test_gt);
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    OSRImportFromEPSG(s, 32630);
    char *wkt = NULL;
    OSRExportToWkt(s, &wkt);
    GDALSetProjection(ds, wkt);
    CPLFree(wkt);
    OSRDestroySpatialReference(s);
    CU_ASSERT_EQUAL(GDALDatasetRasterIO(ds, GF_Write, 0, 0, w, h, (void *)data,
                                        w, h, GDT_Float32, n_bands, NULL, 0, 0,
                                        0),
                    CE_None);
    for (int b = 0; b < n_bands; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        GDALSetRasterNoDataValue(band, NAN);
        if (names)
            GDALSetDescription(band, names[b]);
    }
    if (product)
        GDALSetMetadataItem(ds, "PRODUCT", product, "MMCL");
    GDALClose(ds);
}

/* Known structure: three uncorrelated sources with variances 4.5, 2 and
 * 0.25 (full periods on the grid), mixed into 8 bands by orthonormal Walsh
 * vectors, plus offsets and a little deterministic noise. Then the
 * principal components are the sources, in that order. */
static double
source(int k, int x, int y)
{
    const double pi = 3.14159265358979323846;
    if (k == 0)
        return 3.0 * sin(2 * pi * 2 * x / W);
    if (k == 1)
        return 2.0 * sin(2 * pi * 3 * y / H);
    return cos(2 * pi * 4 * x / W) * cos(2 * pi * 5 * y / H);
}

/* Pixel (x, y) is a hole: NaN in band 5 inside a disc, in every band in a
 * rectangle. */
static int
hole(int x, int y)
{
    int dx = x - 40, dy = y - 30;
    return dx * dx + dy * dy < 100 || (x >= 100 && x < 120 && y >= 80);
}

static const char *pca_path;

static void
make_pca_input(void)
{
    static char path[1024];
    if (pca_path)
        return;
    snprintf(path, sizeof(path), "%s", test_path("stack.tif"));
    float *data = malloc(sizeof(float) * NB * W * H);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    static const int walsh[3][NB] = {{1, 1, 1, 1, 1, 1, 1, 1},
                                     {1, -1, 1, -1, 1, -1, 1, -1},
                                     {1, 1, -1, -1, 1, 1, -1, -1}};
    for (int b = 0; b < NB; b++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double v = 100.0 + 10.0 * b;
                for (int k = 0; k < 3; k++)
                    v += walsh[k][b] / sqrt((double)NB) * source(k, x, y);
                v += 0.01 * ((x * 7 + y * 13 + b * 3) % 11 - 5);
                int is_hole =
                    hole(x, y) && (b == 4 || (x >= 100 && x < 120 && y >= 80));
                data[(size_t)b * W * H + (size_t)y * W + x] =
                    is_hole ? NAN : (float)v;
            }
    write_raster(path, W, H, NB, data, NULL, NULL);
    free(data);
    pca_path = path;
}

static mmcl_status
run_rgb(mmcl_context *ctx, const char *in, const char *out,
        const char *const *kv)
{
    mmcl_options *o = mmcl_options_new(ctx, "rgb", kv);
    if (!o)
        return mmcl_context_errcode(ctx);
    mmcl_status st = mmcl_rgb(ctx, in, out, o);
    mmcl_options_free(o);
    return st;
}

/* Runs rgb and expects success; prints the message otherwise. */
static int
rgb_ok(const char *in, const char *out, const char *const *kv)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_status st = run_rgb(ctx, in, out, kv);
    if (st != MMCL_OK)
        printf("  rgb failed: %s\n", mmcl_context_errmsg(ctx));
    mmcl_context_destroy(ctx);
    return st == MMCL_OK;
}

/* The 4 bands of @p path as bytes (4, h, w); NULL when not readable. */
static unsigned char *
read_rgba(const char *path, int *w, int *h)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    if (!ds)
        return NULL;
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    unsigned char *buf = NULL;
    if (GDALGetRasterCount(ds) == 4) {
        buf = malloc((size_t)4 * *w * *h);
        if (buf && GDALDatasetRasterIO(ds, GF_Read, 0, 0, *w, *h, buf, *w, *h,
                                       GDT_Byte, 4, NULL, 0, 0, 0) != CE_None) {
            free(buf);
            buf = NULL;
        }
    }
    GDALClose(ds);
    return buf;
}

static const char *
md(GDALDatasetH ds, const char *key)
{
    const char *v = GDALGetMetadataItem(ds, key, "MMCL");
    return v ? v : "";
}


/* Number of entries in the temp dir whose name contains @p needle. */

/* Pearson correlation of bytes @p a (valid pixels) with doubles @p b. */
static double
correlation(const unsigned char *a, const double *b, const unsigned char *ok,
            size_t n)
{
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        sa += a[i];
        sb += b[i];
        saa += (double)a[i] * a[i];
        sbb += b[i] * b[i];
        sab += a[i] * b[i];
        m++;
    }
    double cov = sab / m - sa / m * sb / m;
    double va = saa / m - sa / m * sa / m, vb = sbb / m - sb / m * sb / m;
    return cov / sqrt(va * vb);
}

static void
pca_picture_follows_the_components_with_nodata_transparent(void)
{
    make_pca_input();
    const char *out = test_path("pca.tif");
    const char *kv[] = {"TILE=64", "THREADS=2", NULL};
    CU_ASSERT_FATAL(rgb_ok(pca_path, out, kv));

    GDALDatasetH in = GDALOpen(pca_path, GA_ReadOnly);
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_EQUAL(GDALGetRasterCount(ds), 4);
    CU_ASSERT_EQUAL(GDALGetRasterXSize(ds), W);
    CU_ASSERT_EQUAL(GDALGetRasterYSize(ds), H);
    static const GDALColorInterp ci[4] = {GCI_RedBand, GCI_GreenBand,
                                          GCI_BlueBand, GCI_AlphaBand};
    for (int b = 0; b < 4; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        CU_ASSERT_EQUAL(GDALGetRasterDataType(band), GDT_Byte);
        CU_ASSERT_EQUAL(GDALGetRasterColorInterpretation(band), ci[b]);
    }
    double g1[6], g2[6];
    CU_ASSERT_EQUAL(GDALGetGeoTransform(ds, g2), CE_None);
    GDALGetGeoTransform(in, g1);
    for (int i = 0; i < 6; i++)
        CU_ASSERT_DOUBLE_EQUAL(g1[i], g2[i], 1e-9);
    CU_ASSERT_TRUE(OSRIsSame(GDALGetSpatialRef(in), GDALGetSpatialRef(ds)));
    CU_ASSERT_STRING_EQUAL(md(ds, "PRODUCT"), "rgb");
    CU_ASSERT_STRING_EQUAL(md(ds, "MODE"), "pca");
    CU_ASSERT_STRING_EQUAL(md(ds, "BANDS"), "1,2,3,4,5,6,7,8");
    CU_ASSERT_STRING_EQUAL(md(ds, "SOURCE"), pca_path);
    double ev[3] = {0, 0, 0};
    CU_ASSERT_EQUAL(sscanf(md(ds, "PCA_EXPLAINED_VARIANCE"), "%lf,%lf,%lf",
                           &ev[0], &ev[1], &ev[2]),
                    3);
    printf("  explained variance %s\n", md(ds, "PCA_EXPLAINED_VARIANCE"));
    /* Variances 4.5 : 2 : 0.25 (+ noise) of 6.75 in all. */
    CU_ASSERT_DOUBLE_EQUAL(ev[0], 4.5 / 6.75, 0.03);
    CU_ASSERT_DOUBLE_EQUAL(ev[1], 2.0 / 6.75, 0.03);
    CU_ASSERT_DOUBLE_EQUAL(ev[2], 0.25 / 6.75, 0.02);
    double lo, hi;
    CU_ASSERT_EQUAL(sscanf(md(ds, "RED_RANGE"), "%lf,%lf", &lo, &hi), 2);
    CU_ASSERT_TRUE(lo < hi);
    GDALClose(ds);
    GDALClose(in);

    int w, h;
    unsigned char *px = read_rgba(out, &w, &h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    size_t n = (size_t)W * H;
    const unsigned char *alpha = px + 3 * n;
    int alpha_ok = 1, black_ok = 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            int want = hole(x, y) ? 0 : 255;
            alpha_ok &= alpha[i] == want;
            if (!want)
                black_ok &= !px[i] && !px[n + i] && !px[2 * n + i];
        }
    CU_ASSERT_TRUE(alpha_ok);
    CU_ASSERT_TRUE(black_ok);
    double *s = malloc(sizeof(double) * n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (int k = 0; k < 3; k++) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                s[(size_t)y * W + x] = source(k, x, y);
        double r = correlation(px + k * n, s, alpha, n);
        printf("  channel %d vs source %d: r = %.4f\n", k + 1, k + 1, r);
        CU_ASSERT_TRUE(fabs(r) > 0.95);
    }
    free(s);
    free(px);
    CU_ASSERT_EQUAL(test_count_files_like("mmcl-tmp"), 0);
}

static void
picture_does_not_depend_on_threads(void)
{
    make_pca_input();
    const char *kv1[] = {"TILE=32", "THREADS=1", NULL};
    const char *kv2[] = {"TILE=32", "THREADS=4", NULL};
    const char *kv3[] = {"TILE=256", "THREADS=3", NULL};
    CU_ASSERT_FATAL(rgb_ok(pca_path, test_path("t1.tif"), kv1));
    CU_ASSERT_FATAL(rgb_ok(pca_path, test_path("t2.tif"), kv2));
    CU_ASSERT_FATAL(rgb_ok(pca_path, test_path("t3.tif"), kv3));
    int w, h;
    unsigned char *a = read_rgba(test_path("t1.tif"), &w, &h);
    unsigned char *b = read_rgba(test_path("t2.tif"), &w, &h);
    unsigned char *c = read_rgba(test_path("t3.tif"), &w, &h);
    CU_ASSERT_FATAL(a && b && c);
    size_t n = (size_t)4 * W * H;
    CU_ASSERT_EQUAL(memcmp(a, b, n), 0);
    /* Another tile size merges the statistics in another order: equal up
     * to rounding, so at most one level apart. */
    int max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)c[i]);
        max_diff = d > max_diff ? d : max_diff;
    }
    CU_ASSERT_TRUE(max_diff <= 1);
    free(a);
    free(b);
    free(c);
}

/* One band: a ramp 0..1 along x, NaN in a column block; description
 * @p name. */
static const char *
make_ramp(const char *file, const char *name, double offset)
{
    float *data = malloc(sizeof(float) * W * H);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            data[(size_t)y * W + x] =
                (x >= 10 && x < 14)
                    ? NAN
                    : (float)((double)x / (W - 1) + 0.001 * (y % 7) + offset);
    const char *path = test_path(file);
    const char *names[1] = {name};
    write_raster(path, W, H, 1, data, names, NULL);
    free(data);
    return path;
}

static float
ramp_value(int x, int y, double offset)
{
    return (float)((double)x / (W - 1) + 0.001 * (y % 7) + offset);
}

static void
colormap_gives_the_lut_colour_of_the_stretched_value(void)
{
    const char *in = make_ramp("ramp.tif", "infoloss_optical", 0.0);
    const char *out = test_path("ramp_rgb.tif");
    const char *kv[] = {"RANGE=0,1", "COLORMAP=viridis", NULL};
    CU_ASSERT_FATAL(rgb_ok(in, out, kv));
    const mmcl__rgb8 *lut = mmcl__colormap("viridis");
    CU_ASSERT_PTR_NOT_NULL_FATAL(lut);
    /* The published ends of viridis: #440154 and #fde725. */
    CU_ASSERT_TRUE(lut[0][0] == 0x44 && lut[0][1] == 0x01 && lut[0][2] == 0x54);
    CU_ASSERT_TRUE(lut[255][0] == 0xfd && lut[255][1] == 0xe7 &&
                   lut[255][2] == 0x25);

    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_STRING_EQUAL(md(ds, "MODE"), "colormap");
    CU_ASSERT_STRING_EQUAL(md(ds, "COLORMAP"), "viridis");
    CU_ASSERT_STRING_EQUAL(md(ds, "VALUE_BAND"), "infoloss_optical");
    CU_ASSERT_STRING_EQUAL(md(ds, "VALUE_RANGE"), "0,1");
    CU_ASSERT_STRING_EQUAL(md(ds, "LEGEND"), "ramp_rgb.legend.png");
    GDALClose(ds);

    int w, h;
    unsigned char *px = read_rgba(out, &w, &h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    size_t n = (size_t)W * H;
    static const int pts[][2] = {{0, 0},   {1, 5},     {40, 17}, {80, 60},
                                 {120, 3}, {159, 119}, {11, 50}};
    for (size_t k = 0; k < sizeof(pts) / sizeof(pts[0]); k++) {
        int x = pts[k][0], y = pts[k][1];
        size_t i = (size_t)y * W + x;
        if (x >= 10 && x < 14) {
            CU_ASSERT_EQUAL(px[3 * n + i], 0);
            continue;
        }
        double v = ramp_value(x, y, 0.0);
        int idx = (int)floor(v * 255 + 0.5);
        idx = idx > 255 ? 255 : idx;
        CU_ASSERT_EQUAL(px[i], lut[idx][0]);
        CU_ASSERT_EQUAL(px[n + i], lut[idx][1]);
        CU_ASSERT_EQUAL(px[2 * n + i], lut[idx][2]);
        CU_ASSERT_EQUAL(px[3 * n + i], 255);
    }
    free(px);

    /* The scale beside it. */
    GDALDatasetH lg = GDALOpen(test_path("ramp_rgb.legend.png"), GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lg);
    CU_ASSERT_EQUAL(GDALGetRasterXSize(lg), MMCL__LEGEND_W);
    CU_ASSERT_EQUAL(GDALGetRasterYSize(lg), MMCL__LEGEND_H);
    GDALClose(lg);
    cJSON *j = NULL;
    VSILFILE *fp = VSIFOpenL(test_path("ramp_rgb.legend.json"), "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    char text[4096] = {0};
    VSIFReadL(text, 1, sizeof(text) - 1, fp);
    VSIFCloseL(fp);
    j = cJSON_Parse(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    const char *cmap = cJSON_GetStringValue(cJSON_GetObjectItem(j, "colormap"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(cmap);
    CU_ASSERT_STRING_EQUAL(cmap, "viridis");
    const char *title = cJSON_GetStringValue(cJSON_GetObjectItem(j, "title"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(title);
    CU_ASSERT_PTR_NOT_NULL(strstr(title, cJSON_GetStringValue(
                                             cJSON_GetObjectItem(j, "band"))));
    CU_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(
        cJSON_GetObjectItem(j, "clipped"), "above_max")));
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(j, "ticks")),
                    MMCL__LEGEND_TICKS);
    CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItem(j, "min")->valuedouble, 0.0,
                           0.0);
    CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItem(j, "max")->valuedouble, 1.0,
                           0.0);
    cJSON_Delete(j);
}

static int
cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void
default_stretch_is_the_2_and_98_percentiles(void)
{
    const char *in = make_ramp("ramp2.tif", "infoloss_sar", 0.0);
    const char *out = test_path("ramp2_rgb.tif");
    CU_ASSERT_FATAL(rgb_ok(in, out, NULL));
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    double lo = 0, hi = 0;
    CU_ASSERT_EQUAL(sscanf(md(ds, "VALUE_RANGE"), "%lf,%lf", &lo, &hi), 2);
    CU_ASSERT_STRING_EQUAL(md(ds, "COLORMAP"), "viridis");
    CU_ASSERT_STRING_EQUAL(md(ds, "STRETCH"), "percentiles 2,98");
    GDALClose(ds);
    /* Exact percentiles of the valid values, by sorting. */
    float *v = malloc(sizeof(float) * W * H);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    size_t m = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (!(x >= 10 && x < 14))
                v[m++] = ramp_value(x, y, 0.0);
    qsort(v, m, sizeof(float), cmp_float);
    double p2 = v[(size_t)(0.02 * m)], p98 = v[(size_t)(0.98 * m)];
    double tol = (v[m - 1] - v[0]) / 1000.0;
    printf("  stretch %g..%g, sorted percentiles %g..%g\n", lo, hi, p2, p98);
    CU_ASSERT_DOUBLE_EQUAL(lo, p2, tol);
    CU_ASSERT_DOUBLE_EQUAL(hi, p98, tol);
    free(v);
    /* Colours follow the recorded range (up to one step of rounding of
     * the printed limits). */
    const mmcl__rgb8 *lut = mmcl__colormap("viridis");
    int w, h;
    unsigned char *px = read_rgba(out, &w, &h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    size_t n = (size_t)W * H;
    int ok = 1;
    for (int x = 0; x < W; x += 9) {
        if (x >= 10 && x < 14)
            continue;
        size_t i = (size_t)7 * W + x;
        int idx = mmcl__colormap_index(ramp_value(x, 7, 0.0), lo, hi);
        int near = 0;
        for (int d = -1; d <= 1; d++) {
            int k = idx + d;
            if (k < 0 || k > 255)
                continue;
            near |= px[i] == lut[k][0] && px[n + i] == lut[k][1] &&
                    px[2 * n + i] == lut[k][2];
        }
        ok &= near;
    }
    CU_ASSERT_TRUE(ok);
    free(px);
}

static void
excess_band_gets_a_diverging_map_centred_on_zero(void)
{
    /* Values from -0.3 to 0.7: the range is made symmetric. */
    const char *in = make_ramp("excess.tif", "excess_sar", -0.3);
    const char *out = test_path("excess_rgb.tif");
    CU_ASSERT_FATAL(rgb_ok(in, out, NULL));
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_STRING_EQUAL(md(ds, "COLORMAP"), "rdbu_r");
    double lo = 0, hi = 0;
    CU_ASSERT_EQUAL(sscanf(md(ds, "VALUE_RANGE"), "%lf,%lf", &lo, &hi), 2);
    CU_ASSERT_DOUBLE_EQUAL(lo, -hi, 1e-9);
    CU_ASSERT_TRUE(hi > 0.6 && hi < 0.71);
    GDALClose(ds);
    /* Near 0 the colour is near white; the high end is red. */
    const mmcl__rgb8 *lut = mmcl__colormap("rdbu_r");
    CU_ASSERT_TRUE(lut[128][0] > 240 && lut[128][1] > 240 && lut[128][2] > 240);
    CU_ASSERT_TRUE(lut[255][0] > 2 * lut[255][2]);
    CU_ASSERT_TRUE(lut[0][2] > 2 * lut[0][0]);
    int w, h;
    unsigned char *px = read_rgba(out, &w, &h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    size_t n = (size_t)W * H;
    /* x = 0.3 * 159 = 47.7: value about 0 at x = 48, y = 0. */
    size_t i = 48;
    CU_ASSERT_TRUE(px[i] > 230 && px[n + i] > 230 && px[2 * n + i] > 230);
    free(px);
}

static void
infoloss_map_without_bands_shows_its_first_band(void)
{
    float *data = malloc(sizeof(float) * 3 * W * H);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    for (size_t i = 0; i < (size_t)3 * W * H; i++)
        data[i] = (float)((i * 37) % 101) / 100.0f;
    static const char *const names[3] = {"infoloss_optical", "unimodal_optical",
                                         "excess_optical"};
    const char *in = test_path("loss.tif");
    write_raster(in, W, H, 3, data, names, "infoloss");
    free(data);
    const char *out = test_path("loss_rgb.tif");
    const char *kv[] = {"LEGEND=NO", NULL};
    CU_ASSERT_FATAL(rgb_ok(in, out, kv));
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_STRING_EQUAL(md(ds, "MODE"), "colormap");
    CU_ASSERT_STRING_EQUAL(md(ds, "VALUE_BAND"), "infoloss_optical");
    CU_ASSERT_STRING_EQUAL(md(ds, "SOURCE_PRODUCT"), "infoloss");
    GDALClose(ds);
    CU_ASSERT_FALSE(test_file_exists(test_path("loss_rgb.legend.png")));
    /* A band chosen by description, ignoring case. */
    const char *kv2[] = {"BANDS=EXCESS_OPTICAL", "LEGEND=NO", NULL};
    CU_ASSERT_FATAL(rgb_ok(in, test_path("loss_rgb2.tif"), kv2));
    ds = GDALOpen(test_path("loss_rgb2.tif"), GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_STRING_EQUAL(md(ds, "VALUE_BAND"), "excess_optical");
    CU_ASSERT_STRING_EQUAL(md(ds, "COLORMAP"), "rdbu_r");
    GDALClose(ds);
}

static void
three_given_bands_are_shown_directly(void)
{
    make_pca_input();
    const char *out = test_path("direct.tif");
    const char *kv[] = {"BANDS=3,2,1", "RANGE=90,140", NULL};
    CU_ASSERT_FATAL(rgb_ok(pca_path, out, kv));
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_STRING_EQUAL(md(ds, "MODE"), "direct");
    CU_ASSERT_STRING_EQUAL(md(ds, "BANDS"), "3,2,1");
    CU_ASSERT_STRING_EQUAL(md(ds, "RED_RANGE"), "90,140");
    GDALClose(ds);
    GDALDatasetH in = GDALOpen(pca_path, GA_ReadOnly);
    float v[3];
    CU_ASSERT_EQUAL(GDALRasterIO(GDALGetRasterBand(in, 3), GF_Read, 70, 50, 1,
                                 1, &v[0], 1, 1, GDT_Float32, 0, 0),
                    CE_None);
    CU_ASSERT_EQUAL(GDALRasterIO(GDALGetRasterBand(in, 1), GF_Read, 70, 50, 1,
                                 1, &v[2], 1, 1, GDT_Float32, 0, 0),
                    CE_None);
    GDALClose(in);
    int w, h;
    unsigned char *px = read_rgba(out, &w, &h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    size_t n = (size_t)W * H, i = (size_t)50 * W + 70;
    CU_ASSERT_EQUAL(px[i], mmcl__colormap_index(v[0], 90, 140));
    CU_ASSERT_EQUAL(px[2 * n + i], mmcl__colormap_index(v[2], 90, 140));
    free(px);
}

static void
png_output_works(void)
{
    make_pca_input();
    const char *out = test_path("pic.png");
    const char *kv[] = {"FORMAT=PNG", NULL};
    CU_ASSERT_FATAL(rgb_ok(pca_path, out, kv));
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_STRING_EQUAL(GDALGetDriverShortName(GDALGetDatasetDriver(ds)),
                           "PNG");
    CU_ASSERT_EQUAL(GDALGetRasterCount(ds), 4);
    CU_ASSERT_EQUAL(GDALGetRasterColorInterpretation(GDALGetRasterBand(ds, 4)),
                    GCI_AlphaBand);
    double gt[6];
    CU_ASSERT_EQUAL(GDALGetGeoTransform(ds, gt), CE_None);
    CU_ASSERT_DOUBLE_EQUAL(gt[0], test_gt[0], 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(gt[1], test_gt[1], 1e-9);
    CU_ASSERT_STRING_EQUAL(md(ds, "MODE"), "pca");
    GDALClose(ds);
    /* Same pixels as the GeoTIFF. */
    const char *kv2[] = {"TILE=64", NULL};
    CU_ASSERT_FATAL(rgb_ok(pca_path, test_path("pic.tif"), kv2));
    int w, h;
    unsigned char *a = read_rgba(out, &w, &h);
    unsigned char *b = read_rgba(test_path("pic.tif"), &w, &h);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_EQUAL(memcmp(a, b, (size_t)4 * W * H), 0);
    free(a);
    free(b);
    /* A colour-mapped PNG with its legend. */
    const char *in = make_ramp("ramp3.tif", "infoloss_optical", 0.0);
    const char *kv3[] = {"FORMAT=PNG", "COLORMAP=magma", NULL};
    CU_ASSERT_FATAL(rgb_ok(in, test_path("map.png"), kv3));
    CU_ASSERT_TRUE(test_file_exists(test_path("map.legend.png")));
    CU_ASSERT_TRUE(test_file_exists(test_path("map.legend.json")));
    CU_ASSERT_EQUAL(test_count_files_like("mmcl-tmp"), 0);
}

static void
existing_output_is_kept_without_overwrite(void)
{
    make_pca_input();
    const char *out = test_path("exists.tif");
    FILE *f = fopen(out, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("precious", f);
    fclose(f);
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL(run_rgb(ctx, pca_path, out, NULL), MMCL_ERR_EXISTS);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "--overwrite"));
    char buf[16] = {0};
    f = fopen(out, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_PTR_NOT_NULL(fgets(buf, sizeof(buf), f));
    fclose(f);
    CU_ASSERT_STRING_EQUAL(buf, "precious");
    /* Nor with overwrite: it is no picture of mmcl rgb. */
    const char *kv[] = {"OVERWRITE=YES", NULL};
    CU_ASSERT_EQUAL(run_rgb(ctx, pca_path, out, kv), MMCL_ERR_EXISTS);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "replaces only"));
    /* A picture of an earlier run is replaced. */
    CU_ASSERT_EQUAL(remove(out), 0);
    CU_ASSERT_EQUAL(run_rgb(ctx, pca_path, out, NULL), MMCL_OK);
    CU_ASSERT_EQUAL(run_rgb(ctx, pca_path, out, kv), MMCL_OK);
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL(ds);
    if (ds)
        GDALClose(ds);

    /* An existing legend is kept too, and the picture is not written. */
    const char *in = make_ramp("ramp4.tif", "infoloss_optical", 0.0);
    const char *legend = test_path("keep.legend.png");
    f = fopen(legend, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("legend", f);
    fclose(f);
    CU_ASSERT_EQUAL(run_rgb(ctx, in, test_path("keep.tif"), NULL),
                    MMCL_ERR_EXISTS);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "legend"));
    CU_ASSERT_FALSE(test_file_exists(test_path("keep.tif")));
    mmcl_context_destroy(ctx);
}

/* Expects @p code with @p needle in the message, and no output. */
static void
expect_failure(const char *in, const char *out, const char *const *kv,
               mmcl_status code, const char *needle)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_status st = run_rgb(ctx, in, out, kv);
    const char *msg = mmcl_context_errmsg(ctx);
    printf("  -> %s\n", msg);
    CU_ASSERT_EQUAL(st, code);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle));
    CU_ASSERT_FALSE(test_file_exists(out));
    CU_ASSERT_EQUAL(test_count_files_like("mmcl-tmp"), 0);
    mmcl_context_destroy(ctx);
}

static void
bad_inputs_are_refused_with_clear_errors_and_no_output(void)
{
    make_pca_input();
    const char *out = test_path("bad.tif");
    /* Not a raster. */
    const char *txt = test_path("notes.txt");
    FILE *f = fopen(txt, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("not a raster\n", f);
    fclose(f);
    expect_failure(txt, out, NULL, MMCL_ERR_IO, "notes.txt");
    expect_failure(test_path("missing.tif"), out, NULL, MMCL_ERR_IO,
                   "does not exist");
    /* Bands that do not exist. */
    const char *kv1[] = {"BANDS=1,infoloss_nothing", NULL};
    expect_failure(pca_path, out, kv1, MMCL_ERR_INVALID_ARG,
                   "infoloss_nothing");
    const char *kv2[] = {"BANDS=2,9", NULL};
    expect_failure(pca_path, out, kv2, MMCL_ERR_INVALID_ARG, "band 9");
    const char *kv3[] = {"BANDS=1,,2", NULL};
    expect_failure(pca_path, out, kv3, MMCL_ERR_INVALID_ARG, "BANDS");
    /* Modes that do not fit the bands, bad stretch. */
    const char *kv4[] = {"MODE=direct", "BANDS=1,2", NULL};
    expect_failure(pca_path, out, kv4, MMCL_ERR_INVALID_ARG, "three bands");
    const char *kv5[] = {"MODE=colormap", NULL};
    expect_failure(pca_path, out, kv5, MMCL_ERR_INVALID_ARG,
                   "choose one with BANDS");
    const char *kv6[] = {"RANGE=0,1", NULL};
    expect_failure(pca_path, out, kv6, MMCL_ERR_INVALID_ARG, "RANGE");
    const char *kv7[] = {"STRETCH=98,2", NULL};
    expect_failure(pca_path, out, kv7, MMCL_ERR_INVALID_ARG, "STRETCH");
    const char *kv8[] = {"FORMAT=NoSuchFormat", NULL};
    expect_failure(pca_path, out, kv8, MMCL_ERR_INVALID_ARG, "NoSuchFormat");
    const char *kv10[] = {"FORMAT=JPEG", NULL};
    expect_failure(pca_path, test_path("bad.jpg"), kv10, MMCL_ERR_UNSUPPORTED,
                   "alpha");
    /* Nothing valid at all. */
    float *nan = malloc(sizeof(float) * 2 * W * H);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nan);
    for (size_t i = 0; i < (size_t)2 * W * H; i++)
        nan[i] = NAN;
    const char *empty = test_path("empty.tif");
    write_raster(empty, W, H, 2, nan, NULL, NULL);
    free(nan);
    expect_failure(empty, out, NULL, MMCL_ERR_INVALID_ARG, "no valid pixel");
    const char *kv9[] = {"BANDS=1", NULL};
    expect_failure(empty, test_path("bad.png"), kv9, MMCL_ERR_INVALID_ARG,
                   "no valid pixel");
    CU_ASSERT_FALSE(test_file_exists(test_path("bad.legend.png")));
    CU_ASSERT_FALSE(test_file_exists(test_path("bad.legend.json")));
    /* Options built for another operation. */
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "embed", NULL);
    CU_ASSERT_EQUAL(mmcl_rgb(ctx, pca_path, out, o), MMCL_ERR_INVALID_ARG);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

static void
legend_bar_shows_the_lut_between_frame_and_ticks(void)
{
    const mmcl__rgb8 *lut = mmcl__colormap("magma");
    CU_ASSERT_PTR_NOT_NULL_FATAL(lut);
    CU_ASSERT_PTR_NULL(mmcl__colormap("jet"));
    size_t plane = (size_t)MMCL__LEGEND_W * MMCL__LEGEND_H;
    unsigned char *img = malloc(4 * plane);
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    double tv[MMCL__LEGEND_TICKS];
    int tx[MMCL__LEGEND_TICKS];
    const char *font = mmcl__legend_draw(img, lut, -2.0, 6.0,
                                         "excess_optical (optical modality)",
                                         "standardized band variance", tv, tx);
    CU_ASSERT_STRING_EQUAL(font, "DejaVu Sans");
    int ok = 1;
    int y = MMCL__LEGEND_BAR_Y + MMCL__LEGEND_BAR_H / 2;
    for (int i = 0; i < MMCL__LUT_SIZE; i++) {
        size_t p = (size_t)y * MMCL__LEGEND_W + MMCL__LEGEND_BAR_X + i;
        for (int c = 0; c < 3; c++)
            ok &= img[c * plane + p] == lut[i][c];
        ok &= img[3 * plane + p] == 255;
    }
    CU_ASSERT_TRUE(ok);
    /* Frame just left of the bar is black. */
    size_t p = (size_t)y * MMCL__LEGEND_W + MMCL__LEGEND_BAR_X - 1;
    CU_ASSERT_TRUE(!img[p] && !img[plane + p] && !img[2 * plane + p]);
    CU_ASSERT_DOUBLE_EQUAL(tv[0], -2.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(tv[2], 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(tv[4], 6.0, 0.0);
    CU_ASSERT_EQUAL(tx[0], MMCL__LEGEND_BAR_X);
    CU_ASSERT_EQUAL(tx[4], MMCL__LEGEND_BAR_X + 255);
    /* Some ink under the bar: the labels. */
    int ink = 0;
    for (int yy = MMCL__LEGEND_BAR_Y + MMCL__LEGEND_BAR_H + 8;
         yy < MMCL__LEGEND_H; yy++)
        for (int x = 0; x < MMCL__LEGEND_W; x++)
            ink += img[(size_t)yy * MMCL__LEGEND_W + x] == 0;
    CU_ASSERT_TRUE(ink > 50);
    /* The title above the bar, in the font's grey-levels of ink. */
    int title_ink = 0;
    for (int yy = 0; yy < MMCL__LEGEND_BAR_Y - 8; yy++)
        for (int x = 0; x < MMCL__LEGEND_W; x++)
            title_ink += img[(size_t)yy * MMCL__LEGEND_W + x] < 128;
    CU_ASSERT_TRUE(title_ink > 200);
    /* Each tick has its value under it (not only the ends and middle). */
    for (int t = 0; t < MMCL__LEGEND_TICKS; t++) {
        int near = 0;
        for (int yy = MMCL__LEGEND_BAR_Y + MMCL__LEGEND_BAR_H + 7;
             yy < MMCL__LEGEND_BAR_Y + MMCL__LEGEND_BAR_H + 22; yy++)
            for (int x = tx[t] - 6; x <= tx[t] + 6; x++)
                near += img[(size_t)yy * MMCL__LEGEND_W + x] < 128;
        CU_ASSERT_TRUE(near > 5);
    }
    /* The clipping triangles take the end colours. */
    int mid = MMCL__LEGEND_BAR_Y + MMCL__LEGEND_BAR_H / 2;
    size_t left = (size_t)mid * MMCL__LEGEND_W + MMCL__LEGEND_BAR_X - 3 - 4;
    size_t right = (size_t)mid * MMCL__LEGEND_W + MMCL__LEGEND_BAR_X +
                   MMCL__LUT_SIZE + 2 + 4;
    for (int c = 0; c < 3; c++) {
        CU_ASSERT_EQUAL(img[c * plane + left], lut[0][c]);
        CU_ASSERT_EQUAL(img[c * plane + right], lut[MMCL__LUT_SIZE - 1][c]);
    }
    /* The unit and the clipping note under the labels. */
    int note_ink = 0;
    for (int yy = MMCL__LEGEND_BAR_Y + MMCL__LEGEND_BAR_H + 26;
         yy < MMCL__LEGEND_H; yy++)
        for (int x = 0; x < MMCL__LEGEND_W; x++)
            note_ink += img[(size_t)yy * MMCL__LEGEND_W + x] < 128;
    CU_ASSERT_TRUE(note_ink > 300);
    free(img);
    /* Index rounding and clamping. */
    CU_ASSERT_EQUAL(mmcl__colormap_index(-5.0, 0.0, 1.0), 0);
    CU_ASSERT_EQUAL(mmcl__colormap_index(5.0, 0.0, 1.0), 255);
    CU_ASSERT_EQUAL(mmcl__colormap_index(0.5, 0.0, 1.0), 128);
    CU_ASSERT_EQUAL(mmcl__colormap_index(1.0 / 255.0, 0.0, 1.0), 1);
}

int
main(void)
{
    GDALAllRegister();
    static const test_case cases[] = {
        {"pca_picture_follows_the_components_with_nodata_transparent",
         pca_picture_follows_the_components_with_nodata_transparent},
        {"picture_does_not_depend_on_threads",
         picture_does_not_depend_on_threads},
        {"colormap_gives_the_lut_colour_of_the_stretched_value",
         colormap_gives_the_lut_colour_of_the_stretched_value},
        {"default_stretch_is_the_2_and_98_percentiles",
         default_stretch_is_the_2_and_98_percentiles},
        {"excess_band_gets_a_diverging_map_centred_on_zero",
         excess_band_gets_a_diverging_map_centred_on_zero},
        {"infoloss_map_without_bands_shows_its_first_band",
         infoloss_map_without_bands_shows_its_first_band},
        {"three_given_bands_are_shown_directly",
         three_given_bands_are_shown_directly},
        {"png_output_works", png_output_works},
        {"existing_output_is_kept_without_overwrite",
         existing_output_is_kept_without_overwrite},
        {"bad_inputs_are_refused_with_clear_errors_and_no_output",
         bad_inputs_are_refused_with_clear_errors_and_no_output},
        {"legend_bar_shows_the_lut_between_frame_and_ticks",
         legend_bar_shows_the_lut_between_frame_and_ticks},
        {NULL, NULL}};
    int rc = test_run_suite("rgb", cases);
    GDALDestroyDriverManager();
    return rc;
}
