"""Edge marginals of Wilson's trees: P(e ∈ T) = w_e R_e (Kirchhoff / transfer current), by
Bonferroni z-tests on counts (spec trees.md §8), with a power check on a wrong sampler."""

import networkx as nx
import numpy as np
import pytest
from scipy.sparse.csgraph import minimum_spanning_tree
import scipy.sparse as sp

from parasample.trees import edge_marginals, transfer_current_matrix, wilson_trees
from parasample.trees._graph import as_graph
from support.stats import bonferroni_z, inclusion_zscores

M = 2000
ALPHA = 1e-4


def _grid():
    return as_graph(nx.grid_2d_graph(20, 20))


def _weighted_regular():
    G = nx.random_regular_graph(3, 200, seed=5)
    rng = np.random.default_rng(6)
    for u, v in G.edges:
        G[u][v]["weight"] = float(rng.lognormal(0.0, 1.0))
    return as_graph(G, weight="weight")


def _wilson_counts(graph, seed):
    seeds = np.random.default_rng(seed).integers(0, 2**63, size=M, dtype=np.int64)
    ids, _ = wilson_trees(graph, seeds)
    return np.bincount(ids.ravel(), minlength=graph.m), ids


def _random_kruskal_counts(graph, seed):
    """Wrong sampler: minimum spanning tree under i.i.d. uniform edge keys (not uniform)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(graph.m, dtype=np.int64)
    u, v = graph.edges[:, 0], graph.edges[:, 1]
    for _ in range(M):
        keys = rng.random(graph.m) + 1e-9
        T = minimum_spanning_tree(sp.coo_matrix((keys, (u, v)), shape=(graph.n, graph.n)))
        T = T.tocoo()
        lookup = {(min(a, b), max(a, b)): e for e, (a, b) in enumerate(graph.edges)}
        for a, b in zip(T.row, T.col):
            counts[lookup[(min(a, b), max(a, b))]] += 1
    return counts


@pytest.mark.parametrize("build", [_grid, _weighted_regular], ids=["grid20", "regular3_w"])
def test_edge_marginals_match_w_times_resistance(build):
    graph = build()
    p = edge_marginals(graph)
    assert p.sum() == pytest.approx(graph.n - 1)  # Foster
    counts, _ = _wilson_counts(graph, seed=11)
    z = inclusion_zscores(counts, p, M)
    assert np.max(np.abs(z[np.isfinite(z)])) < bonferroni_z(ALPHA, graph.m)
    assert np.all(counts[p >= 1 - 1e-12] == M)  # bridges are always in


def test_pair_marginals_match_transfer_current():
    graph = as_graph(nx.grid_2d_graph(6, 6))
    Y = transfer_current_matrix(graph)
    counts, ids = _wilson_counts(graph, seed=12)
    inT = np.zeros((M, graph.m), dtype=bool)
    np.put_along_axis(inT, ids, True, axis=1)
    pairs = [(0, 1), (0, 30), (5, 6), (10, 40), (2, 59)]
    probs = np.array([Y[e, e] * Y[f, f] - Y[e, f] ** 2 for e, f in pairs])
    both = np.array([np.sum(inT[:, e] & inT[:, f]) for e, f in pairs])
    z = inclusion_zscores(both, probs, M)
    assert np.max(np.abs(z)) < bonferroni_z(ALPHA, len(pairs))


def test_power_wrong_sampler_is_rejected():
    graph = as_graph(nx.grid_2d_graph(8, 8))
    p = edge_marginals(graph)
    z = inclusion_zscores(_random_kruskal_counts(graph, 13), p, M)
    assert np.max(np.abs(z)) > bonferroni_z(ALPHA, graph.m)
