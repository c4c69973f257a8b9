/* SPDX-License-Identifier: MIT */
/*
 * The BLAS library mmcl computes with, the OpenBLAS kernel it runs, and
 * the engine of the encoders' products (oneDNN, when built with it).
 *
 * OpenBLAS built for several CPUs (DYNAMIC_ARCH, as Debian's is) picks its
 * kernel once, when it is loaded, from the CPU model. A release older than
 * the CPU does not know the model and falls back to a generic kernel:
 * OpenBLAS 0.3.21 (Debian 12) runs its SSE3 "Prescott" kernel on Sapphire
 * and Emerald Rapids Xeons, and matrix products are then several times
 * slower. The environment variable OPENBLAS_CORETYPE, read at that same
 * moment, overrides the choice.
 *
 * - The mmcl program sets OPENBLAS_CORETYPE to the kernel this CPU runs
 *   best, and MMCL_BLAS_DETECTED to the one OpenBLAS had picked, and
 *   executes itself again, before doing anything else.
 * - A process that uses the library or the GDAL plugin (QGIS,
 *   gdal_translate, Python) cannot do that: the first operation that
 *   computes with BLAS posts one GDAL warning (CE_Warning) per process,
 *   naming the value to set before starting the program.
 * - A user's OPENBLAS_CORETYPE is always respected: no re-execution, no
 *   warning.
 *
 * Threads: the OpenBLAS thread count is the process's. Operations that run
 * their own workers (maps, lazy reads, synth, two-worker clip training) run
 * the BLAS on one thread meanwhile, and single-worker clip training on its
 * THREADS. Operations that overlap on several threads of one process share
 * one reference-counted setting: the BLAS runs the fewest threads any of
 * them asked for, and the last to finish restores the count the process
 * had before the first began.
 */
#ifndef MMCL_BLAS_H
#define MMCL_BLAS_H

#include "mmcl/export.h"

MMCL_BEGIN_DECLS

/** Environment variable: the kernel OpenBLAS had picked, set by the mmcl
 * program with OPENBLAS_CORETYPE when it chose a better one. */
#define MMCL_BLAS_DETECTED_ENV "MMCL_BLAS_DETECTED"

/** Who chose the kernel in use. */
typedef enum mmcl_blas_kernel_origin {
    /** OpenBLAS, from the CPU (OPENBLAS_CORETYPE is not set). */
    MMCL_BLAS_KERNEL_OPENBLAS = 0,
    /** The user, through OPENBLAS_CORETYPE. */
    MMCL_BLAS_KERNEL_USER = 1,
    /** The mmcl program, through OPENBLAS_CORETYPE (MMCL_BLAS_DETECTED
     * says what OpenBLAS had picked). */
    MMCL_BLAS_KERNEL_MMCL = 2
} mmcl_blas_kernel_origin;

/** The BLAS in this process. Strings are empty ("") when not known. */
typedef struct mmcl_blas_info {
    /** The library and its version, e.g. "OpenBLAS 0.3.21", or
     * "CBLAS (not OpenBLAS)". */
    char library[64];
    /** The kernel in use (openblas_get_corename()), e.g. "Cooperlake";
     * empty for another BLAS. */
    char kernel[32];
    /** Threads one BLAS call uses (>= 1). */
    int threads;
    mmcl_blas_kernel_origin origin;
    /** The kernel OpenBLAS picks on its own on this CPU: the one in use
     * when origin is MMCL_BLAS_KERNEL_OPENBLAS, the recorded one when it is
     * MMCL_BLAS_KERNEL_MMCL; empty when the user chose. */
    char detected[32];
    /** When origin is MMCL_BLAS_KERNEL_OPENBLAS and OpenBLAS fell back to
     * a generic or older kernel that this CPU outgrows: the kernel to set
     * OPENBLAS_CORETYPE to (e.g. "Cooperlake"). Empty otherwise. */
    char better[32];
} mmcl_blas_info;

/**
 * Fills @p info (not NULL; NULL is a no-op) with the BLAS of this process.
 *
 * For tests only: when MMCL_BLAS_TEST_DETECTED is set (and
 * OPENBLAS_CORETYPE is not), its value stands for the kernel OpenBLAS
 * picked (info->detected, and the decision of info->better); everything
 * else is real.
 *
 * Thread-safety: safe, as long as no thread changes the environment
 * meanwhile.
 * @since 0.1
 */
MMCL_API void mmcl_blas_info_get(mmcl_blas_info *info);

/** The engine of the encoders' matrix products (embed, infoloss, the lazy
 * products, probe): oneDNN's matmul when mmcl was built with it, else the
 * BLAS. Strings are empty ("") when they do not apply. */
typedef struct mmcl_engine_info {
    /** 1: oneDNN; 0: the BLAS (cblas_sgemm). */
    int dnnl;
    /** "oneDNN 2.6.3", or "OpenBLAS (cblas_sgemm)". */
    char name[64];
    /** oneDNN's effective ISA (dnnl_get_effective_cpu_isa(), which
     * honours ONEDNN_MAX_CPU_ISA), e.g. "avx512_core_amx". */
    char isa[32];
    /** oneDNN's threading runtime, e.g. "OpenMP". */
    char runtime[16];
    /** 1 when PRECISION=bf16 runs natively here (AVX-512 BF16 or AMX). */
    int bf16;
    /** Why the engine is not oneDNN (built without it, MMCL_ENGINE=openblas,
     * no CPU engine). */
    char why[160];
} mmcl_engine_info;

/**
 * Fills @p info (not NULL; NULL is a no-op) with the engine of the
 * encoders' products in this process, chosen once per process: oneDNN
 * unless mmcl was built without it or MMCL_ENGINE=openblas is set.
 * Thread-safety: safe.
 * @since 0.1
 */
MMCL_API void mmcl_engine_info_get(mmcl_engine_info *info);

MMCL_END_DECLS

#endif /* MMCL_BLAS_H */
