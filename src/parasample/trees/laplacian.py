"""Laplacian linear algebra for spanning trees: counting, resistances, transfer current.

- :func:`count_spanning_trees` — the matrix-tree theorem, τ_w(G) = det L_{−r,−r}: an exact
  Python ``int`` (fraction-free Bareiss) for small graphs with integer weights, otherwise a
  float; ``log=True`` gives log τ_w from one sparse factorisation and never exponentiates.
- :func:`effective_resistances` — exact R_e for every edge, from the inverse of the grounded
  Laplacian (dense Cholesky for small or dense graphs) or by selected inversion of its
  sparse factor (:mod:`.selected_inverse`).
- :func:`approx_effective_resistances` — the Spielman–Srivastava random-projection sketch.
- :func:`edge_marginals` — P(e ∈ T) = w_e R_e, clipped to [0, 1].
- :func:`transfer_current_matrix` — the m×m projection kernel Y = W^{1/2} B L⁺ Bᵀ W^{1/2}.

Every function accepts anything :func:`~parasample.trees._graph.as_graph` accepts (a networkx
graph, a sparse adjacency, an edge array with ``weight`` an array) or an already-built
:class:`~parasample.trees._graph.WeightedGraph` (use that to pass ``n_nodes``). Results are
indexed by the edge ids of ``as_graph``. The grounded vertex is r = n − 1 throughout.
"""

from __future__ import annotations

import math
import warnings
from typing import Optional

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..core.errors import NumericalError
from ..core.progress import track
from ..core.rng import RngLike, as_generator
from ..core.validate import as_count
from ._graph import WeightedGraph, as_graph, user_stacklevel
from .selected_inverse import (factor_pattern, resistances_from_selected_inverse,
                               selected_inverse, work_estimate)

try:  # optional extra
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

__all__ = [
    "count_spanning_trees",
    "effective_resistances",
    "approx_effective_resistances",
    "edge_marginals",
    "transfer_current_matrix",
]

#: Largest n for which integer-weighted counts are computed exactly (Bareiss is O(n³)
#: big-integer operations; unit-weight n = 200 takes about 0.15 s).
EXACT_COUNT_MAX_N = 200
#: Largest n for the dense (Cholesky inverse) route of :func:`effective_resistances` on dense
#: graphs (m ≥ n²/20); every graph with n ≤ SMALL_N takes it.
DENSE_MAX_N = 3000
SMALL_N = 500
#: Selected inversion warns above this many estimated operations (≈ 10 s).
SELECTED_WARN_WORK = 1e10
#: Largest m for :func:`transfer_current_matrix` (an m×m dense float64 matrix: 800 MB).
TRANSFER_CURRENT_MAX_M = 10_000
#: Default cap on the number of projections of :func:`approx_effective_resistances`.
MAX_PROJECTIONS = 1000
#: Right-hand sides solved per block (bounds memory at O(n · block)).
_BLOCK = 64

_LOG_FLOAT_MAX = math.log(np.finfo(np.float64).max)
_LOG_FLOAT_TINY = math.log(np.finfo(np.float64).tiny)  # smallest normal float64


def _graph(G, weight) -> WeightedGraph:
    return G if isinstance(G, WeightedGraph) else as_graph(G, weight=weight)


def _grounded(graph: WeightedGraph) -> sp.csc_matrix:
    """L_{−r,−r} with r = n − 1, as CSC (SPD for a connected graph)."""
    r = graph.n - 1
    return graph.laplacian()[:r, :r].tocsc()


class _SparseFactor:
    """One sparse factorisation of the SPD grounded Laplacian: ``solve`` and ``logdet``.

    Uses ``scipy.sparse.linalg.splu`` in symmetric mode (symmetric fill-reducing ordering,
    diagonal pivots), which for an SPD matrix is an LDLᵀ-like factor with positive pivots.
    """

    def __init__(self, A: sp.csc_matrix):
        try:
            self.lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                 options=dict(SymmetricMode=True))
        except RuntimeError as exc:
            raise NumericalError(
                f"sparse factorisation of the grounded Laplacian failed ({exc}); the weights "
                "may span too many orders of magnitude — rescale or merge extreme edges"
            ) from exc
        d = self.lu.U.diagonal()
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            bad = d[~(np.isfinite(d) & (d > 0))][0] if d.size else float("nan")
            raise NumericalError(
                f"the grounded Laplacian has a non-positive pivot ({bad!r}) although it should "
                "be positive definite; the weights are too extreme for float64 — rescale them"
            )
        self._diag = d

    def logdet(self) -> float:
        return float(np.sum(np.log(self._diag)))

    def solve(self, B: np.ndarray) -> np.ndarray:
        return self.lu.solve(np.asarray(B, dtype=np.float64))


# ----------------------------------------------------------------------------- counting


def count_spanning_trees(G, *, weight=None, log: bool = False):
    """Weighted spanning-tree count τ_w(G) = Σ_T Π_{e∈T} w_e (matrix-tree theorem).

    Returns
    - ``log=True``: the float log τ_w, from one sparse LU of the grounded Laplacian
      (sum of log of its positive pivots); works for any size, never exponentiates.
    - otherwise, if n ≤ ``EXACT_COUNT_MAX_N`` and all weights are integers: the exact Python
      ``int`` (fraction-free Bareiss elimination on the grounded Laplacian);
    - otherwise a float; :class:`OverflowError` (suggesting ``log=True``) if it is outside
      the normal float64 range (above 1.8e308, or below 2.2e-308 where it would underflow).

    A single vertex has one (empty) spanning tree.
    """
    graph = _graph(G, weight)
    n = graph.n
    if n == 1:
        return 0.0 if log else 1
    if log:
        return _SparseFactor(_grounded(graph)).logdet()
    w = graph.weights
    if n <= EXACT_COUNT_MAX_N and np.all(w == np.round(w)) and np.all(w < 2.0**53):
        return _bareiss_count(graph)
    if n <= DENSE_MAX_N:
        sign, logdet = np.linalg.slogdet(_grounded(graph).toarray())
        if sign <= 0:
            raise NumericalError("the grounded Laplacian has a non-positive determinant; the "
                                 "weights are too extreme for float64 — rescale them")
    else:
        logdet = _SparseFactor(_grounded(graph)).logdet()
    if not _LOG_FLOAT_TINY <= logdet <= _LOG_FLOAT_MAX:
        side = "above" if logdet > 0 else "below"
        raise OverflowError(
            f"the spanning-tree count is about exp({logdet:.6g}), {side} the normal float64 "
            "range (2.2e-308 to 1.8e308); use count_spanning_trees(..., log=True)"
        )
    return float(math.exp(logdet))


def _bareiss_count(graph: WeightedGraph) -> int:
    """Exact det of the integer grounded Laplacian by fraction-free Bareiss elimination.

    Every leading principal minor of an SPD matrix is positive, so no pivoting is needed and
    each division is exact. Rows are numpy object arrays of Python ints (vectorised updates).
    """
    r = graph.n - 1
    M = np.zeros((r + 1, r + 1), dtype=object)
    M[...] = 0
    for (u, v), w in zip(graph.edges.tolist(), graph.weights.tolist()):
        w = int(w)
        M[u, u] += w
        M[v, v] += w
        M[u, v] -= w
        M[v, u] -= w
    M = M[:r, :r].copy()
    prev = 1
    for k in range(r - 1):
        p = M[k, k]
        if p == 0:  # pragma: no cover - impossible for a connected graph
            raise NumericalError("zero pivot in Bareiss elimination (graph disconnected?)")
        M[k + 1:, k + 1:] = (p * M[k + 1:, k + 1:]
                             - np.outer(M[k + 1:, k], M[k, k + 1:])) // prev
        prev = p
    return int(M[r - 1, r - 1]) if r else 1


# -------------------------------------------------------------------------- resistances


def effective_resistances(G, *, weight=None, progress=None) -> np.ndarray:
    """Exact effective resistance R_e = (χ_u − χ_v)ᵀ L⁺ (χ_u − χ_v) of every edge, shape (m,).

    - small or dense graphs (n ≤ ``SMALL_N`` = 500, or n ≤ ``DENSE_MAX_N`` = 3000 with
      m ≥ n²/20): Γ = (L_{−r,−r})⁻¹ from a dense Cholesky factor (LAPACK potrf/potri),
      padded with a zero row/column r; R_e = Γ_uu + Γ_vv − 2Γ_uv. O(n³) time, O(n²) memory.
    - otherwise: one sparse factorisation of the grounded Laplacian and Γ on the pattern of
      its factor by selected inversion (:mod:`.selected_inverse`, numba), which contains
      every edge: about the cost of the factorisation (timings in docs/trees.md). A factor
      with much fill (expander-like graphs) warns with its work estimate.
    - without numba: n − 1 solves with unit vectors in blocks of 64, O(n · nnz(LU)).

    ``progress``: ``None``, ``True`` (a bar on a terminal) or ``callback(done, total, label)``
    for the sparse routes.
    """
    graph = _graph(G, weight)
    if graph.m == 0:
        return np.zeros(0)
    n = graph.n
    if n <= SMALL_N or (n <= DENSE_MAX_N and graph.m >= n * n / 20):
        Gamma = _dense_grounded_inverse(graph)
        u, v = graph.edges[:, 0], graph.edges[:, 1]
        R = Gamma[u, u] + Gamma[v, v] - 2.0 * Gamma[u, v]
    elif numba is not None:
        R = _selected_resistances(graph, progress)
    else:  # pragma: no cover - exercised only without numba
        R = _blocked_resistances(graph, progress)
    return np.maximum(R, 0.0)


def _selected_resistances(graph: WeightedGraph, progress) -> np.ndarray:
    fac = _SparseFactor(_grounded(graph))
    work = work_estimate(factor_pattern(fac.lu)[0])
    if work > SELECTED_WARN_WORK:
        warnings.warn(
            f"effective_resistances: the sparse factor of this graph has much fill-in "
            f"(about {work:.2g} operations, Σ_j |column j|²); "
            "approx_effective_resistances(G, n_projections=q) is much cheaper",
            RuntimeWarning, stacklevel=user_stacklevel())
    parts = selected_inverse(fac.lu, progress=progress)
    return resistances_from_selected_inverse(graph.edges, graph.n - 1, parts)


def _dense_grounded_inverse(graph: WeightedGraph) -> np.ndarray:
    """(L_{−r,−r})⁻¹ padded to n×n with zeros in row and column r = n − 1."""
    n = graph.n
    Gamma = np.zeros((n, n))
    if n == 1:
        return Gamma
    A = _grounded(graph).toarray()
    c, info = sla.lapack.dpotrf(A, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise NumericalError(
            f"Cholesky of the grounded Laplacian failed (LAPACK info={info}): it is not "
            "numerically positive definite; the weights are too extreme — rescale them")
    inv, info = sla.lapack.dpotri(c, lower=1, overwrite_c=1)
    if info != 0:  # pragma: no cover
        raise NumericalError(f"inverting the grounded Laplacian failed (info={info})")
    inv = np.tril(inv)
    inv = inv + np.tril(inv, -1).T
    Gamma[: n - 1, : n - 1] = inv
    return Gamma


def _blocked_resistances(graph: WeightedGraph, progress=None) -> np.ndarray:
    """Γ_uu and Γ_uv from n − 1 solves with unit right-hand sides, 64 at a time."""
    n, r = graph.n, graph.n - 1
    fac = _SparseFactor(_grounded(graph))
    u, v = graph.edges[:, 0], graph.edges[:, 1]
    # orient so that a ≠ r; each edge is handled in the block of column a
    a = np.where(u == r, v, u)
    b = np.where(u == r, u, v)
    diag = np.zeros(n)
    gab = np.zeros(graph.m)
    order = np.argsort(a, kind="stable")
    starts = np.searchsorted(a[order], np.arange(0, r + _BLOCK, _BLOCK))
    for bi, lo in enumerate(track(range(0, r, _BLOCK), progress, "resistance solves")):
        hi = min(lo + _BLOCK, r)
        rhs = np.zeros((r, hi - lo))
        rhs[np.arange(lo, hi), np.arange(hi - lo)] = 1.0
        X = fac.solve(rhs)  # columns lo..hi-1 of Γ
        diag[lo:hi] = X[np.arange(lo, hi), np.arange(hi - lo)]
        sel = order[starts[bi]:starts[bi + 1]]
        bb = b[sel]
        inner = bb != r  # Γ_{a r} = 0
        vals = np.zeros(sel.size)
        vals[inner] = X[bb[inner], a[sel][inner] - lo]
        gab[sel] = vals
    return diag[u] + diag[v] - 2.0 * gab


def approx_effective_resistances(G, *, eps: Optional[float] = None, weight=None,
                                 n_projections: Optional[int] = None,
                                 rng: RngLike = None) -> np.ndarray:
    """Spielman–Srivastava estimate of every edge's effective resistance, shape (m,).

    With Q a q×m matrix of i.i.d. N(0, 1/q) entries, Y = Q W^{1/2} B (q×n, built from the
    sparse incidence in O(qm)), Z solving L Zᵀ = Yᵀ (grounded at r; the constant cancels),
    the estimate is R̃_e = ‖Z[:, u_e] − Z[:, v_e]‖². Exactly R̃_e / R_e ~ χ²_q / q: unbiased,
    relative standard deviation √(2/q).

    q = ⌈24 ln n / eps²⌉ (the uniform (1 ± eps) guarantee), capped at ``MAX_PROJECTIONS``
    (1000, relative sd 4.5%) since beyond that the exact method is usually cheaper; a capped
    call warns (RuntimeWarning) with the q used and its relative sd √(2/q). Pass
    ``n_projections`` to choose q directly (then ``eps`` is ignored). The grounded Laplacian
    is factorised once (sparse LU) and the q right-hand sides are solved in blocks of 64, so
    memory is O(64 n) and time O(nnz(LU) · q + q m) — on a 300×300 grid (one core) about
    3 s for q = 200 and 16 s for q = 1000.
    """
    graph = _graph(G, weight)
    if n_projections is None:
        if eps is None:
            raise ValueError("give eps (target relative accuracy) or n_projections")
        if (isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating))
                or not (eps > 0 and np.isfinite(eps))):
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        need = math.ceil(24.0 * math.log(max(graph.n, 2)) / eps**2)
        q = min(need, MAX_PROJECTIONS)
        if need > q:
            warnings.warn(
                f"eps = {eps:g} needs q = ⌈24 ln n / eps²⌉ = {need:.3g} random projections for "
                f"its (1 ± eps) guarantee; using the cap of {q} projections, so each estimate "
                f"has relative standard deviation √(2/q) = {math.sqrt(2 / q):.1%} instead. "
                "Pass n_projections= to choose q, or use effective_resistances for exact values",
                RuntimeWarning, stacklevel=user_stacklevel())
    else:
        q = as_count(n_projections, "n_projections", minimum=1)
    gen = as_generator(rng)
    m, n, r = graph.m, graph.n, graph.n - 1
    if m == 0:
        return np.zeros(0)
    u, v = graph.edges[:, 0], graph.edges[:, 1]
    sw = np.sqrt(graph.weights)
    # (W^{1/2} B)ᵀ restricted to the non-grounded vertices: n−1 × m, sparse
    rows = np.concatenate([u, v])
    cols = np.concatenate([np.arange(m), np.arange(m)])
    vals = np.concatenate([sw, -sw])
    keep = rows != r
    BtW = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(r, m))
    fac = _SparseFactor(_grounded(graph))
    acc = np.zeros(m)
    for lo in range(0, q, _BLOCK):
        k = min(_BLOCK, q - lo)
        Qt = gen.standard_normal((m, k)) / math.sqrt(q)  # block of Qᵀ
        Z = np.zeros((n, k))
        Z[:r] = fac.solve(BtW @ Qt)
        D = Z[u] - Z[v]
        acc += np.einsum("ij,ij->i", D, D)
    return acc


def edge_marginals(G, *, weight=None, exact: bool = True, eps: Optional[float] = None,
                   n_projections: Optional[int] = None, rng: RngLike = None) -> np.ndarray:
    """P(e ∈ T) = w_e R_e for every edge, clipped to [0, 1], shape (m,).

    ``exact=True`` uses :func:`effective_resistances` (``eps``, ``n_projections``, ``rng``
    unused); otherwise :func:`approx_effective_resistances` with ``eps`` (a uniform
    (1 ± eps) target, which warns where it needs more than ``MAX_PROJECTIONS`` projections)
    or ``n_projections``; with neither, ``MAX_PROJECTIONS`` = 1000 projections, a relative
    standard deviation of √(2/1000) = 4.5% per edge. Bridges (found by an O(n + m) DFS) get
    exactly 1. Σ_e P(e ∈ T) = n − 1 (Foster) holds up to rounding in the exact case.
    """
    graph = _graph(G, weight)
    if exact:
        R = effective_resistances(graph)
    else:
        if eps is None and n_projections is None:
            n_projections = MAX_PROJECTIONS
        R = approx_effective_resistances(graph, eps=eps, n_projections=n_projections, rng=rng)
    p = np.clip(graph.weights * R, 0.0, 1.0)
    p[_bridges(graph)] = 1.0  # exactly, not 1 − rounding (and not a noisy estimate)
    return p


def _bridges(graph: WeightedGraph) -> np.ndarray:
    """Boolean mask of bridge edges (iterative Tarjan lowpoint DFS on the CSR form, O(n + m);
    a parallel copy is never a bridge since the walk skips only the edge id it came by)."""
    indptr, nbr, eid, _, _ = graph.csr
    n = graph.n
    indptr, nbr, eid = indptr.tolist(), nbr.tolist(), eid.tolist()
    disc = [-1] * n
    low = [0] * n
    is_bridge = np.zeros(graph.m, dtype=bool)
    disc[0] = low[0] = 0
    t = 1
    stack = [(0, -1, indptr[0])]  # (vertex, edge id it was entered by, next slot)
    while stack:
        x, pe, s = stack[-1]
        if s < indptr[x + 1]:
            stack[-1] = (x, pe, s + 1)
            e, y = eid[s], nbr[s]
            if e == pe:
                continue
            if disc[y] < 0:
                disc[y] = low[y] = t
                t += 1
                stack.append((y, e, indptr[y]))
            elif disc[y] < low[x]:
                low[x] = disc[y]
        else:
            stack.pop()
            if stack:
                par = stack[-1][0]
                if low[x] < low[par]:
                    low[par] = low[x]
                if low[x] > disc[par]:
                    is_bridge[pe] = True
    return is_bridge


# --------------------------------------------------------------------- transfer current


def transfer_current_matrix(G, *, weight=None) -> np.ndarray:
    """The transfer-current kernel Y = W^{1/2} B L⁺ Bᵀ W^{1/2}, a dense m×m array.

    Y is the orthogonal projection onto range(W^{1/2} B) (rank n − 1); the spanning tree is
    the projection DPP with kernel Y: P(F ⊆ T) = det Y_F and Y_ee = w_e R_e. Edge e is
    oriented u_e → v_e (orientation flips signs, never determinants). Computed as XᵀX with
    X = C⁻¹ (W^{1/2} B_{:,−r})ᵀ and C the Cholesky factor of the grounded Laplacian:
    O(m n² ) time, O(m²) memory, so m ≤ ``TRANSFER_CURRENT_MAX_M``.
    """
    graph = _graph(G, weight)
    m, n = graph.m, graph.n
    if m > TRANSFER_CURRENT_MAX_M:
        raise ValueError(
            f"transfer_current_matrix is dense m×m; m = {m} > {TRANSFER_CURRENT_MAX_M}. "
            "Use edge_marginals/effective_resistances for the diagonal")
    if m == 0 or n == 1:
        return np.zeros((m, m))
    r = n - 1
    S = np.zeros((m, n))
    sw = np.sqrt(graph.weights)
    idx = np.arange(m)
    S[idx, graph.edges[:, 0]] += sw
    S[idx, graph.edges[:, 1]] -= sw
    A = _grounded(graph).toarray()
    c, info = sla.lapack.dpotrf(A, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise NumericalError(
            f"Cholesky of the grounded Laplacian failed (LAPACK info={info}); the weights "
            "are too extreme for float64 — rescale them")
    X = sla.solve_triangular(c, S[:, :r].T, lower=True, check_finite=False)
    Y = X.T @ X
    return 0.5 * (Y + Y.T)
