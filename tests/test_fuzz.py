"""libFuzzer on the firmware's protocol core (firmware/fuzz/fuzz_serve.c).

Built with clang's fuzzer, AddressSanitizer and UndefinedBehaviorSanitizer (every report is
fatal), seeded with firmware/fuzz/corpus (valid and malformed requests), run for a bounded
time: 60 s when CI is set, 10 s otherwise (BOARDNET_FUZZ_SECONDS overrides). A crash, a leak,
undefined behaviour or a broken invariant of the target is a failing test, with the
reproducer's path in the message.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import need, need_exe, run_forked

from boardnet.resources import firmware_dir

FUZZ = firmware_dir() / "fuzz"
CORE = firmware_dir() / "core"


def fuzz_seconds() -> int:
    if os.environ.get("BOARDNET_FUZZ_SECONDS"):
        return int(os.environ["BOARDNET_FUZZ_SECONDS"])
    return 60 if os.environ.get("CI") else 10


def build(tmp_path) -> str:
    need_exe("clang")
    exe = tmp_path / "fuzz_serve"
    cmd = [
        "clang", "-std=c99", "-g", "-O1", "-fsanitize=fuzzer,address,undefined",
        "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Wpedantic", "-Wdouble-promotion",
        "-Wfloat-conversion", "-Wshadow", "-Werror", "-ffp-contract=off", f"-I{CORE}",
        str(FUZZ / "fuzz_serve.c"), str(CORE / "boardnet_serve.c"), str(CORE / "boardnet_text.c"),
        "-o", str(exe),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True)
    # Debian's clang without libclang-rt-dev cannot link -fsanitize=fuzzer
    need(run.returncode == 0 or "error:" in run.stderr and "libclang_rt" not in run.stderr,
         f"clang cannot link libFuzzer: {run.stderr.strip()[-200:]}")
    assert run.returncode == 0, run.stderr
    return str(exe)


@pytest.mark.clang
@pytest.mark.slow
def test_fuzzing_the_protocol_core_finds_nothing(tmp_path):
    exe = build(tmp_path)
    work = tmp_path / "corpus"  # new inputs go here; the committed corpus stays as it is
    work.mkdir()
    seconds = fuzz_seconds()
    run = run_forked(
        [exe, f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=1024",
         f"-artifact_prefix={tmp_path}/", str(work), str(FUZZ / "corpus")],
        capture_output=True, text=True, timeout=seconds + 120,
    )  # fmt: skip
    tail = "\n".join(run.stderr.splitlines()[-25:])
    assert run.returncode == 0, f"the fuzzer found a problem (reproducer in {tmp_path}):\n{tail}"
    done = re.search(r"Done (\d+) runs in (\d+) second", run.stderr)
    assert done and int(done.group(1)) > 1000, tail
    print(f"\nlibFuzzer: {done.group(1)} runs in {done.group(2)} s; " + (re.findall(r"cov: \d+ ft: \d+", run.stderr) or ["?"])[-1])


@pytest.mark.clang
def test_the_committed_corpus_runs_clean(tmp_path):
    """Each seed once (fast): the corpus itself is valid input for the target."""
    exe = build(tmp_path)
    seeds = sorted(p for p in (FUZZ / "corpus").iterdir() if p.is_file())
    assert len(seeds) >= 15
    run = subprocess.run([exe, *map(str, seeds)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]

