"""Hugging Face diffusers interop, the public home: ``parasample.diffusion.hf``.

Re-exports :mod:`parasample.diffusion.diffusers_adapter`:

- :func:`from_diffusers` — (Denoiser, Step) from a diffusers UNet and a DDPM/DDIM scheduler;
- :func:`pipeline_sample` — text-to-image with a Stable-Diffusion-like pipeline and a
  parasample sampler (``"picard"``, ``"asd"`` or ``"sequential"``);
- :class:`DiffusersModelFn` — the UNet wrapper (conditioning, classifier-free guidance, UNet
  row counters ``unet_rows`` / ``unet_calls``);
- :class:`DynamicThreshold` — diffusers' dynamic thresholding of x̂0 as a ``clip_x0`` callable.

Example (no downloads: any UNet and scheduler built from configs or loaded by the user)::

    from parasample.diffusion import sample_picard
    from parasample.diffusion.hf import from_diffusers

    model, step = from_diffusers(unet, DDIMScheduler.from_config(cfg), n_steps=50)
    res = sample_picard(model, step, shape=(3, 32, 32), batch=4, rng=0, window=16, tol=0.1)
    res.sample, res.cost.rounds, model.fn.unet_rows

For several GPUs, pass ``ReplicatedModel(lambda d: build_unet().to(d), ["cuda:0", "cuda:1"])``
(:mod:`parasample.diffusion.multi_device`) as the ``unet``.

diffusers is imported only when these functions run (extra ``hf``).
"""

from .diffusers_adapter import (  # noqa: F401
    PREDICTION_TYPES, SAMPLERS, DiffusersModelFn, DynamicThreshold, from_diffusers,
    pipeline_sample,
)

__all__ = ["from_diffusers", "pipeline_sample", "DiffusersModelFn", "DynamicThreshold",
           "PREDICTION_TYPES", "SAMPLERS"]
