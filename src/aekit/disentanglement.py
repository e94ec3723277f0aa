r"""Supervised disentanglement scores of disentanglement_lib (Locatello et al. 2019).

Locatello et al. (2019, "Challenging Common Assumptions in the Unsupervised Learning of
Disentangled Representations", ICML) compare representations with six scores, all computed
against the ground-truth factors of a data set such as dSprites. The Mutual Information Gap is
:func:`aekit.metrics.mutual_information_gap`; this module holds the others, with the definitions
and default settings of disentanglement_lib's ``evaluation/metrics/*.py`` and
``config/*/metric_configs/*.gin``:

=================================  ===========================================  ==========================
score                              function                                     defaults
=================================  ===========================================  ==========================
BetaVAE score (Higgins et al.)     :func:`beta_vae_score`                       batch 64, 10000 / 5000
FactorVAE score (Kim & Mnih)       :func:`factor_vae_score`                     batch 64, 10000 / 5000,
                                                                                10000 for the variances,
                                                                                prune threshold 0.05
DCI (Eastwood & Williams)          :func:`dci`, :func:`dci_from_importance`     10000 / 5000
SAP (Kumar et al.)                 :func:`sap`, :func:`sap_from_score_matrix`   10000 / 5000, discrete
Modularity, explicitness           :func:`modularity_explicitness`,             10000 / 5000, 20 bins
(Ridgeway & Mozer)                 :func:`modularity_from_mutual_info`
=================================  ===========================================  ==========================

(``a / b``: training / evaluation points.) The scores that work on a matrix of codes and one of
factors (DCI, SAP, modularity and explicitness) are pure functions of
``codes_train, factors_train, codes_test, factors_test``; the BetaVAE and FactorVAE scores need
batches in which one factor is held fixed, so they take an ``encode`` callable and a ground-truth
sampler (:class:`GroundTruthSampler`, :class:`DSpritesSampler`). :func:`disentanglement_scores`
runs them all on one sampler as disentanglement_lib does (each from a fresh
``numpy.random.RandomState(seed)``), :func:`dsprites_scores` on dSprites.

Randomness is NumPy's legacy ``RandomState``, drawn in disentanglement_lib's order (factors in
batches of 16 for the code/factor matrices, one ``randint`` per fixed factor), so that the same
seed gives the same numbers, and the same factor draws as disentanglement_lib's. Observations
are made and encoded a block of samples at a time (:data:`ENCODE_BATCH` images per call), which
changes nothing for samplers whose observations are a function of the factors (the two here).

The MIG is disentanglement_lib's, as :func:`aekit.metrics.mutual_information_gap` computes it;
Chen et al. (2018), who defined it, estimate it differently (see :func:`disentanglement_scores`).

Everything here is NumPy and scikit-learn; torch is not imported.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aekit.errors import ConfigError, DataError
from aekit.metrics import (
    _check_factors,
    _check_matrix,
    _check_positive_int,
    discrete_mutual_info,
    discretize,
    mutual_information_gap,
)

__all__ = [
    "DEFAULTS",
    "ENCODE_BATCH",
    "METRICS",
    "DSpritesSampler",
    "GroundTruthSampler",
    "beta_vae_score",
    "dci",
    "dci_from_importance",
    "disentanglement_scores",
    "dsprites_scores",
    "factor_vae_score",
    "modularity_explicitness",
    "modularity_from_mutual_info",
    "sap",
    "sap_from_score_matrix",
]

#: images made and encoded at once by the sampler-based scores
ENCODE_BATCH = 4096

#: the scores :func:`disentanglement_scores` knows, in the order it runs them
METRICS: tuple[str, ...] = ("mig", "beta_vae", "factor_vae", "dci", "sap", "modularity_explicitness")

#: disentanglement_lib's settings of each score (``config/unsupervised_study_v1/metric_configs``
#: and ``config/abstract_reasoning_study_v1/stage1/metric_configs``, ``evaluation.random_seed = 0``);
#: the ``num_*`` entries are the ones ``scale`` multiplies
DEFAULTS: dict[str, dict[str, Any]] = {
    "mig": {"num_train": 10000, "n_bins": 20},
    "beta_vae": {"batch_size": 64, "num_train": 10000, "num_eval": 5000},
    "factor_vae": {
        "batch_size": 64,
        "num_train": 10000,
        "num_eval": 5000,
        "num_variance_estimate": 10000,
        "prune_threshold": 0.05,
    },
    "dci": {"num_train": 10000, "num_test": 5000},
    "sap": {"num_train": 10000, "num_test": 5000, "continuous": False},
    "modularity_explicitness": {"num_train": 10000, "num_test": 5000, "n_bins": 20},
}

#: factors drawn per call when sampling codes against factors (disentanglement_lib's batch_size=16
#: of ``generate_batch_factor_code``): it fixes the order of the draws
_FACTOR_CODE_BATCH = 16


# -- checks ---------------------------------------------------------------------------------------
def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**32:
        raise ConfigError(f"seed must be an integer in 0..2**32-1, got {seed!r}")
    return int(seed)


def _check_codes(codes, name: str) -> np.ndarray:
    codes = _check_matrix(codes, name).astype(np.float64, copy=False)
    if not np.isfinite(codes).all():
        row, col = divmod(int((~np.isfinite(codes)).argmax()), codes.shape[1])
        raise DataError(f"{name}: row {row}, column {col} holds {codes[row, col]}; codes must be finite")
    return codes


def _check_split(codes_train, factors_train, codes_test, factors_test, *, discrete: bool = True):
    """Validate train and test codes (N, K) / (M, K) and factors (N, F) / (M, F)."""
    out = []
    for split, codes, factors in (("train", codes_train, factors_train), ("test", codes_test, factors_test)):
        c = _check_codes(codes, f"codes_{split}")
        if discrete:
            try:
                f = _check_factors(factors)
            except DataError as e:
                raise DataError(f"factors_{split}: {e}") from None
        else:
            f = _check_codes(factors, f"factors_{split}")
        if len(c) != len(f):
            raise DataError(f"codes_{split} has {len(c)} rows but factors_{split} has {len(f)}; they must match")
        out += [c, f]
    if out[0].shape[1] != out[2].shape[1]:
        raise DataError(f"codes_train has {out[0].shape[1]} columns but codes_test has {out[2].shape[1]}")
    if out[1].shape[1] != out[3].shape[1]:
        raise DataError(f"factors_train has {out[1].shape[1]} columns but factors_test has {out[3].shape[1]}")
    return out


def _check_varying(factors: np.ndarray, name: str) -> None:
    """Raise DataError if a factor column takes a single value (no classifier can be fitted)."""
    for j in range(factors.shape[1]):
        if np.all(factors[:, j] == factors[0, j]):
            raise DataError(f"{name}: factor {j} takes a single value; every factor must vary to fit a classifier")


def _check_score_matrix(matrix, name: str, *, min_rows: int = 1, min_cols: int = 1) -> np.ndarray:
    m = _check_matrix(matrix, name).astype(np.float64, copy=False)
    if not np.isfinite(m).all() or (m < 0).any():
        raise DataError(f"{name} must hold finite non-negative numbers")
    if m.shape[0] < min_rows or m.shape[1] < min_cols:
        raise DataError(
            f"{name} must have at least {min_rows} code rows and {min_cols} factor columns, got shape {m.shape}"
        )
    return m


# -- ground truth -------------------------------------------------------------------------------
class GroundTruthSampler:
    """Discrete ground-truth factors drawn uniformly and independently, and observations of them.

    The interface of disentanglement_lib's ``GroundTruthData``: each factor ``j`` takes the values
    ``0..factor_sizes[j] - 1``, drawn by ``random_state.randint(factor_sizes[j], size=num)`` (with
    replacement, factor by factor, as its ``SplitDiscreteStateSpace``), and ``observe`` turns
    factor indices into observations.

    Parameters
    ----------
    factor_sizes : sequence of int
        Number of values of each factor (each >= 1).
    observe : callable, optional
        Maps ``(n, F)`` int64 factor indices to ``(n, ...)`` observations. Default: the indices
        themselves as float64, a toy data set whose identity encoder is perfectly disentangled.
    factor_names : sequence of str, optional
        Names of the factors (default ``v0, v1, ...``).

    Raises
    ------
    ConfigError
        ``factor_sizes`` is empty or holds a non-positive size; ``factor_names`` does not match.
    """

    def __init__(
        self,
        factor_sizes: Sequence[int],
        observe: Callable[[np.ndarray], Any] | None = None,
        factor_names: Sequence[str] | None = None,
    ) -> None:
        sizes = tuple(factor_sizes)
        if not sizes:
            raise ConfigError("factor_sizes must name at least one factor")
        for j, size in enumerate(sizes):
            if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
                raise ConfigError(f"factor_sizes[{j}] must be a positive integer, got {size!r}")
        self.factor_sizes: tuple[int, ...] = tuple(int(s) for s in sizes)
        names = tuple(factor_names) if factor_names is not None else tuple(f"v{j}" for j in range(len(sizes)))
        if len(names) != len(sizes):
            raise ConfigError(f"factor_names has {len(names)} names for {len(sizes)} factors")
        self.factor_names: tuple[str, ...] = names
        self._observe = observe

    @property
    def num_factors(self) -> int:
        """Number of factors F."""
        return len(self.factor_sizes)

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        """``(num, F)`` int64 factor indices, each factor drawn uniformly with replacement."""
        factors = np.zeros((num, self.num_factors), dtype=np.int64)
        for j, size in enumerate(self.factor_sizes):
            factors[:, j] = random_state.randint(size, size=num)
        return factors

    def sample_observations_from_factors(self, factors: np.ndarray, random_state: np.random.RandomState) -> Any:
        """The observations of ``factors`` (``random_state`` is unused: they are deterministic)."""
        if self._observe is None:
            return np.asarray(factors, dtype=np.float64)
        return self._observe(factors)

    def sample(self, num: int, random_state: np.random.RandomState) -> tuple[np.ndarray, Any]:
        """``num`` factor draws and their observations."""
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num: int, random_state: np.random.RandomState) -> Any:
        """Observations of ``num`` factor draws."""
        return self.sample(num, random_state)[1]

    def sample_fixed_factor(self, num: int, index: int, random_state: np.random.RandomState) -> np.ndarray:
        """``num`` factor draws sharing the value of factor ``index`` (that of the first draw), as
        disentanglement_lib's FactorVAE score draws a batch."""
        factors = self.sample_factors(num, random_state)
        factors[:, index] = factors[0, index]
        return factors

    def sample_fixed_factor_pairs(
        self, num: int, index: int, random_state: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray]:
        """Two batches of ``num`` draws whose rows agree on factor ``index``, as disentanglement_lib's
        BetaVAE score draws them (the second batch takes that column from the first)."""
        first = self.sample_factors(num, random_state)
        second = self.sample_factors(num, random_state)
        second[:, index] = first[:, index]
        return first, second


class DSpritesSampler(GroundTruthSampler):
    """dSprites as ground truth: the five factors of :mod:`aekit.data.dsprites` (shape 3, scale 6,
    orientation 40, pos_x 32, pos_y 32 values), drawn uniformly with replacement as
    disentanglement_lib's ``dsprites_full`` draws them, observed as
    :func:`aekit.data.dsprites.render` draws them: ``(n, 4096)`` float32 images with pixels 0 and 1."""

    def __init__(self) -> None:
        from aekit.data.dsprites import FACTOR_NAMES, FACTOR_SIZES, render

        super().__init__(FACTOR_SIZES, render, FACTOR_NAMES)


# -- sampling and encoding ------------------------------------------------------------------------
class _Encoder:
    """``encode`` with its output checked: ``(b, K)`` finite codes, the same K on every call."""

    def __init__(self, encode: Callable[[Any], Any]) -> None:
        if not callable(encode):
            raise ConfigError(f"encode must be callable, got {type(encode).__name__}")
        self.encode = encode
        self.k: int | None = None

    def __call__(self, observations: Any) -> np.ndarray:
        n = len(observations)
        codes = np.asarray(self.encode(observations))
        if codes.ndim != 2 or codes.shape[0] != n or codes.dtype.kind not in "biuf":
            raise DataError(f"encode returned codes of shape {codes.shape} for {n} observations; expected ({n}, K)")
        if self.k is not None and codes.shape[1] != self.k:
            raise DataError(f"encode returned {codes.shape[1]} code dimensions, earlier {self.k}")
        self.k = codes.shape[1]
        codes = codes.astype(np.float64, copy=False)
        if not np.isfinite(codes).all():
            raise DataError("encode returned NaN or infinite codes")
        return codes


def _encode_factors(encoder: _Encoder, sampler: GroundTruthSampler, factors: np.ndarray, rs) -> np.ndarray:
    """Codes of the observations of ``factors``, :data:`ENCODE_BATCH` at a time."""
    parts = [
        encoder(sampler.sample_observations_from_factors(factors[s : s + ENCODE_BATCH], rs))
        for s in range(0, len(factors), ENCODE_BATCH)
    ]
    return np.concatenate(parts)


def _factor_code(
    encoder: _Encoder, sampler: GroundTruthSampler, num: int, rs: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """disentanglement_lib's ``generate_batch_factor_code``: ``num`` draws (16 at a time) and their codes."""
    factors = np.concatenate(
        [sampler.sample_factors(min(_FACTOR_CODE_BATCH, num - s), rs) for s in range(0, num, _FACTOR_CODE_BATCH)]
    )
    return _encode_factors(encoder, sampler, factors, rs), factors


def _check_sampler(sampler) -> GroundTruthSampler:
    for attribute in (
        "num_factors",
        "factor_names",
        "sample_factors",
        "sample_observations_from_factors",
        "sample_fixed_factor",
        "sample_fixed_factor_pairs",
    ):
        if not hasattr(sampler, attribute):
            raise ConfigError(f"sampler must be a GroundTruthSampler; {type(sampler).__name__} has no {attribute}")
    return sampler


# -- BetaVAE score --------------------------------------------------------------------------------
def _beta_vae_points(
    encoder: _Encoder, sampler: GroundTruthSampler, batch_size: int, num_points: int, rs: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros(num_points, dtype=np.int64)
    features = []
    per_block = max(1, ENCODE_BATCH // (2 * batch_size))
    for start in range(0, num_points, per_block):
        m = min(per_block, num_points - start)
        firsts, seconds = [], []
        for i in range(m):
            labels[start + i] = rs.randint(sampler.num_factors)
            first, second = sampler.sample_fixed_factor_pairs(batch_size, int(labels[start + i]), rs)
            firsts.append(first)
            seconds.append(second)
        z1 = _encode_factors(encoder, sampler, np.concatenate(firsts), rs)
        z2 = _encode_factors(encoder, sampler, np.concatenate(seconds), rs)
        features.append(np.abs(z1 - z2).reshape(m, batch_size, -1).mean(axis=1))
    return np.concatenate(features), labels


def _logistic_regression(seed: int):
    """scikit-learn's ``LogisticRegression()`` as disentanglement_lib ran it (scikit-learn 0.20:
    the liblinear solver, one binary classifier per class, C = 1), which newer versions spell
    ``OneVsRestClassifier(LogisticRegression(solver="liblinear"))``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=seed))


def beta_vae_score(
    encode: Callable[[Any], Any],
    sampler: GroundTruthSampler,
    seed: int = 0,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
) -> dict[str, float]:
    r"""The BetaVAE disentanglement score (Higgins et al. 2017, "beta-VAE: Learning Basic Visual
    Concepts with a Constrained Variational Framework", ICLR), as disentanglement_lib's
    ``compute_beta_vae_sklearn`` computes it.

    Each point is made from two batches of ``batch_size`` factor draws :math:`v^{(1)}, v^{(2)}`
    whose rows agree on one factor :math:`y`, drawn uniformly: its feature vector is

    .. math:: d = \frac{1}{B} \sum_{b=1}^{B} \bigl| z(x^{(1)}_b) - z(x^{(2)}_b) \bigr|,

    and a linear classifier (logistic regression, one-vs-rest) is trained on ``num_train`` points
    to name :math:`y` from :math:`d`. A dimension that holds the fixed factor alone differs
    little within the pairs, so a disentangled code makes :math:`y` easy to read off. The score
    is the classifier's accuracy, 1 at best; a code independent of the factors scores about
    :math:`1/F` (chance). The features are not standardized and the classifier is regularized
    (C = 1), as in disentanglement_lib, so the score depends on the scale of the code: a perfect
    code whose dimensions vary by 0.1 or less can score well below 1.

    Parameters
    ----------
    encode : callable
        Maps a batch of observations to codes ``(b, K)`` (for a VAE, the posterior means).
    sampler : GroundTruthSampler
        The ground truth (:class:`DSpritesSampler` for dSprites).
    seed : int, default 0
        Seed of the ``numpy.random.RandomState`` drawing the points, and of the classifier.
    batch_size : int, default 64
        Pairs averaged per point (>= 1).
    num_train, num_eval : int, default 10000, 5000
        Points to train the classifier on, and to evaluate it on.

    Returns
    -------
    dict
        ``train_accuracy`` and ``eval_accuracy`` (floats in [0, 1]).

    Raises
    ------
    ConfigError
        A size is not a positive integer, a bad seed or sampler, or the ``num_train`` points all
        fixed the same factor (too few to train a classifier).
    DataError
        ``encode`` returns something other than finite ``(b, K)`` codes.
    """
    seed = _check_seed(seed)
    sampler = _check_sampler(sampler)
    for value, name in ((batch_size, "batch_size"), (num_train, "num_train"), (num_eval, "num_eval")):
        _check_positive_int(value, name)
    encoder = _Encoder(encode)
    rs = np.random.RandomState(seed)
    x_train, y_train = _beta_vae_points(encoder, sampler, batch_size, num_train, rs)
    if np.all(y_train == y_train[0]):
        raise ConfigError(f"num_train={num_train} BetaVAE points all fixed factor {y_train[0]}; use more points")
    # disentanglement_lib hands its RandomState to the classifier, whose liblinear fit draws one
    # seed from it before the evaluation points are drawn: draw it too, so that they are the same
    rs.randint(np.iinfo(np.int32).max)
    model = _logistic_regression(seed).fit(x_train, y_train)
    train_accuracy = float(np.mean(model.predict(x_train) == y_train))
    x_eval, y_eval = _beta_vae_points(encoder, sampler, batch_size, num_eval, rs)
    return {"train_accuracy": train_accuracy, "eval_accuracy": float(np.mean(model.predict(x_eval) == y_eval))}


# -- FactorVAE score ------------------------------------------------------------------------------
def _factor_vae_votes(
    encoder: _Encoder,
    sampler: GroundTruthSampler,
    batch_size: int,
    num_points: int,
    rs: np.random.RandomState,
    global_variances: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """(F, K) votes: how often fixing factor j left code dimension k the least (normalized) variance."""
    votes = np.zeros((sampler.num_factors, len(global_variances)), dtype=np.int64)
    dims = np.flatnonzero(active)
    per_block = max(1, ENCODE_BATCH // batch_size)
    for start in range(0, num_points, per_block):
        m = min(per_block, num_points - start)
        index = np.zeros(m, dtype=np.int64)
        batches = []
        for i in range(m):
            index[i] = rs.randint(sampler.num_factors)
            batches.append(sampler.sample_fixed_factor(batch_size, int(index[i]), rs))
        codes = _encode_factors(encoder, sampler, np.concatenate(batches), rs).reshape(m, batch_size, -1)
        local = np.var(codes[:, :, dims], axis=1, ddof=1)
        argmin = dims[np.argmin(local / global_variances[dims], axis=1)]
        np.add.at(votes, (index, argmin), 1)
    return votes


def factor_vae_score(
    encode: Callable[[Any], Any],
    sampler: GroundTruthSampler,
    seed: int = 0,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
) -> dict[str, Any]:
    r"""The FactorVAE disentanglement score (Kim & Mnih 2018, "Disentangling by Factorising",
    ICML), as disentanglement_lib's ``compute_factor_vae`` computes it.

    The variance :math:`s_k^2` of each code dimension is estimated on ``num_variance_estimate``
    draws (``ddof=1``); dimensions with :math:`s_k <` ``prune_threshold`` are pruned as
    collapsed (disentanglement_lib's ``prune_dims``: an absolute threshold on the standard
    deviation, 0.05 in its configurations). Each point fixes one factor :math:`y`, drawn
    uniformly, over a batch of ``batch_size`` draws and votes for

    .. math:: k^* = \arg\min_{k \text{ active}} \frac{\operatorname{Var}_{\text{batch}}(z_k)}{s_k^2}.

    The majority-vote classifier maps each dimension :math:`k` to the factor that voted for it
    most on ``num_train`` points; the score is its accuracy,
    :math:`\sum_k V_{c(k), k} / \sum_{j,k} V_{jk}` for the vote matrix :math:`V`, on the
    training votes and on ``num_eval`` fresh ones. 1 at best; a code independent of the factors
    scores about :math:`1/F`.

    Parameters
    ----------
    encode : callable
        Maps a batch of observations to codes ``(b, K)``.
    sampler : GroundTruthSampler
        The ground truth.
    seed : int, default 0
        Seed of the ``numpy.random.RandomState`` drawing the points.
    batch_size : int, default 64
        Draws per point (>= 2, for a variance).
    num_train, num_eval, num_variance_estimate : int, default 10000, 5000, 10000
        Points to build the classifier on and to evaluate it on; draws for :math:`s_k^2` (>= 2).
    prune_threshold : float, default 0.05
        Smallest standard deviation of an active dimension (>= 0). Dimensions with variance 0
        are pruned whatever the threshold (disentanglement_lib would divide by 0).

    Returns
    -------
    dict
        ``train_accuracy``, ``eval_accuracy`` (floats; both 0 when every dimension is pruned) and
        ``num_active_dims``, the dimensions kept (disentanglement_lib reports the number of all
        dimensions under this name, by mistake: ``len`` of a boolean mask).

    Raises
    ------
    ConfigError
        A size is not a positive integer (``batch_size`` and ``num_variance_estimate`` >= 2), a
        bad threshold, seed or sampler.
    DataError
        ``encode`` returns something other than finite ``(b, K)`` codes.
    """
    seed = _check_seed(seed)
    sampler = _check_sampler(sampler)
    for value, name in (
        (batch_size, "batch_size"),
        (num_train, "num_train"),
        (num_eval, "num_eval"),
        (num_variance_estimate, "num_variance_estimate"),
    ):
        _check_positive_int(value, name)
    if batch_size < 2 or num_variance_estimate < 2:
        raise ConfigError("batch_size and num_variance_estimate must be at least 2 (a variance needs two draws)")
    if (
        isinstance(prune_threshold, bool)
        or not isinstance(prune_threshold, numbers.Real)
        or not (np.isfinite(prune_threshold) and prune_threshold >= 0)
    ):
        raise ConfigError(f"prune_threshold must be a finite number >= 0, got {prune_threshold!r}")
    encoder = _Encoder(encode)
    rs = np.random.RandomState(seed)
    factors = sampler.sample_factors(num_variance_estimate, rs)  # disentanglement_lib: sample_observations(n)
    global_variances = np.var(_encode_factors(encoder, sampler, factors, rs), axis=0, ddof=1)
    active = (np.sqrt(global_variances) >= prune_threshold) & (global_variances > 0)
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train_votes = _factor_vae_votes(encoder, sampler, batch_size, num_train, rs, global_variances, active)
    classifier = np.argmax(train_votes, axis=0)
    columns = np.arange(train_votes.shape[1])
    train_accuracy = float(train_votes[classifier, columns].sum() / train_votes.sum())
    eval_votes = _factor_vae_votes(encoder, sampler, batch_size, num_eval, rs, global_variances, active)
    return {
        "train_accuracy": train_accuracy,
        "eval_accuracy": float(eval_votes[classifier, columns].sum() / eval_votes.sum()),
        "num_active_dims": int(active.sum()),
    }


# -- DCI ------------------------------------------------------------------------------------------
def _entropy(p: np.ndarray, base: int) -> np.ndarray:
    """``scipy.stats.entropy(p, base=base)``: entropy of each column of ``p`` normalized to sum 1."""
    from scipy.stats import entropy

    return np.asarray(entropy(p, base=base), dtype=np.float64)


def dci_from_importance(importance_matrix) -> dict[str, Any]:
    r"""Disentanglement and completeness of an importance matrix (Eastwood & Williams 2018, "A
    Framework for the Quantitative Evaluation of Disentangled Representations", ICLR), as
    disentanglement_lib's ``disentanglement`` and ``completeness``.

    For the importance :math:`R_{ij} \ge 0` of code dimension :math:`i` (of :math:`K`) for factor
    :math:`j` (of :math:`F`), with :math:`P_{ij} = R_{ij} / \sum_k R_{ik}` and
    :math:`\tilde P_{ij} = R_{ij} / \sum_k R_{kj}` (after adding :math:`10^{-11}` to every entry):

    .. math:: D_i = 1 + \sum_j P_{ij} \log_F P_{ij}, \qquad
              D = \sum_i \rho_i D_i, \quad \rho_i = \frac{\sum_j R_{ij}}{\sum_{kj} R_{kj}},

    .. math:: C_j = 1 + \sum_i \tilde P_{ij} \log_K \tilde P_{ij}, \qquad
              C = \sum_j \sigma_j C_j, \quad \sigma_j = \frac{\sum_i R_{ij}}{\sum_{ik} R_{ik}}.

    :math:`D_i = 1` when dimension :math:`i` matters for one factor only, :math:`C_j = 1` when
    factor :math:`j` is captured by one dimension only. An all-zero matrix gets uniform weights
    :math:`\rho, \sigma` (and :math:`D = C = 0`).

    Parameters
    ----------
    importance_matrix : array_like, shape (K, F)
        Non-negative importances, K >= 2 code dimensions, F >= 2 factors.

    Returns
    -------
    dict
        ``disentanglement`` :math:`D`, ``completeness`` :math:`C` (floats in [0, 1]);
        ``disentanglement_per_code`` :math:`D_i`, ``completeness_per_factor`` :math:`C_j` (lists).

    Raises
    ------
    DataError
        Not a 2-D matrix of finite non-negative numbers with at least 2 rows and 2 columns.
    """
    r = _check_score_matrix(importance_matrix, "importance_matrix", min_rows=2, min_cols=2)
    per_code = 1.0 - _entropy(r.T + 1e-11, base=r.shape[1])
    per_factor = 1.0 - _entropy(r + 1e-11, base=r.shape[0])
    weights = np.ones_like(r) if r.sum() == 0.0 else r
    code_importance = weights.sum(axis=1) / weights.sum()
    factor_importance = weights.sum(axis=0) / weights.sum()
    return {
        "disentanglement": float(np.sum(per_code * code_importance)),
        "completeness": float(np.sum(per_factor * factor_importance)),
        "disentanglement_per_code": per_code.tolist(),
        "completeness_per_factor": per_factor.tolist(),
    }


def dci(codes_train, factors_train, codes_test, factors_test, *, seed: int = 0) -> dict[str, Any]:
    r"""DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018), as
    disentanglement_lib's ``compute_dci`` computes them.

    One gradient boosted tree classifier (scikit-learn's ``GradientBoostingClassifier`` with its
    defaults: 100 trees of depth 3 a class, learning rate 0.1) is fitted per factor on the
    training codes; its impurity-based ``feature_importances_`` make column :math:`j` of the
    importance matrix :math:`R`, from which :func:`dci_from_importance` gives :math:`D` and
    :math:`C`. Informativeness is the classifiers' mean accuracy (disentanglement_lib's
    ``informativeness_train`` / ``_test``; Eastwood & Williams use the prediction error, 1 minus
    this, with regressors).

    This is slow: about 1 to 2 ms per tree on one core, times 100 trees times the number of
    classes of every factor (113 for dSprites, so tens of seconds even on 100 points, minutes on
    disentanglement_lib's 10000).

    Parameters
    ----------
    codes_train, codes_test : array_like, shape (N, K), (M, K)
        Finite codes, K >= 2.
    factors_train, factors_test : array_like of int, shape (N, F), (M, F)
        Discrete factors (class indices) of the same rows, F >= 2; every factor takes at least
        two values in the training set.
    seed : int, default 0
        ``random_state`` of the classifiers (disentanglement_lib leaves it unset, so its
        tie-breaking between equally good splits is not reproducible).

    Returns
    -------
    dict
        ``disentanglement``, ``completeness`` (floats in [0, 1]), ``informativeness_train``,
        ``informativeness_test`` (accuracies), ``importance_matrix`` (K x F nested list), and
        the per-code / per-factor lists of :func:`dci_from_importance`.

    Raises
    ------
    DataError
        Bad or mismatched arrays, fewer than 2 codes or factors, or a constant training factor.
    ConfigError
        Bad seed.
    """
    from sklearn.ensemble import GradientBoostingClassifier

    seed = _check_seed(seed)
    x_train, y_train, x_test, y_test = _check_split(codes_train, factors_train, codes_test, factors_test)
    if x_train.shape[1] < 2 or y_train.shape[1] < 2:
        raise DataError(
            f"DCI needs at least 2 code dimensions and 2 factors, got {x_train.shape[1]} and {y_train.shape[1]}"
        )
    _check_varying(y_train, "factors_train")
    importance = np.zeros((x_train.shape[1], y_train.shape[1]))
    train_acc, test_acc = [], []
    for j in range(y_train.shape[1]):
        model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(x_train) == y_train[:, j]))
        test_acc.append(np.mean(model.predict(x_test) == y_test[:, j]))
    scores = dci_from_importance(importance)
    return {
        "disentanglement": scores["disentanglement"],
        "completeness": scores["completeness"],
        "informativeness_train": float(np.mean(train_acc)),
        "informativeness_test": float(np.mean(test_acc)),
        "importance_matrix": importance.tolist(),
        "disentanglement_per_code": scores["disentanglement_per_code"],
        "completeness_per_factor": scores["completeness_per_factor"],
    }


# -- SAP ------------------------------------------------------------------------------------------
def sap_from_score_matrix(score_matrix) -> float:
    r"""The SAP score of a (K, F) score matrix: the mean over factors of the gap between the two
    largest scores of its column, :math:`\frac1F \sum_j (S_{(1)j} - S_{(2)j})` (disentanglement_lib's
    ``_compute_avg_diff_top_two``).

    Parameters
    ----------
    score_matrix : array_like, shape (K, F)
        Finite non-negative scores, K >= 2 code dimensions.

    Returns
    -------
    float

    Raises
    ------
    DataError
        Not a 2-D matrix of finite non-negative numbers with at least 2 rows.
    """
    s = np.sort(_check_score_matrix(score_matrix, "score_matrix", min_rows=2), axis=0)
    return float(np.mean(s[-1, :] - s[-2, :]))


def sap(
    codes_train, factors_train, codes_test, factors_test, *, continuous: bool = False, seed: int = 0
) -> dict[str, Any]:
    r"""The Separated Attribute Predictability score (Kumar, Sattigeri & Balakrishnan 2018,
    "Variational Inference of Disentangled Latent Concepts from Unlabeled Observations", ICLR,
    section 3), as disentanglement_lib's ``compute_sap`` computes it.

    Entry :math:`S_{ij}` of the score matrix says how well code dimension :math:`i` alone predicts
    factor :math:`j`. For discrete factors (``continuous=False``, disentanglement_lib's setting)
    it is the test accuracy of a linear SVM on that one dimension
    (``LinearSVC(C=0.01, class_weight="balanced")``, one-vs-rest, trained on the training rows);
    for continuous factors the squared correlation on the training rows,
    :math:`S_{ij} = \operatorname{Cov}(z_i, v_j)^2 / (\operatorname{Var} z_i \operatorname{Var} v_j)`
    (0 when :math:`\operatorname{Var} z_i \le 10^{-12}`, or :math:`\operatorname{Var} v_j = 0`).
    SAP is :func:`sap_from_score_matrix`: high when each factor is predicted by one dimension
    much better than by any other.

    Parameters
    ----------
    codes_train, codes_test : array_like, shape (N, K), (M, K)
        Finite codes, K >= 2.
    factors_train, factors_test : array_like, shape (N, F), (M, F)
        Factors of the same rows: class indices, every factor with at least two training values
        (discrete); any finite numbers (continuous, where the test rows are unused but checked).
    continuous : bool, default False
    seed : int, default 0
        ``random_state`` of the SVMs.

    Returns
    -------
    dict
        ``sap`` (float) and ``score_matrix`` (K x F nested list).

    Raises
    ------
    DataError
        Bad or mismatched arrays, fewer than 2 code dimensions, a constant discrete training factor.
    ConfigError
        Bad seed, ``continuous`` not a bool.
    """
    seed = _check_seed(seed)
    if not isinstance(continuous, (bool, np.bool_)):
        raise ConfigError(f"continuous must be True or False, got {continuous!r}")
    x_train, y_train, x_test, y_test = _check_split(
        codes_train, factors_train, codes_test, factors_test, discrete=not continuous
    )
    if x_train.shape[1] < 2:
        raise DataError(f"SAP needs at least 2 code dimensions, got {x_train.shape[1]}")
    score = np.zeros((x_train.shape[1], y_train.shape[1]))
    if continuous:
        for i in range(x_train.shape[1]):
            for j in range(y_train.shape[1]):
                c = np.cov(x_train[:, i], y_train[:, j], ddof=1)
                if c[0, 0] > 1e-12 and c[1, 1] > 0:
                    score[i, j] = c[0, 1] ** 2 / (c[0, 0] * c[1, 1])
    else:
        from sklearn.svm import LinearSVC

        _check_varying(y_train, "factors_train")
        for i in range(x_train.shape[1]):
            for j in range(y_train.shape[1]):
                # dual=False: the same optimum as disentanglement_lib's dual=True, reached without
                # convergence warnings on one feature and many rows
                svm = LinearSVC(C=0.01, class_weight="balanced", dual=False, random_state=seed)
                svm.fit(x_train[:, i : i + 1], y_train[:, j])
                score[i, j] = np.mean(svm.predict(x_test[:, i : i + 1]) == y_test[:, j])
    return {"sap": sap_from_score_matrix(score), "score_matrix": score.tolist()}


# -- modularity and explicitness ------------------------------------------------------------------
def modularity_from_mutual_info(mutual_info) -> dict[str, Any]:
    r"""Modularity of a (K, F) mutual information matrix (Ridgeway & Mozer 2018, "Learning Deep
    Disentangled Embeddings With the F-Statistic Loss", NeurIPS, section 3), as
    disentanglement_lib's ``modularity``.

    With :math:`m_{ij}` the mutual information of code dimension :math:`i` and factor :math:`j`,
    and :math:`\theta_i = \max_j m_{ij}`:

    .. math:: \delta_i = \frac{\sum_j m_{ij}^2 - \theta_i^2}{\theta_i^2 (F - 1)}, \qquad
              \text{modularity} = \frac1K \sum_i (1 - \delta_i),

    where a dimension with :math:`\theta_i = 0` (informative about nothing) scores 0. A dimension
    informative about a single factor scores 1; one equally informative about all, 0. It does
    not ask that the information be much: codes independent of the factors, whose estimated
    mutual information is small and uneven, score well above 0 (about 0.6-0.7 on dSprites).

    Parameters
    ----------
    mutual_info : array_like, shape (K, F)
        Non-negative mutual information, F >= 2 factors.

    Returns
    -------
    dict
        ``modularity`` (float) and ``modularity_per_code`` :math:`1 - \delta_i` (list).

    Raises
    ------
    DataError
        Not a 2-D matrix of finite non-negative numbers with at least 2 columns.
    """
    m = _check_score_matrix(mutual_info, "mutual_info", min_cols=2)
    squared = np.square(m)
    top = squared.max(axis=1)
    delta = np.divide(squared.sum(axis=1) - top, top * (m.shape[1] - 1.0), out=np.ones_like(top), where=top > 0)
    per_code = np.where(top > 0, 1.0 - delta, 0.0)
    return {"modularity": float(per_code.mean()), "modularity_per_code": per_code.tolist()}


def _roc_auc(classes: np.ndarray, y: np.ndarray, proba: np.ndarray) -> float:
    """Macro ROC-AUC of one-hot labels over ``classes`` against ``proba``; a class all or none of
    whose rows belong to it (an undefined AUC) is left out, NaN when every class is."""
    from sklearn.metrics import roc_auc_score

    onehot = (y[:, None] == classes[None, :]).astype(np.int64)
    keep = (onehot.sum(0) > 0) & (onehot.sum(0) < len(y))
    if not keep.any():
        return float("nan")
    return float(roc_auc_score(onehot[:, keep], proba[:, keep], average="macro"))


def _mean_defined(values: list[float]) -> float | None:
    """The mean of the values that are not NaN; None when none is."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else None


def modularity_explicitness(
    codes_train, factors_train, codes_test, factors_test, *, n_bins: int = 20, seed: int = 0
) -> dict[str, Any]:
    r"""Modularity and explicitness (Ridgeway & Mozer 2018), as disentanglement_lib's
    ``compute_modularity_explicitness`` computes them.

    Modularity is :func:`modularity_from_mutual_info` of the mutual information of each training
    code dimension, discretized into ``n_bins`` equal-width bins (:func:`aekit.metrics.discretize`),
    with each factor (:func:`aekit.metrics.discrete_mutual_info`).

    Explicitness: the codes are standardized with the training mean and standard deviation, and
    per factor a one-vs-rest logistic regression (liblinear, C = 1: scikit-learn 0.20's
    ``LogisticRegression()`` that disentanglement_lib ran) is trained to predict it from all the
    codes; its score is the macro-averaged one-vs-rest ROC-AUC of the predicted class
    probabilities, on the training and on the test rows, and explicitness is the mean over
    factors. 1 when every factor is linearly decodable; about 0.5 for codes that say nothing.

    Two cases where disentanglement_lib fails are handled: a constant training code dimension
    is left unscaled (standard deviation taken as 1, not 0), and a class missing from the test
    rows (common with few rows and many classes) is left out of that factor's average instead
    of misaligning the one-hot columns with the classifier's.

    Parameters
    ----------
    codes_train, codes_test : array_like, shape (N, K), (M, K)
        Finite codes.
    factors_train, factors_test : array_like of int, shape (N, F), (M, F)
        Discrete factors of the same rows, F >= 2, each with at least two training values.
    n_bins : int, default 20
        Bins per code dimension for the mutual information.
    seed : int, default 0
        ``random_state`` of the classifiers.

    Returns
    -------
    dict
        ``modularity``, ``explicitness_train``, ``explicitness_test`` (floats; None when no
        factor's ROC-AUC is defined on those rows),
        ``modularity_per_code``, ``explicitness_per_factor_test`` (lists) and ``mutual_info``
        (K x F nested list, nats).

    Raises
    ------
    DataError
        Bad or mismatched arrays, fewer than 2 factors, a constant training factor.
    ConfigError
        ``n_bins`` not a positive integer, bad seed.
    """
    seed = _check_seed(seed)
    x_train, y_train, x_test, y_test = _check_split(codes_train, factors_train, codes_test, factors_test)
    _check_positive_int(n_bins, "n_bins")
    if y_train.shape[1] < 2:
        raise DataError(f"modularity needs at least 2 factors, got {y_train.shape[1]}")
    _check_varying(y_train, "factors_train")
    mi = discrete_mutual_info(discretize(x_train, n_bins), y_train)
    modularity = modularity_from_mutual_info(mi)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    train, test = [], []
    for j in range(y_train.shape[1]):
        model = _logistic_regression(seed).fit(x_train, y_train[:, j])
        train.append(_roc_auc(model.classes_, y_train[:, j], model.predict_proba(x_train)))
        test.append(_roc_auc(model.classes_, y_test[:, j], model.predict_proba(x_test)))
    return {
        "modularity": modularity["modularity"],
        "explicitness_train": _mean_defined(train),
        "explicitness_test": _mean_defined(test),
        "modularity_per_code": modularity["modularity_per_code"],
        "explicitness_per_factor_test": [None if np.isnan(t) else t for t in test],
        "mutual_info": mi.tolist(),
    }


# -- all of them ----------------------------------------------------------------------------------
def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 < float(scale) < np.inf:
        raise ConfigError(f"scale must be a positive finite number, got {scale!r}")
    return float(scale)


def _scaled(settings: dict[str, Any], scale: float) -> dict[str, Any]:
    """``settings`` with each ``num_*`` multiplied by ``scale`` (rounded; at least 2)."""
    return {k: max(2, round(v * scale)) if k.startswith("num_") else v for k, v in settings.items()}


def disentanglement_scores(
    encode: Callable[[Any], Any],
    sampler: GroundTruthSampler,
    seed: int = 0,
    *,
    metrics: Sequence[str] = METRICS,
    scale: float = 1.0,
) -> dict[str, Any]:
    """The disentanglement scores of an encoder on a ground truth, with disentanglement_lib's
    settings (:data:`DEFAULTS`), each started from ``numpy.random.RandomState(seed)`` as
    disentanglement_lib's ``evaluation.random_seed`` starts each.

    DCI, SAP, modularity/explicitness and MIG draw the same training and test rows that way, so
    those are drawn and encoded once and shared. The MIG here is disentanglement_lib's: the
    codes of ``num_train`` draws with replacement (:func:`aekit.metrics.mutual_information_gap`);
    :func:`aekit.metrics.dsprites_mig` draws distinct combinations instead. Chen et al. (2018),
    who defined MIG, compute it differently: from codes *sampled* from :math:`q(z|x)` rather than
    the means, with the mutual information estimated from the encoder's densities over the whole
    data set rather than from a 20-bin histogram, and on dSprites without the shape factor;
    their numbers are not comparable with these.

    Parameters
    ----------
    encode : callable
        Maps a batch of observations to codes ``(b, K)``, K >= 2 (for a VAE, the posterior means).
    sampler : GroundTruthSampler
        The ground truth.
    seed : int, default 0
    metrics : sequence of str, default :data:`METRICS`
        The scores to compute, a subset of :data:`METRICS`.
    scale : float, default 1.0
        Multiplies every ``num_*`` setting (rounded, at least 2): 1 gives disentanglement_lib's
        sample sizes, less gives quick, noisier estimates. Batch sizes, bins and thresholds stay.

    Returns
    -------
    dict
        JSON-able; the keys of the scores asked for: ``mig`` (float), ``beta_vae``,
        ``factor_vae`` (:func:`beta_vae_score`, :func:`factor_vae_score`), ``dci`` (the four
        scalars of :func:`dci`), ``sap`` (float), ``modularity`` (float), ``explicitness``
        (``{"train", "test"}``); and ``settings``: ``seed``, ``scale``, ``factor_names`` and the
        settings used by each score.

    Raises
    ------
    ConfigError
        Unknown metric names, bad scale, seed or sampler.
    DataError
        ``encode`` returns something other than finite ``(b, K)`` codes, or codes the scores
        cannot use (see each score).
    """
    seed = _check_seed(seed)
    scale = _check_scale(scale)
    sampler = _check_sampler(sampler)
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"metrics must be a non-empty subset of {', '.join(METRICS)}; got {list(metrics)!r}")
    wanted = [m for m in METRICS if m in metrics]
    settings = {m: _scaled(DEFAULTS[m], scale) for m in wanted}
    out: dict[str, Any] = {}
    encoder = _Encoder(encode)
    shared: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def rows(num_train: int, num_test: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training then test codes and factors from a fresh RandomState(seed), drawn once per sizes
        (``num_test`` None: any test size, the training rows being drawn first)."""
        for (n, m), data in shared.items():
            if n == num_train and num_test in (None, m):
                return data
        rs = np.random.RandomState(seed)
        z, f = _factor_code(encoder, sampler, num_train, rs)
        zt, ft = _factor_code(encoder, sampler, num_test, rs) if num_test else (z[:0], f[:0])
        shared[(num_train, num_test or 0)] = (z, f, zt, ft)
        return z, f, zt, ft

    for name in ("dci", "sap", "modularity_explicitness"):  # drawn first, so that the MIG shares them
        if name in settings:
            rows(settings[name]["num_train"], settings[name]["num_test"])
    for name in wanted:
        s = settings[name]
        if name == "mig":
            z, f, _, _ = rows(s["num_train"], None)
            out["mig"] = mutual_information_gap(z, f, n_bins=s["n_bins"])["mig"]
        elif name == "beta_vae":
            out["beta_vae"] = beta_vae_score(encoder, sampler, seed, **s)
        elif name == "factor_vae":
            out["factor_vae"] = factor_vae_score(encoder, sampler, seed, **s)
        elif name == "dci":
            result = dci(*rows(s["num_train"], s["num_test"]), seed=seed)
            out["dci"] = {
                k: result[k]
                for k in ("disentanglement", "completeness", "informativeness_train", "informativeness_test")
            }
        elif name == "sap":
            out["sap"] = sap(*rows(s["num_train"], s["num_test"]), continuous=s["continuous"], seed=seed)["sap"]
        else:
            result = modularity_explicitness(*rows(s["num_train"], s["num_test"]), n_bins=s["n_bins"], seed=seed)
            out["modularity"] = result["modularity"]
            out["explicitness"] = {"train": result["explicitness_train"], "test": result["explicitness_test"]}
    out["settings"] = {"seed": seed, "scale": scale, "factor_names": list(sampler.factor_names), **settings}
    return out


def dsprites_scores(
    encode: Callable[[Any], Any], seed: int = 0, *, metrics: Sequence[str] = METRICS, scale: float = 1.0
) -> dict[str, Any]:
    """:func:`disentanglement_scores` of an encoder on dSprites (:class:`DSpritesSampler`).

    Parameters
    ----------
    encode : callable
        Maps a float32 array ``(b, 4096)`` of images (pixels 0/1, row-major 64x64) to codes
        ``(b, K)``; a trained model's ``encode_array`` is one.
    seed : int, default 0
    metrics : sequence of str, default :data:`METRICS`
    scale : float, default 1.0
        1: disentanglement_lib's sample sizes (about 2.1 million images rendered and encoded,
        most for the BetaVAE and FactorVAE scores, and a DCI that takes tens of minutes);
        0.01: a hundred times fewer.

    Returns
    -------
    dict
        As :func:`disentanglement_scores`; ``settings["factor_names"]`` are dSprites' five.
    """
    return disentanglement_scores(encode, DSpritesSampler(), seed, metrics=metrics, scale=scale)
