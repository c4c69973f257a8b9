/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the CUnit test programs: running a registry, comparing
 * tensors with a stated tolerance, temporary folders, the shared data folder.
 */
#ifndef MMCL_TEST_UTIL_H
#define MMCL_TEST_UTIL_H

#include <stddef.h>

#include <CUnit/CUnit.h>

typedef struct test_case {
    const char *name;
    CU_TestFunc fn;
} test_case;

/*
 * Registers @p cases (terminated by {NULL, NULL}) in one suite named
 * @p suite, runs them verbosely and returns the process exit code
 * (0 when every assertion passed).
 */
int test_run_suite(const char *suite, const test_case *cases);

/*
 * Max abs and rel differences between @p a and @p b (n values); prints a
 * line naming @p what and returns 1 when the max abs diff <= @p atol.
 */
int test_check_tensor(const char *what, const double *a, const double *b,
                      size_t n, double atol);
int test_check_tensor_f(const char *what, const float *a, const float *b,
                        size_t n, double atol);

/* A fresh temporary folder (mkdtemp under TMPDIR); static storage. */
const char *test_tmpdir(void);

/* Path inside test_tmpdir(); returns a static buffer (one of 8, rotating). */
const char *test_path(const char *name);

/*
 * The real Sentinel-1/2 data folder (../shared/data relative to the source
 * tree, or $MMCL_SHARED_DATA), or NULL with a printed notice when absent:
 * tests using it then skip, saying so.
 */
const char *test_shared_data(void);

/* The WKT of the CRS @p srs (any GDAL SRS definition: "EPSG:32631"), or
 * NULL; free with CPLFree. */
char *test_wkt_of(const char *srs);

/* The source tree ($MMCL_SOURCE_DIR) and build tree ($MMCL_BINARY_DIR). */
const char *test_source_dir(void);
const char *test_binary_dir(void);

#endif /* MMCL_TEST_UTIL_H */
