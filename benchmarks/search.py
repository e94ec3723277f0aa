"""Fashion-MNIST nearest-neighbour search in code space: recall@10 against exact pixel-space neighbours.

An autoencoder and a VAE with 32-d codes are trained briefly without labels (54,000 training
images, pixels in [0, 1]) and PCA-32 is fitted on the same images. Each indexes the codes of the
60,000 official training images in an exact FAISS index (aekit.search: IndexFlatL2, or
IndexFlatIP over normalised codes for cosine) and is queried with the first --queries test
images. The ground truth is the exact 10 nearest training images in pixel space (FAISS
IndexFlatL2 on the 784 pixels); recall@10 is the fraction of them that the code-space search
returns. Times: index build (encode + add), query (encode + search), one thread by default.

    python -m benchmarks.search [--epochs 5] [--queries 1000] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

import aekit
from aekit import search as S
from aekit.data import Dataset, split_data
from aekit.data.builtin import load_builtin

from .common import publish, table

MODELS = {
    "ae 784-512-128-32": ("ae", dict(loss="bce")),
    "vae 784-512-128-32 (posterior mean)": ("vae", dict(loss="bce")),
}


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--latent", type=int, default=32)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--metrics", default="l2,cosine", help="comma-separated: l2, cosine")
    p.add_argument("--threads", type=int, default=1, help="threads of torch, FAISS and numpy's BLAS (default: 1)")
    p.add_argument("--quick", action="store_true", help="1 epoch, 200 queries (recorded in RESULTS-quick.md)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.queries = 1, 200
    torch.set_num_threads(args.threads)
    metrics = args.metrics.split(",")
    with threadpool_limits(args.threads), S.faiss_threads(args.threads):
        train, test = load_builtin("fashion-mnist")
        base, queries = train.x, test.x[:args.queries]                # raw pixels 0..255: each coder scales them
        (exact, _), exact_s = _timed(S.exact_neighbours, base / 255.0, queries / 255.0, args.k)
        rows = [["pixels (784, exact ground truth)", 784, "l2", 1.0, "-", f"{exact_s:.2f} s", "-"]]
        coders = {}
        for label, (variant, kwargs) in MODELS.items():
            model, fit_s = _timed(lambda: aekit.fit(variant, "fashion-mnist", hidden=(512, 128), latent=args.latent,
                                                    epochs=args.epochs, lr=1e-3, batch_size=128, seed=0,
                                                    progress=False, figures=False, **kwargs))
            coders[label] = (model.encode_array, fit_s)
        pca, pca_s = _timed(lambda: PCA(args.latent, random_state=0).fit(fit_rows(train)))
        coders[f"PCA-{args.latent}"] = (lambda x: pca.transform(x / 255.0).astype(np.float32), pca_s)
        results = {}
        for label, (encode, fit_s) in coders.items():
            for metric in metrics:
                index, build_s = _timed(lambda: S.index_codes(encode(base), metric))
                (found, _), query_s = _timed(lambda: S.search_codes(index, encode(queries), args.k))
                recall = S.recall_at_k(found, exact)
                results[f"{label} {metric}"] = recall
                rows.append([label, args.latent, metric, recall, f"{build_s:.2f} s", f"{query_s:.2f} s",
                             f"{fit_s:.0f} s"])
    best = max(results, key=results.get)
    body = (table(["codes", "dim", "metric", f"recall@{args.k}", f"index build ({len(base)} rows)",
                   f"query ({len(queries)} rows)", "training"], rows)
            + f"\n\nBest: {best} at recall@{args.k} {results[best]:.4f}. Ground truth: the exact {args.k} nearest "
              f"training images of each of the first {len(queries)} test images in pixel space (pixels in [0, 1], "
              f"FAISS IndexFlatL2, brute force). Code-space search: exact FAISS indexes (IndexFlatL2 for l2, "
              f"IndexFlatIP over L2-normalised codes for cosine) over the codes of the {len(base)} training images. "
              f"Autoencoders: 784-512-128-{args.latent} MLPs (ReLU, logistic outputs, cross-entropy), Adam 1e-3, "
              f"batch 128, {args.epochs} epochs, seed 0, on the 54,000 training images left after aekit's "
              f"validation split; PCA fitted on the same 54,000. Build and query times include encoding; "
              f"{args.threads} thread(s) for torch, FAISS and BLAS.")
    publish("search", f"Fashion-MNIST nearest-neighbour search: recall@{args.k} of code-space neighbours "
                      "against exact pixel-space neighbours", body, quick=args.quick)
    return results


def fit_rows(train: Dataset) -> np.ndarray:
    """The 54,000 training images the autoencoders are trained on, in [0, 1]: the training split that
    ``aekit.load_splits("fashion-mnist")`` takes from the official training set ``train`` (the same
    ``split_data`` call), without loading the images again."""
    return split_data(train, val_fraction=0.1, test_fraction=0.0, seed=0).train.x / 255.0


if __name__ == "__main__":
    main()
