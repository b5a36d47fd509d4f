"""Tests for parasample.trees.laplacian (spec trees.md §4, §5, §6, §8)."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

import parasample.trees.laplacian as lap
from parasample.trees.enumerate import spanning_tree_law
from parasample.trees._graph import as_graph
from parasample.trees.laplacian import (
    approx_effective_resistances,
    count_spanning_trees,
    edge_marginals,
    effective_resistances,
    transfer_current_matrix,
)

# ----------------------------------------------------------------------------- helpers


def _spanning_trees(graph):
    """All spanning trees (tuples of edge ids), by enumeration."""
    return spanning_tree_law(graph)[0]


def _grid_log_count(a, b):
    """Closed form: τ(a×b grid) = Π_{(i,j)≠(0,0)} [4 sin²(πi/2a) + 4 sin²(πj/2b)] / (ab)."""
    i = np.arange(a)[:, None]
    j = np.arange(b)[None, :]
    lam = 4 * np.sin(np.pi * i / (2 * a)) ** 2 + 4 * np.sin(np.pi * j / (2 * b)) ** 2
    return float(np.sum(np.log(lam.ravel()[1:])) - math.log(a * b))


def _random_weighted(n, p, seed, multi=False):
    rng = np.random.default_rng(seed)
    G = nx.gnp_random_graph(n, p, seed=seed)
    G = nx.compose(G, nx.path_graph(n))  # connected
    H = nx.MultiGraph(G) if multi else G
    if multi:
        for _ in range(5):
            u, v = rng.choice(n, size=2, replace=False)
            H.add_edge(int(u), int(v))
        H.add_edge(0, 1)
        H.add_edge(0, 1)
    for e in H.edges(keys=True) if multi else H.edges():
        H.edges[e]["weight"] = float(rng.lognormal(0.0, 1.0))
    return H


def _pinv_resistances(graph):
    Lp = np.linalg.pinv(graph.laplacian().toarray())
    u, v = graph.edges[:, 0], graph.edges[:, 1]
    return Lp[u, u] + Lp[v, v] - 2 * Lp[u, v]


TABLE = [
    ("grid2x3", lambda: nx.grid_2d_graph(2, 3), 15),
    ("K4", lambda: nx.complete_graph(4), 16),
    ("W6", lambda: nx.wheel_graph(6), 121),
    ("K5", lambda: nx.complete_graph(5), 125),
    ("grid3x3", lambda: nx.grid_2d_graph(3, 3), 192),
    ("Q3", lambda: nx.hypercube_graph(3), 384),
    ("Petersen", lambda: nx.petersen_graph(), 2000),
]

# ----------------------------------------------------------------------------- §4 counts


@pytest.mark.parametrize("name,make,tau", TABLE, ids=[t[0] for t in TABLE])
def test_table_counts_exact(name, make, tau):
    G = make()
    c = count_spanning_trees(G)
    assert type(c) is int and c == tau
    assert count_spanning_trees(G, log=True) == pytest.approx(math.log(tau), abs=1e-10)


@pytest.mark.parametrize("name,make,tau", TABLE[:4], ids=[t[0] for t in TABLE[:4]])
def test_table_counts_match_enumeration(name, make, tau):
    assert len(_spanning_trees(as_graph(make()))) == tau


def test_complete_graph_cayley():
    for n in (2, 3, 7, 12):
        assert count_spanning_trees(nx.complete_graph(n)) == n ** (n - 2)
    assert count_spanning_trees(nx.complete_graph(60)) == 60 ** 58  # big exact int


@pytest.mark.parametrize("a,b,expected", [(10, 10, 98.448043), (100, 100, 11484.4616)])
def test_grid_closed_form(a, b, expected):
    got = count_spanning_trees(nx.grid_2d_graph(a, b), log=True)
    assert _grid_log_count(a, b) == pytest.approx(expected, abs=1e-4)
    assert got == pytest.approx(_grid_log_count(a, b), rel=1e-11)
    assert got == pytest.approx(expected, abs=1e-4)


def test_grid_exact_int_matches_closed_form():
    c = count_spanning_trees(nx.grid_2d_graph(8, 9))
    assert type(c) is int
    assert math.log(c) == pytest.approx(_grid_log_count(8, 9), rel=1e-12)


def test_weighted_counts_vs_enumeration():
    rng = np.random.default_rng(3)
    G = nx.MultiGraph(nx.wheel_graph(6))
    G.add_edge(1, 2)  # a parallel edge
    g_int = as_graph(G)
    trees = _spanning_trees(g_int)
    # integer weights -> exact int
    wi = rng.integers(1, 9, size=g_int.m)
    brute_i = sum(math.prod(int(wi[e]) for e in t) for t in trees)
    got_i = count_spanning_trees(g_int.edges, weight=wi)
    assert type(got_i) is int and got_i == brute_i
    # float weights -> float; probabilities Π w / τ sum to one
    wf = rng.lognormal(size=g_int.m)
    brute_f = sum(math.prod(wf[e] for e in t) for t in trees)
    got_f = count_spanning_trees(g_int.edges, weight=wf)
    assert isinstance(got_f, float) and got_f == pytest.approx(brute_f, rel=1e-12)
    assert math.exp(count_spanning_trees(g_int.edges, weight=wf, log=True)) == \
        pytest.approx(brute_f, rel=1e-12)
    assert sum(math.prod(wf[e] for e in t) / got_f for t in trees) == pytest.approx(1.0)


def test_scaling_identity():
    G = _random_weighted(30, 0.2, seed=5)
    g = as_graph(G, weight="weight")
    c = 3.7
    lt = count_spanning_trees(g, log=True)
    lt_c = count_spanning_trees(g.edges, weight=c * g.weights, log=True)
    assert lt_c == pytest.approx((g.n - 1) * math.log(c) + lt, rel=1e-12)
    # and the non-log float route agrees
    assert count_spanning_trees(g) == pytest.approx(math.exp(lt), rel=1e-10)


def test_overflow_suggests_log():
    with pytest.raises(OverflowError, match="log=True"):
        count_spanning_trees(nx.grid_2d_graph(40, 40), weight=None)  # n = 1600: float route
    G = nx.grid_2d_graph(40, 40)
    nx.set_edge_attributes(G, 1.5, "weight")
    with pytest.raises(OverflowError, match="log=True"):
        count_spanning_trees(G, weight="weight")


def test_single_vertex_and_single_edge():
    G = nx.Graph()
    G.add_node("a")
    assert count_spanning_trees(G) == 1
    assert count_spanning_trees(G, log=True) == 0.0
    assert effective_resistances(G).shape == (0,)
    assert transfer_current_matrix(G).shape == (0, 0)
    assert count_spanning_trees(np.array([[0, 1]]), weight=np.array([2.5])) == 2.5
    assert count_spanning_trees(np.array([[0, 1]]), weight=np.array([3.0])) == 3


def test_disconnected_raises():
    G = nx.Graph([(0, 1), (2, 3)])
    for f in (count_spanning_trees, effective_resistances, transfer_current_matrix):
        with pytest.raises(ValueError, match="disconnected"):
            f(G)


# ------------------------------------------------------------------------ §5 resistances


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_resistances_vs_pinv(seed, multi):
    G = _random_weighted(40, 0.1, seed=seed, multi=multi)
    g = as_graph(G, weight="weight")
    R = effective_resistances(G, weight="weight")
    np.testing.assert_allclose(R, _pinv_resistances(g), rtol=1e-9, atol=1e-12)
    # Foster
    assert np.sum(g.weights * R) == pytest.approx(g.n - 1, rel=1e-10)


def test_sparse_routes_match_dense(monkeypatch):
    G = _random_weighted(150, 0.03, seed=7, multi=True)
    g = as_graph(G, weight="weight")
    dense = effective_resistances(g)
    monkeypatch.setattr(lap, "SMALL_N", 10)
    selected = effective_resistances(g)
    np.testing.assert_allclose(selected, dense, rtol=1e-9, atol=1e-13)
    monkeypatch.setattr(lap, "numba", None)  # the fallback without numba
    calls = []
    blocked = effective_resistances(g, progress=lambda d, t, label: calls.append(d))
    np.testing.assert_allclose(blocked, dense, rtol=1e-9, atol=1e-13)
    assert calls == [0, 1, 2, 3]  # 149 unit right-hand sides in blocks of 64


def test_parallel_edges_each_have_their_marginal():
    G = nx.MultiGraph([(0, 1), (0, 1), (1, 2), (2, 0)])
    g = as_graph(G)
    R = effective_resistances(g)
    assert R[0] == pytest.approx(R[1])
    trees = _spanning_trees(g)
    freq = np.array([sum(e in t for t in trees) for e in range(g.m)]) / len(trees)
    np.testing.assert_allclose(edge_marginals(g), freq, rtol=1e-12)


def test_foster_and_bridges():
    # two triangles joined by a bridge, plus a pendant vertex
    G = nx.Graph([(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 5), (5, 3), (5, 6)])
    rng = np.random.default_rng(1)
    for e in G.edges:
        G.edges[e]["w"] = float(rng.lognormal())
    g = as_graph(G, weight="w")
    p = edge_marginals(G, weight="w")
    bridges = {frozenset(b) for b in nx.bridges(G)}
    for e, (u, v) in enumerate(g.edges):
        if frozenset((g.nodes[u], g.nodes[v])) in bridges:
            assert p[e] == 1.0
        else:
            assert p[e] < 1.0
    assert p.sum() == pytest.approx(g.n - 1, rel=1e-12)
    trees = _spanning_trees(g)
    wt = np.array([math.prod(g.weights[list(t)]) for t in trees])
    freq = np.array([sum(wt[i] for i, t in enumerate(trees) if e in t)
                     for e in range(g.m)]) / wt.sum()
    np.testing.assert_allclose(p, freq, rtol=1e-10)


def test_bridges_vs_networkx_and_parallel_copies():
    checked = 0
    for seed in range(60):
        G = nx.gnm_random_graph(25, 30, seed=seed)
        if not nx.is_connected(G):
            continue
        checked += 1
        g = as_graph(G)
        truth = {frozenset(b) for b in nx.bridges(G)}
        mask = lap._bridges(g)
        got = {frozenset((g.nodes[u], g.nodes[v])) for (u, v), b in zip(g.edges.tolist(), mask)
               if b}
        assert got == truth
        p = edge_marginals(g)
        assert np.all(p[mask] == 1.0) and np.all(p[~mask] < 1.0)
    assert checked >= 3
    M = nx.MultiGraph([(0, 1), (0, 1), (1, 2)])
    assert lap._bridges(as_graph(M)).tolist() == [False, False, True]
    np.testing.assert_allclose(edge_marginals(M), [0.5, 0.5, 1.0])


def test_marginals_clipped_and_foster_on_grid():
    p = edge_marginals(nx.grid_2d_graph(20, 20))
    assert p.shape == (760,) and np.all((p >= 0) & (p <= 1))
    assert p.sum() == pytest.approx(399, rel=1e-10)


# ------------------------------------------------------------------ approx (sketch) test


def _sketch_without_sqrt_w(g, q, rng):
    """A deliberately wrong sketch (omits W^{1/2}) for the power check."""
    m, n = g.m, g.n
    B = np.zeros((m, n))
    B[np.arange(m), g.edges[:, 0]] = 1.0
    B[np.arange(m), g.edges[:, 1]] = -1.0
    Z = rng.standard_normal((q, m)) / math.sqrt(q) @ B @ np.linalg.pinv(g.laplacian().toarray())
    D = Z[:, g.edges[:, 0]] - Z[:, g.edges[:, 1]]
    return np.sum(D * D, axis=0)


def _sketch_law_ok(ratios, q):
    """ratios: (reps, m) of R̃/R, independent across reps. Under the right law each entry is
    χ²_q / q: per-edge means z-tested with Bonferroni, pooled relative sd ≈ √(2/q), and a
    KS test of one edge's ratios against χ²_q/q."""
    reps, m = ratios.shape
    z = (ratios.mean(axis=0) - 1.0) / math.sqrt(2.0 / q / reps)
    zcrit = stats.norm.isf(0.001 / (2 * m))
    sd = ratios.std(axis=1, ddof=1).mean()  # within-replicate spread across edges
    ks = stats.kstest(q * ratios[:, 0], stats.chi2(q).cdf).pvalue
    return bool(np.max(np.abs(z)) < zcrit and abs(sd / math.sqrt(2.0 / q) - 1) < 0.15
                and ks > 1e-3)


def test_approx_resistances_law_and_power():
    G = nx.random_regular_graph(3, 60, seed=2)
    rng = np.random.default_rng(11)
    for e in G.edges:
        G.edges[e]["weight"] = float(rng.lognormal(0.0, 1.0))
    g = as_graph(G, weight="weight")
    R = effective_resistances(g)
    q, reps = 40, 120
    gens = np.random.default_rng(2024).spawn(reps)
    good = np.array([approx_effective_resistances(g, n_projections=q, rng=s) for s in gens])
    assert _sketch_law_ok(good / R, q)
    gens = np.random.default_rng(2024).spawn(reps)
    bad = np.array([_sketch_without_sqrt_w(g, q, s) for s in gens])
    assert not _sketch_law_ok(bad / R, q)


def test_approx_resistances_grid_mean_and_sd():
    g = as_graph(nx.grid_2d_graph(20, 20))
    R = effective_resistances(g)
    q = 200
    ratio = approx_effective_resistances(g, n_projections=q, rng=7) / R
    assert abs(ratio.mean() - 1) < 4 * math.sqrt(2 / q)  # correlated across edges: loose
    assert ratio.std() / math.sqrt(2 / q) == pytest.approx(1.0, abs=0.2)


def test_approx_options():
    g = as_graph(nx.grid_2d_graph(6, 6))
    a = approx_effective_resistances(g, eps=0.5, rng=3)
    b = approx_effective_resistances(g, eps=0.5, rng=3)
    np.testing.assert_array_equal(a, b)  # same seed, same output
    q = math.ceil(24 * math.log(36) / 0.25)
    c = approx_effective_resistances(g, n_projections=q, rng=3)
    np.testing.assert_array_equal(a, c)
    with pytest.raises(ValueError, match="eps"):
        approx_effective_resistances(g)
    with pytest.raises(ValueError, match="n_projections"):
        approx_effective_resistances(g, n_projections=0)
    p = edge_marginals(g, exact=False, eps=0.5, rng=3)
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p, np.clip(a, 0, 1))


# --------------------------------------------------------------------- §6 transfer current


def test_transfer_current_projection():
    G = _random_weighted(12, 0.4, seed=4, multi=True)
    g = as_graph(G, weight="weight")
    Y = transfer_current_matrix(g)
    assert Y.shape == (g.m, g.m)
    np.testing.assert_allclose(Y, Y.T, atol=1e-13)
    np.testing.assert_allclose(Y @ Y, Y, atol=1e-10)
    assert np.linalg.matrix_rank(Y, tol=1e-8) == g.n - 1
    assert np.trace(Y) == pytest.approx(g.n - 1, rel=1e-12)
    np.testing.assert_allclose(np.diag(Y), g.weights * effective_resistances(g), rtol=1e-10)


def test_transfer_current_determinants_vs_enumeration():
    G = nx.MultiGraph(nx.wheel_graph(5))
    G.add_edge(1, 2)
    rng = np.random.default_rng(8)
    w = rng.lognormal(size=G.number_of_edges())
    g = as_graph(np.array(list(G.edges())), weight=w)
    Y = transfer_current_matrix(g)
    trees = _spanning_trees(g)
    wt = np.array([math.prod(w[list(t)]) for t in trees])
    prob = wt / wt.sum()
    for t, pt in zip(trees, prob):  # P(T) = det Y_T
        assert np.linalg.det(Y[np.ix_(t, t)]) == pytest.approx(pt, rel=1e-9, abs=1e-14)
    for e, f in [(0, 1), (1, 2), (3, 7), (5, 8)]:
        pair = sum(p for t, p in zip(trees, prob) if e in t and f in t)
        assert Y[e, e] * Y[f, f] - Y[e, f] ** 2 == pytest.approx(pair, rel=1e-9, abs=1e-14)


def test_transfer_current_size_limit(monkeypatch):
    monkeypatch.setattr(lap, "TRANSFER_CURRENT_MAX_M", 5)
    with pytest.raises(ValueError, match="m×m"):
        transfer_current_matrix(nx.complete_graph(4))


# ------------------------------------------------------------------------- input forms


def test_input_forms_agree():
    rng = np.random.default_rng(9)
    G = nx.MultiGraph(nx.petersen_graph())
    G.add_edge(0, 1)
    for e in G.edges(keys=True):
        G.edges[e]["c"] = float(rng.integers(1, 5))
    g = as_graph(G, weight="c")
    A = g.laplacian()
    A = sp.diags(A.diagonal()) - A  # summed adjacency
    E, w = g.edges, g.weights
    counts = [count_spanning_trees(G, weight="c"), count_spanning_trees(g),
              count_spanning_trees(sp.csr_matrix(A)), count_spanning_trees(E, weight=w),
              count_spanning_trees(sp.coo_matrix(A))]
    assert all(type(c) is int for c in counts) and len(set(counts)) == 1
    R_nx = effective_resistances(G, weight="c")
    np.testing.assert_allclose(effective_resistances(E, weight=w), R_nx, rtol=1e-12)
    # sparse input merges parallel edges: same resistance between the same endpoints
    gs = as_graph(sp.csr_matrix(A))
    R_sp = effective_resistances(gs)
    lookup = {(min(a, b), max(a, b)): r for (a, b), r in zip(gs.edges.tolist(), R_sp)}
    for (a, b), r in zip(E.tolist(), R_nx):
        assert r == pytest.approx(lookup[(min(a, b), max(a, b))], rel=1e-12)
    # unit weights when weight=None on networkx input
    assert count_spanning_trees(G) == count_spanning_trees(E)
    Y1 = transfer_current_matrix(G, weight="c")
    Y2 = transfer_current_matrix(E, weight=w)
    np.testing.assert_allclose(Y1, Y2, atol=1e-12)


def test_directed_raises():
    with pytest.raises(TypeError):
        count_spanning_trees(nx.DiGraph([(0, 1), (1, 0)]))


def test_edge_marginals_sketch_default_is_quiet_and_close():
    """exact=False without eps or n_projections uses the 1000-projection sketch (4.5% relative
    sd per edge) with no warning; its marginals still sum to about n - 1."""
    import warnings

    g = nx.grid_2d_graph(8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = edge_marginals(g, exact=False, rng=0)
    exact = edge_marginals(g)
    assert np.max(np.abs(p / exact - 1.0)) < 0.25
    assert abs(p.sum() - 63) < 0.05 * 63
