"""The Raspberry Pi Pico, emulated (rp2040js): the official MicroPython rp2 firmware
(single-precision floats, USB CDC, littlefs) and boardnet's C firmware built by the real
pico-sdk, through the same paths a real Pico takes: deploy (mpremote, or the SDK build and a
UF2), check at 0 ulp (f32) and exact (q15), predict, mpremote by hand, and the protocol's
fault classes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import need, need_exe, need_node

from boardnet import codegen, forms, virtual
from boardnet.commands.deploy import deploy_micropython
from boardnet.link import Link, open_link, open_serial
from boardnet.model import Model, Normalization
from boardnet.virtual import rp2040

pytestmark = pytest.mark.pico
BOARDNET = [sys.executable, "-m", "boardnet.cli"]


def need_pico() -> None:
    need_node()
    for var in (rp2040.FIRMWARE_ENV, rp2040.BOOTROM_ENV):
        need(bool(os.environ.get(var)) and Path(os.environ[var]).is_file(),
             f"{var} is not set to a file (the MicroPython UF2 for the Pico, the RP2040 boot ROM)")


def need_pico_sdk() -> None:
    need_pico()
    need_exe("cmake", "arm-none-eabi-gcc")
    need(bool(os.environ.get("PICO_SDK_PATH")), "PICO_SDK_PATH is not set")
    need(bool(os.environ.get("PICOTOOL_FETCH_FROM_GIT_PATH")) or shutil.which("picotool") is not None,
         "no picotool for the pico-sdk: set PICOTOOL_FETCH_FROM_GIT_PATH (README)")


def random_model(sizes: list[int], seed: int, name: str) -> Model:
    rng = np.random.default_rng(seed)
    norm = Normalization("standard", rng.normal(size=sizes[0]) * 5, rng.uniform(0.5, 3, size=sizes[0]))
    Ws = [rng.normal(0, 1 / np.sqrt(i), size=(o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(0, 0.5, size=o) for o in sizes[1:]]
    labels = [str(k) for k in range(sizes[-1])] if sizes[-1] > 1 else None
    return Model.from_arrays(Ws, bs, name=name, normalization=norm, labels=labels)


@pytest.fixture(scope="module")
def models(people, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("models")
    made = {"2-2-1": people, "8-16-1": random_model([8, 16, 1], 1, "net8"),
            "30-16-8-3": random_model([30, 16, 8, 3], 2, "net30")}
    return {net: str(m.save(folder / f"{m.name}.json")) for net, m in made.items()}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """Records of this module's boards that stay up, apart from the user's; all stopped after."""
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    virtual.stop_persistent()
    if old is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = old


def run_json(*args: str) -> tuple[int, dict]:
    r = subprocess.run([*BOARDNET, *args, "--json"], capture_output=True, text=True, timeout=600)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else {"stderr": r.stderr})


# ---- check: both runtimes, both forms, three networks ------------------------------------
NETS = ["2-2-1", "8-16-1", "30-16-8-3"]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["f32", "q15"])
@pytest.mark.parametrize("net", NETS)
def test_micropython_on_the_pico_matches_the_host_exactly(models, state, net, precision):
    """The generated module on real single-precision MicroPython: 0 ulp in float32, identical
    integers in q15 (deploy with mpremote to the emulated Pico that stays up, then check)."""
    need_pico()
    status, deployed = run_json("deploy", models[net], "--port", "sim-pico", "--precision", precision)
    assert status == 0, deployed
    status, report = run_json("check", models[net], "--port", "sim-pico", "--precision", precision,
                              "--n", "1000")
    assert status == 0, report
    assert report["passed"] and report["max_ulp"] == 0 and report["n"] == 1000
    assert report["board"]["platform"] == "rp2" and report["board"]["runtime"] == "micropython"
    assert report["tolerance"].startswith("0 ulp" if precision == "f32" else "exact")
    assert report["clock"].startswith("emulated RP2040") and report["cycles_per_inference"] > 100


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["f32", "q15"])
@pytest.mark.parametrize("net", NETS)
def test_c_firmware_on_the_pico_matches_the_host_exactly(models, state, net, precision):
    """firmware/pico built by the pico-sdk with the model's header, run from its UF2."""
    need_pico_sdk()
    status, deployed = run_json("deploy", models[net], "--port", "sim-pico", "--runtime", "c",
                                "--precision", precision)
    assert status == 0, deployed
    assert deployed["runtime"] == "c" and deployed["stays_up"] == "pico"
    status, report = run_json("check", models[net], "--port", "sim-pico", "--precision", precision,
                              "--n", "1000")
    assert status == 0, report
    assert report["passed"] and report["max_ulp"] == 0 and report["n"] == 1000
    assert report["board"]["platform"] == "rp2040" and report["board"]["runtime"] == "c"
    assert report["cycles_per_inference"] > 50


# ---- a user with mpremote --------------------------------------------------------------------------
def test_mpremote_exec_after_deploy_prints_the_hosts_value(people, state):
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


def test_boards_probe_then_deploy_mpy_then_check(models, state):
    """What `boards --probe` reads off the Pico's MicroPython, and a bytecode deploy it takes."""
    need_pico()
    virtual.stop_persistent("pico")
    record = virtual.start_persistent("pico")
    status, entries = run_json("boards", "--probe", "--timeout", "3")
    assert status == 0
    (probe,) = [e["probe"] for e in entries if e["port"] == record["port"]]
    assert probe["platform"] == "rp2" and probe["float"] == "float32"
    assert probe["mpy_abi"]["arch"] == "armv6m" and probe["mem_free"] > 100_000 and probe["fs_free"] > 500_000
    status, deployed = run_json("deploy", models["2-2-1"], "--port", "sim-pico", "--mpy")
    assert status == 0, deployed
    assert "boardnet_model.mpy" in deployed["copied"]
    status, report = run_json("check", models["2-2-1"], "--port", "sim-pico", "--n", "200")
    assert status == 0 and report["max_ulp"] == 0


# ---- the protocol's fault classes ----------------------------------------------------------
@pytest.fixture(params=["micropython", "c"], scope="module")
def serving(request, people, state):
    """A fresh emulated Pico serving the people model in each runtime: (port, form)."""
    need_pico() if request.param == "micropython" else need_pico_sdk()
    form = forms.make(people)
    board = virtual.fresh("pico", form, request.param)
    url = board.start()
    if request.param == "micropython":
        deploy_micropython(form, url)
    yield url, form
    board.stop()


@pytest.mark.slow
def test_garbage_long_lines_nul_and_bare_cr_then_an_answer(serving):
    url, form = serving
    link = Link(open_serial(url), url, timeout=60)
    try:
        rng = np.random.default_rng(0)
        noise = bytes(b for b in rng.integers(0, 256, 3000) if b not in (3, 10, 13))
        link.write(noise + b"\n" + b"7" * 100_000 + b"\n" + b"\x00\x00\n" + b"1.5 2\r")
        link.drain(quiet=1.0, limit=120)
        assert link.hello().fingerprint == form.fingerprint
        assert link.predict(form, form.inputs([[128, 63]])[0]) == form.reference(form.inputs([[128, 63]]))[0]
    finally:
        link.close()


@pytest.mark.slow
def test_a_burst_of_10000_requests_is_answered_in_order(serving):
    url, form = serving
    X = np.random.default_rng(1).uniform([100, 55], [200, 80], size=(10_000, 2)).astype(np.float32)
    with open_link(url, timeout=60) as link:
        Y = link.predict_many(form, form.inputs(X))
        assert np.array_equal(Y.view(np.uint32), form.reference(form.inputs(X)).view(np.uint32))
        assert link.hello().fingerprint == form.fingerprint  # and the loop goes on


@pytest.mark.slow
def test_killing_the_emulator_mid_check_is_board_trouble(people, state, tmp_path):
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


SABOTAGE = """

_predict = predict
_calls = [0]


def predict(x, out=None):
    _calls[0] += 1
    if _calls[0] == 300:
        import machine
        machine.reset()
    return _predict(x, out)
"""


@pytest.mark.slow
def test_machine_reset_mid_check_is_board_trouble(people, state, tmp_path):
    need_pico()
    path = str(people.save(tmp_path / "people.json"))
    form = forms.make(people)
    with rp2040.PicoBoard() as board:
        deploy_micropython(form, board.url, module_text=codegen.render_micropython(form) + SABOTAGE)
        r = subprocess.run([*BOARDNET, "check", path, "--port", board.url, "--n", "1000", "--timeout", "5",
                            "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and r.stdout == "", r.stderr
    assert re.search(r"restarted|no reply", r.stderr) and len(r.stderr.strip().splitlines()) == 1
