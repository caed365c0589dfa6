"""Shared fixtures and the rule for tests that need an outside tool.

A test that needs a tool which is missing skips with the reason, except when
BOARDNET_REQUIRE_TOOLS=1 (set by CI): then the missing tool is a failure, so nothing
silently stops being tested.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_TOOLS = os.environ.get("BOARDNET_REQUIRE_TOOLS") == "1"


def need(ok: bool, reason: str) -> None:
    """Skip (or, under BOARDNET_REQUIRE_TOOLS=1, fail) when a tool is missing."""
    if ok:
        return
    if REQUIRE_TOOLS:
        pytest.fail(f"required tool missing: {reason}", pytrace=False)
    pytest.skip(reason)


def need_exe(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    need(not missing, "not on PATH: " + ", ".join(missing))
