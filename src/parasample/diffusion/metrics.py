"""Two-sample statistics and sample-quality metrics.

All computations are numpy float64 on the CPU; inputs may be numpy arrays or torch tensors
(any device/dtype), with one sample per row (trailing dimensions are flattened).

- :func:`energy_distance` — V-statistic 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ (0 for identical samples).
- :func:`mmd_rbf` — biased MMD² with a Gaussian kernel, median-heuristic bandwidth on the
  pooled sample (so it is invariant under relabelling, as a permutation test needs).
- :func:`permutation_test` — (statistic, p-value) with the +1 correction.
- :func:`frechet_distance` — ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁^½ Σ₂ Σ₁^½), via ``eigh``.
- :func:`digits_quality` — Fréchet distance of the digits classifier's penultimate features
  against the held-out split, mean max-softmax confidence, χ² of the class histogram.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats
from scipy.spatial.distance import cdist

from ..core import as_count
from ..core.errors import require
from ..core.rng import RngLike, as_generator

__all__ = [
    "energy_distance", "mmd_rbf", "permutation_test", "frechet_distance", "gaussian_fit",
    "digits_quality", "digits_features",
]


def _rows(x, name: str = "x") -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor: move to CPU, go through float32 at least
        x = x.detach().cpu()
        if not x.dtype.is_floating_point or x.dtype.itemsize < 4:
            x = x.float()
        x = x.numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        raise ValueError(f"{name} must have one sample per row, got a scalar")
    a = a.reshape(len(a), -1) if a.ndim > 1 else a[:, None]
    if len(a) == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _rows(x, "x"), _rows(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y have different dimensions: {x.shape[1]} vs {y.shape[1]}")
    return x, y


# -- statistics on a pooled distance matrix (shared by the direct call and the permutations) --
def _energy_from(D: np.ndarray, inx: np.ndarray) -> float:
    iny = ~inx
    dxy = D[np.ix_(inx, iny)].mean()
    dxx = D[np.ix_(inx, inx)].mean()
    dyy = D[np.ix_(iny, iny)].mean()
    return float(2.0 * dxy - dxx - dyy)


def _median_bandwidth(D: np.ndarray) -> float:
    off = D[np.triu_indices(len(D), k=1)]
    h = float(np.median(off)) if off.size else 0.0
    if not h > 0.0:
        pos = off[off > 0]
        h = float(np.median(pos)) if pos.size else 1.0
    return h


def _mmd_from(K: np.ndarray, inx: np.ndarray) -> float:
    iny = ~inx
    kxx = K[np.ix_(inx, inx)].mean()
    kyy = K[np.ix_(iny, iny)].mean()
    kxy = K[np.ix_(inx, iny)].mean()
    return float(max(kxx + kyy - 2.0 * kxy, 0.0))


def energy_distance(x, y) -> float:
    """Energy distance (V-statistic) 2·mean‖x_i − y_j‖ − mean‖x_i − x_k‖ − mean‖y_j − y_l‖.

    Non-negative, 0 when the two samples are identical as multisets; for large samples it
    tends to the population energy distance, which is 0 iff the laws agree.
    """
    x, y = _pair(x, y)
    z = np.concatenate([x, y])
    inx = np.arange(len(z)) < len(x)
    return _energy_from(cdist(z, z), inx)


def mmd_rbf(x, y, bandwidth: float | None = None) -> float:
    """Squared maximum mean discrepancy (biased V-statistic) with k(a, b) = exp(−‖a−b‖²/(2h²)).

    ``bandwidth`` h defaults to the median heuristic: the median of the pairwise distances of
    the pooled sample (x ∪ y), which does not change when the pool is relabelled. Symmetric in
    (x, y), non-negative, 0 for identical samples.
    """
    x, y = _pair(x, y)
    z = np.concatenate([x, y])
    D = cdist(z, z)
    h = _median_bandwidth(D) if bandwidth is None else float(bandwidth)
    if not h > 0.0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    inx = np.arange(len(z)) < len(x)
    return _mmd_from(np.exp(-(D * D) / (2.0 * h * h)), inx)


def permutation_test(x, y, statistic: Callable = energy_distance, *, n_permutations: int = 200,
                     rng: RngLike = None) -> tuple[float, float]:
    """Two-sample permutation test of "x and y come from the same law".

    Returns ``(stat, pvalue)`` with stat = statistic(x, y) and
    p = (1 + #{permutations with stat* ≥ stat}) / (1 + n_permutations), which is a valid
    (slightly conservative) p-value; large statistics are evidence against the null.
    ``statistic(x, y) -> float`` is any two-sample statistic; :func:`energy_distance` and
    :func:`mmd_rbf` (default bandwidth) reuse one pooled distance matrix for all permutations.
    """
    n_permutations = as_count(n_permutations, "n_permutations", minimum=1)
    gen = as_generator(rng)
    x, y = _pair(x, y)
    z = np.concatenate([x, y])
    n, m = len(x), len(z)
    base = np.arange(m) < n
    if statistic is energy_distance or statistic is mmd_rbf:
        D = cdist(z, z)
        if statistic is energy_distance:
            mat, fn = D, _energy_from
        else:
            h = _median_bandwidth(D)
            mat, fn = np.exp(-(D * D) / (2.0 * h * h)), _mmd_from
        observed = fn(mat, base)
        perm_stat = lambda inx: fn(mat, inx)  # noqa: E731
    else:
        observed = float(statistic(x, y))
        perm_stat = lambda inx: float(statistic(z[inx], z[~inx]))  # noqa: E731
    exceed = 0
    for _ in range(n_permutations):
        inx = np.zeros(m, dtype=bool)
        inx[gen.permutation(m)[:n]] = True
        # a tiny relative tolerance so that exact ties (e.g. equal multisets) count as >=
        if perm_stat(inx) >= observed - 1e-12 * abs(observed):
            exceed += 1
    return float(observed), (1.0 + exceed) / (1.0 + n_permutations)


# -- Fréchet distance ------------------------------------------------------------------------
def gaussian_fit(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof = 1) of the rows of ``features``, float64."""
    f = _rows(features, "features")
    if len(f) < 2:
        raise ValueError("need at least 2 samples to fit a covariance")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _psd_sqrt(S: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(0.5 * (S + S.T))
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


def frechet_distance(feat_a, feat_b) -> float:
    """Fréchet (2-Wasserstein²) distance between Gaussian fits of two feature sets.

    ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁^½ Σ₂ Σ₁^½), all in float64 with ``eigh`` and negative
    eigenvalues clipped to 0 (covariances from few samples are singular). Clipped at 0. Note
    the statistic is biased upwards for small samples (≈ tr of the estimation noise), so
    compare it only between sample sets of equal size.
    """
    mu1, S1 = gaussian_fit(feat_a)
    mu2, S2 = gaussian_fit(feat_b)
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    r = _psd_sqrt(S1)
    M = r @ S2 @ r
    w = np.linalg.eigvalsh(0.5 * (M + M.T))
    tr_sqrt = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    d = float(np.sum((mu1 - mu2) ** 2) + np.trace(S1) + np.trace(S2) - 2.0 * tr_sqrt)
    return max(d, 0.0)


# -- digits quality --------------------------------------------------------------------------
def digits_features(samples, classifier=None) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features float64 (N, 64), class probabilities float64 (N, 10)) of digits
    samples (scale x/8 − 1, shape (N, 64) or (N, 8, 8)) under the shipped classifier."""
    from .digits import load_digits_classifier

    torch = require("torch", "torch")
    if classifier is None:
        classifier = load_digits_classifier(dtype=torch.float64)
    x = _rows(samples, "samples")
    if x.shape[1] != 64:
        raise ValueError(f"digits samples have 64 pixels, got {x.shape[1]}")
    p = next(classifier.parameters())
    with torch.inference_mode():
        xt = torch.as_tensor(x, dtype=p.dtype, device=p.device)
        feats = classifier.features(xt)
        logits = classifier.head(feats)
        probs = torch.softmax(logits.to(torch.float64), dim=1)
    return _rows(feats, "features"), probs.cpu().numpy()


def digits_quality(samples, *, classifier=None, reference=None) -> dict:
    """Quality of digits samples: a dict with

    - ``frechet``: Fréchet distance between Gaussian fits of the classifier's 64-d penultimate
      features of ``samples`` and of ``reference`` (default: the 360 held-out images);
    - ``confidence``: mean max-softmax probability of the classifier on ``samples``;
    - ``chi2``, ``chi2_pvalue``: Pearson χ² (9 df) of the predicted-class histogram against
      uniform, and its p-value (the dataset is balanced to within ±2%);
    - ``class_counts`` (list of 10 ints), ``n``, ``n_reference``.

    ``classifier`` defaults to :func:`~parasample.diffusion.digits.load_digits_classifier` in
    float64; ``reference`` is a sample set in the same x/8 − 1 scale. Samples are not clipped
    (out-of-range pixels count against them). The Fréchet distance is biased upward at small
    N, so compare it with the floor of real images at the same N (see the tests/README).
    Needs torch and, for the default reference, scikit-learn.
    """
    from .digits import digits_data, load_digits_classifier

    torch = require("torch", "torch")

    if classifier is None:
        classifier = load_digits_classifier(dtype=torch.float64)
    if reference is None:
        reference = digits_data("test")
    f_s, p_s = digits_features(samples, classifier)
    f_r, _ = digits_features(reference, classifier)
    counts = np.bincount(p_s.argmax(axis=1), minlength=p_s.shape[1])
    chi2, pval = stats.chisquare(counts)
    return {
        "frechet": frechet_distance(f_s, f_r),
        "confidence": float(p_s.max(axis=1).mean()),
        "chi2": float(chi2),
        "chi2_pvalue": float(pval),
        "class_counts": [int(c) for c in counts],
        "n": int(len(f_s)),
        "n_reference": int(len(f_r)),
    }
