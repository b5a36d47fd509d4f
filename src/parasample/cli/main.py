"""Entry point of the ``parasample`` command.

Each sub-command lives in its own module with ``register(subparsers)``; adding a domain
means adding its module to :data:`COMMANDS`. Errors a user can act on (bad options, files
or values, a missing extra) are printed here, once for every sub-command, as one line;
``--debug`` (or ``PARASAMPLE_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from .. import __version__
from ._common import Parser, UsageError, error_message, show_warning

COMMANDS = ("tour", "bench", "dpp_cmd", "tree_cmd", "ar_cmd", "diffusion_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="parasample",
        description="Fast, parallel, exact sampling. Start with `parasample tour`.",
    )
    parser.add_argument("--version", action="version", version=f"parasample {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (or set PARASAMPLE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"parasample.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("PARASAMPLE_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = show_warning
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        except Exception as exc:
            known = None if debug else error_message(exc)
            if known is None:
                raise
            code, message = known
            print(f"parasample: error: {message}", file=sys.stderr)
            return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
