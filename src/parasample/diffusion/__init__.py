"""Parallel sampling of pretrained diffusion models.

Schedules and grids (:mod:`.schedules`), the model contract (:mod:`.model`), DDPM/DDIM steps
(:mod:`.steps`), shared pre-drawn noise (:mod:`.noise`), the sequential reference
(:mod:`.sequential`), Picard iteration (:mod:`.picard`) and closed-form test denoisers
(:mod:`.gmm`). Needs PyTorch (``pip install "parasample[torch]"``); ``import parasample``
alone never imports this package.
"""

from ..core.errors import require as _require

_require("torch", "torch")

from .asd import sample_asd  # noqa: E402
from .diffusers_adapter import DynamicThreshold, from_diffusers, pipeline_sample  # noqa: E402
from .gmm import (  # noqa: E402
    GaussianMixtureDenoiser, PointMassDenoiser, SingleGaussianDenoiser, ring_gmm,
    single_gaussian_law,
)
from .model import PREDICTIONS, Denoiser  # noqa: E402
from .multi_device import ReplicatedModel  # noqa: E402
from .noise import NoiseBank  # noqa: E402
from .picard import sample_picard  # noqa: E402
from .schedules import Schedule, TimeGrid, spaced_timesteps  # noqa: E402
from .sequential import sample_sequential  # noqa: E402
from .steps import DDIMStep, DDPMStep, Step  # noqa: E402

__all__ = [
    "Schedule", "TimeGrid", "spaced_timesteps", "Denoiser", "PREDICTIONS", "DDPMStep",
    "DDIMStep", "Step", "NoiseBank", "sample_sequential", "sample_picard",
    "sample_asd", "from_diffusers", "pipeline_sample", "DynamicThreshold", "ReplicatedModel",
    "GaussianMixtureDenoiser", "SingleGaussianDenoiser", "PointMassDenoiser", "ring_gmm",
    "single_gaussian_law",
]
