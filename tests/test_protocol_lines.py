"""One table of request lines and their replies, tests/protocol_lines.json, answered by every
runtime: the MicroPython serve loop under CPython, the C core built for the host (gcc with
sanitizers), the C firmware on the emulated boards (QEMU) and the serve loop on the virtual
MicroPython board (WebAssembly). docs/protocol.md is the grammar the table exercises.

All of a table's lines go in one stream, each case followed by a sync request whose reply
must come next, so a missing or extra reply names the case that caused it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import random
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import need_emulated, need_exe, need_node

from boardnet import codegen, forms
from boardnet.commands.deploy import deploy_micropython
from boardnet.firmware import emulated
from boardnet.firmware.common import WARNINGS, model_defines
from boardnet.link import open_serial
from boardnet.model import Model
from boardnet.resources import firmware_dir, micropython_dir
from boardnet.virtual.qemu import CFirmwareBoard
from boardnet.virtual.wasm import MicroPythonSim

TABLE = json.loads((Path(__file__).parent / "protocol_lines.json").read_text())
PRECISIONS = ["f32", "q15"]
SYNC = {"f32": (b"x 65000 3f800000 3f800000\n", "OK 65000 3f800000 3f800000"),
        "q15": (b"x 65000 1 1\n", re.compile(r"OK 65000 -?\d+ -?\d+"))}


def echo_model() -> Model:
    """y = x: exact in float32 and in float64, so every runtime's outputs are the inputs'
    float32 values, and a human-form reply is their '{:.9g}' text."""
    return Model.from_arrays([[[1.0, 0.0], [0.0, 1.0]]], [[0.0, 0.0]], ["linear"], name="echo")


def cases(precision: str) -> list[dict]:
    out = TABLE[precision]
    for case in out:
        assert case["send"][-1] in "\r\n", f"a case ends at a line end: {case['send']!r}"
    return out


def stream(precision: str) -> bytes:
    sync = SYNC[precision][0]
    return b"".join(case["send"].encode("latin-1") + sync for case in cases(precision))


def reply_count(precision: str) -> int:
    return sum(len(case["expect"]) + 1 for case in cases(precision))


def matches(want, line: str) -> bool:
    if isinstance(want, str):
        return line == want
    if isinstance(want, dict):
        want = re.compile(want["re"])
    return want.fullmatch(line) is not None


def check_replies(lines: list[str], precision: str) -> None:
    """Every case's replies, in order, then the sync reply."""
    sync = SYNC[precision][1]
    wrong = []
    i = 0
    for case in cases(precision):
        got = lines[i : i + len(case["expect"])]
        i += len(case["expect"])
        if len(got) != len(case["expect"]) or not all(matches(w, g) for w, g in zip(case["expect"], got)):
            wrong.append(f"{case['send']!r}: expected {case['expect']}, got {got}")
        if i >= len(lines) or not matches(sync, lines[i]):
            wrong.append(f"{case['send']!r}: replies out of step from here: {lines[i - len(got) : i + 2]}")
            break
        i += 1
    else:
        if i != len(lines):
            wrong.append(f"{len(lines) - i} replies after the last case: {lines[i:][:3]}")
    assert not wrong, "\n".join(wrong)


def read_lines(ser, count: int, timeout: float) -> list[str]:
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\r\n") < count and time.monotonic() < deadline:
        data += ser.read(max(1, ser.in_waiting))
    return data.decode("ascii").split("\r\n")[:count]


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- (a) the MicroPython serve loop under CPython -------------------------------------------
@pytest.mark.parametrize("precision", PRECISIONS)
def test_serve_loop_under_cpython(precision, tmp_path):
    serve = load(micropython_dir() / "boardnet_serve.py", f"boardnet_serve_lines_{precision}")
    module = load(codegen.export_micropython(forms.make(echo_model(), precision), tmp_path), f"echo_{precision}")
    out = io.BytesIO()
    serve.Server(module, io.BytesIO(stream(precision)), out).serve()
    lines = out.getvalue().decode("ascii").split("\r\n")[:-1]
    assert lines[0].startswith("READY proto=1 runtime=micropython ")
    check_replies(lines[1:], precision)


# ---- (b) the C core built for the host -----------------------------------------------------
def host_build(precision: str, out: Path) -> Path:
    need_exe("gcc")
    form = forms.make(echo_model(), precision)
    codegen.export_c(form, out)
    exe = out / "boardnet-host"
    cmd = [
        "gcc", *WARNINGS, "-g", "-O1", "-ffp-contract=off",
        "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
        *(f"-D{k}={v}" for k, v in model_defines(form, emulated.RX_BUFFER).items()),
        f"-I{firmware_dir() / 'core'}", f"-I{out}", *map(str, emulated.sources()),
        str(firmware_dir() / "host" / "board.c"), "-o", str(exe),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return exe


@pytest.mark.parametrize("precision", PRECISIONS)
def test_c_core_on_the_host(precision, tmp_path):
    exe = host_build(precision, tmp_path)
    proc = subprocess.run([str(exe)], input=stream(precision), capture_output=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr.decode(errors="replace")[-2000:]
    lines = proc.stdout.decode("ascii").split("\r\n")[:-1]
    assert lines[0].startswith("READY proto=1 runtime=c platform=host ")
    check_replies(lines[1:], precision)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_random_lines_get_the_same_reply_from_both_runtimes(precision, tmp_path):
    """Beyond the table: 5,000 lines of random pieces of the grammar and of what breaks it,
    word for word the same from the C core and the serve loop (hello and time aside)."""
    rng = random.Random(11)
    pieces = [b"x", b"X", b" ", b"\t", b",", b"1", b"0", b"9", b".", b"e", b"E", b"+", b"-", b"_", b"a",
              b"3fc00000", b"7f800000", b"hello", b"?", b"time", b"nan", b"inf", b"65536", b"1e39",
              b"1e-50", b"1" * 40, b"\x08", b"\x7f", b"\x00", b"\x0b", b"\x1b", b"\xff", b"\r", b"\n"]
    lines = [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) + rng.choice([b"\n", b"\r\n"])
             for _ in range(5000)]
    lines += [rng.choice([b"1", b"x", b" ", b"\x08"]) * rng.randint(250, 262) + b"\n" for _ in range(100)]
    rng.shuffle(lines)
    data = b"".join(lines)
    proc = subprocess.run([str(host_build(precision, tmp_path))], input=data, capture_output=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr.decode(errors="replace")[-2000:]
    serve = load(micropython_dir() / "boardnet_serve.py", f"boardnet_serve_random_{precision}")
    module = load(codegen.export_micropython(forms.make(echo_model(), precision), tmp_path / "mp"),
                  f"echo_r_{precision}")
    out = io.BytesIO()
    serve.Server(module, io.BytesIO(data), out).serve()

    def replies(text: bytes) -> list[str]:
        return [line.split()[0] + " " + line.split()[1] if line.startswith(("OK hello", "OK time")) else line
                for line in text.decode("ascii").split("\r\n")[1:-1]]

    c, mp = replies(proc.stdout), replies(out.getvalue())
    assert len(c) == len(mp) > 4000
    wrong = [(a, b) for a, b in zip(c, mp) if a != b]
    assert not wrong, wrong[:5]


# ---- (c) the C firmware on the emulated boards --------------------------------------------
@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("target", ["m0", "rv32"])
def test_c_firmware_on_qemu(target, precision):
    need_emulated(target)
    with CFirmwareBoard(forms.make(echo_model(), precision), target) as board:
        ser = open_serial(board.url, read_timeout=0.2)
        try:
            assert read_lines(ser, 1, 10)[0].startswith(f"READY proto=1 runtime=c platform=qemu-{target} ")
            ser.write(stream(precision))
            check_replies(read_lines(ser, reply_count(precision), 60), precision)
        finally:
            ser.close()


# ---- (d) the serve loop on the virtual MicroPython board ------------------------------------
@pytest.fixture(scope="module")
def mp_board(tmp_path_factory):
    need_node()
    with MicroPythonSim(tmp_path_factory.mktemp("flash")) as board:
        yield board


@pytest.mark.node
@pytest.mark.parametrize("precision", PRECISIONS)
def test_serve_loop_on_the_virtual_micropython_board(mp_board, precision):
    info = deploy_micropython(forms.make(echo_model(), precision), mp_board.port)
    assert info.runtime == "micropython" and info.platform == "webassembly"
    ser = open_serial(mp_board.port, read_timeout=0.2)
    try:
        ser.write(stream(precision))
        check_replies(read_lines(ser, reply_count(precision), 60), precision)
    finally:
        ser.close()
