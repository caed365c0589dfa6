"""What a `--port` argument means: a pyserial URL or device, `auto`, or a virtual board.

    with resolve("sim", model) as port:      # a fresh virtual board with `model` deployed
        link = open_link(port.url)

Plain names and URLs (`/dev/ttyACM0`, `COM3`, `socket://host:port`, `rfc2217://...`) pass
through; `auto` is the one board found by USB VID:PID (or the one running virtual board);
`sim` starts a virtual MicroPython board for one command and stops it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import BoardError, UsageError

# USB VID:PID of boards and bridges that carry a MicroPython REPL or boardnet firmware
KNOWN_USB: dict[tuple[int, int], str] = {
    (0x2E8A, 0x0005): "Raspberry Pi Pico (MicroPython)",
    (0x2E8A, 0x000A): "Raspberry Pi Pico (pico-sdk USB CDC)",
    (0x2E8A, 0x0003): "Raspberry Pi RP2 boot (not running)",
    (0x303A, 0x1001): "Espressif native USB (ESP32-S3/C3/C6)",
    (0x303A, 0x4001): "Espressif native USB (MicroPython)",
    (0x10C4, 0xEA60): "CP210x USB-UART bridge (ESP32 dev board)",
    (0x1A86, 0x7523): "CH340 USB-UART bridge (ESP32 dev board)",
    (0x1A86, 0x55D4): "CH9102 USB-UART bridge (ESP32 dev board)",
    (0x0403, 0x6001): "FTDI FT232 USB-UART bridge",
}
SHORTCUTS = ("sim", "sim-m0", "sim-rv32")


@dataclass
class Port:
    """A resolved port: `url` for pyserial and mpremote; `close()` stops what was started."""

    url: str
    description: str = ""
    owned: Any = field(default=None, repr=False)  # a virtual board started for this command

    def close(self) -> None:
        if self.owned is not None:
            self.owned.stop()
            self.owned = None

    def __enter__(self) -> Port:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def candidates() -> list[tuple[str, str]]:
    """(port, description) of every attached board with a known VID:PID, and running
    virtual boards."""
    found: list[tuple[str, str]] = []
    try:
        from serial.tools import list_ports

        for p in list_ports.comports():
            if p.vid is not None and (p.vid, p.pid) in KNOWN_USB:
                found.append((p.device, f"{KNOWN_USB[(p.vid, p.pid)]} [{p.vid:04X}:{p.pid:04X}]"))
    except Exception:  # port enumeration is best effort (containers, odd platforms)
        pass
    try:
        from . import sim

        for record in sim.list_persistent():
            found.append((record["port"], f"virtual board ({record['kind']})"))
    except Exception:
        pass
    return found


def resolve(port: str, model=None, *, timeout: float = 20.0) -> Port:
    """A Port for `port`. `sim` needs `model` (it is deployed to the fresh virtual board)."""
    if not port:
        raise UsageError("give a port: --port /dev/ttyACM0, COM3, socket://host:port, auto or sim")
    if port == "auto":
        found = candidates()
        if len(found) == 1:
            return Port(found[0][0], found[0][1])
        if not found:
            raise BoardError(
                "no board found (known USB IDs: Pico, ESP32, UART bridges) and no virtual board "
                "running: plug one in, give --port, or start one with `boardnet sim start mp`"
            )
        listing = "; ".join(f"{p} ({d})" for p, d in found)
        raise BoardError(f"several boards found, say which with --port: {listing}")
    if port == "sim":
        return _fresh_sim(model, timeout)
    if port in ("sim-m0", "sim-rv32"):
        raise BoardError(
            f"--port {port}: the emulated C boards are not available in this boardnet yet; "
            "use --port sim (virtual MicroPython board) or a real board"
        )
    return Port(port, port)


def _fresh_sim(model, timeout: float) -> Port:
    from .sim import MicroPythonSim

    board = MicroPythonSim(timeout=timeout)
    url = board.start()
    port = Port(url, "virtual MicroPython board (fresh, for this command)", owned=board)
    if model is not None:
        try:
            from .deploy import deploy_micropython

            deploy_micropython(model, url)
        except BaseException:
            port.close()
            raise
    return port
