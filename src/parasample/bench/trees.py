"""Spanning-tree benchmark: parasample vs networkx and DPPy, plus the repeated samplers of the
domain-sparsification paper (Anari–Liu–Vuong, arXiv 2204.02570).

Ratios (baseline time / parasample time, same run, interleaved medians, numba warm):

* T1 — ``random_spanning_tree`` on a networkx grid (conversion and networkx output
  included) vs ``networkx.random_spanning_tree`` on 5×5, 10×10, 15×15 grids (networkx runs
  in a worker under a per-call cap: ``≥`` marks a lower bound).
* T2 — vs DPPy 0.3.3 ``UST(G).sample(mode='Wilson')`` on a 100×100 grid (DPPy's ``UST(G)``
  is built once, untimed): ours on a prepared graph (``as_graph`` once, the tree as an edge
  array), and ours networkx-in/networkx-out per call (both conversions timed).

Scale rows (no baseline can run them; walk steps reported next to seconds):

* T3 — one tree on a 1000×1000 grid and on a random connected graph with 10⁵ vertices and
  5·10⁵ edges (edge-array input, prepared graph): seconds, walk steps, steps/s.
* T4 — a batch of 64 trees on 100×100: all numba threads vs one.
* T5 — :class:`SparsifiedTreeSampler`: preprocessing and per-sample time vs repeated Wilson
  on G, on dense weighted complete graphs (|E| ≫ |V|), on n = 1000 graphs with growing m
  and on a two-clique bottleneck.
* K1 — :class:`SparsifiedKDPPSampler` (k = 20, features d = 50): preprocessing and
  per-sample time vs repeated exact ``sample_exact_k`` as n grows from 10³ to 10⁵.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np

from ..core.errors import require
from ..core.progress import progress_reporter
from .harness import (Comparison, Task, environment_info, markdown_table, measure,
                      rows_markdown)

__all__ = ["run", "grid_edges", "random_connected_graph"]

#: the project's targets (must, target): ≥ 100× networkx at 15×15, ≥ 50× DPPy at 100×100
THRESHOLDS = {"T1": (100.0, None), "T2": (50.0, None)}
T1_THRESHOLD_SIDE = 15


# --------------------------------------------------------------------------- graphs
def grid_edges(a: int, b: int) -> np.ndarray:
    """Edges of the a×b grid on vertices i*b + j, as an (m, 2) int64 array."""
    idx = np.arange(a * b).reshape(a, b)
    right = np.column_stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()])
    down = np.column_stack([idx[:-1, :].ravel(), idx[1:, :].ravel()])
    return np.vstack([right, down]).astype(np.int64)


def random_connected_graph(n: int, m: int, seed: int) -> np.ndarray:
    """A random Hamiltonian cycle (so connected) plus m − n uniform random edges."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    cycle = np.column_stack([perm, np.roll(perm, -1)])
    extra = rng.integers(0, n, size=(m - n, 2))
    extra = extra[extra[:, 0] != extra[:, 1]]
    return np.vstack([cycle, extra]).astype(np.int64)


def complete_graph_edges(n: int) -> np.ndarray:
    i, j = np.triu_indices(n, 1)
    return np.column_stack([i, j]).astype(np.int64)


def two_cliques(n_half: int, n_cross: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two weighted cliques joined by ``n_cross`` light edges (a bottleneck)."""
    rng = np.random.default_rng(seed)
    a = complete_graph_edges(n_half)
    b = a + n_half
    cross = np.column_stack([rng.integers(0, n_half, n_cross),
                             rng.integers(n_half, 2 * n_half, n_cross)])
    edges = np.vstack([a, b, cross]).astype(np.int64)
    w = np.concatenate([rng.lognormal(0, 1, len(a) + len(b)),
                        1e-2 * rng.lognormal(0, 1, n_cross)])
    return edges, w


# --------------------------------------------------------------------------- workers
def baseline_worker_task(kind: str, side: int, seed: int):
    """Factory run in a worker process for baselines that may hit the cap."""
    import networkx as nx

    G = nx.grid_2d_graph(side, side)
    if kind == "networkx":
        rng = np.random.default_rng(seed)
        return lambda: nx.random_spanning_tree(G, seed=int(rng.integers(2**31)))
    if kind == "dppy":
        import contextlib
        import io

        from dppy.exotic_dpps import UST

        Gi = nx.convert_node_labels_to_integers(G)
        with contextlib.redirect_stdout(io.StringIO()):
            ust = UST(Gi)
        rs = np.random.RandomState(seed)

        def fn():
            ust.list_of_samples = []
            return ust.sample(mode="Wilson", random_state=rs)
        return fn
    raise ValueError(f"unknown baseline {kind!r}")


# --------------------------------------------------------------------------- helpers
def _median_time(fn: Callable[[], object], repeats: int, warm: bool = True) -> float:
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _ratio_rows(sides, dppy_side, repeats, seed, cap, report) -> list[dict]:
    import networkx as nx

    from ..trees import random_spanning_tree

    tasks, comps = [], []
    for side in sides:
        G = nx.grid_2d_graph(side, side)
        rng = np.random.default_rng([seed, side])
        tasks.append(Task(f"ours_{side}", fn=lambda G=G, rng=rng: random_spanning_tree(G, rng=rng)))
        tasks.append(Task(f"nx_{side}", factory=baseline_worker_task,
                          kwargs={"kind": "networkx", "side": side, "seed": seed}, cap=cap,
                          warmup=False, budget=cap, min_repeats=1))
        must = THRESHOLDS["T1"][0] if side == T1_THRESHOLD_SIDE else None
        comps.append(Comparison("T1", f"one tree, {side}×{side} grid", f"ours_{side}",
                                f"nx_{side}", size=f"{side}×{side}", must=must,
                                ours_label="random_spanning_tree",
                                baseline_label="networkx.random_spanning_tree"))
    from ..trees._graph import as_graph
    from ..trees.wilson import random_spanning_tree_edges

    G = nx.grid_2d_graph(dppy_side, dppy_side)
    rng = np.random.default_rng([seed, dppy_side])
    prepared = as_graph(G)  # like DPPy's UST(G), built once and not timed
    tasks.append(Task("ours_nx", fn=lambda: random_spanning_tree(G, rng=rng)))
    tasks.append(Task("ours_prepared", fn=lambda: prepared.edges[
        random_spanning_tree_edges(prepared, rng=rng).sample]))
    tasks.append(Task("dppy", factory=baseline_worker_task,
                      kwargs={"kind": "dppy", "side": dppy_side, "seed": seed}, cap=cap,
                      warmup=False, budget=cap, min_repeats=1))
    size = f"{dppy_side}×{dppy_side}"
    comps.append(Comparison("T2", "one tree, prepared graph (edge array out)",
                            "ours_prepared", "dppy", size=size, must=THRESHOLDS["T2"][0],
                            ours_label="as_graph once + Wilson",
                            baseline_label="DPPy UST(G) once + Wilson"))
    comps.append(Comparison("T2", "one tree, networkx in → networkx out per call", "ours_nx",
                            "dppy", size=size, ours_label="random_spanning_tree(G)",
                            baseline_label="DPPy UST(G) once + Wilson"))
    timings = measure(tasks, repeats=repeats, progress=report, label="trees T1/T2")
    return [c.row(timings) for c in comps]


def _scale_rows(grid_side, rand_n, rand_m, repeats, seed) -> list[list]:
    from ..trees._graph import as_graph
    from ..trees.wilson import wilson_tree

    out = []
    cases = [(f"{grid_side}×{grid_side} grid", grid_edges(grid_side, grid_side)),
             (f"random graph n={rand_n:,}, m={rand_m:,}",
              random_connected_graph(rand_n, rand_m, seed))]
    for name, edges in cases:
        graph = as_graph(edges)
        seeds = iter(np.random.default_rng(seed).integers(0, 2**63, size=repeats + 1))
        steps = []

        def one():
            _, s = wilson_tree(graph, int(next(seeds)))
            steps.append(s)
        secs = _median_time(one, repeats)
        st = float(np.median(steps))
        out.append(["T3", name, f"{graph.n:,}", f"{graph.m:,}", f"{secs:.3f} s",
                    f"{st:,.0f}", f"{st / secs:,.0f}"])
    return out


def _batch_row(side, n_trees, seed) -> list:
    import numba

    from ..trees._graph import as_graph
    from ..trees.wilson import wilson_trees

    graph = as_graph(grid_edges(side, side))
    seeds = np.random.default_rng(seed).integers(0, 2**63, size=n_trees, dtype=np.int64)
    threads = numba.get_num_threads()
    all_cores = _median_time(lambda: wilson_trees(graph, seeds), 3)
    numba.set_num_threads(1)
    try:
        one_core = _median_time(lambda: wilson_trees(graph, seeds), 3)
    finally:
        numba.set_num_threads(threads)
    return ["T4", f"{n_trees} trees, {side}×{side} grid", threads, f"{one_core:.3f} s",
            f"{all_cores:.3f} s", f"{one_core / all_cores:.2f}×"]


def _sparsified_tree_rows(ns, repeats, seed) -> list[list]:
    from ..trees import SparsifiedTreeSampler
    from ..trees._graph import as_graph
    from ..trees.wilson import wilson_tree

    rng = np.random.default_rng(seed)
    cases = []
    for n in ns:
        e = complete_graph_edges(n)
        cases.append((f"K_{n}, lognormal weights", e, rng.lognormal(0, 1, len(e))))
    for m in (20_000, 100_000, 500_000):  # fixed n = 1000, growing m
        e = random_connected_graph(1000, m, seed)
        cases.append((f"random, n=1000, m={m:,}", e, rng.lognormal(0, 1, len(e))))
    e, w = two_cliques(ns[0] // 2, 80, seed)
    cases.append((f"two K_{ns[0] // 2} joined by 80 light edges", e, w))
    out = []
    for name, edges, weights in cases:
        graph = as_graph(edges, weight=weights)
        seeds = iter(rng.integers(0, 2**63, size=repeats + 1))
        steps = []

        def exact():
            steps.append(wilson_tree(graph, int(next(seeds)))[1])
        t_exact = _median_time(exact, repeats)
        t0 = time.perf_counter()
        sampler = SparsifiedTreeSampler(edges, weight=weights, rng=seed)
        prep = time.perf_counter() - t0
        t_sparse = _median_time(lambda: sampler.sample(rng=rng), repeats)
        out.append(["T5", name, f"{graph.n:,}", f"{graph.m:,}", f"{prep:.3f} s",
                    f"{t_sparse * 1e3:.1f} ms", f"{t_exact * 1e3:.1f} ms",
                    f"{float(np.median(steps)):,.0f}", f"{t_exact / t_sparse:.2f}×"])
    return out


def _sparsified_kdpp_rows(ns, k, d, repeats, seed) -> list[list]:
    from ..dpp import DPP, SparsifiedKDPPSampler, sample_exact_k

    out = []
    for n in ns:
        rng = np.random.default_rng([seed, n])
        B = rng.normal(size=(n, d)) * rng.lognormal(0, 0.5, size=(n, 1))
        t0 = time.perf_counter()
        dpp = DPP.from_features(B)
        _ = dpp.spectrum
        sample_exact_k(dpp, k, rng=rng)
        first_exact = time.perf_counter() - t0
        t_exact = _median_time(lambda: sample_exact_k(dpp, k, rng=rng), repeats)
        t0 = time.perf_counter()
        sampler = SparsifiedKDPPSampler(DPP.from_features(B), k, rng=seed)
        prep = time.perf_counter() - t0
        t_sparse = _median_time(lambda: sampler.sample(rng=rng), repeats)
        out.append(["K1", f"{n:,}", k, f"{prep:.3f} s", f"{t_sparse * 1e3:.2f} ms",
                    f"{first_exact:.3f} s", f"{t_exact * 1e3:.2f} ms",
                    f"{t_exact / t_sparse:.2f}×"])
    return out


# --------------------------------------------------------------------------- run
def run(*, sizes: Optional[Sequence[int]] = None, repeats: int = 5, seed: int = 0,
        quick: bool = False, cap_seconds: float = 120.0, progress=None) -> dict:
    """Run T1–T5 and K1; returns ``{"meta", "rows", "tables", "markdown"}``.

    ``sizes`` overrides the k-DPP sizes n of K1. ``quick``: small graphs, 2 repeats (smoke).
    """
    require("dppy", "bench")
    report = progress_reporter(progress)
    if quick:
        sides, dppy_side, repeats, cap_seconds = (5, 8), 20, 2, min(cap_seconds, 5.0)
        grid_side, rand_n, rand_m = 100, 10_000, 50_000
        tree_ns, kdpp_ns = (200,), (1000, 3000)
    else:
        sides, dppy_side = (5, 10, 15), 100
        grid_side, rand_n, rand_m = 1000, 100_000, 500_000
        tree_ns, kdpp_ns = (1000, 2000), (1000, 10_000, 100_000)
    if sizes:
        kdpp_ns = tuple(int(s) for s in sizes)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    t0 = time.perf_counter()
    meta = environment_info(("numpy", "scipy", "numba", "networkx", "dppy", "parasample"),
                            benchmark="trees", repeats=repeats, seed=seed, quick=quick,
                            cap_seconds=cap_seconds)
    rows = _ratio_rows(sides, dppy_side, repeats, seed, cap_seconds, report)
    steps = [("scale", lambda: _scale_rows(grid_side, rand_n, rand_m, min(repeats, 3), seed)),
             ("batch", lambda: [_batch_row(100, 64, seed)]),
             ("sparsified_trees", lambda: _sparsified_tree_rows(tree_ns, repeats, seed)),
             ("sparsified_kdpp", lambda: _sparsified_kdpp_rows(kdpp_ns, 20, 50, repeats, seed))]
    tables = {}
    for i, (name, fn) in enumerate(steps):
        report(i, len(steps), "trees: scale rows")
        try:
            tables[name] = fn()
        except Exception as exc:  # recorded, the other rows still run
            tables[name] = [[f"error: {type(exc).__name__}: {exc}"[:300]]]
    report(len(steps), len(steps), "trees: scale rows")
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    return {"meta": meta, "rows": rows, "tables": tables, "markdown": _markdown(meta, rows, tables)}


_HEADERS = {
    "scale": ["id", "graph", "n", "m", "time (1 tree)", "walk steps", "steps/s"],
    "batch": ["id", "work", "numba threads", "1 thread", "all threads", "speed-up"],
    "sparsified_trees": ["id", "graph", "n", "m", "preprocess", "per sample (sparsified)",
                         "per sample (Wilson on G)", "Wilson walk steps",
                         "Wilson / sparsified"],
    "sparsified_kdpp": ["id", "n", "k", "preprocess", "per sample (sparsified)",
                        "first exact (spectrum + sample)", "per exact sample",
                        "exact / sparsified"],
}


def _markdown(meta, rows, tables) -> str:
    v = meta["versions"]
    head = (f"Spanning-tree benchmark — ratio = baseline time / parasample time (median of "
            f"{meta['repeats']} interleaved repeats; ≥ = baseline stopped at the "
            f"{meta['cap_seconds']:g} s cap).\npython {meta['python']}, numpy {v.get('numpy')}"
            f", scipy {v.get('scipy')}, numba {v.get('numba')}, networkx {v.get('networkx')}, "
            f"dppy {v.get('dppy')}; {meta['cpu_count']} cores; {meta['wall_s']} s wall.")
    parts = [head, rows_markdown(rows, size_label="graph")]
    for name, body in tables.items():
        if body and len(body[0]) == 1:
            parts.append(f"{name}: {body[0][0]}")
        else:
            parts.append(markdown_table(_HEADERS[name], body))
    return "\n\n".join(parts)
