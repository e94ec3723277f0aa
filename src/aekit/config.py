"""Typed configuration: dataclasses that are written to ``config.json`` and turned into CLI flags.

A field's ``metadata`` carries its help text (``help``) and, where the value is limited to a
set, its choices (``choices``). :func:`add_arguments` derives argparse flags from the fields
so that no option is typed twice; :func:`from_dict` rebuilds a dataclass from JSON with a
clear error for every unknown key or ill-typed value.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def option(default: Any, help: str, choices: tuple | None = None, flag: str | None = None) -> Any:
    """A dataclass field with CLI metadata."""
    meta = {"help": help, "choices": choices, "flag": flag}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Strip ``Optional``: return (type, allows_none)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) != len(typing.get_args(tp))
    return tp, False


def _coerce(cls_name: str, name: str, tp: Any, value: Any, choices: tuple | None) -> Any:
    """Check and convert one JSON / CLI value to the field's type."""
    base, nullable = _base_type(tp)
    where = f"{cls_name}.{name}"
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{where} must not be null")
    if typing.get_origin(base) is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list of integers, got {value!r}")
        def integer(v: Any) -> int:  # 3, "3", 3.0; not True, 2.5, "2.5", [3] or inf
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise TypeError(v)
            return int(v)

        try:
            out = tuple(integer(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a comma-separated list of integers, got {value!r}") from None
        return out
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if base is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        try:
            value = int(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
    elif base is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    elif base is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
    elif base is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be an object, got {value!r}")
        return dict(value)
    if choices is not None and value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str | None = None) -> T:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys and ill-typed values."""
    label = where or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label} must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{label} has unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(label, f.name, hints[f.name], data[f.name], f.metadata.get("choices"))
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check()
    return obj


def coerce(cls: type, values: dict[str, Any], *, where: str | None = None) -> dict[str, Any]:
    """Convert some of ``cls``'s fields (e.g. strings from the command line) to their types,
    without building the object; unknown names are a ConfigError."""
    label = where or cls.__name__
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{label} has no option {key!r}; known: {', '.join(sorted(fields))}")
        out[key] = _coerce(label, key, hints[key], value, fields[key].metadata.get("choices"))
    return out


def jsonable(v: Any) -> Any:
    """A value as config.json stores it (tuples become lists, recursively)."""
    if isinstance(v, tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    return v


def to_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready dict of a dataclass (tuples become lists)."""
    return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = (),
                  group_title: str | None = None, dest_prefix: str = "") -> None:
    """Add one flag per dataclass field. Defaults are suppressed so that only given flags
    reach the namespace (dest ``dest_prefix + field``), and :func:`from_dict` fills the rest."""
    group = parser.add_argument_group(group_title) if group_title else parser
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        base, nullable = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{f.metadata.get('help', '')} (default: {shown})"
        kwargs: dict[str, Any] = {"dest": dest_prefix + f.name, "default": argparse.SUPPRESS, "help": help_text}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = "N,N,..." if typing.get_origin(base) is tuple else f.name.upper()
            if f.metadata.get("choices"):
                kwargs["choices"] = f.metadata["choices"]
                kwargs.pop("metavar")
        group.add_argument(flag_name(f), **kwargs)


def given(namespace: argparse.Namespace, cls: type, dest_prefix: str = "") -> dict[str, Any]:
    """The values of ``cls``'s fields that were given on the command line."""
    out = {}
    for f in dataclasses.fields(cls):
        key = dest_prefix + f.name
        if hasattr(namespace, key):
            out[f.name] = getattr(namespace, key)
    return out
