"""Fashion-MNIST: layer-wise pretraining against random initialisation, with the same fine-tuning budget.

1. ``deep``: Hinton & Salakhutdinov's 784-1000-500-250-30 autoencoder (logistic units, linear
   code, cross-entropy), initialised from a deep belief net of RBMs (CD-1, H&S's settings) or at
   random, then fine-tuned identically; test per-image squared error of both, of the unrolled DBN
   before fine-tuning, and of PCA-30.
2. ``sdae``: a 3-layer stacked denoising autoencoder (784-1000-1000-1000 logistic units, masking
   noise 0.25; Vincent et al. 2010) with a softmax head fine-tuned on the labels, against the same
   network from random initialisation with the same fine-tuning; test classification error.

Both use the 54,000 training images (6,000 held out for validation and best-epoch selection),
pixels scaled to [0, 1], and the official 10,000 test images.

    python -m benchmarks.pretraining [--part deep|sdae|all] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

import aekit
from aekit.classifier import finetune
from aekit.data import load_splits
from aekit.train import Trainer, TrainConfig

from .common import publish, table


def _fine_tune(model: aekit.Autoencoder, cfg: TrainConfig) -> float:
    """Fine-tune ``model`` on its own training split with the Trainer, as aekit.fit does; seconds."""
    d = model.run_config["data"]
    splits = load_splits(d["data"], val_fraction=d["val_fraction"], seed=d["split_seed"])
    x, val = (torch.from_numpy(model.transform.apply(s.x)) for s in (splits.train, splits.val))
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    Trainer(model, cfg, progress=False).fit(x, val)
    model.eval()
    return time.perf_counter() - t0


def deep(args: argparse.Namespace) -> dict:
    shape = dict(hidden=(1000, 500, 250), latent=30)
    ft = TrainConfig(epochs=args.epochs, batch_size=128, lr=args.lr, schedule="cosine", seed=0)
    rows, results = [], {}
    methods = (("RBM-pretrained (DBN) + fine-tuned", "rbm"), ("random init + fine-tuned", "none"))
    for name, method in methods:
        t0 = time.perf_counter()
        model = aekit.fit("deep", "fashion-mnist", pretrain=method, pretrain_epochs=args.pretrain_epochs, epochs=0,
                          seed=0, progress=False, **shape)
        pre_seconds = time.perf_counter() - t0
        if method == "rbm":
            before = aekit.evaluate(model, pca=False)["autoencoder"]
            rows.append(["unrolled DBN, before fine-tuning", before["per_example_squared_error"], before["mse"],
                         f"{pre_seconds:.0f} s", "-"])
        seconds = _fine_tune(model, ft)
        # PCA-30 only with the last method, whose result the PCA row reads (same split and scaling for both)
        res = aekit.evaluate(model, pca=method == methods[-1][1])
        ae = res["autoencoder"]
        rows.append([name, ae["per_example_squared_error"], ae["mse"],
                     f"{pre_seconds:.0f} s" if method == "rbm" else "-", f"{seconds:.0f} s"])
        results[method] = ae["per_example_squared_error"]
    pca = res["pca"]
    rows.append(["PCA, 30 components", pca["per_example_squared_error"], pca["mse"], "-", "-"])
    results["pca"] = pca["per_example_squared_error"]
    better = results["rbm"] < results["none"]
    body = (table(["784-1000-500-250-30 autoencoder", "test per-image squared error", "MSE per pixel",
                   "pretraining", "fine-tuning"], rows)
            + f"\n\nPretrained / random-init error ratio: **{results['rbm'] / results['none']:.3f}** "
            f"(pretraining {'helps' if better else 'does not help'} at this budget); pretrained / PCA-30: "
            f"{results['rbm'] / results['pca']:.3f}. Pretraining: one RBM per layer, {args.pretrain_epochs} epochs "
            f"each, CD-1, batches of 100, learning rate 0.1 (0.001 for the linear 30-unit code layer), momentum "
            f"0.5 -> 0.9, weight decay 2e-4, each RBM on the hidden probabilities of the one below, then unrolled "
            f"(decoder = transposed weights, untied). Fine-tuning budget, identical for both: Bernoulli "
            f"cross-entropy, Adam lr {args.lr} with a cosine schedule, batch 128, {args.epochs} epochs, the "
            f"best validation epoch kept, seed 0 (H&S fine-tuned with conjugate gradients for 200 epochs). "
            f"Errors on pixels in [0, 1], official test split (n={res['n']}).")
    publish("pretraining_deep", "Fashion-MNIST deep autoencoder: RBM pretraining vs random initialisation", body,
            quick=args.quick)
    return results


def sdae(args: argparse.Namespace) -> dict:
    shape = dict(hidden=(1000, 1000), latent=1000, code_activation="sigmoid")
    noise = dict(noise="mask", nu=0.25, dae_lr=1e-3)
    rates = [float(r) for r in args.finetune_lr.split(",")]
    rows, results, pre_seconds = [], {}, {}
    models = {}
    for method in ("dae", "none"):
        t0 = time.perf_counter()
        models[method] = aekit.fit("deep", "fashion-mnist", pretrain=method, pretrain_epochs=args.pretrain_epochs,
                                   epochs=0, seed=0, progress=False, **shape, **noise)
        pre_seconds[method] = time.perf_counter() - t0
    for lr in rates:
        for name, method in (("stacked denoising autoencoder + fine-tuned", "dae"),
                             ("random init + fine-tuned", "none")):
            t0 = time.perf_counter()
            clf = finetune(copy.deepcopy(models[method]), progress=False, epochs=args.epochs, batch_size=128, lr=lr,
                           seed=0)
            seconds = time.perf_counter() - t0
            s = clf.scores
            rows.append([name, lr, 1 - s["test_accuracy"], s["test_accuracy"], 1 - s["val_accuracy"],
                         f"{pre_seconds[method]:.0f} s" if method == "dae" else "-", f"{seconds:.0f} s"])
            results[(method, lr)] = 1 - s["test_accuracy"]
    verdicts = "; ".join(f"Adam lr {lr}: **{results[('dae', lr)]:.4f} vs {results[('none', lr)]:.4f}** "
                         f"({'pretraining helps' if results[('dae', lr)] < results[('none', lr)] else 'no gain'})"
                         for lr in rates)
    body = (table(["784-1000-1000-1000 + softmax", "fine-tuning lr", "test error", "test accuracy",
                   "validation error", "pretraining", "fine-tuning"], rows)
            + f"\n\nSDAE vs random-init test classification error (n={s['n_test']}): {verdicts}. Pretraining: three "
            f"one-hidden-layer denoising autoencoders with tied weights and logistic units, masking noise 0.25 (a "
            f"quarter of each input set to 0), cross-entropy, each on the clean codes of the layer below, Adam lr "
            f"1e-3, batches of 100, {args.pretrain_epochs} epochs per layer. Supervised fine-tuning, identical for "
            f"both: softmax head on the top layer, the whole network trained on the cross-entropy of the labels "
            f"with Adam, batch 128, {args.epochs} epochs, the best validation epoch kept, seed 0.")
    publish("pretraining_sdae", "Fashion-MNIST stacked denoising autoencoder: supervised fine-tuning vs random "
            "initialisation", body, quick=args.quick)
    return {f"{m}@{lr}": v for (m, lr), v in results.items()}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("deep", "sdae", "all"), default="all")
    p.add_argument("--pretrain-epochs", type=int, default=10)
    p.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the autoencoder fine-tuning")
    p.add_argument("--finetune-lr", default="1e-4,1e-3",
                   help="Adam learning rate(s) of the supervised fine-tuning, comma-separated")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="1 epoch of everything, one fine-tuning rate (1e-3) "
                                                        "(reduced run, RESULTS-quick.md)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.pretrain_epochs, args.epochs, args.finetune_lr = 1, 1, "1e-3"
    out = {}
    if args.part in ("deep", "all"):
        out["deep"] = deep(args)
    if args.part in ("sdae", "all"):
        out["sdae"] = sdae(args)
    return out


if __name__ == "__main__":
    main()
