"""Virtual boards that run under Node.js behind a pseudo-terminal: the MicroPython
WebAssembly build (node/bridge.mjs) and, with rp2040js, real Pico firmware.

The npm packages are pinned in node/package-lock.json. `NodeBridge` starts a bridge script
on a fresh pty pair and waits until it says it has booted; pyserial and mpremote then open
the pty's slave end as they open /dev/ttyACM0.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import subprocess
import tempfile
import time
import tty
import weakref
from pathlib import Path

from ..errors import BoardError
from ..files import cache_dir
from ..tools import run
from .records import alive, proc_start, terminate

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_MIN_MAJOR = 18
# Files that show an npm package is installed, by package.
PACKAGES = {"@micropython/micropython-webassembly-pyscript": "micropython.mjs"}


def find_node() -> str:
    """The ``node`` executable (Node.js 18 or newer), or a BoardError saying what to install."""
    node = shutil.which("node")
    if node is None:
        raise BoardError("virtual boards need Node.js (18 or newer): install nodejs and npm")
    out = run([node, "--version"], f"{node} --version", timeout=10).stdout
    try:
        major = int(out.strip().lstrip("v").split(".")[0])
    except ValueError:
        raise BoardError(f"{node} --version printed {out.strip()!r}") from None
    if major < NODE_MIN_MAJOR:
        raise BoardError(f"virtual boards need Node.js {NODE_MIN_MAJOR} or newer (found {out.strip()})")
    return node


def installed(node_modules: Path = NODE_DIR / "node_modules") -> bool:
    """Whether `node_modules` holds every pinned package."""
    return all((node_modules / name / probe).is_file() for name, probe in PACKAGES.items())


def ensure_node_modules(package_dir: Path | None = None) -> Path:
    """The node_modules folder with the pinned packages.

    In a checkout it is ``host/boardnet/virtual/node/node_modules`` (``npm ci --prefix
    host/boardnet/virtual/node``). An installed wheel ships only package.json and the lock
    file: they are copied to ``<cache>/node`` and ``npm ci`` runs there once.
    """
    package_dir = NODE_DIR if package_dir is None else Path(package_dir)
    local = package_dir / "node_modules"
    if installed(local):
        return local
    lock = package_dir / "package-lock.json"
    if not lock.is_file():
        raise BoardError(f"the virtual boards' package-lock.json is missing from {package_dir}")
    target = cache_dir() / "node"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one npm ci at a time per cache
        cached_lock = target / "package-lock.json"
        if installed(target / "node_modules") and cached_lock.is_file() \
                and cached_lock.read_bytes() == lock.read_bytes():
            return target / "node_modules"
        find_node()
        npm = shutil.which("npm")
        if npm is None:
            raise BoardError("virtual boards need npm to install their packages: install npm "
                             "(it comes with Node.js)")
        shutil.copyfile(package_dir / "package.json", target / "package.json")
        shutil.copyfile(lock, cached_lock)
        run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(target)], f"npm ci in {target}")
        if not installed(target / "node_modules"):
            raise BoardError(f"npm ci in {target} did not install {', '.join(PACKAGES)}")
    return target / "node_modules"


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


class NodeBridge:
    """A bridge process serving a fresh pty, started and waited for until it booted.

    `script` is a bridge under node/ taking ``--master-fd --slave-fd --ready-fd
    [--lifeline]`` and `args`. `detached`: the bridge outlives this process (its own session,
    not our child); otherwise it exits when this process does (its stdin is our pipe).
    """

    def __init__(self, script: str, args: list[str], state_dir: Path, *, what: str,
                 detached: bool, timeout: float) -> None:
        node = find_node()
        state_dir.mkdir(parents=True, exist_ok=True)
        self.what = what
        self.log = state_dir / "bridge.log"
        self.link = state_dir / "tty"
        master, slave = os.openpty()
        ready_r, ready_w = os.pipe()
        try:
            # Bytes pass untouched, as on a USB CDC port: no echo, no CR/LF mapping.
            tty.setraw(slave)
            self.port = os.ttyname(slave)
            argv = [node, str(NODE_DIR / script), "--master-fd", str(master),
                    "--slave-fd", str(slave), "--ready-fd", str(ready_w), *args]
            with open(self.log, "ab") as log:
                if detached:
                    # Through sh, so the bridge is not our child (no zombie to reap)
                    # and sits in its own session, away from our terminal's signals.
                    sh = subprocess.Popen(
                        ["/bin/sh", "-c", '"$@" </dev/null >>"$0" 2>&1 & echo $!', str(self.log)] + argv,
                        stdout=subprocess.PIPE, stderr=log,
                        pass_fds=(master, slave, ready_w), start_new_session=True,
                    )
                    out, _ = sh.communicate(timeout=10)
                    self.proc = None
                    self.pid = int(out.decode().strip())
                else:
                    # The bridge exits when its stdin (held by this process) closes.
                    self.proc = subprocess.Popen(
                        [*argv, "--lifeline"], stdin=subprocess.PIPE, stdout=log, stderr=log,
                        pass_fds=(master, slave, ready_w),
                    )
                    self.pid = self.proc.pid
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            for fd in (master, slave, ready_w):
                os.close(fd)
        self.proc_start = proc_start(self.pid)
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
                raise BoardError(f"the {self.what} did not boot within {timeout:g} s (log: {self.log})")
            readable, _, _ = select.select([fd], [], [], min(left, 0.2))
            if readable:
                if os.read(fd, 64).startswith(b"ready"):
                    return
                detail = _tail(self.log) or "no output"
                raise BoardError(f"the {self.what} failed to start: {detail}")

    @property
    def running(self) -> bool:
        return alive(self.pid, self.proc_start)

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
            terminate(self.pid, self.proc_start)
        if self.link.is_symlink():
            self.link.unlink()


def _cleanup(bridge: NodeBridge | None, tmp: Path | None) -> None:
    if bridge is not None:
        bridge.kill()
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


class BridgedBoard:
    """A virtual board for one command, served by a Node bridge on a pty: alive from
    `start()` (which returns its port) until `stop()` or the end of this process, with a
    temporary state folder that goes with it. Subclasses say how to launch the bridge."""

    prefix = "boardnet-board-"

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self._bridge: NodeBridge | None = None
        self._finalizer: weakref.finalize | None = None

    def _launch(self, tmp: Path) -> NodeBridge:
        raise NotImplementedError

    def start(self) -> str:
        if self._bridge is not None:
            raise BoardError(f"the virtual board is already running on {self.port}")
        tmp = Path(tempfile.mkdtemp(prefix=self.prefix))
        try:
            self._bridge = self._launch(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._finalizer = weakref.finalize(self, _cleanup, self._bridge, tmp)
        return self._bridge.port

    def stop(self) -> None:
        """Stop the bridge; the temporary folder goes with it."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self._bridge = None

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

    def __enter__(self):
        if self._bridge is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
