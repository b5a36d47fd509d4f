"""Elementary symmetric polynomials in log space; k-DPP eigenvector selection.

A symmetric k-DPP, P(X = S) = det L_S / e_k(λ) for |S| = k, is a mixture of projection DPPs:
Phase 1 picks k eigenvectors J with P(J) = Π_{j∈J} λ_j / e_k(λ). This file holds the ESP
machinery for it:

- :func:`log_esp_table`: E[l, j] = log e_l(λ_1..λ_j) for l ≤ k, j ≤ r, by the recursion
  E[l, j] = logaddexp(E[l, j−1], log λ_j + E[l−1, j−1]). O(rk) time and memory. Raw ESPs
  overflow or underflow (DPPy #58 underflows at k = 30); log ESPs of λ ∈ [1e-300, 1e300]
  and k ≤ 1000 are finite or −inf, never NaN.
- :func:`select_eigenvectors`: scan j = r..1 with l = k; keep j with probability
  sigmoid(log b − log a), a = e_l(λ_{<j}), b = λ_j e_{l−1}(λ_{<j}) — in [0, 1] by
  construction; forced inclusions (a = 0) give exactly 1. O(r).
- :func:`log_leave_one_out_esp`: log e_l(λ_{−j}) for all j from prefix and suffix tables,
  e_l(λ_{−j}) = Σ_a e_a(λ_{<j}) e_{l−a}(λ_{>j}): a sum of non-negative terms, so no
  cancellation (unlike the alternating deflation recursion). O(rl).
- :func:`kdpp_inclusion_probabilities`: P(i ∈ X) = Σ_j V_ij² λ_j e_{k−1}(λ_{−j}) / e_k(λ).

K-ensembles may have a projection part (μ_j = 1, log λ_j = +inf): those eigenvectors are in
every sample, so a k-DPP forces them and selects k − #forced among the rest
(:func:`split_kdpp_spectrum`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._validate import as_count, require_symmetric_dpp

if TYPE_CHECKING:
    from .kernel import DPP

__all__ = [
    "log_esp_table", "log_esp", "select_eigenvectors", "log_leave_one_out_esp",
    "kdpp_inclusion_probabilities", "KdppSplit", "split_kdpp_spectrum", "cached_log_esp_table",
    "kdpp_phase_one",
]

_NEG_INF = -np.inf


def log_esp_table(log_lam: np.ndarray, k: int) -> np.ndarray:
    """(k+1)×(r+1) table E[l, j] = log e_l(λ_1..λ_j) (−inf where e_l = 0). O(rk).

    ``log_lam`` must be finite or −inf (λ = 0); E[0, ·] = 0 and E[l > 0, 0] = −inf.
    """
    log_lam = np.asarray(log_lam, dtype=np.float64)
    if np.any(np.isnan(log_lam)) or np.any(log_lam == np.inf):
        raise ValueError("log λ must be finite or -inf (a projection part must be split off)")
    r = log_lam.shape[0]
    E = np.full((k + 1, r + 1), _NEG_INF)
    E[0, :] = 0.0
    if k == 0:
        return E
    # Column-by-column: each column needs the previous one; the work is vectorised over l.
    col = E[:, 0].copy()
    buf = np.empty(k)
    for j in range(r):
        np.add(col[:-1], log_lam[j], out=buf)
        np.logaddexp(col[1:], buf, out=col[1:])
        E[1:, j + 1] = col[1:]
    return E


def log_esp(log_lam: np.ndarray, k: int) -> float:
    """log e_k(λ) (−inf when k exceeds the number of positive λ). O(rk)."""
    return float(log_esp_table(log_lam, k)[k, -1])


def cached_log_esp_table(owner: object, log_lam: np.ndarray, k: int) -> np.ndarray:
    """:func:`log_esp_table` for ``log_lam`` cached on ``owner.__dict__['_esp_cache']``.

    One table with the largest k seen is kept; its first k+1 rows serve every smaller k.
    The cache is keyed by the bytes of ``log_lam``, so a changed spectrum never reuses it.
    """
    cache = owner.__dict__.setdefault("_esp_cache", {})
    key = np.ascontiguousarray(log_lam).tobytes()
    E = cache.get(key)
    if E is None or E.shape[0] <= k:
        E = log_esp_table(log_lam, k)
        cache.clear()
        cache[key] = E
    return E[: k + 1]


def _sigmoid_diff(log_b: float, log_a: float) -> float:
    """b / (a + b) from logs, in [0, 1]; a = 0 gives 1 exactly, b = 0 gives 0."""
    if log_a == _NEG_INF:
        return 1.0
    if log_b == _NEG_INF:
        return 0.0
    x = log_b - log_a
    if x >= 0.0:
        return 1.0 / (1.0 + np.exp(-x))
    e = np.exp(x)
    return e / (1.0 + e)


def select_eigenvectors(E: np.ndarray, log_lam: np.ndarray, k: int,
                        uniforms: np.ndarray) -> np.ndarray:
    """Phase 1 of the k-DPP: indices J (sorted) with P(J) = Π_J λ_j / e_k(λ). O(r).

    ``E`` is :func:`log_esp_table` (at least k+1 rows); ``uniforms`` holds r = len(log_lam)
    pre-drawn U[0,1) values, ``uniforms[j]`` being used for eigenvalue j (scanned r−1..0).
    """
    r = log_lam.shape[0]
    if uniforms.shape[0] < r:
        raise ValueError(f"need {r} uniforms, got {uniforms.shape[0]}")
    if k > r or E[k, r] == _NEG_INF:
        raise ValueError(f"cannot select {k} eigenvectors: e_{k}(λ) = 0")
    keep = np.empty(k, dtype=np.int64)
    l = k
    for j in range(r, 0, -1):
        if l == 0:
            break
        p = _sigmoid_diff(log_lam[j - 1] + E[l - 1, j - 1], E[l, j - 1])
        if uniforms[j - 1] < p:
            l -= 1
            keep[l] = j - 1
    if l != 0:  # unreachable: the forced-inclusion rule guarantees l reaches 0
        raise AssertionError("k-DPP eigenvector selection did not terminate")
    return keep


def log_leave_one_out_esp(log_lam: np.ndarray, l: int) -> np.ndarray:
    """log e_l(λ_{−j}) for every j, from prefix and suffix log tables. O(rl).

    e_l(λ_{−j}) = Σ_{a=0..l} e_a(λ_1..λ_{j−1}) e_{l−a}(λ_{j+1}..λ_r): every term is
    non-negative, so a log-sum-exp gives it to relative accuracy (no deflation).
    """
    log_lam = np.asarray(log_lam, dtype=np.float64)
    r = log_lam.shape[0]
    if l < 0:
        return np.full(r, _NEG_INF)
    P = log_esp_table(log_lam, l)                     # P[a, j] over λ_1..λ_j
    Srev = log_esp_table(log_lam[::-1], l)            # Srev[b, t] over the last t values
    pre = P[:, :r]                                    # column j: items before j (0-based)
    suf = Srev[::-1, r - 1::-1]                       # row a: b = l − a; column j: after j
    terms = pre + suf                                 # (l+1) × r
    mx = np.max(terms, axis=0)
    out = np.full(r, _NEG_INF)
    ok = mx > _NEG_INF
    if np.any(ok):
        t = terms[:, ok] - mx[ok]
        out[ok] = mx[ok] + np.log(np.sum(np.exp(t), axis=0))
    return out


@dataclass(frozen=True)
class KdppSplit:
    """A k-DPP's eigen-split: ``forced`` (projection part, always kept), ``free`` indices,
    their ``log_lam`` and the number ``k_free`` of free eigenvectors to select."""

    forced: np.ndarray
    free: np.ndarray
    log_lam: np.ndarray
    k_free: int


def split_kdpp_spectrum(dpp: "DPP", k: int) -> KdppSplit:
    """Validate ``k`` against ``dpp`` and split its spectrum into forced and free parts.

    Raises ValueError when k is not a non-negative integer, exceeds the rank, or is
    smaller than the number of eigenvalues of K equal to 1.
    """
    k = as_count(k, "k")
    s = dpp.spectrum
    if k > s.rank:
        raise ValueError(
            f"k exceeds the rank of L (k = {k}, rank = {s.rank}): a k-DPP needs at least "
            "k linearly independent items"
        )
    proj = np.isinf(s.log_lam)
    forced = np.flatnonzero(proj)
    free = np.flatnonzero(~proj)
    if k < forced.size:
        raise ValueError(
            f"k = {k} is smaller than the number of eigenvalues of K equal to 1 "
            f"({forced.size}): every sample of this DPP has at least {forced.size} items"
        )
    return KdppSplit(forced, free, np.ascontiguousarray(s.log_lam[free]), k - forced.size)


def kdpp_inclusion_probabilities(dpp: "DPP", k: int) -> np.ndarray:
    """P(i ∈ X) for the k-DPP of ``dpp``: Σ_j V_ij² w_j with eigen-weights
    w_j = λ_j e_{k−1}(λ_{−j}) / e_k(λ) (1 on a projection part); Σ w = k. O(rk + nr).
    TypeError for anything but a symmetric :class:`DPP`."""
    require_symmetric_dpp(dpp, "kdpp_inclusion_probabilities")
    sp = split_kdpp_spectrum(dpp, k)
    s = dpp.spectrum
    w = np.zeros(s.rank)
    w[sp.forced] = 1.0
    if sp.k_free > 0:
        log_ek = cached_log_esp_table(dpp, sp.log_lam, sp.k_free)[sp.k_free, -1]
        loo = log_leave_one_out_esp(sp.log_lam, sp.k_free - 1)
        w[sp.free] = np.exp(np.minimum(sp.log_lam + loo - log_ek, 0.0))
    return np.clip((s.V * s.V) @ w, 0.0, 1.0)


def kdpp_phase_one(dpp: "DPP", k: int, gen: np.random.Generator) -> np.ndarray:
    """Phase 1 of the k-DPP samplers: the sorted eigenvector indices J (|J| = k), the
    projection part forced and the rest selected with ESP odds from ``gen.random(r_free)``.
    Validates k (ValueError when it exceeds the rank). O(r) after the cached table."""
    sp = split_kdpp_spectrum(dpp, k)
    E = cached_log_esp_table(dpp, sp.log_lam, sp.k_free)
    sel = select_eigenvectors(E, sp.log_lam, sp.k_free, gen.random(sp.free.size))
    return np.sort(np.concatenate((sp.forced, sp.free[sel])))
