"""Training a registered variant into a run directory: :func:`fit`.

Every option and the data are checked first; then the run directory is claimed
(:func:`aekit.io.claim_run_dir`: created, locked, emptied of aekit's own files on overwrite),
the configuration written, the variant's layer-wise pretraining run (new runs; its layers trained by
:func:`aekit.pretrain.train_layer`), the
:class:`~aekit.train.Trainer` run, and the model and figures written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import distributed, io, variants
from .callbacks import Callback
from .config import coerce, from_dict, jsonable, to_dict
from .data import IN_MEMORY, DataConfig, Dataset, Splits, Transform, load_run_splits
from .errors import ConfigError, RunError
from .model import Autoencoder, ModelConfig, resolve_loss
from .pretrain import train_layer
from .train import CHECKPOINT, CHECKPOINTS, TrainConfig, Trainer
from .version import __version__


def _split_kwargs(kwargs: dict[str, Any], variant: str) -> dict[str, dict[str, Any]]:
    """Distribute flat keyword arguments to the model, train, data and variant-option configs."""
    spec = variants.get(variant)
    groups: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "data": {}, "options": {}}
    owners = [("model", ModelConfig), ("train", TrainConfig), ("data", DataConfig), ("options", spec.options)]
    for key, value in kwargs.items():
        for group, cls in owners:
            if key in {f.name for f in dataclasses.fields(cls)}:
                groups[group][key] = value
                break
        else:
            known = sorted({f.name for _, cls in owners for f in dataclasses.fields(cls)})
            raise ConfigError(f"unknown option {key!r} for variant {variant!r}; known options: {', '.join(known)}")
    return {group: jsonable(coerce(cls, groups[group])) for group, cls in owners}


def _check_resume(stored: dict[str, Any], given: dict[str, dict[str, Any]]) -> None:
    """On resume the stored configuration rules; a different explicit value is a mistake
    (except ``epochs``, which may be raised to train longer)."""
    for group, values in given.items():
        stored_group = stored.get("model", {}).get("options", {}) if group == "options" else stored.get(group, {})
        for key, value in values.items():
            if group == "train" and key == "epochs":
                continue
            old, new = stored_group.get(key), value
            if old != new:
                raise ConfigError(
                    f"--resume uses the run's stored configuration, but {key} differs (stored {old!r}, given {new!r})"
                )


def _has_checkpoint(out: Path) -> bool:
    """Whether ``out`` holds a checkpoint to resume from: the newest, or the previous one the
    Trainer falls back on."""
    return any((out / name).exists() for name in CHECKPOINTS)


def _same_data(given: str, stored: str) -> bool:
    """Whether the data named ``given`` is the run's ``stored`` data (the same name, or the same file)."""
    if given == stored:
        return True
    try:
        return Path(given).exists() and Path(stored).exists() and Path(given).samefile(stored)
    except OSError:
        return False


def _training_data(data: Any, cfg: DataConfig, model_dict: dict[str, Any]) -> tuple:
    """``(splits, sizes, transform, train, val, (low, high))``: the splits (for figures; for streamed
    data the first rows of each), their sizes, the transform fitted on the training rows, the
    training and validation rows in model space (tensors, or :class:`~aekit.data.stream.StreamingRows`
    read from disk a window at a time; no validation rows: None) and their range."""
    if cfg.stream:
        from .data.stream import StreamingRows, StreamSplits, fit_transform

        if cfg.data == IN_MEMORY:
            raise ConfigError(
                "stream reads a .npy file or a folder of .npy / Parquet shards; in-memory data is trained without it"
            )
        st = StreamSplits.open(
            cfg.data,
            val_fraction=cfg.val_fraction,
            test_fraction=cfg.test_fraction,
            seed=cfg.split_seed,
            label_column=cfg.label_column,
        )
        transform, low, high = fit_transform(cfg.scale, st.shards, st.train)  # one pass over the training rows
        train = StreamingRows.with_buffer(st.shards, st.train, transform, cfg.buffer_mb)
        val: StreamingRows | torch.Tensor | None = (
            StreamingRows.with_buffer(st.shards, st.val, transform, cfg.buffer_mb / 4) if len(st.val) else None
        )
        return st.preview(), st.sizes(), transform, train, val, (low, high)
    splits = load_run_splits(cfg, None if isinstance(data, (str, Path)) else data, model_dict.get("image_shape"))
    transform = Transform.fit(cfg.scale, splits.train.x, source=splits.train.source)
    train_x = transform.apply(splits.train.x)
    val = torch.from_numpy(transform.apply(splits.val.x)) if len(splits.val) else None
    sizes = {
        "train": len(splits.train),
        "val": len(splits.val),
        "test": len(splits.test),
        "source": splits.train.source,
    }
    return splits, sizes, transform, torch.from_numpy(train_x), val, (float(train_x.min()), float(train_x.max()))


def fit(
    variant: str = "ae",
    data: Any = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    callbacks: Sequence[Callback] = (),
    figures: bool = True,
    **kwargs: Any,
) -> Autoencoder:
    """Train a registered variant and return the trained model.

    Every option and the data are checked before anything is written. The run directory is then
    locked for the whole run (a second process writing to it gets a :class:`~aekit.errors.RunError`);
    a run that fails before its first checkpoint leaves nothing behind.

    Parameters
    ----------
    variant : str
        A registered variant name (``aekit.variants.names()``).
    data : str, path, ndarray or Dataset, optional
        A built-in set name, a file or folder, or in-memory data (default: ``"digits"``; on resume
        the run's own data, which a name given here must match).
    out : path, optional
        Run directory for ``config.json``, ``model.safetensors``, ``history.json``,
        checkpoints and figures. Without it nothing is written.
    resume : bool
        Continue the run in ``out`` from its checkpoint (the stored configuration is used; ``epochs``
        may be raised to train longer, not lowered below what the run has trained).
    overwrite : bool
        Replace an existing run directory: only the files aekit writes there are removed, and a
        folder holding anything else is refused.
    callbacks : sequence of Callback
        Trainer callbacks (:class:`~aekit.callbacks.Callback`), e.g. the trackers of
        :mod:`aekit.tracking`: ``callbacks=[TensorBoardCallback(), MLflowCallback()]``.
    **kwargs
        Any field of :class:`~aekit.model.ModelConfig`, :class:`~aekit.train.TrainConfig`,
        :class:`DataConfig` or the variant's options, e.g. ``latent=30, hidden=(1000, 500, 250),
        epochs=20, lr=1e-3, scale="unit"``.

    Returns
    -------
    Autoencoder
        In eval mode, with its transform attached; ``model.history`` holds the history and
        ``model.start_epoch`` the epochs the run had trained before this call (0 unless resumed).
    """
    if resume and overwrite:
        raise ConfigError("--resume continues a run and --overwrite replaces it; pass one of them")
    if data is not None and not isinstance(data, (str, Path, np.ndarray, Dataset)):
        data = np.asarray(data)
    groups = _split_kwargs(kwargs, variant)
    out_dir = Path(out) if out is not None else None
    if resume:
        if out_dir is None:
            raise ConfigError("resume needs the run directory (out)")
        if not _has_checkpoint(out_dir):
            raise RunError(f"{out_dir}: nothing to resume (no {CHECKPOINT})")
        stored = io.read_config(out_dir)
        if stored["model"]["variant"] != variant:
            raise ConfigError(
                f"--resume: the run in {out_dir} is a {stored['model']['variant']!r} run, not {variant!r}"
            )
        _check_resume(stored, groups)
        data_cfg = from_dict(DataConfig, stored["data"])
        if isinstance(data, (str, Path)) and data_cfg.data != IN_MEMORY and not _same_data(str(data), data_cfg.data):
            raise ConfigError(
                f"--resume continues the run on its own data ({data_cfg.data}), but the data given "
                f"is {data}; leave --data out or start a new run"
            )
        train_cfg = from_dict(
            TrainConfig, {**stored["train"], **{k: v for k, v in groups["train"].items() if k == "epochs"}}
        )
        model_dict = dict(stored["model"])
    else:
        data = "digits" if data is None else data
        if isinstance(data, (str, Path)):
            groups["data"]["data"] = str(data)
        else:
            groups["data"]["data"] = IN_MEMORY
        data_cfg = from_dict(DataConfig, groups["data"])
        train_cfg = from_dict(TrainConfig, groups["train"])
        model_dict = {
            **variants.get(variant).defaults,
            **groups["model"],
            "variant": variant,
            "options": groups["options"],
        }
    if data_cfg.data == IN_MEMORY and (data is None or isinstance(data, (str, Path))):
        raise ConfigError("this run was trained on in-memory data; pass the same array to resume it")
    if data_cfg.stream and not resume:
        spec = variants.get(variant)
        reason = spec.cls.in_memory_reason(from_dict(spec.options, model_dict["options"], where=f"{variant} options"))
        if reason is not None:
            raise ConfigError(reason)
    if out_dir is not None:
        io.check_outside(out_dir, (data_cfg.data,))
    splits, sizes, transform, train_t, val_x, (low, high) = _training_data(data, data_cfg, model_dict)
    if "loss" in model_dict:  # else ModelConfig's own default
        model_dict["loss"] = resolve_loss(model_dict["loss"], low, high)
    model_dict["input_dim"] = splits.train.n_features
    model_dict["image_shape"] = splits.train.image_shape
    model_cfg = from_dict(ModelConfig, model_dict)
    if model_cfg.loss == "bce" and (low < 0 or high > 1):
        raise ConfigError("the bce loss needs targets in [0, 1]; use --scale unit")
    if resume:
        stored_t = Transform.from_dict(stored["transform"])
        if not np.array_equal(stored_t.shift, transform.shift) or not np.array_equal(stored_t.scale, transform.scale):
            raise RunError(f"cannot resume {out_dir}: the training data differ from the stored run's")
    torch.manual_seed(train_cfg.seed)
    model = Autoencoder(model_cfg, transform)  # every option is checked before anything is written
    distributed.init_from_env()  # under torchrun: only rank 0 writes the run directory
    run_config = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "aekit_version": __version__,
        "model": to_dict(model_cfg),
        "train": to_dict(train_cfg),
        "data": to_dict(data_cfg),
        "transform": transform.to_dict(),
        "splits": sizes,
    }
    if resume:
        run_config["created"] = stored.get("created", run_config["created"])
    if distributed.active():
        run_config["distributed"] = {"processes": distributed.world_size(), "backend": distributed.backend()}
    start = _StartOfTraining(out_dir if resume else None, stored if resume else None, run_config)
    # the device is resolved here: nothing is created for a run that cannot start
    trainer = Trainer(model, train_cfg, run_dir=out_dir, callbacks=[start, *callbacks], progress=progress)
    for cb in callbacks:  # trackers (aekit.tracking): the run's configuration and data, ended below
        attach = getattr(cb, "attach_run", None)
        if callable(attach):
            attach(run_config=run_config, splits=splits)
    with contextlib.ExitStack() as held:
        if out_dir is not None:
            claim = io.claim_run_dir(out_dir, resume=resume, overwrite=overwrite, inputs=(data_cfg.data,))
            distributed.on_main(held.enter_context, claim)
            if not resume:
                distributed.on_main(io.write_config, out_dir, run_config)
        if not resume:
            record = model.variant.pretrain(
                model, train_t, seed=train_cfg.seed, progress=progress, train_layer=train_layer
            )
            if record is not None:
                model.pretrain_record = record
                if out_dir is not None and distributed.is_main():
                    io.atomic_write_json(out_dir / io.PRETRAIN, record)
        try:
            history = trainer.fit(train_t, val_x, resume=resume)
            model.eval()
            model.run_config = run_config
            model.history = history
            model.start_epoch = start.epoch
            finished_before = (
                resume and trainer.global_step == start.step and out_dir is not None and (out_dir / io.MODEL).exists()
            )
            if out_dir is not None and not finished_before:  # a resume with nothing left to train writes nothing
                distributed.on_main(_write_results, out_dir, model, history, splits, figures)
        except BaseException as e:
            _end_runs(callbacks, e)
            raise
        distributed.on_main(_end_runs, callbacks, None)  # after the model and figures are written: trackers log them
    return model


def _end_runs(callbacks: Sequence[Callback], error: BaseException | None) -> None:
    """End the trackers among ``callbacks`` (their ``end_run``): ``error`` None after a run that
    finished, else the exception that ended it (which stays the one raised)."""
    for cb in callbacks:
        end = getattr(cb, "end_run", None)
        if not callable(end):
            continue
        if error is None:
            end(None)
        else:
            with contextlib.suppress(Exception):
                end(error)


class _StartOfTraining(Callback):
    """Notes where training starts (after a resume: where the checkpoint left it) and, on a resume
    that trains longer, writes the configuration with the new number of epochs, now that the
    checkpoint is known to be good."""

    def __init__(self, run_dir: Path | None, stored: dict[str, Any] | None, run_config: dict[str, Any]):
        self.run_dir, self.stored, self.run_config = run_dir, stored, run_config
        self.step = self.epoch = 0

    def on_train_begin(self, trainer: Trainer) -> None:
        self.step, self.epoch = trainer.global_step, len(trainer.history)
        if self.run_dir is None or self.stored is None or not distributed.is_main():
            return
        if self.stored.get("train", {}).get("epochs") != self.run_config["train"]["epochs"]:
            io.write_config(
                self.run_dir, {k: v for k, v in self.run_config.items() if k not in ("format", "format_version")}
            )


def _write_results(out_dir: Path, model: Autoencoder, history: list, splits: Splits, figures: bool) -> None:
    io.save_model(out_dir, model)
    if figures:
        from .plots import run_figures

        run_figures(out_dir, model, history, splits)
