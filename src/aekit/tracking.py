"""Experiment tracking: Trainer callbacks that log a run to TensorBoard and to MLflow.

``aekit train VARIANT --tensorboard [DIR]`` writes TensorBoard event files (default
``RUN_DIR/tensorboard``), ``--mlflow [URI]`` logs the run to an MLflow tracking store (default a
local file store, ``file:RUN_DIR/mlruns``). Both are plain :class:`~aekit.callbacks.Callback` s, so in
Python they go to :func:`aekit.fit` (or to a :class:`~aekit.train.Trainer`) as ``callbacks=``::

    import aekit
    from aekit.tracking import MLflowCallback, TensorBoardCallback

    aekit.fit("vae", "digits", out="runs/vae", epochs=20,
              callbacks=[TensorBoardCallback(), MLflowCallback()])   # RUN_DIR/tensorboard, RUN_DIR/mlruns
    aekit.fit("ae", "digits", out="runs/ae", callbacks=[TensorBoardCallback("logs/ae", log_every=50)])

What is logged, both ways:

* every ``log_every`` optimizer steps (:data:`LOG_EVERY`, 10, by default): each loss term
  (``step/<term>``), their sum (``step/loss``) and the learning rate (``step/lr``), at the global step.
  These are the floats the Trainer hands its callbacks; tracking adds no device synchronisation.
  (Metrics that are not loss terms, e.g. ``active_units``, are logged per epoch only: the Trainer
  hands its callbacks the loss terms of a step.)
* at the end of every epoch, every number of the epoch's ``history.json`` record (``epoch/<key>``
  in TensorBoard: ``train_loss``, ``val_loss``, each term and metric, ``lr``, ``seconds`` ...; the
  same keys in MLflow, but ``step``, which is the metrics' step), at the global step of the epoch's end;
* TensorBoard only, for image data: each epoch a grid of a fixed handful of validation rows above
  their reconstructions (``epoch/reconstructions``), and for the VAE family (a model with a prior)
  decoded draws of fixed codes from the prior (``epoch/samples``); at the end the codes of the test
  rows (else the validation rows) in the embedding projector, with their labels and, for images,
  the images as sprites;
* MLflow only: the configuration as parameters (``model.latent``, ``train.lr``, ``data.data``,
  ``model.options.beta`` ...; strings as they are, other values as JSON), and at the end the run
  directory's files as artifacts (not the checkpoints, nor the tracking folders).

Only rank 0 of a distributed run logs. ``--resume`` continues the same TensorBoard stream (the
writer reopens the folder and purges anything after the checkpoint's step, so the steps stay
increasing without duplicates) and the same MLflow run (its id is kept in ``RUN_DIR/tracking.json``);
per-step MLflow values are sent when the Trainer checkpoints, so none logged after the last
checkpoint is sent twice.

Both extras are optional: without ``aekit[tensorboard]`` / ``aekit[mlflow]`` installed, constructing
the callback raises :class:`~aekit.errors.ConfigError` naming the extra. A ``file:`` tracking URI
opts in to MLflow's file store (``MLFLOW_ALLOW_FILE_STORE=true``, which MLflow 3 otherwise refuses);
give ``--mlflow http://HOST:5000`` (or any URI MLflow knows) to log to a tracking server.

Called by :func:`aekit.fit`, the callbacks also get the run's configuration and data
(:meth:`attach_run`) and are ended after the model and figures are written (:meth:`end_run`); a
Trainer used on its own ends them in ``on_train_end`` (when its ``fit`` raises, call
``callback.end_run(error)`` to close the event file and mark the MLflow run killed or failed).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import distributed
from .callbacks import Callback
from .errors import AekitError, ConfigError, RunError
from .io import TRACKING, TRACKING_DIRS, atomic_write_json, claimed_tracking_dirs

#: optimizer steps between two per-step logs (``step/<term>``, ``step/loss``, ``step/lr``)
LOG_EVERY = 10
#: the default folders, in the run directory, of the TensorBoard events and the MLflow file store
TENSORBOARD_DIR, MLRUNS_DIR = TRACKING_DIRS
#: validation rows shown with their reconstructions, samples drawn from the prior, rows embedded
N_IMAGES = 8
N_SAMPLES = 16
MAX_EMBEDDED = 1000
#: the checkpoints are not logged as MLflow artifacts (the model is)
_NOT_ARTIFACTS = ("checkpoint.safetensors", "checkpoint.prev.safetensors")


def _require_tensorboard() -> Any:
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard extra: pip install 'aekit[tensorboard]'") from None
    return SummaryWriter


def _require_mlflow() -> Any:
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("--mlflow needs the mlflow extra: pip install 'aekit[mlflow]'") from None
    return MlflowClient


# -- what both log -------------------------------------------------------------------------------
def step_scalars(trainer: Any, losses: dict[str, float]) -> dict[str, float]:
    """The per-step values: ``step/<term>`` for each loss term, ``step/loss`` (their sum),
    ``step/<metric>`` for each of the step's metrics (``trainer.step_metrics``) and ``step/lr``
    (``step/lr<i>`` for every further parameter group)."""
    out = {f"step/{k}": float(v) for k, v in losses.items()}
    out["step/loss"] = float(sum(losses.values()))
    for k, v in getattr(trainer, "step_metrics", {}).items():
        out.setdefault(f"step/{k}", float(v))
    for i, group in enumerate(trainer.optimizer.param_groups):
        out["step/lr" if i == 0 else f"step/lr{i}"] = float(group["lr"])
    return out


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
    """Every number of a ``history.json`` record (not flags like ``early_stop``, nor missing values)."""
    return {k: float(v) for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def flatten_params(run_config: dict[str, Any]) -> dict[str, str]:
    """MLflow parameters of a run's configuration: the ``model``, ``train`` and ``data`` groups
    flattened with dots (``model.latent``, ``model.options.beta``, ``train.lr``, ``data.data``),
    strings as they are and every other value as JSON (``[64, 32]``, ``null``, ``true``)."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            out[prefix] = value if isinstance(value, str) else json.dumps(value)

    for group in ("model", "train", "data"):
        if isinstance(run_config.get(group), dict):
            walk(group, run_config[group])
    if "aekit_version" in run_config:
        out["aekit_version"] = str(run_config["aekit_version"])
    return out


def _trainer_config(trainer: Any) -> dict[str, Any]:
    """The configuration a Trainer used on its own knows: its training and its model's settings."""
    from .config import to_dict

    cfg: dict[str, Any] = {"train": to_dict(trainer.config)}
    model_cfg = getattr(trainer.model, "config", None)
    if model_cfg is not None:
        with contextlib.suppress(TypeError):  # not a dataclass
            cfg["model"] = to_dict(model_cfg)
    return cfg


def read_tracking(run_dir: Path) -> dict[str, Any]:
    """``run_dir/tracking.json`` (empty when missing or unreadable)."""
    try:
        data = json.loads((run_dir / TRACKING).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_tracking(run_dir: Path, key: str, value: Any) -> None:
    atomic_write_json(run_dir / TRACKING, {**read_tracking(run_dir), key: value})


def _claim_default_dir(run_dir: Path, name: str) -> None:
    """Record in ``tracking.json`` that the tracker's default folder ``run_dir/name`` is aekit's
    (so that ``--overwrite`` replaces it with the run), unless a folder of that name was there
    already and not claimed: then it is the user's, written into but never removed."""
    claimed = claimed_tracking_dirs(run_dir)
    if name in claimed or not (run_dir / name).exists():
        _write_tracking(run_dir, "dirs", sorted({*claimed, name}))


def _first_split(splits: Any, *names: str) -> Any:
    """The first non-empty split of ``splits`` among ``names`` (None without splits or rows)."""
    if splits is None:
        return None
    return next((ds for ds in (getattr(splits, n) for n in names) if len(ds)), None)


def _unit_images(rows: np.ndarray, image_shape: Any, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Rows as images ``(N, H, W)`` (one channel) or ``(N, H, W, 3)`` in [0, 1]: the layout of
    :func:`aekit.plots._as_image`, one channel scaled over ``[lo, hi]`` (default: the rows' range)."""
    from .plots import _as_image

    imgs = np.stack([_as_image(r, image_shape) for r in np.asarray(rows)]).astype(np.float64)
    if imgs.ndim == 3:
        lo = float(imgs.min()) if lo is None else lo
        hi = float(imgs.max()) if hi is None else hi
        imgs = (imgs - lo) / (hi - lo if hi > lo else 1.0)
    return np.clip(np.nan_to_num(imgs), 0.0, 1.0)


def _grid(images: np.ndarray, cols: int) -> np.ndarray:
    """Unit images tiled ``cols`` to a row, one white pixel apart, as one ``(H, W, C)`` array."""
    from .plots import _tile

    out = _tile(list(images), cols, gap=1, fill=1.0)
    return (out[..., None] if out.ndim == 2 else out).astype(np.float32)


class _Tracker(Callback):
    """What both trackers share: active on rank 0 only, the run's configuration and data when
    :func:`aekit.fit` passes them, and the end of the run (:meth:`end_run`)."""

    def __init__(self, log_every: int):
        if not isinstance(log_every, int) or isinstance(log_every, bool) or log_every <= 0:
            raise ConfigError(f"log_every must be a positive integer, got {log_every!r}")
        self.log_every = log_every
        self.run_config: dict[str, Any] | None = None
        self.splits: Any = None
        self._managed = False  # ended by aekit.fit (after the model is written), not by on_train_end
        self._active = False
        self._trainer: Any = None
        self._start_step = 0

    def attach_run(self, *, run_config: dict[str, Any], splits: Any) -> None:
        """Called by :func:`aekit.fit` before training: the run's configuration (``config.json``) and
        its splits (for figures; for streamed data their first rows); :meth:`end_run` then ends the run."""
        self.run_config, self.splits, self._managed = run_config, splits, True

    def on_train_begin(self, trainer: Any) -> None:
        self._trainer = trainer
        self._active = distributed.is_main()
        self._start_step = trainer.global_step
        if self._active:
            self._open(trainer)

    def on_train_end(self, trainer: Any) -> None:
        if not self._managed:
            self.end_run(None)

    def end_run(self, error: BaseException | None = None) -> None:
        """End the run: ``error`` None after a run that finished (and wrote its files), else the
        exception that stopped it (an interruption keeps what was logged up to its checkpoint)."""
        if self._active:
            self._active = False
            self._close(error)

    def _checkpointing(self, trainer: Any, step: int) -> bool:
        """Whether the Trainer writes a checkpoint after this step's callbacks (``checkpoint_every``,
        or an interruption)."""
        every = trainer.config.checkpoint_every
        return bool(every and step % every == 0) or bool(getattr(trainer, "_interrupt", False))

    def _open(self, trainer: Any) -> None: ...
    def _close(self, error: BaseException | None) -> None: ...


# -- TensorBoard ---------------------------------------------------------------------------------
class TensorBoardCallback(_Tracker):
    """Log a run to TensorBoard event files (see the module's description of what is logged).

    Parameters
    ----------
    log_dir : path, optional
        The folder of the event files (default: ``RUN_DIR/tensorboard``; needed for a Trainer
        without a run directory).
    log_every : int
        Optimizer steps between two per-step logs.
    images : int
        Validation rows drawn with their reconstructions each epoch (image data; 0: none).
    samples : int
        Draws from the prior decoded each epoch (models with a prior on image data; 0: none).
    embed : int
        Most test (else validation) rows whose codes go to the embedding projector at the end (0: none).
    """

    def __init__(
        self,
        log_dir: str | Path | None = None,
        *,
        log_every: int = LOG_EVERY,
        images: int = N_IMAGES,
        samples: int = N_SAMPLES,
        embed: int = MAX_EMBEDDED,
    ):
        self._writer_cls = _require_tensorboard()
        super().__init__(log_every)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.images, self.samples, self.embed = images, samples, embed
        self.writer: Any = None

    def _open(self, trainer: Any) -> None:
        if self.log_dir is None:
            if trainer.run_dir is None:
                raise ConfigError("TensorBoardCallback needs a log_dir when the Trainer has no run directory")
            self.log_dir = trainer.run_dir / TENSORBOARD_DIR
            _claim_default_dir(trainer.run_dir, TENSORBOARD_DIR)
        step = trainer.global_step
        try:
            # everything logged after the checkpoint this run starts from is hidden: the steps stay increasing
            self.writer = self._writer_cls(str(self.log_dir), purge_step=step + 1)
        except OSError as e:
            raise RunError(f"{self.log_dir}: cannot write TensorBoard events ({e.strerror or e})") from None
        if step == 0 and self.run_config is not None:
            text = json.dumps({k: v for k, v in self.run_config.items() if k != "transform"}, indent=2)
            self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)

    def on_step_end(self, trainer: Any, step: int, losses: dict[str, float]) -> None:
        if self.writer is None:
            return
        if step % self.log_every == 0:
            for tag, value in step_scalars(trainer, losses).items():
                self.writer.add_scalar(tag, value, step)
        if self._checkpointing(trainer, step):
            self.writer.flush()  # on disk before the checkpoint that a resume starts from

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = int(record.get("step", trainer.global_step))
        for key, value in epoch_scalars(record).items():
            self.writer.add_scalar(f"epoch/{key}", value, step)
        self._images(trainer.model, step)
        self.writer.flush()  # the epoch's checkpoint follows

    def _images(self, model: Any, step: int) -> None:
        shape = getattr(getattr(model, "config", None), "image_shape", None)
        if shape is None or not hasattr(model, "reconstruct_array"):
            return
        ds = _first_split(self.splits, "val", "test", "train")  # drawn each epoch
        if ds is not None and self.images > 0:
            x = ds.x[: self.images]
            lo, hi = float(np.min(x)), float(np.max(x))
            pair = np.concatenate(
                [_unit_images(x, shape, lo, hi), _unit_images(model.reconstruct_array(x), shape, lo, hi)]
            )
            self.writer.add_image("epoch/reconstructions", _grid(pair, len(x)), step, dataformats="HWC")
        if self.samples > 0 and getattr(getattr(model, "variant", None), "prior", None) is not None:
            from .latent import sample

            drawn = sample(model, self.samples, seed=0)  # the same codes every epoch
            self.writer.add_image(
                "epoch/samples", _grid(_unit_images(drawn, shape), min(8, self.samples)), step, dataformats="HWC"
            )

    def on_train_end(self, trainer: Any) -> None:
        if self.writer is not None and trainer.global_step > self._start_step:
            self._embedding(trainer.model, trainer.global_step)
        super().on_train_end(trainer)

    def _embedding(self, model: Any, step: int) -> None:
        ds = _first_split(self.splits, "test", "val")  # embedded at the end
        if ds is None or self.embed <= 0 or not hasattr(model, "encode_array"):
            return
        import torch

        x = ds.x[: self.embed]
        codes = torch.from_numpy(np.ascontiguousarray(model.encode_array(x), dtype=np.float32))
        labels = None if ds.y is None else [str(v) for v in ds.y[: len(x)]]
        sprites = None
        if ds.image_shape is not None:
            imgs = _unit_images(x, ds.image_shape)
            imgs = imgs[..., None] if imgs.ndim == 3 else imgs
            sprites = torch.from_numpy(imgs.astype(np.float32)).permute(0, 3, 1, 2)
        self.writer.add_embedding(codes, metadata=labels, label_img=sprites, global_step=step, tag="codes")

    def _close(self, error: BaseException | None) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# -- MLflow --------------------------------------------------------------------------------------
class MLflowCallback(_Tracker):
    """Log a run to MLflow (see the module's description of what is logged), with the client API
    (:class:`mlflow.tracking.MlflowClient`): no global MLflow state is touched.

    Parameters
    ----------
    tracking_uri : str, optional
        The tracking store (default: the file store ``file:RUN_DIR/mlruns``; needed for a Trainer
        without a run directory).
    experiment : str
        The MLflow experiment, created when missing.
    run_name : str, optional
        The MLflow run's name (default: the run directory's name).
    log_every : int
        Optimizer steps between two per-step logs.
    artifacts : bool
        Log the run directory's files (``config.json``, ``model.safetensors``, ``history.json``,
        figures ...) as artifacts at the end.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        experiment: str = "aekit",
        run_name: str | None = None,
        log_every: int = LOG_EVERY,
        artifacts: bool = True,
    ):
        self._client_cls = _require_mlflow()
        super().__init__(log_every)
        self.tracking_uri = tracking_uri
        self.experiment, self.run_name, self.artifacts = experiment, run_name, artifacts
        self.client: Any = None
        self.run_id: str | None = None
        self._pending: list[Any] = []  # per-step metrics not yet sent (until the next checkpoint)
        self._run_dir: Path | None = None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """An MLflow call; its failure as one RunError sentence."""
        try:
            return fn(*args, **kwargs)
        except AekitError:
            raise
        except Exception as e:
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise RunError(f"MLflow ({self.tracking_uri}): cannot {what}: {first}") from None

    def _open(self, trainer: Any) -> None:
        self._run_dir = trainer.run_dir
        if self.tracking_uri is None:
            if trainer.run_dir is None:
                raise ConfigError("MLflowCallback needs a tracking_uri when the Trainer has no run directory")
            self.tracking_uri = "file:" + str((trainer.run_dir / MLRUNS_DIR).resolve())
            _claim_default_dir(trainer.run_dir, MLRUNS_DIR)
        if self.tracking_uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store asked for by name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.client = self._call("connect", self._client_cls, tracking_uri=self.tracking_uri)
        stored = read_tracking(trainer.run_dir).get("mlflow", {}) if trainer.run_dir is not None else {}
        resumed = trainer.global_step > 0 or bool(trainer.history)
        if resumed and isinstance(stored.get("run_id"), str) and self._exists(stored["run_id"]):
            self.run_id = stored["run_id"]
            self._call("reopen the run", self.client.update_run, self.run_id, status="RUNNING")
            self._log_params(
                self._params(trainer), existing=self._call("read the run", self.client.get_run, self.run_id)
            )
            return
        exp = self._call("read the experiment", self.client.get_experiment_by_name, self.experiment)
        exp_id = (
            exp.experiment_id
            if exp is not None
            else self._call("create the experiment", self.client.create_experiment, self.experiment)
        )
        name = self.run_name or (trainer.run_dir.name if trainer.run_dir is not None else None)
        run = self._call("create a run", self.client.create_run, exp_id, run_name=name)
        self.run_id = run.info.run_id
        if trainer.run_dir is not None:
            _write_tracking(
                trainer.run_dir,
                "mlflow",
                {"tracking_uri": self.tracking_uri, "experiment_id": exp_id, "run_id": self.run_id},
            )
        self._log_params(self._params(trainer), existing=None)
        for record in trainer.history:  # a resumed run tracked from now on: the epochs it had trained
            self._send(self._epoch_metrics(record))

    def _exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
        except Exception:
            return False
        return True

    def _params(self, trainer: Any) -> dict[str, str]:
        return flatten_params(self.run_config if self.run_config is not None else _trainer_config(trainer))

    def _log_params(self, params: dict[str, str], existing: Any) -> None:
        """Log ``params``; on a resumed run only the new ones, and a changed value (a longer
        ``train.epochs``) as a tag, since MLflow parameters cannot change."""
        from mlflow.entities import Param, RunTag

        old = dict(existing.data.params) if existing is not None else {}
        new = [Param(k, v[:6000]) for k, v in params.items() if k not in old]
        changed = [RunTag(k, v[:6000]) for k, v in params.items() if k in old and old[k] != v]
        for i in range(0, len(new), 100):
            self._call("log parameters", self.client.log_batch, self.run_id, params=new[i : i + 100])
        if changed:
            self._call("log tags", self.client.log_batch, self.run_id, tags=changed)

    def _metrics(self, values: dict[str, float], step: int) -> list[Any]:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        return [Metric(k, v, now, step) for k, v in values.items()]

    def _epoch_metrics(self, record: dict[str, Any]) -> list[Any]:
        """The record's numbers under their own names, at its step (``step`` is the metrics' step)."""
        values = epoch_scalars(record)
        return self._metrics({k: v for k, v in values.items() if k != "step"}, int(record.get("step", 0)))

    def _send(self, metrics: list[Any]) -> None:
        for i in range(0, len(metrics), 1000):
            self._call("log metrics", self.client.log_batch, self.run_id, metrics=metrics[i : i + 1000])

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._send(pending)

    def on_step_end(self, trainer: Any, step: int, losses: dict[str, float]) -> None:
        if self.client is None or not self._active:
            return
        if step % self.log_every == 0:
            self._pending += self._metrics(step_scalars(trainer, losses), step)
        if self._checkpointing(trainer, step):
            self._flush()

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.client is None or not self._active:
            return
        self._pending += self._epoch_metrics(record)
        self._flush()

    def _close(self, error: BaseException | None) -> None:
        from .train import Interrupted

        if self.client is None or self.run_id is None:  # it failed to open
            return
        if error is None:
            self._flush()
            if self.artifacts and self._run_dir is not None:
                self._log_artifacts(self._run_dir)
            self._call("end the run", self.client.set_terminated, self.run_id, "FINISHED")
            return
        try:
            if isinstance(error, (Interrupted, KeyboardInterrupt)):
                self._flush()  # the interruption's checkpoint holds these steps
            self._pending = []  # else: the steps after the last checkpoint are trained again on resume
            status = "KILLED" if isinstance(error, (Interrupted, KeyboardInterrupt)) else "FAILED"
            self.client.set_terminated(self.run_id, status)
        except Exception:  # the error that ended the run is the one to report
            pass

    def _artifact_files(self, run_dir: Path) -> Iterator[Path]:
        """The entries of ``run_dir`` logged as artifacts: not the checkpoints, temporaries, links,
        nor a folder that holds (or is) the MLflow store or the TensorBoard events."""
        trackers = [run_dir / MLRUNS_DIR, run_dir / TENSORBOARD_DIR]
        if self.tracking_uri is not None and self.tracking_uri.startswith("file:"):
            trackers.append(Path(self.tracking_uri.removeprefix("file:")))
        skip = [p.resolve() for p in trackers]
        for entry in sorted(run_dir.iterdir()):
            if entry.is_symlink() or entry.name in _NOT_ARTIFACTS or entry.name.startswith("."):
                continue
            here = entry.resolve()
            if entry.is_dir() and any(s == here or s.is_relative_to(here) for s in skip):
                continue
            if entry.is_file() or entry.is_dir():
                yield entry

    def _log_artifacts(self, run_dir: Path) -> None:
        for entry in self._artifact_files(run_dir):
            if entry.is_dir():
                self._call("log artifacts", self.client.log_artifacts, self.run_id, str(entry), entry.name)
            else:
                self._call("log artifacts", self.client.log_artifact, self.run_id, str(entry))


def from_flags(tensorboard: str | None, mlflow: str | None) -> list[Callback]:
    """The callbacks of ``aekit train``'s ``--tensorboard [DIR]`` and ``--mlflow [URI]`` (None: not
    given; an empty string: given without a value, the default place in the run directory)."""
    callbacks: list[Callback] = []
    if tensorboard is not None:
        callbacks.append(TensorBoardCallback(tensorboard or None))
    if mlflow is not None:
        callbacks.append(MLflowCallback(mlflow or None))
    return callbacks
