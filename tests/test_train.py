"""The trainer: the tutorial's worked example, gradients against finite differences, the
tutorial's training run, reproducibility and divergence."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from boardnet.data import Dataset
from boardnet.model import sigmoid
from boardnet.train import Diverged, TrainConfig, gradients, loss_value, train

# The tutorial's shifted inputs: x1 = weight - 135, x2 = height - 66; 1 = female.
PEOPLE_X = np.array([[-2.0, -1.0], [25.0, 6.0], [17.0, 4.0], [-15.0, -6.0]])
PEOPLE_Y = np.array([[1.0], [0.0], [0.0], [1.0]])
EMILY, FRANK = [-7.0, -3.0], [20.0, 2.0]


def people(**kw) -> Dataset:
    return Dataset(PEOPLE_X, PEOPLE_Y, ("x1", "x2"), "female", "binary", ("0", "1"), **kw)


def seed_config(seed: int, **kw) -> TrainConfig:
    base = dict(hidden=(2,), epochs=1000, lr=0.1, batch_size=1, loss="mse", init="normal",
                normalize="none", seed=seed)
    return TrainConfig(**{**base, **kw})


def test_worked_example_forward_and_dw1():
    W1, b1, W2, b2 = np.ones((2, 2)), np.zeros(2), np.ones((1, 2)), np.zeros(1)
    x, y = np.array([[-2.0, -1.0]]), np.array([[1.0]])
    h = sigmoid(x @ W1.T + b1)
    o = sigmoid(h @ W2.T + b2)
    assert h[0] == pytest.approx([0.0474, 0.0474], abs=5e-5)
    assert o[0, 0] == pytest.approx(0.524, abs=5e-4)
    dW1 = gradients([W1, b1, W2, b2], x, y, "mse")[0]
    assert dW1[0, 0] == pytest.approx(0.02147, abs=1e-5)
    assert dW1[0, 0] == pytest.approx(0.02146953, abs=1e-8)


def _finite_differences(params, x, y, loss, output, h=1e-6):
    fd = []
    for p in params:
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            up = loss_value(params, x, y, loss, output)
            p[idx] = old - h
            down = loss_value(params, x, y, loss, output)
            p[idx] = old
            g[idx] = (up - down) / (2 * h)
        fd.append(g)
    return fd


@pytest.mark.parametrize("sizes", [[2, 2, 1], [3, 5, 4, 2]])
@pytest.mark.parametrize("loss,output", [("mse", "sigmoid"), ("bce", "sigmoid"), ("mse", "linear")])
def test_gradients_match_central_differences(sizes, loss, output):
    rng = np.random.default_rng(7)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(0, 0.8, (n_out, n_in)), rng.normal(0, 0.5, n_out)]
    x = rng.normal(0, 1.0, (5, sizes[0]))
    y = (rng.random((5, sizes[-1])) > 0.5).astype(float) if output == "sigmoid" else rng.normal(0, 1, (5, sizes[-1]))
    analytic = gradients([p.copy() for p in params], x, y, loss, output)
    numeric = _finite_differences(params, x, y, loss, output)
    for g, fd in zip(analytic, numeric):
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-10)


def test_seed_settings_train_emily_female_frank_male_for_19_of_20_seeds():
    good = 0
    for seed in range(20):
        model = train(people(), seed_config(seed))
        emily, frank = model.predict(np.array([EMILY, FRANK]))[:, 0]
        good += emily > 0.9 and frank < 0.1
    assert good >= 19


def test_the_loss_falls_steadily():
    loss = train(people(), seed_config(3)).training["history"]["loss"]
    assert len(loss) == 1000
    assert loss[-1] < 0.01 < loss[0]
    assert all(later <= earlier * 1.05 for earlier, later in zip(loss[::100], loss[100::100]))


@pytest.mark.parametrize("kw", [{}, {"batch_size": 2, "shuffle": True}, {"engine": "numpy"}])
def test_same_seed_same_weights(kw):
    a = train(people(), seed_config(5, **kw))
    b = train(people(), seed_config(5, **kw))
    for la, lb in zip(a.layers, b.layers):
        assert la.W.tobytes() == lb.W.tobytes() and la.b.tobytes() == lb.b.tobytes()
    c = train(people(), seed_config(6, **kw))
    assert a.layers[0].W.tobytes() != c.layers[0].W.tobytes()


def test_scalar_and_numpy_engines_compute_the_same_sgd():
    a = train(people(), seed_config(2, engine="scalar", shuffle=True))
    b = train(people(), seed_config(2, engine="numpy", shuffle=True, dtype="float64"))
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_allclose(la.W, lb.W, rtol=1e-9, atol=1e-12)
    assert a.training["engine"] == "scalar" and b.training["engine"] == "numpy"


def test_sigmoid_is_silent_and_saturates_at_large_inputs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = sigmoid(np.array([-1e4, -100.0, 0.0, 100.0, 1e4]))
    assert s.tolist() == [0.0, pytest.approx(3.72e-44, rel=1e-2), 0.5, 1.0, 1.0]


def test_divergence_names_the_epoch_and_suggests_a_smaller_rate():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (40, 3))
    data = Dataset(X, (X @ [1.0, 2.0, 3.0])[:, None] * 1e3, ("a", "b", "c"), "t", "regression", ())
    with pytest.raises(Diverged, match=r"diverged at epoch \d+.*smaller learning rate than --lr 50"):
        train(data, TrainConfig(hidden=(4,), epochs=50, lr=50.0, normalize="none", batch_size=4))


def _blobs(n_classes: int, n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (n_classes, 3))
    k = rng.integers(0, n_classes, n)
    return centres[k] + rng.normal(0, 1, (n, 3)), k


def test_multiclass_one_sigmoid_per_class_with_stratified_validation():
    X, k = _blobs(3)
    data = Dataset(X * 10 + 500, np.eye(3)[k], ("a", "b", "c"), "kind", "multiclass", ("p", "q", "r"))
    model = train(data, TrainConfig(hidden=(8,), epochs=60, lr=0.5, batch_size=8, loss="bce", validation=0.2))
    t = model.training
    assert model.sizes == [3, 8, 3] and model.n_out == 3
    assert t["n_val"] == pytest.approx(60, abs=2)
    assert t["val_accuracy"] > 0.9 and len(t["history"]["val_loss"]) == 60
    val_share = np.bincount(k)  # the split holds out the same share of every class
    assert t["n_train"] + t["n_val"] == len(X) and val_share.min() > 0


def test_regression_has_a_linear_output_in_raw_units():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 10, (200, 2))
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] + 1000.0
    data = Dataset(X, y[:, None], ("u", "v"), "price", "regression", ())
    model = train(data, TrainConfig(hidden=(8,), epochs=200, lr=0.05, batch_size=8))
    assert model.layers[-1].activation == "linear"
    pred = model.predict(X)[:, 0]
    assert np.sqrt(np.mean((pred - y) ** 2)) < 0.05 * y.std()


def three_blobs(n: int = 150, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    k = np.arange(n) % 3
    centres = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
    X = centres[k] + rng.normal(0, 0.35, (n, 4))
    return Dataset(X, np.eye(3)[k], ("a", "b", "c", "d"), "kind", "multiclass", ("p", "q", "r"))


def test_training_that_learns_nothing_warns_with_a_suggestion():
    """--lr 1000 on a 3-class set: saturated units, flat loss, chance accuracy; exit 0 but a
    warning that says so and what to try."""
    with pytest.warns(UserWarning, match="training learned nothing") as caught:
        model = train(three_blobs(), TrainConfig(hidden=(8,), epochs=100, lr=1000.0, batch_size=1))
    message = str(caught[0].message)
    assert "no better than" in message and "majority" in message
    assert "saturated" in message and "try a smaller learning rate than --lr 1000" in message
    assert model.training["train_accuracy"] == pytest.approx(1 / 3)
    assert model.training["warning"] == message


def test_training_that_learns_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = train(three_blobs(), TrainConfig(hidden=(8,), epochs=100, lr=0.1, batch_size=1))
    assert model.training["train_accuracy"] > 0.9 and "warning" not in model.training


def test_worked_example_from_the_model_and_the_public_example(capsys):
    """Model.forward(x, trace=True) gives the tutorial's activations; examples/worked_example.py
    prints its numbers through the public API."""
    from boardnet.model import Model

    m = Model.from_arrays([np.ones((2, 2)), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    x, h, o = m.forward(np.array([-2.0, -1.0]), trace=True)
    assert x.tolist() == [-2.0, -1.0]
    assert h == pytest.approx([0.0474, 0.0474], abs=5e-5) and o == pytest.approx([0.524], abs=5e-4)
    assert m.forward(np.array([[-2.0, -1.0]])).shape == (1, 1)
    script = Path(__file__).resolve().parents[1] / "examples" / "worked_example.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    assert "h1 = h2 = f(-3)     = 0.0474" in out and "o1 = f(h1 + h2)     = 0.524" in out
    assert "= 0.0215\n" in out and "dL/dw1 from train   = 0.02146953" in out
