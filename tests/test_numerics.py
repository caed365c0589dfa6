"""The float32 sigmoid and forward pass that every board reproduces bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from boardnet.model import Model, sigmoid
from boardnet.numerics import MAX_ABS_ERROR, forward32, sigmoid32


def true_sigmoid(x: np.ndarray) -> np.ndarray:
    return sigmoid(np.asarray(x, dtype=np.float64))


def test_error_bound_on_a_dense_grid():
    x = np.linspace(-100, 100, 2_000_001, dtype=np.float32)
    err = np.abs(sigmoid32(x).astype(np.float64) - true_sigmoid(x))
    assert err.max() <= MAX_ABS_ERROR
    assert MAX_ABS_ERROR <= 3e-7


def test_error_bound_on_every_float32_in_a_band():
    # every float32 in [-4, 4) around 0.5's steepest part, with a stride over the bits
    bits = np.arange(0, 0x40800000, 17, dtype=np.uint32)
    x = np.concatenate([bits.view(np.float32), (bits | np.uint32(0x80000000)).view(np.float32)])
    err = np.abs(sigmoid32(x).astype(np.float64) - true_sigmoid(x))
    assert err.max() <= MAX_ABS_ERROR


def test_small_outputs_keep_relative_accuracy():
    # for x < 0 the result is e * s, not 1 - s, so tiny probabilities are not lost
    x = np.linspace(-85, -10, 100_001, dtype=np.float32)
    y = sigmoid32(x).astype(np.float64)
    rel = np.abs(y * (1 + np.exp(-x.astype(np.float64))) - 1)
    assert rel.max() < 2e-5  # set by the rounding of t * 16/ln2 at |t| ~ 85
    assert np.all(y > 0)


@pytest.mark.parametrize(
    "x, want",
    [
        (0.0, 0.5),
        (-0.0, 0.5),
        (100.0, 1.0),
        (-100.0, 0.0),
        (1e4, 1.0),
        (-1e4, 0.0),
        (np.inf, 1.0),
        (-np.inf, 0.0),
        (3.4028235e38, 1.0),
        (-3.4028235e38, 0.0),
        (86.0, 1.0),
        (-86.0, 0.0),
        (30.0, 1.0),
    ],
)
def test_saturation_and_special_values(x, want):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            y = sigmoid32(np.float32(x))
    assert y.dtype == np.float32
    assert float(y) == want


def test_nan_in_nan_out_and_no_warnings():
    x = np.array([np.nan, -np.nan, 1.0, np.inf, -np.inf, -1e4, 1e4, 0.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            y = sigmoid32(x)
    assert np.isnan(y[0]) and np.isnan(y[1])
    assert np.all(np.isfinite(y[2:]))
    # the NaN's bits pass through unchanged, as the C `return x` does
    assert y[:2].view(np.uint32).tolist() == x[:2].view(np.uint32).tolist()


def test_monotone_and_symmetric():
    x = np.linspace(-90, 90, 1_000_001, dtype=np.float32)
    y = sigmoid32(x)
    assert np.all(np.diff(y.astype(np.float64)) >= 0)
    pos = np.linspace(0, 20, 10_001, dtype=np.float32)
    # sigmoid(-x) = 1 - sigmoid(x), to the stated accuracy on both sides
    gap = sigmoid32(-pos).astype(np.float64) + sigmoid32(pos).astype(np.float64) - 1.0
    assert np.abs(gap).max() <= 2 * MAX_ABS_ERROR


def test_does_not_modify_its_input_and_keeps_shape():
    x = np.array([[-1.0, 2.0], [np.nan, 100.0]], dtype=np.float32)
    before = x.copy()
    y = sigmoid32(x)
    assert y.shape == (2, 2)
    np.testing.assert_array_equal(x, before)


def test_seed_worked_example():
    # all weights 1, biases 0, Alice (-2, -1): h1 = h2 = f(-3) = 0.0474, o1 = f(0.0948) = 0.524
    m = Model.from_arrays([np.ones((2, 2)), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    y = m.predict32(np.array([-2.0, -1.0]))
    assert y.shape == (1,) and y.dtype == np.float32
    assert abs(float(y[0]) - 0.524) < 5e-4
    h = forward32(m.folded32()[:1], np.array([-2.0, -1.0]))
    np.testing.assert_allclose(h, [0.0474, 0.0474], atol=5e-5)
    np.testing.assert_allclose(y, m.predict(np.array([-2.0, -1.0])), atol=1e-6)


def test_forward32_order_is_sequential_float32():
    # acc = b; acc = acc + W[j] x[j] in order: 1e8 + 1 - 1e8 loses the 1 in float32
    m = Model.from_arrays([np.array([[1.0, 1.0, -1.0]])], [np.zeros(1)], ["linear"])
    y = m.predict32(np.array([1e8, 1.0, 1e8]))
    assert float(y[0]) == 0.0
    y = m.predict32(np.array([1.0, 1e8, 1e8]))
    assert float(y[0]) == 0.0
    # and the float64 reference keeps it, so the order is really float32's
    assert float(m.predict(np.array([1e8, 1.0, 1e8]))[0]) == 1.0


def test_forward32_matches_a_scalar_loop():
    rng = np.random.default_rng(1)
    Ws = [rng.normal(size=(5, 3)), rng.normal(size=(2, 5))]
    bs = [rng.normal(size=5), rng.normal(size=2)]
    m = Model.from_arrays(Ws, bs, ["sigmoid", "linear"], task="regression")
    X = rng.normal(scale=4, size=(50, 3)).astype(np.float32)
    got = m.predict32(X)
    assert got.shape == (50, 2) and got.dtype == np.float32
    for n in range(50):
        a = list(X[n])
        for layer in m.folded32():
            out = []
            for i in range(layer.n_out):
                acc = np.float32(layer.b[i])
                for j in range(layer.n_in):
                    acc = np.float32(acc + np.float32(layer.W[i, j] * np.float32(a[j])))
                out.append(sigmoid32(acc)[()] if layer.activation == "sigmoid" else acc)
            a = out
        assert np.array_equal(np.array(a, dtype=np.float32).view(np.uint32), got[n].view(np.uint32))


def test_forward32_single_and_batch_agree():
    rng = np.random.default_rng(2)
    Ws = [rng.normal(size=(4, 2)), rng.normal(size=(3, 4))]
    m = Model.from_arrays(Ws, [np.zeros(4), np.zeros(3)])
    X = rng.normal(size=(10, 2))
    batch = m.predict32(X)
    for n in range(10):
        assert np.array_equal(m.predict32(X[n]), batch[n])
