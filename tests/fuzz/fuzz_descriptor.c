/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness of the descriptor parser and opener: the input is a
 * descriptor's text, written to d.mmcl.json in a private work folder
 * beside real rasters, a model and an embedding descriptor
 * (fuzz_common.h), opened with mmcl_product_open_with_options() and read
 * a little at every level. Opened as a file, the way a downloaded
 * descriptor is: remote and inline paths are refused, so no request is
 * made.
 */
#define _DEFAULT_SOURCE /* mkdtemp, symlink */
#include <stdint.h>

#include "fuzz_common.h"

static mmcl_context *ctx;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    ctx = mmcl_context_create();
    return ctx ? 0 : 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_write("d.mmcl.json", data, size))
        fuzz_open_and_read(ctx, "d.mmcl.json");
    fuzz_unlink("d.mmcl.json");
    return 0;
}
