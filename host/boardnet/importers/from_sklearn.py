"""scikit-learn: an `MLPClassifier` or `MLPRegressor`, alone or at the end of a `Pipeline`
after `StandardScaler` / `MinMaxScaler` steps (folded into the model's normalisation), from a
pickle or joblib file.

scikit-learn's MLP is row-vector: `a = f(a @ coefs_[l] + intercepts_[l])`, coefs_ (n_in, n_out);
boardnet's W is its transpose. Hidden activations logistic, tanh, relu map to sigmoid, tanh,
relu; identity hidden layers fold into the next layer. The output is `out_activation_`:
logistic with one unit (binary: P(classes_[1])), softmax (multi-class), identity (regression).
scikit-learn, joblib and their pickles are optional (`pip install 'boardnet[import]'`), so
they are imported where a file is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, UsageError
from ..model import Normalization
from .common import Act, Affine, Imported, build, layers_from_steps, provenance, relative_difference

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".pk")
HIDDEN = {"logistic": "sigmoid", "tanh": "tanh", "relu": "relu", "identity": "linear"}
SCALERS = ("StandardScaler", "MinMaxScaler")


def load(path: str | Path, trust_pickle: bool) -> Any:
    """The object in a pickle or joblib file; only with `trust_pickle`, since unpickling runs
    code the file names."""
    if not trust_pickle:
        raise UsageError(
            f"{path}: loading a pickle runs code stored in the file; give --trust-pickle if you "
            "trust where it came from"
        )
    try:
        import joblib
    except ImportError:
        raise UsageError("reading scikit-learn files needs joblib and scikit-learn: "
                         "pip install 'boardnet[import]'") from None
    try:
        return joblib.load(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except Exception as e:  # a pickle can raise anything while it loads
        raise ModelError(f"{path}: cannot load the pickle ({type(e).__name__}: {e})") from None


def from_estimator(obj: Any, path: str | Path, *, name: str, features: list[str] | None = None,
                   target: str | None = None) -> Imported:
    """A boardnet model of a fitted MLP or Pipeline(scalers..., MLP)."""
    import sklearn  # optional (the import extra); the file's loading needed it already

    what = str(path)
    steps = list(getattr(obj, "steps", [("model", obj)]))  # a Pipeline, or one estimator
    *before, (_, mlp) = steps
    kind = type(mlp).__name__
    if kind not in ("MLPClassifier", "MLPRegressor"):
        raise ModelError(f"{what}: a {kind} is not an MLP: boardnet imports MLPClassifier and "
                         "MLPRegressor (alone or at the end of a Pipeline)")
    if not hasattr(mlp, "coefs_"):
        raise ModelError(f"{what}: the {kind} is not fitted (no coefs_)")
    normalization, notes = _normalization(before, int(mlp.coefs_[0].shape[0]), what)

    hidden = HIDDEN.get(str(mlp.activation))
    if hidden is None:
        raise ModelError(f"{what}: unknown hidden activation {mlp.activation!r} (boardnet imports "
                         + ", ".join(HIDDEN) + ")")
    out = str(mlp.out_activation_)
    n_out = int(mlp.coefs_[-1].shape[1])
    if out == "logistic" and n_out > 1:
        raise ModelError(f"{what}: a multi-label classifier (one logistic output per label, each "
                         "decided alone) is not supported: boardnet decides classes by argmax")
    output = {"logistic": "sigmoid", "softmax": "softmax", "identity": "linear"}.get(out)
    if output is None:
        raise ModelError(f"{what}: unknown output activation {out!r}")
    layer_steps: list[Affine | Act] = []
    for k, (W, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        layer_steps.append(Affine(np.asarray(W, dtype=np.float64).T, np.asarray(b, dtype=np.float64)))
        layer_steps.append(Act(output if k == len(mlp.coefs_) - 1 else hidden))
    Ws, bs, acts, folded = layers_from_steps(layer_steps, what)
    notes += folded

    if kind == "MLPClassifier":
        labels = [str(c) for c in mlp.classes_]
        task = "binary" if output == "sigmoid" else "multiclass"
    else:
        labels, task = None, "regression"
    names = getattr(obj, "feature_names_in_", None)
    if names is None:
        names = getattr(steps[0][1], "feature_names_in_", None)
    if features is None and names is not None:
        features = [str(s) for s in names]
    dtype = str(np.asarray(mlp.coefs_[0]).dtype)
    estimator = " -> ".join(type(step).__name__ for _, step in steps if step not in (None, "passthrough"))
    model = build(
        Ws, bs, acts, name=name, features=features, labels=labels, task=task,
        target=target or "y", normalization=normalization, what=what,
        provenance=provenance(path, "scikit-learn", sklearn.__version__, estimator=estimator, dtype=dtype),
    )
    return Imported(model, notes, obj)


def _normalization(before: list, n_in: int, what: str) -> tuple[Normalization | None, list[str]]:
    """Scaler steps composed into one (x - shift) / scale."""
    shift, scale = np.zeros(n_in), np.ones(n_in)
    methods = []
    for step_name, step in before:
        if step is None or step == "passthrough":
            continue
        kind = type(step).__name__
        if kind not in SCALERS:
            raise ModelError(f"{what}: pipeline step {step_name!r} is a {kind}, not a scaler: boardnet "
                             "folds StandardScaler and MinMaxScaler into the model's normalisation and "
                             "imports nothing else before the MLP")
        if kind == "StandardScaler":
            s = np.zeros(n_in) if getattr(step, "mean_", None) is None else np.asarray(step.mean_, float)
            c = np.ones(n_in) if getattr(step, "scale_", None) is None else np.asarray(step.scale_, float)
            methods.append("standard")
        else:
            if getattr(step, "clip", False):
                raise ModelError(f"{what}: pipeline step {step_name!r}: a MinMaxScaler with clip=True "
                                 "is not an affine map; boardnet imports clip=False")
            # x * scale_ + min_ = (x - (-min_ / scale_)) / (1 / scale_)
            s = -np.asarray(step.min_, float) / np.asarray(step.scale_, float)
            c = 1.0 / np.asarray(step.scale_, float)
            methods.append("minmax")
        # ((x - shift) / scale - s) / c = (x - (shift + s scale)) / (scale c)
        shift, scale = shift + s * scale, scale * c
    if not methods:
        return None, []
    method = methods[0] if len(set(methods)) == 1 else "standard"
    notes = [f"{' then '.join(type(st).__name__ for _, st in before if st not in (None, 'passthrough'))} "
             "folded into the model's normalisation: boards take raw units"]
    return Normalization(method, shift, scale), notes


def verify(imported: Imported, n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The imported model's float64 outputs against the estimator's own (predict_proba, or
    predict for a regressor) on random inputs around the normalisation's range."""
    model, est = imported.model, imported.source
    rng = np.random.default_rng(seed)
    X = model.normalization.shift + model.normalization.scale * rng.normal(0, 2, (n, model.n_in))
    if model.task == "regression":
        theirs, against = np.asarray(est.predict(X), dtype=np.float64).reshape(n, -1), "predict"
    else:
        theirs, against = est.predict_proba(X), "predict_proba"
        if model.task == "binary":
            theirs = theirs[:, 1:]
    diff, rel = relative_difference(model.predict(X), theirs)
    return {"against": f"scikit-learn {against}", "n": n, "max_abs_difference": diff,
            "max_relative_difference": rel}
