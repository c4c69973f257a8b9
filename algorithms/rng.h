/* SPDX-License-Identifier: MIT */
/*
 * Explicit-state pseudo-random numbers (llm.c's random_u32(uint64_t *state)
 * idea): the whole generator state is one uint64_t owned by the caller, so
 * a stream is reproducible from its seed and threads never share state.
 * The generator is splitmix64 (Steele, Lea & Flood, "Fast splittable
 * pseudorandom number generators", OOPSLA 2014; constants from Vigna's
 * reference splitmix64.c). Any 64-bit value, including 0, is a valid seed:
 * set *state = seed.
 *
 * Not cryptographic. Thread-safety: a state is used by one thread at a time.
 */
#ifndef MMCL_ALGORITHMS_RNG_H
#define MMCL_ALGORITHMS_RNG_H

#include <stddef.h>
#include <stdint.h>

/* Next 64 random bits; advances *state. */
uint64_t mmcl__rng_next_u64(uint64_t *state);

/* Uniform double in [0, 1) with 53 random bits. */
double mmcl__rng_uniform(uint64_t *state);

/*
 * Standard normal N(0, 1) by the Box-Muller transform (one of the pair is
 * discarded; use mmcl__rng_fill_normal() for many values).
 */
double mmcl__rng_normal(uint64_t *state);

/*
 * Unbiased integer in [0, n) by rejection (no modulo bias). n == 0 returns
 * 0 without drawing.
 */
uint64_t mmcl__rng_below(uint64_t *state, uint64_t n);

/* out (n) = mean + std * N(0, 1), float32, using both Box-Muller values. */
void mmcl__rng_fill_normal(uint64_t *state, float *out, double mean, double std,
                           size_t n);

/* Fisher-Yates (Durstenfeld) shuffle of idx (n) in place, uniform over
 * the n! permutations. */
void mmcl__rng_shuffle(uint64_t *state, size_t *idx, size_t n);

#endif /* MMCL_ALGORITHMS_RNG_H */
