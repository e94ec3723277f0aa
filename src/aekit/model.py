"""The Autoencoder: encoder ∘ [corrupt] ∘ [bottleneck] ∘ decoder, returning named loss terms."""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from . import variants
from .config import from_dict, option, to_dict
from .errors import ConfigError, DataError
from .losses import RECONSTRUCTION_LOSSES
from .nn import ACTIVATIONS, CONV_KERNELS, MLP, ConvDecoder, ConvEncoder, TiedMLP, conv_sizes

#: Sizes beyond these are refused before anything is allocated.
MAX_UNITS = 1 << 20
MAX_PARAMETERS = 1 << 31
MAX_LAYERS = 128


def parameter_count(config: ModelConfig, outputs_per_code: int = 1) -> int:
    """The number of parameters of the encoder and decoder that ``config`` describes, computed
    arithmetically (nothing is allocated); ``outputs_per_code`` encoder outputs per code unit
    (2 for a Gaussian posterior's mean and log-variance). Tied weights are counted untied."""
    latent, hidden = config.latent, tuple(config.hidden)
    if config.architecture != "conv":
        sizes = [config.input_dim, *hidden]
        enc = [*zip(sizes, [*hidden, latent * outputs_per_code])]
        dec = [*zip([latent, *reversed(hidden)], reversed(sizes))]
        return sum(a * b + b for a, b in enc + dec)
    if config.image_shape is None:
        raise ConfigError("the conv architecture needs image data (C,H,W); this data has flat rows")
    c, h, w = config.image_shape
    k = getattr(config, "conv_kernel", 3)
    for _ in hidden:
        h, w = (-(-h // 2), -(-w // 2)) if k == 3 else (h // 2, w // 2)
    chans = [*zip([c, *hidden[:-1]], hidden)]
    convs = sum(2 * k * k * a * b + b + a for a, b in chans)  # encoder conv + transposed decoder conv
    widths = [hidden[-1] * h * w, *getattr(config, "conv_dense", ())]
    enc = [*zip(widths, [*widths[1:], latent * outputs_per_code])]
    dec = [*zip([latent, *reversed(widths[1:])], reversed(widths))]
    return convs + sum(a * b + b for a, b in enc + dec)


#: ``ModelConfig.loss`` that :func:`resolve_loss` replaces by a loss when training starts
AUTO_LOSS = "auto"


def resolve_loss(loss: str, low: float, high: float) -> str:
    """The loss of a run: ``loss`` itself, or for :data:`AUTO_LOSS` Bernoulli cross-entropy
    (``"bce"``) where the scaled training rows lie in [0, 1] (``low`` and ``high`` are their
    smallest and largest values), squared error (``"mse"``) otherwise. On data in [0, 1] (pixels,
    the default unit scaling) cross-entropy trains the plain autoencoder to a lower squared error
    than squared error itself does (benchmarks/RESULTS.md, "Default settings against PCA")."""
    if loss != AUTO_LOSS:
        return loss
    return "bce" if low >= 0 and high <= 1 else "mse"


@dataclass
class ModelConfig:
    """Everything needed to rebuild an :class:`Autoencoder` (saved as ``config.json["model"]``)."""

    variant: str = option("ae", "registered variant name")
    input_dim: int = option(0, "number of input features (set from the data)")
    image_shape: tuple[int, ...] | None = option(None, "C,H,W of image data (set from the data)")
    architecture: str = option("mlp", "encoder/decoder family", choices=("mlp", "conv"))
    hidden: tuple[int, ...] = option(
        (256, 128), "hidden layer widths (mlp) or channel counts (conv), encoder side; the decoder mirrors them"
    )
    latent: int = option(16, "code size")
    activation: str = option("relu", "activation of hidden layers", choices=tuple(ACTIVATIONS))
    code_activation: str = option("linear", "activation of the code layer", choices=tuple(ACTIVATIONS))
    loss: str = option(
        "mse",
        "reconstruction loss: summed squared error, Bernoulli cross-entropy on logits (targets in [0,1]), "
        "or auto: bce where the scaled training rows lie in [0,1], else mse (chosen when training starts; "
        "mse for a model built without data)",
        choices=(*RECONSTRUCTION_LOSSES, AUTO_LOSS),
    )
    output_activation: str = option(
        "linear", "activation of the decoder output with the mse loss", choices=("linear", "sigmoid")
    )
    tied: bool = option(False, "decoder weights are the transposes of the encoder's (mlp only)")
    conv_kernel: int = option(
        3, "kernel of the stride-2, padding-1 convolutions (conv): 3, or 4 as in Burgess et al. 2018 on dSprites"
    )
    conv_dense: tuple[int, ...] = option(
        (),
        "fully connected layers between the convolutions and the code (conv), encoder side, mirrored in the "
        "decoder; Burgess et al. 2018: --hidden 32,32,64,64 --conv-kernel 4 --conv-dense 256",
    )
    options: dict = option({}, "options of the variant (see `aekit train VARIANT --help`)")

    def validate(self) -> None:
        """Check every field, and the size of the model, arithmetically: a config that asks for an
        unknown variant, ill-typed or absurd sizes is a ConfigError before anything is allocated.

        The variant's options (a dict, as JSON and the CLI give them) are built into the variant's
        options dataclass and checked; ``options`` keeps them as the JSON-able dict that
        ``config.json`` stores, and :meth:`variant_options` returns the typed object, so that a
        config is validated once (by :func:`~aekit.config.from_dict`, or by the
        :class:`Autoencoder` built from it), not again until one of its fields changes."""
        spec = variants.get(self.variant) if isinstance(self.variant, str) else None
        if spec is None:
            raise ConfigError(f"model.variant must be a variant name, got {self.variant!r}")
        typed: Any = from_dict(spec.options, self.options, where=f"{self.variant} options")
        self.options = to_dict(typed)
        if not isinstance(self.hidden, (tuple, list)) or len(self.hidden) > MAX_LAYERS:
            raise ConfigError(
                f"model.hidden must be a list of at most {MAX_LAYERS} layer sizes, got "
                f"{self.hidden if not isinstance(self.hidden, (tuple, list)) else len(self.hidden)}"
            )
        self.hidden = tuple(self.hidden)
        named = [("input_dim", self.input_dim), *(("hidden", h) for h in self.hidden), ("latent", self.latent)]
        for name, value in named:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"model.{name} must hold integers, got {value!r}")
        if self.input_dim <= 0:
            raise ConfigError(f"model.input_dim must be positive, got {self.input_dim}")
        sizes = [self.input_dim, *self.hidden, self.latent]
        if any(s <= 0 for s in sizes):
            raise ConfigError(f"layer sizes must be positive, got {sizes}")
        if max(sizes) > MAX_UNITS:
            raise ConfigError(f"layer size {max(sizes)} is absurdly large (limit {MAX_UNITS})")
        shape = self.image_shape
        if shape is not None:
            if (
                not isinstance(shape, (tuple, list))
                or len(shape) != 3
                or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0 for d in shape)
            ):
                raise ConfigError(f"image_shape must be three positive integers (C,H,W), got {shape!r}")
            if math.prod(shape) != self.input_dim:
                raise ConfigError(f"image_shape {self.image_shape} does not match input_dim {self.input_dim}")
        if self.architecture == "conv":
            if self.tied:
                raise ConfigError("tied weights are available for the mlp architecture only")
            if shape is None:
                raise ConfigError("the conv architecture needs image data (C,H,W); this data has flat rows")
            if not self.hidden:
                raise ConfigError("a convolutional encoder needs at least one channel count in --hidden")
            if self.conv_kernel not in CONV_KERNELS:
                raise ConfigError(
                    f"model.conv_kernel must be one of {', '.join(map(str, CONV_KERNELS))}, got {self.conv_kernel}"
                )
            fh, fw = conv_sizes(*shape[1:], len(self.hidden), self.conv_kernel)[-1]
            if fh < 1 or fw < 1:
                raise ConfigError(
                    f"{len(self.hidden)} stride-2 convolutions of kernel {self.conv_kernel} leave nothing of "
                    f"{shape[1]}x{shape[2]} images"
                )
        if not isinstance(self.conv_dense, (tuple, list)) or len(self.conv_dense) > MAX_LAYERS:
            raise ConfigError(f"model.conv_dense must be a list of at most {MAX_LAYERS} layer sizes")
        self.conv_dense = tuple(self.conv_dense)
        for d in self.conv_dense:
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 < d <= MAX_UNITS:
                raise ConfigError(f"model.conv_dense must hold positive layer sizes up to {MAX_UNITS}, got {d!r}")
        n_params = parameter_count(self, spec.cls.encoder_outputs_per_code)
        if n_params > MAX_PARAMETERS:
            raise ConfigError(
                f"the model would have about {n_params:.3g} parameters, which is absurdly large "
                f"(limit {MAX_PARAMETERS:.3g})"
            )
        self._validated = (self._fields(), typed)

    def _fields(self) -> tuple:
        """The fields' values (copies), to tell whether the config changed since :meth:`validate`."""
        return tuple(copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self))

    def is_validated(self) -> bool:
        """Whether :meth:`validate` accepted the config as it is now (no field changed since)."""
        checked = self.__dict__.get("_validated")
        return checked is not None and checked[0] == self._fields()

    def variant_options(self) -> Any:
        """The variant's options dataclass, typed and checked: the one :meth:`validate` built (the
        config is validated first when it was not, or changed since)."""
        if not self.is_validated():
            self.validate()
        return self._validated[1]


@dataclass
class Output:
    """What a forward pass returns.

    Attributes
    ----------
    reconstruction : Tensor
        The reconstruction in data space (after the output activation), shaped like the input.
    code : Tensor
        The code, shape ``(N, latent)``.
    losses : dict of str to Tensor
        Named scalar loss terms; the training objective is their sum.
    logits : Tensor
        The decoder's pre-activation output.
    metrics : dict of str to Tensor
        Named scalar measurements that are logged but not optimised (e.g. the mean
        activation of a sparse code).
    """

    reconstruction: torch.Tensor
    code: torch.Tensor
    losses: dict[str, torch.Tensor]
    logits: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def loss(self) -> torch.Tensor:
        """The training objective: the sum of all loss terms."""
        return sum(self.losses.values())  # type: ignore[return-value]


class Autoencoder(nn.Module):
    """An autoencoder built from a :class:`ModelConfig`.

    The model works in "model space": data after the run's :class:`~aekit.data.Transform`.
    :meth:`encode_array` and :meth:`reconstruct_array` take raw NumPy data, apply the saved
    transform, and return codes or reconstructions in the original units.

    Shape:
        - Input: :math:`(N, D)` or, for image data, :math:`(N, C, H, W)` (flat rows are
          reshaped as needed)
        - Output: :class:`Output` with ``reconstruction`` shaped like the input
    """

    # set after construction: by aekit.fit (all four) and aekit.load (run_config); read with getattr where
    # they may be missing
    run_config: dict[str, Any]
    history: list[dict[str, Any]]
    start_epoch: int
    pretrain_record: dict[str, Any]
    encoder: nn.Module
    decoder: nn.Module

    def __init__(self, config: ModelConfig, transform: Any = None):
        super().__init__()
        options = config.variant_options()  # validates the config unless validate() accepted it as it is
        if config.loss == AUTO_LOSS:  # chosen from the data by aekit.fit; a model built without data: mse
            config = dataclasses.replace(config, loss="mse")
        self.config = config
        self.transform = transform
        self.variant = variants.get(config.variant).cls(config, options)
        c = config
        n_out = c.latent * self.variant.encoder_outputs_per_code
        # a variant with networks of its own (a VQ-VAE's spatial code: convolutions to a code map and back)
        # builds them from the config; the others get the shared families below
        built = self.variant.networks()
        if built is not None:
            self.encoder, self.decoder = built
        elif c.architecture == "mlp":
            self.encoder = MLP([c.input_dim, *c.hidden, n_out], c.activation, c.code_activation)
            if c.tied:
                if self.variant.encoder_outputs_per_code != 1:
                    raise ConfigError(f"the {c.variant} variant cannot tie its decoder to its encoder")
                self.decoder = TiedMLP(self.encoder, c.activation)
            else:
                self.decoder = MLP([c.latent, *reversed(c.hidden), c.input_dim], c.activation)
        else:
            assert c.image_shape is not None, "a validated conv config has an image shape"
            self.encoder = ConvEncoder(
                c.image_shape, c.hidden, n_out, c.activation, c.code_activation, c.conv_kernel, c.conv_dense
            )
            self.decoder = ConvDecoder(c.image_shape, c.hidden, c.latent, c.activation, c.conv_kernel, c.conv_dense)
        self._loss = RECONSTRUCTION_LOSSES[c.loss]

    def training_callbacks(self) -> list[Any]:
        """The trainer callbacks the variant needs (schedules, per-epoch statistics); the
        :class:`~aekit.train.Trainer` adds them itself."""
        return self.variant.callbacks()

    def optimized_parameters(self) -> list[nn.Parameter]:
        """The parameters the trainer's optimizer updates: all but those of an auxiliary model that the
        variant trains itself (:meth:`~aekit.variants.Variant.auxiliary_parameters`)."""
        own = {id(p) for p in self.variant.auxiliary_parameters()}
        return [p for p in self.parameters() if id(p) not in own]

    def auxiliary_optimizer(self) -> torch.optim.Optimizer | None:
        """The variant's fresh optimizer of its auxiliary model, or None
        (:meth:`~aekit.variants.Variant.auxiliary_optimizer`)."""
        return self.variant.auxiliary_optimizer()

    def auxiliary_step(self, x: torch.Tensor, out: Output) -> dict[str, torch.Tensor]:
        """The variant's update of its auxiliary model after a training step on ``x``
        (:meth:`~aekit.variants.Variant.auxiliary_step`)."""
        return self.variant.auxiliary_step(x, out, self)

    # -- shapes -----------------------------------------------------------------------------
    def _to_encoder(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.architecture == "conv":
            assert self.config.image_shape is not None, "a validated conv config has an image shape"
            return x.reshape(-1, *self.config.image_shape)
        return x.reshape(x.shape[0], self.config.input_dim)

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "bce" or self.config.output_activation == "sigmoid":
            return torch.sigmoid(logits)
        return logits

    # -- the model --------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of ``x`` (deterministic: no corruption; the posterior mean where relevant)."""
        return self.variant.encode_deterministic(self.encoder(self._to_encoder(x)))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction in model space from codes ``z`` (flat ``(N, D)``)."""
        return self._activate(self.decoder(z)).reshape(z.shape[0], self.config.input_dim)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: the deterministic reconstruction in model space, flat ``(N, D)``."""
        return self.decode(self.encode(x))

    def reconstruction_nll(self, logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The reconstruction term of decoder ``logits`` against ``target``, per example summed over
        features: the variant's own likelihood where it has one, else the model's ``loss``."""
        own = self.variant.reconstruction_nll(logits, target, reduction)
        if own is not None:
            return own
        return self._loss(logits if self.config.loss == "bce" else self._activate(logits), target, reduction)

    def forward(self, x: torch.Tensor) -> Output:
        """Reconstruct ``x`` and compute the named loss terms against the clean ``x``.

        A bottleneck may return several codes per example (``L * N`` rows, sample-major, e.g. the
        Monte Carlo samples of a VAE); the reconstruction term is then averaged over all of them
        and ``reconstruction`` / ``code`` hold the first sample.
        """
        if self.training:
            x = self.variant.resample(x)
        x_in = self.variant.corrupt(x) if self.training else x
        # .to(x.dtype): under mixed precision (autocast) the layers return bfloat16; the bottleneck's
        # terms and the losses are computed in the data's precision (a no-op otherwise)
        h = self.encoder(self._to_encoder(x_in)).to(x.dtype)
        z, terms = self.variant.bottleneck(h)
        n = x.shape[0]
        target = x if z.shape[0] == n else x.repeat(z.shape[0] // n, *([1] * (x.ndim - 1)))
        logits = self.decoder(z).reshape(target.shape).to(x.dtype)
        losses = {"recon": self.reconstruction_nll(logits, target), **terms, **self.variant.penalty(x, h, z, self)}
        with torch.no_grad():
            metrics = self.variant.metrics(x, h, z)
        return Output(self._activate(logits[:n]), z[:n], losses, logits[:n], metrics)

    # -- NumPy helpers ----------------------------------------------------------------------
    def prepare(self, X: Any, where: str = "input") -> np.ndarray:
        """Raw rows (or images) as float32 model-space rows; DataError for anything else."""
        X = self.raw_rows(X, where)
        return self.transform.apply(X) if self.transform is not None else X

    def raw_rows(self, X: Any, where: str = "input") -> np.ndarray:
        """Raw rows (or images) checked and as float32 rows in the input's units (before the scaling)."""
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as e:  # ragged nested lists, objects numpy cannot hold
            raise DataError(f"{where}: not an array of numbers ({str(e).splitlines()[0]})") from None
        if X.dtype.kind not in "biuf":
            raise DataError(f"{where}: holds values of type {X.dtype}; expected numbers (bool, integer or float)")
        if X.ndim > 2:
            X = X.reshape(X.shape[0], math.prod(X.shape[1:]))
        if X.ndim != 2 or X.shape[1] != self.config.input_dim:
            raise DataError(f"{where}: expected rows of {self.config.input_dim} features, got shape {X.shape}")
        with np.errstate(over="ignore"):
            X = X.astype(np.float32, copy=False)
        if not np.isfinite(X).all():
            raise DataError(f"{where}: holds NaN, infinite values or values beyond the float32 range")
        return X

    def data_range(self, X: np.ndarray) -> tuple[float, float, bool]:
        """The data range ``(lo, hi)`` of model-space rows ``X`` and whether it is the fixed [0, 1] of
        the ``unit`` scaling (else ``X``'s own min and max)."""
        if self.transform is not None and self.transform.kind == "unit":
            return 0.0, 1.0, True
        return float(X.min()), float(X.max()), False

    def psnr_data_range(self, X: np.ndarray) -> float:
        """The data range R of a PSNR of model-space rows ``X``: 1 for the ``unit`` scaling, else
        ``X``'s max - min (1 when ``X`` is constant)."""
        lo, hi, _ = self.data_range(X)
        return hi - lo if hi > lo else 1.0

    def batched(self, X: np.ndarray, fn: Any, batch_size: int) -> np.ndarray:
        """``fn`` over model-space rows ``X`` in batches of ``batch_size``, in eval mode without
        gradients, on the model's device; the results concatenated as a NumPy array."""
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            outs = []
            with torch.inference_mode():
                for i in range(0, max(len(X), 1), batch_size):  # no rows: one empty batch gives the shape
                    xb = torch.from_numpy(X[i : i + batch_size]).to(device)
                    outs.append(fn(xb).cpu().numpy())
        finally:
            self.train(was_training)
        return np.concatenate(outs)

    #: Rows of a NumPy input that encode_array / reconstruct_array check, convert and transform at a
    #: time (rounded to whole batches), so that their memory beyond the output does not grow with the rows.
    PREPARE_ROWS = 4096

    def _map_rows(self, X: Any, fn: Any, batch_size: int, where: str, invert: bool = False) -> np.ndarray:
        """``fn`` over the model-space rows of raw ``X`` in batches of ``batch_size`` (the results inverted
        to the original units with ``invert``). A large NumPy array (a memory map too) is prepared a block
        of whole batches at a time and the results are written into one preallocated output: the same
        batches as in one go, so the same numbers, with no full-size float32 copy of the input."""

        def run(rows: Any) -> np.ndarray:
            out = self.batched(self.prepare(rows, where), fn, batch_size)
            return self.transform.invert(out) if invert and self.transform is not None else out

        block = batch_size * max(1, self.PREPARE_ROWS // batch_size) if batch_size > 0 else 0
        rows_ok = isinstance(X, np.ndarray) and X.ndim >= 2 and math.prod(X.shape[1:]) == self.config.input_dim
        if not rows_ok or block == 0 or len(X) <= block:
            return run(X)
        out = None
        for i in range(0, len(X), block):
            part = run(X[i : i + block])
            if out is None:
                out = np.empty((len(X), *part.shape[1:]), part.dtype)
            out[i : i + len(part)] = part
        assert out is not None, "len(X) > block > 0: the loop ran"
        return out

    def encode_array(self, X: Any, batch_size: int = 4096, where: str = "input") -> np.ndarray:
        """Codes of raw data ``X`` (the run's transform is applied first), shape ``(N, latent)``."""
        return self._map_rows(X, self.encode, batch_size, where)

    def reconstruct_array(self, X: Any, batch_size: int = 4096, where: str = "input") -> np.ndarray:
        """Reconstructions of raw data ``X`` in the original units, shape ``(N, D)``."""
        return self._map_rows(X, self.reconstruct, batch_size, where, invert=True)

    def decode_array(self, Z: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Decoded means of model-space codes ``Z`` ``(N, latent)`` in the original units, shape ``(N, D)``."""
        out = self.batched(np.ascontiguousarray(Z, dtype=np.float32), self.decode, batch_size)
        return self.transform.invert(out) if self.transform is not None else out
