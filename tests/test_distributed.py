"""Data-parallel training (aekit.distributed): two CPU processes (gloo) on this machine, with a
global batch of B rows, end where one process with batch B ends; only rank 0 writes the run
directory; an interrupted distributed run resumes exactly."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit import distributed
from aekit.distributed import DataParallel, strip_option
from aekit.train import read_checkpoint
from helpers import run_cli

# digits' 1258 training rows in batches of 65: 19 full ones and a last one of 23 rows (12 + 11)
ARGS = dict(hidden=(32,), latent=4, epochs=2, batch_size=65, seed=3, lr=3e-3)
FLAGS = ["--hidden", "32", "--latent", "4", "--epochs", "2", "--batch-size", "65", "--seed", "3", "--lr", "3e-3",
         "--quiet"]
INTERRUPT_STEP = 7

# Installed in every child process: logs each file-system change under AEKIT_AUDIT_ROOT with the
# process's RANK, so that the test can tell which processes wrote into the run directories.
AUDIT = '''
import os, sys
_root, _log, _busy = os.environ.get("AEKIT_AUDIT_ROOT"), os.environ.get("AEKIT_AUDIT_LOG"), [False]
_EVENTS = {"os.rename": 2, "os.remove": 1, "os.mkdir": 1, "os.rmdir": 1, "shutil.rmtree": 1, "os.link": 2,
           "os.symlink": 2, "os.truncate": 1}
def _hook(event, args):
    if _busy[0]:
        return
    if event == "open":
        path, mode, flags = args[:3]
        writes = any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        paths = [path] if writes else []
    else:
        paths = list(args[:_EVENTS.get(event, 0)])
    for p in paths:
        try:
            p = os.path.abspath(os.fsdecode(p))
        except TypeError:
            continue
        if p.startswith(_root):
            _busy[0] = True
            try:
                with open(_log, "a") as f:
                    f.write(os.environ.get("RANK", "launcher") + " " + event + " " + p + "\\n")
            finally:
                _busy[0] = False
if _root and _log:
    sys.addaudithook(_hook)
'''

INTERRUPTED = '''
import sys
import aekit
from aekit import distributed
from aekit.train import Callback, Interrupted

class InterruptAt(Callback):
    def on_step_end(self, trainer, step, losses):
        if step == {step}:
            trainer.interrupt()

distributed.init_from_env()
callbacks = [InterruptAt()] if distributed.rank() == 1 else []  # one process only: all must stop
try:
    aekit.fit("ae", sys.argv[2], out=sys.argv[1], progress=False, figures=False, callbacks=callbacks, **{args})
except Interrupted:
    sys.exit(130)
'''


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _child_env(tmp_path):
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(AUDIT)
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    env.update(PYTHONPATH=os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])]),
               AEKIT_AUDIT_ROOT=str(tmp_path / "runs"), AEKIT_AUDIT_LOG=str(tmp_path / "audit.log"),
               OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return env


def _run(argv, env, cwd):
    proc = subprocess.run([sys.executable, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """One process; two processes in one go (aekit train --nproc 2); two processes under
    torchrun interrupted at step 7 by one of them, then resumed with aekit train --nproc 2."""
    tmp = tmp_path_factory.mktemp("distributed")
    (tmp / "runs").mkdir()
    env = _child_env(tmp)
    data = tmp / "digits.npy"  # digits, without scikit-learn's import time in every process
    np.save(data, aekit.load_data("digits").x)
    single = aekit.fit("ae", str(data), out=tmp / "runs" / "single", progress=False, figures=False, **ARGS)
    code, log = _run(["-m", "aekit", "train", "ae", "--nproc", "2", "--data", str(data), "--out", "runs/dist",
                      *FLAGS], env, tmp)
    assert code == 0, log
    script = tmp / "interrupted.py"
    script.write_text(textwrap.dedent(INTERRUPTED).format(step=INTERRUPT_STEP, args=repr(ARGS)))
    code, log = _run(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
                      str(tmp / "runs" / "resumed"), str(data)], env, tmp)
    assert code != 0, log
    interrupted = read_checkpoint(tmp / "runs" / "resumed" / "checkpoint.safetensors")[1]
    code, log = _run(["-m", "aekit", "train", "ae", "--nproc", "2", "--out", "runs/resumed", "--resume", "--quiet"],
                     env, tmp)
    assert code == 0, log
    return {"tmp": tmp, "single": single, "interrupted": interrupted,
            "audit": (tmp / "audit.log").read_text().splitlines()}


def test_two_processes_end_where_one_process_with_the_global_batch_ends(runs):
    single = {k: v for k, v in runs["single"].state_dict().items()}
    dist = runs["tmp"] / "runs" / "dist"
    assert _max_diff(single, _weights(dist)) < 1e-5
    hist = json.loads((dist / "history.json").read_text())
    assert [h["step"] for h in hist] == [20, 40]  # ceil(1258 / 65) global steps per epoch, not per process
    for h, s in zip(hist, runs["single"].history):  # logged losses: means over all processes' rows
        assert h["train_loss"] == pytest.approx(s["train_loss"], rel=1e-5)
        assert h["val_loss"] == pytest.approx(s["val_loss"], rel=1e-5)
    cfg = json.loads((dist / "config.json").read_text())
    assert cfg["distributed"] == {"processes": 2, "backend": "gloo"} and cfg["train"]["batch_size"] == 65


def test_an_interrupted_distributed_run_resumes_exactly(runs):
    meta = runs["interrupted"]
    assert (meta["epoch"], meta["step_in_epoch"]) == (0, INTERRUPT_STEP)  # both stopped after rank 1's step 7
    assert meta["epoch_count"] == INTERRUPT_STEP * 65  # rank 0 checkpointed the rows of both processes
    resumed, dist = runs["tmp"] / "runs" / "resumed", runs["tmp"] / "runs" / "dist"
    a, b = _weights(resumed), _weights(dist)
    assert all(torch.equal(a[k], b[k]) for k in a)
    h1, h2 = (json.loads((d / "history.json").read_text()) for d in (resumed, dist))
    assert [h["train_loss"] for h in h1] == pytest.approx([h["train_loss"] for h in h2], rel=1e-9)


def test_only_rank_0_writes_the_run_directory(runs):
    writers = {line.split()[0] for line in runs["audit"]}
    assert writers == {"0"}, runs["audit"]
    written = {os.path.basename(line.split()[2]) for line in runs["audit"]}
    assert {"config.json", "model.safetensors", "checkpoint.safetensors", "history.json"} <= written
    for name in ("dist", "resumed"):
        run = runs["tmp"] / "runs" / name
        assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


# -- the arithmetic of sharding, without processes ------------------------------------------------
def _replica(rank, world):
    dp = DataParallel(torch.device("cpu"))
    dp.active, dp.rank, dp.world, dp.is_main = True, rank, world, rank == 0
    return dp


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("size", [65, 23, 2, 1])
def test_shards_split_each_global_batch_and_average_to_its_mean(world, size):
    batch = torch.randperm(100)[:size]
    loss = torch.rand(100, dtype=torch.float64)  # a per-row loss; each process minimises its mean
    parts, averaged = [], 0.0
    for r in range(world):
        dp = _replica(r, world)
        rows, n = dp.shard(batch)
        assert len(rows) >= 1 and n in (len(rows), 0)
        if n:
            parts.append(rows)
        averaged += dp.loss_weight(n, size) * float(loss[rows].mean()) / world  # DDP averages the gradients
    assert torch.equal(torch.cat(parts), batch)  # each row once, in order
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert averaged == pytest.approx(float(loss[batch].mean()), rel=1e-12)


def test_one_process_is_untouched():
    dp = DataParallel(torch.device("cpu"))
    model = torch.nn.Linear(2, 2)
    batch = torch.arange(5)
    rows, n = dp.shard(batch)
    assert not dp.active and dp.wrap(model) is model and rows is batch and n == 5
    assert dp.any(True, False) == (True, False) and dp.broadcast("x") == "x"
    assert distributed.on_main(lambda: 3) == 3 and distributed.is_main() and distributed.world_size() == 1


def test_other_processes_draw_their_own_reproducible_noise():
    draws = []
    for rank, step in ((1, 5), (2, 5), (1, 6), (1, 5)):
        _replica(rank, 3).seed_step(0, step)
        draws.append(torch.rand(3))
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert torch.equal(draws[0], draws[3])


def test_strip_option():
    assert strip_option(["train", "ae", "--nproc", "2", "--epochs", "3"], "--nproc") == ["train", "ae", "--epochs", "3"]
    assert strip_option(["train", "ae", "--nproc=4", "--out", "x"], "--nproc") == ["train", "ae", "--out", "x"]
    assert strip_option(["train", "ae", "--npro", "2"], "--nproc") == ["train", "ae"]


def test_nproc_mistakes_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["train", "ae", "--nproc", "0", "--out", "x"]) == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_cli(["train", "ae", "--nproc", "2", "--out", "x"]) == 2
    assert "torchrun" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_env_without_the_rendezvous_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for var in ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(distributed.DistributedError, match="torchrun"):
        distributed.init_from_env()
    assert not distributed.initialized()


def test_worker_env_matches_torchrun():
    env = distributed.worker_env(1, 2, 29500, base={})
    assert {k: env[k] for k in distributed.ENV_VARS} == {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                                                          "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert np.all([env["LOCAL_WORLD_SIZE"] == "2", env["OMP_NUM_THREADS"].isdigit()])
