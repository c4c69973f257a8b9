/* SPDX-License-Identifier: MIT */
/*
 * mmcl_train on synthetic scenes with known truth: the canonical
 * correlations count the shared factors, the paper's finding (alignment
 * keeps only what both modalities share) holds under a linear probe on
 * held-out spatial blocks, clip is deterministic, and bad input is refused.
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <gdal.h>

#include "encoder_internal.h"
#include "linalg.h"
#include "mmcl/mmcl.h"
#include "options_internal.h"
#include "pair_internal.h"
#include "ridge.h"
#include "sample_internal.h"
#include "test_scene.h"
#include "test_util.h"

/* Writes a synthetic scene into test_path(dir) with the given options. */


static cJSON *
figures(const mmcl_model *model)
{
    cJSON *meta = cJSON_Parse(mmcl_model_metadata_json(model));
    cJSON *fig = cJSON_DetachItemFromObject(meta, "figures");
    cJSON_Delete(meta);
    return fig;
}

static int
scene_int(const char *scene, const char *key)
{
    char p[1100];
    snprintf(p, sizeof(p), "%s/synth.json", scene);
    FILE *f = fopen(p, "rb");
    if (!f)
        return -1;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    const cJSON *v = cJSON_GetObjectItem(j, key);
    int r = cJSON_IsNumber(v) ? v->valueint : -1;
    cJSON_Delete(j);
    return r;
}

static void
canonical_correlations_count_the_shared_factors(void)
{
    const char *kv_s[] = {"PRESET=specific", "SIZE=192", "SEED=11",
                          "SHARED=3", NULL};
    const char *scene = test_make_scene("count", kv_s);
    int shared = scene_int(scene, "shared");
    CU_ASSERT_EQUAL(shared, 3);
    /* Per pixel (patch 1): the cross-covariance has rank = shared. */
    const char *kv[] = {"OBJECTIVE=cca", "DIM=3", "PATCH=1", "SAMPLES=20000",
                        NULL};
    mmcl_model *model = test_train_model(scene, kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(model);
    cJSON *fig = figures(model);
    const cJSON *rho = cJSON_GetObjectItem(fig, "canonical_correlations");
    int n = cJSON_GetArraySize(rho), strong = 0, weak_ok = 1;
    printf("  rho:");
    for (int i = 0; i < n; i++) {
        double r = cJSON_GetArrayItem(rho, i)->valuedouble;
        printf(" %.3f", r);
        if (r > 0.5)
            strong++;
        else if (r >= 0.2)
            weak_ok = 0;
    }
    printf("\n");
    CU_ASSERT_EQUAL(strong, shared);
    CU_ASSERT_TRUE(weak_ok);
    cJSON_Delete(fig);
    mmcl_model_destroy(model);
}

/*
 * Linear probe of truth band @p band from the optical representation of a
 * model, ridge on 32x32-pixel blocks in a checkerboard: fit on the black
 * blocks, R^2 on the white ones.
 */
static double
probe_r2(const char *scene, const mmcl_model *model, int use_unimodal,
         const char *band_name)
{
    char opt[1100], sar[1100], truth[1100];
    snprintf(opt, sizeof(opt), "%s/optical.tif", scene);
    snprintf(sar, sizeof(sar), "%s/sar.tif", scene);
    snprintf(truth, sizeof(truth), "%s/truth.tif", scene);
    mmcl_context *ctx = mmcl_context_create();
    mmcl__encoder *enc = NULL;
    CU_ASSERT_EQUAL_FATAL(mmcl__encoder_create(ctx, model, &enc), MMCL_OK);
    const char *optical[1] = {opt};
    mmcl__pair *pair = NULL;
    mmcl_options *defaults = mmcl_options_new(ctx, "train", NULL);
    CU_ASSERT_EQUAL_FATAL(mmcl__pair_open(ctx, optical, 1,
                                          (const char *const[]){sar}, 1,
                                          defaults, &pair),
                          MMCL_OK);
    mmcl_options_free(defaults);
    mmcl__sample *s = NULL;
    /* A different seed from training: fresh pixels. */
    const char *const labels[2] = {"optical", "SAR"};
    CU_ASSERT_EQUAL_FATAL(mmcl__sample_draw(ctx, pair, labels, enc->P, 8000, 0,
                                            4242, 2, NULL, NULL, 0, 1, &s),
                          MMCL_OK);
    /* Standardize with the model's statistics, not the sample's. */
    const mmcl__modality *mod = &enc->mod[MMCL__OPTICAL];
    int PP = enc->P * enc->P;
    for (int n = 0; n < s->N; n++)
        for (int b = 0; b < mod->B; b++)
            for (int q = 0; q < PP; q++) {
                float *v = &s->X1[(size_t)n * s->d1 + b * PP + q];
                double raw = *v * s->std1[b] + s->mean1[b];
                *v = (float)((raw - mod->mean[b]) / mod->std[b]);
            }
    int K = mod->K;
    float *H = malloc((size_t)s->N * K * sizeof(float));
    mmcl__encoder_work *w = mmcl__encoder_work_create(ctx, enc);
    if (use_unimodal) {
        CU_ASSERT_EQUAL(mmcl__linear_apply(ctx, w, H, &mod->unimodal, s->X1,
                                           s->N),
                        MMCL_OK);
    } else {
        CU_ASSERT_EQUAL(mmcl__encoder_embed(ctx, enc, w, MMCL__OPTICAL, s->X1,
                                            s->N, H),
                        MMCL_OK);
    }
    mmcl__encoder_work_free(w);
    /* Target at the sample positions. */
    GDALDatasetH tds = GDALOpen(truth, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tds);
    int tb = 0;
    for (int b = 1; b <= GDALGetRasterCount(tds); b++)
        if (strcmp(GDALGetDescription(GDALGetRasterBand(tds, b)),
                   band_name) == 0)
            tb = b;
    CU_ASSERT_FATAL(tb > 0);
    int W = GDALGetRasterXSize(tds), Ht = GDALGetRasterYSize(tds);
    float *tv = malloc((size_t)W * Ht * sizeof(float));
    CU_ASSERT_EQUAL(GDALRasterIO(GDALGetRasterBand(tds, tb), GF_Read, 0, 0, W,
                                 Ht, tv, W, Ht, GDT_Float32, 0, 0),
                    CE_None);
    GDALClose(tds);

    /* Split, fit on the training blocks, evaluate on the others. */
    float *Xtr = malloc((size_t)s->N * K * sizeof(float));
    float *ytr = malloc((size_t)s->N * sizeof(float));
    int ntr = 0;
    for (int n = 0; n < s->N; n++) {
        int blk = (s->px[n] / 32 + s->py[n] / 32) % 2;
        if (blk == 0) {
            memcpy(Xtr + (size_t)ntr * K, H + (size_t)n * K, K * sizeof(float));
            ytr[ntr++] = tv[(size_t)s->py[n] * W + s->px[n]];
        }
    }
    double *Cxx = calloc((size_t)K * K, 8), *Cyy = calloc(1, 8),
           *Cxy = calloc((size_t)K, 8), *mx = calloc((size_t)K, 8),
           *my = calloc(1, 8), *work = malloc(mmcl__moments_work_size(ntr, K, 1) * 8);
    double *B = malloc((size_t)K * 8), b0;
    mmcl__moments_accumulate(Cxx, Cyy, Cxy, mx, my, work, Xtr, ytr, ntr, K,
                             1);
    mmcl__sym_from_upper(Cxx, K);
    mmcl__cov_from_moments(Cxx, Cxx, mx, mx, ntr, K, K);
    mmcl__cov_from_moments(Cxy, Cxy, mx, my, ntr, K, 1);
    for (int j = 0; j < K; j++)
        mx[j] /= ntr;
    my[0] /= ntr;
    CU_ASSERT_EQUAL(mmcl__ridge_fit_centred(ctx, B, &b0, Cxx, Cxy, mx, my,
                                            1e-3, K, 1),
                    MMCL_OK);
    double sse = 0, sum = 0, sum2 = 0;
    int nte = 0;
    for (int n = 0; n < s->N; n++) {
        if ((s->px[n] / 32 + s->py[n] / 32) % 2 == 0)
            continue;
        double y = tv[(size_t)s->py[n] * W + s->px[n]], pred = b0;
        for (int j = 0; j < K; j++)
            pred += B[j] * H[(size_t)n * K + j];
        sse += (y - pred) * (y - pred);
        sum += y;
        sum2 += y * y;
        nte++;
    }
    double sst = sum2 - sum * sum / nte;
    double r2 = sst > 0 ? 1.0 - sse / sst : 0.0;
    free(Cxx);
    free(Cyy);
    free(Cxy);
    free(mx);
    free(my);
    free(work);
    free(B);
    free(Xtr);
    free(ytr);
    free(tv);
    free(H);
    mmcl__sample_free(s);
    mmcl__pair_close(pair);
    mmcl__encoder_free(enc);
    mmcl_context_destroy(ctx);
    return r2;
}

static const char *specific_scene;

static const char *
get_specific_scene(void)
{
    if (!specific_scene) {
        const char *kv[] = {"PRESET=specific", "SIZE=256", "SEED=5",
                            "SHARED=2", "OPTICAL_SPECIFIC=1",
                            "SAR_SPECIFIC=1", NULL};
        specific_scene = test_make_scene("paper", kv);
    }
    return specific_scene;
}

static void
report(const char *what, double shared0, double shared1, double spec)
{
    printf("  %-16s R2 shared_0 %.3f, shared_1 %.3f, optical_specific_0 "
           "%.3f\n",
           what, shared0, shared1, spec);
}

static void
aligned_embeddings_keep_the_shared_and_lose_the_specific(void)
{
    const char *scene = get_specific_scene();
    const char *kv_cca[] = {"OBJECTIVE=cca", "DIM=2", "PATCH=3",
                            "SAMPLES=30000", NULL};
    const char *kv_clip[] = {"OBJECTIVE=clip", "DIM=2", "PATCH=3",
                             "SAMPLES=30000", "EPOCHS=10", "BATCH=256",
                             "LR=0.01", "THREADS=1", NULL};
    const char *const *kvs[2] = {kv_cca, kv_clip};
    const char *names[2] = {"cca", "clip"};
    for (int i = 0; i < 2; i++) {
        mmcl_model *m = test_train_model(scene, kvs[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        double s0 = probe_r2(scene, m, 0, "shared_0");
        double s1 = probe_r2(scene, m, 0, "shared_1");
        double sp = probe_r2(scene, m, 0, "optical_specific_0");
        report(names[i], s0, s1, sp);
        CU_ASSERT_TRUE(s0 >= 0.8);
        CU_ASSERT_TRUE(s1 >= 0.8);
        CU_ASSERT_TRUE(sp <= 0.2);
        mmcl_model_destroy(m);
    }
}

static void
pca_keeps_the_specific_and_shared_private_keeps_both(void)
{
    const char *scene = get_specific_scene();
    const char *kv_pca[] = {"OBJECTIVE=pca", "DIM=2", "PATCH=3",
                            "SAMPLES=30000", NULL};
    mmcl_model *m = test_train_model(scene, kv_pca);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    double sp = probe_r2(scene, m, 0, "optical_specific_0");
    report("pca", probe_r2(scene, m, 0, "shared_0"),
           probe_r2(scene, m, 0, "shared_1"), sp);
    CU_ASSERT_TRUE(sp >= 0.8);
    mmcl_model_destroy(m);

    const char *kv_sp[] = {"OBJECTIVE=shared-private", "DIM=2", "PATCH=3",
                           "SAMPLES=30000", "PRIVATE_DIM=2", NULL};
    m = test_train_model(scene, kv_sp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    double s0 = probe_r2(scene, m, 0, "shared_0");
    double s1 = probe_r2(scene, m, 0, "shared_1");
    sp = probe_r2(scene, m, 0, "optical_specific_0");
    report("shared-private", s0, s1, sp);
    CU_ASSERT_TRUE(s0 >= 0.8);
    CU_ASSERT_TRUE(s1 >= 0.8);
    CU_ASSERT_TRUE(sp >= 0.8);
    mmcl_model_destroy(m);
}

static void
on_a_redundant_scene_aligned_and_unimodal_are_equally_informative(void)
{
    const char *kv_s[] = {"PRESET=redundant", "SIZE=256", "SEED=6",
                          "SHARED=2", NULL};
    const char *scene = test_make_scene("redundant", kv_s);
    const char *kv[] = {"OBJECTIVE=cca", "DIM=2", "PATCH=3", "SAMPLES=30000",
                        NULL};
    mmcl_model *m = test_train_model(scene, kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (int f = 0; f < 2; f++) {
        const char *band = f ? "shared_1" : "shared_0";
        double al = probe_r2(scene, m, 0, band);
        double uni = probe_r2(scene, m, 1, band);
        printf("  %s: aligned %.3f, unimodal PCA %.3f\n", band, al, uni);
        CU_ASSERT_TRUE(fabs(al - uni) <= 0.05);
    }
    mmcl_model_destroy(m);
}

static unsigned char *
saved_bytes(const mmcl_model *m, const char *name, size_t *n)
{
    mmcl_context *ctx = mmcl_context_create();
    const char *p = test_path(name);
    CU_ASSERT_EQUAL(mmcl_model_save(ctx, m, p, 1), MMCL_OK);
    mmcl_context_destroy(ctx);
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    CU_ASSERT_EQUAL(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void
clip_lowers_the_loss_and_is_deterministic_for_a_seed(void)
{
    const char *scene = get_specific_scene();
    const char *kv[] = {"OBJECTIVE=clip", "DIM=4", "PATCH=3",
                        "ENCODER=mlp:32", "SAMPLES=8000", "EPOCHS=4",
                        "BATCH=128", "THREADS=1", "SEED=9", NULL};
    mmcl_model *a = test_train_model(scene, kv);
    mmcl_model *b = test_train_model(scene, kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    cJSON *fig = figures(a);
    const cJSON *curve = cJSON_GetObjectItem(fig, "loss_curve");
    double first = cJSON_GetArrayItem(curve, 0)->valuedouble;
    double last = cJSON_GetArrayItem(curve, 3)->valuedouble;
    printf("  loss %.3f -> %.3f (log B = %.3f)\n", first, last, log(128.0));
    CU_ASSERT_TRUE(first < log(128.0) + 1.0);
    CU_ASSERT_TRUE(last < first - 0.3);
    cJSON_Delete(fig);
    size_t na, nb;
    unsigned char *ba = saved_bytes(a, "clip_a.mmcl", &na);
    unsigned char *bb = saved_bytes(b, "clip_b.mmcl", &nb);
    CU_ASSERT_EQUAL(na, nb);
    CU_ASSERT_TRUE(na == nb && memcmp(ba, bb, na) == 0);
    free(ba);
    free(bb);
    mmcl_model_destroy(a);
    mmcl_model_destroy(b);
}

static void
expect_train_failure(const char *scene, const char *sar_override,
                     const char *const *kv, const char *needle)
{
    char opt[1100], sar[1100];
    snprintf(opt, sizeof(opt), "%s/optical.tif", scene);
    snprintf(sar, sizeof(sar), "%s/sar.tif", scene);
    const char *optical[1] = {opt};
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "train", kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    mmcl_model *model = (mmcl_model *)1;
    mmcl_status st = mmcl_train(
        ctx, optical, 1,
        (const char *const[]){sar_override ? sar_override : sar}, 1, o, &model);
    printf("  -> %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_NOT_EQUAL(st, MMCL_OK);
    CU_ASSERT_PTR_NULL(model);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), needle));
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

static void
bad_training_input_is_refused_with_a_clear_message(void)
{
    const char *kv_s[] = {"PRESET=specific", "SIZE=64", "SEED=2", NULL};
    const char *scene = test_make_scene("small", kv_s);
    /* 4 SAR bands x 1x1 patch = 4 values < dim 6. */
    const char *kv_dim[] = {"DIM=6", "PATCH=1", NULL};
    expect_train_failure(scene, NULL, kv_dim, "larger than what a modality");
    const char *kv_patch2[] = {"PATCH=63", "SAMPLES=100", NULL};
    const char *kv_s2[] = {"PRESET=redundant", "SIZE=32", "SEED=2", NULL};
    const char *tiny = test_make_scene("tiny", kv_s2);
    expect_train_failure(tiny, NULL, kv_patch2, "larger than the 32 x 32");
    const char *kv_even[] = {"PATCH=4", NULL};
    expect_train_failure(scene, NULL, kv_even, "must be odd");
    const char *kv_many[] = {"SAMPLES=5000", NULL};
    expect_train_failure(scene, NULL, kv_many, "fewer than the 5000 samples");
    const char *kv_enc[] = {"ENCODER=mlp:", "OBJECTIVE=clip", NULL};
    expect_train_failure(scene, NULL, kv_enc, "invalid encoder");
    const char *kv_temp[] = {"TEMPERATURE=hot", "OBJECTIVE=clip",
                             "SAMPLES=100", NULL};
    expect_train_failure(scene, NULL, kv_temp, "invalid temperature");

    /* NaN-only SAR: nothing valid to learn from. */
    char sar[1100], nan_sar[1100];
    snprintf(sar, sizeof(sar), "%s/sar.tif", scene);
    snprintf(nan_sar, sizeof(nan_sar), "%s/nan_sar.tif", scene);
    GDALDatasetH src = GDALOpen(sar, GA_ReadOnly);
    GDALDatasetH dst = GDALCreateCopy(GDALGetDriverByName("GTiff"), nan_sar,
                                      src, FALSE, NULL, NULL, NULL);
    GDALClose(src);
    int w = GDALGetRasterXSize(dst), h = GDALGetRasterYSize(dst);
    float *nan = malloc((size_t)w * h * sizeof(float));
    for (int i = 0; i < w * h; i++)
        nan[i] = NAN;
    for (int b = 1; b <= GDALGetRasterCount(dst); b++)
        CU_ASSERT_EQUAL(GDALRasterIO(GDALGetRasterBand(dst, b), GF_Write, 0, 0,
                                     w, h, nan, w, h, GDT_Float32, 0, 0),
                        CE_None);
    free(nan);
    GDALClose(dst);
    const char *kv_ok[] = {"SAMPLES=100", NULL};
    expect_train_failure(scene, nan_sar, kv_ok, "no valid pixel");

    /* A constant SAR (every band): nothing to learn, whatever the
     * objective would make of it. */
    char const_sar[1100];
    snprintf(const_sar, sizeof(const_sar), "%s/const_sar.tif", scene);
    src = GDALOpen(sar, GA_ReadOnly);
    dst = GDALCreateCopy(GDALGetDriverByName("GTiff"), const_sar, src, FALSE,
                         NULL, NULL, NULL);
    GDALClose(src);
    for (int b = 1; b <= GDALGetRasterCount(dst); b++)
        CU_ASSERT_EQUAL(GDALFillRaster(GDALGetRasterBand(dst, b), -12.5, 0),
                        CE_None);
    GDALClose(dst);
    expect_train_failure(scene, const_sar, kv_ok,
                         "every band is constant over the");
}

static void
constant_band_trains_without_nan(void)
{
    const char *kv_s[] = {"PRESET=specific", "SIZE=64", "SEED=3", NULL};
    const char *scene = test_make_scene("const", kv_s);
    char opt[1100];
    snprintf(opt, sizeof(opt), "%s/optical.tif", scene);
    GDALDatasetH ds = GDALOpen(opt, GA_Update);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    float *c = malloc((size_t)w * h * sizeof(float));
    for (int i = 0; i < w * h; i++)
        c[i] = 0.25f;
    CU_ASSERT_EQUAL(GDALRasterIO(GDALGetRasterBand(ds, 2), GF_Write, 0, 0, w,
                                 h, c, w, h, GDT_Float32, 0, 0),
                    CE_None);
    free(c);
    GDALClose(ds);
    const char *objectives[] = {"OBJECTIVE=cca", "OBJECTIVE=pca",
                                "OBJECTIVE=shared-private", "OBJECTIVE=clip"};
    for (int i = 0; i < 4; i++) {
        const char *kv[] = {objectives[i], "DIM=2", "SAMPLES=2000",
                            "EPOCHS=2", "BATCH=64", NULL};
        mmcl_model *m = test_train_model(scene, kv);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        size_t bad = 0;
        for (size_t t = 0; t < mmcl_model_tensor_count(m); t++) {
            int ndim;
            const int64_t *shape;
            const float *v = mmcl_model_tensor(m, mmcl_model_tensor_name(m, t),
                                               &ndim, &shape);
            size_t n = 1;
            for (int d = 0; d < ndim; d++)
                n *= (size_t)shape[d];
            for (size_t j = 0; j < n; j++)
                bad += !isfinite(v[j]);
        }
        CU_ASSERT_EQUAL(bad, 0);
        cJSON *meta = cJSON_Parse(mmcl_model_metadata_json(m));
        const cJSON *cb = cJSON_GetObjectItem(
            cJSON_GetObjectItem(meta, "optical"), "constant_bands");
        CU_ASSERT_EQUAL(cb ? cb->valueint : -1, 1);
        cJSON_Delete(meta);
        mmcl_model_destroy(m);
    }
}

int
main(void)
{
    GDALAllRegister();
    static const test_case cases[] = {
        {"canonical_correlations_count_the_shared_factors",
         canonical_correlations_count_the_shared_factors},
        {"aligned_embeddings_keep_the_shared_and_lose_the_specific",
         aligned_embeddings_keep_the_shared_and_lose_the_specific},
        {"pca_keeps_the_specific_and_shared_private_keeps_both",
         pca_keeps_the_specific_and_shared_private_keeps_both},
        {"on_a_redundant_scene_aligned_and_unimodal_are_equally_informative",
         on_a_redundant_scene_aligned_and_unimodal_are_equally_informative},
        {"clip_lowers_the_loss_and_is_deterministic_for_a_seed",
         clip_lowers_the_loss_and_is_deterministic_for_a_seed},
        {"bad_training_input_is_refused_with_a_clear_message",
         bad_training_input_is_refused_with_a_clear_message},
        {"constant_band_trains_without_nan", constant_band_trains_without_nan},
        {NULL, NULL}};
    int rc = test_run_suite("train", cases);
    GDALDestroyDriverManager();
    return rc;
}
