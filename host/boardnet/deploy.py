"""Put a model and the serve loop on a MicroPython board, the way a person would: mpremote.

    deploy_micropython(model, "/dev/ttyACM0")   # -> BoardInfo of the running loop

The generated module goes to the board as `boardnet_model.py` (the name the serve loop
imports), the loop as `boardnet_serve.py`; then the loop is started at the REPL and a
handshake proves that the board holds this model's fingerprint.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import BoardError
from .protocol import BoardInfo

MODEL_MODULE = "boardnet_model"
MPREMOTE_TIMEOUT = 60.0


def mpremote(port: str, *commands: list[str], timeout: float = MPREMOTE_TIMEOUT) -> str:
    """Run `mpremote connect PORT cmd1 + cmd2 ...`; its stdout, or a BoardError."""
    argv = [sys.executable, "-m", "mpremote", "connect", port]
    for i, command in enumerate(commands):
        argv += (["+"] if i else []) + command
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BoardError(f"mpremote on {port} did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise BoardError(f"mpremote on {port} failed: {detail}")
    return proc.stdout


def copy_files(port: str, files: dict[str, Path]) -> None:
    """Copy host files to the board's root, as {board name: host path}."""
    mpremote(port, *[["fs", "cp", str(src), f":{name}"] for name, src in files.items()])


def start_serve_loop(
    port: str, baud: int = 115200, module: str = MODEL_MODULE, timeout: float = 10.0
) -> None:
    """Start the serve loop at the friendly REPL and wait for its READY line."""
    from .link import open_serial

    ser = open_serial(port, baud)
    try:
        # Ctrl-C twice stops whatever runs (an older serve loop, a program); Ctrl-B leaves
        # the raw REPL mpremote may have left behind, for the friendly prompt.
        ser.write(b"\r\x03\x03\x02")
        time.sleep(0.2)
        ser.reset_input_buffer()
        call = "import boardnet_serve; boardnet_serve.main()" if module == MODEL_MODULE else (
            f"import boardnet_serve; boardnet_serve.main({module!r})"
        )
        ser.write(call.encode() + b"\r")
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            seen += ser.read(max(1, ser.in_waiting))
            ready = seen.find(b"READY ")
            if ready >= 0 and b"\n" in seen[ready:]:
                return
            if b"Traceback" in seen and seen.rstrip().endswith(b">>>"):
                tail = seen.decode("ascii", "replace").strip().splitlines()
                why = tail[-2] if len(tail) > 1 else tail
                raise BoardError(f"the serve loop did not start on {port}: {why}")
        raise BoardError(f"the serve loop printed no READY line on {port} within {timeout:g} s")
    finally:
        ser.close()


def deploy_micropython(
    model,
    port: str,
    *,
    baud: int = 115200,
    autostart: bool = False,
    start: bool = True,
    module_text: str | None = None,
) -> BoardInfo | None:
    """Export `model`, copy it and the serve loop with mpremote, start the loop, handshake.

    `autostart` also installs main.py (the loop then starts at every boot). `module_text`
    replaces the exported module (tests deploy deliberately altered copies this way).
    Returns the board's hello (None with start=False).
    """
    from . import export
    from .link import open_link
    from .resources import micropython_dir

    runtime = micropython_dir()
    with tempfile.TemporaryDirectory(prefix="boardnet-deploy-") as tmp:
        if module_text is None:
            module = export.export_micropython(model, tmp)
        else:
            module = Path(tmp) / f"{MODEL_MODULE}.py"
            module.write_text(module_text)
        files = {f"{MODEL_MODULE}.py": module, "boardnet_serve.py": runtime / "boardnet_serve.py"}
        if autostart:
            files["main.py"] = runtime / "main.py"
        copy_files(port, files)
    if not start:
        return None
    start_serve_loop(port, baud)
    with open_link(port, baud) as link:
        info = link.hello()
    expected = model.fingerprint("f32")
    if module_text is None and info.fingerprint != expected:
        raise BoardError(
            f"after deploying, the board on {port} reports fingerprint {info.fingerprint}, "
            f"not {expected}: the copy did not take"
        )
    return info
