"""Anomaly scores of a trained model: :func:`anomaly_scores` (higher: less like the training data),
corrected by the input's complexity on request (:func:`correct_for_complexity`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import io
from .data import training_rows
from .errors import ConfigError
from .metrics import ResidualNorm
from .model import Autoencoder


def anomaly_scores(
    model: Autoencoder | str | Path,
    X: Any,
    *,
    elbo_samples: int = 32,
    batch_size: int = 4096,
    where: str = "input",
    complexity: bool | tuple[float, float] = False,
    error: str = "squared",
    smoothing: float = 0.0,
    image_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """The anomaly score of each row of raw data ``X`` (higher: less like the training data).

    The model's variant scores the rows (``model.variant.anomaly_scores``): by default the summed
    squared reconstruction error ``||x - g(f(x))||^2`` in the units of ``X``; for the VAE family minus
    the evidence lower bound, in nats, with ``elbo_samples`` Monte Carlo draws shared by every row
    (:meth:`aekit.variants.vae.VAE.elbo_per_example`). ``model.variant.score_units()`` says which.
    ``model`` is a model or a run directory.

    ``error="absolute"`` sums the residual's absolute values instead of its squares; ``smoothing``
    (pixels) smooths each image's residual with a Gaussian filter first (:class:`aekit.metrics.ResidualNorm`;
    ``image_shape``, (H, W) or (C, H, W), defaults to the model's data's). Both are for scores that
    are a reconstruction error; the VAE family's ELBO raises :class:`ConfigError` with them.

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
    raw = model.raw_rows(X, where)
    X = model.transform.apply(raw) if model.transform is not None else raw
    norm = ResidualNorm(error, smoothing, image_shape)
    scores = model.variant.anomaly_scores(model, X, elbo_samples=elbo_samples, batch_size=batch_size, norm=norm)
    if data_range is None:
        return scores
    from .metrics import input_complexity

    return model.variant.correct_for_complexity(scores, input_complexity(raw, *data_range))


def _complexity_range(model: Autoencoder, complexity: Any) -> tuple[float, float] | None:
    """The ``(low, high)`` quantized by :func:`anomaly_scores`'s ``complexity``, or None for none."""
    if complexity is False or complexity is None:
        return None
    if complexity is True:
        train = training_rows(getattr(model, "run_config", None))
        if train is None:
            raise ConfigError(
                "complexity=True needs the run's training data range, but the run was trained on "
                "in-memory data; pass complexity=(low, high)"
            )
        return float(np.min(train)), float(np.max(train))
    try:
        low, high = (float(v) for v in complexity)
    except (TypeError, ValueError):
        raise ConfigError(f"complexity must be True, False or a (low, high) pair, got {complexity!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ConfigError(f"complexity range must be finite with low < high, got ({low}, {high})")
    return low, high


def correct_for_complexity(scores: np.ndarray, bits: np.ndarray, model: Autoencoder) -> np.ndarray:
    """Anomaly ``scores`` of ``model`` corrected by the rows' input complexity ``bits``
    (:func:`aekit.metrics.input_complexity`; Serra et al. 2020, "Input complexity and
    out-of-distribution detection with likelihood-based generative models", ICLR), as the model's
    variant does it (``model.variant.correct_for_complexity``).

    Minus the ELBO (the VAE family) becomes Serra et al.'s score
    :math:`-\\mathrm{ELBO}(x) - L(x) \\ln 2` (nats less the input's length under a generic
    compressor); a reconstruction error is divided by :math:`L(x)`, an error per bit of input.
    Either way simple inputs, which any model reconstructs well, stop looking typical for
    that reason alone."""
    return model.variant.correct_for_complexity(scores, bits)


def model_space_anomaly_scores(
    model: Autoencoder,
    X: np.ndarray,
    *,
    elbo_samples: int = 32,
    batch_size: int = 4096,
    norm: ResidualNorm | None = None,
) -> np.ndarray:
    """:func:`anomaly_scores` of rows already in model space (after the run's scaling), computed in
    their precision (float32, or float64 with a float64 copy of the model): the model's variant's
    ``anomaly_scores`` (``norm``: how a residual is summed, :class:`aekit.metrics.ResidualNorm`)."""
    return model.variant.anomaly_scores(model, X, elbo_samples=elbo_samples, batch_size=batch_size, norm=norm)


def feature_scores(
    model: Autoencoder | str | Path,
    X: Any,
    *,
    batch_size: int = 4096,
    where: str = "input",
    error: str = "squared",
    smoothing: float = 0.0,
    image_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Each feature's share of :func:`anomaly_scores` for raw rows ``X`` (with the same ``error``,
    ``smoothing`` and ``image_shape``): by default the squared reconstruction error of each value in
    the units of ``X``, shape (rows, features); each row sums to its score. A variant whose score is
    not a sum over the features (the VAE family's minus the ELBO) raises :class:`ConfigError`.
    ``model`` is a model or a run directory."""
    if not isinstance(model, Autoencoder):
        model = io.load(model)
    raw = np.asarray(model.raw_rows(X, where), dtype=np.float64)
    norm = ResidualNorm(error, smoothing, image_shape).with_shape(model.config.image_shape)
    shares = norm.contributions(raw - np.asarray(model.reconstruct_array(raw, batch_size=batch_size), dtype=np.float64))
    scores = anomaly_scores(
        model, raw, batch_size=batch_size, elbo_samples=1, error=error, smoothing=smoothing, image_shape=image_shape
    )
    if not np.allclose(shares.sum(axis=1), scores, rtol=1e-3, atol=1e-6):
        raise ConfigError(
            f"the scores of this model ({model.variant.score_units()}) are not a sum over the features, "
            "so they have no per-feature contributions"
        )
    return shares


def detection_offset(
    scores: np.ndarray,
    contamination: float | str,
    threshold_fpr: float | None = None,
    held_out: np.ndarray | None = None,
) -> float:
    """The threshold on anomaly ``scores`` of the training rows (higher: more anomalous) above which
    a row is an outlier.

    - ``threshold_fpr`` (in (0, 1)) set: the ``1 - threshold_fpr`` quantile of ``held_out``
      scores, rows scored by models that did not train on them (the ensemble's out-of-bag
      scores), or of ``scores`` where there are none. New rows from the training distribution
      then exceed it with about that probability: the false-positive rate if they are normal.
    - ``contamination`` a number: the ``1 - contamination`` quantile of ``scores``, so that this
      fraction of the training rows is flagged (IsolationForest's convention).
    - ``contamination="auto"``: the median of the logarithms of ``scores`` plus 3 robust standard
      deviations (1.4826 times their median absolute deviation), back on the scores' scale (on
      the scores themselves where some are not positive, e.g. an ELBO): errors are skewed, their
      logarithms nearly symmetric; a normal distribution exceeds such a cut with probability
      0.13 %, so the rows flagged are those far in the tail, however many they are.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if threshold_fpr is not None:
        if not 0.0 < float(threshold_fpr) < 1.0:
            raise ConfigError(f"threshold_fpr must be in (0, 1), got {threshold_fpr!r}")
        base = scores if held_out is None or len(held_out) == 0 else np.asarray(held_out, dtype=np.float64)
        return float(np.quantile(base, 1.0 - float(threshold_fpr)))
    if isinstance(contamination, str):
        if contamination != "auto":
            raise ConfigError(f"contamination must be 'auto' or a number in (0, 0.5], got {contamination!r}")
        positive = bool(len(scores)) and bool((scores > 0).all())
        values = np.log(scores) if positive else scores
        median = float(np.median(values))
        cut = median + 3.0 * 1.4826 * float(np.median(np.abs(values - median)))
        return float(np.exp(cut)) if positive else cut
    if not 0.0 < float(contamination) <= 0.5:
        raise ConfigError(f"contamination must be 'auto' or a number in (0, 0.5], got {contamination!r}")
    return float(np.percentile(scores, 100.0 * (1.0 - float(contamination))))
