"""Faults in the middle of a check, produced by the real runtime on the virtual MicroPython
board (not a fake peer): the model module deployed there resets the board, stalls, or raises
after some predictions, and check reports board trouble (exit 3) without counting anything
after the fault as a match."""

from __future__ import annotations

import pytest
from conftest import need, need_exe

from boardnet import export
from boardnet.cli import main
from boardnet.model import Model

SABOTAGE = """

_predict = predict
_calls = [0]


def predict(x, out=None):
    _calls[0] += 1
    if _calls[0] == 300:
        {fault}
    return _predict(x, out)
"""


def seed_model() -> Model:
    return Model.from_arrays([[[1.5, -2.0], [0.5, 0.25]], [[1.0, -1.0]]], [[0.1, -0.2], [0.3]], name="seed")


@pytest.fixture
def board():
    need_exe("node")
    from boardnet import sim

    need(sim._has_wasm(sim.SIM_DIR / "node_modules"), "MicroPython WebAssembly build missing: npm ci --prefix host/boardnet/sim")
    with sim.MicroPythonSim() as b:
        yield b


@pytest.mark.node
@pytest.mark.parametrize(
    "fault,message",
    [
        ("import machine; machine.reset()", "restarted or crashed"),
        ("import time; time.sleep(3600)", "no reply from the board"),
        ("raise MemoryError('sabotage')", "ERR"),
    ],
    ids=["reset", "stall", "exception"],
)
def test_a_fault_mid_check_is_board_trouble_not_a_match(board, tmp_path, capsys, fault, message):
    from boardnet.deploy import deploy_micropython

    model = seed_model()
    path = model.save(tmp_path / "seed.json")
    deploy_micropython(model, board.port, module_text=export.render_micropython(model) + SABOTAGE.format(fault=fault))
    status = main(["check", str(path), "--port", board.port, "--n", "1000", "--timeout", "3", "--json"])
    captured = capsys.readouterr()
    assert status == 3, captured
    assert captured.out == ""  # no report: nothing was counted
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1
