/* SPDX-License-Identifier: MIT */
/*
 * What the libFuzzer harnesses share: a private work folder, made once per
 * process under $TMPDIR and removed at exit, holding links to the sample
 * rasters (optical.tif, sar.tif), the seed model (model.mmcl) and an
 * embedding descriptor of them (emb.mmcl.json), so that fuzzed
 * descriptors can name real files; and writing / removing the files of
 * one run.
 */
#ifndef MMCL_FUZZ_COMMON_H
#define MMCL_FUZZ_COMMON_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>

#include "mmcl/context.h"
#include "mmcl/product.h"

static char fuzz_dir[4096];

static void
fuzz_remove_dir(void)
{
    if (!fuzz_dir[0])
        return;
    DIR *d = opendir(fuzz_dir);
    if (d) {
        struct dirent *e;
        char p[8192];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", fuzz_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(fuzz_dir);
    fuzz_dir[0] = '\0';
}

/* fuzz_dir/name into @p buf. */
static const char *
fuzz_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", fuzz_dir, name);
    return buf;
}

/* Writes @p size bytes to fuzz_dir/name; 0 on failure. */
static int
fuzz_write(const char *name, const void *data, size_t size)
{
    char p[8192];
    FILE *f = fopen(fuzz_path(p, sizeof(p), name), "wb");
    if (!f)
        return 0;
    size_t n = size ? fwrite(data, 1, size, f) : 0;
    return fclose(f) == 0 && n == size;
}

static void
fuzz_unlink(const char *name)
{
    char p[8192];
    unlink(fuzz_path(p, sizeof(p), name));
}

static void
fuzz_link(const char *target, const char *name)
{
    char p[8192];
    if (symlink(target, fuzz_path(p, sizeof(p), name)) != 0) {
        perror(name);
        abort();
    }
}

/* GDAL quiet and without plugins, stdin away (a fuzzed path may name
 * /dev/stdin), the work folder made. */
static void
fuzz_setup(void)
{
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) {
        dup2(null, 0);
        close(null);
    }
    CPLSetConfigOption("GDAL_DRIVER_PATH", "disable");
    CPLSetConfigOption("GDAL_PAM_ENABLED", "NO");
    CPLSetConfigOption("CPL_DEBUG", "OFF");
    CPLSetErrorHandler(CPLQuietErrorHandler);
    GDALAllRegister();
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/mmcl-fuzz-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fuzz_dir)) {
        perror("mkdtemp");
        abort();
    }
    atexit(fuzz_remove_dir);
    const char *src = getenv("MMCL_SOURCE_DIR");
    if (!src || !*src)
        src = MMCL_FUZZ_SOURCE_DIR;
    char t[8192];
    snprintf(t, sizeof(t), "%s/sample_data/optical.tif", src);
    fuzz_link(t, "optical.tif");
    snprintf(t, sizeof(t), "%s/sample_data/sar.tif", src);
    fuzz_link(t, "sar.tif");
    snprintf(t, sizeof(t), "%s/tests/fuzz/corpus/fuzz_model/cca_dim2_patch1.mmcl",
             src);
    fuzz_link(t, "model.mmcl");
    static const char emb[] =
        "{\"mmcl_descriptor\": 1, \"product\": \"embedding\", "
        "\"model\": \"model.mmcl\", \"optical\": \"optical.tif\", "
        "\"sar\": \"sar.tif\", \"modality\": \"joint\"}\n";
    if (!fuzz_write("emb.mmcl.json", emb, sizeof(emb) - 1))
        abort();
}

/* Opens the descriptor fuzz_dir/name on one thread and reads a little of
 * every level, as GDAL would. */
static void
fuzz_open_and_read(mmcl_context *ctx, const char *name)
{
    char p[8192];
    static const char *const options[] = {"THREADS=1", NULL};
    mmcl_product *prod = NULL;
    const int verbose = getenv("MMCL_FUZZ_VERBOSE") != NULL;
    if (mmcl_product_open_with_options(ctx, fuzz_path(p, sizeof(p), name),
                                       options, &prod) != MMCL_OK) {
        if (verbose)
            fprintf(stderr, "open: %s\n", mmcl_context_errmsg(ctx));
        return;
    }
    int bands = mmcl_product_band_count(prod);
    for (int l = 0; l < mmcl_product_level_count(prod); l++) {
        int w = mmcl_product_width(prod, l), h = mmcl_product_height(prod, l);
        w = w < 16 ? w : 16;
        h = h < 16 ? h : 16;
        (void)mmcl_product_metadata(prod, l);
        if (w < 1 || h < 1 || bands < 1)
            continue;
        float *buf = malloc((size_t)bands * (size_t)w * (size_t)h * 4);
        if (buf && mmcl_product_read(ctx, prod, l, 0, 0, w, h, buf) !=
                       MMCL_OK &&
            verbose)
            fprintf(stderr, "read level %d: %s\n", l,
                    mmcl_context_errmsg(ctx));
        else if (buf && verbose)
            fprintf(stderr, "read level %d: %dx%d, %d bands\n", l, w, h,
                    bands);
        free(buf);
    }
    for (int b = 0; b < bands; b++)
        (void)mmcl_product_band_description(prod, b);
    (void)mmcl_product_srs_wkt(prod);
    mmcl_product_destroy(prod);
}

#endif /* MMCL_FUZZ_COMMON_H */
