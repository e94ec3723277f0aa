"""dSprites, generated: the factor grid, the rendering geometry and the built-in loader."""

import itertools
import math

import numpy as np
import pytest

from aekit.data import BUILTIN_DATASETS, builtin, load_data, load_splits
from aekit.data.dsprites import (
    FACTOR_SIZES,
    FACTOR_VALUES,
    IMAGE_SIZE,
    N_IMAGES,
    dsprites,
    factor_values,
    render,
    sample_factors,
)
from aekit.errors import ConfigError, DataError

SQUARE, ELLIPSE, HEART = 0, 1, 2


def image(shape=SQUARE, scale=5, orientation=0, pos_x=16, pos_y=16):
    """One rendered image as a (64, 64) array."""
    return render([[shape, scale, orientation, pos_x, pos_y]]).reshape(IMAGE_SIZE, IMAGE_SIZE)


def test_factor_grid():
    assert FACTOR_SIZES == (3, 6, 40, 32, 32) and N_IMAGES == math.prod(FACTOR_SIZES) == 737_280
    assert [len(v) for v in FACTOR_VALUES] == list(FACTOR_SIZES)
    np.testing.assert_array_equal(FACTOR_VALUES[0], [0, 1, 2])
    np.testing.assert_allclose(FACTOR_VALUES[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    np.testing.assert_allclose(np.diff(FACTOR_VALUES[2]), 2 * np.pi / 40)
    assert FACTOR_VALUES[2][0] == 0 and FACTOR_VALUES[2][-1] < 2 * np.pi
    for positions in FACTOR_VALUES[3:]:
        np.testing.assert_allclose(positions, np.arange(32) / 31)


def test_full_set_holds_each_combination_once_in_canonical_order():
    factors = sample_factors()
    assert factors.shape == (N_IMAGES, 5) and factors.dtype == np.int64
    # Canonical order (pos_y fastest) and exactly one row per combination.
    np.testing.assert_array_equal(np.ravel_multi_index(factors.T, FACTOR_SIZES), np.arange(N_IMAGES))
    np.testing.assert_array_equal(factors[:2], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(factors.max(0), np.array(FACTOR_SIZES) - 1)


def test_factor_values():
    values = factor_values([[2, 5, 10, 31, 0]])
    np.testing.assert_allclose(values, [[2, 1.0, np.pi / 2, 1.0, 0.0]])


def test_subset_is_seeded():
    a = sample_factors(1000, seed=3)
    np.testing.assert_array_equal(a, sample_factors(1000, seed=3))
    assert not np.array_equal(a, sample_factors(1000, seed=4))
    flat = np.ravel_multi_index(a.T, FACTOR_SIZES)
    assert len(np.unique(flat)) == 1000 and (np.diff(flat) > 0).all()  # distinct, canonical order
    ds = dsprites(200, seed=5)
    np.testing.assert_array_equal(ds.x, dsprites(200, seed=5).x)
    np.testing.assert_array_equal(ds.y, sample_factors(200, seed=5)[:, 0])
    assert not np.array_equal(ds.x, dsprites(200, seed=6).x)


def test_images_are_binary_non_empty_and_chunking_free():
    factors = sample_factors(300, seed=1)
    x = render(factors)
    assert x.shape == (300, IMAGE_SIZE * IMAGE_SIZE) and x.dtype == np.float32
    assert set(np.unique(x)) == {0.0, 1.0} and (x.sum(1) > 0).all()
    np.testing.assert_array_equal(render(factors, chunk_size=7, dtype=np.uint8), x)
    ds = dsprites(50, seed=2)
    assert ds.image_shape == (1, 64, 64) and ds.source == "dsprites" and ds.x.dtype == np.float32


def test_largest_sprites_at_extreme_positions_stay_inside():
    corners = list(itertools.product([0, 31], [0, 31]))
    factors = [[s, 5, o, x, y] for s in range(3) for o in range(40) for x, y in corners]
    images = render(factors).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert border.sum() == 0  # nothing reaches the outermost pixels, so nothing is clipped
    centred = render([[s, 5, o, 16, 16] for s, _, o, _, _ in factors]).sum(1)
    np.testing.assert_allclose(images.sum((1, 2)), centred, rtol=0.15)


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_larger_scale_has_more_pixels(shape):
    for orientation in (0, 7, 25):
        counts = [image(shape, scale, orientation).sum() for scale in range(6)]
        assert all(a < b for a, b in zip(counts, counts[1:])), counts


def test_rotation_of_the_square():
    upright = image(SQUARE, orientation=0)
    assert not np.array_equal(upright, image(SQUARE, orientation=1))  # one step of 2 pi / 40
    quarter_turn = image(SQUARE, orientation=10)  # 90 degrees: the same square
    assert abs(quarter_turn.sum() - upright.sum()) <= 0.03 * upright.sum()
    assert (quarter_turn != upright).sum() <= 4
    diagonal = image(SQUARE, orientation=5)  # 45 degrees: a diamond, taller than the square
    assert diagonal.any(1).sum() > upright.any(1).sum()


def test_positions_move_right_and_down_and_heart_is_upright():
    ys, xs = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]

    def centre(img):
        return (img * xs).sum() / img.sum(), (img * ys).sum() / img.sum()

    left, right = centre(image(pos_x=0)), centre(image(pos_x=31))
    top, bottom = centre(image(pos_y=0)), centre(image(pos_y=31))
    assert right[0] - left[0] > 35 and abs(right[1] - left[1]) < 1
    assert bottom[1] - top[1] > 35 and abs(bottom[0] - top[0]) < 1
    heart = image(HEART)
    rows = np.flatnonzero(heart.any(1))
    upper = heart[rows[0] : rows[0] + len(rows) // 2]
    assert upper.sum() > heart.sum() / 2  # lobes at the top, point at the bottom


def test_bad_arguments():
    with pytest.raises(DataError, match=r"shape \(n, 5\)"):
        render(np.zeros((2, 4), dtype=int))
    with pytest.raises(DataError, match="integer indices"):
        render(np.zeros((2, 5)))
    with pytest.raises(DataError, match=r"row 1 has orientation index 40, outside 0\.\.39"):
        render([[0, 0, 0, 0, 0], [0, 0, 40, 0, 0]])
    with pytest.raises(ConfigError, match="chunk_size"):
        render([[0, 0, 0, 0, 0]], chunk_size=0)
    for n in (0, N_IMAGES + 1, 2.5, True):
        with pytest.raises(ConfigError, match="dsprites n must be an integer"):
            sample_factors(n)


def test_builtin(monkeypatch):
    assert "dsprites" in BUILTIN_DATASETS and builtin.DSPRITES_BUILTIN_SIZE == 50_000
    monkeypatch.setattr(builtin, "DSPRITES_BUILTIN_SIZE", 300)  # the default takes seconds
    ds = load_data("dsprites")
    assert len(ds) == 300 and ds.image_shape == (1, 64, 64) and ds.source == "dsprites"
    np.testing.assert_array_equal(ds.x, dsprites(300, seed=builtin.DSPRITES_BUILTIN_SEED).x)
    assert set(np.unique(ds.y)) <= {0, 1, 2}
    splits = load_splits("dsprites", val_fraction=0.1, test_fraction=0.2)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (210, 30, 60)
