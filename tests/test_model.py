"""The model file: exact round trip, atomic writes, and clear errors for bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from boardnet.errors import ModelError
from boardnet.model import Model, Normalization


def hand_set() -> Model:
    return Model.from_arrays(
        [[[0.1, -0.7], [1 / 3, 2.5e-8]], [[1.0, -1.0]]],
        [[0.2, -0.3], [0.05]],
        name="hand",
        features=["w", "h"],
        labels=["M", "F"],
        target="gender",
        normalization=Normalization("standard", np.array([135.0, 66.0]), np.array([7.0, 3.5])),
    )


def test_round_trip_is_exact(tmp_path):
    m = hand_set()
    path = m.save(tmp_path / "m.json")
    back = Model.load(path)
    assert back.sizes == m.sizes and back.labels == m.labels and back.features == m.features
    for a, b in zip(m.layers, back.layers):
        assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()
    assert back.normalization.shift.tolist() == m.normalization.shift.tolist()
    assert back.fingerprint() == m.fingerprint()
    X = np.array([[128.0, 63.0], [155.0, 68.0]])
    assert back.predict(X).tobytes() == m.predict(X).tobytes()


def test_fingerprint_changes_with_anything_that_changes_an_output():
    base = hand_set()
    W = [layer.W.copy() for layer in base.layers]
    W[1][0, 0] = np.nextafter(np.float32(1.0), np.float32(2.0))  # one float32 ulp
    nudged = Model.from_arrays(W, [layer.b for layer in base.layers], features=["w", "h"],
                               labels=["M", "F"], target="gender", normalization=base.normalization)
    assert nudged.fingerprint() != base.fingerprint()
    relabelled = Model.from_arrays([layer.W for layer in base.layers], [layer.b for layer in base.layers],
                                   features=["w", "h"], labels=["F", "M"], target="gender",
                                   normalization=base.normalization)
    assert relabelled.fingerprint() != base.fingerprint()
    assert base.with_name("other").fingerprint() == base.fingerprint()


def test_file_holds_what_the_contract_lists(tmp_path):
    d = json.loads(hand_set().save(tmp_path / "m.json").read_text())
    for key in ("schema", "boardnet_version", "sizes", "activations", "layers", "normalization",
                "features", "labels", "outputs", "fingerprint", "training", "task"):
        assert key in d


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    hand_set().save(tmp_path / "m.json")
    hand_set().save(tmp_path / "m.json")
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def _corrupt(tmp_path, edit) -> str:
    d = hand_set().to_dict()
    text = edit(d)
    p = tmp_path / "bad.json"
    p.write_text(text if isinstance(text, str) else json.dumps(d))
    return str(p)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: json.dumps(d)[:200], r"bad.json:\d+:\d+: not a complete JSON model file .*truncated"),
        (lambda d: d["layers"][0].update(W=[[1.0, 2.0]]), r"layer 1: W has shape \(1, 2\) and b \(2,\), expected \(2, 2\)"),
        (lambda d: d.update(schema=99), r"model schema 99 is newer than this boardnet understands"),
        (lambda d: json.dumps(d).replace("0.05", "NaN"), r"non-finite number NaN"),
        (lambda d: json.dumps(d).replace("0.05", "Infinity"), r"non-finite number Infinity"),
        (lambda d: d.update(format="pickle"), r"not a boardnet model file"),
        (lambda d: d["layers"][1].update(b=[0.06]), r"fingerprint .* does not match the weights"),
        (lambda d: d.update(activations=["sigmoid", "swish"]), r"layer 2: unknown activation 'swish'"),
        (lambda d: d.update(activations=["sigmoid", "relu"]), r"layer 2: an output layer is sigmoid, linear, softmax, not relu"),
        (lambda d: d.update(activations=["softmax", "sigmoid"]), r"layer 1: a hidden layer is sigmoid, tanh, relu, not softmax"),
    ],
)
def test_bad_model_files_are_clear_errors(tmp_path, edit, message):
    with pytest.raises(ModelError, match=message) as e:
        Model.load(_corrupt(tmp_path, edit))
    assert "\n" not in str(e.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        Model.load(tmp_path / "none.json")
