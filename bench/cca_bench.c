/* SPDX-License-Identifier: MIT */
/*
 * Benchmark driver for the closed-form `cca` objective, run by
 * bench/bench_cca.py: reads N pairs of standardised samples from raw
 * little-endian float32 files X1 (N, d1) and X2 (N, d2) (written once by
 * the script, so NumPy and scikit-learn see the same samples), then times
 * the whole fit as the library runs it:
 *   moments over row chunks (mmcl__moments_accumulate_rows: one float
 *   SYRK of each chunk's shifted rows, summed in double in chunk order,
 *   chunks on --threads threads with a single-threaded BLAS each, as
 *   train runs them), centred covariances
 *   (mmcl__cov_from_moments), Cholesky whitening + SVD (mmcl__cca).
 * Allocations are inside the timed region (a user's call makes them too).
 * Prints JSON lines: one per run ({"kind": "cca_run", "seconds", and the
 * split moments / solve}), then {"kind": "cca", median seconds, rho}.
 *
 * usage: cca_bench --x1 F --x2 F --n N [--d1 117] [--d2 18] [--k 8]
 *                  [--eps 1e-6] [--chunk 4096] [--runs 7] [--threads 1]
 * (--chunk defaults to MMCL__MOMENTS_BATCH, train's batch.)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas_threads.h"
#include "cca.h"
#include "linalg.h"
#include "mmcl/context.h"

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *
read_raw(const char *path, size_t count)
{
    FILE *fp = fopen(path, "rb");
    float *x = malloc(count * sizeof(float));
    size_t got = fp && x ? fread(x, sizeof(float), count, fp) : 0;
    if (fp)
        fclose(fp);
    if (got != count) {
        fprintf(stderr, "cca_bench: cannot read %zu floats from %s\n", count,
                path);
        free(x);
        return NULL;
    }
    return x;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * One fit. rho (k) out; t_moments / t_solve: seconds of the two phases.
 */
static mmcl_status
fit(mmcl_context *ctx, double *rho, double *t_moments, double *t_solve,
    const float *X1, const float *X2, int N, int d1, int d2, int k, double eps,
    int chunk, int threads)
{
    double t0 = now();
    mmcl_status st = MMCL_ERR_NO_MEMORY;
    size_t n11 = (size_t)d1 * d1, n22 = (size_t)d2 * d2, n12 = (size_t)d1 * d2;
    /* S11 | S22 | S12 | s1 | s2 zeroed together. */
    double *S =
        calloc(n11 + n22 + n12 + (size_t)d1 + (size_t)d2, sizeof(double));
    double *W1 = malloc((size_t)d1 * k * sizeof(double));
    double *W2 = malloc((size_t)d2 * k * sizeof(double));
    if (!S || !W1 || !W2)
        goto done;
    double *S11 = S, *S22 = S11 + n11, *S12 = S22 + n22;
    double *s1 = S12 + n12, *s2 = s1 + d1;
    st = mmcl__moments_accumulate_rows(ctx, S11, S22, S12, s1, s2, X1, X2, N,
                                       d1, d2, chunk, threads);
    if (st != MMCL_OK)
        goto done;
    mmcl__cov_from_moments(S11, S11, s1, s1, N, d1, d1);
    mmcl__cov_from_moments(S22, S22, s2, s2, N, d2, d2);
    mmcl__cov_from_moments(S12, S12, s1, s2, N, d1, d2);
    double t1 = now();
    st = mmcl__cca(ctx, W1, W2, rho, S11, S22, S12, eps, d1, d2, k);
    double t2 = now();
    *t_moments = t1 - t0;
    *t_solve = t2 - t1;
done:
    free(S);
    free(W1);
    free(W2);
    return st;
}

int
main(int argc, char **argv)
{
    const char *x1 = NULL, *x2 = NULL;
    int N = 0, d1 = 117, d2 = 18, k = 8, chunk = MMCL__MOMENTS_BATCH;
    int runs = 7, threads = 1;
    double eps = 1e-6;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *key = argv[i], *v = argv[i + 1];
        if (!strcmp(key, "--x1"))
            x1 = v;
        else if (!strcmp(key, "--x2"))
            x2 = v;
        else if (!strcmp(key, "--n"))
            N = (int)strtol(v, NULL, 10);
        else if (!strcmp(key, "--d1"))
            d1 = (int)strtol(v, NULL, 10);
        else if (!strcmp(key, "--d2"))
            d2 = (int)strtol(v, NULL, 10);
        else if (!strcmp(key, "--k"))
            k = (int)strtol(v, NULL, 10);
        else if (!strcmp(key, "--eps"))
            eps = strtod(v, NULL);
        else if (!strcmp(key, "--chunk"))
            chunk = (int)strtol(v, NULL, 10);
        else if (!strcmp(key, "--runs"))
            runs = (int)strtol(v, NULL, 10);
        else if (!strcmp(key, "--threads"))
            threads = (int)strtol(v, NULL, 10);
        else {
            fprintf(stderr, "cca_bench: unknown option %s\n", key);
            return 2;
        }
    }
    if (!x1 || !x2 || N < 2 || d1 < 1 || d2 < 1 || k < 1 || chunk < 1 ||
        runs < 1 || runs > 100) {
        fprintf(stderr, "usage: cca_bench --x1 F --x2 F --n N [--d1 117] "
                        "[--d2 18] [--k 8] [--eps 1e-6] [--chunk 4096] "
                        "[--runs 7] [--threads 1]\n");
        return 2;
    }

    int rc = 1;
    mmcl_context *ctx = mmcl_context_create();
    float *X1 = read_raw(x1, (size_t)N * d1);
    float *X2 = read_raw(x2, (size_t)N * d2);
    double *rho = malloc((size_t)k * sizeof(double));
    if (!ctx || !X1 || !X2 || !rho)
        goto done;
    mmcl__blas_set_threads(threads);
    char blas[512];
    mmcl__blas_describe(blas, sizeof(blas));
    printf("{\"kind\": \"blas\", \"threads\": %d, \"describe\": \"%s\"}\n",
           mmcl__blas_get_threads(), blas);

    double total[100], tm = 0.0, ts = 0.0;
    for (int r = 0; r < runs; r++) {
        mmcl_status st =
            fit(ctx, rho, &tm, &ts, X1, X2, N, d1, d2, k, eps, chunk, threads);
        if (st != MMCL_OK) {
            fprintf(stderr, "cca_bench: %s\n", mmcl_context_errmsg(ctx));
            goto done;
        }
        total[r] = tm + ts;
        printf("{\"kind\": \"cca_run\", \"run\": %d, \"seconds\": %.6f, "
               "\"moments_s\": %.6f, \"solve_s\": %.6f}\n",
               r, tm + ts, tm, ts);
    }
    qsort(total, (size_t)runs, sizeof(double), cmp_double);
    double med = runs % 2 ? total[runs / 2]
                          : 0.5 * (total[runs / 2 - 1] + total[runs / 2]);
    printf("{\"kind\": \"cca\", \"threads\": %d, \"n\": %d, \"d1\": %d, "
           "\"d2\": %d, \"k\": %d, \"eps\": %g, \"chunk\": %d, "
           "\"median_s\": %.6f, \"rho\": [",
           threads, N, d1, d2, k, eps, chunk, med);
    for (int j = 0; j < k; j++)
        printf("%s%.12f", j ? ", " : "", rho[j]);
    printf("]}\n");
    rc = 0;
done:
    free(rho);
    free(X1);
    free(X2);
    mmcl_context_destroy(ctx);
    return rc;
}
