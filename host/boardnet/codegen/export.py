"""Render a form's templates and write the files (atomically; the same model and form give
the same bytes). Everything from user data arrives already escaped by the form's context
(boardnet.names)."""

from __future__ import annotations

from pathlib import Path

from ..files import write_atomic
from ..forms import Form
from ..names import c_prefix, micropython_module
from ..templating import environment, python_environment
from .mpy import compile_mpy


def render_c(form: Form, **options) -> str:
    """The C99 header (docs/export-c.md, docs/integer-models.md); `options` go to the form's
    context (`unroll_max_weights`)."""
    return environment().get_template(form.c_template).render(**form.c_context(**options))


def render_micropython(form: Form, shape: str = "auto") -> str:
    """The MicroPython module (docs/export-micropython.md). `shape` picks the code: "straight"
    (unrolled), "rows", "loop", or "auto" (forms.MP_STRAIGHT_MAX_PARAMS)."""
    return python_environment().get_template(form.micropython_template).render(
        **form.micropython_context(shape))


def render_native(form: Form) -> str:
    """The C source of the MicroPython native module (docs/export-micropython.md): it includes the C
    header of `render_c(form)` as `<prefix>.h` and wraps its entry points with
    py/dynruntime.h; firmware.natmod builds it."""
    return environment().get_template(form.native_template).render(**form.native_context())


def export_c(form: Form, out_dir: str | Path) -> Path:
    """Write `<prefix>.h` into `out_dir`."""
    return write_atomic(Path(out_dir) / f"{c_prefix(form.model.name)}.h", render_c(form))


def export_micropython(
    form: Form,
    out_dir: str | Path,
    *,
    mpy: bool = False,
    shape: str = "auto",
    mpy_args: tuple[str, ...] = (),
) -> Path:
    """Write `<module>.py` into `out_dir`; with `mpy` also `<module>.mpy` compiled by
    mpy-cross, given `mpy_args` too. Returns the .py path."""
    path = write_atomic(Path(out_dir) / f"{micropython_module(form.model.name)}.py",
                        render_micropython(form, shape))
    if mpy:
        compile_mpy(path, args=mpy_args)
    return path


def export_all(form: Form, c_dir: str | Path | None = None, mp_dir: str | Path | None = None,
               mpy: bool = False) -> list[Path]:
    """`boardnet export`: the C header into c_dir and the MicroPython module into mp_dir."""
    written = []
    if c_dir is not None:
        written.append(export_c(form, c_dir))
    if mp_dir is not None:
        module = export_micropython(form, mp_dir, mpy=mpy)
        written += [module] + ([module.with_suffix(".mpy")] if mpy else [])
    return written
