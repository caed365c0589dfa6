"""`boardnet demo`: the main job on the tutorial's four people: train on the laptop, export,
put the model on a board (a virtual MicroPython board unless a port is given), check that the
board predicts what the laptop predicts, and ask it about Emily and Frank."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import forms
from ..codegen import export_c, export_micropython
from ..data import read_csv
from ..errors import UsageError
from ..link.ports import resolve
from ..link.session import open_link
from ..resources import package_dir
from ..train import TrainConfig, train
from ..virtual import rp2040
from . import check
from .deploy import deploy_micropython
from .target import attach

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


def run_demo(out: str | Path, *, port: str | None = None, host_only: bool = False, seed: int = 1,
             say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """The demo; `say` is told each step as it happens. The result, with "check" when a board
    took part."""
    out = Path(out)
    model = train_people(seed)
    form = forms.make(model, "f32")
    model_path = model.save(out / "people.json")
    X = np.array(list(HELD_OUT.values()), dtype=np.float32)  # (2, 2) raw pounds and inches
    host = form.reference(form.inputs(X))  # (2, 1): what a float32 board must answer
    result: dict[str, Any] = {
        "model": str(model_path),
        "fingerprint": form.fingerprint,
        "final_loss": model.training["final_loss"],
        "predictions": {
            name: {"weight_lb": float(x[0]), "height_in": float(x[1]), "p_female": float(p[0]),
                   "class": model.classify(p[None, :])[0]}
            for (name, x), p in zip(HELD_OUT.items(), host)
        },
    }
    say(f"1. trained {'-'.join(map(str, model.sizes))} on {people_csv().name}: loss "
        f"{model.training['final_loss']:.4g} after 1000 epochs -> {model_path}")
    for name, r in result["predictions"].items():
        say(f"     {name:6s} {r['weight_lb']:.0f} lb, {r['height_in']:.0f} in  ->  "
            f"P(female) = {r['p_female']:.3f}  ({'female' if r['class'] == 'F' else 'male'})")
    if not host_only:
        if port is None:
            port, why = default_port()
            say(f"   (the board: {why})")
        result.update(_on_board(form, port, out, X, host, say))
    return result


def default_port() -> tuple[str, str]:
    """The demo's virtual board, and why: the emulated Pico running the official MicroPython
    firmware when one is configured, else the MicroPython WebAssembly board."""
    try:
        rp2040.micropython_uf2()
        rp2040.bootrom()
    except UsageError:
        return "sim", (f"the MicroPython WebAssembly board; set {rp2040.FIRMWARE_ENV} and "
                       f"{rp2040.BOOTROM_ENV} for an emulated Pico")
    return "sim-pico", f"an emulated Raspberry Pi Pico running {rp2040.micropython_uf2().name}"


def _on_board(form, port: str, out: Path, X: np.ndarray, host: np.ndarray, say) -> dict[str, Any]:
    model = form.model
    header = export_c(form, out / "c")
    module = export_micropython(form, out / "micropython")
    say(f"2. exported {header} and {module}")
    target = resolve(port)
    with attach(target, form) as board_at:
        if target.virtual is None:
            deploy_micropython(form, board_at.url)
        say(f"3. deployed to {board_at.description} ({board_at.url}) with mpremote")
        report = check.run_on(board_at, form, board_at.url, n=1000, seed=0).report
        say("4. " + report.text().replace("\n", "\n   "))
        with open_link(board_at.url) as link:
            assert link.info is not None
            check.verify_board(form, link.info, board_at.url)
            board = link.predict_many(form, form.inputs(X))  # (2, 1)
    rows = {}
    say("5. the board on the held-out people:")
    for name, b, h in zip(HELD_OUT, board, host):
        same = b.tobytes() == h.tobytes()
        rows[name] = {"board": float(b[0]), "host": float(h[0]), "same_bits": same}
        say(f"     {name:6s} board P(female) = {b[0]:.9g}, laptop {h[0]:.9g}"
            f"{'  (same bits)' if same else ''}  -> {model.classify(b[None, :])[0]}")
    return {"exports": [str(header), str(module)], "port": board_at.url,
            "check": report.to_json(), "board_predictions": rows}
