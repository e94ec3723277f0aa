"""Start-up: how long the commands that compute nothing take, against importing torch.

``aekit --help``, ``aekit train vae --help``, ``aekit variants``, ``aekit info RUN`` and an argument
error should answer in well under a second: they import neither torch nor scikit-learn, matplotlib
or pandas (tests/test_cli_errors.py checks the imports). Each command runs as a fresh process,
the commands interleaved round by round; the table gives the median wall time and its ratio to
``python -c "import torch"``, which every command paid before.

    python -m benchmarks.startup [--repeats 9] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from .common import load_note, machine, publish, table


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--quick", action="store_true", help="3 rounds, recorded in RESULTS-quick.md")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    load = os.getloadavg()[0]
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        run = f"{tmp}/run"
        subprocess.run([py, "-m", "aekit", "train", "ae", "--hidden", "16", "--latent", "4", "--epochs", "1",
                        "--quiet", "--out", run], check=True, stdout=subprocess.DEVNULL)
        commands = {
            'python -c "pass"': [py, "-c", "pass"],
            'python -c "import torch"': [py, "-c", "import torch"],
            "aekit --help": [py, "-m", "aekit", "--help"],
            "aekit train vae --help": [py, "-m", "aekit", "train", "vae", "--help"],
            "aekit variants": [py, "-m", "aekit", "variants"],
            "aekit info RUN": [py, "-m", "aekit", "info", run],
            "aekit train ae --nope (argument error)": [py, "-m", "aekit", "train", "ae", "--nope"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(repeats):
            for name, cmd in commands.items():
                times[name].append(_time(cmd))
    torch_s = statistics.median(times['python -c "import torch"'])
    rows = [[name, f"{statistics.median(t):.3f}", f"{min(t):.3f}", f"{statistics.median(t) / torch_s:.2f}"]
            for name, t in times.items()]
    body = (f"Machine: {machine()}. {repeats} rounds, each command a fresh process (`python -m aekit ...`), "
            f"interleaved. {load_note(load)}\n\n"
            + table(["command", "median s", "min s", "x import torch"], rows))
    publish("startup", "Start-up of the commands that compute nothing", body, save=not args.no_record,
            quick=args.quick)


if __name__ == "__main__":
    main()
