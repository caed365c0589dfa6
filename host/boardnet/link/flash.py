"""Put firmware on a board: a UF2 onto a Pico's BOOTSEL drive, a .bin onto an ESP32 with esptool.

    flash_firmware("RPI_PICO-20250415-v1.25.0.uf2", port="/dev/ttyACM0")
    flash_firmware("ESP32_GENERIC_C3-v1.25.0.bin", port="/dev/ttyUSB0")

Files are checked before anything touches a board: a UF2 must be whole 512-byte blocks
with the format's magic numbers, an ESP image must start with 0xE9 (and its header names the
chip, which picks the flash offset). A running MicroPython Pico is sent into BOOTSEL with
`machine.bootloader()`, boardnet's C firmware with the 1200-baud touch.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import sys
import time
from pathlib import Path

import serial

from ..errors import BoardError, UsageError
from ..tools import last_line, run
from .boards import find_bootsel_drives, identify
from .micropython import mpremote

UF2_MAGIC_START0 = 0x0A324655  # "UF2\n"
UF2_MAGIC_START1 = 0x9E5D5157
UF2_MAGIC_END = 0x0AB16F30
UF2_FAMILY_FLAG = 0x00002000
UF2_FAMILIES = {
    0xE48BFF56: "rp2040",
    0xE48BFF57: "rp2350 (absolute)",
    0xE48BFF58: "rp2350 (data)",
    0xE48BFF59: "rp2350-arm-s",
    0xE48BFF5A: "rp2350-riscv",
    0xE48BFF5B: "rp2350-arm-ns",
}

ESP_IMAGE_MAGIC = 0xE9
# chip id in the image's extended header (esptool's IMAGE_CHIP_ID) -> esptool chip name
ESP_CHIP_IDS = {0: "esp32", 2: "esp32s2", 5: "esp32c3", 9: "esp32s3", 12: "esp32c2", 13: "esp32c6",
                16: "esp32h2", 18: "esp32p4", 23: "esp32c5", 20: "esp32c61"}
# Where the second-stage bootloader (the start of MicroPython's merged image) goes
ESP_BOOT_OFFSET = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32p4": 0x2000}  # 0x0 for the rest

BOOTSEL_WAIT = 10.0


# ---- checking files ----------------------------------------------------------------------
def uf2_info(path: str | Path) -> dict:
    """Blocks and family of a UF2 file; UsageError when it is not one."""
    data = Path(path).read_bytes()
    if not data or len(data) % 512:
        raise UsageError(f"{path} is not a UF2 file: {len(data)} bytes is not a whole number of "
                         "512-byte blocks")
    families = set()
    for off in range(0, len(data), 512):
        m0, m1, flags = struct.unpack_from("<III", data, off)
        (end,) = struct.unpack_from("<I", data, off + 508)
        if (m0, m1, end) != (UF2_MAGIC_START0, UF2_MAGIC_START1, UF2_MAGIC_END):
            raise UsageError(f"{path} is not a UF2 file: block {off // 512} lacks the UF2 magic numbers")
        if flags & UF2_FAMILY_FLAG:
            families.add(struct.unpack_from("<I", data, off + 28)[0])
    names = sorted(UF2_FAMILIES.get(f, f"0x{f:08X}") for f in families)
    return {"blocks": len(data) // 512, "families": names}


def esp_image_info(path: str | Path) -> dict:
    """Chip and flash offset of an ESP32-family image (.bin); UsageError when it is not one."""
    head = Path(path).read_bytes()[:24]
    if len(head) < 24 or head[0] != ESP_IMAGE_MAGIC:
        first = f"0x{head[0]:02X}" if head else "nothing"
        raise UsageError(f"{path} is not an ESP firmware image: it starts with {first}, not 0xE9 "
                         "(download the .bin for your chip from micropython.org/download)")
    (chip_id,) = struct.unpack_from("<H", head, 12)
    chip = ESP_CHIP_IDS.get(chip_id)
    return {"chip": chip, "chip_id": chip_id, "segments": head[1]}


def esp_offset(chip: str) -> int:
    return ESP_BOOT_OFFSET.get(chip, 0x0)


# ---- Pico: BOOTSEL and the UF2 drive -----------------------------------------------------
def reboot_to_bootsel(port: str, runtime: str | None = None) -> None:
    """Send a running Pico into BOOTSEL: machine.bootloader() under MicroPython (through
    mpremote), the 1200-baud touch under pico-sdk USB stdio (boardnet's C firmware)."""
    if runtime is None:
        runtime = identify(port, timeout=1.0).runtime
    if runtime == "micropython":
        try:
            mpremote(port, ["exec", "import machine; machine.bootloader()"], timeout=10.0)
        except BoardError:
            pass  # the USB device disappears mid-command: expected
    elif runtime == "c":
        touch_1200(port)
    else:
        raise BoardError(f"cannot tell what runs on {port} to reboot it into BOOTSEL: hold the "
                         "BOOTSEL button while plugging the board in, then give --drive")


def touch_1200(port: str) -> None:
    """Open at 1200 baud and close: pico-sdk's USB stdio reboots into BOOTSEL on it."""
    try:
        ser = serial.Serial(port, 1200)
        ser.dtr = False
        ser.close()
    except (serial.SerialException, OSError) as e:
        raise BoardError(f"1200-baud touch on {port} failed: {e}") from None


def wait_for_drive(timeout: float = BOOTSEL_WAIT, roots: list[str] | None = None) -> Path:
    """The one BOOTSEL drive, once it is mounted."""
    deadline = time.monotonic() + timeout
    while True:
        drives = find_bootsel_drives(roots)
        if len(drives) == 1:
            return drives[0][0]
        if len(drives) > 1:
            raise UsageError("several BOOTSEL drives are mounted: say which with --drive: "
                             + ", ".join(str(d) for d, _ in drives))
        if time.monotonic() >= deadline:
            raise BoardError(
                f"no BOOTSEL drive (RPI-RP2 / RP2350 with INFO_UF2.TXT) appeared within {timeout:g} s: "
                "hold BOOTSEL while plugging the Pico in; if the drive shows but is not mounted "
                "automatically, mount it and give --drive /path/to/it"
            )
        time.sleep(0.25)


def copy_uf2(uf2: str | Path, drive: str | Path) -> Path:
    """Copy the UF2 onto the drive; the board flashes and reboots when the copy ends."""
    drive = Path(drive)
    if not (drive / "INFO_UF2.TXT").is_file():
        raise UsageError(f"{drive} is not a BOOTSEL drive (no INFO_UF2.TXT there)")
    target = drive / Path(uf2).name
    try:
        with open(uf2, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 64 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
    except OSError as e:
        # the board reboots as soon as it has the last block; a late error from the vanishing
        # drive is success if the whole file was handed over
        if getattr(e, "errno", None) not in (5, 19):  # EIO, ENODEV
            raise BoardError(f"copying {uf2} to {drive} failed: {e}") from None
    return target


def flash_uf2(
    uf2: str | Path, *, port: str | None = None, drive: str | None = None,
    timeout: float = BOOTSEL_WAIT, drive_roots: list[str] | None = None,
) -> dict:
    """Check the UF2, get the Pico into BOOTSEL if needed (through `port`), copy it over."""
    info = uf2_info(uf2)
    if drive is None:
        if not find_bootsel_drives(drive_roots):
            if port is None:
                raise UsageError("no BOOTSEL drive mounted: give --port of a running Pico (it is "
                                 "rebooted into BOOTSEL) or --drive, or hold BOOTSEL while plugging it in")
            reboot_to_bootsel(port)
        drive = str(wait_for_drive(timeout, drive_roots))
    target = copy_uf2(uf2, drive)
    return {**info, "drive": str(drive), "written": str(target)}


# ---- ESP32: esptool ----------------------------------------------------------------------
def _esptool() -> list[str]:
    if importlib.util.find_spec("esptool") is None:
        raise UsageError("esptool is not installed: pip install 'boardnet[esp]' (or pip install "
                         "esptool)")
    return [sys.executable, "-m", "esptool"]


def _esptool_run(args: list[str], what: str, timeout: float = 300.0) -> str:
    def explain(stderr: str) -> str:
        return (f"{last_line(stderr)} (hold BOOT while pressing RESET if the chip does not enter "
                "its download mode by itself)")

    return run(_esptool() + args, f"esptool {what}", timeout=timeout, detail=explain).stdout


def detect_chip(port: str) -> str:
    """The chip on `port`, as esptool names it (esptool chip_id)."""
    out = _esptool_run(["--port", port, "chip_id"], "chip_id", timeout=60.0)
    for line in out.splitlines():
        if line.startswith(("Chip is ", "Chip type:")):
            name = line.split(":", 1)[-1] if ":" in line else line[len("Chip is "):]
            return name.strip().split()[0].lower().replace("-", "")
    raise BoardError(f"esptool could not name the chip on {port}: say --chip")


def flash_esp(
    image: str | Path, port: str, *, chip: str | None = None, erase: bool = True,
    baud: int = 460800,
) -> dict:
    """esptool erase_flash, then write_flash of the image at its chip's bootloader offset."""
    info = esp_image_info(image)
    chip = (chip or info["chip"] or detect_chip(port)).lower().replace("-", "")
    if info["chip"] and info["chip"] != chip:
        raise UsageError(f"{image} is built for {info['chip']}, not {chip}: download the firmware "
                         "for your chip")
    offset = esp_offset(chip)
    base = ["--chip", chip, "--port", port, "--baud", str(baud)]
    if erase:
        _esptool_run(base + ["erase_flash"], "erase_flash")
    _esptool_run(base + ["write_flash", "-z", hex(offset), str(image)], "write_flash")
    return {**info, "chip": chip, "offset": hex(offset), "port": port}


def esptool_write(port: str, build: Path, chip: str | None = None) -> None:
    """Flash an ESP-IDF build folder (its flash_args file) with esptool."""
    args = ["--port", port] + (["--chip", chip] if chip else [])
    _esptool_run(args + ["write_flash", f"@{Path(build) / 'flash_args'}"], "write_flash", timeout=300.0)


# ---- one entry point ---------------------------------------------------------------------
def flash_firmware(
    firmware: str | Path, *, port: str | None = None, drive: str | None = None,
    chip: str | None = None, erase: bool = True,
) -> dict:
    """Flash a downloaded MicroPython firmware: .uf2 to a Pico, .bin to an ESP32."""
    path = Path(firmware)
    if not path.is_file():
        raise UsageError(f"{firmware}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".uf2":
        return {"kind": "uf2", **flash_uf2(path, port=port, drive=drive)}
    if suffix == ".bin":
        esp_image_info(path)  # refuse a wrong file before asking for a port
        if not port:
            raise UsageError("an ESP32 is flashed through its serial port: give --port")
        return {"kind": "esp", **flash_esp(path, port, chip=chip, erase=erase)}
    raise UsageError(f"{firmware}: expected a .uf2 (Raspberry Pi Pico) or .bin (ESP32) file")
