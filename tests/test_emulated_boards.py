"""The emulated boards: build the echo program for each, boot it in QEMU, talk over serial.

Proves the board layers (start-up, UART both ways, tick counter), `boardnet.firmware.emulated.build`
and `boardnet.virtual.qemu.Emulator`. The echo program is firmware/qemu-echo/main.c.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import serial
from conftest import need

from boardnet.errors import BoardError
from boardnet.firmware import emulated as firmware
from boardnet.resources import firmware_dir
from boardnet.virtual.qemu import Emulator

TARGETS = ["m0", "rv32"]
PLATFORM = {"m0": "qemu-m0", "rv32": "qemu-rv32"}
ECHO = firmware_dir() / "qemu-echo" / "main.c"
LINE_MAX = 128  # main.c


def need_toolchain(target: str, *, qemu: bool = True) -> None:
    missing = firmware.toolchain_missing(target, qemu=qemu)
    need(missing is None, missing or "")


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Build into a cache of this module's own, so the first build really compiles."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="module")
def echo_elf(tmp_path_factory):
    built: dict[tuple[str, int | None], Path] = {}

    def get(target: str, busy_loops: int | None = None) -> Path:
        need_toolchain(target)
        key = (target, busy_loops)
        if key not in built:
            out = tmp_path_factory.mktemp(f"echo-{target}")
            defines = None if busy_loops is None else {"BUSY_LOOPS": f"{busy_loops}u"}
            built[key] = firmware.build(target, [ECHO], [], out, defines)
        return built[key]

    return get


class Board:
    """An emulator and the serial link to it."""

    def __init__(self, target: str, elf: Path) -> None:
        self.emu = Emulator()
        self.link = serial.serial_for_url(self.emu.start(target, elf), timeout=10)

    def ask(self, line: bytes) -> bytes:
        self.link.write(line + b"\n")
        reply = self.link.readline()
        assert reply.endswith(b"\n"), f"no full reply to {line[:20]!r}: {reply[:60]!r}"
        return reply[:-1]

    def ticks(self) -> int:
        word, n, unit = self.ask(b"T").split()
        assert (word, unit) == (b"T", b"instr")
        return int(n)

    def close(self) -> None:
        self.link.close()
        self.emu.stop()


@pytest.fixture
def board(echo_elf):
    opened: list[Board] = []

    def open_board(target: str, busy_loops: int | None = None) -> Board:
        b = Board(target, echo_elf(target, busy_loops))
        opened.append(b)
        return b

    yield open_board
    for b in opened:
        b.close()


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.parametrize("target", TARGETS)
def test_echo_lines_both_ways(board, target):
    b = board(target)
    assert b.ask(b"hello, board") == b"E HELLO, BOARD"
    assert b.ask(b"") == b"E "
    assert b.ask(b"Mixed 123 case\r") == b"E MIXED 123 CASE"  # CR LF from a terminal
    b.link.write(b"enter at a terminal\r")  # a lone CR ends a line too
    assert b.link.readline() == b"E ENTER AT A TERMINAL\n"
    assert b.ask(b"P") == b"P " + PLATFORM[target].encode()
    assert b.ask(bytes(range(0x20, 0x7F))) == b"E " + bytes(range(0x20, 0x7F)).upper()


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.slow
def test_100kb_line_is_cut_and_the_boards_go_on(board):
    """QEMU hands the UART one byte (m0: up to 6) per wake-up of its I/O thread, some
    10-20 KB/s, so this takes seconds; the boards run side by side to overlap the waits."""
    n = 100_000
    boards = [board(target) for target in TARGETS]

    def send(b: Board) -> bytes:
        b.link.timeout = 90
        return b.ask(b"ab" * (n // 2))

    with ThreadPoolExecutor(len(boards)) as pool:
        replies = list(pool.map(send, boards))
    for b, reply in zip(boards, replies):
        assert reply == b"E " + b"AB" * (LINE_MAX // 2) + b" +" + str(n - LINE_MAX).encode()
        assert b.ask(b"still here") == b"E STILL HERE"


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.parametrize("target", TARGETS)
def test_timer_counts_instructions_the_same_every_run(board, target):
    figures = []
    for run in range(2):
        b = board(target)
        # Different traffic before each measurement puts it at a different point in time.
        for i in range(3 * run + 1):
            b.ask(b"x" * (50 * i))
        figures += [b.ticks(), b.ticks()]
        b.close()
    assert len(set(figures)) == 1, figures
    # 1000 passes of a loop with a volatile load and store: several instructions a pass.
    assert 3_000 < figures[0] < 20_000, figures


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.parametrize("target", TARGETS)
def test_timer_is_exact_across_counter_wraps(board, target):
    """On m0 a SysTick wrap comes every 4.1M instructions (shift 8): a 10.2M-instruction
    window holds two or three, about evenly, depending on where it starts. Its figure must
    not (had the wrap handler's cost not been subtracted, the figures would differ by 5)."""
    small, big = 1_000, 1_700_000
    b = board(target)
    t_small = b.ticks()
    b.close()
    b = board(target, busy_loops=big)
    figures = []
    for i in range(4):
        b.ask(b"y" * (97 * i))
        figures.append(b.ticks())
    assert len(set(figures)) == 1, figures
    # Same loop, more passes: the figure grows by a whole number of instructions per pass,
    # give or take the one or two it takes to load a larger constant.
    per_pass = round((figures[0] - t_small) / (big - small))
    rest = figures[0] - t_small - per_pass * (big - small)
    assert 2 <= per_pass <= 10 and abs(rest) <= 2, (figures[0], t_small)


@pytest.mark.cross
def test_compile_error_is_a_board_error_with_the_compiler_line(tmp_path):
    need_toolchain("m0", qemu=False)
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return undeclared_thing; }\n")
    with pytest.raises(firmware.BuildError) as e:
        firmware.build("m0", [bad], [], tmp_path / "out")
    assert isinstance(e.value, BoardError) and e.value.status == 3
    assert "bad.c:1" in str(e.value) and "undeclared_thing" in str(e.value)


@pytest.mark.cross
def test_warnings_are_errors(tmp_path):
    need_toolchain("rv32", qemu=False)
    src = tmp_path / "main.c"
    src.write_text("float half(float x) { return x * 0.5; }\nint main(void) { return 0; }\n")
    with pytest.raises(firmware.BuildError, match="double-promotion"):
        firmware.build("rv32", [src], [], tmp_path / "out")


@pytest.mark.cross
@pytest.mark.parametrize("target", TARGETS)
def test_build_is_cached_by_its_inputs(tmp_path, target):
    need_toolchain(target, qemu=False)
    src = tmp_path / "main.c"
    src.write_text(ECHO.read_text())
    first = firmware.build(target, [src], [], tmp_path / "a")
    cached = sorted(firmware.cache_root().iterdir())
    again = firmware.build(target, [src], [], tmp_path / "b")
    assert sorted(firmware.cache_root().iterdir()) == cached
    assert again.read_bytes() == first.read_bytes()
    assert firmware.map_file(again).is_file()
    size = firmware.firmware_size(again)
    assert 0 < size.text < 8192 and size.bss >= LINE_MAX

    src.write_text(ECHO.read_text() + "\n/* changed */\n")
    firmware.build(target, [src], [], tmp_path / "c")
    assert len(list(firmware.cache_root().iterdir())) == len(cached) + 1


def test_toolchain_missing_names_the_tool(monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert "arm-none-eabi-gcc" in (firmware.toolchain_missing("m0") or "")
    assert "qemu-system-riscv32" in (firmware.toolchain_missing("rv32") or "")
    with pytest.raises(BoardError):
        firmware.toolchain_missing("avr")


@pytest.mark.cross
@pytest.mark.qemu
def test_stop_leaves_no_qemu_behind(echo_elf):
    elf = echo_elf("rv32")
    with Emulator() as emu:
        emu.start("rv32", elf)
        pid = emu.pid
        assert _alive(pid)
    assert not _alive(pid)
    with pytest.raises(BoardError, match="firmware not found"):
        Emulator().start("rv32", elf.with_name("missing.elf"))


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_qemu_dies_with_a_killed_parent(echo_elf):
    elf = echo_elf("m0")
    script = textwrap.dedent(
        f"""
        import sys, time
        from boardnet.virtual.qemu import Emulator
        emu = Emulator()
        emu.start("m0", {str(elf)!r})
        print(emu.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert _alive(pid)
        parent.kill()  # SIGKILL: no atexit, no stop()
        parent.wait()
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
