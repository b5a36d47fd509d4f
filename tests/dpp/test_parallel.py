"""Parallel exact k-DPP sampling by batched rejection (spec dpp.md §7).

Evidence: exact k-DPP laws by enumeration (chi-square on counts) for the default window and
ℓ = 2, 3; per-candidate acceptance frequency = 1/M_ℓ (binomial test); ℓ = 1 equals the
sequential chain pathwise on shared uniforms; mean rounds ≤ 3√k + 3; cost accounting by
hand — and a power check: the same chi-square rejects the "largest ρ" selection rule.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from parasample.dpp import parallel
from parasample.dpp.kernel import DPP
from parasample.dpp.parallel import (
    _batched_chain, _draw_many, _log_M, _log_rho, _sequential_chain, sample_parallel_k,
)
from parasample.dpp.spectral import _project_cholesky_numpy, sample_exact_k
from support.dpp_laws import kdpp_law, low_rank_psd, random_psd
from support.stats import law_pvalue

ALPHA = 1e-4
M_SAMPLES = 5000


def _kernel(name: str) -> np.ndarray:
    if name == "dense6":
        return random_psd(6, np.random.default_rng(11), scale=2.0)
    if name == "dense8":
        return random_psd(8, np.random.default_rng(12), scale=1.5)
    if name == "lowrank7":
        return low_rank_psd(7, 4, np.random.default_rng(13))
    raise KeyError(name)


def _samples(L: np.ndarray, k: int, window, seed: int, M: int = M_SAMPLES):
    dpp = DPP.from_likelihood(L)
    gen = np.random.default_rng(seed)
    return [tuple(sample_parallel_k(dpp, k, rng=gen, window=window).sample.tolist())
            for _ in range(M)]


def _orthonormal(n: int, k: int, seed: int) -> np.ndarray:
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, k)))
    return Q


# ----------------------------------------------------------------------------- exact law
@pytest.mark.parametrize("name,k,window", [
    ("dense6", 2, None), ("dense6", 3, 2), ("dense6", 4, 3),
    ("dense8", 4, None), ("dense8", 3, 3), ("dense8", 4, 2),
    ("lowrank7", 2, 2), ("lowrank7", 3, None), ("lowrank7", 4, 3),
])
def test_exact_kdpp_law(name, k, window):
    L = _kernel(name)
    samples = _samples(L, k, window, seed=100 + 10 * k + (window or 0))
    assert law_pvalue(samples, kdpp_law(L, k)) > ALPHA


def test_power_largest_rho_rule_is_rejected(monkeypatch):
    """Taking the candidate with the largest ρ (whenever one is accepted) instead of the
    FIRST accepted one biases the law towards diverse sets; the chi-square must see it."""

    def best(accepted, log_rho):
        return int(np.argmax(log_rho)) if accepted.any() else -1

    monkeypatch.setattr(parallel, "_choose", best)
    L = _kernel("dense6")
    samples = _samples(L, 4, 2, seed=7)
    assert law_pvalue(samples, kdpp_law(L, 4)) < ALPHA


# ----------------------------------------------------------------------------- acceptance
@pytest.mark.parametrize("pinned", [0, 5])
def test_acceptance_frequency_is_one_over_M(pinned):
    """Per proposal, P(accept) = E_q[ρ/M_ℓ] = Σ_T T/M_ℓ = 1/M_ℓ exactly (fixed state, ℓ = 4)."""
    n, k, ell, N = 60, 21, 4, 20000
    W = _orthonormal(n, k, seed=3)
    if pinned:
        parallel._condition(W, np.arange(pinned))
    r = k - pinned
    p = np.einsum("ij,ij->i", W, W)
    p[:pinned] = 0.0
    assert p.sum() == pytest.approx(r, abs=1e-9)
    gen = np.random.default_rng(4 + pinned)
    tuples = _draw_many(p, gen.random(N * ell)).reshape(N, ell)
    log_rho = _log_rho(W, p, tuples, r)
    log_M = _log_M(r, ell)
    assert np.all(log_rho <= log_M + 1e-9)  # ρ ≤ M_ℓ (Hadamard)
    hits = int(np.sum(np.log(gen.random(N)) < log_rho - log_M))
    assert stats.binomtest(hits, N, math.exp(-log_M)).pvalue > ALPHA


# ----------------------------------------------------------------------------- ℓ = 1 path
def test_window_one_is_the_sequential_chain_on_shared_uniforms():
    n, k = 40, 12
    VJ = _orthonormal(n, k, seed=5)
    u = np.random.default_rng(6).random(k)
    pos = [0]

    def stream(size):
        out = u[pos[0]:pos[0] + size]
        pos[0] += size
        return out

    order, info = _batched_chain(VJ, stream, window=1)
    ref = _sequential_chain(VJ, u)
    assert order == ref.tolist()
    assert pos[0] == k  # exactly one uniform per step, no acceptance uniforms
    assert info["window_per_round"] == [1] * k and info["accepted_per_round"] == [1] * k
    # and it is the spec §2 chain rule (independent pivoted-Cholesky reference)
    assert ref.tolist() == _project_cholesky_numpy(VJ, u).tolist()


def test_window_one_matches_sample_exact_k_with_same_seed():
    """Phase 1 consumes the same uniforms and ℓ = 1 draws one uniform per step, so the
    generator streams line up with :func:`sample_exact_k`."""
    dpp = DPP.from_features(np.random.default_rng(8).normal(size=(50, 20)))
    for seed in range(5):
        res = sample_parallel_k(dpp, 9, rng=seed, window=1)
        assert res.sample.tolist() == sample_exact_k(dpp, 9, rng=seed).tolist()
        assert res.cost.rounds == 1 + 9


# ----------------------------------------------------------------------------- rounds, cost
def test_mean_rounds_sqrt_k():
    k = 64
    dpp = DPP.from_features(np.random.default_rng(9).normal(size=(300, 100)))
    gen = np.random.default_rng(10)
    rounds = []
    for _ in range(30):
        res = sample_parallel_k(dpp, k, rng=gen)
        assert res.sample.size == k and np.unique(res.sample).size == k
        rounds.append(res.cost.rounds)
    assert np.mean(rounds) <= 3 * math.sqrt(k) + 3


def test_cost_accounting_by_hand():
    dpp = DPP.from_likelihood(_kernel("dense6"))
    # k = 1: one batched call for the marginals at A = ∅ (1 round, 1 evaluation); then
    # r = 1 so ℓ = 1, M_1 = 1, R = 1 and the single candidate is accepted with probability
    # ρ/M = 1: one more round and one candidate. Total: 2 rounds, 2 evaluations.
    res = sample_parallel_k(dpp, 1, rng=0)
    assert (res.cost.rounds, res.cost.evaluations) == (2, 2)
    assert res.info["window_per_round"] == [1] and res.info["candidates"] == 1
    assert res.info["depth_speedup"] == pytest.approx(0.5)
    # window = 1, k = 5: 1 + 5 rounds, 1 + 5 evaluations (the sequential chain).
    res = sample_parallel_k(dpp, 5, rng=0, window=1)
    assert (res.cost.rounds, res.cost.evaluations) == (6, 6)
    # k = 0: nothing to do.
    res = sample_parallel_k(dpp, 0, rng=0)
    assert res.sample.size == 0 and (res.cost.rounds, res.cost.evaluations) == (0, 0)
    # general identities: every round is one batched call; k = 4 with ℓ = 2 at r = 4
    # (M = 4/3, R = ⌈log 1000 / log 4⌉ = 5 candidates), then ℓ = 1 at r = 2 and r = 1.
    gen = np.random.default_rng(1)
    for _ in range(50):
        res = sample_parallel_k(dpp, 4, rng=gen)
        info = res.info
        assert res.cost.rounds == 1 + len(info["window_per_round"])
        assert res.cost.evaluations == 1 + info["candidates"]
        assert sum(info["accepted_per_round"]) == 4
        assert info["window_per_round"][-2:] == [1, 1]
        assert info["candidates"] == 5 * info["window_per_round"].count(2) + 2


def test_validation():
    dpp = DPP.from_likelihood(low_rank_psd(6, 3, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="k exceeds the rank of L"):
        sample_parallel_k(dpp, 4)
    with pytest.raises(ValueError):
        sample_parallel_k(dpp, 2, window=0)
    with pytest.raises(ValueError):
        sample_parallel_k(dpp, 2, delta=1.5)
    res = sample_parallel_k(dpp, 3, rng=0, window=50)  # window capped at r
    assert res.sample.size == 3 and res.sample.dtype == np.int64
