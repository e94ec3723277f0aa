"""Hostile data sources (issue 14): 16-bit images read at full depth, files that are not regular
files (named pipes, devices, sockets) refused before they are opened, compressed tables and arrays
read within a bound, and values too far apart to scale in float32 refused naming the file."""

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import resource
import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli
from PIL import Image

import aekit
from aekit.data import Transform, load_data
from aekit.data.stream import Shards, fit_transform
from aekit.errors import DataError

TIMEOUT = 30  # seconds; every load below takes well under one


def _png(path, pixels):
    """Write ``pixels`` (uint8 or uint16, (H, W) or (H, W, 3)) as a PNG of that depth."""
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def _data_error(function, *args, **kwargs):
    """The DataError ``function(*args)`` raises; checks it is one line naming nothing else first."""
    with pytest.raises(DataError) as info:
        function(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- 16-bit images -----------------------------------------------------------------------------------
def test_a_folder_of_16_bit_pngs_loads_at_full_depth(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.permutation(np.r_[0, 65535, rng.integers(1, 65535, 3 * 16 * 16 - 2)]).astype(np.uint16)
    images = images.reshape(3, 16, 16)
    folder = tmp_path / "deep"
    folder.mkdir()
    for i, image in enumerate(images):
        if i == 1:  # a big-endian image in memory is saved as the same 16-bit PNG
            image16 = Image.frombytes("I;16B", (16, 16), image.astype(">u2").tobytes())
            image16.save(folder / f"{i}.png", format="PNG")
        else:
            _png(folder / f"{i}.png", image)
    ds = load_data(folder)
    assert ds.image_shape == (1, 16, 16)
    np.testing.assert_array_equal(ds.x, images.reshape(3, -1).astype(np.float32))  # no value clipped or rounded
    assert ds.x.max() == 65535 and len(np.unique(ds.x)) > 256
    scaled = Transform.fit("unit", ds.x).apply(ds.x)
    assert scaled.min() == 0 and scaled.max() == 1
    assert (np.argsort(scaled, axis=None, kind="stable") == np.argsort(images, axis=None, kind="stable")).all()


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I"])
def test_every_16_bit_gray_mode_keeps_its_values(mode):
    from aekit.data.readers import _sixteen_bit_pixels

    values = np.array([[0, 1, 255], [256, 40000, 65535]], np.uint16)
    if mode == "I":
        image = Image.fromarray(values.astype(np.int32))
    else:
        dtype = {"I;16": "<u2", "I;16B": ">u2", "I;16L": "<u2"}[mode]
        image = Image.frombytes(mode, (3, 2), values.astype(dtype).tobytes())
    assert image.mode == mode
    pixels = _sixteen_bit_pixels(image, "x.png")
    assert pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, values)


def test_a_folder_mixing_8_and_16_bit_images_is_on_the_16_bit_scale(tmp_path):
    eight = np.array([[0, 1, 128, 255]] * 4, np.uint8)
    sixteen = np.array([[0, 257, 1000, 65535]] * 4, np.uint16)
    for first in ("8", "16"):  # the 8-bit file read before or after the 16-bit one
        folder = tmp_path / f"mixed{first}"
        folder.mkdir()
        _png(folder / ("a.png" if first == "8" else "b.png"), eight)
        _png(folder / ("b.png" if first == "8" else "a.png"), sixteen)
        ds = load_data(folder)
        rows = [eight.astype(np.float32) * 257, sixteen.astype(np.float32)]
        np.testing.assert_array_equal(ds.x, np.stack(rows if first == "8" else rows[::-1]).reshape(2, -1))


def test_a_16_bit_gray_image_among_colour_ones_keeps_its_depth(tmp_path):
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0], colour[..., 2] = 255, 1
    gray = np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000
    folder = tmp_path / "rgb"
    folder.mkdir()
    _png(folder / "a.png", colour)
    _png(folder / "b.png", gray)
    ds = load_data(folder)
    assert ds.image_shape == (3, 4, 4)
    images = ds.images()
    np.testing.assert_array_equal(images[0], colour.transpose(2, 0, 1).astype(np.float32) * 257)
    np.testing.assert_array_equal(images[1], np.repeat(gray[np.newaxis], 3, axis=0).astype(np.float32))


# -- not regular files ------------------------------------------------------------------------------
@contextlib.contextmanager
def _fails_if_blocked(fifo):
    """Fail the test when its body is still blocked on the named pipe ``fifo`` after TIMEOUT
    seconds; it is then unblocked (opened for writing, again and again) so that it ends."""
    done, unblocked = threading.Event(), []

    def watch():
        if done.wait(TIMEOUT):
            return
        while not done.is_set():
            with contextlib.suppress(OSError):  # ENXIO: no reader has it open at this instant
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                unblocked.append(True)
            done.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
    assert not unblocked, f"blocked on the named pipe {fifo}"


FIFO_NAMES = ["x.csv", "x.tsv.gz", "x.npy", "x.npy.xz", "x.npz", "x.parquet", "x-idx3-ubyte", "x.idx.gz"]
_FIFO_MESSAGE = "is a named pipe (FIFO), not a regular file; aekit reads data from regular files only"


@pytest.mark.parametrize("name", FIFO_NAMES)
def test_a_named_pipe_is_refused_without_opening_it(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with _fails_if_blocked(fifo):
        message = _data_error(load_data, fifo)
    assert message == f"{fifo}: {_FIFO_MESSAGE}"


def test_a_named_pipe_in_an_image_folder_is_refused(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    _png(folder / "a.png", np.zeros((4, 4), np.uint8))
    os.mkfifo(folder / "b.png")
    with _fails_if_blocked(folder / "b.png"):
        message = _data_error(load_data, folder)  # not skipped: the folder would silently lose an image
    assert message == f"{folder / 'b.png'}: {_FIFO_MESSAGE}"


def test_a_broken_link_in_an_image_folder_is_refused(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    _png(folder / "a.png", np.zeros((4, 4), np.uint8))
    (folder / "b.png").symlink_to(tmp_path / "gone.png")
    assert _data_error(load_data, folder) == f"{folder / 'b.png'}: is a broken symbolic link"


def test_train_on_a_named_pipe_exits_2(tmp_path, capsys):
    fifo = tmp_path / "x.csv"
    os.mkfifo(fifo)
    out = tmp_path / "run"
    with _fails_if_blocked(fifo):
        status = run_cli(["train", "ae", "--data", str(fifo), "--epochs", "1", "--quiet", "--out", str(out)])
    assert status == 2
    assert capsys.readouterr().err == f"aekit: error: {fifo}: {_FIFO_MESSAGE}\n"
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("name", ["x.npy", "shards"])
def test_streaming_refuses_a_named_pipe(tmp_path, name):
    if name == "shards":
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "a.npy", np.zeros((4, 2), np.float32))
        fifo = tmp_path / name / "b.npy"
    else:
        fifo = tmp_path / name
    os.mkfifo(fifo)
    with _fails_if_blocked(fifo):
        message = _data_error(Shards.open, tmp_path / name)
    assert message == f"{fifo}: {_FIFO_MESSAGE}"


DEVICE_NAMES = ["x.csv", "x.txt", "x.npy", "x.npz", "x.parquet", "x-idx3-ubyte", "x.csv.gz", "x.npy.gz"]
_LOAD_EACH = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a reader that reads on fails, not the machine
    from aekit.data import load_data
    from aekit.errors import DataError
    for path in sys.argv[1:]:
        try:
            load_data(path)
            print(json.dumps([path, "loaded"]), flush=True)
        except DataError as e:
            print(json.dumps([path, str(e)]), flush=True)
""")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_links_to_a_device_are_refused(tmp_path):
    links = []
    for name in DEVICE_NAMES:
        (tmp_path / name).symlink_to("/dev/zero")
        links.append(str(tmp_path / name))
    run = subprocess.run([sys.executable, "-c", _LOAD_EACH, *links], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    results = dict(json.loads(line) for line in run.stdout.splitlines())
    assert list(results) == links, run.stderr[-2000:]
    for path, message in results.items():
        assert message == f"{path}: is a character device, not a regular file; aekit reads data from regular files only"


def test_a_socket_and_a_folder_with_a_file_name_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short relative name: socket paths are limited to about 100 bytes
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind("s.csv")
        assert _data_error(load_data, "s.csv") == ("s.csv: is a socket, not a regular file; "
                                                   "aekit reads data from regular files only")
    (tmp_path / "d.csv").mkdir()
    assert _data_error(load_data, "d.csv") == "d.csv: is a folder, not a .csv file, and holds no images"


# -- compressed tables and arrays --------------------------------------------------------------------
COMPRESSORS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}
ROWS = np.round(np.random.default_rng(1).normal(size=(40, 5)), 6)


def _twin(tmp_path, name):
    """Write the uncompressed file ``name`` minus its compression suffix, and ``name`` compressed."""
    base, suffix = os.path.splitext(name)
    plain = tmp_path / base
    if base.endswith(".npy"):
        np.save(plain, ROWS.astype(np.float32))
    else:
        sep = {".csv": ",", ".tsv": "\t", ".txt": " "}[os.path.splitext(base)[1]]
        frame = pd.DataFrame(ROWS, columns=list("abcde")).assign(label=np.arange(40) % 3)
        frame.to_csv(plain, sep=sep, index=False)
    (tmp_path / name).write_bytes(COMPRESSORS[suffix](plain.read_bytes()))
    return plain, tmp_path / name


@pytest.mark.parametrize("name", ["x.csv.gz", "x.tsv.gz", "x.txt.gz", "x.csv.bz2", "x.csv.xz", "x.npy.gz",
                                  "x.npy.bz2", "x.npy.xz"])
def test_a_compressed_file_loads_like_its_uncompressed_twin(tmp_path, name):
    plain, packed = _twin(tmp_path, name)
    label = None if ".npy" in name else "label"
    expected, got = load_data(plain, label_column=label), load_data(packed, label_column=label)
    np.testing.assert_array_equal(got.x, expected.x)
    np.testing.assert_array_equal(got.x, ROWS.astype(np.float32))
    if label is None:
        assert got.y is None
    else:
        np.testing.assert_array_equal(got.y, np.arange(40) % 3)
    assert got.source == str(packed)


def _flip(raw, at):
    data = bytearray(raw)
    data[at] ^= 0x40
    return bytes(data)


BROKEN = {  # name, bytes from the compressed twin, expected part of the message
    "truncated csv.gz": ("x.csv.gz", lambda raw: raw[: len(raw) // 2], "corrupt gzip data"),
    "csv.gz checksum": ("x.csv.gz", lambda raw: _flip(raw, len(raw) - 6), "corrupt gzip data"),
    "csv.gz not gzip": ("x.csv.gz", lambda raw: b"a,b\n1,2\n", "corrupt gzip data"),
    "truncated npy.gz": ("x.npy.gz", lambda raw: raw[: len(raw) - 40], "corrupt gzip data"),
    "npy.gz header only": ("x.npy.gz", lambda raw: gzip.compress(gzip.decompress(raw)[:200]), "truncated .npy file"),
    "truncated csv.bz2": ("x.csv.bz2", lambda raw: raw[: len(raw) // 2], "corrupt bzip2 data"),
    "truncated csv.xz": ("x.csv.xz", lambda raw: raw[: len(raw) // 2], "corrupt xz data"),
    "npy.xz garbage": ("x.npy.xz", lambda raw: raw[:8] + bytes(64), "corrupt xz data"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_corrupt_or_truncated_archive_gives_a_data_error(tmp_path, case):
    name, mutate, expected = BROKEN[case]
    _, packed = _twin(tmp_path, name)
    packed.write_bytes(mutate(packed.read_bytes()))
    message = _data_error(load_data, packed)
    assert message.startswith(f"{packed}: ") and expected in message


def _npy_header(shape):
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return b.getvalue()


BOMBS = {
    "npy.gz asks for 4 TB": ("x.npy.gz", lambda: gzip.compress(_npy_header((10 ** 6, 10 ** 6)) + bytes(64)),
                             "more than its"),
    "npy.xz asks for 4 TB": ("x.npy.xz", lambda: lzma.compress(_npy_header((10 ** 6, 10 ** 6)) + bytes(64)),
                             "more than its"),
    "csv.bz2 of zeros": ("x.csv.bz2", lambda: bz2.compress(b"0,0\n" * (4 << 20)), "inflates to more than 1032"),
    "blank lines csv.xz": ("x.csv.xz", lambda: lzma.compress(b"\n" * (16 << 20)), "inflates to more than 1032"),
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_a_compression_bomb_is_refused_within_its_bound(tmp_path, case):
    name, make, expected = BOMBS[case]
    (tmp_path / name).write_bytes(make())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    message = _data_error(load_data, tmp_path / name)
    assert message.startswith(f"{tmp_path / name}: ") and expected in message
    assert time.perf_counter() - t0 < 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200_000  # KiB: nothing large was held


def test_streaming_a_compressed_npy_says_to_decompress_it(tmp_path):
    _, packed = _twin(tmp_path, "x.npy.gz")
    message = _data_error(Shards.open, packed)
    assert message.startswith(f"{packed}: is compressed (.gz)") and "decompress it first" in message
    folder = tmp_path / "shards"
    folder.mkdir()
    np.save(folder / "a.npy", ROWS)
    (folder / "b.npy.gz").write_bytes(packed.read_bytes())  # not left out silently: its rows would be missing
    assert _data_error(Shards.open, folder).startswith(f"{folder / 'b.npy.gz'}: is compressed (.gz)")


# -- values too far apart for float32 scaling -------------------------------------------------------
HUGE = np.array([[3e38, 1.0], [-3e38, 2.0], [1.0, 3.0], [2.0, 4.0]], np.float32)
SKEWED = np.array([[3e38, 1.0]] + [[-3e38, 2.0]] * 9, np.float32)  # mean -2.4e38: 3e38 lies 5.4e38 from it


def test_a_unit_range_beyond_float32_is_refused_naming_the_source():
    message = _data_error(Transform.fit, "unit", HUGE, source="x.csv")
    assert message.startswith("x.csv: the values range from -3e+38 (column 0) to 3e+38 (column 0)")
    assert "beyond the float32 limit" in message


def test_a_standard_scaling_that_overflows_is_refused_naming_the_source():
    t = Transform.fit("standard", HUGE, source="x.csv")  # mean 0: every value scales to a finite one
    assert np.isfinite(t.apply(HUGE)).all()
    message = _data_error(Transform.fit, "standard", SKEWED, source="x.csv")
    assert message.startswith("x.csv: column 0 holds values from -3e+38 to 3e+38, further than the float32 limit")


@pytest.mark.parametrize("kind", ["unit", "standard"])
def test_streamed_scaling_beyond_float32_names_the_file(tmp_path, kind):
    np.save(tmp_path / "x.npy", SKEWED)
    shards = Shards.open(tmp_path / "x.npy")
    message = _data_error(fit_transform, kind, shards, np.arange(len(SKEWED)))
    assert message.startswith(f"{tmp_path / 'x.npy'}: ") and "float32 limit" in message


#: 10 rows of 3e38 and 30 of -3e38: every training split holds both, with a mean near -1.5e38
FAR_APART = np.repeat(np.array([[3e38, 1.0], [-3e38, 2.0]]), [10, 30], axis=0)


@pytest.mark.parametrize("scale", ["unit", "standard"])
def test_train_on_values_beyond_float32_scaling_names_the_file(tmp_path, capsys, scale):
    data = tmp_path / "x.csv"
    np.savetxt(data, FAR_APART, delimiter=",")
    status = run_cli(["train", "ae", "--data", str(data), "--scale", scale, "--epochs", "1", "--quiet",
                      "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"aekit: error: {data}: ") and "float32 limit" in err and err.count("\n") == 1


def test_fit_on_values_beyond_float32_scaling_names_the_file(tmp_path):
    data = tmp_path / "x.csv"
    np.savetxt(data, FAR_APART, delimiter=",")
    message = _data_error(aekit.fit, "ae", str(data), epochs=1, progress=False)
    assert message.startswith(f"{data}: the values range from -3e+38 (column 0) to 3e+38 (column 0)")
