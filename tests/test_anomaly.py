"""Anomaly scores: reconstruction error for every variant, minus the ELBO for the VAE family."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import aekit
from aekit.cli import main
from aekit.data import load_data
from aekit.errors import ConfigError
from aekit.sklearn import AutoencoderOutlierDetector

DIGITS = load_data("digits")


@pytest.fixture(scope="session")
def zeros_run(tmp_path_factory):
    """An autoencoder trained on the zeros of digits only (the normal class)."""
    out = tmp_path_factory.mktemp("anomaly") / "zeros"
    zeros = DIGITS.x[DIGITS.y == 0]
    aekit.fit("ae", zeros, out=out, latent=4, hidden=(32,), epochs=60, seed=0, progress=False, figures=False)
    return out


def test_scores_are_summed_squared_reconstruction_errors(zeros_run):
    model = aekit.load(zeros_run)
    scores = aekit.anomaly_scores(model, DIGITS.x)
    expected = ((DIGITS.x - model.reconstruct_array(DIGITS.x)) ** 2).sum(1)
    np.testing.assert_allclose(scores, expected, rtol=1e-4)
    assert scores.shape == (len(DIGITS.x),)


def test_one_class_scores_separate_the_normal_class(zeros_run):
    scores = aekit.anomaly_scores(zeros_run, DIGITS.x)  # a run directory works too
    assert roc_auc_score(DIGITS.y != 0, scores) > 0.95


def test_vae_scores_are_minus_the_elbo():
    X = DIGITS.x[:400]
    model = aekit.fit("vae", X, latent=2, hidden=(32,), epochs=5, seed=0, progress=False, figures=False,
                      val_fraction=0.0, test_fraction=0.0)
    scores = aekit.anomaly_scores(model, X, elbo_samples=64)
    nelbo = aekit.likelihood_bounds(model, model.transform.apply(X), k=1)["nelbo"]
    assert abs(scores.mean() - nelbo) < 0.02 * abs(nelbo)  # two Monte Carlo estimates of one mean
    np.testing.assert_array_equal(scores, aekit.anomaly_scores(model, X, elbo_samples=64))  # seeded draws


def test_estimator_scores_agree_with_the_library():
    zeros = DIGITS.x[DIGITS.y == 0]
    det = AutoencoderOutlierDetector("ae", latent=4, hidden=(32,), epochs=20, random_state=0).fit(zeros)
    np.testing.assert_allclose(-det.score_samples(DIGITS.x[:50]), aekit.anomaly_scores(det.model_, DIGITS.x[:50]),
                               rtol=1e-4)


def test_bad_elbo_samples_is_a_config_error(zeros_run):
    with pytest.raises(ConfigError, match="elbo_samples"):
        aekit.anomaly_scores(zeros_run, DIGITS.x, elbo_samples=0)


def test_cli_writes_one_score_per_row(zeros_run, tmp_path, capsys):
    out = tmp_path / "scores.npy"
    assert main(["score", str(zeros_run), "digits", "-o", str(out)]) == 0
    scores = np.load(out)
    assert scores.shape == (len(DIGITS.x), 1)
    np.testing.assert_allclose(scores[:, 0], aekit.anomaly_scores(zeros_run, DIGITS.x), rtol=1e-6)
    assert "anomaly scores" in capsys.readouterr().out
    bad = tmp_path / "bad.npy"
    assert main(["score", str(zeros_run), "digits", "-o", str(bad), "--elbo-samples", "0"]) == 2
    assert "aekit: error: elbo_samples" in capsys.readouterr().err
    assert not bad.exists()


# -- input complexity (Serra et al. 2020) ---------------------------------------------------------
def test_input_complexity_is_the_compressed_size_of_the_quantized_row():
    import zlib
    from aekit.metrics import input_complexity
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 16, (5, 64))
    x[1] = 3.0  # a constant row
    bits = input_complexity(x, 0.0, 16.0)
    q = np.clip(np.rint(x * 255 / 16), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(bits, [8 * len(zlib.compress(r.tobytes(), 9)) for r in q])
    assert bits[1] < bits[0] / 2  # simple compresses well, noise does not
    np.testing.assert_array_equal(input_complexity(2 * x + 5, 5.0, 37.0), bits)  # units do not matter
    clipped = input_complexity(np.full_like(x, 16), 0.0, 16.0)
    np.testing.assert_array_equal(input_complexity(x + 100, 0.0, 16.0), clipped)
    np.testing.assert_array_equal(input_complexity(x, 1.0, 1.0), input_complexity(np.zeros_like(x), 0.0, 1.0))
    np.testing.assert_array_equal(input_complexity(np.tile(x, (1000, 1)), 0.0, 16.0), np.tile(bits, 1000))  # blocks


@pytest.mark.parametrize("bad, message", [(np.array([[1.0, np.nan]]), "NaN"), (np.ones(3), "2-D"),
                                          (np.array([["a"]]), "numbers")])
def test_input_complexity_refuses_bad_rows(bad, message):
    from aekit.errors import DataError
    from aekit.metrics import input_complexity
    with pytest.raises(DataError, match=message):
        input_complexity(bad, 0.0, 1.0)
    with pytest.raises(DataError, match="finite"):
        input_complexity(np.ones((2, 2)), 0.0, np.inf)


@pytest.mark.parametrize("variant", ["ae", "vae"])
def test_complexity_corrected_scores(variant):
    from aekit.metrics import input_complexity
    eights = DIGITS.x[DIGITS.y == 8]
    kw = dict(latent=4, hidden=(32,), epochs=60 if variant == "ae" else 10, random_state=0, elbo_samples=4)
    plain = AutoencoderOutlierDetector(variant, **kw).fit(eights)
    corrected = AutoencoderOutlierDetector(variant, complexity=True, **kw).fit(eights)
    assert corrected.data_range_ == (eights.min(), eights.max()) == (0.0, 16.0)
    bits = input_complexity(DIGITS.x, 0.0, 16.0)
    raw = plain.score_samples(DIGITS.x)
    expected = raw / bits if variant == "ae" else raw + bits * np.log(2.0)  # -SSE / L; ELBO + L ln 2
    np.testing.assert_allclose(corrected.score_samples(DIGITS.x), expected, rtol=1e-10)
    assert (corrected.decision_function(eights) < 0).mean() == pytest.approx(0.1, abs=0.02)
    if variant == "ae":  # simple inputs (ones) no longer pass for eights as easily
        pair = (DIGITS.y == 8) | (DIGITS.y == 1)
        auroc = [roc_auc_score(DIGITS.y[pair] != 8, -d.score_samples(DIGITS.x[pair])) for d in (plain, corrected)]
        assert auroc[1] > auroc[0] + 0.005


def test_library_and_cli_complexity_correction(zeros_run, tmp_path, capsys):
    from aekit.metrics import input_complexity
    bits = input_complexity(DIGITS.x, 0.0, 16.0)
    raw = aekit.anomaly_scores(zeros_run, DIGITS.x)
    np.testing.assert_allclose(aekit.anomaly_scores(zeros_run, DIGITS.x, complexity=(0, 16)), raw / bits, rtol=1e-12)
    with pytest.raises(ConfigError, match="in-memory data; pass complexity=.low, high."):
        aekit.anomaly_scores(zeros_run, DIGITS.x, complexity=True)  # zeros_run was trained on an array
    for bad in ((1, 1), (0, np.inf), "ab", (1,)):
        with pytest.raises(ConfigError, match="complexity"):
            aekit.anomaly_scores(zeros_run, DIGITS.x, complexity=bad)
    # a run on a built-in set: its training split's range (0 .. 16 for digits) is found by itself
    run = tmp_path / "builtin"
    aekit.fit("vae", "digits", out=run, latent=2, hidden=(16,), epochs=2, seed=0, progress=False, figures=False)
    vae = aekit.anomaly_scores(run, DIGITS.x, elbo_samples=4)
    corrected = aekit.anomaly_scores(run, DIGITS.x, elbo_samples=4, complexity=True)
    np.testing.assert_allclose(corrected, vae - bits * np.log(2.0), rtol=1e-6)  # Serra et al.: -ELBO - L ln 2
    out = tmp_path / "scores.npy"
    assert main(["score", str(run), "digits", "-o", str(out), "--elbo-samples", "4", "--complexity"]) == 0
    np.testing.assert_allclose(np.load(out)[:, 0], corrected, rtol=1e-6)
    assert "less the input complexity" in capsys.readouterr().out


# -- how a residual is summed: absolute errors, a Gaussian-smoothed residual -----------------------
def _kernel(sigma: float) -> np.ndarray:
    """scipy's normalised 1-d Gaussian of ``sigma`` truncated at 4 sigma, written out."""
    k = np.arange(-int(4 * sigma + 0.5), int(4 * sigma + 0.5) + 1)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    return w / w.sum()


def test_residual_norm_sums_squares_absolute_values_and_smoothed_residuals():
    from aekit.metrics import ResidualNorm
    rng = np.random.default_rng(0)
    r = rng.normal(size=(5, 2 * 12 * 12))
    np.testing.assert_array_equal(ResidualNorm().scores(r), (r * r).sum(1))  # the default: squared error
    np.testing.assert_array_equal(ResidualNorm("absolute").scores(r), np.abs(r).sum(1))
    norm = ResidualNorm("squared", 1.5, (2, 12, 12))
    np.testing.assert_allclose(norm.contributions(r).sum(1), norm.scores(r), rtol=1e-12)
    # a constant residual is its own smoothing ("reflect" edges): the score does not change
    const = np.full((1, 288), 3.0)
    np.testing.assert_allclose(norm.scores(const), [9.0 * 288], rtol=1e-12)
    # a unit spike far from the edges spreads into the separable kernel w w^T: its absolute sum
    # stays 1, its squared sum is (sum w^2)^2; the other channel gets nothing
    spike = np.zeros((1, 2, 12, 12))
    spike[0, 0, 6, 6] = 1.0
    w = _kernel(1.0)
    smoothed = ResidualNorm("absolute", 1.0, (2, 12, 12)).contributions(spike.reshape(1, -1)).reshape(2, 12, 12)
    np.testing.assert_allclose(smoothed[0, 2:11, 2:11], np.outer(w, w), rtol=1e-12, atol=1e-15)
    assert smoothed[1].max() == 0.0 and abs(smoothed.sum() - 1.0) < 1e-12
    sq = ResidualNorm("squared", 1.0, (12, 12)).scores(spike[:, 0].reshape(1, -1))
    np.testing.assert_allclose(sq, [(w ** 2).sum() ** 2], rtol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(error="cubed"), "error must be one of squared, absolute"),
    (dict(smoothing=-1.0), "smoothing must be a finite number >= 0"),
    (dict(smoothing=float("nan")), "smoothing must be a finite number >= 0"),
    (dict(smoothing=1.0, image_shape=(0, 8)), "image_shape must be"),
])
def test_residual_norm_refuses_bad_settings(kwargs, message):
    from aekit.metrics import ResidualNorm
    with pytest.raises(ConfigError, match=message):
        ResidualNorm(**kwargs)


def test_absolute_smoothed_scores_library_estimator_and_cli(zeros_run, tmp_path, capsys):
    model = aekit.load(zeros_run)
    residual = DIGITS.x - model.reconstruct_array(DIGITS.x)
    np.testing.assert_allclose(aekit.anomaly_scores(model, DIGITS.x, error="absolute"), np.abs(residual).sum(1),
                               rtol=1e-4)
    with pytest.raises(ConfigError, match="smoothing needs the image shape"):  # trained on a flat array
        aekit.anomaly_scores(model, DIGITS.x, smoothing=1.0)
    with pytest.raises(ConfigError, match="image_shape .8, 4. holds 32 values, the rows 64"):
        aekit.anomaly_scores(model, DIGITS.x, smoothing=1.0, image_shape=(8, 4))
    smooth = aekit.anomaly_scores(model, DIGITS.x, error="absolute", smoothing=1.0, image_shape=(8, 8))
    from aekit.anomaly import feature_scores
    shares = feature_scores(model, DIGITS.x, error="absolute", smoothing=1.0, image_shape=(8, 8))
    np.testing.assert_allclose(shares.sum(1), smooth, rtol=1e-6)
    assert roc_auc_score(DIGITS.y != 0, smooth) > 0.95
    zeros = DIGITS.x[DIGITS.y == 0]
    params = dict(latent=4, hidden=(32,), epochs=20, random_state=0)
    det = AutoencoderOutlierDetector("ae", error="absolute", smoothing=1.0, image_shape=(8, 8), **params).fit(zeros)
    np.testing.assert_allclose(-det.score_samples(DIGITS.x[:50]),
                               aekit.anomaly_scores(det.model_, DIGITS.x[:50], error="absolute", smoothing=1.0,
                                                    image_shape=(8, 8)), rtol=1e-4)
    np.testing.assert_allclose(det.feature_scores(DIGITS.x[:50]).sum(1), -det.score_samples(DIGITS.x[:50]), rtol=1e-6)
    for bad, message in ((dict(variant="ae", smoothing=1.0), "smoothing needs the image shape"),
                         (dict(variant="vae", error="absolute"), "scores by minus the ELBO"),
                         (dict(variant=None, error="absolute"), "named variant's reconstruction error")):
        with pytest.raises(ConfigError, match=message):  # before any training
            AutoencoderOutlierDetector(**{**params, "epochs": 10**6, **bad}).fit(zeros)
    # the CLI, on a run of a built-in image set (its image shape comes with the data)
    run = tmp_path / "digits"
    aekit.fit("ae", "digits", out=run, latent=4, hidden=(16,), epochs=2, seed=0, progress=False, figures=False)
    out = tmp_path / "scores.npy"
    assert main(["score", str(run), "digits", "-o", str(out), "--error", "absolute", "--smoothing", "1"]) == 0
    assert "absolute reconstruction error, Gaussian-smoothed (sigma 1 px)" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(out)[:, 0], aekit.anomaly_scores(run, DIGITS.x, error="absolute",
                                                                       smoothing=1.0), rtol=1e-6)
    bad = tmp_path / "bad.npy"
    assert main(["score", str(run), "digits", "-o", str(bad), "--smoothing", "-1"]) == 2
    assert "aekit: error: smoothing must be a finite number >= 0" in capsys.readouterr().err
    assert not bad.exists()
