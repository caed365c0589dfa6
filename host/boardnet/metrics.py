"""How good a model's outputs are against the true labels or values: numpy only.

    classification(k_true, Y, labels)   # class indices (n,), outputs (n, n_out), class names
    regression(y_true, Y)               # values (n,) or (n, n_out), outputs likewise

Class decisions are the model's (`Model.classify`): a binary model's output is the
probability of labels[1], the class when it is >= 0.5; a multi-class model has one sigmoid
per class and the class is the argmax. The definitions are scikit-learn's (tests compare with
it where it is installed): precision, recall and F1 of a class the data or the model never
names are 0; balanced accuracy is the mean recall over the classes present in the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Log loss clips each probability into [EPS, 1 - EPS] before the log: a float32 board's
# sigmoid is exact to 1.9e-7 and saturates to exactly 0 or 1 (a q15 board's to steps of
# 2^-15), so a probability nearer 0 than this says nothing more, and one confident mistake
# then costs -ln(1e-7) = 16.1 instead of infinity.
EPS = 1e-7


def decisions(Y: np.ndarray) -> np.ndarray:
    """Class index per row of outputs (n, n_out): binary p >= 0.5 -> 1; else the argmax."""
    Y = np.atleast_2d(Y)
    if Y.shape[1] == 1:
        return (Y[:, 0] >= 0.5).astype(np.int64)
    return np.argmax(Y, axis=1)


def probabilities(Y: np.ndarray) -> np.ndarray:
    """Outputs as a distribution over the classes, (n, n_classes): binary [1 - p, p]; one
    sigmoid per class, clipped to [EPS, 1 - EPS], divided by their sum."""
    Y = np.atleast_2d(np.asarray(Y, dtype=np.float64))
    if Y.shape[1] == 1:
        Y = np.column_stack([1.0 - Y[:, 0], Y[:, 0]])
    P = np.clip(Y, EPS, 1.0 - EPS)
    return P / P.sum(axis=1, keepdims=True)


def confusion(k_true: np.ndarray, k_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """C[i, j] = rows of true class i predicted as class j, (n_classes, n_classes)."""
    C = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(C, (np.asarray(k_true, dtype=np.int64), np.asarray(k_pred, dtype=np.int64)), 1)
    return C


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b elementwise, 0 where b is 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def classification(k_true: np.ndarray, Y: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class precision/recall/F1/support, macro averages,
    the confusion matrix (rows: true class, columns: predicted) and the log loss."""
    k_true = np.asarray(k_true, dtype=np.int64)
    n_classes = len(labels)
    k_pred = decisions(Y)
    C = confusion(k_true, k_pred, n_classes)
    tp = np.diag(C)
    support = C.sum(axis=1)  # true rows per class
    predicted = C.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = support > 0
    P = probabilities(Y)
    n = len(k_true)
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "log_loss": float(-np.mean(np.log(P[np.arange(n), k_true]))) if n else 0.0,
        "log_loss_clip": EPS,
        "classes": [
            {"label": label, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        ],
        "labels": list(labels),
        "confusion": C.tolist(),
    }


def regression(y_true: np.ndarray, Y: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE and R² (1 - residual / total sum of squares; with constant true values, 1
    for a perfect fit, else 0), averaged over the outputs."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)  # (n, n_out)
    Y = np.asarray(Y, dtype=np.float64).reshape(y_true.shape)
    err = Y - y_true
    ss_res = np.sum(err**2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    r2 = np.where(ss_tot > 0, 1.0 - _ratio(ss_res, ss_tot), np.where(ss_res == 0, 1.0, 0.0))
    return {
        "n": len(y_true),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.mean(np.sqrt(np.mean(err**2, axis=0)))),
        "r2": float(np.mean(r2)),
    }
