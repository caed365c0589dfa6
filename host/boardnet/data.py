"""CSV in, arrays out: the first stage of the pipeline.

A data file is a CSV with a header line. The target is named with --target; the features
are the other columns unless named. Every problem in a file is reported as one line with
the file, the line and the column, so a user can go straight to the cell.

One reader (`read_rows`) reads every file: the training file (`read_csv`), rows to predict
(`read_inputs`: predict --file, check --data) and labelled test files (`read_labelled`:
evaluate, train --test). Columns are found by their header name in any order, quoted names
may hold commas and newlines, and columns a command does not use are named in one note.
Names from the file appear in messages escaped and shortened (names.shown).
"""

from __future__ import annotations

import csv
import io
import math
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, UsageError
from .names import listed, nearest, shown

MAX_CLASSES_WITHOUT_REGRESSION = 20
# A number a person types: the boards' grammar for human request lines (docs/protocol.md),
# so the host reads a typed row exactly as the board does
DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray  # (n, n_in) raw units
    y: np.ndarray  # (n, n_out): 0/1 for binary, one-hot for multi-class, values for regression
    features: tuple[str, ...]
    target: str
    task: str  # binary | multiclass | regression
    labels: tuple[str, ...]  # classes in output order (binary: negative, positive)
    source: str = "data"

    @property
    def classes(self) -> np.ndarray:
        """Class index per row (binary: 0/1), for stratified splits and accuracy."""
        if self.task == "multiclass":
            return np.argmax(self.y, axis=1)
        return self.y[:, 0].astype(int)


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v


def _records(path: str | Path) -> list[tuple[int, list[str]]]:
    """The non-blank CSV records of a file (stdin for "-"), each with the line it ends on."""
    try:
        if str(path) == "-":
            f = io.StringIO(sys.stdin.read(), newline="")
        else:
            f = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None
    with f:
        try:
            reader = csv.reader(f)
            return [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not a readable CSV file ({e})") from None


def read_rows(path: str | Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) rows; blank lines are skipped."""
    return _header_and_body(path, _records(path))


def _header_and_body(path, rows) -> tuple[list[str], list[tuple[int, list[str]]]]:
    if not rows:
        raise DataError(f"{path}: empty file; expected a header line, then one row per sample")
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    for col, name in enumerate(header, 1):
        if not name:
            raise DataError(f"{path}:1:{col}: empty column name in the header")
        if header.index(name) != col - 1:
            raise DataError(f"{path}:1:{col}: column name {shown(name)} appears twice in the header")
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    for line, r in body:
        if len(r) != len(header):
            raise DataError(
                f"{path}:{line}: row has {len(r)} fields but the header has {len(header)}; "
                "check for a missing or extra comma"
            )
    return header, body


def column(path, header: list[str], name: str, what: str = "column", wanted: str = "") -> int:
    """The index of column `name`, or one line naming the nearest column and all of them."""
    if name in header:
        return header.index(name)
    hint = nearest(name, header)
    raise DataError(
        f"{path}:1: no {what} {shown(name)}" + (f" (did you mean {shown(hint)}?)" if hint else "")
        + wanted + f"; the columns are {listed(header)}"
    )


def _value(path, line: int, col: int, name: str, text: str) -> float:
    """One numeric cell, or the one-line error for it."""
    v = _number(text)
    if not text or (v is not None and math.isnan(v)):
        raise DataError(f"{path}:{line}:{col + 1}: missing value in column {shown(name)}")
    if v is None:
        raise DataError(f"{path}:{line}:{col + 1}: {shown(text)} is not a number (column {shown(name)})")
    if math.isinf(v):
        raise DataError(f"{path}:{line}:{col + 1}: infinite value in column {shown(name)}")
    return v


def _note_unused(path, header: list[str], used: list[int], why: str) -> None:
    """One note naming the columns a command leaves out."""
    unused = [h for c, h in enumerate(header) if c not in used]
    if unused:
        warnings.warn(
            f"{path}: ignoring {'column' if len(unused) == 1 else 'columns'} {listed(unused)} ({why})",
            stacklevel=3,
        )


def _numeric_column(path: Path, header: list[str], body, col: int) -> np.ndarray:
    """Parse one feature column; text in it is an error (or a categorical column)."""
    name = header[col]
    cells = [(line, r[col].strip()) for line, r in body]
    values = [_number(c) for _, c in cells]
    texts = [(line, c) for (line, c), v in zip(cells, values) if v is None and c]
    if texts and len(texts) * 2 >= len(cells):
        raise DataError(
            f"{path}:{texts[0][0]}:{col + 1}: column {shown(name)} is categorical "
            f"(text such as {shown(texts[0][1])}); boardnet takes numeric features: one-hot encode it "
            "(one 0/1 column per value) or leave it out with --features"
        )
    return np.array([_value(path, line, col, name, c) for line, c in cells], dtype=np.float64)


def _is_identifier(path: Path, header: list[str], body, col: int) -> bool:
    """A text column with a different value on every row (a name, an id) is not a feature."""
    cells = [r[col].strip() for _, r in body]
    texts = sum(bool(c) and _number(c) is None for c in cells)
    if texts * 2 < len(cells) or len(set(cells)) != len(cells):
        return False
    warnings.warn(
        f"{path}: column {shown(header[col])} is text with a different value on every row "
        "(an identifier?); it is not used as a feature",
        stacklevel=3,
    )
    return True


def _label_key(label: str):
    v = _number(label)
    return (0, v, label) if v is not None else (1, 0.0, label)


def read_csv(
    path: str | Path,
    target: str,
    *,
    features: list[str] | None = None,
    regression: bool = False,
    positive: str | None = None,
) -> Dataset:
    """Read a training CSV. Classes are the target's values in sorted order."""
    path = Path(path)
    header, body = read_rows(path)
    t = column(path, header, target)
    if features:
        cols = [column(path, header, name, "feature column") for name in features]
        if target in features:
            raise DataError(f"{path}: {shown(target)} is the target; it cannot also be a feature")
    else:
        cols = [c for c in range(len(header)) if c != t and not _is_identifier(path, header, body, c)]
    if not cols:
        raise DataError(f"{path}: no feature columns besides the target {shown(target)}")
    X = np.column_stack([_numeric_column(path, header, body, c) for c in cols])  # (n, n_in)
    for j, c in enumerate(cols):
        if np.all(X[:, j] == X[0, j]):
            warnings.warn(
                f"{path}: column {shown(header[c])} is constant ({X[0, j]:g}); it carries no "
                "information and is kept harmless (scale 1)",
                stacklevel=2,
            )

    raw = [(line, r[t].strip()) for line, r in body]
    for line, v in raw:
        if not v:
            raise DataError(f"{path}:{line}:{t + 1}: missing value in target column {shown(target)}")
    names = tuple(header[c] for c in cols)
    if regression:
        y = _numeric_column(path, header, body, t)[:, None]  # (n, 1)
        return Dataset(X, y, names, target, "regression", (), str(path))

    labels = sorted({v for _, v in raw}, key=_label_key)
    if len(labels) < 2:
        raise DataError(
            f"{path}: target {shown(target)} has a single class {shown(labels[0])}; "
            "a classifier needs at least two"
        )
    numeric = all(_number(v) is not None for v in labels)
    if numeric and len(labels) > MAX_CLASSES_WITHOUT_REGRESSION:
        raise DataError(
            f"{path}: target {shown(target)} has {len(labels)} distinct numeric values; "
            "use --regression for a numeric target"
        )
    if positive is not None:
        if positive not in labels:
            raise DataError(
                f"{path}: --positive {shown(positive)} is not a value of {shown(target)} "
                f"({listed(labels)})"
            )
        if len(labels) != 2:
            raise DataError("--positive applies to two classes only")
        labels = [v for v in labels if v != positive] + [positive]
    index = {v: i for i, v in enumerate(labels)}
    k = np.array([index[v] for _, v in raw])
    if len(labels) == 2:
        y = k[:, None].astype(np.float64)  # (n, 1)
        task = "binary"
    else:
        y = np.eye(len(labels))[k]  # (n, n_classes)
        task = "multiclass"
    return Dataset(X, y, names, target, task, tuple(labels), str(path))


def read_inputs(path: str | Path, features: tuple[str, ...]) -> np.ndarray:
    """Rows to predict (raw units, (n, n_in)) from a file, or stdin for "-": a CSV whose
    header names the features in any order (other columns, such as a label, are ignored with
    one note), or bare rows of numbers separated by commas or spaces."""
    rows = _records(path)
    if rows and all(_number(v) is not None for v in _split_values(rows[0][1])):
        return _bare_rows(path, rows, features)
    header, body = _header_and_body(path, rows)
    cols = [column(path, header, f, wanted=f"; the model takes {listed(features)}") for f in features]
    _note_unused(path, header, cols, "not among the model's inputs")
    return _matrix(path, header, body, cols)


def read_labelled(
    path: str | Path,
    features: tuple[str, ...],
    target: str,
    task: str,
    labels: tuple[str, ...] = (),
) -> Dataset:
    """A labelled test file for a model with these features, target, task and labels: the
    features and the target found by name in any order, other columns ignored with one note.
    A label the model does not know is an error (a number matches a number: 1.0 is 1)."""
    header, body = read_rows(path)
    t = column(path, header, target, "target column")
    cols = [column(path, header, f, "feature column", wanted=f"; the model takes {listed(features)}")
            for f in features]
    _note_unused(path, header, cols + [t], "neither the model's inputs nor its target")
    X = _matrix(path, header, body, cols)
    if task == "regression":
        y = np.array([[_value(path, line, t, target, r[t].strip())] for line, r in body])  # (n, 1)
        return Dataset(X, y, tuple(features), target, task, (), str(path))
    index = {v: i for i, v in enumerate(labels)}
    numeric = {_number(v): i for i, v in enumerate(labels) if _number(v) is not None}
    k = []
    for line, r in body:
        v = r[t].strip()
        if not v:
            raise DataError(f"{path}:{line}:{t + 1}: missing value in target column {shown(target)}")
        i = index.get(v, numeric.get(_number(v)) if _number(v) is not None else None)
        if i is None:
            hint = nearest(v, labels)
            raise DataError(
                f"{path}:{line}:{t + 1}: {shown(v)} is not a class of the model"
                + (f" (did you mean {shown(hint)}?)" if hint else "") + f"; its classes are {listed(labels)}"
            )
        k.append(i)
    y = np.array(k, dtype=np.float64)[:, None] if task == "binary" else np.eye(len(labels))[k]
    return Dataset(X, y, tuple(features), target, task, tuple(labels), str(path))


def _matrix(path, header: list[str], body, cols: list[int]) -> np.ndarray:
    X = [[_value(path, line, c, header[c], r[c].strip()) for c in cols] for line, r in body]
    return np.array(X, dtype=np.float64).reshape(len(body), len(cols))  # (n, n_in)


def _split_values(fields: list[str]) -> list[str]:
    """The values of a bare row: fields split at commas (csv) and at spaces."""
    return [v for f in fields for v in f.split()]


def _bare_rows(path, rows, features: tuple[str, ...]) -> np.ndarray:
    X = []
    for line, fields in rows:
        values = _split_values(fields)
        if len(values) != len(features):
            raise DataError(
                f"{path}:{line}: expected {len(features)} values ({listed(features)}), got {len(values)}"
            )
        row = []
        for j, text in enumerate(values):
            v = _number(text)
            if v is None or not math.isfinite(v):
                raise DataError(f"{path}:{line}: value {j + 1}, {shown(text)}, is not a finite number")
            row.append(v)
        X.append(row)
    return np.array(X, dtype=np.float64)  # (n, n_in)


def text_rows(values: list[str], n_in: int) -> list[list[str]]:
    """Rows of decimal texts from numbers given on a command line or typed: "1 2", "1,2" or
    "1,2 3,4". The texts are kept as typed: a board parses the decimal itself (forms.Form.parse)."""
    numbers = []
    for v in values:
        for part in v.replace(",", " ").split():
            if not DECIMAL.fullmatch(part):
                raise UsageError(f"{part!r} is not a number (a decimal such as -1.25 or 3e-2)")
            numbers.append(part)
    if len(numbers) % n_in or not numbers:
        raise UsageError(f"the model takes {n_in} values per row; got {len(numbers)}")
    return [numbers[i : i + n_in] for i in range(0, len(numbers), n_in)]


def rows_from_values(values: list[str], n_in: int) -> np.ndarray:
    """`text_rows` as float64 numbers (rows, n_in)."""
    return np.array(text_rows(values, n_in), dtype=np.float64)


def typed_rows(n_in: int, banner: str):
    """Rows a person types at a prompt (or a pipe feeds), as decimal texts (`text_rows`),
    until end of input; a bad line is reported on stderr and skipped, so one typo does not
    end the session."""
    tty = sys.stdin.isatty()
    if tty:
        print(banner)
    while True:
        if tty:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return
        if not line.strip():
            continue
        try:
            rows = text_rows([line], n_in)
        except UsageError as e:
            print(f"boardnet: {e}", file=sys.stderr)
            continue
        yield rows


def stratified_split(
    classes: np.ndarray | None, n: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): `fraction` of each class held out (or of all rows)."""
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    groups = [np.arange(n)] if classes is None else [np.flatnonzero(classes == c) for c in np.unique(classes)]
    val = []
    for g in groups:
        k = int(round(fraction * len(g)))
        k = min(k, len(g) - 1)  # every class keeps at least one training row
        val.extend(rng.permutation(g)[:k].tolist())
    val_idx = np.array(sorted(val), dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(n), val_idx)
    return train_idx, val_idx
