# boardnet serve loop: answers the boardnet wire protocol v1 (docs/protocol.md) on stdin/stdout.
#
# On a board, main.py runs it:   import boardnet_serve; boardnet_serve.main()
# It imports the generated model module (default `boardnet_model`, the name deploy
# gives it), prints `READY ...`, then answers one reply line per request line, forever.
# Ctrl-C (0x03) raises KeyboardInterrupt, which is let through so the REPL (and
# mpremote) can always take over. Every other input gets a reply or ERR.
#
# Runs on stock MicroPython (rp2, esp32, the webassembly virtual board) and under
# CPython for the unit tests. The C firmware (firmware/core/boardnet_serve.c) answers
# every line with the same bytes: docs/protocol.md has the grammar both follow.
#
# Machine requests (`x ...`) take a fast path: the line is read whole by readline and
# split and hex-converted in C (`bytes.split`, `binascii.unhexlify`/`hexlify`), which is
# what makes the loop fast enough; a request that is not a clean machine line is decided
# again on the slow path, byte by byte, which alone decides errors. The request loop
# allocates little, but MicroPython boxes every float, so garbage is unavoidable: the
# loop runs in steps (Server.step) that return between requests, where the virtual
# board collects it (serve()).

import sys

try:
    import struct
    from binascii import hexlify, unhexlify
except ImportError:  # very old MicroPython
    import ustruct as struct
    from ubinascii import hexlify, unhexlify

try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython (unit tests)
    from time import perf_counter_ns

    def ticks_us():
        return perf_counter_ns() // 1000

    def ticks_diff(a, b):
        return a - b


PROTO = 1
RUNTIME = "micropython"
# Bytes the port can hold for us while we compute. USB CDC on the rp2 has flow control
# (256-byte TinyUSB FIFO, the host's writes just wait); the ESP32's UART REPL buffer and
# USB-UART bridges have none, so the window must fit in it. The virtual board's ring is
# 1 MiB, but a window beyond WINDOW_MAX buys no speed and makes a reset lose more.
RX_BUFFER = {"rp2": 256, "esp32": 256, "webassembly": 4096}
RX_BUFFER_DEFAULT = 256
WINDOW_MAX = 32
MIN_LINE = 256
TIME_MAX = 100000
ID_MAX = 65535
# A step returns after this many requests, or after TIME_SLICE_US of a `time` run: the
# virtual board collects garbage only between steps (serve()), so these bound the heap
# that one step can fill (about 1.5 KB per request of a 2-2-1 model, 50-100 MB/s in
# `time`) and the pause a collect adds at most once per step (docs/serial.md).
STEP_REQUESTS = 32
TIME_SLICE_US = 4000
TIME_GROUP_MAX = 64  # inferences between clock reads in `time`

BS = 8
DEL = 127


class BadRequest(Exception):
    pass


def _token_name(text):
    # a model name as one printable token (names come from users)
    out = ""
    for ch in str(text):
        o = ord(ch)
        out += ch if 33 <= o <= 126 and ch != "=" else "_"
    return out or "model"


def _bad(c):
    # outside the line grammar: not printable ASCII, not tab (line ends never reach a line)
    return (c < 32 and c != 9) or c > 126


def _ascii(t):
    return t[:16].decode()


# ---- numbers as text, exactly (the C core's boardnet_text.c, in Python integers) -------
# MicroPython's float() and '{:.9g}' are not correctly rounded on every port (micropython
# issue 13094) and accept forms the C core does not (`1_000`, `.`); these are exact, so
# both runtimes turn the same text into the same float32 and back into the same text.
NONFINITE_WORDS = (b"nan", b"inf", b"infinity")


def _digits(t, i, n):
    j = i
    while j < n and 48 <= t[j] <= 57:
        j += 1
    return j


def decimal_f32(t):
    """Decimal text (bytes) -> the nearest float32's bits (ties to even); raises
    BadRequest "value" for anything outside the grammar of docs/protocol.md and
    "nonfinite" for nan/inf/infinity and values beyond the largest float32."""
    n = len(t)
    i = 0
    sign = 0
    if n and (t[0] == 43 or t[0] == 45):  # + -
        sign = 0x80000000 if t[0] == 45 else 0
        i = 1
    if t[i:].lower() in NONFINITE_WORDS:
        raise BadRequest("nonfinite NaN or infinity in the input")
    j = _digits(t, i, n)
    whole = t[i:j]
    frac = b""
    if j < n and t[j] == 46:  # .
        k = _digits(t, j + 1, n)
        frac = t[j + 1 : k]
        j = k
    if not whole and not frac:
        raise BadRequest("value %s is not a number" % _ascii(t))
    exp = 0
    if j < n and (t[j] == 101 or t[j] == 69):  # e E
        j += 1
        neg = j < n and t[j] == 45
        if j < n and (t[j] == 43 or t[j] == 45):
            j += 1
        k = _digits(t, j, n)
        if k == j:
            raise BadRequest("value %s is not a number" % _ascii(t))
        ed = t[j:k].lstrip(b"0") or b"0"
        exp = int(ed) if len(ed) <= 7 else 10**7  # beyond 10^7 it over- or underflows anyway
        if neg:
            exp = -exp
        j = k
    if j != n:
        raise BadRequest("value %s is not a number" % _ascii(t))
    digits = (whole + frac).lstrip(b"0")
    if not digits:
        return sign  # +-0
    d = int(digits)
    e10 = exp - len(frac)  # value = d * 10^e10
    top = len(digits) + e10  # 10^(top-1) <= value < 10^top
    if top <= -46:
        return sign  # below 1e-46, under half the smallest subnormal (2^-150): +-0
    if top - 1 >= 39:
        raise BadRequest("nonfinite %s overflows float32" % _ascii(t))
    num, den = (d * 10**e10, 1) if e10 >= 0 else (d, 10**-e10)
    # 2^23 <= value / 2^e2 < 2^24: start from log2(10) ~ 3.3219 and correct
    e2 = (top - 1) * 33219 // 10000 - 23
    while True:
        a, b = (num, den << e2) if e2 >= 0 else (num << -e2, den)
        if a >= b << 24:
            e2 += 1
        elif a < b << 23:
            e2 -= 1
        else:
            break
    if e2 < -149:  # subnormal: a fixed exponent, fewer bits
        e2 = -149
        a, b = (num << 149, den)
    q, r = divmod(a, b)
    if 2 * r > b or (2 * r == b and q & 1):
        q += 1
        if q == 1 << 24:
            q >>= 1
            e2 += 1
    if e2 > 104:  # 2^24 * 2^104 = 2^128: beyond the largest float32
        raise BadRequest("nonfinite %s overflows float32" % _ascii(t))
    if q < 1 << 23:
        return sign | q  # subnormal (or the smallest normal, reached by rounding up)
    return sign | ((e2 + 150) << 23) | (q & 0x7FFFFF)


def g9(bits):
    """float32 bits -> Python's '{:.9g}' text of that float32, exactly."""
    sign = "-" if bits >> 31 else ""
    field = (bits >> 23) & 0xFF
    m = bits & 0x7FFFFF
    if field == 0xFF:
        return "nan" if m else sign + "inf"
    if field:
        m |= 0x800000
        e = field - 150
    else:
        e = -149
    if m == 0:
        return sign + "0"
    # exact value = int(s) * 10^k
    if e >= 0:
        s = str(m << e)
        k = 0
    else:
        s = str(m * 5**-e)
        k = e
    x = len(s) - 1 + k  # decimal exponent of the first digit
    if len(s) > 9:  # round to 9 significant digits, half to even
        head = int(s[:9])
        rest = s[9:]
        if rest[0] > "5" or (rest[0] == "5" and (rest[1:].strip("0") or head & 1)):
            head += 1
            if head == 1000000000:
                head = 100000000
                x += 1
        s = str(head)
    s = s.rstrip("0") or "0"
    if -4 <= x < 9:
        if x >= 0:
            if len(s) <= x + 1:
                return sign + s + "0" * (x + 1 - len(s))
            return sign + s[: x + 1] + "." + s[x + 1 :]
        return sign + "0." + "0" * (-x - 1) + s
    mant = s[0] + ("." + s[1:] if len(s) > 1 else "")
    return sign + mant + ("e-" if x < 0 else "e+") + ("0" if -10 < x < 10 else "") + str(abs(x))


def _int16(t):
    # machine-form integer input: [+-]digits in int16 range (never saturated, so the
    # host's expectation stays exact: docs/integer-models.md)
    body = t[1:] if t[:1] == b"+" or t[:1] == b"-" else t
    if not body or not body.isdigit():
        raise BadRequest("value not a decimal integer")
    body = body.lstrip(b"0") or b"0"
    v = int(body) if len(body) <= 5 else 1 << 20  # more digits: out of range anyway
    if t[:1] == b"-":
        v = -v
    if not -32768 <= v <= 32767:
        raise BadRequest("value integer input outside int16")
    return v


class Server:
    def __init__(self, model, stdin=None, stdout=None, platform=None):
        self.model = model
        self.n_in = int(model.N_IN)
        self.n_out = int(model.N_OUT)
        self.integer = str(getattr(model, "PRECISION", "f32")) != "f32"
        self.platform = platform or sys.platform
        self.stdin = stdin if stdin is not None else getattr(sys.stdin, "buffer", sys.stdin)
        self.stdout = stdout if stdout is not None else getattr(sys.stdout, "buffer", sys.stdout)
        self._flush = getattr(self.stdout, "flush", None)
        self._read = self.stdin.readinto
        self._readline = getattr(self.stdin, "readline", None) or self._readline_bytewise
        # longest machine request: "x 65535" + " hhhhhhhh" per input
        longest = 7 + 9 * self.n_in
        if self.integer:
            longest = 7 + 12 * self.n_in
        self.line_max = max(MIN_LINE, 24 * self.n_in + 16)
        rx = RX_BUFFER.get(self.platform, RX_BUFFER_DEFAULT)
        self.window = max(1, min(WINDOW_MAX, rx // (longest + 1)))
        self.line = bytearray(self.line_max)
        self.byte = bytearray(1)
        self.byte_mv = memoryview(self.byte)
        self.linemv = memoryview(self.line)
        self.word = bytearray(4)
        self.in_format = ">%df" % self.n_in  # input float32 bits, big-endian
        self.outw = bytearray(4 * self.n_out)  # output float32 bits, big-endian
        self.x = [0.0] * self.n_in
        self.y = [0.0] * self.n_out
        # the line being assembled (slow path); a step always ends at a line end
        self.n = 0  # bytes kept
        self.overlong = False
        self.machine = False  # its first byte is "x": no Backspace editing
        self.after_cr = False  # the last byte was \r: a \n now ends nothing
        self.timing = None  # a `time` run in progress: [left, total, last tick, n, group]
        self.pending = b""  # bytes already read that wait for a `time` run to end
        fields = (
            "proto=%d runtime=%s platform=%s model=%s fp=%s precision=%s n_in=%d n_out=%d "
            "window=%d line=%d"
            % (
                PROTO, RUNTIME, _token_name(self.platform), _token_name(getattr(model, "NAME", "model")),
                _token_name(getattr(model, "FINGERPRINT", "unknown")),
                _token_name(getattr(model, "PRECISION", "f32")),
                self.n_in, self.n_out, self.window, self.line_max,
            )
        )
        self.ready_line = ("READY " + fields + "\r\n").encode()
        self.hello_line = ("OK hello " + fields + "\r\n").encode()

    # ---- output --------------------------------------------------------------------------
    def write(self, data):
        self.stdout.write(data)
        if self._flush is not None:
            self._flush()

    def err(self, code, message):
        self.write(("ERR %s %s\r\n" % (code, message)).encode())

    # ---- the loop ------------------------------------------------------------------------
    def serve(self):
        """Print READY, then answer requests until stdin ends (never, on a board)."""
        self.write(self.ready_line)
        try:
            # The virtual board (host/boardnet/virtual/node/board.mjs) collects garbage only when
            # control returns to it, never while Python runs: it takes the loop over and
            # calls step() itself, and this call returns.
            from _boardnet_board import loop
        except ImportError:
            loop = None
        if loop is not None and loop(self.step):
            return
        while self.step():
            pass

    def step(self):
        """Answer up to STEP_REQUESTS requests (or a slice of a `time` run); False once
        stdin has ended."""
        if self.timing is not None:
            self._time_slice()
            return True
        answered = 0
        if self.pending:
            data = self.pending
            self.pending = b""
            answered = self._feed(data)
            if self.timing is not None:
                return True
        read = self._read
        mv = self.byte_mv
        byte = self.byte
        while answered < STEP_REQUESTS:
            if not read(mv):
                return False  # end of input (CPython; a board's stdin never ends)
            c = byte[0]
            if c == 120 and self.n == 0:
                # "x" first: a machine request. readline collects it in C, up to its \n;
                # byte by byte in Python costs ~10 us a byte on a board.
                rest = self._readline(self.line_max)
                if rest[-1:] == b"\n":
                    body = rest[:-2] if rest[-2:] == b"\r\n" else rest[:-1]
                    if b"\r" not in body:
                        self.after_cr = False
                        self._machine_line(b"x" + body)
                        answered += 1
                        continue
                # over the line limit, a bare \r inside or the end of input: byte by byte
                answered += self._feed(b"x" + rest)
            else:
                answered += self._byte(c)
            if self.timing is not None:
                return True
        return True

    def _feed(self, data):
        # bytes through the slow path; those after a `time` request wait for its reply
        answered = 0
        for i in range(len(data)):
            answered += self._byte(data[i])
            if self.timing is not None:
                self.pending = data[i + 1 :]
                break
        return answered

    def _readline_bytewise(self, limit):
        # for a stream without readline: up to `limit` bytes, through the first \n
        out = bytearray()
        while len(out) < limit and self._read(self.byte_mv):
            out.append(self.byte[0])
            if self.byte[0] == 10:
                break
        return bytes(out)

    def _byte(self, c):
        """One byte of the slow path; 1 when it ended a line that got a reply."""
        n = self.n
        if c == 10 or c == 13:
            if c == 10 and self.after_cr:  # \r\n is one line end
                self.after_cr = False
                return 0
            self.after_cr = c == 13
            overlong = self.overlong
            self.n = 0
            self.overlong = False
            return self._decide(None if overlong else bytes(self.linemv[:n]))
        self.after_cr = False
        if c == 3:
            # Ctrl-C reaches us only where the port does not intercept it (CPython,
            # kbd_intr(-1)); it keeps its meaning: stop and return to the REPL.
            raise KeyboardInterrupt
        if (c == BS or c == DEL) and not (n and self.machine):
            # a person's terminal editing the line: delete the byte before, if any
            # (machine lines are never edited; a line over the limit stays discarded)
            if n and not self.overlong:
                self.n = n - 1
            return 0
        if n < self.line_max:
            if n == 0:
                self.machine = c == 120
            self.line[n] = c
            self.n = n + 1
        else:
            self.overlong = True
        return 0

    def _decide(self, data):
        """A complete line (None: it went over the limit), in the order every runtime
        decides it (docs/protocol.md): long, bytes, blank, then the request's own checks.
        1 when it got a reply."""
        try:
            if data is None:
                self.err("long", "line over %d bytes discarded" % self.line_max)
                return 1
            for c in data:
                if _bad(c):
                    self.err("bytes", "binary or control bytes in the line")
                    return 1
            return self.handle_bytes(data)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # never die on input: every request gets a reply
            self.err("value", "%s: %s" % (type(e).__name__, e))
            return 1

    # ---- machine lines: the fast path ----------------------------------------------------
    def _machine_line(self, data):
        """A whole line that starts with "x", without its line end and without \r."""
        try:
            rid = self._parse_fast(data)
        except KeyboardInterrupt:
            raise
        except Exception:
            rid = None
        if rid is None:
            # not a clean machine request: byte by byte, as any other line
            self._feed(data + b"\n")
            return
        try:
            self._reply_machine(rid)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # never die on input: every request gets a reply
            self.err("value", "%s: %s" % (type(e).__name__, e))

    def _parse_fast(self, data):
        """The id of a request written as the host writes it ("x id v v ...", single
        spaces), its inputs stored; None for anything else, even a valid request written
        otherwise, and then nothing is stored."""
        toks = data.split(b" ")
        if len(toks) != 2 + self.n_in or toks[0] != b"x":
            return None
        rid = toks[1]
        if not rid.isdigit() or len(rid) > 5 or int(rid) > ID_MAX:
            return None
        if self.integer:
            values = [_int16(t) for t in toks[2:]]
        else:
            hexes = toks[2:]
            for t in hexes:
                if len(t) != 8:
                    return None
            words = unhexlify(b"".join(hexes))  # one call for all inputs, in C
            for i in range(0, len(words), 4):
                if (words[i] & 0x7F) == 0x7F and (words[i + 1] & 0x80):  # exponent all ones
                    return None
            values = struct.unpack(self.in_format, words)
        x = self.x
        for i in range(self.n_in):
            x[i] = values[i]
        return rid

    def _reply_machine(self, rid):
        y = self.model.predict(self.x, self.y)
        if y is None:
            y = self.y
        if self.integer:
            self.write(b"OK " + rid + (" %s\r\n" % " ".join("%d" % v for v in y)).encode())
            return
        # "OK <id>" then " hhhhhhhh" per output: float32 bits, most significant first
        words = self.outw
        for i in range(self.n_out):
            struct.pack_into(">f", words, 4 * i, y[i])
        h = hexlify(words)
        if self.n_out == 1:
            self.write(b"OK " + rid + b" " + h + b"\r\n")
        else:
            words = b" ".join([h[8 * i : 8 * i + 8] for i in range(self.n_out)])
            self.write(b"OK " + rid + b" " + words + b"\r\n")

    # ---- one request ---------------------------------------------------------------------
    def handle_bytes(self, data):
        """A line of printable ASCII and tabs: its reply; 0 when it is blank (no reply)."""
        toks = data.replace(b",", b" ").split()  # spaces, tabs, commas; split in C
        if not toks:
            return 0  # blank line: no reply (people press Enter)
        head = toks[0]
        if head == b"x" or head == b"X":
            self.predict_machine(toks)
            return 1
        word = head.lower()
        if word == b"hello" or word == b"?":
            if len(toks) != 1:
                self.err("count", "hello takes no arguments")
            else:
                self.write(self.hello_line)
        elif word == b"time":
            self.time(toks)
        elif 48 <= head[0] <= 57 or head[0] in b"+-.":
            self.predict_human(toks)
        else:
            self.err("cmd", "unknown command %s (try hello)" % _ascii(word))
        return 1

    def _fail(self, e, rid=None):
        code, _, message = str(e).partition(" ")
        if rid is not None:
            message = "id %s: %s" % (rid.decode(), message)
        self.err(code, message)

    def predict_machine(self, toks):
        """x <id> <v> ...: every check in order, each value before the next (docs/protocol.md)."""
        rid = None
        try:
            if len(toks) < 2:
                raise BadRequest("count x takes an id and %d values" % self.n_in)
            if not toks[1].isdigit() or len(toks[1]) > 5:
                raise BadRequest("value the id is a decimal 0..65535")
            rid = toks[1]
            if int(rid) > ID_MAX:
                raise BadRequest("range id over 65535")
            if len(toks) != 2 + self.n_in:
                raise BadRequest("count expected %d values, got %d" % (self.n_in, len(toks) - 2))
            values = []
            for t in toks[2:]:
                if self.integer:
                    values.append(_int16(t))
                    continue
                if len(t) != 8:
                    raise BadRequest("value inputs are 8 hex digits of float32 bits")
                try:
                    w = unhexlify(t)
                except ValueError:  # binascii.Error is a ValueError
                    raise BadRequest("value inputs are 8 hex digits of float32 bits")
                if (w[0] & 0x7F) == 0x7F and (w[1] & 0x80):
                    raise BadRequest("nonfinite NaN or infinity in the input")
                values.append(struct.unpack(">f", w)[0])
        except BadRequest as e:
            self._fail(e, rid)
            return
        # stored only now: a bad request leaves the last input (what `time` runs on) as it was
        for i in range(self.n_in):
            self.x[i] = values[i]
        self._reply_machine(rid)

    def predict_human(self, toks):
        if len(toks) != self.n_in:
            self.err("count", "expected %d values, got %d" % (self.n_in, len(toks)))
            return
        values = []
        for t in toks:
            if self.integer:
                # integer models parse raw units with the model's own exact parser
                try:
                    values.append(self.model.parse(len(values), t.decode()))
                except ValueError:
                    self.err("value", "%s is not a number" % _ascii(t))
                    return
                continue
            try:
                bits = decimal_f32(t)
            except BadRequest as e:
                self._fail(e)
                return
            struct.pack_into(">I", self.word, 0, bits)
            values.append(struct.unpack_from(">f", self.word, 0)[0])  # the model sees float32
        x = self.x
        for i in range(self.n_in):
            x[i] = values[i]
        y = self.model.predict(x, self.y)
        if y is None:
            y = self.y
        if self.integer:
            parts = ["%d" % v for v in y]
        else:
            parts = []
            for v in y:
                struct.pack_into(">f", self.word, 0, v)
                parts.append(g9(struct.unpack_from(">I", self.word, 0)[0]))
        self.write(("OK " + " ".join(parts) + "\r\n").encode())

    # ---- time ----------------------------------------------------------------------------
    def time(self, toks):
        if len(toks) != 2:
            self.err("count", "time takes n (1..%d)" % TIME_MAX)
            return
        t = toks[1]
        if not t.isdigit() or len(t) > 6:
            self.err("value", "time takes a decimal n (1..%d)" % TIME_MAX)
            return
        count = int(t)
        if not 1 <= count <= TIME_MAX:
            self.err("range", "time n must be 1..%d" % TIME_MAX)
            return
        self.timing = [count, 0, ticks_us(), count, 1]
        self._time_slice()

    def _time_slice(self):
        # Inferences in groups between clock reads, the group doubled while a group takes
        # under 1/8 of the slice (the clock moves in whole ms on some builds); the slice
        # ends after TIME_SLICE_US, and the run goes on in the next step. The differences
        # are summed, so the clock may wrap between slices.
        left, total, last, count, group = self.timing
        predict = self.model.predict
        x = self.x
        y = self.y
        spent = 0
        while left and spent < TIME_SLICE_US:
            k = group if group < left else left
            for _ in range(k):
                predict(x, y)
            left -= k
            now = ticks_us()
            d = ticks_diff(now, last)
            last = now
            total += d
            spent += d
            if d < TIME_SLICE_US // 8 and group < TIME_GROUP_MAX:
                group *= 2
        if left:
            self.timing = [left, total, last, count, group]
            return
        self.timing = None
        per_milli = (total * 1000 + count // 2) // count  # rounded as the C core does
        self.write(("OK time n=%d total=%d unit=us per=%d.%03d\r\n"
                    % (count, total, per_milli // 1000, per_milli % 1000)).encode())


def main(module="boardnet_model"):
    """Import the model module and serve it forever (Ctrl-C returns to the REPL)."""
    try:
        model = __import__(module)
    except ImportError as e:
        raise ImportError("boardnet_serve: no model module %s on the board (%s); deploy one" % (module, e))
    Server(model).serve()
