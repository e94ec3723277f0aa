"""Fashion-MNIST, Hinton & Salakhutdinov's 784-1000-500-250-30 autoencoder against PCA-30.

Both are fitted on the same 54,000 training images (pixels scaled to [0, 1]; 6,000 held out
for validation) and measured on the official 10,000 test images by the per-image summed
squared error, as in Hinton & Salakhutdinov (2006). Target: the autoencoder's error at most
half of PCA's.

    python -m benchmarks.ae_vs_pca [--epochs 30] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import aekit

from .common import publish, table


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--quick", action="store_true", help="1 epoch (reduced run, RESULTS-quick.md)")
    p.add_argument("--out", default=None, help="keep the run directory here")
    args = p.parse_args(argv)
    epochs = 1 if args.quick else args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or f"{tmp}/run"
        t0 = time.perf_counter()
        aekit.fit("ae", "fashion-mnist", out=out, overwrite=True, hidden=(1000, 500, 250), latent=30,
                  activation="elu", loss="mse", output_activation="sigmoid", epochs=epochs,
                  batch_size=args.batch_size, lr=args.lr,
                  schedule="cosine", scale="unit", seed=0, progress=False)
        seconds = time.perf_counter() - t0
        res = aekit.evaluate(out)
    ae, pca = res["autoencoder"], res["pca"]
    ratio = ae["per_example_squared_error"] / pca["per_example_squared_error"]
    rows = [["autoencoder 784-1000-500-250-30", ae["per_example_squared_error"], ae["mse"], f"{seconds:.0f} s"],
            ["PCA, 30 components", pca["per_example_squared_error"], pca["mse"], "-"]]
    body = (table(["model", "test per-image squared error", "MSE per pixel", "training time"], rows)
            + f"\n\nAutoencoder / PCA error ratio: **{ratio:.3f}** (target <= 0.5: "
            + ("met" if ratio <= 0.5 else "MISSED") + f"). Settings: squared-error loss, ELU hidden units, "
            f"linear 30-unit code, logistic output units, Adam lr {args.lr} with a cosine schedule, "
            f"batch {args.batch_size}, {epochs} epochs, seed 0, no pretraining; errors on pixels in [0, 1], "
            f"official test split (n={res['n']}).")
    publish("ae_vs_pca", "Fashion-MNIST: deep autoencoder vs PCA-30 (test per-image squared error)",
            body, quick=args.quick)
    return {"ratio": ratio, **res}


if __name__ == "__main__":
    main()
