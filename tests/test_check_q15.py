"""`boardnet check` on an integer (q15) model demands identical integers, on the virtual
MicroPython board and on the emulated Cortex-M0 and RISC-V boards running the C firmware."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import need, need_exe

from boardnet.cli import main
from boardnet.demo import train_people
from boardnet.model import Model


def need_virtual_board() -> None:
    need_exe("node")
    from boardnet.sim import ensure_node_modules

    try:
        ensure_node_modules()
    except Exception as e:  # noqa: BLE001 - the reason is what the skip shows
        need(False, f"MicroPython WebAssembly build not installed: {e}")


def need_emulated(target: str) -> None:
    from boardnet.firmware import toolchain_missing

    missing = toolchain_missing(target)
    need(missing is None, missing or "")


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    return train_people(1).save(tmp_path_factory.mktemp("q15") / "people.json")


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
@pytest.mark.parametrize("which", ["people", "wide"])
def test_q15_check_is_exact_on_the_virtual_micropython_board(capsys, request, which):
    need_virtual_board()
    status, report = run_check(capsys, request.getfixturevalue(which), "--port", "sim", "--n", "1000")
    assert status == 0 and report["passed"]
    assert report["max_ulp"] == 0 and report["max_abs_error"] == 0.0 and report["n"] == 1000
    assert report["tolerance"].startswith("exact")
    assert report["board"]["precision"] == "q15"


@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.parametrize("target", ["m0", "rv32"])
def test_q15_check_is_exact_on_the_emulated_c_boards(capsys, people, target):
    need_emulated(target)
    status, report = run_check(capsys, people, "--port", f"sim-{target}", "--n", "1000")
    assert status == 0 and report["passed"] and report["max_ulp"] == 0
    assert report["board"]["runtime"] == "c" and report["instructions_per_inference"] > 0


@pytest.mark.node
def test_a_board_running_q15_is_named_when_checked_as_f32(capsys, people):
    """The fingerprint guard says which form the board runs instead of a bare mismatch."""
    need_virtual_board()
    from boardnet.check import check
    from boardnet.errors import BoardError
    from boardnet.ports import resolve

    model = Model.load(people)
    with resolve("sim", model, precision="q15") as where:
        with pytest.raises(BoardError, match="runs 'people' in q15, not f32: add --precision q15"):
            check(model, where.url, n=10, timing=False)
        report = check(model, where.url, n=200, precision="q15", timing=False)
    assert report.passed and report.class_agreement == 1.0


@pytest.mark.node
def test_q15_predict_on_the_board_beside_the_host(capsys, people):
    need_virtual_board()
    assert main(["predict", str(people), "128", "63", "155", "68", "--port", "sim", "--precision", "q15",
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["ulp"] for r in rows] == [[0], [0]]
    assert rows[0]["board"][0] > 0.9 > 0.1 > rows[1]["board"][0]
