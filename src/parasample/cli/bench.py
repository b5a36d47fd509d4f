"""``parasample bench DOMAIN``: the library against named baselines in the same run."""

from __future__ import annotations

import argparse
import importlib
import json

from ._common import add_common_options, emit_json, image_file, output_file, progress_option

DOMAINS = {"dpp": "parasample.bench.dpp", "trees": "parasample.bench.trees",
           "ar": "parasample.bench.counting", "diffusion": "parasample.bench.diffusion"}


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks against baselines (ratios, same run)")
    p.add_argument("domain", choices=sorted(DOMAINS))
    p.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    p.add_argument("--sizes", type=int, nargs="+",
                   help="problem sizes (domain-specific; diffusion: step counts)")
    p.add_argument("--repeats", type=int, default=5, help="repetitions per task (median)")
    p.add_argument("--cap", type=float, default=120.0,
                   help="seconds after which a slow baseline is cut (ratio lower bound)")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="limit BLAS threads during the run (steadier timings on a busy machine)")
    p.add_argument("--plot", type=image_file, help="ar: log-log PNG of rounds vs n")
    p.add_argument("--output", type=output_file, help="also write the JSON report here")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(DOMAINS[args.domain])
    kwargs = dict(repeats=args.repeats, seed=args.seed, quick=args.quick,
                  cap_seconds=args.cap, progress=progress_option(args))
    if args.blas_threads is not None:
        if args.domain != "dpp":
            raise ValueError("--blas-threads is supported by the dpp benchmark only")
        kwargs["blas_threads"] = args.blas_threads
    if args.sizes:
        kwargs["sizes"] = tuple(args.sizes)
    if args.plot is not None:
        if args.domain != "ar":
            raise ValueError("--plot is supported by the ar benchmark only")
        kwargs["plot"] = str(args.plot)
    report = module.run(**kwargs)
    if args.output:
        args.output.write_text(json.dumps(
            {k: v for k, v in report.items() if k != "markdown"}, indent=2, default=str))
    if args.json:
        emit_json({k: v for k, v in report.items() if k != "markdown"})
    else:
        print(report["markdown"])
    return 0
