"""The main job on the tutorial's four people: train, then predict Emily and Frank."""

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


def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    model = train_people(args.seed)
    model_path = model.save(out / "people.json")
    X = np.array(list(HELD_OUT.values()))  # (2, 2) raw pounds and inches
    y = model.predict(X)[:, 0]
    result = {
        "model": str(model_path),
        "fingerprint": model.fingerprint(),
        "final_loss": model.training["final_loss"],
        "predictions": {
            name: {"weight_lb": x[0], "height_in": x[1], "p_female": float(p),
                   "class": model.classify(np.array([[p]]))[0]}
            for (name, x), p in zip(HELD_OUT.items(), y)
        },
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"trained {'-'.join(map(str, model.sizes))} on {people_csv().name}: "
          f"loss {model.training['final_loss']:.4g} after 1000 epochs -> {model_path}")
    for name, r in result["predictions"].items():
        print(f"  {name:6s} {r['weight_lb']:.0f} lb, {r['height_in']:.0f} in  ->  "
              f"P(female) = {r['p_female']:.3f}  ({'female' if r['class'] == 'F' else 'male'})")
    return 0
