"""Pre-drawn noise shared by every diffusion sampler: :class:`NoiseBank`.

Content, all indexed by **global step index** i = 0…S−1:
- ``x_T``           the start state, (batch, *shape);
- ``z(i)``          the normal used by step i, (batch, *shape);
- ``uniforms(i)``   a uniform in [0, 1) per sample, (batch,), float64 — an independent stream
                    for accept/reject decisions (ASD).

Seeding: ``rng`` (Scientific Python SPEC 7) is split with ``Generator.spawn`` into three
streams (x_T, normals, uniforms); the normal and uniform streams are spawned again into one
child per step. Each child seeds a CPU ``torch.Generator``; values are drawn on the CPU and
then moved, so CPU and CUDA runs get identical noise. Normals are drawn in the bank's dtype
(float32 or float64 — the two dtypes give different, not merely rounded, values).

Storage: all z_i are materialised on first use when S·B·D·itemsize ≤ ``max_bytes`` (256 MiB);
otherwise z_i is regenerated from its own seed on demand (deterministic, O(B·D) per call).
Cost: O(S) seeds up front; O(S·B·D) draws in total.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..core import as_count
from ..core.rng import RngLike, as_generator

__all__ = ["NoiseBank", "DEFAULT_MAX_BYTES"]

DEFAULT_MAX_BYTES = 256 * 2 ** 20


def _seed(g: np.random.Generator) -> int:
    return int(g.integers(0, 2 ** 63 - 1))


def _check_shape(shape) -> tuple:
    """A per-sample shape as a tuple of ints >= 1 (an int n means (n,)); never truncates."""
    if isinstance(shape, (int, np.integer, float, np.floating)):
        shape = (shape,)
    shape = tuple(shape)
    if len(shape) < 1:
        raise ValueError(f"shape must be a non-empty tuple of positive ints, got {shape}")
    return tuple(as_count(s, f"shape[{k}]", minimum=1) for k, s in enumerate(shape))


class NoiseBank:
    """x_T, z_i and u_i for one run of S steps on ``batch`` samples of ``shape``.

    Parameters: ``n_steps`` S, ``shape`` (per-sample), ``batch`` B, keyword ``rng``,
    ``dtype`` (float32 or float64), ``device`` (where tensors are returned), ``max_bytes``
    (materialisation threshold for the normals).

    Attributes ``n_steps``, ``shape``, ``batch``, ``dtype``, ``device``, ``materialized``
    (whether z is stored; decided at construction), ``x_T``.
    """

    def __init__(self, n_steps: int, shape: Union[int, Sequence[int]], batch: int = 1, *,
                 rng: RngLike = None, dtype: torch.dtype = torch.float32,
                 device: Union[str, torch.device] = "cpu",
                 max_bytes: int = DEFAULT_MAX_BYTES):
        n_steps = as_count(n_steps, "n_steps", minimum=1)
        batch = as_count(batch, "batch", minimum=1)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.n_steps = n_steps
        self.shape = _check_shape(shape)
        self.batch = batch
        self.dtype = dtype
        self.device = torch.device(device)
        root = as_generator(rng)
        gx, gz, gu = root.spawn(3)
        self._seed_x = _seed(gx)
        self._seeds_z = [_seed(c) for c in gz.spawn(self.n_steps)]
        self._seeds_u = [_seed(c) for c in gu.spawn(self.n_steps)]
        numel = self.batch * math.prod(self.shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        self.materialized = self.n_steps * numel * itemsize <= int(max_bytes)
        self._z: Optional[torch.Tensor] = None
        self._u: Optional[torch.Tensor] = None
        self.x_T = self._normal(self._seed_x).to(self.device)

    def __repr__(self) -> str:
        return (f"NoiseBank(S={self.n_steps}, shape={self.shape}, batch={self.batch}, "
                f"dtype={self.dtype}, device={self.device}, materialized={self.materialized})")

    @classmethod
    def from_tensors(cls, x_T: torch.Tensor, z: torch.Tensor,
                     uniforms: Optional[torch.Tensor] = None) -> "NoiseBank":
        """A bank holding given noise: ``x_T`` (B, *shape), ``z`` (S, B, *shape) and optional
        ``uniforms`` (S, B) — e.g. a permuted or hand-made bank for tests. Device and dtype
        follow ``x_T``; ``uniforms(i)`` raises if none were given."""
        if x_T.dtype not in (torch.float32, torch.float64) or z.dtype != x_T.dtype:
            raise ValueError("x_T and z must share a float32 or float64 dtype")
        if z.ndim < 2 or tuple(z.shape[1:]) != tuple(x_T.shape) or x_T.ndim < 2:
            raise ValueError(f"z must have shape (S, *x_T.shape) = (S, {tuple(x_T.shape)}), "
                             f"got {tuple(z.shape)}")
        S, B = int(z.shape[0]), int(x_T.shape[0])
        if uniforms is not None and tuple(uniforms.shape) != (S, B):
            raise ValueError(f"uniforms must have shape ({S}, {B}), got {tuple(uniforms.shape)}")
        for name, v in (("x_T", x_T), ("z", z), ("uniforms", uniforms)):
            if v is not None and not bool(torch.isfinite(v).all()):
                raise ValueError(f"{name} has NaN or inf entries")
        self = cls.__new__(cls)
        self.n_steps, self.batch = S, B
        self.shape = tuple(int(s) for s in x_T.shape[1:])
        self.dtype, self.device = x_T.dtype, x_T.device
        self.materialized = True
        self._seed_x, self._seeds_z, self._seeds_u = None, None, None
        self.x_T = x_T.clone()
        self._z = z.to(x_T.device).clone()
        self._u = None if uniforms is None else uniforms.to(device=x_T.device,
                                                             dtype=torch.float64).clone()
        return self

    def _normal(self, seed: int) -> torch.Tensor:
        g = torch.Generator(device="cpu").manual_seed(seed)
        return torch.randn((self.batch,) + self.shape, generator=g, dtype=self.dtype)

    def _check(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.n_steps:
            raise IndexError(f"step index {i!r} out of range [0, {self.n_steps})")
        return int(i)

    def z(self, i: int) -> torch.Tensor:
        """The normal z_i of global step i, shape (batch, *shape), on ``device``."""
        i = self._check(i)
        if self.materialized:
            if self._z is None:
                self._z = torch.stack([self._normal(s) for s in self._seeds_z]).to(self.device)
            return self._z[i]
        return self._normal(self._seeds_z[i]).to(self.device)

    def zs(self, start: int, stop: int) -> torch.Tensor:
        """z_start … z_{stop−1} stacked, shape (stop−start, batch, *shape)."""
        if not 0 <= start <= stop <= self.n_steps:
            raise IndexError(f"bad step range [{start}, {stop}) for S = {self.n_steps}")
        if self.materialized:
            if start < stop:
                self.z(start)
            else:
                return torch.empty((0, self.batch) + self.shape, dtype=self.dtype, device=self.device)
            return self._z[start:stop]
        if start == stop:
            return torch.empty((0, self.batch) + self.shape, dtype=self.dtype, device=self.device)
        return torch.stack([self._normal(self._seeds_z[i]) for i in range(start, stop)]).to(self.device)

    def uniforms(self, i: int) -> torch.Tensor:
        """The uniforms u_i ∈ [0, 1) of global step i, shape (batch,), float64, on ``device``."""
        i = self._check(i)
        if self._u is None:
            if self._seeds_u is None:
                raise ValueError("this bank was built from tensors without uniforms")
            rows = []
            for s in self._seeds_u:
                g = torch.Generator(device="cpu").manual_seed(s)
                rows.append(torch.rand((self.batch,), generator=g, dtype=torch.float64))
            self._u = torch.stack(rows).to(self.device)
        return self._u[i]

    def matches(self, *, n_steps: int, shape, batch: int, dtype: torch.dtype) -> None:
        """Raise ValueError unless this bank fits a run with these settings."""
        shape = _check_shape(shape)
        if self.n_steps != n_steps or self.shape != shape or self.batch != batch:
            raise ValueError(
                f"noise bank (S={self.n_steps}, shape={self.shape}, batch={self.batch}) does not "
                f"match the run (S={n_steps}, shape={shape}, batch={batch})")
        if self.dtype != dtype:
            raise ValueError(f"noise bank dtype {self.dtype} differs from the run dtype {dtype}")
