"""MicroPython on the emulated Raspberry Pi Pico (rp2040js): the official rp2 firmware
(single-precision floats, USB CDC, littlefs) through the paths a real Pico takes: deploy with
mpremote, check at 0 ulp (f32) and exact (q15), boards --probe, deploy --mpy, mpremote by
hand, and a board that dies or resets in the middle of a check."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import BOARDNET, NETS, need_pico, run_json, sabotaged

from boardnet import codegen, forms, virtual
from boardnet.commands.deploy import deploy_micropython
from boardnet.virtual import rp2040

pytestmark = pytest.mark.pico


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["f32", "q15"])
@pytest.mark.parametrize("net", NETS)
def test_micropython_on_the_pico_matches_the_host_exactly(pico_models, pico_state, net, precision):
    """The generated module on real single-precision MicroPython: 0 ulp in float32, identical
    integers in q15 (deploy with mpremote to the emulated Pico that stays up, then check)."""
    need_pico()
    status, deployed = run_json("deploy", pico_models[net], "--port", "sim-pico", "--precision", precision)
    assert status == 0, deployed
    status, report = run_json("check", pico_models[net], "--port", "sim-pico", "--precision", precision,
                              "--n", "1000")
    assert status == 0, report
    assert report["passed"] and report["max_ulp"] == 0 and report["n"] == 1000
    assert report["board"]["platform"] == "rp2" and report["board"]["runtime"] == "micropython"
    assert report["tolerance"].startswith("0 ulp" if precision == "f32" else "exact")
    assert report["clock"].startswith("emulated RP2040") and report["cycles_per_inference"] > 100


# ---- a user with mpremote --------------------------------------------------------------------------
def test_mpremote_exec_after_deploy_prints_the_hosts_value(people, pico_state):
    need_pico()
    form = forms.make(people)
    record = virtual.start_persistent("pico")
    deploy_micropython(form, record["port"])
    code = ("import boardnet_model, struct; y = boardnet_model.predict([128, 63]); "
            "print(y[0], struct.pack('>f', y[0]).hex())")
    out = subprocess.run([sys.executable, "-m", "mpremote", "connect", record["port"], "exec", code],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    value, bits = out.stdout.split()
    host = form.reference(form.inputs([[128, 63]]))[0, 0]
    assert bits == f"{int(np.float32(host).view(np.uint32)):08x}"  # the host's float32, to the bit
    assert float(value) == pytest.approx(float(host), abs=1e-6)


def test_boards_probe_then_deploy_mpy_then_check(pico_models, pico_state):
    """What `boards --probe` reads off the Pico's MicroPython, and a bytecode deploy it takes."""
    need_pico()
    virtual.stop_persistent("pico")
    record = virtual.start_persistent("pico")
    status, entries = run_json("boards", "--probe", "--timeout", "3")
    assert status == 0
    (probe,) = [e["probe"] for e in entries if e["port"] == record["port"]]
    assert probe["platform"] == "rp2" and probe["float"] == "float32"
    assert probe["mpy_abi"]["arch"] == "armv6m" and probe["mem_free"] > 100_000 and probe["fs_free"] > 500_000
    status, deployed = run_json("deploy", pico_models["2-2-1"], "--port", "sim-pico", "--mpy")
    assert status == 0, deployed
    assert "boardnet_model.mpy" in deployed["copied"]
    status, report = run_json("check", pico_models["2-2-1"], "--port", "sim-pico", "--n", "200")
    assert status == 0 and report["max_ulp"] == 0


@pytest.mark.slow
def test_killing_the_emulator_mid_check_is_board_trouble(people, pico_state, tmp_path):
    need_pico()
    path = str(people.save(tmp_path / "people.json"))
    record = virtual.start_persistent("pico")
    deploy_micropython(forms.make(people), record["port"])
    proc = subprocess.Popen([*BOARDNET, "check", path, "--port", record["port"], "--n", "100000", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    os.kill(record["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and out == "", err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_machine_reset_mid_check_is_board_trouble(people, pico_state, tmp_path):
    need_pico()
    path = str(people.save(tmp_path / "people.json"))
    form = forms.make(people)
    with rp2040.PicoBoard() as board:
        deploy_micropython(form, board.url, module_text=sabotaged(codegen.render_micropython(form), 'import machine; machine.reset()'))
        r = subprocess.run([*BOARDNET, "check", path, "--port", board.url, "--n", "1000", "--timeout", "5",
                            "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and r.stdout == "", r.stderr
    assert re.search(r"restarted|no reply", r.stderr) and len(r.stderr.strip().splitlines()) == 1


def test_the_flash_lasts_the_boards_life_and_across_stop_start_when_asked(pico_state):
    need_pico()
    virtual.stop_persistent("pico")

    def mp(port: str, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    port = virtual.start_persistent("pico")["port"]
    mp(port, "exec", "open('kept.txt', 'w').write('littlefs')")
    mp(port, "reset")  # a watchdog reset: a fresh chip on the same flash
    time.sleep(1)
    assert "littlefs" in mp(port, "exec", "print(open('kept.txt').read())")
    virtual.stop_persistent("pico")
    port = virtual.start_persistent("pico", keep_flash=True)["port"]
    assert "littlefs" in mp(port, "exec", "print(open('kept.txt').read())")
    virtual.stop_persistent("pico")
    port = virtual.start_persistent("pico")["port"]  # a blank flash
    assert "kept.txt" not in mp(port, "exec", "import os; print(os.listdir())")
