"""Build boardnet's firmware for real boards with the vendors' SDKs: firmware/pico with the
pico-sdk (a UF2), firmware/esp32 with ESP-IDF (images and flash_args for esptool).

Without the SDK the error says how to get it; the exported header is written first either
way, so a user can build by hand.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..codegen import export_c, render_c
from ..errors import BoardError, UsageError
from ..forms import Form
from ..resources import firmware_dir
from ..tools import run
from .common import cache_root

PICO_STEPS = (
    "install the Pico SDK: git clone --depth 1 https://github.com/raspberrypi/pico-sdk && "
    "git -C pico-sdk submodule update --init && export PICO_SDK_PATH=$PWD/pico-sdk "
    "(and gcc-arm-none-eabi, cmake), then run deploy again"
)
IDF_STEPS = (
    "install ESP-IDF: git clone --recursive https://github.com/espressif/esp-idf && "
    "./esp-idf/install.sh esp32c3 && . ./esp-idf/export.sh (sets IDF_PATH), then run deploy again"
)


def esp_chip(board: str | None) -> str | None:
    """The ESP-IDF target / esptool chip for a --board name (esp32c3, esp32-s3 ...)."""
    return board.lower().replace("-", "") if board and board.lower().startswith("esp32") else None


def sdk_version(sdk: Path) -> str:
    """The pico-sdk's version, from its pico_sdk_version.cmake (the SDK's own record of it)."""
    try:
        text = (sdk / "pico_sdk_version.cmake").read_text()
    except OSError:
        raise UsageError(
            f"PICO_SDK_PATH={sdk} is not a pico-sdk (no pico_sdk_version.cmake): {PICO_STEPS}") from None
    parts = dict(re.findall(r"set\(PICO_SDK_VERSION_(MAJOR|MINOR|REVISION) (\d+)\)", text))
    return ".".join(parts.get(k, "?") for k in ("MAJOR", "MINOR", "REVISION"))


def _pico_key(form: Form, sdk: Path, board: str | None) -> str:
    """What a Pico build depends on: the model's header, boardnet's firmware sources, the SDK
    version and the compiler."""
    h = hashlib.sha256()
    for part in (render_c(form), sdk_version(sdk), str(sdk), board or "pico",
                 run(["arm-none-eabi-gcc", "--version"], "arm-none-eabi-gcc --version",
                     error=UsageError).stdout.splitlines()[0]):
        h.update(part.encode() + b"\0")
    root = firmware_dir()
    for f in sorted([*(root / "pico").iterdir(), *(root / "core").iterdir()]):
        if f.is_file():
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:24]


def build_pico(form: Form, build: Path | None = None, *, board: str | None = None) -> Path:
    """The UF2 of firmware/pico built with the form's header by the pico-sdk (cmake), cached
    by header, firmware sources, SDK version and compiler: a second build is a lookup."""
    sdk_path = os.environ.get("PICO_SDK_PATH")
    if not sdk_path:
        raise UsageError(f"PICO_SDK_PATH is not set: {PICO_STEPS}")
    sdk = Path(sdk_path)
    for tool, package in (("cmake", "cmake"), ("arm-none-eabi-gcc", "gcc-arm-none-eabi")):
        if shutil.which(tool) is None:
            raise UsageError(f"{tool} not found: install {package} (the pico-sdk builds with it)")
    cached = cache_root() / "pico" / _pico_key(form, sdk, board) / "boardnet.uf2"
    if cached.is_file():
        return cached
    build = Path(build) if build is not None else Path(tempfile.mkdtemp(prefix="boardnet-pico-build-"))
    header = export_c(form, build / "model")
    configure = ["cmake", "-S", str(firmware_dir() / "pico"), "-B", str(build), f"-DPICO_SDK_PATH={sdk}",
                 f"-DBOARDNET_MODEL={header}"]
    if board == "pico2":
        configure.append("-DPICO_BOARD=pico2")
    run(configure, "cmake (configure firmware/pico)", detail=_cmake_error)
    run(["cmake", "--build", str(build), "-j"], "cmake --build (firmware/pico)", detail=_cmake_error)
    uf2s = sorted(build.glob("*.uf2"))
    if not uf2s:
        raise BoardError(f"the Pico build wrote no .uf2 into {build}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".part")
    shutil.copyfile(uf2s[0], partial)
    partial.replace(cached)  # whole or absent: a parallel build of the same inputs may win
    return cached


def _cmake_error(output: str) -> str:
    """The line of a failed SDK build that says what is wrong, with the usual remedy."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    error = next((ln for ln in lines if re.search(r"error|Error", ln)), lines[-1] if lines else "no output")
    if "picotool" in output.lower() and "git" in output.lower():
        error += (" -- the pico-sdk needs picotool 2.x to make UF2 files and could not fetch it: "
                  "install picotool, or build it and set PICOTOOL_FETCH_FROM_GIT_PATH (README, C firmware)")
    return error


def build_esp32(form: Form, build: Path | None = None, *, board: str | None = None) -> Path:
    """idf.py build firmware/esp32 with the form's header; the build folder (flash_args)."""
    build = Path(build) if build is not None else Path(tempfile.mkdtemp(prefix="boardnet-fw-"))
    project = firmware_dir() / "esp32"
    header = export_c(form, build / "model")
    if not os.environ.get("IDF_PATH") or shutil.which("idf.py") is None:
        raise UsageError(f"ESP-IDF is not set up (IDF_PATH, idf.py): {IDF_STEPS}")
    chip = esp_chip(board) or "esp32c3"
    run(["idf.py", "-C", str(project), "-B", str(build), f"-DIDF_TARGET={chip}",
         f"-DBOARDNET_MODEL={header}", "build"], "idf.py build (firmware/esp32)")
    if not (build / "flash_args").is_file():
        raise BoardError(f"the ESP-IDF build wrote no flash_args into {build}")
    return build
