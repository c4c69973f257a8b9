/* SPDX-License-Identifier: MIT */
/*
 * Tests of the OpenBLAS kernel choice: the pure decision
 * (algorithms/blas_kernel.c) over a table of CPUs and reported kernels,
 * the user-facing message, the feature detection on this machine, who
 * chose the kernel (mmcl_blas_info_get) and the once-per-process warning.
 */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <cpl_error.h>

#include "blas_info_internal.h"
#include "blas_kernel.h"
#include "mmcl/blas.h"
#include "test_util.h"

/* CPUs, by what they offer (and the OS enabled). */
static const mmcl_cpu_features cpu_none = {0};
static const mmcl_cpu_features cpu_sse3 = {.sse3 = true};
static const mmcl_cpu_features cpu_avx = {.sse3 = true, .avx = true};
/* AVX2 without FMA: no x86 CPU has it, the decision must not assume. */
static const mmcl_cpu_features cpu_avx2_no_fma = {
    .sse3 = true, .avx = true, .avx2 = true};
static const mmcl_cpu_features cpu_avx2 = {
    .sse3 = true, .avx = true, .avx2 = true, .fma = true};
/* AVX-512 F without BW/DQ/VL (Knights Landing). */
static const mmcl_cpu_features cpu_avx512f_only = {
    .sse3 = true, .avx = true, .avx2 = true, .fma = true, .avx512f = true};
static const mmcl_cpu_features cpu_avx512 = {.sse3 = true,
                                             .avx = true,
                                             .avx2 = true,
                                             .fma = true,
                                             .avx512f = true,
                                             .avx512bw = true,
                                             .avx512dq = true,
                                             .avx512vl = true};
static const mmcl_cpu_features cpu_avx512_bf16 = {.sse3 = true,
                                                  .avx = true,
                                                  .avx2 = true,
                                                  .fma = true,
                                                  .avx512f = true,
                                                  .avx512bw = true,
                                                  .avx512dq = true,
                                                  .avx512vl = true,
                                                  .avx512_bf16 = true};

typedef struct kernel_case {
    const char *cpu_name;
    const mmcl_cpu_features *cpu;
    const char *reported;
    const char *expected; /* NULL: keep the reported kernel */
} kernel_case;

static const kernel_case cases[] = {
    /* The misdetected fallback, on each kind of CPU. */
    {"avx512+bf16", &cpu_avx512_bf16, "Prescott", "Cooperlake"},
    {"avx512", &cpu_avx512, "Prescott", "SkylakeX"},
    {"avx2", &cpu_avx2, "Prescott", "Haswell"},
    {"avx", &cpu_avx, "Prescott", "Sandybridge"},
    {"sse3", &cpu_sse3, "Prescott", NULL},
    {"none", &cpu_none, "Prescott", NULL},
    {"avx2 without fma", &cpu_avx2_no_fma, "Prescott", "Sandybridge"},
    {"avx512f only", &cpu_avx512f_only, "Prescott", "Haswell"},
    /* Other generic and older kernels, matched as OpenBLAS does. */
    {"avx512+bf16", &cpu_avx512_bf16, "prescott", "Cooperlake"},
    {"avx512+bf16", &cpu_avx512_bf16, "Unknown", "Cooperlake"},
    {"avx512+bf16", &cpu_avx512_bf16, "Core2", "Cooperlake"},
    {"avx512+bf16", &cpu_avx512_bf16, "Penryn", "Cooperlake"},
    {"avx512+bf16", &cpu_avx512_bf16, "Dunnington", "Cooperlake"},
    {"avx512+bf16", &cpu_avx512_bf16, "Nehalem", "Cooperlake"},
    {"avx512+bf16", &cpu_avx512_bf16, "Atom", "Cooperlake"},
    {"avx512+bf16", &cpu_avx512_bf16, "Barcelona", "Cooperlake"},
    {"avx512", &cpu_avx512, "Sandybridge", "SkylakeX"},
    {"avx2", &cpu_avx2, "Sandybridge", "Haswell"},
    {"avx2", &cpu_avx2, "Bulldozer", "Haswell"},
    {"avx", &cpu_avx, "Nehalem", "Sandybridge"},
    /* A kernel that matches the CPU is kept. */
    {"avx", &cpu_avx, "Sandybridge", NULL},
    {"avx", &cpu_avx, "Bulldozer", NULL},
    {"avx2 without fma", &cpu_avx2_no_fma, "Sandybridge", NULL},
    {"sse3", &cpu_sse3, "Nehalem", NULL},
    /* AVX2 and newer kernels are never replaced, nor downgraded. */
    {"avx512+bf16", &cpu_avx512_bf16, "Haswell", NULL},
    {"avx512+bf16", &cpu_avx512_bf16, "Zen", NULL},
    {"avx512+bf16", &cpu_avx512_bf16, "Excavator", NULL},
    {"avx512+bf16", &cpu_avx512_bf16, "SkylakeX", NULL},
    {"avx512+bf16", &cpu_avx512_bf16, "Cooperlake", NULL},
    {"avx512+bf16", &cpu_avx512_bf16, "SapphireRapids", NULL},
    {"avx512", &cpu_avx512, "Cooperlake", NULL},
    {"avx2", &cpu_avx2, "SkylakeX", NULL},
    {"avx", &cpu_avx, "Haswell", NULL},
    {"none", &cpu_none, "Zen", NULL},
    /* Names the table does not know (newer OpenBLAS, other CPUs). */
    {"avx512+bf16", &cpu_avx512_bf16, "GraniteRapids", NULL},
    {"avx512+bf16", &cpu_avx512_bf16, "NEOVERSEV1", NULL},
    {"avx512+bf16", &cpu_avx512_bf16, "", NULL},
    {"avx512+bf16", &cpu_avx512_bf16, NULL, NULL},
};

static void
choice_replaces_only_fallbacks_the_cpu_outgrows(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const kernel_case *c = &cases[i];
        const char *got = mmcl__blas_kernel_choose(c->cpu, c->reported);
        int ok = c->expected ? got && strcmp(got, c->expected) == 0 : !got;
        if (!ok)
            printf("\n  %s, reported %s: got %s, expected %s", c->cpu_name,
                   c->reported ? c->reported : "(null)", got ? got : "(keep)",
                   c->expected ? c->expected : "(keep)");
        CU_ASSERT_TRUE(ok);
    }
    CU_ASSERT_PTR_NULL(mmcl__blas_kernel_choose(NULL, "Prescott"));
}

static void
message_names_the_fallback_the_cost_and_the_fix(void)
{
    char msg[512];
    mmcl__blas_kernel_message(msg, sizeof(msg), "Prescott", "Cooperlake");
    CU_ASSERT_STRING_EQUAL(
        msg, "OpenBLAS uses its generic 'Prescott' kernel on this CPU, so "
             "matrix products run several times slower than they could. "
             "Fix: set OPENBLAS_CORETYPE=Cooperlake in the environment "
             "before starting the program (e.g. QGIS).");
    /* An AVX kernel on an AVX2 CPU is older, not generic. */
    mmcl__blas_kernel_message(msg, sizeof(msg), "Sandybridge", "Haswell");
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "its older 'Sandybridge' kernel"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "run slower than they could"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "OPENBLAS_CORETYPE=Haswell "));
    /* Truncated to fit, always terminated. */
    char small[16];
    memset(small, 'x', sizeof(small));
    mmcl__blas_kernel_message(small, sizeof(small), "Prescott", "Haswell");
    CU_ASSERT_EQUAL(strlen(small), sizeof(small) - 1);
}

static void
detected_features_are_consistent_on_this_machine(void)
{
    mmcl_cpu_features f;
    memset(&f, 0xff, sizeof(f));
    mmcl__cpu_features_detect(&f);
    printf("\n  sse3 %d avx %d avx2 %d fma %d avx512 f %d bw %d dq %d vl %d "
           "bf16 %d ",
           f.sse3, f.avx, f.avx2, f.fma, f.avx512f, f.avx512bw, f.avx512dq,
           f.avx512vl, f.avx512_bf16);
    /* Each level needs the one below (and the OS state it rests on). */
    CU_ASSERT_TRUE(!f.avx || f.sse3);
    CU_ASSERT_TRUE(!f.avx2 || f.avx);
    CU_ASSERT_TRUE(!f.fma || f.avx);
    CU_ASSERT_TRUE(!f.avx512f || f.avx2);
    CU_ASSERT_TRUE(!(f.avx512bw || f.avx512dq || f.avx512vl) || f.avx512f);
    CU_ASSERT_TRUE(!f.avx512_bf16 || f.avx512f);
#if defined(__x86_64__) && defined(__GNUC__)
    /* The compiler's own reading (libgcc / compiler-rt, which also check
     * the OS state) agrees. */
    __builtin_cpu_init();
    CU_ASSERT_EQUAL(f.sse3, __builtin_cpu_supports("sse3") != 0);
    CU_ASSERT_EQUAL(f.avx, __builtin_cpu_supports("avx") != 0);
    CU_ASSERT_EQUAL(f.avx2, __builtin_cpu_supports("avx2") != 0);
    CU_ASSERT_EQUAL(f.fma, __builtin_cpu_supports("fma") != 0);
    CU_ASSERT_EQUAL(f.avx512f, __builtin_cpu_supports("avx512f") != 0);
    CU_ASSERT_EQUAL(f.avx512bw, __builtin_cpu_supports("avx512bw") != 0);
    CU_ASSERT_EQUAL(f.avx512dq, __builtin_cpu_supports("avx512dq") != 0);
    CU_ASSERT_EQUAL(f.avx512vl, __builtin_cpu_supports("avx512vl") != 0);
#if !defined(__clang__) && __GNUC__ >= 12
    CU_ASSERT_EQUAL(f.avx512_bf16, __builtin_cpu_supports("avx512bf16") != 0);
#endif
    CU_ASSERT_TRUE(f.sse3); /* every x86-64 CPU since 2005 */
#else
    mmcl_cpu_features none = {0};
    CU_ASSERT_EQUAL(memcmp(&f, &none, sizeof(f)), 0);
#endif
    /* The choice for the kernel in use is nothing or one of the four. */
    const char *kernel = mmcl__blas_kernel_in_use();
    const char *better = mmcl__blas_kernel_choose(&f, kernel);
    printf("kernel %s, better %s ", kernel ? kernel : "(not OpenBLAS)",
           better ? better : "(none)");
    CU_ASSERT_TRUE(!better || strcmp(better, "Cooperlake") == 0 ||
                   strcmp(better, "SkylakeX") == 0 ||
                   strcmp(better, "Haswell") == 0 ||
                   strcmp(better, "Sandybridge") == 0);
}

/* Sets or (NULL) unsets the three variables mmcl_blas_info_get reads. */
static void
set_env(const char *coretype, const char *marker, const char *test)
{
    const char *names[] = {"OPENBLAS_CORETYPE", MMCL_BLAS_DETECTED_ENV,
                           "MMCL_BLAS_TEST_DETECTED"};
    const char *values[] = {coretype, marker, test};
    for (int i = 0; i < 3; i++) {
        if (values[i])
            setenv(names[i], values[i], 1);
        else
            unsetenv(names[i]);
    }
}

static void
info_says_who_chose_the_kernel(void)
{
    mmcl_cpu_features f;
    mmcl__cpu_features_detect(&f);
    const char *for_prescott = mmcl__blas_kernel_choose(&f, "Prescott");
    mmcl_blas_info info;

    /* OpenBLAS chose (here the test hook says what it chose). */
    set_env(NULL, NULL, "Prescott");
    mmcl_blas_info_get(&info);
    CU_ASSERT_EQUAL(info.origin, MMCL_BLAS_KERNEL_OPENBLAS);
    CU_ASSERT_TRUE(info.threads >= 1);
    CU_ASSERT_TRUE(strncmp(info.library, "OpenBLAS ", 9) == 0 ||
                   strcmp(info.library, "CBLAS (not OpenBLAS)") == 0);
    if (info.kernel[0]) {
        CU_ASSERT_STRING_EQUAL(info.detected, "Prescott");
        CU_ASSERT_STRING_EQUAL(info.better, for_prescott ? for_prescott : "");
    }

    /* The user chose: nothing else is said. */
    set_env("Haswell", NULL, "Prescott");
    mmcl_blas_info_get(&info);
    CU_ASSERT_EQUAL(info.origin, MMCL_BLAS_KERNEL_USER);
    CU_ASSERT_STRING_EQUAL(info.detected, "");
    CU_ASSERT_STRING_EQUAL(info.better, "");

    /* The program chose: what it set is what it would choose. */
    if (for_prescott) {
        set_env(for_prescott, "Prescott", NULL);
        mmcl_blas_info_get(&info);
        CU_ASSERT_EQUAL(info.origin, MMCL_BLAS_KERNEL_MMCL);
        CU_ASSERT_STRING_EQUAL(info.detected, "Prescott");
        CU_ASSERT_STRING_EQUAL(info.better, "");
    }
    /* ... else a stale or foreign marker: the user's choice. */
    set_env("Core2", "Prescott", NULL);
    mmcl_blas_info_get(&info);
    CU_ASSERT_EQUAL(info.origin, MMCL_BLAS_KERNEL_USER);
    set_env("", NULL, NULL); /* set, even if empty, as OpenBLAS reads it */
    mmcl_blas_info_get(&info);
    CU_ASSERT_EQUAL(info.origin, MMCL_BLAS_KERNEL_USER);

    mmcl_blas_info_get(NULL); /* no-op */
}

static int n_warnings;
static char warning[1024];

static void CPL_STDCALL
count_warnings(CPLErr cls, CPLErrorNum num, const char *msg)
{
    (void)num;
    if (cls == CE_Warning) {
        n_warnings++;
        snprintf(warning, sizeof(warning), "%s", msg);
    }
}

static void
warning_is_posted_once_and_keeps_the_last_error(void)
{
    mmcl_cpu_features f;
    mmcl__cpu_features_detect(&f);
    const char *better = mmcl__blas_kernel_choose(&f, "Prescott");
    int has_openblas = mmcl__blas_kernel_in_use() != NULL;

    set_env(NULL, NULL, "Prescott");
    CPLPushErrorHandler(count_warnings);
    CPLErrorSetState(CE_Failure, CPLE_FileIO, "an earlier failure");
    for (int i = 0; i < 3; i++)
        mmcl__blas_kernel_warn_once();
    CPLPopErrorHandler();
    CU_ASSERT_EQUAL(n_warnings, better && has_openblas ? 1 : 0);
    if (n_warnings) {
        char expected[512];
        mmcl__blas_kernel_message(expected, sizeof(expected), "Prescott",
                                  better);
        CU_ASSERT_STRING_EQUAL(warning + strlen("mmcl: "), expected);
        CU_ASSERT_EQUAL(strncmp(warning, "mmcl: ", 6), 0);
    }
    CU_ASSERT_EQUAL(CPLGetLastErrorType(), CE_Failure);
    CU_ASSERT_EQUAL(CPLGetLastErrorNo(), CPLE_FileIO);
    CU_ASSERT_STRING_EQUAL(CPLGetLastErrorMsg(), "an earlier failure");
    CPLErrorReset();
}

int
main(void)
{
    static const test_case tests[] = {
        {"choice_replaces_only_fallbacks_the_cpu_outgrows",
         choice_replaces_only_fallbacks_the_cpu_outgrows},
        {"message_names_the_fallback_the_cost_and_the_fix",
         message_names_the_fallback_the_cost_and_the_fix},
        {"detected_features_are_consistent_on_this_machine",
         detected_features_are_consistent_on_this_machine},
        {"info_says_who_chose_the_kernel", info_says_who_chose_the_kernel},
        {"warning_is_posted_once_and_keeps_the_last_error",
         warning_is_posted_once_and_keeps_the_last_error},
        {NULL, NULL},
    };
    return test_run_suite("blas_kernel", tests);
}
