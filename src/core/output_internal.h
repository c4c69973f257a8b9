/* SPDX-License-Identifier: MIT */
/*
 * Private: the one owner of "mmcl never destroys a file". Every file any
 * operation writes goes through here.
 *
 * - mmcl__files: what one operation reads and writes. Inputs are kept by
 *   device and inode, so a symbolic link, "./x" for "x" and a hard link
 *   are the same file; a raster's side files and a VRT's sources, and the
 *   files a lazy descriptor names, are inputs too. Each output is checked
 *   before any work: it is never an input nor another output of the same
 *   operation; when it exists it is refused unless overwriting was asked,
 *   and even then only a regular file of the output's own kind (an mmcl
 *   raster of the same product, a model file, a report, ...) is replaced.
 *
 * - mmcl__stage: a private folder made with mkdtemp(3) beside one output
 *   ("<name>.mmcl-tmp-<pid>-XXXXXX", mode 0700, on the output's file
 *   system), in which the output (and GDAL's "<name>.aux.xml" side file)
 *   is written under the output's own name. No predictable name is ever
 *   opened in a shared folder, so a planted symbolic link is never
 *   followed. The folder and everything in it is removed at the end.
 *
 * - the commit moves the staged file onto the output atomically. Without
 *   overwriting it uses renameat2(RENAME_NOREPLACE), or link(2) where the
 *   file system refuses that, so a file that appeared while the operation
 *   ran is never replaced. With overwriting it checks the target again
 *   and rename(2)s over it; the replaced file stays in the stage (a hard
 *   link) until the operation succeeded, so that when a later output of
 *   the same operation fails, every output already committed is put back
 *   as it was. Nothing is ever deleted by name outside the stage except
 *   an output this operation itself put there.
 */
#ifndef MMCL_OUTPUT_INTERNAL_H
#define MMCL_OUTPUT_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "mmcl/context.h"
#include "mmcl/options.h"

/* What an output is, and so what --overwrite may replace there. */
typedef enum mmcl__out_kind {
    MMCL__OUT_RASTER,      /* a raster GDAL opens with the output format's
                              driver, whose MMCL metadata PRODUCT is the
                              output's product */
    MMCL__OUT_SIDECAR,     /* a side file of a raster output:
                              "<raster>.aux.xml" (a PAMDataset), ".ovr"
                              or ".msk" (TIFF), or its QGIS style
                              "<raster without extension>.qml" (also
                              of a lazy descriptor) */
    MMCL__OUT_MODEL,       /* a model file mmcl_model_load() accepts */
    MMCL__OUT_REPORT,      /* an information-loss report (JSON) */
    MMCL__OUT_DESCRIPTOR,  /* a lazy descriptor of the same product */
    MMCL__OUT_LEGEND_PNG,  /* a colour scale picture (PNG) */
    MMCL__OUT_LEGEND_JSON, /* its description (JSON) */
    MMCL__OUT_SYNTH_JSON,  /* synth.json of mmcl synth */
    MMCL__OUT_PROBE_CSV,   /* the figures of mmcl probe (CSV) */
    MMCL__OUT_COREG_REPORT /* the report of mmcl coreg (JSON) */
} mmcl__out_kind;

/* How a CSV of mmcl probe begins (its first columns), which tells it from
 * other files. */
#define MMCL__PROBE_CSV_HEAD "representation,dim,"

typedef struct mmcl__files mmcl__files;

/* An empty set for one operation; NULL (and MMCL_ERR_NO_MEMORY) on no
 * memory. @p overwrite: whether existing outputs may be replaced. */
mmcl__files *mmcl__files_create(mmcl_context *ctx, int overwrite);
void mmcl__files_destroy(mmcl__files *f); /* NULL is allowed */

/*
 * Records @p path as an input: the file itself (symbolic links followed),
 * the files GDAL reads with it (side files, a VRT's sources) and, for a
 * lazy descriptor (a name ending in .json, "MMCL:" or JSON text), the
 * files it names (model, optical, sar, source), recursively. Names that
 * are no file (an absent path, /vsi names) are skipped: opening them
 * reports the problem later. Fails only on no memory.
 */
mmcl_status mmcl__files_add_input(mmcl_context *ctx, mmcl__files *f,
                                  const char *path);

/* Records the file @p path as an input, and nothing it names. */
mmcl_status mmcl__files_add_input_file(mmcl_context *ctx, mmcl__files *f,
                                       const char *path);

/*
 * Checks @p path as an output and records it, before any work is done.
 * @p role names it in messages ("output", "report", "legend", ...).
 * @p product: the PRODUCT of a raster or the product of a descriptor, or
 * NULL; @p format: a raster's GDAL driver (NULL = GTiff). A raster (and a
 * legend picture) also records its side files "<path>.aux.xml", ".ovr"
 * and ".msk", and a map mmcl styles (@p product embedding, infoloss,
 * aligned_sar; raster or descriptor) its QGIS style "<path without
 * extension>.qml": a stale one is refused without overwriting, and with
 * it goes with the file it describes.
 * Refused (message naming the file and why): a path naming a folder or in
 * a folder that does not exist (MMCL_ERR_IO); an input or another output
 * of the operation (MMCL_ERR_INVALID_ARG); an existing file without
 * overwriting; with overwriting, anything but a regular file of @p kind:
 * a folder, a symbolic link, a device, a FIFO, a file of another kind
 * (MMCL_ERR_EXISTS).
 */
mmcl_status mmcl__files_add_output(mmcl_context *ctx, mmcl__files *f,
                                   const char *path, const char *role,
                                   mmcl__out_kind kind, const char *product,
                                   const char *format);

/* ---- staging and commit ----------------------------------------------- */

typedef struct mmcl__stage mmcl__stage;

/*
 * Makes the private folder for the output @p path, which must have been
 * recorded in @p f (which must outlive the stage). NULL with the error
 * set (a read-only or full disk is named as such).
 */
mmcl__stage *mmcl__stage_create(mmcl_context *ctx, mmcl__files *f,
                                const char *path);

/* Where the output is written: "<stage>/<output's name>". */
const char *mmcl__stage_file(const mmcl__stage *s);

/* Where the output's QGIS style is written, committed with it:
 * "<stage>/<output's name without extension>.qml" (rasters and lazy
 * descriptors; QGIS applies "x.qml" when it loads "x.tif"). */
const char *mmcl__stage_style_file(const mmcl__stage *s);

/* Another file in the stage, "<stage>/<output's name><suffix>" (a work
 * file): malloc'd, NULL with MMCL_ERR_NO_MEMORY. */
char *mmcl__stage_path(mmcl_context *ctx, const mmcl__stage *s,
                       const char *suffix);

/* The staged file, created with O_CREAT | O_EXCL | O_NOFOLLOW and open
 * for writing ("wb"); NULL with the error set. Close it with
 * mmcl__stage_fclose(). */
FILE *mmcl__stage_fopen(mmcl_context *ctx, mmcl__stage *s);

/* Flushes, syncs and closes a FILE from mmcl__stage_fopen; MMCL_ERR_IO
 * naming the output (and a full disk or file size limit) on failure. */
mmcl_status mmcl__stage_fclose(mmcl_context *ctx, mmcl__stage *s, FILE *fp);

/* @p text and a newline into the stage @p s (a report, a descriptor, a
 * legend's JSON), with mmcl__stage_fopen's and fclose's errors. */
mmcl_status mmcl__stage_write_text(mmcl_context *ctx, mmcl__stage *s,
                                   const char *text);

/*
 * "; the disk holding '<folder>' is full" or "; the file size limit
 * (ulimit -f) of N bytes was reached" when either explains a failed
 * write in @p s (NULL: neither, or unknown), else "". Static storage of
 * the calling thread.
 */
const char *mmcl__stage_io_hint(const mmcl__stage *s);

/*
 * Moves the staged outputs onto their targets, all or none. First polls
 * @p progress once at @p p (when not NULL): a cancel before the commit
 * leaves nothing (MMCL_ERR_CANCELLED); after that the outputs are
 * committed whatever comes. Each stage's target and, for a raster, the
 * side files written with it: without overwriting, one that appeared
 * meanwhile fails the commit ("... appeared while mmcl was running;
 * nothing was replaced"); with overwriting, the target is checked again
 * as before the work, and the side files of the file it replaces, when
 * none was written, go with it. When one fails, the ones before are put
 * back as they were.
 */
mmcl_status mmcl__stages_commit(mmcl_context *ctx, mmcl__stage *const *s,
                                size_t n, mmcl_progress_fn progress,
                                void *progress_user, double p);

/* Removes the stage folder and all it holds (a committed output is no
 * longer in it). NULL is allowed. */
void mmcl__stage_destroy(mmcl__stage *s);

/* ---- temporary files without an output -------------------------------- */

/*
 * A private folder in $TMPDIR (default /tmp), "mmcl-<what>-<pid>-XXXXXX"
 * made with mkdtemp(3): malloc'd path, NULL with the error set. Remove it
 * with mmcl__tempdir_remove().
 */
char *mmcl__tempdir_create(mmcl_context *ctx, const char *what);

/* Removes the files in the private folder @p dir and the folder; NULL is
 * allowed. Does not follow symbolic links. */
void mmcl__tempdir_remove(const char *dir);

/* ---- lazy descriptors: the products layer's part ---------------------- */

/*
 * What a lazy descriptor is (which names are descriptors, which files one
 * names, how one is written) belongs to the products layer, above core
 * and the operations. Core records the files a descriptor names and the
 * operations write one through these hooks, which the products layer
 * (products/product.c) sets when the library is loaded. Without them no
 * name is a descriptor and none can be written.
 */
enum {
    MMCL__DESCRIPTOR_VERSION = 1,       /* the version written and read */
    MMCL__MAX_JSON_BYTES = 16 * 1024 * 1024 /* largest JSON file (report,
                                               descriptor, legend) read to
                                               check its kind */
};

struct cJSON;

typedef struct mmcl__descriptor_hooks {
    /* Whether @p name names a descriptor rather than a raster: "MMCL:"
     * prefix, JSON text, or a name ending in ".json". */
    int (*is_descriptor)(const char *name);
    /* Records the descriptor @p path as an input of @p f, and the files
     * it names, each with mmcl__files_add_named_input at @p depth + 1. */
    mmcl_status (*add_input)(mmcl_context *ctx, mmcl__files *f,
                             const char *path, int depth);
    /* @p path as a descriptor written at @p descriptor_path stores it (a
     * JSON string), NULL on no memory. */
    struct cJSON *(*stored_path)(const char *descriptor_path,
                                 const char *path);
    /* Writes the descriptor @p j of the output @p path into its @p stage,
     * after checking that it opens; the caller commits the stage. */
    mmcl_status (*write)(mmcl_context *ctx, mmcl__stage *stage,
                         const char *path, const struct cJSON *j);
} mmcl__descriptor_hooks;

/* Sets the hooks (@p h is kept; it must outlive the library's use). */
void mmcl__descriptor_hooks_set(const mmcl__descriptor_hooks *h);

/* The hooks, or NULL before the products layer set them. */
const mmcl__descriptor_hooks *mmcl__descriptor_hooks_get(void);

/* is_descriptor through the hooks (0 without them). */
int mmcl__is_descriptor(const char *name);

/* Records @p path, named by a descriptor @p depth levels down from an
 * input, as mmcl__files_add_input does (too deep: skipped). */
mmcl_status mmcl__files_add_named_input(mmcl_context *ctx, mmcl__files *f,
                                        const char *path, int depth);

/* The whole of a small file, NUL-terminated (malloc'd; its length into
 * @p len when not NULL), or NULL: absent, not a regular file, larger than
 * @p limit. Never blocks on a FIFO; symbolic links are followed when
 * @p follow. */
char *mmcl__read_small_file(const char *path, size_t limit, size_t *len,
                            int follow);

#endif /* MMCL_OUTPUT_INTERNAL_H */
