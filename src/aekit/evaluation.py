"""Measuring a trained model: :func:`evaluate` (reconstruction error against PCA of the same code
size, and where the run allows it denoising, likelihood, compression and disentanglement scores),
:func:`likelihood_bounds`, :func:`denoising_scores`, :func:`psnr_data_range` and :func:`denoise`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import io
from .data import IN_MEMORY, Dataset, Splits, load_data, load_run_splits, run_data_config
from .errors import ConfigError
from .model import Autoencoder
from .noise import DEFAULT_NU, DEFAULT_SIGMA, corrupt
from .noise import check_parameters as check_noise

#: factor combinations drawn by ``evaluate`` to score the MIG of a run trained on ``dsprites``
DSPRITES_MIG_N = 10_000

#: the fraction of disentanglement_lib's sample sizes (:data:`aekit.disentanglement.DEFAULTS`) at
#: which ``evaluate`` computes the other disentanglement scores of a ``dsprites`` run
#: (:func:`aekit.disentanglement.dsprites_scores`): 0.01 draws 100 training and 50 evaluation
#: points per score, about 30,000 rendered images and a few seconds on one CPU core, for quick,
#: noisy estimates. ``dsprites_scores(model.encode_array, scale=1.0)`` gives disentanglement_lib's
#: full settings (about 2 million images).
DSPRITES_SCORES_SCALE = 0.01

#: the scores ``evaluate`` computes at :data:`DSPRITES_SCORES_SCALE`: all of
#: :data:`aekit.disentanglement.METRICS` but DCI, whose gradient boosted trees (100 a class of
#: each factor, 113 classes on dSprites) take tens of seconds even on 100 points; pass
#: ``metrics=aekit.disentanglement.METRICS`` to ``dsprites_scores`` for it.
DSPRITES_SCORES_METRICS: tuple[str, ...] = ("mig", "beta_vae", "factor_vae", "sap", "modularity_explicitness")


def likelihood_bounds(
    model: Autoencoder, X: np.ndarray, k: int = 5000, *, seed: int = 0, batch_size: int = 100, max_rows: int = 65536
) -> dict[str, Any]:
    r"""The negative ELBO and the importance-weighted estimate of :math:`-\log p(x)` (nats per example).

    With :math:`K` draws :math:`z_k \sim q(z|x)` (Burda, Grosse & Salakhutdinov 2016):

    .. math:: \log p(x) \approx \log \frac1K \sum_{k=1}^K \frac{p(x|z_k)\,p(z_k)}{q(z_k|x)} \;\ge\;
              \mathbb E_q[\log p(x|z)] - \mathrm{KL}(q(z|x) \,\|\, p(z)) = \mathcal L(x),

    a bound that tightens as :math:`K` grows (:math:`K = 5000` for reported figures). The
    negative ELBO uses the same draws for :math:`\mathbb E_q[-\log p(x|z)]` and the closed-form KL.
    With the Bernoulli decoder the data should be binary for these to be likelihoods. The model's
    variant computes them (``model.variant.likelihood_bounds``; :mod:`aekit.bounds`).

    Parameters
    ----------
    model : Autoencoder
        A model with a likelihood (the VAE family).
    X : ndarray, shape (N, D)
        Data in model space (after the run's transform).
    k : int
        Importance samples per example.
    seed : int
        Seed of the draws.
    batch_size : int
        Examples encoded at once; ``max_rows`` bounds the rows decoded at once.

    Returns
    -------
    dict
        ``nelbo``, ``nll_iw`` (means over examples), ``iw_samples``, ``kl``, ``recon`` (the
        negative ELBO's two parts) and ``n``.

    Raises
    ------
    ConfigError
        For a model without a likelihood, or ``k < 1``.
    """
    bounds = model.variant.likelihood_bounds(model, X, k, seed=seed, batch_size=batch_size, max_rows=max_rows)
    if bounds is None:
        raise ConfigError(
            f"likelihood bounds need a model with a likelihood; this is a "
            f"{model.variant.describe()} model, which has none"
        )
    return bounds


def evaluate(
    model: Autoencoder | str | Path,
    data: Any = None,
    *,
    split: str = "test",
    pca: bool = True,
    noise: str | None = None,
    sigma: float = DEFAULT_SIGMA,
    nu: float = DEFAULT_NU,
    noise_seed: int = 0,
    iw_samples: int = 100,
    bits: int | None = None,
    ranges: str = "minmax",
    splits: Splits | None = None,
) -> dict[str, Any]:
    """Reconstruction error of a trained model and of PCA with the same code size; with
    ``noise``, also how well the model denoises.

    Errors are measured in model space (after the run's scaling, e.g. pixel values in
    [0, 1] with ``scale="unit"``), as Hinton & Salakhutdinov (2006) report them: the mean
    over examples of the summed squared error per example, and the mean squared error per
    value. PCA is fitted on the run's training split.

    Parameters
    ----------
    model : Autoencoder or run directory
    data : optional
        Data to evaluate: default the run's own data source, ``split`` of it. A different
        file or array is evaluated whole.
    split : {"test", "val", "train", "all"}
    pca : bool
        Fit PCA with the model's code size on the run's training rows and report its errors
        (``pca``) and the model's ratio to them (``ratio_to_pca``).
    noise : {"mask", "gaussian", "salt_pepper"}, optional
        Corrupt the clean evaluation data with this process of :mod:`aekit.noise` (Vincent et
        al. 2008, 2010) and add the keys of :func:`denoising_scores` (``noise``,
        ``psnr_noisy``, ``psnr_denoised``, ``denoised``) to the result. Without it the result
        is unchanged.
    sigma : float
        Standard deviation of the ``gaussian`` noise.
    nu : float
        Fraction of the entries of each example corrupted by ``mask`` and ``salt_pepper``.
    noise_seed : int
        Seed of the ``torch.Generator`` drawing the noise (the same seed, the same corruption).
    iw_samples : int
        For a model with a likelihood (the VAE family): importance samples per example of the
        estimate of -log p(x) (:func:`likelihood_bounds`), added with the negative ELBO as
        ``likelihood``; 5000 for reported figures, 0 to skip.
    bits : int, optional
        Quantize the codes to this many bits per dimension (1 .. 16) and add ``compression``:
        bits per input (fixed and the symbols' empirical entropy) and the distortion of the
        decoded codes, for the model and (with ``pca``) for PCA quantized the same way
        (:func:`aekit.compress.compression_scores`).
    ranges : {"minmax", "quantile"}
        How the quantizer's ranges are fitted on the training codes (with ``bits``).
    splits : Splits, optional
        The run's own data, already split as the run split it (a caller that has loaded it, such
        as :func:`aekit.report.report`, saves reading it again).

    Returns
    -------
    dict
        ``data``, ``split``, ``n``, ``space`` (what the errors are measured on) and ``code_size``;
        ``autoencoder``: :func:`aekit.metrics.reconstruction_errors` of the model; ``pca`` and
        ``ratio_to_pca`` where PCA was fitted; ``likelihood``, the denoising keys and
        ``compression`` as above. A run trained on the built-in ``dsprites`` set also gets
        ``mig``: the Mutual Information Gap (:func:`aekit.metrics.dsprites_mig`) of its codes on
        :data:`DSPRITES_MIG_N` freshly drawn factor combinations, with each factor's gap and the
        code-by-factor mutual information normalized by the factor's entropy
        (``normalized_mutual_info``, one row per code dimension), and ``disentanglement``:
        disentanglement_lib's other scores (:func:`aekit.disentanglement.dsprites_scores`:
        BetaVAE, FactorVAE, SAP, modularity and explicitness, and its own MIG estimate) of
        :data:`DSPRITES_SCORES_METRICS` at :data:`DSPRITES_SCORES_SCALE` of its sample sizes, with
        the settings used.
    """
    from .metrics import pca_reconstruction_errors, reconstruction_errors

    if noise is not None:
        check_noise(noise, nu=nu, sigma=sigma)
    if bits is not None:
        from .compress import check_bits

        check_bits(bits)
    if not isinstance(model, Autoencoder):
        model = io.load(model)
    cfg = getattr(model, "run_config", None) or {}
    data_cfg = run_data_config(cfg)
    if split not in ("test", "val", "train", "all"):
        raise ConfigError(f"split must be test, val, train or all; got {split!r}")
    own = data is None or (data_cfg is not None and isinstance(data, (str, Path)) and str(data) == data_cfg.data)
    reloadable = data_cfg is not None and data_cfg.data != IN_MEMORY
    if own and not reloadable:
        raise ConfigError("this run was trained on in-memory data; pass the data to evaluate")
    train_x = None
    if reloadable and (own or pca or bits is not None):  # own split, or training rows for PCA / quantizer ranges
        assert data_cfg is not None, "reloadable data has a data config"
        if splits is None:
            splits = load_run_splits(data_cfg)
        train_x = splits.train.x
    if own:
        assert data_cfg is not None and splits is not None, "own data is reloadable (checked above): splits loaded"
        ds = {"test": splits.test, "val": splits.val, "train": splits.train}.get(split)
        x = ds.x if ds is not None else np.concatenate([splits.train.x, splits.val.x, splits.test.x])
        source, evaluated = data_cfg.data, split
    else:
        ds = load_data(data, label_column=data_cfg.label_column if data_cfg else None)
        x, source, evaluated = ds.x, ds.source, "all"
    if len(x) == 0:
        raise ConfigError(f"the {split} split of {source} is empty")
    X = model.prepare(x, where=str(source))
    recon = _reconstruct(model, X)
    result: dict[str, Any] = {
        "data": str(source),
        "split": evaluated,
        "n": len(x),
        "space": f"model inputs after the run's '{model.transform.kind}' scaling"
        if model.transform is not None
        else "raw",
        "code_size": model.config.latent,
        "autoencoder": reconstruction_errors(X, recon),
    }
    # the training rows in model space, once for PCA and the quantizer ranges (without them: X itself)
    fit_x = X
    if train_x is not None and (pca or bits is not None):
        fit_x = model.transform.apply(train_x) if model.transform is not None else train_x
    if pca and train_x is not None:
        result["pca"] = pca_reconstruction_errors(fit_x, X, model.config.latent, seed=0)
        pe = result["pca"]["per_example_squared_error"]
        result["ratio_to_pca"] = result["autoencoder"]["per_example_squared_error"] / pe if pe > 0 else None
    # generated with its factors: disentanglement is measurable
    if own and data_cfg is not None and data_cfg.data == "dsprites":
        from .metrics import dsprites_mig

        result["mig"] = {
            k: v
            for k, v in dsprites_mig(model.encode_array, n=DSPRITES_MIG_N).items()
            if k in ("mig", "gaps", "factor_names", "normalized_mutual_info")
        }
        from .disentanglement import dsprites_scores

        result["disentanglement"] = dsprites_scores(
            model.encode_array, metrics=DSPRITES_SCORES_METRICS, scale=DSPRITES_SCORES_SCALE
        )
    likelihood = model.variant.likelihood_bounds(model, X, iw_samples) if iw_samples else None
    if likelihood is not None:  # a model with a likelihood (the VAE family)
        result["likelihood"] = likelihood
    if noise is not None:
        result.update(denoising_scores(model, X, noise, sigma=sigma, nu=nu, seed=noise_seed))
    if bits is not None:  # quantizer ranges (and PCA) fitted on the training rows; else on X itself
        from .compress import compression_scores

        result["compression"] = compression_scores(
            model, X, fit_x, bits, ranges=ranges, pca=pca and train_x is not None
        )
    return result


def _reconstruct(model: Autoencoder, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Reconstructions of model-space rows ``X``, in model space (eval mode: no corruption)."""
    return model.batched(X, model.reconstruct, batch_size)


def denoising_scores(
    model: Autoencoder, X: np.ndarray, kind: str, *, sigma: float = DEFAULT_SIGMA, nu: float = DEFAULT_NU, seed: int = 0
) -> dict[str, Any]:
    """Corrupt clean model-space rows ``X``, denoise them with ``model``, and score both.

    The corruption is :func:`aekit.noise.corrupt` (Vincent et al. 2008, 2010) drawn from a
    ``torch.Generator`` seeded with ``seed``. The data range :math:`[lo, hi]` is [0, 1] when
    the run's scaling is ``unit``, else the min and max of the clean ``X``; Gaussian noise is
    clipped to [0, 1] with the unit scaling only, and salt-and-pepper noise uses ``lo`` and
    ``hi`` as its values.

    Returns
    -------
    dict
        ``noise``: the corruption settings and the data range :math:`R = hi - lo`;
        ``psnr_noisy`` and ``psnr_denoised``: mean per-example PSNR in dB of the corrupted and
        of the denoised data against the clean data (:func:`aekit.metrics.psnr` with data range
        :math:`R`); ``denoised``: :func:`aekit.metrics.reconstruction_errors` of the denoised
        data against the clean data.
    """
    from .metrics import psnr, reconstruction_errors

    lo, hi, unit = model.data_range(X)
    clip = (lo, hi) if unit and kind == "gaussian" else None
    gen = torch.Generator().manual_seed(int(seed))
    noisy = corrupt(torch.from_numpy(X), kind, nu=nu, sigma=sigma, low=lo, high=hi, clip=clip, generator=gen).numpy()
    denoised = _reconstruct(model, noisy)
    data_range = hi - lo if hi > lo else 1.0  # psnr_data_range, from the range already taken
    settings: dict[str, Any] = {"kind": kind, "seed": int(seed)}
    if kind == "gaussian":
        settings.update(sigma=sigma, clip=[lo, hi] if clip else None)
    else:
        settings["nu"] = nu
    if kind == "salt_pepper":
        settings.update(low=lo, high=hi)
    settings["data_range"] = data_range
    settings["note"] = (
        "noise added in model space"
        + (", clipped to [0, 1], the data range of the unit scaling" if clip else "")
        + "; psnr_*: mean per-example PSNR in dB against the clean data with data range "
        + ("1.0 (unit scaling)" if unit else "max - min of the clean data (the scaling is not unit)")
    )
    return {
        "noise": settings,
        "psnr_noisy": psnr(X, noisy, data_range),
        "psnr_denoised": psnr(X, denoised, data_range),
        "denoised": reconstruction_errors(X, denoised),
    }


def denoise(model: Autoencoder | str | Path, X: Any, *, batch_size: int = 4096, where: str = "input") -> np.ndarray:
    """The model's reconstruction of raw (noisy) data ``X``, in the original units.

    The run's transform is applied, the rows are reconstructed in eval mode (no corruption)
    and the transform is inverted: this is what a denoising autoencoder (Vincent et al.
    2008, 2010), trained to map a corrupted :math:`\\tilde x` to the clean :math:`x`, is for;
    for any other variant it is its plain reconstruction.

    Parameters
    ----------
    model : Autoencoder or run directory
    X : array-like, shape (N, D) or (N, C, H, W) / (N, H, W), or Dataset
        Raw data in the units of the training data.
    batch_size : int
        Rows per batch.
    where : str
        Name of the data in error messages.

    Returns
    -------
    ndarray
        float32, shaped like ``X`` (``(N, D)`` for a Dataset).
    """
    if not isinstance(model, Autoencoder):
        model = io.load(model)
    x = X.x if isinstance(X, Dataset) else np.asarray(X)
    out = model.reconstruct_array(x, batch_size=batch_size, where=where)
    return out.reshape(x.shape) if x.ndim > 2 else out
