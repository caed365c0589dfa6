"""The on-board serve loop under CPython, with the real exported model module.

The loop file is loaded by path (importlib), never by putting micropython/ on sys.path,
where the folder's name would shadow MicroPython's own `micropython` module.
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import seed_model

from boardnet import codegen, forms
from boardnet.link import protocol as P
from boardnet.model import Model
from boardnet.numerics import ulp_distance
from boardnet.resources import micropython_dir

SERVE = micropython_dir() / "boardnet_serve.py"
# The malformed requests of the protocol's table of lines (tests/protocol_lines.json, run on
# every runtime by test_protocol_lines.py): each one-line case answered with one ERR, as
# (line without its end, code). tests/test_firmware.py takes them from here.
MALFORMED = [
    (case["send"].encode("latin-1").rstrip(b"\r\n"), case["expect"][0].split()[1])
    for case in json.loads((Path(__file__).parent / "protocol_lines.json").read_text())["f32"]
    if len(case["expect"]) == 1 and str(case["expect"][0]).startswith("ERR ")
]


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model() -> Model:
    return seed_model()


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("board")
    path = codegen.export_micropython(forms.make(model), folder)
    return load(SERVE, "boardnet_serve_under_test"), load(path, "boardnet_model_under_test"), path


def run(served, data: bytes) -> list[str]:
    serve, module, _ = served
    out = io.BytesIO()
    serve.Server(module, io.BytesIO(data), out).serve()
    return out.getvalue().decode("ascii").split("\r\n")[:-1]


def test_ready_then_hello(served, model):
    lines = run(served, b"hello\n?\r\n")
    assert lines[0].startswith("READY proto=1 runtime=micropython")
    assert len(lines) == 3
    info = P.parse_line(lines[1])
    assert info.fingerprint == model.fingerprint() and (info.n_in, info.n_out) == (2, 1)
    assert lines[1] == lines[2]
    assert info.window >= 1 and info.line >= 256


def test_machine_form_matches_predict32_bit_for_bit(served, model):
    X = np.random.default_rng(0).uniform(-5, 5, size=(200, 2)).astype(np.float32)
    data = b"".join(P.encode_predict(i, forms.make(model).encode(x)) for i, x in enumerate(X))
    lines = run(served, data)[1:]
    assert len(lines) == 200
    Y = np.array([P.decode_outputs(forms.make(model), P.parse_line(s).words, 1) for s in lines])
    assert [P.parse_line(s).rid for s in lines] == list(range(200))
    # CPython, like the virtual board, runs the module in float64: within the export's bound
    assert np.all(np.abs(Y - model.predict32(X)) <= forms.make(model).double_bound(X))
    assert ulp_distance(Y, model.predict32(X)).max() <= 8


def test_human_form_and_time(served, model):
    lines = run(served, b"1.5 2\r3,-1\ntime 50\n")[1:]
    host = float(model.predict32(np.float32([[1.5, 2]]))[0, 0])
    assert lines[0].startswith("OK ") and abs(float(lines[0][3:]) - host) < 1e-6
    assert lines[1].startswith("OK 0.")
    t = P.parse_line(lines[2])
    assert isinstance(t, P.TimeInfo) and t.n == 50 and t.unit == "us"


@pytest.mark.parametrize("request_, code", MALFORMED)
def test_every_malformed_request_gets_err_and_the_loop_goes_on(served, request_, code):
    lines = run(served, request_ + b"\n" + b"x 9 3fc00000 40000000\n")
    assert lines[1].startswith(f"ERR {code} "), lines
    assert lines[2].startswith("OK 9 ")
    assert len(lines) == 3


def test_line_ends_and_blank_lines(served):
    # \r, \n and \r\n end a line once each; blank lines get no reply
    lines = run(served, b"hello\r\n\n\r   \nhello\rhello\n\r\n")
    assert len(lines) == 4 and all(s.startswith("OK hello") for s in lines[1:])


def test_overlong_line_is_discarded_and_answered_once(served):
    lines = run(served, b"1" * 100_000 + b"\nhello\n")
    assert lines[1].startswith("ERR long ")
    assert lines[2].startswith("OK hello")
    assert len(lines) == 3


def test_ctrl_c_stops_the_loop(served):
    serve, module, _ = served
    out = io.BytesIO()
    with pytest.raises(KeyboardInterrupt):
        serve.Server(module, io.BytesIO(b"hello\n\x03hello\n"), out).serve()
    assert out.getvalue().count(b"OK hello") == 1


def test_through_pipes_in_a_process(served):
    """The loop as a program on real pipes: NUL bytes, binary garbage, a 100 KB line, bare \\r."""
    _, _, module_path = served
    code = textwrap.dedent(f"""
        import importlib.util, sys
        def load(path, name):
            spec = importlib.util.spec_from_file_location(name, path)
            m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m
        sys.modules["boardnet_model"] = load({str(module_path)!r}, "boardnet_model")
        load({str(SERVE)!r}, "boardnet_serve").main()
    """)
    data = (b"\x00\x00\x00\n" + bytes(b for b in range(4, 256) if b not in (10, 13)) + b"\n" + b"7" * 100_000 + b"\r"
            + b"x 1 3fc00000 40000000\r" + b"hello\r\n")
    proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().split("\r\n")[:-1]
    assert [s.split()[0] + " " + s.split()[1] for s in lines] == [
        "READY proto=1", "ERR bytes", "ERR bytes", "ERR long", "OK 1", "OK hello"]


def test_q15_machine_inputs_are_int16_and_human_inputs_use_the_models_parser(model, tmp_path):
    form = forms.make(model, "q15")
    path = codegen.export_micropython(form, tmp_path)
    served = (load(SERVE, "boardnet_serve_q15"), load(path, "boardnet_model_q15"), path)
    q = form.q
    xq = q.parse_row(["1.5", "-2.25"])
    lines = run(served, b"x 1 %d %d\nx 2 40000 0\n1.5 -2.25\n1.5e3 0\n" % tuple(xq))
    assert lines[0].startswith("READY ") and "precision=q15" in lines[0]
    expected = q.predict_int(np.array([xq]))[0]
    assert lines[1] == "OK 1 " + " ".join(str(int(v)) for v in expected)
    assert lines[2].startswith("ERR value id 2: integer input outside int16")
    assert lines[3] == "OK " + " ".join(str(int(v)) for v in expected)
    assert lines[4].startswith("ERR value")
