"""aekit: the classical autoencoder family on PyTorch.

>>> import aekit
>>> model = aekit.fit("ae", "digits", latent=8, hidden=(64,), epochs=2)   # doctest: +SKIP
>>> codes = model.encode_array(aekit.load_data("digits").x)                # doctest: +SKIP
"""

__version__ = "0.1.0"

from . import compress, pretrain, search, variants
from .api import DataConfig, anomaly_scores, denoise, evaluate, fit
from .classifier import Classifier, finetune, load_classifier
from .data import Dataset, Transform, load_data, load_splits
from .errors import AekitError, ConfigError, DataError, RunError, TrainingError
from .io import load
from .latent import interpolate, sample, traverse
from .model import Autoencoder, ModelConfig, Output
from .train import Callback, Trainer, TrainConfig
from .variants.vae import likelihood_bounds

__all__ = [
    "AekitError", "Autoencoder", "Callback", "Classifier", "ConfigError", "DataConfig", "DataError", "Dataset",
    "ModelConfig", "Output", "RunError", "TrainConfig", "Trainer", "TrainingError", "Transform",
    "anomaly_scores", "denoise", "evaluate", "finetune", "fit", "interpolate", "likelihood_bounds", "load", "load_classifier",
    "load_data", "load_splits", "pretrain", "sample", "traverse", "variants", "__version__",
    "compress", "search",
]
