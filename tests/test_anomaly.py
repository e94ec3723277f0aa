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
