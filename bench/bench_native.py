"""MicroPython on a Pico: cycles per inference of every way boardnet puts a model there, on the
emulated RP2040 (rp2040js counts cycles at 125 MHz and models no flash wait states, so these
are emulated RP2040 cycles, not a real Pico's).

    python bench/bench_native.py

Needs BOARDNET_PICO_UF2 and BOARDNET_RP2040_BOOTROM (the official MicroPython firmware, the
boot ROM), MPY_DIR with arm-none-eabi-gcc, pyelftools and ar (the native modules),
PICO_SDK_PATH with picotool (the C firmware). Columns, per network:
- textbook: plain Python loops over lists with 1 / (1 + math.exp(-z)) (not bit-exact);
- generated f32 / q15: the generated module (`export --micropython`), `predict(x, out)` with a
  list `out`;
- native f32 / q15: the native module (`export --native armv6m`), `predict(x, out)` with an
  array('f') `out` (f32; nothing allocated) and a list `out` (q15); "native f32, libgcc" is
  the same module built to use libgcc's soft float, what a Cortex-M0+ without the RP2040's
  ROM gets;
- C f32 / q15: boardnet's C firmware (pico-sdk, float routines in the RP2040's ROM), timed by
  its own `time` command.
MicroPython rows are timed on the board with time.ticks_us around n calls in a for loop (the
loop and call overhead, about 660 cycles, included, as a program pays it; so are the garbage
collections the Python rows cause, averaged over n, after a gc.collect()); every row on the
same input.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_export_c import random_model  # noqa: E402
from bench_micropython import TEXTBOOK  # noqa: E402
from bench_pico import firmware_cycles, typical_input  # noqa: E402

from boardnet import forms  # noqa: E402
from boardnet.codegen import render_micropython  # noqa: E402
from boardnet.firmware import natmod  # noqa: E402
from boardnet.link.micropython import copy_files, mpremote  # noqa: E402
from boardnet.model import Model  # noqa: E402
from boardnet.virtual import rp2040  # noqa: E402

NETS = [[2, 2, 1], [8, 16, 1], [30, 16, 8, 3]]
CLOCK = rp2040.CLOCK

TIMING = """
import gc, time, math, array, struct, binascii, mf, mq, nf, nq, ng
x = list(struct.unpack('<{n_in}f', binascii.unhexlify({x_hex!r})))
xq = {xq!r}
Ws = {Ws!r}
bs = {bs!r}
out, outq = [0.0] * mf.N_OUT, [0] * mq.N_OUT
outa = array.array('f', [0.0] * nf.N_OUT)

{textbook}

def per(f, a, b, n):
    f(a, b)
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(n):
        f(a, b)
    return time.ticks_diff(time.ticks_us(), t0) / n

def textbook_per(n):
    textbook_predict(x, Ws, bs)
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(n):
        textbook_predict(x, Ws, bs)
    return time.ticks_diff(time.ticks_us(), t0) / n

print(textbook_per({n}), per(mf.predict, x, out, {n}), per(mq.predict, xq, outq, {n}),
      per(nf.predict, x, outa, {m}), per(nq.predict, xq, outq, {m}), per(ng.predict, x, outa, {m}))
"""


def micropython_us(model: Model) -> tuple[float, ...]:
    """(textbook, generated f32, generated q15, native f32, native q15, native f32 with libgcc)
    microseconds per inference on the board."""
    f32, q15 = forms.make(model), forms.make(model, "q15")
    x = typical_input(model)
    layers = f32.layers
    # enough calls that the garbage collections the Python rows cause average out
    n = max(20, int(20000 / sum(layer.W.size for layer in layers)))
    with rp2040.PicoBoard() as board, tempfile.TemporaryDirectory() as d:
        files = {
            "nf.mpy": natmod.build_native(f32, "armv6m"),
            "nq.mpy": natmod.build_native(q15, "armv6m"),
            "ng.mpy": natmod.build_native(f32, "armv6m", cflags=("-DBOARDNET_FLOAT_NO_ROM",)),
        }
        for name, form in (("mf.py", f32), ("mq.py", q15)):
            (Path(d) / name).write_text(render_micropython(form))
            files[name] = Path(d) / name
        copy_files(board.url, files)
        script = TIMING.format(n_in=model.n_in, x_hex=x[0].astype("<f4").tobytes().hex(),
                               xq=[int(v) for v in q15.inputs(x)[0]],
                               Ws=[layer.W.tolist() for layer in layers],
                               bs=[layer.b.tolist() for layer in layers], n=n, m=20 * n, textbook=TEXTBOOK)
        out = mpremote(board.url, ["exec", script], timeout=900)
    return tuple(float(v) for v in out.split()[-6:])


def cell(us: float) -> str:
    return f"{CLOCK.cycles(us):,.0f}"


def main() -> None:
    rp2040.bootrom()
    rp2040.micropython_uf2()
    print("MicroPython on a Pico: emulated RP2040 cycles per inference (125 MHz, no flash wait states)\n")
    print("| network | textbook (math.exp) | generated f32 | generated q15 | native f32 | native q15 "
          "| native f32, libgcc | C f32 | C q15 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for sizes in NETS:
        model = random_model(sizes, 1)
        label = "-".join(map(str, sizes))
        text, g32, g15, n32, n15, ngcc = micropython_us(model)
        c32 = firmware_cycles(forms.make(model))
        c15 = firmware_cycles(forms.make(model, "q15"))
        print(f"| {label} | {cell(text)} | {cell(g32)} | {cell(g15)} | {cell(n32)} | {cell(n15)} | {cell(ngcc)} "
              f"| {c32:,.0f} | {c15:,.0f} |", flush=True)
        ratios.append((label, g32 / n32, CLOCK.cycles(n32) / c32, g15 / n15, CLOCK.cycles(n15) / c15,
                       ngcc / n32))
    print("\n| network | native f32 vs generated f32 | native f32 / C f32 | native q15 vs generated q15 "
          "| native q15 / C q15 | libgcc / ROM floats |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, speedup32, vs_c32, speedup15, vs_c15, gcc in ratios:
        print(f"| {label} | {speedup32:.1f}x | {vs_c32:.2f}x | {speedup15:.1f}x | {vs_c15:.2f}x | {gcc:.2f}x |")
    print("\ntargets (8-16-1): native f32 >= 10x the generated f32 and <= 1.5x the C firmware's cycles; "
          "native q15 >= 30x the generated q15")


if __name__ == "__main__":
    main()
