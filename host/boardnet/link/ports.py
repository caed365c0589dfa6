"""What a `--port` argument names, resolved once: a `Target`.

    target = resolve("auto")       # the one board plugged in (or the one virtual board up)
    target = resolve("sim-m0")     # a virtual board of kind m0 (started by the command)

Device names and pyserial URLs (`/dev/ttyACM0`, `COM3`, `socket://host:port`,
`rfc2217://host:port`, `spy://...`, `loop://`) pass through as they are; `auto` is the one
board found by USB VID:PID, or the one virtual board running; the shortcuts `sim`,
`sim-m0`, `sim-rv32` name a virtual board of that kind, which commands start and deploy
through the same path a real board takes (boardnet.commands.target says for how long).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import virtual
from ..errors import UsageError
from .boards import list_boards, pick_one


@dataclass(frozen=True)
class Target:
    """Where a command's board is: `url` for pyserial and mpremote (None for a virtual board
    that the command has yet to start), `virtual` its kind for a shortcut, `typed` as given."""

    typed: str
    url: str | None
    description: str
    virtual: str | None = None  # "mp", "m0", "rv32" for the --port shortcuts
    runtime: str | None = None  # what runs there, when known without asking: micropython | c

    @property
    def name(self) -> str:
        """How to name the port in messages: the URL, else what was typed."""
        return self.url or self.typed


def resolve(port: str) -> Target:
    """The Target for what the user typed as --port."""
    if not port:
        raise UsageError("give a port: --port /dev/ttyACM0, COM3, socket://host:port, auto or sim")
    if port == "auto":
        one = pick_one(list_boards())  # refuses none or several, with the list
        return Target(port, one.port, one.description + (f" [{one.usb}]" if one.usb else ""),
                      runtime=one.runtime)
    if port in virtual.SHORTCUTS:
        kind = virtual.KINDS[virtual.SHORTCUTS[port]]
        return Target(port, None, kind.description, kind.name, kind.runtime)
    return Target(port, port, port)
