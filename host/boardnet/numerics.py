"""The float32 arithmetic a board runs, reproduced bit for bit in numpy.

`expf` differs between glibc, newlib, picolibc and ESP-IDF, so boardnet carries its own
float32 sigmoid. The generated C (templates/model.h.j2) and the MicroPython module run
the same float32 operations in the same order, each correctly rounded (IEEE single, no
FMA), so host and board agree to the bit.

The sigmoid, for x = ±|x|, t = -|x| <= 0:

    e = exp(t) = 2^(n/16) * 2^(r/16),  n = round(t * 16/ln2), r = t * 16/ln2 - n in [-1/2, 1/2]
        2^(n/16) = 2^k * T[j]       (n = 16 k + j; T a 16-entry table; 2^k added to the
                                     exponent bits, so no multiplication)
        2^(r/16) ~ 1 + r (C1 + r C2) (degree-2 fit of the relative error)
    s = 1 / (1 + e)
    sigmoid(x) = s        for x >= 0
               = e * s    for x < 0  (= e / (1 + e), no second division)

Why this shape: on a Cortex-M0+ every float operation is a libgcc call (fdiv ~770
instructions, fadd/fmul ~60-120), while integer and bit operations cost one or two. So
the rounding of n uses the 1.5 * 2^23 "shifter" (a float add instead of a float->int
call), the sign, NaN and saturation tests compare integer bits, 2^k goes into the
exponent field, and there is one division. Total: 9 fmul/fadd for exp, 1 fadd, 1 fdiv,
and 1 fmul for x < 0.

Accuracy against the true sigmoid (measured in float64; see MAX_ABS_ERROR): the
polynomial's relative error is <= 4.3e-7, which moves sigmoid by at most a quarter of
that; the float32 roundings add about one ulp of 1. The rounding of t * 16/ln2 costs
relative accuracy of e only for large |t|, where e and so its effect are tiny.

Saturation: |x| >= 86 gives exactly 1 (x > 0) or 0 (x < 0); below that e >= 2^-125 stays a
normal number (no subnormal arithmetic anywhere, which matters on FPUs that flush them).
sigmoid(x) for 17 <= x < 86 already rounds to 1. NaN in gives the same NaN out; ±inf
give 1 and 0; sigmoid(±0) = 0.5 exactly.

The other activations are built from the same pieces, so they need no libm either:

    tanh(x)    = 2 sigmoid(2x) - 1, computed as t = x + x, s = sigmoid(t), (s + s) - 1
    relu(x)    = 0 for x < 0, else x
    softmax(z) = e_i * (1 / s): m = max z (first wins), e_i = exp(z_i - m) by the sigmoid's
                 exponential, s = 0 + e_0 + e_1 + ... in order

Their C (templates/boardnet_activations.h, boardnet_softmax.h) and MicroPython
(templates/model.py.j2) do the same operations in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

f32 = np.float32

# float32 bit patterns (hard-coded, so no machine's libm decides them).
EXP2_TABLE_BITS = (  # T[j] = 2^(j/16) correctly rounded to float32
    0x3F800000, 0x3F85AAC3, 0x3F8B95C2, 0x3F91C3D3, 0x3F9837F0, 0x3F9EF532, 0x3FA5FED7, 0x3FAD583F,
    0x3FB504F3, 0x3FBD08A4, 0x3FC5672A, 0x3FCE248C, 0x3FD744FD, 0x3FE0CCDF, 0x3FEAC0C7, 0x3FF5257D,
)
LOG2E_16_BITS = 0x41B8AA3B  # 16 / ln 2 = 23.0831203...
SHIFTER_BITS = 0x4B400000  # 1.5 * 2^23: x + SHIFTER rounds x to an integer held in the low bits
C1_BITS = 0x3D3174C1  # minimax-fitted (relative error) coefficients of 2^(r/16) ~ 1 + r (C1 + r C2)
C2_BITS = 0x3A75FE63
LIMIT_BITS = 0x42AC0000  # 86.0: |x| >= 86 saturates to 0 or 1
# q = bits(t*16/ln2 + SHIFTER) - Q_BIAS = n + 2048 >= 0, so j = q & 15 and k + 128 = q >> 4
# stay unsigned in C (no shifts of negative numbers).
Q_BIAS = SHIFTER_BITS - 2048
EXP_BIAS = 128 << 23

# max |sigmoid32(x) - sigmoid(x)| over every float32 x (bench/bench_export_c.py --sigmoid-error)
MAX_ABS_ERROR = 1.9e-7
SIGMOID_NAME = "boardnet_sigmoid_v1"  # the C name; a new algorithm gets a new version


def _f(bits: int) -> np.float32:
    return np.array(bits, dtype=np.uint32).view(f32)[()]


EXP2_TABLE = np.array(EXP2_TABLE_BITS, dtype=np.uint32).view(f32)  # (16,)
LOG2E_16 = _f(LOG2E_16_BITS)
SHIFTER = _f(SHIFTER_BITS)
C1 = _f(C1_BITS)
C2 = _f(C2_BITS)


def _exp_neg32(t: np.ndarray) -> np.ndarray:
    """exp(t) for float32 t in (-86, 0], elementwise: the sigmoid's exponential,
    2^(n/16) * 2^(r/16) with n = round(t * 16/ln2), in [2^-125, 1]."""
    w = t * LOG2E_16  # t / (ln2 / 16), in (-1986, 0]
    kf = w + SHIFTER  # round(w), held in the low mantissa bits
    r = w - (kf - SHIFTER)  # in [-1/2, 1/2], exact
    p = C2 * r + C1
    p = p * r + f32(1.0)  # ~ 2^(r/16)
    q = kf.view(np.uint32) - np.uint32(Q_BIAS)  # n + 2048, in [63, 2048]
    m = EXP2_TABLE[q & np.uint32(15)] * p  # 2^(j/16) * 2^(r/16), in [0.97, 2.05)
    e_bits = m.view(np.uint32) + ((q >> np.uint32(4)) << np.uint32(23)) - np.uint32(EXP_BIAS)
    return e_bits.view(f32)  # exp(t) = m * 2^k


def sigmoid32(z: Any) -> np.ndarray:
    """The board's float32 sigmoid, elementwise; bit for bit what the generated C returns."""
    x = np.array(z, dtype=f32)  # a copy: the bit views below never touch the caller's array
    u = x.view(np.uint32)
    a = u & np.uint32(0x7FFFFFFF)  # bits of |x|
    negative = (u >> np.uint32(31)).astype(bool)
    nan = a > np.uint32(0x7F800000)
    saturated = a >= np.uint32(LIMIT_BITS)  # includes ±inf and NaN
    # Lanes that saturate compute on t = 0 instead, so no lane overflows or warns.
    a = np.where(saturated, np.uint32(0), a)
    t = (a | np.uint32(0x80000000)).view(f32)  # -|x|

    e = _exp_neg32(t)  # exp(-|x|), in [2^-125, 1]
    s = f32(1.0) / (f32(1.0) + e)
    y = np.where(negative, e * s, s)

    y = np.where(saturated, np.where(negative, f32(0.0), f32(1.0)), y)
    y = np.where(nan, x, y)
    return np.asarray(y, dtype=f32)


# max |tanh32(x) - tanh(x)| over every float32 x (bench/bench_export_c.py --activation-error):
# twice the sigmoid's error plus the rounding of (s + s) - 1 (measured 3.72e-7 at x = 0.211)
TANH_MAX_ABS_ERROR = 3.8e-7
# max relative error of _exp_neg32 against exp over every float32 in (-86, 0] (the same;
# measured 4.28e-6): the polynomial's 4.3e-7, and for large |t| the rounding of t * 16/ln2
EXP_MAX_REL_ERROR = 4.3e-6


def tanh32(z: Any) -> np.ndarray:
    """The board's float32 tanh from its sigmoid, elementwise: t = x + x, s = sigmoid32(t),
    tanh = (s + s) - 1, in this order (each step one float32 operation; x + x is exact, or
    ±inf where 2x overflows, which saturates to ±1 as it should)."""
    x = np.asarray(z, dtype=f32)
    with np.errstate(over="ignore"):
        t = x + x
    s = sigmoid32(t)
    return np.asarray((s + s) - f32(1.0), dtype=f32)


def relu32(z: Any) -> np.ndarray:
    """0 where x < 0, else x itself (so NaN and -0 pass through unchanged), elementwise."""
    x = np.asarray(z, dtype=f32)
    return np.asarray(np.where(x < f32(0.0), f32(0.0), x), dtype=f32)


def softmax32(z: Any) -> np.ndarray:
    """The board's float32 softmax over the last axis, in a fixed order: m = the largest z
    (z[0], then each later z[i] > m replaces it), e[i] = exp(z[i] - m) by the sigmoid's
    exponential (0 where z[i] - m <= -86; NaN stays NaN), s = 0 + e[0] + e[1] + ... in
    order, then y[i] = e[i] * (1 / s): one division."""
    Z = np.array(z, dtype=f32, ndmin=1)  # (..., n)
    m = Z[..., 0].copy()
    for i in range(1, Z.shape[-1]):
        m = np.where(Z[..., i] > m, Z[..., i], m)
    with np.errstate(invalid="ignore", over="ignore"):
        d = Z - m[..., None]  # <= 0, or NaN
    u = d.view(np.uint32)
    a = u & np.uint32(0x7FFFFFFF)
    nan = a > np.uint32(0x7F800000)
    small = a >= np.uint32(LIMIT_BITS)  # d <= -86 (or NaN): exp is 0 in float32 terms
    t = (np.where(small, np.uint32(0), a) | np.uint32(0x80000000)).view(f32)  # -|d| = d
    e = np.where(small, f32(0.0), _exp_neg32(t))
    e = np.where(nan, d, e)
    s = np.zeros(m.shape, dtype=f32)
    with np.errstate(invalid="ignore"):
        for i in range(Z.shape[-1]):
            s = s + e[..., i]
        inv = f32(1.0) / s
        y = e * inv[..., None]
    return np.asarray(y, dtype=f32).reshape(np.shape(z))


def forward32(layers: Sequence[Any], X: Any) -> np.ndarray:
    """float32 forward pass over `layers` (W (n_out, n_in), b (n_out,), activation: an
    activations.Activation, which computes its own float32 function of the whole layer).

    For each layer and output i: acc = b[i], then acc = acc + W[i][j] * x[j] for j in order,
    each product and sum rounded to float32 (no FMA, no pairwise summation), then the
    activation. X is (batch, n_in) or (n_in,); the result is (batch, n_out) or (n_out,).
    """
    X = np.asarray(X, dtype=f32)
    single = X.ndim == 1
    a = np.atleast_2d(X)  # (batch, n_in)
    for layer in layers:
        W = np.asarray(layer.W, dtype=f32)  # (n_out, n_in)
        b = np.asarray(layer.b, dtype=f32)  # (n_out,)
        if a.shape[1] != W.shape[1]:
            raise ValueError(f"layer takes {W.shape[1]} inputs, got {a.shape[1]}")
        acc = np.broadcast_to(b, (a.shape[0], W.shape[0])).copy()  # (batch, n_out)
        with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN inputs propagate as in C
            for j in range(W.shape[1]):
                acc = acc + a[:, j : j + 1] * W[:, j]  # (batch, 1) * (n_out,) -> (batch, n_out)
        a = layer.activation.float32(acc)  # activations.Activation: numerics of its own
    return a[0] if single else a


def ulp_distance(a: Any, b: Any) -> np.ndarray:
    """How many float32 values lie between a and b (0 = same bits; -0 and +0 are 0 apart)."""
    def ordered(v: Any) -> np.ndarray:
        i = np.ascontiguousarray(v, dtype=f32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    return np.abs(ordered(a) - ordered(b))


FLOAT32_MAX = float(np.finfo(f32).max)


def float32_of_decimal(text: str) -> np.float32:
    """The float32 nearest to the decimal `text`, ties to even: what a correctly rounded
    parser (C's strtof, boardnet's C firmware) reads. Not float32(float(text)): rounding to
    float64 first moves a decimal just past a float32 halfway point onto it. ValueError for
    text that is no decimal number, OverflowError beyond float32's range."""
    text = text.strip()
    exact = Fraction(text)
    if exact == 0:
        return f32(-0.0) if text.startswith("-") else f32(0.0)
    with np.errstate(over="ignore"):
        near = f32(float(exact))  # within one float32 step of the answer
        if not np.isfinite(near):
            near = f32(FLOAT32_MAX) if exact > 0 else f32(-FLOAT32_MAX)
        candidates = [np.nextafter(near, f32(-np.inf)), near, np.nextafter(near, f32(np.inf))]
    finite = [c for c in candidates if np.isfinite(c)]
    best = min(finite, key=lambda c: (abs(Fraction(float(c)) - exact), int(np.array(c).view(np.uint32)) & 1))
    # beyond the largest float32 by half a step or more, round to nearest gives infinity
    top = Fraction(FLOAT32_MAX) + Fraction(2) ** (127 - 24)
    if abs(exact) >= top:
        raise OverflowError(f"{text} is beyond float32's range (+-{FLOAT32_MAX:.8g})")
    return f32(best)
