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


@pytest.fixture(scope="module")
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
