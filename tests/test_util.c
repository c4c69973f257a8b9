/* SPDX-License-Identifier: MIT */
#define _DEFAULT_SOURCE /* mkdtemp */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <ogr_srs_api.h>

int
test_run_suite(const char *suite_name, const test_case *cases)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return EXIT_FAILURE;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    if (!suite) {
        CU_cleanup_registry();
        return EXIT_FAILURE;
    }
    for (const test_case *c = cases; c->name; c++) {
        if (!CU_add_test(suite, c->name, c->fn)) {
            CU_cleanup_registry();
            return EXIT_FAILURE;
        }
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (run == 0) {
        fprintf(stderr, "%s: no test ran\n", suite_name);
        return EXIT_FAILURE;
    }
    return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int
check_common(const char *what, double max_abs, double max_rel, double atol)
{
    int ok = max_abs <= atol;
    printf("  %s: max abs diff %.3g, max rel diff %.3g (tolerance %.3g) %s\n",
           what, max_abs, max_rel, atol, ok ? "ok" : "FAILED");
    return ok;
}

int
test_check_tensor(const char *what, const double *a, const double *b,
                  size_t n, double atol)
{
    double max_abs = 0.0, max_rel = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= max_abs))
            max_abs = isnan(d) ? INFINITY : d;
        double s = fmax(fabs(a[i]), fabs(b[i]));
        if (s > 0 && d / s > max_rel)
            max_rel = d / s;
    }
    return check_common(what, max_abs, max_rel, atol);
}

int
test_check_tensor_f(const char *what, const float *a, const float *b,
                    size_t n, double atol)
{
    double max_abs = 0.0, max_rel = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= max_abs))
            max_abs = isnan(d) ? INFINITY : d;
        double s = fmax(fabs((double)a[i]), fabs((double)b[i]));
        if (s > 0 && d / s > max_rel)
            max_rel = d / s;
    }
    return check_common(what, max_abs, max_rel, atol);
}

const char *
test_tmpdir(void)
{
    static char dir[512];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/mmcl-test-XXXXXX",
                 base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            dir[0] = '\0';
        }
    }
    return dir;
}

const char *
test_path(const char *name)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next];
    next = (next + 1) % 8;
    snprintf(b, sizeof(bufs[0]), "%s/%s", test_tmpdir(), name);
    return b;
}

const char *
test_source_dir(void)
{
    const char *s = getenv("MMCL_SOURCE_DIR");
    return s ? s : ".";
}

const char *
test_binary_dir(void)
{
    const char *s = getenv("MMCL_BINARY_DIR");
    return s ? s : ".";
}

const char *
test_shared_data(void)
{
    static char dir[1024];
    struct stat st;
    const char *env = getenv("MMCL_SHARED_DATA");
    if (env && *env)
        snprintf(dir, sizeof(dir), "%s", env);
    else
        snprintf(dir, sizeof(dir), "%s/../shared/data", test_source_dir());
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("  SKIPPED: real data folder %s is absent\n", dir);
        return NULL;
    }
    return dir;
}

char *
test_wkt_of(const char *srs)
{
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    OSRSetFromUserInput(s, srs);
    char *wkt = NULL;
    OSRExportToWkt(s, &wkt);
    OSRDestroySpatialReference(s);
    return wkt;
}
