/* SPDX-License-Identifier: MIT */
/*
 * Wider vectors for the element-wise training loops without -march: on
 * x86-64 with GCC or Clang, MMCL__VEC_CLONES builds a function for
 * AVX-512, AVX2 and the baseline (SSE2), and the loader picks one for the
 * CPU (an ifunc). The loops are written so that the vector width does not
 * change a result: no reassociated reductions (fixed float lanes instead)
 * and no contraction into FMA (the files that use it are compiled with
 * -ffp-contract=off, algorithms/sources.cmake), so every clone computes
 * the same bits. GCC only: Clang contracts a * b + c by default and its
 * clones are not checked here.
 */
#ifndef MMCL_ALGORITHMS_SIMD_H
#define MMCL_ALGORITHMS_SIMD_H

#if defined(__x86_64__) && defined(__ELF__) && defined(__GNUC__) &&            \
    !defined(__clang__) && __GNUC__ >= 8
#define MMCL__VEC_CLONES                                                       \
    __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MMCL__VEC_CLONES
#endif

#endif /* MMCL_ALGORITHMS_SIMD_H */
