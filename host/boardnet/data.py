"""CSV in, arrays out: the first stage of the pipeline.

A data file is a CSV with a header line. The target is named with --target; the features
are the other columns unless named. Every problem in a file is reported as one line with
the file, the line and the column, so a user can go straight to the cell.
"""

from __future__ import annotations

import csv
import math
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, UsageError

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


def read_rows(path: str | Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) rows; blank lines are skipped."""
    path = Path(path)
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        try:
            reader = csv.reader(f)
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not a readable CSV file ({e})") from None
    if not rows:
        raise DataError(f"{path}: empty file; expected a header line, then one row per sample")
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    for col, name in enumerate(header, 1):
        if not name:
            raise DataError(f"{path}:1:{col}: empty column name in the header")
        if header.index(name) != col - 1:
            raise DataError(f"{path}:1:{col}: column name {name!r} appears twice in the header")
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    for line, r in body:
        if len(r) != len(header):
            raise DataError(
                f"{path}:{line}: row has {len(r)} fields but the header has {len(header)}; "
                "check for a missing or extra comma"
            )
    return header, body


def _numeric_column(path: Path, header: list[str], body, col: int) -> np.ndarray:
    """Parse one feature column; text in it is an error (or a categorical column)."""
    name = header[col]
    cells = [(line, r[col].strip()) for line, r in body]
    values = [_number(c) for _, c in cells]
    texts = [(line, c) for (line, c), v in zip(cells, values) if v is None and c]
    if texts and len(texts) * 2 >= len(cells):
        raise DataError(
            f"{path}:{texts[0][0]}:{col + 1}: column {name!r} is categorical "
            f"(text such as {texts[0][1]!r}); boardnet takes numeric features: one-hot encode it "
            "(one 0/1 column per value) or leave it out with --features"
        )
    for (line, c), v in zip(cells, values):
        if not c or (v is not None and math.isnan(v)):
            raise DataError(f"{path}:{line}:{col + 1}: missing value in column {name!r}")
        if v is None:
            raise DataError(f"{path}:{line}:{col + 1}: {c!r} is not a number (column {name!r})")
        if math.isinf(v):
            raise DataError(f"{path}:{line}:{col + 1}: infinite value in column {name!r}")
    return np.array(values, dtype=np.float64)


def _is_identifier(path: Path, header: list[str], body, col: int) -> bool:
    """A text column with a different value on every row (a name, an id) is not a feature."""
    cells = [r[col].strip() for _, r in body]
    texts = sum(bool(c) and _number(c) is None for c in cells)
    if texts * 2 < len(cells) or len(set(cells)) != len(cells):
        return False
    warnings.warn(
        f"{path}: column {header[col]!r} is text with a different value on every row "
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
    if target not in header:
        raise DataError(f"{path}:1: no column {target!r}; the columns are {', '.join(header)}")
    t = header.index(target)
    if features:
        for name in features:
            if name not in header:
                raise DataError(
                    f"{path}:1: no feature column {name!r}; the columns are {', '.join(header)}"
                )
        if target in features:
            raise DataError(f"{path}: {target!r} is the target; it cannot also be a feature")
        cols = [header.index(n) for n in features]
    else:
        cols = [c for c in range(len(header)) if c != t and not _is_identifier(path, header, body, c)]
    if not cols:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    X = np.column_stack([_numeric_column(path, header, body, c) for c in cols])  # (n, n_in)
    for j, c in enumerate(cols):
        if np.all(X[:, j] == X[0, j]):
            warnings.warn(
                f"{path}: column {header[c]!r} is constant ({X[0, j]:g}); it carries no "
                "information and is kept harmless (scale 1)",
                stacklevel=2,
            )

    raw = [(line, r[t].strip()) for line, r in body]
    for line, v in raw:
        if not v:
            raise DataError(f"{path}:{line}:{t + 1}: missing value in target column {target!r}")
    names = tuple(header[c] for c in cols)
    if regression:
        y = _numeric_column(path, header, body, t)[:, None]  # (n, 1)
        return Dataset(X, y, names, target, "regression", (), str(path))

    labels = sorted({v for _, v in raw}, key=_label_key)
    if len(labels) < 2:
        raise DataError(
            f"{path}: target {target!r} has a single class {labels[0]!r}; "
            "a classifier needs at least two"
        )
    numeric = all(_number(v) is not None for v in labels)
    if numeric and len(labels) > MAX_CLASSES_WITHOUT_REGRESSION:
        raise DataError(
            f"{path}: target {target!r} has {len(labels)} distinct numeric values; "
            "use --regression for a numeric target"
        )
    if positive is not None:
        if positive not in labels:
            raise DataError(
                f"{path}: --positive {positive!r} is not a value of {target!r} "
                f"({', '.join(labels)})"
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
    """Rows to predict: a CSV whose header names the features (other columns are
    ignored), or bare rows of numbers."""
    path_s = str(path)
    text = Path(path).read_text(encoding="utf-8-sig") if path_s != "-" else None
    return parse_inputs(text, features, source=path_s)


def parse_inputs(text: str | None, features: tuple[str, ...], source: str = "-") -> np.ndarray:
    if text is None:
        text = sys.stdin.read()
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise DataError(f"{source}: no rows to predict")
    first = [c.strip() for c in next(csv.reader([lines[0][1]]))]
    cols = list(range(len(features)))
    if any(_number(c) is None for c in first):
        missing = [f for f in features if f not in first]
        if missing:
            raise DataError(
                f"{source}:1: the header has no column {missing[0]!r}; "
                f"the model takes {', '.join(features)}"
            )
        cols = [first.index(f) for f in features]
        lines = lines[1:]
    rows = []
    for line, text_row in lines:
        cells = [c.strip() for c in next(csv.reader([text_row]))]
        if len(cells) < max(cols) + 1 or (cols == list(range(len(features))) and len(cells) != len(features)):
            raise DataError(
                f"{source}:{line}: expected {len(features)} values ({', '.join(features)}), "
                f"got {len(cells)}"
            )
        row = []
        for c in cols:
            v = _number(cells[c])
            if v is None or not math.isfinite(v):
                raise DataError(f"{source}:{line}:{c + 1}: {cells[c]!r} is not a finite number")
            row.append(v)
        rows.append(row)
    return np.array(rows, dtype=np.float64)


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
