"""Time per prediction of the generated MicroPython module under real MicroPython.

    python bench/bench_micropython.py [--quick]

Runs the official MicroPython WebAssembly build under Node (tests/mpwasm.py; install with
`npm ci --prefix host/boardnet/virtual/node`). Prints one table; this is a benchmark, not a test.

Compared, on the same float32 weights and inputs:
- textbook: lists of lists, loops over them, 1 / (1 + math.exp(-z)) (written below);
- textbook-exp-straight: straight-line code on locals with math.exp (the earlier baseline);
- generated straight / rows / loop: the shapes boardnet emits, with boardnet's own sigmoid.

Each figure is the minimum over 60 interleaved repeats of (time of N calls) / N, `predict(x, out)` for the
generated code, including the call itself. The clock is the host's performance.now()
(this build's ticks_us moves in whole milliseconds). Heap is the gc.mem_alloc() growth per
call with the collector off. The WebAssembly build is a double-precision port; rp2 and esp32
box single floats in the same 16-byte blocks, so the heap column carries over, the times
do not (a Pico is ~10-50x slower; compare ratios).

A second table gives the heap each shape keeps once imported -- what
the straight-line threshold (forms.MP_STRAIGHT_MAX_PARAMS) is about.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import mpwasm  # noqa: E402

from boardnet import forms  # noqa: E402
from boardnet.codegen import render_micropython  # noqa: E402
from boardnet.model import Model  # noqa: E402
from boardnet.names import micropython_module  # noqa: E402

# The comparison baseline: how a textbook writes an MLP forward pass in plain Python.
TEXTBOOK = """
import math

def textbook_predict(x, Ws, bs):
    a = x
    for W, b in zip(Ws, bs):
        z = []
        for i in range(len(W)):
            s = b[i]
            row = W[i]
            for j in range(len(a)):
                s += row[j] * a[j]
            z.append(1 / (1 + math.exp(-s)))
        a = z
    return a
"""

# The same for the other activations (math.tanh, max, a softmax with math.exp): the baseline
# of the tanh/relu-softmax rows.
TEXTBOOK_ACTS = """
import math

def textbook_predict(x, Ws, bs, acts={acts!r}):
    a = x
    for W, b, act in zip(Ws, bs, acts):
        z = []
        for i in range(len(W)):
            s = b[i]
            row = W[i]
            for j in range(len(a)):
                s += row[j] * a[j]
            if act == "tanh":
                s = math.tanh(s)
            elif act == "relu":
                s = s if s > 0 else 0.0
            elif act == "sigmoid":
                s = 1 / (1 + math.exp(-s))
            z.append(s)
        if act == "softmax":
            m = max(z)
            e = [math.exp(v - m) for v in z]
            t = sum(e)
            z = [v / t for v in e]
        a = z
    return a
"""

BENCH = """
import gc, struct, hostclock
import {module} as m
{textbook}
P = m._P
Ws, bs, k = [], [], 0
for n_in, n_out in {shapes}:
    Ws.append([list(P[k + i * n_in:k + (i + 1) * n_in]) for i in range(n_out)])
    k += n_in * n_out
    bs.append(list(P[k:k + n_out]))
    k += n_out
x = list(struct.unpack("<{n_in}f", {x_bytes!r}))
out = [0.0] * m.N_OUT
{exp_straight}
def timeit(f, *args):
    t0 = hostclock.now()
    for i in range({n}):
        f(*args)
    return (hostclock.now() - t0) * 1000 / {n}  # microseconds per call

def heap(f, *args):
    f(*args)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for i in range(100):
        f(*args)
    used = (gc.mem_alloc() - before) / 100
    gc.enable()
    return used

def empty(x, out):
    return out

cases = [("call overhead", empty, (x, out)),
         ("textbook", textbook_predict, (x, Ws, bs)),
         ("generated", m.predict, (x, out))]
if {has_exp}:
    cases.insert(2, ("textbook-exp-straight", exp_predict, (x, out)))
for name, f, args in cases:  # warm up: V8 compiles the interpreter's hot paths in tiers
    timeit(f, *args)
for rep in range({repeats}):  # interleaved, so a busy moment on the host hits every row alike
    for name, f, args in cases:
        print("T", name, timeit(f, *args))
for name, f, args in cases:
    print("H", name, heap(f, *args))
"""


def exp_straight(model: Model) -> str:
    """Straight-line code with math.exp, for 2-layer models: the 'naive straight-line' row."""
    if len(model.layers) != 2:
        return ""
    lines = ["def exp_predict(x, out):", "    exp = math.exp", f"    ({', '.join(f'p{k}' for k in range(forms.make(model).micropython_params().size))},) = P",
             f"    ({', '.join(f'x{j}' for j in range(model.n_in))},) = x"]
    k, src = 0, [f"x{j}" for j in range(model.n_in)]
    for li, layer in enumerate(model.layers):
        dst = [f"a{li}_{i}" for i in range(layer.n_out)]
        b0 = k + layer.n_in * layer.n_out
        for i in range(layer.n_out):
            dot = f"p{b0 + i}" + "".join(f" + p{k + i * layer.n_in + j} * {src[j]}"
                                         for j in range(layer.n_in))
            lines.append(f"    {dst[i]} = 1 / (1 + exp(-({dot})))")
        k, src = b0 + layer.n_out, dst
    lines += [f"    out[{i}] = {v}" for i, v in enumerate(src)] + ["    return out"]
    return "\n".join(lines)


def random_model(sizes: list[int], seed: int = 0, acts: list[str] | None = None) -> Model:
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(0, 2 / np.sqrt(a), (b, a)) for a, b in zip(sizes, sizes[1:])]
    bs = [rng.normal(0, 1, b) for b in sizes[1:]]
    return Model.from_arrays(Ws, bs, acts, name="bench_" + "_".join(map(str, sizes)))


def bench_model(sizes: list[int], n: int, repeats: int, acts: list[str] | None = None) -> list[dict]:
    model = random_model(sizes, acts=acts)
    textbook = TEXTBOOK_ACTS.format(acts=acts) if acts else TEXTBOOK
    module = micropython_module(model.name)
    x = np.random.default_rng(1).normal(0, 1, model.n_in).astype("<f4")
    rows = []
    baseline = None  # the textbook time of the first run, so every ratio has one reference
    for shape in ("straight", "rows", "loop"):
        script = BENCH.format(
            module=module, textbook=textbook, n_in=model.n_in, x_bytes=x.tobytes(), n=n,
            repeats=repeats, shapes=[(layer.n_in, layer.n_out) for layer in model.layers],
            exp_straight=exp_straight(model) if not acts else "",
            has_exp=bool(exp_straight(model)) and not acts,
        )
        stdout = mpwasm.run(script, {f"{module}.py": render_micropython(forms.make(model), shape)})
        times: dict[str, float] = {}
        heaps: dict[str, float] = {}
        for line in stdout.splitlines():
            kind, rest = line.split(" ", 1)
            name, value = rest.rsplit(" ", 1)
            if kind == "T":
                times[name] = min(times.get(name, 1e9), float(value))
            elif kind == "H":
                heaps[name] = float(value)
        baseline = baseline or times["textbook"]
        for name in times:
            if name == "generated":
                label = f"generated ({shape})"
            elif shape != "straight":
                continue  # the baselines were timed with the straight-line run
            else:
                label = name
            net = "-".join(map(str, sizes)) + (f" {'-'.join(acts)}" if acts else "")
            rows.append({"net": net, "impl": label, "us": times[name],
                         "heap": heaps[name], "textbook": baseline})
    return rows


IMPORT = """
import gc
gc.collect()
before = gc.mem_alloc()
import {module}
gc.collect()
print(gc.mem_alloc() - before)
"""


def import_heap(model: Model, shape: str) -> int:
    """Heap bytes the imported module keeps: weights as float objects in tuples, bytecode,
    buffers. (The compiler's transient peak is higher; a .mpy skips compiling on the board.)"""
    module = micropython_module(model.name)
    files = {f"{module}.py": render_micropython(forms.make(model), shape)}
    return int(mpwasm.run(IMPORT.format(module=module), files))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (noisier)")
    parser.add_argument("--no-import-heap", action="store_true", help="skip the second table")
    parser.add_argument("--only-activations", action="store_true",
                        help="only the tanh/relu-softmax rows (and no second table)")
    args = parser.parse_args()
    ok, why = mpwasm.available()
    if not ok:
        sys.exit(f"bench_micropython: {why}")
    # each timing covers about 20 ms of calls, so a busy moment on the host spoils few of them
    budget, repeats = (4000, 10) if args.quick else (20000, 60)
    print("MicroPython 1.27 WebAssembly build under Node; microseconds per prediction "
          "(min over repeats), heap bytes per prediction")
    print(f"{'net':<22} {'implementation':<24} {'us/pred':>9} {'vs textbook':>12} {'heap B':>8}")
    nets = [] if args.only_activations else [([2, 2, 1], None), ([8, 16, 1], None), ([30, 16, 8, 3], None)]
    nets += [([8, 16, 3], ["tanh", "softmax"]), ([8, 16, 3], ["relu", "softmax"])]
    for sizes, acts in nets:
        n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
        for row in bench_model(sizes, max(50, budget // n_params), repeats, acts):
            speedup = row["textbook"] / row["us"]
            print(f"{row['net']:<22} {row['impl']:<24} {row['us']:>9.2f} {speedup:>11.2f}x "
                  f"{row['heap']:>8.0f}")
    if args.no_import_heap or args.only_activations:
        return
    print()
    print("KiB of heap the imported module keeps (auto picks straight-line up to "
          f"{forms.MP_STRAIGHT_MAX_PARAMS} parameters)")
    print(f"{'net':<14} {'params':>7} {'straight':>9} {'rows':>9} {'loop':>9}")
    for sizes in ([2, 2, 1], [8, 16, 1], [16, 16, 8, 1], [30, 16, 8, 3], [64, 32, 4]):
        model = random_model(sizes)
        n_params = forms.make(model).micropython_params().size
        kib = [import_heap(model, shape) / 1024 for shape in ("straight", "rows", "loop")]
        print(f"{'-'.join(map(str, sizes)):<14} {n_params:>7} "
              + " ".join(f"{v:>9.1f}" for v in kib))

if __name__ == "__main__":
    main()
