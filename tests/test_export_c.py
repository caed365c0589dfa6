"""The generated C header against its oracle, numerics.forward32, bit for bit."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import need, need_exe

from boardnet import forms
from boardnet.codegen import export_c, fit_report, render_c
from boardnet.model import Model, Normalization
from boardnet.names import MAX_PREFIX, c_float, c_prefix, c_string, comment_text

GOLDEN = Path(__file__).parent / "golden"
STRICT = [
    "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wdouble-promotion", "-Wfloat-conversion",
    "-Wshadow", "-Werror",
]
TARGETS = {
    "host": ["gcc"],
    "cortex-m0plus": ["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb"],
    "cortex-m4f": [
        "arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
    ],
    # this toolchain ships picolibc, not newlib; the header only needs <stdint.h>
    "rv32imc": ["riscv64-unknown-elf-gcc", "-march=rv32imc", "-mabi=ilp32", "--specs=picolibc.specs"],
}

# Reads lines of 8-hex-digit float32 bits, one sample per line, writes the outputs the same way.
DRIVER = r"""
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include "{header}"
int main(void)
{{
    float x[{P}_N_IN], y[{P}_N_OUT];
    uint32_t u;
    int i;
    for (;;) {{
        for (i = 0; i < {P}_N_IN; ++i) {{
            if (scanf("%8x", (unsigned int *)&u) != 1) return 0;
            memcpy(&x[i], &u, 4);
        }}
        {p}_predict(x, y);
        for (i = 0; i < {P}_N_OUT; ++i) {{
            memcpy(&u, &y[i], 4);
            printf("%08x%c", (unsigned int)u, i + 1 < {P}_N_OUT ? ' ' : '\n');
        }}
    }}
}}
"""


def random_model(sizes: list[int], seed: int, name: str = "net", last: str = "sigmoid") -> Model:
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(scale=1.5, size=(o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(size=o) for o in sizes[1:]]
    acts = ["sigmoid"] * (len(Ws) - 1) + [last]
    return Model.from_arrays(Ws, bs, acts, name=name)


def seed_model() -> Model:
    """The tutorial's 2-2-1 network, hand-set (docs/seed-reference.md), with names and labels."""
    return Model.from_arrays(
        [np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[1.0, 1.0]])],
        [np.zeros(2), np.zeros(1)],
        name="seed 2-2-1",
        features=["weight_lb", "height_in"],
        labels=["M", "F"],
        target="gender",
        normalization=Normalization("center", np.array([135.0, 66.0]), np.ones(2)),
    )


def sample_inputs(n_in: int, n: int = 1200, seed: int = 0) -> np.ndarray:
    """Random inputs, including large, tiny, zero and signed-zero values."""
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=3.0, size=(n, n_in))
    X[:100] *= 1e4  # saturating
    X[100:200] *= 1e-30  # tiny
    X[200:220] = 0.0
    X[220:240] = -0.0
    X[240:300] = rng.uniform(-200, 200, size=(60, n_in))
    return X.astype(np.float32)


def compile_driver(model: Model, tmp: Path, flags: list[str]) -> Path:
    header = export_c(forms.make(model), tmp)
    p = c_prefix(model.name)
    src = tmp / f"driver_{p}.c"
    src.write_text(DRIVER.format(header=header.name, p=p, P=p.upper()))
    exe = tmp / f"driver_{p}_{abs(hash(tuple(flags)))}"
    subprocess.run(["gcc", *STRICT, *flags, "-I", str(tmp), str(src), "-o", str(exe)], check=True)
    return exe


def run_driver(exe: Path, X: np.ndarray) -> np.ndarray:
    text = "\n".join(" ".join(f"{v:08x}" for v in row) for row in X.view(np.uint32)) + "\n"
    out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True).stdout
    rows = [[int(v, 16) for v in line.split()] for line in out.splitlines()]
    return np.array(rows, dtype=np.uint32)


# ---- golden snapshot -------------------------------------------------------------------------
def test_golden_header_for_the_seed_network():
    got = render_c(forms.make(seed_model()))
    path = GOLDEN / "seed_2_2_1.h"
    if os.environ.get("BOARDNET_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8", newline="\n")
    want = path.read_text(encoding="utf-8")
    assert got == want, "generated C changed; check it and rerun with BOARDNET_UPDATE_GOLDEN=1"


def test_export_is_deterministic_and_named_by_prefix(tmp_path):
    m = seed_model()
    a = export_c(forms.make(m), tmp_path / "a")
    b = export_c(forms.make(m), tmp_path / "b")
    assert a.name == "seed_2_2_1.h"
    assert a.read_bytes() == b.read_bytes()
    export_c(forms.make(m), tmp_path / "a")
    assert a.read_bytes() == b.read_bytes()
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["seed_2_2_1.h"]  # no temp file left


def test_header_has_the_contract_and_no_forbidden_things():
    text = render_c(forms.make(random_model([8, 16, 1], 3, name="Sensor Net")))
    for want in (
        "static inline void sensor_net_predict(const float *x, float *y)",
        "#define SENSOR_NET_N_IN 8",
        "#define SENSOR_NET_N_OUT 1",
        f'#define SENSOR_NET_FINGERPRINT "{random_model([8, 16, 1], 3).fingerprint()}"',
        "generated by boardnet",
        "do not edit",
    ):
        assert want in text
    code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    for bad in ("double", "malloc", "printf", "math.h", "expf", "exp("):
        assert bad not in code
    for line in code.splitlines():  # every definition is static
        if re.match(r"^(const |float |void |int |typedef )", line):
            assert line.startswith("typedef union"), line


# ---- literals --------------------------------------------------------------------------------
SPECIAL = np.array(
    [0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 3.4028235e38, -3.4028235e38, 1.17549435e-38, 1e-45,
     -1e-45, 2.5e-42, 16777217.0, 123456789.0, 7.006492e-46 * 3, 0.30000001],
    dtype=np.float32,
)


def test_c_float_round_trips_in_python():
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2**32, size=20000, dtype=np.uint64).astype(np.uint32)
    vals = bits.view(np.float32)
    vals = np.concatenate([vals[np.isfinite(vals)], SPECIAL])
    for v in vals:
        text = c_float(v)
        assert re.fullmatch(r"-?\d\.\d{8}e[+-]\d\d+f", text), text
        assert np.float32(float(text[:-1])).view(np.uint32) == v.view(np.uint32), text
    with pytest.raises(ValueError):
        c_float(np.inf)


def test_c_float_literals_are_exact_in_c(tmp_path):
    need_exe("gcc")
    rng = np.random.default_rng(6)
    bits = rng.integers(0, 2**32, size=3000, dtype=np.uint64).astype(np.uint32)
    vals = np.concatenate([bits.view(np.float32), SPECIAL])
    vals = vals[np.isfinite(vals)]
    src = tmp_path / "lit.c"
    src.write_text(
        "#include <stdio.h>\n#include <string.h>\n#include <stdint.h>\n"
        "static const float v[] = {" + ", ".join(c_float(v) for v in vals) + "};\n"
        "int main(void) { unsigned i; uint32_t u;\n"
        "  for (i = 0; i < sizeof v / sizeof v[0]; ++i) { memcpy(&u, &v[i], 4);"
        ' printf("%08x\\n", (unsigned)u); } return 0; }\n'
    )
    subprocess.run(["gcc", *STRICT, str(src), "-o", str(tmp_path / "lit")], check=True)
    out = subprocess.run([str(tmp_path / "lit")], capture_output=True, text=True, check=True)
    got = [int(line, 16) for line in out.stdout.split()]
    assert got == vals.view(np.uint32).tolist()


# ---- bit for bit against forward32 -----------------------------------------------------------
NETWORKS = {
    "2-2-1": ([2, 2, 1], "sigmoid"),
    "8-16-1": ([8, 16, 1], "sigmoid"),
    "30-16-8-3": ([30, 16, 8, 3], "sigmoid"),
    "4-8-2-linear": ([4, 8, 2], "linear"),
    "3-1-linear": ([3, 1], "linear"),
}
OPT_LEVELS = {
    "O2-nocontract": ["-O2", "-ffp-contract=off"],
    "O0": ["-O0"],
    "Os": ["-Os"],
}
if platform.machine() in ("x86_64", "AMD64"):
    # the header switches contraction off itself: even with FMA allowed, no fused ops
    OPT_LEVELS["O3-fma-contract-fast"] = ["-O3", "-mfma", "-ffp-contract=fast", "-std=gnu99"]


@pytest.mark.parametrize("net", NETWORKS)
@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_c_is_bit_identical_to_forward32(tmp_path, net, opt):
    need_exe("gcc")
    sizes, last = NETWORKS[net]
    model = random_model(sizes, seed=len(net) + sum(sizes), name=f"net {net}", last=last)
    X = sample_inputs(model.n_in)
    want = model.predict32(X).view(np.uint32)  # (n, n_out)
    got = run_driver(compile_driver(model, tmp_path, OPT_LEVELS[opt]), X)
    assert got.shape == want.shape
    bad = np.flatnonzero(np.any(got != want, axis=1))
    assert bad.size == 0, f"{bad.size} samples differ, first x={X[bad[0]]}"


def test_c_sigmoid_is_bit_identical_on_special_and_dense_inputs(tmp_path):
    """The sigmoid alone, through a 1-1 linear-free network: y = sigmoid(x)."""
    need_exe("gcc")
    model = Model.from_arrays([np.ones((1, 1))], [np.zeros(1)], name="ident")
    rng = np.random.default_rng(9)
    x = np.concatenate(
        [
            np.linspace(-100, 100, 40001, dtype=np.float32),
            rng.integers(0, 2**32, size=40000, dtype=np.uint64).astype(np.uint32).view(np.float32),
            np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 86.0, -86.0, 85.99999, -85.99999],
                     dtype=np.float32),
        ]
    )[:, None]
    want = model.predict32(x).view(np.uint32)
    got = run_driver(compile_driver(model, tmp_path, ["-O2"]), x)
    nan = np.isnan(want.view(np.float32))
    assert np.array_equal(np.isnan(got.view(np.float32)), nan)
    assert np.array_equal(got[~nan], want[~nan])


def test_seed_example_in_c(tmp_path):
    need_exe("gcc")
    m = seed_model()  # inputs are raw: Alice weighs 133 lb, 65 in -> (-2, -1) after centring
    got = run_driver(compile_driver(m, tmp_path, ["-O2"]), np.array([[133.0, 65.0]], np.float32))
    y = got.view(np.float32)[0, 0]
    assert abs(float(y) - 0.524) < 5e-4
    assert got[0, 0] == m.predict32(np.array([133.0, 65.0])).view(np.uint32)[0]


# ---- targets, linking, libm -------------------------------------------------------------------
@pytest.mark.cross
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("net", ["2-2-1", "30-16-8-3"])
def test_compiles_warning_free_on_every_target(tmp_path, target, net):
    cc = TARGETS[target]
    need_exe(cc[0])
    sizes, last = NETWORKS[net]
    header = export_c(forms.make(random_model(sizes, 1, name="m")), tmp_path)
    src = tmp_path / "use.c"
    src.write_text(f'#include "{header.name}"\nvoid run(const float *x, float *y) {{ m_predict(x, y); }}\n')
    for opt in ("-O0", "-Os", "-O2"):
        r = subprocess.run(
            [*cc, *STRICT, opt, "-c", str(src), "-o", str(tmp_path / "use.o")],
            capture_output=True, text=True,
        )
        assert r.returncode == 0 and not r.stderr, r.stderr


def test_two_models_in_one_program_from_two_files(tmp_path):
    need_exe("gcc")
    a = random_model([3, 4, 1], 11, name="alpha")
    b = random_model([2, 5, 2], 12, name="beta")
    export_c(forms.make(a), tmp_path)
    export_c(forms.make(b), tmp_path)
    (tmp_path / "a.c").write_text(
        '#include "alpha.h"\n#include "beta.h"\n'  # both headers in one file, too
        "void run_alpha(const float *x, float *y) { alpha_predict(x, y); }\n"
    )
    (tmp_path / "b.c").write_text(
        '#include "beta.h"\n#include "alpha.h"\n'
        "void run_beta(const float *x, float *y) { beta_predict(x, y); }\n"
    )
    (tmp_path / "main.c").write_text(
        "#include <stdio.h>\n#include <string.h>\n#include <stdint.h>\n"
        "void run_alpha(const float *x, float *y);\nvoid run_beta(const float *x, float *y);\n"
        "static void show(float v) { uint32_t u; memcpy(&u, &v, 4); printf(\"%08x\\n\", (unsigned)u); }\n"
        "int main(void) {\n"
        "  float xa[3] = {0.5f, -1.0f, 2.0f}, ya[1], xb[2] = {1.5f, -0.25f}, yb[2];\n"
        "  run_alpha(xa, ya); run_beta(xb, yb); show(ya[0]); show(yb[0]); show(yb[1]);\n"
        "  return 0; }\n"
    )
    exe = tmp_path / "two"
    subprocess.run(
        ["gcc", *STRICT, "-O2", "-I", str(tmp_path),
         *(str(tmp_path / f) for f in ("a.c", "b.c", "main.c")), "-o", str(exe)],
        check=True,
    )
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    want = [
        *a.predict32(np.array([0.5, -1.0, 2.0])).view(np.uint32),
        *b.predict32(np.array([1.5, -0.25])).view(np.uint32),
    ]
    assert [int(v, 16) for v in out] == [int(v) for v in want]


LIBM = re.compile(r"\b(expf?|exp2f?|expm1f?|logf?|powf?|tanhf?|__ieee754_\w+|__kernel_\w+)\b")


@pytest.mark.cross
def test_cortex_m0plus_link_has_no_libm(tmp_path):
    need_exe("arm-none-eabi-gcc", "arm-none-eabi-nm")
    export_c(forms.make(random_model([8, 16, 1], 2, name="m0")), tmp_path)
    src = tmp_path / "main.c"
    src.write_text(
        '#include "m0.h"\n'
        "volatile float in[M0_N_IN], out[M0_N_OUT];\n"
        "int main(void) { float x[M0_N_IN], y[M0_N_OUT]; int i;\n"
        "  for (i = 0; i < M0_N_IN; ++i) x[i] = in[i];\n"
        "  m0_predict(x, y); out[0] = y[0]; return 0; }\n"
    )
    elf = tmp_path / "m0.elf"
    subprocess.run(
        ["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", *STRICT, "-Os",
         "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "--specs=nano.specs",
         "--specs=nosys.specs", f"-Wl,-Map={tmp_path / 'm0.map'}", str(src), "-o", str(elf)],
        check=True,
    )
    syms = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True,
                          check=True).stdout
    names = {line.split()[-1] for line in syms.splitlines() if line.strip()}
    assert "m0_predict" in names or "main" in names
    assert any(n.startswith("__aeabi_f") or n in ("__addsf3", "__mulsf3") for n in names)
    assert not [n for n in names if LIBM.fullmatch(n)]
    map_text = (tmp_path / "m0.map").read_text()
    assert "libm.a" not in map_text.split("Discarded input sections")[0]
    assert not re.search(r"\b(__aeabi_d\w+|__adddf3|__muldf3)\b", syms)  # no double anywhere


# ---- hostile names ---------------------------------------------------------------------------
HOSTILE = [
    "*/ int evil; /*",
    'quote " and \\ backslash \\',
    "new\nline\r\n#include <stdlib.h>\n",
    "__import__('os').system('rm -rf /')",
    "int",
    "42 is a number",
    "caf\u00e9 \u6a21\u578b \U0001f600",
    "??/ trigraph ??= ??'",
    "x" * 10_000,
    "",
    "_",
    "\\",
    "\x00\x01\x7f",
]


@pytest.mark.parametrize("k", range(len(HOSTILE)))
def test_hostile_names_compile_and_behave(tmp_path, k):
    need_exe("gcc")
    name = HOSTILE[k]
    rng = np.random.default_rng(k)
    features = [HOSTILE[(k + i) % len(HOSTILE)] + f"{i}" for i in range(3)]
    labels = [HOSTILE[(k + 3) % len(HOSTILE)] + "a", HOSTILE[(k + 4) % len(HOSTILE)] + "b"]
    model = Model.from_arrays(
        [rng.normal(size=(4, 3)), rng.normal(size=(1, 4))], [np.zeros(4), np.zeros(1)],
        name=name, features=features, labels=labels, target=HOSTILE[(k + 5) % len(HOSTILE)],
    )
    p = c_prefix(name)
    assert re.fullmatch(r"[a-z][a-z0-9_]*", p) and len(p) <= MAX_PREFIX
    text = render_c(forms.make(model))
    # comments hold no comment terminator, and the only lines outside the banner are code
    code = re.sub(r'"(\\[0-7]{3}|[^"\\\n])*"', '""', text)  # string literals emptied
    comments = re.findall(r"/\*.*?\*/", code, flags=re.S)
    assert all("*/" not in c[2:-2] and "/*" not in c[2:-2] for c in comments)
    assert "int evil" not in re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    assert not re.search(r"^\s*#\s*include <stdlib", text, flags=re.M) and "??" not in text
    assert len(text) < 20_000
    # the names come back out of the C string literals byte for byte (or cut at 255 bytes)
    X = sample_inputs(3, n=400)
    want = model.predict32(X).view(np.uint32)
    assert np.array_equal(run_driver(compile_driver(model, tmp_path, ["-O1"]), X), want)
    src = tmp_path / "names.c"
    src.write_text(
        f'#include <stdio.h>\n#include "{p}.h"\n'
        f"int main(void) {{ int i; for (i = 0; i < {p.upper()}_N_IN; ++i) "
        f'printf("%s%c", {p}_features[i], 0); for (i = 0; i < {p.upper()}_N_LABELS; ++i) '
        f'printf("%s%c", {p}_labels[i], 0); return 0; }}\n'
    )
    subprocess.run(["gcc", *STRICT, "-I", str(tmp_path), str(src), "-o", str(tmp_path / "n")],
                   check=True)
    out = subprocess.run([str(tmp_path / "n")], capture_output=True, check=True).stdout
    got = out.split(b"\0")[:-1]
    for g, w in zip(got, features + labels):
        wb = w.encode("utf-8").split(b"\0")[0]  # C strings end at the first NUL
        assert g == wb or (len(wb) > 255 and wb.startswith(g[:-3]) and g.endswith(b"..."))


def test_prefixes_of_hostile_names():
    assert c_prefix("int") == "int_model"
    assert c_prefix("42 is a number") == "model_42_is_a_number"
    assert c_prefix("") == "model"
    assert c_prefix("caf\u00e9") == "cafe"
    assert c_prefix("My Model-v2") == "my_model_v2"
    assert len(c_prefix("x" * 10_000)) == MAX_PREFIX


def test_c_string_and_comment_escaping():
    assert c_string('a"b\\c?d') == r'"a\042b\134c\077d"'
    assert c_string("\u00e9") == r'"\303\251"'
    assert c_string("1\n2") == r'"1\0122"'  # octal escapes stop after 3 digits
    assert "*/" not in comment_text("a */ b /* c") and "\\" not in comment_text("a\\")
    assert "\n" not in comment_text("a\nb")


# ---- fit report ------------------------------------------------------------------------------
def test_fit_report_sizes():
    m = random_model([8, 16, 1], 4)
    r = fit_report(forms.make(m))
    assert r["parameters"] == 8 * 16 + 16 + 16 + 1
    assert r["weight_bytes"] == 4 * r["parameters"]
    assert r["ram_bytes"] == 4 * 16
    assert r["code_bytes_estimate"] > 0 and r["micropython_heap_estimate"] > r["weight_bytes"]
    assert r["warnings"] == []
    assert fit_report(forms.make(random_model([30, 16, 8, 3], 4)))["ram_bytes"] == 4 * (16 + 8)


def test_fit_report_warns_about_timestamps():
    rng = np.random.default_rng(0)
    m = Model.from_arrays(
        [rng.normal(size=(4, 2)), rng.normal(size=(1, 4))], [np.zeros(4), np.zeros(1)],
        features=["unix_time", "temp"],
        normalization=Normalization("standard", np.array([1.7e9, 20.0]), np.array([60.0, 5.0])),
    )
    warnings = fit_report(forms.make(m))["warnings"]
    assert any("unix_time" in w and "offset" in w for w in warnings)
    assert any("float64" in w for w in warnings)


def test_tools_present_when_required():
    # documents which tools the C tests use; skips (or fails under BOARDNET_REQUIRE_TOOLS=1)
    for exe in ("gcc", "arm-none-eabi-gcc", "riscv64-unknown-elf-gcc"):
        need(shutil.which(exe) is not None, f"not on PATH: {exe}")


def test_unrolled_code_is_bit_identical_too(tmp_path):
    need_exe("gcc")
    model = random_model([8, 16, 1], 21, name="unrolled")
    X = sample_inputs(model.n_in, n=400)
    (tmp_path / "unrolled.h").write_text(render_c(forms.make(model), unroll_max_weights=10_000))
    src = tmp_path / "driver.c"
    src.write_text(DRIVER.format(header="unrolled.h", p="unrolled", P="UNROLLED"))
    exe = tmp_path / "driver"
    subprocess.run(["gcc", *STRICT, "-O2", "-I", str(tmp_path), str(src), "-o", str(exe)], check=True)
    assert "for (i" not in (tmp_path / "unrolled.h").read_text()
    assert np.array_equal(run_driver(exe, X), model.predict32(X).view(np.uint32))


@pytest.mark.cross
def test_cortex_m0plus_soft_float_build_is_bit_identical(tmp_path):
    """The header built for ARMv6-M (libgcc soft float), run in the unicorn emulator."""
    need_exe("arm-none-eabi-gcc")
    try:
        import sys

        sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
        from m0count import count_instructions
    except ImportError as e:
        need(False, f"unicorn not installed ({e})")
    model = random_model([3, 5, 2], 31, name="m0")
    export_c(forms.make(model), tmp_path)
    src = tmp_path / "main.c"
    src.write_text(
        '#include "m0.h"\n'
        "__attribute__((noinline)) void run(const float *x, float *y) { m0_predict(x, y); }\n"
        "volatile float g[M0_N_IN + M0_N_OUT];\n"
        "int main(void) { float x[M0_N_IN], y[M0_N_OUT]; int i;\n"
        "  for (i = 0; i < M0_N_IN; ++i) x[i] = g[i];\n"
        "  run(x, y); g[0] = y[0]; return 0; }\n"
    )
    elf = tmp_path / "m0.elf"
    subprocess.run(
        ["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "-Os", *STRICT,
         "--specs=nano.specs", "--specs=nosys.specs", str(src), "-o", str(elf)],
        check=True,
    )
    X = sample_inputs(3, n=300)[::5]
    for x in X:
        c = count_instructions(elf, "run", [x.tobytes(), bytes(8)])
        got = np.frombuffer(c.memory[16:24], np.uint32)
        assert np.array_equal(got, model.predict32(x).view(np.uint32)), x
        assert c.soft_float_share > 0.5
