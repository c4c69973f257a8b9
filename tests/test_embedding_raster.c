/* SPDX-License-Identifier: MIT */
/*
 * The embedding raster (src/grid/embedding_raster.c): an embedding on the
 * grid is read as it is; integer codes are de-quantized (scale and offset;
 * AlphaEarth's int8 codes, -128 masked); an int8 raster in EPSG:4326 is
 * de-quantized before it is warped (it reads as the float raster of its
 * values warped alike); bad options and files are refused, naming them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include "embedding_raster_internal.h"
#include "test_util.h"

/* The grid: 120 x 90 pixels of 10 m in UTM 31N. */
enum { GW = 120, GH = 90, K = 3 };
static const double grid_gt[6] = {500000, 10, 0, 4800000, 0, -10};
static char *utm, *lonlat;

/* The AlphaEarth value of code q, written independently of the library. */
static double
aef(int q)
{
    return (q < 0 ? -1.0 : 1.0) * pow(abs(q) / 127.5, 2.0);
}

/* A code of band b at pixel (x, y): a smooth pattern over -127 .. 127,
 * -128 (masked) at every 11th pixel. */
static int
code_at(int b, int x, int y)
{
    if ((y * 131 + x) % 11 == 0)
        return -128;
    return (int)lround(120.0 * sin(0.13 * x + b) * cos(0.11 * y - b));
}

/* A K-band raster of @p type at @p path, pixel (x, y) of band b holding
 * value(b, x, y); creation options @p co, nodata @p nodata when
 * @p has_nodata, scale and offset when @p scale != 0. */
static void
make(const char *path, const char *wkt, const double gt[6], int w, int h,
     GDALDataType type, char **co, int has_nodata, double nodata,
     double scale, double offset, double (*value)(int, int, int))
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, K,
                                 type, co);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    GDALSetGeoTransform(ds, (double *)gt);
    GDALSetProjection(ds, wkt);
    double *buf = malloc((size_t)w * h * sizeof(double));
    for (int b = 0; b < K; b++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                buf[(size_t)y * w + x] = value(b, x, y);
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        if (co) {
            /* A signed byte band: write the codes as int8 bytes. */
            signed char *c = malloc((size_t)w * h);
            for (size_t i = 0; i < (size_t)w * h; i++)
                c[i] = (signed char)buf[i];
            CU_ASSERT_EQUAL(GDALRasterIO(band, GF_Write, 0, 0, w, h, c, w, h,
                                         GDT_Byte, 0, 0),
                            CE_None);
            free(c);
        } else {
            CU_ASSERT_EQUAL(GDALRasterIO(band, GF_Write, 0, 0, w, h, buf, w,
                                         h, GDT_Float64, 0, 0),
                            CE_None);
        }
        if (has_nodata)
            GDALSetRasterNoDataValue(band, nodata);
        if (scale != 0) {
            GDALSetRasterScale(band, scale);
            GDALSetRasterOffset(band, offset);
        }
        GDALSetDescription(band, CPLSPrintf("dim%d", b));
    }
    free(buf);
    GDALClose(ds);
}

static double
float_value(int b, int x, int y)
{
    return (x * 7 + y * 3) % 13 == 0 ? -9999.0
                                     : 0.5 * b + 0.01 * x - 0.02 * y;
}

static double
int16_value(int b, int x, int y)
{
    return (double)((x * 37 + y * 11 + b * 101) % 2000 - 1000);
}

static double
code_value(int b, int x, int y)
{
    return code_at(b, x, y);
}

/* The float values of the codes: what an int8 raster holds, de-quantized. */
static double
dequantized_value(int b, int x, int y)
{
    int q = code_at(b, x, y);
    return q == -128 ? NAN : aef(q);
}

static mmcl_status
open_er(mmcl_context *ctx, const char *path, const char *deq,
        const char *bands, mmcl__embedding_raster **er)
{
    mmcl__grid g = {GW, GH, {0}, utm, "optical 'test'"};
    memcpy(g.gt, grid_gt, sizeof(g.gt));
    mmcl__embedding_options o = {deq, bands, "bilinear", 0};
    return mmcl__embedding_raster_open(ctx, path, &g, &o, er);
}

/* The whole grid read through @p er in windows of @p tile pixels:
 * (k, GH, GW), and the validity (GH, GW). */
static float *
read_all(mmcl_context *ctx, const mmcl__embedding_raster *er, int tile,
         uint8_t *valid)
{
    int k = mmcl__embedding_raster_bands(er);
    mmcl__embedding_reader *r = mmcl__embedding_reader_create(ctx, er);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    size_t plane = (size_t)GW * GH;
    float *all = malloc(plane * k * sizeof(float));
    float *win = malloc((size_t)tile * tile * k * sizeof(float));
    uint8_t *v = malloc((size_t)tile * tile);
    for (int y = 0; y < GH; y += tile)
        for (int x = 0; x < GW; x += tile) {
            int w = GW - x < tile ? GW - x : tile;
            int h = GH - y < tile ? GH - y : tile;
            CU_ASSERT_EQUAL(mmcl__embedding_read(ctx, r, x, y, w, h, win, v),
                            MMCL_OK);
            for (int b = 0; b < k; b++)
                for (int j = 0; j < h; j++)
                    for (int i = 0; i < w; i++)
                        all[plane * b + (size_t)(y + j) * GW + x + i] =
                            win[(size_t)w * h * b + (size_t)j * w + i];
            for (int j = 0; j < h; j++)
                for (int i = 0; i < w; i++)
                    valid[(size_t)(y + j) * GW + x + i] = v[j * w + i];
        }
    free(win);
    free(v);
    mmcl__embedding_reader_destroy(r);
    return all;
}

static void
a_float_embedding_on_the_grid_is_read_as_it_is(void)
{
    const char *path = test_path("float.tif");
    make(path, utm, grid_gt, GW, GH, GDT_Float32, NULL, 1, -9999, 0, 0,
         float_value);
    mmcl_context *ctx = mmcl_context_create();
    mmcl__embedding_raster *er;
    /* Bands 3 and 1, in that order, one by its description. */
    CU_ASSERT_EQUAL_FATAL(open_er(ctx, path, NULL, "3, dim0", &er), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__embedding_raster_bands(er), 2);
    CU_ASSERT_STRING_EQUAL(mmcl__embedding_raster_band_name(er, 0), "dim2");
    CU_ASSERT_EQUAL(mmcl__embedding_raster_band_number(er, 1), 1);
    CU_ASSERT_EQUAL(mmcl__embedding_raster_dequantize(er), MMCL__DEQ_NONE);
    CU_ASSERT(mmcl__embedding_raster_on_grid(er));
    uint8_t *valid = malloc((size_t)GW * GH);
    float *got = read_all(ctx, er, 32, valid);
    size_t plane = (size_t)GW * GH, bad = 0;
    static const int band[2] = {2, 0};
    for (int b = 0; b < 2; b++)
        for (int y = 0; y < GH; y++)
            for (int x = 0; x < GW; x++) {
                double want = float_value(band[b], x, y);
                float v = got[plane * b + (size_t)y * GW + x];
                int ok = want == -9999 ? isnan(v) : v == (float)want;
                ok = ok && valid[(size_t)y * GW + x] == (want != -9999);
                bad += !ok;
            }
    printf("  %zu values differ from the raster's\n", bad);
    CU_ASSERT_EQUAL(bad, 0);
    free(got);
    free(valid);
    mmcl__embedding_raster_close(er);
    mmcl_context_destroy(ctx);
}

static void
scale_and_offset_are_applied(void)
{
    const char *path = test_path("int16.tif");
    make(path, utm, grid_gt, GW, GH, GDT_Int16, NULL, 0, 0, 0.001, -0.5,
         int16_value);
    mmcl_context *ctx = mmcl_context_create();
    mmcl__embedding_raster *er;
    CU_ASSERT_EQUAL_FATAL(open_er(ctx, path, "auto", NULL, &er), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__embedding_raster_dequantize(er), MMCL__DEQ_LINEAR);
    uint8_t *valid = malloc((size_t)GW * GH);
    float *got = read_all(ctx, er, 50, valid);
    size_t plane = (size_t)GW * GH;
    double max_diff = 0;
    for (int b = 0; b < K; b++)
        for (int y = 0; y < GH; y++)
            for (int x = 0; x < GW; x++) {
                double want = int16_value(b, x, y) * 0.001 - 0.5;
                max_diff = fmax(max_diff,
                                fabs(got[plane * b + (size_t)y * GW + x] -
                                     want));
            }
    printf("  max |value - (code * 0.001 - 0.5)| = %.3g\n", max_diff);
    CU_ASSERT(max_diff <= 1e-6); /* float32 rounding of values <= 1.5 */
    free(got);
    free(valid);
    mmcl__embedding_raster_close(er);
    mmcl_context_destroy(ctx);
}

static void
int8_codes_are_dequantized_and_minus_128_is_masked(void)
{
    const char *path = test_path("int8.tif");
    char **co = CSLSetNameValue(NULL, "PIXELTYPE", "SIGNEDBYTE");
    make(path, utm, grid_gt, GW, GH, GDT_Byte, co, 1, -128, 0, 0, code_value);
    CSLDestroy(co);
    mmcl_context *ctx = mmcl_context_create();
    mmcl__embedding_raster *er;
    CU_ASSERT_EQUAL_FATAL(open_er(ctx, path, NULL, NULL, &er), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__embedding_raster_dequantize(er),
                    MMCL__DEQ_ALPHAEARTH);
    uint8_t *valid = malloc((size_t)GW * GH);
    float *got = read_all(ctx, er, 40, valid);
    size_t plane = (size_t)GW * GH, bad = 0, masked = 0;
    for (int b = 0; b < K; b++)
        for (int y = 0; y < GH; y++)
            for (int x = 0; x < GW; x++) {
                int q = code_at(b, x, y);
                float v = got[plane * b + (size_t)y * GW + x];
                masked += q == -128;
                bad += q == -128 ? !isnan(v) || valid[(size_t)y * GW + x]
                                 : fabs(v - aef(q)) > 1e-7;
            }
    printf("  %zu masked codes, %zu values wrong\n", masked, bad);
    CU_ASSERT(masked > 0);
    CU_ASSERT_EQUAL(bad, 0);
    free(got);
    free(valid);
    mmcl__embedding_raster_close(er);
    /* Read with "none": the signed codes themselves. */
    CU_ASSERT_EQUAL_FATAL(open_er(ctx, path, "none", "2", &er), MMCL_OK);
    valid = malloc((size_t)GW * GH);
    got = read_all(ctx, er, 64, valid);
    bad = 0;
    for (int y = 0; y < GH; y++)
        for (int x = 0; x < GW; x++) {
            int q = code_at(1, x, y);
            float v = got[(size_t)y * GW + x];
            bad += q == -128 ? !isnan(v) : v != (float)q;
        }
    CU_ASSERT_EQUAL(bad, 0);
    free(got);
    free(valid);
    mmcl__embedding_raster_close(er);
    mmcl_context_destroy(ctx);
}

static void
a_warped_int8_raster_is_dequantized_before_resampling(void)
{
    /* About 7 m pixels in lon/lat over the west half of the grid: the
     * int8 codes, and the float raster of their values with NaN where
     * masked. Warped alike, they must read alike. */
    double gt[6] = {2.9990, 0.00009, 0, 43.3510, 0, -0.000065};
    const char *p8 = test_path("lonlat8.tif"), *pf = test_path("lonlatf.tif");
    char **co = CSLSetNameValue(NULL, "PIXELTYPE", "SIGNEDBYTE");
    make(p8, lonlat, gt, 120, 160, GDT_Byte, co, 1, -128, 0, 0, code_value);
    CSLDestroy(co);
    make(pf, lonlat, gt, 120, 160, GDT_Float32, NULL, 0, 0, 0, 0,
         dequantized_value);
    mmcl_context *ctx = mmcl_context_create();
    mmcl__embedding_raster *e8, *ef;
    CU_ASSERT_EQUAL_FATAL(open_er(ctx, p8, "alphaearth", NULL, &e8), MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(open_er(ctx, pf, "none", NULL, &ef), MMCL_OK);
    CU_ASSERT(!mmcl__embedding_raster_on_grid(e8));
    uint8_t *v8 = malloc((size_t)GW * GH), *vf = malloc((size_t)GW * GH);
    float *g8 = read_all(ctx, e8, 32, v8), *gf = read_all(ctx, ef, 45, vf);
    size_t n = (size_t)GW * GH * K, n_valid = 0, nan_mismatch = 0;
    double max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        nan_mismatch += isnan(g8[i]) != isnan(gf[i]);
        if (isnan(g8[i]) || isnan(gf[i]))
            continue;
        n_valid++;
        max_diff = fmax(max_diff, fabs(g8[i] - gf[i]));
    }
    printf("  %zu valid values of %zu, max |int8 - float| %.3g, %zu NaN "
           "mismatches\n",
           n_valid, n, max_diff, nan_mismatch);
    CU_ASSERT(n_valid > n / 4 && n_valid < n);
    CU_ASSERT(max_diff <= 1e-6);
    CU_ASSERT_EQUAL(nan_mismatch, 0);
    free(g8);
    free(gf);
    free(v8);
    free(vf);
    mmcl__embedding_raster_close(e8);
    mmcl__embedding_raster_close(ef);
    mmcl_context_destroy(ctx);
}

static void
expect_error(const char *path, const char *deq, const char *bands,
             mmcl_status code, const char *words)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl__embedding_raster *er = (mmcl__embedding_raster *)1;
    CU_ASSERT_EQUAL(open_er(ctx, path, deq, bands, &er), code);
    CU_ASSERT_PTR_NULL(er);
    printf("  -> %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), words));
    mmcl_context_destroy(ctx);
}

static void
bad_files_and_options_are_refused_naming_them(void)
{
    const char *path = test_path("float2.tif");
    make(path, utm, grid_gt, GW, GH, GDT_Float32, NULL, 0, 0, 0, 0,
         float_value);
    expect_error(path, "sqrt", NULL, MMCL_ERR_INVALID_ARG,
                 "de-quantization must be none, linear, alphaearth or auto, "
                 "got 'sqrt'");
    expect_error(path, "alphaearth", NULL, MMCL_ERR_INVALID_ARG,
                 "has Float32 bands: the alphaearth de-quantization reads "
                 "int8 codes");
    expect_error(path, NULL, "2,4", MMCL_ERR_INVALID_ARG, "has 3 bands: no "
                                                          "band '4'");
    expect_error(path, NULL, "1,1", MMCL_ERR_INVALID_ARG,
                 "band 1 is selected twice");
    const char *text = test_path("notes.txt");
    FILE *f = fopen(text, "w");
    fputs("not a raster\n", f);
    fclose(f);
    expect_error(text, NULL, NULL, MMCL_ERR_IO, "notes.txt");
    const char *away = test_path("away.tif");
    double gt[6] = {700000, 10, 0, 4800000, 0, -10};
    make(away, utm, gt, GW, GH, GDT_Float32, NULL, 0, 0, 0, 0, float_value);
    expect_error(away, NULL, NULL, MMCL_ERR_INVALID_ARG,
                 "the embedding raster '");
}

int
main(void)
{
    GDALAllRegister();
    utm = test_wkt_of("EPSG:32631");
    lonlat = test_wkt_of("EPSG:4326");
    static const test_case cases[] = {
        {"a_float_embedding_on_the_grid_is_read_as_it_is",
         a_float_embedding_on_the_grid_is_read_as_it_is},
        {"scale_and_offset_are_applied", scale_and_offset_are_applied},
        {"int8_codes_are_dequantized_and_minus_128_is_masked",
         int8_codes_are_dequantized_and_minus_128_is_masked},
        {"a_warped_int8_raster_is_dequantized_before_resampling",
         a_warped_int8_raster_is_dequantized_before_resampling},
        {"bad_files_and_options_are_refused_naming_them",
         bad_files_and_options_are_refused_naming_them},
        {NULL, NULL}};
    int rc = test_run_suite("embedding_raster", cases);
    CPLFree(utm);
    CPLFree(lonlat);
    GDALDestroyDriverManager();
    return rc;
}
