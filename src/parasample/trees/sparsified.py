"""Repeated spanning-tree sampling by domain sparsification (Anari–Liu–Vuong,
arXiv 2204.02570), reconstructed from the paper's abstract and standard theory; **approximate**
in restart mode (within TV ε).

Preprocessing, Õ(m) (plus the sketch's sparse factorisation):

- R̃ from the Spielman–Srivastava sketch (:func:`~.laplacian.approx_effective_resistances`);
  p̃_e = min(1, w_e R̃_e/(1−ε)), floored at 10⁻³·(n−1)/m; Σ p̃ ≈ (n−1)/(1−ε);
- cumulative sums of p̃ (draws ∝ p̃ by binary search, O(log m) each);
- the restart tree: a maximum-weight spanning tree (Kruskal, via scipy's minimum spanning
  tree on 1/w, parallel edges reduced to their heaviest copy).

One down–up step from a tree T (k = n − 1 edges), cost O(t log m + t log t) + Wilson on H:

- **up** (:meth:`SparsifiedTreeSampler.up`): add t − k i.i.d. edges ∝ p̃; c_e = multiplicity
  in T ⊎ draws (each tree edge counts once); supp = the distinct edges;
- **down** (:meth:`SparsifiedTreeSampler.down_graph`): H = (V, supp), weights
  w_e c_e / p̃_e — connected because it contains T — and the new tree is Wilson on H
  (:func:`~.wilson.wilson_tree`), mapped back to the original edge ids through supp.

As for k-DPPs (:class:`parasample.dpp.SparsifiedKDPPSampler`) the joint law of (T, multiset)
is F(multiset)·P(T)·Π_{e∈T} c_e/p̃_e, so the down step is the exact conditional: a
data-augmentation Gibbs step, reversible for the weighted tree law for any positive p̃ (tested
on K₄ by enumerating the 16×16 transition matrix). Overestimate quality affects speed only.

Modes: ``"restart"`` (default) runs ``n_steps`` from the maximum-weight tree for every output
(independent outputs, approximate); ``"chained"`` starts from an exact Wilson tree of G and
continues from the previous output (every output exact, consecutive ones correlated).

Worth it only when m ≫ t (roughly m ≥ 10·n·ln n); otherwise H is as large as G.
"""

from __future__ import annotations

import math
import time
from typing import Literal, Optional

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import minimum_spanning_tree

from ..core.rng import RngLike, as_generator
from ..core.validate import as_count
from ._graph import WeightedGraph, as_graph
from .enumerate import is_spanning_tree
from .laplacian import approx_effective_resistances
from .wilson import _to_output, wilson_tree

__all__ = ["SparsifiedTreeSampler", "max_weight_spanning_tree"]

Mode = Literal["restart", "chained"]


class SparsifiedTreeSampler:
    """Repeated approximate weighted-uniform spanning-tree sampler.

    Parameters
    ----------
    G : graph input accepted by :func:`parasample.trees.random_spanning_tree` (or a
        :class:`WeightedGraph`).
    weight : edge-attribute name (networkx) or (m,) array (edge array input).
    eps : the TV target; enters p̃ through 1/(1−ε).
    t : size of the intermediate multiset, default ⌈2k ln(e·k)⌉ with k = n − 1.
    n_steps : down–up steps per sample.
    mode : ``"restart"`` or ``"chained"``.
    n_projections : sketch size q for R̃ (default 128, relative sd √(2/q) = 12.5%).
    overestimates : optional (m,) array of p̃ > 0 to use instead of the sketch.
    start : optional initial tree (sorted edge ids).
    rng : generator for the sketch, the chained start and the default for :meth:`sample`.

    Attributes: ``graph``, ``overestimates`` (p̃), ``t``, ``n_steps``, ``preprocess_seconds``,
    ``state`` (current tree, edge ids), ``last_walk_steps`` (Wilson steps of the last sample).
    """

    def __init__(self, G, *, weight=None, eps: float = 0.1, t: Optional[int] = None,
                 n_steps: int = 4, mode: Mode = "restart", n_projections: int = 128,
                 overestimates=None, start=None, rng: RngLike = None):
        t0 = time.perf_counter()
        if mode not in ("restart", "chained"):
            raise ValueError(f"mode must be 'restart' or 'chained', got {mode!r}")
        if not (isinstance(eps, (int, float)) and not isinstance(eps, bool)
                and 0.0 < float(eps) < 1.0):
            raise ValueError(f"eps must be in (0, 1), got {eps!r}")
        self.n_steps = as_count(n_steps, "n_steps")
        n_projections = as_count(n_projections, "n_projections", minimum=1)
        self.graph = g = G if isinstance(G, WeightedGraph) else as_graph(G, weight=weight)
        self.eps, self.mode = float(eps), mode
        self.k = k = g.n - 1
        m = g.m
        if t is None:
            t = math.ceil(2 * k * math.log(math.e * k)) if k > 0 else 0
        elif as_count(t, "t") < k:
            raise ValueError(f"t must be an integer ≥ n − 1 = {k}, got {t!r}")
        self.t = int(t)
        p = None
        if overestimates is not None:
            p = np.asarray(overestimates, dtype=np.float64)
            if p.shape != (m,) or not np.all(np.isfinite(p)) or np.any(p <= 0):
                raise ValueError(f"overestimates must be a finite positive ({m},) array")
        start = None if start is None else self._check_tree(start)  # before any draw
        self._rng = as_generator(rng)
        if p is None and m:
            R = approx_effective_resistances(g, n_projections=n_projections, rng=self._rng)
            p = np.minimum(1.0, g.weights * R / (1.0 - self.eps))
            p = np.maximum(p, 1e-3 * k / m)
        elif p is None:
            p = np.zeros(0)
        self.overestimates = p
        self._cum = np.cumsum(p)
        if start is not None:
            self._start = start
        elif mode == "chained" and k > 0:
            self._start = wilson_tree(g, self._seed(self._rng))[0]
        else:
            self._start = max_weight_spanning_tree(g)
        self.state = self._start.copy()
        self.last_walk_steps = 0
        self.preprocess_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------ pieces of a step
    @staticmethod
    def _seed(gen: np.random.Generator) -> int:
        return int(gen.integers(0, 2 ** 64, dtype=np.uint64))

    def _check_tree(self, T) -> np.ndarray:
        """Sorted ids of a spanning tree T, or a ValueError (O(n α(n)) union–find)."""
        g = self.graph
        T = np.unique(np.asarray(T, dtype=np.int64))
        if T.size != self.k or (T.size and (T[0] < 0 or T[-1] >= g.m)):
            raise ValueError(f"a tree must be {self.k} distinct edge ids in 0..{g.m - 1}")
        if not is_spanning_tree(g.n, g.edges[T]):
            raise ValueError("the edge ids given as a tree contain a cycle: not a spanning tree")
        return T

    def _check_draws(self, draws) -> np.ndarray:
        d = np.asarray(draws)
        if (d.shape != (self.t - self.k,) or (d.size and not np.issubdtype(d.dtype, np.integer))
                or (d.size and (d.min() < 0 or d.max() >= self.graph.m))):
            raise ValueError(f"draws must be {self.t - self.k} edge ids in 0..{self.graph.m - 1}")
        return d.astype(np.int64)

    def draw_up(self, rng: np.random.Generator) -> np.ndarray:
        """t − (n−1) i.i.d. edge ids ∝ p̃ (O(t log m))."""
        u = rng.random(self.t - self.k) * self._cum[-1]
        idx = np.searchsorted(self._cum, u, side="right")
        return np.minimum(idx, self.graph.m - 1).astype(np.int64)

    @staticmethod
    def up(T: np.ndarray, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(supp, c): distinct edges of T ⊎ draws and their multiplicities."""
        return np.unique(np.concatenate((T, draws)), return_counts=True)

    def down_weights(self, supp: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Edge weights of H: w_e c_e / p̃_e."""
        return self.graph.weights[supp] * c / self.overestimates[supp]

    def down_graph(self, supp: np.ndarray, c: np.ndarray) -> WeightedGraph:
        """H = (V, supp) with weights w_e c_e/p̃_e; H's edge j is original edge supp[j]."""
        return WeightedGraph(self.graph.n, np.ascontiguousarray(self.graph.edges[supp]),
                             np.ascontiguousarray(self.down_weights(supp, c)))

    def down(self, supp: np.ndarray, c: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
        """Wilson on H: (sorted original edge ids, walk steps)."""
        ids, steps = wilson_tree(self.down_graph(supp, c), seed)
        return np.sort(supp[ids]), steps

    def step(self, T, *, rng: RngLike = None, draws=None) -> np.ndarray:
        """One down–up step from tree T (``draws`` fixes the up-draws); T and ``draws`` are
        validated before anything is drawn from ``rng``."""
        T = self._check_tree(T)
        draws = None if draws is None else self._check_draws(draws)
        return self._step(T, as_generator(rng), draws)

    def _step(self, T: np.ndarray, gen: np.random.Generator, draws=None) -> np.ndarray:
        if draws is None:
            draws = self.draw_up(gen)
        supp, c = self.up(T, draws)
        out, steps = self.down(supp, c, self._seed(gen))
        self.last_walk_steps += steps
        return out

    # ------------------------------------------------------------------ public sampling
    def reset(self, start=None) -> None:
        """Set the chain state (default: the start tree)."""
        self.state = self._start.copy() if start is None else self._check_tree(start)

    def sample_edges(self, *, rng: RngLike = None) -> np.ndarray:
        """One tree as sorted int64 edge ids (``n_steps`` steps from the start tree in
        restart mode, from the previous output in chained mode)."""
        gen = self._rng if rng is None else as_generator(rng)
        T = self._start if self.mode == "restart" else self.state
        self.last_walk_steps = 0
        if self.k > 0:
            for _ in range(self.n_steps):
                T = self._step(T, gen)
        self.state = T
        return T.copy()

    def sample(self, *, rng: RngLike = None):
        """One tree in the output type of :func:`parasample.trees.random_spanning_tree`."""
        return _to_output(self.graph, self.sample_edges(rng=rng))

    def __repr__(self) -> str:
        return (f"SparsifiedTreeSampler(n={self.graph.n}, m={self.graph.m}, t={self.t}, "
                f"n_steps={self.n_steps}, mode={self.mode!r})")


def max_weight_spanning_tree(graph: WeightedGraph) -> np.ndarray:
    """Sorted edge ids of a maximum-weight spanning tree (Kruskal via scipy on 1/w; among
    parallel edges only the heaviest copy is a candidate)."""
    n, m = graph.n, graph.m
    if n <= 1:
        return np.zeros(0, dtype=np.int64)
    a = np.minimum(graph.edges[:, 0], graph.edges[:, 1])
    b = np.maximum(graph.edges[:, 0], graph.edges[:, 1])
    key = a * n + b
    order = np.lexsort((-graph.weights, key))          # by pair, heaviest first
    first = np.ones(m, dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    best = order[first]                                 # heaviest edge of each pair
    A = sp.csr_matrix((1.0 / graph.weights[best], (a[best], b[best])), shape=(n, n))
    mst = minimum_spanning_tree(A).tocoo()
    pair_keys = key[best]
    srt = np.argsort(pair_keys)
    pos = np.searchsorted(pair_keys[srt], np.minimum(mst.row, mst.col) * n
                          + np.maximum(mst.row, mst.col))
    ids = np.sort(best[srt[pos]]).astype(np.int64)
    if ids.size != n - 1:  # pragma: no cover - graphs are validated connected
        raise RuntimeError("maximum spanning tree is not spanning")
    return ids
