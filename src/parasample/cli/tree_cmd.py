"""``parasample tree``: exact (weighted) uniform spanning trees of a graph.

Examples::

    parasample tree --graph grid:100x100 --output tree.txt
    parasample tree --edges graph.txt --weighted --samples 100 --output trees.txt
    parasample tree --graph grid:30x30 --plot maze.png

Edge-list files have one edge per line, ``u v`` or ``u v w`` (whitespace or commas; ``#``
starts a comment); vertex labels may be any strings, and errors in the file (self-loops,
weights that are not finite and > 0, a disconnected graph) name its labels and line numbers.
Trees are written as edge lists in the same labels, one edge per line, each tree's n − 1
lines after the previous tree's. With ``--samples N > 1`` the repeated sampler by domain
sparsification is used (approximate, within TV ``--eps``); ``--exact`` runs Wilson for every
sample instead. Generated graphs are capped before they are built: 10⁷ edges (2·10⁶ for the
networkx-built wheel and hypercube).
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
from ._common import (
    add_common_options, emit_json, image_file, input_file, output_file, progress_option,
)

GENERATORS = "grid:AxB, complete:N, wheel:N, hypercube:D, petersen, random:N:M"
# Peak memory is about 220 bytes per edge for the edge arrays and the walk's tables, plus
# about 600 bytes per edge while networkx builds the wheel and hypercube graphs.
MAX_EDGES = 10_000_000
MAX_NETWORKX_EDGES = 2_000_000


def register(sub) -> None:
    p = sub.add_parser("tree", help="sample uniform / weighted spanning trees",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--edges", type=input_file,
                     help="edge-list file: 'u v' or 'u v w' per line")
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
    p.add_argument("--output", type=output_file,
                   help="write the trees here (default: stdout)")
    p.add_argument("--plot", type=image_file, help="PNG of the first tree (grid graphs)")
    add_common_options(p)
    p.set_defaults(func=run)


def read_edge_list(path: Path, weighted: bool):
    """(edges (m,2) int64, weights or None, labels) from an edge-list file.

    Checked here, in the file's own labels and line numbers: self-loops, weights that are
    not finite and > 0, and a disconnected graph."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text edge list (byte {exc.start} is not "
                         f"{exc.encoding})") from None
    index: dict[str, int] = {}
    pairs, weights = [], []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].replace(",", " ").split()
        if not line:
            continue
        if len(line) < 2 or (weighted and len(line) < 3):
            raise ValueError(f"{path}:{lineno}: expected 'u v{' w' if weighted else ''}', "
                             f"got {raw.strip()!r}")
        a, b = line[:2]
        if a == b:
            raise ValueError(f"{path}:{lineno}: self-loop at vertex {a!r}: a self-loop is "
                             "never in a spanning tree; delete the line")
        if weighted:
            try:
                w = float(line[2])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: weight {line[2]!r} is not a "
                                 "number") from None
            if not (np.isfinite(w) and w > 0):
                raise ValueError(f"{path}:{lineno}: edge {a!r} – {b!r} has weight {line[2]}; "
                                 "weights must be finite and > 0")
            weights.append(w)
        pairs.append((index.setdefault(a, len(index)), index.setdefault(b, len(index))))
    if not pairs:
        raise ValueError(f"{path}: no edges")
    labels = list(index)
    edges = np.array(pairs, dtype=np.int64)
    _check_connected(edges, labels, path)
    return edges, (np.array(weights) if weighted else None), labels


def _check_connected(edges: np.ndarray, labels: list, path: Path) -> None:
    """A ValueError naming two vertices (by their labels) in different components."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = len(labels)
    A = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, comp = connected_components(A, directed=False)
    if count > 1:
        other = int(np.flatnonzero(comp != comp[0])[0])
        raise ValueError(
            f"{path}: the graph is disconnected ({count} connected components): no path joins "
            f"vertex {labels[0]!r} and vertex {labels[other]!r}; it has no spanning tree, "
            "sample a tree of each component separately")


def parse_graph(spec: str) -> tuple[str, tuple[int, ...]]:
    """(name, sizes) of a named generator, with sizes and edge counts checked before
    anything is built."""
    forms = {"grid": "grid:AxB", "complete": "complete:N", "wheel": "wheel:N",
             "hypercube": "hypercube:D", "random": "random:N:M", "petersen": "petersen"}
    name, *args = spec.split(":")
    if name not in forms:
        raise ValueError(f"unknown graph {spec!r}; use one of: {GENERATORS}")
    parts = args[0].lower().split("x") if name == "grid" and len(args) == 1 else args
    arity = {"grid": 2, "random": 2, "petersen": 0}.get(name, 1)
    try:
        sizes = tuple(int(x) for x in parts)
    except ValueError:
        sizes = ()
    if len(sizes) != arity or (sizes and min(sizes) < (2 if name == "random" else 1)):
        raise ValueError(f"--graph {spec}: expected {forms[name]} with positive integer "
                         "sizes" + (", N ≥ 2" if name == "random" else ""))
    if name == "random" and sizes[1] < sizes[0]:
        raise ValueError("random:N:M needs M >= N")
    cap = MAX_NETWORKX_EDGES if name in ("wheel", "hypercube") else MAX_EDGES
    # hypercube:D has D·2^(D-1) edges: beyond D = 64 skip forming that huge integer
    m = _edge_count(name, sizes) if name != "hypercube" or sizes[0] <= 64 else None
    if m is None or m > cap:
        count = f"{m:,} edges" if m is not None else "more than 2^64 edges"
        raise ValueError(
            f"--graph {spec} is too large: {count}; the maximum is {cap:,} edges for "
            f"{forms[name]} (about {220 if cap == MAX_EDGES else 820} bytes per edge at peak)")
    return name, sizes


def _edge_count(name: str, sizes: tuple[int, ...]) -> int:
    if name == "grid":
        a, b = sizes
        return a * (b - 1) + b * (a - 1)
    if name == "complete":
        return sizes[0] * (sizes[0] - 1) // 2
    if name == "wheel":
        return 2 * (sizes[0] - 1)
    if name == "hypercube":
        return sizes[0] * 2 ** (sizes[0] - 1)
    if name == "random":
        return sizes[1]
    return 15  # petersen


def generate(spec: str, rng: np.random.Generator):
    """(edges, vertex count, grid shape or None) for a named generator."""
    import networkx as nx

    from ..bench.trees import complete_graph_edges, grid_edges, random_connected_graph

    name, sizes = parse_graph(spec)
    if name == "grid":
        a, b = sizes
        return grid_edges(a, b), a * b, (a, b)
    if name == "random":
        n, m = sizes
        return random_connected_graph(n, m, int(rng.integers(2**31))), n, None
    if name == "complete":  # same edge order as networkx.complete_graph
        return complete_graph_edges(sizes[0]), sizes[0], None
    build = {"wheel": nx.wheel_graph, "hypercube": nx.hypercube_graph,
             "petersen": lambda: nx.petersen_graph()}[name]
    G = nx.convert_node_labels_to_integers(build(*sizes))
    return np.array(list(G.edges), dtype=np.int64).reshape(-1, 2), G.number_of_nodes(), None


def run(args: argparse.Namespace) -> int:
    from ..trees import SparsifiedTreeSampler, count_spanning_trees
    from ..trees._graph import as_graph
    from ..trees.wilson import wilson_tree

    if args.samples < 1:
        raise ValueError("--samples must be at least 1")
    spec = args.graph or "grid:30x30"
    if not args.edges:
        name, _ = parse_graph(spec)
        if args.plot and name != "grid":
            raise ValueError("--plot draws grid graphs only (--graph grid:AxB)")
    elif args.plot:
        raise ValueError("--plot draws grid graphs only (--graph grid:AxB)")
    rng = as_generator(args.seed)
    shape = None
    if args.edges:
        edges, weights, labels = read_edge_list(args.edges, args.weighted)
        n = len(labels)
    else:
        edges, n, shape = generate(spec, rng)
        weights, labels = None, None
    if args.random_weights:
        weights = rng.lognormal(0.0, 1.0, size=len(edges))
    t0 = time.perf_counter()
    graph = as_graph(edges, weight=weights, n_nodes=n)
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
