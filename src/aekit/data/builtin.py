"""Built-in data sets: scikit-learn's digits, Fashion-MNIST and dSprites (generated).

Loaders return raw pixel values (digits 0..16, Fashion-MNIST 0..255, dSprites
0/1) as float32; scaling is the job of :class:`aekit.data.transform.Transform`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aekit.data.dsprites import dsprites
from aekit.data.readers import Dataset, read_idx_pair
from aekit.errors import DataError

__all__ = [
    "BUILTIN_DATASETS",
    "DSPRITES_BUILTIN_SEED",
    "DSPRITES_BUILTIN_SIZE",
    "FASHION_MNIST_DEFAULT_DIR",
    "fashion_mnist_dir",
    "load_builtin",
]

BUILTIN_DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "dsprites")

#: Size and seed of the subset that the built-in name ``"dsprites"`` renders. 50,000 of the
#: 737,280 images take 820 MB as float32 (the whole set would take 12 GB), about 2 GB once split
#: and scaled for training (the data, its split copies and the scaled training rows), and render
#: in a few seconds, so ``aekit train vae --data dsprites`` runs on a laptop. Other subsets:
#: ``aekit.data.dsprites.dsprites(n=..., seed=...)``, a Dataset that ``aekit.fit`` accepts.
DSPRITES_BUILTIN_SIZE = 50_000
DSPRITES_BUILTIN_SEED = 0

FASHION_MNIST_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")

_FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _find_idx(folder: Path, name: str) -> Path | None:
    """Return ``folder/name`` or ``folder/name.gz``, whichever exists, else None."""
    return next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)


def _missing_file(folder: Path) -> str | None:
    """Name the first of the four Fashion-MNIST files absent from ``folder``."""
    return next((name for name in _FASHION_MNIST_FILES if _find_idx(folder, name) is None), None)


def fashion_mnist_dir(data_dir=None) -> Path:
    """Locate the folder holding the four Fashion-MNIST IDX files.

    The folder is, in order: ``data_dir``, the ``AEKIT_DATA`` environment
    variable, ``/usr/share/datasets/fashion-mnist`` (Debian package
    ``dataset-fashion-mnist``). A ``fashion-mnist`` subfolder of the chosen
    folder is accepted too. Each file may be gzip-compressed (``.gz``) or not.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Folder to use instead of ``AEKIT_DATA`` and the default.

    Returns
    -------
    pathlib.Path
        The folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).

    Raises
    ------
    DataError
        When a file is missing; the message says how to install the data.
    """
    folder = Path(data_dir or os.environ.get("AEKIT_DATA") or FASHION_MNIST_DEFAULT_DIR)
    for candidate in (folder, folder / "fashion-mnist"):
        if _missing_file(candidate) is None:
            return candidate
    raise DataError(
        f"fashion-mnist not found in {folder} (missing {_missing_file(folder)}); run `make data` "
        "to install the Debian package dataset-fashion-mnist, or point AEKIT_DATA or --data-dir "
        "at a folder holding the four IDX files"
    )


def _load_digits() -> tuple[Dataset, None]:
    """scikit-learn's 8x8 digits (1797 images, values 0..16); no official test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Dataset(bunch.data.astype(np.float32), bunch.target, (1, 8, 8), "digits"), None


def _load_fashion_mnist(data_dir) -> tuple[Dataset, Dataset]:
    """Fashion-MNIST's official 60000-image train and 10000-image test sets."""
    folder = fashion_mnist_dir(data_dir)
    parts = []
    for prefix, part in (("train", "train"), ("t10k", "test")):
        images = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
        labels = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
        parts.append(read_idx_pair(images, labels, f"fashion-mnist ({part})"))
    return parts[0], parts[1]


def _load_dsprites() -> tuple[Dataset, None]:
    """A fixed random subset of dSprites (:data:`DSPRITES_BUILTIN_SIZE` images); no official test split."""
    return dsprites(DSPRITES_BUILTIN_SIZE, seed=DSPRITES_BUILTIN_SEED), None


def load_builtin(name: str, data_dir=None) -> tuple[Dataset, Dataset | None]:
    """Load a built-in data set as (train, official test set or None).

    Parameters
    ----------
    name : str
        One of :data:`BUILTIN_DATASETS`.
    data_dir : str or os.PathLike, optional
        Folder holding the files of sets that need them (Fashion-MNIST).

    Returns
    -------
    tuple of (Dataset, Dataset or None)
        The training rows and the official test rows (None when the set has
        no official split, like digits and dSprites).

    Raises
    ------
    DataError
        Unknown name, or the data files are missing or invalid.
    """
    if name == "digits":
        return _load_digits()
    if name == "fashion-mnist":
        return _load_fashion_mnist(data_dir)
    if name == "dsprites":
        return _load_dsprites()
    raise DataError(f"{name}: unknown built-in dataset; choose one of {', '.join(BUILTIN_DATASETS)}")
