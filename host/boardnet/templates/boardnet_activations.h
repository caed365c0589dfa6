#ifndef BOARDNET_ACTIVATIONS_V1_DEFINED
#define BOARDNET_ACTIVATIONS_V1_DEFINED

/* boardnet's float32 tanh and relu, shared by every boardnet header (identical copies; the
 * first one included defines them). They are boardnet.numerics.tanh32 and relu32 operation
 * for operation. tanh is defined when boardnet_sigmoid.h was included before this file.
 *
 *   tanh(x) = 2 sigmoid(2x) - 1, as t = x + x (exact), s = sigmoid(t), (s + s) - 1.0f:
 *             |error| <= 3.8e-07 against the true tanh, tanh(0) = 0, saturates to +-1
 *   relu(x) = 0 for x < 0, else x (NaN and -0 pass through)
 *
 * This file is copied into every exported float32 header that uses them
 * (tests/test_activations.py holds it to boardnet/numerics.py).
 */
#if defined(BOARDNET_SIGMOID_V1_DEFINED)
static inline float boardnet_tanh_v1(float x)
{
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    float s = boardnet_sigmoid_v1(x + x);
    return (s + s) - 1.0f;
}
#endif

static inline float boardnet_relu_v1(float x)
{
    return x < 0.0f ? 0.0f : x;
}
#endif /* BOARDNET_ACTIVATIONS_V1_DEFINED */
