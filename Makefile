# Two commands on a fresh machine: `make demo` and `make test`. Both create and use .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint bench up clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# setup.py compiles the DLP hot path (hub/dlp/native.py lists the modules): an edit to any
# DLP source reinstalls, so a compiled module is never older than its source.
NATIVE_SOURCES := setup.py $(wildcard hub/dlp/*.py hub/dlp/recognizers/*.py)

$(STAMP): pyproject.toml $(NATIVE_SOURCES) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml $(NATIVE_SOURCES) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/crmhub demo

up: $(STAMP)
	$(BIN)/crmhub up

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy hub connectors projections bench tests

# Three workers on two cores: the suite mostly waits (rebalances, session timeouts, child
# processes starting), ~1.1 cores busy on two workers; three took 6:29 against 7:48.
test: lint
	$(BIN)/python -m pytest -n 3 --dist loadfile

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .hub
