"""Loss terms as pure functions.

Every function takes tensors of shape ``(N, ...)`` and returns, by default, the mean over
the batch of a per-example sum (``reduction="mean"``); ``reduction="none"`` returns the
per-example values of shape ``(N,)``. Summing over features keeps the scale of each term
comparable across variants (a reconstruction term and a KL term are both per example).
"""

from __future__ import annotations

import math

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

LOG_2PI = math.log(2 * math.pi)


def gaussian_nll(
    mean: torch.Tensor, target: torch.Tensor, log_scale: torch.Tensor | float = 0.0, reduction: str = "mean"
) -> torch.Tensor:
    r"""Negative log-density of a diagonal Gaussian, summed over features:

    .. math:: -\log \mathcal N(x; \mu, \sigma^2 I)
              = \sum_i \frac{(x_i - \mu_i)^2}{2 \sigma_i^2} + \log \sigma_i + \tfrac12 \log 2\pi,

    the Gaussian decoder of Kingma & Welling (2014, appendix C.2). ``log_scale`` is
    :math:`\log \sigma`: a number (fixed variance) or a tensor broadcastable to ``mean``
    (e.g. one learned value per feature).
    """
    log_scale = torch.as_tensor(log_scale, dtype=mean.dtype, device=mean.device)
    per = 0.5 * ((target - mean) * torch.exp(-log_scale)).pow(2) + log_scale + 0.5 * LOG_2PI
    return _reduce(per.expand_as(mean).flatten(1).sum(1), reduction)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""KL divergence of a diagonal Gaussian posterior from the standard normal prior, in closed form
    (Kingma & Welling 2014, appendix B), summed over latent dimensions:

    .. math:: \mathrm{KL}\big(\mathcal N(\mu, \mathrm{diag}\,\sigma^2) \,\|\, \mathcal N(0, I)\big)
              = \tfrac12 \sum_j \big(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\big).

    ``logvar`` is :math:`\log \sigma^2`. :func:`gaussian_kl_per_dim` keeps the dimensions apart.
    """
    return _reduce(gaussian_kl_per_dim(mu, logvar).sum(1), reduction)


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The terms of :func:`gaussian_kl` for each example and latent dimension, shape ``(N, latent)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)


def gaussian_log_density(
    z: torch.Tensor, mu: torch.Tensor | float = 0.0, logvar: torch.Tensor | float = 0.0
) -> torch.Tensor:
    r""":math:`\log \mathcal N(z; \mu, \mathrm{diag}\, e^{\text{logvar}})` summed over the last
    dimension (the standard normal by default); shape ``z.shape[:-1]``."""
    mu = torch.as_tensor(mu, dtype=z.dtype, device=z.device)
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def kl_sparsity(code: torch.Tensor, rho: float, eps: float = 1e-6) -> torch.Tensor:
    r"""KL sparsity penalty of a sigmoid code (Ng, *Sparse autoencoder*, CS294A lecture notes, 2011):

    .. math:: \sum_j \mathrm{KL}(\rho \,\|\, \hat\rho_j)
              = \sum_j \rho \log\frac{\rho}{\hat\rho_j} + (1 - \rho) \log\frac{1 - \rho}{1 - \hat\rho_j}

    where :math:`\hat\rho_j` is the mean activation of code unit :math:`j` over the batch,
    clamped to :math:`(\epsilon, 1 - \epsilon)`. A batch statistic, so there is no per-example
    reduction: the result is one scalar (multiply by :math:`\beta` for Ng's weighted term).

    Parameters
    ----------
    code : Tensor
        Code activations in [0, 1], shape ``(N, units)``.
    rho : float
        Target mean activation, in (0, 1).
    """
    rho_hat = code.flatten(1).mean(0).clamp(eps, 1 - eps)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def l1_activity(code: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""L1 activity penalty, :math:`\sum_j |a_j|` per example (multiply by :math:`\lambda`).

    The sparsity penalty on hidden activations of Goodfellow, Bengio & Courville (2016),
    *Deep Learning*, section 14.2.1, :math:`\Omega(h) = \lambda \sum_j |h_j|`.
    """
    return _reduce(code.abs().flatten(1).sum(1), reduction)


def contractive_sigmoid_penalty(code: torch.Tensor, weight: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Squared Frobenius norm of the Jacobian of a sigmoid encoder layer, in closed form.

    For :math:`h = \sigma(W x + b)`, :math:`\partial h_j / \partial x_i = h_j (1 - h_j) W_{ji}`, so

    .. math:: \lVert J_f(x) \rVert_F^2 = \sum_j \big(h_j (1 - h_j)\big)^2 \sum_i W_{ji}^2,

    the contractive penalty of Rifai, Vincent, Muller, Glorot & Bengio (2011), "Contractive
    auto-encoders: explicit invariance during feature extraction", ICML. ``code`` is
    :math:`h`, shape ``(N, k)``; ``weight`` is :math:`W`, shape ``(k, D)``.
    """
    per = ((code * (1 - code)).pow(2) * weight.pow(2).sum(1)).sum(1)
    return _reduce(per, reduction)


def jacobian_frobenius_sq(fn, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Squared Frobenius norm of each example's Jacobian of ``fn``, computed exactly:

    .. math:: \lVert J_f(x) \rVert_F^2 = \sum_{j, i} \left(\frac{\partial f_j(x)}{\partial x_i}\right)^2,

    the contractive penalty of Rifai et al. (2011, ICML) for any encoder ``f``. ``fn`` maps a
    batch ``(N, ...)`` to ``(N, k)`` and must treat rows independently; each example's
    ``(k, ...)`` Jacobian comes from ``torch.func.vmap(torch.func.jacrev(...))`` (``k``
    backward passes, batched). The result is differentiable with respect to the parameters
    ``fn`` uses, so it can be minimised.
    """

    def one(xi: torch.Tensor) -> torch.Tensor:
        return fn(xi.unsqueeze(0)).squeeze(0)

    jac = torch.func.vmap(torch.func.jacrev(one))(x)
    return _reduce(jac.pow(2).flatten(1).sum(1), reduction)
