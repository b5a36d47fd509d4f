"""Picard iteration over a sliding window (ParaDiGMS, Shih et al.): :func:`sample_picard`.

The chain is x_{j+1} = x_j + Δ_j(x_j) + ξ_j with Δ_j = μ_j − x_j and ξ_j = σ_j·z_j drawn once
(from the same :class:`~parasample.diffusion.noise.NoiseBank` as the sequential sampler; ODE
steps have ξ ≡ 0). With window p::

    buf[0..S] ← x_T;  b ← 0
    while b < S:
        e ← min(b+p, S);  L ← e−b
        P ← model(buf[b:e], t[b:e])                      # ONE call, L·B rows
        new[b] ← buf[b];  new[j+1] ← new[j] + (Δ_j(buf[j], P_j) + ξ_j)   # j = b…e−1, in order
        err_j ← ‖new[j+1] − buf[j+1]‖² / (D·v[j+1])      # per sample, float64
        bad_j ← (j+1 = S) or err_j > tol² for ANY sample
        adv ← 1 + (first bad j) − b  (L if none);  buf[b+1..e] ← new[b+1..e]
        b' ← b+adv;  e' ← min(b'+p, S);  buf[e+1..e'] ← buf[e]
        b ← b'
    return buf[S]

``tol = 0`` treats every position as bad (one accepted step per round, the one computed from
exact inputs), which gives the closed-form cost below; any tol > 0 compares err_j > tol²
(a NaN error counts as bad).

v[j] is the ``fixed_small`` variance of the step consuming state j, floored at 1e-20 (also for
ODE steps), so err is the mean-square change relative to the next step's noise variance. The
final state is flagged non-converged explicitly. The running sum is an explicit in-order loop
(no cumsum), and only the window's p+1 states are kept (rolling buffer, O(p·B·D) memory).
When the last step ends at ᾱ = 1 (``step.terminal_x0``) the final state is x̂0 of its input,
exactly as ``step.advance`` computes it, so that converged runs match sequential bitwise.
Every state a round computes, converged or not, is checked: a NaN/inf anywhere in the window
stops the run in that round (:func:`~parasample.diffusion.sequential.check_finite`), since a
model that returns NaN/inf for a finite input would otherwise be iterated to the end.

Guarantees: p = 1 or tol = 0 reproduces :func:`~parasample.diffusion.sequential.sample_sequential`
under the same noise in exactly S rounds (bitwise when the model is batch-invariant);
rounds ≤ S; NFE = Σ window lengths ≤ p·rounds; at tol = 0, NFE = Σ_{b<S} min(p, S−b).
Cost per round: one call on L·B rows plus O(L·B·D) vector work.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..core import CountingOracle, SampleResult, as_count
from ..core.progress import ProgressLike, progress_reporter
from ..core.rng import RngLike
from .model import Denoiser
from .noise import NoiseBank
from .sequential import check_finite, prepare_run
from .steps import Step

__all__ = ["sample_picard", "VAR_FLOOR"]

VAR_FLOOR = 1e-20


def sample_picard(model: Denoiser, step: Step, *, shape: Union[int, Sequence[int]],
                  batch: int = 1, rng: RngLike = None, window: int = 32, tol: float = 0.1,
                  noise: Optional[NoiseBank] = None, dtype: Optional[torch.dtype] = None,
                  device: Union[None, str, torch.device] = None,
                  progress: ProgressLike = None) -> SampleResult:
    """Parallel-in-time sampling of ``step``'s chain by windowed Picard iteration.

    ``window`` p ≥ 1 (clamped to S), ``tol`` ≥ 0 (RMS change relative to the next step's
    noise std; 0.1 default, 1e-3 for high fidelity, 0 = exact). Returns
    ``SampleResult(sample[batch, *shape], Cost(rounds, evaluations), info)`` where ``info``
    has ``nfe`` (evaluations/B), ``window`` (the clamped p), ``tol``, ``n_steps``, ``batch``,
    and per-round numpy arrays ``window_lengths`` (L), ``advances`` (adv) and
    ``max_errors`` (max of err_j over the window and the batch, excluding the flagged final
    state; NaN if the window holds only it).
    """
    window = as_count(window, "window", minimum=1)
    tol = float(tol)
    if not (tol >= 0.0 and np.isfinite(tol)):
        raise ValueError(f"tol must be finite and non-negative, got {tol!r}")
    shape, dtype, device, bank = prepare_run(model, step, shape=shape, batch=batch, rng=rng,
                                             noise=noise, dtype=dtype, device=device)
    B, S = bank.batch, step.n_steps
    p = min(window, S)
    D = int(np.prod(shape))
    tol2 = tol * tol
    # v[j]: fixed_small variance of the step consuming state j (j < S); v[S] unused (flag).
    v = np.maximum(np.concatenate([step.grid.var_small, [1.0]]), VAR_FLOOR)
    v_t = torch.as_tensor(v, dtype=torch.float64).to(device)
    ts = step.timestep_tensor(device)
    sidx_full = torch.arange(p * B, device=device) % B
    ode = step.is_ode
    terminal = step.terminal_x0
    counted = CountingOracle(model.predict)
    report = progress_reporter(progress)
    lengths, advances, max_errors = [], [], []

    with torch.inference_mode():
        x_T = bank.x_T.to(device=device, dtype=dtype)
        # buf holds states b..e (L+1 of them): rolling window.
        b, e = 0, p
        buf = x_T.unsqueeze(0).expand((p + 1,) + x_T.shape).clone()
        while b < S:
            L = e - b
            rows = buf[:L].reshape((L * B,) + tuple(shape))
            t_rows = ts[b:e].repeat_interleave(B)
            x0, eps = counted(rows, t_rows, sidx_full[:L * B])
            x0 = x0.reshape((L, B) + tuple(shape))
            eps = eps.reshape((L, B) + tuple(shape))
            idx = range(b, e)
            d = step.drift(idx, buf[:L], x0, eps)              # (L, B, *shape)
            if not ode:
                sig = step.coef("sigma", idx, dtype, device, d.ndim)
                d = d + sig * bank.zs(b, e).to(device)          # Δ_j + ξ_j
            new = [buf[0]]
            for j in range(L):                                  # explicit in-order sum
                new.append(new[j] + d[j])
            if terminal and e == S:                             # last step is exactly x̂0
                new[L] = x0[L - 1]
            new = torch.stack(new)                              # (L+1, B, *shape)
            check_finite(new[1:].reshape((L * B,) + tuple(shape)), who="sample_picard",
                         step=step, steps=np.repeat(np.arange(b, e), B),
                         rows=np.tile(np.arange(B), L))
            diff = (new[1:] - buf[1:L + 1]).to(torch.float64).reshape(L, B, -1)
            err = (diff * diff).sum(-1) / (D * v_t[b + 1:e + 1, None])   # (L, B)
            if tol2 == 0.0:                                     # tol = 0: sequential mode
                bad = torch.ones(L, dtype=torch.bool, device=err.device)
            else:                                               # NaN counts as bad
                bad = (~(err <= tol2)).any(dim=1)
            if e == S:
                bad[L - 1] = True
            bad_host = bad.cpu().numpy()                        # the one sync per round
            adv = int(np.argmax(bad_host)) + 1 if bad_host.any() else L
            finite = err[:L - 1] if e == S else err
            max_errors.append(finite.max() if finite.numel() else None)
            lengths.append(L)
            advances.append(adv)
            b2 = b + adv
            e2 = min(b2 + p, S)
            # States b2..e are kept; b2 ≤ e. Newly exposed e+1..e2 start from new[e].
            extra = e2 - e
            if extra > 0:
                tail = new[L].unsqueeze(0).expand((extra,) + new[L].shape)
                buf = torch.cat([new[adv:], tail], dim=0)
            else:
                buf = new[adv:]
            b, e = b2, e2
            report(b, S, f"Picard round {len(lengths)}")
        sample = buf[0].clone()

    cost = counted.cost
    info = {
        "nfe": cost.evaluations / B, "window": p, "tol": tol, "n_steps": S, "batch": B,
        "window_lengths": np.asarray(lengths, dtype=np.int64),
        "advances": np.asarray(advances, dtype=np.int64),
        "max_errors": np.asarray([np.nan if m is None else float(m) for m in max_errors],
                                 dtype=np.float64),
    }
    return SampleResult(sample, cost, info)
