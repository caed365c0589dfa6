"""Run a script under real MicroPython: the official WebAssembly build, under Node.

The build is the npm package @micropython/micropython-webassembly-pyscript, installed by
`npm ci --prefix host/boardnet/virtual/node`. It is the same interpreter (parser, compiler, VM, GC)
as the firmware on a Pico or an ESP32, with one difference that matters here: its floats
are C doubles (MICROPY_FLOAT_IMPL_DOUBLE), where rp2 and esp32 use single precision. Floats
are boxed on its heap as on those boards (object representation A), so heap use per
float operation is the same (one 16-byte GC block).

    out = run("import mod; print(mod.N_IN)", files={"mod.py": text})

Files land in the interpreter's in-memory file system under /lib (on sys.path) and may
be str or bytes (a .mpy). `run` returns stdout; an uncaught Python exception raises
MicroPythonError carrying the MicroPython traceback.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "host/boardnet/virtual/node/node_modules/@micropython/micropython-webassembly-pyscript"
MJS = PACKAGE / "micropython.mjs"

# The runner reads one JSON job on stdin: {heapsize, files: {name: base64}, code}.
# stdout/stderr are line-buffered by loadMicroPython; a Python exception comes back as
# a JS PythonError whose message is the MicroPython traceback.
RUNNER = """\
import { loadMicroPython } from %(mjs)s;
import fs from "fs";
const job = JSON.parse(fs.readFileSync(0, "utf8"));
const mp = await loadMicroPython({
  heapsize: job.heapsize,
  stdout: (line) => process.stdout.write(line + "\\n"),
  stderr: (line) => process.stderr.write(line + "\\n"),
});
// `import hostclock; hostclock.now()`: milliseconds with microsecond resolution, for
// benchmarks (this build's time.ticks_us only moves in whole milliseconds)
mp.registerJsModule("hostclock", { now: () => performance.now() });
try { mp.FS.mkdir("/lib"); } catch (e) {}
for (const [name, data] of Object.entries(job.files)) {
  mp.FS.writeFile("/lib/" + name, Buffer.from(data, "base64"));
}
try {
  mp.runPython(job.code);
} catch (error) {
  if (error.name !== "PythonError") throw error;
  process.stderr.write(error.message);
  process.exitCode = 1;
}
"""


class MicroPythonError(RuntimeError):
    """The script raised under MicroPython; the message is its traceback."""


def available() -> tuple[bool, str]:
    """(True, "") when Node and the WebAssembly build are installed, else (False, why)."""
    if shutil.which("node") is None:
        return False, "node is not on PATH"
    if not MJS.is_file():
        return False, f"{MJS.relative_to(ROOT)} missing: run `npm ci --prefix host/boardnet/virtual/node`"
    return True, ""


def run(
    code: str,
    files: dict[str, str | bytes] | None = None,
    *,
    heapsize: int = 8 * 1024 * 1024,
    timeout: float = 600.0,
) -> str:
    """Run `code` under MicroPython with `files` importable; return its stdout."""
    payload = {
        "heapsize": heapsize,
        "files": {
            name: base64.b64encode(data.encode() if isinstance(data, str) else data).decode()
            for name, data in (files or {}).items()
        },
        "code": code,
    }
    with tempfile.TemporaryDirectory(prefix="mpwasm-") as tmp:
        runner = Path(tmp) / "run.mjs"
        runner.write_text(RUNNER % {"mjs": json.dumps(MJS.as_uri())})
        proc = subprocess.run(
            ["node", str(runner)],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if proc.returncode != 0:
        raise MicroPythonError(proc.stderr.strip() or f"node exited with {proc.returncode}")
    return proc.stdout
