/* SPDX-License-Identifier: MIT */
/*
 * The raster pair: opening and checking both modalities, stacking optical
 * files, the SAR put on the optical grid (a grid source), and window reads
 * (optical, SAR and the joint validity mask) with reflect padding.
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
#include <gdal_utils.h>
#include <ogr_srs_api.h>

#include "context_internal.h"
#include "gdal_util_internal.h"
#include "options_internal.h"
#include "output_internal.h"
#include "pair_internal.h"
#include "sar_internal.h"
#include "shift_internal.h"

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

    char resampling_opt[16]; /* as asked ("auto", ...), for derived pairs */
    double error_threshold;
    mmcl__shift *shift;         /* the misregistration corrected, or NULL */
    mmcl__grid_source *sar_src; /* the SAR on the optical grid */
};

struct mmcl__pair_reader {
    const mmcl__pair *pair;
    GDALDatasetH opt;
    mmcl__grid_reader *sar;
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
/*
 * The VRT (XML in *@p xml) that stacks the single-band files @p ds (opened
 * from @p paths) as its bands, with gdalbuildvrt's -separate and the
 * @p args (NULL-terminated, may be NULL), and their band names added to
 * *@p names: each file's band description, else its name. @p what names
 * the files in the message ("optical", "SAR").
 */
static mmcl_status
stack_files(mmcl_context *ctx, GDALDatasetH *ds, const char *const *paths,
            size_t n, const char *const *args, const char *what, char **xml,
            char ***names)
{
    char **argv = CSLAddString(NULL, "-separate");
    for (size_t i = 0; args && args[i]; i++)
        argv = CSLAddString(argv, args[i]);
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
    for (size_t i = 0; i < n; i++) {
        const char *d = GDALGetDescription(GDALGetRasterBand(ds[i], 1));
        *names = CSLAddString(*names, d && *d ? d : CPLGetBasename(paths[i]));
    }
    if (vrt)
        GDALClose(vrt);
    if (!*xml)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot stack the %zu %s files: %s", n, what,
                           mmcl__gdal_msg(&cap));
    return MMCL_OK;
}

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
        const char *args[] = {"-resolution", "highest", "-r",
                              stack_resampling, NULL};
        st = stack_files(ctx, ds, paths, n, args, "optical",
                         &p->optical_name, &p->opt_names);
        if (st != MMCL_OK)
            goto done;
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
    st = stack_files(ctx, ds, paths, n, NULL, "SAR", xml, &p->sar_names);
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

/* ---- the SAR on the optical grid ------------------------------------ */

/* The optical grid, for a grid source. */
void
mmcl__pair_grid(const mmcl__pair *p, mmcl__grid *g)
{
    g->width = p->width;
    g->height = p->height;
    memcpy(g->gt, p->gt, sizeof(g->gt));
    g->wkt = p->wkt;
    g->label = p->opt_label;
}

/* With both rasters known: the SAR as a grid source on the optical grid
 * (the transform, the overlap check, the resampling and the lattice). */
static mmcl_status
finish_open(mmcl_context *ctx, mmcl__pair *p)
{
    mmcl__grid g;
    mmcl__pair_grid(p, &g);
    mmcl__grid_raster r = {
        .name = p->sar_name,
        .role = "SAR",
        .label = p->sar_label,
        .wkt = p->sar_wkt,
        .width = p->sar_width,
        .height = p->sar_height,
        .band = 1,
        .n_bands = p->n_sar,
        .type = GDT_Float32,
        .validity = MMCL__GRID_NODATA,
        .has_nodata = p->sar_has_nodata,
        .nodata = p->sar_nodata,
        .place = MMCL__GRID_AUTO,
        .resampling = p->resampling_opt,
        .error_threshold = p->error_threshold,
        .no_overlap = "the SAR footprint",
        .read_failed = "cannot read SAR window",
        .warp_failed = "cannot resample the SAR onto window",
        .shift = p->shift,
    };
    memcpy(r.gt, p->sar_gt, sizeof(r.gt));
    mmcl__grid_source_close(p->sar_src);
    p->sar_src = NULL;
    return mmcl__grid_source_open(ctx, &r, &g, &p->sar_src);
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
    if (st == MMCL_OK) { /* the correction, checked against the grid */
        mmcl__grid g;
        mmcl__pair_grid(p, &g);
        st = mmcl__shift_from_options(ctx, opts, &g, &p->shift);
    }
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
 * For a decimated pair: the SAR on the (coarse) optical grid. When it is
 * at least twice finer than the grid, it is replaced by a VRT averaging it
 * by that whole factor on its own grid, so that the warp reads (and GDAL
 * decodes, using the SAR's own overviews when it has some) about as many
 * SAR pixels as the grid has.
 */
static mmcl_status
open_decimated_sar(mmcl_context *ctx, mmcl__pair *p)
{
    mmcl_status st = finish_open(ctx, p);
    if (st != MMCL_OK)
        return st;
    int f = (int)floor(sqrt(mmcl__grid_source_centre_ratio(p->sar_src)));
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
    return finish_open(ctx, p);
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
    /* The same ground correction, in pixels of the coarser grid. */
    if (base->shift) {
        p->shift = mmcl__shift_copy_scaled(ctx, base->shift, sx, sy);
        if (!p->shift) {
            st = mmcl_context_errcode(ctx);
            goto fail;
        }
    }
    if (!p->wkt || !p->sar_name || !p->sar_wkt) {
        st = MMCL_ERR_NO_MEMORY;
        goto fail;
    }
    st = open_decimated_sar(ctx, p);
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
    mmcl__grid_source_close(p->sar_src);
    mmcl__shift_destroy(p->shift);
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
    return mmcl__grid_source_resampling(p->sar_src);
}
int
mmcl__pair_lattice_step(const mmcl__pair *p)
{
    return mmcl__grid_source_lattice_step(p->sar_src);
}
const struct mmcl__shift *
mmcl__pair_shift(const mmcl__pair *p)
{
    return p->shift;
}

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
    r->sar = r->opt ? mmcl__grid_reader_create(ctx, pair->sar_src) : NULL;
    if (!r->sar) {
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
    if (r->opt)
        GDALClose(r->opt);
    mmcl__grid_reader_destroy(r->sar);
    free(r->scratch_opt);
    free(r->scratch_sar);
    free(r->scratch_mask);
    free(r);
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
    /* The SAR's validity goes to maskbuf, free once the optical is read. */
    uint8_t *sar_ok = m ? maskbuf : NULL;
    if (st == MMCL_OK && s)
        st = mmcl__grid_reader_read(ctx, r->sar, cx, cy, cw, ch, s, sar_ok);
    if (st != MMCL_OK)
        goto done;
    if (m) {
        for (size_t i = 0; i < cpix; i++) {
            uint8_t ok = 1;
            for (int b = 0; b < p->n_opt && ok; b++)
                ok = !isnan(o[cpix * b + i]);
            m[i] = (uint8_t)((ok ? MMCL__VALID_OPTICAL : 0) |
                             (sar_ok[i] ? MMCL__VALID_SAR : 0));
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
