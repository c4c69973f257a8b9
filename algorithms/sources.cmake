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
    algorithms/infonce.c
    algorithms/adamw.c
    algorithms/blas_threads.c
    algorithms/blas_kernel.c
    algorithms/clip.c
)

# The element-wise loops of the training kernels (ReLU, the InfoNCE
# exp pass, AdamW) vectorise only when float compares may be assumed not
# to trap and sqrtf need not set errno. Neither flag changes a computed
# value (unlike -ffast-math), so results stay bit-exact IEEE; and no
# contraction into FMA, so the AVX2 / AVX-512 clones of those loops
# (simd.h) compute the same bits as the SSE2 baseline.
if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    set_source_files_properties(
        algorithms/nn.c algorithms/infonce.c algorithms/adamw.c
        algorithms/clip.c
        PROPERTIES COMPILE_OPTIONS "-fno-trapping-math;-fno-math-errno;-ffp-contract=off")
endif()
