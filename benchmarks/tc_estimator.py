"""beta-TCVAE's minibatch estimators, eager against torch.compile: seconds per training step.

The estimators of Chen et al. (2018) build a ``(B, B, latent)`` tensor of pairwise log densities
each step (:func:`aekit.variants.tcvae.kl_decomposition`) and back-propagate through it; at their
batch of 2048 that is some 40 M elements, more work than the networks' matrix products.
``--compile-estimator`` (the variant's ``compile_estimator`` option) runs the same function through ``torch.compile``.
This times forward and backward of the three weighted terms for both paths at several batch sizes,
side by side in one process, and reports the compilation time of each shape and the largest
difference of the terms (float32 rounding).

    python -m benchmarks.tc_estimator [--batch-sizes 256,1024,2048] [--threads 1] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aekit.variants.tcvae import compiled_kl_decomposition, kl_decomposition

from .common import publish, table

LATENT = 10
DATASET_SIZE = 200_000


def _inputs(batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(batch)
    mu = (torch.randn(batch, LATENT, generator=g) * 1.5).requires_grad_()
    logvar = (torch.randn(batch, LATENT, generator=g) - 3).requires_grad_()
    z = (mu.detach() + torch.exp(0.5 * logvar.detach()) * torch.randn(batch, LATENT, generator=g)).requires_grad_()
    return z, mu, logvar


def _step(fn, z, mu, logvar, estimator: str) -> dict[str, torch.Tensor]:
    parts = fn(z, mu, logvar, DATASET_SIZE, estimator)
    (parts["mi"] + 6.0 * parts["tc"] + parts["dim_kl"]).backward()
    return parts


def _time(fn, inputs, estimator: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        _step(fn, *inputs, estimator)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[list]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default="256,1024,2048")
    p.add_argument("--estimator", choices=("mws", "mss"), default="mws")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--quick", action="store_true", help="batch 128, 2 steps (recorded in RESULTS-quick.md)")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.repeats = "128", 2
    torch.set_num_threads(args.threads)
    compiled = compiled_kl_decomposition()
    rows = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        inputs = _inputs(batch)
        t = time.perf_counter()
        fused = _step(compiled, *inputs, args.estimator)  # the first call compiles this shape
        compile_s = time.perf_counter() - t
        eager = _step(kl_decomposition, *inputs, args.estimator)
        diff = max(abs(float(fused[k] - eager[k])) for k in ("mi", "tc", "dim_kl"))
        e = _time(kl_decomposition, inputs, args.estimator, args.repeats)
        c = _time(compiled, inputs, args.estimator, args.repeats)
        rows.append([batch, f"{e * 1000:.1f}", f"{c * 1000:.1f}", f"{e / c:.2f}", f"{compile_s:.1f}", f"{diff:.1e}"])
    body = table(
        [
            "batch",
            "eager ms per step",
            "compiled ms per step",
            "speed-up",
            "first call (compiles) s",
            "largest term difference (nats)",
        ],
        rows,
    )
    body += (
        f"\n\nForward and backward of MI + 6 TC + dim-KL, estimator {args.estimator}, latent {LATENT}, "
        f"N = {DATASET_SIZE:,}; "
        f"median of {args.repeats} steps after the first, {args.threads} thread(s), both paths in one process. The "
        "compiled path is beta-TCVAE's `--compile-estimator`; its first call at each batch size includes the compilation."
    )
    publish(
        "tc_estimator",
        f"beta-TCVAE estimators: eager vs torch.compile ({args.threads} thread(s))",
        body,
        save=not args.no_save,
        quick=args.quick,
    )
    return rows


if __name__ == "__main__":
    main()
