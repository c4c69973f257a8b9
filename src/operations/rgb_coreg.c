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
 * pixels, on the optical grid, so that each block is seen.
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

/* The options of the other modes have no meaning here: refused, so that
 * a user does not believe they were applied. */
static mmcl_status
check_options(mmcl_context *ctx, const mmcl__rgb_shift_args *a)
{
    const mmcl_options *o = a->o;
    static const char *const keys[] = {"BANDS", "LAZY", "LEGEND_INSET"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = mmcl__opt_str(o, keys[i]);
        int given = strcmp(keys[i], "BANDS") == 0 ? v != NULL
                                                  : mmcl__opt_bool(o, keys[i]);
        if (given)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "'%s' is a shift field (mmcl coreg): it is "
                               "drawn as a colour wheel of dx, dy and "
                               "confidence, without %s",
                               a->in, mmcl__opt_name(ctx, keys[i]));
    }
    static const char *const autos[] = {"MODE", "COLORMAP"};
    for (size_t i = 0; i < 2; i++)
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

/* The legend: the wheel as a PNG, and its JSON description. */
static mmcl_status
write_legend(mmcl_context *ctx, const mmcl__rgb_shift_args *a, double range,
             const char *range_from, mmcl__stage *png_stage,
             mmcl__stage *json_stage)
{
    unsigned char *rgba = malloc((size_t)4 * MMCL__LEGEND_W * MMCL__LEGEND_H);
    if (!rgba)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    const char *title = "Shift of the SAR against the optical";
    const char *font = mmcl__legend_wheel_draw(rgba, range, title);
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
    cJSON_AddNumberToObject(j, "range", range);
    cJSON_AddStringToObject(j, "range_from", range_from);
    cJSON_AddStringToObject(
        j, "note",
        "hue: direction of (dx, dy), 0 degrees (red) = +dx (right), 90 "
        "degrees = +dy (down); mixed with grey by min(1, |shift| / range) x "
        "confidence; transparent: no estimate");
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

/* The picture's metadata: how its colours were made. */
static mmcl_status
set_metadata(mmcl_context *ctx, mmcl__writer *wr,
             const mmcl__rgb_shift_args *a, double range,
             const char *range_from, int scale, size_t n_est)
{
    char **md = NULL;
    md = CSLSetNameValue(md, "PRODUCT", "rgb");
    md = CSLSetNameValue(md, "SOURCE", a->in);
    md = CSLSetNameValue(md, "SOURCE_PRODUCT", "coreg");
    md = CSLSetNameValue(md, "MODE", "shift_wheel");
    md = CSLSetNameValue(md, "COLORMAP", "shift_wheel");
    md = CSLSetNameValue(md, "SHIFT_RANGE", CPLSPrintf("%.6g", range));
    md = CSLSetNameValue(md, "SHIFT_RANGE_FROM", range_from);
    md = CSLSetNameValue(md, "SHIFT_HUE",
                         "direction of (dx, dy): 0 degrees (red) = +dx "
                         "(right), 90 degrees = +dy (down)");
    md = CSLSetNameValue(md, "SHIFT_STRENGTH",
                         "min(1, |shift| / SHIFT_RANGE) x confidence, mixed "
                         "with grey");
    md = CSLSetNameValue(md, "BLOCK_PIXELS", CPLSPrintf("%d", scale));
    md = CSLSetNameValue(md, "VALID_PIXELS", CPLSPrintf("%zu", n_est));
    if (a->legend_png)
        md = CSLSetNameValue(md, "LEGEND", CPLGetFilename(a->legend_png));
    md = CSLSetNameValue(md, "MMCL_VERSION", mmcl_version());
    mmcl_status st = mmcl__writer_set_metadata_list(ctx, wr, md);
    CSLDestroy(md);
    return st;
}

/* The picture, one band-sequential strip of block rows at a time. */
static mmcl_status
draw(mmcl_context *ctx, mmcl__writer *wr, const shift_field *f, int scale,
     double range, mmcl_progress_fn progress, void *puser, double p1)
{
    int W = f->w * scale;
    size_t plane = (size_t)W * (size_t)scale;
    unsigned char *buf = malloc(4 * plane);
    if (!buf)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    mmcl_status st = MMCL_OK;
    for (int by = 0; by < f->h && st == MMCL_OK; by++) {
        for (int bx = 0; bx < f->w; bx++) {
            size_t i = (size_t)by * f->w + bx;
            unsigned char px[4] = {0, 0, 0, 0};
            if (valid_block(f, i)) {
                mmcl__shift_colour(f->dx[i], f->dy[i], f->conf[i], range, px);
                px[3] = 255;
            }
            for (int c = 0; c < 4; c++)
                for (int y = 0; y < scale; y++)
                    memset(buf + c * plane + (size_t)y * W +
                               (size_t)bx * scale,
                           px[c], (size_t)scale);
        }
        st = mmcl__writer_write(ctx, wr, 0, by * scale, W, scale, buf);
        if (st == MMCL_OK && progress &&
            !progress(p1 * (by + 1) / f->h, NULL, puser))
            st = mmcl__error(ctx, MMCL_ERR_CANCELLED, "cancelled");
    }
    free(buf);
    return st;
}

mmcl_status
mmcl__rgb_shift(mmcl_context *ctx, const mmcl__rgb_shift_args *a)
{
    shift_field f = {0};
    mmcl__writer *wr = NULL;
    mmcl__stage *ls[2] = {NULL, NULL};
    mmcl_status st = check_options(ctx, a);
    if (st == MMCL_OK)
        st = read_field(ctx, a->in, &f);
    if (st != MMCL_OK)
        goto done;
    size_t n_est = 0;
    double range = a->range_hi;
    const char *range_from = "--range";
    if (!a->range_given) {
        range = auto_range(ctx, &f, &n_est, &st);
        range_from = "98th percentile of the estimated shifts, at least 0.5 px";
    } else {
        (void)auto_range(ctx, &f, &n_est, &st);
    }
    if (st != MMCL_OK)
        goto done;
    /* Each block as its square of optical pixels, within MAX_SIDE. */
    int side = f.w > f.h ? f.w : f.h;
    int scale = f.block;
    if ((long long)side * scale > MAX_SIDE)
        scale = MAX_SIDE / side > 0 ? MAX_SIDE / side : 1;

    static const char *const names[4] = {"red", "green", "blue", "alpha"};
    mmcl__raster_spec spec = {0};
    spec.path = a->out;
    spec.format = a->format;
    spec.creation_options = a->co;
    spec.files = a->files;
    spec.product = "rgb";
    spec.width = f.w * scale;
    spec.height = f.h * scale;
    spec.n_bands = 4;
    spec.type = GDT_Byte;
    memcpy(spec.geotransform, f.gt, sizeof(f.gt));
    for (int k = 1; k < 6; k++)
        if (k != 3)
            spec.geotransform[k] /= scale;
    spec.srs_wkt = f.wkt;
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
    st = set_metadata(ctx, wr, a, range, range_from, scale, n_est);
    if (st == MMCL_OK)
        st = draw(ctx, wr, &f, scale, range, progress, puser, split);
    if (st == MMCL_OK && a->legend_png) {
        ls[0] = mmcl__stage_create(ctx, a->files, a->legend_png);
        ls[1] = ls[0] ? mmcl__stage_create(ctx, a->files, a->legend_json)
                      : NULL;
        st = ls[1] ? write_legend(ctx, a, range, range_from, ls[0], ls[1])
                   : mmcl_context_errcode(ctx);
    }
    if (st == MMCL_OK)
        st = mmcl__writer_finish(ctx, wr, progress, puser, split, 1.0);
    mmcl__stage *stages[3] = {mmcl__writer_stage(wr), ls[0], ls[1]};
    if (st == MMCL_OK)
        st = mmcl__stages_commit(ctx, stages, a->legend_png ? 3 : 1, progress,
                                 puser, 1.0);
    if (st == MMCL_OK)
        mmcl__log(ctx, MMCL_LOG_INFO,
                  "shift field of %d x %d blocks (%zu with an estimate): full "
                  "colour at %.3g px (%s)",
                  f.w, f.h, n_est, range, range_from);
done:
    mmcl__stage_destroy(ls[0]);
    mmcl__stage_destroy(ls[1]);
    mmcl__writer_abort(wr);
    field_free(&f);
    return st;
}
