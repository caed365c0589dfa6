"""`boardnet sim`: virtual boards that stay up (boardnet.virtual)."""

from __future__ import annotations

from .. import forms, virtual
from ..model import Model


def start(kind: str, model: Model | None = None, precision: str = "f32") -> dict:
    """Start a board of `kind` that stays up (C boards are built with the model); its record."""
    form = forms.make(model, precision) if model is not None else None
    return virtual.start_persistent(kind, form)


def stop(kind: str | None = None) -> list[dict]:
    return virtual.stop_persistent(kind)


def running() -> list[dict]:
    return virtual.running()
