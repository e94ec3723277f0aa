"""The deep autoencoder of Hinton & Salakhutdinov (2006), pretrained layer by layer.

Hinton, G. E. & Salakhutdinov, R. R. (2006). Reducing the dimensionality of data with neural
networks. *Science* 313(5786), 504-507. Vincent, P. et al. (2010). Stacked denoising
autoencoders. *JMLR* 11, 3371-3408.

The model is the plain MLP autoencoder with H&S's units: logistic hidden units, a linear code
layer, logistic outputs and the Bernoulli cross-entropy (the defaults registered below). Before
gradient training, the :meth:`Deep.pretrain` hook (called once by :func:`aekit.fit` on a new run)
initialises it from a greedily trained stack (:mod:`aekit.variants.stacks`, whose names
:mod:`aekit.pretrain` gives its users):

- ``--pretrain rbm`` (the default: what the paper does): a stack of RBMs, each trained by CD-k or
  persistent CD on the hidden probabilities of the one below; the bottom RBM's visible units are
  the decoder's output units (Bernoulli for logistic outputs, Gaussian for linear ones: ``--loss
  mse``, best with ``--scale standard``), the top RBM's hidden units the code's (linear for H&S's
  code layer, Bernoulli for a logistic code);
- ``--pretrain dae``: a stack of one-hidden-layer denoising autoencoders, each trained on the clean
  codes of the layer below (Vincent et al. 2010);
- ``--pretrain none``: random initialisation (the baseline; also the fastest).

The stack is unrolled: encoder from the stack's weights, decoder from their transposes (untied
parameters), and the whole autoencoder is then fine-tuned by the ordinary Trainer on the
cross-entropy. The per-layer, per-epoch pretraining history is saved as ``pretrain.json``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from .. import noise as corruption
from ..config import from_dict, option
from ..errors import ConfigError
from . import Model, Variant, register
from .stacks import LayerTrainer, RBMConfig, stack_denoising, stack_record, train_dbn, unroll, visible_units

PRETRAIN_METHODS = ("none", "rbm", "dae")
#: the options used by RBM pretraining only and by denoising pretraining only
RBM_OPTIONS = ("cd_k", "persistent", "rbm_lr", "code_lr", "rbm_weight_decay")
DAE_OPTIONS = ("noise", "nu", "sigma", "dae_lr")
_RBM = RBMConfig()  # H&S's defaults, shared


@dataclass
class DeepOptions:
    """Layer-wise pretraining of the deep autoencoder (H&S 2006's defaults for the RBMs)."""

    pretrain: str = option(
        "rbm",
        "layer-wise pretraining: rbm = a deep belief net of RBMs (Hinton & Salakhutdinov "
        "2006), dae = stacked denoising autoencoders (Vincent et al. 2010), "
        "none = random initialisation",
        choices=PRETRAIN_METHODS,
    )
    pretrain_epochs: int = option(_RBM.epochs, "pretraining passes over the data, per layer")
    pretrain_batch_size: int = option(_RBM.batch_size, "examples per pretraining update")
    cd_k: int = option(_RBM.cd_k, "Gibbs steps of contrastive divergence (rbm)")
    persistent: bool = option(_RBM.persistent, "persistent contrastive divergence (rbm)")
    rbm_lr: float = option(_RBM.lr, "learning rate of the RBMs with binary units (rbm)")
    code_lr: float = option(0.001, "learning rate of the RBMs with linear code or Gaussian visible units (rbm)")
    rbm_weight_decay: float = option(_RBM.weight_decay, "weight decay of the RBM weights (rbm)")
    noise: str = option(
        "mask", "corruption of each layer's input (dae): mask, gaussian or salt_pepper", choices=corruption.NOISE_KINDS
    )
    nu: float = option(corruption.DEFAULT_NU, "fraction of the entries corrupted by mask / salt_pepper (dae)")
    sigma: float = option(corruption.DEFAULT_SIGMA, "standard deviation of the gaussian corruption (dae)")
    dae_lr: float = option(1e-3, "Adam learning rate of each denoising layer (dae)")

    def rbm_settings(self) -> dict[str, Any]:
        """Fields of :class:`aekit.variants.stacks.RBMConfig` shared by every RBM of the stack."""
        return {
            "epochs": self.pretrain_epochs,
            "batch_size": self.pretrain_batch_size,
            "cd_k": self.cd_k,
            "persistent": self.persistent,
            "weight_decay": self.rbm_weight_decay,
        }

    def validate(self) -> None:
        if self.pretrain_epochs < 1:
            raise ConfigError(f"pretrain_epochs must be positive, got {self.pretrain_epochs}")
        from_dict(RBMConfig, {**self.rbm_settings(), "lr": self.rbm_lr}, where="rbm options")
        from_dict(RBMConfig, {"lr": self.code_lr}, where="rbm options (code_lr)")
        if not (self.dae_lr > 0 and math.isfinite(self.dae_lr)):
            raise ConfigError(f"dae_lr must be a positive number, got {self.dae_lr}")
        corruption.check_parameters(self.noise, nu=self.nu, sigma=self.sigma)


@register(
    "deep",
    "deep autoencoder (Hinton & Salakhutdinov 2006): logistic units, linear code, cross-entropy, "
    "initialised by layer-wise RBM (deep belief net) or stacked denoising pretraining",
    options=DeepOptions,
    defaults={"activation": "sigmoid", "code_activation": "linear", "loss": "bce"},
    layerwise={"rbm": RBM_OPTIONS, "dae": DAE_OPTIONS},
)
class Deep(Variant):
    """The plain autoencoder plus the :meth:`pretrain` hook.

    Raises
    ------
    ConfigError
        For the conv architecture, and for RBM pretraining without logistic hidden units
        (``activation`` sigmoid) or with a code that is neither logistic nor linear.
    """

    architectures = ("mlp",)

    def __init__(self, config: Any, options: DeepOptions):
        super().__init__(config, options)
        if config.architecture not in self.architectures:
            raise ConfigError("the deep variant is defined for the mlp architecture only")
        if options.pretrain == "rbm" and (
            config.activation != "sigmoid" or config.code_activation not in ("sigmoid", "linear")
        ):
            raise ConfigError(
                f"rbm pretraining needs logistic hidden units and a logistic or linear code "
                f"(--activation sigmoid, --code-activation linear or sigmoid); got activation "
                f"{config.activation!r}, code_activation {config.code_activation!r}"
            )

    @classmethod
    def in_memory_reason(cls, options: DeepOptions) -> str | None:
        """Layer-wise pretraining (any but ``pretrain="none"``) passes over the whole training set in memory."""
        if options.pretrain == "none":
            return None
        return "layer-wise pretraining needs the data in memory; use --pretrain none with --stream"

    def pretrain(
        self,
        model: Model,
        train: torch.Tensor,
        *,
        seed: int,
        progress: bool | None = None,
        train_layer: LayerTrainer | None = None,
    ) -> dict[str, Any] | None:
        """Train the stack on ``train`` (model space), unroll it into ``model`` and return the
        JSON-able record: method, seconds, and per layer its settings and per-epoch history.
        Denoising pretraining trains its layers with ``train_layer``
        (:func:`aekit.pretrain.train_layer`, which :func:`aekit.fit` passes)."""
        o, c = self.options, self.config
        if o.pretrain == "none":
            return None
        if o.pretrain == "dae" and train_layer is None:
            raise TypeError(
                "denoising pretraining needs train_layer (aekit.pretrain.train_layer), which trains "
                "each layer with the Trainer"
            )
        x = train.to(next(model.parameters()).device).reshape(len(train), -1)
        sizes = [*c.hidden, c.latent]
        t0 = time.perf_counter()
        if o.pretrain == "rbm":
            layers: list[Any] = train_dbn(
                x,
                sizes,
                visible=visible_units(c),
                top="linear" if c.code_activation == "linear" else "bernoulli",
                seed=seed,
                progress=progress,
                lr=o.rbm_lr,
                code_lr=o.code_lr,
                **o.rbm_settings(),
            )
        else:
            assert train_layer is not None, "dae pretraining without train_layer raised above"
            layers = stack_denoising(
                x,
                sizes,
                train_layer=train_layer,
                activation=c.activation,
                top_activation=c.code_activation,
                loss=c.loss,
                output_activation=c.output_activation,
                noise=o.noise,
                nu=o.nu,
                sigma=o.sigma,
                epochs=o.pretrain_epochs,
                batch_size=o.pretrain_batch_size,
                lr=o.dae_lr,
                seed=seed,
                progress=progress,
            )
        unroll(model, layers)
        return stack_record(o.pretrain, layers, time.perf_counter() - t0)
