"""The virtual MicroPython board: the official MicroPython WebAssembly build under Node.js,
behind a pseudo-terminal (node/bridge.mjs), so mpremote and pyserial talk to it as they
talk to a Raspberry Pi Pico on /dev/ttyACM0: friendly and raw REPL, raw-paste, soft reset
running boot.py and main.py, Ctrl-C, blocking sys.stdin reads. Its filesystem is a host
folder. docs/virtual-board.md lists the differences from a real board (the interpreter
computes in float64, for one).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from . import records
from .node import BridgedBoard, NodeBridge, ensure_node_modules

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


class MicroPythonSim(BridgedBoard):
    """A virtual MicroPython board on a pty, alive until ``stop()`` (or process exit).

    >>> with MicroPythonSim() as sim:           # doctest: +SKIP
    ...     serial.Serial(sim.port).write(b"print(1)\\r")

    ``fs_dir`` is the folder that is the board's filesystem; without one, a fresh
    temporary folder is made (and removed by ``stop()``).
    """

    kind = KIND
    description = DESCRIPTION
    runtime = "micropython"
    prefix = "boardnet-sim-"

    def __init__(self, fs_dir: Path | str | None = None, *, timeout: float = READY_TIMEOUT):
        super().__init__(timeout=timeout)
        self._fs_dir = Path(fs_dir) if fs_dir is not None else None
        self._active_fs: Path | None = None

    def _launch(self, tmp: Path) -> NodeBridge:
        self._active_fs = self._fs_dir if self._fs_dir is not None else tmp / "fs"
        return _bridge(self._active_fs, tmp, detached=False, timeout=self.timeout)

    def start(self, fs_dir: Path | str | None = None) -> str:
        """Boot the board (``boot.py``, then ``main.py`` if present); return its port."""
        if fs_dir is not None:
            self._fs_dir = Path(fs_dir)
        return super().start()

    @property
    def fs_dir(self) -> Path | None:
        """The host folder that is the board's filesystem."""
        return self._active_fs if self._bridge is not None else self._fs_dir

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
