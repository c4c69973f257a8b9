/* SPDX-License-Identifier: MIT */
/*
 * mmcl_synth: synthetic co-registered optical/SAR scenes with known truth,
 * the spatial version of the linear-Gaussian model of design section 2
 * (what `mmcl synth` writes, design section 3.7):
 *
 *   x1 = A1c zc + A1s z1 + e1      optical, OPTICAL_BANDS values per pixel
 *   x2 = A2c zc + A2s z2 + e2      SAR, SAR_BANDS values per pixel
 *
 * zc (SHARED factors): per-class offsets of a seeded Voronoi land cover
 * (3 sites per class), blended across cell edges, plus smooth random
 * fields (sums of 16 cosines, wavelengths 192-768 px), so that they vary
 * slowly at the 3x3 patch scale. z1 / z2 (the specific factors, preset
 * "specific"): smooth fields (wavelengths 48-192 px) switched on only
 * inside known discs, two each, one optical disc partly overlapping one SAR
 * disc. e: white Gaussian noise of standard deviation NOISE per band.
 *
 * The factors are standardized with statistics of the whole scene (a
 * lattice of at most 512 x 512 pixels; every pixel up to SIZE 512): zc is
 * whitened over the scene; z1 is made uncorrelated with zc and whitened
 * inside its region; z2 is made uncorrelated with zc and z1 and whitened
 * inside its region. So the sample cross-covariance of x1 and x2 has rank
 * SHARED (up to the noise), as the model says, and not only in expectation.
 * Each row of a mixing matrix has unit norm: in every band, the shared part
 * has unit variance, the specific part SPECIFIC_GAIN^2 inside its region
 * (the specific mixing rows are scaled by the gain), and the noise has
 * variance NOISE^2.
 *
 * Everything is streamed tile by tile through the tile pool (memory does
 * not grow with SIZE), and every value is a function of the pixel's
 * position and the seed only (noise from a counter-based generator), so the
 * files are identical for a seed whatever the tiling or the threads.
 */
#define _DEFAULT_SOURCE /* getpid */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>
#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <lapacke.h>
#include <ogr_srs_api.h>

#include "mmcl/synth.h"

#include "blas_info_internal.h"
#include "blas_threads.h"
#include "context_internal.h"
#include "gdal_util_internal.h"
#include "options_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

/* ---- Constants of the scene model -------------------------------------- */

enum {
    N_COS = 16,     /* cosines per smooth field */
    MAX_BANDS = 64, /* OPTICAL_BANDS, SAR_BANDS upper bound (options) */
    LATTICE = 512,  /* statistics lattice edge, at most */
    TILE = 256,     /* tile edge (also the GeoTIFF block) */
    LABEL_NODATA = 255
};

/*
 * Wavelengths of the shared fields, px. Long, so that zc hardly changes
 * within a 3x3 patch: its 1-px differences (rms ~0.01) stay below the
 * noise (0.1), and a patch CCA finds SHARED correlations near 1 and the
 * next ones (the spatial gradients of zc, also seen by both) near 0.2
 * instead of 0.8 with 32-128 px wavelengths.
 */
#define SHARED_WL_MIN 192.0
#define SHARED_WL_MAX 768.0
/* Specific fields need no such care (they are in one modality only):
 * shorter, so that they show structure inside their regions. */
#define SPECIFIC_WL_MIN 48.0
#define SPECIFIC_WL_MAX 192.0
/* Class offsets blend over CLASS_BLEND px (default) of distance
 * difference to the nearest site (about half that on each side of a cell
 * edge), for the same reason. 0 makes sharp class edges, which patch
 * encoders see as structure shared by both modalities. */
#define CLASS_OFFSET_STD 1.5 /* per-class offsets, against unit fields */
#define HOLE_R_MIN 3.0       /* SAR hole radius range, px */
#define HOLE_R_MAX 10.0
#define ORIGIN_X 500000.0 /* UTM 31N grid origin (upper left), metres */
#define ORIGIN_Y 4800000.0
#define OPTICAL_EPSG 32631

/* Physical scaling: value = offset + scale * x. */
#define OPTICAL_OFFSET 0.2 /* reflectance */
#define OPTICAL_SCALE 0.04
#define SAR_SCALE 2.5                               /* dB */
static const double sar_offsets[] = {-10.0, -17.0}; /* VV, VH; then -13 */
#define SAR_OFFSET_OTHER -13.0

/* Independent random streams, so that changing one option (say SAR_HOLES)
 * leaves the rest of the scene as it was. */
enum {
    STREAM_SITES = 1,
    STREAM_OFFSETS,
    STREAM_FIELDS,
    STREAM_MIXING,
    STREAM_REGIONS,
    STREAM_HOLES,
    STREAM_NOISE,
    STREAM_SHIFT
};

/* ---- Random numbers: explicit state, splitmix64 (style section 6) ------ */

#define GOLDEN 0x9E3779B97F4A7C15ULL

/* The splitmix64 output function (Steele, Lea & Flood, OOPSLA 2014). */
static uint64_t
mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t
rng_next(uint64_t *state)
{
    *state += GOLDEN;
    return mix64(*state);
}

static uint64_t
rng_stream(uint64_t seed, uint64_t stream)
{
    return mix64(seed ^ mix64(stream * GOLDEN));
}

/* Uniform in [0, 1), 53 bits. */
static double
rng_uniform(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) * 0x1.0p-53;
}

static double
rng_range(uint64_t *state, double lo, double hi)
{
    return lo + (hi - lo) * rng_uniform(state);
}

/* N(0, 1) by Box-Muller (one of the pair is dropped; few values). */
static double
rng_normal(uint64_t *state)
{
    double u1 = 1.0 - rng_uniform(state); /* (0, 1] */
    double u2 = rng_uniform(state);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/*
 * Two independent N(0, 1) values that depend only on (key, counter): the
 * Marsaglia polar method on a counter-based stream, so the noise of a pixel
 * does not depend on the order in which pixels are made.
 */
static void
gauss_pair(uint64_t key, uint64_t counter, double *a, double *b)
{
    uint64_t h = mix64(key + counter * GOLDEN);
    for (;;) {
        double u = ((double)(h >> 40) + 0.5) * 0x1.0p-23 - 1.0;
        double v = ((double)((h >> 16) & 0xFFFFFF) + 0.5) * 0x1.0p-23 - 1.0;
        double s = u * u + v * v;
        if (s < 1.0) {
            double f = sqrt(-2.0 * log(s) / s);
            *a = u * f;
            *b = v * f;
            return;
        }
        h = mix64(h + GOLDEN); /* rejected (21%): next draw of the chain */
    }
}

/* ---- The scene model ----------------------------------------------------- */

/* f(X, Y) = sqrt(2 / N_COS) sum_m cos(a_m X + b_m Y + c_m), X, Y in px. */
typedef struct synth_field {
    double a[N_COS], b[N_COS], c[N_COS];
} synth_field;

/* A disc on the optical grid, in pixels: pixel (col, row) is inside when
 * (col + 0.5 - x)^2 + (row + 0.5 - y)^2 <= r^2. */
typedef struct synth_disc {
    double x, y, r;
} synth_disc;

typedef struct synth_site {
    double x, y;
    int cls;
} synth_site;

/*
 * One standardization stage (z = mask * (W f - K [1; g])): f are the raw
 * values of the stage's factors, g the factors of the earlier stages.
 */
typedef struct synth_stage {
    int n;    /* factors in this stage */
    int dg;   /* 1 + number of earlier factors regressed out */
    float *W; /* (n, n) lower triangular whitening */
    float *K; /* (n, dg): regression on [1; g], whitened */
} synth_stage;

/*
 * A known misregistration of the SAR (the convention of `mmcl coreg`): a
 * ground feature at optical pixel position (x, y) appears in the SAR at
 * (x + dx, y + dy), optical pixels, with
 *   d(x, y) = c + A sum_k w_k sin(2 pi (x cos t_k + y sin t_k) / L_k + p_k)
 * per component (weights w_k summing to 1, so |d - c| <= A).
 */
enum { SHIFT_TERMS = 3 };
typedef struct synth_shift {
    int on;
    double c[2]; /* constant part (dx, dy) */
    double amp;  /* amplitude A of the smooth part */
    double k[2][SHIFT_TERMS][2]; /* wave vectors 2 pi (cos t, sin t) / L */
    double phase[2][SHIFT_TERMS];
    int halo; /* pixels of ground around a tile its SAR may show */
} synth_shift;

static const double shift_weights[SHIFT_TERMS] = {0.5, 0.3, 0.2};

typedef struct synth_model {
    int size, S, P1, P2, B1, B2, n_classes, frame, specific;
    double noise, pixel_size, class_blend;
    double gain; /* std of the specific part relative to the shared part */
    uint64_t seed, noise_key;
    int n_sites;
    synth_site *sites;
    double *class_off;   /* (n_classes, S) */
    synth_field *fields; /* S shared, then P1 optical-, then P2 SAR-specific */
    float *A1c, *A1s;    /* (B1, S), (B1, P1) row-major */
    float *A2c, *A2s;    /* (B2, S), (B2, P2) */
    float opt_offset[MAX_BANDS], opt_scale[MAX_BANDS];
    float sar_offset[MAX_BANDS], sar_scale[MAX_BANDS];
    synth_stage stage[3]; /* zc, z1, z2 */
    int stride;           /* statistics lattice step, px */
    int n_r1, n_r2;
    synth_disc r1[2], r2[2]; /* where z1 / z2 are on */
    int n_holes;
    synth_disc *holes; /* SAR holes */
    synth_shift shift; /* the SAR's misregistration (none when !on) */
} synth_model;

static void
model_free(synth_model *m)
{
    free(m->sites);
    free(m->class_off);
    free(m->fields);
    free(m->A1c);
    free(m->A1s);
    free(m->A2c);
    free(m->A2s);
    for (int i = 0; i < 3; i++) {
        free(m->stage[i].W);
        free(m->stage[i].K);
    }
    free(m->holes);
}

static void
field_draw(synth_field *f, double wl_min, double wl_max, uint64_t *rng)
{
    for (int k = 0; k < N_COS; k++) {
        /* log-uniform wavelength, uniform direction and phase */
        double wl = wl_min * exp(rng_uniform(rng) * log(wl_max / wl_min));
        double theta = rng_range(rng, 0.0, 2.0 * M_PI);
        double kk = 2.0 * M_PI / wl;
        f->a[k] = kk * cos(theta);
        f->b[k] = kk * sin(theta);
        f->c[k] = rng_range(rng, 0.0, 2.0 * M_PI);
    }
}

/* Gaussian (rows, cols) matrix, each row scaled to unit norm. */
static void
mixing_draw(float *A, int rows, int cols, uint64_t *rng)
{
    for (int r = 0; r < rows; r++) {
        double v[MAX_BANDS], norm = 0.0;
        for (int c = 0; c < cols; c++) {
            v[c] = rng_normal(rng);
            norm += v[c] * v[c];
        }
        norm = sqrt(norm);
        for (int c = 0; c < cols; c++)
            A[(size_t)r * cols + c] = (float)(v[c] / norm);
    }
}

/* A disc at (fx, fy) r (fractions of the valid interior), jittered. */
static synth_disc
region_disc(const synth_model *m, double fx, double fy, double fr,
            uint64_t *rng)
{
    double inner = m->size - 2.0 * m->frame;
    synth_disc d;
    d.x = m->frame + inner * (fx + rng_range(rng, -0.03, 0.03));
    d.y = m->frame + inner * (fy + rng_range(rng, -0.03, 0.03));
    d.r = inner * fr;
    return d;
}

/* Draws every random parameter of the scene (not the standardization). */
static mmcl_status
model_draw(mmcl_context *ctx, synth_model *m)
{
    int S = m->S, P1 = m->P1, P2 = m->P2;
    m->n_sites = 3 * m->n_classes;
    m->sites =
        mmcl__calloc_array(ctx, (size_t)m->n_sites, 1, sizeof(synth_site));
    m->class_off = mmcl__calloc_array(ctx, (size_t)m->n_classes, (size_t)S,
                                      sizeof(double));
    m->fields =
        mmcl__calloc_array(ctx, (size_t)(S + P1 + P2), 1, sizeof(synth_field));
    m->A1c = mmcl__calloc_array(ctx, (size_t)m->B1, (size_t)S, sizeof(float));
    m->A2c = mmcl__calloc_array(ctx, (size_t)m->B2, (size_t)S, sizeof(float));
    m->A1s =
        mmcl__calloc_array(ctx, (size_t)m->B1, (size_t)P1 + 1, sizeof(float));
    m->A2s =
        mmcl__calloc_array(ctx, (size_t)m->B2, (size_t)P2 + 1, sizeof(float));
    m->holes =
        mmcl__calloc_array(ctx, (size_t)m->n_holes + 1, 1, sizeof(synth_disc));
    if (!m->sites || !m->class_off || !m->fields || !m->A1c || !m->A2c ||
        !m->A1s || !m->A2s || !m->holes)
        return MMCL_ERR_NO_MEMORY;

    /* Land cover: 3 Voronoi sites per class, classes shuffled over sites. */
    uint64_t rng = rng_stream(m->seed, STREAM_SITES);
    for (int i = 0; i < m->n_sites; i++) {
        m->sites[i].x = rng_range(&rng, 0.0, m->size);
        m->sites[i].y = rng_range(&rng, 0.0, m->size);
        m->sites[i].cls = i % m->n_classes;
    }
    for (int i = m->n_sites - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(rng_next(&rng) % (uint64_t)(i + 1));
        int t = m->sites[i].cls;
        m->sites[i].cls = m->sites[j].cls;
        m->sites[j].cls = t;
    }
    rng = rng_stream(m->seed, STREAM_OFFSETS);
    for (int i = 0; i < m->n_classes * S; i++)
        m->class_off[i] = CLASS_OFFSET_STD * rng_normal(&rng);
    rng = rng_stream(m->seed, STREAM_FIELDS);
    for (int f = 0; f < S + P1 + P2; f++)
        field_draw(&m->fields[f], f < S ? SHARED_WL_MIN : SPECIFIC_WL_MIN,
                   f < S ? SHARED_WL_MAX : SPECIFIC_WL_MAX, &rng);
    rng = rng_stream(m->seed, STREAM_MIXING);
    mixing_draw(m->A1c, m->B1, S, &rng);
    mixing_draw(m->A2c, m->B2, S, &rng);
    if (P1)
        mixing_draw(m->A1s, m->B1, P1, &rng);
    if (P2)
        mixing_draw(m->A2s, m->B2, P2, &rng);
    /* The specific parts are SPECIFIC_GAIN times stronger than the shared
     * part: with a gain above 1 a modality's own top-k PCA keeps its
     * specific factors, while alignment still drops them. */
    for (int i = 0; i < m->B1 * P1; i++)
        m->A1s[i] *= (float)m->gain;
    for (int i = 0; i < m->B2 * P2; i++)
        m->A2s[i] *= (float)m->gain;

    /*
     * Regions: z1 on in two discs (A, B), z2 in two others (C, D); C
     * partly overlaps A, so that the scene has optical-only, SAR-only, both
     * and neither areas. The jitter (3% of the interior) keeps the overlap.
     * Each modality's discs cover about 30% of the scene: a rank correlation
     * between a loss map and an energy that is 0 on a fraction (1 - f) of
     * the pixels cannot exceed sqrt(1 - (1 - f)^3) (the ties), about 0.8
     * here, so the oracle test has room.
     */
    rng = rng_stream(m->seed, STREAM_REGIONS);
    synth_disc a = region_disc(m, 0.28, 0.28, 0.22, &rng);
    synth_disc b = region_disc(m, 0.72, 0.71, 0.22, &rng);
    synth_disc c = region_disc(m, 0.64, 0.31, 0.21, &rng);
    synth_disc d = region_disc(m, 0.29, 0.74, 0.21, &rng);
    if (P1) {
        m->n_r1 = 2;
        m->r1[0] = a;
        m->r1[1] = b;
    }
    if (P2) {
        m->n_r2 = 2;
        m->r2[0] = c;
        m->r2[1] = d;
    }

    rng = rng_stream(m->seed, STREAM_HOLES);
    for (int i = 0; i < m->n_holes; i++) {
        m->holes[i].x = rng_range(&rng, 0.0, m->size);
        m->holes[i].y = rng_range(&rng, 0.0, m->size);
        m->holes[i].r = rng_range(&rng, HOLE_R_MIN, HOLE_R_MAX);
    }
    m->noise_key = rng_stream(m->seed, STREAM_NOISE);

    /* The smooth shift field: wavelengths of half to one scene (at least
     * 128 to 256 px), so that it hardly changes within a block. */
    rng = rng_stream(m->seed, STREAM_SHIFT);
    double wl_min = fmax(128.0, 0.5 * m->size), wl_max = 2.0 * wl_min;
    for (int comp = 0; comp < 2; comp++) {
        for (int k = 0; k < SHIFT_TERMS; k++) {
            double t = rng_range(&rng, 0.0, 2.0 * M_PI);
            double wl = rng_range(&rng, wl_min, wl_max);
            m->shift.k[comp][k][0] = 2.0 * M_PI * cos(t) / wl;
            m->shift.k[comp][k][1] = 2.0 * M_PI * sin(t) / wl;
            m->shift.phase[comp][k] = rng_range(&rng, 0.0, 2.0 * M_PI);
        }
    }
    m->shift.halo = (int)ceil(fmax(fabs(m->shift.c[0]), fabs(m->shift.c[1])) +
                              m->shift.amp) +
                    2;

    for (int i = 0; i < m->B1; i++) {
        m->opt_offset[i] = (float)OPTICAL_OFFSET;
        m->opt_scale[i] = (float)OPTICAL_SCALE;
    }
    for (int i = 0; i < m->B2; i++) {
        m->sar_offset[i] = (float)(i < 2 ? sar_offsets[i] : SAR_OFFSET_OTHER);
        m->sar_scale[i] = (float)SAR_SCALE;
    }
    return MMCL_OK;
}

/* The shift (dx, dy) at the optical pixel position (x, y). */
static void
shift_at(const synth_shift *sh, double x, double y, double d[2])
{
    for (int c = 0; c < 2; c++) {
        double v = 0.0;
        for (int k = 0; k < SHIFT_TERMS; k++)
            v += shift_weights[k] *
                 sin(sh->k[c][k][0] * x + sh->k[c][k][1] * y +
                     sh->phase[c][k]);
        d[c] = sh->c[c] + sh->amp * v;
    }
}

/* ---- Evaluation on a grid of pixel centres ------------------------------ */

/* Per-thread buffers for evaluating up to cap points per row. */
typedef struct synth_scratch {
    int cap;
    double *dist; /* (n_sites, cap) */
    int *cand;    /* (n_sites) */
    float *cx;    /* (N_COS, cap) cos(a X) */
    float *sx;    /* (N_COS, cap) sin(a X) */
} synth_scratch;

static void
scratch_free(synth_scratch *s)
{
    free(s->dist);
    free(s->cand);
    free(s->cx);
    free(s->sx);
}

static mmcl_status
scratch_init(mmcl_context *ctx, synth_scratch *s, const synth_model *m, int cap)
{
    s->cap = cap;
    s->dist = mmcl__malloc_array(ctx, (size_t)m->n_sites, (size_t)cap,
                                 sizeof(double));
    s->cand = mmcl__malloc_array(ctx, (size_t)m->n_sites, 1, sizeof(int));
    s->cx = mmcl__malloc_array(ctx, N_COS, (size_t)cap, sizeof(float));
    s->sx = mmcl__malloc_array(ctx, N_COS, (size_t)cap, sizeof(float));
    if (!s->dist || !s->cand || !s->cx || !s->sx)
        return MMCL_ERR_NO_MEMORY;
    return MMCL_OK;
}

static int
in_discs(const synth_disc *d, int n, double x, double y)
{
    for (int i = 0; i < n; i++) {
        double dx = x - d[i].x, dy = y - d[i].y;
        if (dx * dx + dy * dy <= d[i].r * d[i].r)
            return 1;
    }
    return 0;
}

/*
 * Sites that can be nearest to, or within CLASS_BLEND of the nearest of,
 * some point of the box [x0, x1] x [y0, y1]; in site order.
 */
static int
prune_sites(const synth_model *m, double x0, double x1, double y0, double y1,
            int *cand)
{
    double best_far = INFINITY;
    for (int i = 0; i < m->n_sites; i++) {
        double fx = fmax(fabs(m->sites[i].x - x0), fabs(m->sites[i].x - x1));
        double fy = fmax(fabs(m->sites[i].y - y0), fabs(m->sites[i].y - y1));
        best_far = fmin(best_far, sqrt(fx * fx + fy * fy));
    }
    int n = 0;
    for (int i = 0; i < m->n_sites; i++) {
        double nx = fmax(0.0, fmax(x0 - m->sites[i].x, m->sites[i].x - x1));
        double ny = fmax(0.0, fmax(y0 - m->sites[i].y, m->sites[i].y - y1));
        if (sqrt(nx * nx + ny * ny) <= best_far + m->class_blend + 1.0)
            cand[n++] = i;
    }
    return n;
}

/*
 * The raw latent rasters on the points xs (nx, increasing) x ys (ny,
 * increasing), pixel-centre coordinates on the optical grid, n = nx * ny
 * points row-major:
 *   label (n): land-cover class (nearest Voronoi site)
 *   craw (S, n): blended class offsets + shared smooth fields
 *   fspec (P1 + P2, n): the specific smooth fields (not masked)
 *   m1, m2 (n): 1 inside the optical- / SAR-specific regions
 * Each value depends on its point only, not on the other points asked for.
 */
static void
eval_latent(const synth_model *m, synth_scratch *s, const double *xs, int nx,
            const double *ys, int ny, uint8_t *label, float *craw, float *fspec,
            uint8_t *m1, uint8_t *m2)
{
    int S = m->S, P = m->P1 + m->P2;
    size_t n = (size_t)nx * ny;
    int nc = prune_sites(m, xs[0], xs[nx - 1], ys[0], ys[ny - 1], s->cand);

    /* Land cover and class offsets. The offsets blend over class_blend px
     * of distance difference (weights (1 - (d - dmin) / class_blend)^2),
     * so zc has no step at cell edges that a 3x3 patch would see; with
     * class_blend 0, the nearest site's class only. */
    for (int j = 0; j < ny; j++) {
        for (int k = 0; k < nc; k++) {
            const synth_site *site = &m->sites[s->cand[k]];
            double dy = ys[j] - site->y;
            double *d = s->dist + (size_t)k * s->cap;
            for (int i = 0; i < nx; i++) {
                double dx = xs[i] - site->x;
                d[i] = sqrt(dx * dx + dy * dy);
            }
        }
        for (int i = 0; i < nx; i++) {
            size_t p = (size_t)j * nx + i;
            int best = 0;
            double dmin = s->dist[i];
            for (int k = 1; k < nc; k++) {
                if (s->dist[(size_t)k * s->cap + i] < dmin) {
                    dmin = s->dist[(size_t)k * s->cap + i];
                    best = k;
                }
            }
            label[p] = (uint8_t)m->sites[s->cand[best]].cls;
            double acc[16] = {0}, wsum = 0.0;
            for (int k = 0; k < nc; k++) {
                double dd = s->dist[(size_t)k * s->cap + i] - dmin;
                if (m->class_blend <= 0.0 ? k != best
                                          : dd >= m->class_blend)
                    continue;
                double t = m->class_blend > 0.0 ? dd / m->class_blend : 0.0;
                double w = (1.0 - t) * (1.0 - t);
                const double *off =
                    m->class_off + (size_t)m->sites[s->cand[k]].cls * S;
                wsum += w;
                for (int c = 0; c < S; c++)
                    acc[c] += w * off[c];
            }
            for (int c = 0; c < S; c++)
                craw[(size_t)c * n + p] = (float)(acc[c] / wsum);
        }
    }

    /* Smooth fields, separably: cos(aX + bY + c) = cos(aX) cos(bY + c) -
     * sin(aX) sin(bY + c), with per-column tables. */
    if (P)
        memset(fspec, 0, (size_t)P * n * sizeof(float));
    double amp = sqrt(2.0 / N_COS);
    for (int f = 0; f < S + P; f++) {
        const synth_field *fd = &m->fields[f];
        float *dst = f < S ? craw + (size_t)f * n : fspec + (size_t)(f - S) * n;
        for (int k = 0; k < N_COS; k++) {
            for (int i = 0; i < nx; i++) {
                s->cx[(size_t)k * s->cap + i] = (float)cos(fd->a[k] * xs[i]);
                s->sx[(size_t)k * s->cap + i] = (float)sin(fd->a[k] * xs[i]);
            }
        }
        for (int j = 0; j < ny; j++) {
            float *row = dst + (size_t)j * nx;
            for (int k = 0; k < N_COS; k++) {
                double ph = fd->b[k] * ys[j] + fd->c[k];
                float cy = (float)(amp * cos(ph)), sy = (float)(amp * sin(ph));
                const float *cx = s->cx + (size_t)k * s->cap;
                const float *sx = s->sx + (size_t)k * s->cap;
                for (int i = 0; i < nx; i++)
                    row[i] += cx[i] * cy - sx[i] * sy;
            }
        }
    }

    for (int j = 0; j < ny; j++) {
        for (int i = 0; i < nx; i++) {
            size_t p = (size_t)j * nx + i;
            m1[p] = (uint8_t)in_discs(m->r1, m->n_r1, xs[i], ys[j]);
            m2[p] = (uint8_t)in_discs(m->r2, m->n_r2, xs[i], ys[j]);
        }
    }
}

/*
 * z (n_f, n) = mask * (W f - K [1; g]): one standardization stage.
 * f (n_f, n) raw values; g (dg - 1, n) the earlier factors (NULL if dg 1);
 * W (n_f, n_f); K (n_f, dg); mask (n) or NULL.
 */
static void
stage_apply(float *z, const synth_stage *st, const float *f, const float *g,
            const uint8_t *mask, size_t n)
{
    int nf = st->n, dg = st->dg;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nf, (int)n, nf, 1.0f,
                st->W, nf, f, (int)n, 0.0f, z, (int)n);
    if (dg > 1)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nf, (int)n,
                    dg - 1, -1.0f, st->K + 1, dg, g, (int)n, 1.0f, z, (int)n);
    for (int a = 0; a < nf; a++) {
        float bias = st->K[(size_t)a * dg];
        float *za = z + (size_t)a * n;
        for (size_t p = 0; p < n; p++)
            za[p] = mask && !mask[p] ? 0.0f : za[p] - bias;
    }
}

/* ---- Scene statistics: the standardization stages ----------------------- */

/*
 * From the moments M = sum v v^T (d x d, upper triangle) of v = [g; f]
 * (g: dg values, the first being 1) over n points: regress f on g, whiten
 * the residual. Fills st->W (W = L^-1, R = L L^T the residual covariance)
 * and st->K = W B (B the regression coefficients), so that
 * z = W f - K g = W (f - B g) has mean 0, identity covariance and no
 * correlation with g over the points.
 */
static mmcl_status
stage_solve(mmcl_context *ctx, synth_stage *st, double *M, int d, int dg,
            long long n, const char *what)
{
    int df = d - dg;
    mmcl_status status = MMCL_OK;
    if (n < 4LL * d)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "the %s region holds too few pixels (%lld) to "
                           "standardize its factors; increase %s",
                           what, n, mmcl__opt_name(ctx, "SIZE"));
    for (int r = 0; r < d; r++) /* mirror the upper triangle */
        for (int c = 0; c < r; c++)
            M[(size_t)r * d + c] = M[(size_t)c * d + r];

    double *G = mmcl__malloc_array(ctx, (size_t)dg, (size_t)dg, sizeof(double));
    double *X = mmcl__malloc_array(ctx, (size_t)dg, (size_t)df, sizeof(double));
    double *R = mmcl__malloc_array(ctx, (size_t)df, (size_t)df, sizeof(double));
    double *K = mmcl__malloc_array(ctx, (size_t)df, (size_t)dg, sizeof(double));
    st->W = mmcl__calloc_array(ctx, (size_t)df, (size_t)df, sizeof(float));
    st->K = mmcl__calloc_array(ctx, (size_t)df, (size_t)dg, sizeof(float));
    if (!G || !X || !R || !K || !st->W || !st->K) {
        status = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    st->n = df;
    st->dg = dg;
    for (int r = 0; r < dg; r++)
        for (int c = 0; c < dg; c++)
            G[(size_t)r * dg + c] = M[(size_t)r * d + c];
    for (int r = 0; r < dg; r++) /* X = M_gf (dg, df) */
        for (int c = 0; c < df; c++)
            X[(size_t)r * df + c] = M[(size_t)r * d + dg + c];
    for (int r = 0; r < df; r++)
        for (int c = 0; c < df; c++)
            R[(size_t)r * df + c] = M[(size_t)(dg + r) * d + dg + c];

    /* X = G^-1 M_gf = B^T */
    lapack_int info =
        LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', dg, df, G, dg, X, df);
    if (info != 0) {
        status = mmcl__error(ctx, MMCL_ERR_NUMERIC,
                             "cannot standardize the %s factors: the "
                             "regressors are degenerate (dposv info=%d)",
                             what, (int)info);
        goto done;
    }
    /* R = (M_ff - M_fg B^T) / n: the residual covariance */
    double *Mgf = K; /* reuse as scratch: (dg, df) */
    for (int r = 0; r < dg; r++)
        for (int c = 0; c < df; c++)
            Mgf[(size_t)r * df + c] = M[(size_t)r * d + dg + c];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, df, df, dg, -1.0, Mgf,
                df, X, df, 1.0, R, df);
    for (size_t i = 0; i < (size_t)df * df; i++)
        R[i] /= (double)n;
    info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', df, R, df);
    if (info == 0)
        info = LAPACKE_dtrtri(LAPACK_ROW_MAJOR, 'L', 'N', df, R, df);
    if (info != 0) {
        status = mmcl__error(ctx, MMCL_ERR_NUMERIC,
                             "cannot standardize the %s factors: their "
                             "covariance is singular (info=%d)",
                             what, (int)info);
        goto done;
    }
    for (int r = 0; r < df; r++) /* R is now W = L^-1, lower triangular */
        for (int c = r + 1; c < df; c++)
            R[(size_t)r * df + c] = 0.0;
    /* K = W B = W X^T (df, dg) */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, df, dg, df, 1.0, R, df,
                X, df, 0.0, K, dg);
    for (size_t i = 0; i < (size_t)df * df; i++)
        st->W[i] = (float)R[i];
    for (size_t i = 0; i < (size_t)df * dg; i++)
        st->K[i] = (float)K[i];

done:
    free(G);
    free(X);
    free(R);
    free(K);
    return status;
}

/*
 * Computes the three stages from the scene: a lattice of every
 * m->stride-th pixel (all of them up to SIZE 512), evaluated in blocks of
 * LATTICE_ROWS rows. Stage s needs the earlier ones, so the lattice is
 * evaluated once per stage.
 */
static mmcl_status
model_standardize(mmcl_context *ctx, synth_model *m)
{
    enum { LATTICE_ROWS = 32 };
    int S = m->S, P1 = m->P1, P2 = m->P2;
    int stride = (m->size + LATTICE - 1) / LATTICE;
    int nl = (m->size + stride - 1) / stride;
    size_t cap = (size_t)nl * LATTICE_ROWS; /* points per block, at most */
    size_t nv = (size_t)S + P1 + P2 + 1;
    mmcl_status status = MMCL_OK;
    synth_scratch s = {0};
    double *xs = mmcl__malloc_array(ctx, (size_t)nl, 1, sizeof(double));
    double *ys = mmcl__malloc_array(ctx, LATTICE_ROWS, 1, sizeof(double));
    uint8_t *label = mmcl__malloc_array(ctx, cap, 3, 1);
    float *craw = mmcl__malloc_array(ctx, cap, (size_t)S, sizeof(float));
    float *fspec =
        mmcl__malloc_array(ctx, cap, (size_t)P1 + P2 + 1, sizeof(float));
    float *z = mmcl__malloc_array(ctx, cap, (size_t)S + P1 + P2, sizeof(float));
    double *V = mmcl__malloc_array(ctx, cap, nv, sizeof(double));
    double *M = mmcl__malloc_array(ctx, nv, nv, sizeof(double));
    m->stride = stride;
    if (!xs || !ys || !label || !craw || !fspec || !z || !V || !M ||
        scratch_init(ctx, &s, m, nl) != MMCL_OK) {
        status = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    for (int i = 0; i < nl; i++)
        xs[i] = i * stride + 0.5;
    uint8_t *m1 = label + cap, *m2 = label + 2 * cap;

    static const char *const what[3] = {"shared", "optical-specific",
                                        "SAR-specific"};
    for (int stage = 0; stage < 3; stage++) {
        int nf = stage == 0 ? S : stage == 1 ? P1 : P2;
        int dg = stage == 0 ? 1 : stage == 1 ? 1 + S : 1 + S + P1;
        int d = dg + nf;
        if (nf == 0)
            continue;
        long long n = 0;
        memset(M, 0, nv * nv * sizeof(double));
        for (int j0 = 0; j0 < nl; j0 += LATTICE_ROWS) {
            int nr = nl - j0 < LATTICE_ROWS ? nl - j0 : LATTICE_ROWS;
            size_t np = (size_t)nl * nr; /* plane stride of this block */
            for (int r = 0; r < nr; r++)
                ys[r] = (j0 + r) * stride + 0.5;
            eval_latent(m, &s, xs, nl, ys, nr, label, craw, fspec, m1, m2);
            float *zc = z, *z1 = z + (size_t)S * np;
            if (stage >= 1)
                stage_apply(zc, &m->stage[0], craw, NULL, NULL, np);
            if (stage >= 2 && P1)
                stage_apply(z1, &m->stage[1], fspec, zc, m1, np);
            const uint8_t *mask = stage == 0 ? NULL : stage == 1 ? m1 : m2;
            const float *f = stage == 0   ? craw
                             : stage == 1 ? fspec
                                          : fspec + (size_t)P1 * np;
            int rows = 0;
            for (size_t i = 0; i < np; i++) {
                if (mask && !mask[i])
                    continue;
                double *v = V + (size_t)rows * d;
                v[0] = 1.0;
                for (int c = 1; c < dg; c++) /* g: zc then z1 */
                    v[c] = z[(size_t)(c - 1) * np + i];
                for (int c = 0; c < nf; c++)
                    v[dg + c] = f[(size_t)c * np + i];
                rows++;
            }
            if (rows)
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, rows, 1.0,
                            V, d, 1.0, M, d);
            n += rows;
        }
        status = stage_solve(ctx, &m->stage[stage], M, d, dg, n, what[stage]);
        if (status != MMCL_OK)
            goto done;
    }

done:
    scratch_free(&s);
    free(xs);
    free(ys);
    free(label);
    free(craw);
    free(fspec);
    free(z);
    free(V);
    free(M);
    return status;
}

/* ---- The SAR grid ----------------------------------------------------------
 */

typedef struct sar_grid {
    int warp; /* 0: the optical grid */
    int width, height;
    double gt[6];
    char *wkt; /* CPLFree */
} sar_grid;

/*
 * The grid of sar.tif: the optical grid, or (SAR_SRS and/or SAR_RES) the
 * footprint of the optical grid in that CRS at that pixel size (about the
 * optical ground resolution when not given), snapped to multiples of it.
 * Decided before anything is written, so a bad CRS fails early.
 */
static mmcl_status
sar_grid_plan(mmcl_context *ctx, const synth_model *m, const char *opt_wkt,
              const double opt_gt[6], const char *srs_text, double res,
              sar_grid *g)
{
    mmcl_status status = MMCL_OK;
    OGRSpatialReferenceH srs = NULL, opt_srs = NULL;
    GDALDatasetH mem = NULL;
    void *tr = NULL;
    memset(g, 0, sizeof(*g));
    g->width = g->height = m->size;
    memcpy(g->gt, opt_gt, sizeof(g->gt));
    if (!srs_text && res <= 0.0) {
        g->wkt = CPLStrdup(opt_wkt);
        return MMCL_OK;
    }

    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    opt_srs = OSRNewSpatialReference(opt_wkt);
    OGRErr err = OGRERR_NONE;
    if (srs_text) {
        srs = OSRNewSpatialReference(NULL);
        err = OSRSetFromUserInput(srs, srs_text);
    } else if (opt_srs) {
        srs = OSRClone(opt_srs);
    }
    mmcl__gdal_capture_end(&cap);
    if (err != OGRERR_NONE || !opt_srs || !srs) {
        status = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "%s is not a CRS GDAL understands: %s",
                             mmcl__opt_setting(ctx, "SAR_SRS",
                                               CPLSPrintf("'%s'",
                                                          srs_text ? srs_text
                                                                   : "")),
                             mmcl__gdal_msg(&cap));
        goto done;
    }
    OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(opt_srs, OAMS_TRADITIONAL_GIS_ORDER);
    int same = OSRIsSame(srs, opt_srs);
    if (same &&
        (res <= 0.0 || fabs(res - m->pixel_size) <= 1e-9 * m->pixel_size)) {
        g->wkt = CPLStrdup(opt_wkt);
        goto done;
    }
    char *wkt = NULL;
    OSRExportToWkt(srs, &wkt);
    g->wkt = wkt;
    g->warp = 1;

    /* The optical footprint in the SAR CRS (GDAL's suggested warp output,
     * on a band-less in-memory copy of the optical grid). */
    mmcl__gdal_capture_begin(&cap, ctx);
    GDALDriverH drv = GDALGetDriverByName("MEM");
    mem = drv ? GDALCreate(drv, "", m->size, m->size, 0, GDT_Float32, NULL)
              : NULL;
    double sgt[6], ext[4];
    int sw = 0, sh = 0;
    int ok = 0;
    if (mem) {
        GDALSetGeoTransform(mem, (double *)opt_gt);
        GDALSetProjection(mem, opt_wkt);
        char **to = CSLSetNameValue(NULL, "DST_SRS", wkt);
        tr = GDALCreateGenImgProjTransformer2(mem, NULL, to);
        CSLDestroy(to);
        ok = tr && GDALSuggestedWarpOutput2(mem, GDALGenImgProjTransform, tr,
                                            sgt, &sw, &sh, ext, 0) == CE_None;
    }
    mmcl__gdal_capture_end(&cap);
    if (!ok) {
        status = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "cannot express the optical grid in %s: %s",
                             mmcl__opt_setting(ctx, "SAR_SRS",
                                               CPLSPrintf("'%s'",
                                                          srs_text ? srs_text
                                                                   : "")),
                             mmcl__gdal_msg(&cap));
        goto done;
    }
    if (res <= 0.0)
        res = sgt[1]; /* about the same ground resolution */
    double x0 = floor(ext[0] / res) * res, x1 = ceil(ext[2] / res) * res;
    double y0 = floor(ext[1] / res) * res, y1 = ceil(ext[3] / res) * res;
    double w = floor((x1 - x0) / res + 0.5), h = floor((y1 - y0) / res + 0.5);
    if (w < 8 || h < 8 || w > 65536 || h > 65536) {
        status = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "%s gives a %.0f x %.0f pixel SAR; give "
                             "the pixel size in the units of the SAR CRS "
                             "(about %g here)",
                             mmcl__opt_setting(ctx, "SAR_RES",
                                               CPLSPrintf("%g", res)),
                             w, h, sgt[1]);
        goto done;
    }
    g->width = (int)w;
    g->height = (int)h;
    g->gt[0] = x0;
    g->gt[1] = res;
    g->gt[2] = 0.0;
    g->gt[3] = y1;
    g->gt[4] = 0.0;
    g->gt[5] = -res;

done:
    if (tr)
        GDALDestroyGenImgProjTransformer(tr);
    if (mem)
        GDALClose(mem);
    OSRDestroySpatialReference(srs);
    OSRDestroySpatialReference(opt_srs);
    return status;
}

/* ---- Tiles -----------------------------------------------------------------
 */

typedef struct synth_job {
    const synth_model *m;
    mmcl__writer *w_opt, *w_sar, *w_lab, *w_truth;
    mmcl__writer *w_shift; /* shift_truth.tif, when the SAR is shifted */
    GDALDatasetH sar_tmp; /* the SAR on the optical grid, to be warped */
    const char *sar_tmp_path;
} synth_job;

typedef struct synth_worker {
    synth_scratch s;
    double *xs, *ys;  /* (TILE) */
    uint8_t *label;   /* (n) */
    uint8_t *m1, *m2; /* (n) */
    float *craw;      /* (S, n) */
    float *fspec;     /* (P1 + P2, n) */
    float *truth;     /* (S + P1 + P2 + 2, n): zc, z1, z2, e1, e2 */
    float *opt;       /* (B1, n) */
    float *sar;       /* (B2, n) */
    float *sar_moved; /* (B2, TILE^2): the shifted SAR of a tile */
    float *dtruth;    /* (2, TILE^2): the shift at each pixel */
} synth_worker;

static void
synth_stop(void *state, void *user)
{
    synth_worker *w = state;
    if (!w)
        return;
    scratch_free(&w->s);
    free(w->xs);
    free(w->ys);
    free(w->label);
    free(w->m1);
    free(w->m2);
    free(w->craw);
    free(w->fspec);
    free(w->truth);
    free(w->opt);
    free(w->sar);
    free(w->sar_moved);
    free(w->dtruth);
    free(w);
}

static void *
synth_start(mmcl_context *ctx, void *user)
{
    const synth_job *job = user;
    const synth_model *m = job->m;
    /* A shifted SAR is made from the ground around its tile too. */
    int cap = TILE + 2 * (m->shift.on ? m->shift.halo : 0);
    size_t n = (size_t)cap * cap;
    synth_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    w->xs = mmcl__malloc_array(ctx, (size_t)cap, 1, sizeof(double));
    w->ys = mmcl__malloc_array(ctx, (size_t)cap, 1, sizeof(double));
    w->label = mmcl__malloc_array(ctx, n, 1, 1);
    w->m1 = mmcl__malloc_array(ctx, n, 1, 1);
    w->m2 = mmcl__malloc_array(ctx, n, 1, 1);
    w->craw = mmcl__malloc_array(ctx, n, (size_t)m->S, sizeof(float));
    w->fspec =
        mmcl__malloc_array(ctx, n, (size_t)(m->P1 + m->P2 + 1), sizeof(float));
    w->truth = mmcl__malloc_array(ctx, n, (size_t)(m->S + m->P1 + m->P2 + 2),
                                  sizeof(float));
    w->opt = mmcl__malloc_array(ctx, n, (size_t)m->B1, sizeof(float));
    w->sar = mmcl__malloc_array(ctx, n, (size_t)m->B2, sizeof(float));
    if (!w->xs || !w->ys || !w->label || !w->m1 || !w->m2 || !w->craw ||
        !w->fspec || !w->truth || !w->opt || !w->sar ||
        scratch_init(ctx, &w->s, m, cap) != MMCL_OK) {
        synth_stop(w, user);
        return NULL;
    }
    if (m->shift.on) {
        w->sar_moved = mmcl__malloc_array(ctx, (size_t)TILE * TILE,
                                          (size_t)m->B2, sizeof(float));
        w->dtruth = mmcl__malloc_array(ctx, (size_t)TILE * TILE, 2,
                                       sizeof(float));
    }
    if (m->shift.on && (!w->sar_moved || !w->dtruth)) {
        synth_stop(w, user);
        return NULL;
    }
    return w;
}

/*
 * x (B, n) = As z (+ Ac zc): the signal of one modality; e (n) receives the
 * energy ||As z||^2 / B of its specific part (0 without specific factors).
 */
static void
mix_modality(float *x, float *e, const float *Ac, const float *zc, int S,
             const float *As, const float *z, int P, int B, size_t n)
{
    memset(e, 0, n * sizeof(float));
    if (P) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, (int)n, P,
                    1.0f, As, P, z, (int)n, 0.0f, x, (int)n);
        for (int b = 0; b < B; b++) {
            const float *xb = x + (size_t)b * n;
            for (size_t p = 0; p < n; p++)
                e[p] += xb[p] * xb[p];
        }
        for (size_t p = 0; p < n; p++)
            e[p] /= (float)B;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, (int)n, S, 1.0f,
                Ac, S, zc, (int)n, P ? 1.0f : 0.0f, x, (int)n);
}

/*
 * The noiseless scene on the window [x0, x0 + nx) x [y0, y0 + ny) of the
 * optical grid into the worker's buffers (n = nx * ny values each): label,
 * truth (factors, then specific energies), opt (B1, n), sar (B2, n).
 */
static void
clean_window(const synth_model *m, synth_worker *w, int x0, int y0, int nx,
             int ny)
{
    int S = m->S, P1 = m->P1, P2 = m->P2;
    size_t n = (size_t)nx * ny;
    for (int i = 0; i < nx; i++)
        w->xs[i] = x0 + i + 0.5;
    for (int j = 0; j < ny; j++)
        w->ys[j] = y0 + j + 0.5;
    eval_latent(m, &w->s, w->xs, nx, w->ys, ny, w->label, w->craw, w->fspec,
                w->m1, w->m2);

    float *zc = w->truth, *z1 = zc + (size_t)S * n, *z2 = z1 + (size_t)P1 * n;
    float *e1 = z2 + (size_t)P2 * n, *e2 = e1 + n;
    stage_apply(zc, &m->stage[0], w->craw, NULL, NULL, n);
    if (P1)
        stage_apply(z1, &m->stage[1], w->fspec, zc, w->m1, n);
    if (P2)
        stage_apply(z2, &m->stage[2], w->fspec + (size_t)P1 * n, zc, w->m2, n);
    mix_modality(w->opt, e1, m->A1c, zc, S, m->A1s, z1, P1, m->B1, n);
    mix_modality(w->sar, e2, m->A2c, zc, S, m->A2s, z2, P2, m->B2, n);
}

/*
 * The noiseless SAR of tile @p t displaced by the shift field into
 * w->sar_moved (B2, t->w * t->h), and the field itself into w->dtruth.
 * The ground at optical position x shows in the SAR at u = x + d(x), so
 * the SAR at u is the ground at the x that solves x = u - d(x) (a
 * contraction for these smooth fields: a few fixed-point steps), sampled
 * bilinearly from the scene made on the tile and a halo around it.
 */
static void
shift_sar(const synth_model *m, synth_worker *w, const mmcl__tile *t)
{
    int H = m->shift.halo, nx = t->w + 2 * H, ny = t->h + 2 * H;
    size_t nb = (size_t)nx * ny, n = (size_t)t->w * t->h;
    clean_window(m, w, t->x - H, t->y - H, nx, ny);
    for (int j = 0; j < t->h; j++) {
        for (int i = 0; i < t->w; i++) {
            size_t p = (size_t)j * t->w + i;
            double u = t->x + i + 0.5, v = t->y + j + 0.5, d[2];
            shift_at(&m->shift, u, v, d);
            w->dtruth[p] = (float)d[0];
            w->dtruth[n + p] = (float)d[1];
            double x = u - d[0], y = v - d[1];
            for (int it = 0; it < 8; it++) {
                shift_at(&m->shift, x, y, d);
                x = u - d[0];
                y = v - d[1];
            }
            /* Index into the window (pixel centres at integer + 0.5). */
            double fx = x - (t->x - H) - 0.5, fy = y - (t->y - H) - 0.5;
            int i0 = (int)floor(fx), j0 = (int)floor(fy);
            i0 = i0 < 0 ? 0 : (i0 > nx - 2 ? nx - 2 : i0);
            j0 = j0 < 0 ? 0 : (j0 > ny - 2 ? ny - 2 : j0);
            double a = fx - i0, b = fy - j0;
            for (int c = 0; c < m->B2; c++) {
                const float *s = w->sar + (size_t)c * nb + (size_t)j0 * nx + i0;
                w->sar_moved[(size_t)c * n + p] =
                    (float)((1.0 - b) * ((1.0 - a) * s[0] + a * s[1]) +
                            b * ((1.0 - a) * s[nx] + a * s[nx + 1]));
            }
        }
    }
}

static mmcl_status
synth_work(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    const synth_job *job = user;
    const synth_model *m = job->m;
    synth_worker *w = state;
    int B1 = m->B1, B2 = m->B2;
    size_t n = (size_t)t->w * t->h;

    if (m->shift.on)
        shift_sar(m, w, t);
    clean_window(m, w, t->x, t->y, t->w, t->h);
    if (m->shift.on)
        memcpy(w->sar, w->sar_moved, (size_t)B2 * n * sizeof(float));

    /* Noise: N(0, NOISE^2) per band, from the pixel's position. */
    if (m->noise > 0.0) {
        int nb = B1 + B2, npairs = (nb + 1) / 2;
        for (int j = 0; j < t->h; j++) {
            for (int i = 0; i < t->w; i++) {
                size_t p = (size_t)j * t->w + i;
                uint64_t g = (uint64_t)(t->y + j) * (uint64_t)m->size +
                             (uint64_t)(t->x + i);
                for (int q = 0; q < npairs; q++) {
                    double v[2];
                    gauss_pair(m->noise_key, g * (uint64_t)npairs + q, &v[0],
                               &v[1]);
                    for (int k = 0; k < 2 && 2 * q + k < nb; k++) {
                        int b = 2 * q + k;
                        float *x = b < B1 ? w->opt + (size_t)b * n
                                          : w->sar + (size_t)(b - B1) * n;
                        x[p] += (float)(m->noise * v[k]);
                    }
                }
            }
        }
    }

    /* Physical units; the optical nodata frame and the SAR holes. */
    for (int b = 0; b < B1; b++) {
        float *x = w->opt + (size_t)b * n;
        for (size_t p = 0; p < n; p++)
            x[p] = m->opt_offset[b] + m->opt_scale[b] * x[p];
    }
    for (int b = 0; b < B2; b++) {
        float *x = w->sar + (size_t)b * n;
        for (size_t p = 0; p < n; p++)
            x[p] = m->sar_offset[b] + m->sar_scale[b] * x[p];
    }
    int F = m->frame;
    if (F > 0) {
        for (int j = 0; j < t->h; j++) {
            int y = t->y + j;
            for (int i = 0; i < t->w; i++) {
                int x = t->x + i;
                if (x >= F && x < m->size - F && y >= F && y < m->size - F)
                    continue;
                size_t p = (size_t)j * t->w + i;
                w->label[p] = LABEL_NODATA;
                for (int b = 0; b < B1; b++)
                    w->opt[(size_t)b * n + p] = NAN;
            }
        }
    }
    for (int h = 0; h < m->n_holes; h++) {
        const synth_disc *d = &m->holes[h];
        int i0 = (int)floor(d->x - d->r) - t->x,
            i1 = (int)ceil(d->x + d->r) - t->x;
        int j0 = (int)floor(d->y - d->r) - t->y,
            j1 = (int)ceil(d->y + d->r) - t->y;
        i0 = i0 < 0 ? 0 : i0;
        j0 = j0 < 0 ? 0 : j0;
        i1 = i1 > t->w ? t->w : i1;
        j1 = j1 > t->h ? t->h : j1;
        for (int j = j0; j < j1; j++) {
            for (int i = i0; i < i1; i++) {
                if (!in_discs(d, 1, w->xs[i], w->ys[j]))
                    continue;
                for (int b = 0; b < B2; b++)
                    w->sar[(size_t)b * n + (size_t)j * t->w + i] = NAN;
            }
        }
    }
    return MMCL_OK;
}

/* Writes a window of the temporary SAR grid (the source of the warp). */
static mmcl_status
sar_tmp_write(mmcl_context *ctx, const synth_job *job, const mmcl__tile *t,
              const float *buf)
{
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    CPLErr err = GDALDatasetRasterIO(job->sar_tmp, GF_Write, t->x, t->y, t->w,
                                     t->h, (void *)buf, t->w, t->h, GDT_Float32,
                                     job->m->B2, NULL, 0, 0, 0);
    if (err == CE_None && t->x + t->w == job->m->size)
        GDALFlushCache(job->sar_tmp);
    mmcl__gdal_capture_end(&cap);
    if (err != CE_None || cap.n_failures)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot write to '%s': %s",
                           job->sar_tmp_path, mmcl__gdal_msg(&cap));
    return MMCL_OK;
}

static mmcl_status
synth_commit(mmcl_context *ctx, void *state, const mmcl__tile *t, void *user)
{
    const synth_job *job = user;
    synth_worker *w = state;
    mmcl_status st =
        mmcl__writer_write(ctx, job->w_opt, t->x, t->y, t->w, t->h, w->opt);
    if (st == MMCL_OK)
        st = job->sar_tmp ? sar_tmp_write(ctx, job, t, w->sar)
                          : mmcl__writer_write(ctx, job->w_sar, t->x, t->y,
                                               t->w, t->h, w->sar);
    if (st == MMCL_OK)
        st = mmcl__writer_write(ctx, job->w_lab, t->x, t->y, t->w, t->h,
                                w->label);
    if (st == MMCL_OK)
        st = mmcl__writer_write(ctx, job->w_truth, t->x, t->y, t->w, t->h,
                                w->truth);
    if (st == MMCL_OK && job->w_shift)
        st = mmcl__writer_write(ctx, job->w_shift, t->x, t->y, t->w, t->h,
                                w->dtruth);
    return st;
}

/* ---- Warping the SAR -------------------------------------------------------
 */

typedef struct scaled_progress {
    mmcl_progress_fn fn;
    void *user;
    double p0, p1;
    int cancelled;
} scaled_progress;

static int CPL_STDCALL
scaled_progress_fn(double complete, const char *msg, void *arg)
{
    scaled_progress *sp = arg;
    if (!sp->fn)
        return 1;
    if (!sp->fn(sp->p0 + (sp->p1 - sp->p0) * complete, NULL, sp->user)) {
        sp->cancelled = 1;
        return 0;
    }
    return 1;
}

/* GDALWarp (bilinear, NaN nodata) of the SAR grid into sar.tif's dataset. */
static mmcl_status
sar_warp(mmcl_context *ctx, GDALDatasetH src, mmcl__writer *dst, int threads,
         scaled_progress *sp)
{
    char nt[32];
    snprintf(nt, sizeof(nt), "NUM_THREADS=%d", threads);
    char *argv[] = {"-r",         "bilinear",
                    "-srcnodata", "nan",
                    "-dstnodata", "nan",
                    "-wo",        "INIT_DEST=NO_DATA",
                    "-wo",        "OPTIMIZE_SIZE=TRUE",
                    "-wo",        nt,
                    "-wm",        "256",
                    NULL};
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    GDALWarpAppOptions *wo = GDALWarpAppOptionsNew(argv, NULL);
    GDALDatasetH out = NULL;
    int usage_error = 0;
    if (wo) {
        GDALWarpAppOptionsSetProgress(wo, scaled_progress_fn, sp);
        out = GDALWarp(NULL, mmcl__writer_dataset(dst), 1, &src, wo,
                       &usage_error);
        GDALWarpAppOptionsFree(wo);
    }
    mmcl__gdal_capture_end(&cap);
    if (sp->cancelled)
        return mmcl__error(ctx, MMCL_ERR_CANCELLED,
                           "cancelled by the caller while warping the SAR");
    if (!out || cap.n_failures)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot warp the SAR: %s",
                           mmcl__gdal_msg(&cap));
    return MMCL_OK;
}

/* ---- synth.json
 * -------------------------------------------------------------- */

static cJSON *
json_matrix_f(const float *a, int rows, int cols)
{
    cJSON *m = cJSON_CreateArray();
    for (int r = 0; m && r < rows; r++) {
        cJSON *row = cJSON_CreateArray();
        for (int c = 0; row && c < cols; c++)
            cJSON_AddItemToArray(row,
                                 cJSON_CreateNumber(a[(size_t)r * cols + c]));
        cJSON_AddItemToArray(m, row);
    }
    return m;
}

static cJSON *
json_discs(const synth_disc *d, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "x", d[i].x);
        cJSON_AddNumberToObject(o, "y", d[i].y);
        cJSON_AddNumberToObject(o, "r", d[i].r);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *
json_doubles(const double *v, int n)
{
    return cJSON_CreateDoubleArray(v, n);
}

static cJSON *
json_floats(const float *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *
json_names(const char *const *names, int n)
{
    return cJSON_CreateStringArray(names, n);
}

typedef struct synth_names {
    char opt[MAX_BANDS][16];
    char sar[MAX_BANDS][16];
    char truth[16 * 3 + 2][32];
    const char *opt_p[MAX_BANDS], *sar_p[MAX_BANDS], *truth_p[16 * 3 + 2];
    int n_truth;
} synth_names;

static void
names_make(synth_names *nm, const synth_model *m)
{
    for (int b = 0; b < m->B1; b++) {
        snprintf(nm->opt[b], sizeof(nm->opt[b]), "B%d", b + 1);
        nm->opt_p[b] = nm->opt[b];
    }
    for (int b = 0; b < m->B2; b++) {
        if (b < 2)
            snprintf(nm->sar[b], sizeof(nm->sar[b]), "%s", b ? "VH" : "VV");
        else
            snprintf(nm->sar[b], sizeof(nm->sar[b]), "C%d", b + 1);
        nm->sar_p[b] = nm->sar[b];
    }
    int k = 0;
    for (int i = 0; i < m->S; i++, k++)
        snprintf(nm->truth[k], sizeof(nm->truth[k]), "shared_%d", i);
    for (int i = 0; i < m->P1; i++, k++)
        snprintf(nm->truth[k], sizeof(nm->truth[k]), "optical_specific_%d", i);
    for (int i = 0; i < m->P2; i++, k++)
        snprintf(nm->truth[k], sizeof(nm->truth[k]), "sar_specific_%d", i);
    snprintf(nm->truth[k++], sizeof(nm->truth[0]), "optical_specific_energy");
    snprintf(nm->truth[k++], sizeof(nm->truth[0]), "sar_specific_energy");
    nm->n_truth = k;
    for (int i = 0; i < k; i++)
        nm->truth_p[i] = nm->truth[i];
}

static cJSON *
json_stage(const synth_stage *st)
{
    cJSON *o = cJSON_CreateObject();
    if (!st->n)
        return o;
    cJSON_AddItemToObject(o, "W", json_matrix_f(st->W, st->n, st->n));
    cJSON_AddItemToObject(o, "K", json_matrix_f(st->K, st->n, st->dg));
    return o;
}

/* All generating parameters, as a JSON document (cJSON_free the result). */
static char *
json_make(const synth_model *m, const synth_names *nm, const sar_grid *g,
          const double opt_gt[6], const char *srs_text)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON_AddStringToObject(root, "format", "mmcl-synth");
    cJSON_AddNumberToObject(root, "format_version", 1);
    cJSON_AddStringToObject(root, "mmcl_version", mmcl_version());
    cJSON_AddStringToObject(root, "model",
                            "x1 = A1c zc + A1s z1 + e1, x2 = A2c zc + A2s z2 "
                            "+ e2 (design sections 2 and 3.7)");
    cJSON_AddStringToObject(root, "preset",
                            m->specific ? "specific" : "redundant");
    cJSON_AddNumberToObject(root, "seed", (double)m->seed);
    cJSON_AddNumberToObject(root, "size", m->size);
    cJSON_AddNumberToObject(root, "pixel_size", m->pixel_size);
    cJSON_AddStringToObject(root, "crs", "EPSG:32631");
    cJSON_AddItemToObject(root, "geotransform", json_doubles(opt_gt, 6));
    cJSON_AddNumberToObject(root, "optical_bands", m->B1);
    cJSON_AddNumberToObject(root, "sar_bands", m->B2);
    cJSON_AddNumberToObject(root, "shared", m->S);
    cJSON_AddNumberToObject(root, "optical_specific", m->P1);
    cJSON_AddNumberToObject(root, "sar_specific", m->P2);
    cJSON_AddNumberToObject(root, "noise", m->noise);
    cJSON_AddNumberToObject(root, "specific_gain", m->specific ? m->gain : 0);
    cJSON_AddNumberToObject(root, "classes", m->n_classes);
    cJSON_AddNumberToObject(root, "nodata_frame", m->frame);

    cJSON *files = cJSON_AddObjectToObject(root, "files");
    cJSON_AddStringToObject(files, "optical", "optical.tif");
    cJSON_AddStringToObject(files, "sar", "sar.tif");
    cJSON_AddStringToObject(files, "labels", "labels.tif");
    cJSON_AddStringToObject(files, "truth", "truth.tif");

    cJSON *o = cJSON_AddObjectToObject(root, "optical");
    cJSON_AddItemToObject(o, "band_names", json_names(nm->opt_p, m->B1));
    cJSON_AddStringToObject(o, "units", "reflectance");
    cJSON_AddItemToObject(o, "offset", json_floats(m->opt_offset, m->B1));
    cJSON_AddItemToObject(o, "scale", json_floats(m->opt_scale, m->B1));
    cJSON_AddStringToObject(o, "nodata", "nan");

    cJSON *s = cJSON_AddObjectToObject(root, "sar");
    cJSON_AddItemToObject(s, "band_names", json_names(nm->sar_p, m->B2));
    cJSON_AddStringToObject(s, "units", "dB");
    cJSON_AddItemToObject(s, "offset", json_floats(m->sar_offset, m->B2));
    cJSON_AddItemToObject(s, "scale", json_floats(m->sar_scale, m->B2));
    cJSON_AddStringToObject(s, "nodata", "nan");
    if (srs_text)
        cJSON_AddStringToObject(s, "srs", srs_text);
    else
        cJSON_AddStringToObject(s, "srs", "EPSG:32631");
    cJSON_AddStringToObject(s, "crs_wkt", g->wkt);
    cJSON_AddNumberToObject(s, "width", g->width);
    cJSON_AddNumberToObject(s, "height", g->height);
    cJSON_AddItemToObject(s, "geotransform", json_doubles(g->gt, 6));
    cJSON_AddStringToObject(s, "resampling", g->warp ? "bilinear" : "none");
    cJSON_AddItemToObject(s, "holes", json_discs(m->holes, m->n_holes));

    cJSON *l = cJSON_AddObjectToObject(root, "labels");
    cJSON_AddNumberToObject(l, "nodata", LABEL_NODATA);
    cJSON_AddNumberToObject(l, "first_class", 0);
    cJSON *sites = cJSON_AddArrayToObject(l, "sites");
    for (int i = 0; i < m->n_sites; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "x", m->sites[i].x);
        cJSON_AddNumberToObject(e, "y", m->sites[i].y);
        cJSON_AddNumberToObject(e, "class", m->sites[i].cls);
        cJSON_AddItemToArray(sites, e);
    }
    cJSON *off = cJSON_AddArrayToObject(l, "class_offsets");
    for (int c = 0; c < m->n_classes; c++)
        cJSON_AddItemToArray(
            off, json_doubles(m->class_off + (size_t)c * m->S, m->S));
    cJSON_AddNumberToObject(l, "class_blend_px", m->class_blend);

    cJSON *f = cJSON_AddObjectToObject(root, "fields");
    cJSON_AddNumberToObject(f, "cosines", N_COS);
    cJSON_AddItemToObject(
        f, "shared_wavelength_px",
        json_doubles((const double[]){SHARED_WL_MIN, SHARED_WL_MAX}, 2));
    cJSON_AddItemToObject(
        f, "specific_wavelength_px",
        json_doubles((const double[]){SPECIFIC_WL_MIN, SPECIFIC_WL_MAX}, 2));
    cJSON_AddStringToObject(f, "distribution",
                            "sum of cosines, wavelengths log-uniform, "
                            "directions and phases uniform");

    cJSON *mx = cJSON_AddObjectToObject(root, "mixing");
    cJSON_AddStringToObject(mx, "layout", "rows are bands, columns factors");
    cJSON_AddStringToObject(mx, "scaling",
                            "each row has unit norm: per band, the shared "
                            "part (and the specific part inside its region) "
                            "has unit variance; the noise has variance "
                            "noise^2");
    cJSON_AddItemToObject(mx, "A1c", json_matrix_f(m->A1c, m->B1, m->S));
    cJSON_AddItemToObject(mx, "A1s", json_matrix_f(m->A1s, m->B1, m->P1));
    cJSON_AddItemToObject(mx, "A2c", json_matrix_f(m->A2c, m->B2, m->S));
    cJSON_AddItemToObject(mx, "A2s", json_matrix_f(m->A2s, m->B2, m->P2));

    cJSON *sd = cJSON_AddObjectToObject(root, "standardization");
    cJSON_AddStringToObject(sd, "rule",
                            "z = W f - K [1; earlier factors], then 0 "
                            "outside the region; zc: whitened over the "
                            "scene; z1: uncorrelated with zc and whitened in "
                            "its region; z2: uncorrelated with zc and z1 and "
                            "whitened in its region");
    cJSON_AddNumberToObject(sd, "lattice_stride_px", m->stride);
    cJSON_AddItemToObject(sd, "shared", json_stage(&m->stage[0]));
    cJSON_AddItemToObject(sd, "optical_specific", json_stage(&m->stage[1]));
    cJSON_AddItemToObject(sd, "sar_specific", json_stage(&m->stage[2]));

    cJSON *r = cJSON_AddObjectToObject(root, "regions");
    cJSON_AddStringToObject(r, "rule",
                            "discs in optical pixels: pixel (col, row) is "
                            "inside when (col + 0.5 - x)^2 + (row + 0.5 - "
                            "y)^2 <= r^2");
    cJSON_AddItemToObject(r, "optical_specific", json_discs(m->r1, m->n_r1));
    cJSON_AddItemToObject(r, "sar_specific", json_discs(m->r2, m->n_r2));

    if (m->shift.on) {
        const synth_shift *sh = &m->shift;
        cJSON *j = cJSON_AddObjectToObject(root, "sar_shift");
        cJSON_AddStringToObject(
            j, "rule",
            "a ground feature at optical pixel position (x, y) appears in "
            "the SAR at (x + dx, y + dy), optical pixels; d = constant + "
            "amplitude * sum_k weight_k * sin(kx_k x + ky_k y + phase_k) per "
            "component (x, y: pixel-centre coordinates, col + 0.5, row + "
            "0.5); the SAR is the noiseless scene sampled bilinearly at the "
            "ground position, then its noise and holes are added");
        cJSON_AddStringToObject(j, "file", "shift_truth.tif");
        cJSON_AddItemToObject(j, "constant", json_doubles(sh->c, 2));
        cJSON_AddNumberToObject(j, "amplitude", sh->amp);
        cJSON_AddItemToObject(j, "weights",
                              json_doubles(shift_weights, SHIFT_TERMS));
        static const char *const comp[2] = {"dx", "dy"};
        for (int c = 0; c < 2; c++) {
            cJSON *terms = cJSON_AddArrayToObject(j, comp[c]);
            for (int k = 0; k < SHIFT_TERMS; k++) {
                double v[3] = {sh->k[c][k][0], sh->k[c][k][1],
                               sh->phase[c][k]};
                cJSON_AddItemToArray(terms, json_doubles(v, 3));
            }
        }
    }

    cJSON *tb = cJSON_AddObjectToObject(root, "truth_bands");
    for (int i = 0; i < nm->n_truth; i++)
        cJSON_AddNumberToObject(tb, nm->truth[i], i + 1);
    cJSON_AddStringToObject(root, "truth_energy",
                            "optical_specific_energy = ||A1s z1||^2 / "
                            "optical_bands, sar_specific_energy = ||A2s "
                            "z2||^2 / sar_bands, in the standardized units "
                            "of x1, x2");

    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* ---- The operation
 * ------------------------------------------------------------ */

enum { OUT_OPTICAL, OUT_SAR, OUT_LABELS, OUT_TRUTH, OUT_JSON, N_OUT };
static const char *const out_names[N_OUT] = {
    "optical.tif", "sar.tif", "labels.tif", "truth.tif", "synth.json"};

static const char *const out_products[OUT_JSON] = {
    "synthetic_optical", "synthetic_sar", "synthetic_labels",
    "synthetic_truth"};

static mmcl__writer *
open_product(mmcl_context *ctx, mmcl__files *files, const char *product,
             const char *path, char **co, int width, int height, int n_bands,
             GDALDataType type, const double gt[6], const char *wkt,
             double nodata, const char *const *names, int threads)
{
    mmcl__raster_spec spec = {0};
    spec.path = path;
    spec.format = "GTiff";
    spec.creation_options = co;
    spec.files = files;
    spec.product = product;
    spec.width = width;
    spec.height = height;
    spec.n_bands = n_bands;
    spec.type = type;
    memcpy(spec.geotransform, gt, sizeof(spec.geotransform));
    spec.srs_wkt = wkt;
    spec.has_nodata = 1;
    spec.nodata = nodata;
    spec.band_names = names;
    spec.block = TILE;
    spec.n_threads = threads;
    return mmcl__writer_open(ctx, &spec);
}

/* One of the scene's rasters (@p which: OUT_OPTICAL .. OUT_TRUTH). */
static mmcl__writer *
open_output(mmcl_context *ctx, mmcl__files *files, int which, const char *path,
            char **co, int width, int height, int n_bands, GDALDataType type,
            const double gt[6], const char *wkt, double nodata,
            const char *const *names, int threads)
{
    return open_product(ctx, files, out_products[which], path, co, width,
                        height, n_bands, type, gt, wkt, nodata, names,
                        threads);
}

static mmcl_status
set_metadata(mmcl_context *ctx, mmcl__writer *w, const char *product,
             const synth_model *m)
{
    char seed[32];
    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)m->seed);
    mmcl_status st = mmcl__writer_set_metadata(ctx, w, "PRODUCT", product);
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata(ctx, w, "PRESET",
                                       m->specific ? "specific" : "redundant");
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata(ctx, w, "SEED", seed);
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata(ctx, w, "SYNTH_JSON", "synth.json");
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata(ctx, w, "MMCL_VERSION", mmcl_version());
    return st;
}

/* One run of mmcl_synth: what its steps share, freed by run_free(). */
typedef struct synth_run {
    const char *outdir;
    synth_model m;
    sar_grid grid;
    synth_job job;
    synth_names *nm;
    OGRSpatialReferenceH opt_srs;
    char *opt_wkt; /* CPLFree */
    double opt_gt[6];
    const char *srs_text; /* SAR_SRS, or NULL */
    double sar_res;       /* SAR_RES, or 0 */
    int overwrite, threads;
    char **co;
    char path[N_OUT][4096];
    char shift_path[4096]; /* shift_truth.tif, when the SAR is shifted */
    char *sar_tmp_path;
    char *json; /* cJSON_free */
    mmcl__files *files;
    mmcl__stage *json_stage;
    int made_dir;
    int blas_single; /* inside mmcl__blas_threads_enter(1) */
    mmcl_progress_fn progress;
    void *progress_user;
} synth_run;

/* SAR_SHIFT ("DX,DY") and SAR_SHIFT_FIELD (amplitude) into @p sh. */
static mmcl_status
shift_options(mmcl_context *ctx, synth_shift *sh, const mmcl_options *opts)
{
    const char *text = mmcl__opt_str(opts, "SAR_SHIFT");
    if (mmcl__opt_given(opts, "SAR_SHIFT") && text) {
        char *end = NULL;
        sh->c[0] = strtod(text, &end);
        int ok = end != text && *end == ',';
        if (ok) {
            const char *second = end + 1;
            sh->c[1] = strtod(second, &end);
            ok = end != second && *end == '\0';
        }
        if (!ok || !isfinite(sh->c[0]) || !isfinite(sh->c[1]) ||
            fabs(sh->c[0]) > 32.0 || fabs(sh->c[1]) > 32.0)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "%s: expected DX,DY in optical pixels, each "
                               "between -32 and 32 (e.g. 1.5,-0.7)",
                               mmcl__opt_setting(ctx, "SAR_SHIFT", text));
        sh->on = 1;
    }
    if (mmcl__opt_given(opts, "SAR_SHIFT_FIELD")) {
        sh->amp = mmcl__opt_double(opts, "SAR_SHIFT_FIELD");
        sh->on = 1;
    }
    return MMCL_OK;
}

/* The scene's options into r->m, and the warnings they call for. */
static mmcl_status
run_options(mmcl_context *ctx, synth_run *r, const mmcl_options *opts)
{
    synth_model *m = &r->m;
    m->specific = strcmp(mmcl__opt_str(opts, "PRESET"), "specific") == 0;
    m->size = (int)mmcl__opt_int(opts, "SIZE");
    m->seed = (uint64_t)mmcl__opt_int(opts, "SEED");
    m->pixel_size = mmcl__opt_double(opts, "PIXEL_SIZE");
    m->B1 = (int)mmcl__opt_int(opts, "OPTICAL_BANDS");
    m->B2 = (int)mmcl__opt_int(opts, "SAR_BANDS");
    m->S = (int)mmcl__opt_int(opts, "SHARED");
    m->P1 = m->specific ? (int)mmcl__opt_int(opts, "OPTICAL_SPECIFIC") : 0;
    m->P2 = m->specific ? (int)mmcl__opt_int(opts, "SAR_SPECIFIC") : 0;
    m->noise = mmcl__opt_double(opts, "NOISE");
    m->class_blend = mmcl__opt_double(opts, "CLASS_BLEND");
    m->gain = mmcl__opt_double(opts, "SPECIFIC_GAIN");
    m->n_classes = (int)mmcl__opt_int(opts, "CLASSES");
    m->frame = (int)mmcl__opt_int(opts, "NODATA_FRAME");
    m->n_holes = (int)mmcl__opt_int(opts, "SAR_HOLES");
    r->srs_text = mmcl__opt_str(opts, "SAR_SRS");
    if (r->srs_text && !*r->srs_text)
        r->srs_text = NULL;
    r->sar_res = mmcl__opt_given(opts, "SAR_RES")
                     ? mmcl__opt_double(opts, "SAR_RES")
                     : 0.0;
    r->overwrite = mmcl__opt_bool(opts, "OVERWRITE");
    /* DEFLATE at level 1 unless the user chose: as small as level 6 on
     * these noisy floats (predictor 3), and a third faster. */
    r->co = CSLDuplicate(mmcl__opt_list(opts, "CO"));
    const char *compress = CSLFetchNameValue(r->co, "COMPRESS");
    if (!CSLFetchNameValue(r->co, "ZLEVEL") &&
        (!compress || EQUAL(compress, "DEFLATE")))
        r->co = CSLSetNameValue(r->co, "ZLEVEL", "1");
    r->threads = mmcl__opt_threads(opts);
    r->progress = mmcl__opt_progress(opts, &r->progress_user);
    mmcl_status st = shift_options(ctx, &m->shift, opts);
    if (st != MMCL_OK)
        return st;

    if (m->size - 2 * m->frame < 16)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "%s leaves less than 16 valid pixels "
                           "across a %d pixel scene",
                           mmcl__opt_setting(ctx, "NODATA_FRAME",
                                             CPLSPrintf("%d", m->frame)),
                           m->size);
    if (!m->specific && (mmcl__opt_given(opts, "OPTICAL_SPECIFIC") ||
                         mmcl__opt_given(opts, "SAR_SPECIFIC")))
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "synth: preset redundant has no specific factors; "
                  "%s and %s are ignored",
                  mmcl__opt_name(ctx, "OPTICAL_SPECIFIC"),
                  mmcl__opt_name(ctx, "SAR_SPECIFIC"));
    /* The counting caveat (design 3.7): a modality with SHARED bands or
     * fewer fits whole into a SHARED-dimensional embedding. */
    if (m->B1 <= m->S || m->B2 <= m->S)
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "synth: %d optical and %d SAR bands for %d shared factors: "
                  "a modality with no more bands than shared factors fits "
                  "whole into a %d-dimensional embedding, and shows no loss",
                  m->B1, m->B2, m->S, m->S);
    if (m->S + m->P1 > m->B1 || m->S + m->P2 > m->B2)
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "synth: more factors than bands in a modality; its "
                  "specific factors overlap its shared ones in band space");
    return MMCL_OK;
}

/* The optical grid, and the SAR's (decided before anything is written). */
static mmcl_status
run_grids(mmcl_context *ctx, synth_run *r)
{
    const double gt[6] = {ORIGIN_X, r->m.pixel_size, 0.0,
                          ORIGIN_Y, 0.0,             -r->m.pixel_size};
    memcpy(r->opt_gt, gt, sizeof(gt));
    r->opt_srs = OSRNewSpatialReference(NULL);
    if (!r->opt_srs ||
        OSRImportFromEPSG(r->opt_srs, OPTICAL_EPSG) != OGRERR_NONE ||
        OSRExportToWkt(r->opt_srs, &r->opt_wkt) != OGRERR_NONE)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot build EPSG:%d (is PROJ's database "
                           "installed?)",
                           OPTICAL_EPSG);
    return sar_grid_plan(ctx, &r->m, r->opt_wkt, r->opt_gt, r->srs_text,
                         r->sar_res, &r->grid);
}

/* The folder (made when missing), and every target checked before any
 * work. */
static mmcl_status
run_targets(mmcl_context *ctx, synth_run *r)
{
    VSIStatBufL sb;
    if (VSIStatL(r->outdir, &sb) == 0) {
        if (!VSI_ISDIR(sb.st_mode))
            return mmcl__error(ctx, MMCL_ERR_IO,
                               "'%s' exists and is not a folder", r->outdir);
    } else if (VSIMkdir(r->outdir, 0755) != 0) {
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot create the folder '%s'",
                           r->outdir);
    } else {
        r->made_dir = 1;
    }
    for (int i = 0; i < N_OUT; i++)
        if (snprintf(r->path[i], sizeof(r->path[i]), "%s/%s", r->outdir,
                     out_names[i]) >= (int)sizeof(r->path[i]))
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "output folder name too long");
    r->files = mmcl__files_create(ctx, r->overwrite);
    if (!r->files)
        return MMCL_ERR_NO_MEMORY;
    mmcl_status st = MMCL_OK;
    for (int i = 0; i < OUT_JSON && st == MMCL_OK; i++)
        st = mmcl__output_check(ctx, r->files, r->path[i], "GTiff", r->co,
                                i == OUT_LABELS ? GDT_Byte : GDT_Float32,
                                out_products[i]);
    if (st == MMCL_OK)
        st = mmcl__files_add_output(ctx, r->files, r->path[OUT_JSON], "output",
                                    MMCL__OUT_SYNTH_JSON, NULL, NULL);
    if (st != MMCL_OK || !r->m.shift.on)
        return st;
    if (snprintf(r->shift_path, sizeof(r->shift_path), "%s/shift_truth.tif",
                 r->outdir) >= (int)sizeof(r->shift_path))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "output folder name too long");
    return mmcl__output_check(ctx, r->files, r->shift_path, "GTiff", r->co,
                              GDT_Float32, "synthetic_shift");
}

/* The scene's factors and mixing, and its band names. */
static mmcl_status
run_model(mmcl_context *ctx, synth_run *r)
{
    mmcl_status st = model_draw(ctx, &r->m);
    if (st == MMCL_OK)
        st = model_standardize(ctx, &r->m);
    if (st != MMCL_OK)
        return st;
    r->nm = calloc(1, sizeof(*r->nm));
    if (!r->nm)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    names_make(r->nm, &r->m);
    return MMCL_OK;
}

/* The four rasters, under temporary names, with their metadata. */
static mmcl_status
run_open_outputs(mmcl_context *ctx, synth_run *r)
{
    const synth_model *m = &r->m;
    synth_job *job = &r->job;
    job->m = m;
    job->w_opt = open_output(ctx, r->files, OUT_OPTICAL, r->path[OUT_OPTICAL],
                             r->co, m->size, m->size, m->B1, GDT_Float32,
                             r->opt_gt, r->opt_wkt, NAN, r->nm->opt_p,
                             r->threads);
    job->w_lab = job->w_opt
                     ? open_output(ctx, r->files, OUT_LABELS,
                                   r->path[OUT_LABELS], r->co, m->size,
                                   m->size, 1, GDT_Byte, r->opt_gt, r->opt_wkt,
                                   LABEL_NODATA,
                                   (const char *const[]){"class"}, r->threads)
                     : NULL;
    job->w_truth = job->w_lab
                       ? open_output(ctx, r->files, OUT_TRUTH,
                                     r->path[OUT_TRUTH], r->co, m->size,
                                     m->size, r->nm->n_truth, GDT_Float32,
                                     r->opt_gt, r->opt_wkt, NAN,
                                     r->nm->truth_p, r->threads)
                       : NULL;
    job->w_sar = job->w_truth
                     ? open_output(ctx, r->files, OUT_SAR, r->path[OUT_SAR],
                                   r->co, r->grid.width, r->grid.height, m->B2,
                                   GDT_Float32, r->grid.gt, r->grid.wkt, NAN,
                                   r->nm->sar_p, r->threads)
                     : NULL;
    if (!job->w_sar)
        return mmcl_context_errcode(ctx);
    mmcl_status st = set_metadata(ctx, job->w_opt, "synthetic_optical", m);
    if (st == MMCL_OK)
        st = set_metadata(ctx, job->w_sar, "synthetic_sar", m);
    if (st == MMCL_OK)
        st = mmcl__writer_set_metadata(ctx, job->w_sar, "SAR_UNITS", "dB");
    if (st == MMCL_OK)
        st = set_metadata(ctx, job->w_lab, "synthetic_labels", m);
    if (st == MMCL_OK)
        st = set_metadata(ctx, job->w_truth, "synthetic_truth", m);
    if (st != MMCL_OK || !m->shift.on)
        return st;
    /* The true shift of the SAR at each optical pixel (mmcl coreg's
     * bands 1 and 2, per pixel instead of per block). */
    job->w_shift = open_product(ctx, r->files, "synthetic_shift",
                                r->shift_path, r->co, m->size, m->size, 2,
                                GDT_Float32, r->opt_gt, r->opt_wkt, NAN,
                                (const char *const[]){"dx", "dy"},
                                r->threads);
    if (!job->w_shift)
        return mmcl_context_errcode(ctx);
    return set_metadata(ctx, job->w_shift, "synthetic_shift", m);
}

/* A SAR on another grid is made on the optical grid first, then warped:
 * that first raster lives in the private stage of sar.tif. */
static mmcl_status
run_grid_sar(mmcl_context *ctx, synth_run *r)
{
    r->sar_tmp_path = mmcl__stage_path(ctx, mmcl__writer_stage(r->job.w_sar),
                                       ".grid.tif");
    if (!r->sar_tmp_path)
        return MMCL_ERR_NO_MEMORY;
    char **tmp_co = NULL;
    tmp_co = CSLSetNameValue(tmp_co, "TILED", "YES");
    tmp_co = CSLSetNameValue(tmp_co, "BLOCKXSIZE", "256");
    tmp_co = CSLSetNameValue(tmp_co, "BLOCKYSIZE", "256");
    tmp_co = CSLSetNameValue(tmp_co, "BIGTIFF", "IF_SAFER");
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    GDALDriverH gtiff = GDALGetDriverByName("GTiff");
    GDALDatasetH ds = gtiff ? GDALCreate(gtiff, r->sar_tmp_path, r->m.size,
                                         r->m.size, r->m.B2, GDT_Float32,
                                         tmp_co)
                            : NULL;
    if (ds) {
        GDALSetGeoTransform(ds, r->opt_gt);
        GDALSetProjection(ds, r->opt_wkt);
        for (int b = 0; b < r->m.B2; b++)
            GDALSetRasterNoDataValue(GDALGetRasterBand(ds, b + 1), NAN);
    }
    mmcl__gdal_capture_end(&cap);
    CSLDestroy(tmp_co);
    if (!ds)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot create '%s': %s",
                           r->sar_tmp_path, mmcl__gdal_msg(&cap));
    r->job.sar_tmp = ds;
    r->job.sar_tmp_path = r->sar_tmp_path;
    return MMCL_OK;
}

/* The tiles, then (another SAR grid) the warp. */
static mmcl_status
run_generate(mmcl_context *ctx, synth_run *r)
{
    double p_gen = r->grid.warp ? 0.6 : 0.97;
    mmcl__tile_job tj = {synth_start, synth_work, synth_commit, synth_stop,
                         &r->job};
    mmcl_status st = mmcl__run_tiles(ctx, r->m.size, r->m.size, TILE,
                                     r->threads, &tj, r->progress,
                                     r->progress_user, 0.0, p_gen);
    if (st != MMCL_OK || !r->grid.warp)
        return st;
    scaled_progress sp = {r->progress, r->progress_user, p_gen, 0.97, 0};
    return sar_warp(ctx, r->job.sar_tmp, r->job.w_sar, r->threads, &sp);
}

/* synth.json beside the outputs, then all five under their final names
 * together, or none. */
static mmcl_status
run_commit(mmcl_context *ctx, synth_run *r)
{
    synth_job *job = &r->job;
    r->json = json_make(&r->m, r->nm, &r->grid, r->opt_gt, r->srs_text);
    if (!r->json)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    r->json_stage = mmcl__stage_create(ctx, r->files, r->path[OUT_JSON]);
    mmcl_status st = r->json_stage
                         ? mmcl__stage_write_text(ctx, r->json_stage, r->json)
                         : mmcl_context_errcode(ctx);
    if (job->sar_tmp) {
        GDALClose(job->sar_tmp); /* no longer read */
        job->sar_tmp = NULL;
    }
    mmcl__writer *order[5] = {job->w_opt, job->w_sar, job->w_lab,
                              job->w_truth, job->w_shift};
    int n_rasters = job->w_shift ? 5 : 4;
    for (int i = 0; i < n_rasters && st == MMCL_OK; i++)
        st = mmcl__writer_finish(ctx, order[i], NULL, NULL, 0.0, 0.0);
    mmcl__stage *stages[N_OUT + 1] = {
        mmcl__writer_stage(job->w_opt), mmcl__writer_stage(job->w_sar),
        mmcl__writer_stage(job->w_lab), mmcl__writer_stage(job->w_truth),
        r->json_stage,
        job->w_shift ? mmcl__writer_stage(job->w_shift) : NULL};
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, stages, N_OUT + (job->w_shift ? 1 : 0),
                                 r->progress, r->progress_user, 1.0);
    return st;
}

/* Frees the run; after a failure (@p st) its stages go, with the grid
 * SAR, and then the folder it made, which is empty again. */
static void
run_free(synth_run *r, mmcl_status st)
{
    if (r->blas_single)
        mmcl__blas_threads_leave(1);
    if (r->job.sar_tmp) {
        CPLPushErrorHandler(CPLQuietErrorHandler);
        GDALClose(r->job.sar_tmp);
        CPLPopErrorHandler();
    }
    free(r->sar_tmp_path);
    mmcl__writer_abort(r->job.w_opt);
    mmcl__writer_abort(r->job.w_sar);
    mmcl__writer_abort(r->job.w_lab);
    mmcl__writer_abort(r->job.w_truth);
    mmcl__writer_abort(r->job.w_shift);
    mmcl__stage_destroy(r->json_stage);
    mmcl__files_destroy(r->files);
    if (st != MMCL_OK && r->made_dir)
        VSIRmdir(r->outdir);
    cJSON_free(r->json);
    CSLDestroy(r->co);
    free(r->nm);
    CPLFree(r->opt_wkt);
    CPLFree(r->grid.wkt);
    OSRDestroySpatialReference(r->opt_srs);
    model_free(&r->m);
}

mmcl_status
mmcl_synth(mmcl_context *ctx, const char *outdir, const mmcl_options *opts_in)
{
    mmcl__error_clear(ctx);
    mmcl__blas_kernel_warn_once();
    mmcl_options *tmp = NULL;
    const mmcl_options *opts = NULL;
    mmcl_status st = mmcl__options_resolve(ctx, opts_in, "synth", &tmp, &opts);
    if (st != MMCL_OK)
        return st;
    if (!outdir || !*outdir) {
        mmcl_options_free(tmp);
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG, "no output folder given");
    }
    /* Large (the output paths): on the heap. */
    synth_run *r = calloc(1, sizeof(*r));
    if (!r) {
        mmcl_options_free(tmp);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    r->outdir = outdir;
    st = run_options(ctx, r, opts);
    if (st == MMCL_OK)
        st = run_grids(ctx, r);
    if (st == MMCL_OK)
        st = run_targets(ctx, r);
    if (st == MMCL_OK) {
        /* The scene's GEMMs are small and run inside the tile workers:
         * one level of parallelism (style section 7), so BLAS runs on one
         * thread. */
        mmcl__blas_threads_enter(1);
        r->blas_single = 1;
        st = run_model(ctx, r);
    }
    if (st == MMCL_OK)
        st = run_open_outputs(ctx, r);
    if (st == MMCL_OK && r->grid.warp)
        st = run_grid_sar(ctx, r);
    if (st == MMCL_OK)
        st = run_generate(ctx, r);
    if (st == MMCL_OK)
        st = run_commit(ctx, r);
    run_free(r, st);
    free(r);
    mmcl_options_free(tmp);
    return st;
}
