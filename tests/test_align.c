/* SPDX-License-Identifier: MIT */
/*
 * mmcl_align at the library level: seamless and deterministic output, and
 * bad input refused with a clear message and no output left behind.
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <ogr_srs_api.h>

#include "mmcl/align.h"
#include "pair_internal.h"
#include "test_scene.h"
#include "test_util.h"

/* Writes a float32 GeoTIFF with a textured pattern; NULL @p srs: none. */
static void
make_raster(const char *path, int w, int h, int bands, const char *srs,
            const double gt[6], double fill_nan_fraction)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h,
                                 bands, GDT_Float32, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    GDALSetGeoTransform(ds, (double *)gt);
    if (srs) {
        OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
        OSRSetFromUserInput(s, srs);
        char *wkt = NULL;
        OSRExportToWkt(s, &wkt);
        GDALSetProjection(ds, wkt);
        CPLFree(wkt);
        OSRDestroySpatialReference(s);
    }
    float *buf = malloc((size_t)w * h * sizeof(float));
    for (int b = 0; b < bands; b++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double v = -12.0 + 4.0 * sin(0.31 * x + 1.7 * b) *
                                       cos(0.23 * y) +
                           0.5 * ((x * 7 + y * 13 + b) % 11);
                if (fill_nan_fraction >= 1.0)
                    v = NAN;
                buf[(size_t)y * w + x] = (float)v;
            }
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        CU_ASSERT_EQUAL(GDALRasterIO(band, GF_Write, 0, 0, w, h, buf, w, h,
                                     GDT_Float32, 0, 0),
                        CE_None);
        GDALSetRasterNoDataValue(band, NAN);
    }
    free(buf);
    GDALClose(ds);
}

static const char *optical_path, *sar_path;

/* A 300 x 200 optical grid in UTM 31N at 10 m and a SAR on EPSG:4326 at
 * about 20 m covering it. */
static void
make_pair(void)
{
    static char opt[1024], sar[1024];
    if (optical_path)
        return;
    snprintf(opt, sizeof(opt), "%s", test_path("optical.tif"));
    snprintf(sar, sizeof(sar), "%s", test_path("sar.tif"));
    double gt_o[6] = {500000, 10, 0, 4800000, 0, -10};
    make_raster(opt, 300, 200, 3, "EPSG:32631", gt_o, 0);
    /* 500 km E, 4800 km N in 31N is about 3.0 E, 43.35 N. */
    double gt_s[6] = {2.995, 0.00025, 0, 43.36, 0, -0.00018};
    make_raster(sar, 180, 140, 2, "EPSG:4326", gt_s, 0);
    optical_path = opt;
    sar_path = sar;
}


/* Number of entries in the temp dir whose name contains @p needle. */


static mmcl_status
run_align(mmcl_context *ctx, const char *opt, const char *sar,
          const char *out, const char *const *kv)
{
    mmcl_options *o = mmcl_options_new(ctx, "align", kv);
    if (!o)
        return mmcl_context_errcode(ctx);
    const char *optical[1] = {opt};
    mmcl_status st =
        mmcl_align(ctx, optical, 1, (const char *const[]){sar}, 1, out, o);
    mmcl_options_free(o);
    return st;
}

static void
output_is_on_the_optical_grid_with_metadata(void)
{
    make_pair();
    mmcl_context *ctx = mmcl_context_create();
    const char *out = test_path("grid.tif");
    CU_ASSERT_EQUAL_FATAL(run_align(ctx, optical_path, sar_path, out, NULL),
                          MMCL_OK);
    GDALDatasetH o = GDALOpen(optical_path, GA_ReadOnly);
    GDALDatasetH a = GDALOpen(out, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(GDALGetRasterXSize(a), 300);
    CU_ASSERT_EQUAL(GDALGetRasterYSize(a), 200);
    CU_ASSERT_EQUAL(GDALGetRasterCount(a), 2);
    double g1[6], g2[6];
    GDALGetGeoTransform(o, g1);
    GDALGetGeoTransform(a, g2);
    for (int i = 0; i < 6; i++)
        CU_ASSERT_DOUBLE_EQUAL(g1[i], g2[i], 1e-9);
    CU_ASSERT_TRUE(OSRIsSame(GDALGetSpatialRef(o), GDALGetSpatialRef(a)));
    CU_ASSERT_EQUAL(GDALGetRasterDataType(GDALGetRasterBand(a, 1)),
                    GDT_Float32);
    const char *prod = GDALGetMetadataItem(a, "PRODUCT", "MMCL");
    CU_ASSERT_PTR_NOT_NULL(prod);
    if (prod)
        CU_ASSERT_STRING_EQUAL(prod, "aligned_sar");
    /* SAR (0.00025 deg, ~20 m) is coarser than 10 m: auto -> bilinear. */
    const char *res = GDALGetMetadataItem(a, "RESAMPLING", "MMCL");
    CU_ASSERT_PTR_NOT_NULL(res);
    if (res)
        CU_ASSERT_STRING_EQUAL(res, "bilinear");
    int has_nd = 0;
    double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(a, 1), &has_nd);
    CU_ASSERT_TRUE(has_nd && isnan(nd));
    GDALClose(a);
    GDALClose(o);
    CU_ASSERT_EQUAL(test_count_files_like("mmcl-tmp"), 0);
    mmcl_context_destroy(ctx);
}

/* Runs align with @p kv and returns the pixels. */
static float *
align_pixels(const char *name, const char *const *kv, int *n)
{
    mmcl_context *ctx = mmcl_context_create();
    const char *out = test_path(name);
    mmcl_status st = run_align(ctx, optical_path, sar_path, out, kv);
    if (st != MMCL_OK)
        printf("  align failed: %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL(st, MMCL_OK);
    mmcl_context_destroy(ctx);
    int w = 0, h = 0, b = 0;
    float *px = test_read_raster(out, &w, &h, &b);
    *n = w * h * b;
    return px;
}

static void
output_does_not_depend_on_tile_size_or_threads(void)
{
    make_pair();
    const char *kv_a[] = {"TILE=64", "THREADS=1", NULL};
    const char *kv_b[] = {"TILE=512", "THREADS=2", NULL};
    const char *kv_c[] = {"TILE=64", "THREADS=2", NULL};
    const char *kv_d[] = {"TILE=48", "THREADS=2", "RESAMPLING=cubic", NULL};
    const char *kv_e[] = {"TILE=512", "THREADS=1", "RESAMPLING=cubic", NULL};
    int na, nb, nc, nd, ne;
    float *a = align_pixels("t64.tif", kv_a, &na);
    float *b = align_pixels("t512.tif", kv_b, &nb);
    float *c = align_pixels("t64x2.tif", kv_c, &nc);
    float *d = align_pixels("t48cubic.tif", kv_d, &nd);
    float *e = align_pixels("t512cubic.tif", kv_e, &ne);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL_FATAL(na, nb);
    /* Byte for byte (NaN payloads included). */
    CU_ASSERT_EQUAL(memcmp(a, b, (size_t)na * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(a, c, (size_t)na * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(d, e, (size_t)nd * sizeof(float)), 0);
    int valid = 0;
    for (int i = 0; i < na; i++)
        valid += !isnan(a[i]);
    printf("  %d of %d values valid\n", valid, na);
    CU_ASSERT_TRUE(valid > na / 2);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
}

static void
same_threads_and_tile_give_identical_files(void)
{
    make_pair();
    const char *kv[] = {"TILE=64", "THREADS=2", NULL};
    int n1, n2;
    free(align_pixels("same1.tif", kv, &n1));
    free(align_pixels("same2.tif", kv, &n2));
    FILE *f1 = fopen(test_path("same1.tif"), "rb");
    FILE *f2 = fopen(test_path("same2.tif"), "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f2);
    int c1, c2, same = 1;
    do {
        c1 = fgetc(f1);
        c2 = fgetc(f2);
        same &= c1 == c2;
    } while (c1 != EOF && c2 != EOF);
    CU_ASSERT_TRUE(same);
    fclose(f1);
    fclose(f2);
}

/* Expects failure @p code with @p needle in the message and no file at
 * @p out (nor any temporary). */
static void
expect_failure(const char *opt, const char *sar, const char *out,
               const char *const *kv, mmcl_status code, const char *needle)
{
    mmcl_context *ctx = mmcl_context_create();
    int existed = test_file_exists(out);
    mmcl_status st = run_align(ctx, opt, sar, out, kv);
    printf("  -> %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL(st, code);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), needle));
    if (!existed)
        CU_ASSERT_FALSE(test_file_exists(out));
    CU_ASSERT_EQUAL(test_count_files_like("mmcl-tmp"), 0);
    mmcl_context_destroy(ctx);
}

static void
missing_and_non_raster_inputs_are_refused(void)
{
    make_pair();
    const char *out = test_path("bad.tif");
    expect_failure(test_path("nope.tif"), sar_path, out, NULL, MMCL_ERR_IO,
                   "does not exist");
    expect_failure(optical_path, test_path("nope.tif"), out, NULL,
                   MMCL_ERR_IO, "does not exist");
    const char *txt = test_path("notes.txt");
    FILE *f = fopen(txt, "w");
    fputs("this is not a raster\n", f);
    fclose(f);
    expect_failure(txt, sar_path, out, NULL, MMCL_ERR_IO, "cannot open");
    expect_failure(txt, sar_path, out, NULL, MMCL_ERR_IO, "notes.txt");
}

static void
raster_without_crs_is_refused(void)
{
    make_pair();
    const char *nocrs = test_path("nocrs.tif");
    double gt[6] = {500000, 10, 0, 4800000, 0, -10};
    make_raster(nocrs, 50, 50, 2, NULL, gt, 0);
    expect_failure(optical_path, nocrs, test_path("bad.tif"), NULL,
                   MMCL_ERR_UNSUPPORTED, "has no CRS");
    expect_failure(nocrs, sar_path, test_path("bad.tif"), NULL,
                   MMCL_ERR_UNSUPPORTED, "has no CRS");
}

static void
non_overlapping_footprints_are_refused(void)
{
    make_pair();
    const char *far = test_path("far.tif");
    double gt[6] = {10.0, 0.00025, 0, 50.0, 0, -0.00018};
    make_raster(far, 50, 50, 2, "EPSG:4326", gt, 0);
    expect_failure(optical_path, far, test_path("bad.tif"), NULL,
                   MMCL_ERR_INVALID_ARG, "does not overlap");
}

static void
empty_sar_is_refused(void)
{
    make_pair();
    const char *empty = test_path("empty.tif");
    double gt_s[6] = {2.995, 0.00025, 0, 43.36, 0, -0.00018};
    make_raster(empty, 180, 140, 2, "EPSG:4326", gt_s, 1.0);
    expect_failure(optical_path, empty, test_path("bad.tif"), NULL,
                   MMCL_ERR_INVALID_ARG, "no valid pixel");
}

static void
existing_output_is_kept_without_overwrite(void)
{
    make_pair();
    const char *out = test_path("exists.tif");
    FILE *f = fopen(out, "w");
    fputs("precious", f);
    fclose(f);
    expect_failure(optical_path, sar_path, out, NULL, MMCL_ERR_EXISTS,
                   "--overwrite");
    /* With overwrite too: it is no aligned SAR, so it is not replaced. */
    const char *ow[] = {"OVERWRITE=YES", NULL};
    expect_failure(optical_path, sar_path, out, ow, MMCL_ERR_EXISTS,
                   "replaces only an aligned SAR");
    char buf[16] = {0};
    f = fopen(out, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_PTR_NOT_NULL(fgets(buf, sizeof(buf), f));
    fclose(f);
    CU_ASSERT_STRING_EQUAL(buf, "precious");
    /* An aligned SAR of an earlier run is replaced with overwrite. */
    mmcl_context *ctx = mmcl_context_create();
    const char *again = test_path("again.tif");
    CU_ASSERT_EQUAL(run_align(ctx, optical_path, sar_path, again, NULL),
                    MMCL_OK);
    CU_ASSERT_EQUAL(run_align(ctx, optical_path, sar_path, again, NULL),
                    MMCL_ERR_EXISTS);
    CU_ASSERT_EQUAL(run_align(ctx, optical_path, sar_path, again, ow), MMCL_OK);
    GDALDatasetH ds = GDALOpen(again, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL(ds);
    if (ds)
        GDALClose(ds);
    CU_ASSERT_EQUAL(test_count_files_like("mmcl-tmp"), 0);
    mmcl_context_destroy(ctx);
}

static void
unwritable_folder_unknown_option_and_bad_creation_option_are_refused(void)
{
    make_pair();
    expect_failure(optical_path, sar_path, "/nonexistent-dir/x/out.tif", NULL,
                   MMCL_ERR_IO, "does not exist");
    /* A folder that exists but cannot be written: a read-only folder for
     * a normal user; root writes anywhere except /proc. */
    char out[1100];
    if (geteuid() != 0) {
        const char *ro = test_path("ro");
        mkdir(ro, 0555);
        snprintf(out, sizeof(out), "%s/out.tif", ro);
    } else {
        snprintf(out, sizeof(out), "/proc/mmcl-out.tif");
    }
    expect_failure(optical_path, sar_path, out, NULL, MMCL_ERR_IO,
                   "cannot create");
    const char *kv_unknown[] = {"RESAMPLNG=near", NULL};
    expect_failure(optical_path, sar_path, test_path("bad.tif"), kv_unknown,
                   MMCL_ERR_INVALID_ARG, "unknown option 'RESAMPLNG'");
    const char *kv_co[] = {"CO=COMPRESSION=FAST", NULL};
    expect_failure(optical_path, sar_path, test_path("bad.tif"), kv_co,
                   MMCL_ERR_INVALID_ARG, "COMPRESSION");
    const char *kv_co2[] = {"CO=COMPRESS=NOPE", NULL};
    expect_failure(optical_path, sar_path, test_path("bad.tif"), kv_co2,
                   MMCL_ERR_INVALID_ARG, "invalid creation option");
    const char *kv_fmt[] = {"FORMAT=PNG", NULL};
    expect_failure(optical_path, sar_path, test_path("bad.png"), kv_fmt,
                   MMCL_ERR_UNSUPPORTED, "Float32");
}

static int calls;
static int
cancel_halfway(double complete, const char *msg, void *user)
{
    (void)msg;
    (void)user;
    calls++;
    return complete < 0.5;
}

static void
cancelled_write_leaves_no_output(void)
{
    make_pair();
    mmcl_context *ctx = mmcl_context_create();
    const char *kv[] = {"TILE=32", "THREADS=2", NULL};
    mmcl_options *o = mmcl_options_new(ctx, "align", kv);
    mmcl_options_set_progress(o, cancel_halfway, NULL);
    const char *optical[1] = {optical_path};
    const char *out = test_path("cancelled.tif");
    calls = 0;
    mmcl_status st =
        mmcl_align(ctx, optical, 1, (const char *const[]){sar_path}, 1, out, o);
    printf("  -> %s (%d progress calls)\n", mmcl_context_errmsg(ctx), calls);
    CU_ASSERT_EQUAL(st, MMCL_ERR_CANCELLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "cancelled"));
    /* At least one report below halfway, then the one that cancelled: how
     * many tiles each report covers depends on the machine's load (a busy
     * machine commits tiles in bursts), so no more is asserted. */
    CU_ASSERT_TRUE(calls >= 2);
    CU_ASSERT_FALSE(test_file_exists(out));
    CU_ASSERT_EQUAL(test_count_files_like("mmcl-tmp"), 0);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

static void
lee_filter_and_db_conversion_run_and_are_recorded(void)
{
    make_pair();
    mmcl_context *ctx = mmcl_context_create();
    const char *kv[] = {"SPECKLE=lee:5", "SAR_TRANSFORM=linear", NULL};
    const char *out = test_path("lee.tif");
    CU_ASSERT_EQUAL_FATAL(run_align(ctx, optical_path, sar_path, out, kv),
                          MMCL_OK);
    int w, h, b;
    float *px = test_read_raster(out, &w, &h, &b);
    /* dB -> linear: every valid value positive (10^(dB/10)). */
    int neg = 0, valid = 0;
    for (int i = 0; i < w * h * b; i++) {
        if (isnan(px[i]))
            continue;
        valid++;
        neg += px[i] <= 0.0f;
    }
    CU_ASSERT_TRUE(valid > 0);
    CU_ASSERT_EQUAL(neg, 0);
    free(px);
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    const char *sp = GDALGetMetadataItem(ds, "SPECKLE", "MMCL");
    CU_ASSERT_PTR_NOT_NULL(sp);
    if (sp)
        CU_ASSERT_STRING_EQUAL(sp, "lee:5");
    GDALClose(ds);
    const char *bad[] = {"SPECKLE=lee:4", NULL};
    expect_failure(optical_path, sar_path, test_path("bad.tif"), bad,
                   MMCL_ERR_INVALID_ARG, "speckle");
    mmcl_context_destroy(ctx);
}

static void
a_window_read_gives_each_output_alone_as_in_a_full_read(void)
{
    /* The pair reader with one output at a time, on a window that sticks
     * out of the grid (reflect padding) and takes in the nodata frame:
     * each output equals that of a read of all three (a modality not
     * asked for is not read). */
    const char *kv_s[] = {"SIZE=64", "SEED=5", "NODATA_FRAME=2", "SAR_HOLES=2",
                          NULL};
    const char *scene = test_make_scene("partial", kv_s);
    const char *optical[1] = {test_scene_file(scene, "optical.tif")};
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "align", NULL);
    mmcl__pair *pair = NULL;
    CU_ASSERT_EQUAL_FATAL(mmcl__pair_open(ctx, optical, 1,
                                          (const char *const[]){test_scene_file(
                                              scene, "sar.tif")},
                                          1, o, &pair),
                          MMCL_OK);
    mmcl__pair_reader *r = mmcl__pair_reader_create(ctx, pair);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    const int x = 50, y = 0, w = 14, h = 10, halo = 3;
    const size_t n = (size_t)(w + 2 * halo) * (h + 2 * halo);
    int bo = mmcl__pair_optical_bands(pair), bs = mmcl__pair_sar_bands(pair);
    float *opt = malloc(n * bo * sizeof(float));
    float *sar = malloc(n * bs * sizeof(float));
    float *opt1 = malloc(n * bo * sizeof(float));
    float *sar1 = malloc(n * bs * sizeof(float));
    uint8_t *valid = malloc(n), *valid1 = malloc(n);
    CU_ASSERT_EQUAL(mmcl__pair_read(ctx, r, x, y, w, h, halo, opt, sar, valid),
                    MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__pair_read(ctx, r, x, y, w, h, halo, opt1, NULL,
                                    NULL),
                    MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__pair_read(ctx, r, x, y, w, h, halo, NULL, sar1,
                                    NULL),
                    MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__pair_read(ctx, r, x, y, w, h, halo, NULL, NULL,
                                    valid1),
                    MMCL_OK);
    /* memcmp: NaN where invalid, the same bits either way. */
    CU_ASSERT_EQUAL(memcmp(opt, opt1, n * bo * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(sar, sar1, n * bs * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(valid, valid1, n), 0);
    size_t invalid = 0;
    for (size_t i = 0; i < n; i++)
        invalid += valid[i] != MMCL__VALID_BOTH;
    printf("  %zu of %zu window pixels not valid in both\n", invalid, n);
    free(opt);
    free(sar);
    free(opt1);
    free(sar1);
    free(valid);
    free(valid1);
    mmcl__pair_reader_destroy(r);
    mmcl__pair_close(pair);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

/* gdal_translate @p src @p dst with @p args (NULL-terminated). */
static void
translate(const char *src, const char *dst, const char *const *args)
{
    GDALDatasetH in = GDALOpen(src, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    GDALTranslateOptions *to = GDALTranslateOptionsNew((char **)args, NULL);
    GDALDatasetH out = GDALTranslate(dst, in, to, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    GDALClose(out);
    GDALTranslateOptionsFree(to);
    GDALClose(in);
}

/* Every band of @p path as float (malloc'd); *n receives the count. */
static float *
read_all(const char *path, size_t *n, int *bands)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    *bands = GDALGetRasterCount(ds);
    *n = (size_t)w * h * *bands;
    float *v = malloc(*n * sizeof(float));
    CU_ASSERT_EQUAL(GDALDatasetRasterIO(ds, GF_Read, 0, 0, w, h, v, w, h,
                                        GDT_Float32, *bands, NULL, 0, 0, 0),
                    CE_None);
    GDALClose(ds);
    return v;
}

/* Same values, NaN where NaN. */
static int
same_values(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i]))))
            return 0;
    return 1;
}

/* mmcl_align on @p n_sar SAR files; expects @p want and, on error, a
 * message holding @p msg and no output. */
static void
expect_align(const char *const *sar, size_t n_sar, const char *optical,
             const char *out, const char *const *kv, mmcl_status want,
             const char *msg)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "align", kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    mmcl_status st =
        mmcl_align(ctx, (const char *const[]){optical}, 1, sar, n_sar, out, o);
    if (st != MMCL_OK)
        printf("  -> %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL(st, want);
    if (msg)
        CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), msg));
    struct stat sb;
    if (want != MMCL_OK)
        CU_ASSERT_NOT_EQUAL(stat(out, &sb), 0);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

static void
sar_given_as_several_files_equals_the_stacked_sar(void)
{
    make_pair();
    char vv[1024], vh[1024];
    snprintf(vv, sizeof(vv), "%s", test_path("vv.tif"));
    snprintf(vh, sizeof(vh), "%s", test_path("vh.tif"));
    translate(sar_path, vv, (const char *const[]){"-b", "1", NULL});
    translate(sar_path, vh, (const char *const[]){"-b", "2", NULL});
    const char *two[2] = {vv, vh};
    /* As given, and through the preprocessed copy (SAR_TRANSFORM). */
    const char *plain[] = {NULL};
    const char *linear[] = {"SAR_TRANSFORM=linear", NULL};
    const char *const *kvs[2] = {plain, linear};
    for (int k = 0; k < 2; k++) {
        char a[1024], b[1024];
        snprintf(a, sizeof(a), "%s", test_path(k ? "two_lin.tif" : "two.tif"));
        snprintf(b, sizeof(b), "%s", test_path(k ? "one_lin.tif" : "one.tif"));
        expect_align(two, 2, optical_path, a, kvs[k], MMCL_OK, NULL);
        expect_align((const char *const[]){sar_path}, 1, optical_path, b,
                     kvs[k], MMCL_OK, NULL);
        size_t na, nb;
        int ba, bb;
        float *va = read_all(a, &na, &ba), *vb = read_all(b, &nb, &bb);
        CU_ASSERT_EQUAL(ba, 2);
        CU_ASSERT_EQUAL(na, nb);
        CU_ASSERT_TRUE(na == nb && same_values(va, vb, na));
        free(va);
        free(vb);
        /* Band names: the files' names (they have no description). */
        GDALDatasetH ds = GDALOpen(a, GA_ReadOnly);
        CU_ASSERT_STRING_EQUAL(GDALGetDescription(GDALGetRasterBand(ds, 1)),
                               "vv");
        CU_ASSERT_STRING_EQUAL(GDALGetDescription(GDALGetRasterBand(ds, 2)),
                               "vh");
        GDALClose(ds);
    }
}

static void
same_file_twice_complex_and_mixed_grids_are_refused(void)
{
    make_pair();
    const char *out = test_path("refused.tif");
    char vv[1024], vh2[1024], link[1024], cplx[1024];
    snprintf(vv, sizeof(vv), "%s", test_path("vv1.tif"));
    snprintf(vh2, sizeof(vh2), "%s", test_path("vh_crop.tif"));
    snprintf(link, sizeof(link), "%s", test_path("optical_link.tif"));
    snprintf(cplx, sizeof(cplx), "%s", test_path("complex.tif"));
    translate(sar_path, vv, (const char *const[]){"-b", "1", NULL});
    translate(sar_path, vh2,
              (const char *const[]){"-b", "2", "-srcwin", "0", "0", "100",
                                    "100", NULL});
    translate(sar_path, cplx, (const char *const[]){"-ot", "CFloat32", NULL});
    CU_ASSERT_EQUAL(symlink(optical_path, link), 0);
    /* The optical as SAR, directly and through a link. */
    expect_align((const char *const[]){optical_path}, 1, optical_path, out,
                 NULL, MMCL_ERR_INVALID_ARG, "both optical and SAR");
    expect_align((const char *const[]){link}, 1, optical_path, out, NULL,
                 MMCL_ERR_INVALID_ARG, "are the same file");
    /* One SAR file twice. */
    expect_align((const char *const[]){vv, vv}, 2, optical_path, out, NULL,
                 MMCL_ERR_INVALID_ARG, "is given twice");
    /* Complex SAR: its real part is no intensity. */
    expect_align((const char *const[]){cplx}, 1, optical_path, out, NULL,
                 MMCL_ERR_UNSUPPORTED, "is complex (CFloat32)");
    expect_align((const char *const[]){cplx}, 1, optical_path, out, NULL,
                 MMCL_ERR_UNSUPPORTED, "DERIVED_SUBDATASET:INTENSITY:");
    /* Several SAR files on different grids, or one of several bands. */
    expect_align((const char *const[]){vv, vh2}, 2, optical_path, out, NULL,
                 MMCL_ERR_UNSUPPORTED, "on different grids");
    expect_align((const char *const[]){vv, sar_path}, 2, optical_path, out,
                 NULL, MMCL_ERR_INVALID_ARG, "stacked one band each");
    expect_align((const char *const[]){sar_path}, 0, optical_path, out, NULL,
                 MMCL_ERR_INVALID_ARG, "a SAR raster are needed");
}

int
main(void)
{
    GDALAllRegister();
    static const test_case cases[] = {
        {"output_is_on_the_optical_grid_with_metadata",
         output_is_on_the_optical_grid_with_metadata},
        {"output_does_not_depend_on_tile_size_or_threads",
         output_does_not_depend_on_tile_size_or_threads},
        {"same_threads_and_tile_give_identical_files",
         same_threads_and_tile_give_identical_files},
        {"missing_and_non_raster_inputs_are_refused",
         missing_and_non_raster_inputs_are_refused},
        {"raster_without_crs_is_refused", raster_without_crs_is_refused},
        {"non_overlapping_footprints_are_refused",
         non_overlapping_footprints_are_refused},
        {"empty_sar_is_refused", empty_sar_is_refused},
        {"existing_output_is_kept_without_overwrite",
         existing_output_is_kept_without_overwrite},
        {"unwritable_folder_unknown_option_and_bad_creation_option_are_"
         "refused",
         unwritable_folder_unknown_option_and_bad_creation_option_are_refused},
        {"cancelled_write_leaves_no_output", cancelled_write_leaves_no_output},
        {"lee_filter_and_db_conversion_run_and_are_recorded",
         lee_filter_and_db_conversion_run_and_are_recorded},
        {"a_window_read_gives_each_output_alone_as_in_a_full_read",
         a_window_read_gives_each_output_alone_as_in_a_full_read},
        {"sar_given_as_several_files_equals_the_stacked_sar",
         sar_given_as_several_files_equals_the_stacked_sar},
        {"same_file_twice_complex_and_mixed_grids_are_refused",
         same_file_twice_complex_and_mixed_grids_are_refused},
        {NULL, NULL}};
    int rc = test_run_suite("align", cases);
    GDALDestroyDriverManager();
    return rc;
}
