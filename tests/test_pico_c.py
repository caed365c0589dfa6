"""boardnet's C firmware built by the real pico-sdk (firmware/pico) and run from its UF2 on
the emulated Raspberry Pi Pico: check at 0 ulp (f32) and exact (q15) on three networks."""

from __future__ import annotations

import pytest
from conftest import NETS, need_pico_sdk, run_json

pytestmark = pytest.mark.pico


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["f32", "q15"])
@pytest.mark.parametrize("net", NETS)
def test_c_firmware_on_the_pico_matches_the_host_exactly(pico_models, pico_state, net, precision):
    """firmware/pico built by the pico-sdk with the model's header, run from its UF2."""
    need_pico_sdk()
    status, deployed = run_json("deploy", pico_models[net], "--port", "sim-pico", "--runtime", "c",
                                "--precision", precision)
    assert status == 0, deployed
    assert deployed["runtime"] == "c" and deployed["stays_up"] == "pico"
    status, report = run_json("check", pico_models[net], "--port", "sim-pico", "--precision", precision,
                              "--n", "1000")
    assert status == 0, report
    assert report["passed"] and report["max_ulp"] == 0 and report["n"] == 1000
    assert report["board"]["platform"] == "rp2040" and report["board"]["runtime"] == "c"
    assert report["cycles_per_inference"] > 50


