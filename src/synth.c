/* SPDX-License-Identifier: MIT */
#include "mmcl/synth.h"

#include "context_internal.h"

mmcl_status
mmcl_synth(mmcl_context *ctx, const char *outdir, const mmcl_options *opts)
{
    (void)outdir;
    (void)opts;
    return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED, "synth: work in progress");
}
