r"""The linear autoencoder of Baldi & Hornik (1989): encoder ``x -> Wx + b``, decoder ``z -> Vz + c``.

Baldi, P. & Hornik, K. (1989). Neural networks and principal component analysis: learning
from examples without local minima. *Neural Networks* 2(1), 53-58.

With the squared error :math:`\sum_n \lVert x_n - V(Wx_n + b) - c \rVert^2` every local
minimum is global, and at the minimum the column space of :math:`V` is the span of the top
``latent`` principal components of the data: the linear autoencoder learns the PCA subspace
(not, in general, the orthonormal principal directions themselves). Linear hidden layers
change nothing — a deep linear map is still a single linear map of the same rank.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from . import Variant, register

_LINEAR_SETTINGS = {
    "activation": "linear",
    "code_activation": "linear",
    "output_activation": "linear",
    "loss": "mse",
    "architecture": "mlp",
}


@register(
    "linear",
    "linear autoencoder (Baldi & Hornik 1989): learns the PCA subspace with squared error",
    defaults={
        "hidden": (),
        "activation": "linear",
        "code_activation": "linear",
        "loss": "mse",
        "output_activation": "linear",
    },
)
class Linear(Variant):
    """Adds nothing to the objective; refuses any setting that would make the model non-linear.

    Raises
    ------
    ConfigError
        If an activation, the output activation or the loss is not the linear / squared-error
        one, or the architecture is not ``mlp``.
    """

    architectures = ("mlp",)

    def __init__(self, config, options):
        super().__init__(config, options)
        wrong = [
            f"{k}={getattr(config, k)!r} (needs {v!r})" for k, v in _LINEAR_SETTINGS.items() if getattr(config, k) != v
        ]
        if wrong:
            raise ConfigError(
                f"the linear variant is a linear autoencoder with squared error, so it cannot use {', '.join(wrong)}"
            )


def affine_maps(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The end-to-end affine maps of a linear autoencoder, composed through any hidden layers.

    Parameters
    ----------
    model : Autoencoder
        A model of the ``linear`` variant (flat inputs of ``input_dim`` features).

    Returns
    -------
    W, b, V, c : Tensor
        Encoder ``z = W x + b`` (``W``: ``(latent, input_dim)``) and decoder
        ``x_hat = V z + c`` (``V``: ``(input_dim, latent)``), detached, in float64.
    """
    cfg = model.config
    with torch.no_grad():
        device = next(model.parameters()).device
        eye_x = torch.eye(cfg.input_dim, device=device)
        eye_z = torch.eye(cfg.latent, device=device)
        b = model.encode(torch.zeros(1, cfg.input_dim, device=device))[0]
        c = model.decode(torch.zeros(1, cfg.latent, device=device))[0]
        W = (model.encode(eye_x) - b).T
        V = (model.decode(eye_z) - c).T
    return W.double(), b.double(), V.double(), c.double()
