"""The serve loop keeps the virtual MicroPython board's memory flat.

The board's build collects garbage only when control returns to JavaScript, so a loop that
never returns grew its heap ~1.5 KB a prediction until WebAssembly memory ran out (2 GiB).
The loop now hands itself to the board, which runs it a step at a time (docs/serial.md,
"Memory"). Here: 1,000,000 predictions on the board without I/O (10 x `time 100000`) and a
pipelined burst of 20,000, watching the heap as the board's gc sees it (a test-only `mem`
request) and the resident memory of the bridge process that runs the interpreter.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
from conftest import need, need_node, seed_model

from boardnet import forms
from boardnet.commands.deploy import deploy_micropython
from boardnet.link import open_link
from boardnet.virtual.wasm import MicroPythonSim

# A step adds at most its own garbage before the board collects it: 32 requests (~50 KB
# here) or a 4 ms slice of `time` (~85 MB/s of boxed floats on this model, ~350 KB). So the
# heap never needs more than its first 1 MiB area, and in use there is the live heap plus
# one step's garbage; 640 KB leaves room for a slow, preempted slice. Without the collection
# one `time 100000` alone leaves 66 MB in use.
HEAP_TOTAL_MAX = 1 << 20
IN_USE_MAX = 640 << 10
# The bridge's resident memory may move with V8's own heap and code; the WebAssembly
# memory itself must not grow. Without the collection it grows ~66 MB per `time 100000`.
RSS_GROWTH_MAX = 40 << 20
MAX_NEW_SPLIT = 128 << 20  # gc.mem_free() on this port adds what a new heap area could take

MEM_SERVE = """\
import gc
import boardnet_model
import boardnet_serve


class Server(boardnet_serve.Server):
    # test only: "mem" answers the heap as the board's gc sees it
    def handle_bytes(self, data):
        if data == b"mem":
            self.write(("OK mem %d %d\\r\\n" % (gc.mem_alloc(), gc.mem_free())).encode())
            return 1
        return boardnet_serve.Server.handle_bytes(self, data)


Server(boardnet_model).serve()
"""


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.node
@pytest.mark.slow
def test_a_million_predictions_leave_the_heap_flat(tmp_path):
    need_node()
    need(sys.platform.startswith("linux"), "reads /proc/PID/status")
    model = seed_model()
    form = forms.make(model)
    with MicroPythonSim(tmp_path / "flash") as board:
        deploy_micropython(form, board.port, start=False)
        (board.fs_dir / "memserve.py").write_text(MEM_SERVE)
        with open_link(board.port, timeout=30, handshake=False) as link:
            # Ctrl-C for a loop left running, Ctrl-B for the friendly REPL, then the loop
            link.write(b"\r\x03\x03\x02")
            time.sleep(0.3)
            link.write(b"import memserve\r")
            deadline = time.monotonic() + 10
            line = ""
            while not line.startswith("READY"):
                line = link.readline(deadline)
                assert line is not None, "the serve loop printed no READY line"
            assert line.startswith("READY proto=1 runtime=micropython platform=webassembly"), line

            def ask(request: bytes, timeout: float = 30) -> str:
                link.write(request + b"\n")
                reply = link.readline(time.monotonic() + timeout)
                assert reply is not None and reply.startswith("OK "), (request, reply)
                return reply

            def heap() -> tuple[int, int]:
                alloc, free = map(int, ask(b"mem").split()[2:])
                return alloc, free

            X = np.random.default_rng(0).uniform(-3, 3, size=(20_000, 2)).astype(np.float32)  # (n, 2)
            link.hello()
            ask(b"time 20000")  # warm up: code paths, V8's compiled WebAssembly
            link.predict_many(form, X[:2000])
            start_rss = rss(board.pid)
            peak = [start_rss]
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.05):
                    peak[0] = max(peak[0], rss(board.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            seen = []
            try:
                for _ in range(10):
                    assert ask(b"time 100000", timeout=60).startswith("OK time n=100000 ")
                    seen.append(heap())
                Y = link.predict_many(form, X)  # pipelined: `window` requests in flight
                seen.append(heap())
            finally:
                stop.set()
                sampler.join()
            assert np.abs(Y - model.predict32(X)).max() < 1e-5
    for alloc, free in seen:
        assert 0 < free, seen  # it wraps negative once the heap passes ~900 MB
        assert alloc + free - MAX_NEW_SPLIT <= HEAP_TOTAL_MAX, seen
        assert alloc <= IN_USE_MAX, seen
    assert peak[0] - start_rss <= RSS_GROWTH_MAX, (start_rss, peak[0])
    print(f"\nheap in use {min(a for a, _ in seen)}..{max(a for a, _ in seen)} B; bridge RSS "
          f"{start_rss / 2**20:.0f} MB, peak {peak[0] / 2**20:.0f} MB")
