"""`boardnet import`: a model trained elsewhere (a scikit-learn MLP in a pickle, an ONNX graph)
into boardnet's model file, checked against the source library's own outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import importers
from ..model import Model


def import_file(source: str | Path, output: str | Path, *, trust_pickle: bool = False,
                name: str | None = None, features: list[str] | None = None,
                labels: list[str] | None = None, target: str | None = None,
                verify: bool = True) -> tuple[Model, dict[str, Any]]:
    """Read `source`, write the model to `output`; the result says what was read, what was
    folded on the way and how the model's float64 outputs compare with the source library's
    (None when its runtime is not installed)."""
    imported = importers.read(source, name=name or Path(output).stem, trust_pickle=trust_pickle,
                              features=features, labels=labels, target=target)
    model = imported.model
    parity = importers.verify(imported) if verify else None
    model.save(output)
    return model, {"model": str(output), "fingerprint": model.fingerprint(), "sizes": model.sizes,
                   "activations": [str(layer.activation) for layer in model.layers], "task": model.task,
                   "provenance": model.provenance, "notes": imported.notes, "parity": parity}
