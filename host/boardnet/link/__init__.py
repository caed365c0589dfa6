"""Talking to boards: the wire protocol (protocol.py), a conversation over any pyserial port
(session.py), what `--port` names (ports.py), what is plugged in (boards.py), mpremote and
the board-side scripts (micropython.py, scripts/), and putting firmware on a board (flash.py)."""

from .session import Link, open_link, open_serial

__all__ = ["Link", "open_link", "open_serial"]
