"""Neural any-order autoregressive (AO-AR) oracle on binarised 8×8 digits.

The shipped model is an MLP on concat(mask, values·mask) ∈ {0,1}^128 → 2×256 GELU → 64
logits with P[X_i = 1 | X_S = x_S] = sigmoid(logit_i); weights (float32) and metadata live in
``parasample/autoregressive/data/digits_aoar.npz`` and are produced by
``scripts/train_digits_aoar.py``. Pixel i is row-major (row i // 8, column i % 8), value 1 for
intensity >= 8.

The network's conditionals are not the chain-rule factorisation of a single joint law, so the
sampled target is, under order π, P_π(x) = ∏_t p(x_{π_t} | x_{π<t}); both samplers of
:mod:`parasample.autoregressive` reproduce it pathwise, hence sample exactly the mixture of P_π
over uniform π.

Inference is numpy float64 by default; ``backend="torch"`` (``device`` "cpu"/"cuda") imports
torch lazily. With ``deterministic=True`` (default) every row is evaluated on its own, so the
answer for a row never depends on the batch it came in (bit for bit, as the oracle contract
asks); ``deterministic=False`` evaluates the batch with one matrix product (faster, but rows may
differ in the last bits between batch sizes).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import numpy as np
from scipy.special import erf, expit

from ..core.errors import require
from .oracles import Oracle

__all__ = ["DigitsOracle", "load_digits_model", "WEIGHTS_RESOURCE"]

WEIGHTS_RESOURCE = "digits_aoar.npz"
_WEIGHT_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")
_SQRT1_2 = np.sqrt(0.5)


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as ``torch.nn.GELU()``."""
    return 0.5 * x * (1.0 + erf(x * _SQRT1_2))


def _sha256(weights: dict) -> str:
    h = hashlib.sha256()
    for name in _WEIGHT_NAMES:
        h.update(np.ascontiguousarray(weights[name], dtype="<f4").tobytes())
    return h.hexdigest()


def _read_npz():
    ref = resources.files("parasample.autoregressive").joinpath("data", WEIGHTS_RESOURCE)
    with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        weights = {k: np.array(z[k]) for k in _WEIGHT_NAMES}
        meta = json.loads(str(z["meta_json"]))
    return weights, meta


class DigitsOracle(Oracle):
    """Conditional-marginal oracle (n = 64, q = 2) of the shipped AO-AR digits network.

    ``marginals(values, mask, targets=None)`` follows the :class:`Oracle` contract: rows sum to
    1, pinned pixels are one-hot, unpinned ``values`` are ignored. The sigmoid never reaches 0
    or 1 exactly in theory, so no row is NaN for an in-range pinning.
    """

    def __init__(self, weights: dict, meta: dict | None = None, *, backend: str = "numpy",
                 device=None, deterministic: bool = True):
        if backend not in ("numpy", "torch"):
            raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}")
        if backend == "numpy" and device not in (None, "cpu"):
            raise ValueError(f"the numpy backend runs on the CPU only, got device={device!r}")
        self.n, self.q = 64, 2
        self.meta = dict(meta or {})
        self.backend = backend
        self.deterministic = bool(deterministic)
        w = {k: np.asarray(weights[k], dtype=np.float64) for k in _WEIGHT_NAMES}
        shapes = {"W1": (128, 256), "b1": (256,), "W2": (256, 256), "b2": (256,),
                  "W3": (256, 64), "b3": (64,)}
        hidden = w["b1"].shape[0]
        shapes = {k: tuple(hidden if d == 256 else d for d in s) for k, s in shapes.items()}
        for k, s in shapes.items():
            if w[k].shape != s:
                raise ValueError(f"weight {k} has shape {w[k].shape}, expected {s}")
        for k in _WEIGHT_NAMES:
            w[k].setflags(write=False)
        self.weights = w
        self.device = None
        if backend == "torch":
            torch = require("torch", "torch")
            self._torch = torch
            self.device = torch.device(device if device is not None else "cpu")
            self._tw = {k: torch.tensor(np.array(v), dtype=torch.float64, device=self.device)
                        for k, v in w.items()}

    # -- forward passes: logits float64[B, 64] from inputs float64[B, 128] ---------------------
    def _logits_numpy(self, inp: np.ndarray) -> np.ndarray:
        w = self.weights
        h = _gelu(inp @ w["W1"] + w["b1"])
        h = _gelu(h @ w["W2"] + w["b2"])
        return h @ w["W3"] + w["b3"]

    def _logits_torch(self, inp: np.ndarray) -> np.ndarray:
        torch, w = self._torch, self._tw
        with torch.no_grad():
            x = torch.as_tensor(inp, dtype=torch.float64, device=self.device)
            h = torch.nn.functional.gelu(x @ w["W1"] + w["b1"])
            h = torch.nn.functional.gelu(h @ w["W2"] + w["b2"])
            return (h @ w["W3"] + w["b3"]).cpu().numpy()

    def logits(self, values, mask) -> np.ndarray:
        """Raw logits float64[B, 64] for pinned ``values`` (unpinned entries ignored)."""
        mask = np.asarray(mask, dtype=bool)
        v = np.where(mask, np.asarray(values), 0)
        inp = np.concatenate([mask, v * mask], axis=1).astype(np.float64)
        f = self._logits_numpy if self.backend == "numpy" else self._logits_torch
        if self.deterministic:
            return np.stack([f(inp[b:b + 1])[0] for b in range(len(inp))]) if len(inp) \
                else np.empty((0, self.n))
        return f(inp)

    def _full_row(self, v, mask):
        logit = self.logits(v[None], mask[None])[0]
        out = np.empty((self.n, 2))
        out[:, 1] = expit(logit)
        out[:, 0] = expit(-logit)
        out /= out.sum(axis=1, keepdims=True)
        pins = np.flatnonzero(mask)
        out[pins] = 0.0
        out[pins, v[pins]] = 1.0
        return out

    def marginals(self, values, mask, targets=None) -> np.ndarray:
        if self.deterministic:
            return super().marginals(values, mask, targets)
        # Batched path: validate through the base class on an empty batch, then range-check.
        values = np.asarray(values)
        mask = np.asarray(mask)
        super().marginals(values[:0], mask[:0], None if targets is None
                          else np.asarray(targets)[:0])
        v = np.where(mask, values, 0).astype(np.int64)
        if v.size and (v.min() < 0 or v.max() >= self.q):
            raise ValueError(f"pinned values must lie in 0..{self.q - 1}")
        B = v.shape[0]
        if targets is not None:
            targets = np.asarray(targets)
            if targets.shape != (B,) or not np.issubdtype(targets.dtype, np.integer):
                raise ValueError(f"targets must be an integer array of shape ({B},)")
            if B and (targets.min() < 0 or targets.max() >= self.n):
                raise ValueError(f"targets must lie in 0..{self.n - 1}")
        logit = self.logits(v, mask)
        out = np.empty((B, self.n, 2))
        out[..., 1] = expit(logit)
        out[..., 0] = expit(-logit)
        out /= out.sum(axis=-1, keepdims=True)
        b, i = np.nonzero(mask)
        out[b, i] = 0.0
        out[b, i, v[b, i]] = 1.0
        if targets is None:
            return out
        return out[np.arange(B), targets].copy()


def load_digits_model(*, device=None, backend: str = "numpy",
                      deterministic: bool = True) -> DigitsOracle:
    """Load the shipped AO-AR digits model as a :class:`DigitsOracle` (n = 64, q = 2).

    ``backend="numpy"`` (default, float64, CPU) or ``"torch"`` (needs the ``torch`` extra;
    ``device`` e.g. ``"cpu"`` or ``"cuda"``). ``.meta`` holds the training metadata (seed,
    steps, test NLL vs the product baseline in bits/image, SHA-256 of the weights), which is
    checked against the weights on load.
    """
    weights, meta = _read_npz()
    digest = _sha256(weights)
    if meta.get("sha256") != digest:
        raise ValueError(f"digits model weights are corrupt: SHA-256 {digest} does not match "
                         f"the recorded {meta.get('sha256')}")
    return DigitsOracle(weights, meta, backend=backend, device=device,
                        deterministic=deterministic)
