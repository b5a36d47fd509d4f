"""Autospeculative decoding (spec diffusion.md §4, tests §8 "ASD" items 1–7).

Exactness is tested in law (the output of ASD is not the sequential realisation unless every
δ = 0): the Gaussian rejection step on its own (item 2), the exact discrete law of a single
Gaussian (item 4, also with a useless drift), a two-sample test on the ring GMM (item 5), and a
negative control that must fail (item 6). Bitwise equality holds for a point mass (item 3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import parasample.diffusion as D
import parasample.diffusion.asd as asd_module
from parasample.core import CountingOracle
from parasample.diffusion.asd import (
    _sample_asd, grs_couple, log_acceptance_ratio, reflect, sample_asd, sl_coordinates,
)
from parasample.diffusion.metrics import energy_distance, permutation_test


SCH = D.Schedule.linear()


@pytest.fixture(scope="module")
def ring():
    return D.ring_gmm(SCH)


@pytest.fixture(scope="module")
def step100():
    return D.DDPMStep.from_schedule(SCH, 100)


@pytest.fixture(scope="module")
def seq_ring100(ring, step100):
    """1000 sequential DDPM samples of the ring GMM, 100 steps (the reference law)."""
    return D.sample_sequential(ring, step100, shape=(2,), batch=1000, rng=12345).sample.numpy()


# ---------------------------------------------------------------- 1. SL equivalence
@pytest.mark.parametrize("grid", [
    SCH.grid(100),
    D.Schedule.cosine().grid(13, "trailing"),
    SCH.grid(10, "linspace", final_alpha_bar=float(SCH.alpha_bar[0])),
])
def test_sl_equivalence(grid):
    """The fixed_small DDPM step is the SL Euler–Maruyama step y' = y + h·D + √h·z."""
    step = D.DDPMStep(grid)
    tau, scale = sl_coordinates(step)
    g = torch.Generator().manual_seed(0)
    S = step.n_steps
    last = S - 1 if step.terminal_x0 else S
    assert np.isinf(tau[S]) == step.terminal_x0
    for i in range(last):
        x = torch.randn(4, 3, generator=g, dtype=torch.float64)
        d = torch.randn(4, 3, generator=g, dtype=torch.float64)
        z = torch.randn(4, 3, generator=g, dtype=torch.float64)
        h = tau[i + 1] - tau[i]
        assert scale[i + 1] ** 2 * step.sigma[i] ** 2 == pytest.approx(h, rel=1e-12)
        y_next = scale[i] * x + h * d + math.sqrt(h) * z
        got = scale[i + 1] * step.advance(i, x, d, z)
        assert float((got - y_next).abs().max() / y_next.abs().max()) < 1e-12


# ---------------------------------------------------------------- 2. GRS unit test
def _grs_setup(ratio, n=20000, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    sigma = 0.7
    mu_q = torch.randn(d, generator=g, dtype=torch.float64).expand(n, d)
    e = torch.randn(d, generator=g, dtype=torch.float64)
    e = e / e.norm()
    f = torch.randn(d, generator=g, dtype=torch.float64)
    f = f - (f @ e) * e
    f = f / f.norm()
    mu_p = mu_q + ratio * sigma * e
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    return sigma, mu_q, mu_p, e, f, z, u, g


@pytest.mark.parametrize("ratio", [0.1, 1.0, 5.0])
def test_grs_law(ratio):
    sigma, mu_q, mu_p, e, f, z, u, _ = _grs_setup(ratio)
    out, acc = grs_couple(mu_q, mu_p, sigma, z, u)
    draft = mu_q + sigma * z
    assert torch.equal(out[acc], draft[acc])
    assert not bool((out[~acc] == draft[~acc]).all(-1).any())
    r = (out - mu_p) / sigma
    assert stats.kstest((r @ e).numpy(), "norm").pvalue > 1e-3
    assert stats.kstest((r @ f).numpy(), "norm").pvalue > 1e-3
    n = len(u)
    p_same = 2.0 * stats.norm.cdf(-ratio / 2.0)          # 1 − TV
    se = math.sqrt(p_same * (1 - p_same) / n)
    assert abs(float(acc.double().mean()) - p_same) < 4 * se


def test_grs_fresh_draw_variant_fails():
    """Drawing afresh from the target on rejection gives min(p,q) + TV·p ≠ p: the same KS
    test must reject it (power check of test_grs_law)."""
    sigma, mu_q, mu_p, e, f, z, u, g = _grs_setup(1.0)
    out, acc = grs_couple(mu_q, mu_p, sigma, z, u)
    fresh = mu_p + sigma * torch.randn(z.shape, generator=g, dtype=torch.float64)
    bad = torch.where(acc[:, None], out, fresh)
    assert stats.kstest((((bad - mu_p) / sigma) @ e).numpy(), "norm").pvalue < 1e-6
    assert stats.kstest((((out - mu_p) / sigma) @ e).numpy(), "norm").pvalue > 1e-3


def test_reflect_and_log_ratio():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(50, 6, generator=g, dtype=torch.float64)
    delta = torch.randn(50, 6, generator=g, dtype=torch.float64)
    delta[3] = 0.0
    rz = reflect(z, delta)
    assert torch.allclose(rz.norm(dim=-1), z.norm(dim=-1), rtol=1e-13)
    assert torch.equal(rz[3], z[3])                                  # δ = 0: unchanged
    e = delta / delta.norm(dim=-1, keepdim=True)
    keep = torch.arange(50) != 3
    assert torch.allclose((rz * e).sum(-1)[keep], -(z * e).sum(-1)[keep], atol=1e-13)
    sigma = 0.3
    lr = log_acceptance_ratio(z, delta, sigma)
    x = sigma * z                                                     # μ_q = 0
    direct = (-((x - delta) ** 2).sum(-1) + (x ** 2).sum(-1)) / (2 * sigma ** 2)
    assert torch.allclose(lr, direct, rtol=1e-10, atol=1e-10)
    assert lr[3] == 0.0 and lr.dtype == torch.float64
    assert log_acceptance_ratio(z[:2], delta[:2], 0.0).eq(-math.inf).all()
    assert log_acceptance_ratio(z[3:4], delta[3:4], 0.0).eq(0.0).all()


# ---------------------------------------------------------------- 3. point mass
@pytest.mark.parametrize("kw", [dict(k=1), dict(k=4), dict(k=16), dict(k=4, adaptive=True),
                                dict(k=200)])
@pytest.mark.parametrize("final", [1.0, None])
def test_point_mass_bitwise(kw, final):
    fab = 1.0 if final else float(SCH.alpha_bar[0])
    step = D.DDPMStep(SCH.grid(50, "trailing", final_alpha_bar=fab))
    pm = D.PointMassDenoiser(np.arange(6.0).reshape(2, 3) - 2.5, schedule=SCH)
    seq = D.sample_sequential(pm, step, shape=(2, 3), batch=3, rng=7)
    res = sample_asd(pm, step, shape=(2, 3), batch=3, rng=7, **kw)
    assert torch.equal(res.sample, seq.sample)
    assert res.info["n_rejections"] == 0 and res.info["acceptance_rate"] == 1.0


def test_point_mass_float32_and_noise_bank():
    step = D.DDPMStep.from_schedule(SCH, 30)
    pm = D.PointMassDenoiser([0.5, -1.0], schedule=SCH)
    bank = D.NoiseBank(30, (2,), 4, rng=3, dtype=torch.float32)
    seq = D.sample_sequential(pm, step, shape=(2,), batch=4, noise=bank, dtype=torch.float32)
    res = sample_asd(pm, step, shape=(2,), batch=4, noise=bank, dtype=torch.float32, k=8)
    assert res.sample.dtype == torch.float32 and torch.equal(res.sample, seq.sample)


def test_conditional_rows_carry_chain_index():
    """Chains drop out at different rounds; every row must reach its own chain's conditioning."""
    pts = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.0, -1.0]], dtype=torch.float64)
    seen = []

    def fn(x, t, sample_index):
        seen.append(sample_index.clone())
        return pts[sample_index].clone()

    model = D.Denoiser(fn, SCH, prediction="x0", conditional=True)
    step = D.DDPMStep.from_schedule(SCH, 40)
    res = sample_asd(model, step, shape=(2,), batch=3, rng=0, k=8)
    seq = D.sample_sequential(model, step, shape=(2,), batch=3, rng=0)
    assert torch.equal(res.sample, seq.sample) and torch.equal(res.sample, pts)
    assert all(len(s) > 0 for s in seen)


# ---------------------------------------------------------------- 4. single Gaussian
MU, STD = np.array([1.5, -0.5]), 0.5


def _zscores(sample, step):
    m, v = D.single_gaussian_law(step, MU, STD)
    x = sample.numpy()
    n = len(x)
    zm = (x.mean(0) - m) / math.sqrt(v / n)
    zv = (x.var(0, ddof=1) - v) / (v * math.sqrt(2.0 / (n - 1)))
    return np.concatenate([zm, zv])


@pytest.fixture(scope="module")
def gauss():
    return D.SingleGaussianDenoiser(MU, STD, schedule=SCH)


@pytest.mark.parametrize("kw,seed", [(dict(k=4), 1), (dict(k=16), 2),
                                     (dict(k=4, adaptive=True), 3)])
def test_single_gaussian_exact_law(gauss, step100, kw, seed):
    res = sample_asd(gauss, step100, shape=(2,), batch=8000, rng=seed, **kw)
    z = _zscores(res.sample, step100)
    assert np.all(np.abs(z) < 4), z
    assert res.cost.rounds <= step100.n_steps + 1
    assert res.info["n_rejections"] > 0          # the test exercises the reflection


def test_single_gaussian_useless_drift(gauss, step100):
    """m̂ ≡ 0 is a terrible draft, yet the law is exact: only the number of rounds grows."""
    res = _sample_asd(gauss, step100, shape=(2,), batch=8000, rng=4, k=16, drift="zero")
    z = _zscores(res.sample, step100)
    assert np.all(np.abs(z) < 4), z
    good = sample_asd(gauss, step100, shape=(2,), batch=8000, rng=4, k=16)
    assert res.info["mean_rounds"] > 1.5 * good.info["mean_rounds"]
    assert res.info["acceptance_rate"] < good.info["acceptance_rate"]
    assert res.cost.rounds <= step100.n_steps + 1


def test_single_gaussian_detects_missing_reflection(gauss, step100, monkeypatch):
    """Power check: rejected steps that keep z instead of reflecting it (output μ_p + σz with
    z conditioned on rejection) are biased, and the z-scores of the exact-law test see it."""
    monkeypatch.setattr(asd_module, "reflect", lambda z, delta: z)
    res = sample_asd(gauss, step100, shape=(2,), batch=8000, rng=1, k=16)
    assert np.max(np.abs(_zscores(res.sample, step100))) > 8


# ---------------------------------------------------------------- 5. ring GMM
def test_ring_gmm_energy_distance(ring, step100, seq_ring100):
    res = sample_asd(ring, step100, shape=(2,), batch=1000, rng=99, k=16)
    _, p = permutation_test(res.sample.numpy(), seq_ring100, energy_distance,
                            n_permutations=200, rng=0)
    assert p > 1e-3
    radius = np.linalg.norm(res.sample.numpy(), axis=1)   # more sensitive (see item 6)
    assert stats.ks_2samp(radius, np.linalg.norm(seq_ring100, axis=1)).pvalue > 1e-3


@pytest.mark.parametrize("n_steps,k,ref", [(100, 4, 28), (100, 8, 17), (100, 16, 12),
                                           (1000, 8, 130), (1000, 16, 69), (1000, 32, 40)])
def test_ring_gmm_rounds_reference(ring, n_steps, k, ref):
    """Mean rounds per chain (64 chains) against the prototype, ±25% (§8)."""
    step = D.DDPMStep.from_schedule(SCH, n_steps)
    res = sample_asd(ring, step, shape=(2,), batch=64, rng=0, k=k)
    assert abs(res.info["mean_rounds"] - ref) <= 0.25 * ref
    if n_steps == 1000:
        assert 900 <= res.info["nfe"] <= 1500


@pytest.mark.slow
@pytest.mark.parametrize("kw", [dict(k=8), dict(k=16, adaptive=True)])
def test_ring_gmm_energy_distance_1000_steps(ring, kw):
    step = D.DDPMStep.from_schedule(SCH, 1000)
    seq = D.sample_sequential(ring, step, shape=(2,), batch=600, rng=5).sample.numpy()
    res = sample_asd(ring, step, shape=(2,), batch=600, rng=6, **kw)
    _, p = permutation_test(res.sample.numpy(), seq, energy_distance, n_permutations=200, rng=0)
    assert p > 1e-3


# ---------------------------------------------------------------- 6. negative control
def test_negative_control_no_verification(ring, step100, seq_ring100):
    r_seq = np.linalg.norm(seq_ring100, axis=1)
    bad = _sample_asd(ring, step100, shape=(2,), batch=1000, rng=99, k=16, verify=False)
    assert bad.info["n_rejections"] == 0
    assert stats.ks_2samp(np.linalg.norm(bad.sample.numpy(), axis=1), r_seq).pvalue < 1e-6
    good = sample_asd(ring, step100, shape=(2,), batch=1000, rng=99, k=16)
    assert stats.ks_2samp(np.linalg.norm(good.sample.numpy(), axis=1), r_seq).pvalue > 1e-3


# ---------------------------------------------------------------- 7. accounting
def _check_accounting(res, S, terminal):
    info = res.info
    rows, kk, acc = info["rows_per_round"], info["draft_lengths"], info["accepted_lengths"]
    B = res.sample.shape[0]
    assert res.cost.rounds == rows.shape[0] == info["rounds_per_chain"].max()
    assert res.cost.evaluations == rows.sum() == info["evaluations_per_chain"].sum()
    assert np.all(info["rounds_per_chain"] <= S + 1)
    assert np.all(info["rounds_per_chain"] == (rows > 0).sum(0))
    for b in range(B):
        r = np.flatnonzero(rows[:, b] > 0)
        assert r[0] == 0 and np.all(np.diff(r) == 1)       # a finished chain drops out
        kkb, accb = kk[r[1:], b], acc[r[1:], b]
        pos = np.concatenate([[0], np.cumsum(np.where(accb < kkb, accb + 1, kkb))])
        final = 0
        if terminal:
            assert pos[-1] == S - 1
            # an extra (1-row) round iff the state x_{S−1} came from a reflection
            final = int(kkb[-1] == 0)
            if final:
                assert len(kkb) >= 2 and accb[-2] < kkb[-2]
        else:
            assert pos[-1] == S
        reach_S = (pos[:-1] + kkb == S).astype(int)        # x_S has no timestep
        expected = 1 + np.sum(kkb + 1 - reach_S)          # 1 + Σ(kk+1) (+ final row)
        assert info["evaluations_per_chain"][b] == expected
        assert np.all(rows[r[1:], b] == kkb + 1 - reach_S)
    assert res.info["nfe"] == res.cost.evaluations / B


@pytest.mark.parametrize("final", [True, False])
@pytest.mark.parametrize("kw", [dict(k=4), dict(k=3, adaptive=True, k_min=1, k_max=9)])
def test_accounting(ring, final, kw):
    fab = 1.0 if final else float(SCH.alpha_bar[0])
    step = D.DDPMStep(SCH.grid(25, "trailing", final_alpha_bar=fab))
    res = _sample_asd(ring, step, shape=(2,), batch=40, rng=11, drift="zero", **kw)
    assert res.info["n_rejections"] > 0
    assert np.any(res.info["draft_lengths"] == 0) == final  # some chains needed a final round
    _check_accounting(res, 25, final)
    res2 = sample_asd(ring, step, shape=(2,), batch=40, rng=11, **kw)
    _check_accounting(res2, 25, final)


def test_accounting_hand_computed():
    """Point mass, S = 10, k = 4: round 0 (1 row), kk = 4, 4, 1 (S_stoch = 9), and the last
    round's D(x_9) is the output: 1 + 5 + 5 + 2 = 13 evaluations in 4 rounds. With final
    ᾱ < 1: kk = 4, 4, 2 and the state x_10 is not evaluated: 1 + 5 + 5 + 2 = 13 as well."""
    pm = D.PointMassDenoiser([1.0], schedule=SCH)
    for fab, kks in ((1.0, [4, 4, 1]), (float(SCH.alpha_bar[0]), [4, 4, 2])):
        step = D.DDPMStep(SCH.grid(10, "trailing", final_alpha_bar=fab))
        res = sample_asd(pm, step, shape=(1,), batch=2, rng=0, k=4)
        assert res.cost.rounds == 4 and res.cost.evaluations == 2 * 13
        assert list(res.info["draft_lengths"][1:, 0]) == kks
        assert res.info["nfe"] == 13
    one = sample_asd(pm, D.DDPMStep.from_schedule(SCH, 1), shape=(1,), rng=0)
    assert one.cost.rounds == 1 and one.cost.evaluations == 1 and one.sample.item() == 1.0


def test_adaptive_rule_uses_only_the_past(ring, step100):
    res = sample_asd(ring, step100, shape=(2,), batch=16, rng=2, k=4, adaptive=True, k_min=2,
                     k_max=32)
    kr, kk, acc = (res.info[n] for n in ("k_per_round", "draft_lengths", "accepted_lengths"))
    assert kr[1].tolist() == [4] * 16
    for r in range(1, kr.shape[0] - 1):
        for b in range(16):
            if kr[r + 1, b] < 0 or kk[r, b] == 0:
                continue
            want = (min(2 * kr[r, b], 32) if acc[r, b] == kk[r, b]
                    else int(np.clip(2 * (acc[r, b] + 1), 2, 32)))
            assert kr[r + 1, b] == want
    assert kr.max() == 32 and set(np.unique(kr[kr > 0])) <= set(range(2, 33))


def test_info_statistics(ring, step100):
    res = sample_asd(ring, step100, shape=(2,), batch=32, rng=8, k=8)
    info = res.info
    kk, acc = info["draft_lengths"], info["accepted_lengths"]
    m = kk >= 1
    decided = np.minimum(acc + 1, kk)[m]
    assert info["acceptance_rate"] == pytest.approx(acc[m].sum() / decided.sum())
    assert info["mean_accepted_length"] == pytest.approx(acc[m].mean())
    assert info["n_rejections"] == int((acc[m] < kk[m]).sum())
    assert 0.5 < info["acceptance_rate"] < 1.0


# ---------------------------------------------------------------- misc
def test_reproducible_and_regenerated_noise(ring, step100):
    a = sample_asd(ring, step100, shape=(2,), batch=6, rng=5, k=8)
    b = sample_asd(ring, step100, shape=(2,), batch=6, rng=5, k=8)
    assert torch.equal(a.sample, b.sample)
    bank = D.NoiseBank(100, (2,), 6, rng=5, dtype=torch.float64, max_bytes=0)
    assert not bank.materialized
    c = sample_asd(ring, step100, shape=(2,), batch=6, noise=bank, k=8)
    assert torch.equal(a.sample, c.sample)
    assert a.cost == c.cost


def test_batch_member_matches_single_run(ring, step100):
    """Lockstep is invisible: chain b of a batch equals a run on b's own noise column."""
    bank = D.NoiseBank(100, (2,), 5, rng=21, dtype=torch.float64)
    res = sample_asd(ring, step100, shape=(2,), noise=bank, batch=5, k=8, adaptive=True)

    class Column(D.NoiseBank):
        def __init__(self, src, b):
            self.__dict__.update({k: v for k, v in src.__dict__.items()})
            self.batch, self._b = 1, b
            self.x_T = src.x_T[b:b + 1]
            self._z, self._u = src.zs(0, 100)[:, b:b + 1], torch.stack(
                [src.uniforms(i)[b:b + 1] for i in range(100)])
            self.materialized = True

    for b in (0, 3):
        one = sample_asd(ring, step100, shape=(2,), noise=Column(bank, b), k=8, adaptive=True)
        assert torch.equal(one.sample[0], res.sample[b])
        assert one.cost.rounds == res.info["rounds_per_chain"][b]


def test_bad_input(ring):
    grid = SCH.grid(20)
    with pytest.raises(ValueError, match="fixed_small"):
        sample_asd(ring, D.DDPMStep(grid, variance="fixed_large"), shape=(2,))
    with pytest.raises(ValueError, match="fixed_small"):
        sample_asd(ring, D.DDIMStep(grid, eta=1.0), shape=(2,))
    step = D.DDPMStep(grid)
    for bad in (dict(k=0), dict(k=2.5), dict(k=100, adaptive=True), dict(k_min=0)):
        with pytest.raises(ValueError):
            sample_asd(ring, step, shape=(2,), **bad)
    with pytest.raises(ValueError, match="either rng or noise"):
        sample_asd(ring, step, shape=(2,), rng=0, noise=D.NoiseBank(20, (2,), rng=0,
                                                                    dtype=torch.float64))
    with pytest.raises(ValueError, match="drift"):
        _sample_asd(ring, step, shape=(2,), drift="fresh")


def test_counting_is_measured(ring, step100, monkeypatch):
    """Cost comes from core.CountingOracle around model.predict (not self-reported)."""
    calls = []
    orig = CountingOracle.__call__

    def spy(self, batch, *a, **kw):
        calls.append(batch.shape[0])
        return orig(self, batch, *a, **kw)

    monkeypatch.setattr(CountingOracle, "__call__", spy)
    res = sample_asd(ring, step100, shape=(2,), batch=4, rng=0, k=8)
    assert res.cost.rounds == len(calls) and res.cost.evaluations == sum(calls)
