# One entry point for people and CI. Everything installs into .venv from PyPI; nothing global is touched.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test check lint typecheck imports demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## make test: the whole suite (unit, integration, e2e), warnings are errors.
test: install
	$(PY) -m pytest -W error $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check agent tests benchmarks docker
	$(BIN)/ruff format --check agent tests benchmarks docker

typecheck: install
	$(BIN)/mypy --strict agent

imports: install
	$(BIN)/lint-imports

## make check: everything CI would want to see green.
check: lint typecheck imports test

## make demo: the main job on embedded defaults (file:// bucket + tfs-devserver + the agent, under load).
demo: install
	$(BIN)/tfs-agent demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
