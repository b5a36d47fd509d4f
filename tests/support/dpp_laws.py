"""Exact DPP laws by enumeration (n <= 12) and random test kernels."""

from __future__ import annotations

import numpy as np

from .stats import all_subsets

__all__ = ["dpp_law", "kdpp_law", "random_psd", "low_rank_psd", "ill_conditioned_psd",
           "random_nonsymmetric"]


def _det(M: np.ndarray) -> float:
    return float(np.linalg.det(M)) if M.shape[0] else 1.0


def dpp_law(L: np.ndarray) -> dict[tuple[int, ...], float]:
    """{S: det L_S / det(I+L)} over all subsets (works for nonsymmetric L too)."""
    n = L.shape[0]
    law = {S: max(_det(L[np.ix_(S, S)]), 0.0) for S in all_subsets(n)}
    Z = _det(np.eye(n) + L)
    return {S: p / Z for S, p in law.items()}


def kdpp_law(L: np.ndarray, k: int) -> dict[tuple[int, ...], float]:
    """{S: det L_S / e_k} over all k-subsets."""
    n = L.shape[0]
    law = {S: max(_det(L[np.ix_(S, S)]), 0.0) for S in all_subsets(n, k)}
    Z = sum(law.values())
    return {S: p / Z for S, p in law.items()}


def random_psd(n: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Dense full-rank PSD kernel."""
    A = rng.normal(size=(n, n)) * scale / np.sqrt(n)
    return A @ A.T + 0.05 * np.eye(n)


def low_rank_psd(n: int, r: int, rng: np.random.Generator) -> np.ndarray:
    B = rng.normal(size=(n, r))
    return B @ B.T


def ill_conditioned_psd(n: int, rng: np.random.Generator) -> np.ndarray:
    """Eigenvalues spread over 1e-12 .. 1e4 with a near-degenerate pair."""
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.logspace(-12, 4, n)
    lam[1] = lam[0] * (1 + 1e-14)
    L = (Q * lam) @ Q.T
    return (L + L.T) / 2


def random_nonsymmetric(n: int, rng: np.random.Generator) -> np.ndarray:
    """L = S + A with S PSD and A skew-symmetric (so L + Lᵀ ⪰ 0)."""
    S = random_psd(n, rng, scale=1.0)
    C = rng.normal(size=(n, n)) * 0.7
    return S + (C - C.T) / 2
