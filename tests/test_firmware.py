"""The C firmware: its protocol core on the host (gcc sanitizers, through a pipe) against the
MicroPython serve loop, and the whole firmware on the emulated Cortex-M0 and RISC-V boards
over their serial ports, bit-exact against `Model.predict32`.

The emulated boards take some 10-20 KB/s into their UART, so the long tests run both boards
side by side.
"""

from __future__ import annotations

import importlib.util
import io
import json
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import need, need_exe, seed_model

from boardnet import codegen, forms, virtual
from boardnet.cli import main
from boardnet.commands.check import check
from boardnet.firmware import emulated as firmware
from boardnet.firmware.common import WARNINGS, model_defines
from boardnet.link import Link, open_link, open_serial
from boardnet.link import protocol as P
from boardnet.model import Model
from boardnet.numerics import ulp_distance
from boardnet.resources import firmware_dir, micropython_dir
from boardnet.virtual.qemu import CFirmwareBoard

TARGETS = ["m0", "rv32"]
PLATFORM = {"m0": "qemu-m0", "rv32": "qemu-rv32"}
VALID = b"x 9 3fc00000 40000000"


def need_toolchain(target: str, *, qemu: bool = True) -> None:
    missing = firmware.toolchain_missing(target, qemu=qemu)
    need(missing is None, missing or "")


def serve_loop_cases() -> list[tuple[bytes, str]]:
    """The malformed requests of tests/test_serve_loop.py (the same list, not a copy)."""
    import test_serve_loop

    test = test_serve_loop.test_every_malformed_request_gets_err_and_the_loop_goes_on
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            return list(mark.args[1])
    raise AssertionError("tests/test_serve_loop.py has no parametrized malformed requests")


def wide_model() -> Model:
    rng = np.random.default_rng(3)
    sizes = [30, 16, 8, 3]
    Ws = [rng.normal(0, 1 / np.sqrt(a), size=(b, a)) for a, b in zip(sizes, sizes[1:])]
    bs = [rng.normal(0, 0.5, size=b) for b in sizes[1:]]
    return Model.from_arrays(Ws, bs, name="wide 30-16-8-3")


@pytest.fixture(scope="module")
def model() -> Model:
    return seed_model()


# ---- the core on the host, through a pipe ----------------------------------------------------
@pytest.fixture(scope="module")
def host_exe(model, tmp_path_factory) -> Path:
    need_exe("gcc")
    out = tmp_path_factory.mktemp("host")
    codegen.export_c(forms.make(model), out)
    exe = out / "boardnet-host"
    root = firmware_dir()
    cmd = [
        "gcc", *WARNINGS, "-g", "-O1", "-ffp-contract=off",
        "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
        *(f"-D{k}={v}" for k, v in model_defines(forms.make(model), firmware.RX_BUFFER).items()),
        f"-I{root / 'core'}", f"-I{out}", *map(str, firmware.sources()), str(root / "host" / "board.c"),
        "-o", str(exe),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return exe


def run_host(exe: Path, data: bytes) -> list[str]:
    proc = subprocess.run([str(exe)], input=data, capture_output=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr.decode(errors="replace")[-2000:]
    text = proc.stdout.decode("ascii")
    assert text.endswith("\r\n")
    return text.split("\r\n")[:-1]


@pytest.fixture(scope="module")
def micropython_loop(model, tmp_path_factory):
    """The MicroPython serve loop under CPython with the exported module: the reference."""

    def load(path: Path, name: str):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    serve = load(micropython_dir() / "boardnet_serve.py", "boardnet_serve_for_c")
    module = load(codegen.export_micropython(forms.make(model), tmp_path_factory.mktemp("mp")), "boardnet_model_for_c")

    def run(data: bytes) -> list[str]:
        out = io.BytesIO()
        serve.Server(module, io.BytesIO(data), out).serve()
        return out.getvalue().decode("ascii").split("\r\n")[:-1]

    return run


def test_host_ready_and_hello(host_exe, model):
    lines = run_host(host_exe, b"hello\n?\r\n")
    assert lines[0].startswith("READY proto=1 runtime=c platform=host model=seed ")
    info = P.parse_line(lines[1])
    assert isinstance(info, P.BoardInfo) and lines[1] == lines[2]
    assert (info.fingerprint, info.n_in, info.n_out, info.precision) == (model.fingerprint(), 2, 1, "f32")
    assert info.float32_exact and info.line == 256 and info.window == 32


@pytest.mark.parametrize("request_, code", serve_loop_cases())
def test_host_answers_every_malformed_request_as_the_micropython_loop(
    host_exe, micropython_loop, request_, code
):
    data = request_ + b"\n" + VALID + b"\n"
    c_lines = run_host(host_exe, data)
    assert c_lines[1].startswith(f"ERR {code} "), c_lines
    assert c_lines[2].startswith("OK 9 ") and len(c_lines) == 3
    # word for word the MicroPython loop's reply
    assert c_lines[1] == micropython_loop(data)[1]


def test_host_machine_form_is_predict32_bit_for_bit(host_exe, model):
    rng = np.random.default_rng(1)
    X = rng.uniform(-50, 50, size=(3000, 2)).astype(np.float32)  # (n, 2)
    X[:8] = [[0, -0.0], [1e-38, -1e-45], [3e38, -3e38], [88, -88], [1e4, -1e4], [1e-7, 0], [0.5, 0.5], [-7, 2]]
    lines = run_host(host_exe, b"".join(P.encode_predict(i, forms.make(model).encode(x)) for i, x in enumerate(X)))[1:]
    assert [P.parse_line(s).rid for s in lines] == list(range(len(X)))
    Y = np.array([P.decode_outputs(forms.make(model), P.parse_line(s).words, 1) for s in lines])  # (n, 1)
    assert ulp_distance(Y, model.predict32(X)).max() == 0


def test_host_human_form_parses_and_prints_like_python(host_exe, model):
    """Decimals in: the nearest float32. Out: Python's '{:.9g}' of the float32 output."""
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((500, 2)) * 10.0 ** rng.integers(-3, 4, size=(500, 2))).astype(np.float32)
    texts = [f"{float(a):.9g} {float(b):.9g}" for a, b in X]
    lines = run_host(host_exe, "\n".join(texts).encode() + b"\n")[1:]
    expect = [f"OK {float(y):.9g}" for y in model.predict32(X)[:, 0]]
    assert lines == expect


def test_host_decimal_parser_rounds_to_nearest_float32(host_exe, model):
    """Long, tiny and halfway decimals: x is what struct.pack('>f') of the exact value gives."""
    # "time" reports nothing about x, so look at x through a linear model's output instead:
    # here the seed model's output is compared with predict32 of the expected float32
    cases = ["0.1", "16777217", "16777216.000000000000000000001", "1.00000005960464477539062500001",
             "1.000000059604644775390625", "7.1e-46", "1.4e-45", "-2.5e-39", "3.4028235e38",
             "0." + "0" * 30 + "1" * 60, "12345678901234567890123456789e-25"]
    data = "".join(f"{t} 1\n" for t in cases).encode()
    lines = run_host(host_exe, data)[1:]
    for t, line in zip(cases, lines):
        x = np.float32(struct.unpack(">f", struct.pack(">f", float(t)))[0])
        expect = f"OK {float(model.predict32(np.float32([[x, 1]]))[0, 0]):.9g}"
        assert line == expect, t


def test_host_line_rules(host_exe):
    lines = run_host(host_exe, b"hello\r\n\n\r   \nhello\rhello\n\r\nhel\x03hello\n")
    assert len(lines) == 5 and all(s.startswith("OK hello") for s in lines[1:])
    lines = run_host(host_exe, b"1" * 100_000 + b"\nhello\n")
    assert lines[1] == "ERR long line over 256 bytes discarded" and lines[2].startswith("OK hello")


def test_host_time(host_exe):
    lines = run_host(host_exe, b"1.5 2\ntime 1000\n")
    t = P.parse_line(lines[2])
    assert isinstance(t, P.TimeInfo) and t.n == 1000 and t.unit == "us"


# ---- the firmware builds --------------------------------------------------------------------
@pytest.mark.cross
@pytest.mark.parametrize("target", TARGETS)
def test_firmware_builds_warning_free_without_double(target, tmp_path):
    """-Werror with -Wdouble-promotion -Wfloat-conversion (common.WARNINGS), and no
    double-precision soft-float routine anywhere in the link."""
    need_toolchain(target, qemu=False)
    elf = firmware.build_firmware(forms.make(wide_model()), target, tmp_path)
    size = firmware.firmware_size(elf)
    assert size.flash < 32_000 and size.ram < 12_000
    linked = firmware.map_file(elf).read_text()
    for routine in ("__aeabi_dadd", "__aeabi_dmul", "__aeabi_f2d", "__adddf3", "__muldf3", "__extendsfdf2"):
        assert routine not in linked, routine


# ---- on the emulated boards -------------------------------------------------------------------
class Board:
    def __init__(self, model: Model, target: str) -> None:
        need_toolchain(target)
        self.target = target
        self.board = CFirmwareBoard(forms.make(model), target)
        self.url = self.board.start()
        self.link = Link(open_serial(self.url), self.url, timeout=20)
        self.ready = self.line(10)

    def line(self, timeout: float = 20) -> str:
        got = self.link.readline(time.monotonic() + timeout)
        assert got is not None, f"{self.target}: no reply"
        return got

    def ask(self, data: bytes, replies: int = 1, timeout: float = 20) -> list[str]:
        self.link.write(data)
        return [self.line(timeout) for _ in range(replies)]

    def close(self) -> None:
        self.link.close()
        self.board.stop()


@pytest.fixture(scope="module")
def boards(model):
    opened: dict[str, Board] = {}

    def get(target: str) -> Board:
        if target not in opened:
            opened[target] = Board(model, target)
        return opened[target]

    yield get
    for b in opened.values():
        b.close()


def both(fn):
    with ThreadPoolExecutor(len(TARGETS)) as pool:
        return list(pool.map(fn, TARGETS))


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.parametrize("target", TARGETS)
def test_board_ready_hello_and_time_in_instructions(boards, model, target):
    b = boards(target)
    assert b.ready.startswith(f"READY proto=1 runtime=c platform={PLATFORM[target]} model=seed ")
    info = P.parse_line(b.ask(b"hello\n")[0])
    assert info.fingerprint == model.fingerprint() and info.float32_exact and info.window == 32
    first, again = (P.parse_line(s) for s in b.ask(b"time 20\ntime 20\n", 2))
    assert first.unit == "instr" and first == again  # -icount: the same count every run
    assert 1_000 < first.per < 20_000


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.parametrize("target", TARGETS)
def test_board_answers_every_malformed_request_as_the_host_build(boards, host_exe, target):
    cases = serve_loop_cases()
    data = b"".join(req + b"\n" + VALID + b"\n" for req, _ in cases)
    expect = run_host(host_exe, data)[1:]
    assert boards(target).ask(data, len(expect)) == expect


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.parametrize("target", TARGETS)
def test_board_nul_bytes_garbage_and_bare_cr(boards, target):
    data = (b"\x00\x00\x00\n" + bytes(b for b in range(4, 256) if b not in (10, 13)) + b"\n"
            + b"x 1 3fc00000 40000000\r" + b"hello\r\n" + b"1.5,2\r")  # fmt: skip
    lines = boards(target).ask(data, 5)
    assert [s.split()[0] + " " + s.split()[1][:2] for s in lines] == ["ERR by", "ERR by", "OK 1", "OK he", "OK 0."]


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.slow
def test_boards_discard_a_100kb_line_and_go_on(boards):
    def send(target: str) -> list[str]:
        return boards(target).ask(b"7" * 100_000 + b"\n" + b"hello\n", 2, timeout=90)

    for lines in both(send):
        assert lines[0] == "ERR long line over 256 bytes discarded"
        assert lines[1].startswith("OK hello")


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.slow
def test_boards_answer_10000_pipelined_requests_bit_exact(boards, model):
    X = np.random.default_rng(4).uniform(-20, 20, size=(10_000, 2)).astype(np.float32)  # (n, 2)

    def burst(target: str) -> np.ndarray:
        b = boards(target)
        b.link.info = P.parse_line(b.ask(b"hello\n")[0])
        Y = b.link.predict_many(forms.make(model), X)  # `window` requests in flight, replies matched by id
        assert b.ask(b"hello\n")[0].startswith("OK hello")  # and the loop goes on
        return Y

    for Y in both(burst):
        assert ulp_distance(Y, model.predict32(X)).max() == 0


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.slow
def test_cli_check_on_sim_m0_and_sim_rv32_seed_model(tmp_path, people):
    """`boardnet check MODEL --port sim-m0` unchanged: 1,000 inputs, 0 ulp."""
    for target in TARGETS:
        need_toolchain(target)
    path = tmp_path / "people.json"
    people.save(path)

    def run(target: str) -> dict:
        proc = subprocess.run(
            [sys.executable, "-m", "boardnet.cli", "check", str(path), "--port", f"sim-{target}", "--json"],
            capture_output=True, text=True, timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    for target, report in zip(TARGETS, both(run)):
        assert report["passed"] and report["max_ulp"] == 0 and report["n"] == 1000
        assert report["board"]["runtime"] == "c" and report["board"]["platform"] == PLATFORM[target]
        assert report["instructions_per_inference"] > 1000


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.slow
def test_check_30_16_8_3_on_both_boards_is_bit_exact():
    wide = wide_model()
    for target in TARGETS:
        need_toolchain(target)

    def run(target: str):
        return check(wide, f"sim-{target}", n=1000, timeout=20)

    for report in both(run):
        assert report.passed and report.max_ulp == 0 and report.n == 1000, report.text()


@pytest.mark.cross
@pytest.mark.qemu
def test_sim_start_m0_stays_up_until_stop(tmp_path, monkeypatch, model):
    need_toolchain("m0")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = tmp_path / "seed.json"
    model.save(path)
    assert main(["sim", "start", "m0"]) == 2  # needs --model
    assert main(["sim", "start", "m0", "--model", str(path)]) == 0
    try:
        (record,) = [r for r in virtual.running() if r["kind"] == "m0"]
        assert record["extra"]["fingerprint"] == model.fingerprint()
        for _ in range(2):  # a second connection finds it still serving
            with open_link(record["port"], timeout=10) as link:
                assert link.info.fingerprint == model.fingerprint() and link.info.runtime == "c"
        assert virtual.start_persistent("m0", forms.make(model))["pid"] == record["pid"]  # same model: same board
    finally:
        assert main(["sim", "stop", "m0"]) == 0
    assert not [r for r in virtual.running() if r["kind"] == "m0"]


@pytest.mark.cross
@pytest.mark.qemu
def test_integer_q15_model_on_both_boards_is_exact(people):
    """An integer header: precision=q15 in hello, decimal int16 in and int32 out (machine
    form), raw decimals through the header's exact parser (human form)."""
    form = forms.make(people, "q15")
    q = form.q
    X = np.random.default_rng(0).integers(-32768, 32768, size=(300, 2))  # (n, 2)
    raw = [("150.5", "65.25"), ("-1", "0"), ("0.000001", "99999.5")]

    def run(target: str) -> tuple[P.BoardInfo, list[str], list[str]]:
        b = Board.__new__(Board)
        need_toolchain(target)
        b.target, b.board = target, CFirmwareBoard(form, target)
        b.url = b.board.start()
        b.link = Link(open_serial(b.url), b.url, timeout=20)
        try:
            info = P.parse_line(b.line(10)).info
            machine = b.ask(b"".join(f"x {i} {a} {c}\n".encode() for i, (a, c) in enumerate(X)), len(X))
            human = b.ask(b"".join(f"{a} {c}\n".encode() for a, c in raw), len(raw))
            return info, machine, human
        finally:
            b.close()

    for info, machine, human in both(run):
        assert info.precision == "q15" and info.fingerprint == forms.make(people, "q15").fingerprint
        assert machine == [f"OK {i} {int(v)}" for i, v in enumerate(q.predict_int(X)[:, 0])]
        assert human == [f"OK {int(q.predict_int(np.array([q.parse_row(list(r))]))[0, 0])}" for r in raw]
