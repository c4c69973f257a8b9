/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the tests that work on rasters: synthetic scenes made
 * with mmcl_synth, models trained on them, and whole rasters read back.
 * Every path lives in test_tmpdir().
 */
#ifndef MMCL_TEST_SCENE_H
#define MMCL_TEST_SCENE_H

#include "mmcl/mmcl.h"

/* A scene written by mmcl_synth with @p kv into test_path(@p dir); returns
 * the folder (static storage, one of 16 rotating). Fails the test (fatal)
 * when synth fails. */
const char *test_make_scene(const char *dir, const char *const *kv);

/* "<scene>/<name>" (static storage, one of 16 rotating, apart from the
 * scene folders). */
const char *test_scene_file(const char *scene, const char *name);

/* A model trained by mmcl_train on the scene's optical.tif and sar.tif
 * with @p kv (fatal on failure); free with mmcl_model_destroy(). */
mmcl_model *test_train_model(const char *scene, const char *const *kv);

/* All bands of a raster as float32, band-sequential; NULL if it cannot be
 * read. Free with free(). */
float *test_read_raster(const char *path, int *w, int *h, int *bands);

/* 1 when @p path exists. */
int test_file_exists(const char *path);

/* Number of entries of test_tmpdir() whose name contains @p needle. */
int test_count_files_like(const char *needle);

#endif /* MMCL_TEST_SCENE_H */
