"""Parallel exact k-DPP sampling in ≈ 2√k rounds by batched rejection
(Anari–Burgess–Tian–Vuong, arXiv 2203.11190).

**Phase 1** is that of :func:`.spectral.sample_exact_k`: keep exactly k eigenvectors J
(forced projection part included) with P(J) = Π_J λ_j / e_k(λ). The rest samples the
projection k-DPP K = V_J V_Jᵀ.

**The chain being batched.** With pinned set A and r = k − |A|, the oracle gives the
conditional marginals p_i = P(i∈S | A⊆S) = K_ii − K_{i,A} K_A⁻¹ K_{A,i} (Σp = r), and
P(B⊆S | A⊆S) = det K_{A∪B} / det K_A. The sequential chain draws i with probability p_i/r;
ℓ of its steps form an ordered tuple of distinct items with probability
T(i_1..i_ℓ) = P(B⊆S|A)·(r−ℓ)!/r!.

**A round** (ℓ = max(1, ⌊√r⌋) unless ``window`` overrides it, capped at r):

1. propose R tuples of ℓ i.i.d. draws from p/r (with replacement), where
   R = ⌈log(1/δ) / (−log(1 − 1/M_ℓ))⌉ (R = 1 when ℓ = 1);
2. score ρ_j = [P(B_j⊆S|A) / Π_t p_{i_t}] · r^ℓ (r−ℓ)!/r!, ρ_j = 0 for repeated items
   (log space: slogdet and lgamma);
3. accept tuple j with probability ρ_j / M_ℓ, M_ℓ = Π_{t<ℓ} r/(r−t) — a valid bound since
   P(B⊆S|A) ≤ Π p_i (Hadamard; in fact ρ_j/M_ℓ = det of the normalised Gram matrix of the
   projected rows); take the FIRST accepted tuple, whose law is exactly T, and set
   A ← A ∪ B; if none is accepted, retry the round (still exact).

ℓ = 1 gives ρ ≡ 1 = M_1: the plain sequential chain (no acceptance uniform is drawn, so it
consumes the uniforms exactly as :func:`_sequential_chain`).

**Coordinates.** Everything runs on W, the rows of V_J projected onto the orthogonal
complement of span{V_J[a] : a ∈ A} (n×k): p_i = ‖W_i‖², and
P(B⊆S|A) = det(W_B W_Bᵀ). Conditioning on B projects W against an orthonormal basis of the
rows W_B (twice, for stability): O(nkℓ) per round, O(Rℓ²k + Rℓ³) to score a batch.

**Cost (reported).** ``rounds`` = batched oracle calls: one for the marginals at A = ∅ plus
one per round (retries included); ``evaluations`` = 1 (the initial marginal vector) + the
number of candidates scored (each candidate evaluation also yields the marginals at
A ∪ B_j, so the next round needs no extra call). Expected rounds ≈ 2√k; total work
≈ 2√k·R evaluations of O(nk²) each, against k for the sequential chain.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..core.cost import Cost
from ..core.errors import NumericalError
from ..core.result import SampleResult
from ..core.rng import RngLike, as_generator
from ._draw import _clamp_to_positive
from ._validate import as_count, require_symmetric_dpp
from .esp import kdpp_phase_one

if TYPE_CHECKING:
    from .kernel import DPP

__all__ = ["sample_parallel_k"]


# ----------------------------------------------------------------------------- public API
def sample_parallel_k(dpp: "DPP", k: int, *, rng: RngLike = None, window: int | None = None,
                      delta: float = 1e-3) -> SampleResult:
    """One exact sample of the k-DPP P(S) ∝ det L_S, |S| = k, in ≈ 2√k batched rounds.

    ``window`` fixes ℓ (capped at the number of items left); ``window=1`` is the sequential
    chain (k rounds). ``delta`` sets the number of candidates per round R so that a round
    fails with probability ≤ δ. Returns a :class:`SampleResult` with the sorted int64
    sample, ``Cost(rounds, evaluations)`` and ``info`` = {"window_per_round",
    "accepted_per_round", "candidates", "depth_speedup"}.

    Raises ValueError when k is invalid or exceeds the rank of L (as
    :func:`.spectral.sample_exact_k`), or when ``window`` is not an integer ≥ 1 or
    ``delta`` ∉ (0, 1); TypeError for anything but a symmetric :class:`DPP` (all before
    drawing).
    """
    require_symmetric_dpp(dpp, "sample_parallel_k")
    if window is not None:
        window = as_count(window, "window", minimum=1)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must lie in (0, 1), got {delta!r}")
    gen = as_generator(rng)
    J = kdpp_phase_one(dpp, k, gen)
    s = dpp.spectrum
    if J.size == 0:
        return SampleResult(np.zeros(0, dtype=np.int64), Cost(0, 0),
                            {"window_per_round": [], "accepted_per_round": [],
                             "candidates": 0, "depth_speedup": float("nan")})
    VJ = np.ascontiguousarray(s.V[:, J], dtype=np.float64)
    order, info = _batched_chain(VJ, gen.random, window=window, delta=delta)
    rounds = 1 + len(info["window_per_round"])
    cost = Cost(rounds, 1 + info["candidates"])
    info["depth_speedup"] = J.size / rounds
    return SampleResult(np.sort(np.asarray(order, dtype=np.int64)), cost, info)


# ----------------------------------------------------------------------------- helpers
def _draw_many(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices i with probability p_i/Σp, one per uniform (cumsum + right search + clamp)."""
    c = np.cumsum(p)
    total = float(c[-1])
    idx = np.searchsorted(c, u * total, side="right")
    out = np.empty(idx.shape[0], dtype=np.int64)
    for t, i in enumerate(idx):
        out[t] = _clamp_to_positive(p, int(i))
    return out


def _check_mass(p: np.ndarray, r: int, k: int) -> None:
    total = float(p.sum())
    if not total > 1e-12 * r:
        raise NumericalError(
            f"conditional marginals collapsed with {r} of {k} items left (Σp = {total:.3g}):"
            " the selected eigenvectors V_J are ill-conditioned; re-orthonormalise V"
        )


def _condition(W: np.ndarray, B: np.ndarray) -> None:
    """In place: project the rows of W onto the complement of span{W[b] : b ∈ B}."""
    Q, _ = np.linalg.qr(W[B].T)  # k×ℓ, orthonormal columns spanning the rows W_B
    for _rep in range(2):
        W -= (W @ Q) @ Q.T
    W[B] = 0.0


def _log_M(r: int, ell: int) -> float:
    """log M_ℓ = Σ_{t<ℓ} log(r/(r−t)) = ℓ log r + lgamma(r−ℓ+1) − lgamma(r+1)."""
    return ell * math.log(r) + math.lgamma(r - ell + 1) - math.lgamma(r + 1)


def _num_candidates(r: int, ell: int, delta: float) -> int:
    """R = ⌈log(1/δ) / (−log(1 − 1/M_ℓ))⌉ (1 when M_ℓ = 1)."""
    if ell <= 1:
        return 1
    inv_M = math.exp(-_log_M(r, ell))
    return max(1, math.ceil(math.log(1.0 / delta) / -math.log1p(-inv_M)))


def _choose(accepted: np.ndarray, log_rho: np.ndarray) -> int:
    """The FIRST accepted candidate (fixed order), or -1. Any other rule biases the law."""
    hits = np.flatnonzero(accepted)
    return int(hits[0]) if hits.size else -1


def _batched_chain(VJ: np.ndarray, uniforms: Callable[[int], np.ndarray], *,
                   window: int | None = None, delta: float = 1e-3
                   ) -> tuple[list[int], dict]:
    """Batched-rejection chain on K = V_J V_Jᵀ; items in the order pinned, plus info.

    ``uniforms(size)`` returns the next ``size`` uniforms; each round pre-draws all of its
    own: R·ℓ proposal uniforms, then R acceptance uniforms (none when ℓ = 1).
    """
    n, k = VJ.shape
    W = np.array(VJ, dtype=np.float64, copy=True)
    order: list[int] = []
    windows: list[int] = []
    accepted_per_round: list[int] = []
    candidates = 0
    while len(order) < k:
        r = k - len(order)
        ell = min(r, window if window is not None else max(1, math.isqrt(r)))
        R = _num_candidates(r, ell, delta)
        p = np.einsum("ij,ij->i", W, W)
        p[order] = 0.0
        _check_mass(p, r, k)
        if ell == 1:
            u = uniforms(1)
            B = _draw_many(p, u)
            candidates += 1
            windows.append(1)
            accepted_per_round.append(1)
        else:
            u = uniforms(R * ell + R)
            tuples = _draw_many(p, u[: R * ell]).reshape(R, ell)
            u_acc = u[R * ell:]
            candidates += R
            log_rho = _log_rho(W, p, tuples, r)
            accepted = np.log(u_acc) < log_rho - _log_M(r, ell)
            j = _choose(accepted, log_rho)
            windows.append(ell)
            if j < 0:
                accepted_per_round.append(0)
                continue
            accepted_per_round.append(ell)
            B = tuples[j]
        _condition(W, B)
        order.extend(int(b) for b in B)
    return order, {"window_per_round": windows, "accepted_per_round": accepted_per_round,
                   "candidates": candidates}


def _log_rho(W: np.ndarray, p: np.ndarray, tuples: np.ndarray, r: int) -> np.ndarray:
    """log ρ_j = log det(W_B W_Bᵀ) − Σ log p_{i_t} + ℓ log r + log((r−ℓ)!/r!), −inf on
    repeats or singular tuples."""
    R, ell = tuples.shape
    WB = W[tuples]  # R×ℓ×k
    G = WB @ WB.transpose(0, 2, 1)
    sign, logdet = np.linalg.slogdet(G)
    srt = np.sort(tuples, axis=1)
    repeat = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
    with np.errstate(divide="ignore"):
        log_p = np.log(p[tuples]).sum(axis=1)
    log_rho = logdet - log_p + _log_M(r, ell)
    return np.where(repeat | (sign <= 0) | ~np.isfinite(log_rho), -np.inf, log_rho)


def _sequential_chain(VJ: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Plain projection-DPP chain rule on W (one uniform per step): items in the order
    drawn. The pathwise reference for ℓ = 1."""
    n, k = VJ.shape
    u = np.asarray(uniforms, dtype=np.float64)
    W = np.array(VJ, dtype=np.float64, copy=True)
    out = np.empty(k, dtype=np.int64)
    for s in range(k):
        p = np.einsum("ij,ij->i", W, W)
        p[out[:s]] = 0.0
        _check_mass(p, k - s, k)
        i = _draw_many(p, u[s:s + 1])
        out[s] = i[0]
        _condition(W, i)
    return out
