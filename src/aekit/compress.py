r"""Lossy compression with a run's codes: uniform scalar quantization, rates and distortions.

Each code dimension :math:`j` is quantized with :math:`L = 2^b` cells of equal width over a
range :math:`[lo_j, hi_j]` fitted on training codes (their min and max, or robust quantiles):

.. math::

    \Delta_j = \frac{hi_j - lo_j}{L}, \qquad
    q_j(z) = \mathrm{clip}\big(\lfloor (z - lo_j) / \Delta_j \rfloor, 0, L - 1\big), \qquad
    \hat z_j = lo_j + (q_j + \tfrac12) \Delta_j,

so :math:`|z - \hat z_j| \le \Delta_j / 2` for every :math:`z` inside the range (values outside
are clipped to the nearest end cell). The decoder maps :math:`\hat z` back to data.

The rate is reported two ways, per input (example): the fixed :math:`d \cdot b` bits of the
symbols, and the empirical entropy :math:`\sum_j H(q_j)` of the symbols of the evaluated data,
which an entropy coder with per-dimension symbol frequencies reaches (not counting the cost of
sending the frequency tables). The distortion is the per-example summed squared error and the PSNR
in the run's model space (e.g. pixels in [0, 1] with the ``unit`` scaling), as
:func:`aekit.evaluate` measures them; PCA with the same number of components, quantized the
same way, is the baseline.

A model whose code is made of the vectors of a codebook (a VQ-VAE's) is compressed by its
:class:`CodebookQuantizer` instead (:func:`code_quantizer`): the symbols are the codebook indices of
a row's vectors, :math:`\lceil \log_2 K \rceil` bits each, and decode to the codes exactly; the
``bits`` and ``ranges`` of the scalar quantizer do not apply.

Compressed codes are written as an ``.npz`` of plain arrays (float64 ranges, strings as unicode
arrays) without pickling, and read with ``allow_pickle=False``. The symbols are range-coded
(:class:`EntropyModel`: a per-dimension categorical model of the quantized training codes, with
constriction's range coder) into one stream of uint32 words, the model's counts stored beside it
(format version 2); or, without entropy coding, stored as they are (uint8 or uint16; format
version 1, which is still read).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataError

#: how the per-dimension ranges are fitted on the training codes
RANGES = ("minmax", "quantile")
#: ``quantile`` ranges: [q, 1 - q] quantiles of each dimension
DEFAULT_QUANTILE = 0.001
MAX_BITS = 16
FORMAT = "aekit-codes"
FORMAT_VERSION = 2
#: the versions :func:`load_codes` reads: 1, the raw symbols; 2, the raw symbols or a range-coded stream
READ_VERSIONS = (1, 2)


def check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_BITS:
        raise ConfigError(f"bits must be an integer from 1 to {MAX_BITS}, got {bits!r}")
    return int(bits)


def _codes(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "biuf" or a.ndim != 2 or a.shape[0] == 0:
        raise DataError(
            f"{name} must be a numeric 2-D array (N, d) with N >= 1, got shape {a.shape} and dtype {a.dtype}"
        )
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise DataError(f"{name} holds NaN or infinite values")
    return a


def _symbols(symbols: Any, dim: int, levels: int, what: str) -> np.ndarray:
    """``symbols`` checked to be an integer ``(N, dim)`` array of values in ``0 .. levels - 1``
    (``what``: the quantizer's alphabet, for the message)."""
    s = np.asarray(symbols)
    if s.dtype.kind not in "iu" or s.ndim != 2 or s.shape[1] != dim:
        raise DataError(f"symbols must be an integer (N, {dim}) array, got shape {s.shape} and dtype {s.dtype}")
    if len(s) and (s.min() < 0 or s.max() >= levels):
        raise DataError(f"symbols must lie in 0 .. {levels - 1} for {what}")
    return s


@dataclass(frozen=True, eq=False)
class Quantizer:
    """A uniform scalar quantizer of ``bits`` bits per dimension over ``[low_j, high_j]``.

    Attributes
    ----------
    bits : int
        1 .. 16; ``2 ** bits`` cells per dimension.
    low, high : ndarray of float64, shape (d,)
        The range of each dimension (``low == high`` for a constant dimension, which is then
        reproduced exactly).
    """

    bits: int
    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        check_bits(self.bits)
        low, high = np.asarray(self.low, np.float64), np.asarray(self.high, np.float64)
        if (
            low.ndim != 1
            or low.shape != high.shape
            or not (np.isfinite(low).all() and np.isfinite(high).all())
            or (high < low).any()
        ):
            raise DataError(
                f"quantizer ranges must be finite (d,) arrays with low <= high, got shapes {low.shape} and {high.shape}"
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @classmethod
    def fit(cls, codes: Any, bits: int, ranges: str = "minmax", quantile: float = DEFAULT_QUANTILE) -> Quantizer:
        """Fit the per-dimension ranges on training ``codes`` (N, d): their ``minmax``, or their
        ``[quantile, 1 - quantile]`` quantiles (``ranges="quantile"``, robust to outliers)."""
        bits = check_bits(bits)
        if ranges not in RANGES:
            raise ConfigError(f"unknown ranges {ranges!r}; choose one of {', '.join(RANGES)}")
        codes = _codes(codes, "training codes")
        if ranges == "minmax":
            return cls(bits, codes.min(0), codes.max(0))
        if not 0 <= quantile < 0.5:
            raise ConfigError(f"quantile must be in [0, 0.5), got {quantile!r}")
        return cls(bits, np.quantile(codes, quantile, axis=0), np.quantile(codes, 1 - quantile, axis=0))

    @classmethod
    def integers(cls, codes: Any) -> Quantizer:
        """The quantizer of integer codes (a compressive autoencoder's) with cells of exactly one unit
        centred on the integers: ``bits`` one more than the widest dimension's span of training values
        needs, each dimension's span in the middle of its cells, so that the training codes and codes up
        to about half a span beyond them quantize and dequantize exactly (a value further out is clipped
        to the end cell; an entropy model gives the values unseen in training a small probability)."""
        codes = _codes(codes, "training codes")
        lo, hi = np.floor(codes.min(0) + 0.5), np.floor(codes.max(0) + 0.5)
        span = int((hi - lo).max(initial=0)) + 1
        bits = max(1, math.ceil(math.log2(span))) + 1
        if bits > MAX_BITS:
            raise DataError(f"integer codes spanning {span} values need more than {MAX_BITS} bits")
        low = lo - 0.5 - np.floor((2**bits - (hi - lo + 1)) / 2)
        return cls(bits, low, low + float(2**bits))

    @property
    def dim(self) -> int:
        return int(self.low.shape[0])

    @property
    def levels(self) -> int:
        return 1 << self.bits

    @property
    def code_size(self) -> int:
        """The size of the codes the symbols stand for (one symbol per code value)."""
        return self.dim

    @property
    def step(self) -> np.ndarray:
        """Cell width of each dimension, ``(high - low) / 2**bits`` (0 for a constant dimension)."""
        return (self.high - self.low) / self.levels

    @property
    def dtype(self) -> np.dtype:
        """uint8 up to 8 bits, else uint16."""
        return np.dtype(np.uint8 if self.bits <= 8 else np.uint16)

    def _check(self, codes: np.ndarray) -> None:
        if codes.shape[1] != self.dim:
            raise DataError(f"codes have size {codes.shape[1]} but the quantizer was fitted on size {self.dim}")

    def quantize(self, codes: Any) -> np.ndarray:
        """The symbols (N, d), uint8 or uint16, of ``codes``: the index of each value's cell
        (values outside the range go to the end cells)."""
        z = _codes(codes, "codes")
        self._check(z)
        step = self.step
        safe = np.where(step > 0, step, 1.0)
        k = np.where(step > 0, np.floor((z - self.low) / safe), 0.0)
        return np.clip(k, 0, self.levels - 1).astype(self.dtype)

    def dequantize(self, symbols: Any) -> np.ndarray:
        """The codes (N, d), float64, that ``symbols`` stand for: the centres of their cells."""
        s = _symbols(symbols, self.dim, self.levels, f"{self.bits} bits")
        return self.low + (s.astype(np.float64) + 0.5) * self.step

    def clipped_fraction(self, codes: Any) -> float:
        """Fraction of the values of ``codes`` outside their dimension's range (clipped)."""
        z = _codes(codes, "codes")
        self._check(z)
        return float(((z < self.low) | (z > self.high)).mean())


#: how a code holds the vectors of a codebook: consecutive (``rows``) or as a channel-major D x positions map
LAYOUTS = ("rows", "channels")


@dataclass(frozen=True, eq=False)
class CodebookQuantizer:
    """Vector quantization with a model's codebook: a code of ``groups * D`` values is ``groups``
    vectors of ``codebook`` (K, D), each stored as its index (``bits`` = ceil(log2 K), at least 1).

    Attributes
    ----------
    codebook : ndarray of float64, shape (K, D)
        The vectors (as the decoder sees them).
    groups : int
        Vectors per code (the symbols per row).
    layout : {"rows", "channels"}
        ``rows``: the vectors one after the other; ``channels``: a channel-major (D, groups) map.
    """

    codebook: np.ndarray
    groups: int
    layout: str = "rows"

    def __post_init__(self) -> None:
        book = np.asarray(self.codebook, np.float64)
        if book.ndim != 2 or not 1 <= len(book) <= 1 << MAX_BITS or not book.shape[1] or not np.isfinite(book).all():
            raise DataError(
                f"a codebook must be a finite (K, D) array with 1 <= K <= {1 << MAX_BITS}, got {book.shape}"
            )
        if isinstance(self.groups, bool) or not isinstance(self.groups, (int, np.integer)) or self.groups < 1:
            raise DataError(f"the vectors per code must be a positive integer, got {self.groups!r}")
        if self.layout not in LAYOUTS:
            raise DataError(f"the codebook layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        object.__setattr__(self, "codebook", book)
        object.__setattr__(self, "groups", int(self.groups))

    @property
    def dim(self) -> int:
        """Symbols per row (the vectors of a code)."""
        return self.groups

    @property
    def levels(self) -> int:
        """K: the symbols are 0 .. K - 1."""
        return len(self.codebook)

    @property
    def bits(self) -> int:
        return max(1, (self.levels - 1).bit_length())

    @property
    def code_size(self) -> int:
        return self.groups * int(self.codebook.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.levels <= 256 else np.uint16)

    def _vectors(self, codes: np.ndarray) -> np.ndarray:
        n = len(codes)
        if self.layout == "channels":
            return codes.reshape(n, -1, self.groups).transpose(0, 2, 1)
        return codes.reshape(n, self.groups, -1)

    def quantize(self, codes: Any) -> np.ndarray:
        """The index (N, groups) of the nearest codebook vector to each vector of ``codes``."""
        z = _codes(codes, "codes")
        if z.shape[1] != self.code_size:
            raise DataError(f"codes have size {z.shape[1]} but the codebook quantizer takes size {self.code_size}")
        v = self._vectors(z).reshape(-1, self.codebook.shape[1])
        book = self.codebook
        d = (v * v).sum(1, keepdims=True) - 2 * v @ book.T + (book * book).sum(1)
        return d.argmin(1).reshape(len(z), self.groups).astype(self.dtype)

    def dequantize(self, symbols: Any) -> np.ndarray:
        """The codes (N, groups * D), float64, made of the codebook vectors ``symbols`` index."""
        s = _symbols(symbols, self.dim, self.levels, f"a codebook of {self.levels}")
        v = self.codebook[s.astype(np.int64)]  # (N, groups, D)
        if self.layout == "channels":
            v = v.transpose(0, 2, 1)
        return np.ascontiguousarray(v).reshape(len(s), -1)

    def clipped_fraction(self, codes: Any) -> float:
        """0: nothing is clipped by a codebook."""
        return 0.0


def code_quantizer(model: Any) -> CodebookQuantizer | None:
    """The :class:`CodebookQuantizer` of a model whose variant has a codebook (its ``discrete_codes()``:
    ``codebook``, ``groups``, ``layout``), or None: the model's codes are quantized by a :class:`Quantizer`."""
    own = getattr(model.variant, "discrete_codes", None)
    found = own() if callable(own) else None
    return CodebookQuantizer(**found) if found is not None else None


def fit_quantizer(
    model: Any, fit_codes: Any, bits: int = 8, ranges: str = "minmax", quantile: float = DEFAULT_QUANTILE
) -> Quantizer | CodebookQuantizer:
    """The quantizer of ``model``'s codes: its codebook's (:func:`code_quantizer`), unit cells over the
    integers of ``fit_codes`` for a variant whose codes are integers (``integer_codes``: a compressive
    autoencoder's, stored exactly), else ``bits`` per dimension over ranges fitted on ``fit_codes``."""
    own = code_quantizer(model)
    if own is not None:
        return own
    if getattr(model.variant, "integer_codes", False):
        return Quantizer.integers(fit_codes)
    return Quantizer.fit(fit_codes, bits, ranges, quantile)


def entropy_bits(symbols: Any) -> float:
    r"""Empirical entropy of quantized symbols, in bits per row: :math:`\sum_j H(s_{\cdot j})`
    with :math:`H = -\sum_v p_v \log_2 p_v` over the frequencies :math:`p_v` of the values of
    column :math:`j` (each dimension coded separately with its own frequencies)."""
    s = np.asarray(symbols)
    if s.dtype.kind not in "iu" or s.ndim != 2 or s.shape[0] == 0:
        raise DataError(f"symbols must be an integer (N, d) array with N >= 1, got shape {s.shape}")
    total = 0.0
    for column in s.T:
        p = np.bincount(column.astype(np.int64)).astype(np.float64)
        p = p[p > 0] / len(column)
        total -= float((p * np.log2(p)).sum())
    return max(total, 0.0)


def rate_distortion(
    encode: Callable[[np.ndarray], np.ndarray],
    decode: Callable[[np.ndarray], np.ndarray],
    fit_x: np.ndarray,
    X: np.ndarray,
    bits: int,
    *,
    ranges: str = "minmax",
    quantile: float = DEFAULT_QUANTILE,
    data_range: float = 1.0,
    quantizer: CodebookQuantizer | None = None,
) -> dict[str, Any]:
    """Quantize the codes ``encode(X)`` with ranges fitted on ``encode(fit_x)`` (or with the codebook
    ``quantizer``: ``bits`` and the ranges then do not apply), decode them and measure rate and
    distortion against ``X`` (both in the space ``encode`` takes).

    Returns
    -------
    dict
        ``code_size`` d; ``bits_per_input``: d * bits; ``entropy_bits_per_input``: :func:`entropy_bits`
        of the symbols; ``per_example_squared_error``, ``mse``, ``psnr`` (mean per-example, dB, data
        range ``data_range``) of the decoded quantized codes; ``unquantized``: the same two
        errors without quantization; ``clipped_fraction`` of code values outside the ranges.
    """
    from .metrics import psnr, reconstruction_errors

    codes = encode(X)
    q = quantizer or Quantizer.fit(codes if fit_x is X else encode(fit_x), bits, ranges, quantile)
    symbols = q.quantize(codes)
    recon = decode(q.dequantize(symbols))
    exact = decode(np.asarray(codes, np.float32))
    errors = reconstruction_errors(X, recon)
    plain = reconstruction_errors(X, exact)
    return {
        "code_size": q.code_size,
        "bits_per_input": q.dim * q.bits,
        "entropy_bits_per_input": entropy_bits(symbols),
        "per_example_squared_error": errors["per_example_squared_error"],
        "mse": errors["mse"],
        "psnr": psnr(X, recon, data_range),
        "unquantized": {
            "per_example_squared_error": plain["per_example_squared_error"],
            "psnr": psnr(X, exact, data_range),
        },
        "clipped_fraction": q.clipped_fraction(codes),
        **({"codebook_size": q.levels} if isinstance(q, CodebookQuantizer) else {}),
    }


def model_coder(model: Any, batch_size: int = 4096) -> tuple[Callable, Callable]:
    """``(encode, decode)`` of a model between model-space rows and codes (NumPy, float32)."""
    encode = lambda x: model.batched(np.ascontiguousarray(x, np.float32), model.encode, batch_size)  # noqa: E731
    decode = lambda z: model.batched(np.ascontiguousarray(z, np.float32), model.decode, batch_size)  # noqa: E731
    return encode, decode


def pca_coder(fit_x: np.ndarray, n_components: int, seed: int = 0) -> tuple[Callable, Callable, int]:
    """``(encode, decode, k)`` of PCA with ``k = min(n_components, N, D)`` components fitted on ``fit_x``."""
    from sklearn.decomposition import PCA

    k = min(n_components, fit_x.shape[0], fit_x.shape[1])
    pca = PCA(n_components=k, random_state=seed).fit(fit_x)
    return pca.transform, pca.inverse_transform, k


def compression_scores(
    model: Any,
    X: np.ndarray,
    fit_x: np.ndarray,
    bits: int,
    *,
    ranges: str = "minmax",
    quantile: float = DEFAULT_QUANTILE,
    pca: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`rate_distortion` of a model on model-space rows ``X``, ranges (and PCA) fitted on the
    model-space rows ``fit_x``; with ``pca``, the same for PCA with as many components."""
    bits = check_bits(bits)
    X = np.asarray(X, np.float32)
    fit_x = np.asarray(fit_x, np.float32)
    data_range = model.psnr_data_range(X)
    kwargs = {"ranges": ranges, "quantile": quantile, "data_range": data_range}
    result: dict[str, Any] = {
        "bits": bits,
        "ranges": ranges,
        "data_range": data_range,
        "fit_rows": len(fit_x),
        "features": int(X.shape[1]),
        "autoencoder": rate_distortion(*model_coder(model), fit_x, X, bits, quantizer=code_quantizer(model), **kwargs),
    }
    if ranges == "quantile":
        result["quantile"] = quantile
    if pca:
        encode, decode, _ = pca_coder(fit_x, model.config.latent, seed)
        result["pca"] = rate_distortion(encode, decode, fit_x, X, bits, **kwargs)
    result["note"] = (
        "bits per input: d * bits of the fixed-length symbols; entropy_bits_per_input: empirical "
        "entropy of the symbols of these rows, per dimension, summed (what an entropy coder reaches, "
        "frequency tables not counted); errors and PSNR in model space, against these rows"
    )
    return result


# -- compressed codes on disk --------------------------------------------------------------------
@dataclass(eq=False)
class CompressedCodes:
    """Quantized codes: the symbols, their quantizer and a description (``meta``: ``source``, the
    run's ``model_sha256``, ``ranges``, ``image_shape``)."""

    symbols: np.ndarray
    quantizer: Quantizer | CodebookQuantizer
    meta: dict[str, Any] = field(default_factory=dict)
    #: the model the symbols are range-coded with on disk (None: stored raw)
    entropy: EntropyModel | None = None

    @property
    def bits_per_input(self) -> int:
        return self.quantizer.dim * self.quantizer.bits


def compress(
    model: Any, X: Any, quantizer: Quantizer | CodebookQuantizer, *, batch_size: int = 4096, where: str = "input"
) -> CompressedCodes:
    """Encode raw rows ``X`` with ``model`` (its transform applied) and quantize the codes."""
    return CompressedCodes(quantizer.quantize(model.encode_array(X, batch_size=batch_size, where=where)), quantizer)


def decompress(model: Any, compressed: CompressedCodes, *, batch_size: int = 4096) -> np.ndarray:
    """Decode compressed codes with ``model``: rows (N, D) in the original units of the data."""
    if compressed.quantizer.code_size != model.config.latent:
        raise DataError(
            f"the codes have size {compressed.quantizer.code_size} but the model's code size is {model.config.latent}"
        )
    return model.decode_array(compressed.quantizer.dequantize(compressed.symbols), batch_size=batch_size)


def save_codes(path: str | Path, compressed: CompressedCodes) -> Path:
    """Write ``compressed`` as an ``.npz`` of plain arrays (no pickle), atomically."""
    _write_codes(path, compressed)
    return Path(path)


def _write_codes(path: str | Path, compressed: CompressedCodes) -> dict[str, Any]:
    """:func:`save_codes`, returning the arrays written (the range-coded ``stream`` among them)."""
    from .io import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ConfigError(f"{path}: compressed codes are written as .npz")
    q, meta, em = compressed.quantizer, compressed.meta, compressed.entropy
    shape = meta.get("image_shape")
    symbols = np.asarray(compressed.symbols, q.dtype)
    if em is None:
        stored: dict[str, Any] = {"symbols": symbols}
    else:
        if em.dim != q.dim or em.levels != q.levels:
            raise ConfigError(
                f"the entropy model codes {em.dim} dimensions of {em.levels} levels, the quantizer "
                f"{q.dim} of {q.levels}"
            )
        stored = {
            "stream": em.encode(symbols),
            "rows": np.array(len(symbols), np.int64),
            "entropy_counts": em.counts,
            "entropy_alpha": np.array(em.alpha),
        }
    arrays: dict[str, Any] = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        **stored,
        "bits": np.array(q.bits),
        **(
            {"low": q.low, "high": q.high}
            if isinstance(q, Quantizer)
            else {  # the codebook as the decoder sees it (float32 values): the codes decode exactly
                "low": np.zeros(0),
                "high": np.zeros(0),
                "codebook": q.codebook.astype(np.float32),
                "groups": np.array(q.groups),
                "layout": np.array(q.layout),
            }
        ),
        "ranges": np.array(str(meta.get("ranges", ""))),
        "source": np.array(str(meta.get("source", ""))),
        "model_sha256": np.array(str(meta.get("model_sha256") or "")),
        "image_shape": np.array(list(shape) if shape else [], np.int64),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, allow_pickle=False, **arrays)  # deflate: the entropy model's counts shrink
    return arrays


def load_codes(path: str | Path) -> CompressedCodes:
    """Read an ``.npz`` written by :func:`save_codes` with ``allow_pickle=False`` (an object array,
    which only a pickle can hold, is refused)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):  # np.load would take any other file for a pickle
        raise DataError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"format", "bits", "low", "high"} - set(f.files)
            if not {"symbols", "stream"} & set(f.files):
                missing.add("symbols")
            if missing:
                raise DataError(f"{path}: not aekit compressed codes (missing {', '.join(sorted(missing))})")
            arrays = {k: f[k] for k in f.files}
    except DataError:
        raise
    except ValueError as e:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
        if "allow_pickle" in str(e):
            raise DataError(f"{path} holds pickled (object) arrays, which aekit never loads") from None
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    if str(arrays["format"]) != FORMAT:
        raise DataError(f"{path}: not aekit compressed codes")
    if int(arrays.get("format_version", -1)) not in READ_VERSIONS:
        raise DataError(f"{path}: compressed codes format version {arrays.get('format_version')} is not supported")
    try:
        quantizer: Quantizer | CodebookQuantizer
        if "codebook" in arrays:
            quantizer = CodebookQuantizer(arrays["codebook"], int(arrays["groups"]), str(arrays["layout"]))
            if int(arrays["bits"]) != quantizer.bits:
                raise DataError(f"{int(arrays['bits'])} bits do not index a codebook of {quantizer.levels}")
        else:
            quantizer = Quantizer(int(arrays["bits"]), arrays["low"], arrays["high"])
    except (TypeError, ValueError, KeyError) as e:  # ConfigError and DataError are ValueErrors
        raise DataError(f"{path}: invalid quantizer ({e})") from None
    entropy = None
    if "symbols" in arrays:
        symbols = arrays["symbols"]
    else:
        try:
            entropy = EntropyModel(arrays["entropy_counts"], float(arrays["entropy_alpha"]))
            rows = int(arrays["rows"])
        except (TypeError, ValueError, KeyError) as e:
            raise DataError(f"{path}: invalid entropy model ({e})") from None
        if entropy.dim != quantizer.dim or entropy.levels != quantizer.levels:
            raise DataError(
                f"{path}: the entropy model ({entropy.dim} x {entropy.levels}) does not match "
                f"{quantizer.bits}-bit codes of size {quantizer.dim}"
            )
        try:
            symbols = entropy.decode(arrays["stream"], rows).astype(quantizer.dtype)
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
        except (ValueError, RuntimeError, OverflowError) as e:  # constriction: a stream cut short or altered
            raise DataError(f"{path}: the range-coded stream does not decode ({e})") from None
    if symbols.dtype != quantizer.dtype or symbols.ndim != 2 or symbols.shape[1] != quantizer.dim:
        raise DataError(
            f"{path}: symbols of shape {symbols.shape} and dtype {symbols.dtype} do not match "
            f"{quantizer.bits}-bit codes of size {quantizer.dim}"
        )
    if len(symbols) and int(symbols.max()) >= quantizer.levels:
        raise DataError(f"{path}: symbols exceed the {quantizer.levels} levels of the quantizer")
    shape = arrays.get("image_shape")
    meta = {
        "source": str(arrays.get("source", "")),
        "ranges": str(arrays.get("ranges", "")),
        "model_sha256": str(arrays.get("model_sha256", "")) or None,
        "image_shape": tuple(int(v) for v in shape) if shape is not None and len(shape) else None,
    }
    return CompressedCodes(symbols, quantizer, meta, entropy)


@dataclass(frozen=True)
class CompressionReport:
    """What :func:`compress_run` did: the codes written, on what rows the quantizer's ranges were
    fitted, and the distortion of the decoded codes (model space)."""

    codes: CompressedCodes
    source: str
    fitted_on: str
    per_example_squared_error: float
    psnr: float
    #: bytes of the range-coded stream of all rows (None: stored raw)
    stream_bytes: int | None = None


def compress_run(
    run_dir: str | Path,
    data: Any,
    output: str | Path,
    *,
    bits: int = 8,
    ranges: str = "minmax",
    quantile: float = DEFAULT_QUANTILE,
    batch_size: int = 4096,
    label_column: Any = None,
    entropy: bool = True,
) -> CompressionReport:
    """Compress the rows of ``data`` (a file, folder, built-in set name, array or Dataset) with the model
    of ``run_dir`` into ``output`` (``.npz``): the codes quantized to ``bits`` per dimension over ranges
    fitted on the run's training codes (on ``data`` itself for a run trained on in-memory data), or for
    a model with a codebook its indices (:func:`code_quantizer`; ``bits`` and the ranges do not apply),
    with the SHA-256 of the model file, so that :func:`decompress_run` refuses other weights. With
    ``entropy`` (the default) the symbols are range-coded with an :class:`EntropyModel` fitted on the
    quantized codes of the same rows the ranges were fitted on (for a codebook, the training rows'
    indices); else stored as they are."""
    from .data import load_data, training_rows
    from .io import MODEL, load, sha256_file
    from .metrics import psnr, reconstruction_errors

    output = Path(output)
    if output.suffix.lower() != ".npz":
        raise ConfigError(f"{output}: compressed codes are written as .npz")
    check_bits(bits)
    model = load(run_dir)
    ds = load_data(data, label_column=label_column)
    codebook = code_quantizer(model) is not None
    integers = bool(getattr(model.variant, "integer_codes", False))
    fit_codes = None
    if not codebook or entropy:  # the ranges and the entropy model are fitted on the training codes
        fit_rows = training_rows(model.run_config)
        fitted_on = "the run's training split"
        if fit_rows is None:
            fit_rows, fitted_on = ds.x, f"{ds.source} itself (the run was trained on in-memory data)"
        fit_codes = model.encode_array(fit_rows, batch_size=batch_size, where="training data")
    quantizer = fit_quantizer(model, fit_codes, bits, ranges, quantile)
    if codebook:
        fitted_on = "the model's codebook (nothing fitted)" + (f"; the entropy model on {fitted_on}" if entropy else "")
    elif integers:
        fitted_on = f"unit cells over the integers of {fitted_on}"
    em = EntropyModel.fit(quantizer.quantize(fit_codes), quantizer.levels) if entropy else None
    X = model.prepare(ds.x, ds.source)
    encode, decode = model_coder(model, batch_size)
    packed = CompressedCodes(
        quantizer.quantize(encode(X)),
        quantizer,
        {
            "source": ds.source,
            "ranges": ("integers" if integers else ranges) if isinstance(quantizer, Quantizer) else "codebook",
            "model_sha256": sha256_file(Path(run_dir) / MODEL),
            "image_shape": ds.image_shape,
        },
        em,
    )
    recon = decode(quantizer.dequantize(packed.symbols))
    err = reconstruction_errors(X, recon)["per_example_squared_error"]
    written = _write_codes(output, packed)
    stream = 4 * len(written["stream"]) if "stream" in written else None
    return CompressionReport(packed, ds.source, fitted_on, err, psnr(X, recon, model.psnr_data_range(X)), stream)


def decompress_run(
    run_dir: str | Path, codes: str | Path, *, batch_size: int = 4096
) -> tuple[Any, CompressedCodes, np.ndarray]:
    """``(model, codes, rows)``: the compressed codes in ``codes`` decoded by the model of ``run_dir``
    (ConfigError when they were compressed with other weights)."""
    from .io import MODEL, load, sha256_file

    model = load(run_dir)
    packed = load_codes(codes)
    recorded = packed.meta.get("model_sha256")
    if recorded and sha256_file(Path(run_dir) / MODEL) != recorded:  # load() has read the model file
        raise ConfigError(f"{codes} was compressed with other weights than those of {run_dir}")
    return model, packed, decompress(model, packed, batch_size=batch_size)


# -- entropy coding of the symbols ---------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class EntropyModel:
    """A per-dimension categorical model of quantized codes for constriction's range coder.

    ``counts`` (d, levels) are the symbol counts of each dimension on the training codes; the coder
    uses ``(counts + alpha) / sum`` (additive smoothing, so a symbol never seen in training still
    has a non-zero probability and is coded exactly). The model is shared by encoder and decoder:
    its own size (:attr:`nbytes`) is stated apart from the bytes per image.
    """

    counts: np.ndarray
    alpha: float = 0.5

    def __post_init__(self) -> None:
        c = np.asarray(self.counts)
        if c.ndim != 2 or c.shape[1] < 1 or c.dtype.kind not in "iu" or (len(c) and c.min() < 0):
            raise DataError(f"entropy model counts must be a non-negative integer (d, levels) array, got {c.shape}")
        if not (np.isfinite(self.alpha) and self.alpha > 0):
            raise ConfigError(f"alpha must be > 0, got {self.alpha!r}")
        object.__setattr__(self, "counts", c.astype(np.uint32))

    @classmethod
    def fit(cls, symbols: Any, levels: int, alpha: float = 0.5) -> EntropyModel:
        """Count the symbols (N, d) of each dimension over ``0 .. levels - 1``."""
        s = np.asarray(symbols)
        if s.dtype.kind not in "iu" or s.ndim != 2:
            raise DataError(f"symbols must be an integer (N, d) array, got shape {s.shape} and dtype {s.dtype}")
        if len(s) and (s.min() < 0 or s.max() >= levels):
            raise DataError(f"symbols must lie in 0 .. {levels - 1}")
        counts = np.zeros((s.shape[1], levels), np.uint32)
        for j in range(s.shape[1]):
            counts[j] = np.bincount(s[:, j].astype(np.int64), minlength=levels)
        return cls(counts, alpha)

    @property
    def dim(self) -> int:
        return int(self.counts.shape[0])

    @property
    def levels(self) -> int:
        return int(self.counts.shape[1])

    @property
    def nbytes(self) -> int:
        """Size of the model itself (its counts as uint32)."""
        return int(self.counts.nbytes)

    def probabilities(self) -> np.ndarray:
        p = self.counts.astype(np.float64) + self.alpha
        return p / p.sum(1, keepdims=True)

    def bits(self, symbols: Any) -> float:
        """The ideal code length (bits) of ``symbols`` under the model (what the coder approaches)."""
        s = self._check(symbols)
        p = self.probabilities()
        return float(-np.log2(p[np.arange(self.dim)[None, :], s]).sum())

    def _check(self, symbols: Any) -> np.ndarray:
        s = np.asarray(symbols)
        if s.dtype.kind not in "iu" or s.ndim != 2 or s.shape[1] != self.dim:
            raise DataError(
                f"symbols must be an integer (N, {self.dim}) array, got shape {s.shape} and dtype {s.dtype}"
            )
        if len(s) and (s.min() < 0 or s.max() >= self.levels):
            raise DataError(f"symbols must lie in 0 .. {self.levels - 1}")
        return s.astype(np.int64)

    def _models(self) -> list[Any]:
        import constriction

        return [constriction.stream.model.Categorical(p, perfect=False) for p in self.probabilities()]

    def encode(self, symbols: Any) -> np.ndarray:
        """Range-code the rows of ``symbols`` (N, d) into one stream of uint32 words, a dimension at a
        time (all rows' first symbols, then their second, ...), each under its own categorical model."""
        return self._encode(self._check(symbols), self._models())

    @staticmethod
    def _encode(s: np.ndarray, models: list[Any]) -> np.ndarray:
        import constriction

        enc = constriction.stream.queue.RangeEncoder()
        if s.size:
            for j, model in enumerate(models):
                enc.encode(np.ascontiguousarray(s[:, j], np.int32), model)
        return np.asarray(enc.get_compressed(), np.uint32)

    def decode(self, words: Any, n: int) -> np.ndarray:
        """The ``n`` rows of symbols (n, d) that :meth:`encode` wrote into ``words``."""
        import constriction

        w = np.asarray(words)
        if w.dtype != np.uint32 or w.ndim != 1:
            raise DataError(f"a range-coded stream is a 1-d uint32 array, got {w.shape} {w.dtype}")
        if n < 0:
            raise DataError(f"the number of rows must be >= 0, got {n}")
        if n == 0:
            return np.zeros((0, self.dim), np.int64)
        dec = constriction.stream.queue.RangeDecoder(w)
        out = np.empty((n, self.dim), np.int64)
        for j, model in enumerate(self._models()):
            out[:, j] = dec.decode(model, n)
        return out

    def bytes_per_row(self, symbols: Any) -> np.ndarray:
        """Bytes on disk of each row coded as its own stream (what storing images one by one costs)."""
        s, models = self._check(symbols), self._models()
        return np.array([4 * len(self._encode(row[None, :], models)) for row in s], np.int64)
