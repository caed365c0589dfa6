"""Integer-only (q15) models: the host reference (boardnet.quantize) is the oracle, and the C
header (host gcc), the MicroPython module under CPython and under real MicroPython
(WebAssembly) must return the same integers, for predictions and for the decimal parser."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from boardnet import codegen, forms
from boardnet import quantize as Q
from boardnet.codegen.mpy import MpyCrossMissing, mpy_cross_command
from boardnet.commands.demo import HELD_OUT
from boardnet.model import Model, Normalization, sigmoid
from boardnet.names import c_prefix

sys.path.insert(0, str(Path(__file__).parent))
import mpwasm  # noqa: E402
from conftest import need, need_exe  # noqa: E402

N = 10_000
STRICT = [
    "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wdouble-promotion", "-Wfloat-conversion",
    "-Wshadow", "-Wconversion", "-Werror",
]
TARGETS = {
    "host": ["gcc"],
    "cortex-m0plus": ["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb"],
    "rv32imc": ["riscv64-unknown-elf-gcc", "-march=rv32imc", "-mabi=ilp32", "--specs=picolibc.specs"],
}

# predict mode: lines of n_in ints -> lines of n_out ints. parse mode (argv[1] = "parse"):
# lines "g c text" -> the parsed int, or ERR.
DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "{header}"
int main(int argc, char **argv)
{{
    int16_t x[{P}_N_IN];
    int32_t y[{P}_N_OUT];
    char line[4096], text[4096];
    int i, g, n;
    long v, c;
    if (argc > 1 && strcmp(argv[1], "parse") == 0) {{
        while (fgets(line, sizeof line, stdin)) {{
            text[0] = 0;
            n = 0;
            if (sscanf(line, "%d %ld %n", &g, &c, &n) < 2) return 2;
            strcpy(text, line + n);
            text[strcspn(text, "\n")] = 0;
            if (strcmp(text, "<empty>") == 0) text[0] = 0;
            if (boardnet_parse_q15_v1(text, strlen(text), g, (int32_t)c, &x[0]) == 0)
                printf("%d\n", (int)x[0]);
            else
                printf("ERR\n");
        }}
        return 0;
    }}
    for (;;) {{
        for (i = 0; i < {P}_N_IN; ++i) {{
            if (scanf("%ld", &v) != 1) return 0;
            x[i] = (int16_t)v;
        }}
        {p}_predict_q(x, y);
        for (i = 0; i < {P}_N_OUT; ++i)
            printf("%ld%c", (long)y[i], i + 1 < {P}_N_OUT ? ' ' : '\n');
    }}
}}
"""


def random_model(sizes: list[int], seed: int, last: str = "sigmoid", name: str | None = None) -> Model:
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(0, 2 / np.sqrt(a), (b, a)) for a, b in zip(sizes, sizes[1:])]
    bs = [rng.normal(0, 1, b) for b in sizes[1:]]
    acts = ["sigmoid"] * (len(Ws) - 1) + [last]
    norm = Normalization("standard", rng.normal(0, 50, sizes[0]), rng.uniform(0.01, 40, sizes[0]))
    return Model.from_arrays(Ws, bs, acts, name=name or f"net_{'_'.join(map(str, sizes))}",
                             normalization=norm)


MODELS = {
    "2-2-1": random_model([2, 2, 1], 1),
    "8-16-1": random_model([8, 16, 1], 2),
    "30-16-8-3": random_model([30, 16, 8, 3], 3),
    "4-8-2-linear": random_model([4, 8, 2], 4, last="linear"),
}


def int_inputs(q: Q.QuantizedModel, n: int = N, seed: int = 0) -> np.ndarray:
    """int16 inputs: from raw values inside, around and far outside the input range (which
    saturate), plus uniform int16 and the extremes (-32768 too, which the type allows)."""
    rng = np.random.default_rng(seed)
    lo, hi = q.input_range()
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    k = n // 4
    X = [
        q.quantize_inputs(mid + half * rng.uniform(-1, 1, (k, q.n_in))),
        q.quantize_inputs(mid + half * rng.normal(0, 0.05, (k, q.n_in))),
        q.quantize_inputs(mid + half * rng.normal(0, 30, (k, q.n_in))),  # mostly saturated
        rng.integers(-32768, 32768, (n - 3 * k, q.n_in)),
    ]
    X = np.concatenate(X)
    X[:8] = 32767
    X[8:16] = -32768
    X[16:24] = 0
    return X.astype(np.int64)


# ---- the arithmetic ---------------------------------------------------------------------------
def test_sigmoid_table_and_error_bound():
    T = np.array(Q.SIGMOID_TABLE)
    assert len(T) == Q.TABLE_N + 1 and T[0] == Q.ONE // 2
    assert np.all(np.diff(T) >= 0) and T[-1] <= Q.ONE  # monotone: slopes are unsigned
    err = Q.sigmoid_error()
    assert err <= Q.SIGMOID_MAX_ERROR < 5e-4
    assert Q.SIGMOID_MAX_ERROR - err < 1e-6  # the stated bound is the measured one


def test_sigmoid_q15_against_the_true_sigmoid():
    rng = np.random.default_rng(5)
    for shift in (0, 1, 5, 12, 19):
        acc = np.concatenate([
            rng.integers(-(1 << 30) + 1, 1 << 30, 20000),
            rng.integers(-(20 << (shift + Q.Z_FRAC)), 20 << (shift + Q.Z_FRAC), 20000),
            [0, -1, 1, (1 << 30) - 1, -(1 << 30) + 1],
        ])
        y = Q.sigmoid_q15(acc, shift) / Q.ONE
        z = acc / 2.0 ** (shift + Q.Z_FRAC)
        assert np.max(np.abs(y - sigmoid(z))) <= Q.SIGMOID_MAX_ERROR
        assert np.all((y >= 0) & (y <= 1))
        # odd symmetry, exact: acc and -1 - acc index the same t
        assert np.array_equal(Q.sigmoid_q15(acc, shift) + Q.sigmoid_q15(-1 - acc, shift),
                              np.full(acc.shape, Q.ONE))
    big = np.array([10_000 << 22, -(10_000 << 22)]) // 1  # z = +-1e4 saturates to exactly 1, 0
    assert Q.sigmoid_q15(big, 12).tolist() == [Q.ONE, 0]


def test_overflow_proof_holds_for_every_layer():
    for model in MODELS.values():
        q = Q.quantize(model)
        for k, layer in enumerate(q.layers):
            worst = np.abs(layer.b) + np.abs(layer.W).sum(axis=1) * Q.X_BOUND
            assert int(worst.max()) == layer.bound < Q.ACC_LIMIT
            assert np.abs(layer.W).max() <= 32767
            assert forms.make(model, "q15").c_bound(k) <= layer.bound


def overflowing_model() -> Model:
    """30 inputs, 16 hidden, every weight large and of one sign: int16 weights at full scale
    would reach 30 * 32767 * 32768 ~ 2^35 in the accumulators."""
    Ws = [np.full((16, 30), 4.0), np.full((1, 16), -6.0)]
    bs = [np.full(16, 3.0), np.array([40.0])]
    return Model.from_arrays(Ws, bs, name="overflow")


def test_overflow_proof_rescales():
    q = Q.quantize(overflowing_model())
    for layer in q.layers:
        assert layer.limited_by == "overflow proof"
        assert layer.bound < Q.ACC_LIMIT
        assert np.abs(layer.W).max() < 32767 // 8  # scaled down from the int16 limit
    # the worst inputs reach the bound's neighbourhood and stay exact
    X = np.array([[32767] * 30, [-32768] * 30])
    y = q.predict_int(X)
    assert y.shape == (2, 1)


def test_refuses_what_cannot_be_proved():
    wide = Model.from_arrays([np.full((1, 5000), 1.0)], [np.zeros(1)], name="wide")
    with pytest.raises(Q.QuantizationError, match="bits"):
        Q.quantize(wide)
    # layer 1 adapts its input steps to its weights; a hidden layer cannot
    huge = Model.from_arrays([np.eye(2), np.full((1, 2), 1e7)], [np.zeros(2), np.zeros(1)], name="huge")
    with pytest.raises(Q.QuantizationError, match="too large"):
        Q.quantize(huge)
    big_bias = Model.from_arrays([np.eye(2), np.ones((1, 2))], [np.zeros(2), [1e9]], name="bias")
    with pytest.raises(Q.QuantizationError, match="too large"):
        Q.quantize(big_bias)
    with pytest.raises(Exception, match="unknown precision"):
        Q.quantize(MODELS["2-2-1"], "q7")
    with pytest.raises(Exception, match="unknown precision"):
        forms.make(MODELS["2-2-1"], "q7")


@pytest.mark.cross
def test_no_undefined_behaviour_at_the_worst_inputs(tmp_path):
    """The rescaled network under -fsanitize=undefined: no signed overflow, same integers."""
    need_exe("gcc")
    model = overflowing_model()
    q = Q.quantize(model)
    exe = compile_driver(model, tmp_path, ["-O0", "-fsanitize=undefined", "-fno-sanitize-recover=all"])
    X = np.array([[32767] * 30, [-32768] * 30, [32767, -32768] * 15, [0] * 30])
    assert np.array_equal(run_driver(exe, X), q.predict_int(X))


# ---- the input parser --------------------------------------------------------------------------
VALID = [
    "0", "-0", "+0", "0.0", "-0.000", "00012.5000", "128", "128.5", "-128.5", "+7", ".5", "-.5",
    "5.", "-5.", "0.49999999999999999999999999", "0.50000000000000000000000001",
    "1.4999999999999999999999999999999999999999", "3.0000000000000000000000000000000000001",
    "123456789012345678901234567890", "-999999999999999999999999", "0.0000000000000000000001",
    "65.999999", "66", "66.000001", "1" + "0" * 80, "-" + "9" * 70 + "." + "9" * 70,
]
INVALID = [
    "", "+", "-", ".", "-.", "1e3", "1E3", "1.2.3", " 1", "1 ", "0x10", "inf", "-inf", "nan",
    "NaN", "--1", "+-1", "1_000", "1,5", "\u0661\u0662", "1-", "1.5e-3", "١", "12a",
]
EXPONENTS = [(-27, 0), (-5, 53_000_000), (0, 0), (0, 12), (3, -400), (9, 72320), (10, 68352),
             (17, 0), (25, 3)]


def decimal_cases(seed: int = 0) -> list[str]:
    """Plain decimals: the fixed cases, float reprs, random digit strings, values on the
    rounding boundaries (k + 1/2) * 2^-e of every exponent, and their neighbours."""
    rng = np.random.default_rng(seed)
    cases = list(VALID)
    for v in rng.normal(0, 1, 300) * 10.0 ** rng.integers(-8, 10, 300):
        cases.append(np.format_float_positional(v, trim="-"))
    for _ in range(300):
        i = "".join(rng.choice(list("0123456789"), rng.integers(0, 12)))
        f = "".join(rng.choice(list("0123456789"), rng.integers(0, 40)))
        text = (rng.choice(["", "-", "+"]) + i + ("." + f if f or not i else ""))
        cases.append(text if DECIMAL(text) else text + "0")
    for e, _ in EXPONENTS:
        for k in rng.integers(-40000, 40000, 20):
            tie = Fraction(2 * int(k) + 1, 2) / Fraction(2) ** e
            for delta in (0, Fraction(1, 10**30), -Fraction(1, 10**30)):
                cases.append(decimal_text(tie + delta))
    return cases


def DECIMAL(text: str) -> bool:
    return Q.DECIMAL.fullmatch(text) is not None


def decimal_text(v: Fraction) -> str:
    """The exact decimal expansion of v (its denominator has only factors 2 and 5), or 40
    digits of it otherwise."""
    sign = "-" if v < 0 else ""
    v = abs(v)
    whole = v.numerator // v.denominator
    rest = v - whole
    digits = []
    for _ in range(60):
        if not rest:
            break
        rest *= 10
        digits.append(str(rest.numerator // rest.denominator))
        rest -= rest.numerator // rest.denominator
    return sign + str(whole) + ("." + "".join(digits) if digits else "")


def reference_parse(text: str, e: int, c: int) -> int | None:
    try:
        return Q.parse_decimal(text, e, c)
    except ValueError:
        return None


def test_reference_parser_rounding_and_saturation():
    assert Q.parse_decimal("128.5", 0, 0) == 129
    assert Q.parse_decimal("-128.5", 0, 0) == -129  # half away from zero
    assert Q.parse_decimal("2.25", 1, 0) == 5 and Q.parse_decimal("-2.25", 1, 0) == -5
    assert Q.parse_decimal("1" + "0" * 40, 0, 0) == 32767
    assert Q.parse_decimal("-1" + "0" * 40, 0, 0) == -32767
    assert Q.parse_decimal("100", 0, 100) == 0
    assert Q.parse_decimal("3", -1, 0) == 2 and Q.parse_decimal("1", -1, 0) == 1
    for bad in INVALID:
        with pytest.raises(ValueError):
            Q.parse_decimal(bad, 0, 0)


def test_float_inputs_quantise_like_their_text():
    """quantize_inputs(x) is parse_decimal(repr(x)): a float and its shortest repr lie on the
    same side of every rounding boundary."""
    q = Q.quantize(MODELS["8-16-1"])
    rng = np.random.default_rng(3)
    lo, hi = q.input_range()
    X = lo + (hi - lo) * rng.uniform(-0.2, 1.2, (300, q.n_in))
    ties = (np.array(q.in_offset) + rng.integers(-100, 100, (50, q.n_in)) + 0.5) * 2.0 ** -np.array(q.in_exp)
    X = np.concatenate([X, ties, -ties])
    got = q.quantize_inputs(X)
    want = np.array([[q.parse_input(j, repr(float(v))) for j, v in enumerate(row)] for row in X])
    assert np.array_equal(got, want)


def c_parse(exe: Path, cases: list[tuple[int, int, str]]) -> list[int | None]:
    text = "".join(f"{g} {c} {s if s else '<empty>'}\n" for g, c, s in cases)
    out = subprocess.run([str(exe), "parse"], input=text, capture_output=True, text=True,
                         check=True).stdout.split()
    return [None if v == "ERR" else int(v) for v in out]


def parse_cases() -> list[tuple[int, int, str]]:
    texts = decimal_cases() + INVALID
    return [(e, c, s) for e, c in EXPONENTS for s in texts]


@pytest.mark.cross
def test_c_parser_matches_the_reference(tmp_path):
    need_exe("gcc")
    exe = compile_driver(MODELS["2-2-1"], tmp_path, ["-O2"])
    cases = [(e, c, s) for e, c, s in parse_cases() if s == s.strip()]
    got = c_parse(exe, [(e + 1, c, s) for e, c, s in cases])
    want = [reference_parse(s, e, c) for e, c, s in cases]
    assert len(got) == len(want)
    bad = [(case, g, w) for case, g, w in zip(cases, got, want) if g != w]
    assert not bad, bad[:10]


MP_PARSE_SCRIPT = """
import mod
out = []
for line in open("/lib/cases.txt"):
    e, c, s = line.rstrip("\\n").split(" ", 2)
    mod.IN_EXP = (int(e),)
    mod.IN_OFFSET = (int(c),)
    try:
        out.append(str(mod.parse(0, "" if s == "<empty>" else s)))
    except ValueError:
        out.append("ERR")
print(" ".join(out))
"""


def test_micropython_parser_under_cpython():
    cases = parse_cases()
    module = load_module(codegen.render_micropython(forms.make(MODELS["2-2-1"], "q15")))
    got = []
    for e, c, s in cases:
        module.IN_EXP, module.IN_OFFSET = (e,), (c,)
        try:
            got.append(module.parse(0, s))
        except ValueError:
            got.append(None)
    want = [reference_parse(s, e, c) for e, c, s in cases]
    assert len(got) == len(want)
    bad = [(case, g, w) for case, g, w in zip(cases, got, want) if g != w]
    assert not bad, bad[:10]


@pytest.mark.node
def test_micropython_parser_under_webassembly():
    ok, why = mpwasm.available()
    need(ok, why)
    cases = [(e, c, s) for e, c, s in parse_cases() if s.isascii() and s == s.strip()]
    files = {"mod.py": codegen.render_micropython(forms.make(MODELS["2-2-1"], "q15")),
             "cases.txt": "".join(f"{e} {c} {s or '<empty>'}\n" for e, c, s in cases)}
    out = mpwasm.run(MP_PARSE_SCRIPT, files).split()
    got = [None if v == "ERR" else int(v) for v in out]
    want = [reference_parse(s, e, c) for e, c, s in cases]
    assert len(got) == len(want)
    bad = [(case, g, w) for case, g, w in zip(cases, got, want) if g != w]
    assert not bad, bad[:10]


# ---- C header -----------------------------------------------------------------------------------
def compile_driver(model: Model, tmp: Path, flags: list[str]) -> Path:
    header = codegen.export_c(forms.make(model, "q15"), tmp)
    p = c_prefix(model.name)
    src = tmp / f"driver_{p}.c"
    src.write_text(DRIVER.format(header=header.name, p=p, P=p.upper()))
    exe = tmp / f"driver_{p}_{abs(hash(tuple(flags)))}"
    # the driver itself uses stdio freely; the header is held to STRICT below
    subprocess.run(["gcc", "-std=c99", "-Wall", *flags, "-I", str(tmp), str(src), "-o", str(exe)],
                   check=True)
    return exe


def run_driver(exe: Path, X: np.ndarray) -> np.ndarray:
    text = "\n".join(" ".join(str(int(v)) for v in row) for row in X) + "\n"
    out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True).stdout
    return np.array([[int(v) for v in line.split()] for line in out.splitlines()], dtype=np.int64)


@pytest.mark.cross
@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_c_matches_the_reference(key, opt, tmp_path):
    need_exe("gcc")
    model = MODELS[key]
    q = Q.quantize(model)
    X = int_inputs(q)
    exe = compile_driver(model, tmp_path, [opt])
    assert np.array_equal(run_driver(exe, X), q.predict_int(X))


def code_only(text: str) -> str:
    """C source without comments and string literals."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def test_generated_c_has_no_float_or_double():
    for model in [*MODELS.values(), hostile_model()]:
        text = codegen.render_c(forms.make(model, "q15"))
        assert not re.search(r"\b(float|double)\b", code_only(text))
    # with plain names the words appear nowhere, comments included
    assert not re.search(r"float|double", codegen.render_c(forms.make(MODELS["8-16-1"], "q15")))


def hostile_model() -> Model:
    m = random_model([3, 4, 1], 9, name='float */ "double" \\ ??/ int main')
    return Model.from_arrays([layer.W for layer in m.layers], [layer.b for layer in m.layers],
                             name=m.name, features=['a "b"', "*/ float", "naïve"],
                             labels=["x\n", "double"], normalization=m.normalization)


@pytest.mark.cross
@pytest.mark.parametrize("target", list(TARGETS))
def test_warning_free_on_every_target(target, tmp_path):
    cc = TARGETS[target]
    need_exe(cc[0])
    for model in [MODELS["2-2-1"], MODELS["30-16-8-3"], MODELS["4-8-2-linear"], hostile_model()]:
        header = codegen.export_c(forms.make(model, "q15"), tmp_path)
        p = c_prefix(model.name)
        src = tmp_path / f"use_{p}.c"
        src.write_text(
            f'#include "{header.name}"\n'
            f"int use_{p}(const int16_t *x, int32_t *y, const char *s);\n"
            f"int use_{p}(const int16_t *x, int32_t *y, const char *s)\n"
            f"{{\n    int16_t v;\n    {p}_predict_q(x, y);\n"
            f"    return {p}_parse_input(0, s, 3, &v);\n}}\n"
        )
        for opt in ("-O0", "-Os", "-O2"):
            subprocess.run([*cc, *STRICT, opt, "-c", str(src), "-o", str(tmp_path / "o.o")], check=True)


@pytest.mark.cross
def test_two_models_in_one_program(tmp_path):
    need_exe("gcc")
    a, b = MODELS["2-2-1"], MODELS["8-16-1"]
    ha = codegen.export_c(forms.make(a, "q15"), tmp_path)
    hb = codegen.export_c(forms.make(b, "q15"), tmp_path)
    src = tmp_path / "two.c"
    src.write_text(
        f'#include <stdio.h>\n#include "{ha.name}"\n#include "{hb.name}"\n'
        "int main(void) {\n"
        "    int16_t xa[2] = {100, -200}, xb[8] = {1, 2, 3, 4, 5, 6, 7, 8};\n"
        "    int32_t ya[1], yb[1];\n"
        "    net_2_2_1_predict_q(xa, ya);\n    net_8_16_1_predict_q(xb, yb);\n"
        '    printf("%ld %ld\\n", (long)ya[0], (long)yb[0]);\n    return 0;\n}\n'
    )
    exe = tmp_path / "two"
    subprocess.run(["gcc", *STRICT, str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == Q.quantize(a).predict_int([100, -200])[0]
    assert int(out[1]) == Q.quantize(b).predict_int([1, 2, 3, 4, 5, 6, 7, 8])[0]


M0_MAIN = """
#include <stdint.h>
#include "{header}"
volatile int16_t g_x[{P}_N_IN];
volatile int32_t g_y[{P}_N_OUT];
volatile char g_text[8] = "128.5";
int main(void)
{{
    int16_t x[{P}_N_IN];
    int32_t y[{P}_N_OUT];
    char text[8];
    int i;
    for (i = 0; i < 8; ++i) text[i] = g_text[i];
    for (i = 0; i < {P}_N_IN; ++i) x[i] = g_x[i];
    if ({p}_parse_input(0, text, 5, &x[0]) != 0) return 1;
    {p}_predict_q(x, y);
    for (i = 0; i < {P}_N_OUT; ++i) g_y[i] = y[i];
    return 0;
}}
"""
SOFT_FLOAT = re.compile(r"^(__aeabi_[fd]\w*|__aeabi_(i2f|ui2f|l2f|ul2f|i2d|ui2d|l2d|ul2d)"
                        r"|__\w+[sd]f\d?|__\w+[sd]f\w*)$")


@pytest.mark.cross
@pytest.mark.parametrize("key", ["2-2-1", "30-16-8-3"])
def test_cortex_m0plus_links_no_soft_float(key, tmp_path):
    need_exe("arm-none-eabi-gcc", "arm-none-eabi-nm")
    model = MODELS[key]
    header = codegen.export_c(forms.make(model, "q15"), tmp_path)
    p = c_prefix(model.name)
    src = tmp_path / "main.c"
    src.write_text(M0_MAIN.format(header=header.name, p=p, P=p.upper()))
    elf = tmp_path / "main.elf"
    subprocess.run([
        "arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "-Os", *STRICT,
        "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections",
        "--specs=nano.specs", "--specs=nosys.specs", f"-Wl,-Map={tmp_path / 'main.map'}",
        "-I", str(tmp_path), str(src), "-o", str(elf),
    ], check=True)
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True)
    names = [line.split()[-1] for line in nm.stdout.splitlines() if line.strip()]
    assert "main" in names and "boardnet_sigmoid_q15_v1" in names  # the model is linked
    assert not [n for n in names if SOFT_FLOAT.match(n)]
    assert not re.search(r"__aeabi_[fd]|addsf3|mulsf3|divsf3|adddf3", (tmp_path / "main.map").read_text())


# ---- MicroPython ---------------------------------------------------------------------------------
def load_module(source: str, name: str = "q15_model") -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.parametrize("shape", ["straight", "loop"])
def test_micropython_module_under_cpython(key, shape):
    model = MODELS[key]
    q = Q.quantize(model)
    module = load_module(codegen.render_micropython(forms.make(model, "q15"), shape))
    assert module.SHAPE == shape and module.PRECISION == "q15"
    X = int_inputs(q, 3000 if shape == "straight" else 1000)
    got = np.array([module.predict(list(map(int, x))) for x in X])
    assert np.array_equal(got, q.predict_int(X))


def test_module_api_and_constants():
    model = MODELS["30-16-8-3"]
    q = Q.quantize(model)
    module = load_module(codegen.render_micropython(forms.make(model, "q15")))
    assert (module.N_IN, module.N_OUT) == (30, 3)
    assert module.FINGERPRINT == forms.make(model, "q15").fingerprint == model.fingerprint_of("q15", q.fingerprint_bytes())
    assert module.FINGERPRINT != model.fingerprint()
    assert module.LABELS == ("0", "1", "2") and module.NAME == model.name
    assert module.OUT_FRAC_BITS == 15
    assert list(module.IN_EXP) == list(q.in_exp) and list(module.IN_OFFSET) == list(q.in_offset)
    out = [0, 0, 0]
    assert module.predict([0] * 30, out) is out
    texts = [repr(float(v)) for v in np.linspace(-3, 3, 30)]
    assert module.predict_raw(texts) == q.predict_int(q.parse_row(texts)).tolist()
    with pytest.raises(ValueError):
        module.predict_raw(["1e3"] * 30)
    header = codegen.render_c(forms.make(model, "q15"))
    assert f'#define NET_30_16_8_3_FINGERPRINT "{forms.make(model, "q15").fingerprint}"' in header
    assert "#define NET_30_16_8_3_OUT_FRAC_BITS 15" in header
    linear = load_module(codegen.render_micropython(forms.make(MODELS["4-8-2-linear"], "q15")))
    assert linear.OUT_FRAC_BITS == Q.quantize(MODELS["4-8-2-linear"]).layers[-1].frac_bits


def test_rendering_is_deterministic_and_fingerprinted():
    model = MODELS["8-16-1"]
    assert codegen.render_c(forms.make(model, "q15")) == codegen.render_c(forms.make(model, "q15"))
    a = codegen.render_micropython(forms.make(model, "q15"))
    assert a == codegen.render_micropython(forms.make(model, "q15"))
    assert forms.make(model, "q15").fingerprint in a
    wider = forms.make(model, "q15", input_range=(np.full(8, -1e4), np.full(8, 1e4)))
    assert wider.fingerprint != forms.make(model, "q15").fingerprint


def wasm_predict_script(n_in: int, n_out: int, n: int) -> str:
    return f"""
import mod, struct
data = open("/lib/x.bin", "rb").read()
fmt = "<{n_in}h"
size = {2 * n_in}
out = [0] * {n_out}
lines = []
for k in range({n}):
    x = struct.unpack_from(fmt, data, k * size)
    mod.predict(x, out)
    lines.append(" ".join(str(v) for v in out))
print("\\n".join(lines))
"""


@pytest.mark.node
@pytest.mark.parametrize("key", list(MODELS))
def test_micropython_webassembly_matches_the_reference(key):
    ok, why = mpwasm.available()
    need(ok, why)
    model = MODELS[key]
    q = Q.quantize(model)
    X = int_inputs(q)
    files = {"mod.py": codegen.render_micropython(forms.make(model, "q15")),
             "x.bin": X.astype("<i2").tobytes()}
    out = mpwasm.run(wasm_predict_script(q.n_in, q.n_out, len(X)), files)
    got = np.array([[int(v) for v in line.split()] for line in out.splitlines()])
    assert np.array_equal(got, q.predict_int(X))


# ---- the seed model ----------------------------------------------------------------------------
def test_seed_model_still_tells_emily_from_frank(tmp_path, people):
    model = people
    q = Q.quantize(model)
    texts = {name: [f"{v:g}" for v in x] for name, x in HELD_OUT.items()}
    yq = {name: int(q.predict_int(q.parse_row(t))[0]) for name, t in texts.items()}
    assert model.classify(np.array([[yq["Emily"] / Q.ONE]])) == ["F"]
    assert model.classify(np.array([[yq["Frank"] / Q.ONE]])) == ["M"]
    y64 = model.predict(np.array(list(HELD_OUT.values())))[:, 0]
    assert abs(yq["Emily"] / Q.ONE - y64[0]) < 2e-3 and abs(yq["Frank"] / Q.ONE - y64[1]) < 2e-3
    module = load_module(codegen.render_micropython(forms.make(model, "q15")))
    assert module.predict_raw(texts["Emily"]) == [yq["Emily"]]
    assert module.predict_raw(texts["Frank"]) == [yq["Frank"]]
    if shutil.which("gcc"):
        exe = compile_driver(model, tmp_path, ["-O2"])
        xs = [[c_parse(exe, [(q.in_exp[j] + 1, q.in_offset[j], s)])[0] for j, s in enumerate(t)]
              for t in texts.values()]
        assert run_driver(exe, np.array(xs))[:, 0].tolist() == [yq["Emily"], yq["Frank"]]


# ---- accuracy report and CLI ------------------------------------------------------------------
def test_accuracy_report_agrees_on_a_trained_model(people):
    model = people
    report = Q.accuracy_report(model)
    assert report["max_error"] < 2e-3 and report["class_agreement"] > 0.99
    assert not report["warnings"]
    assert len(report["layers"]) == 2


def test_accuracy_report_names_the_layer_that_loses():
    """Layer 2 mixes one huge weight with many small ones: at the huge weight's int16 scale the
    small ones round to zero, and the report says so."""
    rng = np.random.default_rng(0)
    W2 = rng.normal(0, 0.4, (1, 16))
    W2[0, 0] = 3000.0
    W1 = rng.normal(0, 1, (16, 2))
    W1[0] = 0.0  # hidden unit 0 is constant (0.5), so the huge weight only shifts the bias
    model = Model.from_arrays([W1, W2], [np.r_[0.0, rng.normal(0, 1, 15)], np.array([-1500.0])],
                              name="lossy")
    report = Q.accuracy_report(model)
    assert report["max_error"] > Q.MARGIN
    assert report["warnings"] and "layer 2" in report["warnings"][0]


def test_cli_export_q15(tmp_path, people):
    path = people.save(tmp_path / "people.json")
    out = subprocess.run(
        [sys.executable, "-m", "boardnet.cli", "export", str(path), "--precision", "q15",
         "--c", str(tmp_path / "c"), "--micropython", str(tmp_path / "mp"), "--json"],
        capture_output=True, text=True,
    )
    if out.returncode != 0 and "No module named boardnet.cli" in out.stderr:
        pytest.skip("boardnet.cli is not runnable as a module")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["accuracy"]["class_agreement"] > 0.99
    assert (tmp_path / "c" / "people.h").read_text().count("_predict_q(") >= 1
    assert "PRECISION = \"q15\"" in (tmp_path / "mp" / "people.py").read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "boardnet.cli", "export", str(path), "--precision", "q8",
         "--c", str(tmp_path / "c")], capture_output=True, text=True)
    assert bad.returncode == 2 and "precision" in bad.stderr


def test_math_helpers():
    assert decimal_text(Fraction(-5, 4)) == "-1.25"
    assert Q.parse_decimal(decimal_text(Fraction(2 * 7 + 1, 2) / 2**3), 3, 0) == 8
    assert math.isclose(Q.SIGMOID_MAX_ERROR, 4.8e-4)


HEAP_SCRIPT = """
import gc, mod
x = mod.parse(0, "1.5"), -12345
x = tuple(x[k % 2] for k in range(mod.N_IN))
out = [0] * mod.N_OUT
mod.predict(x, out)
gc.collect()
gc.disable()
used = []
for n in (10, 100):
    before = gc.mem_alloc()
    for k in range(n):
        mod.predict(x, out)
    used.append(gc.mem_alloc() - before)
print(used[1] - used[0])  # 90 more calls; the harness's own blocks (range, list) cancel
"""


@pytest.mark.node
@pytest.mark.parametrize("shape", ["straight", "loop"])
def test_micropython_predict_allocates_nothing(shape):
    """With `out` given, predict allocates nothing: every value is a small int (< 2^30)."""
    ok, why = mpwasm.available()
    need(ok, why)
    model = MODELS["8-16-1"]
    files = {"mod.py": codegen.render_micropython(forms.make(model, "q15"), shape)}
    # any allocation per call would show 90 times over (>= 1,440 B); one 16 B block of noise
    assert abs(int(mpwasm.run(HEAP_SCRIPT, files, timeout=120))) <= 16


def test_mpy_cross_compiles_the_integer_module(tmp_path):
    try:
        mpy_cross_command()
    except MpyCrossMissing as e:
        need(False, str(e))
    for args in ((), ("-march=armv6m", "-X", "emit=native")):
        path = codegen.export_micropython(forms.make(MODELS["2-2-1"], "q15"), tmp_path, mpy=True, mpy_args=args)
        assert path.with_suffix(".mpy").stat().st_size > 0
