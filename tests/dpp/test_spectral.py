"""Exact spectral sampler and k-DPP via log-space ESPs (spec dpp.md §2, §9).

Evidence: exact laws by enumeration (chi-square on counts), inclusion z-tests with
Bonferroni, the Poisson-binomial size law, k-DPP marginals vs enumeration, pathwise equality
of the Cholesky (numba), Cholesky (numpy) and Householder variants on shared uniforms, ESP
stress tests, regressions — and power checks: each statistical test rejects a wrong sampler.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from itertools import combinations

import numpy as np
import pytest
from scipy.special import expit

from parasample.core.errors import NumericalError
from parasample.dpp.esp import (
    kdpp_inclusion_probabilities, log_esp, log_esp_table, log_leave_one_out_esp,
    select_eigenvectors,
)
from parasample.dpp._validate import psd_tolerance
from parasample.dpp.kernel import DPP, Spectrum, canonical_eigenbasis
from parasample.dpp.parallel import sample_parallel_k
from parasample.dpp.spectral import (
    _project_cholesky, _project_cholesky_numpy, _project_householder, sample_exact,
    sample_exact_k,
)
from support.dpp_laws import (
    dpp_law, ill_conditioned_psd, kdpp_law, low_rank_psd, random_psd,
)
from support.stats import (
    all_subsets, binomial_pvalues, bonferroni_z, chisquare_counts, inclusion_zscores,
    law_pvalue,
)

ALPHA = 1e-4


# ----------------------------------------------------------------------------- helpers
def _k_ensemble(n: int, rng: np.random.Generator) -> np.ndarray:
    """Symmetric K with eigenvalues (1, 1, 0.7, 0.4, 0.15, 0, ...): a projection part."""
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    mu = np.zeros(n)
    mu[:5] = [1.0, 1.0, 0.7, 0.4, 0.15]
    K = (Q * mu) @ Q.T
    return (K + K.T) / 2


def k_ensemble_law(K: np.ndarray) -> dict[tuple[int, ...], float]:
    """{S: |det(K − I_S̄)|} over all subsets."""
    n = K.shape[0]
    law = {}
    for S in all_subsets(n):
        M = K.copy()
        out = np.ones(n, dtype=bool)
        out[list(S)] = False
        M[out, out] -= 1.0
        law[S] = abs(float(np.linalg.det(M)))
    return law


def _conditioned(law: dict, k: int) -> dict:
    sub = {S: p for S, p in law.items() if len(S) == k}
    Z = sum(sub.values())
    return {S: p / Z for S, p in sub.items()}


def _cases():
    """name -> (dpp, law) for n ≤ 8: dense, low-rank, ill-conditioned, K-ensemble, features."""
    rng = np.random.default_rng(2024)
    L_dense = random_psd(6, rng, scale=1.5)
    L_low = low_rank_psd(7, 3, rng)
    L_ill = ill_conditioned_psd(6, rng)
    K_proj = _k_ensemble(6, rng)
    B = rng.normal(size=(7, 3))
    return {
        "dense": (DPP.from_likelihood(L_dense), dpp_law(L_dense)),
        "low_rank": (DPP.from_likelihood(L_low), dpp_law(L_low)),
        "ill": (DPP.from_likelihood(L_ill), dpp_law(L_ill)),
        "k_projection": (DPP.from_correlation(K_proj), k_ensemble_law(K_proj)),
        "features": (DPP.from_features(B), dpp_law(B @ B.T)),
    }


CASES = _cases()


def _draw(sampler, M: int, seed: int) -> list[tuple[int, ...]]:
    gen = np.random.default_rng(seed)
    return [tuple(sampler(gen).tolist()) for _ in range(M)]


def _bernoulli_sampler(dpp: DPP):
    """WRONG sampler for power checks: independent Bernoulli(K_ii) per item."""
    p = dpp.inclusion_probabilities()
    return lambda gen: np.flatnonzero(gen.random(p.size) < p)


def _wrong_k_sampler(dpp: DPP, k: int):
    """WRONG k-set sampler: k draws without replacement with weights K_ii."""
    p = dpp.inclusion_probabilities()
    return lambda gen: np.sort(gen.choice(p.size, size=k, replace=False, p=p / p.sum()))


def _check_sample(x: np.ndarray, n: int) -> None:
    assert x.dtype == np.int64 and x.ndim == 1
    assert np.all(np.diff(x) > 0), "sample must be sorted and without duplicates"
    assert x.size == 0 or (x[0] >= 0 and x[-1] < n)


# ----------------------------------------------------------------------------- exact laws
@pytest.mark.parametrize("name", list(CASES))
def test_dpp_law_by_enumeration(name):
    dpp, law = CASES[name]
    samples = _draw(lambda g: sample_exact(dpp, rng=g), 20_000, seed=1)
    for x in samples[:50]:
        _check_sample(np.array(x, dtype=np.int64), dpp.n)
    assert law_pvalue(samples, law) > ALPHA


@pytest.mark.parametrize("name,k", [("dense", 3), ("low_rank", 3), ("ill", 2),
                                    ("k_projection", 3), ("features", 2)])
def test_kdpp_law_by_enumeration(name, k):
    dpp, law = CASES[name]
    samples = _draw(lambda g: sample_exact_k(dpp, k, rng=g), 20_000, seed=2)
    assert all(len(x) == k for x in samples)
    assert law_pvalue(samples, _conditioned(law, k)) > ALPHA


def test_power_law_chisquare_rejects_wrong_samplers():
    dpp, law = CASES["dense"]
    wrong = _draw(_bernoulli_sampler(dpp), 10_000, seed=3)
    assert law_pvalue(wrong, law) < ALPHA
    wrong_k = _draw(_wrong_k_sampler(dpp, 3), 10_000, seed=4)
    assert law_pvalue(wrong_k, _conditioned(law, 3)) < ALPHA


@pytest.mark.parametrize("name,k", [("dense", 1), ("dense", 3), ("dense", 6), ("low_rank", 2),
                                    ("ill", 3), ("k_projection", 2), ("k_projection", 4),
                                    ("features", 3)])
def test_kdpp_marginals_match_enumeration(name, k):
    dpp, law = CASES[name]
    cond = _conditioned(law, k)
    expected = np.zeros(dpp.n)
    for S, p in cond.items():
        expected[list(S)] += p
    got = kdpp_inclusion_probabilities(dpp, k)
    assert np.allclose(got, expected, atol=1e-9)
    assert got.sum() == pytest.approx(k, rel=1e-12)


# ----------------------------------------------------------------------------- n = 200
@pytest.fixture(scope="module")
def big():
    """A repulsive Gaussian kernel on 200 points of [0, 1] and 10⁴ exact samples."""
    rng = np.random.default_rng(7)
    x = np.sort(rng.random(200))
    L = 3.0 * np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * 0.015**2))
    dpp = DPP.from_likelihood(L)
    M = 10_000
    gen = np.random.default_rng(8)
    X = np.zeros((M, dpp.n), dtype=bool)
    for t in range(M):
        X[t, sample_exact(dpp, rng=gen)] = True
    return dpp, X


def _inclusion_test(X: np.ndarray, K: np.ndarray, pairs: np.ndarray) -> bool:
    """True iff all singleton and pair counts pass a Bonferroni binomial test."""
    M = X.shape[0]
    p1 = np.clip(np.diag(K), 0, 1)
    i, j = pairs[:, 0], pairs[:, 1]
    p2 = np.clip(K[i, i] * K[j, j] - K[i, j] ** 2, 0, 1)
    counts = np.concatenate((X.sum(0), (X[:, i] & X[:, j]).sum(0)))
    probs = np.concatenate((p1, p2))
    m = probs.size
    big_var = M * probs * (1 - probs) >= 10
    z = inclusion_zscores(counts[big_var], probs[big_var], M)
    ok = bool(np.all(np.abs(z) < bonferroni_z(ALPHA, m)))
    if np.any(~big_var):
        pv = binomial_pvalues(counts[~big_var], probs[~big_var], M)
        ok = ok and bool(np.all(pv > ALPHA / m))
    return ok


def _pairs(n: int) -> np.ndarray:
    near = [(i, i + d) for d in (1, 2, 3) for i in range(n - d)]
    rng = np.random.default_rng(9)
    far = [tuple(sorted(rng.choice(n, 2, replace=False))) for _ in range(100)]
    return np.array(sorted(set(near + far)), dtype=np.int64)


def test_inclusion_singletons_and_pairs_n200(big):
    dpp, X = big
    assert _inclusion_test(X, dpp.marginal_kernel(), _pairs(dpp.n))


def test_power_inclusion_tests_reject_wrong_samplers(big):
    dpp, X = big
    K = dpp.marginal_kernel()
    gen = np.random.default_rng(10)
    # independent Bernoulli(K_ii): right singletons, wrong pairs
    indep = gen.random(X.shape) < np.diag(K)
    assert not _inclusion_test(indep, K, _pairs(dpp.n))
    # exact samples of a slightly different kernel (1.3 L): wrong singletons
    L2 = 1.3 * dpp.likelihood_kernel()
    other = DPP.from_likelihood(L2)
    Y = np.zeros((4000, dpp.n), dtype=bool)
    for t in range(Y.shape[0]):
        Y[t, sample_exact(other, rng=gen)] = True
    assert not _inclusion_test(Y, K, np.zeros((0, 2), dtype=np.int64))


def test_size_law_is_poisson_binomial(big):
    dpp, X = big
    q = dpp.size_distribution()
    sizes = X.sum(1)
    counts = np.bincount(sizes, minlength=q.size)
    assert counts.size == q.size
    assert chisquare_counts(counts, q)[1] > ALPHA
    # power: independent Bernoulli(K_ii) sizes have the same mean, a larger variance
    indep = (np.random.default_rng(11).random(X.shape) < np.diag(dpp.marginal_kernel())).sum(1)
    wrong = np.bincount(np.minimum(indep, q.size - 1), minlength=q.size)
    assert chisquare_counts(wrong, q)[1] < ALPHA


# ----------------------------------------------------------------------------- pathwise
def _random_VJ(gen, n, m):
    return np.linalg.qr(gen.normal(size=(n, m)))[0]


def test_cholesky_numba_numpy_householder_agree_on_shared_uniforms(big):
    gen = np.random.default_rng(12)
    cases = [(_random_VJ(gen, n, m), gen.random(m))
             for n, m in [(5, 1), (6, 6), (10, 4), (40, 12), (300, 30)] for _ in range(40)]
    V = big[0].spectrum.V  # eigenvectors of a real kernel, many near-zero rows
    for _ in range(40):
        J = np.sort(gen.choice(V.shape[1], size=min(25, V.shape[1]), replace=False))
        cases.append((np.ascontiguousarray(V[:, J]), gen.random(J.size)))
    for VJ, u in cases:
        a = _project_cholesky(VJ, u)
        b = _project_cholesky_numpy(VJ, u)
        c = _project_householder(VJ, u)
        assert np.array_equal(a, b) and np.array_equal(a, c)
        assert np.unique(a).size == VJ.shape[1]


def test_cholesky_falls_back_to_householder_on_drift():
    gen = np.random.default_rng(13)
    VJ = _random_VJ(gen, 30, 6) * (1 + 1e-4)  # Σd = m (1 + 2e-4): drift > 1e-6 m
    u = gen.random(6)
    assert np.array_equal(_project_cholesky(VJ, u), _project_householder(VJ, u))


def test_collapsed_weights_raise_numerical_error_naming_conditioning():
    VJ = np.zeros((5, 2))
    VJ[0, :] = 1.0  # rank-one "eigenvectors": Σd collapses after one step
    u = np.array([0.3, 0.6])
    for f in (_project_householder, _project_cholesky, _project_cholesky_numpy):
        with pytest.raises(NumericalError, match="cond"):
            f(VJ, u)


def test_select_eigenvectors_law_by_enumeration():
    lam = np.array([0.3, 2.0, 0.05, 1.0, 7.0])
    k = 2
    E = log_esp_table(np.log(lam), k)
    gen = np.random.default_rng(14)
    M = 20_000
    sets = [tuple(select_eigenvectors(E, np.log(lam), k, gen.random(lam.size)).tolist())
            for _ in range(M)]
    law = {S: float(np.prod(lam[list(S)])) for S in combinations(range(lam.size), k)}
    Z = sum(law.values())
    assert law_pvalue(sets, {S: p / Z for S, p in law.items()}) > ALPHA


# ----------------------------------------------------------------------------- ESP numerics
def _exact_log_esp(exponents: list[int], k: int) -> float:
    """log e_k(10^e_1, ..., 10^e_r) in exact rational arithmetic."""
    e = [Fraction(1)] + [Fraction(0)] * k
    for x in exponents:
        lam = Fraction(10) ** x
        for l in range(k, 0, -1):
            e[l] += lam * e[l - 1]
    v = e[k]
    return math.log(v.numerator) - math.log(v.denominator) if v else -math.inf


def test_log_esp_matches_exact_rationals_over_600_decades():
    gen = np.random.default_rng(15)
    exps = [int(x) for x in gen.integers(-300, 301, size=24)]
    log_lam = np.array(exps, dtype=float) * np.log(10)
    E = log_esp_table(log_lam, 24)
    assert not np.any(np.isnan(E))
    for k in (1, 2, 5, 12, 24):
        assert E[k, -1] == pytest.approx(_exact_log_esp(exps, k), rel=1e-12, abs=1e-9)
    # leave-one-out ESPs against the exact values with item j removed
    for l in (0, 3, 11):
        loo = log_leave_one_out_esp(log_lam, l)
        for j in (0, 7, 23):
            ref = _exact_log_esp(exps[:j] + exps[j + 1:], l)
            assert loo[j] == pytest.approx(ref, rel=1e-12, abs=1e-9)


def test_leave_one_out_identity_and_zero_patterns():
    log_lam = np.log(np.array([2.0, 0.5, 3.0]))
    assert np.all(log_leave_one_out_esp(log_lam, 3) == -np.inf)  # e_3 of two values
    assert np.allclose(log_leave_one_out_esp(log_lam, 0), 0.0)
    # Σ_j λ_j e_{k−1}(λ_−j) = k e_k on a wide spectrum
    log_lam = np.linspace(np.log(1e-300), np.log(1e300), 1500)
    for k in (1, 50, 1000):
        loo = log_leave_one_out_esp(log_lam, k - 1)
        lhs = np.logaddexp.reduce(log_lam + loo)
        assert lhs == pytest.approx(np.log(k) + log_esp(log_lam, k), rel=1e-12)


def _spectrum_dpp(log_lam: np.ndarray, n: int, seed: int) -> DPP:
    """DPP with a prescribed spectrum (λ may span 1e-300..1e300, beyond any dense matrix)."""
    V = _random_VJ(np.random.default_rng(seed), n, log_lam.size)
    B = V * np.exp(log_lam / 2)  # L = B Bᵀ, consistent with the spectrum
    spec = Spectrum(V=V, mu=expit(log_lam), one_minus_mu=expit(-log_lam), log_lam=log_lam)
    return DPP("features", B, spectrum=spec)


@pytest.mark.parametrize("k", [1, 30, 300, pytest.param(1000, marks=pytest.mark.slow)])
def test_esp_stress_extreme_spectrum_and_large_k(k):
    r = 1024
    log_lam = np.linspace(np.log(1e-300), np.log(1e300), r)
    E = log_esp_table(log_lam, k)
    assert not np.any(np.isnan(E))
    assert np.all(np.isfinite(E[np.triu_indices(k + 1, 0, r + 1)]))  # l ≤ j: positive
    dpp = _spectrum_dpp(log_lam, r, seed=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = kdpp_inclusion_probabilities(dpp, k)
        assert not np.any(np.isnan(p)) and p.sum() == pytest.approx(k, rel=1e-9)
        x = sample_exact_k(dpp, k, rng=k)  # k = 1000: one O(k³) sample, ~1 s
        _check_sample(x, dpp.n)
        assert x.size == k
        x = sample_exact(dpp, rng=0)
        _check_sample(x, dpp.n)


def test_kdpp_selection_on_huge_dynamic_range_takes_the_top_eigenvectors():
    log_lam = np.log(np.array([1e-300, 1e300, 1e-5, 1e200, 1.0]))
    E = log_esp_table(log_lam, 2)
    for s in range(20):
        J = select_eigenvectors(E, log_lam, 2, np.random.default_rng(s).random(5))
        assert J.tolist() == [1, 3]


# ----------------------------------------------------------------------------- regressions
def test_same_seed_same_sample_and_generators_accepted():
    dpp, _ = CASES["dense"]
    for s in range(20):
        assert np.array_equal(sample_exact(dpp, rng=s), sample_exact(dpp, rng=s))
        assert np.array_equal(sample_exact_k(dpp, 3, rng=s), sample_exact_k(dpp, 3, rng=s))
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    a = [sample_exact(dpp, rng=g1) for _ in range(5)]
    b = [sample_exact(dpp, rng=g2) for _ in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len({tuple(sample_exact_k(dpp, 3, rng=s)) for s in range(30)}) > 1


def test_k_validation():
    dpp, _ = CASES["low_rank"]  # rank 3
    with pytest.raises(ValueError, match="k exceeds the rank of L"):
        sample_exact_k(dpp, 4)
    with pytest.raises(ValueError, match="k exceeds the rank of L"):
        kdpp_inclusion_probabilities(dpp, 4)
    for bad in (-1, 1.5, "2", None, True):
        with pytest.raises(ValueError):
            sample_exact_k(dpp, bad)
    assert sample_exact_k(dpp, 0, rng=0).size == 0
    assert sample_exact_k(dpp, np.int64(3), rng=0).size == 3
    kp, _ = CASES["k_projection"]  # two eigenvalues of K equal to 1
    with pytest.raises(ValueError, match="eigenvalues of K equal to 1"):
        sample_exact_k(kp, 1)
    assert all(sample_exact(kp, rng=s).size >= 2 for s in range(20))


def test_ill_conditioned_kernels_give_valid_samples_without_nan():
    rng = np.random.default_rng(17)
    n = 150
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.repeat(np.linspace(0.5, 4.0, n // 2), 2) * (1 + 1e-14 * np.tile([0, 1], n // 2))
    L = (Q * lam) @ Q.T  # eigenvalue gaps of 1e-14 relative
    B = rng.normal(size=(n, 10))
    B_dup = np.hstack([B, B, B[:, :3]])  # duplicated feature columns
    B_rows = np.vstack([B, B[:5]])  # duplicated items
    dpps = [DPP.from_likelihood(L), DPP.from_features(B_dup), DPP.from_features(B_rows),
            DPP.from_likelihood(B_dup @ B_dup.T), CASES["ill"][0]]
    gen = np.random.default_rng(18)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dpp in dpps:
            for _ in range(30):
                _check_sample(sample_exact(dpp, rng=gen), dpp.n)
                k = min(dpp.rank, 8)
                x = sample_exact_k(dpp, k, rng=gen)
                _check_sample(x, dpp.n)
                assert x.size == k
            assert not np.any(np.isnan(kdpp_inclusion_probabilities(dpp, min(dpp.rank, 8))))
    # duplicated items are never sampled together
    dup = DPP.from_features(B_rows)
    for s in range(200):
        x = set(sample_exact_k(dup, 10, rng=s).tolist())
        assert not any(i in x and n + i in x for i in range(5))


def test_esp_table_is_cached_on_the_dpp():
    dpp, _ = CASES["dense"]
    sample_exact_k(dpp, 4, rng=0)
    cache = dpp.__dict__["_esp_cache"]
    (table,) = cache.values()
    sample_exact_k(dpp, 2, rng=0)  # smaller k reuses the same table
    assert next(iter(cache.values())) is table


# ----------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_larger_laws_n10():
    rng = np.random.default_rng(19)
    L = random_psd(10, rng, scale=2.0)
    dpp = DPP.from_likelihood(L)
    assert law_pvalue(_draw(lambda g: sample_exact(dpp, rng=g), 100_000, seed=20),
                      dpp_law(L)) > ALPHA
    assert law_pvalue(_draw(lambda g: sample_exact_k(dpp, 4, rng=g), 100_000, seed=21),
                      kdpp_law(L, 4)) > ALPHA


# ----------------------------------------------------------------------------- canonical basis
def _repeated_kernels(n: int) -> dict[str, DPP]:
    """Kernels whose L (or K) has numerically repeated eigenvalues."""
    rng = np.random.default_rng(31)
    b = n // 4
    G = rng.normal(size=(b, b))
    Q, _ = np.linalg.qr(rng.normal(size=(n, 3)))
    P, _ = np.linalg.qr(rng.normal(size=(n, n // 10)))
    Bf = rng.normal(size=(n // 6, 4))
    return {
        "identity": DPP.from_likelihood(np.eye(n)),
        "block_copies": DPP.from_likelihood(np.kron(np.eye(4), G @ G.T / n)),
        "spiked": DPP.from_likelihood(2.0 * Q @ Q.T + 0.5 * np.eye(n)),
        "projection_K": DPP.from_correlation(P @ P.T),
        "features_copies": DPP.from_features(np.kron(np.eye(6), Bf)),  # n×24, λ repeated 6×
        "features_equal": DPP.from_features(2.0 * P),  # one eigenvalue, multiplicity n/10
        "regularised": DPP.from_likelihood(P @ P.T + 0.1 * np.eye(n)),  # two big runs
    }


def _rotating_eigh(real_eigh, seed: int):
    """eigh whose eigenvectors are rotated at random inside every eigenspace (and their
    signs flipped): as valid an output as LAPACK's, like a run with other BLAS threads."""
    gen = np.random.default_rng(seed)

    def eigh(A, *args, **kw):
        lam, V = real_eigh(A, *args, **kw)
        V = V * gen.choice([-1.0, 1.0], size=V.shape[1])
        tol = 1e-9 * max(1.0, float(np.abs(lam).max()))
        start = 0
        for j in range(1, lam.size + 1):
            if j == lam.size or lam[j] - lam[start] > tol:
                if j - start > 1:
                    O, _ = np.linalg.qr(gen.normal(size=(j - start, j - start)))
                    V[:, start:j] = V[:, start:j] @ O
                start = j
        return lam, V

    return eigh


def _fresh(dpp: DPP) -> DPP:
    """The same kernel as a new object (nothing cached), built the way ``dpp`` was."""
    build = {"likelihood": DPP.from_likelihood, "correlation": DPP.from_correlation,
             "features": DPP.from_features}[dpp.kind]
    return build(dpp._matrix.copy())


def _samples_of(dpp: DPP, seeds) -> list[tuple]:
    k = min(dpp.rank, 3 + int(np.sum(np.isinf(dpp.spectrum.log_lam))))  # ≥ projection part
    return [(tuple(sample_exact(dpp, rng=s)), tuple(sample_exact_k(dpp, k, rng=s)),
             tuple(sample_parallel_k(dpp, k, rng=s).sample)) for s in seeds]


@pytest.mark.parametrize("name", list(_repeated_kernels(48)))
def test_samples_depend_on_the_eigenspaces_not_on_the_eigh_basis(name, monkeypatch):
    """Same seed, same sample whichever orthonormal basis eigh returns inside a repeated
    eigenspace (the spectrum is made canonical), for sample_exact / _k / parallel_k."""
    dpp = _repeated_kernels(48)[name]
    ref = _samples_of(dpp, range(40))
    monkeypatch.setattr(np.linalg, "eigh", _rotating_eigh(np.linalg.eigh, seed=5))
    rotated = _fresh(dpp)
    s0, s1 = dpp.spectrum, rotated.spectrum
    np.testing.assert_allclose(s1.V, s0.V, rtol=0, atol=1e-10)
    np.testing.assert_allclose(s1.mu, s0.mu, rtol=0, atol=1e-14)
    assert _samples_of(rotated, range(40)) == ref


def test_canonical_eigenbasis_properties():
    rng = np.random.default_rng(32)
    n = 30
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.array([0.5] * 4 + [1.0] * 3 + [2.0] + [3.0] * 2) * (1 + 1e-15 * rng.random(10))
    V = Q[:, :10]
    tol = psd_tolerance(n, 3.0)
    lam_c, V_c = canonical_eigenbasis(lam, V, tol)
    np.testing.assert_allclose(V_c.T @ V_c, np.eye(10), atol=1e-13)  # orthonormal
    np.testing.assert_allclose((V_c * lam_c) @ V_c.T, (V * lam) @ V.T, atol=1e-13)  # same L
    for lo, hi in ((0, 4), (4, 7), (8, 10)):  # repeated eigenvalues get their mean
        assert np.all(lam_c[lo:hi] == lam_c[lo]) and lam_c[lo] == pytest.approx(lam[lo])
    assert lam_c[7] == lam[7]
    for j in range(10):  # sign rule: the first entry with |v_i| ≥ 0.9 max |v| is positive
        v = V_c[:, j]
        assert v[np.flatnonzero(np.abs(v) >= 0.9 * np.abs(v).max())[0]] > 0
    # idempotent, and invariant to a rotation inside each eigenspace
    O = np.eye(10)
    for lo, hi in ((0, 4), (4, 7), (8, 10)):
        O[lo:hi, lo:hi] = np.linalg.qr(rng.normal(size=(hi - lo, hi - lo)))[0]
    np.testing.assert_allclose(canonical_eigenbasis(lam, V @ O, tol)[1], V_c, atol=1e-13)
    np.testing.assert_allclose(canonical_eigenbasis(lam_c, V_c, tol)[1], V_c, atol=1e-13)


@pytest.mark.parametrize("sizes", [(40,), (3, 37), (21, 19), (1, 1, 38), (2, 30, 8)])
def test_canonical_eigenbasis_full_basis_uses_the_complement(sizes):
    """With a square V, runs longer than n/2 are built from the other columns (V_o); the
    result is the same whichever basis each eigenspace had, and columns before ``first``
    are untouched."""
    rng = np.random.default_rng(36)
    n = sum(sizes)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.concatenate([np.full(m, float(i)) for i, m in enumerate(sizes)])
    lam = lam * (1 + 1e-16 * rng.random(n))
    tol = psd_tolerance(n, lam.max())
    first = sizes[0] if len(sizes) > 1 else 0  # drop the first eigenspace, as for λ ≤ τ
    lam_c, V_c = canonical_eigenbasis(lam, Q, tol, first=first)
    np.testing.assert_array_equal(V_c[:, :first], Q[:, :first])
    np.testing.assert_allclose(V_c.T @ V_c, np.eye(n), atol=1e-12)
    np.testing.assert_allclose((V_c * lam_c) @ V_c.T, (Q * lam) @ Q.T, atol=1e-12)
    O = np.zeros((n, n))
    lo = 0
    for m in sizes:
        O[lo:lo + m, lo:lo + m] = np.linalg.qr(rng.normal(size=(m, m)))[0]
        lo += m
    _, V_r = canonical_eigenbasis(lam, Q @ O, tol, first=first)
    np.testing.assert_allclose(V_r[:, first:], V_c[:, first:], atol=1e-11)


_THREADS_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
sys.path[:0] = sys.argv[1:3]
from test_spectral import _repeated_kernels, _samples_of
out = {name: hashlib.sha256(repr(_samples_of(d, range(20))).encode()).hexdigest()
       for name, d in _repeated_kernels(300).items()}  # 20 seeds: ≈ 1.5 s
print(json.dumps(out))
"""


def test_same_samples_with_one_and_two_blas_threads():
    """At n = 300, eigh with 1 and 2 OpenBLAS threads returns different bases inside
    repeated eigenspaces; the samples must not change."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    paths = [str(here), str(here.parent)]  # test_spectral and tests/support
    runs = []
    for threads in ("1", "2"):  # both at once: the start-up (imports) dominates
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
                   MKL_NUM_THREADS=threads)
        runs.append(subprocess.Popen([sys.executable, "-c", _THREADS_SCRIPT, *paths], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True))
    results = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0] == results[1]


def _repeated_small() -> dict[str, tuple[DPP, np.ndarray]]:
    """n = 6 kernels with repeated eigenvalues, and their L for enumeration."""
    rng = np.random.default_rng(33)
    A = random_psd(3, rng, scale=1.5)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 2)))
    B = rng.normal(size=(3, 2))
    cases = {"copies": np.kron(np.eye(2), A), "spiked": 2.0 * Q @ Q.T + 0.7 * np.eye(6),
             "identity": 0.8 * np.eye(6)}
    out = {name: (DPP.from_likelihood(L), L) for name, L in cases.items()}
    Lf = np.kron(np.eye(2), B) @ np.kron(np.eye(2), B).T
    out["features_copies"] = (DPP.from_features(np.kron(np.eye(2), B)), Lf)
    return out


@pytest.mark.parametrize("name", list(_repeated_small()))
def test_law_with_repeated_eigenvalues(name):
    dpp, L = _repeated_small()[name]
    samples = _draw(lambda g: sample_exact(dpp, rng=g), 20_000, seed=34)
    assert law_pvalue(samples, dpp_law(L)) > ALPHA
    k = 2
    samples_k = _draw(lambda g: sample_exact_k(dpp, k, rng=g), 20_000, seed=35)
    assert law_pvalue(samples_k, kdpp_law(L, k)) > ALPHA


def test_power_merging_distinct_eigenvalues_is_detected(monkeypatch):
    """A canonicalisation that merged distinct eigenvalues (tolerance far too wide) changes
    the law, and the law test above sees it."""
    import parasample.dpp.kernel as kernel_module

    dpp, L = _repeated_small()["copies"]
    real = kernel_module.canonical_eigenbasis
    monkeypatch.setattr(kernel_module, "canonical_eigenbasis",
                        lambda lam, V, tol, **kw: real(lam, V, 1e9, **kw))
    wrong = _fresh(dpp)
    samples = _draw(lambda g: sample_exact(wrong, rng=g), 20_000, seed=34)
    assert law_pvalue(samples, dpp_law(L)) < ALPHA


def test_runs_of_repeated_eigenvalues():
    from parasample.dpp.kernel import _runs

    v = np.array([0.0, 1.0, 1.0, 1.5, 2.0, 2.4, 2.8, 3.2, 5.0, 5.0])
    assert _runs(v, 0, 0.5) == [(1, 4), (4, 6), (6, 8), (8, 10)]  # a run ends > tol above
    assert _runs(v, 2, 0.5) == [(2, 4), (4, 6), (6, 8), (8, 10)]  # start at ``first``
    assert _runs(v, 0, 0.1) == [(1, 3), (8, 10)]
    assert _runs(np.arange(5.0), 0, 0.5) == [] and _runs(np.zeros(0), 0, 1.0) == []
