"""Training: hand-derived backpropagation and stochastic gradient descent.

For a layer l with inputs a[l-1], pre-activations z[l] = a[l-1] W[l]^T + b[l] and
activations a[l] = f(z[l]), and the error signal delta[l] = dL/dz[l]:

    output:  delta[L] = dL/da[L] * f'(z[L])      (MSE: 2 (a - y) / n_out * f'(z);
                                                  BCE with a sigmoid: (a - y) / n_out;
                                                  cross-entropy with a softmax: a - y)
    hidden:  delta[l] = (delta[l+1] W[l+1]) * f'(z[l])
    grads:   dL/dW[l] = delta[l]^T a[l-1],   dL/db[l] = sum over the batch of delta[l]

averaged over the batch, and SGD takes w <- w - lr dL/dw after every batch. Each f' is
written with the activation's own output a = f(z) (activations.py, `backprop_`):

    sigmoid  f' = a (1 - a)        tanh  f' = 1 - a^2        relu  f' = 1 if a > 0 else 0
    softmax  dL/dz_i = a_i (g_i - sum_j g_j a_j) for g = dL/da (the Jacobian's product)

BCE loss is the mean over samples and outputs of -(y log a + (1 - y) log(1 - a)); the
cross-entropy of a softmax is the mean over samples of -sum_k y_k log a_k, whose gradient
through the softmax is a - y (the BCE's through a sigmoid likewise).

Two engines compute exactly this. At batch size 1 on a small network the cost of a step is
Python's per-call overhead, so boardnet renders straight-line code for the network
(templates/sgd_epoch.py.j2), as fast as the tutorial's hand-written loop. Everything else
runs on numpy with preallocated buffers and one flat parameter vector, so the update is a
single in-place operation.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from .activations import ACTIVATIONS, HIDDEN, Activation, lookup
from .data import Dataset, stratified_split
from .errors import DataError, UsageError
from .model import Layer, Model, Normalization
from .templating import render

LOSSES = ("mse", "bce", "ce")  # ce: cross-entropy of a softmax output
OUTPUTS = ("auto", "sigmoid", "linear", "softmax")  # auto: linear for regression, else sigmoid
INITS = ("xavier", "normal")
SCALAR_ENGINE_MAX_PARAMS = 64  # above this, numpy's per-call overhead pays for itself


@dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, ...] = (8,)
    epochs: int = 1000
    lr: float = 0.1
    batch_size: int = 1
    loss: str = "mse"
    activation: str = "sigmoid"  # hidden layers: sigmoid | tanh | relu
    output: str = "auto"  # auto | sigmoid | linear | softmax
    init: str = "xavier"  # xavier (Glorot uniform) | normal (the tutorial's standard normal)
    normalize: str = "standard"  # standard | center | none
    shuffle: bool = True
    validation: float = 0.0  # fraction held out, stratified by class
    seed: int = 0
    engine: str = "auto"  # auto | scalar | numpy
    dtype: str = "float32"  # the numpy engine's arithmetic; boards run float32 anyway
    name: str = "model"


@dataclass
class History:
    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


class Diverged(DataError):
    pass


def output_of(cfg: TrainConfig, data: Dataset) -> Activation:
    """The output layer's activation: --output, or linear for regression, else sigmoid."""
    if cfg.output == "auto":
        return ACTIVATIONS["linear" if data.task == "regression" else "sigmoid"]
    return ACTIVATIONS[cfg.output]


def check_config(cfg: TrainConfig, data: Dataset) -> None:
    if cfg.loss not in LOSSES:
        raise UsageError(f"--loss must be one of {', '.join(LOSSES)}")
    hidden = lookup(cfg.activation)
    if hidden is None or not hidden.hidden:
        raise UsageError(f"--activation must be one of {', '.join(HIDDEN)}")
    if cfg.output not in OUTPUTS:
        raise UsageError(f"--output-activation must be one of {', '.join(OUTPUTS)}")
    output = output_of(cfg, data)
    if output == "softmax" and data.task != "multiclass":
        raise UsageError("--output-activation softmax needs a target with 3 or more classes")
    if output == "softmax" and cfg.loss != "ce":
        raise UsageError("--output-activation softmax trains with --loss ce (cross-entropy)")
    if cfg.loss == "ce" and output != "softmax":
        raise UsageError("--loss ce is the cross-entropy of a softmax output: "
                         "add --output-activation softmax")
    if cfg.loss == "bce" and output != "sigmoid":
        raise UsageError("--loss bce needs a sigmoid output; use mse for --regression, "
                         "ce for --output-activation softmax")
    if data.task != "regression" and output == "linear":
        raise UsageError("--output-activation linear is for --regression; "
                         "a classifier's output is sigmoid or softmax")
    if cfg.init not in INITS:
        raise UsageError(f"--init must be one of {', '.join(INITS)}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or any(h < 1 for h in cfg.hidden):
        raise UsageError("--epochs, --batch-size and --hidden sizes must be positive integers")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise UsageError("--lr must be a positive number")
    if not 0 <= cfg.validation < 1:
        raise UsageError("--val must be a fraction in [0, 1)")


def normalization_for(X: np.ndarray, method: str) -> Normalization:
    n_in = X.shape[1]
    if method == "none":
        return Normalization.identity(n_in)
    shift = X.mean(axis=0)
    if method == "center":
        return Normalization("center", shift, np.ones(n_in))
    if method == "standard":
        scale = X.std(axis=0)
        scale[~(scale > 0)] = 1.0  # a constant column: harmless, not a division by zero
        return Normalization("standard", shift, scale)
    raise UsageError("--normalize must be standard, center or none")


def init_params(sizes: list[int], init: str, rng: np.random.Generator) -> list[np.ndarray]:
    """[W1, b1, W2, b2, ...], W of shape (n_out, n_in)."""
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        if init == "normal":
            params += [rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)]
        else:
            limit = math.sqrt(6.0 / (n_in + n_out))
            params += [rng.uniform(-limit, limit, (n_out, n_in)), np.zeros(n_out)]
    return params


# ---- the scalar engine: batch size 1, straight-line code -------------------------------
_compiled: dict[tuple, Callable] = {}


def _scalar_epoch_fn(sizes: list[int], loss: str, output: str, hidden: str = "sigmoid") -> Callable:
    key = (tuple(sizes), loss, output, hidden)
    if key not in _compiled:
        names = []
        for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
            names += [f"w{layer}_{i}_{j}" for i in range(n_out) for j in range(n_in)]
            names += [f"b{layer}_{i}" for i in range(n_out)]
        source = render(
            "sgd_epoch.py.j2", sizes=sizes, loss=loss, output=output, hidden=hidden, params=names
        )
        namespace: dict = {}
        exec(compile(source, f"<boardnet sgd {'-'.join(map(str, sizes))}>", "exec"), namespace)
        _compiled[key] = namespace["run_epoch"]
    return _compiled[key]


# ---- the numpy engine: any batch size -----------------------------------------------------
class _Net:
    """Parameters in one flat vector with per-layer views, gradients likewise, and the
    activation buffers of the last batch size seen, so a step allocates almost nothing."""

    def __init__(self, sizes: list[int], params: list[np.ndarray], dtype=np.float64,
                 hidden: str = "sigmoid", output: str = "sigmoid") -> None:
        self.sizes = sizes
        # each layer's activation (activations.py): hidden ones, then the output's
        self.acts = [ACTIVATIONS[hidden]] * (len(sizes) - 2) + [ACTIVATIONS[output]]
        self.theta = np.concatenate([p.ravel() for p in params]).astype(dtype)
        self.grad = np.zeros_like(self.theta)
        self.W, self.b, self.gW, self.gb = [], [], [], []
        at = 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            for views, flat in ((self.W, self.theta), (self.gW, self.grad)):
                views.append(flat[at:at + n_out * n_in].reshape(n_out, n_in))
            at += n_out * n_in
            for views, flat in ((self.b, self.theta), (self.gb, self.grad)):
                views.append(flat[at:at + n_out])
            at += n_out
        self._m = -1
        self._ones = np.ones(0, dtype)

    def buffers(self, m: int) -> list[np.ndarray]:
        """Activation buffers (m, n) per layer after the input, reused between batches."""
        if m != self._m:
            self._a = [np.empty((m, n), self.theta.dtype) for n in self.sizes[1:]]
            self._t = [np.empty((m, n), self.theta.dtype) for n in self.sizes[1:]]
            self._m = m
        return self._a

    def ones(self, m: int) -> np.ndarray:
        if len(self._ones) != m:
            self._ones = np.ones(m, self.theta.dtype)
        return self._ones

    def params(self) -> list[np.ndarray]:
        out = []
        for W, b in zip(self.W, self.b):
            out += [W.astype(np.float64), b.astype(np.float64)]
        return out


def _forward(net: _Net, x: np.ndarray, reuse: bool = True) -> list[np.ndarray]:
    a = [x]
    for k, (W, b) in enumerate(zip(net.W, net.b)):
        z = net.buffers(len(x))[k] if reuse else np.empty((len(x), W.shape[0]), W.dtype)
        np.matmul(a[-1], W.T, out=z)  # (batch, n_out)
        z += b
        a.append(net.acts[k].train_(z))  # in place
    return a


def _gradient(
    net: _Net, x: np.ndarray, y: np.ndarray, loss: str,
    scale: float = 1.0, err: np.ndarray | None = None,
) -> np.ndarray:
    """Backpropagate one batch into net.grad: `scale` times the batch-mean gradient (the
    trainer passes the learning rate, so the update is one subtraction). The output error
    a - y is written to `err` (the caller's epoch buffer, from which the epoch's loss is
    computed in one go) and returned."""
    m, n_out = y.shape
    a = _forward(net, x)
    out = a[-1]
    err = np.subtract(out, y, out=err)  # (m, n_out)
    delta = net._t[-1]
    if loss == "mse":
        np.multiply(err, 2.0 * scale / (n_out * m), out=delta)
        net.acts[-1].backprop_(delta, out)
    else:  # BCE through a sigmoid, cross-entropy through a softmax: a - y
        np.multiply(err, scale / (_outputs_averaged(loss, n_out) * m), out=delta)
    ones = net.ones(m)  # (m,): the bias gradients as a matrix product, far faster than sum(axis=0)
    for k in range(len(net.W) - 1, -1, -1):
        np.matmul(delta.T, a[k], out=net.gW[k])
        np.matmul(ones, delta, out=net.gb[k])
        if k:
            h, back = a[k], net._t[k - 1]
            if delta.shape[1] == 1:  # an outer product: broadcasting beats a rank-1 matmul
                np.multiply(delta, net.W[k], out=back)
            else:
                np.matmul(delta, net.W[k], out=back)  # (m, n_in of layer k)
            delta = net.acts[k - 1].backprop_(back, h)  # back * f'(z), in place
    return err


def _outputs_averaged(loss: str, n_out: int) -> int:
    """MSE and BCE are means over the outputs too; a softmax's cross-entropy is one number
    per sample."""
    return 1 if loss == "ce" else n_out


def _loss_from_error(err: np.ndarray, y: np.ndarray, loss: str) -> float:
    """The loss summed over samples and outputs, from the output error a - y."""
    if loss == "mse":
        return float(np.einsum("ij,ij->", err, err, dtype=np.float64))
    if loss == "ce":  # -log a of the true class: a - y + y there
        p = np.einsum("ij,ij->i", err + y, y, dtype=np.float64)
        return -float(np.log(np.maximum(p, 1e-30)).sum())
    p = err + (2.0 * y - 1.0)  # a - y + 2y - 1 = -(1 - y - a): minus the true class's probability
    np.abs(p, out=p)
    np.maximum(p, 1e-30, out=p)
    return -float(np.log(p, out=p).sum(dtype=np.float64))


def _numpy_epoch(net: _Net, X, Y, cfg: TrainConfig) -> float:
    """One epoch; X, Y already in epoch order, so every batch is a contiguous slice."""
    E = np.empty_like(Y)  # (n, n_out): a - y of every sample as it was trained on
    for start in range(0, len(X), cfg.batch_size):
        stop = start + cfg.batch_size
        _gradient(net, X[start:stop], Y[start:stop], cfg.loss, cfg.lr, E[start:stop])
        net.theta -= net.grad
    return _loss_from_error(E, Y, cfg.loss)


def train(data: Dataset, cfg: TrainConfig, progress: bool = False) -> Model:
    """Train a model on `data`; the same config and data give bit-identical weights."""
    check_config(cfg, data)
    rng = np.random.default_rng(cfg.seed)
    sizes = [data.X.shape[1], *cfg.hidden, data.y.shape[1]]
    output = output_of(cfg, data)
    hidden = ACTIVATIONS[cfg.activation]
    norm = normalization_for(data.X, cfg.normalize)

    train_idx, val_idx = stratified_split(
        None if data.task == "regression" else data.classes, len(data.X), cfg.validation, rng
    )
    X = norm.apply(data.X)  # (n, n_in)
    Y = data.y
    y_shift, y_scale = 0.0, 1.0
    if data.task == "regression" and cfg.normalize != "none":
        # train on a standardised target; the scale is folded back into the last layer
        y_shift = float(Y[train_idx].mean())
        y_scale = float(Y[train_idx].std()) or 1.0
        Y = (Y - y_shift) / y_scale
    params = init_params(sizes, cfg.init, rng)

    n_params = sum(p.size for p in params)
    engine = cfg.engine
    scalar_ok = hidden.scalar_engine and output.scalar_engine
    if engine == "auto":
        engine = ("scalar" if cfg.batch_size == 1 and n_params <= SCALAR_ENGINE_MAX_PARAMS and scalar_ok
                  else "numpy")
    if engine == "scalar" and not scalar_ok:
        raise UsageError(f"the scalar engine has no {output} output; use the numpy engine")
    dtype = np.float64 if engine == "scalar" else np.dtype(cfg.dtype)
    net = _Net(sizes, params, dtype, hidden, output)
    if len(val_idx):
        Xt, Yt = X[train_idx].astype(dtype), Y[train_idx].astype(dtype)
    else:  # no split: skip the gather
        Xt, Yt = X.astype(dtype, copy=False), Y.astype(dtype, copy=False)
    Xv, Yv = X[val_idx].astype(dtype), Y[val_idx].astype(dtype)
    if engine == "scalar":
        if cfg.batch_size != 1:
            raise UsageError("the scalar engine trains with --batch-size 1 only")
        run_epoch = _scalar_epoch_fn(sizes, cfg.loss, output, hidden)
        theta = net.theta.tolist()
        Xl, Yl = Xt.tolist(), Yt.tolist()

    history = History()
    bar = None
    if progress:
        bar = tqdm(total=cfg.epochs, unit="epoch", leave=False, dynamic_ncols=True)
    started = time.perf_counter()
    n_train, n_out = len(Xt), sizes[-1]
    order = np.arange(n_train)
    order_list = order.tolist()
    # overflow on the way to a diverging loss is reported below as one clear error
    quiet = np.errstate(over="ignore", invalid="ignore")
    try:
        quiet.__enter__()
        for epoch in range(1, cfg.epochs + 1):
            if cfg.shuffle:
                order = rng.permutation(n_train)
                order_list = order.tolist() if engine == "scalar" else order
            if engine == "scalar":
                theta, total = run_epoch(Xl, Yl, order_list, cfg.lr, theta)
            else:
                Xe, Ye = (Xt[order], Yt[order]) if cfg.shuffle else (Xt, Yt)
                total = _numpy_epoch(net, Xe, Ye, cfg)
            loss = total / (n_train * _outputs_averaged(cfg.loss, n_out))
            if not math.isfinite(loss):
                raise Diverged(
                    f"training diverged at epoch {epoch} (loss is {loss}); "
                    f"try a smaller learning rate than --lr {cfg.lr:g}"
                )
            history.loss.append(loss)
            if len(val_idx):
                if engine == "scalar":
                    net.theta[:] = theta
                a = _forward(net, Xv, reuse=False)[-1]
                history.val_loss.append(_loss_from_error(a - Yv, Yv, cfg.loss)
                                        / (len(Xv) * _outputs_averaged(cfg.loss, n_out)))
                if data.task != "regression":
                    history.val_accuracy.append(_accuracy(a, Yv))
            if bar is not None:
                bar.update(1)
                if epoch % 10 == 0 or epoch == cfg.epochs:
                    post = {"loss": f"{loss:.4g}"}
                    if history.val_loss:
                        post["val_loss"] = f"{history.val_loss[-1]:.4g}"
                    bar.set_postfix(post, refresh=False)
    finally:
        quiet.__exit__(None, None, None)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    if engine == "scalar":
        net.theta[:] = theta
    params = net.params()
    if y_scale != 1.0 or y_shift != 0.0:
        params[-2] = params[-2] * y_scale
        params[-1] = params[-1] * y_scale + y_shift

    n_layers = len(sizes) - 1
    layers = tuple(
        Layer(params[2 * k], params[2 * k + 1], output if k == n_layers - 1 else hidden)
        for k in range(n_layers)
    )
    model = Model(
        name=cfg.name,
        layers=layers,
        features=data.features,
        normalization=norm,
        task=data.task,
        target=data.target,
        labels=data.labels,
    )
    summary = {
        "config": {**asdict(cfg), "hidden": list(cfg.hidden)},
        "engine": engine,
        "data": data.source,
        "n_train": int(n_train),
        "n_val": int(len(val_idx)),
        "seconds": round(seconds, 4),
        "input_min": data.X.min(axis=0).tolist(),  # the range checks draw inputs from
        "input_max": data.X.max(axis=0).tolist(),
        "final_loss": history.loss[-1],
        "history": {k: [float(f"{v:.6g}") for v in vals] for k, vals in asdict(history).items()},
    }
    if data.task != "regression":
        with np.errstate(over="ignore"):
            summary["train_accuracy"] = _accuracy(_forward(net, Xt, reuse=False)[-1], Yt)
    if len(val_idx):
        summary["val_loss"] = history.val_loss[-1]
        if history.val_accuracy:
            summary["val_accuracy"] = history.val_accuracy[-1]
    warning = learned_nothing(model, data.X[train_idx], Yt.astype(np.float64), history.loss, cfg,
                              summary.get("train_accuracy"))
    if warning:
        summary["warning"] = warning
        warnings.warn(warning, stacklevel=2)
    return Model(**{**model.__dict__, "training": summary})


SATURATED = 0.01  # a sigmoid within this of 0 or 1 passes almost no gradient (f' < 0.01)


def constant_loss(Y: np.ndarray, loss: str) -> float:
    """The loss of the best constant prediction (every row gets the column means of Y): the
    loss of a model that has learned nothing about its inputs."""
    mean = Y.mean(axis=0)  # (n_out,)
    if loss == "mse":
        return float(np.mean((Y - mean) ** 2))
    p = np.clip(mean, 1e-12, 1 - 1e-12)
    if loss == "ce":  # the entropy of the class frequencies
        return float(-np.sum(p * np.log(p)))
    return float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p))))


def learned_nothing(model: Model, X: np.ndarray, Y: np.ndarray, loss: list[float], cfg: TrainConfig,
                    accuracy: float | None) -> str | None:
    """A warning when training ended no better than a constant (the loss of predicting the
    class frequencies for every row, or a classifier's accuracy at the majority class's
    share), with what the hidden units and the loss curve say to try; else None.
    X: raw training inputs (n, n_in); Y: the targets as trained on (n, n_out)."""
    baseline = constant_loss(Y, cfg.loss)
    majority = None
    if model.task != "regression" and accuracy is not None:
        counts = Y.sum(axis=0) if Y.shape[1] > 1 else np.array([len(Y) - Y[:, 0].sum(), Y[:, 0].sum()])
        majority = float(counts.max() / len(Y))
    no_better = loss[-1] >= 0.99 * baseline
    at_majority = majority is not None and accuracy is not None and accuracy <= majority + 1e-12
    if not (no_better or at_majority):
        return None
    what = (f"training learned nothing: the loss ended at {loss[-1]:.4g}, "
            f"{'no better than' if no_better else 'against'} {baseline:.4g} for predicting "
            + ("the mean" if model.task == "regression" else "the class frequencies") + " on every row")
    if at_majority:
        what += (f", and train accuracy {accuracy:.3f} is no better than always answering the majority "
                 f"class ({majority:.3f})")
    traced = model.forward(X, trace=True)[1:-1]
    hidden = np.concatenate([layer.activation.saturated(a).ravel() for layer, a in zip(model.layers, traced)]
                            ) if traced else np.zeros(0)
    saturated = float(np.mean(hidden)) if hidden.size else 0.0
    biggest = max(float(np.abs(layer.W).max()) for layer in model.layers)
    half = loss[len(loss) // 2]
    flat = abs(loss[-1] - half) <= 0.01 * half
    if saturated >= 0.5:
        hint = (f"{saturated:.0%} of the hidden activations are saturated ({_saturated_text(model)}, "
                f"largest |W| {biggest:.3g}), so almost no gradient flows: try a smaller learning rate "
                f"than --lr {cfg.lr:g}" + (" or --normalize standard" if cfg.normalize == "none" else ""))
    elif flat:
        hint = (f"the loss is flat over the second half of the epochs: try another --lr than {cfg.lr:g}, "
                "more hidden units or --loss bce")
    else:
        hint = f"the loss is still falling: try more epochs than --epochs {cfg.epochs}"
    return f"{what}; {hint}"


def _saturated_text(model: Model) -> str:
    act = model.layers[0].activation
    return ("dead: 0 for every row" if act == "relu" else f"within {SATURATED} of 0 or 1" if act == "sigmoid"
            else "within 0.005 of -1 or 1")


def _accuracy(a: np.ndarray, y: np.ndarray) -> float:
    if y.shape[1] == 1:
        return float(np.mean((a[:, 0] >= 0.5) == (y[:, 0] >= 0.5)))
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(y, axis=1)))


def gradients(
    params: list[np.ndarray], x: np.ndarray, y: np.ndarray, loss: str, output: str = "sigmoid",
    hidden: str = "sigmoid",
) -> list[np.ndarray]:
    """dL/dparam for a batch by backpropagation, as [dW1, db1, ...] (tests and tools)."""
    sizes = [params[0].shape[1]] + [W.shape[0] for W in params[0::2]]
    net = _Net(sizes, params, hidden=hidden, output=output)
    with np.errstate(over="ignore"):
        _gradient(net, np.atleast_2d(x), np.atleast_2d(y), loss)
    net.theta[:] = net.grad
    return net.params()


def loss_value(
    params: list[np.ndarray], x: np.ndarray, y: np.ndarray, loss: str, output: str = "sigmoid",
    hidden: str = "sigmoid",
) -> float:
    """L for a batch (mean over samples and outputs; for ce over samples), computed directly
    from z for BCE and cross-entropy, with the float64 activations of the model."""
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    a = x
    for k in range(0, len(params), 2):
        z = a @ params[k].T + params[k + 1]
        a = ACTIVATIONS[output if k == len(params) - 2 else hidden].float64(z)
    if loss == "bce":
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    if loss == "ce":
        m = z.max(axis=1, keepdims=True)
        log_a = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        return float(np.mean(-(y * log_a).sum(axis=1)))
    return float(np.mean((a - y) ** 2))
