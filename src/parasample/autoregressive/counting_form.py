"""Counting form of the oracle.

Many targets are easier to *count* than to condition: a partition function, a #P-style
counter, a dynamic programme, a tensor-network contraction. :class:`LogCountOracle` turns a
user callable

    log_count(values int[R, n], mask bool[R, n]) -> float64[R]

returning log Z(σ_S), the log of an unnormalised weight of the event {X_S = σ_S} (``-inf`` for
weight 0), into a conditional-marginal oracle:

    P[X_i = a | X_S = σ_S] = Z(σ_S, X_i = a) / Σ_a' Z(σ_S, X_i = a')
                           = softmax_a log Z(σ_S, X_i = a).

The normaliser of the weights cancels, so ``log_count`` may be off by any additive constant,
the same for all rows. For every (row, target i) the adapter submits the q rows "σ_S with
X_i = a" in **one** ``log_count`` call per ``marginals`` call: the rounds are those of the
sampler (one per ``marginals`` call, whatever the batch), and each marginal costs q counted
rows (``targets=None`` costs q·(number of free coordinates) rows per partial assignment).
:attr:`LogCountOracle.count_rows` and :attr:`LogCountOracle.count_calls` report that cost.

Contract (as for every oracle): rows sum to 1 (softmax with max-subtraction, in float64); pinned
coordinates are one-hot; if every q-row of a target has weight 0 (all ``-inf``), the pinning
has probability 0 and the whole answer row is NaN; a pinned target costs one row, σ_S itself,
to detect that case. Unpinned ``values`` are set to 0 before ``log_count`` sees them.
Bit-for-bit batch invariance holds when ``log_count`` computes each row on its own.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..core import NumericalError, as_count
from .oracles import _MAX_TABLE_SIZE, Oracle, call_read_only, check_batch

__all__ = ["LogCountOracle", "table_log_count"]

LogCount = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _softmax_rows(logw: np.ndarray) -> np.ndarray:
    """Row-wise softmax with max-subtraction; a row that is all ``-inf`` becomes NaN."""
    m = logw.max(axis=1, keepdims=True)
    ok = np.isfinite(m[:, 0])
    out = np.full(logw.shape, np.nan)
    if ok.any():
        w = np.exp(logw[ok] - m[ok])
        out[ok] = w / w.sum(axis=1, keepdims=True)
    return out


class LogCountOracle(Oracle):
    """Conditional-marginal oracle from a counting callable.

    Parameters
    ----------
    log_count:
        ``log_count(values int64[R, n], mask bool[R, n]) -> float64[R]``: log of an
        unnormalised weight Z(σ_S) of {X_S = σ_S} (any additive constant, the same for all
        rows), ``-inf`` where the weight is 0. Unpinned entries of ``values`` are 0. It must
        not return NaN or ``+inf``, and gets read-only arrays (writing into them raises).
    n, q:
        Number of coordinates and alphabet size (values 0..q-1).
    max_batch:
        Optional cap on the rows per ``log_count`` invocation; a ``marginals`` call is still
        one logical round, split into ⌈rows / max_batch⌉ invocations. Default: one invocation
        per ``marginals`` call.

    Attributes
    ----------
    count_rows:
        Total rows passed to ``log_count`` so far (q per targeted marginal of a free
        coordinate, q·|free| per full row; 1 per pinned target or fully pinned row).
    count_calls:
        Total ``log_count`` invocations so far. :meth:`reset_counts` zeroes both.
    """

    supports_full = False  # full rows cost q·|free| counted rows, not the price of one

    def __init__(self, log_count: LogCount, n: int, q: int, *, max_batch: int | None = None):
        if not callable(log_count):
            raise TypeError("log_count must be callable: (values, mask) -> float64[R]")
        self.n, self.q = as_count(n, "n", minimum=1), as_count(q, "q", minimum=2)
        self.max_batch = None if max_batch is None else as_count(max_batch, "max_batch",
                                                                    minimum=1)
        self.log_count = log_count
        self.count_rows = 0
        self.count_calls = 0

    def reset_counts(self) -> None:
        self.count_rows = 0
        self.count_calls = 0

    # -- evaluation --------------------------------------------------------------------------
    def _evaluate(self, V: np.ndarray, M: np.ndarray) -> np.ndarray:
        R = V.shape[0]
        step = R if self.max_batch is None else self.max_batch
        parts = []
        fn = self.log_count
        name = f"log_count ({getattr(fn, '__qualname__', type(fn).__name__)})"
        for s in range(0, R, step):
            out = call_read_only(self.log_count, name, V[s:s + step], M[s:s + step])
            out = np.asarray(out, dtype=np.float64)
            k = min(step, R - s)
            if out.shape != (k,):
                raise ValueError(f"log_count must return shape ({k},), got {out.shape}")
            self.count_calls += 1
            self.count_rows += k
            parts.append(out)
        out = np.concatenate(parts)
        if np.isnan(out).any() or np.any(out == np.inf):
            raise NumericalError("log_count returned NaN or +inf; return -inf for weight 0 "
                                 "and finite logs otherwise")
        return out

    def marginals(self, values, mask, targets=None) -> np.ndarray:
        v, mask, targets = check_batch(self, values, mask, targets)
        n, q = self.n, self.q
        B = v.shape[0]
        if B == 0:
            return np.empty((0, n, q)) if targets is None else np.empty((0, q))
        if targets is None:
            pb, pi = np.nonzero(~mask)  # (row, free coordinate) pairs
            check = np.flatnonzero(mask.all(axis=1))  # fully pinned rows: evaluate σ_S
        else:
            free = ~mask[np.arange(B), targets]
            pb = np.flatnonzero(free)
            pi = targets[pb]
            check = np.flatnonzero(~free)  # pinned targets: evaluate σ_S
        P = len(pb)
        # Query rows: q rows "σ_S with X_i = a" per pair, then one row σ_S per checked row.
        V = np.concatenate([np.repeat(v[pb], q, axis=0), v[check]])
        M = np.concatenate([np.repeat(mask[pb], q, axis=0), mask[check]])
        rows = np.arange(P * q)
        V[rows, np.repeat(pi, q)] = np.tile(np.arange(q), P)
        M[rows, np.repeat(pi, q)] = True
        logw = self._evaluate(V, M)
        probs = _softmax_rows(logw[:P * q].reshape(P, q))
        zero = np.zeros(B, dtype=bool)  # rows whose pinning has probability 0
        zero[pb[np.isnan(probs[:, 0])]] = True
        zero[check[logw[P * q:] == -np.inf]] = True
        if targets is None:
            out = np.zeros((B, n, q))
            b, i = np.nonzero(mask)
            out[b, i, v[b, i]] = 1.0
            out[pb, pi] = probs
            out[zero] = np.nan
            return out
        out = np.empty((B, q))
        out[pb] = probs
        out[check] = 0.0
        out[check, v[check, targets[check]]] = 1.0
        out[zero] = np.nan
        return out

    # -- convenience -------------------------------------------------------------------------
    @classmethod
    def from_table(cls, p, **kwargs) -> "LogCountOracle":
        """Counting oracle of an explicit nonnegative table ``p`` of shape (q,)*n (for tests
        and examples; it answers like :class:`TableOracle`)."""
        log_count, n, q = table_log_count(p)
        return cls(log_count, n, q, **kwargs)


def table_log_count(p) -> tuple[LogCount, int, int]:
    """``(log_count, n, q)`` for a nonnegative table ``p`` of shape (q,)*n: log of the sum of
    ``p`` over the completions of each row (``-inf`` for 0), computed row by row."""
    p = np.asarray(p, dtype=float)
    if p.ndim < 1 or len(set(p.shape)) != 1 or p.shape[0] < 2:
        raise ValueError(f"table must have shape (q,)*n with q >= 2, got {p.shape}")
    if p.size > _MAX_TABLE_SIZE:
        raise ValueError(f"table too large ({p.size} entries > {_MAX_TABLE_SIZE})")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("table entries must be finite and nonnegative")
    if not p.sum() > 0:
        raise ValueError("table must have a positive sum")
    table = p / p.sum()
    table.setflags(write=False)
    n, q = p.ndim, p.shape[0]

    def log_count(values, mask):
        out = np.empty(len(values))
        for r in range(len(values)):
            idx = tuple(int(values[r, j]) if mask[r, j] else slice(None) for j in range(n))
            s = float(np.sum(table[idx]))
            out[r] = np.log(s) if s > 0 else -np.inf
        return out

    return log_count, n, q
