r"""Supervised fine-tuning: a softmax head on a trained encoder (Vincent et al. 2010, section 3.5).

After greedy layer-wise pretraining, "the output representation of the top layer is used as
input to a stand-alone supervised learning algorithm" — a logistic regression — "and the whole
network is fine-tuned by gradient descent on a supervised criterion". :class:`Classifier` puts
a multinomial logistic regression (a linear layer and a softmax) on the code of any MLP or
convolutional :class:`~aekit.model.Autoencoder` (for a stacked denoising autoencoder built with
``aekit pretrain dae`` or ``aekit train deep --pretrain dae``, the code *is* the top layer's
output); :func:`finetune` trains encoder and head together on the cross-entropy with the
ordinary :class:`~aekit.train.Trainer`.

The Trainer batches one tensor, so the classifier receives rows ``[x | y]``: the features
followed by the class index (:func:`pack`), and returns named loss terms (``nll``) and metrics
(``accuracy``) like any aekit model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import io
from .config import from_dict, jsonable, to_dict
from .errors import AekitError, ConfigError, DataError, RunError
from .version import __version__

if TYPE_CHECKING:  # annotations only: finetune imports the model module when it runs
    from .model import Autoencoder

KIND = io.CLASSIFIER_KIND
PREDICTIONS_BATCH = 4096


@dataclass
class ClassifierOutput:
    """What :meth:`Classifier.forward` returns: class logits, named loss terms and metrics."""

    logits: torch.Tensor
    losses: dict[str, torch.Tensor]
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def pack(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Rows ``[x | y]``: flat features followed by the class index, the input of :meth:`Classifier.forward`."""
    return torch.cat([x.reshape(len(x), -1), y.reshape(-1, 1).to(x.dtype)], dim=1)


class Classifier(nn.Module):
    """A softmax classifier on the code of an autoencoder's encoder.

    Parameters
    ----------
    autoencoder : Autoencoder
        Its encoder (and the variant's deterministic code) is fine-tuned; the decoder is unused.
    classes : array-like
        The class labels, in the order of the outputs.

    Shape:
        - Input of ``forward``: :math:`(N, D + 1)`, rows ``[x | class index]``
        - :meth:`logits`: :math:`(N, D)` (or images) to :math:`(N, n_{classes})`
    """

    # set after construction: by finetune (all three) and load_classifier (run_config)
    history: list[dict[str, Any]]
    scores: dict[str, float]
    run_config: dict[str, Any]

    def __init__(self, autoencoder: Autoencoder, classes: Any):
        super().__init__()
        self.classes = np.asarray(classes)
        if self.classes.ndim != 1 or len(self.classes) < 2:
            raise DataError(f"a classifier needs at least two classes, got {self.classes.tolist()}")
        self.autoencoder = autoencoder
        self.head = nn.Linear(autoencoder.config.latent, len(self.classes))
        nn.init.zeros_(self.head.weight)  # logistic regression starts at zero (uniform predictions)
        nn.init.zeros_(self.head.bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of model-space rows ``x``."""
        return self.head(self.autoencoder.encode(x))

    def forward(self, xy: torch.Tensor) -> ClassifierOutput:
        """Cross-entropy (``nll``, mean over rows) and accuracy of rows ``[x | class index]``."""
        x, y = xy[:, :-1], xy[:, -1].long()
        logits = self.logits(x)
        with torch.no_grad():
            accuracy = (logits.argmax(1) == y).float().mean()
        return ClassifierOutput(logits, {"nll": F.cross_entropy(logits, y)}, {"accuracy": accuracy})

    # -- NumPy helpers ------------------------------------------------------------------------
    def predict_proba_array(self, X: Any, batch_size: int = PREDICTIONS_BATCH, where: str = "input") -> np.ndarray:
        """Class probabilities of raw rows ``X`` (the run's transform is applied first), ``(N, n_classes)``."""
        return self.autoencoder._map_rows(X, lambda xb: torch.softmax(self.logits(xb), 1), batch_size, where)

    def predict_array(self, X: Any, batch_size: int = PREDICTIONS_BATCH, where: str = "input") -> np.ndarray:
        """Predicted class labels of raw rows ``X``, shape ``(N,)``."""
        return self.classes[self.predict_proba_array(X, batch_size, where).argmax(1)]


# -- data and labels ------------------------------------------------------------------------
def _read_labels(path: Path) -> np.ndarray:
    """One label per row from a .npy file or a text file (one label per line)."""
    try:
        if path.suffix.lower() == ".npy":
            y = np.load(path, allow_pickle=False)
        else:
            y = np.loadtxt(path, dtype=str, delimiter=",", ndmin=1)
            try:
                y = y.astype(np.float64)
                y = y.astype(np.int64) if np.all(y == np.round(y)) else y
            except ValueError:
                pass
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable labels file ({str(e).splitlines()[0]})") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{path}: expected one label per row, got an array of shape {y.shape}")
    return y


def _labelled_splits(data: Any, labels: Any, data_cfg: Any) -> Any:
    """Train / validation / test splits of ``data`` carrying labels ``labels`` (an array, a labels
    file, a label column name, or None for the data's own labels)."""
    from .data import Dataset, load_data, load_splits, split_data

    fractions = {
        "val_fraction": data_cfg.val_fraction,
        "test_fraction": data_cfg.test_fraction,
        "seed": data_cfg.split_seed,
    }
    label_column = data_cfg.label_column
    if isinstance(labels, (str, Path)) and not Path(labels).is_file():
        if isinstance(data, (str, Path)) and Path(data).suffix.lower() in (".csv", ".tsv", ".txt", ".parquet", ".pq"):
            label_column, labels = str(labels), None
        else:
            raise DataError(f"{labels}: no such labels file (a label column name needs CSV or Parquet data)")
    if labels is None:
        if isinstance(data, np.ndarray):
            raise DataError("in-memory data need labels")
        splits = load_splits(data, label_column=label_column, data_dir=data_cfg.data_dir, **fractions)
    else:
        y = _read_labels(Path(labels)) if isinstance(labels, (str, Path)) else np.asarray(labels)
        ds = load_data(data, label_column=label_column, data_dir=data_cfg.data_dir)
        if y.ndim != 1 or len(y) != len(ds):
            raise DataError(f"{ds.source} has {len(ds)} rows but {len(y) if y.ndim == 1 else y.shape} labels")
        splits = split_data(Dataset(ds.x, y, ds.image_shape, ds.source), **fractions)
    if splits.train.y is None:
        raise DataError(
            f"{splits.train.source}: no labels; pass labels (--labels FILE, or a label column of CSV / Parquet data)"
        )
    return splits


def _index(y: np.ndarray, classes: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.searchsorted(classes, y).astype(np.int64))


def finetune(
    model: Any,
    data: Any = None,
    labels: Any = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    **kwargs: Any,
) -> Classifier:
    """Fine-tune an autoencoder's encoder with a softmax head on labelled data (Vincent et al. 2010).

    Parameters
    ----------
    model : Autoencoder or run directory
        A trained (or pretrained: ``aekit pretrain``, ``epochs=0``) autoencoder; its transform
        scales the data.
    data : str, path, ndarray or Dataset, optional
        Default: the run's own data source. The rows are split into train / validation / test
        with the run's fractions and seed (so a built-in set's test split stays held out), or those
        given in ``kwargs``.
    labels : array-like, path or str, optional
        One label per row of ``data`` (an array or a ``.npy`` / text file), or the label column of a
        CSV / Parquet ``data`` file. Default: the data's own labels (built-in sets carry them).
    out : path, optional
        Classifier run directory (``config.json``, ``model.safetensors``, ``history.json``).
    overwrite : bool
        Replace an existing run directory.
    **kwargs
        Fields of :class:`~aekit.train.TrainConfig` (``epochs``, ``lr``, ``batch_size``, ``seed`` ...)
        and the split fields of :class:`~aekit.data.DataConfig` (``val_fraction``, ``test_fraction``,
        ``split_seed``, ``data_dir``, ``label_column``).

    Returns
    -------
    Classifier
        In eval mode; ``history`` holds the Trainer's history (``train_nll``, ``val_accuracy`` ...)
        and ``scores`` the accuracy on each split (``test_accuracy`` ...).
    """
    from .data import IN_MEMORY, DataConfig, Dataset
    from .model import Autoencoder
    from .train import TrainConfig, Trainer

    source_run = None
    if not isinstance(model, Autoencoder):
        source_run = str(model)
        model = io.load(model)
    run_cfg = getattr(model, "run_config", None) or {}
    stored = dict(run_cfg.get("data") or {})
    data_fields = {"val_fraction", "test_fraction", "split_seed", "data_dir", "label_column"}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(kwargs) - data_fields - train_fields)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for finetune; known: "
            f"{', '.join(sorted(data_fields | train_fields))}"
        )
    if data is None:
        if not stored or stored.get("data") == IN_MEMORY:
            raise ConfigError("the autoencoder was not trained from a file or built-in set; pass the data")
        data = stored["data"]
    data_cfg = from_dict(
        DataConfig,
        {
            **{k: v for k, v in stored.items() if k in data_fields},
            **{k: v for k, v in kwargs.items() if k in data_fields},
            "data": str(data) if isinstance(data, (str, Path)) else IN_MEMORY,
        },
    )
    train_cfg = from_dict(TrainConfig, {k: v for k, v in kwargs.items() if k in train_fields})
    if isinstance(data, Dataset) and labels is not None:
        data = data.x
    splits = _labelled_splits(data if isinstance(data, (str, Path, Dataset)) else np.asarray(data), labels, data_cfg)
    parts = {name: ds for name, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test)) if len(ds)}
    classes = np.unique(np.concatenate([ds.y for ds in parts.values()]))
    tensors = {
        name: pack(torch.from_numpy(model.prepare(ds.x, where=ds.source)), _index(ds.y, classes))
        for name, ds in parts.items()
    }
    torch.manual_seed(train_cfg.seed)
    clf = Classifier(model.train(), classes)
    out_dir = Path(out) if out is not None else None
    config = {
        "kind": KIND,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "aekit_version": __version__,
        "source_run": source_run,
        "classes": jsonable(classes.tolist()),
        "head": "softmax on the encoder's code",
        "model": to_dict(model.config),
        "transform": model.transform.to_dict() if model.transform else None,
        "train": to_dict(train_cfg),
        "data": to_dict(data_cfg),
        "labels": str(labels) if isinstance(labels, (str, Path)) else ("given" if labels is not None else "data"),
        "splits": {name: len(ds) for name, ds in parts.items()},
    }
    trainer = Trainer(clf, train_cfg, progress=progress)  # no run directory: a classifier run is not resumable
    with contextlib.ExitStack() as held:
        if out_dir is not None:
            inputs = tuple(str(p) for p in (data, labels, source_run) if isinstance(p, (str, Path)))
            held.enter_context(io.claim_run_dir(out_dir, overwrite=overwrite, inputs=inputs))
            io.write_config(out_dir, config)
        clf.history = trainer.fit(tensors["train"], tensors.get("val"))
        clf.eval()
        clf.scores = {f"{name}_accuracy": _accuracy(clf, t) for name, t in tensors.items()}
        clf.scores.update({f"n_{name}": len(t) for name, t in tensors.items()})
        clf.run_config = {**config, "scores": clf.scores}
        if out_dir is not None:
            io.save_model(out_dir, clf)
            io.write_config(out_dir, clf.run_config)
            if clf.history:  # what a Trainer with a run directory writes after each epoch
                io.atomic_write_json(out_dir / io.HISTORY, clf.history)
    return clf


def _accuracy(clf: Classifier, xy: torch.Tensor, batch_size: int = PREDICTIONS_BATCH) -> float:
    with torch.inference_mode():
        hits = sum(int((clf.logits(b[:, :-1]).argmax(1) == b[:, -1].long()).sum()) for b in xy.split(batch_size))
    return hits / len(xy)


def load_classifier(path: str | Path, device: str = "cpu") -> Classifier:
    """Rebuild a :class:`Classifier` from a run directory written by :func:`finetune` (safetensors + JSON)."""
    run_dir = Path(path)
    cfg = io.read_config(run_dir)
    if cfg.get("kind") != KIND:
        raise RunError(f"{run_dir}: not a classifier run (write one with `aekit finetune`)")
    ae = io.build_autoencoder(run_dir, cfg)
    try:
        clf = Classifier(ae, cfg["classes"])
    except (AekitError, KeyError, TypeError) as e:
        raise RunError(f"{run_dir / io.CONFIG}: not a valid classifier configuration ({e})") from None
    clf = io.load_weights(clf, run_dir, device)
    clf.run_config = cfg
    return clf
