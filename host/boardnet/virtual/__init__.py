"""Virtual boards, one family: boards that run on this machine and are reached through a
serial port like a real one, so every command takes the same path to them.

| kind | what runs | port |
|---|---|---|
| mp   | the MicroPython WebAssembly build under Node.js (wasm.py)                 | a pseudo-terminal |
| pico | real Pico firmware on an emulated RP2040 (rp2040.py): MicroPython, or C    | a pseudo-terminal |
| m0   | boardnet's C firmware on QEMU's Cortex-M0 (qemu.py)                        | socket://127.0.0.1:N |
| rv32 | boardnet's C firmware on QEMU's rv32imc (qemu.py)                          | socket://127.0.0.1:N |

A board lives for one command (`fresh`) or until `boardnet sim stop` (`start_persistent`,
recorded by records.py so that `boards`, `--port auto` and later commands find it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..errors import UsageError
from ..forms import Form
from . import qemu, records, rp2040, wasm


@dataclass(frozen=True)
class Kind:
    """A kind of virtual board: what runs there, and how to make one that lives for a command
    (`fresh(form, runtime)`, not started yet) or until `sim stop` (`persist(form, runtime,
    **options)`, returning its record)."""

    name: str
    description: str
    runtimes: tuple[str, ...]  # what can run there ("micropython", "c"); the first by default
    fresh: Callable[..., Any]
    persist: Callable[..., dict]

    @property
    def runtime(self) -> str:
        return self.runtimes[0]

    def pick(self, runtime: str | None) -> str:
        """The runtime asked for, or this kind's own when it runs one only (QEMU: the C firmware)."""
        if runtime is None or len(self.runtimes) == 1:
            return self.runtime
        if runtime not in self.runtimes:
            raise UsageError(f"the {self.description} runs {' or '.join(self.runtimes)}, not {runtime}")
        return runtime


KINDS: dict[str, Kind] = {
    wasm.KIND: Kind(wasm.KIND, wasm.DESCRIPTION, ("micropython",), wasm.fresh, wasm.persist),
    rp2040.KIND: Kind(rp2040.KIND, rp2040.DESCRIPTION, rp2040.RUNTIMES, rp2040.fresh, rp2040.persist),
    **{k: Kind(k, d, ("c",), partial(qemu.fresh, k), partial(qemu.persist, k))
       for k, d in qemu.KINDS.items()},
}
# --port shortcuts: "sim" is the MicroPython board, "sim-<kind>" the others
SHORTCUTS = {"sim": wasm.KIND, **{f"sim-{k}": k for k in KINDS if k != wasm.KIND}}
# Boards whose microseconds are emulated time: what their clock counts, for reports (QEMU
# boards count instructions and say so in their `time` replies)
CLOCKS = {rp2040.KIND: rp2040.CLOCK}


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UsageError(f"no virtual board of kind {name!r} (known: {', '.join(KINDS)})") from None


def fresh(name: str, form: Form | None = None, runtime: str | None = None):
    """A virtual board for one command, not started yet (`start()` returns its port, `stop()`
    ends it). Boards running the C firmware are built with `form`."""
    k = kind(name)
    return k.fresh(form, k.pick(runtime))


def start_persistent(name: str, form: Form | None = None, runtime: str | None = None, **options) -> dict:
    """Start a board of this kind that stays up (or find the running one); its record.
    Boards running the C firmware are built with `form` and replace a running one that serves
    another model. `options` go to the kind (pico: firmware, bootrom_path, keep_flash)."""
    k = kind(name)
    return k.persist(form, k.pick(runtime), **options)


def clock_of(url: str) -> str | None:
    """What the clock of the running virtual board on `url` counts, when it is emulated time."""
    record = next((r for r in records.running() if r["port"] == url), None)
    return CLOCKS.get(record["kind"]) if record else None


running = records.running
stop_persistent = records.stop
