"""The main job on the tutorial's four people: train on the laptop, export, put the model on
a board (a virtual MicroPython board unless --port names a real one), check that the board
predicts what the laptop predicts, and ask it about Emily and Frank."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .data import read_csv
from .resources import package_dir
from .train import TrainConfig, train

# The tutorial's settings: 2 hidden neurons, standard-normal initialisation, per-sample SGD
# with learning rate 0.1 for 1000 epochs on MSE, inputs shifted to sit near zero.
SEED_CONFIG = TrainConfig(
    hidden=(2,), epochs=1000, lr=0.1, batch_size=1, loss="mse", init="normal",
    normalize="center", shuffle=False, name="people",
)
HELD_OUT = {"Emily": (128.0, 63.0), "Frank": (155.0, 68.0)}  # pounds, inches


def people_csv() -> Path:
    return package_dir() / "datasets" / "people.csv"


def train_people(seed: int = 1):
    data = read_csv(people_csv(), "gender", features=["weight_lb", "height_in"], positive="F")
    return train(data, TrainConfig(**{**SEED_CONFIG.__dict__, "seed": seed}))


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    model = train_people(args.seed)
    model_path = model.save(out / "people.json")
    X = np.array(list(HELD_OUT.values()), dtype=np.float32)  # (2, 2) raw pounds and inches
    host = model.predict32(X)  # (2, 1): what a float32 board must answer
    result: dict = {
        "model": str(model_path),
        "fingerprint": model.fingerprint(),
        "final_loss": model.training["final_loss"],
        "predictions": {
            name: {"weight_lb": float(x[0]), "height_in": float(x[1]), "p_female": float(p[0]),
                   "class": model.classify(p[None, :])[0]}
            for (name, x), p in zip(HELD_OUT.items(), host)
        },
    }
    _say(args, f"1. trained {'-'.join(map(str, model.sizes))} on {people_csv().name}: loss "
               f"{model.training['final_loss']:.4g} after 1000 epochs -> {model_path}")
    for name, r in result["predictions"].items():
        _say(args, f"     {name:6s} {r['weight_lb']:.0f} lb, {r['height_in']:.0f} in  ->  "
                   f"P(female) = {r['p_female']:.3f}  ({'female' if r['class'] == 'F' else 'male'})")
    if not args.host_only:
        result.update(_on_board(model, args, out, X, host))
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    return 0 if result.get("check", {}).get("passed", True) else 1


def _on_board(model, args: argparse.Namespace, out: Path, X: np.ndarray, host: np.ndarray) -> dict:
    from . import export
    from .check import check_arrays, verify_board
    from .deploy import deploy_micropython
    from .link import open_link
    from .ports import resolve

    header = export.export_c(model, out / "c")
    module = export.export_micropython(model, out / "micropython")
    _say(args, f"2. exported {header} and {module}")
    port = args.port or "sim"
    with resolve(port, model) as where:
        if port != "sim":
            deploy_micropython(model, where.url)
        _say(args, f"3. deployed to {where.description} ({where.url}) with mpremote")
        report, _, _ = check_arrays(model, where.url, n=1000, seed=0)
        _say(args, "4. " + report.text().replace("\n", "\n   "))
        with open_link(where.url) as link:
            verify_board(model, link.info, where.url)
            board = link.predict_many(X)  # (2, 1)
    rows = {}
    _say(args, "5. the board on the held-out people:")
    for name, b, h in zip(HELD_OUT, board, host):
        same = b.tobytes() == h.tobytes()
        rows[name] = {"board": float(b[0]), "host": float(h[0]), "same_bits": same}
        _say(args, f"     {name:6s} board P(female) = {b[0]:.9g}, laptop {h[0]:.9g}"
                   f"{'  (same bits)' if same else ''}  -> {model.classify(b[None, :])[0]}")
    return {"exports": [str(header), str(module)], "port": where.url,
            "check": report.to_json(), "board_predictions": rows}
