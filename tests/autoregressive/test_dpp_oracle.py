"""DPPOracle (spec counting.md §3 item 6): agreement with the enumerated table oracle,
zero-probability rows, pathwise equality parallel == sequential, and the law by chi-square."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from parasample.autoregressive import TableOracle, sample_parallel, sample_sequential
from parasample.autoregressive.dpp_oracle import DPPOracle
from parasample.core.stats import chisquare_counts
from parasample.dpp import DPP

ALPHA = 1e-4


def _kernel(n, seed, rank=None):
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(n, n if rank is None else rank)) / np.sqrt(n)
    L = G @ G.T
    if rank is None:
        L += 0.2 * np.eye(n)
    return L


def _table(L, k=None):
    n = L.shape[0]
    p = np.zeros((2,) * n)
    for x in itertools.product((0, 1), repeat=n):
        Y = [i for i in range(n) if x[i]]
        if k is not None and len(Y) != k:
            continue
        p[x] = np.linalg.det(L[np.ix_(Y, Y)]) if Y else 1.0
    return np.clip(p, 0.0, None)


def _random_rows(n, B, rng):
    values = rng.integers(0, 2, size=(B, n))
    mask = rng.random((B, n)) < rng.random((B, 1))
    return values, mask


@pytest.mark.parametrize("k", [None, 3])
def test_agrees_with_table(k):
    n = 8
    L = _kernel(n, 1)
    ours, ref = DPPOracle(L, k=k), TableOracle(_table(L, k))
    rng = np.random.default_rng(2)
    values, mask = _random_rows(n, 200, rng)
    a = ours.marginals(values, mask)
    b = ref.marginals(values, mask)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(b)
    np.testing.assert_allclose(a[ok], b[ok], rtol=0, atol=1e-10)
    if k is not None:
        assert np.isnan(a).any() and (~np.isnan(a)).any()  # both kinds were exercised
    t = rng.integers(0, n, size=200)
    np.testing.assert_array_equal(ours.marginals(values, mask, t), a[np.arange(200), t])


def test_from_dpp_object_and_features():
    B = np.random.default_rng(3).normal(size=(7, 4))
    o1 = DPPOracle(DPP.from_features(B), k=2)
    o2 = DPPOracle(B @ B.T, k=2)
    v = np.zeros((1, 7), dtype=int)
    m = np.zeros((1, 7), dtype=bool)
    np.testing.assert_allclose(o1.marginals(v, m), o2.marginals(v, m), atol=1e-12)
    # k-DPP marginals sum to k; DPP marginals sum to E|Y| = tr K
    assert o2.marginals(v, m)[0, :, 1].sum() == pytest.approx(2.0, abs=1e-10)
    d = DPPOracle(B @ B.T)
    K = DPP.from_likelihood(B @ B.T).marginal_kernel()
    np.testing.assert_allclose(d.marginals(v, m)[0, :, 1], np.diag(K), atol=1e-10)


def test_zero_probability_rows_are_nan():
    L = _kernel(6, 4, rank=2)  # rank 2: any 3 items together have probability 0
    o = DPPOracle(L)
    v = np.array([[1, 1, 1, 0, 0, 0]])
    m = np.array([[True, True, True, False, False, False]])
    assert np.isnan(o.marginals(v, m)).all()
    v2 = np.array([[1, 1, 0, 0, 0, 0]])
    m2 = np.array([[True, True, False, False, False, False]])
    p = o.marginals(v2, m2)[0]
    assert not np.isnan(p).any()
    np.testing.assert_allclose(p[2:, 1], 0.0, atol=1e-8)  # rank exhausted
    ok = DPPOracle(L, k=2)
    assert np.isnan(ok.marginals(v, m)).all()  # |A| > k
    v3 = np.zeros((1, 6), dtype=int)
    m3 = np.array([[True, True, True, True, True, False]])
    assert np.isnan(ok.marginals(v3, m3)).all()  # k' > |C|
    assert np.isnan(DPPOracle(L, k=3).marginals(v3, ~m3 | m3)).all()  # rank < k


def test_validation():
    with pytest.raises(ValueError):
        DPPOracle(np.ones((2, 3)))
    with pytest.raises(ValueError):
        DPPOracle(np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError):
        DPPOracle(np.eye(3), k=4)


def _bad_kernels():
    """name -> kernel that DPP.from_likelihood rejects (item classes: not PSD, asymmetric,
    non-finite, wrong shape or dtype)."""
    rng = np.random.default_rng(11)
    G = rng.normal(size=(6, 6))
    psd = G @ G.T / 6
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    one_negative = (Q * np.array([-1e-3, 0.5, 1.0, 1.5, 2.0, 3.0])) @ Q.T
    slightly_asym = psd.copy()
    slightly_asym[0, 1] += 1e-11  # below a 1e-10·scale tolerance, above 1e-12·scale
    nan, inf = psd.copy(), psd.copy()
    nan[2, 3] = nan[3, 2] = np.nan
    inf[1, 1] = np.inf
    return {
        "indefinite_2x2": np.array([[1.0, 2.0], [2.0, 1.0]]),
        "negative_diagonal": np.diag([1.0, -0.5, 2.0]),
        "one_negative_eigenvalue": (one_negative + one_negative.T) / 2,
        "negated_psd": -psd,
        "asymmetric": psd + np.triu(np.ones((6, 6)), 1),
        "slightly_asymmetric": slightly_asym,
        "nan": nan,
        "inf": inf,
        "all_nan": np.full((3, 3), np.nan),
        "non_square": np.ones((2, 3)),
        "empty": np.zeros((0, 0)),
        "three_d": np.ones((2, 2, 2)),
        "complex": np.eye(3) * (1 + 1j),
        "strings": np.array([["a", "b"], ["c", "d"]]),
    }


@pytest.mark.parametrize("k", [None, 2])
@pytest.mark.parametrize("name", sorted(_bad_kernels()))
def test_rejects_exactly_what_dpp_from_likelihood_rejects(name, k):
    L = _bad_kernels()[name]
    with pytest.raises(ValueError) as ref:
        DPP.from_likelihood(L)
    with pytest.raises(ValueError) as got:
        DPPOracle(L, k=k)
    assert str(got.value) == str(ref.value)  # the same check, the same message


def test_accepts_what_dpp_from_likelihood_accepts():
    """Rounding-level asymmetry and negative eigenvalues within tolerance are accepted and
    symmetrised/used as DPP.from_likelihood does."""
    rng = np.random.default_rng(12)
    B = rng.normal(size=(7, 3))
    L = B @ B.T  # rank 3: eigenvalues ≈ ±1e-16 around 0
    L[0, 1] += 1e-14  # asymmetric at rounding level
    o = DPPOracle(L)
    np.testing.assert_array_equal(o.L, DPP.from_likelihood(L).likelihood_kernel())
    assert np.array_equal(o.L, o.L.T)


@pytest.mark.parametrize("k", [2.5, np.float64(1.5), True, -1, "2", None])
def test_k_must_be_a_count(k):
    if k is None:
        DPPOracle(np.eye(3), k=None)
        return
    with pytest.raises(ValueError, match="k must be"):
        DPPOracle(np.eye(3), k=k)


def test_rejects_a_nonsymmetric_dpp_object_naming_the_alternatives():
    from parasample.dpp import NonsymmetricDPP

    ndpp = NonsymmetricDPP.from_likelihood(np.array([[1.0, 0.5], [-0.5, 1.0]]))
    with pytest.raises(TypeError, match="DPPOracle.*NonsymmetricDPP.*sample_sequential"):
        DPPOracle(ndpp)


@pytest.mark.parametrize("k", [None, 4])
def test_pathwise_parallel_equals_sequential(k):
    n = 12
    o = DPPOracle(_kernel(n, 5), k=k)
    for seed in range(20):
        seq = sample_sequential(o, rng=seed)
        assert seq.cost.rounds == n
        for w in (1, 2, 3, 5, n):
            par = sample_parallel(o, rng=seed, window=w)
            np.testing.assert_array_equal(par.sample, seq.sample)
        if k is not None:
            assert seq.sample.sum() == k


@pytest.mark.parametrize("k", [None, 3])
def test_law_by_chisquare(k):
    n, S = 6, 2500
    L = _kernel(n, 6)
    probs = _table(L, k).ravel()
    probs /= probs.sum()
    o = DPPOracle(L, k=k)
    weights = 1 << np.arange(n - 1, -1, -1)
    counts = np.zeros(2 ** n)
    for s, gen in enumerate(np.random.default_rng(7).spawn(S)):
        x = sample_parallel(o, rng=gen, window=3).sample
        counts[int(x @ weights)] += 1
    support = probs > 0
    _, pval, df = chisquare_counts(counts[support], probs[support])
    assert counts[~support].sum() == 0
    assert df > 5 and pval > ALPHA
