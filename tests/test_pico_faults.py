"""The protocol's fault classes on the emulated Raspberry Pi Pico, for the MicroPython serve
loop and the C firmware alike: random bytes, a 100 KB line, NUL, bare CR, then a correct
answer; 10,000 requests in a burst."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need_pico, need_pico_sdk

from boardnet import forms, virtual
from boardnet.commands.deploy import deploy_micropython
from boardnet.link import Link, open_link, open_serial

pytestmark = pytest.mark.pico


@pytest.fixture(params=["micropython", "c"], scope="module")
def serving(request, people, pico_state):
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


