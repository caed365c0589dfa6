"""Talking to a MicroPython board with mpremote, MicroPython's own tool: run a command, copy
files, run boardnet's board-side scripts (link/scripts/*.py: probe, rename, remove), and
start the serve loop at the REPL.

mpremote sends Ctrl-C and enters the raw REPL: whatever runs on the board stops.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..codegen.mpy import board_abi
from ..errors import BoardError
from ..tools import last_line, run
from .session import open_serial

MPREMOTE_TIMEOUT = 60.0
MODEL_MODULE = "boardnet_model"  # the name the serve loop imports
SERVE_MODULE = "boardnet_serve"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
PROBE_MARK = "BOARDNET-PROBE "
DONE = "BOARDNET-DONE"


def _explain(stderr: str) -> str:
    """mpremote's last line, with what a board's errno means for a deploy."""
    detail = last_line(stderr)
    if "EROFS" in detail or "Errno 30" in detail or "read-only" in detail.lower():
        return (f"{detail} -- the board's filesystem is read-only (mounted readonly, or "
                "shared as a USB drive): remount it writable and deploy again")
    if "ENOSPC" in detail or "Errno 28" in detail:
        return f"{detail} -- the board's filesystem is full: delete files (mpremote fs rm) and deploy again"
    if "could not enter raw repl" in detail:
        return f"{detail} -- is MicroPython running there? (`boardnet boards --probe`)"
    return detail


def mpremote(port: str, *commands: list[str], timeout: float = MPREMOTE_TIMEOUT) -> str:
    """Run `mpremote connect PORT cmd1 + cmd2 ...`; its stdout, or a BoardError."""
    argv = [sys.executable, "-m", "mpremote", "connect", port]
    for i, command in enumerate(commands):
        argv += (["+"] if i else []) + command
    return run(argv, f"mpremote on {port}", timeout=timeout, detail=_explain).stdout


@cache
def _script_text(name: str) -> str:
    return (SCRIPTS / f"{name}.py").read_text()


def script(name: str, **values: Any) -> str:
    """The board-side script link/scripts/<name>.py, with `values` assigned above it as
    Python literals (they are the script's arguments)."""
    head = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    return head + _script_text(name)


def copy_files(port: str, files: dict[str, Path], timeout: float = MPREMOTE_TIMEOUT) -> None:
    """Copy host files to the board's root, as {board name: host path}."""
    mpremote(port, *[["fs", "cp", str(src), f":{name}"] for name, src in files.items()],
             timeout=timeout)


def rename(port: str, renames: list[tuple[str, str]], remove: list[str], timeout: float) -> None:
    """Rename files on the board (NAME.part to NAME) and remove others, in one mpremote exec."""
    out = mpremote(port, ["exec", script("rename", RENAMES=renames, REMOVE=remove, DONE=DONE)],
                   timeout=timeout)
    if DONE not in out:
        raise BoardError(f"renaming the copied files on {port} did not finish: {out.strip()[-120:]!r}")


def remove(port: str, names: list[str]) -> None:
    """Best effort: remove files (half-written NAME.part ones; the board may be gone)."""
    try:
        mpremote(port, ["exec", script("remove", NAMES=names)], timeout=10.0)
    except BoardError:
        pass


# ---- what the board says about itself ------------------------------------------------------
@dataclass
class MicroPythonFacts:
    """What a MicroPython board reports about itself (scripts/probe.py)."""

    version: str
    platform: str
    machine: str
    mpy: int | None  # sys.implementation._mpy: version | sub-version << 8 | arch << 10
    double: bool
    mem_free: int
    mem_alloc: int = 0
    fs_free: int | None = None
    fs_total: int | None = None
    fs_block: int | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    fingerprint: str | None = None

    @property
    def mpy_version(self) -> tuple[int, int, str] | None:
        """(version, sub-version, arch) of the .mpy files this board imports."""
        return None if self.mpy is None else board_abi(self.mpy)

    @property
    def float_precision(self) -> str:
        return "float64" if self.double else "float32"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.mpy_version:
            v, sub, arch = self.mpy_version
            d["mpy_abi"] = {"version": v, "sub_version": sub, "arch": arch}
        d["float"] = self.float_precision
        return d


def parse_probe(output: str) -> MicroPythonFacts:
    for line in output.splitlines():
        if line.startswith(PROBE_MARK):
            r = json.loads(line[len(PROBE_MARK):])
            keys = MicroPythonFacts.__dataclass_fields__
            return MicroPythonFacts(**{k: v for k, v in r.items() if k in keys})
    raise BoardError(f"the board's probe printed no result: {output.strip()[-120:]!r}")


def probe(port: str, timeout: float = 15.0) -> MicroPythonFacts:
    """Ask a MicroPython board for its version, .mpy ABI, float precision, free heap and
    filesystem and the boardnet files it holds."""
    return parse_probe(mpremote(port, ["exec", script("probe")], timeout=timeout))


# ---- the serve loop ---------------------------------------------------------------------------
def start_serve_loop(
    port: str, baud: int = 115200, module: str = MODEL_MODULE, timeout: float = 10.0
) -> None:
    """Start the serve loop at the friendly REPL and wait for its READY line."""
    ser = open_serial(port, baud)
    try:
        # Ctrl-C twice stops whatever runs (an older serve loop, a program); Ctrl-B leaves
        # the raw REPL mpremote may have left behind, for the friendly prompt.
        ser.write(b"\r\x03\x03\x02")
        time.sleep(0.2)
        ser.reset_input_buffer()
        call = f"import {SERVE_MODULE}; {SERVE_MODULE}.main()" if module == MODEL_MODULE else (
            f"import {SERVE_MODULE}; {SERVE_MODULE}.main({module!r})"
        )
        ser.write(call.encode() + b"\r")
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            seen += ser.read(max(1, ser.in_waiting))
            ready = seen.find(b"READY ")
            if ready >= 0 and b"\n" in seen[ready:]:
                return
            if b"Traceback" in seen and seen.rstrip().endswith(b">>>"):
                tail = seen.decode("ascii", "replace").strip().splitlines()
                why = tail[-2] if len(tail) > 1 else tail
                raise BoardError(f"the serve loop did not start on {port}: {why}")
        raise BoardError(f"the serve loop printed no READY line on {port} within {timeout:g} s")
    finally:
        ser.close()
