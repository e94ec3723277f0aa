"""Evaluation measures on NumPy arrays (no torch needed)."""

from __future__ import annotations

from typing import Any

import numpy as np


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


def pca_reconstruction_errors(train: np.ndarray, x: np.ndarray, n_components: int,
                              seed: int = 0) -> dict[str, Any]:
    """Fit PCA with ``n_components`` on ``train`` and return :func:`reconstruction_errors` on ``x``."""
    from sklearn.decomposition import PCA

    k = min(n_components, train.shape[0], train.shape[1])
    pca = PCA(n_components=k, random_state=seed).fit(train)
    recon = pca.inverse_transform(pca.transform(x))
    out: dict[str, Any] = reconstruction_errors(x, recon)
    out["n_components"] = int(k)
    out["explained_variance_ratio"] = float(pca.explained_variance_ratio_.sum())
    return out


#: The largest PSNR reported (dB): an example reconstructed exactly (MSE 0) gets this value, so
#: that means over examples stay finite. Float32 rounding alone already gives about 140 dB on
#: data in [0, 1]; anything above 100 dB is an exact reconstruction for practical purposes.
PSNR_MAX_DB = 100.0


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
    floor = data_range ** 2 * 10.0 ** (-PSNR_MAX_DB / 10.0)
    per = 10.0 * np.log10(data_range ** 2 / np.maximum(mse, floor))
    return per if reduction == "none" else float(per.mean())
