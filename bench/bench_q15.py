"""Integer (q15) models against float32 ones: Cortex-M0+ instructions and flash, and time per
prediction under the WebAssembly MicroPython.

    python bench/bench_q15.py              # the tables (docs/integer-models.md)
    python bench/bench_q15.py --fit        # refit the sigmoid table, print it and its error

Cortex-M0+ programs are built as in bench/bench_export_c.py (arm-none-eabi-gcc
-mcpu=cortex-m0plus -mthumb -Os, -ffunction-sections -fdata-sections -Wl,--gc-sections,
newlib-nano); "flash added" is the program with the model call minus the same program
without it. Instructions are counted in unicorn (bench/m0count.py, UC_MODE_THUMB |
UC_MODE_MCLASS, a code hook), mean over random inputs, and the outputs are checked against
boardnet.quantize bit for bit. The float32 rows use the float header (forms.F32).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_export_c import random_model  # noqa: E402
from m0count import SOFT_FLOAT, Elf, count_instructions  # noqa: E402

from boardnet import forms  # noqa: E402
from boardnet import quantize as Q  # noqa: E402
from boardnet.codegen import export_c, render_c, render_micropython  # noqa: E402
from boardnet.commands.demo import train_people  # noqa: E402
from boardnet.model import Model  # noqa: E402
from boardnet.names import c_prefix  # noqa: E402

CC = [
    "arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "-Os", "-std=c99",
    "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections",
    "--specs=nano.specs", "--specs=nosys.specs",
]

MAIN = """
#include <stdint.h>
{include}
volatile {xt} g_x[{n_in}];
volatile {yt} g_y[{n_out}];
__attribute__((noinline)) void bench_predict(const {xt} *x, {yt} *y)
{{
    {call}
}}
int main(void)
{{
    {xt} x[{n_in}];
    {yt} y[{n_out}];
    int i;
    for (i = 0; i < {n_in}; ++i) x[i] = g_x[i];
    bench_predict(x, y);
    for (i = 0; i < {n_out}; ++i) g_y[i] = y[i];
    return 0;
}}
"""


def build(tmp: Path, name: str, model: Model, kind: str, **render: object) -> Path:
    """kind: empty (no model), f32 (float header), q15 (integer header)."""
    xt, yt = ("int16_t", "int32_t") if kind.endswith("q15") else ("float", "float")
    if kind.startswith("empty"):
        include, call = "", "y[0] = x[0];"
    elif kind == "f32":
        header = export_c(forms.make(model), tmp)
        include, call = f'#include "{header.name}"', f"{header.stem}_predict(x, y);"
    else:
        prefix = c_prefix(model.name)
        (tmp / f"{prefix}.h").write_text(render_c(forms.make(model, "q15"), **render))
        include, call = f'#include "{prefix}.h"', f"{prefix}_predict_q(x, y);"
    src = tmp / f"{name}.c"
    src.write_text(MAIN.format(include=include, call=call, n_in=model.n_in, n_out=model.n_out,
                               xt=xt, yt=yt))
    elf = tmp / f"{name}.elf"
    subprocess.run([*CC, "-I", str(tmp), str(src), "-o", str(elf), "-Wl,-Map=" + str(elf) + ".map"],
                   check=True)
    return elf


def flash_of(elf: Path) -> int:
    out = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True)
    text, data, _ = (int(v) for v in out.stdout.splitlines()[1].split()[:3])
    return text + data


def soft_float_symbols(elf: Path) -> list[str]:
    """Soft-float routines linked into the program (nm), by m0count's pattern."""
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True)
    names = [line.split()[-1] for line in out.stdout.splitlines() if line.strip()]
    return sorted(n for n in names if SOFT_FLOAT.match(n) or n.startswith("__aeabi_d"))


def measure(elf: Path, model: Model, n: int, q15: bool, spread: float) -> tuple[float, int, bool]:
    """(mean, max) instructions over n random inputs and whether all outputs were exact.
    q15 inputs are uniform int16 in +-spread * 32767 (spread 1: the whole declared range,
    where many neurons saturate and take the short path; small: every sigmoid on its table);
    float inputs are normal with sd 2 * spread."""
    e = Elf.load(elf)
    rng = np.random.default_rng(1)
    q = Q.quantize(model) if q15 else None
    counts, exact = [], True
    for _ in range(n):
        if q15:
            top = max(1, int(spread * 32767))
            xq = rng.integers(-top, top + 1, size=model.n_in).astype(np.int16)
            c = count_instructions(e, "bench_predict", [xq.tobytes(), bytes(4 * model.n_out)])
            off = 8 * ((2 * model.n_in + 7) // 8)
            y = np.frombuffer(c.memory[off : off + 4 * model.n_out], np.int32)
            exact &= bool(np.array_equal(y, q.predict_int(xq.astype(np.int64))))
        else:
            x = rng.normal(scale=2.0 * spread, size=model.n_in).astype(np.float32)
            c = count_instructions(e, "bench_predict", [x.tobytes(), bytes(4 * model.n_out)])
            off = 8 * ((4 * model.n_in + 7) // 8)
            y = np.frombuffer(c.memory[off : off + 4 * model.n_out], np.float32)
            exact &= bool(np.array_equal(y.view(np.uint32), model.predict32(x).view(np.uint32)))
        counts.append(c.instructions)
    return float(np.mean(counts)), int(max(counts)), exact


def bench_m0(n_inputs: int, networks: list[list[int]]) -> list[dict]:
    print("Cortex-M0+ (ARMv6-M), arm-none-eabi-gcc -Os, newlib-nano; instructions counted in")
    print(f"unicorn over {n_inputs} random inputs each; outputs checked against the host reference.")
    print("'centre': inputs near the middle of the range (every sigmoid on its table, the long")
    print("path); 'full': uniform over the whole range (many neurons saturate).\n")
    head = (f"{'network':<10} {'precision':<9} {'flash added':>12} {'centre mean':>12} "
            f"{'centre max':>11} {'full mean':>10} {'soft-float fns':>15} {'output':>10}")
    print(head)
    print("-" * len(head))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for sizes in networks:
            model = random_model(sizes)
            net = "-".join(map(str, sizes))
            for kind in ("f32", "q15"):
                sub = tmp / f"{kind}{net}"
                sub.mkdir()
                base = flash_of(build(sub, "empty", model, "empty" + kind))
                elf = build(sub, kind, model, kind)
                centre, top, ok1 = measure(elf, model, n_inputs, kind == "q15", 0.003)
                full, _, ok2 = measure(elf, model, n_inputs, kind == "q15", 1.0)
                soft = soft_float_symbols(elf)
                row = {"network": net, "precision": kind, "flash": flash_of(elf) - base,
                       "centre": centre, "max": top, "full": full, "soft_float": len(soft),
                       "exact": ok1 and ok2}
                rows.append(row)
                print(f"{net:<10} {kind:<9} {row['flash']:>10} B {centre:>12,.0f} {top:>11,} "
                      f"{full:>10,.0f} {len(soft):>15} {'bit-exact' if row['exact'] else 'DIFFERS':>10}")
    return rows


PARSE_MAIN = """
#include <stdint.h>
{include}
volatile char g_s[16];
volatile int16_t g_x;
__attribute__((noinline)) int bench_parse(const char *s, int16_t *x)
{{
    {call}
}}
int main(void)
{{
    char s[16];
    int16_t x = 0;
    int i;
    for (i = 0; i < 16; ++i) s[i] = g_s[i];
    i = bench_parse(s, &x);
    g_x = x;
    return i;
}}
"""


def bench_parser(texts: tuple[str, ...] = ("128", "128.5", "-63.25", "155.123456")) -> None:
    """Flash and instructions of the integer decimal parser on a Cortex-M0+ (people model)."""
    model = train_people()
    form = forms.make(model, "q15")
    q = form.q
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        header = export_c(form, tmp)
        p = c_prefix(model.name)
        elfs = []
        for name, include, call in (
            ("empty", "", "*x = (int16_t)s[0]; return 0;"),
            ("parse", f'#include "{header.name}"', f"return {p}_parse_input(0, s, strlen(s), x);"),
        ):
            src = tmp / f"{name}.c"
            src.write_text("#include <string.h>\n" + PARSE_MAIN.format(include=include, call=call))
            elf = tmp / f"{name}.elf"
            subprocess.run([*CC, "-I", str(tmp), str(src), "-o", str(elf)], check=True)
            elfs.append(elf)
        flash = flash_of(elfs[1]) - flash_of(elfs[0])
        e = Elf.load(elfs[1])
        print(f"\ninput parser (people model, feature 0: 2^{q.in_exp[0]} steps), flash added {flash} B "
              "(with strlen)")
        for text in texts:
            c = count_instructions(e, "bench_parse", [text.encode() + b"\0", bytes(8)])
            got = int(np.frombuffer(c.memory[8 * ((len(text) + 8) // 8) :][:2], np.int16)[0])
            ok = got == q.parse_input(0, text)
            print(f"  {text!r:>14}: {c.instructions:>5,} instructions -> {got} "
                  f"{'(= reference)' if ok else '(DIFFERS)'}")


def bench_wasm(n: int, networks: list[list[int]]) -> None:
    """Time per prediction under the WebAssembly MicroPython (double-precision floats boxed on
    the heap, as rp2 and esp32 box their single-precision ones)."""
    import mpwasm

    ok, why = mpwasm.available()
    if not ok:
        print(f"\nMicroPython (WebAssembly): skipped, {why}")
        return
    print(f"\nMicroPython (WebAssembly build under Node), {n} predictions each, host clock\n")
    head = f"{'network':<10} {'precision':<9} {'us/prediction':>14} {'vs f32':>8}"
    print(head)
    print("-" * len(head))
    for sizes in networks:
        model = random_model(sizes)
        net = "-".join(map(str, sizes))
        q = Q.quantize(model)
        lo, hi = q.input_range()
        X = np.random.default_rng(2).uniform(lo, hi, size=(64, model.n_in))
        Xq = q.quantize_inputs(X)
        files = {"mf.py": render_micropython(forms.make(model)),
                 "mq.py": render_micropython(forms.make(model, "q15"))}
        code = f"""
import hostclock, mf, mq
XF = {[list(map(float, x)) for x in X]!r}
XQ = {[list(map(int, x)) for x in Xq]!r}
def run(mod, xs, n):
    out = [0] * mod.N_OUT
    p = mod.predict
    t0 = hostclock.now()
    for k in range(n):
        p(xs[k & 63], out)
    return (hostclock.now() - t0) * 1000 / n
run(mf, XF, 200); run(mq, XQ, 200)
print(run(mf, XF, {n}), run(mq, XQ, {n}))
"""
        tf, tq = (float(v) for v in mpwasm.run(code, files).split())
        print(f"{net:<10} {'f32':<9} {tf:>14.2f} {1:>7.2f}x")
        print(f"{net:<10} {'q15':<9} {tq:>14.2f} {tq / tf:>7.2f}x")


def fit_table() -> None:
    """Refit SIGMOID_TABLE: nodes sigmoid(i/4) lowered by the chord's mid-interval error, then
    +-1 steps while the worst error over every truncation interval drops."""
    s = 0.5 + 0.5 * np.tanh(0.5 * np.arange(Q.TABLE_N + 1) / 4)
    T = np.round(Q.ONE * (s - s * (1 - s) * (1 - 2 * s) / 256)).astype(np.int64)
    best = Q.sigmoid_error(T)
    changed = True
    while changed:
        changed = False
        for k in range(len(T)):
            for step in (-1, 1):
                T2 = T.copy()
                T2[k] += step
                if np.any(np.diff(T2) < 0) or T2[k] > Q.ONE:
                    continue
                err = Q.sigmoid_error(T2)
                if err < best - 1e-12:
                    T, best, changed = T2, err, True
    print("SIGMOID_TABLE =", tuple(int(v) for v in T))
    print(f"max abs error {best:.4g} (current table: {Q.sigmoid_error():.4g})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inputs", type=int, default=20, help="random inputs per M0+ measurement")
    ap.add_argument("--wasm", type=int, default=5000, help="predictions per MicroPython timing (0: skip)")
    ap.add_argument("--fit", action="store_true", help="refit the sigmoid table")
    args = ap.parse_args()
    if args.fit:
        fit_table()
        return
    bench_m0(args.inputs, [[2, 2, 1], [8, 16, 1], [30, 16, 8, 3]])
    print("\ntargets (q15): 2-2-1 <= 100 instructions and <= 256 B; 8-16-1 <= 2,000 instructions")
    bench_parser()
    if args.wasm:
        bench_wasm(args.wasm, [[2, 2, 1], [8, 16, 1]])


if __name__ == "__main__":
    main()
