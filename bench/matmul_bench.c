/* SPDX-License-Identifier: MIT */
/*
 * Benchmark driver of the encoders' products (algorithms/matmul.c), run
 * by bench/bench_embed.py for the roofline of its table. Prints JSON lines
 * on stdout:
 *   {"kind": "engine", ...}  the engine (oneDNN and its ISA, or OpenBLAS),
 *                            the OpenBLAS kernel (openblas_get_corename)
 *   {"kind": "peak", ...}    GFLOP/s of one large product, ROWS x 1024 x
 *                            1024 (default 4096 rows), split by rows over
 *                            T threads, each running its own product on one
 *                            thread as mmcl's workers do: the roof of the
 *                            encoders at T threads. "gflops" in wall time
 *                            (all threads), "gflops_cpu" per CPU second of
 *                            a thread (CLOCK_THREAD_CPUTIME_ID, as mmcl's
 *                            timing line counts the encoders: time a
 *                            thread waits for a core on a shared machine
 *                            is not counted)
 *   {"kind": "shape", ...}   GFLOP per CPU second of the embed MLP's
 *                            shapes on one thread, in blocks of 256 rows
 *                            (the encoders' fixed block) and 1024, with
 *                            cblas_sgemm (one OpenBLAS thread) beside;
 *                            bf16 also "chained": input and output
 *                            already in bf16, as an encoder's hidden
 *                            layers run (no f32 rounding pass)
 * for f32 and, where the CPU runs it, bf16. Times: the median of --runs
 * timed repetitions after one warm-up.
 *
 * usage: matmul_bench [--rows 4096] [--runs 5] [--threads 1,2]
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <time.h>

#include <cblas.h>

#include "blas_threads.h"
#include "matmul.h"
#include "mmcl/context.h"
#include "nn.h"
#include "rng.h"

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double
thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct part {
    int M, K, N, reps;
    mmcl__precision p;
    int chained; /* bf16 in and out (mmcl__matmul_run_typed) */
    float *x, *W, *b, *y;
    unsigned short *xb; /* chained: x in bf16 */
    mmcl__matmul *mm;
    mmcl__matmul_exec *ex;
    mmcl_context *ctx;
    int ok;
    double cpu_s; /* the thread's CPU seconds in its last part_run */
} part;

static int
part_init(part *t)
{
    uint64_t s = 7;
    t->ctx = mmcl_context_create();
    t->x = malloc(sizeof(float) * (size_t)t->M * t->K);
    t->W = malloc(sizeof(float) * (size_t)t->N * t->K);
    t->b = malloc(sizeof(float) * (size_t)t->N);
    t->y = malloc(sizeof(float) * (size_t)t->M * t->N);
    mmcl__rng_fill_normal(&s, t->x, 0, 1, (size_t)t->M * t->K);
    mmcl__rng_fill_normal(&s, t->W, 0, 1, (size_t)t->N * t->K);
    mmcl__rng_fill_normal(&s, t->b, 0, 1, (size_t)t->N);
    t->xb = malloc(sizeof(short) * (size_t)t->M * t->K);
    mmcl__bf16_round(t->xb, t->x, (size_t)t->M * t->K);
    t->mm = mmcl__matmul_create_out(
        t->ctx, t->M, t->K, t->N, t->W, t->b, MMCL__MATMUL_NONE, t->p,
        t->chained ? MMCL__PRECISION_BF16 : MMCL__PRECISION_F32);
    t->ex = mmcl__matmul_exec_create(t->ctx, (size_t)t->M * t->K);
    if (!t->mm || !t->ex) {
        fprintf(stderr, "matmul_bench: %s\n", mmcl_context_errmsg(t->ctx));
        return 0;
    }
    return 1;
}

static void
part_free(part *t)
{
    mmcl__matmul_destroy(t->mm);
    mmcl__matmul_exec_destroy(t->ex);
    mmcl_context_destroy(t->ctx);
    free(t->x);
    free(t->xb);
    free(t->W);
    free(t->b);
    free(t->y);
}

static int
part_run(void *arg)
{
    part *t = arg;
    double c0 = thread_cpu();
    t->ok = 1;
    for (int r = 0; r < t->reps; r++)
        t->ok &= (t->chained
                      ? mmcl__matmul_run_typed(t->ctx, t->mm, t->ex, t->y,
                                               t->xb, MMCL__PRECISION_BF16)
                      : mmcl__matmul_run(t->ctx, t->mm, t->ex, t->y,
                                         t->x)) == MMCL_OK;
    t->cpu_s = thread_cpu() - c0;
    return 0;
}

/* GFLOP/s of rows x K x N split over n_thr threads (median of runs), in
 * wall time, and per CPU second of a thread in *per_cpu. */
static double
peak(int rows, int K, int N, int n_thr, mmcl__precision p, int runs,
     double *per_cpu)
{
    part t[16];
    int M = rows / n_thr;
    for (int i = 0; i < n_thr; i++) {
        t[i] = (part){.M = M, .K = K, .N = N, .reps = 1, .p = p};
        if (!part_init(&t[i]))
            return 0;
    }
    double times[64], cpu[64];
    for (int r = -1; r < runs; r++) {
        thrd_t th[16];
        double t0 = now();
        for (int i = 0; i < n_thr; i++)
            thrd_create(&th[i], part_run, &t[i]);
        for (int i = 0; i < n_thr; i++)
            thrd_join(th[i], NULL);
        if (r >= 0) {
            times[r] = now() - t0;
            cpu[r] = 0;
            for (int i = 0; i < n_thr; i++)
                cpu[r] += t[i].cpu_s / n_thr;
        }
    }
    for (int i = 0; i < n_thr; i++)
        part_free(&t[i]);
    qsort(times, (size_t)runs, sizeof(double), cmp_double);
    qsort(cpu, (size_t)runs, sizeof(double), cmp_double);
    *per_cpu = 2.0 * M * K * N / cpu[runs / 2] / 1e9;
    return 2.0 * M * n_thr * K * N / times[runs / 2] / 1e9;
}

/* One thread: one of the embed MLP's shapes, repeated (as many rows in
 * all whatever the block); per CPU second of the thread. */
static void
shape(int M, int K, int N, mmcl__precision p, int chained, int runs,
      double *gf, double *gf_blas)
{
    part t = {.M = M, .K = K, .N = N, .reps = 50 * 256 / M, .p = p,
              .chained = chained};
    if (!part_init(&t)) {
        *gf = *gf_blas = 0;
        return;
    }
    double times[64], tb[64];
    for (int r = -1; r < runs; r++) {
        double t0 = thread_cpu();
        part_run(&t);
        double t1 = thread_cpu();
        for (int i = 0; i < t.reps; i++)
            mmcl__linear_forward(t.y, t.x, t.W, t.b, M, K, N);
        if (r >= 0) {
            times[r] = t1 - t0;
            tb[r] = thread_cpu() - t1;
        }
    }
    qsort(times, (size_t)runs, sizeof(double), cmp_double);
    qsort(tb, (size_t)runs, sizeof(double), cmp_double);
    double flop = 2.0 * M * K * N * t.reps;
    *gf = flop / times[runs / 2] / 1e9;
    *gf_blas = flop / tb[runs / 2] / 1e9;
    part_free(&t);
}

int
main(int argc, char **argv)
{
    int rows = 4096, runs = 5, thr[8] = {1, 2}, n_thr = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
            rows = atoi(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            n_thr = 0;
            for (char *s = strtok(argv[++i], ","); s && n_thr < 8;
                 s = strtok(NULL, ","))
                thr[n_thr++] = atoi(s);
        } else {
            fprintf(stderr,
                    "usage: matmul_bench [--rows 4096] [--runs 5] "
                    "[--threads 1,2]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 64)
        runs = 5;
    mmcl__blas_set_threads(1);
    mmcl_engine_info e;
    mmcl__engine_info_get(&e);
    char blas[256];
    mmcl__blas_describe(blas, sizeof(blas));
    printf("{\"kind\": \"engine\", \"name\": \"%s\", \"isa\": \"%s\", "
           "\"bf16\": %d, \"why\": \"%s\", \"blas\": \"%s\"}\n",
           e.name, e.isa, e.bf16, e.why, blas);
    fflush(stdout);
    for (int pi = 0; pi < 2; pi++) {
        mmcl__precision p = pi ? MMCL__PRECISION_BF16 : MMCL__PRECISION_F32;
        if (p == MMCL__PRECISION_BF16 && !e.bf16)
            continue;
        for (int i = 0; i < n_thr; i++) {
            if (thr[i] < 1 || thr[i] > 16 || rows % thr[i])
                continue;
            double per_cpu = 0,
                   gf = peak(rows, 1024, 1024, thr[i], p, runs, &per_cpu);
            printf("{\"kind\": \"peak\", \"precision\": \"%s\", \"rows\": %d, "
                   "\"K\": 1024, \"N\": 1024, \"threads\": %d, "
                   "\"gflops\": %.1f, \"gflops_cpu\": %.1f}\n",
                   mmcl__precision_name(p), rows, thr[i], gf, per_cpu);
            fflush(stdout);
        }
        static const int shapes[][2] = {{117, 256}, {256, 256}, {256, 64},
                                        {18, 256}};
        static const int blocks[] = {256, 1024};
        for (int c = 0; c < (p == MMCL__PRECISION_BF16 ? 2 : 1); c++)
            for (size_t k = 0; k < 2; k++)
                for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]);
                     s++) {
                    double gf, gb;
                    int M = blocks[k], K = shapes[s][0], N = shapes[s][1];
                    shape(M, K, N, p, c, runs, &gf, &gb);
                    printf("{\"kind\": \"shape\", \"precision\": \"%s\", "
                           "\"chained\": %d, \"M\": %d, \"K\": %d, "
                           "\"N\": %d, \"gflops\": %.1f, "
                           "\"sgemm_gflops\": %.1f}\n",
                           mmcl__precision_name(p), c, M, K, N, gf, gb);
                    fflush(stdout);
                }
    }
    return 0;
}
