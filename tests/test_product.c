/* SPDX-License-Identifier: MIT */
/*
 * Lazy products (include/mmcl/product.h), the C side of the GDAL plugin:
 * windows read from a descriptor equal the files mmcl_embed and
 * mmcl_infoloss write, bit for bit, whatever the window and from several
 * threads at once; overview levels; descriptor writing; and bad
 * descriptors refused with a clear message (this test also runs in the
 * sanitizer build).
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <threads.h>

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <gdal_utils.h>

#include "mmcl/mmcl.h"
#include "test_util.h"

static char model_path[1024];
static char optical_path[1024];
static char sar_path[1024];

/* The sample scene and a small CCA model trained on it (once). */
static void
setup_model(void)
{
    if (model_path[0])
        return;
    snprintf(optical_path, sizeof(optical_path), "%s/sample_data/optical.tif",
             test_source_dir());
    snprintf(sar_path, sizeof(sar_path), "%s/sample_data/sar.tif",
             test_source_dir());
    snprintf(model_path, sizeof(model_path), "%s", test_path("cca.mmcl"));
    mmcl_context *ctx = mmcl_context_create();
    const char *kv[] = {"OBJECTIVE=cca", "DIM=3", "PATCH=3", "SAMPLES=6000",
                        NULL};
    mmcl_options *o = mmcl_options_new(ctx, "train", kv);
    mmcl_model *model = NULL;
    const char *optical[1] = {optical_path};
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_EQUAL_FATAL(mmcl_train(ctx, optical, 1,
                                     (const char *const[]){sar_path}, 1, o,
                                     &model),
                          MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(mmcl_model_save(ctx, model, model_path, 1), MMCL_OK);
    mmcl_model_destroy(model);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

/* Descriptor text for the sample scene; @p extra is added inside the
 * object (e.g. ", \"modality\": \"sar\""). Static buffer. */
static const char *
descriptor(const char *product, const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "{\"product\": \"%s\", \"model\": \"%s\", \"optical\": \"%s\", "
             "\"sar\": \"%s\"%s}",
             product, model_path, optical_path, sar_path, extra ? extra : "");
    return buf;
}

static mmcl_product *
open_text(const char *text)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_product *p = NULL;
    mmcl_status st = mmcl_product_open(ctx, text, &p);
    if (st != MMCL_OK)
        printf("  open failed: %s\n", mmcl_context_errmsg(ctx));
    mmcl_context_destroy(ctx);
    return p;
}

static float *
read_file(const char *path, int *w, int *h, int *n)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    if (!ds)
        return NULL;
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    *n = GDALGetRasterCount(ds);
    float *buf = malloc((size_t)*w * *h * *n * sizeof(float));
    if (GDALDatasetRasterIO(ds, GF_Read, 0, 0, *w, *h, buf, *w, *h,
                            GDT_Float32, *n, NULL, 0, 0, 0) != CE_None) {
        free(buf);
        buf = NULL;
    }
    GDALClose(ds);
    return buf;
}

/* Window (x, y, w, h) of the band-sequential (n, H, W) raster @p full
 * equals @p got bit for bit (NaN included). */
static int
window_equals(const float *full, int W, int H, int n, const float *got,
              int x, int y, int w, int h)
{
    for (int b = 0; b < n; b++)
        for (int r = 0; r < h; r++)
            if (memcmp(full + (size_t)b * W * H + (size_t)(y + r) * W + x,
                       got + (size_t)b * w * h + (size_t)r * w,
                       (size_t)w * sizeof(float)) != 0) {
                printf("  window %d,%d %dx%d differs in band %d row %d\n", x,
                       y, w, h, b + 1, r);
                return 0;
            }
    return 1;
}

/* Writes @p product's map with the writer into @p out. */
static void
write_map(const char *product, const char *out, const char *const *kv)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *model = NULL;
    const char *optical[1] = {optical_path};
    int loss = strcmp(product, "infoloss") == 0;
    mmcl_options *o = mmcl_options_new(ctx, loss ? "infoloss" : "embed", kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_EQUAL_FATAL(mmcl_model_load(ctx, model_path, &model), MMCL_OK);
    mmcl_status st =
        loss ? mmcl_infoloss(ctx, model, optical, 1,
                             (const char *const[]){sar_path}, 1, out, o, NULL)
             : mmcl_embed(ctx, model, optical, 1,
                          (const char *const[]){sar_path}, 1, out, o);
    CU_ASSERT_EQUAL_FATAL(st, MMCL_OK);
    mmcl_model_destroy(model);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

static void
reads_equal_the_written_maps_bit_for_bit_whatever_the_window(void)
{
    setup_model();
    static const struct {
        const char *product, *extra, *kv[3];
    } cases[] = {
        {"embedding", NULL, {NULL}},
        {"embedding", ", \"modality\": \"sar\"", {"MODALITY=sar", NULL}},
        {"infoloss", ", \"non_redundancy\": true, \"tile\": 64",
         {"NON_REDUNDANCY=YES", "TILE=64", NULL}},
    };
    static const int windows[][4] = {{0, 0, 192, 192}, {5, 7, 60, 31},
                                     {60, 60, 80, 130}, {191, 0, 1, 192},
                                     {100, 150, 92, 42}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char name[32];
        snprintf(name, sizeof(name), "written%zu.tif", c);
        const char *out = test_path(name);
        write_map(cases[c].product, out, cases[c].kv);
        int W = 0, H = 0, n = 0;
        float *full = read_file(out, &W, &H, &n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(full);
        mmcl_product *p = open_text(descriptor(cases[c].product,
                                               cases[c].extra));
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_EQUAL(mmcl_product_band_count(p), n);
        CU_ASSERT_EQUAL(mmcl_product_width(p, 0), W);
        CU_ASSERT_EQUAL(mmcl_product_height(p, 0), H);
        mmcl_context *ctx = mmcl_context_create();
        for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
            const int *win = windows[i];
            float *got = malloc((size_t)n * win[2] * win[3] * sizeof(float));
            CU_ASSERT_EQUAL(mmcl_product_read(ctx, p, 0, win[0], win[1],
                                              win[2], win[3], got),
                            MMCL_OK);
            CU_ASSERT_TRUE(window_equals(full, W, H, n, got, win[0], win[1],
                                         win[2], win[3]));
            free(got);
        }
        mmcl_context_destroy(ctx);
        mmcl_product_destroy(p);
        free(full);
    }
}

static void
figures_and_metadata_equal_the_written_file(void)
{
    setup_model();
    const char *out = test_path("loss.tif");
    const char *kv[] = {"NON_REDUNDANCY=YES", NULL};
    write_map("infoloss", out, kv);
    mmcl_product *p = open_text(descriptor("infoloss",
                                           ", \"non_redundancy\": true"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    char **file_md = GDALGetMetadata(ds, "MMCL");
    const char *const *md = mmcl_product_metadata(p, 0);
    const char *const *fig = NULL;
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_EQUAL(mmcl_product_figures(ctx, p, &fig), MMCL_OK);
    int n_lazy = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; (pass ? fig : md)[i]; i++, n_lazy++) {
            const char *item = (pass ? fig : md)[i];
            const char *eq = strchr(item, '=');
            char key[128];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - item), item);
            const char *want = CSLFetchNameValue(file_md, key);
            if (!want || strcmp(want, eq + 1) != 0)
                printf("  %s: file %s\n", item, want ? want : "(none)");
            CU_ASSERT_PTR_NOT_NULL(want);
            CU_ASSERT_STRING_EQUAL(want ? want : "", eq + 1);
        }
    CU_ASSERT_EQUAL(n_lazy, CSLCount(file_md));
    /* Band descriptions. */
    for (int b = 0; b < mmcl_product_band_count(p); b++)
        CU_ASSERT_STRING_EQUAL(
            mmcl_product_band_description(p, b),
            GDALGetDescription(GDALGetRasterBand(ds, b + 1)));
    double nd = 0;
    CU_ASSERT_TRUE(mmcl_product_nodata(p, &nd) && isnan(nd));
    GDALClose(ds);
    mmcl_context_destroy(ctx);
    mmcl_product_destroy(p);
}

/* Several threads reading random windows of one product. */
typedef struct thread_arg {
    mmcl_product *p;
    const float *full;
    int W, H, n, seed, ok;
} thread_arg;

static int
reader(void *arg)
{
    thread_arg *a = arg;
    mmcl_context *ctx = mmcl_context_create();
    unsigned s = (unsigned)a->seed * 2654435761u + 1;
    a->ok = 1;
    for (int k = 0; k < 12 && a->ok; k++) {
        s = s * 1103515245u + 12345u;
        int w = 1 + (int)(s >> 8) % 120;
        s = s * 1103515245u + 12345u;
        int h = 1 + (int)(s >> 8) % 120;
        s = s * 1103515245u + 12345u;
        int x = (int)(s >> 8) % (a->W - w + 1);
        s = s * 1103515245u + 12345u;
        int y = (int)(s >> 8) % (a->H - h + 1);
        float *got = malloc((size_t)a->n * w * h * sizeof(float));
        a->ok = got && mmcl_product_read(ctx, a->p, 0, x, y, w, h, got) ==
                           MMCL_OK &&
                window_equals(a->full, a->W, a->H, a->n, got, x, y, w, h);
        free(got);
    }
    mmcl_context_destroy(ctx);
    return 0;
}

static void
concurrent_reads_of_one_product_are_safe_and_equal(void)
{
    setup_model();
    const char *out = test_path("emb_threads.tif");
    const char *kv[] = {"TILE=48", NULL};
    write_map("embedding", out, kv);
    thread_arg args[4];
    int W, H, n;
    float *full = read_file(out, &W, &H, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(full);
    mmcl_product *p = open_text(descriptor("embedding",
                                           ", \"tile\": 48, \"threads\": 2"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    thrd_t t[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){p, full, W, H, n, i + 1, 0};
        CU_ASSERT_EQUAL_FATAL(thrd_create(&t[i], reader, &args[i]),
                              thrd_success);
    }
    for (int i = 0; i < 4; i++) {
        thrd_join(t[i], NULL);
        CU_ASSERT_TRUE(args[i].ok);
    }
    mmcl_product_destroy(p);
    free(full);
}

static void
overviews_are_decimated_levels_marked_approximate(void)
{
    setup_model();
    /* A 600 x 400 optical (the sample resampled through a VRT): levels of
     * 600 x 400, 300 x 200, 150 x 100. */
    GDALDatasetH src = GDALOpen(optical_path, GA_ReadOnly);
    char *argv[] = {"-of", "VRT", "-outsize", "600", "400", NULL};
    GDALTranslateOptions *to = GDALTranslateOptionsNew(argv, NULL);
    GDALDatasetH vrt = GDALTranslate("", src, to, NULL);
    GDALTranslateOptionsFree(to);
    CU_ASSERT_PTR_NOT_NULL_FATAL(vrt);
    char *xml = CPLStrdup(GDALGetMetadata(vrt, "xml:VRT")[0]);
    GDALClose(vrt);
    GDALClose(src);
    /* The VRT text goes into the descriptor as the optical "path". */
    size_t size = strlen(xml) * 2 + 2048;
    char *text = malloc(size);
    char *esc = malloc(strlen(xml) * 2 + 1), *e = esc;
    for (const char *c = xml; *c; c++) {
        if (*c == '"' || *c == '\\')
            *e++ = '\\';
        if (*c == '\n') {
            *e++ = ' ';
            continue;
        }
        *e++ = *c;
    }
    *e = '\0';
    snprintf(text, size,
             "{\"product\": \"embedding\", \"model\": \"%s\", \"optical\": "
             "\"%s\", \"sar\": \"%s\"}",
             model_path, esc, sar_path);
    mmcl_product *p = open_text(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(mmcl_product_level_count(p), 3);
    static const int dims[3][3] = {{1, 600, 400}, {2, 300, 200},
                                   {4, 150, 100}};
    for (int l = 0; l < 3; l++) {
        CU_ASSERT_EQUAL(mmcl_product_overview_factor(p, l), dims[l][0]);
        CU_ASSERT_EQUAL(mmcl_product_width(p, l), dims[l][1]);
        CU_ASSERT_EQUAL(mmcl_product_height(p, l), dims[l][2]);
        double gt0[6], gt[6];
        mmcl_product_geotransform(p, 0, gt0);
        mmcl_product_geotransform(p, l, gt);
        CU_ASSERT_DOUBLE_EQUAL(gt[1], gt0[1] * dims[l][0], 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(gt[0], gt0[0], 1e-9);
        const char *const *md = mmcl_product_metadata(p, l);
        const char *approx = CSLFetchNameValue((char **)md, "APPROXIMATE");
        if (l == 0) {
            CU_ASSERT_PTR_NULL(approx);
        } else {
            CU_ASSERT_STRING_EQUAL(approx ? approx : "", "YES");
        }
    }
    /* The coarsest level reads, with mostly finite values. */
    mmcl_context *ctx = mmcl_context_create();
    int n = mmcl_product_band_count(p);
    float *buf = malloc((size_t)n * 150 * 100 * sizeof(float));
    CU_ASSERT_EQUAL(mmcl_product_read(ctx, p, 2, 0, 0, 150, 100, buf),
                    MMCL_OK);
    size_t finite = 0;
    for (size_t i = 0; i < (size_t)n * 150 * 100; i++)
        finite += isfinite(buf[i]) != 0;
    CU_ASSERT_TRUE(finite > (size_t)n * 150 * 100 / 2);
    CU_ASSERT_NOT_EQUAL(mmcl_product_read(ctx, p, 3, 0, 0, 1, 1, buf),
                        MMCL_OK);
    CU_ASSERT_NOT_EQUAL(mmcl_product_read(ctx, p, 1, 250, 0, 51, 1, buf),
                        MMCL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "not inside"));
    free(buf);
    mmcl_context_destroy(ctx);
    mmcl_product_destroy(p);
    free(esc);
    free(text);
    CPLFree(xml);
}

/* Opening @p text fails with a message holding @p expect. */
static void
expect_refused(const char *text, const char *expect)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_product *p = (mmcl_product *)ctx; /* must be reset to NULL */
    mmcl_status st = mmcl_product_open(ctx, text, &p);
    printf("  -> %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_NOT_EQUAL(st, MMCL_OK);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), expect));
    mmcl_product_destroy(p);
    mmcl_context_destroy(ctx);
}

static void
bad_descriptors_are_refused_with_a_clear_message(void)
{
    setup_model();
    char buf[4096];
    expect_refused("{\"product\": \"embedding\", \"model\": ", "valid JSON");
    expect_refused("{\"a\": [1, 2]", "valid JSON");
    expect_refused("MMCL:[1, 2]", "cannot open descriptor");
    expect_refused("{}", "missing key \"product\"");
    snprintf(buf, sizeof(buf),
             "{\"product\": \"embedding\", \"model\": \"%s\", \"optical\": "
             "\"%s\"}",
             model_path, optical_path);
    expect_refused(buf, "missing key \"sar\"");
    snprintf(buf, sizeof(buf),
             "{\"product\": \"embedding\", \"model\": \"/nonexistent/m.mmcl\","
             " \"optical\": \"%s\", \"sar\": \"%s\"}",
             optical_path, sar_path);
    expect_refused(buf, "/nonexistent/m.mmcl");
    snprintf(buf, sizeof(buf),
             "{\"product\": \"embedding\", \"model\": \"%s\", \"optical\": "
             "\"%s\", \"sar\": \"%s\"}",
             model_path, sar_path, sar_path);
    expect_refused(buf, "is given as both optical and SAR");
    /* truth.tif: 7 bands, where the model expects 8 optical. */
    snprintf(buf, sizeof(buf),
             "{\"product\": \"embedding\", \"model\": \"%s\", \"optical\": "
             "\"%s/sample_data/truth.tif\", \"sar\": \"%s\"}",
             model_path, test_source_dir(), sar_path);
    expect_refused(buf, "expects 8 optical bands");
    expect_refused(descriptor("maps", NULL), "\"product\" must be");
    expect_refused(descriptor("embedding", ", \"colour\": 1"),
                   "unknown option 'COLOUR'");
    expect_refused(descriptor("embedding", ", \"modality\": \"both\""),
                   "MODALITY must be one of");
    expect_refused(descriptor("embedding", ", \"tile\": 3"), "out of range");
    expect_refused(descriptor("embedding", ", \"overwrite\": true"),
                   "does not apply");
    snprintf(buf, sizeof(buf),
             "{\"product\": \"infoloss\", \"model\": \"%s\", \"optical\": "
             "[], \"sar\": \"%s\"}",
             model_path, sar_path);
    expect_refused(buf, "expected a path or an array of paths");
    expect_refused(descriptor("embedding", ", \"mmcl_descriptor\": 9"),
                   "version 9");
    expect_refused(descriptor("embedding", ", \"modality\": [1]"),
                   "expected a string, number or boolean");
    expect_refused(test_path("absent.mmcl.json"), "cannot open descriptor");
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_NOT_EQUAL(mmcl_product_open(ctx, NULL, NULL), MMCL_OK);
    CU_ASSERT_NOT_EQUAL(mmcl_context_errmsg(ctx)[0], '\0');
    mmcl_product_destroy(NULL);
    mmcl_context_destroy(ctx);
}

/* The SAR as four single-band files: the descriptor stores them as an
 * array, opens, and reads as the map written from the stacked SAR. */
static void
sar_as_several_files_in_a_descriptor(void)
{
    setup_model();
    mmcl_context *ctx = mmcl_context_create();
    static char band[4][1024];
    const char *sar[4];
    GDALDatasetH src = GDALOpen(sar_path, GA_ReadOnly);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    for (int b = 0; b < 4; b++) {
        char name[32], num[8];
        snprintf(name, sizeof(name), "sar_band%d.tif", b + 1);
        snprintf(band[b], sizeof(band[b]), "%s", test_path(name));
        snprintf(num, sizeof(num), "%d", b + 1);
        char *args[] = {"-b", num, NULL};
        GDALTranslateOptions *to = GDALTranslateOptionsNew(args, NULL);
        GDALDatasetH out = GDALTranslate(band[b], src, to, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        GDALClose(out);
        GDALTranslateOptionsFree(to);
        sar[b] = band[b];
    }
    GDALClose(src);
    const char *path = test_path("stack.mmcl.json");
    const char *optical[1] = {optical_path};
    mmcl_options *o = mmcl_options_new(ctx, "embed", NULL);
    CU_ASSERT_EQUAL_FATAL(mmcl_product_write_descriptor(ctx, path, model_path,
                                                        optical, 1, sar, 4, o),
                          MMCL_OK);
    FILE *f = fopen(path, "rb");
    char text[4096] = "";
    size_t len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    text[len] = '\0';
    if (f)
        fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"sar\":\t[\"sar_band1.tif\", "
                                        "\"sar_band2.tif\", \"sar_band3.tif\", "
                                        "\"sar_band4.tif\"]"));
    const char *written = test_path("stacked_emb.tif");
    write_map("embedding", written, NULL);
    int W = 0, H = 0, n = 0;
    float *full = read_file(written, &W, &H, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(full);
    mmcl_product *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mmcl_product_open(ctx, path, &p), MMCL_OK);
    float *got = malloc((size_t)n * W * H * sizeof(float));
    CU_ASSERT_EQUAL(mmcl_product_read(ctx, p, 0, 0, 0, W, H, got), MMCL_OK);
    CU_ASSERT_TRUE(window_equals(full, W, H, n, got, 0, 0, W, H));
    free(got);
    free(full);
    mmcl_product_destroy(p);
    /* A SAR file among the optical ones: refused, nothing written. */
    const char *mixed[2] = {optical_path, sar[0]};
    const char *path2 = test_path("mixed.mmcl.json");
    CU_ASSERT_EQUAL(mmcl_product_write_descriptor(ctx, path2, model_path,
                                                  optical, 1, mixed, 2, o),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(mmcl_context_errmsg(ctx), "is given as both optical and SAR"));
    struct stat sb;
    CU_ASSERT_NOT_EQUAL(stat(path2, &sb), 0);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

static void
written_descriptors_open_and_outputs_are_kept(void)
{
    setup_model();
    mmcl_context *ctx = mmcl_context_create();
    const char *path = test_path("emb.mmcl.json");
    const char *optical[1] = {optical_path};
    const char *kv[] = {"MODALITY=optical", "TILE=128", NULL};
    mmcl_options *o = mmcl_options_new(ctx, "embed", kv);
    CU_ASSERT_EQUAL(
        mmcl_product_write_descriptor(ctx, path, model_path, optical, 1,
                                      (const char *const[]){sar_path}, 1, o),
        MMCL_OK);
    mmcl_product *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mmcl_product_open(ctx, path, &p), MMCL_OK);
    CU_ASSERT_STRING_EQUAL(mmcl_product_kind(p), "embedding");
    CU_ASSERT_EQUAL(mmcl_product_block_size(p), 128);
    CU_ASSERT_STRING_EQUAL(
        CSLFetchNameValue((char **)mmcl_product_metadata(p, 0), "MODALITY"),
        "optical");
    mmcl_product_destroy(p);
    /* The model sits beside the descriptor: stored as a relative name. */
    FILE *f = fopen(path, "rb");
    char text[4096] = "";
    size_t len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    text[len] = '\0';
    if (f)
        fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"model\":\t\"cca.mmcl\""));
    /* Exists: kept. */
    CU_ASSERT_EQUAL(
        mmcl_product_write_descriptor(ctx, path, model_path, optical, 1,
                                      (const char *const[]){sar_path}, 1, o),
        MMCL_ERR_EXISTS);
    mmcl_options_free(o);
    /* FORMAT does not apply; a descriptor that would not open is not
     * written. */
    const char *kv2[] = {"FORMAT=COG", NULL};
    o = mmcl_options_new(ctx, "embed", kv2);
    const char *path2 = test_path("never.mmcl.json");
    CU_ASSERT_EQUAL(
        mmcl_product_write_descriptor(ctx, path2, model_path, optical, 1,
                                      (const char *const[]){sar_path}, 1, o),
        MMCL_ERR_INVALID_ARG);
    mmcl_options_free(o);
    o = mmcl_options_new(ctx, "infoloss", NULL);
    const char *wrong[1] = {sar_path};
    CU_ASSERT_NOT_EQUAL(
        mmcl_product_write_descriptor(ctx, path2, model_path, wrong, 1,
                                      (const char *const[]){sar_path}, 1, o),
        MMCL_OK);
    struct stat sb;
    CU_ASSERT_NOT_EQUAL(stat(path2, &sb), 0);
    mmcl_options_free(o);
    /* mmcl_embed itself refuses LAZY (it has no model path). */
    const char *kv3[] = {"LAZY=YES", NULL};
    o = mmcl_options_new(ctx, "embed", kv3);
    mmcl_model *model = NULL;
    CU_ASSERT_EQUAL(mmcl_model_load(ctx, model_path, &model), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_embed(ctx, model, optical, 1,
                               (const char *const[]){sar_path}, 1,
                               test_path("x.tif"), o),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx),
                                  "mmcl_product_write_descriptor"));
    mmcl_model_destroy(model);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

/* Bytes of every band of a Byte raster, band-sequential. */
static unsigned char *
read_bytes(const char *path, int *w, int *h, int *n)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    if (!ds)
        return NULL;
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    *n = GDALGetRasterCount(ds);
    unsigned char *buf = malloc((size_t)*w * *h * *n);
    if (GDALDatasetRasterIO(ds, GF_Read, 0, 0, *w, *h, buf, *w, *h, GDT_Byte,
                            *n, NULL, 0, 0, 0) != CE_None) {
        free(buf);
        buf = NULL;
    }
    GDALClose(ds);
    return buf;
}

static void
lazy_pictures_equal_the_written_files_byte_for_byte(void)
{
    setup_model();
    const char *emb_kv[] = {"TILE=64", NULL};
    char emb[1024], emb_lazy[1024];
    snprintf(emb, sizeof(emb), "%s", test_path("pic_src.tif"));
    snprintf(emb_lazy, sizeof(emb_lazy), "%s", test_path("pic_src.mmcl.json"));
    write_map("embedding", emb, emb_kv);
    mmcl_context *ctx = mmcl_context_create();
    const char *optical[1] = {optical_path};
    mmcl_options *o = mmcl_options_new(ctx, "embed", emb_kv);
    CU_ASSERT_EQUAL_FATAL(
        mmcl_product_write_descriptor(ctx, emb_lazy, model_path, optical, 1,
                                      (const char *const[]){sar_path}, 1, o),
        MMCL_OK);
    mmcl_options_free(o);
    /* Sources: the written map, and the lazy one (read through the
     * library); PCA and a colour-mapped band. */
    static const char *const cases[][2] = {{"0", "MODE=pca"},
                                           {"1", "MODE=pca"},
                                           {"0", "BANDS=2"}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const char *in = cases[c][0][0] == '1' ? emb_lazy : emb;
        char pic[1024], desc[1024];
        snprintf(pic, sizeof(pic), "%s",
                 test_path(CPLSPrintf("pic_%zu.tif", c)));
        snprintf(desc, sizeof(desc), "%s",
                 test_path(CPLSPrintf("pic_%zu.mmcl.json", c)));
        const char *kv[] = {"TILE=64", "LEGEND=NO", cases[c][1], NULL};
        const char *kv_lazy[] = {"TILE=64", "LEGEND=NO", cases[c][1],
                                 "LAZY=YES", NULL};
        o = mmcl_options_new(ctx, "rgb", kv);
        CU_ASSERT_EQUAL_FATAL(mmcl_rgb(ctx, in, pic, o), MMCL_OK);
        mmcl_options_free(o);
        o = mmcl_options_new(ctx, "rgb", kv_lazy);
        CU_ASSERT_EQUAL_FATAL(mmcl_rgb(ctx, in, desc, o), MMCL_OK);
        mmcl_options_free(o);
        int W = 0, H = 0, n = 0;
        unsigned char *want = read_bytes(pic, &W, &H, &n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        mmcl_product *p = NULL;
        CU_ASSERT_EQUAL_FATAL(mmcl_product_open(ctx, desc, &p), MMCL_OK);
        CU_ASSERT_STRING_EQUAL(mmcl_product_kind(p), "rgb");
        CU_ASSERT_EQUAL(mmcl_product_sample_type(p), MMCL_SAMPLE_BYTE);
        CU_ASSERT_EQUAL(mmcl_product_band_count(p), 4);
        CU_ASSERT_EQUAL(n, 4);
        CU_ASSERT_STRING_EQUAL(mmcl_product_band_color(p, 3), "Alpha");
        CU_ASSERT_EQUAL(mmcl_product_nodata(p, NULL), 0);
        CU_ASSERT_EQUAL(mmcl_product_block_size(p), 64);
        unsigned char *got = malloc((size_t)W * H * 4);
        CU_ASSERT_EQUAL(mmcl_product_read(ctx, p, 0, 0, 0, W, H, got),
                        MMCL_OK);
        CU_ASSERT_EQUAL(memcmp(want, got, (size_t)W * H * 4), 0);
        /* A window cutting blocks. */
        int x = 37, y = 50, w = 101, h = 77;
        CU_ASSERT_EQUAL(mmcl_product_read(ctx, p, 0, x, y, w, h, got),
                        MMCL_OK);
        int same = 1;
        for (int b = 0; b < 4; b++)
            for (int r = 0; r < h; r++)
                same &= memcmp(want + (size_t)b * W * H +
                                   (size_t)(y + r) * W + x,
                               got + (size_t)b * w * h + (size_t)r * w,
                               (size_t)w) == 0;
        CU_ASSERT(same);
        free(got);
        free(want);
        mmcl_product_destroy(p);
    }
    /* Open options: THREADS only. */
    mmcl_product *p = NULL;
    const char *good[] = {"THREADS=1", NULL}, *bad[] = {"TILE=32", NULL};
    CU_ASSERT_EQUAL(mmcl_product_open_with_options(
                        ctx, test_path("pic_0.mmcl.json"), good, &p),
                    MMCL_OK);
    mmcl_product_destroy(p);
    CU_ASSERT_EQUAL(mmcl_product_open_with_options(
                        ctx, test_path("pic_0.mmcl.json"), bad, &p),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(p);
    /* Bad picture descriptors. */
    expect_refused("{\"product\": \"rgb\"}", "missing key \"source\"");
    char buf[2048];
    snprintf(buf, sizeof(buf),
             "{\"product\": \"rgb\", \"source\": \"%s\", \"bands\": [1, "
             "2], \"mode\": \"colormap\", \"stretch\": [2, 98], "
             "\"limits\": [[0, 1]], \"valid_pixels\": 10}",
             emb);
    expect_refused(buf, "colormap mode shows one band");
    snprintf(buf, sizeof(buf),
             "{\"product\": \"rgb\", \"source\": \"%s\", \"bands\": [2], "
             "\"mode\": \"colormap\", \"stretch\": [2, 98], "
             "\"limits\": [[0, 1]], \"valid_pixels\": 10, \"colormap\": "
             "\"rainbow\"}",
             emb);
    expect_refused(buf, "expected viridis");
    snprintf(buf, sizeof(buf),
             "{\"product\": \"rgb\", \"source\": \"%s\", \"bands\": [2], "
             "\"mode\": \"colormap\", \"stretch\": [2, 98], "
             "\"limits\": [[0, 1]], \"valid_pixels\": 10, \"colormap\": "
             "\"gray\"}",
             test_path("pic_0.mmcl.json"));
    expect_refused(buf, "is a lazy rgb");
    mmcl_context_destroy(ctx);
}

int
main(void)
{
    GDALAllRegister();
    static const test_case cases[] = {
        {"reads_equal_the_written_maps_bit_for_bit_whatever_the_window",
         reads_equal_the_written_maps_bit_for_bit_whatever_the_window},
        {"figures_and_metadata_equal_the_written_file",
         figures_and_metadata_equal_the_written_file},
        {"concurrent_reads_of_one_product_are_safe_and_equal",
         concurrent_reads_of_one_product_are_safe_and_equal},
        {"overviews_are_decimated_levels_marked_approximate",
         overviews_are_decimated_levels_marked_approximate},
        {"bad_descriptors_are_refused_with_a_clear_message",
         bad_descriptors_are_refused_with_a_clear_message},
        {"written_descriptors_open_and_outputs_are_kept",
         written_descriptors_open_and_outputs_are_kept},
        {"sar_as_several_files_in_a_descriptor",
         sar_as_several_files_in_a_descriptor},
        {"lazy_pictures_equal_the_written_files_byte_for_byte",
         lazy_pictures_equal_the_written_files_byte_for_byte},
        {NULL, NULL}};
    int rc = test_run_suite("product", cases);
    GDALDestroyDriverManager();
    return rc;
}
