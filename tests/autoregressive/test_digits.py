"""Tests for the shipped neural AO-AR digits oracle (spec counting.md §3 item 7): oracle
contract, batch invariance, pathwise equality parallel == sequential, rounds accounting,
shipped metadata, and the optional torch backend (numpy backend needs no torch)."""

from __future__ import annotations

import importlib.util
import sys
from importlib import resources

import numpy as np
import pytest

from parasample.autoregressive import default_window, sample_parallel, sample_sequential
from parasample.autoregressive.digits import DigitsOracle, load_digits_model
from parasample.core.errors import MissingExtraError

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def model():
    return load_digits_model()


def _random_rows(B, rng, n=64):
    values = rng.integers(0, 2, size=(B, n))
    # pinned fraction spread over 0..1 so that empty and nearly full pinnings both occur
    frac = rng.random((B, 1))
    mask = rng.random((B, n)) < frac
    mask[0] = False
    return values, mask


def test_loads_with_metadata(model):
    assert isinstance(model, DigitsOracle)
    assert (model.n, model.q) == (64, 2)
    meta = model.meta
    for key in ("seed", "steps", "test_nll_bits", "baseline_nll_bits", "sha256"):
        assert key in meta
    assert meta["seed"] == 0 and meta["steps"] > 0
    assert len(meta["sha256"]) == 64
    ref = resources.files("parasample.autoregressive").joinpath("data", "digits_aoar.npz")
    assert len(ref.read_bytes()) < 1_000_000


def test_shipped_nll_beats_product_baseline(model):
    meta = model.meta
    assert meta["test_orders"] >= 16
    assert np.isfinite(meta["test_nll_bits"]) and np.isfinite(meta["baseline_nll_bits"])
    assert meta["test_nll_bits"] < meta["baseline_nll_bits"] - 2.0


def test_oracle_contract(model):
    rng = np.random.default_rng(1)
    values, mask = _random_rows(40, rng)
    out = model.marginals(values, mask)
    assert out.shape == (40, 64, 2) and out.dtype == np.float64
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=0, atol=1e-12)
    b, i = np.nonzero(mask)
    assert np.array_equal(out[b, i, values[b, i]], np.ones(len(b)))
    assert np.array_equal(out[b, i, 1 - values[b, i]], np.zeros(len(b)))
    # unpinned values are never read
    scrambled = np.where(mask, values, 1 - values)
    assert np.array_equal(model.marginals(scrambled, mask), out)
    # targeted answers agree bit for bit with the full rows
    targets = rng.integers(0, 64, size=40)
    tout = model.marginals(values, mask, targets)
    assert np.array_equal(tout, out[np.arange(40), targets])
    # the network actually conditions on its pins
    assert not np.allclose(out[0], out[1])


def test_input_validation(model):
    v = np.zeros((2, 64), dtype=np.int64)
    m = np.zeros((2, 64), dtype=bool)
    with pytest.raises(ValueError):
        model.marginals(v[:, :10], m[:, :10])
    with pytest.raises(TypeError):
        model.marginals(v, m.astype(int))
    m[0, 3] = True
    v[0, 3] = 2
    with pytest.raises(ValueError):
        model.marginals(v, m)


def test_batch_invariance(model):
    rng = np.random.default_rng(2)
    values, mask = _random_rows(33, rng)
    full = model.marginals(values, mask)
    for b in range(33):
        assert np.array_equal(model.marginals(values[b:b + 1], mask[b:b + 1])[0], full[b])
    part = model.marginals(values[5:17], mask[5:17])
    assert np.array_equal(part, full[5:17])


def test_batched_path_close(model):
    fast = load_digits_model(deterministic=False)
    rng = np.random.default_rng(3)
    values, mask = _random_rows(25, rng)
    np.testing.assert_allclose(fast.marginals(values, mask), model.marginals(values, mask),
                               rtol=0, atol=1e-12)
    targets = rng.integers(0, 64, size=25)
    np.testing.assert_allclose(fast.marginals(values, mask, targets),
                               model.marginals(values, mask, targets), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_parallel_equals_sequential_pathwise(model, seed):
    seq = sample_sequential(model, rng=np.random.default_rng(seed))
    par = sample_parallel(model, rng=np.random.default_rng(seed))
    assert np.array_equal(seq.sample, par.sample)
    assert seq.sample.shape == (64,) and set(np.unique(seq.sample)) <= {0, 1}
    assert seq.cost.rounds == 64
    assert par.info["window"] == default_window(64)
    # about 2n/w + 2·mismatches rounds; far below the 64 sequential rounds
    assert par.cost.rounds <= 2 * par.info["iterations"]
    assert par.cost.rounds < 48


def test_parallel_rounds_on_average(model):
    rounds = [sample_parallel(model, rng=np.random.default_rng(100 + s)).cost.rounds
              for s in range(8)]
    assert np.mean(rounds) < 40


def test_torch_backend_missing_is_clear(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(MissingExtraError, match="parasample\\[torch\\]"):
        load_digits_model(backend="torch")


def test_torch_backend(model):
    if not HAS_TORCH:
        with pytest.raises(MissingExtraError, match="parasample\\[torch\\]"):
            load_digits_model(backend="torch", device="cpu")
        return
    tm = load_digits_model(backend="torch", device="cpu")
    rng = np.random.default_rng(4)
    values, mask = _random_rows(20, rng)
    np.testing.assert_allclose(tm.marginals(values, mask), model.marginals(values, mask),
                               rtol=0, atol=1e-10)
    seq = sample_sequential(tm, rng=np.random.default_rng(0))
    par = sample_parallel(tm, rng=np.random.default_rng(0))
    assert np.array_equal(seq.sample, par.sample)


def test_bad_backend():
    with pytest.raises(ValueError):
        load_digits_model(backend="jax")
    with pytest.raises(ValueError):
        load_digits_model(device="cuda")
