"""Run directories are the user's folders: aekit removes only what it wrote there, one process
writes a run at a time, nothing is written before a run is known to be valid, and the same run
gives the same bytes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from helpers import run_cli

import aekit
from aekit import io
from aekit.errors import RunError

TRAIN = ["train", "ae", "--hidden", "16", "--latent", "4", "--quiet"]


def _train(out, *extra, epochs=1):
    return run_cli([*TRAIN, "--epochs", str(epochs), "--out", str(out), *extra])


def _snapshot(folder):
    """Every file below ``folder`` with its inode, modification time and bytes."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            st = os.stat(path)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = (st.st_ino, st.st_mtime_ns, f.read())
    return files


@pytest.fixture
def run(tmp_path):
    out = tmp_path / "run"
    assert _train(out) == 0
    return out


# -- 1. --out . and --out '' from inside a run directory -------------------------------------------
@pytest.mark.parametrize("here", [".", ""])
def test_overwrite_of_the_current_folder_replaces_the_run_in_place(run, monkeypatch, here):
    monkeypatch.chdir(run)
    old = _snapshot(run)
    assert _train(here, "--overwrite", "--seed", "1") == 0
    assert run.is_dir()
    cfg = io.read_config(run)
    assert cfg["train"]["seed"] == 1
    assert aekit.load(run).config.latent == 4
    assert _snapshot(run)[io.MODEL][2] != old[io.MODEL][2]


def test_overwrite_of_the_current_folder_keeps_the_users_files(run, monkeypatch, capsys):
    (run / "notes.txt").write_text("mine")
    monkeypatch.chdir(run)
    old = _snapshot(run)
    assert _train(".", "--overwrite") == 2
    assert "notes.txt" in capsys.readouterr().err
    assert _snapshot(run) == old


# -- 2. --overwrite removes only what aekit wrote ----------------------------------------------------
def test_overwrite_refuses_a_folder_holding_foreign_files_and_names_them(run, capsys):
    (run / "notes.txt").write_text("mine")
    (run / "sub").mkdir()
    (run / "sub" / "keep.npy").write_bytes(b"x")
    (run / "figures" / "my-plot.png").write_bytes(b"png")
    old = _snapshot(run)
    assert _train(run, "--overwrite") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.txt" in err and "sub" in err and "my-plot.png" in err
    assert _snapshot(run) == old


def test_overwrite_never_removes_the_training_data(run, digits01, capsys):
    data = run / "x.npy"
    np.save(data, digits01[:200])
    old = _snapshot(run)
    assert _train(run, "--overwrite", "--data", str(data)) == 2
    assert "x.npy" in capsys.readouterr().err
    assert _snapshot(run) == old


def test_overwrite_never_removes_data_in_the_figures_folder(run, capsys):
    """Even when the data are aekit's own figures (a folder of PNG images)."""
    old = _snapshot(run)
    assert _train(run, "--overwrite", "--data", str(run / "figures")) == 2
    assert "inside the run directory" in capsys.readouterr().err
    assert _snapshot(run) == old


def test_a_one_line_config_does_not_make_a_folder_a_run(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"format": "aekit-run"}))
    assert _train(folder, "--overwrite") == 2
    assert "not an aekit run directory" in capsys.readouterr().err
    assert (folder / "config.json").read_text() == json.dumps({"format": "aekit-run"})
    (folder / "todo.txt").write_text("mine")
    assert _train(folder, "--overwrite") == 2
    assert (folder / "todo.txt").read_text() == "mine"


def test_overwrite_removes_every_file_of_the_old_run(run, tmp_path):
    """What aekit wrote goes, stale files of the old run included (its report, evaluation, pretraining)."""
    for name in (io.REPORT, io.EVALUATION, io.PRETRAIN):
        (run / name).write_text("{}")
    (run / f".{io.MODEL}.abc123{io.TMP_SUFFIX}").write_bytes(b"")
    assert _train(run, "--overwrite") == 0
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["checkpoint.safetensors", "config.json", "figures", "history.json", "model.safetensors"])


# -- 3. one process writes a run directory at a time -------------------------------------------------
def test_a_held_run_directory_is_refused_to_a_second_writer(run, capsys):
    old = _snapshot(run)
    with io.claim_run_dir(run, resume=True):  # as a training process holds it
        assert _train(run, "--overwrite") == 2
        assert "in use by another aekit process" in capsys.readouterr().err
        assert _train(run, "--resume", epochs=2) == 2
        with pytest.raises(RunError, match="in use"):
            aekit.fit("ae", "digits", hidden=(8,), latent=2, epochs=1, out=run, overwrite=True, progress=False)
    assert _snapshot(run) == old
    assert _train(run, "--overwrite") == 0  # free again once the holder is done


def test_two_processes_training_into_one_folder(tmp_path):
    """A second ``aekit train --overwrite`` while the first is training fails cleanly; the first
    run's files stay its own."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "aekit", *TRAIN, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([*cmd, "--epochs", "100000", "--seed", "1"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / io.CONFIG).exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = subprocess.run([*cmd, "--epochs", "1", "--seed", "2", "--overwrite"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert second.stderr.startswith("aekit: error:") and "in use" in second.stderr
        assert io.read_config(out)["train"]["seed"] == 1
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    assert io.read_config(out)["train"]["seed"] == 1


# -- 5. a failed or no-op resume writes nothing -----------------------------------------------------
def test_a_resume_from_corrupted_checkpoints_changes_no_file(run, capsys):
    assert _train(run, "--overwrite", "--checkpoint-every", "1") == 0  # a previous checkpoint too
    for name in ("checkpoint.safetensors", "checkpoint.prev.safetensors"):
        raw = bytearray((run / name).read_bytes())
        raw[-5] ^= 0xFF
        (run / name).write_bytes(bytes(raw))
    old = _snapshot(run)
    assert _train(run, "--resume", epochs=3) == 2
    assert "no good checkpoint" in capsys.readouterr().err
    assert _snapshot(run) == old


def test_a_refused_schedule_change_leaves_the_configuration(tmp_path, capsys):
    out = tmp_path / "cos"
    assert _train(out, "--schedule", "cosine", epochs=2) == 0
    old = _snapshot(out)
    assert _train(out, "--resume", epochs=3) == 2
    assert "cosine" in capsys.readouterr().err
    assert _snapshot(out) == old
    assert io.read_config(out)["train"]["epochs"] == 2


def test_resume_to_fewer_epochs_than_trained_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert _train(out, epochs=3) == 0
    old = _snapshot(out)
    assert _train(out, "--resume", epochs=1) == 2
    assert "already trained 3 epoch(s)" in capsys.readouterr().err
    assert _snapshot(out) == old


def test_a_resume_with_nothing_left_writes_nothing(run, capsys):
    old = _snapshot(run)
    assert _train(run, "--resume", epochs=1) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert _snapshot(run) == old


def test_resume_and_overwrite_together_are_refused(run, capsys):
    old = _snapshot(run)
    assert _train(run, "--resume", "--overwrite", epochs=2) == 2
    assert "--resume" in capsys.readouterr().err
    assert _snapshot(run) == old


def test_resume_with_other_data_is_refused(run, tmp_path, digits01, capsys):
    other = tmp_path / "other.npy"
    np.save(other, digits01[:300])
    old = _snapshot(run)
    assert _train(run, "--resume", "--data", str(other), epochs=2) == 2
    assert "own data" in capsys.readouterr().err
    assert _snapshot(run) == old
    assert _train(run, "--resume", "--data", "digits", epochs=2) == 0  # its own data, named again


def test_a_resume_that_trains_longer_records_the_new_epochs(run):
    assert _train(run, "--resume", epochs=2) == 0
    assert io.read_config(run)["train"]["epochs"] == 2
    assert len(io.read_json(run / io.HISTORY)) == 2


# -- 6. everything is validated before anything is created -------------------------------------------
@pytest.mark.parametrize("flags", [
    ["--device", "tpu"],
    ["--weight-decay", "-1"],
    ["--optimizer", "sgd", "--momentum", "nan"],
    ["--momentum", "1.5"],
    ["--lr", "1e30"],
    pytest.param(["--device", "cuda"], marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has a GPU")),
])
def test_a_mistake_leaves_no_run_directory(tmp_path, capsys, flags):
    out = tmp_path / "deep" / "run"
    assert _train(out, *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("aekit: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "deep").exists()
    assert _train(out) == 0  # no circle between --overwrite and --resume: the same command now works


def test_a_mistake_leaves_an_existing_run_alone(run):
    old = _snapshot(run)
    assert _train(run, "--overwrite", "--device", "tpu") == 2
    assert _snapshot(run) == old


def test_a_run_that_fails_after_its_first_checkpoint_is_kept_for_resume(tmp_path):
    """Divergence after a checkpoint keeps the run (the last good checkpoint is the point of it)."""
    out = tmp_path / "r"
    with pytest.raises(aekit.errors.TrainingError):
        aekit.fit("ae", "digits", hidden=(8,), latent=2, epochs=3, out=out, progress=False,
                  callbacks=[_PoisonAfterEpoch()])
    assert (out / "checkpoint.safetensors").exists() and (out / io.CONFIG).exists()


class _PoisonAfterEpoch(aekit.train.Callback):
    """Make the weights NaN after the first epoch's checkpoint: the next step diverges."""

    def on_epoch_end(self, trainer, record):
        with torch.no_grad():
            for p in trainer.model.parameters():
                p.fill_(float("nan"))


# -- 7. same seed, same bytes -------------------------------------------------------------------------
def test_two_identical_runs_write_identical_model_files(tmp_path):
    outs = [tmp_path / f"r{i}" for i in range(4)]
    for out in outs:
        assert _train(out) == 0
    first = (outs[0] / io.MODEL).read_bytes()
    assert all((out / io.MODEL).read_bytes() == first for out in outs[1:])


def test_safetensors_bytes_do_not_depend_on_the_metadata_order(tmp_path):
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2, dtype=torch.float64)}
    meta = {f"key{i}": str(i) for i in range(8)}
    written = set()
    for i in range(10):
        order = dict(sorted(meta.items(), key=lambda kv: hash((kv[0], i))))
        written.add(io.write_safetensors(tmp_path / f"m{i}.safetensors", tensors, order).read_bytes())
    assert len(written) == 1
    back, got = io.read_safetensors(tmp_path / "m0.safetensors")
    assert {k: v for k, v in got.items() if k != io.CHECKSUM_KEY} == meta
    assert all(torch.equal(back[k], tensors[k]) for k in tensors)
    from safetensors.torch import load_file  # still a standard safetensors file
    assert torch.equal(load_file(tmp_path / "m0.safetensors")["w"], tensors["w"])


# -- model and configuration files that are not files ------------------------------------------------
@pytest.mark.parametrize("name", [io.MODEL, io.CONFIG])
def test_a_device_behind_a_run_file_is_refused_unread(run, capsys, name):
    (run / name).unlink()
    (run / name).symlink_to("/dev/zero")
    assert run_cli(["encode", str(run), "digits", "-o", str(run.parent / "codes.npy")]) == 2
    err = capsys.readouterr().err
    assert "not a regular file" in err and name in err


def test_a_fifo_behind_a_run_file_does_not_hang(run):
    (run / io.CONFIG).unlink()
    os.mkfifo(run / io.CONFIG)
    done = subprocess.run([sys.executable, "-m", "aekit", "encode", str(run), "digits", "-o",
                           str(run.parent / "codes.npy")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not a regular file" in done.stderr
