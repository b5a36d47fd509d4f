"""DPP benchmark: parasample vs DPPy 0.3.3 (comparisons R1–R7).

    python benchmarks/dpp.py                      # N = 1000, 2000, 5000; 5 repeats
    python benchmarks/dpp.py --quick              # smoke test, N = 300 (< 30 s)
    python benchmarks/dpp.py --sizes 1000 2000 --cap 60 --json out.json --markdown out.md

Prints the markdown table (ratios DPPy time / parasample time); --json writes everything
(meta, rows, raw timings). A progress bar goes to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000],
                   help="ground-set sizes N (default: 1000 2000 5000)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--quick", action="store_true", help="smoke test: N=300, 2 repeats, 1 s cap")
    p.add_argument("--cap", type=float, default=120.0,
                   help="seconds per call before a slow DPPy sampler is stopped and "
                        "reported as a lower bound (default 120)")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the markdown table")
    p.add_argument("--blas-threads", type=int, default=None, metavar="T",
                   help="OpenBLAS threads for both sides (default: as configured); 1 keeps "
                        "small timings sane on a shared machine")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    from parasample.bench.dpp import run
    from parasample.bench.harness import emit_report

    result = run(sizes=tuple(args.sizes), repeats=args.repeats, seed=args.seed,
                 quick=args.quick, cap_seconds=args.cap,
                 progress=None if args.no_progress else True,
                 blas_threads=args.blas_threads)
    emit_report(result, json_path=args.json, markdown_path=args.markdown)
    return 130 if result["meta"].get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
