"""Two-sample statistics and the Fréchet distance of ``parasample.diffusion.metrics``
(spec diffusion.md §9) against known cases; numpy only (torch input is checked if present)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy import linalg, stats

from parasample.diffusion.metrics import (
    energy_distance, frechet_distance, gaussian_fit, mmd_rbf, permutation_test,
)

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _gauss(rng, n, d=2, shift=0.0, scale=1.0):
    return shift + scale * rng.standard_normal((n, d))


# -- energy distance ---------------------------------------------------------------------------
def test_energy_distance_zero_for_identical_samples():
    x = _gauss(np.random.default_rng(0), 50, 3)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    assert energy_distance(x, x[::-1]) == pytest.approx(0.0, abs=1e-12)  # multiset equality


def test_energy_distance_matches_scipy_in_one_dimension():
    # scipy's 1-D energy_distance is sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) over empirical laws
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(40), rng.standard_normal(70) + 0.3
    assert energy_distance(x, y) == pytest.approx(stats.energy_distance(x, y) ** 2, rel=1e-10)


def test_energy_distance_positive_and_significant_for_shifted_gaussians():
    rng = np.random.default_rng(2)
    x, y = _gauss(rng, 200), _gauss(rng, 200, shift=np.array([0.5, 0.0]))
    stat, p = permutation_test(x, y, energy_distance, n_permutations=200, rng=3)
    assert stat > 0.05
    assert p == pytest.approx(1 / 201)  # no permutation reaches the observed statistic


def test_energy_distance_detects_a_variance_change():
    rng = np.random.default_rng(4)
    x, y = _gauss(rng, 300), _gauss(rng, 300, scale=1.5)
    _, p = permutation_test(x, y, energy_distance, n_permutations=200, rng=5)
    assert p < 0.01


# -- permutation test --------------------------------------------------------------------------
def test_permutation_test_does_not_reject_same_law():
    rng = np.random.default_rng(6)
    x, y = _gauss(rng, 200), _gauss(rng, 150)
    for stat_fn in (energy_distance, mmd_rbf):
        _, p = permutation_test(x, y, stat_fn, n_permutations=200, rng=7)
        assert p > 0.05


def test_permutation_pvalues_are_uniform_under_the_null():
    # 200 replicate experiments with same-law samples: the p-values (on the grid k/100) must
    # look uniform, and P(p <= alpha) must not exceed alpha by much (validity).
    rng = np.random.default_rng(8)
    ps = np.array([permutation_test(_gauss(rng, 20), _gauss(rng, 25), energy_distance,
                                    n_permutations=99, rng=rng)[1] for _ in range(200)])
    assert ps.min() >= 0.01 and ps.max() <= 1.0
    assert stats.kstest(ps, "uniform").pvalue > 1e-3
    for alpha in (0.05, 0.1, 0.25, 0.5):
        # binomial(200, alpha) upper 99.9% bound
        assert np.mean(ps <= alpha) <= alpha + 3.1 * np.sqrt(alpha * (1 - alpha) / 200)
    # ... while a shift rejects almost always (power), with the same sizes
    ps1 = np.array([permutation_test(_gauss(rng, 20), _gauss(rng, 25, shift=1.5),
                                     energy_distance, n_permutations=99, rng=rng)[1]
                    for _ in range(50)])
    assert np.mean(ps1 <= 0.05) > 0.9


def test_permutation_fast_path_equals_generic_path():
    # energy_distance / mmd_rbf reuse one pooled matrix; a wrapped callable takes the generic
    # path. Same rng => same permutations => the same p-value.
    rng = np.random.default_rng(9)
    x, y = _gauss(rng, 30), _gauss(rng, 40, shift=0.4)
    for stat_fn in (energy_distance, mmd_rbf):
        fast = permutation_test(x, y, stat_fn, n_permutations=60, rng=10)
        slow = permutation_test(x, y, lambda a, b: stat_fn(a, b), n_permutations=60, rng=10)
        assert fast[0] == pytest.approx(slow[0], rel=1e-12)
        assert fast[1] == slow[1]


def test_permutation_test_reproducible_and_validates():
    rng = np.random.default_rng(11)
    x, y = _gauss(rng, 30), _gauss(rng, 30)
    assert permutation_test(x, y, energy_distance, rng=12) == \
        permutation_test(x, y, energy_distance, rng=12)
    with pytest.raises(ValueError):
        permutation_test(x, y, energy_distance, n_permutations=0)
    with pytest.raises(ValueError):
        permutation_test(x, _gauss(rng, 30, d=3), energy_distance)


# -- MMD ---------------------------------------------------------------------------------------
def test_mmd_symmetric_nonnegative_zero_for_identical():
    rng = np.random.default_rng(13)
    x, y = _gauss(rng, 60), _gauss(rng, 80, shift=0.3)
    assert mmd_rbf(x, y) == pytest.approx(mmd_rbf(y, x), rel=1e-12)
    assert mmd_rbf(x, y, bandwidth=0.7) == pytest.approx(mmd_rbf(y, x, bandwidth=0.7), rel=1e-12)
    assert mmd_rbf(x, y) > 0
    assert mmd_rbf(x, x) == pytest.approx(0.0, abs=1e-12)


def test_mmd_closed_form_two_points():
    # x = {0}, y = {d}: MMD² = 2 − 2 exp(−d²/(2h²))
    x, y = np.zeros((1, 1)), np.full((1, 1), 2.0)
    assert mmd_rbf(x, y, bandwidth=1.0) == pytest.approx(2 - 2 * np.exp(-2.0), rel=1e-12)
    # median heuristic on the pool {0, 2}: h = 2
    assert mmd_rbf(x, y) == pytest.approx(2 - 2 * np.exp(-0.5), rel=1e-12)


def test_mmd_rejects_shift_not_same_law():
    rng = np.random.default_rng(14)
    x = _gauss(rng, 200)
    _, p_shift = permutation_test(x, _gauss(rng, 200, shift=0.5), mmd_rbf, rng=15)
    _, p_null = permutation_test(x, _gauss(rng, 200), mmd_rbf, rng=15)
    assert p_shift < 0.01 < p_null


def test_mmd_bad_bandwidth():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError):
        mmd_rbf(x, x + 1, bandwidth=0.0)


# -- Fréchet distance --------------------------------------------------------------------------
def _exact_moments(rng, mu, cov, n):
    """n rows whose sample mean is exactly mu and sample covariance (ddof 1) exactly cov."""
    d = len(mu)
    z = rng.standard_normal((n, d))
    z -= z.mean(0)
    L0 = np.linalg.cholesky(np.cov(z, rowvar=False))
    z = np.linalg.solve(L0, z.T).T          # now cov(z) = I exactly
    return mu + z @ np.linalg.cholesky(cov).T


def _random_spd(rng, d, floor=0.1):
    A = rng.standard_normal((d, d))
    return A @ A.T / d + floor * np.eye(d)


def test_frechet_equals_closed_form_for_gaussians():
    rng = np.random.default_rng(16)
    d = 6
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    S1, S2 = _random_spd(rng, d), _random_spd(rng, d)
    a, b = _exact_moments(rng, mu1, S1, 500), _exact_moments(rng, mu2, S2, 300)
    m, S = gaussian_fit(a)
    np.testing.assert_allclose(m, mu1, atol=1e-10)
    np.testing.assert_allclose(S, S1, atol=1e-10)
    ref = (np.sum((mu1 - mu2) ** 2) + np.trace(S1) + np.trace(S2)
           - 2 * np.trace(linalg.sqrtm(S1 @ S2)).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(b, a) == pytest.approx(ref, rel=1e-8)


def test_frechet_diagonal_and_translation():
    rng = np.random.default_rng(17)
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    a = _exact_moments(rng, np.zeros(3), np.diag(v1), 200)
    b = _exact_moments(rng, np.ones(3), np.diag(v2), 200)
    ref = 3.0 + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-9)
    c = np.array([0.5, -1.0, 2.0])
    assert frechet_distance(a, a + c) == pytest.approx(np.sum(c ** 2), rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_handles_singular_covariances():
    # fewer samples than dimensions: rank-deficient covariances, still finite and >= 0
    rng = np.random.default_rng(18)
    a, b = rng.standard_normal((10, 64)), rng.standard_normal((12, 64))
    f = frechet_distance(a, b)
    assert np.isfinite(f) and f >= 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_input_validation():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError):
        energy_distance(x, np.zeros((4, 3)))
    with pytest.raises(ValueError):
        energy_distance(np.array([[np.nan, 0.0]]), x)
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((1, 2)), x)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_accepts_torch_tensors():
    import torch

    rng = np.random.default_rng(19)
    x, y = _gauss(rng, 20, 4), _gauss(rng, 30, 4, shift=0.2)
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y).reshape(30, 2, 2)
    assert energy_distance(xt, yt) == pytest.approx(energy_distance(x, y), rel=1e-12)
    assert mmd_rbf(xt, yt) == pytest.approx(mmd_rbf(x, y), rel=1e-12)
    assert frechet_distance(xt, yt) == pytest.approx(frechet_distance(x, y), rel=1e-10)
    xf = torch.tensor(x, dtype=torch.float16)
    assert np.isfinite(energy_distance(xf, y))
