"""Repeated k-DPP sampling by domain sparsification (spec dpp.md §8, §9).

Evidence:
- exact stationarity: the transition matrix built from the sampler's own up/down pieces by
  enumerating the up-draws satisfies πP = π and detailed balance to 1e-12; the multiset
  enumeration of :mod:`parasample.bench.sparsified_tv` equals the ordered one;
- restart mode: the exact law after the rule's s(ε) steps (enumerated, no sampling noise) is
  within ε for every n = 6..9, every k < n, ε ∈ {0.1, 0.05, 0.01}, default t and t = k + 1;
  t ≥ n samples exactly (chi-square); sampled outputs pass the bootstrap TV test and
  inclusion z-tests widened by ε (n = 300);
- chained mode: from an exact start, the exact chi-square test; from S₀, every output's
  enumerated law is within ε;
- fewer steps than the rule warn; bad counts are rejected before any random draw;
- per-sample cost: kernel/feature entries read per step do not depend on n;
- power: the exact-law check and the TV test reject a sampler whose down weights ignore p̃.
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations, combinations_with_replacement, product

import numpy as np
import pytest
from support.dpp_laws import kdpp_law, random_psd
from support.stats import (
    bonferroni_z,
    chisquare_counts,
    count_samples,
    tv_bootstrap_threshold,
    tv_distance,
)

from parasample.bench.sparsified_tv import (
    RULES,
    exact_output_law,
    exact_transition,
    random_kernel,
    rule_sampler,
)
from parasample.dpp import (
    DPP,
    SparsifiedKDPPSampler,
    kdpp_inclusion_probabilities,
    sample_exact_k,
)

ALPHA = 1e-4
KINDS = ("dense", "heavy-tailed", "low-rank", "clustered")


# ----------------------------------------------------------------------------- enumeration
def _down_law(sampler, U, c):
    """{S' ⊆ U, |S'| = k: P(S' | U, c)} from the sampler's own down kernel."""
    A = sampler.down_kernel(U, c)
    subs = np.array(list(combinations(range(U.size), sampler.k)), dtype=np.int64)
    dets = np.linalg.det(A[subs[:, :, None], subs[:, None, :]])
    dets = np.maximum(dets, 0.0)
    return [tuple(int(x) for x in U[s]) for s in subs], dets / dets.sum()


def ordered_transition(sampler, states, *, ordered=False):
    """Transition matrix of one down–up step over ``states`` by enumerating the up-draws
    one by one (independent of the bench module's vectorised enumeration)."""
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


def _tv(x, y):
    return 0.5 * float(np.abs(np.asarray(x) - np.asarray(y)).sum())


def _instance(n, k, seed):
    rng = np.random.default_rng(seed)
    L = random_psd(n, rng, scale=1.5)
    law = kdpp_law(L, k)
    return DPP.from_likelihood(L), list(law), np.array(list(law.values())), rng


class _WrongD(SparsifiedKDPPSampler):
    """Power check: down weights c instead of c/p̃ (p̃ ignored)."""

    def down_weights(self, U, c):
        return np.asarray(c, dtype=np.float64) + 0.0 * self.overestimates[U]


# ----------------------------------------------------------------------------- the chain
def test_exact_stationarity_and_detailed_balance():
    dpp, states, pi, rng = _instance(6, 2, 0)
    ptilde = rng.uniform(0.05, 1.0, size=6)
    s = SparsifiedKDPPSampler(dpp, 2, t=4, overestimates=ptilde, rng=1)
    P = ordered_transition(s, states, ordered=True)     # all 36 ordered up-draws
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-12)
    flow = pi[:, None] * P
    np.testing.assert_allclose(flow, flow.T, atol=1e-12)
    # ordered, multiset and vectorised (bench) enumerations agree; P³ > 0 (irreducible)
    np.testing.assert_allclose(ordered_transition(s, states), P, atol=1e-13)
    bench_states, P_bench = exact_transition(s)
    assert bench_states == states
    np.testing.assert_allclose(P_bench, P, atol=1e-13)
    assert np.all(np.linalg.matrix_power(P, 3) > 0)
    # the wrong tilt is not stationary (the test above has power), in both enumerations
    w = _WrongD(dpp, 2, t=4, overestimates=ptilde, rng=1)
    assert np.abs(pi @ ordered_transition(w, states) - pi).max() > 1e-3
    assert np.abs(pi @ exact_transition(w)[1] - pi).max() > 1e-3


def test_step_uses_given_draws_and_stays_in_support():
    dpp, _states, _pi, _rng = _instance(6, 2, 3)
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
    U, c = s.up(s.start, s.draw_up(rng))
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


# ----------------------------------------------------------------------------- exact TV ≤ ε
def _grid_samplers(eps):
    """One random kernel per (n, k), n = 6..9, k = 1..n−1; t = default, t = k + 1, and
    t = k + 1 with p̃ = the exact marginals and the least likely start (stress)."""
    rng = np.random.default_rng(20)
    for n in range(6, 10):
        for k in range(1, n):
            dpp = DPP.from_likelihood(random_kernel(KINDS[(n + k) % 4], n, k, rng))
            for rule in RULES:
                s = rule_sampler(rule, dpp, k, eps)
                if s is not None:
                    yield s


def test_restart_exact_tv_within_eps_every_k():
    """The enumerated law of one restart output is within ε (no sampling noise) for every
    n = 6..9, k < n (k close to n included), ε ∈ {0.1, 0.05, 0.01}, default t, t = k + 1 and
    the stress case. Before the step rule (t capped at n, 4 steps), 42 of these 66 cases
    exceeded ε = 0.1 (largest TV 0.86)."""
    chains = 0
    for eps in (0.1, 0.05, 0.01):
        for s in _grid_samplers(eps):
            _, law, target = exact_output_law(s)
            tv = _tv(law, target)
            assert tv <= eps, (s, eps, tv)
            assert tv <= s.tv_bound() + 1e-12
            chains += not s.exact
    assert chains >= 3 * 2 * 22    # k ≤ n − 2: t = k + 1 and stress run the chain


def test_steps_follow_the_rule_and_t_at_least_n_is_exact():
    dpp, states, pi, _ = _instance(8, 6, 21)
    s = SparsifiedKDPPSampler(dpp, 6, rng=0)          # the audit's case: t = 34 ≥ n = 8
    assert s.exact and s.tv_bound() == 0.0 and s.n_steps == 0
    chain = SparsifiedKDPPSampler(dpp, 6, t=7, rng=0)
    lam, h = chain.contraction, chain._log_inv_start
    mass = max(chain.overestimates.sum(), 6) + 1
    assert lam == pytest.approx(mass / (mass + 1))              # t − k = 1
    for eps in (0.1, 0.01):
        s_eps = chain.steps_for(eps)
        assert lam ** s_eps * h <= 2 * eps * eps < lam ** (s_eps - 1) * h
    assert chain.n_steps == chain.steps_for(0.1) > 4
    assert chain.steps_for(0.01) > chain.steps_for(0.05) > chain.steps_for(0.1)
    # H₀ bounds log 1/μ(S₀)
    i0 = states.index(tuple(int(v) for v in chain.start))
    assert h >= -math.log(pi[i0])


def test_exact_fallback_law_chi_square():
    dpp, states, pi, _rng = _instance(8, 6, 22)
    s = SparsifiedKDPPSampler(dpp, 6, rng=23)
    gen = np.random.default_rng(24)
    counts = count_samples([s.sample(rng=gen) for _ in range(3000)], states)
    assert chisquare_counts(counts, pi)[1] > ALPHA


def test_power_exact_tv_detects_wrong_tilt():
    dpp, _states, _pi, _rng = _instance(8, 3, 12)
    ptilde = np.where(np.arange(8) < 4, 1.0, 0.25)
    good = SparsifiedKDPPSampler(dpp, 3, t=6, overestimates=ptilde, rng=13)
    bad = _WrongD(dpp, 3, t=6, overestimates=ptilde, rng=13)
    assert _tv(*exact_output_law(good)[1:]) <= good.eps
    assert _tv(*exact_output_law(bad)[1:]) > 2 * bad.eps


def test_few_steps_warn_and_lose_the_guarantee():
    dpp, _states, _pi, _rng = _instance(8, 5, 25)
    ref = SparsifiedKDPPSampler(dpp, 5, t=6, rng=0)
    with pytest.warns(UserWarning, match="guarantee"):
        few = SparsifiedKDPPSampler(dpp, 5, t=6, n_steps=4, rng=0)
    assert few.tv_bound() > few.eps >= ref.tv_bound()
    assert _tv(*exact_output_law(few)[1:]) > few.eps      # it really is worse than ε
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SparsifiedKDPPSampler(dpp, 5, t=6, n_steps=ref.steps_for_eps, rng=0)
        SparsifiedKDPPSampler(dpp, 5, n_steps=1, rng=0)   # t ≥ n: exact, steps unused


# ----------------------------------------------------------------------------- sampling
def test_chained_from_exact_start_passes_chi_square():
    dpp, states, pi, _rng = _instance(7, 3, 6)
    with pytest.warns(UserWarning):
        s = SparsifiedKDPPSampler(dpp, 3, t=5, n_steps=2, mode="chained", rng=7)
    gen = np.random.default_rng(8)
    out = []
    for _ in range(3000):
        s.reset(sample_exact_k(dpp, 3, rng=gen))
        out.append(s.sample(rng=gen))
    _stat, pval, _df = chisquare_counts(count_samples(out, states), pi)
    assert pval > ALPHA


def test_chained_from_start_every_output_within_eps():
    dpp, states, pi, _rng = _instance(8, 4, 26)
    s = SparsifiedKDPPSampler(dpp, 4, t=6, mode="chained", eps=0.05, rng=0)
    _, P = exact_transition(s)
    x = np.zeros(len(states))
    x[states.index(tuple(int(v) for v in s.start))] = 1.0
    for _ in range(3):                     # outputs 1, 2, 3 of the chain
        x = x @ np.linalg.matrix_power(P, s.n_steps)
        assert _tv(x, pi) <= s.eps


def test_sample_runs_n_steps_of_step():
    """sample() is n_steps calls of step() from S₀ on the same stream (the pieces whose
    transition matrix is enumerated above), in both modes."""
    dpp, _, _, _ = _instance(8, 3, 10)
    for mode in ("restart", "chained"):
        s = SparsifiedKDPPSampler(dpp, 3, t=6, mode=mode, rng=0)
        g1, g2 = np.random.default_rng(31), np.random.default_rng(31)
        S = s.start
        for _ in range(3):
            out = s.sample(rng=g1)
            S = s.start if mode == "restart" else S
            for _ in range(s.n_steps):
                S = s.step(S, rng=g2)
            np.testing.assert_array_equal(out, S)


def test_restart_bootstrap_tv():
    dpp, states, pi, _ = _instance(8, 2, 10)
    s = SparsifiedKDPPSampler(dpp, 2, rng=11)          # default t = 7 < n: the chain
    assert not s.exact
    M = 1500
    counts = count_samples([s.sample() for _ in range(M)], states)
    q = tv_bootstrap_threshold(pi, M)
    assert tv_distance(counts, pi) <= s.eps + q


def test_power_wrong_down_weights_rejected():
    # non-uniform p̃: exact TV at the rule's steps 0.34 with the wrong D, 0.005 with the right
    dpp, states, pi, _ = _instance(8, 2, 12)
    ptilde = np.where(np.arange(8) < 4, 1.0, 0.25)
    M = 600
    q = tv_bootstrap_threshold(pi, M)
    good = SparsifiedKDPPSampler(dpp, 2, overestimates=ptilde, rng=13)
    bad = _WrongD(dpp, 2, overestimates=ptilde, rng=13)
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


# ----------------------------------------------------------------------------- cost
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


def _reads_per_step_features(n, rng):
    B = rng.normal(size=(n, 8))
    s = SparsifiedKDPPSampler(DPP.from_features(B), 5, rng=0)
    s.dpp._matrix = B.view(_CountingArray)
    _CountingArray.reads = 0
    for _ in range(10):
        s.sample()
    return _CountingArray.reads / (10 * s.n_steps), s


def _reads_per_step_dense(n, rng):
    B = rng.normal(size=(n, 8))
    s = SparsifiedKDPPSampler(_CountingDPP.from_likelihood(B @ B.T), 5, rng=0)
    _CountingDPP.reads = 0
    for _ in range(10):
        s.sample()
    return _CountingDPP.reads / (10 * s.n_steps), s


def test_per_sample_cost_independent_of_n():
    rng = np.random.default_rng(16)
    for n_small, n_big, fn in [(100, 20000, _reads_per_step_features),
                               (100, 1500, _reads_per_step_dense)]:
        r_small, s_small = fn(n_small, rng)
        r_big, s_big = fn(n_big, rng)
        assert s_small.t == s_big.t
        d = 8 if fn is _reads_per_step_features else s_big.t
        bound = s_big.t * d
        assert 0 < r_small <= bound and 0 < r_big <= bound
        # s(ε) grows only through log H₀ ≈ log(k log n): one step from n = 100 to 20000
        assert s_small.n_steps <= s_big.n_steps <= s_small.n_steps + 1


# ----------------------------------------------------------------------------- bad input
def test_errors_and_determinism():
    dpp, _states, _pi, _rng = _instance(6, 2, 17)
    with pytest.raises(ValueError):
        SparsifiedKDPPSampler(dpp, 7)
    with pytest.raises(ValueError):
        SparsifiedKDPPSampler(dpp, 2, mode="bogus")
    with pytest.raises(ValueError):
        SparsifiedKDPPSampler(dpp, 2, t=1)
    with pytest.raises(ValueError, match="exceed k"):
        SparsifiedKDPPSampler(dpp, 2, t=2)               # the chain could never move
    with pytest.raises(ValueError):
        SparsifiedKDPPSampler(dpp, 2, overestimates=np.zeros(6))
    a = SparsifiedKDPPSampler(dpp, 2, t=4, rng=3)
    b = SparsifiedKDPPSampler(dpp, 2, t=4, rng=3)
    xa, xb = [a.sample() for _ in range(5)], [b.sample() for _ in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(xa, xb))
    assert all(x.dtype == np.int64 and x.size == 2 and np.all(np.diff(x) > 0) for x in xa)
    assert a.preprocess_seconds >= 0 and SparsifiedKDPPSampler(dpp, 2).t == 7


@pytest.mark.parametrize("kw", [
    {"k": 2.5}, {"k": True}, {"k": 0}, {"n_steps": 2.5}, {"n_steps": 0},
    {"n_steps": False}, {"t": 4.5}, {"landmarks": 2.5}, {"landmarks": 1},
    {"landmarks": [0, 99]}, {"eps": 1.5}, {"eps": True},
])
def test_non_integer_counts_rejected(kw):
    L = random_psd(30, np.random.default_rng(27))
    args = {"k": 3} | kw
    k = args.pop("k")
    with pytest.raises(ValueError):
        SparsifiedKDPPSampler(DPP.from_likelihood(L), k, **args)
    assert SparsifiedKDPPSampler(DPP.from_likelihood(L), 3.0, n_steps=100.0, t=5.0).k == 3


def test_failed_validation_does_not_advance_the_generator():
    rng = np.random.default_rng(28)
    B = rng.normal(size=(40, 6))
    B[1] = B[0]                                      # items 0 and 1 duplicate: det = 0
    dpp = DPP.from_likelihood(B @ B.T)
    bad = [{"start": [0, 2]}, {"start": [0, 2, 99]}, {"start": [0, 1, 2]},
           {"start": [0.5, 2, 3]}, {"landmarks": 2.5}, {"n_steps": 2.5},
           {"overestimates": np.zeros(40)}, {"t": 2}]
    for kw in bad:
        gen = np.random.default_rng(29)
        before = gen.bit_generator.state
        with pytest.raises(ValueError):                 # landmarks = 20: Nyström draws
            SparsifiedKDPPSampler(dpp, 3, rng=gen, **({"landmarks": 20} | kw))
        assert gen.bit_generator.state == before, kw
    s = SparsifiedKDPPSampler(dpp, 3, rng=0)
    for S, draws in [([0, 2, 99], None), ([0, 2], None), ([0, 2, 3], [0, 99])]:
        gen = np.random.default_rng(30)
        before = gen.bit_generator.state
        with pytest.raises(ValueError):
            s.step(S, rng=gen, draws=draws)
        assert gen.bit_generator.state == before
