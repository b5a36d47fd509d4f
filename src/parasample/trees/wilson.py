"""Wilson's algorithm: exact weighted uniform spanning trees by loop-erased random walks
(spec trees.md §2).

P(T) = Π_{e∈T} w_e / τ_w(G). From the root r (default: the vertex of largest weighted
degree, ties to the lowest index), every vertex s = 0..n−1 not yet in the tree starts a
random walk that stops on hitting the tree; ``next[x]`` stores the CSR *slot* used to leave
x (overwriting it on revisits erases loops, and slots keep parallel edges apart); retracing
from s adds the edges ``eid[next[x]]``. A step from x draws U ~ Uniform[0, 1) and takes the
slot ``searchsorted(cumw[row x], U · rowtot[x], 'right')``, clamped to the row.

Cost: expected walk steps Σ_v π(v)(E_v H_r + E_r H_v) (mean commute time between r and a
π-random vertex), Θ(n log n) on 2-D grids; memory O(n + m). Every sample reports its steps.

Randomness: the compiled kernel carries its own xoshiro256** generator, seeded through
splitmix64 from one 64-bit seed drawn from the caller's ``Generator``; a uniform is
``(x >> 11) · 2⁻⁵³``. :func:`wilson_tree_reference` is a pure-Python twin on the same
generator: same seed ⇒ same tree and same step count. A batch of M trees draws M seeds up
front and runs them with ``prange``, so results do not depend on threads or scheduling, and
``wilson_trees(g, seeds)[i] == wilson_tree(g, seeds[i])``. Changing the stream (generator,
seeding, step rule, visiting order) changes every sample: it is a changelog item.

numba is optional: without it the reference runs (about two orders of magnitude slower)
after a one-time warning.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ..core.cost import Cost
from ..core.result import SampleResult
from ..core.rng import RngLike, as_generator
from ._graph import WeightedGraph, as_graph

try:  # optional extra
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

__all__ = [
    "random_spanning_tree", "random_spanning_trees", "random_spanning_tree_edges",
    "wilson_tree", "wilson_trees", "wilson_tree_reference", "default_root",
]

_MASK = (1 << 64) - 1
_TWO_M53 = 2.0 ** -53
_GOLDEN, _SM1, _SM2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


# --------------------------------------------------------------------------- helpers
def default_root(graph: WeightedGraph) -> int:
    """Vertex of largest weighted degree, ties to the lowest index (shortens the walks)."""
    return int(np.argmax(graph.weighted_degree)) if graph.n else 0


def _root(graph: WeightedGraph, root: Optional[int]) -> int:
    if root is None:
        return default_root(graph)
    r = int(root)
    if not 0 <= r < graph.n:
        raise ValueError(f"root {root} is not a vertex index in 0..{graph.n - 1}")
    return r


def _seed64(seed) -> int:
    return int(seed) & _MASK


# --------------------------------------------------------------------------- reference
class _Xoshiro256ss:
    """xoshiro256** on Python ints, seeded by splitmix64 (the kernel's generator)."""

    __slots__ = ("s",)

    def __init__(self, seed: int) -> None:
        z, s = _seed64(seed), []
        for _ in range(4):
            z = (z + _GOLDEN) & _MASK
            x = z
            x = ((x ^ (x >> 30)) * _SM1) & _MASK
            x = ((x ^ (x >> 27)) * _SM2) & _MASK
            s.append(x ^ (x >> 31))
        self.s = s

    def next_u64(self) -> int:
        s0, s1, s2, s3 = self.s
        x = (s1 * 5) & _MASK
        result = ((((x << 7) | (x >> 57)) & _MASK) * 9) & _MASK
        t = (s1 << 17) & _MASK
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = ((s3 << 45) | (s3 >> 19)) & _MASK
        self.s = [s0, s1, s2, s3]
        return result

    def uniform(self) -> float:
        return (self.next_u64() >> 11) * _TWO_M53


def wilson_tree_reference(graph: WeightedGraph, seed: int, *,
                          root: Optional[int] = None) -> tuple[np.ndarray, int]:
    """Pure-Python twin of the kernel: same generator, same steps, same tree."""
    from bisect import bisect_right

    n = graph.n
    r = _root(graph, root)
    indptr, nbr, eid, cumw, rowtot = (a.tolist() for a in graph.csr)
    gen = _Xoshiro256ss(seed)
    in_tree = [False] * n
    nxt = [0] * n
    in_tree[r] = True
    out, steps = [], 0
    for s in range(n):
        x = s
        while not in_tree[x]:
            lo, hi = indptr[x], indptr[x + 1]
            slot = min(bisect_right(cumw, gen.uniform() * rowtot[x], lo, hi), hi - 1)
            nxt[x] = slot
            x = nbr[slot]
            steps += 1
        x = s
        while not in_tree[x]:
            in_tree[x] = True
            out.append(eid[nxt[x]])
            x = nbr[nxt[x]]
    return np.sort(np.array(out, dtype=np.int64)), steps


# --------------------------------------------------------------------------- numba kernels
if numba is not None:
    _U5, _U7, _U9 = np.uint64(5), np.uint64(7), np.uint64(9)
    _U11, _U17, _U19 = np.uint64(11), np.uint64(17), np.uint64(19)
    _U27, _U30, _U31 = np.uint64(27), np.uint64(30), np.uint64(31)
    _U45, _U57 = np.uint64(45), np.uint64(57)
    _UG, _UM1, _UM2 = np.uint64(_GOLDEN), np.uint64(_SM1), np.uint64(_SM2)

    @numba.njit(cache=True, nogil=True)
    def _seed_state(seed, state):
        z = seed
        for i in range(4):
            z = z + _UG
            x = z
            x = (x ^ (x >> _U30)) * _UM1
            x = (x ^ (x >> _U27)) * _UM2
            state[i] = x ^ (x >> _U31)

    @numba.njit(cache=True, nogil=True)
    def _uniform(state):
        s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
        x = s1 * _U5
        result = ((x << _U7) | (x >> _U57)) * _U9
        t = s1 << _U17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = (s3 << _U45) | (s3 >> _U19)
        state[0], state[1], state[2], state[3] = s0, s1, s2, s3
        return np.float64(result >> _U11) * _TWO_M53

    @numba.njit(cache=True, nogil=True)
    def _wilson_into(indptr, nbr, eid, cumw, rowtot, root, seed, out):
        """One tree into ``out`` (n−1, unsorted); returns the walk-step count."""
        n = indptr.shape[0] - 1
        state = np.empty(4, dtype=np.uint64)
        _seed_state(seed, state)
        in_tree = np.zeros(n, dtype=np.bool_)
        nxt = np.empty(n, dtype=np.int64)
        in_tree[root] = True
        steps = 0
        k = 0
        for s in range(n):
            x = s
            while not in_tree[x]:
                lo = indptr[x]
                hi = indptr[x + 1]
                target = _uniform(state) * rowtot[x]
                a, b = lo, hi
                while a < b:  # bisect right on cumw[lo:hi]
                    mid = (a + b) >> 1
                    if target < cumw[mid]:
                        b = mid
                    else:
                        a = mid + 1
                if a > hi - 1:
                    a = hi - 1
                nxt[x] = a
                x = nbr[a]
                steps += 1
            x = s
            while not in_tree[x]:
                in_tree[x] = True
                out[k] = eid[nxt[x]]
                k += 1
                x = nbr[nxt[x]]
        return steps

    @numba.njit(cache=True, nogil=True)
    def _wilson_kernel(indptr, nbr, eid, cumw, rowtot, root, seed):
        out = np.empty(indptr.shape[0] - 2, dtype=np.int64)
        steps = _wilson_into(indptr, nbr, eid, cumw, rowtot, root, seed, out)
        return np.sort(out), steps

    @numba.njit(cache=True, nogil=True, parallel=True)
    def _wilson_batch_kernel(indptr, nbr, eid, cumw, rowtot, root, seeds):
        M = seeds.shape[0]
        out = np.empty((M, indptr.shape[0] - 2), dtype=np.int64)
        steps = np.empty(M, dtype=np.int64)
        for i in numba.prange(M):
            row = np.empty(indptr.shape[0] - 2, dtype=np.int64)
            steps[i] = _wilson_into(indptr, nbr, eid, cumw, rowtot, root, seeds[i], row)
            out[i, :] = np.sort(row)
        return out, steps

_warned_no_numba = False


def _no_numba_warning() -> None:
    global _warned_no_numba
    if not _warned_no_numba:
        _warned_no_numba = True
        warnings.warn("numba is not installed: Wilson's algorithm runs the pure-Python "
                      "reference (about 100x slower); pip install numba", RuntimeWarning,
                      stacklevel=3)


# --------------------------------------------------------------------------- internal API
def wilson_tree(graph: WeightedGraph, seed: int, *,
                root: Optional[int] = None) -> tuple[np.ndarray, int]:
    """One tree of a validated graph: (sorted int64 edge ids (n−1,), walk steps).

    ``seed`` is the 64-bit seed of the kernel's generator (taken mod 2⁶⁴)."""
    r = _root(graph, root)
    if numba is None:
        _no_numba_warning()
        return wilson_tree_reference(graph, seed, root=r)
    indptr, nbr, eid, cumw, rowtot = graph.csr
    ids, steps = _wilson_kernel(indptr, nbr, eid, cumw, rowtot, np.int64(r),
                                np.uint64(_seed64(seed)))
    return ids, int(steps)


def wilson_trees(graph: WeightedGraph, seeds: np.ndarray, *,
                 root: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """M trees from M seeds, in parallel: ((M, n−1) sorted edge ids, (M,) walk steps).

    Row i equals ``wilson_tree(graph, seeds[i])`` whatever the thread count."""
    r = _root(graph, root)
    seeds = np.asarray(seeds)
    if seeds.ndim != 1:
        raise ValueError(f"seeds must be a 1-D array, got shape {seeds.shape}")
    if not (seeds.size == 0 or np.issubdtype(seeds.dtype, np.integer)):
        raise ValueError(f"seeds must be integers, got dtype {seeds.dtype}")
    if numba is None:
        _no_numba_warning()
        res = [wilson_tree_reference(graph, s, root=r) for s in seeds.tolist()]
        ids = np.array([t for t, _ in res], dtype=np.int64).reshape(len(res), graph.n - 1)
        return ids, np.array([k for _, k in res], dtype=np.int64)
    u64 = np.ascontiguousarray(seeds.astype(np.int64).view(np.uint64)
                               if seeds.dtype != np.uint64 else seeds)  # mod 2**64
    indptr, nbr, eid, cumw, rowtot = graph.csr
    ids, steps = _wilson_batch_kernel(indptr, nbr, eid, cumw, rowtot, np.int64(r), u64)
    return ids, steps


def _draw_seeds(gen: np.random.Generator, size=None):
    return gen.integers(0, 2 ** 64, size=size, dtype=np.uint64, endpoint=False)


# --------------------------------------------------------------------------- public API
def random_spanning_tree(G, *, weight=None, rng: RngLike = None, n_nodes: Optional[int] = None):
    """One spanning tree T with P(T) ∝ Π_{e∈T} w_e, by Wilson's algorithm.

    ``G``: a networkx ``Graph``/``MultiGraph`` (``weight`` = edge-attribute name, ``None``
    for unit weights), a scipy sparse symmetric adjacency (entries are the weights), or an
    (m, 2) integer edge array (``weight`` = (m,) array or ``None``; ``n_nodes`` = vertex
    count). Returns a networkx ``Graph`` (``MultiGraph`` for a multigraph) on the same nodes
    whose edges carry their original attribute data (and keys); for sparse / edge-array
    input, an (n−1, 2) int64 array of endpoints, rows sorted by edge id.
    """
    graph = as_graph(G, weight=weight, n_nodes=n_nodes)
    ids, _ = wilson_tree(graph, int(_draw_seeds(as_generator(rng))))
    return _to_output(graph, ids)


def random_spanning_trees(G, n_samples: int, *, weight=None, rng: RngLike = None,
                          n_nodes: Optional[int] = None):
    """``n_samples`` independent trees, sampled in parallel (see :func:`random_spanning_tree`).

    Returns a list of networkx graphs for networkx input, else an (n_samples, n−1, 2) int64
    array. The i-th tree equals the single call that would draw the i-th seed."""
    M = int(n_samples)
    if M < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    graph = as_graph(G, weight=weight, n_nodes=n_nodes)
    ids, _ = wilson_trees(graph, _draw_seeds(as_generator(rng), M))
    if graph.source is not None:
        return [_to_output(graph, row) for row in ids]
    return graph.edges[ids].reshape(M, graph.n - 1, 2)


def random_spanning_tree_edges(G, *, weight=None, rng: RngLike = None,
                               n_nodes: Optional[int] = None,
                               root: Optional[int] = None) -> SampleResult:
    """One tree as edge ids, with its cost.

    Returns ``SampleResult(sample, cost, info)``: ``sample`` the sorted int64 edge ids
    (n−1,) into the graph's edge order (networkx ``G.edges`` order;
    the upper triangle of a sparse matrix in row-major order; the rows of an edge array);
    ``cost.rounds = cost.evaluations`` = the walk steps (Wilson is sequential); ``info`` has
    ``walk_steps``, ``root`` and the 64-bit ``seed`` of the kernel generator."""
    graph = as_graph(G, weight=weight, n_nodes=n_nodes)
    r = _root(graph, root)
    seed = int(_draw_seeds(as_generator(rng)))
    ids, steps = wilson_tree(graph, seed, root=r)
    return SampleResult(ids, Cost(steps, steps), {"walk_steps": steps, "root": r, "seed": seed})


def _to_output(graph: WeightedGraph, ids: np.ndarray):
    if graph.source is None:
        return graph.edges[ids]
    import networkx as nx

    G = graph.source
    multi = G.is_multigraph()
    T = nx.MultiGraph() if multi else nx.Graph()
    T.graph.update(G.graph)
    T.add_nodes_from(G.nodes(data=True))
    nodes, adj = graph.nodes, G.adj
    ends = graph.edges[ids].tolist()
    if multi:
        keys = graph.keys
        T.add_edges_from((nodes[u], nodes[v], keys[e], dict(adj[nodes[u]][nodes[v]][keys[e]]))
                         for (u, v), e in zip(ends, ids.tolist()))
    else:
        T.add_edges_from((nodes[u], nodes[v], dict(adj[nodes[u]][nodes[v]])) for u, v in ends)
    return T
