"""boardnet's C header against emlearn on a Cortex-M0+: flash, RAM, instructions per inference.

    python bench/bench_export_c.py                 # the tables (docs/export-c.md)
    python bench/bench_export_c.py --imported      # only the imported scikit-learn networks
    python bench/bench_export_c.py --sigmoid-error # every float32 against the true sigmoid

The second table takes one scikit-learn MLPClassifier (8-16-3, tanh or relu hidden layer,
softmax output) per row: emlearn converts it, `boardnet import` reads it, and each runs
the same model (emlearn with newlib's expf/tanhf, boardnet with its own float32 tanh and
softmax, bit-exact with the host).

Same float32 weights in both. Programs are built with arm-none-eabi-gcc -mcpu=cortex-m0plus
-mthumb -Os -ffunction-sections -fdata-sections -Wl,--gc-sections and newlib-nano; "added"
is the program with the model call minus the same program without it. Instructions are
counted in unicorn (bench/m0count.py), averaged over random inputs: generic ARMv6-M /
libgcc soft-float figures, not RP2040 cycles (pico-sdk uses the ROM's float routines).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from m0count import Elf, count_instructions  # noqa: E402

from boardnet import forms  # noqa: E402
from boardnet.codegen import export_c  # noqa: E402
from boardnet.model import Model  # noqa: E402
from boardnet.numerics import LIMIT_BITS, sigmoid32  # noqa: E402

CC = [
    "arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "-Os", "-std=c99",
    "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections",
    "--specs=nano.specs", "--specs=nosys.specs",
]
BOARDNET_FUNCS = ("bench_predict", "boardnet_sigmoid_v1")

MAIN = """
#include <stdint.h>
{include}
volatile float g_x[{n_in}];
volatile float g_y[{n_out}];
__attribute__((noinline)) void bench_predict(const float *x, float *y)
{{
    {call}
}}
int main(void)
{{
    float x[{n_in}], y[{n_out}];
    int i;
    for (i = 0; i < {n_in}; ++i) x[i] = g_x[i];
    bench_predict(x, y);
    for (i = 0; i < {n_out}; ++i) g_y[i] = y[i];
    return 0;
}}
"""


def random_model(sizes: list[int], seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(scale=1.5, size=(o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(size=o) for o in sizes[1:]]
    return Model.from_arrays(Ws, bs, name="net")


def emlearn_header(model: Model, path: Path) -> None:
    """emlearn's default ("loadable") C for the same float32 weights, via scikit-learn."""
    import emlearn
    from sklearn.neural_network import MLPClassifier

    layers = model.folded32()
    hidden = tuple(layer.n_out for layer in layers[:-1])
    mlp = MLPClassifier(hidden_layer_sizes=hidden, activation="logistic", max_iter=1)
    X = np.random.default_rng(0).normal(size=(8, model.n_in))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp.fit(X, [0, 1] * 4)
    mlp.coefs_ = [layer.W.T.astype(np.float64) for layer in layers]  # emlearn is [in][out]
    mlp.intercepts_ = [layer.b.astype(np.float64) for layer in layers]
    emlearn.convert(mlp, method="loadable").save(name="mynet", file=str(path))


def build(tmp: Path, name: str, model: Model, kind: str) -> Path:
    n_in, n_out = model.n_in, model.n_out
    extra: list[str] = []
    if kind == "empty":
        include, call = "", "y[0] = x[0];"
    elif kind == "boardnet":
        header = export_c(forms.make(model), tmp)
        include, call = f'#include "{header.name}"', f"{header.stem}_predict(x, y);"
    elif kind == "emlearn":
        import emlearn

        emlearn_header(model, tmp / "mynet.h")
        include = '#include "mynet.h"'
        call = f"eml_net_regress(&mynet, x, {n_in}, y, {n_out});"
        extra = ["-I", emlearn.includedir, "-lm"]
    else:
        raise ValueError(kind)
    src = tmp / f"{name}.c"
    src.write_text(MAIN.format(include=include, call=call, n_in=n_in, n_out=n_out))
    elf = tmp / f"{name}.elf"
    subprocess.run([*CC, "-I", str(tmp), str(src), "-o", str(elf), *extra], check=True)
    return elf


def sizes_of(elf: Path) -> tuple[int, int]:
    out = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in out.stdout.splitlines()[1].split()[:3])
    return text + data, data + bss  # flash, RAM


def own_bytes(elf: Path, names: tuple[str, ...], prefix: str) -> int:
    """Bytes of boardnet's own code and weights: its functions and the model's arrays."""
    e = Elf.load(elf)
    return sum(
        s.size for s in e.symbols.values()
        if s.name in names or s.name.startswith(prefix) or s.name.startswith("boardnet_")
    )


def measure(elf: Path, model: Model, n: int, check: bool) -> tuple[float, float, bool]:
    e = Elf.load(elf)
    rng = np.random.default_rng(1)
    X = rng.normal(scale=2.0, size=(n, model.n_in)).astype(np.float32)
    total = soft = 0
    exact = True
    for x in X:
        c = count_instructions(e, "bench_predict", [x.tobytes(), bytes(4 * model.n_out)])
        total += c.instructions
        soft += c.soft_float
        y = np.frombuffer(c.memory[8 * ((4 * model.n_in + 7) // 8) :][: 4 * model.n_out], np.float32)
        want = model.predict32(x)
        if check:
            exact &= bool(np.array_equal(y.view(np.uint32), want.view(np.uint32)))
        else:
            exact &= bool(np.allclose(y, want, atol=1e-5))
    return total / n, soft / total, exact


def bench(n_inputs: int) -> None:
    print("Cortex-M0+ (ARMv6-M), arm-none-eabi-gcc -Os, newlib-nano, libgcc soft float;")
    print("instructions counted in unicorn, mean over", n_inputs, "random inputs\n")
    head = (
        f"{'network':<10} {'library':<9} {'flash added':>12} {'own code+data':>14} "
        f"{'RAM added':>10} {'instructions':>13} {'soft-float':>10} {'vs emlearn':>10} {'output':>12}"
    )
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for sizes in ([2, 2, 1], [8, 16, 1], [30, 16, 8, 3]):
            model = random_model(sizes)
            net = "-".join(map(str, sizes))
            flash0, ram0 = sizes_of(build(tmp, f"empty{net}", model, "empty"))
            rows = {}
            for kind in ("emlearn", "boardnet"):
                sub = tmp / f"{kind}{net}"
                sub.mkdir()
                elf = build(sub, kind, model, kind)
                flash, ram = sizes_of(elf)
                own = own_bytes(elf, BOARDNET_FUNCS, "net_") if kind == "boardnet" else (
                    own_bytes(elf, ("bench_predict",), "mynet") + sum(
                        s.size for s in Elf.load(elf).symbols.values() if s.name.startswith("eml_")
                    )
                )
                ins, share, ok = measure(elf, model, n_inputs, check=kind == "boardnet")
                rows[kind] = (flash - flash0, own, ram - ram0, ins, share, ok)
            for kind, (flash, own, ram, ins, share, ok) in rows.items():
                ratio = ins / rows["emlearn"][3]
                exact = ("bit-exact" if ok else "DIFFERS") if kind == "boardnet" else (
                    "~" if ok else "off"
                )
                print(
                    f"{net:<10} {kind:<9} {flash:>10} B {own:>12} B {ram:>8} B {ins:>13,.0f} "
                    f"{share:>9.0%} {ratio:>9.2f}x {exact:>12}"
                )


def imported_mlp(activation: str, tmp: Path):
    """A scikit-learn MLPClassifier 8-16-3 with `activation` hidden units and a softmax output,
    trained on 3 classes of standardised data, and its boardnet import."""
    import pickle
    import warnings

    from sklearn.neural_network import MLPClassifier

    from boardnet.importers import read

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 8))
    score = X[:, 0] + X[:, 1] / 2 - X[:, 2] / 3 + 0.3 * np.tanh(X[:, 3] * X[:, 4])
    y = np.searchsorted(np.quantile(score, [1 / 3, 2 / 3]), score)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier((16,), activation=activation, max_iter=500, random_state=0).fit(X, y)
    path = tmp / f"mlp_{activation}.pkl"
    path.write_bytes(pickle.dumps(mlp))
    return mlp, read(path, name="net", trust_pickle=True).model


def build_imported(tmp: Path, name: str, mlp, model: Model, kind: str) -> Path:
    n_in, n_out = model.n_in, model.n_out
    extra: list[str] = []
    if kind == "boardnet":
        header = export_c(forms.make(model), tmp)
        include, call = f'#include "{header.name}"', f"{header.stem}_predict(x, y);"
    else:
        import emlearn

        emlearn.convert(mlp, method="loadable").save(name="mynet", file=str(tmp / "mynet.h"))
        include = '#include "mynet.h"'
        call = f"eml_net_predict_proba(&mynet, x, {n_in}, y, {n_out});"
        extra = ["-I", emlearn.includedir, "-lm"]
    src = tmp / f"{name}.c"
    src.write_text(MAIN.format(include=include, call=call, n_in=n_in, n_out=n_out))
    elf = tmp / f"{name}.elf"
    subprocess.run([*CC, "-I", str(tmp), str(src), "-o", str(elf), *extra], check=True)
    return elf


def bench_imported(n_inputs: int) -> None:
    print("\nImported scikit-learn MLPClassifier, softmax output: emlearn's C and boardnet's for the "
          "same model")
    head = (f"{'network':<22} {'library':<9} {'flash added':>12} {'instructions':>13} {'soft-float':>10} "
            f"{'vs emlearn':>10} {'output':>12}")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for activation in ("tanh", "relu"):
            mlp, model = imported_mlp(activation, tmp)
            net = f"8-16-3 {activation}-softmax"
            flash0, _ = sizes_of(build(tmp, f"empty{activation}", model, "empty"))
            rows = {}
            for kind in ("emlearn", "boardnet"):
                sub = tmp / f"{kind}{activation}"
                sub.mkdir()
                elf = build_imported(sub, kind, mlp, model, kind)
                flash, _ = sizes_of(elf)
                ins, share, ok = measure(elf, model, n_inputs, check=kind == "boardnet")
                rows[kind] = (flash - flash0, ins, share, ok)
            for kind, (flash, ins, share, ok) in rows.items():
                exact = ("bit-exact" if ok else "DIFFERS") if kind == "boardnet" else ("~" if ok else "off")
                print(f"{net:<22} {kind:<9} {flash:>10} B {ins:>13,.0f} {share:>9.0%} "
                      f"{ins / rows['emlearn'][1]:>9.2f}x {exact:>12}")


def sigmoid_error() -> None:
    """max |sigmoid32(x) - sigmoid(x)| over every float32 x with |x| < 86 (above: exact 0/1)."""
    t0 = time.time()
    worst, where = 0.0, 0.0
    step = 1 << 24
    for sign in (0, 0x80000000):
        for start in range(0, LIMIT_BITS + 1, step):
            bits = np.arange(start, min(start + step, LIMIT_BITS + 1), dtype=np.uint32)
            x = (bits | np.uint32(sign)).view(np.float32)
            y = sigmoid32(x).astype(np.float64)
            err = np.abs(y - 0.5 - 0.5 * np.tanh(0.5 * x.astype(np.float64)))
            i = int(err.argmax())
            if err[i] > worst:
                worst, where = float(err[i]), float(x[i])
    print(f"max abs error {worst:.4g} at x = {where!r} ({time.time() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inputs", type=int, default=20, help="random inputs per measurement")
    ap.add_argument("--sigmoid-error", action="store_true", help="exhaustive sigmoid error")
    ap.add_argument("--imported", action="store_true", help="only the imported scikit-learn networks")
    args = ap.parse_args()
    if args.sigmoid_error:
        sigmoid_error()
    elif args.imported:
        bench_imported(args.inputs)
    else:
        bench(args.inputs)
        bench_imported(args.inputs)


if __name__ == "__main__":
    main()
