"""Building blocks shared by every variant: MLP and convolutional encoder/decoder pairs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from .errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "linear": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module by name (``"linear"`` is the identity)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


class MLP(nn.Sequential):
    """Fully connected stack ``in -> hidden... -> out``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths including input and output, e.g. ``(784, 1000, 500, 30)``.
    activation : str
        Activation after every hidden layer.
    last_activation : str
        Activation after the last layer (``"linear"`` for none).

    Shape:
        - Input: :math:`(N, sizes[0])`
        - Output: :math:`(N, sizes[-1])`
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", last_activation: str = "linear"):
        if len(sizes) < 2:
            raise ConfigError("an MLP needs at least an input and an output size")
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            last = i == len(sizes) - 2
            act = last_activation if last else activation
            if act != "linear":
                layers.append(make_activation(act))
        super().__init__(*layers)

    @property
    def linears(self) -> list[nn.Linear]:
        """The linear layers in order (useful for weight initialisation and filters)."""
        return [m for m in self if isinstance(m, nn.Linear)]


class TiedLinear(nn.Module):
    """A linear layer whose weight is the transpose of another layer's (it owns only its bias).

    Shape:
        - Input: ``(N, source.out_features)``
        - Output: ``(N, source.in_features)``
    """

    def __init__(self, source: nn.Linear):
        super().__init__()
        self.source = [source]  # a list keeps the source out of this module's parameters
        self.bias = nn.Parameter(torch.zeros(source.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.source[0].weight.t(), self.bias)


class TiedMLP(nn.Sequential):
    """The mirror of an :class:`MLP` encoder using the transposes of its weights (tied weights)."""

    def __init__(self, encoder: MLP, activation: str = "relu"):
        layers: list[nn.Module] = []
        linears = encoder.linears
        for i, lin in enumerate(reversed(linears)):
            layers.append(TiedLinear(lin))
            if i < len(linears) - 1 and activation != "linear":
                layers.append(make_activation(activation))
        super().__init__(*layers)


#: kernel sizes of the stride-2, padding-1 convolutions (3: aekit's default; 4: Burgess et al. 2018)
CONV_KERNELS = (3, 4)


def index_counts(idx: torch.Tensor, n: int) -> torch.Tensor:
    """How often each of ``0 .. n-1`` occurs in the integer tensor ``idx``, shape ``(n,)`` (int64): ``bincount``
    with its length fixed by ``n`` rather than by the values, so that a compiled step (``--compile``) traces it
    into its graph (bincount's output shape depends on the data: a graph break)."""
    flat = idx.reshape(-1)
    return torch.zeros(n, dtype=torch.long, device=idx.device).index_add_(0, flat, torch.ones_like(flat))


def conv_sizes(height: int, width: int, n_layers: int, kernel: int = 3) -> list[tuple[int, int]]:
    """Spatial sizes along a stride-2 encoder (padding 1): ``ceil(h / 2)`` per layer with kernel 3,
    ``floor(h / 2)`` with kernel 4."""
    if kernel not in CONV_KERNELS:
        raise ConfigError(f"the convolution kernel must be one of {', '.join(map(str, CONV_KERNELS))}, got {kernel}")
    half = math.ceil if kernel == 3 else math.floor
    sizes = [(height, width)]
    for _ in range(n_layers):
        h, w = sizes[-1]
        sizes.append((half(h / 2), half(w / 2)))
    return sizes


class ConvEncoder(nn.Module):
    """Stride-2 convolutions (kernel 3 or 4, padding 1), the fully connected layers ``dense``, then a
    linear map to the code. Burgess et al. (2018) on dSprites: ``channels=(32, 32, 64, 64)``,
    ``kernel=4``, ``dense=(256,)`` (disentanglement_lib's ``conv_encoder``).

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, latent)`
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: Sequence[int],
        latent: int,
        activation: str = "relu",
        last_activation: str = "linear",
        kernel: int = 3,
        dense: Sequence[int] = (),
    ):
        super().__init__()
        c, h, w = image_shape
        if not channels:
            raise ConfigError("a convolutional encoder needs at least one channel count in --hidden")
        fh, fw = conv_sizes(h, w, len(channels), kernel)[-1]
        if fh < 1 or fw < 1:
            raise ConfigError(
                f"{len(channels)} stride-2 convolutions of kernel {kernel} leave nothing of {h}x{w} images"
            )
        layers: list[nn.Module] = []
        for c_in, c_out in zip([c, *channels[:-1]], channels):
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=2, padding=1), make_activation(activation)]
        self.features = nn.Sequential(*layers)
        self.head = MLP([channels[-1] * fh * fw, *dense, latent], activation, last_activation=last_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: linear maps (through ``dense`` reversed), then stride-2
    transposed convolutions.

    The ``output_padding`` of each transposed convolution is chosen so that odd sizes
    (7 -> 4 -> 7 for 28x28 images with kernel 3) come back exactly.

    Shape:
        - Input: :math:`(N, latent)`
        - Output: :math:`(N, C, H, W)` (pre-activation: logits or linear values)
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: Sequence[int],
        latent: int,
        activation: str = "relu",
        kernel: int = 3,
        dense: Sequence[int] = (),
    ):
        super().__init__()
        c, h, w = image_shape
        sizes = conv_sizes(h, w, len(channels), kernel)
        rev = list(reversed(channels))
        self.start = (rev[0], *sizes[-1])
        flat = rev[0] * sizes[-1][0] * sizes[-1][1]
        self.head = MLP([latent, *reversed(dense), flat], activation, last_activation=activation)
        layers: list[nn.Module] = []
        outs = [*rev[1:], c]
        for i, (c_in, c_out) in enumerate(zip(rev, outs)):
            th, tw = sizes[len(channels) - 1 - i]
            pad = (1 - th % 2, 1 - tw % 2) if kernel == 3 else (th % 2, tw % 2)
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=1, output_padding=pad))
            if i < len(channels) - 1:
                layers.append(make_activation(activation))
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(self.head(z).view(-1, *self.start))
