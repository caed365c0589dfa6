"""What a garbage collection costs the serve loop on the virtual MicroPython board.

    python bench/bench_gc_wasm.py

The board's WebAssembly build collects only when a call from JavaScript returns; the board
(host/boardnet/virtual/node/board.mjs) therefore calls the loop's `step()` from the top level, and a
collection follows a step when 16 KiB or more were allocated since the last (the port's
gc.threshold). This runs the serve loop the same way, in Node, with requests from a small
in-heap buffer (no serial I/O), and prints per model:

- pause: one collection after a step of 32 pipelined requests, and after a 4 ms slice of a
  `time` run (the step run with the collector off, then gc.collect() timed from JavaScript;
  median / 90th percentile / max over 200 steps);
- req/s: requests answered through step() with the port's threshold and with 256 KiB
  (best of 6 interleaved runs of 6,400);
- heap: gc.mem_alloc() after the run and the heap's total size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import mpwasm  # noqa: E402
from bench_serial import models  # noqa: E402

from boardnet import codegen, forms  # noqa: E402
from boardnet.link import protocol as P  # noqa: E402
from boardnet.resources import micropython_dir  # noqa: E402

RUNNER = """\
import { loadMicroPython } from %(mjs)s;
import fs from "fs";
const job = JSON.parse(fs.readFileSync(0, "utf8"));
const mp = await loadMicroPython({ heapsize: job.heapsize, stdout: (l) => process.stdout.write(l + "\\n") });
try { mp.FS.mkdir("/lib"); } catch (e) {}
for (const [name, text] of Object.entries(job.files)) mp.FS.writeFile("/lib/" + name, text);
mp.runPython(job.setup);
const g = (name) => mp.globals.get(name);
const step = g("server").step, refill = g("refill"), info = g("info"), gc = mp.pyimport("gc");
const out = { rate: { 16384: 0, 262144: 0 } };
for (let rep = 0; rep < 6; rep++) {  // interleaved, best of: the first runs also warm V8 up
  for (const threshold of [16384, 262144]) {
    gc.threshold(threshold);
    let n = 0;
    const t0 = performance.now();
    for (let k = 0; k < job.blocks; k++) { while (step() === true) n += 32; refill(); }
    out.rate[threshold] = Math.max(out.rate[threshold], n / ((performance.now() - t0) / 1000));
  }
}
gc.threshold(16384);
function pauses(run) {
  const ms = [];
  for (let i = 0; i < 200; i++) {
    gc.disable(); run(); gc.enable();
    const t = performance.now(); gc.collect(); ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return [ms[100], ms[180], ms[199]];
}
out.requests = pauses(() => { if (!step()) refill(); });
g("start_time")();
out.slice = pauses(() => { if (!g("server").timing) g("start_time")(); step(); });
out.heap = info();
console.log(JSON.stringify(out));
"""

SETUP = """
import io, gc, boardnet_serve, boardnet_model
REQS = %r
class Sink:
    def write(self, b): pass
server = boardnet_serve.Server(boardnet_model, io.BytesIO(b''), Sink(), platform='webassembly')
def refill():
    server.stdin = io.BytesIO(REQS)
    server._read = server.stdin.readinto
    server._readline = server.stdin.readline
def start_time():
    server.handle_bytes(b'time 100000')
def info():
    return '%%d %%d' %% (gc.mem_alloc(), gc.mem_alloc() + gc.mem_free() - (128 << 20))
refill()
"""


def main() -> None:
    ok, why = mpwasm.available()
    if not ok:
        sys.exit(why)
    serve = (micropython_dir() / "boardnet_serve.py").read_text()
    print(f"{'model':<8}{'sizes':<9}{'pause ms after 32 requests':>28}{'after a time slice':>22}"
          f"{'req/s 16K':>11}{'256K':>8}{'in use B':>10}{'heap B':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        runner = Path(tmp) / "run.mjs"
        runner.write_text(RUNNER % {"mjs": json.dumps(mpwasm.MJS.as_uri())})
        for model in models():
            form = forms.make(model)
            module = codegen.export_micropython(form, Path(tmp) / model.name).read_text()
            # 64 requests (2 steps) in the heap, refilled: the board's input is not on its heap
            X = np.random.default_rng(0).uniform(-3, 3, size=(64, model.n_in)).astype(np.float32)
            reqs = b"".join(P.encode_predict(i, form.encode(x)) for i, x in enumerate(X))
            job = {"heapsize": 1 << 20, "blocks": 100, "setup": SETUP % (reqs,),
                   "files": {"boardnet_serve.py": serve, "boardnet_model.py": module}}
            run = subprocess.run(["node", str(runner)], input=json.dumps(job), capture_output=True, text=True)
            if run.returncode:
                sys.exit("\n".join(line for line in run.stderr.splitlines() if len(line) < 500))
            r = json.loads(run.stdout)
            in_use, heap = r["heap"].split()
            fmt = " / ".join(f"{v:.2f}" for v in r["requests"])
            fmt2 = " / ".join(f"{v:.2f}" for v in r["slice"])
            print(f"{model.name:<8}{'-'.join(map(str, model.sizes)):<9}{fmt:>28}{fmt2:>22}"
                  f"{r['rate']['16384']:>11.0f}{r['rate']['262144']:>8.0f}{in_use:>10}{heap:>9}")


if __name__ == "__main__":
    main()
