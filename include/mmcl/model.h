/* SPDX-License-Identifier: MIT */
/*
 * Models: an in-memory set of named float32 tensors (up to 4 dimensions)
 * plus one JSON object of metadata, and the model file (`*.mmcl`) that holds
 * them. The file is the safetensors layout exactly, so Python users can read
 * the weights with the `safetensors` package:
 *
 *   8 bytes   N, the header length, unsigned little-endian
 *   N bytes   UTF-8 JSON header, padded with spaces so that 8 + N is a
 *             multiple of 8:
 *             {"__metadata__": {"format": "mmcl", "mmcl": "<JSON text>"},
 *              "<name>": {"dtype": "F32", "shape": [..],
 *                         "data_offsets": [begin, end]}, ...}
 *   rest      the byte buffer: the tensors as little-endian float32,
 *             row-major, contiguous, in name order (byte order of the UTF-8
 *             names), covering the buffer exactly; offsets are relative to
 *             the start of the buffer.
 *
 * safetensors only allows strings as metadata values, so mmcl's metadata is
 * one JSON object serialized (unformatted) into __metadata__["mmcl"]:
 *   json.loads(safe_open(path, "np").metadata()["mmcl"])
 * It always holds "format_version" (MMCL_MODEL_FORMAT_VERSION) first,
 * followed by whatever the training code records (objective, architecture,
 * patch size, band names, normalization statistics, options, figures).
 *
 * The reader trusts nothing: every size, offset, type and name is checked
 * before use, and anything truncated, inconsistent or written by a newer
 * mmcl is rejected with MMCL_ERR_FORMAT and a message naming the file.
 */
#ifndef MMCL_MODEL_H
#define MMCL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "mmcl/context.h"
#include "mmcl/export.h"

MMCL_BEGIN_DECLS

/** Most dimensions a model tensor may have. @since 0.1 */
#define MMCL_MODEL_MAX_DIMS 4

/**
 * Version of the model file written by this mmcl, and the newest one it
 * reads. Stored as "format_version" in the metadata. @since 0.1
 */
#define MMCL_MODEL_FORMAT_VERSION 1

/** A model: named float32 tensors plus a JSON metadata object. @since 0.1 */
typedef struct mmcl_model mmcl_model;

/**
 * New empty model: no tensors, metadata {"format_version":1}.
 * @param ctx  Context for the error message; may be NULL.
 * @return A model that must be freed with mmcl_model_destroy(), or NULL when
 *         out of memory (MMCL_ERR_NO_MEMORY in @p ctx).
 * Thread-safety: safe from any thread.
 * @since 0.1
 */
MMCL_API mmcl_model *mmcl_model_create(mmcl_context *ctx);

/**
 * Frees @p model, its tensors and its metadata. NULL is allowed (no-op).
 * Pointers previously returned by the accessors become invalid.
 * Thread-safety: no other thread may use @p model meanwhile.
 * @since 0.1
 */
MMCL_API void mmcl_model_destroy(mmcl_model *model);

/**
 * Stores a copy of a float32 tensor under @p name, replacing any tensor of
 * that name (whose data pointer then becomes invalid).
 * @param ctx    Context for the error message; may be NULL.
 * @param model  Must not be NULL.
 * @param name   Non-empty UTF-8 without control characters, and not
 *               "__metadata__" (reserved by safetensors). Must not be NULL.
 *               The string is copied.
 * @param data   prod(shape) values, row-major, copied. May be NULL only when
 *               the tensor has no element (a zero in @p shape).
 * @param ndim   0 (a scalar: one value) to MMCL_MODEL_MAX_DIMS.
 * @param shape  @p ndim non-negative sizes; may be NULL when @p ndim is 0.
 * @return MMCL_OK; MMCL_ERR_INVALID_ARG for a bad argument (the model is
 *         then unchanged); MMCL_ERR_NO_MEMORY.
 * Thread-safety: no other thread may use @p model meanwhile.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_model_set_tensor(mmcl_context *ctx, mmcl_model *model,
                                           const char *name, const float *data,
                                           int ndim, const int64_t *shape);

/**
 * Looks a tensor up by name.
 * @param model  May be NULL (then the tensor is absent).
 * @param name   May be NULL (then the tensor is absent).
 * @param ndim   Receives the number of dimensions (0 when absent); may be
 *               NULL.
 * @param shape  Receives a borrowed pointer to the @p ndim sizes (NULL when
 *               absent); may be NULL.
 * @return The values, row-major (borrowed, owned by @p model; valid until
 *         the tensor is replaced or the model destroyed), or NULL when there
 *         is no such tensor. A tensor with no element gives a non-NULL
 *         pointer that must not be dereferenced.
 * Thread-safety: safe alongside other readers of @p model.
 * @since 0.1
 */
MMCL_API const float *mmcl_model_tensor(const mmcl_model *model,
                                        const char *name, int *ndim,
                                        const int64_t **shape);

/**
 * Number of tensors in @p model (0 for NULL).
 * Thread-safety: safe alongside other readers of @p model.
 * @since 0.1
 */
MMCL_API size_t mmcl_model_tensor_count(const mmcl_model *model);

/**
 * Name of the tensor at @p index, tensors being sorted by name (byte order
 * of the UTF-8 names, the order of the file).
 * @param model  May be NULL (then NULL is returned).
 * @return A borrowed string owned by @p model, valid until that tensor is
 *         replaced or the model destroyed; NULL when @p index is out of range.
 *         Setting a new tensor shifts the indices.
 * Thread-safety: safe alongside other readers of @p model.
 * @since 0.1
 */
MMCL_API const char *mmcl_model_tensor_name(const mmcl_model *model,
                                            size_t index);

/**
 * Replaces the metadata of @p model with @p json, which must be a JSON
 * object (text, UTF-8) without duplicate keys at any level. The library
 * owns "format_version": any value given for it is replaced by
 * MMCL_MODEL_FORMAT_VERSION, stored first; other keys keep their order.
 * @param ctx    Context for the error message; may be NULL.
 * @param model  Must not be NULL.
 * @param json   Must not be NULL. Copied (re-serialized without whitespace).
 * @return MMCL_OK; MMCL_ERR_INVALID_ARG when @p json is not a valid JSON
 *         object (the metadata is then unchanged); MMCL_ERR_NO_MEMORY.
 * Thread-safety: no other thread may use @p model meanwhile.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_model_set_metadata_json(mmcl_context *ctx,
                                                  mmcl_model *model,
                                                  const char *json);

/**
 * The metadata of @p model: unformatted JSON text of an object whose first
 * key is "format_version". Exactly the text stored in the file's
 * __metadata__["mmcl"].
 * @param model  May be NULL (then NULL is returned).
 * @return A borrowed string owned by @p model, valid until the next
 *         mmcl_model_set_metadata_json() on it or its destruction.
 * Thread-safety: safe alongside other readers of @p model.
 * @since 0.1
 */
MMCL_API const char *mmcl_model_metadata_json(const mmcl_model *model);

/**
 * Writes @p model to @p path as a model file (layout at the top of this
 * header). The bytes go to a file in a private folder made beside @p path
 * ("<name>.mmcl-tmp-<pid>-XXXXXX"), are flushed to disk and then moved onto
 * @p path, so @p path is either untouched or complete; the folder is
 * removed in every case.
 * @param ctx        Context for the error message; may be NULL.
 * @param model      Must not be NULL.
 * @param path       Must not be NULL.
 * @param overwrite  0: fail with MMCL_ERR_EXISTS if @p path exists, or
 *                   appears while the file is written (the message names
 *                   the path and --overwrite); non-zero: replace it, but
 *                   only when it is a regular file holding a model (a
 *                   folder, a link, a device or a file of another kind is
 *                   refused with MMCL_ERR_EXISTS, naming what it is). The
 *                   file @p model was loaded from is never replaced.
 * @return MMCL_OK; MMCL_ERR_INVALID_ARG; MMCL_ERR_EXISTS; MMCL_ERR_IO when
 *         the file cannot be written or moved (a full disk or the file
 *         size limit is named); MMCL_ERR_NO_MEMORY.
 * Thread-safety: safe alongside other readers of @p model.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_model_save(mmcl_context *ctx, const mmcl_model *model,
                                     const char *path, int overwrite);

/**
 * Checks, before the work that makes a model, that mmcl_model_save() may
 * write @p path with @p overwrite: its folder exists, and an existing
 * @p path is refused as mmcl_model_save() would refuse it. Writes nothing.
 * @param ctx        Context for the error message; may be NULL.
 * @param path       Must not be NULL.
 * @return MMCL_OK; MMCL_ERR_INVALID_ARG; MMCL_ERR_EXISTS; MMCL_ERR_IO.
 * Thread-safety: safe from any thread (with its own @p ctx).
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_model_save_check(mmcl_context *ctx, const char *path,
                                           int overwrite);

/**
 * Reads the model file @p path, validating everything (sizes, offsets,
 * types, names, dtype F32, at most MMCL_MODEL_MAX_DIMS dimensions, tensors
 * tiling the byte buffer exactly, no duplicate keys, __metadata__ "format"
 * "mmcl", format_version no newer than MMCL_MODEL_FORMAT_VERSION).
 * Metadata keys other than "format" and "mmcl" are ignored.
 * @param ctx   Context for the error message; may be NULL.
 * @param path  Must not be NULL.
 * @param out   Must not be NULL. Set to NULL on entry; on success receives a
 *              model that must be freed with mmcl_model_destroy().
 * @return MMCL_OK; MMCL_ERR_INVALID_ARG for NULL arguments; MMCL_ERR_IO when
 *         the file cannot be opened or read; MMCL_ERR_FORMAT when it is not
 *         a valid model file (the message names the file and the problem);
 *         MMCL_ERR_NO_MEMORY. *out stays NULL on failure.
 * Thread-safety: safe from any thread (with its own @p ctx).
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_model_load(mmcl_context *ctx, const char *path,
                                     mmcl_model **out);

/**
 * Fingerprint of @p model: the 64-bit FNV-1a hash (offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3) of exactly the bytes
 * mmcl_model_save() would write, as 16 lower-case hex digits. It is the
 * hash of the file itself, so it is equal for equal content (tensors and
 * metadata), survives a save/load round trip, and changes when any value
 * changes. Output rasters record it to name the model that made them. Not
 * a cryptographic hash.
 * @param ctx    Context for the error message; may be NULL.
 * @param model  Must not be NULL.
 * @param out    Must not be NULL; receives 16 hex digits and a NUL (set to
 *               the empty string on failure).
 * @return MMCL_OK; MMCL_ERR_INVALID_ARG; MMCL_ERR_NO_MEMORY.
 * Thread-safety: safe alongside other readers of @p model.
 * @since 0.1
 */
MMCL_API mmcl_status mmcl_model_hash(mmcl_context *ctx, const mmcl_model *model,
                                     char out[17]);

MMCL_END_DECLS

#endif /* MMCL_MODEL_H */
