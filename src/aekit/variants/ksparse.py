r"""The k-sparse autoencoder: keep the k largest code units of each example, zero the rest.

Makhzani, A. & Frey, B. (2014). k-Sparse Autoencoders. *ICLR 2014* (arXiv:1312.5663).

With linear code units :math:`z = W^\top x + b` the code is
:math:`\mathrm{supp}_k(z) = z \odot m`, where the 0/1 mask :math:`m` marks the :math:`k`
largest entries of :math:`z` for each example; the reconstruction error is back-propagated
only through those :math:`k` units (the mask is a constant, so the other units get a zero
gradient). At encoding time (:meth:`~aekit.model.Autoencoder.encode`, and any forward pass in
eval mode, e.g. validation) the :math:`\mathrm{round}(\alpha k)` largest units are kept.

Makhzani & Frey start training with a larger :math:`k` and lower it to avoid dead units
(units that are never selected). Here ``k_start`` sets the :math:`k` of the first step, which
decreases linearly to ``k`` over the first ``k_schedule`` fraction of the run's optimizer steps
(:func:`scheduled_k`); the schedule follows the :class:`~aekit.train.Trainer`'s progress through
a callback, so it resumes exactly. Raising the number of epochs on resume stretches it. Without
a trainer the variant uses ``k``. The :math:`k` in use is a buffer of the model (saved with
it), so a model keeps the :math:`k` it was trained with. Each epoch the history gets
``dead_units`` (units never in the top :math:`k` during the epoch's training steps) and
``dead_fraction``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..callbacks import Callback
from ..config import option
from ..errors import ConfigError
from ..nn import index_counts
from . import Variant, register

#: k when the option is not given, lowered to the code size when that is smaller.
DEFAULT_K = 25


def round_half_up(x: float) -> int:
    """``x`` rounded to the nearest integer, halves up (``round`` would round halves to even)."""
    return math.floor(x + 0.5)


def scheduled_k(step: int, total_steps: int, k: int, k_start: int | None, fraction: float) -> int:
    r"""The :math:`k` of optimizer step ``step`` (0-based) of a run of ``total_steps`` steps.

    .. math:: k_t = \mathrm{round}\big(k_\mathrm{start} + (k - k_\mathrm{start})\, t / T\big)
              \quad (t < T), \qquad k_t = k \quad (t \ge T)

    with :math:`T` = ``fraction * total_steps``; :math:`k_t = k` throughout when ``k_start`` is None.
    """
    ramp = fraction * total_steps
    if k_start is None or step >= ramp:
        return k
    return round_half_up(k_start + (k - k_start) * step / ramp)


@dataclass
class KSparseOptions:
    """Sparsity level and its schedule."""

    k: int | None = option(
        None, f"code units kept per example in training; unset: {DEFAULT_K}, or the code size if smaller"
    )
    alpha: float = option(1.0, "encoding (and eval mode) keeps round(alpha*k) units, at most the code size")
    k_start: int | None = option(None, "k of the first training step, lowered linearly to k (unset: no schedule)")
    k_schedule: float = option(0.5, "fraction of the training steps over which k goes from k_start to k")

    def validate(self) -> None:
        for name in ("k", "k_start"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"ksparse option {name} must be at least 1, got {value}")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ConfigError(f"ksparse option alpha must be a positive number, got {self.alpha}")
        if not 0 < self.k_schedule <= 1:
            raise ConfigError(f"ksparse option k_schedule must be in (0, 1], got {self.k_schedule}")


@register(
    "ksparse",
    "k-sparse autoencoder (Makhzani & Frey 2014): keep the k largest code units, optionally lowering k during training",
    options=KSparseOptions,
)
class KSparse(Variant):
    """Top-k bottleneck with a scheduled k and per-epoch dead-unit counts.

    Buffers
    -------
    k_current : long scalar
        The k of the next training step (set by the schedule callback; ``k`` initially).
    selected : long ``(latent,)``
        How often each unit was in the top k during the current epoch's training steps.

    Raises
    ------
    ConfigError
        If ``k`` or ``k_start`` exceeds the code size, or ``k_start`` is smaller than ``k``.
    """

    # the buffers (registered in __init__)
    k_current: torch.Tensor
    selected: torch.Tensor

    def __init__(self, config: Any, options: KSparseOptions):
        super().__init__(config, options)
        latent = config.latent
        self.k = options.k if options.k is not None else min(DEFAULT_K, latent)
        for name, value in (("k", options.k), ("k_start", options.k_start)):
            if value is not None and value > latent:
                raise ConfigError(f"ksparse option {name}={value} exceeds the code size (latent={latent})")
        if options.k_start is not None and options.k_start < self.k:
            raise ConfigError(f"ksparse option k_start={options.k_start} must be at least k={self.k}")
        self.register_buffer("k_current", torch.tensor(self.k))
        self.register_buffer("selected", torch.zeros(latent, dtype=torch.long))
        # the host's copy of k_current (follow_schedule), so that a step reads nothing back from the device
        # (a sync per step on an accelerator, and a graph break under --compile); a loaded state reads the buffer
        self._host_k: int | None = None
        self._register_load_state_dict_pre_hook(self._forget_host_k)

    def _forget_host_k(self, *args: Any, **kwargs: Any) -> None:
        self._host_k = None

    def kept(self, training: bool) -> int:
        """Units kept per example: the current k in training, ``round(alpha * k)`` (in [1, latent]) else."""
        k = self._host_k if self._host_k is not None else int(self.k_current)
        if training:
            return k
        return min(max(round_half_up(self.options.alpha * k), 1), self.config.latent)

    @staticmethod
    def _top(h: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``h`` with all but its ``n`` largest entries per row zeroed, and their indices."""
        idx = h.topk(n, dim=1).indices
        return h * torch.zeros_like(h).scatter_(1, idx, 1.0), idx

    def bottleneck(self, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Keep the top :meth:`kept` units; in training, count each unit's selections."""
        z, idx = self._top(h, self.kept(self.training))
        if self.training:
            self.selected += index_counts(idx, self.config.latent)
        return z, {}

    def encode_deterministic(self, h: torch.Tensor) -> torch.Tensor:
        """Keep the ``round(alpha * k)`` largest units (Makhzani & Frey's encoding stage)."""
        return self._top(h, self.kept(False))[0]

    def metrics(self, x, h, z) -> dict[str, torch.Tensor]:
        """``k``: the units kept in this pass (the scheduled k in training, round(alpha*k) in eval)."""
        return {"k": torch.tensor(float(self.kept(self.training)), device=h.device)}

    def follow_schedule(self, step: int, total_steps: int) -> None:
        """Set the k of the next training step, ``step`` (0-based) of ``total_steps``."""
        o = self.options
        self._host_k = scheduled_k(step, total_steps, self.k, o.k_start, o.k_schedule)
        self.k_current.fill_(self._host_k)

    def take_dead_units(self) -> int:
        """Units never selected since the last call (or the start of training); resets the counts."""
        dead = int((self.selected == 0).sum())
        self.selected.zero_()
        return dead

    def callbacks(self) -> list[Callback]:
        return [KSparseCallback(self)]

    def activation_marks(self) -> tuple[float | None, list[tuple[str, Any]]]:
        """The units kept per row at encoding (:meth:`kept` outside training)."""
        return None, [("units kept per row at encoding", self.kept(False))]


class KSparseCallback(Callback):
    """Drives a :class:`KSparse` variant from the trainer: the k schedule before every step and
    the dead-unit report (``dead_units``, ``dead_fraction``) at every epoch end."""

    def __init__(self, variant: KSparse):
        self.variant = variant

    def on_train_begin(self, trainer: Any) -> None:
        if trainer.global_step == 0:  # a resumed run keeps the checkpointed counts of its epoch
            self.variant.selected.zero_()
        self.variant.follow_schedule(trainer.global_step, trainer.total_steps)

    def on_step_end(self, trainer: Any, step: int, losses: dict[str, float]) -> None:
        self.variant.follow_schedule(trainer.global_step, trainer.total_steps)

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        dead = self.variant.take_dead_units()
        record["dead_units"] = dead
        record["dead_fraction"] = dead / self.variant.config.latent
