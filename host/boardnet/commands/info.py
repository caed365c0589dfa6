"""`boardnet info`: what a model file holds and what it needs on a board."""

from __future__ import annotations

from typing import Any

from .. import forms
from ..codegen import fit_report
from ..model import Model


def describe(model: Model) -> dict[str, Any]:
    t = model.training or {}
    return {
        "name": model.name,
        "sizes": model.sizes,
        "task": model.task,
        "target": model.target,
        "features": list(model.features),
        "labels": list(model.labels),
        "outputs": list(model.outputs),
        "normalization": model.normalization.method,
        "fingerprint": model.fingerprint(),
        "parameters": sum(layer.W.size + layer.b.size for layer in model.layers),
        "activations": [str(layer.activation) for layer in model.layers],
        "training": {k: v for k, v in t.items() if k != "history"},
        "provenance": model.provenance,
        "fit": fit_report(forms.make(model, "f32")),
    }
