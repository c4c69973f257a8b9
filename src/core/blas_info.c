/* SPDX-License-Identifier: MIT */
/*
 * The BLAS in this process (include/mmcl/blas.h): the kernel in use, who
 * chose it, whether this CPU runs a better one, and the once-per-process
 * warning for hosts that cannot choose (the GDAL plugin, QGIS, Python).
 */
#define _DEFAULT_SOURCE /* strcasecmp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <threads.h>

#include <cpl_conv.h>
#include <cpl_error.h>

#include "blas_info_internal.h"
#include "blas_kernel.h"
#include "blas_threads.h"
#include "matmul.h"
#include "mmcl/blas.h"

/* For tests only: stands for the kernel OpenBLAS picked (README). */
#define MMCL_BLAS_TEST_DETECTED_ENV "MMCL_BLAS_TEST_DETECTED"

static once_flag features_once = ONCE_FLAG_INIT;
static mmcl_cpu_features features;

static void
detect_features(void)
{
    mmcl__cpu_features_detect(&features);
}

static void
copy_name(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

void
mmcl_blas_info_get(mmcl_blas_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof(*info));
    call_once(&features_once, detect_features);
    mmcl__blas_library(info->library, sizeof(info->library));
    const char *kernel = mmcl__blas_kernel_in_use();
    copy_name(info->kernel, sizeof(info->kernel), kernel);
    info->threads = mmcl__blas_get_threads();

    const char *coretype = getenv("OPENBLAS_CORETYPE");
    if (!coretype) {
        info->origin = MMCL_BLAS_KERNEL_OPENBLAS;
        if (!kernel)
            return; /* not OpenBLAS: nothing to choose */
        const char *test = getenv(MMCL_BLAS_TEST_DETECTED_ENV);
        const char *detected = test && *test ? test : kernel;
        copy_name(info->detected, sizeof(info->detected), detected);
        copy_name(info->better, sizeof(info->better),
                  mmcl__blas_kernel_choose(&features, detected));
        return;
    }
    /* Set by the mmcl program only if it is what the program would have
     * chosen for the kernel it says OpenBLAS picked; else the user's. */
    const char *marker = getenv(MMCL_BLAS_DETECTED_ENV);
    const char *choice =
        marker ? mmcl__blas_kernel_choose(&features, marker) : NULL;
    if (choice && strcasecmp(choice, coretype) == 0) {
        info->origin = MMCL_BLAS_KERNEL_MMCL;
        copy_name(info->detected, sizeof(info->detected), marker);
    } else {
        info->origin = MMCL_BLAS_KERNEL_USER;
    }
}

static once_flag warn_once = ONCE_FLAG_INIT;

static void
warn_kernel(void)
{
    mmcl_blas_info info;
    mmcl_blas_info_get(&info);
    if (info.origin != MMCL_BLAS_KERNEL_OPENBLAS || !info.better[0])
        return;
    char msg[512];
    mmcl__blas_kernel_message(msg, sizeof(msg), info.detected, info.better);
    /* A warning, not the caller's error: keep the last-error state that
     * code around us may check. */
    CPLErr last_type = CPLGetLastErrorType();
    CPLErrorNum last_no = CPLGetLastErrorNo();
    char *last_msg = CPLStrdup(CPLGetLastErrorMsg());
    CPLError(CE_Warning, CPLE_AppDefined, "mmcl: %s", msg);
    CPLErrorSetState(last_type, last_no, last_msg);
    CPLFree(last_msg);
}

void
mmcl__blas_kernel_warn_once(void)
{
    call_once(&warn_once, warn_kernel);
}

void
mmcl_engine_info_get(mmcl_engine_info *info)
{
    if (info)
        mmcl__engine_info_get(info);
}
