"""Mutual Information Gap (Chen et al. 2018), as disentanglement_lib computes it."""

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from aekit.errors import ConfigError, DataError
from aekit.metrics import (
    discrete_entropy,
    discrete_mutual_info,
    discretize,
    dsprites_mig,
    mutual_information_gap,
)

SIZES = (3, 5, 4, 10)


def grid_factors(nuisance=7):
    """Every combination of SIZES once per nuisance level: factors (N, 4) and nuisance (N,)."""
    grid = np.indices((*SIZES, nuisance)).reshape(len(SIZES) + 1, -1).T
    return grid[:, :-1], grid[:, -1]


def disentangled_codes(factors, nuisance, seed=0):
    """Dim k is a monotone function of factor ORDER[k]; then noise dims and a constant dim."""
    rng = np.random.default_rng(seed)
    order = [2, 0, 3, 1]
    signal = [(factors[:, j] + 1.0) ** 1.2 * (1 + j) for j in order]  # one bin per value
    noise = rng.normal(size=(nuisance.max() + 1, 2))[nuisance]  # independent of every factor
    return np.column_stack([*signal, noise, np.full(len(factors), 0.5)])


def reference_mig(codes, factors, n_bins=20):
    """disentanglement_lib's _compute_mig, on its transposed (dims, examples) layout."""
    mus, ys = codes.T, factors.T
    discretized = np.zeros_like(mus)
    for i in range(mus.shape[0]):
        discretized[i, :] = np.digitize(mus[i, :], np.histogram(mus[i, :], n_bins)[1][:-1])
    m = np.array([[mutual_info_score(y, mu) for y in ys] for mu in discretized])
    entropy = np.array([mutual_info_score(y, y) for y in ys])
    top = np.sort(m, axis=0)[::-1]
    return np.mean((top[0] - top[1]) / entropy)


def test_perfectly_disentangled_code_scores_one():
    factors, nuisance = grid_factors()
    result = mutual_information_gap(disentangled_codes(factors, nuisance), factors)
    assert result["mig"] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(result["gaps"], 1.0, atol=1e-6)
    np.testing.assert_allclose(result["entropy"], np.log(SIZES))
    assert np.array(result["mutual_info"]).shape == (7, 4)
    # normalized by the factors' entropies: dim k holds factor ORDER[k] whole, nothing else
    expected = np.zeros((7, 4))
    expected[[0, 1, 2, 3], [2, 0, 3, 1]] = 1.0
    np.testing.assert_allclose(result["normalized_mutual_info"], expected, atol=1e-6)


def test_normalized_mutual_info_gives_the_gaps():
    rng = np.random.default_rng(3)
    factors = np.column_stack([rng.integers(0, s, 5000) for s in SIZES])
    codes = disentangled_codes(factors, rng.integers(0, 7, 5000)) + rng.normal(0, 0.7, (5000, 7))
    result = mutual_information_gap(codes, factors)
    m = np.array(result["normalized_mutual_info"])
    np.testing.assert_allclose(m, np.array(result["mutual_info"]) / np.array(result["entropy"]), rtol=1e-12)
    top = np.sort(m, axis=0)[::-1]
    np.testing.assert_allclose(result["gaps"], top[0] - top[1], rtol=1e-12)
    assert 0.05 < result["mig"] < 0.95  # noisy enough that the gaps are partial


def test_codes_shuffled_across_examples_score_near_zero():
    rng = np.random.default_rng(1)
    factors = np.column_stack([rng.integers(0, s, 20000) for s in SIZES])
    codes = disentangled_codes(factors, rng.integers(0, 7, 20000))
    assert mutual_information_gap(codes, factors)["mig"] == pytest.approx(1.0, abs=0.02)
    assert mutual_information_gap(codes[rng.permutation(len(codes))], factors)["mig"] < 0.05


def test_two_dims_sharing_a_factor_leave_no_gap():
    factors, nuisance = grid_factors()
    codes = disentangled_codes(factors, nuisance)
    codes = np.column_stack([codes, 2.0 - codes[:, 1]])  # a second copy of factor 0
    gaps = mutual_information_gap(codes, factors)["gaps"]
    assert gaps[0] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(gaps[1:], 1.0, atol=1e-6)


def test_matches_disentanglement_lib_on_random_data():
    rng = np.random.default_rng(2)
    factors = np.column_stack([rng.integers(0, s, 3000) for s in SIZES])
    codes = (factors @ rng.normal(size=(4, 6)) + rng.normal(size=(3000, 6))).astype(np.float32)
    ours = mutual_information_gap(codes, factors)["mig"]
    assert ours == pytest.approx(reference_mig(codes, factors), abs=1e-12)
    assert 0 < ours < 1


def test_discretize_follows_numpy_histogram():
    codes = np.random.default_rng(3).normal(size=(1000, 3))
    bins = discretize(codes, n_bins=20)
    assert bins.dtype == np.int64 and bins.min() == 1 and bins.max() == 20
    for k in range(3):
        np.testing.assert_array_equal(np.bincount(bins[:, k] - 1, minlength=20),
                                      np.histogram(codes[:, k], 20)[0])
    np.testing.assert_array_equal(discretize(np.array([[0, 5], [1, 5], [2, 5]]), 2), [[1, 2], [2, 2], [2, 2]])


def test_entropy_and_mutual_info():
    factors, _ = grid_factors(nuisance=1)
    np.testing.assert_allclose(discrete_entropy(factors), np.log(SIZES))
    m = discrete_mutual_info(factors[:, [1, 0]], factors)
    np.testing.assert_allclose(m, [[0, np.log(5), 0, 0], [np.log(3), 0, 0, 0]], atol=1e-12)


def test_single_valued_factor_is_left_out():
    factors, nuisance = grid_factors()
    factors = np.column_stack([factors, np.zeros(len(factors), dtype=int)])
    result = mutual_information_gap(disentangled_codes(factors, nuisance), factors)
    assert result["gaps"][4] is None and result["entropy"][4] == 0
    assert result["mig"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(DataError, match="every factor takes a single value"):
        mutual_information_gap(np.ones((5, 2)), np.zeros((5, 2), dtype=int))


def test_invalid_inputs():
    codes, factors = np.zeros((10, 3)), np.zeros((10, 2), dtype=int)
    with pytest.raises(DataError, match="codes have 9 rows but factors have 10"):
        mutual_information_gap(codes[:9], factors)
    with pytest.raises(DataError, match="at least 2 dimensions, got 1"):
        mutual_information_gap(codes[:, :1], factors)
    nan = codes.copy()
    nan[4, 2] = np.nan
    with pytest.raises(DataError, match="row 4, column 2 holds nan"):
        mutual_information_gap(nan, factors)
    with pytest.raises(DataError, match=r"codes must be a 2-D array .* got shape \(10,\)"):
        mutual_information_gap(codes[:, 0], factors)
    with pytest.raises(DataError, match="integer class indices"):
        mutual_information_gap(codes, factors + 0.5)
    with pytest.raises(ConfigError, match="n_bins must be a positive integer"):
        mutual_information_gap(codes, factors, n_bins=0)


def centre_of_mass_encoder(x):
    """Codes (x centre, y centre, pixel count) of dSprites images: position and size."""
    images = x.reshape(-1, 64, 64)
    ys, xs = np.mgrid[:64, :64]
    mass = images.sum((1, 2))
    return np.column_stack([(images * xs).sum((1, 2)) / mass, (images * ys).sum((1, 2)) / mass, mass])


def test_dsprites_mig_of_a_position_and_size_encoder():
    result = dsprites_mig(centre_of_mass_encoder, n=2000, seed=0, batch_size=512)
    assert result["factor_names"] == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    assert result["mig"] > 0.3
    gaps = dict(zip(result["factor_names"], result["gaps"]))
    assert min(gaps["pos_x"], gaps["pos_y"]) > 0.6 and gaps["orientation"] < 0.05
    with pytest.raises(DataError, match=r"encode returned codes of shape \(10,\) for 10 images"):
        dsprites_mig(lambda x: x[:, 0], n=10)
    with pytest.raises(ConfigError, match="batch_size"):
        dsprites_mig(centre_of_mass_encoder, n=10, batch_size=0)
