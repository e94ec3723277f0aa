"""Fashion-MNIST linear probe: logistic regression on the codes of each variant.

Every variant is trained without labels on the 54,000 training images (pixels in [0, 1]);
a logistic regression is then fitted on the codes of the first --n-train training images
and scored on the 10,000 test images. Raw pixels and PCA codes go through the same probe.
Target: the best variant's codes beat raw pixels.

    python -m benchmarks.linear_probe [--epochs 10] [--n-train 20000] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import aekit
from aekit.data import load_splits

from .common import publish, table

#: One-hidden-layer (shallow) codes of 1000 units for the non-linear variants, as in the
#: papers (Vincent et al. 2008: one dA layer; Makhzani & Frey 2014: 1000 units, tied weights).
VARIANTS = {
    "ae (1000 sigmoid units)": ("ae", dict(hidden=(), latent=1000, code_activation="sigmoid", loss="bce")),
    "linear (64 units)": ("linear", dict(latent=64)),
    "denoising, masking 0.25 (1000 sigmoid units)": (
        "denoising", dict(hidden=(), latent=1000, code_activation="sigmoid", loss="bce", noise="mask", nu=0.25)),
    "sparse, KL rho 0.05 (1000 units)": ("sparse", dict(hidden=(), latent=1000, loss="bce", rho=0.05, beta=3.0)),
    "k-sparse, k 50, tied (1000 units)": (
        "ksparse", dict(hidden=(), latent=1000, loss="bce", k=50, k_start=200, tied=True)),
    "contractive, lambda 0.1 (1000 sigmoid units)": (
        "contractive", dict(hidden=(), latent=1000, code_activation="sigmoid", loss="bce", lam=0.1)),
}


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0))
    clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--n-train", type=int, default=20000)
    p.add_argument("--variants", default=None, help="comma-separated subset of the variant names")
    p.add_argument("--quick", action="store_true", help="1 epoch, 2000 probe rows, three variants (reduced run, RESULTS-quick.md)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.n_train = 1, 2000
        args.variants = args.variants or "ae,denoising,contractive"
    splits = load_splits("fashion-mnist")
    tr_x, tr_y = splits.train.x[:args.n_train], splits.train.y[:args.n_train]
    te_x, te_y = splits.test.x, splits.test.y
    rows = []
    t0 = time.perf_counter()
    raw_acc = probe(tr_x / 255, tr_y, te_x / 255, te_y)
    rows.append(["raw pixels (784)", raw_acc, "-", f"{time.perf_counter() - t0:.0f} s"])
    pca = PCA(64, random_state=0).fit(splits.train.x / 255)
    t0 = time.perf_counter()
    rows.append(["PCA (64 components)", probe(pca.transform(tr_x / 255), tr_y, pca.transform(te_x / 255), te_y), "-",
                 f"{time.perf_counter() - t0:.0f} s"])
    chosen = args.variants.split(",") if args.variants else None
    for label, (variant, kwargs) in VARIANTS.items():
        if chosen and variant not in chosen:
            continue
        t0 = time.perf_counter()
        model = aekit.fit(variant, "fashion-mnist", epochs=args.epochs, lr=1e-3, batch_size=128, seed=0,
                          progress=False, **kwargs)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        acc = probe(model.encode_array(tr_x), tr_y, model.encode_array(te_x), te_y)
        rows.append([label, acc, f"{train_s:.0f} s", f"{time.perf_counter() - t0:.0f} s"])
    raw = rows[0][1]
    best = max(rows[2:], key=lambda r: r[1]) if len(rows) > 2 else rows[1]
    body = (table(["codes", "test accuracy", "autoencoder training", "probe"], rows)
            + f"\n\nBest variant: {best[0]} at {best[1]:.4f} vs raw pixels {raw:.4f} "
              f"({'target met' if best[1] > raw else 'target MISSED'}: codes must beat raw pixels). "
              f"Logistic regression (scikit-learn, standardized inputs, C=1, at most 1000 lbfgs iterations) "
              f"fitted on the codes of "
              f"{args.n_train} training images, scored on the 10,000 test images. Autoencoders trained "
              f"{args.epochs} epochs, Adam 1e-3, batch 128, seed 0, on the 54,000 training images (no labels).")
    publish("linear_probe", "Fashion-MNIST linear probe: logistic regression on the codes of each variant",
            body, quick=args.quick)
    return {r[0]: r[1] for r in rows}


if __name__ == "__main__":
    main()
