/* SPDX-License-Identifier: MIT */
/*
 * Branch-free single-precision exp for element-wise loops that the
 * compiler vectorises (libm's expf is an opaque call per element). Cephes
 * expf (S. L. Moshier, Cephes Math Library, expf.c): range reduction
 *   x = n ln2 + r,  n = round(x / ln2),  |r| <= ln2 / 2,
 * with ln2 split into C1 + C2 so that n C1 is exact, a degree-7 polynomial
 * for exp(r), and 2^n put in the exponent bits. The rounding uses the
 * 1.5 * 2^23 trick (float addition rounds to nearest), so there is no
 * floor() call and no branch.
 *
 * Domain: finite x; x is clamped to [-87, 88] first, so the result is a
 * normal float in [exp(-87), exp(88)]. NaN input gives an unspecified
 * value: callers that can see NaN must check elsewhere. Accuracy: max
 * relative error ~2 ulp against exp() on [-87, 88] (tests/test_infonce.c
 * measures it).
 */
#ifndef MMCL_ALGORITHMS_FASTEXP_H
#define MMCL_ALGORITHMS_FASTEXP_H

#include <stdint.h>
#include <string.h>

#define MMCL_FASTEXP_LO (-87.0f)
#define MMCL_FASTEXP_HI 88.0f

static inline float
mmcl__fastexpf(float x)
{
    const float log2e = 1.44269504088896341f;
    const float c1 = 0.693359375f;     /* ln2 high part, 9 bits: n c1 exact */
    const float c2 = -2.12194440e-4f;  /* ln2 - c1 */
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */

    x = x < MMCL_FASTEXP_LO ? MMCL_FASTEXP_LO : x;
    x = x > MMCL_FASTEXP_HI ? MMCL_FASTEXP_HI : x;

    /* n = round(x log2e): the sum's low mantissa bits hold n. */
    float t = x * log2e + shifter;
    float n = t - shifter;
    /* Unsigned bit arithmetic: wraps instead of overflowing for NaN. */
    uint32_t ti, si;
    memcpy(&ti, &t, sizeof(ti));
    memcpy(&si, &shifter, sizeof(si));
    uint32_t ni = ti - si; /* n mod 2^32 */

    float r = x - n * c1;
    r = r - n * c2;

    /* exp(r) = 1 + r + r^2 P(r), Cephes coefficients. */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * (r * r) + r + 1.0f;

    /* 2^n: n + 127 in [1, 254] because of the clamp. */
    uint32_t bits = (ni + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return e * scale;
}

#endif /* MMCL_ALGORITHMS_FASTEXP_H */
