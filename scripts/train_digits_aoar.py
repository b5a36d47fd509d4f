"""Train the neural any-order autoregressive (AO-AR) model on binarised digits and ship its
weights as package data.

Data: scikit-learn ``load_digits`` (1,797 images 8×8), x_i = [intensity >= 8], n = 64, q = 2;
80/20 split with seed 0. Model: MLP on concat(mask, values·mask) ∈ {0,1}^128 → 2×256 GELU →
64 logits, P[X_i = 1 | pinned] = sigmoid(logit_i). Loss: random-order NLL — draw k uniformly
from 0..63, pin a random k-subset, take 64 × the mean BCE over the unpinned pixels. Adam 1e-3,
batch 128, torch on CPU.

Reports test NLL (bits/image) averaged over >= 16 random orders per image, its spread across
orders, and the product-of-marginals baseline. Writes float32 weights plus metadata (seed,
steps, NLLs, SHA-256 of the weights) to ``src/parasample/autoregressive/data/digits_aoar.npz``.

Usage: python scripts/train_digits_aoar.py [--steps 8000] [--orders 16] [--out PATH]
Needs torch and scikit-learn (not runtime dependencies of the library).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

N = 64
HIDDEN = 256
WEIGHT_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")
DEFAULT_OUT = (Path(__file__).resolve().parents[1]
               / "src" / "parasample" / "autoregressive" / "data" / "digits_aoar.npz")


def load_data(seed: int = 0):
    from sklearn.datasets import load_digits

    X = (load_digits().data >= 8).astype(np.int64)  # (1797, 64)
    perm = np.random.default_rng(seed).permutation(len(X))
    n_train = int(round(0.8 * len(X)))
    return X[perm[:n_train]], X[perm[n_train:]]


def weights_sha256(weights: dict) -> str:
    """SHA-256 over the float32 little-endian bytes of W1, b1, W2, b2, W3, b3 (in that order)."""
    h = hashlib.sha256()
    for name in WEIGHT_NAMES:
        h.update(np.ascontiguousarray(weights[name], dtype="<f4").tobytes())
    return h.hexdigest()


def build_model(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Linear(2 * N, HIDDEN), nn.GELU(),
        nn.Linear(HIDDEN, HIDDEN), nn.GELU(),
        nn.Linear(HIDDEN, N),
    )


def random_masks(torch, B, gen):
    """k ~ U{0..63}, then a uniformly random k-subset per row."""
    k = torch.randint(0, N, (B, 1), generator=gen)
    ranks = torch.rand(B, N, generator=gen).argsort(dim=1).argsort(dim=1)
    return ranks < k


def order_nll_bits(torch, model, X, n_orders: int, seed: int):
    """NLL (bits) of every image under ``n_orders`` random orders: array (n_images, n_orders)."""
    gen = np.random.default_rng(seed)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    M = len(X)
    out = np.zeros((M, n_orders))
    with torch.no_grad():
        for o in range(n_orders):
            orders = np.stack([gen.permutation(N) for _ in range(M)])  # per-image order
            mask = torch.zeros(M, N, dtype=torch.bool)
            total = torch.zeros(M, dtype=torch.float64)
            rows = torch.arange(M)
            for t in range(N):
                i = torch.as_tensor(orders[:, t])
                logits = model(torch.cat([mask.float(), Xt * mask], dim=1)).double()
                li = logits[rows, i]
                xi = Xt[rows, i].double()
                # -log p(x_i) = softplus(-l) if x = 1 else softplus(l)
                total += torch.nn.functional.softplus(torch.where(xi > 0, -li, li))
                mask[rows, i] = True
            out[:, o] = total.numpy() / math.log(2)
    return out


def product_baseline_bits(Xtr, Xte):
    p = (Xtr.sum(0) + 1.0) / (len(Xtr) + 2.0)  # Laplace-smoothed pixel frequencies
    ll = Xte * np.log2(p) + (1 - Xte) * np.log2(1 - p)
    return float(-ll.sum(1).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--orders", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    Xtr, Xte = load_data(args.seed)
    Xtr_t = torch.as_tensor(Xtr, dtype=torch.float32)
    model = build_model(torch)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    print(f"train {len(Xtr)}, test {len(Xte)}, params {n_params}, steps {args.steps}")

    t0 = time.perf_counter()
    run = 0.0
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(Xtr), (args.batch,), generator=gen)
        x = Xtr_t[idx]
        mask = random_masks(torch, args.batch, gen)
        inp = torch.cat([mask.float(), x * mask], dim=1)
        logits = model(inp)
        free = (~mask).float()
        per = bce(logits, x, reduction="none")
        # 64 × mean BCE over the unpinned pixels of each row (k <= 63 so >= 1 is free)
        loss = (N * (per * free).sum(1) / free.sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        run = 0.98 * run + 0.02 * loss.item() if step > 1 else loss.item()
        if step % 1000 == 0 or step == args.steps:
            print(f"step {step:6d}  loss {run / math.log(2):7.2f} bits  "
                  f"{time.perf_counter() - t0:6.1f}s", flush=True)
    train_s = time.perf_counter() - t0

    model.eval()
    nll = order_nll_bits(torch, model, Xte, args.orders, seed=args.seed + 1)
    test_nll = float(nll.mean())
    spread = float(nll.std(axis=1, ddof=1).mean())  # mean over images of std across orders
    base = product_baseline_bits(Xtr, Xte)
    print(f"test NLL {test_nll:.3f} bits/image over {args.orders} orders/image "
          f"(mean per-image std across orders {spread:.3f}); "
          f"product baseline {base:.3f} bits/image; training {train_s:.1f}s")

    lin = [m for m in model if isinstance(m, torch.nn.Linear)]
    weights = {}
    for k, layer in enumerate(lin, start=1):
        # stored as (in, out) so that the forward pass is h @ W + b
        weights[f"W{k}"] = layer.weight.detach().numpy().T.astype(np.float32).copy()
        weights[f"b{k}"] = layer.bias.detach().numpy().astype(np.float32).copy()
    meta = {
        "model": "digits_aoar_mlp", "n": N, "q": 2, "hidden": HIDDEN, "activation": "gelu_erf",
        "input": "concat(mask, values*mask)", "data": "sklearn load_digits, x = [intensity >= 8]",
        "split": "80/20, numpy default_rng(seed).permutation", "seed": args.seed,
        "steps": args.steps, "batch": args.batch, "lr": args.lr, "n_params": int(n_params),
        "train_seconds": round(train_s, 1), "n_train": len(Xtr), "n_test": len(Xte),
        "test_orders": args.orders, "test_nll_bits": round(test_nll, 4),
        "test_nll_order_std_bits": round(spread, 4), "baseline_nll_bits": round(base, 4),
        "torch_version": torch.__version__, "sha256": weights_sha256(weights),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, meta_json=np.array(json.dumps(meta, sort_keys=True)), **weights)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size} bytes), sha256 {meta['sha256']}")
    assert size < 1_000_000, "weights file must stay below 1 MB"
    return meta


if __name__ == "__main__":
    main()
