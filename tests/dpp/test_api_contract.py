"""Cross-cutting contract of parasample.dpp: every sampler returns a sorted int64 array of
distinct items, same seed ⇒ same sample, and accepts every SPEC 7 rng form."""

import numpy as np
import pytest

import parasample.dpp as D

rng0 = np.random.default_rng(7)
B = rng0.normal(size=(30, 5))
A = rng0.normal(size=(12, 12))
C = rng0.normal(size=(12, 12))
FEAT = D.DPP.from_features(B)
DENSE = D.DPP.from_likelihood(A @ A.T / 12 + 0.1 * np.eye(12))
NDPP = D.NonsymmetricDPP.from_likelihood(A @ A.T / 12 + (C - C.T) / 8)
LABELS = np.array([0] * 6 + [1] * 6)

SAMPLERS = {
    "exact": lambda rng: D.sample_exact(FEAT, rng=rng),
    "exact_k": lambda rng: D.sample_exact_k(DENSE, 4, rng=rng),
    "sequential": lambda rng: D.sample_sequential(DENSE, rng=rng),
    "sequential_ndpp": lambda rng: D.sample_sequential(NDPP, rng=rng),
    "lowrank": lambda rng: D.sample_lowrank(FEAT, rng=rng),
    "rejection": lambda rng: D.sample_rejection(NDPP, rng=rng).sample,
    "mcmc": lambda rng: D.sample_mcmc(DENSE, n_steps=50, rng=rng),
    "mcmc_k": lambda rng: D.sample_mcmc(FEAT, k=3, n_steps=50, rng=rng),
    "partition": lambda rng: D.sample_partition(DENSE, LABELS, [2, 1], rng=rng),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sorted_int64_distinct_and_reproducible(name):
    draw = SAMPLERS[name]
    for seed in range(5):
        x = draw(seed)
        assert isinstance(x, np.ndarray) and x.dtype == np.int64 and x.ndim == 1
        assert np.all(np.diff(x) > 0)
        assert np.array_equal(x, draw(seed))
        assert np.array_equal(x, draw(np.random.SeedSequence(seed)))
        assert np.array_equal(x, draw(np.random.default_rng(seed)))
    assert len({tuple(draw(s)) for s in range(20)}) > 1  # not a constant


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_rejects_legacy_random_state(name):
    with pytest.raises(TypeError, match="rng must be"):
        SAMPLERS[name](np.random.RandomState(0))


def test_map_greedy_returns_sorted_int64():
    x = D.map_greedy(FEAT, 4)
    assert x.dtype == np.int64 and np.all(np.diff(x) > 0) and x.size == 4


@pytest.mark.parametrize("call", [
    lambda: D.sample_exact_k(FEAT, 6),
    lambda: D.sample_mcmc(FEAT, k=6, n_steps=10),
    lambda: D.map_greedy(FEAT, 6),
])
def test_k_larger_than_rank_raises(call):
    with pytest.raises(ValueError, match="rank"):
        call()


@pytest.mark.parametrize("counts, match", [([7, 0], "count"), ([1], "count"), ([-1, 2], "non-negative")])
def test_impossible_partition_counts_raise(counts, match):
    with pytest.raises(ValueError, match=match):
        D.sample_partition(DENSE, LABELS, counts, rng=0)
