/* SPDX-License-Identifier: MIT */
/*
 * splitmix64 and the distributions built on it: uniform doubles, normals
 * (Box-Muller), unbiased bounded integers and Fisher-Yates shuffles. All
 * state is the caller's uint64_t; nothing here is global.
 */
#include "rng.h"

#include <math.h>

/* Vigna's splitmix64.c (public domain), one 64-bit state word. */
uint64_t
mmcl__rng_next_u64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

double
mmcl__rng_uniform(uint64_t *state)
{
    /* The top 53 bits scaled by 2^-53: every value is a multiple of 2^-53
     * in [0, 1), the standard conversion (Vigna, xoshiro notes). */
    return (double)(mmcl__rng_next_u64(state) >> 11) * 0x1.0p-53;
}

/*
 * Box-Muller (Box & Muller 1958): two independent N(0, 1) values from two
 * uniforms. u1 is taken in (0, 1] so that log(u1) is finite.
 */
static void
box_muller(uint64_t *state, double *z0, double *z1)
{
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = 1.0 - mmcl__rng_uniform(state);
    double u2 = mmcl__rng_uniform(state);
    double r = sqrt(-2.0 * log(u1));
    *z0 = r * cos(two_pi * u2);
    *z1 = r * sin(two_pi * u2);
}

double
mmcl__rng_normal(uint64_t *state)
{
    double z0, z1;
    box_muller(state, &z0, &z1);
    return z0;
}

uint64_t
mmcl__rng_below(uint64_t *state, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Reject the lowest (2^64 mod n) values so that the accepted range is a
     * whole number of copies of [0, n) (OpenBSD arc4random_uniform). */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t r = mmcl__rng_next_u64(state);
        if (r >= threshold)
            return r % n;
    }
}

void
mmcl__rng_fill_normal(uint64_t *state, float *out, double mean, double std,
                      size_t n)
{
    size_t i = 0;
    double z0, z1;
    for (; i + 1 < n; i += 2) {
        box_muller(state, &z0, &z1);
        out[i] = (float)(mean + std * z0);
        out[i + 1] = (float)(mean + std * z1);
    }
    if (i < n) {
        box_muller(state, &z0, &z1);
        out[i] = (float)(mean + std * z0);
    }
}

void
mmcl__rng_shuffle(uint64_t *state, size_t *idx, size_t n)
{
    /* Durstenfeld's in-place Fisher-Yates: swap i with a uniform j <= i. */
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)mmcl__rng_below(state, (uint64_t)i);
        size_t tmp = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = tmp;
    }
}
