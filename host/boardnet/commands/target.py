"""How long a virtual board named on the command line lives: one rule for every command.

`--port sim`, `sim-m0`, `sim-rv32` name a virtual board of that kind:
- `check`, `predict`, `evaluate` and `demo` use the running board of that kind when it serves
  their model (one that `boardnet sim start` or `deploy` left up); otherwise they start a
  fresh one, deploy the model to it through the same path a real board takes (mpremote on
  the MicroPython board; the firmware built with the model's header on the QEMU boards), and
  stop it when the command ends. They never change a board that stays up.
- `deploy` puts the model on the board of that kind that stays up (starting one when none
  runs), until `boardnet sim stop` (commands/deploy.py).
Every other port is the user's board: it is used as it is and never stopped.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .. import virtual
from ..errors import BoardError
from ..forms import Form
from ..link.ports import Target
from ..link.protocol import NotServing
from ..link.session import Link, open_link
from ..virtual import records
from .deploy import deploy_hint, deploy_micropython, start_deployed


@dataclass(frozen=True)
class Board:
    """A command's board: `url` to open, and whether the command started it (and will stop it)."""

    url: str
    description: str
    fresh: bool = False


@contextmanager
def attach(target: Target, form: Form) -> Iterator[Board]:
    """The board `target` names, holding `form`'s model when it is virtual (see above)."""
    if target.virtual is None:
        assert target.url is not None
        yield Board(target.url, target.description)
        return
    kind = virtual.kind(target.virtual)
    running = records.find(kind.name)
    if running is not None and (running.get("extra") or {}).get("fingerprint") == form.fingerprint:
        yield Board(running["port"], f"{kind.description} (running, `boardnet sim stop {kind.name}` ends it)")
        return
    board = virtual.fresh(kind.name, form)
    url = board.start()
    try:
        if not kind.builds_firmware:
            deploy_micropython(form, url)
        yield Board(url, f"{kind.description} (fresh, for this command)", fresh=True)
    finally:
        board.stop()


def connect(board: Board, form: Form, *, baud: int = 115200, timeout: float = 5.0, start: bool = False,
            model_file: str = "MODEL.json") -> Link:
    """The handshaken link to `board`. A MicroPython board at its REPL is an error that says
    how to start its loop, or, with `start`, gets the loop it holds started (when it holds
    this model)."""
    try:
        return open_link(board.url, baud, timeout)
    except NotServing as e:
        if not start:
            hint = deploy_hint(model_file, board.url)
            raise BoardError(
                f"{e}. Start the loop it holds: boardnet check {shlex.quote(model_file)} --port "
                f"{shlex.quote(board.url)} --start; or deploy and start it at every boot: {hint} --autostart"
            ) from None
    start_deployed(form, board.url, baud)
    return open_link(board.url, baud, timeout)
