"""Conditional-marginal oracle for a DPP or k-DPP.

q = 2 and x_i = 1 iff item i ∈ Y, with P(Y) ∝ det L_Y (L symmetric PSD, validated by
``DPP.from_likelihood``), restricted to |Y| = k for a k-DPP. A row pins an in-set A
(value 1), an out-set B (value 0); C is free.

1. B is dropped (L-ensembles are closed under restriction).
2. L_AA is Cholesky-factored; a failure, or a smallest squared pivot below
   1e−12·max diag L, means P[row] = 0: the row is all NaN.
3. L' = L_CC − L_CA L_AA⁻¹ L_AC (symmetrised), so that det L_{A∪T} = det L_AA · det L'_T.
4. DPP: P[i ∈ Y | row] = 1 − [(I + L')⁻¹]_ii (eigenvalues of I + L' are ≥ 1), clipped.
5. k-DPP: k' = k − |A| must lie in 0..|C| (else NaN). With L' = V diag(λ) Vᵀ (λ below
   1e−12·max λ set to 0), P[i ∈ Y] = Σ_m V_im² λ_m e_{k'−1}(λ_{−m}) / e_{k'}(λ); the
   elementary symmetric polynomials are computed on λ / max λ (scale-free, no cancellation);
   e_{k'} = 0 gives NaN.

Cost O(n³) per row (target n ≤ 300). Rows are computed one by one (batch invariance), and a
targeted answer is read off the full row, so both agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..core.validate import as_count
from ..dpp import DPP
from ..dpp._validate import require_symmetric_dpp
from .oracles import Oracle

__all__ = ["DPPOracle"]

_PIVOT_RTOL = 1e-12
_EIG_RTOL = 1e-12


class DPPOracle(Oracle):
    """Oracle for the DPP (``k=None``) or k-DPP with likelihood kernel L.

    ``dpp_or_L``: a symmetric :class:`parasample.dpp.DPP` (its likelihood kernel is formed
    densely) or a matrix L, validated by :meth:`parasample.dpp.DPP.from_likelihood` (square,
    finite, symmetric to 1e-12 relative, positive semidefinite up to rounding) with the
    same errors. ``k``: None or an integer in 0..n. O(n³) set-up.
    """

    def __init__(self, dpp_or_L, k: int | None = None):
        if isinstance(dpp_or_L, DPP):
            dpp = dpp_or_L
        elif hasattr(dpp_or_L, "likelihood_kernel"):  # a NonsymmetricDPP or another model
            require_symmetric_dpp(dpp_or_L, "DPPOracle")
        else:
            dpp = DPP.from_likelihood(dpp_or_L)  # the DPP validation, errors included
        L = np.ascontiguousarray(dpp.likelihood_kernel(), dtype=float)  # a fresh copy
        n = L.shape[0]
        if k is not None:
            k = as_count(k, "k")
            if k > n:
                raise ValueError(f"k must be an integer in 0..{n}, got {k}")
        self.L = L
        self.L.setflags(write=False)
        self.k = k
        self.n, self.q = n, 2
        self._diag_max = float(np.max(np.diag(L)))

    # ------------------------------------------------------------------ rows
    def _full_row(self, v, mask):
        n = self.n
        nan = np.full((n, 2), np.nan)
        A = np.flatnonzero(mask & (v == 1))
        C = np.flatnonzero(~mask)
        out = np.zeros((n, 2))
        pins = np.flatnonzero(mask)
        out[pins, v[pins]] = 1.0
        if self.k is not None:
            kp = self.k - A.size
            if not 0 <= kp <= C.size:
                return nan
        Lp = self._schur(A, C)
        if Lp is None:
            return nan
        if C.size == 0:
            return out
        if self.k is None:
            p = self._dpp_marginals(Lp)
        else:
            p = self._kdpp_marginals(Lp, kp)
            if p is None:
                return nan
        p = np.clip(p, 0.0, 1.0)
        out[C, 1] = p
        out[C, 0] = 1.0 - p
        return out

    def _schur(self, A, C):
        """L' on C given A ⊆ Y, or None when P[A ⊆ Y] = 0."""
        L = self.L
        LCC = L[np.ix_(C, C)]
        if A.size == 0:
            return LCC
        try:
            R = sla.cholesky(L[np.ix_(A, A)], lower=True)
        except (sla.LinAlgError, ValueError):
            return None
        piv = np.diag(R) ** 2
        if not np.all(np.isfinite(piv)) or not piv.min() >= _PIVOT_RTOL * self._diag_max:
            return None
        if C.size == 0:
            return LCC
        X = sla.solve_triangular(R, L[np.ix_(A, C)], lower=True)  # R⁻¹ L_AC
        Lp = LCC - X.T @ X
        return 0.5 * (Lp + Lp.T)

    @staticmethod
    def _dpp_marginals(Lp):
        m = Lp.shape[0]
        M = np.eye(m) + Lp
        inv = sla.cho_solve(sla.cho_factor(M, lower=True), np.eye(m))
        return 1.0 - np.diag(inv)

    @staticmethod
    def _kdpp_marginals(Lp, kp):
        m = Lp.shape[0]
        if kp == 0:
            return np.zeros(m)
        lam, V = np.linalg.eigh(Lp)
        top = float(lam.max())
        if not top > 0:
            return None
        lam = np.where(lam < _EIG_RTOL * top, 0.0, lam) / top
        # E[j, :kp+1] = e_0..e_kp of λ without λ_j (leave-one-out), all j at once.
        E = np.zeros((m, kp + 1))
        E[:, 0] = 1.0
        full = np.zeros(kp + 1)
        full[0] = 1.0
        for t in range(m):
            lt = lam[t]
            if lt == 0.0:
                continue
            for j in range(kp, 0, -1):
                full[j] += lt * full[j - 1]
            upd = lt * E[:, :-1]
            upd[t] = 0.0  # row t leaves λ_t out
            E[:, 1:] += upd
        ek = full[kp]
        if not ek > 0:
            return None
        pm = lam * E[:, kp - 1] / ek  # P[eigenvector m selected]
        return (V * V) @ pm
