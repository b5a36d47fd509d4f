"""diffusers adapter (spec §6, §8): random UNets built from configs, no downloads.

Parity strategy. A random UNet makes the DDIM/DDPM map expansive (about 1/√ᾱ_{t_0} ≈ 70× from
t = 900 for the linear schedule), so 1-ulp float32 differences in coefficients or in
batch-composition-dependent kernels grow to ~1e-4 over a trajectory. Hence:
- single steps along diffusers' own trajectory are compared in float32, to 1e-5;
- whole trajectories (sequential and Picard at tol = 0 against a plain loop over
  ``scheduler.step``) are compared in float64 (UNet ``.double()``, scheduler ᾱ as float64),
  to 1e-9 — a formula mismatch anywhere would show at ~1e-3 or more.
DDPM noise: the loop's ``randn_tensor`` (diffusers.schedulers.scheduling_ddpm) is monkeypatched
to hand out the sampler's NoiseBank normals z_0, z_1, … in order.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from diffusers import (  # noqa: E402
    DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler, UNet2DConditionModel, UNet2DModel,
)

from parasample.diffusion import (  # noqa: E402
    DDIMStep, DDPMStep, NoiseBank, sample_picard, sample_sequential,
)
from parasample.diffusion.hf import (  # noqa: E402
    DiffusersModelFn, DynamicThreshold, from_diffusers, pipeline_sample,
)

SHAPE = (3, 16, 16)
B = 2


def _unet(out_channels: int = 3) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=16, in_channels=3, out_channels=out_channels, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
        norm_num_groups=8).eval()


@pytest.fixture(scope="module")
def unet32():
    return _unet()


@pytest.fixture(scope="module")
def unet64(unet32):
    return copy.deepcopy(unet32).double()


@pytest.fixture(scope="module")
def cond_unet():
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        norm_num_groups=8, attention_head_dim=8).eval()


def _diffusers_loop(unet, scheduler, n_steps, bank, monkeypatch, *, eta=0.0, call=None):
    """x_T → … with diffusers' own ``scheduler.step`` (batch-size-B UNet calls)."""
    sch = copy.deepcopy(scheduler)
    sch.set_timesteps(n_steps)
    dt = bank.dtype
    sch.alphas_cumprod = sch.alphas_cumprod.to(dt)
    if hasattr(sch, "final_alpha_cumprod"):
        sch.final_alpha_cumprod = sch.final_alpha_cumprod.to(dt)
    zs = iter([bank.z(i) for i in range(n_steps)])
    monkeypatch.setattr(diffusers.schedulers.scheduling_ddpm, "randn_tensor",
                        lambda shape, generator=None, device=None, dtype=None, layout=None:
                        next(zs).to(dtype))
    x = bank.x_T.clone()
    with torch.inference_mode():
        for i, t in enumerate(sch.timesteps):
            out = unet(x, t).sample if call is None else call(x, t)
            if isinstance(sch, DDIMScheduler):
                x = sch.step(out, t, x, eta=eta,
                             variance_noise=bank.z(i) if eta > 0 else None).prev_sample
            else:
                x = sch.step(out, t, x).prev_sample
    return x


def _check_parity(unet, scheduler, monkeypatch, *, n_steps=10, window=4, eta=0.0, rng=0,
                  atol=1e-9, **kw):
    model, step = from_diffusers(unet, scheduler, n_steps=n_steps, eta=eta, **kw)
    bank = NoiseBank(n_steps, SHAPE, B, rng=rng, dtype=model.dtype)
    seq = sample_sequential(model, step, shape=SHAPE, batch=B, noise=bank)
    par = sample_picard(model, step, shape=SHAPE, batch=B, noise=bank, window=window, tol=0.0)
    ref = _diffusers_loop(unet, scheduler, n_steps, bank, monkeypatch, eta=eta)
    assert seq.cost.rounds == n_steps and par.cost.rounds == n_steps
    assert float((seq.sample - ref).abs().max()) <= atol
    assert float((par.sample - ref).abs().max()) <= atol
    assert float(ref.abs().max()) > 0.1  # not a degenerate all-zero comparison
    return model, step, seq


# --------------------------------------------------------------------------- schedule, grid
def test_schedule_grid_copied_and_scheduler_untouched(unet32):
    sch = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                        steps_offset=1)
    model, step = from_diffusers(unet32, sch, n_steps=20)
    assert sch.num_inference_steps is None  # set_timesteps ran on a copy
    np.testing.assert_array_equal(model.schedule.alpha_bar,
                                  sch.alphas_cumprod.double().numpy())
    ref = copy.deepcopy(sch)
    ref.set_timesteps(20)
    np.testing.assert_array_equal(step.timesteps, ref.timesteps.numpy())
    assert step.timesteps[0] == 951 and step.timesteps[-1] == 1  # leading, offset 1
    assert isinstance(step, DDPMStep) and step.variance == "fixed_small"
    assert step.grid.final_alpha_bar == 1.0
    assert model.dtype == torch.float32 and model.prediction == "epsilon"
    assert model.clip_x0 == 1.0  # DDPMScheduler defaults to clip_sample=True
    assert isinstance(model.fn, DiffusersModelFn) and not model.conditional


def test_ddim_final_alpha_bar_and_raw_eps(unet32):
    sch = DDIMScheduler(set_alpha_to_one=False, steps_offset=1, clip_sample=False)
    model, step = from_diffusers(unet32, sch, n_steps=10)
    assert isinstance(step, DDIMStep) and step.eta == 0.0 and step.raw_eps
    assert step.grid.final_alpha_bar == float(sch.alphas_cumprod[0])
    assert model.clip_x0 is None
    _, step = from_diffusers(unet32, DDIMScheduler(set_alpha_to_one=True), n_steps=10,
                             use_clipped_model_output=True, eta=0.5)
    assert step.grid.final_alpha_bar == 1.0 and not step.raw_eps and step.eta == 0.5


def test_trailing_grid_reads_prev_timestep_from_list(unet32):
    sch = DDIMScheduler(timestep_spacing="trailing")
    _, step = from_diffusers(unet32, sch, n_steps=13)
    assert list(step.timesteps[:3]) == [999, 922, 845]
    assert step.grid.prev_timestep(999) == 922  # diffusers' DDIM stride rule gives 923
    assert 999 - 1000 // 13 == 923


# --------------------------------------------------------------------------- parity
def test_single_steps_match_diffusers_float32(unet32, monkeypatch):
    """Each step, fed diffusers' own state, matches ``scheduler.step`` in float32 to 1e-5."""
    S = 10
    current = {}
    monkeypatch.setattr(diffusers.schedulers.scheduling_ddpm, "randn_tensor",
                        lambda shape, generator=None, device=None, dtype=None, layout=None:
                        current["z"].to(dtype))
    for sch in (DDIMScheduler(), DDPMScheduler()):
        model, step = from_diffusers(unet32, sch, n_steps=S)
        ref = copy.deepcopy(sch)
        ref.set_timesteps(S)
        bank = NoiseBank(S, SHAPE, B, rng=1, dtype=torch.float32)
        x = bank.x_T.clone()
        ts = step.timestep_tensor("cpu")
        with torch.inference_mode():
            for i, t in enumerate(ref.timesteps):
                current["z"] = z = bank.z(i)
                want = ref.step(unet32(x, t).sample, t, x).prev_sample
                x0, eps = model.predict(x, ts[i].expand(B), torch.arange(B))
                got = step.advance(i, x, x0, None if step.is_ode else z, eps)
                assert float((got - want).abs().max()) <= 1e-5, (type(sch).__name__, i)
                x = want


def test_ddim_sequential_and_picard_match_diffusers(unet64, monkeypatch):
    # default DDIMScheduler: leading spacing (stride and list agree), clip_sample=True
    _check_parity(unet64, DDIMScheduler(), monkeypatch)


def test_ddim_sd_config_and_eta(unet64, monkeypatch):
    sch = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                        clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    _check_parity(unet64, sch, monkeypatch, n_steps=8, window=8)
    _check_parity(unet64, sch, monkeypatch, n_steps=8, window=3, eta=0.5, rng=3)


def test_ddpm_sequential_and_picard_match_diffusers(unet64, monkeypatch):
    _check_parity(unet64, DDPMScheduler(), monkeypatch)


def test_ddpm_trailing_parity_prev_from_list(unet64, monkeypatch):
    # DDPMScheduler reads the previous timestep from its list too: S = 13 does not divide T
    sch = DDPMScheduler(timestep_spacing="trailing", clip_sample=False)
    _, step, _ = _check_parity(unet64, sch, monkeypatch, n_steps=13, window=5)
    assert step.grid.prev_timestep(999) == 922


def test_v_prediction_and_sample_prediction(unet64, monkeypatch):
    model, _, _ = _check_parity(
        unet64, DDIMScheduler(prediction_type="v_prediction", clip_sample=False), monkeypatch,
        n_steps=8)
    assert model.prediction == "v" and model.clip_x0 is None
    model, _, _ = _check_parity(unet64, DDPMScheduler(prediction_type="sample"), monkeypatch,
                                n_steps=8)
    assert model.prediction == "x0"


def test_clip_sample_range_and_thresholding(unet64, monkeypatch):
    model, _, _ = _check_parity(unet64, DDIMScheduler(clip_sample_range=0.5), monkeypatch,
                                n_steps=8)
    assert model.clip_x0 == 0.5
    sch = DDPMScheduler(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=1.5)
    model, _, _ = _check_parity(unet64, sch, monkeypatch, n_steps=8)
    assert isinstance(model.clip_x0, DynamicThreshold)
    x0 = 3 * torch.randn(5, *SHAPE, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.clip_x0(x0, None), sch._threshold_sample(x0),
                               rtol=0, atol=0)
    h = model.clip_x0(x0.half(), None)
    assert h.dtype == torch.float16


def test_tol_picard_close_to_sequential(unet32):
    model, step = from_diffusers(unet32, DDPMScheduler(), n_steps=20)
    seq = sample_sequential(model, step, shape=SHAPE, batch=B, rng=5)
    par = sample_picard(model, step, shape=SHAPE, batch=B, rng=5, window=8, tol=1e-3)
    assert par.cost.rounds < 20
    assert float((par.sample - seq.sample).abs().max()) < 1e-2


# --------------------------------------------------------------------------- variance types
def test_variance_types(unet32, unet64, monkeypatch):
    _, step = from_diffusers(unet32, DDPMScheduler(variance_type="fixed_small_log"), n_steps=10)
    assert step.variance == "fixed_small"
    with pytest.raises(ValueError, match="fixed_large_log"):
        from_diffusers(unet32, DDPMScheduler(variance_type="fixed_large_log"), n_steps=10)
    with pytest.raises(ValueError, match="DDIM"):
        from_diffusers(unet32, DDIMScheduler(), n_steps=10, variance="fixed_large")
    # fixed_large: parity with diffusers when the last timestep is 0 (offset 0)
    _, step, _ = _check_parity(unet64, DDPMScheduler(variance_type="fixed_large"), monkeypatch,
                               n_steps=8)
    assert step.variance == "fixed_large"


def test_learned_variance_raises_and_override_uses_first_half():
    unet6 = _unet(out_channels=6)
    for vt in ("learned", "learned_range"):
        with pytest.raises(ValueError, match='variance="fixed_small"'):
            from_diffusers(unet6, DDPMScheduler(variance_type=vt), n_steps=10)
    model, step = from_diffusers(unet6, DDPMScheduler(variance_type="learned_range"),
                                 n_steps=10, variance="fixed_small")
    assert step.variance == "fixed_small"
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([900, 500, 10])
    with torch.inference_mode():
        torch.testing.assert_close(model.raw(x, t), unet6(x, t).sample[:, :3], rtol=0, atol=0)
        res = sample_sequential(model, step, shape=SHAPE, batch=1, rng=0)
    assert res.sample.shape == (1,) + SHAPE


def test_unsupported_scheduler_and_bad_args(unet32):
    with pytest.raises(ValueError, match="from_config"):
        from_diffusers(unet32, EulerDiscreteScheduler(), n_steps=10)
    with pytest.raises(ValueError, match="n_steps"):
        from_diffusers(unet32, DDPMScheduler(), n_steps=0)
    with pytest.raises(ValueError, match="uncond"):
        from_diffusers(unet32, DDPMScheduler(), n_steps=5, guidance_scale=3.0,
                       cond=torch.zeros(1, 4, 32))


# --------------------------------------------------------------------------- conditioning
def test_conditional_and_classifier_free_guidance(cond_unet):
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(2, 4, 32, generator=g)
    uncond = torch.randn(1, 4, 32, generator=g)
    w = 4.0
    sch = DDIMScheduler(clip_sample=False)
    x = torch.randn(4, 4, 8, 8, generator=g)
    t = torch.tensor([900, 900, 400, 400])
    sidx = torch.tensor([0, 1, 0, 1])

    plain, _ = from_diffusers(cond_unet, sch, n_steps=5, cond=cond)
    assert plain.conditional
    with torch.inference_mode():
        want_c = cond_unet(x, t, encoder_hidden_states=cond[sidx]).sample
        want_u = cond_unet(x, t, encoder_hidden_states=uncond.expand(4, 4, 32)).sample
        torch.testing.assert_close(plain.raw(x, t, sidx), want_c, rtol=0, atol=1e-6)
        perm = torch.tensor([1, 0, 1, 0])
        torch.testing.assert_close(plain.raw(x, t, perm),
                                   cond_unet(x, t, encoder_hidden_states=cond[perm]).sample,
                                   rtol=0, atol=1e-6)

    model, step = from_diffusers(cond_unet, sch, n_steps=5, guidance_scale=w, cond=cond,
                                 uncond=uncond)
    with torch.inference_mode():
        got = model.raw(x, t, sidx)
    torch.testing.assert_close(got, want_u + w * (want_c - want_u), rtol=0, atol=1e-5)
    model.fn.reset()
    res = sample_sequential(model, step, shape=(4, 8, 8), batch=2, rng=0)
    assert res.cost.rounds == 5 and res.cost.evaluations == 10   # a guided row counts once
    assert model.fn.unet_calls == 5 and model.fn.unet_rows == 20  # but runs two UNet rows
    model.fn.reset()
    par = sample_picard(model, step, shape=(4, 8, 8), batch=2, rng=0, window=5, tol=0.0)
    assert model.fn.unet_rows == 2 * par.cost.evaluations
    torch.testing.assert_close(par.sample, res.sample, rtol=0, atol=1e-4)

    one, _ = from_diffusers(cond_unet, sch, n_steps=5, guidance_scale=1.0, cond=cond,
                            uncond=uncond)
    assert not one.fn.guided  # w = 1: u + (c − u) = c, no unconditional rows


def test_fp16_unet_runs_float32_state(unet32):
    half = copy.deepcopy(unet32).half()
    model, step = from_diffusers(half, DDIMScheduler(), n_steps=6)
    assert model.dtype == torch.float32 and model.fn.unet_dtype == torch.float16
    ref_model, _ = from_diffusers(unet32, DDIMScheduler(), n_steps=6)
    res = sample_sequential(model, step, shape=SHAPE, batch=1, rng=0)
    ref = sample_sequential(ref_model, step, shape=SHAPE, batch=1, rng=0)
    assert res.sample.dtype == torch.float32
    assert bool(torch.isfinite(res.sample).all())
    assert float((res.sample - ref.sample).abs().max()) < 0.1


# --------------------------------------------------------------------------- pipeline
def _tiny_sd_pipeline(tmp_path):
    transformers = pytest.importorskip("transformers")
    import json

    from diffusers import AutoencoderKL, StableDiffusionPipeline

    vocab = {}
    for suffix in ("", "</w>"):
        for c in "abcdefghijklmnopqrstuvwxyz":
            vocab[c + suffix] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"),
                                     model_max_length=8)
    torch.manual_seed(0)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=8, bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"])).eval()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        norm_num_groups=8, attention_head_dim=8).eval()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
        norm_num_groups=8, layers_per_block=1, sample_size=16).eval()
    sch = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                        clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=sch, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_pipeline_sample_matches_stable_diffusion_pipeline(tmp_path):
    pipe = _tiny_sd_pipeline(tmp_path)
    prompts = ["a cat", "dog"]
    S, w = 6, 5.0
    res = pipeline_sample(pipe, prompts, sampler="sequential", n_steps=S, guidance_scale=w,
                          rng=0, decode=False)
    assert res.sample.shape == (2, 4, 8, 8)
    assert res.cost.rounds == S and res.cost.evaluations == 2 * S
    assert res.info["unet_rows"] == 4 * S and res.info["sampler"] == "sequential"
    x_T = NoiseBank(S, (4, 8, 8), 2, rng=0, dtype=torch.float32).x_T
    ref = pipe(prompts, num_inference_steps=S, guidance_scale=w, latents=x_T.clone(),
               output_type="latent").images
    # float32 through an expansive random net (|latents| ~ 20): ~6e-6 measured, not bitwise
    assert float((res.sample - ref).abs().max()) < 1e-4
    assert float(ref.abs().max()) > 0.1

    par = pipeline_sample(pipe, prompts, sampler="picard", n_steps=S, guidance_scale=w, rng=0,
                          window=3, tol=0.0)
    assert par.sample.shape == (2, 3, 16, 16)
    assert float(par.sample.min()) >= 0.0 and float(par.sample.max()) <= 1.0
    assert par.cost.rounds == S
    torch.testing.assert_close(par.info["latents"], res.sample, rtol=0, atol=1e-4)

    with pytest.raises(ValueError, match="sampler"):
        pipeline_sample(pipe, "a", sampler="euler", n_steps=2)
    with pytest.raises(ValueError, match="from_config"):
        pipeline_sample(pipe, "a", n_steps=2, scheduler=EulerDiscreteScheduler())

    try:
        from parasample.diffusion.asd import sample_asd  # noqa: F401
    except ImportError:
        return
    asd = pipeline_sample(pipe, "a cat", sampler="asd", n_steps=S, guidance_scale=w, rng=0,
                          k=4, scheduler=DDPMScheduler.from_config(pipe.scheduler.config),
                          decode=False)
    assert asd.sample.shape == (1, 4, 8, 8) and asd.cost.rounds <= S + 1
