/* SPDX-License-Identifier: MIT */
/*
 * Pictures of rasters (`mmcl rgb`): an embedding as an RGB quick-look of
 * its first three principal components, three bands as red, green and
 * blue, or a single-band map (an information-loss band) through a colour
 * map with its colour scale.
 */
#ifndef MMCL_RGB_H
#define MMCL_RGB_H

#include "mmcl/context.h"
#include "mmcl/export.h"
#include "mmcl/options.h"

MMCL_BEGIN_DECLS

/**
 * Writes a picture of the raster @p in as @p out: a 4-band RGBA Byte
 * raster on the grid of @p in (same size, geotransform and CRS), bands
 * interpreted as red, green, blue and alpha. Alpha is 0 (transparent) where
 * any selected band is invalid (nodata, NaN or masked) and 255 elsewhere;
 * invalid pixels are (0, 0, 0, 0).
 *
 * The bands shown are BANDS (numbers or band descriptions, e.g. "1,2,5" or
 * "infoloss_optical"); by default every band, or on an information-loss
 * map (MMCL PRODUCT=infoloss) its first band. MODE picks the picture:
 *   - pca: the first three principal components of the selected bands
 *     (covariance over the valid pixels, signs fixed so that each
 *     component's largest loading is positive) as red, green and blue;
 *     with two bands, blue is 0;
 *   - direct: three selected bands as red, green and blue;
 *   - colormap: one band through COLORMAP (viridis, magma, gray, or rdbu_r,
 *     a blue-white-red map centred on 0, the automatic choice for bands
 *     whose description starts with "excess"), and, unless LEGEND=NO, its
 *     colour scale written beside @p out as <OUT without extension>
 *     .legend.png (480 x 120: a title naming the band, a colour bar with
 *     a triangle at each end for the values clipped to the end colours,
 *     five ticks with their values, the unit) and .legend.json;
 *   - auto (default): colormap for one band, direct for exactly three
 *     bands given in BANDS, pca otherwise.
 * Each channel is stretched linearly from the STRETCH percentiles of its
 * valid values (default 2,98), or from RANGE (MIN,MAX; colormap and direct
 * modes), to 0..255 or to the ends of the colour map; values outside are
 * clamped. The MMCL metadata domain of @p out records the source, the
 * bands, the mode, the stretch limits of each channel, and the PCA
 * eigenvalues, explained variance and loadings or the colour map and its
 * value range. The result does not depend on THREADS; another TILE merges
 * the statistics in another order, which can move a pixel by one level.
 *
 * With LAZY=YES, @p out is instead a descriptor (*.mmcl.json, see
 * mmcl/product.h) that holds the statistics computed above; the GDAL
 * plugin renders it block by block, equal byte for byte to the file
 * written without LAZY. FORMAT and CO do not apply; the legend is
 * written beside the descriptor.
 *
 * @param ctx  Context for errors; not NULL.
 * @param in   Input raster (any GDAL dataset name), or a lazy descriptor
 *             (a name ending in .json, "MMCL:..." or JSON text), read
 *             through mmcl_product_read() without the plugin; not NULL.
 *             Read only.
 * @param out  Output path. Written in a private folder beside it and moved
 *             into place when complete; an existing file (or legend) is
 *             kept unless the OVERWRITE option is set, and then only a
 *             picture (legend) of an earlier call is replaced, never the
 *             input or a file it reads (a descriptor's model and
 *             rasters). FORMAT may be any GDAL raster format that holds
 *             Byte data, e.g. GTiff, COG or PNG (with GDAL's .aux.xml
 *             sidecar for the georeferencing); without FORMAT, the format
 *             follows the extension of @p out as in GDAL's utilities
 *             (.png: PNG, .tif or none: GTiff; an unknown one is an error).
 * @param opts Options built for "rgb" (see mmcl_option_defs("rgb")); NULL
 *             for defaults.
 * @return MMCL_OK, or an error with the reason in mmcl_context_errmsg(ctx):
 *         an input that is not a raster, a band that does not exist, a mode
 *         that does not fit the number of bands, or an input without any
 *         valid pixel. On error no output is left behind.
 * Thread-safety: reentrant; one context per thread. Opens its own GDAL
 * handles per worker thread.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_rgb(mmcl_context *ctx, const char *in,
                              const char *out, const mmcl_options *opts);

MMCL_END_DECLS

#endif /* MMCL_RGB_H */
