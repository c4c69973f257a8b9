/* SPDX-License-Identifier: MIT */
/*
 * An embedding raster on the optical grid (embedding_raster_internal.h):
 * the band selection, the de-quantization and the grid source that puts
 * it on the grid.
 *
 * Where the de-quantization happens. A linear one (scale and offset)
 * commutes with every resampling GDAL offers that is a weighted mean
 * (near, bilinear, cubic, average, ...: weights summing to 1), so the
 * codes are resampled and the scale and offset applied to the result. A
 * non-linear one (AlphaEarth's signed square) does not: a mean of codes
 * is not the code of the mean. Those rasters, and the 8-bit signed ones
 * (GDAL 3.6 reads them as unsigned bytes), are read through a VRT whose
 * bands map each code to its value with a lookup table (a ComplexSource
 * LUT, exact at the integer codes) and whose nodata code becomes NaN; the
 * grid source then resamples de-quantized values, with any resampling.
 * An 8-bit signed raster on the grid needs no resampling: its raw bytes
 * are read as they are and looked up in a table of 256 values per band,
 * the same values at a fraction of the VRT's cost.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpl_conv.h>
#include <cpl_string.h>

#include "context_internal.h"
#include "embedding_raster_internal.h"
#include "gdal_util_internal.h"
#include "options_internal.h"

struct mmcl__embedding_raster {
    char *path;
    int k;
    int *bands;        /* (k) 1-based numbers in the raster */
    char **names;      /* (k) CSL */
    mmcl__dequantize deq;
    double *scale, *offset; /* (k): LINEAR, applied after the read */
    int apply_linear;
    char *vrt;         /* the de-quantizing VRT's XML, or NULL */
    float *table;      /* (k, 256) the values of raw bytes, or NULL */
    mmcl__grid_source *src;
};

struct mmcl__embedding_reader {
    const mmcl__embedding_raster *er;
    mmcl__grid_reader *g;
};

void
mmcl__embedding_options_get(mmcl__embedding_options *eo,
                            const mmcl_options *opts)
{
    eo->dequantize = mmcl__opt_str(opts, "DEQUANTIZE");
    eo->bands = mmcl__opt_str(opts, "EMBEDDING_BANDS");
    eo->resampling = mmcl__opt_str(opts, "EMBEDDING_RESAMPLING");
    eo->error_threshold = mmcl__opt_double(opts, "ERROR_THRESHOLD");
}

const char *
mmcl__dequantize_name(mmcl__dequantize d)
{
    switch (d) {
    case MMCL__DEQ_NONE:
        return "none";
    case MMCL__DEQ_LINEAR:
        return "linear";
    case MMCL__DEQ_ALPHAEARTH:
        return "alphaearth";
    default:
        return "auto";
    }
}

static int
parse_dequantize(const char *s, mmcl__dequantize *d)
{
    static const mmcl__dequantize all[] = {MMCL__DEQ_AUTO, MMCL__DEQ_NONE,
                                           MMCL__DEQ_LINEAR,
                                           MMCL__DEQ_ALPHAEARTH};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcasecmp(s ? s : "auto", mmcl__dequantize_name(all[i])) == 0) {
            *d = all[i];
            return 1;
        }
    return 0;
}

/* AlphaEarth Foundations' de-quantization of the code q (-127 .. 127), as
 * the Satellite Embedding dataset's documentation gives it
 * (developers.google.com/earth-engine/guides/aef_on_gcs_readme):
 * (q / 127.5)^2 with the sign of q. */
static double
alphaearth_value(double q)
{
    double v = q / 127.5;
    return q < 0 ? -v * v : v * v;
}

/* 8-bit signed bands: GDAL 3.6 gives them as unsigned bytes marked
 * PIXELTYPE=SIGNEDBYTE (raw code 200 is -56); later GDAL as GDT_Int8. */
static int
is_signed_byte(GDALRasterBandH b)
{
#if GDAL_VERSION_NUM >= 3070000
    if (GDALGetRasterDataType(b) == GDT_Int8)
        return 1;
#endif
    if (GDALGetRasterDataType(b) != GDT_Byte)
        return 0;
    const char *pt = GDALGetMetadataItem(b, "PIXELTYPE", "IMAGE_STRUCTURE");
    return pt && strcmp(pt, "SIGNEDBYTE") == 0;
}

static int
is_integer(GDALDataType t)
{
    return !GDALDataTypeIsFloating(t) && !GDALDataTypeIsComplex(t);
}

/* The band list @p spec of a raster of @p n bands into er->bands. */
static mmcl_status
select_bands(mmcl_context *ctx, mmcl__embedding_raster *er, GDALDatasetH ds,
             const char *spec)
{
    int n = GDALGetRasterCount(ds);
    int *b = mmcl__malloc_array(ctx, (size_t)n > 0 ? (size_t)n : 1, 1,
                                sizeof(int));
    if (!b)
        return MMCL_ERR_NO_MEMORY;
    er->bands = b;
    if (!spec || !*spec) {
        for (int i = 0; i < n; i++)
            b[i] = i + 1;
        er->k = n;
        return MMCL_OK;
    }
    char **tok = CSLTokenizeString2(spec, ",", CSLT_STRIPLEADSPACES |
                                                   CSLT_STRIPENDSPACES |
                                                   CSLT_ALLOWEMPTYTOKENS);
    mmcl_status st = MMCL_OK;
    int k = 0;
    for (int t = 0; tok && tok[t] && st == MMCL_OK; t++) {
        const char *s = tok[t];
        int lo = 0, hi = 0, used = 0;
        if (sscanf(s, "%d-%d%n", &lo, &hi, &used) == 2 && !s[used]) {
            /* a range */
        } else if (sscanf(s, "%d%n", &lo, &used) == 1 && !s[used]) {
            hi = lo;
        } else {
            lo = hi = 0;
            for (int i = 1; i <= n && !lo; i++)
                if (strcasecmp(GDALGetDescription(GDALGetRasterBand(ds, i)),
                               s) == 0)
                    lo = hi = i;
            if (!lo) {
                st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                                 "embedding raster '%s': no band '%s' (give "
                                 "band numbers 1 .. %d, ranges such as 1-8, "
                                 "or band descriptions)",
                                 er->path, s, n);
                break;
            }
        }
        if (lo < 1 || hi > n || lo > hi) {
            st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                             "embedding raster '%s' has %d band%s: no band "
                             "'%s'",
                             er->path, n, n == 1 ? "" : "s", s);
            break;
        }
        for (int i = lo; i <= hi; i++) {
            for (int j = 0; j < k; j++)
                if (b[j] == i) {
                    st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                                     "embedding raster '%s': band %d is "
                                     "selected twice in '%s'",
                                     er->path, i, spec);
                    break;
                }
            if (st != MMCL_OK)
                break;
            b[k++] = i;
        }
    }
    CSLDestroy(tok);
    if (st == MMCL_OK && k == 0)
        st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                         "embedding raster '%s': no band in '%s'", er->path,
                         spec);
    er->k = k;
    return st;
}

/* What AUTO means for this raster (see mmcl__dequantize). */
static mmcl__dequantize
auto_dequantize(GDALDatasetH ds, int any_scale)
{
    GDALRasterBandH b1 = GDALGetRasterBand(ds, 1);
    if (any_scale)
        return MMCL__DEQ_LINEAR;
    if (!is_signed_byte(b1))
        return MMCL__DEQ_NONE;
    int has_nd = 0;
    double nd = GDALGetRasterNoDataValue(b1, &has_nd);
    if (has_nd && nd == -128)
        return MMCL__DEQ_ALPHAEARTH;
    int n = GDALGetRasterCount(ds);
    if (n != 64)
        return MMCL__DEQ_NONE;
    for (int i = 0; i < n; i++) {
        char want[16];
        snprintf(want, sizeof(want), "A%02d", i);
        if (strcmp(GDALGetDescription(GDALGetRasterBand(ds, i + 1)), want))
            return MMCL__DEQ_NONE;
    }
    return MMCL__DEQ_ALPHAEARTH;
}

/* A band's value of the code @p q under the de-quantization. */
static double
dequantized(const mmcl__embedding_raster *er, int i, double q)
{
    if (er->deq == MMCL__DEQ_ALPHAEARTH)
        return alphaearth_value(q);
    if (er->deq == MMCL__DEQ_LINEAR)
        return q * er->scale[i] + er->offset[i];
    return q;
}

/* The VRT that de-quantizes the selected bands code by code (see the top
 * of the file); its nodata code becomes NaN. */
static mmcl_status
build_vrt(mmcl_context *ctx, mmcl__embedding_raster *er, GDALDatasetH ds,
          const char *wkt, const double gt[6], int signed_byte)
{
    mmcl__text t = {0};
    char *path = CPLEscapeString(er->path, -1, CPLES_XML);
    char *srs = CPLEscapeString(wkt ? wkt : "", -1, CPLES_XML);
    mmcl__text_add(&t, "<VRTDataset rasterXSize=\"%d\" rasterYSize=\"%d\">",
                   GDALGetRasterXSize(ds), GDALGetRasterYSize(ds));
    if (wkt && *wkt)
        mmcl__text_add(&t, "<SRS>%s</SRS>", srs);
    mmcl__text_add(&t,
                   "<GeoTransform>%.17g,%.17g,%.17g,%.17g,%.17g,%.17g"
                   "</GeoTransform>",
                   gt[0], gt[1], gt[2], gt[3], gt[4], gt[5]);
    for (int i = 0; i < er->k; i++) {
        GDALRasterBandH b = GDALGetRasterBand(ds, er->bands[i]);
        int has_nd = 0;
        double nd = GDALGetRasterNoDataValue(b, &has_nd);
        if (er->deq == MMCL__DEQ_ALPHAEARTH && !has_nd) {
            has_nd = 1;
            nd = -128;
        }
        /* Codes as GDAL reads them: raw bytes 0 .. 255 for a signed byte
         * band (raw r is the code r - 256 from 128 on). */
        int lo = signed_byte ? 0 : -128, hi = signed_byte ? 255 : 127;
        char *desc = CPLEscapeString(GDALGetDescription(b), -1, CPLES_XML);
        mmcl__text_add(&t,
                       "<VRTRasterBand dataType=\"Float32\" band=\"%d\">"
                       "<NoDataValue>nan</NoDataValue>"
                       "<Description>%s</Description>"
                       "<ComplexSource><SourceFilename relativeToVRT=\"0\">"
                       "%s</SourceFilename><SourceBand>%d</SourceBand>",
                       i + 1, desc, path, er->bands[i]);
        CPLFree(desc);
        if (has_nd)
            mmcl__text_add(&t, "<NODATA>%.17g</NODATA>",
                           signed_byte && nd < 0 ? nd + 256 : nd);
        mmcl__text_add(&t, "<LUT>");
        for (int r = lo; r <= hi; r++) {
            int q = signed_byte && r >= 128 ? r - 256 : r;
            mmcl__text_add(&t, "%s%d:%.9g", r > lo ? "," : "", r,
                           dequantized(er, i, q));
        }
        mmcl__text_add(&t, "</LUT></ComplexSource></VRTRasterBand>");
    }
    mmcl__text_add(&t, "</VRTDataset>");
    CPLFree(path);
    CPLFree(srs);
    if (t.failed) {
        free(t.s);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    er->vrt = t.s;
    return MMCL_OK;
}

/* The raster's CRS and geotransform; one without georeferencing cannot be
 * put on the grid, one without a CRS is taken to be in the grid's. */
static mmcl_status
georeferencing(mmcl_context *ctx, mmcl__embedding_raster *er,
               GDALDatasetH ds, const mmcl__grid *grid, const char **wkt,
               double gt[6])
{
    if (GDALGetGeoTransform(ds, gt) != CE_None)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "embedding raster '%s' has no geotransform: it "
                           "cannot be put on the optical grid",
                           er->path);
    *wkt = GDALGetProjectionRef(ds);
    if (!*wkt || !**wkt) {
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "embedding raster '%s' has no CRS; taken to be in the "
                  "optical CRS",
                  er->path);
        *wkt = grid->wkt;
    }
    return MMCL_OK;
}

/* The de-quantization asked for, checked against the raster; the scale
 * and offset of a linear one. */
static mmcl_status
choose_dequantize(mmcl_context *ctx, mmcl__embedding_raster *er,
                  GDALDatasetH ds, const char *asked)
{
    mmcl__dequantize d;
    if (!parse_dequantize(asked, &d))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "de-quantization must be none, linear, alphaearth "
                           "or auto, got '%s'",
                           asked);
    er->scale = mmcl__malloc_array(ctx, (size_t)er->k, 1, sizeof(double));
    er->offset = mmcl__malloc_array(ctx, (size_t)er->k, 1, sizeof(double));
    if (!er->scale || !er->offset)
        return MMCL_ERR_NO_MEMORY;
    int any_scale = 0;
    for (int i = 0; i < er->k; i++) {
        GDALRasterBandH b = GDALGetRasterBand(ds, er->bands[i]);
        int hs = 0, ho = 0;
        er->scale[i] = GDALGetRasterScale(b, &hs);
        er->offset[i] = GDALGetRasterOffset(b, &ho);
        if (!hs)
            er->scale[i] = 1;
        if (!ho)
            er->offset[i] = 0;
        any_scale |= (hs && er->scale[i] != 1) || (ho && er->offset[i] != 0);
    }
    if (d == MMCL__DEQ_AUTO)
        d = auto_dequantize(ds, any_scale);
    GDALRasterBandH b1 = GDALGetRasterBand(ds, er->bands[0]);
    if (d == MMCL__DEQ_ALPHAEARTH &&
        !is_integer(GDALGetRasterDataType(b1)))
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "embedding raster '%s' has %s bands: the "
                           "alphaearth de-quantization reads int8 codes",
                           er->path,
                           GDALGetDataTypeName(GDALGetRasterDataType(b1)));
    if (d == MMCL__DEQ_LINEAR && !any_scale)
        mmcl__log(ctx, MMCL_LOG_WARNING,
                  "embedding raster '%s' has no scale or offset: the linear "
                  "de-quantization leaves its values as they are",
                  er->path);
    er->deq = d;
    return MMCL_OK;
}

/* The grid source of the raster: its VRT when it has one, else its bands
 * as they are (raw bytes of an 8-bit signed raster, its nodata code
 * among them). */
static mmcl_status
open_source(mmcl_context *ctx, mmcl__embedding_raster *er, GDALDatasetH ds,
            const char *wkt, const double gt[6], const mmcl__grid *grid,
            const mmcl__embedding_options *o, int signed_byte)
{
    const char *path = er->path;
    char label[1100], subject[1100], rf[1100];
    snprintf(label, sizeof(label), "embedding '%s'", path);
    snprintf(subject, sizeof(subject), "the embedding raster '%s'", path);
    snprintf(rf, sizeof(rf), "cannot read the embedding raster '%s' at "
                             "window", path);
    mmcl__grid_raster r = {
        .name = er->vrt ? er->vrt : path,
        .role = "embedding",
        .label = label,
        .wkt = wkt,
        .width = GDALGetRasterXSize(ds),
        .height = GDALGetRasterYSize(ds),
        .band = 1,
        .n_bands = er->k,
        .band_list = er->vrt ? NULL : er->bands,
        .type = GDT_Float32,
        .validity = MMCL__GRID_NODATA,
        .place = MMCL__GRID_AUTO,
        .resampling = o->resampling ? o->resampling : "auto",
        .error_threshold = o->error_threshold,
        .no_overlap = subject,
        .read_failed = rf,
        .warp_failed = "cannot resample the embedding raster onto window",
    };
    memcpy(r.gt, gt, sizeof(r.gt));
    if (!er->vrt) {
        GDALRasterBandH b1 = GDALGetRasterBand(ds, er->bands[0]);
        r.nodata = GDALGetRasterNoDataValue(b1, &r.has_nodata);
        if (!r.has_nodata && er->deq == MMCL__DEQ_ALPHAEARTH) {
            r.has_nodata = 1;
            r.nodata = -128;
        }
        if (signed_byte && r.has_nodata && r.nodata < 0)
            r.nodata += 256; /* the raw byte */
        /* Without nodata, a real mask (a COG's internal mask) says which
         * pixels are invalid. */
        int flags = GDALGetMaskFlags(b1);
        if (!r.has_nodata && !(flags & GMF_ALL_VALID) &&
            (flags & GMF_PER_DATASET))
            r.validity = MMCL__GRID_MASK;
    }
    return mmcl__grid_source_open(ctx, &r, grid, &er->src);
}

/* The values of the raw bytes 0 .. 255 of each band of an 8-bit signed
 * raster read as it is. */
static mmcl_status
build_table(mmcl_context *ctx, mmcl__embedding_raster *er)
{
    er->table = mmcl__malloc_array(ctx, (size_t)er->k, 256, sizeof(float));
    if (!er->table)
        return MMCL_ERR_NO_MEMORY;
    for (int i = 0; i < er->k; i++)
        for (int r = 0; r < 256; r++)
            er->table[(size_t)i * 256 + r] =
                (float)dequantized(er, i, r >= 128 ? r - 256 : r);
    return MMCL_OK;
}

mmcl_status
mmcl__embedding_raster_open(mmcl_context *ctx, const char *path,
                            const mmcl__grid *grid,
                            const mmcl__embedding_options *o,
                            mmcl__embedding_raster **out)
{
    static const mmcl__embedding_options none = {0};
    *out = NULL;
    if (!o)
        o = &none;
    mmcl__embedding_raster *er = calloc(1, sizeof(*er));
    if (!er)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    er->path = mmcl__strdup(ctx, path ? path : "");
    GDALDatasetH ds = er->path ? mmcl__open_raster(ctx, path, "embedding")
                               : NULL;
    mmcl_status st = ds ? MMCL_OK : mmcl_context_errcode(ctx);
    const char *wkt = NULL;
    double gt[6];
    if (st == MMCL_OK)
        st = georeferencing(ctx, er, ds, grid, &wkt, gt);
    if (st == MMCL_OK)
        st = select_bands(ctx, er, ds, o->bands);
    if (st == MMCL_OK)
        st = choose_dequantize(ctx, er, ds, o->dequantize);
    for (int i = 0; st == MMCL_OK && i < er->k; i++) {
        const char *d = GDALGetDescription(GDALGetRasterBand(ds, er->bands[i]));
        er->names = CSLAddString(
            er->names, d && *d ? d : CPLSPrintf("band %d", er->bands[i]));
    }
    int coded = 0, signed_byte = 0;
    if (st == MMCL_OK) {
        signed_byte = is_signed_byte(GDALGetRasterBand(ds, er->bands[0]));
        coded = er->deq == MMCL__DEQ_ALPHAEARTH || signed_byte;
        er->apply_linear = !coded && er->deq == MMCL__DEQ_LINEAR;
    }
    /* Codes on the grid are read as they are and looked up in a table;
     * elsewhere through the de-quantizing VRT. */
    int table = coded && signed_byte &&
                GDALGetRasterDataType(GDALGetRasterBand(ds, er->bands[0])) ==
                    GDT_Byte;
    if (st == MMCL_OK && coded && !table)
        st = build_vrt(ctx, er, ds, wkt, gt, signed_byte);
    if (st == MMCL_OK)
        st = open_source(ctx, er, ds, wkt, gt, grid, o, signed_byte);
    if (st == MMCL_OK && table && !mmcl__grid_source_on_grid(er->src)) {
        mmcl__grid_source_close(er->src);
        er->src = NULL;
        st = build_vrt(ctx, er, ds, wkt, gt, signed_byte);
        if (st == MMCL_OK)
            st = open_source(ctx, er, ds, wkt, gt, grid, o, signed_byte);
    } else if (st == MMCL_OK && table) {
        st = build_table(ctx, er);
    }
    if (ds)
        GDALClose(ds);
    if (st != MMCL_OK) {
        mmcl__embedding_raster_close(er);
        return st;
    }
    *out = er;
    return MMCL_OK;
}

void
mmcl__embedding_raster_close(mmcl__embedding_raster *er)
{
    if (!er)
        return;
    mmcl__grid_source_close(er->src);
    free(er->path);
    free(er->bands);
    CSLDestroy(er->names);
    free(er->scale);
    free(er->offset);
    free(er->vrt);
    free(er->table);
    free(er);
}

const char *
mmcl__embedding_raster_path(const mmcl__embedding_raster *er)
{
    return er->path;
}

int
mmcl__embedding_raster_bands(const mmcl__embedding_raster *er)
{
    return er->k;
}

const char *
mmcl__embedding_raster_band_name(const mmcl__embedding_raster *er, int i)
{
    return er->names[i];
}

int
mmcl__embedding_raster_band_number(const mmcl__embedding_raster *er, int i)
{
    return er->bands[i];
}

mmcl__dequantize
mmcl__embedding_raster_dequantize(const mmcl__embedding_raster *er)
{
    return er->deq;
}

const char *
mmcl__embedding_raster_resampling(const mmcl__embedding_raster *er)
{
    return mmcl__grid_source_resampling(er->src);
}

int
mmcl__embedding_raster_on_grid(const mmcl__embedding_raster *er)
{
    return mmcl__grid_source_on_grid(er->src);
}

mmcl__embedding_reader *
mmcl__embedding_reader_create(mmcl_context *ctx,
                              const mmcl__embedding_raster *er)
{
    mmcl__embedding_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    r->er = er;
    r->g = mmcl__grid_reader_create(ctx, er->src);
    if (!r->g) {
        free(r);
        return NULL;
    }
    return r;
}

void
mmcl__embedding_reader_destroy(mmcl__embedding_reader *r)
{
    if (!r)
        return;
    mmcl__grid_reader_destroy(r->g);
    free(r);
}

mmcl_status
mmcl__embedding_read(mmcl_context *ctx, mmcl__embedding_reader *r, int x,
                     int y, int w, int h, float *out, uint8_t *valid)
{
    const mmcl__embedding_raster *er = r->er;
    mmcl_status st = mmcl__grid_reader_read(ctx, r->g, x, y, w, h, out, valid);
    size_t plane = (size_t)w * h;
    if (st == MMCL_OK && er->table)
        for (int b = 0; b < er->k; b++) {
            const float *t = er->table + (size_t)256 * b;
            float *p = out + plane * b;
            for (size_t i = 0; i < plane; i++)
                if (!isnan(p[i]))
                    p[i] = t[(int)p[i] & 255];
        }
    if (st != MMCL_OK || !er->apply_linear)
        return st;
    for (int b = 0; b < er->k; b++) {
        float s = (float)er->scale[b], o = (float)er->offset[b];
        float *p = out + plane * b;
        for (size_t i = 0; i < plane; i++)
            p[i] = p[i] * s + o;
    }
    return MMCL_OK;
}
