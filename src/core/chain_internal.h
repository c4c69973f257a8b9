/* SPDX-License-Identifier: MIT */
/* The descriptors a thread is opening or reading (chain.c). */
#ifndef MMCL_CHAIN_INTERNAL_H
#define MMCL_CHAIN_INTERNAL_H

#include "mmcl/context.h"

/*
 * A descriptor names other files (a picture its source; a VRT named as a
 * map's optical or SAR may wrap a descriptor, opened through GDAL and the
 * plugin), so opening or reading one can come back to it. Each thread
 * keeps the chain of descriptors it is opening or reading, each known by
 * device and inode (by its name when it is no file); a descriptor already
 * in the chain is a cycle, and a chain longer than MMCL__CHAIN_MAX is
 * refused. The tile pool hands the chain of the thread that starts a run
 * to its workers (mmcl__chain_adopt), so that reads on worker threads see
 * it too. A frame also carries ALLOW_REMOTE given as an open option, which
 * the descriptors opened beneath it inherit. It lives in core because the
 * tile pool carries it; what a descriptor is stays in products/.
 */
enum {
    /* Descriptors opened or read inside one another on one thread, at
     * most (include/mmcl/product.h: a picture of a map is 2). */
    MMCL__CHAIN_MAX = 4
};

typedef struct mmcl__chain_frame {
    const char *name;             /* as given, for messages */
    const char *path;             /* for identity without an inode */
    unsigned long long dev, ino;  /* ino 0: no file identity */
    int allow_remote; /* ALLOW_REMOTE=YES here or in an outer frame */
    int text;         /* descriptor text given by the caller */
} mmcl__chain_frame;

typedef struct mmcl__chain {
    int n;
    mmcl__chain_frame f[MMCL__CHAIN_MAX];
} mmcl__chain;

/* The calling thread's chain; a run of the tile pool hands it to its
 * workers: mmcl__chain_current() on the thread that starts the run (valid
 * while the run lasts), mmcl__chain_adopt() first thing on each worker. */
const mmcl__chain *mmcl__chain_current(void);
void mmcl__chain_adopt(const mmcl__chain *chain);

/* The identity of @p path (a descriptor file) into @p f. */
void mmcl__chain_frame_identify(mmcl__chain_frame *f, const char *path);

/* Whether the descriptor this thread is opening may name remote and
 * inline paths (see chain.c). */
int mmcl__chain_allows_remote(void);

/* Enters descriptor @p f: refused when it is already being opened or read
 * on this thread (a cycle) or the chain is full. */
mmcl_status mmcl__chain_enter(mmcl_context *ctx, const mmcl__chain_frame *f);

/* Leaves the innermost descriptor. */
void mmcl__chain_leave(void);

#endif /* MMCL_CHAIN_INTERNAL_H */
