"""aekit export / aekit.export_onnx: the ONNX graph computes what the model computes, scaling included."""

import sys

import numpy as np
import pytest
import torch

import aekit
from aekit import Autoencoder, ConfigError, ModelConfig, RunError, Transform, export_onnx, variants
from aekit.export import NAMES, PARTS
from helpers import run_cli

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

#: The graph and PyTorch sum the same float32 products in other orders (onnxruntime's kernels against
#: PyTorch's): each value differs by a few float32 epsilons (1.2e-7) times the magnitude of the sums,
#: which for these tiny layers (fan-in <= 72) stays far below 1e-5 of the outputs' scale.
TOL = 1e-5

CASES = [(spec.name, arch) for spec in variants.specs() for arch in spec.cls.architectures]


def _model(variant, arch, kind="standard", **kw):
    """A tiny untrained model of ``variant`` (its registered defaults win, as in tests/test_model.py)
    with a transform of ``kind`` fitted on raw rows far from [0, 1], and 7 other raw rows."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    base = dict(input_dim=64, hidden=(16,), latent=4, **kw)
    if arch == "conv":
        base.update(image_shape=(1, 8, 8), architecture="conv", hidden=(4, 8))
    config = ModelConfig(variant=variant, **{**base, **variants.get(variant).defaults})
    scales = rng.uniform(0.5, 4.0, 64).astype(np.float32)
    train, rows = (rng.normal(3.0, 1.0, (n, 64)).astype(np.float32) * scales for n in (50, 7))
    return Autoencoder(config, Transform.fit(kind, train)).eval(), rows


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_runs_like(path, part, x, want):
    """The graph at ``path`` checks, has ``part``'s names and a dynamic batch axis, and gives ``want``
    for batches of 1 and 7 rows of ``x``."""
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    inp, out = NAMES[part]
    assert [i.name for i in proto.graph.input] == [inp] and [o.name for o in proto.graph.output] == [out]
    assert [v.type.tensor_type.shape.dim[0].dim_param for v in (*proto.graph.input, *proto.graph.output)] == ["N"] * 2
    session = _session(path)
    for n in (1, 7):
        got = session.run(None, {inp: x[:n]})[0]
        assert got.shape == want[:n].shape
        np.testing.assert_allclose(got, want[:n], rtol=TOL, atol=TOL * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("variant, arch", CASES)
def test_every_variant_exports_what_encode_array_and_decode_array_give(variant, arch, tmp_path):
    """The encoder and the decoder of every registered variant on each of its architectures (the
    autoencoder, their composition in one graph, is checked below and by the CLI round trip)."""
    model, rows = _model(variant, arch)
    codes = model.encode_array(rows)
    expected = {"encoder": (rows, codes), "decoder": (codes, model.decode_array(codes))}
    for part in expected:
        reason = model.variant.export_reason(part)
        if reason is not None:  # a variant that cannot export says why, and nothing is written
            with pytest.raises(ConfigError, match=reason):
                export_onnx(model, tmp_path / f"{part}.onnx", part=part)
            assert not list(tmp_path.iterdir())
            continue
        path = export_onnx(model, tmp_path / f"{part}.onnx", part=part)
        _assert_runs_like(path, part, *expected[part])
    assert model.training is False


@pytest.mark.parametrize("kind, arch", [("standard", "conv"), ("unit", "mlp"), ("none", "mlp"), (None, "mlp")])
def test_the_autoencoder_with_each_scaling_and_tied_weights(kind, arch, tmp_path):
    model, rows = _model("ae", arch, kind=kind or "none", **({"tied": True} if arch == "mlp" else {}))
    if kind is None:
        model.transform = None
    model.train()  # exported as in eval mode, and left as it was
    path = export_onnx(model, tmp_path / "ae.onnx", part="autoencoder")
    assert model.training
    model.eval()
    _assert_runs_like(path, "autoencoder", rows, model.reconstruct_array(rows))
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["part"] == "autoencoder" and meta["variant"] == model.config.variant
    assert meta["scaling"] == (kind or "none") and meta["aekit_version"] == aekit.__version__


def test_refusals_are_one_clear_error_and_write_nothing(tmp_path, monkeypatch):
    model, _ = _model("ae", "mlp")
    out = tmp_path / "m.onnx"
    for kwargs, says in [
        ({"part": "head"}, "part must be one of encoder, decoder, autoencoder, got 'head'"),
        ({"exporter": "jit"}, "exporter must be one of torchscript, dynamo"),
    ]:
        with pytest.raises(ConfigError, match=says):
            export_onnx(model, out, **kwargs)
    with pytest.raises(ConfigError, match=r"must be an \.onnx file"):
        export_onnx(model, tmp_path / "m.npy")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        export_onnx(model, tmp_path / "dir.onnx")
    with pytest.raises(ConfigError, match="takes an Autoencoder or a run directory, got dict"):
        export_onnx({}, out)
    with pytest.raises(RunError):
        export_onnx(tmp_path / "no-such-run", out)
    monkeypatch.setattr(model.variant, "export_reason", lambda part: f"its {part} needs a lookup table")
    with pytest.raises(ConfigError, match=r"the decoder of .* cannot be exported to ONNX: its decoder needs a lookup"):
        export_onnx(model, out, part="decoder")
    monkeypatch.undo()
    monkeypatch.setattr(aekit.export, "MAX_BYTES", 1000)
    with pytest.raises(ConfigError, match="more than the 2 GiB one ONNX file can hold"):
        export_onnx(model, out)
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "onnx", None)  # the extra is not installed
    with pytest.raises(ConfigError, match=r"pip install 'aekit\[onnx\]'"):
        export_onnx(model, out)
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # the dynamo exporter needs it too
    with pytest.raises(ConfigError, match=r"pip install 'aekit\[onnx\]'"):
        export_onnx(model, out, exporter="dynamo")
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="only float32 models"):
        export_onnx(_model("ae", "mlp")[0].double(), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.onnx"]  # no file, no temporary left


def test_an_existing_output_is_kept_unless_overwrite(tmp_path):
    model, rows = _model("ae", "mlp")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"mine")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        export_onnx(model, out)
    assert out.read_bytes() == b"mine"
    export_onnx(model, out, overwrite=True)
    _assert_runs_like(out, "encoder", rows, model.encode_array(rows))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    aekit.fit("ae", "digits", hidden=(8,), latent=2, epochs=1, out=out, progress=False, figures=False)
    return out


def test_cli_round_trip_matches_encode_and_decode(run_dir, tmp_path, capsys):
    rows = aekit.load_data("digits").x[:7].astype(np.float32)
    assert run_cli(["encode", str(run_dir), "digits", "-o", str(tmp_path / "codes.npy")]) == 0
    codes = np.load(tmp_path / "codes.npy")[:7]
    for part in PARTS:
        assert run_cli(["export", str(run_dir), "-o", str(tmp_path / f"{part}.onnx"), "--part", part]) == 0
        assert f"wrote the {part} of {run_dir}" in capsys.readouterr().out
    model = aekit.load(run_dir)
    _assert_runs_like(tmp_path / "encoder.onnx", "encoder", rows, codes)
    _assert_runs_like(tmp_path / "decoder.onnx", "decoder", codes, model.decode_array(codes))
    _assert_runs_like(tmp_path / "autoencoder.onnx", "autoencoder", rows, model.reconstruct_array(rows))


def test_cli_errors_are_one_line_and_exit_2(run_dir, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    for argv, says in [
        (["export", str(tmp_path / "missing"), "-o", str(out)], "missing"),
        (["export", str(run_dir), "-o", str(out), "--part", "head"], "invalid choice: 'head'"),
        (["export", str(run_dir), "-o", str(tmp_path / "m.txt")], "must be an .onnx file"),
        (["export", str(run_dir)], "-o/--output"),
    ]:
        assert run_cli(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("aekit: error: ") and err.count("\n") == 1 and says in err, (argv, err)
    out.write_bytes(b"mine")
    assert run_cli(["export", str(run_dir), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"mine"
    assert run_cli(["export", str(run_dir), "-o", str(out), "--overwrite"]) == 0
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_the_dynamo_exporter_gives_the_same_graph_outputs(tmp_path):
    pytest.importorskip("onnxscript")
    model, rows = _model("ae", "conv")
    path = export_onnx(model, tmp_path / "ae.onnx", part="autoencoder", exporter="dynamo")
    _assert_runs_like(path, "autoencoder", rows, model.reconstruct_array(rows))
