"""Run directories: ``config.json``, ``model.safetensors``, ``history.json``, ``figures/``.

Model files are safetensors (tensors only) plus JSON; nothing is ever unpickled. Every
file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written file behind.

One serializer makes a model's bytes (:func:`model_to_bytes`, :func:`model_from_bytes`): a run
directory's ``model.safetensors``, or self-contained bytes that also carry the configuration (what
the scikit-learn estimators put in a pickle).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AekitError, RunError

if TYPE_CHECKING:  # annotations only: the model (and torch) is imported by the functions that build one
    from .model import Autoencoder

CONFIG = "config.json"
MODEL = "model.safetensors"
HISTORY = "history.json"
PRETRAIN = "pretrain.json"
#: ``config.json["kind"]`` of a run directory that holds a fine-tuned classifier (aekit.classifier)
CLASSIFIER_KIND = "classifier"
FORMAT = "aekit-run"
FORMAT_VERSION = 1


#: Suffix of the temporary files of :func:`atomic_path` (``.NAME.RANDOM.tmp`` next to ``NAME``).
TMP_SUFFIX = ".tmp"
#: safetensors metadata key holding the SHA-256 of a file's tensors and other metadata.
CHECKSUM_KEY = "aekit_sha256"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process's umask, read once at import (os.umask can only be read by setting it).
_UMASK = _umask()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform can open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto
    ``path`` (and the folder fsynced), so ``path`` is always either the old or the whole new file.

    A file that cannot be written is a :class:`RunError` naming ``path`` and the reason: any OSError
    here or in the block (a folder that cannot be made or lies below a file, no permission, a
    read-only or full disk, a name too long); the temporary file is removed."""
    path = Path(path)

    # mkstemp's name is ".NAME." + 8 characters + ".tmp": keep it within the usual 255 bytes of a file name
    stem = path.name
    while len(os.fsencode(stem)) > 255 - 14:
        stem = stem[:-1]

    def failure(e: OSError) -> RunError:
        if isinstance(e, (FileExistsError, NotADirectoryError)):
            blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
            if blocker is not None:
                return RunError(f"{path}: cannot write the file: {blocker} is not a folder")
        reason = e.strerror or str(e) or type(e).__name__
        other = os.path.basename(os.fspath(e.filename)) if e.filename is not None else None
        if other is not None and other != path.name and not other.startswith(f".{stem}."):  # not this file
            reason = f"{e.filename}: {reason}"
        return RunError(f"{path}: cannot write the file ({reason})")

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=TMP_SUFFIX, dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise failure(e) from None
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 -> what open() would have given
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise failure(e) from None
        raise
    _fsync_dir(path.parent)


def previous_path(path: str | Path) -> Path:
    """Where :func:`write_safetensors` keeps the previous version of ``path``
    (``checkpoint.safetensors`` -> ``checkpoint.prev.safetensors``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _keep_previous(path: Path) -> None:
    """Atomically make ``previous_path(path)`` a copy of ``path`` (a hard link where the file
    system has them), so that ``path`` itself never goes missing. The caller renames a new file
    onto ``path`` next, in the same folder, and fsyncs the folder."""
    prev = previous_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{prev.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(path, tmp)  # the data of ``path`` are already on disk
        except OSError:
            shutil.copyfile(path, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, prev)
        # already the same file (a run killed between this and the rename of the new file):
        # rename() then does nothing and leaves the temporary link
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(run_dir: str | Path, names: tuple[str, ...]) -> None:
    """Delete the temporary files (``.NAME.*.tmp``) of ``names`` and their previous versions that a
    killed process left in ``run_dir``. The files themselves are always whole."""
    run_dir = Path(run_dir)
    for name in names:
        for own in {name, previous_path(name).name}:
            for p in run_dir.glob(f".{glob.escape(own)}.*{TMP_SUFFIX}"):
                with contextlib.suppress(OSError):
                    p.unlink()


def _check_regular(path: Path) -> None:
    """RunError unless ``path`` (followed through links) is a regular file: a device such as
    ``/dev/zero`` would be read without end, and opening a FIFO waits for a writer forever."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise RunError(f"{path}: not a regular file (a device, FIFO or socket); aekit reads only files")


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read a megabyte at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- safetensors with a checksum, never a pickle --------------------------------------------
def tensors_digest(tensors: dict[str, Any], metadata: dict[str, str]) -> str:
    """SHA-256 (hex) of the tensors (names, dtypes, shapes and bytes, in name order) and of the
    metadata other than :data:`CHECKSUM_KEY`: a flipped byte anywhere changes it."""
    import torch

    h = hashlib.sha256()
    meta = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
    h.update(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        if t.numel():
            h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def safetensors_bytes(tensors: dict[str, Any], metadata: dict[str, str]) -> bytes:
    """``tensors`` (moved to the CPU) with ``metadata`` and their checksum (:data:`CHECKSUM_KEY`) as
    safetensors bytes, the header's metadata in key order: the same tensors and metadata give the
    same bytes. What :func:`write_safetensors` writes and :func:`parse_safetensors` reads."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = {**metadata, CHECKSUM_KEY: tensors_digest(tensors, metadata)}
    return _canonical_header(save(tensors, metadata=metadata))


def write_safetensors(
    path: str | Path, tensors: dict[str, Any], metadata: dict[str, str], *, keep_previous: bool = False
) -> Path:
    """Write ``tensors`` with ``metadata`` and their checksum (:data:`CHECKSUM_KEY`) to
    ``path`` atomically (:func:`safetensors_bytes`). With ``keep_previous`` the file it replaces
    stays as :func:`previous_path`, so that a bad newest file can fall back on it."""
    path = Path(path)
    raw = safetensors_bytes(tensors, metadata)
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
        if keep_previous and path.exists():
            _keep_previous(path)
    return path


def _canonical_header(raw: bytes) -> bytes:
    """``raw`` safetensors bytes with the header's metadata in key order: safetensors writes the
    metadata from a hash map, in an order that changes from run to run, and the same tensors and
    metadata must give the same bytes. (The data offsets count from the end of the header, so the
    header may change length; it stays padded with spaces to a multiple of 8 bytes.)"""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    if "__metadata__" in header:
        header = {
            "__metadata__": dict(sorted(header["__metadata__"].items())),
            **{k: v for k, v in header.items() if k != "__metadata__"},
        }
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def _pickle_like(raw: bytes) -> bool:
    """True for a pickle of protocol 2 to 5 (0x80, then the protocol) or torch.save's zip archive."""
    pickled = len(raw) > 1 and raw[0] == 0x80 and 2 <= raw[1] <= 5
    return pickled or raw[:4] == b"PK\x03\x04"


def read_safetensors(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a safetensors file as ``(tensors on the CPU, metadata)``, verifying its checksum
    when it has one. Nothing is unpickled: a file that is not safetensors (a pickle, a
    ``torch.save`` archive, truncated or corrupted bytes) is a RunError naming it."""
    path = Path(path)
    try:
        _check_regular(path)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RunError(f"{path}: no such file") from None
    except OSError as e:
        raise RunError(f"{path}: cannot read the file ({e})") from None
    return parse_safetensors(raw, str(path))


def parse_safetensors(raw: bytes, where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Safetensors bytes as ``(tensors on the CPU, metadata)``, verifying their checksum when they
    have one. Nothing is unpickled: bytes that are not safetensors (a pickle, a ``torch.save``
    archive, truncated or corrupted bytes) are a RunError naming ``where`` (a file, or what holds
    the bytes)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    n = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else -1
    if not 2 <= n <= len(raw) - 8 or raw[8:9] != b"{":
        if _pickle_like(raw):
            raise RunError(
                f"{where}: not a readable safetensors file: it holds a Python pickle (e.g. written by "
                f"torch.save), which aekit refuses to load"
            )
        raise RunError(f"{where}: not a readable safetensors file (truncated or corrupted header)")
    try:
        header = json.loads(raw[8 : 8 + n])
        tensors = load(raw)
    except (SafetensorError, ValueError, TypeError, RuntimeError, OverflowError, UnicodeDecodeError) as e:
        raise RunError(f"{where}: not a readable safetensors file ({' '.join(str(e).split())})") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    expected = metadata.get(CHECKSUM_KEY)
    if expected is not None and tensors_digest(tensors, metadata) != expected:
        raise RunError(f"{where}: corrupted (its checksum does not match its contents)")
    return tensors, metadata


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        _check_regular(path)
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path}: not valid JSON ({e})") from None


def save_model(run_dir: str | Path, model: Any) -> Path:
    """Write the model's weights as ``model.safetensors`` (atomically): :func:`model_to_bytes`."""
    path = Path(run_dir) / MODEL
    atomic_write_bytes(path, model_to_bytes(model))
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
        raise RunError(
            f"{run_dir / CONFIG}: format version {cfg.get('format_version')} is not supported "
            f"(this aekit reads version {FORMAT_VERSION})"
        )
    return cfg


def build_autoencoder(run_dir: Path, cfg: dict[str, Any]) -> Any:
    """The untrained :class:`~aekit.model.Autoencoder` that the run configuration ``cfg`` of
    ``run_dir`` describes, with its data transform (RunError for a bad configuration)."""
    return autoencoder_from_config(cfg, where=str(Path(run_dir) / CONFIG))


def autoencoder_from_config(cfg: dict[str, Any], *, where: str) -> Any:
    """The untrained :class:`~aekit.model.Autoencoder` that ``cfg["model"]`` describes, with the data
    transform ``cfg["transform"]`` (what :func:`model_config` gives; a run's ``config.json`` holds
    them too); a bad configuration is a RunError naming ``where``."""
    from .config import from_dict
    from .data import Transform
    from .model import Autoencoder, ModelConfig

    try:
        model_cfg = from_dict(ModelConfig, cfg.get("model"), where=f"{where}: model")
        transform = Transform.from_dict(cfg["transform"]) if cfg.get("transform") else None
    except AekitError as e:
        raise RunError(str(e)) from None
    if transform is not None and transform.shift.ndim and transform.shift.shape[0] != model_cfg.input_dim:
        raise RunError(
            f"{where}: the transform has {transform.shift.shape[0]} features, the model {model_cfg.input_dim}"
        )
    return Autoencoder(model_cfg, transform)


def model_config(model: Any) -> dict[str, Any]:
    """The part of a run configuration that describes ``model`` (an Autoencoder): its model
    configuration and data transform, what :func:`autoencoder_from_config` rebuilds it from."""
    from .config import to_dict

    return {
        "model": to_dict(model.config),
        "transform": model.transform.to_dict() if model.transform is not None else None,
    }


def load_state(module: Any, state: dict[str, Any], where: str, against: str) -> Any:
    """Load the tensors ``state`` (read from ``where``) into ``module``; RunError when they do not
    match it (``against``: the configuration it was built from)."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise RunError(f"{where}: weights do not match {against} ({str(e).splitlines()[0]})") from None
    return module


def load_weights(module: Any, run_dir: Path, device: str = "cpu") -> Any:
    """Load ``run_dir``'s ``model.safetensors`` into ``module`` (RunError when missing, unreadable,
    corrupted (checksum), a pickle, or not matching); return it on ``device`` in eval mode."""
    weights = run_dir / MODEL
    if not weights.exists():
        raise RunError(f"{weights}: no such file (the run has not finished; resume it with --resume)")
    state, _ = read_safetensors(weights)
    return load_state(module, state, str(weights), CONFIG).to(device).eval()


# -- one model serializer: a run directory's model.safetensors, or self-contained bytes -------------
#: safetensors metadata keys of the self-contained form of :func:`model_to_bytes`: the JSON
#: configuration the module is rebuilt from, and the JSON records of the module and its submodules
MODEL_CONFIG_KEY = "aekit_config"
MODEL_RECORDS_KEY = "aekit_records"
#: The JSON records a trained module carries as attributes (a run directory holds them in
#: config.json, history.json and pretrain.json), kept by the self-contained form.
RECORDS = ("run_config", "history", "pretrain_record", "scores")


def model_to_bytes(module: Any, config: dict[str, Any] | None = None) -> bytes:
    """A module's weights as checksummed safetensors bytes (:func:`safetensors_bytes`).

    Without ``config`` they are exactly a run directory's ``model.safetensors``
    (:func:`save_model`), whose configuration is the ``config.json`` beside it. With ``config`` (JSON,
    e.g. :func:`model_config`) the bytes are self-contained: the configuration and the
    :data:`RECORDS` of the module and of its submodules travel in the metadata, under the checksum,
    and :func:`model_from_bytes` rebuilds the module from the bytes alone.
    """
    metadata = {"format": FORMAT}
    if config is not None:
        records = {}
        for name, sub in module.named_modules():
            own = {key: getattr(sub, key) for key in RECORDS if getattr(sub, key, None) is not None}
            if own:
                records[name] = own
        metadata[MODEL_CONFIG_KEY] = json.dumps(config)
        metadata[MODEL_RECORDS_KEY] = json.dumps(records)
    return safetensors_bytes(module.state_dict(), metadata)


def model_from_bytes(
    raw: bytes, build: Callable[[dict[str, Any]], Any] | None = None, *, where: str = "the model bytes"
) -> tuple[Any, dict[str, Any]]:
    """Rebuild the module that :func:`model_to_bytes` packed with a configuration.

    ``build(config)`` makes the untrained module (default: the Autoencoder of
    :func:`autoencoder_from_config`); the weights are loaded into it (the checksum verified, nothing
    unpickled) and its records restored. Returns ``(module on the CPU in eval mode, config)``; bytes
    that are not such a model are a RunError naming ``where``.
    """
    state, metadata = parse_safetensors(raw, where)
    if metadata.get("format") != FORMAT or MODEL_CONFIG_KEY not in metadata:
        raise RunError(f"{where}: not a self-contained aekit model (no configuration in its metadata)")
    try:
        config = json.loads(metadata[MODEL_CONFIG_KEY])
        records = json.loads(metadata.get(MODEL_RECORDS_KEY, "{}"))
    except json.JSONDecodeError as e:
        raise RunError(f"{where}: its configuration is not valid JSON ({e})") from None
    if not isinstance(config, dict) or not isinstance(records, dict):
        raise RunError(f"{where}: its configuration is not a JSON object")
    module = build(config) if build is not None else autoencoder_from_config(config, where=where)
    load_state(module, state, where, "its configuration")
    for name, own in records.items():
        try:
            sub = module.get_submodule(name)
        except AttributeError:
            raise RunError(f"{where}: its records name a part {name!r} the model does not have") from None
        for key, value in own.items():
            setattr(sub, key, value)
    return module.eval(), config


def load(path: str | Path, device: str = "cpu") -> Autoencoder:
    """Rebuild a trained model from a run directory.

    Returns an :class:`~aekit.model.Autoencoder` in eval mode with its data transform
    attached (``model.transform``) and the whole run configuration in ``model.run_config``.
    Only safetensors and JSON are read: nothing is unpickled.
    """
    run_dir = Path(path)
    cfg = read_config(run_dir)
    if cfg.get("kind") == CLASSIFIER_KIND:
        raise RunError(
            f"{run_dir} holds a fine-tuned classifier (aekit finetune); load it with "
            f"aekit.load_classifier or use `aekit classify`"
        )
    model = load_weights(build_autoencoder(run_dir, cfg), run_dir, device)
    model.run_config = cfg
    return model


# -- what aekit owns in a run directory, and the lock that keeps one writer -------------------
EVALUATION = "evaluation.json"
REPORT = "report.html"
FIGURES = "figures"
#: The files aekit writes at the top of a run directory (``train``, ``pretrain``, ``finetune``,
#: ``evaluate -o DIR/evaluation.json`` and ``report``'s default output); checkpoints are the
#: Trainer's :data:`aekit.train.CHECKPOINTS`.
CHECKPOINT_FILES = ("checkpoint.safetensors", previous_path("checkpoint.safetensors").name)
#: the run's record of its experiment trackers (aekit.tracking: the MLflow run that --resume continues)
TRACKING = "tracking.json"
RUN_FILES = (CONFIG, MODEL, HISTORY, PRETRAIN, EVALUATION, REPORT, TRACKING, *CHECKPOINT_FILES)
#: The folders the trackers write by default (``--tensorboard``'s events, ``--mlflow``'s file store).
#: One is aekit's as a whole (removed with the run's files on --overwrite) only where
#: :data:`TRACKING` lists it under ``"dirs"``: a tracker that created it claimed it there, and a
#: folder of that name the user made stays theirs.
TRACKING_DIRS = ("tensorboard", "mlruns")


def claimed_tracking_dirs(run_dir: Path) -> set[str]:
    """The names among :data:`TRACKING_DIRS` that ``run_dir/tracking.json`` records as created by a tracker."""
    try:
        data = json.loads((run_dir / TRACKING).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    dirs = data.get("dirs") if isinstance(data, dict) else None
    return {d for d in dirs if d in TRACKING_DIRS} if isinstance(dirs, list) else set()


#: The figures aekit draws into ``figures/`` (aekit.plots.run_figures).
FIGURE_FILES = ("loss.png", "reconstructions.png", "samples.png", "interpolations.png", "traversals.png")


def _is_temporary_of(name: str, owned: tuple[str, ...]) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_path` for one of ``owned``."""
    return name.endswith(TMP_SUFFIX) and any(name.startswith(f".{own}.") for own in owned)


def _owned_entries(run_dir: Path) -> tuple[list[Path], list[Path]]:
    """``(aekit's entries, foreign entries)`` of ``run_dir``: aekit's are the files of :data:`RUN_FILES`,
    the figures of :data:`FIGURE_FILES` in ``figures/``, the temporaries of either and the trackers'
    folders that :data:`TRACKING` claims (:func:`claimed_tracking_dirs`); everything else
    (sub-folders, links, the user's own files) is foreign."""
    owned: list[Path] = []
    foreign: list[Path] = []
    claimed = claimed_tracking_dirs(run_dir)
    for entry in sorted(run_dir.iterdir()):
        name = entry.name
        if entry.is_symlink():
            foreign.append(entry)
        elif name in claimed and entry.is_dir():
            owned.append(entry)
        elif name == FIGURES and entry.is_dir():
            for fig in sorted(entry.iterdir()):
                ours = (
                    fig.is_file()
                    and not fig.is_symlink()
                    and (fig.name in FIGURE_FILES or _is_temporary_of(fig.name, FIGURE_FILES))
                )
                (owned if ours else foreign).append(fig)
        elif entry.is_file() and (
            name in RUN_FILES
            or _is_temporary_of(name, RUN_FILES)
            or _is_temporary_of(name, tuple(previous_path(n).name for n in RUN_FILES))
        ):
            owned.append(entry)
        else:
            foreign.append(entry)
    return owned, foreign


def _is_run_config(path: Path) -> bool:
    """Whether ``path`` is a whole aekit run configuration (not merely a file of that name)."""
    try:
        cfg = read_config(path.parent)
    except RunError:
        return False
    return isinstance(cfg.get("model"), dict) and isinstance(cfg.get("train"), dict)


def _remove_owned(run_dir: Path, owned: list[Path]) -> None:
    for path in owned:
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():  # a tracker's folder (TRACKING_DIRS)
                shutil.rmtree(path)
            else:
                path.unlink()
    with contextlib.suppress(OSError):  # only when empty: never a folder that holds something else
        (run_dir / FIGURES).rmdir()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (OSError, ValueError):
        return False
    return True


def check_outside(out: str | Path, inputs: tuple[str | Path, ...]) -> None:
    """RunError when one of the existing paths ``inputs`` (the data of a run, ...) lies in ``out``."""
    for given in inputs:
        if given and Path(given).exists() and _inside(Path(given), Path(out)):
            raise RunError(
                f"{given} lies inside the run directory {out}, which this run writes to; choose another --out"
            )


def _os_error(path: Path, what: str, e: OSError) -> RunError:
    return RunError(f"{path}: cannot {what} ({e.strerror or e})")


@contextlib.contextmanager
def claim_run_dir(
    out: str | Path, *, resume: bool = False, overwrite: bool = False, inputs: tuple[str | Path, ...] = ()
) -> Iterator[Path]:
    """Hold ``out`` as the run directory of this process for the duration of the block.

    The folder is created (with its parents) and locked with an advisory lock (``flock`` on the
    folder itself), so a second aekit process writing to it gets a RunError instead of mixing its
    files with this one's. For a new run the folder must be empty, or hold only what aekit writes in
    a run directory (:data:`RUN_FILES`, the figures) and ``overwrite`` be given: then those files,
    and only those, are removed; anything else in it (the user's notes, sub-folders, links) makes
    it a RunError that names them, and so does an input file (``inputs``, e.g. the training data)
    inside it. With ``resume`` nothing is removed.

    If the block fails before the run has written a checkpoint, what it wrote is removed again
    (and the folder, if this call created it), so that a mistake found late leaves no
    half-made run behind; a run with a checkpoint is kept for ``--resume``.
    """
    out = Path(out)
    if str(out) in ("", "."):
        out = Path.cwd()
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: exists and is not a folder; choose another run directory")
    check_outside(out, inputs)
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error(out, "create the run directory", e) from None
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError as e:
        raise _os_error(out, "open the run directory", e) from None
    try:
        _lock(fd, out)
        if not resume:
            _clear_for_new_run(out, overwrite)
        try:
            yield out
        except BaseException:
            if not resume and not any((out / name).exists() for name in CHECKPOINT_FILES):
                _remove_owned(out, _owned_entries(out)[0] if out.is_dir() else [])
                for folder in missing:  # innermost first; only folders left empty
                    with contextlib.suppress(OSError):
                        folder.rmdir()
            raise
    finally:
        os.close(fd)


def _lock(fd: int, out: Path) -> None:
    """Take the advisory lock of the run directory open as ``fd`` (RunError when another process has it)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunError(
            f"{out} is in use by another aekit process (it holds the run directory's lock); "
            f"wait for it to end or choose another --out"
        ) from None
    except OSError:  # file systems without flock (some network mounts): no lock
        pass


def _clear_for_new_run(out: Path, overwrite: bool) -> None:
    """Make ``out`` empty for a new run, removing only aekit's files and only with ``overwrite``."""
    owned, foreign = _owned_entries(out)
    if not owned and not foreign:
        return
    if not overwrite:
        raise RunError(
            f"{out} already exists and is not empty; pass --overwrite to replace it or --resume to continue it"
        )
    if foreign:
        shown = ", ".join(str(p.relative_to(out)) for p in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise RunError(
            f"--overwrite removes only what aekit wrote, but {out} also holds {shown}{more}; "
            f"move them away or choose another --out"
        )
    if not _is_run_config(out / CONFIG):
        raise RunError(f"{out} is not an aekit run directory (no valid {CONFIG}); refusing to delete it")
    _remove_owned(out, owned)
