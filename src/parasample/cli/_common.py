"""Helpers shared by the sub-commands: common options, tables, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import numpy as np

__all__ = ["add_common_options", "format_table", "emit_json", "to_jsonable"]


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


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
