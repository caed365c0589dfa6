"""The CLI as a user runs it: one line per error, exit statuses of CONTRACT.md."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from boardnet.cli import main


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
