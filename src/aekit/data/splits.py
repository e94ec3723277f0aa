"""Loading any supported source as a :class:`~aekit.data.readers.Dataset` (:func:`load_data`) and
seeded train / validation / test splits (:func:`split_data`, :func:`load_splits`, :func:`split_rows`)."""

from __future__ import annotations

import dataclasses
import numbers
import os
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .builtin import BUILTIN_DATASETS, load_builtin
from .readers import Dataset, array_dataset, read_path


@dataclass(frozen=True, eq=False)
class Splits:
    """Train, validation and test subsets of one data set."""

    train: Dataset
    val: Dataset
    test: Dataset


def _load_parts(source, label_column, data_dir, image_shape) -> tuple[Dataset, Dataset | None]:
    """Load ``source`` as (data, official test set or None), applying ``image_shape``."""
    if isinstance(source, str) and source in BUILTIN_DATASETS:
        parts = load_builtin(source, data_dir)
    elif isinstance(source, (str, os.PathLike)):
        parts = read_path(source, label_column=label_column), None
    elif isinstance(source, Dataset):
        parts = source, None
    elif isinstance(source, np.ndarray):
        parts = array_dataset(source, "array"), None
    else:
        raise DataError(
            f"cannot load data from a {type(source).__name__}; expected a Dataset, a numpy array, "
            f"a built-in name ({', '.join(BUILTIN_DATASETS)}) or a path"
        )
    if image_shape is None:
        return parts
    data, test = parts
    return (
        dataclasses.replace(data, image_shape=image_shape),
        None if test is None else dataclasses.replace(test, image_shape=image_shape),
    )


def _concatenate(a: Dataset, b: Dataset, source: str) -> Dataset:
    """Stack the rows (and labels, when both have them) of two data sets."""
    y = None if a.y is None or b.y is None else np.concatenate([a.y, b.y])
    return Dataset(np.concatenate([a.x, b.x]), y, a.image_shape, source)


def load_data(source, *, label_column=None, data_dir=None, image_shape=None) -> Dataset:
    """Load a data set from any supported source.

    Parameters
    ----------
    source : Dataset, numpy.ndarray, str or os.PathLike
        A :class:`Dataset` (returned as is); a numpy array (2-D rows, 3-D
        ``(n, H, W)`` single-channel images, 4-D ``(n, C, H, W)`` or
        ``(n, H, W, C)`` images); a built-in name (:data:`BUILTIN_DATASETS`;
        ``"fashion-mnist"`` gives its train and test sets concatenated, 70000
        rows); or a path: ``.npy``, ``.npz``, ``.csv``/``.tsv``/``.txt``
        (tables and ``.npy`` also compressed: ``x.csv.gz``, ``.bz2``, ``.xz``),
        ``.parquet``/``.pq``, an IDX file (optionally ``.gz``), or a folder of
        PNG/JPEG/BMP images (16-bit grayscale PNGs at full depth, 0..65535).
        Only regular files are read: a named pipe or a device is refused.
    label_column : str or int, optional
        Label column of a CSV or Parquet table (name, or position); ignored
        for sources without columns.
    data_dir : str or os.PathLike, optional
        Folder holding the files of built-in sets (see :func:`fashion_mnist_dir`).
    image_shape : tuple of int, optional
        ``(C, H, W)`` or ``(H, W)`` declaring that the rows are images; its
        product must equal the number of features.

    Returns
    -------
    Dataset
        At least one row; float32 finite features.

    Raises
    ------
    DataError
        The source is missing, unreadable or invalid.
    ConfigError
        A malformed ``image_shape``.
    """
    data, test = _load_parts(source, label_column, data_dir, image_shape)
    if test is not None:
        data = _concatenate(data, test, source)
    if len(data) == 0:
        raise DataError(f"{data.source}: no data rows")
    return data


def _check_fractions(val_fraction, test_fraction) -> None:
    """Raise ConfigError unless both fractions lie in [0, 1) and sum below 1."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0 or not value < 1:
            raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(f"val_fraction + test_fraction must be below 1, got {val_fraction} + {test_fraction}")


def split_data(ds: Dataset, *, val_fraction=0.1, test_fraction=0.2, seed=0) -> Splits:
    """Split rows at random into train, validation and test subsets.

    The split is a permutation drawn from ``numpy.random.default_rng(seed)``,
    so it is deterministic for a given seed. The validation and test sets get
    ``round(n * fraction)`` rows (possibly none); the rest is the training
    set. Each subset keeps the original row order.

    Parameters
    ----------
    ds : Dataset
        The rows to split.
    val_fraction, test_fraction : float
        Fractions in [0, 1) with a sum below 1.
    seed : int or None
        Seed of the permutation.

    Returns
    -------
    Splits

    Raises
    ------
    ConfigError
        Fractions outside [0, 1) or summing to 1 or more.
    DataError
        Too few rows to leave a non-empty training set.
    """
    rows = split_rows(len(ds), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, source=ds.source)
    return Splits(*(ds.subset(index) for index in rows))


def split_rows(
    n: int, *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0, source: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted row numbers of the train, validation and test splits of ``n`` rows.

    The rows :func:`split_data` keeps in each subset of a set of ``n`` rows (it uses this), so a
    streamed source (:mod:`aekit.data.stream`) is split like an in-memory one with the same seed:
    a permutation drawn from ``numpy.random.default_rng(seed)``, whose first ``round(n *
    test_fraction)`` rows are the test set and next ``round(n * val_fraction)`` the validation set.

    Parameters
    ----------
    n : int
        Number of rows.
    val_fraction, test_fraction : float
        Fractions in [0, 1) with a sum below 1.
    seed : int or None
        Seed of the permutation.
    source : str, optional
        Name of the data, the prefix (``"{source}: "``) of the error message.

    Returns
    -------
    train, val, test : ndarray
        Sorted row numbers.

    Raises
    ------
    ConfigError
        Fractions outside [0, 1) or summing to 1 or more.
    DataError
        Too few rows to leave a non-empty training set.
    """
    _check_fractions(val_fraction, test_fraction)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n - n_val - n_test < 1:
        where = "" if source is None else f"{source}: "
        raise DataError(
            f"{where}{n} rows are too few to split with val_fraction={val_fraction} and "
            f"test_fraction={test_fraction} and keep a training set"
        )
    order = np.random.default_rng(seed).permutation(n)
    test, val, train = np.split(order, [n_test, n_test + n_val])
    return np.sort(train), np.sort(val), np.sort(test)


def load_splits(
    source,
    *,
    val_fraction=0.1,
    test_fraction=0.2,
    seed=0,
    label_column=None,
    data_dir=None,
    image_shape=None,
) -> Splits:
    """Load a source and split it into train, validation and test sets.

    Built-in sets with an official test split (Fashion-MNIST: 60000 train,
    10000 test) keep it: ``test`` is the official test set, ``test_fraction``
    is not used, and ``val`` is carved from the official training set with
    ``val_fraction``. Everything else goes through :func:`split_data`.

    Parameters
    ----------
    source, label_column, data_dir, image_shape
        As for :func:`load_data`.
    val_fraction, test_fraction, seed
        As for :func:`split_data`.

    Returns
    -------
    Splits

    Raises
    ------
    DataError, ConfigError
        As for :func:`load_data` and :func:`split_data`.
    """
    _check_fractions(val_fraction, test_fraction)
    data, test = _load_parts(source, label_column, data_dir, image_shape)
    if test is None:
        return split_data(data, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    inner = split_data(data, val_fraction=val_fraction, test_fraction=0.0, seed=seed)
    return Splits(inner.train, inner.val, test)
