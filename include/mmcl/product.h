/* SPDX-License-Identifier: MIT */
/*
 * Lazy products (design sections 4.2 and 6): an embedding, an
 * information-loss map (of a model, or the audit of an embedding raster
 * made elsewhere) or a picture of either described by a small JSON
 * descriptor (model + optical + SAR + product + options, or source +
 * statistics) and computed window by window when it is read, never written
 * whole. This is what the GDAL driver plugin (gdal_MMCL.so) serves to GDAL
 * programs and QGIS, and what `mmcl embed|infoloss|audit|rgb --lazy`
 * writes.
 *
 * A map's descriptor (*.mmcl.json) is a JSON object:
 *   "product"   "embedding" or "infoloss"                        (required)
 *   "model"     the model file (.mmcl)                           (required)
 *   "optical"   a raster, or an array of single-band rasters     (required)
 *   "sar"       a raster, or an array of single-band rasters     (required)
 *   "mmcl_descriptor"  format version, 1 (optional; newer is refused)
 *   "overviews" true (default) or false: offer the decimated levels
 *   "figures"   infoloss only: false to leave out the global figures
 * and the options of the matching command in lower case, with the same
 * meaning, defaults and ranges as in mmcl_option_defs("embed") or
 * mmcl_option_defs("infoloss"): "modality", "non_redundancy", "tile",
 * "threads". Values are JSON strings, numbers or booleans. Unknown keys,
 * and the output-only options (format, co, overwrite, lazy, report), are
 * errors that name the key. Relative paths are relative to the folder of
 * the descriptor (to the current folder for descriptor text).
 *
 * An audit map's descriptor ("product": "audit", written by mmcl_audit()
 * with LAZY=YES) names no model: it names the "embedding" raster, the
 * "optical" and "sar" rasters, and holds the "fit" of the audit (the
 * pair's standardization, the unimodal PCA and the three decoders of each
 * modality, their noise floors, and the samples and blocks they were fitted
 * on: src/maps/audit_fit_internal.h), with the options of
 * mmcl_option_defs("audit") that decide the maps (dequantize,
 * embedding_bands, embedding_resampling, non_redundancy, mask, the pair's
 * resampling, sar_transform, speckle, stack_resampling, error_threshold;
 * tile, threads). Its bands and level 0 are those mmcl_audit() writes with
 * the same rasters and options; each overview reads the embedding raster
 * on its own coarser grid.
 *
 * A picture's descriptor ("product": "rgb", written by mmcl_rgb() with
 * LAZY=YES) holds its "source" (a raster, or another descriptor, read
 * through this API), the "bands" shown, the "mode" (pca, direct or
 * colormap), and the statistics mmcl_rgb computed over the whole source
 * when it was written: "limits" (per channel), "stretch" or "range",
 * "valid_pixels", "colormap", "pca" (mean, components, eigenvalues,
 * explained_variance, total_variance), "legend"; plus "tile", "threads" and
 * "overviews". Its four Byte bands (red, green, blue, alpha) equal the file
 * mmcl_rgb writes byte for byte; its levels are the source's (for a raster
 * source, GDAL's decimated reads of it).
 *
 * What a descriptor may name (it may come from anywhere, so opening it
 * is kept to what it says on disk):
 * - Local files only. A path that is inline XML or JSON text, a /vsi
 *   path other than a file inside a local archive (/vsizip/, /vsitar/,
 *   /vsigzip/, /vsi7z/, /vsirar/ of a plain path: read like a folder,
 *   no request made), or a "NAME:..." connection string or URL (a ':'
 *   with no '/' before it) is refused before anything is opened, with
 *   MMCL_ERR_INVALID_ARG naming the key and the path, unless the GDAL
 *   configuration option MMCL_DESCRIPTOR_ALLOW_REMOTE is YES or the
 *   descriptor is opened with the open option ALLOW_REMOTE=YES (which
 *   the descriptors it names inherit). Descriptor text given to
 *   mmcl_product_open() is as trusted as its caller: its own paths are
 *   not checked, the files it names are.
 * - No cycles. Each thread keeps the chain of descriptors it is opening
 *   or reading (by device and inode; the tile pool hands it to its
 *   workers); a descriptor already in the chain, reached directly (a
 *   picture's source) or through GDAL (a VRT wrapping it, opened by the
 *   plugin), is refused: "descriptor 'a.mmcl.json' refers to itself
 *   through 'b.mmcl.json' (a cycle)". A chain of more than 4 is refused
 *   ("descriptors nested deeper than 4"); a picture of a map is 2.
 * - A map's "model", "embedding", "optical" and "sar" are never
 *   descriptors (a name
 *   with the MMCL: prefix, JSON text or ending in .mmcl.json): refused as
 *   "not a raster" / "not a model file".
 * - A key present twice in one object, at any depth, is refused.
 *
 * Levels: level 0 is the full-resolution map on the optical grid, equal
 * bit for bit to what mmcl_embed() / mmcl_infoloss() write with the same
 * model, rasters and options. Levels 1..n are overviews by factors 2, 4,
 * 8, ... (down to about 256 pixels on the longer side): the same model run
 * on the optical averaged onto the coarser grid and the SAR warped onto
 * it. They are approximations (the patches see a coarser texture), marked
 * APPROXIMATE=YES and OVERVIEW_FACTOR=f in their metadata, and cost about
 * 1/f^2 of the full resolution.
 *
 * BLAS: a read runs its GEMMs on one BLAS thread (its parallelism is over
 * blocks). The first of concurrent reads sets the process's OpenBLAS
 * thread count to 1 and the last restores it, so concurrent reads never
 * change it under each other.
 *
 * Thread-safety: a product is immutable once opened, except for caches
 * kept behind a lock; every function below may be called concurrently on
 * one product from several threads, each with its own context. Reads take
 * per-thread state (own GDAL handles, encoder scratch and buffers) from a
 * small pool kept by the product and guarded by a mutex: a state is
 * created when none is idle and kept for the next read until the product
 * is destroyed.
 */
#ifndef MMCL_PRODUCT_H
#define MMCL_PRODUCT_H

#include <stddef.h>

#include "mmcl/context.h"
#include "mmcl/export.h"
#include "mmcl/options.h"

MMCL_BEGIN_DECLS

typedef struct mmcl_product mmcl_product;

/** Sample type of a product's bands. */
typedef enum mmcl_sample_type {
    MMCL_SAMPLE_FLOAT32 = 1,
    MMCL_SAMPLE_BYTE = 2
} mmcl_sample_type;

/**
 * Opens the product a descriptor describes: loads the model, opens the
 * rasters and checks them against the model (band counts, patch size,
 * footprint overlap). Nothing is computed yet.
 *
 * @param ctx        Context for errors; not NULL.
 * @param descriptor A descriptor file path, the same prefixed with "MMCL:",
 *                   or the JSON text itself (starting with '{'). Not NULL.
 * @param out        Receives the product, to be freed with
 *                   mmcl_product_destroy(); NULL on error. Not NULL.
 * @return MMCL_OK, or MMCL_ERR_FORMAT (not JSON, a missing or mistyped
 *         key, a duplicate key, a newer descriptor version),
 *         MMCL_ERR_INVALID_ARG (unknown key or option, bad value, rasters
 *         that do not match the model, a cycle, nesting too deep, a
 *         remote or inline path not allowed),
 *         MMCL_ERR_IO (a file that cannot be read) or what loading the
 *         model reports; the message names the key or file.
 * Thread-safety: reentrant; one context per thread.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_product_open(mmcl_context *ctx,
                                       const char *descriptor,
                                       mmcl_product **out);

/**
 * As mmcl_product_open(), with open options that override the descriptor:
 * a NULL-terminated list of "KEY=VALUE" strings (a GDAL open-option list),
 * NULL for none. The keys are THREADS (threads of a read of several
 * blocks; 0 = one per core), with the range of mmcl_option_defs("embed"),
 * and ALLOW_REMOTE (YES: the descriptor may name remote and inline paths,
 * see above). Options change how a product is computed, never its values.
 * @return As mmcl_product_open(); MMCL_ERR_INVALID_ARG for an unknown key
 *         or a bad value.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_product_open_with_options(
    mmcl_context *ctx, const char *descriptor, const char *const *options,
    mmcl_product **out);

/** Frees @p product and its pool of read states. NULL is allowed.
 * No read may be running on it. @since 0.1 */
MMCL_API void mmcl_product_destroy(mmcl_product *product);

/** "embedding", "infoloss", "audit" or "rgb" (static string).
 * @since 0.1 */
MMCL_API const char *mmcl_product_kind(const mmcl_product *product);

/** Number of levels: 1 (full resolution) + the overviews. @since 0.1 */
MMCL_API int mmcl_product_level_count(const mmcl_product *product);

/** Decimation factor of @p level: 1 for level 0, then 2, 4, 8, ...;
 * 0 for a level that does not exist. @since 0.1 */
MMCL_API int mmcl_product_overview_factor(const mmcl_product *product,
                                          int level);

/** Width and height in pixels of @p level (0 for a level that does not
 * exist). Level 0 is the optical grid. @since 0.1 */
MMCL_API int mmcl_product_width(const mmcl_product *product, int level);
MMCL_API int mmcl_product_height(const mmcl_product *product, int level);

/** The GDAL geotransform of @p level into @p gt (not NULL); zeros for a
 * level that does not exist. @since 0.1 */
MMCL_API void mmcl_product_geotransform(const mmcl_product *product,
                                        int level, double gt[6]);

/** CRS of the optical grid as WKT, owned by @p product (valid until it is
 * destroyed). Never NULL. @since 0.1 */
MMCL_API const char *mmcl_product_srs_wkt(const mmcl_product *product);

/** Number of bands. @since 0.1 */
MMCL_API int mmcl_product_band_count(const mmcl_product *product);

/** Description of band @p band (0-based), as the written file has it
 * ("emb_000", "infoloss_optical", ...), owned by @p product; NULL when out
 * of range. @since 0.1 */
MMCL_API const char *mmcl_product_band_description(
    const mmcl_product *product, int band);

/** Unit of band @p band (0-based): "standardized band variance" for the
 * information-loss bands, "dimensionless" for embeddings; NULL for a
 * picture or out of range. Owned by @p product. @since 0.1 */
MMCL_API const char *mmcl_product_band_unit(const mmcl_product *product,
                                            int band);

/** What band @p band (0-based) means, in a sentence (the written file's
 * LONG_NAME band metadata); NULL for a picture or out of range. Owned by
 * @p product. @since 0.1 */
MMCL_API const char *mmcl_product_band_long_name(
    const mmcl_product *product, int band);

/** Sample type of every band (MMCL_SAMPLE_FLOAT32 for embedding and
 * infoloss, MMCL_SAMPLE_BYTE for rgb). @since 0.1 */
MMCL_API mmcl_sample_type mmcl_product_sample_type(
    const mmcl_product *product);

/** GDAL's colour interpretation name of band @p band (0-based): "Red",
 * "Green", "Blue", "Alpha" for a picture; NULL for the maps (undefined) or
 * out of range. Static string. @since 0.1 */
MMCL_API const char *mmcl_product_band_color(const mmcl_product *product,
                                             int band);

/** 1 and the nodata value in *nodata (NaN for the maps) when the bands
 * have one, else 0 (a picture: its alpha band marks invalid pixels).
 * @p nodata may be NULL. @since 0.1 */
MMCL_API int mmcl_product_nodata(const mmcl_product *product,
                                 double *nodata);

/** Edge in pixels of the square blocks the product computes at once (the
 * TILE option, 256 by default): the natural GDAL block size. @since 0.1 */
MMCL_API int mmcl_product_block_size(const mmcl_product *product);

/**
 * The metadata of @p level for GDAL's MMCL domain, as a NULL-terminated
 * list of "KEY=VALUE" strings: at level 0 what the written file has
 * (PRODUCT, MODEL_HASH, OBJECTIVE, K, PATCH, ...) except the global
 * figures of an information-loss map (see mmcl_product_figures()); at
 * levels > 0 the same plus APPROXIMATE=YES and OVERVIEW_FACTOR=f.
 * @return A list owned by @p product, valid until it is destroyed; NULL
 *         for a level that does not exist.
 * @since 0.1
 */
MMCL_API const char *const *mmcl_product_metadata(const mmcl_product *product,
                                                  int level);

/**
 * The global figures of an information-loss product (R2_ALIGNED_OPTICAL,
 * LOSS_FRACTION_SAR, ... as "KEY=VALUE" strings), equal to what
 * mmcl_infoloss() writes into the file's metadata. They need the whole map:
 * the first call computes it (on THREADS threads, without keeping the
 * pixels) and later calls return the kept result; concurrent callers wait
 * for the one computing.
 *
 * @param kv Receives a NULL-terminated list owned by @p product (valid
 *           until it is destroyed); an empty list for an embedding, or
 *           when the descriptor says "figures": false. Not NULL.
 * @return MMCL_OK, or the error of the pass (kept and returned again by
 *         later calls).
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_product_figures(mmcl_context *ctx,
                                          mmcl_product *product,
                                          const char *const **kv);

/**
 * Computes the window [x, x+w) x [y, y+h) of @p level, all bands, into
 * @p buf: band-sequential (band, row, column), float32 (or bytes for
 * MMCL_SAMPLE_BYTE), w * h values per band; NaN where a value the patch
 * needs is invalid. A window of more than one block is computed on up to
 * THREADS threads; the values do not depend on the window or the thread
 * count, and at level 0 equal mmcl_embed() / mmcl_infoloss() bit for bit.
 *
 * @param buf Not NULL; holds band_count * w * h samples. Not modified on
 *            error, except partly.
 * @return MMCL_OK, or MMCL_ERR_INVALID_ARG (no such level, a window
 *         outside the grid), MMCL_ERR_IO (an input cannot be read),
 *         MMCL_ERR_NO_MEMORY.
 * Thread-safety: safe to call concurrently on one product, each thread
 * with its own context.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_product_read(mmcl_context *ctx,
                                       mmcl_product *product, int level,
                                       int x, int y, int w, int h, void *buf);

/**
 * Writes the descriptor of a lazy product to @p path (conventionally
 * *.mmcl.json) instead of computing it: what `mmcl embed|infoloss --lazy`
 * does. The product is first opened from the descriptor's text, so a
 * descriptor that GDAL could not open is never written.
 *
 * Paths are stored relative to the folder of @p path when they lie inside
 * it, else absolute; names that are not files (VRT text, /vsi paths) are
 * stored as given. The options given in @p opts are stored under their
 * lower-case names (MODALITY, NON_REDUNDANCY always; TILE and THREADS when
 * given). Its QGIS style is written beside it, "<path without
 * extension>.qml" (x.mmcl.qml for x.mmcl.json), with ranges from the
 * product's smallest overview, which is computed for it.
 *
 * @param path      The descriptor to write; an existing file is kept unless
 *                  OVERWRITE is set, and then only a descriptor of the
 *                  same product is replaced, never an input (the model,
 *                  the rasters). Written in a private folder beside it and
 *                  moved into place. Not NULL.
 * @param model     The model file. Not NULL.
 * @param optical   @p n_optical optical rasters, as for mmcl_embed().
 * @param sar       @p n_sar SAR rasters, as for mmcl_embed(); stored as a
 *                  string when there is one, else as an array. Not NULL.
 * @param opts      Options built for "embed" or "infoloss" (they choose
 *                  the product); not NULL. FORMAT, CO and REPORT do not
 *                  apply and are refused when given.
 * @return MMCL_OK or an error with the reason in mmcl_context_errmsg(ctx).
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_product_write_descriptor(
    mmcl_context *ctx, const char *path, const char *model,
    const char *const *optical, size_t n_optical, const char *const *sar,
    size_t n_sar, const mmcl_options *opts);

MMCL_END_DECLS

#endif /* MMCL_PRODUCT_H */
