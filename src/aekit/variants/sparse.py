r"""The sparse autoencoder: a penalty that keeps most code units near zero.

Ng, A. (2011). *Sparse autoencoder*. CS294A lecture notes, Stanford University.

With sigmoid code units :math:`a_j \in (0, 1)` the penalty is
:math:`\beta \sum_j \mathrm{KL}(\rho \,\|\, \hat\rho_j)`, where :math:`\hat\rho_j` is the mean
activation of unit :math:`j` over the batch and :math:`\rho` a small target (Ng uses
:math:`\rho = 0.05`, :math:`\beta = 3`). An L1 activity penalty
:math:`\lambda \sum_j |a_j|` (per example, averaged over the batch) may be added or used
instead; it suits code units of any activation.

The KL term needs sigmoid code units, so the variant registers ``code_activation="sigmoid"``
as its default. When ``beta`` is not given it is 3 with sigmoid code units; with any other code
activation (e.g. a model built from a bare :class:`~aekit.model.ModelConfig`, whose code is
linear) it is 0 and the L1 penalty, with ``l1`` = :data:`L1_WITHOUT_KL` unless given, makes the
code sparse instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..config import option
from ..errors import ConfigError
from ..losses import kl_sparsity, l1_activity
from . import Variant, register

#: Ng's weight of the KL term, used with sigmoid code units when ``beta`` is not given.
BETA_DEFAULT = 3.0
#: The L1 weight when the KL term is off and ``l1`` is not given (non-sigmoid code units).
L1_WITHOUT_KL = 0.01
#: A code entry counts as active when its magnitude exceeds this (for a sigmoid unit: more on than off).
ACTIVE_THRESHOLD = 0.5


@dataclass
class SparseOptions:
    """Sparsity penalties of the sparse autoencoder."""

    rho: float = option(0.05, "target mean activation of each code unit (KL penalty)")
    beta: float | None = option(
        None, f"weight of the KL sparsity penalty; unset: {BETA_DEFAULT:g} with sigmoid code units, else 0"
    )
    l1: float | None = option(
        None,
        f"weight lambda of the L1 activity penalty lambda*sum_j |a_j|; unset: 0 "
        f"when the KL penalty is on, else {L1_WITHOUT_KL:g}",
    )

    def validate(self) -> None:
        if not 0 < self.rho < 1:
            raise ConfigError(f"sparse option rho must be between 0 and 1 (exclusive), got {self.rho}")
        for name in ("beta", "l1"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"sparse option {name} must be a non-negative number, got {value}")


@register(
    "sparse",
    "sparse autoencoder (Ng 2011): KL penalty on the mean activation of sigmoid code units "
    "and/or an L1 activity penalty",
    options=SparseOptions,
    defaults={"code_activation": "sigmoid"},
)
class Sparse(Variant):
    """Adds ``kl_sparsity`` and/or ``l1`` (only the terms with a positive weight) and logs
    ``mean_activation`` and ``active_fraction``.

    Raises
    ------
    ConfigError
        If the KL penalty is on (``beta > 0``) and the code units are not sigmoid units.
    """

    def __init__(self, config, options):
        super().__init__(config, options)
        sigmoid = config.code_activation == "sigmoid"
        self.beta = options.beta if options.beta is not None else (BETA_DEFAULT if sigmoid else 0.0)
        if self.beta > 0 and not sigmoid:
            raise ConfigError(
                f"the KL sparsity penalty needs sigmoid code units, but code_activation is "
                f"{config.code_activation!r}; use code_activation='sigmoid' or beta=0 with l1 > 0"
            )
        self.l1 = options.l1 if options.l1 is not None else (0.0 if self.beta > 0 else L1_WITHOUT_KL)
        if self.beta == 0 and self.l1 == 0:
            raise ConfigError("the sparse variant needs beta > 0 or l1 > 0; without a penalty use the ae variant")

    def penalty(self, x, h, z, model) -> dict[str, torch.Tensor]:
        """``beta * sum_j KL(rho || rho_hat_j)`` and ``lambda * mean_n sum_j |z_nj|``, where enabled."""
        terms = {}
        if self.beta > 0:
            terms["kl_sparsity"] = self.beta * kl_sparsity(z, self.options.rho)
        if self.l1 > 0:
            terms["l1"] = self.l1 * l1_activity(z)
        return terms

    def metrics(self, x, h, z) -> dict[str, torch.Tensor]:
        """``mean_activation``: the mean of the code over examples and units;
        ``active_fraction``: the fraction of (example, unit) entries with ``|z| > 0.5``
        (:data:`ACTIVE_THRESHOLD`)."""
        return {"mean_activation": z.mean(), "active_fraction": (z.abs() > ACTIVE_THRESHOLD).float().mean()}

    def activation_marks(self) -> tuple[float | None, list[tuple[str, Any]]]:
        """The target mean activation rho, when the KL penalty is on."""
        if self.beta <= 0:
            return None, []
        return self.options.rho, [("target mean activation rho", self.options.rho)]
