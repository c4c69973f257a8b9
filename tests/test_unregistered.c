/* SPDX-License-Identifier: MIT */
/*
 * A program that never calls GDALAllRegister(): the library registers
 * GDAL's drivers at its first context (include/mmcl/context.h), so a scene
 * is written, then embedded, as in a program that did.
 */
#include <stdio.h>

#include <CUnit/CUnit.h>
#include <gdal.h>

#include "mmcl/mmcl.h"
#include "test_scene.h"
#include "test_util.h"

static void
a_program_that_registers_no_driver_writes_its_outputs(void)
{
    CU_ASSERT_EQUAL(GDALGetDriverCount(), 0);
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_PTR_NOT_NULL(GDALGetDriverByName("GTiff"));
    const char *kv_s[] = {"SIZE=64", "SEED=3", NULL};
    mmcl_options *o = mmcl_options_new(ctx, "synth", kv_s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    const char *dir = test_path("unregistered");
    CU_ASSERT_EQUAL(mmcl_synth(ctx, dir, o), MMCL_OK);
    printf("  -> %s\n", mmcl_context_errmsg(ctx));
    mmcl_options_free(o);
    CU_ASSERT_TRUE(test_file_exists(test_scene_file(dir, "optical.tif")));
    mmcl_context_destroy(ctx);
}

int
main(void)
{
    static const test_case cases[] = {
        {"a_program_that_registers_no_driver_writes_its_outputs",
         a_program_that_registers_no_driver_writes_its_outputs},
        {NULL, NULL}};
    int rc = test_run_suite("unregistered", cases);
    GDALDestroyDriverManager();
    return rc;
}
