"""Hardware efficiency of training: achieved matrix FLOP/s of aekit's training step as a fraction of
the device's sustained float32 matrix-multiply rate (the CPU's, or with ``--device cuda`` the GPU's).

The model is the 784-1000-500-250-30 autoencoder (ReLU, linear code, squared error) of
:mod:`benchmarks.throughput`. Its matrix FLOPs per step are counted analytically: forward
``2*B*in*out`` per Linear layer, backward ``2*B*in*out`` for every weight gradient and again for
every input gradient except the first layer's (the data need none), i.e. 3x the forward less the
first layer's input gradient; bias terms, activations, the loss and the optimizer are not counted.

The reference rate is measured in the same process with the same thread count, on the same device:
a 4096 x 4096 float32 ``torch.mm`` (8192 x 8192 on a GPU) repeated for about two seconds. On a GPU
the data and the models are there, every clock is read after ``torch.cuda.synchronize()``, float32
products run as torch runs them by default (no TF32; the recorded text says which), and the table
goes to its own section (``flops_cuda``), beside the CPU one. In each repeat the reference and, for
each batch size, three measurements run one after the other:

- aekit: one epoch of ``Trainer.fit`` (fused Adam) on the first ``steps * batch`` Fashion-MNIST
  training images, the whole call timed;
- bare PyTorch step: the same model, batches and fused Adam in a minimal loop (what torch alone gives);
- GEMMs alone: the step's 15 matrix products with its exact shapes and layouts, nothing else (the
  best the step could do with these kernels).

Target: aekit at least 50% of the reference rate at batch 512.

    python -m benchmarks.flops [--threads 1] [--batch-sizes 128,512] [--repeats 3] [--no-profile] [--quick]
        [--device cpu] [--rows 20480] [--results FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from aekit import Autoencoder, ModelConfig, TrainConfig, Trainer, load_data

from .common import device_note, load_note, publish, sync, table

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


def peak_rate(n: int = 4096, seconds: float = 2.0, device: str | torch.device = "cpu") -> float:
    """Sustained float32 FLOP/s of ``torch.mm`` on ``n x n`` matrices on ``device`` (after one warm-up
    product; on an accelerator each product is waited for before the clock is read)."""
    device = torch.device(device)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(device), torch.randn(n, n, generator=g).to(device)
    c = torch.empty(n, n, device=device)
    torch.mm(a, b, out=c)
    sync(device)
    reps, t0 = 0, time.perf_counter()
    while reps == 0 or time.perf_counter() - t0 < seconds:
        torch.mm(a, b, out=c)
        sync(device)
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def make_model(seed: int = 0) -> Autoencoder:
    torch.manual_seed(seed)
    return Autoencoder(ModelConfig(input_dim=SIZES[0], hidden=SIZES[1:-1], latent=SIZES[-1]))


def run_aekit(x: torch.Tensor, batch: int) -> float:
    """Seconds of one epoch of aekit's Trainer over ``x`` (on ``x``'s device)."""
    model = make_model()
    sync(x.device)
    t0 = time.perf_counter()
    Trainer(model, TrainConfig(epochs=1, batch_size=batch, device=str(x.device)), progress=False).fit(x)
    sync(x.device)
    return time.perf_counter() - t0


def run_bare(x: torch.Tensor, batch: int) -> float:
    """Seconds of the minimal PyTorch loop (fused Adam) over ``x``, same model and batches, on ``x``'s device."""
    model = make_model().to(x.device)
    enc, dec = model.encoder, model.decoder
    sync(x.device)
    t0 = time.perf_counter()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).to(x.device)
    for i in range(0, len(x), batch):
        xb = x[perm[i:i + batch]]
        loss = (dec(enc(xb)) - xb).pow(2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(x.device)
    return time.perf_counter() - t0


def run_gemms(x: torch.Tensor, batch: int, shapes: Sequence[tuple[int, int]] | None = None,
              steps: int | None = None) -> float:
    """Seconds of the matrix products of ``steps`` training steps (default ``len(x) // batch``) alone,
    with the shapes and layouts autograd uses for Linear layers of ``shapes`` (default: this model's),
    on ``x``'s device."""
    g = torch.Generator().manual_seed(0)
    dev = x.device
    shapes = layer_shapes() if shapes is None else shapes
    ws = [(torch.randn(o, i, generator=g) * 0.01).to(dev) for i, o in shapes]
    bs = [torch.zeros(o, device=dev) for _, o in shapes]
    acts = [torch.randn(batch, i, generator=g).to(dev) for i, _ in shapes]
    grads = [torch.randn(batch, o, generator=g).to(dev) for _, o in shapes]
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(len(x) // batch if steps is None else steps):
        for w, b, a in zip(ws, bs, acts):
            torch.addmm(b, a, w.t())              # forward
        for k, (w, a, gr) in enumerate(zip(ws, acts, grads)):
            torch.mm(gr.t(), a)                   # weight gradient
            if k:
                torch.mm(gr, w)                   # input gradient (none for the first layer)
    sync(dev)
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
    p.add_argument("--device", default="cpu", help="torch device of the data, the model and the reference product: "
                                                   "cpu, cuda, cuda:1 (default cpu; an accelerator's table has its "
                                                   "own section)")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                   help="add a torch.profiler breakdown of aekit's step (default: on; CPU only)")
    p.add_argument("--note", default="", help="a sentence added to the recorded text (e.g. the machine load)")
    p.add_argument("--results", default=None, help="record the table in this Markdown file instead of RESULTS.md "
                                                    "(or RESULTS-quick.md)")
    p.add_argument("--quick", action="store_true", help="2,048 rows, 1 repeat (recorded in RESULTS-quick.md)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA device is available")
    accel = device.type != "cpu"
    profile = args.profile and not accel  # the profiler's CPU self times say little of a GPU's step
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    if args.quick:
        args.rows, args.repeats = 2048, 1
    batches = [int(b) for b in args.batch_sizes.split(",")]
    x = torch.from_numpy(load_data("fashion-mnist").x[:args.rows] / np.float32(255.0)).to(device)
    if max(batches) > len(x):
        p.error(f"--batch-sizes {args.batch_sizes}: a batch of {max(batches)} is more than the {len(x)} rows measured")
    ref_n = 8192 if accel else 4096  # a GPU needs the larger product to reach its sustained rate
    for b in batches:  # warm-up: first calls allocate, pick kernels, import lazily
        for fn in RUNS.values():
            fn(x[:4 * b], b)
    peaks: list[float] = []
    rates: dict[tuple[int, str], list[float]] = defaultdict(list)
    secs: dict[tuple[int, str], list[float]] = defaultdict(list)
    for r in range(args.repeats):
        peaks.append(peak_rate(ref_n, seconds=0.5 if args.quick else 2.0, device=device))
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
            alone = statistics.median(rates[b, "GEMMs alone"])
            rows.append([b, name, step_flops(b)["total"] / 1e9, statistics.median(secs[b, name]) * 1e3,
                         rate / 1e9, f"{rate / peak:.0%}", f"{rate / max(peaks):.0%}", f"{rate / alone:.0%}"])
    verdict = ""
    if 128 in batches:
        share = statistics.median(rates[128, "aekit Trainer"]) / statistics.median(rates[128, "GEMMs alone"])
        verdict += (f"aekit at batch 128: **{share:.0%}** of its float32 GEMMs alone (target >= 80%: "
                    f"{'met' if share >= 0.8 else 'MISSED'}). ")
    if 512 in batches:
        frac, low = (statistics.median(rates[512, "aekit Trainer"]) / ref for ref in (peak, max(peaks)))
        verdict += (f"aekit at batch 512: **{frac:.0%}** of the median reference rate, {low:.0%} of the best one "
                   f"measured (target >= 50%: {'met' if min(frac, low) >= 0.5 else 'MISSED'}). ")
    body = (table(["batch", "step", "matrix GFLOP per step", "ms per step", "GFLOP/s", "of the median reference",
                   "of the best reference", "of the GEMMs alone"], rows)
            + f"\n\n{verdict}Reference: float32 {ref_n} x {ref_n} `torch.mm`"
              + (f" on {device}" if accel else "")
              + f", median {peak / 1e9:.1f} GFLOP/s "
              f"(min {min(peaks) / 1e9:.1f}, max {max(peaks) / 1e9:.1f}) over {args.repeats} measurements of "
              f"~2 s taken between the training measurements, {args.threads} thread(s). Model 784-1000-500-250-30 "
              f"(ReLU, linear code, squared error, Adam lr 1e-3); per step "
              f"{step_flops(1)['total'] / 1e6:.2f} MFLOP per example counted analytically (forward "
              f"{step_flops(1)['forward'] / 1e6:.2f}, weight gradients {step_flops(1)['weight_grad'] / 1e6:.2f}, "
              f"input gradients {step_flops(1)['input_grad'] / 1e6:.2f}: none for the data). Each figure is "
              f"the median of {args.repeats} one-epoch measurements on {len(x)} Fashion-MNIST rows, the "
              f"contenders and batch sizes in rotating order. "
              + (f"Data and model on {device}, each clock read after torch.cuda.synchronize(). {device_note(device)} "
                 if accel else "")
              + f"{load_note(load0)} {args.note}")
    if profile:
        lines = []
        for b in batches:
            n = min(len(x), 64 * b)
            lines.append(f"- batch {b}: " + profile_summary(lambda: run_aekit(x[:n], b), n // b))
        body += "\n\nWhere aekit's training time goes (torch.profiler, self time per kind of op):\n\n" + "\n".join(lines)
    if accel:
        name = f"flops_{device.type}"
        title = (f"Hardware efficiency of training on the GPU ({torch.cuda.get_device_name(device)}): achieved "
                 f"matrix FLOP/s vs the matmul rate")
    else:
        name = f"flops_t{args.threads}"
        title = f"Hardware efficiency of training ({args.threads} thread(s)): achieved matrix FLOP/s vs the matmul rate"
    publish(name, title, body, quick=args.quick, results=Path(args.results) if args.results else None)
    return {"peak": peak, "rates": {f"{b} {n}": statistics.median(v) for (b, n), v in rates.items()}}


if __name__ == "__main__":
    main()
