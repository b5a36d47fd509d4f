"""Goodness-of-fit on COUNTS, for exactness checks in tests, the tour and benchmarks.

- :func:`chisquare_counts`: Pearson chi-square, pooling bins with expected count < 5.
- :func:`tv_bootstrap_threshold`: the 99.9% quantile of TV(multinomial(M, p)/M, p), the
  null against which an approximate sampler's TV̂ is judged (TV̂ is biased up ≈ √(bins/M)).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["chisquare_counts", "tv_distance", "tv_bootstrap_threshold"]


def chisquare_counts(counts, probs, min_expected: float = 5.0) -> tuple[float, float, int]:
    """Chi-square of observed ``counts`` against ``probs``; returns (statistic, p, df).

    Bins with expected count < ``min_expected`` are pooled (adding the next-smallest bins
    until the pool reaches ``min_expected``); df = bins − 1. Never pass frequencies.
    """
    counts = np.asarray(counts, dtype=float)
    probs = np.asarray(probs, dtype=float)
    if counts.shape != probs.shape:
        raise ValueError("counts and probs must have the same shape")
    expected = counts.sum() * probs / probs.sum()
    order = np.argsort(expected, kind="stable")
    pool = [i for i in order if expected[i] < min_expected]
    rest = [i for i in order if expected[i] >= min_expected]
    while pool and expected[pool].sum() < min_expected and rest:
        pool.append(rest.pop(0))
    obs, exp = counts[rest], expected[rest]
    if pool:
        obs = np.append(obs, counts[pool].sum())
        exp = np.append(exp, expected[pool].sum())
    if len(obs) < 2:
        return 0.0, 1.0, 0
    stat = float(np.sum((obs - exp) ** 2 / exp))
    df = len(obs) - 1
    return stat, float(stats.chi2.sf(stat, df)), df


def tv_distance(counts, probs) -> float:
    """Total variation between empirical frequencies and ``probs``."""
    counts = np.asarray(counts, dtype=float)
    return 0.5 * float(np.abs(counts / counts.sum() - np.asarray(probs)).sum())


def tv_bootstrap_threshold(probs, M: int, *, reps: int = 2000, quantile: float = 0.999,
                           seed: int = 12345) -> float:
    """``quantile`` of TV between multinomial(M, p)/M and p over ``reps`` simulations."""
    rng = np.random.default_rng(seed)
    p = np.asarray(probs, dtype=float)
    p = p / p.sum()
    sims = rng.multinomial(M, p, size=reps) / M
    return float(np.quantile(0.5 * np.abs(sims - p).sum(axis=1), quantile))
