"""The virtual MicroPython board, driven as a real Pico would be: mpremote and pyserial.

Every test talks to the board through its pseudo-terminal only; the host folder that
is the board's filesystem is the one other window onto it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need_node

from boardnet import virtual
from boardnet.errors import BoardError, UsageError
from boardnet.virtual import node, records
from boardnet.virtual.wasm import MicroPythonSim

SERVE_LOOP = """\
import sys
count = 0
while True:
    line = sys.stdin.readline()
    count += 1
    sys.stdout.write('echo:' + line)
"""


def mpremote(port: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", port, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def read_until(ser, ending: bytes, timeout: float = 5.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(ending) and time.monotonic() < deadline:
        data += ser.read(max(1, ser.in_waiting))
    return data


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    need_node()
    fs = tmp_path_factory.mktemp("board-fs")
    with MicroPythonSim(fs) as s:
        yield s


@pytest.mark.node
def test_exec_and_run(board, tmp_path):
    assert mpremote(board.port, "exec", "print(1+1)").stdout == "2\n"
    script = tmp_path / "prog.py"
    script.write_text("for i in range(3):\n    print('line', i)\n")
    assert mpremote(board.port, "run", str(script)).stdout.splitlines() == [
        "line 0",
        "line 1",
        "line 2",
    ]


@pytest.mark.node
def test_errors_look_like_a_board(board):
    out = mpremote(board.port, "exec", "import os; os.stat('nope')", check=False)
    assert out.returncode == 1
    assert "OSError: [Errno 2] ENOENT" in out.stdout
    missing = mpremote(board.port, "fs", "cat", ":nope.txt", check=False)
    assert "No such file or directory" in missing.stderr


@pytest.mark.node
def test_fs_round_trip(board, tmp_path):
    local = tmp_path / "weights.bin"
    payload = bytes(range(256)) * 20 + b"\r\n\n\x04\x03"
    local.write_bytes(payload)
    mpremote(board.port, "fs", "cp", str(local), ":weights.bin")
    # the board's file is the host folder's file
    assert (board.fs_dir / "weights.bin").read_bytes() == payload
    listing = mpremote(board.port, "fs", "ls").stdout
    assert f"{len(payload)} weights.bin" in listing

    back = tmp_path / "back.bin"
    mpremote(board.port, "fs", "cp", ":weights.bin", str(back))
    assert back.read_bytes() == payload

    mpremote(board.port, "fs", "mkdir", ":lib")
    (board.fs_dir / "lib" / "helper.py").write_text("X = 41\n")
    assert mpremote(board.port, "exec", "import helper; print(helper.X + 1)").stdout == "42\n"

    mpremote(board.port, "fs", "rm", ":weights.bin")
    assert not (board.fs_dir / "weights.bin").exists()
    assert "weights.bin" not in mpremote(board.port, "fs", "ls").stdout


@pytest.mark.node
def test_soft_reset_keeps_files_not_state(board):
    mpremote(board.port, "exec", "open('kept.txt', 'w').write('still here'); lost = 1")
    mpremote(board.port, "soft-reset")
    out = mpremote(board.port, "resume", "exec", "print(open('kept.txt').read(), 'lost' in globals())")
    assert out.stdout == "still here False\n"


@pytest.mark.node
def test_main_py_serve_loop_answers_pyserial(board):
    import serial

    (board.fs_dir / "main.py").write_text(SERVE_LOOP)
    try:
        mpremote(board.port, "reset")  # machine.reset(): boot.py, then main.py
        with serial.Serial(board.port, 115200, timeout=0.2) as ser:
            # as with a real board, what is sent while it reboots is lost: poll
            deadline = time.monotonic() + 10
            while ser.readline() != b"echo:ping\r\n":
                assert time.monotonic() < deadline, "main.py does not answer"
                ser.write(b"ping\n")
            ser.timeout = 5
            # requests sent later than the board blocked in sys.stdin.readline()
            for i in range(50):
                ser.write(b"req %d\n" % i)
                assert ser.readline() == b"echo:req %d\r\n" % i
            ser.write(b"\x03")  # Ctrl-C: KeyboardInterrupt, back to the REPL
            out = read_until(ser, b">>> ")
            assert b"KeyboardInterrupt" in out and out.endswith(b">>> ")
            ser.write(b"print(count > 50)\r")
            assert b"True\r\n>>> " in read_until(ser, b">>> ")
        # main.py's globals are still there: resume does not soft-reset
        assert mpremote(board.port, "resume", "exec", "print(count > 50)").stdout == "True\n"
    finally:
        (board.fs_dir / "main.py").unlink()


@pytest.mark.node
def test_ctrl_c_stops_code_that_never_checks(board):
    import serial

    with serial.Serial(board.port, 115200, timeout=5) as ser:
        ser.write(b"\x03\x02")
        read_until(ser, b">>> ")
        ser.write(b"import time\rtime.sleep(30)\r")
        time.sleep(0.3)
        ser.write(b"\x03")
        assert b"KeyboardInterrupt" in read_until(ser, b">>> ", timeout=3)
        ser.write(b"while True: pass\r\r")
        time.sleep(0.3)
        ser.write(b"\x03")
        assert b"KeyboardInterrupt" in read_until(ser, b">>> ", timeout=8)
        ser.write(b"print(6 * 7)\r")
        assert b"42\r\n>>> " in read_until(ser, b">>> ")


@pytest.mark.node
def test_bridge_restart_keeps_files(tmp_path):
    need_node()
    fs = tmp_path / "flash"
    with MicroPythonSim(fs) as first:
        mpremote(first.port, "exec", "open('model.py', 'w').write('N_IN = 3')")
        assert first.link.resolve() == Path(first.port)
    assert not first.running
    with MicroPythonSim() as second:
        assert mpremote(second.port, "exec", "import os; print(os.listdir())").stdout == "[]\n"
    with MicroPythonSim(fs) as third:
        out = mpremote(third.port, "exec", "import model; print(model.N_IN)")
        assert out.stdout == "3\n"


@pytest.mark.node
def test_persistent_start_list_stop(tmp_path, monkeypatch):
    need_node()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert virtual.running() == []
    record = virtual.start_persistent("mp")
    try:
        assert record["kind"] == "mp" and record["port"].startswith("/dev/")
        assert set(record) >= {"kind", "pid", "port", "started", "fs_dir", "extra"}
        assert virtual.start_persistent("mp") == record  # already running: the same board
        assert virtual.running() == [record]
        assert mpremote(record["port"], "exec", "print('up')").stdout == "up\n"
        assert Path(record["fs_dir"]).is_dir()
    finally:
        stopped = virtual.stop_persistent()
    assert [r["pid"] for r in stopped] == [record["pid"]]
    assert virtual.running() == []
    assert not records.alive(record["pid"])


def test_persistent_unknown_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    with pytest.raises(UsageError, match="no virtual board of kind 'z80'"):
        virtual.start_persistent("z80")


def test_dead_records_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    records.write(
        {"kind": "m0", "pid": dead.pid, "port": "socket://localhost:1", "started": "",
         "fs_dir": None, "extra": {}}
    )  # fmt: skip
    assert virtual.running() == []
    assert not (records.sims_dir() / "m0.json").exists()


def test_missing_node_is_a_clear_board_error(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    shutil.copy(node.NODE_DIR / "package.json", pkg)
    shutil.copy(node.NODE_DIR / "package-lock.json", pkg)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(node.shutil, "which", lambda name: None)
    with pytest.raises(BoardError, match="need Node.js"):
        node.ensure_node_modules(pkg)
