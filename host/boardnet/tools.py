"""Running the tools of the trade (mpremote, mpy-cross, esptool, cmake, gcc, QEMU): one
runner, so every tool's failure reaches the user the same way, as one line that names the
tool and what it said last."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import BoardError, BoardnetError


def last_line(text: str) -> str:
    """The last non-empty line of a tool's output: where tools say what went wrong."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def run(
    argv: Sequence[str],
    what: str,
    *,
    timeout: float | None = None,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    error: type[BoardnetError] = BoardError,
    detail: Callable[[str], str] | None = None,
    merge_output: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` to completion and return it; an `error` (one line: `what` failed, and the
    tool's own words) when it cannot start, runs past `timeout` or exits non-zero.

    `detail` picks the telling line from the tool's stderr (default: the last line) and may
    add what it means for the user. `merge_output` reads stderr and stdout as one stream (for
    make, whose tools say what went wrong on either).
    """
    try:
        proc = subprocess.run(
            [str(a) for a in argv], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
            text=True, timeout=timeout, cwd=cwd, env=env,
        )
    except FileNotFoundError:
        raise error(f"{what}: {argv[0]} not found") from None
    except OSError as e:
        raise error(f"{what}: cannot run {argv[0]} ({e.strerror})") from None
    except subprocess.TimeoutExpired:
        raise error(f"{what} did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        said = proc.stderr if proc.stderr and proc.stderr.strip() else proc.stdout
        line = detail(said) if detail is not None else last_line(said)
        raise error(f"{what} failed: {line or 'no output'}")
    return proc
