/* SPDX-License-Identifier: MIT */
/*
 * mmcl: joint embeddings of optical and SAR rasters, and per-pixel maps of
 * what each modality loses when it is aligned with the other.
 * Umbrella header: includes the whole public API.
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
#include "mmcl/synth.h"
#include "mmcl/train.h"
#include "mmcl/maps.h"
#include "mmcl/product.h"
#include "mmcl/probe.h"
#include "mmcl/rgb.h"

#endif /* MMCL_MMCL_H */
