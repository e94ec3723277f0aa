r"""The VQ-VAE: an autoencoder whose code is made of vectors of a learned codebook.

van den Oord, A., Vinyals, O. & Kavukcuoglu, K. (2017). Neural Discrete Representation Learning.
*NIPS 2017* (arXiv:1711.00937). Razavi, A., van den Oord, A. & Vinyals, O. (2019). Generating
Diverse High-Fidelity Images with VQ-VAE-2. *NeurIPS 2019* (arXiv:1906.00446).

The encoder's output :math:`z_e` is cut into vectors of ``code_dim`` :math:`D` values, and each is
replaced by its nearest vector of a codebook :math:`e_1, \dots, e_K` (``codebook_size`` :math:`K`):

.. math:: k = \arg\min_j \|z_e - e_j\|^2, \qquad z_q = e_k .

- **Flat codes** (``mlp``, or ``conv`` with ``--no-spatial``): the code of ``latent`` values is
  ``latent / D`` consecutive vectors (``code_dim`` unset: one vector, the whole code).
- **Spatial codes** (``conv``, the default there, as in the paper): the encoder is the stride-2
  convolutions and a 1x1 convolution to :math:`D` channels (no dense layers); every position of its
  :math:`D \times H' \times W'` map is quantized, and the decoder starts from that map (a 1x1
  convolution, then the transposed convolutions). ``latent`` is :math:`D H' W'` (``code_dim`` unset:
  ``latent / (H' W')``); the code is the map flattened channel-major, as ``(N, latent)`` rows.

The decoder sees :math:`z_q`; the gradient of the reconstruction term reaches the encoder by the
straight-through estimator, :math:`z = z_q + z_e - \mathrm{sg}(z_e)` (exactly :math:`z_q` forward,
the identity backward). The loss terms, summed over the code's values and averaged over the batch
like the reconstruction term: ``commitment`` :math:`\beta \|z_e - \mathrm{sg}(e)\|^2` (``commitment``
:math:`\beta` = 0.25), and without ``ema`` the ``codebook`` term :math:`\|\mathrm{sg}(z_e) - e\|^2`,
through which the optimizer moves the codebook (a parameter of the model).

With ``ema`` (the default; the paper's appendix A.1) the codebook is no parameter but a buffer
updated after every training step by exponential moving averages (decay :math:`\gamma` =
``ema_decay``) of each code's cluster size :math:`N_i` and of the sum :math:`m_i` of the encoder
vectors assigned to it in the batch (:math:`n_i` of them, :math:`z_{i,1..n_i}`):

.. math::

    N_i \leftarrow \gamma N_i + (1 - \gamma) n_i, \qquad
    m_i \leftarrow \gamma m_i + (1 - \gamma) \textstyle\sum_j z_{i,j}, \qquad
    e_i = m_i / \tilde N_i, \quad \tilde N_i = \frac{N_i + \epsilon}{n + K \epsilon}\, n, \; n = \textstyle\sum_i N_i ,

the cluster sizes Laplace-smoothed (``epsilon`` :math:`\epsilon` = 1e-5) so that an unused code
is never divided by zero (sonnet's ``VectorQuantizerEMA``, without its zero-debiasing). The
averages start at :math:`N_i = 1`, :math:`m_i = e_i`. The codebook and its statistics are float64
buffers, saved and checkpointed with the model (a resumed run is exact); the codebook starts from
:math:`\mathcal N(0, 1)` draws.

**Dead codes** (``dead_restart`` :math:`T` steps, 0: never): a code that no vector of :math:`T`
consecutive training batches selected is moved onto an encoder vector of the current batch chosen
at random (torch's global generator, which the trainer checkpoints), its averages reset to
:math:`N_i = 1`, :math:`m_i = e_i`. (Starting the codebook on the first batch's encoder vectors
instead of :math:`\mathcal N(0, 1)` trained worse on digits: 30% more error after 20 epochs, the
codes packed into the untrained encoder's narrow cloud.)

:meth:`~aekit.model.Autoencoder.encode` gives :math:`z_q` (continuous vectors, so search, plots and
the decoder take them as they take any code); :meth:`VQVAE.indices` gives the codebook indices,
``(N, vectors per row)``, and :meth:`VQVAE.discrete_codes` the codebook with which
:mod:`aekit.compress` stores a code as its indices, :math:`\lceil \log_2 K \rceil` bits each. The
history logs ``perplexity`` (:math:`\exp H` of the codes' frequencies in a batch: :math:`K` when all
are used equally) and at each epoch end ``codebook_perplexity`` (the same over the epoch's training
batches), ``dead_codes`` (codes no training vector of the epoch selected) and ``restarted_codes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..callbacks import Callback
from ..config import option
from ..errors import ConfigError
from ..nn import conv_sizes, index_counts, make_activation
from . import Variant, register

#: the largest codebook (indices are stored as uint16)
MAX_CODEBOOK = 1 << 16


@dataclass
class VQVAEOptions:
    """The codebook, its updates and the commitment loss."""

    codebook_size: int = option(512, "number K of codebook vectors")
    code_dim: int | None = option(
        None,
        "dimension D of a codebook vector; unset: the whole code (flat codes), latent / positions (spatial codes)",
    )
    spatial: bool = option(
        True,
        "conv: quantize every position of the last feature map (code latent = D x H' x W', no dense layers); "
        "off: the conv encoder's dense code, cut into vectors of D",
    )
    commitment: float = option(0.25, "weight beta of the commitment loss beta * ||z_e - sg(e)||^2")
    ema: bool = option(
        True,
        "update the codebook by exponential moving averages of its clusters (off: the codebook loss "
        "||sg(z_e) - e||^2, by the optimizer)",
    )
    ema_decay: float = option(0.99, "decay gamma of the moving averages of the codebook (ema)")
    epsilon: float = option(1e-5, "Laplace smoothing of the cluster sizes (ema)")
    dead_restart: int = option(
        20, "move a code that no vector of this many consecutive training batches selected onto one (0: never)"
    )

    def validate(self) -> None:
        if not 1 <= self.codebook_size <= MAX_CODEBOOK:
            raise ConfigError(f"vq-vae option codebook_size must be 1-{MAX_CODEBOOK}, got {self.codebook_size}")
        if self.code_dim is not None and self.code_dim < 1:
            raise ConfigError(f"vq-vae option code_dim must be at least 1, got {self.code_dim}")
        if not (math.isfinite(self.commitment) and self.commitment >= 0):
            raise ConfigError(f"vq-vae option commitment must be a finite number >= 0, got {self.commitment}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"vq-vae option ema_decay must lie in [0, 1), got {self.ema_decay}")
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ConfigError(f"vq-vae option epsilon must be a positive number, got {self.epsilon}")
        if self.dead_restart < 0:
            raise ConfigError(f"vq-vae option dead_restart must be >= 0 (0: never), got {self.dead_restart}")


def nearest(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    r"""The index of the nearest row of ``codebook`` (K, D) to each row of ``vectors`` (M, D):
    :math:`\arg\min_j \|v\|^2 - 2 v \cdot e_j + \|e_j\|^2` (the first on a tie)."""
    d = (vectors * vectors).sum(1, keepdim=True) - 2 * vectors @ codebook.t() + (codebook * codebook).sum(1)
    return d.argmin(1)


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    r""":math:`\exp(-\sum_i p_i \log p_i)` of the frequencies ``counts`` (K,): the number of equally used
    codes that would give their entropy (1 for none at all)."""
    p = counts.double() / counts.sum().clamp(min=1)
    return torch.exp(-(p * torch.log(p.clamp(min=1e-30))).sum())


def spatial_code_shape(config: Any, code_dim: int | None, variant: str) -> tuple[int, int, int]:
    """``(D, H', W')`` of a spatial code: ``code_dim`` channels (unset: ``latent`` over the positions)
    at each position of the last feature map of ``config``'s convolutions (ConfigError for dense
    layers, or a ``latent`` that is not D x H' x W')."""
    if config.conv_dense:
        raise ConfigError(
            f"a spatial {variant} code has no dense layers; leave --conv-dense empty or pass --no-spatial"
        )
    _, h, w = config.image_shape
    fh, fw = conv_sizes(h, w, len(config.hidden), config.conv_kernel)[-1]
    positions, latent = fh * fw, config.latent
    dim = code_dim if code_dim is not None else max(latent // positions, 1)
    if dim * positions != latent:
        what = f"{dim} x {positions}" if code_dim else f"a multiple of {positions}"
        raise ConfigError(
            f"a spatial {variant} code has code_dim x {fh} x {fw} values (the positions of the last feature "
            f"map); latent={latent} is not {what}: pass --latent {dim * positions}"
        )
    return dim, fh, fw


class SpatialEncoder(nn.Module):
    """Stride-2 convolutions, then a 1x1 convolution to ``code_dim`` channels; the map flattened
    channel-major. Shape: :math:`(N, C, H, W) \\to (N, D H' W')`."""

    def __init__(self, config: Any, code_dim: int):
        super().__init__()
        c = config.image_shape[0]
        layers: list[nn.Module] = []
        for c_in, c_out in zip([c, *config.hidden[:-1]], config.hidden):
            layers += [
                nn.Conv2d(c_in, c_out, config.conv_kernel, stride=2, padding=1),
                make_activation(config.activation),
            ]
        layers += [nn.Conv2d(config.hidden[-1], code_dim, 1), make_activation(config.code_activation)]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


class SpatialDecoder(nn.Module):
    """A 1x1 convolution from ``code_dim`` channels, then the stride-2 transposed convolutions of
    :class:`~aekit.nn.ConvDecoder` (odd sizes come back exactly). Shape: :math:`(N, D H' W') \\to (N, C, H, W)`."""

    def __init__(self, config: Any, code_dim: int):
        super().__init__()
        c, h, w = config.image_shape
        channels, kernel = list(config.hidden), config.conv_kernel
        sizes = conv_sizes(h, w, len(channels), kernel)
        self.start = (code_dim, *sizes[-1])
        rev = list(reversed(channels))
        layers: list[nn.Module] = [nn.Conv2d(code_dim, rev[0], 1), make_activation(config.activation)]
        for i, (c_in, c_out) in enumerate(zip(rev, [*rev[1:], c])):
            th, tw = sizes[len(channels) - 1 - i]
            pad = (1 - th % 2, 1 - tw % 2) if kernel == 3 else (th % 2, tw % 2)
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=1, output_padding=pad))
            if i < len(channels) - 1:
                layers.append(make_activation(config.activation))
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(z.reshape(-1, *self.start))


@register(
    "vq-vae",
    "VQ-VAE (van den Oord et al. 2017): codes made of the nearest vectors of a learned codebook "
    "(EMA updates, straight-through gradients, commitment loss, dead-code restarts); flat or spatial codes",
    options=VQVAEOptions,
)
class VQVAE(Variant):
    """Nearest-codebook quantization of the encoder's vectors.

    Buffers
    -------
    codebook : float64 ``(K, D)``
        The codebook (with ``ema``; without, a float32 parameter trained by the codebook loss).
    cluster_size, embed_sum : float64 ``(K,)``, ``(K, D)``
        The moving averages :math:`N_i` and :math:`m_i` (``ema`` only).
    unused : long ``(K,)``
        Consecutive training steps in which no vector selected each code.
    epoch_counts : long ``(K,)``, epoch_restarts : long scalar
        Selections of each code and restarts in the current epoch's training steps.
    """

    code_name = "quantized codes (codebook vectors)"

    codebook: torch.Tensor
    cluster_size: torch.Tensor
    embed_sum: torch.Tensor
    unused: torch.Tensor
    epoch_counts: torch.Tensor
    epoch_restarts: torch.Tensor

    def __init__(self, config: Any, options: VQVAEOptions):
        super().__init__(config, options)
        latent, o = config.latent, options
        self.is_spatial = config.architecture == "conv" and o.spatial
        if self.is_spatial:
            self.code_shape: tuple[int, ...] = spatial_code_shape(config, o.code_dim, "vq-vae")
            dim = self.code_shape[0]
        else:
            dim = o.code_dim if o.code_dim is not None else latent
            if latent % dim:
                raise ConfigError(f"vq-vae option code_dim={dim} does not divide the code size latent={latent}")
            self.code_shape = (latent // dim, dim)
        self.code_dim, self.groups, k = dim, latent // dim, o.codebook_size
        initial = torch.randn(k, dim, dtype=torch.float64)
        if o.ema:
            self.register_buffer("codebook", initial)
            self.register_buffer("cluster_size", torch.ones(k, dtype=torch.float64))
            self.register_buffer("embed_sum", initial.clone())
        else:
            self.codebook = nn.Parameter(initial.float())
        self.register_buffer("unused", torch.zeros(k, dtype=torch.long))
        self.register_buffer("epoch_counts", torch.zeros(k, dtype=torch.long))
        self.register_buffer("epoch_restarts", torch.zeros((), dtype=torch.long))
        self._counts: torch.Tensor | None = None

    # -- the networks of a spatial code ---------------------------------------------------------------
    def networks(self) -> tuple[nn.Module, nn.Module] | None:
        """The encoder and decoder of a spatial code (:class:`SpatialEncoder`, :class:`SpatialDecoder`);
        None for a flat code (the model's own)."""
        if not self.is_spatial:
            return None
        return SpatialEncoder(self.config, self.code_dim), SpatialDecoder(self.config, self.code_dim)

    # -- vectors <-> codes ----------------------------------------------------------------------------
    def vectors(self, h: torch.Tensor) -> torch.Tensor:
        """The ``(N * groups, D)`` vectors of codes ``h`` (N, latent), row by row."""
        if self.is_spatial:  # channel-major (N, D, H'W') -> positions
            return h.reshape(-1, self.code_dim, self.groups).transpose(1, 2).reshape(-1, self.code_dim)
        return h.reshape(-1, self.code_dim)

    def codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """The ``(N, latent)`` codes of ``vectors`` (the inverse of :meth:`vectors`; no shape is read, so
        that an exported graph keeps its batch axis)."""
        latent = self.groups * self.code_dim
        if self.is_spatial:
            return vectors.reshape(-1, self.groups, self.code_dim).transpose(1, 2).reshape(-1, latent)
        return vectors.reshape(-1, latent)

    def weights(self, dtype: torch.dtype) -> torch.Tensor:
        """The codebook in ``dtype`` (the encoder's): what the decoder sees."""
        return self.codebook.to(dtype)

    def _nearest(self, vectors: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(vectors.device.type, enabled=False):
            return nearest(vectors, self.weights(vectors.dtype).detach())

    def indices(self, h: torch.Tensor) -> torch.Tensor:
        """The codebook index of each vector of the encoder outputs ``h``, ``(N, groups)``."""
        return self._nearest(self.vectors(h)).reshape(-1, self.groups)

    # -- the bottleneck -------------------------------------------------------------------------------
    def bottleneck(self, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n, o = len(h), self.options
        z_e = self.vectors(h)
        idx = self._nearest(z_e)
        z_q = F.embedding(idx, self.weights(h.dtype))  # the codebook's gradient: the codebook term only
        terms = {"commitment": o.commitment * ((z_e - z_q.detach()) ** 2).sum() / n}
        if not o.ema:
            terms["codebook"] = ((z_e.detach() - z_q) ** 2).sum() / n
        self._counts = index_counts(idx, o.codebook_size)
        if self.training:
            self.learn(z_e.detach(), idx, self._counts)
        z = z_q.detach() + (z_e - z_e.detach())  # straight through: z_q forward, the identity backward
        return self.codes(z), terms

    def encode_deterministic(self, h: torch.Tensor) -> torch.Tensor:
        """The quantized code :math:`z_q`: each vector replaced by its nearest codebook vector."""
        z_e = self.vectors(h)
        return self.codes(F.embedding(self._nearest(z_e), self.weights(h.dtype)))

    @torch.no_grad()
    def learn(self, z_e: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor | None = None) -> None:
        """After a training batch's vectors ``z_e`` (M, D) chose the codes ``idx`` (M,): the EMA update of
        the codebook, then the restart of the codes that no batch of the last ``dead_restart`` chose.
        ``counts``: the codes' counts in ``idx`` where the caller has them (:func:`~aekit.nn.index_counts`)."""
        o, k = self.options, self.options.codebook_size
        counts = index_counts(idx, k) if counts is None else counts
        self.epoch_counts += counts
        if o.ema:
            g = o.ema_decay
            sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, z_e.to(self.embed_sum.dtype))
            self.cluster_size.mul_(g).add_(counts.to(self.cluster_size.dtype), alpha=1 - g)
            self.embed_sum.mul_(g).add_(sums, alpha=1 - g)
            total = self.cluster_size.sum()
            smoothed = (self.cluster_size + o.epsilon) / (total + k * o.epsilon) * total
            self.codebook.copy_(self.embed_sum / smoothed[:, None])
        if not o.dead_restart:
            return
        self.unused.add_(1).masked_fill_(counts > 0, 0)
        dead = (self.unused >= o.dead_restart).nonzero().flatten()
        if len(dead) == 0:
            return
        m = len(z_e)
        if m >= len(dead):
            rows = torch.randperm(m, device=z_e.device)[: len(dead)]
        else:
            rows = torch.randint(m, (len(dead),), device=z_e.device)
        fresh = z_e[rows].to(self.codebook.dtype)
        self.codebook[dead] = fresh
        if o.ema:
            self.cluster_size[dead] = 1.0
            self.embed_sum[dead] = fresh
        self.unused[dead] = 0
        self.epoch_restarts += len(dead)

    def metrics(self, x, h, z) -> dict[str, torch.Tensor]:
        """``perplexity`` of the codes chosen in this pass."""
        assert self._counts is not None, "the model calls bottleneck() before metrics()"
        return {"perplexity": perplexity(self._counts).to(h.dtype)}

    # -- the epoch's statistics -----------------------------------------------------------------------
    def take_epoch_statistics(self) -> dict[str, Any]:
        """``codebook_perplexity``, ``dead_codes`` and ``restarted_codes`` of the training steps since the
        last call (or the start of training); resets the counts."""
        counts = self.epoch_counts
        stats = {
            "codebook_perplexity": float(perplexity(counts)),
            "dead_codes": int((counts == 0).sum()),
            "restarted_codes": int(self.epoch_restarts),
        }
        self.epoch_counts.zero_()
        self.epoch_restarts.zero_()
        return stats

    def callbacks(self) -> list[Callback]:
        return [VQVAECallback(self)]

    # -- the discrete code ----------------------------------------------------------------------------
    def discrete_codes(self) -> dict[str, Any]:
        """What stores a code as its codebook indices (:class:`aekit.compress.CodebookQuantizer`): the
        codebook as the decoder sees it (float32 values, as float64), the vectors per row (``groups``)
        and how a code holds them (``layout``: ``"rows"``, consecutive; ``"channels"``, a channel-major
        D x positions map)."""
        return {
            "codebook": self.weights(torch.float32).detach().cpu().double().numpy(),
            "groups": self.groups,
            "layout": "channels" if self.is_spatial else "rows",
        }

    def activation_marks(self) -> tuple[float | None, list[tuple[str, Any]]]:
        k = self.options.codebook_size
        return None, [
            ("codebook vectors K x dimension D", f"{k} x {self.code_dim}"),
            ("codebook vectors per row", self.groups),
            ("bits per row as indices", self.groups * max(1, math.ceil(math.log2(k)))),
        ]


class VQVAECallback(Callback):
    """Adds ``codebook_perplexity``, ``dead_codes`` and ``restarted_codes`` to each epoch's record."""

    def __init__(self, variant: VQVAE):
        self.variant = variant

    def on_train_begin(self, trainer: Any) -> None:
        if trainer.global_step == 0:  # a resumed run keeps the checkpointed counts of its epoch
            self.variant.take_epoch_statistics()

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        record.update(self.variant.take_epoch_statistics())
