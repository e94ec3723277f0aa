# Set-up needs only python3, pip and make. torch is installed first, pinned to the CPU
# wheel 2.13.0, so that installing the package never pulls a CUDA build.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
DEMO   := runs/demo

.PHONY: demo test data bench clean

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
	@echo "demo run written to $(DEMO); figures in $(DEMO)/figures/"

test: $(VENV)/.dev
	$(PY) -m pytest

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

bench: $(VENV)/.bench data
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info .pytest_cache
