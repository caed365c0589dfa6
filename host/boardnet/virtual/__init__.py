"""Virtual boards, one family: boards that run on this machine and are reached through a
serial port like a real one, so every command takes the same path to them.

| kind | what runs | port |
|---|---|---|
| mp   | the MicroPython WebAssembly build under Node.js (wasm.py) | a pseudo-terminal |
| m0   | boardnet's C firmware on QEMU's Cortex-M0 (qemu.py)        | socket://127.0.0.1:N |
| rv32 | boardnet's C firmware on QEMU's rv32imc (qemu.py)          | socket://127.0.0.1:N |

A board lives for one command (`fresh`) or until `boardnet sim stop` (`start_persistent`,
recorded by records.py so that `boards`, `--port auto` and later commands find it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..forms import Form
from . import qemu, records, wasm


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    runtime: str  # what runs there: "micropython" or "c"
    builds_firmware: bool  # the firmware is built with the model (C boards)


KINDS: dict[str, Kind] = {
    wasm.KIND: Kind(wasm.KIND, wasm.DESCRIPTION, "micropython", False),
    **{k: Kind(k, d, "c", True) for k, d in qemu.KINDS.items()},
}
# --port shortcuts: "sim" is the MicroPython board, "sim-<kind>" the others
SHORTCUTS = {"sim": wasm.KIND, **{f"sim-{k}": k for k in KINDS if k != wasm.KIND}}


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UsageError(f"no virtual board of kind {name!r} (known: {', '.join(KINDS)})") from None


def fresh(name: str, form: Form | None = None):
    """A virtual board for one command, not started yet (`start()` returns its port, `stop()`
    ends it). C boards are built with `form`."""
    k = kind(name)
    if not k.builds_firmware:
        return wasm.MicroPythonSim()
    if form is None:
        raise UsageError(f"the {k.description} runs firmware built with a model; this command has none")
    return qemu.CFirmwareBoard(form, name)


def start_persistent(name: str, form: Form | None = None, *, timeout: float = 20.0) -> dict:
    """Start a board of this kind that stays up (or find the running one); its record. C
    boards are built with `form` and replace a running one that serves another model."""
    k = kind(name)
    if not k.builds_firmware:
        return records.find(name) or wasm.start_persistent(timeout)
    if form is None:
        raise UsageError(f"`sim start {name}` needs the model its firmware is built with: --model M.json")
    return qemu.start_persistent(name, form, timeout)


running = records.running
stop_persistent = records.stop
