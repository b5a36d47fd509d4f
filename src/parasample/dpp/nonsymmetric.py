"""Nonsymmetric DPPs (NDPPs) and the rejection sampler of Han et al.

An NDPP has a likelihood kernel L whose symmetric part S = (L + Lᵀ)/2 is PSD; with
A = (L − Lᵀ)/2 skew, L = S + A. Then every principal minor is ≥ 0, I + L is invertible,
P(X = Y) = det L_Y / det(I + L) and P(Y ⊆ X) = det K_Y with K = I − (I + L)⁻¹
(nonsymmetric).

Two forms:

- dense, :meth:`NonsymmetricDPP.from_likelihood` — K by LU in O(n³);
- low-rank, :meth:`NonsymmetricDPP.from_factors` with L = V Vᵀ + B (D − Dᵀ) Bᵀ
  (Han et al., ICLR'22): L = Z X Zᵀ with Z = [V, B] (n×r), X = diag(I, D − Dᵀ), and
  K = Z W Zᵀ with W = X (I_r + ZᵀZ X)⁻¹ — O(n r²), L and K never formed.

Samplers: :func:`parasample.dpp.sequential.sample_sequential` (dense LU, or the low-rank
loop for factors), :func:`parasample.dpp.sequential.sample_lowrank` (O(n r²)) and
:func:`sample_rejection` here: draw Y from the symmetric DPP with L̂ = S + |A|,
|A| = (AᵀA)^{1/2}, and accept with probability det L_Y / det L̂_Y ≤ 1. The expected number
of trials is det(I + L̂)/det(I + L), known before sampling.
"""

from __future__ import annotations

from functools import cached_property
from typing import Iterable, Literal

import numpy as np
import scipy.linalg as sla

from ..core.cost import Cost
from ..core.errors import NumericalError
from ..core.result import SampleResult
from ..core.rng import RngLike, as_generator
from ._validate import as_real_matrix, as_square_matrix, as_subset, psd_tolerance
from .kernel import DPP
from .sequential import sample_lowrank, sample_sequential

# sample_lowrank / sample_sequential live in .sequential; re-imported here for convenience.
__all__ = ["NonsymmetricDPP", "sample_rejection"]

Form = Literal["dense", "factors"]


class NonsymmetricDPP:
    """A finite DPP with a nonsymmetric likelihood kernel L, L + Lᵀ ⪰ 0. Build it with
    :meth:`from_likelihood` or :meth:`from_factors`."""

    def __init__(self, form: Form, *, L: np.ndarray | None = None,
                 Z: np.ndarray | None = None, X: np.ndarray | None = None, n_sym: int = 0):
        # Private: use the from_* constructors, which validate.
        self.form: Form = form
        self._L = L
        self._Z = Z
        self._X = X
        self._n_sym = n_sym  # number of columns of V inside Z = [V, B]
        self.n: int = int(L.shape[0] if L is not None else Z.shape[0])

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_likelihood(cls, L) -> "NonsymmetricDPP":
        """NDPP with dense likelihood kernel L (square, finite, (L + Lᵀ)/2 ⪰ 0)."""
        A = as_square_matrix(L, "L")
        sym = (A + A.T) / 2.0
        lam = np.linalg.eigvalsh(sym)
        scale = max(float(lam.max()), float(np.abs(A).max()))
        tau = psd_tolerance(A.shape[0], scale)
        if lam.min() < -tau:
            raise ValueError(
                "the symmetric part (L + Lᵀ)/2 of L is not positive semidefinite: its most "
                f"negative eigenvalue is {lam.min():.6g} (tolerance {tau:.3g}); an NDPP "
                "needs L + Lᵀ ⪰ 0"
            )
        return cls("dense", L=A)

    @classmethod
    def from_factors(cls, V, B, D) -> "NonsymmetricDPP":
        """Low-rank NDPP with L = V Vᵀ + B (D − Dᵀ) Bᵀ; V is n×k, B is n×m, D is m×m
        (k or m may be 0). Valid by construction: the symmetric part V Vᵀ is PSD."""
        V = as_real_matrix(V, "V")
        B = as_real_matrix(B, "B")
        D = as_real_matrix(D, "D")
        n = V.shape[0]
        if n == 0:
            raise ValueError("V is empty: a DPP needs at least one item")
        if B.shape[0] != n:
            raise ValueError(
                f"V and B must have the same number of rows, got {V.shape} and {B.shape}"
            )
        if D.shape != (B.shape[1], B.shape[1]):
            raise ValueError(
                f"D must be square with as many rows as B has columns ({B.shape[1]}), "
                f"got shape {D.shape}"
            )
        k, m = V.shape[1], B.shape[1]
        X = np.zeros((k + m, k + m))
        X[:k, :k] = np.eye(k)
        X[k:, k:] = D - D.T
        Z = np.ascontiguousarray(np.hstack([V, B]))
        return cls("factors", Z=Z, X=X, n_sym=k)

    # ------------------------------------------------------------------ kernels
    def likelihood_kernel(self) -> np.ndarray:
        """Dense n×n likelihood kernel L (formed as Z X Zᵀ for factors, O(n² r))."""
        if self.form == "dense":
            return self._L.copy()
        return self._Z @ self._X @ self._Z.T

    def symmetric_part(self) -> np.ndarray:
        """S = (L + Lᵀ)/2 (dense)."""
        L = self.likelihood_kernel()
        return (L + L.T) / 2.0

    @cached_property
    def _lu(self):
        """LU factorisation of I + L (dense form), O(n³)."""
        return sla.lu_factor(np.eye(self.n) + self._L, check_finite=False)

    @cached_property
    def _lowrank_factors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(Z, W) with K = Z W Zᵀ, W = X (I_r + ZᵀZ X)⁻¹ (factors only; else None)."""
        if self.form == "dense":
            return None
        Z, X = self._Z, self._X
        r = Z.shape[1]
        M = np.eye(r) + (Z.T @ Z) @ X
        W = np.linalg.solve(M.T, X.T).T  # X M⁻¹
        return Z, np.ascontiguousarray(W)

    @cached_property
    def log_normalizer(self) -> float:
        """log det(I + L) (det(I_r + ZᵀZ X) for factors); raises if not positive."""
        if self.form == "dense":
            lu, piv = self._lu
            d = np.diag(lu)
            sign = np.prod(np.sign(d)) * (-1.0) ** np.count_nonzero(piv != np.arange(self.n))
            logdet = float(np.sum(np.log(np.abs(d))))
        else:
            r = self._Z.shape[1]
            sign, logdet = np.linalg.slogdet(np.eye(r) + (self._Z.T @ self._Z) @ self._X)
        if not sign > 0:
            raise NumericalError(
                "det(I + L) is not positive to working precision; L + Lᵀ should be PSD — "
                "rescale the kernel"
            )
        return float(logdet)

    def marginal_kernel(self) -> np.ndarray:
        """The n×n marginal kernel K = I − (I + L)⁻¹ (a fresh copy; nonsymmetric)."""
        return self._marginal_kernel.copy()

    @cached_property
    def _marginal_kernel(self) -> np.ndarray:
        if self.form == "dense":
            K = np.eye(self.n) - sla.lu_solve(self._lu, np.eye(self.n), check_finite=False)
            return np.ascontiguousarray(K)
        Z, W = self._lowrank_factors
        return np.ascontiguousarray(Z @ W @ Z.T)

    @cached_property
    def rank(self) -> int:
        """Numerical rank of L (O(n³) dense; O(n r²) for factors)."""
        if self.form == "dense":
            return int(np.linalg.matrix_rank(self._L))
        if self._Z.shape[1] == 0:
            return 0
        Q, R = np.linalg.qr(self._Z)
        return int(np.linalg.matrix_rank(R @ self._X @ R.T))

    # ------------------------------------------------------------------ quantities
    def inclusion_probabilities(self) -> np.ndarray:
        """P(i ∈ X) = K_ii (O(n r²) for factors, no dense K)."""
        if self.form == "dense":
            d = np.diag(self._marginal_kernel).copy()
        else:
            Z, W = self._lowrank_factors
            d = np.einsum("ij,ij->i", Z @ W, Z)
        return np.clip(d, 0.0, 1.0)

    def expected_size(self) -> float:
        """E|X| = tr K."""
        return float(np.sum(self.inclusion_probabilities()))

    def likelihood_submatrix(self, rows, cols=None) -> np.ndarray:
        """L[rows][:, cols] (cols defaults to rows), without forming L for factors."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = rows if cols is None else np.asarray(cols, dtype=np.int64)
        if self.form == "dense":
            return self._L[np.ix_(rows, cols)]
        return self._Z[rows] @ self._X @ self._Z[cols].T

    @cached_property
    def zero_tolerance(self) -> float:
        """τ = 10·n·ε·σ_max(L): a submatrix L_S whose smallest singular value is ≤ τ is
        singular to working precision (O(n³) dense; O(n r²) for factors; cached)."""
        if self.form == "dense":
            smax = float(np.linalg.norm(self._L, 2)) if self.n else 0.0
        elif self._Z.shape[1] == 0:
            smax = 0.0
        else:
            _, R = np.linalg.qr(self._Z)
            smax = float(np.linalg.norm(R @ self._X @ R.T, 2))
        return psd_tolerance(self.n, smax)

    def log_prob(self, subset: Iterable[int]) -> float:
        """log P(X = S) = log det L_S − log det(I + L), O(|S|³).

        −inf (probability zero) when |S| exceeds the rank of L, when the smallest singular
        value of L_S is ≤ τ = ``zero_tolerance`` (dependent items, even where rounding leaves
        the determinant a tiny nonzero), or when det L_S ≤ 0.
        """
        S = as_subset(subset, self.n)
        if S.size == 0:
            return -self.log_normalizer
        if S.size > self.rank:
            return -np.inf
        M = self.likelihood_submatrix(S)
        if np.linalg.svd(M, compute_uv=False).min() <= self.zero_tolerance:
            return -np.inf
        ld = _logdet_signed(M)
        if ld == -np.inf:
            return -np.inf
        return ld - self.log_normalizer

    # ------------------------------------------------------------------ proposal
    @cached_property
    def proposal(self) -> DPP:
        """The symmetric DPP with L̂ = S + |A|, |A| = (AᵀA)^{1/2} (cached).

        Dense: |A| = V Σ Vᵀ from the SVD A = U Σ Vᵀ, O(n³). Factors: B = Q R_B,
        M = R_B (D − Dᵀ) R_Bᵀ = U Σ Pᵀ, |A| = Q P Σ Pᵀ Qᵀ, so L̂ = Ẑ Ẑᵀ with
        Ẑ = [V, Q P Σ^{1/2}] — a feature DPP, O(n r²).
        """
        if self.form == "dense":
            L = self._L
            S, A = (L + L.T) / 2.0, (L - L.T) / 2.0
            _, sv, Pt = np.linalg.svd(A)
            absA = (Pt.T * sv) @ Pt
            Lhat = S + (absA + absA.T) / 2.0
            return DPP.from_likelihood(Lhat)
        k = self._n_sym
        Vf, Bf = self._Z[:, :k], self._Z[:, k:]
        if Bf.shape[1] == 0:
            return DPP.from_features(Vf)
        Q, RB = np.linalg.qr(Bf)
        M = RB @ self._X[k:, k:] @ RB.T
        _, sv, Pt = np.linalg.svd(M)
        Zhat = np.hstack([Vf, (Q @ Pt.T) * np.sqrt(sv)])
        return DPP.from_features(Zhat)

    @cached_property
    def expected_trials(self) -> float:
        """Expected rejection trials det(I + L̂)/det(I + L) (≥ 1)."""
        return float(np.exp(self.proposal.log_normalizer - self.log_normalizer))

    def __repr__(self) -> str:
        return f"NonsymmetricDPP(form={self.form!r}, n={self.n})"


# ---------------------------------------------------------------------------- sampler
def sample_rejection(
    ndpp: NonsymmetricDPP, *, rng: RngLike = None, max_expected_trials: float = 100.0
) -> SampleResult:
    """Exact NDPP sample by rejection from the symmetric proposal DPP(L̂) (Han et al.).

    Y ~ DPP(L̂) is accepted with probability det L_Y / det L̂_Y. The expected number of
    trials T = det(I + L̂)/det(I + L) is computed first; if T > ``max_expected_trials`` the
    sample comes from the sequential sampler instead (O(n r²) or O(n³)), and so does an
    (astronomically unlikely) run of max(1000, 50 T) rejections — exact either way.
    Each trial costs one spectral proposal sample plus two |Y|×|Y| determinants.

    Returns ``SampleResult(sample, Cost(trials, trials), info)`` with info keys
    ``trials``, ``expected_trials`` and ``method`` ("rejection" or "sequential").
    """
    if not isinstance(ndpp, NonsymmetricDPP):
        raise TypeError(f"expected a NonsymmetricDPP, got {type(ndpp).__name__}")
    if isinstance(max_expected_trials, bool) or not (
        isinstance(max_expected_trials, (int, float)) and max_expected_trials >= 1
    ):
        raise ValueError(
            f"max_expected_trials must be a number ≥ 1, got {max_expected_trials!r}"
        )
    gen = as_generator(rng)
    expected = ndpp.expected_trials
    info: dict = {"expected_trials": expected}
    if expected > max_expected_trials:
        Y = sample_sequential(ndpp, rng=gen)
        info.update(trials=0, method="sequential",
                    reason=f"expected trials {expected:.3g} > {max_expected_trials:g}")
        return SampleResult(Y, Cost(0, 0), info)
    cap = int(max(1000, np.ceil(50 * expected)))
    for t in range(1, cap + 1):
        Y = _propose(ndpp, gen)
        if gen.random() < _acceptance(ndpp, Y):
            info.update(trials=t, method="rejection")
            return SampleResult(Y, Cost(t, t), info)
    Y = sample_sequential(ndpp, rng=gen)
    info.update(trials=cap, method="sequential", reason=f"{cap} rejections in a row")
    return SampleResult(Y, Cost(cap, cap), info)


def _propose(ndpp: NonsymmetricDPP, gen: np.random.Generator) -> np.ndarray:
    """One draw from the symmetric proposal DPP(L̂) by the spectral sampler."""
    from .spectral import sample_exact  # written alongside; imported lazily

    return np.asarray(sample_exact(ndpp.proposal, rng=gen), dtype=np.int64)


def _acceptance(ndpp: NonsymmetricDPP, Y: np.ndarray) -> float:
    """det L_Y / det L̂_Y ∈ [0, 1] (raises NumericalError if it exceeds 1 + 1e-6)."""
    if Y.size == 0:
        return 1.0
    num = _logdet_signed(ndpp.likelihood_submatrix(Y))
    if num == -np.inf:
        return 0.0
    den = _logdet_signed(ndpp.proposal.likelihood_submatrix(Y))
    if den == -np.inf:
        raise NumericalError(
            f"the proposal drew a set of size {Y.size} whose proposal determinant is not "
            "positive to working precision; the kernel is too ill-conditioned for "
            "rejection sampling — use sample_sequential"
        )
    ratio = float(np.exp(num - den))
    if ratio > 1.0 + 1e-6:
        raise NumericalError(
            f"acceptance ratio det L_Y / det L̂_Y = {ratio:.9g} > 1: the proposal bound "
            "failed numerically — use sample_sequential"
        )
    return min(ratio, 1.0)


# ---------------------------------------------------------------------------- helpers
def _logdet_signed(M: np.ndarray) -> float:
    """log det M by LU with the sign tracked; −inf when det M ≤ 0."""
    if M.shape[0] == 0:
        return 0.0
    sign, logdet = np.linalg.slogdet(M)
    return float(logdet) if sign > 0 else -np.inf
