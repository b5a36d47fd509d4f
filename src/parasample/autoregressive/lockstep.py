"""Lockstep batching: S samples, one oracle call per round.

Sample s gets its own randomness from child s of ``as_generator(rng).spawn(S)``, consumed
exactly as a single call consumes its ``rng`` (:func:`~parasample.autoregressive.draw_randomness`
via the samplers' ``_setup``), so

    sample_parallel_batch(oracle, S, rng=rng).sample[s]
        == sample_parallel(oracle, rng=as_generator(rng).spawn(S)[s]).sample

and likewise for :func:`sample_sequential_batch` and ``sample_sequential`` — "a batch equals S
single calls" — bit for bit whenever the oracle is batch invariant (every exact oracle here;
the digits model with ``deterministic=True``). With a batch-dependent oracle (the batched
digits model) rows may differ in the last bits, which can flip a draw only at a coupler tie.

**Accounting.** Every sample runs its own speculate/verify state machine (prefix length,
window, mismatches). The phases are aligned: each iteration is one *speculation* call holding
one full row (``targets=None``) per unfinished sample, then one *verification* call holding the
W_s − 1 targeted rows of every sample with W_s ≥ 2 (skipped if there is none). A call never
mixes full and targeted rows, and sample s is in a call iff its single run makes that call, so

- ``cost.rounds`` = number of batched ``marginals`` calls, with
  max_s rounds_s ≤ rounds ≤ 2·max_s iterations_s (for windows ≥ 2: ≤ max_s rounds_s + 1,
  because W_s = 1 only in a sample's last iteration);
- ``cost.evaluations`` = total rows = Σ_s evaluations_s, exactly the sum of the single calls.

The sequential batch makes n calls of S targeted rows (rounds n, evaluations S·n).
"""

from __future__ import annotations

import numpy as np

from ..core import Cost, SampleResult, as_count, as_generator
from .samplers import (
    _check_coupler, _check_window, _run_parallel_lockstep, _run_sequential_lockstep, _setup,
    oracle_size,
)

__all__ = ["sample_parallel_batch", "sample_sequential_batch"]


def _setup_batch(oracle, n_samples, rng, coupler):
    """Check everything, then spawn S children and draw (π_s, r_s) from child s."""
    n_samples = as_count(n_samples, "n_samples", minimum=1)
    _check_coupler(coupler, oracle_size(oracle)[1])  # before spawning: rng stays as it was
    children = as_generator(rng).spawn(n_samples)
    pis, rs = [], []
    for child in children:
        n, q, coupler_, pi, r = _setup(oracle, child, None, coupler)
        pis.append(pi)
        rs.append(r)
    return n, q, coupler_, np.stack(pis), np.stack(rs)


def sample_sequential_batch(oracle, n_samples: int, *, rng=None,
                            coupler: str | None = None) -> SampleResult:
    """S = ``n_samples`` chain-rule samples in lockstep: n calls of S targeted rows.

    Returns a :class:`SampleResult` with ``sample`` int64[S, n], ``cost`` = (n rounds, S·n
    evaluations) and ``info``: ``orders`` int64[S, n], ``coupler``, ``n_samples``,
    ``rounds`` / ``evaluations`` (per sample, int64[S]; n each).
    """
    n, q, coupler, pis, rs = _setup_batch(oracle, n_samples, rng, coupler)
    values, counted = _run_sequential_lockstep(oracle, n, coupler, pis, rs)
    S = len(pis)
    info = {"orders": pis, "coupler": coupler, "n_samples": S,
            "rounds": np.full(S, n, dtype=np.int64),
            "evaluations": np.full(S, n, dtype=np.int64)}
    return SampleResult(values, Cost(counted.rounds, counted.evaluations), info)


def sample_parallel_batch(oracle, n_samples: int, *, rng=None, window: int | str | None = None,
                          coupler: str | None = None) -> SampleResult:
    """S = ``n_samples`` speculate/verify/accept samples in lockstep (one call per round).

    ``window`` as in :func:`~parasample.autoregressive.sample_parallel` (integer, ``None`` for
    max(2, round(n^{1/3})), or ``"adaptive"``; each sample adapts its own window).

    Returns a :class:`SampleResult` with ``sample`` int64[S, n], ``cost.rounds`` = batched
    calls, ``cost.evaluations`` = total rows, and ``info``:

    - per sample (arrays of length S): ``rounds`` and ``evaluations`` (what the single call
      would cost), ``iterations``, ``mismatches``; ``accepted`` int64[S, w + 1] (histograms of
      accepted lengths); ``windows`` (list of S arrays: the window in force per iteration);
    - batch: ``batch_rounds`` (= ``cost.rounds``), ``speculation_rounds``,
      ``verification_rounds``, ``max_sample_rounds``;
    - ``window``, ``orders`` int64[S, n], ``coupler``, ``n_samples``.
    """
    w = _check_window(window, oracle_size(oracle)[0])  # before spawning: rng stays as is
    n, q, coupler, pis, rs = _setup_batch(oracle, n_samples, rng, coupler)
    values, counted, st = _run_parallel_lockstep(oracle, n, coupler, pis, rs, w)
    info = dict(st)
    info.update({
        "batch_rounds": counted.rounds, "max_sample_rounds": int(st["rounds"].max()),
        "window": w, "orders": pis, "coupler": coupler, "n_samples": len(pis),
    })
    return SampleResult(values, Cost(counted.rounds, counted.evaluations), info)
