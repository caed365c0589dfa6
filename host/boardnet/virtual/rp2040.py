"""The emulated Raspberry Pi Pico: real RP2040 firmware on rp2040js (Wokwi's emulator, npm)
behind a pseudo-terminal (node/rp2040/bridge.mjs) that behaves like a Pico's /dev/ttyACM0:
USB CDC with DTR following whether a program has the port open, the raw REPL and raw-paste
mpremote uses, soft reset, `machine.reset()` re-enumerating with the flash kept.

It runs either the official MicroPython firmware for the Pico (the RPI_PICO-*.uf2 a user
downloads from micropython.org) or boardnet's C firmware built with the pico-sdk
(firmware/pico). Neither file ships with boardnet; nor does the RP2040's 16 KiB boot ROM,
which rp2040js needs and does not include: their paths come from the environment
(BOARDNET_PICO_UF2, BOARDNET_RP2040_BOOTROM) or from `boardnet sim start pico --firmware
--bootrom`. Emulated time runs at 125 MHz by the cycle count (no flash wait states), so
on-board timings are emulated RP2040 cycles, not a real Pico's microseconds.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from ..errors import UsageError
from ..firmware.sdk import build_pico
from ..forms import Form
from . import records
from .clock import Clock
from .node import BridgedBoard, NodeBridge, ensure_node_modules

KIND = "pico"
DESCRIPTION = "emulated Raspberry Pi Pico (RP2040 on rp2040js)"
RUNTIMES = ("micropython", "c")
BOOTROM_ENV = "BOARDNET_RP2040_BOOTROM"
FIRMWARE_ENV = "BOARDNET_PICO_UF2"
BOOTROM_SIZE = 16384
CLOCK = Clock("emulated RP2040 at 125 MHz, no flash wait states", 125_000_000)
READY_TIMEOUT = 30.0


def bootrom(path: str | Path | None = None) -> Path:
    """The RP2040 B1 boot ROM image: `path`, else $BOARDNET_RP2040_BOOTROM."""
    given = path or os.environ.get(BOOTROM_ENV)
    if not given:
        raise UsageError(
            f"the emulated Pico needs the RP2040 boot ROM (16 KiB; rp2040js ships none): set "
            f"{BOOTROM_ENV}=/path/to/rp2040-bootrom-b1.bin (or sim start pico --bootrom PATH)")
    rom = Path(given)
    if not rom.is_file() or rom.stat().st_size != BOOTROM_SIZE:
        raise UsageError(
            f"{rom}: not an RP2040 boot ROM image ({BOOTROM_SIZE} bytes expected; {BOOTROM_ENV})")
    return rom


def micropython_uf2(path: str | Path | None = None) -> Path:
    """The MicroPython firmware for the Pico: `path`, else $BOARDNET_PICO_UF2."""
    given = path or os.environ.get(FIRMWARE_ENV)
    if not given:
        raise UsageError(
            "the emulated Pico runs the official MicroPython firmware: download RPI_PICO-<version>.uf2 "
            f"from https://micropython.org/download/RPI_PICO/ and set {FIRMWARE_ENV}=/path/to/it "
            "(or sim start pico --firmware PATH)")
    uf2 = Path(given)
    if not uf2.is_file():
        raise UsageError(f"{uf2}: no such firmware file ({FIRMWARE_ENV})")
    return uf2


def firmware_for(runtime: str, form: Form | None, firmware: str | Path | None = None) -> Path:
    """The UF2 a Pico of this runtime boots: MicroPython's, or boardnet's C firmware built
    with the form's header (cached by fingerprint and SDK version)."""
    if runtime not in RUNTIMES:
        raise UsageError(f"the emulated Pico runs {' or '.join(RUNTIMES)}, not {runtime!r}")
    if runtime == "micropython":
        return micropython_uf2(firmware)
    if form is None:
        raise UsageError(
            "the emulated Pico with --runtime c runs firmware built with a model: give the model")
    return build_pico(form)


def _bridge(uf2: Path, flash_image: Path, state_dir: Path, *, detached: bool, timeout: float,
            rom: Path | None = None) -> NodeBridge:
    args = ["--bootrom", str(rom or bootrom()), "--firmware", str(uf2), "--flash-image", str(flash_image),
            "--node-modules", str(ensure_node_modules())]
    return NodeBridge("rp2040/bridge.mjs", args, state_dir, what=DESCRIPTION, detached=detached,
                      timeout=timeout)


class PicoBoard(BridgedBoard):
    """A fresh emulated Pico for one command (its flash lives as long as the board: resets
    keep the files), running MicroPython or, with runtime "c", the C firmware built with
    `form`. `start()` returns its port; `stop()` ends it."""

    kind = KIND
    description = DESCRIPTION
    prefix = "boardnet-pico-"

    def __init__(self, form: Form | None = None, runtime: str = "micropython", *,
                 firmware: str | Path | None = None, timeout: float = READY_TIMEOUT) -> None:
        super().__init__(timeout=timeout)
        self.form, self.runtime, self.firmware = form, runtime, firmware

    def _launch(self, tmp: Path) -> NodeBridge:
        uf2 = firmware_for(self.runtime, self.form, self.firmware)
        return _bridge(uf2, tmp / "flash.bin", tmp, detached=False, timeout=self.timeout)


def start_persistent(form: Form | None = None, runtime: str = "micropython", *,
                     firmware: str | Path | None = None, bootrom_path: str | Path | None = None,
                     keep_flash: bool = False, timeout: float = READY_TIMEOUT) -> dict:
    """An emulated Pico that outlives this process; its record. A running one that boots the
    same firmware is kept; one that boots another is restarted with this firmware over the
    same flash (as flashing a UF2 onto a real Pico keeps its filesystem). A board started
    when none runs gets a blank flash unless `keep_flash` (the flash image of the last one)."""
    uf2 = firmware_for(runtime, form, firmware)
    rom = bootrom(bootrom_path)
    home = records.sims_dir() / KIND
    flash_image = home / "flash.bin"
    running = records.find(KIND)
    if running is not None:
        if (running.get("extra") or {}).get("firmware") == str(uf2):
            return running
        records.stop(KIND)
    elif not keep_flash:
        flash_image.unlink(missing_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    bridge = _bridge(uf2, flash_image, home, detached=True, timeout=timeout, rom=rom)
    record = {
        "kind": KIND,
        "pid": bridge.pid,
        "port": bridge.port,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fs_dir": None,
        "extra": {
            "link": str(bridge.link), "log": str(bridge.log), "proc_start": bridge.proc_start,
            "board": DESCRIPTION, "runtime": runtime, "firmware": str(uf2),
            "flash_image": str(flash_image), "clock": CLOCK.description,
            **({"fingerprint": form.fingerprint, "model": form.model.name, "precision": form.precision}
               if runtime == "c" and form is not None else {}),
        },
    }
    records.write(record)
    return record


def fresh(form: Form | None = None, runtime: str = "micropython") -> PicoBoard:
    return PicoBoard(form, runtime)


persist = start_persistent
