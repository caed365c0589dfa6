"""The helper C that every exported header copies in (host/boardnet/templates/boardnet_exp.h,
boardnet_sigmoid.h and boardnet_q15.h) as files of their own: their constants are the host reference's, they
compile warning-free alone on every compiler boardnet targets, and the q15 input parser
survives libFuzzer against an exact reference (firmware/fuzz/fuzz_parse_q15.c)."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from conftest import need, need_exe
from test_fuzz import fuzz_seconds

from boardnet import numerics, quantize
from boardnet.names import c_float
from boardnet.resources import firmware_dir, package_dir

TEMPLATES = package_dir() / "templates"
EXP = TEMPLATES / "boardnet_exp.h"
SIGMOID = TEMPLATES / "boardnet_sigmoid.h"
Q15 = TEMPLATES / "boardnet_q15.h"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wdouble-promotion", "-Wfloat-conversion",
          "-Wshadow", "-Wconversion", "-Werror"]
COMPILERS = {
    "gcc": ["gcc"],
    "cortex-m0plus": ["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb"],
    "rv32imc": ["riscv64-unknown-elf-gcc", "-march=rv32imc", "-mabi=ilp32", "--specs=picolibc.specs"],
    "clang": ["clang"],
}
USE = {
    EXP: "float use(float t) { return boardnet_exp_core_v1(t); }\n",
    SIGMOID: "float use(float x) { return boardnet_sigmoid_v1(x); }\n",
    Q15: ("#include <stddef.h>\n"
          "int32_t use(int32_t acc, const int16_t *w, const int16_t *x, int16_t *q)\n"
          "{ return boardnet_sigmoid_q15_v1(acc, 12u) + boardnet_dot_q15_v1(acc, w, x, 4)\n"
          "         + boardnet_parse_q15_v1(\"1.5\", 3, 4, 0, q); }\n"),
}


def test_the_exp_and_sigmoid_files_hold_the_numerics_constants():
    text = EXP.read_text()
    table = re.search(r"boardnet_exp2_16_v1\[16\] = \{[^\n]*\n(.*?)\};", text, re.S).group(1)
    got = np.array(re.findall(r"([0-9.]+e[+-][0-9]+)f", table), dtype=np.float64).astype(np.float32)
    assert np.array_equal(got.view(np.uint32), numerics.EXP2_TABLE.view(np.uint32))
    for value in (numerics.LOG2E_16, numerics.SHIFTER, numerics.C1, numerics.C2):
        assert c_float(value) in text
    assert f"0x{numerics.Q_BIAS:08x}u" in text
    sigmoid = SIGMOID.read_text()
    assert f"0x{numerics.LIMIT_BITS:08x}u" in sigmoid and f"{numerics.MAX_ABS_ERROR:.1e}" in sigmoid


def test_the_q15_file_holds_the_quantize_constants():
    text = Q15.read_text()
    table = re.search(r"boardnet_sigmoid_q15_v1_table\[33\] = \{(.*?)\};", text, re.S).group(1)
    assert [int(v) for v in re.findall(r"\d+", table)] == [v - quantize.ONE // 2 for v in quantize.SIGMOID_TABLE]
    assert quantize.Z_FRAC == 10 and quantize.TABLE_BITS == 8  # the shifts written in the file
    assert f"shift >> {quantize.TABLE_BITS + 5}" in text and f"shift >> {quantize.TABLE_BITS}" in text
    assert f"{quantize.SIGMOID_MAX_ERROR:.2e}" in text


@pytest.mark.cross
@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("helper", [EXP, SIGMOID, Q15], ids=["exp", "sigmoid", "q15"])
def test_each_helper_compiles_alone_warning_free(compiler, helper, tmp_path):
    argv = COMPILERS[compiler]
    need_exe(argv[0])
    src = tmp_path / "use.c"
    before = [EXP] if helper == SIGMOID else []  # what an exported header copies in ahead of it
    src.write_text("".join(f'#include "{h.name}"\n' for h in [*before, helper]) + USE[helper])
    run = subprocess.run([*argv, *STRICT, f"-I{TEMPLATES}", "-c", str(src), "-o", str(tmp_path / "use.o")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.clang
@pytest.mark.slow
def test_fuzzing_the_q15_parser_against_an_exact_reference(tmp_path):
    need_exe("clang")
    fuzz = firmware_dir() / "fuzz"
    exe = tmp_path / "fuzz_parse_q15"
    build = subprocess.run(
        ["clang", *STRICT, "-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
         f"-I{TEMPLATES}", str(fuzz / "fuzz_parse_q15.c"), "-o", str(exe)],
        capture_output=True, text=True)
    need(build.returncode == 0 or "libclang_rt" not in build.stderr,
         f"clang cannot link libFuzzer: {build.stderr.strip()[-200:]}")
    assert build.returncode == 0, build.stderr
    work = tmp_path / "corpus"
    work.mkdir()
    seconds = max(5, fuzz_seconds() // 4)
    run = subprocess.run([str(exe), f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=0",
                          "-malloc_limit_mb=1024", f"-artifact_prefix={tmp_path}/",
                          str(work), str(fuzz / "corpus_q15")],
                         capture_output=True, text=True, timeout=seconds + 120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"Done \d+ runs", run.stderr), run.stderr[-500:]
