"""Entry point of the ``parasample`` command.

Each sub-command lives in its own module with ``register(subparsers)``; adding a domain
means adding its module to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .. import __version__

COMMANDS = ("tour", "bench", "dpp_cmd", "tree_cmd", "ar_cmd", "diffusion_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parasample",
        description="Fast, parallel, exact sampling. Start with `parasample tour`.",
    )
    parser.add_argument("--version", action="version", version=f"parasample {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"parasample.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"parasample: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
