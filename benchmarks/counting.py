"""Parallel sampling via counting: rounds vs n, k-DPP rounds vs k, wall time.

    python benchmarks/counting.py                 # n = 64..4096, 3 repeats
    python benchmarks/counting.py --quick         # n ≤ 512, small k-DPP (seconds)
    python benchmarks/counting.py --json out.json --markdown out.md --plot rounds.png
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: n ≤ 512, k-DPP n = 500")
    p.add_argument("--repeats", type=int, default=3, help="seeds per size (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--cap", type=float, default=120.0,
                   help="seconds per target in the rounds-vs-n sweep (default 120)")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the markdown tables")
    p.add_argument("--plot", metavar="PATH", help="write a log-log PNG of rounds vs n")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    from parasample.bench.counting import run
    from parasample.bench.harness import emit_report

    result = run(repeats=args.repeats, seed=args.seed, quick=args.quick,
                 cap_seconds=args.cap, progress=None if args.no_progress else True,
                 plot=args.plot)
    emit_report(result, json_path=args.json, markdown_path=args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
