"""Closed-form test denoisers (spec §5): GMM posterior mean, single-Gaussian law, point mass."""

import numpy as np
import pytest
from scipy.special import logsumexp

torch = pytest.importorskip("torch")

from parasample.diffusion import (  # noqa: E402
    DDIMStep, DDPMStep, GaussianMixtureDenoiser, NoiseBank, PointMassDenoiser, Schedule,
    SingleGaussianDenoiser, TimeGrid, ring_gmm, sample_sequential, single_gaussian_law,
)


SCHED = Schedule.linear()


def _random_gmm(K=3, d=3, seed=0, **kw):
    g = np.random.default_rng(seed)
    A = g.normal(size=(K, d, d))
    covs = A @ np.swapaxes(A, 1, 2) * 0.3 + 0.05 * np.eye(d)
    return GaussianMixtureDenoiser(g.uniform(0.2, 1.0, K), g.normal(scale=2, size=(K, d)),
                                   covs, schedule=SCHED, **kw)


def _numpy_posterior_mean(m, x, ab):
    """Independent reference: explicit inverses and slogdet per component."""
    a, b2 = np.sqrt(ab), 1 - ab
    out = np.empty_like(x)
    for n in range(len(x)):
        logp, means = [], []
        for k in range(m.n_components):
            C = ab * m.covs[k] + b2 * np.eye(m.dim)
            r = x[n] - a * m.means[k]
            Ci = np.linalg.inv(C)
            logp.append(np.log(m.weights[k]) - 0.5 * (r @ Ci @ r + np.linalg.slogdet(C)[1]))
            means.append(m.means[k] + a * m.covs[k] @ Ci @ r)
        w = np.exp(np.array(logp) - logsumexp(logp))
        out[n] = w @ np.array(means)
    return out


@pytest.mark.parametrize("t", [0, 50, 300, 700, 999])
def test_posterior_mean_matches_numpy_reference(t):
    m = _random_gmm()
    g = np.random.default_rng(t)
    x = g.normal(scale=2, size=(20, 3))
    ab = SCHED.alpha_bar[t]
    got = m.posterior_mean(torch.tensor(x), torch.full((20,), t)).numpy()
    np.testing.assert_allclose(got, _numpy_posterior_mean(m, x, ab), rtol=1e-9, atol=1e-10)


def test_einsum_path_for_larger_dimension():
    m = _random_gmm(K=2, d=12, seed=3)
    x = np.random.default_rng(1).normal(size=(7, 12))
    got = m.posterior_mean(torch.tensor(x), torch.full((7,), 400)).numpy()
    np.testing.assert_allclose(got, _numpy_posterior_mean(m, x, SCHED.alpha_bar[400]),
                               rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("t", [200, 500, 999])
def test_posterior_mean_matches_quadrature(t):
    """E[x0 | x] by brute-force 2-D quadrature of p(x0)·N(x; a·x0, b²I)."""
    m = GaussianMixtureDenoiser([0.3, 0.7], [[-1.0, 0.5], [1.5, -1.0]],
                                [[[0.5, 0.3], [0.3, 0.4]], [[0.2, -0.1], [-0.1, 0.6]]],
                                schedule=SCHED)
    ab = SCHED.alpha_bar[t]
    a, b2 = np.sqrt(ab), 1 - ab
    h = 0.01
    u = np.arange(-6, 6, h) + h / 2
    X0 = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    logprior = []
    for k in range(2):
        r = X0 - m.means[k]
        Ci = np.linalg.inv(m.covs[k])
        logprior.append(np.log(m.weights[k]) - 0.5 * np.einsum("ni,ij,nj->n", r, Ci, r)
                        - 0.5 * np.linalg.slogdet(m.covs[k])[1])
    logprior = logsumexp(np.stack(logprior), axis=0)
    xs = np.array([[0.3, -0.2], [1.0, 1.0], [-1.2, 0.4]])
    got = m.posterior_mean(torch.tensor(xs), torch.full((3,), t)).numpy()
    for n, x in enumerate(xs):
        logw = logprior - 0.5 * ((x - a * X0) ** 2).sum(1) / b2
        w = np.exp(logw - logw.max())
        np.testing.assert_allclose(got[n], w @ X0 / w.sum(), atol=1e-6)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_any_prediction_type_gives_the_same_denoiser(prediction):
    base = ring_gmm(SCHED)
    other = ring_gmm(SCHED, prediction=prediction)
    x = torch.randn(50, 2, dtype=torch.float64) * 3
    t = torch.randint(0, 1000, (50,))
    x0a, epsa = base.predict(x, t)
    x0b, epsb = other.predict(x, t)
    torch.testing.assert_close(x0b, x0a, rtol=0, atol=1e-10)
    torch.testing.assert_close(epsb, epsa, rtol=0, atol=1e-10)


def test_batch_invariance_bitwise():
    m = ring_gmm(SCHED)
    x = torch.randn(300, 2, dtype=torch.float64) * 3
    t = torch.randint(0, 1000, (300,))
    full = m.posterior_mean(x, t)
    for lo, hi in [(0, 1), (5, 8), (100, 300)]:
        assert torch.equal(m.posterior_mean(x[lo:hi], t[lo:hi]), full[lo:hi])


def test_ring_fixture_and_true_samples():
    m = ring_gmm()
    assert m.n_components == 8 and m.dim == 2 and m.prediction == "x0"
    np.testing.assert_allclose(np.linalg.norm(m.means, axis=1), 4.0, rtol=1e-14)
    np.testing.assert_allclose(m.covs, 0.09 * np.eye(2)[None].repeat(8, 0), rtol=1e-14)
    s = _random_gmm(K=3, d=2, seed=4)
    x = s.sample_data(40000, rng=0)
    mean = s.weights @ s.means
    cov = sum(w * (c + np.outer(mu - mean, mu - mean))
              for w, mu, c in zip(s.weights, s.means, s.covs))
    np.testing.assert_allclose(x.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.1)
    assert np.array_equal(s.sample_data(5, rng=1), s.sample_data(5, rng=1))


def test_gmm_validation():
    with pytest.raises(ValueError, match="PSD"):
        GaussianMixtureDenoiser([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, -1.0]]], schedule=SCHED)
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixtureDenoiser([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]], schedule=SCHED)
    with pytest.raises(ValueError, match="positive"):
        GaussianMixtureDenoiser([1.0, -1.0], [[0.0], [1.0]], [1.0, 1.0], schedule=SCHED)
    with pytest.raises(ValueError, match="means"):
        GaussianMixtureDenoiser([1.0, 1.0], [[0.0], [1.0], [2.0]], [1.0, 1.0], schedule=SCHED)
    with pytest.raises(ValueError, match="covs"):
        GaussianMixtureDenoiser([1.0], [[0.0, 0.0]], [[1.0, 2.0, 3.0]], schedule=SCHED)
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixtureDenoiser([1.0], [[np.nan, 0.0]], [1.0], schedule=SCHED)
    with pytest.raises(TypeError):
        GaussianMixtureDenoiser([1.0], [[0.0]], [1.0], schedule="linear")
    with pytest.raises(ValueError, match="std"):
        SingleGaussianDenoiser([0.0], 0.0, schedule=SCHED)
    m = ring_gmm(SCHED)
    with pytest.raises(ValueError, match="rows"):
        m.predict(torch.zeros(3, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.long))
    diag = GaussianMixtureDenoiser([1.0], [[0.0, 1.0]], [[0.5, 2.0]], schedule=SCHED)
    np.testing.assert_array_equal(diag.covs[0], np.diag([0.5, 2.0]))


def test_single_gaussian_equals_one_component_gmm():
    mu = np.array([0.5, -1.0])
    sg = SingleGaussianDenoiser(mu, 0.4, schedule=SCHED)
    gm = GaussianMixtureDenoiser([1.0], mu[None], [0.16], schedule=SCHED)
    x = torch.randn(30, 2, dtype=torch.float64) * 2
    t = torch.randint(0, 1000, (30,))
    torch.testing.assert_close(sg.posterior_mean(x, t), gm.posterior_mean(x, t),
                               rtol=0, atol=1e-12)


def _z_scores(samples, m, v):
    n = samples.shape[0]
    zm = (samples.mean(0) - m) / np.sqrt(v / n)
    var = samples.var(0, ddof=1)
    zv = (var - v) / (v * np.sqrt(2.0 / (n - 1)))
    return np.abs(np.concatenate([zm, zv])).max()


@pytest.mark.parametrize("make", [
    lambda: DDPMStep.from_schedule(SCHED, 10),
    lambda: DDPMStep.from_schedule(SCHED, 30, "trailing", variance="fixed_large"),
    lambda: DDIMStep.from_schedule(SCHED, 20, eta=0.5, spacing="linspace"),
    lambda: DDPMStep(TimeGrid.spaced(SCHED, 15, "trailing", final_alpha_bar=0.99)),
])
def test_single_gaussian_law_recursion_vs_monte_carlo(make):
    step = make()
    mu, s = np.array([1.5, -0.5, 0.0]), 0.3
    m, v = single_gaussian_law(step, mu, s)
    model = SingleGaussianDenoiser(mu, s, schedule=SCHED)
    out = sample_sequential(model, step, shape=(3,), batch=20000, rng=42).sample.numpy()
    assert _z_scores(out, m, v) < 4.5


def test_law_test_has_power():
    """The recursion includes the discretisation error: with 10 DDPM steps the chain's law
    is measurably not N(μ, s²), and a wrong σ (fixed_large law for a fixed_small chain) is
    rejected too."""
    mu, s = np.array([1.5, -0.5, 0.0]), 0.3
    step = DDPMStep.from_schedule(SCHED, 10)
    model = SingleGaussianDenoiser(mu, s, schedule=SCHED)
    out = sample_sequential(model, step, shape=(3,), batch=20000, rng=42).sample.numpy()
    assert _z_scores(out, mu, s * s) > 10
    wrong = single_gaussian_law(DDPMStep.from_schedule(SCHED, 10, variance="fixed_large"), mu, s)
    assert _z_scores(out, *wrong) > 10


def test_single_gaussian_law_many_steps_approaches_data_law():
    mu, s = np.array([2.0]), 0.5
    m, v = single_gaussian_law(DDPMStep.from_schedule(SCHED, 1000), mu, s)
    assert abs(m[0] - 2.0) < 1e-2 and abs(v - 0.25) < 1e-2


def test_point_mass():
    p = PointMassDenoiser([1.0, -2.0], schedule=SCHED)
    x = torch.randn(4, 2, dtype=torch.float64)
    t = torch.tensor([999, 10, 0, 500])
    x0, _ = p.predict(x, t)
    assert torch.equal(x0, torch.tensor([[1.0, -2.0]] * 4, dtype=torch.float64))
    assert p.prediction == "x0"
    with pytest.raises(ValueError):
        PointMassDenoiser(5.0, schedule=SCHED)


def test_gmm_on_float32_runs():
    m = ring_gmm(SCHED)
    bank = NoiseBank(20, (2,), 8, rng=0)                       # float32
    out = sample_sequential(m, DDPMStep.from_schedule(SCHED, 20), shape=(2,), batch=8,
                            noise=bank)
    assert out.sample.dtype == torch.float32
    assert np.all(np.abs(np.linalg.norm(out.sample.numpy(), axis=1) - 4) < 1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gmm_cuda_matches_cpu():
    m = _random_gmm()
    x = torch.randn(64, 3, dtype=torch.float64)
    t = torch.randint(0, 1000, (64,))
    torch.testing.assert_close(m.posterior_mean(x.cuda(), t.cuda()).cpu(),
                               m.posterior_mean(x, t), rtol=1e-12, atol=1e-12)
