/* SPDX-License-Identifier: MIT */
/*
 * Private: helpers of the model layer for the rest of the library, such as
 * the training and inference code checking that a loaded model has the
 * architecture its metadata announces.
 */
#ifndef MMCL_MODEL_INTERNAL_H
#define MMCL_MODEL_INTERNAL_H

#include <stdint.h>

#include "mmcl/context.h"
#include "mmcl/model.h"

/*
 * Checks that @p m holds a tensor @p name of exactly @p ndim dimensions with
 * sizes @p shape (which may be NULL when @p ndim is 0). Fails with
 * MMCL_ERR_FORMAT and a message such as
 *   "model tensor 'enc1.w0' has shape [64,117], expected [64,118]"
 * or "model has no tensor 'enc1.w0' (expected shape [64,118])".
 * MMCL_ERR_INVALID_ARG for a NULL @p m or @p name.
 */
mmcl_status mmcl__model_check_shape(mmcl_context *ctx, const mmcl_model *m,
                                    const char *name, int ndim,
                                    const int64_t *shape);

/* The file @p m was loaded from (mmcl_model_load), or NULL: an input of
 * whatever uses the model, never to be written over. */
const char *mmcl__model_source(const mmcl_model *m);

#endif /* MMCL_MODEL_INTERNAL_H */
