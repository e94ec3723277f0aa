"""Nearest-neighbour search over a run's codes with FAISS.

An index holds the codes of the rows of one data set, encoded by one run (the posterior mean
for VAEs: what :meth:`~aekit.model.Autoencoder.encode` gives), in an exact FAISS index
(``IndexFlatL2``; ``IndexFlatIP`` on L2-normalised codes for the ``cosine`` metric). Queries
are encoded by the same run and answered with the ids of their ``k`` nearest indexed rows.

On disk an index is a directory::

    index.faiss   FAISS's own binary format (faiss.write_index; not a pickle)
    index.json    the run (as given and resolved) and a sha256 of its weights, the data source
                  and a sha256 of its rows, number of rows, code size, metric, versions, and
                  the sha256 of index.faiss (a truncated or corrupted index is refused)

and it is written to a temporary directory that is renamed into place: an error never leaves a
half-written index.

>>> index = build_index(model, X)                            # doctest: +SKIP
>>> ids, distances = search(index, model, queries, k=10)     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AekitError, ConfigError, DataError
from .io import sha256_file

INDEX_FILE = "index.faiss"
META_FILE = "index.json"
FORMAT = "aekit-index"
FORMAT_VERSION = 1
#: ``l2``: squared Euclidean distance; ``cosine``: 1 - cosine similarity (inner product of
#: L2-normalised codes)
METRICS = ("l2", "cosine")


class SearchIndexError(AekitError):
    """An index directory is missing, incomplete, corrupted or does not fit its run."""


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a core dependency
        raise ConfigError("nearest-neighbour search needs FAISS: pip install faiss-cpu") from None
    return faiss


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def _as_rows(x: Any, name: str) -> np.ndarray:
    """``x`` as a C-contiguous float32 (N, d) array with N >= 1 and finite values (DataError otherwise)."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{name} must be a 2-D array (N, d) with N >= 1 and d >= 1, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise DataError(f"{name} holds NaN or infinite values")
    return a


def _prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """The vectors FAISS stores or is queried with: the rows, L2-normalised for ``cosine``."""
    if metric == "cosine":
        x = x.copy()
        _faiss().normalize_L2(x)
    return x


@dataclass
class CodeIndex:
    """A FAISS index over codes, with its description (``meta``, written as ``index.json``).

    Attributes
    ----------
    index : faiss.Index
        ``IndexFlatL2`` (metric ``l2``) or ``IndexFlatIP`` over normalised codes (``cosine``).
    metric : {"l2", "cosine"}
    meta : dict
        Where the codes come from: ``run``, ``run_resolved``, ``model_sha256``, ``data``,
        ``data_sha256``, ``rows``, ``dim``, ... (see :func:`build_index`).
    """

    index: Any
    metric: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Number of indexed rows (their ids are 0 .. rows - 1, the order of the data)."""
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        """Code size."""
        return int(self.index.d)


def index_codes(codes: Any, metric: str = "l2") -> CodeIndex:
    """An exact FAISS index over ``codes`` (N, d): row ``i`` gets id ``i``.

    ``l2`` is ``faiss.IndexFlatL2`` (squared Euclidean distances); ``cosine`` is
    ``faiss.IndexFlatIP`` over the L2-normalised codes, whose inner product is the cosine
    similarity.
    """
    _check_metric(metric)
    codes = _as_rows(codes, "codes")
    faiss = _faiss()
    index = faiss.IndexFlatL2(codes.shape[1]) if metric == "l2" else faiss.IndexFlatIP(codes.shape[1])
    index.add(_prepare(codes, metric))
    return CodeIndex(
        index,
        metric,
        {
            "rows": int(codes.shape[0]),
            "dim": int(codes.shape[1]),
            "metric": metric,
            "faiss_index": type(index).__name__,
        },
    )


def sha256_rows(x: np.ndarray) -> str:
    """A fingerprint of data rows: sha256 of their shape and float32 bytes."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    h = hashlib.sha256(repr(x.shape).encode())
    h.update(x.data.cast("B"))
    return h.hexdigest()


def build_index(
    model: Any,
    X: Any,
    metric: str = "l2",
    *,
    data: str | None = None,
    run: str | Path | None = None,
    batch_size: int = 4096,
) -> CodeIndex:
    """Encode raw rows ``X`` with ``model`` and index the codes.

    Parameters
    ----------
    model : Autoencoder
        A trained model (e.g. ``aekit.load(DIR)``); its transform is applied first.
    X : array-like (N, D) or images, or Dataset
        The rows to index; their ids are their positions.
    metric : {"l2", "cosine"}
    data : str, optional
        The data source to record (default: the Dataset's source, else ``"<in-memory>"``).
    run : path, optional
        The run directory to record, so that :func:`load_index` users (``aekit search``)
        can encode queries with the same run; its weights' sha256 is recorded too.
    """
    from .data import Dataset

    if isinstance(X, Dataset):
        data = data if data is not None else X.source
        X = X.x
    x = np.asarray(X, dtype=np.float32)
    x = x.reshape(len(x), -1) if x.ndim > 2 else x
    codes = model.encode_array(x, batch_size=batch_size, where=str(data or "input"))
    index = index_codes(codes, metric)
    from .version import __version__

    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **index.meta,
        "data": str(data) if data is not None else "<in-memory>",
        "data_resolved": str(Path(data).resolve()) if data is not None and Path(data).exists() else None,
        "data_sha256": sha256_rows(x),
        "aekit_version": __version__,
        "faiss_version": _faiss().__version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if run is not None:
        from .io import MODEL

        weights = Path(run) / MODEL
        meta.update(
            run=str(run),
            run_resolved=str(Path(run).resolve()),
            model_sha256=sha256_file(weights) if weights.exists() else None,
        )
    index.meta = meta
    return index


def save_index(index: CodeIndex, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``index`` as the directory ``path`` (``index.faiss`` + ``index.json``), atomically.

    An existing ``path`` is replaced only with ``overwrite`` and only if it is an aekit index.
    """
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise ConfigError(f"{path} already exists; pass --overwrite to replace it")
        if not (path / META_FILE).is_file():
            raise ConfigError(f"{path} exists and is not an aekit index; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        _faiss().write_index(index.index, str(tmp / INDEX_FILE))
        meta = {
            **index.meta,
            "metric": index.metric,
            "rows": index.rows,
            "dim": index.dim,
            "index_sha256": sha256_file(tmp / INDEX_FILE),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        for name in (INDEX_FILE, META_FILE):
            with open(tmp / name, "rb+") as f:
                os.fsync(f.fileno())
        if path.exists():  # swap: the old index moves aside, the new one in, then the old is removed
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "index")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index.meta = meta
    return path


def load_index(path: str | Path) -> CodeIndex:
    """Read an index directory written by :func:`save_index`, checking it first.

    Raises :class:`SearchIndexError` when the directory or a file is missing, ``index.json`` is
    not an aekit index description, or ``index.faiss`` does not match its recorded sha256, size
    or type.
    """
    path = Path(path)
    if not path.is_dir():
        raise SearchIndexError(f"{path}: no such index directory")
    meta_path, faiss_path = path / META_FILE, path / INDEX_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise SearchIndexError(f"{path} is not an aekit index (no {META_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SearchIndexError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SearchIndexError(f"{meta_path}: not an aekit index description")
    if meta.get("format_version") != FORMAT_VERSION:
        raise SearchIndexError(
            f"{meta_path}: index format version {meta.get('format_version')} is not supported "
            f"(this aekit reads version {FORMAT_VERSION})"
        )
    if meta.get("metric") not in METRICS:
        raise SearchIndexError(f"{meta_path}: unknown metric {meta.get('metric')!r}")
    if not faiss_path.is_file():
        raise SearchIndexError(f"{faiss_path}: no such file")
    if sha256_file(faiss_path) != meta.get("index_sha256"):
        raise SearchIndexError(
            f"{faiss_path} is corrupted or truncated (its sha256 differs from the one in "
            f"{META_FILE}); rebuild the index with `aekit index`"
        )
    try:
        index = _faiss().read_index(str(faiss_path))
    except RuntimeError as e:
        raise SearchIndexError(f"{faiss_path}: not a readable FAISS index ({str(e).splitlines()[0]})") from None
    expected = "IndexFlatL2" if meta["metric"] == "l2" else "IndexFlatIP"
    if type(index).__name__ != expected or index.ntotal != meta.get("rows") or index.d != meta.get("dim"):
        raise SearchIndexError(
            f"{faiss_path} does not match {META_FILE} (expected a {expected} of {meta.get('rows')} "
            f"rows of size {meta.get('dim')})"
        )
    return CodeIndex(index, meta["metric"], meta)


def load_run(index: CodeIndex, run: str | Path | None = None) -> Any:
    """The run that encoded ``index``'s codes (``run`` overrides the recorded directory); refused
    when its weights or code size differ from those the index was built with."""
    from .io import MODEL, load

    meta = index.meta
    if run is None:
        recorded = meta.get("run_resolved") or meta.get("run")
        if recorded is None:
            raise SearchIndexError("the index records no run directory; pass the run that built it (--run DIR)")
        if not Path(recorded).is_dir() and meta.get("run") and Path(meta["run"]).is_dir():
            recorded = meta["run"]
        if not Path(recorded).is_dir():
            raise SearchIndexError(
                f"the run directory {recorded} that built the index no longer exists; pass it with --run DIR"
            )
        run = recorded
    model = load(run)
    if model.config.latent != index.dim:
        raise SearchIndexError(
            f"the run {run} gives codes of size {model.config.latent} but the index holds codes of size {index.dim}"
        )
    expected = meta.get("model_sha256")
    if expected is not None and (Path(run) / MODEL).exists() and sha256_file(Path(run) / MODEL) != expected:
        raise SearchIndexError(
            f"the weights of {run} differ from those that built the index; rebuild it with `aekit index`"
        )
    return model


def indexed_rows(index: CodeIndex) -> np.ndarray:
    """The raw rows that ``index`` holds the codes of, read again from its recorded data source
    (ConfigError when they are not available or differ from the rows that were indexed)."""
    from .data import BUILTIN_DATASETS, load_data

    meta = index.meta
    data = meta.get("data")
    candidates = [
        c
        for c in (data, meta.get("data_resolved"))
        if c and c != "<in-memory>" and (c in BUILTIN_DATASETS or Path(c).exists())
    ]
    if not candidates:
        raise ConfigError(f"the indexed data {data} cannot be read again from here")
    x = load_data(candidates[0]).x
    if sha256_rows(x) != meta.get("data_sha256"):
        raise ConfigError(f"the data {candidates[0]} differ from the rows that were indexed")
    return x


def _check_k(index: CodeIndex, k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= index.rows:
        raise ConfigError(f"k must be an integer between 1 and the {index.rows} indexed rows, got {k!r}")
    return int(k)


def search_codes(index: CodeIndex, codes: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest indexed rows of each code in ``codes`` (Q, d), nearest first.

    Returns
    -------
    ids : ndarray of int64, shape (Q, k)
        Row ids of the indexed data.
    distances : ndarray of float32, shape (Q, k)
        Squared Euclidean distances (``l2``) or 1 - cosine similarity (``cosine``), ascending.
    """
    k = _check_k(index, k)
    codes = _as_rows(codes, "query codes")
    if codes.shape[1] != index.dim:
        raise DataError(f"query codes have size {codes.shape[1]} but the index holds codes of size {index.dim}")
    scores, ids = index.index.search(_prepare(codes, index.metric), k)
    distances = 1.0 - scores if index.metric == "cosine" else scores
    return ids.astype(np.int64), distances.astype(np.float32)


def search(
    index: CodeIndex, model: Any, X: Any, k: int = 10, *, batch_size: int = 4096, where: str = "query"
) -> tuple[np.ndarray, np.ndarray]:
    """Encode raw query rows ``X`` with ``model`` (the run that built ``index``) and return
    :func:`search_codes` of their codes: ``(ids, distances)``, each (Q, k)."""
    _check_k(index, k)
    if model.config.latent != index.dim:
        raise DataError(
            f"the model gives codes of size {model.config.latent} but the index holds codes of size {index.dim}"
        )
    x = np.asarray(X, dtype=np.float32)
    x = x.reshape(len(x), -1) if x.ndim > 2 else x
    return search_codes(index, model.encode_array(x, batch_size=batch_size, where=where), k)


def exact_neighbours(base: Any, queries: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean neighbours of ``queries`` among the rows of ``base`` (e.g. pixels), by
    brute force with ``faiss.IndexFlatL2``: ``(ids, squared distances)``, each (Q, k)."""
    base, queries = _as_rows(base, "base rows"), _as_rows(queries, "query rows")
    if base.shape[1] != queries.shape[1]:
        raise DataError(f"query rows have {queries.shape[1]} features but the base rows have {base.shape[1]}")
    index = index_codes(base, "l2")
    return search_codes(index, queries, k)


def recall_at_k(found: Any, exact: Any, k: int | None = None) -> float:
    """Mean over queries of ``|found_q[:k] ∩ exact_q[:k]| / k``: the fraction of the true ``k``
    nearest neighbours (``exact``, e.g. in pixel space) that a search returned (``found``, e.g. in
    code space). ``found`` and ``exact`` are (Q, >= k) arrays of row ids; ``k`` defaults to their
    width."""
    found, exact = np.asarray(found), np.asarray(exact)
    if found.ndim != 2 or exact.ndim != 2 or len(found) != len(exact) or len(found) == 0:
        raise DataError(
            f"found and exact must be (Q, k) id arrays over the same Q >= 1 queries, got shapes "
            f"{found.shape} and {exact.shape}"
        )
    k = min(found.shape[1], exact.shape[1]) if k is None else k
    if isinstance(k, bool) or not 1 <= k <= min(found.shape[1], exact.shape[1]):
        raise ConfigError(f"k must be between 1 and {min(found.shape[1], exact.shape[1])}, got {k!r}")
    hits = [len(np.intersect1d(f[:k], e[:k])) for f, e in zip(found, exact)]
    return float(np.mean(hits) / k)


@contextlib.contextmanager
def faiss_threads(n: int | None) -> Any:
    """Run FAISS on ``n`` OpenMP threads inside the block (``None``: leave it)."""
    if n is None:
        yield
        return
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
