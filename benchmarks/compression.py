"""Fashion-MNIST rate-distortion: autoencoder codes vs PCA, quantized to 8 and 4 bits per dimension.

For each code size an autoencoder 784-512-128-d is trained briefly without labels on the 54,000
training images (pixels in [0, 1]); PCA with d components is fitted on the same images. Codes
are quantized uniformly per dimension (aekit.compress: 2^b cells over the min..max of the
training codes), dequantized and decoded; the 10,000 official test images are measured by the
bits per image (fixed d*b, and the empirical entropy of the symbols: what an entropy coder
reaches) and the distortion (per-image summed squared error, PSNR with peak 1).

    python -m benchmarks.compression [--sizes 8,16,32,64] [--bits 8,4] [--epochs 10] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch
from threadpoolctl import threadpool_limits

import aekit
from aekit.compress import compression_scores

from .common import publish, table

#: bits of one raw Fashion-MNIST image (784 pixels of 8 bits)
RAW_BITS = 784 * 8


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="8,16,32,64", help="code sizes, comma-separated")
    p.add_argument("--bits", default="8,4", help="bits per code dimension, comma-separated")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="threads of torch and numpy's BLAS (default: 1)")
    p.add_argument("--quick", action="store_true", help="1 epoch, sizes 8,32 (recorded in RESULTS-quick.md)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.sizes = 1, "8,32"
    sizes = [int(v) for v in args.sizes.split(",")]
    bit_depths = [int(v) for v in args.bits.split(",")]
    torch.set_num_threads(args.threads)
    rows, results = [], {}
    with threadpool_limits(args.threads):
        splits = aekit.load_splits("fashion-mnist")
        for d in sizes:
            t0 = time.perf_counter()
            model = aekit.fit("ae", "fashion-mnist", hidden=(512, 128), latent=d, loss="bce", epochs=args.epochs,
                              lr=1e-3, batch_size=128, seed=0, progress=False, figures=False)
            train_s = time.perf_counter() - t0
            fit_x, X = model.transform.apply(splits.train.x), model.transform.apply(splits.test.x)
            for b in bit_depths:
                scores = compression_scores(model, X, fit_x, b)
                for coder in ("autoencoder", "pca"):
                    s = scores[coder]
                    label = f"autoencoder 784-512-128-{d}" if coder == "autoencoder" else f"PCA-{d}"
                    results[(coder, d, b)] = s
                    rows.append([label, d, b, s["bits_per_input"], s["entropy_bits_per_input"],
                                 RAW_BITS / s["entropy_bits_per_input"], s["per_example_squared_error"], s["psnr"],
                                 s["unquantized"]["per_example_squared_error"],
                                 f"{train_s:.0f} s" if coder == "autoencoder" else "-"])
    wins = sum(results[("autoencoder", d, b)]["per_example_squared_error"]
               < results[("pca", d, b)]["per_example_squared_error"] for d in sizes for b in bit_depths)
    body = (table(["coder", "code size", "bits / dim", "bits / image (fixed)", "bits / image (entropy)",
                   "ratio to 8-bit pixels (entropy)", "per-image squared error", "PSNR (dB)",
                   "unquantized squared error", "training"], rows)
            + f"\n\nThe autoencoder has the lower distortion in {wins} of {len(sizes) * len(bit_depths)} settings of "
              f"code size and bits. Uniform scalar quantization per code dimension, 2^b cells over the min..max of the "
              f"codes of the 54,000 training images (aekit.compress.Quantizer); bits / image (entropy): the summed "
              f"per-dimension empirical entropy of the test symbols (frequency tables not counted); the ratio "
              f"compares it with the {RAW_BITS} bits of a raw 8-bit image. Distortion on the 10,000 official test "
              f"images, pixels in [0, 1] (PSNR: mean per image, peak 1). Autoencoders: ReLU MLPs with a linear code "
              f"and logistic outputs, cross-entropy loss, Adam 1e-3, batch 128, {args.epochs} epochs, seed 0; PCA "
              f"fitted on the same images; {args.threads} thread(s).")
    publish("compression", "Fashion-MNIST rate-distortion: quantized autoencoder codes vs quantized PCA", body,
            quick=args.quick)
    return results


if __name__ == "__main__":
    main()
