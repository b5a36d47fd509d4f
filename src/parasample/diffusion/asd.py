"""Autospeculative decoding (ASD; Hu, Das, Sadigh, Anari, ICML 2025): :func:`sample_asd`, exact
parallel DDPM sampling.

**SL view.** A DDPM state x at ᾱ maps to stochastic-localisation time τ = ᾱ/(1−ᾱ) and
y = s·x with s = √ᾱ/(1−ᾱ); then y_τ = τ·x0 + W_τ and the SL drift E[x0 | y_τ] is exactly the
denoiser D. An ancestral ``fixed_small`` DDPM step i → i+1 *is* the Euler–Maruyama step

    y' = y + h·D(x_i) + √h·z,   h = τ_{i+1} − τ_i,

with the same normal z: s'·c1 = s, s'·c0 = h and s'²·σ² = h (:func:`sl_coordinates`). Given
x0 the SL increments over equal lengths are i.i.d. N(h·x0, h·I), so m(y_τ) is a martingale and
the current x̂0 is the best predictor of the drift over the next k steps: drafts need no
draft model.

**One round** (x-space; affine maps preserve density ratios and reflections). A chain holds
its position i, its state x_i and a drift m̂ (an x̂0 from the past; round 0 spends one call
on m̂ = D(x_T)). With kk = min(k, S_stoch − i), S_stoch = S−1 when the final ᾱ is 1, else S:

1. draft, no model call: x̂_0 = x_i, x̂_{j+1} = advance(i+j, x̂_j, m̂, z_{i+j}) for j < kk;
2. ONE batched call: D at x̂_0 … x̂_kk (kk+1 rows; the state x_S of a final-ᾱ < 1 grid has
   no timestep and is not evaluated, so that last round has kk rows);
3. verify all j at once: δ_j = c0_{i+j}·(D(x̂_j) − m̂) (target mean − draft mean; c1 cancels),
   log r_j = ⟨z, δ_j⟩/σ − ‖δ_j‖²/(2σ²) (z = z_{i+j}, σ = σ_{i+j}, float64 reductions);
   step j is accepted iff log u_{i+j} ≤ log r_j; J = first rejected j (kk if none);
4. rejection at J: x_{i+J+1} = advance(i+J, x̂_J, D(x̂_J), z − 2⟨e,z⟩e), e = δ_J/‖δ_J‖;
   later drafts are discarded, i += J+1, m̂ = D(x̂_J) (stale, but from the past);
5. all accepted: x_{i+kk} = x̂_kk, i += kk, m̂ = D(x̂_kk) (fresh);
6. finish: with final ᾱ = 1 the output is D(x_{S−1}), reused from the last batch when that
   state was evaluated there (a fully accepted round), else one more round of 1 row.
   δ = 0 is always accepted and e is never formed.

**Exactness, whatever the drafts.** At step i+j, given the accepted past, the draft
law is q = N(μ_q, σ²I) and the target p = N(μ_p, σ²I), δ = μ_p − μ_q. The draft X = μ_q + σz
is kept with probability min(1, p/q)(X) (u_{i+j} is fresh for this decision); otherwise the
output is μ_p + σRz, R = I − 2eeᵀ. R maps the region {q > p} (where rejections happen) onto
{p > q} and carries the rejected mass density (q − p)₊ to (p − q)₊, so the output density is
min(p, q) + (p − q)₊ = p. By induction the chain has the sequential DDPM law, for ANY drift
rule and any k chosen from the past (exchangeability only sets the acceptance rate). A step
index may be drafted in several rounds, but (z_i, u_i) decide it exactly once and discarded
drafts never feed forward. With a point mass all δ = 0 and ASD equals sequential bitwise.

**Non-finite values.** Every model output of a round (drafts included) and every new state is
checked (:func:`~parasample.diffusion.sequential.check_finite`): a NaN/inf stops the run in the
round that first meets it, naming the step and the chains.

**Randomness.** x_T and z_i come from the same :class:`NoiseBank` index as the sequential
sampler; u_i from its independent uniform stream, also per global step.

**Cost (measured with** :class:`~parasample.core.CountingOracle` **).** One call = one round
for the whole batch: chains run in lockstep, a finished chain drops out, and each call holds
the rows of all active chains (position-major, ``sample_index`` = the real chain index).
Per chain: rounds ≤ S+1 (every round advances ≥ 1 step) and evaluations
= 1 + Σ_rounds (kk+1) + (0 or 1 final row) [kk, not kk+1, in a round that reaches x_S].
Batch rounds = max over chains. Per round: B·(k+1) rows plus O(k·B·D) vector work.

**Adaptive k (exact because it uses only the past), per chain:** after a fully accepted
round k ← min(2k, k_max); after a rejection with accepted length a, k ← clamp(2(a+1), k_min,
k_max).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..core import CountingOracle, SampleResult, as_count
from ..core.progress import ProgressLike, progress_reporter
from ..core.rng import RngLike
from .model import Denoiser
from .noise import NoiseBank
from .sequential import check_finite, prepare_run
from .steps import DDPMStep, Step

__all__ = ["sample_asd", "log_acceptance_ratio", "reflect", "grs_couple", "sl_coordinates"]

_DRIFTS = ("stale", "zero")


# ---------------------------------------------------------------- SL view
def sl_coordinates(step: Step) -> tuple[np.ndarray, np.ndarray]:
    """SL time and scale of the states x_0 … x_S of ``step``'s grid (float64, length S+1).

    τ_i = ᾱ/(1−ᾱ) and s_i = √ᾱ/(1−ᾱ) with ᾱ = ab_i for i < S and final_alpha_bar for i = S
    (τ_S = s_S = ∞ when it is 1). y_i = s_i·x_i; the DDPM ``fixed_small`` step is then the
    Euler–Maruyama step y_{i+1} = y_i + h_i·D + √h_i·z_i with h_i = τ_{i+1} − τ_i.
    """
    ab = np.concatenate([step.grid.ab, [step.grid.final_alpha_bar]])
    with np.errstate(divide="ignore"):
        om = 1.0 - ab
        tau = np.where(om > 0, ab / np.where(om > 0, om, 1.0), np.inf)
        scale = np.where(om > 0, np.sqrt(ab) / np.where(om > 0, om, 1.0), np.inf)
    return tau, scale


# ---------------------------------------------------------------- Gaussian rejection sampler
def log_acceptance_ratio(z: torch.Tensor, delta: torch.Tensor, sigma) -> torch.Tensor:
    """log p(X)/q(X) for X = μ_q + σ·z, p = N(μ_q + δ, σ²I), q = N(μ_q, σ²I):

        log r = ⟨z, δ⟩/σ − ‖δ‖²/(2σ²)

    (no difference of two squared norms of size σ²·D). ``z``, ``delta``: (..., D) — the last
    axis is the per-sample vector; ``sigma`` a number or broadcastable to (...). Reduced in
    float64; returns float64 (...). δ = 0 gives exactly 0 (always accepted); σ = 0 with δ ≠ 0
    gives −∞ (always rejected).
    """
    zd = (z.to(torch.float64) * delta.to(torch.float64)).sum(-1)
    dd = (delta.to(torch.float64) ** 2).sum(-1)
    sg = torch.as_tensor(sigma, dtype=torch.float64, device=zd.device)
    safe = torch.where(sg > 0, sg, torch.ones_like(sg))
    logr = zd / safe - dd / (2.0 * safe * safe)
    logr = torch.where(sg > 0, logr, torch.full_like(logr, -math.inf))
    return torch.where(dd == 0, torch.zeros_like(logr), logr)


def reflect(z: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """z − 2⟨e, z⟩e with e = δ/‖δ‖, per row (last axis = the per-sample vector), in float64,
    returned in ``z``'s dtype. Rows with δ = 0 are returned unchanged (e is never formed;
    such a step is never rejected)."""
    z64 = z.to(torch.float64)
    d64 = delta.to(torch.float64)
    dd = (d64 * d64).sum(-1, keepdim=True)
    coef = 2.0 * (z64 * d64).sum(-1, keepdim=True) / torch.where(dd > 0, dd, torch.ones_like(dd))
    out = torch.where(dd > 0, z64 - coef * d64, z64)
    return out.to(z.dtype)


def grs_couple(mu_q: torch.Tensor, mu_p: torch.Tensor, sigma, z: torch.Tensor,
               u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One Gaussian rejection-sampler step, per row: the reflection coupling of the module
    docstring ("Exactness").

    Draft X = μ_q + σz; keep it if log u ≤ log r (:func:`log_acceptance_ratio` with
    δ = μ_p − μ_q), else return μ_p + σ·:func:`reflect`(z, δ). The output is exactly
    N(μ_p, σ²I) and equals the draft with probability 1 − TV = 2Φ(−‖δ‖/(2σ)).
    Shapes (N, D) (``u``: (N,)); returns (output, accepted: bool (N,)).
    """
    delta = mu_p - mu_q
    draft = mu_q + sigma * z
    logr = log_acceptance_ratio(z, delta, sigma)
    acc = torch.log(u.to(torch.float64)) <= logr
    other = mu_p + sigma * reflect(z, delta)
    return torch.where(acc[:, None], draft, other), acc


# ---------------------------------------------------------------- helpers
class _Rows:
    """Gathers z_{idx[r]}[chain[r]] and u_{idx[r]}[chain[r]] from a NoiseBank."""

    def __init__(self, bank: NoiseBank, device):
        self.bank = bank
        self.device = device
        self.z_all = bank.zs(0, bank.n_steps) if bank.materialized else None
        self.u_all = torch.stack([bank.uniforms(i) for i in range(bank.n_steps)]).to(device)

    def z(self, idx: np.ndarray, chains: np.ndarray) -> torch.Tensor:
        if self.z_all is not None:
            ii = torch.as_tensor(idx, device=self.z_all.device)
            cc = torch.as_tensor(chains, device=self.z_all.device)
            return self.z_all[ii, cc].to(self.device)
        out = torch.empty((len(idx),) + self.bank.shape, dtype=self.bank.dtype, device=self.device)
        for s in np.unique(idx):
            sel = np.flatnonzero(idx == s)
            zs = self.bank.z(int(s)).to(self.device)
            out[torch.as_tensor(sel, device=self.device)] = zs[torch.as_tensor(chains[sel],
                                                                               device=self.device)]
        return out

    def u(self, idx: np.ndarray, chains: np.ndarray) -> torch.Tensor:
        return self.u_all[torch.as_tensor(idx, device=self.device),
                          torch.as_tensor(chains, device=self.device)]


# ---------------------------------------------------------------- the sampler
def sample_asd(model: Denoiser, step: Step, *, shape: Union[int, Sequence[int]],
               batch: int = 1, rng: RngLike = None, k: int = 16, adaptive: bool = False,
               k_min: int = 2, k_max: int = 64, noise: Optional[NoiseBank] = None,
               dtype: Optional[torch.dtype] = None,
               device: Union[None, str, torch.device] = None,
               progress: ProgressLike = None) -> SampleResult:
    """Exact parallel DDPM sampling by autospeculative decoding (see the module docstring).

    ``step`` must be a ``DDPMStep`` with ``variance="fixed_small"``. ``k`` ≥ 1 is the draft
    length (with ``adaptive=True``, the starting k, which must lie in [k_min, k_max]; then
    each chain doubles k after a fully accepted round and sets k = clamp(2(a+1), k_min, k_max)
    after a rejection with a accepted drafts). ``rng``/``noise``/``dtype``/``device`` as in
    :func:`~parasample.diffusion.sequential.sample_sequential`; the output has the law of the
    sequential sampler (not its realisation, unless every δ is 0).

    Returns ``SampleResult(sample[batch, *shape], Cost(rounds, evaluations), info)``; ``info``:
    ``nfe`` (evaluations/B), ``n_steps``, ``batch``, ``k``, ``adaptive``, ``k_min``, ``k_max``,
    ``rounds_per_chain`` (B,), ``evaluations_per_chain`` (B,), ``mean_rounds``;
    per round r (R = cost.rounds, including round 0) and chain, int arrays (R, B), −1 where
    the chain took no part or drafted nothing: ``k_per_round`` (the chain's k),
    ``draft_lengths`` (kk), ``accepted_lengths`` (J, accepted drafts), ``rows_per_round``
    (rows in the call, 0 when inactive); and ``acceptance_rate`` (accepted ÷ decided drafts,
    decided = min(J+1, kk)), ``mean_accepted_length`` (mean J over rounds with kk ≥ 1),
    ``mean_advance`` (steps advanced per such round), ``n_rejections``.
    """
    return _sample_asd(model, step, shape=shape, batch=batch, rng=rng, k=k, adaptive=adaptive,
                       k_min=k_min, k_max=k_max, noise=noise, dtype=dtype, device=device,
                       progress=progress)


def _sample_asd(model: Denoiser, step: Step, *, shape, batch: int = 1, rng: RngLike = None,
                k: int = 16, adaptive: bool = False, k_min: int = 2, k_max: int = 64,
                noise: Optional[NoiseBank] = None, dtype=None, device=None,
                drift: str = "stale", verify: bool = True,
                progress: ProgressLike = None) -> SampleResult:
    """:func:`sample_asd` with testing hooks (not public API).

    ``drift``: ``"stale"`` (m̂ = the latest evaluation) or ``"zero"`` (the useless
    drift m̂ ≡ 0, still exact, only slower). ``verify=False`` accepts every draft (the
    negative control: NOT exact).
    """
    if not isinstance(step, DDPMStep) or step.variance != "fixed_small":
        raise ValueError(
            "sample_asd supports only DDPMStep(grid, variance='fixed_small') (version 1); got "
            f"{step!r}. Use sample_sequential or sample_picard for DDIM or fixed_large steps")
    k = as_count(k, "k", minimum=1)
    k_min = as_count(k_min, "k_min", minimum=1)
    k_max = as_count(k_max, "k_max", minimum=1)
    adaptive = bool(adaptive)
    if adaptive and not (k_min <= k <= k_max):
        raise ValueError(f"adaptive k needs k_min <= k <= k_max, got k_min={k_min}, k={k}, "
                         f"k_max={k_max}")
    if drift not in _DRIFTS:
        raise ValueError(f"unknown drift rule {drift!r}; choose one of {_DRIFTS}")
    shape, dtype, device, bank = prepare_run(model, step, shape=shape, batch=batch, rng=rng,
                                             noise=noise, dtype=dtype, device=device)

    B, S = bank.batch, step.n_steps
    terminal = step.terminal_x0
    S_sto = S - 1 if terminal else S
    ts = step.timestep_tensor(device)
    c0_64 = torch.as_tensor(np.array(step.c0), dtype=torch.float64).to(device)
    sg_64 = torch.as_tensor(np.array(step.sigma), dtype=torch.float64).to(device)
    counted = CountingOracle(model.predict)
    dflat = int(np.prod(shape))

    pos = np.zeros(B, dtype=np.int64)            # current step index i of each chain
    known = np.zeros(B, dtype=bool)              # D(x_i) evaluated (``dcur`` holds it)
    k_cur = np.full(B, k, dtype=np.int64)
    rounds_chain = np.zeros(B, dtype=np.int64)
    evals_chain = np.zeros(B, dtype=np.int64)
    rec_k, rec_kk, rec_acc, rec_rows = [], [], [], []

    def record(kv, kkv, accv, rowsv):
        rec_k.append(kv)
        rec_kk.append(kkv)
        rec_acc.append(accv)
        rec_rows.append(rowsv)

    def drift_of(d: torch.Tensor) -> torch.Tensor:
        return d if drift == "stale" else torch.zeros_like(d)

    with torch.inference_mode():
        rows = _Rows(bank, device)
        x = bank.x_T.to(device=device, dtype=dtype).clone()
        # round 0: m̂ = D(x_T)
        dcur = counted(x, ts[0].expand(B), torch.arange(B, device=device))[0].clone()
        check_finite(dcur, who="sample_asd", step=step, steps=0)
        known[:] = True
        m_hat = drift_of(dcur).clone()
        rounds_chain += 1
        evals_chain += 1
        neg = np.full(B, -1, dtype=np.int64)
        record(neg.copy(), neg.copy(), neg.copy(), np.ones(B, dtype=np.int64))

        report = progress_reporter(progress)
        while True:
            done = (pos == S - 1) & known if terminal else (pos == S)
            report(int(pos.min()), S, f"ASD round {int(rounds_chain.max())}")
            act = np.flatnonzero(~done)
            if act.size == 0:
                break
            A = act.size
            act_t = torch.as_tensor(act, device=device)
            i0 = pos[act]
            kk = np.minimum(k_cur[act], S_sto - i0)   # 0 only for a terminal final round
            K = int(kk.max())
            # 1. draft (padding beyond kk is computed at a clamped index and ignored)
            xs = [x[act_t]]
            zs = []
            mh = m_hat[act_t]
            for j in range(K):
                idx = np.minimum(i0 + j, S_sto - 1)
                z = rows.z(idx, act)
                zs.append(z)
                xs.append(step.advance(idx, xs[-1], mh, z))
            X = torch.stack(xs)                                   # (K+1, A, *shape)
            # 2. evaluate D at every valid draft, ONE call, position-major rows
            jj = np.arange(K + 1)[:, None]
            valid = (jj <= kk[None]) & (i0[None] + jj < S)       # (K+1, A)
            n_rows = valid.sum(0)
            valid_t = torch.as_tensor(valid, device=device)
            t_idx = np.broadcast_to(i0[None] + jj, valid.shape)[valid]
            s_idx = np.broadcast_to(act[None], valid.shape)[valid]
            out = counted(X[valid_t], ts[torch.as_tensor(t_idx, device=device)],
                          torch.as_tensor(s_idx, device=device))[0]
            check_finite(out, who="sample_asd", step=step, steps=t_idx, rows=s_idx)
            P = torch.zeros_like(X)
            P[valid_t] = out
            rounds_chain[act] += 1
            evals_chain[act] += n_rows
            # 3. verify all decided drafts at once
            if K > 0:
                Z = torch.stack(zs)                               # (K, A, *shape)
                jd = np.arange(K)[:, None]
                dec = jd < kk[None]                               # (K, A)
                idx2 = torch.as_tensor(np.minimum(i0[None] + jd, S - 1), device=device)
                diff = (P[:K].to(torch.float64) - mh.to(torch.float64)[None]).reshape(K, A, dflat)
                delta = c0_64[idx2][..., None] * diff             # δ_j, float64
                Zf = Z.reshape(K, A, dflat)
                if verify:
                    logr = log_acceptance_ratio(Zf, delta, sg_64[idx2])
                    u = rows.u(np.minimum(i0[None] + jd, S - 1),
                               np.tile(act, (K, 1)))
                    acc = torch.log(u) <= logr
                    rej = (~acc).cpu().numpy() & dec
                else:
                    rej = np.zeros((K, A), dtype=bool)
                has = rej.any(0)
                J = np.where(has, rej.argmax(0), kk)
            else:
                J = kk.copy()
                has = np.zeros(A, dtype=bool)
            # 5. fully accepted chains: x_{i+kk} = x̂_kk, m̂ = D(x̂_kk) (if evaluated)
            a_loc = np.flatnonzero(~has)
            if a_loc.size:
                a_t = torch.as_tensor(a_loc, device=device)
                kk_t = torch.as_tensor(kk[a_loc], device=device)
                glob = act[a_loc]
                g_t = torch.as_tensor(glob, device=device)
                x[g_t] = X[kk_t, a_t]
                pos[glob] = i0[a_loc] + kk[a_loc]
                ev = pos[glob] < S                                # x_S has no evaluation
                known[glob] = ev
                if ev.any():
                    e_loc = a_loc[ev]
                    e_t = torch.as_tensor(e_loc, device=device)
                    dlast = P[torch.as_tensor(kk[e_loc], device=device), e_t]
                    ge = torch.as_tensor(act[e_loc], device=device)
                    dcur[ge] = dlast
                    m_hat[ge] = drift_of(dlast)
            # 4. rejected chains: reflect, x_{i+J+1} = advance(i+J, x̂_J, D(x̂_J), Rz)
            r_loc = np.flatnonzero(has)
            if r_loc.size:
                r_t = torch.as_tensor(r_loc, device=device)
                J_t = torch.as_tensor(J[r_loc], device=device)
                xJ, DJ = X[J_t, r_t], P[J_t, r_t]
                zr = reflect(Zf[J_t, r_t], delta[J_t, r_t]).reshape(xJ.shape)
                glob = act[r_loc]
                g_t = torch.as_tensor(glob, device=device)
                x[g_t] = step.advance(i0[r_loc] + J[r_loc], xJ, DJ, zr)
                pos[glob] = i0[r_loc] + J[r_loc] + 1
                known[glob] = False
                m_hat[g_t] = drift_of(DJ)
            check_finite(x[act_t], who="sample_asd", step=step, steps=np.maximum(pos[act] - 1, 0),
                         rows=act)
            # records and adaptive k
            kv, kkv, accv, rowsv = neg.copy(), neg.copy(), neg.copy(), np.zeros(B, dtype=np.int64)
            kv[act], kkv[act], rowsv[act] = k_cur[act], kk, n_rows
            accv[act] = np.where(kk > 0, J, -1)
            record(kv, kkv, accv, rowsv)
            if adaptive:
                drafted = kk > 0
                full = drafted & ~has
                k_cur[act[full]] = np.minimum(2 * k_cur[act[full]], k_max)
                rj = drafted & has
                k_cur[act[rj]] = np.clip(2 * (J[rj] + 1), k_min, k_max)

        sample = x
        if terminal:
            # the last step returns x̂0 = D(x_{S−1}) exactly, as step.advance does
            sample = step.advance(S - 1, x, dcur, None)

    report(S, S, "ASD")
    cost = counted.cost
    k_arr, kk_arr = np.stack(rec_k), np.stack(rec_kk)
    acc_arr, rows_arr = np.stack(rec_acc), np.stack(rec_rows)
    drafted = kk_arr >= 1
    accepted = acc_arr[drafted]
    decided = np.minimum(acc_arr + 1, kk_arr)[drafted]
    advance = np.where(acc_arr < kk_arr, acc_arr + 1, kk_arr)[drafted]
    info = {
        "nfe": cost.evaluations / B, "n_steps": S, "batch": B, "k": k, "adaptive": adaptive,
        "k_min": k_min, "k_max": k_max, "drift": drift, "verify": verify,
        "rounds_per_chain": rounds_chain, "evaluations_per_chain": evals_chain,
        "mean_rounds": float(rounds_chain.mean()),
        "k_per_round": k_arr, "draft_lengths": kk_arr, "accepted_lengths": acc_arr,
        "rows_per_round": rows_arr,
        "acceptance_rate": float(accepted.sum() / decided.sum()) if decided.sum() else 1.0,
        "mean_accepted_length": float(accepted.mean()) if accepted.size else 0.0,
        "mean_advance": float(advance.mean()) if advance.size else 0.0,
        "n_rejections": int((acc_arr[drafted] < kk_arr[drafted]).sum()),
    }
    return SampleResult(sample, cost, info)
