"""Sequential chain rule and parallel speculate/verify/accept (Anari–Gao–Rubinstein).

Both samplers draw their randomness with :func:`draw_randomness` — the order
π = ``rng.permutation(n)``, then coupler randomness indexed by coordinate — so under the same
``rng`` they return the same sample. The parallel sampler's guesses only decide how many
coordinates are accepted per iteration, never their values.

Cost is measured by wrapping ``oracle.marginals`` in :class:`~parasample.core.CountingOracle`:
``cost.rounds`` = number of ``marginals`` calls, ``cost.evaluations`` = total rows.
Every call gets read-only inputs and its answer is checked (shape, values) and renormalised by
:func:`~parasample.autoregressive.oracles.check_marginals`; all arguments are checked before
any randomness is drawn.
"""

from __future__ import annotations

import numpy as np

from ..core import CountingOracle, NumericalError, SampleResult, as_count, as_generator
from .oracles import call_read_only, check_marginals

__all__ = [
    "threshold_coupler", "gumbel_coupler", "default_coupler", "draw_randomness",
    "default_window", "sample_sequential", "sample_parallel", "ADAPTIVE",
]


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
    then ``rng.random(n)`` (threshold) or ``rng.gumbel(size=(n, q))`` (Gumbel). Arguments are
    checked before anything is drawn."""
    n, q = as_count(n, "n", minimum=1), as_count(q, "q", minimum=2)
    coupler = _check_coupler(coupler, q)
    rng = as_generator(rng)
    order = rng.permutation(n)
    r = rng.random(n) if coupler == "threshold" else rng.gumbel(size=(n, q))
    return order, r


ADAPTIVE = "adaptive"


def default_window(n: int) -> int:
    """max(2, round(n^{1/3})) — ``round``, since 4096 ** (1/3) = 15.999…"""
    n = as_count(n, "n", minimum=1)
    return max(2, int(round(n ** (1.0 / 3.0))))


def _ask(oracle, counted, shape, values, mask, targets=None) -> np.ndarray:
    """One counted ``marginals`` call on read-only inputs; the answer is checked against
    ``shape`` and renormalised by :func:`~parasample.autoregressive.oracles.check_marginals`
    (all-NaN rows, i.e. zero-probability pinnings, stay NaN)."""
    name = f"{type(oracle).__name__}.marginals"
    return check_marginals(oracle, call_read_only(counted, name, values, mask, targets), shape)


def _zero_probability_error(oracle, where) -> NumericalError:
    return NumericalError(
        f"{type(oracle).__name__}.marginals answered an all-NaN row {where} (a pinning of "
        "probability zero) for a prefix that the sampler drew from the oracle's own "
        "conditionals, so it has positive probability: the oracle is inconsistent (e.g. a "
        "log_count returning -inf for an event of positive weight)")


def _draw_rows(P: np.ndarray, R: np.ndarray, coupler: str) -> tuple[np.ndarray, np.ndarray]:
    """Couple B checked marginal rows at once (rows from :func:`_ask`: normalised, or all-NaN):
    ``P`` float[B, q], ``R`` the coupler randomness float[B] (threshold) or float[B, q]
    (Gumbel). Returns (draws int64[B], bad bool[B]); a bad (NaN) row's draw is meaningless
    and the caller decides whether the row matters. Every operation is per row and
    elementwise, so a row's draw does not depend on the rows it is batched with."""
    P = np.asarray(P, dtype=np.float64)
    bad = np.isnan(P).any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if coupler == "threshold":
            y = np.asarray(R) < P[:, 1]
        else:
            y = np.argmax(np.log(P) + np.asarray(R), axis=1)
    return y.astype(np.int64), bad


def _draw(p: np.ndarray, r, coupler: str) -> int:
    """Couple one checked marginal row (reference for :func:`_draw_rows`)."""
    p = np.asarray(p, dtype=np.float64)
    if np.isnan(p).any():
        raise NumericalError("cannot draw from a NaN (zero-probability) row")
    if coupler == "threshold":
        return int(r < p[1])
    with np.errstate(divide="ignore"):
        return int(np.argmax(np.log(p) + np.asarray(r)))


def _check_window(window, n: int):
    """``None`` → :func:`default_window`; ``"adaptive"`` stays; else a positive integer."""
    if window is None:
        return default_window(n)
    if isinstance(window, str):
        if window == ADAPTIVE:
            return ADAPTIVE
        raise ValueError(f"window must be a positive integer, None or 'adaptive', got {window!r}")
    return as_count(window, "window", minimum=1)


def oracle_size(oracle) -> tuple[int, int]:
    """(n, q) of an oracle, checked to be integers with n ≥ 1 and q ≥ 2 (never truncated)."""
    return as_count(oracle.n, "oracle.n", minimum=1), as_count(oracle.q, "oracle.q", minimum=2)


def _check_order(order, n: int):
    if order is None:
        return None
    order = np.asarray(order)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(f"order must be a permutation of 0..{n - 1}")
    return order.astype(np.int64)


def _setup(oracle, rng, order, coupler):
    """Check the oracle, coupler and order, then draw (π, r): bad input draws nothing."""
    n, q = oracle_size(oracle)
    coupler = _check_coupler(coupler, q)
    order = _check_order(order, n)
    pi, r = draw_randomness(n, q, rng, coupler=coupler)
    if order is not None:
        pi = order
    return n, q, coupler, pi, r


def sample_sequential(oracle, *, rng=None, order=None, coupler: str | None = None) -> SampleResult:
    """Chain rule: for t = 1..n, i = π(t), x_i = g(P[X_i | x_{π(<t)}], r_i). n rounds."""
    n, q, coupler, pi, r = _setup(oracle, rng, order, coupler)
    values, counted = _run_sequential_lockstep(oracle, n, coupler, pi[None], r[None])
    return SampleResult(values[0], counted.cost, {"order": pi, "coupler": coupler})


def sample_parallel(oracle, *, rng=None, window: int | str | None = None, order=None,
                    coupler: str | None = None) -> SampleResult:
    """Speculate / verify / accept: same output as :func:`sample_sequential`
    under the same ``rng``, in about 2n/w + 2·(mismatches) rounds.

    ``window``: a positive integer, ``None`` (default, max(2, round(n^{1/3}))) or
    ``"adaptive"`` (start at the default, double after a clean iteration, halve
    after a mismatch at j* ≤ W/4, clamp to [2, n]; safe because guesses never decide values).

    ``info``: ``mismatches`` (iterations with a rejected guess), ``accepted`` (histogram:
    ``accepted[a]`` = number of iterations that accepted a coordinates), ``iterations``,
    ``window`` (the integer window, or ``"adaptive"``), ``windows`` (the window w in force at
    each iteration, int64[iterations]; the iteration looks at min(w, n − t) coordinates),
    ``order``, ``coupler``.
    """
    w = _check_window(window, oracle_size(oracle)[0])  # before _setup draws
    n, q, coupler, pi, r = _setup(oracle, rng, order, coupler)
    return _run_parallel(oracle, n, coupler, pi, r, w, verify=True)


def _run_parallel(oracle, n, coupler, pi, r, w, *, verify=True) -> SampleResult:
    """The speculate/verify/accept loop for one sample. ``verify=False`` accepts every draft
    unchecked: a WRONG sampler, kept only so that tests can check their power against it."""
    values, counted, st = _run_parallel_lockstep(oracle, n, coupler, np.asarray(pi)[None],
                                                 np.asarray(r)[None], w, verify=verify)
    info = {
        "mismatches": int(st["mismatches"][0]), "accepted": st["accepted"][0],
        "iterations": int(st["iterations"][0]), "window": w, "windows": st["windows"][0],
        "order": pi, "coupler": coupler,
    }
    return SampleResult(values[0], counted.cost, info)


# ------------------------------------------------------------------ lockstep engines
# Both samplers run through these engines: S samples (S = 1 for the single-sample API), each
# with its own order pis[s] and randomness rs[s], each with its own state (prefix length t,
# window w). Every oracle call carries the rows of all samples that need that kind of row, so
# a sample's rows — contents and order — are exactly those of its single run.

def _run_sequential_lockstep(oracle, n, coupler, pis, rs):
    """Chain rule for S samples at once: n calls of S targeted rows."""
    S = len(pis)
    q = rs.shape[2] if rs.ndim == 3 else 2  # Gumbel randomness is [S, n, q]; threshold: q = 2
    counted = CountingOracle(oracle.marginals)
    values = np.zeros((S, n), dtype=np.int64)
    mask = np.zeros((S, n), dtype=bool)
    rows = np.arange(S)
    for t in range(n):
        i = pis[:, t]
        p = _ask(oracle, counted, (S, q), values, mask, i)
        y, bad = _draw_rows(p, rs[rows, i], coupler)
        if bad.any():
            raise _zero_probability_error(oracle, int(np.argmax(bad)))
        values[rows, i] = y
        mask[rows, i] = True
    return values, counted


def _next_windows(w, W, clean, jstar, n):
    """Adaptive rule: double after a clean iteration, halve after a mismatch at
    j* ≤ W/4 (j* 1-based), clamp to [2, n]."""
    w = np.where(clean, 2 * w, np.where(4 * jstar <= W, w // 2, w))
    return np.clip(w, 2, max(n, 2))


def _run_parallel_lockstep(oracle, n, coupler, pis, rs, window, *, verify=True):
    """Speculate / verify / accept for S samples in lockstep.

    Each iteration is one speculation call (one full row per unfinished sample) followed by
    one verification call (W_s − 1 targeted rows per sample with W_s ≥ 2), skipped when no
    sample has W_s ≥ 2. So the phases of all samples stay aligned, a call never mixes full
    and targeted rows, and a sample is in a call iff its single run makes that call.

    Returns (values int64[S, n], the :class:`CountingOracle`, per-sample statistics).
    """
    S = len(pis)
    q = rs.shape[2] if rs.ndim == 3 else 2  # Gumbel randomness is [S, n, q]; threshold: q = 2
    adaptive = window == ADAPTIVE
    w0 = default_window(n) if adaptive else int(window)
    counted = CountingOracle(oracle.marginals)
    values = np.zeros((S, n), dtype=np.int64)
    mask = np.zeros((S, n), dtype=bool)
    t = np.zeros(S, dtype=np.int64)
    w = np.full(S, w0, dtype=np.int64)
    hist = (max(w0, n) if adaptive else w0) + 1
    accepted = np.zeros((S, hist), dtype=np.int64)
    mismatches = np.zeros(S, dtype=np.int64)
    rounds = np.zeros(S, dtype=np.int64)
    evaluations = np.zeros(S, dtype=np.int64)
    windows: list[list[int]] = [[] for _ in range(S)]
    spec_rounds = ver_rounds = 0
    while True:
        act = np.flatnonzero(t < n)
        A = act.size
        if A == 0:
            break
        ar = np.arange(A)
        W = np.minimum(w[act], n - t[act])
        Wm = int(W.max())
        jj = np.arange(Wm)
        valid = jj[None, :] < W[:, None]
        K = pis[act[:, None], np.minimum(t[act][:, None] + jj[None, :], n - 1)]  # k_j
        # Speculate: one row per sample pinning its prefix, all marginals.
        phat = _ask(oracle, counted, (A, n, q), values[act], mask[act])
        spec_rounds += 1
        rounds[act] += 1
        evaluations[act] += 1
        Pk = phat[ar[:, None], K][valid]
        g, bad = _draw_rows(Pk, rs[act[:, None], K][valid], coupler)
        if bad.any():
            b, j = np.argwhere(valid)[np.argmax(bad)]
            raise _zero_probability_error(oracle, (int(b), int(K[b, j])))
        G = np.zeros((A, Wm), dtype=np.int64)
        G[valid] = g
        a = W.copy()  # accepted count per active sample
        clean = np.ones(A, dtype=bool)
        jstar = np.zeros(A, dtype=np.int64)  # 1-based first mismatch (if not clean)
        ver = np.flatnonzero(W >= 2) if verify else np.empty(0, dtype=np.int64)
        if ver.size:
            # Verify: row j (j = 2..W) pins prefix + guesses 1..j-1 and targets k_j.
            nrow = W[ver] - 1
            owner = np.repeat(ver, nrow)  # index into act
            starts = np.cumsum(nrow) - nrow
            jrow = np.arange(owner.size) - np.repeat(starts, nrow) + 1  # 0-based j, >= 1
            V = values[act[owner]]
            M = mask[act[owner]]
            for m in range(Wm - 1):
                sel = np.flatnonzero(jrow > m)
                if sel.size == 0:
                    break
                km = K[owner[sel], m]
                V[sel, km] = G[owner[sel], m]
                M[sel, km] = True
            tg = K[owner, jrow]
            pv = _ask(oracle, counted, (owner.size, q), V, M, tg)
            ver_rounds += 1
            rounds[act[ver]] += 1
            evaluations[act[ver]] += nrow
            y, bad = _draw_rows(pv, rs[act[owner], tg], coupler)
            # Accept: y_1 = guess_1 (same marginal, same randomness); stop at the first
            # mismatch. A bad (NaN) row before it is impossible and raises.
            stop = np.zeros((A, Wm), dtype=bool)
            stop[owner, jrow] = bad | (y != G[owner, jrow])
            has = stop[ver].any(axis=1)
            first = np.argmax(stop[ver], axis=1)
            badm = np.zeros((A, Wm), dtype=bool)
            badm[owner, jrow] = bad
            hit_bad = has & badm[ver, first]
            if hit_bad.any():
                # A NaN row has a zero-probability earlier guess, hence a mismatch first.
                row = np.flatnonzero((owner == ver[hit_bad][0]) & (jrow == first[hit_bad][0]))[0]
                raise _zero_probability_error(oracle, int(row))
            Y = np.zeros((A, Wm), dtype=np.int64)
            Y[owner, jrow] = y
            mm = ver[has]
            G[mm, first[has]] = Y[mm, first[has]]
            a[mm] = first[has] + 1
            clean[mm] = False
            jstar[mm] = first[has] + 1
            mismatches[act[mm]] += 1
        take = jj[None, :] < a[:, None]
        rr, cc = np.nonzero(take)
        values[act[rr], K[rr, cc]] = G[rr, cc]
        mask[act[rr], K[rr, cc]] = True
        for s in act:
            windows[s].append(int(w[s]))
        accepted[act, a] += 1
        t[act] += a
        if adaptive:
            w[act] = _next_windows(w[act], W, clean, jstar, n)
    stats = {
        "rounds": rounds, "evaluations": evaluations, "mismatches": mismatches,
        "accepted": accepted, "iterations": accepted.sum(axis=1),
        "windows": [np.array(x, dtype=np.int64) for x in windows],
        "speculation_rounds": spec_rounds, "verification_rounds": ver_rounds,
    }
    return values, counted, stats
