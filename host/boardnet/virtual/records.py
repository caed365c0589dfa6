"""Virtual boards that outlive a command (`boardnet sim start`, `deploy --port sim-*`): one
record each under the state folder, so that `boardnet boards`, `--port auto`, `--port sim-*`
and `sim stop` find them; a record whose process has died is dropped when read."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from ..files import state_dir


def sims_dir() -> Path:
    """Where persistent virtual boards are recorded, one ``<kind>.json`` each."""
    return state_dir() / "sims"


def proc_start(pid: int) -> int | None:
    """Start time of a process in clock ticks (Linux), to tell it from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(pid, 0)
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return False
    return started is None or int(fields[19]) == started


def terminate(pid: int, started: int | None, timeout: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` s; nothing when the process is gone."""
    if not alive(pid, started):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, started):
            return
        time.sleep(0.05)
    if alive(pid, started):
        os.kill(pid, signal.SIGKILL)


def _path(kind: str) -> Path:
    return sims_dir() / f"{kind}.json"


def write(record: dict) -> Path:
    """Record a persistent virtual board.

    Fields: ``kind``, ``pid``, ``port`` (a pyserial URL or device name), ``started``
    (ISO 8601), ``fs_dir`` (or None) and ``extra`` (a dict; ``extra["proc_start"]``, when
    present, guards against a reused pid; ``extra["fingerprint"]``, the model it serves).
    """
    path = _path(record["kind"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _alive(record: dict) -> bool:
    pid = record.get("pid")
    return isinstance(pid, int) and alive(pid, (record.get("extra") or {}).get("proc_start"))


def _forget(path: Path, record: dict | None) -> None:
    path.unlink(missing_ok=True)
    link = ((record or {}).get("extra") or {}).get("link")
    if link and Path(link).is_symlink():
        Path(link).unlink()


def _records() -> list[tuple[Path, dict | None]]:
    folder = sims_dir()
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            out.append((path, None))
    return out


def running() -> list[dict]:
    """The persistent virtual boards that are running; records of dead ones are removed."""
    live = []
    for path, record in _records():
        if record is not None and _alive(record):
            live.append(record)
        else:
            _forget(path, record)
    return live


def find(kind: str) -> dict | None:
    """The running persistent board of this kind, if any."""
    return next((r for r in running() if r["kind"] == kind), None)


def serving(record: dict, fingerprint: str) -> dict:
    """Note in the record that the board now serves the model with `fingerprint`."""
    record = {**record, "extra": {**(record.get("extra") or {}), "fingerprint": fingerprint}}
    write(record)
    return record


def stop(kind: str | None = None) -> list[dict]:
    """Stop the persistent virtual boards (of one kind, or all); the records stopped."""
    stopped = []
    for path, record in _records():
        if record is not None and kind is not None and record.get("kind") != kind:
            continue
        if record is not None and _alive(record):
            terminate(record["pid"], (record.get("extra") or {}).get("proc_start"))
            stopped.append(record)
        _forget(path, record)
    return stopped
