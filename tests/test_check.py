"""check and the link: the real MicroPython runtime on the virtual board for the main
passes; a small fake board on a pty for link faults that a healthy runtime never shows."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from conftest import need_node, seed_model

from boardnet import forms
from boardnet.cli import main
from boardnet.commands.deploy import deploy_micropython
from boardnet.errors import BoardError
from boardnet.link import open_link
from boardnet.link import protocol as P
from boardnet.model import Model
from boardnet.virtual.wasm import MicroPythonSim

FP = "0123456789abcdef"


def hello_fields(proto=1, n_in=2, window=4, fp=FP, platform="rp2"):
    return (f"proto={proto} runtime=micropython platform={platform} model=seed fp={fp} "
            f"precision=f32 n_in={n_in} n_out=1 window={window} line=256")


def healthy(line, board, **kw):
    if line == "hello":
        return ("OK hello " + hello_fields(**kw) + "\r\n").encode()
    if line.startswith("x "):
        rid = line.split()[1]
        return f"OK {rid} 3f000000\r\n".encode()
    return b"ERR cmd unknown\r\n"


@pytest.fixture
def fake(pty_peer):
    """A fake board answering line by line (`healthy` unless told otherwise)."""
    return lambda respond=healthy, greeting=b"": pty_peer(respond, greeting=greeting)


X = np.zeros((20, 2), dtype=np.float32)
FORM = forms.make(seed_model())  # the fake boards answer in float32 hex


# ---- link faults (fake board) ---------------------------------------------------------
def test_fake_board_baseline(fake):
    board = fake(greeting=b"READY " + hello_fields().encode() + b"\r\n")
    with open_link(board.port, timeout=2) as link:
        assert link.info.fingerprint == FP
        assert np.all(link.predict_many(FORM, X) == 0.5)


def test_no_reply_times_out_clearly(fake):
    board = fake(lambda line, b: None)
    t = time.monotonic()
    with pytest.raises(P.LinkTimeout, match="no hello reply .* within 1 s"):
        open_link(board.port, timeout=1)
    assert time.monotonic() - t < 5


def test_no_reply_to_predictions_times_out(fake):
    board = fake(lambda line, b: healthy(line, b) if line == "hello" else None)
    with open_link(board.port, timeout=1) as link:
        with pytest.raises(P.LinkTimeout, match="0 of 20 predictions answered"):
            link.predict_many(FORM, X)


def test_garbage_reply(fake):
    board = fake(lambda line, b: healthy(line, b) if line == "hello" else b"OK 0 zzzzzzzz\r\n")
    with open_link(board.port, timeout=1) as link:
        with pytest.raises(P.LinkError, match="not 8 hex digits"):
            link.predict_many(FORM, X)


def test_reset_mid_stream_is_detected_and_nothing_counted(fake):
    def respond(line, b):
        if line.startswith("x ") and b.count == 8:
            return b"READY " + hello_fields().encode() + b"\r\n"
        return healthy(line, b)

    board = fake(respond)
    with open_link(board.port, timeout=1) as link:
        with pytest.raises(P.BoardReset, match="printed READY after .* of 20 predictions"):
            link.predict_many(FORM, X)


def test_stale_id_is_a_reset(fake):
    def respond(line, b):
        if line.startswith("x ") and b.count == 5:
            return b"OK 0 3f000000\r\n"  # an old id: a lost or repeated line
        return healthy(line, b)

    board = fake(respond)
    with open_link(board.port, timeout=1) as link, pytest.raises(P.BoardReset, match="id 0 where id"):
        link.predict_many(FORM, X)


def test_reply_split_across_reads(fake):
    def respond(line, b):
        reply = healthy(line, b)
        for i in range(0, len(reply), 3):
            os.write(b.master, reply[i:i + 3])
            time.sleep(0.002)
        return None

    board = fake(respond)
    with open_link(board.port, timeout=2) as link:
        assert np.all(link.predict_many(FORM, X) == 0.5)


def test_echo_is_skipped(fake):
    board = fake(lambda line, b: line.encode() + b"\r\n" + healthy(line, b))
    with open_link(board.port, timeout=2) as link:
        assert np.all(link.predict_many(FORM, X) == 0.5)


def test_banner_instead_of_serve_loop(fake):
    def repl(line, b):
        return (f"Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\n"
                f"NameError: name '{line}' isn't defined\r\n>>> ").encode()

    board = fake(repl, greeting=b"MicroPython v1.24.0 on 2024-10-25; Raspberry Pi Pico with RP2040\r\n>>> ")
    with pytest.raises(P.NotServing, match="serve loop is not running"):
        open_link(board.port, timeout=2)


def test_traceback_mid_stream(fake):
    def respond(line, b):
        if line.startswith("x ") and b.count == 4:
            return b"Traceback (most recent call last):\r\nMemoryError: \r\n>>> "
        return healthy(line, b)

    board = fake(respond)
    with open_link(board.port, timeout=1) as link, pytest.raises(P.BoardReset, match="traceback"):
        link.predict_many(FORM, X)


def test_protocol_version_mismatch(fake):
    board = fake(lambda line, b: healthy(line, b, proto=2))
    with pytest.raises(P.VersionMismatch, match="protocol 2"):
        open_link(board.port, timeout=2)


def test_port_vanished_and_busy(fake, tmp_path):
    with pytest.raises(BoardError, match="cannot open port"):
        open_link(str(tmp_path / "ttyACM9"), timeout=1)
    board = fake()
    with open_link(board.port, timeout=2):
        with pytest.raises(BoardError, match="busy"):
            open_link(board.port, timeout=1)


def test_fingerprint_guard_on_fake(fake):
    model = Model.from_arrays([[[1.0, 2.0]]], [[0.0]], name="other")
    board = fake()
    assert main(["check", _save(model), "--port", board.port, "--n", "5"]) == 3


def _save(model: Model) -> str:
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), f"{model.name}.json")
    model.save(path)
    return path


# ---- the real runtime on the virtual board -------------------------------------------
def wide_model() -> Model:
    r = np.random.default_rng(1)
    from boardnet.model import Normalization

    norm = Normalization("standard", r.normal(size=8) * 10, r.uniform(0.5, 3, size=8))
    return Model.from_arrays([r.normal(size=(16, 8)), r.normal(size=(1, 16))],
                             [r.normal(size=16), r.normal(size=1)], name="wide", normalization=norm)


@pytest.fixture(scope="module")
def sim_board():
    need_node()
    board = MicroPythonSim()
    board.start()
    yield board
    board.stop()


@pytest.mark.node
@pytest.mark.parametrize("make", [seed_model, wide_model], ids=["2-2-1", "8-16-1"])
def test_check_passes_on_the_virtual_board(make, sim_board, capsys):
    model = make()
    info = deploy_micropython(forms.make(model), sim_board.port)
    assert info.fingerprint == model.fingerprint() and info.platform == "webassembly"
    status = main(["check", _save(model), "--port", sim_board.port, "--n", "1000", "--json"])
    out = capsys.readouterr().out
    assert status == 0, out
    import json

    report = json.loads(out)
    assert report["passed"] and report["n"] == 1000 and report["class_agreement"] == 1.0
    assert report["us_per_inference"] > 0


@pytest.mark.node
def test_check_fails_on_a_perturbed_copy(sim_board, capsys):
    from boardnet import codegen
    model = seed_model()
    W = [layer.W.copy() for layer in model.layers]
    W[1][0, 0] += 1e-3  # one weight nudged
    nudged = Model.from_arrays(W, [layer.b for layer in model.layers], name="seed")
    text = codegen.render_micropython(forms.make(nudged)).replace(nudged.fingerprint(), model.fingerprint())
    deploy_micropython(forms.make(model), sim_board.port, module_text=text)
    status = main(["check", _save(model), "--port", sim_board.port, "--n", "300"])
    out = capsys.readouterr().out
    assert status == 1
    assert out.startswith("FAIL") and "outside tolerance" in out


@pytest.mark.node
def test_fingerprint_guard_on_the_virtual_board(sim_board, capsys):
    deploy_micropython(forms.make(seed_model()), sim_board.port)
    other = wide_model()
    status = main(["check", _save(other), "--port", sim_board.port, "--n", "10"])
    err = capsys.readouterr().err
    assert status == 3
    assert "holds model 'seed' with fingerprint" in err and other.fingerprint() in err


@pytest.mark.node
def test_port_sim_shortcut_and_predict(tmp_path, capsys):
    need_node()
    path = _save(seed_model())
    assert main(["predict", path, "1.5", "2", "--port", "sim"]) == 0
    out = capsys.readouterr().out
    assert "host 0.43053" in out and "board 0.43053" in out


def test_cosine_similarity_is_clamped_to_one():
    """Identical host and board outputs whose float64 cosine rounds above 1 (1.0000000000000002)."""
    from boardnet.commands.check import compare

    rng = np.random.default_rng(0)
    while True:
        y = rng.uniform(0, 1, (int(rng.integers(2, 50)), 1)).astype(np.float32)
        v = y.astype(np.float64).ravel()
        if v @ v / (np.linalg.norm(v) * np.linalg.norm(v)) > 1.0:
            break
    info = P.board_info(P.parse_fields(hello_fields(fp=FORM.fingerprint).split()))
    report = compare(FORM, info, "fake", np.zeros((len(y), 2), np.float32), y, y.copy(), 1.0, None, "test")
    assert report.passed and report.cosine_similarity == 1.0
