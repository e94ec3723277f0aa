"""Invertible feature scaling fitted on training data.

A :class:`Transform` is an affine map ``(x - shift) / scale`` with float32
parameters. It applies to numpy arrays and to torch tensors alike, and
round-trips exactly through JSON via :meth:`Transform.to_dict` /
:meth:`Transform.from_dict`. torch is never imported here unless a tensor is
passed in (a tensor can only exist once torch is imported).
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from aekit.errors import ConfigError, DataError

__all__ = ["TRANSFORM_KINDS", "Transform"]

TRANSFORM_KINDS = ("unit", "standard", "none")

_CHUNK_ROWS = 8192
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_tensor(x) -> bool:
    """True when ``x`` is a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _check_kind(kind) -> None:
    """Raise ConfigError for a kind outside :data:`TRANSFORM_KINDS`."""
    if kind not in TRANSFORM_KINDS:
        raise ConfigError(f"unknown transform {kind!r}; choose one of {', '.join(TRANSFORM_KINDS)}")


def _as_parameter(value, name: str) -> np.ndarray:
    """Convert a shift/scale value to a finite float32 array (ConfigError otherwise)."""
    try:
        with np.errstate(over="ignore"):
            array = np.array(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise ConfigError(f"transform {name} must be a number or a list of numbers, got {value!r}") from None
    if not np.isfinite(array).all():
        raise ConfigError(f"transform {name} must be finite float32 values")
    return array


def _check_json_numbers(value, name: str) -> None:
    """Accept a JSON number or a flat list of JSON numbers (no bools, no strings)."""
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in items):
        raise ConfigError(f"transform {name} must be a number or a list of numbers, got {value!r}")


def _mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) standard deviation, accumulated in float64."""
    mean = x.mean(axis=0, dtype=np.float64)
    squares = np.zeros_like(mean)
    for start in range(0, len(x), _CHUNK_ROWS):
        deviation = x[start : start + _CHUNK_ROWS] - mean
        squares += np.einsum("ij,ij->j", deviation, deviation)
    return mean, np.sqrt(squares / len(x))


def _prefix(source: str | None) -> str:
    """``"{source}: "``, the start of a message about the data, or nothing when it is unnamed."""
    return "" if source is None else f"{source}: "


def _fit_data(x, source: str | None = None) -> np.ndarray:
    """Return the fitting data as a non-empty, finite float32 numpy array."""
    if _is_tensor(x):
        x = x.detach().cpu().numpy()
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        raise DataError(f"{_prefix(source)}cannot fit a transform on empty data")
    if not np.isfinite(x).all():
        raise DataError(
            f"{_prefix(source)}cannot fit a transform on data holding NaN, infinite values or values "
            "beyond the float32 range"
        )
    return x


def _unit_parameters(low, high, source: str | None = None, columns: tuple = (None, None)):
    """``(shift, scale)`` of the ``"unit"`` transform mapping ``[low, high]`` onto [0, 1].

    Raises DataError, naming ``source`` (and the ``columns`` of the two values when known), when
    ``high - low`` overflows float32: no float32 scale can then map the values onto [0, 1].
    """
    low, high = np.float32(low), np.float32(high)
    if not high > low:
        return low, np.float32(1.0)
    with np.errstate(over="ignore"):
        span = high - low
    if not np.isfinite(span):
        where = [f" (column {c})" if c is not None else "" for c in columns]
        raise DataError(
            f"{_prefix(source)}the values range from {float(low):g}{where[0]} to {float(high):g}{where[1]}, a span "
            f"of {float(high) - float(low):g} beyond the float32 limit {_FLOAT32_MAX:g}, so the 'unit' scaling "
            "cannot map them onto [0, 1]; rescale the data first or use the 'standard' scaling"
        )
    return low, span


def _check_standard(transform: Transform, low, high, source: str | None = None) -> np.ndarray:
    """Apply a ``"standard"`` transform to the per-feature smallest and largest values ``low``,
    ``high`` (float32, ``(d,)``) and return the two scaled rows ``(2, d)``; DataError naming
    ``source`` and the feature when one of them overflows float32 (a value further than the
    float32 limit from its feature's mean). Scaling is monotone, so no other value can overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = transform.apply(np.stack([low, high]).astype(np.float32))
    bad = ~np.isfinite(scaled).all(axis=0)
    if bad.any():
        j = int(bad.argmax())
        raise DataError(
            f"{_prefix(source)}column {j} holds values from {float(low[j]):g} to {float(high[j]):g}, further than "
            f"the float32 limit {_FLOAT32_MAX:g} from its mean {float(transform.shift[j]):g}, so the 'standard' "
            "scaling overflows; rescale the data first"
        )
    return scaled


@dataclass(eq=False)
class Transform:
    """Affine feature scaling ``apply(x) = (x - shift) / scale``.

    Attributes
    ----------
    kind : str
        ``"unit"`` (global min/max to [0, 1]), ``"standard"`` (per-feature
        mean 0, std 1) or ``"none"`` (identity).
    shift : numpy.ndarray
        float32; shape ``()`` for unit/none, ``(d,)`` for standard.
    scale : numpy.ndarray
        float32, same shape as ``shift``, never zero.

    Raises
    ------
    ConfigError
        On construction, for an unknown kind or invalid parameters.
    """

    kind: str
    shift: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        self.shift = _as_parameter(self.shift, "shift")
        self.scale = _as_parameter(self.scale, "scale")
        ndim = 1 if self.kind == "standard" else 0
        if self.shift.ndim != ndim or self.shift.shape != self.scale.shape:
            raise ConfigError(
                f"a {self.kind!r} transform needs shift and scale of {ndim} dimension(s) and equal "
                f"shape, got {self.shift.shape} and {self.scale.shape}"
            )
        if (self.scale == 0).any():
            raise ConfigError("transform scale must not be zero")

    def __eq__(self, other) -> bool:
        if not isinstance(other, Transform):
            return NotImplemented
        return (
            self.kind == other.kind
            and np.array_equal(self.shift, other.shift)
            and np.array_equal(self.scale, other.scale)
        )

    # defining __eq__ makes Python set __hash__ to None: a Transform (it holds arrays) is unhashable

    @classmethod
    def fit(cls, kind: str, x, *, source: str | None = None) -> Transform:
        """Fit a transform of the given kind on training rows.

        Parameters
        ----------
        kind : {"unit", "standard", "none"}
            ``"unit"``: global min/max over the whole array, mapping it onto
            [0, 1]; ``"standard"``: per-feature mean and standard deviation
            (a constant feature gets scale 1); ``"none"``: identity.
        x : numpy.ndarray or torch.Tensor
            ``(n, d)`` training rows (any shape for unit/none).
        source : str, optional
            Where the rows came from (e.g. the file), named at the start of
            every error message.

        Returns
        -------
        Transform
            Its :meth:`apply` maps every row of ``x`` to finite float32 values.

        Raises
        ------
        ConfigError
            Unknown kind.
        DataError
            Empty or non-finite data, data not 2-D for ``"standard"``, or
            values too far apart to scale in float32 (``"unit"``: a range
            ``max - min`` beyond the float32 limit, about 3.4e38;
            ``"standard"``: a value that far from its feature's mean).
        """
        _check_kind(kind)
        if kind == "none":
            return cls("none", np.array(0.0), np.array(1.0))
        x = _fit_data(x, source)
        if kind == "unit":
            low, high = x.argmin(), x.argmax()
            columns = (low % x.shape[-1], high % x.shape[-1]) if x.ndim == 2 else (None, None)
            return cls("unit", *_unit_parameters(x.flat[low], x.flat[high], source, columns))
        if x.ndim != 2:
            raise DataError(f"{_prefix(source)}a 'standard' transform is fitted on rows (n, d), got shape {x.shape}")
        mean, std = _mean_std(x)
        std = std.astype(np.float32)
        transform = cls("standard", mean, np.where(std == 0, np.float32(1), std))
        _check_standard(transform, x.min(axis=0), x.max(axis=0), source)
        return transform

    def _check_features(self, x) -> None:
        """Raise DataError when per-feature parameters do not match the last axis of ``x``."""
        if self.shift.ndim and (x.ndim == 0 or x.shape[-1] != self.shift.shape[0]):
            raise DataError(
                f"data of shape {tuple(x.shape)} does not match the transform fitted on {self.shift.shape[0]} features"
            )

    def _parameters_for(self, x, dtype=np.float32):
        """Return (x, shift, scale) in x's library and device; numpy ones in ``dtype``, tensors in float32."""
        if _is_tensor(x):
            import torch

            x = x.to(torch.float32)
            return x, torch.as_tensor(self.shift, device=x.device), torch.as_tensor(self.scale, device=x.device)
        return (np.asarray(x, dtype=dtype), self.shift.astype(dtype, copy=False), self.scale.astype(dtype, copy=False))

    def apply(self, x, dtype=np.float32):
        """Scale ``x``: ``(x - shift) / scale``.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            Rows ``(..., d)`` (any shape for unit/none).
        dtype : numpy dtype, default float32
            Precision of the computation and the result for numpy input (e.g. float64 where
            scores must not round); tensors are always float32.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            A numpy array for numpy input, a tensor on ``x``'s device for tensor input.
        """
        x, shift, scale = self._parameters_for(x, dtype)
        self._check_features(x)
        return (x - shift) / scale

    def invert(self, x, dtype=np.float32):
        """Undo :meth:`apply`: ``x * scale + shift`` (numpy or torch, like :meth:`apply`)."""
        x, shift, scale = self._parameters_for(x, dtype)
        self._check_features(x)
        return x * scale + shift

    def to_dict(self) -> dict:
        """Return a JSON-serializable dict: ``{"kind", "shift", "scale"}`` (floats or lists)."""
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping) -> Transform:
        """Rebuild a transform from :meth:`to_dict` output (an exact round trip).

        Parameters
        ----------
        d : mapping
            ``{"kind": str, "shift": number or list, "scale": number or list}``.

        Returns
        -------
        Transform

        Raises
        ------
        ConfigError
            Missing keys, unknown kind, non-numeric or inconsistent parameters.
        """
        if not isinstance(d, Mapping) or not {"kind", "shift", "scale"} <= d.keys():
            raise ConfigError(f"a transform dict needs the keys 'kind', 'shift' and 'scale', got {d!r}")
        for name in ("shift", "scale"):
            _check_json_numbers(d[name], name)
        return cls(d["kind"], d["shift"], d["scale"])
