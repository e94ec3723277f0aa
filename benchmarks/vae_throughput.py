"""Fashion-MNIST VAE training throughput: aekit, Pythae's TrainingPipeline and a hand-written loop.

All of them train Pythae's default VAE MLP, 784-512-16 (ReLU) with a 16-512-784 Bernoulli decoder,
with Adam lr 1e-3, batch 128 (``--batch-sizes``: each size in turn), for 3 epochs on the 60,000 training
images, dynamically binarized (a fresh Bernoulli draw of the [0, 1] pixels at every step), from the same
seed, on the CPU or, with ``--device cuda``, data and models on the GPU:

- aekit: ``aekit.fit("vae", ...)`` with a run directory (the helper of :mod:`benchmarks.vae_likelihood`);
- Pythae: ``VAE`` + ``TrainingPipeline`` (the same helper module; it writes its own output folder);
- the hand-written loop: the minimal PyTorch loop (shuffled index slices, ``torch.bernoulli``,
  reparameterization, summed BCE on logits + closed-form KL, ``torch.optim.Adam`` with its defaults);
- aekit again with its opt-in ``precision="bfloat16"`` (mixed precision; not the default, so not
  counted for the target): what the hardware allows when rounded products are acceptable.

Each measurement is one whole 3-epoch training call, set-up and the writing of the result
included; the contenders run in rotating order (ABCD, BCDA, ...) in one process and the table
gives the median samples/s. Reconstruction error: mean per-image summed Bernoulli cross-entropy of
the decoding of the posterior mean, on the 10,000 test images binarized once (seed 0), each model's
likelihood as its library defines it. Targets: aekit >= 2x Pythae and >= 1.0x the hand-written
loop, at equal or better reconstruction.

On an accelerator every clock is read after ``torch.cuda.synchronize()``, the samples-per-CPU-second
columns and the (CPU) profile are left out, and the table is recorded in its own section
(``vae_throughput_cuda``), beside the CPU one; ``benchmarks/gpu.sh`` runs it on a GPU.

    python -m benchmarks.vae_throughput [--threads 1] [--repeats 3] [--no-profile] [--quick]
        [--device cpu] [--batch-sizes 128] [--results FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aekit.data import load_splits

from .common import device_note, load_note, publish, sync, table
from .flops import profile_summary, run_gemms
from .vae_likelihood import _aekit, _aekit_scorers, _pythae, _pythae_scorers, _pythae_version

LATENT, HIDDEN = 16, 512
Scorers = tuple[Callable, Callable]
BF16 = "aekit --precision bfloat16 (opt-in)"
COMPILED = "aekit --compile (opt-in)"


def hand_loop(train: np.ndarray, epochs: int, batch: int = 128, lr: float = 1e-3,
              seed: int = 0, device: str | torch.device = "cpu") -> tuple[Scorers, float]:
    """The VAE loop a PyTorch user writes by hand (on ``device``: the data moved there first, in the timed
    region as in aekit's); returns its scorers and the seconds it took."""
    device = torch.device(device)
    sync(device)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(784, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * LATENT)).to(device)
    dec = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 784)).to(device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=lr)
    x_all = torch.from_numpy(train).to(device)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x_all), generator=g).to(device)
        for i in range(0, len(x_all), batch):
            x = torch.bernoulli(x_all[perm[i:i + batch]])
            mu, logvar = enc(x).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            recon = F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(1).mean()
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
            loss = recon + kl
            opt.zero_grad()
            loss.backward()
            opt.step()
    sync(device)
    seconds = time.perf_counter() - t0

    def posterior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = enc(x).chunk(2, dim=1)
        return mu, logvar

    def log_lik(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(1)
    return (posterior, log_lik), seconds


def recon_error(scorers: Scorers, test: np.ndarray, batch: int = 1000, device: str | torch.device = "cpu") -> float:
    """Mean per-image summed -log p(x | z = posterior mean) on ``test`` (the same measure for every model),
    the model and the images on ``device``."""
    posterior, log_lik = scorers
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(test), batch):
            x = torch.from_numpy(test[i:i + batch]).to(device)
            mu, _ = posterior(x)
            total -= float(log_lik(mu, x).double().sum())
    return total / len(test)


def run_aekit(train: np.ndarray, epochs: int, tmp: str, batch: int, device: torch.device,
              **extra: Any) -> tuple[Scorers, float]:
    model, secs = _aekit(train, epochs, f"{tmp}/aekit", batch_size=batch, device=str(device), **extra)
    return _aekit_scorers(model), secs


def run_pythae(train: np.ndarray, epochs: int, tmp: str, batch: int, device: torch.device) -> tuple[Scorers, float]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        model, secs = _pythae(train, epochs, f"{tmp}/pythae", 1e-3, batch, device)
    return _pythae_scorers(model), secs


#: name -> (train, epochs, scratch folder, batch size, device) -> (scorers, seconds)
CONTENDERS: dict[str, Callable[[np.ndarray, int, str, int, torch.device], tuple[Scorers, float]]] = {
    "aekit (aekit.fit, run directory)": run_aekit,
    "Pythae TrainingPipeline": run_pythae,
    "hand-written PyTorch loop": lambda train, epochs, tmp, batch, device: hand_loop(train, epochs, batch,
                                                                                   device=device),
    # opt-in, not the default: shown for what the hardware allows, not counted for the target
    BF16: lambda train, epochs, tmp, batch, device: run_aekit(train, epochs, tmp, batch, device,
                                                              precision="bfloat16"),
    # opt-in: the forward pass and loss through torch.compile (compiled in the warm-up call; a measured
    # call compiles again only where torch's caches miss, and that time is in its figure)
    COMPILED: lambda train, epochs, tmp, batch, device: run_aekit(train, epochs, tmp, batch, device, compile=True),
}
#: What the profiles and side-by-side experiments (CPU time, alternating) found; recorded with the table.
ANALYSIS = (
    "Profile summary: all three loops do the same 11 float32 matrix products per step (their share is given "
    "below). Besides them aekit's step spends its time on the elementwise work of the loss and its gradients "
    "(Bernoulli cross-entropy on the 128 x 784 logits, the KL term, ReLU and bias gradients, the sigmoid of the "
    "returned reconstruction), the fused Adam update, the binarization draws, the batch gather, and the Python and "
    "dispatch of some hundred small operator calls (the model's loss dict, the VAE's per-epoch posterior "
    "statistics and logged metrics, the trainer's running sums). Writing the run directory costs about 50 ms an "
    "epoch and aekit.fit's set-up about 0.15 s. The Trainer itself adds nothing measurable: a bare loop driving "
    "the same model took 10.79 ms per step against 10.84 ms for the Trainer (CPU time, 15 alternations, "
    "measured separately). Pythae's extra time goes to its DataLoader (one __getitem__ and DatasetOutput per "
    "image, then collation) and to its unfused for-loop Adam. Changed for this benchmark: dynamic binarization "
    "draws rand_like(x) < x instead of torch.bernoulli(x), the same numbers on CPU and about 3x faster (0.4-0.6 "
    "instead of 1.3-2.1 ms per step). torch.compile (opt-in `--compile`, TrainConfig.compile: the forward pass "
    "and the loss, `dynamic=False`, the eager random generators): one graph and no graph break for this model "
    "(torch._dynamo.explain), one compilation per batch shape; a first attempt had been slower than eager, and "
    "the causes found since are guards on Python numbers that change every step (the capacity and warm-up "
    "schedules, now read from a buffer: recompiling every step), a graph break on a buffer read (beta-TCVAE's N) "
    "and the epoch's shorter last batch (a second compilation). Compiled, the step fuses the loss's and the "
    "activations' elementwise work, which on a quiet core is a small part of it (`python -m "
    "benchmarks.compile_step`), so it stays opt-in. Added as an option, not the default: `--precision bfloat16` (TrainConfig."
    "precision) runs the forward pass under bfloat16 autocast, whose products are about 2.8x faster on this CPU "
    "(avx512_bf16), with float32 weights, optimizer and losses; it changes the arithmetic (about 3 significant "
    "digits in the products), so float32 stays the default and its row does not count for the target.")
#: (in, out) of the Linear layers of the VAE: encoder (mean and log-variance together), decoder
VAE_SHAPES = [(784, HIDDEN), (HIDDEN, 2 * LATENT), (LATENT, HIDDEN), (HIDDEN, 784)]


def gemm_bound(rows: int, epochs: int, batch: int = 128, device: str | torch.device = "cpu") -> float:
    """Samples/s if a training step were nothing but its float32 matrix products (the same 11 products
    for every contender: 4 forward, 4 weight gradients, 3 input gradients), on ``device``."""
    steps = round(rows * epochs / batch)
    return steps * batch / run_gemms(torch.empty(0, device=device), batch, VAE_SHAPES, steps)


def adam_step_ms(steps: int = 300) -> float:
    """CPU milliseconds of one fused Adam update of the VAE's parameters (the cheapest optimizer step torch has)."""
    params = [torch.nn.Parameter(torch.randn(o, i) * 0.01) for i, o in VAE_SHAPES]
    params += [torch.nn.Parameter(torch.zeros(o)) for _, o in VAE_SHAPES]
    for q in params:
        q.grad = torch.randn_like(q)
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    opt.step()
    c0 = time.process_time()
    for _ in range(steps):
        opt.step()
    return (time.process_time() - c0) / steps * 1e3


def _listed(values: Sequence[Any]) -> str:
    """'128', '128 and 1024', '128, 512 and 1024'."""
    v = [str(x) for x in values]
    return v[0] if len(v) == 1 else ", ".join(v[:-1]) + " and " + v[-1]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="rotations of the contenders")
    p.add_argument("--batch-sizes", default="128",
                   help="comma-separated batch sizes, each measured for every contender (default 128; the table "
                        "gets a batch column when more than one is given)")
    p.add_argument("--device", default="cpu", help="torch device of the data and the models: cpu, cuda, cuda:1 "
                                                   "(default cpu; an accelerator's table has its own section)")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                   help="add a torch.profiler breakdown of aekit's and Pythae's training time (default: on; CPU only)")
    p.add_argument("--with-compile", action="store_true",
                   help="also aekit --compile (torch.compile; tens of seconds of compilation a batch size)")
    p.add_argument("--note", default="", help="a sentence added to the recorded text (e.g. the machine load)")
    p.add_argument("--results", default=None, help="record the table in this Markdown file instead of RESULTS.md "
                                                    "(or RESULTS-quick.md)")
    p.add_argument("--quick", action="store_true", help="1 epoch on 10,000 images, 1 repeat (recorded in RESULTS-quick.md)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type not in ("cpu", "cuda"):
        p.error(f"--device {args.device}: Pythae trains on cpu or cuda only")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            p.error(f"--device {args.device}: no CUDA device is available")
        if device.index is not None:  # Pythae trains on "cuda", the current device
            torch.cuda.set_device(device)
    accel = device.type != "cpu"
    profile = args.profile and not accel  # the profiler's CPU self times say little of a GPU's step
    batches = [int(b) for b in args.batch_sizes.split(",")]
    multi = len(batches) > 1
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    logging.getLogger("pythae").setLevel(logging.WARNING)
    splits = load_splits("fashion-mnist", val_fraction=0.0)
    train = (splits.train.x / np.float32(255.0)).astype(np.float32)
    test = (np.random.default_rng(0).random(splits.test.x.shape) < splits.test.x / 255.0).astype(np.float32)
    if args.quick:
        args.epochs, args.repeats, train = 1, 1, train[:10000]
    names = [n for n in CONTENDERS if args.with_compile or n != COMPILED]
    bound = "GEMMs alone (bound for any float32 loop)"
    wall: dict[tuple[int, str], list[float]] = defaultdict(list)
    cpu: dict[tuple[int, str], list[float]] = defaultdict(list)
    error: dict[tuple[int, str], list[float]] = defaultdict(list)
    samples = len(train) * args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        for b in batches:
            for name in names:  # warm-up: lazy imports, first allocations, kernel selection
                CONTENDERS[name](train[:1280], 1, f"{tmp}/warm", b, device)
        for r in range(args.repeats):
            for b in (batches if r % 2 == 0 else batches[::-1]):
                at = f"batch {b}: " if multi else ""
                for k in range(len(names)):
                    name = names[(r + k) % len(names)]
                    c0 = time.process_time()
                    scorers, secs = CONTENDERS[name](train, args.epochs, f"{tmp}/r{r}", b, device)
                    cpu[b, name].append(samples / (time.process_time() - c0))
                    wall[b, name].append(samples / secs)
                    error[b, name].append(recon_error(scorers, test, device=device))
                    print(f"repeat {r + 1}: {at}{name}: {wall[b, name][-1]:.0f} samples/s, {cpu[b, name][-1]:.0f} per "
                          f"CPU-second, test reconstruction {error[b, name][-1]:.2f}", flush=True)
                c0 = time.process_time()
                wall[b, bound].append(gemm_bound(len(train), args.epochs, b, device))
                cpu[b, bound].append(samples / (time.process_time() - c0))
                print(f"repeat {r + 1}: {at}{bound}: {wall[b, bound][-1]:.0f} samples/s", flush=True)
        # seed-to-seed spread of the test reconstruction of one recipe (the hand-written loop, seeds 0, 1, 2)
        seeds = {b: [error[b, names[2]][0]] + [recon_error(hand_loop(train, args.epochs, b, seed=s, device=device)[0],
                                                           test, device=device) for s in (1, 2)] for b in batches}
        # CPU ms per step of b
        step_ms = {(b, n): b / statistics.median(cpu[b, n]) * 1e3 for b in batches for n in [*names, bound]}
        adam_ms = 0.0 if accel else adam_step_ms()
        profile_text = ""
        if profile:
            b0 = batches[0]
            steps = -(-len(train) // b0)
            lines = [f"- {name}: " + profile_summary(lambda: CONTENDERS[name](train, 1, f"{tmp}/prof", b0, device),
                                                     steps) for name in names[:2]]
            profile_text = (f"\n\nWhere the training time goes. Without the profiler (CPU time): aekit "
                            f"{step_ms[b0, names[0]]:.1f} ms per step of {b0}, Pythae {step_ms[b0, names[1]]:.1f}, the "
                            f"hand-written loop {step_ms[b0, names[2]]:.1f}, the matrix products alone "
                            f"{step_ms[b0, bound]:.1f} ({step_ms[b0, bound] / step_ms[b0, names[0]]:.0%} of aekit's "
                            f"step, {step_ms[b0, bound] / step_ms[b0, names[1]]:.0%} of Pythae's). torch.profiler on a "
                            f"whole 1-epoch call ({len(train):,} images, set-up included; self time per kind of op; "
                            f"the profiler slows small ops and Python, so the matrix products' share is lower than "
                            f"without it):\n\n" + "\n".join(lines))
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    err = {k: statistics.median(v) for k, v in error.items()}
    peer, hand = names[1], names[2]
    headers = ["training", "median samples/s", "min", "max", "x Pythae", "x hand-written", "share of the GEMM bound"]
    if not accel:
        headers += ["median samples per CPU-second", "x Pythae (CPU)", "x hand-written (CPU)"]
    headers = [*(["batch"] if multi else []), *headers, "test reconstruction (nats/image)"]
    rows, verdicts = [], []
    for b in batches:
        for n in [*names, bound]:
            row = [n, *(f"{v:,.0f}" for v in (med[b, n], min(wall[b, n]), max(wall[b, n]))),
                   f"{med[b, n] / med[b, peer]:.2f}", f"{med[b, n] / med[b, hand]:.2f}",
                   "-" if n == BF16 else f"{med[b, n] / med[b, bound]:.0%}"]
            if not accel:
                row += [f"{cmed[b, n]:,.0f}", f"{cmed[b, n] / cmed[b, peer]:.2f}", f"{cmed[b, n] / cmed[b, hand]:.2f}"]
            rows.append([*([b] if multi else []), *row, f"{err[b, n]:.2f}" if (b, n) in err else "-"])
        verdicts.append((f"At batch {b}: " if multi else "") + _verdict(b, med, cmed, err, seeds[b], step_ms, adam_ms,
                                                                        accel))
    body = (table(headers, rows) + "\n\n" + " ".join(verdicts)
            + f" Pythae's default VAE MLP 784-512-16 / 16-512-784 (ReLU, Bernoulli decoder) in all three, "
              f"Adam 1e-3, batch {_listed(batches)}, {args.epochs} epochs on {len(train)} Fashion-MNIST training "
              f"images dynamically binarized, seed 0, {args.threads} torch thread(s); {args.repeats} rotations "
              f"of the contenders' order (ABCD, BCDA, ...) after one warm-up call each"
              + (" at each batch size, the batch sizes in alternating order" if multi else "")
              + "; a measurement is one whole training call. "
              + (f"Data and models on {device}, each clock read after torch.cuda.synchronize() (Pythae with "
                 f"no_cuda=False); host-side CPU time is not reported. " if accel else "")
              + "Reconstruction: mean per-image summed Bernoulli cross-entropy of the decoded posterior mean on the "
              f"10,000 test images binarized once (seed 0). Pythae {_pythae_version()} from PyPI. "
              + (device_note(device) + " " if accel else "")
              + f"{load_note(load0)} {args.note}"
            + (f"\n\n{ANALYSIS}" if profile else "") + profile_text)
    if accel:
        name = f"vae_throughput_{device.type}"
        title = (f"Fashion-MNIST VAE training throughput on the GPU ({torch.cuda.get_device_name(device)}): "
                 f"aekit vs Pythae vs a hand-written loop")
    else:
        name = f"vae_throughput_t{args.threads}"
        title = (f"Fashion-MNIST VAE training throughput ({args.threads} thread(s)): "
                 f"aekit vs Pythae vs a hand-written loop")
    publish(name, title, body, quick=args.quick, results=Path(args.results) if args.results else None)

    def keyed(d: dict[tuple[int, str], float]) -> dict[str, float]:
        return {(f"{b} {n}" if multi else n): v for (b, n), v in d.items()}
    return {"samples_per_second": keyed(med), "per_cpu_second": keyed(cmed), "recon": keyed(err)}


def _verdict(b: int, med: dict[tuple[int, str], float], cmed: dict[tuple[int, str], float],
             err: dict[tuple[int, str], float], seeds: list[float], step_ms: dict[tuple[int, str], float],
             adam_ms: float, accel: bool) -> str:
    """The sentences on the targets at batch ``b`` (CPU-time figures left out on an accelerator)."""
    ours, peer, hand, bf16, fused = CONTENDERS
    bound = "GEMMs alone (bound for any float32 loop)"
    vs_peer, vs_hand = med[b, ours] / med[b, peer], med[b, ours] / med[b, hand]
    spread = max(seeds) - min(seeds)
    gap = err[b, ours] - min(err[b, peer], err[b, hand])
    recon_ok = gap <= spread
    return (f"Wall clock: aekit / Pythae **{vs_peer:.2f}x** (target >= 2x: {'met' if vs_peer >= 2 else 'MISSED'}); "
            f"aekit / hand-written loop **{vs_hand:.2f}x** (target >= 1.0x: {'met' if vs_hand >= 1 else 'MISSED'}). "
            + ("" if accel else
               f"CPU time of the process, less disturbed by the other jobs on the shared cores: "
               f"{cmed[b, ours] / cmed[b, peer]:.2f}x Pythae, {cmed[b, ours] / cmed[b, hand]:.2f}x the hand-written "
               f"loop. ")
            + f"Reconstruction: aekit {err[b, ours]:.2f}, Pythae {err[b, peer]:.2f}, hand-written {err[b, hand]:.2f} "
            f"nats; aekit is {gap:+.2f} nats from the best of the other two, against a seed-to-seed spread of "
            f"{spread:.2f} nats of one recipe (the hand-written loop with seeds 0, 1, 2: "
            f"{', '.join(f'{v:.2f}' for v in seeds)}): {'equal or better' if recon_ok else 'WORSE'}. "
            f"With the opt-in bfloat16 mixed precision aekit reaches {med[b, bf16] / med[b, peer]:.2f}x Pythae "
            + ("" if accel else f"({cmed[b, bf16] / cmed[b, peer]:.2f}x in CPU time) ")
            + f"at {err[b, bf16]:.2f} nats. "
            + (f"With the opt-in --compile (float32, torch.compile of the forward pass and loss) "
               f"{med[b, fused] / med[b, peer]:.2f}x Pythae, {med[b, fused] / med[b, bound]:.0%} of the GEMM bound, "
               f"at {err[b, fused]:.2f} nats. " if (b, fused) in med else "")
            + "The last row times only the step's 11 float32 matrix products (4 forward, 4 weight gradients, "
            f"3 input gradients), the same for the three float32 loops: {med[b, bound] / med[b, peer]:.2f}x Pythae "
            + ("" if accel else f"({cmed[b, bound] / cmed[b, peer]:.2f}x in CPU time) ")
            + "is the most any float32 loop could reach here."
            + ("" if accel else
               f" For 2x Pythae a step of {b} would have to take at most {step_ms[b, peer] / 2:.2f} ms (CPU time); "
               f"the matrix products alone take {step_ms[b, bound]:.2f} ms, leaving "
               f"{step_ms[b, peer] / 2 - step_ms[b, bound]:.2f} ms for everything else: the loss and the activations' "
               f"gradients, the optimizer update (the fused Adam update alone takes {adam_ms:.2f} ms, cache-warm), the "
               f"binarization draws, the batch gather and the Python of some hundred operator calls."))


if __name__ == "__main__":
    main()
