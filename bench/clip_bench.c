/* SPDX-License-Identifier: MIT */
/*
 * Benchmark driver for the `clip` training loop (algorithms/clip.c), run by
 * bench/bench_clip.py. Trains two towers d1 -> H -> H -> D and
 * d2 -> H -> H -> D (ReLU) with mmcl__clip_train on N pairs and prints JSON
 * lines on stdout:
 *   {"kind": "clip", ...}        samples/s of every epoch after the first
 *                                (warm-up), per run, the loss curve, and
 *                                the loss of every step with the time
 *                                since the first step began at its end
 *                                (step_loss, step_end_s: time to a loss)
 *   {"kind": "gemm_only", ...}   the same step's GEMMs alone (same shapes,
 *                                transposes and BLAS threads), to split a
 *                                step into GEMM time and the rest
 *   {"kind": "sgemm_peak", ...}  cblas_sgemm on 1024 x 1024 x 1024
 *   {"kind": "blas", ...}        the OpenBLAS build, the kernel it chose
 *                                (openblas_get_corename) and its threads
 * Epoch times come from the progress callback (one timestamp per step), so
 * the library is timed exactly as a user calls it.
 *
 * Data: --x1 / --x2 read raw little-endian float32 matrices (N, d1) and
 * (N, d2) (what bench_clip.py writes, so PyTorch sees the same samples);
 * without them the driver draws X1 ~ N(0, 1) and X2 = X1[:, :8] A^T + 0.3
 * noise itself.
 *
 * usage: clip_bench [--n N] [--x1 F --x2 F] [--d1 117] [--d2 18]
 *                   [--hidden 256] [--dim 64] [--batch 1024] [--epochs 4]
 *                   [--runs 3] [--threads 1] [--tau 0.1] [--lr 1e-3]
 *                   [--seed 1] [--no-peak] [--no-gemm]
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "blas_threads.h"
#include "clip.h"
#include "mmcl/context.h"
#include "nn.h"
#include "rng.h"

typedef struct args {
    int n, d1, d2, hidden, dim, batch, epochs, runs, threads;
    float tau, lr;
    uint64_t seed;
    const char *x1, *x2;
    int peak, gemm;
} args;

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the whole process (all threads): on a shared machine a
 * one-thread run's samples per CPU-second is what it would reach alone. */
static double
cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int
parse(args *a, int argc, char **argv)
{
    *a = (args){.n = 65536,
                .d1 = 117,
                .d2 = 18,
                .hidden = 256,
                .dim = 64,
                .batch = 1024,
                .epochs = 4,
                .runs = 3,
                .threads = 1,
                .tau = 0.1f,
                .lr = 1e-3f,
                .seed = 1,
                .peak = 1,
                .gemm = 1};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--no-peak")) {
            a->peak = 0;
            continue;
        }
        if (!strcmp(k, "--no-gemm")) {
            a->gemm = 0;
            continue;
        }
        if (!v) {
            fprintf(stderr, "clip_bench: %s needs a value\n", k);
            return 0;
        }
        i++;
        if (!strcmp(k, "--n"))
            a->n = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--d1"))
            a->d1 = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--d2"))
            a->d2 = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--hidden"))
            a->hidden = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--dim"))
            a->dim = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--batch"))
            a->batch = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--epochs"))
            a->epochs = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--runs"))
            a->runs = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--threads"))
            a->threads = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--tau"))
            a->tau = strtof(v, NULL);
        else if (!strcmp(k, "--lr"))
            a->lr = strtof(v, NULL);
        else if (!strcmp(k, "--seed"))
            a->seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--x1"))
            a->x1 = v;
        else if (!strcmp(k, "--x2"))
            a->x2 = v;
        else {
            fprintf(stderr, "clip_bench: unknown option %s\n", k);
            return 0;
        }
    }
    if (a->n < 2 || a->d1 < 1 || a->d2 < 1 || a->hidden < 1 || a->dim < 1 ||
        a->batch < 2 || a->epochs < 2 || a->runs < 1 || a->threads < 1 ||
        !a->x1 != !a->x2) {
        fprintf(stderr, "clip_bench: bad arguments (epochs >= 2: the first "
                        "is a warm-up; --x1 and --x2 go together)\n");
        return 0;
    }
    return 1;
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
        fprintf(stderr, "clip_bench: cannot read %zu floats from %s\n", count,
                path);
        free(x);
        return NULL;
    }
    return x;
}

static void
make_data(float *X1, float *X2, int N, int d1, int d2, uint64_t seed)
{
    enum { K = 8 };
    int k = d1 < K ? d1 : K;
    uint64_t s = seed;
    float A[64 * K];
    mmcl__rng_fill_normal(&s, X1, 0.0, 1.0, (size_t)N * d1);
    mmcl__rng_fill_normal(&s, X2, 0.0, 0.3, (size_t)N * d2);
    mmcl__rng_fill_normal(&s, A, 0.0, 1.0 / 3.0,
                          (size_t)(d2 < 64 ? d2 : 64) * k);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < d2 && i < 64; i++) {
            float acc = 0.0f;
            for (int j = 0; j < k; j++)
                acc += A[i * k + j] * X1[(size_t)n * d1 + j];
            X2[(size_t)n * d2 + i] += acc;
        }
}

/* Progress callback: the time at the end of every step and epoch. */
typedef struct clock_marks {
    int steps_per_epoch;
    int step;
    double *epoch_end; /* (epochs + 1): [0] = start */
    double *epoch_cpu; /* (epochs + 1): process CPU time, same points */
    double *step_end;  /* (epochs * steps_per_epoch): since [0] above */
} clock_marks;

static int
mark(double complete, const char *msg, void *user)
{
    clock_marks *m = user;
    (void)msg;
    if (complete == 0.0) {
        m->step = 0;
        m->epoch_end[0] = now();
        m->epoch_cpu[0] = cpu_now();
        return 1;
    }
    m->step++;
    m->step_end[m->step - 1] = now() - m->epoch_end[0];
    if (m->step % m->steps_per_epoch == 0) {
        m->epoch_end[m->step / m->steps_per_epoch] = now();
        m->epoch_cpu[m->step / m->steps_per_epoch] = cpu_now();
    }
    return 1;
}

/* FLOPs of the GEMMs of one step for a tower of sizes s[0..L] and batch B:
 * forward y = x W^T, backward dW = dy^T x and (layers > 0) dx = dy W. */
static double
tower_flops(const int *s, int L, int B)
{
    double f = 0.0;
    for (int l = 0; l < L; l++) {
        double mnk = (double)B * s[l] * s[l + 1];
        f += 2.0 * mnk * (l > 0 ? 3.0 : 2.0);
    }
    return f;
}

/* One GEMM as nn.c / infonce.c issue it (row-major). */
typedef struct gemm {
    enum CBLAS_TRANSPOSE ta, tb;
    int M, N, K;
    float beta;
} gemm;

static int
step_gemms(gemm *g, const int *s, int L, int B)
{
    int n = 0;
    for (int l = 0; l < L; l++) /* forward */
        g[n++] = (gemm){CblasNoTrans, CblasTrans, B, s[l + 1], s[l], 0.0f};
    for (int l = L - 1; l >= 0; l--) { /* backward */
        if (l > 0)
            g[n++] =
                (gemm){CblasNoTrans, CblasNoTrans, B, s[l], s[l + 1], 1.0f};
        g[n++] = (gemm){CblasTrans, CblasNoTrans, s[l + 1], s[l], B, 1.0f};
    }
    return n;
}

/* Median of n doubles (sorts v). */
static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void
print_list(const char *name, const double *v, int n, int decimals)
{
    printf("\"%s\": [", name);
    for (int i = 0; i < n; i++)
        printf("%s%.*f", i ? ", " : "", decimals, v[i]);
    printf("]");
}

/* Times the GEMMs of one training step alone; returns seconds per step. */
static double
time_gemms(const int *s1, const int *s2, int L, int B, int D, int reps)
{
    gemm g[3 * 16 + 3];
    int n = step_gemms(g, s1, L, B);
    n += step_gemms(g + n, s2, L, B);
    g[n++] = (gemm){CblasNoTrans, CblasTrans, B, B, D, 0.0f};   /* logits */
    g[n++] = (gemm){CblasNoTrans, CblasNoTrans, B, D, B, 1.0f}; /* dz1 */
    g[n++] = (gemm){CblasTrans, CblasNoTrans, B, D, B, 1.0f};   /* dz2 */

    size_t big = 0; /* largest operand, in floats */
    for (int i = 0; i < n; i++) {
        size_t mk = (size_t)g[i].M * g[i].K, kn = (size_t)g[i].K * g[i].N,
               mn = (size_t)g[i].M * g[i].N;
        size_t m = mk > kn ? mk : kn;
        m = m > mn ? m : mn;
        big = m > big ? m : big;
    }
    float *A = malloc(big * sizeof(float)), *Bm = malloc(big * sizeof(float)),
          *C = malloc(big * sizeof(float));
    uint64_t rs = 5;
    mmcl__rng_fill_normal(&rs, A, 0.0, 0.1, big);
    mmcl__rng_fill_normal(&rs, Bm, 0.0, 0.1, big);
    memset(C, 0, big * sizeof(float));

    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < n; i++) {
            const gemm *q = &g[i];
            int lda = q->ta == CblasNoTrans ? q->K : q->M;
            int ldb = q->tb == CblasNoTrans ? q->N : q->K;
            cblas_sgemm(CblasRowMajor, q->ta, q->tb, q->M, q->N, q->K, 1.0f, A,
                        lda, Bm, ldb, q->beta, C, q->N);
        }
        double dt = now() - t0;
        if (r > 0 && dt < best) /* r = 0 warms up */
            best = dt;
    }
    free(A);
    free(Bm);
    free(C);
    return best;
}

static double
sgemm_peak(int reps)
{
    enum { S = 1024 };
    float *A = malloc((size_t)S * S * sizeof(float));
    float *Bm = malloc((size_t)S * S * sizeof(float));
    float *C = calloc((size_t)S * S, sizeof(float));
    uint64_t rs = 9;
    mmcl__rng_fill_normal(&rs, A, 0.0, 1.0, (size_t)S * S);
    mmcl__rng_fill_normal(&rs, Bm, 0.0, 1.0, (size_t)S * S);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, S, S, 1.0f, A,
                    S, Bm, S, 0.0f, C, S);
        double dt = now() - t0;
        if (r > 0 && dt < best)
            best = dt;
    }
    free(A);
    free(Bm);
    free(C);
    return 2.0 * S * S * (double)S / best / 1e9;
}

int
main(int argc, char **argv)
{
    args a;
    if (!parse(&a, argc, argv))
        return 2;
    int rc = 1;
    size_t n1 = (size_t)a.n * a.d1, n2 = (size_t)a.n * a.d2;
    float *X1 = NULL, *X2 = NULL;
    mmcl_context *ctx = mmcl_context_create();
    if (a.x1) {
        X1 = read_raw(a.x1, n1);
        X2 = read_raw(a.x2, n2);
    } else {
        X1 = malloc(n1 * sizeof(float));
        X2 = malloc(n2 * sizeof(float));
        if (X1 && X2)
            make_data(X1, X2, a.n, a.d1, a.d2, a.seed);
    }
    if (!ctx || !X1 || !X2)
        goto done;

    mmcl__blas_set_threads(a.threads);
    char blas[512];
    mmcl__blas_describe(blas, sizeof(blas));
#ifdef OPENBLAS_VERSION
    const char *core = openblas_get_corename();
#else
    const char *core = "not OpenBLAS";
#endif
    printf("{\"kind\": \"blas\", \"threads\": %d, \"describe\": \"%s\", "
           "\"corename\": \"%s\"}\n",
           mmcl__blas_get_threads(), blas, core);

    enum { L = 3 };
    const int s1[L + 1] = {a.d1, a.hidden, a.hidden, a.dim};
    const int s2[L + 1] = {a.d2, a.hidden, a.hidden, a.dim};
    int B = a.batch < a.n ? a.batch : a.n;
    int steps = a.n / B;
    double flops_step = tower_flops(s1, L, B) + tower_flops(s2, L, B) +
                        3.0 * 2.0 * (double)B * B * a.dim;

    mmcl_clip_config cfg;
    mmcl__clip_config_default(&cfg);
    cfg.epochs = a.epochs;
    cfg.batch = B;
    cfg.lr = a.lr;
    cfg.weight_decay = 1e-4f;
    cfg.tau = a.tau;
    cfg.seed = a.seed;
    cfg.n_threads = a.threads;

    int n_timed = a.epochs - 1;
    double *rates = malloc((size_t)a.runs * n_timed * sizeof(double));
    double *loss = malloc((size_t)a.epochs * sizeof(double));
    double *marks = malloc((size_t)(a.epochs + 1) * sizeof(double));
    double *cpu_marks = malloc((size_t)(a.epochs + 1) * sizeof(double));
    double *cpu_rates = malloc((size_t)n_timed * sizeof(double));
    size_t n_steps = (size_t)a.epochs * steps;
    double *step_loss = malloc(n_steps * sizeof(double));
    double *step_end = malloc(n_steps * sizeof(double));
    if (!rates || !loss || !marks || !cpu_marks || !cpu_rates || !step_loss ||
        !step_end)
        goto done_run;
    for (int r = 0; r < a.runs; r++) {
        mmcl_mlp *f1 =
            mmcl__mlp_create(ctx, s1, L + 1, MMCL_ACTIVATION_RELU, 1);
        mmcl_mlp *f2 =
            mmcl__mlp_create(ctx, s2, L + 1, MMCL_ACTIVATION_RELU, 1);
        if (!f1 || !f2) {
            mmcl__mlp_destroy(f1);
            mmcl__mlp_destroy(f2);
            goto done_run;
        }
        uint64_t init = a.seed + 100;
        mmcl__mlp_init(f1, &init);
        mmcl__mlp_init(f2, &init);
        clock_marks m = {steps, 0, marks, cpu_marks, step_end};
        double t0 = now();
        mmcl_status st = mmcl__clip_train(ctx, f1, f2, NULL, X1, X2, a.n, &cfg,
                                          loss, step_loss, mark, &m);
        double wall = now() - t0;
        mmcl__mlp_destroy(f1);
        mmcl__mlp_destroy(f2);
        if (st != MMCL_OK) {
            fprintf(stderr, "clip_bench: %s\n", mmcl_context_errmsg(ctx));
            goto done_run;
        }
        double *rr = rates + (size_t)r * n_timed;
        for (int e = 1; e < a.epochs; e++) {
            rr[e - 1] = (double)steps * B / (marks[e + 1] - marks[e]);
            cpu_rates[e - 1] =
                (double)steps * B / (cpu_marks[e + 1] - cpu_marks[e]);
        }
        printf("{\"kind\": \"clip\", \"run\": %d, \"threads\": %d, \"n\": %d, "
               "\"batch\": %d, \"steps_per_epoch\": %d, \"wall_s\": %.4f, "
               "\"first_epoch_s\": %.4f, ",
               r, a.threads, a.n, B, steps, wall, marks[1] - marks[0]);
        print_list("samples_per_s", rr, n_timed, 1);
        printf(", ");
        print_list("samples_per_cpu_s", cpu_rates, n_timed, 1);
        printf(", ");
        print_list("loss", loss, a.epochs, 6);
        printf(", ");
        print_list("step_loss", step_loss, (int)n_steps, 6);
        printf(", ");
        print_list("step_end_s", step_end, (int)n_steps, 5);
        printf(", \"gemm_flops_per_step\": %.6g}\n", flops_step);
        fflush(stdout);
    }
    double med = median(rates, a.runs * n_timed);
    printf("{\"kind\": \"clip_summary\", \"threads\": %d, "
           "\"median_samples_per_s\": "
           "%.1f, \"ms_per_step\": %.4f, \"gemm_gflops\": %.3f}\n",
           a.threads, med, 1e3 * B / med, flops_step * med / B / 1e9);

    if (a.gemm) {
        double t = time_gemms(s1, s2, L, B, a.dim, 12);
        printf(
            "{\"kind\": \"gemm_only\", \"threads\": %d, \"ms_per_step\": %.4f, "
            "\"gflops\": %.3f, \"share_of_step\": %.4f}\n",
            a.threads, 1e3 * t, flops_step / t / 1e9, t / (B / med));
    }
    if (a.peak)
        printf(
            "{\"kind\": \"sgemm_peak\", \"threads\": %d, \"m\": 1024, \"n\": "
            "1024, \"k\": 1024, \"gflops\": %.3f}\n",
            a.threads, sgemm_peak(8));
    rc = 0;

done_run:
    free(rates);
    free(loss);
    free(marks);
    free(cpu_marks);
    free(cpu_rates);
    free(step_loss);
    free(step_end);
done:
    free(X1);
    free(X2);
    mmcl_context_destroy(ctx);
    return rc;
}
