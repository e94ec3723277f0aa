"""The variant registry: each family is one small file that adds only what differs.

A :class:`Variant` may corrupt the input during training, transform the encoder output
into the code (a bottleneck), and add named penalty terms. Everything else — encoders,
decoders, the trainer, the CLI, run directories — is shared. Variants register themselves
with :func:`register`; options that differ only in a number are fields of the variant's
options dataclass, not new classes.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ConfigError


class Variant(nn.Module):
    """What a family adds to the plain autoencoder; every hook defaults to the identity.

    Subclasses receive the model configuration and their options dataclass.
    """

    #: how many encoder outputs each code unit needs (2 for a Gaussian mean + log-variance)
    encoder_outputs_per_code: int = 1
    #: the encoder / decoder families the variant is defined for
    architectures: tuple[str, ...] = ("mlp", "conv")
    #: whether the model has a prior to sample from and a likelihood bound (the VAE family)
    generative: bool = False

    def __init__(self, config: Any, options: Any):
        super().__init__()
        self.config = config
        self.options = options

    def resample(self, x: torch.Tensor) -> torch.Tensor:
        """Draw the training example itself from ``x`` (e.g. dynamic binarization); unlike
        :meth:`corrupt`, the result is the input *and* the target. Training only."""
        return x

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """Corrupt the input during training (the loss still compares with the clean input)."""
        return x

    def bottleneck(self, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Turn the encoder output into the code; return the code and any loss terms."""
        return h, {}

    def encode_deterministic(self, h: torch.Tensor) -> torch.Tensor:
        """The code used at inference time (``encode``); by default the bottleneck's code."""
        return self.bottleneck(h)[0]

    def reconstruction_nll(self, logits: torch.Tensor, target: torch.Tensor,
                           reduction: str = "mean") -> torch.Tensor | None:
        """The reconstruction term from the decoder's ``logits`` when the variant defines its own
        likelihood (e.g. a Gaussian decoder with a learned variance); None: the model's ``loss``."""
        return None

    def penalty(self, x: torch.Tensor, h: torch.Tensor, z: torch.Tensor,
                model: nn.Module) -> dict[str, torch.Tensor]:
        """Extra named loss terms computed from input, encoder output and code."""
        return {}

    def metrics(self, x: torch.Tensor, h: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named scalar measurements logged in the history but not optimised."""
        return {}

    def callbacks(self) -> list[Any]:
        """Trainer callbacks this variant needs (e.g. per-epoch bookkeeping); none by default."""
        return []

    def pretrain(self, model: nn.Module, train: torch.Tensor, *, seed: int,
                 progress: bool | None = None) -> dict[str, Any] | None:
        """Initialise ``model``'s weights from the training data before gradient training
        (e.g. greedy layer-wise pretraining); called once by :func:`aekit.fit` on a new run,
        never on resume. ``train`` is the training split in model space. Returns a JSON-able
        record (saved as ``pretrain.json`` in the run directory) or None when there is nothing
        to do (the default)."""
        return None


@dataclass(frozen=True)
class VariantSpec:
    """A registry entry: name, the :class:`Variant` class, its options dataclass, a summary."""

    name: str
    cls: type[Variant]
    options: type
    summary: str
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    option_defaults: dict[str, Any] = dataclasses.field(default_factory=dict)


_REGISTRY: dict[str, VariantSpec] = {}


@dataclass
class NoOptions:
    """A variant without options of its own."""


def register(name: str, summary: str, options: type = NoOptions, defaults: dict[str, Any] | None = None,
             option_defaults: dict[str, Any] | None = None) -> Callable[[type[Variant]], type[Variant]]:
    """Class decorator adding a variant to the registry; it may be stacked to register one class
    under several names.

    ``defaults`` overrides model-level defaults for this variant (e.g. a loss);
    ``option_defaults`` overrides defaults of the options dataclass, so that a registry entry can
    be a family member that differs only in numbers (beta-VAE is the VAE with beta = 4).
    """
    def deco(cls: type[Variant]) -> type[Variant]:
        if name in _REGISTRY:
            raise RuntimeError(f"variant {name!r} registered twice")
        opts = _with_defaults(options, option_defaults) if option_defaults else options
        _REGISTRY[name] = VariantSpec(name, cls, opts, summary, dict(defaults or {}), dict(option_defaults or {}))
        return cls
    return deco


def _with_defaults(options: type, values: dict[str, Any]) -> type:
    """A subclass of the options dataclass ``options`` whose fields in ``values`` have new defaults
    (help texts and validation are inherited)."""
    fields = {f.name: f for f in dataclasses.fields(options)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise RuntimeError(f"{options.__name__} has no option(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(options)
    new = [(k, hints[k], dataclasses.field(default=v, metadata=fields[k].metadata)) for k, v in values.items()]
    cls = dataclasses.make_dataclass(options.__name__, new, bases=(options,))
    cls.__module__, cls.__doc__ = options.__module__, options.__doc__
    return cls


def get(name: str) -> VariantSpec:
    """Look a variant up by name (ConfigError listing the known ones if absent)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown variant {name!r}; known variants: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    """Registered variant names, sorted."""
    return sorted(_REGISTRY)


def specs() -> list[VariantSpec]:
    return [_REGISTRY[n] for n in names()]


def _discover() -> None:
    """Import every module of this package: each registers its variant(s)."""
    import importlib
    import pkgutil
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}")


_discover()
