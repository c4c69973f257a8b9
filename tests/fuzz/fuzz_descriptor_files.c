/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness of descriptors that name each other: the input is
 * cut at each line "@@" into up to four files, a.mmcl.json, b.mmcl.json,
 * c.vrt and m.mmcl, written to a private work folder beside real rasters,
 * a model and an embedding descriptor (fuzz_common.h); a.mmcl.json is
 * then opened and read a little at every level. The GDAL driver of the
 * plugin is built in, so a VRT (or a descriptor under another name)
 * named as a raster is opened through GDAL and the driver, as in gdalinfo
 * and QGIS: references between files, cycles and nesting are covered.
 */
#define _DEFAULT_SOURCE /* mkdtemp, symlink */
#include <stdint.h>

#include "fuzz_common.h"

void GDALRegister_MMCL(void);

static mmcl_context *ctx;
static const char *const names[] = {"a.mmcl.json", "b.mmcl.json", "c.vrt",
                                    "m.mmcl"};
enum { N_FILES = sizeof(names) / sizeof(names[0]) };

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    GDALRegister_MMCL();
    ctx = mmcl_context_create();
    return ctx ? 0 : 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char sep[] = "\n@@\n";
    const size_t sep_len = sizeof(sep) - 1;
    const uint8_t *p = data, *end = data + size;
    int ok = 1;
    for (int k = 0; k < N_FILES && ok; k++) {
        const uint8_t *cut = NULL;
        for (const uint8_t *q = p; k < N_FILES - 1 && q + sep_len <= end;
             q++)
            if (memcmp(q, sep, sep_len) == 0) {
                cut = q;
                break;
            }
        const uint8_t *stop = cut ? cut : end;
        ok = fuzz_write(names[k], p, (size_t)(stop - p));
        p = cut ? cut + sep_len : end;
    }
    if (ok)
        fuzz_open_and_read(ctx, "a.mmcl.json");
    for (int k = 0; k < N_FILES; k++)
        fuzz_unlink(names[k]);
    return 0;
}
