"""`boardnet export`: the C header and the MicroPython module of a model's form, with what it
needs on a board (and, for q15, how far the integer model is from the float one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import forms
from ..codegen import export_all, fit_report
from ..model import Model


def export(model: Model, precision: str = "f32", c_dir: str | Path | None = None,
           mp_dir: str | Path | None = None, mpy: bool = False) -> dict[str, Any]:
    """Write the files; {"written", "fit", and for integer forms "accuracy"}."""
    form = forms.make(model, precision)
    written = export_all(form, c_dir=c_dir, mp_dir=mp_dir, mpy=mpy)
    result: dict[str, Any] = {"written": [str(p) for p in written], "fit": fit_report(form)}
    accuracy = form.accuracy_report()
    if accuracy is not None:
        result["accuracy"] = accuracy
    return result
