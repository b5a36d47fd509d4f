"""Diffusion: rounds, NFE, acceptance, quality and CPU wall-clock.

For the 2-D ring Gaussian mixture (closed-form denoiser, float64) and the shipped digits
model (MLP, float32), at DDPM 100 and 1000 steps:

(a) **Latency runs** (batch 1, ``repeats`` seeds): rounds (mean ± sd), round speed-up S/rounds,
    NFE per sample and the NFE ratio NFE/S, for sequential, Picard (several windows,
    tol ∈ {1e-3, 0.1}) and ASD (fixed k and adaptive), plus ASD's acceptance rate and mean
    accepted length.
(b) **Quality** from one lockstep batch of N samples per method:
    - ring GMM: energy distance with a permutation p-value against *independent* sequential
      samples (exactness) and against true mixture draws (the chain's own discretisation
      error, the same for every sampler);
    - digits: the shipped classifier's Fréchet distance to the held-out split, mean max-softmax
      confidence and χ² of the class histogram; the sequential seed-to-seed spread is the
      yardstick;
    - Picard: the same-noise distance max|par − seq| (fidelity).
(c) **CPU wall-clock** of the batched digits MLP at batch 1 with a fixed thread count:
    median of ``repeats`` runs after a warm-up, sequential in the same process, speed-up
    = t_seq / t_method. Claims are these same-run ratios; GPU numbers come only from
    ``benchmarks/diffusion_gpu.py`` on a GPU.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..core import as_count
from ..core.progress import progress_reporter
from ..core.rng import as_generator
from .harness import environment_info, markdown_table

__all__ = ["run", "method_grid", "STEPS", "QUICK_STEPS"]

STEPS = (100, 1000)
QUICK_STEPS = (100,)
PICARD_TOLS = (1e-3, 0.1)


def method_grid(n_steps: int, *, quick: bool = False) -> list[tuple[str, dict]]:
    """(name, kwargs) of every configuration timed at ``n_steps`` steps."""
    windows = (32,) if quick else ((16, 32, 100) if n_steps >= 1000 else (8, 32, 100))
    ks = (8, 16, 32) if n_steps >= 1000 else (4, 8, 16)
    if quick:
        ks = ks[1:2]
    grid: list[tuple[str, dict]] = [("sequential", {})]
    grid += [("picard", {"window": min(p, n_steps), "tol": tol})
             for p in windows for tol in PICARD_TOLS]
    grid += [("asd", {"k": k}) for k in ks]
    grid.append(("asd", {"k": 16, "adaptive": True}))
    return grid


def _label(name: str, kw: dict) -> str:
    if name == "picard":
        return f"Picard p={kw['window']} tol={kw['tol']:g}"
    if name == "asd":
        return "ASD adaptive" if kw.get("adaptive") else f"ASD k={kw['k']}"
    return "sequential"


def _sampler(name: str) -> Callable:
    from .. import diffusion as D

    return {"sequential": D.sample_sequential, "picard": D.sample_picard,
            "asd": D.sample_asd}[name]


def _acceptance(info: dict) -> tuple[float, float]:
    return (float(info.get("acceptance_rate", float("nan"))),
            float(info.get("mean_accepted_length", float("nan"))))


# --------------------------------------------------------------------------- targets
def _targets(quick: bool):
    """(name, denoiser, shape, quality batch N) of the benchmark targets."""
    from ..diffusion import Schedule, ring_gmm
    from ..diffusion.digits import load_digits_model

    schedule = Schedule.linear()
    return [("ring GMM (2-D, 8 modes)", ring_gmm(schedule), (2,), 256 if quick else 512),
            ("digits MLP (64-d)", load_digits_model(), (64,), 128 if quick else 256)]


# --------------------------------------------------------------------------- (a) latency
def _latency(target, model, shape, n_steps, grid, repeats, seed) -> list[dict]:
    from ..diffusion import DDPMStep

    step = DDPMStep.from_schedule(model.schedule, n_steps)
    rows = []
    for name, kw in grid:
        fn = _sampler(name)
        rounds, nfe, acc, alen = [], [], [], []
        for r in range(repeats):
            res = fn(model, step, shape=shape, batch=1, rng=seed + r, **kw)
            rounds.append(res.cost.rounds)
            nfe.append(res.cost.evaluations)
            a, ln = _acceptance(res.info)
            acc.append(a)
            alen.append(ln)
        rows.append({
            "section": "latency", "target": target, "steps": n_steps,
            "method": _label(name, kw), "rounds_mean": float(np.mean(rounds)),
            "rounds_sd": float(np.std(rounds)), "rounds_max": int(np.max(rounds)),
            "round_speedup": n_steps / float(np.mean(rounds)),
            "nfe": float(np.mean(nfe)), "nfe_ratio": float(np.mean(nfe)) / n_steps,
            "acceptance": float(np.nanmean(acc)) if name == "asd" else None,
            "mean_accepted": float(np.nanmean(alen)) if name == "asd" else None,
        })
    return rows


# --------------------------------------------------------------------------- (b) quality
def _quality(target, model, shape, n_steps, grid, N, seed, is_gmm) -> list[dict]:
    from ..diffusion import DDPMStep, sample_sequential
    from ..diffusion.metrics import digits_quality, energy_distance, permutation_test

    step = DDPMStep.from_schedule(model.schedule, n_steps)
    ref_seed, test_seed = seed + 10_000, seed + 20_000
    reference = sample_sequential(model, step, shape=shape, batch=N, rng=ref_seed).sample
    same_noise_seq = sample_sequential(model, step, shape=shape, batch=N, rng=test_seed).sample
    truth = model.sample_data(N, rng=seed + 30_000) if is_gmm else None
    rows = []
    for name, kw in grid:
        res = _sampler(name)(model, step, shape=shape, batch=N, rng=test_seed, **kw)
        x = res.sample.detach().cpu().double().reshape(N, -1).numpy()
        row: dict[str, Any] = {"section": "quality", "target": target, "steps": n_steps,
                               "method": _label(name, kw), "batch": N,
                               "batch_rounds": res.cost.rounds,
                               "nfe": res.cost.evaluations / N}
        if name == "picard":
            row["max_abs_vs_sequential_same_noise"] = float(
                (res.sample.double() - same_noise_seq.double()).abs().max())
        if is_gmm:
            e, p = permutation_test(x, reference, energy_distance, n_permutations=200,
                                    rng=seed)
            row.update(energy_vs_sequential=e, p_vs_sequential=p,
                       energy_vs_truth=energy_distance(x, truth))
        else:
            q = digits_quality(x)
            row.update(frechet=q["frechet"], confidence=q["confidence"],
                       chi2=q["chi2"])
        rows.append(row)
    if not is_gmm:
        q = digits_quality(reference)
        rows.append({"section": "quality", "target": target, "steps": n_steps,
                     "method": "sequential (2nd seed)", "batch": N, "batch_rounds": n_steps,
                     "nfe": float(n_steps), "frechet": q["frechet"],
                     "confidence": q["confidence"], "chi2": q["chi2"]})
    return rows


# --------------------------------------------------------------------------- (c) wall
def _wall(model, shape, n_steps, grid, repeats, seed, threads) -> list[dict]:
    from ..diffusion import DDPMStep

    step = DDPMStep.from_schedule(model.schedule, n_steps)
    times: dict[str, list[float]] = {}
    labels = [(_label(n, kw), n, kw) for n, kw in grid]
    for label, name, kw in labels:  # warm-up
        _sampler(name)(model, step, shape=shape, batch=1, rng=seed, **kw)
    for r in range(repeats):  # interleaved repetitions
        for label, name, kw in labels:
            t0 = time.perf_counter()
            res = _sampler(name)(model, step, shape=shape, batch=1, rng=seed + r, **kw)
            times.setdefault(label, []).append(time.perf_counter() - t0)
            times.setdefault(label + "#rounds", []).append(res.cost.rounds)
    t_seq = float(np.median(times["sequential"]))
    rows = []
    for label, _name, _kw in labels:
        t = float(np.median(times[label]))
        rows.append({"section": "wall", "target": "digits MLP (64-d), CPU, batch 1",
                     "steps": n_steps, "method": label, "threads": threads,
                     "rounds_mean": float(np.mean(times[label + "#rounds"])),
                     "seconds_median": t, "speedup_vs_sequential": t_seq / t})
    return rows


# --------------------------------------------------------------------------- markdown
def _f(x, nd=2) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    if isinstance(x, float):
        if abs(x) >= 100:
            return f"{x:,.0f}"
        if abs(x) < 1e-2 and x != 0:
            return f"{x:.1e}"
        return f"{x:.{nd}f}"
    return str(x)


def _markdown(lat, qual, wall) -> str:
    parts = ["### (a) Rounds and NFE, batch 1 (mean over seeds)", markdown_table(
        ["target", "steps", "method", "rounds (mean ± sd)", "max", "S/rounds", "NFE",
         "NFE/S", "acceptance", "mean accepted"],
        [[r["target"], r["steps"], r["method"],
          f"{r['rounds_mean']:.1f} ± {r['rounds_sd']:.1f}", r["rounds_max"],
          _f(r["round_speedup"], 1), _f(r["nfe"], 0), _f(r["nfe_ratio"]),
          _f(r["acceptance"]), _f(r["mean_accepted"], 1)] for r in lat])]
    gmm = [r for r in qual if "energy_vs_sequential" in r]
    if gmm:
        parts += ["", "### (b) Quality, ring GMM (one lockstep batch; energy distance)",
                  markdown_table(
                      ["steps", "method", "batch rounds", "E vs sequential", "perm. p",
                       "E vs true mixture", "max|par−seq| same noise"],
                      [[r["steps"], r["method"], r["batch_rounds"],
                        _f(r["energy_vs_sequential"], 4), _f(r["p_vs_sequential"], 3),
                        _f(r["energy_vs_truth"], 4),
                        _f(r.get("max_abs_vs_sequential_same_noise"))] for r in gmm])]
    dig = [r for r in qual if "frechet" in r]
    if dig:
        parts += ["", "### (b) Quality, digits (shipped classifier; Fréchet to held-out split)",
                  markdown_table(
                      ["steps", "method", "batch rounds", "Fréchet", "confidence", "χ² (9 df)",
                       "max|par−seq| same noise"],
                      [[r["steps"], r["method"], r["batch_rounds"], _f(r["frechet"]),
                        _f(r["confidence"], 3), _f(r["chi2"], 1),
                        _f(r.get("max_abs_vs_sequential_same_noise"))] for r in dig])]
    if wall:
        parts += ["", "### (c) CPU wall-clock, digits MLP, batch 1 (median, same run)",
                  markdown_table(
                      ["steps", "method", "threads", "rounds", "seconds", "speed-up"],
                      [[r["steps"], r["method"], r["threads"], _f(r["rounds_mean"], 1),
                        f"{r['seconds_median']:.3f}", f"{r['speedup_vs_sequential']:.2f}×"]
                       for r in wall])]
    return "\n".join(parts)


# --------------------------------------------------------------------------- run
def run(*, sizes: Optional[Sequence[int]] = None, repeats: int = 5, seed: int = 0,
        quick: bool = False, cap_seconds: float = 0.0, progress=None,
        threads: int = 1) -> dict[str, Any]:
    """Run sections (a)–(c); returns {"meta", "rows", "markdown"}.

    ``sizes`` overrides the step counts (default 100 and 1000; ``quick``: 100 only, fewer
    configurations and smaller batches). ``repeats`` is the number of seeds in (a) and of
    timed runs in (c). ``threads`` fixes torch's CPU thread count for the whole run (the
    models are tiny: on 2 cores one thread is fastest). ``cap_seconds`` is accepted for CLI
    uniformity and unused.
    """
    import torch

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(sizes, repeats, seed, quick, progress, threads)
    finally:
        torch.set_num_threads(old_threads)


def _run(sizes, repeats, seed, quick, progress, threads) -> dict[str, Any]:
    repeats = as_count(repeats, "repeats", minimum=1)
    steps = tuple(sizes) if sizes is not None else (QUICK_STEPS if quick else STEPS)
    steps = tuple(as_count(s, "step count", minimum=2) for s in steps)
    as_generator(seed)
    report = progress_reporter(progress)
    targets = _targets(quick)
    total = len(steps) * (2 * len(targets) + 1)
    done = 0
    lat, qual, wall = [], [], []
    t0 = time.perf_counter()
    for S in steps:
        grid = method_grid(S, quick=quick)
        for ti, (name, model, shape, N) in enumerate(targets):
            report(done, total, f"{name}: latency, {S} steps")
            lat += _latency(name, model, shape, S, grid, repeats, seed)
            done += 1
            report(done, total, f"{name}: quality, {S} steps")
            qual += _quality(name, model, shape, S, grid, N, seed, is_gmm=(ti == 0))
            done += 1
        report(done, total, f"CPU wall-clock, {S} steps")
        wall += _wall(targets[1][1], targets[1][2], S, grid, repeats, seed, threads)
        done += 1
    report(total, total, "done")
    meta = environment_info(packages=("numpy", "scipy", "torch", "parasample"),
                            benchmark="diffusion", steps=list(steps), repeats=repeats,
                            seed=seed, quick=quick, threads=threads,
                            seconds=time.perf_counter() - t0)
    return {"meta": meta, "rows": lat + qual + wall, "markdown": _markdown(lat, qual, wall)}
