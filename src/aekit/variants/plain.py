"""The plain undercomplete autoencoder: encoder, code, decoder, reconstruction loss only."""

from __future__ import annotations

from . import Variant, register


@register(
    "ae",
    "plain undercomplete autoencoder (MLP or convolutional), MSE or cross-entropy (auto: bce on data in [0, 1])",
    # measured against PCA-k on digits and a 5,000-row Fashion-MNIST sample (benchmarks/defaults.py):
    # one wide hidden layer and cross-entropy on [0, 1] data beat (256, 128) with squared error
    defaults={"loss": "auto", "hidden": (512,)},
)
class Plain(Variant):
    """Adds nothing: the reconstruction loss is the whole objective (by default cross-entropy where
    the scaled data lie in [0, 1], squared error otherwise: :func:`aekit.model.resolve_loss`)."""
