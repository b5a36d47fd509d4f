"""Sequential chain rule (spec §5) and parallel speculate/verify/accept (spec §6).

Both samplers draw their randomness with :func:`draw_randomness` — the order
π = ``rng.permutation(n)``, then coupler randomness indexed by coordinate — so under the same
``rng`` they return the same sample. The parallel sampler's guesses only decide how many
coordinates are accepted per iteration, never their values (§6.2).

Cost is measured by wrapping ``oracle.marginals`` in :class:`~parasample.core.CountingOracle`:
``cost.rounds`` = number of ``marginals`` calls, ``cost.evaluations`` = total rows.
"""

from __future__ import annotations

import numpy as np

from ..core import CountingOracle, NumericalError, SampleResult, as_generator

__all__ = [
    "threshold_coupler", "gumbel_coupler", "default_coupler", "draw_randomness",
    "default_window", "sample_sequential", "sample_parallel",
]

_SUM_TOL = 1e-9


def threshold_coupler(p: np.ndarray, u: float) -> int:
    """q = 2: output 1 iff u < p(1), with u ~ U[0, 1). Disagreement = TV (optimal)."""
    return int(u < p[1])


def gumbel_coupler(p: np.ndarray, g: np.ndarray) -> int:
    """Any q: argmax_a(log p(a) + G_a) with i.i.d. standard Gumbels G and log 0 = −inf."""
    with np.errstate(divide="ignore"):
        return int(np.argmax(np.log(p) + g))


def default_coupler(q: int) -> str:
    return "threshold" if q == 2 else "gumbel"


_COUPLERS = {"threshold": threshold_coupler, "gumbel": gumbel_coupler}


def _check_coupler(coupler: str | None, q: int) -> str:
    coupler = default_coupler(q) if coupler is None else coupler
    if coupler not in _COUPLERS:
        raise ValueError(f"unknown coupler {coupler!r}; choose 'threshold' or 'gumbel'")
    if coupler == "threshold" and q != 2:
        raise ValueError(f"the threshold coupler needs q = 2, got q = {q}")
    return coupler


def draw_randomness(n: int, q: int, rng=None, *, coupler: str | None = None):
    """Return (order π, coupler randomness indexed by coordinate): π = rng.permutation(n),
    then ``rng.random(n)`` (threshold) or ``rng.gumbel(size=(n, q))`` (Gumbel)."""
    rng = as_generator(rng)
    coupler = _check_coupler(coupler, q)
    order = rng.permutation(n)
    r = rng.random(n) if coupler == "threshold" else rng.gumbel(size=(n, q))
    return order, r


def default_window(n: int) -> int:
    """max(2, round(n^{1/3})) — ``round``, since 4096 ** (1/3) = 15.999…"""
    return max(2, int(round(n ** (1.0 / 3.0))))


def _draw(p: np.ndarray, r, coupler: str) -> int:
    """Validate and renormalise a marginal row, then apply the coupler."""
    s = p.sum()
    if not np.isfinite(s) or np.any(p < 0):
        raise NumericalError(f"oracle returned an invalid marginal row {p}")
    if abs(s - 1.0) > _SUM_TOL:
        raise NumericalError(f"oracle marginal sums to {s!r}, not 1 (tolerance {_SUM_TOL})")
    return _COUPLERS[coupler](p / s, r)


def _setup(oracle, rng, order, coupler):
    n, q = int(oracle.n), int(oracle.q)
    if n < 1 or q < 2:
        raise ValueError(f"oracle needs n >= 1 and q >= 2, got n = {n}, q = {q}")
    coupler = _check_coupler(coupler, q)
    pi, r = draw_randomness(n, q, rng, coupler=coupler)
    if order is not None:
        order = np.asarray(order)
        if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError(f"order must be a permutation of 0..{n - 1}")
        pi = order.astype(np.int64)
    return n, q, coupler, pi, r


def sample_sequential(oracle, *, rng=None, order=None, coupler: str | None = None) -> SampleResult:
    """Chain rule: for t = 1..n, i = π(t), x_i = g(P[X_i | x_{π(<t)}], r_i). n rounds."""
    n, q, coupler, pi, r = _setup(oracle, rng, order, coupler)
    counted = CountingOracle(oracle.marginals)
    values = np.zeros(n, dtype=np.int64)
    mask = np.zeros(n, dtype=bool)
    for t in range(n):
        i = int(pi[t])
        p = counted(values[None], mask[None], np.array([i]))[0]
        if np.isnan(p).any():
            raise NumericalError("oracle returned NaN for a positive-probability prefix")
        values[i] = _draw(p, r[i], coupler)
        mask[i] = True
    return SampleResult(values, counted.cost, {"order": pi, "coupler": coupler})


def sample_parallel(oracle, *, rng=None, window: int | None = None, order=None,
                    coupler: str | None = None) -> SampleResult:
    """Speculate / verify / accept (spec §6): same output as :func:`sample_sequential`
    under the same ``rng``, in about 2n/w + 2·(mismatches) rounds.

    ``info``: ``mismatches`` (iterations with a rejected guess), ``accepted`` (histogram:
    ``accepted[a]`` = number of iterations that accepted a coordinates), ``iterations``,
    ``window``, ``order``, ``coupler``.
    """
    n, q, coupler, pi, r = _setup(oracle, rng, order, coupler)
    w = default_window(n) if window is None else window
    if int(w) != w or w < 1:
        raise ValueError(f"window must be a positive integer, got {window}")
    return _run_parallel(oracle, n, coupler, pi, r, int(w), verify=True)


def _run_parallel(oracle, n, coupler, pi, r, w, *, verify=True) -> SampleResult:
    """The §6 loop. ``verify=False`` accepts every draft unchecked: a WRONG sampler, kept
    only so that tests can check their power against it."""
    counted = CountingOracle(oracle.marginals)
    values = np.zeros(n, dtype=np.int64)
    mask = np.zeros(n, dtype=bool)
    t = 0
    mismatches = 0
    accepted = np.zeros(w + 1, dtype=np.int64)
    while t < n:
        W = min(w, n - t)
        ks = pi[t:t + W]
        # Speculate: one row pinning the prefix, all marginals.
        phat = counted(values[None], mask[None], None)[0]
        if np.isnan(phat[ks]).any():
            raise NumericalError("oracle returned NaN for a positive-probability prefix")
        guess = np.array([_draw(phat[k], r[k], coupler) for k in ks], dtype=np.int64)
        if W == 1 or not verify:
            values[ks] = guess
            mask[ks] = True
            t += W
            accepted[W] += 1
            continue
        # Verify: row j (j = 2..W) pins prefix + guesses 1..j-1 and targets k_j.
        V = np.repeat(values[None], W - 1, axis=0)
        M = np.repeat(mask[None], W - 1, axis=0)
        for j in range(1, W):
            V[j - 1:, ks[j - 1]] = guess[j - 1]
            M[j - 1:, ks[j - 1]] = True
        pv = counted(V, M, ks[1:].astype(np.int64))
        # Accept: y_1 = guess_1 (same marginal, same randomness); stop at first mismatch.
        a = W
        for j in range(1, W):
            p = pv[j - 1]
            if np.isnan(p).any():
                # §6.2: a NaN row has a zero-probability earlier guess, hence a mismatch.
                raise NumericalError("NaN verification row before the first mismatch")
            y = _draw(p, r[ks[j]], coupler)
            if y != guess[j]:
                guess[j] = y
                a = j + 1
                mismatches += 1
                break
        values[ks[:a]] = guess[:a]
        mask[ks[:a]] = True
        t += a
        accepted[a] += 1
    info = {
        "mismatches": mismatches, "accepted": accepted, "iterations": int(accepted.sum()),
        "window": w, "order": pi, "coupler": coupler,
    }
    return SampleResult(values, counted.cost, info)
