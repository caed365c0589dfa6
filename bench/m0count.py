"""Count the instructions a function of a Cortex-M0+ ELF executes, in the unicorn emulator.

    from m0count import Elf, count_instructions
    elf = Elf.load("prog.elf")
    result = count_instructions(elf, "bench_predict", args=[x_bytes, y_size])

These are generic ARMv6-M figures: libgcc's soft float as linked by arm-none-eabi-gcc
(pico-sdk instead routes float operations to the RP2040's ROM routines, which are faster),
no wait states, one count per executed instruction (not cycles).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from unicorn import UC_ARCH_ARM, UC_HOOK_CODE, UC_MODE_MCLASS, UC_MODE_THUMB, Uc
from unicorn.arm_const import (
    UC_ARM_REG_LR,
    UC_ARM_REG_R0,
    UC_ARM_REG_R1,
    UC_ARM_REG_R2,
    UC_ARM_REG_R3,
    UC_ARM_REG_SP,
    UC_CPU_ARM_CORTEX_M0,
)

# libgcc's single-precision soft float (and the helpers only it calls here)
SOFT_FLOAT = re.compile(
    r"^(__aeabi_(f\w+|cf\w+|i2f|ui2f|l2f|ul2f)|__\w+sf[23]?|__\w+sf\w*|__clzsi2|__clzdi2)$"
)

PAGE = 0x1000
STACK_TOP = 0x2004_0000  # RP2040 SRAM ends at 0x20042000
ARGS_BASE = 0x3000_0000  # input/output buffers passed as arguments
RETURN = 0x3100_0000  # the emulation stops when the function returns here


@dataclass
class Symbol:
    name: str
    addr: int
    size: int
    kind: int  # 2 = FUNC, 1 = OBJECT


@dataclass
class Elf:
    """The loadable segments and the symbol table of a 32-bit little-endian ELF."""

    segments: list[tuple[int, bytes, int]]  # (address, file bytes, size in memory)
    symbols: dict[str, Symbol] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Elf:
        data = Path(path).read_bytes()
        if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
            raise ValueError(f"{path}: not a 32-bit little-endian ELF")
        (phoff, shoff) = struct.unpack_from("<II", data, 28)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 42)
        segments = []
        for i in range(phnum):
            p_type, off, vaddr, paddr, filesz, memsz = struct.unpack_from(
                "<IIIIII", data, phoff + i * phentsize
            )
            if p_type == 1 and memsz:  # PT_LOAD
                segments.append((paddr, data[off : off + filesz], memsz))
                if vaddr != paddr:  # .data: the copy start-up code would make
                    segments.append((vaddr, data[off : off + filesz], memsz))
        sections = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
        symbols: dict[str, Symbol] = {}
        for sh in sections:
            if sh[1] != 2:  # SHT_SYMTAB
                continue
            strtab = sections[sh[6]]
            str_off = strtab[4]
            for k in range(sh[5] // 16):
                name_off, value, size, info, _, _ = struct.unpack_from("<IIIBBH", data, sh[4] + 16 * k)
                end = data.index(b"\0", str_off + name_off)
                name = data[str_off + name_off : end].decode("ascii", "replace")
                kind = info & 0xF
                if name and kind in (1, 2):
                    symbols[name] = Symbol(name, value & ~1 if kind == 2 else value, size, kind)
        return cls(segments, symbols)

    def function_at(self) -> list[tuple[int, int, str]]:
        """(start, end, name) of every sized function, sorted by address."""
        return sorted(
            (s.addr, s.addr + s.size, s.name) for s in self.symbols.values() if s.kind == 2 and s.size
        )


@dataclass
class Count:
    instructions: int
    soft_float: int  # instructions inside libgcc's soft-float routines
    by_function: dict[str, int]
    memory: bytes  # the argument area after the call (outputs)

    @property
    def soft_float_share(self) -> float:
        return self.soft_float / self.instructions if self.instructions else 0.0


def _map(uc: Uc, mapped: set[int], addr: int, size: int) -> None:
    for page in range(addr & ~(PAGE - 1), addr + size, PAGE):
        if page not in mapped:
            uc.mem_map(page, PAGE)
            mapped.add(page)


def count_instructions(
    elf: Elf | str | Path,
    func: str,
    args: list[int | bytes] = (),  # type: ignore[assignment]
    max_instructions: int = 50_000_000,
) -> Count:
    """Run `func(args...)` from a fresh machine state and count executed instructions.

    Integer arguments pass as they are; a bytes argument is copied into an argument area and
    its address passed (so `bytes(4 * n_out)` is an output buffer). At most four arguments.
    """
    if not isinstance(elf, Elf):
        elf = Elf.load(elf)
    if func not in elf.symbols:
        raise KeyError(f"no symbol {func!r} in the ELF")
    uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(UC_CPU_ARM_CORTEX_M0)
    mapped: set[int] = set()
    for addr, blob, memsz in elf.segments:
        _map(uc, mapped, addr, memsz)
        uc.mem_write(addr, blob)
    _map(uc, mapped, STACK_TOP - 0x10000, 0x10000)
    _map(uc, mapped, ARGS_BASE, 0x10000)
    _map(uc, mapped, RETURN, PAGE)
    uc.mem_write(RETURN, b"\x00\xbf" * 8)  # nops, never executed

    regs = [UC_ARM_REG_R0, UC_ARM_REG_R1, UC_ARM_REG_R2, UC_ARM_REG_R3]
    offset = 0
    for reg, arg in zip(regs, args):
        if isinstance(arg, bytes):
            uc.mem_write(ARGS_BASE + offset, arg)
            uc.reg_write(reg, ARGS_BASE + offset)
            offset += (len(arg) + 7) & ~7
        else:
            uc.reg_write(reg, int(arg) & 0xFFFFFFFF)
    uc.reg_write(UC_ARM_REG_SP, STACK_TOP)
    uc.reg_write(UC_ARM_REG_LR, RETURN | 1)

    functions = elf.function_at()
    starts = [f[0] for f in functions]
    counts: dict[int, int] = {}

    def hook(_uc: Uc, address: int, _size: int, _data: object) -> None:
        counts[address] = counts.get(address, 0) + 1

    uc.hook_add(UC_HOOK_CODE, hook)
    uc.emu_start(elf.symbols[func].addr | 1, RETURN, count=max_instructions)

    import bisect

    by_function: dict[str, int] = {}
    for address, n in counts.items():
        i = bisect.bisect_right(starts, address) - 1
        name = functions[i][2] if i >= 0 and address < functions[i][1] else "?"
        by_function[name] = by_function.get(name, 0) + n
    total = sum(by_function.values())
    soft = sum(n for name, n in by_function.items() if SOFT_FLOAT.match(name))
    return Count(total, soft, by_function, bytes(uc.mem_read(ARGS_BASE, max(offset, 4))))
