"""GPU wall-clock of parallel diffusion sampling on a Stable-Diffusion-sized UNet.

Builds a **randomly initialised** SD-v1/2-sized ``UNet2DConditionModel`` from a config (4 latent
channels, 64×64 latents, block channels (320, 640, 1280, 1280), cross-attention dim 1024; no
downloads), random text embeddings, classifier-free guidance by default, and times on the same
device, in the same process:

- sequential sampling (the baseline),
- Picard iteration (ParaDiGMS) for a few windows × tol ∈ {0.1, 1e-3},
- ASD (``parasample.diffusion.asd.sample_asd``, DDPM only) when that module exists,

for DDPM-100/1000 and DDIM-50/200 schedulers (SD's scaled-linear schedule, leading spacing,
offset 1). Per method: ≥ 2 warm-ups, ``torch.cuda.synchronize()`` around each timed run, the
median of ≥ 5 runs (seeds seed+r), rounds, NFE, UNet rows, peak memory, the speed-up against
sequential in this run, and for Picard the same-noise distance to the sequential output.
A random network is not a trained one: rounds (and ASD acceptance) on real weights differ;
the point is the hardware side, T_model(L·B) against T_model(B).

    # one GPU, about 5–8 min on an H100 (DDPM-100 and DDIM-50 only):
    python benchmarks/diffusion_gpu.py --quick --out results/diffusion_gpu
    # everything (DDPM-100/1000, DDIM-50/200; tens of minutes):
    python benchmarks/diffusion_gpu.py --out results/diffusion_gpu
    # all visible GPUs through ReplicatedModel:
    python benchmarks/diffusion_gpu.py --quick --gpus all --out results/diffusion_gpu_multi
    # CPU smoke test with a tiny UNet (seconds):
    python benchmarks/diffusion_gpu.py --tiny --quick --device cpu --out /tmp/diffusion_gpu

Writes ``<out>.json`` and ``<out>.md`` (after every measurement, so a run stopped by a time
limit keeps what it measured) and prints the markdown. ``--time-budget`` skips what is left
once the budget is spent. Needs torch and diffusers; run from the repository root (``src`` is
put on the path when parasample is not installed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
try:  # pragma: no cover - depends on the environment
    import parasample  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SD_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
)  # SD-v2 (865 M parameters); --sd1 switches to cross_attention_dim 768, 8 heads
TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
    block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
    attention_head_dim=8, norm_num_groups=8,
)
SD_SCHEDULE = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                   steps_offset=1, clip_sample=False, timestep_spacing="leading")


# --------------------------------------------------------------------------- plumbing
def _csv(s, cast):
    return [cast(v) for v in str(s).split(",") if v.strip()]


def _configs(s):
    out = []
    for item in _csv(s, str):
        kind, _, steps = item.partition(":")
        if kind not in ("ddpm", "ddim") or not steps.isdigit():
            raise SystemExit(f"bad config {item!r}; use e.g. ddpm:100,ddim:50")
        out.append((kind, int(steps)))
    return out


class Clock:
    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def __call__(self, fn):
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - t0, out


def _env(args, device, dtype, unet, n_gpus):
    import diffusers

    env = {
        "python": platform.python_version(), "torch": torch.__version__,
        "diffusers": diffusers.__version__, "device": str(device), "dtype": str(dtype),
        "batch": args.batch, "guidance_scale": args.guidance, "latent_size": args.latent_size,
        "unet_parameters": int(sum(p.numel() for p in unet.parameters())),
        "unet": "tiny" if args.tiny else ("sd1-like" if args.sd1 else "sd2-like"),
        "warmup": args.warmup, "repeats": args.repeats, "gpus_used": n_gpus,
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=p.name, gpu_count_visible=torch.cuda.device_count(),
                   gpu_memory_gib=round(p.total_memory / 2 ** 30, 1), cuda=torch.version.cuda,
                   interconnect=("single GPU" if n_gpus == 1
                                 else "not measured (see nvidia-smi topo -m)"))
    else:
        env.update(gpu=None, cpu=platform.processor() or platform.machine())
    return env


# --------------------------------------------------------------------------- measurement
def _measure(name, run, clock, args, device, reset_counter, budget):
    """Warm up, then time ``args.repeats`` runs (seed+r each); returns (row, samples)."""
    for w in range(args.warmup):
        run(args.seed + 1000 + w)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, results, samples = [], [], []
    for r in range(args.repeats):
        reset_counter()
        dt, res = clock(lambda: run(args.seed + r))
        times.append(dt)
        results.append(res)
        samples.append(res.sample.detach().float().cpu())
        if budget.exceeded() and r + 1 >= 3:  # keep a median of at least 3 if time runs out
            break
    res = results[0]
    B = args.batch
    row = {
        "method": name, "median_s": statistics.median(times), "min_s": min(times),
        "times_s": times, "rounds": [int(x.cost.rounds) for x in results],
        "evaluations": int(res.cost.evaluations), "nfe_per_sample": res.cost.evaluations / B,
        "unet_rows_last": None,
    }
    if device.type == "cuda":
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    info = res.info
    for key in ("acceptance_rate", "mean_accepted_length", "mean_advance", "n_rejections"):
        if key in info and np.isscalar(info[key]):
            row[key] = float(info[key])
    return row, samples


def _model_scaling(model, rows_list, shape, clock, device, dtype, repeats=5):
    """Median seconds of one denoiser call (incl. guidance) at each number of rows."""
    out = {}
    sch_t = torch.tensor(500, device=device)
    with torch.inference_mode():
        for n in rows_list:
            x = torch.randn((n,) + tuple(shape), device=device, dtype=dtype)
            t = sch_t.expand(n)
            sidx = torch.arange(n, device=device) % 1
            for _ in range(2):
                model.predict(x, t, sidx)
            ts = [clock(lambda: model.predict(x, t, sidx))[0] for _ in range(repeats)]
            out[int(n)] = statistics.median(ts)
    return out


class Budget:
    def __init__(self, seconds):
        self.t0 = time.perf_counter()
        self.seconds = seconds

    def elapsed(self):
        return time.perf_counter() - self.t0

    def exceeded(self):
        return self.seconds is not None and self.elapsed() > self.seconds


# --------------------------------------------------------------------------- report
def _markdown(report):
    env = report["env"]
    lines = [
        "# Parallel diffusion sampling: wall-clock on a random SD-sized UNet",
        "",
        f"device **{env.get('gpu') or env['device']}** × {env['gpus_used']}, dtype {env['dtype']}, "
        f"batch {env['batch']}, guidance {env['guidance_scale']}, latents "
        f"{env['latent_size']}², UNet {env['unet']} ({env['unet_parameters'] / 1e6:.0f} M params), "
        f"torch {env['torch']}, diffusers {env['diffusers']}; median of {env['repeats']} after "
        f"{env['warmup']} warm-ups. Speed-ups are against sequential in the same run.",
        "",
        "| scheduler | S | method | median s | speed-up | rounds | S/rounds | NFE/sample | NFE/S "
        "| peak GiB | max abs diff vs seq | ASD acceptance |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cfg in report["configs"]:
        for row in cfg["rows"]:
            if row.get("skipped"):
                lines.append(f"| {cfg['scheduler']} | {cfg['n_steps']} | {row['method']} | "
                             f"skipped: {row['skipped']} | | | | | | | | |")
                continue
            rounds = statistics.median(row["rounds"])
            mem = row.get("peak_mem_gib")
            diff = row.get("max_abs_diff_vs_seq")
            acc = row.get("acceptance_rate")
            lines.append(
                f"| {cfg['scheduler']} | {cfg['n_steps']} | {row['method']} | "
                f"{row['median_s']:.3f} | {row.get('speedup', float('nan')):.2f}× | "
                f"{rounds:g} | {cfg['n_steps'] / rounds:.1f} | {row['nfe_per_sample']:.0f} | "
                f"{row['nfe_per_sample'] / cfg['n_steps']:.2f} | "
                f"{'' if mem is None else f'{mem:.2f}'} | "
                f"{'' if diff is None else f'{diff:.2e}'} | "
                f"{'' if acc is None else f'{acc:.2f}'} |")
    scal = report.get("model_scaling")
    if scal:
        lines += ["", "One denoiser call (guided rows count once; the UNet runs twice as many "
                  "with guidance):", "", "| rows | median ms | ms per row | vs 1 call of B |",
                  "|---|---|---|---|"]
        base = scal[str(report["env"]["batch"])] if str(report["env"]["batch"]) in scal else None
        for n, s in sorted(((int(k), v) for k, v in scal.items())):
            rel = "" if base is None else f"{s / base:.2f}×"
            lines.append(f"| {n} | {1e3 * s:.2f} | {1e3 * s / n:.3f} | {rel} |")
    if report.get("notes"):
        lines += [""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def _write(report, out):
    if not out:
        return
    base = out[:-5] if out.endswith(".json") else (out[:-3] if out.endswith(".md") else out)
    d = os.path.dirname(base)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(base + ".json", "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1, default=str)
    with open(base + ".md", "w", encoding="utf-8") as fh:
        fh.write(_markdown(report))


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", metavar="PATH", help="write PATH.json and PATH.md")
    p.add_argument("--quick", action="store_true",
                   help="DDPM-100 and DDIM-50 only, fewer variants (fits ~10 GPU minutes)")
    p.add_argument("--tiny", action="store_true", help="a tiny UNet (CPU smoke test)")
    p.add_argument("--sd1", action="store_true", help="SD-v1-like UNet (cross-attention 768)")
    p.add_argument("--device", default=None, help="cuda:0 (default when available) or cpu")
    p.add_argument("--gpus", default="1",
                   help="GPUs to replicate the UNet on (ReplicatedModel): a number or 'all'; "
                        "on CPU, N CPU replicas (smoke test of that path)")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default=None,
                   help="UNet dtype (default fp16 on CUDA, fp32 on CPU); the state is float32")
    p.add_argument("--batch", type=int, default=1, help="samples per run (default 1)")
    p.add_argument("--guidance", type=float, default=7.5,
                   help="classifier-free guidance weight; <= 1 disables it (default 7.5)")
    p.add_argument("--latent-size", type=int, default=None, help="latent side (64; tiny 8)")
    p.add_argument("--configs", default=None,
                   help="e.g. ddpm:100,ddpm:1000,ddim:50,ddim:200 (the default; quick: "
                        "ddpm:100,ddim:50)")
    p.add_argument("--windows", default=None, help="Picard windows (default 16,32; quick 16)")
    p.add_argument("--tols", default="0.1,1e-3", help="Picard tolerances (default 0.1,1e-3)")
    p.add_argument("--asd-k", default=None, help="ASD draft lengths (default 8,16; quick 16)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up runs per method (>= 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per method (>= 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; use 1 on a loaded small CPU)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds; skip what is left once spent (results so far are kept)")
    args = p.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    import diffusers

    from parasample.diffusion import sample_picard, sample_sequential
    from parasample.diffusion.hf import from_diffusers
    from parasample.diffusion.multi_device import ReplicatedModel
    try:
        from parasample.diffusion.asd import sample_asd
    except ImportError:
        sample_asd = None

    device = torch.device(args.device or ("cuda:0" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[
        args.dtype or ("fp16" if device.type == "cuda" else "fp32")]
    configs = _configs(args.configs or ("ddpm:100,ddim:50" if args.quick
                                        else "ddpm:100,ddpm:1000,ddim:50,ddim:200"))
    windows = _csv(args.windows or ("16" if args.quick else "16,32"), int)
    tols = _csv(args.tols, float)
    ks = _csv(args.asd_k or ("16" if args.quick else "8,16"), int)
    if args.latent_size is None:
        args.latent_size = 8 if args.tiny else 64
    if device.type == "cuda":
        n_gpus = torch.cuda.device_count() if args.gpus == "all" else int(args.gpus)
        n_gpus = max(1, min(n_gpus, torch.cuda.device_count()))
    else:  # CPU: --gpus N makes N CPU replicas (a smoke test of the multi-device path)
        n_gpus = 1 if args.gpus == "all" else max(1, int(args.gpus))
    budget = Budget(args.time_budget)
    clock = Clock(device)
    notes = []
    if args.warmup < 2 or args.repeats < 5:
        notes.append(f"warm-up {args.warmup} / repeats {args.repeats} are below the recommended "
                     "2 / 5: indicative only")
    if device.type != "cuda":
        notes.append("CPU run: a smoke test, not a GPU claim")
    if sample_asd is None:
        notes.append("ASD skipped: parasample.diffusion.asd.sample_asd is not available")

    # --- the model
    ucfg = dict(TINY_UNET if args.tiny else SD_UNET)
    if args.sd1 and not args.tiny:
        ucfg.update(cross_attention_dim=768, attention_head_dim=8, use_linear_projection=False)
    ucfg["sample_size"] = args.latent_size

    def build(dev):
        torch.manual_seed(args.seed)
        with torch.device(dev):  # random init directly on the device (fast for 865 M params)
            u = diffusers.UNet2DConditionModel(**ucfg)
        return u.to(device=dev, dtype=dtype).eval().requires_grad_(False)

    t_build = time.perf_counter()
    if n_gpus > 1:
        devs = ([f"cuda:{i}" for i in range(n_gpus)] if device.type == "cuda"
                else [str(device)] * n_gpus)
        unet = ReplicatedModel(build, devs)
        base_unet = unet.replicas[0]
    else:
        unet = base_unet = build(device)
    t_build = time.perf_counter() - t_build
    g = torch.Generator().manual_seed(args.seed)
    seq_len, dim = 77, ucfg["cross_attention_dim"]
    cond = torch.randn(args.batch, seq_len, dim, generator=g)
    uncond = torch.randn(1, seq_len, dim, generator=g)
    guided = args.guidance > 1.0
    shape = (4, args.latent_size, args.latent_size)

    report = {"env": _env(args, device, dtype, base_unet, n_gpus), "configs": [],
              "model_scaling": {}, "notes": notes,
              "settings": {"windows": windows, "tols": tols, "asd_k": ks,
                           "configs": [f"{k}:{s}" for k, s in configs],
                           "build_s": round(t_build, 2), "schedule": SD_SCHEDULE}}
    print(f"# {report['env'].get('gpu') or device} × {n_gpus}, {dtype}, UNet "
          f"{report['env']['unet_parameters'] / 1e6:.0f} M params, built in {t_build:.1f} s",
          flush=True)

    def make(kind, S):
        cls = diffusers.DDPMScheduler if kind == "ddpm" else diffusers.DDIMScheduler
        extra = {} if kind == "ddpm" else {"set_alpha_to_one": False}
        sch = cls(**SD_SCHEDULE, **extra)
        return from_diffusers(unet, sch, n_steps=S,
                              guidance_scale=args.guidance if guided else None,
                              cond=cond, uncond=uncond if guided else None)

    # --- one denoiser call against the number of rows
    model0, _ = make("ddim", 10)
    rows = sorted({args.batch} | {args.batch * w for w in windows}
                  | ({args.batch * (k + 1) for k in ks} if sample_asd else set()))
    try:
        report["model_scaling"] = {str(k): v for k, v in _model_scaling(
            model0, rows, shape, clock, device, torch.float32).items()}
    except torch.cuda.OutOfMemoryError:  # pragma: no cover - GPU only
        notes.append("model scaling: out of memory at the largest row count")
    _write(report, args.out)

    # --- the samplers
    for kind, S in configs:
        cfg = {"scheduler": kind.upper(), "n_steps": S, "rows": []}
        report["configs"].append(cfg)
        model, step = make(kind, S)
        fn = model.fn

        def reset():
            fn.reset()

        methods = [("sequential", lambda seed: sample_sequential(
            model, step, shape=shape, batch=args.batch, rng=seed))]
        for w in windows:
            for tol in tols:
                methods.append((f"picard p={min(w, S)} tol={tol:g}",
                                (lambda w, tol: lambda seed: sample_picard(
                                    model, step, shape=shape, batch=args.batch, rng=seed,
                                    window=w, tol=tol))(w, tol)))
        if sample_asd is not None and kind == "ddpm":
            variants = [(k, False) for k in ks] + ([] if args.quick else [(max(ks), True)])
            for k, adaptive in variants:
                methods.append((f"asd k={k}" + (" adaptive" if adaptive else ""),
                                (lambda k, a: lambda seed: sample_asd(
                                    model, step, shape=shape, batch=args.batch, rng=seed, k=k,
                                    adaptive=a))(k, adaptive)))
        seq_samples, seq_median = None, None
        for name, run in methods:
            if budget.exceeded():
                cfg["rows"].append({"method": name, "skipped": "time budget"})
                _write(report, args.out)
                continue
            try:
                row, samples = _measure(name, run, clock, args, device, reset, budget)
            except torch.cuda.OutOfMemoryError:  # pragma: no cover - GPU only
                torch.cuda.empty_cache()
                cfg["rows"].append({"method": name, "skipped": "out of memory"})
                _write(report, args.out)
                continue
            row["unet_rows_last"] = fn.unet_rows
            if name == "sequential":
                seq_samples, seq_median = samples, row["median_s"]
            if seq_median is not None:
                row["speedup"] = seq_median / row["median_s"]
            if seq_samples is not None and name.startswith("picard"):
                n = min(len(samples), len(seq_samples))
                d = [float((a - b).abs().max()) for a, b in zip(samples[:n], seq_samples[:n])]
                r = [float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())
                     for a, b in zip(samples[:n], seq_samples[:n])]
                row["max_abs_diff_vs_seq"] = max(d)
                row["rel_rms_diff_vs_seq"] = max(r)
            cfg["rows"].append(row)
            print(f"{kind}-{S:<5} {name:<26} {row['median_s']:8.3f} s  "
                  f"{row.get('speedup', float('nan')):5.2f}x  rounds "
                  f"{statistics.median(row['rounds']):g}  NFE/sample {row['nfe_per_sample']:.0f}"
                  f"  [{budget.elapsed():.0f} s]", flush=True)
            _write(report, args.out)
    if isinstance(unet, ReplicatedModel):
        unet.close()
    report["total_s"] = round(budget.elapsed(), 1)
    _write(report, args.out)
    print()
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
