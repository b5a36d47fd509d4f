"""Bad input to the tree functions (issue 9, items 6, 11, 14): far-off vertex indices are
rejected before anything of that size is allocated, counts must be integers, unrepresentable
counts and capped sketches say so, and a call that fails validation leaves the caller's
Generator untouched."""

from __future__ import annotations

import math
import time
import tracemalloc
import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from parasample.bench.trees import grid_edges
from parasample.trees import (SparsifiedTreeSampler, approx_effective_resistances,
                              count_spanning_trees, edge_marginals, effective_resistances,
                              random_spanning_tree, random_spanning_tree_edges,
                              random_spanning_trees)
from parasample.trees._graph import as_graph


# ------------------------------------------------------------------- item 6: vertex indices
def _cheap(fn, *args, **kw):
    """Run fn expecting a ValueError; return its message, checking time and memory."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ValueError) as info:
            fn(*args, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0 and peak < 10 * 2**20, (time.perf_counter() - t0, peak)
    return str(info.value)


@pytest.mark.parametrize("far", [10**9, 10**12, 2**62])
@pytest.mark.parametrize("fn", [random_spanning_tree, count_spanning_trees,
                                effective_resistances, as_graph])
def test_far_vertex_index_is_rejected_cheaply(fn, far):
    E = np.array([[0, 1], [1, 2], [2, far]])
    msg = _cheap(fn, E)
    assert f"vertex {far}" in msg and "relabel" in msg and "n_nodes" in msg


def test_far_vertex_with_n_nodes_and_sparse_input():
    msg = _cheap(as_graph, np.array([[0, 1], [1, 2]]), n_nodes=10**9)
    assert "disconnected" in msg
    A = sp.coo_matrix((np.ones(4), ([0, 1, 1, 2], [1, 0, 2, 1])), shape=(10**9, 10**9))
    assert "disconnected" in _cheap(random_spanning_tree, A)


def test_indices_that_fit_still_work():
    E = np.array([[0, 1], [1, 2], [2, 3]])
    assert random_spanning_tree(E, rng=0).shape == (3, 2)
    with pytest.raises(ValueError, match="disconnected"):
        as_graph(E, n_nodes=6)
    with pytest.raises(ValueError, match="n_nodes"):
        as_graph(E, n_nodes=2.5)


# ------------------------------------------------------------------ item 11: counts
def test_count_underflow_points_to_log():
    E = grid_edges(3, 3)
    with pytest.raises(OverflowError, match=r"log=True"):
        count_spanning_trees(E, weight=np.full(len(E), 1e-60))  # τ ≈ 192e-480
    with pytest.raises(OverflowError, match=r"log=True"):
        count_spanning_trees(E, weight=np.full(len(E), 1e-39))  # τ ≈ 1.9e-310, subnormal
    logc = count_spanning_trees(E, weight=np.full(len(E), 1e-60), log=True)
    assert logc == pytest.approx(math.log(192) + 8 * math.log(1e-60), rel=1e-12)
    big = grid_edges(60, 60)  # n > 3000: the sparse route
    with pytest.raises(OverflowError, match=r"log=True"):
        count_spanning_trees(big, weight=np.full(len(big), 1e-3))
    assert count_spanning_trees(E, weight=np.full(len(E), 1e-30)) == pytest.approx(192e-240)


def test_capped_sketch_warns_with_its_accuracy():
    g = as_graph(grid_edges(6, 6))
    with pytest.warns(RuntimeWarning, match=r"1000 projections.*4\.5%"):
        R = approx_effective_resistances(g, eps=1e-6, rng=0)
    assert R.shape == (g.m,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        approx_effective_resistances(g, eps=0.9, rng=0)  # q = 106: within the cap
        approx_effective_resistances(g, n_projections=50, rng=0)
    with pytest.warns(RuntimeWarning, match="projections"):
        edge_marginals(g, exact=False, eps=1e-3, rng=0)


@pytest.mark.parametrize("bad", [2.5, True, -1, "3"])
def test_non_integer_counts_are_rejected(bad):
    E = grid_edges(3, 3)
    g = as_graph(E)
    calls = [
        lambda: random_spanning_trees(E, bad),
        lambda: random_spanning_tree_edges(E, root=bad),
        lambda: random_spanning_tree(E, max_steps=bad),
        lambda: approx_effective_resistances(g, n_projections=bad),
        lambda: SparsifiedTreeSampler(g, n_steps=bad),
        lambda: SparsifiedTreeSampler(g, t=bad),
        lambda: SparsifiedTreeSampler(g, n_projections=bad),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()


# ------------------------------------------------------------- item 14: rng untouched
def _untouched(call):
    gen = np.random.default_rng(5)
    before = gen.bit_generator.state
    with pytest.raises((ValueError, TypeError)):
        call(gen)
    assert gen.bit_generator.state == before


def test_failed_validation_does_not_advance_the_generator():
    E = grid_edges(3, 3)
    g = as_graph(E)
    _untouched(lambda gen: random_spanning_tree(E, rng=gen, max_steps=2.5))
    _untouched(lambda gen: random_spanning_trees(E, 2.5, rng=gen))
    _untouched(lambda gen: random_spanning_trees(E, 3, rng=gen, max_steps=-1))
    _untouched(lambda gen: random_spanning_tree_edges(E, rng=gen, root=99))
    _untouched(lambda gen: approx_effective_resistances(g, n_projections=0, rng=gen))
    _untouched(lambda gen: edge_marginals(g, exact=False, eps=-1.0, rng=gen))
    _untouched(lambda gen: SparsifiedTreeSampler(g, start=[0, 0, 1, 2, 3, 4, 5, 6], rng=gen))
    _untouched(lambda gen: SparsifiedTreeSampler(g, start=[0, 1, 2, 3, 4, 5, 6, 99], rng=gen))
    _untouched(lambda gen: SparsifiedTreeSampler(g, mode="chained", t=3, rng=gen))
    s = SparsifiedTreeSampler(g, rng=1)
    _untouched(lambda gen: s.step(np.array([0, 1, 2]), rng=gen))  # not a tree
    _untouched(lambda gen: s.step(s.state, rng=gen, draws=np.array([0, 99])))


def test_networkx_graph_still_fine():
    G = nx.grid_2d_graph(3, 3)
    assert nx.is_tree(random_spanning_tree(G, rng=0))
