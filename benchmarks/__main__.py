"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only a,b] [--list]``.

Each benchmark runs in its own process (``python -m benchmarks.NAME``), one after another, so
that thread settings and memory do not leak from one to the next. A full run rewrites its
sections of benchmarks/RESULTS.md (date, machine, command); ``--quick`` passes ``--quick`` to
every script, which then runs a reduced version and records it in benchmarks/RESULTS-quick.md
instead (``make bench-quick``: under 10 minutes on 2 cores). A summary table of the runs ends
the output; the exit status is 1 when any benchmark failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from .common import table

#: The suite in running order: throughput and efficiency first, then quality against peers.
BENCHMARKS = (
    "startup", "throughput", "vae_throughput", "flops", "compile_step", "encoding",
    "defaults", "ae_vs_pca", "denoising", "linear_probe", "vae_likelihood", "disentanglement", "tc_estimator",
    "rbm", "pretraining", "search", "compression", "codecs", "anomaly", "odds", "streaming",
)


def available() -> list[str]:
    here = Path(__file__).parent
    return [name for name in BENCHMARKS if (here / f"{name}.py").exists()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="reduced runs, recorded in RESULTS-quick.md")
    p.add_argument("--only", default=None, help="comma-separated benchmark names (default: all)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args(argv)
    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        chosen = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
        names = [n for n in names if n in chosen]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    root = Path(__file__).resolve().parent.parent
    rows = []
    for name in names:
        cmd = [sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if args.quick else [])]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=root, env=env)
        rows.append([name, f"{time.perf_counter() - t0:.0f} s", "ok" if rc == 0 else f"FAILED (exit {rc})"])
    print("\n" + table(["benchmark", "wall time", "status"], rows))
    results = "RESULTS-quick.md" if args.quick else "RESULTS.md"
    print(f"tables recorded in benchmarks/{results}")
    return 1 if any(r[2] != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
