"""`boardnet check` on an integer (q15) model demands identical integers, on the virtual
MicroPython board and on the emulated Cortex-M0 and RISC-V boards running the C firmware."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import need_emulated, need_node

from boardnet import forms
from boardnet.cli import main
from boardnet.commands.check import check
from boardnet.commands.target import attach
from boardnet.errors import BoardError
from boardnet.link.ports import resolve
from boardnet.model import Model


@pytest.fixture(scope="module")
def people_file(people, tmp_path_factory):
    return people.save(tmp_path_factory.mktemp("q15") / "people.json")


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    rng = np.random.default_rng(3)
    sizes = [8, 16, 1]
    model = Model.from_arrays([rng.normal(0, 0.7, (o, i)) for i, o in zip(sizes[:-1], sizes[1:])],
                              [rng.normal(0, 0.3, o) for o in sizes[1:]], name="wide")
    return model.save(tmp_path_factory.mktemp("q15") / "wide.json")


def run_check(capsys, *args) -> tuple[int, dict]:
    status = main(["check", *map(str, args), "--precision", "q15", "--json"])
    return status, json.loads(capsys.readouterr().out)


@pytest.mark.node
@pytest.mark.parametrize("which", ["people_file", "wide"])
def test_q15_check_is_exact_on_the_virtual_micropython_board(capsys, request, which):
    need_node()
    status, report = run_check(capsys, request.getfixturevalue(which), "--port", "sim", "--n", "1000")
    assert status == 0 and report["passed"]
    assert report["max_ulp"] == 0 and report["max_abs_error"] == 0.0 and report["n"] == 1000
    assert report["tolerance"].startswith("exact")
    assert report["board"]["precision"] == "q15"


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.parametrize("target", ["m0", "rv32"])
def test_q15_check_is_exact_on_the_emulated_c_boards(capsys, people_file, target):
    need_emulated(target)
    status, report = run_check(capsys, people_file, "--port", f"sim-{target}", "--n", "1000")
    assert status == 0 and report["passed"] and report["max_ulp"] == 0
    assert report["board"]["runtime"] == "c" and report["instructions_per_inference"] > 0


@pytest.mark.node
def test_a_board_running_q15_is_named_when_checked_as_f32(capsys, people):
    """The fingerprint guard says which form the board runs instead of a bare mismatch."""
    need_node()
    model = people
    with attach(resolve("sim"), forms.make(model, "q15")) as where:
        with pytest.raises(BoardError, match="runs 'people' in q15, not f32: add --precision q15"):
            check(model, where.url, n=10, timing=False)
        report = check(model, where.url, n=200, precision="q15", timing=False)
    assert report.passed and report.class_agreement == 1.0


@pytest.mark.node
def test_q15_predict_on_the_board_beside_the_host(capsys, people_file):
    need_node()
    assert main(["predict", str(people_file), "128", "63", "155", "68", "--port", "sim", "--precision", "q15",
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["ulp"] for r in rows] == [[0], [0]]
    assert rows[0]["board"][0] > 0.9 > 0.1 > rows[1]["board"][0]
