"""The C firmware on the emulated boards: cost per inference, size, serial speed.

    python bench/bench_firmware.py

- Instructions per inference on the Cortex-M0 stand-in (qemu-m0), from the firmware's own
  `time` command: QEMU runs with -icount, so the figure is an exact count of retired
  instructions (including the few of the timing loop), the same on every run.
- Flash and RAM of the whole firmware (`size`: flash = text + data, RAM = data + bss, stack
  not included), and of the model's part: the same firmware built with a trivial 1-1 linear
  model subtracted (what remains is the model's weights and code, the sigmoid, and the
  soft-float routines only the real model pulls in, such as the division).
- Next to them, the figures of bench/bench_export_c.py for the bare header (docs/export-c.md):
  emlearn and boardnet on a generic ARMv6-M with libgcc, counted in unicorn.
- Serial round trips per second on both emulators: one request at a time, and pipelined
  within the board's window. QEMU's UART moves some 10-20 KB/s into the board: these are
  emulator figures, not a real board's.
"""

from __future__ import annotations

import time

import numpy as np

from boardnet import forms
from boardnet.firmware import emulated as firmware
from boardnet.link import Link, open_serial
from boardnet.model import Model
from boardnet.virtual.qemu import CFirmwareBoard

# bench/bench_export_c.py as recorded in docs/export-c.md (instructions, own code+data bytes)
EXPORT_C = {
    "2-2-1": {"emlearn": (10_192, 796), "boardnet header": (5_437, 416)},
    "8-16-1": {"emlearn": (81_893, 1_516), "boardnet header": (53_388, 1_032)},
}


def model(sizes: list[int], name: str) -> Model:
    rng = np.random.default_rng(0)
    Ws = [rng.normal(0, 1 / np.sqrt(a), size=(b, a)) for a, b in zip(sizes, sizes[1:])]
    bs = [rng.normal(0, 0.5, size=b) for b in sizes[1:]]
    return Model.from_arrays(Ws, bs, name=name)


def trivial() -> Model:
    return Model.from_arrays([[[1.0]]], [[0.0]], ["linear"], name="trivial")


def instructions(m: Model, target: str) -> float:
    form = forms.make(m)
    with CFirmwareBoard(form, target) as board:
        link = Link(open_serial(board.url), board.url, timeout=30)
        try:
            link.hello()
            link.predict_many(form, np.full((1, m.n_in), 0.5, dtype=np.float32))  # a typical input
            t = link.time_per_inference(1000)
            assert t.unit == "instr", t
            return t.total / t.n
        finally:
            link.close()


def round_trips(m: Model, target: str) -> tuple[float, float, int]:
    X = np.random.default_rng(1).uniform(-1, 1, size=(1000, m.n_in)).astype(np.float32)
    form = forms.make(m)
    with CFirmwareBoard(form, target) as board:
        link = Link(open_serial(board.url), board.url, timeout=30)
        try:
            info = link.hello()
            t0 = time.perf_counter()
            link.predict_many(form, X[:200], window=1)
            single = 200 / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            link.predict_many(form, X)
            piped = len(X) / (time.perf_counter() - t0)
            return single, piped, info.window
        finally:
            link.close()


def main() -> None:
    for target in ("m0", "rv32"):
        missing = firmware.toolchain_missing(target)
        if missing:
            raise SystemExit(f"bench_firmware: {missing}")

    base = firmware.firmware_size(firmware.build_firmware(forms.make(trivial()), "m0"))
    print("Cortex-M0 stand-in (qemu-m0, -icount exact), C firmware vs the bare header")
    print()
    print("| network | what | instructions / inference | flash | RAM (static) | model's flash | model's RAM |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for sizes in ([2, 2, 1], [8, 16, 1]):
        label = "-".join(map(str, sizes))
        m = model(sizes, f"bench {label}")
        size = firmware.firmware_size(firmware.build_firmware(forms.make(m), "m0"))
        instr = instructions(m, "m0")
        print(f"| {label} | boardnet firmware (qemu-m0) | {instr:,.0f} | {size.flash:,} B | {size.ram:,} B "
              f"| {size.flash - base.flash:,} B | {size.ram - base.ram:,} B |")
        for lib, (count, own) in EXPORT_C[label].items():
            print(f"| {label} | {lib} (generic ARMv6-M/libgcc, unicorn) | {count:,} | | | {own:,} B own | |")
    print(f"\ntrivial-model firmware (the base subtracted above): flash {base.flash:,} B, RAM {base.ram:,} B "
          "(protocol core, exact decimal I/O, board layer, libc bits)")

    print("\nSerial round trips on the emulators (2-2-1 model; QEMU UART, not a real link)\n")
    print("| board | one at a time | pipelined | window |")
    print("|---|---:|---:|---:|")
    m = model([2, 2, 1], "bench 2-2-1")
    for target in ("m0", "rv32"):
        single, piped, window = round_trips(m, target)
        print(f"| {target} | {single:,.0f} /s | {piped:,.0f} /s | {window} |")


if __name__ == "__main__":
    main()
