"""The native module (docs/export-micropython.md) without a board: its C wraps the exported header and
offers the generated module's API; it builds with MicroPython's dynruntime.mk for armv6m,
armv7emsp and rv32imc into .mpy files of the tree's version and that architecture,
reproducibly; a missing tool is named with what to install; export writes it; deploy refuses
a mismatched architecture or .mpy version before copying anything, and `--native auto` falls
back to the generated module. On the emulated Pico: tests/test_pico_native.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import types
from pathlib import Path

import pytest
from conftest import BOARDNET, need, need_native, run_json, seed_model

from boardnet import codegen, forms
from boardnet.codegen.mpy import MPY_ARCHES, mpy_header
from boardnet.commands import deploy as D
from boardnet.errors import UsageError
from boardnet.firmware import natmod
from boardnet.firmware.common import WARNINGS
from boardnet.link import micropython as mp
from boardnet.names import c_prefix
from boardnet.templating import helper

PICO_MPY = 6 | 3 << 8 | 4 << 10  # sys.implementation._mpy of MicroPython 1.28 on a Pico: v6.3, armv6m


def public_names(form: forms.Form) -> set[str]:
    """What the generated Python module offers, run under CPython."""
    scope: dict = {}
    exec(compile(codegen.render_micropython(form), "generated", "exec"), scope)
    return {n for n in scope if not n.startswith("_")} - {"ldexp", "unpack"}


@pytest.mark.parametrize("precision", ["f32", "q15"])
def test_the_native_source_wraps_the_header_and_offers_the_generated_modules_api(precision):
    form = forms.make(seed_model(), precision)
    source = codegen.render_native(form)
    prefix = c_prefix(form.model.name)
    assert f'#include "{prefix}.h"' in source  # the header itself, not a copy of its arithmetic
    entry = f"{prefix}_predict(x, y)" if precision == "f32" else f"{prefix}_predict_q(xq, yq)"
    assert entry in source
    stored = set(re.findall(r"mp_store_global\(MP_QSTR_(\w+)", source))
    assert public_names(form) <= stored, public_names(form) - stored
    assert ("FLOAT" in stored) == (precision == "f32")
    assert "static float" not in source and "double" not in source  # no weights of its own


def test_the_float_helper_compiles_alone_for_a_cortex_m0():
    need(shutil.which("arm-none-eabi-gcc") is not None, "arm-none-eabi-gcc not on PATH")
    r = subprocess.run(["arm-none-eabi-gcc", "-mthumb", "-mcpu=cortex-m0", *WARNINGS, "-Os", "-x", "c", "-c",
                        "-o", "/dev/null", "-"], input=helper("boardnet_native_float.h") + "\nint f(void);\n"
                       "int f(void) { return boardnet_float_init(); }\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ---- building -----------------------------------------------------------------------------------
@pytest.mark.cross
@pytest.mark.slow
@pytest.mark.parametrize("arch,precision", [("armv6m", "f32"), ("armv6m", "q15"), ("armv7emsp", "f32"),
                                            ("rv32imc", "f32")])
def test_builds_an_mpy_of_the_trees_version_for_the_architecture(arch, precision, tmp_path):
    need_native(arch)
    form = forms.make(seed_model(), precision)
    path = natmod.build_native(form, arch, tmp_path)
    assert path == tmp_path / "seed.mpy"
    assert mpy_header(path) == (6, 3, arch)  # the kit's MicroPython 1.28: .mpy v6.3
    assert 500 < path.stat().st_size < 8000
    t = time.monotonic()
    again = natmod.build_native(form, arch)  # the cache: a lookup
    assert time.monotonic() - t < 2 and again.read_bytes() == path.read_bytes()


@pytest.mark.cross
@pytest.mark.slow
def test_the_build_is_reproducible(tmp_path, monkeypatch):
    """PYTHONHASHSEED=0 fixes mpy_ld's layout of the libgcc helpers: a build into an empty
    cache gives the bytes of the cached one (deploy's copy-only-what-changed relies on it)."""
    need_native("armv6m")
    form = forms.make(seed_model())
    cached = natmod.build_native(form, "armv6m").read_bytes()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh = natmod.build_native(form, "armv6m")
    assert fresh.is_relative_to(tmp_path) and fresh.read_bytes() == cached


# ---- what is missing -------------------------------------------------------------------------------
def test_missing_tools_are_named_with_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("MPY_DIR", raising=False)
    why = natmod.native_missing("armv6m", micropython="1.28.0")
    assert "MPY_DIR is not set" in why and "--branch v1.28.0" in why
    monkeypatch.setenv("MPY_DIR", str(tmp_path))
    assert "has no py/dynruntime.mk" in natmod.native_missing("armv6m")
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler, no make
    why = natmod.native_missing("rv32imc")
    assert "riscv64-unknown-elf-gcc not found" in why and "gcc-riscv64-unknown-elf" in why
    assert "make not found" in why
    why = natmod.native_missing("xtensawin")
    assert "xtensa-esp32-elf-gcc not found" in why and "ESP-IDF" in why and "export.sh" in why
    with pytest.raises(natmod.NativeToolchainMissing) as e:
        natmod.build_native(forms.make(seed_model()), "armv6m")
    assert isinstance(e.value, UsageError)  # exit 2
    with pytest.raises(UsageError, match="armv6m, armv7emsp, rv32imc, xtensawin"):
        natmod.build_native(forms.make(seed_model()), "x86")


# ---- export -----------------------------------------------------------------------------------------
@pytest.mark.cross
def test_export_native_writes_the_module_beside_the_python_one(tmp_path):
    need_native("armv6m")
    model = str(seed_model().save(tmp_path / "seed.json"))
    status, out = run_json("export", model, "--micropython", str(tmp_path / "mp"), "--native", "armv6m")
    assert status == 0, out
    assert sorted(Path(p).name for p in out["written"]) == ["seed.mpy", "seed.py"]
    assert mpy_header(tmp_path / "mp" / "seed.mpy") == (6, 3, "armv6m")


@pytest.mark.parametrize("args,says", [
    (["--c", "OUT", "--native", "armv6m"], "--micropython DIR"),
    (["--micropython", "OUT", "--mpy", "--native", "armv6m"], "choose one"),
    (["--micropython", "OUT", "--native", "x86"], "armv6m, armv7emsp, rv32imc, xtensawin"),
])
def test_export_native_usage_errors_write_nothing(tmp_path, args, says):
    model = str(seed_model().save(tmp_path / "seed.json"))
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    r = subprocess.run([*BOARDNET, "export", model, *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_export_native_for_an_architecture_without_its_compiler_says_what_to_install(tmp_path):
    if shutil.which("xtensa-esp32-elf-gcc"):
        pytest.skip("an Xtensa compiler is installed here: nothing missing to name")
    model = str(seed_model().save(tmp_path / "seed.json"))
    r = subprocess.run([*BOARDNET, "export", model, "--micropython", str(tmp_path), "--native", "xtensawin"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "xtensa-esp32-elf-gcc not found" in r.stderr and "ESP-IDF" in r.stderr


# ---- deploy's refusals, before anything is copied ------------------------------------------------
@pytest.fixture
def fake_board(monkeypatch):
    """A MicroPython board that exists only in its probe: `board.mpy` sets what it reports;
    `board.copied` records the files mpremote would have copied."""
    board = types.SimpleNamespace(mpy=PICO_MPY, copied=[], removed=[])

    def probe(port, timeout=15.0):
        return mp.MicroPythonFacts(version="1.28.0", platform="rp2", machine="Raspberry Pi Pico with RP2040",
                                   mpy=board.mpy, double=False, mem_free=200_000, fs_free=1_000_000,
                                   fs_total=1_400_000, fs_block=4096,
                                   files={"boardnet_model.py": {"size": 10, "sha256": "x"}})

    monkeypatch.setattr(D, "require_micropython", lambda port, baud=115200, timeout=1.0: None)
    monkeypatch.setattr(mp, "probe", probe)
    monkeypatch.setattr(mp, "copy_files", lambda port, files, timeout=0: board.copied.extend(files))
    monkeypatch.setattr(mp, "rename", lambda port, renames, remove, timeout: board.removed.extend(remove))
    return board


def fake_mpy(path: Path, version: int, sub: int, arch: str) -> Path:
    """An .mpy header (and nothing a board could run)."""
    path.write_bytes(b"M" + bytes([version, sub | MPY_ARCHES.index(arch) << 2, 31]) + bytes(64))
    return path


def test_deploy_refuses_another_architecture_before_building_or_copying(fake_board, monkeypatch):
    monkeypatch.setattr(natmod, "build_native", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(UsageError) as e:
        D.deploy_micropython(forms.make(seed_model()), "port", native="armv7emsp", start=False)
    assert "armv6m" in str(e.value) and "armv7emsp" in str(e.value) and "before copying" in str(e.value)
    assert fake_board.copied == []


def test_deploy_refuses_a_native_module_of_another_mpy_version_before_copying(fake_board, monkeypatch, tmp_path):
    """MPY_DIR from another MicroPython: its .mpy v6.2 on a board that imports v6.3."""
    monkeypatch.setattr(natmod, "build_native", lambda *a, **k: fake_mpy(tmp_path / "m.mpy", 6, 2, "armv6m"))
    with pytest.raises(UsageError) as e:
        D.deploy_micropython(forms.make(seed_model()), "port", native=D.NATIVE_BOARD, start=False)
    assert "v6.3" in str(e.value) and "v6.2" in str(e.value) and "1.28.0" in str(e.value)
    assert fake_board.copied == []
    report = D.DeployReport("port")  # auto: the generated module instead, with a note
    D.deploy_micropython(forms.make(seed_model()), "port", native=D.NATIVE_AUTO, start=False, report=report)
    assert "boardnet_model.py.part" in fake_board.copied and report.native is None
    assert len(report.notes) == 1 and "v6.2" in report.notes[0]


def test_deploy_native_without_the_toolchain_names_it_and_auto_falls_back(fake_board, monkeypatch):
    monkeypatch.delenv("MPY_DIR", raising=False)
    with pytest.raises(natmod.NativeToolchainMissing) as e:
        D.deploy_micropython(forms.make(seed_model()), "port", native=D.NATIVE_BOARD, start=False)
    assert "MPY_DIR is not set" in str(e.value) and "v1.28.0" in str(e.value) and "--native auto" in str(e.value)
    assert fake_board.copied == []
    report = D.DeployReport("port")
    D.deploy_micropython(forms.make(seed_model()), "port", native=D.NATIVE_AUTO, start=False, report=report)
    assert fake_board.copied == ["boardnet_model.py.part", "boardnet_serve.py.part"]
    assert report.native is None and "MPY_DIR" in report.notes[0]


@pytest.mark.parametrize("mpy,says", [(6 | 3 << 8, "runs no native code"), (None, "no .mpy support"),
                                      (6 | 3 << 8 | 2 << 10, "runs x64 code")])
def test_deploy_native_on_a_board_without_a_known_architecture(fake_board, monkeypatch, mpy, says):
    fake_board.mpy = mpy
    monkeypatch.setattr(natmod, "build_native", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(UsageError, match=says):
        D.deploy_micropython(forms.make(seed_model()), "port", native=D.NATIVE_BOARD, start=False)
    report = D.DeployReport("port")
    D.deploy_micropython(forms.make(seed_model()), "port", native=D.NATIVE_AUTO, start=False, report=report)
    assert says in report.notes[0] and "boardnet_model.py.part" in fake_board.copied


@pytest.mark.cross
def test_deploy_native_copies_the_module_and_removes_a_stale_py(fake_board):
    need_native("armv6m")
    report = D.DeployReport("port")
    D.deploy_micropython(forms.make(seed_model()), "port", native=D.NATIVE_BOARD, start=False, report=report)
    assert report.native == "armv6m" and report.notes == []
    assert fake_board.copied == ["boardnet_model.mpy.part", "boardnet_serve.py.part"]
    assert "boardnet_model.py" in fake_board.removed  # a .py beside it would win the import
    assert report.heap_needed < 60_000
