"""The denoising autoencoder (Vincent et al. 2008, 2010): reconstruct the clean input from a
corrupted copy.

Each training batch is corrupted afresh, :math:`\\tilde x \\sim q_D(\\tilde x \\mid x)`, and the
objective is the reconstruction error of :math:`g(f(\\tilde x))` against the *clean*
:math:`x` (the model core compares with the clean input; corruption happens only in training
mode, so encoding, reconstruction and validation are deterministic). The corruption processes
live in :mod:`aekit.noise`; the options below choose one and are saved in ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import noise as corruption  # (``noise`` is also an option name)
from ..config import option
from . import Variant, register


@dataclass
class DenoisingOptions:
    """Corruption process of the denoising autoencoder, in model space (after the run's scaling)."""

    noise: str = option(
        "gaussian",
        "corruption process: mask = zero a fraction nu of the entries, "
        "gaussian = add N(0, sigma^2), salt_pepper = set a fraction nu to low or high",
        choices=corruption.NOISE_KINDS,
    )
    nu: float = option(corruption.DEFAULT_NU, "fraction of the entries of each example corrupted (mask, salt_pepper)")
    sigma: float = option(corruption.DEFAULT_SIGMA, "standard deviation of the additive noise (gaussian)")
    low: float = option(0.0, "pepper value (salt_pepper) and lower clip bound, in model space")
    high: float = option(1.0, "salt value (salt_pepper) and upper clip bound, in model space")
    clip: bool = option(False, "clip the gaussian-corrupted input to [low, high]")

    def validate(self) -> None:
        """Check the corruption's parameters, once: :meth:`Denoising.corrupt` then corrupts every training
        batch without checking them again (the clip bounds are ``low`` and ``high``, checked here)."""
        corruption.check_parameters(self.noise, nu=self.nu, sigma=self.sigma, low=self.low, high=self.high)


@register(
    "denoising",
    "denoising autoencoder (Vincent et al. 2008): reconstruct the clean input from a "
    "masked, Gaussian or salt-and-pepper corrupted copy",
    options=DenoisingOptions,
)
class Denoising(Variant):
    """Corrupts the input during training; everything else is the plain autoencoder."""

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """A fresh corruption of the batch from torch's global generator (checkpointed by the trainer),
        without checking the parameters again (:meth:`DenoisingOptions.validate` checked them)."""
        o = self.options
        clip = (o.low, o.high) if o.clip else None
        return corruption.corrupt(x, o.noise, nu=o.nu, sigma=o.sigma, low=o.low, high=o.high, clip=clip, check=False)
