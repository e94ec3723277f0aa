"""The denoising autoencoder (Vincent et al. 2008, 2010): corruption processes, the loss against
the clean input, PSNR, evaluate's noise mode and ``aekit denoise``."""

import json

import numpy as np
import pytest
import torch

import aekit
from aekit import noise
from aekit.evaluation import denoise, evaluate
from aekit.cli import main
from aekit.errors import ConfigError
from aekit.losses import squared_error
from aekit.metrics import PSNR_MAX_DB, psnr
from aekit.model import Autoencoder, ModelConfig
from helpers import run_cli

EVALUATE_KEYS = {"data", "split", "n", "space", "code_size", "autoencoder", "pca", "ratio_to_pca"}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- corruption processes --------------------------------------------------------------------
@pytest.mark.parametrize("nu, d, k", [(0.25, 64, 16), (0.3, 10, 3), (0.05, 10, 1), (0.0, 64, 0), (1.0, 64, 64)])
def test_n_corrupted_is_nu_d_rounded_half_up(nu, d, k):
    assert noise.n_corrupted(nu, d) == k


@pytest.mark.parametrize("shape", [(40, 64), (40, 1, 8, 8)])
def test_mask_zeroes_exactly_round_nu_d_entries_per_example_and_leaves_the_rest(shape):
    x = torch.rand(shape, generator=_gen(1)) + 0.5  # no zeros before masking
    out = noise.mask(x, 0.3, generator=_gen())
    assert out.shape == x.shape
    zeroed = (out == 0).reshape(len(x), -1)
    assert (zeroed.sum(1) == round(0.3 * 64)).all()
    assert torch.equal(out[out != 0], x[out != 0])
    assert not torch.equal(zeroed[0], zeroed[1])  # positions differ between examples
    assert (x >= 0.5).all()  # the input is not modified in place


def test_salt_and_pepper_sets_exactly_round_nu_d_entries_to_low_or_high():
    x = torch.full((200, 64), 0.5)
    out = noise.salt_and_pepper(x, 0.25, low=-1.0, high=2.0, generator=_gen())
    changed = out != 0.5
    assert (changed.sum(1) == 16).all()
    values = out[changed]
    assert set(values.unique().tolist()) == {-1.0, 2.0}
    assert (values == 2.0).float().mean().item() == pytest.approx(0.5, abs=0.03)  # 3200 fair coins


def test_gaussian_adds_zero_mean_noise_of_std_sigma_and_clips():
    x = torch.rand(2000, 64, generator=_gen(1))
    eps = noise.gaussian(x, 0.3, generator=_gen()) - x
    assert eps.mean().item() == pytest.approx(0.0, abs=0.004)  # 4 standard errors of 128 000 draws
    assert eps.std().item() == pytest.approx(0.3, rel=0.01)
    clipped = noise.gaussian(x, 0.3, generator=_gen(), clip=(0.0, 1.0))
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert torch.equal(clipped, (x + eps).clamp(0, 1))
    assert torch.equal(noise.gaussian(x, 0.0), x)


@pytest.mark.parametrize("kind", noise.NOISE_KINDS)
def test_seeded_corruption_is_deterministic_and_corrupt_dispatches(kind):
    x = torch.rand(16, 64, generator=_gen(1))
    kw = dict(nu=0.25, sigma=0.3, low=0.0, high=1.0)
    a = noise.corrupt(x, kind, generator=_gen(3), **kw)
    assert torch.equal(a, noise.corrupt(x, kind, generator=_gen(3), **kw))
    assert not torch.equal(a, noise.corrupt(x, kind, generator=_gen(4), **kw))
    direct = {"mask": lambda g: noise.mask(x, 0.25, g), "gaussian": lambda g: noise.gaussian(x, 0.3, g),
              "salt_pepper": lambda g: noise.salt_and_pepper(x, 0.25, 0.0, 1.0, g)}[kind]
    assert torch.equal(a, direct(_gen(3)))
    torch.manual_seed(5)  # the global generator by default
    b = noise.corrupt(x, kind, **kw)
    torch.manual_seed(5)
    assert torch.equal(b, noise.corrupt(x, kind, **kw))


@pytest.mark.parametrize("kind, kw, match", [
    ("pink", {}, "unknown noise"),
    ("mask", {"nu": 1.5}, "nu must be in"),
    ("salt_pepper", {"nu": -0.1}, "nu must be in"),
    ("gaussian", {"sigma": -0.1}, "sigma"),
    ("gaussian", {"sigma": float("nan")}, "sigma"),
    ("salt_pepper", {"low": 1.0, "high": 0.0}, "low <= high"),
])
def test_bad_corruption_parameters(kind, kw, match):
    with pytest.raises(ConfigError, match=match):
        noise.corrupt(torch.zeros(2, 4), kind, **kw)


# -- the variant -----------------------------------------------------------------------------
def _model(**options):
    torch.manual_seed(0)
    return Autoencoder(ModelConfig(variant="denoising", input_dim=64, hidden=(32,), latent=4, options=options))


def test_the_loss_is_against_the_clean_input(digits01):
    model = _model(noise="gaussian", sigma=0.3).train()
    x = torch.from_numpy(digits01[:32])
    torch.manual_seed(7)
    out = model(x)
    torch.manual_seed(7)
    noisy = noise.gaussian(x, 0.3)
    with torch.no_grad():
        recon_of_noisy = model.decode(model.encode(noisy))
    assert torch.allclose(out.reconstruction, recon_of_noisy, atol=1e-6)
    assert torch.allclose(out.losses["recon"], squared_error(recon_of_noisy, x), rtol=1e-5)
    assert not torch.allclose(out.losses["recon"], squared_error(recon_of_noisy, noisy), rtol=1e-2)


def test_fresh_corruption_each_training_batch_none_in_eval_mode(digits01):
    model = _model(noise="mask", nu=0.5)
    x = torch.from_numpy(digits01[:32])
    model.train()
    assert not torch.equal(model(x).reconstruction, model(x).reconstruction)
    model.eval()
    state = torch.get_rng_state()
    a, b = model(x), model(x)
    assert torch.equal(torch.get_rng_state(), state)  # no noise drawn
    assert torch.equal(a.reconstruction, b.reconstruction) and torch.equal(a.losses["recon"], b.losses["recon"])
    with torch.no_grad():
        assert torch.allclose(a.reconstruction, model.decode(model.encode(x)))


@pytest.mark.parametrize("kind", noise.NOISE_KINDS)
def test_variant_corrupts_with_its_options(kind, digits01):
    opts = dict(noise=kind, nu=0.4, sigma=0.5, low=0.1, high=0.9, clip=True)
    model = _model(**opts)
    x = torch.from_numpy(digits01[:8])
    torch.manual_seed(1)
    got = model.variant.corrupt(x)
    torch.manual_seed(1)
    assert torch.equal(got, noise.corrupt(x, kind, nu=0.4, sigma=0.5, low=0.1, high=0.9, clip=(0.1, 0.9)))
    if kind == "gaussian":
        assert got.min() >= 0.1 and got.max() <= 0.9


@pytest.mark.parametrize("options, match", [
    ({"nu": 1.5}, "nu must be in"), ({"sigma": -1.0}, "sigma"), ({"noise": "pink"}, "must be one of"),
    ({"low": 1.0, "high": 0.0}, "low <= high"),
])
def test_bad_options_are_refused(options, match):
    with pytest.raises(ConfigError, match=match):
        _model(**options)


def test_training_resumes_exactly(tmp_path, digits01):
    kw = dict(hidden=(16,), latent=4, batch_size=256, noise="salt_pepper", progress=False, figures=False)
    straight = aekit.fit("denoising", digits01, epochs=3, out=tmp_path / "a", **kw)
    aekit.fit("denoising", digits01, epochs=2, out=tmp_path / "b", **kw)
    resumed = aekit.fit("denoising", digits01, epochs=3, out=tmp_path / "b", resume=True, **kw)
    sa, sb = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


# -- PSNR --------------------------------------------------------------------------------------
def test_psnr_hand_computed():
    clean = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    est = np.array([[0.1, -0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    # MSEs 0.01 and 0.5 -> 10 log10(1 / mse) = 20 dB and 3.0103 dB; an exact estimate is capped
    per = psnr(clean, est, reduction="none")
    assert per == pytest.approx([20.0, 10 * np.log10(2.0), PSNR_MAX_DB])
    assert psnr(clean, est) == pytest.approx((20.0 + 10 * np.log10(2.0) + PSNR_MAX_DB) / 3)
    assert psnr(clean[:1], est[:1], data_range=2.0) == pytest.approx(10 * np.log10(4 / 0.01))
    assert psnr(clean.reshape(3, 1, 2, 2), est.reshape(3, 4)) == pytest.approx(psnr(clean, est))
    with pytest.raises(ValueError):
        psnr(clean, est, data_range=0.0)


# -- uses: evaluate's noise mode, aekit denoise --------------------------------------------------
@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("denoising") / "run"
    assert main(["train", "denoising", "--noise", "gaussian", "--sigma", "0.3", "--hidden", "64", "--latent", "32",
                 "--loss", "bce", "--lr", "0.02", "--batch-size", "128", "--epochs", "8", "--quiet",
                 "--out", str(out)]) == 0
    return out


def test_options_are_saved_and_evaluate_noise_mode_reports_denoising(run_dir):
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"]["variant"] == "denoising"
    assert cfg["model"]["options"] == {"noise": "gaussian", "nu": 0.25, "sigma": 0.3, "low": 0.0, "high": 1.0,
                                       "clip": False}  # complete and typed, even when given as CLI strings
    assert aekit.load(run_dir).variant.options.sigma == 0.3
    assert set(evaluate(run_dir, pca=False)) == EVALUATE_KEYS - {"pca", "ratio_to_pca"}
    res = evaluate(run_dir, noise="gaussian", sigma=0.3)
    assert set(res) == EVALUATE_KEYS | {"noise", "psnr_noisy", "psnr_denoised", "denoised"}
    assert res["noise"]["clip"] == [0.0, 1.0] and res["noise"]["data_range"] == 1.0
    assert res["psnr_denoised"] > res["psnr_noisy"] + 1.0, res
    assert evaluate(run_dir, pca=False, noise="gaussian", sigma=0.3)["psnr_noisy"] == res["psnr_noisy"]
    other = evaluate(run_dir, pca=False, noise="gaussian", sigma=0.3, noise_seed=1)
    assert other["psnr_noisy"] != res["psnr_noisy"]
    masked = evaluate(run_dir, pca=False, noise="mask", nu=0.5)
    assert masked["noise"]["nu"] == 0.5 and "sigma" not in masked["noise"]
    with pytest.raises(ConfigError, match="sigma"):
        evaluate(run_dir, noise="gaussian", sigma=-1.0)


def test_psnr_range_is_the_clean_data_range_without_unit_scaling(digits01):
    model = aekit.fit("denoising", "digits", scale="standard", hidden=(8,), latent=2, epochs=1, progress=False)
    res = evaluate(model, pca=False, noise="gaussian", sigma=0.3)
    test_x = aekit.load_splits("digits", val_fraction=0.1, test_fraction=0.2, seed=0).test.x
    X = model.transform.apply(test_x)
    assert res["noise"]["clip"] is None
    assert res["noise"]["data_range"] == pytest.approx(float(X.max() - X.min()))


def test_denoise_api_and_cli(run_dir, tmp_path, digits01, capsys):
    raw = digits01[:20] * 16 + np.random.default_rng(0).normal(0, 3, (20, 64)).astype(np.float32)
    out = denoise(run_dir, raw)
    model = aekit.load(run_dir)
    assert out.shape == (20, 64) and np.allclose(out, model.reconstruct_array(raw))
    assert denoise(model, raw.reshape(20, 1, 8, 8)).shape == (20, 1, 8, 8)
    np.save(tmp_path / "noisy.npy", raw)
    assert main(["denoise", str(run_dir), str(tmp_path / "noisy.npy"), "-o", str(tmp_path / "d.npy")]) == 0
    assert np.allclose(np.load(tmp_path / "d.npy"), out, atol=1e-5)
    assert main(["denoise", str(run_dir), str(tmp_path / "noisy.npy"), "-o", str(tmp_path / "d.csv")]) == 0
    assert np.loadtxt(tmp_path / "d.csv", delimiter=",").shape == (20, 64)
    assert main(["denoise", str(run_dir), "digits", "-o", str(tmp_path / "all.npy")]) == 0
    assert np.load(tmp_path / "all.npy").shape == (1797, 1, 8, 8)
    assert main(["denoise", str(run_dir), "digits", "-o", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert "denoised" in capsys.readouterr().out


def test_cli_evaluate_noise_prints_both_psnrs(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--noise", "gaussian", "--sigma", "0.3", "--no-pca"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["psnr_denoised"] > res["psnr_noisy"]
    assert res["noise"]["kind"] == "gaussian" and res["noise"]["sigma"] == 0.3 and res["noise"]["seed"] == 0


@pytest.mark.parametrize("argv, message", [
    (["train", "denoising", "--nu", "1.5"], "nu must be in [0, 1]"),
    (["train", "denoising", "--sigma", "-0.1"], "sigma must be a finite number >= 0"),
    (["train", "denoising", "--noise", "pink"], "invalid choice: 'pink'"),
    (["evaluate", "RUN", "--noise", "gaussian", "--sigma", "-1"], "sigma must be a finite number >= 0"),
    (["evaluate", "RUN", "--noise", "mask", "--nu", "2"], "nu must be in [0, 1]"),
    (["evaluate", "RUN", "--noise", "pink"], "invalid choice: 'pink'"),
    (["evaluate", "RUN", "--sigma", "0.3"], "used only with --noise"),
    (["denoise", "RUN", "NOISY", "-o", "grid.png"], "needs image data"),
])
def test_bad_options_exit_2(argv, message, run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "noisy.npy", np.zeros((3, 64), np.float32))
    argv = [str(run_dir) if a == "RUN" else "noisy.npy" if a == "NOISY" else a for a in argv]
    if argv[0] == "train":
        argv += ["--quiet", "--epochs", "1", "--out", str(tmp_path / "r")]
    code = run_cli(argv)
    err = capsys.readouterr().err
    assert code == 2 and "aekit: error:" in err and message in err and "Traceback" not in err
