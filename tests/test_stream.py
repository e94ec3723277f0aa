"""Data larger than memory (aekit.data.stream): rows read from a .npy file or a folder of .npy /
Parquet shards a window at a time, shuffled by shard and within windows, resumable."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import aekit
from aekit.data import load_data, split_data
from aekit.data.stream import Shards, StreamingRows, StreamSplits, encode, fit_transform, split_rows
from aekit.data.transform import Transform
from aekit.errors import ConfigError, DataError
from helpers import InterruptAt, run_cli

FIT = dict(hidden=(16,), latent=4, epochs=2, batch_size=50, seed=1, progress=False, figures=False)


@pytest.fixture(scope="session")
def digits():
    return load_data("digits").x


@pytest.fixture
def shards_dir(tmp_path, digits):
    """digits in four shards: two .npy (one as uint8), two Parquet with a label column."""
    folder = tmp_path / "shards"
    folder.mkdir()
    parts = np.split(digits, [400, 900, 1300])
    np.save(folder / "a.npy", parts[0])
    np.save(folder / "b.npy", parts[1].astype(np.uint8))
    for name, part, groups in (("c.parquet", parts[2], 128), ("d.pq", parts[3], 100)):
        frame = pd.DataFrame(part, columns=[f"f{i}" for i in range(64)])
        frame.insert(3, "label", 7)
        frame.to_parquet(folder / name, row_group_size=groups)
    return folder


def test_shards_read_back_the_rows_in_name_order(shards_dir, digits):
    shards = Shards.open(shards_dir, label_column="label")
    assert len(shards) == len(digits) and shards.n_features == 64 and list(shards.starts) == [0, 400, 900, 1300, 1797]
    assert np.array_equal(shards.read(0, len(digits)), digits)
    assert np.array_equal(shards.read(390, 1310), digits[390:1310])  # across all four shards
    rows = np.sort(np.random.default_rng(0).choice(len(digits), 300, replace=False))
    assert np.array_equal(shards.read_rows(rows), digits[rows])
    pieces = list(shards.chunks(nbytes=256 * 100))
    assert [i for i, _ in pieces] == list(range(0, len(digits), 100))
    assert np.array_equal(np.concatenate([x for _, x in pieces]), digits)


def test_bad_shards_are_one_clear_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((3, 4), np.float32))
    np.save(folder / "b.npy", np.ones((3, 5), np.float32))
    with pytest.raises(DataError, match="different numbers of features"):
        Shards.open(folder)
    x = np.ones((4, 3), np.float32)
    x[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(DataError, match=r"nan\.npy: holds NaN.*rows 0\.\.3"):
        Shards.open(tmp_path / "nan.npy").read(0, 4)
    np.save(tmp_path / "f.npy", np.asfortranarray(np.ones((4, 3))))
    with pytest.raises(DataError, match="Fortran"):
        Shards.open(tmp_path / "f.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .npy or Parquet shards"):
        Shards.open(tmp_path / "empty")
    (tmp_path / "t.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="not .csv"):
        Shards.open(tmp_path / "t.csv")


def test_split_and_transform_are_those_of_the_in_memory_path(digits, tmp_path):
    ds = load_data(digits)
    splits = split_data(ds, val_fraction=0.1, test_fraction=0.2, seed=5)
    train, val, test = split_rows(len(digits), val_fraction=0.1, test_fraction=0.2, seed=5)
    for rows, part in ((train, splits.train), (val, splits.val), (test, splits.test)):
        assert np.array_equal(digits[rows], part.x)
    np.save(tmp_path / "d.npy", digits)
    shards = Shards.open(tmp_path / "d.npy")
    for kind in ("unit", "standard", "none"):
        t, low, high = fit_transform(kind, shards, train)
        expected = Transform.fit(kind, digits[train])
        assert t.kind == kind and np.allclose(t.shift, expected.shift, rtol=1e-6) and np.allclose(t.scale, expected.scale,
                                                                                                    rtol=1e-6)
        scaled = expected.apply(digits[train])
        assert low == pytest.approx(scaled.min(), abs=1e-5) and high == pytest.approx(scaled.max(), abs=1e-5)


def test_the_order_shuffles_by_shard_and_within_windows(shards_dir, digits):
    shards = Shards.open(shards_dir, label_column="label")
    rows = split_rows(len(digits), seed=0)[0]
    st = StreamingRows(shards, rows, None, window_rows=100)
    shard_of = np.searchsorted(shards.starts, rows, side="right") - 1
    window_of = np.searchsorted(st.window_starts, np.arange(len(rows)), side="right") - 1
    assert st.n_windows == sum(-(-int((shard_of == s).sum()) // 100) for s in range(4))
    assert all(len({shard_of[p] for p in range(st.window_starts[w], st.window_starts[w + 1])}) == 1
               for w in range(st.n_windows))  # a window never spans two shards
    order = st.permutation(torch.Generator().manual_seed(0)).numpy()
    assert np.array_equal(np.sort(order), np.arange(len(rows)))  # a permutation of the positions
    runs = lambda labels: [k for i, k in enumerate(labels) if i == 0 or labels[i - 1] != k]  # noqa: E731
    assert sorted(runs(shard_of[order].tolist())) == [0, 1, 2, 3]  # each shard's rows come in one stretch
    assert sorted(runs(window_of[order].tolist())) == list(range(st.n_windows))  # so do each window's
    assert runs(shard_of[order].tolist()) != [0, 1, 2, 3] or runs(window_of[order].tolist()) != sorted(
        runs(window_of[order].tolist()))  # and not in file order
    again = st.permutation(torch.Generator().manual_seed(0)).numpy()
    other = st.permutation(torch.Generator().manual_seed(1)).numpy()
    assert np.array_equal(order, again) and not np.array_equal(order, other)
    assert not np.array_equal(order[:100], np.sort(order[:100]))  # rows shuffled within a window


def test_batches_read_each_window_once_and_hold_at_most_two(shards_dir, digits):
    shards = Shards.open(shards_dir, label_column="label")
    t = Transform.fit("unit", digits)
    st = StreamingRows(shards, np.arange(len(digits)), t, window_rows=128)
    order = st.permutation(torch.Generator().manual_seed(3))
    for i in range(0, len(order), 50):
        xb = st[order[i:i + 50]]
        assert torch.equal(xb, torch.from_numpy(t.apply(digits[order[i:i + 50].numpy()])))
        assert len(st._cache) <= 2
    assert st.windows_read == st.n_windows
    assert torch.equal(st[10:20], torch.from_numpy(t.apply(digits[10:20])))


def test_one_window_trains_exactly_as_in_memory(tmp_path, digits):
    np.save(tmp_path / "d.npy", digits)
    memory = aekit.fit("ae", str(tmp_path / "d.npy"), **FIT)
    streamed = aekit.fit("ae", str(tmp_path / "d.npy"), stream=True, buffer_mb=64, **FIT)
    assert all(torch.equal(a, b) for a, b in zip(memory.state_dict().values(), streamed.state_dict().values()))
    assert streamed.history[-1]["val_loss"] == pytest.approx(memory.history[-1]["val_loss"], rel=1e-6)


def test_a_streamed_run_resumes_exactly(shards_dir, tmp_path):
    kw = dict(FIT, stream=True, buffer_mb=0.05, label_column="label")  # windows of ~100 rows
    whole = aekit.fit("ae", str(shards_dir), out=tmp_path / "whole", **kw)
    with pytest.raises(aekit.train.Interrupted):
        aekit.fit("ae", str(shards_dir), out=tmp_path / "cut", callbacks=[InterruptAt(31)], **kw)
    resumed = aekit.fit("ae", str(shards_dir), out=tmp_path / "cut", resume=True, progress=False, figures=False)
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    cfg = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert cfg["data"]["stream"] is True and cfg["splits"]["train"] == 1258


def test_streamed_encode_equals_in_memory_encode(shards_dir, digits, tmp_path, monkeypatch):
    model = aekit.fit("ae", digits, **dict(FIT, epochs=1))
    codes = encode(model, shards_dir, batch_size=256, label_column="label")
    assert np.array_equal(codes, model.encode_array(digits, batch_size=256))
    run = tmp_path / "run"
    aekit.fit("ae", str(shards_dir), out=run, label_column="label", stream=True, **dict(FIT, epochs=1))
    monkeypatch.chdir(tmp_path)
    assert run_cli(["encode", str(run), str(shards_dir), "--label-column", "label", "--stream", "-o", "c.npy"]) == 0
    assert np.array_equal(np.load(tmp_path / "c.npy"), aekit.load(run).encode_array(digits))


def test_stream_mistakes(tmp_path, digits):
    with pytest.raises(ConfigError, match="stream reads a .npy file"):
        aekit.fit("ae", digits, stream=True, **FIT)
    with pytest.raises(ConfigError, match="buffer_mb must be positive"):
        aekit.fit("ae", "digits", stream=True, buffer_mb=0, **FIT)
    np.save(tmp_path / "d.npy", digits)
    with pytest.raises(ConfigError, match="pretraining needs the data in memory"):
        aekit.fit("deep", str(tmp_path / "d.npy"), stream=True, **FIT)
    with pytest.raises(ConfigError, match="window_rows"):
        StreamingRows(StreamSplits.open(tmp_path / "d.npy").shards, np.arange(3), None, 0)
