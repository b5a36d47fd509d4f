"""The model contract: :class:`Denoiser`.

A denoiser wraps a batch-first network ``fn(x: Tensor[N, *shape], t: LongTensor[N])`` (one
training timestep per row) and turns its raw output into the pair (x̂0, ε̂). With a = √ᾱ_t,
b = √(1−ᾱ_t), x = a·x0 + b·ε and v = a·ε − b·x0:

| prediction | x̂0              | ε̂              |
|------------|-----------------|----------------|
| "epsilon"  | (x − b·ε̂)/a     | ε̂              |
| "v"        | a·x − b·v̂       | b·x + a·v̂      |
| "x0"       | x̂0              | (x − a·x̂0)/b   |

Conversions run in at least float32 (fp16/bf16 outputs are cast up first). Post-processing
of x̂0 (``clip_x0``: clipping to ±r or a callable such as dynamic thresholding) happens here,
so every sampler reads the same final x̂0 = D(x, t). ε̂ is returned *unprocessed*; steps
recompute ε from the post-processed x̂0 unless asked not to (``DDIMStep(raw_eps=True)``).

Cost: one :meth:`Denoiser.predict` call is one model call on N rows; samplers wrap it in
:class:`~parasample.core.CountingOracle` (one call = one round, N evaluations).

Row layout used by all samplers: position-major, row r belongs to sample r mod B. With
``conditional=True`` the network is called ``fn(x, t, sample_index)`` with
``sample_index = LongTensor[N]`` so it can gather per-sample conditioning.

The network (and a ``clip_x0`` callable) receives **copies** of x, t and ``sample_index``: a
model that writes into its inputs cannot corrupt the sampler's state (the copies cost O(N·D),
little beside a model call).
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch

from .schedules import Schedule

__all__ = ["Denoiser", "PREDICTIONS", "resolve_run", "rows_view", "as_output_tensor"]

PREDICTIONS = ("epsilon", "x0", "v")

ClipLike = Union[None, float, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


def as_output_tensor(out) -> torch.Tensor:
    """The tensor of a model output: a Tensor, ``.sample``, a tuple's first element or
    ``out["sample"]``."""
    if isinstance(out, torch.Tensor):
        return out
    sample = getattr(out, "sample", None)
    if isinstance(sample, torch.Tensor):
        return sample
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    if isinstance(out, dict) and isinstance(out.get("sample"), torch.Tensor):
        return out["sample"]
    raise TypeError(f"cannot read a tensor from the model output of type {type(out).__name__}")


def _module_dtype_device(fn):
    """(dtype, device) of the first parameter (or buffer) of an nn.Module, else (None, None)."""
    if isinstance(fn, torch.nn.Module):
        for p in fn.parameters():
            return p.dtype, p.device
        for p in fn.buffers():
            return p.dtype, p.device
    return None, None


def rows_view(coef: torch.Tensor, ndim: int) -> torch.Tensor:
    """Reshape a per-row vector ``coef[N]`` to ``(N, 1, …, 1)`` for broadcasting over
    ``ndim``-dimensional row tensors."""
    return coef.reshape(coef.shape + (1,) * (ndim - 1))


class Denoiser:
    """D(x, t): a network ``fn`` plus its training ``schedule`` and parameterisation.

    Parameters
    ----------
    fn : callable ``fn(x[N, *shape], t: LongTensor[N]) -> Tensor[N, *shape]`` (plus
        ``sample_index: LongTensor[N]`` when ``conditional``). An ``nn.Module`` is fine.
    schedule : the training :class:`Schedule` (ᾱ indexed by the training timestep t).
    prediction : ``"epsilon"``, ``"x0"`` or ``"v"``.
    clip_x0 : ``None``; a positive float r (x̂0 ← clamp(x̂0, −r, r)); or a callable
        ``post(x0_hat, t) -> x0_hat`` (e.g. dynamic thresholding), applied to x̂0 only.
    conditional : pass ``sample_index`` to ``fn``.
    dtype, device : the default *state* dtype/device of samplers that use this model.
        Defaults: from an ``nn.Module``'s parameters (fp16/bf16 → float32 state, with the
        module still called in its own dtype), otherwise float64 on the CPU.

    Attributes ``dtype``, ``device``, ``model_dtype`` (the dtype ``fn`` is fed; ``None`` =
    the state dtype), ``prediction``, ``schedule``, ``clip_x0``, ``conditional``, ``fn``.
    """

    def __init__(self, fn: Callable, schedule: Schedule, *, prediction: str = "epsilon",
                 clip_x0: ClipLike = None, conditional: bool = False,
                 dtype: Optional[torch.dtype] = None,
                 device: Union[None, str, torch.device] = None):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of {PREDICTIONS}")
        if clip_x0 is not None and not callable(clip_x0):
            r = float(clip_x0)
            if not (r > 0.0 and r == r):
                raise ValueError(f"clip_x0 must be a positive number or a callable, got {clip_x0!r}")
            clip_x0 = r
        mdtype, mdevice = _module_dtype_device(fn)
        self.model_dtype: Optional[torch.dtype] = mdtype
        if dtype is None:
            if mdtype is None:
                dtype = torch.float64
            else:
                dtype = torch.float64 if mdtype == torch.float64 else torch.float32
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"the state dtype must be torch.float32 or torch.float64, got {dtype}")
        self.fn = fn
        self.schedule = schedule
        self.prediction = prediction
        self.clip_x0 = clip_x0
        self.conditional = bool(conditional)
        self.dtype: torch.dtype = dtype
        self.device: torch.device = torch.device(device if device is not None
                                                 else (mdevice or "cpu"))
        self._tables: dict = {}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(prediction={self.prediction!r}, "
                f"clip_x0={self.clip_x0!r}, dtype={self.dtype}, device={self.device})")

    def _table(self, dtype: torch.dtype, device: torch.device):
        """(√ᾱ, √(1−ᾱ)) as tensors over the T training steps, cached per (dtype, device)."""
        key = (dtype, device)
        if key not in self._tables:
            s = self.schedule
            self._tables[key] = (
                torch.from_numpy(np.array(s.sqrt_alpha_bar)).to(device=device, dtype=dtype),
                torch.from_numpy(np.array(s.sqrt_one_minus_alpha_bar)).to(device=device, dtype=dtype),
            )
        return self._tables[key]

    def raw(self, x: torch.Tensor, t: torch.Tensor,
            sample_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The network's raw output for rows ``x`` at training timesteps ``t`` (one call).

        ``fn`` gets copies of ``x`` (cast to ``model_dtype``), ``t`` and ``sample_index``, so
        it may write into them."""
        xin = x.to(dtype=x.dtype if self.model_dtype is None else self.model_dtype, copy=True)
        if self.conditional:
            if sample_index is None:
                raise ValueError("this Denoiser is conditional: pass sample_index")
            out = self.fn(xin, t.clone(), sample_index.clone())
        else:
            out = self.fn(xin, t.clone())
        if not isinstance(out, torch.Tensor):
            out = getattr(out, "sample", out)  # diffusers-style output objects
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = getattr(out, "shape", type(out).__name__)
            raise ValueError(f"model output has shape {tuple(got) if hasattr(got, '__iter__') else got}, "
                             f"expected {tuple(x.shape)}")
        return out

    def predict(self, x: torch.Tensor, t: torch.Tensor,
                sample_index: Optional[torch.Tensor] = None):
        """(x̂0, ε̂) for rows ``x[N, *shape]`` at per-row training timesteps ``t: Long[N]``.

        One model call. Returned in ``x.dtype`` (which must be float32 or float64);
        conversions are computed in promote(x.dtype, output dtype, float32). x̂0 is
        post-processed (``clip_x0``); ε̂ is the model's own (converted, unprocessed).
        """
        if x.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"states must be float32 or float64, got {x.dtype}")
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        out = self.raw(x, t, sample_index)
        cd = torch.promote_types(torch.promote_types(x.dtype, out.dtype), torch.float32)
        xc = x.to(cd)
        out = out.to(cd)
        sa, sb = self._table(cd, x.device)
        a = rows_view(sa[t], x.ndim)
        b = rows_view(sb[t], x.ndim)
        if self.prediction == "epsilon":
            eps = out
            x0 = (xc - b * eps) / a
        elif self.prediction == "x0":
            x0 = out
            eps = (xc - a * x0) / b
        else:  # "v"
            x0 = a * xc - b * out
            eps = b * xc + a * out
        x0 = self.postprocess(x0, t)
        return x0.to(x.dtype), eps.to(x.dtype)

    def postprocess(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Apply ``clip_x0`` to x̂0 (identity when ``None``); a callable gets a copy of ``t``."""
        if self.clip_x0 is None:
            return x0
        if callable(self.clip_x0):
            return self.clip_x0(x0, t.clone())
        return x0.clamp(-self.clip_x0, self.clip_x0)

    def __call__(self, x: torch.Tensor, t: torch.Tensor,
                 sample_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """D(x, t) = the post-processed x̂0 (one model call)."""
        return self.predict(x, t, sample_index)[0]

    # ------------------------------------------------------------- conversions
    def to_prediction(self, x: torch.Tensor, t: torch.Tensor, x0: torch.Tensor,
                      prediction: str) -> torch.Tensor:
        """Express x̂0 at (x, t) in another parameterisation (ε̂, v̂ or x̂0), per the module table.
        The score is −ε̂/b."""
        sa, sb = self._table(x.dtype, x.device)
        a = rows_view(sa[t], x.ndim)
        b = rows_view(sb[t], x.ndim)
        if prediction == "x0":
            return x0
        eps = (x - a * x0) / b
        if prediction == "epsilon":
            return eps
        if prediction == "v":
            return a * eps - b * x0
        raise ValueError(f"unknown prediction {prediction!r}; choose one of {PREDICTIONS}")


def resolve_run(model: Denoiser, dtype, device):
    """The (dtype, device) a sampler runs in: explicit overrides, else the model's."""
    if not isinstance(model, Denoiser):
        raise TypeError(f"model must be a Denoiser, got {type(model).__name__}")
    dtype = model.dtype if dtype is None else dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    device = model.device if device is None else torch.device(device)
    return dtype, device
