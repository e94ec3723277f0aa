"""The layering of docs/architecture.md holds in the code: no upward import, no import circle,
every module placed on a floor, and no variant named (or switched on) outside variants/."""

import ast
import re
from pathlib import Path

import pytest

import aekit.variants

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "aekit"


def _floors():
    """``{room: floor}`` from the ```floors block of docs/architecture.md (a room is a module
    name relative to the package, or a package name ending in ``/``)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```floors\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```floors block"
    floors = {}
    for line in block.group(1).splitlines():
        number, _, rooms = line.partition(" ")
        for room in rooms.split(":", 1)[1].split():
            assert room not in floors, f"{room} is on two floors"
            floors[room] = int(number)
    return floors


FLOORS = _floors()


def _room(module):
    """The room of a module name relative to the package (``data/readers`` -> ``data/``)."""
    if module in FLOORS:
        return module
    top = module.split("/")[0] + "/"
    return top if top in FLOORS else None


def _modules():
    return {str(p.relative_to(SRC).with_suffix("")): p for p in sorted(SRC.rglob("*.py"))}


def _imports(name, path):
    """The aekit modules (relative names, ``/``-separated) that module ``name`` imports anywhere in
    its file, with the line of each import."""
    package = name.split("/")[:-1] if not name.endswith("__init__") else name.split("/")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else list(package)
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "aekit":
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:  # `from . import io` imports a module; `from .io import x` a name
                candidate = "/".join([*target, alias.name])
                found.append((candidate if candidate in _MODULES or f"{candidate}/__init__" in _MODULES
                              else "/".join(target) or "__init__", node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "aekit":
                    found.append(("/".join(alias.name.split(".")[1:]) or "__init__", node.lineno))
    return found


_MODULES = _modules()


def test_every_module_is_on_a_floor():
    unplaced = [m for m in _MODULES if _room(m) is None]
    assert not unplaced, f"modules not placed in docs/architecture.md: {unplaced}"


def test_no_module_imports_from_a_floor_above_its_own():
    upward = []
    for name, path in _MODULES.items():
        for target, line in _imports(name, path):
            room, target_room = _room(name), _room(target)
            if target_room is None:
                target_room = _room(f"{target}/__init__")
            if target_room is not None and FLOORS[target_room] > FLOORS[room]:
                upward.append(f"src/aekit/{name}.py:{line} imports {target} (floor {FLOORS[target_room]} "
                              f"above {FLOORS[room]})")
    assert not upward, "\n".join(upward)


def test_the_rooms_import_no_circle():
    """Between rooms (a package counts as one room), the import graph has no cycle."""
    graph = {room: set() for room in FLOORS}
    for name, path in _MODULES.items():
        for target, _ in _imports(name, path):
            a, b = _room(name), _room(target) or _room(f"{target}/__init__")
            if b is not None and a != b:
                graph[a].add(b)
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for room in sorted(graph):
        if room not in state:
            visit(room)


def test_the_layering_check_sees_an_upward_import(tmp_path):
    """The checker itself: a variant importing the trainer is caught."""
    path = tmp_path / "bad.py"
    path.write_text("from ..train import Trainer\n\ndef f():\n    from .. import fitting\n")
    targets = [t for t, _ in _imports("variants/bad", path)]
    assert targets == ["train", "fitting"]
    assert all(FLOORS[_room(t)] > FLOORS[_room("variants/bad")] for t in targets)


def _literals(tree):
    """``(nodes, [(value, line)])``: every string constant of a module that is not a docstring."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    nodes = [n for n in ast.walk(tree)
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]
    return nodes, [(n.value, n.lineno) for n in nodes]


#: the default variant of the public entry points (``fit(variant="ae")``, ``ModelConfig.variant``,
#: the estimators' ``variant="ae"``): a default value, not a switch on a variant
DEFAULT_VARIANT = "ae"


def _other_vocabularies():
    """Words that are variant names and also values of another option: ``linear`` is a variant, an
    activation (``--code-activation linear``) and an interpolation path (``--method linear``)."""
    from aekit.latent import INTERPOLATIONS
    from aekit.nn import ACTIVATIONS
    return set(ACTIVATIONS) | set(INTERPOLATIONS) | {"sigmoid", "linear"}


def _variant_context(tree):
    """Ids of the string constants compared with, or passed as, a variant: ``x == "vae"`` where ``x``
    mentions a variant, ``fit("vae", ...)``, ``variant="vae"``."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and "variant" in ast.unparse(node).lower():
            ids |= {id(c) for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)}
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            if func.split(".")[-1] in ("fit", "_aekit_fit", "get", "ModelConfig") and node.args:
                ids.add(id(node.args[0]))
            ids |= {id(k.value) for k in node.keywords if k.arg == "variant"}
    return ids


@pytest.mark.parametrize("name", aekit.variants.names())
def test_no_variant_is_named_outside_the_variants(name):
    """A variant's name appears only in variants/ (and the tests); a word it shares with another
    vocabulary (``linear``) only where it is used as a variant."""
    shared = name in _other_vocabularies()
    hits = []
    for module, path in _MODULES.items():
        if module.startswith("variants/"):
            continue
        tree = ast.parse(path.read_text())
        as_variant = _variant_context(tree)
        for node, (value, line) in zip(*_literals(tree)):
            if value != name or (name == DEFAULT_VARIANT and _is_default(path, line)):
                continue
            if not shared or id(node) in as_variant:
                hits.append(f"src/aekit/{module}.py:{line}")
    assert not hits, f"{name!r} named outside variants/: {hits}"


def _is_default(path, line):
    text = path.read_text().splitlines()[line - 1]
    return bool(re.search(r"variant\s*(:\s*str\s*)?=\s*(option\()?\"ae\"", text))


def test_no_capability_flag_is_tested_outside_the_variants():
    """Capabilities are methods: nothing outside variants/ reads ``variant.generative``."""
    hits = [f"src/aekit/{m}.py:{n.lineno}" for m, p in _MODULES.items() if not m.startswith("variants/")
            for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Attribute) and n.attr == "generative"]
    assert not hits, hits
