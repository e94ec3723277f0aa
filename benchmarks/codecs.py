"""Fashion-MNIST codecs: PSNR against bytes per image for PNG, JPEG, WebP and aekit's range-coded codes.

Every coder compresses each of the first ``--images`` official test images (28x28, 8 bits) into a
file of its own, and the table counts every byte a decoder needs for that image:

- PNG (lossless, ``optimize``), JPEG and WebP at several qualities: Pillow's encoders, the whole
  file (headers included: a decoder needs them);
- aekit: the run's code of the image, quantized uniformly per dimension to ``b`` bits over the
  min..max of its training codes (:class:`aekit.compress.Quantizer`; a ``compressive`` run's integer
  codes exactly, :meth:`~aekit.compress.Quantizer.integers`), range-coded under the
  per-dimension model of the quantized training codes (:class:`aekit.compress.EntropyModel`) into
  the image's own stream of whole 32-bit words (what ``aekit compress`` stores, one image at a time);
  the decoder holds the model and the entropy model, whose sizes are given apart (shared by every
  image, like a codec's program).

Every decoded image is rounded to 8 bits before it is measured; PSNR is the mean over the images of
``10 log10(255^2 / MSE)``. Target: at WebP's qualities 0, 5 and 10, aekit reaches WebP's PSNR in at
most half WebP's bytes.

    python -m benchmarks.codecs [--runs DIR[,DIR...]] [--images 300] [--bits 3,4,5,6,8] [--quick]

Without ``--runs`` it trains the :data:`RECIPES` itself first (about 35 minutes each on one core;
``--quick``: one epoch each, recorded in RESULTS-quick.md); ``--runs`` measures fashion-mnist runs
trained already (``aekit train ... --data fashion-mnist``), the training commands of the recorded
ones given in RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import aekit
from aekit import compress as C
from aekit.data import training_rows
from aekit.data.builtin import load_builtin
from aekit.metrics import psnr

from .common import QUICK_RESULTS, RESULTS, publish, table

#: Pillow's lossy encoders and the qualities measured
LOSSY = (("WebP", "WEBP", (0, 5, 10, 25, 50)), ("JPEG", "JPEG", (1, 10, 25, 50, 75)))
#: the PSNR's peak: 8-bit pixels
PEAK = 255.0
#: WebP's qualities of the target and its share of their bytes
TARGET_QUALITIES, TARGET_SHARE = (0, 5, 10), 0.5


#: what is trained without --runs: name -> aekit.fit arguments (fashion-mnist, conv 32-64, --epochs 60)
RECIPES = {
    **{
        f"compressive-{weight:g}": {
            "variant": "compressive",
            "latent": 256,
            "spatial": False,
            "rate_weight": weight,
            "loss": "mse",
        }
        for weight in (0.002, 0.003)  # WebP quality 10's and quality 5's points
    },
    "ae": {"variant": "ae", "latent": 32, "loss": "bce"},
}


def train_recipes(out: Path, epochs: int) -> list[str]:
    """Train each of :data:`RECIPES` into ``out/NAME`` (``epochs`` each); their run directories."""
    runs = []
    for name, recipe in RECIPES.items():
        kw = dict(recipe)
        aekit.fit(
            kw.pop("variant"),
            "fashion-mnist",
            architecture="conv",
            hidden=(32, 64),
            epochs=epochs,
            lr=2e-3,
            schedule="cosine",
            patience=None,
            out=out / name,
            progress=False,
            figures=False,
            **kw,
        )
        runs.append(str(out / name))
    return runs


def pillow_point(images: np.ndarray, fmt: str, **save: object) -> tuple[float, float]:
    """``(bytes per image, PSNR)`` of Pillow's ``fmt`` encoder, one file per 8-bit image."""
    from PIL import Image

    sizes, decoded = [], []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, fmt, **save)
        sizes.append(buf.tell())
        decoded.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L")))
    return float(np.mean(sizes)), psnr(images, np.stack(decoded), PEAK)


def aekit_points(run: str, images: np.ndarray, bits: list[int]) -> tuple[str, list[dict], dict]:
    """The run's rate-distortion points at each of ``bits``: bytes per image (its own stream),
    PSNR, and the empirical entropy; and the sizes of what the decoder holds."""
    model = aekit.load(run)
    cfg = json.loads((Path(run) / "config.json").read_text())
    if cfg["data"]["data"] != "fashion-mnist":
        raise SystemExit(f"{run}: not a fashion-mnist run")
    m, t = cfg["model"], cfg["train"]
    net = f"conv {'-'.join(map(str, m['hidden']))}" if m["architecture"] == "conv" else "MLP"
    label = f"aekit {m['variant']}, {net}, {m['latent']}-d code, {m['loss']}, {t['epochs']} epochs"
    train_codes = model.encode_array(training_rows(model.run_config))
    codes = model.encode_array(images.reshape(len(images), -1).astype(np.float32))
    integers = bool(getattr(model.variant, "integer_codes", False))
    if integers:  # a compressive run: its integer codes stored exactly, one point
        weight = m["options"]["rate_weight"]
        label = f"aekit compressive, {net}, {m['latent']}-d code, rate weight {weight:g}, {t['epochs']} epochs"
    points = []
    for b in bits[:1] if integers else bits:  # integer codes: bits do not apply, one point
        q = C.fit_quantizer(model, train_codes, b)
        em = C.EntropyModel.fit(q.quantize(train_codes), q.levels)
        symbols = q.quantize(codes)
        decoded = model.decode_array(q.dequantize(symbols))
        out = np.clip(np.round(decoded), 0, 255).astype(np.uint8)
        points.append(
            {
                "bits": "integers" if integers else b,
                "bytes": float(em.bytes_per_row(symbols).mean()),
                "entropy_bytes": C.entropy_bits(symbols) / 8,
                "psnr": psnr(images, out, PEAK),
                "entropy_model_bytes": em.nbytes,
            }
        )
    seconds = sum(r.get("seconds", 0.0) for r in json.loads((Path(run) / "history.json").read_text()))
    sizes = {"model_bytes": (Path(run) / "model.safetensors").stat().st_size, "training_seconds": seconds}
    return label, points, sizes


def _figure(curves: list[tuple[str, list[tuple[float, float]]]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, pts in curves:
        xs, ys = zip(*sorted(pts), strict=True)
        ax.plot(xs, ys, marker="o", ms=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("bytes per image (log scale)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Fashion-MNIST test images: rate and distortion of each coder")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--runs", default=None, help="comma-separated fashion-mnist run directories (default: train RECIPES)"
    )
    p.add_argument("--epochs", type=int, default=60, help="epochs of each recipe trained without --runs")
    p.add_argument("--quick", action="store_true", help="recipes trained 1 epoch, 100 images (RESULTS-quick.md)")
    p.add_argument("--images", type=int, default=300, help="the first N official test images (default: 300)")
    p.add_argument("--bits", default="3,4,5,6,8", help="bits per code dimension, comma-separated")
    p.add_argument("--threads", type=int, default=1, help="threads of torch and numpy's BLAS (default: 1)")
    p.add_argument("--no-save", action="store_true", help="print the table without recording it")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.quick:
        args.epochs, args.images = 1, 100
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs.split(",") if args.runs else train_recipes(Path(tmp), args.epochs)
        return _measure(args, runs)


def _measure(args: argparse.Namespace, runs: list[str]) -> dict:
    _, test = load_builtin("fashion-mnist")
    images = np.clip(np.round(np.asarray(test.x[: args.images])), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    bits = [int(b) for b in args.bits.split(",")]
    rows: list[list] = []
    curves: list[tuple[str, list[tuple[float, float]]]] = []
    webp: dict[int, tuple[float, float]] = {}
    with threadpool_limits(args.threads):
        png = pillow_point(images, "PNG", optimize=True)
        rows.append(["PNG, optimize (lossless)", "-", f"{png[0]:.1f}", "inf", "-"])
        for label, fmt, qualities in LOSSY:
            pts = []
            for q in qualities:
                size, db = pillow_point(images, fmt, quality=q)
                pts.append((size, db))
                if fmt == "WEBP":
                    webp[q] = (size, db)
                rows.append([f"{label} quality {q}", "-", f"{size:.1f}", f"{db:.2f}", "-"])
            curves.append((label, pts))
        ours: list[tuple[float, float, str]] = []
        notes = []
        for run in runs:
            label, points, sizes = aekit_points(run, images, bits)
            for pt in points:
                rows.append(
                    [
                        label,
                        pt["bits"],
                        f"{pt['bytes']:.1f}",
                        f"{pt['psnr']:.2f}",
                        f"{pt['entropy_bytes']:.1f}",
                    ]
                )
                ours.append(
                    (pt["bytes"], pt["psnr"], label if pt["bits"] == "integers" else f"{label}, {pt['bits']} bits")
                )
            curves.append((label, [(pt["bytes"], pt["psnr"]) for pt in points]))
            notes.append(
                f"{label}: model file {sizes['model_bytes'] / 1e6:.2f} MB, entropy model "
                f"{points[0]['entropy_model_bytes'] / 1024:.0f}-{points[-1]['entropy_model_bytes'] / 1024:.0f} KiB "
                f"(uint32 counts), trained {sizes['training_seconds']:.0f} s"
            )
    verdicts = []
    met_all = True
    for q in TARGET_QUALITIES:
        size, db = webp[q]
        budget = TARGET_SHARE * size
        fits = [o for o in ours if o[0] <= budget and o[1] >= db]
        best = max((o for o in ours if o[0] <= budget), key=lambda o: o[1], default=None)
        met_all &= bool(fits)
        if fits:
            o = min(fits, key=lambda o: o[0])
            verdicts.append(
                f"WebP {q} ({size:.1f} B, {db:.2f} dB): **met**, {o[2]}: {o[1]:.2f} dB at {o[0]:.1f} B "
                f"({size / o[0]:.1f}x fewer bytes)"
            )
        else:
            got = f"best within {budget:.0f} B: {best[1]:.2f} dB ({best[2]})" if best else "no point within it"
            verdicts.append(f"WebP {q} ({size:.1f} B, {db:.2f} dB): **missed**, {got}")
    body = (
        table(["coder", "bits / dim", "bytes per image", "PSNR (dB)", "entropy (bytes)"], rows)
        + f"\n\nTarget, the same PSNR as WebP in at most half its bytes ({'met' if met_all else 'MISSED'} in all): "
        + "; ".join(verdicts)
        + f".\n\nThe first {args.images} official test images, each coded on its own; bytes per image: PNG, JPEG and "
        "WebP the whole file from Pillow, aekit the image's own range-coded stream (whole 32-bit words; "
        "'entropy': the summed empirical entropy of the images' symbols, what a coder of all of them together "
        "approaches). aekit's quantizer: 2^b cells over the min..max of each code dimension on the run's training "
        "codes; the entropy model: the counts of the quantized training codes, smoothed by 0.5. Decoded images "
        "are rounded to 8 bits; PSNR: mean per image, peak 255. What the aekit decoder holds, shared by every "
        "image: "
        + "; ".join(notes)
        + f". {args.threads} thread(s).\n\n![PSNR against bytes](codecs_rd{'_quick' if args.quick else ''}.png)"
    )
    publish(
        "codecs", "Fashion-MNIST codecs: PSNR against bytes per image", body, save=not args.no_save, quick=args.quick
    )
    figure = (QUICK_RESULTS if args.quick else RESULTS).with_name(
        "codecs_rd" + ("_quick" if args.quick else "") + ".png"
    )
    if not args.no_save and _figure(curves, figure):
        print(f"figure: {figure}")
    return {"rows": rows, "met": met_all}


if __name__ == "__main__":
    main()
