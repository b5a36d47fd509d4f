"""A small, domain-independent benchmark harness.

The claims are **ratios** (baseline time / parasample time) measured in one run, on one
machine, with interleaved repetitions and medians, because the machines are shared and noisy.

* :class:`Task` — a named thing to time: an in-process callable, or a *factory* run in a
  separate process when a per-call time cap is needed (a baseline that may take minutes is
  killed at the cap and reported as a lower bound ``>= cap``).
* :func:`measure` — warms every task up, then runs repetition 1 of every task, repetition 2 of
  every task, ... (rotating the order), so slow drifts of the machine hit all tasks alike.
* :func:`compare` / :class:`Comparison` — ratio of medians, a conservative IQR range of the
  ratio, and a pass/fail verdict against a "must" threshold.
* :func:`environment_info` — versions, core count, BLAS, load average.
* :func:`rows_markdown` / :func:`markdown_table` — the markdown output; rows are plain dicts,
  so ``json.dumps`` takes the whole result.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import io
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from ..core.progress import progress_reporter

__all__ = [
    "Task", "Timing", "Timings", "Comparison", "measure", "compare", "environment_info",
    "markdown_table", "rows_markdown", "format_seconds", "format_ratio", "loadavg", "sleeper",
    "set_blas_threads", "restore_blas_threads", "emit_report",
]


# --------------------------------------------------------------------------- tasks
@dataclass
class Task:
    """One named thing to time.

    In-process: ``fn()`` is timed; with ``setup``, each call is ``fn(setup())`` and only
    ``fn`` is timed (use it for "from scratch" measurements that need a fresh object).

    Isolated: ``factory(**kwargs)`` (a module-level, importable function) is run in a fresh
    process and returns ``fn`` or ``(fn, setup)``; building it is not timed. ``cap`` (seconds
    per call) is then enforced: a call that runs past it is killed, and the task's time is
    reported as a lower bound. A ``cap`` without a ``factory`` is refused, because an
    in-process call cannot be stopped.

    ``repeats`` overrides the run's repeat count; ``budget`` (seconds) stops further
    repetitions once the task has used that much time (after ``min_repeats``); ``number`` is
    the calls per repetition (default: enough calls for ``min_time``, 1 without warm-up);
    ``warmup`` makes one untimed call first (JIT compilation, caches); ``quiet`` silences the
    callable's stdout and warnings (DPPy prints).
    """

    name: str
    fn: Optional[Callable[..., Any]] = None
    setup: Optional[Callable[[], Any]] = None
    factory: Optional[Callable[..., Any]] = None
    kwargs: dict = field(default_factory=dict)
    cap: Optional[float] = None
    repeats: Optional[int] = None
    min_repeats: int = 1
    budget: Optional[float] = None
    number: Optional[int] = None
    warmup: bool = True
    quiet: bool = False

    def __post_init__(self) -> None:
        if (self.fn is None) == (self.factory is None):
            raise ValueError(f"task {self.name!r}: give exactly one of fn and factory")
        if self.cap is not None and self.factory is None:
            raise ValueError(
                f"task {self.name!r}: a time cap needs an importable factory (the call runs "
                "in a separate process so that it can be stopped)"
            )
        if self.factory is not None and getattr(self.factory, "__module__", None) in (
                None, "__main__"):
            raise ValueError(
                f"task {self.name!r}: the factory must be a module-level function of an "
                "importable module (it is imported again in the worker process)"
            )
        if self.cap is not None and not self.cap > 0:
            raise ValueError(f"task {self.name!r}: cap must be positive, got {self.cap}")

    @property
    def isolated(self) -> bool:
        return self.factory is not None


@dataclass
class Timing:
    """Per-call seconds of one task, one entry per repetition (each the mean of ``number``
    calls). ``capped``: a call ran past ``cap`` and was killed. ``error``: the task raised."""

    name: str
    times: list = field(default_factory=list)
    number: int = 1
    cap: Optional[float] = None
    capped: bool = False
    error: Optional[str] = None
    isolated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and (bool(self.times) or self.capped)

    def quantile(self, q: float) -> Optional[float]:
        return float(np.quantile(self.times, q)) if self.times else None

    @property
    def median(self) -> Optional[float]:
        return self.quantile(0.5)

    @property
    def estimate(self) -> Optional[float]:
        """The median; for a capped task, the median with the stopped call counted as
        ``cap`` — a lower bound on the median of all the calls tried."""
        if self.error is not None:
            return None
        if self.capped:
            return float(np.median(self.times + [self.cap]))
        return self.median

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "median_s": self.median if not self.capped else None,
            "q1_s": self.quantile(0.25),
            "q3_s": self.quantile(0.75),
            "times_s": [float(t) for t in self.times],
            "repeats": len(self.times),
            "calls_per_repeat": self.number,
            "cap_s": self.cap,
            "capped": self.capped,
            "lower_bound_s": self.estimate if self.capped else None,
            "error": self.error,
            "isolated": self.isolated,
        }


class Timings(dict):
    """``{task name: Timing}``; ``interrupted`` is True when Ctrl-C cut the run short."""

    interrupted: bool = False


# --------------------------------------------------------------------------- timing
@contextlib.contextmanager
def _silenced(active: bool):
    if not active:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _time_calls(fn, setup, number: int, quiet: bool) -> float:
    """Mean seconds of ``number`` calls (setup excluded), with the garbage collector off."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with _silenced(quiet):
            if setup is None:
                t0 = time.perf_counter()
                for _ in range(number):
                    fn()
                total = time.perf_counter() - t0
            else:
                total = 0.0
                for _ in range(number):
                    state = setup()
                    t0 = time.perf_counter()
                    fn(state)
                    total += time.perf_counter() - t0
    finally:
        if was_enabled:
            gc.enable()
    return total / number


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def _unpack_factory_result(built) -> tuple:
    if isinstance(built, tuple):
        fn, setup = built
        return fn, setup
    return built, None


def _worker_main(rfd: int, wfd: int, quiet: bool) -> None:
    """Entry point of a worker process (``python -c``); talks to the parent over two pipes.

    Protocol: receive ``(factory, kwargs)``; answer ``("ready", None)`` or ``("error", text)``;
    then for each integer ``number`` received answer ``("ok", seconds)`` or
    ``("error", text)``; ``None`` ends the worker.
    """
    from multiprocessing.connection import Connection

    rx, tx = Connection(rfd, writable=False), Connection(wfd, readable=False)
    if quiet:  # DPPy prints: send the child's stdout to /dev/null (the protocol has own fds)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        sys.stdout = open(1, "w", closefd=False)
        warnings.simplefilter("ignore")
    try:
        factory, kwargs = rx.recv()
        fn, setup = _unpack_factory_result(factory(**kwargs))
    except BaseException as exc:  # report, do not die silently
        tx.send(("error", _describe(exc)))
        return
    tx.send(("ready", None))
    while True:
        try:
            msg = rx.recv()
        except EOFError:
            return
        if msg is None:
            return
        try:
            tx.send(("ok", _time_calls(fn, setup, int(msg), False)))
        except Exception as exc:
            tx.send(("error", _describe(exc)))


class _Isolated:
    """A task's worker process (a fresh interpreter, so no ``__main__`` re-import and no
    fork of a threaded process): built once, then asked for one repetition at a time."""

    START_TIMEOUT = 3600.0  # building the inputs (e.g. a dense eigh) is not capped

    def __init__(self, task: Task):
        import subprocess
        from multiprocessing.connection import Connection

        self.task = task
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p]
                                            + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        code = (f"from parasample.bench.harness import _worker_main; "
                f"_worker_main({p2c_r}, {c2p_w}, {bool(task.quiet)})")
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(p2c_r, c2p_w),
                                         env=env, stdin=subprocess.DEVNULL)
        finally:
            os.close(p2c_r)
            os.close(c2p_w)
        self.tx = Connection(p2c_w, readable=False)
        self.rx = Connection(c2p_r, writable=False)
        try:
            self.tx.send((task.factory, task.kwargs))
        except (BrokenPipeError, OSError):
            pass

    def wait_ready(self) -> None:
        status, payload = self._wait(self.START_TIMEOUT)
        if status != "ready":
            self.close()
            raise RuntimeError(payload if status == "error" else
                               f"worker did not start within {self.START_TIMEOUT:g} s")

    def _wait(self, timeout: Optional[float]):
        if self.rx.poll(timeout):
            try:
                return self.rx.recv()
            except (EOFError, OSError):
                self.proc.wait(5.0)
                return ("error", f"worker process died (exit code {self.proc.returncode})")
        return ("timeout", None)

    def run(self, number: int):
        """('ok', seconds) | ('timeout', None) | ('error', text)."""
        try:
            self.tx.send(number)
        except (BrokenPipeError, OSError):
            return ("error", f"worker process died (exit code {self.proc.poll()})")
        # a little slack for the round trip; the reported bound is the cap itself
        timeout = None if self.task.cap is None else self.task.cap * number * 1.05 + 0.2
        return self._wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.tx.send(None)
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(1.0)
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.kill()  # only ever our own worker, by its handle
            self.proc.wait()
        self.tx.close()
        self.rx.close()


def measure(
    tasks: Sequence[Task],
    *,
    repeats: int = 5,
    min_time: float = 0.05,
    progress=None,
    label: str = "",
    settle: float = 0.12,
) -> Timings:
    """Time ``tasks`` with interleaved repetitions; returns ``{name: Timing}``.

    ``settle`` seconds pass (untimed) before each repetition: an OpenBLAS worker thread
    keeps spinning on a core for ~0.1 s after its last call, and numpy and scipy load two
    separate OpenBLAS libraries (worker processes have their own), so without the pause
    one task's idle-spinning threads would slow the next task down — by several times for
    small BLAS calls on a 2-core machine.

    Errors (including a missing module) are recorded in the task's ``Timing.error`` and do
    not stop the other tasks. Ctrl-C stops the run and returns what was measured, with
    ``interrupted`` set.
    """
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    report = progress_reporter(progress)
    prefix = f"{label} " if label else ""
    out = Timings()
    workers: dict[str, _Isolated] = {}
    plan = {t.name: max(1, t.repeats if t.repeats is not None else repeats) for t in tasks}
    total = sum(plan.values()) + len(tasks)
    done = 0
    spent = {t.name: 0.0 for t in tasks}
    attempts = {t.name: 0 for t in tasks}
    active = [t for t in tasks]
    try:
        # ---- start the worker processes together (their builds are not timed), so their
        # start-up costs overlap; nothing is timed until all are ready
        for task in tasks:
            if task.isolated:
                report(done, total, f"{prefix}{task.name} (start)")
                try:
                    workers[task.name] = _Isolated(task)
                except Exception as exc:
                    out[task.name] = Timing(task.name, cap=task.cap, isolated=True,
                                            error=_describe(exc))
        for name, w in list(workers.items()):
            try:
                w.wait_ready()
            except Exception as exc:
                del workers[name]
                out[name] = Timing(name, cap=w.task.cap, isolated=True, error=_describe(exc))
        # ---- warm up
        for task in tasks:
            tm = out.setdefault(task.name, Timing(task.name, cap=task.cap,
                                                  isolated=task.isolated))
            report(done, total, f"{prefix}{task.name} (warm-up)")
            if tm.error is None:
                try:
                    time.sleep(settle)
                    _warm_up(task, tm, workers, min_time)
                except Exception as exc:
                    tm.error = _describe(exc)
            if tm.error is not None or tm.capped:
                active.remove(task)
                done += plan[task.name]
            done += 1
            report(done, total, f"{prefix}{task.name} (warm-up)")
        # ---- interleaved repetitions, rotating the order
        rep = 0
        while active:
            order = active[rep % len(active):] + active[: rep % len(active)]
            for task in order:
                tm = out[task.name]
                time.sleep(settle)
                _one_repetition(task, tm, workers)
                if tm.times:
                    spent[task.name] += tm.times[-1] * tm.number
                n_done = len(tm.times)
                stop = (
                    tm.error is not None or tm.capped or n_done >= plan[task.name]
                    or (task.budget is not None and spent[task.name] >= task.budget
                        and n_done >= task.min_repeats)
                )
                done += 1
                attempts[task.name] += 1
                if stop:
                    active.remove(task)
                    done += max(0, plan[task.name] - attempts[task.name])  # skipped ones
                report(min(done, total), total, f"{prefix}{task.name}")
            rep += 1
    except KeyboardInterrupt:
        out.interrupted = True
    finally:
        for w in workers.values():
            w.close()
    report(total, total, f"{prefix}done")
    return out


def _warm_up(task: Task, tm: Timing, workers: dict, min_time: float) -> None:
    if task.isolated:
        tm.number = task.number or 1
        if task.warmup:
            status, payload = workers[task.name].run(1)
            _apply_isolated_status(task, tm, workers, status, payload, record=False)
        return
    if not task.warmup:
        tm.number = task.number or 1
        return
    t = _time_calls(task.fn, task.setup, 1, task.quiet)
    if t < 1.0:  # a second call, free of compilation, calibrates ``number``
        t = _time_calls(task.fn, task.setup, 1, task.quiet)
    if task.number is not None:
        tm.number = task.number
    else:
        tm.number = int(min(1000, max(1, math.ceil(min_time / max(t, 1e-9)))))


def _one_repetition(task: Task, tm: Timing, workers: dict) -> None:
    if task.isolated:
        status, payload = workers[task.name].run(tm.number)
        _apply_isolated_status(task, tm, workers, status, payload, record=True)
        return
    try:
        tm.times.append(_time_calls(task.fn, task.setup, tm.number, task.quiet))
    except Exception as exc:
        tm.error = _describe(exc)


def _apply_isolated_status(task, tm, workers, status, payload, *, record: bool) -> None:
    if status == "ok":
        if record:
            tm.times.append(float(payload))
        return
    worker = workers.pop(task.name)
    worker.close()
    if status == "timeout":
        tm.capped = True
    else:
        tm.error = str(payload)


# --------------------------------------------------------------------------- ratios
def compare(ours: Optional[Timing], baseline: Optional[Timing]) -> dict:
    """Ratio baseline/ours of medians, with a conservative IQR range.

    A capped baseline gives a lower bound ``>= estimate/ours``. Returns
    ``{"ratio", "lower_bound", "ratio_iqr", "note"}``; ``ratio`` is None when either side
    failed.
    """
    res = {"ratio": None, "lower_bound": False, "ratio_iqr": None, "note": ""}
    if ours is None or baseline is None:
        res["note"] = "not measured"
        return res
    if ours.error is not None:
        res["note"] = f"parasample: {ours.error}"
        return res
    if ours.capped or not ours.times:
        res["note"] = "parasample: exceeded the time cap" if ours.capped else "not measured"
        return res
    if baseline.error is not None:
        res["note"] = f"baseline: {baseline.error}"
        return res
    o_med = ours.median
    if not o_med > 0:
        res["note"] = "parasample time is zero"
        return res
    if baseline.capped:
        res["ratio"] = baseline.estimate / o_med
        res["lower_bound"] = True
        res["note"] = f"baseline stopped at the {baseline.cap:g} s cap"
        return res
    if not baseline.times:
        res["note"] = "baseline not measured"
        return res
    res["ratio"] = baseline.median / o_med
    res["ratio_iqr"] = [baseline.quantile(0.25) / ours.quantile(0.75),
                        baseline.quantile(0.75) / ours.quantile(0.25)]
    return res


@dataclass
class Comparison:
    """One row: ``ours`` vs ``baseline`` (task names), with thresholds on the ratio.

    ``must``/``target`` are minimum ratios (None: informational row). ``size`` is whatever
    identifies the instance (e.g. N).
    """

    id: str
    description: str
    ours: str
    baseline: str
    size: Any = None
    must: Optional[float] = None
    target: Optional[float] = None
    baseline_label: Optional[str] = None
    ours_label: Optional[str] = None

    def row(self, timings: Mapping[str, Timing]) -> dict:
        o, b = timings.get(self.ours), timings.get(self.baseline)
        c = compare(o, b)
        ratio, lb = c["ratio"], c["lower_bound"]
        if self.must is None:
            verdict = "—"
        elif ratio is None:
            verdict = "n/a"
        elif ratio >= self.must:
            verdict = "pass"
        else:
            verdict = "inconclusive" if lb else "FAIL"
        return {
            "id": self.id,
            "size": self.size,
            "comparison": self.description,
            "ours": self.ours_label or self.ours,
            "baseline": self.baseline_label or self.baseline,
            "ours_s": None if o is None else o.median,
            "ours_iqr_s": None if o is None or not o.times else
            [o.quantile(0.25), o.quantile(0.75)],
            "ours_repeats": 0 if o is None else len(o.times),
            "baseline_s": None if b is None else b.estimate,
            "baseline_is_lower_bound": bool(b is not None and b.capped),
            "baseline_iqr_s": None if b is None or not b.times or b.capped else
            [b.quantile(0.25), b.quantile(0.75)],
            "baseline_repeats": 0 if b is None else len(b.times),
            "ratio": ratio,
            "ratio_is_lower_bound": lb,
            "ratio_iqr": c["ratio_iqr"],
            "must": self.must,
            "target": self.target,
            "verdict": verdict,
            "note": c["note"],
        }


# --------------------------------------------------------------------------- output
def format_seconds(s: Optional[float], lower_bound: bool = False) -> str:
    if s is None:
        return "—"
    pre = "≥ " if lower_bound else ""
    if s < 1e-3:
        return f"{pre}{s * 1e6:.0f} µs"
    if s < 1.0:
        return f"{pre}{s * 1e3:.3g} ms"
    return f"{pre}{s:.3g} s"


def format_ratio(r: Optional[float], lower_bound: bool = False) -> str:
    if r is None:
        return "—"
    pre = "≥ " if lower_bound else ""
    return f"{pre}{r:.3g}×" if r < 1000 else f"{pre}{r:,.0f}×"


def _fmt_threshold(x: Optional[float]) -> str:
    return "—" if x is None else f"≥ {x:g}×"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table (``|`` inside cells is escaped)."""
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def rows_markdown(rows: Sequence[Mapping[str, Any]], *, size_label: str = "N",
                  notes: bool = True) -> str:
    """The comparison rows (from :meth:`Comparison.row`) as one markdown table; the notes of
    failed or capped rows follow it as a list."""
    headers = ["id", size_label, "comparison", "parasample", "time", "baseline", "time",
               "ratio", "must", "target", "verdict"]
    body = []
    foot = []
    for r in rows:
        body.append([
            r["id"], "" if r["size"] is None else r["size"], r["comparison"], r["ours"],
            format_seconds(r["ours_s"]), r["baseline"],
            format_seconds(r["baseline_s"], r["baseline_is_lower_bound"]),
            format_ratio(r["ratio"], r["ratio_is_lower_bound"]),
            _fmt_threshold(r["must"]), _fmt_threshold(r["target"]), r["verdict"],
        ])
        if notes and r.get("note"):
            foot.append(f"- {r['id']} ({size_label}={r['size']}, {r['baseline']}): {r['note']}")
    text = markdown_table(headers, body)
    return text + ("\n\n" + "\n".join(foot) if foot else "")


# --------------------------------------------------------------------------- environment
_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
             "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER")


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _blas_info() -> dict:
    try:
        import threadpoolctl  # optional
        return {"source": "threadpoolctl", "pools": threadpoolctl.threadpool_info()}
    except ImportError:
        pass
    info: dict = {"source": "numpy.show_config"}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            cfg = np.show_config(mode="dicts")
        deps = cfg.get("Build Dependencies", {}) if isinstance(cfg, dict) else {}
        for key in ("blas", "lapack"):
            d = deps.get(key, {})
            info[key] = {k: d.get(k) for k in ("name", "version", "openblas configuration")
                         if d.get(k) is not None}
        simd = cfg.get("SIMD Extensions", {}) if isinstance(cfg, dict) else {}
        if simd:
            info["simd_found"] = simd.get("found")
    except Exception as exc:  # very old numpy: no dict mode
        info["error"] = _describe(exc)
    runtime = _openblas_runtime()
    if runtime:
        info["openblas_runtime"] = runtime
    return info


def _openblas_libraries() -> list:
    """``(path, lib, prefix, suffix)`` for every OpenBLAS loaded in this process (numpy's
    and scipy's are separate libraries; scipy-openblas prefixes its symbols)."""
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = sorted({ln.split()[-1] for ln in fh
                            if "openblas" in ln.lower() and ln.split()[-1].startswith("/")})
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_"):
                if hasattr(lib, f"{prefix}openblas_get_num_threads{suffix}"):
                    found.append((path, lib, prefix, suffix))
    return found


def _openblas_runtime() -> list:
    """Core type and thread count of every loaded OpenBLAS, read through its C API."""
    import ctypes

    out = []
    for path, lib, pre, suf in _openblas_libraries():
        core = getattr(lib, f"{pre}openblas_get_corename{suf}", None)
        threads = getattr(lib, f"{pre}openblas_get_num_threads{suf}")
        threads.restype = ctypes.c_int
        name = None
        if core is not None:
            core.restype = ctypes.c_char_p
            name = core().decode(errors="replace")
        out.append({"library": os.path.basename(path), "corename": name,
                    "num_threads": int(threads())})
    return out


def set_blas_threads(n: int) -> dict:
    """Set the thread count of every OpenBLAS loaded in this process (opt-in; useful on a
    shared machine, where idle-spinning BLAS threads make small calls erratic). Returns
    ``{library path: previous count}`` for :func:`restore_blas_threads`. Worker processes
    read ``OPENBLAS_NUM_THREADS`` from the environment instead."""
    import ctypes

    if n < 1:
        raise ValueError(f"BLAS threads must be >= 1, got {n}")
    previous = {}
    for path, lib, pre, suf in _openblas_libraries():
        get = getattr(lib, f"{pre}openblas_get_num_threads{suf}")
        put = getattr(lib, f"{pre}openblas_set_num_threads{suf}", None)
        if put is None:
            continue
        get.restype = ctypes.c_int
        previous[path] = int(get())
        put.argtypes = [ctypes.c_int]
        put(int(n))
    return previous


def restore_blas_threads(previous: Mapping[str, int]) -> None:
    import ctypes

    for path, lib, pre, suf in _openblas_libraries():
        put = getattr(lib, f"{pre}openblas_set_num_threads{suf}", None)
        if put is not None and path in previous:
            put.argtypes = [ctypes.c_int]
            put(int(previous[path]))


def environment_info(packages: Sequence[str] = ("numpy", "scipy", "numba", "parasample"),
                     **extra: Any) -> dict:
    """Versions, core count, BLAS and load average, for the ``meta`` of a result."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    try:
        load = list(os.getloadavg())
    except (AttributeError, OSError):
        load = None
    meta = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "versions": {p: _version(p) for p in packages},
        "blas": _blas_info(),
        "env": {k: os.environ[k] for k in _ENV_VARS if k in os.environ},
        "loadavg_start": load,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    meta.update(extra)
    return meta


def loadavg() -> Optional[list]:
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def sleeper(seconds: float, fail: bool = False):
    """A factory for checking the harness itself: ``fn`` sleeps ``seconds`` (or raises)."""
    def fn():
        if fail:
            raise RuntimeError("sleeper asked to fail")
        time.sleep(seconds)
    return fn


def emit_report(result: Mapping[str, Any], *, json_path: Optional[str] = None,
                markdown_path: Optional[str] = None) -> None:
    """Print ``result["markdown"]``; also write the whole result as JSON and the markdown to
    the given paths (the benchmark scripts' common output)."""
    import json

    print(result["markdown"])
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1, default=str)
    if markdown_path:
        with open(markdown_path, "w", encoding="utf-8") as fh:
            fh.write(result["markdown"] + "\n")
