r"""The variational autoencoder and its beta / capacity-annealed relatives.

Kingma, D. P. & Welling, M. (2014). Auto-Encoding Variational Bayes. *ICLR 2014* (arXiv:1312.6114).
Higgins, I. et al. (2017). beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework. *ICLR 2017*.
Burgess, C. P. et al. (2017). Understanding disentangling in beta-VAE. *NIPS 2017 Workshop on
Learning Disentangled Representations* (arXiv:1804.03599).

The encoder outputs the mean :math:`\mu` and log-variance :math:`\log\sigma^2` of a diagonal
Gaussian :math:`q(z|x)`; the code is drawn by the reparameterization trick
:math:`z = \mu + \sigma \odot \epsilon`, :math:`\epsilon \sim \mathcal N(0, I)` (``samples``
draws per input), and the objective is the negative ELBO

.. math:: -\mathcal L(x) = \mathbb E_{q(z|x)}[-\log p(x|z)] + \beta\,\mathrm{KL}(q(z|x) \,\|\, \mathcal N(0, I))

with the KL in closed form (:func:`~aekit.losses.gaussian_kl`). The decoder is Bernoulli on logits
with ``loss="bce"`` (the default) and Gaussian with ``loss="mse"``: standard deviation ``sigma``,
fixed or, with ``learn_sigma``, one learned value per feature
(:func:`~aekit.losses.gaussian_nll`, normalising constant included, so the terms are nats).

- ``vae``: :math:`\beta = 1`; ``beta-vae``: :math:`\beta = 4` (Higgins et al.); any other value is
  the ``beta`` option of either.
- ``capacity-vae``: the KL term is :math:`\gamma\,|\mathrm{KL} - C|` with :math:`C` raised linearly
  from 0 to ``capacity`` (:math:`C_\max`, nats) over ``capacity_steps`` optimizer steps
  (:func:`capacity_at`; Burgess et al. use :math:`\gamma = 1000`, :math:`C_\max = 25`).
- ``warmup``: the KL weight rises linearly from 0 to :math:`\beta` over that many steps
  (:func:`warmup_weight`).
- ``binarize``: dynamic binarization; every training batch is a fresh Bernoulli draw of the
  [0, 1] inputs, used as input and target alike.

The loss term ``kl`` is the weighted KL term that is optimised; the history also logs the KL in
nats (``kl_nats``), its weight or target (``kl_weight`` / ``capacity``), and at each epoch end the
mean KL of every latent dimension (``kl_per_dim``) and the number of active units
(``active_units``: dimensions whose posterior mean varies across the epoch's training inputs with
variance above :data:`ACTIVE_VARIANCE`, Burda et al. 2016). :func:`likelihood_bounds` gives the
negative ELBO and the importance-weighted estimate of :math:`-\log p(x)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..config import option
from ..errors import ConfigError
from ..losses import gaussian_kl, gaussian_kl_per_dim, gaussian_log_density, gaussian_nll
from ..noise import bernoulli
from ..callbacks import Callback
from . import Variant, register

#: A latent dimension is active when the variance of its posterior mean over inputs exceeds this
#: (Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders", section 5.2).
ACTIVE_VARIANCE = 0.01
#: The encoder's log-variance is clamped to this range for numerical safety.
LOGVAR_RANGE = (-30.0, 20.0)
#: Samples drawn per input are limited to this (memory grows with it).
MAX_SAMPLES = 4096


def warmup_weight(step: int, warmup: int) -> float:
    r"""KL warm-up factor of optimizer step ``step`` (0-based): :math:`\min(1, t / T)`, 1 when ``warmup`` is 0."""
    return 1.0 if warmup <= 0 else min(1.0, step / warmup)


def capacity_at(step: int, c_max: float, steps: int) -> float:
    r"""The capacity target :math:`C_t = C_\max \min(1, t / T)` of Burgess et al. (2017) at step ``step``."""
    return c_max if steps <= 0 else c_max * min(1.0, step / steps)


@dataclass
class VAEOptions:
    """Objective and decoder of the VAE family."""

    beta: float = option(1.0, "weight of the KL term (beta-VAE, Higgins et al. 2017); 1 is the plain VAE")
    capacity: float | None = option(None, "C_max in nats: optimise gamma*|KL - C| with C raised linearly from 0 "
                                          "(Burgess et al. 2017); unset: the beta objective")
    gamma: float = option(1000.0, "weight gamma of |KL - C| when capacity is set")
    capacity_steps: int | None = option(None, "optimizer steps over which C rises from 0 to capacity; "
                                              "unset: the whole run")
    warmup: int = option(0, "KL warm-up: the KL weight rises linearly from 0 to beta over this many optimizer "
                            "steps (0: off)")
    samples: int = option(1, "Monte Carlo samples of z per input in training")
    sigma: float = option(1.0, "standard deviation of the Gaussian decoder (loss mse); the initial value "
                               "with learn_sigma")
    learn_sigma: bool = option(False, "learn one decoder standard deviation per feature (loss mse)")
    binarize: bool = option(False, "dynamic binarization: each training batch is a fresh Bernoulli draw of the "
                                   "[0, 1] inputs (input and target alike)")

    def validate(self) -> None:
        for name, lowest in (("beta", 0.0), ("capacity", 0.0), ("gamma", None), ("sigma", None)):
            value = getattr(self, name)
            if value is None and name == "capacity":
                continue
            if not (math.isfinite(value) and (value >= 0 if lowest == 0.0 else value > 0)):
                kind = "non-negative" if lowest == 0.0 else "positive"
                raise ConfigError(f"vae option {name} must be a {kind} number, got {value}")
        if self.capacity_steps is not None and self.capacity_steps < 1:
            raise ConfigError(f"vae option capacity_steps must be at least 1, got {self.capacity_steps}")
        if self.warmup < 0:
            raise ConfigError(f"vae option warmup must be non-negative, got {self.warmup}")
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise ConfigError(f"vae option samples must be between 1 and {MAX_SAMPLES}, got {self.samples}")
        if self.capacity is not None and self.warmup:
            raise ConfigError("vae options capacity and warmup exclude each other: the capacity target "
                              "already anneals the KL term")


_FAMILY = "(Kingma & Welling 2014): Gaussian posterior, reparameterization, closed-form KL"


@register("vae", f"variational autoencoder {_FAMILY}", options=VAEOptions, defaults={"loss": "bce"})
@register("beta-vae", "beta-VAE (Higgins et al. 2017): the VAE with beta = 4 on the KL term",
          options=VAEOptions, defaults={"loss": "bce"}, option_defaults={"beta": 4.0})
@register("capacity-vae", "capacity-annealed beta-VAE (Burgess et al. 2017): gamma*|KL - C|, C raised "
                          "linearly from 0 to C_max = 25 nats", options=VAEOptions, defaults={"loss": "bce"},
          option_defaults={"capacity": 25.0})
class VAE(Variant):
    """Gaussian bottleneck with reparameterization and the (weighted) KL term.

    Buffers
    -------
    step, total_steps : long scalars
        The trainer's progress, for the warm-up and the capacity schedule (set by a callback).
    mu_sum, mu_sq_sum, kl_sum : float64 ``(latent,)``; count : float64 scalar
        Sums over the current epoch's training inputs, for ``kl_per_dim`` and ``active_units``.

    Raises
    ------
    ConfigError
        If the code activation is not linear, or ``learn_sigma`` is set with the bce loss.
    """

    encoder_outputs_per_code = 2
    generative = True

    def __init__(self, config: Any, options: VAEOptions):
        super().__init__(config, options)
        if config.code_activation != "linear":
            raise ConfigError(f"the {config.variant} variant needs code_activation 'linear' (its encoder outputs "
                              f"a mean and a log-variance), got {config.code_activation!r}")
        if options.learn_sigma and config.loss != "mse":
            raise ConfigError("learn_sigma is for the Gaussian decoder; use loss 'mse' with it")
        latent = config.latent
        self.register_buffer("step", torch.tensor(0))
        self.register_buffer("total_steps", torch.tensor(0))
        for name in ("mu_sum", "mu_sq_sum", "kl_sum"):
            self.register_buffer(name, torch.zeros(latent, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        if options.learn_sigma:
            self.log_sigma = nn.Parameter(torch.full((config.input_dim,), math.log(options.sigma)))
        self._kl: torch.Tensor | None = None

    # -- the Gaussian posterior -----------------------------------------------------------------
    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of :math:`q(z|x)` from the encoder output ``h``, shape ``(N, 2 latent)``."""
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, samples: int = 1,
                       generator: torch.Generator | None = None, eps: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`z = \mu + \sigma \odot \epsilon`, shape ``(samples * N, latent)`` (sample-major).

        :math:`\epsilon \sim \mathcal N(0, I)` is drawn from ``generator``, or given as ``eps``, of a shape
        that broadcasts to ``(samples, N, latent)`` (``(samples, 1, latent)``: the same draws for every
        row; ``samples`` and ``generator`` are then unused)."""
        if eps is None:
            eps = torch.randn((samples, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
        return (mu + torch.exp(0.5 * logvar) * eps).reshape(-1, mu.shape[1])

    def kl_weight(self) -> float:
        return self.options.beta * warmup_weight(int(self.step), self.options.warmup)

    def capacity_now(self) -> float:
        o = self.options
        steps = o.capacity_steps if o.capacity_steps is not None else int(self.total_steps)
        return capacity_at(int(self.step), o.capacity, steps)

    def bottleneck(self, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mu, logvar = self.posterior(h)
        z = self.reparameterize(mu, logvar, self.options.samples if self.training else 1)
        kl_dims = gaussian_kl_per_dim(mu, logvar)
        kl = kl_dims.sum(1).mean()
        if self.training:
            with torch.no_grad():
                m = mu.detach().double()
                self.mu_sum += m.sum(0)
                self.mu_sq_sum += m.pow(2).sum(0)
                self.kl_sum += kl_dims.detach().double().sum(0)
                self.count += len(mu)
        self._kl = kl.detach()
        if self.options.capacity is not None:
            term = self.options.gamma * (kl - self.capacity_now()).abs()
        else:
            term = self.kl_weight() * kl
        return z, {"kl": term}

    def encode_deterministic(self, h: torch.Tensor) -> torch.Tensor:
        """The posterior mean :math:`\\mu`."""
        return self.posterior(h)[0]

    # -- the decoder's likelihood ---------------------------------------------------------------
    def decoder_log_sigma(self) -> torch.Tensor | float:
        return self.log_sigma if self.options.learn_sigma else math.log(self.options.sigma)

    def reconstruction_nll(self, logits, target, reduction="mean"):
        """Gaussian :math:`-\\log p(x|z)` with the decoder's sigma for ``loss="mse"``; None (Bernoulli
        cross-entropy, the model's bce loss) otherwise."""
        if self.config.loss != "mse":
            return None
        mean = torch.sigmoid(logits) if self.config.output_activation == "sigmoid" else logits
        log_sigma = self.decoder_log_sigma()
        if isinstance(log_sigma, torch.Tensor):
            log_sigma = log_sigma.reshape(target.shape[1:])
        return gaussian_nll(mean, target, log_sigma, reduction)

    def resample(self, x: torch.Tensor) -> torch.Tensor:
        """A Bernoulli draw of ``x`` with ``binarize`` (``x`` must lie in [0, 1]; :func:`aekit.noise.bernoulli`,
        from torch's global generator); else ``x``."""
        return bernoulli(x) if self.options.binarize else x

    # -- bookkeeping ----------------------------------------------------------------------------
    def metrics(self, x, h, z) -> dict[str, torch.Tensor]:
        """``kl_nats``: the KL in nats; ``kl_weight`` (beta objective) or ``capacity`` (C, nats)."""
        out = {"kl_nats": self._kl}
        if self.options.capacity is not None:
            out["capacity"] = torch.tensor(self.capacity_now())
        else:
            out["kl_weight"] = torch.tensor(self.kl_weight())
        return out

    def take_epoch_statistics(self) -> dict[str, Any]:
        """``kl_per_dim`` and ``active_units`` over the training inputs since the last call; resets the sums."""
        n = float(self.count)
        if n == 0:
            return {}
        mean = self.mu_sum / n
        var = (self.mu_sq_sum / n - mean.pow(2)).clamp_min(0) * (n / max(n - 1, 1))
        out = {"kl_per_dim": [round(float(v), 6) for v in self.kl_sum / n],
               "active_units": int((var > ACTIVE_VARIANCE).sum())}
        for t in (self.mu_sum, self.mu_sq_sum, self.kl_sum, self.count):
            t.zero_()
        return out

    def callbacks(self) -> list[Callback]:
        return [VAECallback(self)]


class VAECallback(Callback):
    """Feeds the trainer's step to a :class:`VAE` (warm-up, capacity schedule) and adds
    ``kl_per_dim`` and ``active_units`` to each epoch's record."""

    def __init__(self, variant: VAE):
        self.variant = variant

    def on_train_begin(self, trainer: Any) -> None:
        v = self.variant
        if trainer.global_step == 0:  # a resumed run keeps the checkpointed sums of its epoch
            v.take_epoch_statistics()
        v.step.fill_(trainer.global_step)
        v.total_steps.fill_(trainer.total_steps)

    def on_step_end(self, trainer: Any, step: int, losses: dict[str, float]) -> None:
        self.variant.step.fill_(trainer.global_step)

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        record.update(self.variant.take_epoch_statistics())


# -- likelihood bounds ---------------------------------------------------------------------------
#: ``posterior(x) -> (mu, logvar)`` of a Gaussian encoder
PosteriorFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: ``log_likelihood(z, x) -> log p(x|z)`` per row, for codes ``(rows, latent)`` and ``x`` repeated to match
LikelihoodFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def model_posterior(model: Any) -> PosteriorFn:
    """:math:`q(z|x)` of a VAE-family :class:`~aekit.model.Autoencoder` as a :data:`PosteriorFn`."""
    return lambda x: model.variant.posterior(model.encoder(model._to_encoder(x)))


def model_log_likelihood(model: Any) -> LikelihoodFn:
    r"""The decoder's :math:`\log p(x|z)` (the model's own likelihood) as a :data:`LikelihoodFn`."""
    def log_likelihood(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -model.reconstruction_nll(model.decoder(z).reshape(target.shape), target, "none")
    return log_likelihood


def importance_weighted_bounds(posterior: PosteriorFn, log_likelihood: LikelihoodFn, X: np.ndarray, k: int, *,
                               seed: int = 0, batch_size: int = 100, max_rows: int = 65536,
                               device: Any = "cpu") -> dict[str, float]:
    r"""The estimator of :func:`likelihood_bounds` for any Gaussian encoder and decoder likelihood
    given as functions (so that other libraries' models are scored by the same code).

    Returns the means over rows of ``nll_iw`` (:math:`-\log \frac1K \sum_k w_k`), ``recon``
    (:math:`\mathbb E_q[-\log p(x|z)]` over the same draws) and ``kl`` (closed form).
    """
    gen = torch.Generator(device=device).manual_seed(int(seed))
    totals = {"nll_iw": 0.0, "recon": 0.0, "kl": 0.0}
    with torch.inference_mode():
        for i in range(0, len(X), batch_size):
            x = torch.as_tensor(X[i:i + batch_size], device=device)
            mu, logvar = posterior(x)
            n = len(x)
            chunk = max(1, max_rows // n)
            log_w, log_px = [], []
            for start in range(0, k, chunk):
                kk = min(chunk, k - start)
                z = VAE.reparameterize(mu, logvar, kk, gen)
                lp = log_likelihood(z, x.repeat(kk, *([1] * (x.ndim - 1)))).reshape(kk, n)
                zs = z.reshape(kk, n, -1)
                log_px.append(lp)
                log_w.append(lp + gaussian_log_density(zs) - gaussian_log_density(zs, mu, logvar))
            log_px_iw = torch.logsumexp(torch.cat(log_w).double(), 0) - math.log(k)
            totals["nll_iw"] -= float(log_px_iw.sum())
            totals["recon"] -= float(torch.cat(log_px).double().mean(0).sum())
            totals["kl"] += float(gaussian_kl_per_dim(mu, logvar).sum(1).double().sum())
    return {key: v / len(X) for key, v in totals.items()}


def likelihood_bounds(model: Any, X: np.ndarray, k: int = 5000, *, seed: int = 0, batch_size: int = 100,
                      max_rows: int = 65536) -> dict[str, Any]:
    r"""The negative ELBO and the importance-weighted estimate of :math:`-\log p(x)` (nats per example).

    With :math:`K` draws :math:`z_k \sim q(z|x)` (Burda, Grosse & Salakhutdinov 2016):

    .. math:: \log p(x) \approx \log \frac1K \sum_{k=1}^K \frac{p(x|z_k)\,p(z_k)}{q(z_k|x)} \;\ge\;
              \mathbb E_q[\log p(x|z)] - \mathrm{KL}(q(z|x) \,\|\, p(z)) = \mathcal L(x),

    a bound that tightens as :math:`K` grows (:math:`K = 5000` for reported figures). The
    negative ELBO uses the same draws for :math:`\mathbb E_q[-\log p(x|z)]` and the closed-form KL.
    With the Bernoulli decoder the data should be binary for these to be likelihoods.

    Parameters
    ----------
    model : Autoencoder
        A model of the VAE family (``model.variant.generative``).
    X : ndarray, shape (N, D)
        Data in model space (after the run's transform).
    k : int
        Importance samples per example.
    seed : int
        Seed of the draws.
    batch_size : int
        Examples encoded at once; ``max_rows`` bounds the rows decoded at once.

    Returns
    -------
    dict
        ``nelbo``, ``nll_iw`` (means over examples), ``iw_samples``, ``kl``, ``recon`` (the
        negative ELBO's two parts) and ``n``.
    """
    if not getattr(model.variant, "generative", False):
        raise ConfigError(f"likelihood bounds need a model of the VAE family, not {model.config.variant!r}")
    if k < 1:
        raise ConfigError(f"the number of importance samples must be at least 1, got {k}")
    was = model.training
    model.eval()
    try:
        out = importance_weighted_bounds(model_posterior(model), model_log_likelihood(model), X, k, seed=seed,
                                         batch_size=batch_size, max_rows=max_rows,
                                         device=next(model.parameters()).device)
    finally:
        model.train(was)
    return {"nelbo": out["recon"] + out["kl"], "nll_iw": out["nll_iw"], "iw_samples": int(k),
            "recon": out["recon"], "kl": out["kl"], "n": int(len(X))}


#: Rows x draws decoded at once by :func:`elbo_per_example`.
ELBO_MAX_ROWS = 65536
#: Seed of the draws of :func:`elbo_per_example` (the same draws for every call and every row).
ELBO_SEED = 0


def elbo_per_example(model: Any, X: np.ndarray, samples: int = 32, *, seed: int = ELBO_SEED,
                     max_rows: int = ELBO_MAX_ROWS) -> np.ndarray:
    r"""The evidence lower bound of each row of ``X``, in nats (VAE family).

    .. math:: \mathcal L(x) = \frac1K \sum_{k=1}^K \log p(x \mid \mu + \sigma \odot \epsilon_k)
              - \mathrm{KL}\big(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, I)\big)

    (Kingma & Welling 2014, eq. 7), with :math:`K` = ``samples`` draws :math:`\epsilon_k \sim
    \mathcal N(0, I)` from a generator seeded with ``seed`` and shared by every row (common random
    numbers: a row's value does not depend on the other rows). The mean over rows estimates
    ``-likelihood_bounds(model, X)["nelbo"]``.

    Parameters
    ----------
    model : Autoencoder
        A model of the VAE family, in any floating precision (the computation follows it).
    X : ndarray of shape (n_samples, n_features)
        Rows in model space (after the run's scaling), of the model's dtype.
    samples : int
        Draws :math:`K` per row.
    max_rows : int
        Bound on the (row, draw) pairs decoded at once.

    Returns
    -------
    ndarray of shape (n_samples,)
    """
    if not model.variant.generative:
        raise ConfigError(f"the ELBO needs a model of the VAE family, not {model.config.variant!r}")
    param = next(model.parameters())
    gen = torch.Generator(device=param.device).manual_seed(int(seed))
    eps = torch.randn((samples, model.config.latent), generator=gen, dtype=param.dtype, device=param.device)

    posterior, log_likelihood = model_posterior(model), model_log_likelihood(model)

    def elbo(x: torch.Tensor) -> torch.Tensor:
        mu, logvar = posterior(x)
        z = VAE.reparameterize(mu, logvar, eps=eps[:, None, :])  # sample-major
        log_px = log_likelihood(z, x.reshape(len(x), -1).repeat(samples, 1)).reshape(samples, len(x)).mean(0)
        return log_px - gaussian_kl(mu, logvar, "none")

    return model.batched(X, elbo, max(1, max_rows // samples))
