r"""Greedy layer-wise pretraining: restricted Boltzmann machines stacked into a deep belief net
and unrolled into a deep autoencoder (Hinton & Salakhutdinov 2006), and stacked denoising
autoencoders (Vincent et al. 2010).

The machinery is the deep variant's (:mod:`aekit.variants.stacks`, where the RBM's energy,
conditionals and training rule are documented); this module gives its users the same names and
the one piece that needs the floors above the model: :func:`train_layer`, which trains a layer of
a stacked denoising autoencoder with the ordinary :class:`~aekit.train.Trainer`.
:func:`aekit.fit` hands it to the variant's :meth:`~aekit.variants.Variant.pretrain`, and
:func:`stack_denoising` here uses it by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .variants.stacks import (
    HIDDEN_UNITS,
    RBM,
    VISIBLE_UNITS,
    CDGradient,
    Layer,
    LayerTrainer,
    RBMConfig,
    cd_gradient,
    denoising_layer,
    rbms_from_model,
    stack_record,
    train_dbn,
    train_rbm,
    unroll,
    visible_units,
)
from .variants.stacks import stack_denoising as _stack_denoising

__all__ = [
    "HIDDEN_UNITS",
    "RBM",
    "VISIBLE_UNITS",
    "CDGradient",
    "Layer",
    "LayerTrainer",
    "RBMConfig",
    "cd_gradient",
    "denoising_layer",
    "rbms_from_model",
    "stack_denoising",
    "stack_record",
    "train_dbn",
    "train_layer",
    "train_rbm",
    "unroll",
    "visible_units",
]


def train_layer(
    fields: dict[str, Any],
    x: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: bool | None = False,
) -> tuple[Any, list[dict[str, Any]]]:
    """Build the :class:`~aekit.model.Autoencoder` of the :class:`~aekit.model.ModelConfig` fields ``fields``
    and train it on the rows ``x`` with the :class:`~aekit.train.Trainer` (Adam, learning rate ``lr``,
    seed ``seed``, on ``x``'s device): the :data:`~aekit.variants.stacks.LayerTrainer` of the layer-wise
    pretraining. The model's initial weights are drawn after ``torch.manual_seed(seed)``, and the
    global torch RNG is restored afterwards. Returns the trained model and its history."""
    from .model import Autoencoder, ModelConfig
    from .train import TrainConfig, Trainer

    cfg = ModelConfig(**fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ae = Autoencoder(cfg)
        trainer = Trainer(
            ae,
            # a layer trains its epochs (no validation rows: TrainConfig's early stopping would watch
            # the training loss)
            TrainConfig(epochs=epochs, patience=None, batch_size=batch_size, lr=lr, seed=seed, device=str(x.device)),
            progress=progress,
        )
        history = trainer.fit(x)
    return ae, history


def stack_denoising(
    x: Any, sizes: Sequence[int], *, train_layer: LayerTrainer = train_layer, **kwargs: Any
) -> list[Layer]:
    r"""Greedy layer-wise denoising pretraining (Vincent et al. 2010, section 3.5): each layer a
    one-hidden-layer denoising autoencoder with tied weights, trained by ``train_layer``
    (:func:`train_layer` by default: the ordinary :class:`~aekit.train.Trainer`) on the clean codes
    of the layer below. The keyword arguments (``activation``, ``top_activation``, ``loss``,
    ``output_activation``, ``noise``, ``nu``, ``sigma``, ``epochs``, ``batch_size``, ``lr``, ``seed``,
    ``progress``) and the result are those of :func:`aekit.variants.stacks.stack_denoising`."""
    return _stack_denoising(x, sizes, train_layer=train_layer, **kwargs)
