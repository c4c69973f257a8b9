/* SPDX-License-Identifier: MIT */
/*
 * Private: what product.c (descriptors, levels, reads) and rgb.c (lazy
 * pictures) share. A lazy picture ("product": "rgb") is opened and
 * rendered by rgb.c behind the public mmcl_product API of product.c.
 */
#ifndef MMCL_PRODUCT_INTERNAL_H
#define MMCL_PRODUCT_INTERNAL_H

#include <cjson/cJSON.h>

#include "mmcl/product.h"

#include "output_internal.h"

/* ---- product.c -------------------------------------------------------- */

enum { MMCL__DESCRIPTOR_VERSION = 1 };

/* Checks a path that descriptor @p name gives under @p key: a local file
 * (a plain path, or inside a local archive through /vsizip/, /vsitar/,
 * /vsigzip/, /vsi7z/, /vsirar/), or anything when remote and inline paths
 * are allowed (include/mmcl/product.h). MMCL_ERR_INVALID_ARG naming the
 * key and the path otherwise. */
mmcl_status mmcl__product_check_path(mmcl_context *ctx, const char *name,
                                     const char *key, const char *path);
/* The same test without a message: 1 when @p path may be opened. */
int mmcl__product_path_allowed(const char *path);

/* @p path of a descriptor in folder @p dir made usable: relative names are
 * taken relative to @p dir (NULL or "": kept), special names (VRT text,
 * /vsi paths, "DRIVER:..." names) are kept. A CPLStrdup'ed string. */
char *mmcl__product_resolve_path(const char *dir, const char *path);

/* @p path as a descriptor written at @p descriptor_path should store it:
 * relative to the descriptor's folder when inside it, else absolute;
 * names that are not files are stored as given. NULL on no memory. */
cJSON *mmcl__product_stored_path(const char *descriptor_path,
                                 const char *path);

/* Writes the descriptor @p j of the output @p path into its @p stage
 * (output_internal.h), after checking that it opens as GDAL will open it
 * at @p path. The caller commits the stage. */
mmcl_status mmcl__product_write_json(mmcl_context *ctx, mmcl__stage *stage,
                                     const char *path, const cJSON *j);

/* Whether @p name names a descriptor rather than a raster: "MMCL:" prefix,
 * JSON text, or a name ending in ".json". */
int mmcl__product_is_descriptor(const char *name);

/* ---- rgb.c: lazy pictures --------------------------------------------- */

typedef struct mmcl__rgb_view mmcl__rgb_view;

/*
 * Opens the picture a parsed descriptor @p j describes (its "product" is
 * "rgb"; version checked by the caller). @p name is for messages, @p dir
 * the folder relative paths are taken from (NULL: the current folder).
 * @p threads_override >= 0 replaces the descriptor's THREADS.
 */
mmcl_status mmcl__rgb_view_open(mmcl_context *ctx, const cJSON *j,
                                const char *name, const char *dir,
                                int threads_override, mmcl__rgb_view **out);
void mmcl__rgb_view_destroy(mmcl__rgb_view *v);

int mmcl__rgb_view_level_count(const mmcl__rgb_view *v);
/* Geometry of @p level (valid: 0 <= level < count). */
void mmcl__rgb_view_level(const mmcl__rgb_view *v, int level, int *factor,
                          int *width, int *height, double gt[6]);
const char *mmcl__rgb_view_srs_wkt(const mmcl__rgb_view *v);
/* Four band descriptions (CSL owned by @p v). */
const char *const *mmcl__rgb_view_band_names(const mmcl__rgb_view *v);
/* MMCL metadata of @p level (CSL owned by @p v). */
const char *const *mmcl__rgb_view_metadata(const mmcl__rgb_view *v,
                                           int level);
int mmcl__rgb_view_block_size(const mmcl__rgb_view *v);

/* The RGBA window (x, y, w, h) of @p level into @p buf, (4, h, w) bytes;
 * the window is inside the level (checked by the caller). */
mmcl_status mmcl__rgb_view_read(mmcl_context *ctx, mmcl__rgb_view *v,
                                int level, int x, int y, int w, int h,
                                unsigned char *buf);

#endif /* MMCL_PRODUCT_INTERNAL_H */
