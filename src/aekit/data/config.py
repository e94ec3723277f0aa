"""Where a run's data comes from (:class:`DataConfig`, saved as ``config.json["data"]``) and how a
run's own data is read again, split as the run split it (:func:`load_run_splits`,
:func:`training_rows`): written once, for fitting, evaluation, compression, reports and
fine-tuning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import from_dict, option
from ..errors import ConfigError
from .readers import Dataset
from .splits import Splits, load_data, load_splits
from .transform import TRANSFORM_KINDS

#: ``DataConfig.data`` of a run trained on arrays given in memory (which cannot be read again)
IN_MEMORY = "<in-memory>"


@dataclass
class DataConfig:
    """Where the data comes from, how it is split and scaled (saved as ``config.json["data"]``)."""

    data: str = option("digits", "built-in set (digits, fashion-mnist, dsprites) or a file / folder path")
    label_column: str | None = option(None, "label column of a CSV / Parquet file (name or index)")
    data_dir: str | None = option(
        None, "folder holding a built-in set's files (else $AEKIT_DATA, then the system folder)"
    )
    val_fraction: float = option(0.1, "fraction of the training rows held out for validation")
    test_fraction: float = option(0.2, "fraction held out for testing (sets with an official test split keep it)")
    split_seed: int = option(0, "seed of the train / validation / test split")
    scale: str = option(
        "unit",
        "scaling fitted on the training split: unit = [0,1] by global min/max, "
        "standard = per-feature mean 0 / std 1, none",
        choices=TRANSFORM_KINDS,
    )
    stream: bool = option(
        False,
        "read the data from disk a window at a time instead of loading it: a .npy file "
        "or a folder of .npy / Parquet shards, shuffled by shard and within windows",
    )
    buffer_mb: float = option(
        256.0,
        "with --stream: memory for the training rows held (two windows and the next "
        "one read ahead; validation takes a quarter more)",
    )

    def validate(self) -> None:
        if not self.buffer_mb > 0:
            raise ConfigError(f"data.buffer_mb must be positive, got {self.buffer_mb}")


def run_data_config(run_config: dict[str, Any] | None) -> DataConfig | None:
    """The :class:`DataConfig` of a run configuration (``config.json``), or None when it has none."""
    data = (run_config or {}).get("data")
    return from_dict(DataConfig, data) if data else None


def load_run_splits(cfg: DataConfig, data: Any = None, image_shape: Any = None) -> Splits:
    """The splits of a run's data: ``data`` (an array or :class:`Dataset` given again, with the run's
    ``image_shape``), else the file, folder or built-in set ``cfg.data`` names, split as ``cfg`` says."""
    if isinstance(data, (np.ndarray, Dataset)):
        ds = load_data(data, image_shape=image_shape)
        return load_splits(ds, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.split_seed)
    source = cfg.data if data is None else str(data)
    if source == IN_MEMORY:
        raise ConfigError("this run was trained on in-memory data; pass the same data")
    return load_splits(
        source,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=cfg.split_seed,
        label_column=cfg.label_column,
        data_dir=cfg.data_dir,
    )


def training_rows(run_config: dict[str, Any] | None) -> np.ndarray | None:
    """The raw training split of a run (e.g. the rows a quantizer's ranges are fitted on), or None for
    a run trained on in-memory data."""
    cfg = run_data_config(run_config)
    if cfg is None or cfg.data == IN_MEMORY:
        return None
    return load_run_splits(cfg).train.x
