r"""scikit-learn estimators on aekit's autoencoders.

- :class:`AutoencoderTransformer`: ``fit`` trains any registered variant (:func:`aekit.fit`);
  ``transform`` gives the codes (the posterior mean for the VAE family), ``inverse_transform``
  decodes codes back to the input units, ``score_samples`` scores each row (below).
- :class:`AutoencoderOutlierDetector`: the same model as an outlier detector in scikit-learn's
  conventions (those of :class:`~sklearn.ensemble.IsolationForest`): ``score_samples`` (high is
  normal), ``decision_function = score_samples - offset_`` with ``offset_`` the ``contamination``
  quantile of the training scores, and ``predict`` +1 (inlier) / -1 (outlier).
- :class:`StackedAutoencoderClassifier`: a deep network pretrained greedily layer by layer
  (stacked denoising autoencoders or RBMs: :mod:`aekit.pretrain`), then fine-tuned whole with a
  softmax head on the labels (:func:`aekit.finetune`).

Scores
------
For a plain autoencoder (every variant outside the VAE family) the score of a row :math:`x` is
minus its summed squared reconstruction error in the input units,
:math:`-\sum_i (x_i - \hat x_i)^2`, with :math:`\hat x` the deterministic reconstruction (no
corruption; the posterior mean or the top-k code where relevant). For the VAE family
(``model_.variant.generative``) it is the evidence lower bound of the row in nats, in model space
(after the scaling ``scale``):

.. math:: \mathcal L(x) = \frac1K \sum_{k=1}^K \log p(x \mid z_k)
          - \mathrm{KL}\big(q(z|x) \,\|\, \mathcal N(0, I)\big), \qquad
          z_k = \mu(x) + \sigma(x) \odot \epsilon_k,

with the closed-form KL and :math:`K` = ``elbo_samples`` draws :math:`\epsilon_k` that are fixed
(seeded) and shared by all rows, so that a row's score is a deterministic function of that row
alone, whatever else is scored with it. The KL weight is 1 whatever the training objective
(``beta``, ``capacity``): the score is the ELBO, whose mean over rows is
``-aekit.likelihood_bounds(model_, X)["nelbo"]`` up to Monte Carlo noise.

Precision
---------
The network is trained in float32. ``transform`` and ``inverse_transform`` run it in the precision
of their input, float32 for float32 and float64 (a float64 copy of the network, made per call)
for anything else, and return that dtype; the scores are always computed in float64. A row's
result then does not depend on the other rows it comes with: float32 results can differ in the
last bit with the batch size or a row's position in the batch (vectorised kernels and their
tails), float64 results only far below float32's resolution.

Pickling
--------
The estimators pickle (``pickle``, ``joblib``, ``GridSearchCV(n_jobs=...)``): the fitted model is
stored in the pickle as its safetensors bytes and JSON configuration, as in a run directory, so
the pickle holds no torch objects and unpickling rebuilds the model from tensors and JSON. A
pickle is the user's own object; aekit's run directories (:func:`aekit.load`) never use pickle.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from numbers import Integral, Real
from typing import Any, Callable

import numpy as np
import torch
from scipy.special import log_softmax, softmax
from sklearn.base import (BaseEstimator, ClassifierMixin, ClassNamePrefixFeaturesOutMixin, OutlierMixin,
                          TransformerMixin, _fit_context)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import variants
from .anomaly import correct_for_complexity, model_space_anomaly_scores
from .fitting import fit as _aekit_fit
from .classifier import Classifier, finetune
from .config import from_dict, jsonable, to_dict
from .data import TRANSFORM_KINDS, Transform
from .errors import DataError
from .losses import RECONSTRUCTION_LOSSES
from .metrics import input_complexity
from .model import Autoencoder, ModelConfig
from .nn import ACTIVATIONS
from .noise import DEFAULT_NU, NOISE_KINDS
from .variants.deep import PRETRAIN_METHODS, DeepOptions
from .variants.vae import elbo_per_example

__all__ = ["AutoencoderOutlierDetector", "AutoencoderTransformer", "StackedAutoencoderClassifier", "elbo_per_example"]

#: Rows encoded or decoded at once by transform, inverse_transform and the scores.
INFERENCE_BATCH = 4096
#: Marks the packed model inside a pickled estimator.
PACKED_FORMAT = "aekit-model"


# -- helpers shared by the estimators ------------------------------------------------------------
def _seed(random_state: Any) -> int:
    """An int seed for :func:`aekit.fit` from a scikit-learn ``random_state`` (equal states, equal seeds)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _hidden_sizes(hidden: Any) -> tuple[int, ...]:
    """``hidden`` (an int or a sequence of ints) as a tuple of positive ints; ValueError otherwise."""
    sizes = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
    if not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"hidden must be positive integers (the widths of the hidden layers), got {hidden!r}")
    return tuple(int(s) for s in sizes)


def _variant_options(variant: str, options: dict | None) -> dict[str, Any]:
    """``options`` checked to be options of ``variant`` (not model or training settings)."""
    options = dict(options or {})
    known = [f.name for f in dataclasses.fields(variants.get(variant).options)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"options {', '.join(map(repr, unknown))} are not options of the {variant!r} variant "
                         f"(its options: {', '.join(known) or 'none'})")
    return options


def _model_space(model: Autoencoder, X: np.ndarray) -> np.ndarray:
    """Raw rows ``X`` after the model's scaling, in ``X``'s precision (float64 for the scores)."""
    return model.transform.apply(X, dtype=X.dtype) if model.transform is not None else X


def _input_space(model: Autoencoder, X: np.ndarray) -> np.ndarray:
    """Model-space rows ``X`` back in the input units, in ``X``'s precision."""
    return model.transform.invert(X, dtype=X.dtype) if model.transform is not None else X


def _pack_model(model: Autoencoder) -> dict[str, Any]:
    """The model as plain data: its weights as safetensors bytes and its configuration as JSON
    (model config, data transform, run configuration, history), what a run directory holds."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"model": to_dict(model.config),
            "transform": model.transform.to_dict() if model.transform is not None else None,
            "device": str(next(model.parameters()).device)}
    for key in ("run_config", "history", "pretrain_record"):
        if getattr(model, key, None) is not None:
            meta[key] = getattr(model, key)
    return {"format": PACKED_FORMAT, "config": json.dumps(meta), "weights": save(state)}


def _unpack_model(packed: dict[str, Any]) -> Autoencoder:
    """Rebuild the model that :func:`_pack_model` packed, in eval mode, on its device (on the CPU,
    with a warning, where that device is not available)."""
    from safetensors.torch import load

    meta = json.loads(packed["config"])
    transform = Transform.from_dict(meta["transform"]) if meta["transform"] is not None else None
    model = Autoencoder(from_dict(ModelConfig, meta["model"]), transform)
    model.load_state_dict(load(packed["weights"]))
    for key in ("run_config", "history", "pretrain_record"):
        if key in meta:
            setattr(model, key, meta[key])
    device = torch.device(meta["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"the model was pickled on {device}, which is not available here; it is loaded on the CPU",
                      RuntimeWarning, stacklevel=3)
        device = torch.device("cpu")
    return model.to(device).eval()


def _pack_classifier(clf: Classifier) -> dict[str, Any]:
    """The classifier as plain data: its autoencoder packed by :func:`_pack_model`, plus the softmax
    head's weights as safetensors bytes, its classes and the fine-tuning record as JSON."""
    from safetensors.torch import save

    packed = _pack_model(clf.autoencoder)
    head = {k: v.detach().cpu().contiguous() for k, v in clf.head.state_dict().items()}
    record = {key: getattr(clf, key) for key in ("history", "scores", "run_config") if hasattr(clf, key)}
    return {**packed, "head": save(head), "classes": json.dumps(jsonable(clf.classes.tolist())),
            "record": json.dumps(record)}


def _unpack_classifier(packed: dict[str, Any]) -> Classifier:
    """Rebuild the classifier that :func:`_pack_classifier` packed, in eval mode, on its autoencoder's device."""
    from safetensors.torch import load

    model = _unpack_model(packed)
    clf = Classifier(model, json.loads(packed["classes"]))
    clf.head.load_state_dict(load(packed["head"]))
    for key, value in json.loads(packed["record"]).items():
        setattr(clf, key, value)
    return clf.to(next(model.parameters()).device).eval()


class _PackedState:
    """Pickling of an estimator's fitted torch modules as plain data (abstract mixin, before
    ``BaseEstimator`` in the bases).

    ``_packed`` maps a fitted attribute to ``(pack, unpack)``: ``pack`` turns the module into a dict
    of safetensors bytes and JSON marked with :data:`PACKED_FORMAT`, ``unpack`` rebuilds it.
    """

    _packed: dict[str, tuple[Callable[[Any], dict], Callable[[dict], Any]]] = {}

    def __getstate__(self):
        state = dict(super().__getstate__())  # (a copy: object.__getstate__ returns __dict__ itself)
        for name, (pack, _) in self._packed.items():
            if name in state:
                state[name] = pack(state[name])
        return state

    def __setstate__(self, state):
        for name, (_, unpack) in self._packed.items():
            if isinstance(state.get(name), dict) and state[name].get("format") == PACKED_FORMAT:
                state[name] = unpack(state[name])
        super().__setstate__(state)


class _AutoencoderEstimator(_PackedState, BaseEstimator):
    """The parameters, training and pickling shared by the autoencoder estimators (abstract).

    A subclass may name further fitted torch modules in ``_packed`` (attribute -> (pack, unpack)):
    they are pickled as plain data like ``model_``.
    """

    _parameter_constraints: dict = {
        "variant": [StrOptions(set(variants.names()))],
        "latent": [Interval(Integral, 1, None, closed="left")],
        "hidden": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS)), None],
        "code_activation": [StrOptions(set(ACTIVATIONS)), None],
        "loss": [StrOptions(set(RECONSTRUCTION_LOSSES))],
        "scale": [StrOptions(set(TRANSFORM_KINDS))],
        "epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "options": [dict, None],
        "elbo_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str],
        "verbose": ["verbose"],
    }
    _packed: dict[str, tuple[Callable[[Any], dict], Callable[[dict], Any]]] = {"model_": (_pack_model, _unpack_model)}

    def __init__(self, variant="ae", *, latent=16, hidden=(256, 128), activation=None, code_activation=None,
                 loss="mse", scale="standard", epochs=20, batch_size=128, lr=1e-3, options=None, elbo_samples=32,
                 random_state=None, device="cpu", verbose=False):
        self.variant = variant
        self.latent = latent
        self.hidden = hidden
        self.activation = activation
        self.code_activation = code_activation
        self.loss = loss
        self.scale = scale
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.options = options
        self.elbo_samples = elbo_samples
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- training --------------------------------------------------------------------------------
    def _aekit_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`aekit.fit` for these parameters: the whole sample is the
        training set (no validation or test split) and nothing is written."""
        kwargs: dict[str, Any] = {
            "latent": self.latent, "hidden": _hidden_sizes(self.hidden), "loss": self.loss, "scale": self.scale,
            "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "device": self.device,
            "seed": _seed(self.random_state), "val_fraction": 0.0, "test_fraction": 0.0,
            "out": None, "figures": False, "progress": bool(self.verbose),
        }
        for key in ("activation", "code_activation"):  # None: the variant's own default
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return {**kwargs, **_variant_options(self.variant, self.options)}

    def _fit_model(self, X: Any) -> np.ndarray:
        """Validate ``X``, train ``model_`` on it and set the fitted attributes; return ``X`` as validated."""
        X = validate_data(self, X, dtype=np.float32)
        model = _aekit_fit(self.variant, X, **self._aekit_kwargs())
        self.model_ = model
        self.n_components_ = model.config.latent
        self.history_ = model.history
        self.n_iter_ = len(model.history)
        return X

    # -- using the model -------------------------------------------------------------------------
    def _check(self, X: Any) -> np.ndarray:
        """Fitted, and ``X`` valid for the fitted model: float64 or float32 (other types become float64)."""
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=(np.float64, np.float32))

    def _network(self, dtype: Any) -> Autoencoder:
        """``model_`` in precision ``dtype``: itself for float32, else a float64 copy."""
        return self.model_ if dtype == np.float32 else copy.deepcopy(self.model_).double()

    def _scores(self, X: np.ndarray) -> np.ndarray:
        """Scores of validated rows ``X``, in float64 (see the module docstring)."""
        model = self._network(np.float64)
        X = _model_space(model, np.asarray(X, dtype=np.float64))
        return -model_space_anomaly_scores(model, X, elbo_samples=self.elbo_samples, batch_size=INFERENCE_BATCH)

    def score_samples(self, X):
        """The score of each row: minus its summed squared reconstruction error in the input units,
        or its evidence lower bound in nats for the VAE family (see :mod:`aekit.sklearn`). Higher is
        more typical of the training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            float64.
        """
        return self._scores(self._check(X))


_PARAMETERS_DOC = """    variant : str, default="ae"
        A registered variant (``aekit.variants.names()``), e.g. ae, denoising, sparse, contractive,
        ksparse, vae, beta-vae.
    latent : int, default=16
        Code size (``n_components_``).
    hidden : tuple of int, default=(256, 128)
        Widths of the encoder's hidden layers; the decoder mirrors them. ``()``: none.
    activation, code_activation : str, default=None
        Activation of the hidden layers and of the code layer (relu, sigmoid, tanh, elu, gelu, silu,
        leaky_relu, linear); None: the variant's default (e.g. a sigmoid code for ``sparse``).
    loss : {"mse", "bce"}, default="mse"
        Reconstruction loss: squared error (for the VAE family, a Gaussian decoder with standard
        deviation ``options["sigma"]``, 1 by default), right for any real-valued data; or the
        Bernoulli cross-entropy, which needs training data in [0, 1] after scaling: use it with
        ``scale="unit"``.
    scale : {"standard", "unit", "none"}, default="standard"
        Scaling fitted on the training data and applied before the network: per-feature mean 0 and
        standard deviation 1 (suits any tabular data), the global min / max to [0, 1], or none.
    epochs : int, default=20
        Passes over the training data; the optimizer takes ``epochs * ceil(n_samples / batch_size)``
        steps, so small data sets want more epochs.
    batch_size : int, default=128
    lr : float, default=1e-3
        Adam's learning rate.
    options : dict, default=None
        Options of the variant, e.g. ``{"beta": 4.0}`` (vae), ``{"noise": "mask", "nu": 0.3}``
        (denoising), ``{"k": 5}`` (ksparse); ``aekit train VARIANT --help`` lists them.
    elbo_samples : int, default=32
        Monte Carlo draws per row of the ELBO that scores a model of the VAE family.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, data order and noise (an int seed for :func:`aekit.fit` is drawn from
        it): the same ``random_state`` gives the same model on the CPU.
    device : str, default="cpu"
        Torch device of training and inference: cpu, cuda, cuda:1 or auto.
    verbose : bool or int, default=False
        Show a progress bar while training.
"""

_ATTRIBUTES_DOC = """    model_ : Autoencoder
        The trained model (in eval mode, with its data scaling in ``model_.transform``).
    n_components_ : int
        The code size.
    history_ : list of dict
        One record per epoch (loss terms, learning rate, samples per second).
    n_iter_ : int
        Epochs run.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during fit, when they all are strings.
"""


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _AutoencoderEstimator):
    __doc__ = f"""An autoencoder of any registered variant as a scikit-learn transformer.

    ``transform`` maps rows to their codes (for the VAE family, the posterior mean),
    ``inverse_transform`` decodes codes back to rows in the input units, and ``score_samples``
    gives each row's negative reconstruction error (the ELBO for the VAE family; see
    :mod:`aekit.sklearn`).

    Parameters
    ----------
{_PARAMETERS_DOC}
    Attributes
    ----------
{_ATTRIBUTES_DOC}
    See Also
    --------
    AutoencoderOutlierDetector : the same model as an outlier detector.
    aekit.fit : the training function behind ``fit``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from aekit.sklearn import AutoencoderTransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> ae = AutoencoderTransformer("ae", latent=8, hidden=(64,), epochs=5, random_state=0)
    >>> ae.fit_transform(X).shape
    (1797, 8)
    >>> ae.inverse_transform(ae.transform(X[:3])).shape
    (3, 64)
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the autoencoder on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows (all of them: there is no validation split).
        y : Ignored

        Returns
        -------
        self
        """
        self._fit_model(X)
        return self

    def transform(self, X):
        """The codes of ``X``: the deterministic code of the variant (no corruption; the posterior
        mean for the VAE family; the top-k code for ksparse).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components_)
            float32 for float32 input, else float64.
        """
        X = self._check(X)
        model = self._network(X.dtype)
        return model.batched(_model_space(model, X), model.encode, INFERENCE_BATCH)

    def inverse_transform(self, X):
        """Decode codes back to rows in the input units (the decoder's mean output).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components_)
            Codes, e.g. from :meth:`transform`.

        Returns
        -------
        ndarray of shape (n_samples, n_features_in_)
            float32 for float32 codes, else float64.
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=(np.float64, np.float32))
        if Z.shape[1] != self.n_components_:
            raise ValueError(f"X has {Z.shape[1]} features, but {type(self).__name__}.inverse_transform is "
                             f"expecting codes of {self.n_components_} features")
        model = self._network(Z.dtype)
        return _input_space(model, model.batched(Z, model.decode, INFERENCE_BATCH))

    def score(self, X, y=None):
        """The mean of :meth:`score_samples` over the rows of ``X`` (higher is better, e.g. for
        model selection with GridSearchCV).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        float
        """
        return float(np.mean(self.score_samples(X)))

    @property
    def _n_features_out(self):
        """Number of output features, for ``get_feature_names_out``."""
        return self.n_components_


class AutoencoderOutlierDetector(OutlierMixin, _AutoencoderEstimator):
    __doc__ = f"""Outlier detection by the reconstruction error of an autoencoder (the ELBO for the
    VAE family).

    ``score_samples`` is minus the summed squared reconstruction error of each row in the input
    units, or its evidence lower bound in nats for the VAE family (see :mod:`aekit.sklearn`): the
    lower, the more abnormal. As for :class:`~sklearn.ensemble.IsolationForest`, ``offset_`` is the
    ``contamination`` quantile of the training scores, ``decision_function(X) = score_samples(X) -
    offset_`` is negative for outliers, and ``predict`` returns -1 for them and +1 for inliers,
    so that a fraction ``contamination`` of the training rows is flagged.

    With ``complexity=True`` the scores are corrected by each row's input complexity
    :math:`L(x)` in bits (:func:`aekit.metrics.input_complexity`, Serra et al. 2020): the size of
    the row quantized to 8 bits over the training data's range (``data_range_``) and compressed
    by zlib. The reconstruction error is divided by it (an error per bit of the input, so that
    simple inputs that any model reconstructs well no longer look typical); for the VAE family
    :math:`L(x) \\ln 2` nats are subtracted from minus the ELBO, Serra et al.'s score.

    Parameters
    ----------
    contamination : float in (0, 0.5], default=0.1
        The expected proportion of outliers in the training data; it sets ``offset_``.
    complexity : bool, default=False
        Correct the scores by the rows' input complexity (see above).
{_PARAMETERS_DOC}
    Attributes
    ----------
    offset_ : float
        The ``contamination`` quantile of the training scores: ``decision_function`` is
        ``score_samples - offset_``.
    data_range_ : tuple of float
        The training data's minimum and maximum, the range quantized for ``complexity``.
{_ATTRIBUTES_DOC}
    See Also
    --------
    AutoencoderTransformer : the same model as a transformer (codes, decoding).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from aekit.sklearn import AutoencoderOutlierDetector
    >>> X, y = load_digits(return_X_y=True)
    >>> detector = AutoencoderOutlierDetector("ae", latent=4, hidden=(32,), epochs=30,
    ...                                       random_state=0).fit(X[y == 0])
    >>> bool((detector.predict(X[y == 1]) == -1).mean() > 0.5)   # ones are outliers among zeros
    True
    """

    _parameter_constraints: dict = {
        **_AutoencoderEstimator._parameter_constraints,
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
        "complexity": ["boolean"],
    }

    def __init__(self, variant="ae", *, contamination=0.1, complexity=False, latent=16, hidden=(256, 128),
                 activation=None, code_activation=None, loss="mse", scale="standard", epochs=20, batch_size=128,
                 lr=1e-3, options=None, elbo_samples=32, random_state=None, device="cpu", verbose=False):
        super().__init__(variant, latent=latent, hidden=hidden, activation=activation,
                         code_activation=code_activation, loss=loss, scale=scale, epochs=epochs,
                         batch_size=batch_size, lr=lr, options=options, elbo_samples=elbo_samples,
                         random_state=random_state, device=device, verbose=verbose)
        self.contamination = contamination
        self.complexity = complexity

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the autoencoder on ``X`` and set ``offset_`` from its training scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self
        """
        X = self._fit_model(X)
        self.data_range_ = (float(X.min()), float(X.max()))
        self.offset_ = float(np.percentile(self._scores(X), 100.0 * self.contamination))
        return self

    def _scores(self, X: np.ndarray) -> np.ndarray:
        scores = super()._scores(X)
        if not self.complexity:
            return scores
        bits = input_complexity(X, *self.data_range_)
        return -correct_for_complexity(-scores, bits, self.model_.variant.generative)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers, non-negative for inliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        ndarray of shape (n_samples,)
            float64; about a fraction ``contamination`` of the training rows are negative.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Label the rows: +1 for inliers (``decision_function >= 0``), -1 for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to label.

        Returns
        -------
        ndarray of int of shape (n_samples,)
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)


#: Options of the deep variant that StackedAutoencoderClassifier sets from its own parameters.
_PRETRAIN_PARAMETERS = {"pretrain": "pretrain", "pretrain_epochs": "pretrain_epochs", "noise": "noise", "nu": "nu",
                        "dae_lr": "pretrain_lr", "rbm_lr": "pretrain_lr"}


class StackedAutoencoderClassifier(ClassifierMixin, _PackedState, BaseEstimator):
    """A deep classifier pretrained greedily layer by layer, then fine-tuned whole with a softmax head.

    Training has two stages (Hinton & Salakhutdinov 2006; Vincent et al. 2010, section 3.5):

    1. Greedy layer-wise unsupervised pretraining of the hidden layers ``hidden`` (bottom to top),
       each layer trained on the codes of the one below (:mod:`aekit.pretrain`):
       ``pretrain="dae"`` trains one-hidden-layer denoising autoencoders
       (:func:`aekit.pretrain.stack_denoising`: tied weights, a fraction ``nu`` of each layer's
       input masked), ``"rbm"`` restricted Boltzmann machines by contrastive divergence
       (:func:`aekit.pretrain.train_dbn`), ``"none"`` leaves the random initialisation. This is the
       ``deep`` variant's pretraining (:func:`aekit.fit` with ``epochs=0``); the stack initialises
       the encoder.
    2. Supervised fine-tuning (:func:`aekit.finetune`): a multinomial logistic regression on the top
       layer (zero-initialised) and every layer below it are trained together on the cross-entropy
       by Adam, ``epochs`` passes over all the rows.

    ``predict_proba`` is the softmax of the head's logits, ``decision_function`` the logits (their
    difference, class 1 minus class 0, for two classes), and ``predict`` the class of the largest
    logit. Predictions are computed in float64 from the float32 network.

    Parameters
    ----------
    hidden : int or tuple of int, default=(256, 128)
        Widths of the hidden layers, bottom to top; the softmax head sits on the last one.
    pretrain : {"dae", "rbm", "none"}, default="dae"
        Layer-wise pretraining: stacked denoising autoencoders, a deep belief net of RBMs (needs
        ``activation="sigmoid"``), or none (random initialisation, the baseline).
    pretrain_epochs : int, default=10
        Pretraining passes over the data, per layer.
    pretrain_lr : float, default=None
        Pretraining learning rate: Adam's for ``"dae"`` (None: 1e-3), contrastive divergence's for
        the RBMs with binary units for ``"rbm"`` (None: 0.1, Hinton & Salakhutdinov's).
    noise : {"mask", "gaussian", "salt_pepper"}, default="mask"
        Corruption of each denoising layer's input (``"dae"``): masking noise sets a fraction
        ``nu`` of the entries to 0 (Vincent et al.'s).
    nu : float in [0, 1), default=0.25
        Fraction of the entries corrupted by masking or salt-and-pepper noise (``"dae"``).
    activation : str, default="sigmoid"
        Units of every hidden layer (sigmoid, relu, tanh, elu, gelu, silu, leaky_relu, linear).
    loss : {"bce", "mse"}, default="bce"
        Reconstruction loss of the bottom pretraining layer: Bernoulli cross-entropy (Bernoulli
        visible units for ``"rbm"``) on data scaled to [0, 1], or squared error (Gaussian visible
        units of unit variance for ``"rbm"``), e.g. with ``scale="standard"``.
    scale : {"unit", "standard", "none"}, default="unit"
        Scaling fitted on the training data and applied before the network: the global min / max
        to [0, 1] (what ``loss="bce"`` needs), per-feature standardisation, or none.
    epochs : int, default=20
        Fine-tuning passes over the data (0: the pretrained stack with a zero head, uniform
        probabilities).
    batch_size : int, default=32
        Rows per update, in pretraining and fine-tuning.
    lr : float, default=3e-3
        Adam's learning rate in fine-tuning.
    weight_decay : float, default=0.0
        L2 penalty on every weight in fine-tuning (Adam's ``weight_decay``).
    pretrain_options : dict, default=None
        Further options of the ``deep`` variant's pretraining: ``cd_k``, ``persistent``,
        ``code_lr``, ``rbm_weight_decay``, ``sigma`` (of Gaussian noise), ``pretrain_batch_size``
        (default ``batch_size``); ``aekit train deep --help`` describes them.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, pretraining, data order and noise (one int seed is drawn from it):
        the same ``random_state`` gives the same classifier on the CPU.
    device : str, default="cpu"
        Torch device of training and inference: cpu, cuda, cuda:1 or auto.
    verbose : bool or int, default=False
        Show progress bars while training.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (any type: ints, strings ...), in the order of the probabilities.
    classifier_ : aekit.Classifier
        The fine-tuned network: ``classifier_.autoencoder`` (its encoder is the stack, with the
        data scaling in ``.transform``) and ``classifier_.head`` (whose class ``i`` is ``classes_[i]``).
    pretrain_record_ : dict or None
        The pretraining record (``pretrain.json``): method, seconds, and per layer its settings and
        per-epoch history (``train_loss`` for ``"dae"``, ``reconstruction_error`` for ``"rbm"``);
        None for ``pretrain="none"``.
    history_ : list of dict
        One record per fine-tuning epoch (``train_nll``, ``train_accuracy``, learning rate ...).
    n_iter_ : int
        Fine-tuning epochs run.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during fit, when they all are strings.

    See Also
    --------
    aekit.finetune : the fine-tuning behind ``fit``, for run directories.
    AutoencoderTransformer : unsupervised codes for any classifier.

    References
    ----------
    Hinton, G. E. & Salakhutdinov, R. R. (2006). Reducing the dimensionality of data with neural
    networks. *Science* 313(5786), 504-507.
    Vincent, P., Larochelle, H., Lajoie, I., Bengio, Y. & Manzagol, P.-A. (2010). Stacked denoising
    autoencoders. *JMLR* 11, 3371-3408.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> from aekit.sklearn import StackedAutoencoderClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> clf = StackedAutoencoderClassifier(hidden=(128,), pretrain_epochs=5, epochs=10,
    ...                                    random_state=0).fit(X_train, y_train)
    >>> clf.score(X_test, y_test) > 0.9
    True
    >>> clf.predict_proba(X_test[:2]).shape
    (2, 10)
    """

    _parameter_constraints: dict = {
        "hidden": ["array-like", Interval(Integral, 1, None, closed="left")],
        "pretrain": [StrOptions(set(PRETRAIN_METHODS))],
        "pretrain_epochs": [Interval(Integral, 1, None, closed="left")],
        "pretrain_lr": [Interval(Real, 0, None, closed="neither"), None],
        "noise": [StrOptions(set(NOISE_KINDS))],
        "nu": [Interval(Real, 0, 1, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "loss": [StrOptions(set(RECONSTRUCTION_LOSSES))],
        "scale": [StrOptions(set(TRANSFORM_KINDS))],
        "epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "pretrain_options": [dict, None],
        "random_state": ["random_state"],
        "device": [str],
        "verbose": ["verbose"],
    }
    _packed = {"classifier_": (_pack_classifier, _unpack_classifier)}

    def __init__(self, hidden=(256, 128), *, pretrain="dae", pretrain_epochs=10, pretrain_lr=None, noise="mask",
                 nu=DEFAULT_NU, activation="sigmoid", loss="bce", scale="unit", epochs=20, batch_size=32, lr=3e-3,
                 weight_decay=0.0, pretrain_options=None, random_state=None, device="cpu", verbose=False):
        self.hidden = hidden
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.noise = noise
        self.nu = nu
        self.activation = activation
        self.loss = loss
        self.scale = scale
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.pretrain_options = pretrain_options
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _deep_options(self) -> dict[str, Any]:
        """The ``deep`` variant's options for these parameters (``pretrain_options`` checked)."""
        options = dict(self.pretrain_options or {})
        known = {f.name for f in dataclasses.fields(DeepOptions)}
        unknown = sorted(set(options) - known)
        if unknown:
            free = ", ".join(sorted(known - set(_PRETRAIN_PARAMETERS)))
            raise ValueError(f"pretrain_options {', '.join(map(repr, unknown))} are not options of the deep "
                             f"variant's pretraining (its options: {free})")
        taken = sorted(set(options) & set(_PRETRAIN_PARAMETERS))
        if taken:
            raise ValueError(f"pretrain_options {', '.join(map(repr, taken))} are set by the parameter(s) "
                             f"{', '.join(sorted({_PRETRAIN_PARAMETERS[k] for k in taken}))}, not in pretrain_options")
        options = {"pretrain_batch_size": self.batch_size, **options, "pretrain": self.pretrain,
                   "pretrain_epochs": self.pretrain_epochs, "noise": self.noise, "nu": self.nu}
        if self.pretrain_lr is not None and self.pretrain != "none":
            options["dae_lr" if self.pretrain == "dae" else "rbm_lr"] = self.pretrain_lr
        return options

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Pretrain the stack on ``X`` layer by layer, then fine-tune it with a softmax head on ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows (all of them: there is no validation split).
        y : array-like of shape (n_samples,)
            Class labels of any type (at least two classes).

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        classes, y_index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"{type(self).__name__} needs at least two classes, but y holds one class "
                            f"({classes.tolist()[0]!r})")
        sizes = _hidden_sizes(self.hidden)
        if not sizes:
            raise ValueError("hidden must name at least one layer width (the layer under the softmax head)")
        seed, progress = _seed(self.random_state), bool(self.verbose)
        model = _aekit_fit("deep", X, hidden=sizes[:-1], latent=sizes[-1], activation=self.activation,
                           code_activation=self.activation, loss=self.loss, scale=self.scale, epochs=0,
                           device=self.device, seed=seed, val_fraction=0.0, test_fraction=0.0, out=None,
                           figures=False, progress=progress, **self._deep_options())
        clf = finetune(model, X, y_index, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                       weight_decay=self.weight_decay, seed=seed, device=self.device, val_fraction=0.0,
                       test_fraction=0.0, progress=progress)
        self.classes_ = classes
        self.classifier_ = clf
        self.pretrain_record_ = getattr(model, "pretrain_record", None)
        self.history_ = clf.history
        self.n_iter_ = len(clf.history)
        return self

    def _logits(self, X) -> np.ndarray:
        """The head's logits of ``X``, float64 (a float64 copy of the network, made per call)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        clf = copy.deepcopy(self.classifier_).double()
        model = clf.autoencoder
        return model.batched(_model_space(model, X), clf.logits, INFERENCE_BATCH)

    def decision_function(self, X):
        """The logits of the softmax head: shape (n_samples, n_classes), or for two classes the
        log-odds of ``classes_[1]`` against ``classes_[0]`` (positive: ``classes_[1]``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            float64.
        """
        logits = self._logits(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_log_proba(self, X):
        """Log-probabilities of the classes: the log-softmax of the logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            float64, columns in the order of ``classes_``.
        """
        return log_softmax(self._logits(X), axis=1)

    def predict_proba(self, X):
        """Probabilities of the classes: the softmax of the logits (rows sum to 1).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            float64, columns in the order of ``classes_``.
        """
        return softmax(self._logits(X), axis=1)

    def predict(self, X):
        """The class of the largest logit (the most probable class) of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        best = self._logits(X).argmax(1)  # (checks that the estimator is fitted before classes_ is read)
        return self.classes_[best]
