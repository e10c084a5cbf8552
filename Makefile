# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
# VENV may point outside the clone (CI keeps it in a cache keyed by pyproject.toml).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.halo-installed

.PHONY: demo test lint bench env

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,spark]'
	touch $(STAMP)

# Re-point the editable install at this checkout (a cached VENV may have served another).
env: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .

demo: env
	$(BIN)/halo demo

test: env
	$(BIN)/python -m pytest -q

lint: env
	$(BIN)/ruff check .

bench: env
	$(BIN)/python bench/cli_start.py
