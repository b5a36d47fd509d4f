"""ReplicatedModel (spec §7): one replica per device, batches split, results gathered in order.

On CPU, ``devices=["cpu", "cpu"]`` gives two replicas driven by two threads; results must equal
the single-device ones and the samplers' rounds must not change. CUDA variants run only where
a GPU is present.
"""

from __future__ import annotations

import copy
import threading

import pytest
import torch

from parasample.diffusion import (
    DDPMStep, Denoiser, NoiseBank, Schedule, sample_picard, sample_sequential,
)
from parasample.diffusion.multi_device import ReplicatedModel


class TinyEps(torch.nn.Module):
    """A row-wise MLP ε-model with a timestep embedding (rows never interact)."""

    def __init__(self, dim: int = 6, dtype=torch.float64):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = torch.nn.Parameter(0.3 * torch.randn(dim + 1, 32, generator=g, dtype=dtype))
        self.w2 = torch.nn.Parameter(0.3 * torch.randn(32, dim, generator=g, dtype=dtype))

    def forward(self, x, t, sample_index=None):
        h = torch.cat([x, (t.to(x.dtype) / 1000.0).unsqueeze(1)], dim=1)
        out = torch.tanh(h @ self.w1) @ self.w2
        if sample_index is not None:
            out = out + 0.01 * sample_index.to(x.dtype).unsqueeze(1)
        return out


class Recorder(torch.nn.Module):
    """Identity-like replica that records the rows and thread of each call."""

    def __init__(self, log, tag):
        super().__init__()
        self.log, self.tag = log, tag
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, t, *, extra=None, const=None):
        self.log.append((self.tag, threading.get_ident(), int(x.shape[0]),
                         torch.is_inference_mode_enabled()))
        out = x * self.scale + t.to(x.dtype).unsqueeze(1)
        if extra is not None:
            out = out + extra
        if const is not None:
            out = out + const
        return out


def test_split_balanced_in_order_and_threads():
    log = []
    tags = iter(range(10))
    rm = ReplicatedModel(lambda d: Recorder(log, next(tags)), ["cpu", "cpu", "cpu"])
    try:
        assert len(rm.replicas) == 3 and rm.device == torch.device("cpu")
        assert rm.dtype == torch.float32
        x = torch.arange(20.0).reshape(10, 2)
        t = torch.arange(10)
        extra = torch.full((10, 2), 0.5)
        const = torch.tensor(100.0)  # not a per-row tensor: copied to every replica
        with torch.inference_mode():
            out = rm(x, t, extra=extra, const=const)
        torch.testing.assert_close(out, x + t.unsqueeze(1).float() + 0.5 + 100.0)
        rows = sorted((tag, n) for tag, _, n, _ in log)
        assert rows == [(0, 4), (1, 3), (2, 3)]         # tensor_split: contiguous, balanced
        assert all(inf for *_, inf in log)              # workers inherit inference mode
        main = threading.get_ident()
        threads = {tag: tid for tag, tid, _, _ in log}
        assert threads[0] == main and threads[1] != main and threads[2] != main
        assert rm.calls == 1 and rm.split_calls == 1 and rm.rows_per_device == [4, 3, 3]

        log.clear()                                     # ≤ 3 rows stay on the primary
        out = rm(x[:3], t[:3])
        assert [(tag, n) for tag, _, n, _ in log] == [(0, 3)]
        assert rm.split_calls == 1 and rm.rows_per_device == [7, 3, 3]
        log.clear()                                     # 4 rows on 3 devices: 2 + 1 + 1
        rm(x[:4], t[:4])
        assert sorted((tag, n) for tag, _, n, _ in log) == [(0, 2), (1, 1), (2, 1)]
    finally:
        rm.close()
    log.clear()
    rm(x, t)                                            # closed: primary only
    assert [(tag, n) for tag, _, n, _ in log] == [(0, 10)]


def test_grad_mode_and_output_objects():
    class WithSample(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            return type("Out", (), {"sample": self.lin(x)})()

    torch.manual_seed(0)
    base = WithSample()
    with ReplicatedModel(lambda d: copy.deepcopy(base).to(d), ["cpu", "cpu"]) as rm:
        x = torch.randn(8, 3)
        with torch.inference_mode():
            got = rm(x)
            want = base(x).sample
        torch.testing.assert_close(got, want)
        assert not got.requires_grad
        with torch.no_grad():
            assert not rm(x).requires_grad
        assert rm(x).requires_grad  # grad mode propagated to the worker thread as well
        assert rm.lin is rm.replicas[0].lin  # attributes fall through to the primary replica


def test_bad_arguments():
    with pytest.raises(ValueError, match="non-empty"):
        ReplicatedModel(lambda d: torch.nn.Identity(), [])
    with pytest.raises(TypeError, match="callable"):
        ReplicatedModel(lambda d: 3, ["cpu"])
    with pytest.raises(ValueError, match="min_split_rows"):
        ReplicatedModel(lambda d: torch.nn.Identity(), ["cpu"], min_split_rows=1)
    with pytest.raises(ValueError, match="index"):
        ReplicatedModel(lambda d: torch.nn.Identity(), ["cuda"])
    rm = ReplicatedModel(lambda d: torch.nn.Identity(), "cpu")
    with pytest.raises(TypeError, match="leading row axis"):
        rm(3.0)


@pytest.mark.parametrize("tol", [0.0, 0.1])
def test_picard_rounds_and_samples_unchanged(tol):
    schedule = Schedule.linear()
    step = DDPMStep.from_schedule(schedule, 50)
    net = TinyEps()
    single = Denoiser(net, schedule, conditional=True)
    rm = ReplicatedModel(lambda d: copy.deepcopy(net).to(d), ["cpu", "cpu"])
    multi = Denoiser(rm, schedule, conditional=True, dtype=torch.float64, device="cpu")
    bank = NoiseBank(50, 6, 3, rng=7, dtype=torch.float64)
    a = sample_picard(single, step, shape=6, batch=3, noise=bank, window=16, tol=tol)
    b = sample_picard(multi, step, shape=6, batch=3, noise=bank, window=16, tol=tol)
    assert a.cost == b.cost and list(a.info["advances"]) == list(b.info["advances"])
    torch.testing.assert_close(b.sample, a.sample, rtol=0, atol=1e-12)
    small = int((b.info["window_lengths"] * 3 < 4).sum())   # rounds of ≤ 3 rows stay put
    assert rm.calls == b.cost.rounds and rm.split_calls == rm.calls - small > 0
    seq = sample_sequential(multi, step, shape=6, batch=3, noise=bank)
    if tol == 0.0:
        assert a.cost.rounds == 50
        torch.testing.assert_close(b.sample, seq.sample, rtol=0, atol=1e-12)
    rm.close()


def test_random_unet_through_adapter_on_two_replicas():
    diffusers = pytest.importorskip("diffusers")
    from parasample.diffusion.hf import from_diffusers

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
        norm_num_groups=8).eval().double()
    sch = diffusers.DDPMScheduler()
    single, step = from_diffusers(unet, sch, n_steps=10)
    with ReplicatedModel(lambda d: copy.deepcopy(unet).to(d), ["cpu", "cpu"]) as rm:
        multi, step2 = from_diffusers(rm, sch, n_steps=10)
        assert multi.dtype == torch.float64 and isinstance(step2, DDPMStep)
        bank = NoiseBank(10, (3, 16, 16), 2, rng=0, dtype=torch.float64)
        a = sample_picard(single, step, shape=(3, 16, 16), batch=2, noise=bank, window=5,
                          tol=0.1)
        b = sample_picard(multi, step2, shape=(3, 16, 16), batch=2, noise=bank, window=5,
                          tol=0.1)
        assert a.cost == b.cost and a.cost.rounds < 10
        torch.testing.assert_close(b.sample, a.sample, rtol=0, atol=1e-9)
        assert rm.split_calls > 0 and rm.rows_per_device[1] > 0
        assert multi.fn.unet_rows == a.cost.evaluations


def test_conditional_unet_kwargs_split():
    diffusers = pytest.importorskip("diffusers")
    from parasample.diffusion.hf import from_diffusers

    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        norm_num_groups=8, attention_head_dim=8).eval()
    g = torch.Generator().manual_seed(1)
    cond, uncond = torch.randn(2, 4, 32, generator=g), torch.randn(1, 4, 32, generator=g)
    sch = diffusers.DDPMScheduler()
    single, step = from_diffusers(unet, sch, n_steps=6, guidance_scale=3.0, cond=cond,
                                  uncond=uncond)
    with ReplicatedModel(lambda d: copy.deepcopy(unet).to(d), ["cpu", "cpu"]) as rm:
        multi, _ = from_diffusers(rm, sch, n_steps=6, guidance_scale=3.0, cond=cond,
                                  uncond=uncond)
        a = sample_picard(single, step, shape=(4, 8, 8), batch=2, rng=0, window=6, tol=0.0)
        b = sample_picard(multi, step, shape=(4, 8, 8), batch=2, rng=0, window=6, tol=0.0)
        assert a.cost == b.cost
        torch.testing.assert_close(b.sample, a.sample, rtol=0, atol=1e-4)
        assert rm.rows == 2 * a.cost.evaluations  # CFG doubles the UNet rows


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_replicas_match_single_device():
    n = torch.cuda.device_count()
    devices = [f"cuda:{i % n}" for i in range(2)]
    schedule = Schedule.linear()
    step = DDPMStep.from_schedule(schedule, 40)
    net = TinyEps(dtype=torch.float32)
    single = Denoiser(copy.deepcopy(net).to(devices[0]), schedule, conditional=True)
    with ReplicatedModel(lambda d: copy.deepcopy(net).to(d), devices) as rm:
        multi = Denoiser(rm, schedule, conditional=True, dtype=torch.float32, device=devices[0])
        a = sample_picard(single, step, shape=6, batch=4, rng=0, window=10, tol=0.1)
        b = sample_picard(multi, step, shape=6, batch=4, rng=0, window=10, tol=0.1)
        assert a.cost == b.cost
        torch.testing.assert_close(b.sample, a.sample, rtol=0, atol=1e-5)
