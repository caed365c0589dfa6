"""The boardnet wire protocol, version 1 (docs/protocol.md): encoders and parsers.

Pure functions on lines; session.py moves them over a port. What a request's values look
like is the model's form's business (forms.F32: 8 hex digits of float32 bits, most
significant first, `c0e00000` = -7.0; forms.Q15: decimal integers), so nothing is re-rounded
between host and board.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import BoardError
from ..forms import Form

PROTOCOL_VERSION = 1
ID_MAX = 65535
TIME_MAX = 100000
ERROR_CODES = ("count", "value", "nonfinite", "long", "bytes", "cmd", "range")


# ---- errors (all status 3: board or link trouble) ------------------------------------
class LinkError(BoardError):
    """The port or the board misbehaved."""


class LinkTimeout(LinkError):
    """No (complete) reply within the timeout."""


class BoardReset(LinkError):
    """The board restarted or crashed (READY, banner, traceback or a stale id mid-stream)."""


class NotServing(LinkError):
    """A MicroPython REPL answers instead of the serve loop: `what` it showed, on `url`."""

    def __init__(self, url: str, what: str, line: str) -> None:
        self.url, self.what, self.line = url, what, line
        super().__init__(
            f"the board on {url} is at the MicroPython REPL (it showed {what}: {line[:60]!r}): "
            "the boardnet serve loop is not running"
        )


class VersionMismatch(LinkError):
    """The board speaks a protocol version this host does not know."""


class ErrorReply(LinkError):
    """The board answered ERR to a request the host thought valid."""

    def __init__(self, code: str, message: str, request: str = "") -> None:
        self.code = code
        self.detail = message
        what = f" to {request!r}" if request else ""
        super().__init__(f"the board answered ERR {code} {message}{what}")


# ---- requests --------------------------------------------------------------------------
def encode_hello() -> bytes:
    # \r\n: a MicroPython REPL runs a line at \r (and then shows itself with a NameError);
    # the serve loops take \r\n as one line end
    return b"hello\r\n"


def encode_predict(rid: int, inputs: str) -> bytes:
    """`x <id> <inputs>`: the inputs as the model's form encodes them (forms.Form.encode:
    8 hex digits of float32 bits each, or decimal integers for integer models)."""
    if not 0 <= rid <= ID_MAX:
        raise ValueError(f"id {rid} outside 0..{ID_MAX}")
    return f"x {rid} {inputs}\n".encode("ascii")


def encode_time(n: int) -> bytes:
    if not 1 <= n <= TIME_MAX:
        raise ValueError(f"time n must be 1..{TIME_MAX}")
    return f"time {n}\n".encode("ascii")


# ---- replies ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BoardInfo:
    """What the board said in its hello (or READY) line."""

    proto: int
    runtime: str
    platform: str
    model: str
    fingerprint: str
    precision: str
    n_in: int
    n_out: int
    window: int
    line: int
    fields: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def float32_exact(self) -> bool:
        """The board computes in float32 with boardnet's sigmoid (0 ulp expected)."""
        return not (self.runtime == "micropython" and self.platform in DOUBLE_PLATFORMS)

    def describe(self) -> str:
        return (
            f"{self.runtime} on {self.platform}, model {self.model} (fingerprint {self.fingerprint}, "
            f"{self.precision}, {self.n_in} in, {self.n_out} out), window {self.window}"
        )


# MicroPython ports whose floats are C doubles (the WebAssembly virtual board; unix)
DOUBLE_PLATFORMS = ("webassembly", "linux", "darwin", "win32")


@dataclass(frozen=True)
class Prediction:
    rid: int
    words: tuple[str, ...]


@dataclass(frozen=True)
class TimeInfo:
    n: int
    total: float
    unit: str
    per: float


@dataclass(frozen=True)
class Err:
    code: str
    message: str


@dataclass(frozen=True)
class Ready:
    info: BoardInfo | None
    line: str


@dataclass(frozen=True)
class Crash:
    """A MicroPython banner, prompt or traceback: the serve loop is not (or no longer) running."""

    what: str
    line: str


@dataclass(frozen=True)
class Noise:
    line: str


_BANNER = re.compile(r"^(MicroPython v\d|MPY: soft reboot|raw REPL; CTRL-B|Type \"help\(\)\")")
_KV = re.compile(r"^([a-z_]+)=(\S*)$")


def parse_fields(words: list[str]) -> dict[str, str]:
    out = {}
    for w in words:
        m = _KV.match(w)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def board_info(fields: dict[str, str], line: str = "") -> BoardInfo:
    """BoardInfo from hello/READY fields; refuses an unknown protocol version."""
    try:
        proto = int(fields["proto"])
    except (KeyError, ValueError):
        raise LinkError(f"the board's hello carries no protocol version: {line!r}") from None
    if proto != PROTOCOL_VERSION:
        raise VersionMismatch(
            f"the board speaks boardnet protocol {proto}; this boardnet knows protocol "
            f"{PROTOCOL_VERSION} only: use the boardnet version that deployed the board, "
            "or deploy again with this one"
        )
    try:
        return BoardInfo(
            proto=proto,
            runtime=fields.get("runtime", "?"),
            platform=fields.get("platform", "?"),
            model=fields.get("model", "?"),
            fingerprint=fields.get("fp", "?"),
            precision=fields.get("precision", "f32"),
            n_in=int(fields["n_in"]),
            n_out=int(fields["n_out"]),
            window=max(1, int(fields.get("window", "1"))),
            line=int(fields.get("line", "256")),
            fields=dict(fields),
        )
    except (KeyError, ValueError):
        raise LinkError(f"the board's hello is incomplete: {line!r}") from None


def parse_line(line: str):
    """One reply line -> Prediction | BoardInfo | TimeInfo | Err | Ready | Crash | Noise."""
    text = line.strip("\r\n").strip("\x00")
    words = text.split()
    if not words:
        return Noise(text)
    head = words[0]
    if head == "OK" and len(words) >= 2:
        if words[1] == "hello":
            return board_info(parse_fields(words[2:]), text)
        if words[1] == "time":
            f = parse_fields(words[2:])
            try:
                return TimeInfo(int(f["n"]), float(f["total"]), f.get("unit", "us"), float(f["per"]))
            except (KeyError, ValueError):
                return Noise(text)
        if words[1].isdigit():
            return Prediction(int(words[1]), tuple(words[2:]))
        return Noise(text)
    if head == "ERR":
        return Err(words[1] if len(words) > 1 else "?", " ".join(words[2:]))
    if head == "READY":
        try:
            return Ready(board_info(parse_fields(words[1:]), text), text)
        except VersionMismatch:
            raise
        except LinkError:
            return Ready(None, text)
    if text.startswith(">>>") or text.startswith("Traceback (most recent call last)"):
        return Crash("a MicroPython prompt" if text.startswith(">>>") else "a traceback", text)
    if _BANNER.match(text):
        return Crash("the MicroPython banner", text)
    return Noise(text)


def decode_outputs(form: Form, words: tuple[str, ...], n_out: int) -> np.ndarray:
    """The output words of a machine reply -> the form's board outputs (n_out,)."""
    if len(words) != n_out:
        raise LinkError(f"the board sent {len(words)} outputs, the model has {n_out}: {' '.join(words)!r}")
    try:
        return form.decode(words)
    except ValueError:
        raise LinkError(
            f"the board sent outputs that are not {form.wire_values}: {' '.join(words)!r}"
        ) from None
