"""The forms a model takes on a board: `f32` (float32 weights, boardnet's float32 sigmoid)
and `q15` (int16 weights, integer arithmetic only).

    form = make(model, "q15")       # once per command: quantises once
    form.fingerprint, form.inputs(X), form.reference(Xb), form.encode(xb), form.decode(words)
    form.c_template, form.c_context(), form.micropython_template, form.micropython_context()

Everything that differs between the forms is asked of the form (fingerprint, host reference,
wire codec, tolerance, templates), so no caller branches on the precision's name.
"""

from __future__ import annotations

from ..errors import UsageError
from .base import MP_SHAPES, MP_STRAIGHT_MAX_PARAMS, Form, Tolerance
from .f32 import F32
from .q15 import Q15

FORMS: dict[str, type[Form]] = {"f32": F32, "q15": Q15}
PRECISIONS = tuple(FORMS)


def make(model, precision: str = "f32", **options) -> Form:
    """The `precision` form of `model` (options: q15 takes `input_range`)."""
    try:
        cls = FORMS[precision]
    except KeyError:
        raise UsageError(
            f"unknown precision {precision!r}: {' or '.join(PRECISIONS)}"
        ) from None
    return cls(model, **options)


__all__ = ["FORMS", "MP_SHAPES", "MP_STRAIGHT_MAX_PARAMS", "PRECISIONS", "F32", "Form", "Q15",
           "Tolerance", "make"]
