"""`boardnet train`: a CSV file in, a model file out (the trainer itself is boardnet.train)."""

from __future__ import annotations

from pathlib import Path

from ..data import read_csv
from ..model import Model
from ..plot import plot_loss, pyplot
from ..train import TrainConfig, train


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
) -> Model:
    """Read `data`, train, write the model to `output` (and the loss curve to `plot`).
    `validation` None holds out 20% from 50 rows on, nothing below."""
    if plot:
        pyplot()  # a missing matplotlib is a usage error before the training, not after
    dataset = read_csv(data, target, features=features, regression=regression, positive=positive)
    if validation is None:
        validation = 0.2 if len(dataset.X) >= 50 else 0.0
    model = train(dataset, TrainConfig(**{**config.__dict__, "validation": validation}), progress=progress)
    model.save(output)
    if plot:
        plot_loss(model, plot)
    return model
