"""Training on data larger than memory: peak resident memory and throughput of ``stream=True``.

A synthetic data set (rows of 784 values in [0, 1], a smooth function of 16 hidden factors) is
written as one float32 ``.npy`` file of at least 4 GB under /tmp (deleted afterwards). Each
measurement is a fresh process that trains a 784-256-32 autoencoder for one epoch with
``aekit.fit`` and reports its peak resident set size (``getrusage``, which counts mapped file
pages, not the page cache) and the training loop's samples/s:

- the whole file streamed (``stream=True``; its pages dropped from the page cache first, so the
  epoch reads from disk); target: peak RSS under 1.5 GB;
- a subset that fits in memory, trained from memory and streamed, alternately (ABAB); target:
  streamed samples/s at least 80% of in-memory.

    python -m benchmarks.streaming [--gb 4.2] [--subset-rows 200000] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import publish, table

FEATURES = 784
FACTORS = 16
CHUNK_ROWS = 50_000
FIT = dict(hidden=[256], latent=32, epochs=1, batch_size=256, lr=1e-3, seed=0)
RSS_TARGET_MB = 1536
SPEED_TARGET = 0.8

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
import aekit
a = json.loads(sys.argv[1])
t0 = time.perf_counter()
m = aekit.fit("ae", a["path"], stream=a["stream"], progress=False, figures=False, **a["fit"])
wall = time.perf_counter() - t0
h = m.history[-1]
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "samples_per_second": h["samples_per_second"], "epoch_seconds": h["seconds"], "wall": wall,
                  "train_loss": h["train_loss"], "val_loss": h.get("val_loss")}))
"""


def write_npy(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` synthetic rows, written a chunk at a time (never whole in memory)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (FACTORS, FEATURES)).astype(np.float32)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (rows, FEATURES)})
        for start in range(0, rows, CHUNK_ROWS):
            z = rng.standard_normal((min(CHUNK_ROWS, rows - start), FACTORS), dtype=np.float32)
            (1 / (1 + np.exp(-(z @ w)))).astype(np.float32).tofile(f)


def drop_from_page_cache(path: Path) -> None:
    """Ask the kernel to forget the file's cached pages, so that the next read is from disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def measure(path: Path, stream: bool, threads: int, fit: dict) -> dict:
    """Train in a fresh process and return its report."""
    args = json.dumps({"path": str(path), "stream": stream, "fit": fit})
    proc = subprocess.run([sys.executable, "-c", CHILD, args, str(threads)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if proc.returncode:
        raise RuntimeError(f"the training process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=4.2, help="size of the on-disk data set in GB (10^9 bytes)")
    p.add_argument("--subset-rows", type=int, default=200_000, help="rows of the in-memory comparison")
    p.add_argument("--repeats", type=int, default=3, help="runs of each path on the subset (alternately)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each training process")
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where the data files are written (and deleted)")
    p.add_argument("--quick", action="store_true", help="0.3 GB and 30,000 subset rows; RESULTS-quick.md")
    args = p.parse_args(argv)
    if args.quick:
        args.gb, args.subset_rows, args.repeats = 0.3, 30_000, 1
    rows = int(np.ceil(args.gb * 1e9 / (4 * FEATURES)))
    need = (rows + args.subset_rows) * 4 * FEATURES
    free = shutil.disk_usage(args.dir).free
    if free < need * 1.1:
        sys.exit(f"streaming benchmark: {args.dir} has {free / 1e9:.1f} GB free, {need * 1.1 / 1e9:.1f} GB needed")
    folder = Path(tempfile.mkdtemp(prefix="aekit-stream-", dir=args.dir))
    big, small = folder / "big.npy", folder / "subset.npy"
    try:
        t0 = time.perf_counter()
        write_npy(big, rows)
        write_npy(small, args.subset_rows, seed=1)
        print(f"wrote {big.stat().st_size / 1e9:.2f} GB ({rows} rows) and {small.stat().st_size / 1e9:.2f} GB "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)
        subset: dict[str, list[dict]] = {"memory": [], "stream": []}
        for _ in range(args.repeats):
            for name in ("memory", "stream"):
                subset[name].append(measure(small, name == "stream", args.threads, FIT))
                print(name, subset[name][-1], flush=True)
        drop_from_page_cache(big)
        whole = measure(big, True, args.threads, FIT)
        print("whole file, streamed:", whole, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    speed = med(subset["stream"], "samples_per_second") / med(subset["memory"], "samples_per_second")
    window = (256 << 20) // (3 * 4 * FEATURES)
    size_gb = rows * 4 * FEATURES / 1e9
    sub_gb = args.subset_rows * 4 * FEATURES / 1e9
    body = table(
        ["data", "path", "peak RSS (MB)", "train samples/s", "epoch (s)", "end to end (s)", "train loss"],
        [[f"{size_gb:.2f} GB on disk ({rows:,} rows)", "streamed (cold page cache)", round(whole["rss_mb"]),
          round(whole["samples_per_second"]), whole["epoch_seconds"], whole["wall"], whole["train_loss"]],
         *[[f"{sub_gb:.2f} GB subset ({args.subset_rows:,} rows)", name, round(med(runs, "rss_mb")),
            round(med(runs, "samples_per_second")), med(runs, "epoch_seconds"), med(runs, "wall"),
            med(runs, "train_loss")] for name, runs in (("in memory", subset["memory"]),
                                                         ("streamed", subset["stream"]))]])
    verdict = (f"Peak RSS streaming {size_gb:.2f} GB: {whole['rss_mb']:.0f} MB (target < {RSS_TARGET_MB} MB: "
               f"{'met' if whole['rss_mb'] < RSS_TARGET_MB else 'NOT met'}). Streamed throughput on the subset: "
               f"{speed:.0%} of in-memory (target >= {SPEED_TARGET:.0%}: {'met' if speed >= SPEED_TARGET else 'NOT met'}).")
    notes = (f"One epoch of a 784-256-32 autoencoder (batch {FIT['batch_size']}, Adam, {args.threads} thread(s)), "
             f"default splits (70% train, 10% validation, 20% test) and `unit` scaling, each run a fresh process; "
             f"streamed with the default buffer (`--buffer-mb 256`: windows of {window:,} rows, the next one read "
             f"ahead in a thread). \"train samples/s\" "
             f"is the training loop (history.json); \"end to end\" adds loading or the scaling pass, validation and "
             f"start-up. Subset figures: median of {args.repeats} alternating runs.")
    publish("streaming", "Streaming data larger than memory", f"{body}\n\n{verdict}\n\n{notes}", quick=args.quick)
    return {"whole": whole, "subset": subset, "speed_ratio": speed}


if __name__ == "__main__":
    main()
