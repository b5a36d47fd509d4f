"""Tests for parasample.autoregressive (spec counting.md §8): oracle contracts, pathwise
equality parallel == sequential, exact laws by enumeration (chi-square on counts, with a power
check), and rounds/evaluations accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from parasample.autoregressive import (
    CurieWeissOracle, IsingOracle, MarkovChainOracle, ProductOracle, TableOracle,
    default_window, draw_randomness, gumbel_coupler, sample_parallel, sample_sequential,
    threshold_coupler,
)
from parasample.autoregressive.samplers import _run_parallel
from parasample.core.stats import chisquare_counts
from support.stats import oracle_counts

ALPHA = 1e-4


def _random_markov(q, n, seed, zeros=False):
    rng = np.random.default_rng(seed)
    init = rng.dirichlet(np.ones(q))
    P = rng.dirichlet(np.full(q, 0.7), size=(n - 1, q))
    if zeros:  # forbid some transitions so that some pinnings have probability 0
        P[:, 0, 1] = 0.0
        P[:, 2, 0] = 0.0
        P /= P.sum(axis=-1, keepdims=True)
    return MarkovChainOracle(init, P)


def _random_ising(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(scale=0.6, size=(n, n))
    return IsingOracle((A + A.T) / 2, rng.normal(scale=0.3, size=n))


def _oracles():
    rng = np.random.default_rng(0)
    return {
        "table_q3_n5": TableOracle(rng.dirichlet(np.full(3 ** 5, 0.5)).reshape((3,) * 5)),
        "table_sparse_q2_n6": TableOracle(
            rng.dirichlet(np.full(64, 0.5)).reshape((2,) * 6) * (rng.random((2,) * 6) < 0.6)),
        "ising_n6": _random_ising(6, 1),
        "cw_n8": IsingOracle.curie_weiss(8, 1.5, 0.1),
        "cw_n50": IsingOracle.curie_weiss(50, 1.0),
        "markov_q3_n40": _random_markov(3, 40, 2),
        "markov_zeros_q3_n6": _random_markov(3, 6, 3, zeros=True),
        "product_q4_n11": ProductOracle(rng.dirichlet(np.ones(4), size=11)),
    }


ORACLES = _oracles()


def _random_rows(oracle, B, rng):
    values = rng.integers(0, oracle.q, size=(B, oracle.n))
    mask = rng.random((B, oracle.n)) < rng.random((B, 1))
    return values, mask


# ---------------------------------------------------------------- oracle contract

@pytest.mark.parametrize("name", list(ORACLES))
def test_oracle_contract(name):
    o = ORACLES[name]
    rng = np.random.default_rng(7)
    values, mask = _random_rows(o, 40, rng)
    out = o.marginals(values, mask)
    assert out.shape == (40, o.n, o.q)
    ok = ~np.isnan(out).any(axis=(1, 2))
    assert np.all(np.isnan(out[~ok]))  # NaN rows are all-NaN
    assert ok.sum() >= 10
    np.testing.assert_allclose(out[ok].sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(out[ok] >= 0)
    for b in np.flatnonzero(ok):
        pins = np.flatnonzero(mask[b])
        np.testing.assert_array_equal(out[b, pins], np.eye(o.q)[values[b, pins]])
    # unpinned values are never read
    scrambled = np.where(mask, values, rng.integers(0, o.q, size=values.shape))
    np.testing.assert_array_equal(o.marginals(scrambled, mask), out)
    # targeted answers and single-row answers equal the batched full answer, bit for bit
    targets = rng.integers(0, o.n, size=40)
    tout = o.marginals(values, mask, targets)
    np.testing.assert_array_equal(tout, out[np.arange(40), targets])
    for b in range(0, 40, 7):
        np.testing.assert_array_equal(o.marginals(values[b:b + 1], mask[b:b + 1])[0], out[b])


def test_zero_probability_gives_nan_rows():
    p = np.zeros((2, 2))
    p[0, 0] = p[1, 1] = 0.5
    o = TableOracle(p)
    out = o.marginals(np.array([[0, 1]]), np.array([[True, True]]))
    assert np.isnan(out).all()
    out = o.marginals(np.array([[1, 0]]), np.array([[True, False]]), np.array([1]))
    np.testing.assert_array_equal(out, [[0.0, 1.0]])


@pytest.mark.parametrize("n,beta,h", [(3, 0.5, 0.0), (7, 1.5, 0.3), (10, 1.0, -0.2), (10, 2.0, 0.0)])
def test_curie_weiss_closed_form_matches_ising_table(n, beta, h):
    cw = IsingOracle.curie_weiss(n, beta, h)
    ising = IsingOracle(*cw.ising_couplings())
    rng = np.random.default_rng(n)
    values, mask = _random_rows(cw, 200, rng)
    np.testing.assert_allclose(cw.marginals(values, mask), ising.marginals(values, mask),
                               atol=1e-10, rtol=0)


def test_curie_weiss_large_n_is_finite():
    o = IsingOracle.curie_weiss(4096, 1.5, 0.2)
    rng = np.random.default_rng(0)
    values, mask = _random_rows(o, 3, rng)
    out = o.marginals(values, mask)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("zeros", [False, True])
def test_markov_matches_table(zeros):
    chain = _random_markov(3, 7, 11, zeros=zeros)
    table = TableOracle(chain.table())
    rng = np.random.default_rng(5)
    values, mask = _random_rows(chain, 200, rng)
    a, b = chain.marginals(values, mask), table.marginals(values, mask)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    if zeros:
        assert np.isnan(a).any()
    np.testing.assert_allclose(a, b, atol=1e-10, rtol=0)


def test_homogeneous_markov_chain():
    P = np.array([[0.9, 0.1], [0.2, 0.8]])
    chain = MarkovChainOracle([0.5, 0.5], P, n=6)
    table = TableOracle(chain.table())
    rng = np.random.default_rng(1)
    values, mask = _random_rows(chain, 100, rng)
    np.testing.assert_allclose(chain.marginals(values, mask), table.marginals(values, mask),
                               atol=1e-10, rtol=0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        TableOracle(np.ones((2, 3)))
    with pytest.raises(ValueError):
        IsingOracle(np.array([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError):
        MarkovChainOracle([0.5, 0.5], np.array([[0.5, 0.6], [0.5, 0.5]]), n=3)
    o = ORACLES["cw_n8"]
    with pytest.raises(ValueError):
        o.marginals(np.zeros((1, 7), int), np.zeros((1, 7), bool))
    with pytest.raises(ValueError):
        sample_parallel(o, rng=0, window=0)


# ---------------------------------------------------------------- couplers

def test_couplers():
    rng = np.random.default_rng(0)
    u = rng.random(20000)
    p, pp = np.array([0.3, 0.7]), np.array([0.55, 0.45])
    a = np.array([threshold_coupler(p, x) for x in u])
    b = np.array([threshold_coupler(pp, x) for x in u])
    # disagreement is exactly the u-interval between p(1) and p'(1)
    np.testing.assert_array_equal(a != b, (u >= 0.45) & (u < 0.7))
    assert chisquare_counts(np.bincount(a, minlength=2), p)[1] > ALPHA
    p3, pp3 = np.array([0.2, 0.0, 0.5, 0.3]), np.array([0.4, 0.1, 0.3, 0.2])
    g = rng.gumbel(size=(20000, 4))
    a = np.array([gumbel_coupler(p3, x) for x in g])
    b = np.array([gumbel_coupler(pp3, x) for x in g])
    assert not np.any(a == 1)  # log 0 = -inf is never chosen
    assert chisquare_counts(np.bincount(a, minlength=4), p3)[1] > ALPHA
    assert chisquare_counts(np.bincount(b, minlength=4), pp3)[1] > ALPHA
    tv = 0.5 * np.abs(p3 - pp3).sum()
    assert np.mean(a != b) <= 2 * tv / (1 + tv) + 0.01


def test_draw_randomness_layout():
    order, r = draw_randomness(5, 2, 3)
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(order, rng.permutation(5))
    np.testing.assert_array_equal(r, rng.random(5))
    order, g = draw_randomness(5, 3, 3)
    assert g.shape == (5, 3)
    assert default_window(4096) == 16 and default_window(1) == 2 and default_window(1000) == 10


# ---------------------------------------------------------------- pathwise equality

@pytest.mark.parametrize("name", list(ORACLES))
def test_parallel_equals_sequential_pathwise(name):
    o = ORACLES[name]
    mismatches = 0
    for seed in range(15):
        seq = sample_sequential(o, rng=seed)
        assert seq.cost.rounds == o.n and seq.cost.evaluations == o.n
        assert seq.sample.dtype == np.int64 and seq.sample.shape == (o.n,)
        for w in (1, 2, 3, 7, None, o.n):
            par = sample_parallel(o, rng=seed, window=w)
            np.testing.assert_array_equal(par.sample, seq.sample, err_msg=f"{name} w={w}")
            W = default_window(o.n) if w is None else w
            if W == 1:
                assert par.cost.rounds == o.n
            R = par.info["mismatches"]
            assert o.n <= par.cost.evaluations <= o.n + (W - 1) * R
            mismatches += R
            assert par.cost.rounds <= 2 * (math.ceil(o.n / W) + par.info["mismatches"])
            acc = par.info["accepted"]
            assert (np.arange(len(acc)) * acc).sum() == o.n
    if not name.startswith("product"):
        assert mismatches > 0  # the reject path is exercised


def test_explicit_order_is_shared():
    o = ORACLES["markov_q3_n40"]
    order = np.arange(40)[::-1]
    seq = sample_sequential(o, rng=4, order=order)
    par = sample_parallel(o, rng=4, order=order, window=5)
    np.testing.assert_array_equal(par.sample, seq.sample)


# ---------------------------------------------------------------- exact law by enumeration

def _law(oracle):
    if isinstance(oracle, TableOracle):
        return oracle.p.ravel()
    if isinstance(oracle, IsingOracle):
        return oracle.table.p.ravel()
    if isinstance(oracle, CurieWeissOracle):
        return IsingOracle(*oracle.ising_couplings()).table.p.ravel()
    if isinstance(oracle, MarkovChainOracle):
        return oracle.table().ravel()
    raise TypeError(type(oracle))


LAW_CASES = [  # (name, sampler, window, S, seed)
    ("table_q3_n5", sample_parallel, None, 12000, 101),
    ("table_sparse_q2_n6", sample_parallel, 6, 6000, 102),
    ("ising_n6", sample_parallel, 3, 6000, 103),
    ("cw_n8", sample_parallel, 8, 8000, 104),
    ("cw_n8", sample_parallel, None, 8000, 105),
    ("markov_zeros_q3_n6", sample_parallel, 4, 8000, 106),
    ("table_q3_n5", sample_sequential, None, 8000, 107),
]


@pytest.mark.parametrize("name,sampler,window,S,seed", LAW_CASES)
def test_exact_law_chisquare(name, sampler, window, S, seed):
    o = ORACLES[name]
    kw = {} if sampler is sample_sequential else {"window": window}
    counts = oracle_counts(o, sampler, S, seed, **kw)
    law = _law(o)
    assert counts[law == 0].sum() == 0
    stat, p, df = chisquare_counts(counts, law)
    assert df >= 10
    assert p > ALPHA, f"{name}: chi2 = {stat:.1f}, df = {df}, p = {p:.2e}"


def _accept_all(oracle, *, rng, window):
    """WRONG sampler: the parallel loop without verification (accepts every draft)."""
    coupler = "threshold" if oracle.q == 2 else "gumbel"
    order, r = draw_randomness(oracle.n, oracle.q, rng, coupler=coupler)
    return _run_parallel(oracle, oracle.n, coupler, order, r, window, verify=False)


@pytest.mark.parametrize("name,window", [("cw_n8", 8), ("cw_n8", 3), ("table_q3_n5", None)])
def test_power_chisquare_rejects_unverified_sampler(name, window):
    o = ORACLES[name]
    w = default_window(o.n) if window is None else window
    counts = oracle_counts(o, _accept_all, 8000, 200, window=w)
    _, p, _ = chisquare_counts(counts, _law(o))
    assert p < ALPHA, f"power check failed: p = {p:.2e}"


# ---------------------------------------------------------------- accounting

@pytest.mark.parametrize("n", [1, 2, 7, 10, 13])
def test_product_rounds_by_hand(n):
    # Product: never a mismatch. Iterations = ceil(n/w), each W coordinates with one
    # speculation row and W-1 verification rows, i.e. 2 rounds if W >= 2 and 1 if W = 1.
    # Only the last window can have W = 1 (when n mod w = 1), unless w = 1 (all n rounds).
    o = ProductOracle(np.random.default_rng(n).dirichlet(np.ones(3), size=n))
    for w in (1, 2, 3, 4, 7, n, None):
        W = default_window(n) if w is None else w
        expected = n if W == 1 else 2 * math.ceil(n / W) - (n % W == 1)
        res = sample_parallel(o, rng=n, window=w)
        assert res.info["mismatches"] == 0
        assert res.cost.rounds == expected, (n, w)
        assert res.cost.evaluations == n
        acc = res.info["accepted"]
        Ws = [min(W, n - t) for t in range(0, n, W)]
        assert res.cost.rounds == sum(1 + (x >= 2) for x in Ws)
        assert acc.sum() == len(Ws)


def test_hand_example_n7_w3():
    o = ProductOracle(np.full((7, 2), 0.5))
    res = sample_parallel(o, rng=0, window=3)
    # windows of 3, 3, 1 -> rounds 2 + 2 + 1 = 5, rows 3 + 3 + 1 = 7
    assert (res.cost.rounds, res.cost.evaluations) == (5, 7)
    np.testing.assert_array_equal(res.info["accepted"], [0, 1, 0, 2])


def test_curie_weiss_rounds_scaling(capsys):
    ns = [64, 256, 1024, 4096]
    beta, seeds = 0.5, 3
    rows = []
    for n in ns:
        o = IsingOracle.curie_weiss(n, beta)
        res = [sample_parallel(o, rng=s) for s in range(seeds)]
        rounds = np.array([r.cost.rounds for r in res])
        evals = np.array([r.cost.evaluations for r in res])
        mism = np.array([r.info["mismatches"] for r in res])
        assert np.all(rounds <= 4 * n ** (2 / 3) + 4)
        assert np.all(evals < 4 * n)
        rows.append((n, default_window(n), rounds.mean(), evals.mean() / n, mism.mean()))
    slope = np.polyfit(np.log(ns), np.log([r[2] for r in rows]), 1)[0]
    with capsys.disabled():
        print(f"\nCurie-Weiss beta={beta}, default window, {seeds} seeds")
        print("| n | w | mean rounds | rounds/n^(2/3) | evals/n | mismatches |")
        for n, w, r, e, m in rows:
            print(f"| {n} | {w} | {r:.1f} | {r / n ** (2 / 3):.3f} | {e:.3f} | {m:.2f} |")
        print(f"log-log slope of rounds: {slope:.3f}")
    assert 0.55 <= slope <= 0.8
    n, _, r4096, _, _ = rows[-1]
    assert r4096 < n / 6  # about 2n/w = n/8 plus a few mismatches
