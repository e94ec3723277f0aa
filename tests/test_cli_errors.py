"""Hostile input to the command line (issue 14): every mistake is one line ``aekit: error: ...`` and exit
status 2, the help shows each variant's real defaults, the commands that only describe answer without
importing torch, seeds and layer lists are checked, a double Ctrl-C ends like a single one, no figure is
drawn from no epochs, the JSON is strict, default run directories never collide, and a file that cannot
be written is one line."""

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

import aekit
from aekit import ConfigError, RunError, variants
from aekit.cli import main
from aekit.io import atomic_path
from helpers import run_cli

TINY = ["--hidden", "8", "--latent", "2", "--quiet"]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("errors") / "run"
    aekit.fit("ae", "digits", hidden=(8,), latent=2, epochs=1, out=out, progress=False, figures=False)
    return out


def _one_error_line(capsys):
    captured = capsys.readouterr()
    assert captured.err.startswith("aekit: error: ") and captured.err.count("\n") == 1, captured.err
    assert "usage:" not in captured.err and "Traceback" not in captured.err
    return captured.err


# -- 1. argparse's mistakes: one line, at every level -------------------------------------------------------
@pytest.mark.parametrize("argv, says", [
    ([], "required: COMMAND"),
    (["nope"], "invalid choice: 'nope'"),
    (["--nope", "variants"], "unrecognized arguments: --nope"),
    (["train"], "required: VARIANT"),
    (["train", "nope"], "invalid choice: 'nope'"),
    (["train", "ae", "--nope"], "unrecognized arguments: --nope"),
    (["train", "ae", "--loss", "nope"], "invalid choice: 'nope'"),
    (["train", "vae", "--latent"], "expected one argument"),
    (["train", "ae", "--tied=3"], "ignored explicit argument"),
    (["pretrain"], "required: METHOD"),
    (["pretrain", "rbm"], "required: --hidden"),
    (["pretrain", "dae", "--hidden", "8", "--top", "nope"], "invalid choice: 'nope'"),
    (["encode"], "required: DIR, INPUT, -o/--output"),
    (["encode", "run", "digits", "-o", "c.npy", "--batch-size", "x"], "invalid int value: 'x'"),
    (["evaluate", "run", "--split", "nope"], "invalid choice: 'nope'"),
    (["info"], "required: DIR"),
    (["generate", "run", "-o", "s.png", "-n", "1.5"], "invalid int value"),
])
def test_argument_errors_are_one_line_and_exit_2(argv, says, capsys):
    assert run_cli(argv) == 2
    err = _one_error_line(capsys)
    assert says in err and "--help" in err


def test_an_unknown_option_is_reported_by_its_own_command(capsys):
    assert run_cli(["train", "ae", "--lattent", "3"]) == 2
    assert "`aekit train ae --help`" in _one_error_line(capsys)


# -- 2. the help shows what a run with no options uses ----------------------------------------------------
def _help_defaults(text):
    """``{flag: shown default}`` from a --help text (one option per block of lines)."""
    blocks, flag = {}, None
    for line in text.splitlines():
        m = re.match(r"\s{2}(--[\w-]+)", line)
        if m:
            flag = m.group(1)
            blocks[flag] = line
        elif flag is not None and line.startswith(" " * 6):
            blocks[flag] += " " + line.strip()
        else:
            flag = None
    out = {}
    for flag, block in blocks.items():
        m = re.search(r"\(default: ([^()]*)\)\s*$", block)
        if m:
            out[flag] = m.group(1)
    return out


def _shown(value):
    if isinstance(value, list):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


@pytest.mark.parametrize("variant", variants.names())
def test_help_shows_the_defaults_a_run_without_options_uses(variant, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option
    assert run_cli(["train", variant, "--help"]) == 0
    shown = _help_defaults(capsys.readouterr().out)
    given = {"epochs": 0} if variant != "deep" else {"epochs": 0, "pretrain_epochs": 1}
    aekit.fit(variant, out=tmp_path / "run", progress=False, figures=False, **given)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    stored = {**cfg["data"], **cfg["model"]["options"], **cfg["train"],
              **{k: v for k, v in cfg["model"].items() if k != "options"}}
    compared = 0
    for flag, text in shown.items():
        name = flag[2:].replace("-", "_")
        if name in stored and name not in given:
            if (name, text) == ("loss", "auto"):  # chosen from the data: digits scaled to [0, 1] get bce
                assert stored[name] == "bce", variant
            else:
                assert text == _shown(stored[name]), f"{variant} {flag}: help says {text}, a run uses {stored[name]}"
            compared += 1
    assert compared >= 25 and {"--loss", "--activation", "--hidden", "--lr"} <= set(shown)


# -- 3. describing commands do not import torch ------------------------------------------------------------
def test_help_version_variants_info_and_argument_errors_do_not_import_torch(run_dir):
    commands = [["--help"], ["--version"], ["train", "--help"], *(["train", v, "--help"] for v in variants.names()),
                ["pretrain", "rbm", "--help"], ["finetune", "--help"], ["evaluate", "--help"], ["compress", "--help"],
                ["index", "--help"], ["variants"], ["info", str(run_dir)], ["info", str(run_dir), "--json"],
                ["train", "ae", "--nope"], ["train", "vae", "--loss", "nope"], ["train", "ae", "--latent", "x"],
                ["encode"], ["nope"]]
    script = f"""
import contextlib, io, json, sys
from aekit.cli import main
out = []
for argv in {commands!r}:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    out.append([argv, code, stdout.getvalue(), stderr.getvalue()])
heavy = [m for m in ("torch", "sklearn", "matplotlib", "pandas") if m in sys.modules]
print(json.dumps({{"heavy": heavy, "runs": out}}))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["heavy"] == []
    by = {tuple(argv): (code, out, err) for argv, code, out, err in report["runs"]}
    assert by[("--version",)][:2] == (0, f"aekit {aekit.__version__}\n")
    assert by[("variants",)][0] == 0 and by[("variants",)][1].split()[0] == "ae"
    code, out, _ = by[("info", str(run_dir), "--json")]
    info = json.loads(out)
    assert code == 0 and info["layers"] == [64, 8, 2] and info["epochs"] == 1
    assert info["parameters"] == sum(p.numel() for p in aekit.load(run_dir).parameters())
    for argv in (("train", "ae", "--nope"), ("train", "vae", "--loss", "nope"), ("train", "ae", "--latent", "x"),
                 ("encode",), ("nope",)):
        code, _, err = by[argv]
        assert code == 2 and err.startswith("aekit: error: ") and err.count("\n") == 1, (argv, err)


def test_the_parsers_read_the_same_options_without_torch_as_the_registry_holds():
    """What the CLI reads from the source files (no torch) is what importing the modules gives."""
    script = """
import dataclasses, json, sys
from aekit import cli, config

def fields(cls, defaults):  # with the defaults the help shows (beta-vae: the VAE's options, beta 4)
    hints = config._type_hints(cls)
    return [[f.name, repr(defaults.get(f.name, config.field_default(f))), f.metadata.get("help"),
             repr(f.metadata.get("choices")), f.metadata.get("flag"), str(hints[f.name])]
            for f in dataclasses.fields(cls)]

out = {spec.name: [spec.summary, repr(spec.defaults), repr(spec.option_defaults),
                   [[prefix, fields(cls, defaults)] for prefix, cls, defaults in cli._train_groups(spec)]]
       for spec in cli._variants()}
out["constants"] = repr([config.lookup(m, n) for m, n in (("aekit.noise", "NOISE_KINDS"), ("aekit.noise", "DEFAULT_NU"),
    ("aekit.noise", "DEFAULT_SIGMA"), ("aekit.compress", "RANGES"), ("aekit.compress", "MAX_BITS"),
    ("aekit.compress", "DEFAULT_QUANTILE"), ("aekit.search", "METRICS"), ("aekit.variants.deep", "RBM_OPTIONS"),
    ("aekit.variants.deep", "DAE_OPTIONS"))])
assert "torch" not in sys.modules
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    static = json.loads(res.stdout)
    assert "torch" in sys.modules  # here the real modules are loaded: lookup returns them
    real = json.loads(subprocess.run([sys.executable, "-c", "import aekit.variants, aekit.data.config, aekit.compress, "
                                      "aekit.search\n" + script.replace('assert "torch" not in', 'assert "torch" in')],
                                     capture_output=True, text=True, timeout=120, check=True).stdout)
    assert static == real


def test_info_counts_the_parameters_of_every_variant_and_still_refuses_a_corrupted_file(tmp_path, digits01, capsys):
    cases = [*((v, {}) for v in variants.names()), ("ae", {"tied": True}),
             ("vae", {"loss": "mse", "learn_sigma": True})]
    for variant, extra in cases:
        out = tmp_path / f"{variant}-{len(extra)}"
        aekit.fit(variant, digits01[:300], out=out, hidden=(8,), latent=3, epochs=0, progress=False, figures=False,
                  **({"pretrain": "none"} if variant == "deep" else {}), **extra)
        assert main(["info", str(out), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["parameters"] == sum(p.numel() for p in aekit.load(out).parameters())
    weights = out / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-3] ^= 0xFF
    weights.write_bytes(bytes(raw))
    assert run_cli(["info", str(out)]) == 2
    assert "corrupted" in _one_error_line(capsys)


# -- 4. seeds and layer lists -------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["train", "ae", "--seed", "99999999999999999999999"],
    ["train", "ae", "--seed", str(2 ** 63)],
    ["train", "ae", "--seed", "-1"],
    ["train", "ae", "--split-seed", "99999999999999999999999"],
    ["generate", "run", "-o", "s.png", "--seed", "99999999999999999999999"],
    ["pretrain", "rbm", "--hidden", "8", "--seed", "-5"],
    ["evaluate", "run", "--noise", "mask", "--noise-seed", str(2 ** 64)],
])
def test_seeds_out_of_range_are_one_line(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli([*argv, *(["--epochs", "0", "--quiet", "--out", "r"] if argv[0] == "train" else [])]) == 2
    assert "seed" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_the_api_refuses_seeds_out_of_range():
    for kwargs in ({"seed": 10 ** 23}, {"seed": -1}, {"split_seed": 2 ** 63}):
        with pytest.raises(ConfigError, match="seed from 0 to 2\\*\\*63 - 1"):
            aekit.fit("ae", "digits", hidden=(8,), latent=2, epochs=0, progress=False, **kwargs)
    aekit.fit("ae", np.ones((20, 3), np.float32), hidden=(4,), latent=2, epochs=1, seed=2 ** 63 - 1, progress=False)


@pytest.mark.parametrize("hidden", [",,", "", "0", "-3", "1.5", "8,,4", "64,"])
def test_bad_layer_lists_are_one_line(hidden, tmp_path, capsys):
    out = tmp_path / "r"
    assert run_cli(["train", "ae", f"--hidden={hidden}", "--latent", "2", "--epochs", "0", "--quiet",
                    "--out", str(out)]) == 2
    err = _one_error_line(capsys)
    assert "hidden" in err or "layer sizes must be positive" in err
    assert not out.exists()


def test_hidden_none_is_no_hidden_layer(tmp_path):
    assert main(["train", "ae", "--hidden", "none", "--latent", "2", "--epochs", "0", "--quiet",
                 "--out", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model"]["hidden"] == []


# -- 5. a double Ctrl-C ---------------------------------------------------------------------------------------
def _training(out, epochs=4):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    argv = ["train", "ae", "--hidden", "32", "--latent", "4", "--batch-size", "32", "--epochs", str(epochs),
            "--checkpoint-every", "5", "--quiet", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "aekit", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 90
    while not (out / "checkpoint.safetensors").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    return proc


def test_a_double_ctrl_c_ends_like_one_with_a_resumable_checkpoint(tmp_path):
    # the second SIGINT a moment after the first, while the trainer finishes its step and checkpoint
    out = tmp_path / "quick"
    proc = _training(out)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and re.match(r"aekit: training interrupted .*--resume", err), err
    # the second SIGINT once the first has been reported, while the process exits
    late = tmp_path / "late"
    proc = _training(late)
    proc.send_signal(signal.SIGINT)
    first = proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=90)
    assert proc.returncode == 130 and "--resume" in first and rest == "", first + rest
    for run in (out, late):
        assert not (run / "model.safetensors").exists()
        assert main(["train", "ae", "--out", str(run), "--resume", "--quiet"]) == 0
        assert len(json.loads((run / "history.json").read_text())) == 4


# -- 6. no epochs, no empty loss figure -------------------------------------------------------------------------
def test_zero_epochs_draw_no_empty_loss_figure_and_warn_nothing(tmp_path, capsys):
    from aekit import plots
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["train", "ae", "--epochs", "0", *TINY, "--out", str(tmp_path / "r")]) == 0
        plots.loss_curves([], tmp_path / "none.png")
    figures = tmp_path / "r" / "figures"
    assert (figures / "reconstructions.png").exists() and not (figures / "loss.png").exists()
    assert "loss.png" not in capsys.readouterr().out
    assert (tmp_path / "none.png").stat().st_size > 0


# -- 7. strict JSON ----------------------------------------------------------------------------------------------
def _strict(text):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_evaluate_on_constant_data_prints_and_writes_strict_json(tmp_path, capsys):
    data = tmp_path / "constant.npy"
    np.save(data, np.ones((200, 6), np.float32))
    assert main(["train", "ae", "--data", str(data), "--epochs", "1", *TINY, "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to explain is no reason for a warning (0 / 0)
        assert main(["evaluate", str(tmp_path / "r"), "-o", str(tmp_path / "e.json")]) == 0
    printed = _strict(capsys.readouterr().out)
    assert _strict((tmp_path / "e.json").read_text()) == printed
    assert printed["pca"]["per_example_squared_error"] == 0 and printed["ratio_to_pca"] is None
    assert printed["pca"]["explained_variance_ratio"] is None


# -- 8. default run directories -------------------------------------------------------------------------------
def test_two_runs_in_the_same_second_get_two_default_run_directories(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *args: "20250101-000000")
    for _ in range(2):
        assert main(["train", "ae", "--epochs", "0", *TINY]) == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["ae-20250101-000000", "ae-20250101-000000-2"]
    assert all((tmp_path / "runs" / r / "model.safetensors").exists() for r in runs)
    assert main(["train", "ae", "--latent", "0", "--quiet"]) == 2  # a failed run leaves no folder behind
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs
    monkeypatch.chdir(tmp_path / "runs")
    assert main(["train", "ae", "--data", "missing.npy", "--quiet"]) == 2  # ... nor a runs folder
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs


# -- 9. files that cannot be written --------------------------------------------------------------------------
def _unwritable(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder\n")
    return {"below a file": blocker / "out", "an existing file": blocker, "/proc": "/proc/self/aekit-test/out",
            "a name too long": tmp_path / ("n" * 300)}


@pytest.mark.parametrize("where", ["below a file", "an existing file", "/proc", "a name too long"])
def test_a_run_directory_that_cannot_be_made_is_one_line(where, tmp_path, capsys):
    out = _unwritable(tmp_path)[where]
    assert run_cli(["train", "ae", "--epochs", "0", *TINY, "--out", str(out)]) == 2
    _one_error_line(capsys)


@pytest.mark.parametrize("where", ["below a file", "/proc", "a name too long"])
@pytest.mark.parametrize("command", ["encode", "score", "evaluate", "report"])
def test_outputs_that_cannot_be_written_are_one_line(command, where, run_dir, tmp_path, capsys):
    out = _unwritable(tmp_path)[where]
    out = f"{out}.{'json' if command == 'evaluate' else 'html' if command == 'report' else 'npy'}"
    argv = [command, str(run_dir), *(["digits"] if command in ("encode", "score") else []), "-o", out]
    assert run_cli([*argv, *(["--no-evaluate"] if command == "report" else ["--no-pca"] if command == "evaluate"
                             else [])]) == 2
    assert out in _one_error_line(capsys)


@pytest.mark.parametrize("fails, code, reason", [
    ("tempfile.mkstemp", errno.EACCES, "Permission denied"),
    ("tempfile.mkstemp", errno.EROFS, "Read-only file system"),
    ("os.fsync", errno.ENOSPC, "No space left on device"),
    ("os.replace", errno.ENAMETOOLONG, "File name too long"),
])
def test_os_errors_while_writing_are_one_line_naming_the_file(fails, code, reason, run_dir, tmp_path, capsys,
                                                            monkeypatch):
    out = tmp_path / "codes.npy"

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fails, fail)
    assert run_cli(["encode", str(run_dir), "digits", "-o", str(out)]) == 2
    err = _one_error_line(capsys)
    assert str(out) in err and reason in err
    assert os.listdir(tmp_path) == []  # neither the file nor a temporary


def test_a_full_disk_in_the_middle_of_a_write_is_a_run_error_and_leaves_nothing(tmp_path):
    out = tmp_path / "big.npy"
    with pytest.raises(RunError, match=f"{out}: cannot write the file \\(No space left on device\\)"):
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half of it")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    assert os.listdir(tmp_path) == []
    long_name = tmp_path / ("x" * 250)  # a name that fits, though its temporary's would not
    with atomic_path(long_name) as tmp:
        tmp.write_text("whole\n")
    assert long_name.read_text() == "whole\n" and os.listdir(tmp_path) == [long_name.name]


def test_an_os_error_that_escapes_a_command_is_one_line(run_dir, capsys, monkeypatch):
    from aekit import io

    def fail(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(run_dir / "config.json"))

    monkeypatch.setattr(io, "read_config", fail)
    assert run_cli(["info", str(run_dir)]) == 2
    err = _one_error_line(capsys)
    assert f"{run_dir / 'config.json'}: Input/output error" in err
