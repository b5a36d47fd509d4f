"""The bundled digits diffusion model and quality classifier (spec diffusion.md §5, §9):
shipped data and metadata, loaders, classifier accuracy, the quality noise floor, and the
quality of sequential DDPM samples (with a check that the quality test has power)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from parasample.diffusion import digits as D  # noqa: E402
from parasample.diffusion.metrics import digits_quality  # noqa: E402


@pytest.fixture(scope="module")
def meta():
    return D.load_metadata()


@pytest.fixture(scope="module")
def classifier():
    return D.load_digits_classifier(dtype=torch.float64)


@pytest.fixture(scope="module")
def model():
    return D.load_digits_model()


# -- shipped files and metadata ----------------------------------------------------------------
def test_shipped_files_and_metadata(meta):
    files = [D.DENOISER_RESOURCE, D.CLASSIFIER_RESOURCE, D.METADATA_RESOURCE]
    total = sum(len(D._data_file(f).read_bytes()) for f in files)
    assert total < 2_000_000
    assert meta["prediction"] == "epsilon"
    assert meta["sample_shape"] == [64]
    assert meta["schedule"] == {**meta["schedule"], "kind": "linear", "n_train": 1000,
                                "beta_start": 1e-4, "beta_end": 0.02}
    assert meta["split"]["random_state"] == 0 and meta["split"]["test_size"] == 0.2
    den, cls = meta["denoiser"], meta["classifier"]
    assert den["steps"] > 0 and 0 < den["final_train_loss"] < 0.2
    assert den["ema"] == 0.999 and den["batch"] == 256
    assert 150_000 < den["n_params"] < 250_000
    assert len(den["sha256"]) == 64 and len(cls["sha256"]) == 64
    assert cls["test_accuracy"] >= 0.9
    for k in ("torch", "numpy", "sklearn"):
        assert k in meta["versions"]
    json.dumps(meta)


def test_sha256_matches_and_corruption_is_refused(monkeypatch, meta):
    with D._data_file(D.DENOISER_RESOURCE).open("rb") as fh, np.load(fh) as z:
        w = {k: np.array(z[k]) for k in D.DENOISER_WEIGHT_NAMES}
    assert D.weights_sha256(w, D.DENOISER_WEIGHT_NAMES) == meta["denoiser"]["sha256"]
    bad = json.loads(json.dumps(meta))
    bad["denoiser"]["sha256"] = "0" * 64
    monkeypatch.setattr(D, "load_metadata", lambda: bad)
    with pytest.raises(ValueError, match="corrupt"):
        D.load_digits_model()
    D.load_digits_classifier()  # the classifier's digest is untouched


# -- data ----------------------------------------------------------------------------------------
def test_digits_data_split():
    Xtr, ytr = D.digits_data("train", return_labels=True)
    Xte, yte = D.digits_data("test", return_labels=True)
    assert Xtr.shape == (1437, 64) and Xte.shape == (360, 64)
    assert Xtr.dtype == np.float64 and ytr.dtype == np.int64
    assert Xtr.min() == -1.0 and Xtr.max() == 1.0
    # stratified: every class has 20% ± 1 image of its count in the held-out split
    ntr, nte = np.bincount(ytr, minlength=10), np.bincount(yte, minlength=10)
    assert np.all(np.abs(nte - 0.2 * (ntr + nte)) <= 1)
    Xte[0, 0] = 5.0  # a copy: the cached split is not touched
    assert D.digits_data("test")[0, 0] != 5.0
    with pytest.raises(ValueError):
        D.digits_data("valid")


def test_to_images_and_grid(tmp_path):
    X = D.digits_data("test")[:10]
    img = D.to_images(X)
    assert img.shape == (10, 8, 8) and img.dtype == np.float64
    from sklearn.datasets import load_digits  # the inverse of the scaling, exactly
    assert set(np.unique(img)) <= set(np.unique(load_digits().data))
    assert D.to_images(torch.full((2, 8, 8), 3.0)).max() == 16.0  # clipped
    assert D.to_images(torch.full((2, 64), 3.0), clip=False).max() == 32.0
    with pytest.raises(ValueError):
        D.to_images(np.zeros((2, 63)))
    pytest.importorskip("matplotlib")
    path = tmp_path / "grid.png"
    D.save_digit_grid(torch.as_tensor(X), path, labels=list(range(10)), title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- denoiser --------------------------------------------------------------------------------------
def test_denoiser_loader(model, meta):
    from parasample.diffusion import Denoiser, Schedule

    assert isinstance(model, Denoiser)
    assert model.prediction == "epsilon" and model.clip_x0 is None
    np.testing.assert_array_equal(model.schedule.alpha_bar, Schedule.linear(1000).alpha_bar)
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    net = model.fn
    assert sum(p.numel() for p in net.parameters()) == meta["denoiser"]["n_params"]
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in net.parameters())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 64, generator=g)
    t = torch.tensor([0, 1, 250, 500, 998, 999])
    with torch.inference_mode():
        eps = net(x, t)
        x0, eps2 = model.predict(x, t)
        img = net(x.reshape(6, 8, 8), t)
    assert eps.shape == (6, 64) and eps.dtype == torch.float32
    assert torch.isfinite(eps).all() and torch.isfinite(x0).all()
    torch.testing.assert_close(eps2, eps)
    torch.testing.assert_close(img.reshape(6, 64), eps)


def test_denoiser_probe_and_float64(meta):
    # the architecture/embedding here reproduce the network the training script saved
    probe = meta["denoiser"]["probe"]
    for dtype in (torch.float32, torch.float64):
        net = D.load_digits_network(dtype=dtype)
        xp = torch.linspace(-1.0, 1.0, 64, dtype=dtype).repeat(len(probe["t"]), 1)
        with torch.inference_mode():
            out = net(xp, torch.tensor(probe["t"])).double()
        assert out.dtype == torch.float64
        np.testing.assert_allclose(out.sum(1).numpy(), probe["eps_sum"], atol=2e-3)
        np.testing.assert_allclose(out[:, 0].numpy(), probe["eps_first"], atol=1e-4)
    m64 = D.load_digits_model(dtype=torch.float64)
    assert m64.dtype == torch.float64


def test_denoiser_predicts_noise_better_than_zero(model):
    # held-out ε-MSE at mid noise levels is far below Var(ε) = 1
    x0 = torch.as_tensor(D.digits_data("test"), dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    ab = torch.tensor(np.array(model.schedule.alpha_bar), dtype=torch.float32)
    t = torch.randint(50, 950, (len(x0),), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    xt = ab[t, None].sqrt() * x0 + (1 - ab[t, None]).sqrt() * eps
    with torch.inference_mode():
        mse = float(((model.fn(xt, t) - eps) ** 2).mean())
    assert mse < 0.2


@pytest.mark.parametrize("loader", [D.load_digits_model, D.load_digits_network,
                                    D.load_digits_classifier])
@pytest.mark.parametrize("dtype", [None, torch.float64])
def test_loaders_leave_the_global_rng_alone(loader, dtype):
    """Loading builds no randomly initialised layers: torch's global RNG is not advanced."""
    torch.manual_seed(123)
    before = torch.get_rng_state()
    cuda_before = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    loader(dtype=dtype)
    assert torch.equal(torch.get_rng_state(), before)
    if cuda_before is not None:
        assert all(torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(),
                                                     cuda_before))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loaders_on_cuda():
    model = D.load_digits_model(device="cuda")
    cls = D.load_digits_classifier(device="cuda")
    x = torch.randn(4, 64, device="cuda")
    t = torch.tensor([0, 10, 500, 999], device="cuda")
    with torch.inference_mode():
        x0, eps = model.predict(x, t)
        cpu = D.load_digits_model().fn(x.cpu(), t.cpu())
        assert cls(x).shape == (4, 10)
    assert model.device.type == "cuda" and eps.device.type == "cuda"
    torch.testing.assert_close(eps.cpu(), cpu, atol=1e-4, rtol=1e-4)


# -- classifier and quality --------------------------------------------------------------------
def test_classifier_heldout_accuracy(classifier, meta):
    Xte, yte = D.digits_data("test", return_labels=True)
    xt = torch.as_tensor(Xte)
    with torch.inference_mode():
        logits = classifier(xt)
        feats = classifier.features(xt)
    acc = float((logits.argmax(1).numpy() == yte).mean())
    assert acc >= 0.9
    assert acc == pytest.approx(meta["classifier"]["test_accuracy"], abs=0.006)
    assert feats.shape == (360, 64) and logits.shape == (360, 10)
    assert D.load_digits_classifier().head.weight.dtype == torch.float32


def test_quality_noise_floor(classifier):
    # held-out against itself is 0; the training split against the held-out one is the floor
    test_q = digits_quality(D.digits_data("test"), classifier=classifier)
    assert test_q["frechet"] == pytest.approx(0.0, abs=1e-8)
    floor = digits_quality(D.digits_data("train"), classifier=classifier)
    assert floor["n"] == 1437 and floor["n_reference"] == 360
    assert floor["frechet"] < 8.0
    assert floor["confidence"] > 0.98
    assert floor["chi2_pvalue"] > 0.5  # the split is balanced by construction
    assert sum(floor["class_counts"]) == 1437


def _floor_at(n, classifier, reps=5, seed=0):
    Xtr = D.digits_data("train")
    rng = np.random.default_rng(seed)
    return [digits_quality(Xtr[rng.choice(len(Xtr), n, replace=False)], classifier=classifier)
            for _ in range(reps)]


N_DDPM = 64
# The criterion, for N = 64 samples against the 360 held-out images: the Fréchet distance is
# within 2× the floor of real training images at the same N (it is biased upward at small N:
# the floor is ≈ 35 at N = 64 against ≈ 3.8 for all 1,437), the mean confidence is > 0.85
# and the class histogram is not grossly non-uniform. Measured with the shipped model
# (5 seeds, N = 64): DDPM-100 Fréchet 30–43, confidence 0.92–0.95, χ² p ≥ 0.014; a sampler
# stopped 20 of 100 steps early (returning the state at t = 190, ᾱ ≈ 0.78) ≈ 100–104; pure
# noise ≈ 1,200 with confidence ≈ 0.75. (Stopping 10 steps early, t = 90, is not detected:
# the classifier's features are robust to pixel noise of std ≈ 0.3.)
FRECHET_FACTOR = 2.0
CONFIDENCE_MIN = 0.85
CHI2_P_MIN = 1e-4


@pytest.fixture(scope="module")
def floor64(classifier):
    Xtr = D.digits_data("train")
    rng = np.random.default_rng(0)
    qs = [digits_quality(Xtr[rng.choice(len(Xtr), N_DDPM, replace=False)], classifier=classifier)
          for _ in range(5)]
    return float(np.mean([q["frechet"] for q in qs])), qs


def _passes(q, floor):
    return (q["frechet"] < FRECHET_FACTOR * floor and q["confidence"] > CONFIDENCE_MIN
            and q["chi2_pvalue"] > CHI2_P_MIN)


def test_quality_floor_at_64_passes_real_digits(floor64):
    floor, qs = floor64
    assert 20 < floor < 60
    for q in qs:
        assert _passes(q, floor), q


def test_ddpm_samples_close_to_heldout_floor(model, classifier, floor64):
    from parasample.diffusion import DDPMStep, TimeGrid, sample_sequential

    floor, _ = floor64
    step = DDPMStep.from_schedule(model.schedule, 100)
    res = sample_sequential(model, step, shape=(64,), batch=N_DDPM, rng=0)
    s = res.sample
    assert s.shape == (N_DDPM, 64) and torch.isfinite(s).all()
    q = digits_quality(s, classifier=classifier)
    assert _passes(q, floor), (q, floor)
    # power: the same criterion fails for pure noise and for a sampler stopped 20 of its 100
    # steps early (it returns the noisy state at t = 190 instead of the clean digit)
    noise = torch.randn(N_DDPM, 64, generator=torch.Generator().manual_seed(0))
    assert not _passes(digits_quality(noise, classifier=classifier), floor)
    ts = step.timesteps
    early = DDPMStep(TimeGrid(model.schedule, ts[:80],
                              final_alpha_bar=float(model.schedule.alpha_bar[ts[80]])))
    s_early = sample_sequential(model, early, shape=(64,), batch=N_DDPM, rng=0).sample
    q_early = digits_quality(s_early, classifier=classifier)
    assert not _passes(q_early, floor), (q_early, floor)
