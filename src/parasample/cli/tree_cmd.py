"""``parasample tree``: exact (weighted) uniform spanning trees of a graph.

Examples::

    parasample tree --graph grid:100x100 --output tree.txt
    parasample tree --edges graph.txt --weighted --samples 100 --output trees.txt
    parasample tree --graph grid:30x30 --plot maze.png

Edge-list files have one edge per line, ``u v`` or ``u v w`` (whitespace or commas; ``#``
starts a comment); vertex labels may be any strings. Trees are written as edge lists in the
same labels, one edge per line, trees separated by a blank line. With ``--samples N > 1``
the repeated sampler by domain sparsification is used (approximate, within TV ``--eps``);
``--exact`` runs Wilson for every sample instead.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from ..core.progress import track
from ..core.rng import as_generator
from ..core.stats import chisquare_counts, tv_bootstrap_threshold, tv_distance
from ._common import add_common_options, emit_json, progress_option

GENERATORS = "grid:AxB, complete:N, wheel:N, hypercube:D, petersen, random:N:M"


def register(sub) -> None:
    p = sub.add_parser("tree", help="sample uniform / weighted spanning trees",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--edges", type=Path, help="edge-list file: 'u v' or 'u v w' per line")
    src.add_argument("--graph", default=None, help=f"named generator: {GENERATORS} "
                     "(default grid:30x30)")
    p.add_argument("--weighted", action="store_true",
                   help="read weights from the third column of --edges")
    p.add_argument("--random-weights", action="store_true",
                   help="give a generated graph lognormal edge weights")
    p.add_argument("--samples", type=int, default=1, help="number of trees (default 1)")
    p.add_argument("--exact", action="store_true",
                   help="with --samples > 1: exact Wilson for every tree (no sparsification)")
    p.add_argument("--eps", type=float, default=0.1, help="sparsified sampler's TV target")
    p.add_argument("--count", action="store_true", help="also print log(number of trees)")
    p.add_argument("--output", type=Path, help="write the trees here (default: stdout)")
    p.add_argument("--plot", type=Path, help="PNG of the first tree (grid graphs)")
    add_common_options(p)
    p.set_defaults(func=run)


def read_edge_list(path: Path, weighted: bool):
    """(edges (m,2) int64, weights or None, labels) from an edge-list file."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    index: dict[str, int] = {}
    pairs, weights = [], []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].replace(",", " ").split()
        if not line:
            continue
        if len(line) < 2 or (weighted and len(line) < 3):
            raise ValueError(f"{path}:{lineno}: expected 'u v{' w' if weighted else ''}', "
                             f"got {raw.strip()!r}")
        u, v = (index.setdefault(x, len(index)) for x in line[:2])
        pairs.append((u, v))
        if weighted:
            try:
                weights.append(float(line[2]))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: weight {line[2]!r} is not a number")
    if not pairs:
        raise ValueError(f"{path}: no edges")
    labels = list(index)
    return np.array(pairs, dtype=np.int64), (np.array(weights) if weighted else None), labels


def generate(spec: str, rng: np.random.Generator):
    """(edges, labels, grid shape or None) for a named generator."""
    import networkx as nx

    from ..bench.trees import grid_edges, random_connected_graph

    name, *args = spec.split(":")
    try:
        if name == "grid" and len(args) == 1:
            a, b = (int(x) for x in args[0].lower().split("x"))
            return grid_edges(a, b), None, (a, b)
        if name == "random" and len(args) == 2:
            n, m = int(args[0]), int(args[1])
            if m < n:
                raise ValueError("random:N:M needs M >= N")
            return random_connected_graph(n, m, int(rng.integers(2**31))), None, None
        graphs = {"complete": lambda k: nx.complete_graph(k), "wheel": lambda k: nx.wheel_graph(k),
                  "hypercube": lambda k: nx.hypercube_graph(k)}
        if name in graphs and len(args) == 1:
            G = nx.convert_node_labels_to_integers(graphs[name](int(args[0])))
        elif name == "petersen" and not args:
            G = nx.petersen_graph()
        else:
            raise ValueError
    except ValueError as exc:
        msg = str(exc) or f"unknown graph {spec!r}; use one of: {GENERATORS}"
        raise ValueError(msg) from None
    return np.array(list(G.edges), dtype=np.int64).reshape(-1, 2), None, None


def run(args: argparse.Namespace) -> int:
    from ..trees import SparsifiedTreeSampler, count_spanning_trees
    from ..trees._graph import as_graph
    from ..trees.wilson import wilson_tree

    if args.samples < 1:
        raise ValueError("--samples must be at least 1")
    rng = as_generator(args.seed)
    shape = None
    if args.edges:
        edges, weights, labels = read_edge_list(args.edges, args.weighted)
    else:
        edges, labels, shape = generate(args.graph or "grid:30x30", rng)
        weights = None
    if args.random_weights:
        weights = rng.lognormal(0.0, 1.0, size=len(edges))
    t0 = time.perf_counter()
    graph = as_graph(edges, weight=weights)
    setup = time.perf_counter() - t0
    trees, steps, times = [], [], []
    sampler = None
    if args.samples > 1 and not args.exact:
        t = time.perf_counter()
        sampler = SparsifiedTreeSampler(graph.edges, weight=graph.weights, eps=args.eps, rng=rng)
        setup += time.perf_counter() - t
    for _ in track(range(args.samples), progress_option(args), "trees"):
        t = time.perf_counter()
        if sampler is not None:
            tree = np.asarray(sampler.sample(rng=rng))
        else:
            ids, s = wilson_tree(graph, int(rng.integers(2**63)))
            tree = graph.edges[ids]
            steps.append(s)
        times.append(time.perf_counter() - t)
        trees.append(tree)
    out_labels = labels if labels is not None else list(range(graph.n))
    text = "\n".join("\n".join(f"{out_labels[u]} {out_labels[v]}" for u, v in tree)
                     for tree in trees) + "\n"
    if args.output:
        args.output.write_text(text)
    if args.plot:
        _plot(args.plot, trees[0], shape)
    summary = {"n": graph.n, "m": graph.m, "samples": len(trees),
               "method": "sparsified" if sampler is not None else "wilson",
               "setup_seconds": setup, "median_seconds_per_tree": float(np.median(times))}
    if steps:
        summary["median_walk_steps"] = float(np.median(steps))
    if args.count:
        summary["log_tree_count"] = count_spanning_trees(graph, log=True)
    if args.json:
        summary["trees"] = [[[out_labels[u], out_labels[v]] for u, v in t] for t in trees]
        emit_json(summary)
    else:
        if not args.output:
            print(text, end="")
        extra = f", walk steps {summary['median_walk_steps']:.0f}" if steps else ""
        count = (f", log #trees {summary['log_tree_count']:.6f}" if args.count else "")
        print(f"# {summary['method']}: n={graph.n}, m={graph.m}, {len(trees)} tree(s), setup "
              f"{setup:.3f} s, {summary['median_seconds_per_tree'] * 1e3:.2f} ms per tree"
              f"{extra}{count}")
    return 0


def _plot(path: Path, tree: np.ndarray, shape) -> None:
    from ..core.errors import require

    if shape is None:
        raise ValueError("--plot draws grid graphs only (--graph grid:AxB)")
    plt = require("matplotlib.pyplot", "plot")
    from matplotlib.collections import LineCollection

    a, b = shape
    xy = np.column_stack([np.arange(a * b) % b, np.arange(a * b) // b]).astype(float)
    fig, ax = plt.subplots(figsize=(6, 6 * a / max(b, 1)))
    ax.add_collection(LineCollection(xy[tree], colors="k", linewidths=max(0.3, 60 / max(a, b))))
    ax.set_xlim(-1, b)
    ax.set_ylim(-1, a)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"uniform spanning tree of the {a}×{b} grid")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------- tour
def _law_counts(graph, trees_ids):
    from ..trees.enumerate import spanning_tree_law

    support, probs = spanning_tree_law(graph)
    index = {S: i for i, S in enumerate(support)}
    counts = np.zeros(len(support))
    for ids in trees_ids:
        counts[index[tuple(sorted(int(e) for e in ids))]] += 1
    return counts, probs


def tour_rows(seed: int, progress=None) -> list[dict]:
    """Tree rows of ``parasample tour``."""
    import networkx as nx

    from ..bench.trees import complete_graph_edges, grid_edges
    from ..dpp import DPP, SparsifiedKDPPSampler
    from ..trees import SparsifiedTreeSampler, count_spanning_trees
    from ..trees._graph import as_graph
    from ..trees.wilson import wilson_tree, wilson_trees

    rng = as_generator(seed)
    small = as_graph(grid_edges(3, 3), weight=rng.lognormal(0, 0.5, 12))
    big = as_graph(grid_edges(100, 100))
    rows = []

    def row(method, example, depth, check, secs):
        return {"domain": "trees", "method": method, "example": example, "seq. rounds": depth,
                "par. rounds": "—", "speed-up": "—", "exactness check": check, "time (s)": secs}

    def timed(fn):
        fn()
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t

    # Wilson: timing on 100×100, law on the weighted 3×3 grid (192 trees)
    (_, walk), secs = timed(lambda: wilson_tree(big, int(rng.integers(2**63))))
    ids, _ = wilson_trees(small, rng.integers(0, 2**63, size=9600, dtype=np.int64))
    counts, probs = _law_counts(small, ids)
    p = chisquare_counts(counts, probs)[1]
    rows.append(row("Wilson (numba)", "grid 100×100; law: weighted 3×3", walk,
                    f"{'pass' if p > 1e-4 else 'FAIL'}: chi² p={p:.2f} (192 trees, 9600 draws)",
                    secs))
    # Kirchhoff
    exact = 11484.4616
    val, secs = timed(lambda: count_spanning_trees(big, log=True))
    ok = abs(val - exact) < 1e-3
    rows.append(row("Kirchhoff log-count (sparse LU)", "grid 100×100", "—",
                    f"{'pass' if ok else 'FAIL'}: {val:.4f} vs closed form {exact}", secs))
    # sparsified trees: restart-mode TV on the weighted 3×3 grid
    K = as_graph(complete_graph_edges(300), weight=rng.lognormal(0, 1, 300 * 299 // 2))
    sampler = SparsifiedTreeSampler(K.edges, weight=K.weights, rng=rng)
    _, secs = timed(lambda: sampler.sample(rng=rng))
    small_sampler = SparsifiedTreeSampler(small.edges, weight=small.weights, rng=rng)
    M = 4000
    draws = [small_sampler.sample_edges(rng=rng) for _ in range(M)]
    counts, probs = _law_counts(small, draws)
    tv, q = tv_distance(counts, probs), tv_bootstrap_threshold(probs, M)
    eps = small_sampler.eps
    rows.append(row("sparsified trees (restart)", "K_300 weighted; TV: 3×3", "—",
                    f"{'pass' if tv <= eps + q else 'FAIL'}: TV {tv:.3f} ≤ ε {eps} + null "
                    f"{q:.3f}", secs))
    # sparsified k-DPP
    B = rng.normal(size=(20_000, 30))
    kd = SparsifiedKDPPSampler(DPP.from_features(B), 10, rng=rng)
    _, secs = timed(lambda: kd.sample(rng=rng))
    B8 = rng.normal(size=(8, 3))
    kd8 = SparsifiedKDPPSampler(DPP.from_features(B8), 2, rng=rng)
    L8 = B8 @ B8.T
    sets = list(itertools.combinations(range(8), 2))
    probs = np.array([np.linalg.det(L8[np.ix_(S, S)]) for S in sets])
    probs = probs / probs.sum()
    index = {S: i for i, S in enumerate(sets)}
    counts = np.zeros(len(sets))
    for _ in range(M):
        counts[index[tuple(int(v) for v in kd8.sample(rng=rng))]] += 1
    tv, q = tv_distance(counts, probs), tv_bootstrap_threshold(probs, M)
    rows.append(row("sparsified k-DPP (restart)", "n=20000, k=10; TV: n=8, k=2", "—",
                    f"{'pass' if tv <= kd8.eps + q else 'FAIL'}: TV {tv:.3f} ≤ ε {kd8.eps} + "
                    f"null {q:.3f}", secs))
    del nx
    return rows
