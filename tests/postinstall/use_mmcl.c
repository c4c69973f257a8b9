/* SPDX-License-Identifier: MIT */
/* Uses the installed library: version, options and a failing call. */
#include <stdio.h>
#include <string.h>

#include <mmcl/mmcl.h>

int
main(void)
{
    mmcl_context *ctx = mmcl_context_create();
    size_t n = 0;
    const mmcl_option_def *defs = mmcl_option_defs("align", &n);
    const char *kv[] = {"NO_SUCH_KEY=1", NULL};
    mmcl_options *o = mmcl_options_new(ctx, "align", kv);
    int ok = ctx && defs && n > 0 && !o &&
             strstr(mmcl_context_errmsg(ctx), "NO_SUCH_KEY") != NULL &&
             strcmp(mmcl_version(), MMCL_VERSION_STRING) == 0;
    printf("installed mmcl %s: %zu align options, %s\n", mmcl_version(), n,
           ok ? "ok" : "FAILED");
    mmcl_context_destroy(ctx);
    return ok ? 0 : 1;
}
