"""Fashion-MNIST retrieval with codes: label precision, binary codes (semantic hashing) and indexes at scale.

Three tables, each measured in one run of this script (``--tables``):

- ``retrieval``: label precision@10 and mAP@100 of the 60,000 official training images as retrieved
  for the first 1,000 test images (the share of a query's 10 nearest training images with its label,
  and the mean average precision over its 100 nearest), for raw pixels, PCA and aekit's codes at 16,
  32 and 64 dimensions, with recall@10 of the exact pixel-space neighbours as a diagnostic and the
  training time. ``--ablation`` adds, at 32 dimensions, the other recipes tried (an MLP, the
  denoising and the contractive autoencoder, the VAE's posterior mean).
- ``hashing``: the same measures for binary codes searched by Hamming distance (FAISS
  IndexBinaryFlat over packed bits): sign of PCA, PCA with ITQ (Gong & Lazebnik 2011; FAISS's
  ITQTransform and aekit.search.itq_rotation), aekit's semantic-hashing codes and aekit's float codes
  thresholded or ITQ-rotated, at 32, 64 and 128 bits.
- ``scale``: 1,000,000 codes (augmented Fashion-MNIST training images: shifted by up to 2 pixels,
  contrast-scaled and noised, through the 32-d autoencoder and the 64-bit hashing model): build time,
  memory, query time per 1,000 queries and recall@10 against the exact index for every index kind of
  ``aekit index``, float and binary.

Everything without labels is fitted on the 54,000 training images left after aekit's validation split
(the autoencoders, PCA, ITQ); the codes of all 60,000 are indexed. One thread for torch, FAISS and
BLAS by default.

    python -m benchmarks.search [--tables retrieval,hashing,scale] [--epochs 5] [--ablation] [--quick]
    python -m benchmarks.search --runs DIR,DIR,...   # measure trained fashion-mnist runs instead
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

import aekit
from aekit import search as S
from aekit.data import Dataset, split_data
from aekit.data.builtin import load_builtin

from .common import load_note, publish, table

#: aekit's retrieval recipe (the documented one): a convolutional autoencoder, 2 stride-2 layers of
#: 32 and 64 channels, logistic outputs and cross-entropy, Adam
RECIPE = {
    "architecture": "conv",
    "hidden": (32, 64),
    "loss": "bce",
    "lr": 2e-3,
    "schedule": "cosine",
    "batch_size": 128,
}
#: the semantic-hashing recipe: the same network, its logistic code units made binary by a
#: straight-through threshold (noise before them, Salakhutdinov & Hinton's way, gave worse bits)
HASHING = dict(RECIPE, method="straight_through")
#: the other recipes of --ablation, at 32 dimensions (name: variant, options)
ABLATION = {
    "MLP 784-512-128": ("ae", {"hidden": (512, 128), "loss": "bce", "lr": 1e-3, "batch_size": 128}),
    "conv, denoising (mask 0.3)": ("denoising", dict(RECIPE, noise="mask", nu=0.3)),
    "conv, VAE (posterior mean)": ("vae", RECIPE),
}
DIMS = (16, 32, 64)
BITS = (32, 64, 128)
K, MAP_K = 10, 100


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        train, test = load_builtin("fashion-mnist")
        self.base, self.yb = train.x.reshape(len(train.x), -1).astype(np.float32), train.y
        q = args.queries
        self.queries, self.yq = test.x[:q].reshape(q, -1).astype(np.float32), test.y[:q]
        self.fit_rows = fit_rows(train)
        self.models: dict[tuple[str, int], tuple[Any, float]] = {}
        self.pixel_nn, _ = S.exact_neighbours(self.base / 255.0, self.queries / 255.0, K)
        self.load = os.getloadavg()[0]
        self.runs = [trained_run(d) for d in args.runs.split(",")] if args.runs else []

    def given(self, hashing: bool, latent: int | None = None) -> list[tuple[str, Any, float]]:
        """The ``--runs`` runs that are (``hashing``) or are not semantic-hashing runs, at ``latent``."""
        return [
            (label, m, t)
            for label, m, t in self.runs
            if (m.config.variant == "hashing") == hashing and (latent is None or m.config.latent == latent)
        ]

    def model(self, variant: str, latent: int, **kwargs: Any) -> tuple[Any, float]:
        key = (variant + repr(sorted(kwargs.items())), latent)
        if key not in self.models:
            self.models[key] = _timed(
                aekit.fit,
                variant,
                "fashion-mnist",
                latent=latent,
                epochs=self.args.epochs,
                seed=0,
                progress=False,
                figures=False,
                **kwargs,
            )
        return self.models[key]

    def measure(self, codes_b: np.ndarray, codes_q: np.ndarray, **index: Any) -> tuple[float, float, float]:
        """(label precision@10, mAP@100, recall@10 of the pixel neighbours) of an exact index."""
        ix = S.index_codes(codes_b, **index)
        ids, _ = S.search_codes(ix, codes_q, MAP_K)
        return (
            S.precision_at_k(ids, self.yb, self.yq, K),
            S.mean_average_precision(ids, self.yb, self.yq, MAP_K),
            S.recall_at_k(ids[:, :K], self.pixel_nn),
        )


def retrieval(b: Bench) -> None:
    rows, best = [], {}
    search_ways = [("l2", False), ("cosine", False), ("cosine", True)]

    def add(label: str, dim: int, cb: np.ndarray, cq: np.ndarray, fit_s: float | None, ways=search_ways) -> None:
        for metric, whiten in ways:
            p, m, r = b.measure(cb, cq, metric=metric, whiten=whiten)
            rows.append(
                [
                    label,
                    dim,
                    metric + (", whitened" if whiten else ""),
                    f"{p:.4f}",
                    f"{m:.4f}",
                    f"{r:.3f}",
                    "-" if fit_s is None else f"{fit_s:.0f} s",
                ]
            )
            if label.startswith("aekit"):
                best[(label, metric, whiten)] = p

    add("raw pixels", 784, b.base / 255.0, b.queries / 255.0, None, [("l2", False), ("cosine", False)])
    for dim in DIMS:
        pca, pca_s = _timed(PCA(dim, random_state=0).fit, b.fit_rows)
        add(f"PCA-{dim}", dim, pca.transform(b.base / 255.0), pca.transform(b.queries / 255.0), pca_s)
    for label, model, fit_s in b.given(False):
        add(label, model.config.latent, model.encode_array(b.base), model.encode_array(b.queries), fit_s)
    for dim in DIMS if not b.runs else ():
        model, fit_s = b.model("ae", dim, **RECIPE)
        add(
            f"aekit conv ae, {b.args.epochs} epochs",
            dim,
            model.encode_array(b.base),
            model.encode_array(b.queries),
            fit_s,
        )
    if b.args.ablation and not b.runs:
        for label, (variant, kwargs) in ABLATION.items():
            model, fit_s = b.model(variant, 32, **kwargs)
            add(
                f"aekit {label}, {b.args.epochs} epochs",
                32,
                model.encode_array(b.base),
                model.encode_array(b.queries),
                fit_s,
            )
    top = max(best, key=best.get)
    body = (
        table(["codes", "dim", "metric", f"label P@{K}", f"mAP@{MAP_K}", f"recall@{K} of pixel NN", "training"], rows)
        + f"\n\nBest aekit codes: {top[0]}, {top[1]}{', whitened' if top[2] else ''}, label precision@{K} "
        f"{best[top]:.4f}. {_setup(b)} Whitening is fitted on the indexed codes (aekit.search.whitening) and "
        f"applied to the queries alike; cosine compares L2-normalised codes (IndexFlatIP). recall@{K} of pixel "
        f"NN: the share of the exact {K} nearest training images in pixel space ([0, 1], L2) that the code "
        f"search returns (a diagnostic: PCA preserves pixel distances by construction). {load_note(b.load)}"
    )
    publish(
        "search",
        f"Fashion-MNIST retrieval: label precision@{K} and mAP@{MAP_K} of codes",
        body,
        save=not b.args.no_record,
        quick=b.args.quick,
    )


def hashing(b: Bench) -> None:
    rows = []
    for bits in BITS:
        pca = PCA(bits, random_state=0).fit(b.fit_rows)
        pb, pq = pca.transform(b.base / 255.0), pca.transform(b.queries / 255.0)
        rows.append(["sign of PCA", bits, *b.measure(pb, pq, binary="threshold")[:2], "-"])
        fit = pca.transform(b.fit_rows)
        mean = fit.mean(0)
        r, itq_s = _timed(S.itq_rotation, fit - mean)
        rows.append(
            [
                "PCA-ITQ (aekit.search.itq_rotation)",
                bits,
                *b.measure((pb - mean) @ r, (pq - mean) @ r, binary="threshold")[:2],
                f"{itq_s:.1f} s",
            ]
        )
        rows.append(["PCA, whitened + ITQ (aekit index --binary itq)", bits, *b.measure(pb, pq, binary="itq")[:2], "-"])
        itq = __import__("faiss").ITQTransform(784, bits, True)
        _, faiss_s = _timed(itq.train, np.ascontiguousarray(b.fit_rows, dtype=np.float32))
        ib, iq = (itq.apply(np.ascontiguousarray(x / 255.0, dtype=np.float32)) for x in (b.base, b.queries))
        rows.append(
            ["PCA-ITQ (faiss.ITQTransform)", bits, *b.measure(ib, iq, binary="threshold")[:2], f"{faiss_s:.1f} s"]
        )
        for label, model, fit_s in b.given(True, bits):
            rows.append(
                [
                    label,
                    bits,
                    *b.measure(model.encode_array(b.base), model.encode_array(b.queries), binary="threshold")[:2],
                    f"{fit_s:.0f} s",
                ]
            )
        for label, model, fit_s in b.given(False, bits):
            rows.append(
                [
                    f"{label}, whitened + ITQ (aekit index --binary itq)",
                    bits,
                    *b.measure(model.encode_array(b.base), model.encode_array(b.queries), binary="itq")[:2],
                    f"{fit_s:.0f} s",
                ]
            )
        if b.runs:
            continue
        model, fit_s = b.model("hashing", bits, **HASHING)
        hb, hq = model.encode_array(b.base), model.encode_array(b.queries)
        rows.append(
            [
                f"aekit hashing (straight-through), {b.args.epochs} epochs",
                bits,
                *b.measure(hb, hq, binary="threshold")[:2],
                f"{fit_s:.0f} s",
            ]
        )
        if b.args.ablation and bits in DIMS:
            model, fit_s = b.model("ae", bits, **RECIPE)
            cb, cq = model.encode_array(b.base), model.encode_array(b.queries)
            for how in S.BINARIZATIONS:
                rows.append([f"aekit conv ae codes, {how}", bits, *b.measure(cb, cq, binary=how)[:2], f"{fit_s:.0f} s"])
    body = (
        table(
            ["binary codes", "bits", f"label P@{K}", f"mAP@{MAP_K}", "training"],
            [[r[0], r[1], f"{r[2]:.4f}", f"{r[3]:.4f}", r[4]] for r in rows],
        )
        + f"\n\nHamming distance over packed bits, exact (FAISS IndexBinaryFlat; ties in the order FAISS returns "
        f"them). Sign of PCA and aekit's codes, threshold: each dimension thresholded at its mean over the "
        f"indexed codes (the hashing model's 0/1 codes keep their bits). PCA-ITQ: PCA to the bits, then the "
        f"ITQ rotation (50 iterations) fitted on the 54,000 training images (faiss.ITQTransform: FAISS's own "
        f"PCA, normalisation and ITQ); every projection is thresholded at its mean over the indexed images. "
        f"aekit hashing: the conv network of the retrieval table with logistic code units, binary in the forward "
        f"pass and the logistic's gradient backward (straight-through); its code is [logit > 0]. "
        f"{_setup(b)} {load_note(b.load)}"
    )
    publish(
        "search-hashing",
        f"Fashion-MNIST binary codes: label precision@{K} and mAP@{MAP_K} by Hamming distance",
        body,
        save=not b.args.no_record,
        quick=b.args.quick,
    )


def synthetic_rows(images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0, chunk: int = 50_000):
    """``n`` augmented copies of ``images`` (N, 784) in 0..255, in chunks ``(rows, labels)``: each a random
    image shifted by up to 2 pixels each way (zero fill), its contrast scaled by U(0.8, 1.2), plus
    N(0, 8^2) noise, clipped to 0..255."""
    rng = np.random.default_rng(seed)
    imgs = images.reshape(-1, 28, 28).astype(np.float32)
    padded = np.pad(imgs, ((0, 0), (2, 2), (2, 2)))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        pick, dx, dy = rng.integers(0, len(imgs), m), rng.integers(0, 5, m), rng.integers(0, 5, m)
        out = np.empty((m, 28, 28), np.float32)
        for s_x in range(5):
            for s_y in range(5):
                sel = np.flatnonzero((dx == s_x) & (dy == s_y))
                out[sel] = padded[pick[sel], s_y : s_y + 28, s_x : s_x + 28]
        out *= rng.uniform(0.8, 1.2, (m, 1, 1)).astype(np.float32)
        out += rng.normal(0, 8, out.shape).astype(np.float32)
        yield np.clip(out, 0, 255).reshape(m, 784), labels[pick]


def scale(b: Bench) -> None:
    n = b.args.scale_rows
    rows = []
    if b.runs:
        fmodel, hmodel = b.given(False, 32)[0][1], b.given(True, 64)[0][1]
    else:
        (fmodel, _), (hmodel, _) = b.model("ae", 32, **RECIPE), b.model("hashing", 64, **HASHING)

    def encode_all(model):
        return np.concatenate([model.encode_array(x) for x, _ in synthetic_rows(b.base, b.yb, n)])

    labels = np.concatenate([y for _, y in synthetic_rows(b.base, b.yb, n)])

    t0 = time.perf_counter()
    fcodes, hcodes = encode_all(fmodel), encode_all(hmodel)
    enc_s = time.perf_counter() - t0
    fq, hq = fmodel.encode_array(b.queries), hmodel.encode_array(b.queries)
    kinds = [
        ("float 32-d, cosine, whitened", fcodes, fq, {"metric": "cosine", "whiten": True}, S.FLOAT_KINDS),
        ("binary 64 bits, Hamming", hcodes, hq, {"binary": "threshold"}, S.BINARY_KINDS),
    ]
    for label, codes, queries, how, kind_list in kinds:
        exact_ids = exact_d = None
        for kind in kind_list:
            index, build_s = _timed(S.index_codes, codes, kind=kind, **how)
            (ids, dist), query_s = _timed(S.search_codes, index, queries, K)
            if kind == "flat":
                exact_ids, exact_d = ids, dist
            # Hamming distances tie: a hit is a row within the exact 10th distance
            recall = float((dist <= exact_d[:, -1:]).mean()) if index.binary else S.recall_at_k(ids, exact_ids)
            params = ", ".join(f"{k}={v}" for k, v in index.params.items()) or "exact"
            rows.append(
                [
                    label,
                    f"{kind} ({params})",
                    index.meta["faiss_index"],
                    f"{build_s:.1f} s",
                    f"{S.index_bytes(index) / 2**20:.0f} MiB",
                    f"{query_s * 1000 / len(queries):.3f} s",
                    f"{recall:.4f}",
                    f"{S.precision_at_k(ids, labels, b.yq, K):.4f}",
                ]
            )
            del index
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    body = (
        table(
            ["codes", "index", "FAISS", "build", "memory", "query per 1,000", f"recall@{K} vs exact", f"label P@{K}"],
            rows,
        )
        + f"\n\n{n:,} codes of augmented Fashion-MNIST training images (each a random training image shifted by "
        f"up to 2 pixels, contrast x U(0.8, 1.2), N(0, 8^2) noise; encoding both sets took {enc_s:.0f} s) "
        f"through the 32-d conv autoencoder and the 64-bit hashing model of the tables above; {len(b.queries)} "
        f"test images as queries. Build: training (IVF, PQ) and adding, codes given. Memory: the serialized "
        f"FAISS index (codes, graph, lists, quantizers). Query: k={K}, codes given, {b.args.threads} "
        f"thread(s). Recall@{K}: the share of the exact index's {K} neighbours found (binary: of the results "
        f"within the exact {K}th Hamming distance, as distances tie). Label precision: against the label of "
        f"the image each synthetic row was drawn from. Peak memory of the process: {peak:.1f} GiB. "
        f"{load_note(b.load)}"
    )
    publish(
        "search-scale",
        f"Indexes at scale: {n:,} codes, build, memory, query time and recall@{K} of each index kind",
        body,
        save=not b.args.no_record,
        quick=b.args.quick,
    )


def _setup(b: Bench) -> str:
    return (
        f"{len(b.base):,} training images indexed, {len(b.queries):,} test images as queries; models fitted on "
        f"the 54,000 training images left after aekit's validation split, "
        + (
            "the runs given (--runs; training times from their histories, some trained while other jobs shared "
            "the cores), "
            if b.runs
            else f"{b.args.epochs} epochs, "
        )
        + f"seed 0, {b.args.threads} thread(s)."
    )


TABLES = {"retrieval": retrieval, "hashing": hashing, "scale": scale}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", default="retrieval,hashing,scale", help="comma-separated: " + ", ".join(TABLES))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--scale-rows", type=int, default=1_000_000, help="codes of the scale table (default: 1,000,000)")
    p.add_argument(
        "--runs",
        default=None,
        help="comma-separated fashion-mnist run directories to measure instead "
        "of training the recipes (their training time: the epochs' times in history.json)",
    )
    p.add_argument("--ablation", action="store_true", help="add the other recipes to the retrieval table")
    p.add_argument("--threads", type=int, default=1, help="threads of torch, FAISS and numpy's BLAS (default: 1)")
    p.add_argument("--no-record", action="store_true", help="print the tables only")
    p.add_argument("--quick", action="store_true", help="1 epoch, 200 queries, 50,000 codes (RESULTS-quick.md)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.queries, args.scale_rows = 1, 200, 50_000
    tables = args.tables.split(",")
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        p.error(f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(TABLES)}")
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads), S.faiss_threads(args.threads):
        bench = Bench(args)
        for name in tables:
            TABLES[name](bench)


def trained_run(path: str) -> tuple[str, Any, float]:
    """``(label, model, training seconds)`` of a run directory trained on fashion-mnist (``--runs``): the
    label says what it is, the seconds are the sum of its epochs' times in history.json."""
    model = aekit.load(path)
    cfg = json.loads((Path(path) / "config.json").read_text())
    if cfg["data"]["data"] != "fashion-mnist":
        raise SystemExit(f"{path}: not a fashion-mnist run")
    m, t = cfg["model"], cfg["train"]
    net = (
        f"conv {'-'.join(map(str, m['hidden']))}"
        if m["architecture"] == "conv"
        else (f"MLP 784-{'-'.join(map(str, m['hidden']))}")
    )
    opts = {
        "denoising": lambda o: f", {o['noise']} {o['nu'] if o['noise'] != 'gaussian' else o['sigma']}",
        "hashing": lambda o: (
            f", {o['method'].replace('_', '-')}" + (f" sigma {o['sigma']}" if o["method"] == "noise" else "")
        ),
    }
    extra = opts.get(m["variant"], lambda o: "")(m["options"])
    label = f"aekit {m['variant']}{extra}, {net}, {t['epochs']} epochs, lr {t['lr']:g}" + (
        f" {t['schedule']}" if t["schedule"] != "constant" else ""
    )
    seconds = sum(r.get("seconds", 0.0) for r in json.loads((Path(path) / "history.json").read_text()))
    return label, model, seconds


def fit_rows(train: Dataset) -> np.ndarray:
    """The 54,000 training images the autoencoders are trained on, in [0, 1]: the training split that
    ``aekit.load_splits("fashion-mnist")`` takes from the official training set ``train`` (the same
    ``split_data`` call), without loading the images again."""
    return split_data(train, val_fraction=0.1, test_fraction=0.0, seed=0).train.x.reshape(-1, 784) / 255.0


if __name__ == "__main__":
    main()
