"""The ``ckptcompat`` command: a thin shell over the library.

Errors print one line with a hint and exit with code 2; ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from ckptcompat import __version__
from ckptcompat.errors import CkptCompatError

__all__ = ["main"]

EXIT_OK, EXIT_PROBLEM, EXIT_ERROR = 0, 1, 2


def _cmd_inspect(args: argparse.Namespace) -> int:
    from ckptcompat.inspection import inspect

    info = inspect(args.path)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2, sort_keys=True))
    else:
        print(info.to_text())
    return EXIT_OK


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
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="show debug logs and tracebacks")
    p.set_defaults(func=_cmd_inspect)
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
    lines = [line.strip().removeprefix("- ") for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
