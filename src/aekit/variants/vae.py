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
variance above :data:`ACTIVE_VARIANCE`, Burda et al. 2016).

The family's capabilities: the prior :math:`\mathcal N(0, I)` to sample (:attr:`VAE.prior`), the
negative ELBO and the importance-weighted estimate of :math:`-\log p(x)`
(:meth:`VAE.likelihood_bounds`), and minus the ELBO of each row as its anomaly score
(:meth:`VAE.elbo_per_example`); the estimators themselves are :mod:`aekit.bounds`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..bounds import (
    ELBO_MAX_ROWS,
    ELBO_SEED,
    LikelihoodFn,
    PosteriorFn,
    StandardNormal,
    elbo,
    elbo_draws,
    importance_weighted_bounds,
    reparameterize,
)
from ..callbacks import Callback
from ..config import option
from ..errors import ConfigError
from ..losses import gaussian_kl_per_dim, gaussian_nll
from ..metrics import ResidualNorm
from ..noise import bernoulli
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
    capacity: float | None = option(
        None,
        "C_max in nats: optimise gamma*|KL - C| with C raised linearly from 0 "
        "(Burgess et al. 2017); unset: the beta objective",
    )
    gamma: float = option(1000.0, "weight gamma of |KL - C| when capacity is set")
    capacity_steps: int | None = option(
        None, "optimizer steps over which C rises from 0 to capacity; unset: the whole run"
    )
    warmup: int = option(
        0, "KL warm-up: the KL weight rises linearly from 0 to beta over this many optimizer steps (0: off)"
    )
    samples: int = option(1, "Monte Carlo samples of z per input in training")
    sigma: float = option(
        1.0, "standard deviation of the Gaussian decoder (loss mse); the initial value with learn_sigma"
    )
    learn_sigma: bool = option(False, "learn one decoder standard deviation per feature (loss mse)")
    binarize: bool = option(
        False,
        "dynamic binarization: each training batch is a fresh Bernoulli draw of the "
        "[0, 1] inputs (input and target alike)",
    )

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
            raise ConfigError(
                "vae options capacity and warmup exclude each other: the capacity target already anneals the KL term"
            )


_FAMILY = "(Kingma & Welling 2014): Gaussian posterior, reparameterization, closed-form KL"


@register("vae", f"variational autoencoder {_FAMILY}", options=VAEOptions, defaults={"loss": "bce"})
@register(
    "beta-vae",
    "beta-VAE (Higgins et al. 2017): the VAE with beta = 4 on the KL term",
    options=VAEOptions,
    defaults={"loss": "bce"},
    option_defaults={"beta": 4.0},
)
@register(
    "capacity-vae",
    "capacity-annealed beta-VAE (Burgess et al. 2017): gamma*|KL - C|, C raised linearly from 0 to C_max = 25 nats",
    options=VAEOptions,
    defaults={"loss": "bce"},
    option_defaults={"capacity": 25.0},
)
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
    code_name = "posterior means"
    scores_residual = False  # minus the ELBO

    # the buffers (registered in __init__)
    step: torch.Tensor
    total_steps: torch.Tensor
    mu_sum: torch.Tensor
    mu_sq_sum: torch.Tensor
    kl_sum: torch.Tensor
    count: torch.Tensor
    schedule: torch.Tensor  # not persistent: set_step's value of schedule_value()

    def __init__(self, config: Any, options: VAEOptions):
        super().__init__(config, options)
        if config.code_activation != "linear":
            raise ConfigError(
                f"the {config.variant} variant needs code_activation 'linear' (its encoder outputs "
                f"a mean and a log-variance), got {config.code_activation!r}"
            )
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
        self._host_step: int | None = None  # the host's copies of step and total_steps (set_step)
        self._host_total: int | None = None
        # the schedule's value at the host's step (schedule_value), kept by set_step while training: a
        # compiled step (--compile) reads this tensor, not a float of the step, so that it has no guard
        # on the step number to fail and never recompiles (not in the state dict)
        self.register_buffer("schedule", torch.zeros((), dtype=torch.float64), persistent=False)
        self._schedule_set = False
        self._register_load_state_dict_pre_hook(self._forget_host_step)  # loaded buffers: read them again

    # -- the Gaussian posterior -----------------------------------------------------------------
    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of :math:`q(z|x)` from the encoder output ``h``, shape ``(N, 2 latent)``."""
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    #: :math:`z = \mu + \sigma \odot \epsilon` (:func:`aekit.bounds.reparameterize`)
    reparameterize = staticmethod(reparameterize)

    def current_step(self) -> int:
        """The optimizer step the schedules (warm-up, capacity) are at: the host's copy that
        :class:`VAECallback` keeps beside the checkpointed ``step`` buffer while training, so that
        no step reads the buffer back from the device; the buffer itself otherwise (a loaded model)."""
        return self._host_step if self._host_step is not None else int(self.step)

    def _forget_host_step(self, *args: Any, **kwargs: Any) -> None:
        self._host_step = self._host_total = None
        self._schedule_set = False

    def set_step(self, step: int, total_steps: int | None = None) -> None:
        """Move the schedules to optimizer step ``step`` (the buffer that checkpoints keep, and its host copy)."""
        self.step.fill_(step)
        self._host_step = step
        if total_steps is not None:
            self.total_steps.fill_(total_steps)
            self._host_total = total_steps
        self.schedule.fill_(self.schedule_value())
        self._schedule_set = True

    def schedule_value(self) -> float:
        """The scheduled weight of the KL term at the current step: the capacity :math:`C` (nats) for the
        capacity objective, else the KL weight."""
        return self.capacity_now() if self.options.capacity is not None else self.kl_weight()

    def _traced_schedule(self) -> bool:
        """Whether the step reads the schedule from the buffer: while torch.compile traces a training step
        (set_step has filled it); eagerly the float, with no tensor work on the step's path."""
        return self._schedule_set and torch.compiler.is_compiling()

    def scheduled(self, like: torch.Tensor, scale: float = 1.0) -> torch.Tensor | float:
        """``scale`` times :meth:`schedule_value`, to combine with the loss term ``like``: the float, or in a
        traced step the float64 buffer ``schedule``, the product in float64 and cast to ``like``'s dtype,
        so that the term is the one the float gives (which torch casts the same way)."""
        if not self._traced_schedule():
            return self.schedule_value() * scale
        return (self.schedule * scale).to(like.dtype)

    def scheduled_metric(self) -> torch.Tensor:
        """:meth:`scheduled` as the float32 scalar a metric logs."""
        return self.schedule.to(torch.float32) if self._traced_schedule() else torch.tensor(self.schedule_value())

    def kl_weight(self) -> float:
        o = self.options
        return o.beta if o.warmup <= 0 else o.beta * warmup_weight(self.current_step(), o.warmup)

    def capacity_now(self) -> float:
        o = self.options
        if o.capacity_steps is not None:
            steps = o.capacity_steps
        else:
            steps = self._host_total if self._host_total is not None else int(self.total_steps)
        return capacity_at(self.current_step(), o.capacity, steps)

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
            term = self.options.gamma * (kl - self.scheduled(kl)).abs()
        else:
            term = self.scheduled(kl) * kl
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
        assert self._kl is not None, "the model calls bottleneck() before metrics()"
        out = {"kl_nats": self._kl}
        if self.options.capacity is not None:
            out["capacity"] = self.scheduled_metric()
        else:
            out["kl_weight"] = self.scheduled_metric()
        return out

    def take_epoch_statistics(self) -> dict[str, Any]:
        """``kl_per_dim`` and ``active_units`` over the training inputs since the last call; resets the sums."""
        n = float(self.count)
        if n == 0:
            return {}
        mean = self.mu_sum / n
        var = (self.mu_sq_sum / n - mean.pow(2)).clamp_min(0) * (n / max(n - 1, 1))
        out = {
            "kl_per_dim": [round(float(v), 6) for v in self.kl_sum / n],
            "active_units": int((var > ACTIVE_VARIANCE).sum()),
        }
        for t in (self.mu_sum, self.mu_sq_sum, self.kl_sum, self.count):
            t.zero_()
        return out

    def callbacks(self) -> list[Callback]:
        return [VAECallback(self)]

    # -- capabilities: the prior, the likelihood, the anomaly score ---------------------------------
    @property
    def prior(self) -> StandardNormal:
        r"""The prior :math:`p(z) = \mathcal N(0, I)`."""
        return StandardNormal(self.config.latent)

    def posterior_fn(self, model: Any) -> PosteriorFn:
        """:math:`q(z|x)` of ``model`` (whose variant this is) as a :data:`~aekit.bounds.PosteriorFn`."""
        return lambda x: self.posterior(model.encoder(model._to_encoder(x)))

    def log_likelihood_fn(self, model: Any) -> LikelihoodFn:
        r"""The decoder's :math:`\log p(x|z)` (the model's own likelihood) as a :data:`~aekit.bounds.LikelihoodFn`."""

        def log_likelihood(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return -model.reconstruction_nll(model.decoder(z).reshape(target.shape), target, "none")

        return log_likelihood

    def likelihood_bounds(
        self, model: Any, X: np.ndarray, k: int, *, seed: int = 0, batch_size: int = 100, max_rows: int = 65536
    ) -> dict[str, Any]:
        r"""The negative ELBO and the importance-weighted estimate of :math:`-\log p(x)` (nats per example)
        of the model-space rows ``X``, with ``k`` importance samples per row
        (:func:`aekit.bounds.importance_weighted_bounds`; the public entry is
        :func:`aekit.likelihood_bounds`, which documents the result)."""
        if k < 1:
            raise ConfigError(f"the number of importance samples must be at least 1, got {k}")
        was = model.training
        model.eval()
        try:
            out = importance_weighted_bounds(
                self.posterior_fn(model),
                self.log_likelihood_fn(model),
                X,
                k,
                seed=seed,
                batch_size=batch_size,
                max_rows=max_rows,
                device=next(model.parameters()).device,
            )
        finally:
            model.train(was)
        return {
            "nelbo": out["recon"] + out["kl"],
            "nll_iw": out["nll_iw"],
            "iw_samples": int(k),
            "recon": out["recon"],
            "kl": out["kl"],
            "n": len(X),
        }

    def elbo_per_example(
        self, model: Any, X: np.ndarray, samples: int = 32, *, seed: int = ELBO_SEED, max_rows: int = ELBO_MAX_ROWS
    ) -> np.ndarray:
        r"""The evidence lower bound of each row of ``X``, in nats (:func:`aekit.bounds.elbo`).

        The :math:`K` = ``samples`` draws :math:`\epsilon_k \sim \mathcal N(0, I)` come from a generator
        seeded with ``seed`` and are shared by every row (common random numbers: a row's value does not
        depend on the other rows). The KL weight is 1 whatever the training objective; the mean over
        rows estimates ``-likelihood_bounds(model, X)["nelbo"]``.

        Parameters
        ----------
        model : Autoencoder
            The model whose variant this is, in any floating precision (the computation follows it).
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
        param = next(model.parameters())
        eps = elbo_draws(samples, model.config.latent, seed=seed, dtype=param.dtype, device=param.device)
        posterior, log_likelihood = self.posterior_fn(model), self.log_likelihood_fn(model)
        return model.batched(X, lambda x: elbo(posterior, log_likelihood, x, eps), max(1, max_rows // samples))

    def anomaly_scores(
        self,
        model: Any,
        X: np.ndarray,
        *,
        elbo_samples: int = 32,
        batch_size: int = 4096,
        norm: ResidualNorm | None = None,
    ) -> np.ndarray:
        """Minus the ELBO of each row, in nats (:meth:`elbo_per_example` with ``elbo_samples`` draws).
        A ``norm`` other than the default has nothing to sum here: :class:`ConfigError`."""
        self.check_norm(norm, self.config.variant)
        return -self.elbo_per_example(model, X, elbo_samples)

    def correct_for_complexity(self, scores: np.ndarray, bits: np.ndarray) -> np.ndarray:
        r"""Serra et al.'s score :math:`-\mathrm{ELBO}(x) - L(x) \ln 2`: nats less the input's length
        under a generic compressor."""
        return scores - bits * np.log(2.0)

    def score_units(self, complexity: bool = False, norm: ResidualNorm | None = None) -> str:
        return "minus the ELBO (nats)" + (" less the input complexity (nats)" if complexity else "")


class VAECallback(Callback):
    """Feeds the trainer's step to a :class:`VAE` (warm-up, capacity schedule) and adds
    ``kl_per_dim`` and ``active_units`` to each epoch's record."""

    def __init__(self, variant: VAE):
        self.variant = variant

    def on_train_begin(self, trainer: Any) -> None:
        v = self.variant
        if trainer.global_step == 0:  # a resumed run keeps the checkpointed sums of its epoch
            v.take_epoch_statistics()
        v.set_step(trainer.global_step, trainer.total_steps)

    def on_step_end(self, trainer: Any, step: int, losses: dict[str, float]) -> None:
        self.variant.set_step(trainer.global_step)

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        record.update(self.variant.take_epoch_statistics())


# -- the ELBO of each row, for callers that hold a model but not its variant --------------------------
def elbo_per_example(
    model: Any, X: np.ndarray, samples: int = 32, *, seed: int = ELBO_SEED, max_rows: int = ELBO_MAX_ROWS
) -> np.ndarray:
    """:meth:`VAE.elbo_per_example` of ``model``'s variant (a ConfigError for a model outside the VAE family)."""
    if not isinstance(model.variant, VAE):
        raise ConfigError(f"the ELBO needs a model of the VAE family, not {model.config.variant!r}")
    return model.variant.elbo_per_example(model, X, samples, seed=seed, max_rows=max_rows)
