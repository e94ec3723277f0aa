"""disentanglement_lib's supervised scores (aekit.disentanglement): BetaVAE, FactorVAE, DCI, SAP,
modularity and explicitness, against transcriptions of disentanglement_lib's own code."""

import json

import numpy as np
import pytest
import scipy.stats
from sklearn import metrics as skm
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

from aekit.data.dsprites import FACTOR_NAMES, FACTOR_SIZES, render
from aekit.disentanglement import (
    DEFAULTS,
    METRICS,
    DSpritesSampler,
    GroundTruthSampler,
    _beta_vae_points,
    _Encoder,
    _factor_code,
    beta_vae_score,
    dci,
    dci_from_importance,
    disentanglement_scores,
    dsprites_scores,
    factor_vae_score,
    modularity_explicitness,
    modularity_from_mutual_info,
    sap,
    sap_from_score_matrix,
)
from aekit.errors import ConfigError, DataError

SIZES = (3, 4, 5)  # toy factors; the "observation" of a draw is its factor indices
BINARY = (2, 2, 2)  # for DCI (gradient boosting fits one tree per class and round: keep classes few)
PERM = np.array([2, 0, 1])
SCALE = np.array([1.5, 3.0, 0.8])  # BetaVAE's logistic regression is regularized: not too small


def identity_code(x):
    """A permuted identity code with per-dimension scaling: dimension k holds factor PERM[k]."""
    return np.asarray(x, dtype=np.float64)[:, PERM] * SCALE


def make_noise_code(seed=0):
    """A code independent of the factors: 4 dimensions of fresh normal noise on every call."""
    rng = np.random.default_rng(seed)
    return lambda x: rng.normal(size=(len(x), 4))


def mixed_code(x):
    """A deterministic, entangled code of each row."""
    x = np.asarray(x, dtype=np.float64)
    return np.column_stack([np.sin(x[:, 0] + 2 * x[:, 1]), x[:, 2] * x[:, 1], np.cos(3 * x[:, 2]), x[:, 0] - x[:, 2]])


def chance_band(n, p):
    """Four standard deviations of an accuracy of n independent guesses right with probability p."""
    return 4 * np.sqrt(p * (1 - p) / n)


def matrices(sizes, code, n_train, n_test, seed=0):
    """Codes and factors of n_train then n_test uniform draws, as disentanglement_lib draws them."""
    gt, rs = GroundTruthSampler(sizes), np.random.RandomState(seed)
    enc = _Encoder(code)
    z, f = _factor_code(enc, gt, n_train, rs)
    zt, ft = _factor_code(enc, gt, n_test, rs)
    return z, f, zt, ft


# -- transcriptions of disentanglement_lib (its (dims, points) layout) ---------------------------
def ref_generate_batch_factor_code(gt, rep, num_points, random_state, batch_size=16):
    representations, factors, i = None, None, 0
    while i < num_points:
        n = min(num_points - i, batch_size)
        f, obs = gt.sample(n, random_state)
        if i == 0:
            factors, representations = f, rep(obs)
        else:
            factors, representations = np.vstack((factors, f)), np.vstack((representations, rep(obs)))
        i += n
    return np.transpose(representations), np.transpose(factors)


def ref_beta_vae_batch(gt, rep, batch_size, num_points, random_state):
    points, labels = None, np.zeros(num_points, dtype=np.int64)
    for i in range(num_points):
        index = random_state.randint(gt.num_factors)
        f1 = gt.sample_factors(batch_size, random_state)
        f2 = gt.sample_factors(batch_size, random_state)
        f2[:, index] = f1[:, index]
        r1 = rep(gt.sample_observations_from_factors(f1, random_state))
        r2 = rep(gt.sample_observations_from_factors(f2, random_state))
        v = np.mean(np.abs(r1 - r2), axis=0)
        labels[i] = index
        if points is None:
            points = np.zeros((num_points, v.shape[0]))
        points[i, :] = v
    return points, labels


def ref_factor_vae(gt, rep, random_state, batch_size, num_train, num_eval, num_variance_estimate, threshold):
    global_variances = np.var(rep(gt.sample_observations(num_variance_estimate, random_state)), axis=0, ddof=1)
    active_dims = np.sqrt(global_variances) >= threshold

    def batch(num_points):
        votes = np.zeros((gt.num_factors, global_variances.shape[0]), dtype=np.int64)
        for _ in range(num_points):
            factor_index = random_state.randint(gt.num_factors)
            factors = gt.sample_factors(batch_size, random_state)
            factors[:, factor_index] = factors[0, factor_index]
            local = np.var(rep(gt.sample_observations_from_factors(factors, random_state)), axis=0, ddof=1)
            votes[factor_index, np.argmin(local[active_dims] / global_variances[active_dims])] += 1
        return votes

    train = batch(num_train)
    classifier, other = np.argmax(train, axis=0), np.arange(train.shape[1])
    train_accuracy = np.sum(train[classifier, other]) / np.sum(train)
    evals = batch(num_eval)
    return train_accuracy, np.sum(evals[classifier, other]) / np.sum(evals)


def ref_disentanglement(importance_matrix):
    per_code = 1.0 - scipy.stats.entropy(importance_matrix.T + 1e-11, base=importance_matrix.shape[1])
    if importance_matrix.sum() == 0.0:
        importance_matrix = np.ones_like(importance_matrix)
    return np.sum(per_code * importance_matrix.sum(axis=1) / importance_matrix.sum())


def ref_completeness(importance_matrix):
    per_factor = 1.0 - scipy.stats.entropy(importance_matrix + 1e-11, base=importance_matrix.shape[0])
    if importance_matrix.sum() == 0.0:
        importance_matrix = np.ones_like(importance_matrix)
    return np.sum(per_factor * importance_matrix.sum(axis=0) / importance_matrix.sum())


def ref_modularity(mutual_information):
    squared_mi = np.square(mutual_information)
    max_squared_mi = np.max(squared_mi, axis=1)
    numerator = np.sum(squared_mi, axis=1) - max_squared_mi
    with np.errstate(invalid="ignore", divide="ignore"):
        modularity_score = 1.0 - numerator / (max_squared_mi * (squared_mi.shape[1] - 1.0))
    modularity_score[max_squared_mi == 0.0] = 0.0
    return np.mean(modularity_score)


def ref_explicitness(mus_train, ys_train, mus_test, ys_test):
    """compute_modularity_explicitness's explicitness, with sklearn 0.20's LogisticRegression()."""
    mean, std = np.mean(mus_train, axis=1), np.std(mus_train, axis=1)
    x_train, x_test = ((mus_train - mean[:, None]) / std[:, None]).T, ((mus_test - mean[:, None]) / std[:, None]).T
    train, test = [], []
    for y_train, y_test in zip(ys_train, ys_test):
        clf = OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=0)).fit(x_train, y_train)
        mlb = MultiLabelBinarizer()
        train.append(skm.roc_auc_score(mlb.fit_transform(np.expand_dims(y_train, 1)), clf.predict_proba(x_train)))
        test.append(skm.roc_auc_score(mlb.fit_transform(np.expand_dims(y_test, 1)), clf.predict_proba(x_test)))
    return np.mean(train), np.mean(test)


# -- the ground truth -----------------------------------------------------------------------------
def test_sampler_draws_as_disentanglement_lib():
    gt = GroundTruthSampler(SIZES)
    f = gt.sample_factors(500, np.random.RandomState(3))
    rs = np.random.RandomState(3)  # SplitDiscreteStateSpace: one randint per factor
    np.testing.assert_array_equal(f, np.column_stack([rs.randint(s, size=500) for s in SIZES]))
    assert f.dtype == np.int64 and all(set(f[:, j]) == set(range(s)) for j, s in enumerate(SIZES))
    fixed = gt.sample_fixed_factor(50, 1, np.random.RandomState(0))
    assert np.all(fixed[:, 1] == fixed[0, 1]) and len(set(fixed[:, 0])) > 1
    first, second = gt.sample_fixed_factor_pairs(50, 2, np.random.RandomState(0))
    np.testing.assert_array_equal(first[:, 2], second[:, 2])
    assert (first[:, :2] != second[:, :2]).any()
    factors, obs = gt.sample(4, np.random.RandomState(0))
    np.testing.assert_array_equal(obs, factors.astype(float))


def test_dsprites_sampler_renders_its_factors():
    gt = DSpritesSampler()
    assert gt.factor_sizes == FACTOR_SIZES and gt.factor_names == FACTOR_NAMES and gt.num_factors == 5
    factors, images = gt.sample(4, np.random.RandomState(0))
    np.testing.assert_array_equal(images, render(factors))
    assert images.shape == (4, 4096) and images.dtype == np.float32


def test_batched_draws_equal_disentanglement_lib_loops():
    gt = GroundTruthSampler(SIZES)
    z, f = _factor_code(_Encoder(identity_code), gt, 70, np.random.RandomState(5))
    mus, ys = ref_generate_batch_factor_code(gt, identity_code, 70, np.random.RandomState(5))
    np.testing.assert_array_equal(z, mus.T)
    np.testing.assert_array_equal(f, ys.T)
    x, y = _beta_vae_points(_Encoder(mixed_code), gt, 8, 90, np.random.RandomState(1))
    ref_x, ref_y = ref_beta_vae_batch(gt, mixed_code, 8, 90, np.random.RandomState(1))
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_allclose(x, ref_x, rtol=1e-12)


# -- the maximum, the minimum ---------------------------------------------------------------------
def test_identity_code_scores_the_maximum():
    gt = GroundTruthSampler(SIZES)
    assert beta_vae_score(identity_code, gt, batch_size=16, num_train=150, num_eval=100) == {
        "train_accuracy": 1.0,
        "eval_accuracy": 1.0,
    }
    fv = factor_vae_score(identity_code, gt, batch_size=16, num_train=150, num_eval=100, num_variance_estimate=500)
    assert fv == {"train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 3}

    n = 600
    z, f, zt, ft = matrices(SIZES, identity_code, n, 300)
    me = modularity_explicitness(z, f, zt, ft)
    # MI of a code dimension with a factor it is independent of is an empirical bias of about
    # (a - 1)(b - 1) / 2n nats (a, b <= 5 levels); allow 10 times that. With the true factor it is H >= log 3.
    stray = 10 * 16 / (2 * n)
    assert me["modularity"] == pytest.approx(1.0, abs=(stray / np.log(3)) ** 2)
    assert me["modularity"] <= 1.0

    z, f, zt, ft = matrices(BINARY, identity_code, 200, 100)
    scores = dci(z, f, zt, ft)
    # only the 1e-11 added to every importance keeps D and C from 1: 1 - D ~ F * 1e-11 * log(1e11) / log F
    assert scores["disentanglement"] == pytest.approx(1.0, abs=1e-8)
    assert scores["completeness"] == pytest.approx(1.0, abs=1e-8)
    assert scores["informativeness_train"] == scores["informativeness_test"] == 1.0
    importance = np.array(scores["importance_matrix"])
    np.testing.assert_allclose(importance[np.arange(3), PERM], 1.0, atol=1e-8)
    # binary factors: each is separated by its own dimension exactly (ROC-AUC 1)
    me = modularity_explicitness(z, f, zt, ft)
    assert me["explicitness_train"] == me["explicitness_test"] == 1.0
    # SAP: the dimension of a factor predicts it exactly; the squared correlation of an independent
    # dimension with it is ~ chi2(1) / n, so below 25 / n with overwhelming probability
    assert sap(z, f, zt, ft, continuous=True)["sap"] == pytest.approx(1.0, abs=25 / 200)
    s = sap(z, f, zt, ft)
    score = np.array(s["score_matrix"])
    np.testing.assert_array_equal(score[np.arange(3), PERM], 1.0)
    # discrete SAP of a perfect code is 1 minus the accuracy of an unrelated dimension (about 1/2)
    assert s["sap"] == pytest.approx(0.5, abs=2 * chance_band(100, 0.5))


def test_code_independent_of_the_factors_scores_near_the_minimum():
    gt = GroundTruthSampler(SIZES)
    chance = 1 / len(SIZES)
    bv = beta_vae_score(make_noise_code(), gt, batch_size=16, num_train=150, num_eval=150)
    assert bv["eval_accuracy"] == pytest.approx(chance, abs=chance_band(150, chance))
    fv = factor_vae_score(make_noise_code(), gt, batch_size=16, num_train=150, num_eval=150, num_variance_estimate=500)
    assert fv["eval_accuracy"] == pytest.approx(chance, abs=chance_band(150, chance)) and fv["num_active_dims"] == 4

    n = 400
    z, f, zt, ft = matrices(BINARY, make_noise_code(), n, n)
    scores = dci(z, f, zt, ft)
    # noise spreads each factor's importance over the dimensions at random: D and C stay small
    assert scores["disentanglement"] < 0.1 and scores["completeness"] < 0.1
    assert scores["informativeness_test"] == pytest.approx(0.5, abs=chance_band(n, 0.5))
    # each accuracy is 1/2 +- chance_band: so is each gap between two of them
    assert sap(z, f, zt, ft)["sap"] < 2 * chance_band(n, 0.5)
    me = modularity_explicitness(z, f, zt, ft)
    # ROC-AUC of an unrelated score: sd sqrt((n0 + n1 + 1) / (12 n0 n1)), about 0.029 at n0 = n1 = 200
    assert me["explicitness_test"] == pytest.approx(0.5, abs=4 * np.sqrt((n + 1) / (12 * (n / 2) ** 2)))
    # (modularity is not low for noise: it asks only that each dimension's information, however
    # little, be about one factor; its minimum is checked on matrices below)


# -- values of disentanglement_lib's formulas --------------------------------------------------------
IMPORTANCE = [
    np.array([[0.7, 0.1, 0.0], [0.1, 0.5, 0.2], [0.0, 0.0, 0.4], [0.05, 0.05, 0.05]]),
    np.eye(3),
    np.ones((2, 4)),
    np.zeros((3, 2)),
]


@pytest.mark.parametrize("importance", IMPORTANCE)
def test_dci_of_an_importance_matrix_is_disentanglement_libs(importance):
    scores = dci_from_importance(importance)
    assert scores["disentanglement"] == pytest.approx(ref_disentanglement(importance), rel=1e-12, abs=1e-15)
    assert scores["completeness"] == pytest.approx(ref_completeness(importance), rel=1e-12, abs=1e-15)


def test_dci_by_hand():
    # code 0 only for factor 0, code 1 split evenly: D_0 = 1, D_1 = 0, weights 1/3, 2/3
    scores = dci_from_importance([[1.0, 0.0], [1.0, 1.0]])
    assert scores["disentanglement"] == pytest.approx(1 / 3, abs=1e-9)
    # factor 0 split evenly over codes (C_0 = 0), factor 1 on code 1 only (C_1 = 1): weights 2/3, 1/3
    assert scores["completeness"] == pytest.approx(1 / 3, abs=1e-9)
    assert dci_from_importance(np.eye(2))["disentanglement"] == pytest.approx(1.0, abs=1e-9)
    assert dci_from_importance(np.ones((3, 3)))["disentanglement"] == pytest.approx(0.0, abs=1e-12)


def test_sap_and_modularity_by_hand():
    score = [[0.9, 0.2], [0.3, 0.8], [0.1, 0.7]]
    assert sap_from_score_matrix(score) == pytest.approx(((0.9 - 0.3) + (0.8 - 0.7)) / 2)
    # row 0: one factor (1); row 1: both equally (0); row 2: nothing (0)
    mi = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    result = modularity_from_mutual_info(mi)
    assert result["modularity"] == pytest.approx(1 / 3) and result["modularity_per_code"] == [1.0, 0.0, 0.0]
    # delta = (0.5^2 + 0.25^2) / (1 * 2) = 0.15625
    assert modularity_from_mutual_info([[1.0, 0.5, 0.25]])["modularity"] == pytest.approx(1 - 0.15625)
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = rng.exponential(size=(4, 3)) * (rng.random((4, 3)) > 0.3)
        assert modularity_from_mutual_info(m)["modularity"] == pytest.approx(ref_modularity(m), rel=1e-12)


def test_factor_vae_score_is_disentanglement_libs():
    gt = GroundTruthSampler(SIZES)

    def code(x):  # a mixed code: some dimensions shared, one pruned as collapsed (sd 0.01 < 0.05)
        x = np.asarray(x, dtype=np.float64)
        return np.column_stack([x[:, 0] + 0.5 * x[:, 1], x[:, 2], x[:, 1] - x[:, 2], 0.01 * x[:, 0]])

    ours = factor_vae_score(code, gt, 7, batch_size=10, num_train=80, num_eval=40, num_variance_estimate=200)
    ref = ref_factor_vae(gt, code, np.random.RandomState(7), 10, 80, 40, 200, 0.05)
    assert (ours["train_accuracy"], ours["eval_accuracy"]) == pytest.approx(ref, rel=1e-12)
    assert ours["num_active_dims"] == 3


def test_dci_modularity_explicitness_are_disentanglement_libs():
    def code(x):
        x = np.asarray(x, dtype=np.float64)
        rng = np.random.default_rng(len(x))
        return np.column_stack([x[:, 0] + x[:, 1], x[:, 1], x[:, 2] + rng.normal(size=len(x)), rng.normal(size=len(x))])

    z, f, zt, ft = matrices(BINARY, code, 150, 120, seed=2)
    scores = dci(z, f, zt, ft, seed=0)
    importance = np.zeros((4, 3))
    acc = []
    for j in range(3):  # compute_importance_gbt, with random_state pinned (theirs leaves it unset)
        model = GradientBoostingClassifier(random_state=0).fit(z, f[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        acc.append(np.mean(model.predict(zt) == ft[:, j]))
    np.testing.assert_allclose(scores["importance_matrix"], importance, rtol=1e-12)
    assert scores["disentanglement"] == pytest.approx(ref_disentanglement(importance), rel=1e-12)
    assert scores["completeness"] == pytest.approx(ref_completeness(importance), rel=1e-12)
    assert scores["informativeness_test"] == pytest.approx(np.mean(acc))

    me = modularity_explicitness(z, f, zt, ft)
    mus = z.T
    discretized = np.zeros_like(mus)
    for i in range(mus.shape[0]):
        discretized[i, :] = np.digitize(mus[i, :], np.histogram(mus[i, :], 20)[1][:-1])
    mi = np.array([[skm.mutual_info_score(y, d) for y in f.T] for d in discretized])
    np.testing.assert_allclose(me["mutual_info"], mi, rtol=1e-12)
    assert me["modularity"] == pytest.approx(ref_modularity(mi), rel=1e-12)
    train, test = ref_explicitness(z.T, f.T, zt.T, ft.T)
    assert me["explicitness_train"] == pytest.approx(train, rel=1e-12)
    assert me["explicitness_test"] == pytest.approx(test, rel=1e-12)


# -- all of them ----------------------------------------------------------------------------------
def test_scores_runner_is_seeded_and_json_able():
    gt = GroundTruthSampler(BINARY, factor_names=("a", "b", "c"))
    a = disentanglement_scores(identity_code, gt, seed=4, scale=0.005)
    assert a == disentanglement_scores(identity_code, gt, seed=4, scale=0.005)
    assert json.loads(json.dumps(a)) == a
    assert set(a) == {"mig", "beta_vae", "factor_vae", "dci", "sap", "modularity", "explicitness", "settings"}
    # MIG of 50 rows: an unrelated binary dimension keeps about 1 / (2 * 50) nats of spurious MI
    assert a["mig"] == pytest.approx(1.0, abs=10 / (2 * 50) / np.log(2))
    settings = a["settings"]
    assert settings["seed"] == 4 and settings["scale"] == 0.005 and settings["factor_names"] == ["a", "b", "c"]
    assert settings["beta_vae"] == {"batch_size": 64, "num_train": 50, "num_eval": 25}
    assert settings["factor_vae"]["num_variance_estimate"] == 50 and settings["factor_vae"]["prune_threshold"] == 0.05
    assert settings["dci"] == {"num_train": 50, "num_test": 25}
    b = disentanglement_scores(mixed_code, gt, seed=5, metrics=("sap", "mig"), scale=0.005)
    assert set(b) == {"sap", "mig", "settings"}
    assert b != disentanglement_scores(mixed_code, gt, seed=6, metrics=("sap", "mig"), scale=0.005)
    # MIG shares the rows of the matrix scores: the same as on its own
    assert b["mig"] == disentanglement_scores(mixed_code, gt, seed=5, metrics=("mig",), scale=0.005)["mig"]


def test_defaults_are_disentanglement_libs():
    assert METRICS == ("mig", "beta_vae", "factor_vae", "dci", "sap", "modularity_explicitness")
    assert DEFAULTS["beta_vae"] == {"batch_size": 64, "num_train": 10000, "num_eval": 5000}
    assert DEFAULTS["factor_vae"] == {
        "batch_size": 64,
        "num_train": 10000,
        "num_eval": 5000,
        "num_variance_estimate": 10000,
        "prune_threshold": 0.05,
    }
    for name in ("dci", "sap", "modularity_explicitness"):
        assert DEFAULTS[name]["num_train"] == 10000 and DEFAULTS[name]["num_test"] == 5000
    assert DEFAULTS["sap"]["continuous"] is False and DEFAULTS["modularity_explicitness"]["n_bins"] == 20


def test_dsprites_scores_on_a_handful_of_images():
    def centroid(images):  # a cheap analytic code: sprite area and centre
        im = images.reshape(-1, 64, 64)
        area = im.sum((1, 2))
        ys, xs = np.mgrid[:64, :64]
        return np.column_stack([area, (im * xs).sum((1, 2)) / area, (im * ys).sum((1, 2)) / area])

    result = dsprites_scores(centroid, metrics=("mig", "sap"), scale=0.001)  # 10 + 5 images
    assert result["settings"]["factor_names"] == list(FACTOR_NAMES)
    assert result["settings"]["sap"] == {"num_train": 10, "num_test": 5, "continuous": False}
    assert 0 <= result["mig"] <= 1 and 0 <= result["sap"] <= 1


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input_is_a_clear_error():
    gt = GroundTruthSampler(SIZES)
    z, f, zt, ft = matrices(BINARY, identity_code, 20, 10)
    with pytest.raises(DataError, match="codes_train has 20 rows but factors_train has 19"):
        dci(z, f[:-1], zt, ft)
    with pytest.raises(DataError, match="codes_train has 3 columns but codes_test has 2"):
        sap(z, f, zt[:, :2], ft)
    with pytest.raises(DataError, match="factors_train: factors must be integer"):
        sap(z, f + 0.5, zt, ft)
    with pytest.raises(DataError, match="codes_test: row 0, column 1 holds nan"):
        modularity_explicitness(z, f, np.where(np.arange(3) == 1, np.nan, zt), ft)
    with pytest.raises(DataError, match="at least 2 code dimensions"):
        sap(z[:, :1], f, zt[:, :1], ft)
    with pytest.raises(DataError, match="factor 0 takes a single value"):
        dci(z, np.column_stack([np.zeros(20, int), f[:, 1:]]), zt, ft)
    with pytest.raises(DataError, match="importance_matrix must hold finite non-negative"):
        dci_from_importance([[1.0, -1.0], [0.0, 1.0]])
    with pytest.raises(DataError, match="at least 2 code rows and 2 factor columns"):
        dci_from_importance([[1.0, 1.0]])
    with pytest.raises(
        DataError, match="encode returned codes of shape \\(40,\\) for 40 observations; expected \\(40, K\\)"
    ):
        beta_vae_score(lambda x: x[:, 0], gt, batch_size=8, num_train=5, num_eval=5)
    with pytest.raises(DataError, match="encode returned NaN"):
        factor_vae_score(lambda x: x * np.nan, gt, num_variance_estimate=10, num_train=2, num_eval=2)
    with pytest.raises(ConfigError, match="num_train must be a positive integer, got 0"):
        beta_vae_score(identity_code, gt, num_train=0)
    with pytest.raises(ConfigError, match="batch_size and num_variance_estimate must be at least 2"):
        factor_vae_score(identity_code, gt, batch_size=1)
    with pytest.raises(ConfigError, match="prune_threshold must be a finite number >= 0"):
        factor_vae_score(identity_code, gt, prune_threshold=-1)
    with pytest.raises(ConfigError, match="seed must be an integer"):
        disentanglement_scores(identity_code, gt, seed=-1)
    with pytest.raises(ConfigError, match=r"metrics must be a non-empty subset of .*; got \['irs'\]"):
        disentanglement_scores(identity_code, gt, metrics=("irs",))
    with pytest.raises(ConfigError, match="scale must be a positive finite number, got 0"):
        dsprites_scores(identity_code, scale=0)
    with pytest.raises(ConfigError, match="sampler must be a GroundTruthSampler; list has no num_factors"):
        beta_vae_score(identity_code, [])
    with pytest.raises(ConfigError, match="factor_sizes\\[1\\] must be a positive integer, got 0"):
        GroundTruthSampler((2, 0))


def test_report_table_of_the_scores():
    from aekit.report import _scores_section

    scores = {
        "mig": 0.25,
        "beta_vae": {"train_accuracy": 0.9, "eval_accuracy": 0.875},
        "factor_vae": {"train_accuracy": 0.7, "eval_accuracy": 0.625, "num_active_dims": 3},
        "sap": 0.125,
        "modularity": 0.5,
        "explicitness": {"train": 0.8, "test": None},  # undefined: no row
        "settings": {"seed": 0, "scale": 0.01},
    }
    section = _scores_section({"disentanglement": scores})
    assert section is not None and section.id == "disentanglement-scores"
    assert section.body.count("<tr>") == 1 + 5  # header + a row a score present (no DCI, no explicitness)
    for value in ("0.875", "0.625", "0.125", "0.5", "0.25", "<b>0.01</b>"):
        assert value in section.body
    assert "Explicitness" not in section.body and "DCI" not in section.body
    assert _scores_section({"mig": {}}) is None and _scores_section(None) is None
