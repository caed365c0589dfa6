"""Faults in the middle of a check, produced by the real runtime on the virtual MicroPython
board (not a fake peer): the model module deployed there resets the board, stalls, or raises
after some predictions, and check reports board trouble (exit 3) without counting anything
after the fault as a match."""

from __future__ import annotations

import pytest
from conftest import need_node, sabotaged, seed_model

from boardnet import codegen, forms
from boardnet.cli import main
from boardnet.commands.deploy import deploy_micropython
from boardnet.virtual.wasm import MicroPythonSim


@pytest.fixture
def board():
    need_node()
    with MicroPythonSim() as b:
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
    model = seed_model()
    path = model.save(tmp_path / "seed.json")
    form = forms.make(model)
    deploy_micropython(form, board.port, module_text=sabotaged(codegen.render_micropython(form), fault))
    status = main(["check", str(path), "--port", board.port, "--n", "1000", "--timeout", "3", "--json"])
    captured = capsys.readouterr()
    assert status == 3, captured
    assert captured.out == ""  # no report: nothing was counted
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1
