"""Nonsymmetric DPPs: kernel, sequential / low-rank / rejection samplers (spec §3, §9)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from parasample.core.result import SampleResult
from parasample.dpp.kernel import DPP
from parasample.dpp.nonsymmetric import (
    NonsymmetricDPP,
    _acceptance,
    _propose,
    sample_rejection,
)
from parasample.dpp.sequential import (
    _sequential_blocked,
    _sequential_lowrank,
    _sequential_unblocked,
    sample_lowrank,
    sample_sequential,
)
from support.dpp_laws import dpp_law, random_nonsymmetric, random_psd
from support.stats import all_subsets, chisquare_counts, count_samples

ALPHA = 1e-4
TIE = 1e-9


# ---------------------------------------------------------------------------- helpers
def factors(n: int, k: int, m: int, rng, skew: float = 1.0):
    V = rng.normal(size=(n, k)) / np.sqrt(max(k, 1))
    B = rng.normal(size=(n, m)) / np.sqrt(max(m, 1))
    D = rng.normal(size=(m, m)) * skew
    return V, B, D


def dense_L(V, B, D) -> np.ndarray:
    return V @ V.T + B @ (D - D.T) @ B.T


def law_pvalue(sampler, target, law, m: int, seed: int) -> float:
    gen = np.random.default_rng(seed)
    samples = []
    for _ in range(m):
        x = sampler(target, rng=gen)
        if isinstance(x, SampleResult):
            x = x.sample
        assert x.dtype == np.int64 and np.all(np.diff(x) > 0)
        samples.append(tuple(x))
    support = list(law)
    counts = count_samples(samples, support)
    return chisquare_counts(counts, np.array([law[s] for s in support]))[1]


def det(M: np.ndarray) -> float:
    return float(np.linalg.det(M)) if M.shape[0] else 1.0


@pytest.fixture(scope="module")
def dense_case():
    L = random_nonsymmetric(6, np.random.default_rng(1))
    return NonsymmetricDPP.from_likelihood(L), L, dpp_law(L)


@pytest.fixture(scope="module")
def factor_case():
    V, B, D = factors(8, 2, 2, np.random.default_rng(2), skew=1.5)
    return NonsymmetricDPP.from_factors(V, B, D), dense_L(V, B, D), dpp_law(dense_L(V, B, D))


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad, match", [
    (np.ones((3, 4)), "square"),
    (np.ones(3), "square"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN or infinite"),
    (np.array([[1.0, 0.0], [np.inf, 1.0]]), "NaN or infinite"),
    (np.array([["a", "b"], ["c", "d"]]), "numeric"),
    (np.zeros((0, 0)), "empty"),
])
def test_from_likelihood_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        NonsymmetricDPP.from_likelihood(bad)


def test_symmetric_part_not_psd_names_eigenvalue():
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    S = (Q * np.array([-0.37, 0.5, 1.0, 2.0, 3.0])) @ Q.T
    C = rng.normal(size=(5, 5))
    L = (S + S.T) / 2 + (C - C.T)
    lam_min = np.linalg.eigvalsh((L + L.T) / 2).min()
    with pytest.raises(ValueError, match="not positive semidefinite") as exc:
        NonsymmetricDPP.from_likelihood(L)
    assert f"{lam_min:.6g}" in str(exc.value) and "-0.37" in str(exc.value)


def test_valid_edge_kernels_accepted():
    C = np.random.default_rng(4).normal(size=(4, 4))
    NonsymmetricDPP.from_likelihood(C - C.T)  # skew only: symmetric part 0
    NonsymmetricDPP.from_likelihood(random_psd(4, np.random.default_rng(5)))
    NonsymmetricDPP.from_likelihood(np.eye(3) * 1e-20 + np.array(
        [[0, 1, 0], [-1, 0, 0], [0, 0, 0]]))


@pytest.mark.parametrize("args, match", [
    ((np.ones((4, 2)), np.ones((3, 2)), np.ones((2, 2))), "same number of rows"),
    ((np.ones((4, 2)), np.ones((4, 2)), np.ones((3, 3))), "D must be square"),
    ((np.ones((4, 2)), np.ones((4, 2)), np.ones((2, 3))), "D must be square"),
    ((np.ones(4), np.ones((4, 2)), np.ones((2, 2))), "2-D"),
    ((np.full((4, 2), np.nan), np.ones((4, 2)), np.ones((2, 2))), "V contains"),
    ((np.ones((4, 2)), np.ones((4, 2)), np.array([[0, np.inf], [0, 0]])), "D contains"),
    ((np.ones((0, 2)), np.ones((0, 2)), np.ones((2, 2))), "empty"),
])
def test_from_factors_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        NonsymmetricDPP.from_factors(*args)


# ---------------------------------------------------------------------------- kernel
def _check_against_enumeration(ndpp: NonsymmetricDPP, L: np.ndarray):
    law = dpp_law(L)
    n = L.shape[0]
    assert abs(sum(law.values()) - 1) < 1e-10
    K = ndpp.marginal_kernel()
    np.testing.assert_allclose(K, np.eye(n) - np.linalg.inv(np.eye(n) + L), atol=1e-10)
    incl = np.array([sum(p for S, p in law.items() if i in S) for i in range(n)])
    np.testing.assert_allclose(ndpp.inclusion_probabilities(), incl, atol=1e-10)
    np.testing.assert_allclose(ndpp.expected_size(), incl.sum(), atol=1e-10)
    for A in [(0, 1), (1, 3), (0, 2, 4)]:
        pA = sum(p for S, p in law.items() if set(A) <= set(S))
        assert abs(det(K[np.ix_(A, A)]) - pA) < 1e-10
    for S, p in law.items():
        lp = ndpp.log_prob(S)
        if p > 1e-12:
            assert abs(lp - np.log(p)) < 1e-8, S
        else:
            assert lp == -np.inf or lp < np.log(1e-10), S
    np.testing.assert_allclose(ndpp.likelihood_kernel(), L, atol=1e-12)


def test_dense_kernel_quantities(dense_case):
    ndpp, L, _ = dense_case
    _check_against_enumeration(ndpp, L)
    assert not np.allclose(ndpp.marginal_kernel(), ndpp.marginal_kernel().T)


def test_factor_kernel_quantities_and_dense_agreement(factor_case):
    ndpp, L, _ = factor_case
    _check_against_enumeration(ndpp, L)
    dense = NonsymmetricDPP.from_likelihood(L)
    np.testing.assert_allclose(ndpp.marginal_kernel(), dense.marginal_kernel(), atol=1e-10)
    assert abs(ndpp.log_normalizer - dense.log_normalizer) < 1e-10
    assert ndpp.rank == dense.rank == 4


def test_log_prob_impossible_sets_are_minus_inf(factor_case):
    ndpp, L, _ = factor_case  # rank 4 on 8 items
    assert ndpp.log_prob(range(5)) == -np.inf
    assert NonsymmetricDPP.from_likelihood(L).log_prob(range(6)) == -np.inf
    skew = np.array([[0.0, 1.0], [-1.0, 0.0]])
    nd = NonsymmetricDPP.from_likelihood(skew)
    assert nd.log_prob([0]) == -np.inf and abs(nd.log_prob([0, 1]) - np.log(0.5)) < 1e-12
    with pytest.raises(ValueError, match="repeated"):
        ndpp.log_prob([1, 1])


def test_factors_without_symmetric_part():
    V, B, D = factors(6, 0, 2, np.random.default_rng(6))
    nd = NonsymmetricDPP.from_factors(V, B, D)
    _check_against_enumeration(nd, dense_L(V, B, D))


# ---------------------------------------------------------------------------- exact laws
def test_law_sequential_dense(dense_case):
    ndpp, _, law = dense_case
    assert law_pvalue(sample_sequential, ndpp, law, 20_000, seed=7) > ALPHA


@pytest.mark.parametrize("sampler", [sample_sequential, sample_lowrank])
def test_law_lowrank_factors(factor_case, sampler):
    ndpp, _, law = factor_case
    assert law_pvalue(sampler, ndpp, law, 20_000, seed=8) > ALPHA


def test_law_rejection_dense(dense_case):
    ndpp, _, law = dense_case
    assert law_pvalue(sample_rejection, ndpp, law, 8_000, seed=9) > ALPHA


def test_law_rejection_factors(factor_case):
    ndpp, _, law = factor_case
    assert law_pvalue(sample_rejection, ndpp, law, 10_000, seed=10) > ALPHA


def test_power_ignoring_skew_part_is_rejected(dense_case):
    """The chi-square test must reject the symmetric-part DPP(S) and the proposal DPP(L̂)."""
    ndpp, L, law = dense_case
    sym = DPP.from_likelihood((L + L.T) / 2)
    assert law_pvalue(sample_sequential, sym, law, 20_000, seed=7) < ALPHA
    assert law_pvalue(sample_sequential, ndpp.proposal, law, 20_000, seed=7) < ALPHA


def test_power_independent_bernoulli_is_rejected(factor_case):
    ndpp, _, law = factor_case
    q = ndpp.inclusion_probabilities()

    def bernoulli(_, *, rng):
        return np.flatnonzero(rng.random(q.size) < q).astype(np.int64)

    assert law_pvalue(bernoulli, ndpp, law, 20_000, seed=8) < ALPHA


# ---------------------------------------------------------------------------- pathwise
def test_dense_blocked_lowrank_agree_on_shared_uniforms():
    rng = np.random.default_rng(11)
    checked = 0
    for n, k, m in [(90, 4, 6), (70, 0, 8), (60, 10, 2)]:
        V, B, D = factors(n, k, m, rng, skew=2.0)
        nf = NonsymmetricDPP.from_factors(V, B, D)
        nd = NonsymmetricDPP.from_likelihood(dense_L(V, B, D))
        K = nd.marginal_kernel()
        Z, W = nf._lowrank_factors
        for seed in range(5):
            u = np.random.default_rng(seed).random(n)
            ref, p_ref = _sequential_unblocked(K, u)
            if np.any(np.abs(u - p_ref) < TIE):
                continue
            for block in (5, 32, 128):
                np.testing.assert_array_equal(_sequential_blocked(K, u, block=block)[0], ref)
            got, p = _sequential_lowrank(Z, W, u)
            np.testing.assert_array_equal(got, ref)
            np.testing.assert_allclose(p, p_ref, atol=1e-8)
            np.testing.assert_array_equal(sample_sequential(nd, rng=seed), ref)
            np.testing.assert_array_equal(sample_lowrank(nf, rng=seed), ref)
            checked += 1
    assert checked >= 12


def test_dense_nonsymmetric_K_uses_lu_not_ldl():
    ndpp = NonsymmetricDPP.from_likelihood(random_nonsymmetric(150, np.random.default_rng(12)))
    K = ndpp.marginal_kernel()
    u = np.random.default_rng(0).random(150)
    ref, p_ref = _sequential_unblocked(K, u)
    assert not np.any(np.abs(u - p_ref) < TIE)
    np.testing.assert_array_equal(_sequential_blocked(K, u, block=32)[0], ref)
    # Treating K as symmetric (LDLᵀ on its upper triangle) is wrong, and detectably so.
    _, p_wrong = _sequential_blocked(K, u, block=32, symmetric=True)
    assert np.abs(p_wrong - p_ref).max() > 1e-3


# ---------------------------------------------------------------------------- rejection
@pytest.mark.parametrize("form", ["dense", "factors"])
def test_proposal_inequality_on_all_subsets(form):
    rng = np.random.default_rng(13)
    for _ in range(3):
        if form == "dense":
            L = random_nonsymmetric(10, rng)
            nd = NonsymmetricDPP.from_likelihood(L)
        else:
            V, B, D = factors(10, 3, 4, rng, skew=2.0)
            L = dense_L(V, B, D)
            nd = NonsymmetricDPP.from_factors(V, B, D)
        Lhat = nd.proposal.likelihood_kernel()
        S, A = (L + L.T) / 2, (L - L.T) / 2
        w, Q = np.linalg.eigh(A.T @ A)
        np.testing.assert_allclose(Lhat, S + (Q * np.sqrt(np.clip(w, 0, None))) @ Q.T,
                                   atol=1e-6)
        for Y in all_subsets(10):
            if Y:
                idx = np.ix_(Y, Y)
                # rounding slack relative to the Hadamard bound Π_i ‖row i‖ on |det|
                slack = 1e-10 * max(np.prod(np.linalg.norm(L[idx], axis=1)),
                                    np.prod(np.linalg.norm(Lhat[idx], axis=1)))
                assert det(L[idx]) <= det(Lhat[idx]) + slack, Y
        Z = det(np.eye(10) + Lhat) / det(np.eye(10) + L)
        assert abs(nd.expected_trials - Z) < 1e-8 * Z


@pytest.mark.parametrize("case", ["dense", "factors"])
def test_acceptance_rate_binomial(case, dense_case, factor_case):
    ndpp, L, _ = dense_case if case == "dense" else factor_case
    n = L.shape[0]
    Lhat = ndpp.proposal.likelihood_kernel()
    rate = det(np.eye(n) + L) / det(np.eye(n) + Lhat)
    gen = np.random.default_rng(14)
    N = 6000
    acc = sum(gen.random() < _acceptance(ndpp, _propose(ndpp, gen)) for _ in range(N))
    assert stats.binomtest(int(acc), N, rate).pvalue > ALPHA
    # the driver's trials: T − M ~ NegBin(M, rate)
    res = [sample_rejection(ndpp, rng=gen) for _ in range(1000)]
    T = sum(r.info["trials"] for r in res)
    assert all(r.info["method"] == "rejection" and r.cost.rounds == r.info["trials"] for r in res)
    nb = stats.nbinom(1000, rate)
    assert min(nb.cdf(T - 1000), nb.sf(T - 1000 - 1)) > ALPHA / 2


def test_rejection_fallback_and_info(dense_case):
    ndpp, _, law = dense_case
    res = sample_rejection(ndpp, rng=0, max_expected_trials=1.0)
    assert res.info["method"] == "sequential" and res.info["trials"] == 0
    assert res.info["expected_trials"] == pytest.approx(ndpp.expected_trials)
    assert tuple(res.sample) in law
    assert law_pvalue(lambda d, rng: sample_rejection(d, rng=rng, max_expected_trials=1.0),
                      ndpp, law, 10_000, seed=15) > ALPHA
    with pytest.raises(ValueError, match="max_expected_trials"):
        sample_rejection(ndpp, rng=0, max_expected_trials=0.5)
    with pytest.raises(TypeError, match="NonsymmetricDPP"):
        sample_rejection(DPP.from_likelihood(np.eye(3)), rng=0)


def test_symmetric_kernel_needs_one_trial():
    L = random_psd(6, np.random.default_rng(16))
    nd = NonsymmetricDPP.from_likelihood(L)
    assert nd.expected_trials == pytest.approx(1.0)
    assert all(sample_rejection(nd, rng=s).info["trials"] == 1 for s in range(20))


# ---------------------------------------------------------------------------- regression
def test_reproducible(dense_case, factor_case):
    for ndpp in (dense_case[0], factor_case[0]):
        for sampler in (sample_sequential, sample_lowrank, sample_rejection):
            if sampler is sample_lowrank and ndpp.form == "dense":
                with pytest.raises(ValueError, match="low-rank"):
                    sampler(ndpp, rng=0)
                continue
            a, b = sampler(ndpp, rng=42), sampler(ndpp, rng=42)
            if isinstance(a, SampleResult):
                assert a.info == b.info
                a, b = a.sample, b.sample
            np.testing.assert_array_equal(a, b)


def test_larger_lowrank_ndpp_is_valid_and_fast_path_used():
    rng = np.random.default_rng(17)
    V, B, D = factors(3000, 20, 20, rng)
    nd = NonsymmetricDPP.from_factors(V, B, D)
    sizes = [sample_sequential(nd, rng=s).size for s in range(20)]
    assert abs(np.mean(sizes) - nd.expected_size()) < 5 * np.sqrt(nd.expected_size() / 20) + 1
    x = sample_rejection(nd, rng=0, max_expected_trials=1e9)
    assert x.sample.size <= nd.rank and np.all(np.diff(x.sample) > 0)


def test_log_prob_is_minus_inf_exactly_on_dependent_sets():
    """Integer factors make the singular submatrices known exactly (integer determinants):
    log_prob is −inf on exactly those sets, in both forms, even where LU rounding leaves a
    tiny positive determinant (it used to return about −40 there)."""
    from fractions import Fraction

    def exact_det(M):
        A = [[Fraction(int(round(x))) for x in row] for row in M]
        n, det = len(A), Fraction(1)
        for j in range(n):
            piv = next((i for i in range(j, n) if A[i][j] != 0), None)
            if piv is None:
                return Fraction(0)
            if piv != j:
                A[j], A[piv] = A[piv], A[j]
                det = -det
            det *= A[j][j]
            for i in range(j + 1, n):
                f = A[i][j] / A[j][j]
                A[i] = [a - f * b for a, b in zip(A[i], A[j])]
        return det

    rng = np.random.default_rng(0)
    checked = dependent = 0
    for _ in range(12):
        V, B = rng.integers(-2, 3, size=(6, 2)), rng.integers(-2, 3, size=(6, 2))
        D = rng.integers(-2, 3, size=(2, 2))
        L = V @ V.T + B @ (D - D.T) @ B.T
        forms = (NonsymmetricDPP.from_factors(V, B, D), NonsymmetricDPP.from_likelihood(L))
        for k in range(1, 7):
            for S in combinations(range(6), k):
                zero = exact_det(L[np.ix_(S, S)]) == 0
                dependent += zero
                checked += 1
                for ndpp in forms:
                    assert np.isneginf(ndpp.log_prob(S)) == zero, (ndpp.form, S)
    assert dependent > 50 and checked - dependent > 50
