"""Sequential DDPM/DDIM and the shared NoiseBank (spec §2)."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from parasample.core import NumericalError  # noqa: E402
from parasample.diffusion import (  # noqa: E402
    DDIMStep, DDPMStep, Denoiser, NoiseBank, PointMassDenoiser, Schedule,
    SingleGaussianDenoiser, ring_gmm, sample_sequential,
)


SCHED = Schedule.linear()


def test_cost_and_reproducibility():
    m = ring_gmm(SCHED)
    step = DDPMStep.from_schedule(SCHED, 50)
    r1 = sample_sequential(m, step, shape=(2,), batch=6, rng=3)
    r2 = sample_sequential(m, step, shape=2, batch=6, rng=np.random.default_rng(3))
    r3 = sample_sequential(m, step, shape=(2,), batch=6, rng=4)
    assert r1.sample.shape == (6, 2) and r1.sample.dtype == torch.float64
    assert (r1.cost.rounds, r1.cost.evaluations) == (50, 300)
    assert r1.info["nfe"] == 50 and r1.info["n_steps"] == 50 and r1.info["batch"] == 6
    assert torch.equal(r1.sample, r2.sample)
    assert not torch.equal(r1.sample, r3.sample)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_matches_independent_numpy_ddpm(variance):
    """Independent float64 re-implementation of ancestral DDPM for N(μ, s²I)."""
    mu, s = np.array([1.0, -2.0, 0.5]), 0.7
    m = SingleGaussianDenoiser(mu, s, schedule=SCHED)
    step = DDPMStep.from_schedule(SCHED, 25, "trailing", variance=variance)
    bank = NoiseBank(25, (3,), 4, rng=11, dtype=torch.float64)
    out = sample_sequential(m, step, shape=(3,), batch=4, noise=bank).sample.numpy()
    ab_all = SCHED.alpha_bar
    t = step.timesteps
    x = bank.x_T.numpy().copy()
    for i in range(25):
        ab = ab_all[t[i]]
        abp = ab_all[t[i + 1]] if i < 24 else 1.0
        a, b2 = np.sqrt(ab), 1 - ab
        x0 = mu + a * s * s / (ab * s * s + b2) * (x - a * mu)
        bt = 1 - ab / abp
        mean = np.sqrt(abp) * bt / b2 * x0 + np.sqrt(ab / abp) * (1 - abp) / b2 * x
        var = ((1 - abp) / b2 * bt if variance == "fixed_small" else bt) if i < 24 else 0.0
        x = mean + np.sqrt(var) * bank.z(i).numpy()
    np.testing.assert_allclose(out, x, rtol=0, atol=1e-12)


def test_point_mass_ends_exactly_at_the_point():
    p = np.array([[0.25, -1.5], [3.0, 0.125]])
    m = PointMassDenoiser(p, schedule=SCHED)
    for step in (DDPMStep.from_schedule(SCHED, 20), DDIMStep.from_schedule(SCHED, 20, eta=0.3)):
        out = sample_sequential(m, step, shape=(2, 2), batch=3, rng=0).sample
        assert torch.equal(out, torch.tensor(p).expand(3, 2, 2))


def test_ddim_ode_ignores_step_noise():
    m = ring_gmm(SCHED)
    step = DDIMStep.from_schedule(SCHED, 20, eta=0.0)
    bank = NoiseBank(20, (2,), 5, rng=1, dtype=torch.float64)
    other = NoiseBank.from_tensors(bank.x_T, torch.randn(20, 5, 2, dtype=torch.float64))
    a = sample_sequential(m, step, shape=(2,), batch=5, noise=bank).sample
    b = sample_sequential(m, step, shape=(2,), batch=5, noise=other).sample
    assert torch.equal(a, b)
    stoch = DDIMStep.from_schedule(SCHED, 20, eta=0.5)
    c = sample_sequential(m, stoch, shape=(2,), batch=5, noise=bank).sample
    d = sample_sequential(m, stoch, shape=(2,), batch=5, noise=other).sample
    assert not torch.equal(c, d)


def test_conditional_model_gets_sample_index():
    cond = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.0, 7.0]], dtype=torch.float64)
    seen = []

    def fn(x, t, sample_index):
        seen.append(sample_index.clone())
        return cond[sample_index]

    m = Denoiser(fn, SCHED, prediction="x0", conditional=True)
    out = sample_sequential(m, DDPMStep.from_schedule(SCHED, 10), shape=(2,), batch=3, rng=0)
    assert torch.equal(out.sample, cond)
    assert all(torch.equal(s, torch.arange(3)) for s in seen)


def test_dtype_override_and_bank_dtype():
    m = ring_gmm(SCHED)
    step = DDPMStep.from_schedule(SCHED, 10)
    r = sample_sequential(m, step, shape=(2,), batch=3, rng=0, dtype=torch.float32)
    assert r.sample.dtype == torch.float32
    bank64 = NoiseBank(10, (2,), 3, rng=0, dtype=torch.float64)
    with pytest.raises(ValueError, match="dtype"):
        sample_sequential(m, step, shape=(2,), batch=3, noise=bank64, dtype=torch.float32)


def test_sampler_input_errors():
    m = ring_gmm(SCHED)
    step = DDPMStep.from_schedule(SCHED, 10)
    bank = NoiseBank(10, (2,), 3, rng=0, dtype=torch.float64)
    with pytest.raises(ValueError, match="either rng or noise"):
        sample_sequential(m, step, shape=(2,), batch=3, rng=0, noise=bank)
    with pytest.raises(ValueError, match="does not match"):
        sample_sequential(m, step, shape=(2,), batch=4, noise=bank)
    with pytest.raises(ValueError, match="batch"):
        sample_sequential(m, step, shape=(2,), batch=0)
    with pytest.raises(ValueError, match="shape"):
        sample_sequential(m, step, shape=(0,), batch=1)
    with pytest.raises(TypeError):
        sample_sequential(lambda x, t: x, step, shape=(2,))
    with pytest.raises(TypeError):
        sample_sequential(m, "ddpm", shape=(2,))
    with pytest.raises(ValueError, match="schedules"):
        sample_sequential(m, DDPMStep.from_schedule(Schedule.cosine(), 10), shape=(2,))
    with pytest.raises(ValueError, match="dtype"):
        sample_sequential(m, step, shape=(2,), dtype=torch.float16)


def test_non_finite_output_raises():
    m = Denoiser(lambda x, t: torch.full_like(x, float("nan")), SCHED, prediction="x0")
    with pytest.raises(NumericalError, match="non-finite"):
        sample_sequential(m, DDPMStep.from_schedule(SCHED, 5), shape=(2,), rng=0)


# ------------------------------------------------------------------ NoiseBank
def test_noise_bank_streams():
    b1 = NoiseBank(30, (2, 3), 4, rng=5)
    b2 = NoiseBank(30, (2, 3), 4, rng=5)
    lazy = NoiseBank(30, (2, 3), 4, rng=5, max_bytes=0)
    assert b1.materialized and not lazy.materialized
    assert b1.x_T.shape == (4, 2, 3) and b1.x_T.dtype == torch.float32
    for i in (0, 7, 29):
        assert torch.equal(b1.z(i), b2.z(i)) and torch.equal(b1.z(i), lazy.z(i))
        u = b1.uniforms(i)
        assert u.shape == (4,) and u.dtype == torch.float64
        assert torch.equal(u, lazy.uniforms(i))
    assert torch.equal(b1.zs(3, 9), lazy.zs(3, 9))
    assert b1.zs(4, 4).shape == (0, 4, 2, 3)
    assert not torch.equal(b1.z(0), b1.z(1)) and not torch.equal(b1.z(0)[0], b1.x_T[0])
    us = torch.stack([b1.uniforms(i) for i in range(30)])
    assert 0 <= float(us.min()) and float(us.max()) < 1
    assert NoiseBank(30, (2, 3), 4, rng=5, dtype=torch.float64).x_T.dtype == torch.float64
    allz = torch.stack([b1.z(i) for i in range(30)]).double()
    assert abs(float(allz.mean())) < 0.15 and abs(float(allz.std()) - 1) < 0.1
    with pytest.raises(IndexError):
        b1.z(30)
    with pytest.raises(IndexError):
        b1.uniforms(-1)
    with pytest.raises(ValueError):
        NoiseBank(0, (2,))
    with pytest.raises(ValueError):
        NoiseBank(3, (2,), dtype=torch.float16)


def test_noise_bank_from_tensors():
    x = torch.randn(3, 2, dtype=torch.float64)
    z = torch.randn(5, 3, 2, dtype=torch.float64)
    u = torch.rand(5, 3, dtype=torch.float64)
    bank = NoiseBank.from_tensors(x, z, u)
    assert (bank.n_steps, bank.batch, bank.shape) == (5, 3, (2,))
    assert torch.equal(bank.z(4), z[4]) and torch.equal(bank.uniforms(2), u[2])
    with pytest.raises(ValueError, match="uniforms"):
        NoiseBank.from_tensors(x, z).uniforms(0)
    with pytest.raises(ValueError):
        NoiseBank.from_tensors(x, z[:, :2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    m = ring_gmm(SCHED)
    step = DDPMStep.from_schedule(SCHED, 50)
    cpu = sample_sequential(m, step, shape=(2,), batch=8, rng=0)
    gpu = sample_sequential(m, step, shape=(2,), batch=8, rng=0, device="cuda")
    assert gpu.sample.device.type == "cuda"
    torch.testing.assert_close(gpu.sample.cpu(), cpu.sample, rtol=0, atol=1e-10)
    cb = NoiseBank(50, (2,), 8, rng=0, device="cpu")
    gb = NoiseBank(50, (2,), 8, rng=0, device="cuda")
    assert torch.equal(cb.z(7), gb.z(7).cpu()) and torch.equal(cb.uniforms(7), gb.uniforms(7).cpu())


def test_top_level_import_does_not_import_torch():
    code = "import sys, parasample; assert 'torch' not in sys.modules; " \
           "assert 'parasample.diffusion' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
