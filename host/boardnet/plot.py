"""Plots (matplotlib is an optional extra: pip install 'boardnet[plot]')."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UsageError
from .names import shown


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


def plot_confusion(C, labels, title: str, path: str | Path) -> Path:
    """A confusion matrix (rows: true class, columns: predicted) with its counts."""
    plt = pyplot()
    C = np.asarray(C)
    k = len(labels)
    size = min(3.0 + 0.45 * k, 12.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size), dpi=100)
    image = ax.imshow(C, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    names = [shown(str(label), quote=False, max_len=20) for label in labels]
    ax.set_xticks(range(k), names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
    ax.set_yticks(range(k), names)
    if k <= 30:
        top = C.max() if C.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(C[i, j]), ha="center", va="center",
                        color="white" if top and C[i, j] > top / 2 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    return save_png(fig, path)


def plot_regression(y_true, y_pred, title: str, path: str | Path) -> Path:
    """Predicted against true values, with the diagonal."""
    plt = pyplot()
    t, p = np.ravel(y_true), np.ravel(y_pred)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.scatter(t, p, s=6, alpha=0.6)
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(title, fontsize=10)
    return save_png(fig, path)
