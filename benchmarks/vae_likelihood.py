"""Fashion-MNIST VAE: test -log p(x) (importance-weighted, K=5000) of aekit and of the Pythae library.

Both models are Pythae's default VAE MLP, 784-512-16 (ReLU) with a 16-512-784 Bernoulli decoder,
trained for Pythae's default 100 epochs on the 60,000 training images, dynamically binarized
(a fresh Bernoulli draw of the [0, 1] pixels at every step), and measured on one fixed
binarization of the 10,000 test images (seed 0). Every model is scored by the same estimator
(:func:`iw_nll`, Burda et al. 2016): log mean_k p(x|z_k) p(z_k) / q(z_k|x) with K draws from the
encoder's posterior, each model's likelihood taken as its library defines it (aekit: Bernoulli on
the decoder's logits; Pythae: ``binary_cross_entropy`` on its sigmoid outputs). Rows:

- aekit ``vae`` with aekit's defaults (Adam 1e-3, batch 128);
- Pythae ``VAE`` + ``TrainingPipeline`` with Pythae's defaults (Adam 1e-4, batch 64);
- Pythae with aekit's optimiser settings (Adam 1e-3, batch 128), to separate settings from code.

Target: aekit's estimate lower (better) than Pythae's default VAE's.

    python -m benchmarks.vae_likelihood [--epochs 100] [--k 5000] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import aekit
from aekit.bounds import LikelihoodFn, PosteriorFn, importance_weighted_bounds
from aekit.data import load_splits

from .common import publish, sync, table


def iw_nll(posterior: PosteriorFn, log_lik: LikelihoodFn, X: np.ndarray, k: int,
           seed: int = 0) -> tuple[float, float]:
    """Mean importance-weighted -log p(x) with ``k`` samples and the negative ELBO, by aekit's estimator
    (:func:`aekit.bounds.importance_weighted_bounds`) for any library's model."""
    out = importance_weighted_bounds(posterior, log_lik, X, k, seed=seed, batch_size=20, max_rows=20_000)
    return out["nll_iw"], out["recon"] + out["kl"]


def _aekit(train: np.ndarray, epochs: int, out: str, **extra: Any) -> tuple[Any, float]:
    """aekit's VAE trained on ``train`` (``extra``: more aekit.fit options, e.g. ``device="cuda"``, which
    keeps the model there); returns it and the seconds of the whole call."""
    device = torch.device(extra.get("device", "cpu"))
    sync(device)
    t0 = time.perf_counter()
    model = aekit.fit("vae", train, out=out, overwrite=True, hidden=(512,), latent=16, activation="relu",
                      loss="bce", binarize=True, epochs=epochs, scale="none", val_fraction=0.0,
                      test_fraction=0.0, seed=0, progress=False, figures=False, **extra)
    sync(device)
    return model, time.perf_counter() - t0


def _aekit_scorers(model: Any) -> tuple[PosteriorFn, LikelihoodFn]:
    v = model.variant  # its posterior and the decoder's own likelihood (Bernoulli on the logits)
    return v.posterior_fn(model), v.log_likelihood_fn(model)


class _DynamicBinarization(torch.utils.data.Dataset):
    """Pythae dataset drawing a fresh binarization of each image every time it is read."""

    def __init__(self, x: np.ndarray):
        self.x = torch.from_numpy(x).reshape(-1, 1, 28, 28)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Any:
        from pythae.data.datasets import DatasetOutput
        return DatasetOutput(data=torch.bernoulli(self.x[i]))


def _pythae(train: np.ndarray, epochs: int, out: str, lr: float | None, batch: int | None,
            device: str | torch.device = "cpu") -> tuple[Any, float]:
    """Pythae's VAE trained by its TrainingPipeline (on ``device``: Pythae trains on "cuda", the current
    CUDA device, unless told ``no_cuda``); returns the model, left on the device, and the seconds."""
    from pythae.models import VAE, VAEConfig
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    device = torch.device(device)
    torch.manual_seed(0)
    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=16, reconstruction_loss="bce"))
    extra = {}
    if lr is not None:
        extra["learning_rate"] = lr
    if batch is not None:
        extra["per_device_train_batch_size"] = batch
    cfg = BaseTrainerConfig(output_dir=out, num_epochs=epochs, no_cuda=device.type != "cuda", seed=0, **extra)
    sync(device)
    t0 = time.perf_counter()
    TrainingPipeline(training_config=cfg, model=model)(train_data=_DynamicBinarization(train))
    sync(device)
    return model.eval(), time.perf_counter() - t0


def _pythae_scorers(model: Any) -> tuple[PosteriorFn, LikelihoodFn]:
    def posterior(x):
        out = model.encoder(x.reshape(-1, 1, 28, 28))
        return out.embedding, out.log_covariance

    def log_lik(z, x):
        probs = model.decoder(z)["reconstruction"].reshape(len(z), -1)
        return -F.binary_cross_entropy(probs, x, reduction="none").sum(1)
    return posterior, log_lik


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=100, help="Pythae's default num_epochs")
    p.add_argument("--k", type=int, default=5000, help="importance samples per test image")
    p.add_argument("--test", type=int, default=10000, help="test images scored")
    p.add_argument("--no-matched", action="store_true", help="skip Pythae with aekit's optimiser settings")
    p.add_argument("--quick", action="store_true", help="1 epoch, K=50, 500 test images (recorded in RESULTS-quick.md)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.k, args.test = 1, 50, 500
    splits = load_splits("fashion-mnist", val_fraction=0.0)
    train = (splits.train.x / 255.0).astype(np.float32)
    test = (np.random.default_rng(0).random(splits.test.x.shape) < splits.test.x / 255.0).astype(np.float32)
    test = test[:args.test]
    runs: list[tuple[str, Any, float, tuple[PosteriorFn, LikelihoodFn]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model, secs = _aekit(train, args.epochs, f"{tmp}/aekit")
        lib = aekit.likelihood_bounds(model, test, args.k, seed=0)
        runs.append(("aekit vae (Adam 1e-3, batch 128)", model, secs, _aekit_scorers(model)))
        model, secs = _pythae(train, args.epochs, f"{tmp}/pythae", None, None)
        runs.append(("Pythae VAE, defaults (Adam 1e-4, batch 64)", model, secs, _pythae_scorers(model)))
        if not args.no_matched:
            model, secs = _pythae(train, args.epochs, f"{tmp}/pythae2", 1e-3, 128)
            runs.append(("Pythae VAE, aekit's settings (Adam 1e-3, batch 128)", model, secs, _pythae_scorers(model)))
        rows, scores = [], {}
        for name, model, secs, (posterior, log_lik) in runs:
            t0 = time.perf_counter()
            nll, nelbo = iw_nll(posterior, log_lik, test, args.k)
            scores[name] = nll
            rows.append([name, nll, nelbo, f"{secs:.0f} s", f"{time.perf_counter() - t0:.0f} s"])
    ours, peer = scores[runs[0][0]], scores[runs[1][0]]
    met = ours < peer
    matched = (f" Pythae with aekit's optimiser settings: {scores[runs[2][0]] - ours:+.2f} nats from aekit "
               f"(the same model and settings, so the two libraries should land close)." if len(runs) > 2 else "")
    body = (table(["model", f"test -log p(x), K={args.k} (nats)", "test -ELBO (nats)", "training",
                   "scoring"], rows)
            + f"\n\naekit - Pythae (defaults): **{ours - peer:+.2f} nats** (target: lower than Pythae: "
            + ("met" if met else "MISSED") + f").{matched} aekit's own `likelihood_bounds` on the same images: "
            f"-log p(x) {lib['nll_iw']:.2f}, -ELBO {lib['nelbo']:.2f}. Pythae's default VAE MLP "
            f"784-512-16 / 16-512-784 (ReLU, Bernoulli decoder) in both libraries, {args.epochs} epochs on the "
            f"60,000 training images dynamically binarized, {len(test)} test images binarized once (seed 0); "
            f"Pythae {_pythae_version()} from PyPI.")
    publish("vae_likelihood", "Fashion-MNIST VAE: test -log p(x) against Pythae", body, quick=args.quick)
    return {"scores": scores, "aekit_library": lib}


def _pythae_version() -> str:
    from importlib.metadata import version
    return version("pythae")


if __name__ == "__main__":
    main()
