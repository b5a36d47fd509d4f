"""Exact spectral sampler for symmetric DPPs and k-DPPs (Hough–Krishnapur–Peres–Virág).

A symmetric DPP is a mixture of projection DPPs.

- **Phase 1.** Keep eigenvector j independently with probability μ_j = λ_j/(1+λ_j)
  (μ_j = 1 on a K-ensemble's projection part), giving J with m = |J|. For a k-DPP, J is
  drawn with P(J) = Π_J λ_j / e_k(λ) by the log-space ESP scan of :mod:`.esp`; the
  projection part is forced and the scan selects the remaining k − #forced. O(r) (plus the
  cached O(rk) ESP table).
- **Phase 2.** Sample the projection DPP K_J = V_J V_Jᵀ (exactly m items) by the chain rule:
  with d_i = ‖V_J[i]‖², draw i ∝ d (probability d_i/(m−s) at step s), then condition on i.
  The default is randomly pivoted Cholesky, c = (V_J V_J[i] − C_{:,<s} C_{i,<s}) / √d_i,
  d ← max(d − c², 0). Writing every column as c = V_J g, the g's are the Gram–Schmidt
  orthonormalisation of the picked rows in R^m, so the step costs one n×m matrix–vector
  product plus O(ms): O(nm²) per sample, in a numba kernel. The Householder reference
  keeps an orthonormal basis W of the remaining subspace (≈3× slower, orthonormal to
  machine precision). Both consume one pre-drawn uniform per step and give the same sets.

Numerics: each draw is normalised by the actual Σd; if |Σd − (m−s)| > 1e-6·m the sample is
redone with Householder; if Σd ≤ 1e-12·(m−s) a :class:`NumericalError` names the
conditioning of V_J.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np

from ..core.errors import NumericalError
from ..core.rng import RngLike, as_generator
from ._draw import draw_index
from ._validate import require_symmetric_dpp
from .esp import kdpp_phase_one

if TYPE_CHECKING:
    from .kernel import DPP

__all__ = ["sample_exact", "sample_exact_k"]

_OK, _DRIFT, _COLLAPSE = 0, 1, 2


# ----------------------------------------------------------------------------- public API
def sample_exact(dpp: "DPP", *, rng: RngLike = None) -> np.ndarray:
    """One exact sample of the DPP (sorted int64 array). O(r + n m²) after the spectrum.

    Phase 1 draws r uniforms (keep j iff u_j < μ_j), Phase 2 draws m = |J| uniforms.
    Raises TypeError for anything but a symmetric :class:`DPP` (before drawing).
    """
    require_symmetric_dpp(dpp, "sample_exact")
    gen = as_generator(rng)
    s = dpp.spectrum
    J = np.flatnonzero(gen.random(s.rank) < s.mu)
    return _sample_projection(s.V, J, gen.random(J.size))


def sample_exact_k(dpp: "DPP", k: int, *, rng: RngLike = None) -> np.ndarray:
    """One exact sample of the k-DPP P(S) ∝ det L_S, |S| = k (sorted int64 array).

    Raises ValueError if ``k`` is not a non-negative integer, exceeds the rank of L, or is
    smaller than the number of eigenvalues of K equal to 1, and TypeError for anything but
    a symmetric :class:`DPP` (both before drawing). O(r + n k²) per sample after the cached
    O(rk) ESP table.
    """
    require_symmetric_dpp(dpp, "sample_exact_k")
    gen = as_generator(rng)
    J = kdpp_phase_one(dpp, k, gen)
    s = dpp.spectrum
    return _sample_projection(s.V, J, gen.random(J.size))


# ----------------------------------------------------------------------------- Phase 2
def _sample_projection(V: np.ndarray, J: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    if J.size == 0:
        return np.zeros(0, dtype=np.int64)
    VJ = np.ascontiguousarray(V[:, J])
    return np.sort(_project_cholesky(VJ, uniforms))


def _project_cholesky(VJ: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Projection-DPP chain rule by pivoted Cholesky (numba); items in the order drawn.

    Falls back to :func:`_project_householder` when Σd drifts from m − s by > 1e-6·m.
    """
    VJ = np.ascontiguousarray(VJ, dtype=np.float64)
    u = np.ascontiguousarray(uniforms, dtype=np.float64)
    m = VJ.shape[1]
    if u.shape[0] < m:
        raise ValueError(f"need {m} uniforms, got {u.shape[0]}")
    out = np.empty(m, dtype=np.int64)
    status, _, _ = _cholesky_chain_nb(VJ, u, out, 1e-6 * m)
    if status != _OK:
        return _project_householder(VJ, u)
    return out


@numba.njit(cache=True)
def _cholesky_chain_nb(VJ, uniforms, out, tol):  # pragma: no cover - compiled
    """Numba kernel. Returns (status, step, Σd): status 0 ok, 1 Σd drifted by > tol."""
    n, m = VJ.shape
    d = np.empty(n)
    total = 0.0
    for t in range(n):
        acc = 0.0
        for a in range(m):
            acc += VJ[t, a] * VJ[t, a]
        d[t] = acc
        total += acc
    G = np.zeros((m, m))  # rows: orthonormal g_0..g_{s-1}; Cholesky column s is V_J g_s
    for s in range(m):
        if abs(total - (m - s)) > tol or not total > 0.0:
            return 1, s, total
        # draw i ∝ d: u * cumsum(d)[-1], first index whose running sum exceeds it,
        # clamped to the last positive weight
        target = uniforms[s] * total
        acc = 0.0
        i = -1
        last_pos = -1
        for t in range(n):
            dt = d[t]
            if dt > 0.0:
                last_pos = t
                acc += dt
                if acc > target:
                    i = t
                    break
        if i < 0:
            i = last_pos
        out[s] = i
        # g = (I − Σ_t g_t g_tᵀ) v_i / ‖·‖: Gram–Schmidt applied twice (CGS2), BLAS gemv
        r = VJ[i].copy()
        if s > 0:
            Gs = G[:s]
            for _rep in range(2):
                r -= Gs.T @ (Gs @ r)
        nrm = np.sqrt(r @ r)
        if not nrm > 0.0:
            return 1, s, 0.0
        G[s] = r / nrm
        c = VJ @ G[s]  # the new Cholesky column (BLAS gemv): the O(nm) part
        total = 0.0
        for t in range(n):
            dt = d[t] - c[t] * c[t]
            if dt < 0.0 or t == i:
                dt = 0.0
            d[t] = dt
            total += dt
    return 0, m, total


def _check_total(VJ: np.ndarray, total: float, s: int) -> None:
    m = VJ.shape[1]
    if not total > 1e-12 * (m - s):
        gram_err = float(np.max(np.abs(VJ.T @ VJ - np.eye(m))))
        cond = float(np.linalg.cond(VJ))
        raise NumericalError(
            f"projection sampler weights collapsed at step {s} of {m} (Σd = {total:.3g}, "
            f"expected {m - s}): the selected eigenvectors V_J are ill-conditioned "
            f"(cond(V_J) = {cond:.3g}, max|V_JᵀV_J − I| = {gram_err:.3g}); "
            "re-orthonormalise V (e.g. rebuild the DPP from a thin SVD of the features)"
        )


def _project_cholesky_numpy(VJ: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Numpy reference of the pivoted-Cholesky chain rule, written out literally."""
    n, m = VJ.shape
    d = np.einsum("ij,ij->i", VJ, VJ)
    C = np.zeros((n, m))
    out = np.empty(m, dtype=np.int64)
    for s in range(m):
        total = float(np.sum(d))
        _check_total(VJ, total, s)
        i = draw_index(d, uniforms[s])
        out[s] = i
        c = (VJ @ VJ[i] - C[:, :s] @ C[i, :s]) / np.sqrt(d[i])
        C[:, s] = c
        d = np.maximum(d - c * c, 0.0)
        d[i] = 0.0
    return out


def _project_householder(VJ: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Householder reference of the projection chain rule; items in the order drawn.

    Keep W (n×r), an orthonormal basis of the remaining subspace (W = V_J first). After
    drawing i, the reflector H with H w = ±‖w‖e₀ (w = W[i]) zeroes row i of WH outside
    column 0; then d ← d − (WH)[:,0]² and W ← (WH)[:,1:]. O(nm²), ≈3× the Cholesky cost.
    """
    W = np.array(VJ, dtype=np.float64, copy=True)
    n, m = W.shape
    d = np.einsum("ij,ij->i", W, W)
    out = np.empty(m, dtype=np.int64)
    for s in range(m):
        total = float(np.sum(d))
        _check_total(VJ, total, s)
        i = draw_index(d, uniforms[s])
        out[s] = i
        if s == m - 1:
            break
        w = W[i].copy()
        nw = float(np.linalg.norm(w))
        v = w
        v[0] += np.copysign(nw, w[0]) if w[0] != 0.0 else nw
        vv = float(v @ v)
        WH = W - np.outer(W @ v, (2.0 / vv) * v)
        col = WH[:, 0]
        d = np.maximum(d - col * col, 0.0)
        d[i] = 0.0
        W = WH[:, 1:]
    return out
