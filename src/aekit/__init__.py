"""aekit: the classical autoencoder family on PyTorch.

>>> import aekit
>>> model = aekit.fit("ae", "digits", latent=8, hidden=(64,), epochs=2)   # doctest: +SKIP
>>> codes = model.encode_array(aekit.load_data("digits").x)                # doctest: +SKIP

The names below are imported on first use (PEP 562), so that ``import aekit`` (and the
``aekit`` command, which starts here) does not import torch before it is needed.
"""

from __future__ import annotations

import importlib
from typing import Any

from .version import __version__

#: public name -> the module (relative to this package) that defines it
_EXPORTS = {
    "anomaly_scores": "anomaly",
    "DataConfig": "data",
    **dict.fromkeys(("denoise", "evaluate", "likelihood_bounds"), "evaluation"),
    "fit": "fitting",
    **dict.fromkeys(("Classifier", "finetune", "load_classifier"), "classifier"),
    **dict.fromkeys(("Dataset", "Transform", "load_data", "load_splits"), "data"),
    **dict.fromkeys(("AekitError", "ConfigError", "DataError", "RunError", "TrainingError"), "errors"),
    "load": "io",
    "export_onnx": "export",
    **dict.fromkeys(("interpolate", "sample", "traverse"), "latent"),
    **dict.fromkeys(("Autoencoder", "ModelConfig", "Output"), "model"),
    **dict.fromkeys(("Callback", "Trainer", "TrainConfig"), "train"),
}
__all__ = [
    "AekitError",
    "Autoencoder",
    "Callback",
    "Classifier",
    "ConfigError",
    "DataConfig",
    "DataError",
    "Dataset",
    "ModelConfig",
    "Output",
    "RunError",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "Transform",
    "__version__",
    "anomaly_scores",
    "compress",
    "denoise",
    "disentanglement",
    "evaluate",
    "export_onnx",
    "finetune",
    "fit",
    "interpolate",
    "likelihood_bounds",
    "load",
    "load_classifier",
    "load_data",
    "load_splits",
    "pretrain",
    "sample",
    "search",
    "tracking",
    "traverse",
    "variants",
]


def __getattr__(name: str) -> Any:
    """Import a public name (or any submodule) on first use."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
