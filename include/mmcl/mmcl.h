/* SPDX-License-Identifier: MIT */
/*
 * mmcl: joint embeddings of optical and SAR rasters, and per-pixel maps of
 * what each modality loses when it is aligned with the other.
 * Umbrella header: includes the whole public API.
 *
 * Before the first call: nothing is required. Every operation takes a
 * context (mmcl_context_create()), and the first context registers GDAL's
 * drivers when the program has registered none; a program that uses GDAL
 * itself registers them as usual (GDALAllRegister()) before or after.
 * Configuration that GDAL reads once (GDAL_CACHEMAX, GDAL_DRIVER_PATH,
 * CPL_DEBUG) is the program's to set before its first GDAL call. The
 * OpenBLAS thread count is the program's too: the library changes it only
 * around its own work and restores it (blas.h). Each function says what
 * may run concurrently; contexts are per thread.
 */
#ifndef MMCL_MMCL_H
#define MMCL_MMCL_H

#include "mmcl/export.h"
#include "mmcl/error.h"
#include "mmcl/context.h"
#include "mmcl/blas.h"
#include "mmcl/options.h"
#include "mmcl/model.h"
#include "mmcl/align.h"
#include "mmcl/coreg.h"
#include "mmcl/synth.h"
#include "mmcl/train.h"
#include "mmcl/maps.h"
#include "mmcl/audit.h"
#include "mmcl/product.h"
#include "mmcl/probe.h"
#include "mmcl/rgb.h"
#include "mmcl/mpi.h"

#endif /* MMCL_MMCL_H */
