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
enum { MMCL__LEGEND_W = 480, MMCL__LEGEND_H = 120 };
/* Where its colour bar is: LUT entry i is column LEGEND_BAR_X + i. */
enum {
    MMCL__LEGEND_BAR_X = 112,
    MMCL__LEGEND_BAR_Y = 36,
    MMCL__LEGEND_BAR_H = 24,
    /* The clipping arrows: triangles this long left and right of the bar,
     * in the end colours: values beyond the range take those colours. */
    MMCL__LEGEND_ARROW = 16
};
/* Ticks and labels at 0, 1/4, 1/2, 3/4 and 1 of the range. */
enum { MMCL__LEGEND_TICKS = 5 };

/*
 * Draws the colour scale of @p lut over [lo, hi] into @p rgba, a
 * band-sequential (4, MMCL__LEGEND_H, MMCL__LEGEND_W) byte buffer, on an
 * opaque white background: @p title (may be NULL) above; a 256 x 24 px
 * colour bar framed in black with a triangle at each end in the end
 * colour (the values beyond the range are clipped to it); five ticks with
 * their values (printf "%.3g"); under them "unit: @p units" (when not
 * NULL) and what the triangles mean. Text is drawn with FreeType in
 * DejaVu Sans (MMCL_LEGEND_FONT); without that font, the numbers with a
 * built-in 5 x 7 digit font and no words.
 * tick_values (MMCL__LEGEND_TICKS) and tick_x (MMCL__LEGEND_TICKS), when
 * not NULL, receive the value and the pixel column of each tick.
 * Returns the font used: "DejaVu Sans" or "built-in digits" (static).
 */
const char *mmcl__legend_draw(unsigned char *rgba, const mmcl__rgb8 *lut,
                              double lo, double hi, const char *title,
                              const char *units, double *tick_values,
                              int *tick_x);

/*
 * The colour of a shift (@p dx, @p dy) of confidence @p conf in the colour
 * wheel of a shift field (`mmcl rgb` of a coreg raster): the hue is the
 * direction of (dx, dy) as drawn, x to the right and y down (0 degrees red
 * = +dx, 90 degrees = +dy, 180 degrees cyan = -dx); the pure hue is mixed
 * with mid grey (127.5) by the weight min(1, |shift| / @p range) * conf
 * (conf clamped to [0, 1]), which keeps the hue: a zero shift or a block
 * of no confidence is grey, a confident shift of @p range or more the
 * pure hue. Requires @p range > 0 and finite values.
 */
void mmcl__shift_colour(double dx, double dy, double conf, double range,
                        unsigned char rgb[3]);

/* The wheel of mmcl__legend_wheel_draw(): centre and radius, pixels. */
enum { MMCL__WHEEL_X = 64, MMCL__WHEEL_Y = 62, MMCL__WHEEL_R = 50 };

/*
 * Draws the colour wheel of mmcl__shift_colour() for shifts up to
 * @p range (optical pixels) into @p rgba, a band-sequential
 * (4, MMCL__LEGEND_H, MMCL__LEGEND_W) byte buffer on opaque white: the
 * disc of radius MMCL__WHEEL_R (a shift of @p range on its edge, at full
 * confidence), framed in black, a ring at half the range, and beside it
 * @p title and what the colours mean, in DejaVu Sans (without that font:
 * the range in the built-in digits). Returns the font used (static).
 */
const char *mmcl__legend_wheel_draw(unsigned char *rgba, double range,
                                    const char *title);

#endif /* MMCL_COLORMAPS_INTERNAL_H */
