/* SPDX-License-Identifier: MIT */
/*
 * The BLAS thread guard (algorithms/blas_threads.h): sections that overlap
 * on several threads of one process run the BLAS at the fewest threads any
 * of them asked for, and the last to leave restores the process's count,
 * whatever the order they enter and leave in; and two mmcl_embed() calls
 * on two threads (the API is reentrant) write the same maps as one alone
 * and leave the process's count as it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include <CUnit/CUnit.h>
#include <gdal.h>

#include "blas_threads.h"
#include "mmcl/maps.h"
#include "test_scene.h"
#include "test_util.h"

/* The process's count for these tests: 3, so that a restore to it is told
 * apart from the 1 and 2 that sections ask for. */
static int
set_process_threads(void)
{
    mmcl__blas_set_threads(3);
    if (mmcl__blas_get_threads() != 3) {
        printf("  -> the BLAS cannot run 3 threads here (%d): not OpenBLAS?\n",
               mmcl__blas_get_threads());
        return 0;
    }
    return 1;
}

static void
overlapping_sections_restore_the_count_in_any_order(void)
{
    if (!set_process_threads()) {
        CU_FAIL("the BLAS thread count cannot be set");
        return;
    }
    /* Nested on one thread, left in the order entered (not LIFO). */
    mmcl__blas_threads_enter(1);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 1);
    mmcl__blas_threads_enter(1);
    mmcl__blas_threads_leave(1);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 1);
    mmcl__blas_threads_leave(1);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 3);

    /* A section asking for 2 beside one asking for 1: 1 while both run, 2
     * once only the first is left, 3 after both. */
    mmcl__blas_threads_enter(2);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 2);
    mmcl__blas_threads_enter(1);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 1);
    mmcl__blas_threads_leave(1);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 2);
    mmcl__blas_threads_leave(2);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 3);

    /* The same, left the other way round. */
    mmcl__blas_threads_enter(1);
    mmcl__blas_threads_enter(2);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 1);
    mmcl__blas_threads_leave(1);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 2);
    mmcl__blas_threads_leave(2);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 3);

    /* A section that asks for nothing changes nothing. */
    mmcl__blas_threads_enter(0);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 3);
    mmcl__blas_threads_leave(0);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 3);
    mmcl__blas_set_threads(1);
}

typedef struct embed_run {
    const mmcl_model *model;
    const char *optical, *sar, *out;
    thrd_t thread;
    mmcl_status status;
    char message[512];
} embed_run;

static int
embed_main(void *arg)
{
    embed_run *r = arg;
    mmcl_context *ctx = mmcl_context_create();
    const char *kv[] = {"THREADS=2", "TILE=32", NULL};
    mmcl_options *o = mmcl_options_new(ctx, "embed", kv);
    const char *optical[1] = {r->optical};
    r->status = o ? mmcl_embed(ctx, r->model, optical, 1,
                              (const char *const[]){r->sar}, 1, r->out, o)
                  : MMCL_ERR_INVALID_ARG;
    snprintf(r->message, sizeof(r->message), "%s",
             mmcl_context_errmsg(ctx));
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
    return 0;
}

static int
same_raster(const char *a, const char *b)
{
    int w1, h1, n1, w2, h2, n2;
    float *x = test_read_raster(a, &w1, &h1, &n1);
    float *y = test_read_raster(b, &w2, &h2, &n2);
    int same = x && y && w1 == w2 && h1 == h2 && n1 == n2 &&
               memcmp(x, y, (size_t)w1 * h1 * n1 * sizeof(float)) == 0;
    free(x);
    free(y);
    return same;
}

static void
two_embeds_on_two_threads_write_the_maps_of_one_and_restore_the_count(void)
{
    const char *kv_s[] = {"SIZE=256", "SEED=5", NULL};
    const char *scene = test_make_scene("two_embeds", kv_s);
    const char *kv_t[] = {"OBJECTIVE=cca", "DIM=2", "SAMPLES=3000", NULL};
    mmcl_model *m = test_train_model(scene, kv_t);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    if (!set_process_threads()) {
        CU_FAIL("the BLAS thread count cannot be set");
        mmcl_model_destroy(m);
        return;
    }
    /* Own copies: the test helpers' paths live in rotating buffers. */
    char optical[1200], sar[1200], alone_out[1200];
    snprintf(optical, sizeof(optical), "%s",
             test_scene_file(scene, "optical.tif"));
    snprintf(sar, sizeof(sar), "%s", test_scene_file(scene, "sar.tif"));
    snprintf(alone_out, sizeof(alone_out), "%s", test_path("alone.tif"));
    embed_run alone = {
        .model = m, .optical = optical, .sar = sar, .out = alone_out};
    embed_main(&alone);
    CU_ASSERT_EQUAL_FATAL(alone.status, MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 3);

    /* Several rounds: the two calls start together and overlap for most
     * of their run, entering and leaving in whatever order they reach. */
    for (int round = 0; round < 4; round++) {
        embed_run r[2];
        char name[64], out[2][4096];
        for (int i = 0; i < 2; i++) {
            r[i] = alone;
            snprintf(name, sizeof(name), "pair_%d_%d.tif", round, i);
            snprintf(out[i], sizeof(out[i]), "%s", test_path(name));
            r[i].out = out[i];
            remove(r[i].out);
        }
        for (int i = 0; i < 2; i++)
            CU_ASSERT_EQUAL_FATAL(
                thrd_create(&r[i].thread, embed_main, &r[i]), thrd_success);
        for (int i = 0; i < 2; i++)
            thrd_join(r[i].thread, NULL);
        for (int i = 0; i < 2; i++) {
            CU_ASSERT_EQUAL(r[i].status, MMCL_OK);
            if (r[i].status != MMCL_OK)
                printf("  -> %s\n", r[i].message);
            CU_ASSERT_TRUE(same_raster(alone.out, r[i].out));
        }
        CU_ASSERT_EQUAL(mmcl__blas_get_threads(), 3);
    }
    mmcl__blas_set_threads(1);
    mmcl_model_destroy(m);
}

int
main(void)
{
    GDALAllRegister();
    static const test_case cases[] = {
        {"overlapping_sections_restore_the_count_in_any_order",
         overlapping_sections_restore_the_count_in_any_order},
        {"two_embeds_on_two_threads_write_the_maps_of_one_and_restore_the_"
         "count",
         two_embeds_on_two_threads_write_the_maps_of_one_and_restore_the_count},
        {NULL, NULL}};
    int rc = test_run_suite("blas_threads", cases);
    GDALDestroyDriverManager();
    return rc;
}
