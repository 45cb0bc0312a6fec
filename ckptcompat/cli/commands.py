"""The ``ckptcompat`` command: a thin shell over the library.

Errors print one line with a hint and exit with code 2; ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence

from ckptcompat import __version__
from ckptcompat._compat import removeprefix
from ckptcompat.errors import CkptCompatError

__all__ = ["main"]

EXIT_OK, EXIT_PROBLEM, EXIT_ERROR = 0, 1, 2


def _cmd_inspect(args: argparse.Namespace) -> int:
    from ckptcompat.inspection import inspect

    info = inspect(args.path, tensors=args.tensors)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2, sort_keys=True))
    else:
        print(info.to_text())
    return EXIT_OK


@contextlib.contextmanager
def _quiet_discovery(args: argparse.Namespace) -> Iterator[None]:
    """ls/verify print every damaged checkpoint themselves: drop the duplicate log warnings
    while the command runs (the previous levels are restored afterwards)."""
    loggers = [] if args.verbose else [logging.getLogger(n) for n in ("ckptcompat.discovery", "ckptcompat.store")]
    previous = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, previous):
            lg.setLevel(level)


def _cmd_ls(args: argparse.Namespace) -> int:
    from ckptcompat.cli.tables import list_rows, nested_stores, render_ls

    with _quiet_discovery(args):
        rows = list_rows(args.dir, monitor=args.monitor, mode=args.mode, pattern=args.pattern)
        rows += nested_stores(args.dir)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2, sort_keys=True))
    else:
        print(render_ls(args.dir, rows))
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from ckptcompat.cli.tables import verify_path

    with _quiet_discovery(args):
        checked, problems = verify_path(args.path, deep=not args.fast, read=not args.no_read)
    for name, fmt in checked:
        print(f"ok       {name}  ({fmt})")
    for line in problems:
        print(f"PROBLEM  {line}")
    print(f"{len(checked)} readable, {len(problems)} problem(s)")
    return EXIT_PROBLEM if problems else EXIT_OK


class _ProgressBar:
    """A one-line progress bar on stderr: ``stage [#####     ] done/total``."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self.stage: str | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage and self.stage is not None:
            sys.stderr.write("\n")
        self.stage = stage
        filled = self.width if total <= 0 else int(self.width * done / total)
        sys.stderr.write(f"\r{stage:<7}[{'#' * filled}{' ' * (self.width - filled)}] {done}/{total}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.stage is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _cmd_migrate(args: argparse.Namespace) -> int:
    from ckptcompat.migration import migrate

    bar = _ProgressBar() if (args.progress or sys.stderr.isatty()) else None
    try:
        report = migrate(args.src, args.dst, to=args.to, force=args.force, progress=bar,
                         include_optimizer=not args.no_optimizer, safe_mode=not args.allow_unsafe)
    finally:
        if bar is not None:
            bar.close()
    print(report.summary())
    return EXIT_OK


def _cmd_plot(args: argparse.Namespace) -> int:
    from ckptcompat.cli.plot import plot_history

    out = plot_history(args.dir, args.output, metrics=args.metric or None)
    print(f"wrote {out}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from ckptcompat.cli.demo import render, run_demo

    result = run_demo(args.workdir, epochs=args.epochs, seed=args.seed,
                      echo=lambda line: print(line, flush=True))
    print(render(result))
    return EXIT_OK if result.equal else 1


def _verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="show debug logs and tracebacks")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ckptcompat",
        description="Inspect, verify, migrate and resume TensorFlow/Keras checkpoints of any generation.")
    parser.add_argument("--version", action="version", version=f"ckptcompat {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="show format, producer, progress, optimizer and variables")
    p.add_argument("path", help="checkpoint file, bundle prefix or directory")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--tensors", action="store_true",
                   help="read every tensor and show its sha256 (default: headers only, no tensor data read)")
    _verbose(p)
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("ls", help="list the checkpoints of a store or any folder, and the stores in its subfolders")
    p.add_argument("dir", help="ckptcompat store, folder of checkpoints, or one checkpoint")
    p.add_argument("--monitor", help="metric that decides 'best' (default: the store's, else val_loss)")
    p.add_argument("--mode", choices=("min", "max"), help="direction of --monitor (default: known direction)")
    p.add_argument("--pattern", help="the ModelCheckpoint filepath template the files were saved with")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _verbose(p)
    p.set_defaults(func=_cmd_ls)

    p = sub.add_parser("verify", help="check checksums and read every checkpoint (exit 1 on problems)")
    p.add_argument("path", help="ckptcompat store, folder of checkpoints, or one checkpoint")
    p.add_argument("--fast", action="store_true", help="compare store file sizes only (no sha256)")
    p.add_argument("--no-read", action="store_true", help="do not read the checkpoints, checksums only")
    _verbose(p)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("migrate", help="convert a checkpoint to another format, verified tensor by tensor")
    p.add_argument("src", help="checkpoint to read (never modified)")
    p.add_argument("dst", help="file to write (.keras/.weights.h5, .h5, or a TF1 bundle prefix)")
    p.add_argument("--to", required=True, choices=("keras3", "h5", "tf1"), help="target format")
    p.add_argument("--force", action="store_true", help="replace DST (the old one is kept as DST.bak)")
    p.add_argument("--progress", action="store_true", help="show a progress bar even when not a terminal")
    p.add_argument("--no-optimizer", action="store_true", help="drop the optimizer state on purpose")
    p.add_argument("--allow-unsafe", action="store_true",
                   help="copy Lambda layers' Python byte-code into DST (only for files you trust)")
    _verbose(p)
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser("plot", help="plot the metric history of a store or folder to a PNG")
    p.add_argument("dir", help="ckptcompat store, folder of checkpoints, or a state.json")
    p.add_argument("-o", "--output", default="history.png", help="PNG to write (default: ./history.png)")
    p.add_argument("--metric", action="append", help="plot only this metric (repeatable)")
    _verbose(p)
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("demo", help="cut the power mid-epoch, resume, and compare with an uninterrupted run")
    p.add_argument("--workdir", default="ckptcompat-demo", help="folder for checkpoints, logs and the plot")
    p.add_argument("--epochs", type=int, default=3, help="epochs to train (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the model (default: 0)")
    _verbose(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 problems found, 2 error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CkptCompatError as exc:
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"ckptcompat {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _one_line(exc: BaseException) -> str:
    """The message on one line (multi-line mismatch lists are joined with '; ')."""
    lines = [removeprefix(line.strip(), "- ") for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
