"""`boardnet export`: the C header and the MicroPython module of a model's form, with what it
needs on a board (and, for q15, how far the integer model is from the float one: on random
inputs over the input range, or on the rows of a labelled test file, whose accuracy it then
gives for both forms)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import forms
from ..codegen import export_all, fit_report
from ..errors import UsageError
from ..firmware.natmod import build_native, native_arch
from ..model import Model
from .evaluate import on_host, read_test


def export(model: Model, precision: str = "f32", c_dir: str | Path | None = None,
           mp_dir: str | Path | None = None, mpy: bool = False,
           data: str | Path | None = None, native: str | None = None) -> dict[str, Any]:
    """Write the files; {"written", "fit", for integer forms "accuracy", and with a labelled
    test file `data` "test": the float32 and this form's metrics on it}. `native`, an
    architecture, also writes the native module `<module>.mpy` into mp_dir."""
    form = forms.make(model, precision)
    if native is not None:
        native_arch(native)  # a known architecture, before anything is written
        if mp_dir is None:
            raise UsageError("--native writes the native module beside the MicroPython module: "
                             "say where with --micropython DIR")
        if mpy:
            raise UsageError("--native and --mpy both write <module>.mpy: choose one")
    test = read_test(model, data) if data is not None else None  # a bad file fails before writing
    written = export_all(form, c_dir=c_dir, mp_dir=mp_dir, mpy=mpy)
    if native is not None:
        written.append(build_native(form, native, mp_dir))
    result: dict[str, Any] = {"written": [str(p) for p in written], "fit": fit_report(form)}
    accuracy = form.accuracy_report(None if test is None else test.X)
    if accuracy is not None:
        result["accuracy"] = accuracy
    if test is not None:
        reference = forms.make(model, "f32")
        result["test"] = {"data": str(data), "n": len(test.X),
                          **{f.precision: on_host(f, test).metrics for f in (reference, form)}}
    return result
