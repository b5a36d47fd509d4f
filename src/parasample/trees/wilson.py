"""Wilson's algorithm: exact weighted uniform spanning trees by loop-erased random walks.

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

Long walks: the kernel runs at most ``CHUNK_STEPS`` steps per tree per call and keeps each
walk's state (generator, ``next``, position) between calls, so Ctrl-C is handled between
chunks, ``max_steps`` ends a walk with :class:`WalkBudgetError`, and a walk longer than
max(``CHUNK_STEPS``, 32·(n + m)) steps warns when the cut bound of :mod:`.walk_bound`
predicts ≥ ``WARN_STEPS`` steps. Chunking leaves the stream, the trees and the step counts
unchanged.

numba is optional: without it the reference runs (about two orders of magnitude slower)
after a one-time warning.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ..core.cost import Cost
from ..core.errors import ParasampleError
from ..core.result import SampleResult
from ..core.rng import RngLike, as_generator
from ..core.validate import as_count
from ._graph import WeightedGraph, as_graph, user_stacklevel
from .walk_bound import WalkBound, walk_steps_lower_bound

try:  # optional extra
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

__all__ = [
    "random_spanning_tree", "random_spanning_trees", "random_spanning_tree_edges",
    "wilson_tree", "wilson_trees", "wilson_tree_reference", "default_root", "WalkBudgetError",
]

#: Steps per tree per kernel call: Ctrl-C and the budget are checked between calls
#: (2²⁰ steps take about 25 ms compiled).
CHUNK_STEPS = 1 << 20
#: Warn when a call is expected (by the lower bound of :mod:`.walk_bound`) to take at least
#: this many walk steps in all (about 3 s compiled, minutes for the pure-Python reference).
WARN_STEPS = 10 ** 8
#: Memory for walks held at once by the batch driver (17 bytes per vertex per walk).
SLOT_BYTES = 1 << 25
_NO_LIMIT = 1 << 62

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
    r = as_count(root, "root")
    if not 0 <= r < graph.n:
        raise ValueError(f"root {root} is not a vertex index in 0..{graph.n - 1}")
    return r


def _max_steps(max_steps: Optional[int]) -> Optional[int]:
    return None if max_steps is None else as_count(max_steps, "max_steps")


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


def wilson_tree_reference(graph: WeightedGraph, seed: int, *, root: Optional[int] = None,
                          max_steps: Optional[int] = None,
                          _guard: Optional["_WalkGuard"] = None) -> tuple[np.ndarray, int]:
    """Pure-Python twin of the kernel: same generator, same steps, same tree (and the same
    ``max_steps`` budget, :class:`WalkBudgetError`)."""
    from bisect import bisect_right

    n = graph.n
    r = _root(graph, root)
    guard = _guard or _WalkGuard(graph, r, _max_steps(max_steps))
    indptr, nbr, eid, cumw, rowtot = (a.tolist() for a in graph.csr)
    gen = _Xoshiro256ss(seed)
    in_tree = [False] * n
    nxt = [0] * n
    in_tree[r] = True
    out, steps = [], 0
    limit = int(guard.limit(0))
    for s in range(n):
        x = s
        while not in_tree[x]:
            if steps >= limit:
                guard.check(steps)
                limit = int(guard.limit(steps))
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


# --------------------------------------------------------------------------- long walks
class WalkBudgetError(ParasampleError, RuntimeError):
    """A walk reached its ``max_steps`` budget before the tree was complete."""


class _WalkGuard:
    """Step budget and the one-time long-walk warning, checked between kernel chunks.

    The walk runs in chunks of at most ``CHUNK_STEPS`` steps per tree, so Ctrl-C
    (KeyboardInterrupt) is handled between chunks. Once a tree's walk is longer than
    32·(n + m) steps (or ``CHUNK_STEPS``), :func:`~.walk_bound.walk_steps_lower_bound`
    (costing about n + m steps) is computed and a RuntimeWarning is issued if it predicts
    ≥ ``WARN_STEPS`` steps in all.
    """

    def __init__(self, graph: WeightedGraph, root: int, max_steps: Optional[int],
                 n_trees: int = 1) -> None:
        self.graph, self.root, self.n_trees = graph, root, n_trees
        self.max_steps = _NO_LIMIT if max_steps is None else max_steps
        self.first = max(CHUNK_STEPS, 32 * (graph.n + graph.m))
        self.bound: Optional[WalkBound] = None

    def limit(self, steps):
        """Step count at which the next chunk stops (per tree)."""
        return np.minimum(np.asarray(steps) + CHUNK_STEPS, self.max_steps)

    def check(self, steps: int) -> None:
        """Called with the step count of a tree that is not finished yet."""
        if steps >= self.max_steps:
            raise WalkBudgetError(self._budget_message(steps))
        if self.bound is None and steps >= self.first:
            self.bound = walk_steps_lower_bound(self.graph, self.root)
            if self.bound.steps * self.n_trees >= WARN_STEPS:
                warnings.warn(self._long_message(steps), RuntimeWarning,
                              stacklevel=user_stacklevel())

    def _why(self) -> str:
        b = self.bound
        return (f"at least {b.steps:.3g} walk steps per tree are expected: a set of vertices "
                f"of total edge weight {b.volume:.3g} is joined to the root's side by edges of "
                f"total weight {b.cut:.3g} (expected steps ≥ Σ vol(C)/cut(C))")

    def _long_message(self, steps: int) -> str:
        trees = f" × {self.n_trees} trees" if self.n_trees > 1 else ""
        return (f"Wilson's walk is slow on this graph (n = {self.graph.n}, m = {self.graph.m}): "
                f"{self._why()}{trees}; {steps:,} steps taken so far. Ctrl-C interrupts; "
                "max_steps= caps the walk; rescaling or merging the light edges speeds it up")

    def _budget_message(self, steps: int) -> str:
        if self.bound is None:
            self.bound = walk_steps_lower_bound(self.graph, self.root)
        why, fix = "", ""
        if self.bound.steps > 0:
            why, fix = f"; {self._why()}", ", or rescale or merge the light edges"
        return (f"Wilson's walk used its budget max_steps = {self.max_steps:,} steps without "
                f"completing the tree (n = {self.graph.n}, m = {self.graph.m}){why}. Pass a "
                f"larger max_steps (or None for no limit){fix}.")


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
    def _start_walks(seeds, slots, root, states, in_tree, pos):
        """Fresh walks in ``slots``: generator seeded, only the root in the tree."""
        for j in range(slots.shape[0]):
            i = slots[j]
            _seed_state(seeds[j], states[i])
            in_tree[i, :] = False
            in_tree[i, root] = True
            pos[i, :] = 0

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
    def _wilson_resume(indptr, nbr, eid, cumw, rowtot, state, in_tree, nxt, pos, out, limit):
        """Continue one tree until it is complete (True) or its walk has ``limit`` steps
        (False). ``pos`` = [s, x, k, steps]: start vertex, walker, edges in ``out``, steps.
        Stopping and resuming leaves the random stream and the path unchanged."""
        n = indptr.shape[0] - 1
        s, x, k, steps = pos[0], pos[1], pos[2], pos[3]
        while s < n:
            while not in_tree[x]:
                if steps >= limit:
                    pos[0], pos[1], pos[2], pos[3] = s, x, k, steps
                    return False
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
            while not in_tree[x]:  # retrace the loop-erased path
                in_tree[x] = True
                out[k] = eid[nxt[x]]
                k += 1
                x = nbr[nxt[x]]
            s += 1
            x = s
        pos[0], pos[1], pos[2], pos[3] = s, 0, k, steps
        return True

    @numba.njit(cache=True, nogil=True)
    def _chunk_one(indptr, nbr, eid, cumw, rowtot, states, in_tree, nxt, pos, out, i, limit):
        """One chunk of walk i; True when its tree is complete (``out[i]`` then sorted)."""
        if _wilson_resume(indptr, nbr, eid, cumw, rowtot, states[i], in_tree[i], nxt[i],
                          pos[i], out[i], limit):
            out[i, :] = np.sort(out[i])
            return True
        return False

    @numba.njit(cache=True, nogil=True, parallel=True)
    def _wilson_chunk(indptr, nbr, eid, cumw, rowtot, states, in_tree, nxt, pos, out, active,
                      limits):
        """One chunk of every walk in ``active``, in parallel; True where it finished."""
        done = np.zeros(active.shape[0], dtype=np.bool_)
        for j in numba.prange(active.shape[0]):
            done[j] = _chunk_one(indptr, nbr, eid, cumw, rowtot, states, in_tree, nxt, pos,
                                 out, active[j], limits[j])
        return done

    @numba.njit(cache=True, nogil=True)
    def _wilson_chunk_serial(indptr, nbr, eid, cumw, rowtot, states, in_tree, nxt, pos, out,
                             active, limits):
        """Serial twin for a single walk: no thread wake-ups on every chunk."""
        done = np.zeros(active.shape[0], dtype=np.bool_)
        for j in range(active.shape[0]):
            done[j] = _chunk_one(indptr, nbr, eid, cumw, rowtot, states, in_tree, nxt, pos,
                                 out, active[j], limits[j])
        return done

_warned_no_numba = False


def _no_numba_warning() -> None:
    global _warned_no_numba
    if not _warned_no_numba:
        _warned_no_numba = True
        warnings.warn("numba is not installed: Wilson's algorithm runs the pure-Python "
                      "reference (about 100x slower); pip install numba", RuntimeWarning,
                      stacklevel=user_stacklevel())


def _slots(n: int, M: int) -> int:
    """Walks held at once by the batch driver: all M when their state fits in
    ``SLOT_BYTES``, else enough to keep every thread busy."""
    per = 17 * n + 64  # in_tree, nxt, out, generator state
    return max(1, min(M, max(2 * numba.get_num_threads(), SLOT_BYTES // per)))


def _run_walk(graph: WeightedGraph, root: int, seed: int,
              guard: _WalkGuard) -> tuple[np.ndarray, int]:
    """One tree by the chunked kernel, called directly (the low-overhead path)."""
    n = graph.n
    state = np.empty(4, dtype=np.uint64)
    _seed_state(np.uint64(seed), state)
    in_tree = np.zeros(n, dtype=np.bool_)
    in_tree[root] = True
    nxt = np.zeros(n, dtype=np.int64)
    pos = np.zeros(4, dtype=np.int64)
    out = np.empty(n - 1, dtype=np.int64)
    indptr, nbr, eid, cumw, rowtot = graph.csr
    limit = int(guard.limit(0))
    while not _wilson_resume(indptr, nbr, eid, cumw, rowtot, state, in_tree, nxt, pos, out,
                             limit):
        guard.check(int(pos[3]))
        limit = int(guard.limit(pos[3]))
    out.sort()
    return out, int(pos[3])


def _run_walks(graph: WeightedGraph, root: int, seeds: np.ndarray,
               guard: _WalkGuard) -> tuple[np.ndarray, np.ndarray]:
    """Trees for uint64 ``seeds`` by the chunked kernel: ((M, n−1) sorted ids, (M,) steps).

    Up to :func:`_slots` walks are held at once; a finished slot takes the next seed."""
    n, M = graph.n, seeds.shape[0]
    ids = np.empty((M, n - 1), dtype=np.int64)
    steps = np.zeros(M, dtype=np.int64)
    if M == 0:
        return ids, steps
    S = _slots(n, M)
    states = np.empty((S, 4), dtype=np.uint64)
    in_tree = np.empty((S, n), dtype=np.bool_)
    nxt = np.zeros((S, n), dtype=np.int64)
    pos = np.zeros((S, 4), dtype=np.int64)
    out = np.empty((S, n - 1), dtype=np.int64)
    tree_of = np.arange(S)
    _start_walks(seeds[:S], np.arange(S), np.int64(root), states, in_tree, pos)
    following = S
    indptr, nbr, eid, cumw, rowtot = graph.csr
    while True:
        active = np.flatnonzero(tree_of >= 0)
        if active.size == 0:
            return ids, steps
        kernel = _wilson_chunk if active.size > 1 else _wilson_chunk_serial
        done = kernel(indptr, nbr, eid, cumw, rowtot, states, in_tree, nxt, pos, out, active,
                      guard.limit(pos[active, 3]))
        fin = active[done]
        ids[tree_of[fin]] = out[fin]
        steps[tree_of[fin]] = pos[fin, 3]
        tree_of[fin] = -1
        if not done.all():
            guard.check(int(pos[active[~done], 3].max()))
        refill = fin[: M - following]
        if refill.size:
            tree_of[refill] = np.arange(following, following + refill.size)
            _start_walks(seeds[following:following + refill.size], refill, np.int64(root),
                         states, in_tree, pos)
            following += refill.size


# --------------------------------------------------------------------------- internal API
def wilson_tree(graph: WeightedGraph, seed: int, *, root: Optional[int] = None,
                max_steps: Optional[int] = None) -> tuple[np.ndarray, int]:
    """One tree of a validated graph: (sorted int64 edge ids (n−1,), walk steps).

    ``seed`` is the 64-bit seed of the kernel's generator (taken mod 2⁶⁴). ``max_steps``
    caps the walk (:class:`WalkBudgetError`); the walk runs in interruptible chunks."""
    r = _root(graph, root)
    budget = _max_steps(max_steps)
    guard = _WalkGuard(graph, r, budget)
    if numba is None:
        _no_numba_warning()
        return wilson_tree_reference(graph, seed, root=r, max_steps=budget, _guard=guard)
    return _run_walk(graph, r, _seed64(seed), guard)


def wilson_trees(graph: WeightedGraph, seeds: np.ndarray, *, root: Optional[int] = None,
                 max_steps: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """M trees from M seeds, in parallel: ((M, n−1) sorted edge ids, (M,) walk steps).

    Row i equals ``wilson_tree(graph, seeds[i])`` whatever the thread count; ``max_steps``
    caps each tree's walk."""
    r = _root(graph, root)
    budget = _max_steps(max_steps)
    seeds = np.asarray(seeds)
    if seeds.ndim != 1:
        raise ValueError(f"seeds must be a 1-D array, got shape {seeds.shape}")
    if not (seeds.size == 0 or np.issubdtype(seeds.dtype, np.integer)):
        raise ValueError(f"seeds must be integers, got dtype {seeds.dtype}")
    guard = _WalkGuard(graph, r, budget, n_trees=seeds.size)
    if numba is None:
        _no_numba_warning()
        res = [wilson_tree_reference(graph, s, root=r, max_steps=budget, _guard=guard)
               for s in seeds.tolist()]
        ids = np.array([t for t, _ in res], dtype=np.int64).reshape(len(res), graph.n - 1)
        return ids, np.array([k for _, k in res], dtype=np.int64)
    u64 = np.ascontiguousarray(seeds.astype(np.int64).view(np.uint64)
                               if seeds.dtype != np.uint64 else seeds)  # mod 2**64
    return _run_walks(graph, r, u64, guard)


def _draw_seeds(gen: np.random.Generator, size=None):
    return gen.integers(0, 2 ** 64, size=size, dtype=np.uint64, endpoint=False)


# --------------------------------------------------------------------------- public API
def random_spanning_tree(G, *, weight=None, rng: RngLike = None, n_nodes: Optional[int] = None,
                         max_steps: Optional[int] = None):
    """One spanning tree T with P(T) ∝ Π_{e∈T} w_e, by Wilson's algorithm.

    ``G``: a networkx ``Graph``/``MultiGraph`` (``weight`` = edge-attribute name, ``None``
    for unit weights), a scipy sparse symmetric adjacency (entries are the weights), or an
    (m, 2) integer edge array (``weight`` = (m,) array or ``None``; ``n_nodes`` = vertex
    count). Returns a networkx ``Graph`` (``MultiGraph`` for a multigraph) on the same nodes
    whose edges carry their original attribute data (and keys); for sparse / edge-array
    input, an (n−1, 2) int64 array of endpoints, rows sorted by edge id.

    ``max_steps`` caps each tree's walk (default: no cap): reaching it raises
    :class:`WalkBudgetError`. Long walks run in chunks, so Ctrl-C interrupts them, and one
    longer than max(2²⁰, 32·(n + m)) steps warns if a cut bound predicts ≥ 10⁸ steps in all.
    """
    graph = as_graph(G, weight=weight, n_nodes=n_nodes)
    budget = _max_steps(max_steps)
    ids, _ = wilson_tree(graph, int(_draw_seeds(as_generator(rng))), max_steps=budget)
    return _to_output(graph, ids)


def random_spanning_trees(G, n_samples: int, *, weight=None, rng: RngLike = None,
                          n_nodes: Optional[int] = None, max_steps: Optional[int] = None):
    """``n_samples`` independent trees, sampled in parallel (see :func:`random_spanning_tree`).

    Returns a list of networkx graphs for networkx input, else an (n_samples, n−1, 2) int64
    array. The i-th tree equals the single call that would draw the i-th seed.

    ``max_steps`` caps each tree's walk (default: no cap): reaching it raises
    :class:`WalkBudgetError`. Long walks run in chunks, so Ctrl-C interrupts them, and one
    longer than max(2²⁰, 32·(n + m)) steps warns if a cut bound predicts ≥ 10⁸ steps in all.
    """
    M = as_count(n_samples, "n_samples")
    graph = as_graph(G, weight=weight, n_nodes=n_nodes)
    budget = _max_steps(max_steps)
    ids, _ = wilson_trees(graph, _draw_seeds(as_generator(rng), M), max_steps=budget)
    if graph.source is not None:
        return [_to_output(graph, row) for row in ids]
    return graph.edges[ids].reshape(M, graph.n - 1, 2)


def random_spanning_tree_edges(G, *, weight=None, rng: RngLike = None,
                               n_nodes: Optional[int] = None, root: Optional[int] = None,
                               max_steps: Optional[int] = None) -> SampleResult:
    """One tree as edge ids, with its cost.

    Returns ``SampleResult(sample, cost, info)``: ``sample`` the sorted int64 edge ids
    (n−1,) into the graph's edge order (networkx ``G.edges`` order;
    the upper triangle of a sparse matrix in row-major order; the rows of an edge array);
    ``cost.rounds = cost.evaluations`` = the walk steps (Wilson is sequential); ``info`` has
    ``walk_steps``, ``root`` and the 64-bit ``seed`` of the kernel generator.

    ``max_steps`` caps each tree's walk (default: no cap): reaching it raises
    :class:`WalkBudgetError`. Long walks run in chunks, so Ctrl-C interrupts them, and one
    longer than max(2²⁰, 32·(n + m)) steps warns if a cut bound predicts ≥ 10⁸ steps in all.
    """
    graph = as_graph(G, weight=weight, n_nodes=n_nodes)
    r = _root(graph, root)
    budget = _max_steps(max_steps)
    seed = int(_draw_seeds(as_generator(rng)))
    ids, steps = wilson_tree(graph, seed, root=r, max_steps=budget)
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
