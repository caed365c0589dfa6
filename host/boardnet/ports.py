"""What a `--port` argument means: a pyserial URL or device, `auto`, or a virtual board.

    with resolve("sim", model) as port:      # a fresh virtual board with `model` deployed
        link = open_link(port.url)

Plain names and URLs (`/dev/ttyACM0`, `COM3`, `socket://host:port`, `rfc2217://...`) pass
through; `auto` is the one board found by USB VID:PID (or the one running virtual board);
`sim` starts a virtual MicroPython board for one command and stops it afterwards;
`sim-m0` / `sim-rv32` do the same with the C firmware on an emulated board (boardnet.csim).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .boards import BOOTSEL_IDS, USB_IDS
from .errors import UsageError

# USB VID:PID of boards and bridges (names from boards.USB_IDS, the one table)
KNOWN_USB: dict[tuple[int, int], str] = {
    usb: kind.name for usb, kind in USB_IDS.items() if usb not in BOOTSEL_IDS
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
    from .boards import list_boards

    return [(e.port, e.description + (f" [{e.usb}]" if e.usb else ""))
            for e in list_boards() if e.port and e.family is not None and e.runtime != "bootsel"]


def resolve(port: str, model=None, *, timeout: float = 20.0, precision: str = "f32") -> Port:
    """A Port for `port`. `sim` needs `model` (it is deployed to the fresh virtual board)."""
    if not port:
        raise UsageError("give a port: --port /dev/ttyACM0, COM3, socket://host:port, auto or sim")
    if port == "auto":
        from .boards import list_boards, pick_one

        one = pick_one(list_boards())  # refuses none or several, with the list
        return Port(one.port, one.description + (f" [{one.usb}]" if one.usb else ""))
    if port == "sim":
        return _fresh_sim(model, timeout, precision)
    if port in ("sim-m0", "sim-rv32"):
        return _fresh_csim(port[4:], model, timeout, precision)
    return Port(port, port)


def _fresh_sim(model, timeout: float, precision: str = "f32") -> Port:
    from .sim import MicroPythonSim

    board = MicroPythonSim(timeout=timeout)
    url = board.start()
    port = Port(url, "virtual MicroPython board (fresh, for this command)", owned=board)
    if model is not None:
        try:
            from .deploy import deploy_micropython

            deploy_micropython(model, url, precision=precision)
        except BaseException:
            port.close()
            raise
    return port


def _fresh_csim(target: str, model, timeout: float, precision: str = "f32") -> Port:
    """An emulated board (QEMU) running the C firmware built with `model`, for one command."""
    if model is None:
        raise UsageError(f"--port sim-{target} builds the firmware with a model; this command has none")
    from .csim import KINDS, CFirmwareBoard

    board = CFirmwareBoard(model, target, precision)
    url = board.start(timeout=min(timeout, 10.0))
    return Port(url, f"emulated {KINDS[target]}, C firmware (fresh, for this command)", owned=board)
