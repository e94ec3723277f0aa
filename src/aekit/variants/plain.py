"""The plain undercomplete autoencoder: encoder, code, decoder, reconstruction loss only."""

from __future__ import annotations

from . import Variant, register


@register("ae", "plain undercomplete autoencoder (MLP or convolutional), MSE or cross-entropy")
class Plain(Variant):
    """Adds nothing: the reconstruction loss is the whole objective."""
