"""Sequential exact sampler from the marginal kernel K (Poulson).

Items are decided in order. With A the Schur complement left by the earlier decisions,
p = A_jj = P(j ∈ X | decisions so far); item j is kept when u_j < p. Conditioning on
j ∈ X (resp. j ∉ X) eliminates j with pivot p (resp. p − 1), so the sampler *is* an LU
factorisation without pivoting (LDLᵀ when K is symmetric) whose pivots are p or p − 1:

    A = K.copy()
    for j in range(n):
        p = A[j, j]                 # outside [-1e-8, 1+1e-8] -> invalid kernel; else clip
        if u[j] < p: keep j
        else:        A[j, j] -= 1
        A[j+1:, j] /= A[j, j];  A[j+1:, j+1:] -= outer(A[j+1:, j], A[j, j+1:])

It accepts any valid K — symmetric, nonsymmetric (NDPPs) or with eigenvalue 1 — and needs
no eigendecomposition. Four implementations share the uniforms ``u`` (one per item, drawn
up front), so they make the same decisions (up to rounding at near-ties |u_j − p_j| ≈ 0):

- :func:`_sequential_unblocked` — the loop above in numpy; the reference.
- :func:`_sequential_blocked` — blocks of b ≈ 128 pivots: the loop (numba) on the diagonal
  block, triangular solves for the panels, one GEMM for the trailing update. 2n³/3 flops
  (n³/3 + n²b for symmetric K), almost all in BLAS-3.
- :func:`_sequential_lowrank` — for K = Z W Zᵀ with Z n×r (Han et al., ICLR'22):
  p = z_jᵀ W z_j and W ← W − (W z_j)(z_jᵀ W)/c with c = p or p − 1; O(n r²) time and
  O(r²) memory, in scalar numba; the reference twin of the next one.
- :func:`_sequential_lowrank_blocked` — blocks of b ≈ r/4 items: the dense loop on the
  b×b conditional kernel K_B = Z_B W Z_Bᵀ, then one rank-b update of W; ≈ 4 n r² flops
  (6 n r² for nonsymmetric W), almost all in GEMMs. Used by the public API for r ≥ 16.

Public entry points: :func:`sample_sequential` (dense, dispatching to the low-rank form for
feature / factor kernels of small rank) and :func:`sample_lowrank`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

import numba
import numpy as np
import scipy.linalg as sla

from ..core.rng import RngLike, as_generator
from ._validate import as_count
from .kernel import DPP

if TYPE_CHECKING:
    from .nonsymmetric import NonsymmetricDPP

AnyDPP = Union[DPP, "NonsymmetricDPP"]

__all__ = ["sample_sequential", "sample_lowrank"]

#: Pivots p = P(j ∈ X | past) outside [−PIVOT_TOL, 1 + PIVOT_TOL] mean an invalid kernel.
PIVOT_TOL = 1e-8
#: Default number of pivots per diagonal block.
BLOCK = 128
#: Below this rank the itemwise low-rank loop beats the blocked one (2-core timings).
LOWRANK_BLOCKED_MIN_RANK = 16


# ---------------------------------------------------------------------------- public API
def sample_sequential(dpp: AnyDPP, *, rng: RngLike = None) -> np.ndarray:
    """Exact sample of a :class:`DPP` or a :class:`NonsymmetricDPP` by the sequential
    (LU / LDLᵀ) sampler on K; a sorted int64 array.

    Cost: O(n³) per sample on the cached dense K (2n³/3 flops, n³/3 for symmetric K) with
    n² memory; O(n r²) when the kernel is given by features/factors of rank r ≤ n/2, which
    are dispatched to :func:`sample_lowrank` (same uniforms, same decisions).
    """
    gen = as_generator(rng)
    factors = _lowrank_factors(dpp, dense_ok=False)
    if factors is not None and 2 * factors[0].shape[1] <= dpp.n:
        Z, W = factors
        u = gen.random(dpp.n)
        return _lowrank_sample(Z, W, u)[0]
    K = _marginal_kernel_of(dpp)
    u = gen.random(K.shape[0])
    return _sequential_blocked(K, u, symmetric=isinstance(dpp, DPP), overwrite=True)[0]


def sample_lowrank(dpp: AnyDPP, *, rng: RngLike = None) -> np.ndarray:
    """Exact sample from a low-rank kernel by the low-rank sequential sampler.

    Works for a :class:`NonsymmetricDPP` built ``from_factors`` (Z = [V, B],
    X = diag(I, D − Dᵀ)), a :class:`DPP` built ``from_features`` (Z = B, X = I), and any
    other :class:`DPP` through its spectrum (Z = V, W = diag μ; projection parts allowed).
    K = Z W Zᵀ with W = X (I_r + ZᵀZ X)⁻¹ is never formed. Cost O(n r²) time (≈ 4 n r²
    flops in BLAS, blocked), O(r²) memory (plus the one-off O(n r²) for W, cached on the
    kernel object).
    """
    gen = as_generator(rng)
    factors = _lowrank_factors(dpp, dense_ok=True)
    if factors is None:
        raise ValueError(
            "sample_lowrank needs a low-rank kernel (DPP.from_features, any symmetric DPP, "
            "or NonsymmetricDPP.from_factors); use sample_sequential for a dense "
            "nonsymmetric kernel"
        )
    Z, W = factors
    u = gen.random(dpp.n)
    return _lowrank_sample(Z, W, u)[0]


# ---------------------------------------------------------------------------- kernels
def _marginal_kernel_of(dpp: Any) -> np.ndarray:
    """A fresh (writable) copy of the dense marginal kernel of a DPP / NDPP."""
    from .nonsymmetric import NonsymmetricDPP

    if not isinstance(dpp, (DPP, NonsymmetricDPP)):
        raise TypeError(
            f"expected a parasample DPP or NonsymmetricDPP, got {type(dpp).__name__}; "
            "build one with DPP.from_likelihood / NonsymmetricDPP.from_likelihood"
        )
    # marginal_kernel() already returns a fresh copy; only convert if it must.
    return np.require(dpp.marginal_kernel(), dtype=np.float64, requirements=["C", "W"])


def _lowrank_factors(dpp: Any, *, dense_ok: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(Z, W) with K = Z W Zᵀ, or None if the kernel is not in low-rank form.

    ``dense_ok`` also allows a symmetric dense DPP through its (cached) spectrum.
    """
    from .nonsymmetric import NonsymmetricDPP

    if isinstance(dpp, NonsymmetricDPP):
        return dpp._lowrank_factors
    if not isinstance(dpp, DPP):
        raise TypeError(
            f"expected a parasample DPP or NonsymmetricDPP, got {type(dpp).__name__}"
        )
    if dpp.kind == "features":
        cached = dpp.__dict__.get("_sequential_lowrank_factors")
        if cached is None:
            B = dpp._matrix
            d = B.shape[1]
            # W = (I_d + BᵀB)⁻¹ by Cholesky (I + BᵀB ⪰ I is well conditioned enough).
            c = sla.cho_factor(np.eye(d) + B.T @ B, lower=True)
            W = sla.cho_solve(c, np.eye(d))
            W = (W + W.T) / 2.0
            cached = (np.ascontiguousarray(B), np.ascontiguousarray(W))
            dpp.__dict__["_sequential_lowrank_factors"] = cached
        return cached
    if not dense_ok:
        return None
    s = dpp.spectrum
    return np.ascontiguousarray(s.V), np.ascontiguousarray(np.diag(s.mu))


def _invalid_pivot(j: int, p: float) -> ValueError:
    return ValueError(
        f"invalid kernel: the conditional inclusion probability of item {j} is {p!r}, "
        f"outside [0, 1] (tolerance {PIVOT_TOL:g}); K is not a valid marginal kernel "
        "(for symmetric K this means not 0 ⪯ K ⪯ I; for a nonsymmetric kernel, L + Lᵀ "
        "is not PSD), or it is too ill-conditioned for elimination without pivoting"
    )


# ---------------------------------------------------------------------------- reference
def _sequential_unblocked(K: np.ndarray, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unblocked loop (numpy reference). Returns (sorted sample, conditional p_j).

    O(n³) flops through n rank-1 updates; use for testing only.
    """
    A = np.array(K, dtype=np.float64, copy=True)
    u = np.asarray(uniforms, dtype=np.float64)
    n = A.shape[0]
    keep = np.zeros(n, dtype=bool)
    probs = np.empty(n)
    for j in range(n):
        p = A[j, j]
        if not (-PIVOT_TOL <= p <= 1.0 + PIVOT_TOL):
            raise _invalid_pivot(j, float(p))
        p = min(max(p, 0.0), 1.0)
        probs[j] = p
        if u[j] < p:
            keep[j] = True
            A[j, j] = p
        else:
            A[j, j] = p - 1.0
        A[j + 1:, j] /= A[j, j]
        A[j + 1:, j + 1:] -= np.outer(A[j + 1:, j], A[j, j + 1:])
    return np.flatnonzero(keep).astype(np.int64), probs


# ---------------------------------------------------------------------------- blocked
@numba.njit(cache=True)
def _decide_block(A, u, keep, probs):  # pragma: no cover - compiled
    """The loop on a contiguous square block, in place (the bordered loop with no border).
    Returns the first invalid pivot's local index, or -1. O(b³) for a b×b block."""
    return _decide_block_bordered(A, A.shape[0], u, keep, probs)


def _sequential_blocked(
    K: np.ndarray,
    uniforms: np.ndarray,
    block: int = BLOCK,
    *,
    symmetric: bool | None = None,
    overwrite: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Blocked right-looking form of :func:`_sequential_unblocked` (same decisions).

    Per block [k0, k1): the loop on A11 gives L11 (unit lower) and U11 (upper, pivots on
    the diagonal); then U12 = L11⁻¹ A12, L21 = A21 U11⁻¹ (= U12ᵀ D11⁻¹ when K is exactly
    symmetric, saving a solve) and A22 −= L21 U12 in one GEMM. ``symmetric`` (K exactly
    symmetric) is detected when not given; ``overwrite`` lets a C-ordered float64 K be
    destroyed instead of copied.
    """
    block = as_count(block, "block", minimum=1)
    if overwrite and isinstance(K, np.ndarray) and K.dtype == np.float64 and K.flags.c_contiguous:
        A = K
    else:
        A = np.array(K, dtype=np.float64, order="C", copy=True)
    u = np.ascontiguousarray(uniforms, dtype=np.float64)
    n = A.shape[0]
    if symmetric is None:
        symmetric = bool(np.array_equal(A, A.T))
    keep = np.zeros(n, dtype=np.bool_)
    probs = np.empty(n)
    for k0 in range(0, n, block):
        k1 = min(n, k0 + block)
        D = np.ascontiguousarray(A[k0:k1, k0:k1])
        bad = _decide_block(D, u[k0:k1], keep[k0:k1], probs[k0:k1])
        if bad >= 0:
            raise _invalid_pivot(k0 + int(bad), float(probs[k0 + bad]))
        if k1 == n:
            break
        U12 = sla.solve_triangular(
            D, A[k0:k1, k1:], lower=True, unit_diagonal=True, check_finite=False
        )
        if symmetric:
            L21 = (U12 / np.diag(D)[:, None]).T
        else:
            L21 = sla.solve_triangular(
                D, A[k1:, k0:k1].T, trans="T", lower=False, check_finite=False
            ).T
        A[k1:, k1:] -= L21 @ U12
    return np.flatnonzero(keep).astype(np.int64), probs


# ---------------------------------------------------------------------------- low rank
@numba.njit(cache=True)
def _lowrank_loop(Z, W, u, keep, probs):  # pragma: no cover - compiled
    """Low-rank sequential loop, W updated in place. Returns first invalid index or -1."""
    n, r = Z.shape
    a = np.empty(r)  # W z_j
    b = np.empty(r)  # z_jᵀ W
    for j in range(n):
        for s in range(r):
            acc_a = 0.0
            acc_b = 0.0
            for t in range(r):
                acc_a += W[s, t] * Z[j, t]
                acc_b += Z[j, t] * W[t, s]
            a[s] = acc_a
            b[s] = acc_b
        p = 0.0
        for s in range(r):
            p += Z[j, s] * a[s]
        if not (p >= -PIVOT_TOL and p <= 1.0 + PIVOT_TOL):
            probs[j] = p
            return j
        p = min(max(p, 0.0), 1.0)
        probs[j] = p
        if u[j] < p:
            keep[j] = True
            c = p
        else:
            c = p - 1.0
        for s in range(r):
            f = a[s] / c
            if f != 0.0:
                for t in range(r):
                    W[s, t] -= f * b[t]
    return -1


@numba.njit(cache=True)
def _lowrank_loop_sym(Z, W, u, keep, probs):  # pragma: no cover - compiled
    """:func:`_lowrank_loop` for symmetric W (one mat-vec per item)."""
    n, r = Z.shape
    a = np.empty(r)
    for j in range(n):
        for s in range(r):
            acc = 0.0
            for t in range(r):
                acc += W[s, t] * Z[j, t]
            a[s] = acc
        p = 0.0
        for s in range(r):
            p += Z[j, s] * a[s]
        if not (p >= -PIVOT_TOL and p <= 1.0 + PIVOT_TOL):
            probs[j] = p
            return j
        p = min(max(p, 0.0), 1.0)
        probs[j] = p
        if u[j] < p:
            keep[j] = True
            c = p
        else:
            c = p - 1.0
        for s in range(r):  # symmetric rank-1 update, kept bitwise symmetric
            f = a[s] / c
            if f != 0.0:
                for t in range(s, r):
                    w = W[s, t] - f * a[t]
                    W[s, t] = w
                    W[t, s] = w
    return -1


def _lowrank_inputs(Z, W, uniforms):
    """Shared set-up of the low-rank samplers: contiguous float64 Z, a C-ordered copy of W,
    the n uniforms (checked), and the output buffers keep (False) and probs (0 when rank 0)."""
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    Wc = np.array(W, dtype=np.float64, order="C", copy=True)
    u = np.ascontiguousarray(uniforms, dtype=np.float64)
    n = Z.shape[0]
    if u.shape != (n,):
        raise ValueError(f"need {n} uniforms, got shape {u.shape}")
    keep = np.zeros(n, dtype=np.bool_)
    probs = np.zeros(n) if Z.shape[1] == 0 else np.empty(n)
    return Z, Wc, u, keep, probs


def _sequential_lowrank(
    Z: np.ndarray, W: np.ndarray, uniforms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Low-rank sequential sampler for K = Z W Zᵀ on pre-drawn uniforms.

    Returns (sorted sample, conditional p_j). ``W`` is copied, not modified.
    """
    Z, Wc, u, keep, probs = _lowrank_inputs(Z, W, uniforms)
    if Z.shape[1] == 0:
        return np.zeros(0, dtype=np.int64), probs
    loop = _lowrank_loop_sym if np.array_equal(Wc, Wc.T) else _lowrank_loop
    bad = loop(Z, Wc, u, keep, probs)
    if bad >= 0:
        raise _invalid_pivot(int(bad), float(probs[bad]))
    return np.flatnonzero(keep).astype(np.int64), probs


# ---------------------------------------------------------------------------- low rank, blocked
@numba.njit(cache=True)
def _axpy(a, x, y):  # pragma: no cover - compiled
    """y −= a x on 1-D views; a separate function so that LLVM vectorises it (rows of
    one 2-D array indexed in place are not)."""
    for k in range(x.shape[0]):
        y[k] -= a * x[k]


@numba.njit(cache=True)
def _decide_block_bordered(A, b, u, keep, probs):  # pragma: no cover - compiled
    """:func:`_decide_block` on the b×b block A[:, :b], with its row operations carried
    through the border A[:, b:] (= Q on entry, L⁻¹Q on exit). In place; returns the first
    invalid pivot's local index, or -1. O(b³/3 + b²r) for a b×(b + r) array."""
    for j in range(b):
        p = A[j, j]
        if not (p >= -PIVOT_TOL and p <= 1.0 + PIVOT_TOL):
            probs[j] = p
            return j
        p = min(max(p, 0.0), 1.0)
        probs[j] = p
        if u[j] < p:
            keep[j] = True
            piv = p
        else:
            keep[j] = False
            piv = p - 1.0
        A[j, j] = piv
        for i in range(j + 1, b):
            lij = A[i, j] / piv
            A[i, j] = lij
            if lij != 0.0:
                _axpy(lij, A[j, j + 1:], A[i, j + 1:])
    return -1


@numba.njit(cache=True)
def _lowrank_blocked_loop(Z, W, u, keep, probs, block, symmetric):  # pragma: no cover
    """Blocked low-rank loop, W updated in place. Returns the first invalid index or -1.

    Per block B: Q = Z_B W, A = [K_B | Q] with K_B = Q Z_Bᵀ; the bordered loop leaves
    M = K_B − diag(1[rejected]) = L U and X = L⁻¹ Q. Then W −= Xᵀ D⁻¹ X (symmetric W,
    D = diag U) or W −= P (U⁻¹ X) with P = W Z_Bᵀ. GEMMs go to BLAS through np.dot.
    """
    n, r = Z.shape
    for k0 in range(0, n, block):
        k1 = min(n, k0 + block)
        b = k1 - k0
        ZB = Z[k0:k1]
        Q = np.dot(ZB, W)  # b×r
        A = np.empty((b, b + r))
        A[:, :b] = np.dot(Q, ZB.T)  # K_B = Z_B W Z_Bᵀ
        A[:, b:] = Q
        bad = _decide_block_bordered(A, b, u[k0:k1], keep[k0:k1], probs[k0:k1])
        if bad >= 0:
            return k0 + bad
        if k1 == n:
            break
        X = np.ascontiguousarray(A[:, b:])  # L⁻¹ Q
        if symmetric:
            Y = X / np.diag(A).reshape(b, 1)  # D⁻¹ X
            G = np.dot(X.T, Y)  # Qᵀ M⁻¹ Q, symmetrised into W
            for s in range(r):
                for t in range(s, r):
                    w = W[s, t] - 0.5 * (G[s, t] + G[t, s])
                    W[s, t] = w
                    W[t, s] = w
        else:
            P = np.dot(W, ZB.T)  # r×b
            for j in range(b - 1, -1, -1):  # X ← U⁻¹ X (back substitution)
                piv = A[j, j]
                for t in range(r):
                    X[j, t] /= piv
                for i in range(j):
                    if A[i, j] != 0.0:
                        _axpy(A[i, j], X[j], X[i])
            W -= np.dot(P, X)
    return -1


def _lowrank_block(r: int) -> int:
    """Items per block for rank r: b ≈ r/4 in [16, 128] (tuned at n = 2000, r = 16–400)."""
    return min(128, max(16, r // 4))


def _lowrank_sample(
    Z: np.ndarray, W: np.ndarray, uniforms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The low-rank sampler used by the public API: blocked, itemwise for tiny ranks
    (r < LOWRANK_BLOCKED_MIN_RANK, where per-block overhead dominates). Same decisions."""
    if Z.shape[1] < LOWRANK_BLOCKED_MIN_RANK:
        return _sequential_lowrank(Z, W, uniforms)
    return _sequential_lowrank_blocked(Z, W, uniforms)


def _sequential_lowrank_blocked(
    Z: np.ndarray,
    W: np.ndarray,
    uniforms: np.ndarray,
    block: int | None = None,
    *,
    symmetric: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Blocked form of :func:`_sequential_lowrank` (same decisions); the production path.

    For a block B of b items, K_B = Z_B W Z_Bᵀ is exactly the conditional marginal kernel
    of B given the earlier decisions, so the dense loop on K_B (with B's uniforms) decides
    B as the itemwise loop would, leaving M = K_B − diag(1[rejected]) = L U. Conditioning
    W on all of B at once is the Schur complement of M in [[K_B, Z_B W], [W Z_Bᵀ, W]]:

        W ← W − (W Z_Bᵀ) M⁻¹ (Z_B W)          (= Xᵀ D⁻¹ X, X = L⁻¹ Z_B W, if W = Wᵀ)

    Cost ≈ 4 n r² flops for symmetric W (6 n r² otherwise) in BLAS-3 GEMMs, plus
    O(n b (b + r)) in the compiled per-block loop; O(r² + b r) memory. ``symmetric`` (W
    exactly symmetric) is detected when not given; ``block`` defaults to
    :func:`_lowrank_block`. Returns (sorted sample, conditional p_j); W is not modified.
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    if block is None:
        block = _lowrank_block(Z.shape[1])
    block = as_count(block, "block", minimum=1)
    Z, Wc, u, keep, probs = _lowrank_inputs(Z, W, uniforms)
    if Z.shape[1] == 0:
        return np.zeros(0, dtype=np.int64), probs
    if symmetric is None:
        symmetric = bool(np.array_equal(Wc, Wc.T))
    bad = _lowrank_blocked_loop(Z, Wc, u, keep, probs, block, bool(symmetric))
    if bad >= 0:
        raise _invalid_pivot(int(bad), float(probs[bad]))
    return np.flatnonzero(keep).astype(np.int64), probs
