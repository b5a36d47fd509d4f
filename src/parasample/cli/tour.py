"""``parasample tour``: every domain on a small built-in example, one table.

Each domain's CLI module provides ``tour_rows(seed, progress) -> list[dict]`` with the keys
of :data:`COLUMNS`; register new domains in :data:`TOUR_DOMAINS`.
"""

from __future__ import annotations

import argparse
import importlib
import time

from ._common import add_common_options, emit_json, format_table, progress_option

TOUR_DOMAINS = ("parasample.cli.dpp_cmd", "parasample.cli.tree_cmd", "parasample.cli.ar_cmd",
                "parasample.cli.diffusion_cmd")
COLUMNS = ("domain", "method", "example", "seq. rounds", "par. rounds", "speed-up",
           "exactness check", "time (s)")


def register(sub) -> None:
    p = sub.add_parser("tour", help="run every domain on a small example (about a minute)")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    rows: list[dict] = []
    for module in TOUR_DOMAINS:
        rows += importlib.import_module(module).tour_rows(args.seed, progress_option(args))
    failed = [r for r in rows if str(r.get("exactness check", "")).startswith("FAIL")]
    if args.json:
        emit_json({"rows": rows, "seconds": time.perf_counter() - start})
    else:
        print(format_table(rows, COLUMNS))
        skipped = [r for r in rows if str(r.get("exactness check", "")).startswith("skipped")]
        print(f"\n{len(rows)} rows in {time.perf_counter() - start:.1f} s; exactness checks: "
              f"{len(rows) - len(failed) - len(skipped)} passed, {len(failed)} failed"
              + (f", {len(skipped)} skipped" if skipped else ""))
    return 1 if failed else 0
