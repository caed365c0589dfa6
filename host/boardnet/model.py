"""The trained model: a frozen value that export, deploy and check take as input.

A model is an MLP `sizes = [n_in, hidden..., n_out]` with sigmoid, tanh or relu hidden layers
and a sigmoid or softmax (classification) or linear (regression) output layer (activations.py);
weights are row-major `W` of shape `(n_out, n_in)`. Normalisation is part of the model, so
boards take raw units. A model imported from another library keeps where it came from
(`provenance`: the source file, its hash, the library and its version).

Two forward passes:
- `predict` is the trainer's float64 arithmetic (`forward(x, trace=True)` shows every layer).
- `predict32` is what a board computes (normalisation folded into layer 1, float32
  weights, the float32 activations of `numerics`) and what the generated C reproduces bit for bit.

The file's schema is 2: schema 1 files (sigmoid and linear layers, no provenance) load unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .activations import ACTIVATIONS, HIDDEN, OUTPUTS, Activation, lookup
from .errors import ModelError
from .files import write_atomic
from .metrics import decisions
from .numerics import forward32

SCHEMA = 2  # 2: tanh, relu and softmax layers, provenance; 1: sigmoid and linear only
FORMAT = "boardnet-model"
TASKS = ("binary", "multiclass", "regression")
NORMALIZATIONS = ("standard", "center", "minmax", "none")


def sigmoid(z: np.ndarray) -> np.ndarray:
    """float64 logistic function, exact to rounding (tiny probabilities too) and silent at
    |z| = 1e4: 1 / (1 + e) or e / (1 + e) with e = exp(-|z|) (activations.Sigmoid)."""
    return ACTIVATIONS["sigmoid"].float64(z)


class Weighted:
    """`n_in`, `n_out` of a layer from its row-major W (n_out, n_in): float or integer."""

    W: np.ndarray

    @property
    def n_in(self) -> int:
        return int(self.W.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.W.shape[0])


@dataclass(frozen=True)
class Layer(Weighted):
    W: np.ndarray  # (n_out, n_in)
    b: np.ndarray  # (n_out,)
    activation: Activation = ACTIVATIONS["sigmoid"]  # a name is taken as its activation

    def __post_init__(self) -> None:
        # an unknown name stays a plain string, for validate() to report with its layer
        object.__setattr__(self, "activation", lookup(self.activation) or self.activation)


@dataclass(frozen=True)
class Normalization:
    """x_normalised = (x - shift) / scale, per feature."""

    method: str
    shift: np.ndarray  # (n_in,)
    scale: np.ndarray  # (n_in,)

    @classmethod
    def identity(cls, n_in: int) -> Normalization:
        return cls("none", np.zeros(n_in), np.ones(n_in))

    def apply(self, X: np.ndarray) -> np.ndarray:
        return (X - self.shift) / self.scale


class Stack:
    """`sizes`, `n_in`, `n_out` of anything made of `layers` that each have n_in and n_out
    (the float model here, the integer model of quantize.py)."""

    layers: tuple

    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]

    @property
    def n_in(self) -> int:
        return self.sizes[0]

    @property
    def n_out(self) -> int:
        return self.sizes[-1]


@dataclass(frozen=True)
class Model(Stack):
    name: str
    layers: tuple[Layer, ...]
    features: tuple[str, ...]
    normalization: Normalization
    task: str = "binary"  # binary | multiclass | regression
    target: str = "y"
    labels: tuple[str, ...] = ()  # classes in output order; binary: (negative, positive)
    training: dict[str, Any] = field(default_factory=dict, compare=False)
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)  # imported models

    # ---- meaning ------------------------------------------------------------------------
    @property
    def outputs(self) -> tuple[str, ...]:
        """What each output means: P(class) for classifiers, the target for regression."""
        if self.task == "binary":
            return (f"P({self.target}={self.labels[1]})",)
        if self.task == "multiclass":
            return tuple(f"P({self.target}={c})" for c in self.labels)
        return (self.target,) if self.n_out == 1 else tuple(
            f"{self.target}[{i}]" for i in range(self.n_out)
        )

    def classify(self, y: np.ndarray) -> list[str] | None:
        """Class names for outputs `y` of shape (batch, n_out); None for regression. Binary: labels[1]
        when the output is >= 0.5; multi-class: the argmax (metrics.decisions)."""
        if self.task == "regression":
            return None
        return [self.labels[int(i)] for i in decisions(y)]

    # ---- float64: the trainer's arithmetic ----------------------------------------------
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs for raw inputs X of shape (batch, n_in) or (n_in,), float64."""
        return self.forward(X)

    def forward(self, X: np.ndarray, trace: bool = False) -> np.ndarray | list[np.ndarray]:
        """The float64 forward pass for raw inputs X (batch, n_in) or (n_in,): the outputs, or
        with `trace` every layer's activations [x normalised, a1, ..., aL] (the tutorial's
        h1, h2 are a1 and o1 is a2: examples/worked_example.py)."""
        X = np.asarray(X, dtype=np.float64)
        single = X.ndim == 1
        a = self.normalization.apply(np.atleast_2d(X))  # (batch, n_in)
        activations = [a]
        for layer in self.layers:
            z = a @ layer.W.T + layer.b  # (batch, n_out)
            a = layer.activation.float64(z)
            activations.append(a)
        if single:
            activations = [a[0] for a in activations]
        return activations if trace else activations[-1]

    # ---- float32: what a board computes -----------------------------------------------
    def folded32(self) -> tuple[Layer, ...]:
        """The layers a board runs: normalisation folded into layer 1, weights in float32.

        W' = W / scale and b' = b - W' . shift, each element computed in float64 with
        math.fsum (correctly rounded, so every machine folds to the same bits), then
        rounded once to float32.
        """
        first, rest = self.layers[0], self.layers[1:]
        Wf = first.W / self.normalization.scale  # (n_out, n_in)
        bf = np.array(
            [
                math.fsum([float(first.b[i])] + [-float(v) for v in Wf[i] * self.normalization.shift])
                for i in range(first.n_out)
            ]
        )
        layers = (Layer(Wf, bf, first.activation),) + rest
        return tuple(
            Layer(
                np.ascontiguousarray(layer.W, dtype=np.float32),
                np.ascontiguousarray(layer.b, dtype=np.float32),
                layer.activation,
            )
            for layer in layers
        )

    def predict32(self, X: np.ndarray) -> np.ndarray:
        """float32 outputs, bit for bit what the generated C computes (docs/design.md)."""
        return forward32(self.folded32(), X)

    def fingerprint(self) -> str:
        """16 hex digits over everything that changes a float32 board's output."""
        parts = []
        for layer in self.folded32():
            parts += [layer.activation.encode(), layer.W.astype("<f4").tobytes(),
                      layer.b.astype("<f4").tobytes()]
        return self.fingerprint_of("f32", b"".join(parts))

    def fingerprint_of(self, precision: str, parameters: bytes) -> str:
        """The fingerprint of one form of the model: what the outputs mean (task, sizes,
        labels) and the form's own parameters (forms.F32, forms.Q15)."""
        h = hashlib.sha256()
        h.update(f"boardnet/{precision}/{self.task}/{self.sizes}\n".encode())
        h.update(json.dumps([self.labels, self.outputs]).encode())
        h.update(parameters)
        return h.hexdigest()[:16]

    def with_name(self, name: str) -> Model:
        return replace(self, name=name)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        Ws: list[np.ndarray],
        bs: list[np.ndarray],
        activations: list[str] | None = None,
        *,
        name: str = "model",
        features: list[str] | None = None,
        labels: list[str] | None = None,
        task: str | None = None,
        target: str = "y",
        normalization: Normalization | None = None,
    ) -> Model:
        """A model from weight arrays (tests, examples, hand-set networks)."""
        Ws = [np.array(W, dtype=np.float64, ndmin=2) for W in Ws]
        bs = [np.array(b, dtype=np.float64, ndmin=1) for b in bs]
        activations = activations or ["sigmoid"] * len(Ws)
        n_in, n_out = Ws[0].shape[1], Ws[-1].shape[0]
        if task is None:
            task = "regression" if activations[-1] == "linear" else (
                "binary" if n_out == 1 else "multiclass"
            )
        if labels is None:
            labels = ["0", "1"] if task == "binary" else (
                [str(i) for i in range(n_out)] if task == "multiclass" else []
            )
        model = cls(
            name=name,
            layers=tuple(Layer(W, b, a) for W, b, a in zip(Ws, bs, activations)),
            features=tuple(features or [f"x{i}" for i in range(n_in)]),
            normalization=normalization or Normalization.identity(n_in),
            task=task,
            target=target,
            labels=tuple(labels),
        )
        validate(model)
        return model

    # ---- the model file ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema": SCHEMA,
            "boardnet_version": __version__,
            "name": self.name,
            "task": self.task,
            "target": self.target,
            "labels": list(self.labels),
            "outputs": list(self.outputs),
            "features": list(self.features),
            "sizes": self.sizes,
            "activations": [layer.activation for layer in self.layers],
            "normalization": {
                "method": self.normalization.method,
                "shift": self.normalization.shift.tolist(),
                "scale": self.normalization.scale.tolist(),
            },
            "layers": [{"W": layer.W.tolist(), "b": layer.b.tolist()} for layer in self.layers],
            "fingerprint": self.fingerprint(),
            "training": self.training,
            **({"provenance": self.provenance} if self.provenance else {}),
        }

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON, atomically (a crash never leaves half a file)."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        return write_atomic(Path(path), text)

    @classmethod
    def load(cls, path: str | Path) -> Model:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(f"{path}: no such model file; train one with `boardnet train`") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ModelError(f"{path}: cannot read the model file ({e})") from None
        try:
            d = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as e:
            raise ModelError(
                f"{path}:{e.lineno}:{e.colno}: not a complete JSON model file ({e.msg}); "
                "was it truncated? re-run `boardnet train`"
            ) from None
        except ValueError as e:
            raise ModelError(f"{path}: {e}; a model file holds finite numbers only") from None
        return cls.from_dict(d, source=str(path))

    @classmethod
    def from_dict(cls, d: Any, source: str = "model") -> Model:
        def bad(what: str) -> ModelError:
            return ModelError(f"{source}: {what}")

        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise bad("not a boardnet model file (no \"format\": \"boardnet-model\")")
        schema = d.get("schema")
        if not isinstance(schema, int):
            raise bad("the model file has no schema version")
        if schema > SCHEMA:
            raise bad(
                f"model schema {schema} is newer than this boardnet understands ({SCHEMA}); "
                "upgrade boardnet"
            )
        try:
            sizes = [int(s) for s in d["sizes"]]
            acts = [str(a) for a in d["activations"]]
            layers_in = d["layers"]
            norm = d["normalization"]
            task = str(d["task"])
            features = tuple(str(f) for f in d["features"])
            labels = tuple(str(c) for c in d.get("labels", []))
        except (KeyError, TypeError, ValueError) as e:
            raise bad(f"missing or malformed field {e}") from None
        if len(sizes) < 2 or len(layers_in) != len(sizes) - 1 or len(acts) != len(layers_in):
            raise bad(f"sizes {sizes} do not match {len(layers_in)} layers")
        layers = []
        for k, (entry, act) in enumerate(zip(layers_in, acts)):
            try:
                W = np.array(entry["W"], dtype=np.float64)
                b = np.array(entry["b"], dtype=np.float64)
            except (KeyError, TypeError, ValueError):
                raise bad(f"layer {k + 1}: W and b must be arrays of numbers") from None
            if W.shape != (sizes[k + 1], sizes[k]) or b.shape != (sizes[k + 1],):
                raise bad(
                    f"layer {k + 1}: W has shape {W.shape} and b {b.shape}, "
                    f"expected {(sizes[k + 1], sizes[k])} and {(sizes[k + 1],)}"
                )
            layers.append(Layer(W, b, act))
        try:
            normalization = Normalization(
                str(norm["method"]),
                np.array(norm["shift"], dtype=np.float64),
                np.array(norm["scale"], dtype=np.float64),
            )
        except (KeyError, TypeError, ValueError):
            raise bad("normalization must have method, shift and scale") from None
        model = cls(
            name=str(d.get("name", "model")),
            layers=tuple(layers),
            features=features,
            normalization=normalization,
            task=task,
            target=str(d.get("target", "y")),
            labels=labels,
            training=d.get("training", {}) or {},
            provenance=d.get("provenance", {}) or {},
        )
        validate(model, source)
        stored = d.get("fingerprint")
        if stored is not None and stored != model.fingerprint():
            raise bad(
                f"fingerprint {stored} does not match the weights ({model.fingerprint()}); "
                "the file was edited or corrupted"
            )
        return model


def validate(model: Model, source: str = "model") -> None:
    """Raise ModelError when the model is inconsistent or holds non-finite numbers."""
    def bad(what: str) -> ModelError:
        return ModelError(f"{source}: {what}")

    sizes = model.sizes
    last = len(model.layers) - 1
    for k, layer in enumerate(model.layers):
        act = lookup(layer.activation)
        if act is None:
            raise bad(f"layer {k + 1}: unknown activation {str(layer.activation)!r}; boardnet knows "
                      + ", ".join(ACTIVATIONS))
        if k < last and not act.hidden:
            raise bad(f"layer {k + 1}: a hidden layer is {', '.join(HIDDEN)}, not {act}")
        if k == last and not act.output:
            raise bad(f"layer {k + 1}: an output layer is {', '.join(OUTPUTS)}, not {act}")
        if k and layer.n_in != model.layers[k - 1].n_out:
            raise bad(f"layer {k + 1}: takes {layer.n_in} inputs, previous gives {sizes[k]}")
        if not (np.all(np.isfinite(layer.W)) and np.all(np.isfinite(layer.b))):
            raise bad(f"layer {k + 1}: weights must be finite numbers")
    if model.task not in TASKS:
        raise bad(f"unknown task {model.task!r}")
    if len(model.features) != sizes[0]:
        raise bad(f"{len(model.features)} feature names for {sizes[0]} inputs")
    n = model.normalization
    if n.method not in NORMALIZATIONS:
        raise bad(f"unknown normalization {n.method!r}")
    if n.shift.shape != (sizes[0],) or n.scale.shape != (sizes[0],):
        raise bad(f"normalization needs {sizes[0]} shifts and scales")
    if not (np.all(np.isfinite(n.shift)) and np.all(np.isfinite(n.scale)) and np.all(n.scale > 0)):
        raise bad("normalization shift must be finite and scale finite and positive")
    if model.task == "binary" and (len(model.labels) != 2 or sizes[-1] != 1):
        raise bad("a binary model has 2 labels and 1 output")
    if model.task == "multiclass" and len(model.labels) != sizes[-1]:
        raise bad(f"{len(model.labels)} labels for {sizes[-1]} outputs")
    output = model.layers[-1].activation
    if model.task == "binary" and output != "sigmoid":
        raise bad("a binary classifier has a sigmoid output layer")
    if model.task == "multiclass" and output not in ("sigmoid", "softmax"):
        raise bad("a multi-class classifier has a sigmoid (one per class) or softmax output layer")
    if output == "softmax" and (model.task != "multiclass" or sizes[-1] < 2):
        raise bad("a softmax output layer belongs to a multi-class classifier (2 or more outputs)")


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")
