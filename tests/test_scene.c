/* SPDX-License-Identifier: MIT */
#define _DEFAULT_SOURCE
#include "test_scene.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>

#include "test_util.h"

/* Scene folders are kept by the tests for their whole run; file names
 * are short-lived: two pools. */
static char *
rotating(int pool)
{
    static char bufs[2][16][1200];
    static int next[2];
    char *b = bufs[pool][next[pool]];
    next[pool] = (next[pool] + 1) % 16;
    return b;
}

const char *
test_make_scene(const char *dir, const char *const *kv)
{
    char *p = rotating(0);
    snprintf(p, 1200, "%s", test_path(dir));
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "synth", kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    mmcl_status st = mmcl_synth(ctx, p, o);
    if (st != MMCL_OK)
        printf("  synth failed: %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL_FATAL(st, MMCL_OK);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
    return p;
}

const char *
test_scene_file(const char *scene, const char *name)
{
    char *b = rotating(1);
    snprintf(b, 1200, "%s/%s", scene, name);
    return b;
}

mmcl_model *
test_train_model(const char *scene, const char *const *kv)
{
    const char *optical[1] = {test_scene_file(scene, "optical.tif")};
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "train", kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    mmcl_model *model = NULL;
    mmcl_status st = mmcl_train(
        ctx, optical, 1,
        (const char *const[]){test_scene_file(scene, "sar.tif")}, 1, o, &model);
    if (st != MMCL_OK)
        printf("  train failed: %s\n", mmcl_context_errmsg(ctx));
    CU_ASSERT_EQUAL_FATAL(st, MMCL_OK);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
    return model;
}

float *
test_read_raster(const char *path, int *w, int *h, int *bands)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    if (!ds)
        return NULL;
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    *bands = GDALGetRasterCount(ds);
    float *buf = malloc((size_t)*w * *h * *bands * sizeof(float));
    if (buf && GDALDatasetRasterIO(ds, GF_Read, 0, 0, *w, *h, buf, *w, *h,
                                   GDT_Float32, *bands, NULL, 0, 0,
                                   0) != CE_None) {
        free(buf);
        buf = NULL;
    }
    GDALClose(ds);
    return buf;
}

int
test_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int
test_count_files_like(const char *needle)
{
    char **list = VSIReadDir(test_tmpdir());
    int n = 0;
    for (int i = 0; list && list[i]; i++)
        if (strstr(list[i], needle))
            n++;
    CSLDestroy(list);
    return n;
}
