# Two entry points for a fresh machine; each makes its own virtual environment.
#   make demo   set up, then run the main job (see README)
#   make test       set up, then lint, type checks and the fast tier (minutes)
#   make test-all   set up, then lint, type checks and every test (what CI runs)
# torch==2.13.0 is installed first: it is the CPU build, and installing it before the project keeps
# pip from resolving `torch` to a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0

.PHONY: setup demo test test-all lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e '.[dev,art]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/ssgan demo --out runs/demo

# The fast tier leaves out the tests marked @pytest.mark.slow (demo, distributed, crash/resume,
# long audio, learning tests, benchmarks, whole pipelines); test-all runs everything.
test: setup
	$(VENV)/bin/ruff check src tests benchmarks research
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -m "not slow" --durations=15

test-all: setup
	$(VENV)/bin/ruff check src tests benchmarks research
	$(VENV)/bin/mypy
	$(PY) -m pytest -q --durations=15

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks research
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
