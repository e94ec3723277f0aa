"""Encoding throughput and memory: codes per second of ``Autoencoder.encode_array`` and the peak
memory of encoding 100,000 vs 1,000,000 rows.

The input is synthetic 784-feature float32 data (uniform pixel values in [0, 255]) written to a
``np.memmap`` file in a temporary folder, so that it is file-backed: its pages are page cache, not
the process's own memory. The model is the 784-1000-500-250-30 autoencoder of
:mod:`benchmarks.throughput` with a per-feature ("standard") transform fitted on the first 10,000
rows, so that ``encode_array`` does what it does for a trained run: check the rows, convert them,
apply the transform, run the encoder in inference mode in batches.

Each measurement runs in a fresh child process (after one warm-up batch): wall time of
``encode_array``, and the peak of the process's anonymous resident memory (``RssAnon`` in
``/proc/self/status``, sampled every 2 ms) above its level just before the call. The output
array itself must be held; the target is that the peak beyond it does not grow with the number
of rows. The codes of the first rows (as many as the smaller run has) are hashed to show that all runs give the
same codes.

    python -m benchmarks.encoding [--threads 1] [--rows 1000000] [--batch-sizes 4096,16384] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

D = 784
#: The same measurement with the method before this benchmark's fix, recorded with the table.
BEFORE = ("Before the fix (encode_array converted, checked and transformed the whole input at once, then "
          "concatenated the batches' codes), the same measurement gave 598 MiB of peak extra memory for 100,000 rows "
          "and 5,978 MiB for 1,000,000 rows: full-size float32 copies of the input from the transform, growing with "
          "the rows (measured once, 2026-11-22, with the old method restored in a separate script).")
SIZES = (784, 1000, 500, 250, 30)
FIT_ROWS = 10_000


def anon_rss() -> int:
    """Anonymous resident memory of this process in bytes (heap, numpy and torch buffers; not mapped files)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


class PeakSampler:
    """Samples :func:`anon_rss` in a thread; ``peak`` is the highest value seen."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak = interval, anon_rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, anon_rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anon_rss())


def write_data(path: Path, rows: int, chunk: int = 50_000) -> None:
    """``rows`` x 784 float32 pixel-like values in a memory-mapped file, written chunk by chunk."""
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, D))
    for i in range(0, rows, chunk):
        n = min(chunk, rows - i)
        mm[i:i + n] = rng.random((n, D), dtype=np.float32) * np.float32(255.0)
    mm.flush()
    del mm


def make_model(X: np.ndarray) -> Any:
    import torch

    from aekit import Autoencoder, ModelConfig
    from aekit.data import Transform
    torch.manual_seed(0)
    return Autoencoder(ModelConfig(input_dim=D, hidden=SIZES[1:-1], latent=SIZES[-1]),
                       Transform.fit("standard", np.asarray(X[:FIT_ROWS]))).eval()


def child(path: str, rows: int, batch: int, hash_rows: int, threads: int) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    import torch
    torch.set_num_threads(threads)
    X = np.load(path, mmap_mode="r")[:rows]
    model = make_model(X)
    model.encode_array(X[:batch], batch_size=batch)  # warm-up: kernels, allocator
    base = anon_rss()
    with PeakSampler() as s:
        t0 = time.perf_counter()
        codes = model.encode_array(X, batch_size=batch)
        seconds = time.perf_counter() - t0
    return {"rows": rows, "batch": batch, "seconds": seconds, "codes_per_s": rows / seconds,
            "peak_extra": s.peak - base, "output": codes.nbytes, "shape": list(codes.shape),
            "hash": hashlib.sha256(np.ascontiguousarray(codes[:hash_rows]).tobytes()).hexdigest()[:12],
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--small", type=int, default=100_000, help="the smaller run's rows")
    p.add_argument("--batch-sizes", default="4096,16384", help="encode_array batch sizes (the first: the default)")
    p.add_argument("--dir", default=tempfile.gettempdir(), help="folder of the temporary memory-mapped input")
    p.add_argument("--note", default="", help="a sentence added to the recorded text")
    p.add_argument("--quick", action="store_true", help="200,000 vs 20,000 rows (recorded in RESULTS-quick.md)")
    p.add_argument("--child", nargs=4, metavar=("PATH", "ROWS", "BATCH", "HASH_ROWS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], *map(int, args.child[1:]), args.threads)))
        return {}
    if args.quick:
        args.rows, args.small = 200_000, 20_000
    load0 = os.getloadavg()[0]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    plan = [(args.small, batches[0]), (args.rows, batches[0])] + [(args.rows, b) for b in batches[1:]]
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="aekit-encoding-") as tmp:
        path = Path(tmp) / "x.npy"
        t0 = time.perf_counter()
        write_data(path, args.rows)
        print(f"wrote {args.rows} x {D} float32 rows ({path.stat().st_size / 2**30:.2f} GiB) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        for rows, batch in plan:
            cmd = [sys.executable, "-m", "benchmarks.encoding", "--threads", str(args.threads),
                   "--child", str(path), str(rows), str(batch), str(args.small)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env,
                                 cwd=Path(__file__).resolve().parent.parent)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(f"{rows} rows, batch {batch}: {r['codes_per_s']:.0f} codes/s, peak extra "
                  f"{r['peak_extra'] / 2**20:.0f} MiB, output {r['output'] / 2**20:.0f} MiB", flush=True)
    from .common import load_note, publish, table
    mib = 2 ** 20
    rows_t = [[f"{r['rows']:,}", r["batch"], f"{r['seconds']:.1f}", f"{r['codes_per_s']:,.0f}",
               f"{r['output'] / mib:.1f}", f"{r['peak_extra'] / mib:.1f}", f"{(r['peak_extra'] - r['output']) / mib:.1f}",
               r["hash"]] for r in results]
    small, large = results[0], results[1]
    beyond_small = small["peak_extra"] - small["output"]
    beyond_large = large["peak_extra"] - large["output"]
    flat = beyond_large <= beyond_small + 32 * mib
    same = len({r["hash"] for r in results}) == 1
    body = (table(["rows", "batch", "seconds", "codes/s", "output array (MiB)", "peak extra memory (MiB)",
                   "beyond the output (MiB)", "first codes' hash"], rows_t)
            + f"\n\nMemory beyond the output array: {beyond_small / mib:.0f} MiB for {small['rows']:,} rows, "
              f"{beyond_large / mib:.0f} MiB for {large['rows']:,} rows (target: flat, i.e. no more than 32 MiB "
              f"above the smaller run: {'met' if flat else 'MISSED'}); the codes of the first {small['rows']:,} rows are "
              f"{'identical in every run' if same else 'NOT identical across runs'}. `Autoencoder.encode_array` "
              f"of the 784-1000-500-250-30 autoencoder (per-feature standardization fitted on {FIT_ROWS:,} rows), "
              f"inference mode, {args.threads} torch thread(s), on synthetic float32 rows memory-mapped from a "
              f"{args.rows * D * 4 / 2**30:.2f} GiB file (file pages are not the process's anonymous memory). "
              f"Peak extra memory: highest anonymous resident memory (RssAnon, sampled every 2 ms) during the "
              f"call, above the level just before it, each run in a fresh process. {load_note(load0)} {args.note}\n\n{BEFORE}")
    publish(f"encoding_t{args.threads}", f"Encoding throughput and memory ({args.threads} thread(s))", body,
            quick=args.quick)
    return {"results": results}


if __name__ == "__main__":
    main()
