"""Spanning-tree benchmark: parasample vs networkx and DPPy, plus the repeated samplers by
domain sparsification. Same as ``parasample bench trees``.

    python benchmarks/trees.py [--quick] [--repeats 5] [--cap 120] [--json out.json]
"""

import argparse
import json
import sys

from parasample.bench.trees import run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small graphs (smoke run)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cap", type=float, default=120.0, help="per-call cap for baselines (s)")
    p.add_argument("--kdpp-sizes", type=int, nargs="+", help="n values for the k-DPP rows")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--markdown", help="write the markdown report here")
    args = p.parse_args(argv)
    report = run(sizes=args.kdpp_sizes, repeats=args.repeats, seed=args.seed,
                 quick=args.quick, cap_seconds=args.cap, progress=True)
    print(report["markdown"])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({k: v for k, v in report.items() if k != "markdown"}, fh, indent=2,
                      default=str)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(report["markdown"] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
