"""An ensemble of small autoencoders on subsamples, for outlier detection on unlabelled tables.

:func:`fit_ensemble` trains :class:`AutoencoderEnsemble`: ``members`` small autoencoders
(``d -> hidden -> latent -> hidden -> d``, tanh units, a linear code and output), each on its own
subsample of the training rows (bagging, as in RandNet: Chen, Sathe, Aggarwal and Turaga 2017,
"Outlier Detection with Autoencoder Ensembles", SDM), with a trimmed loss that ignores the
``trim`` worst-reconstructed rows of every batch (outliers among the training rows are the rows an
autoencoder reconstructs worst, so they stop pulling the model towards them), and early stopping
on each member's out-of-bag rows (the training rows outside its subsample), on the same trimmed
loss. The sizes come from the table: ``latent`` and ``hidden`` from the number of features, the
subsample size and the number of steps from the number of rows.

The score of a row is the members' mean squared reconstruction error, each member's error divided
by its median over the training rows (:meth:`AutoencoderEnsemble.score`): a dimensionless
number, about 1 for a typical training row whatever the data's units or the fit, so scores of two
refits are on one scale. It is a sum over the features (:meth:`AutoencoderEnsemble.feature_scores`),
each feature's share being its squared error so normalised.

The fit does not depend on the order of the training rows: they are put in a canonical order
(sorted lexicographically by their values) first, and each member's subsample is a seeded choice of
positions in that order, so a permutation of the rows gives the same members and the same scores
(and so does an increasing affine change of a feature's units, up to rounding).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """The recipe of :func:`fit_ensemble`; None: chosen from the table's shape (:meth:`sizes`)."""

    members: int = 10
    latent: int | None = None
    hidden: int | None = None
    subsample: float = 0.5
    trim: float = 0.4
    max_steps: int = 300
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-5
    patience: int = 5
    eval_every: int = 20

    def validate(self) -> None:
        def positive(name: str, value: Any) -> None:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

        for name in ("members", "latent", "hidden", "max_steps", "batch_size", "patience", "eval_every"):
            positive(name, getattr(self, name))
        if not 0.0 < self.subsample < 1.0:
            raise ConfigError(
                f"subsample must be in (0, 1) (the rest of the rows stop each member), got {self.subsample!r}"
            )
        if not 0.0 <= self.trim < 0.5:
            raise ConfigError(f"trim must be in [0, 0.5), got {self.trim!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be positive, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be non-negative, got {self.weight_decay!r}")

    def sizes(self, n_rows: int, n_features: int) -> tuple[int, int, int]:
        """``(latent, hidden, max_steps)`` for a table of ``n_rows`` x ``n_features`` (each member
        trains on ``subsample * n_rows`` rows): a code of
        about the square root of the features (at most ``n_features - 1``, at least 1), a hidden
        layer twice the code or the features' count, whichever is larger (at most 64), and about
        ``max_steps`` Adam steps of ``batch_size`` rows at most (early stopping ends most members
        sooner on large tables: a short training is itself a defence, the outliers being the
        rare rows an autoencoder learns last)."""
        latent = self.latent or max(1, min(n_features - 1, math.ceil(math.sqrt(n_features))))
        hidden = self.hidden or min(64, max(2 * latent, n_features))
        return latent, hidden, self.max_steps


def _canonical(X: np.ndarray) -> np.ndarray:
    """The rows of ``X`` in an order that depends on their values only (lexicographic)."""
    return X[np.lexsort(X.T[::-1])] if len(X) else X


class AutoencoderEnsemble:
    """Trained members (weights stacked on a leading member axis), the training rows' location and
    scale, and each member's error scale. Built by :func:`fit_ensemble`."""

    def __init__(self, weights: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray, config: EnsembleConfig):
        self.weights = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.config = config
        self.error_scale = np.ones(self.weights["W1"].shape[0])
        self.steps: list[int] = []
        #: the training rows' scores, and their out-of-bag scores (by the members that did not
        #: train on each row: what a new row of the same distribution gets), both sorted
        self.training_scores = np.zeros(0)
        self.oob_scores = np.zeros(0)

    @property
    def latent(self) -> int:
        return int(self.weights["W2"].shape[2])

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    def _errors(self, X: np.ndarray) -> np.ndarray:
        """Squared reconstruction errors, shape (members, rows, features), in standardised units."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise DataError(f"expected rows of {self.n_features} features, got an array of shape {X.shape}")
        Z = (X - self.mean) / self.std
        w = {k: torch.from_numpy(v) for k, v in self.weights.items()}
        with torch.no_grad():
            x = torch.from_numpy(Z).expand(w["W1"].shape[0], *Z.shape)
            recon = _forward(w, x)
            return ((recon - x) ** 2).numpy()

    def feature_scores(self, X: np.ndarray) -> np.ndarray:
        """Each feature's share of :meth:`score`, shape (rows, features): its squared
        reconstruction error (standardised units), divided by each member's training median error
        and averaged over the members. The rows sum to :meth:`score`."""
        errors = self._errors(X)
        return np.mean(errors / self.error_scale[:, None, None], axis=0)

    def score(self, X: np.ndarray) -> np.ndarray:
        """The anomaly score of each row (higher: more anomalous; about 1 for a typical training row)."""
        return self.feature_scores(X).sum(axis=1)


def _forward(w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The members on ``x`` of shape (members, rows, features)."""
    h = torch.tanh(torch.baddbmm(w["b1"], x, w["W1"]))
    z = torch.baddbmm(w["b2"], h, w["W2"])
    h = torch.tanh(torch.baddbmm(w["b3"], z, w["W3"]))
    return torch.baddbmm(w["b4"], h, w["W4"])


def _trimmed(row_losses: torch.Tensor, trim: float) -> torch.Tensor:
    """Per member, the mean of the ``1 - trim`` smallest row losses (shape (members, rows) -> (members,))."""
    keep = max(1, math.ceil((1.0 - trim) * row_losses.shape[1]))
    return torch.topk(row_losses, keep, dim=1, largest=False).values.mean(dim=1)


def fit_ensemble(X: Any, *, seed: int = 0, config: EnsembleConfig | None = None) -> AutoencoderEnsemble:
    """Train an :class:`AutoencoderEnsemble` on the rows of ``X`` (no labels; see the module docstring)."""
    config = config or EnsembleConfig()
    config.validate()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 4 or X.shape[1] < 1:
        raise DataError(
            f"the ensemble needs a table of at least 4 rows and 1 feature, got n_samples = "
            f"{X.shape[0] if X.ndim else 0} (shape {X.shape})"
        )
    if not np.isfinite(X).all():
        raise DataError("the ensemble's training rows contain NaN or infinite values")
    X = _canonical(X)
    n, d = X.shape
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    Z = (X - mean) / std
    latent, hidden, max_steps = config.sizes(n, d)
    m = config.members
    gen = torch.Generator().manual_seed(int(seed))

    # each member's subsample: a seeded random choice of positions in the canonical order (a
    # function of the set of rows, not of their order, nor of the features' units); the others are
    # its out-of-bag rows
    cut = max(2, min(n - 1, round(config.subsample * n)))
    picker = np.random.default_rng([int(seed) & 0xFFFFFFFF, 17])
    inside, outside = [], []
    for _ in range(m):
        order = picker.permutation(n)
        inside.append(np.sort(order[:cut]))
        outside.append(np.sort(order[cut:]))

    def init(fan_in: int, fan_out: int) -> torch.Tensor:
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return (torch.rand(m, fan_in, fan_out, generator=gen) * 2 - 1) * bound

    dims = [(d, hidden), (hidden, latent), (latent, hidden), (hidden, d)]
    params = {}
    for i, (a, b) in enumerate(dims, start=1):
        params[f"W{i}"] = init(a, b).requires_grad_()
        params[f"b{i}"] = torch.zeros(m, 1, b, requires_grad=True)
    opt = torch.optim.Adam(params.values(), lr=config.lr, weight_decay=config.weight_decay)
    data = torch.from_numpy(Z.astype(np.float32))
    sizes = torch.tensor([len(i) for i in inside], dtype=torch.float64)
    width = max(len(i) for i in inside)
    padded = torch.from_numpy(np.stack([np.resize(i, width) for i in inside]))  # (members, width)
    # out-of-bag rows for early stopping: at most 512 per member, the first in canonical order
    val_idx = torch.stack(
        [torch.from_numpy(np.resize(o[:512], min(512, max(len(o) for o in outside)))) for o in outside]
    )
    val = data[val_idx]

    best = [math.inf] * m
    best_state = {k: v.detach().clone() for k, v in params.items()}
    stale = [0] * m
    stopped_at = [max_steps] * m
    active = torch.ones(m, dtype=torch.bool)
    for step in range(1, max_steps + 1):
        pos = (torch.rand(m, config.batch_size, generator=gen, dtype=torch.float64) * sizes[:, None]).long()
        batch = torch.gather(padded, 1, pos)
        x = data[batch]
        row_losses = ((_forward(params, x) - x) ** 2).mean(dim=2)
        loss = (_trimmed(row_losses, config.trim) * active).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for v in params.values():  # a stopped member keeps its best weights
            if v.grad is not None:
                v.grad.mul_(active.view(-1, *([1] * (v.dim() - 1))).to(v.grad.dtype))
        opt.step()
        if step % config.eval_every == 0 or step == max_steps:
            with torch.no_grad():
                val_loss = _trimmed(((_forward(params, val) - val) ** 2).mean(dim=2), config.trim)
            for k in range(m):
                if not active[k]:
                    continue
                if val_loss[k].item() < best[k] - 1e-6:
                    best[k] = val_loss[k].item()
                    stale[k] = 0
                    for name, v in params.items():
                        best_state[name][k] = v.detach()[k]
                else:
                    stale[k] += 1
                    if stale[k] >= config.patience:
                        active[k] = False
                        stopped_at[k] = step
            if not active.any():
                break
    ensemble = AutoencoderEnsemble({k: v.numpy() for k, v in best_state.items()}, mean, std, config)
    ensemble.steps = stopped_at
    errors = ensemble._errors(X)  # (members, rows, features)
    raw = errors.sum(axis=2)
    scale = np.median(raw, axis=1)
    ensemble.error_scale = np.where(scale > 0, scale, 1.0)
    normalized = raw / ensemble.error_scale[:, None]
    ensemble.training_scores = np.sort(normalized.mean(axis=0))
    # out-of-bag: each row scored by the members that did not train on it (all, where none did not)
    oob = np.zeros((m, n), dtype=bool)
    for k in range(m):
        oob[k, outside[k]] = True
    counts = oob.sum(axis=0)
    oob_mean = np.where(counts > 0, (normalized * oob).sum(axis=0) / np.maximum(counts, 1), normalized.mean(axis=0))
    ensemble.oob_scores = np.sort(oob_mean)
    return ensemble
