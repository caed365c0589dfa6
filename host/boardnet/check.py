"""Check that a board predicts what the host predicts (docs/serial.md).

    report = check(model, "/dev/ttyACM0")      # or "sim", "auto", "socket://..."
    report.passed, report.max_ulp, report.us_per_inference

The host reference is `model.predict32` (float32, boardnet's own sigmoid). A board that
computes in float32 with that sigmoid (the C firmware; MicroPython on rp2 and esp32, whose
floats are single precision) must match to the bit: tolerance 0 ulp. The virtual MicroPython
board computes in float64 (platform=webassembly in its hello); there each output must lie
within `export.micropython_double_bound`, the forward-error bound of docs/export-micropython.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import protocol as P
from .errors import BoardError, UsageError


@dataclass
class CheckReport:
    model: str
    fingerprint: str
    port: str
    board: dict[str, Any]
    n: int
    inputs: str  # where the inputs came from
    max_abs_error: float
    mean_abs_error: float
    rmse: float
    max_ulp: int
    cosine_similarity: float
    class_agreement: float | None
    tolerance: str
    passed: bool
    outside: int  # outputs outside tolerance
    us_per_inference: float | None
    predictions_per_second: float
    worst: list[dict[str, Any]] = field(default_factory=list)
    # emulated boards time in retired instructions (QEMU -icount), not microseconds
    instructions_per_inference: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"{verdict}: board on {self.port} vs host on {self.n} inputs ({self.inputs})",
            f"  board      {self.board.get('runtime')} on {self.board.get('platform')}, model "
            f"{self.board.get('model')} fingerprint {self.fingerprint}",
            f"  tolerance  {self.tolerance}",
            f"  error      max {self.max_abs_error:.3g}, mean {self.mean_abs_error:.3g}, "
            f"RMSE {self.rmse:.3g}, max {self.max_ulp} ulp",
            f"  agreement  cosine similarity {self.cosine_similarity:.9f}"
            + (f", classes {100 * self.class_agreement:.2f} %" if self.class_agreement is not None else ""),
            "  speed      "
            + (f"{self.us_per_inference:.1f} us per inference on the board, "
               if self.us_per_inference else "")
            + (f"{self.instructions_per_inference:.0f} instructions per inference (emulated), "
               if self.instructions_per_inference else "")
            + f"{self.predictions_per_second:.0f} predictions/s round trip",
        ]
        if not self.passed:
            lines.append(f"  {self.outside} outputs outside tolerance; the worst:")
            for w in self.worst:
                lines.append(
                    f"    x={w['x']} host={w['host']:.9g} board={w['board']:.9g} "
                    f"({w['ulp']} ulp, bound {w['bound']:.3g})"
                )
        return "\n".join(lines)


def random_inputs(model, n: int, seed: int = 0) -> np.ndarray:
    """n inputs spread over the training range: the data's min..max widened by 10% each way
    when the model records it, else shift +- 3 scale (a standard normalisation's mean +- 3 std)."""
    rng = np.random.default_rng(seed)
    lo, hi = model.training.get("input_min"), model.training.get("input_max")
    if lo is not None and hi is not None and len(lo) == len(hi) == model.n_in:
        lo, hi = np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)
        pad = 0.1 * (hi - lo)
        lo, hi = lo - pad, hi + pad
    else:
        shift, scale = model.normalization.shift, model.normalization.scale
        lo, hi = shift - 3 * scale, shift + 3 * scale
    return (lo + (hi - lo) * rng.uniform(0, 1, size=(n, model.n_in))).astype(np.float32)  # (n, n_in)


def bounds(model, info: P.BoardInfo, X: np.ndarray) -> tuple[np.ndarray, str]:
    """Per-output absolute bound and its description for the board that sent `info`."""
    if info.float32_exact:
        return np.zeros((len(X), model.n_out)), (
            "0 ulp: the board computes in float32 with boardnet's sigmoid, like the host"
        )
    from .export import micropython_double_bound

    bound = micropython_double_bound(model, X)  # (n, n_out)
    return bound, (
        f"|board - host| <= forward-error bound (largest {float(np.max(bound)):.2g}): "
        f"{info.platform} MicroPython computes in float64 (docs/export-micropython.md)"
    )


def _progress(total: int, enabled: bool):
    if not enabled:
        return None, None
    try:
        from tqdm import tqdm
    except ImportError:
        return None, None
    bar = tqdm(total=total, unit="pred", desc="check", leave=False, file=sys.stderr)
    return bar, bar.update


def verify_board(model, info: P.BoardInfo, port: str, precision: str = "f32") -> None:
    """Refuse a board that holds another model (or the same model in another shape)."""
    expected = model.fingerprint(precision)
    if info.fingerprint != expected:
        if info.precision != precision and info.fingerprint == model.fingerprint(info.precision):
            raise BoardError(
                f"the board on {port} runs {model.name!r} in {info.precision}, not {precision}: "
                f"add --precision {info.precision}"
            )
        raise BoardError(
            f"the board on {port} holds model {info.model!r} with fingerprint {info.fingerprint}, "
            f"not {model.name!r} ({expected}): deploy it first (`boardnet deploy MODEL --port {port}`)"
        )
    if (info.n_in, info.n_out) != (model.n_in, model.n_out):
        raise BoardError(
            f"the board on {port} has {info.n_in} inputs and {info.n_out} outputs; "
            f"{model.name} has {model.n_in} and {model.n_out}"
        )


def check(
    model,
    port: str,
    data: str | None = None,
    n: int = 1000,
    seed: int = 0,
    baud: int = 115200,
    *,
    precision: str = "f32",
    progress: bool = False,
    timeout: float = 5.0,
    timing: bool = True,
) -> CheckReport:
    """Compare the board on `port` with `model.predict32`; a CheckReport (raises BoardError
    for board or link trouble, so nothing is counted after a reset)."""
    return check_arrays(model, port, data, n, seed, baud, precision=precision, progress=progress,
                        timeout=timeout, timing=timing)[0]


def check_arrays(model, port, data=None, n=1000, seed=0, baud=115200, *, precision="f32",
                 progress=False, timeout=5.0, timing=True):
    """`check`, also returning the host and board outputs (n, n_out) for plots."""
    from .link import open_link
    from .ports import resolve

    if data is not None:
        from .data import read_inputs

        X = read_inputs(data, model.features).astype(np.float32)
        source = str(data)
    else:
        if n < 1:
            raise UsageError("--n must be at least 1")
        X = random_inputs(model, n, seed)
        source = f"random over the training range, seed {seed}"
    if not np.all(np.isfinite(X)):
        raise UsageError("inputs must be finite float32 numbers")
    q = Xq = None
    if precision != "f32":
        from .quantize import quantize

        q = quantize(model, precision)
        Xq = q.quantize_inputs(X)  # (n, n_in) int16: what the host sends an integer model
    with resolve(port, model, precision=precision) as where, open_link(where.url, baud, timeout) as link:
        info = link.info
        assert info is not None
        verify_board(model, info, port, precision)
        bar, update = _progress(len(X), progress)
        try:
            t0 = time.perf_counter()
            board = link.predict_many(X if Xq is None else Xq, progress=update)  # (n, n_out)
            seconds = time.perf_counter() - t0
        finally:
            if bar is not None:
                bar.close()
        per = instr = None
        if timing:
            t = link.time_per_inference()
            per = t.per if t.unit == "us" else None
            instr = t.total / t.n if t.unit == "instr" else None
    if q is None:
        host = model.predict32(X)  # (n, n_out)
        report = compare(model, info, port, X, host, board, seconds, per, source)
    else:
        host_q = q.predict_int(Xq)  # (n, n_out) int: the integer reference, exactly
        host, board_f = q.dequantize_outputs(host_q), q.dequantize_outputs(board)
        report = compare(model, info, port, X, host, board_f, seconds, per, source,
                         exact=(host_q, np.asarray(board)))
        board = board_f
    report.instructions_per_inference = instr
    return report, host, board


def compare(model, info, port, X, host, board, seconds, per, source, exact=None) -> CheckReport:
    """The report. `exact` = (host, board) integer outputs of an integer model: any
    difference fails, and "ulp" counts units of the last integer bit."""
    host = np.asarray(host, dtype=np.float32)
    board = np.asarray(board, dtype=np.float32)
    err = np.abs(board.astype(np.float64) - host.astype(np.float64))  # (n, n_out)
    if exact is not None:
        ulp = np.abs(exact[0].astype(np.int64) - exact[1].astype(np.int64))
        bound = np.zeros_like(err)
        tolerance = f"exact: the {info.precision} integer outputs must be identical"
        bad = ulp > 0
    else:
        ulp = P.ulp_distance(board, host)
        bound, tolerance = bounds(model, info, X)
        bad = (ulp > 0) if info.float32_exact else ~(err <= bound)
    bad |= np.isnan(board) != np.isnan(host)
    h = host.astype(np.float64).ravel()
    b = board.astype(np.float64).ravel()
    denom = float(np.linalg.norm(h) * np.linalg.norm(b))
    cosine = float(h @ b / denom) if denom else float(np.array_equal(h, b))
    host_classes = model.classify(host)
    agreement = None
    if host_classes is not None:
        agreement = float(np.mean([a == c for a, c in zip(host_classes, model.classify(board))]))
    worst = []
    if bad.any():
        score = np.where(bad, err + ulp * 1e-30, -1.0)
        for flat in np.argsort(score, axis=None)[::-1][:5]:
            r, c = np.unravel_index(flat, score.shape)
            if not bad[r, c]:
                break
            worst.append({
                "row": int(r), "output": int(c), "x": [float(v) for v in X[r]],
                "host": float(host[r, c]), "board": float(board[r, c]),
                "ulp": int(ulp[r, c]), "bound": float(bound[r, c]),
            })
    return CheckReport(
        model=model.name,
        fingerprint=info.fingerprint,
        port=port,
        board={k: v for k, v in info.fields.items()},
        n=len(X),
        inputs=source,
        max_abs_error=float(err.max()) if err.size else 0.0,
        mean_abs_error=float(err.mean()) if err.size else 0.0,
        rmse=float(np.sqrt(np.mean(err**2))) if err.size else 0.0,
        max_ulp=int(ulp.max()) if ulp.size else 0,
        cosine_similarity=cosine,
        class_agreement=agreement,
        tolerance=tolerance,
        passed=not bool(bad.any()),
        outside=int(bad.sum()),
        us_per_inference=per,
        predictions_per_second=len(X) / seconds if seconds > 0 else float("inf"),
        worst=worst,
    )


def plot_parity(report: CheckReport, host: np.ndarray, board: np.ndarray, path: str):
    """Board against host (parity scatter) and the error histogram, as a PNG."""
    from .plot import _pyplot, save_png

    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=100)
    h = np.asarray(host, dtype=np.float64).ravel()
    b = np.asarray(board, dtype=np.float64).ravel()
    ax1.scatter(h, b, s=4, alpha=0.6)
    lo, hi = float(min(h.min(), b.min())), float(max(h.max(), b.max()))
    ax1.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
    ax1.set_xlabel("host (predict32)")
    ax1.set_ylabel("board")
    ax1.set_title(f"{report.model}: {'PASS' if report.passed else 'FAIL'}")
    ax2.hist(b - h, bins=50)
    ax2.set_xlabel("board - host")
    ax2.set_ylabel("outputs")
    ax2.set_title(f"max |error| {report.max_abs_error:.2g}, {report.max_ulp} ulp")
    return save_png(fig, path)


# ---- the CLI commands -------------------------------------------------------------------
def run_check(args: argparse.Namespace) -> int:
    """`boardnet check`: print the report (or JSON); 0 within tolerance, 1 outside."""
    from .model import Model

    model = Model.load(args.model)
    if args.plot:
        from .plot import _pyplot

        _pyplot()  # a missing matplotlib is a usage error before any board work
    report, host, board = check_arrays(
        model, args.port, data=args.data, n=args.n, seed=args.seed, baud=args.baud,
        progress=sys.stderr.isatty() and not args.json, timeout=args.timeout,
        precision=args.precision,
    )
    if args.plot:
        plot_parity(report, host, board, args.plot)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(report.text())
    return 0 if report.passed else 1


def predict_on_board(model, args: argparse.Namespace) -> int:
    """`boardnet predict MODEL --port P`: the board's answer beside the host's.

    Rows come from the arguments, --file (or - for stdin), piped stdin, or a person typing
    at the prompt. Inputs travel as float32 bits, so the board sees exactly the host's input.
    """
    from .data import parse_inputs, read_inputs, rows_from_values, typed_rows
    from .link import open_link
    from .ports import resolve

    if args.x and args.file:
        raise UsageError("give values or --file, not both")
    precision = getattr(args, "precision", "f32")
    with resolve(args.port, model, precision=precision) as where, open_link(where.url, args.baud) as link:
        info = link.info
        assert info is not None
        verify_board(model, info, args.port, info.precision)  # the board says which form it runs
        q = None
        if info.precision != "f32":
            from .quantize import quantize

            q = quantize(model, info.precision)

        def show(X: np.ndarray) -> None:
            X = X.astype(np.float32)
            if q is None:
                board = link.predict_many(X)
                host = model.predict32(X)
            else:  # integers both ways; shown as probabilities, compared as integers
                Xq = q.quantize_inputs(X)
                board_q, host_q = link.predict_many(Xq), q.predict_int(Xq)
                board, host = q.dequantize_outputs(board_q), q.dequantize_outputs(host_q)
            for i, (x, hy, by) in enumerate(zip(X, host, board)):
                ulp = P.ulp_distance(by, hy) if q is None else np.abs(board_q[i] - host_q[i])
                row = {"x": x.tolist(), "host": hy.tolist(), "board": by.tolist(), "ulp": ulp.tolist()}
                if args.json:
                    print(json.dumps(row), flush=True)
                    continue
                xs = ", ".join(f"{n}={float(v):.6g}" for n, v in zip(model.features, x))
                ys = "  ".join(
                    f"{name}: host {float(a):.9g} board {float(b):.9g}"
                    + (" (same bits)" if u == 0 else f" ({int(u)} ulp)")
                    for name, a, b, u in zip(model.outputs, hy, by, ulp)
                )
                cls = model.classify(by[None, :])
                print(f"{xs}  ->  {ys}" + (f"  board says {cls[0]}" if cls else ""), flush=True)

        if args.x:
            show(rows_from_values(args.x, model.n_in))
            return 0
        if args.file:
            show(read_inputs(args.file, model.features))
            return 0
        if not sys.stdin.isatty():
            show(parse_inputs(sys.stdin.read(), model.features))
            return 0
        banner = (f"{model.name} on {args.port} ({info.describe()}): type {model.n_in} values "
                  f"({', '.join(model.features)}); Ctrl-D ends")
        for X in typed_rows(model.n_in, banner):
            show(X)
        return 0
