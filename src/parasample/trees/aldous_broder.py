"""Aldous–Broder: exact weighted uniform spanning trees by a covering random walk.
Cross-check only.

Walk from vertex 0 (the law is exact from any start) until every vertex has been visited;
for every vertex but the start, keep the edge through which the walk first entered it.
A step from x takes CSR slot ``searchsorted(cumw[row x], U · rowtot[x], 'right')`` (clamped),
so parallel edges stay distinct. The cost is the cover time, far above Wilson's: use it on
small graphs, as an implementation independent of :mod:`.wilson` for the exact-law tests.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from ..core.rng import RngLike, as_generator
from ._graph import WeightedGraph

__all__ = ["aldous_broder_tree"]

_CHUNK = 256


def aldous_broder_tree(graph: WeightedGraph, rng: RngLike = None) -> np.ndarray:
    """One tree with P(T) ∝ Π w_e: sorted int64 edge ids (n−1,). Pure Python, O(cover time)."""
    gen = as_generator(rng)
    n = graph.n
    if n <= 1:
        return np.empty(0, dtype=np.int64)
    indptr, nbr, eid, cumw, rowtot = (a.tolist() for a in graph.csr)
    visited = [False] * n
    visited[0] = True
    remaining = n - 1
    out = []
    x = 0
    while remaining:
        for u in gen.random(_CHUNK).tolist():
            lo, hi = indptr[x], indptr[x + 1]
            slot = min(bisect_right(cumw, u * rowtot[x], lo, hi), hi - 1)
            x = nbr[slot]
            if not visited[x]:
                visited[x] = True
                out.append(eid[slot])
                remaining -= 1
                if not remaining:
                    break
    return np.sort(np.array(out, dtype=np.int64))
