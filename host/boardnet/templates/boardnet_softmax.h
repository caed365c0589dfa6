#ifndef BOARDNET_SOFTMAX_V1_DEFINED
#define BOARDNET_SOFTMAX_V1_DEFINED

#include <stdint.h>

/* boardnet's float32 softmax, shared by every boardnet header (identical copies; the first
 * one included defines it). It is boardnet.numerics.softmax32 operation for operation, with
 * the exponential of boardnet_exp.h (no libm):
 *
 *   m = y[0], then each later y[i] > m replaces it;  e[i] = exp(y[i] - m), 0 for
 *   y[i] - m <= -86;  s = 0 + e[0] + e[1] + ... in order;  y[i] = e[i] * (1 / s)
 *
 * The exponential's relative error is <= 4.3e-06 over [-86, 0] (the rounding of t * 16/ln2
 * for large |t|); exp(0) = 1 exactly, so s >= 1.
 * This file is copied into every exported float32 header with a softmax layer, after
 * boardnet_exp.h (whose constants tests/test_helpers_c.py holds to boardnet/numerics.py).
 */
/* exp(t) for t <= 0: 2^k * 2^(j/16) * 2^(r/16); 0 for t <= -86, NaN for NaN */
static inline float boardnet_exp_neg_v1(float t)
{
    boardnet_bits_v1 v;
    v.f = t;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) { /* NaN in, NaN out */
        return t;
    }
    if ((v.u & 0x7fffffffu) >= 0x42ac0000u) { /* t <= -86: below float32's normal range */
        return 0.0f;
    }
    return boardnet_exp_core_v1(t);
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
