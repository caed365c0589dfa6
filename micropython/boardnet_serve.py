# boardnet serve loop: answers the boardnet wire protocol v1 (docs/protocol.md) on stdin/stdout.
#
# On a board, main.py runs it:   import boardnet_serve; boardnet_serve.main()
# It imports the generated model module (default `boardnet_model`, the name deploy
# gives it), prints `READY ...`, then answers one reply line per request line, forever.
# Ctrl-C (0x03) raises KeyboardInterrupt, which is let through so the REPL (and
# mpremote) can always take over. Every other input gets a reply or ERR.
#
# Runs on stock MicroPython (rp2, esp32, the webassembly virtual board) and under
# CPython for the unit tests. The request loop allocates little: bytes are read into a
# 1-byte buffer and kept in one bytearray; a request then costs its split tokens (split
# and hex conversion run in C, which is what makes the loop fast enough) and the boxed
# floats (MicroPython boxes every float).

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


class BadRequest(Exception):
    pass


def _token_name(text):
    # a model name as one printable token (names come from users)
    out = ""
    for ch in str(text):
        o = ord(ch)
        out += ch if 33 <= o <= 126 and ch != "=" else "_"
    return out or "model"


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
        """Answer requests until stdin ends (never, on a board)."""
        self.write(self.ready_line)
        line = self.line
        limit = self.line_max
        n = 0  # bytes kept of the current line
        overlong = False
        binary = False
        after_cr = False
        read = self.stdin.readinto
        readline = getattr(self.stdin, "readline", None)
        byte = self.byte
        mv = self.byte_mv
        while True:
            if not read(mv):
                return  # end of input (CPython; a board's stdin never ends)
            c = byte[0]
            if c == 120 and n == 0 and readline is not None:
                # "x": a machine request, which ends at \n (docs/protocol.md). readline
                # collects it in C; byte by byte in Python costs ~10 us a byte on a board.
                rest = readline(limit)
                if not rest.endswith(b"\n") and len(rest) >= limit:
                    n, overlong = limit, True  # the byte loop discards the rest of the line
                    continue
                self.handle_chunk(b"x" + rest)
                if not rest.endswith(b"\n"):
                    return  # end of input
                continue
            if c >= 32:  # the common case first: a printable byte (or a high one)
                if n < limit:
                    line[n] = c
                    n += 1
                else:
                    overlong = True
                if c > 126:
                    binary = True
                after_cr = False
                continue
            if c == 10 or c == 13:
                if c == 10 and after_cr:  # \r\n is one line end
                    after_cr = False
                    continue
                after_cr = c == 13
                try:
                    if overlong:
                        self.err("long", "line over %d bytes discarded" % limit)
                    elif binary:
                        self.err("bytes", "binary or control bytes in the line")
                    elif n:
                        self.handle(n)
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # never die on input: every request gets a reply
                    try:
                        self.err("value", "%s: %s" % (type(e).__name__, e))
                    except Exception:
                        pass
                n = 0
                overlong = False
                binary = False
                continue
            after_cr = False
            if c == 3:
                # Ctrl-C reaches us only where the port does not intercept it (CPython,
                # kbd_intr(-1)); it keeps its meaning: stop and return to the REPL.
                raise KeyboardInterrupt
            if c != 9:
                binary = True
            if n < limit:
                line[n] = c
                n += 1
            else:
                overlong = True

    def handle_chunk(self, data):
        """Requests read whole by readline: bare \r inside still separates lines."""
        for part in data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
            if part:
                try:
                    self.handle_bytes(part)
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # never die on input: every request gets a reply
                    self.err("value", "%s: %s" % (type(e).__name__, e))

    # ---- one request ---------------------------------------------------------------------
    def handle(self, n):
        self.handle_bytes(bytes(self.linemv[:n]))

    def handle_bytes(self, data):
        if b"," in data:
            data = data.replace(b",", b" ")
        toks = data.split()  # splits at spaces and tabs, in C
        if not toks:
            return  # blank line: no reply
        head = toks[0]
        if head == b"x" or head == b"X":
            self.predict_machine(toks)
            return
        word = head.lower()
        if word == b"hello" or word == b"?":
            if len(toks) != 1:
                self.err("count", "hello takes no arguments")
                return
            self.write(self.hello_line)
        elif word == b"time":
            self.time(toks)
        else:
            c = head[0]
            if (48 <= c <= 57) or c in b"+-.":
                self.predict_human(toks)
            else:
                self.err("cmd", "unknown command %s (try hello)" % word[:16].decode())

    def _fail(self, e, rid=None):
        code, _, message = str(e).partition(" ")
        if rid is not None:
            message = "id %s: %s" % (rid.decode(), message)
        self.err(code, message)

    def predict_machine(self, toks):
        rid = None
        try:
            if len(toks) < 2:
                raise BadRequest("count x takes an id and %d values" % self.n_in)
            rid = toks[1]
            if not rid.isdigit() or len(rid) > 5:
                rid = None
                raise BadRequest("value the id is a decimal 0..65535")
            if int(rid) > ID_MAX:
                raise BadRequest("range id over 65535")
            if len(toks) != 2 + self.n_in:
                raise BadRequest("count expected %d values, got %d" % (self.n_in, len(toks) - 2))
            if self.integer:
                # already-quantised int16 inputs; out of range is an error, never saturated,
                # so the host's expectation stays exact (docs/integer-models.md)
                x = self.x
                for i in range(self.n_in):
                    try:
                        v = int(toks[2 + i])
                    except ValueError:
                        raise BadRequest("value not a decimal integer")
                    if not -32768 <= v <= 32767:
                        raise BadRequest("value integer input outside int16")
                    x[i] = v
            else:
                self._unhex(toks)
        except BadRequest as e:
            self._fail(e, rid)
            return
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
            self.write(b"OK " + rid + b" " + b" ".join([h[8 * i : 8 * i + 8] for i in range(self.n_out)]) + b"\r\n")

    def _unhex(self, toks):
        hexes = toks[2:]
        for t in hexes:
            if len(t) != 8:
                raise BadRequest("value inputs are 8 hex digits of float32 bits")
        try:
            words = unhexlify(b"".join(hexes))  # one call for all inputs, in C
        except ValueError:  # binascii.Error is a ValueError
            raise BadRequest("value inputs are 8 hex digits of float32 bits")
        for i in range(0, len(words), 4):
            if (words[i] & 0x7F) == 0x7F and (words[i + 1] & 0x80):  # exponent all ones
                raise BadRequest("nonfinite NaN or infinity in the input")
        x = self.x
        values = struct.unpack(self.in_format, words)
        for i in range(self.n_in):
            x[i] = values[i]

    def predict_human(self, toks):
        if len(toks) != self.n_in:
            self.err("count", "expected %d values, got %d" % (self.n_in, len(toks)))
            return
        x = self.x
        for i in range(self.n_in):
            text = toks[i].decode()
            try:
                # integer models parse raw units with the model's own integer parser
                v = self.model.parse(i, text) if self.integer else float(text)
            except ValueError:
                self.err("value", "%s is not a number" % text[:16])
                return
            if v != v or v - v != 0:
                self.err("nonfinite", "NaN or infinity in the input")
                return
            if not self.integer:
                # the model sees float32 inputs, as in the machine form
                try:
                    struct.pack_into(">f", self.word, 0, v)
                except OverflowError:  # CPython; MicroPython rounds to infinity
                    v = float("inf")
                else:
                    v = struct.unpack_from(">f", self.word, 0)[0]
                if v - v != 0:
                    self.err("nonfinite", "%s overflows float32" % text[:16])
                    return
            x[i] = v
        y = self.model.predict(x, self.y)
        if y is None:
            y = self.y
        if self.integer:
            parts = ["%d" % v for v in y]
        else:
            parts = []
            for v in y:
                struct.pack_into(">f", self.word, 0, v)
                parts.append("{:.9g}".format(struct.unpack_from(">f", self.word, 0)[0]))
        self.write(("OK " + " ".join(parts) + "\r\n").encode())

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
        predict = self.model.predict
        x = self.x
        y = self.y
        t0 = ticks_us()
        for _ in range(count):
            predict(x, y)
        total = ticks_diff(ticks_us(), t0)
        self.write(
            ("OK time n=%d total=%d unit=us per=%s\r\n" % (count, total, "{:.3f}".format(total / count))).encode()
        )


def main(module="boardnet_model"):
    """Import the model module and serve it forever (Ctrl-C returns to the REPL)."""
    try:
        model = __import__(module)
    except ImportError as e:
        raise ImportError("boardnet_serve: no model module %s on the board (%s); deploy one" % (module, e))
    Server(model).serve()
