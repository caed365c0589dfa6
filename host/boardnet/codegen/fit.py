"""What a model needs on a board: weight, code and RAM bytes, MicroPython heap, and where
float32 loses what float64 training had."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..forms import MP_STRAIGHT_MAX_PARAMS, Form
from ..model import Model
from ..names import comment_text


def fit_report(form: Form) -> dict[str, Any]:
    """Sizes on a board, and warnings where float32 loses what float64 training had.
    For q15, weights are int16 and biases int32 (docs/integer-models.md).

    Code size is an estimate from Cortex-M0+ -Os builds (bench/bench_export_c.py): the
    sigmoid and per-layer code, not the soft-float library a program needs anyway.
    """
    model = form.model
    sizes = model.sizes
    n_params = sum(layer.n_in * layer.n_out + layer.n_out for layer in model.layers)
    hidden = sizes[1:-1]
    activation_floats = max(hidden[0::2], default=0) + max(hidden[1::2], default=0)
    # the sigmoid with its table and the predict frame, then ~40 B per layer loop
    # (measured: 2-2-1 and 8-16-1 both ~380 B without the weights)
    code = 300 + 40 * len(model.layers)
    report: dict[str, Any] = {
        "parameters": n_params,
        "weight_bytes": form.weight_bytes(),
        "code_bytes_estimate": code,
        "ram_bytes": 4 * activation_floats,  # on the stack during predict
        # heap the imported module keeps, measured on the WebAssembly build
        # (docs/export-micropython.md): 50-65 B per parameter in the straight-line shape
        # (boxed constants and bytecode), 30-35 B in the row shapes, plus the code objects
        "micropython_heap_estimate": (64 if n_params <= MP_STRAIGHT_MAX_PARAMS else 36) * n_params + 2048,
        "warnings": precision_warnings(model),
    }
    return report


def precision_warnings(model: Model, n: int = 2000, seed: int = 0) -> list[str]:
    """Where folding normalisation into float32 weights loses precision.

    Two checks: (1) raw inputs whose offset is large against their spread (timestamps, say)
    keep few significant bits in float32 once normalised; (2) predict32 against the float64
    predict on inputs spread over the normalisation's range (mean +- 3 std).
    """
    warnings: list[str] = []
    shift = model.normalization.shift
    scale = model.normalization.scale
    for name, s, c in zip(model.features, shift, scale):
        # a float32 holding values near s resolves steps of ulp(s), i.e. ulp(s)/c std
        step = float(np.spacing(np.float32(abs(s)))) / float(c) if s else 0.0
        if step > 1e-3:
            warnings.append(
                f"feature {comment_text(name, 40)!r}: raw values near {s:.6g} with spread "
                f"{c:.3g}; float32 resolves only {step:.2g} of a spread there. Subtract an "
                "offset before the model (e.g. time since start instead of a timestamp)."
            )
    rng = np.random.default_rng(seed)
    X = shift + scale * rng.uniform(-3, 3, size=(n, model.n_in))  # (n, n_in)
    with np.errstate(all="ignore"):
        y64 = model.predict(X)
        y32 = model.predict32(X).astype(np.float64)
    err = float(np.max(np.abs(y32 - y64)))
    if model.task == "regression":
        spread = float(np.std(y64)) or 1.0
        err /= spread
        what = "of the output's spread"
    else:
        what = "in probability"
    if not np.isfinite(err) or err > 1e-3:
        warnings.append(
            f"float32 predictions differ from float64 by up to {err:.2g} {what} over the "
            "inputs' normal range; the board will not match training accuracy exactly."
        )
    return warnings
