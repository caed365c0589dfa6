"""Virtual boards: a MicroPython board that lives on a pseudo-terminal.

The official MicroPython WebAssembly build runs under Node.js behind a small bridge
(``sim/bridge.mjs``) that serves a pty, so mpremote and pyserial talk to it as they
talk to a Raspberry Pi Pico on ``/dev/ttyACM0``: friendly and raw REPL, raw-paste,
soft reset running ``boot.py`` and ``main.py``, Ctrl-C, blocking ``sys.stdin`` reads.
The board's filesystem is a host folder. ``docs/virtual-board.md`` lists the
differences from a real board (the interpreter computes in float64, for one).

Two ways to run one:

- ``MicroPythonSim``: a board that lives as long as the Python object (or process);
- ``start_persistent()``: a detached board that outlives the caller, recorded under
  ``$XDG_STATE_HOME/boardnet/sims/`` (or ``~/.cache/boardnet/sims/``) so that
  ``boardnet boards`` and later commands find it. Other kinds of virtual board
  (QEMU firmware boards) record themselves there in the same shape.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import tty
import weakref
from collections.abc import Callable
from pathlib import Path

from .errors import BoardError, UsageError

SIM_DIR = Path(__file__).resolve().parent / "sim"
BRIDGE = SIM_DIR / "bridge.mjs"
WASM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
NODE_MIN_MAJOR = 18
READY_TIMEOUT = 20.0

# What the virtual MicroPython board computes with; rp2 and esp32 builds use float32.
FLOAT_FACTS = {"float": "float64", "mant_dig": 53, "epsilon": 2.0**-52}


# --------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """boardnet's cache folder: ``$XDG_CACHE_HOME/boardnet`` or ``~/.cache/boardnet``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "boardnet"


def sims_dir() -> Path:
    """Where persistent virtual boards are recorded, one ``<kind>.json`` each."""
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state) / "boardnet" if state else cache_dir()
    return base / "sims"


# --------------------------------------------------------------------- Node.js


def find_node() -> str:
    """The ``node`` executable (Node.js 18 or newer), or a BoardError saying what to install."""
    node = shutil.which("node")
    if node is None:
        raise BoardError(
            "the virtual MicroPython board needs Node.js (18 or newer): install nodejs and npm"
        )
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        major = int(out.strip().lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        raise BoardError(f"could not run {node} --version: {e}") from None
    if major < NODE_MIN_MAJOR:
        raise BoardError(
            f"the virtual MicroPython board needs Node.js {NODE_MIN_MAJOR} or newer "
            f"(found {out.strip()})"
        )
    return node


def _has_wasm(node_modules: Path) -> bool:
    return (node_modules / WASM_PACKAGE / "micropython.mjs").is_file()


def ensure_node_modules(package_dir: Path | None = None) -> Path:
    """The node_modules folder holding the MicroPython WebAssembly build.

    In a checkout it is ``host/boardnet/sim/node_modules`` (``npm ci --prefix
    host/boardnet/sim``). An installed wheel ships only package.json and the lock file:
    they are copied to ``<cache>/node`` and ``npm ci`` runs there once.
    """
    package_dir = SIM_DIR if package_dir is None else Path(package_dir)
    local = package_dir / "node_modules"
    if _has_wasm(local):
        return local
    lock = package_dir / "package-lock.json"
    if not lock.is_file():
        raise BoardError(f"the virtual board's package-lock.json is missing from {package_dir}")
    target = cache_dir() / "node"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one npm ci at a time per cache
        cached_lock = target / "package-lock.json"
        if (
            _has_wasm(target / "node_modules")
            and cached_lock.is_file()
            and cached_lock.read_bytes() == lock.read_bytes()
        ):
            return target / "node_modules"
        find_node()
        npm = shutil.which("npm")
        if npm is None:
            raise BoardError(
                "the virtual MicroPython board needs npm to install its WebAssembly build: "
                "install npm (it comes with Node.js)"
            )
        shutil.copyfile(package_dir / "package.json", target / "package.json")
        shutil.copyfile(lock, cached_lock)
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(target)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not _has_wasm(target / "node_modules"):
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise BoardError(f"npm ci in {target} failed: {last}")
    return target / "node_modules"


# --------------------------------------------------------------------- launching


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def _proc_start(pid: int) -> int | None:
    """Start time of a process in clock ticks (Linux), to tell it from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _alive(pid: int, proc_start: int | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(pid, 0)
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return False
    return proc_start is None or int(fields[19]) == proc_start


class _Launch:
    """A bridge process serving a fresh pty, started and waited for until it booted."""

    def __init__(
        self, fs_dir: Path, state_dir: Path, *, detached: bool, timeout: float
    ) -> None:
        node = find_node()
        node_modules = ensure_node_modules()
        fs_dir.mkdir(parents=True, exist_ok=True)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log = state_dir / "bridge.log"
        self.link = state_dir / "tty"
        master, slave = os.openpty()
        ready_r, ready_w = os.pipe()
        try:
            # Bytes pass untouched, as on a USB CDC port: no echo, no CR/LF mapping.
            tty.setraw(slave)
            self.port = os.ttyname(slave)
            args = [
                node, str(BRIDGE),
                "--master-fd", str(master), "--slave-fd", str(slave),
                "--ready-fd", str(ready_w),
                "--fs", str(fs_dir), "--node-modules", str(node_modules),
            ]  # fmt: skip
            with open(self.log, "ab") as log:
                if detached:
                    # Through sh, so the bridge is not our child (no zombie to reap)
                    # and sits in its own session, away from our terminal's signals.
                    sh = subprocess.Popen(
                        ["/bin/sh", "-c", '"$@" </dev/null >>"$0" 2>&1 & echo $!', str(self.log)]
                        + args,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        pass_fds=(master, slave, ready_w),
                        start_new_session=True,
                    )
                    out, _ = sh.communicate(timeout=10)
                    self.proc = None
                    self.pid = int(out.decode().strip())
                else:
                    # The bridge exits when its stdin (held by this process) closes.
                    self.proc = subprocess.Popen(
                        [*args, "--lifeline"],
                        stdin=subprocess.PIPE,
                        stdout=log,
                        stderr=log,
                        pass_fds=(master, slave, ready_w),
                    )
                    self.pid = self.proc.pid
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            for fd in (master, slave, ready_w):
                os.close(fd)
        self.proc_start = _proc_start(self.pid)
        try:
            self._wait_ready(ready_r, timeout)
        except BaseException:
            self.kill()
            raise
        finally:
            os.close(ready_r)
        if self.link.is_symlink() or self.link.exists():
            self.link.unlink()
        os.symlink(self.port, self.link)

    def _wait_ready(self, fd: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BoardError(
                    f"the virtual MicroPython board did not boot within {timeout:g} s "
                    f"(log: {self.log})"
                )
            readable, _, _ = select.select([fd], [], [], min(left, 0.2))
            if readable:
                if os.read(fd, 64).startswith(b"ready"):
                    return
                detail = _tail(self.log) or "no output"
                raise BoardError(f"the virtual MicroPython board failed to start: {detail}")

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()  # the lifeline: the bridge exits by itself
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)
        else:
            _terminate(self.pid, self.proc_start)
        if self.link.is_symlink():
            self.link.unlink()


def _terminate(pid: int, proc_start: int | None, timeout: float = 3.0) -> None:
    if not _alive(pid, proc_start):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, proc_start):
            return
        time.sleep(0.05)
    if _alive(pid, proc_start):
        os.kill(pid, signal.SIGKILL)


def _cleanup(launch: _Launch | None, tmp: Path | None) -> None:
    if launch is not None:
        launch.kill()
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------- one board


class MicroPythonSim:
    """A virtual MicroPython board on a pty, alive until ``stop()`` (or process exit).

    >>> with MicroPythonSim() as sim:           # doctest: +SKIP
    ...     serial.Serial(sim.port).write(b"print(1)\\r")

    ``fs_dir`` is the folder that is the board's filesystem; without one, a fresh
    temporary folder is made (and removed by ``stop()``).
    """

    kind = "mp"

    def __init__(self, fs_dir: Path | str | None = None, *, timeout: float = READY_TIMEOUT):
        self._fs_dir = Path(fs_dir) if fs_dir is not None else None
        self.timeout = timeout
        self._launch: _Launch | None = None
        self._tmp: Path | None = None
        self._finalizer: weakref.finalize | None = None

    def start(self, fs_dir: Path | str | None = None) -> str:
        """Boot the board (``boot.py``, then ``main.py`` if present); return its port."""
        if self._launch is not None:
            raise BoardError(f"the virtual board is already running on {self.port}")
        if fs_dir is not None:
            self._fs_dir = Path(fs_dir)
        self._tmp = Path(tempfile.mkdtemp(prefix="boardnet-sim-"))
        fs = self._fs_dir if self._fs_dir is not None else self._tmp / "fs"
        try:
            self._launch = _Launch(fs, self._tmp, detached=False, timeout=self.timeout)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            raise
        self._active_fs = fs
        self._finalizer = weakref.finalize(self, _cleanup, self._launch, self._tmp)
        return self._launch.port

    def stop(self) -> None:
        """Stop the bridge; a temporary filesystem folder goes with it."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self._launch = None
        self._tmp = None

    @property
    def running(self) -> bool:
        return self._launch is not None and _alive(self._launch.pid, self._launch.proc_start)

    @property
    def port(self) -> str | None:
        """The pty slave (``/dev/pts/N``): a device name for pyserial and mpremote."""
        return self._launch.port if self._launch else None

    @property
    def link(self) -> Path | None:
        """A symlink to the port in the sim's state folder."""
        return self._launch.link if self._launch else None

    @property
    def log_path(self) -> Path | None:
        return self._launch.log if self._launch else None

    @property
    def pid(self) -> int | None:
        return self._launch.pid if self._launch else None

    @property
    def fs_dir(self) -> Path | None:
        """The host folder that is the board's filesystem."""
        if self._launch is not None:
            return self._active_fs
        return self._fs_dir

    def __enter__(self) -> MicroPythonSim:
        if self._launch is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"on {self.port}" if self._launch else "stopped"
        return f"<MicroPythonSim {state}, fs {self.fs_dir}>"


# --------------------------------------------------------------------- persistent boards


def _record_path(kind: str) -> Path:
    return sims_dir() / f"{kind}.json"


def write_record(record: dict) -> Path:
    """Record a persistent virtual board (any kind) for ``list_persistent()``.

    Fields: ``kind``, ``pid``, ``port`` (a pyserial URL or device name), ``started``
    (ISO 8601), ``fs_dir`` (or None) and ``extra`` (a dict; ``extra["proc_start"]``,
    when present, guards against a reused pid).
    """
    path = _record_path(record["kind"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _record_alive(record: dict) -> bool:
    pid = record.get("pid")
    return isinstance(pid, int) and _alive(pid, (record.get("extra") or {}).get("proc_start"))


def _forget(path: Path, record: dict | None) -> None:
    path.unlink(missing_ok=True)
    link = ((record or {}).get("extra") or {}).get("link")
    if link and Path(link).is_symlink():
        Path(link).unlink()


def _records() -> list[tuple[Path, dict | None]]:
    folder = sims_dir()
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            out.append((path, None))
    return out


def list_persistent() -> list[dict]:
    """The persistent virtual boards that are running; records of dead ones are removed."""
    live = []
    for path, record in _records():
        if record is not None and _record_alive(record):
            live.append(record)
        else:
            _forget(path, record)
    return live


def _start_mp(timeout: float) -> dict:
    home = sims_dir() / "mp"
    fs = home / "fs"
    launch = _Launch(fs, home, detached=True, timeout=timeout)
    record = {
        "kind": "mp",
        "pid": launch.pid,
        "port": launch.port,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fs_dir": str(fs),
        "extra": {
            "link": str(launch.link),
            "log": str(launch.log),
            "proc_start": launch.proc_start,
            **FLOAT_FACTS,
        },
    }
    write_record(record)
    return record


def _start_c(kind: str) -> Callable[..., dict]:
    def start(timeout: float, model=None, **options) -> dict:
        from .csim import start_persistent as start_c  # QEMU boards running the C firmware

        return start_c(kind, model, timeout, **options)

    return start


# Starters of persistent boards by kind: (timeout, **options) -> record. The QEMU boards
# (m0, rv32) take the model to build their firmware with (options["model"]).
STARTERS: dict[str, Callable[..., dict]] = {"mp": _start_mp, "m0": _start_c("m0"), "rv32": _start_c("rv32")}


def start_persistent(kind: str = "mp", *, timeout: float = READY_TIMEOUT, **options) -> dict:
    """Start a detached virtual board of this kind (or find the running one); its record.

    `options` go to the kind's starter (the QEMU boards take ``model=``; they replace a
    running board of their kind that serves another model)."""
    if options.get("model") is None:
        for record in list_persistent():
            if record["kind"] == kind:
                return record
    starter = STARTERS.get(kind)
    if starter is None:
        known = ", ".join(sorted(STARTERS))
        raise UsageError(f"no virtual board of kind {kind!r} (known: {known})")
    if kind == "mp":
        return starter(timeout)
    return starter(timeout, **options)


def stop_persistent(kind: str | None = None) -> list[dict]:
    """Stop the persistent virtual boards (of one kind, or all); the records stopped."""
    stopped = []
    for path, record in _records():
        if record is not None and kind is not None and record.get("kind") != kind:
            continue
        if record is not None and _record_alive(record):
            _terminate(record["pid"], (record.get("extra") or {}).get("proc_start"))
            stopped.append(record)
        _forget(path, record)
    return stopped
