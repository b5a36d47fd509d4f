"""``parasample dpp``: sample a finite DPP from a kernel file or a built-in example.

Examples::

    parasample dpp --example points:500 --samples 3 --plot dpp.png
    parasample dpp --kernel L.npy --method k --k 10 --samples 5 --json
    parasample dpp --features B.npy --method sequential
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from ..core.progress import track
from ..core.rng import as_generator
from ..core.stats import chisquare_counts
from ._common import add_common_options, emit_json, progress_option

METHODS = ("exact", "k", "sequential", "lowrank", "mcmc", "map", "partition")


def register(sub) -> None:
    p = sub.add_parser("dpp", help="sample a determinantal point process",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--kernel", type=Path, help="likelihood kernel L (.npy, .csv or .txt)")
    src.add_argument("--correlation", type=Path, help="marginal kernel K (.npy, .csv, .txt)")
    src.add_argument("--features", type=Path, help="features B with L = B Bᵀ (.npy, .csv)")
    src.add_argument("--example", default=None,
                     help="built-in: points:N (Gaussian kernel on N random points in the "
                          "unit square, default points:400) or gaussian:N:D (L = ΦᵀΦ, Φ D×N)")
    p.add_argument("--nonsymmetric", action="store_true",
                   help="treat --kernel as a nonsymmetric L (L + Lᵀ PSD)")
    p.add_argument("--method", choices=METHODS, default="exact")
    p.add_argument("--k", type=int, help="sample size for k-DPP, MCMC exchange and MAP")
    p.add_argument("--samples", type=int, default=1, help="number of samples (default 1)")
    p.add_argument("--steps", type=int, default=None, help="MCMC steps (default 20·n)")
    p.add_argument("--parts", type=Path, help="partition labels, one int per item (.npy/.txt)")
    p.add_argument("--counts", type=int, nargs="+", help="required count per part")
    p.add_argument("--output", type=Path, help="write samples here, one line per sample")
    p.add_argument("--plot", type=Path, help="PNG of the first sample (points example)")
    add_common_options(p)
    p.set_defaults(func=run)


def _load_matrix(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix == ".npy":
        return np.load(path)
    return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)


def example_points(n: int, rng: np.random.Generator, bandwidth: float | None = None):
    """n uniform points in the unit square and L_ij = 5 exp(-|x_i - x_j|² / (2 h²)), h = 2/√n."""
    x = rng.random((n, 2))
    h = bandwidth if bandwidth is not None else 2.0 / np.sqrt(n)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return x, 5.0 * np.exp(-d2 / (2 * h * h))


def build_target(args: argparse.Namespace, rng: np.random.Generator):
    """(target, points or None) from the command-line options."""
    from ..dpp import DPP, NonsymmetricDPP

    if args.kernel:
        L = _load_matrix(args.kernel)
        return (NonsymmetricDPP if args.nonsymmetric else DPP).from_likelihood(L), None
    if args.correlation:
        return DPP.from_correlation(_load_matrix(args.correlation)), None
    if args.features:
        return DPP.from_features(_load_matrix(args.features)), None
    spec = (args.example or "points:400").split(":")
    if spec[0] == "points" and len(spec) in (1, 2):
        x, L = example_points(int(spec[1]) if len(spec) > 1 else 400, rng)
        return DPP.from_likelihood(L), x
    if spec[0] == "gaussian" and len(spec) in (1, 2, 3):
        n = int(spec[1]) if len(spec) > 1 else 2000
        d = int(spec[2]) if len(spec) > 2 else 100
        return DPP.from_features(rng.normal(size=(d, n)).T), None
    raise ValueError(f"unknown example {args.example!r}; use points:N or gaussian:N:D")


def _sampler(args: argparse.Namespace, target):
    """A function rng -> sorted sample for the chosen method."""
    from .. import dpp as D

    k = args.k
    needs_k = args.method in ("k", "map") or (args.method == "mcmc" and k is not None)
    if args.method in ("k", "map") and k is None:
        raise ValueError(f"--method {args.method} needs --k")
    if needs_k and k is not None and k < 0:
        raise ValueError("--k must be non-negative")
    if args.method == "exact":
        return lambda g: D.sample_exact(target, rng=g)
    if args.method == "k":
        return lambda g: D.sample_exact_k(target, k, rng=g)
    if args.method == "sequential":
        return lambda g: D.sample_sequential(target, rng=g)
    if args.method == "lowrank":
        return lambda g: D.sample_lowrank(target, rng=g)
    if args.method == "mcmc":
        steps = args.steps if args.steps is not None else 20 * target.n
        return lambda g: D.sample_mcmc(target, k=k, n_steps=steps, rng=g)
    if args.method == "map":
        return lambda g: D.map_greedy(target, k)
    if args.parts is None or args.counts is None:
        raise ValueError("--method partition needs --parts and --counts")
    labels = _load_matrix(args.parts).astype(np.int64).ravel()
    return lambda g: D.sample_partition(target, labels, args.counts, rng=g)


def run(args: argparse.Namespace) -> int:
    if args.samples < 1:
        raise ValueError("--samples must be at least 1")
    rng = as_generator(args.seed)
    t0 = time.perf_counter()
    target, points = build_target(args, rng)
    draw = _sampler(args, target)
    prep = time.perf_counter() - t0
    samples, times = [], []
    for _ in track(range(args.samples), progress_option(args), "dpp samples"):
        t = time.perf_counter()
        samples.append(np.asarray(draw(rng)))
        times.append(time.perf_counter() - t)
    if args.output:
        args.output.write_text("".join(" ".join(map(str, s)) + "\n" for s in samples))
    if args.plot:
        _plot(args.plot, points, samples[0], rng)
    summary = {
        "method": args.method, "n": target.n, "samples": samples,
        "sizes": [len(s) for s in samples], "setup_seconds": prep,
        "median_seconds_per_sample": float(np.median(times)),
    }
    if args.json:
        emit_json(summary)
    else:
        if not args.output:
            for s in samples:
                print(" ".join(map(str, s)))
        print(f"# {args.method}: n={target.n}, sizes {summary['sizes']}, setup {prep:.3f} s, "
              f"{summary['median_seconds_per_sample'] * 1e3:.2f} ms per sample")
    return 0


def _plot(path: Path, points, sample, rng) -> None:
    from ..core.errors import require

    if points is None:
        raise ValueError("--plot needs the points example (--example points:N)")
    plt = require("matplotlib.pyplot", "plot")
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    m = len(sample)
    indep = rng.choice(len(points), size=m, replace=False)
    for ax, idx, title in [(axes[0], sample, f"DPP sample ({m} points)"),
                           (axes[1], indep, f"independent uniform ({m} points)")]:
        ax.scatter(points[:, 0], points[:, 1], s=4, c="0.85")
        ax.scatter(points[idx, 0], points[idx, 1], s=14, c="tab:red")
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- tour
def _law(L: np.ndarray, k: int | None, feasible=None):
    n = L.shape[0]
    sizes = range(n + 1) if k is None else [k]
    sets = [S for m in sizes for S in itertools.combinations(range(n), m)
            if feasible is None or feasible(S)]
    w = np.array([np.linalg.det(L[np.ix_(S, S)]) if S else 1.0 for S in sets])
    return sets, np.maximum(w, 0.0) / np.maximum(w, 0.0).sum()


def _check(draw, L, k, M, rng, feasible=None) -> str:
    sets, probs = _law(L, k, feasible)
    index = {S: i for i, S in enumerate(sets)}
    counts = np.zeros(len(sets))
    for _ in range(M):
        S = tuple(int(v) for v in draw(rng))
        if S not in index:
            return f"FAIL: impossible sample {S}"
        counts[index[S]] += 1
    _, p, _ = chisquare_counts(counts, probs)
    verdict = "pass" if p > 1e-4 else "FAIL"
    return f"{verdict}: chi² p={p:.2f} (n={L.shape[0]}, {M} draws)"


def _map_check(D, rng) -> str:
    """Greedy MAP vs brute force for k = 3 on 12 items of a rank-3 kernel (no guarantee)."""
    B = rng.normal(size=(12, 3))
    L = B @ B.T
    greedy = D.map_greedy(D.DPP.from_features(B), 3)
    best = max(np.linalg.slogdet(L[np.ix_(S, S)])[1]
               for S in itertools.combinations(range(12), 3))
    ratio = np.exp(np.linalg.slogdet(L[np.ix_(greedy, greedy)])[1] - best)
    return f"info: det ratio to brute-force optimum {ratio:.2f} (n=12, k=3)"


def tour_rows(seed: int, progress=None) -> list[dict]:
    """DPP rows of ``parasample tour``: a timing on n = 2000 and an exact-law check."""
    from .. import dpp as D

    rng = as_generator(seed)
    A = rng.normal(size=(6, 6))
    L6 = A @ A.T / 6 + 0.1 * np.eye(6)
    small = D.DPP.from_likelihood(L6)
    phi = rng.normal(size=(100, 2000))
    big = D.DPP.from_features(phi.T)
    C = rng.normal(size=(6, 6))
    ns_small = D.NonsymmetricDPP.from_likelihood(L6 + (C - C.T) / 4)
    labels = np.array([0, 0, 0, 1, 1, 1])
    feasible = lambda S: sum(i < 3 for i in S) == 1 and sum(i >= 3 for i in S) == 2
    steps = 100  # MCMC chain length for the n = 6 law check (mixes in far fewer)

    def timed(fn, reps=3):
        out, best = None, np.inf
        for _ in range(reps):
            t = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t)
        return out, best

    rows = []
    tasks = [
        ("exact (spectral)", "features n=2000, d=100", lambda: D.sample_exact(big, rng=rng),
         lambda: _check(lambda g: D.sample_exact(small, rng=g), L6, None, 4000, rng),
         lambda s: len(s)),
        ("k-DPP k=50 (spectral)", "features n=2000, d=100",
         lambda: D.sample_exact_k(big, 50, rng=rng),
         lambda: _check(lambda g: D.sample_exact_k(small, 3, rng=g), L6, 3, 4000, rng),
         lambda s: 50),
        ("sequential (low-rank)", "features n=2000, d=100",
         lambda: D.sample_sequential(big, rng=rng),
         lambda: _check(lambda g: D.sample_sequential(small, rng=g), L6, None, 4000, rng),
         lambda s: 2000),
        ("nonsymmetric (LU)", "n=6, L + Lᵀ ⪰ 0", lambda: D.sample_sequential(ns_small, rng=rng),
         lambda: _check(lambda g: D.sample_sequential(ns_small, rng=g),
                        ns_small.likelihood_kernel(), None, 4000, rng),
         lambda s: 6),
        ("nonsymmetric (rejection)", "n=6, L + Lᵀ ⪰ 0",
         lambda: D.sample_rejection(ns_small, rng=rng).sample,
         lambda: _check(lambda g: D.sample_rejection(ns_small, rng=g).sample,
                        ns_small.likelihood_kernel(), None, 4000, rng),
         lambda s: 6),
        ("MCMC exchange, 1000 steps", "features n=2000, k=50",
         lambda: D.sample_mcmc(big, k=50, n_steps=1000, rng=rng),
         lambda: _check(lambda g: D.sample_mcmc(small, k=3, n_steps=steps, rng=g),
                        L6, 3, 2000, rng),
         lambda s: 1000),
        ("partition-constrained", "n=6, counts (1, 2)",
         lambda: D.sample_partition(small, labels, [1, 2], rng=rng),
         lambda: _check(lambda g: D.sample_partition(small, labels, [1, 2], rng=g),
                        L6, None, 2000, rng, feasible),
         lambda s: 3),
        ("greedy MAP k=10", "features n=2000, d=100", lambda: D.map_greedy(big, 10),
         lambda: _map_check(D, rng), lambda s: 10),
    ]
    for method, example, sample, check, depth in track(tasks, progress, "tour: dpp"):
        s, secs = timed(sample)
        rows.append({"domain": "dpp", "method": method, "example": example,
                     "seq. rounds": depth(s), "par. rounds": "—", "speed-up": "—",
                     "exactness check": check(), "time (s)": secs})
    return rows
