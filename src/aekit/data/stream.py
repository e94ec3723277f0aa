"""Data larger than memory: rows read from disk a window at a time, never loaded whole.

A source is one ``.npy`` file (its header read by ``np.load(mmap_mode="r")``, its rows read by
offset) or a folder of ``.npy`` / Parquet shards (``.parquet``, ``.pq``), taken in name order
as one sequence of rows. :class:`Shards` reads any range of those rows; :func:`split_rows`
(that of :mod:`aekit.data`) splits the row numbers into train / validation / test exactly as
:func:`aekit.data.split_data` splits an in-memory set with the same seed; :func:`fit_transform`
fits the run's scaling in one pass (two for ``standard``) over the training rows;
:class:`StreamingRows` is the training (or validation) set the :class:`~aekit.train.Trainer`
consumes instead of a tensor.

Shuffling is by shard and within a window: every epoch the shards come in a random order,
each shard's windows (``window_rows`` consecutive training rows) in a random order, and the rows
of each window in a random order (:meth:`StreamingRows.permutation`, drawn from the Trainer's
seeded generator, so the order is deterministic by seed and stored in checkpoints: a run resumes
at its epoch and position). Batches are cut from that order, so all the rows of a batch but those
at a window's end come from one window, and memory holds at most two windows.

This module imports torch only when a :class:`StreamingRows` is used.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aekit.data import split_rows
from aekit.data.readers import _COMPRESSIONS, Dataset, _check_regular_file
from aekit.data.transform import Transform, _check_kind, _check_standard, _unit_parameters
from aekit.errors import ConfigError, DataError

__all__ = ["SHARD_SUFFIXES", "Shards", "StreamSplits", "StreamingRows", "encode", "fit_transform", "split_rows"]

SHARD_SUFFIXES = (".npy", ".parquet", ".pq")
#: rows read per piece when a selection (a split) is gathered from a range, or a pass is made
CHUNK_BYTES = 32 << 20
#: memory for the windows of a StreamingRows (two windows) unless told otherwise
DEFAULT_BUFFER_MB = 256
#: rows of each split kept in memory for a run's figures
PREVIEW_ROWS = 64


# -- one file ---------------------------------------------------------------------------------------
class _NpyShard:
    """Rows of one C-ordered ``.npy`` file, read by offset (no memory map stays open)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            mm = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable .npy file ({str(e).splitlines()[0]})") from None
        if not isinstance(mm, np.memmap):  # a 0-d array, or a format np.load cannot map
            raise DataError(f"{path}: cannot be memory-mapped (a 0-d array or an unsupported .npy layout)")
        if mm.dtype.kind not in "biuf":
            raise DataError(f"{path}: holds values of type {mm.dtype}; expected numbers")
        if mm.ndim < 2 or mm.ndim > 4:
            raise DataError(f"{path}: expected rows (n, d) or images (n, H, W) / (n, C, H, W), got shape {mm.shape}")
        if not mm.flags.c_contiguous:
            raise DataError(f"{path}: is stored in Fortran order; save it in C order to stream it")
        self.shape, self.dtype, self.offset = mm.shape, mm.dtype, mm.offset
        del mm  # only the header was wanted: the rows are read by offset, so no mapped page stays resident
        self.n = self.shape[0]
        self.features = math.prod(self.shape[1:])
        self.image_shape = tuple(self.shape[1:]) if len(self.shape) > 2 else None

    def read(self, start: int, stop: int, scratch: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start .. stop - 1``; read into ``scratch`` (bytes, reused) when given."""
        count = (stop - start) * self.features
        nbytes = count * self.dtype.itemsize
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * self.features * self.dtype.itemsize)
            if scratch is not None and scratch.nbytes >= nbytes:
                got = f.readinto(scratch.data[:nbytes])
                x = scratch[:got].view(self.dtype) if got % self.dtype.itemsize == 0 else scratch[:0].view(self.dtype)
            else:
                x = np.fromfile(f, dtype=self.dtype, count=count)
        if x.size != count:
            raise DataError(f"{self.path}: truncated (rows {start}..{stop - 1} are not all there)")
        return x.reshape(stop - start, self.features)


class _ParquetShard:
    """Rows of one Parquet file, read by row groups (the label column, if named, left out)."""

    def __init__(self, path: Path, label_column: Any = None):
        try:
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - pyarrow is a dependency
            raise DataError(f"{path}: reading Parquet needs pyarrow") from None
        import pyarrow as pa

        self.path = path
        # one reader at a time: the training rows are read ahead in a background thread while the
        # main thread may read validation rows of the same shard, and a ParquetFile is not thread-safe
        self._lock = threading.Lock()
        try:
            self.file = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as e:
            raise DataError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
        names = self.file.schema_arrow.names
        drop = None
        if label_column is not None:
            drop = (
                names[label_column]
                if isinstance(label_column, int) and 0 <= label_column < len(names)
                else (label_column if label_column in names else None)
            )
            if drop is None:
                raise DataError(f"{path}: no label column {label_column!r}")
        self.columns = [c for c in names if c != drop]
        for c in self.columns:
            t = self.file.schema_arrow.field(c).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
                raise DataError(f"{path}: column {c!r} holds {t}, not numbers")
        if not self.columns:
            raise DataError(f"{path}: no feature columns")
        meta = self.file.metadata
        self.group_starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
        self.n = int(self.group_starts[-1])
        self.features = len(self.columns)
        self.dtype = np.dtype(np.float32)
        self.image_shape = None

    def read(self, start: int, stop: int, scratch: np.ndarray | None = None) -> np.ndarray:
        first = int(np.searchsorted(self.group_starts, start, side="right") - 1)
        last = int(np.searchsorted(self.group_starts, stop - 1, side="right") - 1)
        with self._lock:
            table = self.file.read_row_groups(list(range(first, last + 1)), columns=self.columns)
        table = table.slice(start - int(self.group_starts[first]), stop - start)
        out = np.empty((stop - start, self.features), np.float32)
        for j, col in enumerate(table.columns):
            if col.null_count:
                raise DataError(
                    f"{self.path}: column {self.columns[j]!r} has missing values in rows {start}..{stop - 1}"
                )
            out[:, j] = col.to_numpy()
        return out


def _refuse_compressed_shard(path: Path) -> None:
    """DataError for a compressed shard (``x.npy.gz``...): streaming reads rows by offset, which
    compressed data does not allow."""
    suffix = path.suffix.lower()
    if suffix in _COMPRESSIONS and Path(path.stem).suffix.lower() in SHARD_SUFFIXES:
        raise DataError(
            f"{path}: is compressed ({suffix}), and streaming reads rows by offset from "
            f"uncompressed files; decompress it first, or train without streaming"
        )


# -- the sequence of shards -------------------------------------------------------------------------
class Shards:
    """The rows of one ``.npy`` file or of a folder of ``.npy`` / Parquet shards, in name order.

    Attributes
    ----------
    source : str
    starts : ndarray
        Row number of each shard's first row, and the total number of rows last.
    n_features : int
    image_shape : tuple or None
        ``(C, H, W)`` when the ``.npy`` files hold images ``(n, H, W)`` or ``(n, C, H, W)``.
    """

    def __init__(self, shards: Sequence[Any], source: str):
        self._shards = list(shards)
        self.source = source
        widths = {s.features for s in self._shards}
        if len(widths) != 1:
            raise DataError(f"{source}: the shards have different numbers of features ({sorted(widths)})")
        self.n_features = widths.pop()
        shapes = {s.image_shape for s in self._shards}
        shape = shapes.pop() if len(shapes) == 1 else None
        self.image_shape = None if shape is None else ((1, *shape) if len(shape) == 2 else tuple(shape))
        self.starts = np.cumsum([0] + [s.n for s in self._shards])
        if self.starts[-1] == 0:
            raise DataError(f"{source}: no data rows")
        self._local = threading.local()

    @classmethod
    def open(cls, path: str | os.PathLike, label_column: Any = None) -> Shards:
        """The shards of a ``.npy`` / Parquet file or of a folder of them; DataError when there are none,
        for a shard that is not a regular file (a named pipe, a device) and for a compressed one."""
        path = Path(path)
        if path.is_dir():
            entries = sorted(p for p in path.iterdir() if not p.name.startswith(".") and not p.is_dir())
            files = [p for p in entries if p.suffix.lower() in SHARD_SUFFIXES]
            for p in entries:
                _refuse_compressed_shard(p)
            if not files:
                raise DataError(f"{path}: no .npy or Parquet shards in this folder")
        elif path.exists() or path.is_symlink():
            _refuse_compressed_shard(path)
            if path.suffix.lower() not in SHARD_SUFFIXES:
                raise DataError(
                    f"{path}: streaming reads .npy and Parquet files (or a folder of them), "
                    f"not {path.suffix or 'files without a suffix'}"
                )
            files = [path]
        else:
            raise DataError(f"{path}: no such file or folder")
        for p in files:
            _check_regular_file(p)  # before opening: a named pipe would block, a device never ends
        return cls(
            [_NpyShard(p) if p.suffix.lower() == ".npy" else _ParquetShard(p, label_column) for p in files], str(path)
        )

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def row_bytes(self) -> int:
        return 4 * self.n_features

    def chunk_rows(self, nbytes: int = CHUNK_BYTES) -> int:
        return max(1, nbytes // self.row_bytes)

    def read(self, start: int, stop: int, scratch: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start .. stop - 1`` as a float32 ``(rows, n_features)`` array (finite, checked);
        with ``scratch`` (bytes), rows of one float32 ``.npy`` shard are a view of it."""
        parts = []
        first = int(np.searchsorted(self.starts, start, side="right") - 1)
        if stop > self.starts[first + 1]:  # several shards: each part needs its own memory
            scratch = None
        for s in range(first, len(self._shards)):
            lo, hi = max(start, self.starts[s]), min(stop, self.starts[s + 1])
            if lo >= hi:
                if self.starts[s] >= stop:
                    break
                continue
            shard = self._shards[s]
            x = shard.read(int(lo - self.starts[s]), int(hi - self.starts[s]), scratch)
            with np.errstate(over="ignore"):
                x = x.astype(np.float32, copy=False)
            if not np.isfinite(x).all():
                raise DataError(
                    f"{shard.path}: holds NaN, infinite values or values beyond the float32 range "
                    f"(rows {lo - self.starts[s]}..{hi - self.starts[s] - 1})"
                )
            parts.append(x)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def read_rows(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The rows numbered by the sorted array ``rows`` (into ``out`` when given), read in
        pieces of at most :data:`CHUNK_BYTES` of the ranges they span."""
        out = np.empty((len(rows), self.n_features), np.float32) if out is None else out
        step, i = self.chunk_rows(), 0
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:  # one read buffer per thread, reused: no fresh pages to fault in per read
            itemsize = max(sh.dtype.itemsize for sh in self._shards)
            scratch = self._local.scratch = np.empty(step * self.n_features * itemsize, np.uint8)
        while i < len(rows):
            j = int(np.searchsorted(rows, rows[i] + step, side="left"))
            np.take(self.read(int(rows[i]), int(rows[j - 1]) + 1, scratch), rows[i:j] - rows[i], axis=0, out=out[i:j])
            i = j
        return out

    def chunks(self, rows: np.ndarray | None = None, nbytes: int = CHUNK_BYTES) -> Iterator[tuple[int, np.ndarray]]:
        """``(position, rows)`` pieces of all rows (or of the sorted selection ``rows``), in order."""
        step = self.chunk_rows(nbytes)
        n = len(self) if rows is None else len(rows)
        for i in range(0, n, step):
            yield i, (self.read(i, min(i + step, n)) if rows is None else self.read_rows(rows[i : i + step]))


def fit_transform(kind: str, shards: Shards, rows: np.ndarray) -> tuple[Transform, float, float]:
    """The :class:`Transform` of ``kind`` fitted on the rows ``rows`` (one pass; two for
    ``standard``), as :meth:`Transform.fit` fits it in memory, and the smallest and largest
    value of those rows after it."""
    _check_kind(kind)
    if len(rows) == 0:
        raise DataError(f"{shards.source}: cannot fit a transform on an empty training split")
    d = shards.n_features
    low, high = np.full(d, np.inf), np.full(d, -np.inf)
    total = np.zeros(d)
    for _, x in shards.chunks(rows):
        np.minimum(low, x.min(axis=0), out=low)
        np.maximum(high, x.max(axis=0), out=high)
        if kind == "standard":
            total += x.sum(axis=0, dtype=np.float64)
    if kind == "none":
        return Transform("none", np.array(0.0), np.array(1.0)), float(low.min()), float(high.max())
    if kind == "unit":
        columns = (int(low.argmin()), int(high.argmax()))
        t = Transform("unit", *_unit_parameters(low.min(), high.max(), shards.source, columns))
        return t, 0.0, 1.0 if high.max() > low.min() else 0.0
    mean = total / len(rows)
    squares = np.zeros(d)
    for _, x in shards.chunks(rows):
        deviation = x - mean
        squares += np.einsum("ij,ij->j", deviation, deviation)
    std = np.sqrt(squares / len(rows)).astype(np.float32)
    t = Transform("standard", mean, np.where(std == 0, np.float32(1), std))
    scaled = _check_standard(t, low, high, shards.source)
    return t, float(scaled.min()), float(scaled.max())


# -- what the Trainer consumes --------------------------------------------------------------------
class StreamingRows:
    """Rows of :class:`Shards` selected by sorted row numbers (a split), in model space (the
    transform applied), read a window at a time: what the Trainer takes instead of a tensor.

    ``len(rows)``, ``rows[i:j]`` and ``rows[index_tensor]`` (float32 tensors on ``device``), and
    :meth:`permutation` (the epoch's order, by shard and within a window) are all the Trainer
    uses. Two windows of ``window_rows`` rows are held, and the next one in the order is read
    ahead in a background thread; a batch whose rows lie in one window (all but the few at a
    window's end) costs no reading.

    Parameters
    ----------
    shards : Shards
    rows : ndarray
        Sorted row numbers of the shards' rows (e.g. the training split of :func:`split_rows`).
    transform : Transform, optional
    window_rows : int
        Rows per window (windows never span two shards).
    """

    def __init__(
        self, shards: Shards, rows: np.ndarray, transform: Transform | None, window_rows: int, device: Any = "cpu"
    ):
        import torch

        if window_rows < 1:
            raise ConfigError(f"window_rows must be positive, got {window_rows}")
        self.shards, self.rows, self.transform = shards, np.asarray(rows, np.int64), transform
        self.window_rows = int(window_rows)
        self.device = torch.device(device)
        # windows: consecutive positions of one shard's rows, window_rows at a time
        shard_of_row = np.searchsorted(shards.starts, self.rows, side="right") - 1
        bounds = np.flatnonzero(np.diff(shard_of_row)) + 1 if len(self.rows) else np.zeros(0, np.int64)
        starts: list[int] = []
        self.window_shard: list[int] = []
        for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(self.rows)]):
            if hi > lo:
                for s in range(lo, hi, self.window_rows):
                    starts.append(s)
                    self.window_shard.append(int(shard_of_row[lo]))
        self.window_starts = np.array([*starts, len(self.rows)], np.int64)
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._pending: dict[int, Any] = {}
        self._next = {w: w + 1 for w in range(self.n_windows - 1)}  # read ahead in file order until told
        self._reader: Any = None
        self._buffers: dict[int, np.ndarray] = {}  # window -> the array its (CPU) tensor shares
        self._free: list[np.ndarray] = []  # arrays of evicted windows, to read the next ones into
        self.windows_read = 0

    @classmethod
    def with_buffer(
        cls,
        shards: Shards,
        rows: np.ndarray,
        transform: Transform | None,
        buffer_mb: float = DEFAULT_BUFFER_MB,
        device: Any = "cpu",
    ) -> StreamingRows:
        """Windows sized so that the two held and the one read ahead take about ``buffer_mb`` MB."""
        return cls(shards, rows, transform, max(1, int(buffer_mb * 2**20) // (3 * shards.row_bytes)), device)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), self.shards.n_features

    @property
    def n_windows(self) -> int:
        return len(self.window_starts) - 1

    def to(self, device: Any) -> StreamingRows:
        import torch

        device = torch.device(device)
        if device == self.device:
            return self
        return StreamingRows(self.shards, self.rows, self.transform, self.window_rows, device)

    def permutation(self, generator: Any = None) -> Any:
        """The epoch's order of positions: shards in random order, each one's windows in random
        order, each window's rows in random order (all drawn from ``generator``)."""
        import torch

        def shuffled(n: int) -> Any:  # nothing drawn for one item: one window is torch.randperm(n)
            return torch.randperm(n, generator=generator) if n > 1 else torch.zeros(n, dtype=torch.long)

        by_shard: dict[int, list[int]] = {}
        for w, s in enumerate(self.window_shard):
            by_shard.setdefault(s, []).append(w)
        shards = list(by_shard)
        parts = []
        for si in shuffled(len(shards)).tolist():
            windows = by_shard[shards[si]]
            for wi in shuffled(len(windows)).tolist():
                lo, hi = int(self.window_starts[windows[wi]]), int(self.window_starts[windows[wi] + 1])
                parts.append(lo + shuffled(hi - lo))
        order = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
        self.follow(order)
        return order

    def follow(self, order: Any) -> None:
        """Read windows ahead in the order their rows come in ``order`` (an epoch's order of
        positions, e.g. one restored from a checkpoint)."""
        order = order.cpu().numpy() if hasattr(order, "cpu") else np.asarray(order)
        w = np.searchsorted(self.window_starts, order, side="right") - 1
        seq = w[np.r_[True, w[1:] != w[:-1]]] if len(w) else w
        self._next = dict(zip(seq[:-1].tolist(), seq[1:].tolist()))
        self._pending.clear()  # reads under way finish unused
        if len(seq):
            self._read_ahead(int(seq[0]))  # the epoch's first window, while the last one ends

    def close(self) -> None:
        """Drop the windows held and stop the reading thread."""
        self._cache.clear()
        self._pending.clear()
        if self._reader is not None:
            self._reader.shutdown(wait=True)
            self._reader = None

    def __del__(self) -> None:
        if getattr(self, "_reader", None) is not None:
            self._reader.shutdown(wait=False)

    def _window(self, w: int) -> Any:
        t = self._cache.get(w)
        if t is not None:
            self._cache.move_to_end(w)
        else:
            pending = self._pending.pop(w, None)
            t = pending.result() if pending is not None else self._load(w)
            while len(self._cache) >= 2:
                old, _ = self._cache.popitem(last=False)
                if old in self._buffers and not self._free:  # keep one array to read the next window into
                    self._free.append(self._buffers.pop(old))
                self._buffers.pop(old, None)
            self._cache[w] = t
        nxt = self._next.get(w)
        if nxt is not None:
            self._read_ahead(nxt)
        return t

    def _read_ahead(self, w: int) -> None:
        """Start reading window ``w`` in the background (at most one window is read ahead)."""
        if w in self._cache or w in self._pending:
            return
        if self._reader is None:
            from concurrent.futures import ThreadPoolExecutor

            self._reader = ThreadPoolExecutor(1, thread_name_prefix="aekit-stream")
        self._pending = {w: self._reader.submit(self._load, w)}

    def _load(self, w: int) -> Any:
        import torch

        lo, hi = int(self.window_starts[w]), int(self.window_starts[w + 1])
        try:
            buffer = self._free.pop()
        except IndexError:
            buffer = np.empty((self.window_rows, self.shards.n_features), np.float32)
        x = self.shards.read_rows(self.rows[lo:hi], out=buffer[: hi - lo])
        if self.transform is not None and self.transform.kind != "none":
            shift, scale = self.transform.shift.astype(np.float32), self.transform.scale.astype(np.float32)
            np.subtract(x, shift, out=x)  # (x - shift) / scale, as Transform.apply, in place
            np.divide(x, scale, out=x)
        self.windows_read += 1
        t = torch.from_numpy(x)
        if self.device.type == "cpu":
            self._buffers[w] = buffer
            return t
        t = t.to(self.device)
        self._free.append(buffer)
        return t

    def __getitem__(self, key: Any) -> Any:
        import torch

        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("StreamingRows takes slices with step 1")
            positions = np.arange(start, stop, dtype=np.int64)
        else:
            positions = (key.cpu().numpy() if isinstance(key, torch.Tensor) else np.asarray(key)).astype(np.int64)
        if len(positions) == 0:
            return torch.zeros((0, self.shards.n_features), dtype=torch.float32, device=self.device)
        if positions.min() < 0 or positions.max() >= len(self):
            raise IndexError(f"positions out of range for {len(self)} rows")
        windows = np.searchsorted(self.window_starts, positions, side="right") - 1
        first = int(windows[0])
        if (windows == first).all():
            local = torch.from_numpy(positions - self.window_starts[first]).to(self.device)
            return self._window(first).index_select(0, local)
        out = torch.empty((len(positions), self.shards.n_features), dtype=torch.float32, device=self.device)
        for w in dict.fromkeys(windows.tolist()):  # in order of first use
            sel = np.flatnonzero(windows == w)
            local = torch.from_numpy(positions[sel] - self.window_starts[w]).to(self.device)
            out[torch.from_numpy(sel).to(self.device)] = self._window(w).index_select(0, local)
        return out


# -- a streamed data source, split ----------------------------------------------------------------
@dataclass
class StreamSplits:
    """A streamed source split into train / validation / test row numbers (no rows read)."""

    shards: Shards
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @classmethod
    def open(
        cls,
        source: Any,
        *,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        label_column: Any = None,
    ) -> StreamSplits:
        if not isinstance(source, (str, os.PathLike)):
            raise ConfigError(
                "streaming reads a .npy file or a folder of .npy / Parquet shards; "
                f"got a {type(source).__name__} (pass in-memory data without stream)"
            )
        shards = Shards.open(source, label_column)
        return cls(shards, *split_rows(len(shards), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed))

    def sizes(self) -> dict[str, Any]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test), "source": self.shards.source}

    def preview(self, rows: int = PREVIEW_ROWS) -> Any:
        """In-memory :class:`~aekit.data.Splits` of the first ``rows`` rows of each split (raw
        values), for a run's figures."""
        from aekit.data import Splits

        return Splits(
            *(
                Dataset(self.shards.read_rows(r[:rows]), None, self.shards.image_shape, self.shards.source)
                for r in (self.train, self.val, self.test)
            )
        )


def encode(model: Any, source: str | os.PathLike, *, batch_size: int = 4096, label_column: Any = None) -> np.ndarray:
    """Codes of every row of a ``.npy`` file or a folder of shards, read a piece at a time:
    the same numbers as ``model.encode_array`` on the whole array."""
    shards = Shards.open(source, label_column)
    if shards.n_features != model.config.input_dim:
        raise DataError(f"{shards.source}: expected rows of {model.config.input_dim} features, got {shards.n_features}")
    step = max(batch_size, shards.chunk_rows() // batch_size * batch_size)  # whole batches: the same numbers
    out = np.empty((len(shards), model.config.latent), np.float32)
    for i, x in shards.chunks(nbytes=step * shards.row_bytes):
        out[i : i + len(x)] = model.encode_array(x, batch_size=batch_size, where=shards.source)
    return out
