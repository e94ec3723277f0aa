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
