"""Predictions per second through the serve loop on the virtual MicroPython board,
one at a time against pipelined, and bytes on the wire per prediction.

    python bench/bench_serial.py [--n 1000]

"minimum" is the protocol's shortest exchange for the model (one-digit id); "payload" is
the float32 values alone (4 bytes each way per value), what a binary protocol would carry.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from boardnet import forms
from boardnet.commands.deploy import deploy_micropython
from boardnet.link import open_link
from boardnet.model import Model
from boardnet.virtual.wasm import MicroPythonSim


def models() -> list[Model]:
    r = np.random.default_rng(1)
    return [
        Model.from_arrays([[[1.5, -2.0], [0.5, 0.25]], [[1.0, -1.0]]], [[0.1, -0.2], [0.3]], name="seed"),
        Model.from_arrays([r.normal(size=(16, 8)), r.normal(size=(1, 16))],
                          [r.normal(size=16), r.normal(size=1)], name="wide"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many interleaved runs")
    args = ap.parse_args()
    rows = []
    with MicroPythonSim() as board:
        for model in models():
            form = forms.make(model)
            deploy_micropython(form, board.port)
            X = np.random.default_rng(0).uniform(-3, 3, size=(args.n, model.n_in)).astype(np.float32)
            with open_link(board.port) as link:
                per = link.time_per_inference().per
                rates = {"one": 0.0, "piped": 0.0}
                for _ in range(args.repeat):  # interleaved, best of: load hits both alike
                    for name, window in (("one", 1), ("piped", None)):
                        before = link.bytes_sent + link.bytes_received
                        t = time.perf_counter()
                        link.predict_many(form, X, window=window)
                        rates[name] = max(rates[name], args.n / (time.perf_counter() - t))
                        wire = (link.bytes_sent + link.bytes_received - before) / args.n
                minimum = (2 + 2 + 9 * model.n_in) + (3 + 1 + 9 * model.n_out + 1)
                payload = 4 * (model.n_in + model.n_out)
                rows.append((model, link.window, per, rates, wire, minimum, payload))
    print(f"{'model':<8}{'sizes':<9}{'window':>7}{'us/inf':>9}{'one/s':>9}{'piped/s':>9}{'speedup':>9}"
          f"{'B/pred':>8}{'minimum':>9}{'payload':>9}")
    for model, window, per, rates, wire, minimum, payload in rows:
        print(f"{model.name:<8}{'-'.join(map(str, model.sizes)):<9}{window:>7}{per:>9.1f}"
              f"{rates['one']:>9.0f}{rates['piped']:>9.0f}{rates['piped'] / rates['one']:>8.1f}x"
              f"{wire:>8.1f}{minimum:>9}{payload:>9}")


if __name__ == "__main__":
    main()
