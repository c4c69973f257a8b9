/* SPDX-License-Identifier: MIT */
/*
 * The OpenBLAS kernel decision and the CPU features it rests on (see
 * blas_kernel.h). The kernel names are OpenBLAS's own (corename[] in its
 * driver/others/dynamic.c, which OPENBLAS_CORETYPE is matched against).
 */
#include "blas_kernel.h"

#include <stdio.h>
#include <string.h>

#include <cblas.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#define MMCL_HAVE_CPUID 1
#endif

/* The newest instruction set a kernel uses, and what a CPU offers. */
typedef enum kernel_isa {
    ISA_SSE,        /* SSE2 / SSE3 / SSE4: the generic x86-64 kernels */
    ISA_AVX,        /* AVX, no AVX2 */
    ISA_AVX2,       /* AVX2 + FMA */
    ISA_AVX512,     /* AVX-512 F, BW, DQ, VL */
    ISA_AVX512_BF16 /* ... and AVX512_BF16 */
} kernel_isa;

static const struct {
    const char *name;
    kernel_isa isa;
} kernels[] = {
    {"Unknown", ISA_SSE},
    {"Katmai", ISA_SSE},
    {"Coppermine", ISA_SSE},
    {"Northwood", ISA_SSE},
    {"Prescott", ISA_SSE},
    {"Banias", ISA_SSE},
    {"Atom", ISA_SSE},
    {"Core2", ISA_SSE},
    {"Penryn", ISA_SSE},
    {"Dunnington", ISA_SSE},
    {"Nehalem", ISA_SSE},
    {"Athlon", ISA_SSE},
    {"Opteron", ISA_SSE},
    {"Opteron_SSE3", ISA_SSE},
    {"Barcelona", ISA_SSE},
    {"Nano", ISA_SSE},
    {"Bobcat", ISA_SSE},
    {"Sandybridge", ISA_AVX},
    {"Bulldozer", ISA_AVX},
    {"Piledriver", ISA_AVX},
    {"Steamroller", ISA_AVX},
    {"Haswell", ISA_AVX2},
    {"Excavator", ISA_AVX2},
    {"Zen", ISA_AVX2},
    {"SkylakeX", ISA_AVX512},
    {"Cooperlake", ISA_AVX512_BF16},
    {"SapphireRapids", ISA_AVX512_BF16},
};

/* The kernel mmcl asks for on a CPU offering each instruction set. */
static const char *const isa_kernel[] = {
    [ISA_SSE] = NULL,
    [ISA_AVX] = "Sandybridge",
    [ISA_AVX2] = "Haswell",
    [ISA_AVX512] = "SkylakeX",
    [ISA_AVX512_BF16] = "Cooperlake",
};

/* ASCII case-insensitive equality, as OpenBLAS matches OPENBLAS_CORETYPE. */
static int
same_name(const char *a, const char *b)
{
    for (;; a++, b++) {
        char ca = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        char cb = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
        if (ca != cb)
            return 0;
        if (!ca)
            return 1;
    }
}

/* Index of @p name in kernels[], or -1. */
static int
find_kernel(const char *name)
{
    for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++)
        if (same_name(name, kernels[i].name))
            return (int)i;
    return -1;
}

static kernel_isa
cpu_isa(const mmcl_cpu_features *cpu)
{
    if (!cpu->avx)
        return ISA_SSE;
    if (!cpu->avx2 || !cpu->fma)
        return ISA_AVX;
    if (!cpu->avx512f || !cpu->avx512bw || !cpu->avx512dq || !cpu->avx512vl)
        return ISA_AVX2;
    return cpu->avx512_bf16 ? ISA_AVX512_BF16 : ISA_AVX512;
}

const char *
mmcl__blas_kernel_choose(const mmcl_cpu_features *cpu, const char *reported)
{
    if (!cpu || !reported)
        return NULL;
    int k = find_kernel(reported);
    /* Unknown names may be newer than this table: keep them. */
    if (k < 0 || kernels[k].isa >= ISA_AVX2)
        return NULL;
    kernel_isa best = cpu_isa(cpu);
    return best > kernels[k].isa ? isa_kernel[best] : NULL;
}

void
mmcl__blas_kernel_message(char *buf, size_t size, const char *reported,
                          const char *better)
{
    if (!buf || size == 0)
        return;
    int k = reported ? find_kernel(reported) : -1;
    int generic = k < 0 || kernels[k].isa == ISA_SSE;
    snprintf(buf, size,
             "OpenBLAS uses its %s '%s' kernel on this CPU, so matrix "
             "products run %sslower than they could. Fix: set "
             "OPENBLAS_CORETYPE=%s in the environment before starting the "
             "program (e.g. QGIS).",
             generic ? "generic" : "older", reported ? reported : "Unknown",
             generic ? "several times " : "", better ? better : "?");
}

#ifdef MMCL_HAVE_CPUID
/* XCR0: the register state the operating system saves (Intel SDM vol. 1,
 * 13.3); xgetbv needs CPUID.1:ECX.OSXSAVE. */
static unsigned long long
read_xcr0(void)
{
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

void
mmcl__cpu_features_detect(mmcl_cpu_features *cpu)
{
    memset(cpu, 0, sizeof(*cpu));
#ifdef MMCL_HAVE_CPUID
    unsigned int a, b, c, d;
    unsigned int max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 1)
        return;
    __cpuid(1, a, b, c, d);
    cpu->sse3 = (c & (1u << 0)) != 0;
    /* AVX needs the XMM and YMM state (XCR0 bits 1, 2), AVX-512 also the
     * opmask, ZMM_Hi256 and Hi16_ZMM state (bits 5, 6, 7). */
    unsigned long long xcr0 = (c & (1u << 27)) ? read_xcr0() : 0;
    int ymm = (xcr0 & 0x06) == 0x06;
    int zmm = (xcr0 & 0xe6) == 0xe6;
    cpu->avx = ymm && (c & (1u << 28));
    cpu->fma = cpu->avx && (c & (1u << 12));
    if (max_leaf < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned int max_subleaf = a;
    cpu->avx2 = cpu->avx && (b & (1u << 5));
    cpu->avx512f = zmm && (b & (1u << 16));
    cpu->avx512dq = zmm && (b & (1u << 17));
    cpu->avx512bw = zmm && (b & (1u << 30));
    cpu->avx512vl = zmm && (b & (1u << 31));
    if (max_subleaf >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        cpu->avx512_bf16 = zmm && (a & (1u << 5));
    }
#endif
}

const char *
mmcl__blas_kernel_in_use(void)
{
#ifdef OPENBLAS_VERSION
    return openblas_get_corename();
#else
    return NULL;
#endif
}

void
mmcl__blas_library(char *buf, size_t size)
{
    if (!buf || size == 0)
        return;
#ifdef OPENBLAS_VERSION
    /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": the first two words. */
    const char *config = openblas_get_config();
    if (!config)
        config = "OpenBLAS";
    const char *end = strchr(config, ' ');
    if (end)
        end = strchr(end + 1, ' ');
    int n = end ? (int)(end - config) : (int)strlen(config);
    snprintf(buf, size, "%.*s", n, config);
#else
    snprintf(buf, size, "CBLAS (not OpenBLAS)");
#endif
}
