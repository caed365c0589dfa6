"""A conversation with a board that runs a boardnet serve loop (docs/protocol.md, docs/serial.md).

Every port is opened with pyserial's `serial_for_url`, so device names, `socket://`,
`rfc2217://` and `loop://` all work. Nothing here waits without a deadline, and nothing here
sends 0x03: Ctrl-C would stop the serve loop (that byte belongs to mpremote and to people).
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import numpy as np
import serial
import serial.rfc2217

from ..errors import BoardError, UsageError
from ..forms import Form
from . import protocol as P

DEFAULT_TIMEOUT = 5.0
# An ESP32 dev board resets when DTR/RTS change on open; its boot (ROM, MicroPython,
# main.py) takes about a second before the serve loop says READY.
BOOT_GRACE = 2.5
HOST_WINDOW_MAX = 64


def _check_url(url: str) -> None:
    """Refuse a malformed URL with what is wrong with it (pyserial's own messages for some
    of these are garbled, and spy:// cannot wrap another URL)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return  # a device name
    if scheme == "spy" and "://" in rest:
        raise UsageError(f"--port {url}: spy:// wraps a serial device (spy:///dev/ttyACM0?file=wire.txt), "
                         "not another URL")
    if scheme in ("socket", "rfc2217"):
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not parts.hostname or port is None or not 0 < port < 65536:
            raise UsageError(f"--port {url}: expected {scheme}://HOST:PORT with PORT in 1..65535")


def _cause(text: str) -> str:
    """What went wrong in a pyserial message, without its "could not open port X:" wrapping."""
    found = re.findall(r"\[Errno -?\d+\] ([^\[]+?)(?::|$)", text)
    return found[-1].strip().lower() if found else text


def open_serial(url: str, baud: int = 115200, read_timeout: float = 0.05) -> serial.SerialBase:
    """Open a pyserial port with DTR and RTS asserted; BoardError (status 3) when it cannot,
    UsageError (2) for a URL that names no port."""
    _check_url(url)
    try:
        ser = serial.serial_for_url(url, do_not_open=True)
    except (serial.SerialException, ValueError) as e:
        raise UsageError(f"--port {url}: {e}") from None
    ser.baudrate = baud
    ser.timeout = read_timeout
    # pyserial's RFC 2217 client has no write timeout (its writes go to a TCP socket, which
    # the server drains as the board reads); every other port gets one
    ser.write_timeout = None if isinstance(ser, serial.rfc2217.Serial) else DEFAULT_TIMEOUT
    # The Pico's USB CDC sends nothing until the host asserts DTR; set both lines before open
    # so that they do not toggle afterwards (a toggle resets ESP32 boards).
    ser.dtr = True
    ser.rts = True
    if hasattr(ser, "exclusive") and "://" not in url:
        ser.exclusive = True  # a second program on the port would steal replies
    try:
        ser.open()
    except serial.SerialException as e:
        text = str(e)
        if "exclusively lock" in text or "[Errno 16]" in text or "[Errno 11]" in text:
            raise BoardError(
                f"port {url} is busy: another program (mpremote, a terminal) has it open"
            ) from None
        if "://" not in url and ("[Errno 2]" in text or "No such file" in text):
            raise BoardError(
                f"cannot open port {url}: no such device (is the board plugged in? "
                "`boardnet boards` lists ports)"
            ) from None
        raise BoardError(f"cannot open port {url}: {_cause(text)}") from None
    except (ValueError, OSError) as e:
        raise BoardError(f"cannot open port {url}: {_cause(str(e))}") from None
    return ser


class Link:
    """A handshaken conversation with a serve loop. Use `open_link`."""

    def __init__(self, ser: serial.SerialBase, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.ser = ser
        self.url = url
        self.timeout = timeout
        self.info: P.BoardInfo | None = None
        self._buf = bytearray()
        self._next_id = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    # ---- bytes and lines ---------------------------------------------------------------
    def write(self, data: bytes) -> None:
        try:
            self.ser.write(data)
        except serial.SerialTimeoutException:
            raise P.LinkTimeout(f"the board on {self.url} stopped taking input") from None
        except (serial.SerialException, OSError) as e:
            raise P.LinkError(f"writing to {self.url} failed: {e} (board unplugged?)") from None
        self.bytes_sent += len(data)

    def _fill(self) -> bool:
        try:
            waiting = self.ser.in_waiting
            data = self.ser.read(max(1, waiting))
        except (serial.SerialException, OSError) as e:
            raise P.LinkError(f"reading from {self.url} failed: {e} (board unplugged?)") from None
        if data:
            self._buf += data
            self.bytes_received += len(data)
            return True
        return False

    def readline(self, deadline: float) -> str | None:
        """The next line (without its end), or None when the deadline passes first."""
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                raw = bytes(self._buf[:i])
                del self._buf[: i + 1]
                return raw.decode("ascii", "replace").rstrip("\r")
            # a prompt has no line end: report it as a line of its own
            if self._buf.startswith(b">>> ") or self._buf.endswith(b"\r\n>"):
                raw = bytes(self._buf)
                self._buf.clear()
                return raw.decode("ascii", "replace").strip()
            if time.monotonic() >= deadline:
                return None
            self._fill()

    def drain(self, quiet: float = 0.15, limit: float = 1.0) -> list[str]:
        """Read until the port has been quiet for `quiet` s (at most `limit` s); the lines."""
        lines: list[str] = []
        end = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet:
            if self._fill():
                last = time.monotonic()
        while b"\n" in self._buf:
            i = self._buf.find(b"\n")
            lines.append(bytes(self._buf[:i]).decode("ascii", "replace").rstrip("\r"))
            del self._buf[: i + 1]
        return lines

    # ---- handshake ---------------------------------------------------------------------
    def hello(self, timeout: float | None = None) -> P.BoardInfo:
        """Ask who is there; skip echo and noise; refuse a REPL or an unknown protocol."""
        timeout = self.timeout if timeout is None else timeout
        start = time.monotonic()
        deadline = start + timeout
        # "\r\n" first ends any partial line the board holds (its ERR is skipped below)
        self.write(b"\r\n" + P.encode_hello())
        resend = start + 1.0  # a board that was booting may have missed it
        crash: P.Crash | None = None
        seen: list[str] = []
        tries = 1
        while True:
            line = self.readline(min(deadline, resend))
            now = time.monotonic()
            if line is None:
                if now >= deadline:
                    break
                if crash is None:
                    # A board left in the raw REPL (an mpremote that was stopped) echoes
                    # nothing and runs nothing: Ctrl-B takes it to the friendly REPL, which
                    # shows itself. A serve loop answers that byte with an ERR, skipped.
                    quiet = not seen and not self._buf and tries == 1
                    self.write((b"\x02\r\n" if quiet else b"") + P.encode_hello())
                    tries += 1
                resend = now + 1.0
                continue
            if line.strip():
                seen.append(line)
            item = P.parse_line(line)
            if isinstance(item, P.BoardInfo):
                self.info = item
                return item
            if isinstance(item, P.Crash):
                crash = item
                # the REPL will answer the hello with a NameError and a prompt: wait a moment
                deadline = min(deadline, now + 0.5)
        if crash is not None:
            raise P.NotServing(self.url, crash.what, crash.line)
        said = f"; it said {seen[-1][:60]!r}" if seen else ", not a byte"
        raise P.LinkTimeout(
            f"no hello reply from {self.url} within {timeout:g} s{said}. Is a boardnet serve loop "
            "running there (and the baud rate right)?"
        )

    # ---- predictions -------------------------------------------------------------------
    @property
    def window(self) -> int:
        assert self.info is not None
        return max(1, min(self.info.window, HOST_WINDOW_MAX))

    def _take_id(self) -> int:
        rid = self._next_id
        self._next_id = (rid + 1) % (P.ID_MAX + 1)
        return rid

    def predict_many(
        self,
        form: Form,
        Xb: np.ndarray,
        window: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Board outputs for board inputs Xb (n, n_in) of the model's `form`: (n, n_out).

        Keeps up to `window` requests unanswered (the board's advertised window by default;
        1 = one at a time) and matches each reply to its request by id; a reply out of
        order, an ERR, a READY line, a banner or a traceback stops everything with a
        BoardError, so nothing after a reset is ever counted.
        """
        if self.info is None:
            self.hello()
        info = self.info
        assert info is not None
        Xb = np.atleast_2d(np.asarray(Xb))  # (n, n_in)
        if Xb.shape[1] != info.n_in:
            raise BoardError(f"the board's model takes {info.n_in} inputs, not {Xb.shape[1]}")
        n = len(Xb)
        Y = np.zeros((n, info.n_out), dtype=form.dtype)  # (n, n_out)
        window = self.window if window is None else max(1, min(window, self.window))
        pending: deque[tuple[int, int]] = deque()  # (id, row)
        sent = done = 0
        deadline = time.monotonic() + self.timeout
        while done < n:
            # refill when half the window is free: fewer, larger writes for the board to take
            if sent < n and len(pending) <= window // 2:
                chunk = []
                while sent < n and len(pending) < window:
                    rid = self._take_id()
                    chunk.append(P.encode_predict(rid, form.encode(Xb[sent])))
                    pending.append((rid, sent))
                    sent += 1
                self.write(b"".join(chunk))
            line = self.readline(deadline)
            if line is None:
                raise P.LinkTimeout(
                    f"no reply from the board on {self.url} within {self.timeout:g} s "
                    f"({done} of {n} predictions answered, {len(pending)} waiting)"
                )
            item = P.parse_line(line)
            if isinstance(item, P.Prediction):
                rid, row = pending[0]
                if item.rid != rid:
                    raise P.BoardReset(
                        f"the board answered id {item.rid} where id {rid} was due ({done} of {n} "
                        "answered): a line was lost or the board restarted; nothing after it is counted"
                    )
                Y[row] = P.decode_outputs(form, item.words, info.n_out)
                pending.popleft()
                done += 1
                deadline = time.monotonic() + self.timeout
                if progress is not None:
                    progress(1)
            elif isinstance(item, P.Err):
                rid, row = pending[0]
                raise P.ErrorReply(item.code, item.message, f"x {rid} ... (row {row})")
            elif isinstance(item, (P.Ready, P.Crash)):
                what = "printed READY" if isinstance(item, P.Ready) else f"showed {item.what}"
                raise P.BoardReset(
                    f"the board on {self.url} {what} after {done} of {n} predictions: it restarted "
                    f"or crashed ({line[:60]!r}); nothing after it is counted"
                )
            # BoardInfo (a late hello reply), echoes and noise: skipped
        return Y

    def predict(self, form: Form, xb: np.ndarray) -> np.ndarray:
        return self.predict_many(form, np.atleast_2d(xb), window=1)[0]

    def request(self, text: str, timeout: float | None = None) -> str:
        """Send one line as typed (human form) and return the reply line."""
        self.write(text.strip().encode("ascii", "replace") + b"\n")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            line = self.readline(deadline)
            if line is None:
                raise P.LinkTimeout(f"no reply from the board on {self.url} to {text!r}")
            if line.startswith(("OK", "ERR")):
                return line
            item = P.parse_line(line)
            if isinstance(item, (P.Ready, P.Crash)):
                raise P.BoardReset(f"the board on {self.url} restarted ({line[:60]!r})")

    def time_per_inference(self, n: int | None = None, target_seconds: float = 0.3) -> P.TimeInfo:
        """On-device time per inference, from the board's own clock.

        Without `n`, runs grow tenfold until the board's clock has moved at least 20 ms
        (`ticks_us` moves in 1 ms steps on some builds), then one run sized to take about
        `target_seconds` gives the figure.
        """
        if n is not None:
            return self._time(n, self.timeout + n * 0.01)
        n, budget = 10, self.timeout
        while True:
            probe = self._time(n, budget)
            if probe.total >= 20000 or n >= P.TIME_MAX:
                break
            per_s = max(probe.total, 1000.0) / n * 1e-6  # at most one clock step per run
            n = min(P.TIME_MAX, n * 10)
            budget = self.timeout + 3 * n * per_s
        per_s = probe.total / probe.n * 1e-6
        final = int(min(P.TIME_MAX, max(probe.n, target_seconds / max(per_s, 1e-9))))
        if final <= probe.n:
            return probe
        return self._time(final, self.timeout + 3 * final * per_s)

    def _time(self, n: int, timeout: float) -> P.TimeInfo:
        self.write(P.encode_time(n))
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(deadline)
            if line is None:
                raise P.LinkTimeout(
                    f"no reply to `time {n}` from the board on {self.url} within {timeout:.3g} s"
                )
            item = P.parse_line(line)
            if isinstance(item, P.TimeInfo):
                return item
            if isinstance(item, P.Err):
                raise P.ErrorReply(item.code, item.message, f"time {n}")
            if isinstance(item, (P.Ready, P.Crash)):
                raise P.BoardReset(f"the board on {self.url} restarted during `time {n}` ({line[:60]!r})")

    # ---- closing -----------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.ser.close()
        except Exception:  # closing a vanished port must not hide the real error
            pass

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_link(
    port: str,
    baud: int = 115200,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    handshake: bool = True,
    boot_grace: float = BOOT_GRACE,
) -> Link:
    """Open `port` (a pyserial URL or device name), drain any boot output, say hello.

    An ESP32 dev board resets when the port opens; its boot output and READY line are
    drained before the handshake, and the hello is repeated until the loop answers.
    """
    ser = open_serial(port, baud)
    link = Link(ser, port, timeout)
    try:
        lines = link.drain(quiet=0.1, limit=0.5)
        if any(line.startswith(("ets ", "rst:", "ESP-ROM", "boot:")) for line in lines):
            # an ESP32 is booting: wait for its READY (or the REPL) before saying hello
            lines += link.drain(quiet=0.5, limit=boot_grace)
        for line in lines:
            if line.startswith("READY"):
                P.parse_line(line)  # refuses an unknown protocol version early
        if handshake:
            link.hello()
    except BaseException:
        link.close()
        raise
    return link
