"""Data loading, splitting and scaling for aekit.

:func:`load_data` turns any supported source (a :class:`Dataset`, a numpy
array, a built-in name, a file or a folder) into a validated :class:`Dataset`;
:func:`split_data` / :func:`load_splits` make seeded train/val/test splits
(:func:`split_rows`: the same split as row numbers);
:class:`Transform` scales features reversibly. Bad input raises
:class:`~aekit.errors.DataError` naming the source and the problem.

This package does not import torch (a :class:`Transform` handles tensors only
when given one).
"""

from __future__ import annotations

from .builtin import BUILTIN_DATASETS, fashion_mnist_dir
from .config import IN_MEMORY, DataConfig, load_run_splits, run_data_config, training_rows
from .readers import Dataset, read_idx
from .splits import Splits, load_data, load_splits, split_data, split_rows
from .transform import TRANSFORM_KINDS, Transform

__all__ = [
    "BUILTIN_DATASETS",
    "IN_MEMORY",
    "TRANSFORM_KINDS",
    "DataConfig",
    "Dataset",
    "Splits",
    "Transform",
    "fashion_mnist_dir",
    "load_data",
    "load_run_splits",
    "load_splits",
    "read_idx",
    "run_data_config",
    "split_data",
    "split_rows",
    "training_rows",
]
