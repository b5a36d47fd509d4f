"""Approximate parallel sampling for k-NDPPs and partition DPPs (spec dpp.md §7, approximate
mode; §9 rules for approximate samplers).

Evidence:

- the counting oracle (ESPs of nonsymmetric matrices from eigenvalues, Schur-complement
  counts, eigenvector marginals, partition grid counts) against brute-force enumeration;
- the error derivation: for every reachable state the one-round law is
  Q = min(C M q, T)/(1 − η) and TV(Q, T) ≤ η = E_q[(ρ − C M)₊] (by enumeration), the
  per-candidate acceptance is (1 − η)/(C M) (binomial test) and the reported η̂ is unbiased;
- the sampler's law equals the exact law of the approximate chain (computed by enumeration
  of tuples and states) — chi-square on counts; the mean reported ``tv_bound`` matches
  E[Σ η]; the bootstrap TV test against the exact k-NDPP law passes with ε = mean
  ``tv_bound`` — and rejects a sampler that accepts every distinct candidate;
- window = 1 is the plain sequential chain on shared uniforms (k-NDPP: against an
  enumeration-based chain; partition: against :func:`sample_partition`) and has the exact
  law; a C above max ρ/M_ℓ is exact; a symmetric DPP with C = 1 is exact;
- rounds decrease as ℓ grows; input validation.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from support.dpp_laws import kdpp_law, random_psd
from support.stats import (
    count_samples, law_pvalue, tv_bootstrap_threshold, tv_distance,
)

from parasample.core.errors import NumericalError
from parasample.dpp import (
    DPP, NonsymmetricDPP, PartitionConstraint, sample_parallel_k_approx, sample_partition,
)
from parasample.dpp import _kset_counting as kc, parallel, parallel_approx as pa
from parasample.dpp.parallel import _draw_many

ALPHA = 1e-4
M_SAMPLES = 4000


# ----------------------------------------------------------------------------- instances
def _ndpp_kernel(n: int = 8, seed: int = 0, skew: float = 3.0) -> np.ndarray:
    """L = S + A, S PSD, A skew with a strong skew part (positive correlations)."""
    rng = np.random.default_rng(seed)
    S = random_psd(n, rng)
    G = rng.normal(size=(n, n)) * skew
    return S + (G - G.T) / 2.0


L8 = _ndpp_kernel()
NDPP8 = NonsymmetricDPP.from_likelihood(L8)
K8 = 4
LAW8 = kdpp_law(L8, K8)
LABELS8 = np.array([0, 0, 0, 0, 1, 1, 1, 1])
LABELS_FORCED = np.array([0, 0, 1, 1, 1, 1, -1, 1])  # part 0 is forced, item 6 excluded


def _isqrt_window(r: int) -> int:
    return max(1, math.isqrt(r))


def _constrained_law(law: dict, labels: np.ndarray, counts) -> dict:
    out = {S: v for S, v in law.items()
           if np.all(labels[list(S)] >= 0)
           and np.array_equal(np.bincount(labels[list(S)][labels[list(S)] >= 0],
                                          minlength=len(counts)), counts)}
    Z = sum(out.values())
    return {S: v / Z for S, v in out.items()}


def approx_chain_law(law: dict, n: int, k: int, C: float, ell_of_r):
    """Exact output law of the approximate chain by enumeration of states and ordered
    tuples, from the target law only (independent of the implementation).

    Returns (law of the output set, E[Σ_rounds η(A_t)] along the chain, max ρ/M_ℓ). The
    one-round law at A is Q(B) ∝ min(C M q(B), T(B)) with q = Π p/r,
    T = P(B⊆S|A)(r−ℓ)!/r!; its normaliser must be 1 − η(A), η(A) = Σ (T − C M q)₊, and
    TV(Q, T) ≤ η(A) — both asserted here for every reachable state.
    """
    sets = [(frozenset(S), v) for S, v in law.items()]
    memo: dict = {}

    def Z(A):
        if A not in memo:
            memo[A] = sum(v for S, v in sets if A <= S)
        return memo[A]

    states = {frozenset(): 1.0}
    exp_eta, max_ratio = 0.0, 0.0
    while any(len(A) < k for A in states):
        new: dict = {}
        for A, pa_ in states.items():
            r = k - len(A)
            ell = min(r, ell_of_r(r))
            ZA = Z(A)
            p = {i: Z(A | {i}) / ZA for i in range(n) if i not in A}
            M = r ** ell * math.factorial(r - ell) / math.factorial(r)
            Qt, Tt, eta = {}, {}, 0.0
            for tup in itertools.permutations([i for i in p if p[i] > 0], ell):
                T = Z(A | frozenset(tup)) / ZA * math.factorial(r - ell) / math.factorial(r)
                q = math.prod(p[i] / r for i in tup)
                Qt[tup] = min(C * M * q, T)
                Tt[tup] = T
                eta += max(T - C * M * q, 0.0)
                if ell > 1 and q > 0:
                    max_ratio = max(max_ratio, T / q / M)
            total = sum(Qt.values())
            assert total == pytest.approx(1.0 - eta, abs=1e-12)
            tv_round = 0.5 * sum(abs(Qt[t] / total - Tt[t]) for t in Qt)
            assert tv_round <= eta + 1e-12
            for tup, v in Qt.items():
                B = A | frozenset(tup)
                new[B] = new.get(B, 0.0) + pa_ * v / total
            exp_eta += pa_ * eta
        states = new
    return {tuple(sorted(A)): v for A, v in states.items()}, exp_eta, max_ratio


def _tv(a: dict, b: dict) -> float:
    return 0.5 * sum(abs(a.get(x, 0.0) - b.get(x, 0.0)) for x in set(a) | set(b))


def _draw(target, k, seed, M=M_SAMPLES, **kw):
    gen = np.random.default_rng(seed)
    samples, bounds, rounds = [], [], []
    for _ in range(M):
        res = sample_parallel_k_approx(target, k, rng=gen, **kw)
        samples.append(tuple(res.sample.tolist()))
        bounds.append(res.info["tv_bound"])
        rounds.append(res.cost.rounds)
    return samples, np.array(bounds), np.array(rounds)


def _tv_test(samples, law, eps):
    """Spec §9: TV̂ ≤ ε + the 99.9% bootstrap quantile of TV̂ under exact sampling."""
    support = list(law)
    probs = np.array([law[s] for s in support])
    counts = count_samples(samples, support)
    tv_hat = tv_distance(counts, probs)
    return tv_hat, eps + tv_bootstrap_threshold(probs, len(samples))


@pytest.fixture(scope="module")
def ndpp_window2():
    """k-NDPP (n = 8, k = 4), ℓ = 2 in both rounds, C = 1: TV(exact approx law, μ) ≈ 0.03
    with E[Σ η] ≈ 0.11 — a case where the approximation is visible."""
    samples, bounds, _ = _draw(NDPP8, K8, seed=21, window=2, C=1.0)
    law, exp_eta, _ = approx_chain_law(LAW8, 8, K8, 1.0, lambda r: 2)
    return samples, bounds, law, exp_eta


# ----------------------------------------------------------------------------- oracle
@pytest.mark.parametrize("skew", [0.0, 0.7, 3.0, 20.0])
def test_esp_of_nonsymmetric_matrix_matches_minor_sums(skew):
    rng = np.random.default_rng(5)
    n = 7
    S = random_psd(n, rng)
    G = rng.normal(size=(n, n)) * skew
    M = S + (G - G.T) / 2
    la, lb = kc.factor_logs(np.linalg.eigvals(M))
    E = kc.log_poly(la, lb, n)
    for r in range(n + 1):
        brute = sum(np.linalg.det(M[np.ix_(T, T)]) if T else 1.0
                    for T in itertools.combinations(range(n), r))
        assert np.exp(E[r]) == pytest.approx(brute, rel=1e-10)
    # leave-one-factor-out tables agree with recomputing without that factor
    P, Sfx = kc.prefix_suffix(la, lb, n)
    for deg in (2, 4):
        loo = kc.leave_one_out(P, Sfx, deg)
        for f in range(n):
            keep = np.arange(n) != f
            assert loo[f] == pytest.approx(kc.log_poly(la[keep], lb[keep], deg)[deg],
                                           abs=1e-10)


def _enum_conditionals(law: dict, n: int, A) -> tuple[np.ndarray, float]:
    tot = sum(v for S, v in law.items() if set(A) <= set(S))
    p = np.array([sum(v for S, v in law.items() if set(A) | {i} <= set(S)) / tot
                  if i not in A else 0.0 for i in range(n)])
    return p, tot


@pytest.mark.parametrize("A", [[], [2], [5, 1], [1, 3, 6]])
def test_kndpp_oracle_matches_enumeration(A):
    oracle = kc.KOracle.from_target(NDPP8, K8, symmetric=False)
    st0 = oracle.start()
    st = oracle._state(np.array(A, dtype=np.int64))
    p, tot = _enum_conditionals(LAW8, 8, A)
    np.testing.assert_allclose(st.p, p, atol=1e-12)
    assert st.log_z - st0.log_z == pytest.approx(math.log(tot), abs=1e-10)
    # the eigenvector marginals equal the count-ratio fallback
    free = np.setdiff1d(np.arange(8), A)
    ratio = np.exp(oracle._log_counts(np.array(A, dtype=np.int64), free[:, None]) - st.log_z)
    np.testing.assert_allclose(st.p[free], ratio, atol=1e-12)
    # batched candidate counts, repeats and impossible tuples give −inf
    f0, f1, f2 = free[:3]
    tuples = np.array([[f0, f1], [f1, f0], [f2, f2], [f1, f2]])
    if len(A) == K8 - 1:
        tuples = tuples[:, :1]
    got = oracle.score(st, tuples)
    for t, g in zip(tuples, got):
        if len(set(t)) < len(t):
            assert g == -np.inf
        else:
            _, tb = _enum_conditionals(LAW8, 8, list(A) + list(t))
            assert g - st0.log_z == pytest.approx(math.log(tb), abs=1e-10)


@pytest.mark.parametrize("kind", ["ndpp-factors", "skew-only", "features"])
def test_low_rank_dual_counts_match_brute_force(kind):
    """n ≥ 16 low-rank kernels count candidates in the ρ×ρ dual (ρ = rank): equal to the
    n×n Schur route and to brute-force minor sums."""
    rng = np.random.default_rng(9)
    n, k = 20, 6 if kind == "skew-only" else 5  # skew-only: only even minors are nonzero
    if kind == "features":
        target = DPP.from_features(rng.normal(size=(n, 7)))
    else:
        V = rng.normal(size=(n, 0 if kind == "skew-only" else 4))
        B = rng.normal(size=(n, 6))
        target = NonsymmetricDPP.from_factors(V, B, rng.normal(size=(6, 6)))
    oracle = kc.KOracle.from_target(target, k, symmetric=(kind == "features"))
    assert oracle._dual is not None and oracle._dual[0].shape[1] < n
    L = oracle.L
    A = np.array([3, 11])
    tuples = np.array([[0, 5], [7, 19], [2, 8]])
    dual = oracle._log_counts(A, tuples)
    dual_saved, oracle._dual = oracle._dual, None
    primal = oracle._log_counts(A, tuples)
    oracle._dual = dual_saved
    for t, a, b in zip(tuples, dual, primal):
        X = set(A.tolist()) | set(t.tolist())
        others = sorted(set(range(n)) - X)
        brute = sum(np.linalg.det(L[np.ix_(S, S)]) for S in
                    (sorted(X | set(T)) for T in itertools.combinations(others, k - len(X))))
        if brute <= 1e-12:
            assert a == b == -np.inf
        else:
            assert a == pytest.approx(math.log(brute), abs=1e-9)
            assert b == pytest.approx(math.log(brute), abs=1e-9)


def test_singular_pinned_minor_is_refused_and_partition_route_handles_it():
    """Skew blocks: det L_{01} = 1, det L_{23} = 4 but L_ii = 0, so the chain pins items with
    det L_A = 0. The Schur route refuses clearly; the grid route of a one-part
    PartitionConstraint samples it (law 0.2 / 0.8)."""
    J = np.array([[0.0, 1.0], [-1.0, 0.0]])
    L = np.zeros((4, 4))
    L[:2, :2], L[2:, 2:] = J, 2 * J
    ndpp = NonsymmetricDPP.from_likelihood(L)
    with pytest.raises(NumericalError, match="PartitionConstraint with one part"):
        sample_parallel_k_approx(ndpp, 2, rng=0)
    pc = PartitionConstraint(ndpp, [0, 0, 0, 0], [2])
    gen = np.random.default_rng(1)
    draws = [tuple(sample_parallel_k_approx(pc, 2, rng=gen).sample.tolist())
             for _ in range(400)]
    assert set(draws) <= {(0, 1), (2, 3)}
    assert stats.binomtest(draws.count((0, 1)), len(draws), 0.2).pvalue > ALPHA


def test_partition_oracle_matches_enumeration():
    for labels, counts in [(LABELS8, [2, 2]), (LABELS_FORCED, [2, 2])]:
        law = _constrained_law(LAW8, labels, counts)
        oracle = kc.PartitionOracle(PartitionConstraint(NDPP8, labels, counts), 4)
        st0 = oracle.start()
        items = oracle.items
        for A in [[], [1], [1, 4], [0, 1, 7]]:
            A = [a for a in A if labels[a] >= 0]
            p, tot = _enum_conditionals(law, 8, A)
            w = np.searchsorted(items, A)
            mask = np.zeros(oracle.n, dtype=bool)
            mask[w] = True
            st = oracle._evaluate(mask, w, st0.aux, first=False) if A else st0
            full = np.zeros(8)
            full[items] = st.p
            np.testing.assert_allclose(full, p, atol=1e-9)
            assert st.log_z - st0.log_z == pytest.approx(math.log(tot), abs=1e-8)


# ----------------------------------------------------------------------------- the error
def test_acceptance_rate_and_eta_estimate_at_a_fixed_state():
    """At A = ∅ with ℓ = 3 (r = 4), C = 1: per proposal P(accept) = (1 − η)/(C M_ℓ)
    exactly (binomial test), and the candidates' mean of (ρ − C M)₊ estimates η."""
    r, ell, C, N = K8, 3, 1.0, 30000
    oracle = kc.KOracle.from_target(NDPP8, K8, symmetric=False)
    st = oracle.start()
    p = st.p
    Z = lambda B: _enum_conditionals(LAW8, 8, list(B))[1]  # noqa: E731
    M = r ** ell * math.factorial(r - ell) / math.factorial(r)
    eta = 0.0
    for tup in itertools.permutations(range(8), ell):
        T = Z(tup) * math.factorial(r - ell) / math.factorial(r)
        eta += max(T - C * M * math.prod(p[i] / r for i in tup), 0.0)
    assert eta > 0.005  # the cap binds here
    gen = np.random.default_rng(3)
    tuples = _draw_many(p, gen.random(N * ell)).reshape(N, ell)
    log_rho = pa._log_rho(oracle.score(st, tuples), st.log_z, p, tuples, r)
    log_CM = math.log(C) + parallel._log_M(r, ell)
    hits = int(np.sum(np.log(gen.random(N)) < log_rho - log_CM))
    assert stats.binomtest(hits, N, (1 - eta) / (C * M)).pvalue > ALPHA
    excess = C * M * np.maximum(np.expm1(log_rho - log_CM), 0.0)
    se = excess.std(ddof=1) / math.sqrt(N)
    assert abs(excess.mean() - eta) < 5 * se + 1e-12


def test_law_equals_exact_law_of_the_approximate_chain(ndpp_window2):
    samples, bounds, law, exp_eta = ndpp_window2
    assert _tv(law, LAW8) <= exp_eta + 1e-12  # the composed bound, exactly
    assert _tv(law, LAW8) > 0.01  # ... and the approximation is real here
    assert law_pvalue(samples, law) > ALPHA
    # the reported tv_bound is an unbiased estimate of E[Σ η]
    se = bounds.std(ddof=1) / math.sqrt(bounds.size)
    assert abs(bounds.mean() - exp_eta) < 5 * se


def test_bootstrap_tv_within_reported_bound(ndpp_window2):
    samples, bounds, _, _ = ndpp_window2
    tv_hat, threshold = _tv_test(samples, LAW8, bounds.mean())
    assert tv_hat <= threshold


def test_power_accepting_every_candidate_is_rejected(monkeypatch):
    """Accepting the first distinct candidate regardless of ρ (the uncapped proposal law)
    is far outside the reported bound: the TV test must reject it."""

    def accept_always(accepted, log_rho):
        ok = np.flatnonzero(np.isfinite(log_rho))
        return int(ok[0]) if ok.size else -1

    monkeypatch.setattr(pa, "_choose", accept_always)
    samples, bounds, _ = _draw(NDPP8, K8, seed=22, M=2000, window=2, C=1.0)
    tv_hat, threshold = _tv_test(samples, LAW8, bounds.mean())
    assert tv_hat > threshold


# ----------------------------------------------------------------------------- exact cases
def test_window_one_is_the_sequential_chain_on_shared_uniforms():
    """ℓ = 1: one uniform per step, no acceptance, and the same path as the plain chain
    rule built from the enumerated law (seeds with near-ties |u·Σp − cumsum| < 1e-9 are
    skipped explicitly)."""
    compared = 0
    for seed in range(12):
        u = np.random.default_rng(seed).random(K8)
        pos = [0]

        def stream(size):
            out = u[pos[0]:pos[0] + size]
            pos[0] += size
            return out

        oracle = kc.KOracle.from_target(NDPP8, K8, symmetric=False)
        order, info = pa._approx_chain(oracle, K8, stream, C=1.0, c=0.0, window=1,
                                       delta=1e-3)
        assert pos[0] == K8 and info["window_per_round"] == [1] * K8
        ref, tie = [], False
        for s in range(K8):
            p, _ = _enum_conditionals(LAW8, 8, ref)
            c = np.cumsum(p)
            tie |= bool(np.min(np.abs(c - u[s] * c[-1])) < 1e-9)
            ref.append(int(_draw_many(p, u[s:s + 1])[0]))
        if tie:
            continue
        compared += 1
        assert order == ref
    assert compared >= 10


def test_window_one_exact_law():
    samples, bounds, rounds = _draw(NDPP8, K8, seed=23, M=2000, window=1, C=3.0)
    assert law_pvalue(samples, LAW8) > ALPHA
    assert np.all(bounds == 0.0) and np.all(rounds == 1 + K8)


def test_large_C_restores_exactness():
    law, exp_eta, max_ratio = approx_chain_law(LAW8, 8, K8, 1.0, lambda r: 2)
    C = 1.05 * max_ratio  # every ρ ≤ C M_ℓ: exact by enumeration ...
    law_c, exp_eta_c, _ = approx_chain_law(LAW8, 8, K8, C, lambda r: 2)
    assert exp_eta_c == 0.0 and _tv(law_c, LAW8) < 1e-12
    samples, bounds, _ = _draw(NDPP8, K8, seed=24, M=2000, window=2, C=C)
    assert law_pvalue(samples, LAW8) > ALPHA  # ... and empirically
    assert np.all(bounds == 0.0)


@pytest.mark.parametrize("window", [None, 3])
def test_symmetric_dpp_with_C_one_is_exact(window):
    L = random_psd(8, np.random.default_rng(12), scale=1.5)
    dpp = DPP.from_likelihood(L)
    samples, bounds, _ = _draw(dpp, 4, seed=25, M=2000, window=window, C=1.0)
    assert law_pvalue(samples, kdpp_law(L, 4)) > ALPHA
    assert bounds.max() < 1e-9  # ρ ≤ M_ℓ up to rounding


def test_partition_window_one_equals_sample_partition_on_shared_seeds():
    pc = PartitionConstraint(NDPP8, LABELS8, [2, 2])
    for seed in range(15):
        res = sample_parallel_k_approx(pc, 4, rng=seed, window=1)
        assert res.sample.tolist() == sample_partition(NDPP8, LABELS8, [2, 2],
                                                       rng=seed).tolist()
        assert res.info["route"] == "partition" and res.cost.rounds == 5


@pytest.mark.parametrize("labels", [
    "forced", pytest.param("split", marks=pytest.mark.slow),
])
def test_partition_law_equals_exact_law_of_the_approximate_chain(labels):
    lab = LABELS8 if labels == "split" else LABELS_FORCED
    target = _constrained_law(LAW8, lab, [2, 2])
    law, exp_eta, _ = approx_chain_law(target, 8, 4, 1.0, lambda r: 2)
    assert _tv(law, target) <= exp_eta + 1e-12
    samples, bounds, _ = _draw(PartitionConstraint(NDPP8, lab, [2, 2]), 4, seed=26,
                               M=1500, window=2)
    assert law_pvalue(samples, law) > ALPHA
    tv_hat, threshold = _tv_test(samples, target, bounds.mean())
    assert tv_hat <= threshold


@pytest.mark.slow
@pytest.mark.parametrize("n,k,seed,skew,C,window", [
    (8, 4, 1, 3.0, 1.0, None), (8, 4, 2, 1.5, 1.5, 2), (7, 4, 0, 3.0, 1.0, 4),
    (8, 3, 0, 20.0, 1.0, 3), (6, 4, 1, 3.0, 1.0, 2),
])
def test_more_kndpp_laws_slow(n, k, seed, skew, C, window):
    L = _ndpp_kernel(n, seed, skew)
    law_mu = kdpp_law(L, k)
    f = _isqrt_window if window is None else (lambda r: window)
    law, exp_eta, _ = approx_chain_law(law_mu, n, k, C, f)
    samples, bounds, _ = _draw(NonsymmetricDPP.from_likelihood(L), k, seed=seed + 30,
                               M=10000, window=window, C=C)
    assert law_pvalue(samples, law) > ALPHA
    tv_hat, threshold = _tv_test(samples, law_mu, bounds.mean())
    assert tv_hat <= threshold
    se = bounds.std(ddof=1) / math.sqrt(bounds.size) if bounds.std() > 0 else 0.0
    assert abs(bounds.mean() - exp_eta) <= 5 * se + 1e-12


# ----------------------------------------------------------------------------- rounds, cost
def test_rounds_decrease_with_window_and_cost_accounting():
    n, k = 40, 16
    ndpp = NonsymmetricDPP.from_likelihood(_ndpp_kernel(n, seed=3, skew=1.0))
    mean_rounds = {}
    for label, kw in [("l=1", {"window": 1}), ("c=0.25", {"c": 0.25}),
                      ("c=0", {}), ("l=8", {"window": 8})]:
        gen = np.random.default_rng(7)
        rounds = []
        for _ in range(8):
            res = sample_parallel_k_approx(ndpp, k, rng=gen, **kw)
            info = res.info
            assert res.sample.size == k and np.unique(res.sample).size == k
            assert res.sample.dtype == np.int64 and np.all(np.diff(res.sample) > 0)
            assert res.cost.rounds == 1 + len(info["window_per_round"])
            assert res.cost.evaluations == 1 + info["candidates"]
            assert sum(info["accepted_per_round"]) == k
            assert len(info["eta_per_round"]) == len(info["window_per_round"])
            assert info["tv_bound"] >= 0.0
            rounds.append(res.cost.rounds)
        mean_rounds[label] = np.mean(rounds)
    assert mean_rounds["l=1"] == 1 + k
    assert mean_rounds["l=1"] > mean_rounds["c=0.25"] > mean_rounds["c=0"] > mean_rounds["l=8"]


def test_window_rule_and_candidates():
    assert [pa._window(r, 0.0) for r in (1, 3, 4, 15, 16, 64)] == [1, 1, 2, 3, 4, 8]
    assert [pa._window(r, 0.25) for r in (1, 15, 16, 81)] == [1, 1, 2, 3]
    for r, ell in [(4, 2), (16, 4), (64, 8), (100, 10)]:
        assert pa._num_candidates(parallel._log_M(r, ell), 1e-3) == \
            parallel._num_candidates(r, ell, 1e-3)
    assert pa._num_candidates(0.0, 1e-3) == 1
    assert pa._num_candidates(math.log(1e9), 1e-3) == pa._MAX_CANDIDATES


def test_same_seed_same_sample():
    for target, k in [(NDPP8, 4), (PartitionConstraint(NDPP8, LABELS8, (2, 2)), 4)]:
        a = sample_parallel_k_approx(target, k, rng=5, window=2)
        b = sample_parallel_k_approx(target, k, rng=np.random.default_rng(5), window=2)
        assert a.sample.tolist() == b.sample.tolist() and a.info == b.info
    a = sample_parallel_k_approx(NDPP8, 4, rng=np.random.SeedSequence(5), window=2)
    assert a.sample.tolist() == sample_parallel_k_approx(NDPP8, 4, rng=5, window=2).sample.tolist()
    with pytest.raises(TypeError, match="rng must be"):
        sample_parallel_k_approx(NDPP8, 4, rng=np.random.RandomState(0))
    res = sample_parallel_k_approx(NDPP8, 0, rng=0)
    assert res.sample.size == 0 and (res.cost.rounds, res.cost.evaluations) == (0, 0)


def test_validation():
    with pytest.raises(TypeError, match="NonsymmetricDPP, a DPP or a PartitionConstraint"):
        sample_parallel_k_approx(L8, 2)
    with pytest.raises(TypeError):
        sample_parallel_k_approx((NDPP8, LABELS8, [2, 2]), 4)
    with pytest.raises(ValueError, match="exceeds the number of items"):
        sample_parallel_k_approx(NDPP8, 9)
    low = NonsymmetricDPP.from_factors(np.ones((6, 1)), np.zeros((6, 0)), np.zeros((0, 0)))
    with pytest.raises(ValueError, match="exceeds the rank"):
        sample_parallel_k_approx(low, 2)
    for bad in (0.5, 0.0, -1.0, float("inf"), float("nan"), True):
        with pytest.raises(ValueError, match="C must"):
            sample_parallel_k_approx(NDPP8, 2, C=bad)
    for bad in (-0.1, 0.5, 0.7, float("nan")):
        with pytest.raises(ValueError, match="c must"):
            sample_parallel_k_approx(NDPP8, 2, c=bad)
    with pytest.raises(ValueError):
        sample_parallel_k_approx(NDPP8, 2, window=0)
    with pytest.raises(ValueError):
        sample_parallel_k_approx(NDPP8, 2, delta=1.0)
    with pytest.raises(ValueError):
        sample_parallel_k_approx(NDPP8, -1)
    with pytest.raises(ValueError, match="counts sum to"):
        sample_parallel_k_approx(PartitionConstraint(NDPP8, LABELS8, [2, 2]), 3)
    with pytest.raises(ValueError, match="impossible partition counts"):
        sample_parallel_k_approx(PartitionConstraint(NDPP8, LABELS8, [5, 0]), 5)
    res = sample_parallel_k_approx(NDPP8, 3, rng=0, window=50)  # capped at r
    assert res.sample.size == 3 and res.info["window_per_round"] == [3]
