# `make demo` sets up .venv and runs the whole job on a small built-in competition;
# `make test` sets up .venv, lints, type-checks and checks the layers, then runs every test (what .ci/run calls); `make test-fast` skips the ones that train.
# `make docs` builds the manual (docs/, mkdocs.yml) into site/, strictly: a broken link or a missing page fails it (.ci/run too).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast lint docs benchmark
setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,ray,notify,mlflow,docs]'
	touch $@

demo: setup
	$(BIN)/digits run --demo

# -n auto --dist loadfile: one pytest worker per core, each test file kept on one worker (its
# module fixtures train once; the Ray tests never run two clusters at once). Each worker keeps to a core of
# its own (tests/conftest.py). 18 minutes on two cores (2026-12-07: 1,149 tests); three workers took as long.
PYTEST := $(BIN)/python -m pytest -q -rs -n auto --dist loadfile

test: lint
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not slow"

# lint-imports checks the layers (pyproject.toml, [tool.importlinter]; README, "How it is built").
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The command reference is generated from the Click group (mkdocs-click), the config and exit-code tables by
# mkdocs_hooks.py.  NO_MKDOCS_2_WARNING: MkDocs 1.6 prints a notice about its successor on every build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

benchmark: setup
	$(BIN)/python benchmarks/holdout.py --full-run
	$(BIN)/python benchmarks/speed.py --repeat 1
	$(BIN)/python benchmarks/workers.py
	$(BIN)/python benchmarks/nights.py --runs wide:2,wide-f32:1,wide-k5:1,wide-k7:1 --jobs 2
