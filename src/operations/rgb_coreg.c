/* SPDX-License-Identifier: MIT */
/*
 * `mmcl rgb` of a shift field (a raster of `mmcl coreg`, MMCL PRODUCT
 * coreg): the colour wheel picture. Each block's colour is
 * mmcl__shift_colour() of its (dx, dy, confidence): the hue the direction
 * of the SAR's shift, the strength its magnitude against a fixed range
 * (--range 0,MAX, else the 98th percentile of the estimated magnitudes),
 * faded to grey by the confidence; a block with no estimate (NaN) is
 * transparent black. The field is small (one pixel per block), so it is
 * read whole; the picture draws each block as its square of optical
 * pixels, on the optical grid, so that each block is seen. With --over,
 * rgb.c draws the picture of the optical raster and blends each block's
 * colour over its pixels (mmcl__shift_wheel_blend).
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>

#include "context_internal.h"
#include "gdal_util_internal.h"
#include "options_internal.h"
#include "rgb_internal.h"

enum {
    MAX_SIDE = 8192,     /* the picture's largest side, pixels */
    DEFAULT_BLOCK = 64   /* a field without COREG_BLOCK */
};
/* The least magnitude drawn in full colour by default, optical pixels. */
#define MIN_RANGE 0.5

/* The field's bands dx (1), dy (2) and confidence (5), read whole. */
typedef struct shift_field {
    int w, h;
    double gt[6];
    char *wkt;    /* CPLFree */
    int block;    /* COREG_BLOCK, optical pixels */
    double *dx, *dy, *conf; /* (h, w); free */
} shift_field;

static void
field_free(shift_field *f)
{
    CPLFree(f->wkt);
    free(f->dx);
    free(f->dy);
    free(f->conf);
}

/* The opacity of a block's colour over the optical picture (--over). */
#define OVER_OPACITY 0.5

/* The options of the other modes have no meaning here: refused, so that
 * a user does not believe they were applied. */
static mmcl_status
check_options(mmcl_context *ctx, const mmcl__rgb_shift_args *a)
{
    const mmcl_options *o = a->o;
    /* With --over, --bands, --mode and --colormap make the picture of
     * the optical raster. */
    static const char *const keys[] = {"LAZY", "LEGEND_INSET", "BANDS"};
    size_t n_keys = a->over ? 2 : 3;
    for (size_t i = 0; i < n_keys; i++) {
        const char *v = mmcl__opt_str(o, keys[i]);
        int given = strcmp(keys[i], "BANDS") == 0 ? v != NULL
                                                  : mmcl__opt_bool(o, keys[i]);
        if (given)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "'%s' is a shift field (mmcl coreg): it is "
                               "drawn as a colour wheel of dx, dy and "
                               "confidence, without %s%s%s%s",
                               a->in, mmcl__opt_name(ctx, keys[i]),
                               i == 2 ? " (which chooses the bands of the "
                                        "optical raster of "
                                      : "",
                               i == 2 ? mmcl__opt_name(ctx, "OVER") : "",
                               i == 2 ? ")" : "");
    }
    static const char *const autos[] = {"MODE", "COLORMAP"};
    for (size_t i = 0; !a->over && i < 2; i++)
        if (strcmp(mmcl__opt_str(o, autos[i]), "auto") != 0)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "'%s' is a shift field (mmcl coreg): it is "
                               "drawn as a colour wheel of dx, dy and "
                               "confidence, without %s %s",
                               a->in, mmcl__opt_name(ctx, autos[i]),
                               mmcl__opt_str(o, autos[i]));
    if (a->range_given && (a->range_lo != 0.0 || !(a->range_hi > 0.0)))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "'%s' is a shift field (mmcl coreg): %s must be "
                           "0,MAX, MAX the shift in optical pixels drawn in "
                           "full colour, got '%s'",
                           a->in, mmcl__opt_name(ctx, "RANGE"),
                           mmcl__opt_str(o, "RANGE"));
    return MMCL_OK;
}

static mmcl_status
read_field(mmcl_context *ctx, const char *in, shift_field *f)
{
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    GDALDatasetH ds =
        GDALOpenEx(in, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    mmcl__gdal_capture_end(&cap);
    if (!ds)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot open '%s': %s", in,
                           mmcl__gdal_msg(&cap));
    mmcl_status st = MMCL_OK;
    f->w = GDALGetRasterXSize(ds);
    f->h = GDALGetRasterYSize(ds);
    if (GDALGetRasterCount(ds) < 5) {
        st = mmcl__error(ctx, MMCL_ERR_FORMAT,
                         "'%s' says it is a shift field (PRODUCT=coreg) but "
                         "has %d bands, not the 5 of dx, dy, dx_m, dy_m, "
                         "confidence",
                         in, GDALGetRasterCount(ds));
        goto done;
    }
    if (GDALGetGeoTransform(ds, f->gt) != CE_None) {
        const double id[6] = {0, 1, 0, 0, 0, 1};
        memcpy(f->gt, id, sizeof(id));
    }
    const char *wkt = GDALGetProjectionRef(ds);
    f->wkt = wkt && *wkt ? CPLStrdup(wkt) : NULL;
    const char *b = GDALGetMetadataItem(ds, "MMCL_COREG_BLOCK", NULL);
    if (!b)
        b = GDALGetMetadataItem(ds, "COREG_BLOCK", "MMCL");
    f->block = b ? atoi(b) : DEFAULT_BLOCK;
    if (f->block < 1)
        f->block = DEFAULT_BLOCK;
    size_t n = (size_t)f->w * (size_t)f->h;
    f->dx = malloc(n * sizeof(double));
    f->dy = malloc(n * sizeof(double));
    f->conf = malloc(n * sizeof(double));
    if (!f->dx || !f->dy || !f->conf) {
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    double *dst[3] = {f->dx, f->dy, f->conf};
    /* The bands by name, as the warp's correction finds them; else
     * mmcl coreg's order. */
    static const char *const names[3] = {"dx", "dy", "confidence"};
    int band[3] = {1, 2, 5};
    for (int i = 0; i < 3; i++)
        for (int k = 1; k <= GDALGetRasterCount(ds); k++)
            if (strcasecmp(GDALGetDescription(GDALGetRasterBand(ds, k)),
                           names[i]) == 0) {
                band[i] = k;
                break;
            }
    mmcl__gdal_capture_begin(&cap, ctx);
    for (int i = 0; i < 3 && st == MMCL_OK; i++)
        if (GDALRasterIO(GDALGetRasterBand(ds, band[i]), GF_Read, 0, 0, f->w,
                         f->h, dst[i], f->w, f->h, GDT_Float64, 0,
                         0) != CE_None)
            st = MMCL_ERR_IO;
    mmcl__gdal_capture_end(&cap);
    if (st != MMCL_OK)
        st = mmcl__error(ctx, MMCL_ERR_IO, "cannot read '%s': %s", in,
                         mmcl__gdal_msg(&cap));
done:
    GDALClose(ds);
    return st;
}

static int
valid_block(const shift_field *f, size_t i)
{
    return isfinite(f->dx[i]) && isfinite(f->dy[i]) && isfinite(f->conf[i]);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The 98th percentile (nearest rank) of the magnitudes of the blocks
 * with an estimate of some confidence, at least MIN_RANGE: the noise of
 * a well registered pair is not drawn in full colour, and a field of
 * zero shifts is grey. *@p n_est: the blocks with an
 * estimate. */
static double
auto_range(mmcl_context *ctx, const shift_field *f, size_t *n_est,
           mmcl_status *st)
{
    size_t n = (size_t)f->w * (size_t)f->h, k = 0;
    double *m = malloc((n ? n : 1) * sizeof(double));
    *st = m ? MMCL_OK : mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    if (!m)
        return 0.0;
    *n_est = 0;
    for (size_t i = 0; i < n; i++) {
        *n_est += (size_t)valid_block(f, i);
        if (valid_block(f, i) && f->conf[i] > 0.0)
            m[k++] = hypot(f->dx[i], f->dy[i]);
    }
    double r = 0.0;
    if (k) {
        qsort(m, k, sizeof(double), cmp_double);
        size_t rank = (size_t)ceil(0.98 * (double)k);
        r = m[rank ? rank - 1 : 0];
    }
    free(m);
    return r > MIN_RANGE ? r : MIN_RANGE;
}

void
mmcl__shift_wheel_free(mmcl__shift_wheel *wh)
{
    CPLFree(wh->wkt);
    free(wh->rgba);
    memset(wh, 0, sizeof(*wh));
}

mmcl_status
mmcl__shift_wheel_open(mmcl_context *ctx, const mmcl__rgb_shift_args *a,
                       mmcl__shift_wheel *wh)
{
    shift_field f = {0};
    memset(wh, 0, sizeof(*wh));
    mmcl_status st = check_options(ctx, a);
    if (st == MMCL_OK)
        st = read_field(ctx, a->in, &f);
    if (st != MMCL_OK)
        goto done;
    wh->range = a->range_hi;
    wh->range_from = "--range";
    double range = auto_range(ctx, &f, &wh->n_est, &st);
    if (!a->range_given) {
        wh->range = range;
        wh->range_from =
            "98th percentile of the estimated shifts, at least 0.5 px";
    }
    if (st != MMCL_OK)
        goto done;
    size_t n = (size_t)f.w * (size_t)f.h;
    wh->rgba = mmcl__malloc_array(ctx, n, 4, 1);
    if (!wh->rgba) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char *px = wh->rgba + 4 * i;
        memset(px, 0, 4);
        if (valid_block(&f, i)) {
            mmcl__shift_colour(f.dx[i], f.dy[i], f.conf[i], wh->range, px);
            px[3] = 255;
        }
    }
    wh->w = f.w;
    wh->h = f.h;
    wh->block = f.block;
    memcpy(wh->gt, f.gt, sizeof(f.gt));
    wh->wkt = f.wkt;
    f.wkt = NULL;
done:
    field_free(&f);
    if (st != MMCL_OK)
        mmcl__shift_wheel_free(wh);
    return st;
}

void
mmcl__shift_wheel_blend(const mmcl__shift_wheel *wh, int x0, int y0, int w,
                        int h, unsigned char *rgba)
{
    size_t n = (size_t)w * (size_t)h;
    for (int y = 0; y < h; y++) {
        int by = (y0 + y) / wh->block;
        by = by < wh->h ? by : wh->h - 1;
        for (int x = 0; x < w; x++) {
            int bx = (x0 + x) / wh->block;
            bx = bx < wh->w ? bx : wh->w - 1;
            const unsigned char *c =
                wh->rgba + 4 * ((size_t)by * wh->w + (size_t)bx);
            size_t i = (size_t)y * w + x;
            if (!c[3] || !rgba[3 * n + i])
                continue; /* no estimate, or no optical value */
            /* (1 - OVER_OPACITY) optical + OVER_OPACITY wheel, rounded */
            for (int k = 0; k < 3; k++)
                rgba[k * n + i] =
                    (unsigned char)((rgba[k * n + i] + c[k] + 1) / 2);
        }
    }
}

mmcl_status
mmcl__shift_wheel_legend(mmcl_context *ctx, const mmcl__rgb_shift_args *a,
                         const mmcl__shift_wheel *wh, mmcl__stage *png_stage,
                         mmcl__stage *json_stage)
{
    unsigned char *rgba = malloc((size_t)4 * MMCL__LEGEND_W * MMCL__LEGEND_H);
    if (!rgba)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    const char *title = "Shift of the SAR against the optical";
    const char *font = mmcl__legend_wheel_draw(rgba, wh->range, title);
    mmcl_status st = mmcl__rgb_legend_png(ctx, rgba, a->legend_png, png_stage);
    free(rgba);
    if (st != MMCL_OK)
        return st;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "image", CPLGetFilename(a->legend_png));
    cJSON_AddStringToObject(j, "picture", CPLGetFilename(a->out));
    cJSON_AddStringToObject(j, "source", a->in);
    cJSON_AddStringToObject(j, "title", title);
    cJSON_AddStringToObject(j, "font", font);
    cJSON_AddStringToObject(j, "colormap", "shift_wheel");
    cJSON_AddStringToObject(j, "units", "px");
    cJSON_AddNumberToObject(j, "range", wh->range);
    cJSON_AddStringToObject(j, "range_from", wh->range_from);
    cJSON_AddStringToObject(
        j, "note",
        a->over ? "hue: direction of (dx, dy), 0 degrees (red) = +dx "
                  "(right), 90 degrees = +dy (down); mixed with grey by "
                  "min(1, |shift| / range) x confidence; blended at half "
                  "opacity over the optical picture; no tint: no estimate"
                : "hue: direction of (dx, dy), 0 degrees (red) = +dx "
                  "(right), 90 degrees = +dy (down); mixed with grey by "
                  "min(1, |shift| / range) x confidence; transparent: no "
                  "estimate");
    if (a->over) {
        cJSON_AddStringToObject(j, "over", a->over);
        cJSON_AddNumberToObject(j, "opacity", OVER_OPACITY);
    }
    cJSON *w = cJSON_AddObjectToObject(j, "wheel");
    cJSON_AddNumberToObject(w, "x", MMCL__WHEEL_X);
    cJSON_AddNumberToObject(w, "y", MMCL__WHEEL_Y);
    cJSON_AddNumberToObject(w, "radius", MMCL__WHEEL_R);
    char *text = cJSON_Print(j);
    st = text ? mmcl__stage_write_text(ctx, json_stage, text)
              : mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    cJSON_free(text);
    cJSON_Delete(j);
    return st;
}

char **
mmcl__shift_wheel_metadata(char **md, const mmcl__rgb_shift_args *a,
                           const mmcl__shift_wheel *wh, int scale)
{
    md = CSLSetNameValue(md, "PRODUCT", "rgb");
    md = CSLSetNameValue(md, "SOURCE", a->in);
    md = CSLSetNameValue(md, "SOURCE_PRODUCT", "coreg");
    md = CSLSetNameValue(md, "MODE", "shift_wheel");
    md = CSLSetNameValue(md, "COLORMAP", "shift_wheel");
    md = CSLSetNameValue(md, "SHIFT_RANGE", CPLSPrintf("%.6g", wh->range));
    md = CSLSetNameValue(md, "SHIFT_RANGE_FROM", wh->range_from);
    md = CSLSetNameValue(md, "SHIFT_HUE",
                         "direction of (dx, dy): 0 degrees (red) = +dx "
                         "(right), 90 degrees = +dy (down)");
    md = CSLSetNameValue(md, "SHIFT_STRENGTH",
                         "min(1, |shift| / SHIFT_RANGE) x confidence, mixed "
                         "with grey");
    md = CSLSetNameValue(md, "BLOCK_PIXELS", CPLSPrintf("%d", scale));
    md = CSLSetNameValue(md, "VALID_BLOCKS", CPLSPrintf("%zu", wh->n_est));
    if (a->over) {
        md = CSLSetNameValue(md, "OVER", a->over);
        md = CSLSetNameValue(md, "OVER_OPACITY",
                             CPLSPrintf("%g", OVER_OPACITY));
    } else {
        md = CSLSetNameValue(md, "VALID_PIXELS",
                             CPLSPrintf("%zu", wh->n_est));
    }
    md = CSLSetNameValue(md, "LEGEND",
                         a->legend_png ? CPLGetFilename(a->legend_png)
                                       : NULL);
    md = CSLSetNameValue(md, "MMCL_VERSION", mmcl_version());
    return md;
}

/* The picture, one band-sequential strip of block rows at a time. */
static mmcl_status
draw(mmcl_context *ctx, mmcl__writer *wr, const mmcl__shift_wheel *wh,
     int scale, mmcl_progress_fn progress, void *puser, double p1)
{
    int W = wh->w * scale;
    size_t plane = (size_t)W * (size_t)scale;
    unsigned char *buf = malloc(4 * plane);
    if (!buf)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    mmcl_status st = MMCL_OK;
    for (int by = 0; by < wh->h && st == MMCL_OK; by++) {
        for (int bx = 0; bx < wh->w; bx++) {
            const unsigned char *px =
                wh->rgba + 4 * ((size_t)by * wh->w + (size_t)bx);
            for (int c = 0; c < 4; c++)
                for (int y = 0; y < scale; y++)
                    memset(buf + c * plane + (size_t)y * W +
                               (size_t)bx * scale,
                           px[c], (size_t)scale);
        }
        st = mmcl__writer_write(ctx, wr, 0, by * scale, W, scale, buf);
        if (st == MMCL_OK && progress &&
            !progress(p1 * (by + 1) / wh->h, NULL, puser))
            st = mmcl__error(ctx, MMCL_ERR_CANCELLED, "cancelled");
    }
    free(buf);
    return st;
}

mmcl_status
mmcl__rgb_shift(mmcl_context *ctx, const mmcl__rgb_shift_args *a)
{
    mmcl__shift_wheel wh = {0};
    mmcl__writer *wr = NULL;
    mmcl__stage *ls[2] = {NULL, NULL};
    char **md = NULL;
    mmcl_status st = mmcl__shift_wheel_open(ctx, a, &wh);
    if (st != MMCL_OK)
        goto done;
    /* Each block as its square of optical pixels, within MAX_SIDE. */
    int side = wh.w > wh.h ? wh.w : wh.h;
    int scale = wh.block;
    if ((long long)side * scale > MAX_SIDE)
        scale = MAX_SIDE / side > 0 ? MAX_SIDE / side : 1;

    static const char *const names[4] = {"red", "green", "blue", "alpha"};
    mmcl__raster_spec spec = {0};
    spec.path = a->out;
    spec.format = a->format;
    spec.creation_options = a->co;
    spec.files = a->files;
    spec.product = "rgb";
    spec.width = wh.w * scale;
    spec.height = wh.h * scale;
    spec.n_bands = 4;
    spec.type = GDT_Byte;
    memcpy(spec.geotransform, wh.gt, sizeof(wh.gt));
    for (int k = 1; k < 6; k++)
        if (k != 3)
            spec.geotransform[k] /= scale;
    spec.srs_wkt = wh.wkt;
    spec.band_names = names;
    spec.block = 256;
    spec.n_threads = mmcl__opt_threads(a->o);
    wr = mmcl__writer_open(ctx, &spec);
    if (!wr) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    mmcl__rgb_set_rgba(mmcl__writer_dataset(wr));
    void *puser = NULL;
    mmcl_progress_fn progress = mmcl__opt_progress(a->o, &puser);
    double split = mmcl__writer_progress_split(wr, 0.0, 1.0);
    md = mmcl__shift_wheel_metadata(NULL, a, &wh, scale);
    st = mmcl__writer_set_metadata_list(ctx, wr, md);
    if (st == MMCL_OK)
        st = draw(ctx, wr, &wh, scale, progress, puser, split);
    if (st == MMCL_OK && a->legend_png) {
        ls[0] = mmcl__stage_create(ctx, a->files, a->legend_png);
        ls[1] = ls[0] ? mmcl__stage_create(ctx, a->files, a->legend_json)
                      : NULL;
        st = ls[1] ? mmcl__shift_wheel_legend(ctx, a, &wh, ls[0], ls[1])
                   : mmcl_context_errcode(ctx);
    }
    if (st == MMCL_OK)
        st = mmcl__writer_finish(ctx, wr, progress, puser, split, 1.0);
    mmcl__stage *stages[3] = {mmcl__writer_stage(wr), ls[0], ls[1]};
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, stages, a->legend_png ? 3 : 1, progress,
                                 puser, 1.0);
    if (st == MMCL_OK)
        mmcl__shift_wheel_log(ctx, &wh);
done:
    CSLDestroy(md);
    mmcl__stage_destroy(ls[0]);
    mmcl__stage_destroy(ls[1]);
    mmcl__writer_abort(wr);
    mmcl__shift_wheel_free(&wh);
    return st;
}

void
mmcl__shift_wheel_log(mmcl_context *ctx, const mmcl__shift_wheel *wh)
{
    mmcl__log(ctx, MMCL_LOG_INFO,
              "shift field of %d x %d blocks (%zu with an estimate): full "
              "colour at %.3g px (%s)",
              wh->w, wh->h, wh->n_est, wh->range, wh->range_from);
}
