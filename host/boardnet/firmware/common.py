"""What every firmware build shares: the warnings, the build cache and how the firmware
finds the model's header (firmware/core/boardnet_model.c)."""

from __future__ import annotations

from pathlib import Path

from ..files import cache_dir
from ..forms import Form
from ..names import c_prefix

# Every C file of the firmware, board layers included, builds clean with these (the pico-sdk
# and ESP-IDF builds apply them to boardnet's own files; firmware/core/warnings.cmake).
WARNINGS = (
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Wdouble-promotion",
    "-Wfloat-conversion",
    "-Wshadow",
    "-Werror",
)


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/boardnet/firmware``, by default ``~/.cache/boardnet/firmware``."""
    return cache_dir() / "firmware"


def model_defines(form: Form, rx_buffer: int) -> dict[str, object]:
    """What boardnet_model.c needs to find the exported header (see its top comment), and the
    board's receive buffer, from which the core computes its pipelining window."""
    prefix = c_prefix(form.model.name)
    return {
        "BOARDNET_MODEL_HEADER": f'"{prefix}.h"',
        "BOARDNET_PREFIX": prefix,
        "BOARDNET_PREFIX_UPPER": prefix.upper(),
        "BOARD_RX_BUFFER": rx_buffer,
    }
