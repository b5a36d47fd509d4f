"""``parasample diffusion``: parallel sampling of diffusion models (Picard / ASD).

Examples::

    parasample diffusion --model gmm --method picard --steps 1000 --window 100 --tol 0.1
    parasample diffusion --model gmm --method asd --steps 1000 --k 32 --samples 256 --png ring.png
    parasample diffusion --model digits --method asd --steps 1000 --samples 64 --png digits.png
    parasample diffusion --model digits --method picard --sampler ddim --steps 100 --json

Every run also draws the sequential sample from the same noise, in the same process, and
prints both rounds, NFE and times: for Picard the same-noise distance max|par − seq| (the
error controlled by --tol); for ASD (exact in law, not pathwise) on the GMM an energy-distance
permutation test against the sequential samples.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ._common import add_common_options, emit_json, image_file, progress_option

MODELS = ("gmm", "digits")
METHODS = ("picard", "asd", "sequential")


def register(sub) -> None:
    p = sub.add_parser("diffusion", help="parallel diffusion sampling (Picard, ASD)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=MODELS, default="gmm",
                   help="gmm: 2-D 8-mode ring (closed form); digits: the shipped 8×8 model")
    p.add_argument("--method", choices=METHODS, default="picard")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm",
                   help="step rule (ASD needs ddpm)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM η (0 = ODE)")
    p.add_argument("--steps", type=int, default=1000, help="sampling steps S")
    p.add_argument("--spacing", choices=("leading", "trailing", "linspace"), default="leading")
    p.add_argument("--window", type=int, default=32, help="Picard window p")
    p.add_argument("--tol", type=float, default=0.1, help="Picard tolerance")
    p.add_argument("--k", type=int, default=16, help="ASD draft length")
    p.add_argument("--adaptive", action="store_true", help="ASD: adapt k from the past")
    p.add_argument("--samples", type=int, default=16, help="batch of samples (lockstep)")
    p.add_argument("--png", type=image_file, help="write the samples as a PNG")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the built-in models are tiny, and "
                        "more threads only add overhead)")
    add_common_options(p)
    p.set_defaults(func=run)


def build(model_name: str, sampler: str, steps: int, spacing: str, eta: float):
    """(denoiser, step, shape) for the CLI's built-in models."""
    from .. import diffusion as D

    if model_name == "gmm":
        model, shape = D.ring_gmm(D.Schedule.linear()), (2,)
    else:
        from ..diffusion.digits import load_digits_model

        model, shape = load_digits_model(), (64,)
    if sampler == "ddpm":
        step = D.DDPMStep.from_schedule(model.schedule, steps, spacing)
    else:
        step = D.DDIMStep.from_schedule(model.schedule, steps, eta, spacing)
    return model, step, shape


def _run_method(args, model, step, shape):
    from .. import diffusion as D

    kw = {"shape": shape, "batch": args.samples, "rng": args.seed,
          "progress": progress_option(args)}
    if args.method == "picard":
        return D.sample_picard(model, step, window=args.window, tol=args.tol, **kw)
    if args.method == "asd":
        return D.sample_asd(model, step, k=args.k, adaptive=args.adaptive, **kw)
    return D.sample_sequential(model, step, **kw)


def run(args: argparse.Namespace) -> int:
    if args.steps < 2 or args.samples < 1:
        raise ValueError("--steps must be at least 2 and --samples at least 1")
    if args.method == "asd" and args.sampler != "ddpm":
        raise ValueError("ASD samples DDPM chains: use --sampler ddpm")
    from ..core.errors import require

    torch = require("torch", "torch")
    from .. import diffusion as D

    if args.threads < 1:
        raise ValueError("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    model, step, shape = build(args.model, args.sampler, args.steps, args.spacing, args.eta)
    t0 = time.perf_counter()
    res = _run_method(args, model, step, shape)
    t_method = time.perf_counter() - t0
    t0 = time.perf_counter()
    seq = D.sample_sequential(model, step, shape=shape, batch=args.samples, rng=args.seed)
    t_seq = time.perf_counter() - t0
    x = res.sample.detach().cpu().double()
    summary = {
        "model": args.model, "method": args.method, "sampler": args.sampler,
        "steps": args.steps, "samples": args.samples,
        "rounds": res.cost.rounds, "nfe_per_sample": res.cost.evaluations / args.samples,
        "sequential_rounds": seq.cost.rounds,
        "round_speedup": seq.cost.rounds / res.cost.rounds,
        "seconds": t_method, "seconds_sequential": t_seq,
    }
    if args.method == "picard":
        summary["max_abs_vs_sequential_same_noise"] = float(
            (x - seq.sample.detach().cpu().double()).abs().max())
    if args.method == "asd":
        summary["acceptance"] = res.info.get("acceptance_rate")
    if args.model == "gmm" and args.method == "asd" and args.samples >= 20:
        from ..diffusion.metrics import energy_distance, permutation_test

        ref = D.sample_sequential(model, step, shape=shape, batch=args.samples,
                                  rng=args.seed + 1).sample
        e, p = permutation_test(x, ref, energy_distance, n_permutations=200, rng=args.seed)
        summary.update(energy_vs_sequential=e, permutation_p=p)
    if args.png:
        _png(args.png, args.model, x.numpy(), f"{args.method}, {args.steps} steps")
        summary["png"] = str(args.png)
    if args.json:
        emit_json(summary)
        return 0
    line = (f"# {args.model}, {args.sampler.upper()} {args.steps} steps, {args.method}: "
            f"{summary['rounds']} rounds vs {summary['sequential_rounds']} sequential "
            f"({summary['round_speedup']:.1f}× fewer), NFE/sample "
            f"{summary['nfe_per_sample']:.0f}; {t_method:.2f} s vs {t_seq:.2f} s sequential "
            f"on the CPU")
    print(line)
    if "max_abs_vs_sequential_same_noise" in summary:
        print(f"  same-noise distance to sequential: "
              f"{summary['max_abs_vs_sequential_same_noise']:.2e} (tol {args.tol:g})")
    if summary.get("acceptance") is not None:
        print(f"  draft acceptance: {summary['acceptance']:.3f}")
    if "permutation_p" in summary:
        print(f"  energy distance vs independent sequential samples: "
              f"{summary['energy_vs_sequential']:.4f} (permutation p = "
              f"{summary['permutation_p']:.3f})")
    if args.png:
        print(f"  wrote {args.png}")
    return 0


def _png(path: Path, model_name: str, x: np.ndarray, title: str) -> None:
    if model_name == "digits":
        from ..diffusion.digits import save_digit_grid

        save_digit_grid(x, path, title=title)
        return
    from ..core.errors import require

    plt = require("matplotlib.pyplot", "plot")
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(x[:, 0], x[:, 1], s=4, alpha=0.6)
    ax.set_aspect("equal")
    ax.set_title(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------- tour
def tour_rows(seed: int, progress=None) -> list[dict]:
    """Rows of ``parasample tour``: Picard and ASD on the ring GMM, DDPM 1000 steps.

    Without PyTorch (``pip install -e .`` alone) one row says how to enable them."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return [{"domain": "diffusion", "method": "Picard (ParaDiGMS), ASD",
                 "example": "ring GMM, DDPM 1000 steps",
                 "exactness check": 'skipped: needs PyTorch (pip install "parasample[torch]")'}]
    import torch

    from .. import diffusion as D
    from ..diffusion.metrics import energy_distance, permutation_test

    del progress
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny closed-form model: extra threads only add overhead
    try:
        return _tour_rows(D, energy_distance, permutation_test, seed)
    finally:
        torch.set_num_threads(threads)


def _tour_rows(D, energy_distance, permutation_test, seed: int) -> list[dict]:
    model = D.ring_gmm(D.Schedule.linear())
    step = D.DDPMStep.from_schedule(model.schedule, 1000)
    rows = []
    t0 = time.perf_counter()
    seq = D.sample_sequential(model, step, shape=(2,), rng=seed)
    par = D.sample_picard(model, step, shape=(2,), rng=seed, window=100, tol=0.1)
    gap = float((par.sample - seq.sample).abs().max())
    exact = D.sample_picard(model, step, shape=(2,), rng=seed, window=100, tol=0.0)
    same = float((exact.sample - seq.sample).abs().max()) <= 1e-10
    rows.append({
        "domain": "diffusion", "method": "Picard (ParaDiGMS), p=100, tol=0.1",
        "example": "ring GMM, DDPM 1000 steps", "seq. rounds": seq.cost.rounds,
        "par. rounds": par.cost.rounds,
        "speed-up": f"{seq.cost.rounds / par.cost.rounds:.1f}×",
        "exactness check": (f"{'pass' if same and gap < 0.1 else 'FAIL'}: tol=0 == sequential"
                            f" ({same}); tol=0.1 off by {gap:.1e}"),
        "time (s)": time.perf_counter() - t0,
    })
    t0 = time.perf_counter()
    N = 256
    asd = D.sample_asd(model, step, shape=(2,), batch=N, rng=seed, k=32)
    ref = D.sample_sequential(model, step, shape=(2,), batch=N, rng=seed + 1)
    one = D.sample_asd(model, step, shape=(2,), rng=seed, k=32)
    e, p = permutation_test(asd.sample, ref.sample, energy_distance, n_permutations=200,
                            rng=seed)
    rows.append({
        "domain": "diffusion", "method": "autospeculative decoding (ASD), k=32",
        "example": "ring GMM, DDPM 1000 steps", "seq. rounds": step.n_steps,
        "par. rounds": one.cost.rounds, "speed-up": f"{step.n_steps / one.cost.rounds:.1f}×",
        "exactness check": (f"{'pass' if p > 1e-3 else 'FAIL'}: energy test vs sequential, "
                            f"{N} samples, p = {p:.2f}"),
        "time (s)": time.perf_counter() - t0,
    })
    return rows
