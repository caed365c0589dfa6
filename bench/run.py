"""Run every benchmark in turn; each prints its own table (make bench)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["bench_train.py", "bench_export_c.py", "bench_micropython.py", "bench_q15.py",
           "bench_serial.py", "bench_gc_wasm.py", "bench_firmware.py"]

if __name__ == "__main__":
    failed = []
    for name in BENCHES:
        print(f"\n## {name}\n", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)]).returncode:
            failed.append(name)
    sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
