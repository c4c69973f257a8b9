/* SPDX-License-Identifier: MIT */
/*
 * The raster pair: opening and checking both modalities, stacking optical
 * files, the lattice transform, and window reads (optical, warped SAR and
 * the joint validity mask) with reflect padding.
 */
#define _DEFAULT_SOURCE /* O_CLOEXEC */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal_alg.h>
#include <gdal_utils.h>
#include <gdalwarper.h>
#include <ogr_srs_api.h>

#include "context_internal.h"
#include "gdal_util_internal.h"
#include "options_internal.h"
#include "output_internal.h"
#include "pair_internal.h"
#include "sar_internal.h"

struct mmcl__pair {
    char *optical_name; /* a path, or the XML of the stacking VRT */
    char opt_label[600], sar_label[600]; /* the inputs, for messages */
    int width, height;
    double gt[6];
    char *wkt;
    int n_opt;
    char **opt_names;

    char *sar_name; /* the SAR to warp: the input, or its preprocessed copy */
    /* The preprocessed copy: written in a private folder, then opened and
     * unlinked at once, and read as /proc/self/fd/<sar_fd>, so that no
     * name of it is left on disk (kill -9 included). Where /proc is not
     * there, it stays in its folder (sar_tmpdir) until the pair closes. */
    int sar_fd;       /* -1: none */
    char *sar_tmpdir; /* the private folder while it exists, or NULL */
    char *sar_wkt;
    double sar_gt[6];
    int sar_width, sar_height;
    int n_sar;
    char **sar_names;
    int sar_has_nodata;
    double sar_nodata;

    GDALResampleAlg resampling;
    char resampling_name[16];
    char resampling_opt[16]; /* as asked ("auto", ...), for derived pairs */
    double error_threshold;
    /* The warper's XSCALE / YSCALE, for the whole grid (warp_scales). */
    double xscale, yscale;
    /* The SAR is on the optical grid (same size, pixels onto pixels): it
     * is read as it is, without the warper, whatever the resampling. */
    int sar_on_grid;

    /* Lattice of SAR pixel coordinates at optical pixel positions
     * (i*step, j*step), i = 0..nx-1, j = 0..ny-1; step 0 = exact. */
    int step, nx, ny;
    double *lat_x, *lat_y;
};

struct mmcl__pair_reader {
    const mmcl__pair *pair;
    GDALDatasetH opt;
    GDALDatasetH sar;
    void *exact; /* GenImgProj transformer optical pixel -> SAR pixel */
    float *scratch_opt; /* clipped window before reflect padding */
    float *scratch_sar;
    uint8_t *scratch_mask;
    size_t scratch_pixels;
};

/* ---- opening ---------------------------------------------------------- */

static mmcl_status
check_georef(mmcl_context *ctx, GDALDatasetH ds, const char *role,
             const char *path, double gt[6])
{
    if (GDALGetGeoTransform(ds, gt) != CE_None)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "%s raster '%s' has no geotransform (a raster "
                           "georeferenced by GCPs must be warped first)",
                           role, path);
    const char *wkt = GDALGetProjectionRef(ds);
    if (!wkt || !*wkt)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "%s raster '%s' has no CRS", role, path);
    return MMCL_OK;
}

static char **
band_names(GDALDatasetH ds, const char *prefix, char **names)
{
    for (int b = 0; b < GDALGetRasterCount(ds); b++) {
        const char *d = GDALGetDescription(GDALGetRasterBand(ds, b + 1));
        char buf[64];
        if (!d || !*d) {
            snprintf(buf, sizeof(buf), "%s_%d", prefix, CSLCount(names) + 1);
            d = buf;
        }
        names = CSLAddString(names, d);
    }
    return names;
}

/* Refuses a complex band (CInt16, CInt32, CFloat32, CFloat64): GDAL
 * would hand over its real part, which is neither an intensity nor a
 * reflectance. The message gives a GDAL command that converts it. */
static mmcl_status
check_real(mmcl_context *ctx, GDALDatasetH ds, int sar, const char *path)
{
    for (int b = 1; b <= GDALGetRasterCount(ds); b++) {
        GDALDataType t = GDALGetRasterDataType(GDALGetRasterBand(ds, b));
        if (!GDALDataTypeIsComplex(t))
            continue;
        if (sar)
            return mmcl__error(
                ctx, MMCL_ERR_UNSUPPORTED,
                "SAR '%s' band %d is complex (%s): mmcl needs intensity or "
                "amplitude in dB or linear power; convert it first (e.g. "
                "gdal_translate -ot Float32 DERIVED_SUBDATASET:INTENSITY:%s "
                "intensity.tif gives the linear power |z|^2, which "
                "align and train turn into dB with --sar-db)",
                path, b, GDALGetDataTypeName(t), path);
        return mmcl__error(
            ctx, MMCL_ERR_UNSUPPORTED,
            "optical '%s' band %d is complex (%s): mmcl needs real-valued "
            "bands (reflectances or digital numbers); convert it first (e.g. "
            "gdal_translate -ot Float32 DERIVED_SUBDATASET:AMPLITUDE:%s "
            "amplitude.tif)",
            path, b, GDALGetDataTypeName(t), path);
    }
    return MMCL_OK;
}

/* Several files are stacked one band each: a file of more bands would
 * lose all but its first without a word. */
static mmcl_status
check_single_band(mmcl_context *ctx, GDALDatasetH ds, const char *role,
                  const char *path)
{
    int n = GDALGetRasterCount(ds);
    if (n == 1)
        return MMCL_OK;
    return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                       "%s file '%s' has %d bands: several %s files are "
                       "stacked one band each; give a multi-band %s raster "
                       "alone, or one file per band",
                       role, path, n, role, role);
}

/*
 * Refuses one file given twice, or as both optical and SAR: the same file
 * by device and inode, so a symbolic link, a hard link and another
 * spelling of the name are caught. Names that are no file (VRT text,
 * /vsi paths, connection strings) are left to GDAL.
 */
static mmcl_status
check_distinct(mmcl_context *ctx, const char *const *optical, size_t n_optical,
               const char *const *sar, size_t n_sar)
{
    size_t n = n_optical + n_sar;
    struct stat *sb = mmcl__calloc_array(ctx, n, 1, sizeof(*sb));
    char *is_file = mmcl__calloc_array(ctx, n, 1, 1);
    mmcl_status st = sb && is_file ? MMCL_OK : MMCL_ERR_NO_MEMORY;
    for (size_t i = 0; i < n && st == MMCL_OK; i++) {
        const char *name = i < n_optical ? optical[i] : sar[i - n_optical];
        is_file[i] = name && *name && stat(name, &sb[i]) == 0;
    }
    for (size_t j = 0; j < n && st == MMCL_OK; j++) {
        for (size_t i = 0; i < j && st == MMCL_OK; i++) {
            if (!is_file[i] || !is_file[j] || sb[i].st_dev != sb[j].st_dev ||
                sb[i].st_ino != sb[j].st_ino)
                continue;
            int sar_i = i >= n_optical, sar_j = j >= n_optical;
            const char *a = sar_i ? sar[i - n_optical] : optical[i];
            const char *b = sar_j ? sar[j - n_optical] : optical[j];
            int same_name = strcmp(a, b) == 0;
            if (sar_i != sar_j && same_name)
                st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                                 "'%s' is given as both optical and SAR: the "
                                 "two modalities must be different rasters",
                                 a);
            else if (sar_i != sar_j)
                st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                                 "optical '%s' and SAR '%s' are the same file "
                                 "(a link or another name of it): the two "
                                 "modalities must be different rasters",
                                 a, b);
            else
                st = mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                                 "%s file '%s' is given twice%s%s%s; give "
                                 "each file once",
                                 sar_i ? "SAR" : "optical", a,
                                 same_name ? "" : " (also as '",
                                 same_name ? "" : b, same_name ? "" : "')");
        }
    }
    free(sb);
    free(is_file);
    return st;
}

/* Builds the optical stack: one dataset as is, several on the finest grid
 * among them through a VRT whose XML each reader opens on its own. */
static mmcl_status
open_optical(mmcl_context *ctx, mmcl__pair *p, const char *const *paths,
             size_t n, const char *stack_resampling)
{
    mmcl_status st = MMCL_OK;
    GDALDatasetH *ds = mmcl__calloc_array(ctx, n, 1, sizeof(GDALDatasetH));
    if (!ds)
        return MMCL_ERR_NO_MEMORY;
    OGRSpatialReferenceH first_srs = NULL;
    for (size_t i = 0; i < n && st == MMCL_OK; i++) {
        double gt[6];
        ds[i] = mmcl__open_raster(ctx, paths[i], "optical");
        if (!ds[i]) {
            st = mmcl_context_errcode(ctx);
            break;
        }
        st = check_georef(ctx, ds[i], "optical", paths[i], gt);
        if (st == MMCL_OK)
            st = check_real(ctx, ds[i], 0, paths[i]);
        if (st == MMCL_OK && n > 1)
            st = check_single_band(ctx, ds[i], "optical", paths[i]);
        if (st != MMCL_OK)
            break;
        OGRSpatialReferenceH srs = GDALGetSpatialRef(ds[i]);
        if (i == 0)
            first_srs = srs;
        else if (!OSRIsSame(first_srs, srs))
            st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                             "optical files '%s' and '%s' are on different "
                             "CRS; stacking needs one CRS",
                             paths[0], paths[i]);
    }
    if (st != MMCL_OK)
        goto done;

    if (n == 1) {
        p->optical_name = mmcl__strdup(ctx, paths[0]);
        p->opt_names = band_names(ds[0], "optical", NULL);
    } else {
        char **argv = NULL;
        argv = CSLAddString(argv, "-separate");
        argv = CSLAddString(argv, "-resolution");
        argv = CSLAddString(argv, "highest");
        argv = CSLAddString(argv, "-r");
        argv = CSLAddString(argv, stack_resampling);
        GDALBuildVRTOptions *vo = GDALBuildVRTOptionsNew(argv, NULL);
        CSLDestroy(argv);
        mmcl__gdal_capture cap;
        mmcl__gdal_capture_begin(&cap, ctx);
        int usage_error = 0;
        GDALDatasetH vrt = vo ? GDALBuildVRT("", (int)n, ds, NULL, vo,
                                             &usage_error)
                              : NULL;
        char **xml = vrt ? GDALGetMetadata(vrt, "xml:VRT") : NULL;
        if (xml && xml[0])
            p->optical_name = mmcl__strdup(ctx, xml[0]);
        mmcl__gdal_capture_end(&cap);
        GDALBuildVRTOptionsFree(vo);
        for (size_t i = 0; i < n; i++) {
            /* Band names: the file's band description, else its name. */
            const char *d = GDALGetDescription(GDALGetRasterBand(ds[i], 1));
            p->opt_names = CSLAddString(p->opt_names,
                                        d && *d ? d : CPLGetBasename(paths[i]));
        }
        if (vrt)
            GDALClose(vrt);
        if (!p->optical_name) {
            st = mmcl__error(ctx, MMCL_ERR_IO,
                             "cannot stack the %zu optical files: %s", n,
                             mmcl__gdal_msg(&cap));
            goto done;
        }
    }
    GDALDatasetH o = mmcl__open_raster(ctx, p->optical_name, "optical stack");
    if (!o) {
        st = mmcl_context_errcode(ctx);
        goto done;
    }
    p->width = GDALGetRasterXSize(o);
    p->height = GDALGetRasterYSize(o);
    p->n_opt = GDALGetRasterCount(o);
    GDALGetGeoTransform(o, p->gt);
    p->wkt = mmcl__strdup(ctx, GDALGetProjectionRef(o));
    GDALClose(o);
    if (!p->wkt)
        st = MMCL_ERR_NO_MEMORY;
done:
    for (size_t i = 0; i < n; i++)
        if (ds[i])
            GDALClose(ds[i]);
    free(ds);
    return st;
}

/*
 * Writes the SAR @p ds preprocessed (@p tr, @p sp) in a private folder of
 * $TMPDIR (mkdtemp: no predictable name is opened in a shared folder), and
 * sets p->sar_name to what the readers open.
 */
static mmcl_status
write_preprocessed_sar(mmcl_context *ctx, mmcl__pair *p, GDALDatasetH ds,
                       mmcl__sar_transform tr, const mmcl__speckle *sp)
{
    p->sar_tmpdir = mmcl__tempdir_create(ctx, "sar");
    if (!p->sar_tmpdir)
        return mmcl_context_errcode(ctx);
    char *file = mmcl__strdup(ctx, CPLFormFilename(p->sar_tmpdir, "sar.tif",
                                                   NULL));
    if (!file)
        return MMCL_ERR_NO_MEMORY;
    mmcl_status st = mmcl__sar_preprocess(ctx, ds, file, tr, sp);
    if (st != MMCL_OK) {
        free(file);
        return st;
    }
    /* Open, then unlink: the file lives as long as the descriptor. */
    p->sar_fd = open(file, O_RDONLY | O_CLOEXEC);
    char proc[64];
    if (p->sar_fd >= 0)
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p->sar_fd);
    GDALDatasetH check = NULL;
    if (p->sar_fd >= 0) {
        CPLPushErrorHandler(CPLQuietErrorHandler);
        check = GDALOpenEx(proc, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL,
                           NULL, NULL);
        CPLPopErrorHandler();
    }
    if (check) {
        GDALClose(check);
        p->sar_name = mmcl__strdup(ctx, proc);
        mmcl__tempdir_remove(p->sar_tmpdir);
        free(p->sar_tmpdir);
        p->sar_tmpdir = NULL;
        free(file);
    } else {
        if (p->sar_fd >= 0)
            close(p->sar_fd);
        p->sar_fd = -1;
        p->sar_name = file;
    }
    return p->sar_name ? MMCL_OK : MMCL_ERR_NO_MEMORY;
}

/* Whether two geotransforms place pixels alike (to a millionth of a
 * pixel over the raster). */
static int
same_geotransform(const double a[6], const double b[6], int w, int h)
{
    double px = fabs(a[1]) + fabs(a[2]) + fabs(a[4]) + fabs(a[5]);
    double tol = 1e-6 * px;
    if (fabs(a[0] - b[0]) > tol || fabs(a[3] - b[3]) > tol)
        return 0;
    double n = w > h ? w : h;
    for (int k = 1; k < 6; k++)
        if (k != 3 && fabs(a[k] - b[k]) * n > tol)
            return 0;
    return 1;
}

static int
same_nodata(int has_a, double a, int has_b, double b)
{
    return has_a == has_b && (!has_a || a == b || (isnan(a) && isnan(b)));
}

/*
 * Stacks several SAR files band after band, in the order given (VV.tif,
 * VH.tif: bands 1, 2), through a VRT whose XML goes to *xml. They must
 * share one CRS, grid and nodata value: the SAR is resampled once, onto
 * the optical grid, and not first onto a grid of its own. Band names are
 * each file's band description, else its name. Sets the SAR grid of @p p.
 */
static mmcl_status
stack_sar(mmcl_context *ctx, mmcl__pair *p, const char *const *paths, size_t n,
          char **xml)
{
    *xml = NULL;
    mmcl_status st = MMCL_OK;
    GDALDatasetH *ds = mmcl__calloc_array(ctx, n, 1, sizeof(GDALDatasetH));
    if (!ds)
        return MMCL_ERR_NO_MEMORY;
    int has0 = 0;
    double nd0 = 0;
    for (size_t i = 0; i < n && st == MMCL_OK; i++) {
        double gt[6];
        ds[i] = mmcl__open_raster(ctx, paths[i], "SAR");
        if (!ds[i]) {
            st = mmcl_context_errcode(ctx);
            break;
        }
        st = check_georef(ctx, ds[i], "SAR", paths[i], i ? gt : p->sar_gt);
        if (st == MMCL_OK)
            st = check_real(ctx, ds[i], 1, paths[i]);
        if (st == MMCL_OK)
            st = check_single_band(ctx, ds[i], "SAR", paths[i]);
        if (st != MMCL_OK)
            break;
        int has;
        double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(ds[i], 1), &has);
        int w = GDALGetRasterXSize(ds[i]), h = GDALGetRasterYSize(ds[i]);
        if (i == 0) {
            p->sar_width = w;
            p->sar_height = h;
            has0 = has;
            nd0 = nd;
        } else if (!OSRIsSame(GDALGetSpatialRef(ds[0]),
                              GDALGetSpatialRef(ds[i]))) {
            st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                             "SAR files '%s' and '%s' are on different CRS; "
                             "stacking SAR files needs one CRS and grid "
                             "(warp them onto one grid first, e.g. with "
                             "gdalwarp)",
                             paths[0], paths[i]);
        } else if (w != p->sar_width || h != p->sar_height ||
                   !same_geotransform(p->sar_gt, gt, w, h)) {
            st = mmcl__error(
                ctx, MMCL_ERR_UNSUPPORTED,
                "SAR files '%s' and '%s' are on different grids (%d x %d "
                "pixels of %g x %g from (%.10g, %.10g), and %d x %d pixels "
                "of %g x %g from (%.10g, %.10g)); stacking SAR files needs "
                "one grid, so that the SAR is resampled once (warp them onto "
                "one grid first, e.g. with gdalwarp)",
                paths[0], paths[i], p->sar_width, p->sar_height, p->sar_gt[1],
                fabs(p->sar_gt[5]), p->sar_gt[0], p->sar_gt[3], w, h, gt[1],
                fabs(gt[5]), gt[0], gt[3]);
        } else if (!same_nodata(has0, nd0, has, nd)) {
            char a[32] = "none", b[32] = "none";
            if (has0)
                snprintf(a, sizeof(a), "%g", nd0);
            if (has)
                snprintf(b, sizeof(b), "%g", nd);
            st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                             "SAR files '%s' and '%s' have different nodata "
                             "values (%s and %s); stacking SAR files needs "
                             "one (set it with gdal_edit.py -a_nodata)",
                             paths[0], paths[i], a, b);
        }
    }
    if (st != MMCL_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        /* Band names: the file's band description, else its name. */
        const char *d = GDALGetDescription(GDALGetRasterBand(ds[i], 1));
        p->sar_names =
            CSLAddString(p->sar_names, d && *d ? d : CPLGetBasename(paths[i]));
    }
    char **argv = CSLAddString(NULL, "-separate");
    GDALBuildVRTOptions *vo = GDALBuildVRTOptionsNew(argv, NULL);
    CSLDestroy(argv);
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    int usage_error = 0;
    GDALDatasetH vrt =
        vo ? GDALBuildVRT("", (int)n, ds, NULL, vo, &usage_error) : NULL;
    char **text = vrt ? GDALGetMetadata(vrt, "xml:VRT") : NULL;
    if (text && text[0])
        *xml = mmcl__strdup(ctx, text[0]);
    mmcl__gdal_capture_end(&cap);
    GDALBuildVRTOptionsFree(vo);
    if (vrt)
        GDALClose(vrt);
    if (!*xml)
        st = mmcl__error(ctx, MMCL_ERR_IO, "cannot stack the %zu SAR files: %s",
                         n, mmcl__gdal_msg(&cap));
done:
    for (size_t i = 0; i < n; i++)
        if (ds[i])
            GDALClose(ds[i]);
    free(ds);
    return st;
}

/* Opens the SAR: one dataset as is, several files stacked (stack_sar). */
static mmcl_status
open_sar(mmcl_context *ctx, mmcl__pair *p, const char *const *paths, size_t n,
         const mmcl_options *opts)
{
    mmcl__speckle sp;
    mmcl_status st = mmcl__speckle_parse(ctx, mmcl__opt_str(opts, "SPECKLE"),
                                         &sp);
    if (st != MMCL_OK)
        return st;
    const char *trs = mmcl__opt_str(opts, "SAR_TRANSFORM");
    mmcl__sar_transform tr = MMCL__SAR_NONE;
    if (trs && strcmp(trs, "db") == 0)
        tr = MMCL__SAR_TO_DB;
    else if (trs && strcmp(trs, "linear") == 0)
        tr = MMCL__SAR_TO_LINEAR;

    char *stack = NULL; /* several files: the stacking VRT's XML */
    GDALDatasetH ds = NULL;
    if (n > 1) {
        st = stack_sar(ctx, p, paths, n, &stack);
        if (st != MMCL_OK)
            return st;
        ds = mmcl__open_raster(ctx, stack, "SAR stack");
    } else {
        ds = mmcl__open_raster(ctx, paths[0], "SAR");
    }
    if (!ds) {
        free(stack);
        return mmcl_context_errcode(ctx);
    }
    st = check_georef(ctx, ds, "SAR", paths[0], p->sar_gt);
    if (st == MMCL_OK && !stack)
        st = check_real(ctx, ds, 1, paths[0]);
    if (st != MMCL_OK)
        goto done;
    p->sar_wkt = mmcl__strdup(ctx, GDALGetProjectionRef(ds));
    p->sar_width = GDALGetRasterXSize(ds);
    p->sar_height = GDALGetRasterYSize(ds);
    p->n_sar = GDALGetRasterCount(ds);
    if (!stack)
        p->sar_names = band_names(ds, "sar", NULL);
    GDALRasterBandH b1 = GDALGetRasterBand(ds, 1);
    p->sar_nodata = GDALGetRasterNoDataValue(b1, &p->sar_has_nodata);

    if (tr != MMCL__SAR_NONE || sp.window) {
        st = write_preprocessed_sar(ctx, p, ds, tr, &sp);
        if (st != MMCL_OK)
            goto done;
        p->sar_has_nodata = 1;
        p->sar_nodata = NAN;
    } else {
        p->sar_name = mmcl__strdup(ctx, stack ? stack : paths[0]);
    }
    if (!p->sar_name || !p->sar_wkt)
        st = MMCL_ERR_NO_MEMORY;
done:
    GDALClose(ds);
    free(stack);
    return st;
}

/* ---- transform -------------------------------------------------------- */

static void *
create_exact(mmcl_context *ctx, const mmcl__pair *p)
{
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    /* GenImgProj from SAR pixels (source) to optical pixels (destination);
     * the warper calls it with bDstToSrc = TRUE. */
    void *t = GDALCreateGenImgProjTransformer3(p->sar_wkt, p->sar_gt, p->wkt,
                                               p->gt);
    mmcl__gdal_capture_end(&cap);
    if (!t)
        mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                    "cannot transform between the SAR and optical CRS: %s",
                    mmcl__gdal_msg(&cap));
    return t;
}

/* Exact SAR pixel coordinates of optical pixel positions (x, y), in place;
 * failed points become NaN. */
static void
exact_to_sar(void *exact, int n, double *x, double *y, int *ok)
{
    double *z = calloc((size_t)n, sizeof(double));
    if (!z) {
        for (int i = 0; i < n; i++)
            ok[i] = 0;
        return;
    }
    GDALGenImgProjTransform(exact, TRUE, n, x, y, z, ok);
    for (int i = 0; i < n; i++)
        if (!ok[i])
            x[i] = y[i] = NAN;
    free(z);
}

static int
lattice_eval(const mmcl__pair *p, double x, double y, double *sx, double *sy)
{
    double fx = x / p->step, fy = y / p->step;
    int i = (int)floor(fx), j = (int)floor(fy);
    if (i < 0)
        i = 0;
    if (i > p->nx - 2)
        i = p->nx - 2;
    if (j < 0)
        j = 0;
    if (j > p->ny - 2)
        j = p->ny - 2;
    double u = fx - i, v = fy - j;
    size_t k = (size_t)j * p->nx + i;
    const double *lx = p->lat_x, *ly = p->lat_y;
    size_t nx = (size_t)p->nx;
    *sx = (1 - v) * ((1 - u) * lx[k] + u * lx[k + 1]) +
          v * ((1 - u) * lx[k + nx] + u * lx[k + nx + 1]);
    *sy = (1 - v) * ((1 - u) * ly[k] + u * ly[k + 1]) +
          v * ((1 - u) * ly[k + nx] + u * ly[k + nx + 1]);
    return !isnan(*sx) && !isnan(*sy);
}

/* Fills the lattice for @p step; returns the max interpolation error at
 * the cell centres (in SAR pixels), or -1 on allocation failure. */
static double
lattice_build(mmcl__pair *p, void *exact, int step)
{
    free(p->lat_x);
    free(p->lat_y);
    p->step = step;
    p->nx = (p->width + step - 1) / step + 1;
    p->ny = (p->height + step - 1) / step + 1;
    if (p->nx < 2)
        p->nx = 2;
    if (p->ny < 2)
        p->ny = 2;
    size_t n = (size_t)p->nx * p->ny;
    p->lat_x = malloc(n * sizeof(double));
    p->lat_y = malloc(n * sizeof(double));
    int *ok = malloc(n * sizeof(int));
    if (!p->lat_x || !p->lat_y || !ok) {
        free(ok);
        return -1.0;
    }
    for (int j = 0; j < p->ny; j++)
        for (int i = 0; i < p->nx; i++) {
            p->lat_x[(size_t)j * p->nx + i] = (double)i * step;
            p->lat_y[(size_t)j * p->nx + i] = (double)j * step;
        }
    exact_to_sar(exact, (int)n, p->lat_x, p->lat_y, ok);
    free(ok);

    /* Error check on the centres of up to ~4096 cells spread evenly. */
    int cells_x = p->nx - 1, cells_y = p->ny - 1;
    int sx = cells_x > 64 ? cells_x / 64 : 1;
    int sy = cells_y > 64 ? cells_y / 64 : 1;
    double max_err = 0.0;
    for (int j = 0; j < cells_y; j += sy) {
        for (int i = 0; i < cells_x; i += sx) {
            double x = (i + 0.5) * step, y = (j + 0.5) * step;
            double ex = x, ey = y, ix, iy;
            int good;
            exact_to_sar(exact, 1, &ex, &ey, &good);
            if (!good)
                continue;
            if (!lattice_eval(p, x, y, &ix, &iy))
                continue;
            double e = fmax(fabs(ix - ex), fabs(iy - ey));
            if (e > max_err)
                max_err = e;
        }
    }
    return max_err;
}

/* The warper's transformer: optical pixel positions of the window starting
 * at (x0, y0) to SAR pixels, through the lattice or exactly. */
typedef struct window_transform {
    const mmcl__pair *pair;
    void *exact;
    int x0, y0;
} window_transform;

static int
window_transform_fn(void *arg, int dst_to_src, int n, double *x, double *y,
                    double *z, int *ok)
{
    window_transform *t = arg;
    const mmcl__pair *p = t->pair;
    if (!dst_to_src || p->step == 0) {
        if (dst_to_src)
            for (int i = 0; i < n; i++) {
                x[i] += t->x0;
                y[i] += t->y0;
            }
        int r = GDALGenImgProjTransform(t->exact, dst_to_src, n, x, y, z, ok);
        if (!dst_to_src)
            for (int i = 0; i < n; i++) {
                x[i] -= t->x0;
                y[i] -= t->y0;
            }
        return r;
    }
    for (int i = 0; i < n; i++) {
        double sx, sy;
        ok[i] = lattice_eval(p, x[i] + t->x0, y[i] + t->y0, &sx, &sy);
        x[i] = sx;
        y[i] = sy;
    }
    return TRUE;
}

/* Optical pixels per SAR pixel over a source extent [lo, hi] of a SAR
 * axis of n_src pixels for n_dst optical pixels, as GDAL's warp kernel
 * computes it for a window (gdalwarpkernel.cpp): the extent clamped to
 * the raster, and a downsampling factor near 1/n snapped to it. */
static double
warp_scale(int n_dst, double lo, double hi, int n_src)
{
    if (!(hi > lo))
        return 1.0;
    int lo_clamped = (int)fmax(0.0, lo);
    double raw = fmax(0.0, fmin((double)(n_src - lo_clamped), hi - lo));
    if (raw <= 0)
        return 1.0;
    double s = n_dst / raw;
    if (s < 1.0) {
        double r = 1.0 / s;
        int n = (int)(r + 0.5);
        if (fabs(r - n) < 0.05)
            s = 1.0 / n;
    }
    return s;
}

/*
 * Bounds b = {x0, x1, y0, y1} of the edges of the w x h pixel rectangle of
 * one raster (@p steps points per edge, at most 32) in the pixels of the
 * other: SAR pixels when @p to_sar, else optical pixels. Points that do
 * not transform are left out (all of them: an empty box, x0 > x1).
 */
static void
edge_bounds(void *exact, int to_sar, int w, int h, int steps, double b[4])
{
    enum { MAX = 32 };
    double x[4 * MAX], y[4 * MAX], z[4 * MAX] = {0};
    int ok[4 * MAX];
    steps = steps < 2 ? 2 : (steps > MAX ? MAX : steps);
    for (int k = 0; k < steps; k++) {
        double f = (double)k / (steps - 1);
        x[4 * k] = x[4 * k + 1] = f * w;
        y[4 * k] = 0;
        y[4 * k + 1] = h;
        x[4 * k + 2] = 0;
        x[4 * k + 3] = w;
        y[4 * k + 2] = y[4 * k + 3] = f * h;
    }
    if (to_sar)
        exact_to_sar(exact, 4 * steps, x, y, ok);
    else
        GDALGenImgProjTransform(exact, FALSE, 4 * steps, x, y, z, ok);
    b[0] = b[2] = INFINITY;
    b[1] = b[3] = -INFINITY;
    for (int k = 0; k < 4 * steps; k++) {
        if (!ok[k])
            continue;
        b[0] = fmin(b[0], x[k]);
        b[1] = fmax(b[1], x[k]);
        b[2] = fmin(b[2], y[k]);
        b[3] = fmax(b[3], y[k]);
    }
}

/*
 * The warper's XSCALE / YSCALE for the whole optical grid, measured as GDAL
 * measures them for one window (the SAR extent of 21 points along each
 * edge). Left to GDAL, they are estimated for each window from its own
 * extent, so a downsampling bilinear or cubic kernel would change from
 * window to window and tiles would show seams; fixed, every window
 * resamples with the kernel a one-window gdalwarp of the grid uses.
 */
static void
warp_scales(mmcl__pair *p, void *exact)
{
    double b[4];
    edge_bounds(exact, 1, p->width, p->height, 21, b);
    p->xscale = warp_scale(p->width, b[0], b[1], p->sar_width);
    p->yscale = warp_scale(p->height, b[2], b[3], p->sar_height);
}

/* Checks the overlap of the footprints and picks the resampling. */
static mmcl_status
check_overlap_and_resampling(mmcl_context *ctx, mmcl__pair *p, void *exact,
                             const char *resampling)
{
    /* SAR footprint edges in optical pixels. */
    double fb[4];
    edge_bounds(exact, 0, p->sar_width, p->sar_height, 32, fb);
    double xmin = fb[0], xmax = fb[1], ymin = fb[2], ymax = fb[3];
    if (!(xmax > 0 && ymax > 0 && xmin < p->width && ymin < p->height)) {
        /* Both footprints, in each CRS and in lon/lat: a SAR in another
         * UTM zone or with its axes swapped shows at a glance. */
        char opt[900], sar[1000];
        mmcl__footprint_describe(opt, sizeof(opt), p->opt_label, p->wkt, p->gt,
                                 p->width, p->height, NULL);
        mmcl__footprint_describe(sar, sizeof(sar), p->sar_label, p->sar_wkt,
                                 p->sar_gt, p->sar_width, p->sar_height,
                                 p->wkt);
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "the SAR footprint does not overlap the optical "
                           "raster: no pixel in common.\n  %s\n  %s",
                           opt, sar);
    }

    /* SAR pixels per optical pixel at the centre of the overlap. */
    double cx = (fmax(xmin, 0) + fmin(xmax, p->width)) / 2;
    double cy = (fmax(ymin, 0) + fmin(ymax, p->height)) / 2;
    double px[3] = {cx, cx + 1, cx}, py[3] = {cy, cy, cy + 1};
    int pok[3];
    exact_to_sar(exact, 3, px, py, pok);
    int known = pok[0] && pok[1] && pok[2];
    warp_scales(p, exact);
    if (strcmp(resampling, "auto") != 0) {
        snprintf(p->resampling_name, sizeof(p->resampling_name), "%s",
                 resampling);
    } else {
        double det = fabs((px[1] - px[0]) * (py[2] - py[0]) -
                          (px[2] - px[0]) * (py[1] - py[0]));
        int finer = known && det > 1.0 + 1e-6;
        snprintf(p->resampling_name, sizeof(p->resampling_name), "%s",
                 finer ? "average" : "bilinear");
    }
    p->resampling = mmcl__resample_alg(p->resampling_name);
    return MMCL_OK;
}

/* Whether the SAR grid is the optical grid: the same size, and the corners
 * and the centre of the optical grid land on the same SAR pixel positions
 * (to 1e-9 pixel). Every resampling then gives the SAR pixel itself. */
static int
on_grid(const mmcl__pair *p, void *exact)
{
    if (p->sar_width != p->width || p->sar_height != p->height)
        return 0;
    double W = p->width, H = p->height;
    double x[5] = {0, W, 0, W, W / 2}, y[5] = {0, 0, H, H, H / 2};
    double x0[5], y0[5];
    int ok[5];
    memcpy(x0, x, sizeof(x));
    memcpy(y0, y, sizeof(y));
    exact_to_sar(exact, 5, x, y, ok);
    for (int k = 0; k < 5; k++)
        if (!ok[k] || fabs(x[k] - x0[k]) > 1e-9 || fabs(y[k] - y0[k]) > 1e-9)
            return 0;
    return 1;
}

/* With both rasters known: the transform, the overlap check, the
 * resampling and the lattice. */
static mmcl_status
finish_open(mmcl_context *ctx, mmcl__pair *p)
{
    void *exact = create_exact(ctx, p);
    if (!exact)
        return mmcl_context_errcode(ctx);
    mmcl_status st = check_overlap_and_resampling(ctx, p, exact,
                                                  p->resampling_opt);
    if (st != MMCL_OK)
        goto done;
    p->sar_on_grid = on_grid(p, exact);

    double et = p->error_threshold;
    if (et > 0) {
        /* Coarsest lattice whose interpolation error stays within et. */
        int chosen = 0;
        for (int step = 64; step >= 2; step /= 2) {
            double err = lattice_build(p, exact, step);
            if (err < 0) {
                st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
                goto done;
            }
            if (err <= et) {
                chosen = step;
                break;
            }
        }
        if (!chosen) {
            free(p->lat_x);
            free(p->lat_y);
            p->lat_x = p->lat_y = NULL;
        }
        p->step = chosen;
    }
done:
    GDALDestroyGenImgProjTransformer(exact);
    return st;
}

mmcl_status
mmcl__pair_open(mmcl_context *ctx, const char *const *optical, size_t n_optical,
                const char *const *sar, size_t n_sar, const mmcl_options *opts,
                mmcl__pair **out)
{
    *out = NULL;
    if (!optical || n_optical == 0 || !sar || n_sar == 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "an optical and a SAR raster are needed");
    mmcl_status st = check_distinct(ctx, optical, n_optical, sar, n_sar);
    if (st != MMCL_OK)
        return st;
    mmcl__pair *p = calloc(1, sizeof(*p));
    if (!p)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    p->sar_fd = -1;
    if (n_optical == 1)
        snprintf(p->opt_label, sizeof(p->opt_label), "optical '%s'",
                 optical[0]);
    else
        snprintf(p->opt_label, sizeof(p->opt_label),
                 "optical '%s' ... '%s' (%zu files)", optical[0],
                 optical[n_optical - 1], n_optical);
    if (n_sar == 1)
        snprintf(p->sar_label, sizeof(p->sar_label), "SAR '%s'", sar[0]);
    else
        snprintf(p->sar_label, sizeof(p->sar_label),
                 "SAR '%s' ... '%s' (%zu files)", sar[0], sar[n_sar - 1],
                 n_sar);
    st = open_optical(ctx, p, optical, n_optical,
                      mmcl__opt_str(opts, "STACK_RESAMPLING"));
    if (st == MMCL_OK)
        st = open_sar(ctx, p, sar, n_sar, opts);
    if (st != MMCL_OK)
        goto fail;
    snprintf(p->resampling_opt, sizeof(p->resampling_opt), "%s",
             mmcl__opt_str(opts, "RESAMPLING"));
    p->error_threshold = mmcl__opt_double(opts, "ERROR_THRESHOLD");
    st = finish_open(ctx, p);
    if (st != MMCL_OK)
        goto fail;
    *out = p;
    return MMCL_OK;

fail:
    mmcl__pair_close(p);
    return st;
}

/* A copy of a CSL (NULL stays NULL). */
static char **
csl_copy(char **list)
{
    return list ? CSLDuplicate(list) : NULL;
}

/*
 * The XML of a VRT averaging the raster @p name onto @p w x @p h pixels
 * over its whole extent (float32 when @p to_float), or NULL with an error
 * set. It reads the coarsest of the raster's own overviews that is still
 * at least @p w x @p h (GDAL's VRT does not pick overviews by itself), so
 * that an input with overviews is not decoded at full resolution.
 */
static char *
decimated_vrt(mmcl_context *ctx, const char *name, const char *role, int w,
              int h, int to_float)
{
    GDALDatasetH full = mmcl__open_raster(ctx, name, role);
    if (!full)
        return NULL;
    GDALRasterBandH b1 = GDALGetRasterBand(full, 1);
    int level = -1, best = 0;
    for (int i = 0; b1 && i < GDALGetOverviewCount(b1); i++) {
        GDALRasterBandH o = GDALGetOverview(b1, i);
        int ow = o ? GDALGetRasterBandXSize(o) : 0;
        int oh = o ? GDALGetRasterBandYSize(o) : 0;
        if (ow >= w && oh >= h && (level < 0 || ow < best)) {
            level = i;
            best = ow;
        }
    }
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    GDALDatasetH src = full;
    if (level >= 0) {
        char opt[32];
        snprintf(opt, sizeof(opt), "OVERVIEW_LEVEL=%d", level);
        char *oo[2] = {opt, NULL};
        GDALDatasetH ovr = GDALOpenEx(name, GDAL_OF_RASTER | GDAL_OF_READONLY,
                                      NULL, (const char *const *)oo, NULL);
        if (ovr)
            src = ovr;
    }
    char **argv = NULL;
    argv = CSLAddString(argv, "-of");
    argv = CSLAddString(argv, "VRT");
    if (to_float) {
        argv = CSLAddString(argv, "-ot");
        argv = CSLAddString(argv, "Float32");
    }
    argv = CSLAddString(argv, "-r");
    argv = CSLAddString(argv, "average");
    argv = CSLAddString(argv, "-outsize");
    argv = CSLAddString(argv, CPLSPrintf("%d", w));
    argv = CSLAddString(argv, CPLSPrintf("%d", h));
    GDALTranslateOptions *to = GDALTranslateOptionsNew(argv, NULL);
    GDALDatasetH vrt = to ? GDALTranslate("", src, to, NULL) : NULL;
    char **xml = vrt ? GDALGetMetadata(vrt, "xml:VRT") : NULL;
    char *out = xml && xml[0] ? mmcl__strdup(ctx, xml[0]) : NULL;
    if (vrt)
        GDALClose(vrt);
    mmcl__gdal_capture_end(&cap);
    GDALTranslateOptionsFree(to);
    CSLDestroy(argv);
    if (src != full)
        GDALClose(src);
    GDALClose(full);
    if (!out)
        mmcl__error(ctx, MMCL_ERR_IO,
                    "cannot decimate the %s raster to %d x %d: %s", role, w,
                    h, mmcl__gdal_msg(&cap));
    return out;
}

/*
 * For a decimated pair: when the SAR is at least twice finer than the
 * (coarse) optical grid, replaces it by a VRT averaging it by that whole
 * factor on its own grid, so that the warp reads (and GDAL decodes, using
 * the SAR's own overviews when it has some) about as many SAR pixels as
 * the grid has.
 */
static mmcl_status
decimate_sar(mmcl_context *ctx, mmcl__pair *p)
{
    void *exact = create_exact(ctx, p);
    if (!exact)
        return mmcl_context_errcode(ctx);
    double cx = p->width / 2.0, cy = p->height / 2.0;
    double px[3] = {cx, cx + 1, cx}, py[3] = {cy, cy, cy + 1};
    int ok[3];
    exact_to_sar(exact, 3, px, py, ok);
    GDALDestroyGenImgProjTransformer(exact);
    if (!(ok[0] && ok[1] && ok[2]))
        return MMCL_OK;
    double det = fabs((px[1] - px[0]) * (py[2] - py[0]) -
                      (px[2] - px[0]) * (py[1] - py[0]));
    int f = (int)floor(sqrt(det));
    if (f < 2)
        return MMCL_OK;
    int w = (p->sar_width + f - 1) / f, h = (p->sar_height + f - 1) / f;
    char *name = decimated_vrt(ctx, p->sar_name, "SAR", w, h, 0);
    if (!name)
        return mmcl_context_errcode(ctx);
    double sx = (double)p->sar_width / w, sy = (double)p->sar_height / h;
    p->sar_gt[1] *= sx;
    p->sar_gt[4] *= sx;
    p->sar_gt[2] *= sy;
    p->sar_gt[5] *= sy;
    p->sar_width = w;
    p->sar_height = h;
    free(p->sar_name);
    p->sar_name = name;
    return MMCL_OK;
}

mmcl_status
mmcl__pair_open_decimated(mmcl_context *ctx, const mmcl__pair *base,
                          int width, int height, mmcl__pair **out)
{
    *out = NULL;
    if (width < 1 || height < 1 || width > base->width ||
        height > base->height)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "invalid decimated grid %d x %d of a %d x %d "
                           "raster",
                           width, height, base->width, base->height);
    mmcl__pair *p = calloc(1, sizeof(*p));
    if (!p)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    p->sar_fd = -1;
    mmcl_status st = MMCL_OK;

    /* The optical: a VRT averaging the base optical onto the coarser grid
     * (from its own overviews when it has some). */
    p->optical_name = decimated_vrt(ctx, base->optical_name, "optical", width,
                                    height, 1);
    if (!p->optical_name) {
        st = mmcl_context_errcode(ctx);
        goto fail;
    }
    p->width = width;
    p->height = height;
    memcpy(p->gt, base->gt, sizeof(p->gt));
    double sx = (double)base->width / width, sy = (double)base->height / height;
    p->gt[1] *= sx;
    p->gt[4] *= sx;
    p->gt[2] *= sy;
    p->gt[5] *= sy;
    p->n_opt = base->n_opt;
    memcpy(p->opt_label, base->opt_label, sizeof(p->opt_label));
    memcpy(p->sar_label, base->sar_label, sizeof(p->sar_label));
    p->wkt = mmcl__strdup(ctx, base->wkt);
    p->opt_names = csl_copy(base->opt_names);

    /* The SAR as the base has it (preprocessed copy included: the base
     * keeps it and removes it; this pair only reads it). */
    p->sar_name = mmcl__strdup(ctx, base->sar_name);
    p->sar_wkt = mmcl__strdup(ctx, base->sar_wkt);
    memcpy(p->sar_gt, base->sar_gt, sizeof(p->sar_gt));
    p->sar_width = base->sar_width;
    p->sar_height = base->sar_height;
    p->n_sar = base->n_sar;
    p->sar_names = csl_copy(base->sar_names);
    p->sar_has_nodata = base->sar_has_nodata;
    p->sar_nodata = base->sar_nodata;
    memcpy(p->resampling_opt, base->resampling_opt, sizeof(p->resampling_opt));
    p->error_threshold = base->error_threshold;
    if (!p->wkt || !p->sar_name || !p->sar_wkt) {
        st = MMCL_ERR_NO_MEMORY;
        goto fail;
    }
    st = decimate_sar(ctx, p);
    if (st == MMCL_OK)
        st = finish_open(ctx, p);
    if (st != MMCL_OK)
        goto fail;
    *out = p;
    return MMCL_OK;
fail:
    mmcl__pair_close(p);
    return st;
}

void
mmcl__pair_close(mmcl__pair *p)
{
    if (!p)
        return;
    if (p->sar_fd >= 0)
        close(p->sar_fd);
    mmcl__tempdir_remove(p->sar_tmpdir);
    free(p->sar_tmpdir);
    free(p->optical_name);
    free(p->wkt);
    CSLDestroy(p->opt_names);
    free(p->sar_name);
    free(p->sar_wkt);
    CSLDestroy(p->sar_names);
    free(p->lat_x);
    free(p->lat_y);
    free(p);
}

const char *
mmcl__pair_optical_label(const mmcl__pair *p)
{
    return p->opt_label;
}

const char *
mmcl__pair_sar_label(const mmcl__pair *p)
{
    return p->sar_label;
}

int mmcl__pair_width(const mmcl__pair *p) { return p->width; }
int mmcl__pair_height(const mmcl__pair *p) { return p->height; }
void
mmcl__pair_geotransform(const mmcl__pair *p, double gt[6])
{
    memcpy(gt, p->gt, 6 * sizeof(double));
}
const char *mmcl__pair_srs_wkt(const mmcl__pair *p) { return p->wkt; }
int mmcl__pair_optical_bands(const mmcl__pair *p) { return p->n_opt; }
int mmcl__pair_sar_bands(const mmcl__pair *p) { return p->n_sar; }
const char *const *
mmcl__pair_optical_band_names(const mmcl__pair *p)
{
    return (const char *const *)p->opt_names;
}
const char *const *
mmcl__pair_sar_band_names(const mmcl__pair *p)
{
    return (const char *const *)p->sar_names;
}
const char *mmcl__pair_resampling(const mmcl__pair *p)
{
    return p->resampling_name;
}
int mmcl__pair_lattice_step(const mmcl__pair *p) { return p->step; }

/* ---- reading ---------------------------------------------------------- */

mmcl__pair_reader *
mmcl__pair_reader_create(mmcl_context *ctx, const mmcl__pair *pair)
{
    mmcl__pair_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    r->pair = pair;
    r->opt = mmcl__open_raster(ctx, pair->optical_name, "optical");
    r->sar = r->opt ? mmcl__open_raster(ctx, pair->sar_name, "SAR") : NULL;
    r->exact = r->sar ? create_exact(ctx, pair) : NULL;
    if (!r->exact) {
        mmcl__pair_reader_destroy(r);
        return NULL;
    }
    return r;
}

void
mmcl__pair_reader_destroy(mmcl__pair_reader *r)
{
    if (!r)
        return;
    if (r->exact)
        GDALDestroyGenImgProjTransformer(r->exact);
    if (r->opt)
        GDALClose(r->opt);
    if (r->sar)
        GDALClose(r->sar);
    free(r->scratch_opt);
    free(r->scratch_sar);
    free(r->scratch_mask);
    free(r);
}

/* The SAR window (x, y, w, h) of a SAR on the optical grid into @p out
 * (n_sar, h, w), NaN at its nodata: what the warper gives there. */
static mmcl_status
read_sar_on_grid(mmcl_context *ctx, mmcl__pair_reader *r, int x, int y,
                 int w, int h, float *out)
{
    const mmcl__pair *p = r->pair;
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    CPLErr err = GDALDatasetRasterIO(r->sar, GF_Read, x, y, w, h, out, w, h,
                                     GDT_Float32, p->n_sar, NULL, 0, 0, 0);
    mmcl__gdal_capture_end(&cap);
    if (err != CE_None)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot read SAR window %d,%d %dx%d: %s", x, y, w,
                           h, mmcl__gdal_msg(&cap));
    if (p->sar_has_nodata && !isnan(p->sar_nodata)) {
        float nd = (float)p->sar_nodata;
        for (size_t i = 0; i < (size_t)w * h * p->n_sar; i++)
            if (out[i] == nd)
                out[i] = NAN;
    }
    return MMCL_OK;
}

/* Warps the SAR onto the optical window (x, y, w, h) into @p out
 * (n_sar, h, w); invalid pixels are NaN. */
static mmcl_status
warp_sar(mmcl_context *ctx, mmcl__pair_reader *r, int x, int y, int w, int h,
         float *out)
{
    const mmcl__pair *p = r->pair;
    if (p->sar_on_grid)
        return read_sar_on_grid(ctx, r, x, y, w, h, out);
    mmcl_status st = MMCL_OK;
    size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane * p->n_sar; i++)
        out[i] = NAN;

    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    GDALDatasetH mem = GDALCreate(GDALGetDriverByName("MEM"), "", w, h, 0,
                                  GDT_Float32, NULL);
    for (int b = 0; mem && b < p->n_sar; b++) {
        char ptr[64], line[64];
        char *opts[4] = {ptr, "PIXELOFFSET=4", line, NULL};
        snprintf(ptr, sizeof(ptr), "DATAPOINTER=%p", (void *)(out + plane * b));
        snprintf(line, sizeof(line), "LINEOFFSET=%d", w * 4);
        GDALAddBand(mem, GDT_Float32, opts);
        GDALSetRasterNoDataValue(GDALGetRasterBand(mem, b + 1), NAN);
    }

    window_transform tf = {p, r->exact, x, y};
    GDALWarpOptions *wo = GDALCreateWarpOptions();
    wo->hSrcDS = r->sar;
    wo->hDstDS = mem;
    wo->nBandCount = p->n_sar;
    wo->panSrcBands = CPLMalloc(sizeof(int) * (size_t)p->n_sar);
    wo->panDstBands = CPLMalloc(sizeof(int) * (size_t)p->n_sar);
    wo->padfSrcNoDataReal = CPLMalloc(sizeof(double) * (size_t)p->n_sar);
    wo->padfDstNoDataReal = CPLMalloc(sizeof(double) * (size_t)p->n_sar);
    for (int b = 0; b < p->n_sar; b++) {
        wo->panSrcBands[b] = b + 1;
        wo->panDstBands[b] = b + 1;
        /* Float SAR without declared nodata: NaN marks the invalid. */
        wo->padfSrcNoDataReal[b] = p->sar_has_nodata ? p->sar_nodata : NAN;
        wo->padfDstNoDataReal[b] = NAN;
    }
    wo->eResampleAlg = p->resampling;
    wo->eWorkingDataType = GDT_Float32;
    wo->pfnTransformer = window_transform_fn;
    wo->pTransformerArg = &tf;
    wo->papszWarpOptions = CSLSetNameValue(NULL, "INIT_DEST", "NO_DATA");
    wo->papszWarpOptions = CSLSetNameValue(
        wo->papszWarpOptions, "XSCALE", CPLSPrintf("%.17g", p->xscale));
    wo->papszWarpOptions = CSLSetNameValue(
        wo->papszWarpOptions, "YSCALE", CPLSPrintf("%.17g", p->yscale));

    GDALWarpOperationH op = mem ? GDALCreateWarpOperation(wo) : NULL;
    CPLErr err = op ? GDALChunkAndWarpImage(op, 0, 0, w, h) : CE_Failure;
    if (op)
        GDALDestroyWarpOperation(op);
    wo->pTransformerArg = NULL;
    GDALDestroyWarpOptions(wo);
    if (mem)
        GDALClose(mem);
    mmcl__gdal_capture_end(&cap);
    if (err != CE_None)
        st = mmcl__error(ctx, MMCL_ERR_IO,
                         "cannot resample the SAR onto window %d,%d %dx%d: %s",
                         x, y, w, h, mmcl__gdal_msg(&cap));
    return st;
}

/* Optical window into @p out (n_opt, h, w), NaN where invalid. */
static mmcl_status
read_optical(mmcl_context *ctx, mmcl__pair_reader *r, int x, int y, int w,
             int h, float *out, uint8_t *mask)
{
    const mmcl__pair *p = r->pair;
    size_t plane = (size_t)w * h;
    mmcl__gdal_capture cap;
    mmcl__gdal_capture_begin(&cap, ctx);
    CPLErr err = GDALDatasetRasterIO(r->opt, GF_Read, x, y, w, h, out, w, h,
                                     GDT_Float32, p->n_opt, NULL, 0, 0, 0);
    for (int b = 0; b < p->n_opt && err == CE_None; b++) {
        GDALRasterBandH band = GDALGetRasterBand(r->opt, b + 1);
        float *o = out + plane * b;
        int has_nd = 0;
        double nd = GDALGetRasterNoDataValue(band, &has_nd);
        int flags = GDALGetMaskFlags(band);
        if (!(flags & (GMF_ALL_VALID | GMF_NODATA))) {
            err = GDALRasterIO(GDALGetMaskBand(band), GF_Read, x, y, w, h,
                               mask, w, h, GDT_Byte, 0, 0);
            for (size_t i = 0; i < plane && err == CE_None; i++)
                if (!mask[i])
                    o[i] = NAN;
        }
        if (has_nd && !isnan(nd))
            for (size_t i = 0; i < plane; i++)
                if (o[i] == (float)nd)
                    o[i] = NAN;
    }
    mmcl__gdal_capture_end(&cap);
    if (err != CE_None)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot read optical window %d,%d %dx%d: %s", x, y,
                           w, h, mmcl__gdal_msg(&cap));
    return MMCL_OK;
}

static int
reflect(int i, int n)
{
    if (n == 1)
        return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - i;
}

/* Copies the clipped window @p src (bands, ch, cw at offset cx, cy) into
 * @p dst (bands, H, W at offset x0, y0 of the grid) with reflection. */
static void
pad_reflect(float *dst, int x0, int y0, int W, int H, const float *src,
            int cx, int cy, int cw, int ch, int bands, int gw, int gh)
{
    for (int b = 0; b < bands; b++) {
        const float *s = src + (size_t)b * cw * ch;
        float *d = dst + (size_t)b * W * H;
        for (int j = 0; j < H; j++) {
            int gy = reflect(y0 + j, gh) - cy;
            for (int i = 0; i < W; i++) {
                int gx = reflect(x0 + i, gw) - cx;
                d[(size_t)j * W + i] = s[(size_t)gy * cw + gx];
            }
        }
    }
}

mmcl_status
mmcl__pair_read(mmcl_context *ctx, mmcl__pair_reader *r, int x, int y, int w,
                int h, int halo, float *optical, float *sar, uint8_t *valid)
{
    const mmcl__pair *p = r->pair;
    int x0 = x - halo, y0 = y - halo, W = w + 2 * halo, H = h + 2 * halo;
    /* The part of the grid the padded window reflects from. */
    int cx = p->width, cx1 = 0, cy = p->height, cy1 = 0;
    for (int i = 0; i < W; i++) {
        int g = reflect(x0 + i, p->width);
        cx = g < cx ? g : cx;
        cx1 = g + 1 > cx1 ? g + 1 : cx1;
    }
    for (int j = 0; j < H; j++) {
        int g = reflect(y0 + j, p->height);
        cy = g < cy ? g : cy;
        cy1 = g + 1 > cy1 ? g + 1 : cy1;
    }
    int cw = cx1 - cx, ch = cy1 - cy;
    int direct = cx == x0 && cy == y0 && cw == W && ch == H;
    size_t cpix = (size_t)cw * ch;
    mmcl_status st = MMCL_OK;

    if (!direct && cpix > r->scratch_pixels) {
        free(r->scratch_opt);
        free(r->scratch_sar);
        free(r->scratch_mask);
        r->scratch_opt = mmcl__malloc_array(ctx, cpix, (size_t)p->n_opt, 4);
        r->scratch_sar = mmcl__malloc_array(ctx, cpix, (size_t)p->n_sar, 4);
        r->scratch_mask = mmcl__malloc_array(ctx, cpix, 1, 1);
        r->scratch_pixels = cpix;
        if (!r->scratch_opt || !r->scratch_sar || !r->scratch_mask) {
            r->scratch_pixels = 0;
            return MMCL_ERR_NO_MEMORY;
        }
    }
    /* A modality is read when its output or the validity is wanted. */
    float *o = direct ? optical : optical || valid ? r->scratch_opt : NULL;
    float *s = direct ? sar : sar || valid ? r->scratch_sar : NULL;
    uint8_t *m = !valid ? NULL : direct ? valid : r->scratch_mask;
    uint8_t *maskbuf = NULL;
    float *own_opt = NULL, *own_sar = NULL;
    if (!o && valid) {
        o = own_opt = mmcl__malloc_array(ctx, cpix, (size_t)p->n_opt, 4);
        if (!o)
            return MMCL_ERR_NO_MEMORY;
    }
    if (!s && valid) {
        s = own_sar = mmcl__malloc_array(ctx, cpix, (size_t)p->n_sar, 4);
        if (!s) {
            free(own_opt);
            return MMCL_ERR_NO_MEMORY;
        }
    }
    maskbuf = mmcl__malloc_array(ctx, cpix, 1, 1);
    if (!maskbuf) {
        st = MMCL_ERR_NO_MEMORY;
        goto done;
    }
    if (o)
        st = read_optical(ctx, r, cx, cy, cw, ch, o, maskbuf);
    if (st == MMCL_OK && s)
        st = warp_sar(ctx, r, cx, cy, cw, ch, s);
    if (st != MMCL_OK)
        goto done;
    if (m) {
        for (size_t i = 0; i < cpix; i++) {
            uint8_t ok1 = 1, ok2 = 1;
            for (int b = 0; b < p->n_opt && ok1; b++)
                ok1 = !isnan(o[cpix * b + i]);
            for (int b = 0; b < p->n_sar && ok2; b++)
                ok2 = !isnan(s[cpix * b + i]);
            m[i] = (uint8_t)((ok1 ? MMCL__VALID_OPTICAL : 0) |
                             (ok2 ? MMCL__VALID_SAR : 0));
        }
    }
    if (!direct) {
        if (optical)
            pad_reflect(optical, x0, y0, W, H, o, cx, cy, cw, ch, p->n_opt,
                        p->width, p->height);
        if (sar)
            pad_reflect(sar, x0, y0, W, H, s, cx, cy, cw, ch, p->n_sar,
                        p->width, p->height);
        if (valid) {
            for (int j = 0; j < H; j++) {
                int gy = reflect(y0 + j, p->height) - cy;
                for (int i = 0; i < W; i++) {
                    int gx = reflect(x0 + i, p->width) - cx;
                    valid[(size_t)j * W + i] = m[(size_t)gy * cw + gx];
                }
            }
        }
    }
done:
    free(maskbuf);
    free(own_opt);
    free(own_sar);
    return st;
}
