"""Typed configuration: dataclasses that are written to ``config.json`` and turned into CLI flags.

A field's ``metadata`` carries its help text (``help``) and, where the value is limited to a
set, its choices (``choices``). :func:`add_arguments` derives argparse flags from the fields
so that no option is typed twice; :func:`from_dict` rebuilds a dataclass from JSON with a
clear error for every unknown key or ill-typed value.

Integers must fit in 64 bits, and seeds (a field ``seed`` or ``*_seed``) lie in ``0 <= seed < 2**63``,
which torch's and numpy's generators all accept. :func:`lookup` reads a dataclass (or a constant)
from its module's source without running the module when that module is not imported yet, so
that the CLI can build its flags and help without importing torch.
"""

from __future__ import annotations
import __future__

import argparse
import ast
import builtins
import contextlib
import dataclasses
import functools
import importlib
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")

#: integers beyond 64 bits fit nothing torch or numpy take
INT_LIMIT = 1 << 63
#: seeds are ``0 <= seed < SEED_LIMIT`` (torch.manual_seed, torch.Generator and numpy.random.default_rng
#: all accept them)
SEED_LIMIT = 1 << 63


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
    if nullable and base in (int, float) and isinstance(value, str) and value.strip().lower() == "none":
        return None  # the CLI's spelling of null for an optional number (--patience none)
    if typing.get_origin(base) is tuple:
        raw = value
        if isinstance(value, str):  # "128,64"; "none" is the empty list; ",,", "" or "64," are mistakes
            text = value.replace(" ", "")
            value = [] if text.lower() == "none" else text.split(",")
            if any(not v for v in value):
                raise ConfigError(
                    f"{where} must be a comma-separated list of integers (none for no entries), got {raw!r}"
                )
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
            raise ConfigError(f"{where} must be a comma-separated list of integers, got {raw!r}") from None
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
        if is_seed(name) and not 0 <= value < SEED_LIMIT:
            raise ConfigError(f"{where} must be a seed from 0 to 2**63 - 1, got {value}")
        if not -INT_LIMIT <= value < INT_LIMIT:
            raise ConfigError(f"{where} must be an integer that fits in 64 bits, got {value}")
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


def is_seed(name: str) -> bool:
    """Whether a field or flag named ``name`` is a seed (``seed``, ``split_seed``, ``noise_seed`` ...)."""
    return name == "seed" or name.endswith("_seed")


def check_seed(value: int, where: str = "seed") -> int:
    """``value`` if it is a seed every generator takes (``0 <= seed < 2**63``), else a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"{where} must be a seed from 0 to 2**63 - 1, got {value!r}")
    return value


def _type_hints(cls: type) -> dict[str, Any]:
    """The fields' types; a class read by :func:`lookup` carries the names its annotations use."""
    return typing.get_type_hints(cls, globalns=getattr(cls, "__static_globals__", None))


def from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str | None = None) -> T:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys and ill-typed values."""
    label = where or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label} must be an object, got {type(data).__name__}")
    hints = _type_hints(cls)
    if not dataclasses.is_dataclass(cls):  # what dataclasses.fields raises; narrows cls for the type checker
        raise TypeError("must be called with a dataclass type or instance")
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
    hints = _type_hints(cls)
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


def field_default(f: dataclasses.Field) -> Any:
    """The default value of a dataclass field (None when it has none)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def shown_default(value: Any) -> str:
    """A default as ``--help`` shows it: a list as ``128,64`` (``none`` when empty), the rest as str()."""
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    exclude: tuple[str, ...] = (),
    group_title: str | None = None,
    dest_prefix: str = "",
    defaults: dict[str, Any] | None = None,
) -> None:
    """Add one flag per dataclass field. Defaults are suppressed so that only given flags
    reach the namespace (dest ``dest_prefix + field``), and :func:`from_dict` fills the rest.
    ``defaults`` overrides the defaults the help shows, for those that a caller applies itself
    (e.g. a variant's registered model defaults, which :func:`aekit.fit` applies)."""
    group = parser.add_argument_group(group_title) if group_title else parser
    hints = _type_hints(cls)
    defaults = defaults or {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        base, _ = _base_type(hints[f.name])
        default = defaults[f.name] if f.name in defaults else field_default(f)
        help_text = f"{f.metadata.get('help', '')} (default: {shown_default(default)})"
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


# -- definitions read from the source, without running their modules -------------------------------
class NotStatic(Exception):
    """A definition that :func:`static_value` cannot evaluate from its module's source alone."""


class _Placeholder:
    """What a module gets from a library that is not imported (e.g. ``nn.ReLU`` without torch): every
    attribute, item or call is the placeholder again. A value that holds one is refused."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def __getitem__(self, key: Any) -> Any:
        return self

    def __repr__(self) -> str:
        return "<not imported>"


_PLACEHOLDER = _Placeholder()
_PACKAGE = Path(__file__).resolve().parent
_SOURCES: dict[str, _Source] = {}


def _module_file(module: str) -> Path | None:
    """The source file of an aekit module (None for other modules, or none found)."""
    top, _, rest = module.partition(".")
    if top != _PACKAGE.name:
        return None
    base = _PACKAGE.joinpath(*rest.split(".")) if rest else _PACKAGE
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _library(module: str, attr: str | None = None) -> Any:
    """A module outside aekit (or one of its attributes): the real one when it is imported already or
    part of the standard library, else a placeholder (nothing is imported for it)."""
    if module not in sys.modules and module.partition(".")[0] not in sys.stdlib_module_names:
        return _PLACEHOLDER
    value = importlib.import_module(module)
    return value if attr is None else getattr(value, attr)


class _ModuleView:
    """An aekit module imported by name (``from .. import noise as corruption``): its attributes are
    read statically."""

    def __init__(self, module: str):
        self._module = module

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return static_value(self._module, name, check=False)


def _module(module: str) -> Any:
    if module in sys.modules:
        return sys.modules[module]
    return _ModuleView(module) if _module_file(module) is not None else _library(module)


def _from_import(module: str, attr: str) -> Any:
    """What ``from module import attr`` binds."""
    sub = f"{module}.{attr}"
    if sub in sys.modules:
        return sys.modules[sub]
    if module in sys.modules and attr in vars(sys.modules[module]):  # not getattr: aekit's names are lazy
        return vars(sys.modules[module])[attr]
    if _module_file(sub) is not None:
        return _ModuleView(sub)
    if _module_file(module) is not None:
        return static_value(module, attr, check=False)
    return _library(module, attr)


def _bound(stmt: ast.stmt) -> list[str]:
    """The names a top-level statement binds (only the kinds :class:`_Source` evaluates)."""
    if isinstance(stmt, ast.Assign):
        return [
            n.id
            for t in stmt.targets
            for n in ([t] if isinstance(t, ast.Name) else getattr(t, "elts", []))
            if isinstance(n, ast.Name)
        ]
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None and isinstance(stmt.target, ast.Name):
        return [stmt.target.id]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [a.asname or a.name.partition(".")[0] for a in stmt.names if a.name != "*"]
    if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return [stmt.name]
    return []


class _Source:
    """The top-level definitions of one aekit module, evaluated on demand from its source: constants,
    imports (of aekit modules: statically again) and dataclasses (their fields only: methods are left
    out). Functions, other classes and libraries that are not imported are placeholders."""

    def __init__(self, module: str, path: Path):
        self.module, self.path = module, path
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        self.package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        self.flags = 0
        self.defs: dict[str, ast.stmt] = {}
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                if any(a.name == "annotations" for a in stmt.names):
                    self.flags = __future__.annotations.compiler_flag
                continue
            for name in _bound(stmt):
                self.defs[name] = stmt
        self.values: dict[str, Any] = {}
        self.busy: set[str] = set()

    def value(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        stmt = self.defs.get(name)
        if stmt is None:
            if hasattr(builtins, name):
                return getattr(builtins, name)
            raise NotStatic(f"{self.module}.{name} is not a top-level definition")
        if name in self.busy:
            raise NotStatic(f"{self.module}.{name} is defined in terms of itself")
        self.busy.add(name)
        try:
            value = self._define(stmt, name)
        except NotStatic:
            raise
        except Exception as e:  # e.g. an import of a name its module lacks: the real import will say so
            raise NotStatic(f"{self.module}.{name}: {e!r}") from None
        finally:
            self.busy.discard(name)
        self.values[name] = value
        return value

    def _define(self, stmt: ast.stmt, name: str) -> Any:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            assert stmt.value is not None, "_bound keeps only annotated assignments that have a value"
            value = self.evaluate(stmt.value)
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
            if isinstance(target, ast.Name):
                return value
            if not isinstance(target, (ast.Tuple, ast.List)):
                raise NotStatic(f"{self.module}.{name} is not bound by a name or a tuple of names")
            names = [n.id if isinstance(n, ast.Name) else None for n in target.elts]
            return tuple(value)[names.index(name)]
        if isinstance(stmt, ast.Import):
            alias = next(a for a in stmt.names if (a.asname or a.name.partition(".")[0]) == name)
            return _module(alias.name if alias.asname else name)
        if isinstance(stmt, ast.ImportFrom):
            alias = next(a for a in stmt.names if (a.asname or a.name) == name)
            if stmt.level:
                base = self.package.split(".")
                base = base[: len(base) - stmt.level + 1]
                module = ".".join([*base, *([stmt.module] if stmt.module else [])])
            else:
                module = stmt.module or ""
            return _from_import(module, alias.name)
        if isinstance(stmt, ast.ClassDef) and self._is_dataclass(stmt):
            return self._dataclass(stmt)
        return _PLACEHOLDER  # a function, or a class that is not a dataclass

    def _namespace(self, nodes: list[ast.AST]) -> dict[str, Any]:
        """The values of the names that ``nodes`` read, where they can be had."""
        ns: dict[str, Any] = {"__name__": self.module}
        for node in nodes:
            for n in ast.walk(node):
                if isinstance(n, ast.Name) and n.id not in ns:
                    with contextlib.suppress(NotStatic):  # perhaps a comprehension's own variable: eval says
                        ns[n.id] = self.value(n.id)
        return ns

    def evaluate(self, node: ast.expr) -> Any:
        code = compile(ast.Expression(node), str(self.path), "eval", flags=self.flags, dont_inherit=True)
        try:
            return eval(code, self._namespace([node]))
        except NotStatic:
            raise
        except Exception as e:
            raise NotStatic(f"{self.module}: cannot evaluate line {node.lineno} ({e!r})") from None

    def _is_dataclass(self, stmt: ast.ClassDef) -> bool:
        for deco in stmt.decorator_list:
            func = deco.func if isinstance(deco, ast.Call) else deco
            try:
                if self.evaluate(func) is dataclasses.dataclass:
                    return True
            except NotStatic:
                pass
        return False

    def _dataclass(self, stmt: ast.ClassDef) -> type:
        """The dataclass with its fields (and docstring) only."""
        body: list[ast.stmt] = [
            s
            for s in stmt.body
            if isinstance(s, ast.AnnAssign) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
        ]
        type_params: dict[str, Any] = {"type_params": []} if sys.version_info >= (3, 12) else {}
        node = ast.ClassDef(
            name=stmt.name,
            bases=stmt.bases,
            keywords=stmt.keywords,
            body=body or [ast.Pass()],
            decorator_list=stmt.decorator_list,
            **type_params,
        )
        tree = ast.fix_missing_locations(ast.copy_location(node, stmt))
        code = compile(ast.Module([tree], type_ignores=[]), str(self.path), "exec", flags=self.flags, dont_inherit=True)
        ns = self._namespace([*stmt.bases, *stmt.decorator_list, *body])
        ns["__name__"] = __name__  # dataclasses looks the class's module up in sys.modules; this one is there
        try:
            exec(code, ns)
        except Exception as e:
            raise NotStatic(f"{self.module}.{stmt.name}: cannot define the class ({e!r})") from None
        cls = ns[stmt.name]
        cls.__module__, cls.__static_globals__ = self.module, ns
        return cls


def _holds_placeholder(value: Any) -> bool:
    if value is _PLACEHOLDER:
        return True
    if isinstance(value, (tuple, list, set, frozenset)):
        return any(_holds_placeholder(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_placeholder(k) or _holds_placeholder(v) for k, v in value.items())
    if dataclasses.is_dataclass(value) and isinstance(value, type):
        return any(
            _holds_placeholder(field_default(f)) or _holds_placeholder(dict(f.metadata))
            for f in dataclasses.fields(value)
        )
    return False


def _source(module: str) -> _Source:
    source = _SOURCES.get(module)
    if source is None:
        path = _module_file(module)
        if path is None:
            raise NotStatic(f"{module} is not an aekit module")
        try:
            source = _SOURCES[module] = _Source(module, path)
        except (OSError, SyntaxError, ValueError) as e:
            raise NotStatic(f"{module}: cannot read its source ({e})") from None
    return source


def static_value(module: str, name: str, *, check: bool = True) -> Any:
    """``module.name`` (an aekit module) read from the module's source without running it: constants,
    what they are computed from, and dataclasses with their fields (no methods). The module itself
    when it is imported already. NotStatic for what cannot be had that way (or, with ``check``, a
    value that depends on a library that is not imported)."""
    if module in sys.modules:
        return getattr(sys.modules[module], name)
    value = _source(module).value(name)
    if check and _holds_placeholder(value):
        raise NotStatic(f"{module}.{name} depends on a library that is not imported")
    return value


def lookup(module: str, name: str) -> Any:
    """``module.name`` from an aekit module: read by :func:`static_value` when that works (the module
    is not run, so torch is not imported for a dataclass's fields or a constant), else imported."""
    try:
        return static_value(module, name)
    except NotStatic:
        return getattr(importlib.import_module(module), name)


def static_calls(module: str, func: str) -> list[tuple[list[Any], dict[str, Any]]]:
    """The calls ``func(...)`` that decorate the top-level classes of aekit module ``module`` (e.g. a
    registry's ``@register(...)`` lines), read from its source without running it: for each call its
    positional and keyword arguments, as functions without arguments that evaluate them (on demand,
    like :func:`static_value`)."""
    source = _source(module)

    def evaluate(node: ast.expr) -> Any:
        value = source.evaluate(node)
        if _holds_placeholder(value):
            raise NotStatic(f"{module}, line {node.lineno}: depends on a library that is not imported")
        return value

    calls = []
    for stmt in dict.fromkeys(source.defs.values()):
        for deco in stmt.decorator_list if isinstance(stmt, ast.ClassDef) else ():
            if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == func:
                calls.append(
                    (
                        [functools.partial(evaluate, a) for a in deco.args],
                        {k.arg: functools.partial(evaluate, k.value) for k in deco.keywords if k.arg},
                    )
                )
    return calls
