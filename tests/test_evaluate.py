"""`boardnet evaluate`, `train --test` and `export --data`: a labelled test file scored where
the model runs, against an independent computation of the metrics, on the host in float32 and
q15 and on the virtual boards (whose reports equal the host's)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import need_emulated, need_node

from boardnet import forms
from boardnet.cli import main
from boardnet.data import read_csv
from boardnet.metrics import classification, regression
from boardnet.model import Model
from boardnet.train import TrainConfig, train

LABELS = ("setosa", "versicolor", "virginica")
CENTRES = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])


def three_class_rows(n: int, seed: int, spread: float = 0.45) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = np.arange(n) % 3
    return np.round(CENTRES[k] + rng.normal(0, spread, (n, 4)), 3), k  # as written to the file


def write_csv(path, X, k, order=("a", "b", "c", "d", "species"), extra=False):
    """Columns in `order`; with `extra` an id column first."""
    cols = {"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "d": X[:, 3], "species": [LABELS[i] for i in k]}
    lines = [("id," if extra else "") + ",".join(order)]
    for r in range(len(k)):
        cells = [str(cols[c][r]) if c == "species" else f"{cols[c][r]:.3f}" for c in order]
        lines.append((f"row{r}," if extra else "") + ",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """A 4-16-3 model trained on 150 rows (spread so that the test set has mistakes) and
    a 90-row test file."""
    d = tmp_path_factory.mktemp("eval")
    write_csv(d / "train.csv", *three_class_rows(150, 0))
    X, k = three_class_rows(90, 1, spread=0.6)
    test = write_csv(d / "test.csv", X, k)
    model = train(read_csv(d / "train.csv", "species"),
                  TrainConfig(hidden=(16,), epochs=40, batch_size=8, seed=1, name="iris"))
    return model.save(d / "iris.json"), test, model, X, k


def run_json(capsys, *args) -> tuple[int, dict]:
    status = main([*map(str, args), "--json"])
    return status, json.loads(capsys.readouterr().out)


# ---- the metrics against an independent computation ----------------------------------------
def independent(Y: np.ndarray, k: np.ndarray) -> dict:
    """Accuracy, confusion matrix, per-class precision and recall, balanced accuracy and log
    loss, written out with Python loops."""
    n, c = Y.shape
    pred = [max(range(c), key=lambda j: Y[i, j]) for i in range(n)]
    C = [[sum(1 for i in range(n) if k[i] == t and pred[i] == p) for p in range(c)] for t in range(c)]
    precision = [C[j][j] / sum(C[i][j] for i in range(c)) if sum(C[i][j] for i in range(c)) else 0.0
                 for j in range(c)]
    recall = [C[j][j] / sum(C[j]) for j in range(c)]
    loss = 0.0
    for i in range(n):
        p = [min(max(float(v), 1e-7), 1 - 1e-7) for v in Y[i]]
        loss -= math.log(p[k[i]] / sum(p))
    return {"accuracy": sum(C[j][j] for j in range(c)) / n, "confusion": C, "precision": precision,
            "recall": recall, "balanced_accuracy": sum(recall) / c, "log_loss": loss / n}


def test_evaluate_agrees_with_an_independent_computation(capsys, iris):
    path, test, model, X, k = iris
    status, ev = run_json(capsys, "evaluate", path, test)
    assert status == 0 and ev["on"] == "host" and ev["precision"] == "f32" and ev["n"] == 90
    m = ev["metrics"]
    ref = independent(forms.make(model, "f32").predict(X), k)
    assert 0.5 < ref["accuracy"] < 1.0  # mistakes to count
    assert m["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-12)
    assert m["confusion"] == ref["confusion"] and m["labels"] == list(LABELS)
    assert [c["precision"] for c in m["classes"]] == pytest.approx(ref["precision"], abs=1e-12)
    assert [c["recall"] for c in m["classes"]] == pytest.approx(ref["recall"], abs=1e-12)
    assert [c["support"] for c in m["classes"]] == [30, 30, 30]
    assert m["balanced_accuracy"] == pytest.approx(ref["balanced_accuracy"], abs=1e-12)
    assert m["log_loss"] == pytest.approx(ref["log_loss"], rel=1e-9)


def test_metrics_match_scikit_learn_when_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    k = rng.integers(0, 4, 300)
    k[:3] = 3  # class 3 is never predicted below: precision 0 by definition
    Y = rng.uniform(0, 1, (300, 4))
    Y[:, 3] = 0.0
    Y[np.arange(200), k[:200]] += 0.7  # mostly right, with certain mistakes and exact zeros
    m = classification(k, Y, ("a", "b", "c", "d"))
    pred = np.argmax(Y, axis=1)
    assert m["accuracy"] == pytest.approx(metrics.accuracy_score(k, pred))
    assert m["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(k, pred))
    assert m["confusion"] == metrics.confusion_matrix(k, pred, labels=range(4)).tolist()
    p, r, f, s = metrics.precision_recall_fscore_support(k, pred, labels=range(4), zero_division=0)
    assert [c["precision"] for c in m["classes"]] == pytest.approx(p.tolist())
    assert [c["f1"] for c in m["classes"]] == pytest.approx(f.tolist())
    P = np.clip(Y, 1e-7, 1 - 1e-7)
    assert m["log_loss"] == pytest.approx(metrics.log_loss(k, P / P.sum(1, keepdims=True), labels=range(4)))
    y, yhat = rng.normal(size=50), rng.normal(size=50)
    r = regression(y, yhat)
    assert r["mae"] == pytest.approx(metrics.mean_absolute_error(y, yhat))
    assert r["rmse"] == pytest.approx(metrics.mean_squared_error(y, yhat) ** 0.5)
    assert r["r2"] == pytest.approx(metrics.r2_score(y, yhat))


def test_binary_and_regression_reports(tmp_path, capsys):
    rng = np.random.default_rng(2)
    X = rng.normal(0, 1, (80, 2))
    label = np.where(X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 0.5, 80) > 0, "yes", "no")
    value = 3 * X[:, 0] - X[:, 1] + rng.normal(0, 0.3, 80)
    csv = tmp_path / "b.csv"
    csv.write_text("p,q,ok,v\n" + "".join(f"{a},{b},{c},{d}\n" for (a, b), c, d in zip(X, label, value)))
    for target, extra in (("ok", ["--positive", "no"]), ("v", ["--regression"])):
        assert main(["train", str(csv), "--target", target, "--features", "p,q", "-o", str(tmp_path / "m.json"),
                     "--epochs", "30", "--batch-size", "4", "--quiet", *extra]) == 0
        capsys.readouterr()
        status, ev = run_json(capsys, "evaluate", tmp_path / "m.json", csv)
        assert status == 0
        Y = forms.make(Model.load(tmp_path / "m.json"), "f32").predict(X)
        m = ev["metrics"]
        if target == "ok":  # output 1 is P(ok=no): the class is "no" when it is >= 0.5
            truth = label == "no"
            said = Y[:, 0] >= 0.5
            assert m["labels"] == ["yes", "no"]
            assert m["accuracy"] == pytest.approx(np.mean(said == truth))
            assert m["confusion"] == [[int(np.sum(~truth & ~said)), int(np.sum(~truth & said))],
                                      [int(np.sum(truth & ~said)), int(np.sum(truth & said))]]
            p = np.clip(Y[:, 0], 1e-7, 1 - 1e-7)
            assert m["log_loss"] == pytest.approx(-np.mean(np.where(truth, np.log(p), np.log(1 - p))))
        else:
            err = Y[:, 0] - value
            assert m["mae"] == pytest.approx(np.mean(np.abs(err)))
            assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
            assert m["r2"] == pytest.approx(1 - np.sum(err**2) / np.sum((value - value.mean()) ** 2))
            assert m["r2"] > 0.8


def test_q15_on_the_host_is_the_integer_model(capsys, iris):
    path, test, model, X, k = iris
    status, ev = run_json(capsys, "evaluate", path, test, "--precision", "q15")
    q15 = forms.make(model, "q15")
    assert status == 0 and ev["precision"] == "q15" and ev["fingerprint"] == q15.fingerprint
    ref = independent(q15.predict(X), k)
    assert ev["metrics"]["confusion"] == ref["confusion"]
    assert ev["metrics"]["log_loss"] == pytest.approx(ref["log_loss"], rel=1e-9)
    _, f32 = run_json(capsys, "evaluate", path, test)
    assert ev["metrics"]["log_loss"] != f32["metrics"]["log_loss"]  # another model, not the float one


def test_text_report_names_where_and_the_classes(capsys, iris, tmp_path):
    path, test, *_ = iris
    png = tmp_path / "confusion.png"
    assert main(["evaluate", str(path), str(test), "--plot", str(png)]) == 0
    out, err = capsys.readouterr()
    assert "computed on  host, the f32 reference" in out and "balanced accuracy" in out and "log loss" in out
    assert "confusion (rows: true, columns: predicted)" in out
    assert all(label in out for label in LABELS)
    assert err.strip() == f"wrote {png}" and png.read_bytes()[:4] == b"\x89PNG"


# ---- files read the way train reads them ---------------------------------------------------
def test_columns_in_any_order_label_last_or_first_and_extra_columns_noted(capsys, iris, tmp_path):
    path, test, model, X, k = iris
    _, base = run_json(capsys, "evaluate", path, test)
    shuffled = write_csv(tmp_path / "s.csv", X, k, order=("species", "d", "b", "a", "c"), extra=True)
    status = main(["evaluate", str(path), str(shuffled), "--json"])
    captured = capsys.readouterr()
    assert status == 0 and json.loads(captured.out)["metrics"] == base["metrics"]
    notes = captured.err.strip().splitlines()
    assert len(notes) == 1 and "ignoring column id" in notes[0]


def test_a_file_without_the_target_column_is_exit_2_with_the_columns(capsys, iris, tmp_path):
    path, test, model, X, k = iris
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("\n".join(",".join(r.split(",")[:4]) for r in test.read_text().splitlines()) + "\n")
    assert main(["evaluate", str(path), str(unlabelled)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.endswith("u.csv:1: no target column 'species'; the columns are a, b, c, d")


def test_an_unknown_label_is_one_line_with_the_cell(capsys, iris, tmp_path):
    path, test, *_ = iris
    bad = tmp_path / "bad.csv"
    bad.write_text(test.read_text().replace("virginica", "virginca", 1))
    assert main(["evaluate", str(path), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.csv:4:5: 'virginca' is not a class of the model (did you mean 'virginica'?)" in err


# ---- train --test and export --data ----------------------------------------------------------
def test_train_test_prints_the_evaluate_report(tmp_path, capsys, iris):
    _, test, *_ = iris
    train_csv = write_csv(tmp_path / "train.csv", *three_class_rows(150, 0))
    args = ["train", str(train_csv), "--target", "species", "-o", str(tmp_path / "m.json"), "--hidden", "16",
            "--epochs", "40", "--batch-size", "8", "--seed", "1", "--test", str(test)]
    assert main(args) == 0
    trained = capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "m.json"), str(test)]) == 0
    evaluated = capsys.readouterr().out
    assert evaluated.strip() in trained
    status, summary = run_json(capsys, *args)
    _, ev = run_json(capsys, "evaluate", tmp_path / "m.json", test)
    assert status == 0 and summary["test"]["metrics"] == ev["metrics"]


def test_train_test_reads_the_test_file_before_training(tmp_path, capsys, iris):
    _, test, *_ = iris
    train_csv = write_csv(tmp_path / "train.csv", *three_class_rows(30, 0))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c,d\n1,2,3,4\n")
    assert main(["train", str(train_csv), "--target", "species", "-o", str(tmp_path / "m.json"),
                 "--test", str(bad)]) == 2
    assert "no target column 'species'" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_export_q15_reports_the_accuracy_change_on_test_rows(tmp_path, capsys, iris):
    path, test, *_ = iris
    status, out = run_json(capsys, "export", path, "--precision", "q15", "--c", tmp_path, "--data", test)
    _, f32 = run_json(capsys, "evaluate", path, test)
    _, q15 = run_json(capsys, "evaluate", path, test, "--precision", "q15")
    assert status == 0
    assert out["test"]["f32"] == f32["metrics"] and out["test"]["q15"] == q15["metrics"]
    assert out["accuracy"]["inputs"] == 90 and out["accuracy"]["sample"] == "given rows"
    assert main(["export", str(path), "--precision", "q15", "--c", str(tmp_path), "--data", str(test)]) == 0
    text = capsys.readouterr().out
    a, b = f32["metrics"]["accuracy"], q15["metrics"]["accuracy"]
    assert f"(90 rows), f32 -> q15: accuracy {a:.4g} -> {b:.4g} ({b - a:+.2g})" in text


# ---- on the boards: the board's own outputs give the host's report -----------------------------
@pytest.mark.parametrize("port,precision", [
    pytest.param("sim", "f32", marks=pytest.mark.node),
    pytest.param("sim", "q15", marks=pytest.mark.node),
    pytest.param("sim-m0", "f32", marks=[pytest.mark.cross, pytest.mark.qemu]),
    pytest.param("sim-m0", "q15", marks=[pytest.mark.cross, pytest.mark.qemu]),
])
def test_evaluate_on_a_board_equals_the_host_report(capsys, iris, port, precision):
    if port == "sim":
        need_node()
    else:
        need_emulated("m0")
    path, test, *_ = iris
    _, host = run_json(capsys, "evaluate", path, test, "--precision", precision)
    status, board = run_json(capsys, "evaluate", path, test, "--precision", precision, "--port", port)
    assert status == 0 and board["on"] == "board" and board["port"] == port
    assert board["fingerprint"] == host["fingerprint"] and board["board"]["precision"] == precision
    assert board["agreement"]["outside_tolerance"] == 0
    if port == "sim" and precision == "f32":
        # the WebAssembly MicroPython computes in float64: within check's forward-error bound of
        # the float32 reference, so classes agree and the log loss to rounding
        assert board["board"]["platform"] == "webassembly"
        h, b = host["metrics"], board["metrics"]
        assert b["log_loss"] == pytest.approx(h["log_loss"], rel=1e-6)
        assert {**b, "log_loss": 0} == {**h, "log_loss": 0}
    else:
        # float32 on the C firmware, integers for q15: the board computes the host's bits
        assert board["agreement"]["identical"]
        assert board["metrics"] == host["metrics"]
