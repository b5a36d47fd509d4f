"""Diffusion benchmark: Picard and ASD against sequential DDPM on the ring GMM and the digits
model — rounds, NFE, acceptance, quality and CPU wall-clock, all in one run. Same as
``parasample bench diffusion``. GPU timings: benchmarks/diffusion_gpu.py.

    python benchmarks/diffusion.py                  # 100 and 1000 steps, 5 seeds
    python benchmarks/diffusion.py --quick          # 100 steps, fewer configurations
    python benchmarks/diffusion.py --json out.json --markdown out.md
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: 100 steps only")
    p.add_argument("--steps", type=int, nargs="+", help="step counts (default 100 1000)")
    p.add_argument("--repeats", type=int, default=5, help="seeds / timed runs (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the markdown tables")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    from parasample.bench.diffusion import run
    from parasample.bench.harness import emit_report

    result = run(sizes=args.steps, repeats=args.repeats, seed=args.seed, quick=args.quick,
                 threads=args.threads, progress=None if args.no_progress else True)
    emit_report(result, json_path=args.json, markdown_path=args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
