"""Sequential DDPM/DDIM sampling, the reference: :func:`sample_sequential`.

    x ← x_T;   for i = 0…S−1:   x ← advance(i, x, D(x, t_i), z_i)

with (x_T, z_i) from a :class:`~parasample.diffusion.noise.NoiseBank`. Cost: S rounds of B rows,
so per-sample NFE = S; O(S·B·D) vector work.

Also the plumbing every diffusion sampler shares: :func:`prepare_run` (all validation, then the
noise) and :func:`check_finite` (the per-round check that stops a run at the first non-finite
value, naming the step and the batch rows).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..core import CountingOracle, NumericalError, SampleResult, as_count
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
    the run dtype when ``dtype`` is None (an explicit different dtype raises). Everything is
    validated before the bank spawns from ``rng``, so a refused call leaves the caller's
    Generator as it was; callers validate their own options before calling this.
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
    batch = as_count(batch, "batch", minimum=1)
    if noise is None:
        noise = NoiseBank(step.n_steps, shape, batch, rng=rng, dtype=dtype, device=device)
    else:
        if rng is not None:
            raise ValueError("pass either rng or noise, not both")
        if not isinstance(noise, NoiseBank):
            raise TypeError(f"noise must be a NoiseBank, got {type(noise).__name__}")
        noise.matches(n_steps=step.n_steps, shape=shape, batch=batch, dtype=dtype)
    return shape, dtype, device, noise


def _host(v, n: int) -> np.ndarray:
    """An int64 numpy vector of length n from an int, array or tensor."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return np.broadcast_to(np.asarray(v, dtype=np.int64), (n,))


def _list_rows(rows: list, limit: int = 10) -> str:
    if len(rows) <= limit:
        return str(rows)
    return f"{str(rows[:limit])[:-1]}, …] ({len(rows)} rows)"


def check_finite(values: torch.Tensor, *, who: str, step: Step, steps, rows=None) -> None:
    """Raise NumericalError unless every row of ``values`` (N, *shape) is finite.

    ``steps``: the step index i (an int, or one per row) whose model call or update produced
    each row; ``rows``: the batch row (sample index) of each (default 0…N−1). The error
    names the first bad step, its timestep t_i and the batch rows that are non-finite there.
    Every sampler calls this on what each round computes, so a bad model stops the run in
    the round that first meets it. Cost: O(N·D) and one host sync.
    """
    n = int(values.shape[0])
    ok = torch.isfinite(values).reshape(n, -1).all(dim=1)
    if bool(ok.all()):
        return
    bad = ~ok.cpu().numpy()
    steps = _host(steps, n)
    rows = np.arange(n) if rows is None else _host(rows, n)
    first = int(steps[bad].min())
    which = sorted({int(r) for r in rows[bad & (steps == first)]})
    raise NumericalError(
        f"{who}: non-finite values (NaN or inf) at step {first} (timestep "
        f"{int(step.timesteps[first])}), batch rows {_list_rows(which)}; the model returned "
        "NaN/inf there or the state overflowed: check the model on such inputs, run in "
        "float64, or clip x0 (Denoiser(clip_x0=...))")


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
    settled). Every sampler raises NumericalError in the round that first produces a NaN/inf
    (:func:`check_finite`), naming the step, its timestep and the batch rows.
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
            check_finite(x, who="sample_sequential", step=step, steps=i)
            report(i + 1, S, "sequential")
    cost = counted.cost
    return SampleResult(x, cost, {"nfe": cost.evaluations / B, "n_steps": S, "batch": B})
