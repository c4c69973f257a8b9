/* SPDX-License-Identifier: MIT */
/*
 * The noise floor of the information-loss maps: the noise of each band
 * from second differences, and what it makes a loss band read (see
 * noise_internal.h and docs/noise.md).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context_internal.h"
#include "model_schema_internal.h"
#include "noise_internal.h"
#include "rng.h"

enum {
    BLOCK = 16,            /* lattice block edge (tiles are multiples) */
    MAX_BLOCKS = 585,      /* ~2^18 differences per band (448 a block) */
    FLOOR_ROWS = 4096      /* sample rows for the floors */
};

int
mmcl__noise_block_step(int width, int height)
{
    double blocks = ceil(width / (double)BLOCK) * ceil(height / (double)BLOCK);
    int step = (int)ceil(sqrt(blocks / MAX_BLOCKS));
    return step < 1 ? 1 : step;
}

void
mmcl__noise_diffs_init(mmcl__noise_diffs *nd, int B)
{
    memset(nd, 0, sizeof(*nd));
    nd->B = B;
}

void
mmcl__noise_diffs_free(mmcl__noise_diffs *nd)
{
    free(nd->d);
    nd->d = NULL;
    nd->n = nd->cap = 0;
}

/* Room for @p more differences per band (the layout is band-major, so a
 * larger capacity moves every band's run). */
static mmcl_status
reserve(mmcl_context *ctx, mmcl__noise_diffs *nd, size_t more)
{
    if (nd->n + more <= nd->cap)
        return MMCL_OK;
    size_t cap = nd->cap ? nd->cap : 4096;
    while (cap < nd->n + more)
        cap *= 2;
    float *d = mmcl__malloc_array(ctx, cap, (size_t)nd->B, sizeof(float));
    if (!d)
        return MMCL_ERR_NO_MEMORY;
    for (int b = 0; b < nd->B && nd->n > 0; b++)
        memcpy(d + (size_t)b * cap, nd->d + (size_t)b * nd->cap,
               nd->n * sizeof(float));
    free(nd->d);
    nd->d = d;
    nd->cap = cap;
    return MMCL_OK;
}

/* Appends the second difference of every band along (@p di) at window
 * offset @p o when the three pixels are valid. */
static void
push(mmcl__noise_diffs *nd, const float *v, size_t plane,
     const uint8_t *valid, size_t o, size_t di)
{
    if (!valid[o - di] || !valid[o] || !valid[o + di])
        return;
    for (int b = 0; b < nd->B; b++) {
        const float *p = v + (size_t)b * plane + o;
        nd->d[(size_t)b * nd->cap + nd->n] =
            (float)((double)p[-(ptrdiff_t)di] - 2.0 * p[0] + p[di]);
    }
    nd->n++;
}

mmcl_status
mmcl__noise_diffs_collect(mmcl_context *ctx, mmcl__noise_diffs *nd,
                          const float *v, size_t plane, int W, size_t origin,
                          const uint8_t *valid, int x, int y, int tw, int th,
                          int step)
{
    mmcl_status st = reserve(ctx, nd, 2 * (size_t)tw * th);
    if (st != MMCL_OK)
        return st;
    for (int j = 0; j < th; j++) {
        int gy = y + j, ly = gy % BLOCK;
        if ((gy / BLOCK) % step)
            continue;
        for (int i = 0; i < tw; i++) {
            int gx = x + i, lx = gx % BLOCK;
            if ((gx / BLOCK) % step)
                continue;
            size_t o = origin + (size_t)j * W + (size_t)i;
            if (lx >= 1 && lx <= BLOCK - 2 && i >= 1 && i + 1 < tw)
                push(nd, v, plane, valid, o, 1);
            if (ly >= 1 && ly <= BLOCK - 2 && j >= 1 && j + 1 < th)
                push(nd, v, plane, valid, o, (size_t)W);
        }
    }
    return MMCL_OK;
}

mmcl_status
mmcl__noise_diffs_append(mmcl_context *ctx, mmcl__noise_diffs *dst,
                         const mmcl__noise_diffs *src)
{
    if (src->n == 0)
        return MMCL_OK;
    mmcl_status st = reserve(ctx, dst, src->n);
    if (st != MMCL_OK)
        return st;
    for (int b = 0; b < dst->B; b++)
        memcpy(dst->d + (size_t)b * dst->cap + dst->n,
               src->d + (size_t)b * src->cap, src->n * sizeof(float));
    dst->n += src->n;
    return MMCL_OK;
}

static int
cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The median of v (n), sorting it. */
static double
median(float *v, size_t n)
{
    qsort(v, n, sizeof(float), cmp_float);
    return n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2 - 1] + v[n / 2]);
}

mmcl_status
mmcl__noise_sigma(mmcl_context *ctx, mmcl__noise_diffs *nd, double *sigma)
{
    (void)ctx;
    for (int b = 0; b < nd->B; b++) {
        if (nd->n < MMCL__NOISE_MIN_DIFFS) {
            sigma[b] = NAN;
            continue;
        }
        float *d = nd->d + (size_t)b * nd->cap;
        double med = median(d, nd->n);
        for (size_t i = 0; i < nd->n; i++)
            d[i] = (float)fabs(d[i] - med);
        /* 1.4826 MAD is the standard deviation of a Gaussian; a second
         * difference of white noise has sqrt(6) that of the noise. */
        sigma[b] = 1.482602218505602 * median(d, nd->n) / sqrt(6.0);
    }
    return MMCL_OK;
}

/* The trigamma function psi'(x), x > 0: the recurrence psi'(x) =
 * psi'(x + 1) + 1 / x^2 up to x >= 12, then its asymptotic series to the
 * x^-9 term (the first term left out, 5 / (66 x^11), is below 1e-13
 * there). */
static double
trigamma(double x)
{
    double r = 0;
    while (x < 12) {
        r += 1 / (x * x);
        x += 1;
    }
    double z = 1 / (x * x);
    return r + 1 / x + z / 2 +
           z / x * (1.0 / 6 - z * (1.0 / 30 - z * (1.0 / 42 - z / 30)));
}

double
mmcl__speckle_std_db(double enl)
{
    return 10 / log(10.0) * sqrt(trigamma(enl));
}

double
mmcl__speckle_rho(double sigma, double sigma_diff)
{
    if (!(sigma > sigma_diff))
        return 0;
    /* 2 rho^2 - 8 rho + 6 (1 - q) = 0, q = sigma_diff^2 / sigma^2, root
     * in [0, 1]: rho = 2 - sqrt(1 + 3 q). */
    double q = sigma_diff * sigma_diff / (sigma * sigma);
    double rho = 2 - sqrt(1 + 3 * q);
    return rho > 0.99 ? 0.99 : rho < 0 ? 0 : rho;
}

/* L (P, P), the lower Cholesky factor of the correlations rho^|i - j| of a
 * patch's row (or column); L Z L^T then has the separable correlations. */
static void
row_factor(double *L, int P, double rho)
{
    for (int i = 0; i < P; i++)
        for (int j = 0; j < P; j++)
            L[i * P + j] = j > i ? 0 : pow(rho, i - j);
    /* The AR(1) correlation matrix's factor in closed form: column j
     * below the diagonal is rho^(i-j) sqrt(1 - rho^2), but the first. */
    double c = sqrt(1 - rho * rho);
    for (int i = 0; i < P; i++)
        for (int j = 1; j <= i; j++)
            L[i * P + j] *= c;
}

/* One band's noise over a P x P patch (@p z: P * P standard normals)
 * with standard deviation @p sd and row factor @p L, into @p e (@p t:
 * P * P scratch). */
static void
correlated_patch(float *e, const double *z, double *t, const double *L,
                 int P, double sd)
{
    for (int i = 0; i < P; i++) /* t = L z */
        for (int j = 0; j < P; j++) {
            double s = 0;
            for (int k = 0; k <= i; k++)
                s += L[i * P + k] * z[k * P + j];
            t[i * P + j] = s;
        }
    for (int i = 0; i < P; i++) /* e = t L^T */
        for (int j = 0; j < P; j++) {
            double s = 0;
            for (int k = 0; k <= j; k++)
                s += t[i * P + k] * L[j * P + k];
            e[i * P + j] = (float)(sd * s);
        }
}

/* sum ||e_c - (pred(x + e) - pred(x))||^2 over n rows of B bands. */
static double
residual_noise(const float *ec, const float *p0, const float *pn, size_t n,
               int B)
{
    double s = 0;
    for (size_t i = 0; i < n * (size_t)B; i++) {
        double r = (double)ec[i] - ((double)pn[i] - p0[i]);
        s += r * r;
    }
    return s;
}

mmcl_status
mmcl__noise_floors(mmcl_context *ctx, const mmcl__encoder *enc, int m,
                   const float *X, int N, const double *var,
                   const double *rho, uint64_t seed, double *floor_aligned,
                   double *floor_unimodal)
{
    const mmcl__modality *mod = &enc->mod[m];
    int n = N < FLOOR_ROWS ? N : FLOOR_ROWS, d = mod->d, B = mod->B;
    int P = enc->P, PP = P * P, halo = P / 2;
    int Kmax = mod->K > mod->Ku ? mod->K : mod->Ku;
    size_t nd = (size_t)n * d;
    float *X0 = mmcl__malloc_array(ctx, nd, 2, sizeof(float));
    float *H = mmcl__malloc_array(ctx, (size_t)n * Kmax, 2, sizeof(float));
    float *pred = mmcl__malloc_array(ctx, (size_t)n * B, 3, sizeof(float));
    mmcl__encoder_work *w = mmcl__encoder_work_create(ctx, enc);
    /* Per band row factors (B, P, P), then z and t (P, P) each. */
    double *L = mmcl__malloc_array(ctx, (size_t)(B + 2) * PP, 1,
                                   sizeof(double));
    mmcl_status st = MMCL_OK;
    if (!X0 || !H || !pred || !w || !L) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    float *Xn = X0 + nd, *Hn = H + (size_t)n * Kmax;
    float *pn = pred + (size_t)n * B, *ec = pn + (size_t)n * B;
    /* Rows spread over the sample (which is in raster order), and the
     * same rows with noise added. */
    uint64_t rng = seed ^ 0x6d6d636c6e6f6973ULL; /* "mmclnois" */
    for (int b = 0; b < B; b++)
        row_factor(L + (size_t)b * PP, P, rho[b]);
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)((long long)i * N / n) * d;
        memcpy(X0 + (size_t)i * d, x, (size_t)d * sizeof(float));
        float *xn = Xn + (size_t)i * d;
        double *z = L + (size_t)B * PP, *t = z + PP;
        for (int b = 0; b < B; b++) {
            for (int k = 0; k < PP; k++)
                z[k] = mmcl__rng_normal(&rng);
            correlated_patch(xn + b * PP, z, t, L + (size_t)b * PP, P,
                             sqrt(var[b]));
        }
        for (int b = 0; b < B; b++)
            ec[(size_t)i * B + b] = xn[mmcl__patch_index(b, halo, halo, P)];
        for (int k = 0; k < d; k++)
            xn[k] += x[k];
    }
    /* Through the aligned representation. */
    st = mmcl__encoder_embed(ctx, enc, w, m, X0, n, H);
    if (st == MMCL_OK)
        st = mmcl__encoder_embed(ctx, enc, w, m, Xn, n, Hn);
    if (st != MMCL_OK)
        goto done;
    st = mmcl__linear_apply(ctx, w, pred, &mod->dec_aligned, H, n);
    if (st == MMCL_OK)
        st = mmcl__linear_apply(ctx, w, pn, &mod->dec_aligned, Hn, n);
    if (st != MMCL_OK)
        goto done;
    *floor_aligned = residual_noise(ec, pred, pn, (size_t)n, B) / ((double)n * B);
    /* Through the unimodal PCA. */
    st = mmcl__linear_apply(ctx, w, H, &mod->unimodal, X0, n);
    if (st == MMCL_OK)
        st = mmcl__linear_apply(ctx, w, Hn, &mod->unimodal, Xn, n);
    if (st == MMCL_OK)
        st = mmcl__linear_apply(ctx, w, pred, &mod->dec_unimodal, H, n);
    if (st == MMCL_OK)
        st = mmcl__linear_apply(ctx, w, pn, &mod->dec_unimodal, Hn, n);
    if (st != MMCL_OK)
        goto done;
    *floor_unimodal = residual_noise(ec, pred, pn, (size_t)n, B) / ((double)n * B);
done:
    mmcl__encoder_work_free(w);
    free(L);
    free(X0);
    free(H);
    free(pred);
    return st;
}
