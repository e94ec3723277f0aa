r"""FactorVAE: the VAE with its total correlation estimated by a discriminator and penalised.

Kim, H. & Mnih, A. (2018). Disentangling by Factorising. *ICML 2018* (arXiv:1802.05983).

A discriminator :math:`D` (an MLP, ``disc_layers`` hidden layers of ``disc_units`` leaky-ReLU units:
6 of 1000 in the paper) tells codes :math:`z \sim q(z)` from codes whose dimensions were each
permuted across a batch, samples of :math:`\bar q(z) = \prod_j q(z_j)` (:func:`permute_dims`). Its two
logits estimate the density ratio, so the total correlation is

.. math:: \mathrm{TC}(z) = \mathrm{KL}(q(z)\,\|\,\bar q(z)) \approx \mathbb E_{q(z)}[D_0(z) - D_1(z)]

(class 0: joint, class 1: permuted), and the VAE minimises
:math:`\mathrm{recon} + \beta\,\mathrm{KL}(q(z|x)\,\|\,p(z)) + \gamma\,\mathrm{TC}` (``beta`` 1, ``gamma``
the TC weight). The discriminator is an auxiliary model of the variant
(:meth:`~aekit.variants.Variant.auxiliary_step`): after every step of the VAE it takes one step of its
own optimizer (Adam, ``disc_lr`` 1e-4, betas (``disc_beta1``, ``disc_beta2``) = (0.5, 0.9) as in the
paper) on the cross-entropy of joint codes (the first half of the batch's codes) against permuted ones
(the second half, permuted: two independent halves, as the paper's two batches); the trainer
checkpoints its optimizer with the rest, so a resumed run is exact. Its weights are parameters of the
model (saved with it); the VAE's optimizer leaves them alone. The history logs ``tc_nats`` (the
estimate on the VAE's batch), the discriminator's loss ``disc_loss`` and accuracy ``disc_accuracy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import option
from ..errors import ConfigError
from ..nn import MLP
from . import register
from .tcvae import GaussianFamily, GaussianOptions


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""``z`` with each column permuted independently across the rows: a sample of
    :math:`\prod_j q(z_j)` from a sample of :math:`q(z)` (Kim & Mnih 2018, Algorithm 1)."""
    n, d = z.shape
    idx = torch.stack([torch.randperm(n, generator=generator, device=z.device) for _ in range(d)], dim=1)
    return torch.gather(z, 0, idx)


@dataclass
class FactorVAEOptions(GaussianOptions):
    """Options of FactorVAE (Kim & Mnih 2018)."""

    gamma: float = option(35.0, "weight gamma of the total correlation estimated by the discriminator")
    beta: float = option(1.0, "weight beta of the KL term")
    disc_layers: int = option(6, "hidden layers of the discriminator")
    disc_units: int = option(1000, "units of each hidden layer of the discriminator")
    disc_lr: float = option(1e-4, "learning rate of the discriminator's Adam")
    disc_beta1: float = option(0.5, "Adam beta1 of the discriminator")
    disc_beta2: float = option(0.9, "Adam beta2 of the discriminator")

    def validate(self) -> None:
        self.check("factor-vae", ("gamma", "beta"))
        if not 1 <= self.disc_layers <= 64 or not 1 <= self.disc_units <= 1 << 16:
            raise ConfigError(
                "factor-vae options disc_layers and disc_units must be 1-64 and 1-65536, got "
                f"{self.disc_layers} and {self.disc_units}"
            )
        if not (math.isfinite(self.disc_lr) and self.disc_lr > 0):
            raise ConfigError(f"factor-vae option disc_lr must be a positive number, got {self.disc_lr}")
        for name in ("disc_beta1", "disc_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"factor-vae option {name} must lie in [0, 1), got {getattr(self, name)}")


@register(
    "factor-vae",
    "FactorVAE (Kim & Mnih 2018): the VAE with its total correlation, estimated by a discriminator of "
    "dimension-permuted codes trained alongside, weighted by gamma = 35",
    options=FactorVAEOptions,
    defaults={"loss": "bce"},
)
class FactorVAE(GaussianFamily):
    """FactorVAE: the VAE's KL term, gamma times the discriminator's TC estimate, and the discriminator
    (module ``discriminator``: latent -> units x layers -> 2 logits) trained by :meth:`auxiliary_step`."""

    def __init__(self, config: Any, options: FactorVAEOptions):
        super().__init__(config, options)
        sizes = [config.latent, *([options.disc_units] * options.disc_layers), 2]
        self.discriminator = MLP(sizes, activation="leaky_relu")
        for m in self.discriminator.modules():  # leaky ReLU slope 0.2 (Kim & Mnih)
            if isinstance(m, nn.LeakyReLU):
                m.negative_slope = 0.2
        self._optimizer: torch.optim.Optimizer | None = None
        self._tc: torch.Tensor | None = None

    def tc_estimate(self, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathbb E[D_0(z) - D_1(z)]` over the rows of ``z``: the discriminator's estimate of the TC."""
        logits = self.discriminator(z)
        return (logits[:, 0] - logits[:, 1]).mean()

    def bottleneck(self, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z, _, _, kl = self.sample_posterior(h)
        o = self.options
        tc = self.tc_estimate(z)
        self._tc = tc.detach()
        return z, {"kl": self.scheduled(kl, o.beta) * kl, "tc": self.scheduled(tc, o.gamma) * tc}

    def metrics(self, x, h, z) -> dict[str, torch.Tensor]:
        """The KL (``kl_nats``) and the discriminator's TC estimate (``tc_nats``), in nats; the warm-up factor."""
        assert self._kl is not None and self._tc is not None, "the model calls bottleneck() before metrics()"
        return {"kl_nats": self._kl, "tc_nats": self._tc, "warmup": self.scheduled_metric()}

    # -- the discriminator, an auxiliary model --------------------------------------------------------
    def auxiliary_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    def auxiliary_optimizer(self) -> torch.optim.Optimizer:
        """A fresh Adam of the discriminator (``disc_lr``, betas ``disc_beta1``, ``disc_beta2``)."""
        o = self.options
        self._optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=o.disc_lr, betas=(o.disc_beta1, o.disc_beta2)
        )
        return self._optimizer

    def discriminator_loss(self, joint: torch.Tensor, shuffled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-entropy of the discriminator on ``joint`` codes (class 0) and ``shuffled`` ones
        (class 1, already permuted), the mean of both halves, and its accuracy."""
        logits = self.discriminator(torch.cat([joint, shuffled]))
        labels = torch.cat([torch.zeros(len(joint), dtype=torch.long), torch.ones(len(shuffled), dtype=torch.long)]).to(
            logits.device
        )
        loss = 0.5 * (
            F.cross_entropy(logits[: len(joint)], labels[: len(joint)])
            + F.cross_entropy(logits[len(joint) :], labels[len(joint) :])
        )
        accuracy = (logits.argmax(1) == labels).float().mean()
        return loss, accuracy

    def discriminator_step(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step of the discriminator on the codes ``z`` (detached): the first half joint,
        the second half with its dimensions permuted (:func:`permute_dims`, torch's global generator)."""
        if self._optimizer is None:
            raise RuntimeError("auxiliary_optimizer() makes the discriminator's optimizer before its first step")
        half = len(z) // 2
        if half < 1:
            return {}
        z = z.detach()
        was = self.discriminator.training
        self.discriminator.train()
        with torch.enable_grad():
            loss, accuracy = self.discriminator_loss(z[:half], permute_dims(z[half : 2 * half]))
            self._optimizer.zero_grad(set_to_none=True)  # also drops what the VAE's backward left there
            loss.backward()
        self._optimizer.step()
        self.discriminator.train(was)
        return {"disc_loss": loss.detach(), "disc_accuracy": accuracy}

    def auxiliary_step(self, x: torch.Tensor, out: Any, model: Any) -> dict[str, torch.Tensor]:
        """:meth:`discriminator_step` on the codes of the VAE's step (``out.code``)."""
        return self.discriminator_step(out.code.float())
