# One entry point for people and CI. Everything installs into .venv from PyPI; nothing global is touched.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Which marks the suite runs: make test keeps to 30 minutes on 2 cores; test-extended/test-all run the rest.
MARKS ?= not extended

AZURITE := $(VENV)/node/node_modules/.bin/azurite

.PHONY: install azurite test test-extended test-all suite check lint typecheck imports demo clean

install: $(STAMP)

$(STAMP): pyproject.toml devserver/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ./devserver -e '.[dev]'
	touch $(STAMP)

## make azurite: the Azure Blob emulator the az:// tests start (npm package), unless one is on PATH already.
azurite: $(STAMP)
	@if command -v azurite >/dev/null 2>&1 || [ -x $(AZURITE) ]; then exit 0; fi; \
	command -v npm >/dev/null 2>&1 || { echo "make azurite: npm not found; install Node.js (apt-get install -y nodejs npm) for the az:// tests" >&2; exit 1; }; \
	npm install --prefix $(VENV)/node --no-audit --no-fund --silent azurite

## make test: every check CI blocks a merge on, in order: ruff check, ruff format --check, mypy --strict,
## import-linter, then the whole suite (unit, integration, e2e) with warnings as errors. .ci/run calls it.
test: lint typecheck imports suite

## make suite: only the test suite (PYTEST_ARGS picks tests), for a quick local run.
suite: install azurite
	$(PY) -m pytest -W error -m "$(MARKS)" $(PYTEST_ARGS)

## make test-extended: only the longer real-process cases make test leaves out (pytest.mark.extended), ~10 min;
## make test-all: the checks and every test.
test-extended:
	$(MAKE) suite MARKS=extended

test-all: lint typecheck imports
	$(MAKE) suite MARKS=

lint: install
	$(BIN)/ruff check agent devserver testkit tests benchmarks docker
	$(BIN)/ruff format --check agent devserver testkit tests benchmarks docker

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
