"""Run directories: ``config.json``, ``model.safetensors``, ``history.json``, ``figures/``.

Model files are safetensors (tensors only) plus JSON; nothing is ever unpickled. Every
file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import AekitError, RunError

CONFIG = "config.json"
MODEL = "model.safetensors"
HISTORY = "history.json"
PRETRAIN = "pretrain.json"
#: ``config.json["kind"]`` of a run directory that holds a fine-tuned classifier (aekit.classifier)
CLASSIFIER_KIND = "classifier"
FORMAT = "aekit-run"
FORMAT_VERSION = 1


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path}: not valid JSON ({e})") from None


def save_model(run_dir: str | Path, model: Any) -> Path:
    """Write the model's weights as ``model.safetensors`` (atomically)."""
    from safetensors.torch import save_file
    path = Path(run_dir) / MODEL
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    return path


def write_config(run_dir: str | Path, config: dict[str, Any]) -> Path:
    """Write ``config.json`` (with the format marker) atomically."""
    path = Path(run_dir) / CONFIG
    atomic_write_json(path, {"format": FORMAT, "format_version": FORMAT_VERSION, **config})
    return path


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """Read and check ``config.json`` of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    cfg = read_json(run_dir / CONFIG)
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise RunError(f"{run_dir / CONFIG}: not an aekit run configuration")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise RunError(f"{run_dir / CONFIG}: format version {cfg.get('format_version')} is not supported "
                       f"(this aekit reads version {FORMAT_VERSION})")
    return cfg


def build_autoencoder(run_dir: Path, cfg: dict[str, Any]) -> Any:
    """The untrained :class:`~aekit.model.Autoencoder` that the run configuration ``cfg`` of
    ``run_dir`` describes, with its data transform (RunError for a bad configuration)."""
    from .config import from_dict
    from .data import Transform
    from .model import Autoencoder, ModelConfig

    try:
        model_cfg = from_dict(ModelConfig, cfg.get("model"), where=f"{run_dir / CONFIG}: model")
        transform = Transform.from_dict(cfg["transform"]) if cfg.get("transform") else None
    except AekitError as e:
        raise RunError(str(e)) from None
    return Autoencoder(model_cfg, transform)


def load_weights(module: Any, run_dir: Path, device: str = "cpu") -> Any:
    """Load ``run_dir``'s ``model.safetensors`` into ``module`` (RunError when missing, unreadable
    or not matching); return it on ``device`` in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = run_dir / MODEL
    if not weights.exists():
        raise RunError(f"{weights}: no such file (the run has not finished; resume it with --resume)")
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise RunError(f"{weights}: not a readable safetensors file ({e})") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise RunError(f"{weights}: weights do not match config.json ({str(e).splitlines()[0]})") from None
    return module.to(device).eval()


def load(path: str | Path, device: str = "cpu") -> Any:
    """Rebuild a trained model from a run directory.

    Returns an :class:`~aekit.model.Autoencoder` in eval mode with its data transform
    attached (``model.transform``) and the whole run configuration in ``model.run_config``.
    Only safetensors and JSON are read: nothing is unpickled.
    """
    run_dir = Path(path)
    cfg = read_config(run_dir)
    if cfg.get("kind") == CLASSIFIER_KIND:
        raise RunError(f"{run_dir} holds a fine-tuned classifier (aekit finetune); load it with "
                       f"aekit.load_classifier or use `aekit classify`")
    model = load_weights(build_autoencoder(run_dir, cfg), run_dir, device)
    model.run_config = cfg
    return model
