"""Helpers shared by the sub-commands: common options, file options checked before any
work, one-line error messages, tables, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "Parser", "UsageError", "add_common_options", "emit_json", "error_message", "format_table",
    "image_file", "input_file", "one_line", "output_file", "to_jsonable",
]

IMAGE_SUFFIXES = (".png", ".pdf", ".svg")
# the extra that provides each optional top-level module (pyproject's optional-dependencies)
EXTRAS = {"torch": "torch", "matplotlib": "plot", "diffusers": "hf", "transformers": "hf",
          "ray": "distributed", "dppy": "bench", "sklearn": "bench"}


class UsageError(Exception):
    """A command line that cannot be run as typed (already formatted as one line)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) raised as
    :class:`UsageError`, so that ``main`` returns 2 instead of exiting."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error (or set PARASAMPLE_DEBUG=1)")


# ------------------------------------------------------------------ file options
def input_file(text: str) -> Path:
    """argparse type of an input file: it must exist and be a file (read later)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file: {path}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory; give a file")
    return path


def output_file(text: str) -> Path:
    """argparse type of an output file, checked writable at parse time — before any work —
    and left as it was (a file created by the check is removed again)."""
    path = Path(text)
    problem = _output_problem(path)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return path


def image_file(text: str) -> Path:
    """argparse type of a picture: an :func:`output_file` with a suffix matplotlib writes,
    and matplotlib installed."""
    from ..core.errors import MissingExtraError, require

    path = Path(text)
    if path.suffix.lower() not in IMAGE_SUFFIXES and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"give a file name ending in {', '.join(IMAGE_SUFFIXES)}, got {text!r}")
    path = output_file(text)
    try:
        require("matplotlib", "plot")
    except MissingExtraError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return path


def _output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written, or None. Tries to open it for appending."""
    if path.is_dir():
        return f"{path} is a directory; give a file name inside it"
    parent = path.parent
    if not parent.exists():
        return f"directory {parent} does not exist; create it first (mkdir -p {parent})"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    if not existed:
        try:
            path.unlink()
        except OSError:
            pass
    return None


# ------------------------------------------------------------------ errors
def one_line(text: Any) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def error_message(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one-line message) for an error a user can act on, or None for a bug.

    Exit code 2: the input as given cannot work (bad values, files, options); 1: the run
    could not finish (missing extra, numerical trouble, memory, writing). The messages of
    code 1 point to ``--debug`` for the traceback.
    """
    from ..core.errors import ParasampleError

    debug_hint = " (run with --debug for the traceback)"
    if isinstance(exc, ImportError):
        root = (exc.name or "").split(".")[0]
        if isinstance(exc, ParasampleError):  # MissingExtraError: names the extra already
            return 1, one_line(exc)
        if root in EXTRAS:
            return 1, (f"{root!r} is needed here and is not installed; install it with: "
                       f'pip install "parasample[{EXTRAS[root]}]"')
        return 1, one_line(exc) + debug_hint
    if isinstance(exc, (ValueError, TypeError)):
        return 2, one_line(exc) or type(exc).__name__
    if isinstance(exc, OSError):
        text = (f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename
                else one_line(exc) or type(exc).__name__)
        usage = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
        return (2, text) if isinstance(exc, usage) else (1, text + debug_hint)
    if isinstance(exc, MemoryError):
        detail = one_line(exc)
        return 1, ("out of memory" + (f" ({detail})" if detail else "")
                   + "; try a smaller problem" + debug_hint)
    if isinstance(exc, ParasampleError):
        return 1, (one_line(exc) or type(exc).__name__) + debug_hint
    return None


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` replacement: one line, no source excerpt."""
    print(f"parasample: warning: {one_line(message)}", file=file or sys.stderr)


def progress_option(args: argparse.Namespace):
    """The progress argument for library calls: a bar on stderr unless disabled."""
    if getattr(args, "no_progress", False) or getattr(args, "json", False):
        return None
    return True


def to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def emit_json(payload: Any, stream=None) -> None:
    stream = stream or sys.stdout
    json.dump(to_jsonable(payload), stream, indent=2)
    stream.write("\n")


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A markdown table of ``rows`` restricted to ``columns`` (missing cells are blank)."""
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"
    out = [line(list(columns)), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return f"{v:.2e}"
    return str(v)
