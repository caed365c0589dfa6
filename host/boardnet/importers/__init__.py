"""Bring your own model: networks trained elsewhere, read into boardnet's model (a value like
any trained one, with its provenance), so export, deploy and check treat them alike.

    imported = read("clf.joblib", trust_pickle=True, name="clf")   # scikit-learn
    imported = read("net.onnx", name="net")                          # ONNX (PyTorch, Keras)
    imported.model, imported.notes, verify(imported)

Each source kind is one module here (from_sklearn, from_onnx) that knows its files, how they
map to boardnet layers and how to check the result against the source library's own outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import from_onnx, from_sklearn
from .common import Imported

KINDS = ("scikit-learn", "onnx")


def kind_of(path: str | Path) -> str:
    """The source kind from the file's name, else from its first bytes (a pickle starts with
    0x80, a joblib file with a zlib or pickle header)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in from_sklearn.PICKLE_SUFFIXES:
        return "scikit-learn"
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as e:
        raise UsageError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if head[:1] == b"\x80" or head in (b"x\x9c", b"x\x01", b"x\xda"):
        return "scikit-learn"
    raise UsageError(f"{path}: not a file boardnet imports: an ONNX model (.onnx) or a scikit-learn "
                     "pickle (.pkl, .joblib)")


def read(path: str | Path, *, name: str, trust_pickle: bool = False, features: list[str] | None = None,
         labels: list[str] | None = None, target: str | None = None) -> Imported:
    """The model in `path` (kind_of decides how to read it)."""
    if kind_of(path) == "onnx":
        return from_onnx.read(path, name=name, features=features, labels=labels, target=target)
    imported = from_sklearn.from_estimator(from_sklearn.load(path, trust_pickle), path, name=name,
                                           features=features, target=target)
    if labels is not None:
        raise UsageError("--labels: a scikit-learn classifier names its classes itself (classes_)")
    return imported


def verify(imported: Imported, n: int = 1000) -> dict[str, Any] | None:
    """The parity of the imported model's float64 outputs with the source library's on n
    random inputs, or None when that library's runtime is not installed."""
    library = imported.model.provenance.get("library")
    if library == "onnx":
        return from_onnx.verify(imported, n)
    return from_sklearn.verify(imported, n)


__all__ = ["KINDS", "Imported", "kind_of", "read", "verify"]
