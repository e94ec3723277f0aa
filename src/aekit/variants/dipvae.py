r"""DIP-VAE-I and -II: the VAE with the covariance of the aggregate posterior pushed to the identity.

Kumar, A., Sattigeri, P. & Balakrishnan, A. (2018). Variational Inference of Disentangled Latent
Concepts from Unlabeled Observations. *ICLR 2018* (arXiv:1711.00848).

On the training batch, with :math:`C` the covariance the variant matches,

.. math:: \lambda_{od} \sum_{i \ne j} C_{ij}^2 + \lambda_d \sum_i (C_{ii} - 1)^2

is added to the VAE's objective (:func:`dip_penalty`):

- ``dip-vae-i``: :math:`C = \mathrm{Cov}_{p(x)}[\mu(x)]`, the covariance of the posterior means, with
  :math:`\lambda_d = 10\,\lambda_{od}`;
- ``dip-vae-ii``: :math:`C = \mathbb E_{p(x)}[\Sigma(x)] + \mathrm{Cov}_{p(x)}[\mu(x)]`, the covariance of
  :math:`q(z)`, with :math:`\lambda_d = \lambda_{od}`;

the factors are disentanglement_lib's (``lambda_d_factor``), :math:`\lambda_{od}` = ``lambda_od``
(default 10). The covariances are the batch's (the biased estimate, divided by :math:`B`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import option
from ..errors import ConfigError
from . import register
from .tcvae import GaussianFamily, GaussianOptions

#: what the penalty matches: the covariance of the posterior means (i) or of q(z) (ii)
DIP_TYPES = ("i", "ii")


def dip_penalty(mu: torch.Tensor, logvar: torch.Tensor, kind: str, lambda_od: float, lambda_d: float) -> torch.Tensor:
    r"""The DIP regulariser of a batch of posteriors (``mu``, ``logvar``: ``(B, latent)``): ``kind`` "i"
    matches :math:`\mathrm{Cov}[\mu]`, "ii" :math:`\mathbb E[\mathrm{diag}\,\sigma^2] + \mathrm{Cov}[\mu]`
    to the identity, off-diagonal squares weighted by ``lambda_od``, diagonal ones by ``lambda_d``."""
    centred = mu - mu.mean(0, keepdim=True)
    cov = centred.T @ centred / len(mu)
    if kind == "ii":
        cov = cov + torch.diag(logvar.exp().mean(0))
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.pow(2).sum() + lambda_d * (diag - 1).pow(2).sum()


@dataclass
class DIPOptions(GaussianOptions):
    """Options of DIP-VAE (Kumar et al. 2018)."""

    kind: str = option("i", "DIP-VAE-I (covariance of the means) or -II (covariance of q(z))", choices=DIP_TYPES)
    lambda_od: float = option(10.0, "weight lambda_od of the off-diagonal covariance terms")
    lambda_d_factor: float = option(10.0, "lambda_d = lambda_d_factor * lambda_od, the weight of the diagonal")
    beta: float = option(1.0, "weight beta of the KL term")

    def validate(self) -> None:
        self.check("dip-vae", ("lambda_od", "lambda_d_factor", "beta"))
        if self.kind not in DIP_TYPES:
            raise ConfigError(f"dip-vae option kind must be one of {', '.join(DIP_TYPES)}, got {self.kind!r}")


@register(
    "dip-vae-i",
    "DIP-VAE-I (Kumar et al. 2018): the VAE with the covariance of the posterior means pushed to I",
    options=DIPOptions,
    defaults={"loss": "bce"},
)
@register(
    "dip-vae-ii",
    "DIP-VAE-II (Kumar et al. 2018): the VAE with the covariance of q(z) pushed to I",
    options=DIPOptions,
    defaults={"loss": "bce"},
    option_defaults={"kind": "ii", "lambda_d_factor": 1.0},
)
class DIPVAE(GaussianFamily):
    """DIP-VAE: the VAE's KL term and :func:`dip_penalty` (term ``dip``)."""

    def __init__(self, config: Any, options: DIPOptions):
        super().__init__(config, options)
        self._dip: torch.Tensor | None = None

    def bottleneck(self, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z, mu, logvar, kl = self.sample_posterior(h)
        o = self.options
        dip = dip_penalty(mu, logvar, o.kind, o.lambda_od, o.lambda_d_factor * o.lambda_od)
        self._dip = dip.detach()
        return z, {"kl": self.scheduled(kl, o.beta) * kl, "dip": self.scheduled(dip) * dip}

    def metrics(self, x, h, z) -> dict[str, torch.Tensor]:
        """The KL in nats (``kl_nats``), the unweighted-by-warm-up penalty (``dip_penalty``), the warm-up factor."""
        assert self._kl is not None and self._dip is not None, "the model calls bottleneck() before metrics()"
        return {"kl_nats": self._kl, "dip_penalty": self._dip, "warmup": self.scheduled_metric()}
