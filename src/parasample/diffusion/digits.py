"""The bundled 8×8 digits diffusion model and its quality classifier.

Data: scikit-learn's bundled ``load_digits`` (1,797 images, intensities 0..16), scaled as
x/8 − 1 ∈ [−1, 1], flattened row-major to 64 pixels (pixel i is row i // 8, column i % 8).
Split: stratified 80/20 (``train_test_split(test_size=0.2, stratify=y, random_state=0)``),
1,437 training and 360 held-out images.

Denoiser network (:class:`DigitsMLP`): concat(x ∈ R^64, sinusoidal embedding of t ∈ R^64) →
3 × (Linear 256, SiLU) → Linear 64, an ε-prediction for the linear schedule with T = 1000
(β from 1e-4 to 0.02). :func:`load_digits_model` wraps it in a
:class:`~parasample.diffusion.model.Denoiser`; samples have shape ``(64,)``.

Classifier (:class:`DigitsClassifier`): 64 → 128 → 64 → 10 with SiLU, trained on the training
split; its 64-d penultimate activations are the features of the Fréchet distance in
:func:`parasample.diffusion.metrics.digits_quality`.

Weights are float32 ``.npz`` files in ``parasample/diffusion/data/`` written by
``scripts/train_digits_diffusion.py``, with the metadata (schedule, prediction type, scaling,
split, training steps and loss, classifier accuracy, SHA-256 of every weight file) in
``digits_diffusion.json``. Each load recomputes the SHA-256 and refuses corrupt weights.
Loading builds the layers on torch's ``meta`` device and fills them from the file, so it
never draws from (or advances) torch's global random generator.
torch, scikit-learn and matplotlib are imported lazily (extras ``torch``, ``bench``, ``plot``).
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from importlib import resources

import numpy as np

from ..core import as_count
from ..core.errors import require

__all__ = [
    "load_digits_model", "load_digits_network", "load_digits_classifier", "load_metadata",
    "digits_data", "to_images", "save_digit_grid", "build_denoiser_network",
    "build_classifier_network", "network_weights", "timestep_embedding", "weights_sha256",
    "DENOISER_RESOURCE", "CLASSIFIER_RESOURCE", "METADATA_RESOURCE", "DENOISER_WEIGHT_NAMES",
    "CLASSIFIER_WEIGHT_NAMES", "SAMPLE_SHAPE", "N_TRAIN_STEPS",
]

DENOISER_RESOURCE = "digits_ddpm.npz"
CLASSIFIER_RESOURCE = "digits_classifier.npz"
METADATA_RESOURCE = "digits_diffusion.json"

N_PIXELS = 64
SAMPLE_SHAPE = (N_PIXELS,)
N_TRAIN_STEPS = 1000          # T of the linear schedule the denoiser was trained on
EMB_DIM = 64                  # sinusoidal embedding of t
HIDDEN = 256                  # three hidden layers
CLS_HIDDEN = (128, 64)        # classifier: 64 -> 128 -> 64 -> 10
N_CLASSES = 10
MAX_PERIOD = 10_000.0
SPLIT_SEED = 0
TEST_FRACTION = 0.2

# Weights are stored in torch's Linear layout: W_k has shape (out, in), forward is x @ W.T + b.
DENOISER_WEIGHT_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4")
CLASSIFIER_WEIGHT_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")


# -- data ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    datasets = require("sklearn.datasets", "bench")
    model_selection = require("sklearn.model_selection", "bench")
    d = datasets.load_digits()
    X = d.data.astype(np.float64) / 8.0 - 1.0
    y = d.target.astype(np.int64)
    Xtr, Xte, ytr, yte = model_selection.train_test_split(
        X, y, test_size=TEST_FRACTION, stratify=y, random_state=SPLIT_SEED)
    for a in (Xtr, Xte, ytr, yte):
        a.setflags(write=False)
    return Xtr, Xte, ytr, yte


def digits_data(split: str = "test", *, return_labels: bool = False):
    """The scaled digits (x/8 − 1, float64 ``(n, 64)``) of the stratified 80/20 split (seed 0).

    ``split`` is ``"train"`` (1,437 images) or ``"test"`` (360 held-out images). With
    ``return_labels=True`` returns ``(X, y)`` with int64 labels. Needs scikit-learn (the
    ``bench`` or ``test`` extra). Returns fresh copies.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    Xtr, Xte, ytr, yte = _split()
    X, y = (Xtr, ytr) if split == "train" else (Xte, yte)
    return (X.copy(), y.copy()) if return_labels else X.copy()


# -- networks --------------------------------------------------------------------------------
def timestep_embedding(t, dim: int = EMB_DIM, *, dtype=None):
    """Sinusoidal embedding [sin(t·f_j), cos(t·f_j)], f_j = 10000^(−j/(dim/2)), j < dim/2.

    ``t`` is a tensor of (integer) training timesteps of shape ``(N,)``; the angles are formed
    in float64 and the result is cast to ``dtype`` (default float32), shape ``(N, dim)``.
    """
    torch = require("torch", "torch")
    half = dim // 2
    j = torch.arange(half, dtype=torch.float64, device=t.device)
    freqs = torch.exp(-math.log(MAX_PERIOD) * j / half)
    ang = t.to(torch.float64)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
    return emb.to(dtype if dtype is not None else torch.float32)


def build_denoiser_network():
    """A fresh (randomly initialised) :class:`DigitsMLP`, ``fn(x, t) -> ε̂``."""
    torch = require("torch", "torch")
    nn = torch.nn

    class DigitsMLP(nn.Module):
        """ε̂(x, t): concat(x[N, 64], emb(t)[N, 64]) → 3 × (Linear 256, SiLU) → Linear 64.

        ``x`` may be ``(N, 64)`` or ``(N, 8, 8)``; the output has the shape of ``x``.
        """

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(N_PIXELS + EMB_DIM, HIDDEN), nn.SiLU(),
                nn.Linear(HIDDEN, HIDDEN), nn.SiLU(),
                nn.Linear(HIDDEN, HIDDEN), nn.SiLU(),
                nn.Linear(HIDDEN, N_PIXELS),
            )

        def forward(self, x, t):
            shape = x.shape
            h = x.reshape(shape[0], N_PIXELS)
            emb = timestep_embedding(t.reshape(-1), EMB_DIM, dtype=h.dtype)
            return self.net(torch.cat([h, emb], dim=1)).reshape(shape)

    return DigitsMLP()


def build_classifier_network():
    """A fresh :class:`DigitsClassifier`: 64 → 128 → 64 → 10, SiLU.

    ``forward(x)`` gives the 10 logits; ``features(x)`` the 64-d penultimate activations.
    """
    torch = require("torch", "torch")
    nn = torch.nn

    class DigitsClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Linear(N_PIXELS, CLS_HIDDEN[0]), nn.SiLU(),
                nn.Linear(CLS_HIDDEN[0], CLS_HIDDEN[1]), nn.SiLU(),
            )
            self.head = nn.Linear(CLS_HIDDEN[1], N_CLASSES)

        def features(self, x):
            return self.body(x.reshape(x.shape[0], N_PIXELS))

        def forward(self, x):
            return self.head(self.features(x))

    return DigitsClassifier()


def _linears(module):
    torch = require("torch", "torch")
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def network_weights(module) -> dict[str, np.ndarray]:
    """Float32 weights ``{"W1": (out, in), "b1": (out,), ...}`` of a network's Linear layers,
    in forward order (the layout of the shipped ``.npz`` files)."""
    out = {}
    for k, lin in enumerate(_linears(module), start=1):
        out[f"W{k}"] = lin.weight.detach().cpu().numpy().astype(np.float32).copy()
        out[f"b{k}"] = lin.bias.detach().cpu().numpy().astype(np.float32).copy()
    return out


def _shipped(build, weights: dict, names):
    """``build()`` with its weights read from ``weights``, without random initialisation:
    the layers are made on the ``meta`` device (no data, no draws from torch's global
    generator), given uninitialised CPU storage, then every parameter is overwritten."""
    torch = require("torch", "torch")
    with torch.device("meta"):
        module = build()
    module = module.to_empty(device="cpu")
    _load_weights_into(module, weights, names)
    return module


def _load_weights_into(module, weights: dict, names) -> None:
    torch = require("torch", "torch")
    lins = _linears(module)
    if 2 * len(lins) != len(names) or len(list(module.parameters())) != len(names):
        raise ValueError(f"expected {len(names) // 2} linear layers and no other parameters, "
                         f"found {len(lins)} linear layers")
    with torch.no_grad():
        for k, lin in enumerate(lins, start=1):
            W, b = weights[f"W{k}"], weights[f"b{k}"]
            if tuple(W.shape) != tuple(lin.weight.shape) or tuple(b.shape) != tuple(lin.bias.shape):
                raise ValueError(f"weight W{k}/b{k} has shape {W.shape}/{b.shape}, expected "
                                 f"{tuple(lin.weight.shape)}/{tuple(lin.bias.shape)}")
            lin.weight.copy_(torch.from_numpy(np.array(W, dtype=np.float32)))
            lin.bias.copy_(torch.from_numpy(np.array(b, dtype=np.float32)))


def weights_sha256(weights: dict, names) -> str:
    """SHA-256 over the float32 little-endian bytes of ``weights[name]`` for ``names`` in order."""
    h = hashlib.sha256()
    for name in names:
        h.update(np.ascontiguousarray(weights[name], dtype="<f4").tobytes())
    return h.hexdigest()


# -- package data ----------------------------------------------------------------------------
def _data_file(name: str):
    return resources.files(__package__).joinpath("data", name)


def load_metadata() -> dict:
    """The training metadata (``digits_diffusion.json``) of the shipped models."""
    return json.loads(_data_file(METADATA_RESOURCE).read_text(encoding="utf-8"))


def _read_checked(resource: str, names, key: str) -> tuple[dict, dict]:
    meta = load_metadata()
    with _data_file(resource).open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        weights = {k: np.array(z[k]) for k in names}
    digest = weights_sha256(weights, names)
    expected = meta.get(key, {}).get("sha256")
    if digest != expected:
        raise ValueError(f"{resource} is corrupt: SHA-256 {digest} does not match the "
                         f"recorded {expected}; re-run scripts/train_digits_diffusion.py")
    return weights, meta


def _prepare(module, device, dtype):
    torch = require("torch", "torch")
    module = module.to(device=torch.device(device) if device is not None else None,
                       dtype=dtype if dtype is not None else torch.float32)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def load_digits_network(*, device=None, dtype=None):
    """The shipped ε-prediction network alone (an ``nn.Module`` ``fn(x, t)``), in eval mode."""
    weights, meta = _read_checked(DENOISER_RESOURCE, DENOISER_WEIGHT_NAMES, "denoiser")
    net = _shipped(build_denoiser_network, weights, DENOISER_WEIGHT_NAMES)
    net.meta = meta
    return _prepare(net, device, dtype)


def load_digits_model(*, device=None, dtype=None, clip_x0=None):
    """Load the shipped digits diffusion model as a :class:`~parasample.diffusion.model.Denoiser`.

    ε-prediction on ``Schedule.linear(n_train=1000)``; samples have shape ``(64,)`` (the
    network also accepts ``(8, 8)``), in the scale x/8 − 1 (see :func:`to_images`). ``device``
    (e.g. ``"cpu"``, ``"cuda"``; default CPU) and ``dtype`` (default ``torch.float32``) set
    where and in what precision the network runs. The weights' SHA-256 is checked against
    the metadata; the network is ``denoiser.fn`` and the metadata ``load_metadata()``.
    ``clip_x0`` is passed to the Denoiser (default ``None``: the network's own law; ``1.0``
    clamps x̂0 to the data range [−1, 1], the usual DDPM practice for images).
    """
    from .model import Denoiser
    from .schedules import Schedule

    net = load_digits_network(device=device, dtype=dtype)
    meta = net.meta
    sched = meta["schedule"]
    if (sched["kind"], sched["n_train"]) != ("linear", N_TRAIN_STEPS):
        raise ValueError(f"unexpected schedule in the metadata: {sched}")
    schedule = Schedule.linear(n_train=sched["n_train"], beta_start=sched["beta_start"],
                               beta_end=sched["beta_end"])
    return Denoiser(net, schedule, prediction=meta["prediction"], clip_x0=clip_x0)


def load_digits_classifier(*, device=None, dtype=None):
    """Load the shipped quality classifier (64 → 128 → 64 → 10, SiLU) in eval mode.

    ``classifier(x)`` gives logits ``(N, 10)`` and ``classifier.features(x)`` the 64-d
    penultimate activations, for ``x`` of shape ``(N, 64)`` or ``(N, 8, 8)`` in the x/8 − 1
    scale. ``.meta`` holds the metadata (held-out accuracy under ``"classifier"``).
    """
    weights, meta = _read_checked(CLASSIFIER_RESOURCE, CLASSIFIER_WEIGHT_NAMES, "classifier")
    net = _shipped(build_classifier_network, weights, CLASSIFIER_WEIGHT_NAMES)
    net.meta = meta
    return _prepare(net, device, dtype)


# -- pictures --------------------------------------------------------------------------------
def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if not x.dtype.is_floating_point or x.dtype.itemsize < 4:
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)


def to_images(samples, *, clip: bool = True) -> np.ndarray:
    """Samples ``(N, 64)`` or ``(N, 8, 8)`` (tensor or array, scale x/8 − 1) → float64 images
    ``(N, 8, 8)`` of intensities on the dataset's 0..16 scale, clipped to it by default."""
    x = _as_numpy(samples)
    if x.ndim == 1:
        x = x[None]
    if x.shape[1:] not in ((N_PIXELS,), (8, 8)):
        raise ValueError(f"expected samples of shape (N, 64) or (N, 8, 8), got {x.shape}")
    img = (x.reshape(-1, 8, 8) + 1.0) * 8.0
    return np.clip(img, 0.0, 16.0) if clip else img


def save_digit_grid(samples, path, *, ncols: int | None = None, labels=None,
                    title: str | None = None) -> None:
    """Save samples as a PNG grid of 8×8 images (white digits on black, 0..16 scale).

    ``ncols`` defaults to ⌈√N⌉; ``labels`` (one per sample, e.g. predicted classes) are
    drawn above the images. Needs matplotlib (the ``plot`` extra).
    """
    figure = require("matplotlib.figure", "plot")  # no pyplot: no global backend state
    img = to_images(samples)
    n = len(img)
    if n == 0:
        raise ValueError("no samples to draw")
    ncols = as_count(ncols, "ncols", minimum=1) if ncols is not None else math.ceil(math.sqrt(n))
    nrows = int(math.ceil(n / ncols))
    figsize = (0.8 * ncols, 0.8 * nrows + (0.4 if title else 0.0))
    fig = figure.Figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k < n:
            ax.imshow(img[k], cmap="gray", vmin=0.0, vmax=16.0, interpolation="nearest")
            if labels is not None:
                ax.set_title(str(labels[k]), fontsize=7, pad=1)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=100)
