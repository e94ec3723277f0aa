"""Hostile and malformed input: every case ends in a result or in aekit's own error with a clear
message; never another exception, a hang, an allocation the input merely asks for, a partial
output file, or code run from a model file."""

import gzip
import io
import json
import pickle
import resource
import shutil
import time
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import aekit
from aekit import AekitError, Autoencoder, ModelConfig, RunError, Trainer, TrainConfig
from aekit.cli import main
from aekit.data import Dataset, Transform, load_data
from aekit.errors import DataError
from aekit.model import MAX_PARAMETERS, parameter_count
from aekit.train import CHECKPOINT, PREVIOUS_CHECKPOINT

FUZZ = settings(max_examples=100, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# -- malformed files --------------------------------------------------------------------------------
def _valid_files():
    """One small valid file of every format, as bytes."""
    x = (np.arange(24).reshape(6, 4) / 3).astype(np.float32)
    img = np.arange(96, dtype=np.uint8).reshape(6, 4, 4)
    files = {}
    b = io.BytesIO()
    np.save(b, x)
    files["x.npy"] = b.getvalue()
    b = io.BytesIO()
    np.savez(b, x=x, y=np.arange(6))
    files["x.npz"] = b.getvalue()
    b = io.BytesIO()
    np.savez_compressed(b, x=x)
    files["c.npz"] = b.getvalue()
    files["x.csv"] = ("a,b,c,d\n" + "\n".join(",".join(map(str, r)) for r in x) + "\n").encode()
    b = io.BytesIO()
    pd.DataFrame(x, columns=list("abcd")).to_parquet(b)
    files["x.parquet"] = b.getvalue()
    idx = bytes([0, 0, 8, 3]) + np.array(img.shape, ">u4").tobytes() + img.tobytes()
    files["x.idx"] = idx
    files["x-idx3-ubyte.gz"] = gzip.compress(idx)
    b = io.BytesIO()
    Image.fromarray(img[0]).save(b, format="PNG")
    files["png/a.png"] = b.getvalue()
    return files


VALID = _valid_files()


@st.composite
def mutations(draw, raw):
    """``raw`` with a few bytes flipped, overwritten or inserted, or cut short."""
    data = bytearray(raw)
    kind = draw(st.sampled_from(["flip", "set", "insert", "truncate"]))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[i] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, ord("9"), ord(","), ord("\n")]))
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[i:]
    return bytes(data)


def _result_or_data_error(path):
    """load_data(path): a valid Dataset or DataError; nothing is written next to the input."""
    before = sorted(p.name for p in path.parent.iterdir())
    try:
        ds = load_data(path)
    except DataError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        ds = None
    else:
        assert ds.x.dtype == np.float32 and ds.x.ndim == 2 and len(ds) > 0 and np.isfinite(ds.x).all()
    assert sorted(p.name for p in path.parent.iterdir()) == before
    return ds


@pytest.mark.parametrize("name", list(VALID))
def test_mutated_files_give_a_dataset_or_a_data_error(tmp_path_factory, name):
    folder = tmp_path_factory.mktemp("valid")
    (folder / name).parent.mkdir(exist_ok=True)
    (folder / name).write_bytes(VALID[name])
    source = folder / name.split("/")[0]
    assert _result_or_data_error(source) is not None  # the unmutated file reads

    @FUZZ
    @given(raw=mutations(VALID[name]))
    def check(raw):
        (folder / name).write_bytes(raw)
        _result_or_data_error(source)

    check()


def _npy_header(shape, descr="<f4"):
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": descr, "fortran_order": False, "shape": shape})
    return b.getvalue()


BOMBS = {  # a few bytes that ask for terabytes, or break the parsers below numpy / pandas
    "npz member asks for 4 TB": ("x.npz", lambda: _zip({"x.npy": _npy_header((10 ** 6, 10 ** 6)) + bytes(64)}),
                                "truncated .npy data"),
    "npz member is not npy": ("x.npz", lambda: _zip({"x": b"hello" * 10}), "not a valid .npy file"),
    "npy asks for 4 TB": ("x.npy", lambda: _npy_header((10 ** 6, 10 ** 6)) + bytes(64), "truncated .npy file"),
    "npy header breaks the tokenizer": ("x.npy", lambda: b"\x93NUMPY\x01\x00\x0c\x00{'descr': (\n", "not a valid .npy"),
    "gzip idx asks for 4 TB": ("x-idx3-ubyte.gz",
                               lambda: gzip.compress(bytes([0, 0, 8, 2]) + np.array([10 ** 6] * 2, ">u4").tobytes()),
                               "more than its"),
    "gzip idx with a zero bomb after its data": ("x-idx1-ubyte.gz",
                                                 lambda: gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2]) + bytes(10 ** 8)),
                                                 "trailing data in IDX file: expected 2 data bytes, found more"),
    "parquet with broken pandas metadata": ("x.parquet", lambda: _parquet_bad_metadata(), "not a valid Parquet file"),
    "parquet durations column": ("x.parquet", lambda: _parquet_bytes(pd.DataFrame({"a": pd.to_timedelta([1], "s")})),
                                 "not numeric"),
    "parquet list column": ("x.parquet", lambda: _parquet_bytes(pd.DataFrame({"a": [[1.0, 2.0]]})), "not numeric"),
}


def _zip(members):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return b.getvalue()


def _parquet_bytes(frame):
    b = io.BytesIO()
    frame.to_parquet(b)
    return b.getvalue()


def _parquet_bad_metadata():
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"a": [1.0, 2.0]}).replace_schema_metadata({b"pandas": b'{"columns": 5}'})
    b = io.BytesIO()
    pq.write_table(table, b)
    return b.getvalue()


@pytest.mark.parametrize("case", list(BOMBS))
def test_files_that_ask_for_absurd_allocations_are_refused_at_once(tmp_path, case):
    name, make, message = BOMBS[case]
    (tmp_path / name).write_bytes(make())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=message):
        load_data(tmp_path / name)
    assert time.perf_counter() - t0 < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200_000  # KiB: nothing large was held


# -- hostile arrays through the public API --------------------------------------------------------
DTYPES = [np.bool_, np.int8, np.int64, np.uint64, np.float16, np.float32, np.float64, np.longdouble,
          np.complex64, np.complex128, "U3", "S2", "M8[s]", "m8[s]", [("a", "f4"), ("b", "i4")]]
objects = st.one_of(st.none(), st.text(max_size=3), st.floats(), st.integers(), st.lists(st.integers(), max_size=2))


@st.composite
def hostile_arrays(draw, width=6):
    """Arrays of any dtype (objects too), 0 to 5 dimensions with empty sides, NaN / Inf / huge values;
    often of the right row width, to reach past the shape checks."""
    if draw(st.booleans()):
        shape = draw(st.tuples(st.integers(0, 5), st.just(width)))
    else:
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6))
    if draw(st.integers(0, 9)) == 0:
        n = int(np.prod(shape))
        cells = draw(st.lists(objects, min_size=n, max_size=n))
        out = np.empty(n, dtype=object)
        out[:] = cells if n else []
        return out.reshape(shape)
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    if dtype.kind == "f" and draw(st.booleans()):
        big = float(np.finfo(dtype).max)
        return draw(hnp.arrays(dtype, shape, elements=st.sampled_from([0.0, 1.0, -big, big, np.nan, np.inf])))
    return draw(hnp.arrays(dtype, shape))


@pytest.fixture(scope="session")
def tiny_model():
    torch.manual_seed(0)
    rows = np.random.default_rng(0).random((20, 6)).astype(np.float32)
    return Autoencoder(ModelConfig(input_dim=6, hidden=(5,), latent=2), Transform.fit("standard", rows)).eval()


@pytest.fixture(scope="session")
def estimator():
    from aekit.sklearn import AutoencoderTransformer
    return AutoencoderTransformer("ae", latent=2, hidden=(4,), epochs=1, random_state=0).fit(
        np.random.default_rng(0).random((30, 6)))


@FUZZ
@given(x=hostile_arrays())
def test_hostile_arrays_give_a_result_or_aekit_error(tiny_model, x):
    try:
        ds = load_data(x)
    except AekitError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(ds, Dataset) and len(ds) > 0 and np.isfinite(ds.x).all()
    for method, width in ((tiny_model.encode_array, 2), (tiny_model.reconstruct_array, 6)):
        try:
            out = method(x)
        except AekitError as e:
            assert str(e) and "\n" not in str(e)
        else:
            assert out.shape == (len(x), width) and out.dtype == np.float32 and np.isfinite(out).all()


def _sklearn_own_error(x):
    """The exception scikit-learn's own PCA raises for ``x`` (None when it accepts it)."""
    from sklearn.decomposition import PCA
    try:
        PCA(2).fit(np.random.default_rng(0).random((10, 6))).transform(x)
    except Exception as e:  # noqa: BLE001 - the reference behaviour, whatever it is
        return type(e)
    return None


@settings(FUZZ, max_examples=50)
@given(x=hostile_arrays())
def test_hostile_arrays_through_the_estimator_fail_like_scikit_learn(estimator, x):
    for method in (estimator.transform, estimator.score_samples):
        try:
            out = method(x)
        except ValueError:  # sklearn's documented error; aekit's DataError is one too
            pass
        except TypeError:  # scikit-learn's own check_array raises it for record dtypes, and so do its estimators
            assert _sklearn_own_error(x) is TypeError
        else:
            assert len(out) == len(x) and np.isfinite(out).all()


# -- run directories: pickles, corrupted and absurd configurations ------------------------------------
@pytest.fixture(scope="session")
def run(tmp_path_factory, digits01):
    out = tmp_path_factory.mktemp("hostile") / "run"
    aekit.fit("ae", digits01 * 16, out=out, hidden=(8,), latent=2, epochs=1, checkpoint_every=5, progress=False,
              figures=False)
    return out


class _Marker:
    """Unpickling this creates the file ``path``: proof that code from the file ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _copy(run, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(run, dst)
    return dst


def test_the_pickle_payload_works_and_no_loader_runs_it(run, tmp_path, digits01):
    marker = tmp_path / "executed"
    payload = pickle.dumps(_Marker(marker))
    pickle.loads(payload)  # the payload is live: unpickling it does create the marker
    assert marker.exists()
    marker.unlink()
    bad = _copy(run, tmp_path)
    (bad / "model.safetensors").write_bytes(payload)
    with pytest.raises(RunError, match="holds a Python pickle"):
        aekit.load(bad)
    torch.save(aekit.load(run).state_dict(), bad / "model.safetensors")  # torch.save: a zip of pickles
    with pytest.raises(RunError, match="holds a Python pickle"):
        aekit.load(bad)
    for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
        (bad / name).write_bytes(payload)
    with pytest.raises(RunError, match="no good checkpoint.*holds a Python pickle"):
        aekit.fit("ae", digits01 * 16, out=bad, resume=True, epochs=2, progress=False, figures=False)
    assert not marker.exists()


def test_loaders_never_call_pickle_or_torch_load(run, tmp_path, digits01, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a loader unpickled something")

    class Refused(pickle.Unpickler):
        def __init__(self, *args, **kwargs):
            refuse()

    for module in (pickle, torch):
        monkeypatch.setattr(module, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", Refused)
    model = aekit.load(run)
    assert model.encode_array(digits01[:3] * 16).shape == (3, 2)
    resumed = _copy(run, tmp_path)
    (resumed / "model.safetensors").unlink()
    aekit.fit("ae", digits01 * 16, out=resumed, resume=True, epochs=2, progress=False, figures=False)
    clf = aekit.finetune(model, digits01 * 16, np.arange(len(digits01)) % 3, epochs=1, out=tmp_path / "clf",
                         progress=False)
    assert aekit.load_classifier(tmp_path / "clf").predict_array(digits01[:2] * 16).shape == (2,)
    assert not (tmp_path / "clf" / CHECKPOINT).exists() and not (tmp_path / "clf" / PREVIOUS_CHECKPOINT).exists()
    assert clf is not None


BAD_MODEL_CONFIGS = [
    ({"variant": "nope"}, "unknown variant"),
    ({"variant": 5}, "must be a string"),
    ({"latent": 10 ** 12}, "absurdly large"),
    ({"hidden": [10 ** 9]}, "absurdly large"),
    ({"input_dim": 10 ** 12}, "absurdly large"),
    ({"hidden": [600_000, 600_000]}, "parameters, which is absurdly large"),  # every width allowed, 7e11 weights
    ({"hidden": [8] * 1000}, "at most 128"),
    ({"latent": -3}, "positive"),
    ({"latent": 2.5}, "must be an integer"),
    ({"latent": True}, "must be an integer"),
    ({"latent": "2e9"}, "must be an integer"),
    ({"latent": float("inf")}, "must be an integer"),
    ({"hidden": [1.5]}, "list of integers"),
    ({"hidden": [True]}, "list of integers"),
    ({"hidden": "abc"}, "list of integers"),
    ({"hidden": {"a": 1}}, "list of integers"),
    ({"image_shape": [-1, -1, 64]}, "three positive integers"),
    ({"image_shape": [1, 8, 8], "architecture": "conv", "hidden": [2 ** 20, 2 ** 20]}, "parameters"),
    ({"architecture": "conv", "image_shape": None}, "needs image data"),
    ({"options": {"beta": "x"}}, "unknown option"),
]


@pytest.mark.parametrize("change, match", BAD_MODEL_CONFIGS)
def test_absurd_or_ill_typed_config_json_is_refused_before_allocation(run, tmp_path, change, match):
    bad = _copy(run, tmp_path)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model"].update(change)
    (bad / "config.json").write_text(json.dumps(cfg))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(RunError, match=match):
        aekit.load(bad)
    assert time.perf_counter() - t0 < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 100_000  # KiB


def test_a_transform_of_another_width_is_refused(run, tmp_path):
    bad = _copy(run, tmp_path)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["transform"] = {"kind": "standard", "shift": [0.0] * 3, "scale": [1.0] * 3}
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match="the transform has 3 features, the model 64"):
        aekit.load(bad)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 40) | st.integers(10 ** 7, 10 ** 30)
                           | st.floats() | st.text(max_size=5), lambda v: st.lists(v, max_size=4)
                           | st.dictionaries(st.text(max_size=4), v, max_size=3), max_leaves=6)


@settings(FUZZ, max_examples=100)
@given(key=st.sampled_from(["variant", "input_dim", "image_shape", "architecture", "hidden", "latent", "activation",
                            "loss", "tied", "options", "code_activation"]), value=json_values)
def test_random_config_values_load_or_raise_run_error(run, tmp_path_factory, key, value):
    bad = _copy(run, tmp_path_factory.mktemp("cfg"))
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model"][key] = value
    (bad / "config.json").write_text(json.dumps(cfg))
    try:
        model = aekit.load(bad)
    except AekitError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert sum(p.numel() for p in model.parameters()) <= MAX_PARAMETERS


@settings(FUZZ, max_examples=30)
@given(variant=st.sampled_from(["ae", "vae"]), conv=st.booleans(), hidden=st.lists(st.integers(1, 9), min_size=1,
       max_size=3), latent=st.integers(1, 5), image=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)))
def test_parameter_count_is_the_models_own(variant, conv, hidden, latent, image):
    """The arithmetic bound that guards allocation counts exactly what the model allocates."""
    cfg = dict(variant=variant, hidden=tuple(hidden), latent=latent, input_dim=int(np.prod(image)), image_shape=image)
    if conv:
        cfg["architecture"] = "conv"
    model = Autoencoder(ModelConfig(**cfg))
    per_code = 2 if variant == "vae" else 1
    n = sum(p.numel() for m in (model.encoder, model.decoder) for p in m.parameters())
    assert parameter_count(model.config, per_code) == n


# -- the command line: a failing command writes nothing ------------------------------------------------
@pytest.mark.parametrize("name, content", [
    ("nan.csv", "1,2\n3,nan\n"),
    ("narrow.csv", "1,2,3\n4,5,6\n"),                       # valid data, the wrong width for the model
    ("bytes.npy", b"\x93NUMPY\x01\x00\xff\xff garbage"),
    ("strings.npy", np.array([["a"] * 64])),
])
def test_failing_encode_leaves_no_partial_output(run, tmp_path, capsys, name, content):
    src = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(src, content)
    else:
        src.write_bytes(content.encode() if isinstance(content, str) else content)
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.npy").write_bytes(b"old")
    for target in ("codes.npy", "codes.csv", "kept.npy"):
        assert main(["encode", str(run), str(src), "-o", str(out / target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("aekit: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["kept.npy"] and (out / "kept.npy").read_bytes() == b"old"


def test_a_failure_while_writing_leaves_no_partial_output(run, tmp_path, monkeypatch):
    """The output is written to a temporary name and renamed: a crash half-way leaves nothing."""
    real_save = np.save

    def half_then_crash(f, arr, **kwargs):
        real_save(f, arr[: len(arr) // 2], **kwargs)
        raise DataError("disk full (simulated)")

    monkeypatch.setattr(np, "save", half_then_crash)
    src = tmp_path / "x.npy"
    real_save(src, np.zeros((4, 64), np.float32))
    assert main(["encode", str(run), str(src), "-o", str(tmp_path / "codes.npy")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_trainer_checkpoint_of_a_pickle_is_refused_with_the_marker_absent(tmp_path):
    marker = tmp_path / "executed"
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / CHECKPOINT).write_bytes(pickle.dumps(_Marker(marker)))
    model = Autoencoder(ModelConfig(input_dim=4, hidden=(3,), latent=2))
    with pytest.raises(RunError, match="holds a Python pickle"):
        Trainer(model, TrainConfig(epochs=1), run_dir=run_dir).fit(torch.zeros(8, 4), resume=True)
    assert not marker.exists()


def test_the_source_never_unpickles():
    """No torch.load / pickle.load(s) / Unpickler anywhere in aekit, and np.load only with allow_pickle=False."""
    import ast
    from pathlib import Path

    found = []
    for path in Path(aekit.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            name = f"{owner}.{node.func.attr}"
            if name in ("torch.load", "pickle.load", "pickle.loads", "pickle.Unpickler", "joblib.load"):
                found.append(f"{path.name}:{node.lineno} {name}")
            if name in ("np.load", "numpy.load") and not any(
                    k.arg == "allow_pickle" and isinstance(k.value, ast.Constant) and k.value.value is False
                    for k in node.keywords):
                found.append(f"{path.name}:{node.lineno} {name} without allow_pickle=False")
    assert not found
