/* SPDX-License-Identifier: MIT */
/*
 * The shift of one block across modalities: the first canonical
 * correlation of optical and SAR over the block, maximised over integer
 * shifts of the SAR, refined by a quadratic fit (coreg.h).
 *
 * Per block:
 *  1. invalid values take their band's mean over the window (they then
 *     carry no structure), and both windows are smoothed by the 3 x 3
 *     binomial kernel [1 2 1]^T [1 2 1] / 16;
 *  2. the optical block's bands, standardised, are reduced to their
 *     leading principal components (at most MMCL__COREG_MAX_DIMS, those
 *     above 1e-6 of the first) and whitened: z (r, n), mean 0, identity
 *     covariance; the SAR window's channels likewise to q components
 *     (not whitened: their covariance is taken per shift);
 *  3. per shift s: K = z s_s^T / n (r, q) and C = cov(s_s) (q, q) over
 *     the block moved by s; rho^2(s) = the largest eigenvalue of
 *     C^-1 K^T K, i.e. the squared first canonical correlation
 *     (Hotelling 1936; with z white, the generalised eigenproblem of CCA
 *     reduces to this q x q one);
 *  4. the best integer shift, a least-squares quadratic through the 3 x 3
 *     values of rho^2 around it (its stationary point is the sub-pixel
 *     shift), and a confidence from the height of the peak (rho), its
 *     sharpness (how much rho^2 drops two pixels away) and its
 *     uniqueness (the next local maximum).
 * The products of step 3 are summed per column first (acc[x] += a[x] b[x]
 * over the rows, then over x in double), so the loops vectorise without
 * reassociating a sum: the result does not depend on the SIMD width. The
 * SAR's own moments depend on sy and on the columns only: summed per
 * column once per sy, then over the bw columns of each sx.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coreg.h"
#include "simd.h"

struct mmcl__coreg_scratch {
    int max_bw, max_bh, B1, B2, search, margin;
    float *o;    /* (B1, H, W) imputed, smoothed optical window */
    float *s;    /* (B2, H, W) the same for the SAR */
    float *tmp;  /* (H, W) x 2: imputation and the smoothing pass */
    float *z;    /* (MAX_DIMS, bh, bw) whitened optical components */
    float *q;    /* (MAX_DIMS, H, W) SAR components */
    float *acc;  /* (DIMS^2, bw) per-column sums of the cross products */
    double *colsum; /* (2, N_ACC - DIMS^2, W): sar_columns() */
    double *surface; /* (5, (2 search + 1)^2): rho^2 of the block, then of
                        its left, right, top and bottom halves */
    double *cov;     /* (Bmax, Bmax) */
    double *vec;     /* (Bmax, Bmax) */
    double *eig;     /* (Bmax) */
    int has_surface;
};

enum {
    DIMS = MMCL__COREG_MAX_DIMS,
    /* cross products, SAR second moments, SAR sums */
    N_ACC = DIMS * DIMS + DIMS * (DIMS + 1) / 2 + DIMS
};

void
mmcl__coreg_scratch_destroy(mmcl__coreg_scratch *s)
{
    if (!s)
        return;
    free(s->o);
    free(s->s);
    free(s->tmp);
    free(s->z);
    free(s->q);
    free(s->acc);
    free(s->colsum);
    free(s->surface);
    free(s->cov);
    free(s->vec);
    free(s->eig);
    free(s);
}

mmcl__coreg_scratch *
mmcl__coreg_scratch_create(mmcl_context *ctx, int max_bw, int max_bh, int B1,
                           int B2, int search)
{
    mmcl__coreg_scratch *s = calloc(1, sizeof(*s));
    if (!s) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    s->max_bw = max_bw;
    s->max_bh = max_bh;
    s->B1 = B1;
    s->B2 = B2;
    s->search = search;
    s->margin = search + 1;
    size_t W = (size_t)max_bw + 2 * (size_t)s->margin;
    size_t H = (size_t)max_bh + 2 * (size_t)s->margin;
    size_t side = (size_t)(2 * search + 1);
    size_t bmax = (size_t)(B1 > B2 ? B1 : B2);
    s->o = mmcl__malloc_array(ctx, W * H, (size_t)B1, sizeof(float));
    s->s = mmcl__malloc_array(ctx, W * H, (size_t)B2, sizeof(float));
    s->tmp = mmcl__malloc_array(ctx, W * H, 2, sizeof(float));
    s->z = mmcl__malloc_array(ctx, (size_t)max_bw * max_bh, DIMS,
                              sizeof(float));
    s->q = mmcl__malloc_array(ctx, W * H, DIMS, sizeof(float));
    s->acc = mmcl__malloc_array(ctx, (size_t)max_bw, N_ACC, sizeof(float));
    s->colsum = mmcl__malloc_array(ctx, W, 2 * (N_ACC - DIMS * DIMS),
                                   sizeof(double));
    s->surface = mmcl__malloc_array(ctx, side * side, 5, sizeof(double));
    s->cov = mmcl__malloc_array(ctx, bmax, bmax, sizeof(double));
    s->vec = mmcl__malloc_array(ctx, bmax, bmax, sizeof(double));
    s->eig = mmcl__malloc_array(ctx, bmax, 1, sizeof(double));
    if (!s->o || !s->s || !s->tmp || !s->z || !s->q || !s->acc ||
        !s->colsum || !s->surface || !s->cov || !s->vec || !s->eig) {
        mmcl__coreg_scratch_destroy(s);
        return NULL;
    }
    return s;
}

const double *
mmcl__coreg_surface(const mmcl__coreg_scratch *s)
{
    return s && s->has_surface ? s->surface : NULL;
}

/*
 * Eigen-decomposition of the symmetric A (n, n) by cyclic Jacobi
 * rotations (Golub & Van Loan, Matrix Computations, 8.5): eigenvalues
 * into w (n), DESCENDING, unit eigenvectors into the columns of V (n, n).
 * A is destroyed. For the small matrices here (n <= 64) it is exact to
 * rounding and needs no LAPACK workspace.
 */
static void
jacobi_eig(double *A, double *w, double *V, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            V[i * n + j] = i == j;
    for (int sweep = 0; sweep < 64; sweep++) {
        double off = 0.0, diag = 0.0;
        for (int i = 0; i < n; i++) {
            diag += A[i * n + i] * A[i * n + i];
            for (int j = i + 1; j < n; j++)
                off += A[i * n + j] * A[i * n + j];
        }
        if (off <= 1e-30 * diag || off == 0.0)
            break;
        for (int p = 0; p < n; p++) {
            for (int r = p + 1; r < n; r++) {
                double apr = A[p * n + r];
                if (apr == 0.0)
                    continue;
                double theta = (A[r * n + r] - A[p * n + p]) / (2.0 * apr);
                double t = (theta >= 0 ? 1.0 : -1.0) /
                           (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), sn = t * c;
                for (int k = 0; k < n; k++) { /* A <- A J */
                    double akp = A[k * n + p], akr = A[k * n + r];
                    A[k * n + p] = c * akp - sn * akr;
                    A[k * n + r] = sn * akp + c * akr;
                }
                for (int k = 0; k < n; k++) { /* A <- J^T A */
                    double apk = A[p * n + k], ark = A[r * n + k];
                    A[p * n + k] = c * apk - sn * ark;
                    A[r * n + k] = sn * apk + c * ark;
                }
                for (int k = 0; k < n; k++) { /* V <- V J */
                    double vkp = V[k * n + p], vkr = V[k * n + r];
                    V[k * n + p] = c * vkp - sn * vkr;
                    V[k * n + r] = sn * vkp + c * vkr;
                }
            }
        }
    }
    for (int i = 0; i < n; i++)
        w[i] = A[i * n + i];
    /* Selection sort, descending, columns of V with their values. */
    for (int i = 0; i < n; i++) {
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (w[j] > w[best])
                best = j;
        if (best == i)
            continue;
        double t = w[i];
        w[i] = w[best];
        w[best] = t;
        for (int k = 0; k < n; k++) {
            t = V[k * n + i];
            V[k * n + i] = V[k * n + best];
            V[k * n + best] = t;
        }
    }
}

/* dst (H, W) = the 3 x 3 binomial smoothing of src (edges replicated). */
static void
smooth3(float *dst, const float *src, float *tmp, int W, int H)
{
    for (int y = 0; y < H; y++) {
        const float *r = src + (size_t)y * W;
        float *t = tmp + (size_t)y * W;
        for (int x = 0; x < W; x++) {
            float l = r[x > 0 ? x - 1 : 0], rr = r[x < W - 1 ? x + 1 : W - 1];
            t[x] = 0.25f * l + 0.5f * r[x] + 0.25f * rr;
        }
    }
    for (int y = 0; y < H; y++) {
        const float *u = tmp + (size_t)(y > 0 ? y - 1 : 0) * W;
        const float *c = tmp + (size_t)y * W;
        const float *d = tmp + (size_t)(y < H - 1 ? y + 1 : H - 1) * W;
        float *o = dst + (size_t)y * W;
        for (int x = 0; x < W; x++)
            o[x] = 0.25f * u[x] + 0.5f * c[x] + 0.25f * d[x];
    }
}

/* Each band of @p in (B, H, W): NaN replaced by the band's mean over the
 * window (0 when it has none), then smoothed, into @p out. */
static void
impute_smooth(float *out, const float *in, float *tmp, int B, int W, int H)
{
    size_t n = (size_t)W * H;
    for (int b = 0; b < B; b++) {
        const float *src = in + (size_t)b * n;
        double sum = 0.0;
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++) {
            if (isfinite(src[i])) {
                sum += src[i];
                cnt++;
            }
        }
        float mean = cnt ? (float)(sum / (double)cnt) : 0.0f;
        float *filled = tmp;
        for (size_t i = 0; i < n; i++)
            filled[i] = isfinite(src[i]) ? src[i] : mean;
        smooth3(out + (size_t)b * n, filled, tmp + n, W, H);
    }
}

/*
 * Principal components of the B bands of x over the w x h pixels at
 * (x0, y0) of the window (B, H, W), bands standardised first: at most
 * DIMS components above 1e-6 of the first, written as (k, oh, ow) for
 * the region (ox0, oy0, ow, oh) of the same window into @p out, each
 * divided by sqrt(eigenvalue) when @p whiten. Returns k (0: uniform).
 */
static int
components(mmcl__coreg_scratch *s, const float *x, int B, int W, int H,
           int x0, int y0, int w, int h, int ox0, int oy0, int ow, int oh,
           int whiten, float *out)
{
    size_t plane = (size_t)W * H;
    double n = (double)w * h;
    double mu[64], sd[64];
    double *C = s->cov, *V = s->vec, *lam = s->eig;
    for (int b = 0; b < B; b++) {
        double sum = 0.0;
        for (int y = 0; y < h; y++) {
            const float *r = x + b * plane + (size_t)(y0 + y) * W + x0;
            for (int i = 0; i < w; i++)
                sum += r[i];
        }
        mu[b] = sum / n;
    }
    for (int a = 0; a < B; a++) {
        for (int b = a; b < B; b++) {
            double sum = 0.0;
            for (int y = 0; y < h; y++) {
                const float *ra = x + a * plane + (size_t)(y0 + y) * W + x0;
                const float *rb = x + b * plane + (size_t)(y0 + y) * W + x0;
                for (int i = 0; i < w; i++)
                    sum += ((double)ra[i] - mu[a]) * ((double)rb[i] - mu[b]);
            }
            C[a * B + b] = C[b * B + a] = sum / n;
        }
    }
    for (int b = 0; b < B; b++) {
        /* A band that does not vary (to float precision) carries nothing. */
        double v = C[b * B + b];
        sd[b] = v > 1e-12 * (mu[b] * mu[b] + 1e-30) && v > 0.0 ? sqrt(v) : 0.0;
    }
    for (int a = 0; a < B; a++)
        for (int b = 0; b < B; b++)
            C[a * B + b] = sd[a] > 0.0 && sd[b] > 0.0
                               ? C[a * B + b] / (sd[a] * sd[b])
                               : 0.0;
    jacobi_eig(C, lam, V, B);
    int k = 0;
    while (k < B && k < DIMS && lam[k] > 1e-6 * lam[0] && lam[k] > 1e-9)
        k++;
    for (int c = 0; c < k; c++) {
        float wgt[64];
        double scale = whiten ? 1.0 / sqrt(lam[c]) : 1.0;
        float off = 0.0f;
        for (int b = 0; b < B; b++) {
            double v = sd[b] > 0.0 ? V[b * B + c] / sd[b] * scale : 0.0;
            wgt[b] = (float)v;
            off += (float)(v * mu[b]);
        }
        float *dst = out + (size_t)c * ow * oh;
        for (int y = 0; y < oh; y++) {
            float *d = dst + (size_t)y * ow;
            for (int i = 0; i < ow; i++)
                d[i] = -off;
            for (int b = 0; b < B; b++) {
                const float *r = x + b * plane + (size_t)(oy0 + y) * W + ox0;
                float g = wgt[b];
                for (int i = 0; i < ow; i++)
                    d[i] += g * r[i];
            }
        }
    }
    return k;
}

/* The statistics of the block's parts whose surfaces are computed: the
 * whole block, then its left, right, top and bottom halves (the halves
 * measure the estimate's precision: they see independent pixels). */
enum { PART_ALL, PART_LEFT, PART_RIGHT, PART_TOP, PART_BOTTOM, N_PARTS };

/* Sums over one part: the z sums and products (fixed per block) and,
 * per shift, the N_ACC sums of rho2_at; n pixels. */
typedef struct part_sums {
    double n;
    double z[DIMS], zz[DIMS * DIMS];
    double acc[N_ACC];
} part_sums;

/*
 * rho^2 of one part from its sums: the largest eigenvalue of
 * Czz^-1 Kc Css^-1 Kc^T with Kc the centred cross-covariance, computed as
 * the largest squared singular value of Lz^-1 Kc Ls^-T (Cholesky factors
 * of the two covariances, each with a ridge of 1e-9 of its mean
 * variance). 0 when either side does not vary.
 */
static double
rho2_of(const part_sums *ps, int r, int k)
{
    int n_cross = r * k, n_mom = k * (k + 1) / 2;
    double n = ps->n;
    double mz[DIMS], ms[DIMS], Czz[DIMS * DIMS], Css[DIMS * DIMS];
    double Kc[DIMS * DIMS], Lz[DIMS * DIMS] = {0}, Ls[DIMS * DIMS] = {0};
    for (int i = 0; i < r; i++)
        mz[i] = ps->z[i] / n;
    for (int j = 0; j < k; j++)
        ms[j] = ps->acc[n_cross + n_mom + j] / n;
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++)
            Czz[i * r + j] = ps->zz[i * r + j] / n - mz[i] * mz[j];
    int m = n_cross;
    for (int i = 0; i < k; i++)
        for (int j = i; j < k; j++, m++)
            Css[i * k + j] = Css[j * k + i] =
                ps->acc[m] / n - ms[i] * ms[j];
    for (int i = 0; i < r; i++)
        for (int j = 0; j < k; j++)
            Kc[i * k + j] = ps->acc[i * k + j] / n - mz[i] * ms[j];
    /* Cholesky of both, with the ridge. */
    double *Cs[2] = {Czz, Css}, *Ls_[2] = {Lz, Ls};
    int dims[2] = {r, k};
    for (int c = 0; c < 2; c++) {
        double *C = Cs[c], *L = Ls_[c];
        int d = dims[c];
        double tr = 0.0;
        for (int i = 0; i < d; i++)
            tr += C[i * d + i];
        if (!(tr > 0.0))
            return 0.0;
        for (int i = 0; i < d; i++)
            C[i * d + i] += 1e-9 * tr / d;
        for (int i = 0; i < d; i++) {
            for (int j = 0; j <= i; j++) {
                double v = C[i * d + j];
                for (int p = 0; p < j; p++)
                    v -= L[i * d + p] * L[j * d + p];
                if (i == j) {
                    if (!(v > 0.0))
                        return 0.0;
                    L[i * d + i] = sqrt(v);
                } else {
                    L[i * d + j] = v / L[j * d + j];
                }
            }
        }
    }
    /* G = Lz^-1 Kc Ls^-T (r, k): columns of Kc through Lz^-1 (forward
     * substitution), then rows through Ls^-T. */
    double G[DIMS * DIMS];
    for (int j = 0; j < k; j++) {
        for (int i = 0; i < r; i++) {
            double v = Kc[i * k + j];
            for (int p = 0; p < i; p++)
                v -= Lz[i * r + p] * G[p * k + j];
            G[i * k + j] = v / Lz[i * r + i];
        }
    }
    for (int i = 0; i < r; i++) {
        for (int j = 0; j < k; j++) {
            double v = G[i * k + j];
            for (int p = 0; p < j; p++)
                v -= Ls[j * k + p] * G[i * k + p];
            G[i * k + j] = v / Ls[j * k + j];
        }
    }
    double M[DIMS * DIMS], w[DIMS], V[DIMS * DIMS];
    for (int a = 0; a < k; a++) {
        for (int b = a; b < k; b++) {
            double v = 0.0;
            for (int i = 0; i < r; i++)
                v += G[i * k + a] * G[i * k + b];
            M[a * k + b] = M[b * k + a] = v;
        }
    }
    jacobi_eig(M, w, V, k);
    return w[0] > 0.0 ? w[0] : 0.0;
}

/* sum of a[0..n) in double, in 8 fixed lanes combined in order: the
 * loop vectorises, and every clone adds in the same order (simd.h). */
MMCL__VEC_CLONES static double
sum_f(const float *restrict a, int n)
{
    double lane[8] = {0};
    int x = 0;
    for (; x + 8 <= n; x += 8)
        for (int l = 0; l < 8; l++)
            lane[l] += a[x + l];
    double t = 0.0;
    for (int l = 0; l < 8; l++)
        t += lane[l];
    for (; x < n; x++)
        t += a[x];
    return t;
}

/* One row's cross products z_i q_j into the per-column sums acc
 * (r * k, bw). The hot loop: built for AVX-512, AVX2 and the baseline,
 * which compute the same bits (simd.h). */
MMCL__VEC_CLONES static void
accumulate_row(float *restrict acc, const float *const *zr,
               const float *const *qr, int r, int k, int bw)
{
    float *a = acc;
    for (int i = 0; i < r; i++) {
        for (int j = 0; j < k; j++, a += bw) {
            const float *restrict zi = zr[i], *restrict qj = qr[j];
            for (int x = 0; x < bw; x++)
                a[x] += zi[x] * qj[x];
        }
    }
}

/*
 * The SAR's moments for one row of shifts sy, per column of the window:
 * the sums over the block's rows moved by sy of q_i q_j (i <= j), then of
 * q_j, into s->colsum (N_MOM, W) for the whole block and (N_MOM, W) after
 * it for its top half. A shift sx then sums bw of these columns: the
 * moments cost a row of the window per sy instead of the block per shift.
 */
MMCL__VEC_CLONES static void
sar_columns(mmcl__coreg_scratch *s, int k, int bh, int W, int H, int sy)
{
    size_t plane = (size_t)W * H;
    int n_mom = k * (k + 1) / 2 + k;
    double *all = s->colsum, *top = s->colsum + (size_t)n_mom * W;
    memset(all, 0, (size_t)n_mom * W * sizeof(double));
    for (int y = 0; y < bh; y++) {
        if (y == bh / 2)
            memcpy(top, all, (size_t)n_mom * W * sizeof(double));
        const float *q[DIMS];
        for (int j = 0; j < k; j++)
            q[j] = s->q + j * plane + (size_t)(s->margin + sy + y) * W;
        double *restrict a = all;
        for (int i = 0; i < k; i++) {
            for (int j = i; j < k; j++, a += W) {
                const float *restrict qi = q[i], *restrict qj = q[j];
                for (int x = 0; x < W; x++)
                    a[x] += (double)qi[x] * qj[x];
            }
        }
        for (int j = 0; j < k; j++, a += W) {
            const float *restrict qj = q[j];
            for (int x = 0; x < W; x++)
                a[x] += qj[x];
        }
    }
}

/*
 * The sums of one shift for every part: the cross products of the block
 * of z (r, bh, bw) with the SAR components q (k, H, W) at (margin + sx,
 * margin + sy), summed per column over the rows (the top half's taken at
 * the middle row), then over the columns in double; the SAR's moments
 * from the columns of sar_columns() for this sy.
 */
static void
shift_sums(mmcl__coreg_scratch *s, part_sums *ps, int r, int k, int bw,
           int bh, int W, int H, int sx, int sy)
{
    size_t plane = (size_t)W * H, zplane = (size_t)bw * bh;
    int n_cross = r * k, n_mom = k * (k + 1) / 2 + k, half_x = bw / 2;
    float *acc = s->acc;
    memset(acc, 0, (size_t)n_cross * bw * sizeof(float));
    for (int y = 0; y < bh; y++) {
        if (y == bh / 2)
            for (int c = 0; c < n_cross; c++)
                ps[PART_TOP].acc[c] = sum_f(acc + (size_t)c * bw, bw);
        const float *qr[DIMS], *zr[DIMS];
        for (int j = 0; j < k; j++)
            qr[j] = s->q + j * plane + (size_t)(s->margin + sy + y) * W +
                    s->margin + sx;
        for (int i = 0; i < r; i++)
            zr[i] = s->z + i * zplane + (size_t)y * bw;
        accumulate_row(acc, zr, qr, r, k, bw);
    }
    for (int c = 0; c < n_cross; c++) {
        double left = sum_f(acc + (size_t)c * bw, half_x);
        double right = sum_f(acc + (size_t)c * bw + half_x, bw - half_x);
        ps[PART_LEFT].acc[c] = left;
        ps[PART_RIGHT].acc[c] = right;
        ps[PART_ALL].acc[c] = left + right;
        ps[PART_BOTTOM].acc[c] = left + right - ps[PART_TOP].acc[c];
    }
    const double *all = s->colsum, *top = s->colsum + (size_t)n_mom * W;
    for (int t = 0; t < n_mom; t++) {
        const double *ca = all + (size_t)t * W + s->margin + sx;
        const double *ct = top + (size_t)t * W + s->margin + sx;
        double left = 0.0, right = 0.0, upper = 0.0;
        for (int x = 0; x < half_x; x++)
            left += ca[x];
        for (int x = half_x; x < bw; x++)
            right += ca[x];
        for (int x = 0; x < bw; x++)
            upper += ct[x];
        ps[PART_LEFT].acc[n_cross + t] = left;
        ps[PART_RIGHT].acc[n_cross + t] = right;
        ps[PART_ALL].acc[n_cross + t] = left + right;
        ps[PART_TOP].acc[n_cross + t] = upper;
        ps[PART_BOTTOM].acc[n_cross + t] = left + right - upper;
    }
}

/* One row's z_i z_j (i <= j), then z_i, into the per-column sums acc. */
MMCL__VEC_CLONES static void
accumulate_z_row(float *restrict acc, const float *const *zr, int r, int bw)
{
    float *a = acc;
    for (int i = 0; i < r; i++) {
        for (int j = i; j < r; j++, a += bw) {
            const float *restrict zi = zr[i], *restrict zj = zr[j];
            for (int x = 0; x < bw; x++)
                a[x] += zi[x] * zj[x];
        }
    }
    for (int i = 0; i < r; i++, a += bw) {
        const float *restrict zi = zr[i];
        for (int x = 0; x < bw; x++)
            a[x] += zi[x];
    }
}

/* The z sums and products of every part (they do not depend on the
 * shift), per column first as the cross products are. */
static void
z_sums(mmcl__coreg_scratch *s, part_sums *ps, int r, int bw, int bh)
{
    size_t zplane = (size_t)bw * bh;
    int n_t = r * (r + 1) / 2 + r, half_x = bw / 2;
    double top[N_ACC];
    float *acc = s->acc;
    memset(ps, 0, N_PARTS * sizeof(*ps));
    memset(acc, 0, (size_t)n_t * bw * sizeof(float));
    for (int y = 0; y < bh; y++) {
        if (y == bh / 2)
            for (int c = 0; c < n_t; c++)
                top[c] = sum_f(acc + (size_t)c * bw, bw);
        const float *zr[DIMS];
        for (int i = 0; i < r; i++)
            zr[i] = s->z + i * zplane + (size_t)y * bw;
        accumulate_z_row(acc, zr, r, bw);
    }
    ps[PART_ALL].n = (double)bw * bh;
    ps[PART_LEFT].n = (double)half_x * bh;
    ps[PART_RIGHT].n = (double)(bw - half_x) * bh;
    ps[PART_TOP].n = (double)bw * (bh / 2);
    ps[PART_BOTTOM].n = (double)bw * (bh - bh / 2);
    for (int t = 0; t < n_t; t++) {
        double left = sum_f(acc + (size_t)t * bw, half_x);
        double right = sum_f(acc + (size_t)t * bw + half_x, bw - half_x);
        double v[N_PARTS] = {left + right, left, right, top[t],
                             left + right - top[t]};
        for (int p = 0; p < N_PARTS; p++) {
            if (t < n_t - r) {
                /* the t-th product, in the order of accumulate_z_row */
                int i = 0, k = t;
                while (k >= r - i) {
                    k -= r - i;
                    i++;
                }
                int j = i + k;
                ps[p].zz[i * r + j] = ps[p].zz[j * r + i] = v[p];
            } else {
                ps[p].z[t - (n_t - r)] = v[p];
            }
        }
    }
}

/*
 * The peak of a surface R ((2S+1)^2 values of rho^2): the best integer
 * shift (bx, by) and the sub-pixel offset of a least-squares quadratic
 * f = a + b x + c y + d x^2 + e x y + g y^2 through the 3 x 3 values
 * around it (x, y in -1..1; on this grid the regressors are orthogonal
 * once x^2, y^2 are centred by 2/3); when that is no maximum within a
 * pixel, a parabola along each axis. The offsets are kept within half a
 * pixel. A peak on the edge of the range is fitted with its edge row
 * or column mirrored.
 */
static void
peak_fit(const double *R, int S, int *bx_out, int *by_out, double *ox_out,
         double *oy_out)
{
    int side = 2 * S + 1, best = 0;
    for (int i = 1; i < side * side; i++)
        if (R[i] > R[best])
            best = i;
    int bx = best % side - S, by = best / side - S;
    double f[3][3];
    for (int j = -1; j <= 1; j++) {
        for (int i = -1; i <= 1; i++) {
            int x = bx + i, y = by + j;
            x = x < -S ? -S : (x > S ? S : x);
            y = y < -S ? -S : (y > S ? S : y);
            f[j + 1][i + 1] = R[(y + S) * side + x + S];
        }
    }
    double b = 0, c = 0, d = 0, e = 0, g = 0;
    for (int j = -1; j <= 1; j++) {
        for (int i = -1; i <= 1; i++) {
            double v = f[j + 1][i + 1];
            b += i * v / 6.0;
            c += j * v / 6.0;
            e += i * j * v / 4.0;
            d += (i * i - 2.0 / 3.0) * v / 2.0;
            g += (j * j - 2.0 / 3.0) * v / 2.0;
        }
    }
    double hxx = 2.0 * d, hyy = 2.0 * g, det = hxx * hyy - e * e;
    double ox = 2.0, oy = 2.0; /* not a maximum: the 1-D fits below */
    if (hxx < 0.0 && det > 0.0) {
        ox = (-b * hyy + c * e) / det;
        oy = (-c * hxx + b * e) / det;
    }
    if (!(fabs(ox) <= 1.0 && fabs(oy) <= 1.0)) {
        double den = f[1][0] - 2.0 * f[1][1] + f[1][2];
        ox = den < 0.0 ? 0.5 * (f[1][0] - f[1][2]) / den : 0.0;
        den = f[0][1] - 2.0 * f[1][1] + f[2][1];
        oy = den < 0.0 ? 0.5 * (f[0][1] - f[2][1]) / den : 0.0;
    }
    *ox_out = ox < -0.5 ? -0.5 : (ox > 0.5 ? 0.5 : ox);
    *oy_out = oy < -0.5 ? -0.5 : (oy > 0.5 ? 0.5 : oy);
    *bx_out = bx;
    *by_out = by;
}

static double
ramp(double v, double lo, double hi)
{
    double t = (v - lo) / (hi - lo);
    return t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
}

static void
no_estimate(mmcl__coreg_block *out, const char *why)
{
    out->dx = out->dy = NAN;
    out->confidence = 0.0;
    out->why = why;
}

void
mmcl__coreg_estimate(mmcl__coreg_scratch *s, const float *opt,
                     const float *sar, int bw, int bh, mmcl__coreg_block *out)
{
    int S = s->search, mg = s->margin, side = 2 * S + 1;
    int W = bw + 2 * mg, H = bh + 2 * mg;
    size_t plane = (size_t)W * H;
    memset(out, 0, sizeof(*out));
    out->rho = NAN;
    out->sharpness = NAN;
    out->precision = NAN;
    s->has_surface = 0;

    /* Pixels of the block valid in both rasters. */
    size_t n_valid = 0;
    for (int y = 0; y < bh; y++) {
        for (int x = 0; x < bw; x++) {
            size_t p = (size_t)(mg + y) * W + mg + x;
            int ok = 1;
            for (int b = 0; b < s->B1 && ok; b++)
                ok = isfinite(opt[b * plane + p]);
            for (int b = 0; b < s->B2 && ok; b++)
                ok = isfinite(sar[b * plane + p]);
            n_valid += (size_t)ok;
        }
    }
    out->valid_share = (double)n_valid / ((double)bw * bh);
    if (n_valid < MMCL__COREG_MIN_PIXELS || out->valid_share < 0.5) {
        no_estimate(out, "too few valid pixels");
        return;
    }

    impute_smooth(s->o, opt, s->tmp, s->B1, W, H);
    impute_smooth(s->s, sar, s->tmp, s->B2, W, H);
    int r = components(s, s->o, s->B1, W, H, mg, mg, bw, bh, mg, mg, bw, bh,
                       1, s->z);
    if (r == 0) {
        no_estimate(out, "uniform optical");
        return;
    }
    int k = components(s, s->s, s->B2, W, H, 0, 0, W, H, 0, 0, W, H, 0, s->q);
    if (k == 0) {
        no_estimate(out, "uniform SAR");
        return;
    }

    /* The surfaces of the block and of its four halves. */
    part_sums ps[N_PARTS];
    z_sums(s, ps, r, bw, bh);
    int n_shift = side * side;
    double *R = s->surface;
    for (int sy = -S; sy <= S; sy++) {
        sar_columns(s, k, bh, W, H, sy);
        for (int sx = -S; sx <= S; sx++) {
            int i = (sy + S) * side + sx + S;
            shift_sums(s, ps, r, k, bw, bh, W, H, sx, sy);
            for (int p = 0; p < N_PARTS; p++)
                R[p * n_shift + i] = rho2_of(&ps[p], r, k);
        }
    }
    s->has_surface = 1;
    int bx, by;
    double ox, oy;
    peak_fit(R, S, &bx, &by, &ox, &oy);
    double peak = R[(by + S) * side + bx + S];
    out->rho = sqrt(peak);
    if (!(peak > 0.0)) {
        no_estimate(out, "no correlation");
        return;
    }

    /* Sharpness: rho^2 two pixels from the peak (one when the range is
     * a single pixel), relative to the peak. Uniqueness: the highest
     * other local maximum at least two pixels away. */
    int ring = S >= 2 ? 2 : 1;
    double ring_sum = 0.0, second = 0.0;
    int ring_n = 0;
    for (int sy = -S; sy <= S; sy++) {
        for (int sx = -S; sx <= S; sx++) {
            int dist = abs(sx - bx) > abs(sy - by) ? abs(sx - bx)
                                                   : abs(sy - by);
            double v = R[(sy + S) * side + sx + S];
            if (dist == ring) {
                ring_sum += v;
                ring_n++;
            }
            if (dist < 2)
                continue;
            int is_max = 1;
            for (int ny = sy - 1; ny <= sy + 1 && is_max; ny++)
                for (int nx = sx - 1; nx <= sx + 1 && is_max; nx++)
                    if (ny >= -S && ny <= S && nx >= -S && nx <= S &&
                        R[(ny + S) * side + nx + S] > v)
                        is_max = 0;
            if (is_max && v > second)
                second = v;
        }
    }
    out->sharpness = ring_n ? 1.0 - ring_sum / ring_n / peak : 0.0;
    if (abs(bx) == S || abs(by) == S) {
        no_estimate(out, "peak at the edge of the search range");
        return;
    }
    out->dx = bx + ox;
    out->dy = by + oy;

    /* Precision: the halves see disjoint pixels, so half the difference
     * of their shifts estimates the standard error of the block's (each
     * half has twice its variance): the root mean square over the
     * left/right and top/bottom pairs, the larger of the two axes. */
    double hd[N_PARTS][2];
    for (int p = PART_LEFT; p < N_PARTS; p++) {
        int hx, hy;
        double hox, hoy;
        peak_fit(R + p * n_shift, S, &hx, &hy, &hox, &hoy);
        hd[p][0] = hx + hox;
        hd[p][1] = hy + hoy;
    }
    double se = 0.0;
    for (int a = 0; a < 2; a++) {
        double lr = hd[PART_LEFT][a] - hd[PART_RIGHT][a];
        double tb = hd[PART_TOP][a] - hd[PART_BOTTOM][a];
        double v = 0.5 * sqrt(0.5 * (lr * lr + tb * tb));
        se = v > se ? v : se;
    }
    out->precision = se;

    /* Confidence: a clear correlation (rho 0.15 .. 0.45), a peak that
     * stands out (rho^2 two pixels away at least 10 % lower), no rival
     * peak within 10 % of it, halves that agree (standard error 0.1 px
     * or less: full; 0.4 or more: none) and a mostly valid block. */
    out->confidence = ramp(out->rho, 0.15, 0.45) *
                      ramp(out->sharpness, 0.0, 0.1) *
                      ramp(1.0 - second / peak, 0.0, 0.1) *
                      ramp(0.4 - se, 0.0, 0.3) *
                      ramp(out->valid_share, 0.5, 0.8);
}

typedef struct wv {
    double v, w;
} wv;

static int
wv_cmp(const void *a, const void *b)
{
    double x = ((const wv *)a)->v, y = ((const wv *)b)->v;
    return (x > y) - (x < y);
}

double
mmcl__weighted_median(const double *v, const double *w, size_t n,
                      double *work)
{
    wv *p = (wv *)work;
    size_t m = 0;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]) || !(w[i] > 0.0))
            continue;
        p[m].v = v[i];
        p[m].w = w[i];
        total += w[i];
        m++;
    }
    if (m == 0)
        return NAN;
    qsort(p, m, sizeof(*p), wv_cmp);
    double cum = 0.0, half = 0.5 * total;
    for (size_t i = 0; i < m; i++) {
        cum += p[i].w;
        if (cum > half * (1.0 + 1e-12))
            return p[i].v;
        if (cum >= half * (1.0 - 1e-12))
            return i + 1 < m ? 0.5 * (p[i].v + p[i + 1].v) : p[i].v;
    }
    return p[m - 1].v;
}
