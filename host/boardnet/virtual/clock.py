"""Emulated time: what an emulated board's microseconds are."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    """An emulated clock: `hz` cycles per emulated second, and what it leaves out."""

    description: str
    hz: int

    def cycles(self, microseconds: float) -> float:
        return microseconds * self.hz / 1e6
