/* SPDX-License-Identifier: MIT */
/*
 * mmcl_synth: determinism, the layout of the outputs, the regions where the
 * specific factors are on, all-or-nothing outputs, and a cheap check that the
 * scene follows the model (design sections 2 and 3.7): the optical/SAR
 * cross-covariance has rank SHARED.
 */
#define _DEFAULT_SOURCE     /* strdup */
#define _LARGEFILE64_SOURCE /* cpl_vsi.h uses struct stat64 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <lapacke.h>
#include <ogr_srs_api.h>

#include "mmcl/synth.h"
#include "test_util.h"

/* Runs mmcl_synth on @p dir with the NULL-terminated @p kv; returns the
 * status and copies the message into @p msg (may be NULL). */
static mmcl_status
run_synth_cb(const char *dir, const char *const *kv, mmcl_progress_fn fn,
             void *user, char *msg, size_t msg_size)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "synth", kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    if (fn)
        mmcl_options_set_progress(o, fn, user);
    mmcl_status st = mmcl_synth(ctx, dir, o);
    if (st != MMCL_OK)
        printf("  mmcl_synth: %s\n", mmcl_context_errmsg(ctx));
    if (msg)
        snprintf(msg, msg_size, "%s", mmcl_context_errmsg(ctx));
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
    return st;
}

static mmcl_status
run_synth(const char *dir, const char *const *kv)
{
    return run_synth_cb(dir, kv, NULL, NULL, NULL, 0);
}

static char *
join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Whole file in memory (free it); *size receives its length. */
static unsigned char *
file_read(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = 0;
    fclose(fp);
    *size = (size_t)n;
    return buf;
}

static int
files_equal(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    unsigned char *da = file_read(a, &na), *db = file_read(b, &nb);
    int eq = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return eq;
}

static cJSON *
json_load(const char *dir)
{
    char *p = join(dir, "synth.json");
    size_t n = 0;
    unsigned char *text = file_read(p, &n);
    free(p);
    cJSON *j = text ? cJSON_Parse((const char *)text) : NULL;
    free(text);
    return j;
}

/* One band of dir/name as float (free it); *w, *h receive the size. */
static float *
band_read(const char *dir, const char *name, int band, int *w, int *h)
{
    char *p = join(dir, name);
    GDALDatasetH ds = GDALOpen(p, GA_ReadOnly);
    free(p);
    if (!ds)
        return NULL;
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    float *buf = malloc((size_t)*w * *h * sizeof(float));
    if (GDALRasterIO(GDALGetRasterBand(ds, band), GF_Read, 0, 0, *w, *h, buf,
                     *w, *h, GDT_Float32, 0, 0) != CE_None) {
        free(buf);
        buf = NULL;
    }
    GDALClose(ds);
    return buf;
}

/* Number of entries in @p dir other than "." and "..", -1 if absent. */
static int
dir_count(const char *dir)
{
    VSIStatBufL sb;
    if (VSIStatL(dir, &sb) != 0)
        return -1;
    char **list = VSIReadDir(dir);
    int n = 0;
    for (int i = 0; list && list[i]; i++)
        if (strcmp(list[i], ".") && strcmp(list[i], ".."))
            n++;
    CSLDestroy(list);
    return n;
}

static const char *const all_files[] = {
    "optical.tif", "sar.tif", "labels.tif", "truth.tif", "synth.json", NULL};

static void
same_seed_writes_identical_files(void)
{
    const char *kv1[] = {"SIZE=300",       "SEED=7",    "SAR_HOLES=3",
                         "NODATA_FRAME=4", "THREADS=1", NULL};
    const char *kv2[] = {"SIZE=300",       "SEED=7",    "SAR_HOLES=3",
                         "NODATA_FRAME=4", "THREADS=3", NULL};
    char *a = strdup(test_path("same_a")), *b = strdup(test_path("same_b"));
    CU_ASSERT_EQUAL_FATAL(run_synth(a, kv1), MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(run_synth(b, kv2), MMCL_OK);
    for (int i = 0; all_files[i]; i++) {
        char *pa = join(a, all_files[i]), *pb = join(b, all_files[i]);
        int eq = files_equal(pa, pb);
        if (!eq)
            printf("  %s differs\n", all_files[i]);
        CU_ASSERT_TRUE(eq);
        free(pa);
        free(pb);
    }
    CU_ASSERT_EQUAL(dir_count(a), 5);
    free(a);
    free(b);
}

static void
different_seed_writes_different_data(void)
{
    const char *kv1[] = {"SIZE=64", "SEED=1", NULL};
    const char *kv2[] = {"SIZE=64", "SEED=2", NULL};
    char *a = strdup(test_path("seed_a")), *b = strdup(test_path("seed_b"));
    CU_ASSERT_EQUAL_FATAL(run_synth(a, kv1), MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(run_synth(b, kv2), MMCL_OK);
    const char *names[] = {"optical.tif", "sar.tif", "truth.tif"};
    for (int f = 0; f < 3; f++) {
        int w, h, w2, h2;
        float *x = band_read(a, names[f], 1, &w, &h);
        float *y = band_read(b, names[f], 1, &w2, &h2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x);
        CU_ASSERT_PTR_NOT_NULL_FATAL(y);
        size_t n_diff = 0;
        for (size_t i = 0; i < (size_t)w * h; i++)
            n_diff += x[i] != y[i];
        CU_ASSERT_TRUE(n_diff > (size_t)w * h / 2);
        free(x);
        free(y);
    }
    free(a);
    free(b);
}

static int
truth_band(cJSON *j, const char *name)
{
    cJSON *tb = cJSON_GetObjectItemCaseSensitive(j, "truth_bands");
    cJSON *b = cJSON_GetObjectItemCaseSensitive(tb, name);
    return cJSON_IsNumber(b) ? b->valueint : -1;
}

static void
redundant_preset_has_no_specific_energy(void)
{
    const char *kv[] = {"SIZE=96", "PRESET=redundant", NULL};
    char *d = strdup(test_path("redundant"));
    CU_ASSERT_EQUAL_FATAL(run_synth(d, kv), MMCL_OK);
    cJSON *j = json_load(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(
        cJSON_GetObjectItemCaseSensitive(j, "optical_specific")->valueint, 0);
    CU_ASSERT_EQUAL(
        cJSON_GetObjectItemCaseSensitive(j, "sar_specific")->valueint, 0);
    /* shared_0, shared_1, then the two energies */
    CU_ASSERT_EQUAL(truth_band(j, "optical_specific_energy"), 3);
    CU_ASSERT_EQUAL(truth_band(j, "sar_specific_energy"), 4);
    CU_ASSERT_EQUAL(truth_band(j, "optical_specific_0"), -1);
    for (int band = 3; band <= 4; band++) {
        int w, h;
        float *e = band_read(d, "truth.tif", band, &w, &h);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        size_t nonzero = 0;
        for (size_t i = 0; i < (size_t)w * h; i++)
            nonzero += e[i] != 0.0f;
        CU_ASSERT_EQUAL(nonzero, 0);
        free(e);
    }
    cJSON_Delete(j);
    free(d);
}

/* 1 when pixel (col, row) is inside one of the discs of the JSON array. */
static int
in_json_discs(cJSON *discs, int col, int row)
{
    cJSON *disc;
    cJSON_ArrayForEach(disc, discs)
    {
        double x = cJSON_GetObjectItemCaseSensitive(disc, "x")->valuedouble;
        double y = cJSON_GetObjectItemCaseSensitive(disc, "y")->valuedouble;
        double r = cJSON_GetObjectItemCaseSensitive(disc, "r")->valuedouble;
        double dx = col + 0.5 - x, dy = row + 0.5 - y;
        if (dx * dx + dy * dy <= r * r)
            return 1;
    }
    return 0;
}

static void
check_energy_in_region(const char *dir, cJSON *j, const char *band_name,
                       const char *region, const char *factor0)
{
    cJSON *discs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "regions"), region);
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(discs), 2);
    int w, h;
    float *e = band_read(dir, "truth.tif", truth_band(j, band_name), &w, &h);
    float *z = band_read(dir, "truth.tif", truth_band(j, factor0), &w, &h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    size_t inside = 0, inside_on = 0, outside_on = 0;
    double sum_in = 0.0;
    for (int r = 0; r < h; r++) {
        for (int c = 0; c < w; c++) {
            size_t i = (size_t)r * w + c;
            if (in_json_discs(discs, c, r)) {
                inside++;
                inside_on += e[i] > 0.0f;
                sum_in += e[i];
            } else {
                outside_on += e[i] != 0.0f || z[i] != 0.0f;
            }
        }
    }
    printf("  %s: %zu pixels inside, %zu of them on, mean energy %.3f; %zu "
           "on outside\n",
           band_name, inside, inside_on, inside ? sum_in / inside : 0.0,
           outside_on);
    CU_ASSERT_TRUE(inside > (size_t)w * h / 50);
    CU_ASSERT_TRUE(inside_on > inside * 99 / 100);
    CU_ASSERT_EQUAL(outside_on, 0);
    /* variance gain^2 per band of the specific part inside its region */
    double g2 = pow(cJSON_GetObjectItem(j, "specific_gain")->valuedouble, 2);
    CU_ASSERT_TRUE(sum_in / inside > 0.7 * g2 && sum_in / inside < 1.3 * g2);
    free(e);
    free(z);
}

static void
specific_energy_is_on_only_inside_the_declared_regions(void)
{
    const char *kv[] = {"SIZE=200", "SEED=11", "PRESET=specific",
                        "NODATA_FRAME=6", NULL};
    char *d = strdup(test_path("specific"));
    CU_ASSERT_EQUAL_FATAL(run_synth(d, kv), MMCL_OK);
    cJSON *j = json_load(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(truth_band(j, "shared_0"), 1);
    CU_ASSERT_EQUAL(truth_band(j, "optical_specific_0"), 3);
    CU_ASSERT_EQUAL(truth_band(j, "sar_specific_0"), 5);
    CU_ASSERT_EQUAL(truth_band(j, "optical_specific_energy"), 6);
    CU_ASSERT_EQUAL(truth_band(j, "sar_specific_energy"), 7);
    check_energy_in_region(d, j, "optical_specific_energy", "optical_specific",
                           "optical_specific_0");
    check_energy_in_region(d, j, "sar_specific_energy", "sar_specific",
                           "sar_specific_0");
    cJSON_Delete(j);
    free(d);
}

static void
check_grid(const char *path, int w, int h, int bands, const double gt[6],
           const char *auth, const char *first_band, const char *product)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_EQUAL(GDALGetRasterXSize(ds), w);
    CU_ASSERT_EQUAL(GDALGetRasterYSize(ds), h);
    CU_ASSERT_EQUAL(GDALGetRasterCount(ds), bands);
    double g[6];
    CU_ASSERT_EQUAL(GDALGetGeoTransform(ds, g), CE_None);
    for (int i = 0; gt && i < 6; i++)
        CU_ASSERT_DOUBLE_EQUAL(g[i], gt[i], 1e-9);
    OGRSpatialReferenceH srs = OSRNewSpatialReference(GDALGetProjectionRef(ds));
    CU_ASSERT_PTR_NOT_NULL_FATAL(srs);
    const char *code = OSRGetAuthorityCode(srs, NULL);
    CU_ASSERT_PTR_NOT_NULL(code);
    if (code)
        CU_ASSERT_STRING_EQUAL(code, auth);
    OSRDestroySpatialReference(srs);
    CU_ASSERT_STRING_EQUAL(GDALGetDescription(GDALGetRasterBand(ds, 1)),
                           first_band);
    const char *p = GDALGetMetadataItem(ds, "PRODUCT", "MMCL");
    CU_ASSERT_PTR_NOT_NULL(p);
    if (p)
        CU_ASSERT_STRING_EQUAL(p, product);
    CU_ASSERT_PTR_NOT_NULL(GDALGetMetadataItem(ds, "SEED", "MMCL"));
    GDALClose(ds);
}

static void
outputs_have_the_asked_sizes_bands_and_grid(void)
{
    const char *kv[] = {
        "SIZE=80",  "PIXEL_SIZE=20",      "OPTICAL_BANDS=6", "SAR_BANDS=3",
        "SHARED=2", "OPTICAL_SPECIFIC=1", "SAR_SPECIFIC=1",  NULL};
    char *d = strdup(test_path("grid"));
    CU_ASSERT_EQUAL_FATAL(run_synth(d, kv), MMCL_OK);
    double gt[6] = {500000.0, 20.0, 0.0, 4800000.0, 0.0, -20.0};
    char *p = join(d, "optical.tif");
    check_grid(p, 80, 80, 6, gt, "32631", "B1", "synthetic_optical");
    free(p);
    p = join(d, "sar.tif");
    check_grid(p, 80, 80, 3, gt, "32631", "VV", "synthetic_sar");
    GDALDatasetH ds = GDALOpen(p, GA_ReadOnly);
    CU_ASSERT_STRING_EQUAL(GDALGetDescription(GDALGetRasterBand(ds, 2)), "VH");
    CU_ASSERT_STRING_EQUAL(GDALGetDescription(GDALGetRasterBand(ds, 3)), "C3");
    GDALClose(ds);
    free(p);
    p = join(d, "labels.tif");
    check_grid(p, 80, 80, 1, gt, "32631", "class", "synthetic_labels");
    free(p);
    p = join(d, "truth.tif");
    check_grid(p, 80, 80, 2 + 1 + 1 + 2, gt, "32631", "shared_0",
               "synthetic_truth");
    free(p);
    cJSON *j = json_load(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    const char *keys[] = {
        "preset",        "seed",      "size",        "pixel_size",
        "optical_bands", "sar_bands", "shared",      "optical_specific",
        "sar_specific",  "noise",     "classes",     "mixing",
        "regions",       "files",     "truth_bands", "optical",
        "sar",           NULL};
    for (int i = 0; keys[i]; i++)
        CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(j, keys[i]));
    cJSON *a1c = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "mixing"), "A1c");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(a1c), 6);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetArrayItem(a1c, 0)), 2);
    cJSON_Delete(j);

    /* Labels: classes 0..CLASSES-1, all present. */
    int w, h;
    float *lab = band_read(d, "labels.tif", 1, &w, &h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lab);
    int seen[256] = {0};
    for (size_t i = 0; i < (size_t)w * h; i++)
        seen[(int)lab[i]]++;
    int n_classes = 0;
    for (int c = 0; c < 256; c++)
        n_classes += seen[c] > 0;
    CU_ASSERT_TRUE(n_classes >= 3 && n_classes <= 5);
    for (int c = 5; c < 256; c++)
        CU_ASSERT_EQUAL(seen[c], 0);
    free(lab);
    free(d);
}

static void
sar_is_warped_to_the_asked_crs_and_resolution(void)
{
    const char *kv[] = {"SIZE=128", "SAR_SRS=EPSG:4326", "SAR_RES=0.0001",
                        "SAR_HOLES=4", NULL};
    char *d = strdup(test_path("warped"));
    CU_ASSERT_EQUAL_FATAL(run_synth(d, kv), MMCL_OK);
    char *p = join(d, "sar.tif");
    GDALDatasetH ds = GDALOpen(p, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    double g[6];
    CU_ASSERT_EQUAL(GDALGetGeoTransform(ds, g), CE_None);
    CU_ASSERT_DOUBLE_EQUAL(g[1], 0.0001, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(g[5], -0.0001, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(g[2], 0.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(g[4], 0.0, 0);
    /* about 3 degrees East, 43.3 North */
    CU_ASSERT_TRUE(g[0] > 2.9 && g[0] < 3.1);
    CU_ASSERT_TRUE(g[3] > 43.2 && g[3] < 43.5);
    OGRSpatialReferenceH srs = OSRNewSpatialReference(GDALGetProjectionRef(ds));
    CU_ASSERT_PTR_NOT_NULL_FATAL(srs);
    const char *code = OSRGetAuthorityCode(srs, NULL);
    CU_ASSERT_PTR_NOT_NULL(code);
    if (code)
        CU_ASSERT_STRING_EQUAL(code, "4326");
    OSRDestroySpatialReference(srs);
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    /* 1280 m: about 0.0158 degrees of longitude, 0.0115 of latitude */
    printf("  warped SAR: %d x %d\n", w, h);
    CU_ASSERT_TRUE(w > 150 && w < 175);
    CU_ASSERT_TRUE(h > 110 && h < 125);
    CU_ASSERT_EQUAL(GDALGetRasterCount(ds), 4);
    float *buf = malloc((size_t)w * h * sizeof(float));
    CU_ASSERT_EQUAL(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, w, h,
                                 buf, w, h, GDT_Float32, 0, 0),
                    CE_None);
    size_t valid = 0;
    for (size_t i = 0; i < (size_t)w * h; i++)
        valid += !isnan(buf[i]);
    /* the rotated footprint covers most, not all, of the box */
    CU_ASSERT_TRUE(valid > (size_t)w * h / 2 && valid < (size_t)w * h);
    free(buf);
    GDALClose(ds);
    free(p);
    /* The optical stays on UTM 31N. */
    p = join(d, "optical.tif");
    check_grid(p, 128, 128, 8, NULL, "32631", "B1", "synthetic_optical");
    free(p);
    CU_ASSERT_EQUAL(dir_count(d), 5); /* no temporary left */
    free(d);
}

static void
nodata_frame_is_nan_in_the_optical_and_255_in_the_labels(void)
{
    const char *kv[] = {"SIZE=64", "NODATA_FRAME=5", NULL};
    char *d = strdup(test_path("frame"));
    CU_ASSERT_EQUAL_FATAL(run_synth(d, kv), MMCL_OK);
    int w, h;
    float *x = band_read(d, "optical.tif", 8, &w, &h);
    float *lab = band_read(d, "labels.tif", 1, &w, &h);
    float *sar = band_read(d, "sar.tif", 1, &w, &h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lab);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sar);
    size_t bad = 0;
    for (int r = 0; r < h; r++) {
        for (int c = 0; c < w; c++) {
            size_t i = (size_t)r * w + c;
            int in_frame = c < 5 || r < 5 || c >= w - 5 || r >= h - 5;
            if (in_frame)
                bad += !isnan(x[i]) || lab[i] != 255.0f;
            else
                bad += !isfinite(x[i]) || lab[i] == 255.0f;
            bad += !isfinite(sar[i]); /* no frame on the SAR */
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(x);
    free(lab);
    free(sar);
    free(d);
}

static size_t
count_nan(const char *dir, const char *name, int band)
{
    int w, h;
    float *x = band_read(dir, name, band, &w, &h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    size_t n = 0;
    for (size_t i = 0; i < (size_t)w * h; i++)
        n += isnan(x[i]);
    free(x);
    return n;
}

static void
sar_holes_are_nan(void)
{
    const char *kv[] = {"SIZE=128", "SAR_HOLES=6", NULL};
    const char *kv0[] = {"SIZE=128", NULL};
    char *d = strdup(test_path("holes")), *d0 = strdup(test_path("noholes"));
    CU_ASSERT_EQUAL_FATAL(run_synth(d, kv), MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(run_synth(d0, kv0), MMCL_OK);
    size_t n = count_nan(d, "sar.tif", 1);
    /* 6 discs of radius 3-10 px, possibly cut by the edges */
    printf("  %zu NaN SAR pixels\n", n);
    CU_ASSERT_TRUE(n > 20 && n < 6 * 330);
    CU_ASSERT_EQUAL(count_nan(d, "sar.tif", 4), n);
    CU_ASSERT_EQUAL(count_nan(d0, "sar.tif", 1), 0);
    CU_ASSERT_EQUAL(count_nan(d, "optical.tif", 1), 0);
    /* holes change the SAR only */
    char *a = join(d, "optical.tif"), *b = join(d0, "optical.tif");
    CU_ASSERT_TRUE(files_equal(a, b));
    free(a);
    free(b);
    free(d);
    free(d0);
}

static void
existing_output_is_refused_without_overwrite(void)
{
    char *d = strdup(test_path("exists"));
    CU_ASSERT_EQUAL_FATAL(VSIMkdir(d, 0755), 0);
    char *p = join(d, "truth.tif");
    FILE *fp = fopen(p, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs("not a raster\n", fp);
    fclose(fp);
    const char *kv[] = {"SIZE=64", NULL};
    char msg[512];
    CU_ASSERT_EQUAL(run_synth_cb(d, kv, NULL, NULL, msg, sizeof(msg)),
                    MMCL_ERR_EXISTS);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "truth.tif"));
    size_t n = 0;
    unsigned char *text = file_read(p, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_STRING_EQUAL((const char *)text, "not a raster\n");
    free(text);
    CU_ASSERT_EQUAL(dir_count(d), 1);

    /* The same for synth.json. */
    VSIUnlink(p);
    char *pj = join(d, "synth.json");
    fp = fopen(pj, "wb");
    fputs("{}\n", fp);
    fclose(fp);
    CU_ASSERT_EQUAL(run_synth(d, kv), MMCL_ERR_EXISTS);
    CU_ASSERT_EQUAL(dir_count(d), 1);

    /* OVERWRITE does not replace a JSON file of another kind either. */
    const char *kvo[] = {"SIZE=64", "OVERWRITE=YES", NULL};
    CU_ASSERT_EQUAL(run_synth(d, kvo), MMCL_ERR_EXISTS);
    CU_ASSERT_EQUAL(dir_count(d), 1);
    /* It replaces a scene of an earlier run. */
    VSIUnlink(pj);
    CU_ASSERT_EQUAL(run_synth(d, kv), MMCL_OK);
    CU_ASSERT_EQUAL(run_synth(d, kv), MMCL_ERR_EXISTS);
    CU_ASSERT_EQUAL(run_synth(d, kvo), MMCL_OK);
    CU_ASSERT_EQUAL(dir_count(d), 5);
    cJSON *j = json_load(d);
    CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(j, "mixing"));
    cJSON_Delete(j);
    free(pj);
    free(p);
    free(d);
}

typedef struct cancel_at {
    double threshold; /* cancel at the first call with complete >= it */
    int calls;
} cancel_at;

static int
cancel_progress(double complete, const char *msg, void *user)
{
    cancel_at *c = user;
    c->calls++;
    return complete < c->threshold;
}

static void
cancelling_leaves_no_output(void)
{
    /* Early, in the middle of the tiles, while warping, and at the end. */
    const double thresholds[] = {0.0, 0.3, 0.8, 1.0};
    for (int warp = 0; warp < 2; warp++) {
        for (int i = 0; i < 4; i++) {
            char name[32];
            snprintf(name, sizeof(name), "cancel_%d_%d", warp, i);
            char *d = strdup(test_path(name));
            const char *kv[] = {"SIZE=600", "THREADS=2",
                                warp ? "SAR_SRS=EPSG:4326" : NULL, NULL};
            cancel_at c = {thresholds[i], 0};
            CU_ASSERT_EQUAL(run_synth_cb(d, kv, cancel_progress, &c, NULL, 0),
                            MMCL_ERR_CANCELLED);
            CU_ASSERT_TRUE(c.calls > 0);
            /* The folder was made by the call: it is gone again. */
            CU_ASSERT_EQUAL(dir_count(d), -1);
            free(d);
        }
    }
    /* In an existing folder, the folder stays, empty. */
    char *d = strdup(test_path("cancel_existing"));
    CU_ASSERT_EQUAL_FATAL(VSIMkdir(d, 0755), 0);
    const char *kv[] = {"SIZE=300", NULL};
    cancel_at c = {0.5, 0};
    CU_ASSERT_EQUAL(run_synth_cb(d, kv, cancel_progress, &c, NULL, 0),
                    MMCL_ERR_CANCELLED);
    CU_ASSERT_EQUAL(dir_count(d), 0);
    free(d);
}

static void
bad_arguments_fail_before_writing_anything(void)
{
    char *d = strdup(test_path("bad"));
    const char *kv[] = {"SIZE=64", "SAR_SRS=EPSG:999999", NULL};
    CU_ASSERT_EQUAL(run_synth(d, kv), MMCL_ERR_INVALID_ARG);
    const char *kv2[] = {"SIZE=64", "SAR_SRS=EPSG:4326", "SAR_RES=10", NULL};
    CU_ASSERT_EQUAL(run_synth(d, kv2), MMCL_ERR_INVALID_ARG);
    const char *kv3[] = {"SIZE=64", "NODATA_FRAME=30", NULL};
    CU_ASSERT_EQUAL(run_synth(d, kv3), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(dir_count(d), -1);
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL(mmcl_synth(ctx, NULL, NULL), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_TRUE(strlen(mmcl_context_errmsg(ctx)) > 0);
    mmcl_options *o = mmcl_options_new(ctx, "align", NULL);
    CU_ASSERT_EQUAL(mmcl_synth(ctx, d, o), MMCL_ERR_INVALID_ARG);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
    free(d);
}

/* Singular values (descending) of the (B1, B2) sample cross-covariance of
 * the standardized optical and SAR values over the pixels valid in both. */
static void
cross_covariance_singular_values(const char *dir, int B1, int B2, double *sv)
{
    cJSON *j = json_load(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    cJSON *jo = cJSON_GetObjectItemCaseSensitive(j, "optical");
    cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "sar");
    int w = 0, h = 0;
    float **x = calloc((size_t)(B1 + B2), sizeof(float *));
    for (int b = 0; b < B1 + B2; b++) {
        cJSON *o = b < B1 ? jo : js;
        int k = b < B1 ? b : b - B1;
        x[b] =
            band_read(dir, b < B1 ? "optical.tif" : "sar.tif", k + 1, &w, &h);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x[b]);
        double off =
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "offset"), k)
                ->valuedouble;
        double sc =
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "scale"), k)
                ->valuedouble;
        for (size_t i = 0; i < (size_t)w * h; i++)
            x[b][i] = (float)((x[b][i] - off) / sc);
    }
    size_t n = (size_t)w * h;
    double *mean = calloc((size_t)(B1 + B2), sizeof(double));
    for (int b = 0; b < B1 + B2; b++) {
        for (size_t i = 0; i < n; i++)
            mean[b] += x[b][i];
        mean[b] /= (double)n;
    }
    double *C = calloc((size_t)B1 * B2, sizeof(double));
    for (int a = 0; a < B1; a++)
        for (int b = 0; b < B2; b++) {
            double s = 0.0;
            for (size_t i = 0; i < n; i++)
                s += (x[a][i] - mean[a]) * (x[B1 + b][i] - mean[B1 + b]);
            C[(size_t)a * B2 + b] = s / (double)n;
        }
    double superb[64];
    lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', B1, B2, C, B2,
                                     sv, NULL, 1, NULL, 1, superb);
    CU_ASSERT_EQUAL(info, 0);
    for (int b = 0; b < B1 + B2; b++)
        free(x[b]);
    free(x);
    free(mean);
    free(C);
    cJSON_Delete(j);
}

static void
cross_covariance_has_rank_shared(void)
{
    const char *presets[] = {"PRESET=specific", "PRESET=redundant"};
    for (int p = 0; p < 2; p++) {
        const char *kv[] = {"SIZE=256", "SEED=5", presets[p], NULL};
        char name[32];
        snprintf(name, sizeof(name), "rank_%d", p);
        char *d = strdup(test_path(name));
        CU_ASSERT_EQUAL_FATAL(run_synth(d, kv), MMCL_OK);
        double sv[4];
        cross_covariance_singular_values(d, 8, 4, sv);
        printf("  %s: singular values %.4g %.4g %.4g %.4g\n", presets[p], sv[0],
               sv[1], sv[2], sv[3]);
        CU_ASSERT_TRUE(sv[1] > 0.1 * sv[0]);  /* SHARED = 2 strong */
        CU_ASSERT_TRUE(sv[2] < 0.01 * sv[0]); /* and nothing else */
        free(d);
    }
}

static void
shared_factors_vary_slowly_at_the_patch_scale(void)
{
    const char *kv[] = {"SIZE=256", "SEED=9", NULL};
    char *d = strdup(test_path("smooth"));
    CU_ASSERT_EQUAL_FATAL(run_synth(d, kv), MMCL_OK);
    for (int band = 1; band <= 2; band++) {
        int w, h;
        float *z = band_read(d, "truth.tif", band, &w, &h);
        CU_ASSERT_PTR_NOT_NULL_FATAL(z);
        double s = 0.0, s2 = 0.0, dd = 0.0;
        size_t n = (size_t)w * h, nd = 0;
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++) {
                double v = z[(size_t)r * w + c];
                s += v;
                s2 += v * v;
                if (c + 1 < w) {
                    double e = z[(size_t)r * w + c + 1] - v;
                    dd += e * e;
                    nd++;
                }
            }
        double mean = s / n, var = s2 / n - mean * mean;
        double step = sqrt(dd / nd);
        printf("  shared_%d: mean %.3g, variance %.4f, rms 1-px step %.3f\n",
               band - 1, mean, var, step);
        CU_ASSERT_DOUBLE_EQUAL(mean, 0.0, 1e-3);
        CU_ASSERT_DOUBLE_EQUAL(var, 1.0, 1e-3);
        CU_ASSERT_TRUE(step < 0.15);
        free(z);
    }
    free(d);
}

int
main(void)
{
    GDALAllRegister();
    static const test_case cases[] = {
        {"same_seed_writes_identical_files", same_seed_writes_identical_files},
        {"different_seed_writes_different_data",
         different_seed_writes_different_data},
        {"redundant_preset_has_no_specific_energy",
         redundant_preset_has_no_specific_energy},
        {"specific_energy_is_on_only_inside_the_declared_regions",
         specific_energy_is_on_only_inside_the_declared_regions},
        {"outputs_have_the_asked_sizes_bands_and_grid",
         outputs_have_the_asked_sizes_bands_and_grid},
        {"sar_is_warped_to_the_asked_crs_and_resolution",
         sar_is_warped_to_the_asked_crs_and_resolution},
        {"nodata_frame_is_nan_in_the_optical_and_255_in_the_labels",
         nodata_frame_is_nan_in_the_optical_and_255_in_the_labels},
        {"sar_holes_are_nan", sar_holes_are_nan},
        {"existing_output_is_refused_without_overwrite",
         existing_output_is_refused_without_overwrite},
        {"cancelling_leaves_no_output", cancelling_leaves_no_output},
        {"bad_arguments_fail_before_writing_anything",
         bad_arguments_fail_before_writing_anything},
        {"cross_covariance_has_rank_shared", cross_covariance_has_rank_shared},
        {"shared_factors_vary_slowly_at_the_patch_scale",
         shared_factors_vary_slowly_at_the_patch_scale},
        {NULL, NULL}};
    return test_run_suite("synth", cases);
}
