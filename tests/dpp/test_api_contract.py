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


# ----------------------------------------------------------------------------- symmetric only
#: Every public function of parasample.dpp that needs a symmetric DPP (it uses the spectrum
#: or the symmetric Cholesky structure), called on a NonsymmetricDPP.
SYMMETRIC_ONLY = {
    "sample_exact": lambda t, rng=None: D.sample_exact(t, rng=rng),
    "sample_exact_k": lambda t, rng=None: D.sample_exact_k(t, 3, rng=rng),
    "sample_parallel_k": lambda t, rng=None: D.sample_parallel_k(t, 3, rng=rng),
    "kdpp_inclusion_probabilities": lambda t, rng=None: D.kdpp_inclusion_probabilities(t, 3),
    "map_greedy": lambda t, rng=None: D.map_greedy(t, 3),
    "map_greedy_details": lambda t, rng=None: D.map_greedy_details(t, 3),
    "sample_mcmc": lambda t, rng=None: D.sample_mcmc(t, n_steps=5, rng=rng),
    "SparsifiedKDPPSampler": lambda t, rng=None: D.SparsifiedKDPPSampler(t, 3, rng=rng),
}
#: The samplers that do take a NonsymmetricDPP, each run once on one (so the message that
#: names them cannot go stale).
NDPP_FACTORS = D.NonsymmetricDPP.from_factors(
    rng0.normal(size=(12, 2)), rng0.normal(size=(12, 2)), rng0.normal(size=(2, 2)))
TAKES_NONSYMMETRIC = {
    "sample_sequential": lambda: D.sample_sequential(NDPP, rng=0),
    "sample_lowrank": lambda: D.sample_lowrank(NDPP_FACTORS, rng=0),
    "sample_rejection": lambda: D.sample_rejection(NDPP, rng=0).sample,
    "sample_partition": lambda: D.sample_partition(NDPP, np.zeros(12, int), [3], rng=0),
    "sample_parallel_k_approx": lambda: D.sample_parallel_k_approx(NDPP, 3, rng=0).sample,
}


def test_public_symmetric_only_functions_are_all_listed():
    """Every public function taking a DPP is classified, so a new one cannot be forgotten."""
    classified = set(SYMMETRIC_ONLY) | set(TAKES_NONSYMMETRIC)
    others = {"DPP", "Spectrum", "NonsymmetricDPP", "PartitionConstraint",
              "quality_diversity_kernel", "partition_normalizer",
              "partition_inclusion_probabilities"}
    assert set(D.__all__) == classified | others


@pytest.mark.parametrize("name", sorted(TAKES_NONSYMMETRIC))
def test_named_nonsymmetric_samplers_work(name):
    x = TAKES_NONSYMMETRIC[name]()
    assert x.dtype == np.int64 and np.all(np.diff(x) > 0)


@pytest.mark.parametrize("name", sorted(SYMMETRIC_ONLY))
def test_symmetric_only_functions_reject_nonsymmetric_with_a_clear_type_error(name):
    with pytest.raises(TypeError) as err:
        SYMMETRIC_ONLY[name](NDPP)
    msg = str(err.value)
    assert name in msg and "NonsymmetricDPP" in msg
    for alternative in TAKES_NONSYMMETRIC:
        assert alternative in msg
    with pytest.raises(TypeError, match="DPP.from_likelihood"):
        SYMMETRIC_ONLY[name](np.eye(3))  # not a kernel object at all


# ----------------------------------------------------------------------------- counts
#: Every count argument of a public DPP function, as call(value).
COUNT_ARGS = {
    "sample_exact_k.k": lambda v: D.sample_exact_k(DENSE, v, rng=0),
    "kdpp_inclusion_probabilities.k": lambda v: D.kdpp_inclusion_probabilities(DENSE, v),
    "sample_parallel_k.k": lambda v: D.sample_parallel_k(DENSE, v, rng=0),
    "sample_parallel_k.window": lambda v: D.sample_parallel_k(DENSE, 3, window=v, rng=0),
    "sample_parallel_k_approx.k": lambda v: D.sample_parallel_k_approx(NDPP, v, rng=0),
    "sample_parallel_k_approx.window":
        lambda v: D.sample_parallel_k_approx(NDPP, 3, window=v, rng=0),
    "map_greedy.k": lambda v: D.map_greedy(DENSE, v),
    "map_greedy_details.k": lambda v: D.map_greedy_details(DENSE, v),
    "sample_partition.counts": lambda v: D.sample_partition(DENSE, LABELS, [v, 1], rng=0),
    "partition_normalizer.counts": lambda v: D.partition_normalizer(DENSE, LABELS, [1, v]),
    "partition_inclusion_probabilities.counts":
        lambda v: D.partition_inclusion_probabilities(DENSE, LABELS, [v, 1]),
    "PartitionConstraint.k": lambda v: D.PartitionConstraint(DENSE, LABELS, (v, 1)).k,
    "sample_parallel_k_approx.partition":
        lambda v: D.sample_parallel_k_approx(D.PartitionConstraint(DENSE, LABELS, (v, 1)), 3,
                                             rng=0),
    "sample_mcmc.k": lambda v: D.sample_mcmc(DENSE, k=v, n_steps=5, rng=0),
    "sample_mcmc.n_steps": lambda v: D.sample_mcmc(DENSE, n_steps=v, rng=0),
    "SparsifiedKDPPSampler.k": lambda v: D.SparsifiedKDPPSampler(DENSE, v, rng=0),
}


@pytest.mark.parametrize("bad", [2.5, np.float64(1.5), True, np.True_, -1, float("nan"), "2"])
@pytest.mark.parametrize("name", sorted(COUNT_ARGS))
def test_non_integer_counts_are_rejected_not_truncated(name, bad):
    with pytest.raises(ValueError, match="integer"):
        COUNT_ARGS[name](bad)


@pytest.mark.parametrize("name", sorted(COUNT_ARGS))
def test_integral_floats_and_numpy_integers_are_accepted(name):
    COUNT_ARGS[name](np.int64(2))
    COUNT_ARGS[name](2.0)


# ----------------------------------------------------------------------------- rng untouched
#: Calls that fail validation, each given the caller's Generator.
INVALID_CALLS = {
    "sample_exact(NDPP)": lambda g: D.sample_exact(NDPP, rng=g),
    "sample_exact(array)": lambda g: D.sample_exact(np.eye(3), rng=g),
    "sample_exact_k(NDPP)": lambda g: D.sample_exact_k(NDPP, 2, rng=g),
    "sample_exact_k(k=2.5)": lambda g: D.sample_exact_k(DENSE, 2.5, rng=g),
    "sample_exact_k(k>rank)": lambda g: D.sample_exact_k(FEAT, 6, rng=g),
    "sample_parallel_k(NDPP)": lambda g: D.sample_parallel_k(NDPP, 2, rng=g),
    "sample_parallel_k(k>rank)": lambda g: D.sample_parallel_k(FEAT, 6, rng=g),
    "sample_parallel_k(window)": lambda g: D.sample_parallel_k(DENSE, 2, window=0, rng=g),
    "sample_parallel_k(delta)": lambda g: D.sample_parallel_k(DENSE, 2, delta=2.0, rng=g),
    "sample_sequential(array)": lambda g: D.sample_sequential(np.eye(3), rng=g),
    "sample_lowrank(dense NDPP)": lambda g: D.sample_lowrank(NDPP, rng=g),
    "sample_rejection(DPP)": lambda g: D.sample_rejection(DENSE, rng=g),
    "sample_rejection(max_trials)":
        lambda g: D.sample_rejection(NDPP, rng=g, max_expected_trials=0.5),
    "sample_partition(counts)": lambda g: D.sample_partition(DENSE, LABELS, [7, 0], rng=g),
    "sample_partition(parts)": lambda g: D.sample_partition(DENSE, [[0, 1], [1]], [1, 1], rng=g),
    "sample_parallel_k_approx(k=2.5)": lambda g: D.sample_parallel_k_approx(NDPP, 2.5, rng=g),
    "sample_parallel_k_approx(k>rank)": lambda g: D.sample_parallel_k_approx(FEAT, 6, rng=g),
    "sample_parallel_k_approx(C)": lambda g: D.sample_parallel_k_approx(NDPP, 2, C=0.5, rng=g),
    "sample_parallel_k_approx(Σcounts)":
        lambda g: D.sample_parallel_k_approx(D.PartitionConstraint(DENSE, LABELS, (2, 1)), 2,
                                             rng=g),
    "sample_mcmc(k)": lambda g: D.sample_mcmc(DENSE, k=2.5, n_steps=5, rng=g),
    "sample_mcmc(init)": lambda g: D.sample_mcmc(DENSE, k=2, init=[0], n_steps=5, rng=g),
    "SparsifiedKDPPSampler(k)": lambda g: D.SparsifiedKDPPSampler(DENSE, 99, rng=g),
}


@pytest.mark.parametrize("name", sorted(INVALID_CALLS))
def test_failed_validation_leaves_the_generator_untouched(name):
    gen = np.random.default_rng(123)
    before = gen.bit_generator.state
    with pytest.raises((ValueError, TypeError)):
        INVALID_CALLS[name](gen)
    assert gen.bit_generator.state == before
