# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
# VENV may point outside the clone (CI keeps it in a cache keyed by pyproject.toml).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Installed once per version of pyproject.toml (its hash names the stamp), not per checkout.
STAMP := $(VENV)/.halo-installed-$(shell sha256sum pyproject.toml | cut -c1-16)

.PHONY: demo test lint bench env screenshots

$(STAMP):
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,spark]'
	touch $(STAMP)

# Re-point the editable install at this checkout (a cached VENV may have served another).
env: $(STAMP)
	@# setuptools warns on every editable install that folders named like the packages may shadow
	@# them; here those folders are the packages
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .

demo: env
	$(BIN)/halo demo

# In 4 processes (pytest-xdist): many tests wait on processes and terminals, not the CPU; a
# file with module-scoped fixtures stays on one worker (its xdist_group mark).
test: env
	$(BIN)/python -m pytest -q -n 4 --dist loadgroup

# The README's pictures of the console, from the demo's workspace (run `make demo` first).
screenshots: env
	$(BIN)/python -m halo_tui.screenshots -w halo-demo --out docs/screenshots

lint: env
	$(BIN)/ruff check .

bench: env
	$(BIN)/python bench/cli_start.py
	$(BIN)/python bench/inject.py
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/score.py
	$(BIN)/python bench/survey_scale.py
	$(BIN)/python bench/convergence.py
	$(BIN)/python bench/tui.py
