/* SPDX-License-Identifier: MIT */
/*
 * Status codes. Every fallible function of the API returns an mmcl_status;
 * the human-readable message is kept in the mmcl_context (see context.h).
 * Codes are stable: new ones are appended, none is renumbered or removed.
 */
#ifndef MMCL_ERROR_H
#define MMCL_ERROR_H

#include "mmcl/export.h"

MMCL_BEGIN_DECLS

typedef enum mmcl_status {
    MMCL_OK = 0,
    MMCL_ERR_INVALID_ARG = 1, /* caller passed something invalid */
    MMCL_ERR_NO_MEMORY = 2,
    MMCL_ERR_IO = 3,          /* GDAL or file read/write failed */
    MMCL_ERR_NUMERIC = 4,     /* non-finite values, LAPACK did not converge */
    MMCL_ERR_UNSUPPORTED = 5, /* data type, band layout, CRS mismatch */
    MMCL_ERR_CANCELLED = 6,   /* the progress callback returned 0 */
    MMCL_ERR_EXISTS = 7,      /* output exists and overwriting was not asked */
    MMCL_ERR_FORMAT = 8       /* a file is truncated, inconsistent or too new */
    /* Append new codes here. Never renumber or remove. */
} mmcl_status;

/**
 * Static English description of @p status ("invalid argument", ...).
 * @return Never NULL; a string that lives as long as the program.
 * Thread-safety: safe from any thread.
 * @since 0.1
 */
MMCL_API const char *mmcl_status_string(mmcl_status status);

MMCL_END_DECLS

#endif /* MMCL_ERROR_H */
