"""The q15 form: int16 weights and inputs, int32 accumulators, the integer sigmoid table
(quantize.py); decimal integers on the wire; host and board outputs identical integers."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from ..quantize import (
    ACC_LIMIT,
    ONE,
    SIGMOID_MAX_ERROR,
    SIGMOID_TABLE,
    TABLE_BITS,
    X_BOUND,
    Z_FRAC,
    QuantizedModel,
    accuracy_report,
    quantize,
)
from ..templating import helper
from .base import MP_STRAIGHT_MAX_PARAMS, Form, Tolerance, check_shape

C_UNROLL_MAX_WEIGHTS = 16  # layers with up to this many weights are straight-line C (bench_q15.py)
HALF = ONE // 2


class Q15(Form):
    precision = "q15"
    c_template = "model_q15.h.j2"
    micropython_template = "model_q15.py.j2"
    native_template = "native_q15.c.j2"
    native_helpers = ()  # helper files the native module includes
    wire_values = "decimal integers"

    def __init__(self, model, *, input_range: tuple[Any, Any] | None = None) -> None:
        super().__init__(model)
        self.input_range = input_range

    @cached_property
    def q(self) -> QuantizedModel:
        """The integer model, quantised once per form."""
        return quantize(self.model, "q15", input_range=self.input_range)

    @cached_property
    def fingerprint(self) -> str:
        return self.model.fingerprint_of(self.precision, self.q.fingerprint_bytes())

    # ---- host reference -------------------------------------------------------------------
    def inputs(self, X: Any) -> np.ndarray:
        return self.q.quantize_inputs(X)  # (n, n_in) int16 values in int64

    def parse(self, texts: list[list[str]]) -> np.ndarray:
        return np.array([self.q.parse_row(row) for row in texts], dtype=np.int64).reshape(
            len(texts), self.model.n_in)

    def reference(self, Xb: np.ndarray) -> np.ndarray:
        return self.q.predict_int(Xb)

    def outputs(self, Yb: np.ndarray) -> np.ndarray:
        return self.q.dequantize_outputs(Yb)

    def accuracy_report(self, X: Any = None) -> dict[str, Any]:
        return accuracy_report(self.model, self.q, X)

    # ---- the wire -----------------------------------------------------------------------------
    dtype = np.int64

    def encode(self, xb: np.ndarray) -> str:
        return " ".join(str(int(v)) for v in xb)

    def decode(self, words: tuple[str, ...]) -> np.ndarray:
        return np.array([int(w) for w in words], dtype=np.int64)

    def tolerance(self, X, host, board, float32_exact: bool = True) -> Tolerance:
        distance = np.abs(np.asarray(host, dtype=np.int64) - np.asarray(board, dtype=np.int64))
        return Tolerance(distance > 0, distance, np.zeros(distance.shape),
                         "exact: the q15 integer outputs must be identical")

    # ---- generated code -----------------------------------------------------------------------
    def weight_bytes(self) -> int:
        """int16 weights, int32 biases."""
        return sum(2 * layer.W.size + 4 * layer.b.size for layer in self.model.layers)

    def _integer_common(self) -> dict[str, Any]:
        q = self.q
        return {
            "out_frac_bits": q.out_frac_bits,
            "last_sigmoid": q.layers[-1].activation == "sigmoid",
            "logits": q.layers[-1].activation == "softmax",
            "sigmoid_table": list(SIGMOID_TABLE),
            "z_frac": Z_FRAC,
            "table_bits": TABLE_BITS,
            "sigmoid_max_error": f"{SIGMOID_MAX_ERROR:.2e}",
            "in_exp": list(q.in_exp),
            "in_g": [e + 1 for e in q.in_exp],
            "in_c": list(q.in_offset),
        }

    def _centred(self, k: int) -> bool:
        """Layer k's inputs are a sigmoid layer's outputs, which the C keeps centred (a - 16384)."""
        return k > 0 and self.q.layers[k - 1].activation == "sigmoid"

    def c_biases(self, k: int) -> np.ndarray:
        """Layer k's biases as the C header holds them: a layer after a sigmoid layer takes
        centred activations a - 16384, so b + 16384 * sum_j W[i][j] (exact: the same acc). Tanh
        outputs are centred already, relu outputs are taken as they are."""
        layer = self.q.layers[k]
        return layer.b + HALF * layer.W.sum(axis=1) if self._centred(k) else layer.b

    def c_bound(self, k: int) -> int:
        """max |partial sum| in the C code: |b'| + sum |W| * bound on its inputs; < 2^30 because
        |b + 16384 sum W| + 16384 sum |W| <= |b| + 32768 sum |W| (the proved bound)."""
        layer = self.q.layers[k]
        prev = self.q.layers[k - 1].activation if k else None
        x = HALF if prev in ("sigmoid", "tanh") else X_BOUND
        bound = int((np.abs(self.c_biases(k)) + np.abs(layer.W).sum(axis=1) * x).max())
        assert bound <= layer.bound < ACC_LIMIT
        return bound

    @staticmethod
    def c_activation(layer) -> str:
        """The C expression of a layer's activation of `acc` (what the hidden buffers hold:
        sigmoid - 16384 and tanh in Q14 from the table helper, relu shifted, else acc)."""
        if layer.activation in ("sigmoid", "tanh"):
            return f"boardnet_sigmoid_q15_v1(acc, {layer.shift}u)"
        if layer.activation == "relu":
            shifted = f"acc >> {layer.shift}" if layer.shift >= 0 else f"acc << {-layer.shift}"
            return f"(acc > 0 ? {shifted} : 0)"
        return "acc"

    def c_context(self, unroll_max_weights: int = C_UNROLL_MAX_WEIGHTS) -> dict[str, Any]:
        q = self.q
        hidden = [layer.n_out for layer in q.layers[:-1]]
        buffers = [max(hidden[0::2], default=0), max(hidden[1::2], default=0)]
        layers = []
        unrolled = [layer.n_in * layer.n_out <= unroll_max_weights for layer in q.layers]
        for k, layer in enumerate(q.layers):
            last = k == len(q.layers) - 1
            next_unrolled = not last and unrolled[k + 1]
            layers.append({
                "k": k + 1,
                "n_in": layer.n_in,
                "n_out": layer.n_out,
                "activation": layer.activation,
                "frac_bits": layer.frac_bits,
                "shift": layer.shift,
                "W": [[str(int(v)) for v in row] for row in layer.W],
                "b": [str(int(v)) for v in self.c_biases(k)],
                "bound": self.c_bound(k),
                "unrolled": unrolled[k],
                "src": "xq" if k == 0 else f"h{(k - 1) % 2}",
                "dst": "yq" if last else f"h{k % 2}",
                # hidden activations are kept centred (sigmoid - 1/2), so they fit int16; the
                # output layer adds the 1/2 back
                "store": ("%s" if layer.activation != "sigmoid" else "16384 + %s") if last
                else "(int16_t)%s" if not next_unrolled else "%s",
                "value": self.c_activation(layer),
            })
        return {
            **self._c_common("yq"),
            **self._integer_common(),
            "layers": layers,
            # int32 when every reader is unrolled (no sign extension), else int16 for the dot helper
            "buffers": [size for size in buffers if size],
            "buffer_types": ["int16_t" if any(not unrolled[k + 1] for k in range(len(hidden)) if k % 2 == n)
                             else "int32_t" for n in range(2)],
            "any_loop": any(not layer["unrolled"] for layer in layers),
            "helper_c": helper("boardnet_q15.h"),
        }

    def micropython_context(self, shape: str = "auto") -> dict[str, Any]:
        check_shape(shape)
        q = self.q
        model = self.model
        n_params = sum(layer.W.size + layer.b.size for layer in q.layers)
        if shape == "auto":
            shape = "straight" if n_params <= MP_STRAIGHT_MAX_PARAMS else "loop"
        elif shape == "rows":
            shape = "loop"  # the integer module has two shapes; its loop already walks rows
        input_vars = [f"x{j}" for j in range(model.n_in)]
        src = input_vars
        layers = []
        for li, layer in enumerate(q.layers):
            last = li == len(q.layers) - 1
            dst = [f"y{i}" if last else f"h{li + 1}_{i}" for i in range(layer.n_out)]
            neurons = [
                {"out": dst[i], "bias": int(layer.b[i]),
                 "terms": [(int(layer.W[i, j]), src[j]) for j in range(layer.n_in)]}
                for i in range(layer.n_out)
            ]
            layers.append({
                "n_in": layer.n_in, "n_out": layer.n_out, "activation": layer.activation,
                "shift": layer.shift, "neurons": neurons,
                # relu: the shift as MicroPython writes it (a negative shift is a left shift)
                "relu": (f">> {layer.shift}" if layer.shift >= 0 else f"<< {-layer.shift}")
                if layer.activation == "relu" else None,
                "W": [[int(v) for v in row] for row in layer.W], "b": [int(v) for v in layer.b],
            })
            src = dst
        return {
            **self._micropython_common(),
            **self._integer_common(),
            "shape": shape,
            "layers": layers,
            "input_vars": input_vars,
            "output_vars": src,
        }
