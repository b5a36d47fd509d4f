"""Repeated k-DPP sampling by domain sparsification (spec dpp.md §8, §9).

Evidence:
- exact stationarity: the transition matrix built from the sampler's own up/down pieces by
  enumerating the up-draws satisfies πP = π and detailed balance to 1e-12;
- chained mode from an exact start: independent chains pass the exact chi-square test;
- restart mode: the exact law after ``n_steps`` (enumerated) is within ε; sampled outputs
  pass the bootstrap TV test and inclusion z-tests widened by ε (n = 300);
- per-sample cost: kernel/feature entries read per sample do not depend on n;
- power: the same TV test rejects a sampler whose down weights ignore p̃ (wrong D).
"""

from __future__ import annotations

import math
from itertools import combinations, combinations_with_replacement, product

import numpy as np
import pytest

from parasample.dpp import (
    DPP, SparsifiedKDPPSampler, kdpp_inclusion_probabilities, sample_exact_k,
)
from support.dpp_laws import kdpp_law, random_psd
from support.stats import (
    bonferroni_z, chisquare_counts, count_samples, tv_bootstrap_threshold,
    tv_distance,
)

ALPHA = 1e-4


# ----------------------------------------------------------------------------- enumeration
def _down_law(sampler, U, c):
    """{S' ⊆ U, |S'| = k: P(S' | U, c)} from the sampler's own down kernel."""
    A = sampler.down_kernel(U, c)
    subs = np.array(list(combinations(range(U.size), sampler.k)), dtype=np.int64)
    dets = np.linalg.det(A[subs[:, :, None], subs[:, None, :]])
    dets = np.maximum(dets, 0.0)
    return [tuple(int(x) for x in U[s]) for s in subs], dets / dets.sum()


def exact_transition(sampler, states, *, ordered=False):
    """Transition matrix of one down–up step over ``states`` (k-subsets, sorted tuples)."""
    n, r = sampler.n, sampler.t - sampler.k
    p = sampler.overestimates / sampler.overestimates.sum()
    index = {S: i for i, S in enumerate(states)}
    P = np.zeros((len(states), len(states)))
    draws_iter = (product(range(n), repeat=r) if ordered
                  else combinations_with_replacement(range(n), r))
    for draws in draws_iter:
        draws = np.array(draws, dtype=np.int64)
        cnt = np.bincount(draws, minlength=n)
        prob = float(np.prod(p ** cnt))
        if not ordered:
            prob *= math.factorial(r) / np.prod([math.factorial(int(x)) for x in cnt])
        if prob == 0.0:
            continue
        for i, S in enumerate(states):
            U, c = sampler.up(np.array(S, dtype=np.int64), draws)
            subs, law = _down_law(sampler, U, c)
            for S2, w in zip(subs, law):
                P[i, index[S2]] += prob * w
    return P


def restart_law(sampler, states):
    """Exact law of a restart-mode output: δ_{S₀} Pⁿ."""
    P = exact_transition(sampler, states)
    x = np.zeros(len(states))
    x[states.index(tuple(int(v) for v in sampler._start))] = 1.0
    for _ in range(sampler.n_steps):
        x = x @ P
    return x


def _instance(n, k, seed):
    rng = np.random.default_rng(seed)
    L = random_psd(n, rng, scale=1.5)
    law = kdpp_law(L, k)
    return DPP.from_likelihood(L), list(law), np.array(list(law.values())), rng


class _WrongD(SparsifiedKDPPSampler):
    """Power check: down weights c instead of c/p̃ (p̃ ignored)."""

    def down_weights(self, U, c):
        return c.astype(np.float64)


# ----------------------------------------------------------------------------- tests
def test_exact_stationarity_and_detailed_balance():
    dpp, states, pi, rng = _instance(6, 2, 0)
    ptilde = rng.uniform(0.05, 1.0, size=6)
    s = SparsifiedKDPPSampler(dpp, 2, t=4, overestimates=ptilde, rng=1)
    P = exact_transition(s, states, ordered=True)     # all 36 ordered up-draws
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-12)
    flow = pi[:, None] * P
    np.testing.assert_allclose(flow, flow.T, atol=1e-12)
    # ordered and multiset enumerations agree; the chain is irreducible (P² > 0)
    np.testing.assert_allclose(exact_transition(s, states), P, atol=1e-13)
    assert np.all(np.linalg.matrix_power(P, 3) > 0)
    # the wrong tilt is not stationary (the test above has power)
    w = _WrongD(dpp, 2, t=4, overestimates=ptilde, rng=1)
    assert np.abs(pi @ exact_transition(w, states) - pi).max() > 1e-3


def test_step_uses_given_draws_and_stays_in_support():
    dpp, states, pi, rng = _instance(6, 2, 3)
    s = SparsifiedKDPPSampler(dpp, 2, t=4, rng=2)
    S = np.array([0, 5])
    for seed in range(20):
        out = s.step(S, draws=[1, 1], rng=seed)
        assert set(out.tolist()) <= {0, 1, 5} and out.size == 2 and out.dtype == np.int64


def test_features_down_dpp_matches_down_kernel():
    rng = np.random.default_rng(4)
    dpp = DPP.from_features(rng.normal(size=(200, 5)))
    s = SparsifiedKDPPSampler(dpp, 4, rng=0)
    assert s._features
    U, c = s.up(s._start, s.draw_up(rng))
    np.testing.assert_allclose(s._down_dpp(U, c).likelihood_kernel(), s.down_kernel(U, c),
                               rtol=1e-10, atol=1e-10 * np.abs(s.down_kernel(U, c)).max())


def test_overestimates_dominate_marginals():
    rng = np.random.default_rng(5)
    B = rng.normal(size=(300, 12)) * np.exp(rng.normal(size=(300, 1)))
    k = 6
    p = kdpp_inclusion_probabilities(DPP.from_features(B), k)
    for dpp, kw in [(DPP.from_features(B), {}), (DPP.from_likelihood(B @ B.T), {}),
                    (DPP.from_likelihood(B @ B.T), {"landmarks": 40})]:
        s = SparsifiedKDPPSampler(dpp, k, rng=0, **kw)
        assert np.all(s.overestimates >= p - 1e-12)
        assert s.overestimates.sum() < 4 * k + 2
        assert s.overestimates.min() >= 1e-3 * k / 300
    exact = SparsifiedKDPPSampler(DPP.from_features(B), k).overestimates
    ny = SparsifiedKDPPSampler(DPP.from_likelihood(B @ B.T), k, landmarks=40, rng=0).overestimates
    assert np.all(ny >= exact - 1e-9)      # Nyström τ̃ ≥ τ (same α or larger sum)


def test_chained_from_exact_start_passes_chi_square():
    dpp, states, pi, rng = _instance(7, 3, 6)
    s = SparsifiedKDPPSampler(dpp, 3, t=5, n_steps=2, mode="chained", rng=7)
    gen = np.random.default_rng(8)
    out = []
    for _ in range(3000):
        s.reset(sample_exact_k(dpp, 3, rng=gen))
        out.append(s.sample(rng=gen))
    stat, pval, df = chisquare_counts(count_samples(out, states), pi)
    assert pval > ALPHA


def test_restart_defaults_exact_tv_within_eps():
    """Exact law of a default restart output (enumerated) is within ε = 0.1 in TV."""
    dpp, states, pi, rng = _instance(7, 2, 9)
    s = SparsifiedKDPPSampler(dpp, 2, rng=0)
    law = restart_law(s, states)
    tv = 0.5 * np.abs(law - pi).sum()
    assert tv <= s.eps, tv


def test_restart_bootstrap_tv():
    dpp, states, pi, rng = _instance(8, 3, 10)
    s = SparsifiedKDPPSampler(dpp, 3, rng=11)
    M = 4000
    counts = count_samples([s.sample() for _ in range(M)], states)
    q = tv_bootstrap_threshold(pi, M)
    assert tv_distance(counts, pi) <= s.eps + q


def test_power_wrong_down_weights_rejected():
    # non-uniform p̃; exact TV after 8 steps (enumerated): 0.017 correct D, 0.366 wrong D
    dpp, states, pi, rng = _instance(8, 3, 12)
    ptilde = np.where(np.arange(8) < 4, 1.0, 0.25)
    M = 2000
    q = tv_bootstrap_threshold(pi, M)
    good = SparsifiedKDPPSampler(dpp, 3, overestimates=ptilde, n_steps=8, rng=13)
    bad = _WrongD(dpp, 3, overestimates=ptilde, n_steps=8, rng=13)
    tv_good = tv_distance(count_samples([good.sample() for _ in range(M)], states), pi)
    tv_bad = tv_distance(count_samples([bad.sample() for _ in range(M)], states), pi)
    assert tv_bad > good.eps + q, (tv_bad, q)
    assert tv_good <= good.eps + q, (tv_good, q)


def test_inclusion_medium_instance():
    rng = np.random.default_rng(14)
    B = rng.normal(size=(300, 15)) * np.exp(0.7 * rng.normal(size=(300, 1)))
    dpp, k, M = DPP.from_features(B), 6, 1500
    p = kdpp_inclusion_probabilities(dpp, k)
    s = SparsifiedKDPPSampler(dpp, k, rng=15)
    counts = np.zeros(300)
    for _ in range(M):
        counts[s.sample()] += 1
    z = bonferroni_z(ALPHA, 300)
    tol = z * np.sqrt(p * (1 - p) / M) + s.eps
    assert np.all(np.abs(counts / M - p) <= tol)
    # the estimate is in fact much closer than ε: L1 error comparable to sampling noise
    assert np.abs(counts / M - p).sum() < 3 * np.sqrt(p * (1 - p) / M).sum()


class _CountingArray(np.ndarray):
    reads = 0

    def __getitem__(self, item):
        out = np.asarray(super().__getitem__(item))
        _CountingArray.reads += out.size
        return out


class _CountingDPP(DPP):
    reads = 0

    def likelihood_submatrix(self, rows, cols=None):
        out = super().likelihood_submatrix(rows, cols)
        _CountingDPP.reads += out.size
        return out


def _reads_per_sample_features(n, rng):
    B = rng.normal(size=(n, 8))
    s = SparsifiedKDPPSampler(DPP.from_features(B), 5, rng=0)
    s.dpp._matrix = B.view(_CountingArray)
    _CountingArray.reads = 0
    for _ in range(10):
        s.sample()
    return _CountingArray.reads / 10, s


def _reads_per_sample_dense(n, rng):
    B = rng.normal(size=(n, 8))
    s = SparsifiedKDPPSampler(_CountingDPP.from_likelihood(B @ B.T), 5, rng=0)
    _CountingDPP.reads = 0
    for _ in range(10):
        s.sample()
    return _CountingDPP.reads / 10, s


def test_per_sample_cost_independent_of_n():
    rng = np.random.default_rng(16)
    for n_small, n_big, fn in [(100, 20000, _reads_per_sample_features),
                               (100, 1500, _reads_per_sample_dense)]:
        r_small, s_small = fn(n_small, rng)
        r_big, s_big = fn(n_big, rng)
        assert s_small.t == s_big.t
        d = 8 if fn is _reads_per_sample_features else s_big.t
        bound = s_big.n_steps * s_big.t * d
        assert 0 < r_small <= bound and 0 < r_big <= bound


def test_errors_and_determinism():
    dpp, states, pi, rng = _instance(6, 2, 17)
    with pytest.raises(ValueError):
        SparsifiedKDPPSampler(dpp, 7)
    with pytest.raises(ValueError):
        SparsifiedKDPPSampler(dpp, 2, mode="bogus")
    with pytest.raises(ValueError):
        SparsifiedKDPPSampler(dpp, 2, t=1)
    with pytest.raises(ValueError):
        SparsifiedKDPPSampler(dpp, 2, overestimates=np.zeros(6))
    a = SparsifiedKDPPSampler(dpp, 2, rng=3)
    b = SparsifiedKDPPSampler(dpp, 2, rng=3)
    xa, xb = [a.sample() for _ in range(5)], [b.sample() for _ in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(xa, xb))
    assert all(x.dtype == np.int64 and x.size == 2 and np.all(np.diff(x) > 0) for x in xa)
    assert a.preprocess_seconds >= 0 and a.t == 6
