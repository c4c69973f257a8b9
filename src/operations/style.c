/* SPDX-License-Identifier: MIT */
/*
 * QGIS styles of mmcl's maps (style_internal.h): the choice of rendering
 * per product, and the QML text QGIS 3.22 reads (the <pipe> of a raster
 * layer: a single-band pseudocolour renderer with an interpolated colour
 * ramp, a multiband colour renderer with a stretch per channel, or a grey
 * renderer).
 */
#define _GNU_SOURCE /* O_NOFOLLOW, strncasecmp */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cpl_conv.h>
#include <gdal.h>

#include "colormaps_internal.h"
#include "context_internal.h"
#include "style_internal.h"

/* Colour ramp stops written for a colour map (QGIS interpolates between
 * them): every 16th entry of the 256 and the last. */
#define RAMP_STEP 17
/* Buckets of the histograms the percentiles are read from: the stretch
 * is within 1/16384 of the band's range, as `mmcl rgb`'s. */
#define HIST_BUCKETS 16384

/* The band's display range: mean +- 2 sd within [min, max]; symmetric
 * about 0 when @p centred. Never empty. */
static void
band_range(const mmcl__style_band *b, int centred, double *lo, double *hi)
{
    double l = 0.0, h = 1.0;
    if (b->has_pct && isfinite(b->p_lo) && isfinite(b->p_hi)) {
        l = b->p_lo;
        h = b->p_hi;
    } else if (b->valid && isfinite(b->mean) && isfinite(b->std)) {
        l = b->mean - 2.0 * b->std;
        h = b->mean + 2.0 * b->std;
        if (isfinite(b->min) && l < b->min)
            l = b->min;
        if (isfinite(b->max) && h > b->max)
            h = b->max;
    }
    if (centred) {
        double a = fmax(fabs(l), fabs(h));
        l = -a;
        h = a;
    }
    if (!(h > l)) {
        double c = isfinite(l) ? l : 0.0;
        double d = fabs(c) > 0.0 ? fabs(c) * 1e-3 : 1.0;
        l = centred ? -d : c - d;
        h = centred ? d : c + d;
    }
    *lo = l;
    *hi = h;
}

static void
head(mmcl__text *t)
{
    mmcl__text_add(t, "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
           "<!-- written by mmcl: the layer's default style -->\n"
           "<qgis version=\"3.22.0\" styleCategories=\"AllStyleCategories\" "
           "hasScaleBasedVisibilityFlag=\"0\" minScale=\"1e+08\" "
           "maxScale=\"0\">\n"
           "  <pipe>\n");
}

static void
tail(mmcl__text *t)
{
    mmcl__text_add(t, "    <brightnesscontrast brightness=\"0\" contrast=\"0\" "
           "gamma=\"1\"/>\n"
           "    <huesaturation saturation=\"0\" grayscaleMode=\"0\" "
           "colorizeOn=\"0\" colorizeRed=\"255\" colorizeGreen=\"128\" "
           "colorizeBlue=\"128\" colorizeStrength=\"100\" "
           "invertColors=\"0\"/>\n"
           "    <rasterresampler maxOversampling=\"2\"/>\n"
           "    <resamplingStage>resamplingFilter</resamplingStage>\n"
           "  </pipe>\n"
           "  <blendMode>0</blendMode>\n"
           "</qgis>\n");
}

static void
min_max_origin(mmcl__text *t)
{
    mmcl__text_add(t, "      <minMaxOrigin>\n"
           "        <limits>None</limits>\n"
           "        <extent>WholeRaster</extent>\n"
           "        <statAccuracy>Exact</statAccuracy>\n"
           "        <cumulativeCutLower>0.02</cumulativeCutLower>\n"
           "        <cumulativeCutUpper>0.98</cumulativeCutUpper>\n"
           "        <stdDevFactor>2</stdDevFactor>\n"
           "      </minMaxOrigin>\n");
}

static void
pseudocolor(mmcl__text *t, int band, const char *colormap, double lo, double hi)
{
    const mmcl__rgb8 *lut = mmcl__colormap(colormap);
    mmcl__text_add(t, "    <rasterrenderer type=\"singlebandpseudocolor\" band=\"%d\" "
           "opacity=\"1\" alphaBand=\"-1\" nodataColor=\"\" "
           "classificationMin=\"%.9g\" classificationMax=\"%.9g\">\n",
        band, lo, hi);
    min_max_origin(t);
    mmcl__text_add(t, "      <rastershader>\n"
           "        <colorrampshader colorRampType=\"INTERPOLATED\" "
           "classificationMode=\"1\" clip=\"0\" minimumValue=\"%.9g\" "
           "maximumValue=\"%.9g\" labelPrecision=\"4\">\n",
        lo, hi);
    for (int i = 0; i < MMCL__LUT_SIZE; i += RAMP_STEP - 1) {
        int k = i + RAMP_STEP - 1 >= MMCL__LUT_SIZE ? MMCL__LUT_SIZE - 1 : i;
        double v = lo + (hi - lo) * k / (MMCL__LUT_SIZE - 1);
        mmcl__text_add(t, "          <item value=\"%.9g\" color=\"#%02x%02x%02x\" "
               "alpha=\"255\" label=\"%.4g\"/>\n",
            v, lut[k][0], lut[k][1], lut[k][2], v);
        if (k == MMCL__LUT_SIZE - 1)
            break;
    }
    mmcl__text_add(t, "        </colorrampshader>\n"
           "      </rastershader>\n"
           "    </rasterrenderer>\n");
}

static void
multiband(mmcl__text *t, const int band[3], const double lo[3], const double hi[3])
{
    static const char *const ch[3] = {"red", "green", "blue"};
    mmcl__text_add(t, "    <rasterrenderer type=\"multibandcolor\" opacity=\"1\" "
           "alphaBand=\"-1\" nodataColor=\"\" redBand=\"%d\" "
           "greenBand=\"%d\" blueBand=\"%d\">\n",
        band[0], band[1], band[2]);
    min_max_origin(t);
    for (int c = 0; c < 3; c++)
        mmcl__text_add(t, "      <%sContrastEnhancement>\n"
               "        <minValue>%.9g</minValue>\n"
               "        <maxValue>%.9g</maxValue>\n"
               "        <algorithm>StretchToMinimumMaximum</algorithm>\n"
               "      </%sContrastEnhancement>\n",
            ch[c], lo[c], hi[c], ch[c]);
    mmcl__text_add(t, "    </rasterrenderer>\n");
}

static void
gray(mmcl__text *t, int band, double lo, double hi)
{
    mmcl__text_add(t, "    <rasterrenderer type=\"singlebandgray\" grayBand=\"%d\" "
           "gradient=\"BlackToWhite\" opacity=\"1\" alphaBand=\"-1\" "
           "nodataColor=\"\">\n",
        band);
    min_max_origin(t);
    mmcl__text_add(t, "      <contrastEnhancement>\n"
           "        <minValue>%.9g</minValue>\n"
           "        <maxValue>%.9g</maxValue>\n"
           "        <algorithm>StretchToMinimumMaximum</algorithm>\n"
           "      </contrastEnhancement>\n"
           "    </rasterrenderer>\n",
        lo, hi);
}

static int
starts(const char *s, const char *prefix)
{
    return s && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* The band an information-loss map is shown by (0-based): the headline
 * band, else (a model without a noise estimate leaves it NaN) the first
 * excess band with values. */
static int
loss_band(int n, const mmcl__style_band *b)
{
    for (int i = 0; i < n; i++)
        if (b[i].valid && b[i].name &&
            strcasecmp(b[i].name, "structured_excess_optical") == 0)
            return i;
    for (int i = 0; i < n; i++)
        if (b[i].valid && starts(b[i].name, "structured_excess"))
            return i;
    for (int i = 0; i < n; i++)
        if (b[i].valid && starts(b[i].name, "excess"))
            return i;
    for (int i = 0; i < n; i++)
        if (b[i].valid)
            return i;
    return 0;
}

/* An information-loss map: of a model (infoloss) or of an embedding
 * raster (audit), the same bands. */
static int
is_loss_map(const char *product)
{
    return strcmp(product, "infoloss") == 0 || strcmp(product, "audit") == 0;
}

int
mmcl__style_bands(const char *product, int n_bands,
                  const mmcl__style_band *bands, int used[3])
{
    used[0] = used[1] = used[2] = -1;
    if (!product || n_bands < 1)
        return 0;
    if (is_loss_map(product)) {
        used[0] = loss_band(n_bands, bands);
        return 1;
    }
    if (strcmp(product, "embedding") == 0 && n_bands >= 2) {
        int n = n_bands >= 3 ? 3 : 2;
        for (int c = 0; c < n; c++)
            used[c] = c;
        return n;
    }
    if (strcmp(product, "embedding") == 0 ||
        strcmp(product, "aligned_sar") == 0) {
        used[0] = 0;
        return 1;
    }
    return 0;
}

static int
cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile of the m sorted values of v. */
static double
sorted_percentile(const float *v, size_t m, double p)
{
    double r = p / 100.0 * (double)(m - 1);
    size_t k = (size_t)r;
    if (k + 1 >= m)
        return v[m - 1];
    return v[k] + (r - (double)k) * ((double)v[k + 1] - v[k]);
}

void
mmcl__style_percentiles(float *v, size_t n, double p_lo, double p_hi,
                        double *lo, double *hi)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            v[m++] = v[i];
    if (!m) {
        *lo = *hi = NAN;
        return;
    }
    qsort(v, m, sizeof(*v), cmp_float);
    *lo = sorted_percentile(v, m, p_lo);
    *hi = sorted_percentile(v, m, p_hi);
}

/* The value below which @p p percent of the counts of @p h (@p n buckets
 * over [lo, hi]) lie, linear inside the bucket where the cumulative count
 * crosses it (as `mmcl rgb` reads its histograms). */
static double
hist_percentile(const GUIntBig *h, int n, double lo, double hi, double p)
{
    double total = 0.0, cum = 0.0;
    for (int k = 0; k < n; k++)
        total += (double)h[k];
    double target = p / 100.0 * total, width = (hi - lo) / n;
    for (int k = 0; k < n; k++) {
        if (!h[k])
            continue;
        if (cum + (double)h[k] >= target)
            return lo + ((double)k + (target - cum) / (double)h[k]) * width;
        cum += (double)h[k];
    }
    return hi;
}

/*
 * The histogram of @p band's finite values in HIST_BUCKETS buckets over
 * [lo, hi], read by strips of rows. (GDAL's own histogram would be stored
 * in a new .aux.xml beside the output.)
 */
static CPLErr
band_histogram(GDALRasterBandH band, double lo, double hi, GUIntBig *h)
{
    int w = GDALGetRasterBandXSize(band), H = GDALGetRasterBandYSize(band);
    int rows = 256;
    float *strip = malloc((size_t)w * (size_t)rows * sizeof(float));
    if (!strip)
        return CE_Failure;
    double scale = HIST_BUCKETS / (hi - lo);
    CPLErr e = CE_None;
    for (int y = 0; y < H && e == CE_None; y += rows) {
        int n = H - y < rows ? H - y : rows;
        e = GDALRasterIO(band, GF_Read, 0, y, w, n, strip, w, n,
                         GDT_Float32, 0, 0);
        for (size_t i = 0; e == CE_None && i < (size_t)w * (size_t)n; i++) {
            if (!isfinite(strip[i]))
                continue;
            /* The bucket floor(k), clamped: below 1 (or NaN) bucket 0,
             * else the integer part (no call to floor() per pixel). */
            double k = ((double)strip[i] - lo) * scale;
            int ki = !(k >= 1.0)               ? 0
                     : k >= HIST_BUCKETS - 1.0 ? HIST_BUCKETS - 1
                                               : (int)k;
            h[ki]++;
        }
    }
    free(strip);
    return e;
}

char *
mmcl__style_qml(const char *product, int n_bands,
                const mmcl__style_band *bands)
{
    if (!product || n_bands < 1)
        return NULL;
    mmcl__text t = {0};
    if (is_loss_map(product)) {
        int i = loss_band(n_bands, bands);
        /* The signed bands, as `mmcl rgb` chooses its colour map. */
        int centred = starts(bands[i].name, "excess") ||
                      starts(bands[i].name, "structured_");
        double lo, hi;
        band_range(&bands[i], centred, &lo, &hi);
        head(&t);
        pseudocolor(&t, i + 1, centred ? "rdbu_r" : "viridis", lo, hi);
    } else if (strcmp(product, "embedding") == 0 && n_bands >= 2) {
        /* Two components: red and green, blue empty, as `mmcl rgb` draws
         * the two principal components of two bands. */
        int band[3] = {1, 2, n_bands >= 3 ? 3 : -1};
        double lo[3] = {0.0, 0.0, 0.0}, hi[3] = {1.0, 1.0, 1.0};
        for (int c = 0; c < 3 && c < n_bands; c++)
            band_range(&bands[c], 0, &lo[c], &hi[c]);
        head(&t);
        multiband(&t, band, lo, hi);
    } else if (strcmp(product, "embedding") == 0 ||
               strcmp(product, "aligned_sar") == 0) {
        double lo, hi;
        band_range(&bands[0], 0, &lo, &hi);
        head(&t);
        gray(&t, 1, lo, hi);
    } else {
        return NULL;
    }
    tail(&t);
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}

mmcl_status
mmcl__style_write_file(mmcl_context *ctx, const char *path, const char *text,
                       const char *shown)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  0644);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!fp && fd >= 0)
        close(fd);
    int ok = fp && fputs(text, fp) >= 0;
    if (fp) {
        ok = fflush(fp) == 0 && ok;
        ok = fsync(fileno(fp)) == 0 && ok;
        ok = fclose(fp) == 0 && ok;
    }
    if (!ok)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot write the QGIS style of '%s': %s", shown,
                           strerror(errno));
    return MMCL_OK;
}

mmcl_status
mmcl__style_write_raster(mmcl_context *ctx, const char *raster,
                         const char *qml, const char *shown)
{
    GDALDatasetH ds = GDALOpen(raster, GA_ReadOnly);
    if (!ds)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot read back output '%s' for its style: %s",
                           shown, CPLGetLastErrorMsg());
    const char *product = GDALGetMetadataItem(ds, "PRODUCT", "MMCL");
    int n = GDALGetRasterCount(ds);
    mmcl__style_band *b = n > 0 ? calloc((size_t)n, sizeof(*b)) : NULL;
    char *qtext = NULL;
    mmcl_status st = MMCL_OK;
    if (n > 0 && !b) {
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, i + 1);
        b[i].name = GDALGetDescription(band);
        /* The statistics stored while writing (never a rescan here). */
        b[i].valid = GDALGetRasterStatistics(band, FALSE, FALSE, &b[i].min,
                                             &b[i].max, &b[i].mean,
                                             &b[i].std) == CE_None;
    }
    /* The percentiles of the bands shown, from an exact histogram of
     * HIST_BUCKETS buckets over each band's range. */
    int used[3];
    int n_used = mmcl__style_bands(product, n, b, used);
    for (int c = 0; c < n_used; c++) {
        mmcl__style_band *sb = &b[used[c]];
        if (!sb->valid || !(sb->max > sb->min))
            continue;
        GUIntBig *h = calloc(HIST_BUCKETS, sizeof(*h));
        if (!h) {
            st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
        if (band_histogram(GDALGetRasterBand(ds, used[c] + 1), sb->min,
                           sb->max, h) == CE_None) {
            sb->p_lo = hist_percentile(h, HIST_BUCKETS, sb->min, sb->max,
                                       MMCL__STYLE_P_LO);
            sb->p_hi = hist_percentile(h, HIST_BUCKETS, sb->min, sb->max,
                                       MMCL__STYLE_P_HI);
            sb->has_pct = 1;
        }
        free(h);
    }
    qtext = mmcl__style_qml(product, n, b);
    if (qtext)
        st = mmcl__style_write_file(ctx, qml, qtext, shown);
done:
    free(qtext);
    free(b);
    GDALClose(ds);
    return st;
}
