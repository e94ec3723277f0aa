"""Tests of aekit.data: readers, built-in sets, splits and transforms."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import aekit.data as data_module
from aekit.data import (
    BUILTIN_DATASETS,
    TRANSFORM_KINDS,
    Dataset,
    Splits,
    Transform,
    fashion_mnist_dir,
    load_data,
    load_splits,
    read_idx,
    split_data,
)
from aekit.errors import ConfigError, DataError

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


# --------------------------------------------------------------------------- helpers


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode an array in the IDX format (big-endian)."""
    header = bytes([0, 0, IDX_CODES[arr.dtype], arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray) -> Path:
    """Write an IDX file, gzip-compressed when the name ends in .gz."""
    raw = idx_bytes(arr)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_png(path: Path, pixels: np.ndarray) -> Path:
    """Write a uint8 gray (H, W) or RGB (H, W, 3) array as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def fake_fashion(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True) -> Path:
    """Write a tiny Fashion-MNIST look-alike (28x28 uint8 images, labels 0..9)."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", rng.integers(0, 10, n, dtype=np.uint8))
    return folder


def load_or_none(path) -> Dataset | None:
    """Load ``path``: a Dataset, or None when DataError is raised (any other exception fails)."""
    try:
        ds = load_data(path)
    except DataError:
        return None
    assert isinstance(ds, Dataset)
    return ds


# --------------------------------------------------------------------------- readers


def test_npy_rows_round_trip(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(4, 3) / 7
    np.save(tmp_path / "x.npy", x)
    ds = load_data(tmp_path / "x.npy")
    assert ds.x.dtype == np.float32 and ds.x.flags.c_contiguous
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    assert ds.y is None and ds.image_shape is None
    assert ds.source == str(tmp_path / "x.npy") and len(ds) == 4 and ds.n_features == 3


def test_npy_images_3d_and_nhwc(tmp_path):
    gray = np.arange(2 * 5 * 6, dtype=np.uint8).reshape(2, 5, 6)
    np.save(tmp_path / "g.npy", gray)
    ds = load_data(str(tmp_path / "g.npy"))
    assert ds.image_shape == (1, 5, 6)
    np.testing.assert_array_equal(ds.images()[:, 0], gray)

    rgb = np.arange(2 * 5 * 6 * 3, dtype=np.uint8).reshape(2, 5, 6, 3)
    np.save(tmp_path / "c.npy", rgb)
    ds = load_data(tmp_path / "c.npy")
    assert ds.image_shape == (3, 5, 6)
    np.testing.assert_array_equal(ds.images(), rgb.transpose(0, 3, 1, 2))


def test_numpy_array_sources():
    ds = load_data(np.ones((3, 4), dtype=bool))
    assert ds.x.dtype == np.float32 and ds.source == "array"
    assert load_data(np.zeros((2, 3, 4, 4), dtype=np.int32)).image_shape == (3, 4, 4)
    assert load_data(np.zeros((2, 8, 8))).image_shape == (1, 8, 8)
    ds = load_data(np.zeros((2, 12)), image_shape=(3, 4))
    assert ds.image_shape == (1, 3, 4) and ds.images().shape == (2, 1, 3, 4)
    assert load_data(ds) is ds


def test_image_shape_must_match():
    with pytest.raises(DataError, match=r"image shape \(1, 3, 3\) holds 9 values, but the rows have 12"):
        load_data(np.zeros((2, 12)), image_shape=(1, 3, 3))
    with pytest.raises(ConfigError, match="image_shape"):
        load_data(np.zeros((2, 12)), image_shape=(12,))
    with pytest.raises(DataError, match="not images"):
        load_data(np.zeros((2, 12))).images()


def test_npz_with_labels(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 1, 0], dtype=np.uint8))
    ds = load_data(tmp_path / "d.npz")
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 1, 2, 1, 0]

    np.savez_compressed(tmp_path / "i.npz", images=np.zeros((3, 4, 4)), labels=np.array([1.0, 2.0, 3.0]))
    ds = load_data(tmp_path / "i.npz")
    assert ds.image_shape == (1, 4, 4) and ds.y.dtype == np.int64

    np.savez(tmp_path / "one.npz", whatever=np.ones((2, 2)))
    assert load_data(tmp_path / "one.npz").x.shape == (2, 2)


def test_csv_header_named_label(tmp_path):
    path = write_text(tmp_path / "t.csv", "a,b,label\n1,2.5,3\n4,5,6\n-7,8e-1,9\n")
    ds = load_data(path, label_column="label")
    np.testing.assert_array_equal(ds.x, np.array([[1, 2.5], [4, 5], [-7, 0.8]], np.float32))
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [3, 6, 9]
    assert ds.source == str(path)


def test_csv_no_header_integer_label(tmp_path):
    path = write_text(tmp_path / "t.csv", "0,1,2\n1,3,4\n\n2,5,6\n")
    ds = load_data(path, label_column=0)
    np.testing.assert_array_equal(ds.x, [[1, 2], [3, 4], [5, 6]])
    assert ds.y.tolist() == [0, 1, 2]
    assert load_data(path, label_column="-1").y.tolist() == [2, 4, 6]
    assert load_data(path).x.shape == (3, 3)


def test_csv_string_labels(tmp_path):
    path = write_text(tmp_path / "t.csv", "x,kind\n1,cat\n2,dog\n")
    ds = load_data(path, label_column="kind")
    assert ds.y.tolist() == ["cat", "dog"]
    assert ds.y.dtype.kind == "U"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("t.tsv", "a\tb\n1\t2\n3\t4\n"),
        ("t.txt", "1 2\n  3   4\n"),
        ("t.csv", "a;b\n1;2\n3;4\n"),
        ("t.txt", "a,b\r\n1,2\r\n3,4\r\n"),
        ("t.csv", "\ufeffa,b\n1,2\n3,4\n"),
    ],
)
def test_delimiters_sniffed(tmp_path, name, text):
    ds = load_data(write_text(tmp_path / name, text))
    np.testing.assert_array_equal(ds.x, [[1, 2], [3, 4]])


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame({"a": [1.5, 2.5], "b": np.array([3, 4], np.int32), "c": [True, False], "target": [7, 8]})
    frame.to_parquet(tmp_path / "t.parquet")
    ds = load_data(tmp_path / "t.parquet", label_column="target")
    np.testing.assert_array_equal(ds.x, [[1.5, 3, 1], [2.5, 4, 0]])
    assert ds.y.tolist() == [7, 8]
    frame.to_parquet(tmp_path / "t.pq")
    assert load_data(tmp_path / "t.pq").x.shape == (2, 4)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_with_sibling_labels(tmp_path, gz):
    ext = ".gz" if gz else ""
    images = np.random.default_rng(0).integers(0, 256, (6, 4, 5), dtype=np.uint8)
    labels = np.arange(6, dtype=np.uint8)
    path = write_idx(tmp_path / f"train-images-idx3-ubyte{ext}", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)  # compression may differ
    ds = load_data(path)
    assert ds.image_shape == (1, 4, 5)
    np.testing.assert_array_equal(ds.images()[:, 0], images)
    assert ds.y.tolist() == list(range(6))


@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_read_idx_dtypes(tmp_path, dtype):
    arr = (np.arange(-6, 6).reshape(3, 4) * 3).astype(dtype)
    for name in ("a.idx", "a.idx.gz"):
        read = read_idx(write_idx(tmp_path / name, arr))
        assert read.dtype == dtype and read.dtype.isnative
        np.testing.assert_array_equal(read, arr)
    ds = load_data(tmp_path / "a.idx")
    assert ds.image_shape is None and ds.y is None
    np.testing.assert_array_equal(ds.x, arr.astype(np.float32))


def test_png_folder_flat_gray(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 8, 6), dtype=np.uint8)
    for i, p in zip((2, 0, 1), pixels, strict=True):
        write_png(tmp_path / "imgs" / f"img{i}.png", p)
    (tmp_path / "imgs" / "notes.md").write_text("not an image")
    ds = load_data(tmp_path / "imgs")
    assert ds.image_shape == (1, 8, 6) and ds.y is None
    np.testing.assert_array_equal(ds.images()[:, 0], pixels[[1, 2, 0]])  # sorted by name


def test_image_folder_class_subfolders_rgb(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)
    write_png(tmp_path / "f" / "zebra" / "a.png", pixels[0])
    write_png(tmp_path / "f" / "ant" / "b.png", pixels[1])
    write_png(tmp_path / "f" / "ant" / "a.png", pixels[2])
    Image.fromarray(pixels[0]).save(tmp_path / "f" / "zebra" / "c.bmp")
    ds = load_data(tmp_path / "f")
    assert ds.image_shape == (3, 5, 4)
    assert ds.y.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(ds.images()[0], pixels[2].transpose(2, 0, 1))
    np.testing.assert_array_equal(ds.images()[3], pixels[0].transpose(2, 0, 1))


def test_dataset_subset_and_validation():
    ds = Dataset(np.arange(10.0).reshape(5, 2), np.arange(5), (1, 1, 2), "mem")
    sub = ds.subset(np.array([4, 0]))
    assert sub.x.tolist() == [[8, 9], [0, 1]] and sub.y.tolist() == [4, 0] and sub.source == "mem"
    assert len(ds.subset(slice(0, 0))) == 0
    with pytest.raises(DataError, match="mem: labels have shape"):
        Dataset(np.zeros((5, 2)), np.arange(4), None, "mem")


# --------------------------------------------------------------------------- built-in sets


def test_builtin_names():
    assert BUILTIN_DATASETS == ("digits", "fashion-mnist", "dsprites")
    assert TRANSFORM_KINDS == ("unit", "standard", "none")


def test_digits():
    ds = load_data("digits")
    assert ds.x.shape == (1797, 64) and ds.x.dtype == np.float32
    assert ds.x.min() == 0 and ds.x.max() == 16
    assert ds.image_shape == (1, 8, 8) and ds.y.dtype == np.int64 and ds.source == "digits"


def test_fake_fashion_via_data_dir_and_env(tmp_path, monkeypatch):
    folder = fake_fashion(tmp_path / "fm")
    ds = load_data("fashion-mnist", data_dir=folder)
    assert ds.x.shape == (17, 784) and ds.image_shape == (1, 28, 28) and ds.y.shape == (17,)
    assert ds.source == "fashion-mnist"
    monkeypatch.setenv("AEKIT_DATA", str(folder))
    assert fashion_mnist_dir() == folder
    np.testing.assert_array_equal(load_data("fashion-mnist").x, ds.x)


def test_fake_fashion_uncompressed_and_official_split(tmp_path):
    folder = fake_fashion(tmp_path / "fashion-mnist", n_train=20, n_test=7, gz=False)
    assert fashion_mnist_dir(tmp_path) == folder
    splits = load_splits("fashion-mnist", data_dir=folder, val_fraction=0.25, test_fraction=0.5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 7)
    official_test = load_data(folder / "t10k-images-idx3-ubyte")
    np.testing.assert_array_equal(splits.test.x, official_test.x)
    np.testing.assert_array_equal(splits.test.y, official_test.y)


def test_fashion_missing_message(tmp_path, monkeypatch):
    monkeypatch.delenv("AEKIT_DATA", raising=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match=r"missing train-labels-idx1-ubyte\); run `make data`") as info:
        load_data("fashion-mnist", data_dir=tmp_path)
    assert f"fashion-mnist not found in {tmp_path}" in str(info.value)
    assert "AEKIT_DATA or --data-dir" in str(info.value)


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("AEKIT_DATA", raising=False)
    ds = load_data("fashion-mnist")
    assert ds.x.shape == (70000, 784) and ds.image_shape == (1, 28, 28)
    assert ds.x.max() == 255 and ds.x.min() == 0 and set(np.unique(ds.y)) == set(range(10))
    splits = load_splits("fashion-mnist", val_fraction=0.1)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54000, 6000, 10000)
    np.testing.assert_array_equal(splits.test.x, ds.x[60000:])


# --------------------------------------------------------------------------- bad input


class Boom:
    """Unpickling this would set ``Boom.unpickled``: object arrays must never be unpickled."""

    unpickled = False

    def __reduce__(self):
        return (_boom, ())


def _boom():
    Boom.unpickled = True
    return "boom"


def _object_npy(path: Path) -> None:
    np.save(path, np.array([[Boom(), 1]], dtype=object), allow_pickle=True)


def _npy(array) -> Callable:
    return lambda path: np.save(path, array)


def _bytes(raw: bytes) -> Callable:
    return lambda path: path.write_bytes(raw)


def _text(text: str) -> Callable:
    return lambda path: path.write_text(text, encoding="utf-8")


def _truncated_npy(path: Path) -> None:
    np.save(path, np.zeros((10, 10)))
    path.write_bytes(path.read_bytes()[:-80])


def _images(sizes: dict[str, tuple[int, int]]) -> Callable:
    def make(path: Path) -> None:
        path.mkdir()
        for name, (w, h) in sizes.items():
            write_png(path / name, np.zeros((h, w), np.uint8))
    return make


def _bad_image_folder(path: Path) -> None:
    _images({"a.png": (8, 8)})(path)
    (path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")


def _idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + np.array(dims, ">u4").tobytes()


def _labels_mismatch(path: Path) -> None:
    path.parent.mkdir()
    write_idx(path, np.zeros((3, 2, 2), np.uint8))
    write_idx(path.parent / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))


def _parquet(frame: pd.DataFrame) -> Callable:
    return lambda path: frame.to_parquet(path)


def _npz(**arrays) -> Callable:
    return lambda path: np.savez(path, **arrays)


IDX_4X4_GZ = gzip.compress(idx_bytes(np.zeros((4, 4), np.uint8)))

# case id: (file name, writer, expected part of the message)
BAD_INPUTS = {
    "nan npy": ("x.npy", _npy(np.array([[1.0, 2.0], [3.0, np.nan]])), "row 1, column 1 holds NaN"),
    "inf npy": ("x.npy", _npy(np.array([[1.0, np.inf]])), "row 0, column 1 holds inf"),
    "too big npy": ("x.npy", _npy(np.array([[1.0], [-1e39]])), "row 1, column 0 holds -1e+39, which does not fit"),
    "nan csv": ("x.csv", _text("a,b\n1,2\n3,nan\n"), "row 1, column 'b' holds NaN"),
    "inf csv": ("x.csv", _text("1,2\n3,-inf\n"), "row 1, column 1 holds -inf"),
    "too big csv": ("x.csv", _text("1,2\n3,4e40\n"), "holds 4e+40, which does not fit in float32"),
    "ragged more": ("x.csv", _text("1,2,3\n4,5,6\n7,8,9,10\n"), "line 3 has 4 fields, expected 3 like line 1"),
    "ragged fewer": ("x.csv", _text("a,b,c\n1,2,3\n4,5\n"), "line 3 has 2 fields, expected 3"),
    "ragged all fewer": ("x.csv", _text("a,b,c\n1,2\n4,5\n"), "line 2 has 2 fields, expected 3"),
    "ragged whitespace": ("x.txt", _text("1 2 3\n4 5\n"), "line 2 has 2 fields, expected 3"),
    "non-numeric": ("x.csv", _text("a,b\n1,2\n3,abc\n"), "row 1, column 'b' holds a non-numeric value 'abc'"),
    "non-numeric no header": ("x.csv", _text("1,2\n3,4\n5,6x\n"), "row 2, column 1 holds a non-numeric value '6x'"),
    "empty cell": ("x.csv", _text("1,,3\n4,5,6\n"), "row 0, column 1 is empty"),
    "empty cell header": ("x.csv", _text("a,b\n1,2\n3,\n"), "row 1, column 'b' is empty"),
    "empty file": ("x.csv", _text(""), "empty file"),
    "blank file": ("x.tsv", _text("\n  \n"), "empty file"),
    "header only": ("x.csv", _text("a,b,c\n"), "no data rows"),
    "not utf-8": ("x.csv", _bytes(b"a,b\n1,\xff\xfe\n"), "not a UTF-8 text file"),
    "parquet corrupt": ("x.parquet", _bytes(b"PAR1 not really"), "not a valid Parquet file"),
    "parquet text column": ("x.parquet", _parquet(pd.DataFrame({"a": [1], "s": ["x"]})), "column 's' is not numeric"),
    "image sizes": (
        "imgs", _images({"a.png": (8, 8), "b.png": (10, 12)}), "b.png: image is 10x12, expected 8x8 like a.png"
    ),
    "unreadable image": ("imgs", _bad_image_folder, "b.png: cannot read the image"),
    "empty folder": ("imgs", lambda p: p.mkdir(), "no image files"),
    "empty class folder": ("imgs", lambda p: (p / "cls").mkdir(parents=True), "cls: class folder holds no image files"),
    "idx short header": ("x.idx", _bytes(b"\x00\x00"), "truncated IDX header: expected at least 4 bytes, found 2"),
    "idx truncated dims": (
        "x-idx3-ubyte", _bytes(_idx_header(8, (10, 28, 28))[:9]), "truncated IDX header: expected 16 bytes, found 9"
    ),
    "idx truncated data": (
        "x.idx",
        _bytes(_idx_header(8, (10, 28, 28)) + bytes(1000)),
        "truncated IDX file: expected 7840 data bytes, found 1000",
    ),
    "idx trailing data": (
        "x.idx", _bytes(_idx_header(8, (2, 2)) + bytes(5)), "trailing data in IDX file: expected 4 data bytes, found 5"
    ),
    "idx bad magic": ("x.idx", _bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00"), "not an IDX file (bad magic"),
    "idx type code": ("x.idx", _bytes(_idx_header(7, (1, 1)) + b"\x00"), "unknown IDX type code 0x07"),
    "idx 1-D": ("x.idx", _bytes(_idx_header(8, (3,)) + bytes(3)), "1-D array"),
    "idx corrupt gzip": ("x-ubyte.gz", _bytes(b"\x1f\x8b\x08\x00garbage-that-is-not-deflate"), "corrupt gzip data"),
    "idx truncated gzip": ("x.idx.gz", _bytes(IDX_4X4_GZ[:-12]), "corrupt gzip data"),
    "idx labels mismatch": ("f/train-images-idx3-ubyte", _labels_mismatch, "do not match the 3 images"),
    "object npy": ("x.npy", _object_npy, "holds an array of Python objects"),
    "1-D npy": ("x.npy", _npy(np.arange(5.0)), "holds a 1-D array of shape (5,)"),
    "5-D npy": ("x.npy", _npy(np.zeros((1, 1, 1, 1, 1))), "5-D array"),
    "complex npy": ("x.npy", _npy(np.ones((2, 2), complex)), "holds values of type complex128"),
    "string npy": ("x.npy", _npy(np.array([["a", "b"]])), "expected numbers"),
    "zero rows npy": ("x.npy", _npy(np.zeros((0, 3))), "no data rows"),
    "zero columns npy": ("x.npy", _npy(np.zeros((3, 0))), "the rows have no columns"),
    "truncated npy": ("x.npy", _truncated_npy, "truncated .npy file: expected 800 data bytes, found 720"),
    "bad npy magic": ("x.npy", _bytes(b"not numpy at all"), "not a valid .npy file"),
    "npz not zip": ("x.npz", _bytes(b"hello"), "not a valid .npz file (not a zip archive)"),
    "npz object": ("x.npz", _npz(x=np.array([Boom()], dtype=object)), "not a valid .npz file"),
    "npz keys": ("x.npz", _npz(a=np.ones((2, 2)), b=np.ones((2, 2))), "cannot tell which array holds the data"),
    "unknown extension": ("x.xyz", _text("1,2\n"), "unknown file type .xyz"),
    "no extension": ("data", _text("1,2\n"), "unknown file type (no extension)"),
    "missing file": ("missing.csv", None, "no such file"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_raises_data_error(tmp_path, case):
    name, write, expected = BAD_INPUTS[case]
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(DataError) as info:
        load_data(str(path))
    message = str(info.value)
    assert expected in message
    assert message.startswith(str(path.parent if case == "idx labels mismatch" else path))
    assert not Boom.unpickled


@pytest.mark.parametrize(
    ("text", "label_column", "expected"),
    [
        ("a,b\n1,2\n", "zz", "no label column 'zz'; the columns are 'a', 'b'"),
        ("1,2\n3,4\n", 5, "no label column 5; the file has no header, so give a column index in 0..1"),
        ("1,2\n3,4\n", "b", "no label column 'b'"),
    ],
)
def test_unknown_label_column(tmp_path, text, label_column, expected):
    path = write_text(tmp_path / "x.csv", text)
    with pytest.raises(DataError) as info:
        load_data(path, label_column=label_column)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)


def test_bad_source_type():
    with pytest.raises(DataError, match="cannot load data from a list"):
        load_data([[1, 2]])


# --------------------------------------------------------------------------- splits


def test_split_deterministic_disjoint_covering():
    ds = Dataset(np.arange(200, dtype=np.float32).reshape(100, 2), np.arange(100), None, "mem")
    a = split_data(ds, val_fraction=0.1, test_fraction=0.25, seed=3)
    b = split_data(ds, val_fraction=0.1, test_fraction=0.25, seed=3)
    c = split_data(ds, val_fraction=0.1, test_fraction=0.25, seed=4)
    assert isinstance(a, Splits)
    assert (len(a.train), len(a.val), len(a.test)) == (65, 10, 25)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, part).y, getattr(b, part).y)
    ids = np.concatenate([a.train.y, a.val.y, a.test.y])
    assert sorted(ids.tolist()) == list(range(100))
    assert not np.array_equal(a.test.y, c.test.y)
    np.testing.assert_array_equal(a.train.x[:, 0], a.train.y * 2)  # rows stay with their labels


def test_split_zero_fractions_and_errors():
    ds = load_data(np.ones((5, 2)))
    s = split_data(ds, val_fraction=0.0, test_fraction=0.0)
    assert (len(s.train), len(s.val), len(s.test)) == (5, 0, 0)
    assert s.val.x.shape == (0, 2)
    for bad in ({"val_fraction": 1.0}, {"test_fraction": -0.1}, {"val_fraction": 0.5, "test_fraction": 0.5},
                {"val_fraction": float("nan")}, {"test_fraction": "0.2"}):
        with pytest.raises(ConfigError, match="fraction"):
            split_data(ds, **bad)
    with pytest.raises(DataError, match="too few"):
        split_data(load_data(np.ones((2, 2))), val_fraction=0.5, test_fraction=0.4)


def test_load_splits_generic_source(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(40.0).reshape(20, 2))
    s = load_splits(tmp_path / "x.npy", val_fraction=0.1, test_fraction=0.2, seed=1)
    assert (len(s.train), len(s.val), len(s.test)) == (14, 2, 4)
    direct = split_data(load_data(tmp_path / "x.npy"), val_fraction=0.1, test_fraction=0.2, seed=1)
    np.testing.assert_array_equal(s.test.x, direct.test.x)


# --------------------------------------------------------------------------- transforms


@pytest.fixture
def rows() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(500, 4)).astype(np.float32)
    x[:, 2] = 7.0  # a constant feature
    return x


def test_unit_transform(rows):
    t = Transform.fit("unit", rows)
    out = t.apply(rows)
    assert out.dtype == np.float32 and t.shift.shape == () and t.scale.shape == ()
    assert out.min() == 0.0 and out.max() == 1.0
    assert out.flat[rows.argmin()] == 0.0 and out.flat[rows.argmax()] == 1.0
    np.testing.assert_allclose(t.invert(out), rows, rtol=1e-6, atol=1e-5)


def test_standard_transform(rows):
    t = Transform.fit("standard", rows)
    out = t.apply(rows)
    assert t.shift.shape == (4,) and t.scale[2] == 1.0
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), [1, 1, 0, 1], atol=1e-5)
    np.testing.assert_allclose(t.invert(out), rows, rtol=1e-6, atol=1e-5)
    with pytest.raises(DataError, match="4 features"):
        t.apply(np.zeros((2, 3)))


def test_none_and_constant_unit():
    t = Transform.fit("none", np.zeros((2, 2)))
    assert float(t.shift) == 0.0 and float(t.scale) == 1.0
    np.testing.assert_array_equal(t.apply(np.array([[1, 2]])), [[1, 2]])
    assert Transform.fit("unit", np.full((3, 2), 5.0)).scale == 1.0
    with pytest.raises(ConfigError, match="unit, standard, none"):
        Transform.fit("minmax", np.zeros((2, 2)))


@pytest.mark.parametrize("kind", TRANSFORM_KINDS)
def test_transform_json_round_trip(rows, kind):
    t = Transform.fit(kind, rows * np.float32(1.1))
    back = Transform.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back == t and back.shift.dtype == np.float32
    np.testing.assert_array_equal(back.apply(rows), t.apply(rows))


@pytest.mark.parametrize(
    "bad",
    [None, {}, {"kind": "unit", "shift": 0.0}, {"kind": "odd", "shift": 0.0, "scale": 1.0},
     {"kind": "unit", "shift": "0", "scale": 1.0}, {"kind": "unit", "shift": 0.0, "scale": 0.0},
     {"kind": "unit", "shift": [0.0], "scale": [1.0]}, {"kind": "standard", "shift": [0.0, 1.0], "scale": [1.0]},
     {"kind": "standard", "shift": [True], "scale": [1.0]}, {"kind": "unit", "shift": 1e39, "scale": 1.0}],
)
def test_transform_from_dict_rejects(bad):
    with pytest.raises(ConfigError):
        Transform.from_dict(bad)


def test_transform_torch(rows):
    torch = pytest.importorskip("torch")
    for kind in TRANSFORM_KINDS:
        t = Transform.fit(kind, rows)
        tensor = torch.from_numpy(rows).to(torch.float64)
        out = t.apply(tensor)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device == tensor.device
        np.testing.assert_allclose(out.numpy(), t.apply(rows), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(t.invert(out).numpy(), rows, rtol=1e-5, atol=1e-5)
    assert Transform.fit("unit", torch.from_numpy(rows)) == Transform.fit("unit", rows)


def test_data_package_does_not_import_torch():
    package = Path(data_module.__file__).parent.parent
    code = (
        "import sys, types\n"
        f"stub = types.ModuleType('aekit'); stub.__path__ = [{str(package)!r}]; sys.modules['aekit'] = stub\n"
        "import aekit.data\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- properties

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

float_arrays = hnp.arrays(  # width-32 floats, NaN and infinities included
    np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5), elements=st.floats(width=32)
)


def _expect_identical_or_error(path: Path, x: np.ndarray) -> None:
    ds = load_or_none(path)
    if np.isfinite(x).all():
        assert ds is not None
        np.testing.assert_array_equal(ds.x, x)
    else:
        assert ds is None


@FUZZ
@given(x=float_arrays)
def test_fuzz_npy_and_csv_round_trip(tmp_path_factory, x):
    folder = tmp_path_factory.mktemp("fuzz")
    np.save(folder / "x.npy", x)
    _expect_identical_or_error(folder / "x.npy", x)
    lines = [",".join(repr(float(v)) for v in row) for row in x]
    (folder / "x.csv").write_text("\n".join(lines) + "\n")
    _expect_identical_or_error(folder / "x.csv", x)


random_bytes = st.binary(max_size=300)


@FUZZ
@given(raw=random_bytes, prefix=st.sampled_from([b"", b"\x00\x00\x08\x02", b"\x00\x00\x0d\x03\x00\x00\x00\x02"]),
       compress=st.booleans())
def test_fuzz_random_idx(tmp_path_factory, raw, prefix, compress):
    path = tmp_path_factory.mktemp("fuzz") / "x.idx"
    body = prefix + raw
    path.write_bytes(gzip.compress(body) if compress else body)
    load_or_none(path)


@FUZZ
@given(raw=random_bytes, prefix=st.sampled_from([b"", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00"]))
def test_fuzz_random_npy(tmp_path_factory, raw, prefix):
    path = tmp_path_factory.mktemp("fuzz") / "x.npy"
    path.write_bytes(prefix + raw)
    load_or_none(path)


@FUZZ
@given(raw=random_bytes, prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"BM", b"\xff\xd8\xff"]))
def test_fuzz_random_png(tmp_path_factory, raw, prefix):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "x.png").write_bytes(prefix + raw)
    load_or_none(folder)
