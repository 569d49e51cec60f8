# Quick start: `make demo` (set up, run the comparison) and `make test` (set up, lint, test).
# Both create ./.venv on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
# The CPU build of PyTorch, installed before the package so pip does not fetch a CUDA
# build. For a GPU, run `make TORCH=torch ...` or install torch in .venv yourself.
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,compare,docs,bench]"
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
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache docs/_build docs/generated \
		docs/auto_examples docs/sg_execution_times.rst
