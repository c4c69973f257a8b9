/* SPDX-License-Identifier: MIT */
/*
 * The chain of descriptors the calling thread is opening or reading: see
 * chain_internal.h.
 */
#include <stdio.h>
#include <string.h>

#include <cpl_vsi.h>

#include "chain_internal.h"
#include "context_internal.h"

static _Thread_local mmcl__chain tls_chain;

const mmcl__chain *
mmcl__chain_current(void)
{
    return &tls_chain;
}

void
mmcl__chain_adopt(const mmcl__chain *c)
{
    if (c && c != &tls_chain)
        tls_chain = *c;
}

/* The identity of @p path (a descriptor file) into @p f. */
void
mmcl__chain_frame_identify(mmcl__chain_frame *f, const char *path)
{
    VSIStatBufL sb;
    f->path = path;
    f->dev = f->ino = 0;
    if (path && VSIStatL(path, &sb) == 0 && sb.st_ino != 0) {
        f->dev = (unsigned long long)sb.st_dev;
        f->ino = (unsigned long long)sb.st_ino;
    }
}

static int
frame_same(const mmcl__chain_frame *a, const mmcl__chain_frame *b)
{
    if (a->ino || b->ino)
        return a->ino == b->ino && a->dev == b->dev;
    return a->path && b->path && strcmp(a->path, b->path) == 0;
}

/* Whether the descriptor this thread is opening may name remote and
 * inline paths: opened with ALLOW_REMOTE=YES (or inside one that was), or
 * text given by the calling program, as trusted as the program (a file
 * it names is checked in turn). */
int
mmcl__chain_allows_remote(void)
{
    const mmcl__chain *c = &tls_chain;
    return c->n > 0 && (c->f[c->n - 1].allow_remote || c->f[c->n - 1].text);
}

/* Enters descriptor @p f: refused when it is already being opened or read
 * on this thread (a cycle) or the chain is full. */
mmcl_status
mmcl__chain_enter(mmcl_context *ctx, const mmcl__chain_frame *f)
{
    mmcl__chain *c = &tls_chain;
    for (int i = 0; i < c->n; i++) {
        if (!frame_same(&c->f[i], f))
            continue;
        if (i == c->n - 1)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "descriptor '%s' refers to itself (a cycle)",
                               c->f[i].name);
        char through[1024] = "";
        size_t len = 0;
        for (int k = i + 1; k < c->n && len < sizeof(through); k++)
            len += (size_t)snprintf(through + len, sizeof(through) - len,
                                    "%s'%s'", k > i + 1 ? " and " : "",
                                    c->f[k].name);
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "descriptor '%s' refers to itself through %s (a "
                           "cycle)",
                           c->f[i].name, through);
    }
    if (c->n == MMCL__CHAIN_MAX) {
        char chain[1024] = "";
        size_t len = 0;
        for (int k = 0; k < c->n && len < sizeof(chain); k++)
            len += (size_t)snprintf(chain + len, sizeof(chain) - len,
                                    "'%s' > ", c->f[k].name);
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "descriptors nested deeper than %d: %s'%s'",
                           MMCL__CHAIN_MAX, chain, f->name);
    }
    c->f[c->n] = *f;
    if (c->n > 0 && c->f[c->n - 1].allow_remote)
        c->f[c->n].allow_remote = 1;
    c->n++;
    return MMCL_OK;
}

void
mmcl__chain_leave(void)
{
    if (tls_chain.n > 0)
        tls_chain.n--;
}
