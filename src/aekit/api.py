"""The Python entry points: :func:`fit` trains a variant into a run directory, :func:`evaluate`
measures a trained model against the PCA baseline of the same code size (and, with ``noise``,
its denoising), :func:`denoise` reconstructs noisy data with a trained model."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from . import distributed, io, variants
from .config import coerce, from_dict, jsonable, option, to_dict
from .data import TRANSFORM_KINDS, Dataset, Splits, Transform, load_data, load_splits
from .errors import ConfigError, RunError
from .model import Autoencoder, ModelConfig
from .noise import DEFAULT_NU, DEFAULT_SIGMA, corrupt
from .noise import check_parameters as check_noise
from .train import CHECKPOINT, CHECKPOINTS, Callback, Trainer, TrainConfig

IN_MEMORY = "<in-memory>"
#: factor combinations drawn by ``evaluate`` to score the MIG of a run trained on ``dsprites``
DSPRITES_MIG_N = 10_000


@dataclass
class DataConfig:
    """Where the data comes from, how it is split and scaled (saved as ``config.json["data"]``)."""

    data: str = option("digits", "built-in set (digits, fashion-mnist, dsprites) or a file / folder path")
    label_column: str | None = option(None, "label column of a CSV / Parquet file (name or index)")
    data_dir: str | None = option(None, "folder holding a built-in set's files "
                                        "(else $AEKIT_DATA, then the system folder)")
    val_fraction: float = option(0.1, "fraction of the training rows held out for validation")
    test_fraction: float = option(0.2, "fraction held out for testing (sets with an official test split keep it)")
    split_seed: int = option(0, "seed of the train / validation / test split")
    scale: str = option("unit", "scaling fitted on the training split: unit = [0,1] by global min/max, "
                                "standard = per-feature mean 0 / std 1, none", choices=TRANSFORM_KINDS)
    stream: bool = option(False, "read the data from disk a window at a time instead of loading it: a .npy file "
                                 "or a folder of .npy / Parquet shards, shuffled by shard and within windows")
    buffer_mb: float = option(256.0, "with --stream: memory for the training rows held (two windows and the next "
                                     "one read ahead; validation takes a quarter more)")

    def validate(self) -> None:
        if not self.buffer_mb > 0:
            raise ConfigError(f"data.buffer_mb must be positive, got {self.buffer_mb}")


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
                raise ConfigError(f"--resume uses the run's stored configuration, but {key} differs "
                                  f"(stored {old!r}, given {new!r})")


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


def _load_data(data: Any, cfg: DataConfig, model_cfg: dict[str, Any]) -> Splits:
    if isinstance(data, (np.ndarray, Dataset)):
        ds = load_data(data, image_shape=model_cfg.get("image_shape"))
        return load_splits(ds, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.split_seed)
    return load_splits(cfg.data, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                       seed=cfg.split_seed, label_column=cfg.label_column, data_dir=cfg.data_dir)


def _training_data(data: Any, cfg: DataConfig, model_dict: dict[str, Any]) -> tuple:
    """``(splits, sizes, transform, train, val, (low, high))``: the splits (for figures; for streamed
    data the first rows of each), their sizes, the transform fitted on the training rows, the
    training and validation rows in model space (tensors, or :class:`~aekit.data.stream.StreamingRows`
    read from disk a window at a time; no validation rows: None) and their range."""
    if cfg.stream:
        from .data.stream import StreamingRows, StreamSplits, fit_transform
        if cfg.data == IN_MEMORY:
            raise ConfigError("stream reads a .npy file or a folder of .npy / Parquet shards; in-memory data "
                              "is trained without it")
        st = StreamSplits.open(cfg.data, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                               seed=cfg.split_seed, label_column=cfg.label_column)
        transform, low, high = fit_transform(cfg.scale, st.shards, st.train)  # one pass over the training rows
        train = StreamingRows.with_buffer(st.shards, st.train, transform, cfg.buffer_mb)
        val = StreamingRows.with_buffer(st.shards, st.val, transform, cfg.buffer_mb / 4) if len(st.val) else None
        return st.preview(), st.sizes(), transform, train, val, (low, high)
    splits = _load_data(data, cfg, model_dict)
    transform = Transform.fit(cfg.scale, splits.train.x, source=splits.train.source)
    train_x = transform.apply(splits.train.x)
    val = torch.from_numpy(transform.apply(splits.val.x)) if len(splits.val) else None
    sizes = {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test),
             "source": splits.train.source}
    return splits, sizes, transform, torch.from_numpy(train_x), val, (float(train_x.min()), float(train_x.max()))


def fit(variant: str = "ae", data: Any = None, *, out: str | Path | None = None, resume: bool = False,
        overwrite: bool = False, progress: bool | None = None, callbacks: Sequence[Callback] = (),
        figures: bool = True, **kwargs: Any) -> Autoencoder:
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
            raise ConfigError(f"--resume: the run in {out_dir} is a {stored['model']['variant']!r} run, "
                              f"not {variant!r}")
        _check_resume(stored, groups)
        data_cfg = from_dict(DataConfig, stored["data"])
        if isinstance(data, (str, Path)) and data_cfg.data != IN_MEMORY and not _same_data(str(data), data_cfg.data):
            raise ConfigError(f"--resume continues the run on its own data ({data_cfg.data}), but the data given "
                              f"is {data}; leave --data out or start a new run")
        train_cfg = from_dict(TrainConfig, {**stored["train"], **{k: v for k, v in groups["train"].items()
                                                                    if k == "epochs"}})
        model_dict = dict(stored["model"])
    else:
        data = "digits" if data is None else data
        if isinstance(data, (str, Path)):
            groups["data"]["data"] = str(data)
        else:
            groups["data"]["data"] = IN_MEMORY
        data_cfg = from_dict(DataConfig, groups["data"])
        train_cfg = from_dict(TrainConfig, groups["train"])
        model_dict = {**variants.get(variant).defaults, **groups["model"], "variant": variant,
                      "options": groups["options"]}
    if data_cfg.data == IN_MEMORY and (data is None or isinstance(data, (str, Path))):
        raise ConfigError("this run was trained on in-memory data; pass the same array to resume it")
    if data_cfg.stream and not resume and getattr(from_dict(variants.get(variant).options, model_dict["options"],
                                                            where=f"{variant} options"), "pretrain", "none") != "none":
        raise ConfigError("layer-wise pretraining needs the data in memory; use --pretrain none with --stream")
    if out_dir is not None:
        io.check_outside(out_dir, (data_cfg.data,))
    splits, sizes, transform, train_t, val_x, (low, high) = _training_data(data, data_cfg, model_dict)
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
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "aekit_version": _version(),
        "model": to_dict(model_cfg), "train": to_dict(train_cfg), "data": to_dict(data_cfg),
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
    with contextlib.ExitStack() as held:
        if out_dir is not None:
            claim = io.claim_run_dir(out_dir, resume=resume, overwrite=overwrite, inputs=(data_cfg.data,))
            distributed.on_main(held.enter_context, claim)
            if not resume:
                distributed.on_main(io.write_config, out_dir, run_config)
        if not resume:
            record = model.variant.pretrain(model, train_t, seed=train_cfg.seed, progress=progress)
            if record is not None:
                model.pretrain_record = record
                if out_dir is not None and distributed.is_main():
                    io.atomic_write_json(out_dir / io.PRETRAIN, record)
        history = trainer.fit(train_t, val_x, resume=resume)
        model.eval()
        model.run_config = run_config
        model.history = history
        model.start_epoch = start.epoch
        finished_before = resume and trainer.global_step == start.step and (out_dir / io.MODEL).exists()
        if out_dir is not None and not finished_before:  # a resume with nothing left to train writes nothing
            distributed.on_main(_write_results, out_dir, model, history, splits, figures)
    return model


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
            io.write_config(self.run_dir, {k: v for k, v in self.run_config.items()
                                           if k not in ("format", "format_version")})


def _write_results(out_dir: Path, model: Autoencoder, history: list, splits: Splits, figures: bool) -> None:
    io.save_model(out_dir, model)
    if figures:
        from .plots import run_figures
        run_figures(out_dir, model, history, splits)


def _version() -> str:
    from . import __version__
    return __version__


def evaluate(model: Autoencoder | str | Path, data: Any = None, *, split: str = "test",
             pca: bool = True, noise: str | None = None, sigma: float = DEFAULT_SIGMA, nu: float = DEFAULT_NU,
             noise_seed: int = 0, iw_samples: int = 100, bits: int | None = None,
             ranges: str = "minmax", splits: Splits | None = None) -> dict[str, Any]:
    """Reconstruction error of a trained model and of PCA with the same code size; with
    ``noise``, also how well the model denoises.

    Errors are measured in model space (after the run's scaling, e.g. pixel values in
    [0, 1] with ``scale="unit"``), as Hinton & Salakhutdinov (2006) report them: the mean
    over examples of the summed squared error per example, and the mean squared error per
    value. PCA is fitted on the run's training split.

    Parameters
    ----------
    model : Autoencoder or run directory
    data : optional
        Data to evaluate: default the run's own data source, ``split`` of it. A different
        file or array is evaluated whole.
    split : {"test", "val", "train", "all"}
    noise : {"mask", "gaussian", "salt_pepper"}, optional
        Corrupt the clean evaluation data with this process of :mod:`aekit.noise` (Vincent et
        al. 2008, 2010) and add the keys of :func:`denoising_scores` (``noise``,
        ``psnr_noisy``, ``psnr_denoised``, ``denoised``) to the result. Without it the result
        is unchanged.
    sigma : float
        Standard deviation of the ``gaussian`` noise.
    nu : float
        Fraction of the entries of each example corrupted by ``mask`` and ``salt_pepper``.
    noise_seed : int
        Seed of the ``torch.Generator`` drawing the noise (the same seed, the same corruption).
    iw_samples : int
        For the VAE family: importance samples per example of the estimate of -log p(x)
        (:func:`aekit.variants.vae.likelihood_bounds`), added with the negative ELBO as
        ``likelihood``; 5000 for reported figures, 0 to skip.

    bits : int, optional
        Quantize the codes to this many bits per dimension (1 .. 16; ranges fitted on the training
        codes by ``ranges``, "minmax" or "quantile") and add ``compression``: bits per input (fixed
        and the symbols' empirical entropy) and the distortion of the decoded codes, for the model
        and (with ``pca``) for PCA quantized the same way (:func:`aekit.compress.compression_scores`).
    splits : Splits, optional
        The run's own data, already split as the run split it (a caller that has loaded it, such
        as :func:`aekit.report.report`, saves reading it again).

    A run trained on the built-in ``dsprites`` set also gets ``mig``: the Mutual Information Gap
    (:func:`aekit.metrics.dsprites_mig`) of its codes on :data:`DSPRITES_MIG_N` freshly drawn
    factor combinations, with each factor's gap and the code-by-factor mutual information
    normalized by the factor's entropy (``normalized_mutual_info``, one row per code dimension).
    """
    from .metrics import pca_reconstruction_errors, reconstruction_errors

    if noise is not None:
        check_noise(noise, nu=nu, sigma=sigma)
    if bits is not None:
        from .compress import check_bits
        check_bits(bits)
    if not isinstance(model, Autoencoder):
        model = io.load(model)
    cfg = getattr(model, "run_config", None) or {}
    data_cfg = from_dict(DataConfig, cfg.get("data")) if cfg.get("data") else None
    if split not in ("test", "val", "train", "all"):
        raise ConfigError(f"split must be test, val, train or all; got {split!r}")
    own = data is None or (data_cfg is not None and isinstance(data, (str, Path)) and str(data) == data_cfg.data)
    reloadable = data_cfg is not None and data_cfg.data != IN_MEMORY
    if own and not reloadable:
        raise ConfigError("this run was trained on in-memory data; pass the data to evaluate")
    train_x = None
    if reloadable and (own or pca or bits is not None):  # own split, or training rows for PCA / quantizer ranges
        if splits is None:
            splits = _load_data(data_cfg.data, data_cfg, {})
        train_x = splits.train.x
    if own:
        ds = {"test": splits.test, "val": splits.val, "train": splits.train}.get(split)
        x = ds.x if ds is not None else np.concatenate([splits.train.x, splits.val.x, splits.test.x])
        source, evaluated = data_cfg.data, split
    else:
        ds = load_data(data, label_column=data_cfg.label_column if data_cfg else None)
        x, source, evaluated = ds.x, ds.source, "all"
    if len(x) == 0:
        raise ConfigError(f"the {split} split of {source} is empty")
    X = model._prepare(x, where=str(source))
    recon = _reconstruct(model, X)
    result: dict[str, Any] = {"data": str(source), "split": evaluated, "n": int(len(x)),
                              "space": f"model inputs after the run's '{model.transform.kind}' scaling"
                              if model.transform is not None else "raw",
                              "code_size": model.config.latent,
                              "autoencoder": reconstruction_errors(X, recon)}
    # the training rows in model space, once for PCA and the quantizer ranges (without them: X itself)
    fit_x = X
    if train_x is not None and (pca or bits is not None):
        fit_x = model.transform.apply(train_x) if model.transform is not None else train_x
    if pca and train_x is not None:
        result["pca"] = pca_reconstruction_errors(fit_x, X, model.config.latent, seed=0)
        pe = result["pca"]["per_example_squared_error"]
        result["ratio_to_pca"] = result["autoencoder"]["per_example_squared_error"] / pe if pe > 0 else None
    if own and data_cfg.data == "dsprites":  # generated with its factors: disentanglement is measurable
        from .metrics import dsprites_mig
        result["mig"] = {k: v for k, v in dsprites_mig(model.encode_array, n=DSPRITES_MIG_N).items()
                         if k in ("mig", "gaps", "factor_names", "normalized_mutual_info")}
    if model.variant.generative and iw_samples:
        from .variants.vae import likelihood_bounds
        result["likelihood"] = likelihood_bounds(model, X, iw_samples)
    if noise is not None:
        result.update(denoising_scores(model, X, noise, sigma=sigma, nu=nu, seed=noise_seed))
    if bits is not None:  # quantizer ranges (and PCA) fitted on the training rows; else on X itself
        from .compress import compression_scores
        result["compression"] = compression_scores(model, X, fit_x, bits, ranges=ranges,
                                                   pca=pca and train_x is not None)
    return result


def _reconstruct(model: Autoencoder, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Reconstructions of model-space rows ``X``, in model space (eval mode: no corruption)."""
    return model._batched(X, model.reconstruct, batch_size)


def _noise_range(model: Autoencoder, X: np.ndarray) -> tuple[float, float, bool]:
    """The data range ``(lo, hi)`` in model space and whether it is the fixed [0, 1] of the
    ``unit`` scaling (else the clean data's own min and max)."""
    if model.transform is not None and model.transform.kind == "unit":
        return 0.0, 1.0, True
    return float(X.min()), float(X.max()), False


def psnr_data_range(model: Autoencoder, X: np.ndarray) -> float:
    """The data range R of a PSNR of model-space rows ``X``: 1 for the ``unit`` scaling, else
    ``X``'s max - min (1 when ``X`` is constant)."""
    lo, hi, _ = _noise_range(model, X)
    return hi - lo if hi > lo else 1.0


def denoising_scores(model: Autoencoder, X: np.ndarray, kind: str, *, sigma: float = DEFAULT_SIGMA,
                     nu: float = DEFAULT_NU, seed: int = 0) -> dict[str, Any]:
    """Corrupt clean model-space rows ``X``, denoise them with ``model``, and score both.

    The corruption is :func:`aekit.noise.corrupt` (Vincent et al. 2008, 2010) drawn from a
    ``torch.Generator`` seeded with ``seed``. The data range :math:`[lo, hi]` is [0, 1] when
    the run's scaling is ``unit``, else the min and max of the clean ``X``; Gaussian noise is
    clipped to [0, 1] with the unit scaling only, and salt-and-pepper noise uses ``lo`` and
    ``hi`` as its values.

    Returns
    -------
    dict
        ``noise``: the corruption settings and the data range :math:`R = hi - lo`;
        ``psnr_noisy`` and ``psnr_denoised``: mean per-example PSNR in dB of the corrupted and
        of the denoised data against the clean data (:func:`aekit.metrics.psnr` with data range
        :math:`R`); ``denoised``: :func:`aekit.metrics.reconstruction_errors` of the denoised
        data against the clean data.
    """
    from .metrics import psnr, reconstruction_errors

    lo, hi, unit = _noise_range(model, X)
    clip = (lo, hi) if unit and kind == "gaussian" else None
    gen = torch.Generator().manual_seed(int(seed))
    noisy = corrupt(torch.from_numpy(X), kind, nu=nu, sigma=sigma, low=lo, high=hi, clip=clip,
                    generator=gen).numpy()
    denoised = _reconstruct(model, noisy)
    data_range = hi - lo if hi > lo else 1.0  # psnr_data_range, from the range already taken
    settings: dict[str, Any] = {"kind": kind, "seed": int(seed)}
    if kind == "gaussian":
        settings.update(sigma=sigma, clip=[lo, hi] if clip else None)
    else:
        settings["nu"] = nu
    if kind == "salt_pepper":
        settings.update(low=lo, high=hi)
    settings["data_range"] = data_range
    settings["note"] = ("noise added in model space" +
                        (", clipped to [0, 1], the data range of the unit scaling" if clip else "") +
                        "; psnr_*: mean per-example PSNR in dB against the clean data with data range " +
                        ("1.0 (unit scaling)" if unit else "max - min of the clean data (the scaling is not unit)"))
    return {"noise": settings, "psnr_noisy": psnr(X, noisy, data_range),
            "psnr_denoised": psnr(X, denoised, data_range), "denoised": reconstruction_errors(X, denoised)}


def anomaly_scores(model: Autoencoder | str | Path, X: Any, *, elbo_samples: int = 32, batch_size: int = 4096,
                   where: str = "input", complexity: bool | tuple[float, float] = False) -> np.ndarray:
    """The anomaly score of each row of raw data ``X`` (higher: less like the training data).

    For every variant but the VAE family, the summed squared reconstruction error
    ``||x - g(f(x))||^2`` in the units of ``X``; for the VAE family minus the evidence lower bound,
    in nats, with ``elbo_samples`` Monte Carlo draws shared by every row
    (:func:`aekit.variants.vae.elbo_per_example`). ``model`` is a model or a run directory.

    With ``complexity`` the scores are corrected by each row's input complexity (Serra et al.
    2020; :func:`correct_for_complexity`), the rows being quantized to 8 bits over the run's
    training data range (``True``; the run's data is reloaded, so it must not have been trained
    on in-memory data) or over a given ``(low, high)``.
    """
    if isinstance(elbo_samples, bool) or not isinstance(elbo_samples, int) or elbo_samples < 1:
        raise ConfigError(f"elbo_samples must be a positive integer, got {elbo_samples!r}")
    if not isinstance(model, Autoencoder):
        model = io.load(model)
    data_range = _complexity_range(model, complexity)
    raw = model._raw_rows(X, where)
    X = model.transform.apply(raw) if model.transform is not None else raw
    scores = model_space_anomaly_scores(model, X, elbo_samples=elbo_samples, batch_size=batch_size)
    if data_range is None:
        return scores
    from .metrics import input_complexity
    return correct_for_complexity(scores, input_complexity(raw, *data_range), model.variant.generative)


def _complexity_range(model: Autoencoder, complexity: Any) -> tuple[float, float] | None:
    """The ``(low, high)`` quantized by :func:`anomaly_scores`'s ``complexity``, or None for none."""
    if complexity is False or complexity is None:
        return None
    if complexity is True:
        from .compress import training_rows
        train = training_rows(model)
        if train is None:
            raise ConfigError("complexity=True needs the run's training data range, but the run was trained on "
                              "in-memory data; pass complexity=(low, high)")
        return float(np.min(train)), float(np.max(train))
    try:
        low, high = (float(v) for v in complexity)
    except (TypeError, ValueError):
        raise ConfigError(f"complexity must be True, False or a (low, high) pair, got {complexity!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ConfigError(f"complexity range must be finite with low < high, got ({low}, {high})")
    return low, high


def correct_for_complexity(scores: np.ndarray, bits: np.ndarray, generative: bool) -> np.ndarray:
    """Anomaly ``scores`` corrected by the rows' input complexity ``bits``
    (:func:`aekit.metrics.input_complexity`; Serra et al. 2020, "Input complexity and
    out-of-distribution detection with likelihood-based generative models", ICLR).

    Minus the ELBO (the VAE family, ``generative``) becomes Serra et al.'s score
    :math:`-\\mathrm{ELBO}(x) - L(x) \\ln 2` (nats less the input's length under a generic
    compressor); a reconstruction error is divided by :math:`L(x)`, an error per bit of input.
    Either way simple inputs, which any model reconstructs well, stop looking typical for
    that reason alone."""
    return scores - bits * np.log(2.0) if generative else scores / bits


def model_space_anomaly_scores(model: Autoencoder, X: np.ndarray, *, elbo_samples: int = 32,
                               batch_size: int = 4096) -> np.ndarray:
    """:func:`anomaly_scores` of rows already in model space (after the run's scaling), computed in
    their precision (float32, or float64 with a float64 copy of the model)."""
    if model.variant.generative:
        from .variants.vae import elbo_per_example
        return -elbo_per_example(model, X, elbo_samples)
    recon = model._batched(X, model.reconstruct, batch_size)
    if model.transform is not None:  # errors in the input's units
        X, recon = (model.transform.invert(a, dtype=X.dtype) for a in (X, recon))
    return ((X - recon) ** 2).sum(1)


def denoise(model: Autoencoder | str | Path, X: Any, *, batch_size: int = 4096, where: str = "input") -> np.ndarray:
    """The model's reconstruction of raw (noisy) data ``X``, in the original units.

    The run's transform is applied, the rows are reconstructed in eval mode (no corruption)
    and the transform is inverted: this is what a denoising autoencoder (Vincent et al.
    2008, 2010), trained to map a corrupted :math:`\\tilde x` to the clean :math:`x`, is for;
    for any other variant it is its plain reconstruction.

    Parameters
    ----------
    model : Autoencoder or run directory
    X : array-like, shape (N, D) or (N, C, H, W) / (N, H, W), or Dataset
        Raw data in the units of the training data.
    batch_size : int
        Rows per batch.
    where : str
        Name of the data in error messages.

    Returns
    -------
    ndarray
        float32, shaped like ``X`` (``(N, D)`` for a Dataset).
    """
    if not isinstance(model, Autoencoder):
        model = io.load(model)
    x = X.x if isinstance(X, Dataset) else np.asarray(X)
    out = model.reconstruct_array(x, batch_size=batch_size, where=where)
    return out.reshape(x.shape) if x.ndim > 2 else out
