"""Greedy MAP for DPPs by incremental Cholesky (Chen–Zhang–Zhou 2018).

Approximates argmax_{|S|=k} log det L_S by repeatedly adding the item with the largest
gain d_j² = det L_{S+j} / det L_S (the Schur complement of L_S in L_{S+j}). Keeping the
Cholesky rows C (k×n) of the selected columns gives every gain at once:

    e = (L_{:,j} − C[:t]ᵀ C[:t, j]) / d_j,    C[t] = e,    d² ← max(d² − e², 0),

so log det L_S = Σ_t log d²_{j_t}. L is read only through its diagonal and k columns,
which works for a dense L, for features L = BBᵀ (a column is B B_jᵀ, never forming L)
and for a K-ensemble (L = V diag(λ) Vᵀ as features V λ^{1/2}).

Cost: O(n k²) time plus the k column reads (O(n d) each with features), O(n k) memory.
There is no worst-case approximation guarantee for the greedy rule.

Also here: :func:`quality_diversity_kernel`, the batch-active-learning kernel
L_ij = s_i K_ij s_j with K_ij = exp(−‖ψ_i − ψ_j‖² / 2R²) and s_i = q_i^{γ/α}.
"""

from __future__ import annotations

import warnings
from typing import Callable, NamedTuple

import numba
import numpy as np
from scipy.spatial.distance import cdist

from ._validate import as_count, require_symmetric_dpp
from .kernel import DPP

__all__ = ["GreedyMAP", "map_greedy", "map_greedy_details", "quality_diversity_kernel"]

#: Stop when the best gain is ≤ NEAR_DUPLICATE · L_jj: item j lies in the span of the
#: selection up to rounding (its own diagonal, not max L_ii, so that items of very
#: different scales — quality-weighted kernels — are not mistaken for duplicates).
NEAR_DUPLICATE = 1e-10


class GreedyMAP(NamedTuple):
    """Result of :func:`map_greedy_details`.

    ``order``: selected items in pick order (int64); ``log_gains``: log d²_{j_t} of each
    pick, so ``log_gains.sum()`` = log det L_S; ``stopped_early``: True when the greedy
    stopped before k picks because every remaining item was a near-duplicate.
    """

    order: np.ndarray
    log_gains: np.ndarray
    stopped_early: bool

    @property
    def selection(self) -> np.ndarray:
        """The selected items, sorted (int64)."""
        return np.sort(self.order)

    @property
    def log_det(self) -> float:
        """log det L_S of the selection (Σ log d²)."""
        return float(np.sum(self.log_gains))


def likelihood_columns(dpp: DPP) -> tuple[np.ndarray, Callable[[int], np.ndarray]]:
    """(diag L, j ↦ L[:, j]) for ``dpp`` without forming L (features, K-ensembles)."""
    if not isinstance(dpp, DPP):
        raise TypeError(f"expected a parasample.dpp.DPP, got {type(dpp).__name__}")
    if dpp.kind == "likelihood":
        A = dpp._matrix  # symmetric: row j is column j and is contiguous
        return np.diag(A).copy(), lambda j: A[j]
    B = likelihood_features(dpp)
    diag = np.einsum("ij,ij->i", B, B)
    return diag, lambda j: B @ B[j]


def likelihood_features(dpp: DPP) -> np.ndarray:
    """A matrix B with L = BBᵀ, for feature DPPs (B itself) and K-ensembles (V λ^{1/2})."""
    if dpp.kind == "features":
        return dpp._matrix
    if dpp.kind == "correlation":
        s = dpp._require_likelihood()
        return np.ascontiguousarray(s.V * np.exp(0.5 * s.log_lam))
    raise ValueError(f"a dense likelihood DPP has no feature form (kind={dpp.kind!r})")


def map_greedy_details(dpp: DPP, k: int) -> GreedyMAP:
    """Greedy MAP with the pick order, the log-gains and the early-stop flag.

    Step t takes j = argmax d² over unselected items (ties: lowest index) and stops,
    flagging ``stopped_early``, if d_j² ≤ 1e-10·L_jj (near-duplicate: never divides by
    ≈ 0). Cost O(n k²) (+ O(n k d) with features).
    """
    require_symmetric_dpp(dpp, "map_greedy_details")
    k = as_count(k, "k")
    if k > dpp.n:
        raise ValueError(f"k = {k} exceeds the number of items n = {dpp.n}")
    # The rank is free when the spectrum is cached (validated kernels) or cheap (features,
    # d×d dual); otherwise the near-duplicate stop below catches k > rank.
    if ("spectrum" in dpp.__dict__ or dpp.kind == "features") and k > dpp.rank:
        raise ValueError(f"k exceeds the rank of L: k = {k}, rank = {dpp.rank}")
    if dpp.kind == "likelihood":
        A, features = dpp._matrix, False
        diag = np.diag(A).copy()
    else:
        A, features = likelihood_features(dpp), True
        diag = np.einsum("ij,ij->i", A, A)
    order = np.empty(k, dtype=np.int64)
    gains = np.empty(k)
    got, stopped = _greedy_nb(np.ascontiguousarray(A), features, diag, k, order, gains)
    return GreedyMAP(order[:got].copy(), gains[:got].copy(), bool(stopped))


def map_greedy(dpp: DPP, k: int) -> np.ndarray:
    """Greedy MAP set of size k, sorted int64 (see :func:`map_greedy_details`).

    If the greedy stops early on near-duplicates, the selection made so far (fewer than k
    items) is returned with a ``RuntimeWarning``. Cost O(n k²) (+ O(n k d) with features).
    """
    require_symmetric_dpp(dpp, "map_greedy")
    res = map_greedy_details(dpp, k)
    if res.stopped_early:
        warnings.warn(
            f"greedy MAP stopped after {res.order.size} of {k} picks: every remaining item "
            "is a near-duplicate of the selection (det L_S would be ≈ 0)",
            RuntimeWarning,
            stacklevel=2,
        )
    return res.selection


def _greedy(diag: np.ndarray, column: Callable[[int], np.ndarray], k: int) -> GreedyMAP:
    """Numpy reference twin of :func:`_greedy_nb`, on the diagonal and a column reader of L
    (any column source: a kernel function works too)."""
    n = diag.shape[0]
    d2 = np.array(diag, dtype=np.float64, copy=True)
    if not np.all(np.isfinite(d2)):
        raise ValueError("the diagonal of L contains NaN or infinite entries")
    C = np.zeros((k, n))
    order = np.empty(k, dtype=np.int64)
    gains = np.empty(k)
    free = np.ones(n, dtype=bool)
    for t in range(k):
        j = int(np.argmax(np.where(free, d2, -np.inf)))  # first maximum = lowest index
        dj2 = float(d2[j])
        if not dj2 > NEAR_DUPLICATE * diag[j]:
            return GreedyMAP(order[:t].copy(), gains[:t].copy(), True)
        col = np.asarray(column(j), dtype=np.float64)
        e = (col - C[:t].T @ C[:t, j]) / np.sqrt(dj2) if t else col / np.sqrt(dj2)
        C[t] = e
        d2 -= e * e
        np.maximum(d2, 0.0, out=d2)
        free[j] = False
        order[t] = j
        gains[t] = np.log(dj2)
    return GreedyMAP(order, gains, False)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _greedy_nb(A, features, diag, k, order, gains):  # pragma: no cover - compiled
    """Compiled greedy: L = A (dense) or A Aᵀ (features). Fills order/gains; returns
    (number of picks, stopped_early)."""
    n = A.shape[0]
    d2 = diag.copy()
    C = np.zeros((k, n))
    free = np.ones(n, dtype=np.bool_)
    for t in range(k):
        j = -1
        best = -np.inf
        for i in range(n):  # first maximum over free items: ties go to the lowest index
            if free[i] and d2[i] > best:
                best = d2[i]
                j = i
        if j < 0 or not best > NEAR_DUPLICATE * diag[j]:
            return t, True
        e = C[t]
        if features:
            bj = A[j]
            for i in range(n):
                bi = A[i]
                acc = 0.0
                for c in range(A.shape[1]):
                    acc += bi[c] * bj[c]
                e[i] = acc
        else:
            aj = A[j]
            for i in range(n):
                e[i] = aj[i]
        for p in range(t):
            cpj = C[p, j]
            cp = C[p]
            for i in range(n):
                e[i] -= cpj * cp[i]
        inv = 1.0 / np.sqrt(best)
        for i in range(n):
            ei = e[i] * inv
            e[i] = ei
            v = d2[i] - ei * ei
            d2[i] = v if v > 0.0 else 0.0
        free[j] = False
        order[t] = j
        gains[t] = np.log(best)
    return k, False


def quality_diversity_kernel(features, quality, *, bandwidth: float, gamma: float = 1.0,
                             alpha: float = 1.0) -> DPP:
    """The batch-active-learning DPP L_ij = s_i K_ij s_j, as a dense DPP.

    K_ij = exp(−‖ψ_i − ψ_j‖² / 2R²) with ψ = ``features`` (n×p) and R = ``bandwidth``;
    s_i = q_i^{γ/α} with q = ``quality`` ≥ 0. Then log det L_S = 2(γ/α) Σ_{i∈S} log q_i +
    log det K_S, and the α-tempered target (det L_S)^α = Π q_i^{2γ} (det K_S)^α: γ → ∞
    selects the top-k by q, γ = 0 is pure diversity. Scaling q by a constant does not change
    any fixed-size selection; divide q by max q when γ/α is large to avoid overflow.
    Cost O(n² p) time and O(n²) memory; the spectrum is computed only if a sampler asks.
    """
    psi = np.asarray(features, dtype=np.float64)
    if psi.ndim == 1:
        psi = psi[:, None]
    if psi.ndim != 2 or psi.shape[0] == 0:
        raise ValueError(f"features must be an n×p array, got shape {np.shape(features)}")
    q = np.asarray(quality, dtype=np.float64)
    if q.shape != (psi.shape[0],):
        raise ValueError(f"quality must have shape ({psi.shape[0]},), got {q.shape}")
    if not (np.all(np.isfinite(psi)) and np.all(np.isfinite(q))):
        raise ValueError("features and quality must be finite")
    if np.any(q < 0):
        raise ValueError(f"quality must be non-negative, got min {q.min():.6g}")
    for name, v, lo in (("bandwidth", bandwidth, "> 0"), ("alpha", alpha, "> 0")):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be finite and {lo}, got {v!r}")
    if not (np.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma!r}")
    K = np.exp(-cdist(psi, psi, "sqeuclidean") / (2.0 * float(bandwidth) ** 2))
    expo = float(gamma) / float(alpha)
    with np.errstate(divide="ignore", over="ignore"):
        s = np.ones_like(q) if expo == 0.0 else np.exp(expo * np.log(q))
    if not np.all(np.isfinite(s)):
        raise ValueError(
            "q^(gamma/alpha) overflows; divide quality by its maximum (this does not change "
            "fixed-size selections)"
        )
    L = (s[:, None] * K) * s[None, :]
    L = (L + L.T) / 2.0
    # PSD by construction (Gaussian kernel, congruence by diag(s)): skip the O(n³) check.
    return DPP("likelihood", L)
