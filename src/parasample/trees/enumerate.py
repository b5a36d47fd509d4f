"""Exact tree laws of small graphs by enumeration — the oracle for tests and checks.

All (n−1)-subsets of the edges are tried with union-find; the acyclic ones are the spanning
trees, with probabilities Π_{e∈T} w_e / τ_w. Cost O(C(m, n−1) · n): small graphs only
(Petersen: C(15, 9) = 5005 subsets).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from ._graph import WeightedGraph, as_graph

__all__ = ["is_spanning_tree", "spanning_tree_law"]

MAX_SUBSETS = 2_000_000


def is_spanning_tree(n: int, edges: np.ndarray) -> bool:
    """True when the (n−1, 2) endpoint array ``edges`` is acyclic (hence spanning)."""
    if len(edges) != n - 1:
        return False
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges.tolist():
        a, b = find(u), find(v)
        if a == b:
            return False
        parent[a] = b
    return True


def spanning_tree_law(G, *, weight=None) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """All spanning trees (sorted edge-id tuples, in ``as_graph`` edge order) and their
    probabilities Π w_e / τ_w under the weighted uniform law."""
    from math import comb

    graph = G if isinstance(G, WeightedGraph) else as_graph(G, weight=weight)
    if comb(graph.m, graph.n - 1) > MAX_SUBSETS:
        raise ValueError(f"too many edge subsets to enumerate (C({graph.m}, {graph.n - 1}))")
    trees = [T for T in combinations(range(graph.m), graph.n - 1)
             if is_spanning_tree(graph.n, graph.edges[list(T)])]
    w = np.array([np.prod(graph.weights[list(T)]) for T in trees])
    return trees, w / w.sum()
