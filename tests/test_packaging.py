"""What a command needs at run time ships inside the wheel, so `pip install boardnet`
works without a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_holds_templates_runtime_firmware_and_the_virtual_board(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("boardnet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in [
        "boardnet/templates/model.h.j2",
        "boardnet/templates/model.py.j2",
        "boardnet/templates/sgd_epoch.py.j2",
        "boardnet/datasets/people.csv",
        "boardnet/templates/boardnet_sigmoid.h",
        "boardnet/templates/boardnet_q15.h",
        "boardnet/templates/native_f32.c.j2",
        "boardnet/templates/native_q15.c.j2",
        "boardnet/templates/boardnet_native_float.h",
        "boardnet/templates/natmod.mk",
        "boardnet/link/scripts/probe.py",
        "boardnet/virtual/node/bridge.mjs",
        "boardnet/virtual/node/package-lock.json",
        "boardnet/_runtime/micropython/boardnet_serve.py",
        "boardnet/_runtime/micropython/main.py",
        "boardnet/_runtime/firmware/core/board.h",
    ]:
        assert needed in names, needed
    assert not any("node_modules" in n or "__pycache__" in n for n in names)
