"""The scikit-learn estimators of aekit.sklearn: scikit-learn's own estimator checks for several
variants, and the property that defines each method."""

import dataclasses
import math
import pickle
import typing
from numbers import Real

import numpy as np
import pytest
import torch
from joblib import parallel_config
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, cross_validate, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit
from aekit import io, noise
from aekit.config import field_default
from aekit.data import DataConfig, Transform
from aekit.model import ModelConfig
from aekit.pretrain import stack_denoising, train_dbn
from aekit.sklearn import (AUTOENCODER_OVERRIDES, CLASSIFIER_OVERRIDES, AutoencoderOutlierDetector,
                           AutoencoderTransformer, StackedAutoencoderClassifier, _accepts, _model_space, _seed)
from aekit.train import TrainConfig
from aekit.variants.deep import DeepOptions


@pytest.fixture(scope="session")
def digits():
    return load_digits(return_X_y=True)


# -- scikit-learn's own checks -------------------------------------------------------------------
#: Small and brief: scikit-learn's checks fit each estimator dozens of times.
SMALL = {"latent": 2, "hidden": (8,), "epochs": 2, "batch_size": 32}
CHECKED = [("ae", None), ("denoising", None), ("sparse", None), ("contractive", None), ("ksparse", {"k": 1}),
           ("vae", None), ("beta-tcvae", None), ("factor-vae", {"disc_layers": 2, "disc_units": 16}),
           ("dip-vae-i", None), ("hashing", None)]


def _checked_estimators():
    for variant, options in CHECKED:
        yield AutoencoderTransformer(variant, options=options, **SMALL)
        yield AutoencoderOutlierDetector(variant, options=options, **SMALL)
    yield AutoencoderOutlierDetector("ae", complexity=True, **SMALL)


@parametrize_with_checks(list(_checked_estimators()))
def test_scikit_learn_checks(estimator, check):
    check(estimator)


#: One small layer, and a fine-tuning rate high enough for check_classifiers_train's accuracy
#: (> 0.83 on training blobs) in 10 short epochs.
CLASSIFIER_SMALL = {"hidden": (8,), "pretrain_epochs": 2, "epochs": 10, "lr": 0.05, "batch_size": 32}


@parametrize_with_checks([StackedAutoencoderClassifier(pretrain=method, **CLASSIFIER_SMALL)
                          for method in ("dae", "rbm", "none")])
def test_classifier_scikit_learn_checks(estimator, check):
    check(estimator)


def test_defaults_are_aekits_own():
    """latent, hidden and most training settings default to aekit's; loss, scale, epochs and patience differ
    (squared error on standardised features suits any real-valued data)."""
    est = AutoencoderTransformer()
    model, train = ModelConfig(), TrainConfig()
    assert (est.latent, tuple(est.hidden)) == (model.latent, model.hidden)
    assert (est.batch_size, est.lr, est.device) == (train.batch_size, train.lr, train.device)
    assert (est.loss, est.scale) == ("mse", "standard")
    # no validation rows to stop on: a fixed number of epochs, where aekit's default is a maximum ended by
    # the validation loss
    assert (est.epochs, est.patience) == (20, None) and (train.epochs, train.patience) == (300, 20)
    assert StackedAutoencoderClassifier().get_params()["epochs"] == 20
    # the detector's own: its thresholds, and the ensemble that is its default (variant=None; tests/test_odds.py)
    assert AutoencoderOutlierDetector().get_params().keys() - est.get_params().keys() == {
        "contamination", "complexity", "threshold_fpr", "members", "subsample", "trim", "max_steps",
        "error", "smoothing", "image_shape"}


#: Every dataclass the estimators' parameters come from.
SOURCES = (ModelConfig, TrainConfig, DataConfig, DeepOptions)
ESTIMATORS = [(AutoencoderTransformer, AUTOENCODER_OVERRIDES),
              (AutoencoderOutlierDetector, {**AUTOENCODER_OVERRIDES, "variant": None}),  # None: the ensemble
              (StackedAutoencoderClassifier, CLASSIFIER_OVERRIDES)]


def _source(name):
    """The dataclass among SOURCES that has a field ``name`` (the first: ModelConfig before DeepOptions);
    None for the estimators' own parameters, and for ``options`` (the variant's options, a dict of
    another dataclass's fields, None by default as scikit-learn wants)."""
    if name == "options":
        return None
    return next((cls for cls in SOURCES if name in {f.name for f in dataclasses.fields(cls)}), None)


@pytest.mark.parametrize("cls, overrides", ESTIMATORS)
def test_defaults_are_the_dataclasses_but_the_declared_overrides(cls, overrides):
    """A parameter named like an option of aekit defaults to that option's default, unless the
    estimator's override table says otherwise; every TrainConfig field but the seed, the checkpoints'
    and the validation-only restore_best is a parameter."""
    params = cls().get_params()
    derived = {name: _source(name) for name in params if _source(name) is not None}
    for name, source in derived.items():
        field = next(f for f in dataclasses.fields(source) if f.name == name)
        expected = overrides.get(name, field_default(field))
        assert params[name] == expected, name
    assert set(overrides) <= set(derived)
    train = {f.name for f in dataclasses.fields(TrainConfig)} - {"seed", "checkpoint_every", "checkpoint_seconds", "restore_best"}
    assert train <= set(params)


def _probes(constraint):
    """Numbers at and next to the ends of an Interval, and inside it."""
    points = [-2, -1, 0, 1, 2, 3, 0.5, 10.0]
    for end in (constraint.left, constraint.right):
        if end is not None:
            points += [end, math.nextafter(end, -math.inf), math.nextafter(end, math.inf)]
    return points


@pytest.mark.parametrize("cls, overrides", ESTIMATORS)
def test_constraints_are_what_aekit_accepts(cls, overrides):
    """Each derived constraint says what aekit's own check of the option says: the choices, and for
    numbers the same verdict at and around the ends of the range (nu: [0, 1], as aekit.noise has it)."""
    constraints = cls._parameter_constraints
    assert set(constraints) == set(cls().get_params())
    for name, allowed in constraints.items():
        source = _source(name)
        if source is None or name == "variant":  # not an option (variant: the registry's names)
            continue
        field = next(f for f in dataclasses.fields(source) if f.name == name)
        choices = field.metadata.get("choices")
        options = [c for c in allowed if isinstance(c, StrOptions)]
        if choices:
            assert [o.options for o in options] == [set(choices)], name
        for interval in (c for c in allowed if isinstance(c, Interval)):
            wrap = (lambda v: (int(v),)) if name == "hidden" else (lambda v: v)
            for v in _probes(interval):
                if interval.type is not Real and not float(v).is_integer():
                    continue
                v = int(v) if interval.type is not Real else float(v)
                assert interval.is_satisfied_by(v) == _accepts(source, name, wrap(v)), (name, v)
        optional = type(None) in typing.get_args(typing.get_type_hints(source)[name])
        assert (None in allowed) == (optional or overrides.get(name, 0) is None), name


def test_nu_takes_the_rule_of_the_noise():
    """The whole fraction of entries may be corrupted, as aekit.noise allows; beyond it is refused."""
    noise.check_parameters("mask", nu=1.0)
    StackedAutoencoderClassifier(nu=1.0)._validate_params()
    with pytest.raises(InvalidParameterError, match="'nu' parameter"):
        StackedAutoencoderClassifier(nu=math.nextafter(1.0, 2.0))._validate_params()


def test_training_settings_reach_the_trainer(digits):
    """The TrainConfig parameters are the run's training configuration; patience stops training once
    the training loss stops improving by min_delta."""
    X, y = digits[0][:200], digits[1][:200]
    settings = {"optimizer": "sgd", "momentum": 0.5, "weight_decay": 1e-4, "schedule": "cosine", "clip_grad": 1.0,
                "patience": 1, "min_delta": 1e9}
    est = AutoencoderTransformer(latent=3, hidden=(16,), epochs=5, random_state=0, **settings).fit(X)
    assert {k: est.model_.run_config["train"][k] for k in settings} == settings
    assert est.n_iter_ == 2 and est.history_[-1].get("early_stop")  # the second epoch cannot beat the first by 1e9
    clf = StackedAutoencoderClassifier(hidden=(8,), pretrain="none", epochs=5, random_state=0, **settings).fit(X, y)
    assert {k: clf.classifier_.run_config["train"][k] for k in settings} == settings
    assert clf.n_iter_ == 2


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


def test_pickle_holds_aekits_model_bytes(digits):
    """The pickled model is aekit's one model serializer: checksummed safetensors whose weights are
    those a run directory's model.safetensors holds; a flipped byte or a pickle in its place is refused."""
    X = digits[0][:200]
    est = AutoencoderTransformer(latent=3, hidden=(16,), epochs=1, random_state=0).fit(X)
    raw = est.__getstate__()["model_"]
    assert isinstance(raw, bytes)
    tensors, metadata = io.parse_safetensors(raw, "packed")
    plain, _ = io.parse_safetensors(io.model_to_bytes(est.model_), "plain")  # what save_model writes
    assert tensors.keys() == plain.keys() and all(torch.equal(tensors[k], plain[k]) for k in tensors)
    assert metadata["format"] == io.FORMAT and io.CHECKSUM_KEY in metadata
    model, config = io.model_from_bytes(raw)
    assert config["model"] == est.model_.run_config["model"] and model.history == est.history_
    assert np.array_equal(model.encode_array(X), est.model_.encode_array(X))
    with pytest.raises(aekit.RunError, match="no configuration"):
        io.model_from_bytes(io.model_to_bytes(est.model_))  # a run directory's file needs its config.json
    flipped = bytearray(raw)
    flipped[-1] ^= 1
    with pytest.raises(aekit.RunError, match="checksum"):
        io.model_from_bytes(bytes(flipped))
    with pytest.raises(aekit.RunError, match="pickle"):
        io.model_from_bytes(pickle.dumps({"weights": 1}))


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


# -- the stacked autoencoder classifier ----------------------------------------------------------
#: Small settings that still learn digits (64 features, 10 classes).
DIGITS_SMALL = {"hidden": (128,), "pretrain_epochs": 5, "epochs": 10}


@pytest.fixture(scope="session")
def digits_split(digits):
    return train_test_split(*digits, random_state=0)  # X_train, X_test, y_train, y_test


@pytest.mark.parametrize("method", ["dae", "rbm", "none"])
def test_classifier_learns_digits(digits_split, method):
    X_train, X_test, y_train, y_test = digits_split
    clf = StackedAutoencoderClassifier(pretrain=method, random_state=0, **DIGITS_SMALL).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.9  # chance: 0.1
    assert clf.n_features_in_ == 64 and list(clf.classes_) == list(range(10))
    assert clf.n_iter_ == len(clf.history_) == 10
    assert (clf.pretrain_record_ is None) == (method == "none")


def test_classifier_probabilities_logits_and_predictions_agree(digits_split):
    X_train, X_test, y_train, _ = digits_split
    clf = StackedAutoencoderClassifier(random_state=0, **DIGITS_SMALL).fit(X_train, y_train)
    proba, logits = clf.predict_proba(X_test), clf.decision_function(X_test)
    assert proba.shape == logits.shape == (len(X_test), 10) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=0, atol=1e-12)
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba, np.exp(logits) / np.exp(logits).sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(clf.predict_log_proba(X_test), np.log(proba), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X_test), clf.classes_[proba.argmax(1)])
    # the float64 predictions are the float32 network's, up to float32 resolution
    np.testing.assert_allclose(proba, clf.classifier_.predict_proba_array(X_test), atol=1e-5)


def test_classifier_takes_string_labels_and_two_classes(digits):
    """Any label type; with two classes decision_function is the log-odds of classes_[1]."""
    X, y = digits
    keep = (y == 3) | (y == 8)
    names = np.where(y[keep] == 3, "three", "eight")
    clf = StackedAutoencoderClassifier(hidden=(32,), pretrain_epochs=3, epochs=10, random_state=0)
    clf.fit(X[keep], names)
    assert list(clf.classes_) == ["eight", "three"]
    pred = clf.predict(X[keep])
    assert pred.dtype.kind == "U" and set(pred) <= {"eight", "three"}
    assert clf.score(X[keep], names) > 0.9
    decision, proba = clf.decision_function(X[keep]), clf.predict_proba(X[keep])
    assert decision.shape == (keep.sum(),)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-decision)), rtol=1e-10)
    np.testing.assert_array_equal(pred, np.where(decision > 0, "three", "eight"))


def test_classifier_same_random_state_same_predictions(digits):
    X, y = digits[0][:400], digits[1][:400]

    def proba(seed, method):
        clf = StackedAutoencoderClassifier(hidden=(16, 8), pretrain=method, pretrain_epochs=2, epochs=2,
                                           random_state=seed)
        return clf.fit(X, y).predict_proba(X)

    for method in ("dae", "rbm"):
        assert np.array_equal(proba(3, method), proba(3, method))
        assert not np.allclose(proba(3, method), proba(4, method))


def test_classifier_clone_and_pickle_round_trip(digits):
    X, y = digits[0][:300], digits[1][:300]
    est = StackedAutoencoderClassifier(hidden=(16, 8), pretrain="rbm", pretrain_epochs=2, epochs=3,
                                       pretrain_options={"cd_k": 2}, random_state=0)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and copy.pretrain_options is not est.pretrain_options
    est.fit(X, y)
    assert not hasattr(clone(est), "classifier_")
    data = pickle.dumps(est)
    assert b"torch" not in data  # weights travel as safetensors bytes + JSON
    back = pickle.loads(data)
    assert isinstance(back.classifier_, aekit.Classifier) and back.classifier_ is not est.classifier_
    assert np.array_equal(back.predict_proba(X), est.predict_proba(X))
    assert np.array_equal(back.classes_, est.classes_)
    assert back.history_ == est.history_ and back.pretrain_record_ == est.pretrain_record_
    assert back.classifier_.history == est.classifier_.history
    assert back.classifier_.autoencoder.pretrain_record == est.pretrain_record_
    assert back.get_params() == est.get_params()


def test_classifier_in_a_pipeline_with_grid_search(digits):
    """A small two-layer logistic network fine-tuned on 300 rows for 10 epochs barely leaves chance
    from a random start; RBM pretraining makes it learn (Erhan et al. 2010): the search picks it."""
    X, y = digits
    pipe = make_pipeline(MinMaxScaler(), StackedAutoencoderClassifier(hidden=(64, 32), scale="none",
                                                                      pretrain_epochs=5, epochs=10, random_state=0))
    search = GridSearchCV(pipe, {"stackedautoencoderclassifier__pretrain": ["none", "rbm"]}, cv=2)
    search.fit(X[:600], y[:600])
    assert search.best_params_ == {"stackedautoencoderclassifier__pretrain": "rbm"}
    assert search.best_score_ > 0.4  # chance: 0.1
    assert search.predict(X[600:610]).shape == (10,)


def _unit(X):
    X = X.astype(np.float32)
    return Transform.fit("unit", X).apply(X)


@pytest.mark.parametrize("method", ["dae", "rbm"])
def test_pretraining_is_the_librarys_greedy_stack(digits, method):
    """With epochs=0 (no fine-tuning) the encoder is exactly the stack that stack_denoising /
    train_dbn train on the scaled data with the same seed: layer by layer, each on the codes of
    the one below. The head starts at zero: uniform probabilities."""
    X, y = digits[0][:500], digits[1][:500]
    sizes = (24, 12)
    clf = StackedAutoencoderClassifier(hidden=sizes, pretrain=method, pretrain_epochs=3, epochs=0, batch_size=50,
                                       random_state=7).fit(X, y)
    x = torch.from_numpy(_unit(X))
    if method == "dae":
        layers = stack_denoising(x, sizes, activation="sigmoid", top_activation="sigmoid", loss="bce", noise="mask",
                                 nu=0.25, epochs=3, batch_size=50, lr=1e-3, seed=_seed(7))
    else:
        layers = train_dbn(x, sizes, visible="bernoulli", top="bernoulli", seed=_seed(7), epochs=3, batch_size=50)
    encoder = clf.classifier_.autoencoder.encoder.linears
    assert len(encoder) == len(layers) == 2
    for linear, layer in zip(encoder, layers):
        assert torch.equal(linear.weight, layer.weight) and torch.equal(linear.bias, layer.hidden_bias)
    assert [r["layer"] for r in clf.pretrain_record_["layers"]] == [1, 2]
    np.testing.assert_allclose(clf.predict_proba(X[:5]), 0.1)


@pytest.mark.parametrize("method", ["dae", "rbm"])
def test_pretraining_lowers_the_reconstruction_error(digits, method):
    """A pretrained layer reconstructs its input through its transposed weights (the tied DAE's
    decoder; the RBM's mean-field reconstruction) far better than the random initialisation does,
    and its error fell epoch by epoch."""
    X, y = digits[0][:500], digits[1][:500]
    x = _unit(X)

    def fitted(pretrain):
        return StackedAutoencoderClassifier(hidden=(32,), pretrain=pretrain, pretrain_epochs=5, epochs=0,
                                            random_state=0).fit(X, y)

    def error(clf):
        ae = clf.classifier_.autoencoder
        return float(((ae.batched(x, ae.reconstruct, 4096) - x) ** 2).sum(1).mean())

    pretrained = fitted(method)
    assert error(pretrained) < 0.5 * error(fitted("none"))
    history = pretrained.pretrain_record_["layers"][0]["history"]
    key = "train_loss" if method == "dae" else "reconstruction_error"
    assert len(history) == 5 and history[-1][key] < history[0][key]
    if method == "rbm":  # the record measures the same reconstruction (on a subset of the rows)
        assert history[-1][key] == pytest.approx(error(pretrained), rel=0.1)


def test_fine_tuning_trains_the_whole_stack(digits):
    """Fine-tuning moves every layer, not only the head (Vincent et al. 2010, section 3.5)."""
    X, y = digits[0][:400], digits[1][:400]
    settings = dict(hidden=(24, 12), pretrain_epochs=2, random_state=0)
    pretrained = StackedAutoencoderClassifier(epochs=0, **settings).fit(X, y).classifier_.autoencoder.encoder.linears
    tuned = StackedAutoencoderClassifier(epochs=3, **settings).fit(X, y).classifier_.autoencoder.encoder.linears
    for before, after in zip(pretrained, tuned):
        assert not torch.allclose(before.weight, after.weight)
    assert tuned[0].weight.shape == (24, 64) and tuned[1].weight.shape == (12, 24)


def test_classifier_mistakes_are_value_errors():
    X = np.random.default_rng(0).uniform(size=(20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="one class"):
        StackedAutoencoderClassifier(hidden=(4,)).fit(X, np.zeros(20))
    with pytest.raises(ValueError, match="at least one layer"):
        StackedAutoencoderClassifier(hidden=()).fit(X, y)
    with pytest.raises(ValueError, match="not options of the deep variant's pretraining"):
        StackedAutoencoderClassifier(hidden=(4,), pretrain_options={"beta": 4.0}).fit(X, y)
    with pytest.raises(ValueError, match="set by the parameter"):
        StackedAutoencoderClassifier(hidden=(4,), pretrain_options={"dae_lr": 0.1}).fit(X, y)
    with pytest.raises(aekit.ConfigError, match="rbm pretraining needs logistic hidden units"):
        StackedAutoencoderClassifier(hidden=(4,), pretrain="rbm", activation="relu").fit(X, y)
    with pytest.raises(aekit.ConfigError, match="bce loss needs targets in"):
        StackedAutoencoderClassifier(hidden=(4,), scale="standard").fit(X, y)
