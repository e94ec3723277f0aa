"""Evaluation measures on NumPy arrays (no torch needed)."""

from __future__ import annotations

import numbers
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from aekit.errors import ConfigError, DataError


def reconstruction_errors(x: np.ndarray, reconstruction: np.ndarray) -> dict[str, float]:
    """Reconstruction error as Hinton & Salakhutdinov (2006) report it.

    Returns
    -------
    dict
        ``per_example_squared_error``: mean over examples of :math:`\\sum_i (\\hat x_i - x_i)^2`;
        ``mse``: mean squared error per value; ``rmse``.
    """
    x = np.asarray(x, dtype=np.float64)
    r = np.asarray(reconstruction, dtype=np.float64).reshape(x.shape)
    sq = (r - x) ** 2
    per = sq.reshape(len(x), -1).sum(1)
    mse = float(sq.mean())
    return {"per_example_squared_error": float(per.mean()), "mse": mse, "rmse": float(np.sqrt(mse))}


def pca_reconstruction_errors(train: np.ndarray, x: np.ndarray, n_components: int, seed: int = 0) -> dict[str, Any]:
    """Fit PCA with ``n_components`` on ``train`` and return :func:`reconstruction_errors` on ``x``."""
    from sklearn.decomposition import PCA

    k = min(n_components, train.shape[0], train.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):  # constant rows: no variance, 0 / 0 below
        pca = PCA(n_components=k, random_state=seed).fit(train)
    recon = pca.inverse_transform(pca.transform(x))
    out: dict[str, Any] = reconstruction_errors(x, recon)
    out["n_components"] = int(k)
    ratio = float(pca.explained_variance_ratio_.sum())
    out["explained_variance_ratio"] = ratio if np.isfinite(ratio) else None  # None: nothing to explain
    return out


#: How :class:`ResidualNorm` sums a residual: its squares or its absolute values.
RESIDUAL_ERRORS = ("squared", "absolute")


@dataclass(frozen=True)
class ResidualNorm:
    """How a reconstruction residual ``x - g(f(x))`` becomes one anomaly score per row.

    ``error="squared"`` (the default) sums the squared residual, ``"absolute"`` its absolute values:
    a few badly reconstructed values (a misplaced edge) weigh less against a residual spread over
    the whole row. ``smoothing`` is the standard deviation, in pixels, of a Gaussian filter applied
    to each image's residual first (scipy.ndimage.gaussian_filter over the last two axes of
    ``image_shape``, channels apart; mode "reflect"): what is left measures structure the model
    got wrong rather than pixel-scale texture and one-pixel shifts. The default, squared and
    unsmoothed, is the summed squared reconstruction error.

    Each row's score is the sum of :meth:`contributions`, so the per-feature shares sum to it.
    """

    error: str = "squared"
    smoothing: float = 0.0
    image_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.error not in RESIDUAL_ERRORS:
            raise ConfigError(f"error must be one of {', '.join(RESIDUAL_ERRORS)}, got {self.error!r}")
        s = self.smoothing
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not np.isfinite(s) or s < 0:
            raise ConfigError(f"smoothing must be a finite number >= 0 (pixels), got {s!r}")
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            bad = [v for v in shape if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1]
            if len(shape) not in (2, 3) or bad:
                raise ConfigError(
                    f"image_shape must be (H, W) or (C, H, W) positive integers, got {self.image_shape!r}"
                )
            object.__setattr__(self, "image_shape", tuple(int(v) for v in shape))

    @property
    def is_default(self) -> bool:
        """Squared and unsmoothed: the summed squared reconstruction error."""
        return self.error == "squared" and self.smoothing == 0

    def with_shape(self, image_shape: tuple[int, ...] | None) -> ResidualNorm:
        """This norm with ``image_shape`` where it has none of its own."""
        if self.image_shape is not None or image_shape is None:
            return self
        return ResidualNorm(self.error, self.smoothing, tuple(image_shape))

    def describe(self) -> str:
        """The score in words, e.g. "absolute reconstruction error, Gaussian-smoothed (sigma 1 px)"."""
        words = f"{self.error} reconstruction error"
        return words + (f", Gaussian-smoothed (sigma {self.smoothing:g} px)" if self.smoothing else "")

    def check_width(self, n_features: int) -> None:
        """:class:`ConfigError` unless this norm can sum rows of ``n_features`` values: with smoothing,
        an image shape that holds exactly that many."""
        if not self.smoothing:
            return
        if self.image_shape is None:
            raise ConfigError(
                "smoothing needs the image shape of the rows: the model's data had none; give image_shape"
            )
        if int(np.prod(self.image_shape)) != n_features:
            raise ConfigError(
                f"image_shape {self.image_shape} holds {int(np.prod(self.image_shape))} values, the rows {n_features}"
            )

    def contributions(self, residual: np.ndarray) -> np.ndarray:
        """Each value's share of its row's score, shape (rows, features), in ``residual``'s dtype."""
        r = np.asarray(residual)
        if r.ndim != 2:
            raise DataError(f"a residual is a 2-D array (rows, features), got shape {r.shape}")
        self.check_width(r.shape[1])
        if self.smoothing and self.image_shape is not None:  # (check_width: smoothing has a shape)
            from scipy.ndimage import gaussian_filter

            images = r.reshape(len(r), -1, *self.image_shape[-2:])
            sigma = (0, 0, self.smoothing, self.smoothing)
            r = gaussian_filter(images, sigma, mode="reflect", truncate=4.0).reshape(r.shape)
        return r * r if self.error == "squared" else np.abs(r)

    def scores(self, residual: np.ndarray) -> np.ndarray:
        """One score per row: the sum of :meth:`contributions`."""
        return self.contributions(residual).sum(1)


#: The largest PSNR reported (dB): an example reconstructed exactly (MSE 0) gets this value, so
#: that means over examples stay finite. Float32 rounding alone already gives about 140 dB on
#: data in [0, 1]; anything above 100 dB is an exact reconstruction for practical purposes.
PSNR_MAX_DB = 100.0


def input_complexity(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """The input complexity of each row, in bits: the size of its zlib-compressed (level 9) 8-bit
    quantization over ``[low, high]``.

    This is the complexity estimate of Serra et al. (2020, "Input complexity and out-of-distribution
    detection with likelihood-based generative models", ICLR), who correct a model's outlier score
    by the length of the input under a generic lossless compressor: simple inputs (few strokes, a
    plain background) are reconstructed and modelled well by any model and look typical by
    their raw scores alone. A value is mapped to ``round(255 * (v - low) / (high - low))``,
    clipped to 0..255, and each row's bytes are compressed on their own.

    Parameters
    ----------
    x : array_like, shape (N, D)
        Rows in their raw units (e.g. pixels 0-255).
    low, high : float
        The data range quantized to 0 and 255 (e.g. the training data's min and max); values
        outside it are clipped. With ``high <= low`` every value maps to 0.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` float64 sizes in bits (positive).

    Raises
    ------
    DataError
        ``x`` is not a 2-D numeric array, or holds NaN or infinite values; ``low`` or ``high`` is not finite.
    """
    x = _check_matrix(x, "x")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError("input_complexity: x holds NaN or infinite values")
    if not (np.isfinite(low) and np.isfinite(high)):
        raise DataError(f"input_complexity: the data range must be finite, got low={low}, high={high}")
    span = float(high) - float(low)
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), 4096):  # quantize a block at a time: bounded memory
        block = x[start : start + 4096]
        q = (
            np.zeros(block.shape, np.uint8)
            if span <= 0
            else np.clip(np.rint((block - low) * (255.0 / span)), 0, 255).astype(np.uint8)
        )
        out[start : start + len(q)] = [8 * len(zlib.compress(row.tobytes(), 9)) for row in q]
    return out


def psnr(clean: np.ndarray, estimate: np.ndarray, data_range: float = 1.0, reduction: str = "mean") -> Any:
    r"""Peak signal-to-noise ratio per example, in dB, the usual score of image denoising
    (as for denoising autoencoders in Xie, Xu & Chen 2012, NIPS):

    .. math:: \mathrm{PSNR}(x, \hat x) = 10 \log_{10} \frac{R^2}{\frac1d \sum_{i=1}^d (\hat x_i - x_i)^2}

    where :math:`R` is ``data_range`` (1.0 for data in [0, 1]) and :math:`d` the number of
    entries of an example. An example with MSE 0 gets :data:`PSNR_MAX_DB` (100 dB) instead of
    infinity, and so does any example above it: the PSNR is capped, consistently.

    Parameters
    ----------
    clean, estimate : ndarray, shape (N, ...)
        Reference examples and their estimates (same number of entries), along the first axis.
    data_range : float
        :math:`R`, the span of the data's possible values (> 0).
    reduction : {"mean", "none"}
        ``"mean"``: the mean over examples, a float; ``"none"``: the per-example values, shape (N,).
    """
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"unknown reduction {reduction!r}")
    x = np.asarray(clean, dtype=np.float64)
    mse = ((np.asarray(estimate, dtype=np.float64).reshape(x.shape) - x) ** 2).reshape(len(x), -1).mean(1)
    floor = data_range**2 * 10.0 ** (-PSNR_MAX_DB / 10.0)
    per = 10.0 * np.log10(data_range**2 / np.maximum(mse, floor))
    return per if reduction == "none" else float(per.mean())


# ---------------------------------------------------------------------------
# Mutual Information Gap (Chen et al. 2018)
# ---------------------------------------------------------------------------


def _check_matrix(a, name: str) -> np.ndarray:
    """Return ``a`` as a 2-D array with at least one row, or raise DataError naming it."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[0] == 0:
        raise DataError(f"{name} must be a 2-D array (N, columns) with N >= 1, got shape {a.shape}")
    return a


def _check_factors(factors) -> np.ndarray:
    """Validate discrete factors (N, F): integer dtype, or floats holding whole numbers."""
    factors = _check_matrix(factors, "factors")
    if factors.dtype.kind == "f":
        if not np.isfinite(factors).all() or (factors != np.round(factors)).any():
            raise DataError("factors must be integer class indices (discrete factors); got non-integer values")
        factors = factors.astype(np.int64)
    return factors


def _check_codes_factors(codes, factors, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate codes (N, K) and discrete factors (N, F) describing the same N examples."""
    codes, factors = _check_matrix(codes, name), _check_factors(factors)
    if len(codes) != len(factors):
        raise DataError(
            f"codes have {len(codes)} rows but factors have {len(factors)}; they must describe the same examples"
        )
    return codes, factors


def _check_positive_int(value, name: str) -> None:
    """Raise ConfigError unless ``value`` is a positive integer (bool excluded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def discretize(codes, n_bins: int = 20) -> np.ndarray:
    """Bin each code dimension into ``n_bins`` equal-width bins over its own range.

    This is disentanglement_lib's ``_histogram_discretize`` (Locatello et al. 2019),
    the discretization of its MIG: the bin edges of column ``k`` are those of
    ``numpy.histogram(codes[:, k], n_bins)`` and a value gets
    ``numpy.digitize(value, edges[:-1])``, so bins are numbered 1..``n_bins`` and
    the largest value falls in the last bin.

    Parameters
    ----------
    codes : array_like, shape (N, K)
        Finite code values.
    n_bins : int, default 20
        Bins per dimension.

    Returns
    -------
    numpy.ndarray
        ``(N, K)`` int64 bin numbers in 1..``n_bins``.

    Raises
    ------
    DataError
        ``codes`` is not a non-empty 2-D numeric array, or holds NaN or infinity.
    ConfigError
        ``n_bins`` is not a positive integer.
    """
    codes = _check_matrix(codes, "codes")
    if codes.dtype.kind != "f":  # float codes keep their dtype, hence the same edges as the reference
        codes = codes.astype(np.float64)
    _check_positive_int(n_bins, "n_bins")
    if not np.isfinite(codes).all():
        row, col = divmod(int((~np.isfinite(codes)).argmax()), codes.shape[1])
        raise DataError(f"codes: row {row}, column {col} holds {codes[row, col]}; codes must be finite")
    out = np.empty(codes.shape, dtype=np.int64)
    for k in range(codes.shape[1]):
        edges = np.histogram(codes[:, k], n_bins)[1]
        out[:, k] = np.digitize(codes[:, k], edges[:-1])
    return out


def discrete_mutual_info(codes_discrete, factors) -> np.ndarray:
    """Mutual information (nats) between each discrete code dimension and each factor.

    ``m[i, j] = sklearn.metrics.mutual_info_score(factors[:, j], codes_discrete[:, i])``,
    the empirical mutual information of the two label columns, as disentanglement_lib's
    ``discrete_mutual_info``.

    Parameters
    ----------
    codes_discrete : array_like of int, shape (N, K)
        Discrete codes, e.g. from :func:`discretize`.
    factors : array_like of int, shape (N, F)
        Discrete ground-truth factors (class indices).

    Returns
    -------
    numpy.ndarray
        ``(K, F)`` float64 mutual information.

    Raises
    ------
    DataError
        Not 2-D arrays, non-integer factors, or different numbers of rows.
    """
    from sklearn.metrics import mutual_info_score

    codes_discrete, factors = _check_codes_factors(codes_discrete, factors, "codes_discrete")
    m = np.empty((codes_discrete.shape[1], factors.shape[1]))
    for i in range(codes_discrete.shape[1]):
        for j in range(factors.shape[1]):
            m[i, j] = mutual_info_score(factors[:, j], codes_discrete[:, i])
    return m


def discrete_entropy(factors) -> np.ndarray:
    """Empirical entropy (nats) of each discrete factor: ``mutual_info_score(f, f)``.

    Parameters
    ----------
    factors : array_like of int, shape (N, F)
        Discrete ground-truth factors (class indices).

    Returns
    -------
    numpy.ndarray
        ``(F,)`` float64 entropies (0 for a factor with a single value).

    Raises
    ------
    DataError
        Not a 2-D array, or non-integer values.
    """
    from sklearn.metrics import mutual_info_score

    factors = _check_factors(factors)
    return np.array([mutual_info_score(f, f) for f in factors.T], dtype=np.float64)


def mutual_information_gap(codes, factors, n_bins: int = 20) -> dict[str, Any]:
    r"""Mutual Information Gap of a representation (Chen et al. 2018, "Isolating Sources of
    Disentanglement in Variational Autoencoders", NeurIPS), computed as disentanglement_lib does:

    .. math:: \mathrm{MIG} = \frac1F \sum_{j=1}^F \frac{I(z_{i_j}; v_j)
              - \max_{i \ne i_j} I(z_i; v_j)}{H(v_j)}, \qquad i_j = \arg\max_i I(z_i; v_j)

    Each code dimension :math:`z_i` is discretized into ``n_bins`` equal-width bins
    (:func:`discretize`), the mutual information :math:`I(z_i; v_j)` with each factor is the
    empirical one (:func:`discrete_mutual_info`), and :math:`H(v_j)` is the factor's empirical
    entropy (:func:`discrete_entropy`). A gap near 1 means one dimension alone holds factor
    :math:`v_j`; near 0, no dimension does, or two share it.

    A factor with a single value (entropy 0, e.g. a factor held fixed) is left out of the mean
    and its gap is None: disentanglement_lib would divide 0 by 0 and return NaN.

    Parameters
    ----------
    codes : array_like, shape (N, K)
        The codes of N examples (for a VAE, the posterior means), K >= 2.
    factors : array_like of int, shape (N, F)
        The discrete ground-truth factors of the same examples (class indices).
    n_bins : int, default 20
        Bins per code dimension (disentanglement_lib's default).

    Returns
    -------
    dict
        ``mig``: the mean gap (float); ``gaps``: the normalized gap of each factor (list, None
        for single-valued factors); ``entropy``: :math:`H(v_j)` in nats (list);
        ``mutual_info``: the ``(K, F)`` matrix :math:`I(z_i; v_j)` in nats (nested list);
        ``normalized_mutual_info``: the same divided by :math:`H(v_j)` (0 for single-valued
        factors), the matrix whose two largest entries per column make each gap.

    Raises
    ------
    DataError
        Not 2-D arrays, different numbers of rows, fewer than 2 code dimensions, NaN or
        infinite codes, non-integer factors, or every factor single-valued.
    ConfigError
        ``n_bins`` is not a positive integer.
    """
    codes, factors = _check_codes_factors(codes, factors, "codes")
    if codes.shape[1] < 2:
        raise DataError(f"MIG needs codes with at least 2 dimensions, got {codes.shape[1]}")
    m = discrete_mutual_info(discretize(codes, n_bins), factors)
    entropy = discrete_entropy(factors)
    varying = entropy > 0
    if not varying.any():
        raise DataError("every factor takes a single value, so MIG is undefined")
    top = np.sort(m, axis=0)[::-1]
    gaps = np.divide(top[0] - top[1], entropy, out=np.zeros_like(entropy), where=varying)
    normalized = np.divide(m, entropy[None, :], out=np.zeros_like(m), where=varying[None, :])
    return {
        "mig": float(gaps[varying].mean()),
        "gaps": [float(g) if v else None for g, v in zip(gaps, varying)],
        "entropy": entropy.tolist(),
        "mutual_info": m.tolist(),
        "normalized_mutual_info": normalized.tolist(),
    }


def dsprites_mig(
    encode: Callable[[np.ndarray], Any], n: int = 10000, seed: int = 0, batch_size: int = 1000
) -> dict[str, Any]:
    """MIG of an encoder on dSprites, as disentanglement_lib evaluates it (10000 examples).

    Draws ``n`` distinct factor combinations (:func:`aekit.data.dsprites.sample_factors`),
    renders them batch by batch, encodes them and returns :func:`mutual_information_gap` of
    the codes against the five factor indices (shape, scale, orientation, pos_x, pos_y).

    Parameters
    ----------
    encode : callable
        Maps a float32 array ``(b, 4096)`` of images (pixels 0/1, row-major 64x64) to codes
        ``(b, K)``; for a VAE, the posterior means. A trained model's ``encode_array`` is one
        (it applies the run's scaling first and returns the deterministic code).
    n : int, default 10000
        Number of examples.
    seed : int, default 0
        Seed of the drawn combinations.
    batch_size : int, default 1000
        Images rendered and encoded at once.

    Returns
    -------
    dict
        As :func:`mutual_information_gap`, plus ``factor_names``, the names of the five factors
        in the order of ``gaps``.

    Raises
    ------
    ConfigError
        ``n`` or ``batch_size`` is not a positive integer (``n`` at most 737,280).
    DataError
        ``encode`` returns something other than ``(b, K)`` codes with K >= 2, or NaN.
    """
    from aekit.data.dsprites import FACTOR_NAMES, render, sample_factors

    _check_positive_int(batch_size, "batch_size")
    factors = sample_factors(n, seed)
    parts = []
    for start in range(0, len(factors), batch_size):
        chunk = factors[start : start + batch_size]
        codes = np.asarray(encode(render(chunk)))
        if codes.ndim != 2 or codes.shape[0] != len(chunk):
            raise DataError(
                f"encode returned codes of shape {codes.shape} for {len(chunk)} images; expected ({len(chunk)}, K)"
            )
        parts.append(codes)
    result = mutual_information_gap(np.concatenate(parts), factors)
    result["factor_names"] = list(FACTOR_NAMES)
    return result
