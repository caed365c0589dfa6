"""Build boardnet's firmware for real boards with the vendors' SDKs: firmware/pico with the
pico-sdk (a UF2), firmware/esp32 with ESP-IDF (images and flash_args for esptool).

Without the SDK the error says how to get it; the exported header is written first either
way, so a user can build by hand.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..codegen import export_c
from ..errors import BoardError, UsageError
from ..forms import Form
from ..resources import firmware_dir
from ..tools import run

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


def build_pico(form: Form, build: Path | None = None, *, board: str | None = None) -> Path:
    """cmake + build firmware/pico with the form's header; the UF2."""
    build = Path(build) if build is not None else Path(tempfile.mkdtemp(prefix="boardnet-fw-"))
    project = firmware_dir() / "pico"
    header = export_c(form, build / "model")
    sdk = os.environ.get("PICO_SDK_PATH")
    if not sdk:
        raise UsageError(f"PICO_SDK_PATH is not set: {PICO_STEPS}")
    if shutil.which("cmake") is None:
        raise UsageError("cmake not found: install cmake (and gcc-arm-none-eabi), then run deploy again")
    configure = ["cmake", "-S", str(project), "-B", str(build), f"-DPICO_SDK_PATH={sdk}",
                 f"-DBOARDNET_MODEL={header}"]
    if board == "pico2":
        configure.append("-DPICO_BOARD=pico2")
    run(configure, "cmake (configure firmware/pico)")
    run(["cmake", "--build", str(build), "-j"], "cmake --build (firmware/pico)")
    uf2s = sorted(build.glob("*.uf2"))
    if not uf2s:
        raise BoardError(f"the Pico build wrote no .uf2 into {build}")
    return uf2s[0]


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
