"""Wilson's algorithm (numba kernel and pure-Python reference) and Aldous–Broder
(spec trees.md §2, §3, §8): exact laws by chi-square on counts over all spanning trees,
structure, inputs/outputs, errors, pathwise equality, batches, walk cost, power."""

from __future__ import annotations

import zlib

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from parasample.core import SampleResult
from parasample.trees.enumerate import spanning_tree_law
from parasample.trees._graph import WeightedGraph, as_graph
from parasample.trees.aldous_broder import aldous_broder_tree
from parasample.trees.wilson import (
    _Xoshiro256ss, default_root, random_spanning_tree, random_spanning_tree_edges,
    random_spanning_trees, wilson_tree, wilson_tree_reference, wilson_trees,
)
from support.stats import chisquare_counts, count_samples
from support.threads import one_numba_thread

ALPHA = 1e-3  # per law test; fixed seeds make every test deterministic


# ----------------------------------------------------------------------------- oracles
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def is_spanning_tree(graph: WeightedGraph, ids) -> bool:
    ids = np.asarray(ids)
    if ids.shape != (graph.n - 1,) or len(set(ids.tolist())) != graph.n - 1:
        return False
    if ids.size and (ids.min() < 0 or ids.max() >= graph.m):
        return False
    parent = list(range(graph.n))
    for e in ids.tolist():
        a, b = _find(parent, int(graph.edges[e, 0])), _find(parent, int(graph.edges[e, 1]))
        if a == b:
            return False  # cycle
        parent[a] = b
    return True  # n−1 acyclic edges on n vertices: spanning


def tree_law(graph: WeightedGraph) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """All spanning trees (sorted edge-id tuples) and their probabilities Π w_e / τ_w."""
    trees, probs = spanning_tree_law(graph)
    assert abs(probs.sum() - 1) < 1e-12
    return trees, probs


def law_test(graph, ids, *, alpha=ALPHA):
    trees, probs = tree_law(graph)
    counts = count_samples(map(tuple, np.asarray(ids).tolist()), trees)
    stat, p, df = chisquare_counts(counts, probs)
    return p, df


def _multigraph():
    G = nx.MultiGraph()
    G.add_weighted_edges_from([(0, 1, 1.0), (0, 1, 3.0), (1, 2, 1.0), (2, 3, 2.0),
                               (2, 3, 0.5), (3, 0, 1.0), (0, 2, 1.5)])
    return G


GRAPHS = {
    "K4": (nx.complete_graph(4), 16),
    "W6": (nx.wheel_graph(6), 121),
    "grid3x3": (nx.grid_2d_graph(3, 3), 192),
    "Q3": (nx.hypercube_graph(3), 384),
}


def make_graph(name: str, weighted: bool) -> WeightedGraph:
    g = as_graph(GRAPHS[name][0])
    if not weighted:
        return g
    w = np.random.default_rng(zlib.crc32(name.encode())).uniform(0.3, 3.0, g.m)
    return as_graph(g.edges, weight=w, n_nodes=g.n)


def seeds(M, seed):
    return np.random.default_rng(seed).integers(0, 2 ** 64, size=M, dtype=np.uint64)


def sample_numba(graph, M, seed):
    return wilson_trees(graph, seeds(M, seed))[0]


def sample_reference(graph, M, seed):
    return np.array([wilson_tree_reference(graph, s)[0] for s in seeds(M, seed).tolist()])


def sample_aldous_broder(graph, M, seed):
    gen = np.random.default_rng(seed)
    return np.array([aldous_broder_tree(graph, gen) for _ in range(M)])


def sample_random_kruskal(graph, M, seed):
    """A WRONG sampler: MST under i.i.d. uniform edge weights (random-order Kruskal)."""
    gen = np.random.default_rng(seed)
    out = []
    for _ in range(M):
        parent, T = list(range(graph.n)), []
        for e in gen.permutation(graph.m).tolist():
            a, b = _find(parent, int(graph.edges[e, 0])), _find(parent, int(graph.edges[e, 1]))
            if a != b:
                parent[a] = b
                T.append(e)
        out.append(sorted(T))
    return np.array(out)


# ----------------------------------------------------------------------------- laws
@pytest.mark.parametrize("name", list(GRAPHS))
def test_enumeration_matches_kirchhoff(name):
    g = make_graph(name, False)
    trees, probs = tree_law(g)
    assert len(trees) == GRAPHS[name][1]
    L = g.laplacian().toarray()
    assert round(np.linalg.det(L[1:, 1:])) == GRAPHS[name][1]
    gw = make_graph(name, True)
    Lw = gw.laplacian().toarray()
    tau_w = sum(np.prod(gw.weights[list(T)]) for T in trees)
    assert np.isclose(np.linalg.det(Lw[1:, 1:]), tau_w, rtol=1e-10)


SAMPLERS = {"numba": (sample_numba, 50), "reference": (sample_reference, 50),
            "aldous_broder": (sample_aldous_broder, 50)}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", list(GRAPHS))
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_exact_law(sampler, name, weighted):
    fn, per_tree = SAMPLERS[sampler]
    g = make_graph(name, weighted)
    M = per_tree * GRAPHS[name][1]
    ids = fn(g, M, seed=zlib.crc32(f"{sampler}/{name}/{weighted}".encode()))
    assert ids.shape == (M, g.n - 1)
    p, df = law_test(g, ids)
    assert p > ALPHA, f"{sampler} on {name} (weighted={weighted}): p = {p:.2e}, df = {df}"


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_exact_law_multigraph(sampler):
    """Parallel edges are distinct edges with their own probabilities."""
    fn, _ = SAMPLERS[sampler]
    g = as_graph(_multigraph(), weight="weight")
    assert g.m == 7
    trees, _ = tree_law(g)
    M = 40 * len(trees) if sampler == "numba" else 15 * len(trees)
    ids = fn(g, M, seed=11)
    assert all(is_spanning_tree(g, t) for t in ids[:200])
    p, df = law_test(g, ids)
    assert p > ALPHA
    # the two parallel 0–1 edges (weights 1 and 3) are both used, in ratio ≈ 1:3
    c0, c1 = int(np.sum(ids == 0)), int(np.sum(ids == 1))
    assert c0 > 0 and c1 > 0 and 2 < c1 / c0 < 4.5


def test_exact_law_nondefault_root():
    g = make_graph("W6", True)
    for root in (0, 3):
        ids = wilson_trees(g, seeds(50 * 121, root + 100), root=root)[0]
        assert law_test(g, ids)[0] > ALPHA


# ----------------------------------------------------------------------------- power
def test_power_rejects_random_kruskal():
    g = make_graph("grid3x3", False)
    ids = sample_random_kruskal(g, 50 * 192, seed=5)
    assert all(is_spanning_tree(g, t) for t in ids[:100])
    p, _ = law_test(g, ids)
    assert p < 1e-6, f"chi-square failed to reject random-order Kruskal (p = {p:.2e})"


def test_power_rejects_ignored_weights():
    """Unweighted Wilson trees tested against the weighted law must be rejected."""
    gu, gw = make_graph("W6", False), make_graph("W6", True)
    ids = sample_numba(gu, 50 * 121, seed=6)
    assert law_test(gw, ids)[0] < 1e-6


# ----------------------------------------------------------------------------- structure
def _random_graph(n, p, seed, weighted=True, multi_extra=0):
    gen = np.random.default_rng(seed)
    G = nx.gnp_random_graph(n, p, seed=seed)
    G.add_edges_from(zip(range(n - 1), range(1, n)))  # connected
    E = np.array(G.edges, dtype=np.int64)
    if multi_extra:
        E = np.concatenate([E, E[gen.choice(len(E), multi_extra)]])
    w = gen.lognormal(0, 1, len(E)) if weighted else None
    return as_graph(E, weight=w, n_nodes=n)


@pytest.mark.parametrize("seed", range(4))
def test_structure(seed):
    g = _random_graph(60, 0.08, seed, multi_extra=20)
    ids, steps = wilson_trees(g, seeds(50, seed))
    assert ids.dtype == np.int64 and ids.shape == (50, 59) and steps.shape == (50,)
    for t, k in zip(ids, steps):
        assert is_spanning_tree(g, t) and np.all(np.diff(t) > 0) and k >= 0
    t, k = wilson_tree(g, 123)
    assert is_spanning_tree(g, t) and isinstance(k, int)
    assert is_spanning_tree(g, aldous_broder_tree(g, seed))


def test_default_root_is_heaviest_lowest_index():
    g = as_graph(np.array([[0, 1], [1, 2], [2, 3], [3, 0], [1, 3]]),
                 weight=[1.0, 2.0, 2.0, 1.0, 1.0])  # degrees 2, 4, 4, 4
    assert default_root(g) == 1 and default_root(make_graph("K4", False)) == 0
    with pytest.raises(ValueError, match="root"):
        wilson_tree(g, 0, root=4)


def test_prng_matches_splitmix64_and_xoshiro_reference_values():
    # first splitmix64 output from seed 0 (Vigna's reference implementation)
    assert _Xoshiro256ss(0).s[0] == 0xE220A8397B1DCDAF
    g = _Xoshiro256ss(0)
    g.s = [1, 2, 3, 4]
    assert g.next_u64() == 11520  # rotl(2·5, 7)·9
    assert g.s == [7, 0, 262146, 211106232532992]
    g = _Xoshiro256ss(5)
    u = np.array([g.uniform() for _ in range(1000)])
    assert np.all((0.0 <= u) & (u < 1.0)) and len(set(u.tolist())) == 1000
    assert abs(u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / 1000)
    assert _Xoshiro256ss(5).uniform() == u[0] and _Xoshiro256ss(6).uniform() != u[0]


# ----------------------------------------------------------------------------- pathwise
@pytest.mark.parametrize("graph_id", ["K4w", "W6", "grid5w", "multi", "gnp"])
def test_numba_equals_reference(graph_id):
    g = {"K4w": lambda: make_graph("K4", True), "W6": lambda: make_graph("W6", False),
         "grid5w": lambda: as_graph(as_graph(nx.grid_2d_graph(5, 5)).edges,
                                    weight=np.random.default_rng(1).lognormal(0, 1.5, 40),
                                    n_nodes=25),
         "multi": lambda: as_graph(_multigraph(), weight="weight"),
         "gnp": lambda: _random_graph(40, 0.1, 3, multi_extra=5)}[graph_id]()
    for s in list(range(20)) + [2 ** 64 - 1, 2 ** 63]:
        for root in (None, g.n - 1):
            a, ka = wilson_tree(g, s, root=root)
            b, kb = wilson_tree_reference(g, s, root=root)
            assert np.array_equal(a, b) and ka == kb, (s, root)


def test_batch_equals_singles_and_threads():
    g = _random_graph(80, 0.05, 9)
    S = seeds(64, 2)
    ids, steps = wilson_trees(g, S)
    for i in range(0, 64, 7):
        t, k = wilson_tree(g, int(S[i]))
        assert np.array_equal(ids[i], t) and steps[i] == k
    with one_numba_thread():
        ids1, steps1 = wilson_trees(g, S)
    assert np.array_equal(ids, ids1) and np.array_equal(steps, steps1)
    # signed int seeds are taken mod 2**64
    ids2, _ = wilson_trees(g, S[:5].astype(np.int64))
    assert np.array_equal(ids2, ids[:5])


def test_public_batch_equals_singles_and_reproducible():
    E = np.array(list(nx.convert_node_labels_to_integers(nx.grid_2d_graph(4, 4)).edges))
    batch = random_spanning_trees(E, 10, rng=42)
    gen = np.random.default_rng(42)
    singles = np.array([random_spanning_tree(E, rng=gen) for _ in range(10)])
    assert np.array_equal(batch, singles)
    a = random_spanning_tree_edges(E, rng=7)
    b = random_spanning_tree_edges(E, rng=np.random.SeedSequence(7))
    assert np.array_equal(a.sample, b.sample) and a.info == b.info
    assert np.array_equal(random_spanning_tree(E, rng=3), random_spanning_tree(E, rng=3))
    gen = np.random.default_rng(0)
    draws = {tuple(random_spanning_tree_edges(E, rng=gen).sample) for _ in range(10)}
    assert len(draws) > 5  # a Generator advances


def test_sample_result_reports_walk_steps():
    G = nx.grid_2d_graph(6, 6)
    res = random_spanning_tree_edges(G, rng=1)
    assert isinstance(res, SampleResult)
    g = as_graph(G)
    assert is_spanning_tree(g, res.sample)
    k = res.info["walk_steps"]
    assert res.cost.rounds == res.cost.evaluations == k and res.info["root"] == default_root(g)
    t, k2 = wilson_tree(g, res.info["seed"])
    assert np.array_equal(t, res.sample) and k2 == k
    assert random_spanning_tree_edges(G, rng=1, root=5).info["root"] == 5


# ----------------------------------------------------------------------------- walk cost
def expected_walk_steps(graph: WeightedGraph, root: int) -> float:
    """Σ_v π(v)(E_v H_r + E_r H_v), hitting times by solving linear systems."""
    n = graph.n
    A = (graph.laplacian() - sp.diags(graph.laplacian().diagonal())).toarray() * -1
    d = A.sum(axis=1)
    P = A / d[:, None]
    H = np.zeros((n, n))  # H[v, t] = E_v[hitting time of t]
    for t in range(n):
        keep = np.arange(n) != t
        H[keep, t] = np.linalg.solve(np.eye(n - 1) - P[np.ix_(keep, keep)], np.ones(n - 1))
    pi = d / d.sum()
    return float(np.sum(pi * (H[:, root] + H[root, :])))


@pytest.mark.parametrize("root", [None, 0])
def test_walk_cost_matches_commute_time(root):
    g0 = as_graph(nx.grid_2d_graph(3, 4))
    g = as_graph(g0.edges, weight=np.random.default_rng(4).uniform(0.5, 2.0, g0.m),
                 n_nodes=g0.n)
    r = default_root(g) if root is None else root
    expect = expected_walk_steps(g, r)
    M = 40_000
    _, steps = wilson_trees(g, seeds(M, 17), root=root)
    z = (steps.mean() - expect) / (steps.std(ddof=1) / np.sqrt(M))
    assert abs(z) < 4, f"mean steps {steps.mean():.3f} vs predicted {expect:.3f} (z = {z:.2f})"


def test_walk_cost_test_has_power():
    """The same z-test rejects a prediction off by 5%."""
    g = as_graph(nx.grid_2d_graph(3, 4))
    expect = 1.05 * expected_walk_steps(g, default_root(g))
    _, steps = wilson_trees(g, seeds(40_000, 18))
    assert abs((steps.mean() - expect) / (steps.std(ddof=1) / np.sqrt(40_000))) > 4


# ----------------------------------------------------------------------------- inputs/outputs
def test_networkx_graph_output():
    G = nx.Graph(name="g")
    G.add_node("a", color="red")
    G.add_edge("a", "b", weight=2.0, tag=1)
    G.add_edge("b", "c", weight=1.0, tag=2)
    G.add_edge("c", "a", weight=3.0, tag=3)
    G.add_edge("c", "d", weight=1.0, tag=4)
    T = random_spanning_tree(G, weight="weight", rng=0)
    assert type(T) is nx.Graph and set(T.nodes) == set(G.nodes) and nx.is_tree(T)
    assert T.nodes["a"] == {"color": "red"} and T.graph["name"] == "g"
    for a, b, d in T.edges(data=True):
        assert G.has_edge(a, b) and d == G[a][b]
    Ts = random_spanning_trees(G, 5, rng=1)
    assert isinstance(Ts, list) and len(Ts) == 5 and all(nx.is_tree(t) for t in Ts)


def test_networkx_weight_attribute_is_used():
    G = nx.Graph()
    G.add_edge(0, 1, w=1e6)
    G.add_edge(1, 2, w=1e6)
    G.add_edge(2, 0, w=1.0)
    heavy = {frozenset((0, 1)), frozenset((1, 2))}
    for T in random_spanning_trees(G, 30, weight="w", rng=2):
        assert {frozenset(e) for e in T.edges} == heavy
    unweighted = {frozenset(map(frozenset, T.edges)) for T in random_spanning_trees(G, 60, rng=3)}
    assert len(unweighted) == 3  # weight=None: unit weights, all three trees


def test_multigraph_output_keeps_keys_and_data():
    G = _multigraph()
    g = as_graph(G, weight="weight")
    for T in random_spanning_trees(G, 20, weight="weight", rng=4):
        assert type(T) is nx.MultiGraph and set(T.nodes) == set(G.nodes)
        assert T.number_of_edges() == 3 and nx.is_tree(nx.Graph(T))
        for a, b, k, d in T.edges(keys=True, data=True):
            assert G.has_edge(a, b, k) and d == G[a][b][k]
    keys = {k for T in random_spanning_trees(G, 200, weight="weight", rng=5)
            for a, b, k in T.edges(keys=True) if {a, b} == {0, 1}}
    assert keys == {0, 1} and g.keys[:2] == [0, 1]  # both parallel edges appear


def test_sparse_input_output():
    G = nx.convert_node_labels_to_integers(nx.grid_2d_graph(4, 5))
    A = nx.to_scipy_sparse_array(G, format="csr")
    g = as_graph(A)
    T = random_spanning_tree(A, rng=0)
    assert T.dtype == np.int64 and T.shape == (19, 2)
    pos = {tuple(e): i for i, e in enumerate(g.edges.tolist())}
    ids = [pos[tuple(e)] for e in T.tolist()]
    assert ids == sorted(ids) and is_spanning_tree(g, np.array(ids))
    assert all(A[a, b] != 0 for a, b in T)
    Ts = random_spanning_trees(A, 3, rng=1)
    assert Ts.shape == (3, 19, 2)


def test_edge_array_input_output():
    E = np.array([[0, 1], [1, 2], [2, 0], [2, 3], [3, 4], [4, 2]])
    w = np.array([1.0, 2.0, 3.0, 1.0, 1.0, 0.5])
    T = random_spanning_tree(E, weight=w, rng=0)
    assert T.shape == (4, 2) and T.dtype == np.int64
    rows = [int(np.flatnonzero((E == t).all(axis=1))[0]) for t in T]
    assert rows == sorted(rows) and is_spanning_tree(as_graph(E, weight=w), np.array(rows))
    assert random_spanning_trees(E, 7, weight=w, rng=1).shape == (7, 4, 2)
    assert random_spanning_trees(E, 0, rng=1).shape == (0, 4, 2)
    res = random_spanning_tree_edges(E, weight=w, rng=2)
    assert res.sample.shape == (4,)


def test_single_vertex_gives_empty_tree():
    G = nx.Graph()
    G.add_node("x")
    T = random_spanning_tree(G, rng=0)
    assert list(T.nodes) == ["x"] and T.number_of_edges() == 0
    E = np.empty((0, 2), dtype=np.int64)
    assert random_spanning_tree(E, n_nodes=1, rng=0).shape == (0, 2)
    assert random_spanning_trees(E, 3, n_nodes=1, rng=0).shape == (3, 0, 2)
    res = random_spanning_tree_edges(E, n_nodes=1, rng=0)
    assert res.sample.shape == (0,) and res.info["walk_steps"] == 0
    g = as_graph(E, n_nodes=1)
    assert wilson_tree_reference(g, 1)[0].shape == (0,)
    assert aldous_broder_tree(g, 1).shape == (0,)
    assert wilson_trees(g, seeds(2, 0))[0].shape == (2, 0)


# ----------------------------------------------------------------------------- errors
def test_errors():
    with pytest.raises(ValueError, match="disconnected.*2 connected"):
        random_spanning_tree(nx.Graph([(0, 1), (2, 3)]))
    with pytest.raises(ValueError, match="disconnected"):
        random_spanning_tree(np.array([[0, 1]]), n_nodes=3)  # isolated vertex
    E = np.array([[0, 1], [1, 2]])
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="finite and > 0"):
            random_spanning_tree(E, weight=np.array([1.0, bad]))
    G = nx.Graph()
    G.add_edge(0, 1, weight=0.0)
    with pytest.raises(ValueError, match="edge 0"):
        random_spanning_tree(G, weight="weight")
    with pytest.raises(TypeError, match="directed"):
        random_spanning_tree(nx.DiGraph([(0, 1), (1, 0)]))
    with pytest.raises(TypeError, match="directed"):
        random_spanning_trees(nx.MultiDiGraph([(0, 1)]), 2)
    with pytest.raises(ValueError, match="not symmetric"):
        random_spanning_tree(sp.csr_matrix(np.array([[0, 1.0], [2.0, 0]])))
    with pytest.raises(ValueError, match="no vertices"):
        random_spanning_tree(nx.Graph())
    with pytest.raises(ValueError, match="no vertices"):
        random_spanning_tree(np.empty((0, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="n_samples"):
        random_spanning_trees(E, -1)
    with pytest.raises(TypeError, match="rng"):
        random_spanning_tree(E, rng=np.random.RandomState(0))


# ----------------------------------------------------------------------------- slow
@pytest.mark.slow
@pytest.mark.parametrize("weighted", [False, True])
def test_exact_law_petersen(weighted):
    g = as_graph(nx.petersen_graph())
    if weighted:
        g = as_graph(g.edges, weight=np.random.default_rng(3).lognormal(0, 0.7, g.m),
                     n_nodes=g.n)
    trees, _ = tree_law(g)
    assert len(trees) == 2000
    ids = sample_numba(g, 100_000, seed=21 + weighted)
    assert law_test(g, ids)[0] > ALPHA


@pytest.mark.slow
def test_exact_law_petersen_reference_and_aldous_broder():
    g = as_graph(nx.petersen_graph())
    for fn in (sample_reference, sample_aldous_broder):
        assert law_test(g, fn(g, 20_000, seed=23))[0] > ALPHA


def test_self_loops_are_rejected():
    G = _multigraph()
    G.add_edge(3, 3, weight=9.0)
    with pytest.raises(ValueError, match="self-loop"):
        as_graph(G, weight="weight")
    with pytest.raises(ValueError, match="self-loop"):
        random_spanning_tree(np.array([[0, 1], [1, 1], [1, 2]]))
