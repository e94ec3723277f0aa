import json
import subprocess
import sys

import numpy as np
import torch
import pytest

from aekit.cli import main
from helpers import run_cli

SMALL = ["--hidden", "32", "--latent", "4", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "ae", "--data", "digits", *SMALL, "--out", str(out)]) == 0
    return out


def test_train_writes_run_and_prints_where(run_dir, capsys):
    assert (run_dir / "model.safetensors").exists()
    assert (run_dir / "figures" / "reconstructions.png").exists()


def test_info_and_variants(run_dir, capsys):
    assert main(["info", str(run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["variant"] == "ae" and info["layers"] == [64, 32, 4] and info["epochs"] == 2
    assert main(["info", str(run_dir)]) == 0
    assert "parameters" in capsys.readouterr().out
    assert main(["variants"]) == 0
    assert capsys.readouterr().out.startswith("ae ")


def test_encode_reconstruct_round_trip(run_dir, tmp_path, digits01):
    codes, recon, csv = tmp_path / "codes.npy", tmp_path / "recon.npy", tmp_path / "codes.csv"
    assert main(["encode", str(run_dir), "digits", "-o", str(codes)]) == 0
    assert np.load(codes).shape == (1797, 4)
    assert main(["encode", str(run_dir), "digits", "-o", str(csv)]) == 0
    assert np.allclose(np.loadtxt(csv, delimiter=","), np.load(codes), atol=1e-6)
    raw = tmp_path / "raw.npy"
    np.save(raw, digits01[:20] * 16)
    assert main(["reconstruct", str(run_dir), str(raw), "-o", str(recon)]) == 0
    out = np.load(recon)
    assert out.shape == (20, 64)
    import torch
    import aekit
    model = aekit.load(run_dir)
    with torch.no_grad():  # the model works on [0, 1]; the CLI answers in the input's units (0..16)
        unit = model.decode(model.encode(torch.from_numpy(digits01[:20]))).numpy()
    assert np.allclose(out, unit * 16, atol=1e-4)


def test_evaluate_prints_json_with_pca_baseline(run_dir, tmp_path, capsys):
    assert main(["evaluate", str(run_dir), "-o", str(tmp_path / "e.json")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) >= {"autoencoder", "pca", "ratio_to_pca", "n", "split"}
    assert json.loads((tmp_path / "e.json").read_text()) == res


def test_resume_from_cli_matches_straight_run(tmp_path):
    from safetensors.torch import load_file
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "ae", *SMALL[:-3], "--epochs", "3", "--quiet", "--out", str(a)]) == 0
    assert main(["train", "ae", *SMALL, "--out", str(b)]) == 0
    assert main(["train", "ae", "--epochs", "3", "--quiet", "--out", str(b), "--resume"]) == 0
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert len(json.loads((b / "history.json").read_text())) == 3


@pytest.mark.parametrize("argv, message", [
    (["train", "nope"], "invalid choice: 'nope'"),
    (["train", "ae", "--latent", "0", "--quiet"], "must be positive"),
    (["train", "ae", "--hidden", "a,b"], "comma-separated list of integers"),
    (["encode", "/no/such/run", "digits", "-o", "x.npy"], "no such run directory"),
    (["evaluate", "/no/such/run"], "no such run directory"),
])
def test_user_mistakes_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = run_cli(argv)
    err = capsys.readouterr().err
    assert code == 2 and "aekit: error:" in err and message in err and "Traceback" not in err


def test_data_and_output_mistakes(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,nan\n")
    assert main(["train", "ae", "--data", str(bad), "--out", str(tmp_path / "x"), *SMALL]) == 2
    assert f"{bad}" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["train", "ae", "--out", str(run_dir), *SMALL]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["encode", str(run_dir), "digits", "-o", str(tmp_path / "codes.txt")]) == 2
    assert "must end in .npy or .csv" in capsys.readouterr().err
    assert main(["train", "ae", "--out", str(tmp_path / "none"), "--resume", *SMALL]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train", "ae", "--out", str(run_dir), "--resume", "--latent", "9", "--quiet"]) == 2
    assert "latent differs" in capsys.readouterr().err
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 5), np.float32))
    assert main(["encode", str(run_dir), str(wrong), "-o", str(tmp_path / "c.npy")]) == 2
    assert "expected rows of 64 features" in capsys.readouterr().err
    assert not (tmp_path / "c.npy").exists()


def test_console_entry_point_help_and_errors_without_traceback(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "aekit", "train", "ae", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "--latent" in ok.stdout and "--schedule" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "aekit", "info", str(tmp_path / "missing")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("aekit: error:") and "Traceback" not in bad.stderr


def test_conv_architecture_end_to_end(tmp_path, capsys):
    out = tmp_path / "conv"
    assert main(["train", "ae", "--architecture", "conv", "--hidden", "8,16", "--latent", "6", "--epochs", "2",
                 "--loss", "bce", "--quiet", "--out", str(out)]) == 0
    assert main(["encode", str(out), "digits", "-o", str(tmp_path / "c.npy")]) == 0
    assert np.load(tmp_path / "c.npy").shape == (1797, 6)
    assert (out / "figures" / "reconstructions.png").exists()


def test_no_progress_bar_when_not_a_terminal(tmp_path, capfd):
    assert main(["train", "ae", "--hidden", "8", "--latent", "2", "--epochs", "1", "--out", str(tmp_path / "r")]) == 0
    assert capfd.readouterr().err == ""


def test_sigint_checkpoints_and_resume_matches_uninterrupted_run(tmp_path):
    import os
    import signal
    import time

    from safetensors.torch import load_file

    args = ["train", "ae", "--hidden", "32", "--latent", "4", "--batch-size", "32", "--epochs", "15",
            "--checkpoint-every", "20", "--quiet"]
    # the same thread count as this process (conftest: one), so both runs sum in the same order
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen([sys.executable, "-m", "aekit", *args, "--out", str(tmp_path / "b")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while not (tmp_path / "b" / "checkpoint.safetensors").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert not (tmp_path / "b" / "model.safetensors").exists()
    assert main(["train", "ae", "--out", str(tmp_path / "b"), "--resume", "--quiet"]) == 0
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all((wa[k] == wb[k]).all() for k in wa)


def test_cli_values_are_stored_typed_and_resume_accepts_the_same_values(tmp_path):
    out = tmp_path / "r"
    assert main(["train", "ae", "--hidden", "8", "--latent", "3", "--epochs", "1", "--lr", "0.01", "--quiet",
                 "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["latent"] == 3 and cfg["model"]["hidden"] == [8] and cfg["train"]["lr"] == 0.01
    assert main(["train", "ae", "--hidden", "8", "--latent", "3", "--lr", "0.01", "--epochs", "2", "--quiet",
                 "--out", str(out), "--resume"]) == 0
    assert len(json.loads((out / "history.json").read_text())) == 2


def test_a_bad_option_leaves_no_run_directory(tmp_path):
    out = tmp_path / "never"
    assert main(["train", "ae", "--hidden", "8", "--latent", "0", "--quiet", "--out", str(out)]) == 2
    assert not out.exists()
