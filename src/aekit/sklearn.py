r"""scikit-learn estimators on aekit's autoencoders.

- :class:`AutoencoderTransformer`: ``fit`` trains any registered variant (:func:`aekit.fit`);
  ``transform`` gives the codes (the posterior mean for the VAE family), ``inverse_transform``
  decodes codes back to the input units, ``score_samples`` scores each row (below).
- :class:`AutoencoderOutlierDetector`: an outlier detector in scikit-learn's conventions (those
  of :class:`~sklearn.ensemble.IsolationForest`): ``score_samples`` (high is normal),
  ``decision_function = score_samples - offset_`` with ``offset_`` set by ``contamination`` (a
  quantile of the training scores, or ``"auto"``) or ``threshold_fpr``, ``predict`` +1 (inlier) /
  -1 (outlier), and ``feature_scores`` (each feature's share of a row's score). By default
  (``variant=None``) an ensemble of small autoencoders on subsamples (:mod:`aekit.ensemble`);
  with a named variant, that variant's model as below.
- :class:`StackedAutoencoderClassifier`: a deep network pretrained greedily layer by layer
  (stacked denoising autoencoders or RBMs: :mod:`aekit.pretrain`), then fine-tuned whole with a
  softmax head on the labels (:func:`aekit.finetune`).

Scores
------
For a plain autoencoder (every variant outside the VAE family) the score of a row :math:`x` is
minus its summed squared reconstruction error in the input units,
:math:`-\sum_i (x_i - \hat x_i)^2`, with :math:`\hat x` the deterministic reconstruction (no
corruption; the posterior mean or the top-k code where relevant). For the VAE family
(whose variants have a prior and an ELBO) it is the evidence lower bound of the row in nats, in model space
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

Parameters
----------
The parameters that are options of aekit (the fields of :class:`~aekit.model.ModelConfig`,
:class:`~aekit.train.TrainConfig`, :class:`~aekit.data.DataConfig` and the deep variant's
pretraining options) take their defaults and their scikit-learn constraints from those dataclasses:
the type and the choices of each field, and the range of numbers that aekit's own validation
accepts (:func:`_constraint`). The defaults an estimator sets otherwise are listed in one place,
:data:`AUTOENCODER_OVERRIDES` and :data:`CLASSIFIER_OVERRIDES`, and in the class docstrings.

Pickling
--------
The estimators pickle (``pickle``, ``joblib``, ``GridSearchCV(n_jobs=...)``): the fitted model is
stored in the pickle as the self-contained bytes of aekit's one model serializer
(:func:`aekit.io.model_to_bytes`: safetensors with a checksum, the JSON configuration in its
metadata), so the pickle holds no torch objects and unpickling rebuilds the model from tensors and
JSON. A pickle is the user's own object; aekit's run directories (:func:`aekit.load`) never use
pickle.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import textwrap
import types
import typing
import warnings
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.special import log_softmax, softmax
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    OutlierMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import io, variants
from .anomaly import detection_offset
from .anomaly import feature_scores as _model_feature_scores
from .classifier import Classifier, finetune
from .config import field_default, from_dict, jsonable
from .data import DataConfig
from .ensemble import EnsembleConfig, fit_ensemble
from .errors import AekitError, ConfigError, DataError
from .fitting import fit as _aekit_fit
from .metrics import RESIDUAL_ERRORS, ResidualNorm, input_complexity
from .model import Autoencoder, ModelConfig
from .train import TrainConfig

__all__ = ["AutoencoderOutlierDetector", "AutoencoderTransformer", "StackedAutoencoderClassifier"]

#: the options of the variant that pretrains layer-wise (the deep autoencoder), which the classifier drives
DeepOptions = variants.layerwise().options

#: Rows encoded or decoded at once by transform, inverse_transform and the scores.
INFERENCE_BATCH = 4096


# -- parameters derived from aekit's configuration dataclasses -----------------------------------
#: A valid configuration of each dataclass whose defaults alone are not one (ModelConfig's
#: ``input_dim`` is set from the data): the base of which :func:`_accepts` changes one field.
_VALID_BASE: dict[type, dict[str, Any]] = {ModelConfig: {"input_dim": 1}}
#: Where the range of a real option may end (those of aekit's options all end at 0, 1 or nowhere):
#: :func:`_range` tries each edge, the numbers next to it, and numbers in between and beyond.
_EDGES = (0.0, 1.0)
_INTEGER_PROBES = (-2, -1, 0, 1, 2, 3)
_REAL_PROBES = tuple(
    sorted(
        {-2.0, 0.5, 2.0, *(v for e in _EDGES for v in (math.nextafter(e, -math.inf), e, math.nextafter(e, math.inf)))}
    )
)


def _accepts(cls: type, name: str, value: Any) -> bool:
    """Whether aekit takes ``value`` for field ``name`` of dataclass ``cls``: the check of
    :func:`aekit.config.from_dict` (the field's type and choices, then the dataclass's ``validate``),
    which :func:`aekit.fit` applies to every option."""
    try:
        from_dict(cls, {**_VALID_BASE.get(cls, {}), name: value})
    except AekitError:
        return False
    return True


def _edge(value: float) -> int | float:
    """An edge as the constraint's message shows it (``[0, 1]``, not ``[0.0, 1.0]``)."""
    return int(value) if float(value).is_integer() else value


def _range(cls: type, name: str, kind: type, wrap: Callable[[Any], Any]) -> Interval:
    """The :class:`~sklearn.utils._param_validation.Interval` of the numbers (``kind``: Integral or
    Real) that aekit accepts for field ``name`` of ``cls`` (each number passed as ``wrap(number)``),
    found by asking :func:`_accepts` at the probes. A rule that is not an interval, or whose real edge
    is not in :data:`_EDGES`, is a TypeError at import: extend the probes with it."""
    points = _INTEGER_PROBES if kind is Integral else _REAL_PROBES
    ok = [_accepts(cls, name, wrap(p)) for p in points]
    where = f"{cls.__name__}.{name}"
    if not any(ok):
        raise TypeError(f"{where} accepts none of the probes {points}")
    i, j = ok.index(True), len(ok) - 1 - ok[::-1].index(True)
    if not all(ok[i : j + 1]):
        raise TypeError(f"{where}: the numbers aekit accepts are not an interval")
    left = right = None
    left_closed = right_closed = False
    if i > 0:  # points[i - 1] refused, points[i] accepted
        before, first = points[i - 1], points[i]
        if kind is Integral or (first in _EDGES and before == math.nextafter(first, -math.inf)):
            left, left_closed = first, True
        elif before in _EDGES and first == math.nextafter(before, math.inf):
            left = before
        else:
            raise TypeError(f"{where}: its range starts between {before} and {first}, not at an edge of {_EDGES}")
    if j < len(points) - 1:  # points[j] accepted, points[j + 1] refused
        last, after = points[j], points[j + 1]
        if kind is Integral or (last in _EDGES and after == math.nextafter(last, math.inf)):
            right, right_closed = last, True
        elif after in _EDGES and last == math.nextafter(after, -math.inf):
            right = after
        else:
            raise TypeError(f"{where}: its range ends between {last} and {after}, not at an edge of {_EDGES}")
    closed = {(True, True): "both", (True, False): "left", (False, True): "right", (False, False): "neither"}
    return Interval(
        kind,
        None if left is None else _edge(left),
        None if right is None else _edge(right),
        closed=closed[left_closed, right_closed],
    )


def _field_type(cls: type, name: str) -> tuple[Any, bool]:
    """The type of field ``name`` of ``cls`` without ``Optional``, and whether it admits None."""
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) != len(typing.get_args(tp))
    return tp, False


def _field(cls: type, name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def _constraint(cls: type, name: str, *, nullable: bool = False) -> list:
    """The scikit-learn constraint of a parameter that is field ``name`` of dataclass ``cls``, from
    the field itself: its type (bool, int, float, str, a tuple of ints, dict), its ``choices``
    (:class:`StrOptions`), for numbers the range aekit accepts (:func:`_range`), and None where the
    field is optional or the estimator's default is None (``nullable``)."""
    tp, optional = _field_type(cls, name)
    choices = _field(cls, name).metadata.get("choices")
    if choices:
        out: list = [StrOptions(set(choices))]
    elif tp is bool:
        out = ["boolean"]
    elif tp is int:
        out = [_range(cls, name, Integral, lambda v: v)]
    elif tp is float:
        out = [_range(cls, name, Real, float)]
    elif tp is str:
        out = [str]
    elif typing.get_origin(tp) is tuple and typing.get_args(tp) == (int, ...):
        out = ["array-like", _range(cls, name, Integral, lambda v: (v,))]  # a single int is one layer
    elif tp is dict:
        out = [dict]
    else:
        raise TypeError(f"{cls.__name__}.{name}: no scikit-learn constraint for the type {tp}")
    return [*out, None] if optional or nullable else out


def _parameters(fields: dict[str, type], overrides: dict[str, Any]) -> tuple[dict[str, list], dict[str, Any]]:
    """``(constraints, defaults)`` of estimator parameters that are dataclass fields: ``fields`` maps
    each to its dataclass, ``overrides`` holds the defaults that differ from the dataclass's (a None
    default also admits None)."""
    constraints, defaults = {}, {}
    for name, cls in fields.items():
        default = overrides[name] if name in overrides else field_default(_field(cls, name))
        constraints[name] = _constraint(cls, name, nullable=default is None)
        defaults[name] = default
    return constraints, defaults


def _shown(cls: type, name: str, default: Any) -> str:
    """``name : type, default=...`` of a parameter docstring, from the field (type and choices)."""
    tp, optional = _field_type(cls, name)
    choices = _field(cls, name).metadata.get("choices")
    if choices:
        kind = "{" + ", ".join(f'"{c}"' for c in choices) + "}"
    else:
        kind = {bool: "bool", int: "int", float: "float", str: "str", dict: "dict"}.get(tp, "tuple of int")
    if optional or default is None:
        kind += " or None"
    shown = repr(default).replace("'", '"')  # numpydoc's default="standard"
    return f"{name} : {kind}, default={shown}"


def _documented(fields: dict[str, type], defaults: dict[str, Any], texts: dict[str, str]) -> str:
    """The numpydoc entries of ``fields``: the header from the field (:func:`_shown`), the text from
    ``texts`` or else the field's help."""
    entries = []
    for name, cls in fields.items():
        text = texts.get(name)
        if text is None:
            help_text = _field(cls, name).metadata.get("help", "")
            text = textwrap.fill(
                help_text[:1].upper() + help_text[1:] + ".", 92, subsequent_indent=" " * 8, break_on_hyphens=False
            )
        entries.append(f"    {_shown(cls, name, defaults[name])}\n        {text}\n")
    return "".join(entries)


#: The training settings both kinds of estimator expose: every field of :class:`aekit.train.TrainConfig`
#: except the seed (``random_state``), ``checkpoint_every``, ``checkpoint_seconds`` and ``restore_best``
#: (the estimators write no checkpoints and hold out no validation rows).
_TRAINING = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "momentum",
    "weight_decay",
    "schedule",
    "clip_grad",
    "patience",
    "min_delta",
    "precision",
    "compile",
    "device",
)
#: The autoencoder estimators' parameters that are options of aekit, each with its dataclass.
_AUTOENCODER_FIELDS: dict[str, type] = {
    **dict.fromkeys(
        ("variant", "latent", "hidden", "activation", "code_activation", "output_activation", "tied", "loss"),
        ModelConfig,
    ),
    "scale": DataConfig,
    **dict.fromkeys(_TRAINING, TrainConfig),
}
#: Where the defaults of :class:`AutoencoderTransformer` and :class:`AutoencoderOutlierDetector`
#: differ from aekit's dataclasses: None (the variant's registered default, which :func:`aekit.fit`
#: applies) for the units and the tying of weights, and per-feature standardisation instead of
#: DataConfig's ``scale="unit"``, since squared error on standardised features suits any tabular
#: data (the estimators' tables and results are on that scaling). ``latent``, ``hidden`` and
#: ``loss`` are ModelConfig's defaults and always given, so a variant's registered ones (the VAE
#: family's ``loss="bce"``) do not apply.
#: The estimators hold out no validation rows, so early stopping could only watch the training loss,
#: which rarely stops falling: they train a fixed number of epochs by default (``patience`` is
#: still theirs to set), where aekit's own default (:class:`~aekit.train.TrainConfig`) is a
#: generous maximum ended by the validation loss.
FIXED_EPOCHS: dict[str, Any] = {"epochs": 20, "patience": None}
AUTOENCODER_OVERRIDES: dict[str, Any] = {
    "activation": None,
    "code_activation": None,
    "output_activation": None,
    "tied": None,
    "scale": "standard",
    **FIXED_EPOCHS,
}
_AE_CONSTRAINTS, _AE = _parameters(_AUTOENCODER_FIELDS, AUTOENCODER_OVERRIDES)  # _AE: the defaults
#: The parameters of the autoencoder estimators that are None by default: the variant's own default.
_VARIANT_DEFAULTED = tuple(name for name, value in AUTOENCODER_OVERRIDES.items() if value is None)


# -- helpers shared by the estimators ------------------------------------------------------------
def _seed(random_state: Any) -> int:
    """An int seed for :func:`aekit.fit` from a scikit-learn ``random_state`` (equal states, equal seeds)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _hidden_sizes(hidden: Any) -> tuple[int, ...]:
    """``hidden`` (an int or a sequence of ints) as a tuple of positive ints; ValueError otherwise."""
    sizes = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
    if not all(isinstance(s, Integral) and not isinstance(s, bool) and int(s) > 0 for s in sizes):
        raise ValueError(f"hidden must be positive integers (the widths of the hidden layers), got {hidden!r}")
    return tuple(int(s) for s in sizes)


def _variant_options(variant: str, options: dict | None) -> dict[str, Any]:
    """``options`` checked to be options of ``variant`` (not model or training settings)."""
    options = dict(options or {})
    known = [f.name for f in dataclasses.fields(variants.get(variant).options)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"options {', '.join(map(repr, unknown))} are not options of the {variant!r} variant "
            f"(its options: {', '.join(known) or 'none'})"
        )
    return options


def _model_space(model: Autoencoder, X: np.ndarray) -> np.ndarray:
    """Raw rows ``X`` after the model's scaling, in ``X``'s precision (float64 for the scores)."""
    return model.transform.apply(X, dtype=X.dtype) if model.transform is not None else X


def _input_space(model: Autoencoder, X: np.ndarray) -> np.ndarray:
    """Model-space rows ``X`` back in the input units, in ``X``'s precision."""
    return model.transform.invert(X, dtype=X.dtype) if model.transform is not None else X


# -- pickling: the fitted modules as aekit's self-contained model bytes ---------------------------
def _pack(module: torch.nn.Module, config: dict[str, Any]) -> bytes:
    """``module`` as :func:`aekit.io.model_to_bytes` with ``config`` and the module's device."""
    return io.model_to_bytes(module, {**config, "device": str(next(module.parameters()).device)})


def _unpack(raw: bytes, build: Callable[[dict], torch.nn.Module] | None = None) -> Any:
    """Rebuild the module that :func:`_pack` packed, in eval mode, on its device (on the CPU, with
    a warning, where that device is not available)."""
    module, config = io.model_from_bytes(raw, build, where="the pickled estimator's model")
    device = torch.device(config["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"the model was pickled on {device}, which is not available here; it is loaded on the CPU",
            RuntimeWarning,
            stacklevel=4,
        )
        device = torch.device("cpu")
    return module.to(device)


def _pack_model(model: Autoencoder) -> bytes:
    """The autoencoder, with its configuration and records (history, run configuration ...)."""
    return _pack(model, io.model_config(model))


def _unpack_model(raw: bytes) -> Autoencoder:
    return _unpack(raw)


def _pack_classifier(clf: Classifier) -> bytes:
    """The classifier (its autoencoder and softmax head), with its autoencoder's configuration, its
    classes and the records of both (fine-tuning history, scores, pretraining record ...)."""
    return _pack(clf, {**io.model_config(clf.autoencoder), "classes": jsonable(clf.classes.tolist())})


def _unpack_classifier(raw: bytes) -> Classifier:
    where = "the pickled estimator's classifier"
    return _unpack(raw, lambda config: Classifier(io.autoencoder_from_config(config, where=where), config["classes"]))


class _PackedState:
    """Pickling of an estimator's fitted torch modules as plain data (abstract mixin, before
    ``BaseEstimator`` in the bases).

    ``_packed`` maps a fitted attribute to ``(pack, unpack)``: ``pack`` turns the module into the
    bytes of :func:`aekit.io.model_to_bytes`, ``unpack`` rebuilds it from them.
    """

    _packed: ClassVar[dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]]] = {}

    def __getstate__(self):
        state = dict(super().__getstate__())  # (a copy: object.__getstate__ returns __dict__ itself)
        for name, (pack, _) in self._packed.items():
            if name in state:
                state[name] = pack(state[name])
        return state

    def __setstate__(self, state):
        for name, (_, unpack) in self._packed.items():
            if isinstance(state.get(name), bytes):
                state[name] = unpack(state[name])
        super().__setstate__(state)


_PARAMETERS_TEXT = {
    "optimizer": "The optimizer: Adam, AdamW (decoupled weight decay) or SGD (with ``momentum``).",
    "variant": "A registered variant (``aekit.variants.names()``), e.g. ae, denoising, sparse, contractive,\n"
    "        ksparse, vae, beta-vae.",
    "latent": "Code size (``n_components_``).",
    "hidden": "Widths of the encoder's hidden layers; the decoder mirrors them. ``()``: none.",
    "activation": "Activation of the hidden layers; None: the variant's default.",
    "code_activation": "Activation of the code layer; None: the variant's default (e.g. a sigmoid code\n"
    "        for ``sparse``).",
    "output_activation": "Activation of the decoder's output with the mse loss; None: the variant's default.",
    "tied": "Decoder weights are the transposes of the encoder's; None: the variant's default.",
    "loss": "Reconstruction loss: squared error (for the VAE family, a Gaussian decoder with standard\n"
    '        deviation ``options["sigma"]``, 1 by default), right for any real-valued data; or the\n'
    "        Bernoulli cross-entropy, which needs training data in [0, 1] after scaling: use it with\n"
    '        ``scale="unit"``.',
    "scale": "Scaling fitted on the training data and applied before the network: per-feature mean 0 and\n"
    '        standard deviation 1 (suits any tabular data; aekit\'s own default is ``"unit"``), the\n'
    "        global min / max to [0, 1], or none.",
    "epochs": "Passes over the training data; the optimizer takes ``epochs * ceil(n_samples / batch_size)``\n"
    "        steps, so small data sets want more epochs.",
    "batch_size": "Rows per update.",
    "lr": 'The optimizer\'s learning rate (the peak rate for ``schedule="onecycle"``).',
    "patience": "Stop after this many epochs without an improvement of the training loss by more than\n"
    "        ``min_delta`` (there is no validation split); None: train all ``epochs``.",
    "min_delta": "Smallest improvement of the training loss that counts for ``patience``.",
    "device": "Torch device of training and inference: cpu, cuda, cuda:1 or auto.",
}

_PARAMETERS_DOC = (
    _documented(_AUTOENCODER_FIELDS, _AE, _PARAMETERS_TEXT)
    + """    options : dict, default=None
        Options of the variant, e.g. ``{"beta": 4.0}`` (vae), ``{"noise": "mask", "nu": 0.3}``
        (denoising), ``{"k": 5}`` (ksparse); ``aekit train VARIANT --help`` lists them.
    elbo_samples : int, default=32
        Monte Carlo draws per row of the ELBO that scores a model of the VAE family.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, data order and noise (an int seed for :func:`aekit.fit` is drawn from
        it): the same ``random_state`` gives the same model on the CPU.
    verbose : bool or int, default=False
        Show a progress bar while training.
"""
)


def _overrides_doc(overrides: dict[str, Any], sources: str) -> str:
    """The paragraph of a class docstring that states its defaults: aekit's own but ``overrides``."""
    shown = ", ".join(f"``{name}={value!r}``".replace("'", '"') for name, value in overrides.items())
    none = "; None: the variant's registered default" if None in overrides.values() else ""
    text = (
        f"The defaults are aekit's own ({sources}), except these estimator-level overrides: {shown}{none}. "
        f"Each parameter's constraint is derived from its field: type, choices and the range aekit accepts."
    )
    return textwrap.indent(textwrap.fill(text, 96, break_on_hyphens=False), " " * 4) + "\n"


_DEFAULTS_DOC = _overrides_doc(
    AUTOENCODER_OVERRIDES,
    ":class:`~aekit.model.ModelConfig`, "
    ":class:`~aekit.train.TrainConfig`, :class:`~aekit.data.DataConfig`; see "
    ":data:`AUTOENCODER_OVERRIDES`",
)


class _AutoencoderEstimator(_PackedState, BaseEstimator):
    """The parameters, training and pickling shared by the autoencoder estimators (abstract).

    A subclass may name further fitted torch modules in ``_packed`` (attribute -> (pack, unpack)):
    they are pickled as plain data like ``model_``.
    """

    _parameter_constraints: ClassVar[dict] = {
        **_AE_CONSTRAINTS,
        "variant": [StrOptions(set(variants.names()))],  # the registry's names
        "options": [dict, None],
        "elbo_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }
    _packed: ClassVar[dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]]] = {
        "model_": (_pack_model, _unpack_model)
    }

    def __init__(
        self,
        variant=_AE["variant"],
        *,
        latent=_AE["latent"],
        hidden=_AE["hidden"],
        activation=_AE["activation"],
        code_activation=_AE["code_activation"],
        output_activation=_AE["output_activation"],
        tied=_AE["tied"],
        loss=_AE["loss"],
        scale=_AE["scale"],
        epochs=_AE["epochs"],
        batch_size=_AE["batch_size"],
        lr=_AE["lr"],
        optimizer=_AE["optimizer"],
        momentum=_AE["momentum"],
        weight_decay=_AE["weight_decay"],
        schedule=_AE["schedule"],
        clip_grad=_AE["clip_grad"],
        patience=_AE["patience"],
        min_delta=_AE["min_delta"],
        precision=_AE["precision"],
        compile=_AE["compile"],
        options=None,
        elbo_samples=32,
        random_state=None,
        device=_AE["device"],
        verbose=False,
    ):
        self.variant = variant
        self.latent = latent
        self.hidden = hidden
        self.activation = activation
        self.code_activation = code_activation
        self.output_activation = output_activation
        self.tied = tied
        self.loss = loss
        self.scale = scale
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.clip_grad = clip_grad
        self.patience = patience
        self.min_delta = min_delta
        self.precision = precision
        self.compile = compile
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
            "latent": self.latent,
            "hidden": _hidden_sizes(self.hidden),
            "loss": self.loss,
            "scale": self.scale,
            **{name: getattr(self, name) for name in _TRAINING},
            "seed": _seed(self.random_state),
            "val_fraction": 0.0,
            "test_fraction": 0.0,
            "out": None,
            "figures": False,
            "progress": bool(self.verbose),
        }
        for key in _VARIANT_DEFAULTED:  # None: the variant's own default
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
        return self._model_scores(X)

    def _model_scores(self, X: np.ndarray, norm: ResidualNorm | None = None) -> np.ndarray:
        """The model's scores of validated rows ``X``, in float64; ``norm``: how a residual is
        summed (the squared error by default)."""
        model = self._network(np.float64)
        X = _model_space(model, np.asarray(X, dtype=np.float64))
        return -model.variant.anomaly_scores(
            model, X, elbo_samples=self.elbo_samples, batch_size=INFERENCE_BATCH, norm=norm
        )

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

{_DEFAULTS_DOC}
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
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__}.inverse_transform is "
                f"expecting codes of {self.n_components_} features"
            )
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
    __doc__ = f"""Outlier detection by the reconstruction error of autoencoders (the ELBO for the
    VAE family).

    With ``variant=None`` (the default) the detector is aekit's recipe for unlabelled, possibly
    contaminated tables (:mod:`aekit.ensemble`): ``members`` small autoencoders, each trained on
    a ``subsample`` of the rows with a loss that ignores the ``trim`` worst-reconstructed rows of
    each batch, stopped early on its out-of-bag rows, sized from the table (code about the square
    root of the features). Its score is the members' mean squared reconstruction error, each
    divided by its median over the training rows: ``-score_samples`` is about 1 for a typical
    training row, whatever the data's units or the refit (a dimensionless scale, comparable
    across refits), and it does not depend on the order of the training rows. In that mode
    ``members``, ``subsample``, ``trim``, ``max_steps`` and ``random_state`` set the model; the parameters of a
    single autoencoder (``latent``, ``hidden``, the training settings) apply to a named variant.

    With a named ``variant`` (``"ae"``, ``"vae"``, ...) it is one autoencoder of that variant
    trained by :func:`aekit.fit`, as below.

    ``score_samples`` is minus the summed squared reconstruction error of each row in the input
    units, or its evidence lower bound in nats for the VAE family (see :mod:`aekit.sklearn`): the
    lower, the more abnormal. As for :class:`~sklearn.ensemble.IsolationForest`, ``offset_`` is the
    ``contamination`` quantile of the training scores, ``decision_function(X) = score_samples(X) -
    offset_`` is negative for outliers, and ``predict`` returns -1 for them and +1 for inliers,
    so that a fraction ``contamination`` of the training rows is flagged.

{_DEFAULTS_DOC}
    With ``complexity=True`` the scores are corrected by each row's input complexity
    :math:`L(x)` in bits (:func:`aekit.metrics.input_complexity`, Serra et al. 2020): the size of
    the row quantized to 8 bits over the training data's range (``data_range_``) and compressed
    by zlib. The reconstruction error is divided by it (an error per bit of the input, so that
    simple inputs that any model reconstructs well no longer look typical); for the VAE family
    :math:`L(x) \\ln 2` nats are subtracted from minus the ELBO, Serra et al.'s score.

    Parameters
    ----------
    contamination : "auto" or float in (0, 0.5], default=0.1
        The expected proportion of outliers in the training data; it sets ``offset_`` (that
        fraction of the training rows is flagged). ``"auto"``: a row is flagged when the logarithm
        of its anomaly score (``-score_samples``) is more than 3 robust standard deviations (1.4826
        MAD) above the training rows' median (:func:`aekit.anomaly.detection_offset`).
    threshold_fpr : float in (0, 1), default=None
        Set ``offset_`` for this false-positive rate instead of ``contamination``: the
        ``threshold_fpr`` quantile of the out-of-bag scores of the training rows (each row scored by
        the members that did not train on it, like a new row; the in-sample scores for a named
        variant), so that new rows of the training distribution are flagged at about that rate.
    members : int, default=10
        Autoencoders of the ensemble (``variant=None``).
    subsample : float in (0, 1), default=0.5
        Fraction of the training rows each member trains on, a seeded choice among the rows in a
        canonical order (``variant=None``); the others stop it early.
    trim : float in [0, 0.5), default=0.4
        Fraction of each batch's worst-reconstructed rows left out of the loss (``variant=None``).
    max_steps : int, default=300
        Adam steps of 64 rows per member at most; early stopping on the out-of-bag rows may end a
        member sooner (``variant=None``).
    complexity : bool, default=False
        Correct the scores by the rows' input complexity (see above).
    error : {"squared", "absolute"}, default="squared"
        A named variant's reconstruction error: the sum of the residual's squares or of its absolute
        values (:class:`aekit.metrics.ResidualNorm`). Not for the VAE family's ELBO or the ensemble.
    smoothing : float, default=0.0
        Standard deviation, in pixels, of a Gaussian filter applied to each image's residual before
        it is summed (0: none); needs ``image_shape``. With ``error="absolute"`` and
        ``complexity=True`` it is the images' recipe of the Fashion-MNIST benchmark
        (benchmarks/anomaly.py).
    image_shape : tuple of int, default=None
        ``(H, W)`` or ``(C, H, W)`` of the rows, for ``smoothing``.
{_PARAMETERS_DOC}
    Attributes
    ----------
    offset_ : float
        The threshold on ``score_samples`` (``contamination``, ``threshold_fpr``):
        ``decision_function`` is ``score_samples - offset_``.
    ensemble_ : AutoencoderEnsemble or None
        The trained ensemble (``variant=None``), else None and the model is ``model_``.
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

    _parameter_constraints: ClassVar[dict] = {
        **_AutoencoderEstimator._parameter_constraints,
        "variant": [StrOptions(set(variants.names())), None],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "threshold_fpr": [Interval(Real, 0, 1, closed="neither"), None],
        "members": [Interval(Integral, 1, None, closed="left")],
        "subsample": [Interval(Real, 0, 1, closed="neither")],
        "trim": [Interval(Real, 0, 0.5, closed="left")],
        "max_steps": [Interval(Integral, 1, None, closed="left")],
        "complexity": ["boolean"],
        "error": [StrOptions(set(RESIDUAL_ERRORS))],
        "smoothing": [Interval(Real, 0, None, closed="left")],
        "image_shape": [tuple, list, None],
    }

    def __init__(
        self,
        variant=None,
        *,
        contamination=0.1,
        threshold_fpr=None,
        members=EnsembleConfig.members,
        subsample=EnsembleConfig.subsample,
        trim=EnsembleConfig.trim,
        max_steps=EnsembleConfig.max_steps,
        complexity=False,
        error="squared",
        smoothing=0.0,
        image_shape=None,
        latent=_AE["latent"],
        hidden=_AE["hidden"],
        activation=_AE["activation"],
        code_activation=_AE["code_activation"],
        output_activation=_AE["output_activation"],
        tied=_AE["tied"],
        loss=_AE["loss"],
        scale=_AE["scale"],
        epochs=_AE["epochs"],
        batch_size=_AE["batch_size"],
        lr=_AE["lr"],
        optimizer=_AE["optimizer"],
        momentum=_AE["momentum"],
        weight_decay=_AE["weight_decay"],
        schedule=_AE["schedule"],
        clip_grad=_AE["clip_grad"],
        patience=_AE["patience"],
        min_delta=_AE["min_delta"],
        precision=_AE["precision"],
        compile=_AE["compile"],
        options=None,
        elbo_samples=32,
        random_state=None,
        device=_AE["device"],
        verbose=False,
    ):
        super().__init__(
            variant,
            latent=latent,
            hidden=hidden,
            activation=activation,
            code_activation=code_activation,
            output_activation=output_activation,
            tied=tied,
            loss=loss,
            scale=scale,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            momentum=momentum,
            weight_decay=weight_decay,
            schedule=schedule,
            clip_grad=clip_grad,
            patience=patience,
            min_delta=min_delta,
            precision=precision,
            compile=compile,
            options=options,
            elbo_samples=elbo_samples,
            random_state=random_state,
            device=device,
            verbose=verbose,
        )
        self.contamination = contamination
        self.threshold_fpr = threshold_fpr
        self.members = members
        self.subsample = subsample
        self.trim = trim
        self.max_steps = max_steps
        self.complexity = complexity
        self.error = error
        self.smoothing = smoothing
        self.image_shape = image_shape

    def _norm(self) -> ResidualNorm:
        """How the named variant's residual is summed (``error``, ``smoothing``, ``image_shape``)."""
        return ResidualNorm(self.error, self.smoothing, None if self.image_shape is None else tuple(self.image_shape))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the ensemble (or the named variant's autoencoder) on ``X`` and set ``offset_``
        from its training scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self
        """
        held_out = None
        norm = self._norm()  # its settings refused before any training
        if self.variant is None and not norm.is_default:
            raise ConfigError(
                "error and smoothing apply to a named variant's reconstruction error; the ensemble "
                "(variant=None) scores by its members' normalised squared errors"
            )
        if self.variant is not None:
            variants.get(self.variant).cls.check_norm(norm, self.variant)
            if norm.smoothing:  # a missing or mismatched image shape
                norm.check_width(validate_data(self, X, dtype=np.float32).shape[1])
        if self.variant is None:
            X = validate_data(self, X, dtype=np.float64)
            config = EnsembleConfig(
                members=self.members, subsample=self.subsample, trim=self.trim, max_steps=self.max_steps
            )
            self.ensemble_ = fit_ensemble(X, seed=_seed(self.random_state), config=config)
            self.__dict__.pop("model_", None)  # (from an earlier fit with a named variant)
            self.n_components_ = self.ensemble_.latent
            self.history_ = []
            self.n_iter_ = max(self.ensemble_.steps)
            held_out = self.ensemble_.oob_scores
        else:
            X = self._fit_model(X)
            self.ensemble_ = None
        self.data_range_ = (float(X.min()), float(X.max()))
        if self.complexity:
            held_out = None  # out-of-bag scores are of the uncorrected error
        self.offset_ = -detection_offset(-self._scores(X), self.contamination, self.threshold_fpr, held_out)
        return self

    def _scores(self, X: np.ndarray) -> np.ndarray:
        if self.ensemble_ is None:
            scores = self._model_scores(X, self._norm())
            if not self.complexity:
                return scores
            bits = input_complexity(X, *self.data_range_)
            return -self.model_.variant.correct_for_complexity(-scores, bits)
        scores = -self.ensemble_.score(X)
        if not self.complexity:
            return scores
        return scores / input_complexity(X, *self.data_range_)  # the error per bit

    def feature_scores(self, X):
        """Each feature's contribution to each row's anomaly score ``-score_samples(X)``.

        For the ensemble (``variant=None``): the squared reconstruction error of the feature
        (standardized units), divided by each member's median training error and averaged over the
        members; for a named variant whose score is a reconstruction error: the feature's squared
        error in the input units. Each row sums to ``-score_samples`` (without ``complexity``,
        whose correction is not a sum over features). The VAE family's ELBO has no such split:
        :class:`aekit.errors.ConfigError`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            float64.
        """
        X = self._check(X)
        if self.complexity:
            raise ConfigError(
                "feature_scores needs complexity=False: the complexity correction is not a sum over the features"
            )
        if self.ensemble_ is not None:
            return self.ensemble_.feature_scores(X)
        norm = self._norm()
        return _model_feature_scores(
            self.model_,
            X,
            batch_size=INFERENCE_BATCH,
            error=norm.error,
            smoothing=norm.smoothing,
            image_shape=norm.image_shape,
        )

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
_PRETRAIN_PARAMETERS = {
    "pretrain": "pretrain",
    "pretrain_epochs": "pretrain_epochs",
    "noise": "noise",
    "nu": "nu",
    "dae_lr": "pretrain_lr",
    "rbm_lr": "pretrain_lr",
}


#: The classifier's parameters that are options of aekit, each with its dataclass (``pretrain_lr``
#: is DeepOptions' ``dae_lr`` or ``rbm_lr``, whichever the method uses).
_CLASSIFIER_FIELDS: dict[str, type] = {
    "hidden": ModelConfig,
    **dict.fromkeys(("pretrain", "pretrain_epochs", "noise", "nu"), DeepOptions),
    **dict.fromkeys(("activation", "loss"), ModelConfig),
    "scale": DataConfig,
    **dict.fromkeys(_TRAINING, TrainConfig),
}
#: Where the defaults of :class:`StackedAutoencoderClassifier` differ from aekit's dataclasses: the
#: deep variant's logistic units and cross-entropy (its registered defaults), stacked denoising
#: autoencoders (DeepOptions' ``pretrain="rbm"`` needs logistic units, "dae" any), and small batches
#: with a higher fine-tuning rate.
CLASSIFIER_OVERRIDES: dict[str, Any] = {
    "pretrain": "dae",
    "activation": "sigmoid",
    "loss": "bce",
    "batch_size": 32,
    "lr": 3e-3,
    **FIXED_EPOCHS,
}
_CLASSIFIER_CONSTRAINTS, _CL = _parameters(_CLASSIFIER_FIELDS, CLASSIFIER_OVERRIDES)  # _CL: the defaults

_CLASSIFIER_TEXT = {
    "optimizer": "The optimizer: Adam, AdamW (decoupled weight decay) or SGD (with ``momentum``).",
    "hidden": "Widths of the hidden layers, bottom to top; the softmax head sits on the last one.",
    "pretrain": "Layer-wise pretraining: stacked denoising autoencoders, a deep belief net of RBMs (needs\n"
    '        ``activation="sigmoid"``), or none (random initialisation, the baseline).',
    "pretrain_epochs": "Pretraining passes over the data, per layer.",
    "noise": 'Corruption of each denoising layer\'s input (``"dae"``): masking noise sets a fraction\n'
    "        ``nu`` of the entries to 0 (Vincent et al.'s).",
    "nu": 'Fraction of the entries corrupted by masking or salt-and-pepper noise (``"dae"``), in [0, 1].',
    "activation": "Units of every hidden layer.",
    "loss": "Reconstruction loss of the bottom pretraining layer: Bernoulli cross-entropy (Bernoulli\n"
    '        visible units for ``"rbm"``) on data scaled to [0, 1], or squared error (Gaussian visible\n'
    '        units of unit variance for ``"rbm"``), e.g. with ``scale="standard"``.',
    "scale": "Scaling fitted on the training data and applied before the network: the global min / max\n"
    '        to [0, 1] (what ``loss="bce"`` needs), per-feature standardisation, or none.',
    "epochs": "Fine-tuning passes over the data (0: the pretrained stack with a zero head, uniform\n"
    "        probabilities).",
    "batch_size": "Rows per update, in pretraining and fine-tuning.",
    "lr": 'The fine-tuning optimizer\'s learning rate (the peak rate for ``schedule="onecycle"``).',
    "weight_decay": "L2 penalty on every weight in fine-tuning (the optimizer's ``weight_decay``; decoupled\n"
    "        for adamw).",
    "patience": "Stop fine-tuning after this many epochs without an improvement of the training loss by\n"
    "        more than ``min_delta`` (there is no validation split); None: train all ``epochs``.",
    "min_delta": "Smallest improvement of the training loss that counts for ``patience``.",
    "device": "Torch device of training and inference: cpu, cuda, cuda:1 or auto.",
}


_PRETRAIN_LR_DOC = """    pretrain_lr : float or None, default=None
        Pretraining learning rate: Adam's for ``"dae"`` (None: DeepOptions' ``dae_lr``, {dae}),
        contrastive divergence's for the RBMs with binary units for ``"rbm"`` (None: ``rbm_lr``, {rbm},
        Hinton & Salakhutdinov's).
""".format(dae=field_default(_field(DeepOptions, "dae_lr")), rbm=field_default(_field(DeepOptions, "rbm_lr")))


_CLASSIFIER_DOC = (
    _documented(_CLASSIFIER_FIELDS, _CL, _CLASSIFIER_TEXT)
    + _PRETRAIN_LR_DOC
    + """\
    pretrain_options : dict, default=None
        Further options of the ``deep`` variant's pretraining: ``cd_k``, ``persistent``,
        ``code_lr``, ``rbm_weight_decay``, ``sigma`` (of Gaussian noise), ``pretrain_batch_size``
        (default ``batch_size``); ``aekit train deep --help`` describes them.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, pretraining, data order and noise (one int seed is drawn from it):
        the same ``random_state`` gives the same classifier on the CPU.
    verbose : bool or int, default=False
        Show progress bars while training.
"""
)


_CLASSIFIER_DEFAULTS_DOC = _overrides_doc(
    CLASSIFIER_OVERRIDES,
    ":class:`~aekit.model.ModelConfig`, "
    ":class:`~aekit.train.TrainConfig`, :class:`~aekit.data.DataConfig`, "
    "the deep variant's pretraining options; see :data:`CLASSIFIER_OVERRIDES`",
)


class StackedAutoencoderClassifier(ClassifierMixin, _PackedState, BaseEstimator):
    __doc__ = f"""A deep classifier pretrained greedily layer by layer, then fine-tuned whole with a softmax head.

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
       by ``optimizer`` (Adam by default), ``epochs`` passes over all the rows.

    ``predict_proba`` is the softmax of the head's logits, ``decision_function`` the logits (their
    difference, class 1 minus class 0, for two classes), and ``predict`` the class of the largest
    logit. Predictions are computed in float64 from the float32 network.

{_CLASSIFIER_DEFAULTS_DOC}
    Parameters
    ----------
{_CLASSIFIER_DOC}
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

    _parameter_constraints: ClassVar[dict] = {
        **_CLASSIFIER_CONSTRAINTS,
        "pretrain_lr": _constraint(DeepOptions, "dae_lr", nullable=True),  # (rbm_lr's range is the same)
        "pretrain_options": [dict, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }
    _packed: ClassVar[dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]]] = {
        "classifier_": (_pack_classifier, _unpack_classifier)
    }

    def __init__(
        self,
        hidden=_CL["hidden"],
        *,
        pretrain=_CL["pretrain"],
        pretrain_epochs=_CL["pretrain_epochs"],
        pretrain_lr=None,
        noise=_CL["noise"],
        nu=_CL["nu"],
        activation=_CL["activation"],
        loss=_CL["loss"],
        scale=_CL["scale"],
        epochs=_CL["epochs"],
        batch_size=_CL["batch_size"],
        lr=_CL["lr"],
        optimizer=_CL["optimizer"],
        momentum=_CL["momentum"],
        weight_decay=_CL["weight_decay"],
        schedule=_CL["schedule"],
        clip_grad=_CL["clip_grad"],
        patience=_CL["patience"],
        min_delta=_CL["min_delta"],
        precision=_CL["precision"],
        compile=_CL["compile"],
        pretrain_options=None,
        random_state=None,
        device=_CL["device"],
        verbose=False,
    ):
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
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.clip_grad = clip_grad
        self.patience = patience
        self.min_delta = min_delta
        self.precision = precision
        self.compile = compile
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
            raise ValueError(
                f"pretrain_options {', '.join(map(repr, unknown))} are not options of the deep "
                f"variant's pretraining (its options: {free})"
            )
        taken = sorted(set(options) & set(_PRETRAIN_PARAMETERS))
        if taken:
            raise ValueError(
                f"pretrain_options {', '.join(map(repr, taken))} are set by the parameter(s) "
                f"{', '.join(sorted({_PRETRAIN_PARAMETERS[k] for k in taken}))}, not in pretrain_options"
            )
        options = {
            "pretrain_batch_size": self.batch_size,
            **options,
            "pretrain": self.pretrain,
            "pretrain_epochs": self.pretrain_epochs,
            "noise": self.noise,
            "nu": self.nu,
        }
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
            raise DataError(
                f"{type(self).__name__} needs at least two classes, but y holds one class ({classes.tolist()[0]!r})"
            )
        sizes = _hidden_sizes(self.hidden)
        if not sizes:
            raise ValueError("hidden must name at least one layer width (the layer under the softmax head)")
        seed, progress = _seed(self.random_state), bool(self.verbose)
        model = _aekit_fit(
            variants.layerwise().name,
            X,
            hidden=sizes[:-1],
            latent=sizes[-1],
            activation=self.activation,
            code_activation=self.activation,
            loss=self.loss,
            scale=self.scale,
            epochs=0,
            device=self.device,
            seed=seed,
            val_fraction=0.0,
            test_fraction=0.0,
            out=None,
            figures=False,
            progress=progress,
            **self._deep_options(),
        )
        clf = finetune(
            model,
            X,
            y_index,
            **{name: getattr(self, name) for name in _TRAINING},
            seed=seed,
            val_fraction=0.0,
            test_fraction=0.0,
            progress=progress,
        )
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
