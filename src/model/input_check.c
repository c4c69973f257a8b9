/* SPDX-License-Identifier: MIT */
/*
 * The inputs of a model checked against what it recorded at training time
 * (band names, per-band statistics), and the inputs of training checked
 * for an optical and a SAR given the wrong way round. See
 * input_check_internal.h for what is an error and what is a warning.
 */
#define _DEFAULT_SOURCE /* strcasecmp */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <cpl_string.h>

#include "context_internal.h"
#include "gdal_util_internal.h"
#include "input_check_internal.h"

static const char *const mod_label[2] = {"optical", "SAR"};

/* ---- thresholds ------------------------------------------------------- */

/*
 * A band's input mean is "far" from the model's when it is more than
 * FAR_STD of the model's standard deviations away. By Chebyshev's bound at
 * most 1/25 = 4 % of the training pixels lay that far from the training
 * mean, so a scene whose average pixel is there is mostly outside what the
 * encoders saw; scenes of another date over the same land move band means
 * by one or two standard deviations. Most bands (more than half) must be
 * far for the warning: one odd band (a cloud-sensitive one) is not worth
 * a note.
 */
#define FAR_STD 5.0
/* Input and model statistics that "fit" each other (for swapped inputs
 * recognised by their values): most bands within this many stds. */
#define NEAR_STD 3.0
/*
 * Reflectance delivered as integers (Sentinel-2 L1C/L2A, Landsat
 * collections) is scaled by 10000. Every band's mean AND standard
 * deviation at 10^3.3 .. 10^4.7 (2000 .. 50000) times the model's, or the
 * inverse, is no change of scene but of units: no season or sensor scales
 * every band by the same three to five orders of magnitude. An error.
 */
#define SCALE_LOG10_MIN 3.3
#define SCALE_LOG10_MAX 4.7
/* SAR band means of linear power (or amplitude) lie in (0, LINEAR_MAX):
 * backscatter coefficients above 1 are rare and a scene mean above 2 does
 * not happen. */
#define LINEAR_MAX 2.0
/*
 * The sample: up to SAMPLE_GRID x SAMPLE_GRID windows of SAMPLE_EDGE
 * pixels spread evenly over the grid, at offsets that are multiples of
 * SAMPLE_EDGE. What a read costs is the blocks it decodes (a tiled
 * GeoTIFF decodes whole 256 x 256 blocks, and the floating-point
 * predictor dominates), not the pixels: so a window lies inside one block
 * of any tiling in powers of two from 128 on, and there are few windows.
 * 9 windows of 16384 pixels, at most 147456 values a band, whatever the
 * scene size. Statistics are used from MIN_VALUES valid values on.
 */
#define SAMPLE_GRID 3
#define SAMPLE_EDGE 128
#define MIN_VALUES 256

/* ---- band names ------------------------------------------------------- */

/* The @p n names of @p a and @p b are the same, in the same order. */
static int
names_equal(const char *const *a, const char *const *b, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

/* @p perm[i] = index in @p b of a[i] when @p a is a permutation of the
 * distinct names @p b; returns 0 otherwise. */
static int
names_permutation(const char *const *a, const char *const *b, int n, int *perm)
{
    for (int i = 0; i < n; i++) {
        perm[i] = -1;
        for (int j = 0; j < n; j++) {
            if (strcmp(a[i], b[j]) != 0)
                continue;
            for (int k = 0; k < i; k++)
                if (perm[k] == j)
                    return 0; /* duplicate names */
            perm[i] = j;
            break;
        }
        if (perm[i] < 0)
            return 0;
    }
    return 1;
}

/* The name mmcl gives a band without a description: optical_<i> /
 * sar_<i> (pair.c). Such a name says nothing about the band. */
static int
generated_name(const char *name, int m, int index)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%s_%d", m == 0 ? "optical" : "sar", index + 1);
    return strcmp(name, buf) == 0;
}

static int
all_generated(const char *const *names, int m, int n)
{
    for (int i = 0; i < n; i++)
        if (!generated_name(names[i], m, i))
            return 0;
    return 1;
}

/* "a, b, c" into @p buf (at most 16 names, then "..."). */
static void
format_names(char *buf, size_t size, const char *const *names, int n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len < size; i++) {
        if (i == 16) {
            snprintf(buf + len, size - len, ", ...");
            return;
        }
        int w =
            snprintf(buf + len, size - len, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            return;
        len += (size_t)w;
    }
}

/* The words of @p name (runs of letters and digits): their starts and
 * ends, at most @p max; returns the count. */
static int
words(const char *name, int *start, int *end, int max)
{
    int n = 0;
    for (int i = 0; name[i] && n < max;) {
        while (name[i] && !isalnum((unsigned char)name[i]))
            i++;
        if (!name[i])
            break;
        start[n] = i;
        while (isalnum((unsigned char)name[i]))
            i++;
        end[n++] = i;
    }
    return n;
}

enum { MAX_WORDS = 32 };

/*
 * What tells the bands of a list apart: each name without the leading and
 * trailing words that every name of the list shares. Several optical files
 * are named by their base names, which carry the scene's date and tile
 * (S2A_MSIL2A_20170613T101031_87_48_B01 ...): two scenes' lists then
 * compare by B01, B02, ... A list of one name is kept whole. CSLDestroy.
 */
static char **
band_keys(const char *const *names, int n)
{
    int lead = MAX_WORDS, trail = MAX_WORDS;
    int s0[MAX_WORDS], e0[MAX_WORDS], s[MAX_WORDS], e[MAX_WORDS];
    int n0 = n > 1 ? words(names[0], s0, e0, MAX_WORDS) : 0;
    if (n0 == 0)
        lead = trail = 0;
    for (int i = 1; i < n && (lead || trail); i++) {
        int k = words(names[i], s, e, MAX_WORDS);
        int l = 0, t = 0;
        while (l < lead && l < k - 1 && l < n0 - 1 &&
               e[l] - s[l] == e0[l] - s0[l] &&
               memcmp(names[i] + s[l], names[0] + s0[l],
                      (size_t)(e[l] - s[l])) == 0)
            l++;
        while (t < trail && l + t < k - 1 && l + t < n0 - 1 &&
               e[k - 1 - t] - s[k - 1 - t] == e0[n0 - 1 - t] - s0[n0 - 1 - t] &&
               memcmp(names[i] + s[k - 1 - t], names[0] + s0[n0 - 1 - t],
                      (size_t)(e[k - 1 - t] - s[k - 1 - t])) == 0)
            t++;
        lead = l;
        trail = t;
    }
    char **keys = NULL;
    for (int i = 0; i < n; i++) {
        int k = words(names[i], s, e, MAX_WORDS);
        if (k == 0 || lead + trail >= k) {
            keys = CSLAddString(keys, names[i]);
            continue;
        }
        int from = s[lead], to = e[k - 1 - trail];
        keys =
            CSLAddString(keys, CPLSPrintf("%.*s", to - from, names[i] + from));
    }
    return keys;
}

/* 'a.tif', or 'a.tif' .. 'c.tif' (3 files). */
static void
format_files(char *buf, size_t size, const char *const *paths, size_t n)
{
    if (n == 1)
        snprintf(buf, size, "'%s'", paths[0]);
    else
        snprintf(buf, size, "'%s' .. '%s' (%zu files)", paths[0], paths[n - 1],
                 n);
}

/* The band names of modality @p m in the model's metadata; NULL when the
 * model has none (older models) or not @p B of them. CSLDestroy. */
static char **
model_names(const cJSON *meta, int m, int B)
{
    const cJSON *mod =
        cJSON_GetObjectItemCaseSensitive(meta, m == 0 ? "optical" : "sar");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(mod, "band_names");
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != B)
        return NULL;
    char **out = NULL;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsString(v)) {
            CSLDestroy(out);
            return NULL;
        }
        out = CSLAddString(out, v->valuestring);
    }
    return out;
}

/* A word of @p name (split at anything but letters and digits) equal,
 * ignoring case, to one of @p words. */
static int
has_word(const char *name, const char *const *words)
{
    const char *p = name;
    while (*p) {
        while (*p && !isalnum((unsigned char)*p))
            p++;
        const char *s = p;
        while (*p && isalnum((unsigned char)*p))
            p++;
        size_t len = (size_t)(p - s);
        for (int i = 0; len && words[i]; i++)
            if (strlen(words[i]) == len && strncasecmp(s, words[i], len) == 0)
                return 1;
    }
    return 0;
}

/* A SAR polarisation: VV, VH, HH, HV as a word of the name ("VV",
 * "Sigma0_VH", "..._VV.tif"'s base name). */
static int
sar_like_name(const char *name)
{
    static const char *const pol[] = {"VV", "VH", "HH", "HV", NULL};
    return has_word(name, pol);
}

/* A Sentinel-2 band: B1..B12, B01..B09, B8A as a word of the name. */
static int
optical_like_name(const char *name)
{
    static const char *const s2[] = {"B1",  "B2",  "B3",  "B4",  "B5",  "B6",
                                     "B7",  "B8",  "B9",  "B10", "B11", "B12",
                                     "B01", "B02", "B03", "B04", "B05", "B06",
                                     "B07", "B08", "B09", "B8A", NULL};
    return has_word(name, s2);
}

/* ---- the sample ------------------------------------------------------- */

typedef struct band_stats {
    double mean, std;
    double negative; /* fraction of values < 0 */
    long long n;
} band_stats;

/* Offset of window @p i of @p n of edge @p e on an axis of @p len pixels:
 * evenly spread, then down to a multiple of e where they are far enough
 * apart to stay apart. */
static int
window_offset(int i, int n, int e, int len)
{
    if (n < 2)
        return 0;
    long long x = (long long)i * (len - e) / (n - 1);
    if ((len - e) / (n - 1) >= e) /* windows a window apart or more */
        x -= x % e;
    return (int)x;
}

/* Per-band statistics of a sparse sample of windows read through the pair
 * (Welford, in double). @p stats[m] has the modality's bands. */
static mmcl_status
sample_stats(mmcl_context *ctx, const mmcl__pair *pair, band_stats *stats[2])
{
    int W = mmcl__pair_width(pair), H = mmcl__pair_height(pair);
    int B[2] = {mmcl__pair_optical_bands(pair), mmcl__pair_sar_bands(pair)};
    int ew = W < SAMPLE_EDGE ? W : SAMPLE_EDGE;
    int eh = H < SAMPLE_EDGE ? H : SAMPLE_EDGE;
    int nx = (W + ew - 1) / ew, ny = (H + eh - 1) / eh;
    nx = nx < SAMPLE_GRID ? nx : SAMPLE_GRID;
    ny = ny < SAMPLE_GRID ? ny : SAMPLE_GRID;
    size_t plane = (size_t)ew * eh;
    float *buf[2] = {
        mmcl__malloc_array(ctx, plane, (size_t)B[0], sizeof(float)),
        mmcl__malloc_array(ctx, plane, (size_t)B[1], sizeof(float))};
    uint8_t *valid = mmcl__malloc_array(ctx, plane, 1, 1);
    double *m2[2] = {mmcl__calloc_array(ctx, (size_t)B[0], 1, sizeof(double)),
                     mmcl__calloc_array(ctx, (size_t)B[1], 1, sizeof(double))};
    long long *neg[2] = {
        mmcl__calloc_array(ctx, (size_t)B[0], 1, sizeof(long long)),
        mmcl__calloc_array(ctx, (size_t)B[1], 1, sizeof(long long))};
    mmcl__pair_reader *r = NULL;
    mmcl_status st = MMCL_OK;
    if (!buf[0] || !buf[1] || !valid || !m2[0] || !m2[1] || !neg[0] ||
        !neg[1]) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    r = mmcl__pair_reader_create(ctx, pair);
    if (!r) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    for (int j = 0; j < ny && st == MMCL_OK; j++) {
        int y = window_offset(j, ny, eh, H);
        for (int i = 0; i < nx && st == MMCL_OK; i++) {
            int x = window_offset(i, nx, ew, W);
            st =
                mmcl__pair_read(ctx, r, x, y, ew, eh, 0, buf[0], buf[1], valid);
            for (int m = 0; m < 2 && st == MMCL_OK; m++) {
                uint8_t need = m == 0 ? MMCL__VALID_OPTICAL : MMCL__VALID_SAR;
                for (int b = 0; b < B[m]; b++) {
                    band_stats *s = &stats[m][b];
                    const float *v = buf[m] + plane * b;
                    for (size_t k = 0; k < plane; k++) {
                        if (!(valid[k] & need))
                            continue;
                        double d = v[k] - s->mean;
                        s->n++;
                        s->mean += d / (double)s->n;
                        m2[m][b] += d * (v[k] - s->mean);
                        neg[m][b] += v[k] < 0;
                    }
                }
            }
        }
    }
    for (int m = 0; m < 2; m++)
        for (int b = 0; b < B[m]; b++) {
            band_stats *s = &stats[m][b];
            s->std = s->n ? sqrt(m2[m][b] / (double)s->n) : 0;
            s->negative = s->n ? (double)neg[m][b] / (double)s->n : 0;
        }
done:
    mmcl__pair_reader_destroy(r);
    for (int m = 0; m < 2; m++) {
        free(buf[m]);
        free(m2[m]);
        free(neg[m]);
    }
    free(valid);
    return st;
}

/* How many of the @p B bands have an input mean (@p s) more than @p k of
 * @p mod's standard deviations from @p mod's mean; and within that. */
static int
bands_beyond(const band_stats *s, const mmcl__modality *mod, int B, double k)
{
    int n = 0;
    for (int b = 0; b < B; b++)
        n += fabs(s[b].mean - mod->mean[b]) > k * mod->std[b];
    return n;
}

static int
bands_within(const band_stats *s, const mmcl__modality *mod, int B, double k)
{
    return B - bands_beyond(s, mod, B, k);
}

/* "m1 .. m2": the range of @p n values. */
static void
format_range(char *buf, size_t size, const double *v, size_t stride, int n)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        double x = *(const double *)((const char *)v + stride * i);
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
    }
    if (lo == hi)
        snprintf(buf, size, "%.4g", lo);
    else
        snprintf(buf, size, "%.4g .. %.4g", lo, hi);
}

/* Adds @p note to the notes and logs it as a warning. */
static void
warn(mmcl_context *ctx, char ***notes, const char *note)
{
    mmcl__log(ctx, MMCL_LOG_WARNING, "%s", note);
    if (notes)
        *notes = CSLAddString(*notes, note);
}

/* ---- a model's inputs ------------------------------------------------- */

static mmcl_status
check_names_swapped(mmcl_context *ctx, char **mnames[2],
                    const char *const *in[2], const int nb[2],
                    const int enc_bands[2], const char *files[2])
{
    int perm[256];
    for (int m = 0; m < 2; m++) {
        int o = 1 - m;
        if (!mnames[o] || nb[m] != CSLCount(mnames[o]) || nb[m] > 256)
            continue;
        /* Names the model gives both modalities say nothing. */
        if (mnames[m] && nb[m] == CSLCount(mnames[m]) &&
            names_permutation(in[m], (const char *const *)mnames[m], nb[m],
                              perm))
            continue;
        /* The input has the other modality's bands. */
        if (!names_permutation(in[m], (const char *const *)mnames[o], nb[m],
                               perm))
            continue;
        /* The other input has its own modality's bands: the same kind of
         * raster given twice, not swapped. Band counts that differ say
         * it (the caller); equal ones are said here. */
        if (nb[o] == CSLCount(mnames[o]) && nb[o] <= 256 &&
            names_permutation(in[o], (const char *const *)mnames[o], nb[o],
                              perm)) {
            if (nb[m] != enc_bands[m])
                return MMCL_OK;
            char mine[512];
            format_names(mine, sizeof(mine), (const char *const *)mnames[o],
                         nb[m]);
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "the %s input %s has the bands the model was "
                               "trained with as %s (%s), as the %s input %s "
                               "has: it is not %s raster",
                               mod_label[m], files[m], mod_label[o], mine,
                               mod_label[o], files[o],
                               m == 0 ? "an optical" : "a SAR");
        }
        char mine[512], other[512];
        format_names(mine, sizeof(mine), (const char *const *)mnames[o], nb[m]);
        if (mnames[m])
            format_names(other, sizeof(other), (const char *const *)mnames[m],
                         CSLCount(mnames[m]));
        return mmcl__error(
            ctx, MMCL_ERR_INVALID_ARG,
            "the optical and SAR look swapped: the %s input %s has the bands "
            "the model was trained with as %s (%s)%s%s%s; give the optical "
            "raster(s) first, then the SAR",
            mod_label[m], files[m], mod_label[o], mine,
            mnames[m] ? ", while the model's " : "",
            mnames[m] ? mod_label[m] : "",
            mnames[m] ? CPLSPrintf(" bands are %s", other) : "");
    }
    return MMCL_OK;
}

/* Band names of modality @p m against the model's: another order is an
 * error, other names a warning. */
static mmcl_status
check_band_names(mmcl_context *ctx, int m, char **mnames, const char *const *in,
                 int B, const char *file, size_t n_files, char ***notes)
{
    if (!mnames || names_equal(in, (const char *const *)mnames, B))
        return MMCL_OK;
    char **kin = band_keys(in, B);
    char **kmodel = band_keys((const char *const *)mnames, B);
    int same =
        kin && kmodel &&
        names_equal((const char *const *)kin, (const char *const *)kmodel, B);
    int *perm = malloc(sizeof(int) * (size_t)B);
    int permuted = perm && !same && !all_generated(in, m, B) &&
                   names_permutation((const char *const *)kin,
                                     (const char *const *)kmodel, B, perm);
    char have[768], want[768];
    /* An order is shown by what tells the bands apart. */
    format_names(have, sizeof(have), permuted ? (const char *const *)kin : in,
                 B);
    format_names(want, sizeof(want),
                 permuted ? (const char *const *)kmodel
                          : (const char *const *)mnames,
                 B);
    CSLDestroy(kin);
    CSLDestroy(kmodel);
    if (same) { /* the same bands of another scene */
        free(perm);
        return MMCL_OK;
    }
    if (!perm)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    if (permuted) {
        /* The input's band holding each of the model's bands. */
        char how[512] = "";
        size_t len = 0;
        if (n_files > 1) {
            snprintf(how, sizeof(how), "give the files in the model's order");
        } else {
            len = (size_t)snprintf(how, sizeof(how),
                                   "reorder them, e.g. "
                                   "gdal_translate");
            for (int b = 0; b < B && len < sizeof(how); b++)
                for (int i = 0; i < B; i++)
                    if (perm[i] == b) {
                        len += (size_t)snprintf(how + len, sizeof(how) - len,
                                                " -b %d", i + 1);
                        break;
                    }
            if (len < sizeof(how))
                snprintf(how + len, sizeof(how) - len, " %s OUT.tif", file);
        }
        free(perm);
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "the %s bands of %s are in another order than the "
                           "model's: the input has %s, the model was "
                           "trained with %s; %s",
                           mod_label[m], file, have, want, how);
    }
    free(perm);
    char note[4096];
    if (all_generated(in, m, B)) {
        snprintf(note, sizeof(note),
                 "the %s input %s has no band descriptions, so its band "
                 "order cannot be checked; the model was trained with %s, "
                 "and the bands are taken in that order",
                 mod_label[m], file, want);
    } else if (all_generated((const char *const *)mnames, m, B)) {
        snprintf(note, sizeof(note),
                 "the model was trained on %s bands without descriptions, so "
                 "the band order of %s (%s) cannot be checked; the bands "
                 "are taken in the order given",
                 mod_label[m], file, have);
    } else {
        int len = snprintf(note, sizeof(note),
                           "the %s band names of %s differ from the "
                           "model's:",
                           mod_label[m], file);
        int shown = 0;
        for (int b = 0; b < B && len > 0 && (size_t)len < sizeof(note); b++) {
            if (strcmp(in[b], mnames[b]) == 0)
                continue;
            if (shown++ == 8) {
                len += snprintf(note + len, sizeof(note) - len, " ...");
                break;
            }
            len += snprintf(note + len, sizeof(note) - len,
                            "%s band %d '%s' where the model has '%s'",
                            shown > 1 ? "," : "", b + 1, in[b], mnames[b]);
        }
        if (len > 0 && (size_t)len < sizeof(note))
            snprintf(note + len, sizeof(note) - len,
                     "; the bands are taken in the order given");
    }
    warn(ctx, notes, note);
    return MMCL_OK;
}

/*
 * A sparse sample of the SAR file itself, before any transform: the units
 * it is delivered in. Up to SAMPLE_GRID x SAMPLE_GRID windows of
 * SAMPLE_EDGE pixels on its own grid; NaN and nodata left out.
 */
static mmcl_status
sample_raw_sar_file(mmcl_context *ctx, const char *path, int B, band_stats *s)
{
    GDALDatasetH ds = mmcl__open_raster(ctx, path, "SAR");
    if (!ds)
        return mmcl_context_errcode(ctx);
    mmcl_status st = MMCL_OK;
    int W = GDALGetRasterXSize(ds), H = GDALGetRasterYSize(ds);
    if (GDALGetRasterCount(ds) != B)
        goto done; /* not the raster the pair read: no opinion */
    int ew = W < SAMPLE_EDGE ? W : SAMPLE_EDGE;
    int eh = H < SAMPLE_EDGE ? H : SAMPLE_EDGE;
    int nx = (W + ew - 1) / ew, ny = (H + eh - 1) / eh;
    nx = nx < SAMPLE_GRID ? nx : SAMPLE_GRID;
    ny = ny < SAMPLE_GRID ? ny : SAMPLE_GRID;
    float *buf = mmcl__malloc_array(ctx, (size_t)ew * eh, 1, sizeof(float));
    if (!buf) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    for (int b = 0; b < B && st == MMCL_OK; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        int has_nd = 0;
        double nd = GDALGetRasterNoDataValue(band, &has_nd);
        double sum = 0;
        long long n = 0, neg = 0;
        for (int j = 0; j < ny && st == MMCL_OK; j++) {
            int y = window_offset(j, ny, eh, H);
            for (int i = 0; i < nx; i++) {
                int x = window_offset(i, nx, ew, W);
                if (GDALRasterIO(band, GF_Read, x, y, ew, eh, buf, ew, eh,
                                 GDT_Float32, 0, 0) != CE_None) {
                    st = mmcl__error(ctx, MMCL_ERR_IO,
                                     "cannot read the SAR '%s': %s", path,
                                     mmcl__gdal_msg(&cap));
                    break;
                }
                for (size_t k = 0; k < (size_t)ew * eh; k++) {
                    if (!isfinite(buf[k]) || (has_nd && buf[k] == (float)nd))
                        continue;
                    sum += buf[k];
                    n++;
                    neg += buf[k] < 0;
                }
            }
        }
        s[b].n = n;
        s[b].mean = n ? sum / (double)n : 0;
        s[b].negative = n ? (double)neg / (double)n : 0;
    }
    mmcl__gdal_capture_end(&cap);
    free(buf);
done:
    GDALClose(ds);
    return st;
}

/* The same over the @p n SAR files the pair stacked, @p B bands in all
 * (one each when there are several); a count that differs leaves @p s
 * as it is (n = 0: no opinion). */
static mmcl_status
sample_raw_sar(mmcl_context *ctx, const char *const *paths, size_t n, int B,
               band_stats *s)
{
    if (n == 1)
        return sample_raw_sar_file(ctx, paths[0], B, s);
    if ((size_t)B != n)
        return MMCL_OK;
    mmcl_status st = MMCL_OK;
    for (size_t i = 0; i < n && st == MMCL_OK; i++)
        st = sample_raw_sar_file(ctx, paths[i], 1, s + i);
    return st;
}

/*
 * The SAR's units against those the model expects: the units of its
 * training statistics (dB: most band means negative; linear power: every
 * band mean in (0, LINEAR_MAX)), or, when the model converts its SAR
 * (SAR_TRANSFORM recorded), the units that conversion starts from. The
 * input's units from the file's own values (@p raw): dB when most values
 * of most bands are negative (backscatter below 1); linear when not one
 * sampled value is negative, which dB never gives, with band means in
 * (0, LINEAR_MAX). Either mismatch is an error: no scene turns one into
 * the other, and the encoders would see values on another scale.
 */
static mmcl_status
check_sar_units(mmcl_context *ctx, const mmcl__modality *mod,
                const band_stats *raw, const char *file,
                const char *sar_transform)
{
    int B = mod->B, model_db = 0, model_linear = 1, in_db = 0, in_linear = 1;
    for (int b = 0; b < B; b++) {
        if (raw[b].n < MIN_VALUES)
            return MMCL_OK;
        model_db += mod->mean[b] < 0;
        model_linear &= mod->mean[b] > 0 && mod->mean[b] < LINEAR_MAX;
        in_db += raw[b].negative > 0.5;
        in_linear &=
            raw[b].negative == 0 && raw[b].mean > 0 && raw[b].mean < LINEAR_MAX;
    }
    model_db = model_db * 2 > B;
    in_db = in_db * 2 > B;
    /* 'd': the model expects dB, 'l': linear, 0: no opinion. */
    char want_unit = model_db ? 'd' : model_linear ? 'l' : 0;
    const char *conv = NULL;
    if (sar_transform && strcmp(sar_transform, "db") == 0) {
        want_unit = 'l';
        conv = "converts its SAR from linear power to dB (it was trained "
               "with --sar-db)";
    } else if (sar_transform && strcmp(sar_transform, "linear") == 0) {
        want_unit = 'd';
        conv = "converts its SAR from dB to linear power (it was trained "
               "with --sar-linear)";
    }
    char have[64], want[64];
    format_range(have, sizeof(have), &raw[0].mean, sizeof(band_stats), B);
    format_range(want, sizeof(want), mod->mean, sizeof(double), B);
    if (want_unit == 'd' && in_linear)
        return conv ? mmcl__error(
                          ctx, MMCL_ERR_INVALID_ARG,
                          "the SAR %s looks like linear power (no negative "
                          "value, band means %s) but the model %s: give the "
                          "SAR in dB (mmcl align --sar-db OPTICAL SAR OUT "
                          "converts it)",
                          file, have, conv)
                    : mmcl__error(
                          ctx, MMCL_ERR_INVALID_ARG,
                          "the SAR %s looks like linear power (no negative "
                          "value, band means %s) but the model was trained "
                          "on SAR in dB (band means %s): convert it to dB "
                          "first (mmcl align --sar-db OPTICAL SAR OUT, then "
                          "give OUT as the SAR), or train the model with "
                          "--sar-db on linear SAR",
                          file, have, want);
    if (want_unit == 'l' && in_db)
        return conv ? mmcl__error(
                          ctx, MMCL_ERR_INVALID_ARG,
                          "the SAR %s looks like dB (mostly negative values, "
                          "band means %s) but the model %s: give the SAR in "
                          "linear power (mmcl align --sar-linear OPTICAL SAR "
                          "OUT converts it)",
                          file, have, conv)
                    : mmcl__error(
                          ctx, MMCL_ERR_INVALID_ARG,
                          "the SAR %s looks like dB (mostly negative values, "
                          "band means %s) but the model was trained on SAR "
                          "in linear power (band means %s): convert it to "
                          "linear power first (mmcl align --sar-linear "
                          "OPTICAL SAR OUT, then give OUT as the SAR), or "
                          "train the model with --sar-linear on dB SAR",
                          file, have, want);
    return MMCL_OK;
}

/* Optical values on another scale than the model's (10000 x). */
static mmcl_status
check_optical_scale(mmcl_context *ctx, const mmcl__modality *mod,
                    const band_stats *s, const char *file)
{
    int B = mod->B, up = 1, down = 1;
    for (int b = 0; b < B; b++) {
        if (!(mod->mean[b] > 0 && s[b].mean > 0 && s[b].std > 0)) {
            up = down = 0;
            break;
        }
        double rm = log10(s[b].mean / mod->mean[b]);
        double rs = log10(s[b].std / mod->std[b]);
        up &= rm > SCALE_LOG10_MIN && rm < SCALE_LOG10_MAX &&
              rs > SCALE_LOG10_MIN && rs < SCALE_LOG10_MAX;
        down &= -rm > SCALE_LOG10_MIN && -rm < SCALE_LOG10_MAX &&
                -rs > SCALE_LOG10_MIN && -rs < SCALE_LOG10_MAX;
    }
    if (!up && !down)
        return MMCL_OK;
    char have[64], want[64];
    format_range(have, sizeof(have), &s[0].mean, sizeof(band_stats), B);
    format_range(want, sizeof(want), mod->mean, sizeof(double), B);
    return mmcl__error(
        ctx, MMCL_ERR_INVALID_ARG,
        "the optical values of %s look %s by about 10000 against the "
        "model's (band means %s, the model's %s): %s",
        file, up ? "scaled up" : "scaled down", have, want,
        up ? "scale them to reflectance first (e.g. gdal_translate -ot "
             "Float32 -scale 0 10000 0 1 IN OUT) or use a model trained on "
             "that scale"
           : "scale them by 10000 first (e.g. gdal_translate -ot Float32 "
             "-scale 0 1 0 10000 IN OUT) or use a model trained on that "
             "scale");
}

/* Most bands far from the model's statistics: a warning and a note. */
static void
check_far(mmcl_context *ctx, int m, const mmcl__modality *mod,
          const band_stats *s, const char *file, char ***notes)
{
    int B = mod->B, far = bands_beyond(s, mod, B, FAR_STD);
    if (far * 2 <= B)
        return;
    int worst = 0;
    double zmax = -1;
    for (int b = 0; b < B; b++) {
        double z = fabs(s[b].mean - mod->mean[b]) / mod->std[b];
        if (z > zmax) {
            zmax = z;
            worst = b;
        }
    }
    char note[4096];
    snprintf(note, sizeof(note),
             "the %s values of %s are far from those the model was trained "
             "on: %d of %d bands have a mean more than %g of the model's "
             "standard deviations from the model's (band %d: %.4g against "
             "%.4g +- %.4g); another season or sensor may be legitimate, "
             "but the encoders then work outside their training range",
             mod_label[m], file, far, B, FAR_STD, worst + 1, s[worst].mean,
             mod->mean[worst], mod->std[worst]);
    warn(ctx, notes, note);
}

mmcl_status
mmcl__input_check_model(mmcl_context *ctx, const mmcl__encoder *enc,
                        const char *metadata_json, const mmcl__pair *pair,
                        const char *const *optical, size_t n_optical,
                        const char *const *sar, size_t n_sar, char ***notes)
{
    char ofile[1024], sfile[1024];
    format_files(ofile, sizeof(ofile), optical, n_optical);
    format_files(sfile, sizeof(sfile), sar, n_sar);
    const char *files[2] = {ofile, sfile};
    int nb[2] = {mmcl__pair_optical_bands(pair), mmcl__pair_sar_bands(pair)};
    const char *const *in[2] = {mmcl__pair_optical_band_names(pair),
                                mmcl__pair_sar_band_names(pair)};
    const mmcl__modality *mod = enc->mod;
    cJSON *meta = cJSON_Parse(metadata_json);
    char **mnames[2] = {model_names(meta, 0, mod[0].B),
                        model_names(meta, 1, mod[1].B)};
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(meta, "pair");
    const char *tr = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(pj, "sar_transform"));
    band_stats *stats[2] = {NULL, NULL}, *raw = NULL;
    int enc_bands[2] = {mod[0].B, mod[1].B};
    mmcl_status st = check_names_swapped(ctx, mnames, in, nb, enc_bands, files);
    if (st != MMCL_OK)
        goto done;
    if (nb[0] != mod[0].B || nb[1] != mod[1].B) {
        if (nb[0] == mod[1].B && nb[1] == mod[0].B)
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "the optical and SAR look swapped: the model "
                             "expects %d optical and %d SAR bands, the "
                             "optical input %s has %d and the SAR input %s "
                             "%d; give the optical raster(s) first, then the "
                             "SAR",
                             mod[0].B, mod[1].B, ofile, nb[0], sfile, nb[1]);
        goto done; /* the caller reports other counts */
    }
    for (int m = 0; m < 2 && st == MMCL_OK; m++)
        st = check_band_names(ctx, m, mnames[m], in[m], nb[m], files[m],
                              m == 0 ? n_optical : n_sar, notes);
    if (st != MMCL_OK)
        goto done;

    /* The values. */
    for (int m = 0; m < 2; m++) {
        stats[m] =
            mmcl__calloc_array(ctx, (size_t)nb[m], 1, sizeof(band_stats));
        if (!stats[m]) {
            st = MMCL_ERR_NO_MEMORY;
            goto done;
        }
    }
    st = sample_stats(ctx, pair, stats);
    if (st != MMCL_OK)
        goto done;
    int enough[2];
    for (int m = 0; m < 2; m++) {
        enough[m] = 1;
        for (int b = 0; b < nb[m]; b++)
            enough[m] &= stats[m][b].n >= MIN_VALUES;
    }
    /* Swapped, seen from the values alone (equal band counts, names that
     * say nothing): each modality near the other's statistics and not near
     * its own, and one of them far from its own. Both ways at once is not
     * a change of scene. (SAR in dB has wide statistics: reflectance given
     * as SAR may lie only 3 to 5 of its stds from them.) */
    if (enough[0] && enough[1] && nb[0] == nb[1] &&
        bands_within(stats[0], &mod[1], nb[0], NEAR_STD) * 2 > nb[0] &&
        bands_within(stats[1], &mod[0], nb[1], NEAR_STD) * 2 > nb[1] &&
        bands_beyond(stats[0], &mod[0], nb[0], NEAR_STD) * 2 > nb[0] &&
        bands_beyond(stats[1], &mod[1], nb[1], NEAR_STD) * 2 > nb[1] &&
        (bands_beyond(stats[0], &mod[0], nb[0], FAR_STD) * 2 > nb[0] ||
         bands_beyond(stats[1], &mod[1], nb[1], FAR_STD) * 2 > nb[1])) {
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "the optical and SAR look swapped: the values of "
                         "the optical input %s match the model's SAR "
                         "statistics and those of the SAR input %s its "
                         "optical ones; give the optical raster(s) first, "
                         "then the SAR",
                         ofile, sfile);
        goto done;
    }
    /* The units of the SAR file itself: where the model transforms its
     * SAR (dB of values already in dB would hide them), from a sample of
     * the file; otherwise the pair's values are the file's. */
    if (tr && strcmp(tr, "none") != 0) {
        raw = mmcl__calloc_array(ctx, (size_t)nb[1], 1, sizeof(band_stats));
        st = raw ? sample_raw_sar(ctx, sar, n_sar, nb[1], raw) : MMCL_ERR_NO_MEMORY;
    }
    if (st == MMCL_OK)
        st = check_sar_units(ctx, &mod[1], raw ? raw : stats[1], sfile, tr);
    if (st == MMCL_OK && enough[0])
        st = check_optical_scale(ctx, &mod[0], stats[0], ofile);
    if (st != MMCL_OK)
        goto done;
    for (int m = 0; m < 2; m++)
        if (enough[m])
            check_far(ctx, m, &mod[m], stats[m], files[m], notes);
done:
    free(raw);
    free(stats[0]);
    free(stats[1]);
    CSLDestroy(mnames[0]);
    CSLDestroy(mnames[1]);
    cJSON_Delete(meta);
    return st;
}

/* ---- training inputs -------------------------------------------------- */

mmcl_status
mmcl__input_check_train_names(mmcl_context *ctx, const mmcl__pair *pair,
                              const char *const *optical, size_t n_optical,
                              const char *const *sar, size_t n_sar)
{
    char ofile[1024], sfile[1024];
    format_files(ofile, sizeof(ofile), optical, n_optical);
    format_files(sfile, sizeof(sfile), sar, n_sar);
    const char *const *on = mmcl__pair_optical_band_names(pair);
    const char *const *sn = mmcl__pair_sar_band_names(pair);
    int B1 = mmcl__pair_optical_bands(pair), B2 = mmcl__pair_sar_bands(pair);
    /* A name is a deliberate label, and no optical band is called VV: an
     * error, with the band that gives it away. */
    for (int b = 0; b < B1; b++)
        if (sar_like_name(on[b]))
            return mmcl__error(
                ctx, MMCL_ERR_INVALID_ARG,
                "optical band %d of %s is named '%s', a SAR polarisation: "
                "the optical and SAR look swapped (give the optical "
                "raster(s) first, then the SAR last)",
                b + 1, ofile, on[b]);
    int s2 = 0;
    for (int b = 0; b < B2; b++)
        s2 += optical_like_name(sn[b]);
    if (s2 == B2) {
        char names[512];
        format_names(names, sizeof(names), sn, B2);
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "the SAR %s has bands named as optical "
                           "(Sentinel-2) bands, %s: the optical and SAR look "
                           "swapped (give the optical raster(s) first, then "
                           "the SAR last)",
                           sfile, names);
    }
    return MMCL_OK;
}

/*
 * Values alone are a warning: an optical input whose bands are mostly
 * negative (mean more than one standard deviation below 0, as backscatter
 * in dB is: means -25 to -5 dB, stds 2 to 5 dB) looks like SAR in dB,
 * since reflectance, radiance and their integer scalings are not negative.
 * Bands centred on 0 (standardized bands, differences of two dates: mean
 * about 0 against their std) do not count. But even mostly negative
 * optical bands may be legitimate (an index, a log transform of the
 * user's): the model is trained, with a warning and a note in its
 * metadata. The SAR's values alone say nothing: linear SAR
 * looks like reflectance.
 */
void
mmcl__input_check_train_values(mmcl_context *ctx, const double *mean1,
                               const double *std1, int B1, const double *mean2,
                               int B2, const char *const *optical,
                               size_t n_optical, const char *const *sar,
                               size_t n_sar, char ***notes)
{
    char ofile[1024], sfile[1024];
    format_files(ofile, sizeof(ofile), optical, n_optical);
    format_files(sfile, sizeof(sfile), sar, n_sar);
    int neg1 = 0, neg2 = 0;
    for (int b = 0; b < B1; b++)
        neg1 += mean1[b] + std1[b] < 0;
    for (int b = 0; b < B2; b++)
        neg2 += mean2[b] < 0;
    if (neg1 * 2 <= B1)
        return;
    char have[64], other[64], note[4096];
    format_range(have, sizeof(have), mean1, sizeof(double), B1);
    format_range(other, sizeof(other), mean2, sizeof(double), B2);
    snprintf(note, sizeof(note),
             "%d of the %d optical bands of %s have mostly negative values "
             "(means %s, each more than a standard deviation below 0), as SAR "
             "in dB has%s (the SAR %s: %s): are the optical and SAR "
             "swapped? The model is trained as given",
             neg1, B1, ofile, have,
             neg2 == 0 ? ", and the SAR's band means are all positive, as "
                         "reflectance is"
                       : "",
             sfile, other);
    warn(ctx, notes, note);
}
