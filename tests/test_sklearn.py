"""The scikit-learn estimators of aekit.sklearn: scikit-learn's own estimator checks for several
variants, and the property that defines each method."""

import pickle

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, cross_validate, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit
from aekit.model import ModelConfig
from aekit.sklearn import AutoencoderOutlierDetector, AutoencoderTransformer, _model_space
from aekit.train import TrainConfig


@pytest.fixture(scope="module")
def digits():
    return load_digits(return_X_y=True)


# -- scikit-learn's own checks -------------------------------------------------------------------
#: Small and brief: scikit-learn's checks fit each estimator dozens of times.
SMALL = {"latent": 2, "hidden": (8,), "epochs": 2, "batch_size": 32}
CHECKED = [("ae", None), ("denoising", None), ("sparse", None), ("contractive", None), ("ksparse", {"k": 1}),
           ("vae", None)]


def _checked_estimators():
    for variant, options in CHECKED:
        yield AutoencoderTransformer(variant, options=options, **SMALL)
        yield AutoencoderOutlierDetector(variant, options=options, **SMALL)


@parametrize_with_checks(list(_checked_estimators()))
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def test_defaults_are_aekits_own():
    """latent, hidden and the training settings default to aekit's; only loss and scale differ
    (squared error on standardised features suits any real-valued data)."""
    est = AutoencoderTransformer()
    model, train = ModelConfig(), TrainConfig()
    assert (est.latent, tuple(est.hidden)) == (model.latent, model.hidden)
    assert (est.epochs, est.batch_size, est.lr, est.device) == (train.epochs, train.batch_size, train.lr,
                                                                train.device)
    assert (est.loss, est.scale) == ("mse", "standard")
    assert AutoencoderOutlierDetector().get_params().keys() - est.get_params().keys() == {"contamination"}


# -- the transformer -----------------------------------------------------------------------------
def test_pipeline_with_logistic_regression(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    pipe = make_pipeline(StandardScaler(), AutoencoderTransformer(latent=8, hidden=(32,), epochs=10, random_state=0),
                         LogisticRegression(max_iter=300))
    assert pipe.fit(X_train, y_train).score(X_test, y_test) > 0.7  # chance: 0.1
    assert list(pipe[:-1].get_feature_names_out()) == [f"autoencodertransformer{i}" for i in range(8)]


def test_grid_search_over_the_code_size(digits):
    X, y = digits
    pipe = make_pipeline(AutoencoderTransformer(hidden=(32,), epochs=10, random_state=0),
                         LogisticRegression(max_iter=300))
    search = GridSearchCV(pipe, {"autoencodertransformer__latent": [2, 8]}, cv=2).fit(X[:600], y[:600])
    assert search.best_params_ == {"autoencodertransformer__latent": 8}
    assert search.best_estimator_[0].transform(X[:5]).shape == (5, 8)


def test_fitted_estimators_come_back_from_worker_processes(digits):
    """joblib ships fitted estimators between processes by pickling; they come back whole and
    equal to the same fit made here (the same random_state, the same model)."""
    X = digits[0][:300]
    est = AutoencoderTransformer(latent=3, hidden=(16,), epochs=2, random_state=0)
    with parallel_config(backend="loky", inner_max_num_threads=1):  # tiny models: one torch thread each
        result = cross_validate(est, X, cv=KFold(2), n_jobs=2, return_estimator=True)
    assert np.isfinite(result["test_score"]).all()  # the score: minus the mean reconstruction error
    here = clone(est).fit(X[150:])  # KFold(2)'s first training fold
    assert np.array_equal(result["estimator"][0].transform(X), here.transform(X))


def test_clone_is_unfitted_with_equal_parameters():
    est = AutoencoderTransformer("vae", latent=3, options={"beta": 4.0}, random_state=1).fit(np.eye(5))
    copy = clone(est)
    assert copy.get_params() == est.get_params() and copy.options is not est.options
    assert not hasattr(copy, "model_")


@pytest.mark.parametrize("cls, variant", [(AutoencoderTransformer, "ae"),
                                          (AutoencoderOutlierDetector, "beta-vae")])
def test_pickle_round_trip_holds_no_torch_objects(digits, cls, variant):
    """beta-vae's options class is made by the registry: only the packed model pickles it."""
    X = digits[0][:200]
    est = cls(variant, latent=3, hidden=(16,), epochs=2, random_state=0).fit(X)
    data = pickle.dumps(est)
    assert b"torch" not in data  # the model travels as safetensors bytes + JSON
    back = pickle.loads(data)
    assert isinstance(est.model_, aekit.Autoencoder) and back.model_ is not est.model_
    assert np.array_equal(back.model_.encode_array(X), est.model_.encode_array(X))
    assert np.array_equal(back.score_samples(X), est.score_samples(X))
    assert back.history_ == est.history_ == back.model_.history
    assert getattr(back, "offset_", None) == getattr(est, "offset_", None)


def test_same_random_state_same_codes(digits):
    X = digits[0][:200]

    def codes(seed):
        return AutoencoderTransformer("denoising", latent=3, hidden=(16,), epochs=2,
                                      random_state=seed).fit_transform(X)

    assert np.array_equal(codes(3), codes(3))
    assert not np.allclose(codes(3), codes(4))


def test_transform_inverse_transform_and_scores(digits):
    X = digits[0][:300]
    est = AutoencoderTransformer(latent=4, hidden=(16,), epochs=3, random_state=0).fit(X)
    codes = est.transform(X)
    assert codes.shape == (300, 4) and codes.dtype == np.float64
    np.testing.assert_allclose(est.transform(X.astype(np.float32)), codes, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(est.transform(X.astype(np.float32)), est.model_.encode_array(X), rtol=0, atol=0)
    recon = est.inverse_transform(codes)  # decoding, back in the input units
    np.testing.assert_allclose(recon, est.model_.reconstruct_array(X), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(est.score_samples(X), -((X - recon) ** 2).sum(1), rtol=1e-9)
    assert est.score(X) == pytest.approx(est.score_samples(X).mean())
    with pytest.raises(ValueError, match="expecting codes of 4 features"):
        est.inverse_transform(codes[:, :3])


def test_vae_scores_are_per_example_elbos(digits):
    """The capacity objective gamma*|KL - C| drives the KL to C = 10 nats; the score is the ELBO
    itself (KL weight 1), whose mean over rows is minus likelihood_bounds' negative ELBO, row by row
    too (up to the Monte Carlo noise of different draws)."""
    X = digits[0][:400]
    est = AutoencoderTransformer("capacity-vae", latent=4, hidden=(32,), loss="bce", scale="unit", epochs=10,
                                 batch_size=64, options={"capacity": 10.0, "capacity_steps": 20},
                                 elbo_samples=500, random_state=0).fit(X)
    scores = est.score_samples(X)
    model_x = _model_space(est.model_, X.astype(np.float32))
    bounds = aekit.likelihood_bounds(est.model_, model_x, k=500)
    assert bounds["kl"] > 5  # a KL term left out or weighted would be off by more than 10%
    assert scores.mean() == pytest.approx(-bounds["nelbo"], rel=0.01)
    for i in range(3):
        one = aekit.likelihood_bounds(est.model_, model_x[i:i + 1], k=500)
        assert scores[i] == pytest.approx(-one["nelbo"], abs=0.5)


def test_options_and_hidden_are_checked():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="not options of the 'ae' variant"):
        AutoencoderTransformer(options={"beta": 4.0}).fit(X)
    with pytest.raises(ValueError, match="not options of the 'vae' variant"):
        AutoencoderTransformer("vae", options={"epochs": 3}).fit(X)  # a training setting is a parameter
    with pytest.raises(ValueError, match="hidden must be positive integers"):
        AutoencoderTransformer(hidden=(8, 0)).fit(X)
    with pytest.raises(ValueError, match="bce loss needs targets in"):
        AutoencoderTransformer(loss="bce").fit(X)  # standardised data are not in [0, 1]


# -- the outlier detector ------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["ae", "vae"])
def test_detector_ranks_another_digit_as_anomalous(digits, variant):
    X, y = digits
    zeros, others = X[y == 0], X[y == 1]
    det = AutoencoderOutlierDetector(variant, latent=4, hidden=(32,), epochs=30, random_state=0).fit(zeros[:120])
    held_out = np.concatenate([zeros[120:], others])
    is_outlier = np.r_[np.zeros(len(zeros) - 120), np.ones(len(others))]
    assert roc_auc_score(is_outlier, -det.score_samples(held_out)) > 0.8
    assert (det.predict(others) == -1).mean() > 0.5


@pytest.mark.parametrize("contamination", [0.05, 0.2])
def test_predict_flags_the_contamination_fraction_of_training_rows(digits, contamination):
    X = digits[0][:500]
    det = AutoencoderOutlierDetector(latent=4, hidden=(16,), epochs=3, contamination=contamination,
                                     random_state=0).fit(X)
    flagged = det.predict(X) == -1
    assert abs(flagged.mean() - contamination) <= 1 / len(X)
    np.testing.assert_array_equal(det.decision_function(X), det.score_samples(X) - det.offset_)
    np.testing.assert_array_equal(flagged, det.decision_function(X) < 0)
