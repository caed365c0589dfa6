#ifndef BOARDNET_SIGMOID_V1_DEFINED
#define BOARDNET_SIGMOID_V1_DEFINED

#include <stdint.h>

/* boardnet's float32 sigmoid, shared by every boardnet header (identical copies; the
 * first one included defines it). It is boardnet.numerics.sigmoid32 operation for
 * operation, so it does not depend on the C library's expf, and costs one division.
 * |error| <= 1.9e-07 against the true sigmoid.
 *
 *   t = -|x|;  e = exp(t) = 2^k * 2^(j/16) * 2^(r/16), r in [-1/2, 1/2]
 *   sigmoid(x) = 1 / (1 + e) for x >= 0, and e / (1 + e) = e * (1 / (1 + e)) for x < 0
 *
 * This file is copied into every exported float32 header; its constants are the bit
 * patterns of boardnet/numerics.py (tests/test_helpers_c.py holds the two together).
 */
static const float boardnet_exp2_16_v1[16] = { /* 2^(j/16) */
    1.00000000e+00f, 1.04427373e+00f, 1.09050775e+00f, 1.13878858e+00f,
    1.18920708e+00f, 1.24185777e+00f, 1.29683959e+00f, 1.35425556e+00f,
    1.41421354e+00f, 1.47682619e+00f, 1.54221082e+00f, 1.61049032e+00f,
    1.68179286e+00f, 1.75625217e+00f, 1.83400810e+00f, 1.91520655e+00f
};

typedef union { float f; uint32_t u; } boardnet_bits_v1;

static inline float boardnet_sigmoid_v1(float x)
{
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    boardnet_bits_v1 v, e;
    float w, kf, r, p, s;
    uint32_t a, q;
    v.f = x;
    a = v.u & 0x7fffffffu;                 /* bits of |x| */
    if (a > 0x7f800000u) {                 /* NaN in, NaN out */
        return x;
    }
    if (a >= 0x42ac0000u) {                 /* |x| >= 86 or inf: 0 or 1 exactly */
        return (v.u >> 31) ? 0.0f : 1.0f;
    }
    e.u = a | 0x80000000u;                 /* t = -|x| */
    w = e.f * 2.30831203e+01f;         /* t * 16/ln2 */
    /* + 1.5 * 2^23 rounds w to an integer n, held in the low mantissa bits */
    kf = w + 1.25829120e+07f;
    r = w - (kf - 1.25829120e+07f);      /* w - n, exact */
    p = 9.38391488e-04f * r + 4.33242358e-02f;
    p = p * r + 1.0f;                      /* 2^(r/16) */
    e.f = kf;
    q = e.u - 0x4b3ff800u;            /* n + 2048 = 16 (k + 128) + j, never negative */
    e.f = boardnet_exp2_16_v1[q & 15u] * p;
    e.u = e.u + ((q >> 4) << 23) - 0x40000000u; /* times 2^k, in the exponent bits */
    s = 1.0f / (1.0f + e.f);
    return (v.u >> 31) ? e.f * s : s;
}
#endif /* BOARDNET_SIGMOID_V1_DEFINED */
