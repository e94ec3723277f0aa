"""Corruption processes of the denoising autoencoder (Vincent et al. 2008, 2010).

A denoising autoencoder reconstructs the clean input :math:`x` from a corrupted copy
:math:`\\tilde x \\sim q_D(\\tilde x \\mid x)`. Vincent, Larochelle, Bengio & Manzagol (2008,
ICML, "Extracting and composing robust features with denoising autoencoders") and Vincent,
Larochelle, Lajoie, Bengio & Manzagol (2010, JMLR 11, "Stacked denoising autoencoders",
section 4.2) use three processes, implemented here as pure functions on tensors:

- masking noise (:func:`mask`): a fraction :math:`\\nu` of the entries of each example is set to 0;
- additive isotropic Gaussian noise (:func:`gaussian`): :math:`\\tilde x = x + \\epsilon`,
  :math:`\\epsilon \\sim \\mathcal N(0, \\sigma^2 I)`;
- salt-and-pepper noise (:func:`salt_and_pepper`): a fraction :math:`\\nu` of the entries of each
  example is set to the minimum or the maximum value, each with probability 1/2.

"A fraction :math:`\\nu`" follows Vincent et al. (2010): "a fixed number :math:`\\nu d` of
components chosen at random" — exactly :func:`n_corrupted` :math:`= \\lfloor \\nu d + 1/2 \\rfloor`
entries of each example (of :math:`d` entries), not an i.i.d. Bernoulli(:math:`\\nu`) count.

:func:`bernoulli` is the Bernoulli draw of the binary units of an RBM (:mod:`aekit.pretrain`) and
of dynamic binarization (:class:`~aekit.variants.vae.VAE`).

Randomness comes from ``generator`` when given, else from torch's global generator (of the
input's device), which the trainer checkpoints, so a training run stays exactly resumable.
Invalid parameters raise :class:`~aekit.errors.ConfigError`. :func:`corrupt` with ``check=False`` is
the same corruption without the check, for a caller that checked the parameters once already (the
denoising variant's options, validated when they are built, corrupt every training batch).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .errors import ConfigError

#: The corruption kinds :func:`corrupt` dispatches on.
NOISE_KINDS = ("mask", "gaussian", "salt_pepper")
#: Default fraction of corrupted entries (mask, salt_pepper) and default Gaussian noise level.
DEFAULT_NU, DEFAULT_SIGMA = 0.25, 0.3


def check_parameters(
    kind: str = "gaussian", *, nu: float = DEFAULT_NU, sigma: float = DEFAULT_SIGMA, low: float = 0.0, high: float = 1.0
) -> None:
    """Raise :class:`~aekit.errors.ConfigError` unless the corruption parameters make sense.

    ``kind`` must be one of :data:`NOISE_KINDS`, :math:`0 \\le \\nu \\le 1`,
    :math:`\\sigma \\ge 0` and finite, ``low <= high`` and both finite.
    """
    if kind not in NOISE_KINDS:
        raise ConfigError(f"unknown noise {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    if not 0.0 <= nu <= 1.0:
        raise ConfigError(f"the noise fraction nu must be in [0, 1], got {nu}")
    if not (sigma >= 0.0 and math.isfinite(sigma)):
        raise ConfigError(f"the noise level sigma must be a finite number >= 0, got {sigma}")
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ConfigError(f"the noise values need finite low <= high, got low={low}, high={high}")


def n_corrupted(nu: float, d: int) -> int:
    """The number of entries of a :math:`d`-entry example that :func:`mask` and
    :func:`salt_and_pepper` corrupt: :math:`\\lfloor \\nu d + 1/2 \\rfloor` (halves round up)."""
    return min(d, math.floor(nu * d + 0.5))


def _draw(sample: Any, shape: tuple[int, ...], x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``sample(shape)`` (``torch.rand`` / ``torch.randn``) from ``generator``'s device, moved to ``x``'s."""
    device = generator.device if generator is not None else x.device
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return sample(shape, generator=generator, device=device, dtype=dtype).to(x.device)


def _choose_entries(x: torch.Tensor, nu: float, generator: torch.Generator | None) -> torch.Tensor:
    """A boolean tensor shaped like ``x`` with exactly :func:`n_corrupted` ``(nu, d)`` entries of
    each example (row of the first axis) set, chosen uniformly at random without replacement."""
    n = x.shape[0]
    d = x[0].numel() if n else 0
    k = n_corrupted(nu, d)
    chosen = torch.zeros(n, d, dtype=torch.bool, device=x.device)
    if k and n:
        keys = _draw(torch.rand, (n, d), x, generator)
        chosen.scatter_(1, keys.topk(k, dim=1, sorted=False).indices, True)
    return chosen.reshape(x.shape)


def mask(x: torch.Tensor, nu: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Masking noise: set a random fraction :math:`\\nu` of each example's entries to 0.

    Vincent et al. (2008, 2010): "for each input :math:`x`, a fixed number :math:`\\nu d` of
    components are chosen at random, and their value is forced to 0, while the others are
    left untouched". Exactly :func:`n_corrupted` entries per example are zeroed.

    Parameters
    ----------
    x : Tensor, shape (N, ...)
        Clean examples along the first axis.
    nu : float in [0, 1]
        Fraction of entries to mask.
    generator : torch.Generator, optional
        Source of randomness (default: torch's global generator).

    Returns
    -------
    Tensor
        A new tensor shaped like ``x``.
    """
    check_parameters("mask", nu=nu)
    return _mask(x, nu, generator)


def _mask(x: torch.Tensor, nu: float, generator: torch.Generator | None) -> torch.Tensor:
    return x.masked_fill(_choose_entries(x, nu, generator), 0)


def gaussian(
    x: torch.Tensor, sigma: float, generator: torch.Generator | None = None, clip: tuple[float, float] | None = None
) -> torch.Tensor:
    """Additive isotropic Gaussian noise, :math:`\\tilde x = x + \\epsilon`, :math:`\\epsilon \\sim
    \\mathcal N(0, \\sigma^2 I)` (Vincent et al. 2010, section 4.2).

    Parameters
    ----------
    x : Tensor
        Clean examples.
    sigma : float >= 0
        Standard deviation of the noise.
    generator : torch.Generator, optional
        Source of randomness (default: torch's global generator).
    clip : (lo, hi), optional
        Clamp the corrupted values to ``[lo, hi]`` (e.g. the data range ``(0, 1)``).

    Returns
    -------
    Tensor
        A new tensor shaped like ``x``.
    """
    check_parameters("gaussian", sigma=sigma)
    noisy = _gaussian(x, sigma, generator)
    if clip is not None:
        lo, hi = clip
        check_parameters("gaussian", sigma=sigma, low=lo, high=hi)
        noisy = noisy.clamp(lo, hi)
    return noisy


def _gaussian(x: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    return x + sigma * _draw(torch.randn, tuple(x.shape), x, generator)


def salt_and_pepper(
    x: torch.Tensor, nu: float, low: float = 0.0, high: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Salt-and-pepper noise: set a random fraction :math:`\\nu` of each example's entries to
    ``low`` or ``high``, each with probability 1/2 (Vincent et al. 2008, 2010).

    Exactly :func:`n_corrupted` entries per example are chosen at random (as for :func:`mask`);
    each is then set to ``low`` or ``high`` by a fair coin. Vincent et al. use the minimum
    and the maximum possible values of the data.

    Parameters
    ----------
    x : Tensor, shape (N, ...)
        Clean examples along the first axis.
    nu : float in [0, 1]
        Fraction of entries to corrupt.
    low, high : float
        The "pepper" and "salt" values (default 0 and 1, the range of unit-scaled data).
    generator : torch.Generator, optional
        Source of randomness (default: torch's global generator).

    Returns
    -------
    Tensor
        A new tensor shaped like ``x``.
    """
    check_parameters("salt_pepper", nu=nu, low=low, high=high)
    return _salt_and_pepper(x, nu, low, high, generator)


def _salt_and_pepper(
    x: torch.Tensor, nu: float, low: float, high: float, generator: torch.Generator | None
) -> torch.Tensor:
    chosen = _choose_entries(x, nu, generator)
    salt = _draw(torch.rand, tuple(x.shape), x, generator) < 0.5
    values = torch.where(
        salt,
        torch.as_tensor(high, dtype=x.dtype, device=x.device),
        torch.as_tensor(low, dtype=x.dtype, device=x.device),
    )
    return torch.where(chosen, values, x)


def corrupt(
    x: torch.Tensor,
    kind: str,
    *,
    nu: float = DEFAULT_NU,
    sigma: float = DEFAULT_SIGMA,
    low: float = 0.0,
    high: float = 1.0,
    clip: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    check: bool = True,
) -> torch.Tensor:
    """Apply the corruption process named ``kind`` (one of :data:`NOISE_KINDS`).

    ``mask`` uses ``nu``; ``gaussian`` uses ``sigma`` and ``clip``; ``salt_pepper`` uses
    ``nu``, ``low`` and ``high``. See :func:`mask`, :func:`gaussian`, :func:`salt_and_pepper`.
    ``check=False`` skips :func:`check_parameters` (the same draws, the same result): for
    parameters it accepted already, once, rather than on every training batch (``clip`` too, its
    bounds as ``low`` and ``high``); invalid ones then give undefined results.
    """
    if check:
        check_parameters(kind, nu=nu, sigma=sigma, low=low, high=high)
        if kind == "gaussian" and clip is not None:
            check_parameters("gaussian", sigma=sigma, low=clip[0], high=clip[1])
    if kind == "mask":
        return _mask(x, nu, generator)
    if kind == "gaussian":
        noisy = _gaussian(x, sigma, generator)
        return noisy.clamp(*clip) if clip is not None else noisy
    return _salt_and_pepper(x, nu, low, high, generator)


def bernoulli(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Bernoulli draw of each entry of ``p``: 1 with probability ``p``, else 0.

    Drawn as ``u < p`` with ``u`` uniform on [0, 1): the distribution of ``torch.bernoulli(p)``
    (values below 0 or above 1 act as 0 or 1), but a vectorized kernel, about 3x faster on CPU.
    ``u`` is ``torch.rand_like(p)`` (from ``generator`` when given), which for a contiguous ``p`` is
    ``torch.rand(p.shape)``: the same random numbers.

    Parameters
    ----------
    p : Tensor
        Probabilities, floating point.
    generator : torch.Generator, optional
        Source of randomness, on ``p``'s device (default: torch's global generator).

    Returns
    -------
    Tensor
        A new tensor of 0s and 1s, shaped like ``p`` and of its dtype.
    """
    u = torch.empty_like(p).uniform_(generator=generator)  # torch.rand_like(p), with a generator
    return (u < p).to(p.dtype)
