"""Plots (matplotlib is an optional extra: pip install 'boardnet[plot]')."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plots need matplotlib: pip install 'boardnet[plot]'") from None
    return plt


def plot_loss(model, path: str | Path) -> Path:
    """The training (and validation) loss per epoch, on a log scale."""
    plt = pyplot()
    history = model.training.get("history", {})
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(range(1, len(history.get("loss", [])) + 1), history.get("loss", []), label="training")
    if history.get("val_loss"):
        ax.plot(range(1, len(history["val_loss"]) + 1), history["val_loss"], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{model.training.get('config', {}).get('loss', 'loss')} loss")
    ax.set_yscale("log")
    ax.set_title(f"{model.name} {'-'.join(map(str, model.sizes))}")
    ax.legend()
    return save_png(fig, path)


def save_png(fig, path: str | Path) -> Path:
    """Save a figure atomically (a temporary file renamed over `path`) and close it."""
    plt = pyplot()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
