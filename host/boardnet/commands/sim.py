"""`boardnet sim`: virtual boards that stay up (boardnet.virtual)."""

from __future__ import annotations

from .. import forms, virtual
from ..model import Model


def start(kind: str, model: Model | None = None, precision: str = "f32", runtime: str | None = None,
          **options) -> dict:
    """Start a board of `kind` that stays up (C firmware is built with the model); its record.
    `options` go to the kind (pico: firmware, bootrom_path, keep_flash)."""
    form = forms.make(model, precision) if model is not None else None
    return virtual.start_persistent(kind, form, runtime, **options)


def stop(kind: str | None = None) -> list[dict]:
    return virtual.stop_persistent(kind)


def running() -> list[dict]:
    return virtual.running()
