"""Parallel sampling via counting: rounds, evaluations and wall time.

(a) rounds and evaluations against n for Curie–Weiss (β = 0.5) and the Ising chain (a
    homogeneous two-state Markov chain, J = 1.5), sequential vs parallel with the default
    window round(n^{1/3}), plus a log–log slope fit of the mean parallel rounds (theory:
    ≈ 2/3; prototype measurements give rounds ≈ 2n/w).
(b) parallel k-DPP rounds against k (:func:`parasample.dpp.sample_parallel_k`, features
    n × 300) with rounds/√k (theory ≈ 2√k).
(c) wall time of the sequential and the parallel sampler with a batched (vectorised over
    rows) exact Curie–Weiss oracle on the CPU. Both do ≈ n row evaluations; the parallel
    sampler makes ≈ 2n/w oracle calls instead of n, so it only saves per-call overhead. The
    ratio is reported as measured, and the outputs are checked to be equal.
(d) the neural digits model (n = 64, batched numpy forward, ``deterministic=False``): one
    sample, then lockstep batches (:mod:`parasample.autoregressive.lockstep`) of S ∈ {1, 64,
    1024} samples — sequential_batch against parallel_batch with w ∈ {4, 8, 16, adaptive} —
    with batched rounds, rows, seconds per batch (median after a warm-up, BLAS and torch at
    one thread), samples/s and speed-up; every parallel batch is compared with the
    sequential batch of the same rng, and the sequential batch with the row-by-row
    (bitwise batch-invariant) oracle.
(e) optionally a log–log PNG of rounds against n with reference lines n and n^{2/3}.

The Ising chain uses :class:`NearestPinChainOracle`, the nearest-pin formula (a coordinate's
conditional depends only on the nearest pins on either side) with cached powers P^d
(vectorised over coordinates), because the forward–backward
:class:`~parasample.autoregressive.MarkovChainOracle` costs O(n) Python steps per row, which
makes n = 4096 take minutes. Both are exact; a test checks they agree.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional, Sequence

import numpy as np
from scipy.special import gammaln

from ..autoregressive.oracles import CurieWeissOracle, MarkovChainOracle
from ..autoregressive.lockstep import sample_parallel_batch, sample_sequential_batch
from ..autoregressive.samplers import default_window, sample_parallel, sample_sequential
from ..core import as_count
from ..core.progress import progress_reporter
from .harness import environment_info, markdown_table, restore_blas_threads, set_blas_threads

__all__ = ["run", "NearestPinChainOracle", "BatchedCurieWeissOracle", "ising_chain",
           "SIZES", "QUICK_SIZES"]

SIZES = (64, 128, 256, 512, 1024, 2048, 4096)
QUICK_SIZES = (64, 128, 256, 512)
CW_BETA = 0.5
CHAIN_J = 1.5
KDPP_N, KDPP_D, KDPP_KS = 2000, 300, (16, 64, 256)
QUICK_KDPP_N, QUICK_KDPP_KS = 500, (16, 64)
WALL_SIZES, QUICK_WALL_SIZES = (512, 4096), (512,)
LOCKSTEP_SIZES, QUICK_LOCKSTEP_SIZES = (1, 64, 1024), (1, 64)
LOCKSTEP_WINDOWS = (4, 8, 16, "adaptive")
LOCKSTEP_REPEATS = 5


# --------------------------------------------------------------------------- oracles
class NearestPinChainOracle(MarkovChainOracle):
    """Homogeneous Markov chain; P[X_i = x] ∝ (e_a P^{i−l})(x) · (P^{r−i})[x, b] with l < i < r
    the nearest pins (ν P^i without a left pin; no second factor without a right pin).

    Powers P^d (d ≤ n) and ν P^t are cached; a full row costs O(n q²) vectorised numpy. A
    zero-probability pinning (between consecutive pins, or at any coordinate) gives NaN.
    """

    def __init__(self, init, transition, n: int):
        super().__init__(init, transition, n)
        P = np.asarray(transition, dtype=float)
        q = self.q
        pw = np.empty((self.n + 1, q, q))
        pw[0] = np.eye(q)
        for d in range(1, self.n + 1):
            pw[d] = pw[d - 1] @ P
        nu = np.empty((self.n, q))
        nu[0] = self.init
        for t in range(1, self.n):
            nu[t] = nu[t - 1] @ P
        self._pw, self._nu = pw, nu

    def _full_row(self, v, mask):
        n, q = self.n, self.q
        idx = np.arange(n)
        pins = np.flatnonzero(mask)
        if pins.size == 0:
            return self._nu / self._nu.sum(axis=1, keepdims=True)
        pv = v[pins]
        # probability of the pins themselves
        chk = np.empty(pins.size)
        chk[0] = self._nu[pins[0], pv[0]]
        chk[1:] = self._pw[np.diff(pins), pv[:-1], pv[1:]]
        if not np.all(chk > 0):
            return np.full((n, q), np.nan)
        pos = np.searchsorted(pins, idx, side="right")  # pins[pos-1] <= i < pins[pos]
        left = pos - 1
        has_l = left >= 0
        lp = np.where(has_l, pins[np.maximum(left, 0)], 0)
        la = np.where(has_l, v[lp], 0)
        f = np.where(has_l[:, None], self._pw[idx - lp, la, :], self._nu)
        right = np.searchsorted(pins, idx, side="left")  # first pin >= i
        has_r = right < pins.size
        rp = np.where(has_r, pins[np.minimum(right, pins.size - 1)], n - 1)
        rb = np.where(has_r, v[rp], 0)
        g = np.where(has_r[:, None],
                     self._pw[np.maximum(rp - idx, 0), :, rb], 1.0)
        m = f * g
        s = m.sum(axis=1)
        out = m / np.where(s > 0, s, 1.0)[:, None]
        out[pins] = 0.0
        out[pins, pv] = 1.0
        if not np.all(s[~mask] > 0):
            return np.full((n, q), np.nan)
        return out


def ising_chain(n: int, J: float = CHAIN_J, h: float = 0.0) -> NearestPinChainOracle:
    """μ(x) ∝ exp(J Σ x_t x_{t+1}) on {±1}^n as a Markov chain (h = 0: uniform start)."""
    if h != 0.0:
        raise NotImplementedError("only h = 0 (stationary uniform start)")
    P = np.array([[math.exp(J), math.exp(-J)], [math.exp(-J), math.exp(J)]])
    P /= P.sum(axis=1, keepdims=True)
    return NearestPinChainOracle(np.full(2, 0.5), P, n)


class BatchedCurieWeissOracle(CurieWeissOracle):
    """Curie–Weiss with every row of a batch computed in one vectorised pass.

    Rows are padded to the full length n + 1 of the k-grid whatever the batch, and all
    reductions run along the row, so each row's value does not depend on the batch it is in
    (batch invariance; the benchmark checks parallel == sequential)."""

    def marginals(self, values, mask, targets=None):
        values = np.asarray(values)
        mask = np.asarray(mask, dtype=bool)
        n = self.n
        if values.ndim != 2 or values.shape[1] != n or mask.shape != values.shape:
            raise ValueError(f"values and mask must have shape (B, {n})")
        v = np.where(mask, values, 0).astype(np.int64)
        if v.size and (v.min() < 0 or v.max() > 1):
            raise ValueError("pinned values must lie in 0..1")
        m = n - mask.sum(axis=1)
        s = np.where(mask, 2 * v - 1, 0).sum(axis=1).astype(float)
        k = np.arange(n + 1, dtype=float)[None, :]
        mf = m.astype(float)[:, None]
        valid = k <= mf
        with np.errstate(invalid="ignore"):
            lg = gammaln(mf + 1.0) - gammaln(k + 1.0) - gammaln(np.where(valid, mf - k, 0.0) + 1.0)
        M = s[:, None] + 2.0 * k - mf
        ell = np.where(valid, lg + self.beta * M * M / (2.0 * n) + self.h * M, -np.inf)
        w = np.exp(ell - ell.max(axis=1, keepdims=True))
        p1 = (w * (k / np.maximum(mf, 1.0))).sum(axis=1) / w.sum(axis=1)
        if targets is not None:
            t = np.asarray(targets, dtype=np.int64)
            B = len(t)
            rows = np.arange(B)
            out = np.empty((B, 2))
            pinned = mask[rows, t]
            out[:, 1] = np.where(pinned, v[rows, t].astype(float), p1)
            out[:, 0] = np.where(pinned, 1.0 - v[rows, t], 1.0 - p1)
            return out
        out = np.empty((len(m), n, 2))
        out[:, :, 1] = np.where(mask, v.astype(float), p1[:, None])
        out[:, :, 0] = np.where(mask, 1.0 - v, 1.0 - p1[:, None])
        return out


# --------------------------------------------------------------------------- helpers
def _fit_slope(ns: Sequence[int], ys: Sequence[float]) -> float:
    if len(ns) < 2:
        return float("nan")
    return float(np.polyfit(np.log(ns), np.log(ys), 1)[0])


def _fmt(x: float, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{nd}f}"


def _rounds_vs_n(sizes, repeats, seed, cap, report, step, total):
    targets = {
        f"Curie–Weiss β={CW_BETA}": lambda n: CurieWeissOracle(n, CW_BETA),
        f"Ising chain J={CHAIN_J}": lambda n: ising_chain(n),
    }
    rows, skipped = [], []
    for tname, make in targets.items():
        t_start = time.perf_counter()
        for n in sizes:
            step[0] += 1
            report(step[0], total, f"{tname} n={n}")
            if time.perf_counter() - t_start > cap:
                skipped.append(f"{tname} n={n}")
                continue
            oracle = make(n)
            w = default_window(n)
            pr, pe, mm, sr, se, equal = [], [], [], [], [], True
            for rep in range(repeats):
                s = [seed, n, rep]
                seq = sample_sequential(oracle, rng=np.random.default_rng(s))
                par = sample_parallel(oracle, rng=np.random.default_rng(s))
                equal &= bool(np.array_equal(seq.sample, par.sample))
                sr.append(seq.cost.rounds)
                se.append(seq.cost.evaluations)
                pr.append(par.cost.rounds)
                pe.append(par.cost.evaluations)
                mm.append(par.info["mismatches"])
            rows.append({
                "section": "rounds_vs_n", "target": tname, "n": n, "window": w,
                "seq_rounds": float(np.mean(sr)), "seq_evaluations": float(np.mean(se)),
                "par_rounds_mean": float(np.mean(pr)), "par_rounds_sd": float(np.std(pr)),
                "par_evaluations_mean": float(np.mean(pe)),
                "mismatches_mean": float(np.mean(mm)),
                "rounds_over_n23": float(np.mean(pr)) / n ** (2 / 3),
                "evaluations_over_n": float(np.mean(pe)) / n,
                "speedup_rounds": float(np.mean(sr)) / float(np.mean(pr)),
                "outputs_equal": equal, "repeats": repeats,
            })
    slopes = {}
    for tname in targets:
        rs = [r for r in rows if r["target"] == tname]
        slopes[tname] = _fit_slope([r["n"] for r in rs], [r["par_rounds_mean"] for r in rs])
    return rows, slopes, skipped


def _kdpp_rounds(n, ks, repeats, seed, report, step, total):
    from ..dpp import DPP, sample_parallel_k

    B = np.random.default_rng([seed, n, KDPP_D]).standard_normal((n, KDPP_D)) / math.sqrt(KDPP_D)
    dpp = DPP.from_features(B)
    _ = dpp.spectrum
    rows = []
    for k in ks:
        step[0] += 1
        report(step[0], total, f"k-DPP k={k}")
        rs, ev, ts = [], [], []
        for rep in range(repeats):
            t0 = time.perf_counter()
            res = sample_parallel_k(dpp, k, rng=np.random.default_rng([seed, k, rep]))
            ts.append(time.perf_counter() - t0)
            assert res.sample.size == k
            rs.append(res.cost.rounds)
            ev.append(res.cost.evaluations)
        rows.append({
            "section": "kdpp_rounds", "n": n, "d": KDPP_D, "k": k,
            "rounds_mean": float(np.mean(rs)), "rounds_sd": float(np.std(rs)),
            "rounds_over_sqrt_k": float(np.mean(rs)) / math.sqrt(k),
            "evaluations_mean": float(np.mean(ev)), "sequential_rounds": k,
            "seconds_median": float(np.median(ts)), "repeats": repeats,
        })
    return rows


def _wall_clock(sizes, repeats, seed, report, step, total):
    rows = []
    for n in sizes:
        step[0] += 1
        report(step[0], total, f"wall n={n}")
        oracle = BatchedCurieWeissOracle(n, CW_BETA)
        # warm-up (imports, caches)
        sample_parallel(oracle, rng=0)
        ts, tp, equal, pr = [], [], True, []
        for rep in range(repeats):
            s = [seed, n, rep, 1]
            # interleave, alternating which runs first
            order = ("seq", "par") if rep % 2 == 0 else ("par", "seq")
            res = {}
            for which in order:
                fn = sample_sequential if which == "seq" else sample_parallel
                t0 = time.perf_counter()
                res[which] = fn(oracle, rng=np.random.default_rng(s))
                (ts if which == "seq" else tp).append(time.perf_counter() - t0)
            equal &= bool(np.array_equal(res["seq"].sample, res["par"].sample))
            pr.append(res["par"].cost.rounds)
        seq_s, par_s = float(np.median(ts)), float(np.median(tp))
        rows.append({
            "section": "wall_clock", "target": f"Curie–Weiss β={CW_BETA} (batched oracle)",
            "n": n, "window": default_window(n), "seq_rounds": n,
            "par_rounds_mean": float(np.mean(pr)), "seq_seconds": seq_s,
            "par_seconds": par_s, "ratio_seq_over_par": seq_s / par_s,
            "outputs_equal": equal, "repeats": repeats,
        })
    return rows


def _digits(repeats, seed, report, step, total):
    """The neural digits model (n = 64): rounds, evaluations and CPU wall-clock of the
    sequential and parallel samplers with the batched numpy forward pass."""
    from ..autoregressive import load_digits_model

    step[0] += 1
    report(step[0], total, "digits model")
    oracle = load_digits_model(deterministic=False)  # one batched matrix product per call
    exact = load_digits_model()  # row-by-row, bitwise batch-invariant: the equality check
    sample_parallel(oracle, rng=0)
    ts, tp, pr, pe, equal = [], [], [], [], True
    for rep in range(max(repeats, 10)):
        g = [seed, 64, rep]
        t0 = time.perf_counter()
        sample_sequential(oracle, rng=np.random.default_rng(g))
        ts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        par = sample_parallel(oracle, rng=np.random.default_rng(g))
        tp.append(time.perf_counter() - t0)
        pr.append(par.cost.rounds)
        pe.append(par.cost.evaluations)
        equal &= bool(np.array_equal(sample_parallel(exact, rng=np.random.default_rng(g)).sample,
                                     sample_sequential(exact, rng=np.random.default_rng(g)).sample))
    seq_s, par_s = float(np.median(ts)), float(np.median(tp))
    return [{"section": "digits", "target": "neural AO-AR digits model (numpy, batched)",
             "n": 64, "window": default_window(64), "seq_rounds": 64,
             "par_rounds_mean": float(np.mean(pr)), "par_evaluations_mean": float(np.mean(pe)),
             "seq_seconds": seq_s, "par_seconds": par_s, "ratio_seq_over_par": seq_s / par_s,
             "outputs_equal": equal, "repeats": len(ts)}]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _digits_lockstep(batch_sizes, windows, repeats, seed, report, step, total, *,
                     backend="numpy", device=None):
    """Lockstep batches of the digits model: sequential_batch vs parallel_batch per window.

    Timed with BLAS (and torch, if imported) at one thread; each (S, sampler) is run once to
    warm up, then ``repeats`` times in a rotating order with rng = [seed, S, rep] shared by
    all samplers, so that every parallel batch can be compared with the sequential batch of
    the same repetition. The sequential batch of the first repetition is also compared with
    the row-by-row oracle (``deterministic=True``, bitwise batch invariant)."""
    import sys

    from ..autoregressive import load_digits_model

    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    old_blas = set_blas_threads(1)
    if torch is not None:
        torch.set_num_threads(1)
    try:
        oracle = load_digits_model(deterministic=False, backend=backend, device=device)
        exact = load_digits_model()
        samplers = [("sequential", None)] + [("parallel", w) for w in windows]
        rows = []
        for S in batch_sizes:
            step[0] += 1
            report(step[0], total, f"digits lockstep S={S}")

            def call(kind, w, key):
                rng = np.random.default_rng(key)
                if kind == "sequential":
                    return sample_sequential_batch(oracle, S, rng=rng)
                return sample_parallel_batch(oracle, S, rng=rng, window=w)

            for kind, w in samplers:  # warm-up
                call(kind, w, [seed, S, 10 ** 6])
            times = {i: [] for i in range(len(samplers))}
            rounds = {i: [] for i in range(len(samplers))}
            evals = {i: [] for i in range(len(samplers))}
            same = {i: 0 for i in range(len(samplers))}
            exact_same = 0
            for rep in range(repeats):
                rng = [seed, S, rep]
                out = {}
                k = len(samplers)
                for i in [(j + rep) % k for j in range(k)]:
                    kind, w = samplers[i]
                    t0 = time.perf_counter()
                    res = call(kind, w, rng)
                    times[i].append(time.perf_counter() - t0)
                    rounds[i].append(res.cost.rounds)
                    evals[i].append(res.cost.evaluations)
                    out[i] = res.sample
                for i in out:
                    same[i] += int(np.all(out[i] == out[0], axis=1).sum())
                if rep == 0:
                    ref = sample_sequential_batch(exact, S, rng=np.random.default_rng(rng)).sample
                    exact_same = int(np.all(out[0] == ref, axis=1).sum())
            seq_s = float(np.median(times[0]))
            for i, (kind, w) in enumerate(samplers):
                sec = float(np.median(times[i]))
                rows.append({
                    "section": "digits", "kind": "lockstep", "backend": backend,
                    "device": str(oracle.device) if oracle.device is not None else "cpu",
                    "S": S, "sampler": kind, "window": "–" if w is None else w,
                    "rounds_mean": float(np.mean(rounds[i])),
                    "evaluations_per_sample": float(np.mean(evals[i])) / S,
                    "seconds": sec, "samples_per_second": S / sec,
                    "speedup_vs_sequential": seq_s / sec,
                    "equal_to_sequential_rate": same[i] / (S * repeats),
                    "sequential_equal_to_deterministic_rate": exact_same / S,
                    "repeats": repeats, "blas_threads": 1,
                })
        return rows
    finally:
        restore_blas_threads(old_blas)
        if torch is not None:
            torch.set_num_threads(old_torch)


def _plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    targets = sorted({r["target"] for r in rows})
    ns_all = sorted({r["n"] for r in rows})
    for t in targets:
        rs = [r for r in rows if r["target"] == t]
        ax.errorbar([r["n"] for r in rs], [r["par_rounds_mean"] for r in rs],
                    yerr=[r["par_rounds_sd"] for r in rs], marker="o", label=f"parallel: {t}")
    ns = np.array(ns_all, dtype=float)
    ax.plot(ns, ns, "k--", label="n (sequential)")
    ax.plot(ns, ns ** (2 / 3), "k:", label="n^(2/3)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("oracle rounds")
    ax.set_title("Parallel sampling via counting: rounds vs n")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
    return str(path)


def _markdown(rounds_rows, slopes, kdpp_rows, wall_rows, skipped, digit_rows=(),
              lockstep_rows=(), cpu="") -> str:
    parts = ["### Rounds and evaluations vs n (default window w = round(n^(1/3)))", ""]
    parts.append(markdown_table(
        ["target", "n", "w", "seq rounds", "seq evals", "par rounds (mean ± sd)",
         "par rounds / n^(2/3)", "mismatches", "par evals / n", "rounds speed-up",
         "par == seq"],
        [[r["target"], r["n"], r["window"], int(r["seq_rounds"]), int(r["seq_evaluations"]),
          f"{r['par_rounds_mean']:.1f} ± {r['par_rounds_sd']:.1f}",
          _fmt(r["rounds_over_n23"], 2), _fmt(r["mismatches_mean"], 1),
          _fmt(r["evaluations_over_n"], 3), _fmt(r["speedup_rounds"], 1),
          "yes" if r["outputs_equal"] else "NO"] for r in rounds_rows]))
    parts.append("")
    parts.append("Log–log slope of mean parallel rounds vs n (theory ≈ 2/3): " + "; ".join(
        f"{t}: {_fmt(s, 3)}" for t, s in slopes.items()))
    if skipped:
        parts.append("")
        parts.append("Skipped (time cap): " + ", ".join(skipped))
    if kdpp_rows:
        parts += ["", f"### Parallel k-DPP rounds vs k (sample_parallel_k, features "
                      f"n = {kdpp_rows[0]['n']}, d = {kdpp_rows[0]['d']})", ""]
        parts.append(markdown_table(
            ["k", "rounds (mean ± sd)", "rounds / √k", "sequential rounds", "evaluations",
             "s / sample (median)"],
            [[r["k"], f"{r['rounds_mean']:.1f} ± {r['rounds_sd']:.1f}",
              _fmt(r["rounds_over_sqrt_k"], 2), r["sequential_rounds"],
              _fmt(r["evaluations_mean"], 1), f"{r['seconds_median']:.3f}"]
             for r in kdpp_rows]))
    if wall_rows:
        parts += ["", "### Wall clock, batched exact Curie–Weiss oracle (CPU, numpy)", ""]
        parts.append(markdown_table(
            ["n", "w", "seq rounds", "par rounds", "sequential s", "parallel s",
             "seq / par", "par == seq"],
            [[r["n"], r["window"], r["seq_rounds"], _fmt(r["par_rounds_mean"], 1),
              f"{r['seq_seconds']:.3f}", f"{r['par_seconds']:.3f}",
              f"{r['ratio_seq_over_par']:.2f}×", "yes" if r["outputs_equal"] else "NO"]
             for r in wall_rows]))
        parts.append("")
        parts.append("Both samplers evaluate ≈ n rows in total on one CPU; the parallel "
                     "sampler only batches them into fewer oracle calls, so the wall-clock "
                     "ratio reflects per-call overhead, not the round reduction.")
    for r in digit_rows:
        parts += ["", "### Neural digits model (n = 64, CPU, numpy batched forward)", ""]
        parts.append(markdown_table(
            ["w", "seq rounds", "par rounds", "par evaluations", "sequential s", "parallel s",
             "seq / par", "par == seq (deterministic oracle)"],
            [[r["window"], r["seq_rounds"], _fmt(r["par_rounds_mean"], 1),
              _fmt(r["par_evaluations_mean"], 1), f"{r['seq_seconds']:.4f}",
              f"{r['par_seconds']:.4f}", f"{r['ratio_seq_over_par']:.2f}×",
              "yes" if r["outputs_equal"] else "NO"]]))
    if lockstep_rows:
        r0 = lockstep_rows[0]
        dev = "CPU, numpy" if r0["backend"] == "numpy" else f"{r0['device']}, torch"
        parts += ["", f"### Digits model, lockstep batches of S samples ({dev}, batched "
                      f"forward, 1 thread)", ""]
        parts.append(markdown_table(
            ["S", "sampler", "w", "rounds", "rows / sample", "s / batch", "samples/s",
             "speed-up", "== sequential"],
            [[r["S"], r["sampler"], r["window"], _fmt(r["rounds_mean"], 1),
              _fmt(r["evaluations_per_sample"], 1), f"{r['seconds']:.4f}",
              f"{r['samples_per_second']:.0f}", f"{r['speedup_vs_sequential']:.2f}×",
              f"{100 * r['equal_to_sequential_rate']:.1f}%"] for r in lockstep_rows]))
        eq = ", ".join(f"S={r['S']}: {100 * r['sequential_equal_to_deterministic_rate']:.1f}%"
                       for r in lockstep_rows if r["sampler"] == "sequential")
        parts.append("")
        parts.append(f"Median of {r0['repeats']} runs after a warm-up{'; ' + cpu if cpu else ''}. "
                     "Rounds = batched oracle calls (max over the batch, not the sum); "
                     "speed-up = sequential s / sampler s at the same S; \"== sequential\" = "
                     "share of samples equal to the sequential batch under the same rng. "
                     f"Sequential batch == row-by-row deterministic oracle: {eq}.")
    return "\n".join(parts)


# --------------------------------------------------------------------------- run
def run(*, sizes: Optional[Sequence[int]] = None, repeats: int = 3, seed: int = 0,
        quick: bool = False, cap_seconds: float = 120.0, progress=None,
        plot=None) -> dict[str, Any]:
    """Run sections (a)–(e); returns {"meta", "rows", "markdown", "plot"}.

    ``sizes`` overrides the n grid of (a); ``cap_seconds`` bounds the time spent per target
    in (a) (remaining sizes are skipped and listed); ``plot`` is a PNG path (needs
    matplotlib; ``result["plot"]`` is the path written, or None).
    """
    repeats = as_count(repeats, "repeats", minimum=1)
    sizes = (tuple(as_count(x, "sizes entry", minimum=1) for x in sizes) if sizes is not None
             else (QUICK_SIZES if quick else SIZES))
    kn, kks = (QUICK_KDPP_N, QUICK_KDPP_KS) if quick else (KDPP_N, KDPP_KS)
    wall_sizes = QUICK_WALL_SIZES if quick else WALL_SIZES
    lock_sizes = QUICK_LOCKSTEP_SIZES if quick else LOCKSTEP_SIZES
    lock_repeats = repeats if quick else max(repeats, LOCKSTEP_REPEATS)
    report = progress_reporter(progress)
    total = 2 * len(sizes) + len(kks) + len(wall_sizes) + 1 + len(lock_sizes)
    step = [0]
    t0 = time.perf_counter()
    rounds_rows, slopes, skipped = _rounds_vs_n(sizes, repeats, seed, cap_seconds, report,
                                                step, total)
    kdpp_rows = _kdpp_rounds(kn, kks, repeats, seed, report, step, total)
    wall_rows = _wall_clock(wall_sizes, repeats, seed, report, step, total)
    digit_rows = _digits(repeats, seed, report, step, total)
    lockstep_rows = _digits_lockstep(lock_sizes, LOCKSTEP_WINDOWS, lock_repeats, seed, report,
                                     step, total)
    report(total, total, "done")
    plot_path = _plot(rounds_rows, plot) if plot is not None and rounds_rows else None
    meta = environment_info(
        benchmark="counting", sizes=list(sizes), repeats=repeats, seed=seed, quick=quick,
        cap_seconds=cap_seconds, cw_beta=CW_BETA, chain_J=CHAIN_J,
        kdpp={"n": kn, "d": KDPP_D, "ks": list(kks)}, wall_sizes=list(wall_sizes),
        lockstep={"sizes": list(lock_sizes), "windows": list(LOCKSTEP_WINDOWS),
                  "repeats": lock_repeats, "threads": 1}, cpu=_cpu_name(),
        slopes=slopes, skipped=skipped, seconds=time.perf_counter() - t0,
    )
    return {
        "meta": meta,
        "rows": rounds_rows + kdpp_rows + wall_rows + digit_rows + lockstep_rows,
        "markdown": _markdown(rounds_rows, slopes, kdpp_rows, wall_rows, skipped, digit_rows,
                              lockstep_rows, cpu=_cpu_name()),
        "plot": plot_path,
    }
