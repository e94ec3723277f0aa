r"""Semantic hashing: an autoencoder whose code is pushed to binary values during training.

Salakhutdinov, R. & Hinton, G. (2009). Semantic hashing. *International Journal of Approximate
Reasoning* 50(7), 969-978.

The code layer is a layer of logistic units :math:`z = \sigma(h)` over the encoder's linear
outputs :math:`h`. Trained as it is, an autoencoder spreads information over the whole range of
:math:`z`, and thresholding the code at 0.5 afterwards loses it. Two ways to make the code binary
during training (measured on Fashion-MNIST, 64 bits, a conv encoder, 5 epochs: label
precision@10 of Hamming search 0.80 with the straight-through threshold, the default, and 0.59
with noise of standard deviation 4; benchmarks/search.py):

- ``method="noise"`` (Salakhutdinov & Hinton): Gaussian noise of standard deviation ``sigma`` is
  added to the input of each logistic code unit, :math:`z = \sigma(h + \sigma_n \epsilon)`. The
  decoder can only read what survives the noise, so the encoder learns to drive :math:`|h|`
  beyond it: the units saturate at 0 or 1.
- ``method="straight_through"`` (Bengio, Leonard & Courville 2013): the decoder sees the binary
  code :math:`b = [h > 0]` in the forward pass and the gradient of :math:`\sigma(h)` in the
  backward pass, :math:`z = b + \sigma(h) - \mathrm{sg}(\sigma(h))`.

Outside training (validation, :meth:`~aekit.model.Autoencoder.encode`) the code *is* binary,
:math:`b = [h > 0] \in \{0, 1\}^k`: the validation loss is the reconstruction from the bits, and
``aekit index --binary`` packs the bits (8 per byte) and searches them by Hamming distance. The
history logs ``saturation``: the fraction of code units of a training batch within 0.1 of 0 or 1
before the noise (1: every unit is already binary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import option
from ..errors import ConfigError
from . import Variant, register

#: how the code is pushed to binary values during training
METHODS = ("noise", "straight_through")
#: a unit within this distance of 0 or 1 counts as saturated in the ``saturation`` metric
SATURATED = 0.1


@dataclass
class HashingOptions:
    """How the code is made binary during training."""

    method: str = option(
        "straight_through",
        "noise: Gaussian noise before the logistic code units (Salakhutdinov & Hinton); "
        "straight_through: binary codes forward, the logistic's gradient backward",
        choices=METHODS,
    )
    sigma: float = option(4.0, "standard deviation of the noise added to the code units' inputs (method noise)")

    def validate(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ConfigError(f"hashing option sigma must be a finite number >= 0, got {self.sigma}")


@register(
    "hashing",
    "semantic hashing (Salakhutdinov & Hinton 2009): logistic code units pushed to binary by noise "
    "or a straight-through threshold; binary codes for Hamming search",
    options=HashingOptions,
)
class Hashing(Variant):
    """Logistic code units made binary during training; the code outside training is ``[h > 0]``."""

    code_name = "binary codes"

    def __init__(self, config, options):
        super().__init__(config, options)
        if config.code_activation != "linear":
            raise ConfigError(
                f"the hashing variant applies its own logistic code units; leave --code-activation at "
                f"linear (got {config.code_activation})"
            )

    def bottleneck(self, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not self.training:
            return self.encode_deterministic(h), {}
        if self.options.method == "noise":
            return torch.sigmoid(h + self.options.sigma * torch.randn_like(h)), {}
        soft = torch.sigmoid(h)
        return (h > 0).to(h.dtype) + (soft - soft.detach()), {}  # exactly the bits forward

    def encode_deterministic(self, h: torch.Tensor) -> torch.Tensor:
        """The binary code ``[h > 0]`` (0.0 / 1.0): the logistic unit thresholded at 0.5."""
        return (h > 0).to(h.dtype)

    def metrics(self, x, h, z) -> dict[str, torch.Tensor]:
        p = torch.sigmoid(h)
        return {"saturation": ((p < SATURATED) | (p > 1 - SATURATED)).to(h.dtype).mean()}
