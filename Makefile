# `make demo` sets up .venv and runs the whole job on a small built-in competition;
# `make test` sets up .venv and runs the tests (what .ci/run calls).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup demo test benchmark
setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(BIN)/digits run --demo

test: setup
	$(BIN)/python -m pytest -q -rs

benchmark: setup
	$(BIN)/python benchmarks/holdout.py --full-run --write benchmarks/RESULTS.md
