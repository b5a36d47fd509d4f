"""The symmetric finite DPP: L-ensembles, K-ensembles and low-rank feature form (spec §1).

A DPP on items ``0..n-1`` is given by a likelihood kernel L (P(X=S) = det L_S / det(I+L)),
a marginal kernel K (P(S ⊆ X) = det K_S, 0 ⪯ K ⪯ I) or features B (L = B Bᵀ, never
formed). The object is immutable; factorisations are computed lazily and cached.

Cost: the spectrum costs O(n³) for dense kernels and O(n d² + d³) for features with d < n.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Literal

import numpy as np
import scipy.linalg as sla

from ._validate import (
    as_real_matrix, as_square_matrix, as_subset, check_symmetric, psd_tolerance,
)

__all__ = ["DPP", "Spectrum"]

Kind = Literal["likelihood", "correlation", "features"]


@dataclass(frozen=True)
class Spectrum:
    """Eigen-decomposition restricted to the non-null part.

    ``V`` (n×r) orthonormal eigenvectors, ``mu`` = λ/(1+λ) ∈ (0, 1] the eigenvalues of K,
    ``one_minus_mu`` = 1/(1+λ) computed without cancellation, ``log_lam`` = log λ
    (+inf on the projection part μ = 1, which only K-ensembles can have).
    """

    V: np.ndarray
    mu: np.ndarray
    one_minus_mu: np.ndarray
    log_lam: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.mu.shape[0])

    @property
    def lam(self) -> np.ndarray:
        """Eigenvalues λ of L (+inf on the projection part)."""
        with np.errstate(over="ignore"):
            return np.exp(self.log_lam)


class DPP:
    """A symmetric finite DPP. Build it with :meth:`from_likelihood`,
    :meth:`from_correlation` or :meth:`from_features`."""

    def __init__(self, kind: Kind, matrix: np.ndarray, spectrum: Spectrum | None = None):
        # Private: use the from_* constructors, which validate.
        self.kind: Kind = kind
        self._matrix = matrix
        self.n: int = int(matrix.shape[0])
        if spectrum is not None:
            self.__dict__["spectrum"] = spectrum

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_likelihood(cls, L) -> "DPP":
        """DPP with likelihood kernel L (symmetric PSD; dense array or scipy sparse)."""
        A = as_square_matrix(L, "L")
        A = check_symmetric(
            A, "L", "; for a nonsymmetric kernel use parasample.dpp.NonsymmetricDPP"
        )
        dpp = cls("likelihood", A)
        _ = dpp.spectrum  # validates PSD-ness now, before any sampling work
        return dpp

    @classmethod
    def from_correlation(cls, K) -> "DPP":
        """DPP with marginal kernel K (symmetric, 0 ⪯ K ⪯ I; eigenvalue 1 allowed)."""
        A = as_square_matrix(K, "K")
        A = check_symmetric(A, "K")
        dpp = cls("correlation", A)
        _ = dpp.spectrum
        return dpp

    @classmethod
    def from_features(cls, B) -> "DPP":
        """DPP with L = B Bᵀ for an n×d feature matrix B (L is never formed)."""
        A = as_real_matrix(B, "features B")
        if A.shape[0] == 0 or A.shape[1] == 0:
            raise ValueError(f"features B must be non-empty, got shape {A.shape}")
        return cls("features", A)

    # ------------------------------------------------------------------ factorisations
    @cached_property
    def spectrum(self) -> Spectrum:
        """Non-null eigenpairs (cached). Raises ValueError for a non-PSD kernel."""
        if self.kind == "features":
            return _features_spectrum(self._matrix)
        lam, V = np.linalg.eigh(self._matrix)
        if self.kind == "likelihood":
            return _likelihood_spectrum(lam, V)
        return _correlation_spectrum(lam, V)

    @property
    def rank(self) -> int:
        """Rank of L (number of eigenvalues kept after clipping)."""
        return self.spectrum.rank

    @property
    def has_projection_part(self) -> bool:
        """True when K has eigenvalue 1 (then no likelihood kernel exists)."""
        return bool(np.any(np.isinf(self.spectrum.log_lam)))

    @cached_property
    def log_normalizer(self) -> float:
        """log det(I + L) = Σ log1p λ_j (inf when K has eigenvalue 1)."""
        return float(-np.sum(np.log(self.spectrum.one_minus_mu)))

    # ------------------------------------------------------------------ quantities
    def marginal_kernel(self) -> np.ndarray:
        """The n×n marginal kernel K = I − (I+L)⁻¹ (a fresh copy)."""
        return self._marginal_kernel.copy()

    @cached_property
    def _marginal_kernel(self) -> np.ndarray:
        if self.kind == "correlation":
            return self._matrix
        if self.kind == "likelihood" and "spectrum" not in self.__dict__:
            n = self.n
            c = sla.cho_factor(np.eye(n) + self._matrix, lower=True)
            K = np.eye(n) - sla.cho_solve(c, np.eye(n))
            return (K + K.T) / 2.0
        s = self.spectrum
        K = (s.V * s.mu) @ s.V.T
        return (K + K.T) / 2.0

    def inclusion_probabilities(self) -> np.ndarray:
        """P(i ∈ X) = K_ii = Σ_j μ_j V_ij², O(n r)."""
        s = self.spectrum
        return np.clip((s.V * s.V) @ s.mu, 0.0, 1.0)

    def expected_size(self) -> float:
        """E|X| = Σ_j μ_j."""
        return float(np.sum(self.spectrum.mu))

    def size_distribution(self) -> np.ndarray:
        """pmf of |X| on 0..rank (Poisson-binomial in μ), by a stable O(r²) recursion."""
        s = self.spectrum
        q = np.zeros(s.rank + 1)
        q[0] = 1.0
        for j in range(s.rank):
            shifted = np.concatenate(([0.0], q[:-1]))
            q = s.one_minus_mu[j] * q + s.mu[j] * shifted
        return q

    def likelihood_kernel(self) -> np.ndarray:
        """Dense n×n likelihood kernel L (forms B Bᵀ for features; K(I−K)⁻¹ for K)."""
        return self.likelihood_submatrix(np.arange(self.n))

    def likelihood_diagonal(self) -> np.ndarray:
        """diag L without forming L."""
        if self.kind == "likelihood":
            return np.diag(self._matrix).copy()
        if self.kind == "features":
            return np.einsum("ij,ij->i", self._matrix, self._matrix)
        s = self._require_likelihood()
        return (s.V * s.V) @ np.exp(s.log_lam)

    def likelihood_submatrix(self, rows, cols=None) -> np.ndarray:
        """L[rows][:, cols] (cols defaults to rows), reading only what is needed."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = rows if cols is None else np.asarray(cols, dtype=np.int64)
        if self.kind == "likelihood":
            return self._matrix[np.ix_(rows, cols)]
        if self.kind == "features":
            B = self._matrix
            return B[rows] @ B[cols].T
        s = self._require_likelihood()
        return (s.V[rows] * np.exp(s.log_lam)) @ s.V[cols].T

    def _require_likelihood(self) -> Spectrum:
        if self.has_projection_part:
            raise ValueError(
                "this DPP's marginal kernel K has eigenvalue 1, so it has no likelihood "
                "kernel L; use a K-based sampler (sample_exact, sample_sequential)"
            )
        return self.spectrum

    def log_prob(self, subset: Iterable[int]) -> float:
        """log P(X = S): log det L_S − log det(I+L) (−inf if S is impossible)."""
        S = as_subset(subset, self.n)
        if S.size > self.rank:
            return -np.inf
        if self.kind == "correlation" and self.has_projection_part:
            if S.size < int(np.sum(np.isinf(self.spectrum.log_lam))):
                return -np.inf  # the projection part always contributes its rank
            M = self._matrix.copy()
            out = np.ones(self.n, dtype=bool)
            out[S] = False
            M[out, out] -= 1.0
            sign, logdet = np.linalg.slogdet(M)
            return float(logdet) if sign != 0 else -np.inf
        if S.size == 0:
            return -self.log_normalizer
        return _logdet_psd(self.likelihood_submatrix(S)) - self.log_normalizer

    def __repr__(self) -> str:
        return f"DPP(kind={self.kind!r}, n={self.n})"


def _logdet_psd(A: np.ndarray) -> float:
    """log det of a PSD matrix by Cholesky; −inf when it is singular."""
    try:
        c = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        sign, logdet = np.linalg.slogdet(A)
        return float(logdet) if sign > 0 else -np.inf
    d = np.diag(c)
    if np.any(d <= 0.0):
        return -np.inf
    return float(2.0 * np.sum(np.log(d)))


def _not_psd(name: str, lam_min: float, tau: float) -> ValueError:
    return ValueError(
        f"{name} is not positive semidefinite: its most negative eigenvalue is "
        f"{lam_min:.6g} (tolerance {tau:.3g})"
    )


def _likelihood_spectrum(lam: np.ndarray, V: np.ndarray) -> Spectrum:
    n = V.shape[0]
    tau = psd_tolerance(n, lam.max(initial=0.0))
    if lam.min() < -tau:
        raise _not_psd("L", float(lam.min()), tau)
    keep = lam > tau
    lam, V = lam[keep], V[:, keep]
    return Spectrum(
        V=np.ascontiguousarray(V),
        mu=lam / (1.0 + lam),
        one_minus_mu=1.0 / (1.0 + lam),
        log_lam=np.log(lam),
    )


def _correlation_spectrum(mu: np.ndarray, V: np.ndarray) -> Spectrum:
    n = V.shape[0]
    tau = psd_tolerance(n, max(1.0, float(np.abs(mu).max(initial=0.0))))
    if mu.min() < -tau:
        raise _not_psd("K", float(mu.min()), tau)
    if mu.max() > 1.0 + tau:
        raise ValueError(
            f"K must satisfy K ⪯ I: its largest eigenvalue is {mu.max():.6g} > 1"
        )
    keep = mu > tau
    mu, V = np.minimum(mu[keep], 1.0), V[:, keep]
    one = mu >= 1.0 - tau
    mu = np.where(one, 1.0, mu)
    one_minus = np.where(one, 0.0, 1.0 - mu)
    with np.errstate(divide="ignore"):
        log_lam = np.where(one, np.inf, np.log(mu) - np.log1p(-np.where(one, 0.5, mu)))
    return Spectrum(np.ascontiguousarray(V), mu, one_minus, log_lam)


def _features_spectrum(B: np.ndarray) -> Spectrum:
    """Spectrum of L = B Bᵀ from the d×d dual when d < n (spec §1, features)."""
    n, d = B.shape
    if d >= n:
        return _likelihood_spectrum(*np.linalg.eigh(B @ B.T))
    lam, W = np.linalg.eigh(B.T @ B)
    tau = psd_tolerance(n, lam.max(initial=0.0))
    keep = lam > tau
    lam, W = lam[keep], W[:, keep]
    V = (B @ W) / np.sqrt(lam)
    if V.shape[1] and np.max(np.abs(V.T @ V - np.eye(V.shape[1]))) > 1e-10:
        try:
            R = np.linalg.cholesky(V.T @ V).T
            V = sla.solve_triangular(R, V.T, trans="T", lower=False).T
        except np.linalg.LinAlgError:
            V = None
        if V is None or np.max(np.abs(V.T @ V - np.eye(V.shape[1]))) > 1e-10:
            U, sv, _ = np.linalg.svd(B, full_matrices=False)
            lam_all = sv * sv
            keep = lam_all > psd_tolerance(n, lam_all.max(initial=0.0))
            V, lam = U[:, keep], lam_all[keep]
    return Spectrum(
        V=np.ascontiguousarray(V),
        mu=lam / (1.0 + lam),
        one_minus_mu=1.0 / (1.0 + lam),
        log_lam=np.log(lam),
    )
