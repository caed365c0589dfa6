"""The native module on the emulated Raspberry Pi Pico (the official MicroPython 1.28 rp2
firmware on rp2040js): deploy --native then check at 0 ulp (f32) and exact (q15); the module
by hand with mpremote, as the generated one; predict with `out` allocates nothing; the libgcc
float path (for Cortex-M0+ boards other than the RP2040) gives the same bits; and a native
module of another architecture or .mpy version is refused before anything is copied."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import NETS, need_native, need_pico, random_model, run_json, seed_model

from boardnet import forms, virtual
from boardnet.commands.deploy import NATIVE_BOARD, deploy_micropython
from boardnet.firmware import natmod
from boardnet.link import micropython as mp

pytestmark = [pytest.mark.pico, pytest.mark.cross]


def need_all() -> None:
    need_pico()
    need_native("armv6m")


def bits(values) -> list[str]:
    return [f"{int(v):08x}" for v in np.asarray(values, dtype=np.float32).view(np.uint32).ravel()]


def on_board(port: str, code: str) -> str:
    r = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, "exec", code],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["f32", "q15"])
@pytest.mark.parametrize("net", NETS)
def test_native_module_on_the_pico_matches_the_host_exactly(pico_models, pico_state, net, precision):
    need_all()
    status, deployed = run_json("deploy", pico_models[net], "--port", "sim-pico", "--precision", precision,
                                "--native")
    assert status == 0, deployed
    assert deployed["native"] == "armv6m" and deployed["notes"] == []
    assert "boardnet_model.mpy" in deployed["copied"] + deployed["unchanged"]
    status, report = run_json("check", pico_models[net], "--port", "sim-pico", "--precision", precision,
                              "--n", "1000")
    assert status == 0, report
    assert report["passed"] and report["max_ulp"] == 0 and report["n"] == 1000
    assert report["board"]["platform"] == "rp2"
    assert report["tolerance"].startswith("0 ulp" if precision == "f32" else "exact")


def test_mpremote_exec_uses_the_native_module_as_the_generated_one(people, pico_state):
    need_all()
    form = forms.make(people)
    record = virtual.start_persistent("pico")
    deploy_micropython(form, record["port"], native=NATIVE_BOARD)
    out = on_board(record["port"], (
        "import boardnet_model as m, struct, array, json\n"
        "y = m.predict([128, 63])\n"
        "o = array.array('f', [0.0])\n"
        "m.predict(x=(128.0, 63.0), out=o)\n"
        "try:\n"
        "    m.predict([1.0])\n"
        "    e = None\n"
        "except ValueError as x:\n"
        "    e = str(x)\n"
        "print(json.dumps({'y': struct.pack('>f', y[0]).hex(), 'o': struct.pack('>f', o[0]).hex(),\n"
        "    'n_in': m.N_IN, 'n_out': m.N_OUT, 'fp': m.FINGERPRINT, 'labels': list(m.LABELS),\n"
        "    'features': list(m.FEATURES), 'name': m.NAME, 'precision': m.PRECISION, 'float': m.FLOAT,\n"
        "    'shape': m.SHAPE, 'error': e, 'type': type(y).__name__}))\n"))
    r = json.loads(out.strip().splitlines()[-1])
    host = bits(form.reference(form.inputs([[128, 63]]))[0])[0]
    assert r["y"] == host and r["o"] == host and r["type"] == "list"
    assert (r["n_in"], r["n_out"], r["fp"], r["name"], r["precision"]) == (
        2, 1, form.fingerprint, people.name, "f32")
    assert r["labels"] == list(people.labels) and r["features"] == list(people.features)
    assert r["float"] == "rp2040-rom" and r["shape"] == "native"
    assert r["error"] == "predict: expected 2 inputs"


# inputs travel as float32 bits: MicroPython's decimal parser is not correctly rounded on the
# rp2 (micropython issue 13094), so decimal literals could land an ulp away from the host's
ALLOC = """
import gc, array, json, struct, binascii, mf, mq, mg
def f32s(h, n):
    return list(struct.unpack('<%df' % n, binascii.unhexlify(h)))
X = [f32s(h, {n_in}) for h in {X!r}]
x = X[0]
xq = {xq!r}
def grows(f, args):
    f(*args)
    gc.collect()
    a = gc.mem_alloc()
    for _ in range(1000):
        f(*args)
    return gc.mem_alloc() - a
o = array.array('f', [0.0] * mf.N_OUT)
r = {{'f32_array': grows(mf.predict, (x, o)), 'q15_list': grows(mq.predict, (xq, [0] * mq.N_OUT)),
     'q15_array': grows(mq.predict, (array.array('h', xq), array.array('i', [0] * mq.N_OUT))),
     'f32_list': grows(mf.predict, (x, [0.0] * mf.N_OUT)), 'float': mg.FLOAT}}
r['libgcc'] = [struct.pack('>f', mg.predict(v)[i]).hex() for v in X for i in range(mg.N_OUT)]
r['rom'] = [struct.pack('>f', mf.predict(v)[i]).hex() for v in X for i in range(mf.N_OUT)]
print(json.dumps(r))
"""


def test_predict_with_out_allocates_nothing_and_libgcc_floats_agree(pico_state, tmp_path):
    """`gc.mem_alloc()` over 1,000 calls: unchanged with an array('f') `out` (f32) and with a
    list or array `out` (q15: small ints). A list `out` in f32 takes a new float object per
    output (MicroPython boxes floats on the rp2), so array('f') is the path that allocates
    nothing. The libgcc build (for Cortex-M0+ boards without the RP2040's ROM) gives the ROM
    build's bits, which are the host's."""
    need_all()
    model = random_model([8, 16, 3], 4, "net8x3")
    f32, q15 = forms.make(model), forms.make(model, "q15")
    files = {"mf.mpy": natmod.build_native(f32, "armv6m"), "mq.mpy": natmod.build_native(q15, "armv6m"),
             "mg.mpy": natmod.build_native(f32, "armv6m", cflags=("-DBOARDNET_FLOAT_NO_ROM",))}
    X = np.random.default_rng(5).normal(0, 3, size=(50, 8)).astype(np.float32)
    record = virtual.start_persistent("pico")
    mp.copy_files(record["port"], files)
    out = on_board(record["port"], ALLOC.format(n_in=8, xq=[int(v) for v in q15.inputs(X[:1])[0]],
                                                X=[row.astype("<f4").tobytes().hex() for row in X]))
    r = json.loads(out.strip().splitlines()[-1])
    assert r["f32_array"] == 0 and r["q15_list"] == 0 and r["q15_array"] == 0
    assert r["f32_list"] >= 1000 * 3 * 8  # a boxed float per output per call
    assert r["float"] == "libgcc"
    host = bits(f32.reference(f32.inputs(X)))
    assert r["rom"] == host and r["libgcc"] == host


def files_on(port: str) -> dict:
    return mp.probe(port).files


@pytest.mark.slow
def test_another_architecture_or_mpy_version_is_refused_before_copying(pico_state, tmp_path, monkeypatch):
    need_all()
    model = seed_model("refused")
    path = str(model.save(tmp_path / "refused.json"))
    record = virtual.start_persistent("pico")
    before = files_on(record["port"])
    r = subprocess.run([sys.executable, "-m", "boardnet.cli", "deploy", path, "--port", "sim-pico",
                        "--native", "armv7emsp"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "before copying" in r.stderr
    assert "armv6m" in r.stderr and "armv7emsp" in r.stderr
    # MPY_DIR from another MicroPython: its mpy_ld writes .mpy v6.2, the board imports v6.3
    other = tmp_path / "micropython"
    shutil.copytree(natmod.mpy_dir(), other)
    for tool in ("tools/mpy_ld.py", "tools/mpy-tool.py", "py/persistentcode.h"):
        f = other / tool
        f.write_text(re.sub(r"^(\s*#define MPY_SUB_VERSION|\s*MPY_SUB_VERSION =) 3$", r"\1 2", f.read_text(),
                            flags=re.M))
    monkeypatch.setenv("MPY_DIR", str(other))
    r = subprocess.run([sys.executable, "-m", "boardnet.cli", "deploy", path, "--port", "sim-pico", "--native"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "before copying" in r.stderr, r.stderr
    assert "v6.3" in r.stderr and "v6.2" in r.stderr
    assert files_on(record["port"]) == before  # nothing copied, renamed or removed
