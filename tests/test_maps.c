/* SPDX-License-Identifier: MIT */
/*
 * mmcl_embed and mmcl_infoloss: seamless and deterministic maps, exact
 * georeferencing and nodata, and the oracle of design section 3.7: the
 * information-loss map lights up where the modality-specific factors are.
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cpl_string.h>
#include <gdal.h>

#include "mmcl/mmcl.h"
#include "test_scene.h"
#include "test_util.h"




/* Runs embed (infoloss = 0) or infoloss (1); returns the status. */
static mmcl_status
run_map(int infoloss, const mmcl_model *model, const char *scene,
        const char *out, const char *const *kv, char *msg, size_t msg_size)
{
    const char *optical[1] = {test_scene_file(scene, "optical.tif")};
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, infoloss ? "infoloss" : "embed",
                                       kv);
    mmcl_status st = mmcl_context_errcode(ctx);
    if (o) {
        st = infoloss
                 ? mmcl_infoloss(
                       ctx, model, optical, 1,
                       (const char *const[]){test_scene_file(scene, "sar.tif")},
                       1, out, o, NULL)
                 : mmcl_embed(
                       ctx, model, optical, 1,
                       (const char *const[]){test_scene_file(scene, "sar.tif")},
                       1, out, o);
    }
    if (msg)
        snprintf(msg, msg_size, "%s", mmcl_context_errmsg(ctx));
    if (st != MMCL_OK && !msg)
        printf("  map failed: %s\n", mmcl_context_errmsg(ctx));
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
    return st;
}


/* The band of @p path whose description is @p name (1-based), or 0. */
static int
band_named(const char *path, const char *name)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    int found = 0;
    for (int b = 1; ds && b <= GDALGetRasterCount(ds); b++)
        if (strcmp(GDALGetDescription(GDALGetRasterBand(ds, b)), name) == 0)
            found = b;
    if (ds)
        GDALClose(ds);
    return found;
}

static int
same_pixels(const char *a, const char *b)
{
    int w1, h1, n1, w2, h2, n2;
    float *x = test_read_raster(a, &w1, &h1, &n1);
    float *y = test_read_raster(b, &w2, &h2, &n2);
    int same = x && y && w1 == w2 && h1 == h2 && n1 == n2 &&
               memcmp(x, y, (size_t)w1 * h1 * n1 * sizeof(float)) == 0;
    if (x && y && !same && w1 == w2 && h1 == h2 && n1 == n2) {
        double maxd = 0;
        for (size_t i = 0; i < (size_t)w1 * h1 * n1; i++)
            if (isfinite(x[i]) && isfinite(y[i]) && fabs(x[i] - y[i]) > maxd)
                maxd = fabs(x[i] - y[i]);
        printf("  %s vs %s differ: max abs diff %.3g\n", a, b, maxd);
    }
    free(x);
    free(y);
    return same;
}

/* Embed and infoloss of @p scene with @p model under each of the three
 * option sets @p runs: the maps of the last two equal the first's, byte
 * for byte. @p tag names the files. */
static void
check_maps_equal_across(const mmcl_model *m, const char *scene,
                        const char *tag, const char *const *runs[3])
{
    for (int infoloss = 0; infoloss < 2; infoloss++) {
        char paths[3][1100];
        for (int r = 0; r < 3; r++) {
            char name[64];
            snprintf(name, sizeof(name), "%s_%s%d.tif", tag,
                     infoloss ? "loss" : "emb", r);
            snprintf(paths[r], sizeof(paths[r]), "%s", test_path(name));
            CU_ASSERT_EQUAL(run_map(infoloss, m, scene, paths[r], runs[r],
                                    NULL, 0),
                            MMCL_OK);
        }
        CU_ASSERT_TRUE(same_pixels(paths[0], paths[1]));
        CU_ASSERT_TRUE(same_pixels(paths[0], paths[2]));
    }
}

static void
maps_do_not_depend_on_tile_size_or_threads(void)
{
    const char *kv_s[] = {"SIZE=200", "SEED=4", NULL};
    const char *scene = test_make_scene("seam", kv_s);
    const char *kv_t[] = {"OBJECTIVE=clip", "DIM=3", "ENCODER=mlp:16",
                          "SAMPLES=4000", "EPOCHS=2", "BATCH=256", NULL};
    mmcl_model *m = test_train_model(scene, kv_t);
    const char *a[] = {"TILE=64", "THREADS=1", NULL};
    const char *b[] = {"TILE=512", "THREADS=2", NULL};
    const char *c[] = {"TILE=48", "THREADS=2", NULL};
    const char *const *runs[3] = {a, b, c};
    check_maps_equal_across(m, scene, "seam", runs);
    mmcl_model_destroy(m);
}

static void
maps_with_a_warped_sar_and_a_wide_halo_do_not_depend_on_tiles(void)
{
    /* The tile reader keeps the bottom rows of each window for the top
     * halo of the tile below: with a SAR on another CRS (warped window by
     * window), nodata and holes, and a 2-pixel halo on 16-pixel tiles,
     * the maps must equal those of one window over the whole scene. */
    const char *kv_s[] = {"SIZE=150", "SEED=8", "SAR_SRS=EPSG:4326",
                          "NODATA_FRAME=2", "SAR_HOLES=4", NULL};
    const char *scene = test_make_scene("warped", kv_s);
    const char *kv_t[] = {"OBJECTIVE=cca", "DIM=2", "PATCH=5", "SAMPLES=3000",
                          NULL};
    mmcl_model *m = test_train_model(scene, kv_t);
    const char *one[] = {"TILE=512", "THREADS=1", NULL};
    const char *tiny[] = {"TILE=16", "THREADS=2", NULL};
    const char *odd[] = {"TILE=23", "THREADS=3", NULL};
    const char *const *runs[3] = {one, tiny, odd};
    check_maps_equal_across(m, scene, "warped", runs);
    mmcl_model_destroy(m);
}

/* The MMCL metadata item @p key of @p path (a copy, or NULL). */
static char *
mmcl_item(const char *path, const char *key)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    const char *v = ds ? GDALGetMetadataItem(ds, key, "MMCL") : NULL;
    char *copy = v ? strdup(v) : NULL;
    if (ds)
        GDALClose(ds);
    return copy;
}

static void
maps_do_not_depend_on_the_block_cache_the_output_layout_or_tiny_tiles(void)
{
    /* The shared reader with a block cache too small to hold a tile's
     * input blocks; tiles of 16 pixels with more workers than cores (the
     * commit thread and its slots); pixel interleaving and blocks that
     * are not the tile (the writer's path through the block cache, with
     * flushes); all against the default run. */
    const char *kv_s[] = {"SIZE=120", "SEED=6", "NODATA_FRAME=3",
                          "SAR_HOLES=3", NULL};
    const char *scene = test_make_scene("cache", kv_s);
    const char *kv_t[] = {"OBJECTIVE=clip", "DIM=3", "ENCODER=mlp:16",
                          "SAMPLES=3000", "EPOCHS=1", "BATCH=256", NULL};
    mmcl_model *m = test_train_model(scene, kv_t);
    const char *ref[] = {NULL};
    const char *tiny[] = {"TILE=16", "THREADS=3", NULL};
    const char *pixel[] = {"TILE=48", "THREADS=2", "CO=INTERLEAVE=PIXEL",
                           NULL};
    const char *blocks[] = {"TILE=48", "THREADS=2", "CO=BLOCKXSIZE=32",
                            "CO=BLOCKYSIZE=32", NULL};
    const char *const *runs[] = {ref, tiny, pixel, blocks};
    GIntBig cache = GDALGetCacheMax64();
    for (int infoloss = 0; infoloss < 2; infoloss++) {
        char paths[4][1100];
        for (int r = 0; r < 4; r++) {
            char name[64];
            snprintf(name, sizeof(name), "%s_cache%d.tif",
                     infoloss ? "l" : "e", r);
            snprintf(paths[r], sizeof(paths[r]), "%s", test_path(name));
            /* Runs after the first: a 64 kB block cache. */
            GDALSetCacheMax64(r == 0 ? cache : 64 * 1024);
            CU_ASSERT_EQUAL(run_map(infoloss, m, scene, paths[r], runs[r],
                                    NULL, 0),
                            MMCL_OK);
            GDALSetCacheMax64(cache);
            if (r == 0)
                continue;
            CU_ASSERT_TRUE(same_pixels(paths[0], paths[r]));
            if (infoloss) {
                /* The global figures, merged in tile order. */
                char *a = mmcl_item(paths[0], "R2_ALIGNED_OPTICAL");
                char *b = mmcl_item(paths[r], "R2_ALIGNED_OPTICAL");
                CU_ASSERT_TRUE(a && b && strcmp(a, b) == 0);
                free(a);
                free(b);
            }
        }
    }
    mmcl_model_destroy(m);
}

static int
cancel_after(double complete, const char *msg, void *user)
{
    int *calls = user;
    (void)complete;
    (void)msg;
    return ++*calls < 4;
}

static void
a_cancelled_map_stops_and_leaves_no_output(void)
{
    const char *kv_s[] = {"SIZE=160", "SEED=2", NULL};
    const char *scene = test_make_scene("cancel", kv_s);
    const char *kv_t[] = {"OBJECTIVE=cca", "DIM=2", "SAMPLES=2000", NULL};
    mmcl_model *m = test_train_model(scene, kv_t);
    const char *optical[1] = {test_scene_file(scene, "optical.tif")};
    for (int threads = 1; threads <= 2; threads++) {
        char kv_threads[32];
        snprintf(kv_threads, sizeof(kv_threads), "THREADS=%d", threads);
        const char *kv[] = {"TILE=16", kv_threads, NULL};
        mmcl_context *ctx = mmcl_context_create();
        mmcl_options *o = mmcl_options_new(ctx, "embed", kv);
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        int calls = 0;
        mmcl_options_set_progress(o, cancel_after, &calls);
        const char *out = test_path("cancelled.tif");
        CU_ASSERT_EQUAL(
            mmcl_embed(ctx, m, optical, 1,
                       (const char *const[]){test_scene_file(scene, "sar.tif")},
                       1, out, o),
            MMCL_ERR_CANCELLED);
        printf("  -> %s\n", mmcl_context_errmsg(ctx));
        CU_ASSERT_FALSE(test_file_exists(out));
        mmcl_options_free(o);
        mmcl_context_destroy(ctx);
    }
    mmcl_model_destroy(m);
}

/* A copy of @p src tiled in 16 x 16 DEFLATE blocks with the block that
 * holds pixel (96, 96) overwritten by garbage: it fails to decode. */
static const char *
copy_with_a_corrupt_block(const char *src, const char *name)
{
    const char *dst = test_path(name);
    GDALDatasetH in = GDALOpen(src, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    char **co = NULL;
    co = CSLSetNameValue(co, "TILED", "YES");
    co = CSLSetNameValue(co, "BLOCKXSIZE", "16");
    co = CSLSetNameValue(co, "BLOCKYSIZE", "16");
    co = CSLSetNameValue(co, "COMPRESS", "DEFLATE");
    GDALDatasetH out = GDALCreateCopy(GDALGetDriverByName("GTiff"), dst, in,
                                      FALSE, co, NULL, NULL);
    CSLDestroy(co);
    GDALClose(in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    GDALClose(out);
    out = GDALOpen(dst, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    const char *off = GDALGetMetadataItem(GDALGetRasterBand(out, 1),
                                          "BLOCK_OFFSET_6_6", "TIFF");
    const char *size = GDALGetMetadataItem(GDALGetRasterBand(out, 1),
                                           "BLOCK_SIZE_6_6", "TIFF");
    CU_ASSERT_FATAL(off && size);
    long at = atol(off), n = atol(size);
    GDALClose(out);
    FILE *f = fopen(dst, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fseek(f, at, SEEK_SET), 0);
    for (long i = 0; i < n; i++)
        fputc(0xA5 ^ (int)(i * 7), f);
    fclose(f);
    return dst;
}

static void
a_read_error_mid_map_stops_and_leaves_no_output(void)
{
    /* The tile reader reads ahead of the workers: an input block that
     * fails to decode halfway through must stop every worker (none may
     * wait for a window that will not come) with GDAL's message. */
    const char *kv_s[] = {"SIZE=160", "SEED=3", NULL};
    const char *scene = test_make_scene("readerr", kv_s);
    const char *kv_t[] = {"OBJECTIVE=cca", "DIM=2", "SAMPLES=2000", NULL};
    mmcl_model *m = test_train_model(scene, kv_t);
    const char *bad = copy_with_a_corrupt_block(
        test_scene_file(scene, "optical.tif"), "corrupt_optical.tif");
    char bad_path[4096];
    snprintf(bad_path, sizeof(bad_path), "%s", bad);
    const char *optical[1] = {bad_path};
    for (int infoloss = 0; infoloss <= 1; infoloss++)
        for (int threads = 1; threads <= 3; threads++) {
            char kv_threads[32];
            snprintf(kv_threads, sizeof(kv_threads), "THREADS=%d", threads);
            const char *kv[] = {"TILE=16", kv_threads, NULL};
            mmcl_context *ctx = mmcl_context_create();
            mmcl_options *o = mmcl_options_new(
                ctx, infoloss ? "infoloss" : "embed", kv);
            CU_ASSERT_PTR_NOT_NULL_FATAL(o);
            const char *out = test_path("readerr.tif");
            const char *sar = test_scene_file(scene, "sar.tif");
            mmcl_status st =
                infoloss
                    ? mmcl_infoloss(ctx, m, optical, 1,
                                    (const char *const[]){sar}, 1, out, o, NULL)
                    : mmcl_embed(ctx, m, optical, 1, (const char *const[]){sar},
                                 1, out, o);
            const char *msg = mmcl_context_errmsg(ctx);
            printf("  -> %s\n", msg);
            CU_ASSERT_NOT_EQUAL(st, MMCL_OK);
            CU_ASSERT_NOT_EQUAL(st, MMCL_ERR_CANCELLED);
            CU_ASSERT_PTR_NOT_NULL(strstr(msg, "corrupt_optical.tif"));
            CU_ASSERT_FALSE(test_file_exists(out));
            mmcl_options_free(o);
            mmcl_context_destroy(ctx);
        }
    mmcl_model_destroy(m);
}

/* Expected validity of a P x P patch around each pixel (reflect padding)
 * from the NaNs of a raster on the same grid. */
static uint8_t *
expected_valid(const char *path, int P, int *w, int *h)
{
    int nb;
    float *x = test_read_raster(path, w, h, &nb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    size_t n = (size_t)*w * *h;
    uint8_t *pix = malloc(n), *v = malloc(n);
    for (size_t i = 0; i < n; i++) {
        pix[i] = 1;
        for (int b = 0; b < nb; b++)
            if (isnan(x[b * n + i]))
                pix[i] = 0;
    }
    int r = P / 2;
    for (int y = 0; y < *h; y++)
        for (int xx = 0; xx < *w; xx++) {
            uint8_t ok = 1;
            for (int dy = -r; dy <= r && ok; dy++)
                for (int dx = -r; dx <= r && ok; dx++) {
                    int yy = y + dy, xq = xx + dx;
                    yy = yy < 0 ? -yy : (yy >= *h ? 2 * (*h - 1) - yy : yy);
                    xq = xq < 0 ? -xq : (xq >= *w ? 2 * (*w - 1) - xq : xq);
                    ok = pix[(size_t)yy * *w + xq];
                }
            v[(size_t)y * *w + xx] = ok;
        }
    free(pix);
    free(x);
    return v;
}

static void
outputs_are_on_the_optical_grid_with_nodata_exactly_where_inputs_are_invalid(
    void)
{
    const char *kv_s[] = {"SIZE=160", "SEED=8", "NODATA_FRAME=5",
                          "SAR_HOLES=6", NULL};
    const char *scene = test_make_scene("holes", kv_s);
    const char *kv_t[] = {"OBJECTIVE=cca", "DIM=2", "SAMPLES=5000", NULL};
    mmcl_model *m = test_train_model(scene, kv_t);
    const char *mods[2] = {"MODALITY=optical", "MODALITY=sar"};
    const char *src[2] = {"optical.tif", "sar.tif"};
    for (int k = 0; k < 2; k++) {
        const char *kv[] = {mods[k], NULL};
        const char *out = test_path(k ? "emb_sar.tif" : "emb_opt.tif");
        CU_ASSERT_EQUAL_FATAL(run_map(0, m, scene, out, kv, NULL, 0), MMCL_OK);
        int w, h, nb, we, he;
        float *e = test_read_raster(out, &w, &h, &nb);
        uint8_t *v = expected_valid(test_scene_file(scene, src[k]), 3, &we, &he);
        CU_ASSERT_EQUAL(w, we);
        CU_ASSERT_EQUAL(h, he);
        CU_ASSERT_EQUAL(nb, 2);
        size_t mismatch = 0, invalid = 0;
        for (size_t i = 0; i < (size_t)w * h; i++) {
            int got = !isnan(e[i]) && !isnan(e[(size_t)w * h + i]);
            mismatch += got != v[i];
            invalid += !v[i];
        }
        printf("  %s: %zu invalid pixels expected, %zu mismatches\n", src[k],
               invalid, mismatch);
        CU_ASSERT_TRUE(invalid > 0);
        CU_ASSERT_EQUAL(mismatch, 0);
        free(e);
        free(v);
        GDALDatasetH o = GDALOpen(test_scene_file(scene, "optical.tif"),
                                  GA_ReadOnly);
        GDALDatasetH d = GDALOpen(out, GA_ReadOnly);
        double g1[6], g2[6];
        GDALGetGeoTransform(o, g1);
        GDALGetGeoTransform(d, g2);
        for (int i = 0; i < 6; i++)
            CU_ASSERT_DOUBLE_EQUAL(g1[i], g2[i], 1e-9);
        CU_ASSERT_STRING_EQUAL(GDALGetProjectionRef(o),
                               GDALGetProjectionRef(d));
        CU_ASSERT_STRING_EQUAL(GDALGetDescription(GDALGetRasterBand(d, 1)),
                               "emb_000");
        const char *prod = GDALGetMetadataItem(d, "PRODUCT", "MMCL");
        CU_ASSERT_TRUE(prod && strcmp(prod, "embedding") == 0);
        CU_ASSERT_PTR_NOT_NULL(GDALGetMetadataItem(d, "MODEL_HASH", "MMCL"));
        int has_nd = 0;
        double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(d, 1), &has_nd);
        CU_ASSERT_TRUE(has_nd && isnan(nd));
        GDALClose(o);
        GDALClose(d);
    }
    mmcl_model_destroy(m);
}

/*
 * The validity rule (README, "Validity"): a value is valid exactly where
 * every input value it is computed from is valid. With MASK=own a
 * modality's bands (embed --modality optical|sar; infoloss bands named
 * *_optical, *_sar) need their own patch, the joint embedding and the
 * non-redundancy bands both; with MASK=any every band needs both. Checked
 * pixel by pixel for every objective against the masks computed here from
 * the inputs' NaNs and the patch size, on a scene with SAR holes and an
 * optical nodata frame.
 */
static size_t
mask_mismatches(const char *path, const uint8_t *const want[3], int any,
                const char *what)
{
    int w, h, nb;
    float *x = test_read_raster(path, &w, &h, &nb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    const char *mask = GDALGetMetadataItem(ds, "MASK", "MMCL");
    CU_ASSERT_TRUE(mask && strcmp(mask, any ? "any" : "own") == 0);
    size_t n = (size_t)w * h, bad = 0;
    for (int b = 0; b < nb; b++) {
        const char *name =
            GDALGetDescription(GDALGetRasterBand(ds, b + 1));
        /* want: 0 optical, 1 SAR, 2 both */
        int which = 2;
        if (!any && strncmp(name, "nonredundancy", 13) != 0) {
            size_t len = strlen(name);
            if (len > 8 && strcmp(name + len - 8, "_optical") == 0)
                which = 0;
            else if (len > 4 && strcmp(name + len - 4, "_sar") == 0)
                which = 1;
        }
        if (strncmp(name, "emb_", 4) == 0)
            which = strstr(what, "optical") ? 0 : strstr(what, "sar") ? 1 : 2;
        if (any)
            which = 2;
        size_t bb = 0;
        for (size_t i = 0; i < n; i++)
            bb += (isnan(x[(size_t)b * n + i]) ? 0 : 1) != want[which][i];
        if (bb)
            printf("  %s band %s: %zu pixels break the rule\n", what, name,
                   bb);
        bad += bb;
    }
    GDALClose(ds);
    free(x);
    return bad;
}

static void
validity_is_one_rule_for_every_objective_modality_and_band(void)
{
    const char *kv_s[] = {"SIZE=96", "SEED=5", "NODATA_FRAME=4",
                          "SAR_HOLES=5", NULL};
    const char *scene = test_make_scene("validity", kv_s);
    int w, h, w2, h2;
    uint8_t *v1 = expected_valid(test_scene_file(scene, "optical.tif"), 3, &w,
                                 &h);
    uint8_t *v2 = expected_valid(test_scene_file(scene, "sar.tif"), 3, &w2,
                                 &h2);
    CU_ASSERT_FATAL(w == w2 && h == h2);
    size_t n = (size_t)w * h, only1 = 0, only2 = 0, none = 0;
    uint8_t *both = malloc(n);
    for (size_t i = 0; i < n; i++) {
        both[i] = v1[i] && v2[i];
        only1 += v1[i] && !v2[i];
        only2 += !v1[i] && v2[i];
        none += !v1[i] && !v2[i];
    }
    /* The scene tells the rules apart: pixels valid in one modality only,
     * in each, and in neither. */
    printf("  valid in optical only %zu, SAR only %zu, neither %zu\n", only1,
           only2, none);
    CU_ASSERT_TRUE(only1 > 0 && only2 > 0 && none > 0);
    const uint8_t *const want[3] = {v1, v2, both};
    static const char *const objectives[][6] = {
        {"OBJECTIVE=cca", NULL},
        {"OBJECTIVE=clip", "EPOCHS=1", "BATCH=256", NULL},
        {"OBJECTIVE=pca", NULL},
        {"OBJECTIVE=shared-private", "PRIVATE_DIM=1", NULL},
    };
    for (size_t o = 0; o < sizeof(objectives) / sizeof(objectives[0]); o++) {
        const char *kv_t[8] = {"DIM=2", "SAMPLES=2000", NULL};
        for (int k = 0; objectives[o][k]; k++)
            kv_t[2 + k] = objectives[o][k];
        mmcl_model *m = test_train_model(scene, kv_t);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        for (int any = 0; any < 2; any++) {
            const char *mask = any ? "MASK=any" : "MASK=own";
            static const char *const mods[3] = {"optical", "sar", "joint"};
            for (int k = 0; k < 3; k++) {
                char mod[32], what[96];
                snprintf(mod, sizeof(mod), "MODALITY=%s", mods[k]);
                snprintf(what, sizeof(what), "%s %s embed %s",
                         objectives[o][0], mask, mods[k]);
                const char *kv[] = {mod, mask, "OVERWRITE=YES", NULL};
                const char *out = test_path("validity_emb.tif");
                CU_ASSERT_EQUAL_FATAL(run_map(0, m, scene, out, kv, NULL, 0),
                                      MMCL_OK);
                CU_ASSERT_EQUAL(mask_mismatches(out, want, any, what), 0);
            }
            const char *kv[] = {"NON_REDUNDANCY=YES", mask, "OVERWRITE=YES",
                                NULL};
            const char *out = test_path("validity_loss.tif");
            CU_ASSERT_EQUAL_FATAL(run_map(1, m, scene, out, kv, NULL, 0),
                                  MMCL_OK);
            char what[96];
            snprintf(what, sizeof(what), "%s %s infoloss", objectives[o][0],
                     mask);
            CU_ASSERT_EQUAL(mask_mismatches(out, want, any, what), 0);
        }
        mmcl_model_destroy(m);
    }
    free(both);
    free(v1);
    free(v2);
}

/* Spearman rank correlation with average ranks for ties, over pixels
 * where both are finite. */
static double *rank_keys;
static int
cmp_idx(const void *a, const void *b)
{
    double x = rank_keys[*(const size_t *)a], y = rank_keys[*(const size_t *)b];
    return x < y ? -1 : x > y;
}

static void
ranks(double *r, double *v, size_t n)
{
    size_t *idx = malloc(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    rank_keys = v;
    qsort(idx, n, sizeof(size_t), cmp_idx);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && v[idx[j + 1]] == v[idx[i]])
            j++;
        for (size_t k = i; k <= j; k++)
            r[idx[k]] = 0.5 * (double)(i + j);
        i = j + 1;
    }
    free(idx);
}

static double
spearman(const float *a, const float *b, size_t n)
{
    double *x = malloc(n * sizeof(double)), *y = malloc(n * sizeof(double));
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(a[i]) && isfinite(b[i])) {
            x[m] = a[i];
            y[m] = b[i];
            m++;
        }
    double *rx = malloc(m * sizeof(double)), *ry = malloc(m * sizeof(double));
    ranks(rx, x, m);
    ranks(ry, y, m);
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < m; i++) {
        mx += rx[i];
        my += ry[i];
    }
    mx /= m;
    my /= m;
    for (size_t i = 0; i < m; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(x);
    free(y);
    free(rx);
    free(ry);
    return sxy / sqrt(sxx * syy);
}

/* Mean of a band over finite values. */
static double
band_mean(const float *v, size_t n)
{
    double s = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            s += v[i];
            k++;
        }
    return k ? s / k : NAN;
}

static const char *oracle_scene;

static void
infoloss_lights_up_where_the_specific_factors_are(void)
{
    const char *kv_s[] = {"PRESET=specific", "SIZE=256", "SEED=3", NULL};
    oracle_scene = test_make_scene("oracle", kv_s);
    const char *scene = oracle_scene;
    const char *truth = test_scene_file(scene, "truth.tif");
    int tw, th, tb;
    float *t = test_read_raster(truth, &tw, &th, &tb);
    size_t n = (size_t)tw * th;
    const float *energy[2] = {
        t + n * (band_named(truth, "optical_specific_energy") - 1),
        t + n * (band_named(truth, "sar_specific_energy") - 1)};
    const char *kv_cca[] = {"OBJECTIVE=cca", "DIM=2", "SAMPLES=30000", NULL};
    const char *kv_clip[] = {"OBJECTIVE=clip", "DIM=2", "SAMPLES=30000",
                             "EPOCHS=10", "BATCH=256", "LR=0.01", NULL};
    const char *kv_sp[] = {"OBJECTIVE=shared-private", "DIM=2",
                           "PRIVATE_DIM=2", "SAMPLES=30000", NULL};
    const char *const *kvs[3] = {kv_cca, kv_clip, kv_sp};
    const char *names[3] = {"cca", "clip", "shared-private"};
    double mean_loss[3][2];
    for (int k = 0; k < 3; k++) {
        mmcl_model *m = test_train_model(scene, kvs[k]);
        char out[1100];
        snprintf(out, sizeof(out), "%s", test_path(names[k]));
        CU_ASSERT_EQUAL_FATAL(run_map(1, m, scene, out, NULL, NULL, 0),
                              MMCL_OK);
        int w, h, nb;
        float *l = test_read_raster(out, &w, &h, &nb);
        /* Per modality: infoloss, unimodal, excess, noise_floor,
         * structured_loss, structured_excess. */
        CU_ASSERT_EQUAL_FATAL(nb, 12);
        for (int mod = 0; mod < 2; mod++) {
            const float *loss = l + n * (size_t)(mod * 6);
            double rho = spearman(loss, energy[mod], n);
            mean_loss[k][mod] = band_mean(loss, n);
            printf("  %-15s %-7s Spearman(infoloss, specific energy) %.3f, "
                   "mean infoloss %.3f\n",
                   names[k], mod ? "sar" : "optical", rho, mean_loss[k][mod]);
            if (k < 2)
                CU_ASSERT_TRUE(rho >= 0.7);
        }
        free(l);
        mmcl_model_destroy(m);
    }
    for (int mod = 0; mod < 2; mod++)
        CU_ASSERT_TRUE(mean_loss[2][mod] <= 0.5 * mean_loss[0][mod]);
    free(t);
}

static void
infoloss_is_near_zero_on_a_redundant_scene(void)
{
    const char *kv_s[] = {"PRESET=redundant", "SIZE=192", "SEED=13", NULL};
    const char *scene = test_make_scene("redundant", kv_s);
    const char *kv[] = {"OBJECTIVE=cca", "DIM=2", "SAMPLES=20000", NULL};
    mmcl_model *m = test_train_model(scene, kv);
    const char *out = test_path("redundant_loss.tif");
    char *report = NULL;
    const char *optical[1] = {test_scene_file(scene, "optical.tif")};
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL(
        mmcl_infoloss(ctx, m, optical, 1,
                      (const char *const[]){test_scene_file(scene, "sar.tif")},
                      1, out, NULL, &report),
        MMCL_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(report);
    int w, h, nb;
    float *l = test_read_raster(out, &w, &h, &nb);
    size_t n = (size_t)w * h;
    for (int mod = 0; mod < 2; mod++) {
        double mean = band_mean(l + n * (size_t)(mod * 6), n);
        printf("  redundant: mean infoloss %s %.4f\n", mod ? "sar" : "optical",
               mean);
        CU_ASSERT_TRUE(fabs(mean) <= 0.05);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(report, "\"r2_aligned\""));
    mmcl_free(report);
    free(l);
    mmcl_context_destroy(ctx);
    mmcl_model_destroy(m);
}


static void
model_and_rasters_that_do_not_match_are_refused(void)
{
    const char *kv8[] = {"SIZE=64", "SEED=1", NULL};
    const char *kv6[] = {"SIZE=64", "SEED=1", "OPTICAL_BANDS=6", NULL};
    const char *s8 = test_make_scene("eight", kv8);
    const char *s6 = test_make_scene("six", kv6);
    const char *kv_t[] = {"DIM=2", "SAMPLES=2000", NULL};
    mmcl_model *m = test_train_model(s8, kv_t);
    char msg[512];
    const char *out = test_path("mismatch.tif");
    CU_ASSERT_NOT_EQUAL(run_map(0, m, s6, out, NULL, msg, sizeof(msg)),
                        MMCL_OK);
    printf("  -> %s\n", msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "expects 8 optical bands"));
    CU_ASSERT_FALSE(test_file_exists(out));
    const char *kv_png[] = {"FORMAT=PNG", NULL};
    const char *png = test_path("emb.png");
    CU_ASSERT_NOT_EQUAL(run_map(0, m, s8, png, kv_png, msg, sizeof(msg)),
                        MMCL_OK);
    printf("  -> %s\n", msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "cannot hold Float32"));
    CU_ASSERT_FALSE(test_file_exists(png));
    mmcl_model_destroy(m);
    /* A patch larger than the raster (one band per modality keeps the
     * 33x33 patch small). */
    const char *kv_one[] = {"SIZE=64", "SEED=1", "OPTICAL_BANDS=1",
                            "SAR_BANDS=1", "SHARED=1", "PRESET=redundant",
                            NULL};
    const char *kv_small[] = {"SIZE=32", "SEED=1", "OPTICAL_BANDS=1",
                              "SAR_BANDS=1", "SHARED=1", "PRESET=redundant",
                              NULL};
    const char *s64 = test_make_scene("one64", kv_one);
    const char *s32 = test_make_scene("one32", kv_small);
    const char *kv_big[] = {"DIM=1", "PATCH=33", "SAMPLES=500", NULL};
    m = test_train_model(s64, kv_big);
    const char *out2 = test_path("toolarge.tif");
    CU_ASSERT_NOT_EQUAL(run_map(1, m, s32, out2, NULL, msg, sizeof(msg)),
                        MMCL_OK);
    printf("  -> %s\n", msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "larger than the 32 x 32"));
    CU_ASSERT_FALSE(test_file_exists(out2));
    mmcl_model_destroy(m);
}

int
main(void)
{
    GDALAllRegister();
    static const test_case cases[] = {
        {"maps_do_not_depend_on_tile_size_or_threads",
         maps_do_not_depend_on_tile_size_or_threads},
        {"maps_do_not_depend_on_the_block_cache_the_output_layout_or_tiny_"
         "tiles",
         maps_do_not_depend_on_the_block_cache_the_output_layout_or_tiny_tiles},
        {"maps_with_a_warped_sar_and_a_wide_halo_do_not_depend_on_tiles",
         maps_with_a_warped_sar_and_a_wide_halo_do_not_depend_on_tiles},
        {"a_cancelled_map_stops_and_leaves_no_output",
         a_cancelled_map_stops_and_leaves_no_output},
        {"a_read_error_mid_map_stops_and_leaves_no_output",
         a_read_error_mid_map_stops_and_leaves_no_output},
        {"outputs_are_on_the_optical_grid_with_nodata_exactly_where_inputs_"
         "are_invalid",
         outputs_are_on_the_optical_grid_with_nodata_exactly_where_inputs_are_invalid},
        {"validity_is_one_rule_for_every_objective_modality_and_band",
         validity_is_one_rule_for_every_objective_modality_and_band},
        {"infoloss_lights_up_where_the_specific_factors_are",
         infoloss_lights_up_where_the_specific_factors_are},
        {"infoloss_is_near_zero_on_a_redundant_scene",
         infoloss_is_near_zero_on_a_redundant_scene},
        {"model_and_rasters_that_do_not_match_are_refused",
         model_and_rasters_that_do_not_match_are_refused},
        {NULL, NULL}};
    int rc = test_run_suite("maps", cases);
    GDALDestroyDriverManager();
    return rc;
}
