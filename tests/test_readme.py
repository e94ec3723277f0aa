"""The examples of the README and of the documentation pages run as tests.

In the README and in every ``docs/**/*.md`` page, a ```` ```python ```` block is executed and each line
of a ```` ```sh ```` block that starts with ``aekit `` is run through ``aekit.cli.main`` (``train``
gets ``--quiet``). A page's blocks run in the page's order in one fresh folder, so a page that
searches or compresses a run trains it first. Blocks marked ```` ```shell ```` or ```` ```text ````
are shown and not run (they need Fashion-MNIST, several machines, or are output).
"""

import re
import shlex
import shutil
from pathlib import Path

import pytest

from aekit.cli import main

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
#: the documentation pages that hold examples, relative to the repository root
PAGES = sorted(
    str(p.relative_to(ROOT))
    for p in (ROOT / "docs").rglob("*.md")
    if re.search(r"```(python|sh)\n", p.read_text())
)
BLOCK = re.compile(r"```(python|sh)\n(.*?)```", re.S)


def _blocks(lang, text=README):
    return [body for kind, body in BLOCK.findall(text) if kind == lang]


def _commands(block):
    return [line.split(" #")[0].strip() for line in block.splitlines() if line.startswith("aekit ")]


#: run directories already trained by an identical ``aekit train`` command (the pages that search, compress
#: or export a run train the same one first): copied, not trained again. Two runs of one configuration
#: and seed are byte-identical, so the copy is the run the command would write.
_TRAINED: dict[str, Path] = {}


def _run_command(cmd, cache=None):
    argv = shlex.split(cmd)[1:]
    if argv[0] == "train":
        argv.append("--quiet")
    out = argv[argv.index("--out") + 1] if "--out" in argv else None
    reusable = cache is not None and argv[0] == "train" and out and "--resume" not in argv and "--nproc" not in argv
    if reusable and cmd in _TRAINED and not Path(out).exists():
        shutil.copytree(_TRAINED[cmd], out)
        return
    assert main(argv) == 0, cmd
    if reusable and cmd not in _TRAINED:
        _TRAINED[cmd] = shutil.copytree(out, cache / f"run{len(_TRAINED)}")


def test_readme_opens_with_the_two_setup_commands():
    first = _blocks("sh")[0].splitlines()
    assert [line.split("#")[0].strip() for line in first] == ["make demo", "make test"]


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_blocks("python")[index], f"README.md python block {index}", "exec"), {})


def test_cli_examples(tmp_path, tmp_path_factory, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    commands = [cmd for block in _blocks("sh") for cmd in _commands(block)]
    assert len(commands) >= 5
    for cmd in commands:
        _run_command(cmd, _cache(tmp_path_factory))


def test_the_docs_have_examples_to_run():
    """The examples that left the README for the documentation pages are found there (a renamed page or
    a changed fence would otherwise drop them silently)."""
    for page in ("docs/getting-started.md", "docs/uses/search.md", "docs/uses/compression.md",
                 "docs/uses/anomaly.md", "docs/uses/classification.md", "docs/sklearn.md", "docs/distributed.md"):
        assert page in PAGES, page
    commands = [cmd for page in PAGES for block in _blocks("sh", (ROOT / page).read_text()) for cmd in _commands(block)]
    for name in ("index", "search", "compress", "decompress", "score", "denoise", "generate", "interpolate",
                 "traverse", "pretrain", "finetune", "classify", "export", "info", "reconstruct"):
        assert any(cmd.split()[1] == name for cmd in commands), name


def _cache(tmp_path_factory):
    """The folder of :data:`_TRAINED`'s copies (one per worker: test_readme.py runs on one, conftest.py)."""
    cache = tmp_path_factory.getbasetemp() / "trained-runs"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.mark.parametrize("page", PAGES)
def test_docs_examples(page, tmp_path, tmp_path_factory, monkeypatch, capsys):
    cache = _cache(tmp_path_factory)
    monkeypatch.chdir(tmp_path)
    text = (ROOT / page).read_text()
    for number, (kind, body) in enumerate(BLOCK.findall(text)):
        if kind == "python":
            exec(compile(body, f"{page} block {number}", "exec"), {})
        else:
            for cmd in _commands(body):
                _run_command(cmd, cache)
