r"""beta-TCVAE: the VAE whose KL term is split into index-code mutual information, total
correlation and dimension-wise KL, and the total correlation weighted.

Chen, R. T. Q., Li, X., Grosse, R. & Duvenaud, D. (2018). Isolating Sources of Disentanglement in
Variational Autoencoders. *NeurIPS 2018* (arXiv:1802.04942).

With the aggregate posterior :math:`q(z) = \frac1N \sum_n q(z|x_n)` over the :math:`N` training rows
and its marginals :math:`q(z_j)`, the expected KL term of the ELBO splits as

.. math::
    \mathbb E_{p(x)}\,\mathrm{KL}(q(z|x)\,\|\,p(z)) =
    \underbrace{\mathbb E_{q(z,x)}[\log q(z|x) - \log q(z)]}_{\text{index-code MI}}
    + \underbrace{\mathbb E_{q(z)}[\log q(z) - \textstyle\sum_j \log q(z_j)]}_{\text{total correlation}}
    + \underbrace{\mathbb E_{q(z)}[\textstyle\sum_j \log q(z_j) - \log p(z_j)]}_{\text{dimension-wise KL}}

and beta-TCVAE minimises :math:`\mathrm{recon} + \alpha\,\mathrm{MI} + \beta\,\mathrm{TC} + \gamma\,\mathrm{dimKL}`
(``alpha``, ``beta``, ``gamma``; Chen et al.: :math:`\alpha = \gamma = 1`, :math:`\beta = 6` on dSprites).
Each term is estimated on the training batch :math:`z_i \sim q(z|x_i)`, :math:`i = 1..B`, from the
matrix :math:`\log q(z_i|x_j)` (:func:`kl_decomposition`):

- ``mws``, minibatch-weighted sampling (their eq. S-5):
  :math:`\log q(z_i) \approx \log \sum_j q(z_i|x_j) - \log(NB)`, and likewise for each :math:`q(z_{ij})`.
  The constant is the paper's; it shifts the three terms by constants (their sum and every gradient are
  unchanged), so its MI, TC and dim-KL are not the nats of the decomposition.
- ``mss``, minibatch-stratified sampling (their appendix C.2):
  :math:`q(z_i) \approx \sum_j w_{ij}\, q(z_i|x_j)` with the weight :math:`1/N` on the row's own
  posterior, :math:`(N - M)/(NM)` on one other (the next row, cyclically) and :math:`1/M` on the
  remaining :math:`M - 1 = B - 2` (:func:`log_stratified_weights`), an unbiased estimate of
  :math:`q(z_i)` for a batch drawn without replacement. The authors' code
  (``rtqichen/beta-tcvae``, ``vae_quant.py``, ``_log_importance_weight_matrix``) strides the matrix by
  :math:`B` instead of :math:`B + 1` and so puts the weights on columns, not on the diagonal (their
  pull request #1); this is the estimator as the paper defines it.

The estimators need :math:`N`, the size of the training set: the ``dataset_size`` option, or, unset,
the number of training rows the :class:`~aekit.train.Trainer` fits on (read by the variant's callback
at the start of training, :attr:`~aekit.train.Trainer.train_size`, and kept in the buffer
``dataset_size`` of the model, so a loaded model evaluates with it); a model that never trained uses
the batch size.

The estimators' cost is the ``(B, B, latent)`` tensor of pairwise densities: at Chen et al.'s batch
of 2048 it is some 40 M elements a step, forward and backward, more than the networks' matrix
products. ``compile_estimator=True`` runs :func:`kl_decomposition` through ``torch.compile`` (inductor fuses
the elementwise passes into one C++ loop nest on the CPU, kernels on a GPU): about 4 times faster
on one CPU thread at batch 1024 and 2048 (0.13 s a step against 0.60 s, 0.55 s against 2.3 s,
``benchmarks/RESULTS.md``), for some 10-20 s of compilation at the first step and again for a batch of
another size (the last of an epoch).
It needs the C++ compiler inductor calls (``g++``) on the CPU. The terms are computed in float32
whatever the autocast precision: a bfloat16 log-density would round away the differences the
log-sum-exp is made of. The history logs the three terms in nats (``mi_nats``, ``tc_nats``, ``dim_kl_nats``),
the closed-form KL (``kl_nats``) and, per epoch, ``kl_per_dim`` and ``active_units`` like the VAE.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..callbacks import Callback
from ..config import option
from ..errors import ConfigError
from ..losses import LOG_2PI, gaussian_kl_per_dim
from . import register
from .vae import VAE, VAECallback

#: the estimators of log q(z) on a minibatch
ESTIMATORS = ("mss", "mws")


def log_stratified_weights(batch: int, dataset_size: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    r"""The ``(B, B)`` matrix :math:`\log w_{ij}` of minibatch-stratified sampling (Chen et al. 2018,
    appendix C.2) for a batch of :math:`B` rows of a set of :math:`N` = ``dataset_size``: with
    :math:`M = B - 1`, :math:`w_{ii} = 1/N`, :math:`w_{i,i+1 \bmod B} = (N - M)/(NM)` and :math:`1/M`
    elsewhere; every row sums to 1. A batch of one row has only its own posterior (weight 1: the
    estimate of :math:`q(z)` is :math:`q(z|x)`, the MI 0). ``dataset_size`` must be at least ``batch``."""
    if batch < 1:
        raise ConfigError(f"minibatch-stratified sampling needs a batch of at least 1 row, got {batch}")
    if batch == 1:
        return torch.zeros((1, 1), dtype=dtype, device=device)
    if dataset_size < batch:
        raise ConfigError(f"the dataset size ({dataset_size}) cannot be smaller than the batch ({batch})")
    n, m = float(dataset_size), float(batch - 1)
    w = torch.full((batch, batch), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(batch)
    w[rows, rows] = 1.0 / n
    w[rows, (rows + 1) % batch] = (n - m) / (n * m)
    return w.log().to(dtype=dtype, device=device)


def pairwise_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r""":math:`\log q(z_{ik} | x_j)`, shape ``(B, B, latent)``: each code ``z`` (rows ``i``) under each
    diagonal Gaussian posterior (``mu``, ``logvar``, rows ``j``), dimension by dimension."""
    zi, mj, lj = z[:, None, :], mu[None, :, :], logvar[None, :, :]
    return -0.5 * ((zi - mj).pow(2) * torch.exp(-lj) + lj + LOG_2PI)


@functools.cache
def compiled_kl_decomposition() -> Any:
    """:func:`kl_decomposition` through ``torch.compile`` (built once a process, at first use)."""
    return torch.compile(kl_decomposition, dynamic=False)


def kl_decomposition(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int, estimator: str = "mss"
) -> dict[str, torch.Tensor]:
    r"""The minibatch estimates of the three terms of the KL split of Chen et al. (2018), nats per row.

    Parameters
    ----------
    z : Tensor of shape (B, latent)
        One draw :math:`z_i \sim q(z|x_i)` per row.
    mu, logvar : Tensor of shape (B, latent)
        The posteriors :math:`q(z|x_i)`.
    dataset_size : int
        :math:`N`, the rows of the data set the batch is drawn from.
    estimator : {"mss", "mws"}
        Minibatch-stratified or minibatch-weighted sampling (module docstring).

    Returns
    -------
    dict with ``mi``, ``tc``, ``dim_kl`` and ``kl``: the batch means of :math:`\log q(z_i|x_i) - \log q(z_i)`,
    :math:`\log q(z_i) - \sum_j \log q(z_{ij})`, :math:`\sum_j \log q(z_{ij}) - \log p(z_{ij})` and
    :math:`\log q(z_i|x_i) - \log p(z_i)` (the Monte Carlo KL, which the other three sum to).
    """
    b = z.shape[0]
    logq = pairwise_log_density(z, mu, logvar)  # (i, j, k)
    rows = torch.arange(b, device=z.device)
    log_qzx = logq[rows, rows].sum(1)
    log_pz = (-0.5 * (z.pow(2) + LOG_2PI)).sum(1)
    if estimator == "mws":
        const = math.log(b * dataset_size)
        log_qz = torch.logsumexp(logq.sum(2), dim=1) - const
        log_prod = (torch.logsumexp(logq, dim=1) - const).sum(1)
    elif estimator == "mss":
        logw = log_stratified_weights(b, dataset_size, dtype=z.dtype, device=z.device)
        log_qz = torch.logsumexp(logw + logq.sum(2), dim=1)
        log_prod = torch.logsumexp(logw[:, :, None] + logq, dim=1).sum(1)
    else:
        raise ConfigError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    return {
        "mi": (log_qzx - log_qz).mean(),
        "tc": (log_qz - log_prod).mean(),
        "dim_kl": (log_prod - log_pz).mean(),
        "kl": (log_qzx - log_pz).mean(),
    }


@dataclass
class GaussianOptions:
    """The options of the Gaussian posterior and decoder that the VAE family shares."""

    warmup: int = option(
        0, "warm-up: the weights of the KL terms rise linearly from 0 to theirs over this many optimizer steps"
    )
    sigma: float = option(
        1.0, "standard deviation of the Gaussian decoder (loss mse); the initial value with learn_sigma"
    )
    learn_sigma: bool = option(False, "learn one decoder standard deviation per feature (loss mse)")
    binarize: bool = option(
        False,
        "dynamic binarization: each training batch is a fresh Bernoulli draw of the "
        "[0, 1] inputs (input and target alike)",
    )

    def check(self, name: str, weights: tuple[str, ...]) -> None:
        """ConfigError unless the named weights are finite and non-negative, sigma positive, warmup >= 0."""
        for w in weights:
            value = getattr(self, w)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} option {w} must be a non-negative number, got {value}")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ConfigError(f"{name} option sigma must be a positive number, got {self.sigma}")
        if self.warmup < 0:
            raise ConfigError(f"{name} option warmup must be non-negative, got {self.warmup}")


class GaussianFamily(VAE):
    """A member of the VAE family that replaces or adds to the KL term: one posterior draw per row,
    the VAE's statistics, prior, bounds and anomaly scores. ``options`` has the fields of
    :class:`GaussianOptions` (``capacity`` and ``samples`` are the VAE's own and fixed here)."""

    def __init__(self, config: Any, options: Any):
        options.capacity, options.samples = None, 1  # what the VAE's methods read of its own options
        super().__init__(config, options)

    def sample_posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(z, mu, logvar, kl)``: one draw of :math:`q(z|x)` per row and the batch's mean closed-form
        KL; the epoch's statistics (``kl_per_dim``, ``active_units``) are kept in training."""
        mu, logvar = self.posterior(h)
        z = self.reparameterize(mu, logvar, 1)
        kl_dims = gaussian_kl_per_dim(mu, logvar)
        if self.training:
            with torch.no_grad():
                m = mu.detach().double()
                self.mu_sum += m.sum(0)
                self.mu_sq_sum += m.pow(2).sum(0)
                self.kl_sum += kl_dims.detach().double().sum(0)
                self.count += len(mu)
        kl = kl_dims.sum(1).mean()
        self._kl = kl.detach()
        return z, mu, logvar, kl

    def warm(self) -> float:
        """The warm-up factor in [0, 1] of the current step."""
        o = self.options
        return 1.0 if o.warmup <= 0 else min(1.0, self.current_step() / o.warmup)

    def schedule_value(self) -> float:
        """The family's schedule is the warm-up factor (:meth:`warm`); the steps read it as :meth:`scheduled`."""
        return self.warm()


@dataclass
class TCVAEOptions(GaussianOptions):
    """Options of beta-TCVAE (Chen et al. 2018)."""

    beta: float = option(6.0, "weight beta of the total correlation")
    alpha: float = option(1.0, "weight alpha of the index-code mutual information")
    gamma: float = option(1.0, "weight gamma of the dimension-wise KL")
    estimator: str = option(
        "mss", "estimator of log q(z): minibatch-stratified or minibatch-weighted sampling", choices=ESTIMATORS
    )
    dataset_size: int | None = option(
        None, "N of the estimators: the size of the training set; unset: the training rows the trainer sees"
    )
    compile_estimator: bool = option(
        False,
        "compile the estimator's pairwise terms with torch.compile (fused; pays at large batches, "
        "about 20 s of compilation per batch size; --compile compiles the whole forward pass, these "
        "terms included)",
    )

    def validate(self) -> None:
        self.check("beta-tcvae", ("beta", "alpha", "gamma"))
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"beta-tcvae option estimator must be one of {', '.join(ESTIMATORS)}")
        if self.dataset_size is not None and self.dataset_size < 2:
            raise ConfigError(f"beta-tcvae option dataset_size must be at least 2, got {self.dataset_size}")


@register(
    "beta-tcvae",
    "beta-TCVAE (Chen et al. 2018): the KL split into index-code MI, total correlation (weighted by beta = 6) "
    "and dimension-wise KL, estimated on the minibatch",
    options=TCVAEOptions,
    defaults={"loss": "bce"},
)
class TCVAE(GaussianFamily):
    """beta-TCVAE. Buffer ``dataset_size`` (long scalar): :math:`N` of the estimators (0: unknown yet)."""

    dataset_size: torch.Tensor

    def __init__(self, config: Any, options: TCVAEOptions):
        super().__init__(config, options)
        self.register_buffer("dataset_size", torch.tensor(options.dataset_size or 0))
        # the host's copy of the buffer: read by every step, a tensor read would be a host sync (and a
        # graph break under torch.compile); set with the buffer, forgotten with the VAE's host step
        self._host_size: int | None = options.dataset_size or 0
        self._terms: dict[str, torch.Tensor] = {}

    def size_for(self, batch: int) -> int:
        """:math:`N` for a batch of ``batch`` rows: the option, else the trainer's, else the batch."""
        if self._host_size is None:
            self._host_size = int(self.dataset_size)
        return max(self._host_size, batch)

    def set_dataset_size(self, n: int) -> None:
        """:math:`N` of the estimators: the buffer and its host copy."""
        self.dataset_size.fill_(n)
        self._host_size = n

    def _forget_host_step(self, *args: Any, **kwargs: Any) -> None:
        super()._forget_host_step()
        self._host_size = None  # a loaded state: read the buffer again

    def bottleneck(self, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z, mu, logvar, _ = self.sample_posterior(h)
        o = self.options
        decompose = compiled_kl_decomposition() if o.compile_estimator else kl_decomposition
        parts = decompose(z.float(), mu.float(), logvar.float(), self.size_for(len(z)), o.estimator)
        self._terms = {k: v.detach() for k, v in parts.items()}
        return z, {
            "mi": self.scheduled(parts["mi"], o.alpha) * parts["mi"],
            "tc": self.scheduled(parts["tc"], o.beta) * parts["tc"],
            "dim_kl": self.scheduled(parts["dim_kl"], o.gamma) * parts["dim_kl"],
        }

    def metrics(self, x, h, z) -> dict[str, torch.Tensor]:
        """The three terms and the Monte Carlo KL in nats, the closed-form KL (``kl_nats``), the warm-up factor."""
        assert self._kl is not None, "the model calls bottleneck() before metrics()"
        out = {f"{k}_nats": v for k, v in self._terms.items() if k != "kl"}
        out["kl_mc_nats"] = self._terms["kl"]
        out["kl_nats"] = self._kl
        out["warmup"] = self.scheduled_metric()
        return out

    def callbacks(self) -> list[Callback]:
        return [TCVAECallback(self)]


class TCVAECallback(VAECallback):
    """The VAE's bookkeeping, and :math:`N` from the trainer when the option leaves it unset."""

    def on_train_begin(self, trainer: Any) -> None:
        super().on_train_begin(trainer)
        v = self.variant
        assert isinstance(v, TCVAE), "a TCVAECallback serves a TCVAE"
        if v.options.dataset_size is None:
            v.set_dataset_size(int(trainer.train_size))
