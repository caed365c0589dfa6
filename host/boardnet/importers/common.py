"""What every importer shares: the steps a source network is read into, how they become
boardnet layers, and the provenance an imported model keeps."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import ModelError
from ..model import Model, Normalization


@dataclass(frozen=True)
class Affine:
    """y = x W^T + b, W (n_out, n_in)."""

    W: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class Act:
    """An activation between affine maps (a boardnet activation name)."""

    name: str


@dataclass
class Imported:
    """A model read from another library, what was done on the way (notes), and the source
    object itself for the parity check (`verify` in each importer)."""

    model: Model
    notes: list[str] = field(default_factory=list)
    source: Any = None


def layers_from_steps(steps: list[Affine | Act], what: str) -> tuple[list, list, list[str], list[str]]:
    """Steps read in order -> (Ws, bs, activations, notes). Affine maps with no activation
    between them are one affine map (W2 W1, W2 b1 + b2: the same function, in float64); an
    affine map at the end has the linear activation."""
    Ws: list[np.ndarray] = []
    bs: list[np.ndarray] = []
    acts: list[str] = []
    notes: list[str] = []
    pending: Affine | None = None
    folded = 0
    for step in steps:
        if isinstance(step, Affine):
            if pending is None:
                pending = step
            else:
                if step.W.shape[1] != pending.W.shape[0]:
                    raise ModelError(f"{what}: a layer takes {step.W.shape[1]} inputs, the one before "
                                     f"gives {pending.W.shape[0]}")
                pending = Affine(step.W @ pending.W, step.W @ pending.b + step.b)
                folded += 1
        else:
            if pending is None:
                raise ModelError(f"{what}: {step.name} without a layer before it")
            if step.name == "linear":
                continue  # an identity activation: the next affine map folds into this one
            Ws.append(pending.W)
            bs.append(pending.b)
            acts.append(step.name)
            pending = None
    if pending is not None:
        Ws.append(pending.W)
        bs.append(pending.b)
        acts.append("linear")
    if not Ws:
        raise ModelError(f"{what}: no layer to import")
    if folded:
        notes.append(f"{folded} affine map(s) without an activation after them (identity) folded "
                     "into the next layer: the same function, one layer fewer")
    return Ws, bs, acts, notes


def build(Ws, bs, acts, *, name: str, features: list[str] | None, labels: list[str] | None,
          task: str, target: str, normalization: Normalization | None, provenance: dict[str, Any],
          what: str) -> Model:
    """A validated boardnet model; a mismatch (names, labels) is a one-line ModelError."""
    n_in = Ws[0].shape[1]
    if features is not None and len(features) != n_in:
        raise ModelError(f"{what}: {len(features)} feature names for {n_in} inputs")
    model = Model.from_arrays(
        Ws, bs, acts, name=name, features=features, labels=labels, task=task, target=target,
        normalization=normalization,
    )
    return Model(**{**model.__dict__, "provenance": provenance})


def provenance(path: str | Path, library: str, version: str, **details: Any) -> dict[str, Any]:
    """Where an imported model came from: the file's name and SHA-256, the library and its
    version, and what the importer read (estimator, producer, dtype)."""
    data = Path(path).read_bytes()
    return {
        "source": Path(path).name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "library": library,
        "library_version": version,
        **details,
        "imported_by": f"boardnet {__version__}",
    }


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """(max |ours - theirs|, max |ours - theirs| / |theirs|) over outputs (0/0 counts 0)."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64).reshape(ours.shape)
    diff = np.abs(ours - theirs)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(theirs))
    return float(diff.max()), float(rel.max())
