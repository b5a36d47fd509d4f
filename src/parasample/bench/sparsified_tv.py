"""Exact total variation of :class:`~parasample.dpp.SparsifiedKDPPSampler` on small instances.

No sampling noise: the output law of the sampler is computed by enumeration.

- :func:`exact_transition` — the one-step matrix P over all k-subsets. The up-draws are
  enumerated as multiplicity vectors N of t − k draws (probability multinomial(t − k, p̃/Σp̃)).
  With c = N + 1_S, the down law is P(S' | S, N) ∝ det L_{S'}·Π_{i∈S'} w_i, where
  w = ``sampler.down_weights`` (c/p̃), over S' ⊆ supp c. Cost C(t−k+n−1, n−1)·C(n,k)²·n,
  for n ≤ 10.
- :func:`exact_output_law` — the law of one restart-mode output, δ_{S₀} P^s. When t ≥ n the
  sampler draws exactly, and the law is μ itself.
- :func:`run` — random instances (n = 6..9, every k, four kernel families; the default t,
  the smallest t = k + 1, and t = k + 1 with p̃ = the exact marginals and the least likely
  start): the exact TV at the step rule s(ε), the TV after 4 steps (the
  old fixed default), and the largest KL_s/(λ^s H) over the chain's first steps (the
  contraction the rule assumes; H = log 1/μ(S₀); also with λ = K/(K + t − k), without the
  rule's +1), plus t and s(ε) of the README example.
  ``benchmarks/sparsified_tv.py`` prints it.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence

import numpy as np

from .harness import environment_info, markdown_table

__all__ = ["exact_output_law", "exact_transition", "kdpp_target", "random_kernel", "rule_sampler",
           "run"]

KINDS = ("dense", "heavy-tailed", "low-rank", "clustered")
#: Row rules: default t; t = k + 1; t = k + 1 with p̃ = the exact marginals and the least
#: likely start (a stress case: tight p̃ and a cold start are the slowest to mix).
RULES = ("default", "k+1", "stress")
T_LABEL = {"default": "⌈2k ln(ek)⌉", "k+1": "k + 1",
           "stress": "k + 1, p̃ = marginals, coldest S₀"}


def kdpp_target(L: np.ndarray, k: int) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """(states, μ): all k-subsets of range(n) in lexicographic order and det L_S / e_k."""
    n = L.shape[0]
    states = list(itertools.combinations(range(n), k))
    logdet = _logdets(L, states)
    return states, np.exp(logdet - np.logaddexp.reduce(logdet))


def _logdets(L: np.ndarray, states) -> np.ndarray:
    idx = np.array(states, dtype=np.int64)
    sign, logdet = np.linalg.slogdet(L[idx[:, :, None], idx[:, None, :]])
    return np.where(sign > 0, logdet, -np.inf)


def _compositions(r: int, m: int):
    """All vectors of m non-negative integers summing to r (stars and bars)."""
    for bars in itertools.combinations(range(r + m - 1), m - 1):
        cuts = np.diff(np.array((-1,) + bars + (r + m - 1,))) - 1
        yield cuts


def exact_transition(sampler) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """(states, P): the one-step down–up transition matrix of ``sampler`` over k-subsets."""
    n, k, r = sampler.n, sampler.k, sampler.t - sampler.k
    if n > 10:
        raise ValueError(f"enumeration is for n <= 10, got n = {n}")
    L = sampler.dpp.likelihood_kernel()
    states = list(itertools.combinations(range(n), k))
    A = np.zeros((len(states), n))
    for i, S in enumerate(states):
        A[i, list(S)] = 1.0
    logdet = _logdets(L, states)
    q = sampler.overestimates / sampler.overestimates.sum()
    support = np.flatnonzero(q > 0)
    log_q = np.log(q[support])
    P = np.zeros((len(states), len(states)))
    items = np.arange(n)
    for Ns in _compositions(r, support.size):
        log_p = (math.lgamma(r + 1) - sum(math.lgamma(x + 1) for x in Ns)
                 + float(Ns @ log_q))
        N = np.zeros(n)
        N[support] = Ns
        c = N[None, :] + A                                   # one row per current state S
        with np.errstate(divide="ignore", invalid="ignore"):
            log_w = np.where(c > 0, np.log(sampler.down_weights(items, c)), 0.0)
        log_w = logdet[None, :] + log_w @ A.T
        log_w[((c == 0) @ A.T) > 0] = -np.inf                # S' must lie in supp c
        log_w -= log_w.max(axis=1, keepdims=True)
        W = np.exp(log_w)
        P += math.exp(log_p) * W / W.sum(axis=1, keepdims=True)
    return states, P


def exact_output_law(sampler, n_steps: int | None = None) -> tuple[list, np.ndarray, np.ndarray]:
    """(states, law, μ): the exact law of one restart-mode output and the target."""
    L = sampler.dpp.likelihood_kernel()
    states, target = kdpp_target(L, sampler.k)
    if sampler.exact:
        return states, target.copy(), target
    _, P = exact_transition(sampler)
    x = np.zeros(len(states))
    x[states.index(tuple(int(v) for v in sampler.start))] = 1.0
    for _ in range(sampler.n_steps if n_steps is None else n_steps):
        x = x @ P
    return states, x, target


def random_kernel(kind: str, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A random PSD kernel of rank ≥ k from one of :data:`KINDS`."""
    if kind == "dense":
        A = rng.normal(size=(n, n)) * 1.5 / math.sqrt(n)
        L = A @ A.T + 0.05 * np.eye(n)
    elif kind == "heavy-tailed":  # feature rows with lognormal norms
        B = rng.normal(size=(n, n)) * np.exp(rng.normal(size=(n, 1)))
        L = B @ B.T + 1e-3 * np.eye(n)
    elif kind == "low-rank":
        B = rng.normal(size=(n, max(k, 3))) * np.exp(1.5 * rng.normal(size=(n, 1)))
        L = B @ B.T + 1e-6 * np.eye(n)
    elif kind == "clustered":  # three groups of near-duplicates
        C = rng.normal(size=(3, n))
        B = C[rng.integers(0, 3, n)] + 0.1 * rng.normal(size=(n, n))
        L = B @ B.T + 1e-4 * np.eye(n)
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return (L + L.T) / 2.0


def _tv(x: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * float(np.abs(x - y).sum())


def _kl(x: np.ndarray, y: np.ndarray) -> float:
    m = x > 0
    return float(np.sum(x[m] * np.log(x[m] / y[m])))


def instance_row(sampler, eps_values: Sequence[float], max_steps: int = 60) -> dict:
    """Exact TVs of one sampler: at s(ε) for each ε, after 4 steps, and the KL ratio."""
    states, target = kdpp_target(sampler.dpp.likelihood_kernel(), sampler.k)
    row = {"n": sampler.n, "k": sampler.k, "t": sampler.t, "exact": sampler.exact,
           "steps": {}, "tv": {}, "tv_4_steps": 0.0, "kl_ratio": 0.0, "kl_ratio_no_1": 0.0}
    if sampler.exact:
        row["steps"] = {e: 0 for e in eps_values}
        row["tv"] = {e: 0.0 for e in eps_values}
        return row
    _, P = exact_transition(sampler)
    i0 = states.index(tuple(int(v) for v in sampler.start))
    h = -math.log(target[i0])
    lam = sampler.contraction
    mass = max(float(sampler.overestimates.sum()), float(sampler.k))
    lam0 = mass / (mass + sampler.t - sampler.k)            # λ without the +1
    need = {e: sampler.steps_for(e) for e in eps_values}
    x = np.zeros(len(states))
    x[i0] = 1.0
    for s in range(1, max(max(need.values()), 4, max_steps) + 1):
        x = x @ P
        kl = _kl(x, target)
        if kl > 1e-9 and h > 0:
            row["kl_ratio"] = max(row["kl_ratio"], kl / (lam ** s * h))
            row["kl_ratio_no_1"] = max(row["kl_ratio_no_1"], kl / (lam0 ** s * h))
        if s == 4:
            row["tv_4_steps"] = _tv(x, target)
        for e, se in need.items():
            if s == se:
                row["tv"][e] = _tv(x, target)
    row["steps"] = need
    return row


def run(*, ns: Sequence[int] = (6, 7, 8, 9), instances: int = 4,
        eps_values: Sequence[float] = (0.1, 0.05, 0.01), seed: int = 0,
        progress=None) -> dict:
    """Every n in ``ns``, every k < n, ``instances`` random kernels (cycling :data:`KINDS`),
    each :data:`RULES`; returns ``{"meta", "rows", "summary", "markdown"}``."""
    from ..dpp import DPP

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    rows = []
    for n in ns:
        for k in range(1, n):
            for j in range(instances):
                kind = KINDS[j % len(KINDS)]
                dpp = DPP.from_likelihood(random_kernel(kind, n, k, rng))
                for rule in RULES:
                    s = rule_sampler(rule, dpp, k, max(eps_values))
                    if s is None:
                        continue
                    row = instance_row(s, eps_values)
                    row.update(kind=kind, rule=rule)
                    rows.append(row)
                    if progress is not None:
                        progress(len(rows))
    summary = _summary(rows, eps_values)
    summary["readme_example"] = readme_example(eps_values)
    meta = environment_info(("numpy", "parasample"), benchmark="sparsified_tv", seed=seed,
                            ns=list(ns), instances=instances, eps=list(eps_values),
                            seconds=round(time.perf_counter() - t0, 1))
    return {"meta": meta, "rows": rows, "summary": summary,
            "markdown": _markdown(rows, summary, eps_values)}


def readme_example(eps_values: Sequence[float] = (0.1, 0.05, 0.01)) -> dict:
    """t and s(ε) of the README example: features N(0, 1) of shape 5000×20 (seed 4), k = 10."""
    from ..dpp import DPP, SparsifiedKDPPSampler

    B = np.random.default_rng(4).normal(size=(5000, 20))
    s = SparsifiedKDPPSampler(DPP.from_features(B), 10, rng=0)
    return {"n": 5000, "d": 20, "k": 10, "t": s.t,
            "steps": {e: s.steps_for(e) for e in eps_values}}


def rule_sampler(rule: str, dpp, k: int, eps: float):
    """The sampler of one row rule (None when it would repeat another row)."""
    from ..dpp import SparsifiedKDPPSampler, kdpp_inclusion_probabilities

    n = dpp.n
    if rule == "default":
        return SparsifiedKDPPSampler(dpp, k, eps=eps, rng=0)
    if k + 1 >= n or (rule == "k+1" and k + 1 == _default_t(k)):
        return None   # t = k + 1 ≥ n samples exactly: listed under "default" already
    if rule == "k+1":
        return SparsifiedKDPPSampler(dpp, k, eps=eps, t=k + 1, rng=0)
    # stress: p̃ = the exact marginals (Σp̃ = k) and the least likely start with μ ≥ 1e-12
    states, mu = kdpp_target(dpp.likelihood_kernel(), k)
    ok = np.flatnonzero(mu >= 1e-12)
    start = states[ok[np.argmin(mu[ok])]]
    p = np.maximum(kdpp_inclusion_probabilities(dpp, k), 1e-12)
    return SparsifiedKDPPSampler(dpp, k, eps=eps, t=k + 1, overestimates=p, start=start,
                                 rng=0)


def _default_t(k: int) -> int:
    return max(math.ceil(2 * k * math.log(math.e * k)), k + 1)


def _summary(rows: list[dict], eps_values) -> dict:
    chain = [r for r in rows if not r["exact"]]
    return {
        "instances": len(rows),
        "chain_instances": len(chain),
        "exact_instances": len(rows) - len(chain),
        "max_tv_over_eps": max((r["tv"][e] / e for r in chain for e in eps_values),
                               default=0.0),
        "max_kl_ratio": max((r["kl_ratio"] for r in chain), default=0.0),
        "max_kl_ratio_no_1": max((r["kl_ratio_no_1"] for r in chain), default=0.0),
        "max_tv_4_steps": max((r["tv_4_steps"] for r in chain), default=0.0),
        "violations": sum(r["tv"][e] > e for r in rows for e in eps_values),
    }


def _markdown(rows: list[dict], summary: dict, eps_values) -> str:
    headers = ["n", "t", "instances", "exact (t ≥ n)"]
    headers += [f"steps ε={e}" for e in eps_values]
    headers += [f"max TV ε={e}" for e in eps_values]
    headers += ["max TV, 4 steps", "max KL_s/(λ^s H)", "same, λ without +1"]
    out = []
    for n in sorted({r["n"] for r in rows}):
        for rule in RULES:
            group = [r for r in rows if r["n"] == n and r["rule"] == rule]
            if not group:
                continue
            chain = [r for r in group if not r["exact"]]
            line = [n, T_LABEL[rule], len(group),
                    len(group) - len(chain)]
            for e in eps_values:
                st = [r["steps"][e] for r in chain]
                line.append(f"{min(st)}–{max(st)}" if st else "—")
            for e in eps_values:
                line.append(f"{max(r['tv'][e] for r in group):.4f}")
            line.append(f"{max((r['tv_4_steps'] for r in chain), default=0.0):.3f}")
            line.append(f"{max((r['kl_ratio'] for r in chain), default=0.0):.2f}")
            line.append(f"{max((r['kl_ratio_no_1'] for r in chain), default=0.0):.2f}")
            out.append(line)
    s = summary
    tail = (f"\n{s['instances']} instances ({s['chain_instances']} run the chain, "
            f"{s['exact_instances']} have t ≥ n and sample exactly): TV > ε in "
            f"{s['violations']} cases; largest TV/ε = {s['max_tv_over_eps']:.2f}; largest "
            f"KL_s/(λ^s H) = {s['max_kl_ratio']:.2f} (λ without the +1: "
            f"{s['max_kl_ratio_no_1']:.2f}); largest TV after 4 steps = "
            f"{s['max_tv_4_steps']:.3f}.\n")
    ex = s["readme_example"]
    tail += (f"README example (features 5000×20, k = 10): t = {ex['t']}, steps "
             + ", ".join(f"s({e}) = {v}" for e, v in ex["steps"].items()) + ".\n")
    return markdown_table(headers, out) + tail
