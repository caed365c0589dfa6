"""The CLI as a user runs it: one line per error, exit statuses of CONTRACT.md."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from boardnet import forms
from boardnet.cli import main
from boardnet.model import Model


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "boardnet.cli", *args], capture_output=True,
                          text=True, input=stdin, timeout=120)


@pytest.fixture(scope="module")
def people_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--host-only"]) == 0
    return out / "people.json"


def test_demo_predicts_emily_female_and_frank_male(tmp_path):
    r = run("demo", "--out", str(tmp_path), "--host-only", "--json")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)["predictions"]
    assert p["Emily"]["class"] == "F" and p["Emily"]["p_female"] > 0.9
    assert p["Frank"]["class"] == "M" and p["Frank"]["p_female"] < 0.1


def test_train_info_predict(tmp_path):
    csv = tmp_path / "d.csv"
    rows = ["x,y,label"] + [f"{i},{(i * 7) % 11},{'hi' if i % 11 > 5 else 'lo'}" for i in range(60)]
    csv.write_text("\n".join(rows) + "\n")
    model = tmp_path / "m.json"
    plot = tmp_path / "loss.png"
    r = run("train", str(csv), "--target", "label", "-o", str(model), "--hidden", "6", "--epochs", "30",
            "--batch-size", "4", "--plot", str(plot), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["n_val"] == 12 and "val_accuracy" in summary
    assert plot.read_bytes()[:4] == b"\x89PNG"
    r = run("info", str(model), "--json")
    info = json.loads(r.stdout)
    assert info["sizes"] == [2, 6, 1] and info["labels"] == ["hi", "lo"]
    r = run("predict", str(model), "3", "4", "10,2", "--json")
    rows = json.loads(r.stdout)
    assert [row["x"] for row in rows] == [[3, 4], [10, 2]] and all(row["class"] in ("hi", "lo") for row in rows)
    r = run("predict", str(model), "--file", "-", stdin="x,y\n3,4\n")
    assert r.returncode == 0 and "x=3, y=4" in r.stdout


def test_interactive_predict_reads_rows_until_eof(people_model):
    r = run("predict", str(people_model), stdin="128 63\nnot a number\n155,68\n")
    assert r.returncode == 0
    lines = r.stdout.strip().splitlines()
    assert lines[0].endswith("(F)") and lines[1].endswith("(M)")
    assert "'not' is not a number" in r.stderr


@pytest.mark.parametrize(
    "args,status,message",
    [
        (["train", "MISSING.csv", "--target", "g", "-o", "m.json"], 2, "MISSING.csv: no such file"),
        (["info", "MISSING.json"], 2, "no such model file"),
        (["predict", "{model}", "1"], 2, "the model takes 2 values per row; got 1"),
        (["train", "{csv}", "--target", "g", "-o", "m.json", "--lr", "-1"], 2, "--lr must be a positive number"),
    ],
)
def test_errors_are_one_line_with_the_contract_status(tmp_path, people_model, args, status, message):
    csv = tmp_path / "d.csv"
    csv.write_text("a,g\n1,x\n2,y\n")
    args = [a.format(model=people_model, csv=csv) for a in args]
    r = run(*args)
    assert r.returncode == status
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_csv_exits_2_with_file_line_column(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,g\n1,2,x\n3,,y\n")
    r = run("train", str(csv), "--target", "g", "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2 and r.stderr.strip().endswith("d.csv:3:2: missing value in column 'b'")
    assert not (tmp_path / "m.json").exists()


def test_export_writes_both_artefacts_and_the_fit(tmp_path, people_model):
    r = run("export", str(people_model), "--c", str(tmp_path / "c"), "--micropython", str(tmp_path / "mp"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert sorted(p.rsplit("/", 1)[1] for p in out["written"]) == ["people.h", "people.py"]
    assert out["fit"]["weight_bytes"] == 9 * 4
    assert "people_predict" in (tmp_path / "c" / "people.h").read_text()
    r = run("export", str(people_model))
    assert r.returncode == 2 and "--c DIR and/or --micropython DIR" in r.stderr


# ---- files read the way train reads them ---------------------------------------------------
def test_quoted_names_with_commas_and_newlines_and_the_label_last(tmp_path):
    """train accepts quoted header names holding a comma or a newline; predict --file reads the
    same file (label last, an id column) by name, noting the columns it leaves out once."""
    csv = tmp_path / "q.csv"
    rows = [f"p{i},{100 + 3 * i},{60 + (i * 7) % 9},{'F' if i % 2 else 'M'}" for i in range(12)]
    csv.write_text('id,"weight, lb","height\nin",gender\n' + "\n".join(rows) + "\n")
    model = tmp_path / "q.json"
    r = run("train", str(csv), "--target", "gender", "-o", str(model), "--epochs", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    assert Model.load(model).features == ("weight, lb", "height\nin")
    r = run("predict", str(model), "--file", str(csv), "--json")
    assert r.returncode == 0, r.stderr
    assert [row["x"] for row in json.loads(r.stdout)][:2] == [[100, 60], [103, 67]]
    notes = r.stderr.strip().splitlines()
    assert notes == [f"boardnet: warning: {csv}: ignoring columns id, gender (not among the model's inputs)"]
    r = run("info", str(model))
    assert "inputs   weight, lb, height\\nin (normalization" in r.stdout


def test_predict_file_errors_are_trains_errors(tmp_path, people_model):
    csv = tmp_path / "d.csv"
    csv.write_text("height_in,weight_lb,gender\n63,128,F\n68,,M\n")
    r = run("predict", str(people_model), "--file", str(csv))
    assert r.returncode == 2 and r.stderr.strip().endswith("d.csv:3:2: missing value in column 'weight_lb'")
    csv.write_text("height_in,weight,gender\n63,128,F\n")
    r = run("predict", str(people_model), "--file", str(csv))
    assert r.returncode == 2 and "d.csv:1: no column 'weight_lb' (did you mean 'weight'?)" in r.stderr


class ReferenceBoard:
    """A board on a pseudo-terminal that answers with the float32 reference of `model`."""

    def __init__(self, pty_peer, model):
        self.form = forms.make(model, "f32")
        self.requests: list[str] = []
        self.peer = pty_peer(self.respond)
        self.port = self.peer.port

    def respond(self, line, peer):
        self.requests.append(line)
        f = self.form
        if line == "hello":
            return (f"OK hello proto=1 runtime=c platform=rp2040 model={f.model.name} fp={f.fingerprint} "
                    f"precision=f32 n_in={f.model.n_in} n_out={f.model.n_out} window=4 line=256\r\n").encode()
        words = line.split()
        if words[0] == "x":
            x = np.array([int(w, 16) for w in words[2:]], dtype=np.uint32).view(np.float32)
            return f"OK {words[1]} {f.encode(f.reference(x[None, :])[0])}\r\n".encode()
        if words[0] == "time":
            n = int(words[1])
            return f"OK time n={n} total={30 * n} unit=us per=30\r\n".encode()
        return b"ERR cmd unknown\r\n"


def test_space_separated_rows_piped_to_predict_port(pty_peer, people_model):
    board = ReferenceBoard(pty_peer, Model.load(people_model))
    r = run("predict", str(people_model), "--port", board.port, "--json", stdin="128 63\n155 68\n")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["x"] for row in rows] == [[128, 63], [155, 68]] and [row["ulp"] for row in rows] == [[0], [0]]
    assert [row["class"] for row in rows] == ["F", "M"]
    assert sum(line.startswith("x ") for line in board.requests) == 2


# ---- names from user data in messages ------------------------------------------------------
def test_long_names_with_control_characters_stay_one_short_line(tmp_path):
    name = "weight\rkg" + "x" * 9991
    csv = tmp_path / "n.csv"
    csv.write_text(f'"{name}",b,label\n' + "".join(f"{i},{i % 3},{'u' if i % 2 else 'v'}\n" for i in range(8)))
    r = run("train", str(csv), "--target", "lable", "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and len(r.stderr) < 300
    assert "no column 'lable' (did you mean 'label'?)" in r.stderr
    assert "the columns are weight\\rkgxxx" in r.stderr and "(10000 characters), b, label" in r.stderr
    r = run("train", str(csv), "--target", "label", "-o", str(tmp_path / "m.json"), "--epochs", "2")
    assert r.returncode == 0, r.stderr
    r = run("info", str(tmp_path / "m.json"))
    assert r.returncode == 0 and "\r" not in r.stdout
    assert all(len(line) < 200 for line in r.stdout.splitlines())


# ---- predict: values and options in any order, the form asked for ---------------------------
def test_predict_takes_options_and_values_in_any_order(people_model):
    r = run("predict", str(people_model), "--json", "128", "63", "155,68")
    assert r.returncode == 0, r.stderr
    assert [row["class"] for row in json.loads(r.stdout)] == ["F", "M"]
    r = run("predict", "--json", str(people_model), "128", "--precision", "q15", "63")
    assert r.returncode == 0, r.stderr and json.loads(r.stdout)[0]["class"] == "F"
    r = run("predict", str(people_model), "128", "--bogus", "63")
    assert r.returncode == 2 and "unrecognized arguments: --bogus" in r.stderr


def test_predict_q15_on_the_host_is_the_integer_model(people_model):
    model = Model.load(people_model)
    X = np.array([[128.0, 63.0], [155.0, 68.0], [140.0, 66.0]])
    ys = {}
    for precision in ("f32", "q15"):
        r = run("predict", str(people_model), *[f"{a},{b}" for a, b in X], "--precision", precision, "--json")
        assert r.returncode == 0, r.stderr
        ys[precision] = [row["y"][0] for row in json.loads(r.stdout)]
    assert ys["q15"] == forms.make(model, "q15").predict(X)[:, 0].tolist()
    assert ys["f32"] == forms.make(model, "f32").predict(X)[:, 0].tolist()
    assert ys["q15"] != ys["f32"]


# ---- plots say where they went ----------------------------------------------------------------
def test_plots_say_where_they_were_written(tmp_path, pty_peer, people_model):
    board = ReferenceBoard(pty_peer, Model.load(people_model))
    png = tmp_path / "parity.png"
    r = run("check", str(people_model), "--port", board.port, "--n", "50", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().endswith(f"wrote {png}") and png.exists()
    csv = tmp_path / "d.csv"
    csv.write_text("a,g\n1,x\n2,y\n3,x\n4,y\n")
    r = run("train", str(csv), "--target", "g", "-o", str(tmp_path / "m.json"), "--epochs", "3",
            "--plot", str(tmp_path / "loss.png"))
    assert r.returncode == 0 and r.stderr.strip().endswith(f"wrote {tmp_path / 'loss.png'}")
