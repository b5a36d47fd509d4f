"""Sequential DDPM/DDIM sampling, the reference (spec §2): :func:`sample_sequential`.

    x ← x_T;   for i = 0…S−1:   x ← advance(i, x, D(x, t_i), z_i)

with (x_T, z_i) from a :class:`~parasample.diffusion.noise.NoiseBank`. Cost: S rounds of B rows,
so per-sample NFE = S; O(S·B·D) vector work.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from ..core import CountingOracle, NumericalError, SampleResult
from ..core.progress import ProgressLike, progress_reporter
from ..core.rng import RngLike
from .model import Denoiser, resolve_run
from .noise import NoiseBank, _check_shape
from .steps import Step

__all__ = ["sample_sequential", "prepare_run", "check_finite"]


def prepare_run(model: Denoiser, step: Step, *, shape, batch: int, rng: RngLike,
                noise: Optional[NoiseBank], dtype, device):
    """Shared validation of the diffusion samplers: returns (shape, dtype, device, bank).

    ``noise`` and ``rng`` are exclusive; a given bank must match (S, shape, batch) and sets
    the run dtype when ``dtype`` is None (an explicit different dtype raises).
    """
    if not isinstance(step, Step):
        raise TypeError(f"step must be a DDPMStep or DDIMStep, got {type(step).__name__}")
    if dtype is None and isinstance(noise, NoiseBank):
        dtype = noise.dtype
    dtype, device = resolve_run(model, dtype, device)
    if step.schedule.n_train != model.schedule.n_train or not (
            step.schedule is model.schedule
            or (step.schedule.alpha_bar == model.schedule.alpha_bar).all()):
        raise ValueError("the step's grid and the model use different training schedules")
    shape = _check_shape(shape)
    if isinstance(batch, bool) or int(batch) != batch or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    batch = int(batch)
    if noise is None:
        noise = NoiseBank(step.n_steps, shape, batch, rng=rng, dtype=dtype, device=device)
    else:
        if rng is not None:
            raise ValueError("pass either rng or noise, not both")
        if not isinstance(noise, NoiseBank):
            raise TypeError(f"noise must be a NoiseBank, got {type(noise).__name__}")
        noise.matches(n_steps=step.n_steps, shape=shape, batch=batch, dtype=dtype)
    return shape, dtype, device, noise


def check_finite(sample: torch.Tensor, who: str) -> None:
    """Raise NumericalError if the final sample has NaN/inf (never return it silently)."""
    if not bool(torch.isfinite(sample).all()):
        raise NumericalError(
            f"{who} produced non-finite values; check the model output, run in float64, "
            "or clip x0 (Denoiser(clip_x0=...))")


def sample_sequential(model: Denoiser, step: Step, *, shape: Union[int, Sequence[int]],
                      batch: int = 1, rng: RngLike = None, noise: Optional[NoiseBank] = None,
                      dtype: Optional[torch.dtype] = None,
                      device: Union[None, str, torch.device] = None,
                      progress: ProgressLike = None) -> SampleResult:
    """Run the S steps of ``step`` one after another on ``batch`` samples of ``shape``.

    Returns ``SampleResult(sample[batch, *shape], Cost(S, S·B), info)`` with ``info``:
    ``nfe`` (evaluations per sample = S), ``n_steps``, ``batch``. Runs under
    ``torch.inference_mode()`` in ``dtype``/``device`` (default: the model's).
    ``progress``: None, True (a bar on stderr) or a callback ``(done, total, label)`` called
    after each step; :func:`sample_picard` and :func:`sample_asd` take it too (done = steps
    settled).
    """
    shape, dtype, device, bank = prepare_run(model, step, shape=shape, batch=batch, rng=rng,
                                             noise=noise, dtype=dtype, device=device)
    B, S = bank.batch, step.n_steps
    counted = CountingOracle(model.predict)
    ts = step.timestep_tensor(device)
    sidx = torch.arange(B, device=device)
    ode = step.is_ode
    report = progress_reporter(progress)
    with torch.inference_mode():
        x = bank.x_T.to(device=device, dtype=dtype)
        for i in range(S):
            x0, eps = counted(x, ts[i].expand(B), sidx)
            z = None if ode else bank.z(i).to(device)
            x = step.advance(i, x, x0, z, eps)
            report(i + 1, S, "sequential")
        check_finite(x, "sample_sequential")
    cost = counted.cost
    return SampleResult(x, cost, {"nfe": cost.evaluations / B, "n_steps": S, "batch": B})
