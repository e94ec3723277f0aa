r"""Likelihood estimators of latent-variable models with a Gaussian encoder: the evidence lower
bound per example and the importance-weighted estimate of :math:`-\log p(x)`.

Pure functions of tensors and of three functions that describe a model, so that any library's
model is scored by the same code (``benchmarks/vae_likelihood.py`` scores Pythae's this way):

- a :data:`PosteriorFn` ``posterior(x) -> (mu, logvar)``, the diagonal Gaussian :math:`q(z|x)`;
- a :data:`LikelihoodFn` ``log_likelihood(z, x) -> log p(x|z)`` per row, the decoder's likelihood;
- the prior :math:`p(z)`: the standard normal :class:`StandardNormal` (its log density in
  :func:`importance_weighted_bounds`, its closed-form KL divergence from the posterior in both).

Kingma, D. P. & Welling, M. (2014). Auto-Encoding Variational Bayes. *ICLR 2014*.
Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. *ICLR 2016*.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .losses import gaussian_kl, gaussian_kl_per_dim, gaussian_log_density

#: ``posterior(x) -> (mu, logvar)`` of a Gaussian encoder
PosteriorFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: ``log_likelihood(z, x) -> log p(x|z)`` per row, for codes ``(rows, latent)`` and ``x`` repeated to match
LikelihoodFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Rows x draws decoded at once by the ELBO of every row (:func:`elbo`'s callers).
ELBO_MAX_ROWS = 65536
#: Seed of the draws of the ELBO of every row (the same draws for every call and every row).
ELBO_SEED = 0


class StandardNormal:
    r"""The prior :math:`p(z) = \mathcal N(0, I)` over codes of ``latent`` dimensions.

    Attributes
    ----------
    latent : int
    description : str
        The prior in words, for captions (``"N(0, I)"``).
    """

    description = "N(0, I)"

    def __init__(self, latent: int):
        self.latent = int(latent)

    def sample(self, n: int, *, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``n`` codes :math:`z \\sim \\mathcal N(0, t^2 I)` (``t`` = ``temperature``), float32 on the CPU,
        drawn from ``generator``."""
        return torch.randn((n, self.latent), generator=generator) * temperature

    def mean(self) -> np.ndarray:
        """The prior mean, 0 (float32, shape ``(latent,)``)."""
        return np.zeros(self.latent, np.float32)

    def std(self) -> np.ndarray:
        """The standard deviation of each code dimension, 1 (shape ``(latent,)``)."""
        return np.ones(self.latent)


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    samples: int = 1,
    generator: torch.Generator | None = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    r""":math:`z = \mu + \sigma \odot \epsilon`, shape ``(samples * N, latent)`` (sample-major).

    :math:`\epsilon \sim \mathcal N(0, I)` is drawn from ``generator``, or given as ``eps``, of a shape
    that broadcasts to ``(samples, N, latent)`` (``(samples, 1, latent)``: the same draws for every
    row; ``samples`` and ``generator`` are then unused)."""
    if eps is None:
        eps = torch.randn((samples, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
    return (mu + torch.exp(0.5 * logvar) * eps).reshape(-1, mu.shape[1])


def importance_weighted_bounds(
    posterior: PosteriorFn,
    log_likelihood: LikelihoodFn,
    X: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    batch_size: int = 100,
    max_rows: int = 65536,
    device: Any = "cpu",
) -> dict[str, float]:
    r"""The negative ELBO's parts and the importance-weighted estimate of :math:`-\log p(x)` of the rows
    of ``X``, for any Gaussian encoder and decoder likelihood given as functions and the standard
    normal prior.

    With :math:`K` = ``k`` draws :math:`z_k \sim q(z|x)` (Burda, Grosse & Salakhutdinov 2016):

    .. math:: \log p(x) \approx \log \frac1K \sum_{k=1}^K \frac{p(x|z_k)\,p(z_k)}{q(z_k|x)} \;\ge\;
              \mathbb E_q[\log p(x|z)] - \mathrm{KL}(q(z|x) \,\|\, p(z)) = \mathcal L(x).

    Returns the means over rows of ``nll_iw`` (:math:`-\log \frac1K \sum_k w_k`), ``recon``
    (:math:`\mathbb E_q[-\log p(x|z)]` over the same draws) and ``kl`` (closed form). The draws come
    from a ``torch.Generator`` on ``device`` seeded with ``seed``; ``batch_size`` rows are encoded at
    once and at most ``max_rows`` (row, draw) pairs decoded at once.
    """
    gen = torch.Generator(device=device).manual_seed(int(seed))
    totals = {"nll_iw": 0.0, "recon": 0.0, "kl": 0.0}
    with torch.inference_mode():
        for i in range(0, len(X), batch_size):
            x = torch.as_tensor(X[i : i + batch_size], device=device)
            mu, logvar = posterior(x)
            n = len(x)
            chunk = max(1, max_rows // n)
            log_w, log_px = [], []
            for start in range(0, k, chunk):
                kk = min(chunk, k - start)
                z = reparameterize(mu, logvar, kk, gen)
                lp = log_likelihood(z, x.repeat(kk, *([1] * (x.ndim - 1)))).reshape(kk, n)
                zs = z.reshape(kk, n, -1)
                log_px.append(lp)
                log_w.append(lp + gaussian_log_density(zs) - gaussian_log_density(zs, mu, logvar))
            log_px_iw = torch.logsumexp(torch.cat(log_w).double(), 0) - math.log(k)
            totals["nll_iw"] -= float(log_px_iw.sum())
            totals["recon"] -= float(torch.cat(log_px).double().mean(0).sum())
            totals["kl"] += float(gaussian_kl_per_dim(mu, logvar).sum(1).double().sum())
    return {key: v / len(X) for key, v in totals.items()}


def elbo_draws(
    samples: int, latent: int, *, seed: int = ELBO_SEED, dtype: torch.dtype = torch.float32, device: Any = "cpu"
) -> torch.Tensor:
    r"""The ``samples`` draws :math:`\epsilon_k \sim \mathcal N(0, I)`, shape ``(samples, latent)``, that
    :func:`elbo` shares between all rows: from a ``torch.Generator`` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device).manual_seed(int(seed))
    return torch.randn((samples, latent), generator=gen, dtype=dtype, device=device)


def elbo(posterior: PosteriorFn, log_likelihood: LikelihoodFn, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r"""The evidence lower bound of each row of ``x``, in nats, shape ``(N,)``:

    .. math:: \mathcal L(x) = \frac1K \sum_{k=1}^K \log p(x \mid \mu + \sigma \odot \epsilon_k)
              - \mathrm{KL}\big(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, I)\big)

    (Kingma & Welling 2014, eq. 7) with the :math:`K` draws ``eps`` ``(K, latent)``
    (:func:`elbo_draws`) shared by every row (common random numbers: a row's value does not depend
    on the other rows) and the closed-form KL."""
    samples = eps.shape[0]
    mu, logvar = posterior(x)
    z = reparameterize(mu, logvar, eps=eps[:, None, :])  # sample-major
    log_px = log_likelihood(z, x.reshape(len(x), -1).repeat(samples, 1)).reshape(samples, len(x)).mean(0)
    return log_px - gaussian_kl(mu, logvar, "none")
