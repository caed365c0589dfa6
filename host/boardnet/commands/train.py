"""`boardnet train`: a CSV file in, a model file out (the trainer itself is boardnet.train);
with a test file, the evaluation of the trained model on it (commands.evaluate)."""

from __future__ import annotations

from pathlib import Path

from .. import forms
from ..data import read_csv, read_labelled
from ..model import Model
from ..plot import plot_loss, pyplot
from ..train import TrainConfig, train
from .evaluate import Evaluation, on_host


def train_file(
    data: str | Path,
    target: str,
    output: str | Path,
    config: TrainConfig,
    *,
    features: list[str] | None = None,
    regression: bool = False,
    positive: str | None = None,
    validation: float | None = None,
    progress: bool = False,
    plot: str | None = None,
    test: str | Path | None = None,
) -> tuple[Model, Evaluation | None]:
    """Read `data`, train, write the model to `output` (and the loss curve to `plot`); with
    `test`, a labelled file read before training (a bad one fails fast), the float32 model's
    evaluation on it. `validation` None holds out 20% from 50 rows on, nothing below."""
    if plot:
        pyplot()  # a missing matplotlib is a usage error before the training, not after
    dataset = read_csv(data, target, features=features, regression=regression, positive=positive)
    held_out = None
    if test is not None:
        held_out = read_labelled(test, dataset.features, dataset.target, dataset.task, dataset.labels)
    if validation is None:
        validation = 0.2 if len(dataset.X) >= 50 else 0.0
    model = train(dataset, TrainConfig(**{**config.__dict__, "validation": validation}), progress=progress)
    model.save(output)
    if plot:
        plot_loss(model, plot)
    evaluation = on_host(forms.make(model, "f32"), held_out) if held_out is not None else None
    return model, evaluation
