/* SPDX-License-Identifier: MIT */
/*
 * Private: the picture of a raster as mmcl_rgb (rgb.c) computes it, shared
 * with the lazy picture (products/product_rgb.c), which renders the same
 * tiles when read: the source, the statistics and limits of a picture
 * (a job), and the per-thread worker that reads a tile and renders it.
 */
#ifndef MMCL_RGB_INTERNAL_H
#define MMCL_RGB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <gdal.h>

#include "mmcl/product.h"

#include "colormaps_internal.h"
#include "tiles_internal.h"
#include "writer_internal.h"

enum { MMCL__RGB_MAX_CH = 3 };

typedef enum mmcl__rgb_mode {
    MMCL__RGB_PCA,
    MMCL__RGB_DIRECT,
    MMCL__RGB_COLORMAP
} mmcl__rgb_mode;

typedef enum mmcl__rgb_pass {
    MMCL__RGB_PASS_STATS,
    MMCL__RGB_PASS_HIST,
    MMCL__RGB_PASS_WRITE
} mmcl__rgb_pass;

/*
 * The raster a picture is made of: a GDAL raster, or a lazy product (a
 * descriptor, read through mmcl_product_read so that no GDAL plugin is
 * needed). What the picture needs to know of it is copied at open.
 */
typedef struct mmcl__rgb_source {
    char *name;            /* as given; CPLFree */
    mmcl_product *product; /* a descriptor's product, or NULL; owned */
    int width, height, n_bands;
    double gt[6];
    char *wkt;         /* CPLFree */
    char **band_desc;  /* (n_bands) descriptions, "" when none; CSL */
    int *complex_band; /* (n_bands) GDAL complex types */
    char *product_kind; /* the MMCL PRODUCT metadata, or NULL; CPLFree */
    char *units;        /* the MMCL UNITS metadata, or NULL; CPLFree */
} mmcl__rgb_source;

struct mmcl__shift_wheel;

typedef struct mmcl__rgb_job {
    const mmcl__rgb_source *src;
    const char *in; /* src->name */
    int B;    /* selected bands */
    int *sel; /* (B) 1-based band numbers in the input */
    mmcl__rgb_mode mode;
    int n_ch; /* channels computed: PCs (2 or 3), 3 bands, or 1 band */
    int tile;
    mmcl__rgb_pass pass;
    /* Pass 1 totals, merged in tile order. */
    double count;
    double *mean;        /* (B) */
    double *m2;          /* (B, B) co-moments sum (x - mean)(x - mean)^T; PCA */
    double *vmin, *vmax; /* (B) */
    double *delta;       /* (B) merge scratch */
    /* PCA: channel j = proj[j] . (x - center). */
    float *proj;   /* (n_ch, B) */
    float *center; /* (B) */
    /* Pass 2: histogram ranges and counts. */
    double hlo[MMCL__RGB_MAX_CH], hhi[MMCL__RGB_MAX_CH];
    uint64_t *hist; /* (n_ch, HIST_BINS) */
    /* Pass 3: stretch limits, colour map, output. */
    double lo[MMCL__RGB_MAX_CH], hi[MMCL__RGB_MAX_CH];
    const mmcl__rgb8 *lut;
    mmcl__writer *writer;
    /* A shift field blended over the picture (rgb --over), or NULL. */
    const struct mmcl__shift_wheel *wheel;
} mmcl__rgb_job;

typedef struct mmcl__rgb_worker {
    int level, factor;    /* level read; its decimation factor */
    GDALDatasetH ds;      /* a GDAL source: this worker's own handle */
    float *all;           /* a product source: (n_bands, n) of a read */
    int *has_nd;     /* (B) */
    double *nd;      /* (B) */
    int *mask_flags; /* (B) GDALGetMaskFlags */
    float *x;        /* (B, n) band-sequential values of the tile */
    uint8_t *valid;  /* (n) */
    uint8_t *mask;   /* (n) scratch for mask bands */
    float *y;        /* (n_ch, n) principal components */
    double *work;    /* (CHUNK, B) centred rows */
    /* Statistics of the current tile (pass 1). */
    double count;
    double *mean, *m2, *vmin, *vmax;
    uint64_t *hist; /* (n_ch, HIST_BINS) of the current tile (pass 2) */
    uint8_t *out;   /* (4, n) RGBA (pass 3) */
} mmcl__rgb_worker;

/* What the picture shows, for the metadata and the legend. */
typedef struct mmcl__rgb_info {
    char *source_product; /* the input's MMCL PRODUCT, or NULL; CPLFree */
    const char *colormap; /* colormap mode */
    char *units;          /* the input's MMCL UNITS, or NULL; CPLFree */
    int diverging;
    int range_given;
    double p_lo, p_hi;
    double lambda[MMCL__RGB_MAX_CH];    /* PCA eigenvalues */
    double explained[MMCL__RGB_MAX_CH]; /* PCA: lambda / total variance */
    double total_var;
    double *loadings; /* PCA: (n_ch, B) */
} mmcl__rgb_info;

/* Opens @p in (a raster, or a descriptor) and copies what the picture
 * needs to know of it into @p s; mmcl__rgb_source_close() frees it. */
mmcl_status mmcl__rgb_source_open(mmcl_context *ctx, const char *in,
                                  mmcl__rgb_source *s);
void mmcl__rgb_source_close(mmcl__rgb_source *s);

/* Checks that the selected bands of @p src (named @p in) are real. */
mmcl_status mmcl__rgb_check_types(mmcl_context *ctx,
                                  const mmcl__rgb_source *src, const char *in,
                                  const mmcl__rgb_job *job);

/* The mode from @p mode_opt ("auto", "pca", "direct", "colormap") and the
 * selected bands, checked against their number; sets job->mode and
 * job->n_ch. */
mmcl_status mmcl__rgb_choose_mode(mmcl_context *ctx, mmcl__rgb_job *job,
                                  const char *mode_opt, int bands_given,
                                  int range_given);

/* The job's arrays for job->B bands and job->n_ch channels (and the PCA
 * loadings of @p info); mmcl__rgb_job_free() frees the job's. */
mmcl_status mmcl__rgb_job_alloc(mmcl_context *ctx, mmcl__rgb_job *job,
                                mmcl__rgb_info *info);
void mmcl__rgb_job_free(mmcl__rgb_job *job);

/* A worker reading @p level of the job's source (decimated by @p factor),
 * with the buffers of every pass; NULL with an error set.
 * mmcl__rgb_worker_free() frees it (NULL is allowed). */
mmcl__rgb_worker *mmcl__rgb_worker_create(mmcl_context *ctx,
                                          const mmcl__rgb_job *job, int level,
                                          int factor);
void mmcl__rgb_worker_free(mmcl__rgb_worker *w);

/* Reads the selected bands of tile @p t into w->x and sets w->valid. */
mmcl_status mmcl__rgb_read_tile(mmcl_context *ctx, mmcl__rgb_worker *w,
                                const mmcl__rgb_job *job, const mmcl__tile *t);

/* The output channels of the tile just read (n pixels): (n_ch, n). */
const float *mmcl__rgb_channels(mmcl__rgb_worker *w, const mmcl__rgb_job *job,
                                size_t n);

/* The RGBA picture of the tile from its channels @p y into w->out. */
void mmcl__rgb_render(mmcl__rgb_worker *w, const mmcl__rgb_job *job,
                      const float *y, size_t n);

/* The MMCL metadata of a picture (a CSL to be destroyed); @p legend: the
 * legend's file, or NULL. */
char **mmcl__rgb_metadata(const mmcl__rgb_job *job, const mmcl__rgb_info *info,
                          const char *legend);

/* Descriptions of the four output bands (a CSL to be destroyed). */
char **mmcl__rgb_band_names(const mmcl__rgb_source *src,
                            const mmcl__rgb_job *job);

/* The four bands of a picture read as red, green, blue and alpha. */
void mmcl__rgb_set_rgba(GDALDatasetH ds);

/* The legend image @p rgba (band-sequential, 4 x MMCL__LEGEND_H x
 * MMCL__LEGEND_W) as the PNG of @p png_stage; errors name @p legend_png. */
mmcl_status mmcl__rgb_legend_png(mmcl_context *ctx, const unsigned char *rgba,
                                 const char *legend_png,
                                 mmcl__stage *png_stage);

/* What `mmcl rgb` of a shift field (a coreg raster) needs from the rest
 * of the command: the checked output and the legend files (NULL: none),
 * recorded in @p files. */
typedef struct mmcl__rgb_shift_args {
    const char *in, *out;
    const char *over; /* the optical raster drawn under it, or NULL */
    const mmcl_options *o;
    mmcl__files *files;
    const char *format;
    char **co;
    const char *legend_png, *legend_json;
    int range_given;
    double range_lo, range_hi;
} mmcl__rgb_shift_args;

/* A shift field read for its picture: the colour of each block. */
typedef struct mmcl__shift_wheel {
    int w, h;     /* blocks */
    int block;    /* COREG_BLOCK, optical pixels */
    double gt[6]; /* the field's */
    char *wkt;    /* CPLFree */
    double range; /* the magnitude drawn in full colour, optical pixels */
    const char *range_from; /* static */
    size_t n_est;           /* blocks with an estimate */
    unsigned char *rgba;    /* (h * w, 4): alpha 0 where no estimate */
} mmcl__shift_wheel;

/* Reads the shift field @p a->in and colours its blocks (its options
 * checked: those of the other pictures are refused); *@p wh freed by
 * mmcl__shift_wheel_free() (also after a failure). */
mmcl_status mmcl__shift_wheel_open(mmcl_context *ctx,
                                   const mmcl__rgb_shift_args *a,
                                   mmcl__shift_wheel *wh);
void mmcl__shift_wheel_free(mmcl__shift_wheel *wh);

/* Blends each block's colour at half opacity over the RGBA tile @p rgba
 * (band-sequential, @p w x @p h pixels at (@p x0, @p y0) of the optical
 * grid the field lies on); pixels of alpha 0 and blocks without an
 * estimate are left as they are. */
void mmcl__shift_wheel_blend(const mmcl__shift_wheel *wh, int x0, int y0,
                             int w, int h, unsigned char *rgba);

/* @p md (a CSL) with the picture's metadata: how its colours were made
 * (@p scale: picture pixels per block). */
char **mmcl__shift_wheel_metadata(char **md, const mmcl__rgb_shift_args *a,
                                  const mmcl__shift_wheel *wh, int scale);

/* The legend: the wheel as the PNG of @p png_stage and its description as
 * the JSON of @p json_stage. */
mmcl_status mmcl__shift_wheel_legend(mmcl_context *ctx,
                                     const mmcl__rgb_shift_args *a,
                                     const mmcl__shift_wheel *wh,
                                     mmcl__stage *png_stage,
                                     mmcl__stage *json_stage);

/* Logs the size of the field and the range drawn in full colour. */
void mmcl__shift_wheel_log(mmcl_context *ctx, const mmcl__shift_wheel *wh);

/*
 * The colour wheel picture of the shift field @p a->in (rgb_coreg.c): one
 * colour per block (mmcl__shift_colour), each block drawn as its block of
 * optical pixels (COREG_BLOCK) when that keeps the picture at most 8192
 * pixels a side, NaN blocks transparent black; the magnitude at full
 * colour is --range 0,MAX or the 98th percentile of the estimated
 * shifts' magnitudes (at least 0.5 px). The options of the other modes are refused.
 */
mmcl_status mmcl__rgb_shift(mmcl_context *ctx, const mmcl__rgb_shift_args *a);

#endif /* MMCL_RGB_INTERNAL_H */
