/* SPDX-License-Identifier: MIT */
/*
 * SAR preprocessing: dB conversion and the Lee speckle filter, streamed in
 * strips of rows over the SAR's own grid.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cpl_string.h>

#include "context_internal.h"
#include "gdal_util_internal.h"
#include "sar_internal.h"

mmcl_status
mmcl__speckle_parse(mmcl_context *ctx, const char *spec, mmcl__speckle *out)
{
    out->window = 0;
    out->enl = 4.4; /* Sentinel-1 IW GRD high resolution, about 4.4 looks */
    if (!spec || !*spec || EQUAL(spec, "none"))
        return MMCL_OK;
    char *end;
    if (!EQUALN(spec, "lee:", 4))
        goto bad;
    long n = strtol(spec + 4, &end, 10);
    if (end == spec + 4 || n < 3 || n > 101 || n % 2 == 0)
        goto bad;
    if (*end == ':') {
        const char *e = end + 1;
        double enl = strtod(e, &end);
        if (end == e || !(enl > 0.0) || !isfinite(enl))
            goto bad;
        out->enl = enl;
    }
    if (*end)
        goto bad;
    out->window = (int)n;
    return MMCL_OK;
bad:
    return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                       "invalid speckle filter '%s': expected lee:N or "
                       "lee:N:ENL with an odd window N from 3 to 101 and "
                       "ENL > 0",
                       spec);
}

mmcl_status
mmcl__lee_filter(mmcl_context *ctx, float *out, const float *in, int w, int h,
                 int row0, int row1, const mmcl__speckle *sp)
{
    int r = sp->window / 2;
    double cu2 = 1.0 / sp->enl;
    /* Column sums over the window rows, updated per row: O(w) per row for
     * the vertical part, O(window) per pixel for the horizontal part. */
    double *s1 = mmcl__calloc_array(ctx, (size_t)w, 3, sizeof(double));
    if (!s1)
        return MMCL_ERR_NO_MEMORY;
    double *s2 = s1 + w, *cnt = s2 + w;

    for (int y = row0; y < row1; y++) {
        int y0 = y - r < 0 ? 0 : y - r;
        int y1 = y + r >= h ? h - 1 : y + r;
        memset(s1, 0, (size_t)w * 3 * sizeof(double));
        for (int yy = y0; yy <= y1; yy++) {
            const float *row = in + (size_t)yy * w;
            for (int x = 0; x < w; x++) {
                double v = row[x];
                if (!isnan(v)) {
                    s1[x] += v;
                    s2[x] += v * v;
                    cnt[x] += 1.0;
                }
            }
        }
        const float *row = in + (size_t)y * w;
        float *o = out + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            if (isnan(row[x])) {
                o[x] = NAN;
                continue;
            }
            int x0 = x - r < 0 ? 0 : x - r;
            int x1 = x + r >= w ? w - 1 : x + r;
            double a = 0, b = 0, c = 0;
            for (int xx = x0; xx <= x1; xx++) {
                a += s1[xx];
                b += s2[xx];
                c += cnt[xx];
            }
            double m = a / c;
            double v = b / c - m * m;
            if (v <= 0.0) {
                o[x] = (float)m;
                continue;
            }
            double var_x = (v - m * m * cu2) / (1.0 + cu2);
            double k = var_x / v;
            k = k < 0.0 ? 0.0 : (k > 1.0 ? 1.0 : k);
            o[x] = (float)(m + k * (row[x] - m));
        }
    }
    free(s1);
    return MMCL_OK;
}

/* Reads rows [y0, y1) of all bands as float with NaN for invalid. */
static mmcl_status
read_rows(mmcl_context *ctx, GDALDatasetH ds, int y0, int y1, float *buf,
          uint8_t *mask)
{
    int w = GDALGetRasterXSize(ds), n = GDALGetRasterCount(ds);
    int h = y1 - y0;
    size_t plane = (size_t)w * h;
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    CPLErr err = GDALDatasetRasterIO(ds, GF_Read, 0, y0, w, h, buf, w, h,
                                     GDT_Float32, n, NULL, 0, 0, 0);
    for (int b = 0; b < n && err == CE_None; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        float *p = buf + plane * b;
        int has_nd = 0;
        double nd = GDALGetRasterNoDataValue(band, &has_nd);
        int flags = GDALGetMaskFlags(band);
        if (!(flags & (GMF_ALL_VALID | GMF_NODATA))) {
            err = GDALRasterIO(GDALGetMaskBand(band), GF_Read, 0, y0, w, h,
                               mask, w, h, GDT_Byte, 0, 0);
            for (size_t i = 0; i < plane && err == CE_None; i++)
                if (!mask[i])
                    p[i] = NAN;
        }
        if (has_nd)
            for (size_t i = 0; i < plane; i++)
                if (p[i] == (float)nd)
                    p[i] = NAN;
    }
    mmcl__gdal_capture_end(&cap);
    if (err != CE_None)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot read SAR rows %d-%d: %s",
                           y0, y1, mmcl__gdal_msg(&cap));
    return MMCL_OK;
}

mmcl_status
mmcl__sar_preprocess(mmcl_context *ctx, GDALDatasetH src, const char *path,
                     mmcl__sar_transform tr, const mmcl__speckle *sp)
{
    int w = GDALGetRasterXSize(src), h = GDALGetRasterYSize(src);
    int n = GDALGetRasterCount(src);
    int r = sp->window / 2;
    const int strip = 256;
    mmcl_status st = MMCL_OK;
    float *in = NULL, *out = NULL;
    uint8_t *mask = NULL;
    GDALDatasetH dst = NULL;

    size_t rows = (size_t)strip + 2 * (size_t)r;
    in = mmcl__malloc_array(ctx, rows * (size_t)n, (size_t)w, sizeof(float));
    out = mmcl__malloc_array(ctx, rows, (size_t)w, sizeof(float));
    mask = mmcl__malloc_array(ctx, rows, (size_t)w, 1);
    if (!in || !out || !mask) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }

    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    char **co = CSLSetNameValue(NULL, "TILED", "YES");
    co = CSLSetNameValue(co, "BIGTIFF", "IF_SAFER");
    dst = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, n, GDT_Float32,
                     co);
    CSLDestroy(co);
    if (dst) {
        double gt[6];
        if (GDALGetGeoTransform(src, gt) == CE_None)
            GDALSetGeoTransform(dst, gt);
        GDALSetProjection(dst, GDALGetProjectionRef(src));
        for (int b = 0; b < n; b++) {
            GDALRasterBandH band = GDALGetRasterBand(dst, b + 1);
            GDALSetRasterNoDataValue(band, NAN);
            GDALSetDescription(band, GDALGetDescription(
                                         GDALGetRasterBand(src, b + 1)));
        }
    }
    mmcl__gdal_capture_end(&cap);
    if (!dst) {
        st = mmcl__error(ctx, MMCL_ERR_IO,
                         "cannot create temporary SAR file '%s': %s", path,
                         mmcl__gdal_msg(&cap));
        goto done;
    }

    for (int y = 0; y < h && st == MMCL_OK; y += strip) {
        int y1 = y + strip > h ? h : y + strip;
        int ry0 = y - r < 0 ? 0 : y - r;
        int ry1 = y1 + r > h ? h : y1 + r;
        int nr = ry1 - ry0;
        size_t plane = (size_t)nr * w;
        st = read_rows(ctx, src, ry0, ry1, in, mask);
        for (int b = 0; b < n && st == MMCL_OK; b++) {
            float *p = in + plane * b;
            /* The filter works on linear intensity; data given in dB (or
             * with negative values, which power cannot have) is filtered
             * in the linear domain and converted back. */
            int in_db = tr == MMCL__SAR_TO_LINEAR;
            if (tr == MMCL__SAR_NONE && sp->window) {
                for (size_t i = 0; i < plane && !in_db; i++)
                    if (p[i] < 0.0f)
                        in_db = 1;
            }
            if (in_db)
                for (size_t i = 0; i < plane; i++)
                    p[i] = (float)pow(10.0, p[i] / 10.0);
            float *res = p;
            if (sp->window) {
                st = mmcl__lee_filter(ctx, out, p, w, nr, y - ry0, y1 - ry0,
                                      sp);
                res = out;
            }
            int want_db = tr == MMCL__SAR_TO_DB ||
                          (tr == MMCL__SAR_NONE && in_db);
            float *rows_out = res + (size_t)(y - ry0) * w;
            size_t n_out = (size_t)(y1 - y) * w;
            if (want_db)
                for (size_t i = 0; i < n_out; i++)
                    rows_out[i] = rows_out[i] > 0.0f
                                      ? (float)(10.0 * log10(rows_out[i]))
                                      : NAN;
            if (st != MMCL_OK)
                break;
            mmcl__gdal_capture_begin(&cap, ctx);
            CPLErr err = GDALRasterIO(GDALGetRasterBand(dst, b + 1), GF_Write,
                                      0, y, w, y1 - y, rows_out, w, y1 - y,
                                      GDT_Float32, 0, 0);
            mmcl__gdal_capture_end(&cap);
            if (err != CE_None)
                st = mmcl__error(ctx, MMCL_ERR_IO,
                                 "cannot write temporary SAR file '%s': %s",
                                 path, mmcl__gdal_msg(&cap));
        }
    }

done:
    if (dst) {
        GDALClose(dst);
        if (st != MMCL_OK)
            VSIUnlink(path);
    }
    free(in);
    free(out);
    free(mask);
    return st;
}
