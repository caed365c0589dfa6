"""Integer-only models (`--precision q15`): the arithmetic, defined once, in numpy int64.

The RP2040 (Cortex-M0+) and the ESP32-C3 have no FPU; every float operation is a library
routine. A q15 model runs on integer multiplies, adds and shifts only. This module is the
reference: the generated C header (templates/model_q15.h.j2) and MicroPython module
(templates/model_q15.py.j2) compute exactly `QuantizedModel.predict_int` and
`QuantizedModel.parse_input`, to the bit (docs/integer-models.md); forms/q15.py renders them.

Formats
- Input j (raw units) -> int16 `xq = sat(round(x * 2^e_j) - c_j)`, |xq| <= 32767, round half
  away from zero, saturated: the declared input range is (c_j +- 32767) * 2^-e_j. The
  normalisation and the quantisation step 2^-e_j are folded into layer 1 as in float models.
- Layer l: int16 weights `Wq = round(W_eff * 2^F)`, int32 biases `bq = round(b_eff * 2^F)`,
  one power-of-two scale 2^-F per layer; `acc = bq[i] + sum_j Wq[i][j] * a[j]` exactly.
- Sigmoid layers: `t = acc >> (F - 10)`, or `(-1 - acc) >> (F - 10)` for a negative acc (the
  mirror image of its truncation interval), is |z| with 10 fraction bits, truncated (the table
  is fitted to whole truncation intervals, so no rounding step is needed); a 33-entry table on
  [0, 8] with linear interpolation gives sigmoid(|z|) in Q15 (32768 = 1.0), and
  sigmoid(z < 0) = 32768 - that. Only shifts of non-negative values, so C's
  implementation-defined right shift of negative numbers never arises.
- Tanh layers: tanh z = 2 sigmoid(2z) - 1 through the same table, read one shift earlier
  (|2z| with 10 fraction bits is `acc >> (F - 11)`): `a = sigmoid_q15 - 16384` in [-16384, 16384],
  tanh with scale 2^-14 (Q14), so the next layer's weights take W * 2^-14.
- ReLU layers: `a = acc >> s` for acc > 0 (`acc << -s` when s < 0), else 0, where s is the
  smallest shift that keeps the largest accumulator the layer can reach (interval arithmetic
  over the integer weights and the previous layer's output range) within int16: outputs in
  [0, 32767] with scale 2^-(F - s), exact and never saturating.
- Linear output layer: `y = acc`, with scale 2^-F (OUT_FRAC_BITS).
- Softmax output layer: the board returns the integer logits `acc` (scale 2^-F); the host
  turns them into probabilities (float64 softmax) and the class is their argmax, the same on
  both sides. An integer exponential would add a second approximation for no gain in the
  decision (docs/integer-models.md).

Overflow: for every layer and output, `|bq| + sum_j |Wq| * X_BOUND < 2^30` (X_BOUND = 32768
bounds both the int16 inputs and the Q15 activations) is checked at quantisation; F is
lowered until it holds, and a layer left with fewer than MIN_WEIGHT_BITS bits is refused.
Every partial sum, in any order, is then inside int32 (C) and a MicroPython small int.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .activations import ACTIVATIONS
from .errors import ModelError
from .model import Stack, Weighted

PRECISIONS = ("q15",)
ARITHMETIC = "boardnet-q15-v1"  # a new arithmetic gets a new name (and fingerprint)

X_MAX = 32767  # parsed inputs saturate to +-X_MAX
X_BOUND = 32768  # |input| and activation bound used by the overflow proof (int16 allows -32768)
ONE = 32768  # 1.0 in Q15: sigmoid outputs are in [0, ONE]
ACC_LIMIT = 1 << 30  # every accumulator stays below this: int32 in C, small int in MicroPython
MIN_WEIGHT_BITS = 8  # refuse a layer whose largest weight keeps fewer bits than this
W_MAX = 32767  # int16 weights

Z_FRAC = 10  # the sigmoid reads |z| with 10 fraction bits
TABLE_BITS = Z_FRAC - 2  # interpolation fraction bits (8: one uxtb on a M0+); table step 1/4
TABLE_N = 32  # intervals on [0, 8); |z| >= 8 gives ONE
# sigmoid(i / 4) * 32768 for i = 0..32, nudged (minimax, by bench/bench_q15.py --fit) so that
# with truncated |z| and floor interpolation the worst error over each truncation interval is
# as small as this step allows. Hard-coded so no machine's tanh decides it.
SIGMOID_TABLE = (
    16384, 18425, 20405, 22268, 23971, 25486, 26806, 27928, 28872, 29653, 30290,
    30805, 31219, 31549, 31811, 32018, 32181, 32309, 32409, 32488, 32550, 32598,
    32635, 32664, 32687, 32705, 32719, 32730, 32738, 32745, 32750, 32754, 32757,
)
# max over every int32 acc and every shift of |sigmoid_q15(acc) / 32768 - sigmoid(acc / 2^F)|,
# exhaustive over the 2^15 table inputs t, each against both ends of its truncation interval
# (tests/test_quantize.py recomputes it); 1 - sigmoid(8) = 3.4e-4 above the table.
SIGMOID_MAX_ERROR = 4.80e-4

Z_SAT = 16.0  # default input range: where one feature alone moves a neuron 16 (sigmoid saturated)
MAX_WEIGHT_RATIO = 64.0  # ... but a feature's range spans at most 64x its largest weight's reach
E_MIN, E_MAX = -27, 25  # input exponents the integer parser supports (g = e + 1 in [-26, 26])
OFFSET_LIMIT = 1 << 28  # |c_j| below this keeps the parser's saturation exact

DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


class QuantizationError(ModelError):
    """The model cannot be represented in integers with the overflow guarantees."""


# ---- the integer arithmetic -------------------------------------------------------------------
def sigmoid_q15(acc: Any, shift: int) -> np.ndarray:
    """Q15 sigmoid (0 .. 32768) of acc * 2^-(shift + Z_FRAC), elementwise on int64; the C and
    MicroPython code compute the same integers (the C keeps sigmoid - 16384)."""
    acc = np.asarray(acc, dtype=np.int64)
    T = np.array(SIGMOID_TABLE, dtype=np.int64)
    # |acc| - 1 for negative acc (one's complement): floor(z)'s interval [k, k+1) mirrors to
    # (-k-1, -k], which starts at ~k; so t indexes the mirror image of acc's truncation interval
    a = np.where(acc < 0, ~acc, acc)  # >= 0, < 2^30 by the overflow proof
    t = a >> shift  # |z| with Z_FRAC fraction bits, truncated
    i = np.minimum(t >> TABLE_BITS, TABLE_N - 1)  # clipped only to index safely
    f = t & ((1 << TABLE_BITS) - 1)
    y = T[i] + (((T[i + 1] - T[i]) * f) >> TABLE_BITS)
    y = np.where(t >= (TABLE_N << TABLE_BITS), ONE, y)
    return np.where(acc < 0, ONE - y, y)


def sigmoid_error(table: Any = SIGMOID_TABLE) -> float:
    """max |sigmoid_q15 / 32768 - sigmoid| over every input, exhaustive (see SIGMOID_MAX_ERROR)."""
    T = np.array(table, dtype=np.int64)
    t = np.arange(TABLE_N << TABLE_BITS, dtype=np.int64)
    i, f = t >> TABLE_BITS, t & ((1 << TABLE_BITS) - 1)
    y = (T[i] + (((T[i + 1] - T[i]) * f) >> TABLE_BITS)) / ONE
    lo = 0.5 + 0.5 * np.tanh(0.5 * t / (1 << Z_FRAC))
    hi = 0.5 + 0.5 * np.tanh(0.5 * (t + 1) / (1 << Z_FRAC))
    above = 0.5 - 0.5 * math.tanh(0.5 * TABLE_N * (1 << TABLE_BITS) / (1 << Z_FRAC))
    return float(max(np.abs(y - lo).max(), np.abs(y - hi).max(), above))


HALF = ONE // 2


@dataclass(frozen=True)
class IntegerActivation:
    """One activation in integers: the smallest F its layer needs, how it chooses its shift and
    output scale (`plan`), and what it computes (`apply`, on int64 accumulators)."""

    min_frac: int = -(1 << 30)  # no lower limit

    def plan(self, F: int, acc_lo: np.ndarray, acc_hi: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray]:
        """(shift, out_frac, lo, hi): the shift, the outputs' fraction bits and their range."""
        return 0, F, acc_lo, acc_hi

    def apply(self, acc: np.ndarray, shift: int) -> np.ndarray:
        return acc


class _Sigmoid(IntegerActivation):
    def plan(self, F, acc_lo, acc_hi):
        return F - Z_FRAC, 15, np.zeros_like(acc_lo), np.full_like(acc_hi, ONE)

    def apply(self, acc, shift):
        return sigmoid_q15(acc, shift)


class _Tanh(IntegerActivation):
    def plan(self, F, acc_lo, acc_hi):  # sigmoid of 2z: one bit less of shift
        return F - Z_FRAC - 1, 14, np.full_like(acc_lo, -HALF), np.full_like(acc_hi, HALF)

    def apply(self, acc, shift):
        return sigmoid_q15(acc, shift) - HALF


class _Relu(IntegerActivation):
    def plan(self, F, acc_lo, acc_hi):
        top = int(np.max(acc_hi, initial=0))
        s = top.bit_length() - 15 if top > 0 else 0  # top >> s < 2^15
        return s, F - s, np.zeros_like(acc_lo), np.maximum(self.apply(acc_hi, s), 0)

    def apply(self, acc, shift):
        acc = np.asarray(acc, dtype=np.int64)
        scaled = acc >> shift if shift >= 0 else acc << -shift
        return np.where(acc > 0, scaled, 0)


INTEGER: dict[str, IntegerActivation] = {
    "sigmoid": _Sigmoid(Z_FRAC), "tanh": _Tanh(Z_FRAC + 1), "relu": _Relu(),
    "linear": IntegerActivation(), "softmax": IntegerActivation(),  # the accumulator: values, logits
}


def parse_decimal(text: str, e: int, c: int) -> int:
    """The reference input parser: `sat(round(v * 2^e) - c)` for the plain decimal `text`
    (optional sign, digits, optional point; no exponent, no spaces), rounding half away from
    zero, saturating to +-X_MAX. Exact for any number of digits. ValueError otherwise."""
    if not isinstance(text, str) or DECIMAL.fullmatch(text) is None:
        raise ValueError(f"not a plain decimal number: {text!r}")
    v = Fraction(text)
    m = abs(v) * Fraction(2) ** e
    q = math.floor(m + Fraction(1, 2))
    q = -q if v < 0 else q
    return max(-X_MAX, min(X_MAX, q - c))


# ---- the model ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QLayer(Weighted):
    W: np.ndarray  # (n_out, n_in) int64 holding int16 values
    b: np.ndarray  # (n_out,) int64 holding int32 values
    frac_bits: int  # F: acc = z * 2^F
    activation: str  # sigmoid | tanh | relu | linear | softmax
    bound: int  # max over outputs of |bq| + sum |Wq| * X_BOUND (< ACC_LIMIT)
    limited_by: str  # what chose F: "int16 weights" or "overflow proof"
    shift: int  # the activation's right shift of acc (sigmoid: to |z| with Z_FRAC fraction bits)
    out_frac: int  # the layer's integer outputs are a * 2^-out_frac

    @property
    def weight_bits(self) -> int:
        """Bits of the largest |weight| (its magnitude's length)."""
        return int(np.abs(self.W).max()).bit_length()


@dataclass(frozen=True)
class QuantizedModel(Stack):
    name: str
    precision: str
    layers: tuple[QLayer, ...]
    in_exp: tuple[int, ...]  # e_j: xq = round(x * 2^e_j) - c_j
    in_offset: tuple[int, ...]  # c_j
    task: str
    labels: tuple[str, ...]
    features: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def out_frac_bits(self) -> int:
        """Outputs are yq * 2^-out_frac_bits: 15 for sigmoid outputs, F for a linear one (and
        for a softmax layer's logits)."""
        return self.layers[-1].out_frac

    def input_range(self) -> tuple[np.ndarray, np.ndarray]:
        """The raw values that quantise without saturating: (lo, hi) per feature."""
        e = np.array(self.in_exp, dtype=np.float64)
        c = np.array(self.in_offset, dtype=np.float64)
        return (c - X_MAX) * 2.0**-e, (c + X_MAX) * 2.0**-e

    def fingerprint_bytes(self) -> bytes:
        """Every integer that changes an output, in a fixed layout."""
        parts = [f"{ARITHMETIC}/{self.precision}/{self.sizes}\n".encode()]
        parts.append(np.array(self.in_exp, dtype="<i4").tobytes())
        parts.append(np.array(self.in_offset, dtype="<i4").tobytes())
        for layer in self.layers:
            parts.append(f"{layer.activation}/{layer.frac_bits}\n".encode())
            parts.append(layer.W.astype("<i2").tobytes())
            parts.append(layer.b.astype("<i4").tobytes())
        parts.append(np.array(SIGMOID_TABLE, dtype="<u2").tobytes())
        return b"".join(parts)

    # ---- inputs ----------------------------------------------------------------------------------
    def parse_input(self, j: int, text: str) -> int:
        """Feature j's raw decimal text -> its int16 input (what the board's parser returns)."""
        return parse_decimal(text, self.in_exp[j], self.in_offset[j])

    def parse_row(self, texts: list[str]) -> np.ndarray:
        if len(texts) != self.n_in:
            raise ValueError(f"expected {self.n_in} values, got {len(texts)}")
        return np.array([self.parse_input(j, s) for j, s in enumerate(texts)], dtype=np.int64)

    def quantize_inputs(self, X: Any) -> np.ndarray:
        """Raw float inputs (batch, n_in) -> int16 inputs; the same as parsing each value's exact
        decimal expansion (round half away from zero, saturate)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))  # (batch, n_in)
        out = np.empty(X.shape, dtype=np.int64)
        for j in range(self.n_in):
            m = np.abs(X[:, j]) * 2.0 ** self.in_exp[j]  # exact: a power-of-two scaling
            m = np.minimum(m, 2.0**40)  # saturates anyway; keeps floor() exact
            q = np.floor(m + 0.5)  # m + 0.5 is exact while m < 2^52
            q = np.where(X[:, j] < 0, -q, q) - self.in_offset[j]
            out[:, j] = np.clip(q, -X_MAX, X_MAX)
        return out

    # ---- forward pass -----------------------------------------------------------------------------
    def predict_int(self, Xq: Any) -> np.ndarray:
        """Integer outputs for int16 inputs Xq (batch, n_in) or (n_in,): Q15 probabilities for
        sigmoid outputs, acc (scale 2^-out_frac_bits) for a linear output. int64."""
        Xq = np.asarray(Xq, dtype=np.int64)
        single = Xq.ndim == 1
        a = np.atleast_2d(Xq)  # (batch, n_in)
        if a.shape[1] != self.n_in:
            raise ValueError(f"expected {self.n_in} inputs, got {a.shape[1]}")
        if np.any(np.abs(a) > X_BOUND) or np.any(a > X_MAX):
            raise ValueError("integer inputs are int16 (-32768..32767)")
        for layer in self.layers:
            acc = a @ layer.W.T + layer.b  # (batch, n_out), exact in int64
            a = INTEGER[layer.activation].apply(acc, layer.shift)
        return a[0] if single else a

    def dequantize_outputs(self, Yq: Any) -> np.ndarray:
        """Integer outputs -> float64: probabilities, values, or for a softmax output the
        host's softmax of the logits."""
        y = np.asarray(Yq, dtype=np.float64) * 2.0 ** -self.out_frac_bits
        return ACTIVATIONS["softmax"].float64(y) if self.layers[-1].activation == "softmax" else y

    def predict(self, X: Any) -> np.ndarray:
        """Raw float inputs -> float outputs through the integer model (host convenience)."""
        X = np.asarray(X, dtype=np.float64)
        y = self.dequantize_outputs(self.predict_int(self.quantize_inputs(X)))
        return y[0] if X.ndim == 1 else y


# ---- quantisation ---------------------------------------------------------------------------------
def default_input_range(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """(centre, half-width) per feature, from the model alone (no training data is stored).

    Centre: the normalisation's shift. Half-width: how far feature j must move before it
    alone has pushed every neuron of layer 1 by Z_SAT (deep in the sigmoid's saturation),
    capped at MAX_WEIGHT_RATIO times the reach of its largest weight so that a near-zero
    weight does not stretch the range (and coarsen the steps) without bound.
    """
    W = model.layers[0].W / model.normalization.scale  # (n_out, n_in), per raw unit
    absW = np.abs(W)
    big = absW.max(axis=0)  # (n_in,)
    small = np.maximum(absW.min(axis=0), big / MAX_WEIGHT_RATIO)
    with np.errstate(divide="ignore"):
        half = np.where(big > 0, Z_SAT / np.where(small > 0, small, 1.0),
                        8.0 * model.normalization.scale)
    return np.asarray(model.normalization.shift, dtype=np.float64), half


def floor_log2(x: float) -> int:
    """floor(log2(x)) for x > 0, exactly (frexp reads the exponent; no libm rounding)."""
    return math.frexp(x)[1] - 1


def _fsum_dot(w: np.ndarray, v: np.ndarray, start: float) -> float:
    return math.fsum([start] + [float(x) for x in w * v])


def _choose_frac_bits(V: np.ndarray, b: np.ndarray, what: str) -> tuple[int, str]:
    """The largest F for which int16 weights and the overflow proof both hold."""
    top = float(np.abs(V).max())
    if top == 0 and not np.any(b):
        return 15 + Z_FRAC, "zero layer"
    F = floor_log2(W_MAX / top) if top else 40
    limited = "int16 weights"
    F = min(F, 40)
    while True:
        Wq = np.round(V * 2.0**F)
        if np.abs(Wq).max() > W_MAX:
            F -= 1
            continue
        bq = np.round(b * 2.0**F)
        bound = np.abs(bq) + np.abs(Wq).sum(axis=1) * X_BOUND
        if bound.max() < ACC_LIMIT:
            return F, limited
        F -= 1
        limited = "overflow proof"
        if F < -60:
            raise QuantizationError(f"{what}: biases too large for 30-bit accumulators")


def _round_half_away(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def quantize(
    model: Any, precision: str = "q15", *, input_range: tuple[Any, Any] | None = None
) -> QuantizedModel:
    """The integer version of `model`. `input_range` = (lo, hi) raw values per feature that
    must not saturate; the default comes from the model (default_input_range)."""
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; integer precisions: {PRECISIONS}")
    n_in = model.n_in
    if input_range is None:
        center, half = default_input_range(model)
    else:
        lo = np.broadcast_to(np.asarray(input_range[0], dtype=np.float64), (n_in,))
        hi = np.broadcast_to(np.asarray(input_range[1], dtype=np.float64), (n_in,))
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
            raise ModelError("input range: need finite lo < hi for every feature")
        center, half = (lo + hi) / 2, (hi - lo) / 2

    # inputs: the largest e_j with centre +- half inside (c_j +- X_MAX) * 2^-e_j (X_MAX - 1
    # leaves room for rounding c_j)
    in_exp, in_offset = [], []
    for j in range(n_in):
        e = floor_log2((X_MAX - 1) / float(half[j])) if half[j] > 0 else E_MAX
        e = min(e, E_MAX)
        while e >= E_MIN and abs(float(center[j])) * 2.0**e >= OFFSET_LIMIT:
            e -= 1
        if e < E_MIN:
            raise QuantizationError(
                f"feature {model.features[j]!r}: range {center[j] - half[j]:.6g}.."
                f"{center[j] + half[j]:.6g} is too wide for 16-bit inputs with a power-of-two step"
            )
        in_exp.append(e)
        in_offset.append(int(_round_half_away(np.array(center[j] * 2.0**e))))

    # layer 1 on integer inputs: x_j = (xq_j + c_j) 2^-e_j, normalisation folded as folded32 does
    first = model.layers[0]
    norm = model.normalization
    Wn = first.W / norm.scale  # (n_out, n_in) per raw unit
    scale_in = np.array([2.0**-e for e in in_exp])  # raw units per input step
    raw_off = np.array([c * 2.0**-e for e, c in zip(in_exp, in_offset)])  # exact
    V1 = Wn * scale_in  # exact (power-of-two scaling)
    b1 = np.array([
        _fsum_dot(Wn[i], raw_off - norm.shift, float(first.b[i])) for i in range(first.n_out)
    ])
    layers = []
    lo, hi = np.full(n_in, -X_BOUND, dtype=np.int64), np.full(n_in, X_MAX, dtype=np.int64)  # any int16
    for k, layer_k in enumerate(model.layers):
        act = layer_k.activation
        # layer 1 takes the integer inputs; each later one its predecessor's outputs, a * 2^-out_frac
        V, b = (V1, b1) if k == 0 else (layer_k.W * 2.0 ** -layers[-1].out_frac, layer_k.b)
        what = f"layer {k + 1} ({V.shape[1]} -> {V.shape[0]})"
        F, limited = _choose_frac_bits(V, b, what)
        Wq = _round_half_away(V * 2.0**F).astype(np.int64)
        bq = _round_half_away(b * 2.0**F).astype(np.int64)
        bound = int((np.abs(bq) + np.abs(Wq).sum(axis=1) * X_BOUND).max())
        integer = INTEGER[act]
        # the accumulators' range over the inputs' range, exactly (interval arithmetic in int64)
        acc_lo = bq + np.minimum(Wq * lo, Wq * hi).sum(axis=1)
        acc_hi = bq + np.maximum(Wq * lo, Wq * hi).sum(axis=1)
        shift, out_frac, lo, hi = integer.plan(F, acc_lo, acc_hi)
        layer = QLayer(Wq, bq, F, act, bound, limited, shift, out_frac)
        if np.abs(Wq).max() and layer.weight_bits < MIN_WEIGHT_BITS:
            raise QuantizationError(
                f"{what}: to keep every int32 accumulator provably below 2^30 its weights "
                f"would keep only {layer.weight_bits} bits (largest |Wq| = {int(np.abs(Wq).max())});"
                " too many inputs or too large biases for q15, use f32"
            )
        if F < integer.min_frac:
            raise QuantizationError(
                f"{what}: weights or biases too large for q15 (scale 2^-{F} < 2^-{integer.min_frac})"
            )
        assert bound < ACC_LIMIT
        layers.append(layer)
    return QuantizedModel(
        name=model.name,
        precision=precision,
        layers=tuple(layers),
        in_exp=tuple(in_exp),
        in_offset=tuple(in_offset),
        task=model.task,
        labels=tuple(model.labels),
        features=tuple(model.features),
        outputs=tuple(model.outputs),
    )


# ---- accuracy report -------------------------------------------------------------------------------
MARGIN = 0.01  # more error than this (probability, or fraction of the output's spread) warns


def accuracy_report(model: Any, q: QuantizedModel | None = None, X: Any = None,
                    n: int = 4000, seed: int = 0) -> dict[str, Any]:
    """How far the integer model is from the float64 model, on X (raw inputs) or on random
    inputs over the declared input range; warnings name the layer whose scale costs most."""
    q = q or quantize(model)
    sample = "given rows" if X is not None else "random over the input range"
    if X is None:
        lo, hi = q.input_range()
        rng = np.random.default_rng(seed)
        X = lo + (hi - lo) * rng.uniform(0, 1, size=(n, model.n_in))  # (n, n_in)
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    y64 = model.predict(X)
    yq = q.predict(X)
    err = np.abs(yq - y64)
    spread = 1.0
    if model.task == "regression":
        spread = float(np.std(y64)) or 1.0
    report: dict[str, Any] = {
        "inputs": int(X.shape[0]),
        "sample": sample,
        "max_error": float(err.max()),
        "mean_error": float(err.mean()),
        "error_unit": "probability" if model.task != "regression" else "output units",
        "sigmoid_max_error": SIGMOID_MAX_ERROR,
        "layers": [
            {"layer": k + 1, "frac_bits": layer.frac_bits, "weight_bits": layer.weight_bits,
             "limited_by": layer.limited_by, "accumulator_bound": layer.bound}
            for k, layer in enumerate(q.layers)
        ],
        "input_range": [[float(a), float(b)] for a, b in zip(*q.input_range())],
        "warnings": [],
    }
    if model.task != "regression":
        c64, cq = model.classify(y64), model.classify(yq)
        report["class_agreement"] = float(np.mean([a == b for a, b in zip(c64, cq)]))
    if err.max() / spread > MARGIN:
        k, share = _worst_layer(model, q, X, y64)
        layer = q.layers[k]
        report["warnings"].append(
            f"the integer model differs from the float model by up to {err.max():.3g} "
            f"{report['error_unit']}; layer {k + 1} ({layer.n_in} -> {layer.n_out}) costs most "
            f"({share:.3g} alone): its weights keep {layer.weight_bits} bits at scale "
            f"2^-{layer.frac_bits}, limited by {layer.limited_by}"
        )
    return report


def _worst_layer(model: Any, q: QuantizedModel, X: np.ndarray, y64: np.ndarray) -> tuple[int, float]:
    """The layer whose weight rounding alone moves the float64 outputs most."""
    errors = []
    for k in range(len(q.layers)):
        a = np.atleast_2d(q.quantize_inputs(X)).astype(np.float64)
        for m, layer in enumerate(q.layers):
            scale = 2.0 ** -layer.frac_bits
            if m == k:
                W, b = layer.W * scale, layer.b * scale
            else:  # the exact effective weights of the float model
                W, b = _effective(model, q, m)
            z = a @ W.T + b
            a = ACTIVATIONS[layer.activation].float64(z)
            if m < len(q.layers) - 1:
                a = a * 2.0**layer.out_frac  # in the next layer's integer input units
        errors.append(float(np.abs(a - y64).max()))
    k = int(np.argmax(errors))
    return k, errors[k]


def _effective(model: Any, q: QuantizedModel, m: int) -> tuple[np.ndarray, np.ndarray]:
    if m == 0:
        first, norm = model.layers[0], model.normalization
        Wn = first.W / norm.scale
        scale_in = np.array([2.0**-e for e in q.in_exp])
        raw_off = np.array([c * 2.0**-e for e, c in zip(q.in_exp, q.in_offset)])
        return Wn * scale_in, first.b + Wn @ (raw_off - norm.shift)
    layer = model.layers[m]
    return layer.W * 2.0 ** -q.layers[m - 1].out_frac, layer.b


def format_report(report: dict[str, Any]) -> list[str]:
    """accuracy_report as lines for `boardnet export --precision q15`."""
    lines = [
        f"q15 vs float model on {report['inputs']} inputs "
        f"({report.get('sample', 'random over the input range')}): max error "
        f"{report['max_error']:.3g} {report['error_unit']}, mean {report['mean_error']:.2g}"
        + (f", same class {report['class_agreement']:.2%}" if "class_agreement" in report else "")
        + f" (integer sigmoid: |error| <= {report['sigmoid_max_error']:.2g})"
    ]
    lo_hi = ", ".join(f"[{lo:.6g}, {hi:.6g}]" for lo, hi in report["input_range"])
    lines.append(f"inputs saturate outside {lo_hi}")
    for layer in report["layers"]:
        lines.append(
            f"layer {layer['layer']}: weights * 2^-{layer['frac_bits']}, {layer['weight_bits']} bits "
            f"(limited by {layer['limited_by']}), |acc| <= {layer['accumulator_bound']} < 2^30"
        )
    return lines
