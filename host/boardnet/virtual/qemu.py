"""Emulated boards running boardnet's C firmware: QEMU with its serial port on a local TCP
socket (firmware/README.md says what these boards prove and what they do not).

    with CFirmwareBoard(form, "m0") as board:  # the firmware built with the form's header
        link = open_link(board.url)
    with Emulator() as emu:                    # any firmware ELF
        url = emu.start("m0", elf)              # "socket://127.0.0.1:PORT"

QEMU listens with ``wait=on``: the machine starts only when the first client connects, so
no byte the firmware sends at boot is lost and the run is the same every time. Timing is
deterministic too: ``-icount`` makes virtual time a function of the instruction count.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..errors import BoardError, UsageError
from ..firmware.emulated import ICOUNT_SHIFT, build_firmware, target_info
from ..forms import Form
from . import records

KINDS = {
    "m0": "emulated Cortex-M0 board (QEMU microbit), C firmware: the Pico's stand-in",
    "rv32": "emulated RISC-V board (QEMU virt, rv32imc), C firmware: the ESP32-C3's stand-in",
}
MACHINE_ARGS: dict[str, tuple[str, ...]] = {
    "m0": ("-M", "microbit"),
    # No FPU and no atomics: the ESP32-C3 is rv32imc. 16M covers virt.ld's 4M + 400K.
    "rv32": ("-M", "virt", "-bios", "none", "-cpu", "rv32,a=false,f=false,d=false", "-m", "16M"),
}

# Emulators not yet stopped; the atexit hook ends them when Python exits.
_running: set[Emulator] = set()


def command(target: str, firmware: Path, port: int, icount_shift: int = ICOUNT_SHIFT) -> list[str]:
    """The QEMU command line that boots `firmware` with its serial port on 127.0.0.1:`port`."""
    return [
        target_info(target).qemu,
        *MACHINE_ARGS[target],
        "-nographic",
        "-monitor",
        "none",
        # nodelay: without it Nagle holds each short reply back, ~44 ms per line.
        "-serial",
        f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
        "-icount",
        f"shift={icount_shift}",
        "-kernel",
        str(firmware),
    ]


class Emulator:
    """One QEMU process running one emulated board; `stop` (or leaving the `with`) ends it."""

    def __init__(self) -> None:
        self.target: str | None = None
        self.port: int | None = None
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(
        self,
        target: str,
        firmware_path: Path,
        icount_shift: int = ICOUNT_SHIFT,
        *,
        timeout: float = 10.0,
        die_with_parent: bool = True,
    ) -> str:
        """Boot `firmware_path` on `target` ("m0" or "rv32"); return its pyserial URL.

        The firmware's instruction counts are right only when `icount_shift` is the shift it
        was built for (`boardnet.firmware.ICOUNT_SHIFT`). With `die_with_parent` (Linux) QEMU
        is killed when this process dies, even by SIGKILL; pass False for an emulator that
        must outlive it (then it also gets its own session, away from the terminal's Ctrl-C).
        """
        if self.running:
            raise BoardError(f"emulator already running ({self.target} on {self.url})")
        target_info(target)
        if target not in MACHINE_ARGS:
            raise BoardError(f"no emulator for target {target!r}")
        firmware_path = Path(firmware_path)
        if not firmware_path.is_file():
            raise BoardError(f"firmware not found: {firmware_path}")
        if not 0 <= icount_shift <= 10:
            raise BoardError(f"icount shift must be 0..10, not {icount_shift}")

        # A port picked free can be taken before QEMU binds it; then pick another.
        for _attempt in range(3):
            port = _free_port()
            self._launch(command(target, firmware_path, port, icount_shift), die_with_parent)
            if self._wait_listening(port, timeout):
                break
            tail = self._stop_and_tail()
            if "Address already in use" not in tail:
                raise BoardError(f"{target} emulator did not start: {tail or 'no message'}")
        else:
            raise BoardError(f"{target} emulator: no free TCP port after 3 attempts")

        self.target, self.port = target, port
        self.url = f"socket://127.0.0.1:{port}"
        _running.add(self)
        return self.url

    def stop(self) -> None:
        """End QEMU (SIGTERM, then SIGKILL after 2 s); harmless when not running."""
        self._stop_and_tail()
        self.url = self.port = None
        _running.discard(self)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _launch(self, cmd: list[str], die_with_parent: bool) -> None:
        self._stderr.clear()
        self._listening.clear()
        # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only the main
        # thread asks for it; other callers rely on stop() and the atexit hook.
        tie = die_with_parent and sys.platform.startswith("linux")
        tie = tie and threading.current_thread() is threading.main_thread()
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent(os.getpid()) if tie else None,
                start_new_session=not die_with_parent,
            )
        except OSError as e:
            raise BoardError(f"cannot run {cmd[0]}: {e}") from e
        self._reader = threading.Thread(target=self._read_stderr, args=(self._proc,), daemon=True)
        self._reader.start()

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr.append(line)
            # Printed once the socket listens, just before QEMU blocks for the first client.
            if "waiting for connection" in line:
                self._listening.set()

    def _wait_listening(self, port: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._listening.wait(0.02):
                return True
            if self._proc is None or self._proc.poll() is not None:
                return False
        # No message seen (another QEMU's wording?): fall back to connecting. That first
        # connection starts the machine; QEMU listens again when it closes.
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return True
        except OSError:
            return False

    def _stop_and_tail(self) -> str:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if self._reader is not None:
                self._reader.join(timeout=2)
            if proc.stderr is not None:
                proc.stderr.close()
        return " | ".join(ln for ln in self._stderr if "waiting for connection" not in ln)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent(parent_pid: int):
    def preexec() -> None:
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


@atexit.register
def _stop_all() -> None:
    for emu in list(_running):
        emu.stop()


class CFirmwareBoard:
    """A fresh emulated board running the C firmware built with `form`; `stop()` ends it."""

    runtime = "c"

    def __init__(self, form: Form, target: str) -> None:
        if target not in KINDS:
            raise BoardError(f"unknown emulated board {target!r}; expected one of {', '.join(KINDS)}")
        self.form = form
        self.kind = self.target = target
        self.description = KINDS[target]
        self.emulator = Emulator()
        self.url: str | None = None

    def start(self, timeout: float = 10.0) -> str:
        elf = build_firmware(self.form, self.target)
        self.url = self.emulator.start(self.target, elf, timeout=timeout)
        return self.url

    def stop(self) -> None:
        self.emulator.stop()
        self.url = None

    def __enter__(self) -> CFirmwareBoard:
        if self.url is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_persistent(kind: str, form: Form, timeout: float = 20.0) -> dict:
    """A detached emulated board of `kind` running the firmware built with `form`, which
    outlives this process; its record. The running board of this kind is kept when it
    serves this form's model, and stopped first when it serves another."""
    if kind not in KINDS:
        raise BoardError(f"unknown emulated board {kind!r}; expected one of {', '.join(KINDS)}")
    running = records.find(kind)
    if running is not None:
        if (running.get("extra") or {}).get("fingerprint") == form.fingerprint:
            return running
        records.stop(kind)
    elf = build_firmware(form, kind)
    home = records.sims_dir() / kind
    home.mkdir(parents=True, exist_ok=True)
    log = home / "qemu.log"
    deadline = time.monotonic() + timeout
    for _attempt in range(3):
        port = _free_port()
        with open(log, "wb") as err:
            # Its own session and no pipe to us: the board outlives this process.
            proc = subprocess.Popen(
                command(kind, elf, port), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True,
            )
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "waiting for connection" in text or proc.poll() is not None:
                break
            time.sleep(0.02)
        if proc.poll() is None:
            break
        if "Address already in use" not in log.read_text(errors="replace"):
            raise BoardError(f"{kind} emulator did not start: {log.read_text(errors='replace').strip()}")
    else:
        raise BoardError(f"{kind} emulator: no free TCP port after 3 attempts")
    record = {
        "kind": kind,
        "pid": proc.pid,
        "port": f"socket://127.0.0.1:{port}",
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fs_dir": None,
        "extra": {
            "proc_start": records.proc_start(proc.pid),
            "log": str(log),
            "board": KINDS[kind],
            "model": form.model.name,
            "fingerprint": form.fingerprint,
            "precision": form.precision,
            "firmware": str(elf),
        },
    }
    records.write(record)
    return record


def fresh(kind: str, form: Form | None, runtime: str = "c") -> CFirmwareBoard:
    if form is None:
        raise BoardError(f"the {KINDS[kind]} runs firmware built with a model; this command has none")
    return CFirmwareBoard(form, kind)


def persist(kind: str, form: Form | None, runtime: str = "c", **options) -> dict:
    if form is None:
        raise UsageError(f"`sim start {kind}` needs the model its firmware is built with: --model M.json")
    return start_persistent(kind, form, **options)
