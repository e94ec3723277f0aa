# Set-up needs only python3, pip and make. torch is installed first, pinned to the CPU
# wheel 2.13.0, so that installing the package never pulls a CUDA build.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
DEMO   := runs/demo

.PHONY: demo test chromium data bench bench-quick clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet $(TORCH)
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/aekit train ae --data digits --hidden 128,64 --latent 8 --epochs 60 --out $(DEMO) --overwrite --quiet
	$(VENV)/bin/aekit evaluate $(DEMO) -o $(DEMO)/evaluation.json
	$(VENV)/bin/aekit report $(DEMO) -o $(DEMO)/report.html
	@echo "demo run written to $(DEMO); figures in $(DEMO)/figures/; open $(DEMO)/report.html in a browser for the whole report"

test: $(VENV)/.dev chromium
	$(PY) -m pytest

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

$(VENV)/.bench: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e ".[dev,bench]"
	touch $@

# Every benchmark, one process each, rewriting benchmarks/RESULTS.md (hours on 2 cores);
# bench-quick: the reduced versions (under 10 minutes), recorded in benchmarks/RESULTS-quick.md.
bench: $(VENV)/.bench data
	$(PY) -m benchmarks

bench-quick: $(VENV)/.bench data
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info .pytest_cache
