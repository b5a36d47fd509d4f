"""Exact effective resistances by selected inversion of the sparse factor (issue 9, item 7):
equal to the pseudoinverse and to the dense route, fast on grids, with progress and a
fill-in warning."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np
import pytest

import parasample.trees.laplacian as lap
from parasample.bench.trees import grid_edges
from parasample.trees import effective_resistances
from parasample.trees._graph import as_graph


def _pinv_resistances(graph):
    Lp = np.linalg.pinv(graph.laplacian().toarray())
    u, v = graph.edges[:, 0], graph.edges[:, 1]
    return Lp[u, u] + Lp[v, v] - 2 * Lp[u, v]


def _graphs():
    rng = np.random.default_rng(4)
    E = grid_edges(12, 15)
    yield "weighted grid", as_graph(E, weight=rng.lognormal(0, 2, len(E)))
    E = np.array(nx.random_regular_graph(3, 120, seed=1).edges)
    yield "3-regular", as_graph(E, weight=rng.lognormal(0, 1, len(E)))
    E = np.array(nx.gnm_random_graph(80, 400, seed=2).edges)
    E = np.concatenate([E, E[:40], np.column_stack([np.arange(79), np.arange(1, 80)])])
    yield "multigraph", as_graph(E, weight=rng.uniform(0.1, 10, len(E)))
    E = np.array(nx.barabasi_albert_graph(150, 2, seed=3).edges)  # hubs, leaves, bridges
    yield "scale-free", as_graph(E, weight=10 ** rng.uniform(-3, 3, len(E)))


@pytest.mark.parametrize("name,g", list(_graphs()), ids=[n for n, _ in _graphs()])
def test_selected_inversion_matches_pinv(monkeypatch, name, g):
    monkeypatch.setattr(lap, "SMALL_N", 0)  # force the sparse route on a small graph
    R = effective_resistances(g)
    np.testing.assert_allclose(R, _pinv_resistances(g), rtol=1e-8, atol=1e-14)
    assert np.sum(g.weights * R) == pytest.approx(g.n - 1, rel=1e-10)  # Foster
    monkeypatch.setattr(lap, "SMALL_N", 10**9)
    np.testing.assert_allclose(effective_resistances(g), R, rtol=1e-9, atol=1e-14)


def test_grounded_vertex_edges_and_tiny_graphs(monkeypatch):
    monkeypatch.setattr(lap, "SMALL_N", 0)
    star = np.column_stack([np.full(6, 6), np.arange(6)])  # every edge touches r = n − 1
    assert np.allclose(effective_resistances(star, weight=np.arange(1.0, 7.0)),
                       1 / np.arange(1.0, 7.0))
    assert np.allclose(effective_resistances(np.array([[0, 1], [1, 2]])), [1.0, 1.0])


def test_large_grid_is_fast_and_reports_progress():
    """The 100×100 grid took 44 s (issue) / 39 s (here) by n blocked solves."""
    g = as_graph(grid_edges(100, 100))
    effective_resistances(as_graph(grid_edges(30, 30)))  # warm the compiled kernel
    calls = []
    t0 = time.perf_counter()
    R = effective_resistances(g, progress=lambda d, t, label: calls.append((d, t)))
    assert time.perf_counter() - t0 < 15
    assert np.sum(R) == pytest.approx(g.n - 1, rel=1e-10)  # unit weights: Foster
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] >= 50
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_heavy_fill_warns(monkeypatch):
    monkeypatch.setattr(lap, "SMALL_N", 0)
    monkeypatch.setattr(lap, "SELECTED_WARN_WORK", 1e3)
    g = as_graph(np.array(nx.random_regular_graph(3, 60, seed=5).edges))
    with pytest.warns(RuntimeWarning, match="fill-in.*approx_effective_resistances"):
        effective_resistances(g)
