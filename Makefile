# Quick start: `make demo` (set up, run the comparison) and `make test` (set up, lint, test).
# Both create ./.venv on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
# The PyTorch requirement, installed before the package. Which build it gives depends on
# the index: a local CPU wheel on the development machines, the CUDA build from PyPI on
# Linux (see the README, "Which PyTorch"). Override it, e.g.
# `make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"`.
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Pinned versions of the tools (ruff, pytest, sphinx, ...); the package's own
# dependencies stay as loose as pyproject.toml says.
CONSTRAINTS := .ci/constraints.txt

.PHONY: setup demo test lint format docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev,compare,docs,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cwy-manifolds demo --out out/compare

test: lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# HTML in docs/_build/html; warnings are errors and the gallery's examples run.
docs: $(STAMP)
	$(BIN)/sphinx-build -nW --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis docs/_build \
		docs/generated docs/auto_examples docs/sg_execution_times.rst docs/notes.rst out
