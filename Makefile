# `make demo` sets up .venv and runs the whole job on a small built-in competition;
# `make test` sets up .venv and runs every test (what .ci/run calls); `make test-fast` skips the ones that train.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast lint benchmark
setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	touch $@

demo: setup
	$(BIN)/digits run --demo

test: setup
	$(BIN)/python -m pytest -q -rs

test-fast: setup
	$(BIN)/python -m pytest -q -rs -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

benchmark: setup
	$(BIN)/python benchmarks/holdout.py --write benchmarks/RESULTS.md
