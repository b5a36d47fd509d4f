"""Repeated spanning-tree sampler by domain sparsification (spec trees.md §7, §8).

Evidence:
- exact stationarity on K₄ (random weights, t = 5, random p̃): all 36 ordered up-draws, the
  exact tree law of every H (enumeration of its spanning trees with H's own weights from the
  sampler's ``down_graph``), 16×16 transition matrix: πP = π and detailed balance to 1e-12;
- chained mode from exact starts: independent chains pass the exact chi-square on the 3×3
  grid (192 trees);
- restart mode: the exact law of a default output (enumerated) is within ε on K₄; the
  bootstrap TV test on K₄ and the 3×3 grid; edge-marginal z-tests widened by ε;
- power: the TV test rejects a sampler whose H weights ignore p̃.
"""

from __future__ import annotations

import math
from itertools import combinations_with_replacement, product

import networkx as nx
import numpy as np
import pytest

from parasample.trees.enumerate import spanning_tree_law
from parasample.trees import SparsifiedTreeSampler, edge_marginals
from parasample.trees._graph import as_graph
from parasample.trees.sparsified import max_weight_spanning_tree
from support.stats import (
    bonferroni_z, chisquare_counts, count_samples, tv_bootstrap_threshold, tv_distance,
)

ALPHA = 1e-4


# ----------------------------------------------------------------------------- enumeration
def tree_law(graph):
    """{sorted edge-id tuple: Π w_e / τ_w} over all spanning trees of ``graph``."""
    trees, probs = spanning_tree_law(graph)
    return dict(zip(trees, probs.tolist()))


def exact_transition(s, trees, *, ordered=False):
    """One-step transition matrix over ``trees`` from the sampler's own up/down pieces."""
    m, r = s.graph.m, s.t - s.k
    p = s.overestimates / s.overestimates.sum()
    tree_arr = np.array(trees, dtype=np.int64)
    P = np.zeros((len(trees), len(trees)))
    it = product(range(m), repeat=r) if ordered else combinations_with_replacement(range(m), r)
    for draws in it:
        draws = np.array(draws, dtype=np.int64)
        cnt = np.bincount(draws, minlength=m)
        prob = float(np.prod(p ** cnt))
        if not ordered:
            prob *= math.factorial(r) / np.prod([math.factorial(int(x)) for x in cnt])
        for i, T in enumerate(trees):
            supp, c = s.up(np.array(T, dtype=np.int64), draws)
            P[i] += prob * _h_law(s, supp, c, tree_arr)
    return P


def _h_law(s, supp, c, tree_arr):
    """Exact tree law of H = s.down_graph(supp, c) as a vector over the trees of G: the
    trees of H are the trees of G inside supp, weighted by H's own edge weights."""
    H = s.down_graph(supp, c)
    assert np.array_equal(H.edges, s.graph.edges[supp])
    w = np.zeros(s.graph.m)
    w[supp] = H.weights
    x = np.prod(w[tree_arr], axis=1)
    return x / x.sum()


def _weighted(G, seed):
    rng = np.random.default_rng(seed)
    for a, b in G.edges:
        G[a][b]["weight"] = float(np.exp(rng.normal()))
    return G, rng


def _k4(seed):
    G, rng = _weighted(nx.complete_graph(4), seed)
    g = as_graph(G, weight="weight")
    law = tree_law(g)
    return G, g, list(law), np.array(list(law.values())), rng


def _grid(seed):
    G, rng = _weighted(nx.convert_node_labels_to_integers(nx.grid_2d_graph(3, 3)), seed)
    g = as_graph(G, weight="weight")
    law = tree_law(g)
    return G, g, list(law), np.array(list(law.values())), rng


class _WrongTilt(SparsifiedTreeSampler):
    """Power check: H weights w_e c_e (p̃ ignored)."""

    def down_weights(self, supp, c):
        return self.graph.weights[supp] * c


# ----------------------------------------------------------------------------- tests
def test_exact_stationarity_k4():
    G, g, trees, pi, rng = _k4(0)
    assert len(trees) == 16
    s = SparsifiedTreeSampler(g, t=5, overestimates=rng.uniform(0.05, 1.0, 6), rng=1)
    P = exact_transition(s, trees, ordered=True)       # 36 ordered extra draws
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-12)
    flow = pi[:, None] * P
    np.testing.assert_allclose(flow, flow.T, atol=1e-12)
    assert np.all(np.linalg.matrix_power(P, 3) > 0)
    w = _WrongTilt(g, t=5, overestimates=s.overestimates, rng=1)
    assert np.abs(pi @ exact_transition(w, trees) - pi).max() > 1e-3


def test_down_returns_original_edge_ids_and_a_tree():
    G, g, trees, pi, rng = _grid(1)
    s = SparsifiedTreeSampler(g, rng=2)
    T0 = s._start
    for seed in range(30):
        draws = s.draw_up(np.random.default_rng(seed))
        out = s.step(T0, draws=draws, rng=seed)
        assert set(out.tolist()) <= set(T0.tolist()) | set(draws.tolist())
        assert tuple(out.tolist()) in set(trees)


def test_max_weight_spanning_tree():
    G, g, trees, pi, rng = _grid(2)
    T = max_weight_spanning_tree(g)
    best = max(trees, key=lambda tr: float(np.sum(np.log(g.weights[list(tr)]))))
    assert tuple(T.tolist()) == best
    # parallel edges: the heaviest copy is chosen
    E = np.array([[0, 1], [0, 1], [1, 2], [0, 2]])
    gm = as_graph(E, weight=np.array([1.0, 5.0, 2.0, 0.5]))
    assert max_weight_spanning_tree(gm).tolist() == [1, 2]


def test_chained_exact_chi_square_grid():
    G, g, trees, pi, rng = _grid(3)
    s = SparsifiedTreeSampler(g, t=11, n_steps=2, mode="chained", rng=4)
    gen = np.random.default_rng(5)
    from parasample.trees import wilson_tree
    out = []
    for _ in range(8000):
        s.reset(wilson_tree(g, int(gen.integers(0, 2**63)))[0])
        out.append(s.sample_edges(rng=gen))
    stat, pval, df = chisquare_counts(count_samples(out, trees), pi)
    assert pval > ALPHA


def test_restart_defaults_exact_tv_k4():
    G, g, trees, pi, rng = _k4(6)
    s = SparsifiedTreeSampler(g, rng=7)
    P = exact_transition(s, trees)
    x = np.zeros(len(trees))
    x[trees.index(tuple(s._start.tolist()))] = 1.0
    for _ in range(s.n_steps):
        x = x @ P
    assert 0.5 * np.abs(x - pi).sum() <= s.eps


@pytest.mark.parametrize("make, M", [(_k4, 4000), (_grid, 6000)])
def test_restart_bootstrap_tv(make, M):
    G, g, trees, pi, rng = make(8)
    s = SparsifiedTreeSampler(G, weight="weight", rng=9)
    counts = count_samples([s.sample_edges() for _ in range(M)], trees)
    assert tv_distance(counts, pi) <= s.eps + tv_bootstrap_threshold(pi, M)


def test_power_wrong_tilt_rejected():
    G, g, trees, pi, rng = _k4(10)
    # a non-uniform p̃ (exact TV after 8 steps: 0.003 correct tilt, 0.415 wrong tilt)
    pt = np.where(np.arange(6) < 3, 1.0, 0.2)
    M = 3000
    q = tv_bootstrap_threshold(pi, M)
    good = SparsifiedTreeSampler(g, overestimates=pt, t=13, n_steps=8, rng=11)
    bad = _WrongTilt(g, overestimates=pt, t=13, n_steps=8, rng=11)
    tv_good = tv_distance(count_samples([good.sample_edges() for _ in range(M)], trees), pi)
    tv_bad = tv_distance(count_samples([bad.sample_edges() for _ in range(M)], trees), pi)
    assert tv_bad > good.eps + q, (tv_bad, q)
    assert tv_good <= good.eps + q


def test_edge_marginals_dense_weighted():
    rng = np.random.default_rng(12)
    G = nx.complete_graph(25)
    for a, b in G.edges:
        G[a][b]["weight"] = float(np.exp(rng.normal()))
    g = as_graph(G, weight="weight")
    p = edge_marginals(g)
    s = SparsifiedTreeSampler(g, rng=13)
    M = 1000
    counts = np.zeros(g.m)
    for _ in range(M):
        counts[s.sample_edges()] += 1
    z = bonferroni_z(ALPHA, g.m)
    assert np.all(np.abs(counts / M - p) <= z * np.sqrt(p * (1 - p) / M) + s.eps)


def test_output_types_and_errors():
    G, g, trees, pi, rng = _k4(14)
    s = SparsifiedTreeSampler(G, weight="weight", rng=15)
    T = s.sample()
    assert isinstance(T, nx.Graph) and T.number_of_edges() == 3 and nx.is_tree(T)
    E = np.array(list(G.edges))
    s2 = SparsifiedTreeSampler(E, weight=g.weights, rng=15)
    arr = s2.sample()
    assert arr.shape == (3, 2)
    ids = s2.sample_edges()
    assert ids.dtype == np.int64 and ids.size == 3 and np.all(np.diff(ids) > 0)
    a = SparsifiedTreeSampler(g, rng=3)
    b = SparsifiedTreeSampler(g, rng=3)
    assert all(np.array_equal(a.sample_edges(), b.sample_edges()) for _ in range(5))
    with pytest.raises(ValueError):
        SparsifiedTreeSampler(g, mode="bogus")
    with pytest.raises(ValueError):
        SparsifiedTreeSampler(g, t=2)
    with pytest.raises(ValueError):
        SparsifiedTreeSampler(g, overestimates=np.zeros(6))
    assert s.preprocess_seconds >= 0 and s.overestimates.shape == (6,)
