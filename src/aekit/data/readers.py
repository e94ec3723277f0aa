"""The :class:`Dataset` container and the readers for every on-disk format.

Each reader turns one kind of source (``.npy``, ``.npz``, CSV/TSV text,
Parquet, IDX, a folder of images) into a validated :class:`Dataset`. Bad input
of any kind raises :class:`~aekit.errors.DataError` with one sentence naming
the file and the problem; no other exception type escapes for bad input.

Only regular files (or links to them) are opened: a named pipe would block the
open and a device never ends, so both are refused from their ``stat``. Text
tables and ``.npy`` arrays may be compressed (``.gz``, ``.bz2``, ``.xz``); they
are inflated no further than :data:`_MAX_INFLATION` times their size, the
most DEFLATE can expand data, so a compression bomb cannot exhaust memory.

The readers are vectorized: pandas' C parser reads text tables, ``numpy``
reads binary formats, and Python loops only run once per file (images) or on
the error path (to locate the offending line, row or column).
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import functools
import gzip
import io
import lzma
import math
import os
import re
import stat
import tokenize
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aekit.errors import ConfigError, DataError

__all__ = [
    "Dataset",
    "array_dataset",
    "as_matrix",
    "read_idx",
    "read_idx_dataset",
    "read_idx_pair",
    "read_image_folder",
    "read_npy",
    "read_npz",
    "read_parquet",
    "read_path",
    "read_table",
]

_FLOAT32_MAX = np.float64(np.finfo(np.float32).max)  # a float64 scalar: float16 arrays are not cast to it


# ---------------------------------------------------------------------------
# Validation and the Dataset container
# ---------------------------------------------------------------------------


def _brief(exc: BaseException) -> str:
    """A library's exception message on one line, for a DataError's one sentence."""
    return " ".join(str(exc).split())


def _column_label(index: int, columns: Sequence | None) -> str:
    """Name column ``index`` for a message: ``'b'`` for names, ``5`` for positions."""
    name = index if columns is None else columns[index]
    return repr(name) if isinstance(name, str) else str(name)


def _first_true(mask: np.ndarray) -> tuple[int, int]:
    """Return the (row, column) of the first True cell of a 2-D mask, row-major."""
    return divmod(int(mask.argmax()), mask.shape[1])


def _check_float_range(x: np.ndarray, source: str, columns: Sequence | None) -> None:
    """Raise DataError at the first NaN, infinity or value beyond the float32 range."""
    if x.size == 0 or (x.max() <= _FLOAT32_MAX and x.min() >= -_FLOAT32_MAX):
        return  # NaN propagates through max/min and fails both comparisons
    with np.errstate(invalid="ignore"):
        row, col = _first_true(~(np.abs(x) <= _FLOAT32_MAX))
    value = float(x[row, col])
    if math.isnan(value):
        problem = "holds NaN"
    elif math.isinf(value):
        problem = f"holds {value}"
    else:
        problem = f"holds {value:g}, which does not fit in float32"
    raise DataError(f"{source}: row {row}, column {_column_label(col, columns)} {problem}")


def as_matrix(x, source: str, *, columns: Sequence | None = None, allow_empty: bool = False) -> np.ndarray:
    """Validate a 2-D numeric array and return it as C-contiguous float32.

    Parameters
    ----------
    x : array_like
        The rows, shape ``(n, d)``; bool, integer and float dtypes are accepted.
    source : str
        Where the data came from; every message starts with it.
    columns : sequence of str or int, optional
        Names of the ``d`` columns, used in messages instead of positions.
    allow_empty : bool, default False
        Accept ``n == 0`` rows (subsets may be empty; loaded data may not).

    Returns
    -------
    numpy.ndarray
        ``(n, d)`` float32, C-contiguous, all finite (a view of ``x`` when it
        already is such an array).

    Raises
    ------
    DataError
        Non-numeric dtype (object, string, complex...), not 2-D, no columns, no
        rows, NaN or infinite values, or values beyond the float32 range; the
        message names the first offending row and column.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{source}: holds values of type {x.dtype}; expected numbers (bool, integer or float)")
    if x.ndim != 2:
        raise DataError(f"{source}: expected a 2-D array of rows (n, d), got shape {x.shape}")
    if x.shape[1] == 0:
        raise DataError(f"{source}: the rows have no columns")
    if x.shape[0] == 0 and not allow_empty:
        raise DataError(f"{source}: no data rows")
    if x.dtype.kind == "f":
        _check_float_range(x, source, columns)
    return np.ascontiguousarray(x, dtype=np.float32)


def _as_labels(y, n: int, source: str) -> np.ndarray | None:
    """Validate labels: 1-D, length ``n``; integral values become int64."""
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"{source}: labels have shape {y.shape}, expected ({n},) like the rows")
    if y.dtype.kind in "biu":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
        return y.astype(np.int64)
    if y.dtype.kind == "O":
        return y.astype(str)
    return y


def _as_image_shape(shape, d: int, source: str) -> tuple[int, int, int] | None:
    """Normalize ``(C, H, W)`` or ``(H, W)`` and check that it covers ``d`` values."""
    if shape is None:
        return None
    try:
        dims = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ConfigError(f"image_shape must be (C, H, W) or (H, W), got {shape!r}") from None
    if len(dims) == 2:
        dims = (1, *dims)
    if len(dims) != 3 or min(dims) < 1:
        raise ConfigError(f"image_shape must be (C, H, W) or (H, W) of positive sizes, got {shape!r}")
    if math.prod(dims) != d:
        raise DataError(f"{source}: image shape {dims} holds {math.prod(dims)} values, but the rows have {d}")
    return dims


@dataclass(frozen=True, eq=False)
class Dataset:
    """Rows of features, optional labels, and the image layout when rows are images.

    Construction validates and normalizes the fields (see :func:`as_matrix`):
    ``x`` becomes ``(n, d)`` float32, C-contiguous and finite; ``y`` becomes
    int64 when integral; ``image_shape`` ``(H, W)`` becomes ``(1, H, W)``.

    Attributes
    ----------
    x : numpy.ndarray
        ``(n, d)`` float32 rows.
    y : numpy.ndarray or None
        ``(n,)`` labels (int64 when integral, else as read) or None.
    image_shape : tuple of int or None
        ``(C, H, W)`` with ``C * H * W == d`` when the rows are images.
    source : str
        Human-readable origin, e.g. ``"digits"`` or ``"path/to/file.csv"``.
    """

    x: np.ndarray
    y: np.ndarray | None = None
    image_shape: tuple[int, int, int] | None = None
    source: str = "array"

    def __post_init__(self) -> None:
        x = as_matrix(self.x, self.source, allow_empty=True)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", _as_labels(self.y, x.shape[0], self.source))
        shape = _as_image_shape(self.image_shape, x.shape[1], self.source)
        object.__setattr__(self, "image_shape", shape)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        """Number of features ``d`` per row."""
        return self.x.shape[1]

    def subset(self, index) -> Dataset:
        """Return the rows selected by an integer index array, a boolean mask or a slice.

        Parameters
        ----------
        index : array_like of int or bool, or slice
            Row selection, as accepted by numpy indexing.

        Returns
        -------
        Dataset
            The selected rows with their labels, same image shape and source.
        """
        y = None if self.y is None else self.y[index]
        return Dataset(self.x[index], y, self.image_shape, self.source)

    def images(self) -> np.ndarray:
        """Return the rows as an ``(n, C, H, W)`` view.

        Raises
        ------
        DataError
            When the rows are not images (``image_shape`` is None).
        """
        if self.image_shape is None:
            raise DataError(f"{self.source}: the rows are not images (no image shape); pass image_shape")
        return self.x.reshape(len(self), *self.image_shape)


def _rows_and_image_shape(arr: np.ndarray, source: str):
    """Flatten 3-D/4-D image arrays into rows; return (rows, image_shape or None)."""
    if arr.ndim == 2:
        return arr, None
    if arr.ndim == 3:
        arr = arr[:, np.newaxis]
    elif arr.ndim == 4 and not 1 <= arr.shape[1] <= 4:
        if arr.shape[3] not in (1, 3, 4):
            raise DataError(
                f"{source}: cannot tell the channel axis of the image array of shape {arr.shape}; "
                "expected (n, C, H, W) with C in 1..4 or (n, H, W, C) with C in 1, 3, 4"
            )
        arr = arr.transpose(0, 3, 1, 2)
    elif arr.ndim != 4:
        raise DataError(
            f"{source}: holds a {arr.ndim}-D array of shape {arr.shape}; expected rows (n, d), "
            "images (n, H, W) or images (n, C, H, W)"
        )
    n, *image_shape = arr.shape
    return arr.reshape(n, math.prod(image_shape)), tuple(image_shape)


def array_dataset(arr, source: str, y=None) -> Dataset:
    """Build a Dataset from a rows or image array.

    Parameters
    ----------
    arr : numpy.ndarray
        ``(n, d)`` rows; ``(n, H, W)`` single-channel images; ``(n, C, H, W)``
        with ``C`` in 1..4, or ``(n, H, W, C)`` with ``C`` in (1, 3, 4) and
        ``shape[1]`` not in (1, 3, 4), converted to channels-first.
    source : str
        Origin named in messages and kept in ``Dataset.source``.
    y : array_like, optional
        ``(n,)`` labels.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Wrong number of dimensions, no rows, non-numeric or non-finite values.
    """
    rows, image_shape = _rows_and_image_shape(np.asarray(arr), source)
    return Dataset(as_matrix(rows, source), y, image_shape, source)


# ---------------------------------------------------------------------------
# File access helpers
# ---------------------------------------------------------------------------


def _reader(function: Callable) -> Callable:
    """Decorate a reader so that OS and decoding errors become DataError naming the path."""

    @functools.wraps(function)
    def wrapper(path, *args, **kwargs):
        source = os.fspath(path)
        try:
            return function(source, *args, **kwargs)
        except FileNotFoundError:
            raise DataError(f"{source}: no such file") from None
        except IsADirectoryError:
            raise DataError(f"{source}: is a folder, not a file") from None
        except PermissionError:
            raise DataError(f"{source}: permission denied") from None
        except UnicodeDecodeError:
            raise DataError(f"{source}: not a UTF-8 text file") from None
        except OSError as exc:
            raise DataError(f"{source}: cannot read the file ({_brief(exc)})") from None
        except MemoryError:
            raise DataError(f"{source}: too large to load into memory") from None

    return wrapper


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_regular_file(source) -> None:
    """Raise DataError unless ``source`` is a regular file or a link to one, without opening it
    (opening a named pipe blocks until a writer comes; a device such as /dev/zero never ends)."""
    try:
        mode = os.stat(source).st_mode
    except FileNotFoundError:
        broken = os.path.islink(source)
        raise DataError(f"{source}: {'is a broken symbolic link' if broken else 'no such file'}") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise DataError(f"{source}: cannot read the file ({_brief(exc)})") from None
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise DataError(f"{source}: is a folder, not a file")
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
    raise DataError(f"{source}: is {kind}, not a regular file; aekit reads data from regular files only")


#: DEFLATE cannot expand data by more than about 1032:1, so a gzip file of n bytes holds at most this much;
#: bzip2 and xz data are held to the same ratio (a table or array that compressible is a bomb, or can be
#: given decompressed)
_MAX_INFLATION = 1032


def _inflation_limit(compressed_size: int) -> int:
    """The most bytes a compressed file of ``compressed_size`` bytes may inflate to."""
    return _MAX_INFLATION * compressed_size + 1024


#: compressed text tables and .npy arrays, by suffix: (decompressing reader over a binary file, codec name)
_COMPRESSIONS: dict[str, tuple[Callable, str]] = {
    ".gz": (lambda f: gzip.GzipFile(fileobj=f, mode="rb"), "gzip"),
    ".bz2": (lambda f: bz2.BZ2File(f, "rb"), "bzip2"),
    ".xz": (lambda f: lzma.LZMAFile(f, "rb"), "xz"),  # noqa: SIM115 (the reader closes it)
}
#: formats read compressed as well (the names end in one of these, then a suffix of _COMPRESSIONS)
_COMPRESSIBLE = (".csv", ".tsv", ".txt", ".npy")


def _compression(source: str) -> str | None:
    """The suffix of :data:`_COMPRESSIONS` that ``source`` ends in, or None."""
    suffix = Path(source).suffix.lower()
    return suffix if suffix in _COMPRESSIONS else None


class _Inflating(io.RawIOBase):
    """The decompressed bytes of a ``.gz``, ``.bz2`` or ``.xz`` file, read as a stream.

    A decoder error (corrupt or truncated data) and inflating beyond :func:`_inflation_limit`
    of the compressed size raise DataError naming the file.
    """

    def __init__(self, source: str, suffix: str):
        super().__init__()
        make, self.codec = _COMPRESSIONS[suffix]
        self.source = source
        self._file = open(source, "rb")  # noqa: SIM115 (closed by close(), this reader's own exit)
        self.compressed_size = os.fstat(self._file.fileno()).st_size
        self.limit = _inflation_limit(self.compressed_size)
        self._stream = make(self._file)
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            n = self._stream.readinto(buffer)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise DataError(f"{self.source}: corrupt {self.codec} data ({_brief(exc)})") from None
        self._count += n
        if self._count > self.limit:
            raise DataError(
                f"{self.source}: inflates to more than {_MAX_INFLATION} times its {self.compressed_size} "
                f"compressed bytes, which aekit refuses (a compression bomb?); decompress it first if it is data"
            )
        return n

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            self._file.close()
        super().close()


def _open_text(source: str):
    """``source`` as UTF-8 text (a BOM skipped, line endings kept), inflated when it is compressed."""
    suffix = _compression(source)
    if suffix is None:
        return open(source, encoding="utf-8-sig", newline="")
    return io.TextIOWrapper(io.BufferedReader(_Inflating(source, suffix)), encoding="utf-8-sig", newline="")


def _read_up_to(f, n: int) -> bytes:
    """Read at most ``n`` bytes from ``f`` in chunks (no ``n``-byte buffer is allocated up front)."""
    parts, left = [], n
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read_idx_bytes(source: str) -> tuple[bytes, bool]:
    """Read an IDX file, gunzipping it when it starts with the gzip magic bytes; return the bytes
    and whether they are the whole file. A compressed file is inflated no further than its
    header declares (plus one byte, to notice trailing data), and a header declaring more than
    the compressed size could hold is refused unread."""
    with open(source, "rb") as f:
        raw = f.read()
    if not raw.startswith(b"\x1f\x8b"):
        return raw, True
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as g:
            head = _read_up_to(g, 4)
            if len(head) < 4 or head[0] or head[1] or head[2] not in _IDX_TYPES:
                return head, True  # _idx_layout names the problem
            head += _read_up_to(g, 4 * head[3])
            dtype, dims, header = _idx_layout(head, source)
            size = header + math.prod(dims) * dtype.itemsize
            if size > _inflation_limit(len(raw)):
                raise DataError(
                    f"{source}: truncated IDX file: the header declares {size} bytes, more than "
                    f"its {len(raw)} compressed bytes can hold"
                )
            raw = head + _read_up_to(g, size + 1 - len(head))
            return raw, len(raw) <= size or not g.read(1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{source}: corrupt gzip data ({_brief(exc)})") from None


# ---------------------------------------------------------------------------
# NumPy formats
# ---------------------------------------------------------------------------


def _npy_header(f, source: str) -> tuple[tuple[int, ...], np.dtype]:
    """Read the header of a .npy stream: (shape, dtype); DataError when it is malformed (numpy's
    parser raises many types) or declares Python objects."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read_header(f)
    except (ValueError, EOFError, TypeError, SyntaxError, tokenize.TokenError, MemoryError, RecursionError) as exc:
        raise DataError(f"{source}: not a valid .npy file ({_brief(exc)})") from None
    if dtype.hasobject:
        raise DataError(
            f"{source}: holds an array of Python objects, which aekit refuses to load (it would need pickle)"
        )
    return shape, dtype


def _load_npy(source: str) -> np.ndarray:
    """Load a .npy array without pickle, checking the header and size first."""
    suffix = _compression(source)
    if suffix is not None:
        return _load_compressed_npy(source, suffix)
    with open(source, "rb") as f:
        shape, dtype = _npy_header(f, source)
        expected = math.prod(shape) * dtype.itemsize
        found = os.fstat(f.fileno()).st_size - f.tell()
        if found < expected:
            raise DataError(f"{source}: truncated .npy file: expected {expected} data bytes, found {found}")
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False)
        except (ValueError, EOFError) as exc:
            raise DataError(f"{source}: not a valid .npy file ({_brief(exc)})") from None


def _load_compressed_npy(source: str, suffix: str) -> np.ndarray:
    """Load a compressed .npy array: its header is read first, and data it declares beyond what
    the compressed bytes can inflate to is refused before anything is allocated."""
    with _Inflating(source, suffix) as f:
        shape, dtype = _npy_header(f, source)
        expected = math.prod(shape) * dtype.itemsize
        if expected > f.limit:
            raise DataError(
                f"{source}: truncated .npy file: the header declares {expected} data bytes, more than "
                f"its {f.compressed_size} compressed bytes can hold"
            )
    with _Inflating(source, suffix) as f:  # read again from the start: numpy parses the header itself
        try:
            return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, EOFError) as exc:
            raise DataError(f"{source}: truncated .npy file ({_brief(exc)})") from None


@_reader
def read_npy(path) -> Dataset:
    """Read a ``.npy`` file of rows or images (never unpickles).

    The file may be compressed: a name ending in ``.npy.gz``, ``.npy.bz2`` or
    ``.npy.xz`` is inflated while it is read (no larger than
    :data:`_MAX_INFLATION` times the file).

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Missing, not a regular file, truncated or malformed file, corrupt
        compressed data, object arrays, wrong dimensions, bad values.
    """
    _check_regular_file(path)
    return array_dataset(_load_npy(path), path)


_NPZ_X_KEYS = ("x", "X", "data", "images")
_NPZ_Y_KEYS = ("y", "Y", "labels", "target")
_ZIP_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)


def _npz_keys(keys: list[str], source: str) -> tuple[str, str | None]:
    """Pick the data key and the labels key (or None) of an .npz archive."""
    x_key = next((k for k in _NPZ_X_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
    if x_key is None:
        raise DataError(
            f"{source}: cannot tell which array holds the data among the keys {keys}; "
            f"name it one of {list(_NPZ_X_KEYS)}"
        )
    y_key = next((k for k in _NPZ_Y_KEYS if k in keys and k != x_key), None)
    return x_key, y_key


def _check_npz_member(archive: zipfile.ZipFile, key: str, source: str) -> None:
    """Refuse an .npz member that is not a .npy array, or whose header declares more data than
    the member holds (numpy would allocate all of it before reading)."""
    name = key if key in archive.namelist() else key + ".npy"
    info = archive.getinfo(name)
    where = f"{source}: not a valid .npz file (member {name})"
    with archive.open(info) as f:
        shape, dtype = _npy_header(f, where)
        found = info.file_size - f.tell()
    expected = math.prod(shape) * dtype.itemsize
    if found < expected:
        raise DataError(f"{where}: truncated .npy data: expected {expected} data bytes, found {found}")


@_reader
def read_npz(path) -> Dataset:
    """Read an ``.npz`` archive (never unpickles).

    The data is the array under ``x``, ``X``, ``data`` or ``images`` (else the
    only array); labels are taken from ``y``, ``Y``, ``labels`` or ``target``
    when present.

    Parameters
    ----------
    path : str or os.PathLike
        The archive.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Not a regular file, not a zip archive, corrupt members, object arrays,
        ambiguous keys, bad values.
    """
    _check_regular_file(path)
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a valid .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            x_key, y_key = _npz_keys(list(archive.files), path)
            for key in (x_key, y_key):
                if key is not None:
                    _check_npz_member(archive.zip, key, path)
            x = archive[x_key]
            y = None if y_key is None else archive[y_key]
    except DataError:
        raise
    except _ZIP_ERRORS as exc:
        raise DataError(f"{path}: not a valid .npz file ({_brief(exc)})") from None
    return array_dataset(x, path, y)


# ---------------------------------------------------------------------------
# Shared table handling (CSV and Parquet)
# ---------------------------------------------------------------------------


def _label_position(label_column, names: list[str] | None, n_columns: int, source: str) -> int | None:
    """Resolve ``label_column`` (name, int, or digit string) to a column position."""
    if label_column is None:
        return None
    if isinstance(label_column, str) and names is not None and label_column.strip() in names:
        return names.index(label_column.strip())
    if isinstance(label_column, str) and re.fullmatch(r"\s*-?\d+\s*", label_column):
        label_column = int(label_column)
    if (
        isinstance(label_column, (int, np.integer))
        and not isinstance(label_column, bool)
        and -n_columns <= label_column < n_columns
    ):
        return int(label_column) % n_columns
    if names is None:
        known = f"the file has no header, so give a column index in 0..{n_columns - 1}"
    else:
        shown = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        known = f"the columns are {shown}"
    raise DataError(f"{source}: no label column {label_column!r}; {known}")


def _split_labels(frame, names: list[str] | None, label_column, source: str):
    """Split a DataFrame into (feature frame, feature column names or positions, labels or None)."""
    columns = list(range(frame.shape[1])) if names is None else names
    label = _label_position(label_column, names, frame.shape[1], source)
    if label is None:
        return frame, columns, None
    keep = [i for i in range(frame.shape[1]) if i != label]
    labels = frame.iloc[:, label].to_numpy()
    return frame.iloc[:, keep], [columns[i] for i in keep], labels


# ---------------------------------------------------------------------------
# Delimited text (CSV, TSV, whitespace)
# ---------------------------------------------------------------------------

_NAN_SPELLINGS = ("nan", "+nan", "-nan")


def _first_line(source: str) -> tuple[str, int]:
    """Return the first non-blank line and its 0-based line index."""
    with _open_text(source) as f:
        for index, line in enumerate(f):
            if line.strip():
                return line.rstrip("\r\n"), index
    raise DataError(f"{source}: empty file")


def _sniff_delimiter(line: str) -> str | None:
    """Pick tab, comma or semicolon by presence in the first line; None means whitespace."""
    return next((d for d in ("\t", ",", ";") if d in line), None)


def _split_fields(line: str, delimiter: str | None) -> list[str]:
    """Split one line into fields the way the table parser does."""
    if delimiter is None:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter), [])


def _is_number(text: str) -> bool:
    """True when ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _raise_if_ragged(source: str, delimiter: str | None, expected: int) -> None:
    """Scan the file (error path only) and raise at the first line whose field count differs."""
    with _open_text(source) as f:
        if delimiter is None:
            rows = ((number, line.split()) for number, line in enumerate(f, start=1))
        else:
            reader = csv.reader(f, delimiter=delimiter)
            rows = ((reader.line_num, fields) for fields in reader)
        first = None
        for number, fields in rows:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if first is None:
                first = number
            elif len(fields) != expected:
                raise DataError(
                    f"{source}: line {number} has {len(fields)} fields, expected {expected} like line {first}"
                )


def _parse_table(source: str, delimiter: str | None, header_line: int | None, n_fields: int):
    """Parse a delimited file with pandas' C parser, skipping the header line if any; a
    compressed file is inflated by :class:`_Inflating` (bounded), not by pandas."""
    import pandas as pd

    suffix = _compression(source)
    try:
        with (
            warnings.catch_warnings(),
            (
                contextlib.nullcontext(source) if suffix is None else io.BufferedReader(_Inflating(source, suffix))
            ) as handle,
        ):
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # mixed columns are checked later
            return pd.read_csv(
                handle,
                sep=r"\s+" if delimiter is None else delimiter,
                header=None,
                skiprows=0 if header_line is None else header_line + 1,
                keep_default_na=False,
                na_values=[""],
                engine="c",
                encoding="utf-8",
            )
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: no data rows") from None
    except pd.errors.ParserError as exc:
        _raise_if_ragged(source, delimiter, n_fields)
        raise DataError(f"{source}: cannot parse the file ({_brief(exc)})") from None


def _check_no_missing(frame, source: str, delimiter: str | None, n_fields: int, names) -> None:
    """Raise at the first ragged line or, failing that, the first empty cell."""
    if frame.shape[1] != n_fields:
        _raise_if_ragged(source, delimiter, n_fields)
        raise DataError(f"{source}: the first line has {n_fields} fields but the rows have {frame.shape[1]}")
    missing = frame.isna().to_numpy()
    if missing.any():
        _raise_if_ragged(source, delimiter, n_fields)
        row, col = _first_true(missing)
        raise DataError(f"{source}: row {row}, column {_column_label(col, names)} is empty")


def _numeric_frame(frame, names: list, source: str):
    """Convert text columns to numbers; raise at the first non-numeric cell."""
    import pandas as pd

    frame = frame.copy(deep=False)
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if pd.api.types.is_numeric_dtype(column.dtype):
            continue
        text = column.astype(str)
        values = pd.to_numeric(text, errors="coerce")
        bad = (values.isna() & ~text.str.strip().str.lower().isin(_NAN_SPELLINGS)).to_numpy()
        if bad.any():
            row = int(bad.argmax())
            raise DataError(
                f"{source}: row {row}, column {_column_label(position, names)} "
                f"holds a non-numeric value {text.iloc[row]!r}"
            )
        frame.isetitem(position, values)
    return frame


@_reader
def read_table(path, label_column=None) -> Dataset:
    """Read a delimited text table (``.csv``, ``.tsv``, ``.txt``), plain or compressed.

    The delimiter is sniffed from the first non-blank line (tab, comma,
    semicolon, else whitespace); that line is a header when one of its cells
    is not a number. A name ending in ``.gz``, ``.bz2`` or ``.xz`` (e.g.
    ``x.csv.gz``) is inflated while it is read, to no more than
    :data:`_MAX_INFLATION` times the file's size.

    Parameters
    ----------
    path : str or os.PathLike
        The file (UTF-8).
    label_column : str or int, optional
        Column holding the labels: a header name, or a position (negative
        counts from the end; a string of digits such as ``"-1"`` works too).

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Not a regular file, corrupt compressed data, empty file, header without
        rows, ragged lines, empty or non-numeric cells, unknown label column,
        NaN/Inf or values beyond float32.
    """
    _check_regular_file(path)
    line, line_index = _first_line(path)
    delimiter = _sniff_delimiter(line)
    fields = _split_fields(line, delimiter)
    has_header = any(cell.strip() and not _is_number(cell) for cell in fields)
    frame = _parse_table(path, delimiter, line_index if has_header else None, len(fields))
    names = [cell.strip() for cell in fields] if has_header else None
    _check_no_missing(frame, path, delimiter, len(fields), names)
    features, feature_names, labels = _split_labels(frame, names, label_column, path)
    features = _numeric_frame(features, feature_names, path)
    x = as_matrix(features.to_numpy(dtype=np.float64), path, columns=feature_names)
    return Dataset(x, labels, None, path)


# ---------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------


@_reader
def read_parquet(path, label_column=None) -> Dataset:
    """Read a Parquet table whose columns are numeric (except the label column).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    label_column : str or int, optional
        Name (or position) of the label column.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Not a regular file, corrupt file, no rows or columns, non-numeric
        feature columns, unknown label column, nulls/NaN/Inf or values beyond
        float32.
    """
    import pandas as pd
    import pyarrow

    _check_regular_file(path)
    try:
        frame = pd.read_parquet(path)
    except (ValueError, OSError, pyarrow.ArrowException) as exc:
        raise DataError(f"{path}: not a valid Parquet file ({_brief(exc)})") from None
    except Exception as exc:  # corrupted pandas metadata fails inside pyarrow's conversion in many ways
        raise DataError(f"{path}: not a valid Parquet file ({type(exc).__name__}: {_brief(exc)})") from None
    names = [str(c) for c in frame.columns]
    features, feature_names, labels = _split_labels(frame, names, label_column, path)
    for position, dtype in enumerate(features.dtypes):
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
            raise DataError(f"{path}: column {feature_names[position]!r} is not numeric (dtype {dtype})")
    try:
        x = features.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: cannot convert the columns to numbers ({_brief(exc)})") from None
    return Dataset(as_matrix(x, path, columns=feature_names), labels, None, path)


# ---------------------------------------------------------------------------
# IDX (MNIST format)
# ---------------------------------------------------------------------------

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_layout(raw: bytes, source: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Parse an IDX header; return (dtype, dims, header length)."""
    if len(raw) < 4:
        raise DataError(f"{source}: truncated IDX header: expected at least 4 bytes, found {len(raw)}")
    if raw[0] or raw[1]:
        raise DataError(f"{source}: not an IDX file (bad magic bytes {raw[:4].hex(' ')})")
    if raw[2] not in _IDX_TYPES:
        raise DataError(f"{source}: unknown IDX type code 0x{raw[2]:02X}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0:
        raise DataError(f"{source}: IDX file declares 0 dimensions")
    if len(raw) < header:
        raise DataError(f"{source}: truncated IDX header: expected {header} bytes, found {len(raw)}")
    dims = tuple(int(v) for v in np.frombuffer(raw, ">u4", ndim, offset=4))
    return np.dtype(_IDX_TYPES[raw[2]]), dims, header


@_reader
def read_idx(path) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed, detected by magic bytes).

    Parameters
    ----------
    path : str or os.PathLike
        The file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    numpy.ndarray
        The array in native byte order with the declared dimensions
        (``(n,)`` for labels, ``(n, H, W)`` for images).

    Raises
    ------
    DataError
        Not a regular file, corrupt gzip data, bad magic, unknown type code,
        truncated header or data, trailing data.
    """
    _check_regular_file(path)
    raw, whole = _read_idx_bytes(path)
    dtype, dims, header = _idx_layout(raw, path)
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise DataError(f"{path}: truncated IDX file: expected {expected} data bytes, found {found}")
    if found > expected:
        raise DataError(
            f"{path}: trailing data in IDX file: expected {expected} data bytes, found {found if whole else 'more'}"
        )
    data = np.frombuffer(raw, dtype, math.prod(dims), offset=header)
    return data.astype(dtype.newbyteorder("=")).reshape(dims)


def read_idx_pair(images_path, labels_path, source: str) -> Dataset:
    """Read an IDX images file and its IDX labels file into one Dataset.

    Parameters
    ----------
    images_path, labels_path : str or os.PathLike
        The two IDX files; the labels must be 1-D with one label per image.
    source : str
        ``Dataset.source`` of the result.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Either file is invalid, or the label count does not match.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{os.fspath(labels_path)}: labels of shape {labels.shape} do not match "
            f"the {len(images)} images in {Path(images_path).name}"
        )
    return array_dataset(images, source, labels)


def _labels_sibling(path: Path) -> Path | None:
    """Find ``*-labels-idx1-*`` next to ``*-images-idx3-*``, compressed or not."""
    if "images" not in path.name:
        return None
    base = path.name.removesuffix(".gz").replace("images", "labels")
    base = re.sub(r"idx\d", "idx1", base)
    return next((c for c in (path.with_name(base), path.with_name(base + ".gz")) if c.is_file()), None)


@_reader
def read_idx_dataset(path) -> Dataset:
    """Read an IDX data file, attaching labels from a matching labels file if present.

    For ``train-images-idx3-ubyte(.gz)`` the labels come from
    ``train-labels-idx1-ubyte`` or ``train-labels-idx1-ubyte.gz`` in the same
    folder. A 3-D IDX array ``(n, H, W)`` becomes images ``(1, H, W)``.

    Parameters
    ----------
    path : str or os.PathLike
        The IDX file.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Invalid IDX data (see :func:`read_idx`), a 1-D array, or labels that do
        not match the rows.
    """
    labels = _labels_sibling(Path(path))
    if labels is not None:
        return read_idx_pair(path, labels, path)
    return array_dataset(read_idx(path), path)


# ---------------------------------------------------------------------------
# Folders of images
# ---------------------------------------------------------------------------

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_IMAGE_FORMATS = ("PNG", "JPEG", "BMP")
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
#: Pillow's modes of 16-bit grayscale images (16-bit PNGs open as "I;16", or "I" in older Pillow)
_DEEP_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
#: an 8-bit value v is the 16-bit value 257 * v (0 -> 0, 255 -> 65535)
_EIGHT_TO_SIXTEEN = 257


def _image_files_in(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files and folders skipped); an
    entry with an image suffix that is not a regular file (a named pipe, a device, a broken link)
    is refused, unopened."""
    files = sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith(".") and not p.is_dir()
    )
    for file in files:
        _check_regular_file(file)
    return files


def _list_images(folder: Path, source: str) -> tuple[list[Path], np.ndarray | None]:
    """Return the image files and, for class subfolders, their int labels."""
    files = _image_files_in(folder)
    if files:
        return files, None
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        suffix = folder.suffix.lower()
        if suffix in _TABLE_READERS or suffix in _ARRAY_READERS or suffix in _COMPRESSIONS:
            raise DataError(f"{source}: is a folder, not a {suffix} file, and holds no images")
        raise DataError(f"{source}: no image files ({', '.join(_IMAGE_SUFFIXES)}) and no class subfolders")
    files, labels = [], []
    for label, class_folder in enumerate(classes):
        members = _image_files_in(class_folder)
        if not members:
            raise DataError(f"{class_folder}: class folder holds no image files")
        files += members
        labels += [label] * len(members)
    return files, np.array(labels, dtype=np.int64)


def _is_grayscale(image) -> bool:
    """True for gray modes, and for palette images whose palette is gray."""
    if image.mode == "P":
        rgb = np.asarray(image.convert("RGB"))
        return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return image.mode in _GRAY_MODES


def _sixteen_bit_pixels(image, file: Path) -> np.ndarray:
    """The pixels of a 16-bit grayscale image as uint16 (Pillow's ``convert("L")`` would clamp them)."""
    pixels = np.asarray(image)
    if pixels.dtype.kind == "i" and pixels.size and (pixels.min() < 0 or pixels.max() > 0xFFFF):
        raise DataError(f"{file}: pixel values {pixels.min()}..{pixels.max()} do not fit in 16 bits")
    return pixels.astype(np.uint16)


def _decode_image(file: Path, mode: str | None) -> np.ndarray:
    """Decode one image to 'L' (H, W) or 'RGB' (H, W, 3) pixels (mode None: choose from the image):
    uint8, or uint16 for a 16-bit grayscale image (its gray repeated in three channels for 'RGB')."""
    from PIL import Image

    try:
        with Image.open(file, formats=_IMAGE_FORMATS) as image:
            if mode is None:
                mode = "L" if _is_grayscale(image) else "RGB"
            if image.mode in _DEEP_MODES:
                pixels = _sixteen_bit_pixels(image, file)
                return pixels if mode == "L" else np.repeat(pixels[..., np.newaxis], 3, axis=2)
            return np.asarray(image.convert(mode))
    except DataError:
        raise
    except Exception as exc:  # PIL decoders raise many types on corrupt files
        raise DataError(f"{file}: cannot read the image ({_brief(exc)})") from None


@_reader
def read_image_folder(path) -> Dataset:
    """Read a folder of PNG/JPEG/BMP images of one size.

    The images are either all directly in the folder (sorted by name, no
    labels), or, when the folder holds only subfolders, one class per
    subfolder (sorted names give labels 0..k-1, like torchvision's
    ImageFolder). If the first image is grayscale all are read as 'L', else
    all as 'RGB'.

    Pixel values keep the images' integer range, at full depth: 0..255 for
    8-bit images, 0..65535 for 16-bit grayscale PNGs (the default ``unit``
    scaling then maps either onto [0, 1]). In a folder that mixes the two, the
    8-bit values are multiplied by 257 so that all span 0..65535 (black stays
    0 and white is 65535 in every file, as an image viewer shows them).
    Pillow reads 16-bit colour PNGs at 8 bits (their high bytes).

    Parameters
    ----------
    path : str or os.PathLike
        The folder.

    Returns
    -------
    Dataset
        Rows of ``C * H * W`` pixel values with ``image_shape`` ``(C, H, W)``.

    Raises
    ------
    DataError
        No images, an unreadable image, a member that is not a regular file,
        or an image whose size differs from the first one.
    """
    files, labels = _list_images(Path(path), path)
    first = _decode_image(files[0], None)
    mode = "L" if first.ndim == 2 else "RGB"
    pixels = np.empty((len(files), *first.shape), dtype=first.dtype)
    pixels[0] = first
    for i, file in enumerate(files[1:], start=1):
        image = _decode_image(file, mode)
        if image.shape[:2] != first.shape[:2]:
            (h, w), (eh, ew) = image.shape[:2], first.shape[:2]
            raise DataError(f"{file}: image is {w}x{h}, expected {ew}x{eh} like {files[0].name}")
        if image.dtype != pixels.dtype:  # one 8-bit, the other 16-bit: both on the 16-bit scale
            if image.dtype == np.uint8:
                image = np.multiply(image, _EIGHT_TO_SIXTEEN, dtype=np.uint16)
            else:
                pixels = np.multiply(pixels, _EIGHT_TO_SIXTEEN, dtype=np.uint16)  # rows past i are overwritten
        pixels[i] = image
    if pixels.ndim == 4:
        pixels = pixels.transpose(0, 3, 1, 2)
    return array_dataset(pixels, path, labels)


# ---------------------------------------------------------------------------
# Dispatch by path
# ---------------------------------------------------------------------------

_TABLE_READERS = {
    ".csv": read_table,
    ".tsv": read_table,
    ".txt": read_table,
    ".parquet": read_parquet,
    ".pq": read_parquet,
}
_ARRAY_READERS = {".npy": read_npy, ".npz": read_npz}


def _is_idx_name(name: str) -> bool:
    """IDX files are recognized by 'idx' in the name or an '-ubyte' ending (before .gz)."""
    return "idx" in name.lower() or name.lower().removesuffix(".gz").endswith("-ubyte")


def _format_suffix(path: Path) -> str:
    """The suffix that names the format: ``.csv`` for ``x.csv`` and ``x.csv.gz`` alike; a
    compressed name of another format keeps both (``.parquet.gz``)."""
    suffix = path.suffix.lower()
    if suffix in _COMPRESSIONS:
        inner = Path(path.stem).suffix.lower()
        return inner if inner in _COMPRESSIBLE else inner + suffix
    return suffix


def read_path(path, *, label_column=None) -> Dataset:
    """Read a file or folder, choosing the reader from its type.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy``, ``.npz``, ``.csv``/``.tsv``/``.txt``, ``.parquet``/``.pq``,
        an IDX file (name contains ``idx`` or ends in ``-ubyte``, optional
        ``.gz``), or a folder of images. Tables and ``.npy`` files may be
        compressed: ``x.csv.gz``, ``x.tsv.bz2``, ``x.npy.xz``...
    label_column : str or int, optional
        Label column of a CSV or Parquet table; ignored for other formats.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Missing path, not a regular file or folder (a named pipe, a device, a
        socket), unknown file type, or invalid content.
    """
    source = os.fspath(path)
    p = Path(source)
    if p.is_dir():
        return read_image_folder(source)
    _check_regular_file(source)
    suffix = _format_suffix(p)
    if suffix in _TABLE_READERS:
        return _TABLE_READERS[suffix](source, label_column=label_column)
    if suffix in _ARRAY_READERS:
        return _ARRAY_READERS[suffix](source)
    if _is_idx_name(p.name):
        return read_idx_dataset(source)
    raise DataError(
        f"{source}: unknown file type {suffix or '(no extension)'}; expected .npy, .npz, .csv, "
        ".tsv, .txt (these four also compressed: .gz, .bz2, .xz), .parquet, .pq, an IDX file or a folder of images"
    )
