"""Hardening of the diffusion samplers against bad models and bad arguments.

- A model that returns NaN/inf from some step on (for every row or only for some rows of a
  batch) stops every sampler within the round that first meets it, with a NumericalError
  naming the step, its timestep and the batch rows.
- A model that writes into its inputs (x, t, sample_index, conditioning) cannot change the
  samples: every sampler, the diffusers adapter and ReplicatedModel hand it copies.
- A call that fails validation leaves the caller's numpy Generator untouched.
- Counts (batch, window, k, n_steps, …) go through one check: 3.0 is accepted, 2.5, booleans
  and negatives are refused.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from parasample.core import NumericalError  # noqa: E402
from parasample.diffusion import (  # noqa: E402
    DDIMStep, DDPMStep, Denoiser, NoiseBank, ReplicatedModel, Schedule, ring_gmm, sample_asd,
    sample_picard, sample_sequential, spaced_timesteps,
)
from parasample.diffusion.metrics import permutation_test  # noqa: E402

SCHED = Schedule.linear()
S = 40
STEP = DDPMStep.from_schedule(SCHED, S)
BAD = 15                                  # first step whose model output is non-finite
T_BAD = int(STEP.timesteps[BAD])
B = 4
SHAPE = (3,)

SAMPLERS = {
    "sequential": lambda m, step=STEP, **kw: sample_sequential(m, step, shape=SHAPE, **kw),
    "picard": lambda m, step=STEP, **kw: sample_picard(m, step, shape=SHAPE, window=8,
                                                       tol=0.1, **kw),
    "picard_tol0": lambda m, step=STEP, **kw: sample_picard(m, step, shape=SHAPE, window=8,
                                                            tol=0.0, **kw),
    "asd": lambda m, step=STEP, **kw: sample_asd(m, step, shape=SHAPE, k=8, **kw),
}


def _pure(x, t, sample_index):
    """A finite x0-prediction that depends on x, t and the sample index."""
    return 0.5 * x + 0.1 * sample_index[:, None].to(x.dtype) + 1e-4 * t[:, None].to(x.dtype)


# ------------------------------------------------------------------ item 5: non-finite output
@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("bad_rows", [None, (2,)], ids=["all-rows", "row-2"])
def test_non_finite_output_stops_within_one_round(name, bad_value, bad_rows):
    """The run stops in the first call that evaluates a bad row: the rows spent are at most
    those a finite run spends up to and including its first call touching step BAD."""

    def hits(t, sample_index):
        hit = t <= T_BAD
        if bad_rows is not None:
            hit &= torch.isin(sample_index, torch.as_tensor(bad_rows))
        return hit

    pure_calls, bad_calls = [], []

    def fn_pure(x, t, sample_index):
        pure_calls.append((x.shape[0], bool(hits(t, sample_index).any())))
        return _pure(x, t, sample_index)

    def fn_bad(x, t, sample_index):
        bad_calls.append(x.shape[0])
        out = _pure(x, t, sample_index)
        return torch.where(hits(t, sample_index)[:, None], torch.full_like(out, bad_value), out)

    run = SAMPLERS[name]
    run(Denoiser(fn_pure, SCHED, prediction="x0", conditional=True), batch=B, rng=7)
    first = next(i for i, (_, hit) in enumerate(pure_calls) if hit)
    bound = sum(n for n, _ in pure_calls[:first + 1])
    assert bound < sum(n for n, _ in pure_calls)            # the test has room to fail
    with pytest.raises(NumericalError) as info:
        run(Denoiser(fn_bad, SCHED, prediction="x0", conditional=True), batch=B, rng=7)
    msg = str(info.value)
    assert f"step {BAD} (timestep {T_BAD})" in msg, msg
    rows = "[0, 1, 2, 3]" if bad_rows is None else "[2]"
    assert f"batch rows {rows}" in msg, msg
    assert sum(bad_calls) <= bound, (sum(bad_calls), bound)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_non_finite_first_output_names_step_zero(name):
    m = Denoiser(lambda x, t: torch.full_like(x, float("nan")), SCHED, prediction="x0")
    calls = []
    m.fn = lambda x, t, _f=m.fn: (calls.append(x.shape[0]), _f(x, t))[1]
    with pytest.raises(NumericalError, match=r"step 0 \(timestep 975\).*batch rows \[0, 1\]"):
        SAMPLERS[name](m, batch=2, rng=0)
    assert sum(calls) <= 2 * 8 + 2                          # round 0 (and ASD's first round)


def test_clipped_infinite_output_is_not_an_error():
    """x̂0 clipping turns an infinite raw output into a finite x̂0: nothing non-finite reaches
    the chain, so the run completes (the check looks at what the sampler uses)."""
    m = Denoiser(lambda x, t: torch.full_like(x, float("inf")), SCHED, prediction="x0",
                 clip_x0=1.0)
    for name, run in SAMPLERS.items():
        res = run(m, batch=2, rng=0)
        assert torch.equal(res.sample, torch.ones_like(res.sample)), name


# ------------------------------------------------------------------ item 12: in-place models
class InPlace:
    """Computes the pure output, then scribbles over every input tensor it was given."""

    def __call__(self, x, t, sample_index):
        out = _pure(x, t, sample_index)
        x.mul_(-3.0).add_(7.0)
        t.fill_(0)
        sample_index.fill_(1)
        return out


class InPlaceModule(torch.nn.Module):
    def forward(self, x, t, sample_index):
        return InPlace()(x, t, sample_index)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_in_place_model_gives_the_pure_samples(name):
    pure = Denoiser(_pure, SCHED, prediction="x0", conditional=True)
    dirty = Denoiser(InPlace(), SCHED, prediction="x0", conditional=True)
    for batch in (1, B):
        ref = SAMPLERS[name](pure, batch=batch, rng=3)
        got = SAMPLERS[name](dirty, batch=batch, rng=3)
        assert torch.equal(ref.sample, got.sample), (name, batch)
        assert ref.cost == got.cost


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_in_place_replicas_give_the_pure_samples(name):
    pure = Denoiser(_pure, SCHED, prediction="x0", conditional=True)
    with ReplicatedModel(lambda d: InPlaceModule(), ["cpu", "cpu"], min_split_rows=2) as rep:
        dirty = Denoiser(rep, SCHED, prediction="x0", conditional=True, dtype=torch.float64)
        ref = SAMPLERS[name](pure, batch=B, rng=5)
        got = SAMPLERS[name](dirty, batch=B, rng=5)
    assert torch.equal(ref.sample, got.sample)


def test_replicated_model_leaves_its_inputs_alone():
    """Each replica writes into its own copies: the caller's x, its per-row and its shared
    arguments are unchanged, and no replica sees another's writes."""

    def factory(device):
        def replica(x, t, shared):
            out = x * 2.0 + t[:, None] + shared.sum()
            x.fill_(-1.0)
            t.fill_(0)
            shared.add_(100.0)
            return out
        return replica

    x = torch.arange(12.0, dtype=torch.float64).reshape(6, 2)
    t = torch.arange(6, dtype=torch.float64)
    shared = torch.ones(3, dtype=torch.float64)
    x0, t0, s0 = x.clone(), t.clone(), shared.clone()
    with ReplicatedModel(factory, ["cpu", "cpu", "cpu"], min_split_rows=2) as rep:
        out = rep(x, t, shared)
    assert torch.equal(x, x0) and torch.equal(t, t0) and torch.equal(shared, s0)
    assert torch.equal(out, x0 * 2.0 + t0[:, None] + 3.0)


def test_in_place_clip_callable_cannot_corrupt_timesteps():
    """The step caches its timestep tensor: a clip callable writing into t must not change
    the next run."""
    step = DDPMStep.from_schedule(SCHED, S)

    def clip(x0, t):
        t.fill_(0)
        return x0.clamp(-2.0, 2.0)

    pure = Denoiser(_pure, SCHED, prediction="x0", conditional=True,
                    clip_x0=lambda x0, t: x0.clamp(-2.0, 2.0))
    dirty = Denoiser(_pure, SCHED, prediction="x0", conditional=True, clip_x0=clip)
    ref = sample_sequential(pure, step, shape=SHAPE, batch=2, rng=1)
    for _ in range(2):
        got = sample_sequential(dirty, step, shape=SHAPE, batch=2, rng=1)
        assert torch.equal(ref.sample, got.sample)


class _FakeUNet(torch.nn.Module):
    """unet(x, t, encoder_hidden_states=c) with a float64 weight; optionally in-place."""

    def __init__(self, dirty: bool):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
        self.dirty = dirty

    def forward(self, x, t, encoder_hidden_states=None):
        rows = (-1,) + (1,) * (x.ndim - 1)
        c = encoder_hidden_states.mean(dim=(1, 2)).reshape(rows)
        out = self.w * x + 1e-4 * t.reshape(rows).to(x.dtype) + c
        if self.dirty:
            x.mul_(-2.0)
            t.fill_(3)
            encoder_hidden_states.add_(1.0)
        return out


@pytest.mark.parametrize("guidance", [None, 3.0])
@pytest.mark.parametrize("replicated", [False, True])
def test_in_place_unet_through_diffusers_adapter(guidance, replicated):
    diffusers = pytest.importorskip("diffusers")
    from parasample.diffusion.hf import from_diffusers

    sched = diffusers.DDPMScheduler(num_train_timesteps=1000)
    cond = torch.randn(1, 2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    uncond = torch.zeros(1, 2, 5, dtype=torch.float64)
    cond0, uncond0 = cond.clone(), uncond.clone()
    out = {}
    for dirty in (False, True):
        unet = (ReplicatedModel(lambda d, dirty=dirty: _FakeUNet(dirty), ["cpu", "cpu"],
                                min_split_rows=2) if replicated else _FakeUNet(dirty))
        model, step = from_diffusers(unet, sched, n_steps=12, cond=cond, uncond=uncond,
                                     guidance_scale=guidance)
        for name in ("sequential", "picard", "asd"):
            out[dirty, name] = SAMPLERS[name](model, step, batch=3, rng=2).sample
    for name in ("sequential", "picard", "asd"):
        assert torch.equal(out[False, name], out[True, name]), name
    assert torch.equal(cond, cond0) and torch.equal(uncond, uncond0)


# ------------------------------------------------------------------ item 14: caller's Generator
def _rng_state(g: np.random.Generator):
    return copy.deepcopy(g.bit_generator.state), g.bit_generator.seed_seq.n_children_spawned


RING = ring_gmm(SCHED)
SMALL = DDPMStep.from_schedule(SCHED, 10)

BAD_CALLS = {
    "sequential-batch": lambda rng: sample_sequential(RING, SMALL, shape=(2,), batch=0, rng=rng),
    "sequential-dtype": lambda rng: sample_sequential(RING, SMALL, shape=(2,), rng=rng,
                                                      dtype=torch.float16),
    "sequential-shape": lambda rng: sample_sequential(RING, SMALL, shape=(2.5,), rng=rng),
    "picard-window": lambda rng: sample_picard(RING, SMALL, shape=(2,), window=0, rng=rng),
    "picard-window-2.5": lambda rng: sample_picard(RING, SMALL, shape=(2,), window=2.5, rng=rng),
    "picard-tol": lambda rng: sample_picard(RING, SMALL, shape=(2,), tol=-1.0, rng=rng),
    "picard-tol-nan": lambda rng: sample_picard(RING, SMALL, shape=(2,), tol=float("nan"),
                                                rng=rng),
    "asd-k": lambda rng: sample_asd(RING, SMALL, shape=(2,), k=0, rng=rng),
    "asd-k-2.5": lambda rng: sample_asd(RING, SMALL, shape=(2,), k=2.5, rng=rng),
    "asd-k_min": lambda rng: sample_asd(RING, SMALL, shape=(2,), k_min=0, rng=rng),
    "asd-adaptive": lambda rng: sample_asd(RING, SMALL, shape=(2,), k=100, adaptive=True,
                                           rng=rng),
    "asd-ddim": lambda rng: sample_asd(RING, DDIMStep.from_schedule(SCHED, 10), shape=(2,),
                                       rng=rng),
    "noisebank-batch": lambda rng: NoiseBank(10, (2,), 2.5, rng=rng),
    "noisebank-dtype": lambda rng: NoiseBank(10, (2,), 1, rng=rng, dtype=torch.float16),
    "gmm-sample_data": lambda rng: RING.sample_data(2.5, rng=rng),
    "permutation-test": lambda rng: permutation_test(np.zeros((3, 2)), np.ones((3, 2)),
                                                     n_permutations=0, rng=rng),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_failed_validation_leaves_the_generator_alone(case):
    rng = np.random.default_rng(11)
    before = _rng_state(rng)
    with pytest.raises((ValueError, TypeError)):
        BAD_CALLS[case](rng)
    assert _rng_state(rng) == before


BAD_THEN_GOOD = {
    "picard": (lambda rng: sample_picard(RING, SMALL, shape=(2,), window=0, rng=rng),
               lambda rng: sample_picard(RING, SMALL, shape=(2,), batch=2, rng=rng)),
    "asd": (lambda rng: sample_asd(RING, SMALL, shape=(2,), k=0, rng=rng),
            lambda rng: sample_asd(RING, SMALL, shape=(2,), batch=2, rng=rng)),
}


@pytest.mark.parametrize("name", list(BAD_THEN_GOOD))
def test_failed_call_does_not_change_the_next_sample(name):
    bad, good = BAD_THEN_GOOD[name]
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError):
        bad(rng)
    assert torch.equal(good(rng).sample, good(np.random.default_rng(4)).sample)


# ------------------------------------------------------------------ item 11: counts
def _digit_grid(tmp_path, ncols):
    pytest.importorskip("matplotlib")
    from parasample.diffusion.digits import save_digit_grid

    save_digit_grid(np.zeros((4, 64)), tmp_path / "g.png", ncols=ncols)


def _pipeline(**kw):
    from parasample.diffusion.hf import pipeline_sample

    return pipeline_sample(object(), "a prompt", **kw)


COUNTS = {
    "NoiseBank n_steps": lambda v, p: NoiseBank(v, (2,), 1, rng=0),
    "NoiseBank batch": lambda v, p: NoiseBank(5, (2,), v, rng=0),
    "NoiseBank shape": lambda v, p: NoiseBank(5, (v,), 1, rng=0),
    "sequential batch": lambda v, p: sample_sequential(RING, SMALL, shape=(2,), batch=v, rng=0),
    "picard window": lambda v, p: sample_picard(RING, SMALL, shape=(2,), window=v, rng=0),
    "asd k": lambda v, p: sample_asd(RING, SMALL, shape=(2,), k=v, rng=0),
    "asd k_min": lambda v, p: sample_asd(RING, SMALL, shape=(2,), k_min=v, rng=0),
    "asd k_max": lambda v, p: sample_asd(RING, SMALL, shape=(2,), k_max=v, rng=0),
    "Schedule n_train": lambda v, p: Schedule.linear(n_train=v),
    "spaced n_steps": lambda v, p: spaced_timesteps(1000, v),
    "spaced offset": lambda v, p: spaced_timesteps(1000, 10, offset=v),
    "sample_data n": lambda v, p: RING.sample_data(v, rng=0),
    "ring_gmm n_modes": lambda v, p: ring_gmm(SCHED, n_modes=v),
    "permutation_test": lambda v, p: permutation_test(np.zeros((3, 2)), np.ones((3, 2)),
                                                      n_permutations=v, rng=0),
    "ReplicatedModel min_split_rows": lambda v, p: ReplicatedModel(lambda d: _pure, ["cpu"],
                                                                   min_split_rows=v),
    "save_digit_grid ncols": lambda v, p: _digit_grid(p, v),
}


def _diffusers_counts():
    try:
        import diffusers
    except ImportError:
        return {}
    from parasample.diffusion.hf import from_diffusers

    unet = _FakeUNet(False)
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000)
    return {
        "from_diffusers n_steps": lambda v, p: from_diffusers(unet, sched, n_steps=v),
    }


COUNTS.update(_diffusers_counts())


@pytest.mark.parametrize("case", list(COUNTS))
@pytest.mark.parametrize("bad", [2.5, True, -3, np.float64(2.5), "3"])
def test_non_integer_counts_are_refused(case, bad, tmp_path):
    with pytest.raises(ValueError):
        COUNTS[case](bad, tmp_path)


@pytest.mark.parametrize("case", list(COUNTS))
def test_integral_float_counts_are_accepted(case, tmp_path):
    COUNTS[case](3.0, tmp_path)


@pytest.mark.parametrize("kw", [dict(num_images_per_prompt=2.5), dict(height=64.5),
                                dict(width=True), dict(num_images_per_prompt=0)])
def test_pipeline_counts_checked_before_any_work(kw):
    pytest.importorskip("diffusers")
    with pytest.raises(ValueError):
        _pipeline(**kw)


@pytest.mark.parametrize("which", ["x_T", "z", "uniforms"])
def test_hand_made_noise_must_be_finite(which):
    noise = {"x_T": torch.zeros(2, 3), "z": torch.zeros(4, 2, 3), "uniforms": torch.zeros(4, 2)}
    noise[which].view(-1)[1] = float("nan")
    with pytest.raises(ValueError, match=which):
        NoiseBank.from_tensors(noise["x_T"], noise["z"], noise["uniforms"])
