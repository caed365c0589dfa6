"""Build C firmware for the emulated boards with the Debian cross compilers.

Two targets stand in for the real boards (firmware/README.md says what they prove):

- ``m0``: Raspberry Pi Pico (RP2040, Cortex-M0+) -> QEMU ``-M microbit`` (nRF51, Cortex-M0).
- ``rv32``: ESP32-C3 (rv32imc) -> QEMU ``-M virt`` with a plain rv32imc CPU.

`build` adds the board layer (start-up, board.c, linker script) and ``firmware/core`` to the
caller's sources, links one ELF and caches it by a hash of everything that goes in, so a
second build of the same inputs is a copy. `build_firmware` builds boardnet's firmware
(firmware/emulated/main.c, the core and a model's exported header) that way.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..codegen import export_c
from ..errors import BoardError
from ..forms import Form
from ..resources import firmware_dir
from ..tools import run
from .common import WARNINGS, cache_root, model_defines

# -icount shift the emulators run with and the board layers are built for: one instruction
# is 2^8 ns of virtual time. qemu-m0 needs >= 7 to turn 62.5 ns SysTick ticks into exact
# instruction counts (see firmware/qemu-m0/board.c); rv32 divides minstret by 2^shift.
ICOUNT_SHIFT = 8

OPTIMISE = ("-Os", "-g", "-ffunction-sections", "-fdata-sections")


@dataclass(frozen=True)
class Target:
    """How to build for one emulated board and which tools that takes."""

    name: str
    board: str  # folder under firmware/
    cc: str
    size: str
    qemu: str
    arch_flags: tuple[str, ...]
    board_sources: tuple[str, ...]
    linker_script: str
    link_flags: tuple[str, ...]
    libc_probe: str  # a file the compiler must find for the C library to be installed
    packages: str  # the Debian packages that provide the tools


TARGETS: dict[str, Target] = {
    "m0": Target(
        name="m0",
        board="qemu-m0",
        cc="arm-none-eabi-gcc",
        size="arm-none-eabi-size",
        qemu="qemu-system-arm",
        # The RP2040's core; QEMU's microbit is a Cortex-M0, the same ARMv6-M instructions.
        arch_flags=("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
        board_sources=("startup.c", "board.c"),
        linker_script="nrf51.ld",
        # newlib-nano for the C library; nosys.specs gives stubs for its system calls
        # (no semihosting), so a stray printf or malloc links and fails quietly.
        link_flags=("--specs=nano.specs", "--specs=nosys.specs", "-lm", "-lgcc"),
        libc_probe="libc_nano.a",
        packages="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm",
    ),
    "rv32": Target(
        name="rv32",
        board="qemu-rv32",
        cc="riscv64-unknown-elf-gcc",
        size="riscv64-unknown-elf-size",
        qemu="qemu-system-riscv32",
        # gcc 12 follows ISA spec 20191213, where csrr needs _zicsr; spec 2.2 keeps the CSR
        # instructions in the base ISA and the plain rv32imc name, which gcc's multilib
        # table maps to the rv32im/ilp32 libraries.
        arch_flags=("-march=rv32imc", "-misa-spec=2.2", "-mabi=ilp32", "--specs=picolibc.specs"),
        board_sources=("start.S", "board.c"),
        linker_script="virt.ld",
        # Debian's picolibc has no rv32imc build; its rv32im one (chosen by the multilib
        # table above) is the same ABI without compressed instructions, which an rv32imc
        # CPU runs unchanged, and the a/f/d-free libraries never trap on our a=false CPU.
        link_flags=("-lm", "-lgcc"),
        libc_probe="picolibc.specs",
        packages="gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc",
    ),
}


class BuildError(BoardError):
    """The cross compiler or linker refused the firmware (exit status 3, like a board error)."""


@dataclass(frozen=True)
class Size:
    """Berkeley `size` figures of an ELF: flash holds text + data, RAM holds data + bss."""

    text: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss


def target_info(target: str) -> Target:
    try:
        return TARGETS[target]
    except KeyError:
        raise BoardError(
            f"unknown firmware target {target!r}; expected one of {', '.join(TARGETS)}"
        ) from None


def toolchain_missing(target: str, *, qemu: bool = True) -> str | None:
    """Say what is missing to build `target` (and, with `qemu`, to run it); None if nothing."""
    t = target_info(target)
    exes = [t.cc, t.size] + ([t.qemu] if qemu else [])
    missing = [exe for exe in exes if shutil.which(exe) is None]
    if not missing and not _compiler_finds(t.cc, t.libc_probe):
        missing.append(f"the C library ({t.libc_probe})")
    if missing:
        return f"{target}: {', '.join(missing)} not found (Debian packages: {t.packages})"
    return None


@functools.cache
def _compiler_finds(cc: str, name: str) -> bool:
    # -print-file-name echoes the bare name back when it does not find the file.
    out = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True)
    return out.returncode == 0 and os.path.isabs(out.stdout.strip())


@functools.cache
def _compiler_version(cc: str) -> str:
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else cc


def compile_command(
    target: str,
    sources: list[Path],
    include_dirs: list[Path],
    elf: Path,
    defines: dict | None = None,
) -> list[str]:
    """The one compiler command line that builds and links `elf` (what `build` runs)."""
    t = target_info(target)
    board = firmware_dir() / t.board
    all_defines = {"BOARD_ICOUNT_SHIFT": ICOUNT_SHIFT, **(defines or {})}
    return [
        t.cc,
        *t.arch_flags,
        *OPTIMISE,
        *WARNINGS,
        *(f"-D{k}" if v is None else f"-D{k}={v}" for k, v in sorted(all_defines.items())),
        f"-I{firmware_dir() / 'core'}",
        *(f"-I{d}" for d in include_dirs),
        *(str(board / s) for s in t.board_sources),
        *(str(s) for s in sources),
        "-nostartfiles",
        f"-T{board / t.linker_script}",
        "-Wl,--gc-sections",
        f"-Wl,-Map={elf.with_suffix('.map')}",
        *t.link_flags,
        "-o",
        str(elf),
    ]


def _inputs_hash(target: str, sources: list[Path], include_dirs: list[Path], command: list[str]) -> str:
    t = target_info(target)
    board = firmware_dir() / t.board
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    add("compiler", _compiler_version(t.cc).encode())
    # The command names the output file; hash it with a fixed one so out_dir does not matter.
    add("command", "\0".join(command[:-1]).encode())
    files = [board / s for s in (*t.board_sources, t.linker_script)]
    files += [Path(s) for s in sources]
    for d in [firmware_dir() / "core", *include_dirs]:
        files += sorted(p for p in Path(d).rglob("*") if p.suffix in (".h", ".inc"))
    for f in files:
        add(str(f), Path(f).read_bytes())
    return h.hexdigest()[:24]


def build(
    target: str,
    sources: list[Path],
    include_dirs: list[Path],
    out_dir: Path,
    defines: dict | None = None,
) -> Path:
    """Build firmware for `target` ("m0" or "rv32") and return the ELF that QEMU boots.

    `sources` are the program's C files (the board layer and ``firmware/core`` on the include
    path are added); `defines` become ``-DNAME=VALUE`` (``None`` as value: ``-DNAME``).
    ``out_dir`` receives ``firmware.elf``, ``firmware.map`` and ``size.json``
    (see `firmware_size`). Raises `BuildError` with the first compiler error line.
    """
    missing = toolchain_missing(target, qemu=False)
    if missing:
        raise BuildError(f"cannot build firmware: {missing}")
    sources = [Path(s).resolve() for s in sources]
    include_dirs = [Path(d).resolve() for d in include_dirs]
    t = target_info(target)

    probe = compile_command(target, sources, include_dirs, Path("firmware.elf"), defines)
    cached = cache_root() / _inputs_hash(target, sources, include_dirs, probe)
    if not (cached / "firmware.elf").is_file():
        _build_into(cached, target, sources, include_dirs, defines, t)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("firmware.elf", "firmware.map", "size.json"):
        shutil.copyfile(cached / name, out_dir / name)
    return out_dir / "firmware.elf"


def _build_into(
    cached: Path,
    target: str,
    sources: list[Path],
    include_dirs: list[Path],
    defines: dict | None,
    t: Target,
) -> None:
    cached.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cached.parent))
    try:
        elf = work / "firmware.elf"
        run(compile_command(target, sources, include_dirs, elf, defines),
            f"{target} firmware build", error=BuildError, detail=_first_error)
        size = _run_size(t.size, elf)
        (work / "size.json").write_text(
            json.dumps({"text": size.text, "data": size.data, "bss": size.bss}) + "\n"
        )
        try:
            os.replace(work, cached)  # atomic: a parallel build of the same inputs may win
        except OSError:
            if not (cached / "firmware.elf").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _first_error(stderr: str) -> str:
    """The first line that says what went wrong: a compiler or assembler error, else a
    linker complaint, else whatever came first (collect2's summary says nothing useful)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for pattern in (r"\berror:", r"undefined reference|\bld: ", r"."):
        for ln in lines:
            if re.search(pattern, ln, re.IGNORECASE) and not ln.startswith("collect2:"):
                return ln
    return lines[0] if lines else "no message from the compiler"


def _run_size(size_exe: str, elf: Path) -> Size:
    out = run([size_exe, str(elf)], f"{size_exe} on {elf}", error=BuildError).stdout
    # "   text    data     bss     dec     hex filename" then one row of numbers.
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return Size(text, data, bss)


def firmware_size(elf: Path) -> Size:
    """Flash and RAM use of an ELF made by `build` (read from the size.json beside it)."""
    info = json.loads(Path(elf).with_name("size.json").read_text())
    return Size(info["text"], info["data"], info["bss"])


def map_file(elf: Path) -> Path:
    """The linker map of an ELF made by `build`."""
    return Path(elf).with_suffix(".map")


# ---- boardnet's firmware for the emulated boards ---------------------------------------------
CORE_SOURCES = ("core/boardnet_serve.c", "core/boardnet_text.c", "core/boardnet_model.c")
MAIN = "emulated/main.c"
# QEMU's UARTs take a byte only when they have room, and then the socket back-end stops
# reading: unread requests wait in the TCP buffers and the host's writes block, flow control
# as on USB CDC. The core's window formula then reaches its cap of 32 for any small model.
RX_BUFFER = 4096


def sources() -> list[Path]:
    """The firmware's C files (the board layer is added by `build`)."""
    root = firmware_dir()
    return [root / MAIN, *(root / s for s in CORE_SOURCES)]


def build_firmware(form: Form, target: str, out_dir: Path | None = None) -> Path:
    """The firmware ELF for `target` ("m0" or "rv32") serving the model in `form`.

    Built once per fingerprint (and firmware source): later calls copy it from
    `cache_root()`. Warnings are errors (`common.WARNINGS`).
    """
    target_info(target)
    out = Path(out_dir) if out_dir is not None else cache_root() / "models" / f"{target}-{form.fingerprint}"
    header = export_c(form, out / "model")
    return build(target, sources(), [header.parent], out, model_defines(form, RX_BUFFER))
