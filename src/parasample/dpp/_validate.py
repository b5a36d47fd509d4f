"""Input validation shared by the DPP samplers: clear errors before any work."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..core.validate import as_count as _core_as_count

__all__ = [
    "as_real_matrix", "as_square_matrix", "check_symmetric", "as_subset", "as_count",
    "psd_tolerance", "require_symmetric_dpp", "NONSYMMETRIC_SAMPLERS",
]

#: The public samplers that take a NonsymmetricDPP (named in the error of the others).
NONSYMMETRIC_SAMPLERS = (
    "sample_sequential (any NonsymmetricDPP, exact), sample_lowrank "
    "(NonsymmetricDPP.from_factors, exact), sample_rejection (exact); for a k-NDPP, "
    "sample_partition(ndpp, np.zeros(ndpp.n, int), [k]) (exact) or "
    "sample_parallel_k_approx (approximate, parallel)"
)


def as_real_matrix(M, name: str) -> np.ndarray:
    """``M`` (array-like or scipy sparse) as a fresh float64 2-D array of finite reals."""
    if hasattr(M, "toarray"):  # scipy sparse
        M = M.toarray()
    A = np.asarray(M)
    if A.dtype == object or not (np.issubdtype(A.dtype, np.number) or A.dtype == bool):
        raise ValueError(f"{name} must be a numeric matrix, got dtype {A.dtype}")
    if np.iscomplexobj(A):
        raise ValueError(f"{name} must be real, got a complex matrix")
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {A.shape}")
    A = np.array(A, dtype=np.float64, copy=True)
    if not np.all(np.isfinite(A)):
        bad = int(A.size - np.count_nonzero(np.isfinite(A)))
        raise ValueError(f"{name} contains {bad} NaN or infinite entries")
    return A


def as_square_matrix(M, name: str) -> np.ndarray:
    """``M`` as a float64 non-empty square matrix with only finite entries (else ValueError)."""
    shape = getattr(M, "shape", None)
    if shape is not None and (len(shape) != 2 or shape[0] != shape[1]):
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(shape)}")
    A = as_real_matrix(M, name)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {A.shape}")
    if A.shape[0] == 0:
        raise ValueError(f"{name} is empty: a DPP needs at least one item")
    return A


def check_symmetric(A: np.ndarray, name: str, hint: str = "") -> np.ndarray:
    """Symmetrise ``A`` if ``max|A - A.T| <= 1e-12 max|A|``; otherwise raise ValueError."""
    scale = float(np.max(np.abs(A))) if A.size else 0.0
    asym = float(np.max(np.abs(A - A.T))) if A.size else 0.0
    if asym > 1e-12 * max(scale, np.finfo(float).tiny):
        raise ValueError(
            f"{name} is not symmetric (max |{name} - {name}.T| = {asym:.3g}, "
            f"max |{name}| = {scale:.3g}){hint}"
        )
    return (A + A.T) / 2.0


def psd_tolerance(n: int, lam_max: float) -> float:
    """Eigenvalues in [-tau, 0) are rounding noise: tau = 10 n eps max(lambda_max, tiny)."""
    return 10.0 * n * np.finfo(float).eps * max(float(lam_max), np.finfo(float).tiny)


def as_subset(subset: Iterable[int], n: int) -> np.ndarray:
    """A subset of ``range(n)`` as a sorted int64 array; rejects duplicates and out-of-range."""
    S = np.asarray(list(subset) if not isinstance(subset, np.ndarray) else subset)
    if S.size == 0:
        return np.zeros(0, dtype=np.int64)
    if S.ndim != 1:
        raise ValueError(f"a subset must be a 1-D collection of indices, got shape {S.shape}")
    if S.dtype == bool:
        raise ValueError("a subset must hold integer indices, not booleans")
    if not np.issubdtype(S.dtype, np.integer):
        if np.issubdtype(S.dtype, np.floating) and np.all(S == np.round(S)):
            S = S.astype(np.int64)
        else:
            raise ValueError(f"a subset must hold integer indices, got dtype {S.dtype}")
    S = np.sort(S.astype(np.int64))
    if S[0] < 0 or S[-1] >= n:
        raise ValueError(f"subset indices must lie in [0, {n - 1}], got {S[0]}..{S[-1]}")
    if np.any(np.diff(S) == 0):
        raise ValueError("subset contains repeated indices")
    return S


def as_count(k, name: str = "k", *, minimum: int = 0) -> int:
    """An integer count ≥ ``minimum`` (rejects floats with a fraction, bools, negatives,
    strings; never truncates): :func:`parasample.core.as_count`."""
    return _core_as_count(k, name, minimum=minimum)


def require_symmetric_dpp(dpp, caller: str) -> None:
    """TypeError unless ``dpp`` is a symmetric :class:`~parasample.dpp.DPP`; the message
    names ``caller`` and, for a NonsymmetricDPP, the samplers that do take one. O(1).

    Call it first, before any work or random draw."""
    from .kernel import DPP
    from .nonsymmetric import NonsymmetricDPP

    if isinstance(dpp, DPP):
        return
    if isinstance(dpp, NonsymmetricDPP):
        raise TypeError(
            f"{caller} works on symmetric kernels only (parasample.dpp.DPP), got a "
            f"NonsymmetricDPP; for nonsymmetric kernels use {NONSYMMETRIC_SAMPLERS}"
        )
    raise TypeError(
        f"{caller} needs a parasample.dpp.DPP, got {type(dpp).__name__}; build one with "
        "DPP.from_likelihood(L), DPP.from_correlation(K) or DPP.from_features(B)"
    )
