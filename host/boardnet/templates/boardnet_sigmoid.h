#ifndef BOARDNET_SIGMOID_V1_DEFINED
#define BOARDNET_SIGMOID_V1_DEFINED

#include <stdint.h>

/* boardnet's float32 sigmoid, shared by every boardnet header (identical copies; the
 * first one included defines it). It is boardnet.numerics.sigmoid32 operation for
 * operation, so it does not depend on the C library's expf, and costs one division: the
 * exponential of boardnet_exp.h, one addition, one division.
 * |error| <= 1.9e-07 against the true sigmoid.
 *
 *   t = -|x|;  e = exp(t) = 2^k * 2^(j/16) * 2^(r/16), r in [-1/2, 1/2]
 *   sigmoid(x) = 1 / (1 + e) for x >= 0, and e / (1 + e) = e * (1 / (1 + e)) for x < 0
 *
 * This file is copied into every exported float32 header with a sigmoid, after
 * boardnet_exp.h; its constants are the bit patterns of boardnet/numerics.py
 * (tests/test_helpers_c.py holds the two together).
 */
static inline float boardnet_sigmoid_v1(float x)
{
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    boardnet_bits_v1 v, t;
    float e, s;
    uint32_t a;
    v.f = x;
    a = v.u & 0x7fffffffu;                 /* bits of |x| */
    if (a > 0x7f800000u) {                 /* NaN in, NaN out */
        return x;
    }
    if (a >= 0x42ac0000u) {                 /* |x| >= 86 or inf: 0 or 1 exactly */
        return (v.u >> 31) ? 0.0f : 1.0f;
    }
    t.u = a | 0x80000000u;                 /* -|x| */
    e = boardnet_exp_core_v1(t.f);
    s = 1.0f / (1.0f + e);
    return (v.u >> 31) ? e * s : s;
}
#endif /* BOARDNET_SIGMOID_V1_DEFINED */
