# SPDX-License-Identifier: MIT
# Numerics only: no GDAL. Paths relative to the project root.
set(MMCL_ALGORITHM_SOURCES
    algorithms/rng.c
    algorithms/stats.c
    algorithms/linalg.c
    algorithms/cca.c
    algorithms/pca.c
    algorithms/ridge.c
    algorithms/nn.c
    algorithms/matmul.c
    algorithms/infonce.c
    algorithms/adamw.c
    algorithms/blas_threads.c
    algorithms/blas_kernel.c
    algorithms/clip.c
    algorithms/coreg.c
)

# The element-wise loops of the training kernels (ReLU, the InfoNCE
# exp pass, AdamW, the moments' shift pass) vectorise only when float compares may be assumed not
# to trap and sqrtf need not set errno. Neither flag changes a computed
# value (unlike -ffast-math), so results stay bit-exact IEEE; and no
# contraction into FMA, so the AVX2 / AVX-512 clones of those loops
# (simd.h) compute the same bits as the SSE2 baseline.
#
# GCC vectorises at -O2 (RelWithDebInfo, the default build type, and
# distribution builds) only with its "very cheap" cost model, which
# leaves every loop whose trip count is not known at compile time scalar:
# all of these. The dynamic cost model (what -O3 uses) vectorises them
# there too; it changes no value either (no reassociation). Without it a
# RelWithDebInfo clip step took ~1.4x as long as a Release one. No effect
# at -O0.
set(MMCL_VEC_OPTIONS -fno-trapping-math -fno-math-errno -ffp-contract=off)
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
    list(APPEND MMCL_VEC_OPTIONS -ftree-vectorize -fvect-cost-model=dynamic)
endif()
if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    set_source_files_properties(
        algorithms/nn.c algorithms/infonce.c algorithms/adamw.c
        algorithms/clip.c algorithms/matmul.c algorithms/coreg.c
        algorithms/linalg.c
        PROPERTIES COMPILE_OPTIONS "${MMCL_VEC_OPTIONS}")
endif()
