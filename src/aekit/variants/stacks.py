r"""Greedy layer-wise pretraining: restricted Boltzmann machines stacked into a deep belief net
and unrolled into a deep autoencoder (Hinton & Salakhutdinov 2006), and stacked denoising
autoencoders (Vincent et al. 2010).

Hinton, G. E. & Salakhutdinov, R. R. (2006). Reducing the dimensionality of data with neural
networks. *Science* 313(5786), 504-507 (and the Matlab code published with it: ``rbm.m``,
``rbmhidlinear.m``, ``mnistdeepauto.m``, whose constants are the defaults here).
Vincent, P., Larochelle, H., Lajoie, I., Bengio, Y. & Manzagol, P.-A. (2010). Stacked denoising
autoencoders. *JMLR* 11, 3371-3408.

The RBM
-------
An :class:`RBM` has visible units :math:`v` (``"bernoulli"``, or ``"gaussian"`` with unit
variance for real-valued data), hidden units :math:`h` (``"bernoulli"``, or ``"linear"``:
Gaussian with unit variance, H&S's code layer), a weight matrix :math:`W` of shape
``(n_hidden, n_visible)`` (the layout of :class:`torch.nn.Linear`), visible biases :math:`b` and
hidden biases :math:`c`. Its energy is

.. math:: E(v, h) = V(v) + H(h) - h^\top W v,

with :math:`V(v) = -b^\top v` (Bernoulli) or :math:`\tfrac12\lVert v - b\rVert^2` (Gaussian), and
:math:`H(h) = -c^\top h` (Bernoulli) or :math:`\tfrac12\lVert h - c\rVert^2` (linear), and
:math:`p(v, h) \propto e^{-E(v, h)}`. The conditionals factorise:
:math:`p(h_j = 1 \mid v) = \sigma(W v + c)_j` or :math:`h \mid v \sim \mathcal N(W v + c, I)`;
:math:`p(v_i = 1 \mid h) = \sigma(W^\top h + b)_i` or :math:`v \mid h \sim \mathcal N(W^\top h + b, I)`.
The free energy :math:`F(v) = -\log \sum_h e^{-E(v, h)}` (an integral for linear units) is

.. math:: F(v) = V(v) - \sum_j \operatorname{softplus}(W v + c)_j \quad\text{(Bernoulli hidden)},\qquad
          F(v) = V(v) - \tfrac12\lVert W v + c\rVert^2 + \tfrac12\lVert c\rVert^2
                 - \tfrac{n_h}{2}\log 2\pi \quad\text{(linear hidden)},

so that :math:`p(v) \propto e^{-F(v)}`. (With Gaussian visible *and* linear hidden units the
joint is Gaussian and proper only while the spectral norm of :math:`W` stays below 1.)

Training (:func:`train_rbm`) follows the contrastive divergence rule
:math:`\Delta W \propto \langle h v^\top\rangle_{data} - \langle h v^\top\rangle_{model}`
(:func:`cd_gradient`), with H&S's momentum (0.5 for the first 5 epochs, then 0.9), weight decay
0.0002 on :math:`W`, batches of 100, initial weights :math:`0.1\,\mathcal N(0, 1)`, zero biases,
learning rate 0.1 (0.001 for layers with linear or Gaussian units). CD-k restarts the chain at
the data every batch; persistent CD (PCD, Tieleman 2008, what scikit-learn's ``BernoulliRBM``
does) keeps ``batch_size`` chains running across batches. Everything is vectorised over the
batch and seeded by one ``torch.Generator``.

Stacks
------
:func:`train_dbn` trains RBMs greedily, each on the hidden probabilities of the one below
(H&S's ``batchposhidprobs``); :func:`stack_denoising` trains one-hidden-layer denoising
autoencoders greedily, each on the clean codes of the layer below, corrupting only its own input
(:mod:`aekit.noise`). :func:`unroll` writes either stack into an :class:`~aekit.model.Autoencoder`:
the encoder's layers are the stack's weights and hidden biases, the decoder's are their
transposes and the visible biases (untied parameters, equal to the transposes until fine-tuning).

This module is the machinery of the deep variant's layer-wise pretraining
(:meth:`aekit.variants.deep.Deep.pretrain`), so it lives with the variants and imports nothing
above them: a denoising layer is trained by a ``train_layer`` function handed in by the caller
(:func:`aekit.pretrain.train_layer`, built on the :class:`~aekit.train.Trainer`). Users import
these names from :mod:`aekit.pretrain`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ..callbacks import progress_bar
from ..config import from_dict, option
from ..errors import ConfigError, DataError, TrainingError
from ..nn import MLP, TiedLinear, TiedMLP
from ..noise import bernoulli
from . import Model

#: a model that :func:`unroll` writes into and returns
M = TypeVar("M", bound=Model)

#: Unit types of the visible and the hidden layer of an :class:`RBM`.
VISIBLE_UNITS = ("bernoulli", "gaussian")
HIDDEN_UNITS = ("bernoulli", "linear")


def _check_units(visible: str, hidden: str) -> None:
    if visible not in VISIBLE_UNITS:
        raise ConfigError(f"unknown visible units {visible!r}; choose one of {', '.join(VISIBLE_UNITS)}")
    if hidden not in HIDDEN_UNITS:
        raise ConfigError(f"unknown hidden units {hidden!r}; choose one of {', '.join(HIDDEN_UNITS)}")


def _sample(mean: torch.Tensor, units: str, generator: torch.Generator | None) -> torch.Tensor:
    """A draw from units of type ``units`` with mean ``mean``: Bernoulli(mean), or mean + N(0, 1)."""
    if units == "bernoulli":
        return bernoulli(mean, generator)
    return mean + torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)


class RBM(nn.Module):
    r"""A restricted Boltzmann machine (see the module docstring for the energy and conditionals).

    Parameters
    ----------
    n_visible, n_hidden : int
        Numbers of visible and hidden units.
    visible : {"bernoulli", "gaussian"}
        Visible unit type (Gaussian units have unit variance: standardise the data).
    hidden : {"bernoulli", "linear"}
        Hidden unit type (linear units are Gaussian with unit variance, H&S's code layer).
    init_std : float
        Initial weights are ``init_std * N(0, 1)`` (H&S: 0.1); biases start at zero.
    generator : torch.Generator, optional
        Source of the initial weights (default: torch's global generator).

    Attributes
    ----------
    weight : Parameter, shape (n_hidden, n_visible)
    visible_bias : Parameter, shape (n_visible,)
    hidden_bias : Parameter, shape (n_hidden,)
    history : list of dict
        One record per training epoch (set by :func:`train_rbm`).

    Shape:
        - visible states: :math:`(N, n_{visible})`; hidden states: :math:`(N, n_{hidden})`
    """

    #: the training settings, JSON-able (set by :func:`train_rbm`)
    settings: dict[str, Any]

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: str = "bernoulli",
        hidden: str = "bernoulli",
        *,
        init_std: float = 0.1,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        _check_units(visible, hidden)
        if n_visible <= 0 or n_hidden <= 0:
            raise ConfigError(f"an RBM needs positive numbers of units, got {n_visible} visible and {n_hidden} hidden")
        self.visible, self.hidden = visible, hidden
        device = generator.device if generator is not None and device is None else device
        w = torch.randn(n_hidden, n_visible, generator=generator, device=device, dtype=dtype) * init_std
        self.weight = nn.Parameter(w)
        self.visible_bias = nn.Parameter(torch.zeros(n_visible, device=device, dtype=dtype))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden, device=device, dtype=dtype))
        self.history: list[dict[str, Any]] = []

    @property
    def n_visible(self) -> int:
        return self.weight.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.weight.shape[0]

    def extra_repr(self) -> str:
        return f"{self.n_visible} {self.visible} visible, {self.n_hidden} {self.hidden} hidden"

    def describe(self) -> dict[str, Any]:
        """The RBM's sizes and unit types, JSON-able."""
        return {"n_visible": self.n_visible, "n_hidden": self.n_hidden, "visible": self.visible, "hidden": self.hidden}

    # -- conditionals -------------------------------------------------------------------------
    def hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`W v + c`, shape ``(N, n_hidden)``."""
        return torch.addmm(self.hidden_bias, v, self.weight.t())

    def visible_input(self, h: torch.Tensor) -> torch.Tensor:
        """:math:`W^\\top h + b`, shape ``(N, n_visible)``."""
        return torch.addmm(self.visible_bias, h, self.weight)

    def hidden_mean(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`E[h \\mid v]`: :math:`p(h_j = 1 \\mid v)` for Bernoulli units, :math:`W v + c` for linear ones."""
        x = self.hidden_input(v)
        return torch.sigmoid_(x) if self.hidden == "bernoulli" else x

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """:math:`E[v \\mid h]`: :math:`p(v_i = 1 \\mid h)` for Bernoulli units, :math:`W^\\top h + b` for
        Gaussian ones."""
        x = self.visible_input(h)
        return torch.sigmoid_(x) if self.visible == "bernoulli" else x

    def sample_hidden(
        self, v: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(E[h | v], h ~ p(h | v))``."""
        mean = self.hidden_mean(v)
        return mean, _sample(mean, self.hidden, generator)

    def sample_visible(
        self, h: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(E[v | h], v ~ p(v | h))``."""
        mean = self.visible_mean(h)
        return mean, _sample(mean, self.visible, generator)

    # -- energies -----------------------------------------------------------------------------
    def _visible_term(self, v: torch.Tensor) -> torch.Tensor:
        if self.visible == "bernoulli":
            return -(v @ self.visible_bias)
        return 0.5 * (v - self.visible_bias).pow(2).sum(1)

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """:math:`E(v, h) = V(v) + H(h) - h^\\top W v` per row, shape ``(N,)``."""
        if self.hidden == "bernoulli":
            hidden_term = -(h @ self.hidden_bias)
        else:
            hidden_term = 0.5 * (h - self.hidden_bias).pow(2).sum(1)
        return self._visible_term(v) + hidden_term - ((h @ self.weight) * v).sum(1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`F(v) = -\\log \\sum_h e^{-E(v, h)}` per row, shape ``(N,)`` (closed forms in the
        module docstring); :math:`p(v) = e^{-F(v)} / Z`."""
        x = self.hidden_input(v)
        if self.hidden == "bernoulli":
            hidden_term = -F.softplus(x).sum(1)
        else:
            c = self.hidden_bias
            hidden_term = -0.5 * x.pow(2).sum(1) + 0.5 * c.pow(2).sum() - 0.5 * self.n_hidden * math.log(2 * math.pi)
        return self._visible_term(v) + hidden_term

    # -- sampling and measurements ------------------------------------------------------------
    def gibbs(self, v: torch.Tensor, steps: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """Run ``steps`` full steps of block Gibbs sampling :math:`v \\to h \\to v` from each row of
        ``v`` (independent chains, in parallel) and return the final visible states."""
        with torch.no_grad():
            for _ in range(steps):
                _, h = self.sample_hidden(v, generator)
                _, v = self.sample_visible(h, generator)
        return v

    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """Mean-field reconstruction :math:`E[v \\mid h = E[h \\mid v]]`, e.g.
        :math:`\\sigma(W^\\top \\sigma(W v + c) + b)` for Bernoulli units."""
        return self.visible_mean(self.hidden_mean(v))

    def pseudo_log_likelihood(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Stochastic pseudo-log-likelihood per row (Bernoulli visible units only), as scikit-learn's
        ``BernoulliRBM.score_samples`` computes it: flip one visible unit :math:`i` chosen at random
        per row (:math:`\\tilde v_i = 1 - v_i`) and return
        :math:`n_v \\log \\sigma(F(\\tilde v) - F(v))`, an unbiased estimate of
        :math:`\\sum_i \\log p(v_i \\mid v_{-i})` for binary :math:`v` (for intensities in [0, 1] it is
        the same formula applied as is)."""
        if self.visible != "bernoulli":
            raise ConfigError("the pseudo-log-likelihood is defined here for Bernoulli visible units only")
        n = v.shape[0]
        idx = torch.randint(0, self.n_visible, (n,), generator=generator, device=v.device)
        rows = torch.arange(n, device=v.device)
        flipped = v.clone()
        flipped[rows, idx] = 1 - flipped[rows, idx]
        return self.n_visible * F.logsigmoid(self.free_energy(flipped) - self.free_energy(v))


class CDGradient(NamedTuple):
    """The contrastive-divergence estimate of the log-likelihood gradient (positive phase minus
    negative phase, averaged over the rows), shaped like the RBM's parameters; the negative
    visible states; the state of the negative chain (hidden samples: what persistent CD carries
    to the next batch)."""

    weight: torch.Tensor
    visible_bias: torch.Tensor
    hidden_bias: torch.Tensor
    negative: torch.Tensor
    chain: torch.Tensor


@torch.no_grad()
def cd_gradient(
    rbm: RBM, v: torch.Tensor, k: int = 1, chain: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> CDGradient:
    r"""CD-k (``chain=None``) or persistent CD (``chain``: the hidden states of the persistent chains).

    Positive phase: :math:`\langle E[h \mid v]\, v^\top\rangle` over the data rows. Negative phase:
    CD-k samples :math:`h \sim p(h \mid v)` from the data and runs ``k`` Gibbs steps, using the
    visible *means* in the last step (H&S's ``rbm.m``: "probabilities for the reconstruction");
    PCD runs ``k`` full Gibbs steps (sampled visible states, as scikit-learn) from ``chain``. The
    negative statistics are :math:`\langle E[h \mid v^-]\, v^{-\top}\rangle`. For every unit type
    the result equals :math:`-\nabla_\theta\,[\overline{F(v)} - \overline{F(v^-)}]` with the
    negative samples :math:`v^-` held fixed.
    """
    if k < 1:
        raise ConfigError(f"CD-k needs k >= 1, got {k}")
    pos = rbm.hidden_mean(v)
    persistent = chain is not None
    h = chain if chain is not None else _sample(pos, rbm.hidden, generator)
    for step in range(k):
        mean = rbm.visible_mean(h)
        vn = mean if step == k - 1 and not persistent else _sample(mean, rbm.visible, generator)
        neg = rbm.hidden_mean(vn)
        if step < k - 1 or persistent:
            h = _sample(neg, rbm.hidden, generator)
    n_pos, n_neg = v.shape[0], vn.shape[0]
    grad_b = v.mean(0) - vn.mean(0)
    grad_c = pos.mean(0) - neg.mean(0)
    # both phases in one product (a longer inner dimension runs faster than two products)
    grad_w = torch.cat([pos.mul_(1.0 / n_pos), neg.mul_(-1.0 / n_neg)]).t() @ torch.cat([v, vn])
    return CDGradient(grad_w, grad_b, grad_c, vn, h)


@dataclass
class RBMConfig:
    """Training settings of one RBM (defaults: Hinton & Salakhutdinov's ``rbm.m``)."""

    epochs: int = option(10, "passes over the data (H&S's code: 10; the paper: 50)")
    batch_size: int = option(100, "examples per update")
    lr: float = option(0.1, "learning rate (H&S: 0.1 for binary layers, 0.001 for the linear code layer)")
    cd_k: int = option(1, "Gibbs steps of contrastive divergence (CD-k)")
    persistent: bool = option(False, "persistent CD: keep batch_size Gibbs chains across updates (Tieleman 2008)")
    weight_decay: float = option(0.0002, "L2 weight decay on W (H&S's weightcost)")
    initial_momentum: float = option(0.5, "momentum of the first momentum_epochs epochs")
    momentum: float = option(0.9, "momentum afterwards")
    momentum_epochs: int = option(5, "epochs trained with initial_momentum")
    init_std: float = option(0.1, "initial weights are init_std * N(0, 1)")
    monitor: int = option(
        2000,
        "training rows (a fixed random subset) on which the per-epoch "
        "reconstruction error and pseudo-log-likelihood are measured",
    )

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "cd_k", "monitor"):
            if getattr(self, name) < (0 if name == "epochs" else 1):
                raise ConfigError(
                    f"rbm {name} must be {'>= 0' if name == 'epochs' else 'positive'}, got {getattr(self, name)}"
                )
        for name in ("lr", "weight_decay", "initial_momentum", "momentum", "init_std"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name == "lr" and value == 0):
                raise ConfigError(
                    f"rbm {name} must be a {'positive' if name == 'lr' else 'non-negative'} number, got {value}"
                )
        if self.momentum_epochs < 0:
            raise ConfigError(f"rbm momentum_epochs must be >= 0, got {self.momentum_epochs}")


def _as_rows(x: Any, visible: str = "gaussian", where: str = "pretraining data") -> torch.Tensor:
    """``x`` as a 2-D floating tensor of finite values (in [0, 1] for Bernoulli visible units)."""
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.float()
    if x.dim() != 2:
        x = x.reshape(x.shape[0], -1) if x.dim() > 2 else x
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{where}: expected a non-empty 2-D array of rows, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise DataError(f"{where}: holds NaN or infinite values")
    if visible == "bernoulli" and (x.min() < 0 or x.max() > 1):
        raise DataError(
            f"{where}: Bernoulli visible units need values in [0, 1] (got {float(x.min()):.4g} .. "
            f"{float(x.max()):.4g}); scale the data to [0, 1] or use Gaussian visible units"
        )
    return x


def _progress_bar(progress: bool | None, total: int, desc: str) -> Any:
    return progress_bar(sys.stderr.isatty() if progress is None else progress, total, 0, desc)


def train_rbm(
    x: Any,
    n_hidden: int,
    *,
    visible: str = "bernoulli",
    hidden: str = "bernoulli",
    seed: int = 0,
    progress: bool | None = False,
    rbm: RBM | None = None,
    desc: str = "rbm",
    **options: Any,
) -> RBM:
    r"""Train an :class:`RBM` on the rows of ``x`` by CD-k or persistent CD.

    Each update, for a batch of :math:`n` rows, with :math:`g` = :func:`cd_gradient`, learning rate
    :math:`\epsilon`, momentum :math:`m` and weight decay :math:`\lambda` (H&S's ``rbm.m``):
    :math:`\Delta W \leftarrow m\,\Delta W + \epsilon\,(g_W - \lambda W)`, :math:`W \leftarrow W + \Delta W`,
    and the same without decay for the biases. The rows are reshuffled every epoch.

    Parameters
    ----------
    x : array-like or Tensor, shape (N, n_visible)
        Training rows (in [0, 1] for Bernoulli visible units: intensities are used as
        probabilities, as H&S do). Training runs on ``x``'s device.
    n_hidden : int
    visible, hidden : str
        Unit types (:data:`VISIBLE_UNITS`, :data:`HIDDEN_UNITS`).
    seed : int
        Seed of the ``torch.Generator`` behind the initial weights, the batch order and every sample.
    progress : bool or None
        Show a progress bar (None: when stderr is a terminal).
    rbm : RBM, optional
        Continue training this RBM (its unit types; ``n_hidden``, ``visible`` and ``hidden`` are
        not used) instead of a fresh one.
    **options
        Fields of :class:`RBMConfig` (``epochs``, ``batch_size``, ``lr``, ``cd_k``, ``persistent``, ...).

    Returns
    -------
    RBM
        The trained RBM; ``rbm.history`` gains one record per epoch: ``reconstruction_error`` (mean
        per-row summed squared error of :meth:`RBM.reconstruct` on a fixed random subset of at most
        ``monitor`` training rows), ``pseudo_log_likelihood`` (mean of
        :meth:`RBM.pseudo_log_likelihood` on the same rows; None for Gaussian visible units),
        ``momentum``, ``seconds`` and ``samples_per_second`` (of the updates only).
    """
    cfg = from_dict(RBMConfig, options, where="rbm options")
    if rbm is not None:
        visible, hidden = rbm.visible, rbm.hidden
    _check_units(visible, hidden)
    x = _as_rows(x, visible)
    n = x.shape[0]
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    if rbm is None:
        rbm = RBM(x.shape[1], n_hidden, visible, hidden, init_std=cfg.init_std, generator=gen, dtype=x.dtype)
    elif rbm.n_visible != x.shape[1]:
        raise DataError(f"pretraining data: the RBM has {rbm.n_visible} visible units, the rows {x.shape[1]} features")
    params = (rbm.weight, rbm.visible_bias, rbm.hidden_bias)
    increments = [torch.zeros_like(p) for p in params]
    monitor = x[torch.randperm(n, generator=gen, device=x.device)[: cfg.monitor]]
    chain = torch.zeros(cfg.batch_size, rbm.n_hidden, device=x.device, dtype=x.dtype) if cfg.persistent else None
    b = cfg.batch_size
    with torch.no_grad():
        for _ in range(cfg.epochs):
            epoch = len(rbm.history) + 1
            m = cfg.initial_momentum if epoch <= cfg.momentum_epochs else cfg.momentum
            bar = _progress_bar(progress, math.ceil(n / b), f"{desc} epoch {epoch}")
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=gen, device=x.device)
            for i in range(0, n, b):
                g = cd_gradient(rbm, x[order[i : i + b]], cfg.cd_k, chain, gen)
                chain = g.chain if cfg.persistent else None
                for p, inc, grad, decay in zip(params, increments, g[:3], (cfg.weight_decay, 0.0, 0.0)):
                    inc.mul_(m).add_(grad, alpha=cfg.lr)
                    if decay:
                        inc.add_(p, alpha=-cfg.lr * decay)
                    p.add_(inc)
                if bar is not None:
                    bar.update(1)
            seconds = time.perf_counter() - t0
            if bar is not None:
                bar.close()
            if not all(torch.isfinite(p).all() for p in params):
                raise TrainingError(f"{desc}: the weights became non-finite in epoch {epoch}; lower the learning rate")
            pll = float(rbm.pseudo_log_likelihood(monitor, gen).mean()) if visible == "bernoulli" else None
            rbm.history.append(
                {
                    "epoch": epoch,
                    "reconstruction_error": float((rbm.reconstruct(monitor) - monitor).pow(2).sum(1).mean()),
                    "pseudo_log_likelihood": pll,
                    "momentum": m,
                    "seconds": seconds,
                    "samples_per_second": n / seconds if seconds > 0 else None,
                }
            )
    rbm.settings = {
        **rbm.describe(),
        "lr": cfg.lr,
        "cd_k": cfg.cd_k,
        "persistent": cfg.persistent,
        "batch_size": cfg.batch_size,
        "weight_decay": cfg.weight_decay,
        "seed": int(seed),
    }
    return rbm


def train_dbn(
    x: Any,
    sizes: Sequence[int],
    *,
    visible: str = "bernoulli",
    top: str = "linear",
    seed: int = 0,
    progress: bool | None = False,
    lr: float = 0.1,
    code_lr: float = 0.001,
    **options: Any,
) -> list[RBM]:
    """Greedy layer-wise training of a deep belief net (Hinton & Salakhutdinov 2006).

    RBM ``i`` (seed ``seed + i``) is trained by :func:`train_rbm` on the hidden probabilities
    :meth:`RBM.hidden_mean` of RBM ``i - 1`` over the training rows (RBM 0 on ``x``). Hidden units
    are Bernoulli, except the top RBM's, which are ``top`` (``"linear"``: H&S's 30-unit code layer).
    RBMs with Gaussian or linear units train with ``code_lr``, the others with ``lr``.

    Parameters
    ----------
    x : array-like or Tensor, shape (N, D)
    sizes : sequence of int
        Hidden widths, bottom to top, e.g. ``(1000, 500, 250, 30)``.
    visible : {"bernoulli", "gaussian"}
        Visible units of the bottom RBM (the others see probabilities: Bernoulli).
    top : {"bernoulli", "linear"}
    **options
        Other :class:`RBMConfig` fields, shared by every layer.

    Returns
    -------
    list of RBM
    """
    if not sizes:
        raise ConfigError("a stack needs at least one hidden layer width")
    x = _as_rows(x, visible)
    rbms: list[RBM] = []
    for i, n_hidden in enumerate(sizes):
        v_units = visible if i == 0 else "bernoulli"
        h_units = top if i == len(sizes) - 1 else "bernoulli"
        rate = lr if (v_units, h_units) == ("bernoulli", "bernoulli") else code_lr
        rbm = train_rbm(
            x,
            n_hidden,
            visible=v_units,
            hidden=h_units,
            seed=seed + i,
            progress=progress,
            lr=rate,
            desc=f"rbm {i + 1}/{len(sizes)}",
            **options,
        )
        rbms.append(rbm)
        if i < len(sizes) - 1:
            x = _map_rows(rbm.hidden_mean, x)
    return rbms


def _map_rows(fn: Any, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@dataclass
class Layer:
    """One pretrained layer of a stack, in the layout of :class:`RBM`: the encoder computes
    ``act(x @ weight.T + hidden_bias)``, the decoder ``out(h @ weight + visible_bias)``."""

    weight: torch.Tensor
    hidden_bias: torch.Tensor
    visible_bias: torch.Tensor
    history: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


#: ``train_layer(fields, x, *, epochs, batch_size, lr, seed, progress) -> (model, history)``: build the
#: :class:`~aekit.model.Autoencoder` of the :class:`~aekit.model.ModelConfig` fields ``fields`` under
#: ``torch.manual_seed(seed)``, train it on the rows ``x`` (Adam, learning rate ``lr``, seed ``seed``, on
#: ``x``'s device) and return it with its history; the global torch RNG is left as it was
#: (:func:`aekit.pretrain.train_layer`).
LayerTrainer = Callable[..., tuple[Any, list[dict[str, Any]]]]


def denoising_layer(
    n_visible: int,
    n_hidden: int,
    *,
    activation: str,
    loss: str,
    output_activation: str,
    noise: str,
    nu: float,
    sigma: float,
    low: float,
    high: float,
) -> dict[str, Any]:
    """The :class:`~aekit.model.ModelConfig` fields of one layer of a stacked denoising autoencoder: a
    one-hidden-layer denoising autoencoder with tied weights and ``activation`` units (code included)."""
    return {
        "variant": "denoising",
        "input_dim": n_visible,
        "hidden": (),
        "latent": n_hidden,
        "activation": activation,
        "code_activation": activation,
        "loss": loss,
        "tied": True,
        "options": {"noise": noise, "nu": nu, "sigma": sigma, "low": low, "high": high},
        "output_activation": output_activation,
    }


def stack_denoising(
    x: Any,
    sizes: Sequence[int],
    *,
    train_layer: LayerTrainer,
    activation: str = "sigmoid",
    top_activation: str | None = None,
    loss: str = "bce",
    output_activation: str = "linear",
    noise: str = "mask",
    nu: float = 0.25,
    sigma: float = 0.3,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool | None = False,
) -> list[Layer]:
    r"""Greedy layer-wise denoising pretraining (Vincent et al. 2010, section 3.5).

    Layer ``i`` is a one-hidden-layer denoising autoencoder with tied weights (Vincent et al.'s
    :math:`W' = W^\top`): :math:`y = s(W \tilde x + c)`, :math:`z = s'(W^\top y + b)`, trained to
    reconstruct its *clean* input :math:`x` from :math:`\tilde x \sim q_D(\tilde x \mid x)`
    (:func:`aekit.noise.corrupt`, a fresh draw per batch). Its input is the clean code of the layer
    below, :math:`x_{i} = s(W_{i-1} x_{i-1} + c_{i-1})`; only the layer being trained sees
    corrupted input. Each layer is an :class:`~aekit.model.Autoencoder` of the denoising variant
    (:func:`denoising_layer`) trained by ``train_layer`` (the ordinary :class:`~aekit.train.Trainer`:
    Adam, learning rate ``lr``, seed ``seed + i``) on ``epochs`` passes; the global torch RNG is
    restored afterwards.

    Parameters
    ----------
    x : array-like or Tensor, shape (N, D)
    sizes : sequence of int
        Widths, bottom to top, e.g. ``(1000, 1000, 1000)``.
    train_layer : callable
        Trains one layer (:data:`LayerTrainer`; :func:`aekit.pretrain.stack_denoising` passes
        :func:`aekit.pretrain.train_layer`).
    activation : str
        Units of every layer but the top (an :data:`aekit.nn.ACTIVATIONS` name).
    top_activation : str, optional
        Units of the top layer (default ``activation``; ``"linear"`` for a linear code).
    loss, output_activation : str
        Reconstruction of the bottom layer (as :class:`~aekit.model.ModelConfig`): ``"bce"`` for
        inputs in [0, 1], or ``"mse"`` with a linear or sigmoid output. Upper layers reconstruct
        with ``"bce"`` when their inputs are sigmoid activations, else with ``"mse"`` and linear outputs.
    noise, nu, sigma : str, float
        Corruption process and level (:func:`aekit.noise.corrupt`; Vincent et al.'s masking noise,
        a fraction ``nu`` of the entries set to 0, by default).

    Returns
    -------
    list of Layer
        ``history`` holds each layer's Trainer history (``train_loss`` per epoch).
    """
    if not sizes:
        raise ConfigError("a stack needs at least one hidden layer width")
    x = _as_rows(x, "bernoulli" if loss == "bce" else "gaussian")
    layers: list[Layer] = []
    for i, n_hidden in enumerate(sizes):
        act = (top_activation or activation) if i == len(sizes) - 1 else activation
        layer_loss = loss if i == 0 else ("bce" if activation == "sigmoid" else "mse")
        low, high = (0.0, 1.0) if layer_loss == "bce" else (float(x.min()), float(x.max()))
        fields = denoising_layer(
            x.shape[1],
            n_hidden,
            activation=act,
            loss=layer_loss,
            output_activation=output_activation if i == 0 else "linear",
            noise=noise,
            nu=nu,
            sigma=sigma,
            low=low,
            high=high,
        )
        ae, history = train_layer(
            fields, x, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed + i, progress=progress
        )
        enc, dec = ae.encoder.linears[0], ae.decoder[0]
        layers.append(
            Layer(
                enc.weight.detach().clone(),
                enc.bias.detach().clone(),
                dec.bias.detach().clone(),
                history,
                {
                    "n_visible": x.shape[1],
                    "n_hidden": n_hidden,
                    "activation": act,
                    "loss": layer_loss,
                    "noise": noise,
                    "nu": nu,
                    "sigma": sigma,
                    "lr": lr,
                    "batch_size": batch_size,
                    "seed": seed + i,
                },
            )
        )
        if i < len(sizes) - 1:
            ae.eval()
            x = _map_rows(ae.encode, x)
    return layers


def _decoder_linears(model: Model) -> list[nn.Linear | TiedLinear]:
    decoder = model.decoder
    assert isinstance(decoder, (MLP, TiedMLP)), "the decoder of an mlp autoencoder (see _check_mlp)"
    return [m for m in decoder if isinstance(m, (nn.Linear, TiedLinear))]


def _check_mlp(model: Model, n_layers: int | None = None) -> MLP:
    """``model``'s encoder, checked to be an :class:`~aekit.nn.MLP` (of ``n_layers`` linear layers)."""
    encoder = model.encoder
    if not isinstance(encoder, MLP):
        raise ConfigError("layer-wise pretraining needs the mlp architecture")
    if n_layers is not None and len(encoder.linears) != n_layers:
        raise ConfigError(f"the model has {len(encoder.linears)} encoder layers, the stack {n_layers}")
    return encoder


def unroll(model: M, layers: Sequence[Any]) -> M:
    """Write a pretrained stack into an MLP :class:`~aekit.model.Autoencoder` (in place) and return it.

    Encoder layer ``i`` gets ``layers[i].weight`` and ``layers[i].hidden_bias``; the mirrored
    decoder layer gets ``layers[i].weight.T`` and ``layers[i].visible_bias`` (a tied decoder only
    the bias). ``layers`` are :class:`RBM` or :class:`Layer` objects (anything with ``weight``,
    ``hidden_bias`` and ``visible_bias``), bottom to top.
    """
    enc, dec = _check_mlp(model, len(layers)).linears, _decoder_linears(model)[::-1]
    with torch.no_grad():
        for i, layer in enumerate(layers):
            if tuple(layer.weight.shape) != tuple(enc[i].weight.shape):
                raise ConfigError(
                    f"layer {i + 1} of the stack is {tuple(layer.weight.shape)}, the model's "
                    f"{tuple(enc[i].weight.shape)}"
                )
            enc[i].weight.copy_(layer.weight)
            enc[i].bias.copy_(layer.hidden_bias)
            mirror = dec[i]
            if isinstance(mirror, nn.Linear):
                mirror.weight.copy_(layer.weight.t())
            mirror.bias.copy_(layer.visible_bias)
    return model


def rbms_from_model(model: Model) -> list[RBM]:
    """The RBM stack held by an unrolled MLP autoencoder (e.g. a run written by ``aekit pretrain rbm``):
    weights and hidden biases from the encoder, visible biases from the mirrored decoder layers.
    Units: Bernoulli visible units when the decoder output is logistic (loss ``bce`` or a sigmoid
    output), else Gaussian; Bernoulli hidden units, except a linear top layer when the code is linear."""
    cfg = model.config
    encoder = _check_mlp(model)
    if cfg.activation != "sigmoid" or cfg.code_activation not in ("sigmoid", "linear"):
        raise ConfigError("only a model with logistic hidden units and a logistic or linear code holds an RBM stack")
    enc, dec = encoder.linears, _decoder_linears(model)[::-1]
    rbms = []
    for i, lin in enumerate(enc):
        top = i == len(enc) - 1
        rbm = RBM(
            lin.in_features,
            lin.out_features,
            visible_units(cfg) if i == 0 else "bernoulli",
            "linear" if top and cfg.code_activation == "linear" else "bernoulli",
        )
        with torch.no_grad():
            rbm.weight.copy_(lin.weight)
            rbm.hidden_bias.copy_(lin.bias)
            rbm.visible_bias.copy_(dec[i].bias)
        rbms.append(rbm)
    return rbms


def visible_units(config: Any) -> str:
    """The bottom RBM's visible units for a :class:`~aekit.model.ModelConfig`: the decoder's output
    units. Logistic outputs (loss ``bce``, or ``mse`` with a sigmoid output) are Bernoulli units on
    data in [0, 1]; linear outputs (``mse``) are Gaussian units of unit variance (standardise the
    data: ``scale="standard"``)."""
    return "bernoulli" if config.loss == "bce" or config.output_activation == "sigmoid" else "gaussian"


def stack_record(method: str, layers: Sequence[Any], seconds: float) -> dict[str, Any]:
    """The JSON-able record of a pretrained stack (``pretrain.json``): per layer its settings and
    its per-epoch history."""
    return {
        "method": method,
        "seconds": seconds,
        "layers": [
            {"layer": i + 1, **getattr(layer, "settings", {}), "history": layer.history}
            for i, layer in enumerate(layers)
        ],
    }
