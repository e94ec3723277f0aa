r"""The compressive autoencoder: a code of integers and the bits to store it, trained together.

Ballé, J., Laparra, V. & Simoncelli, E. P. (2017). End-to-end Optimized Image Compression. *ICLR
2017* (arXiv:1611.01704). Theis, L., Shi, W., Cunningham, A. & Huszár, F. (2017). Lossy Image
Compression with Compressive Autoencoders. *ICLR 2017* (arXiv:1703.00395).

The code is the encoder's output :math:`y` rounded to integers, :math:`\hat y = \mathrm{round}(y)`,
and its cost in bits is its code length under a learned factorized density: each value
:math:`\hat y_i` of channel :math:`c(i)` is coded with the probability that a logistic of location
:math:`\mu_c` and scale :math:`s_c` gives the unit interval around it,

.. math::

    P(\hat y_i) = F\Big(\frac{\hat y_i + \tfrac12 - \mu_c}{s_c}\Big)
                - F\Big(\frac{\hat y_i - \tfrac12 - \mu_c}{s_c}\Big),
    \qquad R = -\sum_i \log_2 P(\hat y_i),

(:math:`F` the logistic sigmoid; a flat code has a channel per value, a spatial code one per
feature map, shared by its positions). Training minimises the reconstruction loss plus
``rate_weight`` :math:`\lambda` times :math:`R` (bits per example), a point on the rate-distortion
curve that :math:`\lambda` chooses. Rounding has no gradient, so the rate is measured on
:math:`\tilde y = y + u`, :math:`u \sim U(-\tfrac12, \tfrac12)` (Ballé et al.: the density of
:math:`\tilde y` is that of the rounded code smoothed over the unit interval), and the decoder sees

- ``quantization mixed`` (the default): :math:`\hat y` forward with the identity's gradient backward
  (straight through, Theis et al.), so the decoder trains on the integers it will decode;
- ``noise``: :math:`\tilde y` (Ballé et al.);
- ``ste``: :math:`\hat y` for the rate too (straight through, its gradient only through the density).

Outside training (validation, :meth:`~aekit.model.Autoencoder.encode`) the code is :math:`\hat y`,
and the history's ``bits`` is its code length under the density: what a range coder with that model
spends per example. ``aekit compress`` stores such a code exactly (a uniform quantizer of unit
steps over the training codes' integers, :meth:`aekit.compress.Quantizer.integers`) and range-codes
it under the counts of the training codes.

With ``--architecture conv`` and ``spatial`` (the default there) the code is the last feature map
itself, ``code_dim`` channels at each of its positions (the encoder of the spatial VQ-VAE: stride-2
convolutions and a 1x1 convolution, no dense layers), so that the code keeps the image's layout and
the density is shared over the positions of a channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import option
from ..errors import ConfigError
from . import Variant, register
from .vqvae import SpatialDecoder, SpatialEncoder, spatial_code_shape

#: how the decoder and the rate see the rounding in training
QUANTIZATIONS = ("mixed", "noise", "ste")
#: the least probability of a value (so that its code length stays finite: 30 bits)
MIN_PROBABILITY = 2.0**-30


@dataclass
class CompressiveOptions:
    """The weight of the rate, how rounding is trained, and the layout of the code."""

    rate_weight: float = option(
        0.01, "weight lambda of the code length in bits per example against the reconstruction loss"
    )
    quantization: str = option(
        "mixed",
        "training: mixed (rate on the noisy code, decoder on the rounded one, straight through), "
        "noise (both on y + U(-1/2, 1/2)) or ste (both on the rounded code)",
        choices=QUANTIZATIONS,
    )
    spatial: bool = option(
        True,
        "conv: the code is the last feature map, code_dim channels at each position (no dense layers); "
        "off: the conv encoder's dense code",
    )
    code_dim: int | None = option(None, "channels of a spatial code; unset: latent / positions")

    def validate(self) -> None:
        if not (math.isfinite(self.rate_weight) and self.rate_weight >= 0):
            raise ConfigError(f"compressive option rate_weight must be a finite number >= 0, got {self.rate_weight}")
        if self.quantization not in QUANTIZATIONS:
            raise ConfigError(f"compressive option quantization must be one of {', '.join(QUANTIZATIONS)}")
        if self.code_dim is not None and self.code_dim < 1:
            raise ConfigError(f"compressive option code_dim must be at least 1, got {self.code_dim}")


def logistic_bits(y: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    r"""Code length in bits of each value of ``y`` under the unit-interval probability of a logistic
    (the module's :math:`P`), computed on the tail that keeps it accurate: for a value above the
    location the difference of the upper tails :math:`F(-b) - F(-a)`, which are small there."""
    inv = torch.exp(-log_scale)
    upper, lower = (y + 0.5 - loc) * inv, (y - 0.5 - loc) * inv
    sign = -torch.sign(upper + lower).detach()  # flip to the side where both sigmoids are small
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
    return -torch.log2(p.clamp(min=MIN_PROBABILITY))


@register(
    "compressive",
    "compressive autoencoder (Balle et al. 2017, Theis et al. 2017): an integer code and its bits under a "
    "learned factorized density, trained for rate and distortion",
    options=CompressiveOptions,
)
class Compressive(Variant):
    """Rounded codes with a learned logistic density per channel (parameters ``loc``, ``log_scale``).

    Raises
    ------
    ConfigError
        For a spatial code with dense layers, or a ``latent`` that is not ``code_dim`` x the positions
        of the last feature map.
    """

    code_name = "integer codes"
    #: the codes are integers: :mod:`aekit.compress` stores them exactly, with unit steps
    integer_codes = True

    def __init__(self, config: Any, options: CompressiveOptions):
        super().__init__(config, options)
        latent, o = config.latent, options
        self.is_spatial = config.architecture == "conv" and o.spatial
        if self.is_spatial:
            dim, fh, fw = spatial_code_shape(config, o.code_dim, "compressive")
            self.channels, self.positions = dim, fh * fw
        else:
            self.channels, self.positions = latent, 1
        self.loc = nn.Parameter(torch.zeros(self.channels))
        self.log_scale = nn.Parameter(torch.zeros(self.channels))
        self._bits: torch.Tensor | None = None

    def networks(self) -> tuple[nn.Module, nn.Module] | None:
        """The spatial code's convolutions (those of the spatial VQ-VAE), or None: the model's own."""
        if not self.is_spatial:
            return None
        return SpatialEncoder(self.config, self.channels), SpatialDecoder(self.config, self.channels)

    def bits(self, y: torch.Tensor) -> torch.Tensor:
        """Bits per example of the codes ``y`` (N, latent) under the density (integers: the code length)."""
        y = y.float()  # under bfloat16 autocast too: the tails need float32's digits
        per = logistic_bits(
            y.reshape(len(y), self.channels, self.positions), self.loc[:, None], self.log_scale[:, None]
        )
        return per.flatten(1).sum(1)

    def bottleneck(self, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rounded = torch.round(h)
        if not self.training:
            z, rated = rounded, rounded
        else:
            straight = h + (rounded - h).detach()
            noisy = h + (torch.rand_like(h) - 0.5)
            q = self.options.quantization
            z = noisy if q == "noise" else straight
            rated = straight if q == "ste" else noisy
        bits = self.bits(rated).mean()
        self._bits = bits.detach()
        return z, {"rate": self.options.rate_weight * bits}

    def encode_deterministic(self, h: torch.Tensor) -> torch.Tensor:
        """The integer code :math:`\\hat y = \\mathrm{round}(y)`."""
        return torch.round(h)

    def metrics(self, x, h, z) -> dict[str, torch.Tensor]:
        """``bits``: the code length per example under the density (of the noisy code in training)."""
        assert self._bits is not None, "the model calls bottleneck() before metrics()"
        return {"bits": self._bits}
