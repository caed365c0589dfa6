"""The C firmware on the emulated boards: build it with a model, boot it under QEMU.

    elf = build_firmware(model, "m0")             # cached by the model's fingerprint
    with CFirmwareBoard(model, "rv32") as board:  # a fresh emulated board running it
        link = open_link(board.url)

`--port sim-m0` / `--port sim-rv32` (boardnet.ports) start such a board for one command;
`boardnet sim start m0 --model MODEL` starts one that stays up (`start_persistent`), recorded
with `boardnet.sim.write_record` so `boards`, `--port auto` and `sim stop` find it.
The firmware is firmware/emulated/main.c, the portable core (firmware/core) and the model's
exported header; firmware/README.md says what the emulators do and do not prove.
"""

from __future__ import annotations

import datetime
import socket
import subprocess
import time
from pathlib import Path

from . import firmware
from .emulator import Emulator, command
from .errors import BoardError, UsageError
from .export import c_prefix, export_c
from .resources import firmware_dir

KINDS = {
    "m0": "qemu-m0 (Cortex-M0, the Pico's stand-in)",
    "rv32": "qemu-rv32 (rv32imc, the ESP32-C3's stand-in)",
}
CORE_SOURCES = ("core/boardnet_serve.c", "core/boardnet_text.c", "core/boardnet_model.c")
MAIN = "emulated/main.c"
# QEMU's UARTs take a byte only when they have room, and then the socket back-end stops
# reading: unread requests wait in the TCP buffers and the host's writes block, flow control
# as on USB CDC. The core's window formula then reaches its cap of 32 for any small model.
RX_BUFFER = 4096


def sources() -> list[Path]:
    """The firmware's C files (the board layer is added by `firmware.build`)."""
    root = firmware_dir()
    return [root / MAIN, *(root / s for s in CORE_SOURCES)]


def model_header(model, out_dir: Path, precision: str = "f32") -> Path:
    """Export the model's C header: float32, or integer-only for precision "q15"."""
    return export_c(model, out_dir, precision)


def defines(model, rx_buffer: int = RX_BUFFER) -> dict[str, object]:
    """What boardnet_model.c needs to find the exported header (see its top comment)."""
    prefix = c_prefix(model.name)
    return {
        "BOARDNET_MODEL_HEADER": f'"{prefix}.h"',
        "BOARDNET_PREFIX": prefix,
        "BOARDNET_PREFIX_UPPER": prefix.upper(),
        "BOARD_RX_BUFFER": rx_buffer,
    }


def build_firmware(model, target: str, out_dir: Path | None = None, precision: str = "f32") -> Path:
    """The firmware ELF for `target` ("m0" or "rv32") serving `model`.

    Built once per fingerprint (and firmware source): later calls copy it from
    `firmware.cache_root()`. Warnings are errors (`firmware.WARNINGS`).
    """
    if target not in KINDS:
        raise UsageError(f"unknown emulated board {target!r}; expected one of {', '.join(KINDS)}")
    fp = model.fingerprint(precision)
    out = Path(out_dir) if out_dir is not None else firmware.cache_root() / "models" / f"{target}-{fp}"
    header_dir = out / "model"
    model_header(model, header_dir, precision)
    return firmware.build(target, sources(), [header_dir], out, defines(model))


class CFirmwareBoard:
    """A fresh emulated board running the C firmware with `model`; `stop()` ends it."""

    def __init__(self, model, target: str, precision: str = "f32") -> None:
        self.model = model
        self.target = target
        self.precision = precision
        self.emulator = Emulator()
        self.url: str | None = None

    def start(self, timeout: float = 10.0) -> str:
        elf = build_firmware(self.model, self.target, precision=self.precision)
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


# ---- persistent boards (`boardnet sim start m0 --model M`) -------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_persistent(kind: str, model=None, timeout: float = 20.0, precision: str = "f32") -> dict:
    """Start a detached emulated board of `kind` with `model` (or return the running one
    when it already serves this model; one serving another model is stopped first)."""
    from . import sim

    if kind not in KINDS:
        raise UsageError(f"unknown emulated board {kind!r}; expected one of {', '.join(KINDS)}")
    if model is None:
        raise UsageError(f"`sim start {kind}` needs the model to run: --model MODEL.json")
    fp = model.fingerprint(precision)
    for record in sim.list_persistent():
        if record["kind"] == kind:
            if (record.get("extra") or {}).get("fingerprint") == fp:
                return record
            sim.stop_persistent(kind)
    elf = build_firmware(model, kind, precision=precision)
    home = sim.sims_dir() / kind
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
            "proc_start": sim._proc_start(proc.pid),
            "log": str(log),
            "board": KINDS[kind],
            "model": model.name,
            "fingerprint": fp,
            "precision": precision,
            "firmware": str(elf),
        },
    }
    sim.write_record(record)
    return record
