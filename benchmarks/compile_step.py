"""The training step, eager and compiled (``TrainConfig.compile``), against its float32 matrix products.

For each model at batch 128 on Fashion-MNIST (the first ``--rows`` training images, unit-scaled):

- Pythae's default VAE MLP (784-512-16, ReLU, Bernoulli decoder, dynamic binarization), the model of
  :mod:`benchmarks.vae_throughput`;
- the deep autoencoder 784-1000-500-250-30 (ReLU, linear code, squared error) of :mod:`benchmarks.flops`;
- and, eager only (``train_rbm`` has no compiled path), the RBM 784-500 at its batch of 100, CD-1 with
  Hinton & Salakhutdinov's momentum and decay: an update's milliseconds (from the history's
  samples/s of a 1-epoch ``train_rbm``) against its four float32 products alone (the hidden
  means of the data and of the reconstruction, the visible means, and both phases' statistics in one
  product);

the Trainer's milliseconds per step, eager and with ``compile=True`` (the steady state: the median
step after the first ``WARM`` of an epoch, read by a step callback), the seconds the compiled run's
first step took over a steady one (the compilation), and the milliseconds of the same step's float32
matrix products alone (:func:`benchmarks.flops.run_gemms`: the shapes and layouts autograd uses),
whose ratio to a step is its share of that bound. Break-even: the steps a run needs before the
compilation is paid back. The contenders alternate (eager, compiled, products) ``--repeats`` times in
one process; the compilation time is the first compiled run's (a fresh cache folder,
``TORCHINDUCTOR_CACHE_DIR``, and nothing compiled yet in the process: a user's first run).

``--whole-step`` instead measures the ceiling of compilation for the VAE: its step written as one function
(forward, ``torch.func.grad_and_value`` for the backward, and Adam's update, in place) and compiled into one
graph, against the same float32 products and a hand-written eager step (fused Adam); it records the table
``compile_whole_step_t{threads}``. This is not the Trainer's path (which keeps torch's optimizers, their state
and schedules): it tells how much of the gap any compilation of the step could close on this machine.

``--profile`` instead prints torch.profiler's table of the VAE's eager Trainer steps (self CPU time by
operator) and records nothing.

    python -m benchmarks.compile_step [--threads 1] [--rows 12800] [--repeats 3] [--quick] [--profile | --whole-step]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any
from unittest import mock

import numpy as np
import torch

from aekit import Autoencoder, Callback, ModelConfig, TrainConfig, Trainer
from aekit.data import load_splits
from aekit.pretrain import train_rbm

from .common import load_note, publish, table
from .flops import SIZES, layer_shapes, run_gemms
from .vae_throughput import LATENT, VAE_SHAPES

#: steps of an epoch left out of the steady state (the compiled run's first compiles)
WARM = 5
BATCH = 128


class StepClock(Callback):
    """The perf_counter time at the end of every step."""

    def on_train_begin(self, trainer: Any) -> None:
        self.start, self.ends = time.perf_counter(), []

    def on_step_end(self, trainer: Any, step: int, terms: Any) -> None:
        self.ends.append(time.perf_counter())


def _vae() -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(ModelConfig(variant="vae", input_dim=784, hidden=(512,), latent=16, activation="relu",
                                   loss="bce", options={"binarize": True}))


def _deep() -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(ModelConfig(input_dim=SIZES[0], hidden=SIZES[1:-1], latent=SIZES[-1], loss="mse"))


MODELS = {
    "VAE 784-512-16 (Pythae's default MLP), batch 128": (_vae, VAE_SHAPES),
    "autoencoder 784-1000-500-250-30, batch 128": (_deep, layer_shapes(SIZES)),
}


def _trainer_run(make: Any, x: torch.Tensor, compile: bool) -> tuple[float, float]:
    """(steady seconds per step, seconds of the first step) of one epoch of the Trainer on ``x``."""
    clock = StepClock()
    with tempfile.TemporaryDirectory() as cache, mock.patch.dict(os.environ, {"TORCHINDUCTOR_CACHE_DIR": cache}):
        if compile:
            torch._dynamo.reset()  # nothing compiled yet for this model
        cfg = TrainConfig(epochs=1, batch_size=BATCH, compile=compile, patience=None, restore_best=False)
        Trainer(make(), cfg, callbacks=[clock], progress=False).fit(x)
    gaps = np.diff(clock.ends[WARM - 1 :])
    return float(np.median(gaps)), clock.ends[0] - clock.start


def _rbm_update(x: torch.Tensor) -> float:
    """Seconds per CD-1 update (batch 100) of a 1-epoch ``train_rbm`` on ``x``, the updates only."""
    rbm = train_rbm(x, 500, epochs=1, seed=0)
    return RBM_BATCH / rbm.history[-1]["samples_per_second"]


def _rbm_gemms(steps: int, n_visible: int = 784, n_hidden: int = 500) -> float:
    """Seconds per update of the CD-1 update's four float32 products alone, in its layouts."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n_hidden, n_visible, generator=g) * 0.01
    b, c = torch.zeros(n_visible), torch.zeros(n_hidden)
    v = torch.rand(RBM_BATCH, n_visible, generator=g)
    h = torch.rand(RBM_BATCH, n_hidden, generator=g)
    both_h = torch.rand(2 * RBM_BATCH, n_hidden, generator=g)
    both_v = torch.rand(2 * RBM_BATCH, n_visible, generator=g)
    t0 = time.perf_counter()
    for _ in range(steps):
        torch.addmm(c, v, w.t())  # E[h | v] of the data
        torch.addmm(b, h, w)  # E[v | h]
        torch.addmm(c, v, w.t())  # E[h | v-] of the reconstruction
        both_h.t() @ both_v  # the positive and negative statistics
    return (time.perf_counter() - t0) / steps


RBM_BATCH = 100


def _profile(rows: int) -> None:
    """torch.profiler's operator table (self CPU time) of one epoch of the VAE's eager Trainer steps."""
    from torch.profiler import ProfilerActivity, profile

    splits = load_splits("fashion-mnist", val_fraction=0.0)
    x = torch.from_numpy((splits.train.x[:rows] / np.float32(255.0)).astype(np.float32))
    cfg = TrainConfig(epochs=1, batch_size=BATCH, patience=None, restore_best=False)
    Trainer(_vae(), cfg, progress=False).fit(x[: 10 * BATCH])  # warm
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        Trainer(_vae(), cfg, progress=False).fit(x)
    print(f"{len(x) // BATCH} steps of {BATCH}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))


def _vae_params() -> dict[str, torch.Tensor]:
    """The VAE's weights and biases (layers of VAE_SHAPES), seeded."""
    g = torch.Generator().manual_seed(0)
    params = {}
    for n, (i, o) in enumerate(VAE_SHAPES):
        params[f"w{n}"] = torch.randn(o, i, generator=g) * (1.0 / i) ** 0.5
        params[f"b{n}"] = torch.zeros(o)
    return params


def _vae_loss(p: dict[str, torch.Tensor], x: torch.Tensor, u: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The VAE's negative ELBO per row of a batch, binarized by the uniform draws ``u``."""
    xb = (u < x).to(x.dtype)
    h = torch.relu(torch.addmm(p["b0"], xb, p["w0"].t()))
    mu, logvar = torch.addmm(p["b1"], h, p["w1"].t()).chunk(2, 1)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = torch.addmm(p["b3"], torch.relu(torch.addmm(p["b2"], z, p["w2"].t())), p["w3"].t())
    recon = torch.nn.functional.binary_cross_entropy_with_logits(logits, xb, reduction="sum")
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
    return (recon + kl) / x.shape[0]


def _whole_step(p: dict, m: dict, v: dict, x: torch.Tensor, u: torch.Tensor, eps: torch.Tensor,
                c1: torch.Tensor, c2: torch.Tensor, lr: float = 1e-3) -> torch.Tensor:
    """One step: the loss, its gradients and Adam's update of ``p`` (moments ``m``, ``v``; bias corrections
    ``c1``, ``c2`` as tensors, so that the step number is no guard), all in place."""
    grads, loss = torch.func.grad_and_value(_vae_loss)(p, x, u, eps)
    for k, g in grads.items():
        m[k].mul_(0.9).add_(g, alpha=0.1)
        v[k].mul_(0.999).addcmul_(g, g, value=0.001)
        p[k].sub_(lr * (m[k] / c1) / ((v[k] / c2).sqrt() + 1e-8))
    return loss


def _whole_step_run(x: torch.Tensor, compile: bool) -> float:
    """Steady seconds per step (median after WARM) of one epoch of the VAE's step, eager (autograd and fused
    Adam) or as one compiled graph."""
    g = torch.Generator().manual_seed(0)
    p = _vae_params()
    if compile:
        torch._dynamo.reset()
        m = {k: torch.zeros_like(t) for k, t in p.items()}
        v = {k: torch.zeros_like(t) for k, t in p.items()}
        step = torch.compile(_whole_step, dynamic=False)
    else:
        for t in p.values():
            t.requires_grad_(True)
        opt = torch.optim.Adam(p.values(), lr=1e-3, fused=True)
    ends = []
    for i in range(len(x) // BATCH):
        xb = x[i * BATCH : (i + 1) * BATCH]
        u, eps = torch.rand(xb.shape, generator=g), torch.randn(BATCH, LATENT, generator=g)
        if compile:
            c1, c2 = torch.tensor(1 - 0.9 ** (i + 1)), torch.tensor(1 - 0.999 ** (i + 1))
            step(p, m, v, xb, u, eps, c1, c2)
        else:
            loss = _vae_loss(p, xb, u, eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        ends.append(time.perf_counter())
    return float(np.median(np.diff(ends[WARM - 1 :])))


#: what stands between the Trainer and the one-graph step (measured 2026-12-06 with a prototype, 1 thread)
WHOLE_STEP_NOTE = (
    "The Trainer does not take this path yet: the variants' forward passes update buffers (the VAE family's epoch "
    "statistics, ksparse's selections, VQ-VAE's codebook), and torch 2.13 cannot compile an in-place buffer "
    "update under `torch.func.grad` (inductor: 'Cannot access storage of TensorWrapper'; eager it runs). Tried "
    "instead, in the same prototype: `loss.backward()` and `optimizer.step()` inside the compiled region with "
    "compiled autograd, 12.8 ms a step against 9.6 eager; the compiled forward with a separately compiled "
    "(foreach) Adam, 10.4-11.5 ms against 9.2 with the fused Adam. The way there: the variants return their "
    "statistics as outputs (`has_aux`) and the Trainer applies them after the compiled step, whose Adam keeps "
    "torch's state layout so that checkpoints and resume stay as they are."
)


def _whole_step_table(x: torch.Tensor, args: argparse.Namespace, load0: float) -> list[list]:
    steps = len(x) // BATCH
    eager, whole, gemm = [], [], []
    with tempfile.TemporaryDirectory() as cache, mock.patch.dict(os.environ, {"TORCHINDUCTOR_CACHE_DIR": cache}):
        for _ in range(args.repeats):
            eager.append(_whole_step_run(x, False))
            whole.append(_whole_step_run(x, True))
            gemm.append(run_gemms(x, BATCH, VAE_SHAPES, steps) / steps)
    e, c, g = (statistics.median(v) for v in (eager, whole, gemm))
    rows = [["hand-written eager step (autograd, fused Adam)", f"{e * 1e3:.2f}", f"{g / e:.0%}"],
            ["the same step as one compiled graph (forward, backward, Adam)", f"{c * 1e3:.2f}", f"{g / c:.0%}"],
            ["its float32 GEMMs alone", f"{g * 1e3:.2f}", "100%"]]
    body = (
        table(["VAE 784-512-16, batch 128", "ms/step", "share of the GEMM bound"], rows)
        + f"\n\nThe ceiling of compiling the step: `_whole_step` (forward, `torch.func.grad_and_value`, Adam's "
        "update in place, bias corrections as tensors) through one `torch.compile` graph (inductor, "
        "`dynamic=False`), against the hand-written eager step and the same 11 float32 products. Steady step: "
        f"median of an epoch of {steps} steps after the first {WARM}; median of {args.repeats} alternations, "
        f"{args.threads} thread(s). " + WHOLE_STEP_NOTE + " " + load_note(load0)
    )
    publish(f"compile_whole_step_t{args.threads}",
            f"The VAE step as one compiled graph ({args.threads} thread(s)): the ceiling of compilation", body,
            quick=args.quick)
    return rows


def main(argv: list[str] | None = None) -> list[list]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", type=int, default=12_800, help="training rows (one epoch each measurement)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1,280 rows, one repeat (RESULTS-quick.md)")
    p.add_argument("--profile", action="store_true", help="print the profile of the VAE's eager steps; record nothing")
    p.add_argument("--whole-step", action="store_true",
                   help="the VAE's step as one compiled graph (forward, backward, Adam) against its products")
    args = p.parse_args(argv)
    if args.profile:
        torch.set_num_threads(args.threads)
        _profile(args.rows)
        return []
    if args.quick:
        args.rows, args.repeats = 1280, 1
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    splits = load_splits("fashion-mnist", val_fraction=0.0)
    x = torch.from_numpy((splits.train.x[: args.rows] / np.float32(255.0)).astype(np.float32))
    if args.whole_step:
        return _whole_step_table(x, args, load0)
    steps = len(x) // BATCH
    rows = []
    for name, (make, shapes) in MODELS.items():
        eager, fused, first, gemm = [], [], [], []
        for _ in range(args.repeats):
            eager.append(_trainer_run(make, x, False)[0])
            s, f = _trainer_run(make, x, True)
            fused.append(s)
            first.append(f - s)
            gemm.append(run_gemms(x, BATCH, shapes, steps) / steps)
        e, c, g = (statistics.median(v) for v in (eager, fused, gemm))
        comp = first[0]  # the process's first compilation of this model: cold (later ones hit in-memory caches)
        pays = f"{comp / (e - c):,.0f}" if c < e else "never"
        rows.append([name, f"{e * 1e3:.2f}", f"{c * 1e3:.2f}", f"{e / c:.2f}", f"{comp:.1f}", pays, f"{g * 1e3:.2f}",
                     f"{g / e:.0%}", f"{g / c:.0%}"])
        print(rows[-1], flush=True)
    rbm, rbm_gemm = [], []
    for _ in range(args.repeats):
        rbm.append(_rbm_update(x))
        rbm_gemm.append(_rbm_gemms(len(x) // RBM_BATCH))
    e, g = statistics.median(rbm), statistics.median(rbm_gemm)
    rows.append(["RBM 784-500, CD-1, batch 100 (train_rbm)", f"{e * 1e3:.2f}", "-", "-", "-", "-", f"{g * 1e3:.2f}",
                 f"{g / e:.0%}", "-"])
    print(rows[-1], flush=True)
    body = (
        table(["model", "eager ms/step", "compiled ms/step", "speed-up", "compilation s",
               "steps to pay back", "float32 GEMMs alone ms/step", "eager share of the bound",
               "compiled share of the bound"], rows)
        + f"\n\nThe Trainer's steady step (median of an epoch of {steps} steps after the first {WARM}), eager and "
        "with `--compile` (TrainConfig.compile: the forward pass and the loss through torch.compile, inductor, "
        "`dynamic=False`, `fallback_random`); the compilation: the first compiled run's first step less a steady "
        "one, from a cold cache in a fresh process (the later runs hit the process's in-memory caches); the bound: the step's float32 matrix products alone, in the layouts autograd uses. "
        f"Median of {args.repeats} alternations, {args.threads} thread(s), Adam lr 1e-3. " + load_note(load0)
    )
    publish(f"compile_step_t{args.threads}",
            f"The training step eager and compiled ({args.threads} thread(s)): share of the float32 GEMM bound",
            body, quick=args.quick)
    return rows


if __name__ == "__main__":
    main()
