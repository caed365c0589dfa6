"""Where the files that ship with boardnet live: in a wheel, or in a checkout."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _runtime(name: str) -> Path:
    installed = Path(str(files("boardnet"))) / "_runtime" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parents[1] / name  # a checkout: <repo>/host/boardnet -> <repo>/<name>


def firmware_dir() -> Path:
    return _runtime("firmware")


def micropython_dir() -> Path:
    return _runtime("micropython")


def package_dir() -> Path:
    return _PACKAGE
