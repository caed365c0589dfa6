"""Link and board reliability (issue 11): every pyserial URL, a REPL recognised as a REPL,
numeric flags checked when parsed, a person's bad row at the prompt, typed decimals read on
the host as the board reads them, deploy hints that work as printed, open errors that name
the real cause."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import time
from fractions import Fraction

import numpy as np
import pytest
from conftest import BOARDNET, Rfc2217Server, need_emulated, need_node, seed_model

from boardnet import forms, virtual
from boardnet.cli import main
from boardnet.commands.deploy import deploy_hint, deploy_micropython
from boardnet.errors import BoardError, UsageError
from boardnet.link import open_link, open_serial
from boardnet.link.protocol import BoardInfo
from boardnet.model import Model
from boardnet.numerics import float32_of_decimal
from boardnet.virtual.qemu import CFirmwareBoard
from boardnet.virtual.wasm import MicroPythonSim


@pytest.fixture
def wasm_board():
    need_node()
    with MicroPythonSim() as board:
        yield board


def save(model: Model, tmp_path) -> str:
    return str(model.save(tmp_path / f"{model.name}.json"))


# ---- 1. every pyserial URL ---------------------------------------------------------------
@pytest.mark.node
def test_deploy_check_and_predict_through_an_rfc2217_server(wasm_board, tmp_path, capsys):
    """A board farm's port (ser2net speaks RFC 2217): mpremote deploys through it, check and
    predict talk through it."""
    server = Rfc2217Server(wasm_board.port)
    try:
        path = save(seed_model(), tmp_path)
        assert main(["deploy", path, "--port", server.url]) == 0
        capsys.readouterr()  # deploy's report
        assert main(["check", path, "--port", server.url, "--n", "300", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["passed"] and report["n"] == 300
        assert main(["predict", path, "1.5", "2", "--port", server.url, "--json"]) == 0
        row = json.loads(capsys.readouterr().out)  # one JSON object per row
        assert row["board"][0] == pytest.approx(row["host"][0], abs=1e-6)
    finally:
        server.close()


@pytest.mark.cross
@pytest.mark.qemu
def test_check_through_rfc2217_in_front_of_the_c_firmware(tmp_path, capsys):
    need_emulated("m0")
    form = forms.make(seed_model())
    with CFirmwareBoard(form, "m0") as board:
        server = Rfc2217Server(board.url)
        try:
            assert main(["check", save(form.model, tmp_path), "--port", server.url, "--n", "200",
                         "--json"]) == 0
            report = json.loads(capsys.readouterr().out)
            assert report["passed"] and report["max_ulp"] == 0
        finally:
            server.close()


@pytest.mark.node
def test_spy_url_logs_the_wire(wasm_board, tmp_path, capsys):
    path = save(seed_model(), tmp_path)
    deploy_micropython(forms.make(seed_model()), wasm_board.port)
    log = tmp_path / "wire.txt"
    assert main(["check", path, "--port", f"spy://{wasm_board.port}?file={log}", "--n", "20"]) == 0
    wire = log.read_text()  # pyserial's hex dump, with the text beside the bytes
    assert "TX   0000  0D 0A 68 65 6C 6C 6F" in wire and "hello proto=1" in wire


def test_loop_url_opens_and_says_what_it_heard():
    """loop:// echoes: no serve loop there, and the error says what came back."""
    with pytest.raises(BoardError, match="no hello reply from loop:// within 1 s; it said 'hello'"):
        open_link("loop://", timeout=1)


# ---- 3. a board at the REPL --------------------------------------------------------------
@pytest.mark.node
def test_a_board_at_the_repl_is_named_and_check_start_starts_the_loop(wasm_board, tmp_path, capsys):
    model = seed_model()
    path = save(model, tmp_path)
    deploy_micropython(forms.make(model), wasm_board.port, start=False)  # files there, loop not running
    assert main(["check", path, "--port", wasm_board.port, "--n", "10"]) == 3
    err = capsys.readouterr().err
    assert "is at the MicroPython REPL" in err and "serve loop is not running" in err
    assert f"--port {wasm_board.port} --start" in err and "--autostart" in err and err.count("\n") == 1
    assert main(["check", path, "--port", wasm_board.port, "--n", "50", "--start"]) == 0
    assert capsys.readouterr().out.startswith("PASS")


@pytest.mark.node
def test_check_start_refuses_a_board_holding_another_model(wasm_board, tmp_path, capsys):
    deploy_micropython(forms.make(seed_model()), wasm_board.port, start=False)
    other = seed_model(name="other", w=2.5)
    assert main(["check", save(other, tmp_path), "--port", wasm_board.port, "--start"]) == 3
    err = capsys.readouterr().err
    assert "holds model " + seed_model().fingerprint() in err and other.fingerprint() in err


@pytest.mark.node
def test_a_board_left_in_the_raw_repl_is_recognised(wasm_board):
    ser = open_serial(wasm_board.port)
    ser.write(b"\r\x03\x01")  # Ctrl-A: the raw REPL, where nothing is echoed
    time.sleep(0.5)
    ser.close()
    with pytest.raises(BoardError, match="at the MicroPython REPL"):
        open_link(wasm_board.port, timeout=4)


# ---- 4. numeric flags ------------------------------------------------------------------------
@pytest.mark.parametrize("flags,said", [
    (["--seed", "-1"], "a seed is 0 or more"),
    (["--timeout", "nan"], "finite number of seconds"),
    (["--timeout", "inf"], "finite number of seconds"),
    (["--timeout", "-1"], "finite number of seconds"),
    (["--n", "0"], "at least 1"),
    (["--baud", "fast"], "not a whole number"),
    (["--plot", "/no/such/dir/p.png"], "no folder /no/such/dir"),
])
def test_numeric_flags_are_checked_when_parsed(tmp_path, flags, said):
    start = time.monotonic()
    r = subprocess.run([*BOARDNET, "check", save(seed_model(), tmp_path), "--port", "sim", *flags],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr and time.monotonic() - start < 20  # before any board work


# ---- 5. a person's bad row at the prompt -------------------------------------------------------
@pytest.mark.node
def test_an_overflowing_row_at_the_prompt_is_reported_and_the_loop_goes_on(tmp_path):
    need_node()
    path = save(seed_model(), tmp_path)
    master, slave = pty.openpty()  # a terminal: predict --port runs its interactive loop
    proc = subprocess.Popen([*BOARDNET, "predict", path, "--port", "sim"], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(slave)
    try:
        os.write(master, b"1e39 63\n1.5 2\n\x04")  # the terminal holds the lines until read; Ctrl-D ends
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        os.close(master)
    assert proc.returncode == 0, stderr
    assert "1e39 is beyond float32's range" in stderr and "RuntimeWarning" not in stderr
    assert "board 0.43053" in stdout  # the next row is answered


# ---- 7. typed decimals ----------------------------------------------------------------------------
def test_float32_of_decimal_is_correctly_rounded():
    """Decimals just past, at and just before float32 halfway points, where float(text) first
    rounds to float64 and then onto the halfway point (ties to even)."""
    rng = np.random.default_rng(5)
    bits = rng.integers(0x00800000, 0x7F000000, size=2000, dtype=np.int64).astype(np.uint32)
    for b, sign in zip(bits, rng.choice([-1, 1], size=bits.size)):
        lo = np.array(b, dtype=np.uint32).view(np.float32)[()]
        hi = np.nextafter(lo, np.float32(np.inf))
        mid = (Fraction(float(lo)) + Fraction(float(hi))) / 2
        even = lo if int(b) % 2 == 0 else hi
        for offset, want in ((Fraction(1, 10**60), hi), (Fraction(0), even), (-Fraction(1, 10**60), lo)):
            value = sign * (mid + offset)
            text = f"{'-' if value < 0 else ''}{abs(value.numerator) // value.denominator}." + \
                   f"{(abs(value.numerator) % value.denominator) * 10**200 // value.denominator:0200d}"  # exact
            assert float32_of_decimal(text) == np.float32(sign * want), text
    assert np.signbit(float32_of_decimal("-0.0"))
    with pytest.raises(OverflowError):
        float32_of_decimal("3.4028236e38")


@pytest.mark.cross
@pytest.mark.qemu
def test_a_typed_decimal_gives_the_same_answer_on_host_and_c_firmware(tmp_path, capsys):
    need_emulated("m0")
    model = Model.from_arrays([[[1.0, 1.0]]], [[0.0]], ["linear"], name="sum")
    text = "128.00000762939453125000000000000000000001"  # just past a float32 halfway point
    assert main(["predict", save(model, tmp_path), text, "63", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    with CFirmwareBoard(forms.make(model), "m0") as board, open_link(board.url) as link:
        reply = link.request(f"{text} 63")
    assert reply.startswith("OK ")
    assert np.float32(reply.split()[1]) == np.float32(row["y"][0]) != np.float32(128.0 + 63.0)


# ---- 8. deploy hints that work as printed ----------------------------------------------------------
@pytest.mark.cross
@pytest.mark.qemu
def test_the_hint_for_an_emulated_board_holding_another_model_works_as_printed(tmp_path, monkeypatch, capsys):
    need_emulated("m0")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    first, second = save(seed_model("first"), tmp_path), save(seed_model("second", w=2.5), tmp_path)
    assert main(["sim", "start", "m0", "--model", first]) == 0
    try:
        (record,) = virtual.running()
        capsys.readouterr()
        assert main(["check", second, "--port", record["port"], "--n", "10"]) == 3
        err = capsys.readouterr().err
        hint = f"boardnet deploy {second} --port sim-m0"
        assert hint in err
        assert main(hint.split()[1:]) == 0  # the hint, as printed
        (record,) = virtual.running()
        assert main(["check", second, "--port", record["port"], "--n", "50"]) == 0
    finally:
        main(["sim", "stop"])


def test_hints_for_real_boards_name_the_runtime_and_board():
    def hello(runtime: str, platform: str) -> BoardInfo:
        return BoardInfo(1, runtime, platform, "m", "0" * 16, "f32", 2, 1, 8, 256)

    assert deploy_hint("m.json", "/dev/ttyACM0", hello("c", "rp2040")) == \
        "boardnet deploy m.json --port /dev/ttyACM0 --runtime c --board pico"
    assert deploy_hint("m.json", "/dev/ttyUSB0", hello("c", "esp32c3")).endswith("--runtime c --board esp32c3")
    assert deploy_hint("my model.json", "COM3", hello("micropython", "rp2")) == \
        "boardnet deploy 'my model.json' --port COM3"


# ---- 10. open errors -------------------------------------------------------------------------
@pytest.mark.parametrize("url,error,said", [
    ("socket://localhost:99999", UsageError, "expected socket://HOST:PORT with PORT in 1..65535"),
    ("spy://socket://127.0.0.1:1", UsageError, "spy:// wraps a serial device"),
    ("socket://127.0.0.1:1", BoardError, "cannot open port socket://127.0.0.1:1: connection refused"),
    ("rfc2217://127.0.0.1:1", BoardError, "connection refused"),
    ("nosuch://x", UsageError, "protocol 'nosuch' not known"),
])
def test_open_errors_name_the_url_and_the_cause(url, error, said):
    with pytest.raises(error, match=said.replace("(", r"\(").replace(".", r"\.")):
        open_serial(url)
