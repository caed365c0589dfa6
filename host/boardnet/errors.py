"""Errors that reach the user as one line and an exit status (CONTRACT.md).

0 ok; 1 check outside tolerance; 2 bad usage or bad input; 3 board or link error.
"""

from __future__ import annotations


class BoardnetError(Exception):
    """An error the CLI prints as one line; `status` is the process exit status."""

    status = 2

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageError(BoardnetError):
    status = 2


class DataError(BoardnetError):
    status = 2


class ModelError(BoardnetError):
    status = 2


class BoardError(BoardnetError):
    status = 3


class CheckFailed(BoardnetError):
    status = 1
