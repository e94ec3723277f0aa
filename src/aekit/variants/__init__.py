"""The variant registry: each family is one small file that adds only what differs.

A :class:`Variant` may corrupt the input during training, transform the encoder output
into the code (a bottleneck), and add named penalty terms. Everything else — encoders,
decoders, the trainer, the CLI, run directories — is shared. Variants register themselves
with :func:`register`; options that differ only in a number are fields of the variant's
options dataclass, not new classes.

A variant's capabilities are methods and attributes of :class:`Variant` with a default that the
variants having the capability override: a prior to sample (:attr:`Variant.prior`), likelihood
bounds (:meth:`Variant.likelihood_bounds`), the anomaly score of a row and its complexity correction
(:meth:`Variant.anomaly_scores`, :meth:`Variant.correct_for_complexity`, :meth:`Variant.score_units`),
what the report marks (:attr:`Variant.code_name`, :meth:`Variant.activation_marks`), whether the
training data must be in memory (:meth:`Variant.in_memory_reason`) and layer-wise pretraining
(:meth:`Variant.pretrain`; :func:`layerwise` names the variant that has it). The modules above the
registry call these and never name a variant.

The variant files are imported explicitly at the end of this module (each registers its
variant(s)); a variant file imports only :mod:`aekit.errors`, :mod:`aekit.callbacks`, the pure
modules (:mod:`aekit.losses`, :mod:`aekit.bounds`, :mod:`aekit.config`, :mod:`aekit.nn`,
:mod:`aekit.noise`) and this package.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..metrics import ResidualNorm


class Model(Protocol):
    """What the variants use of the :class:`~aekit.model.Autoencoder` whose variant they are (the
    model module imports this package, so the variants name the model by this protocol)."""

    config: Any
    transform: Any
    encoder: nn.Module
    decoder: nn.Module
    training: bool

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def batched(self, X: np.ndarray, fn: Any, batch_size: int) -> np.ndarray: ...

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor: ...


class Variant(nn.Module):
    """What a family adds to the plain autoencoder; every hook defaults to the identity.

    Subclasses receive the model configuration and their options dataclass.
    """

    #: how many encoder outputs each code unit needs (2 for a Gaussian mean + log-variance)
    encoder_outputs_per_code: int = 1
    #: the encoder / decoder families the variant is defined for
    architectures: tuple[str, ...] = ("mlp", "conv")
    #: what :meth:`~aekit.model.Autoencoder.encode` returns, in words (the report's captions)
    code_name: str = "codes"
    #: whether :meth:`anomaly_scores` sums a reconstruction residual (so takes a
    #: :class:`~aekit.metrics.ResidualNorm`); False for a score that is not (the VAE family's ELBO)
    scores_residual: bool = True

    def __init__(self, config: Any, options: Any):
        super().__init__()
        self.config = config
        self.options = options

    def describe(self) -> str:
        """The variant in words, for a message: its registered name and summary."""
        name = self.config.variant
        spec = _REGISTRY.get(name)
        return f"{name!r} ({spec.summary})" if spec is not None else repr(name)

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

    def reconstruction_nll(
        self, logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor | None:
        """The reconstruction term from the decoder's ``logits`` when the variant defines its own
        likelihood (e.g. a Gaussian decoder with a learned variance); None: the model's ``loss``."""
        return None

    def penalty(self, x: torch.Tensor, h: torch.Tensor, z: torch.Tensor, model: Model) -> dict[str, torch.Tensor]:
        """Extra named loss terms computed from input, encoder output and code."""
        return {}

    def metrics(self, x: torch.Tensor, h: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named scalar measurements logged in the history but not optimised."""
        return {}

    def callbacks(self) -> list[Any]:
        """Trainer callbacks this variant needs (e.g. per-epoch bookkeeping); none by default."""
        return []

    # -- an auxiliary model with its own optimizer and update --------------------------------------
    def auxiliary_parameters(self) -> list[nn.Parameter]:
        """The parameters of an auxiliary model the variant trains itself (e.g. FactorVAE's
        discriminator): the trainer's optimizer leaves them alone. They are parameters of the model
        (saved, moved and checkpointed with it); none by default."""
        return []

    def auxiliary_optimizer(self) -> torch.optim.Optimizer | None:
        """A fresh optimizer of :meth:`auxiliary_parameters`, made by the trainer at the start of a fit
        (the variant keeps it for :meth:`auxiliary_step`; the trainer checkpoints its state); None (the
        default): nothing of the kind."""
        return None

    def auxiliary_step(self, x: torch.Tensor, out: Any, model: Model) -> dict[str, torch.Tensor]:
        """One update of the auxiliary model, called by the trainer after every optimizer step on the same
        training batch ``x`` with that step's forward output ``out`` (an :class:`~aekit.model.Output`);
        returns named scalar metrics for the history. Only called when :meth:`auxiliary_optimizer` made one."""
        return {}

    # -- layer-wise pretraining --------------------------------------------------------------
    def pretrain(
        self,
        model: Model,
        train: torch.Tensor,
        *,
        seed: int,
        progress: bool | None = None,
        train_layer: Callable[..., Any] | None = None,
    ) -> dict[str, Any] | None:
        """Initialise ``model``'s weights from the training data before gradient training
        (e.g. greedy layer-wise pretraining); called once by :func:`aekit.fit` on a new run,
        never on resume. ``train`` is the training split in model space. ``train_layer`` trains
        one layer model by gradient descent (:func:`aekit.pretrain.train_layer`, built on the
        Trainer, which the variants do not import; :func:`aekit.fit` passes it). Returns a
        JSON-able record (saved as ``pretrain.json`` in the run directory) or None when there is
        nothing to do (the default)."""
        return None

    @classmethod
    def in_memory_reason(cls, options: Any) -> str | None:
        """Why a run of this variant with ``options`` (its options dataclass) needs its training data
        in memory, as the sentence of the error that refuses streamed data; None (the default): it
        trains on streamed data too."""
        return None

    # -- the prior and the likelihood -------------------------------------------------------------
    @property
    def prior(self) -> Any:
        """The prior over codes to sample from (the VAE family: :class:`aekit.bounds.StandardNormal`),
        or None (the default): the model has none. A prior has ``sample(n, *, generator, temperature)``
        (a ``(n, latent)`` tensor), ``mean()`` and ``std()`` (arrays of shape ``(latent,)``: the base
        and the unit of a latent traversal) and ``description`` (e.g. ``"N(0, I)"``)."""
        return None

    def likelihood_bounds(
        self, model: Model, X: np.ndarray, k: int, *, seed: int = 0, batch_size: int = 100, max_rows: int = 65536
    ) -> dict[str, Any] | None:
        """Bounds on the negative log-likelihood of the model-space rows ``X`` (the VAE family: the
        negative ELBO and the importance-weighted estimate with ``k`` samples, see
        :func:`aekit.evaluation.likelihood_bounds`); None (the default): the model has no likelihood."""
        return None

    # -- anomaly scores ---------------------------------------------------------------------------
    def anomaly_scores(
        self,
        model: Model,
        X: np.ndarray,
        *,
        elbo_samples: int = 32,
        batch_size: int = 4096,
        norm: ResidualNorm | None = None,
    ) -> np.ndarray:
        """The anomaly score of each model-space row of ``X`` (higher: less like the training data),
        computed in ``X``'s precision. The default: the summed squared reconstruction error
        ``||x - g(f(x))||^2`` in the input's units (the run's scaling inverted), or the residual
        summed as ``norm`` says (:class:`aekit.metrics.ResidualNorm`: absolute values, a Gaussian
        smoothing of each image's residual; the image shape, where the norm has none, is the
        model's data's); ``elbo_samples`` is for variants that score by a Monte Carlo estimate (the
        VAE family: minus the ELBO)."""
        return self.residual_norm(model, norm).scores(self.residuals(model, X, batch_size))

    def residuals(self, model: Model, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """``x - g(f(x))`` of each model-space row of ``X``, in the input's units (the run's
        scaling inverted) and ``X``'s precision: what a reconstruction-error score sums."""
        recon = model.batched(X, model.reconstruct, batch_size)
        if model.transform is not None:  # errors in the input's units
            X, recon = (model.transform.invert(a, dtype=X.dtype) for a in (X, recon))
        return X - recon

    @staticmethod
    def residual_norm(model: Model, norm: ResidualNorm | None) -> ResidualNorm:
        """``norm`` (the default when None) with the model's image shape where it has none."""
        return (norm or ResidualNorm()).with_shape(model.config.image_shape)

    @classmethod
    def check_norm(cls, norm: ResidualNorm | None, name: str) -> None:
        """:class:`ConfigError` where ``norm`` asks a variant whose score is no residual
        (:attr:`scores_residual` False; ``name``: its registered name) to sum one differently."""
        if not cls.scores_residual and norm is not None and not norm.is_default:
            raise ConfigError(
                f"a {name} model scores by minus the ELBO, not by a reconstruction error: "
                f"error={norm.error!r} and smoothing={norm.smoothing:g} do not apply"
            )

    def correct_for_complexity(self, scores: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Anomaly ``scores`` of :meth:`anomaly_scores` corrected by the rows' input complexity ``bits``
        (:func:`aekit.metrics.input_complexity`; Serra et al. 2020). The default divides a
        reconstruction error by :math:`L(x)`: an error per bit of input."""
        return scores / bits

    def score_units(self, complexity: bool = False, norm: ResidualNorm | None = None) -> str:
        """What :meth:`anomaly_scores` measures, in words (with ``complexity``: after
        :meth:`correct_for_complexity`; with ``norm``, the residual summed so), e.g. for the CLI's
        ``score`` message."""
        return (norm or ResidualNorm()).describe() + (" per bit of input complexity" if complexity else "")

    # -- what the report shows ----------------------------------------------------------------------
    def activation_marks(self) -> tuple[float | None, list[tuple[str, Any]]]:
        """What the report's activation section marks for this variant: the target mean activation
        drawn on the histogram (None: no target, the default) and extra ``(measure, value)`` rows of
        its table (none by default)."""
        return None, []

    # -- deployment ---------------------------------------------------------------------------------
    def export_reason(self, part: str) -> str | None:
        """Why the ``part`` (``"encoder"``, ``"decoder"`` or ``"autoencoder"``) of a model of this variant
        cannot be written as an ONNX graph (:func:`aekit.export.export_onnx`), as one sentence; None (the
        default): it can. The graph computes what :meth:`encode_deterministic` and the decoder compute in
        eval mode (the VAE family's posterior mean, the k-sparse top-k code, the hashing bits), so a
        variant whose inference needs more than a fixed graph of tensor operations says so here."""
        return None

    def networks(self) -> tuple[nn.Module, nn.Module] | None:
        """The ``(encoder, decoder)`` this variant builds for itself from its config (a VQ-VAE's
        spatial code: convolutions to a map of code vectors and back), or None (the default): the
        model builds the shared MLP or convolutional networks of ``config.architecture``. The encoder
        maps ``(N, input_dim)`` (or images) to ``(N, latent * encoder_outputs_per_code)``, the decoder
        ``(N, latent)`` back to the input's shape."""
        return None


@dataclass(frozen=True)
class VariantSpec:
    """A registry entry: name, the :class:`Variant` class, its options dataclass, a summary, and
    for the variant that pretrains layer by layer its methods with the options each one uses."""

    name: str
    cls: type[Variant]
    options: type
    summary: str
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    option_defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    layerwise: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


_REGISTRY: dict[str, VariantSpec] = {}


@dataclass
class NoOptions:
    """A variant without options of its own."""


def register(
    name: str,
    summary: str,
    options: type = NoOptions,
    defaults: dict[str, Any] | None = None,
    option_defaults: dict[str, Any] | None = None,
    layerwise: dict[str, tuple[str, ...]] | None = None,
) -> Callable[[type[Variant]], type[Variant]]:
    """Class decorator adding a variant to the registry; it may be stacked to register one class
    under several names.

    ``defaults`` overrides model-level defaults for this variant (e.g. a loss);
    ``option_defaults`` overrides defaults of the options dataclass, so that a registry entry can
    be a family member that differs only in numbers (beta-VAE is the VAE with beta = 4).
    ``layerwise`` declares layer-wise pretraining (:meth:`Variant.pretrain`, what ``aekit pretrain``
    runs): each method's name and the options used by that method only.
    """

    def deco(cls: type[Variant]) -> type[Variant]:
        if name in _REGISTRY:
            raise RuntimeError(f"variant {name!r} registered twice")
        opts = _with_defaults(options, option_defaults) if option_defaults else options
        _REGISTRY[name] = VariantSpec(
            name, cls, opts, summary, dict(defaults or {}), dict(option_defaults or {}), dict(layerwise or {})
        )
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


def layerwise() -> VariantSpec:
    """The registry entry of the variant that pretrains layer by layer (the one registered with
    ``layerwise=...``: what ``aekit pretrain`` and the stacked classifier train)."""
    found = [spec for spec in specs() if spec.layerwise]
    if len(found) != 1:
        raise ConfigError(f"expected one variant with layer-wise pretraining, found {len(found)}")
    return found[0]


# the variant files, each registering its variant(s), in the registry's order of insertion (stacks.py,
# the layer-wise machinery, registers nothing: deep.py imports it)
from . import (  # noqa: E402, F401 (they import Variant)
    compressive,
    contractive,
    deep,
    denoising,
    dipvae,
    factorvae,
    hashing,
    ksparse,
    linear,
    plain,
    sparse,
    tcvae,
    vae,
    vqvae,
)
