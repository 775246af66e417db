# One entry point for people and CI. Everything installs into .venv from PyPI; nothing global is touched.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test suite check lint typecheck imports demo clean

install: $(STAMP)

$(STAMP): pyproject.toml devserver/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ./devserver -e '.[dev]'
	touch $(STAMP)

## make test: every check CI blocks a merge on, in order: ruff check, ruff format --check, mypy --strict,
## import-linter, then the whole suite (unit, integration, e2e) with warnings as errors. .ci/run calls it.
test: lint typecheck imports suite

## make suite: only the test suite (PYTEST_ARGS picks tests), for a quick local run.
suite: install
	$(PY) -m pytest -W error $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check agent devserver tests benchmarks docker
	$(BIN)/ruff format --check agent devserver tests benchmarks docker

typecheck: install
	$(BIN)/mypy --strict agent devserver/tfs_devserver

imports: install
	$(BIN)/lint-imports

## make check: the same as make test (kept for habit).
check: test

## make demo: the main job on embedded defaults (file:// bucket + tfs-devserver + the agent, under load).
demo: install
	$(BIN)/tfs-agent demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
