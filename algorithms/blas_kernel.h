/* SPDX-License-Identifier: MIT */
/*
 * Which OpenBLAS kernel this CPU should run (include/mmcl/blas.h says why
 * it matters). OpenBLAS built with DYNAMIC_ARCH picks a kernel from the
 * CPU model when it is loaded; a release older than the CPU does not know
 * the model and falls back to a generic kernel (0.3.21 gives "Prescott",
 * SSE3 only, to a Sapphire or Emerald Rapids Xeon), which makes sgemm
 * about eight times slower than the AVX-512 one.
 *
 * mmcl__blas_kernel_choose() is the decision, a pure function of the CPU
 * features and the kernel name OpenBLAS reports, so that it can be tested
 * on any machine; mmcl__cpu_features_detect() fills the features from the
 * running CPU (x86-64 only: elsewhere it reports none, and the decision
 * then never asks for another kernel).
 */
#ifndef MMCL_ALGORITHMS_BLAS_KERNEL_H
#define MMCL_ALGORITHMS_BLAS_KERNEL_H

#include <stdbool.h>
#include <stddef.h>

/* What the CPU supports and the operating system has enabled (the AVX and
 * AVX-512 register state saved on context switches, XCR0). */
typedef struct mmcl_cpu_features {
    bool sse3;
    bool avx;
    bool avx2;
    bool fma;
    bool avx512f;
    bool avx512bw;
    bool avx512dq;
    bool avx512vl;
    bool avx512_bf16;
} mmcl_cpu_features;

/* Fills @p cpu from cpuid and xgetbv; all false off x86-64. */
void mmcl__cpu_features_detect(mmcl_cpu_features *cpu);

/*
 * The OpenBLAS kernel to ask for (through OPENBLAS_CORETYPE) on a CPU with
 * @p cpu, given the kernel OpenBLAS @p reported (openblas_get_corename();
 * matched case-insensitively), or NULL when the reported one is fine.
 *
 * Only a generic or older kernel that the CPU outgrows is replaced (the
 * pre-AVX2 ones: Prescott, Core2, Nehalem, Sandybridge, ..., and
 * "Unknown"), by the best of: AVX-512 F+BW+DQ+VL with BF16 -> "Cooperlake",
 * without BF16 -> "SkylakeX", AVX2+FMA -> "Haswell", AVX -> "Sandybridge".
 * Never a downgrade; an AVX2 or newer kernel (Haswell, Zen, SkylakeX,
 * Cooperlake, ...) and a name this table does not know are kept, as is
 * everything when @p reported is NULL.
 *
 * Returns a static string.
 */
const char *mmcl__blas_kernel_choose(const mmcl_cpu_features *cpu,
                                     const char *reported);

/*
 * buf (size) = the user-facing explanation for a process that runs the
 * @p reported kernel where @p better would run, with the fix, e.g.
 * "OpenBLAS uses its generic 'Prescott' kernel on this CPU, so matrix
 * products run several times slower than they could. Fix: set
 * OPENBLAS_CORETYPE=Cooperlake in the environment before starting the
 * program (e.g. QGIS)." Truncated to fit, always NUL-terminated
 * (size >= 1).
 */
void mmcl__blas_kernel_message(char *buf, size_t size, const char *reported,
                               const char *better);

/* The kernel the BLAS library runs (openblas_get_corename()), or NULL when
 * the BLAS is not OpenBLAS. A static string. */
const char *mmcl__blas_kernel_in_use(void);

/* buf (size) = the BLAS library and its version, e.g. "OpenBLAS 0.3.21"
 * (from openblas_get_config()), or "CBLAS (not OpenBLAS)". Truncated to
 * fit, always NUL-terminated (size >= 1). */
void mmcl__blas_library(char *buf, size_t size);

#endif /* MMCL_ALGORITHMS_BLAS_KERNEL_H */
