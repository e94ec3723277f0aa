"""``aekit train ae --data X --latent k`` with no other option, against PCA with k components.

The command a user types first, run as a user runs it (a fresh process: start-up, reading,
training, figures), then ``aekit evaluate`` on the run's test split: the autoencoder's per-example
squared error over PCA-k's, fitted on the same training rows (``ratio_to_pca``). Two data sets:
scikit-learn's digits (1,797 rows of 64 pixels, k = 8) and a 5,000-row sample of Fashion-MNIST's
training images (784 pixels, k = 30; rows drawn with seed 0, written as a .npy file as a user's own
data would be). Target: ratio_to_pca <= 0.75 on both; on the Fashion-MNIST table the whole command
takes at most 1.5 times its training time.

    python -m benchmarks.defaults [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import publish, table

TARGET = 0.75
#: the whole ``aekit train`` command over its training time, at most (small data)
OVERHEAD = 1.5


def _aekit(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "aekit", *args],
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def run(name: str, data: str, latent: int, tmp: Path, extra: tuple[str, ...] = ()) -> list:
    out = tmp / name
    wall = _aekit("train", "ae", "--data", data, "--latent", str(latent), "--out", str(out), "--quiet", *extra)
    _aekit("evaluate", str(out), "-o", str(out / "evaluation.json"))
    ev = json.loads((out / "evaluation.json").read_text())
    history = json.loads((out / "history.json").read_text())
    config = json.loads((out / "config.json").read_text())
    train_s = sum(r["seconds"] for r in history)
    ratio = ev["ratio_to_pca"]
    return [
        name,
        latent,
        ",".join(map(str, config["model"]["hidden"])),
        len(history),
        f"{ratio:.3f}",
        "yes" if ratio <= TARGET else "no",
        f"{train_s:.0f} s",
        f"{wall:.0f} s",
        f"{wall / train_s:.2f}",
    ]


def main(argv: list[str] | None = None) -> list:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="at most 5 epochs (reduced run, RESULTS-quick.md)")
    args = p.parse_args(argv)
    extra = ("--epochs", "5") if args.quick else ()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows.append(run("digits", "digits", 8, tmp, extra))
        from aekit.data.builtin import load_builtin

        train, _ = load_builtin("fashion-mnist")
        idx = np.random.default_rng(0).choice(len(train.x), 5000, replace=False)
        np.save(tmp / "fashion5000.npy", np.asarray(train.x[idx], dtype=np.float32))
        rows.append(run("Fashion-MNIST, 5,000 rows", str(tmp / "fashion5000.npy"), 30, tmp, extra))
    body = (
        table(
            ["data", "k", "hidden (default)", "epochs run", "x PCA-k test error",
             f"<= {TARGET}", "training", "whole command", "command / training"],
            rows,
        )
        + "\n\n`aekit train ae --data DATA --latent k` and nothing else, one process per command, one torch "
        "thread. The epochs run are those until early stopping on the validation loss (the default "
        "--patience) within the default --epochs maximum; the weights of the best validation epoch are kept. "
        "'x PCA-k test error' is `aekit evaluate`'s ratio_to_pca on the run's test rows. The defaults measured: "
        "one hidden layer of 512, `--loss auto` (cross-entropy here: the unit-scaled rows lie in [0, 1]), at most "
        "300 epochs, `--patience 20`. 'command / training': the wall time of the `aekit train` process over "
        "the seconds its history records for the epochs (the rest is start-up, reading, checkpoints, figures; "
        f"target for the Fashion-MNIST table <= {OVERHEAD})."
    )
    publish("defaults", "Default settings against PCA", body, quick=args.quick)
    return rows


if __name__ == "__main__":
    main()
