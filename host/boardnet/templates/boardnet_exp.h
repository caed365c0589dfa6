#ifndef BOARDNET_EXP_V1_DEFINED
#define BOARDNET_EXP_V1_DEFINED

#include <stdint.h>

/* boardnet's float32 exponential of a non-positive number, the core of its sigmoid and its
 * softmax, shared by every boardnet header that has either (identical copies; the first one
 * included defines it). It is boardnet.numerics' exp_neg operation for operation, so no
 * board's expf (glibc, newlib, picolibc and ESP-IDF differ) decides a bit:
 *
 *   exp(t) = 2^k * 2^(j/16) * 2^(r/16),  n = round(t * 16/ln2) = 16 k + j,
 *   r = t * 16/ln2 - n in [-1/2, 1/2],  2^(r/16) ~ 1 + r (C1 + r C2)
 *
 * Relative error <= 4.3e-07 from the polynomial, plus the rounding of t * 16/ln2, which
 * matters only where exp(t) is tiny. This file is copied into every exported float32 header
 * that needs it; its constants are the bit patterns of boardnet/numerics.py
 * (tests/test_helpers_c.py holds the two together).
 */
static const float boardnet_exp2_16_v1[16] = { /* 2^(j/16) */
    1.00000000e+00f, 1.04427373e+00f, 1.09050775e+00f, 1.13878858e+00f,
    1.18920708e+00f, 1.24185777e+00f, 1.29683959e+00f, 1.35425556e+00f,
    1.41421354e+00f, 1.47682619e+00f, 1.54221082e+00f, 1.61049032e+00f,
    1.68179286e+00f, 1.75625217e+00f, 1.83400810e+00f, 1.91520655e+00f
};

typedef union { float f; uint32_t u; } boardnet_bits_v1;

/* exp(t) for -86 < t <= 0 (callers test NaN and the range: the result is then a normal
 * number, >= 2^-125, so no arithmetic here meets a subnormal). */
static inline float boardnet_exp_core_v1(float t)
{
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    boardnet_bits_v1 e;
    float w, kf, r, p;
    uint32_t q;
    w = t * 2.30831203e+01f;               /* t * 16/ln2 */
    /* + 1.5 * 2^23 rounds w to an integer n, held in the low mantissa bits */
    kf = w + 1.25829120e+07f;
    r = w - (kf - 1.25829120e+07f);        /* w - n, exact */
    p = 9.38391488e-04f * r + 4.33242358e-02f;
    p = p * r + 1.0f;                      /* 2^(r/16) */
    e.f = kf;
    q = e.u - 0x4b3ff800u;                 /* n + 2048 = 16 (k + 128) + j, never negative */
    e.f = boardnet_exp2_16_v1[q & 15u] * p;
    e.u = e.u + ((q >> 4) << 23) - 0x40000000u; /* times 2^k, in the exponent bits */
    return e.f;
}
#endif /* BOARDNET_EXP_V1_DEFINED */
