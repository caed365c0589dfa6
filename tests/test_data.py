"""The CSV stage: what a good file gives, and one clear line for each kind of bad file."""

from __future__ import annotations

import io

import numpy as np
import pytest

from boardnet.data import read_csv, read_inputs, read_labelled
from boardnet.errors import DataError
from boardnet.names import listed, shown


def write(tmp_path, text: str, name: str = "d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_text_labels_become_classes_in_sorted_order(tmp_path):
    d = read_csv(write(tmp_path, "w,h,g\n1,2,M\n3,4,F\n5,6,M\n"), "g")
    assert d.task == "binary" and d.labels == ("F", "M") and d.y[:, 0].tolist() == [1, 0, 1]
    d = read_csv(write(tmp_path, "w,h,g\n1,2,M\n3,4,F\n5,6,M\n"), "g", positive="F")
    assert d.labels == ("M", "F") and d.y[:, 0].tolist() == [0, 1, 0]


def test_multiclass_one_hot_and_named_features(tmp_path):
    d = read_csv(write(tmp_path, "a,b,c,kind\n1,2,3,x\n4,5,6,y\n7,8,9,z\n"), "kind", features=["c", "a"])
    assert d.task == "multiclass" and d.features == ("c", "a")
    assert d.X.tolist() == [[3, 1], [6, 4], [9, 7]] and d.y.tolist() == np.eye(3).tolist()


def test_numeric_labels_sort_numerically_and_regression_keeps_values(tmp_path):
    p = write(tmp_path, "a,t\n1,10\n2,9\n3,10\n")
    assert read_csv(p, "t").labels == ("9", "10")
    r = read_csv(p, "t", regression=True)
    assert r.task == "regression" and r.y[:, 0].tolist() == [10, 9, 10]


def test_identifier_columns_are_left_out_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="'name' is text with a different value on every row"):
        d = read_csv(write(tmp_path, "name,w,g\nann,1,a\nbob,2,b\n"), "g")
    assert d.features == ("w",)


def test_constant_column_warns_and_stays_harmless(tmp_path):
    with pytest.warns(UserWarning, match="'c' is constant"):
        d = read_csv(write(tmp_path, "a,c,g\n1,5,x\n2,5,y\n3,5,x\n"), "g")
    from boardnet.train import TrainConfig, train

    model = train(d, TrainConfig(hidden=(2,), epochs=5))
    assert np.all(np.isfinite(model.predict(d.X)))
    assert model.normalization.scale[1] == 1.0


@pytest.mark.parametrize(
    "text,kwargs,message",
    [
        ("", {}, r"d.csv: empty file"),
        ("a,b,g\n", {}, r"d.csv: no data rows after the header"),
        ("a,b,g\n1,2,x\n3,,y\n", {}, r"d.csv:3:2: missing value in column 'b'"),
        ("a,b,g\n1,2,x\n3,nan,y\n", {}, r"d.csv:3:2: missing value in column 'b'"),
        ("a,b,g\n1,2,x\n3,4o,y\n5,6,x\n", {}, r"d.csv:3:2: '4o' is not a number \(column 'b'\)"),
        ("a,b,g\n1,2,x\n3,4\n", {}, r"d.csv:3: row has 2 fields but the header has 3"),
        ("a,b,g\n1,2,x\n3,4,y\n", {"target": "label"}, r"d.csv:1: no column 'label'; the columns are a, b, g"),
        ("a,b,g\n1,2,x\n3,4,x\n", {}, r"d.csv: target 'g' has a single class 'x'"),
        ("a,col,g\n1,red,x\n3,blue,y\n4,red,x\n", {}, r"d.csv:2:2: column 'col' is categorical .*one-hot"),
        ("a,b,g\n1,2,x\n3,4,y\n", {"features": ["a", "zz"]}, r"d.csv:1: no feature column 'zz'"),
        ("a,b,g\n1,2,x\n3,4,\n", {}, r"d.csv:3:3: missing value in target column 'g'"),
        ("a,a,g\n1,2,x\n", {}, r"d.csv:1:2: column name 'a' appears twice"),
        ("a,b,g\n" + "".join(f"{i},{i},{i}.5\n" for i in range(30)), {}, r"30 distinct numeric values; use --regression"),
        ("a,b,g\n1,2,x\n3,4,y\n", {"positive": "z"}, r"--positive 'z' is not a value of 'g'"),
    ],
)
def test_bad_files_get_one_clear_line(tmp_path, text, kwargs, message):
    kwargs = {"target": "g", **kwargs}
    with pytest.raises(DataError, match=message) as e:
        read_csv(write(tmp_path, text), kwargs.pop("target"), **kwargs)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_csv(tmp_path / "nope.csv", "g")


def test_inputs_with_a_header_pick_the_model_features(tmp_path):
    p = write(tmp_path, "name,height_in,weight_lb\nEmily,63,128\nFrank,68,155\n")
    X = read_inputs(p, ("weight_lb", "height_in"))
    assert X.tolist() == [[128, 63], [155, 68]]
    assert read_inputs(write(tmp_path, "128,63\n155,68\n", "r.csv"), ("w", "h")).tolist() == [[128, 63], [155, 68]]
    with pytest.raises(DataError, match=r"r2.csv:2: expected 2 values"):
        read_inputs(write(tmp_path, "1,2\n3\n", "r2.csv"), ("w", "h"))


def test_one_reader_for_inputs_any_order_quoted_names_and_one_note(tmp_path):
    p = write(tmp_path, 'label,"b,\nsecond",id,a\nx,2,r1,1\ny,4,r2,3\n')
    with pytest.warns(UserWarning) as notes:
        X = read_inputs(p, ("a", "b,\nsecond"))
    assert X.tolist() == [[1, 2], [3, 4]]
    assert [str(w.message) for w in notes] == [f"{p}: ignoring columns label, id (not among the model's inputs)"]


def test_bare_rows_separated_by_spaces_or_commas_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("128 63\n155, 68\n\n140\t66\n"))
    assert read_inputs("-", ("w", "h")).tolist() == [[128, 63], [155, 68], [140, 66]]
    monkeypatch.setattr("sys.stdin", io.StringIO("128 63\n155 x\n"))
    with pytest.raises(DataError, match=r"^-:2: value 2, 'x', is not a finite number$"):
        read_inputs("-", ("w", "h"))


def test_inputs_get_the_training_files_errors(tmp_path):
    text = "a,b,g\n1,2,x\n3,4o,y\n5,6,x\n"
    with pytest.raises(DataError) as train_error:
        read_csv(write(tmp_path, text), "g", features=["a", "b"])
    with pytest.raises(DataError) as input_error:
        read_inputs(write(tmp_path, text), ("a", "b"))
    assert str(input_error.value) == str(train_error.value) == f"{tmp_path / 'd.csv'}:3:2: '4o' is not a number (column 'b')"


def test_labelled_files_map_labels_to_the_models_classes(tmp_path):
    p = write(tmp_path, "y,x2,x1\n1.0,2,1\n0,4,3\n1,6,5\n")
    d = read_labelled(p, ("x1", "x2"), "y", "binary", ("0", "1"))
    assert d.X.tolist() == [[1, 2], [3, 4], [5, 6]] and d.classes.tolist() == [1, 0, 1]
    d = read_labelled(p, ("x1", "x2"), "y", "multiclass", ("1", "0", "7"))
    assert d.classes.tolist() == [0, 1, 0] and d.y.shape == (3, 3)
    with pytest.raises(DataError, match=r"d.csv:2:1: '1.0' is not a class of the model; its classes are a, b$"):
        read_labelled(p, ("x1", "x2"), "y", "binary", ("a", "b"))
    with pytest.raises(DataError, match=r"d.csv:1: no feature column 'x22' \(did you mean 'x2'\?\); the model takes x1, x22; the columns are y, x2, x1$"):
        read_labelled(p, ("x1", "x22"), "y", "binary", ("0", "1"))
    r = read_labelled(p, ("x1",), "y", "regression")
    assert r.y[:, 0].tolist() == [1, 0, 1]


@pytest.mark.parametrize("name,expected", [
    ("plain", "'plain'"),
    ("a\rb\nc\x00", "'a\\rb\\nc\\x00'"),
    ("it's", "'it\\'s'"),
    ("x" * 100, "'" + "x" * 27 + "..." + "x" * 10 + "' (100 characters)"),
])
def test_names_in_messages_are_escaped_and_shortened(name, expected):
    assert shown(name) == expected
    assert "\n" not in listed([name] * 100) and len(listed([name] * 100)) < 2000
