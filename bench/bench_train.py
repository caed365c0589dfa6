"""Training speed, side by side in one run, one BLAS thread (prints a table).

1. The tutorial's 4 people, batch 1, 1000 epochs: boardnet vs a plain-Python loop of the
   tutorial's algorithm (Python floats, math.exp). Target: boardnet <= 1.5x plain Python.
2. 100,000 x 8 synthetic samples, BCE, 10 epochs, batch 32 and 256, 8-16-1 and 8-32-16-1:
   boardnet vs scikit-learn's MLPClassifier (sgd, logistic, no momentum) and PyTorch (when
   installed). Targets: 4x scikit-learn's samples/s at batch 32, 3x at 256, test accuracy
   no more than 0.5 points below scikit-learn's.

Run: python bench/bench_train.py [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from boardnet.data import Dataset  # noqa: E402
from boardnet.train import TrainConfig, train  # noqa: E402

PEOPLE = [((-2.0, -1.0), 1.0), ((25.0, 6.0), 0.0), ((17.0, 4.0), 0.0), ((-15.0, -6.0), 1.0)]


def plain_python_seed(seed: int) -> float:
    """The tutorial's loop as a person writes it: Python floats and math.exp."""
    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    r = random.Random(seed)
    w1, w2, w3, w4, w5, w6, b1, b2, b3 = (r.gauss(0, 1) for _ in range(9))
    lr = 0.1
    for _epoch in range(1000):
        for (x0, x1), y_true in PEOPLE:
            sum_h1 = w1 * x0 + w2 * x1 + b1
            h1 = sigmoid(sum_h1)
            sum_h2 = w3 * x0 + w4 * x1 + b2
            h2 = sigmoid(sum_h2)
            sum_o1 = w5 * h1 + w6 * h2 + b3
            o1 = sigmoid(sum_o1)
            d_ypred = -2 * (y_true - o1)
            d_o1 = o1 * (1 - o1)
            d_h1, d_h2 = h1 * (1 - h1), h2 * (1 - h2)
            dy_dh1, dy_dh2 = w5 * d_o1, w6 * d_o1
            w1 -= lr * d_ypred * dy_dh1 * x0 * d_h1
            w2 -= lr * d_ypred * dy_dh1 * x1 * d_h1
            b1 -= lr * d_ypred * dy_dh1 * d_h1
            w3 -= lr * d_ypred * dy_dh2 * x0 * d_h2
            w4 -= lr * d_ypred * dy_dh2 * x1 * d_h2
            b2 -= lr * d_ypred * dy_dh2 * d_h2
            w5 -= lr * d_ypred * h1 * d_o1
            w6 -= lr * d_ypred * h2 * d_o1
            b3 -= lr * d_ypred * d_o1
    return o1


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_seed(repeat: int) -> list[tuple]:
    X = np.array([x for x, _ in PEOPLE])
    y = np.array([[t] for _, t in PEOPLE])
    data = Dataset(X, y, ("x1", "x2"), "female", "binary", ("0", "1"))
    cfg = TrainConfig(hidden=(2,), epochs=1000, lr=0.1, batch_size=1, loss="mse", init="normal",
                      normalize="none", shuffle=False, seed=1)
    train(data, cfg)  # renders and compiles the unrolled epoch once, as any first run does
    rows = []
    # interleave the two so machine load hits both alike
    t_plain, t_board = [], []
    for _ in range(repeat):
        t_plain.append(best_of(lambda: plain_python_seed(1), 1))
        t_board.append(best_of(lambda: train(data, cfg), 1))
    p, b = min(t_plain), min(t_board)
    rows.append(("plain Python (math.exp)", p * 1e3, 1.0))
    rows.append(("boardnet train()", b * 1e3, b / p))
    return rows


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 8))
    w = np.array([1.0, -2.0, 0.5, 1.5, -1.0, 0.8, -0.3, 1.2])
    logit = X @ w + 1.5 * np.sin(2 * X[:, 0]) * X[:, 1] + 0.4 * rng.standard_normal(n)
    return X, (logit > 0).astype(np.float64)


def bench_batches(epochs: int, n: int, repeat: int) -> list[tuple]:
    X, y = synthetic(n, 0)
    Xte, yte = synthetic(20_000, 1)
    data = Dataset(X, y[:, None], tuple(f"f{i}" for i in range(8)), "y", "binary", ("0", "1"))
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        MLPClassifier = None
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None
    rows = []
    for hidden in [(16,), (32, 16)]:
        for batch in [32, 256]:
            arch = "-".join(map(str, (8, *hidden, 1)))
            cfg = TrainConfig(hidden=hidden, epochs=epochs, lr=0.1, batch_size=batch, loss="bce",
                              normalize="none", seed=0)
            tb = ts = float("inf")
            acc_s = tt = acc_t = float("nan")
            for _ in range(repeat):  # interleaved, best of `repeat`: load hits both alike
                t = time.perf_counter()
                model = train(data, cfg)
                tb = min(tb, time.perf_counter() - t)
                if MLPClassifier is not None:
                    clf = MLPClassifier(hidden_layer_sizes=hidden, activation="logistic", solver="sgd",
                                        momentum=0.0, nesterovs_momentum=False, learning_rate_init=0.1,
                                        batch_size=batch, max_iter=epochs, shuffle=True, random_state=0,
                                        tol=0.0, n_iter_no_change=epochs + 1, alpha=0.0)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        t = time.perf_counter()
                        clf.fit(X, y)
                        ts = min(ts, time.perf_counter() - t)
                    acc_s = float(clf.score(Xte, yte))
            acc_b = float(np.mean((model.predict(Xte)[:, 0] >= 0.5) == (yte >= 0.5)))
            if torch is not None:
                tt, acc_t = _torch(X, y, Xte, yte, hidden, batch, epochs)
            rate = n * epochs
            rows.append((arch, batch, rate / tb, acc_b, rate / ts, acc_s, (rate / tt) if tt == tt else float("nan"),
                         acc_t, ts / tb))
    return rows


def _torch(X, y, Xte, yte, hidden, batch, epochs):
    import torch

    torch.manual_seed(0)
    layers, n_in = [], 8
    for h in hidden:
        layers += [torch.nn.Linear(n_in, h), torch.nn.Sigmoid()]
        n_in = h
    net = torch.nn.Sequential(*layers, torch.nn.Linear(n_in, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    lossf = torch.nn.BCEWithLogitsLoss()
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y[:, None], dtype=torch.float32)
    t = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(Xt))
        for s in range(0, len(Xt), batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            loss = lossf(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    tt = time.perf_counter() - t
    with torch.no_grad():
        acc = float(((net(torch.tensor(Xte, dtype=torch.float32))[:, 0] > 0).numpy() == (yte > 0.5)).mean())
    return tt, acc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats and samples")
    args = ap.parse_args()
    with threadpool_limits(1):
        seed_rows = bench_seed(5 if args.quick else 15)
        batch_rows = bench_batches(epochs=3 if args.quick else 10, n=20_000 if args.quick else 100_000,
                                   repeat=1 if args.quick else 2)
    print("\n### Tutorial set, batch 1, 1000 epochs (best of runs, one thread)\n")
    print("| implementation | ms | x plain Python |")
    print("|---|---:|---:|")
    for name, ms, ratio in seed_rows:
        print(f"| {name} | {ms:.2f} | {ratio:.2f} |")
    print("\n### 100,000 x 8 synthetic, BCE, 10 epochs (samples/s, accuracy on 20,000 test rows; one thread)\n")
    print("| network | batch | boardnet | acc | scikit-learn | acc | PyTorch | acc | boardnet / sklearn |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for arch, batch, rb, ab, rs, as_, rt, at, ratio in batch_rows:
        torch_cells = f"{rt:,.0f} | {at:.4f}" if rt == rt else "not installed | -"
        print(f"| {arch} | {batch} | {rb:,.0f} | {ab:.4f} | {rs:,.0f} | {as_:.4f} | {torch_cells} | {ratio:.2f}x |")
    print(f"\nbest of interleaved runs; numpy {np.__version__}; boardnet trains in float32, "
          "scikit-learn in float64 (its default for float64 data)")


if __name__ == "__main__":
    main()
