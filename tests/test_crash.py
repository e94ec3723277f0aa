"""Crash-safe runs: a training process killed with SIGKILL at random moments, resumed each time,
ends with the weights of an uninterrupted run bit for bit; SIGTERM checkpoints and exits 130;
checkpoints carry a checksum, and a corrupted newest one falls back on the previous one."""

import logging
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit import Autoencoder, ModelConfig, RunError, Trainer, TrainConfig
from aekit.io import read_safetensors, write_safetensors
from aekit.train import CHECKPOINT, PREVIOUS_CHECKPOINT, Interrupted, read_checkpoint
from helpers import InterruptAt

# digits in a .npy file (the subprocesses need not import scikit-learn): 1258 training rows / 64 = 20 steps
# an epoch
ARGS = ["train", "ae", "--hidden", "32", "--latent", "4", "--batch-size", "64", "--epochs", "4", "--quiet"]
STEPS = 80


def _env():
    # the same thread count as this process (conftest: one), so every run sums in the same order
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}


def _launch(argv):
    return subprocess.Popen([sys.executable, "-m", "aekit", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _inode(path):
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _wait_for_new_checkpoint(proc, ckpt, old_inode, timeout=90):
    """Wait until ``proc`` has replaced ``ckpt`` (every write is a new inode); False if it ended first."""
    deadline = time.time() + timeout
    while _inode(ckpt) in (None, old_inode):
        if proc.poll() is not None or time.time() > deadline:
            return False
        time.sleep(0.005)
    return True


def _wait_for_step(proc, ckpt, step, timeout=90):
    """Wait until ``proc`` has checkpointed global step ``step`` or later; False if it ended first."""
    deadline = time.time() + timeout
    while not ckpt.exists() or read_checkpoint(ckpt)[1]["global_step"] < step:
        if proc.poll() is not None or time.time() > deadline:
            return False
        time.sleep(0.002)
    return True


def _same_files(a, b):
    wa, wb = load_file(str(a)), load_file(str(b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _finish(out, data):
    """Resume the run in ``out`` to the end, in this process (what ``aekit train --resume`` does)."""
    aekit.fit("ae", data, out=out, resume=True, progress=False, figures=False)
    return out / "model.safetensors"


@pytest.fixture(scope="session")
def digits_npy(tmp_path_factory, digits01):
    path = tmp_path_factory.mktemp("data") / "digits.npy"
    np.save(path, digits01)
    return path


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory, digits_npy):
    out = tmp_path_factory.mktemp("crash") / "straight"
    aekit.fit("ae", digits_npy, out=out, hidden=(32,), latent=4, batch_size=64, epochs=4, progress=False,
              figures=False)
    return out / "model.safetensors"


def test_sigkill_at_random_moments_then_resume_gives_identical_weights(tmp_path, digits_npy, uninterrupted):
    out = tmp_path / "killed"
    ckpt = out / CHECKPOINT
    rng = random.Random(8)
    steps = []
    argv = [*ARGS, "--data", str(digits_npy), "--checkpoint-every", "1", "--out", str(out)]
    while len(steps) < 3:
        proc = _launch(argv)
        started = _wait_for_step(proc, ckpt, (steps[-1] if steps else 0) + rng.randint(1, 12))
        if started:
            time.sleep(rng.uniform(0.0, 0.03))  # a step or two later; often in the middle of a checkpoint write
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert started and proc.returncode == -signal.SIGKILL, err
        tensors, meta = read_checkpoint(ckpt)  # whole and verified after every kill
        steps.append(meta["global_step"])
        argv = ["train", "ae", "--out", str(out), "--resume", "--quiet"]
    assert steps == sorted(set(steps)) and steps[-1] < STEPS, steps  # each run got further, none finished
    assert not (out / "model.safetensors").exists()
    assert _same_files(uninterrupted, _finish(out, digits_npy))
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # the killed runs' temporaries


def test_sigterm_saves_a_checkpoint_exits_130_and_resume_gives_identical_weights(tmp_path, digits_npy,
                                                                                  uninterrupted):
    out = tmp_path / "termed"
    ckpt = out / CHECKPOINT
    proc = _launch([*ARGS, "--data", str(digits_npy), "--checkpoint-every", "5", "--out", str(out)])
    assert _wait_for_new_checkpoint(proc, ckpt, None)
    before = _inode(ckpt)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert _inode(ckpt) != before  # the interrupt wrote a checkpoint of its own
    _, meta = read_checkpoint(ckpt)
    assert 5 < meta["global_step"] < STEPS
    assert not (out / "model.safetensors").exists()
    assert _same_files(uninterrupted, _finish(out, digits_npy))


# -- checksums and the previous checkpoint (in process) -------------------------------------------
CFG = dict(epochs=3, batch_size=64, checkpoint_every=2)


def _model(seed=0):
    torch.manual_seed(seed)
    return Autoencoder(ModelConfig(input_dim=64, hidden=(16,), latent=3))


@pytest.fixture(scope="session")
def reference(digits01):
    model = _model()
    Trainer(model, TrainConfig(**CFG)).fit(torch.from_numpy(digits01[:640]))
    return model.state_dict()


def _interrupted_run(run_dir, digits01, step=13):
    with pytest.raises(Interrupted):
        Trainer(_model(), TrainConfig(**CFG), run_dir=run_dir, callbacks=[InterruptAt(step)]).fit(
            torch.from_numpy(digits01[:640]))


def _resume(run_dir, digits01):
    model = _model(seed=5)
    Trainer(model, TrainConfig(**CFG), run_dir=run_dir).fit(torch.from_numpy(digits01[:640]), resume=True)
    return model.state_dict()


def _flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_checkpoints_rotate_and_carry_a_checksum(tmp_path, digits01):
    _interrupted_run(tmp_path, digits01)
    _, newest = read_checkpoint(tmp_path / CHECKPOINT)
    _, previous = read_checkpoint(tmp_path / PREVIOUS_CHECKPOINT)
    assert (newest["global_step"], previous["global_step"]) == (13, 12)
    _, metadata = read_safetensors(tmp_path / CHECKPOINT)
    assert len(metadata["aekit_sha256"]) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == [PREVIOUS_CHECKPOINT, CHECKPOINT, "history.json"]


@pytest.mark.parametrize("damage", ["flip_payload", "flip_metadata", "truncate", "empty"])
def test_a_corrupted_newest_checkpoint_falls_back_on_the_previous(tmp_path, digits01, reference, caplog, damage):
    _interrupted_run(tmp_path, digits01)
    ckpt = tmp_path / CHECKPOINT
    size = ckpt.stat().st_size
    if damage == "flip_payload":
        _flip_byte(ckpt, size - 3)  # a weight of the last tensor: safetensors' own checks pass
    elif damage == "flip_metadata":
        at = re.search(rb"global_step\W+(\d)", ckpt.read_bytes()[:4096]).start(1)
        _flip_byte(ckpt, at)  # the step in the JSON state: 13 -> 03
    elif damage == "truncate":
        ckpt.write_bytes(ckpt.read_bytes()[: size // 2])
    else:
        ckpt.write_bytes(b"")
    with pytest.raises(RunError, match=CHECKPOINT):
        read_checkpoint(ckpt)
    with caplog.at_level(logging.WARNING, logger="aekit"):
        state = _resume(tmp_path, digits01)
    assert "resuming from the previous checkpoint" in caplog.text and PREVIOUS_CHECKPOINT in caplog.text
    assert all(torch.equal(state[k], reference[k]) for k in reference)  # the one step is simply redone


def test_no_good_checkpoint_is_a_clear_error(tmp_path, digits01):
    _interrupted_run(tmp_path, digits01)
    for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
        _flip_byte(tmp_path / name, (tmp_path / name).stat().st_size - 1)
    with pytest.raises(RunError, match=r"no good checkpoint .*checksum does not match"):
        _resume(tmp_path, digits01)
    (tmp_path / CHECKPOINT).unlink()
    (tmp_path / PREVIOUS_CHECKPOINT).unlink()
    with pytest.raises(RunError, match="nothing to resume"):
        _resume(tmp_path, digits01)


def test_a_flipped_byte_in_model_weights_is_detected(tmp_path):
    t = {"w": torch.arange(1000, dtype=torch.float32)}
    path = write_safetensors(tmp_path / "model.safetensors", t, {"format": "aekit-run"})
    assert torch.equal(read_safetensors(path)[0]["w"], t["w"])
    _flip_byte(path, path.stat().st_size - 2)
    assert load_file(str(path))["w"].shape == (1000,)  # safetensors alone does not notice
    with pytest.raises(RunError, match="corrupted"):
        read_safetensors(path)
    run = tmp_path / "run"
    aekit.fit("ae", "digits", out=run, hidden=(8,), latent=2, epochs=1, progress=False, figures=False)
    _flip_byte(run / "model.safetensors", (run / "model.safetensors").stat().st_size - 2)
    with pytest.raises(RunError, match="model.safetensors: corrupted"):
        aekit.load(run)


def test_a_kill_between_the_two_renames_leaves_nothing_behind(tmp_path):
    """Killed after the old checkpoint was linked as the previous one, before the new one was renamed
    into place: both names are then the same file, and the next write must still rotate cleanly."""
    path = tmp_path / CHECKPOINT
    write_safetensors(path, {"w": torch.zeros(3)}, {}, keep_previous=True)
    os.link(path, tmp_path / PREVIOUS_CHECKPOINT)
    write_safetensors(path, {"w": torch.ones(3)}, {}, keep_previous=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [PREVIOUS_CHECKPOINT, CHECKPOINT]
    assert read_safetensors(path)[0]["w"].sum() == 3
    assert read_safetensors(tmp_path / PREVIOUS_CHECKPOINT)[0]["w"].sum() == 0


def test_fit_resumes_from_the_previous_checkpoint_when_the_newest_is_gone(tmp_path):
    X = aekit.load_data("digits").x[:640]
    kw = dict(latent=3, hidden=(16,), epochs=2, batch_size=64, seed=0, checkpoint_every=1, progress=False,
              figures=False)
    straight = aekit.fit("ae", X, out=tmp_path / "straight", **kw).state_dict()
    with pytest.raises(Interrupted):
        aekit.fit("ae", X, out=tmp_path / "cut", callbacks=[InterruptAt(7)], **kw)
    (tmp_path / "cut" / CHECKPOINT).unlink()  # only checkpoint.prev.safetensors is left
    resumed = aekit.fit("ae", X, out=tmp_path / "cut", resume=True, **kw).state_dict()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
