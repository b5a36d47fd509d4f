"""Long walks (issue 9, item 4): chunked kernel calls, the step budget, the long-walk
warning and its cut bound, Ctrl-C — and samples unchanged from the unchunked kernel."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import parasample.trees.wilson as wilson
from parasample.bench.trees import grid_edges
from parasample.trees import random_spanning_tree, random_spanning_tree_edges, random_spanning_trees
from parasample.trees._graph import WeightedGraph, as_graph
from parasample.trees.walk_bound import _levels_bound, walk_steps_lower_bound
from parasample.trees.wilson import (WalkBudgetError, default_root, wilson_tree,
                                     wilson_tree_reference, wilson_trees)
from support.threads import one_numba_thread


def barbell(k: int, bridge: float) -> WeightedGraph:
    """Two unit-weight K_k joined by one edge of weight ``bridge`` (expected walk steps
    ≈ k(k−1)/bridge)."""
    E = np.array(list(nx.barbell_graph(k, 0).edges))
    w = np.where((E[:, 0] < k) != (E[:, 1] < k), bridge, 1.0)
    return as_graph(E, weight=w)


def seeds(M, seed):
    return np.random.default_rng(seed).integers(0, 2 ** 64, size=M, dtype=np.uint64)


def ordinary_graphs():
    E = grid_edges(12, 12)
    yield as_graph(E)
    yield as_graph(E, weight=np.random.default_rng(1).lognormal(0, 1.5, len(E)))
    G = nx.gnm_random_graph(60, 300, seed=2)
    E = np.array(G.edges)
    yield as_graph(E, weight=np.random.default_rng(2).uniform(0.1, 10, len(E)), n_nodes=60)


def test_samples_unchanged_from_unchunked_kernel():
    """Digest of trees and step counts computed with the previous (one-call, unchunked)
    kernel: the RNG stream and every sample are unchanged."""
    h = hashlib.sha256()
    for g in ordinary_graphs():
        ids, steps = wilson_trees(g, seeds(200, 5))
        h.update(ids.tobytes())
        h.update(steps.tobytes())
        r = random_spanning_tree_edges(g.edges, weight=g.weights, rng=9)
        h.update(r.sample.tobytes())
        h.update(str(r.info["walk_steps"]).encode())
    assert h.hexdigest()[:16] == "9877e210471e377b"


def test_chunked_equals_unchunked_pathwise(monkeypatch):
    """Tiny chunks and few slots (walks paused and resumed thousands of times, slots
    refilled) give the same trees and steps as one call, and as the reference."""
    cases = [(g, seeds(12, i)) for i, g in enumerate(ordinary_graphs())]
    cases.append((barbell(5, 1e-2), seeds(12, 7)))
    expect = [wilson_trees(g, S) for g, S in cases]
    monkeypatch.setattr(wilson, "CHUNK_STEPS", 173)
    monkeypatch.setattr(wilson, "SLOT_BYTES", 1)
    for (g, S), (ids, steps) in zip(cases, expect):
        ids2, steps2 = wilson_trees(g, S)
        assert np.array_equal(ids, ids2) and np.array_equal(steps, steps2)
        for i in (0, 11):
            t, k = wilson_tree(g, int(S[i]))
            t_ref, k_ref = wilson_tree_reference(g, int(S[i]))
            assert np.array_equal(t, ids[i]) and k == steps[i]
            assert np.array_equal(t_ref, ids[i]) and k_ref == steps[i]


def test_batch_slots_independent_of_threads(monkeypatch):
    g = barbell(6, 0.05)
    S = seeds(30, 3)
    ids, steps = wilson_trees(g, S)
    monkeypatch.setattr(wilson, "CHUNK_STEPS", 50)
    with one_numba_thread():
        ids1, steps1 = wilson_trees(g, S)
    assert np.array_equal(ids, ids1) and np.array_equal(steps, steps1)


# ----------------------------------------------------------------------------- budget
def test_budget_is_exact_and_raises():
    g = as_graph(grid_edges(6, 6))
    t, k = wilson_tree(g, 11)
    assert np.array_equal(wilson_tree(g, 11, max_steps=k)[0], t)  # exactly enough
    for fn in (wilson_tree, wilson_tree_reference):
        with pytest.raises(WalkBudgetError, match=f"max_steps = {k - 1}"):
            fn(g, 11, max_steps=k - 1)
    with pytest.raises(WalkBudgetError, match="max_steps"):
        wilson_trees(g, np.array([11, 12], dtype=np.uint64), max_steps=k - 1)


def test_budget_on_badly_scaled_graph_names_the_bottleneck():
    g = barbell(20, 1e-7)  # the case: ~3.8e9 steps expected
    t0 = time.perf_counter()
    with pytest.raises(WalkBudgetError, match=r"at least 3\.8e\+09 walk steps.*1e-07"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            random_spanning_tree(g.edges, weight=g.weights, rng=0, max_steps=200_000)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(WalkBudgetError):
        random_spanning_trees(g.edges, 3, weight=g.weights, rng=0, max_steps=200_000)
    with pytest.raises(WalkBudgetError):
        random_spanning_tree_edges(g.edges, weight=g.weights, rng=0, max_steps=200_000)


def test_budget_argument_is_a_count():
    E = grid_edges(3, 3)
    for bad in (2.5, -1, True, "10"):
        with pytest.raises(ValueError, match="max_steps"):
            random_spanning_tree(E, max_steps=bad)
    assert random_spanning_tree(E, rng=1, max_steps=10**6).shape == (8, 2)


# ----------------------------------------------------------------------------- warning
def test_long_walk_warns_with_the_estimate():
    g = barbell(20, 1e-7)
    with pytest.warns(RuntimeWarning, match=r"at least 3\.8e\+09 walk steps per tree"):
        with pytest.raises(WalkBudgetError):
            wilson_tree(g, 1, max_steps=3 * wilson.CHUNK_STEPS)


def test_no_warning_on_ordinary_graphs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for g in ordinary_graphs():
            wilson_trees(g, seeds(20, 1))
        E = grid_edges(300, 300)  # ~1e6 steps per tree
        random_spanning_tree(E, weight=np.random.default_rng(3).lognormal(0, 2, len(E)), rng=2)


# ----------------------------------------------------------------------------- the bound
def expected_walk_steps(graph: WeightedGraph, root: int) -> float:
    """Σ_v π(v)(E_v H_r + E_r H_v) by solving for hitting times."""
    n = graph.n
    A = -(graph.laplacian() - sp.diags(graph.laplacian().diagonal())).toarray()
    d = A.sum(axis=1)
    P = A / d[:, None]
    H = np.zeros((n, n))
    for t in range(n):
        keep = np.arange(n) != t
        H[keep, t] = np.linalg.solve(np.eye(n - 1) - P[np.ix_(keep, keep)], np.ones(n - 1))
    return float(np.sum(d / d.sum() * (H[:, root] + H[root, :])))


def mixed_weight_graph(seed: int) -> WeightedGraph:
    rng = np.random.default_rng(seed)
    G = nx.gnm_random_graph(14, 30, seed=seed)
    G.add_edges_from(zip(range(13), range(1, 14)))
    E = np.array(G.edges)
    return as_graph(E, weight=10 ** rng.uniform(-4, 4, len(E)))


@pytest.mark.parametrize("seed", range(12))
def test_bound_is_below_the_exact_expected_steps(seed):
    g = mixed_weight_graph(seed)
    for root in (None, 0, 5):
        r = default_root(g) if root is None else root
        b = walk_steps_lower_bound(g, r)
        assert 0 < b.steps <= expected_walk_steps(g, r) * (1 + 1e-9)


def test_bound_is_tight_on_bottlenecks_and_zero_for_equal_weights():
    for k, bridge in ((6, 1e-3), (10, 1e-5)):
        g = barbell(k, bridge)
        exact = expected_walk_steps(g, default_root(g))
        b = walk_steps_lower_bound(g)
        assert 0.9 * exact <= b.steps <= exact and b.cut == pytest.approx(bridge)
    assert walk_steps_lower_bound(as_graph(grid_edges(5, 5))).steps == 0.0


def test_bound_python_twin_matches():
    g = mixed_weight_graph(3)
    b = walk_steps_lower_bound(g)
    level = np.minimum(np.floor(np.log10(g.weights.max() / g.weights)), 31).astype(np.int16)
    order = np.argsort(level, kind="stable")
    starts = np.searchsorted(level[order], np.arange(int(level.max()) + 2))
    py = getattr(_levels_bound, "py_func", _levels_bound)
    got = py(g.edges[order, 0], g.edges[order, 1], g.weights[order], g.weighted_degree,
             starts, default_root(g))
    assert got == pytest.approx(tuple(b), rel=1e-12)


# ----------------------------------------------------------------------------- Ctrl-C
@pytest.mark.parametrize("batch", [False, True])
def test_ctrl_c_interrupts_a_long_walk(batch):
    g = barbell(30, 1e-9)  # ~1e12 steps: effectively endless
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        with warnings.catch_warnings(), pytest.raises(KeyboardInterrupt):
            warnings.simplefilter("ignore", RuntimeWarning)
            if batch:
                wilson_trees(g, seeds(4, 1), max_steps=4 * 10**9)
            else:
                wilson_tree(g, 1, max_steps=4 * 10**9)
    finally:
        timer.cancel()  # no stray Ctrl-C if the call failed otherwise
        timer.join()
    assert time.perf_counter() - t0 < 5
