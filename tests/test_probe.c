/* SPDX-License-Identifier: MIT */
/*
 * mmcl_probe on a synthetic scene with known truth: land-cover classes are
 * predicted well above chance from raw and aligned representations, a
 * shared factor is kept by alignment and a modality-specific one is lost
 * (the sigma-informativeness gap), shared-private models recover it, a
 * label raster on another grid is warped, label nodata is honoured, the
 * report does not depend on TILE or THREADS, and bad input is refused with
 * a message. (The check against an independent NumPy reference is
 * tests/cli/test_probe_ref.py.)
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <gdal.h>
#include <gdal_utils.h>

#include "mmcl/mmcl.h"
#include "test_util.h"

enum { SIZE = 256 };

static const char *scene_dir;
static mmcl_model *cca_model;

/* The scene: 3 land-cover classes, optical- and SAR-specific factors. */
static const char *
scene(void)
{
    if (scene_dir)
        return scene_dir;
    static char path[1024];
    snprintf(path, sizeof(path), "%s", test_path("scene"));
    const char *kv[] = {"PRESET=specific", "SIZE=256", "SEED=1", "CLASSES=3",
                        NULL};
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "synth", kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    mmcl_status st = mmcl_synth(ctx, path, o);
    if (st != MMCL_OK)
        printf("  synth failed: %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL_FATAL(st, MMCL_OK);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
    scene_dir = path;
    return scene_dir;
}

/* "<scene>/<name>" in one of 32 rotating buffers: copy it to keep it. */
static const char *
in_scene(const char *name)
{
    static char bufs[32][1100];
    static int next;
    char *b = bufs[next];
    next = (next + 1) % 32;
    snprintf(b, sizeof(bufs[0]), "%s/%s", scene(), name);
    return b;
}

static mmcl_model *
train(const char *const *kv)
{
    const char *optical[1] = {in_scene("optical.tif")};
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "train", kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    mmcl_model *model = NULL;
    mmcl_status st =
        mmcl_train(ctx, optical, 1, (const char *const[]){in_scene("sar.tif")},
                   1, o, &model);
    if (st != MMCL_OK)
        printf("  train failed: %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL(st, MMCL_OK);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
    return model;
}

static const mmcl_model *
cca(void)
{
    if (!cca_model) {
        const char *kv[] = {"OBJECTIVE=cca", "DIM=2", "PATCH=3",
                            "SAMPLES=20000", NULL};
        cca_model = train(kv);
        CU_ASSERT_PTR_NOT_NULL_FATAL(cca_model);
    }
    return cca_model;
}

/* Notes from the library's log, for the warp note. */
static char log_text[4096];

static void
keep_log(mmcl_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)user;
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof(log_text) - n, "%s\n", msg);
}

/*
 * Runs the probe; on success returns the parsed report (cJSON_Delete it),
 * else NULL with *status and the message in @p errmsg (may be NULL).
 */
static cJSON *
run_probe_ex(const mmcl_model *model, const char *labels,
             const char *const *kv, mmcl_status *status, char *errmsg,
             size_t errmsg_size)
{
    const char *optical[1] = {in_scene("optical.tif")};
    mmcl_context *ctx = mmcl_context_create();
    log_text[0] = '\0';
    mmcl_context_set_log(ctx, keep_log, NULL, MMCL_LOG_INFO);
    mmcl_options *o = mmcl_options_new(ctx, "probe", kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    char *report = NULL;
    mmcl_status st = mmcl_probe(ctx, model, optical, 1,
                                (const char *const[]){in_scene("sar.tif")}, 1,
                                labels, o, &report);
    if (status)
        *status = st;
    if (errmsg)
        snprintf(errmsg, errmsg_size, "%s", mmcl_context_errmsg(ctx));
    cJSON *r = NULL;
    if (st == MMCL_OK) {
        CU_ASSERT_PTR_NOT_NULL(report);
        r = cJSON_Parse(report);
        CU_ASSERT_PTR_NOT_NULL(r);
    } else {
        CU_ASSERT_PTR_NULL(report);
        CU_ASSERT_TRUE(mmcl_context_errmsg(ctx)[0] != '\0');
    }
    mmcl_free(report);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
    return r;
}

static cJSON *
run_probe(const mmcl_model *model, const char *labels, const char *const *kv)
{
    mmcl_status st;
    char msg[1024];
    cJSON *r = run_probe_ex(model, labels, kv, &st, msg, sizeof(msg));
    if (st != MMCL_OK)
        printf("  probe failed: %s\n", msg);
    CU_ASSERT_EQUAL(st, MMCL_OK);
    return r;
}

static double
figure(const cJSON *r, const char *rep, const char *what)
{
    const cJSON *e = cJSON_GetObjectItem(
        cJSON_GetObjectItem(r, "representations"), rep);
    const cJSON *v = cJSON_GetObjectItem(e, what);
    CU_ASSERT_TRUE(cJSON_IsNumber(v));
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static double
number(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    CU_ASSERT_TRUE(cJSON_IsNumber(v));
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void
print_report(const cJSON *r, const char *what)
{
    const cJSON *e;
    printf("  %s:", what);
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "representations"))
    {
        const cJSON *v = cJSON_GetObjectItem(e, "accuracy");
        if (!v)
            v = cJSON_GetObjectItem(e, "r2");
        printf(" %s %.3f", e->string, v ? v->valuedouble : NAN);
    }
    printf("\n");
}

/* Reads band @p band of @p path as doubles (W x H); the grid in gt/wkt. */
static double *
read_band(const char *path, int band, int *W, int *H, double gt[6],
          char *wkt, size_t wkt_size)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    *W = GDALGetRasterXSize(ds);
    *H = GDALGetRasterYSize(ds);
    GDALGetGeoTransform(ds, gt);
    snprintf(wkt, wkt_size, "%s", GDALGetProjectionRef(ds));
    double *v = malloc(sizeof(double) * (size_t)*W * *H);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(GDALRasterIO(GDALGetRasterBand(ds, band), GF_Read, 0, 0,
                                 *W, *H, v, *W, *H, GDT_Float64, 0, 0),
                    CE_None);
    GDALClose(ds);
    return v;
}

/* Writes a one-band GeoTIFF of type @p type; gt/wkt may be NULL (no
 * georeferencing); nodata set when @p has_nodata. */
static void
write_band(const char *path, const double *v, int W, int H,
           GDALDataType type, const double *gt, const char *wkt,
           int has_nodata, double nodata)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, W, H, 1,
                                 type, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    if (gt)
        GDALSetGeoTransform(ds, (double *)gt);
    if (wkt)
        GDALSetProjection(ds, wkt);
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    if (has_nodata)
        GDALSetRasterNoDataValue(b, nodata);
    CU_ASSERT_EQUAL(GDALRasterIO(b, GF_Write, 0, 0, W, H, (void *)v, W, H,
                                 GDT_Float64, 0, 0),
                    CE_None);
    GDALClose(ds);
}

/* ---- tests -------------------------------------------------------------- */

static void
classes_are_predicted_well_above_chance_from_raw_and_aligned(void)
{
    cJSON *r = run_probe(cca(), in_scene("labels.tif"), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    print_report(r, "classes");
    CU_ASSERT_STRING_EQUAL(
        cJSON_GetStringValue(cJSON_GetObjectItem(r, "task")), "classes");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(r, "classes")), 3);
    CU_ASSERT_EQUAL(number(r, "samples"), 50000);
    CU_ASSERT_EQUAL(number(r, "valid_labelled_pixels"), SIZE * SIZE);
    CU_ASSERT_EQUAL(number(r, "blocks"), 4);
    CU_ASSERT_EQUAL(number(r, "folds"), 16);
    CU_ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(r, "label_warped")));
    double chance = number(r, "chance");
    CU_ASSERT_TRUE(chance > 0.3 && chance < 0.7);
    static const char *const reps[] = {"raw_optical", "raw_sar",
                                       "aligned_optical", "aligned_sar",
                                       "joint"};
    for (int i = 0; i < 5; i++) {
        double acc = figure(r, reps[i], "accuracy");
        CU_ASSERT_TRUE(acc >= chance + 0.15);
        CU_ASSERT_DOUBLE_EQUAL(figure(r, reps[i], "error"), 1 - acc, 1e-12);
    }
    CU_ASSERT_EQUAL(figure(r, "raw_optical", "dim"), 8 * 9);
    CU_ASSERT_EQUAL(figure(r, "raw_sar", "dim"), 4 * 9);
    CU_ASSERT_EQUAL(figure(r, "aligned_optical", "dim"), 2);
    CU_ASSERT_EQUAL(figure(r, "joint", "dim"), 2);
    CU_ASSERT_PTR_NULL(
        cJSON_GetObjectItem(cJSON_GetObjectItem(r, "representations"),
                            "full"));
    /* gap = error(aligned) - error(raw). */
    const cJSON *gap = cJSON_GetObjectItem(r, "gap");
    CU_ASSERT_DOUBLE_EQUAL(number(gap, "optical"),
                           figure(r, "aligned_optical", "error") -
                               figure(r, "raw_optical", "error"),
                           1e-12);
    CU_ASSERT_DOUBLE_EQUAL(number(gap, "sar"),
                           figure(r, "aligned_sar", "error") -
                               figure(r, "raw_sar", "error"),
                           1e-12);
    cJSON_Delete(r);
}

static void
a_shared_factor_is_kept_and_a_specific_one_is_lost(void)
{
    /* shared_0 written to a one-band raster, as a user would. */
    int W, H;
    double gt[6];
    char wkt[4096];
    double *v = read_band(in_scene("truth.tif"), 1, &W, &H, gt, wkt,
                          sizeof(wkt));
    const char *target = test_path("shared_0.tif");
    write_band(target, v, W, H, GDT_Float32, gt, wkt, 0, 0);
    free(v);
    const char *kv[] = {"TASK=regression", NULL};
    cJSON *r = run_probe(cca(), target, kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    print_report(r, "shared_0");
    CU_ASSERT_TRUE(figure(r, "aligned_optical", "r2") >= 0.9);
    CU_ASSERT_TRUE(figure(r, "aligned_sar", "r2") >= 0.9);
    CU_ASSERT_TRUE(figure(r, "joint", "r2") >= 0.9);
    CU_ASSERT_TRUE(fabs(number(cJSON_GetObjectItem(r, "gap"), "optical")) <=
                   0.05);
    CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(r, "classes"));
    cJSON_Delete(r);

    /* optical_specific_0 (band 3 of truth.tif): raw optical sees it, the
     * aligned embedding does not. */
    const char *kv3[] = {"TASK=regression", "LABEL_BAND=3", NULL};
    r = run_probe(cca(), in_scene("truth.tif"), kv3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    print_report(r, "optical_specific_0");
    CU_ASSERT_TRUE(figure(r, "raw_optical", "r2") >= 0.9);
    CU_ASSERT_TRUE(figure(r, "aligned_optical", "r2") <= 0.2);
    CU_ASSERT_TRUE(figure(r, "raw_sar", "r2") <= 0.2);
    CU_ASSERT_TRUE(number(cJSON_GetObjectItem(r, "gap"), "optical") >= 0.7);
    CU_ASSERT_EQUAL(number(r, "label_band"), 3);
    cJSON_Delete(r);
}

static void
shared_private_models_recover_the_specific_factor(void)
{
    const char *kv_t[] = {"OBJECTIVE=shared-private", "DIM=2", "PATCH=3",
                          "SAMPLES=20000", "PRIVATE_DIM=2", NULL};
    mmcl_model *sp = train(kv_t);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
    const char *kv[] = {"TASK=regression", "LABEL_BAND=3", "SAMPLES=20000",
                        NULL};
    cJSON *r = run_probe(sp, in_scene("truth.tif"), kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    print_report(r, "shared-private, optical_specific_0");
    CU_ASSERT_EQUAL(figure(r, "aligned_optical", "dim"), 2);
    CU_ASSERT_EQUAL(figure(r, "joint", "dim"), 2 + 2 + 2);
    CU_ASSERT_EQUAL(figure(r, "full", "dim"), 4 + 4);
    CU_ASSERT_TRUE(figure(r, "aligned_optical", "r2") <= 0.2);
    CU_ASSERT_TRUE(figure(r, "joint", "r2") >= 0.9);
    CU_ASSERT_TRUE(figure(r, "full", "r2") >= 0.9);
    cJSON_Delete(r);
    mmcl_model_destroy(sp);
}

static void
a_label_on_another_grid_is_warped(void)
{
    /* Same CRS, a window of the grid: pixels line up, so nearest
     * neighbour gives exactly the window's labels and nothing outside. */
    GDALDatasetH src = GDALOpen(in_scene("labels.tif"), GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    const char *win_argv[] = {"-srcwin", "40", "20", "150", "170", NULL};
    GDALTranslateOptions *to = GDALTranslateOptionsNew((char **)win_argv,
                                                       NULL);
    const char *win = test_path("labels_window.tif");
    GDALDatasetH out = GDALTranslate(win, src, to, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    GDALClose(out);
    GDALTranslateOptionsFree(to);

    /* Another CRS and resolution. */
    const char *warp_argv[] = {"-t_srs", "EPSG:4326", "-r", "near", NULL};
    GDALWarpAppOptions *wo = GDALWarpAppOptionsNew((char **)warp_argv, NULL);
    const char *geo = test_path("labels_4326.tif");
    out = GDALWarp(geo, NULL, 1, &src, wo, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    GDALClose(out);
    GDALWarpAppOptionsFree(wo);
    GDALClose(src);

    const char *kv[] = {"SAMPLES=0", NULL};
    cJSON *r = run_probe(cca(), win, kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_TRUE(strstr(log_text, "warped onto the optical grid") != NULL);
    CU_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(r, "label_warped")));
    CU_ASSERT_EQUAL(number(r, "valid_labelled_pixels"), 150 * 170);
    CU_ASSERT_EQUAL(number(r, "labelled_pixels"), 150 * 170);
    cJSON_Delete(r);

    cJSON *same = run_probe(cca(), in_scene("labels.tif"), NULL);
    r = run_probe(cca(), geo, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(same);
    print_report(r, "labels on EPSG:4326");
    CU_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(r, "label_warped")));
    /* Twice resampled with nearest neighbour: nearly every pixel keeps its
     * class, so the figures barely move. */
    double n = number(r, "valid_labelled_pixels");
    CU_ASSERT_TRUE(n >= 0.97 * SIZE * SIZE && n <= SIZE * SIZE);
    static const char *const reps[] = {"raw_optical", "aligned_optical",
                                       "joint"};
    for (int i = 0; i < 3; i++)
        CU_ASSERT_TRUE(fabs(figure(r, reps[i], "accuracy") -
                            figure(same, reps[i], "accuracy")) <= 0.03);
    cJSON_Delete(r);
    cJSON_Delete(same);
}

static void
label_nodata_is_honoured(void)
{
    int W, H;
    double gt[6];
    char wkt[4096];
    double *v = read_band(in_scene("labels.tif"), 1, &W, &H, gt, wkt,
                          sizeof(wkt));
    /* A frame of -1 in an Int16 raster without a nodata tag (as
     * Sen1Floods11's LabelHand.tif): -1 is invalid for classes. */
    enum { F = 16 };
    long long inner[3] = {0, 0, 0};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double *p = &v[(size_t)y * W + x];
            if (x < F || y < F || x >= W - F || y >= H - F)
                *p = -1;
            else
                inner[(int)*p]++;
        }
    const char *framed = test_path("labels_framed.tif");
    write_band(framed, v, W, H, GDT_Int16, gt, wkt, 0, 0);
    const char *kv0[] = {"SAMPLES=0", NULL};
    cJSON *r = run_probe(cca(), framed, kv0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    long long n_inner = (long long)(W - 2 * F) * (H - 2 * F);
    CU_ASSERT_EQUAL(number(r, "valid_labelled_pixels"), n_inner);
    CU_ASSERT_EQUAL(number(r, "samples"), n_inner);
    CU_ASSERT_EQUAL(number(r, "label_nodata"), -1);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(r, "classes")), 3);
    cJSON_Delete(r);

    /* LABEL_NODATA=2: class 2 goes too. */
    const char *kv2[] = {"SAMPLES=0", "LABEL_NODATA=2", NULL};
    r = run_probe(cca(), framed, kv2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(number(r, "valid_labelled_pixels"), inner[0] + inner[1]);
    const cJSON *cls = cJSON_GetObjectItem(r, "classes");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cls), 2);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(cls, 1)->valuedouble, 1);
    cJSON_Delete(r);

    /* The band's nodata tag: class 1 as nodata. */
    const char *tagged = test_path("labels_tagged.tif");
    write_band(tagged, v, W, H, GDT_Int16, gt, wkt, 1, 1);
    r = run_probe(cca(), tagged, kv0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(number(r, "valid_labelled_pixels"), inner[0] + inner[2]);
    CU_ASSERT_EQUAL(number(r, "label_nodata"), 1);
    cJSON_Delete(r);

    /* Regression: NaN is invalid, negative values are not. */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (x < F)
                v[(size_t)y * W + x] = NAN;
    const char *reg = test_path("labels_nan.tif");
    write_band(reg, v, W, H, GDT_Float32, gt, wkt, 0, 0);
    const char *kvr[] = {"SAMPLES=0", "TASK=regression", NULL};
    r = run_probe(cca(), reg, kvr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(number(r, "valid_labelled_pixels"),
                    (long long)(W - F) * H);
    CU_ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(r, "label_nodata")));
    cJSON_Delete(r);
    free(v);
}

static void
the_report_does_not_depend_on_tile_or_threads(void)
{
    const char *kv_a[] = {"SAMPLES=5000", "SEED=3", "TILE=64", "THREADS=1",
                          NULL};
    const char *kv_b[] = {"SAMPLES=5000", "SEED=3", "TILE=256", "THREADS=3",
                          NULL};
    const char *kv_c[] = {"SAMPLES=5000", "SEED=4", NULL};
    cJSON *a = run_probe(cca(), in_scene("labels.tif"), kv_a);
    cJSON *b = run_probe(cca(), in_scene("labels.tif"), kv_b);
    cJSON *c = run_probe(cca(), in_scene("labels.tif"), kv_c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_TRUE(cJSON_Compare(a, b, 1));
    CU_ASSERT_EQUAL(number(a, "samples"), 5000);
    /* Another seed, other pixels. */
    CU_ASSERT_TRUE(figure(a, "raw_optical", "accuracy") !=
                   figure(c, "raw_optical", "accuracy"));
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
}

static int
cancel_at_half(double complete, const char *msg, void *user)
{
    (void)msg;
    (void)user;
    return complete < 0.5;
}

static void
expect_error(const mmcl_model *model, const char *labels,
             const char *const *kv, mmcl_status code, const char *phrase)
{
    mmcl_status st = MMCL_OK;
    char msg[1024] = "";
    cJSON *r = run_probe_ex(model, labels, kv, &st, msg, sizeof(msg));
    printf("  expected error: %s\n", msg);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_EQUAL(st, code);
    CU_ASSERT_TRUE(strstr(msg, phrase) != NULL);
    cJSON_Delete(r);
}

static void
bad_input_is_refused_with_a_message(void)
{
    const mmcl_model *m = cca();
    char labels[1100];
    snprintf(labels, sizeof(labels), "%s", in_scene("labels.tif"));
    mmcl_context *ctx = mmcl_context_create();
    const char *optical[1] = {in_scene("optical.tif")};
    char *report = NULL;

    /* API misuse. */
    CU_ASSERT_EQUAL(mmcl_probe(ctx, m, optical, 1,
                               (const char *const[]){in_scene("sar.tif")}, 1,
                               labels, NULL, NULL),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_TRUE(mmcl_context_errmsg(ctx)[0] != '\0');
    CU_ASSERT_EQUAL(mmcl_probe(ctx, NULL, optical, 1,
                               (const char *const[]){in_scene("sar.tif")}, 1,
                               labels, NULL, &report),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(report);
    CU_ASSERT_EQUAL(mmcl_probe(ctx, m, optical, 1,
                               (const char *const[]){in_scene("sar.tif")}, 1,
                               NULL, NULL, &report),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_TRUE(strstr(mmcl_context_errmsg(ctx), "label") != NULL);
    mmcl_options *eo = mmcl_options_new(ctx, "embed", NULL);
    CU_ASSERT_EQUAL(mmcl_probe(ctx, m, optical, 1,
                               (const char *const[]){in_scene("sar.tif")}, 1,
                               labels, eo, &report),
                    MMCL_ERR_INVALID_ARG);
    mmcl_options_free(eo);
    const char *one_block[] = {"BLOCKS=1", NULL};
    CU_ASSERT_PTR_NULL(mmcl_options_new(ctx, "probe", one_block));
    const char *bad_task[] = {"TASK=segmentation", NULL};
    CU_ASSERT_PTR_NULL(mmcl_options_new(ctx, "probe", bad_task));

    /* Cancellation. */
    mmcl_options *co = mmcl_options_new(ctx, "probe", NULL);
    mmcl_options_set_progress(co, cancel_at_half, NULL);
    CU_ASSERT_EQUAL(mmcl_probe(ctx, m, optical, 1,
                               (const char *const[]){in_scene("sar.tif")}, 1,
                               labels, co, &report),
                    MMCL_ERR_CANCELLED);
    CU_ASSERT_PTR_NULL(report);
    mmcl_options_free(co);

    /* Model and rasters that do not match: truth.tif has 7 bands, the
     * model expects 8 optical bands. */
    const char *wrong[1] = {in_scene("truth.tif")};
    CU_ASSERT_EQUAL(mmcl_probe(ctx, m, wrong, 1,
                               (const char *const[]){in_scene("sar.tif")}, 1,
                               labels, NULL, &report),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_TRUE(strstr(mmcl_context_errmsg(ctx), "bands") != NULL);
    mmcl_context_destroy(ctx);

    expect_error(m, test_path("no_such_labels.tif"), NULL, MMCL_ERR_IO,
                 "does not exist");
    const char *band9[] = {"LABEL_BAND=9", NULL};
    expect_error(m, labels, band9, MMCL_ERR_INVALID_ARG, "band 9");
    /* Continuous values probed as classes. */
    expect_error(m, in_scene("truth.tif"), NULL, MMCL_ERR_INVALID_ARG,
                 "integer class values");

    int W, H;
    double gt[6];
    char wkt[4096];
    double *v = read_band(labels, 1, &W, &H, gt, wkt, sizeof(wkt));
    double *flat = calloc((size_t)W * H, sizeof(double));
    CU_ASSERT_PTR_NOT_NULL_FATAL(flat);
    /* One class only. */
    const char *one = test_path("labels_one_class.tif");
    write_band(one, flat, W, H, GDT_Byte, gt, wkt, 0, 0);
    expect_error(m, one, NULL, MMCL_ERR_INVALID_ARG, "at least two classes");
    /* A constant target. */
    const char *kvr[] = {"TASK=regression", NULL};
    expect_error(m, one, kvr, MMCL_ERR_INVALID_ARG, "constant");
    /* No valid label at all. */
    for (size_t i = 0; i < (size_t)W * H; i++)
        flat[i] = -1;
    const char *none = test_path("labels_none.tif");
    write_band(none, flat, W, H, GDT_Int16, gt, wkt, 0, 0);
    expect_error(m, none, NULL, MMCL_ERR_INVALID_ARG, "valid label");
    /* Labels only in one block of the 4 x 4 grid: no cross-validation. */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            flat[(size_t)y * W + x] =
                x < W / 4 && y < H / 4 ? v[(size_t)y * W + x] : -1;
    const char *corner = test_path("labels_corner.tif");
    write_band(corner, flat, W, H, GDT_Int16, gt, wkt, 0, 0);
    expect_error(m, corner, NULL, MMCL_ERR_INVALID_ARG, "one of the 4 x 4");
    /* A label raster far away from the scene. */
    double far[6] = {gt[0] + 1e6, gt[1], gt[2], gt[3] + 1e6, gt[4], gt[5]};
    const char *away = test_path("labels_away.tif");
    write_band(away, v, W, H, GDT_Byte, far, wkt, 0, 0);
    expect_error(m, away, NULL, MMCL_ERR_INVALID_ARG, "does not overlap");
    /* No georeferencing and another size: cannot be placed. */
    const char *plain = test_path("labels_plain.tif");
    write_band(plain, v, W / 2, H / 2, GDT_Byte, NULL, NULL, 0, 0);
    expect_error(m, plain, NULL, MMCL_ERR_INVALID_ARG, "cannot be placed");
    free(flat);
    free(v);
}

int
main(void)
{
    GDALAllRegister();
    static const test_case cases[] = {
        {"classes_are_predicted_well_above_chance_from_raw_and_aligned",
         classes_are_predicted_well_above_chance_from_raw_and_aligned},
        {"a_shared_factor_is_kept_and_a_specific_one_is_lost",
         a_shared_factor_is_kept_and_a_specific_one_is_lost},
        {"shared_private_models_recover_the_specific_factor",
         shared_private_models_recover_the_specific_factor},
        {"a_label_on_another_grid_is_warped",
         a_label_on_another_grid_is_warped},
        {"label_nodata_is_honoured", label_nodata_is_honoured},
        {"the_report_does_not_depend_on_tile_or_threads",
         the_report_does_not_depend_on_tile_or_threads},
        {"bad_input_is_refused_with_a_message",
         bad_input_is_refused_with_a_message},
        {NULL, NULL},
    };
    int rc = test_run_suite("probe", cases);
    mmcl_model_destroy(cca_model);
    GDALDestroyDriverManager();
    return rc;
}
