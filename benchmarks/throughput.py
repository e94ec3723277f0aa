"""Training throughput of aekit's Trainer against a minimal hand-written PyTorch loop.

Same model (784-1000-500-250-30 MLP autoencoder, ReLU, squared-error loss), same data
(Fashion-MNIST training images in [0, 1], or random data with --synthetic), same batch
size, same number of epochs, measured alternately in one process (ABAB...) so that both
see the same machine state. Target: aekit at least 1.0x the hand-written loop.

    python -m benchmarks.throughput [--epochs 1] [--repeats 3] [--batch-size 128] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from aekit import Autoencoder, ModelConfig, TrainConfig, Trainer, load_data

from .common import publish, table


def make_model(seed: int = 0) -> Autoencoder:
    torch.manual_seed(seed)
    return Autoencoder(ModelConfig(input_dim=784, hidden=(1000, 500, 250), latent=30))


def hand_loop(x: torch.Tensor, epochs: int, batch: int, lr: float) -> float:
    """The loop a PyTorch user writes by hand: shuffle, slice, forward, backward, Adam step."""
    model = make_model()
    enc, dec = model.encoder, model.decoder
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            xb = x[perm[i:i + batch]]
            loss = (dec(enc(xb)) - xb).pow(2).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return len(x) * epochs / (time.perf_counter() - t0)


def aekit_loop(x: torch.Tensor, epochs: int, batch: int, lr: float, run_dir: str | None = None) -> float:
    model = make_model()
    cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=lr)
    t0 = time.perf_counter()
    Trainer(model, cfg, run_dir=run_dir, progress=False).fit(x)
    return len(x) * epochs / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--synthetic", action="store_true", help="random data instead of Fashion-MNIST")
    p.add_argument("--no-record", action="store_true", help="print the table only, record nothing")
    p.add_argument("--quick", action="store_true", help="10,000 rows, 2 repeats (recorded in RESULTS-quick.md)")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.repeats = min(args.rows, 10000), 2
    if args.synthetic:
        x = torch.rand(args.rows, 784)
    else:
        x = torch.from_numpy(load_data("fashion-mnist").x[:args.rows] / np.float32(255.0))
    runs: dict[str, list[float]] = {"hand-written loop": [], "aekit Trainer": [],
                                    "aekit Trainer + run directory (checkpoint, history)": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            runs["hand-written loop"].append(hand_loop(x, args.epochs, args.batch_size, 1e-3))
            runs["aekit Trainer"].append(aekit_loop(x, args.epochs, args.batch_size, 1e-3))
            runs["aekit Trainer + run directory (checkpoint, history)"].append(
                aekit_loop(x, args.epochs, args.batch_size, 1e-3, run_dir=f"{tmp}/r{r}"))
    base = statistics.median(runs["hand-written loop"])
    rows = [[name, statistics.median(v), min(v), max(v), statistics.median(v) / base] for name, v in runs.items()]
    body = (table(["loop", "median samples/s", "min", "max", "ratio to hand-written"], rows)
            + f"\n\n{len(x)} rows of {'random data' if args.synthetic else 'Fashion-MNIST'}, batch "
              f"{args.batch_size}, {args.epochs} epoch(s) per measurement, {args.repeats} alternating repeats, "
              f"784-1000-500-250-30 MLP, Adam lr 1e-3. Target: aekit Trainer >= 1.0x the hand-written loop "
              f"({'met' if rows[1][4] >= 1.0 else 'MISSED'}: {rows[1][4]:.3f}x).")
    publish(f"throughput_b{args.batch_size}", f"Training throughput, batch {args.batch_size}: aekit Trainer vs a "
            f"hand-written loop", body, save=not args.no_record, quick=args.quick)
    return {name: statistics.median(v) for name, v in runs.items()}


if __name__ == "__main__":
    main()
