"""`boardnet evaluate`: how good is the model where it runs? A labelled test file, predicted
on the host (the float32 reference, or the q15 integer model) or on a board, scored with
boardnet.metrics.

    ev = evaluate(model, "test.csv")                       # host, float32
    ev = evaluate(model, "test.csv", "q15")                # host, the integer model
    ev = evaluate(model, "test.csv", port="/dev/ttyACM0")  # the board's own outputs

On a board the rows travel in the form's board units, pipelined (Link.predict_many), and the
metrics are computed from the board's answers; the host's reference for the same rows is
computed beside them, so the report also says whether the two agree within `check`'s
tolerance (then a float32 or q15 board's report equals the host's exactly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .. import forms, metrics
from ..data import Dataset, read_labelled
from ..errors import UsageError
from ..forms import Form
from ..link.ports import resolve
from ..model import Model
from ..plot import plot_confusion, plot_regression
from .check import verify_board
from .target import attach, connect


@dataclass
class Evaluation:
    model: str
    task: str
    data: str  # the test file
    n: int
    precision: str  # the form evaluated: f32 | q15
    fingerprint: str  # of that form (on a board: the board's, checked equal)
    on: str  # host | board
    metrics: dict[str, Any]  # metrics.classification or metrics.regression
    port: str | None = None
    board: dict[str, str] | None = None  # the board's hello fields
    agreement: dict[str, Any] | None = None  # board outputs against the host's, on these rows
    seconds: float | None = None  # for the board's predictions
    # the true and the predicted values (regression), for the plot; not in the JSON
    values: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "values"}


def read_test(model: Model, path: str | Path) -> Dataset:
    """The labelled test file for `model` (its features and target by name)."""
    if model.task == "regression" and model.n_out != 1:
        raise UsageError(f"evaluate reads one target column; {model.name} has {model.n_out} outputs")
    return read_labelled(path, model.features, model.target, model.task, model.labels)


def score(model: Model, data: Dataset, Y: np.ndarray) -> dict[str, Any]:
    """The metrics of outputs Y (n, n_out) against the data's labels or values."""
    if model.task == "regression":
        return metrics.regression(data.y, Y)
    return metrics.classification(data.classes, Y, model.labels)


def on_host(form: Form, data: Dataset) -> Evaluation:
    """The form's host reference on the test rows: exactly what a board of this form computes."""
    model = form.model
    Y = form.predict(data.X)  # (n, n_out)
    return Evaluation(model.name, model.task, data.source, len(data.X), form.precision,
                      form.fingerprint, "host", score(model, data, Y), values=(data.y, Y))


def on_board(form: Form, data: Dataset, port: str, baud: int = 115200, timeout: float = 5.0,
             progress=None, *, start: bool = False, model_file: str = "MODEL.json") -> Evaluation:
    """The board's own outputs on the test rows (a virtual board gets the form deployed, by
    commands.target's rule; `start` starts the loop a board at its REPL holds); raises
    BoardError for a board that holds another model."""
    model = form.model
    Xb = form.inputs(data.X)  # (n, n_in): what travels to the board
    with attach(resolve(port), form) as board_at, \
            connect(board_at, form, baud=baud, timeout=timeout, start=start, model_file=model_file) as link:
        info = link.info
        assert info is not None
        verify_board(form, info, board_at.url, model_file)
        t0 = time.perf_counter()
        Yb = link.predict_many(form, Xb, progress=progress)  # (n, n_out) board units
        seconds = time.perf_counter() - t0
    host = form.reference(Xb)
    tol = form.tolerance(data.X, host, Yb, info.float32_exact)
    agreement = {
        "identical": bool(np.array_equal(host, Yb)),
        "max_distance": int(tol.distance.max()) if tol.distance.size else 0,
        "outside_tolerance": int(tol.bad.sum()),
        "tolerance": tol.description,
    }
    Y = form.outputs(Yb)
    return Evaluation(model.name, model.task, data.source, len(data.X), form.precision,
                      info.fingerprint, "board", score(model, data, Y), port=port,
                      board=dict(info.fields), agreement=agreement, seconds=seconds, values=(data.y, Y))


def evaluate(model: Model, path: str | Path, precision: str = "f32", port: str | None = None,
             baud: int = 115200, timeout: float = 5.0, progress=None, **board) -> Evaluation:
    """Read the labelled file and evaluate the `precision` form on the host or on `port`
    (`board`: on_board's start and model_file)."""
    form = forms.make(model, precision)
    data = read_test(model, path)
    if port:
        return on_board(form, data, port, baud, timeout, progress, **board)
    return on_host(form, data)


def plot(ev: Evaluation, path: str | Path) -> Path:
    """The confusion matrix (classifiers) or the values against the predictions (regression)."""
    title = f"{ev.model} on {Path(ev.data).name}: {ev.precision} on the {ev.on}"
    if ev.task == "regression":
        assert ev.values is not None
        return plot_regression(*ev.values, title, path)
    return plot_confusion(ev.metrics["confusion"], ev.metrics["labels"], title, path)
