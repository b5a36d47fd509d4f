"""A lower bound on the expected length of Wilson's walks, to warn about a long run.

Wilson's expected number of walk steps with root r is the mean commute time
Σ_v π(v)(E_v H_r + E_r H_v) = Σ_v d_v R(r, v) (commute-time identity E_v H_r + E_r H_v =
2W·R(r, v), with d_v the weighted degree and 2W = Σ_v d_v). For a vertex set C that does
not contain r, every v ∈ C has R(r, v) ≥ 1/cut(C) (Nash-Williams with the one cut), so for
disjoint such sets

    expected steps ≥ Σ_C vol(C) / cut(C),  vol(C) = Σ_{v∈C} d_v,  cut(C) = w(C, V∖C).

The sets tried are the connected components of the graph restricted to its heavy edges,
w ≥ θ, for θ on a ladder of decades below the heaviest edge (at most 32 levels): exactly the
places where a badly scaled graph (two heavy clusters joined by a light bridge) hides a
bottleneck. Equal weights (or weights within a factor 10) give no levels and the bound 0.
Each level costs O(n + m) (union–find; numba compiles it when installed): about the cost of
(n + m) walk steps, which is why the sampler computes it only for walks already longer
than 32·(n + m) steps.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from ._graph import WeightedGraph

try:  # optional extra
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

__all__ = ["WalkBound", "walk_steps_lower_bound"]

#: at most this many thresholds θ
MAX_LEVELS = 32


class WalkBound(NamedTuple):
    """``steps``: lower bound on the expected walk steps of one tree; ``volume`` and ``cut``:
    vol(C) and cut(C) of the set C that contributes most to it (0 when ``steps`` is 0)."""

    steps: float
    volume: float
    cut: float


def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def _levels_bound(u, v, w, deg, starts, root):
    """max over levels of Σ_{C ∌ root} vol(C)/cut(C); edges ``starts[l]:starts[l+1]`` (sorted
    heaviest level first) form level l. Returns (bound, vol, cut) of the best level's top set."""
    n = deg.shape[0]
    parent = np.arange(n)
    lab = np.empty(n, dtype=np.int64)
    vol = np.zeros(n)
    cut = np.zeros(n)
    best, best_vol, best_cut = 0.0, 0.0, 0.0
    n_levels = starts.shape[0] - 1
    for lev in range(n_levels - 1):  # after the last level everything is one component
        for i in range(starts[lev], starts[lev + 1]):
            a = _find(parent, u[i])
            b = _find(parent, v[i])
            if a != b:
                parent[a] = b
        n_comp = 0
        for x in range(n):
            lab[x] = _find(parent, x)
            vol[x] = 0.0
            cut[x] = 0.0
            if lab[x] == x:
                n_comp += 1
        if n_comp == 1:
            break
        for x in range(n):
            vol[lab[x]] += deg[x]
        for i in range(starts[lev + 1], starts[n_levels]):  # only lighter edges can cross
            a = lab[u[i]]
            b = lab[v[i]]
            if a != b:
                cut[a] += w[i]
                cut[b] += w[i]
        skip = lab[root]
        total, top, top_vol, top_cut = 0.0, 0.0, 0.0, 0.0
        for x in range(n):
            if lab[x] == x and x != skip:
                c = vol[x] / cut[x]
                total += c
                if c > top:
                    top, top_vol, top_cut = c, vol[x], cut[x]
        if total > best:
            best, best_vol, best_cut = total, top_vol, top_cut
    return best, best_vol, best_cut


if numba is not None:
    _find = numba.njit(cache=True, nogil=True)(_find)
    _levels_bound_fast = numba.njit(cache=True, nogil=True)(_levels_bound)
else:  # pragma: no cover - exercised only without numba
    _levels_bound_fast = _levels_bound


def walk_steps_lower_bound(graph: WeightedGraph, root: Optional[int] = None) -> WalkBound:
    """Lower bound on Wilson's expected walk steps for one tree of ``graph`` rooted at
    ``root`` (default: the largest weighted degree, as the sampler). See the module doc."""
    if graph.m == 0 or graph.n <= 1:
        return WalkBound(0.0, 0.0, 0.0)
    r = int(np.argmax(graph.weighted_degree)) if root is None else int(root)
    w = graph.weights
    span = float(w.max() / w.min())
    if span < 10.0:
        return WalkBound(0.0, 0.0, 0.0)
    step = max(1.0, math.log10(span) / MAX_LEVELS)  # decades per level
    level = np.minimum(np.floor(np.log10(w.max() / w) / step), MAX_LEVELS - 1).astype(np.int16)
    order = np.argsort(level, kind="stable")
    starts = np.searchsorted(level[order], np.arange(int(level.max()) + 2)).astype(np.int64)
    u, v = graph.edges[order, 0], graph.edges[order, 1]
    bound, vol, cut = _levels_bound_fast(u, v, w[order], graph.weighted_degree, starts,
                                         np.int64(r))
    return WalkBound(float(bound), float(vol), float(cut))
