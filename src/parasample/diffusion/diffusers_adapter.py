"""Hugging Face diffusers models and schedulers as parasample denoisers and steps.

:func:`from_diffusers` turns a diffusers UNet (``UNet2DModel``, ``UNet2DConditionModel`` or
any module called as ``unet(x, t[, encoder_hidden_states=...])``) plus a ``DDPMScheduler`` /
``DDIMScheduler`` (or their ``*ParallelScheduler`` twins) into a
:class:`~parasample.diffusion.model.Denoiser` and a :class:`~parasample.diffusion.steps.Step`,
usable by every sampler (:func:`~parasample.diffusion.sequential.sample_sequential`,
:func:`~parasample.diffusion.picard.sample_picard`, ASD):

- **Schedule:** ``scheduler.alphas_cumprod`` is copied (float32 → float64), not recomputed.
- **Grid:** ``set_timesteps(n_steps)`` on a *copy* of the scheduler (the caller's is left
  alone), whose ``timesteps`` become a custom :class:`~parasample.diffusion.schedules.TimeGrid`.
  This inherits ``timestep_spacing`` and ``steps_offset``; the previous timestep is always read
  from the list. Final ᾱ: 1 for DDPM; for DDIM 1 if ``set_alpha_to_one`` else ᾱ[0].
- **Prediction types:** ``epsilon`` → ε, ``sample`` → x0, ``v_prediction`` → v.
- **x̂0 post-processing** lives in the denoiser, as the model contract requires: ``thresholding``
  (dynamic thresholding, :class:`DynamicThreshold`, exactly diffusers' ``_threshold_sample``)
  takes precedence over ``clip_sample`` (clamp to ±``clip_sample_range``), as in diffusers.
- **DDPM variance types:** ``fixed_small`` and ``fixed_small_log`` → ``DDPMStep("fixed_small")``
  (the log form is the same σ); ``fixed_large`` → ``DDPMStep("fixed_large")``, which
  sequential and Picard sampling support but ASD (``fixed_small`` only) does not;
  ``learned`` / ``learned_range`` raise, because the noise would depend on the model: pass
  ``variance="fixed_small"`` to sample with the fixed posterior variance instead, using the
  first half of the output channels as the prediction. ``fixed_large_log`` raises (diffusers
  itself takes the square root of a log-variance there).
- **DDIM:** ``DDIMStep(eta, raw_eps=not use_clipped_model_output)``. diffusers' ``step`` keeps
  the model's own ε̂ unless ``use_clipped_model_output=True``; this matters only when clipping
  or thresholding is active.
- **Conditioning:** ``cond[N_cond, …]`` (e.g. text embeddings, one row per sample, or a single
  row shared by all) makes the denoiser conditional; the UNet is called with
  ``encoder_hidden_states=cond[sample_index]``.
- **Classifier-free guidance** (``guidance_scale`` w ≠ 1 and ``uncond``): unconditional and
  conditional rows are stacked into **one** UNet call of 2N rows and combined as
  u + w·(c − u). A guided row counts as **one** evaluation in the sampler's ``Cost``; the UNet
  rows actually run are counted by the wrapper, ``denoiser.fn.unet_rows`` /
  ``denoiser.fn.unet_calls`` (:func:`pipeline_sample` copies them into ``info``).
- **Inputs are copies:** the UNet gets its own copies of the rows, timesteps and conditioning
  (a shared ``cond`` row is copied out per row), so a UNet that writes into its inputs cannot
  change the sampler's state or ``cond``.
- **fp16/bf16 UNets:** the sampler state is float32; rows are cast to the UNet's dtype for the
  call only, and the output is cast up before guidance, conversions and steps.

Parity with diffusers (tested): with the same x_T and z_i, sequential and ``tol = 0`` Picard
runs through the adapter reproduce a plain loop over diffusers' own ``scheduler.step`` to
float32 rounding. Known differences, all on purpose:

- diffusers' DDIM ``step`` computes the previous timestep with the stride t − ⌊T/S⌋ (the
  *stride bug*); we read it from the list. They agree for ``leading`` spacing and
  whenever S divides T, not e.g. for ``trailing`` with S = 13.
- DDPM ``fixed_large`` with a last timestep > 0 (``steps_offset = 1``): diffusers adds noise of
  variance 1 − ᾱ[t_last] at the last step; our last step returns x̂0 exactly.
- diffusers ``DDPMScheduler`` clamps the posterior variance at 1e-20 (std 1e-10) where ours is
  exactly 0 (last step).
- Guidance is combined in float32, diffusers pipelines combine in the UNet's dtype.

:func:`pipeline_sample` runs a Stable-Diffusion-like pipeline (``pipe.encode_prompt``,
``pipe.unet``, ``pipe.scheduler``, ``pipe.vae``) with a parasample sampler. It is tested on a
tiny randomly initialised pipeline built from configs, never on real weights (no downloads).

diffusers itself is imported lazily (extra ``hf``); nothing here downloads anything.
"""

from __future__ import annotations

import copy
import math
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..core import SampleResult, as_count
from ..core.errors import require
from ..core.rng import RngLike
from .model import Denoiser, as_output_tensor
from .schedules import Schedule, TimeGrid
from .steps import DDIMStep, DDPMStep, Step

__all__ = ["from_diffusers", "pipeline_sample", "DiffusersModelFn", "DynamicThreshold",
           "PREDICTION_TYPES", "SAMPLERS"]

#: diffusers ``prediction_type`` → parasample ``Denoiser`` prediction.
PREDICTION_TYPES = {"epsilon": "epsilon", "sample": "x0", "v_prediction": "v"}

#: samplers accepted by :func:`pipeline_sample`.
SAMPLERS = ("picard", "asd", "sequential")

_LEARNED = ("learned", "learned_range")
# torch.quantile refuses inputs above 2**24 elements: threshold in row chunks below that.
_QUANTILE_MAX = 2 ** 24


# --------------------------------------------------------------------------- helpers
def _scheduler_kind(scheduler) -> str:
    """``"ddpm"`` or ``"ddim"`` for the supported diffusers schedulers; ValueError otherwise."""
    diffusers = require("diffusers", "hf")
    for kind, names in (("ddpm", ("DDPMScheduler", "DDPMParallelScheduler")),
                        ("ddim", ("DDIMScheduler", "DDIMParallelScheduler"))):
        for name in names:
            cls = getattr(diffusers, name, None)
            if cls is not None and isinstance(scheduler, cls):
                return kind
    raise ValueError(
        f"unsupported scheduler {type(scheduler).__name__}: parasample's samplers need DDPM or "
        "DDIM semantics; convert it with DDPMScheduler.from_config(scheduler.config) or "
        "DDIMScheduler.from_config(scheduler.config)")


def _model_dtype_device(unet):
    """(dtype, device) of a UNet: its first parameter for an nn.Module, else its ``dtype`` and
    ``device`` attributes (e.g. a :class:`~parasample.diffusion.multi_device.ReplicatedModel`)."""
    if isinstance(unet, torch.nn.Module):
        for p in unet.parameters():
            return p.dtype, p.device
    dtype = getattr(unet, "dtype", None)
    device = getattr(unet, "device", None)
    if not isinstance(dtype, torch.dtype):
        dtype = torch.float32
    return dtype, torch.device(device if device is not None else "cpu")


def _model_channels(unet):
    """(in_channels, out_channels) from ``unet.config`` when present, else (None, None)."""
    cfg = getattr(unet, "config", None)
    if cfg is None:
        return None, None
    get = cfg.get if hasattr(cfg, "get") else (lambda k, d=None: getattr(cfg, k, d))
    return get("in_channels", None), get("out_channels", None)


class DynamicThreshold:
    """Dynamic thresholding of x̂0 (Imagen; diffusers' ``_threshold_sample``), a ``clip_x0``
    callable ``post(x0_hat, t) -> x0_hat``.

    Per row: s = clamp(quantile(|x̂0|, ``ratio``), 1, ``max_value``), then
    x̂0 ← clamp(x̂0, −s, s)/s.
    Computed in float32 or float64 (half inputs are cast up) and returned in the input dtype.
    Cost O(N·D log D).
    """

    def __init__(self, ratio: float = 0.995, max_value: float = 1.0):
        ratio, max_value = float(ratio), float(max_value)
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio must lie in [0, 1], got {ratio!r}")
        if not (max_value > 0.0 and math.isfinite(max_value)):
            raise ValueError(f"max_value must be positive and finite, got {max_value!r}")
        self.ratio = ratio
        self.max_value = max_value

    def __repr__(self) -> str:
        return f"DynamicThreshold(ratio={self.ratio:g}, max_value={self.max_value:g})"

    def __call__(self, x0: torch.Tensor, t: Optional[torch.Tensor] = None) -> torch.Tensor:
        dtype = x0.dtype
        flat = x0 if dtype in (torch.float32, torch.float64) else x0.float()
        n = flat.shape[0]
        flat = flat.reshape(n, -1)
        per = max(1, _QUANTILE_MAX // max(1, flat.shape[1]))
        qs = [torch.quantile(part.abs(), self.ratio, dim=1) for part in flat.split(per)]
        s = torch.clamp(torch.cat(qs), min=1.0, max=self.max_value).unsqueeze(1)
        out = torch.clamp(flat, -s, s) / s
        return out.reshape(x0.shape).to(dtype)


# --------------------------------------------------------------------------- model wrapper
class DiffusersModelFn:
    """The batch-first ``fn`` of a :class:`~parasample.diffusion.model.Denoiser` built from a
    diffusers UNet (made by :func:`from_diffusers`; rarely constructed directly).

    Call: ``fn(x[N, C, …], t: Long[N])`` or, when conditional, ``fn(x, t, sample_index)``.
    Rows are cast to the UNet's dtype and device for the call; the output (first C channels
    when the UNet emits 2C, i.e. a learned-variance UNet) is returned in
    promote(UNet dtype, float32). With guidance, the 2N-row call's halves u and c are combined
    as u + w·(c − u).

    Counters: ``unet_calls`` (UNet forward passes) and ``unet_rows`` (rows they ran: 2N per
    guided call of N rows); ``reset()`` zeroes them.
    """

    def __init__(self, unet, *, cond: Optional[torch.Tensor] = None,
                 uncond: Optional[torch.Tensor] = None, guidance_scale: Optional[float] = None,
                 split_channels: bool = False):
        self.unet = unet
        self.unet_dtype, self.unet_device = _model_dtype_device(unet)
        self.cond = None if cond is None else cond.to(device=self.unet_device,
                                                      dtype=self._cond_dtype(cond))
        self.uncond = None if uncond is None else uncond.to(device=self.unet_device,
                                                            dtype=self._cond_dtype(uncond))
        self.guidance_scale = None if guidance_scale is None else float(guidance_scale)
        self.split_channels = bool(split_channels)
        self.unet_calls = 0
        self.unet_rows = 0

    def _cond_dtype(self, c: torch.Tensor) -> torch.dtype:
        return self.unet_dtype if c.is_floating_point() else c.dtype

    @property
    def conditional(self) -> bool:
        return self.cond is not None

    @property
    def guided(self) -> bool:
        return self.guidance_scale is not None

    def reset(self) -> None:
        self.unet_calls = 0
        self.unet_rows = 0

    def __repr__(self) -> str:
        return (f"DiffusersModelFn({type(self.unet).__name__}, conditional={self.conditional}, "
                f"guidance_scale={self.guidance_scale}, dtype={self.unet_dtype}, "
                f"device={self.unet_device})")

    @staticmethod
    def _gather(c: torch.Tensor, idx: torch.Tensor, n: int) -> torch.Tensor:
        """The conditioning rows of ``idx``, as a fresh tensor (the UNet may write into it)."""
        if c.shape[0] == 1:
            return c.expand((n,) + tuple(c.shape[1:])).contiguous()
        if int(idx.max()) >= c.shape[0]:
            raise ValueError(f"sample index {int(idx.max())} out of range for conditioning with "
                             f"{c.shape[0]} rows (give one row per sample, or one shared row)")
        return c[idx]

    def __call__(self, x: torch.Tensor, t: torch.Tensor,
                 sample_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        n = x.shape[0]
        xin = x.to(device=self.unet_device, dtype=self.unet_dtype)
        tin = t.to(self.unet_device)
        kwargs = {}
        if self.conditional:
            if sample_index is None:
                raise ValueError("a conditional model needs sample_index")
            idx = sample_index.to(self.unet_device)
            c = self._gather(self.cond, idx, n)
            if self.guided:
                u = self._gather(self.uncond, idx, n)
                xin = torch.cat([xin, xin])
                tin = torch.cat([tin, tin])
                c = torch.cat([u, c])
            kwargs["encoder_hidden_states"] = c
        out = as_output_tensor(self.unet(xin, tin, **kwargs))
        self.unet_calls += 1
        self.unet_rows += int(xin.shape[0])
        ch = x.shape[1]
        if self.split_channels and out.ndim >= 2 and out.shape[1] == 2 * ch:
            out = out[:, :ch]
        cd = torch.promote_types(out.dtype, torch.float32)
        out = out.to(device=x.device, dtype=cd)
        if self.guided:
            u, c = out[:n], out[n:]
            out = u + self.guidance_scale * (c - u)
        return out


# --------------------------------------------------------------------------- adapter
def from_diffusers(unet, scheduler, *, n_steps: int, guidance_scale: Optional[float] = None,
                   cond: Optional[torch.Tensor] = None, uncond: Optional[torch.Tensor] = None,
                   variance: Optional[str] = None, eta: float = 0.0,
                   use_clipped_model_output: bool = False):
    """A (Denoiser, Step) pair for a diffusers ``unet`` and ``scheduler`` at ``n_steps`` steps.

    Parameters
    ----------
    unet : a diffusers UNet (or any module, or a
        :class:`~parasample.diffusion.multi_device.ReplicatedModel` of one) called as
        ``unet(x, t)`` or ``unet(x, t, encoder_hidden_states=...)``, returning a tensor or an
        object with ``.sample``.
    scheduler : ``DDPMScheduler`` or ``DDIMScheduler`` (or ``DDPMParallelScheduler`` /
        ``DDIMParallelScheduler``); not modified (``set_timesteps`` runs on a copy).
    n_steps : S, passed to ``set_timesteps``.
    guidance_scale : classifier-free guidance weight w; needs ``cond`` and ``uncond``.
        ``None`` or 1 means no guidance (one UNet row per row).
    cond, uncond : conditioning tensors (``encoder_hidden_states``), one row per sample or one
        row shared by all samples. ``cond`` makes the denoiser conditional.
    variance : DDPM only; ``"fixed_small"`` or ``"fixed_large"`` overrides the scheduler's
        ``variance_type`` (required for ``learned``/``learned_range`` schedulers: the first half
        of the UNet's output channels is used). DDIM accepts only ``None``/``"fixed_small"``.
    eta : DDIM noise weight η (diffusers' ``step(eta=...)``; 0 = deterministic).
    use_clipped_model_output : DDIM; as in diffusers' ``step``: recompute ε̂ from the
        clipped/thresholded x̂0 (otherwise the model's own ε̂ is kept, ``raw_eps=True``).

    Returns ``(denoiser, step)``: ``denoiser.fn`` is a :class:`DiffusersModelFn` (UNet-row
    counters), the state dtype is float32 (float64 for a float64 UNet) on the UNet's device.
    Raises ValueError for unsupported schedulers, prediction or variance types and
    inconsistent conditioning, before any model call.
    """
    kind = _scheduler_kind(scheduler)
    cfg = scheduler.config
    n_steps = as_count(n_steps, "n_steps", minimum=1)

    # --- prediction type and x̂0 post-processing
    ptype = cfg.get("prediction_type", "epsilon")
    if ptype not in PREDICTION_TYPES:
        raise ValueError(f"unsupported prediction_type {ptype!r}; supported: "
                         f"{tuple(PREDICTION_TYPES)}")
    prediction = PREDICTION_TYPES[ptype]
    if cfg.get("thresholding", False):
        clip_x0 = DynamicThreshold(cfg.get("dynamic_thresholding_ratio", 0.995),
                                   cfg.get("sample_max_value", 1.0))
    elif cfg.get("clip_sample", False):
        clip_x0 = float(cfg.get("clip_sample_range", 1.0))
    else:
        clip_x0 = None

    # --- conditioning and guidance
    if guidance_scale is not None:
        guidance_scale = float(guidance_scale)
        if not math.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be finite, got {guidance_scale!r}")
        if guidance_scale == 1.0:
            guidance_scale = None  # u + 1·(c − u) = c: skip the unconditional rows
    for name, c in (("cond", cond), ("uncond", uncond)):
        if c is not None and (not isinstance(c, torch.Tensor) or c.ndim < 1 or c.shape[0] < 1):
            raise ValueError(f"{name} must be a tensor with a leading row axis")
    if guidance_scale is not None:
        if cond is None or uncond is None:
            raise ValueError("classifier-free guidance (guidance_scale != 1) needs both cond "
                             "and uncond")
        if tuple(uncond.shape[1:]) != tuple(cond.shape[1:]):
            raise ValueError(f"uncond rows {tuple(uncond.shape[1:])} differ from cond rows "
                             f"{tuple(cond.shape[1:])}")
        if uncond.shape[0] not in (1, cond.shape[0]) and cond.shape[0] != 1:
            raise ValueError(f"uncond has {uncond.shape[0]} rows, cond {cond.shape[0]}: give one "
                             "row per sample or one shared row")
    elif uncond is not None and cond is None:
        raise ValueError("uncond given without cond")
    if cond is None:
        uncond = None

    # --- variance
    in_ch, out_ch = _model_channels(unet)
    doubled = in_ch is not None and out_ch is not None and int(out_ch) == 2 * int(in_ch)
    if variance is not None and variance not in DDPMStep.VARIANCES:
        raise ValueError(f"variance must be None or one of {DDPMStep.VARIANCES}, got {variance!r}")
    if kind == "ddpm":
        vtype = cfg.get("variance_type", "fixed_small")
        if variance is None:
            if vtype in _LEARNED:
                raise ValueError(
                    f"variance_type {vtype!r}: a learned variance makes the noise depend on the "
                    "model, which parallel samplers cannot share; pass variance=\"fixed_small\" "
                    "to sample with the fixed posterior variance (the first half of the UNet's "
                    "output channels is used as the prediction)")
            if vtype in ("fixed_small", "fixed_small_log"):
                variance = "fixed_small"
            elif vtype == "fixed_large":
                variance = "fixed_large"
            else:
                raise ValueError(f"unsupported variance_type {vtype!r}; pass "
                                 "variance=\"fixed_small\" or \"fixed_large\" explicitly")
        split = doubled or vtype in _LEARNED
    else:
        if variance not in (None, "fixed_small"):
            raise ValueError("DDIM noise is eta times the fixed_small std; variance must be "
                             f"None or 'fixed_small', got {variance!r}")
        split = doubled
        eta = float(eta)
        if not (eta >= 0.0 and math.isfinite(eta)):
            raise ValueError(f"eta must be finite and non-negative, got {eta!r}")

    # --- schedule and grid
    schedule = Schedule.from_alpha_bar(scheduler.alphas_cumprod)
    sch = copy.deepcopy(scheduler)
    sch.set_timesteps(n_steps)
    timesteps = sch.timesteps.detach().cpu().numpy().astype(np.int64)
    if kind == "ddim" and not cfg.get("set_alpha_to_one", True):
        final = float(schedule.alpha_bar[0])
    else:
        final = 1.0
    grid = TimeGrid(schedule, timesteps, final_alpha_bar=final)
    if kind == "ddpm":
        step: Step = DDPMStep(grid, variance=variance)
    else:
        step = DDIMStep(grid, eta=eta, raw_eps=not use_clipped_model_output)

    fn = DiffusersModelFn(unet, cond=cond, uncond=uncond, guidance_scale=guidance_scale,
                          split_channels=split)
    dtype = torch.float64 if fn.unet_dtype == torch.float64 else torch.float32
    model = Denoiser(fn, schedule, prediction=prediction, clip_x0=clip_x0,
                     conditional=cond is not None, dtype=dtype, device=fn.unet_device)
    return model, step


# --------------------------------------------------------------------------- pipelines
def _vae_scale_factor(pipe) -> int:
    f = getattr(pipe, "vae_scale_factor", None)
    if f is not None:
        return int(f)
    return 2 ** (len(pipe.vae.config.block_out_channels) - 1)


def pipeline_sample(pipe, prompt: Union[str, Sequence[str]], *, sampler: str = "picard",
                    n_steps: int = 50, guidance_scale: float = 7.5,
                    negative_prompt: Union[None, str, Sequence[str]] = None,
                    num_images_per_prompt: int = 1, height: Optional[int] = None,
                    width: Optional[int] = None, rng: RngLike = None, scheduler=None,
                    eta: float = 0.0, window: int = 32, tol: float = 0.1, k: int = 16,
                    adaptive: bool = False, decode: bool = True) -> SampleResult:
    """Text-to-image with a Stable-Diffusion-like pipeline and a parasample sampler.

    ``pipe`` needs ``encode_prompt(prompt, device, num_images_per_prompt, do_cfg,
    negative_prompt)`` (as ``StableDiffusionPipeline`` has), ``unet``, ``vae`` and ``scheduler``
    (or pass ``scheduler``: a DDPM/DDIM scheduler, e.g. ``DDIMScheduler.from_config(
    pipe.scheduler.config)``; Stable Diffusion ships PNDM, which is not supported).

    Steps: encode the prompt (guidance when ``guidance_scale > 1``, as in diffusers); build the
    denoiser and step with :func:`from_diffusers`; sample latents of shape
    (unet in_channels, height/f, width/f) with ``sampler`` (``"picard"``: ``window``, ``tol``;
    ``"asd"``: ``k``, ``adaptive``, DDPM ``fixed_small`` only; ``"sequential"``); decode with
    ``vae.decode(latents / scaling_factor (+ shift_factor))``.

    Returns ``SampleResult(images, cost, info)``: images float32 in [0, 1], shape
    (B, 3, H, W) with B = len(prompts)·num_images_per_prompt (or the latents when
    ``decode=False``); ``cost`` is the sampler's (guided rows count once); ``info`` is the
    sampler's plus ``latents``, ``sampler``, ``unet_calls``, ``unet_rows`` (the VAE decode is not
    counted). Tested only on tiny randomly initialised pipelines, not on real weights.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    num_images_per_prompt = as_count(num_images_per_prompt, "num_images_per_prompt", minimum=1)
    height = None if height is None else as_count(height, "height", minimum=1)
    width = None if width is None else as_count(width, "width", minimum=1)
    if not hasattr(pipe, "encode_prompt"):
        raise TypeError(f"{type(pipe).__name__} has no encode_prompt(); pipeline_sample supports "
                        "Stable-Diffusion-like pipelines")
    scheduler = pipe.scheduler if scheduler is None else scheduler
    _scheduler_kind(scheduler)  # fail before encoding
    if sampler == "asd":
        try:
            from .asd import sample_asd
        except ImportError as exc:  # pragma: no cover - depends on the checkout
            raise ImportError("sampler='asd' needs parasample.diffusion.asd.sample_asd") from exc
    unet = pipe.unet
    _, device = _model_dtype_device(unet)
    do_cfg = guidance_scale is not None and float(guidance_scale) > 1.0
    with torch.inference_mode():
        embeds = pipe.encode_prompt(prompt, device, num_images_per_prompt, do_cfg,
                                    negative_prompt)
    cond, uncond = embeds[0], embeds[1]
    model, step = from_diffusers(unet, scheduler, n_steps=n_steps,
                                 guidance_scale=guidance_scale if do_cfg else None,
                                 cond=cond, uncond=uncond if do_cfg else None, eta=eta)
    f = _vae_scale_factor(pipe)
    ucfg = unet.config
    size = ucfg.get("sample_size") if hasattr(ucfg, "get") else getattr(ucfg, "sample_size")
    if isinstance(size, (tuple, list)):
        size = size[0]
    height = height if height is not None else int(size) * f
    width = width if width is not None else int(size) * f
    if height % f or width % f:
        raise ValueError(f"height and width must be multiples of {f}, got {height}x{width}")
    in_ch = ucfg.get("in_channels") if hasattr(ucfg, "get") else getattr(ucfg, "in_channels")
    shape = (int(in_ch), height // f, width // f)
    batch = int(cond.shape[0])

    if sampler == "picard":
        from .picard import sample_picard
        res = sample_picard(model, step, shape=shape, batch=batch, rng=rng, window=window,
                            tol=tol)
    elif sampler == "asd":
        res = sample_asd(model, step, shape=shape, batch=batch, rng=rng, k=k, adaptive=adaptive)
    else:
        from .sequential import sample_sequential
        res = sample_sequential(model, step, shape=shape, batch=batch, rng=rng)
    latents = res.sample
    info = dict(res.info)
    info.update(latents=latents, sampler=sampler, unet_calls=model.fn.unet_calls,
                unet_rows=model.fn.unet_rows)
    if not decode:
        return SampleResult(latents, res.cost, info)
    vae = pipe.vae
    vdtype, vdevice = _model_dtype_device(vae)
    z = latents / float(vae.config.scaling_factor)
    shift = vae.config.get("shift_factor", None) if hasattr(vae.config, "get") else None
    if shift is not None:
        z = z + float(shift)
    with torch.inference_mode():
        image = as_output_tensor(vae.decode(z.to(device=vdevice, dtype=vdtype)))
    image = (image.float() / 2 + 0.5).clamp(0, 1)
    return SampleResult(image, res.cost, info)
