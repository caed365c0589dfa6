"""Generated code: the C header and the MicroPython module of a model's form, rendered from
jinja2 templates (real C and Python files under boardnet/templates) with StrictUndefined.

    form = forms.make(model, "f32")
    export_c(form, "out/")              # out/<prefix>.h
    export_micropython(form, "out/")    # out/<module>.py
    render_native(form)                 # the native module's C (built by firmware.natmod)
"""

from .export import (
    export_all,
    export_c,
    export_micropython,
    render_c,
    render_micropython,
    render_native,
)
from .fit import fit_report, precision_warnings

__all__ = ["export_all", "export_c", "export_micropython", "fit_report", "precision_warnings",
           "render_c", "render_micropython", "render_native"]
