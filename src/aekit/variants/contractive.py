r"""The contractive autoencoder of Rifai et al. (2011).

Rifai, S., Vincent, P., Muller, X., Glorot, X. & Bengio, Y. (2011). Contractive
auto-encoders: explicit invariance during feature extraction. *ICML*.

The objective adds to the reconstruction loss the squared Frobenius norm of the Jacobian
of the encoder :math:`f` (input to code), per example, averaged over the batch:

.. math:: \mathcal{L} = \mathcal{L}_\mathrm{recon} + \lambda \lVert J_f(x) \rVert_F^2,
          \qquad \lVert J_f(x) \rVert_F^2 = \sum_{j, i} (\partial h_j / \partial x_i)^2.

A single sigmoid layer uses the paper's closed form
(:func:`~aekit.losses.contractive_sigmoid_penalty`); any other encoder — deeper MLPs,
other activations, the convolutional encoder — uses exact per-example Jacobians
(:func:`~aekit.losses.jacobian_frobenius_sq`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import option
from ..errors import ConfigError
from ..losses import contractive_sigmoid_penalty, jacobian_frobenius_sq
from . import Variant, register


@dataclass
class ContractiveOptions:
    """Options of the contractive autoencoder."""

    lam: float = option(0.1, "weight lambda of the contractive penalty lambda * ||J_f(x)||_F^2")

    def validate(self) -> None:
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise ConfigError(f"contractive option lam must be a finite number >= 0, got {self.lam}")


@register(
    "contractive",
    "contractive autoencoder (Rifai et al. 2011): penalises the Frobenius norm of the encoder's Jacobian",
    options=ContractiveOptions,
)
class Contractive(Variant):
    """Adds the term ``"contractive"``, :math:`\\lambda \\lVert J_f(x) \\rVert_F^2`, and logs the
    mean Frobenius norm :math:`\\lVert J_f(x) \\rVert_F` as the metric ``"jacobian_norm"``.

    Attributes
    ----------
    closed_form : bool
        True when the encoder is one linear layer followed by a sigmoid (``architecture="mlp"``,
        ``hidden=()``, ``code_activation="sigmoid"``): the penalty is then computed from the
        code and the weights alone.
    """

    def __init__(self, config, options):
        super().__init__(config, options)
        self.closed_form = config.architecture == "mlp" and not config.hidden and config.code_activation == "sigmoid"
        self._norm_sq: torch.Tensor | None = None

    def penalty(self, x, h, z, model):
        if self.closed_form:
            per = contractive_sigmoid_penalty(h, model.encoder.linears[0].weight, reduction="none")
        else:
            per = jacobian_frobenius_sq(model.encoder, model._to_encoder(x), reduction="none")
        self._norm_sq = per.detach()  # reused by metrics(), which the model calls next
        return {"contractive": self.options.lam * per.mean()}

    def metrics(self, x, h, z):
        norm_sq, self._norm_sq = self._norm_sq, None
        return {} if norm_sq is None else {"jacobian_norm": norm_sq.sqrt().mean()}
