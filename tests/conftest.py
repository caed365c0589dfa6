"""Shared fixtures and the rule for tests that need an outside tool.

A test that needs a tool which is missing skips with the reason, except when
BOARDNET_REQUIRE_TOOLS=1 (set by CI): then the missing tool is a failure, so nothing
silently stops being tested.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import tty
import types
from pathlib import Path

import numpy as np
import pytest
import serial
import serial.rfc2217

from boardnet import virtual
from boardnet.commands.demo import train_people
from boardnet.firmware.emulated import toolchain_missing
from boardnet.firmware.natmod import native_missing
from boardnet.model import Model, Normalization
from boardnet.virtual import rp2040
from boardnet.virtual.node import installed

REQUIRE_TOOLS = os.environ.get("BOARDNET_REQUIRE_TOOLS") == "1"


def need(ok: bool, reason: str) -> None:
    """Skip (or, under BOARDNET_REQUIRE_TOOLS=1, fail) when a tool is missing."""
    if ok:
        return
    if REQUIRE_TOOLS:
        pytest.fail(f"required tool missing: {reason}", pytrace=False)
    pytest.skip(reason)


def need_exe(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    need(not missing, "not on PATH: " + ", ".join(missing))


def need_emulated(target: str) -> None:
    """The cross compiler and QEMU for an emulated board ("m0", "rv32")."""
    missing = toolchain_missing(target)
    need(missing is None, missing or "")


def need_native(arch: str) -> None:
    """MPY_DIR (a MicroPython source tree), the cross compiler for `arch`, pyelftools and ar:
    what building a native module takes (firmware/natmod.py)."""
    missing = native_missing(arch)
    need(missing is None, missing or "")


def need_node() -> None:
    """Node.js and the virtual boards' npm packages (npm ci --prefix host/boardnet/virtual/node)."""
    need_exe("node")
    need(installed(), "the virtual boards' npm packages are missing: npm ci --prefix host/boardnet/virtual/node")


# ---- models the tests share ---------------------------------------------------------------
def sabotaged(module_text: str, fault: str, after: int = 300) -> str:
    """A generated MicroPython module whose predict() runs `fault` (a line of MicroPython) on
    its `after`-th call: a board that resets, stalls or raises in the middle of a check."""
    return module_text + f"""

_predict = predict
_calls = [0]


def predict(x, out=None):
    _calls[0] += 1
    if _calls[0] == {after}:
        {fault}
    return _predict(x, out)
"""


def seed_model(name: str = "seed", w: float = 1.5) -> Model:
    """A hand-set 2-2-1 network: the board tests' model (w moves one weight, for a changed copy)."""
    return Model.from_arrays([[[w, -2.0], [0.5, 0.25]], [[1.0, -1.0]]], [[0.1, -0.2], [0.3]], name=name)


@pytest.fixture(scope="session")
def people() -> Model:
    """The tutorial's network trained on its four people (the demo's model, seed 1)."""
    return train_people(1)


# ---- a board on a pseudo-terminal ---------------------------------------------------------
class PtyPeer:
    """The far end of a pseudo-terminal, standing in for a board: a thread answers what
    arrives. With `lines`, `respond(line, peer)` answers each line (without its end, empty
    lines skipped); otherwise `respond(data, peer)` answers each chunk of bytes. A None
    answer sends nothing; `greeting` is sent before anything arrives."""

    def __init__(self, respond, *, lines: bool = True, greeting: bytes = b""):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.respond, self.lines = respond, lines
        self.count = 0  # lines answered
        self.stopped = False
        if greeting:
            os.write(self.master, greeting)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def _answer(self, item) -> None:
        reply = self.respond(item, self) if self.respond else None
        if reply:
            os.write(self.master, reply)

    def run(self) -> None:
        buf = b""
        while not self.stopped:
            try:
                data = os.read(self.master, 4096)
                if not self.lines:
                    self._answer(data)
                    continue
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.strip(b"\r").decode("ascii", "replace")
                    if line:
                        self.count += 1
                        self._answer(line)
            except OSError:  # the test closed the port
                return

    def close(self) -> None:
        self.stopped = True
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pty_peer():
    """Make PtyPeers, closed at the end of the test."""
    made: list[PtyPeer] = []

    def make(respond, **options) -> PtyPeer:
        peer = PtyPeer(respond, **options)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


# ---- a board farm's port server (RFC 2217, as ser2net serves one) ---------------------------
class ModemlessPty(serial.Serial):
    """A virtual board's pseudo-terminal has no modem lines (ioctl says ENOTTY): setting them
    is ignored and reading them says quiet, as on a USB-CDC board with nothing wired."""

    def _update_dtr_state(self) -> None:
        try:
            super()._update_dtr_state()
        except OSError:
            pass

    def _update_rts_state(self) -> None:
        try:
            super()._update_rts_state()
        except OSError:
            pass

    def _line(self, name: str) -> bool:
        try:
            return getattr(serial.Serial, name).fget(self)
        except OSError:
            return False

    cts = property(lambda self: self._line("cts"))
    dsr = property(lambda self: self._line("dsr"))
    ri = property(lambda self: self._line("ri"))
    cd = property(lambda self: self._line("cd"))


class Rfc2217Server:
    """pyserial's RFC 2217 port manager in front of a board's port, one client at a time:
    what ser2net does for a board farm. `url` is the rfc2217:// URL to give boardnet."""

    def __init__(self, device: str) -> None:
        self.port = (serial.serial_for_url(device, timeout=0.02) if "://" in device
                     else ModemlessPty(device, timeout=0.02))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"rfc2217://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            wire = types.SimpleNamespace(write=conn.sendall)  # what PortManager writes to
            manager = serial.rfc2217.PortManager(self.port, wire)
            done = threading.Event()

            def board_to_client(conn=conn, manager=manager, done=done) -> None:
                while not done.is_set():
                    try:
                        data = self.port.read(self.port.in_waiting or 1)
                        if data:
                            conn.sendall(b"".join(manager.escape(data)))
                    except OSError:
                        return

            reader = threading.Thread(target=board_to_client, daemon=True)
            reader.start()
            try:
                while data := conn.recv(4096):
                    self.port.write(b"".join(manager.filter(data)))
            except OSError:
                pass
            done.set()
            reader.join()
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self.port.close()


# ---- the emulated Raspberry Pi Pico (tests/test_pico_*.py) ---------------------------------


def need_pico() -> None:
    need_node()
    for var in (rp2040.FIRMWARE_ENV, rp2040.BOOTROM_ENV):
        need(bool(os.environ.get(var)) and Path(os.environ[var]).is_file(),
             f"{var} is not set to a file (the MicroPython UF2 for the Pico, the RP2040 boot ROM)")


def need_pico_sdk() -> None:
    need_pico()
    need_exe("cmake", "arm-none-eabi-gcc")
    need(bool(os.environ.get("PICO_SDK_PATH")), "PICO_SDK_PATH is not set")
    need(bool(os.environ.get("PICOTOOL_FETCH_FROM_GIT_PATH")) or shutil.which("picotool") is not None,
         "no picotool for the pico-sdk: set PICOTOOL_FETCH_FROM_GIT_PATH (README)")


def random_model(sizes: list[int], seed: int, name: str) -> Model:
    rng = np.random.default_rng(seed)
    norm = Normalization("standard", rng.normal(size=sizes[0]) * 5, rng.uniform(0.5, 3, size=sizes[0]))
    Ws = [rng.normal(0, 1 / np.sqrt(i), size=(o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(0, 0.5, size=o) for o in sizes[1:]]
    labels = [str(k) for k in range(sizes[-1])] if sizes[-1] > 1 else None
    return Model.from_arrays(Ws, bs, name=name, normalization=norm, labels=labels)


@pytest.fixture(scope="module")
def pico_models(people, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("models")
    made = {"2-2-1": people, "8-16-1": random_model([8, 16, 1], 1, "net8"),
            "30-16-8-3": random_model([30, 16, 8, 3], 2, "net30")}
    return {net: str(m.save(folder / f"{m.name}.json")) for net, m in made.items()}


@pytest.fixture(scope="module")
def pico_state(tmp_path_factory):
    """Records of this module's boards that stay up, apart from the user's; all stopped after."""
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    virtual.stop_persistent()
    if old is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = old


def run_json(*args: str) -> tuple[int, dict]:
    r = subprocess.run([*BOARDNET, *args, "--json"], capture_output=True, text=True, timeout=600)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else {"stderr": r.stderr})


NETS = ["2-2-1", "8-16-1", "30-16-8-3"]
BOARDNET = [sys.executable, "-m", "boardnet.cli"]  # the CLI as a user runs it
