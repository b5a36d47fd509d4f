"""Statistical helpers for tests: everything works on COUNTS (spec dpp.md §9).

- :func:`chisquare_counts` pools bins with expected count < 5 and returns the p-value.
- :func:`tv_bootstrap_threshold` is the 99.9% quantile of TV between multinomial samples
  and their own law (TV̂ is biased upward by ≈ sqrt(bins/M), hence the null).
- :func:`inclusion_zscores` gives binomial z-scores and the Bonferroni threshold.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Hashable, Iterable, Sequence

import numpy as np
from scipy import stats

from parasample.core.stats import chisquare_counts, tv_bootstrap_threshold, tv_distance

__all__ = [
    "chisquare_counts", "law_pvalue", "tv_distance", "tv_bootstrap_threshold",
    "inclusion_zscores", "bonferroni_z", "all_subsets", "count_samples",
]


def all_subsets(n: int, k: int | None = None) -> list[tuple[int, ...]]:
    """All subsets of range(n) (or all k-subsets) as sorted tuples."""
    sizes = range(n + 1) if k is None else [k]
    return [S for m in sizes for S in combinations(range(n), m)]


def count_samples(samples: Iterable[Sequence[int]], support: list[Hashable]) -> np.ndarray:
    """Counts of each support element among samples; raises on a sample outside it."""
    index = {s: i for i, s in enumerate(support)}
    counts = np.zeros(len(support), dtype=np.int64)
    for x in samples:
        key = tuple(int(v) for v in x)
        if key not in index:
            raise AssertionError(f"sample {key} is outside the support of the law")
        counts[index[key]] += 1
    return counts


def law_pvalue(samples, law: dict) -> float:
    """Chi-square p-value of samples (sorted tuples) against an exact law {subset: prob}."""
    support = list(law)
    counts = count_samples(samples, support)
    return chisquare_counts(counts, np.array([law[s] for s in support]))[1]


def oracle_counts(oracle, sampler, S: int, seed: int, **kw) -> np.ndarray:
    """Counts over [q]^n (ravelled) of S samples ``sampler(oracle, rng=child, **kw).sample``,
    one spawned child of ``seed`` per sample."""
    counts = np.zeros(oracle.q ** oracle.n, dtype=np.int64)
    for child in np.random.default_rng(seed).spawn(S):
        x = sampler(oracle, rng=child, **kw).sample
        counts[np.ravel_multi_index(tuple(x), (oracle.q,) * oracle.n)] += 1
    return counts


def bonferroni_z(alpha: float, m: int) -> float:
    """Two-sided Bonferroni z threshold z_{1 - alpha/(2m)}."""
    return float(stats.norm.isf(alpha / (2 * m)))


def inclusion_zscores(counts: np.ndarray, probs: np.ndarray, M: int) -> np.ndarray:
    """z-scores of binomial counts X_i ~ Bin(M, p_i)."""
    probs = np.asarray(probs, dtype=float)
    sd = np.sqrt(M * probs * (1 - probs))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.asarray(counts) - M * probs) / sd
    return np.where(sd > 0, z, np.where(np.asarray(counts) == M * probs, 0.0, np.inf))


def binomial_pvalues(counts: np.ndarray, probs: np.ndarray, M: int) -> np.ndarray:
    """Exact two-sided binomial p-values (for M p (1-p) < 10)."""
    return np.array([stats.binomtest(int(c), M, float(p)).pvalue for c, p in zip(counts, probs)])
