"""Experiment tracking (aekit.tracking): TensorBoard event files and MLflow runs, read back."""

import json
import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import aekit
from aekit import io, tracking
from aekit.callbacks import Callback
from aekit.data import Dataset
from aekit.errors import ConfigError, RunError
from aekit.train import Interrupted, TrainConfig
from helpers import InterruptAt, run_cli

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

EPOCHS, LOG_EVERY = 3, 2  # 5 steps an epoch
CRASH_AT, STOP_AT = 8, 12  # the second epoch fails after its step 8 (checkpoint: 5), the third is interrupted
TINY = {"hidden": (16,), "latent": 2, "epochs": EPOCHS, "batch_size": 32, "progress": False, "figures": False}


@pytest.fixture(scope="session")
def digits_images():
    from sklearn.datasets import load_digits

    d = load_digits()
    return Dataset(d.data[:200].astype(np.float32), d.target[:200], image_shape=(8, 8), source="digits200")


def _trackers():
    return [tracking.TensorBoardCallback(log_every=LOG_EVERY), tracking.MLflowCallback(log_every=LOG_EVERY)]


class CrashAfter(Callback):
    """Fail (not an interruption: no checkpoint) after the trackers have logged the given step."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, step, losses):
        if step == self.step:
            raise RuntimeError("crash")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_images):
    """``(straight, resumed)``: a 3-epoch VAE run with both trackers, and the same run failing after
    step 8 (logged after its last checkpoint, at step 5), resumed, interrupted after step 12 and
    resumed again."""
    base = tmp_path_factory.mktemp("tracking")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        straight, resumed = base / "straight", base / "resumed"
        aekit.fit("vae", digits_images, out=straight, callbacks=_trackers(), **TINY)
        with pytest.raises(RuntimeError, match="crash"):
            aekit.fit("vae", digits_images, out=resumed, callbacks=[*_trackers(), CrashAfter(CRASH_AT)], **TINY)
        again = {"out": resumed, "resume": True, "progress": False, "figures": False}
        with pytest.raises(Interrupted):
            aekit.fit("vae", digits_images, callbacks=[*_trackers(), InterruptAt(STOP_AT)], **again)
        aekit.fit("vae", digits_images, callbacks=_trackers(), **again)
        yield straight, resumed


def _events(run_dir):
    ea = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    return ea


def _mlflow(run_dir):
    info = json.loads((run_dir / "tracking.json").read_text())["mlflow"]
    return MlflowClient(info["tracking_uri"]), info["run_id"]


def _history(run_dir):
    return json.loads((run_dir / "history.json").read_text())


def test_tensorboard_logs_epoch_records_steps_lr_images_and_embedding(runs):
    run_dir = runs[0]
    ea, history = _events(run_dir), _history(run_dir)
    assert len(history) == EPOCHS
    keys = [k for k, v in history[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert {"train_loss", "val_loss", "train_recon", "val_kl", "lr", "epoch"} <= set(keys)
    for key in keys:
        got = [(e.step, e.value) for e in ea.Scalars(f"epoch/{key}")]
        assert [s for s, _ in got] == [r["step"] for r in history]
        for (_, value), r in zip(got, history):
            assert math.isclose(value, r[key], rel_tol=1e-6, abs_tol=1e-6), key
    steps = list(range(LOG_EVERY, history[-1]["step"] + 1, LOG_EVERY))
    for tag in ("step/loss", "step/recon", "step/kl", "step/lr", "step/kl_nats"):  # kl_nats: a VAE metric
        assert [e.step for e in ea.Scalars(tag)] == steps
    assert [e.value for e in ea.Scalars("step/lr")] == pytest.approx([1e-3] * len(steps))
    tags = ea.Tags()["images"]
    assert len(ea.Images("epoch/reconstructions")) == EPOCHS and "epoch/samples" in tags
    labels = (run_dir / "tensorboard" / f"{history[-1]['step']:05d}" / "codes" / "metadata.tsv").read_text().split()
    assert len(labels) == 40 and set(labels) <= {str(i) for i in range(10)}  # the 40 test rows, labelled
    assert (run_dir / "tensorboard" / f"{history[-1]['step']:05d}" / "codes" / "sprite.png").exists()


def test_tensorboard_resume_continues_the_same_stream(runs):
    straight, resumed = (_events(r) for r in runs)
    assert set(resumed.Tags()["scalars"]) == set(straight.Tags()["scalars"])
    for tag in straight.Tags()["scalars"]:
        a, b = straight.Scalars(tag), resumed.Scalars(tag)
        steps = [e.step for e in b]
        assert steps == sorted(set(steps)), tag  # strictly increasing: nothing logged twice
        assert steps == [e.step for e in a], tag
        if tag.startswith("step/"):
            assert [e.value for e in b] == pytest.approx([e.value for e in a], rel=1e-5)
    assert len(resumed.Images("epoch/reconstructions")) == EPOCHS


def test_mlflow_run_holds_params_metrics_and_artifacts(runs):
    run_dir = runs[0]
    client, run_id = _mlflow(run_dir)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    cfg = json.loads((run_dir / "config.json").read_text())
    params = run.data.params
    assert params["train.lr"] == str(cfg["train"]["lr"]) and params["model.latent"] == "2"
    assert params["model.hidden"] == "[16]" and params["data.data"] == cfg["data"]["data"]
    for group in ("model", "train", "data"):
        for key, value in cfg[group].items():
            if not isinstance(value, dict):
                assert params[f"{group}.{key}"] == (value if isinstance(value, str) else json.dumps(value))
    history = _history(run_dir)
    for key in ("train_loss", "val_loss", "train_kl", "lr", "epoch"):
        got = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        assert [s for s, _ in got] == [r["step"] for r in history]
        assert [v for _, v in got] == pytest.approx([r[key] for r in history], rel=1e-6)
    steps = [m.step for m in client.get_metric_history(run_id, "step/loss")]
    assert sorted(steps) == list(range(LOG_EVERY, history[-1]["step"] + 1, LOG_EVERY))
    names = {f.path for f in client.list_artifacts(run_id)}
    assert {"config.json", "model.safetensors", "history.json"} <= names
    assert not names & {"mlruns", "tensorboard", "checkpoint.safetensors"}


def test_mlflow_resume_continues_the_same_run(runs):
    straight, resumed = runs
    client, run_id = _mlflow(resumed)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1
    straight_client, straight_id = _mlflow(straight)
    for key in ("step/loss", "train_loss"):
        want = [m.step for m in straight_client.get_metric_history(straight_id, key)]
        got = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(got) == sorted(set(got)) == sorted(want), key  # no duplicate, none missing


def test_overwrite_removes_the_trackers_folders_it_claimed_and_keeps_the_users(runs, tmp_path):
    """A tracker's default folder is aekit's (replaced by --overwrite) only where tracking.json
    claims it: a folder of the same name that the user made stays, and --overwrite then refuses."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text((runs[0] / "config.json").read_text())
    (out / "tracking.json").write_text('{"dirs": ["mlruns", "tensorboard"]}')
    for folder in ("tensorboard", "mlruns/1"):
        (out / folder).mkdir(parents=True)
        (out / folder / "events").write_text("x")
    with io.claim_run_dir(out, overwrite=True):
        assert list(out.iterdir()) == []
    # the same folders, unclaimed: the user's
    (out / "config.json").write_text((runs[0] / "config.json").read_text())
    (out / "tracking.json").write_text("{}")
    (out / "tensorboard").mkdir()
    (out / "tensorboard" / "mine").write_text("x")
    with pytest.raises(RunError, match="tensorboard"), io.claim_run_dir(out, overwrite=True):
        pass
    assert (out / "tensorboard" / "mine").read_text() == "x"


def test_the_trackers_claim_their_default_folders(runs):
    for run in runs:  # both trackers wrote into their default folders, which they created
        assert io.claimed_tracking_dirs(run) == {"tensorboard", "mlruns"}


@pytest.mark.parametrize("module, flag", [("tensorboard", "--tensorboard"), ("mlflow", "--mlflow")])
def test_a_missing_extra_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys, module, flag):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` fails as if not installed
    cls = tracking.TensorBoardCallback if module == "tensorboard" else tracking.MLflowCallback
    message = f"{flag} needs the {module} extra: pip install 'aekit[{module}]'"
    with pytest.raises(ConfigError, match=r"^" + message.replace("[", r"\[").replace("]", r"\]") + "$"):
        cls()
    out = tmp_path / "run"
    assert run_cli(["train", "ae", "--epochs", "1", "--out", str(out), flag]) == 2
    assert capsys.readouterr().err == f"aekit: error: {message}\n"
    assert not out.exists()


def test_the_flags_show_in_the_train_help(capsys):
    assert run_cli(["train", "vae", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--tensorboard [DIR]" in text and "--mlflow [URI]" in text and "RUN_DIR/tensorboard" in text


def test_only_rank_0_writes(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(tracking.distributed, "is_main", lambda: False)
    model = torch.nn.Linear(2, 2)
    trainer = SimpleNamespace(
        global_step=0,
        history=[],
        run_dir=tmp_path,
        config=TrainConfig(),
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        _interrupt=False,
    )
    for cb in _trackers():
        cb.on_train_begin(trainer)
        for step in range(1, 5):
            cb.on_step_end(trainer, step, {"recon": 1.0})
        cb.on_epoch_end(trainer, {"epoch": 1, "step": 4, "train_loss": 1.0})
        cb.on_train_end(trainer)
    assert list(tmp_path.iterdir()) == []
