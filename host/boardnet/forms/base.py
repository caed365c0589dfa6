"""What every form of a model is: the interface `check`, `deploy`, `export` and the link ask."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import __version__
from ..names import c_prefix, c_string, comment_text, micropython_module, py_string

# Code shapes of the MicroPython module's predict() (docs/export-micropython.md,
# bench/bench_micropython.py): "straight" unrolls everything onto local variables, fastest at
# every size measured but 50-65 B of heap per parameter once imported (and more while the
# board compiles it); "rows" loops over neurons and unpacks each row of W into locals (within
# ~10% of straight, 30-35 B per parameter); "loop" is plain loops (half the speed, any width).
# Auto: straight up to MP_STRAIGHT_MAX_PARAMS parameters, rows while no layer has more than
# MP_ROWS_MAX_INPUTS inputs (one local per input), else loop.
MP_STRAIGHT_MAX_PARAMS = 400
MP_ROWS_MAX_INPUTS = 256
MP_SHAPES = ("auto", "straight", "rows", "loop")


@dataclass(frozen=True)
class Tolerance:
    """How board outputs compare with the host's: per output, `bad` (outside tolerance),
    `distance` (ulps, or integer steps) and `bound` (the absolute error allowed)."""

    bad: np.ndarray  # (n, n_out) bool
    distance: np.ndarray  # (n, n_out) int
    bound: np.ndarray  # (n, n_out) float
    description: str


class Form(ABC):
    """One form of a model on a board. Board values are what travels on the wire and what
    the board computes with: float32 for f32, int16 inputs and int32 outputs for q15."""

    precision: str
    c_template: str
    micropython_template: str
    native_template: str  # the MicroPython native module's C, around the C header
    native_helpers: tuple[str, ...]  # helper files under templates/ that it includes
    fingerprint: str  # 16 hex digits over everything that changes an output of this form
    wire_values: str  # what one value looks like on the wire, for messages

    def __init__(self, model) -> None:
        self.model = model

    # ---- host reference -------------------------------------------------------------------
    @abstractmethod
    def inputs(self, X: Any) -> np.ndarray:
        """Raw inputs (n, n_in) -> the board inputs they travel as."""

    @abstractmethod
    def parse(self, texts: list[list[str]]) -> np.ndarray:
        """Rows of decimal texts (typed by a person) -> board inputs, read as the board's own
        parser reads a human request line; ValueError or OverflowError for a bad value."""

    @abstractmethod
    def reference(self, Xb: np.ndarray) -> np.ndarray:
        """Board inputs (n, n_in) -> the outputs the board must return (n, n_out)."""

    @abstractmethod
    def outputs(self, Yb: np.ndarray) -> np.ndarray:
        """Board outputs -> float64 outputs (probabilities, values) for people."""

    def predict(self, X: Any) -> np.ndarray:
        """Raw inputs -> float64 outputs, exactly as a board of this form computes them."""
        X = np.asarray(X, dtype=np.float64)
        Y = self.outputs(self.reference(self.inputs(np.atleast_2d(X))))
        return Y[0] if X.ndim == 1 else Y

    # ---- the wire ---------------------------------------------------------------------------
    @abstractmethod
    def encode(self, xb: np.ndarray) -> str:
        """One row of board inputs as the words of a machine request."""

    @abstractmethod
    def decode(self, words: tuple[str, ...]) -> np.ndarray:
        """The output words of a machine reply -> board outputs (n_out,); ValueError if bad."""

    @property
    @abstractmethod
    def dtype(self) -> type:
        """numpy dtype of board outputs."""

    @abstractmethod
    def tolerance(self, X: np.ndarray, host: np.ndarray, board: np.ndarray,
                  float32_exact: bool = True) -> Tolerance:
        """Compare board outputs with the host's for raw inputs X. `float32_exact` is False for
        a board whose MicroPython computes in float64 (the WebAssembly virtual board)."""

    # ---- generated code ---------------------------------------------------------------------
    @abstractmethod
    def c_context(self) -> dict[str, Any]:
        """Everything `c_template` needs, already escaped."""

    @abstractmethod
    def micropython_context(self, shape: str = "auto") -> dict[str, Any]:
        """Everything `micropython_template` needs, already escaped."""

    def native_context(self) -> dict[str, Any]:
        """Everything `native_template` needs: the C header's names (the module's C includes
        the header and reads its constants) and the module's own."""
        return {
            **self._c_common("y"),
            "precision": self.precision,
            "module": micropython_module(self.model.name),
            "name_c": c_string(self.model.name),
            "version_c": c_string(__version__),
        }

    def accuracy_report(self, X: Any = None) -> dict[str, Any] | None:
        """How far this form's outputs are from the float64 model's, when the form
        approximates it beyond float32 rounding (quantize.accuracy_report); else None."""
        return None

    @abstractmethod
    def weight_bytes(self) -> int:
        """Bytes the weights and biases take in the C header."""

    def _c_common(self, output_var: str) -> dict[str, Any]:
        model = self.model
        prefix = c_prefix(model.name)
        return {
            "version": __version__,
            "prefix": prefix,
            "PREFIX": prefix.upper(),
            "guard": f"BOARDNET_{prefix.upper()}_{self.fingerprint.upper()}_H",
            "name_comment": comment_text(model.name),
            "fingerprint": self.fingerprint,
            "sizes_text": "-".join(str(s) for s in model.sizes),
            "activations_text": ", ".join(layer.activation for layer in model.layers),
            "output_comments": [comment_text(f"{output_var}[{i}]: {t}") for i, t in enumerate(model.outputs)],
            "n_in": model.n_in,
            "n_out": model.n_out,
            "features": [c_string(s) for s in model.features],
            "outputs": [c_string(s) for s in model.outputs],
            "labels": [c_string(s) for s in model.labels],
        }

    def _micropython_common(self) -> dict[str, Any]:
        model = self.model
        return {
            "version": __version__,
            "version_literal": py_string(__version__),
            "module": micropython_module(model.name),
            "model_comment": comment_text(model.name),
            "fingerprint": self.fingerprint,
            "fingerprint_literal": py_string(self.fingerprint),
            "sizes_text": "-".join(str(s) for s in model.sizes),
            "activations_text": ", ".join(layer.activation for layer in model.layers),
            "name": py_string(model.name),
            "features": [py_string(s) for s in model.features],
            "labels": [py_string(s) for s in model.labels],
            "outputs": [py_string(s) for s in model.outputs],
            "n_in": model.n_in,
            "n_out": model.n_out,
        }


def check_shape(shape: str) -> None:
    if shape not in MP_SHAPES:
        raise ValueError(f"shape must be one of {MP_SHAPES}, not {shape!r}")
