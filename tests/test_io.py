import json
import pickle

import numpy as np
import pytest
import torch

import aekit
from aekit import RunError
from aekit.io import atomic_path, atomic_write_json


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    model = aekit.fit("ae", "digits", out=out, hidden=(32,), latent=5, epochs=2, progress=False)
    return out, model


def test_run_directory_layout(run):
    out, _ = run
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "history.json", "checkpoint.safetensors", "figures"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["latent"] == 5 and cfg["model"]["hidden"] == [32]
    assert cfg["transform"]["kind"] == "unit" and cfg["data"]["data"] == "digits"
    assert (out / "figures" / "loss.png").stat().st_size > 0
    assert (out / "figures" / "reconstructions.png").stat().st_size > 0


def test_save_load_round_trip(run, digits01):
    out, model = run
    loaded = aekit.load(out)
    raw = digits01[:50] * 16  # the run's transform maps raw digits (0..16) to [0, 1]
    assert np.array_equal(loaded.encode_array(raw), model.encode_array(raw))
    assert np.array_equal(loaded.reconstruct_array(raw), model.reconstruct_array(raw))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert not loaded.training


def test_model_file_holding_a_pickle_is_refused(run, tmp_path):
    import shutil
    out, _ = run
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)

    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle executed')",))

    (bad / "model.safetensors").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(RunError, match="not a readable safetensors file"):
        aekit.load(bad)


@pytest.mark.parametrize("change, match", [
    (lambda c: c["model"].update(variant="nope"), "unknown variant"),
    (lambda c: c["model"].update(hidden=[10 ** 9]), "absurdly large"),
    (lambda c: c["model"].update(latent="x"), "must be an integer"),
    (lambda c: c.update(format="other"), "not an aekit run"),
    (lambda c: c["model"].update(extra=1), "unknown option"),
])
def test_bad_config_is_rejected_before_allocation(run, tmp_path, change, match):
    import shutil
    out, _ = run
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    cfg = json.loads((bad / "config.json").read_text())
    change(cfg)
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match=match):
        aekit.load(bad)


def test_missing_and_truncated_files(run, tmp_path):
    import shutil
    out, _ = run
    with pytest.raises(RunError, match="no such run directory"):
        aekit.load(tmp_path / "absent")
    bad = tmp_path / "trunc"
    shutil.copytree(out, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="model.safetensors"):
        aekit.load(bad)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_evaluate_reports_autoencoder_and_pca(run):
    out, _ = run
    res = aekit.evaluate(out)
    assert res["split"] == "test" and res["code_size"] == 5 and res["n"] == round(1797 * 0.2)
    ae, pca = res["autoencoder"], res["pca"]
    assert pca["n_components"] == 5
    assert ae["per_example_squared_error"] == pytest.approx(ae["mse"] * 64)
    assert res["ratio_to_pca"] == pytest.approx(ae["per_example_squared_error"] / pca["per_example_squared_error"])


def test_fit_kwargs_are_checked(tmp_path):
    with pytest.raises(aekit.ConfigError, match="unknown option 'latnet'"):
        aekit.fit("ae", "digits", latnet=3)
    with pytest.raises(aekit.ConfigError, match="bce loss needs targets in"):
        aekit.fit("ae", "digits", loss="bce", scale="standard", epochs=1)


def test_fit_on_in_memory_array_and_resume(tmp_path, digits01):
    a = aekit.fit("ae", digits01, out=tmp_path / "a", epochs=3, hidden=(16,), latent=4, progress=False)
    aekit.fit("ae", digits01, out=tmp_path / "b", epochs=1, hidden=(16,), latent=4, progress=False)
    b = aekit.fit("ae", digits01, out=tmp_path / "b", epochs=3, resume=True, progress=False)
    for k, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[k], v)
    with pytest.raises(aekit.ConfigError, match="latent differs"):
        aekit.fit("ae", digits01, out=tmp_path / "b", epochs=4, latent=5, resume=True)


def test_evaluate_other_data_uses_the_runs_training_split_for_pca(run, digits01):
    out, _ = run
    res = aekit.evaluate(out, data=digits01[:100] * 16)
    assert res["split"] == "all" and res["n"] == 100 and res["pca"]["n_components"] == 5
    with pytest.raises(aekit.DataError, match="expected rows of 64 features"):
        aekit.evaluate(out, data=np.zeros((4, 3), np.float32))


def test_atomic_writes_get_the_permissions_a_plain_open_would_give(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text("{}")  # mode 0666 less the umask
    atomic = tmp_path / "atomic.json"
    atomic_write_json(atomic, {})  # mkstemp alone would leave 0600
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
