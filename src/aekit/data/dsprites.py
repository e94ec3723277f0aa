"""dSprites, generated: 2-D shapes from five independent factors (Matthey et al. 2017).

dSprites is the data set of the beta-VAE paper (Higgins et al. 2017, "beta-VAE:
Learning Basic Visual Concepts with a Constrained Variational Framework", ICLR):
64x64 binary images of one white sprite on black, one image for each of the
3 x 6 x 40 x 32 x 32 = 737,280 combinations of

========  ===========  ==========================================================
index     name         values
========  ===========  ==========================================================
0         shape        0 = square, 1 = ellipse, 2 = heart (0-based; the original
                       ``latents_values`` count them 1, 2, 3)
1         scale        6 values linearly spaced in [0.5, 1]
2         orientation  40 angles linearly spaced in [0, 2 pi), endpoint excluded,
                       in radians, counterclockwise (the original includes
                       2 pi, which repeats angle 0)
3         pos_x        32 values linearly spaced in [0, 1], left to right
4         pos_y        32 values linearly spaced in [0, 1], top to bottom
========  ===========  ==========================================================

The images are rendered here instead of downloaded: the whole set would be
3 GB as bytes (12 GB as float32), so :func:`render` draws any chosen
combinations, chunk by chunk, and :func:`dsprites` wraps a seeded random subset
in a :class:`~aekit.data.Dataset`.

Geometry. The original rendering code is not published; this one matches its
look. Each shape lies in the unit disc of its own frame (square of side
:math:`\\sqrt 2`, ellipse of semi-axes 1 and 1/2, the heart
:math:`(x^2 + y^2 - 1)^3 - x^2 y^3 \\le 0` centred on its bounding box and
shrunk into the disc), and that disc becomes one of radius ``10 * scale``
pixels: at scale 1 the square is 14 px wide, the ellipse 20 x 10 px. The
sprite's centre moves over [11, 53] px on each axis, so that even the largest
sprite leaves the outermost row and column of pixels empty. A pixel is on when
its centre lies inside the rotated, scaled, translated shape: no anti-aliasing,
as in the original.

Canonical order is the original's: the last factor (pos_y) varies fastest,
then pos_x, orientation, scale and shape, so that row ``i`` of the full set has
the factor indices ``numpy.unravel_index(i, FACTOR_SIZES)``.
"""

from __future__ import annotations

import numbers

import numpy as np

from aekit.data.readers import Dataset
from aekit.errors import ConfigError, DataError

__all__ = [
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "FACTOR_VALUES",
    "IMAGE_SIZE",
    "N_IMAGES",
    "SHAPE_NAMES",
    "dsprites",
    "factor_values",
    "render",
    "sample_factors",
]

IMAGE_SIZE = 64
FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "pos_x", "pos_y")
SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)
N_IMAGES = 737_280

#: The value of each factor index, one array per factor (shape: the 0-based index itself).
FACTOR_VALUES: tuple[np.ndarray, ...] = (
    np.arange(3, dtype=np.float64),
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2.0 * np.pi, 40, endpoint=False),
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)
for _values in FACTOR_VALUES:
    _values.flags.writeable = False

_RADIUS_PX = 10.0  # radius of the disc holding a sprite of scale 1
_CENTRE_LOW, _CENTRE_HIGH = _RADIUS_PX + 1.0, IMAGE_SIZE - _RADIUS_PX - 1.0
_WINDOW = 22  # side of the pixel window around the centre that holds any sprite
_SQUARE_HALF_SIDE = 2.0**-0.5
_ELLIPSE_MINOR = 0.5
# The implicit heart spans x in [-1.139, 1.139], y in [-1, 1.236]: its bounding-box centre is at
# y = 0.118, and every point of it lies within 1.3367 of that centre.
_HEART_CENTRE_Y, _HEART_RADIUS = 0.118, 1.3367
_CHUNK = 4096


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points ``(u, v)`` of the sprite's frame (unit disc) lie in ``shape``."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF_SIDE
    if shape == 1:
        w = v / _ELLIPSE_MINOR
        return u * u + w * w <= 1.0
    x = u * _HEART_RADIUS
    x2 = x * x
    y = v * _HEART_RADIUS + _HEART_CENTRE_Y
    y2 = y * y
    t = x2 + y2 - 1.0
    return t * t * t <= x2 * y2 * y  # products: much faster than ** 3


def _render_shape(shape: int, factors: np.ndarray, out: np.ndarray, image: np.ndarray) -> None:
    """Draw sprites of one ``shape`` with ``factors`` (b, 5) into the images ``out[image]``."""
    _, scale, angle, pos_x, pos_y = factors.T
    radius = FACTOR_VALUES[1][scale] * _RADIUS_PX
    centre_x = _CENTRE_LOW + FACTOR_VALUES[3][pos_x] * (_CENTRE_HIGH - _CENTRE_LOW)
    centre_y = _CENTRE_LOW + FACTOR_VALUES[4][pos_y] * (_CENTRE_HIGH - _CENTRE_LOW)
    left = np.floor(centre_x).astype(np.intp) - _WINDOW // 2
    top = np.floor(centre_y).astype(np.intp) - _WINDOW // 2
    steps = np.arange(_WINDOW)
    # Pixel centres of each window relative to the sprite centre, in sprite radii; y points up.
    dx = (left[:, None] + steps + 0.5 - centre_x[:, None]) / radius[:, None]
    dy = (centre_y[:, None] - top[:, None] - steps - 0.5) / radius[:, None]
    cos, sin = np.cos(FACTOR_VALUES[2][angle])[:, None, None], np.sin(FACTOR_VALUES[2][angle])[:, None, None]
    # Rotating the sprite by +angle = rotating the pixels by -angle into the sprite's frame.
    dx, dy = dx[:, None, :], dy[:, :, None]
    on = _inside(shape, cos * dx + sin * dy, cos * dy - sin * dx)
    out[image[:, None, None], top[:, None, None] + steps[:, None], left[:, None, None] + steps] = on


def _render_chunk(factors: np.ndarray, out: np.ndarray) -> None:
    """Draw the sprites of ``factors`` (b, 5) into the zeroed images ``out`` (b, 64, 64)."""
    for shape in range(len(SHAPE_NAMES)):
        image = np.flatnonzero(factors[:, 0] == shape)
        if len(image):
            _render_shape(shape, factors[image], out, image)


def _check_factors(factors) -> np.ndarray:
    """Validate an (n, 5) array of factor indices and return it as intp."""
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES):
        raise DataError(f"dsprites factors must have shape (n, 5), got {factors.shape}")
    if factors.dtype.kind not in "iu":
        raise DataError(f"dsprites factors must be integer indices, got dtype {factors.dtype}")
    bad = (factors < 0) | (factors >= np.array(FACTOR_SIZES))
    if bad.any():
        row, col = divmod(int(bad.argmax()), len(FACTOR_SIZES))
        raise DataError(
            f"dsprites factors: row {row} has {FACTOR_NAMES[col]} index {factors[row, col]}, "
            f"outside 0..{FACTOR_SIZES[col] - 1}"
        )
    return factors.astype(np.intp, copy=False)


def render(factors, *, dtype=np.float32, chunk_size: int = _CHUNK) -> np.ndarray:
    """Draw the dSprites images of the given factor combinations.

    Parameters
    ----------
    factors : array_like of int, shape (n, 5)
        Factor indices per image, in :data:`FACTOR_NAMES` order (shape, scale,
        orientation, pos_x, pos_y), each in ``0..FACTOR_SIZES[j] - 1``.
    dtype : numpy dtype, default float32
        Type of the returned pixels (0 and 1); ``bool`` or ``uint8`` take 4
        times less memory.
    chunk_size : int, default 4096
        Images drawn at once; the work memory is about 50 kB per image of a chunk.

    Returns
    -------
    numpy.ndarray
        ``(n, 4096)`` rows, the 64x64 images flattened row-major (row 0 at the top).

    Raises
    ------
    DataError
        ``factors`` is not an (n, 5) integer array, or an index is out of range.
    ConfigError
        ``chunk_size`` is not a positive integer.
    """
    factors = _check_factors(factors)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    images = np.empty((len(factors), IMAGE_SIZE * IMAGE_SIZE), dtype=dtype)
    for start in range(0, len(factors), chunk_size):
        chunk = factors[start : start + chunk_size]
        # Scattered writes go to a small byte buffer; the conversion to dtype is one sequential copy.
        buffer = np.zeros((len(chunk), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        _render_chunk(chunk, buffer)
        images[start : start + len(chunk)] = buffer.reshape(len(chunk), -1)
    return images


def factor_values(factors) -> np.ndarray:
    """Map factor indices to factor values (:data:`FACTOR_VALUES`).

    Parameters
    ----------
    factors : array_like of int, shape (n, 5)
        Factor indices, as from :func:`sample_factors`.

    Returns
    -------
    numpy.ndarray
        ``(n, 5)`` float64: shape index (0, 1, 2), scale, orientation (radians),
        pos_x, pos_y.

    Raises
    ------
    DataError
        As for :func:`render`.
    """
    factors = _check_factors(factors)
    return np.stack([values[factors[:, j]] for j, values in enumerate(FACTOR_VALUES)], axis=1)


def sample_factors(n: int | None = None, seed: int = 0) -> np.ndarray:
    """Factor indices of ``n`` distinct combinations drawn at random, or of all of them.

    Parameters
    ----------
    n : int, optional
        Number of combinations, 1 to 737,280, drawn without replacement by
        ``numpy.random.default_rng(seed)`` and returned in canonical order.
        None gives all 737,280 in canonical order (pos_y varies fastest).
    seed : int, default 0
        Seed of the draw (unused when ``n`` is None).

    Returns
    -------
    numpy.ndarray
        ``(n, 5)`` int64 factor indices (shape, scale, orientation, pos_x, pos_y).

    Raises
    ------
    ConfigError
        ``n`` is not an integer in 1..737280.
    """
    if n is None:
        rows = np.arange(N_IMAGES)
    elif isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= N_IMAGES:
        raise ConfigError(f"dsprites n must be an integer from 1 to {N_IMAGES} or None, got {n!r}")
    else:
        rows = np.sort(np.random.default_rng(seed).choice(N_IMAGES, size=int(n), replace=False))
    return np.stack(np.unravel_index(rows, FACTOR_SIZES), axis=1).astype(np.int64)


def dsprites(n: int | None = None, seed: int = 0) -> Dataset:
    """A seeded random subset of dSprites (or all of it) as a :class:`~aekit.data.Dataset`.

    The rows are the images of ``sample_factors(n, seed)``, in that order, so
    that call gives all five factor indices of each row; :func:`factor_values`
    turns them into values.

    Parameters
    ----------
    n : int, optional
        Number of distinct images, 1 to 737,280. None renders all 737,280,
        which takes 12 GB as float32: prefer a subset, or :func:`render` with
        a smaller dtype.
    seed : int, default 0
        Seed choosing the subset.

    Returns
    -------
    Dataset
        ``x``: ``(n, 4096)`` float32 pixels in {0, 1}; ``y``: the shape index
        (0 square, 1 ellipse, 2 heart); ``image_shape`` ``(1, 64, 64)``;
        source ``"dsprites"``.

    Raises
    ------
    ConfigError
        ``n`` is not an integer in 1..737280.

    Examples
    --------
    >>> from aekit.data.dsprites import dsprites
    >>> ds = dsprites(n=1000, seed=1)
    >>> ds.x.shape, ds.image_shape
    ((1000, 4096), (1, 64, 64))
    """
    factors = sample_factors(n, seed)
    return Dataset(render(factors), factors[:, 0], (1, IMAGE_SIZE, IMAGE_SIZE), "dsprites")
