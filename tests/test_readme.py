"""The README's examples run as tests: its Python blocks and its `aekit ...` commands."""

import re
import shlex
from pathlib import Path

import pytest

from aekit.cli import main

README = (Path(__file__).parents[1] / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_readme_opens_with_the_two_setup_commands():
    first = _blocks("sh")[0].splitlines()
    assert [line.split("#")[0].strip() for line in first] == ["make demo", "make test"]


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_blocks("python")[index], f"README.md python block {index}", "exec"), {})


def test_cli_examples(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    commands = [line.split(" #")[0].strip() for block in _blocks("sh") for line in block.splitlines()
                if line.startswith("aekit ")]
    assert len(commands) >= 5
    for cmd in commands:
        argv = shlex.split(cmd)[1:]
        if argv[0] == "train":
            argv.append("--quiet")
        assert main(argv) == 0, cmd
