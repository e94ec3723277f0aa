"""Nearest-neighbour search over codes (aekit.search): exactness against brute force, recall@k,
the index directory (round trip, corruption, atomic writes) and the CLI."""

import json
import shutil

import numpy as np
import pytest
import torch
from helpers import run_cli

import aekit
from aekit import search as S
from aekit.errors import AekitError, ConfigError, DataError
from aekit.io import save_model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "run"
    aekit.fit("ae", "digits", hidden=(16,), latent=4, epochs=1, out=out, progress=False, figures=False)
    return out


@pytest.fixture(scope="module")
def digits_x():
    return aekit.load_data("digits").x


def _brute_force(codes, queries, k, metric):
    if metric == "cosine":
        c = codes / np.linalg.norm(codes, axis=1, keepdims=True)
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        d = 1.0 - q @ c.T
    else:
        d = ((queries[:, None, :] - codes[None, :, :]) ** 2).sum(-1)
    ids = np.argsort(d, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(d, ids, 1)


def test_recall_at_k_known_answer():
    found = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[3, 2, 9], [7, 8, 9]])
    assert S.recall_at_k(found, exact) == pytest.approx((2 / 3 + 0) / 2)
    assert S.recall_at_k(found, found) == 1.0
    assert S.recall_at_k(found, exact, k=1) == 0.0           # only the first column counts
    assert S.recall_at_k(found, np.array([[2, 1, 0], [4, 0, 0]]), k=2) == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(ConfigError):
        S.recall_at_k(found, exact, k=4)
    with pytest.raises(DataError):
        S.recall_at_k(found, exact[:1])


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_index_search_equals_brute_force_numpy(metric):
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(300, 5)).astype(np.float32)
    queries = rng.normal(size=(25, 5)).astype(np.float32)
    index = S.index_codes(codes, metric)
    ids, dist = S.search_codes(index, queries, k=7)
    want_ids, want_dist = _brute_force(codes.astype(np.float64), queries.astype(np.float64), 7, metric)
    assert ids.shape == dist.shape == (25, 7) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-4, atol=1e-5)
    assert (np.diff(dist, axis=1) >= -1e-6).all()             # nearest first


def test_search_through_the_model_equals_brute_force_on_its_codes(run, digits_x):
    model = aekit.load(run)
    index = S.build_index(model, digits_x, data="digits", run=run)
    assert index.rows == len(digits_x) and index.dim == 4
    ids, dist = S.search(index, model, digits_x[:30], k=5)
    codes = model.encode_array(digits_x).astype(np.float64)
    want_ids, want_dist = _brute_force(codes, codes[:30], 5, "l2")
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(ids[:, 0], np.arange(30))   # every query row finds itself first


def test_exact_neighbours_and_recall_of_identical_spaces(digits_x):
    ids, _ = S.exact_neighbours(digits_x, digits_x[:10], k=3)
    np.testing.assert_array_equal(ids[:, 0], np.arange(10))   # every row is its own nearest neighbour
    index = S.index_codes(digits_x)                           # the "codes" are the pixels: recall 1
    found, _ = S.search_codes(index, digits_x[:50], 10)
    exact, _ = S.exact_neighbours(digits_x, digits_x[:50], 10)
    assert S.recall_at_k(found, exact) == 1.0


def test_save_load_round_trip_is_atomic(run, digits_x, tmp_path):
    model = aekit.load(run)
    index = S.build_index(model, digits_x[:200], "cosine", data="digits", run=run)
    S.save_index(index, tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]          # no temporary left behind
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [S.INDEX_FILE, S.META_FILE]
    back = S.load_index(tmp_path / "idx")
    meta = back.meta
    assert (meta["rows"], meta["dim"], meta["metric"]) == (200, 4, "cosine")
    assert meta["run"] == str(run) and meta["aekit_version"] == aekit.__version__ and len(meta["index_sha256"]) == 64
    np.testing.assert_array_equal(S.search(back, model, digits_x[:5], 3)[0], S.search(index, model, digits_x[:5], 3)[0])
    with pytest.raises(ConfigError, match="already exists"):
        S.save_index(index, tmp_path / "idx")
    (tmp_path / "other").mkdir()
    with pytest.raises(ConfigError, match="not an aekit index"):
        S.save_index(index, tmp_path / "other", overwrite=True)
    S.save_index(S.build_index(model, digits_x[:50], data="digits", run=run), tmp_path / "idx", overwrite=True)
    assert S.load_index(tmp_path / "idx").rows == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "other"]


def test_errors_are_clear(run, digits_x, tmp_path):
    model = aekit.load(run)
    index = S.build_index(model, digits_x[:20], data="digits", run=run)
    with pytest.raises(S.SearchIndexError, match="no such index directory"):
        S.load_index(tmp_path / "missing")
    for k in (0, 21, True):
        with pytest.raises(ConfigError, match="k must be"):
            S.search(index, model, digits_x[:2], k)
    with pytest.raises(DataError, match="size 3 but the index holds codes of size 4"):
        S.search_codes(index, np.zeros((2, 3)), 1)
    with pytest.raises(DataError, match="64 features"):
        S.search(index, model, np.zeros((2, 10)), 1)
    with pytest.raises(ConfigError, match="unknown metric"):
        S.index_codes(np.zeros((3, 2)), "manhattan")
    assert issubclass(S.SearchIndexError, AekitError)


def test_cli_index_and_search_round_trip(run, digits_x, tmp_path, capsys):
    idx = tmp_path / "idx"
    assert run_cli(["index", str(run), "digits", "-o", str(idx)]) == 0
    index = S.load_index(idx)
    assert index.rows == len(digits_x) and index.meta["data"] == "digits"
    model = aekit.load(run)
    want_ids, want_dist = S.search(index, model, digits_x[[0, 5, 7]], 10)
    capsys.readouterr()
    assert run_cli(["search", str(idx), "digits", "-k", "10", "--rows", "0,5,7", "-o", str(tmp_path / "n.json"),
                    "--recall"]) == 0
    out = json.loads((tmp_path / "n.json").read_text())
    assert out["queries"] == [0, 5, 7] and out["k"] == 10
    np.testing.assert_array_equal(out["ids"], want_ids)
    np.testing.assert_allclose(out["distances"], want_dist, rtol=1e-6)
    exact, _ = S.exact_neighbours(digits_x, digits_x[[0, 5, 7]], 10)
    assert out["recall_at_k"] == pytest.approx(S.recall_at_k(want_ids, exact))
    assert "recall@10" in capsys.readouterr().out
    assert run_cli(["search", str(idx), "digits", "-k", "3", "--rows", "0,5,7", "-o", str(tmp_path / "n.npz")]) == 0
    with np.load(tmp_path / "n.npz", allow_pickle=False) as f:
        np.testing.assert_array_equal(f["ids"], want_ids[:, :3])
        np.testing.assert_array_equal(f["queries"], [0, 5, 7])
    assert run_cli(["search", str(idx), "digits", "-k", "2", "--rows", "5", "-o", str(tmp_path / "n.csv")]) == 0
    lines = (tmp_path / "n.csv").read_text().splitlines()
    assert lines[0] == "query,rank,id,distance" and [int(v) for v in lines[1].split(",")[:3]] == [5, 0, want_ids[1, 0]]
    capsys.readouterr()
    assert run_cli(["search", str(idx), "digits", "-k", "2", "--rows", "7"]) == 0
    assert capsys.readouterr().out.startswith(f"7: {want_ids[2, 0]}:")


def test_cli_refuses_a_corrupted_index_and_writes_nothing(run, tmp_path, capsys):
    idx = tmp_path / "idx"
    assert run_cli(["index", str(run), "digits", "-o", str(idx)]) == 0
    raw = (idx / S.INDEX_FILE).read_bytes()
    (idx / S.INDEX_FILE).write_bytes(raw[: len(raw) // 2])                 # truncated
    capsys.readouterr()
    assert run_cli(["search", str(idx), "digits", "-k", "3", "-o", str(tmp_path / "n.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aekit: error: ") and "corrupted or truncated" in err and "Traceback" not in err
    assert not (tmp_path / "n.json").exists()
    flipped = bytearray(raw)
    flipped[-1] ^= 0xFF
    (idx / S.INDEX_FILE).write_bytes(bytes(flipped))                       # same size, one byte changed
    with pytest.raises(S.SearchIndexError, match="corrupted"):
        S.load_index(idx)
    (idx / S.INDEX_FILE).write_bytes(raw)
    assert S.load_index(idx).rows > 0


def test_cli_errors_leave_nothing_behind(run, tmp_path, capsys):
    idx = tmp_path / "idx"
    assert run_cli(["index", str(run), str(tmp_path / "missing.npy"), "-o", str(idx)]) == 2
    assert not idx.exists() and list(tmp_path.iterdir()) == []
    assert run_cli(["index", str(run), "digits", "-o", str(idx)]) == 0
    capsys.readouterr()
    for argv, message in ((["search", str(tmp_path / "nope"), "digits"], "no such index directory"),
                          (["search", str(idx), "digits", "-k", "0"], "-k must be between 1"),
                          (["search", str(idx), "digits", "-k", "5000"], "-k must be between 1"),
                          (["search", str(idx), "digits", "--rows", "99999"], "out of range"),
                          (["index", str(run), "digits", "-o", str(idx)], "already exists"),
                          (["search", str(idx), "digits", "-o", str(tmp_path / "n.txt")], "must end in")):
        assert run_cli(argv) == 2, argv
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_index_of_other_weights_or_code_size_is_refused(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    model = aekit.load(copy)
    x = aekit.load_data("digits").x[:40]
    S.save_index(S.build_index(model, x, data="digits", run=copy), tmp_path / "idx")
    index = S.load_index(tmp_path / "idx")
    assert S.load_run(index).config.latent == 4
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_model(copy, model)                                                # the run was changed since
    with pytest.raises(S.SearchIndexError, match="differ from those that built the index"):
        S.load_run(index)
    other = tmp_path / "other"
    aekit.fit("ae", "digits", hidden=(8,), latent=3, epochs=1, out=other, progress=False, figures=False)
    with pytest.raises(S.SearchIndexError, match="codes of size 3"):
        S.load_run(index, other)
