/* SPDX-License-Identifier: MIT */
/*
 * Private: colour scales for single-band pictures (`mmcl rgb` in colormap
 * mode): 256-entry RGB lookup tables, and the legend bar drawn beside a
 * colour-mapped output. Pure pixel buffers; no GDAL.
 */
#ifndef MMCL_COLORMAPS_INTERNAL_H
#define MMCL_COLORMAPS_INTERNAL_H

#include <stddef.h>

enum { MMCL__LUT_SIZE = 256 };

/* One colour: red, green, blue. */
typedef unsigned char mmcl__rgb8[3];

/*
 * The lookup table named @p name ("viridis", "magma", "gray", "rdbu_r";
 * case-insensitive): 256 RGB triplets, entry 0 for the low end of the value
 * range and entry 255 for the high end. Static storage; NULL for an unknown
 * name.
 */
const mmcl__rgb8 *mmcl__colormap(const char *name);

/* The canonical (lower-case, static) name of the colour map @p name, or
 * NULL for an unknown name. */
const char *mmcl__colormap_name(const char *name);

/*
 * Index in a lookup table of value @p v stretched linearly from [lo, hi]
 * to [0, 255], rounded to nearest and clamped: round((v - lo) / (hi - lo)
 * * 255). Requires hi > lo and a finite @p v.
 */
int mmcl__colormap_index(double v, double lo, double hi);

/* Size of the legend image mmcl__legend_draw() makes. */
enum { MMCL__LEGEND_W = 352, MMCL__LEGEND_H = 60 };
/* Where its colour bar is: LUT entry i is column LEGEND_BAR_X + i. */
enum {
    MMCL__LEGEND_BAR_X = 48,
    MMCL__LEGEND_BAR_Y = 8,
    MMCL__LEGEND_BAR_H = 24
};
/* Ticks at 0, 1/4, 1/2, 3/4 and 1 of the range; labels under 0, 1/2, 1. */
enum { MMCL__LEGEND_TICKS = 5 };

/*
 * Draws the colour scale of @p lut over [lo, hi] into @p rgba, a
 * band-sequential (4, MMCL__LEGEND_H, MMCL__LEGEND_W) byte buffer: on an
 * opaque white background a 256 x 24 px colour bar framed in black, five
 * tick marks, and the values at the ends and the middle written with a
 * built-in 5 x 7 digit font at twice its size (printf "%.3g").
 * tick_values (MMCL__LEGEND_TICKS) and tick_x (MMCL__LEGEND_TICKS), when
 * not NULL, receive the value and the pixel column of each tick.
 */
void mmcl__legend_draw(unsigned char *rgba, const mmcl__rgb8 *lut, double lo,
                       double hi, double *tick_values, int *tick_x);

#endif /* MMCL_COLORMAPS_INTERNAL_H */
