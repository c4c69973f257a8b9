/* SPDX-License-Identifier: MIT */
/*
 * Private to the products layer: a lazy product (struct mmcl_product) is
 * one kind of a small table (mmcl__product_kind), each kind in its own
 * file: product_map.c (embedding, infoloss and audit maps) and product_rgb.c
 * (pictures). product.c holds what every kind shares: the descriptor's
 * envelope (JSON, version, kind, paths), the levels, the pool of idle
 * read states and the cutting of a read into blocks, the public
 * mmcl_product API.
 */
#ifndef MMCL_PRODUCT_INTERNAL_H
#define MMCL_PRODUCT_INTERNAL_H

#include <threads.h>

#include <cjson/cJSON.h>

#include "mmcl/product.h"

#include "chain_internal.h"
#include "output_internal.h"
#include "tiles_internal.h"

enum {
    MMCL__PRODUCT_MAX_LEVELS = 24,
    MMCL__PRODUCT_OVERVIEW_MIN_EDGE = 256 /* the last overview is about
                                             this long */
};

typedef struct mmcl__product_kind mmcl__product_kind;

/* One level: full resolution (0) or an overview. */
typedef struct mmcl__product_level {
    int factor;
    int width, height;
    double gt[6];
    char **metadata; /* MMCL domain */
    void **idle;     /* pool of idle read states (the kind's) */
    int n_idle, cap_idle;
} mmcl__product_level;

struct mmcl_product {
    const mmcl__product_kind *kind;
    void *impl;               /* the kind's part */
    mmcl__chain_frame self;   /* this descriptor in a thread's chain (reads) */
    char *self_name;          /* self.name and self.path */
    int n_bands;
    char **band_names;        /* (n_bands) CSL */
    char **band_units;        /* (n_bands) CSL, or NULL */
    char **band_long_names;   /* (n_bands) CSL, or NULL */
    char *wkt;
    int tile, threads;
    int n_levels;
    mmcl__product_level levels[MMCL__PRODUCT_MAX_LEVELS];
    mtx_t lock; /* the pools, and what a kind opens on first read */
};

/* A read of a window of one level, cut into the blocks of the level's
 * grid (p->tile): block i is block (bx0 + i % nbx, by0 + i / nbx). */
typedef struct mmcl__product_window {
    mmcl_product *p;
    int level;
    int x, y, w, h;    /* the window */
    int bx0, by0, nbx; /* first block and blocks per row */
    int n_blocks;
    void *buf;         /* (bands, h, w) of the kind's sample type */
} mmcl__product_window;

/*
 * A kind of product. A read state is what one thread needs to compute
 * blocks of one level (GDAL handles, scratch); product.c keeps the idle
 * ones in a pool per level and hands one to each thread of a read.
 */
struct mmcl__product_kind {
    const char *name; /* the descriptor's "product" */
    mmcl_sample_type sample_type;
    int has_nodata;                  /* NaN */
    const char *const *band_colors;  /* colour interpretations, or NULL */
    int inputs_may_be_products;      /* else "model", "optical" and "sar"
                                        are checked first (product.c) */
    /* Reads the rest of the parsed descriptor @p j and opens it into @p p
     * (impl, bands, wkt, tile, threads, levels with their metadata).
     * @p threads >= 0 replaces the descriptor's THREADS. On failure the
     * caller destroys @p p. */
    mmcl_status (*open)(mmcl_context *ctx, mmcl_product *p, const cJSON *j,
                        const char *name, const char *dir, int threads);
    void (*destroy)(mmcl_product *p); /* impl; idle states are freed */
    /* What @p level needs before its states are made (NULL: nothing);
     * called with p->lock held. */
    mmcl_status (*level_prepare)(mmcl_context *ctx, mmcl_product *p,
                                 int level);
    void *(*state_create)(mmcl_context *ctx, mmcl_product *p, int level);
    void (*state_free)(void *state);
    /* Computes block @p index of @p win into win->buf (its part of it). */
    mmcl_status (*read_block)(mmcl_context *ctx,
                              const mmcl__product_window *win, void *state,
                              int index);
    /* mmcl_product_figures (NULL: none); @p kv is set to an empty list. */
    mmcl_status (*figures)(mmcl_context *ctx, mmcl_product *p,
                           const char *const **kv);
};

extern const mmcl__product_kind mmcl__product_embedding;
extern const mmcl__product_kind mmcl__product_infoloss;
extern const mmcl__product_kind mmcl__product_audit;
extern const mmcl__product_kind mmcl__product_rgb;

/* ---- product.c: what the kinds share ---------------------------------- */

/* Checks a path that descriptor @p name gives under @p key: a local file
 * (a plain path, or inside a local archive through /vsizip/, /vsitar/,
 * /vsigzip/, /vsi7z/, /vsirar/), or anything when remote and inline paths
 * are allowed (include/mmcl/product.h). MMCL_ERR_INVALID_ARG naming the
 * key and the path otherwise. */
mmcl_status mmcl__product_check_path(mmcl_context *ctx, const char *name,
                                     const char *key, const char *path);

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

/* The message of a failed @p key of descriptor @p name:
 * "descriptor 'NAME': WHAT \"KEY\"" (MMCL_ERR_FORMAT). */
mmcl_status mmcl__product_bad_key(mmcl_context *ctx, const char *name,
                                  const char *key, const char *what);

/* The error now in @p ctx, prefixed with "descriptor 'NAME': ". */
mmcl_status mmcl__product_error_in(mmcl_context *ctx, const char *name);

/*
 * Levels 1..: factors 2, 4, ... of level 0 (set by the kind) while the
 * previous level is longer than MMCL__PRODUCT_OVERVIEW_MIN_EDGE and both
 * sides stay at least @p min_side; none when @p overviews is 0.
 */
void mmcl__product_plan_levels(mmcl_product *p, int overviews, int min_side);

/* Every level's metadata: @p md (taken), with APPROXIMATE=YES and
 * OVERVIEW_FACTOR on the overviews. */
void mmcl__product_set_metadata(mmcl_product *p, char **md);

/* An idle read state of @p level, or a new one; NULL with an error set. */
void *mmcl__product_state_take(mmcl_context *ctx, mmcl_product *p,
                               int level);
/* Puts @p state back in the pool of @p level (freed when it cannot). */
void mmcl__product_state_give(mmcl_product *p, int level, void *state);

/* Block @p index of @p win: @p block, the whole block (clipped to the
 * level), and @p part, the part of it inside the window (either NULL). */
void mmcl__product_block(const mmcl__product_window *win, int index,
                         mmcl__tile *block, mmcl__tile *part);

/* The window @p x, @p y, @p w, @p h of @p level of @p p cut into blocks. */
void mmcl__product_window_init(mmcl__product_window *win, mmcl_product *p,
                               int level, int x, int y, int w, int h,
                               void *buf);

/* A read of @p p enters the thread's chain as its descriptor (the caller
 * leaves it with mmcl__chain_leave). */
mmcl_status mmcl__product_enter(mmcl_context *ctx, const mmcl_product *p);

#endif /* MMCL_PRODUCT_INTERNAL_H */
