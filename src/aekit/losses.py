"""Loss terms as pure functions.

Every function takes tensors of shape ``(N, ...)`` and returns, by default, the mean over
the batch of a per-example sum (``reduction="mean"``); ``reduction="none"`` returns the
per-example values of shape ``(N,)``. Summing over features keeps the scale of each term
comparable across variants (a reconstruction term and a KL term are both per example).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    if reduction == "none":
        return per_example
    raise ValueError(f"unknown reduction {reduction!r}")


def squared_error(reconstruction: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Summed squared error per example, :math:`\sum_i (\hat x_i - x_i)^2`.

    This is the "per-image squared error" Hinton & Salakhutdinov (2006, Science 313) report
    for their autoencoders and for PCA.
    """
    per = (reconstruction - target).pow(2).flatten(1).sum(1)
    return _reduce(per, reduction)


def bernoulli_cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Bernoulli cross-entropy on logits, summed over features:

    .. math:: -\sum_i x_i \log \sigma(l_i) + (1 - x_i) \log(1 - \sigma(l_i))

    with targets :math:`x_i \in [0, 1]`, the fine-tuning loss of Hinton & Salakhutdinov (2006).
    Computed stably from the logits :math:`l`.
    """
    per = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
    return _reduce(per, reduction)


RECONSTRUCTION_LOSSES = {"mse": squared_error, "bce": bernoulli_cross_entropy}
