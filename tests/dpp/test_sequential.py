"""Sequential (Poulson) sampler from K: dense unblocked, blocked and low-rank (spec §3, §9)."""

from __future__ import annotations


import numpy as np
import pytest

from parasample.dpp import sequential
from parasample.dpp.kernel import DPP
from parasample.dpp.nonsymmetric import NonsymmetricDPP
from parasample.dpp.sequential import (
    LOWRANK_BLOCKED_MIN_RANK,
    _lowrank_block,
    _lowrank_factors,
    _sequential_blocked,
    _sequential_lowrank,
    _sequential_lowrank_blocked,
    _sequential_unblocked,
    sample_lowrank,
    sample_sequential,
)
from support.dpp_laws import dpp_law, ill_conditioned_psd, random_psd
from support.stats import all_subsets, chisquare_counts, count_samples

ALPHA = 1e-4
M = 20_000
TIE = 1e-9


# ---------------------------------------------------------------------------- helpers
def k_law(K: np.ndarray) -> dict[tuple[int, ...], float]:
    """P(X = S) = |det(K − I_S̄)| for any valid K (projection parts included)."""
    n = K.shape[0]
    law = {}
    for S in all_subsets(n):
        M_ = K.copy()
        out = np.ones(n, dtype=bool)
        out[list(S)] = False
        M_[out, out] -= 1.0
        law[S] = abs(float(np.linalg.det(M_)))
    return law


def projection_K(n: int, mu, rng) -> np.ndarray:
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    mu = np.concatenate([mu, np.zeros(n - len(mu))])
    K = (Q * mu) @ Q.T
    return (K + K.T) / 2


def law_test(sampler, target, law, seed: int, m: int = M) -> float:
    gen = np.random.default_rng(seed)
    samples = []
    for _ in range(m):
        x = sampler(target, rng=gen)
        assert x.dtype == np.int64 and np.all(np.diff(x) > 0)
        samples.append(tuple(x))
    support = list(law)
    counts = count_samples(samples, support)
    assert counts.sum() == m
    return chisquare_counts(counts, np.array([law[s] for s in support]))[1]


def make_case(case: str):
    rng = np.random.default_rng({"dense": 1, "lowrank": 2, "ill": 3, "projection": 4,
                                 "lowrank_dense": 5}[case])
    if case == "dense":
        L = random_psd(6, rng, scale=1.5)
        return DPP.from_likelihood(L), dpp_law(L)
    if case == "lowrank":
        B = rng.normal(size=(7, 3))
        return DPP.from_features(B), dpp_law(B @ B.T)
    if case == "lowrank_dense":  # singular L through the dense K path
        B = rng.normal(size=(7, 3))
        return DPP.from_likelihood(B @ B.T), dpp_law(B @ B.T)
    if case == "ill":
        L = ill_conditioned_psd(6, rng)
        return DPP.from_likelihood(L), dpp_law(L)
    K = projection_K(6, [1.0, 1.0, 0.6, 0.3], rng)
    return DPP.from_correlation(K), k_law(K)


def has_tie(u: np.ndarray, p: np.ndarray) -> bool:
    return bool(np.any(np.abs(u - p) < TIE))


# ---------------------------------------------------------------------------- exact laws
@pytest.mark.parametrize("case", ["dense", "lowrank", "lowrank_dense", "ill", "projection"])
@pytest.mark.parametrize("sampler", [sample_sequential, sample_lowrank])
def test_exact_law(case, sampler):
    dpp, law = make_case(case)
    assert abs(sum(law.values()) - 1) < 1e-9
    assert law_test(sampler, dpp, law, seed=11) > ALPHA


def ndpp_case():
    """A small NDPP from factors (n = 7, r = 4) and its law det(L_S) / det(I + L)."""
    rng = np.random.default_rng(6)
    V, B, D = rng.normal(size=(7, 2)), rng.normal(size=(7, 2)), 2 * rng.normal(size=(2, 2))
    L = V @ V.T + B @ (D - D.T) @ B.T
    Z = 1.0 / np.linalg.det(np.eye(7) + L)
    law = {S: Z * (np.linalg.det(L[np.ix_(S, S)]) if S else 1.0) for S in all_subsets(7)}
    return NonsymmetricDPP.from_factors(V, B, D), law


@pytest.mark.parametrize("case", ["lowrank", "projection", "ndpp"])
def test_exact_law_blocked_lowrank(case, monkeypatch):
    """The public low-rank path forced onto the blocked sampler (blocks of 2 items, so
    every block boundary and the rank-b update of W are exercised) has the exact law."""
    dpp, law = ndpp_case() if case == "ndpp" else make_case(case)
    assert abs(sum(law.values()) - 1) < 1e-9
    monkeypatch.setattr(sequential, "LOWRANK_BLOCKED_MIN_RANK", 0)
    monkeypatch.setattr(sequential, "_lowrank_block", lambda r: 2)
    assert law_test(sample_lowrank, dpp, law, seed=12) > ALPHA


def test_power_independent_bernoulli_is_rejected():
    """The same chi-square test must reject a wrong sampler (independent Bernoulli(K_ii))."""
    dpp, law = make_case("dense")
    q = np.diag(dpp.marginal_kernel())

    def bernoulli(_, *, rng):
        return np.flatnonzero(rng.random(q.size) < q).astype(np.int64)

    assert law_test(sampler=bernoulli, target=dpp, law=law, seed=11) < ALPHA


def test_power_projection_without_projection_part_is_rejected():
    """Dropping K's eigenvalue-1 part (clipping μ = 1 to 0.99) must be detected."""
    dpp, law = make_case("projection")
    s = dpp.spectrum
    wrong = DPP.from_correlation((s.V * np.minimum(s.mu, 0.97)) @ s.V.T)
    assert law_test(sample_sequential, wrong, law, seed=11) < ALPHA


# ---------------------------------------------------------------------------- pathwise
def _kernels(rng, n):
    L = random_psd(n, rng, scale=2.0)
    yield DPP.from_likelihood(L).marginal_kernel()
    yield projection_K(n, [1.0] * (n // 8) + list(rng.random(n // 4)), rng)
    yield DPP.from_features(rng.normal(size=(n, n // 12))).marginal_kernel()


@pytest.mark.parametrize("block", [1, 7, 32, 128, 500])
def test_blocked_equals_unblocked(block):
    rng = np.random.default_rng(21)
    n = 16 if block == 1 else 150  # 150 items: two blocks of 128, or one of 500
    checked = skipped = 0
    for K in _kernels(rng, n):
        for seed in range(4):
            u = np.random.default_rng(seed).random(K.shape[0])
            ref, p_ref = _sequential_unblocked(K, u)
            if has_tie(u, p_ref):
                skipped += 1
                continue
            for sym in (None, True, False):
                got, p = _sequential_blocked(K, u, block=block, symmetric=sym)
                np.testing.assert_array_equal(got, ref)
                np.testing.assert_allclose(p, p_ref, atol=1e-8)
            checked += 1
    assert checked >= 10 and skipped <= 2


def test_lowrank_equals_dense_on_shared_uniforms():
    rng = np.random.default_rng(22)
    dpps = [DPP.from_features(rng.normal(size=(120, 10))),
            DPP.from_features(rng.normal(size=(120, 4)) * 3),
            DPP.from_correlation(projection_K(80, [1.0] * 5 + [0.5, 0.2], rng))]
    checked = 0
    for dpp in dpps:
        K = dpp.marginal_kernel()
        Z, W = _lowrank_factors(dpp, dense_ok=True)
        for seed in range(5):
            u = np.random.default_rng(seed).random(dpp.n)
            ref, p_ref = _sequential_unblocked(K, u)
            if has_tie(u, p_ref):
                continue
            got, p = _sequential_lowrank(Z, W, u)
            np.testing.assert_array_equal(got, ref)
            np.testing.assert_allclose(p, p_ref, atol=1e-8)
            np.testing.assert_array_equal(_sequential_blocked(K, u, block=16)[0], ref)
            checked += 1
    assert checked >= 12


def _lowrank_cases(rng):
    """(name, Z, W, W symmetric): features, spectra with eigenvalue 1, NDPP factors."""
    for n, d, scale in [(150, 20, 1.0), (130, 40, 0.3), (90, 6, 3.0)]:
        Z, W = _lowrank_factors(DPP.from_features(rng.normal(size=(n, d)) * scale),
                                dense_ok=True)
        yield f"features {n}x{d}", Z, W, True
    for n, mu in [(100, [1.0] * 6 + [0.7, 0.4, 0.1]), (70, [1.0] * 20)]:
        dpp = DPP.from_correlation(projection_K(n, mu, rng))
        Z, W = _lowrank_factors(dpp, dense_ok=True)
        yield f"spectrum {n} ({len(mu)} eigenvalues, {mu.count(1.0)} at 1)", Z, W, True
    for n, k, m, skew in [(140, 10, 12, 2.0), (110, 0, 20, 1.0), (100, 24, 4, 0.5)]:
        V = rng.normal(size=(n, k)) / np.sqrt(max(k, 1))
        B = rng.normal(size=(n, m)) / np.sqrt(m)
        D = rng.normal(size=(m, m)) * skew
        Z, W = NonsymmetricDPP.from_factors(V, B, D)._lowrank_factors
        yield f"NDPP factors {n}x({k}+{m})", Z, W, False


def test_lowrank_blocked_equals_itemwise_on_shared_uniforms():
    """Blocked and itemwise low-rank samplers make the same decisions on shared uniforms
    (ties |u_j − p_j| < 1e-9 skipped), for every block size and both W-update forms."""
    rng = np.random.default_rng(24)
    checked = skipped = 0
    for name, Z, W, sym in _lowrank_cases(rng):
        assert np.array_equal(W, W.T) == sym, name
        W0 = W.copy()
        for seed in range(4):
            u = np.random.default_rng(seed).random(Z.shape[0])
            ref, p_ref = _sequential_lowrank(Z, W, u)
            if has_tie(u, p_ref):
                skipped += 1
                continue
            for block in (1, 3, 16, None, 64, 1000):
                # symmetric=False on a symmetric W takes the general P M⁻¹ Q update.
                for symmetric in ((None, True, False) if sym else (None, False)):
                    got, p = _sequential_lowrank_blocked(Z, W, u, block, symmetric=symmetric)
                    np.testing.assert_array_equal(got, ref, err_msg=f"{name}, b={block}")
                    np.testing.assert_allclose(p, p_ref, atol=1e-8, err_msg=name)
            checked += 1
        np.testing.assert_array_equal(W, W0)  # W is not modified
    assert checked >= 28 and skipped <= 4


def test_lowrank_blocked_equals_dense():
    """Blocked low-rank = dense unblocked reference (K formed) on shared uniforms."""
    rng = np.random.default_rng(25)
    checked = 0
    for name, Z, W, _ in _lowrank_cases(rng):
        K = Z @ W @ Z.T
        for seed in range(3):
            u = np.random.default_rng(seed).random(Z.shape[0])
            ref, p_ref = _sequential_unblocked(K, u)
            if has_tie(u, p_ref):
                continue
            got, p = _sequential_lowrank_blocked(Z, W, u, block=16)
            np.testing.assert_array_equal(got, ref, err_msg=name)
            np.testing.assert_allclose(p, p_ref, atol=1e-8, err_msg=name)
            checked += 1
    assert checked >= 20


def test_public_lowrank_paths_use_the_blocked_sampler():
    """sample_lowrank and the low-rank dispatch of sample_sequential agree with the blocked
    sampler on their n uniforms, for ranks above and below the itemwise cut-off."""
    rng = np.random.default_rng(26)
    for d in (4, LOWRANK_BLOCKED_MIN_RANK, 40):
        dpp = DPP.from_features(rng.normal(size=(200, d)))
        Z, W = _lowrank_factors(dpp, dense_ok=True)
        for seed in range(3):
            u = np.random.default_rng(seed).random(200)
            ref, p = _sequential_lowrank_blocked(Z, W, u)
            if has_tie(u, p):
                continue
            np.testing.assert_array_equal(sample_lowrank(dpp, rng=seed), ref)
            np.testing.assert_array_equal(sample_sequential(dpp, rng=seed), ref)


def test_lowrank_block_size_rule():
    assert [_lowrank_block(r) for r in (1, 16, 64, 100, 400, 4000)] == [16, 16, 16, 25, 100, 128]


def test_public_samplers_share_uniforms():
    """sample_sequential (dense or dispatched) and sample_lowrank draw the same n uniforms."""
    rng = np.random.default_rng(23)
    B = rng.normal(size=(60, 5))
    feat, dense = DPP.from_features(B), DPP.from_likelihood(B @ B.T)
    for seed in range(5):
        u = np.random.default_rng(seed).random(60)
        p = _sequential_unblocked(dense.marginal_kernel(), u)[1]
        if has_tie(u, p):
            continue
        a = sample_sequential(feat, rng=seed)
        np.testing.assert_array_equal(a, sample_sequential(dense, rng=seed))
        np.testing.assert_array_equal(a, sample_lowrank(feat, rng=seed))
        np.testing.assert_array_equal(a, sample_lowrank(dense, rng=seed))


# ---------------------------------------------------------------------------- bad input
BAD_KERNELS = {
    "diag above 1": np.diag([1.5, 0.2]),
    "negative diag": np.diag([0.3, -0.1]),
    "not PSD, later pivot": np.array([[0.5, 0.9], [0.9, 0.5]]),
    "above I, second item": np.diag([0.5, 1.0 + 1e-6]),
    "NaN": np.array([[0.5, np.nan], [np.nan, 0.5]]),
}


@pytest.mark.parametrize("name", list(BAD_KERNELS))
def test_invalid_pivots_raise(name):
    K = BAD_KERNELS[name]
    for u in (np.array([0.0, 0.0]), np.array([0.99, 0.99])):
        with pytest.raises(ValueError, match="invalid kernel"):
            _sequential_unblocked(K, u)
        with pytest.raises(ValueError, match="invalid kernel"):
            _sequential_blocked(K, u)
        with pytest.raises(ValueError, match="invalid kernel"):
            _sequential_lowrank(np.eye(2), K, u)
        for symmetric in (None, False):
            with pytest.raises(ValueError, match="invalid kernel"):
                _sequential_lowrank_blocked(np.eye(2), K, u, symmetric=symmetric)


def test_pivot_error_names_item_and_value():
    with pytest.raises(ValueError, match=r"item 0 is 1\.5"):
        _sequential_blocked(np.diag([1.5, 0.2]), np.array([0.1, 0.1]))


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("block", [1, 16, 100])
def test_lowrank_blocked_pivot_error_names_item_and_value(block, symmetric):
    """An invalid pivot in a later block is reported with its global index and value,
    whatever the earlier decisions (K = Z W Zᵀ diagonal here)."""
    mu = np.full(60, 0.5)
    mu[37] = 1.5
    for u in (np.zeros(60), np.full(60, 0.99)):
        with pytest.raises(ValueError, match=r"item 37 is 1\.5"):
            _sequential_lowrank_blocked(np.eye(60), np.diag(mu), u, block, symmetric=symmetric)
    with pytest.raises(ValueError, match=r"item 37 is 1\.5"):
        _sequential_lowrank(np.eye(60), np.diag(mu), np.zeros(60))


def test_lowrank_blocked_edge_cases():
    got, p = _sequential_lowrank_blocked(np.zeros((5, 0)), np.zeros((0, 0)), np.full(5, 0.5))
    assert got.size == 0 and np.all(p == 0)
    got, p = _sequential_lowrank_blocked(np.eye(4), np.diag([1.0 + 5e-9, -5e-9, 1.0, 0.0]),
                                         np.array([0.999, 0.0, 0.5, 0.5]), block=3)
    np.testing.assert_array_equal(got, [0, 2])
    np.testing.assert_array_equal(p, [1.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="block"):
        _sequential_lowrank_blocked(np.eye(2), np.eye(2) * 0.5, np.zeros(2), block=0)
    with pytest.raises(ValueError, match="uniforms"):
        _sequential_lowrank_blocked(np.eye(2), np.eye(2) * 0.5, np.zeros(3))


def test_tolerance_clips_tiny_violations():
    K = np.diag([1.0 + 5e-9, -5e-9])
    got, p = _sequential_blocked(K, np.array([0.999, 0.0]))
    np.testing.assert_array_equal(got, [0])
    np.testing.assert_array_equal(p, [1.0, 0.0])


def test_wrong_types_raise():
    with pytest.raises(TypeError, match="DPP"):
        sample_sequential(np.eye(3) * 0.5, rng=0)
    with pytest.raises(TypeError, match="DPP"):
        sample_lowrank(np.eye(3) * 0.5, rng=0)
    with pytest.raises(ValueError, match="block"):
        _sequential_blocked(np.eye(2) * 0.5, np.zeros(2), block=0)


# ---------------------------------------------------------------------------- regression
def test_reproducible_and_seed_dependent():
    rng = np.random.default_rng(31)
    dense = DPP.from_likelihood(random_psd(40, rng, scale=3.0))
    feat = DPP.from_features(rng.normal(size=(40, 6)))
    for dpp in (dense, feat):
        for sampler in (sample_sequential, sample_lowrank):
            a = sampler(dpp, rng=5)
            np.testing.assert_array_equal(a, sampler(dpp, rng=5))
            np.testing.assert_array_equal(a, sampler(dpp, rng=np.random.default_rng(5)))
            draws = {tuple(sampler(dpp, rng=s)) for s in range(6)}
            assert len(draws) > 1
    gen = np.random.default_rng(0)
    assert not np.array_equal(sample_sequential(dense, rng=gen), sample_sequential(dense, rng=gen))


def test_degenerate_kernels_give_valid_samples():
    rng = np.random.default_rng(32)
    B = rng.normal(size=(30, 4))
    B = np.hstack([B, B[:, :2]])  # duplicated feature columns
    for dpp in (DPP.from_features(B), DPP.from_likelihood(B @ B.T),
                DPP.from_likelihood(np.zeros((5, 5))), DPP.from_likelihood([[2.0]]),
                DPP.from_correlation(np.eye(4))):
        for seed in range(5):
            for sampler in (sample_sequential, sample_lowrank):
                x = sampler(dpp, rng=seed)
                assert x.dtype == np.int64 and np.all(np.diff(x) > 0)
                assert x.size <= dpp.rank
    np.testing.assert_array_equal(sample_sequential(DPP.from_correlation(np.eye(4)), rng=0),
                                  np.arange(4))
    assert sample_sequential(DPP.from_likelihood(np.zeros((5, 5))), rng=0).size == 0


def test_size_matches_rank_for_projection_kernel():
    K = projection_K(50, [1.0] * 7, np.random.default_rng(33))
    dpp = DPP.from_correlation(K)
    for seed in range(5):
        assert sample_sequential(dpp, rng=seed).size == 7
        assert sample_lowrank(dpp, rng=seed).size == 7


@pytest.mark.parametrize("block", [2.5, True, 0, -1, "4"])
def test_block_sizes_must_be_positive_integers_never_truncated(block):
    with pytest.raises(ValueError, match="block must be"):
        _sequential_blocked(np.eye(4) * 0.5, np.zeros(4), block=block)
    with pytest.raises(ValueError, match="block must be"):
        _sequential_lowrank_blocked(np.eye(4), np.eye(4) * 0.5, np.zeros(4), block=block)
