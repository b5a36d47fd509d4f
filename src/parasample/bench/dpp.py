"""DPP benchmark: parasample vs DPPy 0.3.3, comparisons R1–R7.

Kernel: L = ΦᵀΦ with Φ a 100×N standard Gaussian matrix (rank 100, E|X| ≈ 100). Both sides
get the same kernel in the same process run, with interleaved repetitions; the claim is the
ratio DPPy time / parasample time (medians). DPPy samplers that can take minutes ('Chol'
at large N, the vfx and alpha k-DPP samplers) run in a worker process under a per-call cap
and are reported as lower bounds ``≥`` when they hit it.

What each row times (all "subsequent" rows exclude one-off preparation, which is warm):

* R1 — preparation: ``DPP.from_features(Φᵀ).spectrum`` vs the dense ``scipy.linalg.eigh(L)``
  that DPPy runs on its first exact or k-DPP call. Also (informational) time to the first
  exact sample from scratch: ours from features vs ``FiniteDPP('likelihood', L=L)`` + first
  ``sample_exact('GS')``.
* R2 — exact DPP sample after preparation vs DPPy 'GS', 'GS_bis' ('KuTa12' at the smallest N).
* R3 — k-DPP (k=50) sample after preparation vs DPPy 'GS', 'GS_bis'; vs DPPy's dual path
  (``FiniteDPP('likelihood', L_gram_factor=Φ)``, which eigendecomposes ΦΦᵀ): first sample
  from scratch (ours from features) and subsequent samples.
* R4 — sequential sampler on the dense kernel (``DPP.from_likelihood(L)``, K cached) vs DPPy
  ``sample_exact('Chol')`` (K cached).
* R5 — low-rank sequential sampler on the features vs DPPy 'Chol'.
* R6 — 1000 exchange steps (k=50) and 1000 add–delete steps on the dense kernel vs DPPy
  ``sample_mcmc('E', size=50, nb_iter=1000)`` / ``sample_mcmc('AD', s_init=[],
  nb_iter=1000)`` (both add–delete chains start from ∅: DPPy's default start, a random
  subset of random size, fails at N=5000 where L has rank 100). Each side includes its
  own initialisation (ours: greedy MAP for the exchange chain; DPPy: random subsets).
* R7 — first k-DPP sample from scratch (ours: from features, incl. preparation) vs DPPy
  ``sample_exact_k_dpp(50, mode='vfx' | 'alpha')`` on a fresh
  ``FiniteDPP('likelihood', L_eval_X_data=(linear kernel, Φᵀ))``; smallest N only. When
  DPPy gives up ("maximum number of rejections") the call retries, and its time includes
  the failed attempts.

Numba compilation is excluded everywhere (every in-process task is warmed up once).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..core.errors import require
from ..core.progress import progress_reporter
from .harness import (Comparison, Task, environment_info, loadavg, measure,
                      restore_blas_threads, rows_markdown, set_blas_threads)

__all__ = ["run", "THRESHOLDS", "features"]

D_FEATURES = 100
K_DPP = 50
N_STEPS = 1000

#: the project's performance thresholds: (must, target) minimum ratios DPPy/parasample;
#: None = no threshold
THRESHOLDS = {
    "R1": (20.0, 50.0), "R1·first": (None, None), "R2": (1.0, 2.0), "R3": (1.0, 2.0),
    "R4": (5.0, 10.0), "R5": (100.0, None), "R6": (5.0, 20.0), "R7": (100.0, None),
}
_ROW_ORDER = list(THRESHOLDS)


# --------------------------------------------------------------------------- data
def features(n: int, seed: int, d: int = D_FEATURES) -> np.ndarray:
    """Φ: a d×n standard Gaussian matrix, reproducible from (seed, n)."""
    return np.random.default_rng([seed, n]).standard_normal((d, n))


def _import(module: str, name: str, fallback: Optional[str] = None) -> Callable:
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        if fallback is not None:
            try:
                return getattr(importlib.import_module(fallback), name)
            except (ImportError, AttributeError):
                pass
        missing = exc

        def unavailable(*args, **kwargs):
            raise ImportError(f"{module}.{name} is not available ({missing})")

        return unavailable


def _require_dppy():
    require("dppy", "bench")  # the baseline: DPPy 0.3.3


def _flushing(dppy_obj, call: Callable[[], Any]) -> Callable[[], Any]:
    """DPPy appends every sample to ``list_of_samples``; drop them so memory stays flat."""
    def fn():
        dppy_obj.list_of_samples = []
        return call()
    return fn


# --------------------------------------------------------------------------- DPPy worker
def dppy_worker_task(kind: str, n: int, seed: int, k: int = K_DPP):
    """Factory run in a worker process for the DPPy samplers that may hit the cap.

    Builds the inputs untimed and returns ``fn`` or ``(fn, setup)`` for the harness.
    """
    from dppy.finite_dpps import FiniteDPP

    Phi = features(n, seed)
    rs = np.random.RandomState(seed)
    if kind == "chol":
        L = Phi.T @ Phi
        dpp = FiniteDPP("likelihood", L=L)
        dpp.compute_K()  # dense eigh + K, cached: 'Chol' then only samples
        return _flushing(dpp, lambda: dpp.sample_exact(mode="Chol", random_state=rs))
    if kind == "kuta12":
        dpp = FiniteDPP("likelihood", L=Phi.T @ Phi)
        dpp.sample_exact(mode="GS", random_state=rs)  # dense eigh, cached
        return _flushing(dpp, lambda: dpp.sample_exact(mode="KuTa12", random_state=rs))
    if kind in ("vfx", "alpha"):
        from dppy.utils import example_eval_L_linear

        X = np.ascontiguousarray(Phi.T)

        def setup():
            return FiniteDPP("likelihood", L_eval_X_data=(example_eval_L_linear, X))

        def fn(fresh):
            # DPPy's rejection loops give up with ValueError ("maximum number of
            # rejections"); a user would retry, so the timed call retries, and the time
            # includes the failed attempts (the cap still bounds it)
            while True:
                try:
                    return fresh.sample_exact_k_dpp(k, mode=kind, random_state=rs,
                                                    verbose=False)
                except ValueError as exc:
                    if "maximum number of rejections" not in str(exc):
                        raise

        return fn, setup
    raise ValueError(f"unknown DPPy worker task {kind!r}")


# --------------------------------------------------------------------------- one size
def _tasks_for_size(n: int, *, seed: int, smallest: bool, cap: float,
                    repeats: int) -> tuple[list[Task], list[Comparison], dict]:
    import scipy.linalg as sla
    from dppy.finite_dpps import FiniteDPP

    from ..dpp.kernel import DPP

    sample_exact = _import("parasample.dpp.spectral", "sample_exact")
    sample_exact_k = _import("parasample.dpp.spectral", "sample_exact_k")
    sample_sequential = _import("parasample.dpp.sequential", "sample_sequential")
    sample_lowrank = _import("parasample.dpp.nonsymmetric", "sample_lowrank",
                             fallback="parasample.dpp.sequential")
    sample_mcmc = _import("parasample.dpp.mcmc", "sample_mcmc")

    Phi = features(n, seed)
    B = np.ascontiguousarray(Phi.T)
    L = Phi.T @ Phi
    k = K_DPP

    def gen(tag: int) -> np.random.Generator:
        return np.random.default_rng([seed, n, tag])

    def rstate() -> np.random.RandomState:
        return np.random.RandomState(seed)

    # ---- prepared objects (untimed)
    dpp_f = DPP.from_features(B)
    _ = dpp_f.spectrum
    lam, U = sla.eigh(L)  # what DPPy's first call computes; shared by the DPPy objects
    with _quiet():
        d_eig = FiniteDPP("likelihood", L=L, L_eig_dec=(lam, U))
        d_dual = FiniteDPP("likelihood", L_gram_factor=Phi)
        d_eig.sample_exact(mode="GS", random_state=rstate())
        d_eig.sample_exact_k_dpp(k, mode="GS", random_state=rstate())
        d_dual.sample_exact_k_dpp(k, mode="GS_bis", random_state=rstate())
    del lam, U
    try:
        dpp_L = DPP.from_likelihood(L)
    except Exception as exc:  # pragma: no cover - recorded by the tasks below
        dpp_L = exc

    def on_dense(fn):
        def call():
            if isinstance(dpp_L, Exception):
                raise dpp_L
            return fn(dpp_L)
        return call

    slow = n > 2000  # dense O(n³) tasks: no warm-up call, fewer repetitions
    big = dict(warmup=not slow, budget=cap, min_repeats=min(3, repeats))
    g = {name: gen(i) for i, name in enumerate(
        ["first", "exact", "k", "firstk", "seq", "lowrank", "ex", "ad"])}
    rs = {name: rstate() for name in ["first", "GS", "GS_bis", "kGS", "kGS_bis",
                                      "dual_first", "dual_next", "E", "AD"]}

    tasks = [
        # R1
        Task("prep_features", fn=lambda: DPP.from_features(B).spectrum),
        Task("dppy_eigh", fn=lambda: sla.eigh(L), **big),
        Task("first_exact", fn=lambda: sample_exact(DPP.from_features(B), rng=g["first"])),
        Task("dppy_first_GS", quiet=True, **big, fn=lambda: FiniteDPP(
            "likelihood", L=L).sample_exact(mode="GS", random_state=rs["first"])),
        # R2
        Task("exact", fn=lambda: sample_exact(dpp_f, rng=g["exact"])),
        Task("dppy_GS", quiet=True, fn=_flushing(
            d_eig, lambda: d_eig.sample_exact(mode="GS", random_state=rs["GS"]))),
        Task("dppy_GS_bis", quiet=True, fn=_flushing(
            d_eig, lambda: d_eig.sample_exact(mode="GS_bis", random_state=rs["GS_bis"]))),
        # R3
        Task("k_exact", fn=lambda: sample_exact_k(dpp_f, k, rng=g["k"])),
        Task("dppy_k_GS", quiet=True, fn=_flushing(
            d_eig, lambda: d_eig.sample_exact_k_dpp(k, mode="GS", random_state=rs["kGS"]))),
        Task("dppy_k_GS_bis", quiet=True, fn=_flushing(
            d_eig, lambda: d_eig.sample_exact_k_dpp(k, mode="GS_bis",
                                                    random_state=rs["kGS_bis"]))),
        Task("first_k", fn=lambda: sample_exact_k(DPP.from_features(B), k, rng=g["firstk"])),
        Task("dppy_dual_first", quiet=True, fn=lambda: FiniteDPP(
            "likelihood", L_gram_factor=Phi).sample_exact_k_dpp(
                k, mode="GS_bis", random_state=rs["dual_first"])),
        Task("dppy_dual_next", quiet=True, fn=_flushing(
            d_dual, lambda: d_dual.sample_exact_k_dpp(k, mode="GS_bis",
                                                      random_state=rs["dual_next"]))),
        # R4 / R5
        Task("sequential", fn=on_dense(lambda d: sample_sequential(d, rng=g["seq"])),
             **({"warmup": True, "budget": cap, "min_repeats": min(3, repeats)} if slow
                else {})),
        Task("lowrank", fn=lambda: sample_lowrank(dpp_f, rng=g["lowrank"])),
        Task("dppy_Chol", factory=dppy_worker_task, kwargs={"kind": "chol", "n": n,
             "seed": seed}, cap=cap, quiet=True, warmup=False, budget=cap, min_repeats=1),
        # R6
        Task("exchange", fn=on_dense(lambda d: sample_mcmc(d, k=k, n_steps=N_STEPS,
                                                           rng=g["ex"]))),
        Task("add_delete", fn=on_dense(lambda d: sample_mcmc(d, n_steps=N_STEPS,
                                                             rng=g["ad"]))),
        Task("dppy_E", quiet=True, fn=_flushing(d_eig, lambda: d_eig.sample_mcmc(
            "E", size=k, nb_iter=N_STEPS, random_state=rs["E"]))),
        # DPPy's own AD start (random subsets of random size) fails at N=5000 (rank 100):
        # start from ∅, like ours
        Task("dppy_AD", quiet=True, fn=_flushing(d_eig, lambda: d_eig.sample_mcmc(
            "AD", s_init=[], nb_iter=N_STEPS, random_state=rs["AD"]))),
    ]

    def C(rid, desc, ours, base, ours_label, base_label):
        must, target = THRESHOLDS[rid]
        return Comparison(rid, desc, ours, base, size=n, must=must, target=target,
                          ours_label=ours_label, baseline_label=base_label)

    comps = [
        C("R1", "preparation (spectrum)", "prep_features", "dppy_eigh",
          "from_features + spectrum", "dense eigh(L)"),
        C("R1·first", "first exact sample from scratch", "first_exact", "dppy_first_GS",
          "from_features + sample_exact", "FiniteDPP(L) + GS"),
        C("R2", "exact DPP sample, prepared", "exact", "dppy_GS", "sample_exact", "GS"),
        C("R2", "exact DPP sample, prepared", "exact", "dppy_GS_bis", "sample_exact",
          "GS_bis"),
        C("R3", "k-DPP k=50 sample, prepared", "k_exact", "dppy_k_GS", "sample_exact_k",
          "GS"),
        C("R3", "k-DPP k=50 sample, prepared", "k_exact", "dppy_k_GS_bis", "sample_exact_k",
          "GS_bis"),
        C("R3", "k-DPP k=50, first sample from features", "first_k", "dppy_dual_first",
          "from_features + sample_exact_k", "dual Φ (GS_bis), first"),
        C("R3", "k-DPP k=50 sample, prepared", "k_exact", "dppy_dual_next", "sample_exact_k",
          "dual Φ (GS_bis)"),
        C("R4", "sequential sample, dense K", "sequential", "dppy_Chol",
          "sample_sequential(L)", "Chol"),
        C("R5", "low-rank sequential sample", "lowrank", "dppy_Chol",
          "sample_lowrank(features)", "Chol"),
        C("R6", f"{N_STEPS} exchange steps (k=50)", "exchange", "dppy_E",
          "sample_mcmc(k=50)", "E"),
        C("R6", f"{N_STEPS} add–delete steps", "add_delete", "dppy_AD", "sample_mcmc",
          "AD"),
    ]
    if smallest:
        tasks.append(Task("dppy_KuTa12", factory=dppy_worker_task,
                          kwargs={"kind": "kuta12", "n": n, "seed": seed}, cap=cap,
                          quiet=True, warmup=False, budget=cap, min_repeats=1))
        comps.insert(4, C("R2", "exact DPP sample, prepared", "exact", "dppy_KuTa12",
                          "sample_exact", "KuTa12"))
        for mode in ("vfx", "alpha"):
            tasks.append(Task(f"dppy_{mode}_k", factory=dppy_worker_task,
                              kwargs={"kind": mode, "n": n, "seed": seed}, cap=cap,
                              quiet=True, warmup=False, budget=cap, min_repeats=1,
                              repeats=min(repeats, 3)))
            comps.append(C("R7", "k-DPP k=50, first sample from scratch", "first_k",
                           f"dppy_{mode}_k", "from_features + sample_exact_k",
                           f"{mode} k-DPP"))

    info = {"n": n, "expected_size": float(dpp_f.expected_size()), "rank": int(dpp_f.rank),
            "checks": _sanity_checks(n, k, {
                "sample_exact": lambda: sample_exact(dpp_f, rng=gen(100)),
                "sample_exact_k": lambda: sample_exact_k(dpp_f, k, rng=gen(101)),
                "sample_lowrank": lambda: sample_lowrank(dpp_f, rng=gen(102)),
                "sample_sequential": on_dense(lambda d: sample_sequential(d, rng=gen(103))),
                "sample_mcmc(k=50)": on_dense(lambda d: sample_mcmc(
                    d, k=k, n_steps=N_STEPS, rng=gen(104))),
            })}
    return tasks, comps, info


def _sanity_checks(n: int, k: int, samplers: dict) -> dict:
    """One output of each of our samplers: a sorted, distinct, in-range index set of a
    plausible size (k exactly for k-DPPs). Not a statistical test — a guard against
    benchmarking a sampler that returns garbage."""
    out = {}
    for name, call in samplers.items():
        try:
            s = call()
            s = np.asarray(getattr(s, "sample", s))
            ok = bool(s.ndim == 1 and (s.size == 0 or (
                np.all(np.diff(s) > 0) and s[0] >= 0 and s[-1] < n)))
            if name in ("sample_exact_k", "sample_mcmc(k=50)"):
                ok = ok and s.size == k
            out[name] = {"size": int(s.size), "valid": ok}
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:200], "valid": False}
    return out


class _quiet:
    """Silence DPPy's prints and warnings while building its objects."""

    def __enter__(self):
        import contextlib
        import io
        import warnings

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        self._stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)


# --------------------------------------------------------------------------- run
def run(*, sizes: Sequence[int] = (1000, 2000, 5000), repeats: int = 5, seed: int = 0,
        quick: bool = False, cap_seconds: float = 120.0, progress=None,
        blas_threads: Optional[int] = None) -> dict:
    """Run comparisons R1–R7 and return ``{"meta", "rows", "timings", "markdown"}``
    (JSON-able).

    ``quick=True``: N=300, 2 repeats, cap ≤ 1 s (a smoke test, under 30 s on a quiet machine).
    ``blas_threads``: opt-in OpenBLAS thread count for both sides and the worker processes
    (default: leave the BLAS as configured). On a shared machine, 2 BLAS threads next to a
    foreign busy process make small LAPACK calls up to ~100× slower; 1 thread does not.
    """
    _require_dppy()
    import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS, so that meta records it)

    if quick:
        sizes, repeats, cap_seconds = (300,), 2, min(cap_seconds, 1.0)
    sizes = sorted({int(n) for n in sizes})
    if not sizes or sizes[0] < 2 * K_DPP or sizes[0] <= D_FEATURES:
        raise ValueError(f"sizes must all exceed {max(2 * K_DPP, D_FEATURES)}, got {sizes}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if not cap_seconds > 0:
        raise ValueError(f"cap_seconds must be positive, got {cap_seconds}")
    report = progress_reporter(progress)
    if blas_threads is not None:
        previous = set_blas_threads(int(blas_threads))
        old_env = os.environ.get("OPENBLAS_NUM_THREADS")
        os.environ["OPENBLAS_NUM_THREADS"] = str(int(blas_threads))  # for the workers
        try:
            result = run(sizes=sizes, repeats=repeats, seed=seed, quick=quick,
                         cap_seconds=cap_seconds, progress=report, blas_threads=None)
            result["meta"]["blas_threads"] = int(blas_threads)
            return result
        finally:
            restore_blas_threads(previous)
            if old_env is None:
                os.environ.pop("OPENBLAS_NUM_THREADS", None)
            else:
                os.environ["OPENBLAS_NUM_THREADS"] = old_env
    t0 = time.perf_counter()
    cpu0 = sum(os.times()[:4])
    meta = environment_info(
        ("numpy", "scipy", "numba", "dppy", "parasample"),
        benchmark="dpp", sizes=sizes, repeats=repeats, seed=seed, quick=quick,
        cap_seconds=cap_seconds, kernel=f"L = PhiᵀPhi, Phi {D_FEATURES}×N standard Gaussian",
        k=K_DPP, mcmc_steps=N_STEPS,
    )
    rows: list[dict] = []
    timings_out: dict = {}
    per_size: dict = {}
    interrupted = False
    for i, n in enumerate(sizes):
        try:
            tasks, comps, info = _tasks_for_size(n, seed=seed, smallest=(i == 0),
                                                 cap=cap_seconds, repeats=repeats)
        except KeyboardInterrupt:
            interrupted = True
            break
        timings = measure(tasks, repeats=repeats, min_time=0.01 if quick else 0.05,
                          progress=report, label=f"N={n}")
        per_size[str(n)] = info
        timings_out[str(n)] = {name: t.as_dict() for name, t in timings.items()}
        rows += [c.row(timings) for c in comps]
        if timings.interrupted:
            interrupted = True
            break
    rows.sort(key=lambda r: (_ROW_ORDER.index(r["id"]), r["size"]))
    wall = time.perf_counter() - t0
    cpu = sum(os.times()[:4]) - cpu0
    load_end = loadavg()
    # the 1-min load average counts this run too: subtract its mean CPU use
    own = cpu / wall if wall > 0 else 0.0
    starts = meta.get("loadavg_start") or [None]
    foreign = [x for x in (starts[0], None if load_end is None else load_end[0] - own)
               if x is not None]
    meta.update(per_size=per_size, loadavg_end=load_end, wall_s=round(wall, 1),
                cpu_s=round(cpu, 1), foreign_load=round(max(foreign), 2) if foreign else None,
                interrupted=interrupted)
    return {"meta": meta, "rows": rows, "timings": timings_out,
            "markdown": _markdown(meta, rows)}


def _markdown(meta: dict, rows: list) -> str:
    v = meta["versions"]
    blas = meta.get("blas", {})
    blas_name = (blas.get("blas") or {}).get("name") if isinstance(blas, dict) else None
    rt = blas.get("openblas_runtime") if isinstance(blas, dict) else None
    if rt:
        blas_name = f"{blas_name} " + ", ".join(
            sorted({f"({r['corename']}, {r['num_threads']} threads)" for r in rt}))
    head = (
        f"DPP benchmark — ratio = DPPy time / parasample time (median of "
        f"{meta['repeats']} interleaved repeats; ≥ = DPPy stopped at the "
        f"{meta['cap_seconds']:g} s cap). {meta['kernel']}.\n"
        f"python {meta['python']}, numpy {v.get('numpy')}, scipy {v.get('scipy')}, "
        f"numba {v.get('numba')}, dppy {v.get('dppy')}, parasample {v.get('parasample')}; "
        f"{meta['cpu_count']} cores (affinity {meta['cpu_affinity']}), BLAS {blas_name}; "
        f"load {_fmt_load(meta.get('loadavg_start'))} → {_fmt_load(meta.get('loadavg_end'))}"
        f"; {meta['wall_s']} s wall."
    )
    bad = [f"{name} (N={n}): {c.get('error') or 'invalid output'}"
           for n, info in meta.get("per_size", {}).items()
           for name, c in info.get("checks", {}).items() if not c.get("valid")]
    tail = ("\n\nSanity checks failed: " + "; ".join(bad)) if bad else ""
    foreign = meta.get("foreign_load")
    cores = meta.get("cpu_affinity") or meta.get("cpu_count") or 1
    threads = [r["num_threads"] for r in (rt or [])]
    if foreign is not None and foreign > 0.5 * cores:
        head += (f"\n**Warning:** other processes kept the machine busy (about {foreign:.1f} "
                 f"of {cores} cores); " + (
                     "timings are noisier than usual." if threads and max(threads) == 1 else
                     "multi-threaded BLAS timings of small calls are unreliable in this run "
                     "(rerun on a quiet machine, or with blas_threads=1)."))
    if meta.get("interrupted"):
        tail += "\n\n(interrupted: partial results)"
    return head + "\n\n" + rows_markdown(rows) + tail


def _fmt_load(load) -> str:
    return "?" if not load else f"{load[0]:.2f}"
