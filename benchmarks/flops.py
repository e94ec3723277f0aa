"""Hardware efficiency of training: achieved matrix FLOP/s of aekit's training step as a fraction of
the CPU's sustained float32 matrix-multiply rate.

The model is the 784-1000-500-250-30 autoencoder (ReLU, linear code, squared error) of
:mod:`benchmarks.throughput`. Its matrix FLOPs per step are counted analytically: forward
``2*B*in*out`` per Linear layer, backward ``2*B*in*out`` for every weight gradient and again for
every input gradient except the first layer's (the data need none), i.e. 3x the forward less the
first layer's input gradient; bias terms, activations, the loss and the optimizer are not counted.

The reference rate is measured in the same process with the same thread count: a 4096 x 4096
float32 ``torch.mm`` repeated for about two seconds. In each repeat the reference and, for each
batch size, three measurements run one after the other:

- aekit: one epoch of ``Trainer.fit`` (fused Adam) on the first ``steps * batch`` Fashion-MNIST
  training images, the whole call timed;
- bare PyTorch step: the same model, batches and fused Adam in a minimal loop (what torch alone gives);
- GEMMs alone: the step's 15 matrix products with its exact shapes and layouts, nothing else (the
  best the step could do with these kernels).

Target: aekit at least 50% of the reference rate at batch 512.

    python -m benchmarks.flops [--threads 1] [--batch-sizes 128,512] [--repeats 3] [--no-profile] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from typing import Any, Callable, Sequence

import numpy as np
import torch

from aekit import Autoencoder, ModelConfig, TrainConfig, Trainer, load_data

from .common import load_note, publish, table

SIZES = (784, 1000, 500, 250, 30)


def layer_shapes(sizes: Sequence[int] = SIZES) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer of the autoencoder, encoder then decoder."""
    enc = list(zip(sizes[:-1], sizes[1:]))
    return enc + [(o, i) for i, o in reversed(enc)]


def step_flops(batch: int, sizes: Sequence[int] = SIZES) -> dict[str, int]:
    """Matrix FLOPs of one training step: forward, weight gradients, input gradients."""
    shapes = layer_shapes(sizes)
    fwd = sum(2 * batch * i * o for i, o in shapes)
    return {"forward": fwd, "weight_grad": fwd, "input_grad": fwd - 2 * batch * shapes[0][0] * shapes[0][1],
            "total": 3 * fwd - 2 * batch * shapes[0][0] * shapes[0][1]}


def peak_rate(n: int = 4096, seconds: float = 2.0) -> float:
    """Sustained float32 FLOP/s of ``torch.mm`` on ``n x n`` matrices (after one warm-up product)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    reps, t0 = 0, time.perf_counter()
    while reps == 0 or time.perf_counter() - t0 < seconds:
        torch.mm(a, b, out=c)
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def make_model(seed: int = 0) -> Autoencoder:
    torch.manual_seed(seed)
    return Autoencoder(ModelConfig(input_dim=SIZES[0], hidden=SIZES[1:-1], latent=SIZES[-1]))


def run_aekit(x: torch.Tensor, batch: int) -> float:
    """Seconds of one epoch of aekit's Trainer over ``x``."""
    model = make_model()
    t0 = time.perf_counter()
    Trainer(model, TrainConfig(epochs=1, batch_size=batch), progress=False).fit(x)
    return time.perf_counter() - t0


def run_bare(x: torch.Tensor, batch: int) -> float:
    """Seconds of the minimal PyTorch loop (fused Adam) over ``x``, same model and batches."""
    model = make_model()
    enc, dec = model.encoder, model.decoder
    t0 = time.perf_counter()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    for i in range(0, len(x), batch):
        xb = x[perm[i:i + batch]]
        loss = (dec(enc(xb)) - xb).pow(2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def run_gemms(x: torch.Tensor, batch: int, shapes: Sequence[tuple[int, int]] | None = None,
              steps: int | None = None) -> float:
    """Seconds of the matrix products of ``steps`` training steps (default ``len(x) // batch``) alone,
    with the shapes and layouts autograd uses for Linear layers of ``shapes`` (default: this model's)."""
    g = torch.Generator().manual_seed(0)
    shapes = layer_shapes() if shapes is None else shapes
    ws = [torch.randn(o, i, generator=g) * 0.01 for i, o in shapes]
    bs = [torch.zeros(o) for _, o in shapes]
    acts = [torch.randn(batch, i, generator=g) for i, _ in shapes]
    grads = [torch.randn(batch, o, generator=g) for _, o in shapes]
    t0 = time.perf_counter()
    for _ in range(len(x) // batch if steps is None else steps):
        for w, b, a in zip(ws, bs, acts):
            torch.addmm(b, a, w.t())              # forward
        for k, (w, a, gr) in enumerate(zip(ws, acts, grads)):
            torch.mm(gr.t(), a)                   # weight gradient
            if k:
                torch.mm(gr, w)                   # input gradient (none for the first layer)
    return time.perf_counter() - t0


RUNS: dict[str, Callable[[torch.Tensor, int], float]] = {
    "aekit Trainer": run_aekit, "bare PyTorch step (fused Adam)": run_bare, "GEMMs alone": run_gemms}


# -- profiling ----------------------------------------------------------------------------------------
CATEGORIES = (
    ("matrix multiplies (mm, addmm)", ("aten::mm", "aten::addmm", "aten::bmm")),
    ("optimizer (Adam)", ("aten::_fused_adam_", "aten::_foreach_", "aten::lerp_", "aten::addcdiv_",
                          "aten::addcmul_", "aten::sqrt", "Optimizer.")),
    ("random numbers (bernoulli, normal, randperm)", ("aten::bernoulli", "aten::normal_", "aten::uniform_",
                                                     "aten::randperm", "aten::rand")),
    ("batch gather (index)", ("aten::index",)),
)


def profile_summary(fn: Callable[[], Any], steps: int) -> str:
    """Run ``fn`` under torch.profiler; a one-line breakdown of wall time per step by kind of work."""
    from torch.profiler import ProfilerActivity, profile
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    wall = time.perf_counter() - t0
    by = defaultdict(float)
    for ev in prof.key_averages():
        name = ev.key
        cat = next((c for c, prefixes in CATEGORIES if name.startswith(prefixes)), None)
        if cat is None:
            cat = "elementwise ops, reductions, autograd bookkeeping" if name.startswith(("aten::", "autograd",
                  "torch::autograd", "AddmmBackward", "MmBackward")) or "Backward" in name else "other torch ops"
        by[cat] += ev.self_cpu_time_total / 1e6
    by["outside torch ops (Python: loop, data loading, bookkeeping; and the profiler's own overhead)"] = max(
        0.0, wall - sum(by.values()))
    parts = sorted(by.items(), key=lambda kv: -kv[1])
    return (f"{wall / steps * 1e3:.1f} ms per step under the profiler: "
            + "; ".join(f"{k} {v / wall:.0%}" for k, v in parts if v / wall >= 0.005) + ".")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--batch-sizes", default="128,512")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rows", type=int, default=20480, help="training rows per measurement (one epoch)")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                   help="add a torch.profiler breakdown of aekit's step (default: on)")
    p.add_argument("--note", default="", help="a sentence added to the recorded text (e.g. the machine load)")
    p.add_argument("--quick", action="store_true", help="2,048 rows, 1 repeat (recorded in RESULTS-quick.md)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    if args.quick:
        args.rows, args.repeats = 2048, 1
    batches = [int(b) for b in args.batch_sizes.split(",")]
    x = torch.from_numpy(load_data("fashion-mnist").x[:args.rows] / np.float32(255.0))
    for b in batches:  # warm-up: first calls allocate, pick kernels, import lazily
        for fn in RUNS.values():
            fn(x[:4 * b], b)
    peaks: list[float] = []
    rates: dict[tuple[int, str], list[float]] = defaultdict(list)
    secs: dict[tuple[int, str], list[float]] = defaultdict(list)
    for r in range(args.repeats):
        peaks.append(peak_rate(seconds=0.5 if args.quick else 2.0))
        for b in (batches if r % 2 == 0 else batches[::-1]):
            steps = len(x) // b
            names = list(RUNS)
            for k in range(len(names)):
                name = names[(r + k) % len(names)]
                s = RUNS[name](x[:steps * b], b)
                secs[b, name].append(s / steps)
                rates[b, name].append(step_flops(b)["total"] * steps / s)
        print(f"repeat {r + 1}: peak {peaks[-1] / 1e9:.1f} GFLOP/s, "
              + ", ".join(f"b{b} {n}: {rates[b, n][-1] / 1e9:.1f}" for b in batches for n in RUNS), flush=True)
    peak = statistics.median(peaks)
    rows = []
    for b in batches:
        for name in RUNS:
            rate = statistics.median(rates[b, name])
            rows.append([b, name, step_flops(b)["total"] / 1e9, statistics.median(secs[b, name]) * 1e3,
                         rate / 1e9, f"{rate / peak:.0%}", f"{rate / max(peaks):.0%}"])
    verdict = ""
    if 512 in batches:
        frac, low = (statistics.median(rates[512, "aekit Trainer"]) / ref for ref in (peak, max(peaks)))
        verdict = (f"aekit at batch 512: **{frac:.0%}** of the median reference rate, {low:.0%} of the best one "
                   f"measured (target >= 50%: {'met' if min(frac, low) >= 0.5 else 'MISSED'}). ")
    body = (table(["batch", "step", "matrix GFLOP per step", "ms per step", "GFLOP/s", "of the median reference",
                   "of the best reference"], rows)
            + f"\n\n{verdict}Reference: float32 4096 x 4096 `torch.mm`, median {peak / 1e9:.1f} GFLOP/s "
              f"(min {min(peaks) / 1e9:.1f}, max {max(peaks) / 1e9:.1f}) over {args.repeats} measurements of "
              f"~2 s taken between the training measurements, {args.threads} thread(s). Model 784-1000-500-250-30 "
              f"(ReLU, linear code, squared error, Adam lr 1e-3); per step "
              f"{step_flops(1)['total'] / 1e6:.2f} MFLOP per example counted analytically (forward "
              f"{step_flops(1)['forward'] / 1e6:.2f}, weight gradients {step_flops(1)['weight_grad'] / 1e6:.2f}, "
              f"input gradients {step_flops(1)['input_grad'] / 1e6:.2f}: none for the data). Each figure is "
              f"the median of {args.repeats} one-epoch measurements on {len(x)} Fashion-MNIST rows, the "
              f"contenders and batch sizes in rotating order. {load_note(load0)} {args.note}")
    if args.profile:
        lines = []
        for b in batches:
            n = min(len(x), 64 * b)
            lines.append(f"- batch {b}: " + profile_summary(lambda: run_aekit(x[:n], b), n // b))
        body += "\n\nWhere aekit's training time goes (torch.profiler, self time per kind of op):\n\n" + "\n".join(lines)
    publish(f"flops_t{args.threads}", f"Hardware efficiency of training ({args.threads} thread(s)): achieved "
            f"matrix FLOP/s vs the matmul rate", body, quick=args.quick)
    return {"peak": peak, "rates": {f"{b} {n}": statistics.median(v) for (b, n), v in rates.items()}}


if __name__ == "__main__":
    main()
