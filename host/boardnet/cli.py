"""The `boardnet` command: a table of subcommands over the pipeline's modules.

Each entry names the arguments and the function that runs it; the functions only parse,
call the stage's module and print. Errors are one line on stderr with the exit status of
CONTRACT.md (`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import __version__
from .errors import BoardnetError, UsageError

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


def _load(path: str):
    from .model import Model

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
    p.add_argument("--loss", choices=["mse", "bce"], default="mse")
    p.add_argument("--init", choices=["xavier", "normal"], default="xavier",
                   help="xavier (Glorot uniform) or the tutorial's standard normal")
    p.add_argument("--normalize", choices=["standard", "center", "none"], default="standard")
    p.add_argument("--no-shuffle", action="store_true", help="keep the file's order every epoch")
    p.add_argument("--val", type=float, default=None,
                   help="fraction held out for validation, stratified (default 0.2 from 50 rows on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--regression", action="store_true", help="numeric target, linear output")
    p.add_argument("--positive", help="the label whose probability a binary model outputs")
    p.add_argument("--name", help="model name (default: the output file's stem)")
    p.add_argument("--plot", help="write the loss curve to this PNG (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true")


def _train(args: argparse.Namespace) -> int:
    from .data import read_csv
    from .train import TrainConfig, train

    data = read_csv(
        args.data,
        args.target,
        features=args.features.split(",") if args.features else None,
        regression=args.regression,
        positive=args.positive,
    )
    val = args.val if args.val is not None else (0.2 if len(data.X) >= 50 else 0.0)
    cfg = TrainConfig(
        hidden=args.hidden, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        loss=args.loss, init=args.init, normalize=args.normalize, shuffle=not args.no_shuffle,
        validation=val, seed=args.seed, name=args.name or Path(args.output).stem,
    )
    model = train(data, cfg, progress=not args.quiet and sys.stderr.isatty())
    model.save(args.output)
    if args.plot:
        from .plot import plot_loss

        plot_loss(model, args.plot)
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
    _out(args, "\n".join(lines), {"model": args.output, "fingerprint": model.fingerprint(), **summary})
    return 0


# ---- info ------------------------------------------------------------------------------
def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("--json", action="store_true")


def _info(args: argparse.Namespace) -> int:
    model = _load(args.model)
    t = model.training or {}
    info = {
        "name": model.name,
        "sizes": model.sizes,
        "task": model.task,
        "target": model.target,
        "features": list(model.features),
        "labels": list(model.labels),
        "outputs": list(model.outputs),
        "normalization": model.normalization.method,
        "fingerprint": model.fingerprint(),
        "parameters": sum(layer.W.size + layer.b.size for layer in model.layers),
        "training": {k: v for k, v in t.items() if k != "history"},
    }
    try:
        from .export import fit_report
    except ImportError:
        fit_report = None
    if fit_report is not None:
        info["fit"] = fit_report(model)
    lines = [
        f"{model.name}: {'-'.join(map(str, model.sizes))} {model.task} model, "
        f"{info['parameters']} parameters, fingerprint {info['fingerprint']}",
        f"inputs   {', '.join(model.features)} (normalization: {model.normalization.method})",
        f"outputs  {', '.join(model.outputs)}",
    ]
    if model.labels:
        lines.append(f"labels   {', '.join(model.labels)}")
    if t:
        lines.append(
            f"training {t.get('n_train', '?')} rows, loss {t.get('config', {}).get('loss', '?')} "
            f"{_fmt(t['final_loss']) if 'final_loss' in t else '?'}"
            + (f", validation accuracy {t['val_accuracy']:.3f}" if "val_accuracy" in t else "")
        )
    for key, value in (info.get("fit") or {}).items():
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
                   help="with --port sim, sim-m0, sim-rv32: deploy this form of the model")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--json", action="store_true")


def _prediction_rows(model, X: np.ndarray) -> list[dict]:
    Y = model.predict32(X) if _has_numerics() else model.predict(X)
    classes = model.classify(Y)
    return [
        {"x": x.tolist(), "y": [float(v) for v in y], **({"class": c} if classes else {})}
        for x, y, c in zip(X, Y, classes or [None] * len(X))
    ]


def _has_numerics() -> bool:
    try:
        from . import numerics  # noqa: F401
    except ImportError:
        return False
    return True


def _format_prediction(model, row: dict) -> str:
    xs = ", ".join(f"{n}={_fmt(v)}" for n, v in zip(model.features, row["x"]))
    ys = ", ".join(f"{n} = {_fmt(v)}" for n, v in zip(model.outputs, row["y"]))
    return f"{xs}  ->  {ys}" + (f"  ({row['class']})" if "class" in row else "")


def _predict(args: argparse.Namespace) -> int:
    model = _load(args.model)
    if args.port:
        from .check import predict_on_board

        return predict_on_board(model, args)
    from .data import read_inputs, rows_from_values

    if args.x and args.file:
        raise UsageError("give values or --file, not both")
    if args.x:
        X = rows_from_values(args.x, model.n_in)
    elif args.file:
        X = read_inputs(args.file, model.features)
    else:
        return _interactive(model, args)
    rows = _prediction_rows(model, X)
    _out(args, "\n".join(_format_prediction(model, r) for r in rows), rows)
    return 0


def _interactive(model, args: argparse.Namespace) -> int:
    from .data import typed_rows

    banner = f"{model.name}: type {model.n_in} values ({', '.join(model.features)}); Ctrl-D ends"
    for X in typed_rows(model.n_in, banner):
        for row in _prediction_rows(model, X):
            print(json.dumps(row) if args.json else _format_prediction(model, row), flush=True)
    return 0


# ---- export ----------------------------------------------------------------------------
def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("--c", metavar="DIR", help="write the C header into DIR")
    p.add_argument("--micropython", metavar="DIR", help="write the MicroPython module into DIR")
    p.add_argument("--precision", default="f32",
                   help="f32 (default) or q15 (integer-only: docs/integer-models.md)")
    p.add_argument("--mpy", action="store_true", help="also compile the module to .mpy (mpy-cross)")
    p.add_argument("--json", action="store_true")


def _export(args: argparse.Namespace) -> int:
    from . import export

    model = _load(args.model)
    if not (args.c or args.micropython):
        raise UsageError("say where: --c DIR and/or --micropython DIR")
    written = export.export_all(model, c_dir=args.c, mp_dir=args.micropython,
                                precision=args.precision, mpy=args.mpy)
    fit = export.fit_report(model, args.precision)
    for w in fit.get("warnings", []):
        warnings.warn(w, stacklevel=1)
    lines = [f"wrote {p}" for p in written] + [
        f"fit: {fit['weight_bytes']} B of weights, ~{fit['code_bytes_estimate']} B of code, "
        f"{fit['ram_bytes']} B of RAM for activations, ~{fit['micropython_heap_estimate']} B of "
        "MicroPython heap"
    ]
    result = {"written": [str(p) for p in written], "fit": fit}
    if args.precision != "f32":
        from .quantize import accuracy_report, format_report

        result["accuracy"] = report = accuracy_report(model)
        for w in report["warnings"]:
            warnings.warn(w, stacklevel=1)
        lines += format_report(report)
    _out(args, "\n".join(lines), result)
    return 0


# ---- check -----------------------------------------------------------------------------
def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("--port", required=True,
                   help="pyserial URL or device, auto, or sim (a fresh virtual board)")
    p.add_argument("--data", help="CSV of inputs (header names the features); default: random inputs")
    p.add_argument("--n", type=int, default=1000, help="random inputs to compare (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a reply (default 5)")
    p.add_argument("--precision", choices=["f32", "q15"], default="f32",
                   help="the model's form on the board: f32 (0 ulp) or q15 (identical integers)")
    p.add_argument("--plot", metavar="PNG",
                   help="board vs host scatter and error histogram (needs matplotlib)")
    p.add_argument("--json", action="store_true")


def _check(args: argparse.Namespace) -> int:
    from .check import run_check

    return run_check(args)


# ---- sim -------------------------------------------------------------------------------
def _sim_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["start", "stop", "list"])
    p.add_argument("kind", nargs="?", default=None, choices=["mp", "m0", "rv32"],
                   help="mp: MicroPython (WebAssembly); m0, rv32: the C firmware under QEMU")
    p.add_argument("--model", help="m0, rv32: the model (JSON) the firmware is built with")
    p.add_argument("--precision", choices=["f32", "q15"], default="f32",
                   help="m0, rv32: build the firmware with the f32 or the q15 header")
    p.add_argument("--json", action="store_true")


def _sim(args: argparse.Namespace) -> int:
    from . import sim

    if args.action == "start":
        kind = args.kind or "mp"
        if kind == "mp":
            record = sim.start_persistent(kind)
        else:
            if not args.model:
                raise UsageError(f"`sim start {kind}` needs the model: --model M.json")
            record = sim.start_persistent(kind, model=_load(args.model), precision=args.precision)
        _out(args, f"virtual board ({record['kind']}) on {record['port']}", record)
    elif args.action == "stop":
        stopped = sim.stop_persistent(args.kind)
        _out(args, "\n".join(f"stopped the virtual board ({r['kind']}) on {r['port']}" for r in stopped)
             or "no virtual board was running", stopped)
    else:
        records = sim.list_persistent()
        _out(args, "\n".join(f"{r['kind']}  {r['port']}  since {r['started']}" for r in records)
             or "no virtual board running", records)
    return 0


# ---- boards ----------------------------------------------------------------------------
def _boards_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--probe", action="store_true",
                   help="ask each board (opens the port: resets ESP32 dev boards, stops programs)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per answer when probing")
    p.add_argument("--json", action="store_true")


def _boards(args: argparse.Namespace) -> int:
    from .boards import list_boards

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
    p.add_argument("--autostart", action="store_true", help="install main.py: the loop starts at boot")
    p.add_argument("--force", action="store_true", help="with --autostart: replace a main.py of "
                   "your own (kept as main.py.bak)")
    p.add_argument("--board", help="--runtime c: pico, pico2, esp32, esp32c3, esp32s3 ... "
                   "(default: from the port's USB ID)")
    p.add_argument("--drive", help="--runtime c on a Pico: the mounted BOOTSEL drive")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds for each mpremote step")
    p.add_argument("--json", action="store_true")


def _deploy(args: argparse.Namespace) -> int:
    from .deploy import DeployReport, deploy_c, deploy_micropython
    from .ports import resolve

    model = _load(args.model)
    if args.runtime == "c" or args.port in ("sim-m0", "sim-rv32"):
        info = deploy_c(model, args.port, board=args.board, drive=args.drive, baud=args.baud,
                        precision=args.precision)
        where = args.port
        if args.port in ("sim-m0", "sim-rv32"):
            from .sim import list_persistent

            where = next(r["port"] for r in list_persistent() if r["kind"] == args.port[4:])
        _out(args, f"flashed {model.name} (fingerprint {info.fingerprint}) to {where}: "
             f"{info.runtime} on {info.platform}"
             + (f"; it stays up (`boardnet sim stop {args.port[4:]}`)" if where != args.port else ""),
             {"port": where, "fingerprint": info.fingerprint, "runtime": info.runtime,
              "platform": info.platform})
        return 0
    with resolve(args.port) as where:
        report = DeployReport(where.url, None, None)
        deploy_micropython(model, where.url, baud=args.baud, autostart=args.autostart, mpy=args.mpy,
                           force=args.force, timeout=args.timeout, report=report,
                           precision=args.precision)
        info, facts = report.info, report.facts
        lines = [
            f"deployed {model.name} (fingerprint {info.fingerprint}) to {where.description or where.url}",
            f"  board      MicroPython {facts.version} on {facts.platform}, {facts.float_precision}, "
            f"heap free {facts.mem_free} B (model needs ~{report.heap_needed} B)",
            "  copied     " + (", ".join(report.copied) or "nothing (the board had these files)"),
        ]
        if report.unchanged:
            lines.append("  unchanged  " + ", ".join(report.unchanged))
        if report.removed:
            lines.append("  removed    " + ", ".join(report.removed))
        if report.backup:
            lines.append(f"  main.py    yours is kept as {report.backup}")
        lines.append(f"  serving    {info.model} fp={info.fingerprint} window={info.window}"
                     + ("; starts at boot (main.py)" if args.autostart else
                        "; started from the REPL (--autostart to start at boot)"))
        if where.owned is not None:
            lines.append("  note       --port sim is a fresh virtual board that stops now; "
                         "`boardnet sim start mp` keeps one up")
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
    from .flash import flash_firmware

    result = flash_firmware(args.firmware, port=args.port, drive=args.drive, chip=args.chip,
                            erase=not args.no_erase)
    where = result.get("drive") or result.get("port")
    _out(args, f"flashed {args.firmware} to {where}"
         + (f" at {result['offset']} ({result['chip']})" if "offset" in result else ""), result)
    return 0


# ---- demo ------------------------------------------------------------------------------
def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="boardnet-demo", help="folder for the model and exports")
    p.add_argument("--port", help="a real board instead of the virtual one")
    p.add_argument("--host-only", action="store_true", help="train and predict on the host; no board")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


# ---- the table -------------------------------------------------------------------------
_COMMANDS: dict[str, Command] = {
    "train": ("train a model on a CSV file", _train_args, _train),
    "info": ("sizes, labels, fingerprint, training summary and fit of a model", _info_args, _info),
    "predict": ("predict on the host, or beside a board with --port", _predict_args, _predict),
    "export": ("write the C header and the MicroPython module", _export_args, _export),
    "boards": ("list serial ports, BOOTSEL drives and virtual boards; --probe asks each",
               _boards_args, _boards),
    "deploy": ("put the model and its runtime on a board, then prove it with a handshake",
               _deploy_args, _deploy),
    "flash-micropython": ("put a downloaded MicroPython firmware (.uf2, .bin) on a board",
                          _flash_args, _flash),
    "check": ("compare a board with the host; exit 1 outside tolerance", _check_args, _check),
    "sim": ("start or stop a virtual board that stays up (sim start mp; sim stop)", _sim_args, _sim),
    "demo": ("the whole workflow on the tutorial's people", _demo_args, _demo),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    return p


def _warn_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"boardnet: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
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
