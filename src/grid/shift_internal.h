/* SPDX-License-Identifier: MIT */
/*
 * Private: a correction of the SAR's misregistration, applied inside the
 * warp (docs/shift.md).
 *
 * A shift (dx, dy) is in optical pixels (x east, y down): a ground feature
 * at optical pixel (x, y) appears in the SAR, warped onto the optical grid,
 * at (x + dx, y + dy). The corrected SAR at (x, y) is therefore the warped
 * SAR sampled at (x + dx, y + dy): the grid source adds the shift to the
 * destination position before its transform, so the SAR is resampled once.
 *
 * A shift is constant (--sar-shift DX,DY) or a field (--sar-shift-field
 * FILE, the raster of mmcl coreg: one pixel per block of the optical grid,
 * bands dx, dy, dx_m, dy_m, confidence). A field's blocks below the
 * minimum confidence are filled from their confident neighbours, and the
 * field is interpolated bilinearly between block centres. It is evaluated
 * at whole-grid positions, so a pixel's shift does not depend on the
 * window it is computed in.
 *
 * A shift is immutable once made and may be shared by threads.
 */
#ifndef MMCL_SHIFT_INTERNAL_H
#define MMCL_SHIFT_INTERNAL_H

#include "mmcl/context.h"
#include "mmcl/error.h"
#include "mmcl/options.h"

#include "grid_source_internal.h"

typedef struct mmcl__shift mmcl__shift;

/*
 * The shift the options of @p opts ask for (SAR_SHIFT, SAR_SHIFT_FIELD,
 * SHIFT_MIN_CONFIDENCE) on the optical grid @p grid, or *out = NULL when
 * they ask for none (no option, or a constant 0,0). A field is read and
 * checked here: its CRS, that it lies on the grid at block spacing, its
 * bands, and that some block has a confident estimate.
 */
mmcl_status mmcl__shift_from_options(mmcl_context *ctx,
                                     const mmcl_options *opts,
                                     const mmcl__grid *grid,
                                     mmcl__shift **out);

/*
 * Checks that @p path is a shift field of mmcl coreg lying on @p grid at
 * block spacing, as the correction's field is checked (its bands dx, dy
 * and confidence, its CRS, its origin and its size), without reading its
 * blocks; *@p block: its block size in pixels of @p grid.
 */
mmcl_status mmcl__shift_field_check(mmcl_context *ctx, const char *path,
                                    const mmcl__grid *grid, int *block);

/* Parses "DX,DY" (two finite numbers); 0 when it is not that. */
int mmcl__shift_parse(const char *text, double *dx, double *dy);

/*
 * A copy of @p base for a grid over the same extent whose pixels are
 * @p sx x @p sy pixels of the grid of @p base (a decimated grid): it is
 * evaluated at positions of the new grid and gives shifts in its pixels.
 */
mmcl__shift *mmcl__shift_copy_scaled(mmcl_context *ctx,
                                     const mmcl__shift *base, double sx,
                                     double sy);
void mmcl__shift_destroy(mmcl__shift *s);

/* The shift (dx, dy) at grid position (x, y) (pixel corners at integers,
 * centres at +0.5), in pixels of the grid (0 where not finite). */
void mmcl__shift_eval(const mmcl__shift *s, double x, double y, double *dx,
                      double *dy);
/* The shift added to the @p n grid positions (x, y), in place: the same
 * values as mmcl__shift_eval, bit for bit, faster along rows. */
void mmcl__shift_apply(const mmcl__shift *s, int n, double *x, double *y);

/* What the shift is, for metadata and messages: "1.5,-0.7" for a constant,
 * the field's file name for a field. Valid while @p s lives. */
const char *mmcl__shift_describe(const mmcl__shift *s);
/* @p md (a CSL, may be NULL) with the shift as the outputs record it in
 * their MMCL metadata: SAR_SHIFT=DX,DY or SAR_SHIFT_FIELD=FILE; unchanged
 * when @p s is NULL. */
char **mmcl__shift_metadata(char **md, const mmcl__shift *s);
/* 1 for a field, 0 for a constant shift. */
int mmcl__shift_is_field(const mmcl__shift *s);
/* The mean shift over the blocks after filling (a field) or the constant. */
void mmcl__shift_mean(const mmcl__shift *s, double *dx, double *dy);

#endif /* MMCL_SHIFT_INTERNAL_H */
