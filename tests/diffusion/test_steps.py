"""Denoiser conversions and DDPM/DDIM steps (spec §1.3–§1.4, §2, §8)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from parasample.diffusion import (  # noqa: E402
    DDIMStep, DDPMStep, Denoiser, Schedule, TimeGrid,
)


SCHED = Schedule.linear()


def _truth(n=257, d=3, seed=0, schedule=SCHED):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    eps = torch.randn(n, d, generator=g, dtype=torch.float64)
    t = torch.randint(0, schedule.n_train, (n,), generator=g)
    t[:3] = torch.tensor([0, 999, 500])
    a = torch.tensor(schedule.sqrt_alpha_bar)[t][:, None]
    b = torch.tensor(schedule.sqrt_one_minus_alpha_bar)[t][:, None]
    return x0, eps, t, a * x0 + b * eps, a, b


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_conversion_round_trips(prediction):
    x0, eps, t, x, a, b = _truth()
    target = {"epsilon": eps, "x0": x0, "v": a * eps - b * x0}[prediction]
    lookup = {tuple(r.tolist()): i for i, r in enumerate(x)}

    def fn(xx, tt):
        idx = torch.tensor([lookup[tuple(r.tolist())] for r in xx])
        assert torch.equal(tt, t[idx])
        return target[idx]

    m = Denoiser(fn, SCHED, prediction=prediction)
    x0h, epsh = m.predict(x, t)
    assert x0h.dtype == torch.float64
    torch.testing.assert_close(x0h, x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(epsh, eps, rtol=0, atol=1e-12)
    for other in ("epsilon", "x0", "v"):
        want = {"epsilon": eps, "x0": x0, "v": a * eps - b * x0}[other]
        torch.testing.assert_close(m.to_prediction(x, t, x0h, other), want, rtol=0, atol=1e-12)
    assert torch.equal(m(x, t), x0h)


def test_fp16_module_outputs_are_cast_up():
    lin = torch.nn.Linear(4, 4).half()
    m = Denoiser(lambda x, t: lin(x), SCHED)           # plain function: float64 default
    assert m.dtype == torch.float64 and m.model_dtype is None

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x, t):
            assert x.dtype == self.lin.weight.dtype
            return self.lin(x)

    net = Net().half()
    m = Denoiser(net, SCHED)
    assert m.dtype == torch.float32 and m.model_dtype == torch.float16
    x = torch.randn(5, 4)
    t = torch.full((5,), 999, dtype=torch.long)
    x0, eps = m.predict(x, t)
    assert x0.dtype == eps.dtype == torch.float32
    out = net(x.half(), t).float()
    a, b = SCHED.sqrt_alpha_bar[999], SCHED.sqrt_one_minus_alpha_bar[999]
    torch.testing.assert_close(x0, (x - b * out) / a, rtol=1e-5, atol=1e-5)
    assert Denoiser(Net(), SCHED).dtype == torch.float32
    assert Denoiser(Net().double(), SCHED).dtype == torch.float64


def test_clip_is_inside_the_denoiser_and_ddim_raw_eps():
    x0, eps, t, x, a, b = _truth(d=2)
    m = Denoiser(lambda xx, tt: 3 * torch.ones_like(xx), SCHED, prediction="x0", clip_x0=1.0)
    x0h, epsh = m.predict(x, t)
    assert torch.all(x0h == 1.0)
    torch.testing.assert_close(epsh, (x - a * 3) / b)           # raw, from the unclipped x̂0
    post = Denoiser(lambda xx, tt: 3 * torch.ones_like(xx), SCHED, prediction="x0",
                    clip_x0=lambda z, tt: z / 2)
    assert torch.all(post(x, t) == 1.5)
    grid = TimeGrid(SCHED, [800, 400])
    xs, ts = x[:8], torch.full((8,), 800, dtype=torch.long)
    x0h, epsh = m.predict(xs, ts)
    rec = DDIMStep(grid).advance(0, xs, x0h, None, epsh)
    raw = DDIMStep(grid, raw_eps=True).advance(0, xs, x0h, None, epsh)
    assert not torch.allclose(rec, raw)
    with pytest.raises(ValueError, match="eps_hat"):
        DDIMStep(grid, raw_eps=True).advance(0, xs, x0h, None)


def test_denoiser_errors():
    with pytest.raises(ValueError, match="prediction"):
        Denoiser(lambda x, t: x, SCHED, prediction="score")
    with pytest.raises(ValueError, match="clip_x0"):
        Denoiser(lambda x, t: x, SCHED, clip_x0=-1.0)
    with pytest.raises(TypeError):
        Denoiser(lambda x, t: x, "linear")
    with pytest.raises(ValueError, match="dtype"):
        Denoiser(lambda x, t: x, SCHED, dtype=torch.float16)
    m = Denoiser(lambda x, t: x[:, :1], SCHED)
    with pytest.raises(ValueError, match="shape"):
        m.predict(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="t must have shape"):
        m.predict(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.long))
    c = Denoiser(lambda x, t, i: x, SCHED, conditional=True)
    with pytest.raises(ValueError, match="sample_index"):
        c.predict(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.long))


def _ddpm_ref(grid):
    ab, abp = grid.ab, grid.abp
    bt = 1 - ab / abp
    c0 = np.sqrt(abp) * bt / (1 - ab)
    c1 = np.sqrt(ab / abp) * (1 - abp) / (1 - ab)
    return c0, c1, (1 - abp) / (1 - ab) * bt


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_ddpm_coefficients_and_exact_last_step(spacing):
    step = DDPMStep.from_schedule(SCHED, 13, spacing)
    c0, c1, var = _ddpm_ref(step.grid)
    np.testing.assert_allclose(step.c0[:-1], c0[:-1], rtol=1e-14)
    np.testing.assert_allclose(step.c1[:-1], c1[:-1], rtol=1e-14)
    np.testing.assert_allclose(step.sigma[:-1] ** 2, var[:-1], rtol=1e-14)
    assert (step.c0[-1], step.c1[-1], step.sigma[-1]) == (1.0, 0.0, 0.0)
    assert step.terminal_x0 and not step.is_ode and step.n_steps == 13
    x = torch.randn(4, 3, dtype=torch.float64)
    x0 = torch.randn(4, 3, dtype=torch.float64)
    z = torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(step.advance(12, x, x0, z), x0)         # exactly x̂0
    for i in range(12):                                        # drift form = μ + σz
        mu = step.c0[i] * x0 + step.c1[i] * x
        torch.testing.assert_close(step.advance(i, x, x0, z), mu + step.sigma[i] * z,
                                   rtol=0, atol=1e-14)
        torch.testing.assert_close(step.drift(i, x, x0), mu - x, rtol=0, atol=1e-14)
    large = DDPMStep.from_schedule(SCHED, 13, spacing, variance="fixed_large")
    np.testing.assert_allclose(large.sigma[:-1] ** 2, large.grid.beta_tilde[:-1], rtol=1e-14)
    assert large.sigma[-1] == 0.0


def test_ddpm_full_chain_reduces_to_ho_et_al():
    step = DDPMStep.from_schedule(SCHED, 1000)                 # t = 999 … 0, abp = ᾱ_{t−1}
    t = step.timesteps[:-1]
    beta, ab = SCHED.betas[t], SCHED.alpha_bar[t]
    abp = SCHED.alpha_bar[t - 1]
    np.testing.assert_allclose(step.c0[:-1], np.sqrt(abp) * beta / (1 - ab), rtol=1e-9)
    np.testing.assert_allclose(step.c1[:-1], np.sqrt(1 - beta) * (1 - abp) / (1 - ab), rtol=1e-9)


def test_final_alpha_bar_below_one():
    grid = TimeGrid.spaced(SCHED, 10, "leading", final_alpha_bar=SCHED.alpha_bar[0])
    step = DDPMStep(grid)
    assert not step.terminal_x0
    assert step.c0[-1] == 0.0 and step.c1[-1] == 1.0 and step.sigma[-1] == 0.0   # identity
    x = torch.randn(3, 2, dtype=torch.float64)
    assert torch.equal(step.advance(9, x, torch.zeros_like(x), torch.randn_like(x)), x)
    ddim = DDIMStep(grid)
    torch.testing.assert_close(ddim.advance(9, x, torch.randn_like(x), None), x,
                               rtol=0, atol=1e-14)


@pytest.mark.parametrize("spacing, S", [("leading", 10), ("trailing", 13), ("linspace", 50)])
def test_ddim_eta1_equals_ddpm_fixed_small(spacing, S):
    ddpm = DDPMStep.from_schedule(SCHED, S, spacing)
    ddim = DDIMStep.from_schedule(SCHED, S, eta=1.0, spacing=spacing)
    np.testing.assert_allclose(ddim.sigma, ddpm.sigma, rtol=1e-14, atol=0)
    np.testing.assert_allclose(ddim.c0, ddpm.c0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ddim.c1, ddpm.c1, rtol=0, atol=1e-14)
    g = torch.Generator().manual_seed(1)
    x, x0, z = (torch.randn(64, 2, generator=g, dtype=torch.float64) for _ in range(3))
    worst = max(float((ddim.advance(i, x, x0, z) - ddpm.advance(i, x, x0, z)).abs().max())
                for i in range(S))
    assert worst < 1e-14


def test_ddim_eta0_is_ode_and_formula():
    step = DDIMStep.from_schedule(SCHED, 20, eta=0.0, spacing="trailing")
    assert step.is_ode and np.all(step.sigma == 0) and step.terminal_x0
    half = DDIMStep.from_schedule(SCHED, 20, eta=0.5, spacing="trailing")
    assert not half.is_ode
    g = step.grid
    x = torch.randn(8, 3, dtype=torch.float64)
    x0 = torch.randn(8, 3, dtype=torch.float64)
    for i in range(19):
        eps = (x - np.sqrt(g.ab[i]) * x0) / np.sqrt(1 - g.ab[i])
        want = np.sqrt(g.abp[i]) * x0 + np.sqrt(1 - g.abp[i]) * eps
        torch.testing.assert_close(step.advance(i, x, x0, None), want, rtol=0, atol=1e-13)
        s = 0.5 * np.sqrt(g.var_small[i])
        assert half.sigma[i] == pytest.approx(s, rel=1e-14)
        assert half.c_eps[i] == pytest.approx(np.sqrt(1 - g.abp[i] - s * s), rel=1e-14)


@pytest.mark.parametrize("make", [
    lambda: DDPMStep.from_schedule(SCHED, 30, "trailing"),
    lambda: DDIMStep.from_schedule(SCHED, 30, eta=0.5, spacing="linspace"),
    lambda: DDIMStep.from_schedule(SCHED, 30, eta=0.0, raw_eps=True)])
def test_windowed_drift_is_bitwise_the_per_step_drift(make):
    step = make()
    g = torch.Generator().manual_seed(2)
    L, B = 30, 5
    x, x0, eps, z = (torch.randn(L, B, 2, generator=g, dtype=torch.float64) for _ in range(4))
    dw = step.drift(range(L), x, x0, eps)
    sw = step.coef("sigma", range(L), torch.float64, "cpu", 3)
    for j in range(L):
        assert torch.equal(dw[j], step.drift(j, x[j], x0[j], eps[j]))
        if j < L - 1:
            assert torch.equal(x[j] + (dw[j] + sw[j] * z[j]), step.advance(j, x[j], x0[j], z[j], eps[j]))
    assert torch.equal(step.drift(np.arange(3, 7), x[3:7], x0[3:7], eps[3:7]), dw[3:7])
    assert torch.equal(step.drift(torch.arange(3, 7), x[3:7], x0[3:7], eps[3:7]), dw[3:7])


def test_float32_coefficients():
    step = DDPMStep.from_schedule(SCHED, 10)
    x = torch.randn(2, 3)
    out = step.advance(3, x, torch.randn(2, 3), torch.randn(2, 3))
    assert out.dtype == torch.float32


def test_step_errors():
    grid = TimeGrid.spaced(SCHED, 10)
    with pytest.raises(ValueError, match="variance"):
        DDPMStep(grid, variance="learned")
    with pytest.raises(ValueError, match="eta"):
        DDIMStep(grid, eta=-0.1)
    with pytest.raises(TypeError):
        DDPMStep([999, 0])
    x = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(IndexError):
        DDPMStep(grid).advance(10, x, x, x)
