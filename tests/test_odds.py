"""The default outlier detector (aekit.ensemble): row-order invariance, per-feature contributions,
the contamination="auto" and false-positive-rate thresholds, mixed tables, scikit-learn's checks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit
from aekit.anomaly import detection_offset
from aekit.cli import main
from aekit.ensemble import EnsembleConfig, fit_ensemble
from aekit.errors import ConfigError, DataError
from aekit.sklearn import AutoencoderOutlierDetector

#: Brief members: the properties below hold for any training length.
FAST = {"members": 3}
#: scikit-learn's checks fit dozens of times.
CHECKS = {"members": 2, "max_steps": 20}


def _table(n=240, d=5, outliers=12, seed=0):
    """Correlated normal rows (a 2-d structure in d features) and ``outliers`` rows off it."""
    mixing = np.random.default_rng(123).normal(size=(2, d))  # one structure for every seed
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) @ mixing + 0.1 * rng.normal(size=(n, d))
    X[:outliers] = rng.normal(scale=3.0, size=(outliers, d))
    return X, np.r_[np.ones(outliers), np.zeros(n - outliers)]


@parametrize_with_checks([AutoencoderOutlierDetector(**CHECKS)])
def test_scikit_learn_checks_of_the_default_detector(estimator, check):
    check(estimator)


#: A short training for the properties of the ensemble that hold at any length.
SHORT = EnsembleConfig(members=3, max_steps=40)


def test_score_is_invariant_to_the_order_of_the_training_rows():
    X, _ = _table()
    perm = np.random.default_rng(1).permutation(len(X))
    a = fit_ensemble(X, seed=0, config=SHORT)
    b = fit_ensemble(X[perm], seed=0, config=SHORT)
    np.testing.assert_array_equal(a.score(X), b.score(X))
    np.testing.assert_array_equal(a.oob_scores, b.oob_scores)
    c = fit_ensemble(X, seed=1, config=SHORT)  # the seed does matter
    assert not np.array_equal(a.score(X), c.score(X))


def test_scores_are_on_a_unit_free_scale():
    X, _ = _table()
    ens = fit_ensemble(X, seed=0, config=SHORT)
    assert np.median(ens.training_scores) == pytest.approx(1.0, abs=0.1)  # about 1 for a typical row
    scaled = fit_ensemble(1000.0 * X + 5.0, seed=0, config=SHORT)  # other units, same rows
    np.testing.assert_allclose(scaled.score(1000.0 * X + 5.0), ens.score(X), rtol=1e-3)


def test_ensemble_finds_the_outliers():
    X, y = _table()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, fit_ensemble(X, seed=0).score(X)) > 0.95


def test_feature_contributions_sum_to_the_score():
    X, _ = _table()
    det = AutoencoderOutlierDetector(random_state=0, **FAST).fit(X)
    shares = det.feature_scores(X)
    assert shares.shape == X.shape and (shares >= 0).all()
    np.testing.assert_allclose(shares.sum(axis=1), -det.score_samples(X), rtol=1e-12)
    # a row pushed off in feature 3 owes its score mostly to feature 3
    row = X[100:101].copy()
    row[0, 3] += 20.0
    assert int(np.argmax(det.feature_scores(row))) == 3
    single = AutoencoderOutlierDetector("ae", latent=2, hidden=(8,), epochs=3, random_state=0).fit(X)
    np.testing.assert_allclose(single.feature_scores(X).sum(axis=1), -single.score_samples(X), rtol=1e-3)
    vae = AutoencoderOutlierDetector("vae", latent=2, hidden=(8,), epochs=1, random_state=0).fit(X)
    with pytest.raises(ConfigError, match="not a sum over the features"):
        vae.feature_scores(X)


def test_contamination_auto_is_three_robust_deviations_above_the_median():
    X, y = _table()
    det = AutoencoderOutlierDetector(contamination="auto", random_state=0, **FAST).fit(X)
    logs = np.log(-det.score_samples(X))
    median = np.median(logs)
    assert np.log(-det.offset_) == pytest.approx(median + 3 * 1.4826 * np.median(np.abs(logs - median)))
    flagged = det.predict(X) == -1
    assert flagged[y == 1].mean() >= 0.9 and flagged[y == 0].mean() < 0.05
    np.testing.assert_array_equal(flagged, det.decision_function(X) < 0)


def test_false_positive_rate_threshold_holds_on_new_rows():
    """The threshold is the 1 - fpr quantile of the out-of-bag training scores, so new normal rows
    are flagged at about the rate asked for."""
    X, _ = _table(n=600, outliers=0)
    new, _ = _table(n=4000, outliers=0, seed=1)  # new rows of the same distribution
    det = AutoencoderOutlierDetector(threshold_fpr=0.1, random_state=0, **FAST).fit(X)
    assert -det.offset_ == pytest.approx(np.quantile(det.ensemble_.oob_scores, 0.9))
    rate = (det.predict(new) == -1).mean()
    assert abs(rate - 0.1) < 0.03
    with pytest.raises(ValueError, match="threshold_fpr"):
        AutoencoderOutlierDetector(threshold_fpr=1.5).fit(X)
    with pytest.raises(ConfigError, match="threshold_fpr"):
        detection_offset(np.ones(3), 0.1, threshold_fpr=0.0)
    with pytest.raises(ConfigError, match="contamination"):
        detection_offset(np.ones(3), "most")


def test_mixed_table_in_a_pipeline():
    """The README example: one-hot categorical columns and scaled numeric ones feed the detector."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 300
    size = rng.normal(10, 2, n)
    df = pd.DataFrame(
        {
            "size": size,
            "price": 3 * size + rng.normal(0, 1, n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "shop": rng.choice(["a", "b"], n),
        }
    )
    df.loc[:4, "price"] = 200.0  # five absurd prices
    pipe = make_pipeline(
        ColumnTransformer(
            [
                ("num", StandardScaler(), ["size", "price"]),
                ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["colour", "shop"]),
            ]
        ),
        AutoencoderOutlierDetector(contamination="auto", random_state=0),
    )
    labels = pipe.fit(df).predict(df)
    assert (labels[:5] == -1).all() and (labels[5:] == -1).mean() < 0.1
    shares = pipe[-1].feature_scores(pipe[0].transform(df[:5]))
    names = pipe[0].get_feature_names_out()
    assert {names[j] for j in shares.argmax(axis=1)} == {"num__price"}


def test_ensemble_recipe_checks_its_settings():
    with pytest.raises(ConfigError, match="trim"):
        fit_ensemble(np.ones((10, 2)), config=EnsembleConfig(trim=0.5))
    with pytest.raises(ConfigError, match="subsample"):
        fit_ensemble(np.ones((10, 2)), config=EnsembleConfig(subsample=1.0))
    with pytest.raises(DataError, match="at least 4 rows"):
        fit_ensemble(np.ones((3, 2)))
    with pytest.raises(DataError, match="NaN"):
        fit_ensemble(np.full((10, 2), np.nan))
    ens = fit_ensemble(np.random.default_rng(0).normal(size=(40, 3)), config=EnsembleConfig(members=2))
    with pytest.raises(DataError, match="3 features"):
        ens.score(np.ones((2, 4)))


def test_cli_per_feature(tmp_path, capsys):
    X, _ = _table(n=120)
    run = tmp_path / "run"
    aekit.fit(
        "ae", X.astype(np.float32), out=run, latent=2, hidden=(8,), epochs=2, seed=0, progress=False, figures=False
    )
    data = tmp_path / "x.npy"
    np.save(data, X.astype(np.float32))
    out = tmp_path / "shares.npy"
    assert main(["score", str(run), str(data), "-o", str(out), "--per-feature"]) == 0
    assert "per-feature contributions" in capsys.readouterr().out
    shares = np.load(out)
    assert shares.shape == X.shape
    np.testing.assert_allclose(shares.sum(axis=1), aekit.anomaly_scores(run, X.astype(np.float32)), rtol=1e-4)
    assert main(["score", str(run), str(data), "-o", str(tmp_path / "b.npy"), "--per-feature", "--complexity"]) == 2
    assert "do not combine" in capsys.readouterr().err


def test_report_lists_the_most_anomalous_rows(tmp_path):
    from aekit.report import report

    X, _ = _table(n=150)
    X[7, 2] += 40.0  # one row far off in feature 2
    csv = tmp_path / "x.csv"
    np.savetxt(csv, X, delimiter=",")
    aekit.fit(
        "ae",
        str(csv),
        out=tmp_path / "run",
        hidden=(8,),
        latent=2,
        epochs=3,
        scale="standard",
        val_fraction=0.0,
        test_fraction=0.0,
        progress=False,
        figures=False,
    )
    text = report(tmp_path / "run", evaluate=False).read_text()
    assert "Most anomalous rows" in text
    section = text.split("Most anomalous rows")[-1]  # the section (after the navigation's link)
    first = section.split("<tbody>", 1)[1].split("</tr>")[0]  # the first row of its table
    assert ">7<" in first and ">2 (" in first
