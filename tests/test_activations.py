"""tanh, relu and softmax: their float32 numerics (numerics.py) against the true functions,
their helper C (templates/boardnet_activations.h, boardnet_softmax.h) and the generated C and
MicroPython against those numerics bit for bit, the gradients of training against finite
differences, and training with them."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pytest
from conftest import need, need_exe, need_pico, run_json
from test_export_c import STRICT, compile_driver, run_driver, sample_inputs
from test_export_micropython import as_float32, load
from test_helpers_c import COMPILERS, TEMPLATES
from test_train import three_blobs

from boardnet import codegen, forms, numerics
from boardnet.activations import ACTIVATIONS
from boardnet.data import Dataset
from boardnet.model import Model, Normalization
from boardnet.train import TrainConfig, gradients, loss_value, train

ACTIVATIONS_H = TEMPLATES / "boardnet_activations.h"
SOFTMAX_H = TEMPLATES / "boardnet_softmax.h"


def model_with(hidden: str, output: str, sizes=(8, 16, 3), seed: int = 0, name: str = "act") -> Model:
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(0, 1.5 / np.sqrt(i), (o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(0, 0.5, o) for o in sizes[1:]]
    acts = [hidden] * (len(sizes) - 2) + [output]
    norm = Normalization("standard", rng.normal(0, 5, sizes[0]), rng.uniform(0.5, 3, sizes[0]))
    return Model.from_arrays(Ws, bs, acts, name=name, normalization=norm)


# ---- the float32 numerics ---------------------------------------------------------------------
def every_float32_in(lo_bits: int, hi_bits: int, stride: int) -> np.ndarray:
    bits = np.arange(lo_bits, hi_bits, stride, dtype=np.uint32)
    return np.concatenate([bits.view(np.float32), (bits | np.uint32(0x80000000)).view(np.float32)])


def test_tanh32_error_bound_and_special_values():
    x = every_float32_in(0, 0x41A00000, 97)  # |x| < 20, where tanh is not yet exactly 1
    err = np.abs(numerics.tanh32(x).astype(np.float64) - np.tanh(x.astype(np.float64)))
    assert err.max() <= numerics.TANH_MAX_ABS_ERROR
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            y = numerics.tanh32(np.float32([0.0, -0.0, 20.0, -20.0, 1e30, -3.4e38, np.inf, -np.inf]))
    assert y.tolist() == [0.0, 0.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    assert np.isnan(numerics.tanh32(np.float32(np.nan)))
    # 2 sigmoid(2x) - 1 in that order, each step a float32 operation
    x = np.random.default_rng(0).normal(0, 3, 10_000).astype(np.float32)
    s = numerics.sigmoid32(x + x)
    assert np.array_equal(numerics.tanh32(x).view(np.uint32), ((s + s) - np.float32(1)).view(np.uint32))


def test_relu32_is_exact_and_passes_nan():
    x = np.float32([-3.5, -1e-45, -0.0, 0.0, 2.5, np.inf, -np.inf])
    assert numerics.relu32(x).view(np.uint32).tolist() == np.float32(
        [0, 0, -0.0, 0, 2.5, np.inf, 0]).view(np.uint32).tolist()
    assert np.isnan(numerics.relu32(np.float32(np.nan)))


def test_exp_neg32_relative_error():
    t = -every_float32_in(0, 0x42AC0000, 89)[: (0x42AC0000 + 88) // 89]  # every 89th float32 in (-86, 0]
    t = np.abs(t) * np.float32(-1)
    rel = np.abs(numerics._exp_neg32(t).astype(np.float64) / np.exp(t.astype(np.float64)) - 1)
    assert rel.max() <= numerics.EXP_MAX_REL_ERROR
    assert numerics._exp_neg32(np.float32([0.0, -0.0])).tolist() == [1.0, 1.0]


def test_softmax32_against_float64_and_its_fixed_order():
    rng = np.random.default_rng(1)
    Z = (rng.normal(0, 4, (5000, 4)) * rng.choice([0.01, 1, 10], (5000, 1))).astype(np.float32)
    Y = numerics.softmax32(Z)
    true = ACTIVATIONS["softmax"].float64(Z.astype(np.float64))
    assert np.all(np.abs(Y - true) <= true * (4 * numerics.EXP_MAX_REL_ERROR + 4 * 2.0**-24) + np.exp(-86.0))
    assert np.abs(Y.astype(np.float64).sum(axis=1) - 1).max() < 1e-6
    # the largest input's exponential is 1 exactly, and a row is computed alone
    assert np.array_equal(numerics.softmax32(Z[17]), Y[17])
    # the fixed order, written out with scalars
    for z in Z[:200]:
        m = z[0]
        for v in z[1:]:
            m = v if v > m else m
        e = [np.float32(0.0) if (v - m) <= -86 else numerics._exp_neg32(np.float32(v - m)[None])[0] for v in z]
        s = np.float32(0.0)
        for v in e:
            s = np.float32(s + v)
        inv = np.float32(1.0) / s
        want = np.array([v * inv for v in e], dtype=np.float32)
        assert np.array_equal(numerics.softmax32(z).view(np.uint32), want.view(np.uint32))


def test_softmax32_cuts_below_minus_86_and_keeps_nan():
    y = numerics.softmax32(np.float32([0.0, -86.0, -85.9, -1e30]))
    assert y[0] > 0.99 and y[1] == 0.0 and 0 < y[2] < 1e-37 and y[3] == 0.0
    assert np.isnan(numerics.softmax32(np.float32([1.0, np.nan, 0.0]))).all()
    assert np.array_equal(numerics.softmax32(np.float32([3.0, 3.0])), np.float32([0.5, 0.5]))


# ---- the helper C on its own --------------------------------------------------------------------
def test_the_softmax_file_holds_the_numerics_constants():
    text = SOFTMAX_H.read_text()  # the exponential's constants: boardnet_exp.h (test_helpers_c.py)
    assert "boardnet_exp_core_v1" in text and "boardnet_exp2_16" not in text
    assert f"0x{numerics.LIMIT_BITS:08x}u" in text
    assert f"{numerics.EXP_MAX_REL_ERROR:.1e}" in text
    assert f"{numerics.TANH_MAX_ABS_ERROR:.1e}" in ACTIVATIONS_H.read_text()


USE = ('#include "boardnet_exp.h"\n#include "boardnet_sigmoid.h"\n#include "boardnet_activations.h"\n'
       '#include "boardnet_softmax.h"\n'
       "float use(float x, float *y) { boardnet_softmax_v1(y, 3); return boardnet_tanh_v1(x) + boardnet_relu_v1(x); }\n")


@pytest.mark.cross
@pytest.mark.parametrize("compiler", COMPILERS)
def test_the_helpers_compile_alone_warning_free(compiler, tmp_path):
    argv = COMPILERS[compiler]
    need_exe(argv[0])
    src = tmp_path / "use.c"
    src.write_text(USE)
    strict = [f for f in STRICT] + ["-Wconversion"]
    run = subprocess.run([*argv, *strict, f"-I{TEMPLATES}", "-c", str(src), "-o", str(tmp_path / "use.o")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# reads rows of 3 float32 bit patterns, writes tanh(x0) relu(x0) and softmax(x0, x1, x2)
DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "boardnet_exp.h"
#include "boardnet_sigmoid.h"
#include "boardnet_activations.h"
#include "boardnet_softmax.h"
int main(void)
{
    unsigned int u[3];
    float x[3], t, r;
    int i;
    while (scanf("%8x %8x %8x", &u[0], &u[1], &u[2]) == 3) {
        memcpy(x, u, sizeof x);
        t = boardnet_tanh_v1(x[0]);
        r = boardnet_relu_v1(x[0]);
        boardnet_softmax_v1(x, 3);
        memcpy(&u[0], &t, 4);
        memcpy(&u[1], &r, 4);
        printf("%08x %08x", u[0], u[1]);
        for (i = 0; i < 3; ++i) {
            memcpy(&u[0], &x[i], 4);
            printf(" %08x", u[0]);
        }
        printf("\n");
    }
    return 0;
}
"""


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_the_helpers_compute_the_numerics_bits(opt, tmp_path):
    need_exe("gcc")
    src = tmp_path / "driver.c"
    src.write_text(DRIVER)
    exe = tmp_path / "driver"
    subprocess.run(["gcc", *STRICT, opt, "-ffp-contract=off", f"-I{TEMPLATES}", str(src), "-o", str(exe)],
                   check=True)
    rng = np.random.default_rng(2)
    X = (rng.normal(0, 1, (20_000, 3)) * rng.choice([1e-6, 0.1, 1, 5, 30, 200], (20_000, 1))).astype(np.float32)
    X[:8] = [[0, -0.0, 0], [-0.0, 0, 0], [100, -100, 0], [np.inf, 0, 1], [-np.inf, -np.inf, 0],
             [1e-45, -1e-45, 3e38], [9.0, 9.0, 9.0], [-86, 0, -85.99]]
    Y = run_driver(exe, X)  # (n, 5) uint32
    assert np.array_equal(Y[:, 0], numerics.tanh32(X[:, 0]).view(np.uint32))
    assert np.array_equal(Y[:, 1], numerics.relu32(X[:, 0]).view(np.uint32))
    with np.errstate(all="ignore"):
        assert np.array_equal(Y[:, 2:], numerics.softmax32(X).view(np.uint32))


# ---- the generated header and module against predict32 -----------------------------------------
CASES = {"tanh-softmax": ("tanh", "softmax", (8, 16, 3)), "relu-softmax": ("relu", "softmax", (8, 16, 3)),
         "relu-tanh-sigmoid": (None, "sigmoid", (5, 7, 6, 1)), "tanh-linear": ("tanh", "linear", (3, 4, 2))}


def case_model(key: str) -> Model:
    hidden, output, sizes = CASES[key]
    if hidden is None:  # a relu layer, then a tanh one
        m = model_with("relu", output, sizes, name=key.replace("-", "_"))
        return Model.from_arrays([layer.W for layer in m.layers], [layer.b for layer in m.layers],
                                 ["relu", "tanh", output], name=m.name, normalization=m.normalization)
    return model_with(hidden, output, sizes, name=key.replace("-", "_"))


@pytest.mark.parametrize("key", CASES)
def test_generated_c_is_predict32_bit_for_bit(key, tmp_path):
    need_exe("gcc")
    model = case_model(key)
    X = sample_inputs(model.n_in, n=1500)
    want = model.predict32(X).view(np.uint32)
    for flags in (["-O0"], ["-O2", "-ffp-contract=off"]):
        assert np.array_equal(run_driver(compile_driver(model, tmp_path, flags), X), want), flags


@pytest.mark.parametrize("shape", ["straight", "rows", "loop"])
@pytest.mark.parametrize("key", CASES)
def test_micropython_module_float32_is_bit_exact_and_double_within_bound(key, shape):
    """numpy.float32 patched in stands for a single-precision port (rp2, esp32): the module
    is predict32 bit for bit; with doubles it stays within forms.F32.double_bound."""
    model = case_model(key)
    source = codegen.render_micropython(forms.make(model), shape)
    X = sample_inputs(model.n_in, n=400, seed=3)
    X[:4] = [[np.inf] * model.n_in, [-np.inf] * model.n_in, [1e4] * model.n_in, [0.0] * model.n_in]
    module = as_float32(load(source))
    with np.errstate(all="ignore"):
        y = np.array([module.predict([np.float32(v) for v in x]) for x in X], dtype=np.float32)
        y32 = model.predict32(X)
    assert np.array_equal(y.view(np.uint32), y32.view(np.uint32))
    X = X[300:]  # moderate inputs
    double = load(source)
    y = np.array([double.predict([float(v) for v in x]) for x in X])
    bound = forms.make(model).double_bound(X)
    assert np.all(np.abs(y - model.predict32(X).astype(np.float64)) <= bound)


@pytest.mark.node
def test_micropython_wasm_runs_a_tanh_relu_softmax_module_within_bound():
    import mpwasm
    from test_export_micropython import run_wasm

    need(*mpwasm.available())
    model = Model.from_arrays([layer.W for layer in case_model("relu-softmax").layers[:1]]
                              + [np.random.default_rng(5).normal(0, 0.5, (6, 16))]
                              + [np.random.default_rng(6).normal(0, 0.5, (3, 6))],
                              [np.zeros(16), np.zeros(6), np.zeros(3)], ["relu", "tanh", "softmax"], name="wasm_act")
    X = sample_inputs(model.n_in, n=300, seed=4)[300 - 200:]
    module = "wasm_act"
    got = run_wasm(model, X, {f"{module}.py": codegen.render_micropython(forms.make(model))})
    bound = forms.make(model).double_bound(X)
    assert np.all(np.abs(got["y"] - model.predict32(X).astype(np.float64)) <= bound)


@pytest.mark.pico
@pytest.mark.slow
def test_relu_tanh_softmax_on_the_pico_micropython_at_0_ulp(tmp_path, pico_state):
    """The official rp2 MicroPython (single precision) on the emulated Pico computes the host's
    float32 bits for relu, tanh and softmax layers (their q15 form is integers, the same on
    every port: the CPython test above)."""
    need_pico()
    m = case_model("relu-softmax")
    rng = np.random.default_rng(7)
    model = Model.from_arrays([m.layers[0].W, rng.normal(0, 0.4, (6, 16)), rng.normal(0, 0.6, (3, 6))],
                              [m.layers[0].b, rng.normal(0, 0.2, 6), rng.normal(0, 0.2, 3)],
                              ["relu", "tanh", "softmax"], name="pico_act", normalization=m.normalization)
    path = model.save(tmp_path / "pico_act.json")
    status, report = run_json("check", str(path), "--port", "sim-pico", "--n", "300")
    assert status == 0, report
    assert report["passed"] and report["max_ulp"] == 0 and report["n"] == 300
    assert report["board"]["platform"] == "rp2" and report["board"]["precision"] == "f32"


# ---- q15: tanh and relu through the integer arithmetic, softmax as integer logits ---------------
@pytest.mark.parametrize("key", CASES)
def test_q15_header_and_module_compute_the_integer_reference(key, tmp_path):
    import test_quantize as TQ

    from boardnet import quantize as Q

    model = case_model(key)
    q = forms.make(model, "q15").q
    X = TQ.int_inputs(q, 1200)
    want = q.predict_int(X)
    if shutil.which("gcc"):
        assert np.array_equal(TQ.run_driver(TQ.compile_driver(model, tmp_path, ["-O2"]), X), want)
    for shape in ("straight", "loop"):
        module = TQ.load_module(codegen.render_micropython(forms.make(model, "q15"), shape))
        assert np.array_equal(np.array([module.predict(list(map(int, x))) for x in X[:400]]), want[:400])
    # the integers' meaning: hidden tanh in Q14 (+-16384), relu in [0, 32767] without saturating
    for layer in q.layers[:-1]:
        assert layer.out_frac == {"tanh": 14, "sigmoid": 15}.get(str(layer.activation), layer.frac_bits - layer.shift)
    a = np.atleast_2d(X)
    for layer in q.layers[:-1]:
        acc = a @ layer.W.T + layer.b
        a = Q.INTEGER[layer.activation].apply(acc, layer.shift)
        assert np.abs(a).max() <= 32767 if layer.activation == "relu" else np.abs(a).max() <= 16384 + 16384
    # against the float model, on inputs inside the range: tanh through the table is within
    # twice the sigmoid's error per layer, so the classes mostly agree
    report = Q.accuracy_report(model, q)
    if model.task != "regression":
        assert report["class_agreement"] > 0.9, report


def test_q15_softmax_board_returns_logits_and_the_host_the_probabilities():
    model = case_model("tanh-softmax")
    form = forms.make(model, "q15")
    X = sample_inputs(8, n=400)[300:]
    logits = form.reference(form.inputs(X))  # what the board sends: integers
    assert logits.dtype == np.int64 and form.q.out_frac_bits == form.q.layers[-1].frac_bits
    P = form.outputs(logits)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    z = logits * 2.0 ** -form.q.out_frac_bits
    assert np.array_equal(np.argmax(P, axis=1), np.argmax(z, axis=1))
    header = codegen.render_c(form)
    assert "_OUTPUTS_ARE_LOGITS 1" in header and "_class_q(const int32_t *yq)" in header


# ---- training ---------------------------------------------------------------------------------
@pytest.mark.parametrize("hidden", ["tanh", "relu"])
@pytest.mark.parametrize("loss,output", [("mse", "sigmoid"), ("bce", "sigmoid"), ("mse", "linear"),
                                         ("ce", "softmax"), ("mse", "softmax")])
def test_gradients_match_central_differences(hidden, loss, output):
    rng = np.random.default_rng(11)
    sizes = [3, 5, 4, 3]
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(0, 0.8, (n_out, n_in)), rng.normal(0, 0.5, n_out)]
    x = rng.normal(0, 1.0, (6, sizes[0]))
    if output == "softmax":
        y = np.eye(3)[rng.integers(0, 3, 6)]
    elif output == "sigmoid":
        y = (rng.random((6, 3)) > 0.5).astype(float)
    else:
        y = rng.normal(0, 1, (6, 3))
    analytic = gradients([p.copy() for p in params], x, y, loss, output, hidden)
    h = 1e-6
    for g, p in zip(analytic, params):
        fd = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            up = loss_value(params, x, y, loss, output, hidden)
            p[idx] = old - h
            down = loss_value(params, x, y, loss, output, hidden)
            p[idx] = old
            fd[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9)


def test_softmax_cross_entropy_gradient_is_a_minus_y():
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(3, 2)), rng.normal(size=3)
    x, y = rng.normal(size=(4, 2)), np.eye(3)[[0, 2, 1, 2]]
    dW, db = gradients([W, b], x, y, "ce", "softmax")
    a = ACTIVATIONS["softmax"].float64(x @ W.T + b)
    np.testing.assert_allclose(db, (a - y).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(dW, (a - y).T @ x / 4, rtol=1e-12)


@pytest.mark.parametrize("hidden", ["tanh", "relu"])
def test_train_tanh_relu_softmax_learns_three_classes(hidden):
    data = three_blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = train(data, TrainConfig(hidden=(8,), epochs=60, lr=0.05, batch_size=8, loss="ce",
                                        activation=hidden, output="softmax"))
    assert [str(layer.activation) for layer in model.layers] == [hidden, "softmax"]
    assert model.training["train_accuracy"] > 0.9 and model.training["engine"] == "numpy"
    y = model.predict(data.X)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)
    assert model.training["final_loss"] < 0.5  # cross-entropy per sample (chance: ln 3 = 1.1)


def test_scalar_and_numpy_engines_agree_for_tanh_and_relu():
    X = np.array([[-2.0, -1.0], [25.0, 6.0], [17.0, 4.0], [-15.0, -6.0]]) / 10
    data = Dataset(X, np.array([[1.0], [0.0], [0.0], [1.0]]), ("a", "b"), "t", "binary", ("0", "1"))
    for hidden in ("tanh", "relu"):
        cfg = dict(hidden=(3,), epochs=50, lr=0.1, batch_size=1, normalize="none", activation=hidden, seed=2)
        a = train(data, TrainConfig(**cfg, engine="scalar"))
        b = train(data, TrainConfig(**cfg, engine="numpy", dtype="float64"))
        for la, lb in zip(a.layers, b.layers):
            np.testing.assert_allclose(la.W, lb.W, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cfg,message", [
    ({"activation": "softmax"}, "--activation must be one of sigmoid, tanh, relu"),
    ({"output": "softmax", "loss": "mse"}, "--output-activation softmax trains with --loss ce"),
    ({"loss": "ce"}, "--loss ce is the cross-entropy of a softmax output"),
])
def test_train_refuses_mismatched_activations_and_losses(cfg, message):
    from boardnet.errors import UsageError

    with pytest.raises(UsageError, match=message):
        train(three_blobs(), TrainConfig(hidden=(4,), epochs=1, **cfg))
