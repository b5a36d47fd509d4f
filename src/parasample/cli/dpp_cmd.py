"""``parasample dpp``: sample a finite DPP from a kernel file or a built-in example.

Examples::

    parasample dpp --example points:500 --samples 3 --plot dpp.png
    parasample dpp --kernel L.npy --method k --k 10 --samples 5 --json
    parasample dpp --features B.npy --method sequential
    parasample dpp --kernel L.npy --nonsymmetric                # L + Lᵀ ⪰ 0; sequential (LU)
    parasample dpp --kernel L.npy --nonsymmetric --method k --k 3

A nonsymmetric kernel takes the exact methods sequential (default), k (the k-NDPP, through
the partition sampler with one part) and partition. Examples are capped before anything is
allocated: points:N at N = 5000 (dense N×N matrices), gaussian:N:D at N·D = 5·10⁷ and
min(N, D) = 5000.
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from pathlib import Path

import numpy as np

from ..core.progress import track
from ..core.rng import as_generator
from ..core.stats import chisquare_counts
from ._common import (
    add_common_options, emit_json, image_file, input_file, one_line, output_file,
    progress_option,
)

METHODS = ("exact", "k", "sequential", "lowrank", "mcmc", "map", "partition")
NONSYMMETRIC_METHODS = ("sequential", "k", "partition")  # exact for a dense NonsymmetricDPP
MAX_POINTS = 5000  # points:N builds dense N×N matrices and eigendecomposes one
MAX_FEATURE_ENTRIES = 50_000_000  # gaussian:N:D holds N·D float64 features (400 MB)
MAX_RANK = 5000  # gaussian:N:D eigendecomposes a dense r×r matrix, r = min(N, D)


def register(sub) -> None:
    p = sub.add_parser("dpp", help="sample a determinantal point process",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--kernel", type=input_file,
                     help="likelihood kernel L (.npy, .csv or .txt)")
    src.add_argument("--correlation", type=input_file,
                     help="marginal kernel K (.npy, .csv, .txt)")
    src.add_argument("--features", type=input_file,
                     help="features B with L = B Bᵀ (.npy, .csv)")
    src.add_argument("--example", default=None,
                     help=f"built-in: points:N (Gaussian kernel on N random points in the "
                          f"unit square, default points:400, N ≤ {MAX_POINTS}) or "
                          f"gaussian:N:D (L = ΦᵀΦ, Φ D×N)")
    p.add_argument("--nonsymmetric", action="store_true",
                   help="treat --kernel as a nonsymmetric L (L + Lᵀ PSD); default method "
                        "sequential")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="sampler (default: exact, or sequential with --nonsymmetric; "
                        f"nonsymmetric kernels take {', '.join(NONSYMMETRIC_METHODS)})")
    p.add_argument("--k", type=int, help="sample size for k-DPP, MCMC exchange and MAP")
    p.add_argument("--samples", type=int, default=1, help="number of samples (default 1)")
    p.add_argument("--steps", type=int, default=None, help="MCMC steps (default 20·n)")
    p.add_argument("--parts", type=input_file,
                   help="partition labels, one int per item (.npy/.txt)")
    p.add_argument("--counts", type=int, nargs="+", help="required count per part")
    p.add_argument("--output", type=output_file,
                   help="write samples here, one line per sample")
    p.add_argument("--plot", type=image_file, help="PNG of the first sample (points example)")
    add_common_options(p)
    p.set_defaults(func=run)


def load_matrix(path: Path, option: str, *, square: bool = False) -> np.ndarray:
    """A 2-D numeric array from a .npy, .csv or whitespace-separated text file, or a
    ValueError naming ``option`` and the file."""
    where = f"{option} {path}"
    if not path.exists():
        raise FileNotFoundError(f"{where}: no such file")
    if path.is_dir():
        raise ValueError(f"{where} is a directory, not a matrix file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns on an empty file; checked below
            if path.suffix == ".npy":
                A = np.load(path, allow_pickle=False)
            else:
                A = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    except (ValueError, OSError, EOFError) as exc:  # UnicodeDecodeError is a ValueError
        kind = "a .npy array" if path.suffix == ".npy" else "a numeric text matrix"
        raise ValueError(f"{where}: cannot read it as {kind} ({one_line(exc)})") from None
    if not isinstance(A, np.ndarray):
        raise ValueError(f"{where} is an .npz archive; save one array with np.save instead")
    if A.dtype.kind not in "biuf":
        raise ValueError(f"{where} holds {A.dtype} values; expected numbers")
    if A.ndim != 2 or A.size == 0:
        raise ValueError(f"{where}: expected a non-empty 2-D matrix, got an array of shape "
                         f"{A.shape}")
    if square and A.shape[0] != A.shape[1]:
        raise ValueError(f"{where}: expected a square N×N matrix, got shape {A.shape}")
    return A


def load_labels(path: Path, n: int) -> np.ndarray:
    """One integer partition label per item from --parts, or a ValueError."""
    where = f"--parts {path}"
    raw = load_matrix(path, "--parts").ravel()
    if raw.size != n:
        raise ValueError(f"{where}: {raw.size} labels for a kernel on {n} items; give one "
                         "label per item")
    if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
        bad = raw[~np.isfinite(raw) | (raw != np.round(raw))][0]
        raise ValueError(f"{where}: labels must be integers, found {bad!r}")
    return raw.astype(np.int64)


def example_points(n: int, rng: np.random.Generator, bandwidth: float | None = None):
    """n uniform points in the unit square and L_ij = 5 exp(-|x_i - x_j|² / (2 h²)), h = 2/√n."""
    x = rng.random((n, 2))
    h = bandwidth if bandwidth is not None else 2.0 / np.sqrt(n)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return x, 5.0 * np.exp(-d2 / (2 * h * h))


def parse_example(text: str | None) -> tuple:
    """('points', N) or ('gaussian', N, D) from --example, sizes checked before anything is
    allocated."""
    text = text or "points:400"
    name, *sizes = text.split(":")
    forms = {"points": ("points:N", 1, [400]), "gaussian": ("gaussian:N:D", 2, [2000, 100])}
    if name not in forms or len(sizes) > forms[name][1]:
        raise ValueError(f"unknown example {text!r}; use points:N or gaussian:N:D")
    form, _, default = forms[name]
    try:
        values = [int(v) for v in sizes] + default[len(sizes):]
    except ValueError:
        values = [0]
    if min(values) < 1:
        raise ValueError(f"--example {text}: sizes must be positive integers, as in {form}")
    if name == "points":
        n = values[0]
        if n > MAX_POINTS:
            raise ValueError(
                f"--example {text} is too large: it builds dense N×N matrices ({_gb(8 * n * n)} "
                f"each, several at once) and an O(N³) eigendecomposition; the maximum is "
                f"N = {MAX_POINTS}. For more items use --example gaussian:N:D (rank D) or "
                "--features B.npy")
        return ("points", n)
    n, d = values
    if n * d > MAX_FEATURE_ENTRIES:
        raise ValueError(
            f"--example {text} is too large: the N×D features take {_gb(8 * n * d)}; the "
            f"maximum is N·D = {MAX_FEATURE_ENTRIES:,}")
    if min(n, d) > MAX_RANK:
        raise ValueError(
            f"--example {text} is too large: the sampler eigendecomposes a dense r×r matrix, "
            f"r = min(N, D) = {min(n, d)}; the maximum is min(N, D) = {MAX_RANK}")
    return ("gaussian", n, d)


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def check_options(args: argparse.Namespace) -> tuple | None:
    """Everything that can be checked before any work; sets the default method. Returns the
    parsed example (None with a kernel, correlation or features file)."""
    if args.samples < 1:
        raise ValueError("--samples must be at least 1")
    from_file = args.kernel or args.correlation or args.features
    if args.nonsymmetric and not args.kernel:
        raise ValueError("--nonsymmetric applies to a likelihood kernel file: give --kernel "
                         "L.npy")
    if args.method is None:
        args.method = "sequential" if args.nonsymmetric else "exact"
    if args.nonsymmetric and args.method not in NONSYMMETRIC_METHODS:
        raise ValueError(
            f"--method {args.method} needs a symmetric kernel; with --nonsymmetric use "
            f"--method {', '.join(NONSYMMETRIC_METHODS)} (default {NONSYMMETRIC_METHODS[0]})")
    if args.method in ("k", "map") and args.k is None:
        raise ValueError(f"--method {args.method} needs --k")
    if args.k is not None and args.k < 0:
        raise ValueError("--k must be non-negative")
    if args.method == "partition" and (args.parts is None or args.counts is None):
        raise ValueError("--method partition needs --parts and --counts")
    example = None if from_file else parse_example(args.example)
    if args.plot and (example is None or example[0] != "points"):
        raise ValueError("--plot needs the points example (--example points:N)")
    return example


def load_source(args: argparse.Namespace) -> np.ndarray | None:
    """The matrix of --kernel, --correlation or --features (None for an example)."""
    if args.kernel:
        return load_matrix(args.kernel, "--kernel", square=True)
    if args.correlation:
        return load_matrix(args.correlation, "--correlation", square=True)
    if args.features:
        return load_matrix(args.features, "--features")
    return None


def build_target(args: argparse.Namespace, matrix: np.ndarray | None, example: tuple | None,
                 rng: np.random.Generator):
    """(target, points or None) from the loaded matrix or the example."""
    from ..dpp import DPP, NonsymmetricDPP

    if args.kernel:
        return (NonsymmetricDPP if args.nonsymmetric else DPP).from_likelihood(matrix), None
    if args.correlation:
        return DPP.from_correlation(matrix), None
    if args.features:
        return DPP.from_features(matrix), None
    if example[0] == "points":
        x, L = example_points(example[1], rng)
        return DPP.from_likelihood(L), x
    _, n, d = example
    return DPP.from_features(rng.normal(size=(d, n)).T), None


def _sampler(args: argparse.Namespace, target, labels: np.ndarray | None):
    """A function rng -> sorted sample for the chosen method."""
    from .. import dpp as D

    k = args.k
    if args.method == "exact":
        return lambda g: D.sample_exact(target, rng=g)
    if args.method == "k" and args.nonsymmetric:  # k-NDPP: one part holding every item
        one_part = np.zeros(target.n, dtype=np.int64)
        return lambda g: D.sample_partition(target, one_part, [k], rng=g)
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
    return lambda g: D.sample_partition(target, labels, args.counts, rng=g)


def run(args: argparse.Namespace) -> int:
    example = check_options(args)
    rng = as_generator(args.seed)
    t0 = time.perf_counter()
    matrix = load_source(args)
    labels = None
    if args.method == "partition":  # checked before the kernel is factorised
        n = matrix.shape[0] if matrix is not None else example[1]
        labels = load_labels(args.parts, n)
    target, points = build_target(args, matrix, example, rng)
    draw = _sampler(args, target, labels)
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
