"""On a Pico: cycles per inference on the emulated RP2040 (rp2040js counts cycles at 125 MHz;
it models no flash wait states, so these are emulated RP2040 cycles, not a real Pico's), and
serial round trips over the emulated USB.

    python bench/bench_pico.py

Needs BOARDNET_PICO_UF2 and BOARDNET_RP2040_BOOTROM (the official MicroPython firmware, the
boot ROM), PICO_SDK_PATH with picotool (the C firmware), and emlearn (pip install
'boardnet[bench]'). Rows:
- C firmware f32 / q15: firmware/pico built by the pico-sdk (float routines from the SDK,
  which uses the RP2040's ROM), timed by its own `time` command on a typical input;
- emlearn: the same firmware with emlearn's eml_net for the same float32 weights behind the
  model's entry point;
- MicroPython: the generated module (f32, q15) and a textbook loop with math.exp on the
  official rp2 firmware, timed with time.ticks_us on the board.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_export_c import emlearn_header, random_model  # noqa: E402
from bench_micropython import TEXTBOOK  # noqa: E402

from boardnet import forms  # noqa: E402
from boardnet.codegen import render_micropython  # noqa: E402
from boardnet.commands.deploy import deploy_micropython  # noqa: E402
from boardnet.link import open_link  # noqa: E402
from boardnet.link.micropython import copy_files, mpremote  # noqa: E402
from boardnet.model import Model  # noqa: E402
from boardnet.resources import firmware_dir  # noqa: E402
from boardnet.virtual import rp2040  # noqa: E402

NETS = [[2, 2, 1], [8, 16, 1], [30, 16, 8, 3]]
CLOCK = rp2040.CLOCK

WRAPPER = """/* emlearn's eml_net behind boardnet's model entry point, for timing only. */
#ifndef EMLNET_H
#define EMLNET_H
#include "mynet.h"
#define EMLNET_N_IN {n_in}
#define EMLNET_N_OUT {n_out}
#define EMLNET_FINGERPRINT "emlearn"
#define EMLNET_PRECISION "f32"
static inline void emlnet_predict(const float *x, float *y)
{{
    eml_net_regress(&mynet, x, {n_in}, y, {n_out});
}}
#endif
"""

TIMING = """
import time, mf, mq
x = {x!r}
xq = {xq!r}
Ws = {Ws!r}
bs = {bs!r}
out, outq = [0.0] * mf.N_OUT, [0] * mq.N_OUT
{textbook}

def per(f, args, n):
    f(*args)
    t0 = time.ticks_us()
    for _ in range(n):
        f(*args)
    return time.ticks_diff(time.ticks_us(), t0) / n

print(per(textbook_predict, (x, Ws, bs), {n}), per(mf.predict, (x, out), {n}), per(mq.predict, (xq, outq), {n}))
"""


def typical_input(model: Model) -> np.ndarray:
    return np.random.default_rng(7).normal(0, 1, size=(1, model.n_in)).astype(np.float32)


def firmware_cycles(form: forms.Form, firmware: Path | None = None) -> float:
    """Cycles per inference of the C firmware (built with `form`, or the given UF2)."""
    runtime = "c" if firmware is None else "micropython"  # a given UF2 boots as it is
    with rp2040.PicoBoard(form, runtime, firmware=firmware) as board, open_link(board.url, timeout=30) as link:
        xb = form.inputs(typical_input(form.model))
        if firmware is None:
            link.predict_many(form, xb)  # `time` runs on the last input
        else:
            link.request(" ".join(f"{float(v):.9g}" for v in xb[0]))
        return CLOCK.cycles(link.time_per_inference(2000).per)


def emlearn_uf2(model: Model, work: Path) -> Path:
    import emlearn

    model_dir = work / "model"
    model_dir.mkdir(parents=True)
    emlearn_header(model, model_dir / "mynet.h")
    for h in Path(emlearn.includedir).glob("*.h"):
        shutil.copy(h, model_dir)
    (model_dir / "emlnet.h").write_text(WRAPPER.format(n_in=model.n_in, n_out=model.n_out))
    build = work / "build"
    subprocess.run(["cmake", "-S", str(firmware_dir() / "pico"), "-B", str(build),
                    f"-DBOARDNET_MODEL={model_dir / 'emlnet.h'}"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j"], check=True, capture_output=True)
    return next(build.glob("*.uf2"))


def micropython_us(model: Model) -> tuple[float, float, float]:
    """(textbook, generated f32, generated q15) microseconds per inference on the board."""
    f32, q15 = forms.make(model), forms.make(model, "q15")
    x = typical_input(model)
    layers = f32.layers
    n = max(5, int(2000 / sum(layer.W.size for layer in layers)))
    with rp2040.PicoBoard() as board, tempfile.TemporaryDirectory() as d:
        files = {}
        for name, form in (("mf.py", f32), ("mq.py", q15)):
            (Path(d) / name).write_text(render_micropython(form))
            files[name] = Path(d) / name
        copy_files(board.url, files)
        script = TIMING.format(x=[float(v) for v in x[0]], xq=[int(v) for v in q15.inputs(x)[0]],
                               Ws=[layer.W.tolist() for layer in layers],
                               bs=[layer.b.tolist() for layer in layers], n=n, textbook=TEXTBOOK)
        out = mpremote(board.url, ["exec", script], timeout=600)
    return tuple(float(v) for v in out.split()[-3:])


def round_trips(model: Model, runtime: str) -> tuple[float, float, int]:
    form = forms.make(model)
    X = np.random.default_rng(1).normal(size=(600, model.n_in)).astype(np.float32)
    with rp2040.PicoBoard(form, runtime) as board:
        if runtime == "micropython":
            deploy_micropython(form, board.url)
        with open_link(board.url, timeout=30) as link:
            best = {"one": 0.0, "piped": 0.0}
            for _ in range(2):  # interleaved, best of: load hits both alike
                t = time.perf_counter()
                link.predict_many(form, form.inputs(X[:100]), window=1)
                best["one"] = max(best["one"], 100 / (time.perf_counter() - t))
                t = time.perf_counter()
                link.predict_many(form, form.inputs(X))
                best["piped"] = max(best["piped"], len(X) / (time.perf_counter() - t))
            return best["one"], best["piped"], link.window


def main() -> None:
    rp2040.bootrom()
    rp2040.micropython_uf2()
    print("On a Pico (emulated RP2040 cycles at 125 MHz; rp2040js models no flash wait states)\n")
    print("| network | C f32 | emlearn (same firmware) | C f32 / emlearn | C q15 | MicroPython textbook "
          "(math.exp) | generated f32 | generated q15 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for sizes in NETS:
        model = random_model(sizes, 1)
        label = "-".join(map(str, sizes))
        c32 = firmware_cycles(forms.make(model))
        c15 = firmware_cycles(forms.make(model, "q15"))
        with tempfile.TemporaryDirectory() as d:
            eml = firmware_cycles(forms.make(model), emlearn_uf2(model, Path(d)))
        text, g32, g15 = micropython_us(model)
        us = 1e6 / CLOCK.hz
        print(f"| {label} | {c32:,.0f} ({c32 * us:.1f} us) | {eml:,.0f} ({eml * us:.1f} us) | {c32 / eml:.2f}x "
              f"| {c15:,.0f} ({c15 * us:.1f} us) | {CLOCK.cycles(text):,.0f} ({text:.0f} us) "
              f"| {CLOCK.cycles(g32):,.0f} ({g32:.0f} us) | {CLOCK.cycles(g15):,.0f} ({g15:.0f} us) |", flush=True)
    print("\ntargets: C f32 <= 0.6x emlearn; q15 2-2-1 <= 150 cycles\n")
    print("| runtime (2-2-1) | one at a time | pipelined | window | pipelined / one |")
    print("|---|---:|---:|---:|---:|")
    model = random_model([2, 2, 1], 1)
    for runtime in ("micropython", "c"):
        one, piped, window = round_trips(model, runtime)
        print(f"| {runtime} | {one:,.0f} /s | {piped:,.0f} /s | {window} | {piped / one:.1f}x |", flush=True)
    print("\ntarget: pipelined >= 5x one at a time")


if __name__ == "__main__":
    main()
