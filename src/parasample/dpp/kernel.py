"""The symmetric finite DPP: L-ensembles, K-ensembles and low-rank feature form.

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
import scipy.fft as sfft
import scipy.linalg as sla

from ._validate import (
    as_real_matrix, as_square_matrix, as_subset, check_symmetric, psd_tolerance,
)

__all__ = ["DPP", "Spectrum", "canonical_eigenbasis"]

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

    @cached_property
    def zero_tolerance(self) -> float:
        """τ = 10·n·ε_mach·λ_max(L): the level at which the spectrum treats eigenvalues of L
        as rounding noise (they do not count in ``rank``); ``log_prob`` applies the same τ
        to the Cholesky pivots of L_S."""
        log_lam = self.spectrum.log_lam
        finite = log_lam[np.isfinite(log_lam)]
        return psd_tolerance(self.n, float(np.exp(finite.max())) if finite.size else 0.0)

    def log_prob(self, subset: Iterable[int]) -> float:
        """log P(X = S) = log det L_S − log det(I+L), by Cholesky of L_S; O(|S|³).

        −inf (probability zero) when |S| > rank, or when a Cholesky pivot of L_S — the
        squared distance of an item from the span of the items before it, in sorted order
        — is ≤ τ = ``zero_tolerance``: a set with dependent items then scores −inf even
        when rounding leaves its determinant a tiny nonzero. With a projection part (K
        with eigenvalue 1), P(X = S) = |det(K − I_S̄)| and the rule is the smallest
        |eigenvalue| of K − I_S̄ ≤ 10·n·ε_mach.
        """
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
            ev = np.abs(np.linalg.eigvalsh(M))
            if ev.min() <= psd_tolerance(self.n, 1.0):
                return -np.inf
            return float(np.sum(np.log(ev)))
        if S.size == 0:
            return -self.log_normalizer
        return _logdet_pivots(self.likelihood_submatrix(S), self.zero_tolerance) \
            - self.log_normalizer

    def __repr__(self) -> str:
        return f"DPP(kind={self.kind!r}, n={self.n})"


def _logdet_pivots(A: np.ndarray, tau: float) -> float:
    """log det of a PSD matrix by Cholesky; −inf when a pivot c_jj² is ≤ tau (or the
    factorisation fails), i.e. when A is singular to within rounding."""
    try:
        c = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        return -np.inf
    d = np.diag(c)
    if not np.all(d * d > tau):
        return -np.inf
    return float(2.0 * np.sum(np.log(d)))


#: Sign rule of :func:`canonical_eigenbasis`: the first entry with |v_i| ≥ this · max|v| is
#: made positive (not 1, so that rounding between equal-magnitude entries cannot flip it).
_SIGN_PIVOT = 0.9
#: Seed of the random signs in the fixed orthogonal probe T of :func:`canonical_eigenbasis`.
_PROBE_SEED = 0x5EED


def canonical_eigenbasis(values: np.ndarray, V: np.ndarray, tol: float, *, first: int = 0,
                         overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A canonical form of eigenpairs (``values`` ascending, V n×r orthonormal) in columns
    ``first``.. (earlier columns are left alone; the caller drops them).

    A run of eigenvalues within ``tol`` of its first one is numerically repeated: eigh may
    return any orthonormal basis V_c of that eigenspace, and which one depends on rounding
    (e.g. the number of BLAS threads). The run gets its mean eigenvalue and a basis that
    depends only on the eigenspace, through a fixed orthogonal n×n matrix T (two rounds of
    random signs and DCT, applied in O(n log n) per column):

    - m ≤ n/2, or V not square: V_c Q with Q R = (TᵀV_c)[:m]ᵀ, diag R > 0, which is the same
      for V_c O (then Q → OᵀQ); O(n m² + n m log n);
    - m > n/2 with V square: a canonical basis G of Tᵀ span(V_o) (V_o: the other k = n − m
      columns, spanning the complement), then T H[:, k:] for the Householder QR
      G = H [R; 0]; O(n m k + n m log n).

    Every column is then sign-normalised (its first entry with |v_i| ≥ 0.9·max|v| is
    positive). The kernel changes by at most the spread of a run (≤ tol).
    ``overwrite`` lets a float64 V be changed in place.
    """
    values = np.array(values, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64) if overwrite else np.array(V, dtype=np.float64)
    n, r = V.shape
    if np.any(np.diff(values[first:]) < 0):
        order = np.concatenate((np.arange(first),
                                first + np.argsort(values[first:], kind="stable")))
        values, V = values[order], V[:, order]
    for start, stop in _runs(values, first, tol):
        values[start:stop] = np.mean(values[start:stop])
        if r == n and 2 * (stop - start) > n:
            rest = np.concatenate((np.arange(start), np.arange(stop, r)))
            V[:, start:stop] = _complement_basis(V[:, rest])
        else:
            V[:, start:stop] = V[:, start:stop] @ _canonical_rotation(V[:, start:stop])
    if r > first:
        W = V[:, first:]
        mag = np.abs(W)
        top = np.argmax(mag >= _SIGN_PIVOT * mag.max(axis=0), axis=0)
        W *= np.where(W[top, np.arange(r - first)] < 0, -1.0, 1.0)  # in place
    return values, V


def _runs(values: np.ndarray, first: int, tol: float) -> list[tuple[int, int]]:
    """[start, stop) of each run of ≥ 2 ascending values from ``first`` on, a run ending
    where a value exceeds the run's first by more than ``tol``. O(r), vectorised when no
    two neighbours are within ``tol``."""
    close = first + np.flatnonzero(np.diff(values[first:]) <= tol)  # v[i+1] − v[i] ≤ tol
    runs = []
    for chain in np.split(close, np.flatnonzero(np.diff(close) > 1) + 1) if close.size else []:
        lo, hi = int(chain[0]), int(chain[-1]) + 2  # the chain covers values lo..hi−1
        start = lo
        for j in range(lo + 1, hi + 1):
            if j == hi or values[j] - values[start] > tol:
                if j - start > 1:
                    runs.append((start, j))
                start = j
    return runs


def _probe_signs(n: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(_PROBE_SEED)
    return gen.choice([-1.0, 1.0], size=(n, 1)), gen.choice([-1.0, 1.0], size=(n, 1))


def _probe_apply(X: np.ndarray) -> np.ndarray:
    """T X for the fixed orthogonal T = C D₁ C D₂ (C the orthonormal DCT-II, D random
    signs): T looks random to any fixed subspace. O(n log n) per column; the columns are
    transformed independently, so the number of FFT workers does not change the result."""
    d1, d2 = _probe_signs(X.shape[0])
    Y = sfft.dct(d2 * X, type=2, norm="ortho", axis=0, workers=-1)
    return sfft.dct(d1 * Y, type=2, norm="ortho", axis=0, workers=-1)


def _probe_transpose(A: np.ndarray) -> np.ndarray:
    """Tᵀ A = D₂ Cᵀ D₁ Cᵀ A. O(n log n) per column."""
    d1, d2 = _probe_signs(A.shape[0])
    Y = sfft.idct(A, type=2, norm="ortho", axis=0, workers=-1)
    return d2 * sfft.idct(d1 * Y, type=2, norm="ortho", axis=0, workers=-1)


def _canonical_rotation(Vc: np.ndarray, mixed: bool = False) -> np.ndarray:
    """Q (m×m orthogonal) with Q R = (TᵀV_c)[:m]ᵀ, diag R > 0, so that V_c Q depends only
    on span V_c. ``mixed``: V_c is already Tᵀ times a basis; then Q R = V_c[:m]ᵀ, and the
    first m rows of V_c Q are Rᵀ (lower triangular, positive diagonal). O(n m log n + m³)."""
    m = Vc.shape[1]
    Q, R = np.linalg.qr((Vc if mixed else _probe_transpose(Vc))[:m].T)
    return Q * np.where(np.diag(R) < 0, -1.0, 1.0)


def _complement_basis(Vo: np.ndarray) -> np.ndarray:
    """A canonical orthonormal basis (n×m) of the complement of span V_o (n×k, m = n − k):
    G = Tᵀ V_o Q (canonical, orthonormal, G[:k] lower triangular with positive diagonal,
    so that the Householder signs are not decided by rounding), the Householder QR
    G = H [R; 0], then T H[:, k:]. O(n m k + n m log n)."""
    n, k = Vo.shape
    X = np.eye(n, n - k, -k)  # [0; I_m]
    if k:
        G = _probe_transpose(Vo)
        G = G @ _canonical_rotation(G, mixed=True)
        (qr, tau), _ = sla.qr(G, mode="raw")
        lwork = int(sla.lapack.dormqr("L", "N", qr, tau, X, -1)[1][0])
        X, _, info = sla.lapack.dormqr("L", "N", qr, tau, X, max(lwork, 1))
        if info != 0:
            raise np.linalg.LinAlgError(f"dormqr failed (info = {info})")
    return _probe_apply(X)


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
    first = int(np.count_nonzero(lam <= tau))  # ascending: the kept λ > τ are a suffix
    lam, V = canonical_eigenbasis(lam, V, tau, first=first, overwrite=True)
    lam, V = lam[first:], V[:, first:]
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
    first = int(np.count_nonzero(mu <= tau))  # ascending: the kept μ > τ are a suffix
    mu = np.where(mu >= 1.0 - tau, 1.0, mu)
    mu, V = canonical_eigenbasis(mu, V, tau, first=first, overwrite=True)
    mu, V = mu[first:], V[:, first:]
    one = mu >= 1.0 - tau
    mu = np.where(one, 1.0, mu)
    one_minus = np.where(one, 0.0, 1.0 - mu)
    with np.errstate(divide="ignore"):
        log_lam = np.where(one, np.inf, np.log(mu) - np.log1p(-np.where(one, 0.5, mu)))
    return Spectrum(np.ascontiguousarray(V), mu, one_minus, log_lam)


def _features_spectrum(B: np.ndarray) -> Spectrum:
    """Spectrum of L = B Bᵀ from the d×d dual when d < n (feature form)."""
    n, d = B.shape
    if d >= n:
        return _likelihood_spectrum(*np.linalg.eigh(B @ B.T))
    lam, W = np.linalg.eigh(B.T @ B)
    tau = psd_tolerance(n, lam.max(initial=0.0))
    first = int(np.count_nonzero(lam <= tau))
    # canonical in R^d (cheap); V = B W λ^{-1/2} is then canonical too
    lam, W = canonical_eigenbasis(lam, W, tau, first=first, overwrite=True)
    lam, W = lam[first:], W[:, first:]
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
            V, lam = U[:, keep][:, ::-1], lam_all[keep][::-1]  # ascending, as eigh
            lam, V = canonical_eigenbasis(lam, V, tau)
    return Spectrum(
        V=np.ascontiguousarray(V),
        mu=lam / (1.0 + lam),
        one_minus_mu=1.0 / (1.0 + lam),
        log_lam=np.log(lam),
    )
