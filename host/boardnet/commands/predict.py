"""`boardnet predict`: the model's outputs for rows of raw inputs, on the host, or on a board
beside the host's (`--port`: the serial predict loop).

Rows come from the command line, a file (`--file F`, `-` for stdin), piped stdin, or a person
typing at a prompt; each source has its own reader in data.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import forms
from ..errors import UsageError
from ..forms import Form
from ..link.ports import resolve
from ..link.protocol import BoardInfo
from ..link.session import Link
from .check import verify_board
from .target import attach, connect


def board_inputs(form: Form, X: np.ndarray | None = None,
                 texts: list[list[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(raw inputs (n, n_in), board inputs) for rows given as numbers (a file) or as decimal
    texts (typed), which the form reads as the board's own parser reads a typed line (so a
    decimal just past a float32 halfway point rounds on the host as on the board)."""
    if texts is None:
        assert X is not None
        return X, form.inputs(X)
    try:
        Xb = form.parse(texts)
    except (ValueError, OverflowError) as e:
        raise UsageError(f"{e}") from None
    return np.array(texts, dtype=np.float64), Xb


def host_rows(form: Form, X: np.ndarray | None = None,
              texts: list[list[str]] | None = None) -> list[dict[str, Any]]:
    """{"x", "y", "class"} per row: the outputs a board of this form computes."""
    X, Xb = board_inputs(form, X, texts)
    Y = form.outputs(form.reference(Xb))  # (n, n_out)
    classes = form.model.classify(Y)
    return [
        {"x": x.tolist(), "y": [float(v) for v in y], **({"class": c} if classes else {})}
        for x, y, c in zip(X, Y, classes or [None] * len(X))
    ]


@dataclass
class BoardPredictor:
    """Predictions on a board beside the host's, for the model in the board's own form."""

    link: Link
    form: Form
    port: str

    @property
    def info(self) -> BoardInfo:
        assert self.link.info is not None
        return self.link.info

    def rows(self, X: np.ndarray | None = None, texts: list[list[str]] | None = None) -> list[dict[str, Any]]:
        """{"x", "host", "board", "ulp", "class"} per row; inputs travel in the board's form,
        so the board sees exactly the host's input."""
        X, Xb = board_inputs(self.form, X, texts)
        board_b = self.link.predict_many(self.form, Xb)
        host_b = self.form.reference(Xb)
        distance = self.form.tolerance(X, host_b, board_b).distance
        board, host = self.form.outputs(board_b), self.form.outputs(host_b)
        classes = self.form.model.classify(board)
        return [
            {"x": [float(v) for v in x], "host": h.tolist(), "board": b.tolist(),
             "ulp": d.tolist(), **({"class": c} if classes else {})}
            for x, h, b, d, c in zip(X, host, board, distance, classes or [None] * len(X))
        ]


@contextmanager
def on_board(model, port: str, baud: int = 115200, precision: str = "f32", *,
             model_file: str = "MODEL.json") -> Iterator[BoardPredictor]:
    """A BoardPredictor on `port`; a virtual board gets the `precision` form deployed, a real
    one is taken in the form it says it runs."""
    form = forms.make(model, precision)
    with attach(resolve(port), form) as board, connect(board, form, baud=baud, model_file=model_file) as link:
        assert link.info is not None
        if link.info.precision != form.precision and link.info.precision in forms.FORMS:
            form = forms.make(model, link.info.precision)
        verify_board(form, link.info, board.url, model_file)
        yield BoardPredictor(link, form, port)
