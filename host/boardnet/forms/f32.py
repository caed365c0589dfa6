"""The float32 form: normalisation folded into layer 1, float32 weights, boardnet's own
float32 sigmoid (numerics.py), float32 bits as 8 hex digits on the wire.

A board that computes in float32 (the C firmware; MicroPython on rp2 and esp32) returns the
host's bits: tolerance 0 ulp. A MicroPython port whose floats are doubles (the WebAssembly
virtual board) stays within the forward-error bound of `double_bound`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from .. import numerics
from ..activations import c_helpers
from ..names import bytes_lines, c_float
from ..templating import helper
from .base import MP_ROWS_MAX_INPUTS, MP_STRAIGHT_MAX_PARAMS, Form, Tolerance, check_shape

# Layers with up to this many weights are written as straight-line C, larger ones as loops.
# On a Cortex-M0+ at -Os the soft-float calls dominate: fully unrolling 8-16-1 saved 1.3% of
# the instructions for 2.3 KB more flash, and 2-2-1 compiled to the same size and count
# either way (bench/bench_export_c.py), so loops everywhere by default.
UNROLL_MAX_WEIGHTS = 0


def f32_to_hex(v: float) -> str:
    """8 hex digits: the uint32 of the float32 bits, most significant first."""
    return f"{int(np.array(v, dtype=np.float32).view(np.uint32)):08x}"


def hex_to_f32(h: str) -> np.float32:
    if len(h) != 8:
        raise ValueError(f"{h!r} is not 8 hex digits")
    return np.array(int(h, 16), dtype=np.uint32).view(np.float32)[()]


class F32(Form):
    precision = "f32"
    c_template = "model.h.j2"
    micropython_template = "model.py.j2"
    native_template = "native_f32.c.j2"
    native_helpers = ("boardnet_native_float.h",)  # helper files the native module includes
    wire_values = "8 hex digits"

    @cached_property
    def fingerprint(self) -> str:
        return self.model.fingerprint()

    @cached_property
    def layers(self) -> tuple:
        """The layers a board runs (Model.folded32)."""
        return self.model.folded32()

    # ---- host reference -------------------------------------------------------------------
    def inputs(self, X: Any) -> np.ndarray:
        return np.atleast_2d(np.asarray(X, dtype=np.float32))  # (n, n_in)

    def parse(self, texts: list[list[str]]) -> np.ndarray:
        return np.array([[numerics.float32_of_decimal(t) for t in row] for row in texts],
                        dtype=np.float32).reshape(len(texts), self.model.n_in)

    def reference(self, Xb: np.ndarray) -> np.ndarray:
        return numerics.forward32(self.layers, Xb)

    def outputs(self, Yb: np.ndarray) -> np.ndarray:
        return np.asarray(Yb, dtype=np.float64)

    # ---- the wire -----------------------------------------------------------------------------
    dtype = np.float32

    def encode(self, xb: np.ndarray) -> str:
        bits = np.ascontiguousarray(xb, dtype=np.float32).view(np.uint32)
        return " ".join(f"{int(b):08x}" for b in bits)

    def decode(self, words: tuple[str, ...]) -> np.ndarray:
        if any(len(w) != 8 for w in words):
            raise ValueError("outputs are 8 hex digits of float32 bits")
        return np.array([int(w, 16) for w in words], dtype=np.uint32).view(np.float32)

    def tolerance(self, X, host, board, float32_exact: bool = True) -> Tolerance:
        host = np.asarray(host, dtype=np.float32)
        board = np.asarray(board, dtype=np.float32)
        ulp = numerics.ulp_distance(board, host)
        if float32_exact:
            bound = np.zeros(host.shape)
            bad = ulp > 0
            description = "0 ulp: the board computes in float32 with boardnet's sigmoid, like the host"
        else:
            bound = self.double_bound(X)  # (n, n_out)
            err = np.abs(board.astype(np.float64) - host.astype(np.float64))
            bad = ~(err <= bound)
            description = (
                f"|board - host| <= forward-error bound (largest {float(np.max(bound)):.2g}): "
                "this MicroPython computes in float64 (docs/export-micropython.md)"
            )
        return Tolerance(bad | (np.isnan(board) != np.isnan(host)), ulp, bound, description)

    def double_bound(self, X: Any) -> np.ndarray:
        """|module on a double-precision port - reference| <= this, per input and output.

        Both evaluate the same operations on the same float32 weights; the reference rounds
        each to float32 (unit roundoff u = 2^-24), a double port to float64. Forward error
        analysis per layer, with d the bound on the inputs' difference and a the activations:
            |dz| <= sum_j |W_ij| d_j + (n_in + 1) u' (|b_i| + sum_j |W_ij a_j|),  u' = 1.01 u
            sigmoid: |dy| <= |dz| / 4 + 2 * MAX_ABS_ERROR
        (each sigmoid is within MAX_ABS_ERROR of the true one, which is 1/4-Lipschitz); linear
        outputs: |dy| <= |dz|; tanh, relu and softmax: activations.py (`double_bound`). Inputs
        are taken as float32 on both sides.
        """
        X = np.atleast_2d(np.asarray(X, dtype=np.float32))  # (batch, n_in)
        u = 1.01 * 2.0**-24
        a = X.astype(np.float64)
        d = np.zeros_like(a)
        for layer in self.layers:
            W = layer.W.astype(np.float64)  # (n_out, n_in)
            b = layer.b.astype(np.float64)
            absW = np.abs(W)
            with np.errstate(all="ignore"):
                dz = d @ absW.T + (layer.n_in + 1) * u * (np.abs(b) + np.abs(a) @ absW.T)
                z = a @ W.T + b  # (batch, n_out)
            a, d = layer.activation.double_bound(z, dz)
        return d

    # ---- generated code -----------------------------------------------------------------------
    def weight_bytes(self) -> int:
        return 4 * sum(layer.W.size + layer.b.size for layer in self.model.layers)

    def c_context(self, unroll_max_weights: int = UNROLL_MAX_WEIGHTS) -> dict[str, Any]:
        layers32 = self.layers
        hidden = [layer.n_out for layer in layers32[:-1]]
        # hidden layer k writes buffer k % 2 and reads the other: two buffers, sized for the
        # largest layer each holds
        buffers = [max(hidden[0::2], default=0), max(hidden[1::2], default=0)]
        layers = []
        for k, layer in enumerate(layers32):
            last = k == len(layers32) - 1
            layers.append({
                "k": k + 1,
                "n_in": layer.n_in,
                "n_out": layer.n_out,
                "activation": layer.activation,
                "function": layer.activation.c_function,  # per output, or None: the identity
                "layer_function": layer.activation.c_layer_function,  # in place, after the outputs
                "W": [[c_float(v) for v in row] for row in layer.W],
                "b": [c_float(v) for v in layer.b],
                "unrolled": layer.n_in * layer.n_out <= unroll_max_weights,
                "src": "x" if k == 0 else f"h{(k - 1) % 2}",
                "dst": "y" if last else f"h{k % 2}",
            })
        return {
            **self._c_common("y"),
            "layers": layers,
            "buffers": [size for size in buffers if size],
            "any_loop": any(not layer["unrolled"] for layer in layers),
            "helper_c": "\n".join(helper(name) for name in c_helpers(layer.activation for layer in layers32)),
        }

    def micropython_params(self) -> np.ndarray:
        """The float32 values the module carries: per layer W row-major, then b."""
        parts = []
        for layer in self.layers:
            parts += [layer.W.ravel(), layer.b]
        return np.concatenate(parts).astype("<f4")  # (n_params,)

    @staticmethod
    def micropython_constants() -> np.ndarray:
        """16/ln2, -16/ln2, C1, C2, then the 16-entry table of numerics.sigmoid32."""
        n = numerics
        head = np.array([n.LOG2E_16, -n.LOG2E_16, n.C1, n.C2], dtype=np.float32)
        return np.concatenate([head, n.EXP2_TABLE]).astype("<f4")  # (20,)

    def micropython_context(self, shape: str = "auto") -> dict[str, Any]:
        check_shape(shape)
        model = self.model
        params = self.micropython_params()
        if shape == "auto":
            widest = max(layer.n_in for layer in model.layers)
            shape = ("straight" if params.size <= MP_STRAIGHT_MAX_PARAMS
                     else "rows" if widest <= MP_ROWS_MAX_INPUTS else "loop")
        input_vars = [f"x{j}" for j in range(model.n_in)]
        layers = []
        k = 0
        src = input_vars
        for li, layer in enumerate(self.layers):
            last = li == len(self.layers) - 1
            dst = [f"y{i}" if last else f"h{li + 1}_{i}" for i in range(layer.n_out)]
            w0, b0 = k, k + layer.n_in * layer.n_out
            neurons = [
                {
                    "out": dst[i],
                    "bias": b0 + i,
                    "terms": [(w0 + i * layer.n_in + j, src[j]) for j in range(layer.n_in)],
                }
                for i in range(layer.n_out)
            ]
            layers.append({
                "n_in": layer.n_in,
                "n_out": layer.n_out,
                "activation": layer.activation,
                "exp": layer.activation.uses_exp,  # its code needs the exponential's constants
                "neurons": neurons,
                "outs": dst,
            })
            k = b0 + layer.n_out
            src = dst
        return {
            **self._micropython_common(),
            "n_params": int(params.size),
            "param_bytes": bytes_lines(params.tobytes()),
            "constant_bytes": bytes_lines(self.micropython_constants().tobytes()),
            "shape": shape,
            "layers": layers,
            "input_vars": input_vars,
            "output_vars": src,
            "softmax": any(layer.activation == "softmax" for layer in self.layers),
            # the loop shape's branches: the activations with per-output code, in model order
            "loop_activations": list(dict.fromkeys(
                layer.activation for layer in self.layers if layer.activation.elementwise
                and layer.activation != "linear")),
        }
