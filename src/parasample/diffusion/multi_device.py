"""Evaluate one model on several devices at once: :class:`ReplicatedModel`.

A :class:`ReplicatedModel` keeps **one persistent replica per device** (built once by
``factory(device)``; no weight broadcast per call, unlike ``nn.DataParallel``) and is itself a
batch-first callable, so it can be the ``fn`` of a
:class:`~parasample.diffusion.model.Denoiser` or the ``unet`` of
:func:`~parasample.diffusion.diffusers_adapter.from_diffusers`. A call on N rows:

1. every tensor argument whose first axis has length N (x, per-row timesteps, sample indices,
   per-row ``encoder_hidden_states``) is cut with ``tensor_split`` into G = min(#devices, N)
   contiguous, balanced chunks (sizes differ by at most one); other arguments are copied to
   every device unchanged;
2. chunk g runs on replica g, all chunks concurrently — chunk 0 in the calling thread, the
   others in persistent worker threads, each CUDA replica on its own stream;
3. the outputs are gathered **in order** on the primary device (``devices[0]``) with ``cat``.

Batches of fewer than ``min_split_rows`` rows (default 4: "3 rows or fewer stay on one
device") run on the primary replica alone. Splitting never changes a sampler's rounds or
evaluations — the sampler still makes one call per round — only the wall-clock of a call:
T_call ≈ T_model(⌈N/G⌉) + transfers + synchronisation.

Every replica gets its own copy of each tensor argument (its chunk, or the unsplit value), so a
replica that writes into its inputs changes neither the caller's tensors nor another replica's.

Worker threads inherit the caller's grad / inference mode (thread-local in torch), so samplers
running under ``torch.inference_mode()`` keep doing so on every device. Per-row results equal
the single-device ones up to the model's batch-composition rounding (bitwise for models whose
rows do not interact).

Across machines, see ``parasample.distributed`` (Ray actors holding replicas).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, List, Sequence, Union

import torch

from ..core import as_count
from .model import as_output_tensor

__all__ = ["ReplicatedModel", "MIN_SPLIT_ROWS"]

MIN_SPLIT_ROWS = 4

DeviceLike = Union[str, torch.device, int]


def _to(v, device: torch.device):
    """A replica's own copy of a tensor argument on ``device`` (other values as they are), so
    a replica that writes into its inputs touches neither the caller's tensors nor another
    replica's."""
    return v.to(device, copy=True) if isinstance(v, torch.Tensor) else v


class ReplicatedModel:
    """One replica of a model per device; batches split across them.

    Parameters
    ----------
    factory : ``factory(device) -> callable`` building the replica for ``device`` (e.g.
        ``lambda d: make_unet().to(d, torch.float16).eval()``). Called once per entry of
        ``devices``, in order, on the calling thread. A device may be listed twice (two
        replicas on it, e.g. ``["cpu", "cpu"]`` in tests).
    devices : non-empty sequence of devices; ``devices[0]`` is the primary device, where
        inputs are expected and outputs are gathered.
    min_split_rows : batches with fewer rows stay on the primary replica (default 4).

    Call ``model(x, *args, **kwargs) -> Tensor`` with x of N rows; a replica may return a
    tensor, an object with ``.sample`` (diffusers) or a tuple — the gathered result is always a
    tensor. Attributes: ``replicas``, ``devices``, ``device`` (primary), ``dtype`` (of the
    primary replica's first parameter, else None), ``calls``, ``rows``, ``split_calls`` and
    ``rows_per_device`` (counters). Unknown attributes (e.g. ``config``) are read from the
    primary replica. ``close()`` (or a ``with`` block) stops the worker threads.
    """

    def __init__(self, factory: Callable[[torch.device], Callable], devices: Sequence[DeviceLike],
                 *, min_split_rows: int = MIN_SPLIT_ROWS):
        if not callable(factory):
            raise TypeError(f"factory must be callable, got {type(factory).__name__}")
        if isinstance(devices, (str, torch.device, int)):
            devices = [devices]
        devs = [torch.device(d) if not isinstance(d, int) else torch.device("cuda", d)
                for d in devices]
        if not devs:
            raise ValueError("devices must be a non-empty sequence")
        for d in devs:
            if d.type == "cuda" and d.index is None:
                raise ValueError("name CUDA devices with an index, e.g. 'cuda:0'")
        self.min_split_rows = as_count(min_split_rows, "min_split_rows", minimum=2)
        self.devices: List[torch.device] = devs
        self.replicas = [factory(d) for d in devs]
        for r in self.replicas:
            if not callable(r):
                raise TypeError(f"factory returned a non-callable {type(r).__name__}")
        self._streams = [torch.cuda.Stream(device=d) if d.type == "cuda" else None for d in devs]
        self._pool = (ThreadPoolExecutor(max_workers=len(devs) - 1,
                                         thread_name_prefix="parasample-replica")
                      if len(devs) > 1 else None)
        self._lock = threading.Lock()
        self.calls = 0
        self.split_calls = 0
        self.rows = 0
        self.rows_per_device = [0] * len(devs)

    # ------------------------------------------------------------------ attributes
    @property
    def device(self) -> torch.device:
        return self.devices[0]

    @property
    def dtype(self):
        r = self.replicas[0]
        if isinstance(r, torch.nn.Module):
            for p in r.parameters():
                return p.dtype
        return getattr(r, "dtype", None)

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("replicas", "devices"):
            raise AttributeError(name)
        return getattr(self.replicas[0], name)

    def __repr__(self) -> str:
        return (f"ReplicatedModel({type(self.replicas[0]).__name__}, devices="
                f"{[str(d) for d in self.devices]})")

    def close(self) -> None:
        """Stop the worker threads (idempotent); the model then runs on the primary only."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> "ReplicatedModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - interpreter shutdown order
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ the call
    def _run(self, g: int, args: tuple, kwargs: dict, src_streams: dict, modes: tuple):
        """Chunk g on replica g; returns its output on the primary device, ready to use."""
        dev = self.devices[g]
        stream = self._streams[g]
        inference, grad = modes
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            if stream is None:
                a = tuple(_to(v, dev) for v in args)
                kw = {k: _to(v, dev) for k, v in kwargs.items()}
                return as_output_tensor(self.replicas[g](*a, **kw)).to(self.devices[0])
            for s in src_streams.values():       # inputs were produced on the caller's streams
                stream.wait_stream(s)
            with torch.cuda.device(dev), torch.cuda.stream(stream):
                a = tuple(_to(v, dev) for v in args)
                kw = {k: _to(v, dev) for k, v in kwargs.items()}
                out = as_output_tensor(self.replicas[g](*a, **kw)).to(self.devices[0])
            stream.synchronize()                 # out is complete before another stream reads it
            return out

    def __call__(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 1:
            raise TypeError("the first argument must be a tensor with a leading row axis")
        n = int(x.shape[0])
        G = min(len(self.devices), n) if self._pool is not None else 1
        if n < self.min_split_rows:
            G = 1
        modes = (torch.is_inference_mode_enabled(), torch.is_grad_enabled())
        allargs = (x,) + tuple(args)
        src_streams = {}
        for v in list(allargs) + list(kwargs.values()):
            if isinstance(v, torch.Tensor) and v.is_cuda and v.device not in src_streams:
                src_streams[v.device] = torch.cuda.current_stream(v.device)
        with self._lock:
            self.calls += 1
            self.rows += n
        if G == 1:
            self.rows_per_device[0] += n
            return self._run(0, allargs, kwargs, src_streams, modes)

        def cut(v):
            if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n:
                return torch.tensor_split(v, G)
            return (v,) * G

        pa = [cut(v) for v in allargs]
        pk = {k: cut(v) for k, v in kwargs.items()}
        chunks = [(tuple(p[g] for p in pa), {k: p[g] for k, p in pk.items()}) for g in range(G)]
        for g, (a, _) in enumerate(chunks):
            self.rows_per_device[g] += int(a[0].shape[0])
        self.split_calls += 1
        futures = [self._pool.submit(self._run, g, a, kw, src_streams, modes)
                   for g, (a, kw) in enumerate(chunks) if g > 0]
        outs = [self._run(0, chunks[0][0], chunks[0][1], src_streams, modes)]
        outs += [f.result() for f in futures]
        return torch.cat(outs, dim=0)
