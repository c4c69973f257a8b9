/* SPDX-License-Identifier: MIT */
/*
 * Private: the QGIS style (".qml") written beside every map mmcl writes
 * and every lazy descriptor, so that QGIS draws it right when it loads
 * the layer (QGIS 3.22 applies "x.qml" to "x.tif", and "x.mmcl.qml" to
 * "x.mmcl.json"):
 *   - an information-loss map: one band as single-band pseudocolour, the
 *     headline structured_excess_optical (else the first structured or
 *     excess band, else band 1), with the colour map `mmcl rgb` gives it:
 *     rdbu_r centred on 0 for the signed bands, viridis otherwise;
 *   - an embedding: its first three components as red, green and blue
 *     (multiband colour; two: red and green), the closest QGIS rendering
 *     of `mmcl rgb`'s picture of the leading components (QGIS cannot
 *     compute a PCA; the components of a CCA or PCA model come in order
 *     of importance); one component in grey;
 *   - an aligned SAR: its first band in grey.
 * Each range is the 2nd to the 98th percentile of the band's valid values,
 * the default stretch of `mmcl rgb`, made symmetric about 0 for a signed
 * band as `mmcl rgb` makes it; without percentiles, the mean +- 2 standard
 * deviations within the minimum and maximum.
 */
#ifndef MMCL_STYLE_INTERNAL_H
#define MMCL_STYLE_INTERNAL_H

#include "mmcl/context.h"

/* One band's description and statistics. */
typedef struct mmcl__style_band {
    const char *name; /* may be NULL */
    double min, max, mean, std;
    int valid; /* the statistics are known (the band has valid pixels) */
    double p_lo, p_hi; /* the 2nd and 98th percentiles, when has_pct */
    int has_pct;
} mmcl__style_band;

/* The stretch of `mmcl rgb`: percentiles MMCL__STYLE_P_LO, _P_HI. */
#define MMCL__STYLE_P_LO 2.0
#define MMCL__STYLE_P_HI 98.0

/*
 * Which bands (0-based, into @p used, at most 3; -1 for none) the style of
 * @p product shows: their ranges are needed. Returns how many, 0 for a
 * product without a style.
 */
int mmcl__style_bands(const char *product, int n_bands,
                      const mmcl__style_band *bands, int used[3]);

/*
 * The values below which @p p_lo and @p p_hi percent of the finite values
 * among the @p n of @p v lie (linear between order statistics), into *lo
 * and *hi; NaN when there is none. @p v is reordered (and its tail past
 * the finite values left as it was: call it once per array).
 */
void mmcl__style_percentiles(float *v, size_t n, double p_lo, double p_hi,
                             double *lo, double *hi);

/*
 * The style of a raster of @p product (the MMCL PRODUCT) with @p n_bands
 * bands: QML text, malloc'd (free()); NULL when mmcl has no style for the
 * product (pictures, synthetic scenes) or no memory.
 */
char *mmcl__style_qml(const char *product, int n_bands,
                      const mmcl__style_band *bands);

/*
 * Writes the style of the staged raster @p raster (its PRODUCT, band
 * descriptions and stored statistics are read back) to @p qml; nothing
 * for a product without a style. MMCL_ERR_IO naming @p shown on failure.
 * A raster writer's style hook (writer_internal.h).
 */
mmcl_status mmcl__style_write_raster(mmcl_context *ctx, const char *raster,
                                     const char *qml, const char *shown);

/* Writes @p text to the new file @p path (a staged side file). */
mmcl_status mmcl__style_write_file(mmcl_context *ctx, const char *path,
                                   const char *text, const char *shown);

#endif /* MMCL_STYLE_INTERNAL_H */
