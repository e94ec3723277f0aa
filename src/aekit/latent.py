r"""Uses of the code space: sampling from the prior, interpolation and latent traversals.

Every function takes a trained :class:`~aekit.model.Autoencoder` (or a run directory), works on
codes (the posterior mean for the VAE family) and returns decoded data in the original units
(the run's transform inverted), rows of ``input_dim`` values. For a Bernoulli decoder the decoded
values are the means (pixel probabilities), as VAE figures show them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import io
from .errors import ConfigError

#: Interpolation paths: straight lines, or great circles (White 2016, "Sampling generative networks").
INTERPOLATIONS = ("linear", "spherical")
#: Limits of the sizes requested from these functions.
MAX_ROWS = 1 << 20


def _model(model: Any) -> Any:
    return io.load(model) if isinstance(model, (str, Path)) else model


def _check_count(name: str, n: int, least: int = 1) -> None:
    if not isinstance(n, (int, np.integer)) or not least <= n <= MAX_ROWS:
        raise ConfigError(f"{name} must be an integer between {least} and {MAX_ROWS}, got {n!r}")


def sample(model: Any, n: int = 64, *, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    r"""Draw ``n`` codes from the model's prior (``model.variant.prior``; :math:`\mathcal N(0, I)` for the
    VAE family) and decode them.

    Parameters
    ----------
    model : Autoencoder or run directory
        A model with a prior (the VAE family).
    n : int
        Number of samples.
    seed : int
        Seed of the draw (same seed, same samples).
    temperature : float
        Scale of the prior's standard deviation (1: the prior itself).

    Returns
    -------
    ndarray, shape (n, D)
    """
    model = _model(model)
    prior = model.variant.prior
    if prior is None:
        raise ConfigError(
            f"sampling needs a model with a prior to draw codes from; this is a "
            f"{model.variant.describe()} model, which has none"
        )
    _check_count("n", n)
    if not (np.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature must be a positive number, got {temperature}")
    gen = torch.Generator().manual_seed(int(seed))
    z = prior.sample(n, generator=gen, temperature=temperature)
    return model.decode_array(z.numpy())


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    r"""Spherical interpolation between codes ``a`` and ``b`` at fractions ``t``:

    .. math:: \frac{\sin((1 - t)\Omega)}{\sin \Omega} a + \frac{\sin(t \Omega)}{\sin \Omega} b,
              \qquad \cos \Omega = \frac{a \cdot b}{\lVert a \rVert \lVert b \rVert},

    falling back to the straight line when the two codes are (anti)parallel or zero.
    """
    a, b, t = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(t, np.float64)[:, None]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return (1 - t) * a + t * b
    omega = np.arccos(np.clip(a @ b / (na * nb), -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolate(model: Any, a: Any, b: Any, steps: int = 10, *, method: str = "linear") -> np.ndarray:
    """Decode the path between the codes of two inputs.

    Parameters
    ----------
    model : Autoencoder or run directory
        Any trained model; the codes are its deterministic codes (posterior means for VAEs).
    a, b : array-like, shape (D,) or (1, D)
        The two inputs, in the units of the training data.
    steps : int
        Points on the path, ends included (at least 2).
    method : {"linear", "spherical"}

    Returns
    -------
    ndarray, shape (steps, D)
        Row 0 decodes ``a``'s code, the last row ``b``'s.
    """
    model = _model(model)
    if method not in INTERPOLATIONS:
        raise ConfigError(f"interpolation method must be one of {', '.join(INTERPOLATIONS)}, got {method!r}")
    _check_count("steps", steps, least=2)
    codes = model.encode_array(
        np.stack([np.asarray(a, np.float32).reshape(-1), np.asarray(b, np.float32).reshape(-1)]),
        where="interpolation inputs",
    )
    t = np.linspace(0.0, 1.0, steps)
    z = (1 - t)[:, None] * codes[0] + t[:, None] * codes[1] if method == "linear" else slerp(codes[0], codes[1], t)
    return model.decode_array(z)


def traverse(
    model: Any, x: Any = None, *, dims: Any = None, steps: int = 9, limit: float = 3.0, data: Any = None
) -> tuple[np.ndarray, list[int], np.ndarray]:
    r"""Latent traversals: vary one code dimension at a time, the others fixed, and decode.

    The base code is the code of ``x`` (the posterior mean), or without ``x`` the prior mean (0 for
    the VAE family). Dimension :math:`j` takes ``steps`` values in ``base_j + s_j [-limit, limit]``,
    where :math:`s_j` is the prior's standard deviation of dimension :math:`j` for models with a
    prior (1 for the standard normal of the VAE family, Higgins et al. 2017) and otherwise the
    standard deviation of code :math:`j` over ``data`` (which those models need; without ``x`` the
    base is then the mean code of ``data``).

    Parameters
    ----------
    model : Autoencoder or run directory
    x : array-like, shape (D,), optional
        The input whose code is varied.
    dims : sequence of int, optional
        Dimensions to traverse (default: all).
    steps : int
        Values per dimension (at least 2).
    limit : float
        Half-width of the range in units of :math:`s_j`.
    data : array-like, shape (N, D), optional
        Inputs from which a model without a prior takes the spread of each code dimension.

    Returns
    -------
    images : ndarray, shape (len(dims) * steps, D)
        Row ``i * steps + k``: dimension ``dims[i]`` at its ``k``-th value.
    dims : list of int
    values : ndarray, shape (len(dims), steps)
        The code values used.
    """
    model = _model(model)
    latent = model.config.latent
    _check_count("steps", steps, least=2)
    if not (np.isfinite(limit) and limit > 0):
        raise ConfigError(f"limit must be a positive number, got {limit}")
    dims = list(range(latent)) if dims is None else [int(d) for d in dims]
    bad = [d for d in dims if not 0 <= d < latent]
    if bad or not dims:
        raise ConfigError(f"dims must be code dimensions between 0 and {latent - 1}, got {bad or dims}")
    prior = model.variant.prior
    if x is not None:
        base = model.encode_array(np.asarray(x, np.float32).reshape(1, -1), where="traversal input")[0]
    else:
        base = prior.mean() if prior is not None else np.zeros(latent, np.float32)
    if prior is not None:
        spread = prior.std()
    else:
        if data is None or len(np.asarray(data)) < 2:
            raise ConfigError(
                f"traversing a {model.config.variant!r} model (no prior) needs data (at least 2 "
                f"rows) to measure the spread of each code dimension"
            )
        spread = model.encode_array(data, where="traversal data").std(0)
        if x is None:
            base = model.encode_array(data, where="traversal data").mean(0)
    offsets = np.linspace(-limit, limit, steps)
    values = np.stack([base[d] + spread[d] * offsets for d in dims])
    z = np.repeat(base[None, :], len(dims) * steps, axis=0).astype(np.float64)
    for i, d in enumerate(dims):
        z[i * steps : (i + 1) * steps, d] = values[i]
    return model.decode_array(z), dims, values
