# Set-up needs only python3, pip and make. torch is installed first, pinned to the CPU
# wheel 2.13.0, so that installing the package never pulls a CUDA build.
# The test and benchmark venvs take every version from $(LOCK) (Python 3.11, linux x86_64;
# `make lock` refreshes it); pyproject.toml keeps the library's ranges.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
LOCK   := requirements/lock.txt
UV     := uv==0.13.9
WHEELS ?= /opt/wheels
DEMO   := runs/demo
TEST_WORKERS ?= 2

.PHONY: demo test lint docs chromium data bench bench-quick lock clean

# -c $(LOCK) pins torch's own dependencies too, and admits only the +cpu build of torch.
$(VENV)/.torch: $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -c $(LOCK) $(TORCH)
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml $(LOCK)
	$(PIP) install --quiet -c $(LOCK) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.torch pyproject.toml $(LOCK)
	$(PIP) install --quiet -c $(LOCK) -e ".[dev]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/aekit train ae --data digits --latent 8 --out $(DEMO) --overwrite --quiet
	$(VENV)/bin/aekit evaluate $(DEMO) -o $(DEMO)/evaluation.json
	$(VENV)/bin/aekit report $(DEMO) -o $(DEMO)/report.html
	@echo "demo run written to $(DEMO); figures in $(DEMO)/figures/; open $(DEMO)/report.html in a browser for the whole report"

# Two pytest-xdist workers (one torch thread each, tests/conftest.py); TEST_WORKERS=0 runs in one
# process. loadscope runs each module on one worker, so its fixtures are built once (conftest.py).
test: lint docs chromium
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope

# The documentation site (MkDocs, Material theme, mkdocstrings) into site/, strict: a broken
# reference fails the build. The variant and CLI reference pages are generated from the code (docs/hooks.py).
docs: $(VENV)/.dev
	$(VENV)/bin/mkdocs build --strict --quiet

# ruff (lint and format check) and mypy over the sources, before the tests
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src
	$(VENV)/bin/ruff format --check src
	$(VENV)/bin/mypy

# Debian's chromium: tests/test_report.py opens the HTML report in it, headless (skipped without it).
chromium:
	@if command -v chromium >/dev/null; then \
	  echo "chromium found: $$(command -v chromium)"; \
	elif command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	else \
	  echo "apt-get is not available: install Chromium as /usr/bin/chromium to run the browser tests of the report (they are skipped without it)"; \
	fi

# Fashion-MNIST for the benchmarks: Debian's dataset-fashion-mnist puts the IDX files
# under /usr/share/datasets/fashion-mnist.
data:
	@if [ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || [ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte ]; then \
	  echo "fashion-mnist already installed in /usr/share/datasets/fashion-mnist"; \
	elif command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  echo "apt-get is not available: put the four Fashion-MNIST IDX files in a folder and set AEKIT_DATA to it"; exit 1; \
	fi

$(VENV)/.bench: $(VENV)/.torch pyproject.toml $(LOCK)
	$(PIP) install --quiet -c $(LOCK) -e ".[dev,bench]"
	touch $@

# Every benchmark, one process each, rewriting benchmarks/RESULTS.md (hours on 2 cores);
# bench-quick: the reduced versions (under 10 minutes), recorded in benchmarks/RESULTS-quick.md.
bench: $(VENV)/.bench data
	$(PY) -m benchmarks

bench-quick: $(VENV)/.bench data
	$(PY) -m benchmarks --quick

# Re-resolve base + dev + bench to the newest versions the ranges in pyproject.toml allow, for
# Python 3.11 on linux x86_64, with uv (pinned here) from PyPI. requirements/overrides.txt holds
# torch to the on-disk CPU wheel (whose metadata needs no CUDA package) and works around uv's
# reading of Requires-Python upper bounds. Review the diff, then run make test.
lock: $(VENV)/.torch
	$(PIP) install --quiet $(UV)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra bench --upgrade --quiet \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --find-links $(WHEELS) --override requirements/overrides.txt \
	  --custom-compile-command "make lock" -o $(LOCK)

clean:
	rm -rf $(VENV) runs build dist *.egg-info src/*.egg-info .pytest_cache
