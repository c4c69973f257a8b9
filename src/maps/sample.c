/* SPDX-License-Identifier: MIT */
/*
 * Training samples: statistics pass, uniform selection of valid patch
 * centres, extraction pass, standardization.
 *
 * Under MPI (docs/mpi.md) the sample tiles are the shards: each rank
 * reads only its own tiles (mmcl__dist_owns), in both passes. After pass
 * 1 every tile's figures (valid centres and pixels, the band statistics,
 * the noise's second differences) are packed into a record, the records
 * are shared with every rank and merged in tile order, as the one-machine
 * run merges them at commit; after pass 2 the extracted rows, each written
 * by the rank of its tile, are shared. Every rank then holds the sample of
 * a run on one machine, bit for bit.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "context_internal.h"
#include "dist_internal.h"
#include "maps_internal.h"
#include "mmcl/mpi.h"
#include "noise_internal.h"
#include "options_internal.h"
#include "rng.h"
#include "sample_internal.h"
#include "stats.h"
#include "tiles_internal.h"

typedef struct sample_job {
    const mmcl__pair *pair;
    int P, halo, tile, B1, B2;
    int pass;                /* 1: statistics and counts, 2: extraction */
    mmcl_welford *acc1, *acc2;
    long long *tile_count;   /* valid centres per tile */
    long long n_valid_pixels;
    mmcl__noise_diffs nd1, nd2; /* second differences, in tile order */
    int noise_step;
    /* Pass 2. */
    const uint64_t *ranks;   /* sorted selected ranks, (N) */
    int N;
    long long *tile_first;   /* rank of each tile's first valid centre */
    mmcl__sample *s;
    /* Under MPI: this rank's tiles only; pass 1's records of them, in
     * tile order (pack_tile). */
    int dist;
    unsigned char *rec;
    size_t rec_n, rec_cap;
} sample_job;

typedef struct sample_worker {
    mmcl__pair_reader *reader;
    float *opt, *sar;        /* padded window, band-sequential */
    uint8_t *valid;          /* padded window */
    uint8_t *centre;         /* (tile, tile): valid patch centre */
    uint8_t *rowrun;         /* (tile + 2 halo, tile) scratch */
    mmcl_welford *acc1, *acc2;
    long long count;         /* valid centres in the last tile */
    long long n_pixels;
    mmcl__noise_diffs nd1, nd2; /* of the last tile */
} sample_worker;

static void
worker_stop(void *state, void *user)
{
    sample_worker *w = state;
    if (!w)
        return;
    mmcl__pair_reader_destroy(w->reader);
    free(w->opt);
    free(w->sar);
    free(w->valid);
    free(w->centre);
    free(w->rowrun);
    mmcl__welford_destroy(w->acc1);
    mmcl__welford_destroy(w->acc2);
    mmcl__noise_diffs_free(&w->nd1);
    mmcl__noise_diffs_free(&w->nd2);
    free(w);
}

static void *
worker_start(mmcl_context *ctx, void *user)
{
    sample_job *job = user;
    sample_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    size_t W = (size_t)job->tile + 2 * (size_t)job->halo;
    w->reader = mmcl__pair_reader_create(ctx, job->pair);
    w->opt = mmcl__malloc_array(ctx, W * W, (size_t)job->B1, sizeof(float));
    w->sar = mmcl__malloc_array(ctx, W * W, (size_t)job->B2, sizeof(float));
    w->valid = mmcl__malloc_array(ctx, W, W, 1);
    w->centre = mmcl__malloc_array(ctx, (size_t)job->tile, (size_t)job->tile,
                                   1);
    w->rowrun = mmcl__malloc_array(ctx, W, (size_t)job->tile, 1);
    w->acc1 = mmcl__welford_create(ctx, job->B1);
    w->acc2 = mmcl__welford_create(ctx, job->B2);
    mmcl__noise_diffs_init(&w->nd1, job->B1);
    mmcl__noise_diffs_init(&w->nd2, job->B2);
    if (!w->reader || !w->opt || !w->sar || !w->valid || !w->centre ||
        !w->rowrun || !w->acc1 || !w->acc2) {
        worker_stop(w, user);
        return NULL;
    }
    return w;
}

static mmcl_status
sample_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    sample_job *job = user;
    sample_worker *w = state;
    int halo = job->halo;
    int W = t->w + 2 * halo, H = t->h + 2 * halo;

    if (job->dist && !mmcl__dist_owns(t->index))
        return MMCL_OK; /* another rank's shard */
    if (job->pass == 2) {
        /* Skip tiles without a selected centre. */
        long long first = job->tile_first[t->index];
        long long last = first + job->tile_count[t->index];
        const uint64_t *lo = job->ranks;
        size_t n = (size_t)job->N, a = 0, b = n;
        while (a < b) {
            size_t mid = (a + b) / 2;
            if ((long long)lo[mid] < first)
                a = mid + 1;
            else
                b = mid;
        }
        if (a == n || (long long)lo[a] >= last)
            return MMCL_OK;
    }

    mmcl_status st = mmcl__pair_read(ctx, w->reader, t->x, t->y, t->w, t->h,
                                     halo, w->opt, w->sar, w->valid);
    if (st != MMCL_OK)
        return st;
    /* Training needs both modalities: 1 where both are valid. */
    for (size_t i = 0; i < (size_t)W * H; i++)
        w->valid[i] = w->valid[i] == MMCL__VALID_BOTH;
    mmcl__patch_valid(w->centre, w->valid, 1, t->w, t->h, halo, w->rowrun);

    size_t plane = (size_t)W * H;
    if (job->pass == 1) {
        /* Statistics over the tile's own (unpadded) valid pixels. */
        w->count = 0;
        w->n_pixels = 0;
        mmcl__welford_reset(w->acc1);
        mmcl__welford_reset(w->acc2);
        for (int j = 0; j < t->h; j++) {
            size_t off = (size_t)(j + halo) * W + halo;
            mmcl__welford_update(w->acc1, w->opt + off, w->valid + off,
                                 (size_t)t->w, 1, plane);
            mmcl__welford_update(w->acc2, w->sar + off, w->valid + off,
                                 (size_t)t->w, 1, plane);
            for (int i = 0; i < t->w; i++)
                w->n_pixels += w->valid[off + i];
        }
        for (size_t i = 0; i < (size_t)t->w * t->h; i++)
            w->count += w->centre[i];
        /* The noise's second differences (noise_internal.h). */
        size_t origin = (size_t)halo * W + (size_t)halo;
        w->nd1.n = w->nd2.n = 0;
        mmcl_status st1 = mmcl__noise_diffs_collect(
            ctx, &w->nd1, w->opt, plane, W, origin, w->valid, t->x, t->y,
            t->w, t->h, job->noise_step);
        if (st1 == MMCL_OK)
            st1 = mmcl__noise_diffs_collect(ctx, &w->nd2, w->sar, plane, W,
                                            origin, w->valid, t->x, t->y,
                                            t->w, t->h, job->noise_step);
        return st1;
    }

    /* Pass 2: extract the selected centres of this tile. */
    mmcl__sample *s = job->s;
    long long rank = job->tile_first[t->index];
    const uint64_t *ranks = job->ranks;
    size_t lo = 0, hi = (size_t)job->N;
    while (lo < hi) { /* first selected rank >= rank */
        size_t mid = (lo + hi) / 2;
        if ((long long)ranks[mid] < rank)
            lo = mid + 1;
        else
            hi = mid;
    }
    int P = job->P;
    for (int j = 0; j < t->h && lo < (size_t)job->N; j++) {
        for (int i = 0; i < t->w && lo < (size_t)job->N; i++) {
            if (!w->centre[(size_t)j * t->w + i])
                continue;
            if ((long long)ranks[lo] == rank) {
                float *x1 = s->X1 + lo * (size_t)s->d1;
                float *x2 = s->X2 + lo * (size_t)s->d2;
                for (int r = 0; r < P; r++)
                    for (int c = 0; c < P; c++) {
                        size_t off = (size_t)(j + r) * W + (size_t)(i + c);
                        for (int b = 0; b < job->B1; b++)
                            x1[mmcl__patch_index(b, r, c, P)] =
                                w->opt[plane * b + off];
                        for (int b = 0; b < job->B2; b++)
                            x2[mmcl__patch_index(b, r, c, P)] =
                                w->sar[plane * b + off];
                    }
                s->px[lo] = t->x + i;
                s->py[lo] = t->y + j;
                lo++;
            }
            rank++;
        }
    }
    return MMCL_OK;
}

/* Pass 1's figures of tile @p index into the job's, in tile order (on
 * one machine at commit; under MPI from the shared records). */
static mmcl_status
merge_tile(mmcl_context *ctx, sample_job *job, int index, long long count,
           long long n_pixels, const mmcl_welford *acc1,
           const mmcl_welford *acc2, const mmcl__noise_diffs *nd1,
           const mmcl__noise_diffs *nd2)
{
    job->tile_count[index] = count;
    job->n_valid_pixels += n_pixels;
    mmcl_status st = mmcl__welford_merge(ctx, job->acc1, acc1);
    if (st == MMCL_OK)
        st = mmcl__welford_merge(ctx, job->acc2, acc2);
    if (st == MMCL_OK)
        st = mmcl__noise_diffs_append(ctx, &job->nd1, nd1);
    if (st == MMCL_OK)
        st = mmcl__noise_diffs_append(ctx, &job->nd2, nd2);
    return st;
}

/* A tile's record: index, count, pixels, the differences per band of each
 * modality (int64 each), the two accumulators (count, mean, m2: doubles),
 * the differences (floats, band after band). */
enum { REC_HEAD = 5 * sizeof(int64_t) };

static size_t
record_size(const sample_job *job, size_t n1, size_t n2)
{
    return REC_HEAD + 3 * sizeof(double) * (size_t)(job->B1 + job->B2) +
           sizeof(float) * ((size_t)job->B1 * n1 + (size_t)job->B2 * n2);
}

static unsigned char *
put_bytes(unsigned char *p, const void *v, size_t n)
{
    memcpy(p, v, n);
    return p + n;
}

static const unsigned char *
get_bytes(const unsigned char *p, void *v, size_t n)
{
    memcpy(v, p, n);
    return p + n;
}

/* Appends the record of this rank's tile @p index (pass 1 under MPI). */
static mmcl_status
pack_tile(mmcl_context *ctx, sample_job *job, int index,
          const sample_worker *w)
{
    size_t need = record_size(job, w->nd1.n, w->nd2.n);
    if (job->rec_n + need > job->rec_cap) {
        size_t cap = job->rec_cap ? job->rec_cap : 65536;
        while (cap < job->rec_n + need)
            cap *= 2;
        unsigned char *r = realloc(job->rec, cap);
        if (!r)
            return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        job->rec = r;
        job->rec_cap = cap;
    }
    unsigned char *p = job->rec + job->rec_n;
    int64_t head[5] = {index, w->count, w->n_pixels, (int64_t)w->nd1.n,
                       (int64_t)w->nd2.n};
    p = put_bytes(p, head, sizeof(head));
    const mmcl_welford *acc[2] = {w->acc1, w->acc2};
    for (int m = 0; m < 2; m++) {
        size_t C = (size_t)acc[m]->C * sizeof(double);
        p = put_bytes(p, acc[m]->count, C);
        p = put_bytes(p, acc[m]->mean, C);
        p = put_bytes(p, acc[m]->m2, C);
    }
    const mmcl__noise_diffs *nd[2] = {&w->nd1, &w->nd2};
    for (int m = 0; m < 2; m++)
        for (int b = 0; b < nd[m]->B && nd[m]->n > 0; b++)
            p = put_bytes(p, nd[m]->d + (size_t)b * nd[m]->cap,
                          nd[m]->n * sizeof(float));
    job->rec_n += need;
    return MMCL_OK;
}

static mmcl_status
sample_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    sample_job *job = user;
    sample_worker *w = state;
    if (job->pass != 1)
        return MMCL_OK;
    if (job->dist)
        return mmcl__dist_owns(t->index) ? pack_tile(ctx, job, t->index, w)
                                         : MMCL_OK;
    return merge_tile(ctx, job, t->index, w->count, w->n_pixels, w->acc1,
                      w->acc2, &w->nd1, &w->nd2);
}

/* Under MPI, after pass 1: every rank's records shared, and merged in tile
 * order (tile i is rank i % ranks's, its records in tile order). */
static mmcl_status
share_pass1(mmcl_context *ctx, sample_job *job, int n_tiles)
{
    unsigned char *all = NULL;
    size_t *off = NULL;
    mmcl_status st =
        mmcl__dist_allgather(ctx, job->rec, job->rec_n, &all, &off);
    int ranks = mmcl_mpi_size();
    size_t *at = mmcl__calloc_array(ctx, (size_t)ranks, 1, sizeof(size_t));
    mmcl_welford *acc1 = mmcl__welford_create(ctx, job->B1);
    mmcl_welford *acc2 = mmcl__welford_create(ctx, job->B2);
    mmcl__noise_diffs nd1, nd2;
    mmcl__noise_diffs_init(&nd1, job->B1);
    mmcl__noise_diffs_init(&nd2, job->B2);
    if (st == MMCL_OK && (!at || !acc1 || !acc2))
        st = MMCL_ERR_NO_MEMORY;
    for (int r = 0; st == MMCL_OK && r < ranks; r++)
        at[r] = off[r];
    for (int i = 0; i < n_tiles && st == MMCL_OK; i++) {
        int r = i % ranks;
        const unsigned char *p = all + at[r];
        int64_t head[5];
        if (at[r] + REC_HEAD > off[r + 1]) {
            st = mmcl__error(ctx, MMCL_ERR_IO,
                             "rank %d sent no record of sample tile %d", r,
                             i);
            break;
        }
        p = get_bytes(p, head, sizeof(head));
        size_t size = record_size(job, (size_t)head[3], (size_t)head[4]);
        if (head[0] != i || head[3] < 0 || head[4] < 0 ||
            at[r] + size > off[r + 1]) {
            st = mmcl__error(ctx, MMCL_ERR_IO,
                             "rank %d sent a wrong record of sample tile %d",
                             r, i);
            break;
        }
        mmcl_welford *acc[2] = {acc1, acc2};
        for (int m = 0; m < 2; m++) {
            size_t C = (size_t)acc[m]->C * sizeof(double);
            p = get_bytes(p, acc[m]->count, C);
            p = get_bytes(p, acc[m]->mean, C);
            p = get_bytes(p, acc[m]->m2, C);
        }
        mmcl__noise_diffs *nd[2] = {&nd1, &nd2};
        for (int m = 0; m < 2 && st == MMCL_OK; m++) {
            size_t n = (size_t)head[3 + m];
            nd[m]->n = 0;
            if (n > nd[m]->cap) {
                free(nd[m]->d);
                nd[m]->cap = 0;
                nd[m]->d = mmcl__malloc_array(ctx, n, (size_t)nd[m]->B,
                                              sizeof(float));
                if (!nd[m]->d) {
                    st = MMCL_ERR_NO_MEMORY;
                    break;
                }
                nd[m]->cap = n;
            }
            for (int b = 0; b < nd[m]->B && n > 0; b++)
                p = get_bytes(p, nd[m]->d + (size_t)b * nd[m]->cap,
                              n * sizeof(float));
            nd[m]->n = n;
        }
        if (st == MMCL_OK)
            st = merge_tile(ctx, job, i, head[1], head[2], acc1, acc2, &nd1,
                            &nd2);
        at[r] += size;
    }
    mmcl__welford_destroy(acc1);
    mmcl__welford_destroy(acc2);
    mmcl__noise_diffs_free(&nd1);
    mmcl__noise_diffs_free(&nd2);
    free(at);
    free(all);
    free(off);
    return st;
}

void
mmcl__sample_free(mmcl__sample *s)
{
    if (!s)
        return;
    free(s->X1);
    free(s->X2);
    free(s->px);
    free(s->py);
    free(s->mean1);
    free(s->std1);
    free(s->mean2);
    free(s->std2);
    free(s->noise1);
    free(s->noise2);
    free(s);
}

/* Per-band mean and std; a constant band gets std 1 (its standardized
 * values are then 0, which every objective handles) and is counted. */
static mmcl_status
finish_stats(mmcl_context *ctx, const mmcl_welford *acc, double *mean,
             double *std, int *n_constant)
{
    mmcl_status st = mmcl__welford_result(ctx, mean, std, acc);
    if (st != MMCL_OK)
        return st;
    *n_constant = 0;
    for (int b = 0; b < acc->C; b++) {
        if (!(std[b] > 1e-12 * (1.0 + fabs(mean[b])))) {
            std[b] = 1.0;
            (*n_constant)++;
        }
    }
    return MMCL_OK;
}

/* After pass 1: each tile's first rank, and the number V of valid patch
 * centres checked against what training needs; *N is lowered to V when
 * the sample size is a ceiling (@p at_most). */
static mmcl_status
count_centres(mmcl_context *ctx, sample_job *job, size_t n_tiles,
              const char *const labels[2], int at_most, int *N, long long *V_out)
{
    int P = job->P;
    long long V = 0;
    for (size_t i = 0; i < n_tiles; i++) {
        job->tile_first[i] = V;
        V += job->tile_count[i];
    }
    *V_out = V;
    if (job->n_valid_pixels == 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s and %s: no valid pixel: every pixel has an "
                           "invalid optical or SAR value (nodata, NaN, masked "
                           "or outside the SAR footprint)",
                           labels[0], labels[1]);
    if (V < MMCL__SAMPLE_MIN_PATCHES)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s and %s: only %lld valid %dx%d patch%s (%lld "
                           "valid pixel%s); training needs at least %d",
                           labels[0], labels[1], V, P, P, V == 1 ? "" : "es",
                           job->n_valid_pixels,
                           job->n_valid_pixels == 1 ? "" : "s",
                           MMCL__SAMPLE_MIN_PATCHES);
    if (V < *N && at_most)
        *N = (int)V;
    if (V < *N)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "only %lld valid %dx%d patches, fewer than the %d "
                           "samples asked for (lower %s)",
                           V, P, P, *N, mmcl__opt_name(ctx, "SAMPLES"));
    return MMCL_OK;
}

/* The sample's shape and buffers for N patches of V valid centres. */
static mmcl_status
sample_alloc(mmcl_context *ctx, mmcl__sample *s, const sample_job *job, int N,
             long long V)
{
    int P = job->P;
    s->N = N;
    s->P = P;
    s->B1 = job->B1;
    s->B2 = job->B2;
    s->d1 = job->B1 * P * P;
    s->d2 = job->B2 * P * P;
    s->n_valid_pixels = job->n_valid_pixels;
    s->n_valid_centres = V;
    s->mean1 = mmcl__malloc_array(ctx, (size_t)job->B1, 1, sizeof(double));
    s->std1 = mmcl__malloc_array(ctx, (size_t)job->B1, 1, sizeof(double));
    s->mean2 = mmcl__malloc_array(ctx, (size_t)job->B2, 1, sizeof(double));
    s->std2 = mmcl__malloc_array(ctx, (size_t)job->B2, 1, sizeof(double));
    s->noise1 = mmcl__malloc_array(ctx, (size_t)job->B1, 1, sizeof(double));
    s->noise2 = mmcl__malloc_array(ctx, (size_t)job->B2, 1, sizeof(double));
    /* Zeroed: under MPI each rank writes only its tiles' rows
     * (mmcl__dist_fill_disjoint). */
    s->X1 = mmcl__calloc_array(ctx, (size_t)N, (size_t)s->d1, sizeof(float));
    s->X2 = mmcl__calloc_array(ctx, (size_t)N, (size_t)s->d2, sizeof(float));
    s->px = mmcl__calloc_array(ctx, (size_t)N, 1, sizeof(int));
    s->py = mmcl__calloc_array(ctx, (size_t)N, 1, sizeof(int));
    if (!s->mean1 || !s->std1 || !s->mean2 || !s->std2 || !s->noise1 ||
        !s->noise2 || !s->X1 || !s->X2 || !s->px || !s->py)
        return MMCL_ERR_NO_MEMORY;
    return MMCL_OK;
}

/* Band statistics of pass 1 into the sample; a modality whose every band
 * is constant has nothing to learn. */
static mmcl_status
sample_stats(mmcl_context *ctx, mmcl__sample *s, sample_job *job,
             const char *const labels[2])
{
    mmcl_status st =
        finish_stats(ctx, job->acc1, s->mean1, s->std1, &s->zero_variance1);
    if (st == MMCL_OK)
        st = finish_stats(ctx, job->acc2, s->mean2, s->std2,
                          &s->zero_variance2);
    if (st == MMCL_OK)
        st = mmcl__noise_sigma(ctx, &job->nd1, s->noise1);
    if (st == MMCL_OK)
        st = mmcl__noise_sigma(ctx, &job->nd2, s->noise2);
    if (st != MMCL_OK)
        return st;
    s->n_noise_diffs = (long long)job->nd1.n;
    for (int m = 0; m < 2; m++) {
        int nz = m == 0 ? s->zero_variance1 : s->zero_variance2;
        int nb = m == 0 ? s->B1 : s->B2;
        if (nz == nb)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "%s: %s constant over the %lld valid pixels; "
                               "nothing to learn",
                               labels[m],
                               nb == 1 ? "its band is" : "every band is",
                               job->n_valid_pixels);
    }
    return MMCL_OK;
}

/* Selection sampling (Knuth, TAOCP vol. 2, 3.4.2, Algorithm S): each
 * of the V ranks is kept with probability (N - kept) / (V - seen),
 * which gives a uniform N-subset, already sorted. */
static void
select_ranks(uint64_t *ranks, uint64_t seed, long long V, int N)
{
    uint64_t rng = seed ^ 0x6d6d636c73616d70ULL; /* "mmclsamp" */
    long long kept = 0;
    for (long long i = 0; i < V && kept < N; i++) {
        if ((double)(V - i) * mmcl__rng_uniform(&rng) < (double)(N - kept))
            ranks[kept++] = (uint64_t)i;
    }
}

/* Standardize: every entry of band b by the band's statistics. */
static void
standardize(mmcl__sample *s)
{
    int PP = s->P * s->P;
    for (int n = 0; n < s->N; n++) {
        float *x1 = s->X1 + (size_t)n * s->d1;
        float *x2 = s->X2 + (size_t)n * s->d2;
        for (int b = 0; b < s->B1; b++)
            for (int k = 0; k < PP; k++)
                x1[b * PP + k] = (float)((x1[b * PP + k] - s->mean1[b]) /
                                         s->std1[b]);
        for (int b = 0; b < s->B2; b++)
            for (int k = 0; k < PP; k++)
                x2[b * PP + k] = (float)((x2[b * PP + k] - s->mean2[b]) /
                                         s->std2[b]);
    }
}

mmcl_status
mmcl__sample_draw(mmcl_context *ctx, const mmcl__pair *pair,
                  const char *const labels[2], int P, int N, int at_most,
                  uint64_t seed, int n_threads,
                  mmcl_progress_fn progress, void *progress_user, double p0,
                  double p1, mmcl__sample **out)
{
    *out = NULL;
    int width = mmcl__pair_width(pair), height = mmcl__pair_height(pair);
    if (P < 1 || P % 2 == 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "patch size %d must be odd (1, 3, 5, ...)", P);
    if (P > width || P > height)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "patch size %d is larger than the %d x %d raster "
                           "of %s (a smaller %s, or a larger raster)",
                           P, width, height, labels[0],
                           mmcl__opt_name(ctx, "PATCH"));

    mmcl_status st = MMCL_OK;
    sample_job job = {0};
    job.pair = pair;
    job.P = P;
    job.halo = P / 2;
    const int tile = MMCL__SAMPLE_TILE;
    job.tile = tile;
    job.B1 = mmcl__pair_optical_bands(pair);
    job.B2 = mmcl__pair_sar_bands(pair);
    int nx = (width + tile - 1) / tile, ny = (height + tile - 1) / tile;
    size_t n_tiles = (size_t)nx * ny;
    mmcl__sample *s = calloc(1, sizeof(*s));
    uint64_t *ranks = NULL;
    long long V = 0;
    if (!s)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    job.tile_count = mmcl__calloc_array(ctx, n_tiles, 1, sizeof(long long));
    job.tile_first = mmcl__calloc_array(ctx, n_tiles, 1, sizeof(long long));
    job.acc1 = mmcl__welford_create(ctx, job.B1);
    job.acc2 = mmcl__welford_create(ctx, job.B2);
    mmcl__noise_diffs_init(&job.nd1, job.B1);
    mmcl__noise_diffs_init(&job.nd2, job.B2);
    job.noise_step = mmcl__noise_block_step(width, height);
    job.dist = mmcl__dist_active();
    if (!job.tile_count || !job.tile_first || !job.acc1 || !job.acc2)
        st = mmcl_context_errcode(ctx);

    /* Under MPI every rank goes through the same steps, a failure
     * included, up to each point where the ranks agree (in
     * mmcl__dist_allgather, and after pass 2), so that a failure on one
     * rank stops every rank there. */
    mmcl__tile_job tj = {worker_start, sample_work, sample_commit,
                         worker_stop, &job};
    double mid = p0 + 0.5 * (p1 - p0);
    job.pass = 1;
    if (st == MMCL_OK)
        st = mmcl__run_tiles(ctx, width, height, tile, n_threads, &tj,
                             progress, progress_user, p0, mid);
    if (job.dist)
        st = st == MMCL_OK ? share_pass1(ctx, &job, (int)n_tiles)
                           : mmcl__dist_agree(ctx, st);
    /* From here to pass 2 every rank computes the same from the same
     * figures: the same errors, on every rank. */
    if (st == MMCL_OK)
        st = count_centres(ctx, &job, n_tiles, labels, at_most, &N, &V);
    if (st != MMCL_OK)
        goto done;

    st = sample_alloc(ctx, s, &job, N, V);
    ranks = mmcl__malloc_array(ctx, (size_t)N, 1, sizeof(uint64_t));
    if (st != MMCL_OK || !ranks)
        st = MMCL_ERR_NO_MEMORY;
    if (st == MMCL_OK)
        st = sample_stats(ctx, s, &job, labels);
    if (st != MMCL_OK && !job.dist)
        goto done;
    if (st == MMCL_OK) {
        select_ranks(ranks, seed, V, N);
        job.pass = 2;
        job.ranks = ranks;
        job.N = N;
        job.s = s;
        st = mmcl__run_tiles(ctx, width, height, tile, n_threads, &tj,
                             progress, progress_user, mid, p1);
    }
    if (job.dist) {
        st = mmcl__dist_agree(ctx, st);
        /* Each row, its centre and its position were written by the rank
         * of its tile. */
        if (st == MMCL_OK)
            st = mmcl__dist_fill_disjoint(
                ctx, s->X1, (size_t)N * (size_t)s->d1 * sizeof(float));
        if (st == MMCL_OK)
            st = mmcl__dist_fill_disjoint(
                ctx, s->X2, (size_t)N * (size_t)s->d2 * sizeof(float));
        if (st == MMCL_OK)
            st = mmcl__dist_fill_disjoint(ctx, s->px,
                                          (size_t)N * sizeof(int));
        if (st == MMCL_OK)
            st = mmcl__dist_fill_disjoint(ctx, s->py,
                                          (size_t)N * sizeof(int));
    }
    if (st != MMCL_OK)
        goto done;
    standardize(s);
    *out = s;
    s = NULL;

done:
    mmcl__sample_free(s);
    free(ranks);
    free(job.tile_count);
    free(job.tile_first);
    mmcl__welford_destroy(job.acc1);
    mmcl__welford_destroy(job.acc2);
    mmcl__noise_diffs_free(&job.nd1);
    mmcl__noise_diffs_free(&job.nd2);
    free(job.rec);
    return st;
}
