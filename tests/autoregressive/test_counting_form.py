"""Counting-form adapter LogCountOracle (spec counting.md §2): agreement with TableOracle,
zero-probability rows, one log_count call per marginals call and the q-fold row cost,
pathwise parallel == sequential, the law by chi-square, and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from parasample.autoregressive import (
    LogCountOracle, TableOracle, default_window, sample_parallel, sample_sequential,
)
from parasample.autoregressive.counting_form import table_log_count
from parasample.core import NumericalError
from parasample.core.stats import chisquare_counts

ALPHA = 1e-4


def _table(q, n, seed, sparse=0.0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(q ** n, 0.5)).reshape((q,) * n)
    if sparse:
        p = p * (rng.random(p.shape) >= sparse)
    return p


def _random_rows(n, q, B, rng):
    values = rng.integers(0, q, size=(B, n))
    mask = rng.random((B, n)) < rng.random((B, 1))
    mask[0] = False
    mask[1] = True
    return values, mask


class _Recorder:
    """Wraps a log_count and records the batch size of every invocation."""

    def __init__(self, fn):
        self.fn = fn
        self.sizes = []

    def __call__(self, values, mask):
        assert values.dtype == np.int64 and mask.dtype == bool
        assert np.all(values[~mask] == 0)  # unpinned values are zeroed before the call
        self.sizes.append(len(values))
        return self.fn(values, mask)


@pytest.mark.parametrize("q,n,sparse", [(2, 8, 0.0), (3, 5, 0.0), (2, 8, 0.4), (3, 5, 0.4)])
def test_agrees_with_table_oracle(q, n, sparse):
    p = _table(q, n, 10 * q + n, sparse)
    ours, ref = LogCountOracle.from_table(p), TableOracle(p)
    assert (ours.n, ours.q) == (n, q)
    rng = np.random.default_rng(q + n)
    values, mask = _random_rows(n, q, 200, rng)
    a, b = ours.marginals(values, mask), ref.marginals(values, mask)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    if sparse:
        assert np.isnan(a).any()
    ok = ~np.isnan(a).any(axis=(1, 2))
    assert ok.sum() >= 50
    np.testing.assert_allclose(a[ok], b[ok], rtol=0, atol=1e-10)
    np.testing.assert_allclose(a[ok].sum(-1), 1.0, rtol=0, atol=1e-12)
    bi, i = np.nonzero(mask[ok])
    np.testing.assert_array_equal(a[ok][bi, i], np.eye(q)[values[ok][bi, i]])
    # targeted answers: agree with the table, and with the full answers bit for bit
    targets = rng.integers(0, n, size=200)
    t = ours.marginals(values, mask, targets)
    np.testing.assert_array_equal(np.isnan(t), np.isnan(b[np.arange(200), targets]))
    np.testing.assert_array_equal(t[ok], a[ok][np.arange(ok.sum()), targets[ok]])
    # unpinned values are never read
    scrambled = np.where(mask, values, rng.integers(0, q, size=values.shape))
    np.testing.assert_array_equal(ours.marginals(scrambled, mask), a)


def test_zero_probability_rows_are_nan():
    p = np.zeros((2, 2, 2))
    p[0, 0, 0] = p[1, 1, 1] = 0.5
    o = LogCountOracle.from_table(p)
    v = np.array([[0, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    m = np.array([[True, True, False], [True, True, True], [True, True, False],
                  [True, False, False]])
    out = o.marginals(v, m)
    assert np.isnan(out[:3]).all()  # free target, fully pinned row, another impossible row
    np.testing.assert_array_equal(out[3], [[1, 0], [1, 0], [1, 0]])
    # targeted: a free target and a pinned target of impossible pinnings are NaN
    t = o.marginals(v, m, np.array([2, 0, 0, 0]))
    assert np.isnan(t[:3]).all()
    np.testing.assert_array_equal(t[3], [1.0, 0.0])


def test_one_log_count_call_per_marginals_call_and_row_cost():
    q, n = 3, 5
    log_count, _, _ = table_log_count(_table(q, n, 1))
    rec = _Recorder(log_count)
    o = LogCountOracle(rec, n, q)
    rng = np.random.default_rng(2)
    values, mask = _random_rows(n, q, 37, rng)
    o.marginals(values, mask)
    free = (~mask).sum(axis=1)
    expected_full = int((q * free + (free == 0)).sum())  # q rows per free coordinate
    assert rec.sizes == [expected_full]
    targets = rng.integers(0, n, size=37)
    o.marginals(values, mask, targets)
    pinned_t = mask[np.arange(37), targets]
    expected_t = int(q * (~pinned_t).sum() + pinned_t.sum())  # q rows, or 1 if pinned
    assert rec.sizes == [expected_full, expected_t]
    assert (o.count_calls, o.count_rows) == (2, expected_full + expected_t)
    o.reset_counts()
    assert (o.count_calls, o.count_rows) == (0, 0)
    o.marginals(values[:0], mask[:0])
    assert o.count_calls == 0  # an empty batch evaluates nothing
    # max_batch splits the rows of one round into several log_count invocations
    chunked = LogCountOracle(_Recorder(log_count), n, q, max_batch=10)
    np.testing.assert_array_equal(chunked.marginals(values, mask), o.marginals(values, mask))
    tail = [expected_full % 10] if expected_full % 10 else []
    assert chunked.log_count.sizes == [10] * (expected_full // 10) + tail
    assert chunked.count_calls == math.ceil(expected_full / 10)


@pytest.mark.parametrize("q,n", [(2, 8), (3, 5)])
def test_parallel_equals_sequential_pathwise(q, n):
    p = _table(q, n, 7)
    o, ref = LogCountOracle.from_table(p), TableOracle(p)
    mismatches = 0
    for seed in range(15):
        o.reset_counts()
        seq = sample_sequential(o, rng=seed)
        # the samplers count rounds as marginals calls; log_count is called once per round
        assert seq.cost.rounds == o.count_calls == n
        assert o.count_rows == q * n  # every sequential query targets a free coordinate
        # same law as the table oracle: the same sample under the same randomness
        np.testing.assert_array_equal(seq.sample, sample_sequential(ref, rng=seed).sample)
        for w in (1, 2, 3, None, n):
            o.reset_counts()
            par = sample_parallel(o, rng=seed, window=w)
            np.testing.assert_array_equal(par.sample, seq.sample, err_msg=f"seed={seed} w={w}")
            assert par.cost.rounds == o.count_calls
            W = default_window(n) if w is None else w
            mismatches += par.info["mismatches"]
            assert par.cost.rounds <= 2 * (math.ceil(n / W) + par.info["mismatches"])
    assert mismatches > 0


def test_law_by_chisquare():
    p = _table(3, 4, 3)
    o = LogCountOracle.from_table(p)
    S = 3000
    counts = np.zeros(81, dtype=np.int64)
    for child in np.random.default_rng(4).spawn(S):
        x = sample_parallel(o, rng=child, window=2).sample
        counts[np.ravel_multi_index(tuple(x), (3,) * 4)] += 1
    stat, pval, df = chisquare_counts(counts, p.ravel())
    assert df >= 20 and pval > ALPHA, f"chi2 = {stat:.1f}, df = {df}, p = {pval:.2e}"


def test_additive_constant_cancels():
    log_count, n, q = table_log_count(_table(2, 6, 5))
    a = LogCountOracle(log_count, n, q)
    b = LogCountOracle(lambda v, m: log_count(v, m) + 1234.5, n, q)
    rng = np.random.default_rng(6)
    values, mask = _random_rows(n, q, 50, rng)
    np.testing.assert_allclose(a.marginals(values, mask), b.marginals(values, mask),
                               rtol=0, atol=1e-10)


def test_bad_input():
    log_count, n, q = table_log_count(_table(2, 4, 0))
    with pytest.raises(TypeError):
        LogCountOracle("not callable", n, q)
    for args in ((0, 2), (4, 1), (2.5, 2)):
        with pytest.raises(ValueError):
            LogCountOracle(log_count, *args)
    with pytest.raises(ValueError):
        LogCountOracle(log_count, n, q, max_batch=0)
    for bad in (np.ones((2, 3)), -np.ones((2, 2)), np.zeros((2, 2)), np.array([np.nan, 1.0])):
        with pytest.raises(ValueError):
            LogCountOracle.from_table(bad)
    o = LogCountOracle(log_count, n, q)
    v = np.zeros((2, n), dtype=np.int64)
    m = np.zeros((2, n), dtype=bool)
    with pytest.raises(ValueError):
        o.marginals(v[:, :3], m[:, :3])
    with pytest.raises(TypeError):
        o.marginals(v, m.astype(int))
    with pytest.raises(TypeError):
        o.marginals(v.astype(float), m)
    with pytest.raises(ValueError):
        o.marginals(v, m, np.array([0, n]))
    m[0, 1], v[0, 1] = True, 2
    with pytest.raises(ValueError):
        o.marginals(v, m)
    m[0, 1] = False
    # a log_count that returns the wrong shape, NaN or +inf is refused
    for fn, err in ((lambda vv, mm: np.zeros(len(vv) + 1), ValueError),
                    (lambda vv, mm: np.full(len(vv), np.nan), NumericalError),
                    (lambda vv, mm: np.full(len(vv), np.inf), NumericalError)):
        with pytest.raises(err):
            LogCountOracle(fn, n, q).marginals(v, m)
