"""`boardnet flash-micropython`: a downloaded MicroPython firmware onto a board."""

from __future__ import annotations

from ..errors import UsageError
from ..link.flash import flash_firmware
from ..link.ports import resolve


def flash_micropython(firmware: str, *, port: str | None = None, drive: str | None = None,
                      chip: str | None = None, erase: bool = True) -> dict:
    """Flash `firmware` (.uf2 to a Pico, .bin to an ESP32); `port` may be `auto`."""
    target = resolve(port) if port else None
    if target is not None and target.virtual is not None:
        raise UsageError(f"{port} is a virtual board: it boots its own firmware (`boardnet sim start`); "
                         "flash-micropython is for a board on a serial port or a BOOTSEL drive")
    return flash_firmware(firmware, port=target.url if target else None, drive=drive, chip=chip,
                          erase=erase)
