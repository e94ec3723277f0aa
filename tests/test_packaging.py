"""The package as a user gets it: the sdist and the wheel hold what they must, and the wheel,
installed into a fresh venv, trains a model from its console script (not from the src/ tree).

Offline and cheap: the build runs without isolation (setuptools comes with torch's own
requirements), and the fresh venv has no pip and no packages of its own; a .pth file lends it the
test venv's site-packages for torch and the other dependencies. A directory named by a .pth line
is only appended to sys.path, its own .pth files are not run, so the test venv's editable hook for
src/ stays inactive there and `import aekit` can only find the installed wheel.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# what a clean clone does not have: never copied into the tree that is built
_NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    "runs",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    "out",
)


def _run(cmd, **kw):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert result.returncode == 0, f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _package_modules(tree):
    package = tree / "src" / "aekit"
    return sorted(p.relative_to(package).as_posix() for p in package.rglob("*.py"))


@pytest.fixture(scope="session")
def dists(tmp_path_factory):
    """Build the sdist, then (as pip does) the wheel from the unpacked sdist, from a copy of the tree."""
    base = tmp_path_factory.mktemp("packaging")
    tree = base / "aekit"
    shutil.copytree(ROOT, tree, ignore=_NOT_SOURCES)
    out = base / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, tree], cwd=base)
    (sdist,) = out.glob("aekit-*.tar.gz")
    (wheel,) = out.glob("aekit-*.whl")
    return tree, sdist, wheel


def test_sdist_and_wheel_hold_the_sources_license_and_py_typed(dists):
    tree, sdist, wheel = dists
    modules = _package_modules(tree)
    assert "__init__.py" in modules and "cli.py" in modules and "variants/__init__.py" in modules

    with tarfile.open(sdist) as tar:
        top = sdist.name.removesuffix(".tar.gz")
        names = {n.removeprefix(top + "/") for n in tar.getnames()}
    assert {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO", "src/aekit/py.typed"} <= names
    assert {f"src/aekit/{m}" for m in modules} <= names

    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        info = wheel.name.split("-py3")[0] + ".dist-info"
        metadata = whl.read(f"{info}/METADATA").decode()
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    assert "aekit/py.typed" in names
    assert {f"aekit/{m}" for m in modules} <= names
    assert not any(n.startswith(("tests/", "benchmarks/", "src/")) for n in names)
    assert f"{info}/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "aekit = aekit.cli:main" in entry_points
    license_text = (tree / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "aekit contributors" in license_text


def test_the_wheel_in_a_fresh_venv_trains_from_its_console_script(dists, tmp_path):
    _, _, wheel = dists
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (site / "_aekit_test_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-index", "--no-deps", wheel])

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    where = _run(
        [python, "-c", "import aekit, pathlib; print(pathlib.Path(aekit.__file__).resolve())"], cwd=tmp_path, env=env
    ).strip()
    package = Path(where).parent
    assert package.is_relative_to(venv.resolve()) and not package.is_relative_to(ROOT / "src"), where
    assert (package / "py.typed").is_file()

    out = tmp_path / "run"
    _run(
        [venv / "bin" / "aekit", "train", "ae", "--data", "digits", "--epochs", "1", "--quiet", "--out", out],
        cwd=tmp_path,
        env=env,
    )
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
