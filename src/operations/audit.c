/* SPDX-License-Identifier: MIT */
/*
 * mmcl_audit: the information-loss maps of an embedding raster made
 * elsewhere (design section 4.6, docs/audit.md).
 *
 * 1. The pair is sampled as training samples it (sample.c, 1 x 1 patches:
 *    the standardized centre-pixel bands c_m), and the embedding is read
 *    at the sampled pixels (samples where it is invalid are dropped).
 * 2. Per modality, three ridge decoders of c_m: from the embedding h
 *    (aligned), from the top-k PCA of c_m (unimodal, k the embedding's
 *    dimension, as mmcl_infoloss's baseline) and from the other modality's
 *    bands (non-redundancy). Each one's ridge penalty is chosen by
 *    cross-validation over spatial blocks (BLOCKS x BLOCKS blocks of the
 *    optical grid, each block one fold, fixed by position), so that a 64-
 *    or 128-band embedding cannot score by overfitting; the report gives
 *    the cross-validated R^2, and the maps use the decoder refitted on
 *    the whole sample with the chosen penalty (the folds' decoders differ
 *    from it by O(k / N), far below the maps' precision for N >> k).
 * 3. The decoders become an encoder without MLP whose representation is
 *    read from the raster (maps_internal.h, def.embedding), and the map is
 *    written by the map machinery of mmcl_infoloss (map_run.c): tile by
 *    tile, the same for any tile size and thread count.
 * The noise floors (docs/audit.md): the unimodal one as for a model; the
 * aligned one is the noise variance itself, what a loss reads when the
 * embedding carries none of the sensor noise of the pixel.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_string.h>

#include "mmcl/audit.h"

#include "audit_internal.h"
#include "blas_info_internal.h"
#include "context_internal.h"
#include "embedding_raster_internal.h"
#include "linalg.h"
#include "maps_internal.h"
#include "model_schema_internal.h"
#include "options_internal.h"
#include "pca.h"
#include "ridge.h"
#include "sample_internal.h"
#include "style_internal.h"
#include "writer_internal.h"

/* Ridge penalties tried, relative to the mean variance of the features. */
static const double lambda_grid[] = {1e-6, 1e-5, 1e-4, 1e-3,
                                     1e-2, 1e-1, 1.0};
enum { N_LAMBDA = sizeof(lambda_grid) / sizeof(lambda_grid[0]) };

/* Fewest samples a fold's training side needs per feature. */
enum { MIN_ROWS_PER_FEATURE = 2 };

/* A decoder fitted with cross-validation: its layer (W (q, p), b (q)), the
 * penalty chosen (relative), the cross-validated SSE and the total SS of
 * each target. */
typedef struct cv_decoder {
    float *W, *b;
    double lambda;
    double *sse, *sst; /* (q) */
} cv_decoder;

static void
cv_decoder_free(cv_decoder *d)
{
    free(d->W);
    free(d->b);
    free(d->sse);
    free(d->sst);
}

/* Raw moments of the rows of one fold. */
typedef struct fold_moments {
    double n;
    double *Sxx, *Sxy, *Syy, *sx, *sy; /* (p,p) (p,q) (q,q) (p) (q) */
} fold_moments;

static void
fold_moments_free(fold_moments *f, int n)
{
    for (int i = 0; f && i < n; i++) {
        free(f[i].Sxx);
        free(f[i].Sxy);
        free(f[i].Syy);
        free(f[i].sx);
        free(f[i].sy);
    }
    free(f);
}

/* a = b - c (n values); c may be NULL (a = b). */
static void
diff(double *a, const double *b, const double *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] - (c ? c[i] : 0.0);
}

/* Fits y ~ B^T x + b0 on the moments @p tr (the training rows) with the
 * penalty @p lambda; B (p, q), b0 (q). */
static mmcl_status
fit_on(mmcl_context *ctx, const fold_moments *tr, double lambda, int p,
       int q, double *B, double *b0, double *C11, double *C12, double *m1,
       double *m2)
{
    mmcl__cov_from_moments(C11, tr->Sxx, tr->sx, tr->sx, tr->n, p, p);
    mmcl__cov_from_moments(C12, tr->Sxy, tr->sx, tr->sy, tr->n, p, q);
    for (int i = 0; i < p; i++)
        m1[i] = tr->sx[i] / tr->n;
    for (int j = 0; j < q; j++)
        m2[j] = tr->sy[j] / tr->n;
    return mmcl__ridge_fit_centred(ctx, B, b0, C11, C12, m1, m2, lambda, p,
                                   q);
}

/* Adds to sse (q) the squared errors of y - B^T x - b0 over the rows of
 * fold @p f, from its raw moments. */
static void
fold_sse(double *sse, const fold_moments *f, const double *B,
         const double *b0, int p, int q)
{
    for (int j = 0; j < q; j++) {
        double cross = 0, quad = 0, lin = 0;
        for (int i = 0; i < p; i++) {
            double bij = B[(size_t)i * q + j];
            cross += bij * f->Sxy[(size_t)i * q + j];
            lin += bij * f->sx[i];
            double t = 0;
            for (int l = 0; l < p; l++)
                t += f->Sxx[(size_t)i * p + l] * B[(size_t)l * q + j];
            quad += bij * t;
        }
        double s = f->Syy[(size_t)j * q + j] - 2 * cross -
                   2 * b0[j] * f->sy[j] + quad + 2 * b0[j] * lin +
                   f->n * b0[j] * b0[j];
        sse[j] += s > 0 ? s : 0;
    }
}

/*
 * The ridge decoder of Y (N, q) from X (N, p), its penalty chosen by
 * cross-validation over the folds fold[n] (0 .. n_folds - 1).
 */
static mmcl_status
cv_ridge(mmcl_context *ctx, const float *X, int p, const float *Y, int q,
         int N, const int *fold, int n_folds, cv_decoder *out)
{
    memset(out, 0, sizeof(*out));
    mmcl_status st = MMCL_OK;
    fold_moments *f = calloc((size_t)n_folds + 1, sizeof(*f));
    size_t pp = (size_t)p * p, pq = (size_t)p * q, qq = (size_t)q * q;
    double *work = mmcl__malloc_array(ctx, (size_t)(p + q), 1, sizeof(double));
    double *B = mmcl__malloc_array(ctx, pq, 1, sizeof(double));
    double *b0 = mmcl__malloc_array(ctx, (size_t)q, 1, sizeof(double));
    double *C11 = mmcl__malloc_array(ctx, pp, 1, sizeof(double));
    double *C12 = mmcl__malloc_array(ctx, pq, 1, sizeof(double));
    double *m1 = mmcl__malloc_array(ctx, (size_t)p, 1, sizeof(double));
    double *m2 = mmcl__malloc_array(ctx, (size_t)q, 1, sizeof(double));
    double *sse = mmcl__calloc_array(ctx, (size_t)N_LAMBDA * q, 1,
                                     sizeof(double));
    out->sse = mmcl__calloc_array(ctx, (size_t)q, 1, sizeof(double));
    out->sst = mmcl__calloc_array(ctx, (size_t)q, 1, sizeof(double));
    out->W = mmcl__malloc_array(ctx, pq, 1, sizeof(float));
    out->b = mmcl__malloc_array(ctx, (size_t)q, 1, sizeof(float));
    if (!f) {
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    for (int i = 0; i <= n_folds; i++) {
        f[i].Sxx = mmcl__calloc_array(ctx, pp, 1, sizeof(double));
        f[i].Sxy = mmcl__calloc_array(ctx, pq, 1, sizeof(double));
        f[i].Syy = mmcl__calloc_array(ctx, qq, 1, sizeof(double));
        f[i].sx = mmcl__calloc_array(ctx, (size_t)p, 1, sizeof(double));
        f[i].sy = mmcl__calloc_array(ctx, (size_t)q, 1, sizeof(double));
        if (!f[i].Sxx || !f[i].Sxy || !f[i].Syy || !f[i].sx || !f[i].sy)
            st = MMCL_ERR_NO_MEMORY;
    }
    if (st != MMCL_OK || !work || !B || !b0 || !C11 || !C12 || !m1 || !m2 ||
        !sse || !out->sse || !out->sst || !out->W || !out->b) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    /* Raw moments of each fold, row by row in sample order (the sums do
     * not depend on the threads); f[n_folds] is the total. */
    for (int n = 0; n < N; n++) {
        fold_moments *a = &f[fold[n]];
        const float *x = X + (size_t)n * p, *y = Y + (size_t)n * q;
        for (int i = 0; i < p; i++)
            work[i] = x[i];
        for (int j = 0; j < q; j++)
            work[p + j] = y[j];
        a->n += 1;
        for (int i = 0; i < p; i++) {
            double xi = work[i];
            a->sx[i] += xi;
            for (int l = i; l < p; l++)
                a->Sxx[(size_t)i * p + l] += xi * work[l];
            for (int j = 0; j < q; j++)
                a->Sxy[(size_t)i * q + j] += xi * work[p + j];
        }
        for (int j = 0; j < q; j++) {
            a->sy[j] += work[p + j];
            for (int l = j; l < q; l++)
                a->Syy[(size_t)j * q + l] += work[p + j] * work[p + l];
        }
    }
    fold_moments *tot = &f[n_folds];
    for (int i = 0; i < n_folds; i++) {
        mmcl__sym_from_upper(f[i].Sxx, p);
        mmcl__sym_from_upper(f[i].Syy, q);
        tot->n += f[i].n;
        for (size_t e = 0; e < pp; e++)
            tot->Sxx[e] += f[i].Sxx[e];
        for (size_t e = 0; e < pq; e++)
            tot->Sxy[e] += f[i].Sxy[e];
        for (size_t e = 0; e < qq; e++)
            tot->Syy[e] += f[i].Syy[e];
        for (int e = 0; e < p; e++)
            tot->sx[e] += f[i].sx[e];
        for (int e = 0; e < q; e++)
            tot->sy[e] += f[i].sy[e];
    }
    for (int j = 0; j < q; j++)
        out->sst[j] = tot->Syy[(size_t)j * q + j] -
                      tot->sy[j] * tot->sy[j] / tot->n;
    /* The penalty's scale: the mean variance of the features. */
    mmcl__cov_from_moments(C11, tot->Sxx, tot->sx, tot->sx, tot->n, p, p);
    double scale = mmcl__mean_diag(C11, p);
    if (!(scale > 0))
        scale = 1;
    fold_moments tr = {0};
    tr.Sxx = mmcl__malloc_array(ctx, pp, 1, sizeof(double));
    tr.Sxy = mmcl__malloc_array(ctx, pq, 1, sizeof(double));
    tr.sx = mmcl__malloc_array(ctx, (size_t)p, 1, sizeof(double));
    tr.sy = mmcl__malloc_array(ctx, (size_t)q, 1, sizeof(double));
    if (!tr.Sxx || !tr.Sxy || !tr.sx || !tr.sy)
        st = MMCL_ERR_NO_MEMORY;
    for (int l = 0; l < N_LAMBDA && st == MMCL_OK; l++) {
        for (int i = 0; i < n_folds && st == MMCL_OK; i++) {
            if (f[i].n == 0)
                continue;
            tr.n = tot->n - f[i].n;
            if (tr.n < (double)MIN_ROWS_PER_FEATURE * (p + 1)) {
                st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                                 "too few samples outside spatial block %d "
                                 "for a decoder of %d features (%.0f): take "
                                 "more samples or more blocks",
                                 i + 1, p, tr.n);
                break;
            }
            diff(tr.Sxx, tot->Sxx, f[i].Sxx, pp);
            diff(tr.Sxy, tot->Sxy, f[i].Sxy, pq);
            diff(tr.sx, tot->sx, f[i].sx, (size_t)p);
            diff(tr.sy, tot->sy, f[i].sy, (size_t)q);
            st = fit_on(ctx, &tr, lambda_grid[l] * scale, p, q, B, b0, C11,
                        C12, m1, m2);
            if (st == MMCL_OK)
                fold_sse(sse + (size_t)l * q, &f[i], B, b0, p, q);
        }
    }
    free(tr.Sxx);
    free(tr.Sxy);
    free(tr.sx);
    free(tr.sy);
    if (st != MMCL_OK)
        goto done;
    int best = 0;
    double best_sse = INFINITY;
    for (int l = 0; l < N_LAMBDA; l++) {
        double s = 0;
        for (int j = 0; j < q; j++)
            s += sse[(size_t)l * q + j];
        if (s < best_sse) {
            best_sse = s;
            best = l;
        }
    }
    out->lambda = lambda_grid[best];
    memcpy(out->sse, sse + (size_t)best * q, (size_t)q * sizeof(double));
    st = fit_on(ctx, tot, lambda_grid[best] * scale, p, q, B, b0, C11, C12,
                m1, m2);
    if (st == MMCL_OK)
        mmcl__ridge_to_linear(out->W, out->b, B, b0, p, q);
done:
    fold_moments_free(f, n_folds + 1);
    free(work);
    free(B);
    free(b0);
    free(C11);
    free(C12);
    free(m1);
    free(m2);
    free(sse);
    if (st != MMCL_OK)
        cv_decoder_free(out);
    return st;
}

/* ---- the audit's state ------------------------------------------------ */

typedef struct audit {
    const mmcl_options *o;
    mmcl__embedding_raster *er;
    mmcl__sample *s;
    int k, N, blocks, n_folds;
    float *Z;  /* (N, k) the embedding at the samples */
    int *fold; /* (N) */
    /* per modality: the PCA (U = (x - mean) V), the decoders */
    float *pca_W[2], *pca_b[2], *U[2];
    cv_decoder dec[2][3]; /* aligned, unimodal, nonredundant */
    double floor_a[2], floor_u[2];
} audit;

static void
audit_free(audit *a)
{
    mmcl__embedding_raster_close(a->er);
    mmcl__sample_free(a->s);
    free(a->Z);
    free(a->fold);
    for (int m = 0; m < 2; m++) {
        free(a->pca_W[m]);
        free(a->pca_b[m]);
        free(a->U[m]);
        for (int d = 0; d < 3; d++)
            cv_decoder_free(&a->dec[m][d]);
    }
}

/* The embedding at the sampled pixels, read by windows of @p tile pixels
 * that hold samples; the samples where it is invalid are dropped. */
static mmcl_status
read_samples(mmcl_context *ctx, audit *a, const mmcl__pair *pair, int tile)
{
    mmcl__sample *s = a->s;
    int W = mmcl__pair_width(pair), H = mmcl__pair_height(pair);
    int tx = (W + tile - 1) / tile, ty = (H + tile - 1) / tile;
    int k = a->k;
    a->Z = mmcl__malloc_array(ctx, (size_t)s->N, (size_t)k, sizeof(float));
    float *win = mmcl__malloc_array(ctx, (size_t)tile * tile, (size_t)k,
                                    sizeof(float));
    uint8_t *valid = mmcl__malloc_array(ctx, (size_t)tile, (size_t)tile, 1);
    uint8_t *keep = mmcl__calloc_array(ctx, (size_t)s->N, 1, 1);
    int *order = mmcl__malloc_array(ctx, (size_t)s->N, 1, sizeof(int));
    int *start = mmcl__calloc_array(ctx, (size_t)tx * ty + 1, 1, sizeof(int));
    mmcl__embedding_reader *r = mmcl__embedding_reader_create(ctx, a->er);
    mmcl_status st = MMCL_OK;
    if (!a->Z || !win || !valid || !keep || !order || !start || !r) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    /* The samples by tile (a counting sort, stable). */
    for (int n = 0; n < s->N; n++)
        start[(s->py[n] / tile) * tx + s->px[n] / tile + 1]++;
    for (int t = 0; t < tx * ty; t++)
        start[t + 1] += start[t];
    {
        int *next = mmcl__malloc_array(ctx, (size_t)tx * ty, 1, sizeof(int));
        if (!next) {
            st = MMCL_ERR_NO_MEMORY;
            goto done;
        }
        memcpy(next, start, (size_t)tx * ty * sizeof(int));
        for (int n = 0; n < s->N; n++)
            order[next[(s->py[n] / tile) * tx + s->px[n] / tile]++] = n;
        free(next);
    }
    for (int t = 0; t < tx * ty && st == MMCL_OK; t++) {
        if (start[t] == start[t + 1])
            continue;
        int x = (t % tx) * tile, y = (t / tx) * tile;
        int w = W - x < tile ? W - x : tile, h = H - y < tile ? H - y : tile;
        st = mmcl__embedding_read(ctx, r, x, y, w, h, win, valid);
        size_t plane = (size_t)w * h;
        for (int i = start[t]; i < start[t + 1] && st == MMCL_OK; i++) {
            int n = order[i];
            size_t p = (size_t)(s->py[n] - y) * w + (s->px[n] - x);
            keep[n] = valid[p];
            for (int b = 0; b < k; b++)
                a->Z[(size_t)n * k + b] = win[plane * b + p];
        }
    }
    if (st != MMCL_OK)
        goto done;
    /* Compact the samples that are kept, in their order. */
    int kept = 0;
    for (int n = 0; n < s->N; n++) {
        if (!keep[n])
            continue;
        memmove(a->Z + (size_t)kept * k, a->Z + (size_t)n * k,
                (size_t)k * sizeof(float));
        memmove(s->X1 + (size_t)kept * s->d1, s->X1 + (size_t)n * s->d1,
                (size_t)s->d1 * sizeof(float));
        memmove(s->X2 + (size_t)kept * s->d2, s->X2 + (size_t)n * s->d2,
                (size_t)s->d2 * sizeof(float));
        s->px[kept] = s->px[n];
        s->py[kept] = s->py[n];
        kept++;
    }
    a->N = kept;
done:
    mmcl__embedding_reader_destroy(r);
    free(win);
    free(valid);
    free(keep);
    free(order);
    free(start);
    return st;
}

/* The PCA of modality m's centre bands X (N, B), top Ku components, as
 * U = (x - mean) V; the projections of the samples into a->U[m]. */
static mmcl_status
fit_pca(mmcl_context *ctx, audit *a, int m, const float *X, int B, int Ku)
{
    int N = a->N;
    double *S = mmcl__calloc_array(ctx, (size_t)B, (size_t)B, sizeof(double));
    double *mean = mmcl__calloc_array(ctx, (size_t)B, 1, sizeof(double));
    double *V = mmcl__malloc_array(ctx, (size_t)B, (size_t)Ku, sizeof(double));
    double *lambda = mmcl__malloc_array(ctx, (size_t)Ku, 1, sizeof(double));
    double *work = mmcl__malloc_array(ctx, (size_t)N, (size_t)B,
                                      sizeof(double));
    a->pca_W[m] = mmcl__malloc_array(ctx, (size_t)Ku, (size_t)B, 4);
    a->pca_b[m] = mmcl__malloc_array(ctx, (size_t)Ku, 1, 4);
    a->U[m] = mmcl__malloc_array(ctx, (size_t)N, (size_t)Ku, 4);
    mmcl_status st = MMCL_OK;
    if (!S || !mean || !V || !lambda || !work || !a->pca_W[m] ||
        !a->pca_b[m] || !a->U[m]) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    mmcl__moments_accumulate(S, NULL, NULL, mean, NULL, work, X, NULL, N, B,
                             0);
    mmcl__cov_from_moments(S, S, mean, mean, N, B, B);
    for (int b = 0; b < B; b++)
        mean[b] /= N;
    st = mmcl__pca(ctx, V, lambda, S, B, Ku);
    if (st != MMCL_OK)
        goto done;
    for (int j = 0; j < Ku; j++) {
        double acc = 0;
        for (int b = 0; b < B; b++) {
            a->pca_W[m][(size_t)j * B + b] = (float)V[(size_t)b * Ku + j];
            acc += V[(size_t)b * Ku + j] * mean[b];
        }
        a->pca_b[m][j] = (float)-acc;
    }
    for (int n = 0; n < N; n++)
        for (int j = 0; j < Ku; j++) {
            float acc = a->pca_b[m][j];
            for (int b = 0; b < B; b++)
                acc += a->pca_W[m][(size_t)j * B + b] * X[(size_t)n * B + b];
            a->U[m][(size_t)n * Ku + j] = acc;
        }
done:
    free(S);
    free(mean);
    free(V);
    free(lambda);
    free(work);
    return st;
}

/* The folds: the sample's spatial block, BLOCKS x BLOCKS over the grid. */
static mmcl_status
make_folds(mmcl_context *ctx, audit *a, const mmcl__pair *pair)
{
    int W = mmcl__pair_width(pair), H = mmcl__pair_height(pair);
    int nb = a->blocks;
    a->n_folds = nb * nb;
    a->fold = mmcl__malloc_array(ctx, (size_t)a->N, 1, sizeof(int));
    if (!a->fold)
        return MMCL_ERR_NO_MEMORY;
    for (int n = 0; n < a->N; n++) {
        int bx = (int)((long long)a->s->px[n] * nb / W);
        int by = (int)((long long)a->s->py[n] * nb / H);
        a->fold[n] = by * nb + bx;
    }
    return MMCL_OK;
}

/* The noise floors of modality m (docs/audit.md): var (B) the standardized
 * noise variances of its bands. */
static void
noise_floors(audit *a, int m, int B, int Ku, const double *var)
{
    double fa = 0, fu = 0;
    const float *D = a->dec[m][1].W; /* (B, Ku) */
    const float *P = a->pca_W[m];    /* (Ku, B) */
    for (int i = 0; i < B; i++) {
        fa += var[i];
        for (int b = 0; b < B; b++) {
            /* R = I - D P: what of band b's noise stays in residual i */
            double r = i == b ? 1.0 : 0.0;
            for (int j = 0; j < Ku; j++)
                r -= (double)D[(size_t)i * Ku + j] * P[(size_t)j * B + b];
            fu += r * r * var[b];
        }
    }
    a->floor_a[m] = fa / B;
    a->floor_u[m] = fu / B;
}

/* Samples, decoders, floors (progress p0 .. p1). */
static mmcl_status
audit_fit(mmcl_context *ctx, audit *a, const mmcl__pair *pair, int tile,
          int threads, mmcl_progress_fn progress, void *user, double p0,
          double p1)
{
    const mmcl_options *o = a->o;
    const char *labels[2] = {mmcl__pair_optical_label(pair),
                             mmcl__pair_sar_label(pair)};
    mmcl_status st = mmcl__sample_draw(
        ctx, pair, labels, 1, (int)mmcl__opt_int(o, "SAMPLES"), 1,
        (uint64_t)mmcl__opt_int(o, "SEED"), threads, progress, user,
        p0, p0 + 0.8 * (p1 - p0), &a->s);
    if (st == MMCL_OK)
        st = read_samples(ctx, a, pair, tile);
    if (st != MMCL_OK)
        return st;
    if (a->N < MMCL__SAMPLE_MIN_PATCHES)
        return mmcl__error(
            ctx, MMCL_ERR_INVALID_ARG,
            "the embedding raster '%s' has %s valid value where the optical "
            "and the SAR are valid (%d of %d sampled pixels): nothing to "
            "audit",
            mmcl__embedding_raster_path(a->er), a->N ? "almost no" : "no",
            a->N, a->s->N);
    st = make_folds(ctx, a, pair);
    const mmcl__sample *s = a->s;
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        const float *X = m == 0 ? s->X1 : s->X2;
        const float *Xo = m == 0 ? s->X2 : s->X1;
        int B = m == 0 ? s->B1 : s->B2, Bo = m == 0 ? s->B2 : s->B1;
        int Ku = a->k < B ? a->k : B;
        st = cv_ridge(ctx, a->Z, a->k, X, B, a->N, a->fold, a->n_folds,
                      &a->dec[m][0]);
        if (st == MMCL_OK)
            st = fit_pca(ctx, a, m, X, B, Ku);
        if (st == MMCL_OK)
            st = cv_ridge(ctx, a->U[m], Ku, X, B, a->N, a->fold, a->n_folds,
                          &a->dec[m][1]);
        if (st == MMCL_OK)
            st = cv_ridge(ctx, Xo, Bo, X, B, a->N, a->fold, a->n_folds,
                          &a->dec[m][2]);
        if (st != MMCL_OK)
            break;
        double var[MMCL__LOSS_MAX_BANDS];
        const double *sigma = m == 0 ? s->noise1 : s->noise2;
        const double *sd = m == 0 ? s->std1 : s->std2;
        for (int b = 0; b < B && b < MMCL__LOSS_MAX_BANDS; b++)
            var[b] = (sigma[b] / sd[b]) * (sigma[b] / sd[b]);
        noise_floors(a, m, B, Ku, var);
    }
    return st;
}

/* The encoder of the audit: no MLP (the representation is read), P = 1,
 * the sample's standardization, the PCA and the decoders borrowed from
 * @p a. */
static mmcl_status
audit_encoder(mmcl_context *ctx, audit *a, mmcl__encoder **out)
{
    mmcl__encoder *enc = calloc(1, sizeof(*enc));
    if (!enc)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    snprintf(enc->objective, sizeof(enc->objective), "audit");
    enc->P = 1;
    enc->k = a->k;
    const mmcl__sample *s = a->s;
    for (int m = 0; m < 2; m++) {
        mmcl__modality *mod = &enc->mod[m];
        int B = m == 0 ? s->B1 : s->B2, Bo = m == 0 ? s->B2 : s->B1;
        mod->B = B;
        mod->d = B;
        mod->k = mod->K = a->k;
        mod->Ku = a->k < B ? a->k : B;
        mod->mean = mmcl__malloc_array(ctx, (size_t)B, 1, sizeof(double));
        mod->std = mmcl__malloc_array(ctx, (size_t)B, 1, sizeof(double));
        if (!mod->mean || !mod->std) {
            mmcl__encoder_free(enc);
            return MMCL_ERR_NO_MEMORY;
        }
        memcpy(mod->mean, m == 0 ? s->mean1 : s->mean2, B * sizeof(double));
        memcpy(mod->std, m == 0 ? s->std1 : s->std2, B * sizeof(double));
        mod->unimodal =
            (mmcl__linear){a->pca_W[m], a->pca_b[m], B, mod->Ku, NULL};
        mod->dec_aligned = (mmcl__linear){a->dec[m][0].W, a->dec[m][0].b,
                                          a->k, B, NULL};
        mod->dec_unimodal = (mmcl__linear){a->dec[m][1].W, a->dec[m][1].b,
                                           mod->Ku, B, NULL};
        mod->dec_nonred = (mmcl__linear){a->dec[m][2].W, a->dec[m][2].b, Bo,
                                         B, NULL};
        mod->floor_infoloss = a->floor_a[m];
        mod->floor_unimodal = a->floor_u[m];
    }
    /* The products of its linear maps (the maps' f32). */
    mmcl_status st = mmcl__encoder_set_precision(ctx, enc,
                                                 MMCL__PRECISION_F32, NULL);
    if (st != MMCL_OK) {
        mmcl__encoder_free(enc);
        return st;
    }
    *out = enc;
    return MMCL_OK;
}

/* ---- the report ------------------------------------------------------- */

static double
r2_of(const double *sse, const double *sst, int q, int band)
{
    double e = 0, t = 0;
    for (int j = 0; j < q; j++)
        if (band < 0 || band == j) {
            e += sse[j];
            t += sst[j];
        }
    return t > 0 ? 1 - e / t : 0;
}

/* The cross-validated figures of modality m into @p o. */
static void
cv_figures(cJSON *o, const audit *a, int m, char **band_names)
{
    const cv_decoder *al = &a->dec[m][0], *un = &a->dec[m][1],
                     *nr = &a->dec[m][2];
    int B = m == 0 ? a->s->B1 : a->s->B2;
    double r2a = r2_of(al->sse, al->sst, B, -1);
    double r2u = r2_of(un->sse, un->sst, B, -1);
    cJSON *cv = cJSON_AddObjectToObject(o, "cross_validated");
    cJSON_AddNumberToObject(cv, "r2_aligned", r2a);
    cJSON_AddNumberToObject(cv, "r2_unimodal", r2u);
    cJSON_AddNumberToObject(cv, "loss_fraction",
                            r2u > 0 ? (r2u - r2a) / r2u : 0);
    cJSON_AddNumberToObject(cv, "r2_from_other_modality",
                            r2_of(nr->sse, nr->sst, B, -1));
    cJSON *pa = cJSON_AddObjectToObject(cv, "r2_aligned_per_band");
    cJSON *pu = cJSON_AddObjectToObject(cv, "r2_unimodal_per_band");
    for (int b = 0; b < B; b++) {
        const char *name = band_names && band_names[b]
                               ? band_names[b]
                               : CPLSPrintf("band_%d", b + 1);
        cJSON_AddNumberToObject(pa, name, r2_of(al->sse, al->sst, B, b));
        cJSON_AddNumberToObject(pu, name, r2_of(un->sse, un->sst, B, b));
    }
    cJSON *rl = cJSON_AddObjectToObject(cv, "ridge");
    cJSON_AddNumberToObject(rl, "aligned", al->lambda);
    cJSON_AddNumberToObject(rl, "unimodal", un->lambda);
    cJSON_AddNumberToObject(rl, "nonredundant", nr->lambda);
}

static cJSON *
audit_report(const audit *a, const mmcl__map_run *r, const char *path,
             const mmcl__pair *pair)
{
    cJSON *fig = mmcl__loss_figures_json(r->enc, r->def.nonred, r->total);
    cJSON_DeleteItemFromObject(fig, "model_hash");
    cJSON_DeleteItemFromObject(fig, "objective");
    cJSON_DeleteItemFromObject(fig, "patch");
    cJSON_AddStringToObject(fig, "product", "audit");
    cJSON *e = cJSON_AddObjectToObject(fig, "embedding");
    cJSON_AddStringToObject(e, "path", path);
    cJSON_AddNumberToObject(e, "bands", a->k);
    cJSON *names = cJSON_AddArrayToObject(e, "band_names");
    for (int b = 0; b < a->k; b++)
        cJSON_AddItemToArray(names, cJSON_CreateString(
                                        mmcl__embedding_raster_band_name(
                                            a->er, b)));
    cJSON_AddStringToObject(e, "dequantize",
                            mmcl__dequantize_name(
                                mmcl__embedding_raster_dequantize(a->er)));
    cJSON_AddBoolToObject(e, "on_grid",
                          mmcl__embedding_raster_on_grid(a->er));
    cJSON_AddStringToObject(e, "resampling",
                            mmcl__embedding_raster_resampling(a->er));
    cJSON_AddNumberToObject(fig, "samples", a->N);
    cJSON_AddNumberToObject(fig, "samples_drawn", a->s->N);
    cJSON_AddNumberToObject(fig, "blocks", a->blocks);
    cJSON_AddNumberToObject(fig, "folds", a->n_folds);
    cJSON_AddNumberToObject(fig, "seed",
                            (double)mmcl__opt_int(a->o, "SEED"));
    cJSON_AddStringToObject(fig, "mask", r->def.mask_any ? "any" : "own");
    for (int m = 0; m < 2; m++) {
        cJSON *o = cJSON_GetObjectItem(fig, mmcl__modality_name(m));
        const char *const *bn = m == 0 ? mmcl__pair_optical_band_names(pair)
                                       : mmcl__pair_sar_band_names(pair);
        cv_figures(o, a, m, (char **)bn);
    }
    return fig;
}

/* The map's metadata: infoloss's, as an audit of the raster. */
static char **
audit_metadata(char **md, const audit *a, const char *path)
{
    md = CSLSetNameValue(md, "PRODUCT", "audit");
    md = CSLSetNameValue(md, "MODEL_HASH", NULL);
    md = CSLSetNameValue(md, "OBJECTIVE", NULL);
    md = CSLSetNameValue(md, "PATCH", NULL);
    md = CSLSetNameValue(md, "EMBEDDING", path);
    md = CSLSetNameValue(md, "DEQUANTIZE",
                         mmcl__dequantize_name(
                             mmcl__embedding_raster_dequantize(a->er)));
    md = CSLSetNameValue(md, "SAMPLES", CPLSPrintf("%d", a->N));
    md = CSLSetNameValue(md, "BLOCKS", CPLSPrintf("%d", a->blocks));
    /* The cross-validated headline figures (all of them in the report). */
    for (int m = 0; m < 2; m++) {
        const cv_decoder *al = &a->dec[m][0], *un = &a->dec[m][1];
        int B = m == 0 ? a->s->B1 : a->s->B2;
        double r2a = r2_of(al->sse, al->sst, B, -1);
        double r2u = r2_of(un->sse, un->sst, B, -1);
        const char *M = m == 0 ? "OPTICAL" : "SAR";
        md = CSLSetNameValue(md, CPLSPrintf("CV_R2_ALIGNED_%s", M),
                             CPLSPrintf("%.6g", r2a));
        md = CSLSetNameValue(md, CPLSPrintf("CV_R2_UNIMODAL_%s", M),
                             CPLSPrintf("%.6g", r2u));
        md = CSLSetNameValue(md, CPLSPrintf("CV_LOSS_FRACTION_%s", M),
                             CPLSPrintf("%.6g",
                                        r2u > 0 ? (r2u - r2a) / r2u : 0));
    }
    return md;
}

/* The files of the audit: the embedding raster, the pair and the shift
 * field of the correction, as inputs. */
static mmcl_status
audit_files(mmcl_context *ctx, mmcl__map_run *r, const char *embedding,
            const char *const *optical, size_t n_optical,
            const char *const *sar, size_t n_sar, const mmcl_options *o)
{
    r->files = mmcl__files_create(ctx, mmcl__opt_bool(o, "OVERWRITE"));
    if (!r->files)
        return MMCL_ERR_NO_MEMORY;
    mmcl_status st = mmcl__files_add_input(ctx, r->files, embedding);
    for (size_t i = 0; optical && i < n_optical && st == MMCL_OK; i++)
        st = mmcl__files_add_input(ctx, r->files, optical[i]);
    for (size_t i = 0; sar && i < n_sar && st == MMCL_OK; i++)
        st = mmcl__files_add_input(ctx, r->files, sar[i]);
    const char *field = mmcl__opt_str(o, "SAR_SHIFT_FIELD");
    if (field && st == MMCL_OK)
        st = mmcl__files_add_input(ctx, r->files, field);
    return st;
}

mmcl_status
mmcl_audit(mmcl_context *ctx, const char *embedding,
           const char *const *optical, size_t n_optical,
           const char *const *sar, size_t n_sar, const char *out,
           const mmcl_options *opts_in, char **report_json)
{
    mmcl__error_clear(ctx);
    mmcl__blas_kernel_warn_once();
    if (report_json)
        *report_json = NULL;
    if (!embedding)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "no embedding raster given");
    mmcl_options *tmp = NULL;
    const mmcl_options *o = NULL;
    cJSON *fig = NULL;
    audit a = {0};
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "audit", &tmp, &o);
    if (st != MMCL_OK)
        return st;
    a.o = o;
    a.blocks = (int)mmcl__opt_int(o, "BLOCKS");
    mmcl__map_run r = {.product = "audit",
                       .style = mmcl__style_write_raster,
                       .def = {.kind = MMCL__MAP_INFOLOSS}};
    const char *format = NULL;
    int lazy = mmcl__opt_bool(o, "LAZY");
    st = audit_files(ctx, &r, embedding, optical, n_optical, sar, n_sar, o);
    if (st == MMCL_OK && lazy) {
        /* LAZY: the descriptor (audit_lazy.c) instead of the map. */
        st = mmcl__audit_lazy_check(ctx, r.files, out, o);
        r.tile = (int)mmcl__opt_int(o, "TILE");
        r.threads = mmcl__opt_threads(o);
        r.progress = mmcl__opt_progress(o, &r.progress_user);
    } else if (st == MMCL_OK) {
        st = mmcl__map_run_check_outputs(ctx, &r, out, o, &format);
    }
    if (st == MMCL_OK)
        st = mmcl__pair_open(ctx, optical, n_optical, sar, n_sar, o, &r.pair);
    if (st == MMCL_OK) {
        mmcl__grid g;
        mmcl__embedding_options eo;
        mmcl__pair_grid(r.pair, &g);
        mmcl__embedding_options_get(&eo, o);
        st = mmcl__embedding_raster_open(ctx, embedding, &g, &eo, &a.er);
    }
    if (st != MMCL_OK)
        goto done;
    a.k = mmcl__embedding_raster_bands(a.er);
    /* The fit takes the first fifth of the progress, the map the rest. */
    st = audit_fit(ctx, &a, r.pair, r.tile, r.threads, r.progress,
                   r.progress_user, 0.0, 0.2);
    if (st == MMCL_OK)
        st = audit_encoder(ctx, &a, &r.enc);
    if (st == MMCL_OK && lazy) {
        /* The descriptor carries what the map's metadata says of the
         * audit (the fit's figures). */
        char **md = audit_metadata(NULL, &a, embedding);
        st = mmcl__audit_lazy_write(ctx, r.files, out, embedding, optical,
                                    n_optical, sar, n_sar, r.enc, md, o,
                                    r.progress, r.progress_user);
        CSLDestroy(md);
    }
    if (st != MMCL_OK || lazy)
        goto done;
    r.def.embedding = a.er;
    r.start = 0.2;
    st = mmcl__map_run_create(ctx, &r, out, o, format);
    if (st == MMCL_OK)
        st = mmcl__map_run_tiles(ctx, &r);
    if (st != MMCL_OK)
        goto done;
    mmcl__map_run_report_timing(&r, "audit");
    fig = audit_report(&a, &r, embedding, r.pair);
    r.metadata = audit_metadata(r.metadata, &a, embedding);
    st = mmcl__map_run_finish(ctx, &r, fig, report_json);
done:
    cJSON_Delete(fig);
    mmcl__map_run_close(&r); /* frees the encoder, whose tensors are a's */
    audit_free(&a);
    mmcl_options_free(tmp);
    return st;
}
