"""MicroPython native modules: the model as machine code in a .mpy file (docs/export-micropython.md).

    build_native(form, "armv6m")        # -> <module>.mpy, cached by everything that goes in
    native_missing("armv6m")            # None, or what to install first

The module's C (codegen.render_native) includes the exported C header unchanged, so the
board runs the header's own arithmetic. It is built with MicroPython's machinery for dynamic
native modules, from a MicroPython source tree named by `MPY_DIR`: `py/dynruntime.mk`
compiles it with the cross compiler for the architecture and `tools/mpy_ld.py` (which
needs pyelftools, and the `ar` package to pull soft-float helpers out of libgcc) links it
into an .mpy of that tree's version. The module has no Python part, so mpy-cross is not
needed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..codegen import render_c, render_native
from ..codegen.mpy import mpy_header
from ..errors import UsageError
from ..forms import Form
from ..names import c_prefix, micropython_module
from ..templating import helper
from ..tools import run
from .common import cache_root
from .emulated import BuildError

MPY_DIR_ENV = "MPY_DIR"
MAKEFILE = "natmod.mk"  # templates/: the module's Makefile, around py/dynruntime.mk
FLOAT_HELPER = "boardnet_native_float.h"  # its float routines on armv6m need libgcc's, renamed
ARM_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi (Debian/Ubuntu; or Arm's GNU toolchain)"


def _mpy_dir_steps(micropython: str | None) -> str:
    """How to get a MicroPython source tree (of the board's version, when known)."""
    branch = f"v{micropython}" if micropython else "<the board's MicroPython version>"
    return (f"git clone --depth 1 --branch {branch} "
            "https://github.com/micropython/micropython && export MPY_DIR=$PWD/micropython "
            "(only py/ and tools/ are read)")


@dataclass(frozen=True)
class NativeArch:
    """One architecture a native module can be built for (MicroPython's names)."""

    name: str
    cross: str  # the compiler prefix py/dynruntime.mk uses
    boards: str
    install: str  # how to get the compiler
    make_args: tuple[str, ...] = ()


ARCHES: dict[str, NativeArch] = {
    a.name: a
    for a in (
        NativeArch("armv6m", "arm-none-eabi-", "Raspberry Pi Pico (RP2040) and other Cortex-M0+ boards",
                   f"install {ARM_PACKAGES}"),
        NativeArch("armv7emsp", "arm-none-eabi-",
                   "Cortex-M4F / M7 boards with single-precision MicroPython (STM32F4 pyboards ...)",
                   f"install {ARM_PACKAGES}"),
        # dynruntime.mk's default for rv32imc is no floats; the ESP32-C3 firmware has
        # single-precision ones (soft float, libgcc)
        NativeArch("rv32imc", "riscv64-unknown-elf-", "ESP32-C3 / ESP32-C6 (RISC-V)",
                   "install gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf (Debian/Ubuntu)",
                   ("MICROPY_FLOAT_IMPL=float",)),
        NativeArch("xtensawin", "xtensa-esp32-elf-", "ESP32 and ESP32-S3",
                   "install ESP-IDF's toolchain: git clone --recursive https://github.com/espressif/esp-idf "
                   "&& ./esp-idf/install.sh esp32 && . ./esp-idf/export.sh (puts xtensa-esp32-elf-gcc "
                   "on PATH)"),
    )
}


class NativeToolchainMissing(UsageError):
    """A tool the native build needs is missing; the message says what to install."""


def native_arch(name: str) -> NativeArch:
    try:
        return ARCHES[name]
    except KeyError:
        raise UsageError(
            f"no native modules for architecture {name!r}: boardnet builds them for "
            f"{', '.join(ARCHES)}") from None


def mpy_dir(given: str | Path | None = None) -> Path | None:
    """The MicroPython source tree: `given`, else $MPY_DIR (None when neither is set)."""
    chosen = given or os.environ.get(MPY_DIR_ENV)
    return Path(chosen).resolve() if chosen else None


def native_missing(arch: str, tree: str | Path | None = None, micropython: str | None = None) -> str | None:
    """What the build for `arch` lacks, as a sentence that says what to install (a source tree
    of MicroPython `micropython`, the board's version, when given); None when everything is
    there."""
    a = native_arch(arch)
    root = mpy_dir(tree)
    missing = []
    if root is None:
        missing.append(f"MPY_DIR is not set (a MicroPython source tree: {_mpy_dir_steps(micropython)})")
    elif not (root / "py" / "dynruntime.mk").is_file() or not (root / "tools" / "mpy_ld.py").is_file():
        missing.append(f"MPY_DIR={root} has no py/dynruntime.mk and tools/mpy_ld.py "
                       f"({_mpy_dir_steps(micropython)})")
    tools = [f"{a.cross}gcc"] + ([f"{a.cross}ar", f"{a.cross}objcopy"] if arch == "armv6m" else [])
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        missing.append(f"{', '.join(absent)} not found ({a.install})")
    if shutil.which("make") is None:
        missing.append("make not found (install make)")
    modules = [m for m, package in (("elftools", "pyelftools"), ("ar", "ar"))
               if importlib.util.find_spec(m) is None]
    if modules:
        packages = " ".join({"elftools": "pyelftools", "ar": "ar"}[m] for m in modules)
        missing.append(f"the Python packages {packages} are missing (pip install {packages}, "
                       "or pip install 'boardnet[native]')")
    if not missing:
        return None
    return f"cannot build a native module for {arch}: " + "; ".join(missing)


def tree_version(root: Path) -> str:
    """'v1.28.0, .mpy v6.3': the MicroPython version of a source tree and the .mpy version
    its tools write (py/mpconfig.h, py/persistentcode.h)."""
    text = (root / "py" / "mpconfig.h").read_text(errors="replace")
    parts = dict(re.findall(r"#define MICROPY_VERSION_(MAJOR|MINOR|MICRO)\s+\(?(\d+)", text))
    mpy = (root / "py" / "persistentcode.h").read_text(errors="replace")
    v = dict(re.findall(r"#define (MPY_VERSION|MPY_SUB_VERSION)\s+\(?(\d+)", mpy))
    return (f"v{parts.get('MAJOR', '?')}.{parts.get('MINOR', '?')}.{parts.get('MICRO', '?')}, "
            f".mpy v{v.get('MPY_VERSION', '?')}.{v.get('MPY_SUB_VERSION', '?')}")


@functools.cache
def _compiler_version(cc: str) -> str:
    return run([cc, "--version"], f"{cc} --version", error=UsageError).stdout.splitlines()[0]


def _sources(form: Form) -> dict[str, str]:
    """The build folder's files: the module's C, the exported header, the float helper and
    the Makefile, by name."""
    module = micropython_module(form.model.name)
    return {
        f"{module}.c": render_native(form),
        f"{c_prefix(form.model.name)}.h": render_c(form),
        **{name: helper(name) for name in form.native_helpers},
        "Makefile": helper(MAKEFILE),
    }


def _key(sources: dict[str, str], arch: NativeArch, root: Path, cflags: tuple[str, ...]) -> str:
    """What a build depends on: its files, the architecture, the MicroPython tree (version,
    dynruntime.mk, mpy_ld.py) and the compiler."""
    h = hashlib.sha256()
    compiler = _compiler_version(f"{arch.cross}gcc")
    for part in (arch.name, *arch.make_args, *cflags, tree_version(root), compiler,
                 *(f"{n}\0{t}" for n, t in sorted(sources.items()))):
        h.update(part.encode() + b"\0")
    for f in ("py/dynruntime.mk", "tools/mpy_ld.py", "py/dynruntime.h", "py/nativeglue.h"):
        h.update((root / f).read_bytes())
    return h.hexdigest()[:24]


def build_native(form: Form, arch: str, out_dir: str | Path | None = None, *,
                 tree: str | Path | None = None, micropython: str | None = None,
                 cflags: tuple[str, ...] = ()) -> Path:
    """The native module of `form` for `arch`: `<module>.mpy`, in `out_dir` when given, else
    in the cache (a second build of the same inputs is a lookup). `tree` is the MicroPython
    source tree (default $MPY_DIR); `micropython`, the board's version, goes into the
    message when there is none; `cflags` are added to the compiler's (the tests build with
    -DBOARDNET_FLOAT_NO_ROM). NativeToolchainMissing when a tool is missing, BuildError when
    the build fails."""
    a = native_arch(arch)
    missing = native_missing(arch, tree, micropython)
    if missing:
        raise NativeToolchainMissing(missing)
    root = mpy_dir(tree)
    assert root is not None
    module = micropython_module(form.model.name)
    sources = _sources(form)
    cached = cache_root() / "native" / _key(sources, a, root, cflags) / f"{module}.mpy"
    if not cached.is_file():
        _build_into(cached, sources, module, a, root, cflags)
    if out_dir is None:
        return cached
    target = Path(out_dir) / f"{module}.mpy"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(cached, partial)
    partial.replace(target)
    return target


def _build_into(cached: Path, sources: dict[str, str], module: str, a: NativeArch, root: Path,
                cflags: tuple[str, ...]) -> None:
    cached.parent.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cached.parent.parent))
    try:
        for name, text in sources.items():
            (work / name).write_text(text)
        c_files = [name for name in sources if name.endswith(".c")]
        soft_float = ["SOFT_FLOAT=1"] if FLOAT_HELPER in sources else []
        # PYTHONDONTWRITEBYTECODE: mpy_ld imports scripts from MPY_DIR, which may be read-only;
        # PYTHONHASHSEED: mpy_ld lays out the libgcc helpers it pulls in by string hash, so
        # a fixed seed gives the same bytes every time
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        run(["make", "-C", str(work), f"MPY_DIR={root}", f"MOD={module}", f"SRC={' '.join(c_files)}",
             f"ARCH={a.name}", f"PYTHON={sys.executable}", *soft_float, *a.make_args,
             f"BOARDNET_CFLAGS={' '.join(cflags)}"],
            f"the native module build for {a.name} (py/dynruntime.mk)", env=env, error=BuildError,
            detail=_first_error, merge_output=True)
        built = work / f"{module}.mpy"
        mpy_header(built)  # an .mpy, or a UsageError
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.tmp")
        shutil.copyfile(built, partial)
        partial.replace(cached)  # whole or absent: a parallel build of the same inputs may win
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _first_error(output: str) -> str:
    """The line of a failed build that says what went wrong: a compiler error, mpy_ld's
    LinkError, make's own complaint, else the last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip() and not ln.startswith("make: Leaving")]
    for pattern in (r"\berror:", r"LinkError", r"No such file|No rule", r"Error|\*\*\*"):
        for ln in lines:
            if re.search(pattern, ln):
                return ln
    return lines[-1] if lines else "no output"
