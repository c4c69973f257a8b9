/* SPDX-License-Identifier: MIT */
/*
 * Lazy pictures: the kind "rgb" of product_internal.h. Its descriptor,
 * written by mmcl_rgb with LAZY, names a source (a raster or another
 * lazy product) and holds every statistic of passes 1 and 2 of mmcl_rgb
 * (operations/rgb.c); a read runs pass 3 on the blocks it meets, with
 * the same tile grid and code (rgb_internal.h), so its bytes equal the
 * written picture's. Its levels are the source product's, or for a raster
 * factors 2, 4, ... read decimated by GDAL. A read state is an rgb worker
 * (a GDAL handle on the source, or reads of the source product).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>

#include "mmcl/product.h"

#include "colormaps_internal.h"
#include "context_internal.h"
#include "options_internal.h"
#include "product_internal.h"
#include "rgb_internal.h"

/* The picture's part of a product (p->impl). */
typedef struct picture {
    mmcl__rgb_source src;
    mmcl__rgb_job job;
    mmcl__rgb_info info;
} picture;

static void
picture_destroy(mmcl_product *p)
{
    picture *v = p->impl;
    if (!v)
        return;
    free(v->info.loadings);
    CPLFree(v->info.source_product);
    CPLFree(v->info.units);
    mmcl__rgb_job_free(&v->job);
    mmcl__rgb_source_close(&v->src);
    free(v);
}

/* Reads the number array @p a of exactly @p n finite values into @p v. */
static int
json_numbers(const cJSON *a, double *v, int n)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return 0;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return 0;
        v[i++] = e->valuedouble;
    }
    return 1;
}

/* Keys of an rgb descriptor. */
static const char *const picture_keys[] = {
    "mmcl_descriptor", "product", "source", "bands", "mode", "stretch",
    "range", "limits", "valid_pixels", "colormap", "pca", "legend",
    "overviews", "tile", "threads", NULL};

/* The "pca" object of a picture in PCA mode into v->job and v->info. */
static mmcl_status
parse_pca(mmcl_context *ctx, picture *v, const cJSON *pca, const char *name)
{
    mmcl__rgb_job *job = &v->job;
    mmcl__rgb_info *info = &v->info;
    int B = job->B, C = job->n_ch;
    if (mmcl__rgb_job_alloc(ctx, job, info) != MMCL_OK)
        return MMCL_ERR_NO_MEMORY;
    const cJSON *comp = cJSON_GetObjectItemCaseSensitive(pca, "components");
    const cJSON *tv = cJSON_GetObjectItemCaseSensitive(pca, "total_variance");
    int ok = cJSON_IsObject(pca) &&
             json_numbers(cJSON_GetObjectItemCaseSensitive(pca, "mean"),
                          job->mean, B) &&
             json_numbers(cJSON_GetObjectItemCaseSensitive(pca, "eigenvalues"),
                          info->lambda, C) &&
             json_numbers(cJSON_GetObjectItemCaseSensitive(
                              pca, "explained_variance"),
                          info->explained, C) &&
             cJSON_IsNumber(tv) && cJSON_IsArray(comp) &&
             cJSON_GetArraySize(comp) == C;
    for (int c = 0; ok && c < C; c++)
        ok = json_numbers(cJSON_GetArrayItem(comp, c),
                          info->loadings + (size_t)c * B, B);
    if (!ok)
        return mmcl__error(ctx, MMCL_ERR_FORMAT,
                           "descriptor '%s': \"pca\" must hold \"mean\" (%d "
                           "numbers), \"components\" (%d arrays of %d), "
                           "\"eigenvalues\" and \"explained_variance\" (%d "
                           "each) and \"total_variance\"",
                           name, B, C, B, C);
    info->total_var = tv->valuedouble;
    /* As components() sets them after pass 1. */
    for (int b = 0; b < B; b++)
        job->center[b] = (float)job->mean[b];
    for (size_t k = 0; k < (size_t)C * B; k++)
        job->proj[k] = (float)info->loadings[k];
    return MMCL_OK;
}


/* The statistics of the descriptor into v->job and v->info. */
static mmcl_status
parse_stats(mmcl_context *ctx, picture *v, const cJSON *j,
            const char *name)
{
    mmcl__rgb_job *job = &v->job;
    mmcl__rgb_info *info = &v->info;
    const cJSON *bands = cJSON_GetObjectItemCaseSensitive(j, "bands");
    int B = cJSON_IsArray(bands) ? cJSON_GetArraySize(bands) : 0;
    if (B < 1)
        return mmcl__product_bad_key(ctx, name, "bands",
                                     "expected band numbers for");
    job->sel = mmcl__malloc_array(ctx, (size_t)B, 1, sizeof(int));
    if (!job->sel)
        return MMCL_ERR_NO_MEMORY;
    job->B = B;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, bands)
    {
        double d = cJSON_IsNumber(e) ? e->valuedouble : -1.0;
        if (d != floor(d) || d < 1 || d > v->src.n_bands)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "descriptor '%s': \"bands\": no band %g in "
                               "'%s', which has %d",
                               name, d, v->src.name, v->src.n_bands);
        job->sel[i++] = (int)d;
    }
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(j, "mode");
    if (!cJSON_IsString(mode) || strcmp(mode->valuestring, "auto") == 0 ||
        (strcmp(mode->valuestring, "pca") != 0 &&
         strcmp(mode->valuestring, "direct") != 0 &&
         strcmp(mode->valuestring, "colormap") != 0))
        return mmcl__product_bad_key(ctx, name, "mode",
                        "expected \"pca\", \"direct\" or \"colormap\" for");
    const cJSON *range = cJSON_GetObjectItemCaseSensitive(j, "range");
    const cJSON *stretch = cJSON_GetObjectItemCaseSensitive(j, "stretch");
    info->range_given = range != NULL;
    double pr[2];
    if (range ? !json_numbers(range, pr, 2) || pr[0] >= pr[1]
              : !json_numbers(stretch, pr, 2) || pr[0] < 0 ||
                    pr[1] > 100 || pr[0] >= pr[1])
        return mmcl__product_bad_key(ctx, name, range ? "range" : "stretch",
                        "expected [LOW, HIGH] (percentiles, or a value "
                        "range given instead) for");
    if (range && stretch)
        return mmcl__product_bad_key(ctx, name, "stretch",
                        "a descriptor has \"range\" or");
    if (!range) {
        info->p_lo = pr[0];
        info->p_hi = pr[1];
    }
    mmcl_status st = mmcl__rgb_check_types(ctx, &v->src, v->src.name, job);
    if (st == MMCL_OK)
        st = mmcl__rgb_choose_mode(ctx, job, mode->valuestring, 1,
                                   info->range_given);
    if (st != MMCL_OK)
        return mmcl__product_error_in(ctx, name);
    int C = job->n_ch;
    const cJSON *limits = cJSON_GetObjectItemCaseSensitive(j, "limits");
    if (!cJSON_IsArray(limits) || cJSON_GetArraySize(limits) != C)
        return mmcl__error(ctx, MMCL_ERR_FORMAT,
                           "descriptor '%s': \"limits\" must hold %d [LOW, "
                           "HIGH] pair%s (one per channel)",
                           name, C, C == 1 ? "" : "s");
    for (int c = 0; c < C; c++) {
        double lh[2];
        if (!json_numbers(cJSON_GetArrayItem(limits, c), lh, 2) ||
            !(lh[1] > lh[0]))
            return mmcl__product_bad_key(ctx, name, "limits",
                            "expected [LOW, HIGH] with LOW < HIGH in");
        job->lo[c] = lh[0];
        job->hi[c] = lh[1];
    }
    const cJSON *vp = cJSON_GetObjectItemCaseSensitive(j, "valid_pixels");
    if (!cJSON_IsNumber(vp) || !(vp->valuedouble >= 1))
        return mmcl__product_bad_key(ctx, name, "valid_pixels",
                        "expected a pixel count for");
    job->count = vp->valuedouble;
    const cJSON *cm = cJSON_GetObjectItemCaseSensitive(j, "colormap");
    if (job->mode == MMCL__RGB_COLORMAP) {
        if (!cJSON_IsString(cm) || strcmp(cm->valuestring, "auto") == 0 ||
            !mmcl__colormap(cm->valuestring))
            return mmcl__product_bad_key(ctx, name, "colormap",
                            "expected viridis, magma, gray or rdbu_r for");
        job->lut = mmcl__colormap(cm->valuestring);
        info->colormap = mmcl__colormap_name(cm->valuestring);
        info->diverging = strcmp(info->colormap, "rdbu_r") == 0;
    } else if (cm) {
        return mmcl__product_bad_key(ctx, name, "colormap",
                        "only the colormap mode has the key");
    }
    const cJSON *pca = cJSON_GetObjectItemCaseSensitive(j, "pca");
    if (job->mode != MMCL__RGB_PCA) {
        if (pca)
            return mmcl__product_bad_key(ctx, name, "pca",
                                         "only the pca mode has the key");
        return MMCL_OK;
    }
    return parse_pca(ctx, v, pca, name);
}

/* Levels: the source product's; for a raster, factors 2, 4, ... down to
 * about MMCL__PRODUCT_OVERVIEW_MIN_EDGE pixels, read decimated by GDAL. */
static void
plan_levels(mmcl_product *p, const mmcl__rgb_source *src, int overviews)
{
    mmcl__product_level *L0 = &p->levels[0];
    L0->factor = 1;
    L0->width = src->width;
    L0->height = src->height;
    memcpy(L0->gt, src->gt, sizeof(L0->gt));
    p->n_levels = 1;
    if (!src->product) {
        mmcl__product_plan_levels(p, overviews, 1);
        return;
    }
    int n = mmcl_product_level_count(src->product);
    for (int l = 1; overviews && l < n && l < MMCL__PRODUCT_MAX_LEVELS; l++) {
        mmcl__product_level *L = &p->levels[l];
        L->factor = mmcl_product_overview_factor(src->product, l);
        L->width = mmcl_product_width(src->product, l);
        L->height = mmcl_product_height(src->product, l);
        mmcl_product_geotransform(src->product, l, L->gt);
        p->n_levels++;
    }
}

/* The keys of descriptor @p j that need no source: known keys only,
 * "source", "overviews" and "legend" of the right types, and TILE and
 * THREADS through the option table (ranges, defaults) into @p p. */
static mmcl_status
parse_keys(mmcl_context *ctx, mmcl_product *p, const cJSON *j,
           const char *name, int threads_override)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, j)
    {
        int known = 0;
        for (int k = 0; picture_keys[k] && !known; k++)
            known = strcmp(picture_keys[k], item->string) == 0;
        if (!known)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "descriptor '%s': unknown key \"%s\" for an "
                               "rgb product",
                               name, item->string);
    }
    const cJSON *source = cJSON_GetObjectItemCaseSensitive(j, "source");
    if (!source)
        return mmcl__product_bad_key(ctx, name, "source", "missing key");
    if (!cJSON_IsString(source) || !*source->valuestring)
        return mmcl__product_bad_key(ctx, name, "source",
                                     "expected a path for");
    const cJSON *ov = cJSON_GetObjectItemCaseSensitive(j, "overviews");
    if (ov && !cJSON_IsBool(ov))
        return mmcl__product_bad_key(ctx, name, "overviews",
                                     "expected true or false for");
    const cJSON *legend = cJSON_GetObjectItemCaseSensitive(j, "legend");
    if (legend && !cJSON_IsString(legend))
        return mmcl__product_bad_key(ctx, name, "legend",
                                     "expected a file name for");
    char **kv = NULL;
    static const char *const run_keys[2][2] = {{"tile", "TILE"},
                                               {"threads", "THREADS"}};
    for (int k = 0; k < 2; k++) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, run_keys[k][0]);
        if (!n)
            continue;
        if (!cJSON_IsNumber(n)) {
            CSLDestroy(kv);
            return mmcl__product_bad_key(ctx, name, run_keys[k][0],
                                         "expected a number for");
        }
        kv = CSLAddString(kv, CPLSPrintf("%s=%.17g", run_keys[k][1],
                                         n->valuedouble));
    }
    if (threads_override >= 0)
        kv = CSLSetNameValue(kv, "THREADS",
                             CPLSPrintf("%d", threads_override));
    mmcl_options *o = mmcl_options_new(ctx, "rgb", (const char *const *)kv);
    CSLDestroy(kv);
    if (!o)
        return mmcl__product_error_in(ctx, name);
    p->tile = (int)mmcl__opt_int(o, "TILE");
    p->threads = mmcl__opt_threads(o);
    mmcl_options_free(o);
    return MMCL_OK;
}

static mmcl_status
picture_open(mmcl_context *ctx, mmcl_product *p, const cJSON *j,
             const char *name, const char *dir, int threads)
{
    mmcl_status st = parse_keys(ctx, p, j, name, threads);
    if (st != MMCL_OK)
        return st;
    picture *v = calloc(1, sizeof(*v));
    if (!v)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    p->impl = v;
    v->job.tile = p->tile;
    const char *source =
        cJSON_GetObjectItemCaseSensitive(j, "source")->valuestring;
    st = mmcl__product_check_path(ctx, name, "source", source);
    if (st != MMCL_OK)
        return st;
    char *path = mmcl__product_resolve_path(dir, source);
    st = mmcl__rgb_source_open(ctx, path, &v->src);
    CPLFree(path);
    if (st == MMCL_OK) {
        v->job.src = &v->src;
        v->job.in = v->src.name;
        st = parse_stats(ctx, v, j, name);
    }
    if (st != MMCL_OK)
        return st;
    v->info.source_product =
        v->src.product_kind ? CPLStrdup(v->src.product_kind) : NULL;
    v->info.units = v->src.units ? CPLStrdup(v->src.units) : NULL;
    const cJSON *ov = cJSON_GetObjectItemCaseSensitive(j, "overviews");
    const cJSON *legend = cJSON_GetObjectItemCaseSensitive(j, "legend");
    plan_levels(p, &v->src, !ov || cJSON_IsTrue(ov));
    mmcl__product_set_metadata(
        p, mmcl__rgb_metadata(&v->job, &v->info,
                              legend ? legend->valuestring : NULL));
    p->n_bands = 4;
    p->band_names = mmcl__rgb_band_names(&v->src, &v->job);
    p->wkt = mmcl__strdup(ctx, v->src.wkt ? v->src.wkt : "");
    return p->wkt ? MMCL_OK : MMCL_ERR_NO_MEMORY;
}

/* ---- reading ---------------------------------------------------------- */

static void *
picture_state_create(mmcl_context *ctx, mmcl_product *p, int level)
{
    const picture *v = p->impl;
    return mmcl__rgb_worker_create(ctx, &v->job, level,
                                   p->levels[level].factor);
}

static void
picture_state_free(void *state)
{
    mmcl__rgb_worker_free(state);
}

/*
 * Renders block @p index of the window whole, as mmcl_rgb renders the
 * tile (the same tile grid, so the same sums and bits), and copies its
 * part of the window into the window's buffer.
 */
static mmcl_status
picture_read_block(mmcl_context *ctx, const mmcl__product_window *win,
                   void *state, int index)
{
    const picture *v = win->p->impl;
    mmcl__rgb_worker *w = state;
    mmcl__tile t, part;
    mmcl__product_block(win, index, &t, &part);
    size_t n = (size_t)t.w * (size_t)t.h;
    mmcl_status st = mmcl__rgb_read_tile(ctx, w, &v->job, &t);
    if (st != MMCL_OK)
        return st;
    mmcl__rgb_render(w, &v->job, mmcl__rgb_channels(w, &v->job, n), n);
    unsigned char *buf = win->buf;
    size_t plane = (size_t)win->w * win->h;
    for (int c = 0; c < 4; c++)
        for (int r = part.y; r < part.y + part.h; r++)
            memcpy(buf + plane * c + (size_t)(r - win->y) * win->w +
                       (part.x - win->x),
                   w->out + n * c + (size_t)(r - t.y) * t.w + (part.x - t.x),
                   (size_t)part.w);
    return MMCL_OK;
}

static const char *const rgba[] = {"Red", "Green", "Blue", "Alpha"};

const mmcl__product_kind mmcl__product_rgb = {
    .name = "rgb",
    .sample_type = MMCL_SAMPLE_BYTE,
    .has_nodata = 0, /* the alpha band makes invalid pixels transparent */
    .band_colors = rgba,
    .inputs_may_be_products = 1,
    .open = picture_open,
    .destroy = picture_destroy,
    .state_create = picture_state_create,
    .state_free = picture_state_free,
    .read_block = picture_read_block,
};
