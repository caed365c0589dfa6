"""What is plugged in: serial ports named by USB VID:PID, BOOTSEL drives, virtual boards,
and (with `probe`) what each board says about itself.

    for b in list_boards(probe=True):
        print(b.port, b.description, b.probe)

Listing opens no port: opening one resets an ESP32 dev board (DTR/RTS drive its reset
and boot pins) and a probe interrupts whatever the board runs (mpremote sends Ctrl-C).
So `boardnet boards` only names ports by USB ID unless asked to `--probe`; a probe has
short timeouts and never waits on a board that does not answer.
"""

from __future__ import annotations

import glob
import string
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from serial.tools import list_ports

from .. import virtual
from ..errors import BoardError
from . import micropython
from . import protocol as P
from .session import open_serial


@dataclass(frozen=True)
class UsbKind:
    name: str
    family: str  # "rp2" or "esp32"
    runtime: str | None  # what the USB ID alone tells: "micropython", "c", "bootsel" or unknown


# USB VID:PID of boards and bridges; BOOTSEL IDs are USB drives, not serial ports.
USB_IDS: dict[tuple[int, int], UsbKind] = {
    (0x2E8A, 0x0005): UsbKind("Raspberry Pi Pico with MicroPython", "rp2", "micropython"),
    (0x2E8A, 0x000A): UsbKind("Raspberry Pi Pico with pico-sdk USB stdio (boardnet C firmware)",
                              "rp2", "c"),
    (0x2E8A, 0x0003): UsbKind("RP2040 in BOOTSEL (USB drive RPI-RP2)", "rp2", "bootsel"),
    (0x2E8A, 0x000F): UsbKind("RP2350 in BOOTSEL (USB drive RP2350)", "rp2", "bootsel"),
    (0x303A, 0x1001): UsbKind("Espressif native USB serial/JTAG (ESP32-C3/S3/C6/H2)", "esp32", None),
    (0x303A, 0x4001): UsbKind("Espressif native USB CDC (ESP32-S2/S3, TinyUSB)", "esp32", None),
    (0x10C4, 0xEA60): UsbKind("CP210x USB-UART bridge (ESP32 dev board)", "esp32", None),
    (0x1A86, 0x7523): UsbKind("CH340 USB-UART bridge (ESP32 dev board)", "esp32", None),
    (0x1A86, 0x55D4): UsbKind("CH9102 USB-UART bridge (ESP32 dev board)", "esp32", None),
    (0x0403, 0x6001): UsbKind("FTDI FT232 USB-UART bridge (ESP32 dev board)", "esp32", None),
}
BOOTSEL_IDS = {(0x2E8A, 0x0003), (0x2E8A, 0x000F)}

# Where desktops mount USB drives (a BOOTSEL Pico is one, labelled RPI-RP2 or RP2350)
DRIVE_GLOBS = ("/media/*/*", "/media/*", "/run/media/*/*", "/Volumes/*", "/mnt/*")

# ---- who answers on a port -------------------------------------------------------------
@dataclass
class Identity:
    """What answered on a port: `kind` is one of
    "serve" (a boardnet serve loop: MicroPython or the C firmware, `hello` filled in),
    "micropython" (a MicroPython REPL, or a program that Ctrl-C stopped), "silent", "other"."""

    kind: str
    hello: P.BoardInfo | None = None
    said: str = ""

    @property
    def runtime(self) -> str | None:
        if self.hello is not None:
            return self.hello.runtime
        return "micropython" if self.kind == "micropython" else None


_MICROPYTHON_SIGNS = (b">>>", b"MicroPython v", b"raw REPL", b"KeyboardInterrupt", b"NameError",
                      b"Traceback (most recent call last)")
_ESP_BOOT = (b"ets ", b"rst:", b"ESP-ROM", b"boot:")


def _read_for(ser, seconds: float, stop) -> bytes:
    seen = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen += ser.read(max(1, ser.in_waiting))
        if stop(seen):
            break
    return seen


def identify(port: str, baud: int = 115200, timeout: float = 1.0) -> Identity:
    """Who answers on `port`, within about 2 x `timeout` seconds (more while an ESP32 boots).

    First a protocol `hello` (a serve loop answers `OK hello ...`, a MicroPython REPL answers
    with a NameError and its prompt); when nothing answers, Ctrl-C, which stops a MicroPython
    program and brings the prompt back (the C firmware drops its line). Nothing else is sent.
    """
    ser = open_serial(port, baud)
    try:
        boot = _read_for(ser, 0.2, lambda s: False)
        if any(m in boot for m in _ESP_BOOT):
            boot += _read_for(ser, 2.5, lambda s: b"READY" in s or b">>>" in s)
        ser.write(b"\r\nhello\r\n")

        def answered(s: bytes) -> bool:
            return b"OK hello" in s and s.rstrip(b"\r").endswith(b"\n") or s.rstrip().endswith(b">>>")

        said = _read_for(ser, timeout, answered)
        for raw in said.splitlines():
            item = P.parse_line(raw.decode("ascii", "replace").strip())
            if isinstance(item, P.BoardInfo):
                return Identity("serve", item, said.decode("ascii", "replace"))
        if any(m in said for m in _MICROPYTHON_SIGNS):
            return Identity("micropython", None, said.decode("ascii", "replace"))
        # Ctrl-C: stops a MicroPython program (the REPL prompt follows); Ctrl-B leaves a raw
        # REPL an interrupted mpremote may have left behind
        ser.write(b"\x03\x03\x02")
        more = _read_for(ser, timeout, lambda s: s.rstrip().endswith(b">>>"))
        if any(m in more for m in _MICROPYTHON_SIGNS):
            return Identity("micropython", None, more.decode("ascii", "replace"))
        text = (boot + said + more).decode("ascii", "replace").strip()
        return Identity("other" if text else "silent", None, text)
    finally:
        ser.close()


# ---- listing ---------------------------------------------------------------------------
@dataclass
class BoardEntry:
    """One thing `boardnet boards` lists: a serial port, a BOOTSEL drive or a virtual board."""

    port: str | None  # the name pyserial and mpremote take; None for a BOOTSEL drive
    description: str
    family: str | None = None  # rp2, esp32, virtual
    runtime: str | None = None  # micropython, c, bootsel, None = ask the board (--probe)
    usb: str | None = None  # "2E8A:0005"
    serial_number: str | None = None
    drive: str | None = None  # a BOOTSEL drive's mount point
    probe: dict[str, Any] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        where = self.port or self.drive or "?"
        line = f"{where:24s} {self.description}" + (f" [{self.usb}]" if self.usb else "")
        if self.drive and self.port:
            line += f" (drive {self.drive})"
        if self.probe:
            p = self.probe
            if "hello" in p:
                h = p["hello"]
                line += (f"\n{'':24s} serve loop: runtime={h['runtime']} platform={h['platform']} "
                         f"model={h['model']} fp={h['fingerprint']}")
            if "version" in p:
                abi = p.get("mpy_abi") or {}
                fs = f", fs free {p['fs_free']} B" if p.get("fs_free") is not None else ""
                line += (f"\n{'':24s} MicroPython {p['version']} on {p['platform']} ({p['machine']}), "
                         f".mpy v{abi.get('version', '?')}.{abi.get('sub_version', '?')} "
                         f"arch {abi.get('arch', '?')}, {p['float']}, heap free {p['mem_free']} B{fs}")
                line += f"\n{'':24s} boardnet model: " + (
                    f"fingerprint {p['fingerprint']}" if p.get("fingerprint") else "none")
        if self.error:
            line += f"\n{'':24s} probe: {self.error}"
        return line


def usb_kind(vid: int | None, pid: int | None) -> UsbKind | None:
    return USB_IDS.get((vid, pid)) if vid is not None else None


def _entry_for(info) -> BoardEntry:
    """A BoardEntry for a pyserial ListPortInfo."""
    kind = usb_kind(info.vid, info.pid)
    usb = f"{info.vid:04X}:{info.pid:04X}" if info.vid is not None else None
    if kind is None:
        desc = info.description if info.description and info.description != "n/a" else "serial port"
        return BoardEntry(info.device, f"{desc} (not a board boardnet knows)", usb=usb,
                          serial_number=info.serial_number)
    return BoardEntry(info.device, kind.name, kind.family, kind.runtime, usb, info.serial_number)


def find_bootsel_drives(roots: list[str] | None = None) -> list[tuple[Path, dict[str, str]]]:
    """Mounted UF2 drives (a Pico in BOOTSEL), found by their INFO_UF2.TXT:
    (mount point, the file's `Key: value` lines)."""
    candidates: list[Path] = []
    if roots is None:
        for pattern in DRIVE_GLOBS:
            candidates += [Path(p) for p in glob.glob(pattern)]
        if sys.platform == "win32":
            candidates += [Path(f"{letter}:\\") for letter in string.ascii_uppercase[2:]]
    else:
        candidates = [Path(r) for r in roots]
    found = []
    seen: set[str] = set()
    for root in candidates:
        info = root / "INFO_UF2.TXT"
        try:
            if not info.is_file() or str(root.resolve()) in seen:
                continue
            text = info.read_text(errors="replace")
        except OSError:
            continue
        seen.add(str(root.resolve()))
        fields = {}
        for line in text.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip()] = v.strip()
        found.append((root, fields))
    return found


def comports() -> list:
    try:
        return list(list_ports.comports())
    except Exception:  # enumeration is best effort (containers, odd platforms)
        return []


def _virtual() -> list[BoardEntry]:
    entries = []
    for r in virtual.running():
        kind = virtual.KINDS.get(r["kind"])
        if kind is not None:
            entries.append(BoardEntry(r["port"], kind.description, "virtual",
                                      (r.get("extra") or {}).get("runtime", kind.runtime)))
    return entries


def list_boards(
    *, probe: bool = False, timeout: float = 1.0, drive_roots: list[str] | None = None
) -> list[BoardEntry]:
    """Every serial port (named by USB ID), BOOTSEL drive and running virtual board; with
    `probe`, what each board on a port says about itself."""
    entries = [_entry_for(info) for info in sorted(comports(), key=lambda i: i.device)]
    for root, fields in find_bootsel_drives(drive_roots):
        model = fields.get("Model", "") + " " + fields.get("Board-ID", "")
        chip = "RP2350" if "RP2350" in model else "RP2040"
        entries.append(BoardEntry(None, f"{chip} in BOOTSEL ({fields.get('Board-ID', 'UF2 drive')}): "
                                  "copy a .uf2 here", "rp2", "bootsel", drive=str(root)))
    entries += _virtual()
    if probe:
        for e in entries:
            if e.port and e.runtime != "bootsel":
                probe_entry(e, timeout)
    return entries


def probe_entry(entry: BoardEntry, timeout: float = 1.0) -> None:
    """Fill entry.probe (or entry.error): the serve loop's hello, or MicroPython's facts."""
    assert entry.port is not None
    try:
        who = identify(entry.port, timeout=timeout)
        if who.hello is not None:
            entry.probe = {"hello": {k: v for k, v in asdict(who.hello).items() if k != "fields"}}
            entry.runtime = who.hello.runtime
        if who.runtime == "micropython":
            entry.runtime = "micropython"
            facts = micropython.probe(entry.port, timeout=max(10.0, 5 * timeout))
            entry.probe = {**(entry.probe or {}), **facts.to_json()}
        elif who.hello is None:
            entry.error = ("no answer" if who.kind == "silent"
                           else f"not MicroPython and no boardnet serve loop: {who.said[:60]!r}")
    except BoardError as e:
        entry.error = str(e)


def pick_one(entries: list[BoardEntry]) -> BoardEntry:
    """The single board among `entries` (serial ports with a known USB ID, or virtual);
    a BoardError listing them when there are none or several."""
    boards = [e for e in entries if e.port and (e.family is not None) and e.runtime != "bootsel"]
    if len(boards) == 1:
        return boards[0]
    if not boards:
        raise BoardError(
            "no board found (known USB IDs: Pico, ESP32, UART bridges) and no virtual board "
            "running: plug one in, give --port, or start one with `boardnet sim start mp`"
        )
    listing = "; ".join(f"{e.port} ({e.description})" for e in boards)
    raise BoardError(f"several boards found, say which with --port: {listing}")


def env_port_hint() -> str:
    """How ports are spelt on this OS, for messages."""
    if sys.platform == "win32":
        return "COM3"
    if sys.platform == "darwin":
        return "/dev/cu.usbmodem1101"
    return "/dev/ttyACM0"

