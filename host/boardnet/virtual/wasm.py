"""The virtual MicroPython board: the official MicroPython WebAssembly build under Node.js,
behind a pseudo-terminal (node/bridge.mjs), so mpremote and pyserial talk to it as they
talk to a Raspberry Pi Pico on /dev/ttyACM0: friendly and raw REPL, raw-paste, soft reset
running boot.py and main.py, Ctrl-C, blocking sys.stdin reads. Its filesystem is a host
folder. docs/virtual-board.md lists the differences from a real board (the interpreter
computes in float64, for one).
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
import weakref
from pathlib import Path

from ..errors import BoardError
from . import records
from .node import NodeBridge, ensure_node_modules

KIND = "mp"
DESCRIPTION = "virtual MicroPython board (WebAssembly)"
READY_TIMEOUT = 20.0

# What the virtual MicroPython board computes with; rp2 and esp32 builds use float32.
FLOAT_FACTS = {"float": "float64", "mant_dig": 53, "epsilon": 2.0**-52}


def _bridge(fs_dir: Path, state_dir: Path, *, detached: bool, timeout: float) -> NodeBridge:
    fs_dir.mkdir(parents=True, exist_ok=True)
    args = ["--fs", str(fs_dir), "--node-modules", str(ensure_node_modules())]
    return NodeBridge("bridge.mjs", args, state_dir, what="virtual MicroPython board",
                      detached=detached, timeout=timeout)


def _cleanup(bridge: NodeBridge | None, tmp: Path | None) -> None:
    if bridge is not None:
        bridge.kill()
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


class MicroPythonSim:
    """A virtual MicroPython board on a pty, alive until ``stop()`` (or process exit).

    >>> with MicroPythonSim() as sim:           # doctest: +SKIP
    ...     serial.Serial(sim.port).write(b"print(1)\\r")

    ``fs_dir`` is the folder that is the board's filesystem; without one, a fresh
    temporary folder is made (and removed by ``stop()``).
    """

    kind = KIND
    description = DESCRIPTION
    runtime = "micropython"

    def __init__(self, fs_dir: Path | str | None = None, *, timeout: float = READY_TIMEOUT):
        self._fs_dir = Path(fs_dir) if fs_dir is not None else None
        self.timeout = timeout
        self._bridge: NodeBridge | None = None
        self._tmp: Path | None = None
        self._finalizer: weakref.finalize | None = None

    def start(self, fs_dir: Path | str | None = None) -> str:
        """Boot the board (``boot.py``, then ``main.py`` if present); return its port."""
        if self._bridge is not None:
            raise BoardError(f"the virtual board is already running on {self.port}")
        if fs_dir is not None:
            self._fs_dir = Path(fs_dir)
        self._tmp = Path(tempfile.mkdtemp(prefix="boardnet-sim-"))
        fs = self._fs_dir if self._fs_dir is not None else self._tmp / "fs"
        try:
            self._bridge = _bridge(fs, self._tmp, detached=False, timeout=self.timeout)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            raise
        self._active_fs = fs
        self._finalizer = weakref.finalize(self, _cleanup, self._bridge, self._tmp)
        return self._bridge.port

    def stop(self) -> None:
        """Stop the bridge; a temporary filesystem folder goes with it."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self._bridge = None
        self._tmp = None

    @property
    def running(self) -> bool:
        return self._bridge is not None and self._bridge.running

    @property
    def port(self) -> str | None:
        """The pty slave (``/dev/pts/N``): a device name for pyserial and mpremote."""
        return self._bridge.port if self._bridge else None

    url = port

    @property
    def link(self) -> Path | None:
        """A symlink to the port in the board's state folder."""
        return self._bridge.link if self._bridge else None

    @property
    def log_path(self) -> Path | None:
        return self._bridge.log if self._bridge else None

    @property
    def pid(self) -> int | None:
        return self._bridge.pid if self._bridge else None

    @property
    def fs_dir(self) -> Path | None:
        """The host folder that is the board's filesystem."""
        if self._bridge is not None:
            return self._active_fs
        return self._fs_dir

    def __enter__(self) -> MicroPythonSim:
        if self._bridge is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"on {self.port}" if self._bridge else "stopped"
        return f"<MicroPythonSim {state}, fs {self.fs_dir}>"


def start_persistent(timeout: float = READY_TIMEOUT) -> dict:
    """A detached virtual MicroPython board that outlives this process; its record."""
    home = records.sims_dir() / KIND
    fs = home / "fs"
    bridge = _bridge(fs, home, detached=True, timeout=timeout)
    record = {
        "kind": KIND,
        "pid": bridge.pid,
        "port": bridge.port,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fs_dir": str(fs),
        "extra": {"link": str(bridge.link), "log": str(bridge.log), "proc_start": bridge.proc_start,
                  "board": DESCRIPTION, **FLOAT_FACTS},
    }
    records.write(record)
    return record


def fresh(form=None, runtime: str = "micropython") -> MicroPythonSim:
    """A virtual MicroPython board for one command (the model is deployed by mpremote)."""
    return MicroPythonSim()


def persist(form=None, runtime: str = "micropython", **options) -> dict:
    """The virtual MicroPython board that stays up: the running one, or a new one."""
    return records.find(KIND) or start_persistent(**options)
