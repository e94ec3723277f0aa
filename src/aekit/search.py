"""Nearest-neighbour search over a run's codes with FAISS: float codes, binary codes, exact and
approximate indexes.

An index holds the codes of the rows of one data set, encoded by one run (the posterior mean
for VAEs, the bits of a semantic-hashing run: what :meth:`~aekit.model.Autoencoder.encode`
gives). Queries are encoded by the same run and answered with the ids of their ``k`` nearest
indexed rows.

What is indexed:

- **float codes** compared by ``l2`` (squared Euclidean distance) or ``cosine`` (1 - cosine
  similarity: the inner product of L2-normalised codes), optionally **whitened** first
  (``whiten``: centred and rotated onto the codes' principal axes, each scaled to unit
  variance, fitted on the indexed codes and applied to the queries alike);
- **binary codes** (``binary``): each code dimension thresholded at its mean over the indexed
  codes (``threshold``; codes that are all 0 or 1, a semantic-hashing run's, keep their bits:
  the threshold is then 0.5), or whitened and then rotated by the
  iterative-quantization rotation of Gong & Lazebnik (``itq``, :func:`itq_rotation`); stored
  packed, 8 bits a byte (:func:`pack_bits`), and compared by Hamming distance.

The index kinds (``kind``), exact by default:

=========  ======================================  ==========================================
kind       float codes                             binary codes
=========  ======================================  ==========================================
flat       ``IndexFlatL2`` / ``IndexFlatIP``       ``IndexBinaryFlat`` (exact)
           (exact)
hnsw       ``IndexHNSWFlat`` (graph; ``M``,        ``IndexBinaryHNSW``
           ``efConstruction``, ``efSearch``)
ivf        -                                       ``IndexBinaryIVF`` (``nlist`` lists,
                                                   ``nprobe`` searched)
ivfpq      ``IndexIVFPQ`` (``nlist``, ``nprobe``,  -
           ``pq_m`` sub-quantizers of 8 bits)
=========  ======================================  ==========================================

On disk an index is a directory::

    index.faiss   FAISS's own binary format (faiss.write_index / write_index_binary; not a pickle)
    index.json    the run (as given and resolved) and a sha256 of its weights, the data source
                  and a sha256 of its rows, number of rows, code size, metric, the index kind and
                  its parameters, the whitening or binarization (centre and matrix), versions, and
                  the sha256 of index.faiss (a truncated or corrupted index is refused)

and it is written to a temporary directory that is renamed into place: an error never leaves a
half-written index. :func:`load_index` rebuilds the index the file describes, with the search
parameters (``efSearch``, ``nprobe``) it records.

Retrieval quality against labels: :func:`precision_at_k` and :func:`mean_average_precision`.

>>> index = build_index(model, X, "cosine", whiten=True)    # doctest: +SKIP
>>> ids, distances = search(index, model, queries, k=10)     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
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
FORMAT_VERSION = 2
#: the versions :func:`load_index` reads (version 1: exact float indexes, no whitening)
READABLE_VERSIONS = (1, 2)
#: ``l2``: squared Euclidean distance; ``cosine``: 1 - cosine similarity (inner product of
#: L2-normalised codes)
METRICS = ("l2", "cosine")
#: the metric of binary codes: the number of differing bits
HAMMING = "hamming"
#: the index kinds (see the module's table); ``flat`` is exact
KINDS = ("flat", "hnsw", "ivf", "ivfpq")
FLOAT_KINDS = ("flat", "hnsw", "ivfpq")
BINARY_KINDS = ("flat", "hnsw", "ivf")
#: how float codes become bits: each dimension thresholded at its mean, or ITQ-rotated first
BINARIZATIONS = ("threshold", "itq")
#: the search-time defaults of ``aekit index`` (measured in benchmarks/search.py)
DEFAULT_METRIC = "cosine"
DEFAULT_WHITEN = True
#: HNSW: neighbours per node, candidate list while building, candidate list while searching
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128
#: IVF: lists searched per query (at most nlist); nlist defaults to :func:`default_nlist`
IVF_NPROBE = 16
#: bits per product-quantizer sub-vector code (256 centroids each)
PQ_BITS = 8
#: ITQ's alternating minimisation: iterations (Gong & Lazebnik use 50)
ITQ_ITERATIONS = 50
#: smallest variance kept by whitening, relative to the largest (flat directions are not blown up)
WHITEN_FLOOR = 1e-6

_FAISS_CLASS = {
    ("flat", "l2"): "IndexFlatL2",
    ("flat", "cosine"): "IndexFlatIP",
    ("hnsw", "l2"): "IndexHNSWFlat",
    ("hnsw", "cosine"): "IndexHNSWFlat",
    ("ivfpq", "l2"): "IndexIVFPQ",
    ("ivfpq", "cosine"): "IndexIVFPQ",
    ("flat", HAMMING): "IndexBinaryFlat",
    ("hnsw", HAMMING): "IndexBinaryHNSW",
    ("ivf", HAMMING): "IndexBinaryIVF",
}
#: the parameters each kind takes (``index_codes(..., **params)``; recorded in index.json)
PARAMS = {
    "flat": (),
    "hnsw": ("M", "efConstruction", "efSearch"),
    "ivf": ("nlist", "nprobe"),
    "ivfpq": ("nlist", "nprobe", "pq_m"),
}
#: the parameters that may be changed at search time
SEARCH_PARAMS = ("efSearch", "nprobe")


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


# -- binary codes ------------------------------------------------------------------------------
def pack_bits(bits: Any) -> np.ndarray:
    """0/1 (or boolean) codes (N, d) packed 8 to a byte, first dimension in the high bit of the
    first byte (``np.packbits``): (N, ceil(d / 8)) uint8, zero-padded."""
    b = np.asarray(bits)
    if b.ndim != 2:
        raise DataError(f"bits must be a 2-D array (N, d), got shape {b.shape}")
    if b.dtype != np.bool_ and not np.isin(b, (0, 1)).all():
        raise DataError("bits must be 0 or 1")
    return np.packbits(b.astype(bool), axis=1)


def unpack_bits(packed: Any, dim: int) -> np.ndarray:
    """The inverse of :func:`pack_bits`: (N, dim) uint8 0/1 codes."""
    p = np.asarray(packed)
    if p.dtype != np.uint8 or p.ndim != 2 or p.shape[1] != math.ceil(dim / 8):
        raise DataError(f"packed codes of {dim} bits must be a uint8 (N, {math.ceil(dim / 8)}) array, got {p.shape}")
    return np.unpackbits(p, axis=1, count=dim)


def hamming_distances(a: Any, b: Any) -> np.ndarray:
    """All Hamming distances between the packed codes ``a`` (N, B) and ``b`` (M, B): (N, M) int64
    counts of differing bits (NumPy: XOR and a popcount table)."""
    a, b = np.asarray(a, dtype=np.uint8), np.asarray(b, dtype=np.uint8)
    popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)
    return popcount[a[:, None, :] ^ b[None, :, :]].sum(-1).astype(np.int64)


def itq_rotation(v: Any, iterations: int = ITQ_ITERATIONS, seed: int = 0) -> np.ndarray:
    r"""The orthogonal rotation of iterative quantization (Gong & Lazebnik 2011) for centred codes
    ``v`` (N, d): it minimises the quantization loss :math:`\lVert B - V R \rVert_F^2` over binary
    :math:`B = \mathrm{sgn}(V R)` and orthogonal :math:`R`, alternating the two from a random
    rotation (seeded): with :math:`B` fixed, :math:`R = U W^\top` from the SVD
    :math:`V^\top B = U S W^\top` (orthogonal Procrustes). Returns :math:`R` (d, d), float64."""
    from threadpoolctl import threadpool_limits  # (scikit-learn's dependency)

    v = np.asarray(v, dtype=np.float64)
    rng = np.random.default_rng(seed)
    r = np.linalg.qr(rng.normal(size=(v.shape[1], v.shape[1])))[0]
    with threadpool_limits(1, user_api="blas"):  # small products: threads beside torch's only contend
        for _ in range(iterations):
            b = np.where(v @ r >= 0, 1.0, -1.0)
            u, _, wt = np.linalg.svd(v.T @ b)
            r = u @ wt
    return r


def quantization_loss(v: Any, r: Any) -> float:
    r"""ITQ's objective :math:`\lVert \mathrm{sgn}(V R) - V R \rVert_F^2` for codes ``v`` and rotation ``r``."""
    p = np.asarray(v, dtype=np.float64) @ np.asarray(r, dtype=np.float64)
    return float(((np.where(p >= 0, 1.0, -1.0) - p) ** 2).sum())


def whitening(codes: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, W)`` such that ``(codes - mean) @ W`` has the identity covariance: W's columns are
    the principal axes of ``codes``, each divided by its standard deviation (variances below
    :data:`WHITEN_FLOOR` times the largest are raised to it)."""
    c = np.asarray(codes, dtype=np.float64)
    mean = c.mean(0)
    cov = np.atleast_2d(np.cov(c - mean, rowvar=False)) if len(c) > 1 else np.zeros((c.shape[1], c.shape[1]))
    w, v = np.linalg.eigh(cov)
    w = np.maximum(w, max(float(w.max()), 1e-30) * WHITEN_FLOOR)
    return mean, v / np.sqrt(w)


# -- the index ---------------------------------------------------------------------------------
@dataclass
class CodeIndex:
    """A FAISS index over codes, with how queries are prepared for it and its description
    (``meta``, written as ``index.json``).

    Attributes
    ----------
    index : faiss.Index or faiss.IndexBinary
        See the module's table of kinds.
    metric : {"l2", "cosine", "hamming"}
    meta : dict
        Where the codes come from (``run``, ``model_sha256``, ``data``, ``data_sha256``, ...; see
        :func:`build_index`) and what the index is (``kind``, ``params``, ``binary``, ``whiten``).
    kind : {"flat", "hnsw", "ivf", "ivfpq"}
    params : dict
        The kind's parameters (:data:`PARAMS`), as used.
    center, matrix : ndarray, optional
        Codes are mapped to ``(codes - center) @ matrix`` (``matrix`` None: the identity) before
        they are indexed or searched: the whitening of float codes, the threshold (and ITQ rotation)
        of binary codes. None: the codes as they are.
    """

    index: Any
    metric: str
    meta: dict[str, Any] = field(default_factory=dict)
    kind: str = "flat"
    params: dict[str, Any] = field(default_factory=dict)
    center: np.ndarray | None = None
    matrix: np.ndarray | None = None

    @property
    def binary(self) -> bool:
        """True for binary codes searched by Hamming distance."""
        return self.metric == HAMMING

    @property
    def rows(self) -> int:
        """Number of indexed rows (their ids are 0 .. rows - 1, the order of the data)."""
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        """Code size (the number of bits of a binary index: one per code dimension)."""
        return int(self.meta.get("dim", self.index.d))

    def prepare(self, codes: np.ndarray) -> np.ndarray:
        """The vectors FAISS stores or is queried with, from float32 codes (N, dim): centred and
        transformed, then packed bits (binary), L2-normalised (cosine) or as they are (l2)."""
        x = codes
        if self.center is not None:
            x = codes.astype(np.float64) - self.center
            x = x @ self.matrix if self.matrix is not None else x
        if self.binary:
            return pack_bits(x > 0)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.metric == "cosine":
            x = x.copy() if x is codes else x
            _faiss().normalize_L2(x)
        return x

    def set_search_params(self, **params: Any) -> None:
        """Change the search-time parameters (``efSearch`` of HNSW, ``nprobe`` of IVF) given
        (None: leave it); ConfigError for a parameter this kind does not have."""
        for name, value in params.items():
            if value is None:
                continue
            if name not in SEARCH_PARAMS or name not in PARAMS[self.kind]:
                raise ConfigError(f"a {self.kind} index has no search parameter {name}")
            _check_param(name, value, self.params)
            self.params[name] = int(value)
        _apply_search_params(self.index, self.kind, self.params)


def default_nlist(rows: int) -> int:
    """The IVF lists for ``rows`` codes: about ``sqrt(rows)`` (1,000 for a million; k-means over
    256 training rows a list stays a matter of seconds), with at least 39 training rows a list
    (FAISS's k-means minimum), and at least one list."""
    return max(1, min(round(math.sqrt(rows)), rows // 39))


def default_pq_m(dim: int) -> int:
    """Sub-quantizers of a product quantizer for codes of size ``dim``: the largest divisor of
    ``dim`` up to ``dim / 2`` (2 dimensions, 8 bits per sub-vector: 4 bits a dimension)."""
    return max([m for m in range(1, max(dim // 2, 1) + 1) if dim % m == 0])


def _check_param(name: str, value: Any, params: dict[str, Any]) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"index parameter {name} must be a positive integer, got {value!r}")
    if name == "M" and value < 2:
        raise ConfigError(f"index parameter M must be at least 2, got {value}")
    if name == "nprobe" and "nlist" in params and value > params["nlist"]:
        raise ConfigError(f"index parameter nprobe={value} exceeds nlist={params['nlist']}")


def _resolve_params(kind: str, rows: int, dim: int, params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(PARAMS[kind]))
    if unknown:
        known = ", ".join(PARAMS[kind]) or "none"
        raise ConfigError(f"a {kind} index has no parameter {', '.join(unknown)} (its parameters: {known})")
    given = {k: v for k, v in params.items() if v is not None}
    out: dict[str, Any] = {}
    if kind == "hnsw":
        out = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH, **given}
    elif kind in ("ivf", "ivfpq"):
        out = {"nlist": given.get("nlist", default_nlist(rows))}
        out["nprobe"] = given.get("nprobe", min(IVF_NPROBE, out["nlist"]))
        if kind == "ivfpq":
            out["pq_m"] = given.get("pq_m", default_pq_m(dim))
    for name, value in out.items():
        _check_param(name, value, out)
    if "nlist" in out and out["nlist"] > rows:
        raise ConfigError(f"index parameter nlist={out['nlist']} exceeds the {rows} rows to index")
    if kind == "ivfpq":
        if dim % out["pq_m"]:
            raise ConfigError(f"index parameter pq_m={out['pq_m']} must divide the code size {dim}")
        if rows < 2**PQ_BITS:
            raise ConfigError(
                f"an ivfpq index needs at least {2**PQ_BITS} rows to train its product quantizer, got {rows}; "
                "use the exact flat index"
            )
    return {k: int(v) for k, v in out.items()}


def _apply_search_params(index: Any, kind: str, params: dict[str, Any]) -> None:
    if kind == "hnsw":
        index.hnsw.efSearch = int(params["efSearch"])
    elif kind in ("ivf", "ivfpq"):
        index.nprobe = int(params["nprobe"])


def _new_index(kind: str, metric: str, d: int, params: dict[str, Any]) -> Any:
    """An empty FAISS index of ``kind`` for vectors of size ``d`` (bits for Hamming)."""
    faiss = _faiss()
    if metric == HAMMING:
        if kind == "flat":
            return faiss.IndexBinaryFlat(d)
        if kind == "hnsw":
            index = faiss.IndexBinaryHNSW(d, params["M"])
            index.hnsw.efConstruction = params["efConstruction"]
            return index
        return faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(d), d, params["nlist"])
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexFlatL2(d) if metric == "l2" else faiss.IndexFlatIP(d)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, params["M"], faiss_metric)
        index.hnsw.efConstruction = params["efConstruction"]
        return index
    quantizer = faiss.IndexFlatL2(d) if metric == "l2" else faiss.IndexFlatIP(d)
    return faiss.IndexIVFPQ(quantizer, d, params["nlist"], params["pq_m"], PQ_BITS, faiss_metric)


def index_codes(
    codes: Any,
    metric: str = "l2",
    *,
    kind: str = "flat",
    binary: str | None = None,
    whiten: bool = False,
    **params: Any,
) -> CodeIndex:
    """A FAISS index over ``codes`` (N, d): row ``i`` gets id ``i``.

    Parameters
    ----------
    codes : array-like (N, d)
    metric : {"l2", "cosine"}
        The distance between float codes (ignored for ``binary``, which is Hamming distance).
    kind : {"flat", "hnsw", "ivf", "ivfpq"}
        Exact (``flat``) or approximate; ``ivfpq`` is for float codes, ``ivf`` for binary codes.
    binary : {"threshold", "itq"}, optional
        Index bits instead of floats: each dimension thresholded at its mean over ``codes``
        (``threshold``), or after the ITQ rotation fitted on them (``itq``).
    whiten : bool
        Whiten float codes (:func:`whitening`, fitted on ``codes``) before they are indexed.
    **params
        The kind's parameters (:data:`PARAMS`): ``M``, ``efConstruction``, ``efSearch`` (hnsw);
        ``nlist``, ``nprobe`` (ivf, ivfpq); ``pq_m`` (ivfpq). Unset ones take the defaults.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    if binary is not None:
        if binary not in BINARIZATIONS:
            raise ConfigError(f"unknown binarization {binary!r}; choose one of {', '.join(BINARIZATIONS)}")
        if whiten:
            raise ConfigError("whitening applies to float codes; binary codes are thresholded (or ITQ-rotated)")
        if kind not in BINARY_KINDS:
            raise ConfigError(f"binary codes are indexed {', '.join(BINARY_KINDS)}, not {kind}")
        metric = HAMMING
    else:
        _check_metric(metric)
        if kind not in FLOAT_KINDS:
            raise ConfigError(f"float codes are indexed {', '.join(FLOAT_KINDS)}, not {kind} (ivf is for --binary)")
    codes = _as_rows(codes, "codes")
    rows, dim = codes.shape
    resolved = _resolve_params(kind, rows, dim, params)
    center = matrix = None
    if binary is not None:
        already = binary == "threshold" and bool(np.isin(codes, (0.0, 1.0)).all())  # keep the bits of 0/1 codes
        if binary == "itq":  # whitened, then rotated to the ITQ rotation of the whitened codes
            center, w = whitening(codes)
            matrix = w @ itq_rotation((codes - center) @ w)
        else:
            center, matrix = (np.full(dim, 0.5) if already else codes.astype(np.float64).mean(0)), None
    elif whiten:
        center, matrix = whitening(codes)
    index = CodeIndex(None, metric, {"dim": dim}, kind, resolved, center, matrix)
    vectors = index.prepare(codes)
    index.index = _new_index(kind, metric, 8 * vectors.shape[1] if binary else dim, resolved)
    if kind in ("ivf", "ivfpq"):
        index.index.train(vectors)
    index.index.add(vectors)
    _apply_search_params(index.index, kind, resolved)
    index.meta = {
        "rows": rows,
        "dim": dim,
        "metric": metric,
        "faiss_index": type(index.index).__name__,
        "kind": kind,
        "params": resolved,
        "binary": binary,
        "whiten": bool(whiten),
    }
    return index


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
    kind: str = "flat",
    binary: str | None = None,
    whiten: bool = False,
    data: str | None = None,
    run: str | Path | None = None,
    batch_size: int = 4096,
    **params: Any,
) -> CodeIndex:
    """Encode raw rows ``X`` with ``model`` and index the codes.

    Parameters
    ----------
    model : Autoencoder
        A trained model (e.g. ``aekit.load(DIR)``); its transform is applied first.
    X : array-like (N, D) or images, or Dataset
        The rows to index; their ids are their positions.
    metric, kind, binary, whiten, **params
        What is indexed and how: see :func:`index_codes`.
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
    index = index_codes(codes, metric, kind=kind, binary=binary, whiten=whiten, **params)
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
        faiss = _faiss()
        (faiss.write_index_binary if index.binary else faiss.write_index)(index.index, str(tmp / INDEX_FILE))
        meta = {
            **index.meta,
            "metric": index.metric,
            "rows": index.rows,
            "dim": index.dim,
            "kind": index.kind,
            "params": index.params,
            "transform": None
            if index.center is None
            else {
                "center": index.center.tolist(),
                "matrix": None if index.matrix is None else index.matrix.tolist(),
            },
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
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise SearchIndexError(
            f"{meta_path}: index format version {meta.get('format_version')} is not supported "
            f"(this aekit reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    metric, kind = meta.get("metric"), meta.get("kind", "flat")
    if metric not in (*METRICS, HAMMING):
        raise SearchIndexError(f"{meta_path}: unknown metric {metric!r}")
    if (kind, metric) not in _FAISS_CLASS:
        raise SearchIndexError(f"{meta_path}: unknown index kind {kind!r} for the metric {metric}")
    params = meta.get("params") or {}
    transform = meta.get("transform")
    try:
        if not isinstance(params, dict) or set(params) != set(PARAMS[kind]):
            raise ValueError(f"the parameters of a {kind} index are {', '.join(PARAMS[kind]) or 'none'}")
        for name, value in params.items():
            _check_param(name, value, params)
        center = matrix = None
        if transform is not None:
            center = np.asarray(transform["center"], dtype=np.float64)
            if transform["matrix"] is not None:
                matrix = np.asarray(transform["matrix"], dtype=np.float64)
            dim = meta.get("dim")
            if center.shape != (dim,) or (matrix is not None and matrix.shape != (dim, dim)):
                raise ValueError(f"its transform does not fit codes of size {dim}")
        elif metric == HAMMING:
            raise ValueError("a binary index records its thresholds")
    except (ValueError, TypeError, KeyError, ConfigError) as e:
        raise SearchIndexError(f"{meta_path}: not a valid index description ({e})") from None
    if not faiss_path.is_file():
        raise SearchIndexError(f"{faiss_path}: no such file")
    if sha256_file(faiss_path) != meta.get("index_sha256"):
        raise SearchIndexError(
            f"{faiss_path} is corrupted or truncated (its sha256 differs from the one in "
            f"{META_FILE}); rebuild the index with `aekit index`"
        )
    faiss = _faiss()
    try:
        index = (faiss.read_index_binary if metric == HAMMING else faiss.read_index)(str(faiss_path))
    except RuntimeError as e:
        raise SearchIndexError(f"{faiss_path}: not a readable FAISS index ({str(e).splitlines()[0]})") from None
    expected = _FAISS_CLASS[kind, metric]
    d = 8 * math.ceil(meta.get("dim", 0) / 8) if metric == HAMMING else meta.get("dim")
    faiss_metric = {"l2": faiss.METRIC_L2, "cosine": faiss.METRIC_INNER_PRODUCT}.get(metric)
    if (
        type(index).__name__ != expected
        or index.ntotal != meta.get("rows")
        or index.d != d
        or (faiss_metric is not None and index.metric_type != faiss_metric)
    ):
        raise SearchIndexError(
            f"{faiss_path} does not match {META_FILE} (expected a {expected} of {meta.get('rows')} "
            f"rows of size {meta.get('dim')})"
        )
    _apply_search_params(index, kind, params)
    return CodeIndex(index, metric, meta, kind, dict(params), center, matrix)


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
        Row ids of the indexed data; an approximate index may find fewer than ``k`` rows for a
        query (an IVF index whose searched lists hold fewer): the rest are -1.
    distances : ndarray of float32, shape (Q, k)
        Ascending: squared Euclidean distances (``l2``; between whitened codes for a whitened
        index; estimated from the product-quantized codes for ``ivfpq``), 1 - cosine similarity
        (``cosine``) or the number of differing bits (``hamming``); infinite where the id is -1.
    """
    k = _check_k(index, k)
    codes = _as_rows(codes, "query codes")
    if codes.shape[1] != index.dim:
        raise DataError(f"query codes have size {codes.shape[1]} but the index holds codes of size {index.dim}")
    scores, ids = index.index.search(index.prepare(codes), k)
    distances = (1.0 - scores if index.metric == "cosine" else scores).astype(np.float32)
    distances[ids < 0] = np.inf
    return ids.astype(np.int64), distances


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


def index_bytes(index: CodeIndex) -> int:
    """The size of ``index``'s FAISS index as serialized (codes, graph, lists, quantizers): close to
    the memory it takes."""
    faiss = _faiss()
    return int((faiss.serialize_index_binary if index.binary else faiss.serialize_index)(index.index).size)


def _relevance(ids: Any, base_labels: Any, query_labels: Any, k: int) -> np.ndarray:
    ids, base, query = np.asarray(ids), np.asarray(base_labels), np.asarray(query_labels)
    if ids.ndim != 2 or len(ids) != len(query) or len(ids) == 0:
        raise DataError(f"ids must be a (Q, k) array over the {len(query)} query labels, got shape {ids.shape}")
    if isinstance(k, bool) or not 1 <= k <= ids.shape[1]:
        raise ConfigError(f"k must be between 1 and {ids.shape[1]}, got {k!r}")
    ids = ids[:, :k]
    found = ids >= 0
    return found & (base[np.where(found, ids, 0)] == query[:, None])


def precision_at_k(ids: Any, base_labels: Any, query_labels: Any, k: int = 10) -> float:
    """Label precision@k: the mean over queries of the share of their ``k`` first neighbours
    (``ids`` (Q, >= k), rows of the indexed set labelled ``base_labels``) whose label is the
    query's (``query_labels``); an id of -1 (not found) counts as a miss."""
    return float(_relevance(ids, base_labels, query_labels, k).mean())


def mean_average_precision(ids: Any, base_labels: Any, query_labels: Any, k: int = 100) -> float:
    r"""mAP@k: the mean over queries of the average precision of their ``k`` first neighbours,
    :math:`\mathrm{AP} = \sum_{i \le k} P(i)\, \mathrm{rel}(i) / \sum_{i \le k} \mathrm{rel}(i)`
    (0 for a query without a relevant neighbour among them), where :math:`P(i)` is the label
    precision of the first :math:`i` and :math:`\mathrm{rel}(i)` whether the :math:`i`-th shares
    the query's label (the usual mAP of the hashing literature)."""
    rel = _relevance(ids, base_labels, query_labels, k).astype(np.float64)
    precision = np.cumsum(rel, 1) / np.arange(1, rel.shape[1] + 1)
    return float(((precision * rel).sum(1) / np.maximum(rel.sum(1), 1)).mean())
