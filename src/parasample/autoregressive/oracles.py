"""Exact conditional-marginal oracles on [q]^n.

An oracle has attributes ``n`` and ``q`` and a batch-first method

    marginals(values int[B, n], mask bool[B, n], targets int[B] | None)
        -> float64[B, n, q]  (targets None)   or   float64[B, q]

Entry [b, i, a] is P[X_i = a | X_{S_b} = values[b, S_b]] with S_b = {i : mask[b, i]}.
Contract: rows sum to 1, pinned coordinates are one-hot, a zero-probability pinning gives an
all-NaN row (never an exception), unpinned ``values`` are never read (they are zeroed before
any computation), and every row is computed on its own (batch invariance, bit for bit).
Spins map −1 → 0 and +1 → 1.

The samplers check every answer with :func:`check_marginals` (shape, real numbers, rows
all-NaN or nonnegative summing to 1 within 1e-9, renormalised) and hand oracles read-only
inputs through :func:`call_read_only`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import gammaln

from ..core import NumericalError, as_count, read_only

__all__ = [
    "Oracle", "TableOracle", "ProductOracle", "IsingOracle", "CurieWeissOracle",
    "MarkovChainOracle", "check_batch", "check_marginals", "call_read_only", "SUM_TOL",
    "SUM_TOL_FLOAT32",
]

_MAX_TABLE_SIZE = 2 ** 22
SUM_TOL = 1e-9  # |row sum − 1| allowed in a float64 (or integer) answer; renormalised
SUM_TOL_FLOAT32 = 1e-5  # the same for a float32 (or narrower) answer


def check_batch(oracle, values, mask, targets):
    """Validate a ``marginals`` batch for ``oracle`` (with ``n`` and ``q``); return
    (values int64 with unpinned entries zeroed, mask, targets int64 or None)."""
    values = np.asarray(values)
    mask = np.asarray(mask)
    n, q = oracle.n, oracle.q
    if values.ndim != 2 or values.shape[1] != n:
        raise ValueError(f"values must have shape (B, {n}), got {values.shape}")
    if mask.shape != values.shape:
        raise ValueError(f"mask must have shape {values.shape}, got {mask.shape}")
    if mask.dtype != bool:
        raise TypeError(f"mask must be boolean, got dtype {mask.dtype}")
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"values must be integers, got dtype {values.dtype}")
    v = np.where(mask, values, 0).astype(np.int64)
    if v.size and (v.min() < 0 or v.max() >= q):
        raise ValueError(f"pinned values must lie in 0..{q - 1}")
    if targets is None:
        return v, mask, None
    B = v.shape[0]
    targets = np.asarray(targets)
    if targets.shape != (B,) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be an integer array of shape ({B},)")
    if B and (targets.min() < 0 or targets.max() >= n):
        raise ValueError(f"targets must lie in 0..{n - 1}")
    return v, mask, targets.astype(np.int64)


def _row_name(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(tuple(int(k) for k in index))


def _row_sums(rows: np.ndarray) -> np.ndarray:
    """Σ over the last axis of a (N, q) array, row by row. Column by column for q < 8, which
    is faster for short rows and adds in the same order as ``rows.sum(axis=1)``."""
    q = rows.shape[1]
    if q >= 8:
        return rows.sum(axis=1)
    s = rows[:, 0].copy()
    for a in range(1, q):
        s += rows[:, a]
    return s


def check_marginals(oracle, out, shape: tuple[int, ...]) -> np.ndarray:
    """Validate an answer ``out`` of ``oracle.marginals`` against the expected ``shape``
    ((B, q) for targeted rows, (B, n, q) for full rows) and return it as float64 with every
    row (last axis) renormalised.

    A row is either all-NaN (a zero-probability pinning; kept as NaN) or finite with entries
    ≥ −tol and |Σ − 1| ≤ tol, tol = 1e-9 (1e-5 for a float32 answer); entries in [−tol, 0)
    become 0 and the row is divided by its sum. Anything else raises, naming the oracle:
    TypeError (not real numbers), ValueError (shape), NumericalError (first bad row). O(size).
    """
    name = type(oracle).__name__
    try:
        arr = np.asarray(out)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise TypeError(f"{name}.marginals must return an array of real numbers, got "
                        f"{type(out).__name__} ({exc})") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}.marginals must return an array of real numbers, got "
                        f"{type(out).__name__} of dtype {arr.dtype}")
    shape = tuple(int(d) for d in shape)
    if arr.shape != shape:
        what = "(rows, q)" if len(shape) == 2 else "(rows, n, q)"
        raise ValueError(f"{name}.marginals returned shape {arr.shape}, expected shape "
                         f"{shape} {what}")
    narrow = arr.dtype.kind == "f" and arr.dtype.itemsize < 8
    tol = SUM_TOL_FLOAT32 if narrow else SUM_TOL
    P = np.array(arr, dtype=np.float64)
    rows = P.reshape(-1, shape[-1])
    if rows.size == 0:
        return P
    s = _row_sums(rows)
    with np.errstate(invalid="ignore"):
        if np.abs(s - 1.0).max() <= tol and rows.min() >= 0:  # common case: all rows fine
            rows /= s[:, None]
            return P
        zero = np.isnan(rows).all(axis=1)
        low = rows.min(axis=1)
        bad = ~zero & (~np.isfinite(s) | (low < -tol) | (np.abs(s - 1.0) > tol))
    if bad.any():
        k = int(np.argmax(bad))
        where = _row_name(np.unravel_index(k, shape[:-1]))
        row = rows[k]
        if not np.isfinite(s[k]):
            why = "is not finite (NaN only for a whole row, when the pinning has probability 0)"
        elif low[k] < -tol:
            why = f"has a negative entry {float(low[k])!r} (beyond the tolerance {tol:g})"
        else:
            f32 = " for float32" if narrow else ""
            why = (f"sums to {float(s[k])!r}, not 1 (tolerance {tol:g}{f32}); return "
                   "probabilities, e.g. a softmax computed in float64")
        raise NumericalError(f"{name}.marginals: answer row {where} {why}: {row}")
    ok = ~zero
    if ok.any():
        r = np.maximum(rows[ok], 0.0)
        rows[ok] = r / r.sum(axis=1, keepdims=True)
    return P


def call_read_only(fn: Callable, name: str, *arrays):
    """``fn(*arrays)`` with read-only views of the arrays (None stays None), so that a callee
    writing into its inputs cannot corrupt the caller's state: numpy's error for the write is
    re-raised as a ValueError naming ``name`` and the remedy."""
    views = [None if a is None else read_only(np.asarray(a)) for a in arrays]
    try:
        return fn(*views)
    except ValueError as exc:
        if "is read-only" not in str(exc):
            raise
        raise ValueError(f"{name} wrote into its input arrays ({exc}); they are read-only "
                         "because writing would corrupt the sampler's state: copy them first, "
                         "e.g. values = np.array(values)") from exc


class Oracle:
    """Base class: validates a batch, zeroes unpinned values and evaluates rows one by one.

    Subclasses implement ``_full_row(v, mask) -> float64[n, q]`` or
    ``_target_row(v, mask, i) -> float64[q]`` (the other defaults to it, so targeted and full
    answers agree bit for bit).
    """

    n: int
    q: int

    def marginals(self, values, mask, targets=None) -> np.ndarray:
        v, mask, targets = check_batch(self, values, mask, targets)
        B, n, q = v.shape[0], self.n, self.q
        if targets is None:
            out = np.empty((B, n, q))
            for b in range(B):
                out[b] = self._full_row(v[b], mask[b])
            return out
        out = np.empty((B, q))
        for b in range(B):
            out[b] = self._target_row(v[b], mask[b], int(targets[b]))
        return out

    def _full_row(self, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = np.empty((self.n, self.q))
        for i in range(self.n):
            out[i] = self._target_row(v, mask, i)
            if np.isnan(out[i, 0]):
                out[:] = np.nan
                return out
        return out

    def _target_row(self, v: np.ndarray, mask: np.ndarray, i: int) -> np.ndarray:
        return self._full_row(v, mask)[i].copy()

    def _one_hot(self, a: int) -> np.ndarray:
        e = np.zeros(self.q)
        e[a] = 1.0
        return e


class TableOracle(Oracle):
    """μ given as a nonnegative array ``p`` of shape (q,)*n (normalised here)."""

    def __init__(self, p):
        p = np.asarray(p, dtype=float)
        if p.ndim < 1 or len(set(p.shape)) != 1:
            raise ValueError(f"table must have shape (q,)*n, got {p.shape}")
        if p.size > _MAX_TABLE_SIZE:
            raise ValueError(f"table too large ({p.size} entries > {_MAX_TABLE_SIZE})")
        if not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError("table entries must be finite and nonnegative")
        total = p.sum()
        if total <= 0:
            raise ValueError("table must have a positive sum")
        self.p = p / total
        self.p.setflags(write=False)
        self.n = p.ndim
        self.q = p.shape[0]

    def _target_row(self, v, mask, i):
        idx = tuple(int(v[j]) if mask[j] else slice(None) for j in range(self.n))
        sub = self.p[idx]
        free = [j for j in range(self.n) if not mask[j]]
        if mask[i]:
            if not sub.sum() > 0:
                return np.full(self.q, np.nan)
            return self._one_hot(int(v[i]))
        ax = free.index(i)
        marg = sub.sum(axis=tuple(a for a in range(len(free)) if a != ax))
        s = marg.sum()
        if not s > 0:
            return np.full(self.q, np.nan)
        return marg / s


class ProductOracle(Oracle):
    """μ = ∏_i p_i: marginals ignore the pinning (no mismatches, deterministic accounting)."""

    def __init__(self, probs):
        probs = np.asarray(probs, dtype=float)
        if probs.ndim != 2 or probs.shape[1] < 2:
            raise ValueError(f"probs must have shape (n, q) with q >= 2, got {probs.shape}")
        if not np.all(np.isfinite(probs)) or np.any(probs < 0):
            raise ValueError("probs must be finite and nonnegative")
        sums = probs.sum(axis=1, keepdims=True)
        if np.any(sums <= 0):
            raise ValueError("every row of probs needs a positive sum")
        self.probs = probs / sums
        self.probs.setflags(write=False)
        self.n, self.q = probs.shape

    def _full_row(self, v, mask):
        pins = np.flatnonzero(mask)
        if np.any(self.probs[pins, v[pins]] <= 0):
            return np.full((self.n, self.q), np.nan)
        out = self.probs.copy()
        out[pins] = 0.0
        out[pins, v[pins]] = 1.0
        return out


def _ising_table(J: np.ndarray, h: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
    n = len(h)
    N = 1 << n
    bits = (n - 1 - np.arange(n))
    logw = np.empty(N)
    for start in range(0, N, chunk):
        idx = np.arange(start, min(N, start + chunk))
        X = 2.0 * ((idx[:, None] >> bits) & 1) - 1.0  # C order: axis 0 most significant
        logw[start:start + len(idx)] = 0.5 * np.einsum("bi,ij,bj->b", X, J, X) + X @ h
    w = np.exp(logw - logw.max())
    return (w / w.sum()).reshape((2,) * n)


class IsingOracle(Oracle):
    """μ(x) ∝ exp(½ xᵀJx + hᵀx) on x ∈ {±1}^n (value 0 ↔ −1, 1 ↔ +1), by enumeration.

    General ``J`` (symmetric n×n) and ``h`` (length n), n ≤ 20, via a :class:`TableOracle`.
    :meth:`curie_weiss` gives the closed-form Curie–Weiss oracle that scales to large n.
    """

    def __init__(self, J, h=None):
        J = np.asarray(J, dtype=float)
        if J.ndim != 2 or J.shape[0] != J.shape[1]:
            raise ValueError(f"J must be square, got shape {J.shape}")
        n = J.shape[0]
        h = np.zeros(n) if h is None else np.broadcast_to(np.asarray(h, dtype=float), (n,)).copy()
        if not (np.all(np.isfinite(J)) and np.all(np.isfinite(h))):
            raise ValueError("J and h must be finite")
        if not np.allclose(J, J.T, atol=1e-12):
            raise ValueError("J must be symmetric")
        if n > 20:
            raise ValueError(f"IsingOracle enumerates 2^n states; n = {n} > 20 is too large")
        self.J, self.h = J, h
        self.n, self.q = n, 2
        self.table = TableOracle(_ising_table(J, h))

    def _target_row(self, v, mask, i):
        return self.table._target_row(v, mask, i)

    @staticmethod
    def curie_weiss(n: int, beta: float, h: float = 0.0) -> "CurieWeissOracle":
        """Curie–Weiss μ ∝ exp(β M²/(2n) + h M), M = Σ x_i, in closed form (any n)."""
        return CurieWeissOracle(n, beta, h)


class CurieWeissOracle(Oracle):
    """Curie–Weiss closed form: free spins are exchangeable, cost O(m)."""

    def __init__(self, n: int, beta: float, h: float = 0.0):
        n = as_count(n, "n", minimum=1)
        if not (np.isfinite(beta) and np.isfinite(h)):
            raise ValueError("beta and h must be finite")
        self.n, self.q = n, 2
        self.beta, self.h = float(beta), float(h)

    def ising_couplings(self) -> tuple[np.ndarray, np.ndarray]:
        """(J, h) of the equivalent :class:`IsingOracle` (J = β/n · 11ᵀ)."""
        return np.full((self.n, self.n), self.beta / self.n), np.full(self.n, self.h)

    def _full_row(self, v, mask):
        n = self.n
        m = n - int(mask.sum())
        s = float(np.sum(2 * v[mask] - 1))
        out = np.zeros((n, 2))
        out[mask, v[mask]] = 1.0
        if m == 0:
            return out
        k = np.arange(m + 1, dtype=float)
        M = s + 2.0 * k - m
        ell = (gammaln(m + 1.0) - gammaln(k + 1.0) - gammaln(m - k + 1.0)
               + self.beta * M * M / (2.0 * n) + self.h * M)
        w = np.exp(ell - ell.max())
        p1 = float(np.dot(k / m, w) / w.sum())
        out[~mask, 0] = 1.0 - p1
        out[~mask, 1] = p1
        return out


class MarkovChainOracle(Oracle):
    """X_0 ~ ``init``, X_{t+1} | X_t ~ P_t.

    ``transitions`` is one (q, q) stochastic matrix (homogeneous) or an array (n−1, q, q);
    ``n`` is required for a homogeneous chain. Rows are computed by a renormalised
    forward–backward pass over the pins (equivalent to the nearest-pin formula); a zero
    normaliser, i.e. a zero-probability pinning, gives an all-NaN row.
    """

    def __init__(self, init, transitions, n: int | None = None):
        init = np.asarray(init, dtype=float)
        P = np.asarray(transitions, dtype=float)
        if init.ndim != 1 or init.size < 2:
            raise ValueError("init must be a probability vector of length q >= 2")
        q = init.size
        n = None if n is None else as_count(n, "n", minimum=1)
        if P.ndim == 2:
            if n is None:
                raise ValueError("n is required for a homogeneous chain")
            P = np.broadcast_to(P, (n - 1, q, q))
        elif P.ndim == 3:
            if n is not None and n != P.shape[0] + 1:
                raise ValueError(f"n = {n} disagrees with {P.shape[0]} transition matrices")
            n = P.shape[0] + 1
        else:
            raise ValueError("transitions must have shape (q, q) or (n-1, q, q)")
        if P.shape[1:] != (q, q):
            raise ValueError(f"transition matrices must be {q}x{q}, got {P.shape[1:]}")
        for arr, name in ((init, "init"), (P, "transitions")):
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"{name} must be finite and nonnegative")
        if abs(init.sum() - 1) > 1e-9 or np.any(np.abs(P.sum(axis=-1) - 1) > 1e-9):
            raise ValueError("init and every row of the transitions must sum to 1")
        self.init = init
        self.P = np.array(P)
        self.n, self.q = int(n), q

    def _full_row(self, v, mask):
        n, q = self.n, self.q
        nan = np.full((n, q), np.nan)
        ev = np.ones((n, q))
        pins = np.flatnonzero(mask)
        ev[pins] = 0.0
        ev[pins, v[pins]] = 1.0
        alpha = np.empty((n, q))
        a = self.init * ev[0]
        for t in range(n):
            if t > 0:
                a = (a @ self.P[t - 1]) * ev[t]
            s = a.sum()
            if not s > 0:
                return nan
            a = a / s
            alpha[t] = a
        out = np.empty((n, q))
        b = np.ones(q)
        for t in range(n - 1, -1, -1):
            if t < n - 1:
                b = self.P[t] @ (b * ev[t + 1])
                mx = b.max()
                if not mx > 0:
                    return nan
                b = b / mx
            if mask[t]:
                out[t] = self._one_hot(int(v[t]))
            else:
                m = alpha[t] * b
                s = m.sum()
                if not s > 0:
                    return nan
                out[t] = m / s
        return out

    def table(self) -> np.ndarray:
        """The full joint as an array of shape (q,)*n (small n only)."""
        if self.q ** self.n > _MAX_TABLE_SIZE:
            raise ValueError("chain too large to tabulate")
        p = self.init.copy()
        for t in range(self.n - 1):
            p = p[..., :, None] * self.P[t]
        return p
