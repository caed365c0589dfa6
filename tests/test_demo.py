"""The README's main job end to end: train, export, deploy to a virtual MicroPython board
with mpremote, check over a pseudo-terminal, and ask the board about Emily and Frank."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import need_node


@pytest.mark.node
def test_demo_on_the_virtual_board(tmp_path):
    need_node()
    r = subprocess.run([sys.executable, "-m", "boardnet.cli", "demo", "--out", str(tmp_path), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["check"]["passed"] is True and result["check"]["n"] == 1000
    board = result["board_predictions"]
    assert board["Emily"]["board"] > 0.9 and board["Frank"]["board"] < 0.1
    assert (tmp_path / "c" / "people.h").exists() and (tmp_path / "micropython" / "people.py").exists()
