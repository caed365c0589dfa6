#ifndef BOARDNET_SOFTMAX_V1_DEFINED
#define BOARDNET_SOFTMAX_V1_DEFINED

#include <stdint.h>

/* boardnet's float32 softmax, shared by every boardnet header (identical copies; the first
 * one included defines it). It is boardnet.numerics.softmax32 operation for operation, with
 * the exponential of boardnet_sigmoid.h (the same 2^(j/16) table, polynomial and bit
 * operations; no libm):
 *
 *   m = y[0], then each later y[i] > m replaces it;  e[i] = exp(y[i] - m), 0 for
 *   y[i] - m <= -86;  s = 0 + e[0] + e[1] + ... in order;  y[i] = e[i] * (1 / s)
 *
 * The exponential's relative error is <= 4.3e-06 over [-86, 0] (the rounding of t * 16/ln2
 * for large |t|); exp(0) = 1 exactly, so s >= 1.
 * This file is copied into every exported float32 header with a softmax layer; its
 * constants are the bit patterns of boardnet/numerics.py (tests/test_activations.py holds
 * the two together).
 */
static const float boardnet_exp2_16_softmax_v1[16] = { /* 2^(j/16) */
    1.00000000e+00f, 1.04427373e+00f, 1.09050775e+00f, 1.13878858e+00f,
    1.18920708e+00f, 1.24185777e+00f, 1.29683959e+00f, 1.35425556e+00f,
    1.41421354e+00f, 1.47682619e+00f, 1.54221082e+00f, 1.61049032e+00f,
    1.68179286e+00f, 1.75625217e+00f, 1.83400810e+00f, 1.91520655e+00f
};

typedef union { float f; uint32_t u; } boardnet_softmax_bits_v1;

/* exp(t) for t <= 0: 2^k * 2^(j/16) * 2^(r/16); 0 for t <= -86, NaN for NaN */
static inline float boardnet_exp_neg_v1(float t)
{
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    boardnet_softmax_bits_v1 v, e;
    float w, kf, r, p;
    uint32_t a, q;
    v.f = t;
    a = v.u & 0x7fffffffu;
    if (a > 0x7f800000u) {                 /* NaN in, NaN out */
        return t;
    }
    if (a >= 0x42ac0000u) {                 /* t <= -86: below float32's normal range */
        return 0.0f;
    }
    e.u = a | 0x80000000u;                 /* -|t| = t */
    w = e.f * 2.30831203e+01f;         /* t * 16/ln2 */
    kf = w + 1.25829120e+07f;            /* round(w), in the low mantissa bits */
    r = w - (kf - 1.25829120e+07f);
    p = 9.38391488e-04f * r + 4.33242358e-02f;
    p = p * r + 1.0f;                      /* 2^(r/16) */
    e.f = kf;
    q = e.u - 0x4b3ff800u;            /* n + 2048 = 16 (k + 128) + j */
    e.f = boardnet_exp2_16_softmax_v1[q & 15u] * p;
    e.u = e.u + ((q >> 4) << 23) - 0x40000000u; /* times 2^k */
    return e.f;
}

/* y[0 .. n-1] <- softmax(y[0 .. n-1]), in place */
static inline void boardnet_softmax_v1(float *y, int n)
{
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    float m = y[0], s = 0.0f, inv;
    int i;
    for (i = 1; i < n; ++i) {
        if (y[i] > m) {
            m = y[i];
        }
    }
    for (i = 0; i < n; ++i) {
        y[i] = boardnet_exp_neg_v1(y[i] - m);
        s = s + y[i];
    }
    inv = 1.0f / s;
    for (i = 0; i < n; ++i) {
        y[i] = y[i] * inv;
    }
}
#endif /* BOARDNET_SOFTMAX_V1_DEFINED */
