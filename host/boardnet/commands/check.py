"""`boardnet check`: does the board predict what the host predicts? (docs/serial.md)

    report = check(model, "/dev/ttyACM0")      # or "sim", "auto", "socket://..."
    report.passed, report.max_ulp, report.us_per_inference

The host reference is the form's (forms.F32: float32 with boardnet's own sigmoid; forms.Q15:
the integer model). A board that computes in float32 with that sigmoid (the C firmware;
MicroPython on rp2 and esp32, whose floats are single precision) must match to the bit:
tolerance 0 ulp. The virtual MicroPython board computes in float64 (platform=webassembly in
its hello); there each output must lie within the forward-error bound (forms.F32.double_bound).
Integer models must give identical integers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import forms
from ..data import read_inputs
from ..errors import BoardError, UsageError
from ..forms import Form
from ..link.ports import resolve
from ..link.protocol import BoardInfo
from ..link.session import Link
from ..plot import pyplot, save_png
from .deploy import deploy_hint
from .target import Board, attach, connect


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
    # or in emulated microseconds (rp2040js): cycles of the emulated clock, and what it is
    cycles_per_inference: float | None = None
    clock: str | None = None

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
               if self.us_per_inference and not self.clock else "")
            + (f"{self.cycles_per_inference:,.0f} cycles per inference ({self.clock}: "
               f"{self.us_per_inference:.1f} us), " if self.clock and self.us_per_inference else "")
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


def verify_board(form: Form, info: BoardInfo, port: str, model_file: str = "MODEL.json") -> None:
    """Refuse a board that holds another model (or the same model in another form), saying
    how to put this one there (`model_file` is the model as the user named it)."""
    model = form.model
    if info.fingerprint != form.fingerprint:
        if (info.precision != form.precision and info.precision in forms.FORMS
                and info.fingerprint == forms.make(model, info.precision).fingerprint):
            raise BoardError(
                f"the board on {port} runs {model.name!r} in {info.precision}, not {form.precision}: "
                f"add --precision {info.precision}"
            )
        raise BoardError(
            f"the board on {port} holds model {info.model!r} with fingerprint {info.fingerprint}, "
            f"not {model.name!r} ({form.fingerprint}): deploy it first: "
            f"{deploy_hint(model_file, port, info)}"
        )
    if (info.n_in, info.n_out) != (model.n_in, model.n_out):
        raise BoardError(
            f"the board on {port} has {info.n_in} inputs and {info.n_out} outputs; "
            f"{model.name} has {model.n_in} and {model.n_out}"
        )


@dataclass
class Run:
    """One check's inputs and outputs, for the report and the plot."""

    X: np.ndarray  # (n, n_in) raw inputs, float32
    host: np.ndarray  # (n, n_out) board units: the host's reference
    board: np.ndarray  # (n, n_out) board units: what the board answered
    report: CheckReport


def check(model, port: str, data: str | None = None, n: int = 1000, seed: int = 0,
          baud: int = 115200, *, precision: str = "f32", progress=None, timeout: float = 5.0,
          timing: bool = True) -> CheckReport:
    """Compare the board on `port` with the host's reference for the `precision` form."""
    return run(forms.make(model, precision), port, data, n, seed, baud, progress=progress,
               timeout=timeout, timing=timing).report


def run(form: Form, port: str, data: str | None = None, n: int = 1000, seed: int = 0,
        baud: int = 115200, *, progress=None, timeout: float = 5.0, timing: bool = True,
        start: bool = False, model_file: str = "MODEL.json") -> Run:
    """`check`, keeping the inputs and both outputs (raises BoardError for board or link
    trouble, so nothing is counted after a reset). `progress(k)` is told of each answer;
    `start` starts the loop a board at its REPL holds (commands.target.connect)."""
    with attach(resolve(port), form) as board:
        return run_on(board, form, port, data, n, seed, baud, progress=progress, timeout=timeout,
                      timing=timing, start=start, model_file=model_file)


def run_on(board_at: Board, form: Form, port: str, data: str | None = None, n: int = 1000,
           seed: int = 0, baud: int = 115200, *, progress=None, timeout: float = 5.0,
           timing: bool = True, start: bool = False, model_file: str = "MODEL.json") -> Run:
    """`run` on a board the caller holds (commands.target.attach); `port` names it in the report."""
    model = form.model
    if data is not None:
        X = read_inputs(data, model.features).astype(np.float32)
        source = str(data)
    else:
        if n < 1:
            raise UsageError("--n must be at least 1")
        X = random_inputs(model, n, seed)
        source = f"random over the training range, seed {seed}"
    if not np.all(np.isfinite(X)):
        raise UsageError("inputs must be finite float32 numbers")
    Xb = form.inputs(X)  # (n, n_in): what travels to the board
    with connect(board_at, form, baud=baud, timeout=timeout, start=start, model_file=model_file) as link:
        info = link.info
        assert info is not None
        verify_board(form, info, board_at.url, model_file)
        t0 = time.perf_counter()
        board = link.predict_many(form, Xb, progress=progress)  # (n, n_out)
        seconds = time.perf_counter() - t0
        per, instr = _timing(link) if timing else (None, None)
    host = form.reference(Xb)  # (n, n_out)
    report = compare(form, info, port, X, host, board, seconds, per, source)
    report.instructions_per_inference = instr
    if board_at.clock is not None and per is not None:
        report.clock, report.cycles_per_inference = board_at.clock.description, board_at.clock.cycles(per)
    return Run(X, host, board, report)


def _timing(link: Link) -> tuple[float | None, float | None]:
    """(microseconds, instructions) per inference, whichever the board's clock counts."""
    t = link.time_per_inference()
    return (t.per if t.unit == "us" else None), (t.total / t.n if t.unit == "instr" else None)


def compare(form: Form, info: BoardInfo, port: str, X, host, board, seconds, per, source) -> CheckReport:
    """The report for board outputs against the host's (both in board units)."""
    model = form.model
    tol = form.tolerance(X, host, board, info.float32_exact)
    h = form.outputs(host)  # (n, n_out) float64, what the outputs mean
    b = form.outputs(board)
    err = np.abs(b - h)
    bad = tol.bad
    hv, bv = h.ravel(), b.ravel()
    denom = float(np.linalg.norm(hv) * np.linalg.norm(bv))
    cosine = float(np.clip(hv @ bv / denom, -1.0, 1.0)) if denom else float(np.array_equal(hv, bv))
    host_classes = model.classify(h)
    agreement = None
    if host_classes is not None:
        agreement = float(np.mean([a == c for a, c in zip(host_classes, model.classify(b))]))
    worst = []
    if bad.any():
        score = np.where(bad, err + tol.distance * 1e-30, -1.0)
        for flat in np.argsort(score, axis=None)[::-1][:5]:
            r, c = np.unravel_index(flat, score.shape)
            if not bad[r, c]:
                break
            worst.append({
                "row": int(r), "output": int(c), "x": [float(v) for v in X[r]],
                "host": float(h[r, c]), "board": float(b[r, c]),
                "ulp": int(tol.distance[r, c]), "bound": float(tol.bound[r, c]),
            })
    return CheckReport(
        model=model.name,
        fingerprint=info.fingerprint,
        port=port,
        board=dict(info.fields),
        n=len(X),
        inputs=source,
        max_abs_error=float(err.max()) if err.size else 0.0,
        mean_abs_error=float(err.mean()) if err.size else 0.0,
        rmse=float(np.sqrt(np.mean(err**2))) if err.size else 0.0,
        max_ulp=int(tol.distance.max()) if tol.distance.size else 0,
        cosine_similarity=cosine,
        class_agreement=agreement,
        tolerance=tol.description,
        passed=not bool(bad.any()),
        outside=int(bad.sum()),
        us_per_inference=per,
        predictions_per_second=len(X) / seconds if seconds > 0 else float("inf"),
        worst=worst,
    )


def plot_parity(result: Run, form: Form, path: str):
    """Board against host (parity scatter) and the error histogram, as a PNG."""
    plt = pyplot()
    report = result.report
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=100)
    h = form.outputs(result.host).ravel()
    b = form.outputs(result.board).ravel()
    ax1.scatter(h, b, s=4, alpha=0.6)
    lo, hi = float(min(h.min(), b.min())), float(max(h.max(), b.max()))
    ax1.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
    ax1.set_xlabel("host (reference)")
    ax1.set_ylabel("board")
    ax1.set_title(f"{report.model}: {'PASS' if report.passed else 'FAIL'}")
    ax2.hist(b - h, bins=50)
    ax2.set_xlabel("board - host")
    ax2.set_ylabel("outputs")
    ax2.set_title(f"max |error| {report.max_abs_error:.2g}, {report.max_ulp} ulp")
    return save_png(fig, path)
